//! A2A 1.0: every agent is an A2A agent at `/a2a/{agent}`, its card at
//! `/a2a/{agent}/.well-known/agent-card.json`. Both bindings are served at
//! that one URL: JSON-RPC (`POST /a2a/{agent}`, [`jsonrpc`]) and HTTP+JSON
//! (`/message:send`, `/message:stream`, `/tasks`, `/tasks/{id}`,
//! `/tasks/{id}:cancel`, `/tasks/{id}:subscribe`, [`rest`]); what they do
//! is in [`ops`], the tasks they make in [`tasks`].
//!
//! Tokens and scopes are those of REST: reading the card and tasks needs
//! `read`, sending, cancelling and subscribing `message` (see
//! `server::auth`). A caller sees only the tasks it created.
//!
//! The card's URLs are built from `server.public_url` when it is set;
//! without it, from the request's `Host` only when that is a loopback name
//! (a local client), and otherwise the card is refused (409) rather than
//! advertise an address the server cannot vouch for. The bind address is
//! never used.

pub mod card;
pub mod jsonrpc;
pub mod ops;
pub mod rest;
pub mod tasks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;
use tokio::sync::Notify;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::agents::AgentHandle;
use crate::agents::run_to_end::RunToEnd;

/// What the A2A routes share: the task store, the tasks still running
/// (to cancel them), and where the server is reached from outside.
pub struct A2a {
    pub tasks: tasks::TaskStore,
    running: Mutex<HashMap<String, Arc<Notify>>>,
    /// `server.public_url`, without a trailing slash.
    pub public_url: Option<String>,
    /// The API is served over HTTPS (for a base URL taken from `Host`).
    pub tls: bool,
}

impl A2a {
    pub fn new(public_url: Option<&str>, tls: bool) -> Self {
        A2a {
            tasks: tasks::TaskStore::default(),
            running: Mutex::default(),
            public_url: public_url.map(|u| u.trim_end_matches('/').to_string()),
            tls,
        }
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a running task; what it waits on to learn it was cancelled.
    fn running(&self, task_id: &str) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        self.lock_running()
            .insert(task_id.to_string(), notify.clone());
        notify
    }

    fn finished(&self, task_id: &str) {
        self.lock_running().remove(task_id);
    }

    /// Stops waiting for a running task's reply.
    fn cancel(&self, task_id: &str) {
        if let Some(notify) = self.lock_running().get(task_id) {
            notify.notify_one();
        }
    }

    /// The base URL the card's URLs are built from (see the module doc).
    fn base_url(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        if let Some(url) = &self.public_url {
            return Ok(url.clone());
        }
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let (name, _) = super::auth::split_authority(host);
        if !host.is_empty() && super::auth::is_loopback_name(name) {
            let scheme = if self.tls { "https" } else { "http" };
            return Ok(format!("{scheme}://{host}"));
        }
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "public_url_not_set",
            "the agent card names this server's public URL, and none is configured: set `server.public_url` (e.g. https://caxton.example.com) in caxton.yaml; without it cards are served only to loopback clients",
        ))
    }
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(agent_card))
        .routes(routes!(jsonrpc::endpoint))
        .routes(routes!(rest::send))
        .routes(routes!(rest::stream))
        .routes(routes!(rest::list))
        .routes(routes!(rest::task_get, rest::task_action))
}

/// The agent addressed, or the REST error for an unknown one.
fn agent(state: &AppState, name: &str) -> Result<Arc<AgentHandle>, ApiError> {
    state
        .manager
        .registry()
        .get(name)
        .ok_or_else(|| ApiError::unknown_agent(name))
}

/// The `A2A-Version` header, if sent: read alone, without copying the
/// request's other headers.
pub(super) struct AskedVersion(pub(super) Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for AskedVersion {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let asked = parts
            .headers
            .get("a2a-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(AskedVersion(asked))
    }
}

/// An agent's A2A card.
///
/// Skills are its capabilities; both bindings' endpoint is `/a2a/{agent}`
/// under `server.public_url` (or, without it, the loopback `Host` asked).
#[utoipa::path(get, path = "/a2a/{agent}/.well-known/agent-card.json", tag = "a2a", operation_id = "a2a_agent_card",
    params(("agent" = String, Path, description = "Agent name or id")),
    responses(
        (status = 200, description = "The A2A 1.0 agent card", body = Object),
        (status = 404, description = "Unknown agent", body = ErrorBody),
        (status = 409, description = "No `server.public_url`, and the request is not addressed to a loopback name", body = ErrorBody),
    ))]
async fn agent_card(
    State(state): State<AppState>,
    Extension(a2a): Extension<Arc<A2a>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let handle = agent(&state, &name)?;
    let base = a2a.base_url(&headers)?;
    Ok(Json(card::card(&handle, &base)))
}

/// Runs a sent message's task to its end (it ends even if the caller goes
/// away) and answers it; with `returnImmediately`, spawns it and answers
/// it as it is now.
async fn finish_send(
    a2a: &A2a,
    caller: &ops::Caller,
    submitted: ops::Submitted,
    return_immediately: bool,
) -> Result<Arc<tasks::Task>, ops::A2aError> {
    let id = submitted.id.clone();
    if return_immediately {
        tokio::spawn(submitted.done);
        return ops::get(a2a, caller, &serde_json::json!({ "id": id }));
    }
    // On the request's own task: no hand-over to another worker and back
    // (a quarter of an A2A request's time went there). A task is the
    // server's, not the connection's: if the caller goes away first, the
    // rest of the work is spawned and finishes all the same.
    let mut work = RunToEnd::new(submitted.done);
    work.run().await.ok_or_else(|| {
        ops::A2aError::new(ops::INTERNAL_ERROR, format!("task `{id}` was run twice"))
    })
}

/// Server-sent events, one per stream item, each written by `data`; the
/// response ends with the stream.
fn sse(
    items: tokio::sync::mpsc::Receiver<Value>,
    data: impl Fn(Value) -> String + Send + 'static,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures_util::StreamExt as _;
    let events = futures_util::stream::unfold(items, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .map(move |item| Ok::<_, std::convert::Infallible>(Event::default().data(data(item))));
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(v) = value.parse() {
            headers.insert(header::HOST, v);
        }
        headers
    }

    #[test]
    fn the_base_url_is_the_public_one_or_a_loopback_host_never_another() {
        let configured = A2a::new(Some("https://caxton.example.com/"), false);
        assert_eq!(
            configured.base_url(&host("10.0.0.5:8080")).ok().as_deref(),
            Some("https://caxton.example.com")
        );
        let local = A2a::new(None, false);
        assert_eq!(
            local.base_url(&host("127.0.0.1:8080")).ok().as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            A2a::new(None, true)
                .base_url(&host("localhost:1"))
                .ok()
                .as_deref(),
            Some("https://localhost:1")
        );
        for foreign in ["0.0.0.0:8080", "caxton.example.com", "10.0.0.5:8080", ""] {
            let refused = local.base_url(&host(foreign));
            assert!(
                refused.is_err_and(|e| e.code == "public_url_not_set"),
                "{foreign}"
            );
        }
    }

    #[tokio::test]
    async fn a_cancel_reaches_the_running_task_once() {
        let a2a = A2a::new(None, false);
        let notify = a2a.running("t");
        a2a.cancel("t");
        tokio::time::timeout(std::time::Duration::from_secs(1), notify.notified())
            .await
            .expect("the running task hears the cancel");
        a2a.finished("t");
        assert!(a2a.lock_running().is_empty());
    }
}
