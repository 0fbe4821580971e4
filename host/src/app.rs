//! Assembles the server from its configuration: storage, runtime, agents,
//! API. `caxton start` calls [`run`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::Notify;

use crate::agents::{AgentManager, Registry};
use crate::config::Config;
use crate::config_agents::{self, ConfigAgents};
use crate::llm::LlmService;
use crate::memory::embedding::{self, EmbedderState};
use crate::memory::{MemoryOptions, MemoryService};
use crate::server::{self, AppState};
use crate::storage::Storage;
use crate::tools::ToolRegistry;
use crate::tools::component::ComponentTools;

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
    let config_path = options
        .config
        .clone()
        .or_else(|| Some(PathBuf::from("caxton.yaml")).filter(|p| p.is_file()));
    if let Some(host) = options.host {
        config.server.host = host;
    }
    if let Some(port) = options.port {
        config.server.port = port;
    }
    if let Some(dir) = options.data_dir {
        config.data_dir = Some(dir);
    }
    // Logging waits for the configuration (it names the file and level);
    // a configuration that does not load is reported on stderr by `main`.
    crate::logging::init(&config.logging)?;
    for note in config.notes() {
        tracing::info!("{note}");
    }
    let Assembled {
        state,
        data_dir,
        _watcher,
    } = assemble(&config, config_path).await?;
    let tls = match &config.server.tls {
        Some(settings) => Some(server::tls::acceptor(settings)?),
        None => None,
    };
    let address = format!("{}:{}", config.server.host, config.server.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| {
            format!("cannot listen on {address} (is the port in use? choose another with --port)")
        })?;
    let local: SocketAddr = listener.local_addr()?;
    crate::tools::builtin::exclude_own_address(local);
    // Printed on stdout, so scripts and tests started with `--port 0` learn
    // the port the server got.
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("caxton listening on {scheme}://{local}");
    // The CLI sends the admin token only to the address recorded here.
    if let Err(e) =
        crate::auth::tokens::record_server_address(&data_dir, &format!("{scheme}://{local}"))
    {
        tracing::warn!(error = %e, "cannot record the server's address in the data directory; the CLI will not send the admin token by itself");
    }
    tracing::info!(%local, data_dir = %data_dir.display(), "caxton server ready");
    if config.cluster.enabled() {
        let node = config.cluster.node_name(local.port());
        let cluster = crate::cluster::Cluster::start(
            &config.cluster,
            node,
            format!("{scheme}://{local}"),
            state.manager.clone(),
            state.memory.clone(),
        )
        .await?;
        let _ = state.cluster.set(cluster);
    }

    match (&state.gate.admin_token_file, state.gate.loopback_bind) {
        (Some(path), true) => tracing::info!(
            file = %path.display(),
            "admin token kept here; on this machine requests need none unless auth.required is set"
        ),
        (Some(path), false) => tracing::info!(
            file = %path.display(),
            "every request but /api/v1/health and the API document needs a token; the admin token is kept here"
        ),
        (None, _) => tracing::info!(
            "no admin token file in the data directory; use an existing token or `caxton tokens create`"
        ),
    }
    if !state.gate.loopback_bind && tls.is_none() {
        tracing::warn!(
            host = %config.server.host,
            "listening beyond loopback WITHOUT TLS: tokens and data cross the network in clear text; \
             set server.tls.cert and server.tls.key, or put a TLS-terminating proxy in front"
        );
    }
    let limits = config.server.connection_limits();
    let metrics_server = match config.monitoring.metrics_port {
        Some(0) => None,
        Some(port) => Some(serve_metrics(&config.server.host, port, state.clone(), limits).await?),
        // The runbook's `curl localhost:9090/metrics` works without any
        // configuration, when the port is free.
        None => match serve_metrics(
            &config.server.host,
            crate::server::settings::DEFAULT_METRICS_PORT,
            state.clone(),
            limits,
        )
        .await
        {
            Ok(task) => Some(task),
            Err(e) => {
                tracing::info!(
                    "{e:#}; /metrics is served on the API port only (set monitoring.metrics_port to choose another port, 0 for none)"
                );
                None
            }
        },
    };
    let saver = tokio::spawn(save_index_periodically(
        state.memory.clone(),
        Duration::from_secs(config.memory.index_save_interval_secs.max(1)),
    ));
    let memory = state.memory.clone();
    let trace = state.trace.clone();
    let exporter = config.observability.exporter().map(|exporter| {
        tracing::info!(url = %exporter.shown_url(), "exporting spans over OTLP");
        exporter.spawn(&trace)
    });
    let state_cluster = state.cluster.clone();
    let recorder = state.manager.recorder().cloned();
    match tls {
        Some(acceptor) => {
            let listener = server::tls::TlsListener::new(listener, acceptor)?;
            server::serve(listener, state, &config.server).await;
        }
        None => server::serve(listener, state, &config.server).await,
    }
    saver.abort();
    if let Some(cluster) = state_cluster.get() {
        cluster.leave().await;
    }
    // The address is no longer ours: whoever listens there next must not
    // be sent this data directory's admin token.
    let _ = std::fs::remove_file(data_dir.join(crate::auth::tokens::SERVER_ADDRESS_FILE));
    if let Some(task) = metrics_server {
        task.abort();
    }
    save_index(memory).await;
    if let Some(recorder) = recorder {
        // What was recorded up to the end is kept.
        let _ = tokio::task::spawn_blocking(move || recorder.flush(true)).await;
    }
    if let Some(exporter) = exporter {
        // The last spans (the shutdown request's among them) are sent,
        // unless the collector keeps us waiting.
        trace.close_export();
        if tokio::time::timeout(Duration::from_secs(5), exporter)
            .await
            .is_err()
        {
            tracing::warn!("the OTLP collector did not take the last spans within 5 s");
        }
    }
    tracing::info!("server stopped");
    Ok(())
}

/// The server's parts, assembled from its configuration but not listening.
pub struct Assembled {
    pub state: AppState,
    pub data_dir: PathBuf,
    /// Watches the agents directory while it lives.
    pub _watcher: Option<notify::RecommendedWatcher>,
}

/// Opens storage and memory, starts the stored agents and the config
/// agents, and builds the state every handler shares. `run` listens with
/// it; the fuzz targets drive its router directly.
/// A size sample now and every day after (`storage analyze` reports the
/// growth); a failure costs only the sample.
fn sample_growth(storage: Arc<Storage>) {
    tokio::spawn(async move {
        let mut daily = tokio::time::interval(std::time::Duration::from_secs(86_400));
        loop {
            daily.tick().await;
            let storage = storage.clone();
            match tokio::task::spawn_blocking(move || storage.record_growth_sample()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot record a database size sample"),
                Err(e) => tracing::warn!(error = %e, "database size sample task failed"),
            }
        }
    });
}

pub async fn assemble(config: &Config, config_path: Option<PathBuf>) -> anyhow::Result<Assembled> {
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    // It holds the admin token and every agent's state: the server's user
    // alone may read it, whatever umask made it (new files are private
    // already, see `main`).
    make_private(&data_dir, 3)
        .with_context(|| format!("cannot make {} private (mode 0700)", data_dir.display()))?;

    let storage = Storage::open_with_cache(&data_dir, config.memory.database_cache_mb).with_context(|| {
        format!(
            "cannot open the database in {} (is another caxton server using this data directory?)",
            data_dir.display()
        )
    })?;
    let storage = Arc::new(storage);
    sample_growth(storage.clone());
    let memory = open_memory(config, &data_dir, storage.clone())?;
    let llm = Arc::new(
        LlmService::from_config(&config.llm, &config.memory.model_cache_dir())
            .map_err(|e| anyhow::anyhow!("llm configuration: {e}"))?,
    );
    let cache = crate::runtime::component_cache(
        &data_dir,
        &storage,
        &config.runtime.max_limits,
        config.runtime.instance_pool,
    )?;
    let components = ComponentTools::new(cache.clone(), storage.clone(), config.runtime.clone())?;
    let mcp_servers = crate::tools::mcp::McpServers::start(&config.mcp_servers).await;
    let tools = Arc::new(
        ToolRegistry::with_builtins(&config.tools)
            .with_components(components)
            .with_mcp(mcp_servers),
    );
    let started = Instant::now();
    if let Some(components) = tools.components() {
        let count = components.load_stored().await?;
        tracing::info!(
            tools = count,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "stored tool components loaded"
        );
    }
    let registry = Arc::new(
        Registry::with_conversations(config.conversations.clone()).with_storage(storage.clone()),
    );
    let trace = Arc::new(crate::trace::TraceStore::new(config.monitoring.trace_spans));
    let manager = Arc::new(
        AgentManager::new(
            config.runtime.clone(),
            storage.clone(),
            registry,
            memory.clone(),
            llm,
            tools.clone(),
            cache,
        )?
        .with_trace(trace.clone()),
    );
    manager.use_budgets(Arc::new(
        crate::budgets::Budgets::open(storage.clone(), config.budgets.clone())
            .context("cannot open the LLM budgets")?,
    ));
    manager.use_recorder(Arc::new(
        crate::recordings::Recorder::open(storage.dir(), config.recordings.clone())
            .context("cannot open the conversation recordings")?,
    ));
    let started = Instant::now();
    let count = manager.start_stored().await?;
    manager
        .load_subscriptions()
        .await
        .context("cannot read the topic subscriptions")?;
    tracing::info!(
        agents = count,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "stored agents started"
    );

    let config_agents = Arc::new(
        ConfigAgents::new(config.agents.dir.clone(), manager.clone(), tools.clone())
            .with_conversation_limits(config.agents.conversations.clone()),
    );
    if let Err(e) = std::fs::create_dir_all(config_agents.dir()) {
        tracing::warn!(dir = %config_agents.dir().display(), error = %e, "cannot create the agents directory");
    }
    let (loaded, failed) = config_agents.load_all().await;
    tracing::info!(loaded, failed, dir = %config_agents.dir().display(), "config agents loaded");
    let remote = crate::agents::remote::start_all(
        &config.a2a_agents,
        manager.registry(),
        config.runtime.mailbox_capacity,
        config.runtime.failure_threshold,
    );
    if !config.a2a_agents.is_empty() {
        tracing::info!(registered = remote.len(), "remote A2A agents registered");
    }
    // Every agent is registered: delivery of fire-and-forget messages
    // (those left from before a restart first) may begin.
    let outbox = crate::outbox::Outbox::open(storage.clone(), config.outbox.clone())
        .context("cannot open the outbox of fire-and-forget messages")?;
    manager.registry().use_outbox(outbox);
    // Kept alive until the server stops.
    let _watcher = if config.agents.hot_reload {
        match config_agents::watch(config_agents.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the agents directory; use `caxton agents reload`");
                None
            }
        }
    } else {
        None
    };

    let starts = server::server_state::record_start(&storage).context("cannot count this start")?;
    let safe_mode = server::server_state::safe_mode(&storage).context("cannot read safe mode")?;
    if safe_mode {
        tracing::warn!(
            "SAFE MODE: reads are answered, writes refused; end it with `caxton storage safe-mode --disable`"
        );
    }
    // Before the address is printed: whoever waits for that line (scripts,
    // tests) finds the admin token file already written.
    let tokens = Arc::new(
        crate::auth::tokens::TokenStore::open(storage.clone())
            .context("cannot open the token table")?,
    );
    let admin_token_file = tokens
        .ensure_admin_file(&data_dir)
        .context("cannot create the admin token")?;
    let loopback_bind = is_loopback_host(&config.server.host);
    let gate = Arc::new(server::auth::Gate {
        tokens,
        settings: config.auth.clone(),
        loopback_bind,
        admin_token_file,
        max_request_bytes: config.server.max_request_bytes,
        max_body_bytes: config.server.max_body_bytes,
        body_read_timeout: Duration::from_secs(config.server.body_read_timeout_secs),
        in_flight: Arc::new(tokio::sync::Semaphore::new(
            config.server.max_concurrent_requests.max(1),
        )),
        safe_mode: std::sync::atomic::AtomicBool::new(safe_mode),
    });
    let state = AppState::new(server::Services {
        manager,
        memory,
        storage: storage.clone(),
        config_agents,
        tools,
        model_cache_dir: config.memory.model_cache_dir(),
        started,
        shutdown: Arc::new(Notify::new()),
        gate,
        config_path,
        starts,
        trace,
        a2a_agents: Arc::new(remote),
        cluster: Arc::new(std::sync::OnceLock::new()),
        config_snapshot: Arc::new({
            let mut snapshot = serde_json::to_value(config).unwrap_or_default();
            server::debug::redact(&mut snapshot);
            snapshot
        }),
    });
    Ok(Assembled {
        state,
        data_dir,
        _watcher,
    })
}

/// `monitoring.metrics_port`: `GET /metrics` alone on its own port, as the
/// runbook's `curl localhost:9090/metrics` expects.
async fn serve_metrics(
    host: &str,
    port: u16,
    state: AppState,
    limits: server::listen::ConnectionLimits,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let address = format!("{host}:{port}");
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address} for monitoring.metrics_port"))?;
    let local = listener.local_addr()?;
    crate::tools::builtin::exclude_own_address(local);
    tracing::info!(address = %local, "metrics served at /metrics");
    let gate = state.gate.clone();
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(server::metrics::metrics))
        .layer(axum::middleware::from_fn_with_state(
            gate,
            server::auth::gate,
        ))
        .with_state(state);
    // The same connection limits as the API: a slow scraper holds nothing
    // for long. It stops when the server does (its task is aborted).
    Ok(tokio::spawn(server::listen::serve_connections(
        listener,
        app,
        limits,
        std::future::pending(),
    )))
}

/// Opens memory and gets its embedding model: loaded from the cache when it
/// is there (before the server says it is ready, so the first search is
/// semantic), else downloaded on a background thread while memory serves
/// keyword-only.
fn open_memory(
    config: &Config,
    data_dir: &Path,
    storage: Arc<Storage>,
) -> anyhow::Result<Arc<MemoryService>> {
    let settings = &config.memory;
    let cache_dir = settings.model_cache_dir();
    let embedder = if settings.semantic_search {
        match embedding::load_cached(&cache_dir) {
            Ok(model) => EmbedderState::loaded(model),
            Err(reason) => EmbedderState::unavailable(reason),
        }
    } else {
        EmbedderState::unavailable(
            "semantic search is disabled (memory.semantic_search: false in caxton.yaml); \
             search is keyword-only",
        )
    };
    let options = MemoryOptions {
        slow_query: Duration::from_millis(settings.slow_query_ms),
        recommended_max_entities: settings.recommended_max_entities,
        memory_budget_bytes: settings.memory_budget_bytes,
        ..MemoryOptions::in_data_dir(data_dir)
    };
    let memory = MemoryService::open(storage, embedder, options)
        .map_err(|e| anyhow::anyhow!("opening memory: {e}"))?;
    memory.set_single_valued(settings.single_valued_relations.iter().cloned());
    let have_model = memory.embedder().get().is_some();
    if have_model {
        memory.embed_backlog();
    } else if settings.semantic_search && settings.auto_pull {
        let memory = memory.clone();
        std::thread::Builder::new()
            .name("caxton-model-pull".into())
            .spawn(
                move || match embedding::pull_and_load(&cache_dir, memory.embedder()) {
                    Ok(model) => {
                        memory.embedder().set(model);
                        memory.embed_backlog();
                    }
                    Err(reason) => {
                        tracing::warn!(%reason, "embedding model unavailable");
                        memory.embedder().set_unavailable(reason);
                    }
                },
            )?;
    }
    Ok(memory)
}

async fn save_index(memory: Arc<MemoryService>) {
    match tokio::task::spawn_blocking(move || memory.save_index()).await {
        Ok(Ok(true)) => tracing::debug!("vector index saved"),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not save the vector index"),
        Err(e) => tracing::warn!(error = %e, "vector index save task failed"),
    }
}

async fn save_index_periodically(memory: Arc<MemoryService>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        save_index(memory.clone()).await;
    }
}

/// Whether `host` (the `server.host` setting) is a loopback address or name.
/// Takes group and other permissions off `path` and, `depth` levels down,
/// everything in it (directories 0700, files 0600 at most). Symbolic links
/// are left alone, not followed.
#[cfg(unix)]
pub fn make_private(path: &Path, depth: usize) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    if meta.is_dir() && depth > 0 {
        for entry in std::fs::read_dir(path)? {
            make_private(&entry?.path(), depth - 1)?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn make_private(_path: &Path, _depth: usize) -> std::io::Result<()> {
    Ok(())
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
