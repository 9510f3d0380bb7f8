//! The typed shapes of each saga's input (what it is started with) and data (what its
//! steps' outputs accumulate). They serialize to exactly the JSON the saga log has always
//! held, so stored sagas read back unchanged; steps read them through
//! `StepContext::input` / `StepContext::data`, so a misspelt field is a compile error and a
//! missing or malformed stored field is an error naming it.
//!
//! Each shape belongs to the definition versions it lists in [`SagaShape::VERSIONS`]. A
//! change to a shape that alters the stored JSON is a new definition version (a new
//! `sagas/*.toml` version and a new shape); a test checks every shape against the
//! definitions this build embeds.
//!
//! Data fields are `Option`: a step sees only the outputs of the steps before it.
//! [`required`] turns an absent one into the same error a missing input field gives.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::ShippingSettings;
use crate::domain::ids::{CustomerId, OrderId, SagaId};
use crate::domain::money::Money;
use crate::domain::order::{OrderLine, ShippingAddress};
use crate::error::Fault;

/// A typed view of a saga's input or data, for the definition versions it names.
pub trait SagaShape: Serialize + DeserializeOwned {
    /// The saga type (`name` in `sagas/*.toml`).
    const SAGA: &'static str;
    /// The definition versions whose stored input or data this shape reads.
    const VERSIONS: &'static [u32];
}

/// Parses a saga's stored input or data; `what` ("input", "data") prefixes the error,
/// which names the offending field by its path.
pub fn parse<T: DeserializeOwned>(what: &str, v: &Value) -> Result<T, Fault> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        match path.as_str() {
            "." => Fault::internal(format!("saga {what}"), e.into_inner()),
            _ => Fault::internal(format!("saga {what} field {path}"), e.into_inner()),
        }
    })
}

/// A data field an earlier step should have written.
pub fn required<T>(value: Option<T>, name: &str) -> Result<T, Fault> {
    value.ok_or_else(|| Fault::internal_text(format!("saga data: missing field `{name}`")))
}

/// A saga's input: what [`SagaEngine::start`](super::SagaEngine::start) takes, and so the
/// saga type it starts (a data shape cannot be passed by mistake).
pub trait SagaInput: SagaShape {}

impl SagaInput for PlaceOrderInput {}
impl SagaInput for CancelOrderInput {}
impl SagaInput for ShipOrderInput {}
impl SagaInput for RefundCaptureInput {}

/// The JSON a saga is started with.
pub fn to_input<T: SagaShape>(input: &T) -> Result<Value, Fault> {
    serde_json::to_value(input).map_err(|e| Fault::internal(format!("saga input of {}", T::SAGA), e))
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// place_order, definition versions 1 and 2: the checkout the customer asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaceOrderInput {
    pub customer_id: CustomerId,
    /// Chosen before the saga starts, so a retried request names the same order.
    pub order_id: OrderId,
    /// Validated at the edge, carried as the domain type.
    pub shipping_address: ShippingAddress,
    pub payment_token: String,
    /// The shop's shipping rule when the checkout began (version 2), so that
    /// calculate_shipping gives the same amount however often it runs. Absent in version 1
    /// inputs, which price with the configuration of the moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping: Option<ShippingSettings>,
}

impl SagaShape for PlaceOrderInput {
    const SAGA: &'static str = "place_order";
    const VERSIONS: &'static [u32] = &[1, 2];
}

/// place_order, definition versions 1 and 2: the outputs of its steps, in step order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlaceOrderData {
    /// validate_customer.
    pub customer_email: Option<String>,
    /// load_cart: the cart's lines at this moment's prices, and their sum.
    pub lines: Option<Vec<OrderLine>>,
    pub subtotal: Option<Money>,
    /// calculate_shipping.
    pub shipping_cost: Option<Money>,
    pub total: Option<Money>,
    /// authorize_payment.
    pub authorization_id: Option<String>,
    /// create_order.
    pub order_id: Option<OrderId>,
}

impl SagaShape for PlaceOrderData {
    const SAGA: &'static str = "place_order";
    const VERSIONS: &'static [u32] = &[1, 2];
}

/// cancel_order, definition versions 1 and 2: a customer's cancellation (with
/// `customer_id`), or the engine expiring an unpaid order (`only_if_pending`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelOrderInput {
    pub order_id: OrderId,
    /// The customer who asked: the order must be theirs. Absent when the shop cancels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<CustomerId>,
    /// Absent reads as "customer_request".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set when the engine expires an unpaid order: a capture that got there first wins.
    #[serde(default, skip_serializing_if = "is_false")]
    pub only_if_pending: bool,
}

impl SagaShape for CancelOrderInput {
    const SAGA: &'static str = "cancel_order";
    const VERSIONS: &'static [u32] = &[1, 2];
}

/// cancel_order, definition versions 1 and 2 (version 1's notify_cancellation output,
/// `notified`, is not read).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CancelOrderData {
    /// validate_cancellation: the order's place_order saga (whose reservation is released),
    /// its lines, customer and total.
    pub reservation_owner: Option<SagaId>,
    pub lines: Option<Vec<OrderLine>>,
    pub customer_id: Option<CustomerId>,
    pub total: Option<Money>,
    /// refund_payment: VOIDED, REFUNDED or PENDING_MANUAL (or the payment's state when
    /// there was nothing to settle).
    pub refund: Option<String>,
}

impl SagaShape for CancelOrderData {
    const SAGA: &'static str = "cancel_order";
    const VERSIONS: &'static [u32] = &[1, 2];
}

/// ship_order, definition versions 1 and 2: the fulfillment request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipOrderInput {
    pub order_id: OrderId,
    pub tracking_number: String,
    pub carrier: Option<String>,
    /// The staff member who asked (the audit row names them; the steps do not read it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

impl SagaShape for ShipOrderInput {
    const SAGA: &'static str = "ship_order";
    const VERSIONS: &'static [u32] = &[1, 2];
}

/// ship_order, definition versions 1 and 2 (version 1's notify_shipment output is not read).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShipOrderData {
    /// validate_shipment: what to deduct, and whose reservation it is.
    pub lines: Option<Vec<OrderLine>>,
    pub reservation_owner: Option<SagaId>,
    pub customer_id: Option<CustomerId>,
}

impl SagaShape for ShipOrderData {
    const SAGA: &'static str = "ship_order";
    const VERSIONS: &'static [u32] = &[1, 2];
}

/// refund_capture, definition version 1: a capture of an order already cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundCaptureInput {
    pub order_id: OrderId,
    pub authorization_id: String,
    pub amount: Money,
    /// The webhook event that reported the capture.
    pub event_id: String,
}

impl SagaShape for RefundCaptureInput {
    const SAGA: &'static str = "refund_capture";
    const VERSIONS: &'static [u32] = &[1];
}

/// refund_capture, definition version 1.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefundCaptureData {
    /// refund_captured_payment: the gateway's refund.
    pub refund_id: Option<String>,
}

impl SagaShape for RefundCaptureData {
    const SAGA: &'static str = "refund_capture";
    const VERSIONS: &'static [u32] = &[1];
}

/// What release_inventory reads, in place_order's data and in cancel_order's alike: the
/// lines (absent when the saga failed before loading them) and, for a cancellation, the
/// saga that reserved them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReservedLines {
    pub lines: Option<Vec<OrderLine>>,
    pub reservation_owner: Option<SagaId>,
}

#[cfg(test)]
mod tests;
