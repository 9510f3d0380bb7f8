//! SEQ-ORDER-003 steps: validate, claim the tracking number, mark shipped, deduct the
//! reserved stock, queue the shipping email (SEQ-NOTIF-001).

use serde_json::{json, Value};

use super::shared::field;
use super::{business, classify, StepContext};
use crate::domain::ids::{ItemKey, OrderId, OwnerId};
use crate::domain::inventory::InventoryCommand;
use crate::domain::order::{OrderCommand, OrderLine, OrderStatus};
use crate::error::AppError;
use crate::saga::machine::Failure;
use crate::store::{StoreError, Table, WriteSet};

fn order_id(ctx: &StepContext) -> Result<OrderId, Failure> {
    field::<uuid::Uuid>(&ctx.input, "order_id").map(OrderId)
}

fn tracking(ctx: &StepContext) -> Result<String, Failure> {
    field(&ctx.input, "tracking_number")
}

pub async fn validate_shipment(ctx: StepContext) -> Result<Value, Failure> {
    let id = order_id(&ctx)?;
    let order = ctx.deps.orders.get(id).await.map_err(classify)?.ok_or_else(|| business(AppError::OrderNotFound))?;
    if order.status != OrderStatus::Confirmed && order.shipped_by != Some(ctx.saga_id) {
        return Err(business(AppError::InvalidStatusTransition(format!(
            "order is {}; only a CONFIRMED order can be shipped",
            order.status.as_str()
        ))));
    }
    Ok(json!({ "lines": order.items, "reservation_owner": order.saga_id, "customer_id": order.customer_id }))
}

/// A tracking number names one order: claimed with a conditional put.
pub async fn claim_tracking_number(ctx: StepContext) -> Result<Value, Failure> {
    let id = order_id(&ctx)?;
    let number = tracking(&ctx)?;
    let ws =
        WriteSet::new().put_if_absent(Table::OrdersByTracking, number.clone().into_bytes(), &id.0, "tracking_number");
    match ctx.deps.store.commit(ws).await {
        Ok(_) => Ok(json!({})),
        Err(StoreError::Conflict(_)) => {
            match ctx.deps.orders.find_by(Table::OrdersByTracking, &number).map_err(classify)? {
                Some(owner) if owner == id => Ok(json!({})),
                _ => Err(business(AppError::TrackingNumberInUse(number))),
            }
        }
        Err(e) => Err(classify(e.into())),
    }
}

/// Compensation: frees the number if this order holds it.
pub async fn release_tracking_number(ctx: StepContext) -> Result<Value, Failure> {
    let id = order_id(&ctx)?;
    let number = tracking(&ctx)?;
    if ctx.deps.orders.find_by(Table::OrdersByTracking, &number).map_err(classify)? == Some(id) {
        ctx.deps
            .store
            .commit(WriteSet::new().delete(Table::OrdersByTracking, number.into_bytes()))
            .await
            .map_err(|e| classify(e.into()))?;
    }
    Ok(json!({}))
}

/// The point of no return.
pub async fn mark_shipped(ctx: StepContext) -> Result<Value, Failure> {
    let carrier = ctx.input.get("carrier").and_then(Value::as_str).map(str::to_string);
    let cmd = OrderCommand::Ship { by: ctx.saga_id, tracking_number: tracking(&ctx)?, carrier };
    ctx.deps.orders.execute(order_id(&ctx)?, cmd, &ctx.by(), Vec::new()).await.map_err(classify)?;
    Ok(json!({}))
}

/// `on_hand -= q`, `reserved -= q` for every line, keyed by the order's reservation owner:
/// deducting twice is a no-op.
pub async fn deduct_inventory(ctx: StepContext) -> Result<Value, Failure> {
    let lines: Vec<OrderLine> = field(&ctx.data, "lines")?;
    let owner = OwnerId(field(&ctx.data, "reservation_owner")?);
    for line in &lines {
        let key = ItemKey { product_id: line.product_id, variant_id: line.variant_id };
        ctx.deps.inventory.execute_item(key, InventoryCommand::Deduct { owner }, &ctx.by()).await.map_err(classify)?;
    }
    Ok(json!({}))
}
