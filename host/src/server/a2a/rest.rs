//! The A2A HTTP+JSON binding, under the same `/a2a/{agent}` URL as the
//! JSON-RPC one: `POST /message:send`, `POST /message:stream`,
//! `GET /tasks`, `GET /tasks/{id}`, `POST /tasks/{id}:cancel`,
//! `POST|GET /tasks/{id}:subscribe`. Bodies are the JSON-RPC `params`;
//! errors carry a real HTTP status and a `google.rpc.Status`-shaped body
//! whose `ErrorInfo` reason the A2A clients map back to the error.
//!
//! `{id}:verb` is one path segment (the router cannot split a parameter
//! from a suffix), split here on its last `:`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::jsonrpc::{Answer, Call, Params, call_method};
use super::ops::{self, A2aError, Caller};
use super::{A2a, AskedVersion, agent, sse};
use crate::auth::Principal;
use crate::server::AppState;
use crate::server::error::{ApiError, ErrorBody};
use crate::server::request_context::RequestContext;

/// The HTTP status and `google.rpc.Code` name of an A2A error.
fn status_of(error: &A2aError) -> (StatusCode, &'static str) {
    match error.code {
        ops::TASK_NOT_FOUND | ops::METHOD_NOT_FOUND => (StatusCode::NOT_FOUND, "NOT_FOUND"),
        ops::INVALID_PARAMS | ops::INVALID_REQUEST | ops::PARSE_ERROR => {
            (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")
        }
        ops::INTERNAL_ERROR => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        _ => (StatusCode::BAD_REQUEST, "FAILED_PRECONDITION"),
    }
}

fn error_response(error: A2aError) -> Response {
    let (status, name) = status_of(&error);
    let body = json!({ "error": {
        "code": status.as_u16(),
        "status": name,
        "message": error.message,
        "details": error.details(),
    }});
    (status, Json(body)).into_response()
}

fn answer(answer: Answer) -> Response {
    match answer {
        Answer::One(Ok(value)) => Json(value).into_response(),
        Answer::One(Err(e)) => error_response(e),
        Answer::Stream(items) => sse(items, |item| item.to_string()),
    }
}

/// What every HTTP+JSON route does first: the agent exists, the version
/// is served, and who calls.
fn caller(
    state: &AppState,
    principal: &Principal,
    name: String,
    asked: &AskedVersion,
) -> Result<Result<Caller, Response>, ApiError> {
    agent(state, &name)?;
    if let Err(e) = ops::check_version(asked.0.as_deref()) {
        return Ok(Err(error_response(e)));
    }
    Ok(Ok(Caller {
        principal: principal.name.clone(),
        agent: name,
    }))
}

/// The body as the method's parameters, JSON text of one object (an
/// empty body is `{}`).
fn params_of(bytes: &[u8]) -> Result<Params<'_>, A2aError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Params::Text("{}"));
    }
    match serde_json::from_slice::<&RawValue>(bytes) {
        Ok(params) if params.get().starts_with('{') => Ok(Params::Text(params.get())),
        Ok(_) => Err(A2aError::new(
            ops::INVALID_REQUEST,
            "the body must be a JSON object",
        )),
        Err(e) => Err(A2aError::new(
            ops::PARSE_ERROR,
            format!("the body is not JSON: {e}"),
        )),
    }
}

/// Query parameters as the JSON parameters they stand for.
fn query_params(query: HashMap<String, String>) -> Value {
    Value::Object(
        query
            .into_iter()
            .map(|(key, value)| (key, Value::String(value)))
            .collect(),
    )
}

/// A2A `SendMessage` over HTTP+JSON.
///
/// The body is a `SendMessageRequest` (`{"message": {...}}`); the answer
/// `{"task": ...}` once the agent replied.
#[utoipa::path(post, path = "/a2a/{agent}/message:send", tag = "a2a", operation_id = "a2a_rest_send",
    params(("agent" = String, Path, description = "Agent name or id")),
    request_body(content = Object, description = "An A2A SendMessageRequest"),
    responses(
        (status = 200, description = "`{\"task\": Task}`", body = Object),
        (status = 400, description = "Invalid request (A2A error body)", body = Object),
        (status = 404, description = "Unknown agent, or unknown task (A2A error body)", body = Object),
        (status = 413, description = "Body larger than server.max_request_bytes", body = ErrorBody),
    ))]
pub(super) async fn send(
    State(state): State<AppState>,
    Extension(a2a): Extension<Arc<A2a>>,
    Extension(principal): Extension<Principal>,
    Extension(request): Extension<RequestContext>,
    Path(name): Path<String>,
    asked: AskedVersion,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    method(
        &state,
        &a2a,
        &principal,
        &request,
        name,
        &asked,
        bytes,
        "SendMessage",
    )
    .await
}

/// A2A `SendStreamingMessage` over HTTP+JSON.
///
/// Server-sent events, each `data` a `StreamResponse`: the task, its
/// working status, its artifacts, its last status.
#[utoipa::path(post, path = "/a2a/{agent}/message:stream", tag = "a2a", operation_id = "a2a_rest_stream",
    params(("agent" = String, Path, description = "Agent name or id")),
    request_body(content = Object, description = "An A2A SendMessageRequest"),
    responses(
        (status = 200, description = "Server-sent events of StreamResponse", content_type = "text/event-stream"),
        (status = 400, description = "Invalid request (A2A error body)", body = Object),
        (status = 404, description = "Unknown agent (A2A error body)", body = Object),
        (status = 413, description = "Body larger than server.max_request_bytes", body = ErrorBody),
    ))]
pub(super) async fn stream(
    State(state): State<AppState>,
    Extension(a2a): Extension<Arc<A2a>>,
    Extension(principal): Extension<Principal>,
    Extension(request): Extension<RequestContext>,
    Path(name): Path<String>,
    asked: AskedVersion,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    method(
        &state,
        &a2a,
        &principal,
        &request,
        name,
        &asked,
        bytes,
        "SendStreamingMessage",
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn method(
    state: &AppState,
    a2a: &Arc<A2a>,
    principal: &Principal,
    request: &RequestContext,
    name: String,
    asked: &AskedVersion,
    bytes: Result<Bytes, BytesRejection>,
    method: &str,
) -> Result<Response, ApiError> {
    let caller = match caller(state, principal, name, asked)? {
        Ok(caller) => caller,
        Err(refused) => return Ok(refused),
    };
    let bytes = crate::server::agents::read_body(bytes)?;
    let params = match params_of(&bytes) {
        Ok(params) => params,
        Err(refused) => return Ok(error_response(refused)),
    };
    let call = Call {
        state,
        a2a,
        caller: &caller,
        request,
    };
    Ok(answer(call_method(call, method, params).await))
}

/// A2A `ListTasks` over HTTP+JSON: the caller's tasks at this agent.
#[utoipa::path(get, path = "/a2a/{agent}/tasks", tag = "a2a", operation_id = "a2a_rest_list",
    params(
        ("agent" = String, Path, description = "Agent name or id"),
        ("contextId" = Option<String>, Query, description = "Only tasks of this context (conversation)"),
        ("status" = Option<String>, Query, description = "Only tasks in this state, e.g. TASK_STATE_COMPLETED"),
        ("pageSize" = Option<String>, Query, description = "1 to 100, default 50"),
        ("pageToken" = Option<String>, Query, description = "The `nextPageToken` of the previous page"),
        ("historyLength" = Option<String>, Query, description = "Messages of history kept per task"),
        ("includeArtifacts" = Option<String>, Query, description = "`true` to include artifacts"),
    ),
    responses(
        (status = 200, description = "`{tasks, nextPageToken, pageSize, totalSize}`", body = Object),
        (status = 400, description = "Invalid parameters (A2A error body)", body = Object),
        (status = 404, description = "Unknown agent", body = ErrorBody),
    ))]
pub(super) async fn list(
    State(state): State<AppState>,
    Extension(a2a): Extension<Arc<A2a>>,
    Extension(principal): Extension<Principal>,
    Extension(request): Extension<RequestContext>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    asked: AskedVersion,
) -> Result<Response, ApiError> {
    let caller = match caller(&state, &principal, name, &asked)? {
        Ok(caller) => caller,
        Err(refused) => return Ok(refused),
    };
    let call = Call {
        state: &state,
        a2a: &a2a,
        caller: &caller,
        request: &request,
    };
    Ok(answer(
        call_method(call, "ListTasks", Params::Json(query_params(query))).await,
    ))
}

/// `abc:cancel` → (`abc`, Some(`cancel`)); `abc` → (`abc`, None).
fn split_verb(segment: &str) -> (&str, Option<&str>) {
    match segment.rsplit_once(':') {
        Some((id, verb)) => (id, Some(verb)),
        None => (segment, None),
    }
}

/// A2A `GetTask` (`/tasks/{id}`) or `SubscribeToTask`
/// (`/tasks/{id}:subscribe`) over HTTP+JSON.
#[utoipa::path(get, path = "/a2a/{agent}/tasks/{task}", tag = "a2a", operation_id = "a2a_rest_task_get",
    params(
        ("agent" = String, Path, description = "Agent name or id"),
        ("task" = String, Path, description = "The task id, or `{id}:subscribe` to follow it"),
        ("historyLength" = Option<String>, Query, description = "Messages of history kept"),
    ),
    responses(
        (status = 200, description = "The task, or server-sent events of it", content((Object = "application/json"), ("text/event-stream"))),
        (status = 400, description = "Invalid parameters, or a finished task to subscribe to (A2A error body)", body = Object),
        (status = 404, description = "Unknown agent, task or verb", body = Object),
    ))]
pub(super) async fn task_get(
    State(state): State<AppState>,
    Extension(a2a): Extension<Arc<A2a>>,
    Extension(principal): Extension<Principal>,
    Extension(request): Extension<RequestContext>,
    Path((name, task)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    asked: AskedVersion,
) -> Result<Response, ApiError> {
    let (id, verb) = split_verb(&task);
    let method = match verb {
        None => "GetTask",
        Some("subscribe") => "SubscribeToTask",
        Some(other) => return Ok(unknown_verb(other, "GET")),
    };
    let caller = match caller(&state, &principal, name, &asked)? {
        Ok(caller) => caller,
        Err(refused) => return Ok(refused),
    };
    let mut params = query_params(query);
    params["id"] = json!(id);
    let call = Call {
        state: &state,
        a2a: &a2a,
        caller: &caller,
        request: &request,
    };
    Ok(answer(
        call_method(call, method, Params::Json(params)).await,
    ))
}

/// A2A `CancelTask` (`/tasks/{id}:cancel`) or `SubscribeToTask`
/// (`/tasks/{id}:subscribe`) over HTTP+JSON.
#[utoipa::path(post, path = "/a2a/{agent}/tasks/{task}", tag = "a2a", operation_id = "a2a_rest_task_action",
    params(
        ("agent" = String, Path, description = "Agent name or id"),
        ("task" = String, Path, description = "`{id}:cancel` or `{id}:subscribe`"),
    ),
    responses(
        (status = 200, description = "The cancelled task, or server-sent events of it", content((Object = "application/json"), ("text/event-stream"))),
        (status = 400, description = "The task cannot be cancelled or followed any more (A2A error body)", body = Object),
        (status = 404, description = "Unknown agent, task or verb", body = Object),
    ))]
pub(super) async fn task_action(
    State(state): State<AppState>,
    Extension(a2a): Extension<Arc<A2a>>,
    Extension(principal): Extension<Principal>,
    Extension(request): Extension<RequestContext>,
    Path((name, task)): Path<(String, String)>,
    asked: AskedVersion,
) -> Result<Response, ApiError> {
    let (id, verb) = split_verb(&task);
    let method = match verb {
        Some("cancel") => "CancelTask",
        Some("subscribe") => "SubscribeToTask",
        other => return Ok(unknown_verb(other.unwrap_or(""), "POST")),
    };
    let caller = match caller(&state, &principal, name, &asked)? {
        Ok(caller) => caller,
        Err(refused) => return Ok(refused),
    };
    let call = Call {
        state: &state,
        a2a: &a2a,
        caller: &caller,
        request: &request,
    };
    Ok(answer(
        call_method(call, method, Params::Json(json!({ "id": id }))).await,
    ))
}

fn unknown_verb(verb: &str, http_method: &str) -> Response {
    error_response(A2aError::new(
        ops::METHOD_NOT_FOUND,
        format!(
            "no `{http_method} /tasks/{{id}}:{verb}`; the task routes are GET /tasks/{{id}}, POST /tasks/{{id}}:cancel and POST|GET /tasks/{{id}}:subscribe"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verb_is_after_the_last_colon() {
        assert_eq!(split_verb("abc:cancel"), ("abc", Some("cancel")));
        assert_eq!(split_verb("abc"), ("abc", None));
        assert_eq!(split_verb("a:b:subscribe"), ("a:b", Some("subscribe")));
    }

    #[test]
    fn errors_carry_the_status_the_clients_map() {
        let not_found = A2aError::new(ops::TASK_NOT_FOUND, "x");
        assert_eq!(status_of(&not_found), (StatusCode::NOT_FOUND, "NOT_FOUND"));
        assert_eq!(not_found.reason(), "TASK_NOT_FOUND");
        let not_cancelable = A2aError::new(ops::TASK_NOT_CANCELABLE, "x");
        assert_eq!(status_of(&not_cancelable).0, StatusCode::BAD_REQUEST);
        assert_eq!(not_cancelable.reason(), "TASK_NOT_CANCELABLE");
    }
}
