//! The cache invalidation poller: how a server's in-memory copies of shared records learn
//! that another server changed them.
//!
//! Every write set that changes a record some server caches names it in the store's cache
//! invalidation log (`store::invalidations`), numbered in commit order. Each serving server
//! reads the log on from the last number it applied every `cluster.cache_poll_ms` (100 ms
//! by default) and applies each entry: a session signed out is refused from then on, a
//! customer or product is read from the store at its next use, a quarantined key is
//! paused or resumed as the quarantine table now says. So a change made on one server is
//! answered by no other later than one poll after its commit. A server also applies its
//! own writes' entries: it drops a copy it had just cached, and reads it again.
//!
//! The poller starts at the log's end as it was before the server's caches were built
//! (empty, the board read from the table after it): whatever changed before is in what they
//! read. Numbers have no gaps, so a poller that finds one (it was stalled while the entries
//! it had not read were deleted by retention) drops every copy and reloads the board.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::catalog::CatalogService;
use super::customers::CustomerService;
use super::staff_sessions::Sessions;
use crate::actors::quarantine::QuarantineBoard;
use crate::domain::quarantine::{QuarantineEntry, QuarantineKey};
use crate::metrics;
use crate::store::invalidations::{self, Invalidation};
use crate::store::{keys, Prefix, Store, StoreError, Table};

/// Entries read per look at the log at most.
const BATCH: usize = 256;

/// A layer above the services that keeps shared records in memory too (the saga engine:
/// the retry policies, and the sagas parked on a quarantined key), told of each entry the
/// poller applied: `None` when entries were missed and anything may have changed.
pub trait Follower: Send + Sync {
    fn changed(&self, what: Option<Invalidation>);
}

/// The caches of one server that hold copies of shared records, and where in the log they
/// start.
#[derive(Clone)]
pub struct Caches {
    /// The log's end before any of them held anything (see the module documentation).
    pub since: u64,
    pub customers: CustomerService,
    pub console: Arc<Sessions>,
    pub catalog: CatalogService,
    pub board: Arc<QuarantineBoard>,
    /// Told after the caches above (see [`Follower`]).
    pub followers: Vec<Arc<dyn Follower>>,
}

impl Caches {
    /// Reads the log on from [`Caches::since`], every `every_ms`.
    pub fn poller(&self, store: Store, every_ms: u64) -> Poller {
        Poller { store, after: self.since, caches: self.clone(), every: Duration::from_millis(every_ms.max(1)) }
    }
}

pub struct Poller {
    store: Store,
    /// The number of the last entry applied.
    after: u64,
    caches: Caches,
    every: Duration,
}

impl Poller {
    /// Applies the entries after the last one applied, a batch at most: how many. An entry
    /// that cannot be applied (the store did not answer) stops the batch; it is tried again
    /// at the next poll.
    pub fn poll(&mut self) -> Result<usize, StoreError> {
        let entries = invalidations::after(&self.store, self.after, BATCH)?;
        if entries.first().is_some_and(|(seq, _)| *seq != self.after + 1) {
            self.missed(entries[0].0)?;
        }
        let mut applied = 0;
        for (seq, entry) in &entries {
            self.apply(entry.what)?;
            self.after = *seq;
            applied += 1;
            metrics::CACHE_INVALIDATIONS_APPLIED.inc();
        }
        if applied > 0 {
            tracing::debug!(applied, after = self.after, "cache invalidations applied");
        }
        Ok(applied)
    }

    /// The number of the last entry applied.
    pub fn applied_up_to(&self) -> u64 {
        self.after
    }

    fn apply(&self, what: Invalidation) -> Result<(), StoreError> {
        let caches = &self.caches;
        match what {
            Invalidation::Session(digest) => caches.customers.forget_session(digest),
            Invalidation::StaffSession(digest) => caches.console.forget(digest),
            Invalidation::Customer(id) => caches.customers.forget_customer(id),
            Invalidation::Product(id) => caches.catalog.forget_product(id),
            Invalidation::Quarantine(key) => self.reload(key)?,
            // Not a cache of this layer's: the followers' (the saga engine's).
            Invalidation::RetryPolicies => {}
        }
        for follower in &caches.followers {
            follower.changed(Some(what));
        }
        Ok(())
    }

    /// The board's entry for `key` as the table says now, read under the board's lock (see
    /// [`QuarantineBoard::reload`]): a release made here meanwhile, which resumes the sagas
    /// parked on the key, is never undone by an older pause's entry.
    fn reload(&self, key: QuarantineKey) -> Result<(), StoreError> {
        let store = &self.store;
        self.caches
            .board
            .reload(key, || Ok(store.load::<QuarantineEntry>(&keys::quarantine(&key))?.map(|entry| entry.reason)))
    }

    /// Entries up to `first` (exclusive) were deleted before this server read them: any
    /// copy may be stale, so every one is dropped and the board read again whole.
    fn missed(&mut self, first: u64) -> Result<(), StoreError> {
        tracing::warn!(
            applied_up_to = self.after,
            next = first,
            "cache invalidations were deleted before this server read them (it was stalled past their retention): dropping every cached copy"
        );
        let store = &self.store;
        self.caches.board.reset(|| {
            let paused = store.scan::<QuarantineEntry>(&Prefix::all(Table::Quarantine))?;
            Ok::<_, StoreError>(paused.into_iter().map(|(_, e)| (e.key, e.reason)).collect())
        })?;
        self.caches.customers.forget_cached();
        self.caches.console.forget_all();
        for follower in &self.caches.followers {
            follower.changed(None);
        }
        self.caches.catalog.forget_cached();
        Ok(())
    }

    /// Polls every `cluster.cache_poll_ms` until `stop` (at once again after a full batch).
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            let applied = match self.poll() {
                Ok(applied) => applied,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the cache invalidation log failed; trying again");
                    0
                }
            };
            if *stop.borrow() {
                break;
            }
            if applied < BATCH {
                tokio::select! {
                    _ = tokio::time::sleep(self.every) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        tracing::info!("cache invalidation poller stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::domain::money::Money;
    use crate::domain::quarantine::KeyKind;
    use crate::services::catalog::NewProduct;
    use crate::services::staff_sessions::Role;
    use crate::startup::{shop, Shop};
    use crate::store::{Notification, WriteSet};
    use actix::Arbiter;

    const PASSWORD: &str = "correct-horse-9";

    /// Two servers over one store: each a whole shop, with caches of its own.
    struct Two {
        _dir: tempfile::TempDir,
        store: Store,
        a: Shop,
        b: Shop,
    }

    fn two_servers() -> Two {
        let (dir, store) = Store::temporary();
        let mut settings = Settings::load_layers(None, false).unwrap();
        settings.storage.path = dir.path().into();
        settings.auth.argon2_memory_kib = 1024;
        settings.auth.argon2_iterations = 1;
        let settings = Arc::new(settings);
        let build = || {
            let gateway = crate::startup::payment_gateway(&settings).unwrap();
            shop(settings.clone(), store.clone(), vec![Arbiter::current()], gateway, None).unwrap()
        };
        let (a, b) = (build(), build());
        Two { _dir: dir, store, a, b }
    }

    /// Runs `test` in an actix system (the shops' actors need one).
    fn in_system<F: std::future::Future<Output = ()>>(test: impl FnOnce() -> F) {
        actix::System::new().block_on(async move { test().await });
    }

    /// The verification token the registration of `email` mailed.
    fn verification_token(store: &Store, email: &str) -> String {
        let outbox = store.page::<Notification>(Table::Outbox, None, 100).unwrap();
        let (_, mail) = outbox.iter().find(|(_, n)| n.to == email).expect("a verification email");
        let payload: serde_json::Value = serde_json::from_str(&mail.payload).unwrap();
        payload["verification_token"].as_str().unwrap().to_string()
    }

    /// A customer signed in on one server and answered from memory on another is refused
    /// there once a poll has applied the sign-out, and not before.
    #[test]
    fn a_sign_out_on_one_server_refuses_the_token_on_the_other_after_one_poll() {
        in_system(|| async {
            let Two { _dir, store, a, b } = two_servers();
            let mut poller = a.caches.poller(store.clone(), 100);
            b.customers.register("kim@example.com", PASSWORD, None).await.unwrap();
            let (token, id) = b.customers.login("kim@example.com", PASSWORD, None).await.unwrap();
            assert_eq!(a.customers.authenticate(&token).unwrap(), Some(id), "read from the store, then cached");

            b.customers.logout(&token).await.unwrap();
            assert_eq!(b.customers.authenticate(&token).unwrap(), None, "refused at once where it signed out");
            assert_eq!(a.customers.authenticate(&token).unwrap(), Some(id), "stale until a poll");
            assert_eq!(poller.poll().unwrap(), 1);
            assert_eq!(a.customers.authenticate(&token).unwrap(), None, "refused after one poll");
            assert_eq!(poller.poll().unwrap(), 0, "nothing applied twice");
            store.close().unwrap();
        });
    }

    #[test]
    fn a_verification_on_one_server_is_seen_on_the_other_after_one_poll() {
        in_system(|| async {
            let Two { _dir, store, a, b } = two_servers();
            let mut poller = a.caches.poller(store.clone(), 100);
            let customer = b.customers.register("ada@example.com", PASSWORD, None).await.unwrap();
            let id = customer.customer_id;
            assert!(!a.customers.get(id).unwrap().unwrap().email_verified, "cached unverified");

            b.customers.verify_email(&verification_token(&store, "ada@example.com")).await.unwrap();
            assert!(b.customers.get(id).unwrap().unwrap().email_verified);
            assert!(!a.customers.get(id).unwrap().unwrap().email_verified, "stale until a poll");
            assert_eq!(poller.poll().unwrap(), 1);
            assert!(a.customers.get(id).unwrap().unwrap().email_verified, "read again after one poll");
            store.close().unwrap();
        });
    }

    #[test]
    fn a_console_sign_out_on_one_server_refuses_the_session_on_the_other_after_one_poll() {
        in_system(|| async {
            let Two { _dir, store, a, b } = two_servers();
            let mut poller = a.caches.poller(store.clone(), 100);
            let id = b.console.create(Role::Admin, Some("Ada".into())).await.unwrap();
            assert_eq!(a.console.current(&id).unwrap().map(|s| s.actor()), Some("admin:Ada".into()));

            b.console.end(&id).await.unwrap();
            assert!(b.console.current(&id).unwrap().is_none());
            assert!(a.console.current(&id).unwrap().is_some(), "stale until a poll");
            assert_eq!(poller.poll().unwrap(), 1);
            assert!(a.console.current(&id).unwrap().is_none(), "refused after one poll");
            store.close().unwrap();
        });
    }

    #[test]
    fn a_price_change_on_one_server_is_seen_on_the_other_after_one_poll() {
        in_system(|| async {
            let Two { _dir, store, a, b } = two_servers();
            let mut poller = a.caches.poller(store.clone(), 100);
            let category = b.catalog.create_category("Tea", "admin").await.unwrap();
            let new = NewProduct {
                name: "Sencha".into(),
                description: "Green".into(),
                price: "10.00".into(),
                category_id: category.category_id,
                initial_stock: Some(5),
                variants: None,
            };
            let product = b.catalog.create_product(new, "admin").await.unwrap();
            let id = product.product_id;
            assert_eq!(a.catalog.product(id).unwrap().price, Money::parse("10.00").unwrap());

            b.catalog.update_price(id, "12.50", "admin").await.unwrap();
            let (old, new) = (Money::parse("10.00").unwrap(), Money::parse("12.50").unwrap());
            assert_eq!(b.catalog.product(id).unwrap().price, new);
            assert_eq!(a.catalog.product(id).unwrap().price, old, "stale until a poll");
            assert_eq!(poller.poll().unwrap(), 1);
            assert_eq!(a.catalog.product(id).unwrap().price, new, "read again after one poll");
            store.close().unwrap();
        });
    }

    /// A retry policy changed on one server is the other's after one poll (the saga engine,
    /// a follower of the poller, reads them all again).
    #[test]
    fn a_retry_policy_changed_on_one_server_is_the_others_after_one_poll() {
        in_system(|| async {
            let Two { _dir, store, a, b } = two_servers();
            a.sagas.boot().await.unwrap();
            b.sagas.boot().await.unwrap();
            let mut poller = a.caches.poller(store.clone(), 100);
            let (saga_type, step) = ("place_order", "authorize_payment");
            let before = a.sagas.policy(saga_type, step).unwrap();
            let changed = crate::retry::RetryPolicy { max_attempts: before.max_attempts + 3, ..before };
            b.sagas.set_policy(saga_type, step, changed, "admin").await.unwrap();
            assert_eq!(b.sagas.policy(saga_type, step), Some(changed));
            assert_eq!(a.sagas.policy(saga_type, step), Some(before), "stale until a poll");
            assert_eq!(poller.poll().unwrap(), 1);
            assert_eq!(a.sagas.policy(saga_type, step), Some(changed), "read again after one poll");
            store.close().unwrap();
        });
    }

    #[test]
    fn a_pause_and_a_release_on_one_server_reach_the_others_board_after_one_poll() {
        in_system(|| async {
            let Two { _dir, store, a, b } = two_servers();
            let mut poller = a.caches.poller(store.clone(), 100);
            let key = QuarantineKey::new(KeyKind::Order, uuid::Uuid::now_v7());

            b.quarantine.pause(key, "double capture".into(), "admin").await.unwrap();
            assert!(b.caches.board.holds(&key));
            assert!(!a.caches.board.holds(&key), "not before a poll");
            assert_eq!(poller.poll().unwrap(), 1);
            assert_eq!(a.caches.board.reason(&key).as_deref(), Some("double capture"), "paused after one poll");

            b.quarantine.release(key, "admin").await.unwrap();
            assert!(a.caches.board.holds(&key), "still paused before a poll");
            assert_eq!(poller.poll().unwrap(), 1);
            assert!(a.caches.board.check(&key).is_ok(), "resumed after one poll");
            store.close().unwrap();
        });
    }

    /// A server also applies its own writes' entries: it drops what it had cached and reads
    /// it again, answering as before.
    #[test]
    fn applying_its_own_entries_changes_no_answer() {
        in_system(|| async {
            let Two { _dir, store, a, .. } = two_servers();
            let mut poller = a.caches.poller(store.clone(), 100);
            let customer = a.customers.register("lin@example.com", PASSWORD, None).await.unwrap();
            a.customers.verify_email(&verification_token(&store, "lin@example.com")).await.unwrap();
            let (token, id) = a.customers.login("lin@example.com", PASSWORD, None).await.unwrap();
            a.customers.logout(&token).await.unwrap();
            let key = QuarantineKey::new(KeyKind::Cart, customer.customer_id.0);
            a.quarantine.pause(key, "fraud".into(), "admin").await.unwrap();
            assert_eq!(poller.poll().unwrap(), 3, "the verification, the sign-out, the pause");
            assert!(a.customers.get(id).unwrap().unwrap().email_verified);
            assert_eq!(a.customers.authenticate(&token).unwrap(), None);
            assert!(a.caches.board.holds(&key));
            store.close().unwrap();
        });
    }

    /// A poller that finds entries deleted before it read them (it was stalled past their
    /// retention) cannot know what they named: it drops every copy and reloads the board.
    #[test]
    fn a_poller_that_missed_entries_drops_every_copy_and_reloads_the_board() {
        in_system(|| async {
            let Two { _dir, store, a, b } = two_servers();
            let mut poller = a.caches.poller(store.clone(), 100);
            let customer = b.customers.register("eve@example.com", PASSWORD, None).await.unwrap();
            let (token, id) = b.customers.login("eve@example.com", PASSWORD, None).await.unwrap();
            let key = QuarantineKey::new(KeyKind::Cart, id.0);
            assert!(!a.customers.get(id).unwrap().unwrap().email_verified);
            assert_eq!(a.customers.authenticate(&token).unwrap(), Some(id));
            let start = poller.applied_up_to();

            b.customers.verify_email(&verification_token(&store, &customer.email)).await.unwrap();
            b.customers.logout(&token).await.unwrap();
            b.quarantine.pause(key, "chargeback".into(), "admin").await.unwrap();
            let later = QuarantineKey::new(KeyKind::Order, uuid::Uuid::now_v7());
            b.quarantine.pause(later, "later".into(), "admin").await.unwrap();
            // Retention deleted the first three before this server read them.
            let deleted =
                (start + 1..=start + 3).fold(WriteSet::new(), |ws, seq| ws.remove(keys::cache_invalidation(seq)));
            store.commit(deleted).await.unwrap();

            assert_eq!(poller.poll().unwrap(), 1, "only the last is left to apply");
            assert!(a.customers.get(id).unwrap().unwrap().email_verified, "every customer read again");
            assert_eq!(a.customers.authenticate(&token).unwrap(), None, "every session read again");
            assert!(a.caches.board.holds(&key), "the board read again whole");
            assert!(a.caches.board.holds(&later));
            store.close().unwrap();
        });
    }
}
