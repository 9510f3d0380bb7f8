//! Finds or starts entity actors. Sharded (no single hot lock or mailbox), spreads actors
//! over several arbiters (threads) by key hash, and passivates idle actors safely:
//! every caller holds a [`Lease`] while it talks to an actor, and an actor is only dropped
//! from memory when nobody holds one and it has been idle for the timeout, both checked
//! under the shard lock that hands out leases. A message can therefore never reach an actor
//! that is going away, and a new activation always loads the latest committed state.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr, ArbiterHandle, Context};

use crate::domain::time::Timestamp;
use crate::metrics;

const SHARDS: usize = 64;

struct Entry<A: Actor> {
    addr: Addr<A>,
    leases: Arc<AtomicUsize>,
    last_used_ms: Arc<AtomicI64>,
}

pub struct Registry<K, A: Actor> {
    kind: &'static str,
    shards: Vec<Mutex<HashMap<K, Entry<A>>>>,
    arbiters: Vec<ArbiterHandle>,
    hasher: std::collections::hash_map::RandomState,
    pub idle_timeout: Duration,
}

/// Permission to talk to one actor; while any lease is alive the actor stays in memory.
pub struct Lease<A: Actor> {
    pub addr: Addr<A>,
    leases: Arc<AtomicUsize>,
}

impl<A: Actor> Drop for Lease<A> {
    fn drop(&mut self) {
        self.leases.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<K, A> Registry<K, A>
where
    K: Eq + Hash + Clone,
    A: Actor<Context = Context<A>>,
{
    pub fn new(kind: &'static str, arbiters: Vec<ArbiterHandle>, idle_timeout: Duration) -> Registry<K, A> {
        Registry {
            kind,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            arbiters,
            hasher: Default::default(),
            idle_timeout,
        }
    }

    fn shard(&self, key: &K) -> (usize, &Mutex<HashMap<K, Entry<A>>>) {
        let h = self.hasher.hash_one(key) as usize;
        (h, &self.shards[h % SHARDS])
    }

    /// A lease on the actor for `key`, starting it with `start` on its arbiter if it is not
    /// in memory. `start` loads state and may refuse (for example: no such item).
    pub fn lease<E>(&self, key: &K, start: impl FnOnce(&ArbiterHandle) -> Result<Addr<A>, E>) -> Result<Lease<A>, E> {
        let (h, shard) = self.shard(key);
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        let now = Timestamp::now().0;
        if let Some(e) = map.get(key).filter(|e| e.addr.connected()) {
            e.leases.fetch_add(1, Ordering::AcqRel);
            e.last_used_ms.store(now, Ordering::Release);
            return Ok(Lease { addr: e.addr.clone(), leases: e.leases.clone() });
        }
        // Loading under the shard lock means two callers never activate the same key twice.
        let addr = start(&self.arbiters[(h / SHARDS) % self.arbiters.len()])?;
        let leases = Arc::new(AtomicUsize::new(1));
        let entry = Entry { addr: addr.clone(), leases: leases.clone(), last_used_ms: Arc::new(AtomicI64::new(now)) };
        if map.insert(key.clone(), entry).is_none() {
            metrics::ACTORS_ACTIVE.with_label_values(&[self.kind]).inc();
        }
        Ok(Lease { addr, leases })
    }

    /// Drops from memory every actor nobody holds a lease on and that has been idle for the
    /// timeout: removes it under its shard lock (so no new lease can find it) and tells it to
    /// stop. With no lease there is no message in flight to it: every send holds a lease.
    pub fn sweep(&self) -> usize
    where
        A: actix::Handler<Passivate>,
    {
        let idle_ms = self.idle_timeout.as_millis() as i64;
        let now = Timestamp::now().0;
        let mut swept = 0;
        for shard in &self.shards {
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, e| {
                let idle =
                    e.leases.load(Ordering::Acquire) == 0 && now - e.last_used_ms.load(Ordering::Acquire) >= idle_ms;
                if idle {
                    e.addr.do_send(Passivate);
                    swept += 1;
                }
                !idle
            });
        }
        if swept > 0 {
            metrics::ACTORS_ACTIVE.with_label_values(&[self.kind]).sub(swept as i64);
        }
        swept
    }

    /// Called when an actor stops for any other reason (a failed write): forget it so the
    /// next caller activates a fresh one from the store.
    pub fn forget(&self, key: &K, me: &Addr<A>) {
        let (_, shard) = self.shard(key);
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(key).is_some_and(|e| e.addr == *me) {
            map.remove(key);
            metrics::ACTORS_ACTIVE.with_label_values(&[self.kind]).dec();
        }
    }

    pub fn active(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map_or(0, |m| m.len())).sum()
    }
}

/// Sent by the sweeper to an actor it just passivated.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Passivate;

/// Implements `Handler<Passivate>` (stop now) for entity actors.
#[macro_export]
macro_rules! passivates {
    ($actor:ty) => {
        impl actix::Handler<$crate::actors::registry::Passivate> for $actor {
            type Result = ();

            fn handle(&mut self, _: $crate::actors::registry::Passivate, ctx: &mut actix::Context<Self>) {
                actix::ActorContext::stop(ctx);
            }
        }
    };
}

/// One task per registry sweeps idle actors every half timeout (rather than one timer per
/// actor: tens of thousands of idle orders would otherwise wake up all the time).
pub fn spawn_sweeper<K, A>(registry: std::sync::Arc<Registry<K, A>>)
where
    K: Eq + Hash + Clone + Send + 'static,
    A: Actor<Context = Context<A>> + actix::Handler<Passivate>,
{
    let every = (registry.idle_timeout / 2).max(Duration::from_millis(50));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            registry.sweep();
        }
    });
}

/// Sends `msg` to the actor a fresh lease points at; if that activation has just stopped
/// (a failed write made it leave), sends once more to a new one loaded from the store.
pub async fn send_leased<A, M>(
    lease: impl Fn() -> Result<Lease<A>, crate::error::AppError>,
    msg: impl Fn() -> M,
) -> Result<M::Result, crate::error::AppError>
where
    A: Actor<Context = Context<A>> + actix::Handler<M>,
    M: actix::Message + Send + 'static,
    M::Result: Send,
{
    match lease()?.addr.send(msg()).await {
        Err(actix::MailboxError::Closed) => Ok(lease()?.addr.send(msg()).await?),
        other => Ok(other?),
    }
}

/// An entity actor: one per key, found through its registry.
pub trait Entity: Actor<Context = Context<Self>> {
    type Key: Eq + Hash + Clone + std::fmt::Debug;
    fn key(&self) -> Self::Key;
    fn registry(&self) -> &Registry<Self::Key, Self>;
}

/// The reply to a command whose write is `ticket`: `ok` once the write is durable. If it
/// failed, memory may be ahead of disk: this activation leaves, and the next caller loads
/// the entity afresh from the store.
pub fn reply_when_durable<A, T>(
    actor: &A,
    ticket: crate::store::CommitTicket,
    ok: T,
) -> actix::ResponseActFuture<A, Result<T, crate::error::AppError>>
where
    A: Entity,
    T: 'static,
{
    use actix::{ActorContext, ActorFutureExt, AsyncContext, WrapFuture};
    Box::pin(ticket.into_actor(actor).map(move |res, act: &mut A, ctx: &mut Context<A>| match res {
        Ok(()) => Ok(ok),
        Err(e) => {
            tracing::error!(key = ?act.key(), error = %e, "entity write failed; reloading the actor");
            act.registry().forget(&act.key(), &ctx.address());
            ctx.stop();
            Err(e.into())
        }
    }))
}
