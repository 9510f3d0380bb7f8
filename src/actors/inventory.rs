//! The `InventoryItem` actor: stock of one product or variant, a thin shell over the pure
//! [`Inventory`] aggregate. Each change is persisted with its events, its audit row and (when
//! available reaches zero) the out-of-stock alert, in one durable write, before the reply.

use std::sync::Arc;

use actix::prelude::*;
use serde_json::json;

use super::registry::{refused, reply_when_durable, Entity, Pipeline, Registry};
use super::ActorFailure;
use crate::domain::events::DomainEvent;
use crate::domain::ids::{ItemKey, OwnerId};
use crate::domain::inventory::{Inventory, InventoryCommand, StockRecord};
use crate::domain::time::Timestamp;
use crate::store::{keys, AuditEntry, Store, WriteSet};
use crate::whole;

pub type InventoryRegistry = Registry<ItemKey, InventoryItemActor>;

/// What is available of each item, as its actor last published it. Adding to a cart only
/// checks availability (it reserves nothing), so it reads here instead of queueing behind
/// the item's mailbox; only the item's actor ever writes its entry.
#[derive(Default)]
pub struct StockBoard {
    shards: [std::sync::RwLock<std::collections::HashMap<ItemKey, u64>>; 16],
}

impl StockBoard {
    pub fn get(&self, key: &ItemKey) -> Option<u64> {
        whole::read(self.shard(key)).get(key).copied()
    }

    fn publish(&self, key: ItemKey, available: u64) {
        whole::write(self.shard(&key)).insert(key, available);
    }

    fn shard(&self, key: &ItemKey) -> &std::sync::RwLock<std::collections::HashMap<ItemKey, u64>> {
        &self.shards[key.product_id.as_bytes()[15] as usize % 16]
    }
}

pub struct InventoryItemActor {
    inventory: Inventory,
    store: Store,
    registry: Arc<InventoryRegistry>,
    board: Arc<StockBoard>,
    pipeline: Pipeline,
}

/// A stock change made by `by` (audit actor: "admin", `saga:<id>`...).
#[derive(Message)]
#[rtype(result = "Result<StockRecord, ActorFailure>")]
pub struct ExecuteInventory {
    pub cmd: InventoryCommand,
    pub by: String,
}

/// Stock as last acknowledged.
#[derive(Message)]
#[rtype(result = "Result<StockRecord, ActorFailure>")]
pub struct GetStock;

/// What is available right now (a check before adding to a cart; not a reservation).
#[derive(Message)]
#[rtype(result = "u64")]
pub struct Available;

crate::entity_messages!(commands: ExecuteInventory; reads: GetStock, Available);

impl InventoryItemActor {
    /// Loads the item and its reservations; `None` when the item does not exist.
    pub fn activate(
        arbiter: &ArbiterHandle,
        key: ItemKey,
        store: Store,
        registry: Arc<InventoryRegistry>,
        board: Arc<StockBoard>,
    ) -> Result<Option<Addr<InventoryItemActor>>, ActorFailure> {
        let Some(record) = store.load::<StockRecord>(&keys::stock(&key))? else {
            return Ok(None);
        };
        let mut inventory = Inventory::new(key, record.on_hand);
        for (k, q) in store.scan::<u32>(&keys::reservations_of(&key))? {
            let owner =
                uuid::Uuid::from_slice(keys::owner_in_reservation(&k)).map_err(|e| ActorFailure::internal("", e))?;
            inventory.reservations.insert(OwnerId(owner), q);
        }
        if inventory.reserved() != record.reserved {
            tracing::error!(item = ?key, stored = record.reserved, summed = inventory.reserved(), "reservation total mismatch");
        }
        board.publish(key, inventory.available());
        Ok(Some(InventoryItemActor::start_in_arbiter(arbiter, move |_| InventoryItemActor {
            inventory,
            store,
            registry,
            board,
            pipeline: Pipeline::default(),
        })))
    }

    fn write_set(&self, before: &StockRecord, events: &[DomainEvent], by: &str) -> WriteSet {
        let key = self.inventory.key;
        let after = self.inventory.record();
        let mut ws = WriteSet::new().save(keys::stock(&key), &after).events(events);
        for e in events {
            ws = match e {
                DomainEvent::InventoryReserved { owner_id, quantity, .. } => {
                    ws.save(keys::reservation(&key, owner_id), quantity)
                }
                DomainEvent::InventoryReleased { owner_id, .. } | DomainEvent::InventoryDeducted { owner_id, .. } => {
                    ws.remove(keys::reservation(&key, owner_id))
                }
                _ => ws,
            };
        }
        let action = match events.first() {
            Some(DomainEvent::InventoryRestocked { .. }) => "inventory.restocked",
            Some(DomainEvent::InventoryReserved { .. }) => "inventory.reserved",
            Some(DomainEvent::InventoryReleased { .. }) => "inventory.released",
            Some(DomainEvent::InventoryDeducted { .. }) => "inventory.deducted",
            _ => "inventory.changed",
        };
        let entity_id = match key.variant_id {
            Some(v) => format!("{}:{v}", key.product_id),
            None => key.product_id.to_string(),
        };
        ws.audit(AuditEntry {
            at: Timestamp::now(),
            actor: by.to_string(),
            action: action.to_string(),
            entity_type: "inventory".to_string(),
            entity_id,
            before: json!({ "on_hand": before.on_hand, "reserved": before.reserved }).to_string(),
            after: json!({ "on_hand": after.on_hand, "reserved": after.reserved }).to_string(),
        })
    }
}

impl Actor for InventoryItemActor {
    type Context = Context<Self>;
}

crate::passivates!(InventoryItemActor);

impl Entity for InventoryItemActor {
    type Key = ItemKey;

    fn key(&self) -> ItemKey {
        self.inventory.key
    }

    fn registry(&self) -> &InventoryRegistry {
        &self.registry
    }

    fn pipeline(&mut self) -> &mut Pipeline {
        &mut self.pipeline
    }
}

impl Handler<ExecuteInventory> for InventoryItemActor {
    type Result = ResponseActFuture<Self, Result<StockRecord, ActorFailure>>;

    fn handle(&mut self, msg: ExecuteInventory, _: &mut Context<Self>) -> Self::Result {
        if self.pipeline.failed() {
            return refused();
        }
        let events = match self.inventory.handle(&msg.cmd) {
            Ok(events) => events,
            Err(e) => return Box::pin(fut::ready(Err(e.into()))),
        };
        let before = self.inventory.record();
        let ticket = if events.is_empty() {
            self.store.barrier()
        } else {
            events.iter().for_each(|e| self.inventory.apply(e));
            self.board.publish(self.inventory.key, self.inventory.available());
            self.store.commit(self.write_set(&before, &events, &msg.by))
        };
        let after = self.inventory.record();
        reply_when_durable(self, ticket, after)
    }
}

impl Handler<GetStock> for InventoryItemActor {
    type Result = ResponseActFuture<Self, Result<StockRecord, ActorFailure>>;

    fn handle(&mut self, _: GetStock, _: &mut Context<Self>) -> Self::Result {
        if self.pipeline.failed() {
            return refused();
        }
        let record = self.inventory.record();
        let ticket = self.store.barrier();
        Box::pin(
            async move {
                ticket.await?;
                Ok(record)
            }
            .into_actor(self),
        )
    }
}

impl Handler<Available> for InventoryItemActor {
    type Result = u64;

    fn handle(&mut self, _: Available, _: &mut Context<Self>) -> u64 {
        self.inventory.available()
    }
}
