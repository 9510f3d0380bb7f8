//! OrderService: finds or starts order actors, lists orders, shapes the order view.

use std::sync::Arc;

use serde_json::{json, Value};

pub use super::error::CheckoutError;
use super::fresh_ids::FreshIds;
use super::ServiceError;
use crate::actors::order::{Activation, CreateOrder, ExecuteOrder, GetOrder, OrderActor, OrderRegistry};
use crate::actors::registry::{send_leased, Lease};
use crate::domain::ids::{CustomerId, OrderId};
use crate::domain::order::{Order, OrderCommand, OrderStatus};
use crate::domain::time::Timestamp;
use crate::store::{keys, Key, ListingFilter, Notification, Page, Store, Table, WebhookEvent, WriteSet};

#[derive(Clone)]
pub struct OrderService {
    store: Store,
    registry: Arc<OrderRegistry>,
    fresh: Arc<FreshIds>,
}

impl OrderService {
    pub fn new(store: Store, registry: Arc<OrderRegistry>) -> OrderService {
        OrderService { store, registry, fresh: Arc::new(FreshIds::default()) }
    }

    /// The id of an order `customer` is about to place, in the customer's partition (see
    /// [`crate::domain::partition`]): its creation will need no store read.
    pub fn new_id(&self, customer: CustomerId) -> OrderId {
        self.fresh.mint(customer)
    }

    fn lease(&self, id: OrderId, why: Activation) -> Result<Lease<OrderActor>, ServiceError> {
        self.registry
            .lease(&id, |arbiter| OrderActor::activate(arbiter, id, self.store.clone(), self.registry.clone(), why))
            .map_err(ServiceError::from)
    }

    /// Sends to an existing order's actor; an order that does not exist is ORDER_NOT_FOUND
    /// and activates nothing.
    async fn ask<M>(&self, id: OrderId, msg: impl Fn() -> M) -> Result<M::Result, ServiceError>
    where
        M: actix::Message + crate::actors::registry::EntityMessage + Send + 'static,
        M::Result: Send,
        OrderActor: actix::Handler<M>,
    {
        send_leased(|| self.lease(id, Activation::Existing), msg).await
    }

    /// Creates the order unless it exists (idempotent).
    /// Creates `order` (or finds it, created by the same checkout); `also` (the checkout
    /// saga's log entry of it) lands in the same write.
    pub async fn create(
        &self,
        order: Order,
        expires_at: Option<Timestamp>,
        also: WriteSet,
    ) -> Result<Order, ServiceError> {
        let id = order.order_id;
        let msg = || CreateOrder { order: order.clone(), expires_at, also: also.clone() };
        let why = || if self.fresh.take(id) { Activation::New } else { Activation::Create };
        Ok(send_leased(|| self.lease(id, why()), msg).await??)
    }

    pub async fn get(&self, id: OrderId) -> Result<Option<Order>, ServiceError> {
        match self.ask(id, || GetOrder).await {
            Err(ServiceError::OrderNotFound) => Ok(None),
            other => Ok(other??),
        }
    }

    pub async fn execute(
        &self,
        id: OrderId,
        cmd: OrderCommand,
        by: &str,
        notify: Vec<Notification>,
    ) -> Result<Order, ServiceError> {
        Ok(self.execute_with(id, cmd, by, notify, None).await?.0)
    }

    /// As `execute`, recording the webhook event that caused it in the same write; also
    /// says whether the command changed the order (false: it was already applied).
    pub async fn execute_with(
        &self,
        id: OrderId,
        cmd: OrderCommand,
        by: &str,
        notify: Vec<Notification>,
        webhook: Option<WebhookEvent>,
    ) -> Result<(Order, bool), ServiceError> {
        let by = by.to_string();
        Ok(self
            .ask(id, || ExecuteOrder {
                cmd: cmd.clone(),
                audit_by: by.clone(),
                notify: notify.clone(),
                webhook: webhook.clone(),
            })
            .await??)
    }

    /// The order an index entry (`keys::order_by_authorization`, `keys::order_by_tracking`)
    /// points at.
    pub fn find_by(&self, entry: &Key) -> Result<Option<OrderId>, ServiceError> {
        Ok(self.store.load::<uuid::Uuid>(entry)?.map(OrderId))
    }

    /// The order as committed, read without its actor: for answering after a saga settled,
    /// whose every write was committed before the saga's last log write.
    pub fn get_committed(&self, id: OrderId) -> Result<Option<Order>, ServiceError> {
        Ok(self.store.load::<Order>(&keys::order(id))?)
    }

    /// A customer's own order; anybody else's is not found.
    pub async fn get_own(&self, customer: CustomerId, id: OrderId) -> Result<Order, ServiceError> {
        self.get(id).await?.filter(|o| o.customer_id == customer).ok_or(ServiceError::OrderNotFound)
    }

    /// A customer's orders, oldest first.
    pub async fn list_for_customer(&self, customer: CustomerId) -> Result<Vec<Order>, ServiceError> {
        self.store.barrier().await?;
        let entries = self.store.scan_keys(&keys::orders_of_customer(customer), 10_000)?;
        let mut out = Vec::with_capacity(entries.len());
        for k in entries {
            if let Some(o) = self.store.get::<Order>(Table::Orders, keys::order_in_customer_order(&k))? {
                out.push(o);
            }
        }
        Ok(out)
    }

    /// All orders (optionally of one status), oldest first, after `cursor`: read from the
    /// table (ids are UUIDv7, so key order is creation order) or from the status index, a
    /// page at a time.
    pub async fn list(
        &self,
        status: Option<OrderStatus>,
        cursor: Option<OrderId>,
        limit: usize,
    ) -> Result<(Vec<Order>, Option<OrderId>), ServiceError> {
        self.store.barrier().await?;
        // An order's key is its id, and the status index ends with it.
        let after = cursor.map(|c| keys::order(c).into_bytes());
        let page: Page<Order> = match status {
            None => self.store.page_table(Table::Orders, after.as_deref(), limit)?,
            Some(s) => {
                let prefix = ListingFilter::OrderStatus(s.as_str()).prefix();
                let index = (Table::OrdersByStatus, prefix.as_slice());
                self.store.page_index(
                    index,
                    Table::Orders,
                    |k| k,
                    after.as_deref(),
                    limit,
                    |o: &Order| o.status == s,
                )?
            }
        };
        Ok((page.rows, page.next.and_then(|k| uuid::Uuid::from_slice(&k).ok()).map(OrderId)))
    }

    pub fn active(&self) -> usize {
        self.registry.active()
    }

    /// Drops the actors of the partitions this server no longer owns (see
    /// [`crate::actors::registry::Registry::give_up`]); how many.
    pub fn give_up(&self, owned: &crate::domain::partition::Owned) -> usize {
        self.registry.give_up(|order| !owned.owns(&order.0))
    }
}

/// the HTTP contract's order shape.
pub fn order_json(o: &Order) -> Value {
    let items: Vec<Value> = o
        .items
        .iter()
        .map(|l| {
            json!({
                "product_id": l.product_id,
                "variant_id": l.variant_id,
                "name": l.name,
                "quantity": l.quantity,
                "unit_price": l.unit_price,
                "subtotal": l.subtotal(),
            })
        })
        .collect();
    let mut j = json!({
        "order_id": o.order_id,
        "customer_id": o.customer_id,
        "status": o.status.as_str(),
        "items": items,
        "subtotal": o.subtotal,
        "shipping_cost": o.shipping_cost,
        "total": o.total,
        "shipping_address": o.shipping_address,
        "payment": { "authorization_id": o.authorization_id, "status": o.payment_status.as_str() },
        "saga_id": o.saga_id,
        "created_at": o.created_at.rfc3339(),
        "updated_at": o.updated_at.rfc3339(),
    });
    if let Some(r) = o.refund_status {
        j["refund"] = json!({ "status": r.as_str() });
    }
    if let Some(t) = &o.tracking_number {
        j["tracking_number"] = json!(t);
    }
    if let Some(c) = &o.cancel_reason {
        j["cancel_reason"] = json!(c);
    }
    j
}
