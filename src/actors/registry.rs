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

    /// Called by an actor's idle timer: true when it was removed and must stop now.
    pub fn try_passivate(&self, key: &K, me: &Addr<A>) -> bool {
        let (_, shard) = self.shard(key);
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        let idle_ms = self.idle_timeout.as_millis() as i64;
        let removable = map.get(key).is_some_and(|e| {
            e.addr == *me
                && e.leases.load(Ordering::Acquire) == 0
                && Timestamp::now().0 - e.last_used_ms.load(Ordering::Acquire) >= idle_ms
        });
        if removable {
            map.remove(key);
            metrics::ACTORS_ACTIVE.with_label_values(&[self.kind]).dec();
        }
        removable
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

    /// Every live actor address (for a graceful shutdown that drains mailboxes).
    pub fn addresses(&self) -> Vec<Addr<A>> {
        self.shards
            .iter()
            .flat_map(|s| s.lock().map(|m| m.values().map(|e| e.addr.clone()).collect::<Vec<_>>()).unwrap_or_default())
            .collect()
    }
}

/// The idle check every entity actor runs: ask the registry, stop if passivated.
pub fn schedule_passivation<K, A>(ctx: &mut Context<A>, registry: Arc<Registry<K, A>>, key: K)
where
    K: Eq + Hash + Clone + Unpin + 'static,
    A: Actor<Context = Context<A>>,
{
    use actix::AsyncContext;
    let every = (registry.idle_timeout / 2).max(Duration::from_millis(50));
    ctx.run_interval(every, move |_, ctx| {
        if registry.try_passivate(&key, &ctx.address()) {
            use actix::ActorContext;
            ctx.stop();
        }
    });
}
