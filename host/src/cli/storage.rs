//! `caxton storage verify`: asks the running server, or, when none
//! answers, checks the data directory itself (then `--deep` includes
//! redb's own integrity check, which needs the file to itself).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use super::client::Client;
use crate::storage_check::{Check, Level, Report};

pub async fn verify(client: &Client, level: Level) -> anyhow::Result<ExitCode> {
    let query = match level {
        Level::Quick => "quick",
        Level::Full => "full",
        Level::Deep => "deep",
    };
    let report: Report = match client
        .get(&format!("/api/v1/storage/verify?level={query}"))
        .await
    {
        Ok(body) => serde_json::from_value(body).context("the server's report")?,
        Err(e) if client.unreachable(&e) => offline(level).await?,
        Err(e) => return Err(e),
    };
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

/// No server: the data directory of the local configuration.
async fn offline(level: Level) -> anyhow::Result<Report> {
    let data_dir = match std::env::var_os("CAXTON_DATA_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let config = std::env::var_os("CAXTON_CONFIG").map(PathBuf::from);
            crate::config::Config::load(config.as_deref())?.data_dir()
        }
    };
    println!(
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
        let storage = Arc::new(
            crate::storage::Storage::open(&data_dir)
                .with_context(|| format!("cannot open the database in {}", data_dir.display()))?,
        );
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
