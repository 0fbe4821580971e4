//! The cluster as this node sees it (`docs/CLUSTER.md`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::cluster::ClusterStatus;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status))
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
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_cluster",
            "this node is not in a cluster: set cluster.nats_url in caxton.yaml to join one",
        )),
    }
}
