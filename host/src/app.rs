//! Assembles the server from its configuration: storage, runtime, agents,
//! API. `caxton start` calls [`run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::sync::Notify;

use crate::agents::{AgentManager, Registry};
use crate::config::Config;
use crate::memory::MemoryService;
use crate::memory::embedding::EmbedderState;
use crate::server::{self, AppState};
use crate::storage::Storage;

/// Command-line overrides of the configuration.
#[derive(Debug, Default, Clone)]
pub struct StartOptions {
    pub config: Option<PathBuf>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub data_dir: Option<PathBuf>,
}

pub async fn run(options: StartOptions) -> anyhow::Result<()> {
    let mut config = Config::load(options.config.as_deref())?;
    if let Some(host) = options.host {
        config.server.host = host;
    }
    if let Some(port) = options.port {
        config.server.port = port;
    }
    if let Some(dir) = options.data_dir {
        config.data_dir = Some(dir);
    }
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;

    let storage = Storage::open(&data_dir).with_context(|| {
        format!(
            "cannot open the database in {} (is another caxton server using this data directory?)",
            data_dir.display()
        )
    })?;
    let storage = Arc::new(storage);
    let embedder = EmbedderState::unavailable(
        "no embedding model is loaded in this build: memory search is keyword-only",
    );
    let memory = Arc::new(
        MemoryService::open(storage.clone(), embedder)
            .map_err(|e| anyhow::anyhow!("opening memory: {e}"))?,
    );
    let registry = Arc::new(Registry::new());
    let manager = Arc::new(AgentManager::new(
        config.runtime.clone(),
        storage,
        registry,
        memory.clone(),
        &data_dir,
    )?);
    let started = Instant::now();
    let count = manager.start_stored().await?;
    tracing::info!(
        agents = count,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "stored agents started"
    );

    let address = format!("{}:{}", config.server.host, config.server.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| {
            format!("cannot listen on {address} (is the port in use? choose another with --port)")
        })?;
    let local: SocketAddr = listener.local_addr()?;
    // Printed on stdout, so scripts and tests started with `--port 0` learn
    // the port the server got.
    println!("caxton listening on http://{local}");
    tracing::info!(%local, data_dir = %data_dir.display(), "caxton server ready");

    let state = AppState {
        manager,
        memory,
        database_path: data_dir.join(crate::storage::DATABASE_FILE),
        started,
        shutdown: Arc::new(Notify::new()),
    };
    server::serve(listener, state, config.server.max_body_bytes).await?;
    tracing::info!("server stopped");
    Ok(())
}
