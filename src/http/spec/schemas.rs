//! The shapes of the JSON the handlers answer with, for the OpenAPI document. Handlers build
//! these bodies with `json!` (or serialize service views), so these types are descriptions
//! only: never built, only derived. `schemathesis` in `.ci/run` checks every answer against
//! them, which is what keeps them true.
#![allow(dead_code)]

use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Every non-2xx answer.
#[derive(ToSchema)]
pub struct ErrorBody {
    error: ErrorObject,
}

/// `code` is the stable, machine-readable part (the response's description lists the codes
/// it can carry); `message` is for people; `details` may be `{}`.
#[derive(ToSchema)]
pub struct ErrorObject {
    #[schema(example = "OUT_OF_STOCK")]
    code: String,
    message: String,
    #[schema(value_type = Object)]
    details: Value,
}

#[derive(ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: String,
}

#[derive(ToSchema)]
pub struct Customer {
    customer_id: Uuid,
    email: String,
    name: Option<String>,
    email_verified: bool,
    #[schema(example = "REGISTERED")]
    status: String,
    #[schema(format = DateTime)]
    created_at: String,
}

#[derive(ToSchema)]
pub struct Verified {
    customer_id: Uuid,
    email_verified: bool,
}

/// A customer session: send `token` as `Authorization: Bearer <token>`.
#[derive(ToSchema)]
pub struct Session {
    token: String,
    customer_id: Uuid,
}

#[derive(ToSchema)]
pub struct LoggedOut {
    #[schema(example = "logged_out")]
    status: String,
}

#[derive(ToSchema)]
pub struct Category {
    category_id: Uuid,
    name: String,
}

#[derive(ToSchema)]
pub struct Categories {
    categories: Vec<Category>,
}

/// A product. `available` (the product's and each variant's) is only in the reads that look
/// at stock (`GET /v1/products...`, `GET /admin/v1/products/{id}`).
#[derive(ToSchema)]
pub struct Product {
    product_id: Uuid,
    name: String,
    description: String,
    /// Money: a decimal string with two fraction digits.
    #[schema(example = "19.90")]
    price: String,
    category_id: Uuid,
    is_active: bool,
    variants: Vec<ProductVariant>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    available: Option<u64>,
}

#[derive(ToSchema)]
pub struct ProductVariant {
    variant_id: Uuid,
    name: String,
    available: Option<u64>,
}

#[derive(ToSchema)]
pub struct ProductPage {
    products: Vec<Product>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<Uuid>,
}

/// Stock of a product: one item, or one per variant.
#[derive(ToSchema)]
pub struct Stock {
    product_id: Uuid,
    items: Vec<StockItem>,
}

/// Always `0 <= reserved <= on_hand` and `available = on_hand - reserved`.
#[derive(ToSchema)]
pub struct StockItem {
    variant_id: Option<Uuid>,
    on_hand: u64,
    reserved: u64,
    available: u64,
}

/// The cart, always at the current prices.
#[derive(ToSchema)]
pub struct Cart {
    cart_id: Uuid,
    customer_id: Uuid,
    items: Vec<CartLine>,
    #[schema(example = "39.80")]
    total_price: String,
}

#[derive(ToSchema)]
pub struct CartLine {
    line_id: Uuid,
    product_id: Uuid,
    variant_id: Option<Uuid>,
    name: String,
    quantity: u32,
    unit_price: String,
    subtotal: String,
}

#[derive(ToSchema)]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
}

#[derive(ToSchema)]
pub struct Order {
    order_id: Uuid,
    customer_id: Uuid,
    status: OrderStatus,
    items: Vec<OrderLine>,
    subtotal: String,
    shipping_cost: String,
    total: String,
    shipping_address: ShippingAddress,
    payment: OrderPayment,
    saga_id: Uuid,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    /// Once cancelled: `REFUNDED`, `VOIDED`, `PENDING` or `PENDING_MANUAL`.
    refund: Option<Refund>,
    tracking_number: Option<String>,
    cancel_reason: Option<String>,
}

#[derive(ToSchema)]
pub struct OrderLine {
    product_id: Uuid,
    variant_id: Option<Uuid>,
    name: String,
    quantity: u32,
    unit_price: String,
    subtotal: String,
}

#[derive(ToSchema)]
pub struct ShippingAddress {
    name: String,
    line1: String,
    city: String,
    postal_code: String,
    /// ISO 3166-1 alpha-2.
    country: String,
}

#[derive(ToSchema)]
pub struct OrderPayment {
    authorization_id: String,
    /// `AUTHORIZED`, `CAPTURED`, `VOIDED` or `REFUNDED`.
    status: String,
}

#[derive(ToSchema)]
pub struct Refund {
    status: String,
}

#[derive(ToSchema)]
pub struct Orders {
    orders: Vec<Order>,
}

#[derive(ToSchema)]
pub struct OrderPage {
    orders: Vec<Order>,
    next_cursor: Option<Uuid>,
}

/// The saga did not settle within `checkout.sync_wait_ms`: poll `GET /v1/sagas/{saga_id}`.
#[derive(ToSchema)]
pub struct Accepted {
    saga_id: Uuid,
    /// `RUNNING`, `RETRYING`, `COMPENSATING`, `STUCK`, ...
    state: String,
}

/// A saga as its customer sees it; `error` is the recorded failure, if it failed.
#[derive(ToSchema)]
pub struct CustomerSaga {
    saga_id: Uuid,
    #[schema(rename = "type")]
    saga_type: String,
    state: String,
    order_id: Option<Uuid>,
    error: Option<ErrorObject>,
}

/// A saga with its full step history, for operators. States: `RUNNING`, `RETRYING`,
/// `PAUSED`, `COMPENSATING`, `COMPLETED`, `FAILED`, `STUCK`, `ABORTED`.
#[derive(ToSchema)]
pub struct Saga {
    saga_id: Uuid,
    #[schema(rename = "type")]
    saga_type: String,
    definition_version: u32,
    state: String,
    current_step: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    input: Value,
    data: Value,
    steps: Vec<SagaStep>,
    /// Step name to its retry policy.
    #[schema(value_type = Object)]
    retry_policies: Value,
    error: Option<ErrorObject>,
    abort_reason: Option<String>,
    order_id: Option<Uuid>,
    /// The key a `PAUSED` saga waits on: `{"kind", "key"}`.
    #[schema(value_type = Option<Object>)]
    paused_on: Option<Value>,
    /// Every failed attempt, oldest first (the last 50); empty on the happy path.
    failed_attempts: Vec<FailedAttempt>,
}

/// One failed attempt of a step or compensation.
#[derive(ToSchema)]
pub struct FailedAttempt {
    work: String,
    compensation: bool,
    attempt: u32,
    #[schema(format = DateTime)]
    started_at: Option<String>,
    #[schema(format = DateTime)]
    finished_at: String,
    duration_ms: Option<u64>,
    /// `transient`, `business` or `quarantined`.
    kind: String,
    error: String,
}

/// One step (`PENDING`, `RUNNING`, `SUCCEEDED`, `FAILED`, `COMPENSATED`) and its compensation.
#[derive(ToSchema)]
pub struct SagaStep {
    name: String,
    state: String,
    attempts: u32,
    last_error: Option<String>,
    started_at: Option<String>,
    finished_at: Option<String>,
    next_attempt_at: Option<String>,
    #[schema(value_type = Option<Object>)]
    compensation: Option<Value>,
}

#[derive(ToSchema)]
pub struct SagaPage {
    sagas: Vec<Saga>,
    next_cursor: Option<Uuid>,
}

/// Whether an abort is allowed now, and the compensations it would run, in order.
#[derive(ToSchema)]
pub struct AbortPreview {
    allowed: bool,
    compensations: Vec<PlannedCompensation>,
    reason: Option<String>,
}

#[derive(ToSchema)]
pub struct PlannedCompensation {
    step: String,
    compensation: String,
}

/// Saga type to step to policy.
#[derive(ToSchema)]
pub struct RetryPolicies {
    #[schema(value_type = Object)]
    retry_policies: Value,
}

#[derive(ToSchema)]
pub struct PolicySet {
    saga_type: String,
    step: String,
    policy: crate::retry::RetryPolicy,
}

/// Entity actors in memory now (passivation keeps this bounded by the active set).
#[derive(ToSchema)]
pub struct Stats {
    #[schema(value_type = Object)]
    actors: Value,
}

#[derive(ToSchema)]
pub struct Events {
    events: Vec<Event>,
    /// Pass as `after` for the next page; null when this page is empty.
    next_after: Option<u64>,
}

/// One order's events, oldest first.
#[derive(ToSchema)]
pub struct OrderEventPage {
    events: Vec<Event>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<u64>,
}

/// One domain event (`ItemAddedToCart`, `OrderPlaced`, `OutOfStock`, ...).
#[derive(ToSchema)]
pub struct Event {
    seq: u64,
    #[schema(rename = "type")]
    event_type: String,
    #[schema(format = DateTime)]
    at: String,
    data: Value,
}

#[derive(ToSchema)]
pub struct AuditPage {
    entries: Vec<AuditEntry>,
    next_cursor: Option<u64>,
}

#[derive(ToSchema)]
pub struct AuditEntry {
    #[schema(format = DateTime)]
    at: String,
    actor: String,
    action: String,
    entity_type: String,
    entity_id: String,
    before: Value,
    after: Value,
}

#[derive(ToSchema)]
pub struct WebhookEventPage {
    webhooks: Vec<ReceivedWebhook>,
    /// Opaque; pass as `cursor` for the next page.
    next_cursor: Option<String>,
}

/// A received webhook event and what became of it (`processed`, `needs_review`,
/// `ignored`, `rejected`, ...).
#[derive(ToSchema)]
pub struct ReceivedWebhook {
    source: String,
    event_id: String,
    #[schema(rename = "type")]
    event_type: String,
    status: String,
    detail: Option<String>,
    order_id: Option<Uuid>,
    #[schema(format = DateTime)]
    received_at: String,
    body: Value,
}

#[derive(ToSchema)]
pub struct NotificationPage {
    notifications: Vec<Notification>,
    next_cursor: Option<Uuid>,
}

/// An outbox entry: `QUEUED`, `SENT` or `FAILED`.
#[derive(ToSchema)]
pub struct Notification {
    notification_id: Uuid,
    kind: String,
    to: String,
    subject: String,
    status: String,
    attempts: u32,
    last_error: Option<String>,
    payload: Value,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    next_attempt_at: String,
}

/// A webhook delivery: `{"id", "type", "data"}`, signed (see the `webhook_signature` scheme).
#[derive(ToSchema)]
pub struct WebhookDelivery {
    /// The sender's event id; a repeat of it is a duplicate.
    id: String,
    /// `payment.captured` (`data`: `authorization_id`, `amount`) or `delivery.confirmed`
    /// (`data`: `tracking_number`).
    #[schema(rename = "type")]
    event_type: String,
    data: Value,
}

/// What became of a webhook event: `processed`, `duplicate`, `ignored` or `needs_review`.
#[derive(ToSchema)]
pub struct WebhookOutcome {
    status: String,
}
