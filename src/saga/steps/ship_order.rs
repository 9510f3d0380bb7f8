//! SEQ-ORDER-003 steps: validate, claim the tracking number (released if the shipment
//! fails before it is marked), mark shipped, deduct the reserved stock. The shipping email
//! follows from the OrderShipped event (the notification handler, SEQ-NOTIF-001).

use serde::Serialize;

use super::{business, classify, required, NoOutput, StepContext};
use crate::domain::ids::{CustomerId, ItemKey, OwnerId, SagaId};
use crate::domain::inventory::InventoryCommand;
use crate::domain::order::{OrderCommand, OrderError, OrderLine, OrderStatus};
use crate::saga::machine::Failure;
use crate::saga::shapes::{ShipOrderData, ShipOrderInput};
use crate::services::ServiceError;
use crate::store::{keys, StoreError, WriteSet};

/// validate_shipment's output: fields of `ShipOrderData`.
#[derive(Serialize)]
pub struct ShipmentChecked {
    lines: Vec<OrderLine>,
    reservation_owner: SagaId,
    customer_id: CustomerId,
}

fn input(ctx: &StepContext) -> Result<ShipOrderInput, Failure> {
    ctx.input()
}

pub async fn validate_shipment(ctx: StepContext) -> Result<ShipmentChecked, Failure> {
    let id = input(&ctx)?.order_id;
    let order =
        ctx.deps.orders.get(id).await.map_err(classify)?.ok_or_else(|| business(ServiceError::OrderNotFound))?;
    if order.status != OrderStatus::Confirmed && order.shipped_by != Some(ctx.saga_id) {
        return Err(business(OrderError::NotShippable(order.status.as_str()).into()));
    }
    Ok(ShipmentChecked { lines: order.items, reservation_owner: order.saga_id, customer_id: order.customer_id })
}

/// A tracking number names one order: claimed with a conditional put.
pub async fn claim_tracking_number(ctx: StepContext) -> Result<NoOutput, Failure> {
    let ShipOrderInput { order_id: id, tracking_number: number, .. } = input(&ctx)?;
    let ws = WriteSet::new().save_new(keys::order_by_tracking(&number), &id.0, "tracking_number");
    match ctx.deps.store.commit(ws).await {
        Ok(_) => Ok(NoOutput {}),
        Err(StoreError::Conflict(_)) => {
            match ctx.deps.orders.find_by(&keys::order_by_tracking(&number)).map_err(classify)? {
                Some(owner) if owner == id => Ok(NoOutput {}),
                _ => Err(business(ServiceError::TrackingNumberInUse(number))),
            }
        }
        Err(e) => Err(classify(e.into())),
    }
}

/// Compensation: frees the number if this order holds it.
pub async fn release_tracking_number(ctx: StepContext) -> Result<NoOutput, Failure> {
    let ShipOrderInput { order_id: id, tracking_number: number, .. } = input(&ctx)?;
    let claim = keys::order_by_tracking(&number);
    if ctx.deps.orders.find_by(&claim).map_err(classify)? == Some(id) {
        ctx.deps.store.commit(WriteSet::new().remove(claim)).await.map_err(|e| classify(e.into()))?;
    }
    Ok(NoOutput {})
}

/// The point of no return.
pub async fn mark_shipped(ctx: StepContext) -> Result<NoOutput, Failure> {
    let ShipOrderInput { order_id, tracking_number, carrier, .. } = input(&ctx)?;
    let cmd = OrderCommand::Ship { by: ctx.saga_id, tracking_number, carrier };
    ctx.deps.orders.execute(order_id, cmd, &ctx.by(), Vec::new()).await.map_err(classify)?;
    Ok(NoOutput {})
}

/// `on_hand -= q`, `reserved -= q` for every line, keyed by the order's reservation owner:
/// deducting twice is a no-op.
pub async fn deduct_inventory(ctx: StepContext) -> Result<NoOutput, Failure> {
    let data: ShipOrderData = ctx.data()?;
    let lines = required(data.lines, "lines")?;
    let owner = OwnerId(required(data.reservation_owner, "reservation_owner")?.0);
    for line in &lines {
        let key = ItemKey { product_id: line.product_id, variant_id: line.variant_id };
        ctx.deps.inventory.execute_item(key, InventoryCommand::Deduct { owner }, &ctx.by()).await.map_err(classify)?;
    }
    Ok(NoOutput {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_shipment_writes_the_fields_of_the_data_shape() {
        let checked =
            ShipmentChecked { lines: Vec::new(), reservation_owner: SagaId::new(), customer_id: CustomerId::new() };
        let data: ShipOrderData = serde_json::from_value(serde_json::to_value(checked).unwrap()).unwrap();
        let json = serde_json::to_value(&data).unwrap();
        assert!(json.as_object().unwrap().values().all(|v| !v.is_null()), "{json}");
    }
}
