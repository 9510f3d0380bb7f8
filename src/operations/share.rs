//! What a serving server does when its share of the partitions shrinks (the lease found
//! some taken over by another server): it drops the cart, order and inventory actors, the
//! saga coordinators and the census entries of the partitions it lost. Their state in
//! memory may be stale from then on (the new owner writes), their writes would be refused
//! by the fence anyway, and the new owner recovers and runs their sagas. Requests for those
//! partitions are forwarded to the new owner from then on (`http::forward`), and the
//! workers pass over their rows (`store::Ownership`).

use std::sync::Arc;

use tokio::sync::watch;

use crate::domain::partition::Owned;
use crate::saga::SagaEngine;
use crate::services::{cart::CartService, inventory::InventoryService, orders::OrderService};

/// Follows this server's share and gives up what it lost.
pub struct ShareWatch {
    pub carts: CartService,
    pub orders: OrderService,
    pub inventory: InventoryService,
    pub sagas: Arc<SagaEngine>,
    pub changes: watch::Receiver<Arc<Owned>>,
}

impl ShareWatch {
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let owned = self.changes.borrow_and_update().clone();
                    self.give_up(&owned);
                }
                _ = stop.changed() => break,
            }
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
            partitions = %crate::domain::partition::ranges(&owned.partitions().iter().map(|p| p.0).collect::<Vec<_>>()),
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
        crate::startup::with_shop(|store, shop| async move {
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

            let watch = ShareWatch {
                carts: shop.carts.clone(),
                orders: shop.orders.clone(),
                inventory: shop.inventory.clone(),
                sagas: shop.sagas.clone(),
                changes: store.ownership().changes(),
            };
            assert_eq!(watch.give_up(&Owned::share(Partitions::DEFAULT, [Partition(3)])), 1, "the lost cart's actor");
            assert_eq!(shop.carts.active(), 1, "the kept cart's actor stays");
            assert_eq!(running(&shop), 1, "the lost partition's saga left the census");
        });
    }
}
