//! `caxton init`: a data directory, an agents directory, a commented
//! `caxton.yaml` with every key at its default, and the admin token.
//! Idempotent: what exists is kept, never overwritten.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::auth::tokens::TokenStore;
use crate::storage::Storage;

/// The configuration `init` writes, `{data_dir}` and `{agents_dir}` filled
/// in. Every key is at its default; optional keys are commented out. A test
/// keeps it equal to `Config::default()`.
const TEMPLATE: &str = r#"# caxton.yaml — every key with its default. Flags and CAXTON_* variables
# override what is written here. `caxton config verify` checks this file.

server:
  host: 127.0.0.1                # 0.0.0.0 to listen beyond this machine (tokens then required)
  port: 8080
  max_body_bytes: 67108864       # uploads and imports (component uploads are base64 JSON)
  max_request_bytes: 4194304     # every other request body
  max_concurrent_requests: 512   # more are answered 503 at once
  max_connections: 1024          # when all are taken an idle one is closed; 1/16 kept for the operator
  max_connections_per_peer: 128  # per remote address or other local account
  header_read_timeout_secs: 30   # to send a request's headers; also ends idle keep-alive
  body_read_timeout_secs: 60     # to send a request's body (408 after)
  # tls: { cert: /etc/caxton/cert.pem, key: /etc/caxton/key.pem }
  # public_url: https://caxton.example.com   # what A2A agent cards name; unset: cards only for loopback clients

auth:
  required: false                # true: tokens even on a loopback bind
  metrics_public: false          # true: /metrics without a token beyond loopback

data_dir: {data_dir}             # database, caches, the admin token

runtime:
  default_limits: { max_memory_bytes: 67108864, max_fuel: 1000000000, max_execution_time_ms: 30000 }
  max_limits: { max_memory_bytes: 1073741824, max_fuel: 100000000000, max_execution_time_ms: 300000 }
  mailbox_capacity: 256          # queued messages per agent before senders get 503
  failure_threshold: 5           # consecutive failures before an agent shows `failed`
  max_agents: 800                # agents running at once (the pool has 1,000 slots)
  max_tools: 200                 # tool components deployed at once

memory:
  semantic_search: true          # false: keyword search only, no model download
  auto_pull: true                # download the embedding model at first start
  # model_cache_dir: ~/.cache/caxton/models
  index_save_interval_secs: 60
  slow_query_ms: 50
  recommended_max_entities: 100000
  memory_budget_bytes: 2147483648
  database_cache_mb: 64

llm:
  # provider: local              # local, openai, anthropic or scripted; unset: the one configured, else local
  timeout_secs: 120
  max_retries: 3                 # on 429, 5xx, overloaded, lost connections (Retry-After honoured)
  initial_backoff_ms: 500        # doubled per retry, with jitter
  max_backoff_ms: 20000
  local:
    enabled: true
    # model_path: /models/model.gguf
    max_tokens: 256
  # openai: { base_url: "http://localhost:11434/v1", model: "qwen2.5:7b", api_key_env: OPENAI_API_KEY }
  # anthropic: { model: "claude-sonnet-4-5", api_key_env: ANTHROPIC_API_KEY }

agents:
  dir: {agents_dir}              # markdown/TOML agent definitions
  hot_reload: true
  conversations:                 # the histories config agents keep per caller
    ttl_secs: 604800             # forgotten after 7 days unused
    max_per_agent: 1000          # beyond it the least recently used go
    max_bytes: 65536             # per conversation; the oldest turns go first

tools:
  http_allowed_domains: []       # what http_client may reach (subdomains included)
  http_allow_private_addresses: false

mcp_servers: {}                  # MCP servers whose tools agents may list as NAME/TOOL
  # memory:
  #   command: npx
  #   args: ["-y", "@modelcontextprotocol/server-memory"]
  #   env: { MEMORY_FILE_PATH: /var/lib/caxton/mcp-memory.jsonl }
  #   timeout_secs: 30
  #   max_result_bytes: 262144

outbox:                          # fire-and-forget messages: on disk before the sender hears back
  max_attempts: 5                # failed deliveries before a message is a dead letter
  retry_initial_ms: 500          # doubled per retry
  retry_max_ms: 60000
  max_queued: 100000             # beyond it a send is refused (503) until some are delivered
  max_dead_letters: 10000        # the oldest go first
  concurrency: 64                # deliveries in flight at once
  delivery_timeout_ms: 300000    # one delivery's wait for the receiver

a2a_agents: {}                   # agents on other servers, spoken to over A2A, messaged by these names
  # weather:
  #   url: https://weather.example.com/a2a/weather   # its card: URL/.well-known/agent-card.json
  #   bearer_token_env: WEATHER_A2A_TOKEN
  #   timeout_secs: 60
  #   retries: 2                 # only when the message cannot have arrived
  #   capabilities: []           # empty: the card's skill ids

logging: {}
  # level: info
  # file: /var/log/caxton/caxton.log

monitoring:
  trace_spans: 10000             # message hops, LLM and tool calls kept for `caxton trace`
  # metrics_port: 9090           # unset: 9090 when free; 0: /metrics only on the API port

backup:
  # directory: /backups          # unset: `backups` next to the data directory
  retention: 7                   # backups kept there; 0 keeps all

conversations:                   # every message's conversation, kept in memory (a restart forgets them)
  ttl_secs: 86400                # a finished conversation is forgotten a day after its last message
  max_conversations: 10000       # beyond it the oldest finished go first
  max_history: 100               # messages kept per conversation; the oldest go
  max_bytes: 65536               # history bytes per conversation; the oldest messages go
  max_total_bytes: 67108864      # all histories together; the oldest finished conversations go
"#;

fn render(data_dir: &Path, agents_dir: &Path) -> String {
    let quote = |p: &Path| serde_json::to_string(&p.display().to_string()).unwrap_or_default();
    TEMPLATE
        .replace("{data_dir}", &quote(data_dir))
        .replace("{agents_dir}", &quote(agents_dir))
}

pub fn run(data_dir: PathBuf, agents_dir: PathBuf, config: PathBuf) -> anyhow::Result<ExitCode> {
    for (what, dir) in [("data", &data_dir), ("agents", &agents_dir)] {
        let existed = dir.is_dir();
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the {what} directory {}", dir.display()))?;
        println!(
            "{} {what} directory {}",
            if existed { "kept" } else { "created" },
            dir.display()
        );
    }
    if config.exists() {
        println!("kept {} (never overwritten)", config.display());
    } else {
        crate::auth::tokens::write_private(&config, render(&data_dir, &agents_dir).as_bytes())
            .with_context(|| format!("cannot write {}", config.display()))?;
        println!("created {} (every key at its default)", config.display());
    }
    match Storage::open(&data_dir) {
        Ok(storage) => {
            let tokens =
                TokenStore::open(Arc::new(storage)).context("cannot open the token table")?;
            match tokens.ensure_admin_file(&data_dir)? {
                Some(path) => println!("admin token in {} (readable by you only)", path.display()),
                None => println!(
                    "tokens exist but no admin token file; make one with `caxton tokens create --scope admin --name NAME`"
                ),
            }
        }
        Err(e) => println!(
            "admin token: not checked, the database is in use ({e}); a running server writes it at its first start"
        ),
    }
    println!("next: caxton start --config {}", config.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_the_defaults() -> anyhow::Result<()> {
        let text = render(Path::new("data"), Path::new("agents"));
        let parsed: crate::config::Config = serde_saphyr::from_str(&text)?;
        let expected = crate::config::Config {
            data_dir: Some(PathBuf::from("data")),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&parsed)?,
            serde_json::to_value(&expected)?
        );
        Ok(())
    }

    #[test]
    fn init_is_idempotent_and_never_overwrites() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (data, agents, config) = (
            dir.path().join("data"),
            dir.path().join("agents"),
            dir.path().join("caxton.yaml"),
        );
        run(data.clone(), agents.clone(), config.clone())?;
        let token = std::fs::read_to_string(data.join("admin.token"))?;
        std::fs::write(&config, "server:\n  port: 9999\n")?;
        run(data.clone(), agents, config.clone())?;
        assert_eq!(std::fs::read_to_string(&config)?, "server:\n  port: 9999\n");
        assert_eq!(std::fs::read_to_string(data.join("admin.token"))?, token);
        Ok(())
    }
}
