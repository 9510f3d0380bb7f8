//! The HTTP server under warp's filter: accepts connections and serves HTTP/1.1 on them with
//! hyper, because `warp::serve` exposes none of what keeps a public server alive. Each
//! connection gets a deadline for a started request head and for idling between requests
//! ([`conn`]); the handler bounds the body read itself (`server.body_read_timeout_ms`). At
//! most `server.max_connections` are open: at the cap the longest-idle connection is closed
//! to make room, so a flood of silent connections cannot lock out real clients; when none is
//! idle, new connections wait in the listen backlog. [`Request`] is a request as the
//! handlers (`http`'s and the console's) see it.

mod conn;
pub mod request;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{AbortHandle, Abortable};
use hyper::body::{Body, Incoming};
use hyper::Response;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::ServerSettings;
use crate::whole;
pub use conn::ClientAddr;
use conn::{ConnState, Guarded, Limits, Phase, Tracking};
pub use request::Request;

/// Serves `service` on `listener` until `shutdown` resolves, then stops accepting and waits
/// for open requests to finish (idle connections close at once). Bound that wait yourself.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    settings: &ServerSettings,
    shutdown: impl Future<Output = ()>,
) where
    S: tower_service::Service<hyper::Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limits = Limits {
        header_read: Duration::from_millis(settings.header_read_timeout_ms),
        keep_alive_idle: Duration::from_millis(settings.keep_alive_idle_timeout_ms),
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper's own header timeout also runs between keep-alive requests; ours tells them apart.
    http.header_read_timeout(None);
    let open = Arc::new(Open::new(settings.max_connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = open.slot() => permit,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => (stream, peer),
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let state = Arc::new(ConnState::new(open.epoch));
        let io = TokioIo::new(Guarded::new(stream, state.clone(), limits));
        let service = Tracking { inner: service.clone(), state: state.clone(), peer: ClientAddr(peer) };
        let connection = graceful.watch(http.serve_connection(io, service));
        let (abort, registration) = AbortHandle::new_pair();
        let entry = open.insert(state, abort, permit);
        tokio::spawn(async move {
            let _entry = entry;
            match Abortable::new(connection, registration).await {
                Ok(Err(e)) => tracing::debug!("connection closed: {e}"),
                Err(_) => tracing::debug!("idle connection closed to make room"),
                Ok(Ok(())) => {}
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The open connections, for the cap and for choosing which idle one makes room.
struct Open {
    epoch: Instant,
    slots: Arc<Semaphore>,
    conns: Mutex<Conns>,
}

#[derive(Default)]
struct Conns {
    by_id: HashMap<u64, (Arc<ConnState>, AbortHandle)>,
    next_id: u64,
}

/// A connection's place among the open ones, given back when its task ends.
struct Entry {
    open: Arc<Open>,
    id: u64,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.open.conns().by_id.remove(&self.id);
    }
}

impl Open {
    fn new(max: usize) -> Open {
        Open { epoch: Instant::now(), slots: Arc::new(Semaphore::new(max)), conns: Mutex::default() }
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, Conns> {
        // A panic elsewhere while holding the lock leaves the map consistent (one insert or remove).
        whole::lock(&self.conns)
    }

    /// A free slot; at the cap, closes the longest-idle connection and takes its slot.
    /// Without an idle one it waits for any to close, looking again now and then for one
    /// that went idle meanwhile.
    async fn slot(&self) -> OwnedSemaphorePermit {
        loop {
            if let Ok(permit) = self.slots.clone().try_acquire_owned() {
                return permit;
            }
            self.close_idlest();
            let wait = self.slots.clone().acquire_owned();
            if let Ok(Ok(permit)) = tokio::time::timeout(Duration::from_millis(50), wait).await {
                return permit;
            }
        }
    }

    fn close_idlest(&self) {
        let conns = self.conns();
        let idlest = conns
            .by_id
            .values()
            .filter_map(|(state, abort)| match state.phase() {
                (Phase::Idle, since) => Some((since, abort)),
                _ => None,
            })
            .min_by_key(|(since, _)| *since);
        if let Some((_, abort)) = idlest {
            abort.abort();
        }
    }

    fn insert(self: &Arc<Self>, state: Arc<ConnState>, abort: AbortHandle, slot: OwnedSemaphorePermit) -> Entry {
        let mut conns = self.conns();
        let id = conns.next_id;
        conns.next_id += 1;
        conns.by_id.insert(id, (state, abort));
        Entry { open: self.clone(), id, _slot: slot }
    }
}

/// Per-connection failures (a reset before accept) are nothing; running out of file
/// descriptors is worth a pause rather than a hot loop.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    tracing::error!("accept failed: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
