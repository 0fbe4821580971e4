//! Who may ask what: every request passes here before its handler.
//!
//! - `/api/v1/health` is open to anyone.
//! - A request with `Authorization: Bearer <token>` is who the token says,
//!   with the token's scope; a wrong or revoked token is refused (401), a
//!   token whose scope is too small too (403).
//! - Without a token, on a loopback bind only: a request from loopback,
//!   over a connection of the user the server runs as ([`PeerOwner`]),
//!   addressed to a loopback `Host`, not sent by a page of another origin
//!   and not made by an agent's tool, is the operator at the machine
//!   (`user`, admin) — so the runbook's curl lines work as typed there,
//!   and neither another local account, a web page (cross-site `Origin`),
//!   DNS rebinding (foreign `Host`) nor the server's own `http_client`
//!   gets in. `auth.required: true` turns this off.
//! - `/metrics` without a token: from loopback, or from anywhere with
//!   `auth.metrics_public: true`.
//!
//! Bodies of JSON routes must say `application/json` (415 otherwise), so a
//! browser's form or `text/plain` POST cannot carry a command.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::peer::PeerOwner;
use crate::auth::tokens::TokenStore;
use crate::auth::{AuthSettings, Principal, Scope};

/// What the gate needs to decide.
pub struct Gate {
    pub tokens: Arc<TokenStore>,
    pub settings: AuthSettings,
    /// The API listens on a loopback address only.
    pub loopback_bind: bool,
    /// Where the admin token is kept, for the 401 message.
    pub admin_token_file: Option<std::path::PathBuf>,
    /// Body size of requests that are not uploads or imports.
    pub max_request_bytes: usize,
    /// Body size of uploads and imports.
    pub max_body_bytes: usize,
    /// Time a client may take to send a body.
    pub body_read_timeout: std::time::Duration,
    /// Requests in flight; a request that finds none free is refused.
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Safe mode: reads are answered, anything that writes is refused.
    pub safe_mode: std::sync::atomic::AtomicBool,
}

/// Requests that still work in safe mode although they are not reads: the
/// way out of it, stopping the server, repairing and compacting storage
/// (safe mode is where an operator repairs from), and managing tokens.
fn allowed_in_safe_mode(path: &str) -> bool {
    matches!(
        path,
        "/api/v1/safe-mode"
            | "/api/v1/shutdown"
            | "/api/v1/storage/repair"
            | "/api/v1/storage/compact"
    ) || path.starts_with("/api/v1/tokens")
}

/// Whether a request may change anything: every method but GET and HEAD,
/// except the queries sent as POST because they carry a body. Safe mode
/// refuses these (a backup, a GET, is what an operator takes first). An
/// MCP call is judged by the REST requests its tool makes, each of which
/// passes this gate again.
fn writes(method: &Method, path: &str) -> bool {
    !(method == Method::GET
        || method == Method::HEAD
        || is_query(path)
        || path == "/mcp"
        || path == "/mcp/")
}

/// Queries sent as POST because they carry a body; they change nothing.
fn is_query(path: &str) -> bool {
    matches!(
        path,
        "/api/v1/memory/search"
            | "/api/v1/memory/nodes"
            | "/api/v1/memory/traverse"
            | "/api/v1/config-agents/validate"
    )
}

/// Routes whose bodies may be as large as `server.max_body_bytes`.
fn is_upload(method: &Method, path: &str) -> bool {
    method == Method::POST
        && matches!(
            path,
            "/api/v1/agents" | "/api/v1/tools" | "/api/v1/memory/import" | "/api/v1/config-agents"
        )
}

/// The scope a route needs. Reads are `read`, talking to an agent is
/// `message`, everything that changes the server is `admin`.
pub fn needed_scope(method: &Method, path: &str) -> Scope {
    if path.starts_with("/api/v1/tokens")
        || path.starts_with("/api/v1/dead-letters")
        || path == "/api/v1/backup"
        || path == "/api/v1/debug/state"
        || (path.starts_with("/api/v1/conversations/") && path.ends_with("/recording"))
    {
        return Scope::Admin;
    }
    // MCP: the tools' own REST requests pass this gate again, each
    // needing what its REST route needs.
    if method == Method::GET || method == Method::HEAD || path == "/mcp" || path == "/mcp/" {
        return Scope::Read;
    }
    if method != Method::POST {
        return Scope::Admin;
    }
    match path {
        p if is_query(p) => Scope::Read,
        p if is_publish(p) => Scope::Message,
        "/api/v1/messages"
        | "/api/v1/send"
        | "/api/v1/broadcast"
        | "/api/v1/contract-net"
        | "/v1/chat/completions" => Scope::Message,
        // Their handlers let only the conversation's initiator (or, to
        // cancel, an admin).
        p if is_conversation_cancel(p) || is_contract_award(p) => Scope::Message,
        p if is_agent_action(p) || is_a2a_action(p) => Scope::Message,
        _ => Scope::Admin,
    }
}

/// An agent's A2A endpoints that talk to it or act on the caller's own
/// tasks: `POST /a2a/{agent}` (JSON-RPC), `/message:send`,
/// `/message:stream`, `/tasks/{id}:cancel`, `/tasks/{id}:subscribe`. They
/// need `message`, as sending on REST does (the card and task reads, GETs,
/// need `read`).
fn is_a2a_action(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/a2a/") else {
        return false;
    };
    let (name, tail) = match rest.split_once('/') {
        Some((name, tail)) => (name, Some(tail)),
        None => (rest, None),
    };
    if name.is_empty() {
        return false;
    }
    match tail {
        None => true,
        Some("message:send" | "message:stream") => true,
        Some(tail) => tail.strip_prefix("tasks/").is_some_and(|task| {
            !task.contains('/') && (task.ends_with(":cancel") || task.ends_with(":subscribe"))
        }),
    }
}

/// `/api/v1/contract-net/{conversation}/award`: the initiator's choice.
fn is_contract_award(path: &str) -> bool {
    path.strip_prefix("/api/v1/contract-net/")
        .and_then(|rest| rest.strip_suffix("/award"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// `/api/v1/topics/{topic}/publish`, exactly one topic segment.
fn is_publish(path: &str) -> bool {
    path.strip_prefix("/api/v1/topics/")
        .and_then(|rest| rest.strip_suffix("/publish"))
        .is_some_and(|topic| !topic.is_empty() && !topic.contains('/'))
}

/// `/api/v1/conversations/{id}/cancel`, exactly one id segment.
fn is_conversation_cancel(path: &str) -> bool {
    path.strip_prefix("/api/v1/conversations/")
        .and_then(|rest| rest.strip_suffix("/cancel"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// `/api/v1/agents/{name}/message` or `/ping`: exactly one name segment,
/// so `DELETE /api/v1/agents/message` (an agent named `message`) is not
/// mistaken for talking to one.
fn is_agent_action(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/api/v1/agents/") else {
        return false;
    };
    match rest.split_once('/') {
        Some((name, action)) => {
            !name.is_empty() && !name.contains('/') && matches!(action, "message" | "ping")
        }
        None => false,
    }
}

pub(super) fn is_loopback_name(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Splits `host[:port]` (with `[v6]` brackets) into host and port.
pub(super) fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (authority, None),
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Why a request without a token is not the local operator, if it is not.
fn local_refusal(headers: &HeaderMap, peer: &SocketAddr, owner: PeerOwner) -> Option<String> {
    if !peer.ip().to_canonical().is_loopback() {
        return Some(format!(
            "the request comes from {}, not from this machine",
            peer.ip()
        ));
    }
    if let Some(why) = owner.refusal() {
        return Some(why);
    }
    if headers.contains_key(crate::tools::builtin::AGENT_REQUEST_HEADER) {
        return Some(
            "the request was made by an agent's tool, and agents are never the operator".into(),
        );
    }
    let host = header_text(headers, header::HOST);
    let (host_name, host_port) = match host {
        Some(h) => split_authority(h),
        None => ("", None),
    };
    if host.is_some() && !is_loopback_name(host_name) {
        return Some(format!(
            "the request is addressed to `{}`, not to a loopback name (a DNS-rebinding page looks like this)",
            host.unwrap_or_default()
        ));
    }
    if let Some(origin) = header_text(headers, header::ORIGIN) {
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        let same = authority.is_some_and(|a| {
            let (name, port) = split_authority(a);
            is_loopback_name(name) && port == host_port
        });
        if !same {
            return Some(format!(
                "the request was sent by a web page of another origin (`{origin}`)"
            ));
        }
    }
    if header_text(headers, header::HeaderName::from_static("sec-fetch-site"))
        .is_some_and(|site| site.eq_ignore_ascii_case("cross-site"))
    {
        return Some("the request was sent by a web page of another site".into());
    }
    None
}

fn bearer(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let Ok(text) = value.to_str() else {
        return Some(Err(()));
    };
    match text.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(Ok(token.trim())),
        _ => Some(Err(())),
    }
}

fn unauthorized(code: &'static str, message: String) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, code, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"caxton\""),
    );
    response
}

/// Content types a route's body may have besides JSON.
fn other_body_types(path: &str) -> &'static [&'static str] {
    match path {
        "/api/v1/agents" | "/api/v1/tools" => &["application/wasm", "application/octet-stream"],
        "/api/v1/memory/import" => &["application/x-ndjson", "application/jsonl", "text/plain"],
        _ => &[],
    }
}

fn check_content_type(method: &Method, path: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    if !matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        return Ok(());
    }
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || header_text(headers, header::CONTENT_LENGTH)
            .and_then(|n| n.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0);
    if !has_body {
        return Ok(());
    }
    let given = header_text(headers, header::CONTENT_TYPE).unwrap_or("");
    let essence = given
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json" || essence.ends_with("+json");
    if json || other_body_types(path).contains(&essence.as_str()) {
        return Ok(());
    }
    let mut accepted = vec!["application/json"];
    accepted.extend_from_slice(other_body_types(path));
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!(
            "{method} {path} takes {}; the request says `{}` (add `-H 'Content-Type: application/json'`)",
            accepted.join(" or "),
            if given.is_empty() {
                "no content type"
            } else {
                given
            }
        ),
    ))
}

/// The middleware: authenticates, checks the scope and the body's type,
/// and hands the handler the [`Principal`] as a request extension.
pub async fn gate(
    State(gate): State<Arc<Gate>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    // Health for monitors; the API document and its page are static and
    // hold no data, and a browser cannot send a token to read them.
    if matches!(
        path.as_str(),
        "/api/v1/health" | "/api/v1/openapi.json" | "/api/v1/docs" | "/api/v1/docs/app.js"
    ) {
        return next.run(request).await;
    }
    // The metrics routes take only GET, and the MCP service (stateless: no
    // SSE stream to GET, no session to DELETE) only POST; it would take
    // every method itself, so other methods there are answered 405 here.
    // Any other method no route serves (PUT, PATCH, …) still goes through
    // authentication below (it needs `admin`) before the router answers
    // 405: a route added later with such a method is never reachable
    // without a token.
    let metrics_path = path == "/metrics" || path == "/api/v1/metrics";
    let mcp_path = path == "/mcp" || path.starts_with("/mcp/");
    let unserved = !matches!(
        method,
        Method::GET | Method::HEAD | Method::POST | Method::DELETE
    );
    if unserved
        || (metrics_path && !matches!(method, Method::GET | Method::HEAD))
        || (mcp_path && method != Method::POST)
    {
        let allow = if metrics_path {
            Some("GET, HEAD")
        } else if mcp_path {
            Some("POST")
        } else {
            None
        };
        if let Some(allow) = allow {
            let mut response = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} {path} is not served; this path takes {allow}"),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static(allow));
            return response;
        }
    }
    let headers = request.headers();
    let needed = needed_scope(&method, &path);
    let principal = match bearer(headers) {
        Some(Ok(token)) => match gate.tokens.verify(token) {
            Some(principal) => principal,
            None => {
                return unauthorized(
                    "invalid_token",
                    "the bearer token is not valid (wrong, or revoked); `caxton tokens list` shows the live ones".into(),
                );
            }
        },
        Some(Err(())) => {
            return unauthorized(
                "invalid_token",
                "the Authorization header must be `Bearer <token>`".into(),
            );
        }
        None => {
            // Absent only on requests that did not come through the
            // listener: nobody's, then.
            let owner = request
                .extensions()
                .get::<PeerOwner>()
                .copied()
                .unwrap_or(PeerOwner::Unknown);
            let refusal = local_refusal(headers, &peer, owner);
            if metrics_path && (gate.settings.metrics_public || refusal.is_none()) {
                Principal {
                    name: "metrics".into(),
                    token_id: None,
                    scope: Scope::Read,
                }
            } else if gate.loopback_bind && !gate.settings.required && refusal.is_none() {
                Principal::local_operator()
            } else {
                let why = match (&refusal, gate.loopback_bind, gate.settings.required) {
                    (Some(reason), _, _) => format!("a token is required: {reason}"),
                    (None, true, true) => "a token is required (auth.required is set)".into(),
                    (None, _, _) => {
                        "a token is required: the server listens beyond loopback".into()
                    }
                };
                let hint = match &gate.admin_token_file {
                    Some(path) => format!(
                        "; send `Authorization: Bearer <token>` (the admin token is in {} on the server; `caxton tokens create` makes others)",
                        path.display()
                    ),
                    None => {
                        "; send `Authorization: Bearer <token>` (`caxton tokens create` makes one)"
                            .into()
                    }
                };
                return unauthorized("unauthenticated", format!("{why}{hint}"));
            }
        }
    };
    if !principal.allows(needed) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!(
                "{method} {path} needs the `{}` scope; this token (`{}`) has `{}`",
                needed.as_str(),
                principal.name,
                principal.scope.as_str()
            ),
        )
        .into_response();
    }
    if let Err(e) = check_content_type(&method, &path, request.headers()) {
        return e.into_response();
    }
    if writes(&method, &path)
        && !allowed_in_safe_mode(&path)
        && gate.safe_mode.load(std::sync::atomic::Ordering::Relaxed)
    {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "safe_mode",
            format!(
                "the server is in safe mode: it answers reads and refuses {method} {path}; \
                 end it with `caxton storage safe-mode --disable`"
            ),
        )
        .into_response();
    }
    let declared = header_text(request.headers(), header::CONTENT_LENGTH)
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if !is_upload(&method, &path) && declared > gate.max_request_bytes as u64 {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the body is {declared} bytes; {method} {path} takes at most {} (server.max_request_bytes)",
                gate.max_request_bytes
            ),
        )
        .into_response();
    }
    let Ok(_permit) = gate.in_flight.clone().try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_busy",
            "too many requests in flight (server.max_concurrent_requests); retry shortly",
        )
        .into_response();
    };
    let limit = if is_upload(&method, &path) {
        gate.max_body_bytes
    } else {
        gate.max_request_bytes
    };
    let mut request = match read_body(request, limit, gate.body_read_timeout).await {
        Ok(request) => request,
        Err(e) => return e.into_response(),
    };
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// Reads the whole body within `timeout`, so a client that sends it one
/// byte a minute is cut off instead of holding a request slot for ever;
/// handlers then find it in memory.
async fn read_body(
    request: Request,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Request, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            let too_large =
                std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                    e.source()
                })
                .any(|e| e.is::<http_body_util::LengthLimitError>());
            return Err(if too_large {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!(
                        "the body is larger than {limit} bytes, the most {} {} takes",
                        parts.method,
                        parts.uri.path()
                    ),
                )
            } else {
                ApiError::bad_request(
                    "body_unreadable",
                    format!("the request body could not be read: {e}"),
                )
            });
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the body did not arrive within {} s (server.body_read_timeout_secs); send it at once",
                    timeout.as_secs()
                ),
            ));
        }
    };
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header value"));
        }
        map
    }

    #[test]
    fn scopes_follow_what_a_route_does() {
        assert_eq!(needed_scope(&Method::GET, "/api/v1/agents"), Scope::Read);
        assert_eq!(needed_scope(&Method::POST, "/api/v1/agents"), Scope::Admin);
        assert_eq!(
            needed_scope(&Method::POST, "/api/v1/agents/echo/message"),
            Scope::Message
        );
        assert_eq!(
            needed_scope(&Method::POST, "/api/v1/memory/search"),
            Scope::Read
        );
        assert_eq!(
            needed_scope(&Method::POST, "/api/v1/shutdown"),
            Scope::Admin
        );
        assert_eq!(needed_scope(&Method::GET, "/api/v1/tokens"), Scope::Admin);
    }

    #[test]
    fn cancelling_a_conversation_needs_message_and_reading_needs_read() {
        assert_eq!(
            needed_scope(&Method::GET, "/api/v1/conversations"),
            Scope::Read
        );
        assert_eq!(
            needed_scope(&Method::GET, "/api/v1/conversations/c1"),
            Scope::Read
        );
        assert_eq!(
            needed_scope(&Method::POST, "/api/v1/conversations/c1/cancel"),
            Scope::Message
        );
        for protocol in ["/api/v1/broadcast", "/api/v1/contract-net"] {
            assert_eq!(needed_scope(&Method::POST, protocol), Scope::Message);
        }
        for path in [
            "/api/v1/conversations//cancel",
            "/api/v1/conversations/a/b/cancel",
            "/api/v1/conversations/c1",
        ] {
            assert_eq!(needed_scope(&Method::POST, path), Scope::Admin, "{path}");
        }
        assert_eq!(
            needed_scope(&Method::DELETE, "/api/v1/conversations/c1/cancel"),
            Scope::Admin
        );
    }

    #[test]
    fn a2a_reads_need_read_and_talking_to_the_agent_needs_message() {
        for path in [
            "/a2a/echo/.well-known/agent-card.json",
            "/a2a/echo/tasks",
            "/a2a/echo/tasks/t1",
        ] {
            assert_eq!(needed_scope(&Method::GET, path), Scope::Read, "{path}");
        }
        for path in [
            "/a2a/echo",
            "/a2a/echo/message:send",
            "/a2a/echo/message:stream",
            "/a2a/echo/tasks/t1:cancel",
            "/a2a/echo/tasks/t1:subscribe",
        ] {
            assert_eq!(needed_scope(&Method::POST, path), Scope::Message, "{path}");
            assert!(writes(&Method::POST, path), "safe mode refuses {path}");
        }
        for path in [
            "/a2a/",
            "/a2a/echo/x",
            "/a2a/echo/tasks/a/b:cancel",
            "/a2a/echo/tasks",
        ] {
            assert_eq!(needed_scope(&Method::POST, path), Scope::Admin, "{path}");
        }
        assert_eq!(needed_scope(&Method::DELETE, "/a2a/echo"), Scope::Admin);
    }

    #[test]
    fn publishing_is_talking_and_subscribing_agents_is_admin() {
        let publish = "/api/v1/topics/news/publish";
        assert_eq!(needed_scope(&Method::POST, publish), Scope::Message);
        assert_eq!(needed_scope(&Method::POST, "/api/v1/send"), Scope::Message);
        let subscription = "/api/v1/topics/news/subscribers/echo";
        assert_eq!(needed_scope(&Method::POST, subscription), Scope::Admin);
        assert_eq!(needed_scope(&Method::DELETE, subscription), Scope::Admin);
        assert_eq!(needed_scope(&Method::GET, "/api/v1/topics"), Scope::Read);
        assert_eq!(
            needed_scope(&Method::GET, "/api/v1/dead-letters"),
            Scope::Admin,
            "dead letters hold other principals' messages"
        );
        assert_eq!(
            needed_scope(&Method::POST, "/api/v1/topics/a/b/publish"),
            Scope::Admin
        );
    }

    #[test]
    fn agents_named_like_actions_are_not_actions() {
        for path in ["/api/v1/agents/message", "/api/v1/agents/ping"] {
            assert_eq!(needed_scope(&Method::DELETE, path), Scope::Admin, "{path}");
            assert_eq!(needed_scope(&Method::POST, path), Scope::Admin, "{path}");
        }
        assert_eq!(
            needed_scope(&Method::DELETE, "/api/v1/agents/x/message"),
            Scope::Admin
        );
        assert_eq!(
            needed_scope(&Method::POST, "/api/v1/agents/message/message"),
            Scope::Message
        );
        assert_eq!(
            needed_scope(&Method::POST, "/api/v1/agents/a/b/message"),
            Scope::Admin
        );
    }

    const OWNER: PeerOwner = PeerOwner::ServerUser;

    #[test]
    fn other_accounts_and_agents_are_not_the_local_operator() {
        let local: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let host = headers(&[("host", "localhost:8080")]);
        assert!(local_refusal(&host, &local, PeerOwner::OtherUser(65534)).is_some());
        let marked = headers(&[
            ("host", "localhost:8080"),
            (crate::tools::builtin::AGENT_REQUEST_HEADER, "1"),
        ]);
        assert!(local_refusal(&marked, &local, OWNER).is_some());
        if cfg!(target_os = "linux") {
            assert!(local_refusal(&host, &local, PeerOwner::Unknown).is_some());
        }
    }

    #[test]
    fn browsers_and_rebinding_are_not_the_local_operator() {
        let local: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let remote: SocketAddr = "10.0.0.2:5000".parse().expect("addr");
        assert!(local_refusal(&headers(&[("host", "localhost:8080")]), &local, OWNER).is_none());
        assert!(local_refusal(&headers(&[("host", "[::1]:8080")]), &local, OWNER).is_none());
        assert!(
            local_refusal(
                &headers(&[("host", "localhost:8080")]),
                &remote,
                PeerOwner::Remote
            )
            .is_some()
        );
        assert!(local_refusal(&headers(&[("host", "evil.example:8080")]), &local, OWNER).is_some());
        assert!(
            local_refusal(
                &headers(&[
                    ("host", "127.0.0.1:8080"),
                    ("origin", "https://evil.example")
                ]),
                &local,
                OWNER
            )
            .is_some()
        );
        assert!(
            local_refusal(
                &headers(&[
                    ("host", "127.0.0.1:8080"),
                    ("origin", "http://127.0.0.1:8080")
                ]),
                &local,
                OWNER
            )
            .is_none()
        );
        assert!(
            local_refusal(
                &headers(&[
                    ("host", "127.0.0.1:8080"),
                    ("origin", "http://localhost:3000")
                ]),
                &local,
                OWNER
            )
            .is_some(),
            "another local port is another origin"
        );
    }
}
