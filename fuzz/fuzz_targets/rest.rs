//! The REST API as a hostile client sees it: the real router (auth gate,
//! body limits, JSON decoding, handlers, storage) of a server assembled in a
//! temporary data directory, sent any body on any route with any content
//! type. No input may panic or answer 500. `/v1/chat/completions` and
//! `/mcp` are among the routes; MCP requests carry the headers a client
//! sends, so the JSON-RPC bodies (and the REST calls the tools make
//! through the same router) are what is fuzzed.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

/// Routes that take bodies or parameters. Shutdown and backup are left
/// out: one ends the process, the other only reads files.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/agents"),
    ("POST", "/api/v1/agents/fuzz/message"),
    ("POST", "/api/v1/messages"),
    ("POST", "/api/v1/config-agents"),
    ("POST", "/api/v1/config-agents/validate"),
    ("POST", "/api/v1/memory/entities"),
    ("POST", "/api/v1/memory/entities/delete"),
    ("POST", "/api/v1/memory/observations"),
    ("POST", "/api/v1/memory/relations"),
    ("POST", "/api/v1/memory/relations/delete"),
    ("POST", "/api/v1/memory/nodes"),
    ("POST", "/api/v1/memory/search"),
    ("POST", "/api/v1/memory/traverse"),
    ("POST", "/api/v1/memory/import"),
    ("POST", "/api/v1/memory/cleanup"),
    ("POST", "/api/v1/tools"),
    ("POST", "/api/v1/tokens"),
    ("GET", "/api/v1/memory/graph"),
    ("GET", "/api/v1/agents"),
    ("GET", "/api/v1/agents/fuzz/logs"),
    ("GET", "/api/v1/storage/verify"),
    ("POST", "/api/v1/tools/csv_parser/invoke"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/mcp"),
];

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/wasm",
    "application/x-ndjson",
    "text/plain",
    "",
];

struct Harness {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temporary data dir");
        let mut config = caxton::config::Config::default();
        config.data_dir = Some(dir.path().join("data"));
        config.agents.dir = dir.path().join("agents");
        config.agents.hot_reload = false;
        config.memory.semantic_search = false;
        let router = runtime.block_on(async {
            let assembled = caxton::app::assemble(&config, None)
                .await
                .expect("assemble a server");
            caxton::server::router(assembled.state, config.server.max_body_bytes)
        });
        Harness {
            runtime,
            router,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let [route, variant, body @ ..] = data else {
        return;
    };
    let harness = harness();
    let (method, path) = ROUTES[usize::from(*route) % ROUTES.len()];
    let mut path = path.to_string();
    // Query strings for the GET routes, from the body's bytes.
    if method == "GET" {
        let query: String = String::from_utf8_lossy(body)
            .chars()
            .filter(|c| c.is_ascii_graphic() && *c != '#')
            .collect();
        path = format!("{path}?{query}");
    }
    let content_type = CONTENT_TYPES[usize::from(*variant) % CONTENT_TYPES.len()];
    let Ok(method) = method.parse::<Method>() else {
        return;
    };
    let mut request = Request::builder()
        .method(method)
        .uri(&path)
        .header("host", "127.0.0.1:8080");
    if !content_type.is_empty() {
        request = request.header("content-type", content_type);
    }
    // What every MCP client sends; without it rmcp refuses the POST (406)
    // before reading the JSON-RPC body. Odd variants leave it out.
    if path == "/mcp" && variant % 2 == 0 {
        request = request
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18");
    }
    let Ok(mut request) = request.body(Body::from(body.to_vec())) else {
        return; // not a valid URI: hyper would refuse it before the router
    };
    let peer: SocketAddr = ([127, 0, 0, 1], 40000).into();
    request.extensions_mut().insert(ConnectInfo(peer));
    // As the listener marks a loopback connection of the server's own
    // user: the operator, so the handlers (not only the gate) are fuzzed.
    request
        .extensions_mut()
        .insert(caxton::server::peer::PeerOwner::ServerUser);
    let response = harness
        .runtime
        .block_on(harness.router.clone().oneshot(request))
        .expect("the router is infallible");
    assert_ne!(
        response.status().as_u16(),
        500,
        "{path} ({content_type}) answered 500"
    );
});
