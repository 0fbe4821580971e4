//! Where a connection enters: accepts connections (plain or TLS), learns
//! who is on the other end ([`PeerOwner`]), decides whether there is room
//! for it, and hands each request to the router with the peer's address
//! and owner.
//!
//! `axum::serve` gives hyper no timer, so a client that opens a connection
//! and sends its headers one byte a minute holds a socket and a task for
//! ever; ten thousand of them exhaust the process's file descriptors. This
//! loop sets hyper's header-read timeout (which also ends idle keep-alive
//! connections) and bounds the connections open at once:
//!
//! - one peer (a remote address, or one local account) holds at most
//!   `server.max_connections_per_peer`;
//! - the last slots of `server.max_connections` are kept for the operator
//!   (loopback connections of the server's own user), so a flood from
//!   anyone else cannot lock the operator out;
//! - when the slots are taken, a connection with no request in flight is
//!   closed to make room (the flooding peer's first, oldest first); only
//!   when every connection is busy is the newcomer refused.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt;

use super::peer::PeerOwner;

/// How long connections may live and how many there may be.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// From the first byte a request's head is awaited (or from the end of
    /// the previous response) to its last header line.
    pub header_read_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections one peer other than the operator may hold at once.
    pub max_connections_per_peer: usize,
}

impl ConnectionLimits {
    /// Slots only the operator's connections may take: a sixteenth of the
    /// total, at least one.
    fn operator_reserve(&self) -> usize {
        (self.max_connections / 16).max(1)
    }
}

/// Whom a connection counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum PeerKey {
    /// A peer on another machine, by address.
    Address(IpAddr),
    /// Another local account, by uid.
    Account(u32),
    /// The server's own user, or a loopback peer whose owner is unknown.
    Local,
}

impl PeerKey {
    fn of(peer: SocketAddr, owner: PeerOwner) -> PeerKey {
        match owner {
            PeerOwner::Remote => PeerKey::Address(peer.ip().to_canonical()),
            PeerOwner::OtherUser(uid) => PeerKey::Account(uid),
            PeerOwner::ServerUser | PeerOwner::Unknown => PeerKey::Local,
        }
    }
}

/// One open connection, as the admission decisions see it.
struct Connection {
    key: PeerKey,
    operator: bool,
    opened: Instant,
    /// Requests whose responses are not yet fully sent.
    busy: AtomicUsize,
    /// Told when the connection must make room for another.
    shed: tokio::sync::Notify,
}

/// The open connections and how many each peer holds.
#[derive(Default)]
struct Table {
    next_id: u64,
    open: HashMap<u64, Arc<Connection>>,
    per_peer: HashMap<PeerKey, usize>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    PeerFull,
    Full,
}

impl Table {
    /// Admits a connection, closing idle ones to make room when needed.
    fn admit(
        &mut self,
        key: PeerKey,
        operator: bool,
        limits: &ConnectionLimits,
    ) -> Result<(u64, Arc<Connection>), Refusal> {
        if !operator
            && self.per_peer.get(&key).copied().unwrap_or(0) >= limits.max_connections_per_peer
            && !self.shed_one(|c| c.key == key)
        {
            return Err(Refusal::PeerFull);
        }
        let room = if operator {
            limits.max_connections
        } else {
            limits
                .max_connections
                .saturating_sub(limits.operator_reserve())
                .max(1)
        };
        while self.open.len() >= room {
            let made_room = self.shed_one(|c| !c.operator) || (operator && self.shed_one(|_| true));
            if !made_room {
                return Err(Refusal::Full);
            }
        }
        let connection = Arc::new(Connection {
            key,
            operator,
            opened: Instant::now(),
            busy: AtomicUsize::new(0),
            shed: tokio::sync::Notify::new(),
        });
        let id = self.next_id;
        self.next_id += 1;
        self.open.insert(id, connection.clone());
        *self.per_peer.entry(key).or_default() += 1;
        Ok((id, connection))
    }

    /// Closes one idle connection among those `eligible`: of the peer with
    /// the most connections, the oldest. False when none is idle.
    fn shed_one(&mut self, eligible: impl Fn(&Connection) -> bool) -> bool {
        let victim = self
            .open
            .iter()
            .filter(|(_, c)| eligible(c) && c.busy.load(Ordering::Acquire) == 0)
            .max_by_key(|(_, c)| {
                let held = self.per_peer.get(&c.key).copied().unwrap_or(0);
                (held, std::cmp::Reverse(c.opened))
            })
            .map(|(id, _)| *id);
        match victim {
            Some(id) => {
                if let Some(connection) = self.remove(id) {
                    connection.shed.notify_one();
                }
                true
            }
            None => false,
        }
    }

    fn remove(&mut self, id: u64) -> Option<Arc<Connection>> {
        let connection = self.open.remove(&id)?;
        if let Some(held) = self.per_peer.get_mut(&connection.key) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                self.per_peer.remove(&connection.key);
            }
        }
        Some(connection)
    }
}

/// Counts a request as in flight from its head to its body's last byte.
struct Busy(Arc<Connection>);

impl Busy {
    fn start(connection: &Arc<Connection>) -> Busy {
        connection.busy.fetch_add(1, Ordering::AcqRel);
        Busy(connection.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted until it is sent (a
/// backup download or an event stream is busy until its end).
struct CountedBody {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for CountedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection that can tell the server's own address on it (the other
/// half of the four-tuple that finds the client's socket).
pub trait ServerEnd {
    /// The local address of the accepted socket.
    fn server_end(&self) -> std::io::Result<SocketAddr>;
}

impl ServerEnd for tokio::net::TcpStream {
    fn server_end(&self) -> std::io::Result<SocketAddr> {
        self.local_addr()
    }
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
    L::Io: ServerEnd,
{
    let listening = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let table = Arc::new(Mutex::new(Table::default()));
    let (stopping, _) = tokio::sync::watch::channel(false);
    // Every connection task holds a sender; when all are gone, all are done.
    let (running, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(stop);
    let refusals = Arc::new(std::sync::atomic::AtomicBool::new(false));
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let (table, app, http, running) =
            (table.clone(), app.clone(), http.clone(), running.clone());
        let mut stopping = stopping.subscribe();
        let refusals = refusals.clone();
        tokio::spawn(async move {
            let _running = running;
            // Read before admission: the owner decides which slots it may take.
            let owner = PeerOwner::of(peer, io.server_end().unwrap_or(listening));
            let admitted =
                lock(&table).admit(PeerKey::of(peer, owner), owner.may_be_operator(), &limits);
            let (id, connection) = match admitted {
                Ok(admitted) => {
                    refusals.store(false, Ordering::Relaxed);
                    admitted
                }
                Err(why) => {
                    // Once per flood, not once per connection.
                    if !refusals.swap(true, Ordering::Relaxed) {
                        tracing::warn!(%peer, ?owner, ?why, max = limits.max_connections,
                            per_peer = limits.max_connections_per_peer,
                            "refusing connections: every slot is busy (server.max_connections, server.max_connections_per_peer)");
                    }
                    return; // dropping `io` closes it
                }
            };
            let counted = connection.clone();
            let service = tower::service_fn(move |mut request: hyper::Request<Incoming>| {
                let busy = Busy::start(&counted);
                request.extensions_mut().insert(ConnectInfo(peer));
                request.extensions_mut().insert(owner);
                let app = app.clone();
                async move {
                    let response = match app.oneshot(request.map(Body::new)).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    Ok::<_, Infallible>(response.map(|body| CountedBody { body, _busy: busy }))
                }
            });
            let serving =
                http.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
            tokio::pin!(serving);
            let result = tokio::select! {
                result = serving.as_mut() => result,
                () = connection.shed.notified() => {
                    // Chosen while idle; a request that began since finishes first.
                    if connection.busy.load(Ordering::Acquire) == 0 {
                        tracing::debug!(%peer, "closed an idle connection to make room");
                        Ok(())
                    } else {
                        serving.as_mut().graceful_shutdown();
                        serving.await
                    }
                }
                () = async {
                    // The guard `wait_for` answers is not `Send`: dropped here.
                    let _ = stopping.wait_for(|stop| *stop).await;
                } => {
                    serving.as_mut().graceful_shutdown();
                    serving.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            lock(&table).remove(id);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    drop(running);
    let _ = all_done.recv().await;
}

fn lock(table: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    // The table holds counts only; a panic elsewhere leaves it usable.
    table
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_peer: usize) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(1),
            max_connections: max,
            max_connections_per_peer: per_peer,
        }
    }

    fn remote(n: u8) -> PeerKey {
        PeerKey::Address(IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn one_peer_cannot_take_more_than_its_share_of_busy_slots() {
        let limits = limits(32, 4);
        let mut table = Table::default();
        let held: Vec<_> = (0..4)
            .map(|_| table.admit(remote(1), false, &limits).expect("room"))
            .collect();
        for (_, c) in &held {
            c.busy.store(1, Ordering::Release);
        }
        assert!(matches!(
            table.admit(remote(1), false, &limits),
            Err(Refusal::PeerFull)
        ));
        assert!(
            table.admit(remote(2), false, &limits).is_ok(),
            "another peer still gets in"
        );
    }

    #[test]
    fn idle_connections_make_room_flooder_first() {
        let limits = limits(16, 16);
        let mut table = Table::default();
        // 15 non-operator slots: the flooder takes 14 idle ones, another peer one busy one.
        let flood: Vec<_> = (0..14)
            .map(|_| table.admit(remote(1), false, &limits).expect("room"))
            .collect();
        let (_, other) = table.admit(remote(2), false, &limits).expect("room");
        other.busy.store(1, Ordering::Release);
        // Full for non-operators: a newcomer sheds one of the flooder's idle ones.
        let (_, newcomer) = table
            .admit(remote(3), false, &limits)
            .expect("an idle one is shed");
        newcomer.busy.store(1, Ordering::Release);
        assert_eq!(table.per_peer[&remote(1)], 13);
        assert!(table.open.values().any(|c| Arc::ptr_eq(c, &other)));
        drop(flood);
    }

    #[test]
    fn the_operator_gets_in_when_every_other_slot_is_busy() {
        let limits = limits(16, 16);
        let mut table = Table::default();
        for _ in 0..15 {
            let (_, c) = table.admit(remote(1), false, &limits).expect("room");
            c.busy.store(1, Ordering::Release);
        }
        assert!(matches!(
            table.admit(remote(2), false, &limits),
            Err(Refusal::Full)
        ));
        let (_, operator) = table
            .admit(PeerKey::Local, true, &limits)
            .expect("the reserve");
        operator.busy.store(1, Ordering::Release);
        assert!(matches!(
            table.admit(PeerKey::Local, true, &limits),
            Err(Refusal::Full)
        ));
    }

    #[test]
    fn removal_keeps_counts_right() {
        let limits = limits(8, 8);
        let mut table = Table::default();
        let (id, _) = table.admit(remote(1), false, &limits).expect("room");
        assert!(table.remove(id).is_some());
        assert!(
            table.remove(id).is_none(),
            "a shed connection is removed once"
        );
        assert!(table.per_peer.is_empty());
    }
}
