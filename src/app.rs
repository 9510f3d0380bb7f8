//! Lifecycle: open the store, start the arbiters, build the shop and its workers (in
//! [`crate::startup`]), serve HTTP until the shutdown signal, then stop in order: stop
//! accepting, finish open requests (bounded by `server.shutdown_grace_secs`), stop workers,
//! let the committer drain every queued write, flush the store, stop the arbiters.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::Arbiter;
use anyhow::Context as _;

use crate::config::Settings;
use crate::http::{Forwarder, Front, RelayKey, SagaCalls, StockCalls};
use crate::startup::{self, Owners, Workers};
use crate::store::{Membership, Store, Wait};

/// What a server of a cluster logs once it serves (operators and the cluster tests wait
/// for it).
const LEADING: &str = "leading: this server now serves requests itself";

/// Runs the server on the current thread until `shutdown` resolves. Builds the actix system
/// on a multi-thread tokio runtime, so warp's connections run on the tokio workers and talk
/// to actors (on their own arbiters) through their mailboxes. `on_listen` receives the
/// bound address (port 0 picks a free one).
pub fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_listen: impl FnOnce(SocketAddr) + Send + 'static,
) -> anyhow::Result<()> {
    refuse_weak_secrets(&settings)?;
    let workers = settings.arbiter_count();
    let system = actix::System::with_tokio_rt(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .thread_name("cartwright-http")
            .build()
            .expect("tokio runtime")
    });
    system.block_on(serve(settings, shutdown, on_listen))
}

async fn serve(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_listen: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    // Polled once before anything else: the signal handlers are then in place before anyone
    // can learn the address, so a SIGTERM right after "listening" drains the server instead
    // of killing it with the default action.
    let mut shutdown = std::pin::pin!(futures::FutureExt::fuse(shutdown));
    let requested_early = futures::poll!(shutdown.as_mut()).is_ready();
    let settings = Arc::new(settings);
    let listener = tokio::net::TcpListener::bind(settings.server.addr)
        .await
        .with_context(|| format!("binding {}", settings.server.addr))?;
    let addr = listener.local_addr()?;
    let cluster = settings.cluster.advertising(addr);
    let membership = Arc::new(
        blocking({
            let (storage, cluster) = (settings.storage.clone(), cluster.clone());
            move || Membership::join(&storage, &cluster)
        })
        .await
        .with_context(|| format!("opening {} to join its cluster", settings.storage.describe()))?,
    );
    let opened = blocking({
        let (storage, cluster, joined) = (settings.storage.clone(), cluster.clone(), membership.clone());
        move || Store::open_when_free(&storage, &cluster, Wait::No, &joined)
    })
    .await
    .with_context(|| format!("opening {}", settings.storage.describe()))?;
    let relay_key = membership.secret().map(RelayKey::new);
    let arbiters: Vec<Arbiter> = (0..settings.arbiter_count()).map(|_| Arbiter::new()).collect();
    let (begin_tx, begin_rx) = tokio::sync::oneshot::channel::<()>();
    let listening = |front: Arc<Front>| {
        tracing::info!(
            durability = ?settings.storage.durability,
            store = %settings.storage.path.display(),
            node_id = %cluster.node_id,
            "listening on {addr}"
        );
        let (api, server_settings) = (warp::service(crate::http::api(front)), settings.server.clone());
        tokio::spawn(async move {
            crate::server::serve(listener, api, &server_settings, async move {
                let _ = begin_rx.await;
            })
            .await
        })
    };

    // A server of a cluster forwards what it does not own to the owner.
    let forwarder =
        membership.is_clustered().then(|| Arc::new(Forwarder::new(membership.clone(), &cluster, relay_key.clone())));
    // Stock and sagas in another server's partitions are changed by a call to it.
    let calls = forwarder.clone();
    let owners =
        move || calls.clone().map(|f| Owners { stock: Arc::new(StockCalls(f.clone())), sagas: Arc::new(SagaCalls(f)) });
    let front = Front::new(settings.server.clone(), forwarder, relay_key);
    let (store, shop, workers, mut server) = match opened {
        Some(store) => {
            let (shop, workers) = lead(&settings, &store, &arbiters, owners()).await?;
            // Serving before it listens: nobody reaches it before it can answer.
            front.lead(shop.clone());
            let server = listening(front);
            if membership.is_clustered() {
                tracing::info!("{LEADING}");
            }
            on_listen(addr);
            (store, shop, workers, server)
        }
        None => {
            let mut server = listening(front.clone());
            on_listen(addr);
            tracing::info!("following: another server holds the store's lease; forwarding requests to it");
            let (give_up, stop_waiting) = tokio::sync::watch::channel(false);
            let waiting = blocking({
                let (storage, cluster, joined) = (settings.storage.clone(), cluster.clone(), membership.clone());
                move || Store::open_when_free(&storage, &cluster, Wait::Until(stop_waiting), &joined)
            });
            tokio::pin!(waiting);
            let opened = tokio::select! {
                store = &mut waiting => store.with_context(|| format!("opening {}", settings.storage.describe()))?,
                _ = async { if !requested_early { shutdown.as_mut().await } } => {
                    tracing::info!("shutdown requested while following");
                    let _ = give_up.send(true);
                    drain(begin_tx, &mut server, settings.server.shutdown_grace_secs).await;
                    // The lease may have come free meanwhile: then it is given back at once.
                    if let Ok(Some(store)) = waiting.await {
                        blocking(move || store.close()).await?;
                    }
                    blocking(move || membership.leave()).await?;
                    tracing::info!("stopped cleanly");
                    return Ok(());
                }
            };
            let Some(store) = opened else {
                anyhow::bail!("stopped waiting for the store's lease without being asked to");
            };
            let (shop, workers) = lead(&settings, &store, &arbiters, owners()).await?;
            front.lead(shop.clone());
            tracing::info!("{LEADING}");
            (store, shop, workers, server)
        }
    };
    // Held to the end: the workers and the server's last requests use it.
    let _shop = shop;

    tokio::select! {
        _ = &mut server => {}
        _ = async { if !requested_early { shutdown.await } } => {
            tracing::info!("shutdown requested: no longer accepting connections");
            drain(begin_tx, &mut server, settings.server.shutdown_grace_secs).await;
        }
    }

    workers.stop().await;
    // Every reply already waited for its write; this drains writes nobody waits for.
    let store_for_close = store.clone();
    tokio::task::spawn_blocking(move || store_for_close.close()).await??;
    blocking(move || membership.leave()).await?;
    for arbiter in &arbiters {
        arbiter.stop();
    }
    for arbiter in arbiters {
        let _ = tokio::task::spawn_blocking(move || arbiter.join()).await;
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Stops the HTTP server accepting and waits for its open requests, at most `grace_secs`;
/// then closes what is left.
async fn drain(begin: tokio::sync::oneshot::Sender<()>, server: &mut tokio::task::JoinHandle<()>, grace_secs: u64) {
    let _ = begin.send(());
    if tokio::time::timeout(Duration::from_secs(grace_secs), &mut *server).await.is_err() {
        tracing::warn!(grace_secs, "open requests did not finish in time; closing them");
        server.abort();
    }
}

/// Builds the shop on `store`, recovers its sagas and starts its workers: from then on this
/// server answers requests itself.
async fn lead(
    settings: &Arc<Settings>,
    store: &Store,
    arbiters: &[Arbiter],
    owners: Option<Owners>,
) -> anyhow::Result<(Arc<crate::startup::Shop>, Workers)> {
    let shop = Arc::new(startup::shop(
        settings.clone(),
        store.clone(),
        arbiters.iter().map(|a| a.handle()).collect(),
        startup::payment_gateway(settings)?,
        owners,
    )?);
    shop.sagas.boot().await?;
    shop.bulk.mark_interrupted().await?;
    let workers = Workers::start(&shop)?;
    Ok((shop, workers))
}

/// Runs blocking store work (connecting, waiting for a lease) off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> anyhow::Result<T> {
    Ok(tokio::task::spawn_blocking(work).await??)
}

/// A server running on a thread of its own, as tests and benchmarks start one.
pub struct Spawned {
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

/// Starts [`run`] on a new thread and waits until it listens. `Err` with the server's own
/// reason when it stops before listening (settings refused, store unreadable...).
pub async fn spawn(settings: Settings) -> anyhow::Result<Spawned> {
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        run(
            settings,
            async move {
                let _ = stop_rx.await;
            },
            move |addr| {
                let _ = addr_tx.send(addr);
            },
        )
    });
    match addr_rx.await {
        Ok(addr) => Ok(Spawned { addr, stop, thread }),
        Err(_) => Err(join(thread).await.err().unwrap_or_else(|| anyhow::anyhow!("stopped without an error"))),
    }
}

impl Spawned {
    /// Graceful stop (as on SIGTERM); the server's result once it has stopped.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        join(self.thread).await
    }

    /// As [`Spawned::stop`], blocking the calling thread: for a `Drop`, which cannot await.
    pub fn stop_blocking(self) -> std::thread::Result<anyhow::Result<()>> {
        let _ = self.stop.send(());
        self.thread.join()
    }
}

/// The server thread's result; a panic on it goes on in the caller.
async fn join(thread: std::thread::JoinHandle<anyhow::Result<()>>) -> anyhow::Result<()> {
    match tokio::task::spawn_blocking(move || thread.join()).await? {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Public secrets are tolerated only where nobody else can connect: on a loopback address
/// each one is logged loudly, anywhere else the server does not start.
fn refuse_weak_secrets(settings: &Settings) -> anyhow::Result<()> {
    let weak = settings.weak_secrets();
    let addr = settings.server.addr;
    if addr.ip().is_loopback() {
        for secret in &weak {
            tracing::warn!("INSECURE, tolerated only because server.addr {addr} is loopback: {secret}");
        }
        return Ok(());
    }
    if weak.is_empty() {
        return Ok(());
    }
    let reasons: String = weak.iter().map(|w| format!("\n  - {w}")).collect();
    anyhow::bail!("refusing to serve on {addr} with weak secrets:{reasons}")
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_secrets_are_tolerated_on_loopback_only() {
        let mut settings = Settings::load_layers(None, false).unwrap();
        settings.server.addr = "[::1]:8080".parse().unwrap();
        assert!(refuse_weak_secrets(&settings).is_ok());
        settings.server.addr = "10.0.0.7:8080".parse().unwrap();
        let err = refuse_weak_secrets(&settings).unwrap_err().to_string();
        assert!(err.contains("auth.admin_token is the shipped default"), "{err}");
        settings.auth.admin_token = "an-admin-token-nobody-knows".into();
        settings.auth.fulfillment_token = "a-fulfillment-token-nobody-knows".into();
        settings.webhooks.payment_secret = "a-payment-secret-nobody-knows".into();
        settings.webhooks.carrier_secret = "a-carrier-secret-nobody-knows".into();
        assert!(refuse_weak_secrets(&settings).is_ok());
    }
}
