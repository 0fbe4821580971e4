//! The cluster as this node sees it (`docs/CLUSTER.md`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::cluster::ClusterStatus;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(drain))
        .routes(routes!(resume))
}

fn not_in_cluster() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_cluster",
        "this node is not in a cluster: set cluster.nats_url in caxton.yaml to join one",
    )
}

/// A node to drain or resume.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NodeBody {
    /// A live node's name (`caxton cluster status` lists them).
    node: String,
}

/// Drains (or ends the drain of) a live node.
async fn set_draining(
    state: &AppState,
    bytes: Result<Bytes, BytesRejection>,
    draining: bool,
) -> Result<Json<Value>, ApiError> {
    let cluster = state.cluster.get().ok_or_else(not_in_cluster)?;
    let body: NodeBody = super::error::parse_json(&super::agents::read_body(bytes)?)?;
    let status = cluster.status();
    let known: Vec<&str> = status.nodes.iter().map(|n| n.node.as_str()).collect();
    if !known.contains(&body.node.as_str()) {
        return Err(ApiError::not_found(
            "node_not_found",
            format!(
                "no live node `{}` in the cluster; the live nodes: {}",
                body.node,
                known.join(", ")
            ),
        ));
    }
    cluster.drain(&body.node, draining).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster_unavailable",
            e.to_string(),
        )
    })?;
    Ok(Json(json!({"node": body.node, "draining": draining})))
}

/// Drains a node before maintenance: its agents move to the other nodes
/// (each starts elsewhere before this node stops its copy) and no agent
/// is placed on it until `resume`.
#[utoipa::path(post, path = "/api/v1/cluster/drain", tag = "operations", operation_id = "cluster_drain",
    request_body = NodeBody,
    responses(
        (status = 200, description = "Draining; `caxton cluster status` shows its agents leave", body = Object),
        (status = 404, description = "Not in a cluster, or no such live node", body = ErrorBody),
        (status = 503, description = "NATS cannot be reached", body = ErrorBody)))]
async fn drain(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    set_draining(&state, bytes, true).await
}

/// Ends a node's drain: agents may be placed on it again.
#[utoipa::path(post, path = "/api/v1/cluster/resume", tag = "operations", operation_id = "cluster_resume",
    request_body = NodeBody,
    responses(
        (status = 200, description = "No longer draining", body = Object),
        (status = 404, description = "Not in a cluster, or no such live node", body = ErrorBody),
        (status = 503, description = "NATS cannot be reached", body = ErrorBody)))]
async fn resume(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    set_draining(&state, bytes, false).await
}

/// This node's view of the cluster: its name, its NATS connection and the
/// live nodes.
#[utoipa::path(get, path = "/api/v1/cluster", tag = "operations", operation_id = "cluster_status",
    responses(
        (status = 200, description = "The cluster as this node sees it", body = ClusterStatus),
        (status = 404, description = "This node is not in a cluster (`cluster.nats_url` is not set)", body = ErrorBody)))]
async fn status(State(state): State<AppState>) -> Result<Json<ClusterStatus>, ApiError> {
    match state.cluster.get() {
        Some(cluster) => Ok(Json(cluster.status())),
        None => Err(not_in_cluster()),
    }
}
