//! Helpers and handlers used by more than one saga.

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::{classify, StepContext};
use crate::domain::ids::{ItemKey, OwnerId};
use crate::domain::inventory::InventoryCommand;
use crate::domain::order::OrderLine;
use crate::error::AppError;
use crate::saga::machine::Failure;

/// A field of the saga's input or data. Missing or malformed is a bug in an earlier step,
/// so it is not retried.
pub fn field<T: DeserializeOwned>(v: &Value, name: &str) -> Result<T, Failure> {
    serde_json::from_value(v[name].clone())
        .map_err(|e| super::business(AppError::Internal(format!("saga field {name}: {e}"))))
}

/// Whose reservations these are: the order's place-order saga, or this saga itself.
pub fn reservation_owner(ctx: &StepContext) -> OwnerId {
    match ctx.data.get("reservation_owner").and_then(|v| serde_json::from_value(v.clone()).ok()) {
        Some(owner) => OwnerId(owner),
        None => OwnerId(ctx.saga_id.0),
    }
}

/// Compensation of reserve_inventory, and step of cancel_order: releases every line's
/// reservation held by the owner. Releasing what is not held is a no-op.
pub async fn release_inventory(ctx: StepContext) -> Result<Value, Failure> {
    let lines: Vec<OrderLine> = match ctx.data.get("lines") {
        Some(_) => field(&ctx.data, "lines")?,
        None => Vec::new(),
    };
    let owner = reservation_owner(&ctx);
    for line in &lines {
        let key = ItemKey { product_id: line.product_id, variant_id: line.variant_id };
        ctx.deps.inventory.execute_item(key, InventoryCommand::Release { owner }, &ctx.by()).await.map_err(classify)?;
    }
    Ok(json!({}))
}

/// The notify_cancellation and notify_shipment steps of version 1 of cancel_order and
/// ship_order. The customer's email now follows from the OrderCancelled / OrderShipped event
/// that the saga's earlier step wrote (the notification handler reads the event log), so
/// sending it here too would send it twice: there is nothing left for the step to do.
pub async fn notified_by_the_event_log(_ctx: StepContext) -> Result<Value, Failure> {
    Ok(json!({ "notified": "by the event log" }))
}
