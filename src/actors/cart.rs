//! The `Cart` actor: a thin shell over the pure [`Cart`] aggregate. It decides, persists
//! the new state with its events, and replies only once that write is durable. The next
//! message already sees the new state (writes are committed in submission order, and a
//! reply always waits for its own commit), so a busy cart is not slowed by the disk.

use std::sync::Arc;

use actix::prelude::*;

use super::registry::{refused, reply_when_durable, Entity, Pipeline, Registry};
use super::ActorFailure;
use crate::domain::cart::{Cart, CartCommand, CartLimits};
use crate::domain::ids::CustomerId;
use crate::store::{keys, Store, WriteSet};

pub type CartRegistry = Registry<CustomerId, CartActor>;

pub struct CartActor {
    cart: Cart,
    limits: CartLimits,
    store: Store,
    registry: Arc<CartRegistry>,
    pipeline: Pipeline,
}

/// A command; the reply is the cart after it, and whether an update was capped.
#[derive(Message)]
#[rtype(result = "Result<CartReply, ActorFailure>")]
pub struct ExecuteCart {
    pub cmd: CartCommand,
    /// Committed with the command's change, or alone when it changes nothing (a saga step's
    /// success riding on it: `saga::fold`).
    pub also: WriteSet,
}

#[derive(Debug, Clone)]
pub struct CartReply {
    pub cart: Cart,
    pub capped_at: Option<u64>,
}

/// The cart as last acknowledged.
#[derive(Message)]
#[rtype(result = "Result<Cart, ActorFailure>")]
pub struct GetCart;

/// The cart as the actor has it now, without waiting for writes in flight to be durable.
/// For a saga step: whatever it writes next is committed after those writes anyway.
#[derive(Message)]
#[rtype(result = "Cart")]
pub struct PeekCart;

crate::entity_messages!(commands: ExecuteCart; reads: GetCart, PeekCart);

impl CartActor {
    /// Loads the cart of `customer_id` and starts its actor on `arbiter`.
    pub fn activate(
        arbiter: &ArbiterHandle,
        customer_id: CustomerId,
        store: Store,
        limits: CartLimits,
        registry: Arc<CartRegistry>,
    ) -> Result<Addr<CartActor>, ActorFailure> {
        let cart = store.load::<Cart>(&keys::cart(customer_id))?.unwrap_or_else(|| Cart::new(customer_id));
        Ok(CartActor::start_in_arbiter(arbiter, move |_| CartActor {
            cart,
            limits,
            store,
            registry,
            pipeline: Pipeline::default(),
        }))
    }
}

impl Entity for CartActor {
    type Key = CustomerId;

    fn key(&self) -> CustomerId {
        self.cart.customer_id
    }

    fn registry(&self) -> &CartRegistry {
        &self.registry
    }

    fn pipeline(&mut self) -> &mut Pipeline {
        &mut self.pipeline
    }
}

impl Actor for CartActor {
    type Context = Context<Self>;
}

crate::passivates!(CartActor);

impl Handler<ExecuteCart> for CartActor {
    type Result = ResponseActFuture<Self, Result<CartReply, ActorFailure>>;

    fn handle(&mut self, msg: ExecuteCart, _: &mut Context<Self>) -> Self::Result {
        if self.pipeline.failed() {
            return refused();
        }
        let decision = match self.cart.handle(&msg.cmd, self.limits) {
            Ok(d) => d,
            Err(e) => return Box::pin(fut::ready(Err(e.into()))),
        };
        let mut next = self.cart.clone();
        decision.events.iter().for_each(|e| next.apply(e));
        let ws = if decision.events.is_empty() {
            msg.also
        } else {
            WriteSet::new().save(keys::cart(next.customer_id), &next).events(&decision.events).merge(msg.also)
        };
        let ticket = if ws.is_empty() { self.store.barrier() } else { self.store.commit(ws) };
        self.cart = next.clone();
        let capped_at = decision.capped_at;
        reply_when_durable(self, ticket, CartReply { cart: next, capped_at })
    }
}

impl Handler<GetCart> for CartActor {
    type Result = ResponseActFuture<Self, Result<Cart, ActorFailure>>;

    fn handle(&mut self, _: GetCart, _: &mut Context<Self>) -> Self::Result {
        if self.pipeline.failed() {
            return refused();
        }
        let cart = self.cart.clone();
        let ticket = self.store.barrier();
        Box::pin(
            async move {
                ticket.await?;
                Ok(cart)
            }
            .into_actor(self),
        )
    }
}

impl Handler<PeekCart> for CartActor {
    type Result = MessageResult<PeekCart>;

    fn handle(&mut self, _: PeekCart, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.cart.clone())
    }
}
