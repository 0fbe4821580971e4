//! `caxton storage verify|analyze|repair|compact`: asks the running
//! server, or, when none answers, works on the data directory itself
//! (then `verify --deep` includes redb's own integrity check and `compact`
//! runs at once: both need the file to themselves).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use super::client::Client;
use super::output;
use crate::storage::Analysis;
use crate::storage_check::{Check, Level, RepairReport, Report};

/// The checks at `level`, by the running server or, when none answers,
/// on the data directory.
async fn report(client: &Client, level: Level) -> anyhow::Result<Report> {
    let query = match level {
        Level::Quick => "quick",
        Level::Full => "full",
        Level::Deep => "deep",
    };
    match client
        .get(&format!("/api/v1/storage/verify?level={query}"))
        .await
    {
        Ok(body) => serde_json::from_value(body).context("the server's report"),
        Err(e) if client.unreachable(&e) => offline(level).await,
        Err(e) => Err(e),
    }
}

/// `storage corruption-level` (`bare`: the percent alone) and `storage
/// diagnose --corruption-level`.
pub async fn corruption(client: &Client, bare: bool) -> anyhow::Result<ExitCode> {
    let report = report(client, Level::Full).await?;
    let percent = report.corruption_percent();
    let level = match percent {
        0 => "NONE",
        1..25 => "LOW",
        25..60 => "MEDIUM",
        _ => "HIGH",
    };
    if output::emit_json(&serde_json::json!({
        "level": level,
        "percent": percent,
        "problems": report.problems,
        "records": report.records,
        "failed_checks": report.checks.iter().filter(|c| !c.ok).collect::<Vec<_>>(),
    })) {
        return Ok(ExitCode::SUCCESS);
    }
    if bare {
        println!("{percent}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "CORRUPTION_LEVEL: {level} ({percent}% of data affected: {} of {} records)",
        report.problems, report.records
    );
    for check in report.checks.iter().filter(|c| !c.ok) {
        println!("✗ {}: {}", check.name, check.detail);
    }
    if percent > 0 {
        println!(
            "next: {}",
            if percent < 25 {
                "caxton storage repair --auto"
            } else {
                "caxton restore --latest-backup --verify"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn verify(client: &Client, level: Level) -> anyhow::Result<ExitCode> {
    let report = report(client, level).await?;
    let code = if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if output::emit_json(&report) {
        return Ok(code);
    }
    for Check { name, ok, detail } in &report.checks {
        println!("{} {name}: {detail}", if *ok { "✓" } else { "✗" });
    }
    println!(
        "{}",
        if report.ok {
            "storage verified"
        } else {
            "storage has problems (see above)"
        }
    );
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The data directory of the local configuration, for when no server
/// answers.
fn local_data_dir() -> anyhow::Result<PathBuf> {
    Ok(
        match std::env::var_os("CAXTON_DATA_DIR").filter(|d| !d.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => {
                let config = std::env::var_os("CAXTON_CONFIG").map(PathBuf::from);
                crate::config::Config::load(config.as_deref())?.data_dir()
            }
        },
    )
}

/// Opens the database of `data_dir` for an offline command; a server
/// holding it makes this fail with a clear message and no damage.
fn open_offline(data_dir: &std::path::Path) -> anyhow::Result<Arc<crate::storage::Storage>> {
    crate::storage::Storage::open(data_dir)
        .map(Arc::new)
        .with_context(|| {
            format!(
                "cannot open the database in {} (a server that holds it but does not answer at --server? stop it, or point --server at it)",
                data_dir.display()
            )
        })
}

/// No server: the data directory of the local configuration.
async fn offline(level: Level) -> anyhow::Result<Report> {
    let data_dir = local_data_dir()?;
    eprintln!(
        "no server answered; checking {} directly",
        data_dir.display()
    );
    tokio::task::spawn_blocking(move || {
        let mut integrity = None;
        if level == Level::Deep {
            let path = data_dir.join(crate::storage::DATABASE_FILE);
            let mut db = redb::Database::open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            integrity = Some(match db.check_integrity() {
                Ok(true) => Check {
                    name: "database integrity".into(),
                    ok: true,
                    detail: "redb's check passed".into(),
                },
                Ok(false) => Check {
                    name: "database integrity".into(),
                    ok: true,
                    detail: "redb repaired the file (it was not closed cleanly)".into(),
                },
                Err(e) => Check {
                    name: "database integrity".into(),
                    ok: false,
                    detail: format!(
                        "{e}: restore from a backup (`caxton restore --latest-backup`)"
                    ),
                },
            });
        }
        let storage = open_offline(&data_dir)?;
        let store = crate::memory::store::MemoryStore::open(storage.clone())
            .map_err(|e| anyhow::anyhow!("memory tables: {e}"))?;
        let mut report = crate::storage_check::run(&storage, level, |postings| {
            store
                .read()
                .and_then(|r| r.check(postings))
                .map_err(|e| e.to_string())
        });
        if let Some(integrity) = integrity {
            report.ok &= integrity.ok;
            report.checks.insert(0, integrity);
        }
        Ok(report)
    })
    .await?
}

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

pub async fn analyze(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let analysis: Analysis = match client.get_as("/api/v1/storage/analyze").await {
        Ok(analysis) => analysis,
        Err(e) if client.unreachable(&e) => {
            let data_dir = local_data_dir()?;
            eprintln!(
                "no server answered; analyzing {} directly",
                data_dir.display()
            );
            tokio::task::spawn_blocking(move || -> anyhow::Result<Analysis> {
                Ok(open_offline(&data_dir)?.analyze()?)
            })
            .await??
        }
        Err(e) => return Err(e),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&analysis)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Database file: {} ({} allocated in {}-byte pages)",
        mb(analysis.file_bytes),
        mb(analysis.allocated_bytes),
        analysis.page_size
    );
    println!(
        "Data: {} stored, {} metadata; {} fragmented inside pages",
        mb(analysis.stored_bytes),
        mb(analysis.metadata_bytes),
        mb(analysis.fragmented_bytes)
    );
    println!(
        "Free space: {} ({:.1}% of the file){}",
        mb(analysis.free_bytes),
        analysis.fragmentation_percent,
        if analysis.compaction_pending {
            "; a compaction is scheduled for the next start"
        } else if analysis.fragmentation_percent >= 30.0 {
            "; `caxton storage compact` returns it"
        } else {
            ""
        }
    );
    match &analysis.growth {
        Some(g) => {
            let since = time::OffsetDateTime::from_unix_timestamp(g.since_unix as i64)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_else(|| g.since_unix.to_string());
            let per_day = g.stored_bytes_per_day;
            println!(
                "Growth: {}{} stored per day over {:.1} days (since {since}: {} then, {} now)",
                if per_day < 0.0 { "-" } else { "+" },
                mb(per_day.abs() as u64),
                g.days,
                mb(g.stored_bytes_then),
                mb(analysis.stored_bytes)
            );
        }
        None => println!(
            "Growth: not known yet (a size sample is taken at every start and daily; \
             needs an hour of history)"
        ),
    }
    println!(
        "\n{:<24} {:>10} {:>12} {:>12} {:>12} {:>6}",
        "TABLE", "ENTRIES", "STORED", "METADATA", "FRAGMENTED", "HEIGHT"
    );
    for t in &analysis.tables {
        println!(
            "{:<24} {:>10} {:>12} {:>12} {:>12} {:>6}",
            t.name,
            t.entries,
            mb(t.stored_bytes),
            mb(t.metadata_bytes),
            mb(t.fragmented_bytes),
            t.tree_height
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairMode {
    Apply,
    DryRun,
    /// Only the exit code matters: 0 when everything is repairable.
    CanRepair,
}

pub async fn repair(client: &Client, mode: RepairMode) -> anyhow::Result<ExitCode> {
    let apply = mode == RepairMode::Apply;
    let report: RepairReport = match client
        .post_as(
            "/api/v1/storage/repair",
            &serde_json::json!({ "apply": apply }),
        )
        .await
    {
        Ok(report) => report,
        Err(e) if client.unreachable(&e) => {
            let data_dir = local_data_dir()?;
            eprintln!(
                "no server answered; repairing {} directly",
                data_dir.display()
            );
            tokio::task::spawn_blocking(move || -> anyhow::Result<RepairReport> {
                let storage = open_offline(&data_dir)?;
                let store = crate::memory::store::MemoryStore::open(storage.clone())
                    .map_err(|e| anyhow::anyhow!("memory tables: {e}"))?;
                // The vector index snapshot is reconciled with the tables at
                // the next start, so nothing derived is left stale.
                Ok(crate::storage_check::repair(&storage, apply, |apply| {
                    store.repair(apply).map_err(|e| e.to_string())
                }))
            })
            .await??
        }
        Err(e) => return Err(e),
    };
    let code = if report.repairable() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if output::emit_json(&serde_json::json!({
        "applied": apply,
        "repairable": report.repairable(),
        "fixed": report.fixed,
        "left": report.left,
    })) {
        return Ok(code);
    }
    if report.fixed.is_empty() {
        println!("nothing to repair in what can be repaired");
    }
    for line in &report.fixed {
        println!("✓ {line}");
    }
    for line in &report.left {
        println!("✗ {line}");
    }
    match (mode, report.repairable()) {
        (RepairMode::CanRepair, true) => println!("can repair: yes"),
        (RepairMode::CanRepair, false) => println!("can repair: no (restore a backup)"),
        (RepairMode::Apply, true) => println!("Repair completed successfully"),
        (RepairMode::Apply, false) => println!("repaired what could be; the rest needs a backup"),
        (RepairMode::DryRun, _) => println!("(dry run: nothing was changed)"),
    }
    Ok(if report.repairable() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn compact(client: &Client) -> anyhow::Result<ExitCode> {
    match client
        .post_as::<crate::server::storage::CompactAnswer>(
            "/api/v1/storage/compact",
            &serde_json::json!({}),
        )
        .await
    {
        Ok(answer) if output::emit_json(&answer) => Ok(ExitCode::SUCCESS),
        Ok(answer) => {
            println!(
                "Compaction scheduled ({} now): {}",
                mb(answer.database_bytes),
                answer.detail
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if client.unreachable(&e) => {
            let data_dir = local_data_dir()?;
            eprintln!("no server answered; compacting {} now", data_dir.display());
            let (before, after) =
                tokio::task::spawn_blocking(move || -> anyhow::Result<(u64, u64)> {
                    let before = open_offline(&data_dir)?;
                    let size = before.file_bytes();
                    before.request_compaction()?;
                    drop(before);
                    // Opening with the request in place compacts.
                    let after = open_offline(&data_dir)?;
                    Ok((size, after.file_bytes()))
                })
                .await??;
            if !output::emit_json(
                &serde_json::json!({ "before_bytes": before, "after_bytes": after }),
            ) {
                println!("Database compacted: {} → {}", mb(before), mb(after));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e),
    }
}
