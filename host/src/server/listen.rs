//! Where a connection enters: accepts connections (plain or TLS), bounds
//! how many are open and how long a client may take to send a request's
//! head, and hands each request to the router with the peer's address.
//!
//! `axum::serve` gives hyper no timer, so a client that opens a connection
//! and sends its headers one byte a minute holds a socket and a task for
//! ever; ten thousand of them exhaust the process's file descriptors. This
//! loop sets hyper's header-read timeout (which also ends idle keep-alive
//! connections) and refuses connections beyond `server.max_connections`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt;

/// How long connections may live and how many there may be.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// From the first byte a request's head is awaited (or from the end of
    /// the previous response) to its last header line.
    pub header_read_timeout: Duration,
    /// Connections open at once; more are closed as soon as accepted.
    pub max_connections: usize,
}

/// Serves `app` on `listener` until `stop` completes, then lets requests in
/// flight finish (idle connections are closed at once).
pub async fn serve_connections<L>(
    mut listener: L,
    app: Router,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()>,
) where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let graceful = GracefulShutdown::new();
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(stop);
    let mut full = false;
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let Ok(slot) = open.clone().try_acquire_owned() else {
            // Once per flood, not once per connection.
            if !full {
                tracing::warn!(
                    %peer,
                    max = limits.max_connections,
                    "refusing connections: server.max_connections are open"
                );
            }
            full = true;
            continue; // dropping `io` closes it
        };
        full = false;
        let service = app
            .clone()
            .map_request(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
