//! `caxton backup`, `caxton restore` and `caxton storage restore`.
//!
//! A backup is taken by the running server (`GET /api/v1/backup`, a
//! consistent snapshot while it serves); when no server answers, the CLI
//! opens the data directory itself. A restore is done by the CLI, offline,
//! and refuses a data directory a running server holds unless forced.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};

use super::client::Client;
use crate::backup::{self, RestoreTargets, Sources};
use crate::config::Config;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub action: Option<BackupAction>,
    /// Back up the embedded data (the only kind there is; accepted for the
    /// runbook's scripts).
    #[arg(long)]
    pub embedded: bool,
    /// Archive to write; default: backup.directory/caxton-DATE-TIME.tar.gz.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Accepted for the runbook's scripts: backups are always gzip-compressed.
    #[arg(long)]
    pub compress: bool,
}

#[derive(Subcommand)]
pub enum BackupAction {
    /// Check a backup fully: every file against its checksum, and the
    /// database opened and checked.
    Verify {
        /// The backup archive (.tar.gz).
        file: PathBuf,
        #[command(flatten)]
        cap: ExpansionCap,
    },
}

/// How far a backup may expand when it is read.
#[derive(Args, Clone, Copy)]
pub struct ExpansionCap {
    /// Refuse a backup whose files add up to more than this many bytes
    /// unpacked (default 16 GiB; any file but the database is capped at
    /// 16 MiB): a small hostile archive cannot fill the disk.
    #[arg(long, value_name = "BYTES")]
    pub max_bytes: Option<u64>,
}

impl ExpansionCap {
    fn limits(self) -> backup::Limits {
        let mut limits = backup::Limits::default();
        if let Some(max) = self.max_bytes {
            limits.max_bytes = max;
        }
        limits
    }
}

#[derive(Args)]
pub struct RestoreArgs {
    /// The backup to restore.
    pub file: Option<PathBuf>,
    /// The backup to restore (the runbook's spelling).
    #[arg(long, conflicts_with = "file")]
    pub backup: Option<PathBuf>,
    /// Restore the newest backup in backup.directory.
    #[arg(long, conflicts_with_all = ["file", "backup"])]
    pub latest_backup: bool,
    /// Unpack under this directory: DIR/data, DIR/agents, DIR/caxton.yaml.
    /// Default: the configured data and agents directories (the
    /// configuration file is left alone).
    #[arg(long)]
    pub target: Option<PathBuf>,
    /// Accepted: a backup is always verified before anything is replaced.
    #[arg(long)]
    pub verify: bool,
    /// Replace the files even though a running server holds them.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub cap: ExpansionCap,
}

/// The configuration the CLI runs beside (CAXTON_CONFIG, else ./caxton.yaml).
fn local_config() -> anyhow::Result<(Config, Option<PathBuf>)> {
    let path = std::env::var_os("CAXTON_CONFIG")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("caxton.yaml")).filter(|p| p.is_file()));
    let mut config = Config::load(path.as_deref())?;
    if let Some(dir) = std::env::var_os("CAXTON_DATA_DIR").filter(|d| !d.is_empty()) {
        config.data_dir = Some(PathBuf::from(dir));
    }
    Ok((config, path))
}

fn default_output(config: &Config) -> PathBuf {
    let stamp = crate::clock::compact_stamp();
    config
        .backup
        .directory(&config.data_dir())
        .join(format!("caxton-{stamp}.tar.gz"))
}

pub async fn backup(client: &Client, args: BackupArgs) -> anyhow::Result<ExitCode> {
    if let Some(BackupAction::Verify { file, cap }) = args.action {
        return verify(&file, cap.limits()).await;
    }
    let (config, config_path) = local_config()?;
    let default = args.output.is_none();
    let output = args.output.unwrap_or_else(|| default_output(&config));
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match client.download("/api/v1/backup", &output, progress).await {
        Ok(bytes) => {
            if !super::output::emit_json(&serde_json::json!({
                "file": output, "bytes": bytes, "by": "server",
            })) {
                println!(
                    "Backup written by the running server to {} ({:.1} MB)",
                    output.display(),
                    bytes as f64 / 1e6
                );
            }
        }
        Err(e) if client.unreachable(&e) => {
            let data_dir = config.data_dir();
            let sources = Sources {
                data_dir: data_dir.clone(),
                agents_dir: Some(config.agents.dir.clone()),
                config: config_path,
                // The registry lives in NATS, which only a running node reads.
                cluster_dir: None,
            };
            let out = output.clone();
            let manifest = tokio::task::spawn_blocking(move || {
                let storage = crate::storage::Storage::open(&data_dir).with_context(|| {
                    format!(
                        "no server answered and the database in {} cannot be opened",
                        data_dir.display()
                    )
                })?;
                backup::create(&storage, &sources, &out).map_err(anyhow::Error::from)
            })
            .await??;
            if !super::output::emit_json(&serde_json::json!({
                "file": output, "files": manifest.files.len(), "by": "offline",
            })) {
                println!(
                    "Backup of {} (no server running) written to {} ({} files)",
                    config.data_dir().display(),
                    output.display(),
                    manifest.files.len()
                );
            }
        }
        Err(e) => return Err(e),
    }
    if default {
        prune(
            &config.backup.directory(&config.data_dir()),
            config.backup.retention,
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Keeps the newest `keep` backups in `dir` (0 keeps all).
fn prune(dir: &Path, keep: usize) {
    if keep == 0 {
        return;
    }
    let mut backups: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("caxton-") && name.ends_with(".tar.gz")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    backups.sort();
    let excess = backups.len().saturating_sub(keep);
    for (_, path) in backups.into_iter().take(excess) {
        match std::fs::remove_file(&path) {
            Ok(()) => eprintln!("Removed old backup {} (backup.retention)", path.display()),
            Err(e) => eprintln!("warning: cannot remove {}: {e}", path.display()),
        }
    }
}

async fn verify(file: &Path, limits: backup::Limits) -> anyhow::Result<ExitCode> {
    let archive = file.to_path_buf();
    let result = tokio::task::spawn_blocking(move || {
        let scratch = tempfile::tempdir()?;
        backup::verify(&archive, scratch.path(), &limits).map_err(anyhow::Error::from)
    })
    .await?;
    match result {
        Ok(verified) => {
            if super::output::emit_json(&serde_json::json!({
                "file": file,
                "ok": true,
                "files": verified.manifest.files.len(),
                "bytes": verified.total_bytes,
                "caxton_version": verified.manifest.caxton_version,
                "created_at": verified.manifest.created_at,
            })) {
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "✓ {}: {} files, {:.1} MB, checksums match, database intact (caxton {}, {})",
                file.display(),
                verified.manifest.files.len(),
                verified.total_bytes as f64 / 1e6,
                verified.manifest.caxton_version,
                verified.manifest.created_at
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if !super::output::emit_json(&serde_json::json!({
                "file": file, "ok": false, "error": e.to_string(),
            })) {
                println!("✗ {e}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let (config, config_path) = local_config()?;
    let archive = match (args.file.or(args.backup), args.latest_backup) {
        (Some(file), _) => file,
        (None, true) => backup::latest_in(&config.backup.directory(&config.data_dir()))?,
        (None, false) => {
            bail!("name the backup: `caxton restore FILE`, --backup FILE or --latest-backup")
        }
    };
    let targets = match &args.target {
        Some(root) => RestoreTargets {
            data_dir: root.join("data"),
            agents_dir: root.join("agents"),
            config: Some(root.join("caxton.yaml")),
            force: args.force,
            limits: args.cap.limits(),
        },
        None => RestoreTargets {
            data_dir: config.data_dir(),
            agents_dir: config.agents.dir.clone(),
            config: None,
            force: args.force,
            limits: args.cap.limits(),
        },
    };
    println!("Restoring {} …", archive.display());
    let shown = targets.clone();
    let restored = tokio::task::spawn_blocking(move || backup::restore(&archive, &targets))
        .await?
        .map_err(|e| anyhow!("{e}"))?;
    println!(
        "✓ restored {} files (backup of {}, caxton {}) into {} and {}",
        restored.files,
        restored.verified.manifest.created_at,
        restored.verified.manifest.caxton_version,
        shown.data_dir.display(),
        shown.agents_dir.display()
    );
    if let Some(previous) = restored.previous_database {
        println!(
            "  the database it replaced is kept as {}",
            previous.display()
        );
    }
    // Only what was written is reported as written.
    match (&restored.config_written, &shown.config, config_path) {
        (Some(written), _, _) => println!("  configuration written to {}", written.display()),
        (None, Some(target), _) if target.exists() => println!(
            "  the backup holds no configuration; {} was left as it is",
            target.display()
        ),
        (None, Some(_), _) => println!("  the backup holds no configuration"),
        (None, None, Some(current)) => println!("  {} was left as it is", current.display()),
        (None, None, None) => {}
    }
    for leftover in &restored.leftovers {
        eprintln!(
            "warning: {} (a replaced file) could not be deleted",
            leftover.display()
        );
    }
    println!("  the vector index is rebuilt at the next start; then `caxton agents list`");
    Ok(ExitCode::SUCCESS)
}
