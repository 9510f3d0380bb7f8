//! The `Order` actor: one per order (one writer per order), over the pure [`Order`]
//! aggregate. The aggregate decides; the actor persists the new order in one durable write
//! with what goes along with it, and replies only once that write is durable:
//! - creation: the `OrderPlaced` event, the customer and authorization indexes and, when
//!   given, the unpaid-order expiry timer. Creation is idempotent (a saga step that runs
//!   twice finds its order already there and gets it back); the first activation for an id
//!   this server minted reads nothing, since no order can have it yet
//!   ([`Activation::New`], `services::fresh_ids`);
//! - a change: its events, an `order.status_changed` audit row, the notifications and the
//!   webhook event that caused it, if any; a command already applied changes nothing;
//! - every write moves the order's status-index entry.
//!
//! A read waits for the writes before it (a store barrier). An unknown order id is refused
//! without starting an actor. After a failed write the activation refuses new messages
//! ("retry") and leaves once its writes in flight have answered; the next one loads the
//! order afresh from the store (see [`super::registry::Pipeline`]).

use std::sync::Arc;

use actix::prelude::*;

use super::registry::{refused, reply_when_durable, Entity, Pipeline, Registry};
use super::ActorFailure;
use crate::domain::events::DomainEvent;
use crate::domain::ids::OrderId;
use crate::domain::order::{Order, OrderCommand};
use crate::domain::time::Timestamp;
use crate::store::{self, keys, AuditEntry, Notification, Store, Table, WebhookEvent, WriteSet};

pub type OrderRegistry = Registry<OrderId, OrderActor>;

pub struct OrderActor {
    order_id: OrderId,
    order: Option<Order>,
    store: Store,
    registry: Arc<OrderRegistry>,
    pipeline: Pipeline,
}

/// Creates the order unless it exists; answers the order either way. `expires_at` arms the
/// persisted timer that cancels it if its payment is not captured by then.
#[derive(Message)]
#[rtype(result = "Result<Order, ActorFailure>")]
pub struct CreateOrder {
    pub order: Order,
    pub expires_at: Option<Timestamp>,
    /// Committed with the order, or alone when it exists already (the checkout saga's log
    /// entry of its creation: `saga::fold`).
    pub also: WriteSet,
}

/// A change, with the audit row, notifications and extra events it carries along.
/// Answers the order, and whether the command changed it (false: already applied).
#[derive(Message)]
#[rtype(result = "Result<(Order, bool), ActorFailure>")]
pub struct ExecuteOrder {
    pub cmd: OrderCommand,
    pub audit_by: String,
    pub notify: Vec<Notification>,
    /// The webhook event that caused it, recorded in the same write.
    pub webhook: Option<WebhookEvent>,
}

#[derive(Message)]
#[rtype(result = "Result<Option<Order>, ActorFailure>")]
pub struct GetOrder;

crate::entity_messages!(commands: CreateOrder, ExecuteOrder; reads: GetOrder);

/// Why an order actor is activated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// To create an order whose id this server minted and no activation has had yet
    /// (`services::fresh_ids`): it cannot exist, so nothing is read.
    New,
    /// To create the order: it may not exist yet.
    Create,
    /// To read or change it: an order that is not in the store is refused without starting
    /// an actor, so that requests for made-up ids cost no memory.
    Existing,
}

impl OrderActor {
    pub fn activate(
        arbiter: &ArbiterHandle,
        order_id: OrderId,
        store: Store,
        registry: Arc<OrderRegistry>,
        why: Activation,
    ) -> Result<Addr<OrderActor>, ActorFailure> {
        let order = match why {
            Activation::New => None,
            Activation::Create | Activation::Existing => store.load::<Order>(&keys::order(order_id))?,
        };
        if order.is_none() && why == Activation::Existing {
            return Err(ActorFailure::OrderNotFound);
        }
        Ok(OrderActor::start_in_arbiter(arbiter, move |_| OrderActor {
            order_id,
            order,
            store,
            registry,
            pipeline: Pipeline::default(),
        }))
    }

    /// Writes `next` with `ws`, moving its status-index entry from the order as it was.
    fn persist(&mut self, next: Order, ws: WriteSet) -> ResponseActFuture<Self, Result<Order, ActorFailure>> {
        let before = self.order.as_ref().map(store::order_index).unwrap_or_default();
        let ws = store::reindex(ws, Table::OrdersByStatus, &before, &store::order_index(&next));
        let ticket = self.store.commit(ws.save(keys::order(next.order_id), &next));
        self.order = Some(next.clone());
        reply_when_durable(self, ticket, next)
    }

    fn current(&self) -> ResponseActFuture<Self, Result<Order, ActorFailure>> {
        let order = self.order.clone();
        let ticket = self.store.barrier();
        Box::pin(
            async move {
                ticket.await?;
                order.ok_or(ActorFailure::OrderNotFound)
            }
            .into_actor(self),
        )
    }
}

impl Actor for OrderActor {
    type Context = Context<Self>;
}

crate::passivates!(OrderActor);

impl Entity for OrderActor {
    type Key = OrderId;

    fn key(&self) -> OrderId {
        self.order_id
    }

    fn registry(&self) -> &OrderRegistry {
        &self.registry
    }

    fn pipeline(&mut self) -> &mut Pipeline {
        &mut self.pipeline
    }
}

impl Handler<CreateOrder> for OrderActor {
    type Result = ResponseActFuture<Self, Result<Order, ActorFailure>>;

    fn handle(&mut self, msg: CreateOrder, _: &mut Context<Self>) -> Self::Result {
        if self.pipeline.failed() {
            return refused();
        }
        if let Some(existing) = self.order.clone() {
            // Created already (a repeat after a crash or a lost reply): `also` still lands.
            if msg.also.is_empty() {
                return self.current();
            }
            let ticket = self.store.commit(msg.also);
            return reply_when_durable(self, ticket, existing);
        }
        let order = msg.order;
        let placed = DomainEvent::OrderPlaced {
            order_id: order.order_id,
            customer_id: order.customer_id,
            total: order.total,
            saga_id: order.saga_id,
        };
        let ws = WriteSet::new()
            .save(keys::customer_order(order.customer_id, order.order_id), &0u32)
            .save(keys::order_by_authorization(&order.authorization_id), &order.order_id.0)
            .event(&placed);
        let ws = match msg.expires_at {
            Some(at) => ws.save(keys::order_expiry(at.0, order.order_id), &0u32),
            None => ws,
        };
        self.persist(order, ws.merge(msg.also))
    }
}

impl Handler<ExecuteOrder> for OrderActor {
    type Result = ResponseActFuture<Self, Result<(Order, bool), ActorFailure>>;

    fn handle(&mut self, msg: ExecuteOrder, _: &mut Context<Self>) -> Self::Result {
        if self.pipeline.failed() {
            return refused();
        }
        let Some(order) = self.order.clone() else {
            return Box::pin(fut::ready(Err(ActorFailure::OrderNotFound)));
        };
        let events = match order.handle(&msg.cmd) {
            Ok(events) => events,
            Err(e) => return Box::pin(fut::ready(Err(e.into()))),
        };
        if events.is_empty() {
            return Box::pin(self.current().map(|r, _, _| r.map(|o| (o, false))));
        }
        let now = Timestamp::now();
        let mut next = order.clone();
        events.iter().for_each(|e| next.apply(e, now));
        let mut ws = WriteSet::new().events(&events).audit(AuditEntry {
            at: now,
            actor: msg.audit_by,
            action: "order.status_changed".into(),
            entity_type: "order".into(),
            entity_id: order.order_id.to_string(),
            before: serde_json::json!({ "status": order.status.as_str(), "refund": order.refund_status.map(|r| r.as_str()) }).to_string(),
            after: serde_json::json!({ "status": next.status.as_str(), "refund": next.refund_status.map(|r| r.as_str()) }).to_string(),
        });
        for n in msg.notify {
            ws = ws.notify(n);
        }
        if let Some(w) = msg.webhook {
            // Recorded by nobody before in practice (the caller saw no record), but were it
            // recorded, its listing entries move with it.
            let before = match self.store.load::<WebhookEvent>(&keys::webhook_event(&w.source, &w.event_id)) {
                Ok(before) => before,
                Err(e) => return Box::pin(fut::ready(Err(e.into()))),
            };
            ws = store::retained::webhook_event(ws, &w, before.as_ref(), false);
        }
        Box::pin(self.persist(next, ws).map(|r, _, _| r.map(|o| (o, true))))
    }
}

impl Handler<GetOrder> for OrderActor {
    type Result = ResponseActFuture<Self, Result<Option<Order>, ActorFailure>>;

    fn handle(&mut self, _: GetOrder, _: &mut Context<Self>) -> Self::Result {
        if self.pipeline.failed() {
            return refused();
        }
        let order = self.order.clone();
        let ticket = self.store.barrier();
        Box::pin(
            async move {
                ticket.await?;
                Ok(order)
            }
            .into_actor(self),
        )
    }
}
