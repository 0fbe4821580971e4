//! Who a request is, for logs and traces: every request gets an id
//! (`x-request-id`, the caller's own when it sends a sane one) that is on
//! its response and on every log line written while it is handled, and a
//! span in the caller's trace (`traceparent`) that the messages it delivers
//! hang under. The response's `traceparent` names that span, so a caller
//! can find its request in the collector.

use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

use crate::trace::{SpanKind, TraceParent, TraceStore};

pub const REQUEST_ID: &str = "x-request-id";
pub const TRACEPARENT: &str = crate::trace::TRACEPARENT_HEADER;

/// Longest request id taken from a caller.
const MAX_ID_LEN: usize = 128;

/// What a handler knows about the request it serves, in its extensions.
#[derive(Clone)]
pub struct RequestContext {
    pub id: Arc<str>,
    /// This request's span, the parent of the messages it delivers.
    pub span: TraceParent,
    /// The agent and conversation it delivered to, once a handler says.
    delivered: Arc<Mutex<Option<(String, String)>>>,
}

impl RequestContext {
    /// Records that this request delivered a message to `agent` in
    /// `conversation_id`, so its span is kept with that conversation;
    /// returns the parent the message carries.
    pub fn delivering(&self, agent: &str, conversation_id: &str) -> TraceParent {
        *self.delivered.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((agent.to_string(), conversation_id.to_string()));
        self.span
    }
}

/// Routes whose requests are not worth a span (polled by monitors).
fn untraced(route: &str) -> bool {
    matches!(route, "/api/v1/health" | "/metrics" | "/api/v1/metrics")
}

/// The caller's id when it is short and printable without escaping.
fn caller_id(request: &Request) -> Option<Arc<str>> {
    let id = request.headers().get(REQUEST_ID)?.to_str().ok()?;
    let sane = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b));
    sane.then(|| Arc::from(id))
}

pub async fn middleware(
    State(trace): State<Arc<TraceStore>>,
    mut request: Request,
    next: Next,
) -> Response {
    // An MCP tool's inner request is part of the outer one: same id, and
    // the messages it delivers hang under the outer request's span.
    if request.extensions().get::<RequestContext>().is_some() {
        return next.run(request).await;
    }
    let arrived = std::time::Instant::now();
    let id = caller_id(&request).unwrap_or_else(|| Arc::from(uuid::Uuid::new_v4().to_string()));
    let remote = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse);
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", |m| m.as_str())
        .to_string();
    let mut started = trace.start("", "", remote);
    let context = RequestContext {
        id: id.clone(),
        span: started.context.as_parent(),
        delivered: Arc::new(Mutex::new(None)),
    };
    request.extensions_mut().insert(context.clone());
    // Lines logged by the agents it reaches carry the same trace id. The
    // span is at `error` so it exists at every log level: a span prints
    // nothing itself, it only labels the lines written inside it.
    let log_span = tracing::error_span!(
        "request",
        id = %id,
        method = %method,
        route = %route,
        trace = %format_args!("{:032x}", context.span.trace_id),
    );
    let mut response = next.run(request).instrument(log_span).await;
    let status = response.status().as_u16();
    crate::observe::HTTP_REQUEST_SECONDS.observe(arrived.elapsed());
    crate::observe::count_request(&route, &method, status);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID, value);
    }
    if let Ok(value) = HeaderValue::from_str(&context.span.header()) {
        headers.insert(TRACEPARENT, value);
    }
    if !untraced(&route) {
        if let Some((agent, conversation)) = context
            .delivered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            started.set_agent(&agent);
            started.set_conversation(&conversation);
        }
        let error = (status >= 500).then(|| format!("HTTP {status}"));
        let kind = SpanKind::Request {
            method,
            route,
            status,
            request_id: id.to_string(),
        };
        trace.finish(started, kind, error.as_deref());
    }
    response
}
