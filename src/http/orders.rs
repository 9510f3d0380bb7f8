//! Orders (SEQ-ORDER-001 place, SEQ-ORDER-005 cancel) and the customer's view of sagas.
//! Placing and cancelling run sagas; the answer waits up to `checkout.sync_wait_ms` for the
//! saga to settle, else says 202 with the saga to poll.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use warp::http::HeaderValue;

use super::auth;
use super::prefer;
use super::request::{path_id, Request};
use super::response::{json, Reply};
use super::spec::schemas as doc;
use super::ApiError;
use crate::domain::ids::{CustomerId, OrderId, SagaId};
use crate::domain::order::{OrderStatus, ShippingAddress};
use crate::domain::text::{is_visible_text, Layout};
use crate::saga::engine::Started;
use crate::saga::shapes::{CancelOrderInput, PlaceOrderInput, ShipOrderInput};
use crate::saga::{SagaInstance, SagaState};
use crate::services::audit;
use crate::services::logs::MAX_PAGE;
use crate::services::orders::{order_json, CheckoutError};
use crate::services::ServiceError;
use crate::startup::Shop;
use crate::store::keys::{self, IdempotentOperation};
use crate::store::Key;

#[derive(Deserialize, ToSchema)]
struct PlaceOrder {
    shipping_address: Address,
    payment: Payment,
}

/// Each field one line of 1 to 200 characters (city 100, postal code 20); `country` an ISO
/// 3166-1 alpha-2 code, only `shipping.domestic_country` is served.
#[derive(Deserialize, ToSchema)]
struct Address {
    name: String,
    line1: String,
    city: String,
    postal_code: String,
    country: String,
}

/// The payment gateway's card token (the simulated gateway: `tok_visa`, `tok_declined`, ...).
#[derive(Deserialize, ToSchema)]
struct Payment {
    token: String,
}

#[derive(Deserialize, Default, ToSchema)]
struct CancelOrder {
    /// Default `customer_request` (an operator's cancel: `operator_request`).
    reason: Option<String>,
}

/// One line of text: 1 to `max` characters, none of them control, bidi or zero-width.
fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max {
        return Err(ApiError::invalid(field, format!("{field} must be 1 to {max} characters")));
    }
    if !is_visible_text(v, Layout::SingleLine) {
        return Err(ApiError::invalid(
            field,
            format!("{field} must not contain control, bidirectional or zero-width characters"),
        ));
    }
    Ok(v.to_string())
}

/// The Idempotency-Key of this request, scoped to the customer and the operation.
fn idempotency(req: &Request, customer: CustomerId, operation: IdempotentOperation) -> Result<Option<Key>, ApiError> {
    Ok(idempotency_header(req)?.map(|key| keys::idempotency(customer, key, operation)))
}

/// The request's `Idempotency-Key` header, checked: 1 to 255 visible ASCII characters.
fn idempotency_header(req: &Request) -> Result<Option<&str>, ApiError> {
    let Some(raw) = req.headers.get("idempotency-key") else { return Ok(None) };
    let key = raw.to_str().map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII"))?;
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::invalid("Idempotency-Key", "must be 1 to 255 characters"));
    }
    Ok(Some(key))
}

/// Answers a saga-backed request. Once the saga settled within `checkout.sync_wait_ms` (or
/// the shorter wait the request's `Prefer` header asked for, see [`prefer`]):
/// `ok_status` with its order when it COMPLETED, or is STUCK past its point of no return
/// (placed, cancelled with the refund PENDING_MANUAL, shipped: what is left is an operator's;
/// every write before the saga's last log write is committed, so the order is read from the
/// store); its recorded error when it FAILED or was ABORTED. Otherwise 202 with the saga to poll.
async fn answer(shop: &Shop, req: &Request, started: Started, ok_status: u16, visible_to: Option<CustomerId>) -> Reply {
    let wait = prefer::wait(&req.headers, Duration::from_millis(shop.settings.checkout.sync_wait_ms));
    let mut reply = settled(shop, started, wait.time, ok_status, visible_to).await?;
    if let Some(applied) = wait.applied.and_then(|a| HeaderValue::from_str(&a).ok()) {
        reply.headers_mut().insert("preference-applied", applied);
    }
    Ok(reply)
}

async fn settled(
    shop: &Shop,
    started: Started,
    wait: Duration,
    ok_status: u16,
    visible_to: Option<CustomerId>,
) -> Reply {
    let saga_id = started.saga_id;
    let Some(saga) = started.wait(&shop.sagas, wait).await? else {
        let state = shop.sagas.get(saga_id).await?.map_or("RUNNING", |s| s.state.as_str());
        return Ok(accepted(saga_id, state));
    };
    match saga.state {
        SagaState::Completed | SagaState::Stuck => {
            let order = match saga.order_id {
                Some(id) => shop.orders.get_committed(id)?,
                None => None,
            };
            match order.filter(|o| visible_to.is_none_or(|c| o.customer_id == c)) {
                Some(order) => Ok(json(ok_status, &order_json(&order))),
                None => Ok(accepted(saga_id, saga.state.as_str())),
            }
        }
        SagaState::Failed | SagaState::Aborted => Err(failure(&saga)),
        SagaState::Running | SagaState::Retrying | SagaState::Compensating | SagaState::Paused => {
            Ok(accepted(saga_id, saga.state.as_str()))
        }
    }
}

fn accepted(saga_id: SagaId, state: &str) -> warp::reply::Response {
    json(202, &json!({ "saga_id": saga_id, "state": state }))
}

/// Place an order from the cart: runs the `place_order` saga (reserve, shipping,
/// authorize, create the order, clear the ordered lines). On any error every compensation
/// has run: nothing is left held or charged.
#[utoipa::path(post, path = "/v1/orders", operation_id = "orders.place", tag = "orders",
    security(("customer_token" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, description = "A repeat with the same key by the same customer answers the first outcome and starts nothing new"), ("Prefer" = Option<String>, Header, description = prefer::DESCRIPTION)),
    request_body = PlaceOrder,
    responses(
        (status = 201, description = "The order, `PENDING`", body = doc::Order, links(
            ("GetOrder" = (operation_id = "orders.get", parameters(("id" = "$response.body#/order_id")))),
            ("CancelOrder" = (operation_id = "orders.cancel", parameters(("id" = "$response.body#/order_id")))),
            ("GetSaga" = (operation_id = "sagas.get", parameters(("id" = "$response.body#/saga_id")))),
        )),
        (status = 202, description = "Not settled within `checkout.sync_wait_ms` or the `Prefer` wait: poll the saga", body = doc::Accepted, links(
            ("GetSaga" = (operation_id = "sagas.get", parameters(("id" = "$response.body#/saga_id")))),
        )),
        (status = 401, description = "`REGISTRATION_REQUIRED`: no or an unknown token"),
        (status = 402, description = "`PAYMENT_FAILED` with `details.reason`"),
        (status = 403, description = "`EMAIL_NOT_VERIFIED`"),
        (status = 409, description = "`INSUFFICIENT_STOCK` with `details.items` (`[{product_id, variant_id, requested, available}]`)"),
        (status = 422, description = "`EMPTY_CART`; `INTERNATIONAL_SHIPPING_NOT_AVAILABLE` (`details.country`)"),
    ))]
pub async fn place(shop: &Shop, req: &Request) -> Reply {
    let customer = auth::customer(shop, req).map_err(|_| ApiError::from(CheckoutError::RegistrationRequired))?;
    // Refused before a saga exists: an unverified account must not fill the saga log.
    // (validate_customer checks again inside the saga.)
    if !shop.customers.get(customer)?.is_some_and(|c| c.email_verified) {
        return Err(CheckoutError::EmailNotVerified.into());
    }
    let body: PlaceOrder = req.json()?;
    let a = &body.shipping_address;
    let country = text("shipping_address.country", &a.country, 2)?.to_ascii_uppercase();
    if country.len() != 2 || !country.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(ApiError::invalid("shipping_address.country", "an ISO 3166-1 alpha-2 code"));
    }
    let shipping_address = ShippingAddress {
        name: text("shipping_address.name", &a.name, 200)?,
        line1: text("shipping_address.line1", &a.line1, 200)?,
        city: text("shipping_address.city", &a.city, 100)?,
        postal_code: text("shipping_address.postal_code", &a.postal_code, 20)?,
        country,
    };
    let token = text("payment.token", &body.payment.token, 100)?;
    let key = idempotency(req, customer, IdempotentOperation::Place)?;
    let order_id = shop.orders.new_id(customer);
    let input = PlaceOrderInput {
        customer_id: customer,
        order_id,
        shipping_address,
        payment_token: token,
        shipping: Some(shop.settings.shipping.clone()),
    };
    let started = shop.sagas.start(&input, Some(customer), Some(order_id), key).await?;
    answer(shop, req, started, 201, Some(customer)).await
}

fn failure(saga: &SagaInstance) -> ApiError {
    match &saga.error {
        Some(e) => ApiError::Recorded(e.clone()),
        None => crate::saga::SagaError::InvalidState(format!("the saga ended {}", saga.state.as_str())).into(),
    }
}

/// Cancel an order: runs the `cancel_order` saga (cancel, release the stock, void or
/// refund, email). A refund that keeps failing leaves the refund `PENDING_MANUAL`.
#[utoipa::path(post, path = "/v1/orders/{id}/cancel", operation_id = "orders.cancel", tag = "orders",
    security(("customer_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "Order id"), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, description = "A repeat with the same key by the same customer answers the first outcome and starts nothing new"), ("Prefer" = Option<String>, Header, description = prefer::DESCRIPTION)),
    request_body(content = Option<CancelOrder>, description = "Optional"),
    responses(
        (status = 200, description = "The order, `CANCELLED`, with `refund`", body = doc::Order),
        (status = 202, description = "Not settled within `checkout.sync_wait_ms` or the `Prefer` wait: poll the saga", body = doc::Accepted),
        (status = 404, description = "`ORDER_NOT_FOUND` (also another customer's)"),
        (status = 409, description = "`CANCELLATION_NOT_ALLOWED` (shipped or delivered); `INVALID_STATUS_TRANSITION` (already cancelled)"),
    ))]
pub async fn cancel(shop: &Shop, req: &Request, id: &str) -> Reply {
    let customer = auth::customer(shop, req)?;
    let order_id: OrderId = path_id(id, ApiError::from(ServiceError::OrderNotFound))?;
    let reason = cancel_reason(req, "customer_request")?;
    let key = idempotency(req, customer, IdempotentOperation::Cancel(order_id))?;
    // Nobody's saga starts for an order that is not theirs (or does not exist).
    let order = shop.orders.get_own(customer, order_id).await?;
    if key.is_none() {
        // Fast answers for the plain cases; the saga checks again under the order's actor.
        // (With a key, a repeat must answer the first outcome, so only the saga decides.)
        order.cancellable(false)?;
    }
    let input =
        CancelOrderInput { order_id, customer_id: Some(customer), reason: Some(reason), only_if_pending: false };
    let started = shop.sagas.start(&input, Some(customer), Some(order_id), key).await?;
    answer(shop, req, started, 200, Some(customer)).await
}

/// The optional body's `reason` (1 to 500 visible characters), else `default`.
fn cancel_reason(req: &Request, default: &str) -> Result<String, ApiError> {
    let body: CancelOrder = if req.body.is_empty() { CancelOrder::default() } else { req.json()? };
    match body.reason {
        Some(r) => text("reason", &r, 500),
        None => Ok(default.to_string()),
    }
}

/// The customer's own orders.
#[utoipa::path(get, path = "/v1/orders", operation_id = "orders.list", tag = "orders",
    security(("customer_token" = [])),
    responses((status = 200, description = "Orders", body = doc::Orders)))]
pub async fn list(shop: &Shop, req: &Request) -> Reply {
    let customer = auth::customer(shop, req)?;
    let orders: Vec<_> = shop.orders.list_for_customer(customer).await?.iter().map(order_json).collect();
    Ok(json(200, &json!({ "orders": orders })))
}

/// One of the customer's own orders.
#[utoipa::path(get, path = "/v1/orders/{id}", operation_id = "orders.get", tag = "orders",
    security(("customer_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = doc::Order),
        (status = 404, description = "`ORDER_NOT_FOUND` (also another customer's)"),
    ))]
pub async fn get(shop: &Shop, req: &Request, id: &str) -> Reply {
    let customer = auth::customer(shop, req)?;
    let id: OrderId = path_id(id, ApiError::from(ServiceError::OrderNotFound))?;
    Ok(json(200, &order_json(&shop.orders.get_own(customer, id).await?)))
}

/// `GET /v1/sagas/{id}`: the customer's own sagas only.
#[utoipa::path(get, path = "/v1/sagas/{id}", operation_id = "sagas.get", tag = "orders",
    security(("customer_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "Saga id")),
    responses(
        (status = 200, description = "The saga", body = doc::CustomerSaga),
        (status = 404, description = "`SAGA_NOT_FOUND` (also another customer's)"),
    ))]
pub async fn saga(shop: &Shop, req: &Request, id: &str) -> Reply {
    let customer = auth::customer(shop, req)?;
    let id: SagaId = path_id(id, ApiError::from(crate::saga::SagaError::NotFound))?;
    let saga = shop
        .sagas
        .get(id)
        .await?
        .filter(|s| s.customer_id == Some(customer))
        .ok_or(crate::saga::SagaError::NotFound)?;
    Ok(json(200, &saga.to_customer_json()))
}

/// `GET /admin/v1/orders?status=`: every order, a page at a time (fulfillment or admin).
#[utoipa::path(get, path = "/admin/v1/orders", operation_id = "admin.orders.list", tag = "fulfillment",
    security(("admin_token" = []), ("fulfillment_token" = [])),
    params(
        ("status" = Option<doc::OrderStatus>, Query, description = "Only orders in this status"),
        ("cursor" = Option<uuid::Uuid>, Query, description = "`next_cursor` of the page before"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
    ),
    responses((status = 200, description = "Orders", body = doc::OrderPage)))]
pub async fn admin_list(shop: &Shop, req: &Request) -> Reply {
    auth::staff(shop, req)?;
    let status = match req.query.get("status").filter(|s| !s.is_empty()) {
        Some(s) => Some(OrderStatus::parse(s).ok_or_else(|| ApiError::invalid("status", "unknown order status"))?),
        None => None,
    };
    let cursor = req.query_param::<OrderId>("cursor")?;
    let (orders, next) = shop.orders.list(status, cursor, req.limit(100, 1000)?).await?;
    let orders: Vec<_> = orders.iter().map(order_json).collect();
    Ok(json(200, &json!({ "orders": orders, "next_cursor": next })))
}

/// Any order (fulfillment or admin).
#[utoipa::path(get, path = "/admin/v1/orders/{id}", operation_id = "admin.orders.get", tag = "fulfillment",
    security(("admin_token" = []), ("fulfillment_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = doc::Order),
        (status = 404, description = "`ORDER_NOT_FOUND`"),
    ))]
pub async fn admin_get(shop: &Shop, req: &Request, id: &str) -> Reply {
    auth::staff(shop, req)?;
    let id: OrderId = path_id(id, ApiError::from(ServiceError::OrderNotFound))?;
    let order = shop.orders.get(id).await?.ok_or(ApiError::from(ServiceError::OrderNotFound))?;
    Ok(json(200, &order_json(&order)))
}

/// One order's domain events, oldest first (fulfillment or admin): its placing, payment,
/// shipment, delivery, cancellation and refund, and webhooks about it kept for review.
#[utoipa::path(get, path = "/admin/v1/orders/{id}/events", operation_id = "admin.orders.events", tag = "fulfillment",
    security(("admin_token" = []), ("fulfillment_token" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "Order id"),
        ("cursor" = Option<u64>, Query, description = "`next_cursor` of the page before"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
    ),
    responses(
        (status = 200, description = "The order's events", body = doc::OrderEventPage),
        (status = 404, description = "`ORDER_NOT_FOUND`"),
    ))]
pub async fn admin_events(shop: &Shop, req: &Request, id: &str) -> Reply {
    auth::staff(shop, req)?;
    let id: OrderId = path_id(id, ApiError::from(ServiceError::OrderNotFound))?;
    let cursor = req.query_param::<u64>("cursor")?;
    let limit = req.limit(100, MAX_PAGE)?;
    // Nothing shown that a crash could still take back.
    shop.store.barrier().await?;
    Ok(json(200, &shop.logs.order_events(id, cursor, limit)?))
}

#[derive(Deserialize, ToSchema)]
struct Ship {
    /// 1 to 64 letters, digits, `-` or `_`; one order per tracking number.
    #[schema(min_length = 1)]
    tracking_number: String,
    carrier: Option<String>,
}

/// `POST /admin/v1/orders/{id}/ship` (fulfillment or admin): runs the ship_order saga
/// (claim the tracking number, mark SHIPPED, deduct the reserved stock; the email follows).
#[utoipa::path(post, path = "/admin/v1/orders/{id}/ship", operation_id = "admin.orders.ship", tag = "fulfillment",
    security(("admin_token" = []), ("fulfillment_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "Order id"), ("Prefer" = Option<String>, Header, description = prefer::DESCRIPTION)),
    request_body = Ship,
    responses(
        (status = 200, description = "The order, `SHIPPED`", body = doc::Order),
        (status = 202, description = "Not settled within `checkout.sync_wait_ms` or the `Prefer` wait", body = doc::Accepted),
        (status = 404, description = "`ORDER_NOT_FOUND`"),
        (status = 409, description = "`INVALID_STATUS_TRANSITION` (not `CONFIRMED`; nothing deducted); `TRACKING_NUMBER_IN_USE`"),
    ))]
pub async fn ship(shop: &Shop, req: &Request, id: &str) -> Reply {
    let staff = auth::staff(shop, req)?;
    let order_id: OrderId = path_id(id, ApiError::from(ServiceError::OrderNotFound))?;
    let body: Ship = req.json()?;
    let tracking = body.tracking_number.trim().to_string();
    if tracking.is_empty()
        || tracking.len() > 64
        || !tracking.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::invalid("tracking_number", "1 to 64 letters, digits, '-' or '_'"));
    }
    let carrier = match body.carrier {
        Some(c) => Some(text("carrier", &c, 100)?),
        None => None,
    };
    let order = shop.orders.get(order_id).await?.ok_or(ApiError::from(ServiceError::OrderNotFound))?;
    let actor = auth::actor(staff, req)?;
    let input =
        ShipOrderInput { order_id, tracking_number: tracking.clone(), carrier, by: Some(staff.name().to_string()) };
    let started = shop.sagas.start(&input, Some(order.customer_id), Some(order_id), None).await?;
    // Who asked for the shipment: the saga's own changes are audited as the saga's.
    let after = json!({ "tracking_number": tracking, "saga_id": started.saga_id });
    let row = audit::entry(&actor, "order.ship", ("order", &order_id.to_string()), json!(null), after);
    audit::record(&shop.store, row).await?;
    answer(shop, req, started, 200, None).await
}

/// `POST /admin/v1/orders/{id}/cancel` (admin only): the operator's way to cancel any
/// order, the remedy for a checkout past its point of no return that must not stand. Runs
/// the same `cancel_order` saga as the customer's cancel (void or refund included) and is
/// audited as `order.cancel` with the operator.
#[utoipa::path(post, path = "/admin/v1/orders/{id}/cancel", operation_id = "admin.orders.cancel", tag = "operators",
    security(("admin_token" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "Order id"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, description = "A repeat with the same key by an operator answers the first outcome and starts nothing new"),
        ("X-Operator" = Option<String>, Header, description = "Who does it, for the audit trail"),
        ("Prefer" = Option<String>, Header, description = prefer::DESCRIPTION),
    ),
    request_body(content = Option<CancelOrder>, description = "Optional"),
    responses(
        (status = 200, description = "The order, `CANCELLED`, with `refund`", body = doc::Order),
        (status = 202, description = "Not settled within `checkout.sync_wait_ms` or the `Prefer` wait: poll the saga", body = doc::Accepted),
        (status = 403, description = "`FORBIDDEN`: the fulfillment token"),
        (status = 404, description = "`ORDER_NOT_FOUND`"),
        (status = 409, description = "`CANCELLATION_NOT_ALLOWED` (shipped or delivered); `INVALID_STATUS_TRANSITION` (already cancelled)"),
    ))]
pub async fn admin_cancel(shop: &Shop, req: &Request, id: &str) -> Reply {
    let actor = auth::admin_actor(shop, req)?;
    let order_id: OrderId = path_id(id, ApiError::from(ServiceError::OrderNotFound))?;
    let reason = cancel_reason(req, "operator_request")?;
    // Operators share one key space, apart from every customer's.
    let key = idempotency_header(req)?.map(|k| keys::operator_idempotency(k, IdempotentOperation::Cancel(order_id)));
    let order = shop.orders.get(order_id).await?.ok_or(ApiError::from(ServiceError::OrderNotFound))?;
    if key.is_none() {
        // As the customer's cancel: a fast answer for the plain refusals; the saga checks again.
        order.cancellable(false)?;
    }
    let input = CancelOrderInput { order_id, customer_id: None, reason: Some(reason.clone()), only_if_pending: false };
    let started = shop.sagas.start(&input, Some(order.customer_id), Some(order_id), key).await?;
    let before = json!({ "status": order.status.as_str() });
    let after = json!({ "reason": reason, "saga_id": started.saga_id });
    let row = audit::entry(&actor, "order.cancel", ("order", &order_id.to_string()), before, after);
    audit::record(&shop.store, row).await?;
    answer(shop, req, started, 200, None).await
}
