//! Records this server has read or written, kept in memory so that the hot paths do not
//! read the store for them (on PostgreSQL a read is a round trip that parks the calling
//! thread; on sled, a tree lookup): sessions ([`SessionCache`]: the customers', on every
//! authenticated request, and the console's operators', on every console page and form),
//! customers and products ([`RecordCache`]: a customer twice per checkout, a product for
//! every cart line shown).
//!
//! Another server may write these records (they are shared: written by the owner of
//! partition 0, whichever server that is), so every write set that changes one names it
//! in the store's cache invalidation log (`store::invalidations`), and every serving server
//! polls that log every `cluster.cache_poll_ms` (100 ms by default) and drops its copies
//! (`services::invalidations`): a change made on one server is answered by no other later
//! than one poll after its commit. A poller that finds entries missing (it was stalled past
//! their retention) drops everything. The server that made the change drops its own copy
//! the same way (and re-reads it): one more store read, nothing else.
//!
//! Reads race with that: a read that found the old record before the change committed must
//! not cache it after the poller dropped it. So each cache counts what it forgot; a reader
//! takes a [`Ticket`] before its store read and what it brings back is cached only if
//! nothing was forgotten since (else it is answered once, uncached). Each cache starts over
//! beyond [`CAPACITY`] entries (a cold read each, then warm again), with no eviction
//! bookkeeping on the hot path.
//!
//! Sessions: sign-in saves one (and caches it once the write is durable); sign-out, here or
//! on another server (its invalidation), marks it revoked here, so no read racing with the
//! delete caches it again (a token is never reused: revoked is final, and a failed delete
//! leaves at worst the store's copy, read on every request); the sweeper deletes only
//! expired sessions, which this cache refuses by their expiry anyway. Unknown tokens are
//! not cached: each costs a store read, as before. What a session answers (a customer id,
//! an operator's role and CSRF token) is the cache's business only as a value it hands back.
//!
//! Customers and products: a write caches what it wrote once durable (unless something was
//! forgotten meanwhile: then it only drops the old copy); a read caches what it found only
//! if nothing newer got there first, so a read racing with a verification or a price change
//! never puts back the old record.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, RwLock};

use crate::domain::ids::CustomerId;
use crate::domain::time::Timestamp;
use crate::store::Customer;
use crate::whole;

/// Entries per cache: about 5 MB of sessions, 30 MB of customers.
const CAPACITY: usize = 100_000;

/// How long a sign-out's mark outlives it: far longer than a store read racing with its
/// delete can take.
const REVOKED_FOR_MS: i64 = 60_000;

/// How many times a cache had forgotten entries when a store read began (see the module
/// documentation): what the read brings back is cached only if the count did not move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

enum Entry<V> {
    Live {
        value: V,
        expires_at: Timestamp,
    },
    /// Signed out at this time: never cached again.
    Revoked {
        at: Timestamp,
    },
}

/// Sessions by the digest of their token, each with what it answers (`V`: the customer's
/// id, the console's operator) until its expiry.
pub struct SessionCache<V> {
    inner: Mutex<Sessions<V>>,
}

struct Sessions<V> {
    by_digest: HashMap<[u8; 32], Entry<V>>,
    /// Times every live session was dropped at once ([`SessionCache::forget_all`]).
    forgotten: u64,
}

impl<V> Default for SessionCache<V> {
    fn default() -> Self {
        SessionCache { inner: Mutex::new(Sessions { by_digest: HashMap::new(), forgotten: 0 }) }
    }
}

impl<V: Clone> SessionCache<V> {
    /// What a cached, unexpired session answers. `None` means "ask the store".
    pub fn get(&self, digest: &[u8; 32], now: Timestamp) -> Option<V> {
        match self.lock().by_digest.get(digest) {
            Some(Entry::Live { value, expires_at }) if *expires_at > now => Some(value.clone()),
            _ => None,
        }
    }

    /// Taken before the store read whose session [`SessionCache::put`] caches.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.lock().forgotten)
    }

    /// Remembers a session as the store holds it, unless it was signed out, or every
    /// session dropped, since the read that found it began (`ticket`).
    pub fn put(&self, digest: [u8; 32], value: V, expires_at: Timestamp, ticket: Ticket) {
        let mut sessions = self.lock();
        if sessions.forgotten != ticket.0 {
            return;
        }
        if let Some(Entry::Revoked { .. }) = sessions.by_digest.get(&digest) {
            return;
        }
        if sessions.by_digest.len() >= CAPACITY {
            let recent = Timestamp::now().plus_millis(-REVOKED_FOR_MS);
            sessions.by_digest.retain(|_, e| matches!(e, Entry::Revoked { at } if *at > recent));
        }
        sessions.by_digest.insert(digest, Entry::Live { value, expires_at });
    }

    /// A sign-out: called before its delete is written (on the server that signs out), or
    /// once its invalidation arrives (on the others).
    pub fn revoke(&self, digest: [u8; 32]) {
        self.lock().by_digest.insert(digest, Entry::Revoked { at: Timestamp::now() });
    }

    /// Drops every live session (sign-outs' marks stay): the next use of each reads the store.
    pub fn forget_all(&self) {
        let mut sessions = self.lock();
        sessions.by_digest.retain(|_, e| matches!(e, Entry::Revoked { .. }));
        sessions.forgotten += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions<V>> {
        whole::lock(&self.inner)
    }
}

/// Records by key (customers by id, products by id), as last written or read.
pub struct RecordCache<K, V> {
    inner: RwLock<Records<K, V>>,
}

struct Records<K, V> {
    by_key: HashMap<K, V>,
    /// Times an entry (or every entry) was dropped because the store's record changed.
    forgotten: u64,
}

/// Customers by id.
pub type CustomerCache = RecordCache<CustomerId, Customer>;

impl<K, V> Default for RecordCache<K, V> {
    fn default() -> Self {
        RecordCache { inner: RwLock::new(Records { by_key: HashMap::new(), forgotten: 0 }) }
    }
}

impl<K: Eq + Hash, V: Clone> RecordCache<K, V> {
    pub fn get(&self, key: &K) -> Option<V> {
        whole::read(&self.inner).by_key.get(key).cloned()
    }

    /// Taken before the store read (or the commit) whose record is then cached.
    pub fn ticket(&self) -> Ticket {
        Ticket(whole::read(&self.inner).forgotten)
    }

    /// A record just written (durably): replaces whatever is cached, unless something was
    /// forgotten since `ticket` (maybe a newer write of it, on another server): then only
    /// the old copy is dropped.
    pub fn written(&self, key: K, value: V, ticket: Ticket) {
        let mut records = whole::write(&self.inner);
        if records.forgotten != ticket.0 {
            records.by_key.remove(&key);
            return;
        }
        Self::insert(&mut records, key, value);
    }

    /// A record just read from the store: cached unless a write cached one first (that one
    /// is returned) or something was forgotten since `ticket` (the read may be older than
    /// the change that made it forget: answered, not cached).
    pub fn read(&self, key: K, value: V, ticket: Ticket) -> V {
        let mut records = whole::write(&self.inner);
        if let Some(cached) = records.by_key.get(&key) {
            return cached.clone();
        }
        if records.forgotten == ticket.0 {
            Self::insert(&mut records, key, value.clone());
        }
        value
    }

    /// The store's record changed: the next read goes there.
    pub fn forget(&self, key: &K) {
        let mut records = whole::write(&self.inner);
        records.by_key.remove(key);
        records.forgotten += 1;
    }

    /// Every record may have changed: the next read of each goes to the store.
    pub fn forget_all(&self) {
        let mut records = whole::write(&self.inner);
        records.by_key.clear();
        records.forgotten += 1;
    }

    fn insert(records: &mut Records<K, V>, key: K, value: V) {
        if records.by_key.len() >= CAPACITY {
            records.by_key.clear();
        }
        records.by_key.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_a_live_session_and_never_an_expired_or_signed_out_one() {
        let cache = SessionCache::<CustomerId>::default();
        let (customer, now) = (CustomerId::new(), Timestamp::now());
        assert_eq!(cache.get(&[1; 32], now), None);
        cache.put([1; 32], customer, now.plus_millis(1000), cache.ticket());
        assert_eq!(cache.get(&[1; 32], now), Some(customer));
        assert_eq!(cache.get(&[1; 32], now.plus_millis(1000)), None, "expired at its expiry");
        cache.revoke([1; 32]);
        assert_eq!(cache.get(&[1; 32], now), None);
        // A read that found the session before its delete was written comes back late.
        cache.put([1; 32], customer, now.plus_millis(1000), cache.ticket());
        assert_eq!(cache.get(&[1; 32], now), None, "a signed-out session is never cached again");
    }

    #[test]
    fn starts_over_when_full_and_keeps_the_newest() {
        let cache = SessionCache::<CustomerId>::default();
        let (customer, now) = (CustomerId::new(), Timestamp::now());
        for n in 0..CAPACITY as u32 {
            let mut digest = [0; 32];
            digest[..4].copy_from_slice(&n.to_be_bytes());
            cache.put(digest, customer, now.plus_millis(1000), cache.ticket());
        }
        cache.revoke([8; 32]);
        cache.put([9; 32], customer, now.plus_millis(1000), cache.ticket());
        assert_eq!(cache.lock().by_digest.len(), 2, "the newest, and the recent sign-out's mark");
        assert_eq!(cache.get(&[9; 32], now), Some(customer));
        cache.put([8; 32], customer, now.plus_millis(1000), cache.ticket());
        assert_eq!(cache.get(&[8; 32], now), None, "still signed out");
    }

    #[test]
    fn forgetting_every_session_keeps_sign_outs_and_refuses_reads_begun_before() {
        let cache = SessionCache::<CustomerId>::default();
        let (customer, now) = (CustomerId::new(), Timestamp::now());
        let expires = now.plus_millis(1000);
        cache.put([1; 32], customer, expires, cache.ticket());
        cache.revoke([2; 32]);
        let before = cache.ticket();
        cache.forget_all();
        assert_eq!(cache.get(&[1; 32], now), None, "dropped: the store is asked");
        cache.put([1; 32], customer, expires, before);
        assert_eq!(cache.get(&[1; 32], now), None, "a read begun before is answered, not cached");
        cache.put([2; 32], customer, expires, cache.ticket());
        assert_eq!(cache.get(&[2; 32], now), None, "a sign-out outlives it");
        cache.put([1; 32], customer, expires, cache.ticket());
        assert_eq!(cache.get(&[1; 32], now), Some(customer), "a read begun after is cached");
    }

    fn customer(verified: bool) -> Customer {
        Customer {
            customer_id: CustomerId(uuid::Uuid::from_bytes([7; 16])),
            email: "a@example.com".into(),
            name: None,
            password_hash: String::new(),
            email_verified: verified,
            created_at: Timestamp(1),
        }
    }

    #[test]
    fn a_read_never_puts_back_what_a_write_replaced() {
        let cache = CustomerCache::default();
        let (unverified, verified) = (customer(false), customer(true));
        let id = verified.customer_id;
        cache.read(id, unverified.clone(), cache.ticket());
        cache.written(id, verified.clone(), cache.ticket());
        // A read that found the record before the verification was written, arriving late.
        assert_eq!(cache.read(id, unverified, cache.ticket()), verified, "the cached one is answered");
        assert_eq!(cache.get(&id), Some(verified));
    }

    /// A change made elsewhere (its invalidation applied here) drops the copy, and a read
    /// that began before it (it may have found the old record) is answered but not cached.
    #[test]
    fn a_read_begun_before_an_invalidation_is_not_cached_after_it() {
        let cache = CustomerCache::default();
        let (unverified, verified) = (customer(false), customer(true));
        let id = verified.customer_id;
        cache.read(id, unverified.clone(), cache.ticket());
        let read_began = cache.ticket();
        cache.forget(&id);
        assert_eq!(cache.get(&id), None);
        assert_eq!(cache.read(id, unverified.clone(), read_began), unverified, "answered");
        assert_eq!(cache.get(&id), None, "not cached");
        // A write that committed before the invalidation arrived only drops the copy.
        cache.read(id, unverified.clone(), cache.ticket());
        let write_began = cache.ticket();
        cache.forget_all();
        cache.read(id, unverified, cache.ticket());
        cache.written(id, verified.clone(), write_began);
        assert_eq!(cache.get(&id), None, "dropped, not replaced");
        cache.read(id, verified.clone(), cache.ticket());
        assert_eq!(cache.get(&id), Some(verified), "a read begun after is cached");
    }
}
