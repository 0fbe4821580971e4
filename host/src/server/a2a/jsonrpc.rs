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
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::ops::{self, A2aError, Caller, Out};
use super::{A2a, AskedVersion, agent, finish_send, sse};
use crate::auth::Principal;
use crate::server::AppState;
use crate::server::error::{ApiError, ErrorBody};
use crate::server::request_context::RequestContext;

/// A successful JSON-RPC response, written straight from its result.
#[derive(serde::Serialize)]
struct Answered<'a, T> {
    jsonrpc: &'static str,
    id: &'a Value,
    result: T,
}

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
    AskedVersion(asked): AskedVersion,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = crate::server::agents::read_body(bytes)?;
    agent(&state, &name)?;
    // Not a request at all: refused at the HTTP level too (400), with the
    // JSON-RPC parse error as the body.
    // (A struct would also be read from an array: only an object is one.)
    let parsed = match bytes.trim_ascii_start().first() {
        Some(b'{') => serde_json::from_slice::<Envelope<'_>>(&bytes),
        _ => serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)
            .and_then(|_| Err(serde::de::Error::custom("not an object"))),
    };
    let body = match parsed {
        Ok(body) => body,
        Err(e) => {
            let e = if e.classify() == serde_json::error::Category::Data {
                A2aError::new(
                    ops::INVALID_REQUEST,
                    "the body must be one JSON-RPC request object (batches are not served)",
                )
            } else {
                A2aError::new(ops::PARSE_ERROR, format!("the body is not JSON: {e}"))
            };
            return Ok((
                StatusCode::BAD_REQUEST,
                Json(response(&Value::Null, Err(e))),
            )
                .into_response());
        }
    };
    let id = body.id.clone().unwrap_or(Value::Null);
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
    let answer = match ops::check_version(asked.as_deref()) {
        Ok(()) => dispatch(call, &body).await,
        Err(e) => Answer::One(Err(e)),
    };
    Ok(match answer {
        Answer::One(Ok(result)) => Json(Answered {
            jsonrpc: "2.0",
            id: &id,
            result,
        })
        .into_response(),
        Answer::One(Err(e)) => Json(response(&id, Err(e))).into_response(),
        Answer::Stream(items) => sse(items, move |item| response(&id, Ok(item)).to_string()),
    })
}

/// A JSON-RPC request as sent: the members are checked by [`dispatch`]
/// (so that a wrong one gets the protocol's error, not a parse error), and
/// `params` stays JSON text until the method reads it into what it needs.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    jsonrpc: Option<Value>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<Value>,
    #[serde(default, borrow)]
    params: Option<&'a RawValue>,
}

/// A method's parameters: the JSON text a client sent (an object), or
/// built from a URL (the HTTP+JSON binding's paths and queries).
pub(super) enum Params<'a> {
    Text(&'a str),
    Json(Value),
}

impl Params<'_> {
    /// The parameters of a send.
    fn send_request(&self) -> Result<ops::SendRequest, A2aError> {
        match self {
            Params::Text(text) => ops::SendRequest::parse(text),
            Params::Json(value) => ops::SendRequest::from_json(value),
        }
    }

    /// The parameters as JSON, for the methods that read a few members.
    fn into_json(self) -> Result<Value, A2aError> {
        match self {
            Params::Json(value) => Ok(value),
            Params::Text(text) => serde_json::from_str(text)
                .map_err(|e| A2aError::new(ops::INVALID_PARAMS, format!("`params`: {e}"))),
        }
    }
}

/// What a method answers: one result, or a stream of them.
pub(super) enum Answer {
    One(Result<Out, A2aError>),
    Stream(tokio::sync::mpsc::Receiver<Value>),
}

/// What a call needs besides its parameters.
pub(super) struct Call<'a> {
    pub state: &'a AppState,
    pub a2a: &'a Arc<A2a>,
    pub caller: &'a Caller,
    pub request: &'a RequestContext,
}

async fn dispatch(call: Call<'_>, body: &Envelope<'_>) -> Answer {
    let invalid = |message: &str| Answer::One(Err(A2aError::new(ops::INVALID_REQUEST, message)));
    if body.jsonrpc.as_ref().and_then(Value::as_str) != Some("2.0") {
        return invalid(
            "not a JSON-RPC 2.0 request: {\"jsonrpc\": \"2.0\", \"id\": …, \"method\": \"SendMessage\", \"params\": {…}}",
        );
    }
    let Some(method) = body.method.as_ref().and_then(Value::as_str) else {
        return invalid("the request has no `method` string");
    };
    let params = match body.params {
        None => Params::Text("{}"),
        Some(params) if params.get().starts_with('{') => Params::Text(params.get()),
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
pub(super) async fn call_method(call: Call<'_>, method: &str, params: Params<'_>) -> Answer {
    let Call {
        state,
        a2a,
        caller,
        request,
    } = call;
    let sending = matches!(method, "SendMessage" | "SendStreamingMessage");
    if sending {
        let sent = params.send_request().and_then(|params| {
            let immediately = params.return_immediately();
            let stream = method == "SendStreamingMessage";
            Ok((
                ops::send(state, a2a, caller, params, request, stream)?,
                immediately,
            ))
        });
        return match sent {
            Ok((submitted, _)) if method == "SendStreamingMessage" => {
                Answer::Stream(ops::stream_of_send(submitted))
            }
            Ok((submitted, immediately)) => Answer::One(
                finish_send(a2a, caller, submitted, immediately)
                    .await
                    .map(|task| Out::Sent { task }),
            ),
            Err(e) => Answer::One(Err(e)),
        };
    }
    let params = match params.into_json() {
        Ok(params) => params,
        Err(e) => return Answer::One(Err(e)),
    };
    let params = &params;
    match method {
        "GetTask" => Answer::One(ops::get(a2a, caller, params).map(Out::Task)),
        "ListTasks" => Answer::One(ops::list(a2a, caller, params).map(Out::Json)),
        "CancelTask" => Answer::One(ops::cancel(a2a, caller, params).map(Out::Task)),
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
