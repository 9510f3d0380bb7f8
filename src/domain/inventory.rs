//! The Inventory aggregate (SEQ-INV-001/002): stock of one product or variant, with
//! reservations keyed by their owner (saga, order, operator hold) so that reserving twice,
//! releasing an unknown owner or deducting twice are no-ops.
//!
//! Invariant at every moment: `0 <= reserved <= on_hand`, `available = on_hand - reserved`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::events::DomainEvent;
use super::ids::{ItemKey, OwnerId};
use super::quantity::Quantity;

/// Stock never exceeds this, so sums cannot overflow.
pub const MAX_STOCK: u64 = 1_000_000_000_000;

/// The persisted counters of one item; its reservations are stored beside it, one key each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockRecord {
    pub key: ItemKey,
    pub on_hand: u64,
    pub reserved: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub key: ItemKey,
    pub on_hand: u64,
    pub reservations: BTreeMap<OwnerId, u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryCommand {
    Restock { quantity: Quantity },
    Reserve { owner: OwnerId, quantity: Quantity },
    Release { owner: OwnerId },
    Deduct { owner: OwnerId },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    #[error("not enough stock")]
    InsufficientStock { requested: u32, available: u64 },
    #[error("stock cannot exceed {MAX_STOCK}")]
    StockLimit,
    #[error("this owner already holds a reservation of {held}")]
    ReservationConflict { held: u32 },
}

impl Inventory {
    pub fn new(key: ItemKey, on_hand: u64) -> Inventory {
        Inventory { key, on_hand, reservations: BTreeMap::new() }
    }

    pub fn reserved(&self) -> u64 {
        self.reservations.values().map(|q| u64::from(*q)).sum()
    }

    pub fn available(&self) -> u64 {
        self.on_hand - self.reserved()
    }

    pub fn record(&self) -> StockRecord {
        StockRecord { key: self.key, on_hand: self.on_hand, reserved: self.reserved() }
    }

    /// Decides; never mutates. An error means nothing changes.
    pub fn handle(&self, cmd: &InventoryCommand) -> Result<Vec<DomainEvent>, InventoryError> {
        let (product_id, variant_id) = (self.key.product_id, self.key.variant_id);
        let reserved = self.reserved();
        let available = self.on_hand - reserved;
        match *cmd {
            InventoryCommand::Restock { quantity } => {
                let on_hand = self.on_hand + u64::from(quantity.get());
                if on_hand > MAX_STOCK {
                    return Err(InventoryError::StockLimit);
                }
                Ok(vec![DomainEvent::InventoryRestocked {
                    product_id,
                    variant_id,
                    quantity: quantity.get(),
                    on_hand,
                    available: on_hand - reserved,
                }])
            }
            InventoryCommand::Reserve { owner, quantity } => {
                if let Some(held) = self.reservations.get(&owner) {
                    return if *held == quantity.get() {
                        Ok(Vec::new())
                    } else {
                        Err(InventoryError::ReservationConflict { held: *held })
                    };
                }
                let q = u64::from(quantity.get());
                if q > available {
                    return Err(InventoryError::InsufficientStock { requested: quantity.get(), available });
                }
                let mut events = vec![DomainEvent::InventoryReserved {
                    product_id,
                    variant_id,
                    owner_id: owner,
                    quantity: quantity.get(),
                    reserved: reserved + q,
                    available: available - q,
                }];
                if available - q == 0 {
                    events.push(DomainEvent::OutOfStock { product_id, variant_id });
                }
                Ok(events)
            }
            InventoryCommand::Release { owner } => Ok(self
                .reservations
                .get(&owner)
                .map(|q| DomainEvent::InventoryReleased {
                    product_id,
                    variant_id,
                    owner_id: owner,
                    quantity: *q,
                    reserved: reserved - u64::from(*q),
                    available: available + u64::from(*q),
                })
                .into_iter()
                .collect()),
            InventoryCommand::Deduct { owner } => Ok(self
                .reservations
                .get(&owner)
                .map(|q| DomainEvent::InventoryDeducted {
                    product_id,
                    variant_id,
                    owner_id: owner,
                    quantity: *q,
                    on_hand: self.on_hand - u64::from(*q),
                    reserved: reserved - u64::from(*q),
                })
                .into_iter()
                .collect()),
        }
    }

    pub fn apply(&mut self, event: &DomainEvent) {
        match event {
            DomainEvent::InventoryRestocked { on_hand, .. } => self.on_hand = *on_hand,
            DomainEvent::InventoryReserved { owner_id, quantity, .. } => {
                self.reservations.insert(*owner_id, *quantity);
            }
            DomainEvent::InventoryReleased { owner_id, .. } => {
                self.reservations.remove(owner_id);
            }
            DomainEvent::InventoryDeducted { owner_id, on_hand, .. } => {
                self.reservations.remove(owner_id);
                self.on_hand = *on_hand;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::ProductId;
    use proptest::prelude::*;

    fn item(on_hand: u64) -> Inventory {
        Inventory::new(ItemKey { product_id: ProductId::new(), variant_id: None }, on_hand)
    }

    fn q(n: u32) -> Quantity {
        Quantity::new(n).unwrap()
    }

    fn run(inv: &mut Inventory, cmd: InventoryCommand) -> Result<Vec<DomainEvent>, InventoryError> {
        let events = inv.handle(&cmd)?;
        events.iter().for_each(|e| inv.apply(e));
        Ok(events)
    }

    #[test]
    fn reserve_is_idempotent_per_owner() {
        let mut inv = item(10);
        let owner = OwnerId::new();
        assert_eq!(run(&mut inv, InventoryCommand::Reserve { owner, quantity: q(4) }).unwrap().len(), 1);
        assert!(run(&mut inv, InventoryCommand::Reserve { owner, quantity: q(4) }).unwrap().is_empty());
        assert_eq!(inv.reserved(), 4);
        assert_eq!(
            run(&mut inv, InventoryCommand::Reserve { owner, quantity: q(5) }),
            Err(InventoryError::ReservationConflict { held: 4 })
        );
    }

    #[test]
    fn reserving_the_last_unit_emits_out_of_stock_once() {
        let mut inv = item(3);
        let events = run(&mut inv, InventoryCommand::Reserve { owner: OwnerId::new(), quantity: q(3) }).unwrap();
        assert!(matches!(events.last(), Some(DomainEvent::OutOfStock { .. })));
        assert_eq!(
            run(&mut inv, InventoryCommand::Reserve { owner: OwnerId::new(), quantity: q(1) }),
            Err(InventoryError::InsufficientStock { requested: 1, available: 0 })
        );
    }

    #[test]
    fn release_and_deduct_unknown_owner_are_no_ops() {
        let mut inv = item(3);
        assert!(run(&mut inv, InventoryCommand::Release { owner: OwnerId::new() }).unwrap().is_empty());
        assert!(run(&mut inv, InventoryCommand::Deduct { owner: OwnerId::new() }).unwrap().is_empty());
    }

    #[test]
    fn deduct_takes_from_on_hand_and_reserved_once() {
        let mut inv = item(10);
        let owner = OwnerId::new();
        run(&mut inv, InventoryCommand::Reserve { owner, quantity: q(4) }).unwrap();
        run(&mut inv, InventoryCommand::Deduct { owner }).unwrap();
        run(&mut inv, InventoryCommand::Deduct { owner }).unwrap();
        assert_eq!((inv.on_hand, inv.reserved()), (6, 0));
    }

    #[test]
    fn restock_is_bounded() {
        let mut inv = item(MAX_STOCK - 1);
        assert_eq!(run(&mut inv, InventoryCommand::Restock { quantity: q(2) }), Err(InventoryError::StockLimit));
        assert_eq!(inv.on_hand, MAX_STOCK - 1);
    }

    fn command() -> impl Strategy<Value = (u8, u8, u32)> {
        (0u8..4, 0u8..6, 1u32..40)
    }

    proptest! {
        /// reserved <= on_hand under any sequence of reserve/release/deduct/restock.
        #[test]
        fn reserved_never_exceeds_on_hand(start in 0u64..50, cmds in proptest::collection::vec(command(), 0..200)) {
            let owners: Vec<OwnerId> = (0..6).map(|_| OwnerId::new()).collect();
            let mut inv = item(start);
            let mut out_of_stock_edges = 0;
            let mut emitted = 0;
            for (kind, o, n) in cmds {
                let owner = owners[o as usize];
                let cmd = match kind {
                    0 => InventoryCommand::Restock { quantity: q(n) },
                    1 => InventoryCommand::Reserve { owner, quantity: q(n) },
                    2 => InventoryCommand::Release { owner },
                    _ => InventoryCommand::Deduct { owner },
                };
                let before = inv.clone();
                match run(&mut inv, cmd) {
                    Ok(events) => {
                        emitted += events.iter().filter(|e| matches!(e, DomainEvent::OutOfStock { .. })).count();
                        if before.available() > 0 && inv.available() == 0 { out_of_stock_edges += 1; }
                    }
                    Err(_) => prop_assert_eq!(&inv, &before),
                }
                prop_assert!(inv.reserved() <= inv.on_hand);
                prop_assert_eq!(inv.available(), inv.on_hand - inv.reserved());
            }
            prop_assert_eq!(emitted, out_of_stock_edges);
        }
    }
}
