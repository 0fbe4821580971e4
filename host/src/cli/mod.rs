//! The `caxton` command line. `start` runs the server; every other command
//! talks to a running server over its REST API (address from `--server`,
//! `CAXTON_SERVER`, the address the data directory's server recorded when
//! it listens on this machine, or `http://127.0.0.1:8080`).

mod agents;
mod backup;
mod budgets;
mod client;
mod cluster;
mod config_agents;
mod conversations;
mod debug;
mod diagnose;
mod init;
mod llm;
mod mcp;
mod memory;
mod outbox;
mod output;
mod storage;
mod tokens;
mod tools;
mod trace;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::{self, StartOptions};
use client::Client;

#[derive(Parser)]
#[command(
    name = "caxton",
    version,
    about = "A multi-agent server: WASM and config agents with embedded memory"
)]
struct Cli {
    /// Address of the running server, for commands that talk to it.
    /// Unset: the address the server of the data directory recorded at
    /// start (`server.addr`) when it is on this machine, else
    /// http://127.0.0.1:8080.
    #[arg(long, global = true, env = "CAXTON_SERVER")]
    server: Option<String>,
    /// Bearer token for the server. Unset: the admin token file in the
    /// data directory (`CAXTON_DATA_DIR`, else the configuration's
    /// `data_dir`, else ./data), when this user can read it and `--server`
    /// is the server of that data directory (the address it recorded at
    /// start, in `server.addr`).
    #[arg(long, global = true, env = "CAXTON_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the data as JSON (one document) instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Give up on the server after this long (`30s`, `2m`, or seconds), so
    /// a stuck server never hangs a command. Unset: 30 s; for a message,
    /// the server's wait for the reply plus 10 s; for deploys, imports,
    /// storage work and tool calls, 10 minutes.
    #[arg(
        long,
        global = true,
        env = "CAXTON_REQUEST_TIMEOUT",
        value_parser = parse_request_timeout
    )]
    request_timeout: Option<std::time::Duration>,
    #[command(subcommand)]
    command: Command,
}

/// Where the server is and who we are to it.
struct Target {
    server: String,
    token: Option<String>,
    /// `--request-timeout`.
    timeout: Option<std::time::Duration>,
}

/// The data directory the CLI looks in for the admin token and the
/// server's address: `CAXTON_DATA_DIR`, else the configuration's
/// `data_dir`, else ./data.
fn data_dir() -> PathBuf {
    match std::env::var_os("CAXTON_DATA_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let config = std::env::var_os("CAXTON_CONFIG").map(PathBuf::from);
            crate::config::Config::load(config.as_deref())
                .map(|c| c.data_dir())
                .unwrap_or_else(|_| PathBuf::from("data"))
        }
    }
}

/// Where the CLI talks when neither `--server` nor `CAXTON_SERVER` says:
/// the server of the data directory (the first address it recorded at
/// start), so `caxton start --port 9000` and then `caxton agents list`
/// find each other. Only an address on this machine is taken (a
/// loopback or unspecified host): a `server.addr` planted in a directory
/// the CLI happens to run in must not send commands elsewhere.
fn default_server(data_dir: &std::path::Path) -> String {
    const DEFAULT: &str = "http://127.0.0.1:8080";
    let recorded = std::fs::read_to_string(data_dir.join(crate::auth::tokens::SERVER_ADDRESS_FILE))
        .unwrap_or_default();
    let Some(first) = recorded.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return DEFAULT.to_string();
    };
    let local = reqwest::Url::parse(first).ok().is_some_and(|url| {
        matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some_and(|host| {
                let bare = host.trim_start_matches('[').trim_end_matches(']');
                match bare.parse::<std::net::IpAddr>() {
                    Ok(ip) => ip.is_loopback() || ip.is_unspecified(),
                    Err(_) => bare.eq_ignore_ascii_case("localhost"),
                }
            })
    });
    if local {
        first.to_string()
    } else {
        DEFAULT.to_string()
    }
}

impl Target {
    /// The API client, with the token found as `--token` describes.
    fn client(&self) -> anyhow::Result<Client> {
        let data_dir = data_dir();
        let found = crate::auth::tokens::discover(self.token.as_deref(), &data_dir, &self.server);
        if let Some(why) = &found.withheld {
            eprintln!("note: {why}");
        }
        Client::new(&self.server, found.token.as_deref(), self.timeout)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the server in the foreground.
    Start {
        /// Port for the REST API (0 picks a free one).
        #[arg(long, env = "CAXTON_PORT")]
        port: Option<u16>,
        /// Interface to listen on.
        #[arg(long, env = "CAXTON_HOST")]
        host: Option<String>,
        /// Directory for the database and caches (default ./data).
        #[arg(long, env = "CAXTON_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Configuration file (default ./caxton.yaml when present).
        #[arg(long, env = "CAXTON_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Create the data and agents directories, a commented caxton.yaml
    /// with every key at its default, and the admin token. Never
    /// overwrites anything.
    Init {
        /// The data directory to create.
        #[arg(long, env = "CAXTON_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// The agents directory to create.
        #[arg(long, default_value = "agents")]
        agents_dir: PathBuf,
        /// Where to write the configuration.
        #[arg(long, default_value = "caxton.yaml")]
        config: PathBuf,
    },
    /// Print the version.
    Version,
    /// Print a shell completion script:
    /// `caxton completions bash > /etc/bash_completion.d/caxton`.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Ask the running server whether it is healthy.
    Status,
    /// Stop the running server: gracefully (in-flight requests finish) by
    /// default, or at once.
    Shutdown {
        /// In-flight requests finish first (the default).
        #[arg(long, conflicts_with = "immediate")]
        graceful: bool,
        /// Exit now; every acknowledged write is already on disk.
        #[arg(long)]
        immediate: bool,
        /// With a graceful shutdown, exit anyway after this long (`30s`,
        /// `2m`, or seconds).
        #[arg(long, conflicts_with = "immediate")]
        timeout: Option<String>,
        /// Write a debug dump (`caxton debug dump`) before stopping.
        #[arg(long, requires = "output")]
        dump_state: bool,
        /// Where --dump-state writes the dump.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Diagnostics: `debug dump --embedded --output FILE`.
    #[command(subcommand)]
    Debug(debug::DebugCommand),
    /// Deploy, list, inspect and message agents.
    #[command(subcommand)]
    Agents(agents::AgentsCommand),
    /// Inspect, search, export and import embedded memory.
    #[command(subcommand)]
    Memory(memory::MemoryCommand),
    /// The embedded local LLM: pull, status, benchmark.
    #[command(subcommand)]
    Llm(llm::LlmCommand),
    /// The tools agents can call.
    #[command(subcommand)]
    Tools(tools::ToolsCommand),
    /// Model Context Protocol: `mcp serve` serves Caxton's memory and
    /// agents over stdio (the same tools as `/mcp`).
    #[command(subcommand)]
    Mcp(mcp::McpCommand),
    /// Reload a config agent from its file (`--agent NAME`), or all of them.
    Reload {
        /// The config agent's name or id.
        #[arg(long, required_unless_present = "all_config")]
        agent: Option<String>,
        /// Reload every config agent.
        #[arg(long)]
        all_config: bool,
        /// With --all-config: reload nothing unless every file is valid.
        #[arg(long)]
        validate_first: bool,
    },
    /// A conversation as a tree of message hops, LLM and tool calls with
    /// timings (`--agent A --conversation-id C`), or an agent's recent
    /// conversations (`--agent A`).
    Trace(trace::TraceArgs),
    /// The server's conversations: list, show (every message), cancel.
    #[command(subcommand)]
    Conversations(conversations::ConversationsCommand),
    /// Send one message to every agent of a capability and print each
    /// one's answer (exit code 1 when none answered).
    Broadcast(conversations::BroadcastArgs),
    /// Run a contract net: call for proposals to every agent of a
    /// capability, award the best bid, print its result (exit code 1 when
    /// none came).
    ContractNet(conversations::ContractNetArgs),
    /// Choose the winner of your contract net run with `--award
    /// initiator`: the first agent named is accepted (the next if it
    /// fails), the others rejected; prints its result.
    Award(conversations::AwardArgs),
    /// Replay a recorded conversation against the agent as it is now,
    /// model calls answered from the recording; shows where it diverges.
    Replay(conversations::ReplayArgs),
    /// Start a new conversation from a recorded one's history up to
    /// message N, with a different message N answered live.
    Fork(conversations::ForkArgs),
    /// Queue a message without waiting for a reply (durable: delivered
    /// even if the server restarts).
    Send(outbox::SendArgs),
    /// Messages that failed every try: list, replay, discard (admin).
    #[command(subcommand)]
    DeadLetters(outbox::DeadLettersCommand),
    /// Topics: list, publish, subscribe and unsubscribe agents.
    #[command(subcommand)]
    Topics(outbox::TopicsCommand),
    /// Several nodes as one system: `cluster status`, `drain`, `resume`.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// LLM budgets: `budgets list`, `show SUBJECT`, `set SUBJECT`,
    /// `reset SUBJECT`.
    #[command(subcommand)]
    Budgets(budgets::BudgetsCommand),
    /// Back up the data directory (a consistent snapshot while the server
    /// serves), or `backup verify FILE`.
    Backup(backup::BackupArgs),
    /// Restore a backup (offline: stop the server first).
    Restore(backup::RestoreArgs),
    /// The database: `storage restore --backup FILE`.
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Bearer tokens: create, list, revoke.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Check configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum StorageCommand {
    /// Restore the database (and agents) from a backup.
    Restore(backup::RestoreArgs),
    /// Check the database: records decode and point at what exists
    /// (`--full`, the default), counts only (`--quick`), or every keyword
    /// posting plus redb's own integrity check when no server runs
    /// (`--deep`). Exit code 1 when a check fails.
    Verify {
        /// Only the database's own structure (fast).
        #[arg(long, conflicts_with_all = ["full", "deep"])]
        quick: bool,
        /// Every record decoded and cross-checked (the default).
        #[arg(long, conflicts_with = "deep")]
        full: bool,
        /// Also redb's own integrity check (only with no server running).
        #[arg(long, visible_alias = "comprehensive")]
        deep: bool,
        /// When a check fails, run `storage repair --auto` and check again.
        #[arg(long)]
        repair: bool,
        /// Accepted from the runbook: memory lives in the redb database of
        /// the data directory, not in SQLite.
        #[arg(long)]
        sqlite_path: Option<PathBuf>,
    },
    /// How much of the data has problems: `--corruption-level` prints
    /// `CORRUPTION_LEVEL: NONE|LOW|MEDIUM|HIGH (N% …)` and the failing checks.
    Diagnose {
        /// Print the CORRUPTION_LEVEL line and the failing checks.
        #[arg(long)]
        corruption_level: bool,
    },
    /// The share of records with a problem, as a whole percent alone (for
    /// scripts: `if [ $(caxton storage corruption-level) -lt 25 ]`).
    CorruptionLevel,
    /// Where the database's bytes go: per table (entries, bytes,
    /// fragmentation) and for the file (free space a compaction returns).
    Analyze {
        /// Accepted from the runbook; every table (redb keeps its indexes
        /// as tables) is always listed.
        #[arg(long)]
        show_indexes: bool,
        /// Accepted from the runbook; fragmentation is always shown.
        #[arg(long)]
        show_fragmentation: bool,
    },
    /// Repair what dangles or is derived (relations to missing entities,
    /// orphaned documents, embeddings and postings, the reverse index, the
    /// vector index) and say what only a backup can fix. Exit code 1 when
    /// something is left unrepaired.
    Repair {
        /// Repair (the default); `--emergency` and `--in-place` are the
        /// runbook's names for the same.
        #[arg(long, visible_aliases = ["emergency", "in-place"])]
        auto: bool,
        /// Change nothing; exit code 0 when everything found is repairable.
        #[arg(long, conflicts_with = "dry_run")]
        can_repair: bool,
        /// List what would be repaired, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Accepted from the runbook: memory lives in the redb database.
        #[arg(long)]
        sqlite_path: Option<PathBuf>,
    },
    /// Exit code 0 when every problem found is repairable (`storage repair`).
    CanRepair,
    /// Compact the database file (offline now; a running server schedules
    /// it for its next start).
    Compact,
    /// Safe mode: the server answers reads and refuses writes (kept across
    /// restarts until disabled).
    SafeMode {
        /// Turn safe mode on.
        #[arg(long, conflicts_with = "disable", required_unless_present = "disable")]
        enable: bool,
        /// Turn safe mode off.
        #[arg(long)]
        disable: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate caxton.yaml and every agent definition in a directory.
    Verify {
        /// The agents directory whose definitions are checked too.
        #[arg(long, default_value = "agents")]
        agents_dir: PathBuf,
        /// Configuration file (default ./caxton.yaml when present).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// The CLI. Call [`caxton_models::fix_thread_count`] before it (see
/// `main.rs`).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A reader that stops early (`caxton agents list | head`) ends the
    // command quietly, as with any Unix tool, instead of a panic in
    // `println!`. Not for `start`: the server outlives clients that leave.
    #[cfg(unix)]
    if !matches!(cli.command, Command::Start { .. }) {
        // SAFETY: no other thread exists yet; this restores the default
        // action that Rust's runtime replaced with "ignore".
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            // Once `start` has installed the logger, the reason the server
            // stopped belongs in the log (and logging.file) as well.
            if tracing::dispatcher::has_been_set() {
                tracing::error!("{e:#}");
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    output::set_json(cli.json);
    let target = Target {
        server: cli.server.unwrap_or_else(|| default_server(&data_dir())),
        token: cli.token,
        timeout: cli.request_timeout,
    };
    match cli.command {
        Command::Start {
            port,
            host,
            data_dir,
            config,
        } => {
            app::run(StartOptions {
                config,
                host,
                port,
                data_dir,
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Init {
            data_dir,
            agents_dir,
            config,
        } => init::run(data_dir, agents_dir, config),
        Command::Version => {
            if !output::emit_json(&serde_json::json!({ "version": env!("CARGO_PKG_VERSION") })) {
                println!("caxton {}", env!("CARGO_PKG_VERSION"));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(shell, &mut Cli::command(), "caxton", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => {
            let client = target.client()?;
            let health = client.get("/api/v1/health").await?;
            if !output::emit_json(&health) {
                println!(
                    "SERVER: {}    BACKEND: {}    AGENTS: {}    ({})",
                    health["status"].as_str().unwrap_or("unknown"),
                    health["memory_backend"].as_str().unwrap_or("unknown"),
                    health["agents"],
                    target.server
                );
                if health["safe_mode"] == true {
                    println!(
                        "Status: SAFE_MODE (read-only): reads are answered, writes refused (`caxton storage safe-mode --disable` ends it)"
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Shutdown {
            graceful: _,
            immediate,
            timeout,
            dump_state,
            output,
        } => {
            let client = target.client()?;
            if let (true, Some(output)) = (dump_state, output.as_deref()) {
                println!("{}", debug::dump(&client, output).await?);
            }
            let timeout_secs = timeout.as_deref().map(parse_duration_secs).transpose()?;
            let mode = if immediate { "immediate" } else { "graceful" };
            let answer = client
                .post_json(
                    "/api/v1/shutdown",
                    &serde_json::json!({ "mode": mode, "timeout_secs": timeout_secs }),
                )
                .await?;
            if output::emit_json(&answer) {
                return Ok(ExitCode::SUCCESS);
            }
            match (immediate, timeout_secs) {
                (true, _) => println!("Immediate shutdown requested: the server exits now"),
                (false, Some(secs)) => println!(
                    "Graceful shutdown requested: in-flight requests get up to {secs}s, then the server exits"
                ),
                (false, None) => println!(
                    "Graceful shutdown requested: in-flight requests finish, then the server exits"
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Agents(command) => {
            let client = target.client()?;
            agents::run(&client, command).await
        }
        Command::Memory(command) => {
            let client = target.client()?;
            memory::run(&client, command).await
        }
        Command::Llm(command) => llm::run(command).await,
        Command::Tools(command) => tools::run(&target.client()?, command).await,
        Command::Mcp(command) => mcp::run(target.client()?, command).await,
        Command::Tokens(command) => tokens::run(&target.client()?, command).await,
        Command::Conversations(command) => conversations::run(&target.client()?, command).await,
        Command::Broadcast(args) => conversations::broadcast(&target.client()?, args).await,
        Command::ContractNet(args) => conversations::contract_net(&target.client()?, args).await,
        Command::Award(args) => conversations::award(&target.client()?, args).await,
        Command::Replay(args) => conversations::replay(&target.client()?, args).await,
        Command::Fork(args) => conversations::fork(&target.client()?, args).await,
        Command::Send(args) => outbox::send(&target.client()?, args).await,
        Command::DeadLetters(command) => outbox::dead_letters(&target.client()?, command).await,
        Command::Topics(command) => outbox::topics(&target.client()?, command).await,
        Command::Cluster(command) => cluster::run(&target.client()?, command).await,
        Command::Budgets(command) => budgets::run(&target.client()?, command).await,
        Command::Reload {
            agent,
            all_config,
            validate_first,
        } => {
            agents::run(
                &target.client()?,
                agents::AgentsCommand::Reload {
                    name: agent,
                    all_config,
                    validate_first,
                    gradual: false,
                },
            )
            .await
        }
        Command::Trace(args) => trace::run(&target.client()?, args).await,
        Command::Debug(command) => debug::run(&target.client()?, command).await,
        Command::Backup(args) => backup::backup(&target.client()?, args).await,
        Command::Restore(args) | Command::Storage(StorageCommand::Restore(args)) => {
            backup::restore(args).await
        }
        Command::Storage(StorageCommand::Diagnose {
            corruption_level: _,
        }) => storage::corruption(&target.client()?, false).await,
        Command::Storage(StorageCommand::CorruptionLevel) => {
            storage::corruption(&target.client()?, true).await
        }
        Command::Storage(StorageCommand::Verify {
            quick,
            full: _,
            deep,
            repair,
            sqlite_path,
        }) => {
            let level = match (quick, deep) {
                (true, _) => crate::storage_check::Level::Quick,
                (_, true) => crate::storage_check::Level::Deep,
                _ => crate::storage_check::Level::Full,
            };
            if let Some(path) = sqlite_path {
                println!(
                    "note: --sqlite-path {} is not used; memory lives in the redb database of the data directory",
                    path.display()
                );
            }
            let client = target.client()?;
            let verified = storage::verify(&client, level).await?;
            if !repair || verified == ExitCode::SUCCESS {
                return Ok(verified);
            }
            eprintln!("\nrepairing:");
            storage::repair(&client, storage::RepairMode::Apply).await?;
            eprintln!("\nchecking again:");
            storage::verify(&client, level).await
        }
        Command::Storage(StorageCommand::Analyze { .. }) => {
            storage::analyze(&target.client()?, output::json()).await
        }
        Command::Storage(StorageCommand::Repair {
            auto: _,
            can_repair,
            dry_run,
            sqlite_path,
        }) => {
            if let Some(path) = sqlite_path {
                println!(
                    "note: --sqlite-path {} is not used; memory lives in the redb database of the data directory",
                    path.display()
                );
            }
            let mode = match (can_repair, dry_run) {
                (true, _) => storage::RepairMode::CanRepair,
                (_, true) => storage::RepairMode::DryRun,
                _ => storage::RepairMode::Apply,
            };
            storage::repair(&target.client()?, mode).await
        }
        Command::Storage(StorageCommand::CanRepair) => {
            storage::repair(&target.client()?, storage::RepairMode::CanRepair).await
        }
        Command::Storage(StorageCommand::Compact) => storage::compact(&target.client()?).await,
        Command::Storage(StorageCommand::SafeMode { enable, disable: _ }) => {
            let client = target.client()?;
            let answer = client
                .post_json(
                    "/api/v1/safe-mode",
                    &serde_json::json!({ "enabled": enable }),
                )
                .await?;
            if output::emit_json(&answer) {
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{}",
                if enable {
                    "SAFE MODE on: reads are answered, writes refused (until `caxton storage safe-mode --disable`)"
                } else {
                    "Safe mode off: writes are accepted again"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Verify { agents_dir, config }) => {
            match crate::config::Config::load(config.as_deref()) {
                // With --json the files' report is the document; the
                // configuration's notes go to stderr.
                Ok(config) if output::json() => {
                    for note in config.notes() {
                        eprintln!("note: {note}");
                    }
                }
                Ok(config) => {
                    println!("✓ configuration: valid");
                    for note in config.notes() {
                        println!("  note: {note}");
                    }
                }
                Err(e) => {
                    if !output::emit_json(&serde_json::json!({
                        "config": { "valid": false, "error": e.to_string() }
                    })) {
                        println!("✗ configuration: {e}");
                    }
                    return Ok(ExitCode::FAILURE);
                }
            }
            let files = config_agents::definition_files(&agents_dir)?;
            // A fresh `caxton init` has no agents yet: nothing wrong.
            if files.is_empty() {
                if !output::emit_json(&serde_json::json!({ "files": [] })) {
                    println!("✓ agents: no definitions in {} yet", agents_dir.display());
                }
                return Ok(ExitCode::SUCCESS);
            }
            let client = target.client()?;
            config_agents::validate_files(&client, &files).await
        }
    }
}

/// `30s`, `2m`, `1h` or plain seconds.
/// [`parse_duration_secs`] for clap's `value_parser`.
/// `--request-timeout`: a duration, and not zero (no answer could come).
fn parse_request_timeout(text: &str) -> Result<std::time::Duration, String> {
    match parse_duration_secs(text).map_err(|e| e.to_string())? {
        0 => Err("the request timeout must be at least 1s".into()),
        secs => Ok(std::time::Duration::from_secs(secs)),
    }
}

fn parse_duration_secs_arg(text: &str) -> Result<u64, String> {
    parse_duration_secs(text).map_err(|e| e.to_string())
}

pub(super) fn parse_duration_secs(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: u64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("`{text}` is not a duration; write it like 30s, 2m or 1h"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        other => anyhow::bail!("unknown unit `{other}` in `{text}`; use s, m or h"),
    };
    Ok(value.saturating_mul(scale))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every argument of every command says what it is: an undocumented
    /// one shows as a blank line in `--help`.
    #[test]
    fn every_argument_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") || arg.is_hide_set() {
                    continue;
                }
                let documented = arg
                    .get_help()
                    .or(arg.get_long_help())
                    .is_some_and(|h| !h.to_string().trim().is_empty());
                if !documented {
                    missing.push(format!("{path} --{id}"));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "caxton", &mut missing);
        assert!(
            missing.is_empty(),
            "arguments without help:\n{}",
            missing.join("\n")
        );
    }
}
