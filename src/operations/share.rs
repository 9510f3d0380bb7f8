//! What a serving server does when its share of the partitions changes. When it shrinks
//! (the lease found some taken over by another server) it drops the cart, order and
//! inventory actors, the saga coordinators and the census entries of the partitions it
//! lost: their state in memory may be stale from then on (the new owner writes), their
//! writes would be refused by the fence anyway, and the new owner recovers and runs their
//! sagas. When it grows it takes the new partitions' sagas over (`SagaEngine::take_over`:
//! checked, counted and resumed as at start). A request of a partition just taken waits
//! until that is done (`http::forward`), so that nothing new starts beside a saga not yet
//! running again; the workers walk the rows of the partitions it owns (`store::Ownership`).

use std::sync::Arc;

use tokio::sync::watch;

use crate::domain::partition::{ranges, Owned, Partition};
use crate::saga::SagaEngine;
use crate::services::{cart::CartService, inventory::InventoryService, orders::OrderService};

/// Follows this server's share: gives up what it lost, takes over what it gained.
pub struct ShareWatch {
    carts: CartService,
    orders: OrderService,
    inventory: InventoryService,
    sagas: Arc<SagaEngine>,
    ownership: crate::store::Ownership,
    changes: watch::Receiver<Arc<Owned>>,
    /// The share as last followed, and each partition's losses then.
    last: Arc<Owned>,
    losses: Vec<u64>,
}

impl ShareWatch {
    /// Follows the changes of `ownership` from the share whose sagas the engine booted with
    /// (the first run follows whatever changed since). A shop's is `Shop::share_watch`.
    pub fn new(
        carts: CartService,
        orders: OrderService,
        inventory: InventoryService,
        sagas: Arc<SagaEngine>,
        ownership: &crate::store::Ownership,
    ) -> ShareWatch {
        let changes = ownership.changes();
        let last = sagas.recovered();
        let losses = ownership.losses();
        ShareWatch { carts, orders, inventory, sagas, ownership: ownership.clone(), changes, last, losses }
    }

    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        // What changed while the engine booted, before this watch was made.
        let now = self.changes.borrow_and_update().clone();
        self.follow(now).await;
        loop {
            tokio::select! {
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let owned = self.changes.borrow_and_update().clone();
                    self.follow(owned).await;
                }
                _ = stop.changed() => break,
            }
        }
    }

    /// Gives up the partitions of the last share that `owned` lacks, and takes over those
    /// it adds. A partition in both that was lost in between (and taken back: the watch
    /// showed only the latest share) counts as both: what is in memory of it is stale.
    pub async fn follow(&mut self, owned: Arc<Owned>) {
        let losses = self.ownership.losses();
        let lost_since = |p: &Partition| losses.get(usize::from(p.0)) != self.losses.get(usize::from(p.0));
        let retaken = Owned::share(owned.count(), owned.partitions().iter().copied().filter(lost_since));
        let kept = owned.minus(&retaken);
        if !self.last.minus(&kept).is_empty() {
            self.give_up(&kept);
        }
        let gained = owned.minus(&self.last.minus(&retaken));
        self.last = owned;
        self.losses = losses;
        if gained.is_empty() {
            return;
        }
        let partitions = ranges(&gained.partitions().iter().map(|p| p.0).collect::<Vec<_>>());
        match self.sagas.take_over(&gained).await {
            Ok(resumed) => tracing::info!(%partitions, resumed, "took partitions over: their sagas resumed"),
            Err(e) => tracing::error!(%partitions, error = %e, "could not take the sagas of partitions over"),
        }
    }

    /// Drops whatever this server holds in memory of the partitions outside `owned`; how
    /// many actors and coordinators.
    pub fn give_up(&self, owned: &Owned) -> usize {
        let dropped = self.carts.give_up(owned)
            + self.orders.give_up(owned)
            + self.inventory.give_up(owned)
            + self.sagas.give_up(owned);
        tracing::warn!(
            dropped,
            partitions = %ranges(&owned.partitions().iter().map(|p| p.0).collect::<Vec<_>>()),
            "this server's share of the partitions changed: the actors and sagas of the others dropped"
        );
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::CustomerId;
    use crate::domain::partition::{id_in, Partition, Partitions};

    /// A partition lost drops its actors (the next use of a kept one finds it still in
    /// memory); a saga of a lost partition leaves the census, one of a kept one stays.
    #[test]
    fn a_share_that_shrinks_drops_the_actors_and_census_entries_of_the_partitions_lost() {
        crate::startup::with_shop(|_store, shop| async move {
            let (kept, lost) = (CustomerId(id_in(Partition(3))), CustomerId(id_in(Partition(4))));
            for customer in [kept, lost] {
                shop.carts.get(customer).await.unwrap();
            }
            assert_eq!(shop.carts.active(), 2);
            let def = &crate::saga::definition::embedded().unwrap()[0];
            for customer in [kept, lost] {
                let mut saga = crate::saga::SagaInstance::new(
                    def,
                    |_| crate::retry::RetryPolicy::NONE,
                    serde_json::json!({}),
                    Some(customer),
                    None,
                );
                saga.saga_id =
                    crate::domain::ids::SagaId(crate::domain::partition::alike(uuid::Uuid::now_v7(), &customer.0));
                shop.sagas.census().record(&saga, None);
            }
            let running = |shop: &crate::startup::Shop| shop.sagas.census().counts().iter().map(|c| c.2).sum::<u64>();
            assert_eq!(running(&shop), 2);

            let watch = shop.share_watch();
            assert_eq!(watch.give_up(&Owned::share(Partitions::DEFAULT, [Partition(3)])), 1, "the lost cart's actor");
            assert_eq!(shop.carts.active(), 1, "the kept cart's actor stays");
            assert_eq!(running(&shop), 1, "the lost partition's saga left the census");
        });
    }

    /// A partition lost and taken back between two looks of the watch (which shows only the
    /// latest share) is given up and taken over all the same: its actors, stale once the
    /// other server wrote, are dropped, and its requests wait for its recovery again.
    #[test]
    fn a_partition_lost_and_taken_back_unseen_is_given_up_and_taken_over_again() {
        crate::startup::with_shop(|store, shop| async move {
            let both = Owned::share(Partitions::DEFAULT, [Partition(3), Partition(4)]);
            store.ownership().set(both.clone());
            let mut watch = shop.share_watch();
            watch.follow(store.owned()).await;
            for p in [3, 4] {
                shop.carts.get(CustomerId(id_in(Partition(p)))).await.unwrap();
            }
            assert_eq!(shop.carts.active(), 2);

            watch.follow(store.owned()).await;
            assert_eq!(shop.carts.active(), 2, "nothing changed: nothing dropped");
            store.ownership().set(Owned::share(Partitions::DEFAULT, [Partition(3)]));
            store.ownership().set(both);
            watch.follow(store.owned()).await;
            assert_eq!(shop.carts.active(), 1, "partition 4's cart dropped, partition 3's kept");
            assert!(shop.sagas.recovered().contains(Partition(4)), "taken over again");
        });
    }

    /// A share that grows takes the new partitions' sagas over (their unfinished ones
    /// resumed and counted, their finished ones counted), and one that shrinks back gives
    /// them up again: the census says exactly this server's partitions' sagas throughout.
    #[test]
    fn a_share_that_grows_takes_the_new_partitions_sagas_over_and_counts_them() {
        use crate::saga::coordinator::log_write;
        use crate::saga::{SagaInstance, SagaState};
        crate::startup::with_shop(|store, shop| async move {
            let def = &crate::saga::definition::embedded().unwrap()[0];
            let saga_in = |p, state| {
                let mut saga =
                    SagaInstance::new(def, |_| crate::retry::RetryPolicy::NONE, serde_json::json!({}), None, None);
                saga.saga_id = crate::domain::ids::SagaId(id_in(Partition(p)));
                saga.state = state;
                saga
            };
            let mut ws = crate::store::WriteSet::new();
            for stuck in [saga_in(3, SagaState::Stuck), saga_in(4, SagaState::Stuck)] {
                ws = log_write(ws, &stuck, None).save(crate::store::keys::active_saga(stuck.saga_id), &0u32);
            }
            store.commit(log_write(ws, &saga_in(4, SagaState::Completed), None)).await.unwrap();
            let census = shop.sagas.census().clone();
            let counted = || async {
                for _ in 0..500 {
                    if census.is_complete() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                assert!(census.is_complete(), "the census's count ends");
                let of = |state| census.counts().iter().filter(|c| c.1 == state).map(|c| c.2).sum::<u64>();
                (of(SagaState::Stuck), of(SagaState::Completed))
            };

            store.ownership().set(Owned::share(Partitions::DEFAULT, [Partition(3)]));
            assert_eq!(shop.sagas.boot().await.unwrap(), 1, "partition 3's STUCK saga");
            assert_eq!(counted().await, (1, 0));
            let mut watch = shop.share_watch();

            store.ownership().set(Owned::share(Partitions::DEFAULT, [Partition(3), Partition(4)]));
            watch.follow(store.owned()).await;
            assert_eq!(counted().await, (2, 1), "partition 4's STUCK and COMPLETED sagas are counted too");

            store.ownership().set(Owned::share(Partitions::DEFAULT, [Partition(3)]));
            watch.follow(store.owned()).await;
            assert_eq!(counted().await, (1, 0), "and leave the census with the partition");
        });
    }
}
