//! The one error shape of the API:
//! `{"error": {"code": "...", "message": "...", "details": ...}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::agents::deploy::DeployError;
use crate::agents::manager::ManageError;
use crate::messaging::DeliveryError;
use crate::runtime::ExecutionFailure;

/// Every error answer, as the API document describes it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // described, not built: `ApiError` writes this shape
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, where, and how to fix it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// A stable machine-readable code, e.g. `agent_not_found`.
    pub code: String,
    /// What was wrong and how to fix it.
    pub message: String,
    /// Extra facts (the field, the limit, the agent), or null.
    pub details: serde_json::Value,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    pub fn unknown_agent(name: &str) -> Self {
        Self::not_found(
            "agent_not_found",
            format!("no agent named `{name}`; list agents with `caxton agents list` or GET /api/v1/agents"),
        )
        .with_details(json!({ "agent": name }))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": { "code": self.code, "message": self.message, "details": self.details }
        });
        (self.status, Json(body)).into_response()
    }
}

impl From<DeployError> for ApiError {
    fn from(e: DeployError) -> Self {
        let status = match &e {
            DeployError::NameTaken(_) | DeployError::Quota(_) => StatusCode::CONFLICT,
            DeployError::InvalidLimits(_)
            | DeployError::WrongWorld(_)
            | DeployError::StartFailed(_)
            | DeployError::InvalidDescription(_) => StatusCode::UNPROCESSABLE_ENTITY,
            DeployError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
            DeployError::InvalidName { .. }
            | DeployError::InvalidConfig(_)
            | DeployError::NotWasm(_)
            | DeployError::CoreModule
            | DeployError::InvalidComponent(_) => StatusCode::BAD_REQUEST,
        };
        let details = match &e {
            DeployError::StartFailed(f) => json!({ "failure": f.code() }),
            _ => Value::Null,
        };
        ApiError::new(status, e.code(), e.to_string()).with_details(details)
    }
}

impl From<ManageError> for ApiError {
    fn from(e: ManageError) -> Self {
        match &e {
            ManageError::NotFound(name) => ApiError::unknown_agent(name),
            ManageError::Unresponsive { failure, .. } => failure_error(failure, e.to_string()),
            ManageError::PingTimeout(_) => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "ping_timeout", e.to_string())
            }
            ManageError::Storage(_) => ApiError::internal(e.to_string()),
            ManageError::Invalid(why) => ApiError::bad_request("invalid_request", why.clone()),
            ManageError::DefinedByFile { .. } => {
                ApiError::new(StatusCode::CONFLICT, "defined_by_file", e.to_string())
            }
        }
    }
}

fn failure_error(failure: &ExecutionFailure, message: String) -> ApiError {
    let status = match failure {
        ExecutionFailure::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    };
    ApiError::new(status, failure.code(), message)
}

impl From<DeliveryError> for ApiError {
    fn from(e: DeliveryError) -> Self {
        let message = e.to_string();
        match &e {
            DeliveryError::UnknownAgent(name) => ApiError::unknown_agent(name),
            DeliveryError::UnknownCapability(c) => {
                ApiError::not_found("capability_not_found", message)
                    .with_details(json!({ "capability": c }))
            }
            DeliveryError::Suspended(a) => {
                ApiError::new(StatusCode::CONFLICT, "agent_suspended", message)
                    .with_details(json!({ "agent": a }))
            }
            DeliveryError::MailboxFull { agent, capacity } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "agent_busy", message)
                    .with_details(json!({ "agent": agent, "mailbox_capacity": capacity }))
            }
            DeliveryError::SelfRequest(_) => ApiError::bad_request("self_request", message),
            DeliveryError::Timeout { agent, timeout_ms } => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "reply_timeout", message)
                    .with_details(json!({ "agent": agent, "timeout_ms": timeout_ms }))
            }
            DeliveryError::NotQueued(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_queued", message)
            }
            DeliveryError::Stopped(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "agent_stopped", message)
            }
            DeliveryError::Cancelled(id) => {
                ApiError::new(StatusCode::CONFLICT, "conversation_cancelled", message)
                    .with_details(json!({ "conversation_id": id }))
            }
            DeliveryError::AgentFailed { agent, failure } => {
                failure_error(failure, message).with_details(json!({ "agent": agent }))
            }
            DeliveryError::Unreachable { agent, .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "agent_unreachable",
                message,
            )
            .with_details(json!({ "agent": agent, "retryable": true })),
        }
    }
}

/// Parses a JSON body, with an error that says where it went wrong.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the request body is empty; send a JSON object",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("invalid JSON body: {e}"))
            .with_details(json!({ "line": e.line(), "column": e.column() }))
    })
}

/// Longest plain-text error body rewritten by [`json_rejections`].
const MAX_REJECTION_BYTES: usize = 16 * 1024;

/// axum answers a request its extractors cannot read (a query string or
/// path segment that does not parse, a method the route lacks) in plain
/// text; every error of this API has the JSON shape, so those answers are
/// rewritten into it, keeping their status and headers (`Allow`).
pub async fn json_rejections(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};

    let response = next.run(request).await;
    let status = response.status();
    // Plain text, or no content type at all (rmcp's 406 and 415).
    let plain_text = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain_text {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_REJECTION_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::NOT_ACCEPTABLE => "not_acceptable",
        s if s.is_server_error() => "internal_error",
        _ => "invalid_request",
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("the request was refused")
            .to_string()
    } else {
        text
    };
    let rewritten = ApiError::new(status, code, message).into_response();
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.remove(CONTENT_TYPE);
    let (new_parts, body) = rewritten.into_parts();
    parts.headers.extend(new_parts.headers);
    Response::from_parts(parts, body)
}
