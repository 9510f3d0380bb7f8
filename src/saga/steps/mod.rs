//! Step handlers, by the names the definitions use. Every handler is idempotent, keyed by
//! the saga id: it may run more than once (a crash after its effect, before the log write).

mod cancel_order;
mod place_order;
mod refund_capture;
mod shared;
mod ship_order;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::fold::SuccessLog;
use super::machine::Failure;
use super::shapes::{self, SagaShape};
use crate::actors::ActorError;
use crate::config::Settings;
use crate::domain::ids::SagaId;
use crate::error::{Answer, Fault};
use crate::gateways::payment::{GatewayError, PaymentGateway};
use crate::services::cart::CartService;
use crate::services::catalog::CatalogService;
use crate::services::customers::CustomerService;
use crate::services::inventory::InventoryService;
use crate::services::orders::OrderService;
use crate::services::ServiceError;
use crate::store::{Store, WriteSet};

/// What a step's run sees: the saga's input and the outputs of the steps before it, read
/// through the typed shapes (`ctx.input::<PlaceOrderInput>()?`).
pub struct StepContext {
    pub saga_id: SagaId,
    pub saga_type: String,
    /// The stored JSON, as the saga log holds it; steps read [`StepContext::input`].
    pub raw_input: Value,
    /// The stored JSON; steps read [`StepContext::data`] (or [`StepContext::view`]).
    pub raw_data: Value,
    pub attempt: u32,
    pub max_attempts: u32,
    /// For a compensation: an attempt of its step failed in a way that may have applied
    /// it (see [`Failure::Transient`]), so "no output" does not mean "nothing done".
    pub forward_may_have_applied: bool,
    pub deps: Arc<StepDeps>,
    /// Offered when this step's success may ride on its effect's write (see
    /// [`crate::saga::fold`]); taken by [`StepContext::success_log`].
    pub success_log: Option<SuccessLog>,
}

impl StepContext {
    /// The saga's input as its typed shape. Missing or malformed is a bug (in whatever
    /// started the saga), so it is a business failure, not retried.
    pub fn input<T: SagaShape>(&self) -> Result<T, Failure> {
        shapes::parse("input", &self.raw_input).map_err(|e| business(e.into()))
    }

    /// The outputs of the steps before this one, as the saga's typed data shape.
    pub fn data<T: SagaShape>(&self) -> Result<T, Failure> {
        self.view()
    }

    /// The data through a view shared by several sagas (release_inventory's lines).
    pub fn view<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        shapes::parse("data", &self.raw_data).map_err(|e| business(e.into()))
    }

    /// The saga log write of this step succeeding with `output`, for a step whose effect is
    /// one write to carry it: the step passes it to that write (committed even when the
    /// command repeats one already applied) and must then answer exactly `output`. Empty
    /// when the coordinator logs the step on its own.
    pub fn success_log<O: Serialize>(&mut self, output: &O) -> WriteSet {
        match (self.success_log.take(), serde_json::to_value(output)) {
            (Some(log), Ok(output)) => log.build(output),
            _ => WriteSet::new(),
        }
    }

    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// The audit actor for changes this saga makes.
    pub fn by(&self) -> String {
        format!("saga:{}", self.saga_id)
    }

    /// The gateway idempotency key of this step: saga id plus step name.
    pub fn key(&self, step: &str) -> String {
        format!("{}:{step}", self.saga_id)
    }
}

/// The services steps call.
pub struct StepDeps {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub customers: CustomerService,
    pub catalog: CatalogService,
    pub inventory: InventoryService,
    pub carts: CartService,
    pub orders: OrderService,
    pub gateway: Arc<dyn PaymentGateway>,
    /// The keys operators paused (the engine resumes sagas parked on a released one).
    pub quarantine: Arc<crate::actors::quarantine::QuarantineBoard>,
}

pub type StepFuture = Pin<Box<dyn Future<Output = Result<Value, Failure>> + Send>>;

pub trait StepHandler: Send + Sync {
    fn run(&self, ctx: StepContext) -> StepFuture;
}

/// A step is an async function from its context to its typed output, which the machine
/// merges into the saga's data as JSON (the field names of the saga's data shape).
impl<F, Fut, O> StepHandler for F
where
    F: Fn(StepContext) -> Fut + Send + Sync,
    Fut: Future<Output = Result<O, Failure>> + Send + 'static,
    O: Serialize,
{
    fn run(&self, ctx: StepContext) -> StepFuture {
        let future = self(ctx);
        Box::pin(async move {
            let output = future.await?;
            serde_json::to_value(&output).map_err(|e| business(ServiceError::internal("step output", e)))
        })
    }
}

/// The output of a step that adds nothing to the saga's data (`{}`).
#[derive(Debug, Serialize)]
pub struct NoOutput {}

/// A required data field, as a step failure naming it.
pub fn required<T>(value: Option<T>, name: &str) -> Result<T, Failure> {
    shapes::required(value, name).map_err(|e| business(e.into()))
}

/// Every handler this build has.
pub fn handlers() -> HashMap<&'static str, Arc<dyn StepHandler>> {
    let mut h: HashMap<&'static str, Arc<dyn StepHandler>> = HashMap::new();
    h.insert("validate_customer", Arc::new(place_order::validate_customer));
    h.insert("load_cart", Arc::new(place_order::load_cart));
    h.insert("reserve_inventory", Arc::new(place_order::reserve_inventory));
    h.insert("release_inventory", Arc::new(shared::release_inventory));
    h.insert("calculate_shipping", Arc::new(place_order::calculate_shipping));
    h.insert("authorize_payment", Arc::new(place_order::authorize_payment));
    h.insert("void_authorization", Arc::new(place_order::void_authorization));
    h.insert("create_order", Arc::new(place_order::create_order));
    h.insert("cancel_created_order", Arc::new(place_order::cancel_created_order));
    h.insert("clear_cart", Arc::new(place_order::clear_cart));
    h.insert("validate_cancellation", Arc::new(cancel_order::validate_cancellation));
    h.insert("cancel_order", Arc::new(cancel_order::cancel_order));
    h.insert("refund_payment", Arc::new(cancel_order::refund_payment));
    h.insert("validate_shipment", Arc::new(ship_order::validate_shipment));
    h.insert("claim_tracking_number", Arc::new(ship_order::claim_tracking_number));
    h.insert("release_tracking_number", Arc::new(ship_order::release_tracking_number));
    h.insert("mark_shipped", Arc::new(ship_order::mark_shipped));
    h.insert("deduct_inventory", Arc::new(ship_order::deduct_inventory));
    h.insert("refund_captured_payment", Arc::new(refund_capture::refund_captured_payment));
    // Steps of earlier definition versions (sagas/*.v1.toml), kept while instances may use them.
    h.insert("notify_cancellation", Arc::new(shared::notified_by_the_event_log));
    h.insert("notify_shipment", Arc::new(shared::notified_by_the_event_log));
    h
}

/// A business error: compensate (or park, past the point of no return). A quarantined key
/// is never one: the saga parks PAUSED on it, however the step reports it.
pub fn business(e: ServiceError) -> Failure {
    match e {
        ServiceError::Actor(ActorError::Quarantined { key, .. }) => {
            Failure::Quarantined { key, message: e.to_string() }
        }
        other => Failure::Business(other.record()),
    }
}

/// Infrastructure errors (a store hiccup, an actor restarting) are worth retrying;
/// the domain's refusals are not; a quarantined key parks the saga.
pub fn classify(e: ServiceError) -> Failure {
    match e {
        // A store hiccup, or an actor reloading that answered before applying anything:
        // the next attempt can pass.
        e if e.is_transient() => transient(e.to_string()),
        other => business(other),
    }
}

pub fn transient(message: String) -> Failure {
    Failure::Transient { exhausted: Fault::internal_text(message.clone()).record(), message, uncertain: false }
}

/// A gateway answer as a step outcome: declines are business errors, the rest is retried.
pub fn gateway_failure(
    e: GatewayError,
    declined: impl FnOnce(String) -> ServiceError,
    exhausted: ServiceError,
) -> Failure {
    match e {
        GatewayError::Declined(reason) => business(declined(reason)),
        GatewayError::Transient(message) => {
            Failure::Transient { message, exhausted: exhausted.record(), uncertain: false }
        }
        GatewayError::Uncertain(message) => {
            Failure::Transient { message, exhausted: exhausted.record(), uncertain: true }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::ActorError;

    #[test]
    fn an_actor_reloading_is_retried_and_a_refusal_is_not() {
        let retried = [
            ServiceError::Actor(ActorError::Reloading),
            ServiceError::Fault(Fault::Unavailable("busy")),
            ServiceError::Fault(Fault::ShuttingDown),
        ];
        for e in retried {
            let shown = e.to_string();
            assert!(matches!(classify(e), Failure::Transient { .. }), "{shown}");
        }
        assert!(matches!(
            classify(ServiceError::from(crate::services::orders::CheckoutError::EmptyCart)),
            Failure::Business(_)
        ));
    }
}
