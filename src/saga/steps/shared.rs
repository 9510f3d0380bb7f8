//! Helpers and handlers used by more than one saga.

use serde::Serialize;

use super::{classify, NoOutput, StepContext};
use crate::domain::ids::{ItemKey, OwnerId};
use crate::domain::inventory::InventoryCommand;
use crate::saga::machine::Failure;
use crate::saga::shapes::ReservedLines;

/// Compensation of reserve_inventory, and step of cancel_order: releases every line's
/// reservation held by the owner (the order's place_order saga for a cancellation, this
/// saga itself for a checkout). Releasing what is not held is a no-op; no lines (the saga
/// failed before loading them) is nothing to release.
pub async fn release_inventory(ctx: StepContext) -> Result<NoOutput, Failure> {
    let reserved: ReservedLines = ctx.view()?;
    let owner = OwnerId(reserved.reservation_owner.unwrap_or(ctx.saga_id).0);
    for line in reserved.lines.unwrap_or_default() {
        let key = ItemKey { product_id: line.product_id, variant_id: line.variant_id };
        ctx.deps.inventory.execute_item(key, InventoryCommand::Release { owner }, &ctx.by()).await.map_err(classify)?;
    }
    Ok(NoOutput {})
}

#[derive(Serialize)]
pub struct Notified {
    notified: &'static str,
}

/// The notify_cancellation and notify_shipment steps of version 1 of cancel_order and
/// ship_order. The customer's email now follows from the OrderCancelled / OrderShipped event
/// that the saga's earlier step wrote (the notification handler reads the event log), so
/// sending it here too would send it twice: there is nothing left for the step to do.
pub async fn notified_by_the_event_log(_ctx: StepContext) -> Result<Notified, Failure> {
    Ok(Notified { notified: "by the event log" })
}
