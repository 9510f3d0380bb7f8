//! SEQ-ORDER-001 steps: validate customer, load cart, reserve, shipping, authorize, create
//! the order, clear the cart; with their compensations.

use serde_json::{json, Value};

use super::shared::field;
use super::{business, classify, gateway_failure, StepContext};
use crate::domain::events::TakenLine;
use crate::domain::ids::{CustomerId, ItemKey, OrderId, OwnerId};
use crate::domain::inventory::InventoryCommand;
use crate::domain::money::Money;
use crate::domain::order::{Order, OrderCommand, OrderLine, PaymentStatus, ShippingAddress};
use crate::domain::quantity::Quantity;
use crate::domain::time::Timestamp;
use crate::error::AppError;
use crate::saga::machine::Failure;

fn customer(ctx: &StepContext) -> Result<CustomerId, Failure> {
    field::<uuid::Uuid>(&ctx.input, "customer_id").map(CustomerId)
}

pub async fn validate_customer(ctx: StepContext) -> Result<Value, Failure> {
    let customer = ctx.deps.customers.get(customer(&ctx)?).map_err(classify)?;
    let customer = customer.ok_or_else(|| business(AppError::RegistrationRequired))?;
    if !customer.email_verified {
        return Err(business(AppError::EmailNotVerified));
    }
    Ok(json!({ "customer_email": customer.email }))
}

/// Snapshots the cart with the prices of this moment: the order keeps them.
pub async fn load_cart(ctx: StepContext) -> Result<Value, Failure> {
    let cart = ctx.deps.carts.snapshot(customer(&ctx)?).await.map_err(classify)?;
    if cart.lines.is_empty() {
        return Err(business(AppError::EmptyCart));
    }
    let view = ctx.deps.carts.view(&cart).map_err(classify)?;
    let lines: Vec<OrderLine> = view
        .items
        .iter()
        .map(|i| OrderLine {
            product_id: i.product_id,
            variant_id: i.variant_id,
            name: i.name.clone(),
            quantity: i.quantity,
            unit_price: i.unit_price,
        })
        .collect();
    Ok(json!({ "lines": lines, "subtotal": view.total_price }))
}

/// Reserves every line for this saga. If any line is short, reports every short line;
/// the compensation then releases whatever was reserved, so nothing stays held.
pub async fn reserve_inventory(ctx: StepContext) -> Result<Value, Failure> {
    let lines: Vec<OrderLine> = field(&ctx.data, "lines")?;
    let owner = OwnerId(ctx.saga_id.0);
    let mut short = Vec::new();
    for line in &lines {
        let key = ItemKey { product_id: line.product_id, variant_id: line.variant_id };
        let Some(quantity) = Quantity::new(line.quantity) else { continue };
        match ctx.deps.inventory.execute_item(key, InventoryCommand::Reserve { owner, quantity }, &ctx.by()).await {
            Ok(_) => {}
            Err(AppError::InsufficientStock { items }) => short.push(json!({
                "product_id": line.product_id,
                "variant_id": line.variant_id,
                "requested": line.quantity,
                "available": items[0]["available"],
            })),
            Err(AppError::ProductNotFound | AppError::VariantNotFound) => short.push(json!({
                "product_id": line.product_id,
                "variant_id": line.variant_id,
                "requested": line.quantity,
                "available": 0,
            })),
            Err(e) => return Err(classify(e)),
        }
    }
    if !short.is_empty() {
        return Err(business(AppError::InsufficientStock { items: short.into() }));
    }
    Ok(json!({}))
}

/// Flat rate, free over the threshold; domestic addresses only.
pub async fn calculate_shipping(ctx: StepContext) -> Result<Value, Failure> {
    let shipping = &ctx.deps.settings.shipping;
    let address: ShippingAddress = field(&ctx.input, "shipping_address")?;
    if !address.country.eq_ignore_ascii_case(&shipping.domestic_country) {
        return Err(business(AppError::InternationalShippingNotAvailable(address.country)));
    }
    let subtotal: Money = field(&ctx.data, "subtotal")?;
    let cost = if subtotal >= shipping.free_over { Money::ZERO } else { shipping.flat_rate };
    Ok(json!({ "shipping_cost": cost, "total": subtotal + cost }))
}

pub async fn authorize_payment(ctx: StepContext) -> Result<Value, Failure> {
    let total: Money = field(&ctx.data, "total")?;
    let token: String = field(&ctx.input, "payment_token")?;
    let currency = ctx.deps.settings.shop.currency.clone();
    let key = ctx.key("authorize_payment");
    let authorization_id = ctx.deps.gateway.authorize(total, &currency, &token, &key).await.map_err(|e| {
        gateway_failure(
            e,
            |reason| AppError::PaymentFailed { reason },
            AppError::PaymentFailed { reason: "payment gateway unavailable".into() },
        )
    })?;
    Ok(json!({ "authorization_id": authorization_id }))
}

/// Compensation of authorize_payment. A void the gateway refuses (already voided, unknown)
/// leaves nothing to undo.
pub async fn void_authorization(ctx: StepContext) -> Result<Value, Failure> {
    let Some(authorization_id) = ctx.data.get("authorization_id").and_then(Value::as_str).map(str::to_string) else {
        return Ok(json!({}));
    };
    let order_id = OrderId(field(&ctx.input, "order_id")?);
    if let Some(order) = ctx.deps.orders.get_committed(order_id).map_err(classify)? {
        if order.payment_status != PaymentStatus::Authorized {
            // cancel_created_order settled it (voided, or refunded a capture).
            return Ok(json!({ "voided": false, "payment": order.payment_status.as_str() }));
        }
    }
    let key = ctx.key("void_authorization");
    match ctx.deps.gateway.void(&authorization_id, &key).await {
        Ok(()) => Ok(json!({ "voided": true })),
        Err(crate::gateways::payment::GatewayError::Declined(reason)) => {
            tracing::warn!(%authorization_id, %reason, "void refused by the gateway; nothing left to void");
            Ok(json!({ "voided": false }))
        }
        Err(crate::gateways::payment::GatewayError::Transient(m)) => Err(super::transient(m)),
    }
}

pub async fn create_order(ctx: StepContext) -> Result<Value, Failure> {
    let now = Timestamp::now();
    let order = Order::placed(
        OrderId(field(&ctx.input, "order_id")?),
        customer(&ctx)?,
        field(&ctx.data, "lines")?,
        (field(&ctx.data, "subtotal")?, field(&ctx.data, "shipping_cost")?, field(&ctx.data, "total")?),
        field(&ctx.input, "shipping_address")?,
        field(&ctx.data, "authorization_id")?,
        ctx.saga_id,
        now,
    );
    let expire_after_ms = ctx.deps.settings.orders.expire_unpaid_after_secs.saturating_mul(1000) as i64;
    let order = ctx.deps.orders.create(order, Some(now.plus_millis(expire_after_ms))).await.map_err(classify)?;
    Ok(json!({ "order_id": order.order_id }))
}

/// Compensation of create_order: it only runs before the point of no return (create_order
/// failed, or an operator aborted while it was retrying), but the order may exist already,
/// and a payment webhook may have captured it. So it is settled like a cancellation: a
/// captured payment is refunded, an authorized one voided (void_authorization then finds
/// nothing left to do), never a void of money already taken.
pub async fn cancel_created_order(ctx: StepContext) -> Result<Value, Failure> {
    let order_id = OrderId(field(&ctx.input, "order_id")?);
    let cmd = OrderCommand::Cancel { by: ctx.saga_id, reason: "checkout aborted".into(), only_if_pending: false };
    match ctx.deps.orders.execute(order_id, cmd, &ctx.by(), Vec::new()).await {
        Ok(_) => super::cancel_order::refund_payment(ctx).await,
        // Never created, or cancelled by someone else (whose saga settles the payment).
        Err(AppError::OrderNotFound) | Err(AppError::InvalidStatusTransition(_)) => Ok(json!({})),
        Err(e) => Err(classify(e)),
    }
}

/// Takes out of the cart exactly what load_cart put in the order: a line added or
/// increased while the payment was retrying keeps the difference.
pub async fn clear_cart(ctx: StepContext) -> Result<Value, Failure> {
    let lines: Vec<OrderLine> = field(&ctx.data, "lines")?;
    let taken = lines
        .iter()
        .map(|l| TakenLine { product_id: l.product_id, variant_id: l.variant_id, quantity: l.quantity })
        .collect();
    ctx.deps.carts.clear(customer(&ctx)?, ctx.saga_id, taken).await.map_err(classify)?;
    Ok(json!({}))
}
