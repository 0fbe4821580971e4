//! The A2A JSON-RPC binding at `POST /a2a/{agent}`: methods named as in
//! the protocol's service (`SendMessage`, `SendStreamingMessage`,
//! `GetTask`, `ListTasks`, `CancelTask`, `SubscribeToTask`), parameters in
//! its JSON form (camelCase). Errors are answered 200 with an `error`
//! member, as the binding says; streams are server-sent events whose
//! `data` lines are JSON-RPC responses.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ops::{self, A2aError, Caller};
use super::{A2a, agent, finish_send, sse, version};
use crate::auth::Principal;
use crate::server::AppState;
use crate::server::error::{ApiError, ErrorBody};
use crate::server::request_context::RequestContext;

/// The JSON-RPC response to `id`.
pub fn response(id: &Value, result: Result<Value, A2aError>) -> Value {
    match result {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err(e) => json!({ "jsonrpc": "2.0", "id": id, "error": {
            "code": e.code, "message": e.message, "data": e.details(),
        }}),
    }
}

/// An agent's A2A JSON-RPC endpoint.
///
/// Methods `SendMessage` and `SendStreamingMessage` (the reply becomes a
/// task: `inform` → completed with an artifact, `failure` → failed,
/// `refuse`/`not-understood` → rejected; `contextId` is the conversation
/// id), `GetTask`, `ListTasks`, `CancelTask`, `SubscribeToTask`. JSON-RPC
/// errors are answered 200 with an `error` member, as the binding says;
/// the streaming methods answer `text/event-stream`.
#[utoipa::path(post, path = "/a2a/{agent}", tag = "a2a", operation_id = "a2a_jsonrpc",
    params(("agent" = String, Path, description = "Agent name or id")),
    request_body(content = Object, description = "A JSON-RPC 2.0 request"),
    responses(
        (status = 200, description = "A JSON-RPC 2.0 response (`result` or `error`), or for the streaming methods server-sent events of them", content((Object = "application/json"), ("text/event-stream"))),
        (status = 400, description = "The body is not one JSON object (a JSON-RPC error, -32700 or -32600)", body = Object),
        (status = 404, description = "Unknown agent", body = ErrorBody),
        (status = 413, description = "Body larger than server.max_request_bytes", body = ErrorBody),
    ))]
pub(super) async fn endpoint(
    State(state): State<AppState>,
    Extension(a2a): Extension<Arc<A2a>>,
    Extension(principal): Extension<Principal>,
    Extension(request): Extension<RequestContext>,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = crate::server::agents::read_body(bytes)?;
    agent(&state, &name)?;
    // Not a request at all: refused at the HTTP level too (400), with the
    // JSON-RPC parse error as the body.
    let body: Value = match serde_json::from_slice::<Value>(&bytes) {
        Ok(body) if body.is_object() => body,
        Ok(_) => {
            let e = A2aError::new(
                ops::INVALID_REQUEST,
                "the body must be one JSON-RPC request object (batches are not served)",
            );
            return Ok((
                StatusCode::BAD_REQUEST,
                Json(response(&Value::Null, Err(e))),
            )
                .into_response());
        }
        Err(e) => {
            let e = A2aError::new(ops::PARSE_ERROR, format!("the body is not JSON: {e}"));
            return Ok((
                StatusCode::BAD_REQUEST,
                Json(response(&Value::Null, Err(e))),
            )
                .into_response());
        }
    };
    let id = body.get("id").cloned().unwrap_or(Value::Null);
    let caller = Caller {
        principal: principal.name.clone(),
        agent: name,
    };
    let call = Call {
        state: &state,
        a2a: &a2a,
        caller: &caller,
        request: &request,
    };
    let answer = match ops::check_version(version(&headers)) {
        Ok(()) => dispatch(call, &body).await,
        Err(e) => Answer::One(Err(e)),
    };
    Ok(match answer {
        Answer::One(result) => Json(response(&id, result)).into_response(),
        Answer::Stream(items) => sse(items, move |item| response(&id, Ok(item)).to_string()),
    })
}

/// What a method answers: one result, or a stream of them.
pub(super) enum Answer {
    One(Result<Value, A2aError>),
    Stream(tokio::sync::mpsc::Receiver<Value>),
}

/// What a call needs besides its parameters.
pub(super) struct Call<'a> {
    pub state: &'a AppState,
    pub a2a: &'a Arc<A2a>,
    pub caller: &'a Caller,
    pub request: &'a RequestContext,
}

async fn dispatch(call: Call<'_>, body: &Value) -> Answer {
    let invalid = |message: &str| Answer::One(Err(A2aError::new(ops::INVALID_REQUEST, message)));
    if body.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return invalid(
            "not a JSON-RPC 2.0 request: {\"jsonrpc\": \"2.0\", \"id\": …, \"method\": \"SendMessage\", \"params\": {…}}",
        );
    }
    let Some(method) = body.get("method").and_then(Value::as_str) else {
        return invalid("the request has no `method` string");
    };
    let none = json!({});
    let params = match body.get("params") {
        None | Some(Value::Null) => &none,
        Some(params) if params.is_object() => params,
        Some(_) => {
            return Answer::One(Err(A2aError::new(
                ops::INVALID_PARAMS,
                "`params` must be an object",
            )));
        }
    };
    call_method(call, method, params).await
}

/// Runs one method; the HTTP+JSON binding calls this too.
pub(super) async fn call_method(call: Call<'_>, method: &str, params: &Value) -> Answer {
    let Call {
        state,
        a2a,
        caller,
        request,
    } = call;
    match method {
        "SendMessage" => Answer::One(
            match ops::send(state, a2a, caller, params, request, false) {
                Ok(submitted) => finish_send(a2a, caller, submitted, params)
                    .await
                    .map(|task| json!({ "task": task })),
                Err(e) => Err(e),
            },
        ),
        "SendStreamingMessage" => match ops::send(state, a2a, caller, params, request, true) {
            Ok(submitted) => Answer::Stream(ops::stream_of_send(submitted)),
            Err(e) => Answer::One(Err(e)),
        },
        "GetTask" => Answer::One(ops::get(a2a, caller, params)),
        "ListTasks" => Answer::One(ops::list(a2a, caller, params)),
        "CancelTask" => Answer::One(ops::cancel(a2a, caller, params)),
        "SubscribeToTask" => match ops::subscribe(a2a, caller, params) {
            Ok(items) => Answer::Stream(items),
            Err(e) => Answer::One(Err(e)),
        },
        "CreateTaskPushNotificationConfig"
        | "GetTaskPushNotificationConfig"
        | "ListTaskPushNotificationConfigs"
        | "DeleteTaskPushNotificationConfig" => Answer::One(Err(A2aError::new(
            ops::PUSH_NOT_SUPPORTED,
            format!(
                "{method}: push notifications are not offered (the card says pushNotifications: false); follow a task with SubscribeToTask"
            ),
        ))),
        "GetExtendedAgentCard" => Answer::One(Err(A2aError::new(
            ops::EXTENDED_CARD_NOT_CONFIGURED,
            "there is no extended card: the public card at .well-known/agent-card.json is all there is",
        ))),
        other => Answer::One(Err(A2aError::new(
            ops::METHOD_NOT_FOUND,
            format!(
                "no method `{other}`; this endpoint serves SendMessage, SendStreamingMessage, GetTask, ListTasks, CancelTask and SubscribeToTask (A2A 1.0 names)"
            ),
        ))),
    }
}
