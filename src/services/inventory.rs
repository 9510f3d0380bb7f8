//! InventoryService (SEQ-INV-001/002): stock views, restocks, and reservations (holds)
//! keyed by owner. Every change goes through the item's actor, on the server that owns the
//! item's partition: an item another server of the cluster owns is changed by a stock call
//! to that server ([`StockOwners`]) and read from the store.

use std::sync::Arc;

use serde::Serialize;

use super::catalog::CatalogService;
use super::ServiceError;
use crate::actors::inventory::{
    Available, ExecuteInventory, GetStock, InventoryItemActor, InventoryRegistry, StockBoard,
};
use crate::actors::registry::{send_leased, Lease};
use crate::domain::ids::{ItemKey, OwnerId, ProductId, VariantId};
use crate::domain::inventory::{InventoryCommand, InventoryError, StockRecord};
use crate::domain::product::{Product, VariantChoiceError};
use crate::domain::quantity::Quantity;
use crate::error::Fault;
use crate::services::catalog::CatalogError;
use crate::store::{keys, Store, Table};

#[derive(Clone)]
pub struct InventoryService {
    store: Store,
    registry: Arc<InventoryRegistry>,
    catalog: CatalogService,
    board: Arc<StockBoard>,
    /// The other servers of a cluster, for the items they own (none on the embedded store).
    owners: Option<Arc<dyn StockOwners>>,
}

/// Stock commands for an item another server owns: run by that server's actor for the
/// item, answered as it answered (a refusal as the domain gave it). Reservations, releases
/// and deductions are idempotent by owner, so a step that retries one cannot apply it twice.
pub trait StockOwners: Send + Sync {
    fn execute(
        &self,
        key: ItemKey,
        cmd: InventoryCommand,
        by: String,
    ) -> futures::future::BoxFuture<'static, Result<StockRecord, ServiceError>>;
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemStock {
    pub variant_id: Option<VariantId>,
    pub on_hand: u64,
    pub reserved: u64,
    pub available: u64,
}

impl From<StockRecord> for ItemStock {
    fn from(r: StockRecord) -> ItemStock {
        ItemStock {
            variant_id: r.key.variant_id,
            on_hand: r.on_hand,
            reserved: r.reserved,
            available: r.on_hand - r.reserved,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProductStock {
    pub product_id: ProductId,
    pub items: Vec<ItemStock>,
}

impl InventoryService {
    pub fn new(
        store: Store,
        registry: Arc<InventoryRegistry>,
        catalog: CatalogService,
        owners: Option<Arc<dyn StockOwners>>,
    ) -> InventoryService {
        InventoryService { store, registry, catalog, board: Default::default(), owners }
    }

    /// The other servers' stock calls when `key`'s partition is theirs; `None` when it is
    /// this server's (or there are no others).
    fn owner_elsewhere(&self, key: &ItemKey) -> Option<&Arc<dyn StockOwners>> {
        self.owners.as_ref().filter(|_| !self.store.owns(Table::Stock, keys::stock(key).as_bytes()))
    }

    /// The item as committed, read from the store (an item another server owns and changes).
    fn committed(&self, key: ItemKey) -> Result<StockRecord, ServiceError> {
        self.store.get::<StockRecord>(Table::Stock, keys::stock(&key).as_bytes())?.ok_or(match key.variant_id {
            Some(_) => VariantChoiceError::NotFound.into(),
            None => CatalogError::ProductNotFound.into(),
        })
    }

    fn lease(&self, key: ItemKey) -> Result<Lease<InventoryItemActor>, ServiceError> {
        self.registry.lease(&key, |arbiter| {
            InventoryItemActor::activate(arbiter, key, self.store.clone(), self.registry.clone(), self.board.clone())?
                .ok_or(match key.variant_id {
                    Some(_) => VariantChoiceError::NotFound.into(),
                    None => CatalogError::ProductNotFound.into(),
                })
        })
    }

    /// Sends `msg` to the item's actor; if that activation just died, once more to a fresh one.
    async fn ask<M>(&self, key: ItemKey, msg: impl Fn() -> M) -> Result<M::Result, ServiceError>
    where
        M: actix::Message + crate::actors::registry::EntityMessage + Send + 'static,
        M::Result: Send,
        InventoryItemActor: actix::Handler<M>,
    {
        send_leased(|| self.lease(key), msg).await
    }

    /// Available right now: from the stock board, or from the item's actor on first use
    /// (from the store for an item another server owns).
    pub async fn available(&self, key: ItemKey) -> Result<u64, ServiceError> {
        if self.owner_elsewhere(&key).is_some() {
            return self.committed(key).map(|r| r.on_hand - r.reserved);
        }
        match self.board.get(&key) {
            Some(n) => Ok(n),
            None => self.ask(key, || Available).await,
        }
    }

    pub async fn stock(&self, product_id: ProductId) -> Result<ProductStock, ServiceError> {
        let product = self.catalog.product(product_id)?;
        let mut items = Vec::new();
        for key in item_keys(&product) {
            let record = match self.owner_elsewhere(&key) {
                Some(_) => self.committed(key)?,
                None => self.ask(key, || GetStock).await??,
            };
            items.push(record.into());
        }
        Ok(ProductStock { product_id, items })
    }

    /// The holds on an item as committed (owner, quantity), in owner order: what makes up
    /// its `reserved`.
    pub async fn reservations(&self, key: ItemKey) -> Result<Vec<(OwnerId, u32)>, ServiceError> {
        self.store.barrier().await?;
        let rows = self.store.scan::<u32>(&keys::reservations_of(&key))?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, q)| Some((OwnerId(uuid::Uuid::from_slice(keys::owner_in_reservation(&k)).ok()?), q)))
            .collect())
    }

    /// Runs `cmd` on the item of (product, variant) chosen per the product's variants.
    pub async fn execute(
        &self,
        product_id: ProductId,
        variant_id: Option<VariantId>,
        cmd: InventoryCommand,
        by: &str,
    ) -> Result<ProductStock, ServiceError> {
        let product = self.catalog.product(product_id)?;
        let variant_id = product.resolve_variant(variant_id)?;
        let key = ItemKey { product_id, variant_id };
        self.execute_item(key, cmd, by).await?;
        self.stock(product_id).await
    }

    /// Runs `cmd` on one item directly (saga steps already know their item): here, or by a
    /// stock call to the server that owns it.
    pub async fn execute_item(
        &self,
        key: ItemKey,
        cmd: InventoryCommand,
        by: &str,
    ) -> Result<StockRecord, ServiceError> {
        match self.owner_elsewhere(&key) {
            Some(owners) => owners.execute(key, cmd, by.to_string()).await,
            None => self.run_on_actor(key, cmd, by).await,
        }
    }

    /// Runs `cmd` on one item this server owns (another server's stock call): refused,
    /// nothing applied, when the item's partition is not this server's (any more).
    pub async fn execute_here(
        &self,
        key: ItemKey,
        cmd: InventoryCommand,
        by: &str,
    ) -> Result<StockRecord, ServiceError> {
        if !self.store.owns(Table::Stock, keys::stock(&key).as_bytes()) {
            return Err(Fault::Unavailable("another server owns this stock; retry").into());
        }
        self.run_on_actor(key, cmd, by).await
    }

    /// Runs `cmd` on the item's actor here (its partition checked by the caller).
    async fn run_on_actor(&self, key: ItemKey, cmd: InventoryCommand, by: &str) -> Result<StockRecord, ServiceError> {
        let by = by.to_string();
        Ok(self.ask(key, || ExecuteInventory { cmd: cmd.clone(), by: by.clone() }).await??)
    }

    pub async fn restock(
        &self,
        product_id: ProductId,
        variant_id: Option<VariantId>,
        quantity: Quantity,
        by: &str,
    ) -> Result<ProductStock, ServiceError> {
        self.execute(product_id, variant_id, InventoryCommand::Restock { quantity }, by).await
    }

    pub async fn reserve(
        &self,
        product_id: ProductId,
        variant_id: Option<VariantId>,
        owner: OwnerId,
        quantity: Quantity,
        by: &str,
    ) -> Result<ProductStock, ServiceError> {
        self.execute(product_id, variant_id, InventoryCommand::Reserve { owner, quantity }, by)
            .await
            .map_err(|e| with_item(e, product_id, variant_id))
    }

    pub async fn release(
        &self,
        product_id: ProductId,
        variant_id: Option<VariantId>,
        owner: OwnerId,
        by: &str,
    ) -> Result<ProductStock, ServiceError> {
        self.execute(product_id, variant_id, InventoryCommand::Release { owner }, by).await
    }

    pub fn active(&self) -> usize {
        self.registry.active()
    }

    /// Drops the actors of the partitions this server no longer owns (see
    /// [`crate::actors::registry::Registry::give_up`]); how many.
    pub fn give_up(&self, owned: &crate::domain::partition::Owned) -> usize {
        self.registry.give_up(|item| !owned.owns(&item.variant_id.map_or(item.product_id.0, |v| v.0)))
    }
}

/// The inventory items of a product: one per variant, or the product's single item.
pub fn item_keys(product: &Product) -> Vec<ItemKey> {
    if product.variants.is_empty() {
        vec![ItemKey { product_id: product.product_id, variant_id: None }]
    } else {
        product
            .variants
            .iter()
            .map(|v| ItemKey { product_id: product.product_id, variant_id: Some(v.variant_id) })
            .collect()
    }
}

/// INSUFFICIENT_STOCK names the item it is about.
fn with_item(e: ServiceError, product_id: ProductId, variant_id: Option<VariantId>) -> ServiceError {
    match e {
        ServiceError::Inventory(InventoryError::InsufficientStock { requested, available }) => {
            ServiceError::InsufficientStock {
                items: serde_json::json!([{
                    "product_id": product_id,
                    "variant_id": variant_id,
                    "requested": requested,
                    "available": available,
                }]),
            }
        }
        other => other,
    }
}
