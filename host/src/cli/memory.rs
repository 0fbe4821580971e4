//! `caxton memory …`: the operator's view of embedded memory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::client::Client;
use super::output::{self, Table, cell};
use crate::memory::report::{
    CacheCleared, Diagnosis, Imported, ModelLoaded, Optimized, SearchResults, StatsReport,
};
use crate::memory::{Capacity, Cleanup, MemoryHealth, Usage};
use crate::server::percent_encode;

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// One JSON array.
    Json,
    /// One record per line.
    Jsonl,
}

impl ExportFormat {
    fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Json => "json",
            ExportFormat::Jsonl => "jsonl",
        }
    }
}

#[derive(Subcommand)]
pub enum MemoryCommand {
    /// Database, model and counts at a glance.
    Status,
    /// Counts, sizes and latency percentiles.
    Stats {
        /// Also latency percentiles per operation and sizes per table.
        #[arg(long)]
        detailed: bool,
    },
    /// State of the embedding model.
    ModelStatus,
    /// Model memory and query-embedding cache hit rate.
    ModelStats,
    /// Download the embedding model into the shared cache (also done
    /// automatically at first start), then tell a running server to load it.
    Pull {
        /// Cache directory (default $CAXTON_MODEL_CACHE or ~/.cache/caxton/models).
        #[arg(long, env = "CAXTON_MODEL_CACHE")]
        cache_dir: Option<PathBuf>,
    },
    /// The embedding model: `model pull`, `model status`.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Rebuild the vector index and/or compact the database (both when
    /// neither is named).
    Optimize {
        /// Compact the database (at the next start: it needs exclusive access).
        #[arg(long, visible_alias = "vacuum-sqlite")]
        vacuum: bool,
        /// Rebuild the vector index from the database.
        #[arg(long, visible_alias = "reindex")]
        rebuild_index: bool,
    },
    /// Entity count against the recommended limit of the embedded store.
    LimitsCheck,
    /// Like limits-check; `--percentage` prints only the whole percentage.
    CapacityCheck {
        /// Print only the whole percentage (for scripts).
        #[arg(long)]
        percentage: bool,
    },
    /// Delete entities that have no relations, and/or history retired
    /// before a time.
    Cleanup {
        /// Entities without any relation are removed.
        #[arg(long)]
        remove_orphaned: bool,
        /// Drop retired facts (history) retired before this time
        /// (`2024-05-01` or RFC 3339).
        #[arg(long, value_name = "TIME")]
        retired_before: Option<String>,
        /// Only those not updated for this long (`30d`, `12h`, `2w`).
        #[arg(long, value_parser = parse_age_days)]
        older_than: Option<u64>,
        /// Remove every orphan regardless of age (same as --remove-orphaned
        /// without --older-than).
        #[arg(long)]
        aggressive: bool,
        /// Do not ask for confirmation (cleanup never asks; accepted for
        /// scripts written for the runbook).
        #[arg(long)]
        force: bool,
        /// List what would be removed without removing it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Drop cached query embeddings; `--rebuild`/`--all` also rebuild the vector index.
    CacheClear {
        /// Also rebuild the vector index.
        #[arg(long)]
        rebuild: bool,
        /// Clear every cache and rebuild the vector index.
        #[arg(long)]
        all: bool,
    },
    /// Memory use by component; `--percentage` prints only the whole
    /// percentage of the configured budget.
    Usage {
        /// Every component, not only the totals.
        #[arg(long)]
        detailed: bool,
        /// Print only the whole percentage of the budget (for scripts).
        #[arg(long)]
        percentage: bool,
    },
    /// Health, the database's check, capacity and memory use, then a
    /// verdict and the next command (exit code 1 unless all is well).
    EmergencyDiagnosis,
    /// What memory served during a window: operations, latencies and,
    /// with --include-queries, the slow queries.
    Profile {
        /// `60s`, `5m`.
        #[arg(long, default_value = "60s", value_parser = super::parse_duration_secs_arg)]
        duration: u64,
        /// List the slow queries of the window.
        #[arg(long)]
        include_queries: bool,
    },
    /// Latency by query type; `--show-slow-queries` lists the slow ones.
    #[command(visible_alias = "monitor")]
    Diagnose {
        /// List the slowest recent queries.
        #[arg(long)]
        show_slow_queries: bool,
    },
    /// Hybrid search (semantic + keyword).
    Search {
        /// What to look for, in words.
        query: String,
        /// global, workspace or agent:NAME
        #[arg(long, default_value = "global")]
        scope: String,
        /// Most results to print.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Search what was true in the world then (`2024-05-01` or RFC
        /// 3339), retired facts included.
        #[arg(long, value_name = "TIME")]
        as_of: Option<String>,
        /// Search what memory held then.
        #[arg(long, value_name = "TIME")]
        known_at: Option<String>,
    },
    /// Retire facts of an entity: they leave what reads see and stay in
    /// its history.
    Supersede {
        /// The entity.
        entity: String,
        /// Observations to retire, by their exact text.
        observations: Vec<String>,
        /// A relation from the entity to retire, as TYPE:TARGET
        /// (repeatable).
        #[arg(long = "relation", value_name = "TYPE:TARGET")]
        relations: Vec<String>,
        /// When the facts stopped being true (default: now).
        #[arg(long, value_name = "TIME")]
        valid_from: Option<String>,
        /// global, workspace or agent:NAME
        #[arg(long, default_value = "global")]
        scope: String,
    },
    /// Relation types a source holds one of at a time (a new one retires
    /// the previous).
    SingleValued {
        #[command(subcommand)]
        command: SingleValuedCommand,
    },
    /// Every version of an entity's facts: when each was true, when it
    /// was recorded and retired.
    History {
        /// The entity's name.
        entity: String,
        /// global, workspace or agent:NAME
        #[arg(long, default_value = "global")]
        scope: String,
    },
    /// Write the whole graph to a file.
    Export {
        /// File format.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// The file to write.
        #[arg(long)]
        output: PathBuf,
    },
    /// Load a file written by `export` (json or jsonl).
    Import {
        /// The file to load (json or jsonl).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum SingleValuedCommand {
    /// Those of caxton.yaml (every scope) and those declared for a scope.
    List {
        /// global, workspace or agent:NAME
        #[arg(long, default_value = "global")]
        scope: String,
    },
    /// Declare a relation type single-valued in a scope.
    Add {
        /// The relation type (e.g. works_at).
        relation_type: String,
        /// global, workspace or agent:NAME
        #[arg(long, default_value = "global")]
        scope: String,
    },
    /// No longer single-valued in a scope.
    Remove {
        /// The relation type.
        relation_type: String,
        /// global, workspace or agent:NAME
        #[arg(long, default_value = "global")]
        scope: String,
    },
}

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Download the embedding model into the shared cache.
    Pull {
        /// Cache directory (default $CAXTON_MODEL_CACHE or ~/.cache/caxton/models).
        #[arg(long, env = "CAXTON_MODEL_CACHE")]
        cache_dir: Option<PathBuf>,
    },
    /// State of the embedding model in the running server.
    Status,
}

/// `30d`, `12h`, `2w` or a bare number of days → whole days (rounded up).
fn parse_age_days(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "d"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not an age; write it like 30d, 12h or 2w"))?;
    match unit {
        "d" => Ok(n),
        "w" => Ok(n * 7),
        "h" => Ok(n.div_ceil(24)),
        _ => Err(format!(
            "unknown unit `{unit}` in `{text}`; use h, d or w (e.g. 30d)"
        )),
    }
}

fn human_bytes(bytes: u64) -> String {
    let mb = bytes as f64 / (1024.0 * 1024.0);
    if mb >= 1.0 {
        format!("{mb:.1}MB")
    } else {
        format!("{:.1}KB", bytes as f64 / 1024.0)
    }
}

pub async fn run(client: &Client, command: MemoryCommand) -> anyhow::Result<ExitCode> {
    match command {
        MemoryCommand::Status => status(client).await?,
        MemoryCommand::Stats { detailed } => stats(client, detailed).await?,
        MemoryCommand::Pull { cache_dir }
        | MemoryCommand::Model(ModelCommand::Pull { cache_dir }) => pull(client, cache_dir).await?,
        MemoryCommand::Model(ModelCommand::Status) | MemoryCommand::ModelStatus => {
            model_status(client).await?
        }
        MemoryCommand::ModelStats => model_stats(client).await?,
        MemoryCommand::Search {
            query,
            scope,
            limit,
            as_of,
            known_at,
        } => {
            let at = json!({"as_of": as_of, "known_at": known_at});
            search(client, &query, &scope, limit, at).await?
        }
        MemoryCommand::History { entity, scope } => history(client, &entity, &scope).await?,
        MemoryCommand::SingleValued { command } => single_valued(client, command).await?,
        MemoryCommand::Supersede {
            entity,
            observations,
            relations,
            valid_from,
            scope,
        } => {
            let mut named = Vec::new();
            for r in &relations {
                let (kind, target) = r.split_once(':').ok_or_else(|| {
                    anyhow!("--relation takes TYPE:TARGET (e.g. works_at:Acme), not `{r}`")
                })?;
                named.push(json!({"from": entity, "to": target, "relation_type": kind}));
            }
            let observations: Vec<Value> = observations
                .iter()
                .map(|o| json!({"entity": entity, "observation": o}))
                .collect();
            let mut body =
                json!({"scope": scope, "observations": observations, "relations": named});
            if let Some(t) = valid_from {
                body["valid_from"] = json!(t);
            }
            let done: Value = client.post_as("/api/v1/memory/supersede", &body).await?;
            if !output::emit_json(&done) {
                println!("Retired {} facts (kept in history)", cell(&done["retired"]));
            }
        }
        MemoryCommand::Export { format, output } => export(client, format, &output).await?,
        MemoryCommand::Import { file } => import(client, &file).await?,
        MemoryCommand::Optimize {
            vacuum,
            rebuild_index,
        } => optimize(client, vacuum, rebuild_index).await?,
        MemoryCommand::LimitsCheck => limits_check(client).await?,
        MemoryCommand::CapacityCheck { percentage } => capacity_check(client, percentage).await?,
        MemoryCommand::Cleanup {
            remove_orphaned,
            retired_before,
            older_than,
            aggressive,
            force: _,
            dry_run,
        } => {
            let what = CleanupWhat {
                orphans: remove_orphaned || aggressive,
                older_than: if aggressive { None } else { older_than },
                retired_before,
                dry_run,
            };
            cleanup(client, what).await?
        }
        MemoryCommand::CacheClear { rebuild, all } => cache_clear(client, rebuild || all).await?,
        MemoryCommand::Usage {
            detailed,
            percentage,
        } => usage(client, detailed, percentage).await?,
        MemoryCommand::Diagnose { show_slow_queries } => {
            diagnose(client, show_slow_queries).await?
        }
        MemoryCommand::EmergencyDiagnosis => {
            return super::diagnose::memory_emergency(client).await;
        }
        MemoryCommand::Profile {
            duration,
            include_queries,
        } => {
            return super::diagnose::memory_profile(
                client,
                std::time::Duration::from_secs(duration),
                include_queries,
            )
            .await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(client: &Client) -> anyhow::Result<()> {
    let report: StatsReport = client.get_as("/api/v1/memory/stats").await?;
    if output::emit_json(&report) {
        return Ok(());
    }
    let StatsReport {
        stats,
        database_bytes,
    } = report;
    let health = &stats.health;
    let database = if health.sqlite_status == "ok" {
        "healthy"
    } else {
        "error"
    };
    println!("Database: {database} ({})", human_bytes(database_bytes));
    if health.embedding_model == "loaded" {
        println!("Embedding model: All-MiniLM-L6-v2 loaded");
    } else {
        println!(
            "Embedding model: not loaded ({}); search is keyword-only",
            health.reason.as_deref().unwrap_or("unknown reason")
        );
    }
    println!("Entities: {} stored", stats.counts.entities);
    println!("Relations: {} connections", stats.counts.relations);
    println!("Status: {}", health.status);
    Ok(())
}

async fn stats(client: &Client, detailed: bool) -> anyhow::Result<()> {
    let report: StatsReport = client.get_as("/api/v1/memory/stats").await?;
    if super::output::emit_json(&report) {
        return Ok(());
    }
    let StatsReport {
        stats,
        database_bytes,
    } = report;
    let counts = &stats.counts;
    println!("Entities:       {}", counts.entities);
    println!("Observations:   {}", counts.observations);
    println!("Relations:      {}", counts.relations);
    println!("Retired facts:  {} (history)", counts.retired_facts);
    println!(
        "Embeddings:     {} ({} indexed)",
        counts.embeddings, stats.indexed_vectors
    );
    println!("Storage usage:  {}", human_bytes(database_bytes));
    for (kind, label) in [
        ("semantic_search", "Semantic search"),
        ("graph_traversal", "Graph traversal"),
    ] {
        match stats.latency.get(kind) {
            None => println!("{label} latency: no queries yet"),
            Some(l) => println!(
                "{label} latency P50: {:.2}ms P99: {:.2}ms ({} samples)",
                l.p50_ms, l.p99_ms, l.samples
            ),
        }
    }
    if detailed {
        println!("Documents:      {}", counts.documents);
        println!("Health:         {}", serde_json::to_string(&stats.health)?);
    }
    Ok(())
}

async fn model_status(client: &Client) -> anyhow::Result<()> {
    let health: MemoryHealth = client.get_as("/api/v1/health/memory").await?;
    if output::emit_json(&health) {
        return Ok(());
    }
    println!("MODEL: All-MiniLM-L6-v2");
    println!("STATE: {}", health.embedding_model);
    if let Some(reason) = health.reason {
        println!("REASON: {reason}");
    }
    Ok(())
}

async fn model_stats(client: &Client) -> anyhow::Result<()> {
    let report: StatsReport = client.get_as("/api/v1/memory/stats").await?;
    let usage: Usage = client.get_as("/api/v1/memory/usage").await?;
    if output::emit_json(&json!({
        "model": "all-MiniLM-L6-v2",
        "loaded": usage.model_loaded,
        "model_bytes": usage.model_bytes,
        "query_cache": report.stats.query_cache,
    })) {
        return Ok(());
    }
    println!("MODEL: All-MiniLM-L6-v2");
    if usage.model_loaded {
        println!("MEMORY: {}", human_bytes(usage.model_bytes));
    } else {
        println!("MEMORY: not loaded");
    }
    let cache = report.stats.query_cache;
    match cache.hit_rate {
        Some(rate) => println!(
            "CACHE_HIT_RATE: {:.0}% ({} hits, {} misses, {} cached queries)",
            rate * 100.0,
            cache.hits,
            cache.misses,
            cache.entries
        ),
        None => println!("CACHE_HIT_RATE: no queries yet"),
    }
    Ok(())
}

async fn search(
    client: &Client,
    query: &str,
    scope: &str,
    limit: usize,
    at: Value,
) -> anyhow::Result<()> {
    let mut body = json!({"query": query, "scope": scope, "limit": limit});
    for key in ["as_of", "known_at"] {
        if !at[key].is_null() {
            body[key] = at[key].clone();
        }
    }
    let found: SearchResults = client.post_as("/api/v1/memory/search", &body).await?;
    if output::emit_json(&found) {
        return Ok(());
    }
    for hit in found.results {
        println!("{:.4}  {:<24} {}", hit.score, hit.entity.name, hit.matched);
    }
    Ok(())
}

async fn single_valued(client: &Client, command: SingleValuedCommand) -> anyhow::Result<()> {
    let path = |kind: &str, scope: &str| {
        format!(
            "/api/v1/memory/single-valued/{}?scope={}",
            percent_encode(kind),
            percent_encode(scope)
        )
    };
    let done: Value = match &command {
        SingleValuedCommand::List { scope } => {
            let listed: Value = client
                .get_as(&format!(
                    "/api/v1/memory/single-valued?scope={}",
                    percent_encode(scope)
                ))
                .await?;
            if !output::emit_json(&listed) {
                let names = |key: &str| {
                    listed[key]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                println!("caxton.yaml (every scope): {}", names("configured"));
                println!("declared in {scope}: {}", names("declared"));
            }
            return Ok(());
        }
        SingleValuedCommand::Add {
            relation_type,
            scope,
        } => {
            client
                .put_json(&path(relation_type, scope), &json!({}))
                .await?
        }
        SingleValuedCommand::Remove {
            relation_type,
            scope,
        } => client.delete(&path(relation_type, scope)).await?,
    };
    if !output::emit_json(&done) {
        let verb = if done["declared"] == true {
            "is"
        } else {
            "is no longer"
        };
        println!(
            "{} {verb} single-valued in {}",
            cell(&done["relation_type"]),
            cell(&done["scope"])
        );
    }
    Ok(())
}

async fn history(client: &Client, entity: &str, scope: &str) -> anyhow::Result<()> {
    let path = format!(
        "/api/v1/memory/history?scope={}&name={}",
        percent_encode(scope),
        percent_encode(entity)
    );
    let found: Value = client.get_as(&path).await?;
    if output::emit_json(&found) {
        return Ok(());
    }
    let mut table = Table::new(&["FACT", "VALID FROM", "VALID TO", "RECORDED", "RETIRED"]);
    for v in found["versions"].as_array().into_iter().flatten() {
        let or_dash = |key: &str| v[key].as_str().unwrap_or("-").to_string();
        table.row(vec![
            or_dash("fact"),
            or_dash("valid_from"),
            or_dash("valid_to"),
            or_dash("recorded_at"),
            or_dash("retired_at"),
        ]);
    }
    table.print();
    Ok(())
}

async fn export(client: &Client, format: ExportFormat, output: &Path) -> anyhow::Result<()> {
    let lines = client.get_text("/api/v1/memory/export").await?;
    let text = match format {
        ExportFormat::Jsonl => lines,
        ExportFormat::Json => {
            let records: Vec<Value> = lines
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(serde_json::from_str)
                .collect::<Result<_, _>>()
                .context("the server's export is not JSON lines")?;
            serde_json::to_string_pretty(&records)?
        }
    };
    let count = text.lines().count();
    std::fs::write(output, text).with_context(|| format!("cannot write {}", output.display()))?;
    if !super::output::emit_json(&serde_json::json!({
        "file": output, "format": format.as_str(), "lines": count,
    })) {
        println!("Exported memory to {} ({count} lines)", output.display());
    }
    Ok(())
}

async fn import(client: &Client, file: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let lines = if text.trim_start().starts_with('[') {
        let records: Vec<Value> = serde_json::from_str(&text)
            .map_err(|e| anyhow!("{} is not a JSON array of records: {e}", file.display()))?;
        records
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        text
    };
    let body = client.post_text("/api/v1/memory/import", lines).await?;
    let imported: Imported = serde_json::from_value(body)
        .context("the server's answer to an import does not have the expected shape")?;
    println!(
        "Imported {} entities and {} relations",
        imported.entities, imported.relations
    );
    Ok(())
}

async fn optimize(client: &Client, vacuum: bool, rebuild_index: bool) -> anyhow::Result<()> {
    let done: Optimized = client
        .post_as(
            "/api/v1/memory/optimize",
            &json!({"vacuum": vacuum, "rebuild_index": rebuild_index}),
        )
        .await?;
    if output::emit_json(&done) {
        return Ok(());
    }
    if let Some(index) = done.index {
        println!(
            "Vector index rebuilt: {} vectors in {} ms",
            index.rebuilt_vectors, index.elapsed_ms
        );
    }
    if let Some(vacuum) = done.vacuum {
        println!(
            "Database compaction scheduled ({} now): {}",
            human_bytes(vacuum.database_bytes),
            vacuum.detail
        );
    }
    Ok(())
}

async fn limits_check(client: &Client) -> anyhow::Result<()> {
    let c: Capacity = client.get_as("/api/v1/memory/capacity").await?;
    if output::emit_json(&c) {
        return Ok(());
    }
    println!(
        "Entity count: {} / {} ({:.0}% of recommended limit)",
        thousands(c.entities),
        thousands(c.recommended_max_entities),
        c.percent
    );
    if c.percent >= 80.0 {
        println!("WARNING: Consider external backend migration");
    }
    Ok(())
}

async fn capacity_check(client: &Client, percentage: bool) -> anyhow::Result<()> {
    let c: Capacity = client.get_as("/api/v1/memory/capacity").await?;
    if output::emit_json(&c) {
        return Ok(());
    }
    if percentage {
        println!("{}", c.percent.floor() as u64);
        return Ok(());
    }
    let note = if c.percent >= 90.0 {
        " - approaching limit"
    } else {
        ""
    };
    println!(
        "ENTITIES: {} / {} ({:.0}%{note})",
        thousands(c.entities),
        thousands(c.recommended_max_entities),
        c.percent
    );
    Ok(())
}

/// What `memory cleanup` was asked to remove.
struct CleanupWhat {
    orphans: bool,
    older_than: Option<u64>,
    retired_before: Option<String>,
    dry_run: bool,
}

async fn cleanup(client: &Client, what: CleanupWhat) -> anyhow::Result<()> {
    if !what.orphans && what.retired_before.is_none() {
        return Err(anyhow!(
            "say what to clean up: --remove-orphaned [--older-than 30d], --aggressive, or --retired-before DATE"
        ));
    }
    let mut body = json!({"remove_orphaned": what.orphans, "dry_run": what.dry_run});
    if let Some(days) = what.older_than {
        body["older_than_days"] = json!(days);
    }
    if let Some(before) = &what.retired_before {
        body["retired_before"] = json!(before);
    }
    let dry_run = what.dry_run;
    let done: Cleanup = client.post_as("/api/v1/memory/cleanup", &body).await?;
    if output::emit_json(&done) {
        return Ok(());
    }
    if let Some(dropped) = done.retired_dropped {
        println!("Dropped {dropped} retired facts from history");
    }
    if !what.orphans {
        return Ok(());
    }
    if dry_run {
        println!(
            "Would remove {} orphaned entities (no relations)",
            done.orphans
        );
    } else {
        println!("Removed {} orphaned entities (no relations)", done.removed);
    }
    for name in done.sample {
        println!("  {name}");
    }
    Ok(())
}

async fn cache_clear(client: &Client, rebuild: bool) -> anyhow::Result<()> {
    let done: CacheCleared = client
        .post_as("/api/v1/memory/cache/clear", &json!({"rebuild": rebuild}))
        .await?;
    if output::emit_json(&done) {
        return Ok(());
    }
    println!(
        "Cleared {} cached query embeddings",
        done.query_embeddings_cleared
    );
    if let Some(n) = done.rebuilt_vectors {
        println!("Vector index rebuilt: {n} vectors");
    }
    Ok(())
}

async fn usage(client: &Client, detailed: bool, percentage: bool) -> anyhow::Result<()> {
    let u: Usage = client.get_as("/api/v1/memory/usage").await?;
    if output::emit_json(&u) {
        return Ok(());
    }
    if percentage {
        return match u.percent {
            Some(p) => {
                println!("{}", p.floor() as u64);
                Ok(())
            }
            None => Err(anyhow!(
                "the server cannot measure its memory use on this platform"
            )),
        };
    }
    println!("{:<18} {:>10}", "COMPONENT", "USAGE");
    println!(
        "{:<18} {:>10}",
        "Embedding model",
        human_bytes(u.model_bytes)
    );
    println!(
        "{:<18} {:>10}",
        "Database file",
        human_bytes(u.database_bytes)
    );
    println!("{:<18} {:>10}", "Vector index", human_bytes(u.index_bytes));
    println!(
        "{:<18} {:>10}",
        "Query cache",
        human_bytes(u.query_cache_bytes)
    );
    if let (Some(p), Some(resident)) = (u.percent, u.resident_bytes) {
        println!(
            "Process resident: {} of {} budget ({p:.0}%)",
            human_bytes(resident),
            human_bytes(u.budget_bytes)
        );
    }
    if detailed {
        println!("{}", serde_json::to_string_pretty(&u)?);
    }
    Ok(())
}

async fn diagnose(client: &Client, show_slow_queries: bool) -> anyhow::Result<()> {
    let d: Diagnosis = client.get_as("/api/v1/memory/diagnose").await?;
    if output::emit_json(&d) {
        return Ok(());
    }
    println!(
        "{:<18} {:>12} {:>10} {:>10}",
        "QUERY-TYPE", "AVG-LATENCY", "P99", "COUNT"
    );
    for (kind, op) in &d.operations {
        println!(
            "{kind:<18} {:>10.2}ms {:>8.2}ms {:>10}",
            op.avg_ms,
            op.p99_ms,
            thousands(op.count)
        );
    }
    if show_slow_queries {
        println!(
            "\nSlow queries (over {} ms): {}",
            d.slow_query_threshold_ms,
            d.slow_queries.len()
        );
        for q in d.slow_queries {
            println!("{:>8.1}ms  {:<16} {}  {}", q.ms, q.kind, q.at, q.query);
        }
    }
    Ok(())
}

/// 85000 → "85,000", as the runbook prints counts.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Runs a model pull on a blocking thread (it does blocking I/O), drawing
/// its progress bar on stderr, redrawn once per percent (stderr may be a
/// log file).
pub(super) async fn pull_with_progress<T, E>(
    pull: impl FnOnce(&mut dyn FnMut(caxton_models::PullProgress)) -> Result<T, E> + Send + 'static,
) -> anyhow::Result<T>
where
    T: Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let result = tokio::task::spawn_blocking(move || {
        let mut drew = false;
        let mut last_percent = u64::MAX;
        let result = pull(&mut |p| {
            drew = true;
            let percent = p
                .total
                .map_or(p.downloaded >> 20, |t| p.downloaded * 100 / t.max(1));
            if percent != last_percent {
                last_percent = percent;
                eprint!("\r{}", progress_line(&p));
            }
        });
        if drew {
            eprintln!();
        }
        result
    })
    .await
    .context("the download task failed")?;
    Ok(result?)
}

/// One redrawn line of a download's progress bar.
fn progress_line(p: &caxton_models::PullProgress) -> String {
    match p.total {
        Some(total) if total > 0 => {
            let filled = ((p.downloaded * 30 / total) as usize).min(30);
            format!(
                "[{}{}] {:>3}% {:.1}/{:.1} MB from {}",
                "#".repeat(filled),
                " ".repeat(30 - filled),
                p.downloaded * 100 / total,
                p.downloaded as f64 / 1e6,
                total as f64 / 1e6,
                p.source
            )
        }
        _ => format!("{:.1} MB from {}", p.downloaded as f64 / 1e6, p.source),
    }
}

/// Downloads the model (blocking I/O on its own thread), drawing a progress
/// bar on stderr, then asks a running server to load it.
async fn pull(client: &Client, cache_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let cache_dir = cache_dir.unwrap_or_else(caxton_models::default_cache_dir);
    let dir = cache_dir.clone();
    let model_dir = pull_with_progress(move |progress| caxton_models::pull(&dir, progress)).await?;
    println!("Embedding model ready in {}", model_dir.display());
    let loaded = client
        .post_as::<ModelLoaded>("/api/v1/memory/model/load", &json!({}))
        .await;
    match loaded {
        Ok(answer) if answer.changed => println!("The running server loaded it."),
        Ok(_) => println!("The running server already has it loaded."),
        Err(e) => println!("(No running server took it: {e:#}. It loads at the next start.)"),
    }
    Ok(())
}
