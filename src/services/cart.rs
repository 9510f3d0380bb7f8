//! CartService (SEQ-CART-001..003): checks stock with the inventory item, then asks the
//! customer's cart actor to change. A cart view always shows current product prices.

use std::sync::Arc;

use serde::Serialize;

use super::catalog::CatalogService;
pub use super::error::CartRefusal;
use super::inventory::InventoryService;
use super::ServiceError;
use crate::actors::cart::{CartActor, CartRegistry, CartReply, ExecuteCart, GetCart, PeekCart};
use crate::actors::registry::{send_leased, Lease};
use crate::config::Settings;
use crate::domain::cart::{Cart, CartCommand, CartError, CartLimits};
use crate::domain::events::TakenLine;
use crate::domain::ids::{CustomerId, ItemKey, LineId, ProductId, SagaId, VariantId};
use crate::domain::money::Money;
use crate::domain::quantity::Quantity;
use crate::store::{Store, WriteSet};

#[derive(Clone)]
pub struct CartService {
    store: Store,
    limits: CartLimits,
    registry: Arc<CartRegistry>,
    catalog: CatalogService,
    inventory: InventoryService,
}

#[derive(Debug, Clone, Serialize)]
pub struct CartLineView {
    pub line_id: LineId,
    pub product_id: ProductId,
    pub variant_id: Option<VariantId>,
    pub name: String,
    pub quantity: u32,
    pub unit_price: Money,
    pub subtotal: Money,
}

#[derive(Debug, Clone, Serialize)]
pub struct CartView {
    pub cart_id: LineId,
    pub customer_id: CustomerId,
    pub items: Vec<CartLineView>,
    pub total_price: Money,
}

impl CartService {
    pub fn new(
        store: Store,
        settings: Arc<Settings>,
        registry: Arc<CartRegistry>,
        catalog: CatalogService,
        inventory: InventoryService,
    ) -> CartService {
        let limits =
            CartLimits { max_lines: settings.cart.max_lines, max_line_quantity: settings.cart.max_line_quantity };
        CartService { store, limits, registry, catalog, inventory }
    }

    fn lease(&self, customer: CustomerId) -> Result<Lease<CartActor>, ServiceError> {
        self.registry
            .lease(&customer, |arbiter| {
                CartActor::activate(arbiter, customer, self.store.clone(), self.limits, self.registry.clone())
            })
            .map_err(ServiceError::from)
    }

    async fn execute(&self, customer: CustomerId, cmd: CartCommand) -> Result<CartReply, ServiceError> {
        self.execute_with(customer, cmd, WriteSet::new()).await
    }

    /// As `execute`, committing `also` with the change (or alone, if there is none).
    async fn execute_with(
        &self,
        customer: CustomerId,
        cmd: CartCommand,
        also: WriteSet,
    ) -> Result<CartReply, ServiceError> {
        Ok(send_leased(|| self.lease(customer), || ExecuteCart { cmd: cmd.clone(), also: also.clone() }).await??)
    }

    async fn cart(&self, customer: CustomerId) -> Result<Cart, ServiceError> {
        Ok(send_leased(|| self.lease(customer), || GetCart).await??)
    }

    pub async fn get(&self, customer: CustomerId) -> Result<CartView, ServiceError> {
        let cart = self.cart(customer).await?;
        self.view(&cart)
    }

    /// SEQ-CART-001.
    pub async fn add_item(
        &self,
        customer: CustomerId,
        product_id: ProductId,
        variant_id: Option<VariantId>,
        quantity: Quantity,
    ) -> Result<CartView, ServiceError> {
        let product = self.catalog.active_product(product_id)?;
        let variant_id = product.resolve_variant(variant_id)?;
        let available = self.inventory.available(ItemKey { product_id, variant_id }).await?;
        let reply =
            self.execute(customer, CartCommand::AddItem { product_id, variant_id, quantity, available }).await?;
        self.view(&reply.cart)
    }

    /// SEQ-CART-002: 0 removes the line; more than available caps the line and answers
    /// QUANTITY_EXCEEDS_STOCK carrying the capped cart.
    pub async fn update_quantity(
        &self,
        customer: CustomerId,
        line_id: LineId,
        quantity: u32,
    ) -> Result<CartView, ServiceError> {
        // Only to find the line's item; the cart actor checks the line again when it applies.
        let cart = self.snapshot(customer).await?;
        let line = cart.line(line_id).ok_or(CartError::ItemNotFound)?;
        let key = ItemKey { product_id: line.product_id, variant_id: line.variant_id };
        let available = if quantity == 0 { 0 } else { self.inventory.available(key).await? };
        let reply = self.execute(customer, CartCommand::UpdateQuantity { line_id, quantity, available }).await?;
        let view = self.view(&reply.cart)?;
        match reply.capped_at {
            Some(available) => {
                let cart = serde_json::to_value(&view).map_err(|e| ServiceError::internal("cart view", e))?;
                Err(CartRefusal { error: CartError::QuantityExceedsStock { available }, cart: Some(Box::new(cart)) }
                    .into())
            }
            None => Ok(view),
        }
    }

    /// SEQ-CART-003: removing a line that is not there succeeds.
    pub async fn remove_item(&self, customer: CustomerId, line_id: LineId) -> Result<CartView, ServiceError> {
        let reply = self.execute(customer, CartCommand::RemoveItem { line_id }).await?;
        self.view(&reply.cart)
    }

    /// The cart for checkout (see [`PeekCart`] for why it need not wait).
    pub async fn snapshot(&self, customer: CustomerId) -> Result<Cart, ServiceError> {
        send_leased(|| self.lease(customer), || PeekCart).await
    }

    /// Takes out of the cart what checkout `by` ordered; once per checkout.
    /// Takes what checkout `by` ordered out of the cart; `also` (the saga's log entry of
    /// it) lands in the same write.
    pub async fn clear(
        &self,
        customer: CustomerId,
        by: SagaId,
        taken: Vec<TakenLine>,
        also: WriteSet,
    ) -> Result<Cart, ServiceError> {
        Ok(self.execute_with(customer, CartCommand::Clear { by, taken }, also).await?.cart)
    }

    /// Names and prices as they are now, not as they were when added.
    pub fn view(&self, cart: &Cart) -> Result<CartView, ServiceError> {
        let mut items = Vec::with_capacity(cart.lines.len());
        for line in &cart.lines {
            let product = self.catalog.product(line.product_id)?;
            let name = match line.variant_id.and_then(|v| product.variant(v)) {
                Some(v) => format!("{} ({})", product.name, v.name),
                None => product.name.clone(),
            };
            items.push(CartLineView {
                line_id: line.line_id,
                product_id: line.product_id,
                variant_id: line.variant_id,
                name,
                quantity: line.quantity,
                unit_price: product.price,
                subtotal: product.price.times(line.quantity),
            });
        }
        let total_price = items.iter().map(|i| i.subtotal).sum();
        Ok(CartView { cart_id: cart.cart_id, customer_id: cart.customer_id, items, total_price })
    }

    pub fn active(&self) -> usize {
        self.registry.active()
    }

    /// Drops the actors of the partitions this server no longer owns (see
    /// [`crate::actors::registry::Registry::give_up`]); how many.
    pub fn give_up(&self, owned: &crate::domain::partition::Owned) -> usize {
        self.registry.give_up(|customer| !owned.owns(&customer.0))
    }
}
