//! `GET /api/v1/backup`: a consistent backup of the running server, as a
//! `.tar.gz` stream (admin scope). The archive is written to a temporary
//! file beside the data directory first, so a slow client never holds the
//! database, and removed once sent.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::backup::{self, Sources};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(download))
}

/// Download a consistent backup of the running server as a `.tar.gz`.
///
/// The archive holds the database, the admin token, the agent
/// definitions, the configuration file (when the server was started with
/// one) and a manifest; on a node of a cluster, also the cluster's agent
/// registry, components and agents' key-value state.
#[utoipa::path(
    get,
    path = "/api/v1/backup",
    tag = "backup",
    operation_id = "backup_download",
    responses(
        (
            status = 200,
            description = "The backup archive, streamed",
            content_type = "application/gzip",
            headers(("content-disposition" = String, description = "`attachment; filename=\"caxton-backup.tar.gz\"`")),
        ),
        (status = 500, description = "The backup could not be written or read", body = ErrorBody),
        (status = 503, description = "In a cluster: the cluster's registry could not be read", body = ErrorBody),
    )
)]
async fn download(State(state): State<AppState>) -> Result<Response, ApiError> {
    let storage = state.storage.clone();
    // In a cluster, the registry, components and agents' state (they
    // live in NATS) go in too: any node's backup restores the cluster.
    let cluster_dir = match state.cluster.get() {
        Some(cluster) => {
            let dir = tempfile::Builder::new()
                .prefix(".caxton-backup-cluster-")
                .tempdir_in(storage.dir())
                .map_err(|e| ApiError::internal(format!("cannot create the backup file: {e}")))?;
            let (agents, keys) = cluster.export_registry(dir.path()).await.map_err(|e| {
                ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "cluster_unavailable",
                    format!(
                    "this node is in a cluster and {e}; a backup without the cluster's registry would not restore it, so none was taken"
                    ),
                )
            })?;
            tracing::info!(
                agents,
                state_keys = keys,
                "cluster registry added to the backup"
            );
            Some(dir)
        }
        None => None,
    };
    let sources = Sources {
        data_dir: storage.dir().to_path_buf(),
        agents_dir: Some(state.config_agents.dir().to_path_buf()),
        config: state.config_path.clone(),
        cluster_dir: cluster_dir.as_ref().map(|d| d.path().to_path_buf()),
    };
    let temp = tempfile::Builder::new()
        .prefix(".caxton-backup-")
        .suffix(".tar.gz")
        .tempfile_in(storage.dir())
        .map_err(|e| ApiError::internal(format!("cannot create the backup file: {e}")))?
        .into_temp_path();
    let path = temp.to_path_buf();
    let manifest = tokio::task::spawn_blocking(move || backup::create(&storage, &sources, &path))
        .await
        .map_err(|e| ApiError::internal(format!("backup task failed: {e}")))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    drop(cluster_dir);
    let file = tokio::fs::File::open(&temp)
        .await
        .map_err(|e| ApiError::internal(format!("cannot read the backup: {e}")))?;
    tracing::info!(files = manifest.files.len(), "backup taken");
    // The temporary path lives as long as the stream: it is removed when
    // the last byte is sent or the client goes away.
    let stream = futures_util::stream::unfold((file, temp), |(mut file, temp)| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), (file, temp)))
            }
            Err(e) => Some((Err(e), (file, temp))),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"caxton-backup.tar.gz\"",
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
