//! Order ids this server minted and has not yet handed to an order actor's activation:
//! their order cannot be in the store, so creating it needs no read first.
//!
//! A checkout's `create_order` used to read the store for the order it was about to
//! create: on PostgreSQL a round trip that parks the thread activating the actor (a saga
//! arbiter, and with it every saga on that arbiter), for an id minted milliseconds earlier.
//! The only write of a new order is `create_order`'s, so an id nobody has activated yet has
//! no order; the first activation takes the id out, and every later one (a retry, a second
//! activation after a failed write, another server, a restart) reads as before.
//!
//! Bounded as the caches of `caches.rs` are: beyond [`CAPACITY`] ids the set starts over, so
//! a checkout that never reached `create_order` costs nothing lasting, and the few whose id
//! was forgotten read the store, as before.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::domain::ids::{CustomerId, OrderId};
use crate::domain::partition;
use crate::whole;

/// Ids remembered at most: about 1.6 MB, far more than the checkouts in flight.
const CAPACITY: usize = 100_000;

#[derive(Default)]
pub struct FreshIds {
    ids: Mutex<HashSet<OrderId>>,
}

impl FreshIds {
    /// A new id of an order of `customer` (in the customer's partition), remembered as
    /// never written.
    pub fn mint(&self, customer: CustomerId) -> OrderId {
        let id = OrderId(partition::alike(uuid::Uuid::now_v7(), &customer.0));
        let mut ids = self.lock();
        if ids.len() >= CAPACITY {
            ids.clear();
        }
        ids.insert(id);
        id
    }

    /// Whether `id` was minted here and never taken before; it is not fresh any more.
    pub fn take(&self, id: OrderId) -> bool {
        self.lock().remove(&id)
    }

    /// The set stays whole whatever a panicking holder did (an insert or a remove), so a
    /// poisoned lock is taken as is.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<OrderId>> {
        whole::lock(&self.ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_id_is_fresh_once() {
        let (ids, customer) = (FreshIds::default(), CustomerId::new());
        let id = ids.mint(customer);
        let sixteen = partition::Partitions::new(16).unwrap();
        assert_eq!(sixteen.of(&id.0), sixteen.of(&customer.0), "in its customer's partition");
        assert!(ids.take(id));
        assert!(!ids.take(id), "the second activation reads");
        assert!(!ids.take(OrderId::new()), "an id minted elsewhere is never fresh");
    }

    #[test]
    fn beyond_its_capacity_the_set_starts_over_and_a_forgotten_id_reads() {
        let ids = FreshIds::default();
        let first = ids.mint(CustomerId::new());
        let last = (1..CAPACITY).map(|_| ids.mint(CustomerId::new())).last().unwrap();
        assert_eq!(ids.lock().len(), CAPACITY);
        let next = ids.mint(CustomerId::new());
        assert_eq!(ids.lock().len(), 1, "started over");
        assert!(!ids.take(first) && !ids.take(last), "forgotten: their creation reads the store");
        assert!(ids.take(next));
    }
}
