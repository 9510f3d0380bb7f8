//! Finds or starts entity actors. Sharded (no single hot lock or mailbox), spreads actors
//! over several arbiters (threads) by key hash, and passivates idle actors safely:
//! every caller holds a [`Lease`] while it talks to an actor, and an actor is only dropped
//! from memory when nobody holds one and it has been idle for the timeout, both checked
//! under the shard lock that hands out leases. A message can therefore never reach an actor
//! that is going away, and a new activation always loads the latest committed state.
//! Every message to an entity goes through [`Lease::send`], which refuses commands to a key
//! an operator paused (quarantine); every message type says whether it is a command.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr, ArbiterHandle, Context};

use super::quarantine::QuarantineBoard;
use super::{ActorError, ActorFailure};
use crate::domain::quarantine::QuarantineKey;
use crate::domain::time::Timestamp;
use crate::metrics;
use crate::whole;

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
    quarantine: Option<Quarantine<K>>,
}

/// Which quarantine key an entity key falls under, and the board of paused keys.
struct Quarantine<K> {
    board: Arc<QuarantineBoard>,
    key_of: fn(&K) -> QuarantineKey,
}

/// Permission to talk to one actor; while any lease is alive the actor stays in memory.
/// Its address is private: every message goes through [`Lease::send`].
pub struct Lease<A: Actor> {
    addr: Addr<A>,
    leases: Arc<AtomicUsize>,
    /// Set when the key was paused as the lease was taken: commands are refused with it.
    paused: Option<ActorError>,
}

/// A message to an entity actor: whether it changes the entity (a command, refused while
/// the key is quarantined) or only reads it (always answered).
pub trait EntityMessage {
    const COMMAND: bool;
}

/// Declares message types commands (`commands: A, B`) or reads (`reads: C`).
#[macro_export]
macro_rules! entity_messages {
    (commands: $($c:ty),* ; reads: $($r:ty),*) => {
        $(impl $crate::actors::registry::EntityMessage for $c { const COMMAND: bool = true; })*
        $(impl $crate::actors::registry::EntityMessage for $r { const COMMAND: bool = false; })*
    };
}

impl<A: Actor<Context = Context<A>>> Lease<A> {
    /// Sends `msg` to the actor, unless it is a command and the key was quarantined when the
    /// lease was taken: then the refusal (423), and the message never reaches the mailbox.
    pub async fn send<M>(&mut self, msg: M) -> Result<M::Result, ActorError>
    where
        A: actix::Handler<M>,
        M: actix::Message + EntityMessage + Send + 'static,
        M::Result: Send,
    {
        if let Some(refusal) = self.paused.take().filter(|_| M::COMMAND) {
            return Err(refusal);
        }
        Ok(self.addr.send(msg).await?)
    }

    /// Puts `first` and then `then` in the mailbox at once, so the actor handles `then` right
    /// after `first`, before anything `first` sets going can come back to it.
    pub async fn send_both<M, N>(&mut self, first: M, then: N) -> Result<(M::Result, N::Result), ActorError>
    where
        A: actix::Handler<M> + actix::Handler<N>,
        M: actix::Message + EntityMessage + Send + 'static,
        N: actix::Message + EntityMessage + Send + 'static,
        M::Result: Send,
        N::Result: Send,
    {
        if let Some(refusal) = self.paused.take().filter(|_| M::COMMAND || N::COMMAND) {
            return Err(refusal);
        }
        let (first, then) = (self.addr.send(first), self.addr.send(then));
        let (first, then) = futures::join!(first, then);
        Ok((first?, then?))
    }
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
            quarantine: None,
        }
    }

    /// Commands to a key that `key_of` maps to a paused key are refused (423).
    pub fn quarantined_by(mut self, board: Arc<QuarantineBoard>, key_of: fn(&K) -> QuarantineKey) -> Self {
        self.quarantine = Some(Quarantine { board, key_of });
        self
    }

    /// The refusal a command to `key` gets right now, if its key is paused.
    fn paused(&self, key: &K) -> Option<ActorError> {
        let q = self.quarantine.as_ref()?;
        q.board.check(&(q.key_of)(key)).err()
    }

    fn shard(&self, key: &K) -> (usize, &Mutex<HashMap<K, Entry<A>>>) {
        let h = self.hasher.hash_one(key) as usize;
        (h, &self.shards[h % SHARDS])
    }

    /// A lease on the actor for `key`, starting it with `start` on its arbiter if it is not
    /// in memory. `start` loads state and may refuse (for example: no such item).
    pub fn lease<E>(&self, key: &K, start: impl FnOnce(&ArbiterHandle) -> Result<Addr<A>, E>) -> Result<Lease<A>, E> {
        let paused = self.paused(key);
        let (h, shard) = self.shard(key);
        let mut map = whole::lock(shard);
        let now = Timestamp::now().0;
        if let Some(e) = map.get(key).filter(|e| e.addr.connected()) {
            e.leases.fetch_add(1, Ordering::AcqRel);
            e.last_used_ms.store(now, Ordering::Release);
            return Ok(Lease { addr: e.addr.clone(), leases: e.leases.clone(), paused });
        }
        // Loading under the shard lock means two callers never activate the same key twice.
        let addr = start(&self.arbiters[(h / SHARDS) % self.arbiters.len()])?;
        let leases = Arc::new(AtomicUsize::new(1));
        let entry = Entry { addr: addr.clone(), leases: leases.clone(), last_used_ms: Arc::new(AtomicI64::new(now)) };
        if map.insert(key.clone(), entry).is_none() {
            metrics::ACTORS_ACTIVE.with_label_values(&[self.kind]).inc();
        }
        Ok(Lease { addr, leases, paused })
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
        self.passivate_where(|_, e| {
            e.leases.load(Ordering::Acquire) == 0 && now - e.last_used_ms.load(Ordering::Acquire) >= idle_ms
        })
    }

    /// Drops from memory every actor whose key `lost` says is no longer this server's (its
    /// partition went to another server), leases or not: removed under its shard lock, so
    /// no caller finds it again, and told to stop once its mailbox is through (whatever it
    /// still tries to write there is refused by the fence). Returns how many.
    pub fn give_up(&self, lost: impl Fn(&K) -> bool) -> usize
    where
        A: actix::Handler<Passivate>,
    {
        self.passivate_where(|key, _| lost(key))
    }

    /// Removes every entry `pass` says, each under its shard lock, and tells its actor to
    /// stop; how many.
    fn passivate_where(&self, pass: impl Fn(&K, &Entry<A>) -> bool) -> usize
    where
        A: actix::Handler<Passivate>,
    {
        let mut passivated = 0;
        for shard in &self.shards {
            whole::lock(shard).retain(|key, e| {
                let gone = pass(key, e);
                if gone {
                    e.addr.do_send(Passivate);
                    passivated += 1;
                }
                !gone
            });
        }
        if passivated > 0 {
            metrics::ACTORS_ACTIVE.with_label_values(&[self.kind]).sub(passivated as i64);
        }
        passivated
    }

    /// Called when an actor stops for any other reason (a failed write): forget it so the
    /// next caller activates a fresh one from the store.
    pub fn forget(&self, key: &K, me: &Addr<A>) {
        let (_, shard) = self.shard(key);
        let mut map = whole::lock(shard);
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

/// Sends `msg` to the actor a fresh lease points at, once. It is never re-sent: an actor
/// answers every message it took before it stops (see [`reply_when_durable`]), so a closed
/// mailbox means the message was not handled, and the caller gets a retryable 503 rather
/// than a second application of a command that is not idempotent (an add, a restock).
/// A command to a quarantined key is refused (see [`Lease::send`], the only way to reach an
/// actor a registry hands out).
pub async fn send_leased<A, M, E>(
    lease: impl FnOnce() -> Result<Lease<A>, E>,
    msg: impl FnOnce() -> M,
) -> Result<M::Result, E>
where
    E: From<ActorError>,
    A: Actor<Context = Context<A>> + actix::Handler<M>,
    M: actix::Message + EntityMessage + Send + 'static,
    M::Result: Send,
{
    Ok(lease()?.send(msg()).await?)
}

/// An entity actor: one per key, found through its registry.
pub trait Entity: Actor<Context = Context<Self>> {
    type Key: Eq + Hash + Clone + std::fmt::Debug;
    fn key(&self) -> Self::Key;
    fn registry(&self) -> &Registry<Self::Key, Self>;
    fn pipeline(&mut self) -> &mut Pipeline;
}

/// An entity's writes in flight. Actors are pipelined (they apply a command in memory and
/// take the next before the write is durable), so after a failed write the memory may be
/// ahead of the disk: the actor then refuses new commands, answers every write still in
/// flight with its own outcome, and only then leaves, so the next activation loads a store
/// that no write of this one can still change.
#[derive(Debug, Default)]
pub struct Pipeline {
    in_flight: usize,
    failed: bool,
}

impl Pipeline {
    /// Whether a write of this activation failed: it takes no more commands.
    pub fn failed(&self) -> bool {
        self.failed
    }
}

/// The answer a failed activation gives to every new message.
pub fn refused<A: Actor, T: 'static>() -> actix::ResponseActFuture<A, Result<T, ActorFailure>> {
    Box::pin(actix::fut::ready(Err(ActorError::Reloading.into())))
}

/// The reply to a command whose write is `ticket`: `ok` once the write is durable. If it
/// failed, this activation stops taking commands and leaves once its last write in flight
/// has answered; the next caller loads the entity afresh from the store.
pub fn reply_when_durable<A, T>(
    actor: &mut A,
    ticket: impl std::future::Future<Output = Result<(), crate::store::StoreError>> + 'static,
    ok: T,
) -> actix::ResponseActFuture<A, Result<T, ActorFailure>>
where
    A: Entity,
    T: 'static,
{
    use actix::{ActorContext, ActorFutureExt, AsyncContext, WrapFuture};
    actor.pipeline().in_flight += 1;
    Box::pin(ticket.into_actor(actor).map(move |res, act: &mut A, ctx: &mut Context<A>| {
        let pipeline = act.pipeline();
        pipeline.in_flight -= 1;
        let reply = match res {
            Ok(()) => Ok(ok),
            Err(e) => {
                pipeline.failed = true;
                Err(e)
            }
        };
        if act.pipeline().failed && act.pipeline().in_flight == 0 {
            tracing::error!(key = ?act.key(), "entity write failed; the actor answered its writes in flight and reloads");
            act.registry().forget(&act.key(), &ctx.address());
            ctx.stop();
        }
        reply.map_err(Into::into)
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicUsize;

    use actix::prelude::*;
    use tokio::sync::oneshot;

    use super::*;

    use crate::store::StoreError;

    type Ticket = oneshot::Receiver<Result<(), StoreError>>;

    /// A toy entity whose writes resolve when the test says so.
    struct Counter {
        applied: Arc<AtomicUsize>,
        tickets: Arc<Mutex<VecDeque<Ticket>>>,
        registry: Arc<Registry<u32, Counter>>,
        pipeline: Pipeline,
    }

    impl Actor for Counter {
        type Context = Context<Self>;
    }

    impl Entity for Counter {
        type Key = u32;

        fn key(&self) -> u32 {
            1
        }

        fn registry(&self) -> &Registry<u32, Counter> {
            &self.registry
        }

        fn pipeline(&mut self) -> &mut Pipeline {
            &mut self.pipeline
        }
    }

    #[derive(Message)]
    #[rtype(result = "Result<usize, ActorFailure>")]
    struct Increment;

    impl EntityMessage for Increment {
        const COMMAND: bool = true;
    }

    impl Handler<Increment> for Counter {
        type Result = ResponseActFuture<Self, Result<usize, ActorFailure>>;

        fn handle(&mut self, _: Increment, _: &mut Context<Self>) -> Self::Result {
            if self.pipeline.failed() {
                return refused();
            }
            let n = self.applied.fetch_add(1, Ordering::SeqCst) + 1;
            let ticket = self.tickets.lock().unwrap().pop_front().expect("a ticket per write");
            reply_when_durable(self, async move { ticket.await.unwrap_or(Err(StoreError::Closed)) }, n)
        }
    }

    /// Leases the counter of key 1, starting it on the registry's arbiter when absent.
    fn counter_lease(
        registry: &Arc<Registry<u32, Counter>>,
        applied: &Arc<AtomicUsize>,
        tickets: &Arc<Mutex<VecDeque<Ticket>>>,
    ) -> impl Fn() -> Result<Lease<Counter>, ActorFailure> + Clone {
        let (registry, applied, tickets) = (registry.clone(), applied.clone(), tickets.clone());
        move || {
            registry.lease(&1, |arbiter| {
                let (registry, applied, tickets) = (registry.clone(), applied.clone(), tickets.clone());
                Ok::<_, ActorFailure>(Counter::start_in_arbiter(arbiter, move |_| Counter {
                    applied,
                    tickets,
                    registry,
                    pipeline: Pipeline::default(),
                }))
            })
        }
    }

    /// Two writes in flight; the second fails before the first is durable. The first still
    /// gets its own answer, nothing is applied a second time, and the actor leaves only then.
    #[test]
    fn a_failed_write_answers_the_writes_in_flight_and_applies_nothing_twice() {
        actix::System::new().block_on(async {
            let registry = Arc::new(Registry::new("test", vec![actix::Arbiter::current()], Duration::from_secs(60)));
            let applied = Arc::new(AtomicUsize::new(0));
            let tickets = Arc::new(Mutex::new(VecDeque::new()));
            let (ok_a, rx_a) = oneshot::channel();
            let (fail_b, rx_b) = oneshot::channel();
            tickets.lock().unwrap().extend([rx_a, rx_b]);
            let lease = counter_lease(&registry, &applied, &tickets);
            let a = tokio::task::spawn_local(send_leased(lease.clone(), || Increment));
            let b = tokio::task::spawn_local(send_leased(lease.clone(), || Increment));
            while applied.load(Ordering::SeqCst) < 2 {
                tokio::task::yield_now().await;
            }
            fail_b.send(Err(StoreError::Closed)).unwrap();
            let b = b.await.unwrap().and_then(|r| r);
            assert!(matches!(b, Err(ActorFailure::Store(StoreError::Closed))), "{b:?}");
            assert_eq!(registry.active(), 1, "stays registered while a write is in flight");
            let c = send_leased(lease.clone(), || Increment).await.and_then(|r| r);
            assert!(
                matches!(c, Err(ActorFailure::Refused(ActorError::Reloading))),
                "a failed activation takes no new command: {c:?}"
            );
            ok_a.send(Ok(())).unwrap();
            assert_eq!(a.await.unwrap().and_then(|r| r).unwrap(), 1);
            assert_eq!(applied.load(Ordering::SeqCst), 2, "nothing applied twice");
            for _ in 0..100 {
                if registry.active() == 0 {
                    break;
                }
                tokio::task::yield_now().await;
            }
            assert_eq!(registry.active(), 0, "left once its writes had answered");
        });
    }

    #[derive(Message)]
    #[rtype(result = "usize")]
    struct Peek;

    impl EntityMessage for Peek {
        const COMMAND: bool = false;
    }

    impl Handler<Peek> for Counter {
        type Result = usize;

        fn handle(&mut self, _: Peek, _: &mut Context<Self>) -> usize {
            self.applied.load(Ordering::SeqCst)
        }
    }

    /// A paused key refuses commands before they reach the actor, answers reads, and takes
    /// commands again once released.
    #[test]
    fn commands_to_a_quarantined_key_are_refused_and_reads_answered() {
        use crate::domain::quarantine::{KeyKind, QuarantineKey};
        actix::System::new().block_on(async {
            let board = Arc::new(QuarantineBoard::default());
            let key_of: fn(&u32) -> QuarantineKey =
                |k| QuarantineKey::new(KeyKind::Cart, uuid::Uuid::from_u128(*k as u128));
            let registry = Arc::new(
                Registry::new("test", vec![actix::Arbiter::current()], Duration::from_secs(60))
                    .quarantined_by(board.clone(), key_of),
            );
            let applied = Arc::new(AtomicUsize::new(0));
            let tickets = Arc::new(Mutex::new(VecDeque::new()));
            let lease = counter_lease(&registry, &applied, &tickets);
            board.hold(key_of(&1), "poisoned");
            let refused = send_leased(lease.clone(), || Increment).await;
            assert!(
                matches!(&refused, Err(ActorFailure::Refused(ActorError::Quarantined { reason, .. })) if reason == "poisoned"),
                "{refused:?}"
            );
            assert_eq!(send_leased(lease.clone(), || Peek).await.unwrap(), 0, "reads still answered");
            assert!(send_leased(lease.clone(), || Increment).await.is_err());
            assert_eq!(applied.load(Ordering::SeqCst), 0, "nothing reached the actor");
            board.release(&key_of(&1));
            let (ok, rx) = tokio::sync::oneshot::channel();
            tickets.lock().unwrap().push_back(rx);
            ok.send(Ok(())).unwrap();
            assert_eq!(send_leased(lease.clone(), || Increment).await.unwrap().unwrap(), 1);
        });
    }
}
