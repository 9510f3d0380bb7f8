//! Records this server has read or written, kept in memory so that the hot paths do not
//! read the store for them (on PostgreSQL a read is a round trip that parks the calling
//! thread; on sled, a tree lookup): sessions ([`SessionCache`]: the customers', on every
//! authenticated request, and the console's operators', on every console page and form)
//! and the customers ([`CustomerCache`], twice per checkout).
//!
//! They are coherent because every write of these records goes through the serving
//! server's services (the customer service; the console's `staff_sessions::Sessions`), and
//! a server of a cluster builds its services, and so these caches, when it takes the lead,
//! and stops when it loses it: nothing another server wrote meanwhile is ever answered from
//! here. Each starts over beyond [`CAPACITY`] entries (a cold read each, then warm again),
//! with no eviction bookkeeping on the hot path.
//!
//! Sessions: sign-in saves one (and caches it once the write is durable); sign-out marks it
//! revoked here before its delete is written, so no read racing with the delete caches it
//! again (and a failed delete leaves at worst the store's copy, read on every request);
//! the sweeper deletes only expired sessions, which this cache refuses by their expiry
//! anyway. Unknown tokens are not cached: each costs a store read, as before. What a
//! session answers (a customer id, an operator's role and CSRF token) is the cache's
//! business only as a value it hands back.
//!
//! Customers: registration and verification write a customer and then cache what they
//! wrote; a read caches what it found only if nothing newer got there first, so a read
//! racing with a verification never puts back the unverified record.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::ids::CustomerId;
use crate::domain::time::Timestamp;
use crate::store::Customer;
use crate::whole;

/// Entries per cache: about 5 MB of sessions, 30 MB of customers.
const CAPACITY: usize = 100_000;

/// How long a sign-out's mark outlives it: far longer than a store read racing with its
/// delete can take.
const REVOKED_FOR_MS: i64 = 60_000;

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
    by_digest: Mutex<HashMap<[u8; 32], Entry<V>>>,
}

impl<V> Default for SessionCache<V> {
    fn default() -> Self {
        SessionCache { by_digest: Mutex::new(HashMap::new()) }
    }
}

impl<V: Clone> SessionCache<V> {
    /// What a cached, unexpired session answers. `None` means "ask the store".
    pub fn get(&self, digest: &[u8; 32], now: Timestamp) -> Option<V> {
        match self.lock().get(digest) {
            Some(Entry::Live { value, expires_at }) if *expires_at > now => Some(value.clone()),
            _ => None,
        }
    }

    /// Remembers a session as the store holds it, unless it was signed out meanwhile.
    pub fn put(&self, digest: [u8; 32], value: V, expires_at: Timestamp) {
        let mut map = self.lock();
        if let Some(Entry::Revoked { .. }) = map.get(&digest) {
            return;
        }
        if map.len() >= CAPACITY {
            let recent = Timestamp::now().plus_millis(-REVOKED_FOR_MS);
            map.retain(|_, e| matches!(e, Entry::Revoked { at } if *at > recent));
        }
        map.insert(digest, Entry::Live { value, expires_at });
    }

    /// A sign-out: called before its delete is written.
    pub fn revoke(&self, digest: [u8; 32]) {
        self.lock().insert(digest, Entry::Revoked { at: Timestamp::now() });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry<V>>> {
        whole::lock(&self.by_digest)
    }
}

/// Customers by id, as last written or read.
#[derive(Default)]
pub struct CustomerCache {
    by_id: Mutex<HashMap<CustomerId, Customer>>,
}

impl CustomerCache {
    pub fn get(&self, id: CustomerId) -> Option<Customer> {
        self.lock().get(&id).cloned()
    }

    /// A customer just written (durably): replaces whatever is cached.
    pub fn written(&self, customer: &Customer) {
        self.remember(customer, true);
    }

    /// A customer just read from the store: cached unless a write cached a newer one.
    pub fn read(&self, customer: &Customer) {
        self.remember(customer, false);
    }

    fn remember(&self, customer: &Customer, replace: bool) {
        let mut map = self.lock();
        if map.len() >= CAPACITY {
            map.clear();
        }
        if replace || !map.contains_key(&customer.customer_id) {
            map.insert(customer.customer_id, customer.clone());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CustomerId, Customer>> {
        whole::lock(&self.by_id)
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
        cache.put([1; 32], customer, now.plus_millis(1000));
        assert_eq!(cache.get(&[1; 32], now), Some(customer));
        assert_eq!(cache.get(&[1; 32], now.plus_millis(1000)), None, "expired at its expiry");
        cache.revoke([1; 32]);
        assert_eq!(cache.get(&[1; 32], now), None);
        // A read that found the session before its delete was written comes back late.
        cache.put([1; 32], customer, now.plus_millis(1000));
        assert_eq!(cache.get(&[1; 32], now), None, "a signed-out session is never cached again");
    }

    #[test]
    fn starts_over_when_full_and_keeps_the_newest() {
        let cache = SessionCache::<CustomerId>::default();
        let (customer, now) = (CustomerId::new(), Timestamp::now());
        for n in 0..CAPACITY as u32 {
            let mut digest = [0; 32];
            digest[..4].copy_from_slice(&n.to_be_bytes());
            cache.put(digest, customer, now.plus_millis(1000));
        }
        cache.revoke([8; 32]);
        cache.put([9; 32], customer, now.plus_millis(1000));
        assert_eq!(cache.lock().len(), 2, "the newest, and the recent sign-out's mark");
        assert_eq!(cache.get(&[9; 32], now), Some(customer));
        cache.put([8; 32], customer, now.plus_millis(1000));
        assert_eq!(cache.get(&[8; 32], now), None, "still signed out");
    }

    #[test]
    fn a_read_never_puts_back_what_a_write_replaced() {
        let cache = CustomerCache::default();
        let unverified = Customer {
            customer_id: CustomerId::new(),
            email: "a@example.com".into(),
            name: None,
            password_hash: String::new(),
            email_verified: false,
            created_at: Timestamp::now(),
        };
        let verified = Customer { email_verified: true, ..unverified.clone() };
        cache.read(&unverified);
        cache.written(&verified);
        // A read that found the record before the verification was written, arriving late.
        cache.read(&unverified);
        assert_eq!(cache.get(verified.customer_id), Some(verified));
    }
}
