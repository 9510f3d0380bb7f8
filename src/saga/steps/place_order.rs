//! SEQ-ORDER-001 steps: validate customer, load cart, reserve, shipping, authorize, create
//! the order, clear the cart; with their compensations.

use serde::Serialize;

use super::cancel_order::{refund_order_payment, RefundOutcome};
use super::{business, classify, gateway_failure, required, NoOutput, StepContext};
use crate::domain::events::TakenLine;
use crate::domain::ids::{ItemKey, OrderId, OwnerId};
use crate::domain::inventory::{InventoryCommand, InventoryError};
use crate::domain::money::Money;
use crate::domain::order::{Order, OrderCommand, OrderError, OrderLine, PaymentStatus};
use crate::domain::product::VariantChoiceError;
use crate::domain::quantity::Quantity;
use crate::domain::time::Timestamp;
use crate::gateways::payment::GatewayError;
use crate::saga::machine::Failure;
use crate::saga::shapes::{PlaceOrderData, PlaceOrderInput};
use crate::services::catalog::CatalogError;
use crate::services::orders::CheckoutError;
use crate::services::ServiceError;

// The steps' outputs: each names fields of `PlaceOrderData`.

#[derive(Serialize)]
pub struct CustomerChecked {
    customer_email: String,
}

#[derive(Serialize)]
pub struct CartLoaded {
    lines: Vec<OrderLine>,
    subtotal: Money,
}

#[derive(Serialize)]
pub struct ShippingPriced {
    shipping_cost: Money,
    total: Money,
}

#[derive(Serialize)]
pub struct PaymentAuthorized {
    authorization_id: String,
}

#[derive(Serialize)]
pub struct OrderCreated {
    order_id: OrderId,
}

/// void_authorization's outcome (a compensation's output is logged nowhere but the trace).
#[derive(Serialize)]
pub struct VoidOutcome {
    voided: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment: Option<&'static str>,
}

fn input(ctx: &StepContext) -> Result<PlaceOrderInput, Failure> {
    ctx.input()
}

fn data(ctx: &StepContext) -> Result<PlaceOrderData, Failure> {
    ctx.data()
}

pub async fn validate_customer(ctx: StepContext) -> Result<CustomerChecked, Failure> {
    let customer = ctx.deps.customers.get(input(&ctx)?.customer_id).map_err(classify)?;
    let customer = customer.ok_or_else(|| business(CheckoutError::RegistrationRequired.into()))?;
    if !customer.email_verified {
        return Err(business(CheckoutError::EmailNotVerified.into()));
    }
    Ok(CustomerChecked { customer_email: customer.email })
}

/// Snapshots the cart with the prices of this moment: the order keeps them.
pub async fn load_cart(ctx: StepContext) -> Result<CartLoaded, Failure> {
    let cart = ctx.deps.carts.snapshot(input(&ctx)?.customer_id).await.map_err(classify)?;
    if cart.lines.is_empty() {
        return Err(business(CheckoutError::EmptyCart.into()));
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
    Ok(CartLoaded { lines, subtotal: view.total_price })
}

/// Every line with its quantity as the domain type. A quantity that is not one (0, or over
/// the maximum) is a corrupt saga record: refused before anything is reserved, never
/// skipped (an order would otherwise be placed for stock nobody reserved).
pub fn reservable(lines: &[OrderLine]) -> Result<Vec<(ItemKey, Quantity)>, ServiceError> {
    lines
        .iter()
        .map(|line| {
            let key = ItemKey { product_id: line.product_id, variant_id: line.variant_id };
            let quantity = Quantity::new(line.quantity).ok_or_else(|| {
                ServiceError::InvalidQuantity(format!(
                    "saga data: line {} has quantity {}",
                    line.product_id, line.quantity
                ))
            })?;
            Ok((key, quantity))
        })
        .collect()
}

/// Reserves every line for this saga. If any line is short, reports every short line;
/// the compensation then releases whatever was reserved, so nothing stays held.
pub async fn reserve_inventory(ctx: StepContext) -> Result<NoOutput, Failure> {
    let lines = required(data(&ctx)?.lines, "lines")?;
    let items = reservable(&lines).map_err(business)?;
    let owner = OwnerId(ctx.saga_id.0);
    let mut short = Vec::new();
    for (key, quantity) in items {
        let short_of = |available: serde_json::Value| {
            serde_json::json!({
                "product_id": key.product_id,
                "variant_id": key.variant_id,
                "requested": quantity.get(),
                "available": available,
            })
        };
        match ctx.deps.inventory.execute_item(key, InventoryCommand::Reserve { owner, quantity }, &ctx.by()).await {
            Ok(_) => {}
            Err(ServiceError::Inventory(InventoryError::InsufficientStock { available, .. })) => {
                short.push(short_of(available.into()))
            }
            Err(ServiceError::Catalog(
                CatalogError::ProductNotFound | CatalogError::VariantChoice(VariantChoiceError::NotFound),
            )) => short.push(short_of(0.into())),
            Err(e) => return Err(classify(e)),
        }
    }
    if !short.is_empty() {
        return Err(business(ServiceError::InsufficientStock { items: short.into() }));
    }
    Ok(NoOutput {})
}

/// Flat rate, free over the threshold; domestic addresses only.
pub async fn calculate_shipping(ctx: StepContext) -> Result<ShippingPriced, Failure> {
    let input = input(&ctx)?;
    let shipping = input.shipping.as_ref().unwrap_or(&ctx.deps.settings.shipping);
    let address = input.shipping_address;
    if !address.country.eq_ignore_ascii_case(&shipping.domestic_country) {
        return Err(business(CheckoutError::InternationalShippingNotAvailable(address.country).into()));
    }
    let subtotal = required(data(&ctx)?.subtotal, "subtotal")?;
    let cost = if subtotal >= shipping.free_over { Money::ZERO } else { shipping.flat_rate };
    Ok(ShippingPriced { shipping_cost: cost, total: subtotal + cost })
}

pub async fn authorize_payment(ctx: StepContext) -> Result<PaymentAuthorized, Failure> {
    let total = required(data(&ctx)?.total, "total")?;
    let token = input(&ctx)?.payment_token;
    let currency = ctx.deps.settings.shop.currency.clone();
    let key = ctx.key("authorize_payment");
    let authorization_id = ctx.deps.gateway.authorize(total, &currency, &token, &key).await.map_err(|e| {
        gateway_failure(
            e,
            |reason| ServiceError::PaymentFailed { reason },
            ServiceError::PaymentFailed { reason: "payment gateway unavailable".into() },
        )
    })?;
    Ok(PaymentAuthorized { authorization_id })
}

/// Compensation of authorize_payment. A void the gateway refuses (already voided, unknown)
/// leaves nothing to undo. Without an authorization id, there is nothing to void unless an
/// attempt of authorize_payment may have been applied (it timed out after the request
/// left): then the gateway is asked again under the same idempotency key, which answers
/// the authorization it made (or makes one now), and that is voided; while the gateway
/// cannot say, the compensation keeps retrying rather than leave a hold on the card.
pub async fn void_authorization(ctx: StepContext) -> Result<VoidOutcome, Failure> {
    let authorization_id = match data(&ctx)?.authorization_id {
        Some(id) => id,
        None if ctx.forward_may_have_applied => match recover_authorization(&ctx).await? {
            Some(id) => id,
            None => return Ok(VoidOutcome { voided: false, payment: None }),
        },
        None => return Ok(VoidOutcome { voided: false, payment: None }),
    };
    if let Some(order) = ctx.deps.orders.get_committed(input(&ctx)?.order_id).map_err(classify)? {
        if order.payment_status != PaymentStatus::Authorized {
            // cancel_created_order settled it (voided, or refunded a capture).
            return Ok(VoidOutcome { voided: false, payment: Some(order.payment_status.as_str()) });
        }
    }
    let key = ctx.key("void_authorization");
    match ctx.deps.gateway.void(&authorization_id, &key).await {
        Ok(()) => Ok(VoidOutcome { voided: true, payment: None }),
        Err(GatewayError::Declined(reason)) => {
            tracing::warn!(%authorization_id, %reason, "void refused by the gateway; nothing left to void");
            Ok(VoidOutcome { voided: false, payment: None })
        }
        Err(GatewayError::Transient(m) | GatewayError::Uncertain(m)) => Err(super::transient(m)),
    }
}

/// The authorization an uncertain authorize_payment may have made: the same call again,
/// under the same key. `None`: the gateway declines it, so none was made.
async fn recover_authorization(ctx: &StepContext) -> Result<Option<String>, Failure> {
    let total = required(data(ctx)?.total, "total")?;
    let token = input(ctx)?.payment_token;
    let currency = ctx.deps.settings.shop.currency.clone();
    match ctx.deps.gateway.authorize(total, &currency, &token, &ctx.key("authorize_payment")).await {
        Ok(id) => {
            tracing::warn!(authorization_id = %id, "an authorization the checkout never heard of: voiding it");
            Ok(Some(id))
        }
        Err(GatewayError::Declined(_)) => Ok(None),
        Err(GatewayError::Transient(m) | GatewayError::Uncertain(m)) => Err(super::transient(m)),
    }
}

/// Its success rides on the order's write (see `saga::fold`).
pub async fn create_order(mut ctx: StepContext) -> Result<OrderCreated, Failure> {
    let now = Timestamp::now();
    let input = input(&ctx)?;
    let data = data(&ctx)?;
    let order = Order::placed(
        input.order_id,
        input.customer_id,
        required(data.lines, "lines")?,
        (
            required(data.subtotal, "subtotal")?,
            required(data.shipping_cost, "shipping_cost")?,
            required(data.total, "total")?,
        ),
        input.shipping_address,
        required(data.authorization_id, "authorization_id")?,
        ctx.saga_id,
        now,
    );
    let expire_after_ms = ctx.deps.settings.orders.expire_unpaid_after_secs.saturating_mul(1000) as i64;
    let created = OrderCreated { order_id: order.order_id };
    let logged = ctx.success_log(&created);
    ctx.deps.orders.create(order, Some(now.plus_millis(expire_after_ms)), logged).await.map_err(classify)?;
    Ok(created)
}

/// Compensation of create_order: it only runs before the point of no return (create_order
/// failed, or an operator aborted while it was retrying), but the order may exist already,
/// and a payment webhook may have captured it. So it is settled like a cancellation: a
/// captured payment is refunded, an authorized one voided (void_authorization then finds
/// nothing left to do), never a void of money already taken.
pub async fn cancel_created_order(ctx: StepContext) -> Result<RefundOutcome, Failure> {
    let order_id = input(&ctx)?.order_id;
    let cmd = OrderCommand::Cancel { by: ctx.saga_id, reason: "checkout aborted".into(), only_if_pending: false };
    match ctx.deps.orders.execute(order_id, cmd, &ctx.by(), Vec::new()).await {
        Ok(_) => refund_order_payment(&ctx, order_id).await,
        // Never created, or cancelled by someone else (whose saga settles the payment).
        Err(ServiceError::OrderNotFound | ServiceError::Order(OrderError::InvalidStatusTransition { .. })) => {
            Ok(RefundOutcome::nothing())
        }
        Err(e) => Err(classify(e)),
    }
}

/// Takes out of the cart exactly what load_cart put in the order: a line added or
/// increased while the payment was retrying keeps the difference. Its success (the saga's
/// completion) rides on the cart's write (see `saga::fold`).
pub async fn clear_cart(mut ctx: StepContext) -> Result<NoOutput, Failure> {
    let lines = required(data(&ctx)?.lines, "lines")?;
    let taken = lines
        .iter()
        .map(|l| TakenLine { product_id: l.product_id, variant_id: l.variant_id, quantity: l.quantity })
        .collect();
    let customer = input(&ctx)?.customer_id;
    let logged = ctx.success_log(&NoOutput {});
    ctx.deps.carts.clear(customer, ctx.saga_id, taken, logged).await.map_err(classify)?;
    Ok(NoOutput {})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::ProductId;

    fn line(quantity: u32) -> OrderLine {
        OrderLine {
            product_id: ProductId::new(),
            variant_id: None,
            name: "Mug".into(),
            quantity,
            unit_price: Money::ZERO,
        }
    }

    #[test]
    fn a_line_with_an_invalid_quantity_is_refused_not_skipped() {
        let lines = [line(2), line(0)];
        match reservable(&lines) {
            Err(ServiceError::InvalidQuantity(m)) => assert!(m.contains("quantity 0"), "{m}"),
            other => panic!("expected INVALID_QUANTITY, got {other:?}"),
        }
        let too_many = [line(u32::MAX)];
        assert!(matches!(reservable(&too_many), Err(ServiceError::InvalidQuantity(_))));
        let ok = reservable(&[line(2), line(3)]).unwrap();
        assert_eq!(ok.iter().map(|(_, q)| q.get()).collect::<Vec<_>>(), [2, 3]);
    }

    /// The outputs, merged as the machine merges them, fill every field of the data shape.
    #[test]
    fn the_steps_outputs_are_the_fields_of_the_data_shape() {
        let outputs = [
            serde_json::to_value(CustomerChecked { customer_email: "a@example.com".into() }),
            serde_json::to_value(CartLoaded { lines: vec![line(1)], subtotal: Money::ZERO }),
            serde_json::to_value(NoOutput {}),
            serde_json::to_value(ShippingPriced { shipping_cost: Money::ZERO, total: Money::ZERO }),
            serde_json::to_value(PaymentAuthorized { authorization_id: "auth_1".into() }),
            serde_json::to_value(OrderCreated { order_id: OrderId::new() }),
        ];
        let mut data = serde_json::Map::new();
        for output in outputs {
            let serde_json::Value::Object(fields) = output.unwrap() else { panic!("an output is an object") };
            data.extend(fields);
        }
        let data: PlaceOrderData = serde_json::from_value(data.into()).unwrap();
        let json = serde_json::to_value(&data).unwrap();
        let missing: Vec<_> = json.as_object().unwrap().iter().filter(|(_, v)| v.is_null()).collect();
        assert!(missing.is_empty(), "no step writes {missing:?}");
    }
}
