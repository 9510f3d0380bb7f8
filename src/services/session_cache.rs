//! The customers' sessions this server has read or written, kept in memory so that a
//! request's authentication is not a store read (on PostgreSQL, a round trip that parks
//! the calling thread; on sled, a tree lookup).
//!
//! Coherent because every session write of the store goes through this server while it
//! serves: sign-in saves one (and caches it once the write is durable); sign-out marks it
//! revoked here before its delete is written, so no read racing with the delete caches it
//! again (and a failed delete leaves at worst the store's copy, read on every request);
//! the sweeper deletes only expired sessions, which this cache refuses by their expiry
//! anyway. A server of a cluster builds its services, and so this cache, when it takes the
//! lead, and stops when it loses it, so nothing another server wrote meanwhile is ever
//! answered from here. Unknown tokens are not cached: each costs a store read, as before.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::ids::CustomerId;
use crate::domain::time::Timestamp;

/// Beyond this many entries the cache starts over (a cold read each, then warm again):
/// about 5 MB, and no eviction bookkeeping on the hot path.
const CAPACITY: usize = 100_000;

/// How long a sign-out's mark outlives it: far longer than a store read racing with its
/// delete can take.
const REVOKED_FOR_MS: i64 = 60_000;

#[derive(Clone, Copy)]
enum Entry {
    Live {
        customer: CustomerId,
        expires_at: Timestamp,
    },
    /// Signed out at this time: never cached again.
    Revoked {
        at: Timestamp,
    },
}

#[derive(Default)]
pub struct SessionCache {
    by_digest: Mutex<HashMap<[u8; 32], Entry>>,
}

impl SessionCache {
    /// The customer of a cached, unexpired session. `None` means "ask the store".
    pub fn get(&self, digest: &[u8; 32], now: Timestamp) -> Option<CustomerId> {
        match self.lock().get(digest) {
            Some(Entry::Live { customer, expires_at }) if *expires_at > now => Some(*customer),
            _ => None,
        }
    }

    /// Remembers a session as the store holds it, unless it was signed out meanwhile.
    pub fn put(&self, digest: [u8; 32], customer: CustomerId, expires_at: Timestamp) {
        let mut map = self.lock();
        if let Some(Entry::Revoked { .. }) = map.get(&digest) {
            return;
        }
        if map.len() >= CAPACITY {
            let recent = Timestamp::now().plus_millis(-REVOKED_FOR_MS);
            map.retain(|_, e| matches!(e, Entry::Revoked { at } if *at > recent));
        }
        map.insert(digest, Entry::Live { customer, expires_at });
    }

    /// A sign-out: called before its delete is written.
    pub fn revoke(&self, digest: [u8; 32]) {
        self.lock().insert(digest, Entry::Revoked { at: Timestamp::now() });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.by_digest.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_a_live_session_and_never_an_expired_or_signed_out_one() {
        let cache = SessionCache::default();
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
        let cache = SessionCache::default();
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
}
