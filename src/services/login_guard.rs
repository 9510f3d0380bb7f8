//! What keeps password hashing from being a lever against the server. Every login and
//! registration costs one Argon2 hash (`auth.argon2_memory_kib` of memory, tens of
//! milliseconds of a core), unknown emails included (they hash a decoy so that a wrong email
//! answers like a wrong password). Two bounds:
//! - [`HashPermits`]: at most `auth.max_concurrent_hashes` hashes run at once; a request
//!   that cannot get a permit within [`PERMIT_WAIT`] answers 503 SERVER_BUSY with
//!   Retry-After, so memory stays at about permits × argon2 memory however many arrive.
//! - [`LoginThrottle`]: logins per account (the normalized email tried) and per client
//!   address, each `per minute` with a burst of the same size (GCRA, the `governor` crate);
//!   beyond it 429 TOO_MANY_REQUESTS with Retry-After, before any hash is spent. Every
//!   attempt counts, right or wrong, so that the answer says nothing about the password.
//!
//! The client address is the TCP peer (or, for a request a cluster's follower forwarded,
//! the address the follower signed: see `http/relayed.rs`). Behind a reverse proxy that is
//! the proxy, for every client: raise `auth.login_per_ip_per_minute` there (0 turns the
//! per-address limit off).
//! `X-Forwarded-For` is not trusted: any client can write it.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio::sync::Semaphore;

use super::ServiceError;
use crate::config::AuthSettings;
use crate::error::Fault;

/// How long a login or registration waits for a hashing permit before answering 503: long
/// enough to ride out a small burst, short enough that waiting requests pile up nowhere.
pub const PERMIT_WAIT: Duration = Duration::from_millis(100);

/// What a client refused for want of a permit is told to wait.
const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// How often throttle entries that have fully recovered are dropped, so that the memory of
/// the limiters follows the clients of the last minute, not every client ever seen.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(30);

pub struct HashPermits {
    permits: Arc<Semaphore>,
}

impl HashPermits {
    /// `0` means one permit per core.
    pub fn new(max_concurrent: usize) -> HashPermits {
        let n = match max_concurrent {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        HashPermits { permits: Arc::new(Semaphore::new(n)) }
    }

    /// Runs `work` on the blocking pool holding a permit, or refuses with SERVER_BUSY. The
    /// permit goes with the work: a client that hangs up does not free it while its hash runs.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, ServiceError> {
        let permit = tokio::time::timeout(PERMIT_WAIT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| ServiceError::ServerBusy { retry_after_secs: BUSY_RETRY_AFTER_SECS })?
            .map_err(|_| ServiceError::Fault(Fault::ShuttingDown))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| ServiceError::internal("", e))
    }
}

/// Keyed rate limiters for logins; a limit of 0 is no limit.
pub struct LoginThrottle {
    per_account: Option<DefaultKeyedRateLimiter<[u8; 32]>>,
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

impl LoginThrottle {
    pub fn new(auth: &AuthSettings) -> LoginThrottle {
        LoginThrottle {
            per_account: limiter(auth.login_per_account_per_minute),
            per_address: limiter(auth.login_per_ip_per_minute),
        }
    }

    /// Counts one login attempt for `email` from `client`; refuses with TOO_MANY_REQUESTS
    /// when either is over its limit.
    pub fn check(&self, email: &str, client: Option<IpAddr>) -> Result<(), ServiceError> {
        if let (Some(limiter), Some(ip)) = (&self.per_address, client) {
            limiter
                .check_key(&address_key(ip))
                .map_err(|n| too_many(n.wait_time_from(DefaultClock::default().now())))?;
        }
        if let Some(limiter) = &self.per_account {
            limiter
                .check_key(&account_key(email))
                .map_err(|n| too_many(n.wait_time_from(DefaultClock::default().now())))?;
        }
        Ok(())
    }

    /// Forgets keys whose limiter is back to a full burst (indistinguishable from new).
    pub fn retain_recent(&self) {
        if let Some(l) = &self.per_account {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.per_address {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Keys held now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.per_account.as_ref().map_or(0, |l| l.len()) + self.per_address.as_ref().map_or(0, |l| l.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Runs [`LoginThrottle::retain_recent`] every [`UPKEEP_EVERY`] for the life of the runtime.
pub fn spawn_upkeep(throttle: Arc<LoginThrottle>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            throttle.retain_recent();
        }
    });
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per_minute: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_minute).map(|n| governor::RateLimiter::keyed(Quota::per_minute(n)))
}

fn too_many(wait: Duration) -> ServiceError {
    ServiceError::TooManyRequests { retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0) }
}

/// The account an attempt is for: the email as accounts are looked up (normalized), or the
/// trimmed lower-cased text when it is no email at all; hashed so every key weighs 32 bytes.
fn account_key(email: &str) -> [u8; 32] {
    let normalized = crate::domain::email::Email::parse(email)
        .map(|e| e.lookup_key())
        .unwrap_or_else(|_| email.trim().to_lowercase());
    super::token_hash(&normalized)
}

/// An IPv6 client usually holds a whole /64: it counts as one address.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(per_account: u32, per_ip: u32) -> AuthSettings {
        let mut s = crate::config::Settings::load_layers(None, false).unwrap().auth;
        s.login_per_account_per_minute = per_account;
        s.login_per_ip_per_minute = per_ip;
        s
    }

    #[test]
    fn an_account_is_its_normalized_email_and_an_ipv6_client_its_64_prefix() {
        let t = LoginThrottle::new(&auth(2, 0));
        t.check("Ada@Example.com", None).unwrap();
        t.check(" ada@example.COM ", None).unwrap();
        let refused = t.check("ada@example.com", None).unwrap_err();
        assert!(
            matches!(refused, ServiceError::TooManyRequests { retry_after_secs } if (1..=30).contains(&retry_after_secs))
        );
        t.check("bob@example.com", None).unwrap();

        let t = LoginThrottle::new(&auth(0, 1));
        t.check("a@example.com", Some("2001:db8::1".parse().unwrap())).unwrap();
        assert!(t.check("b@example.com", Some("2001:db8::ffff".parse().unwrap())).is_err(), "same /64");
        t.check("c@example.com", Some("2001:db8:0:1::1".parse().unwrap())).unwrap();
        t.check("c@example.com", Some("10.0.0.1".parse().unwrap())).unwrap();
        assert!(t.check("d@example.com", Some("::ffff:10.0.0.1".parse().unwrap())).is_err(), "v4-mapped is v4");
    }

    #[test]
    fn zero_means_no_limit() {
        let t = LoginThrottle::new(&auth(0, 0));
        for _ in 0..100 {
            t.check("a@example.com", Some("127.0.0.1".parse().unwrap())).unwrap();
        }
        assert!(t.is_empty());
    }

    #[tokio::test]
    async fn a_request_without_a_permit_is_refused_while_the_work_holding_it_runs() {
        let permits = Arc::new(HashPermits::new(1));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let busy = {
            let permits = permits.clone();
            tokio::spawn(async move {
                permits
                    .run(move || {
                        started_tx.send(()).unwrap();
                        release_rx.recv().unwrap();
                    })
                    .await
            })
        };
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap()).await.unwrap();
        let refused = permits.run(|| 1).await.unwrap_err();
        assert!(matches!(refused, ServiceError::ServerBusy { retry_after_secs: 1 }), "{refused:?}");
        release_tx.send(()).unwrap();
        busy.await.unwrap().unwrap();
        assert_eq!(permits.run(|| 2).await.unwrap(), 2);
    }
}
