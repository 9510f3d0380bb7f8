//! SEQ-ORDER-005 steps: validate, cancel the order, (release inventory: shared), void or
//! refund the payment, tell the customer.

use serde_json::{json, Value};

use super::shared::field;
use super::{business, classify, StepContext};
use crate::domain::ids::{CustomerId, OrderId};
use crate::domain::order::{OrderCommand, PaymentStatus, RefundStatus};
use crate::error::AppError;
use crate::gateways::payment::GatewayError;
use crate::saga::machine::Failure;

fn order_id(ctx: &StepContext) -> Result<OrderId, Failure> {
    field::<uuid::Uuid>(&ctx.input, "order_id").map(OrderId)
}

/// Set when the engine expires an unpaid order: a capture that got there first wins.
fn only_if_pending(ctx: &StepContext) -> bool {
    ctx.input.get("only_if_pending").and_then(Value::as_bool).unwrap_or(false)
}

pub async fn validate_cancellation(ctx: StepContext) -> Result<Value, Failure> {
    let id = order_id(&ctx)?;
    let requester: Option<uuid::Uuid> =
        ctx.input.get("customer_id").and_then(|v| serde_json::from_value(v.clone()).ok());
    let order = ctx.deps.orders.get(id).await.map_err(classify)?;
    let order = order
        .filter(|o| requester.is_none_or(|c| o.customer_id == CustomerId(c)))
        .ok_or_else(|| business(AppError::OrderNotFound))?;
    order.cancellable(only_if_pending(&ctx)).map_err(|e| business(e.into()))?;
    Ok(json!({
        "reservation_owner": order.saga_id,
        "lines": order.items,
        "customer_id": order.customer_id,
        "total": order.total,
    }))
}

/// The point of no return: from here on the order is cancelled whatever happens.
pub async fn cancel_order(ctx: StepContext) -> Result<Value, Failure> {
    let reason = ctx.input.get("reason").and_then(Value::as_str).unwrap_or("customer_request").to_string();
    let cmd = OrderCommand::Cancel { by: ctx.saga_id, reason, only_if_pending: only_if_pending(&ctx) };
    ctx.deps.orders.execute(order_id(&ctx)?, cmd, &ctx.by(), Vec::new()).await.map_err(classify)?;
    Ok(json!({}))
}

/// Voids an authorization that was never captured, refunds a captured one (also the second
/// half of place_order's cancel_created_order). When the gateway
/// keeps failing, the order's refund becomes PENDING_MANUAL and the saga parks for an operator.
pub async fn refund_payment(ctx: StepContext) -> Result<Value, Failure> {
    let id = order_id(&ctx)?;
    let order = ctx.deps.orders.get(id).await.map_err(classify)?.ok_or_else(|| business(AppError::OrderNotFound))?;
    let key = ctx.key("refund_payment");
    let (result, done) = match order.payment_status {
        PaymentStatus::Captured => (
            ctx.deps.gateway.refund(&order.authorization_id, order.total, &key).await.map(drop),
            RefundStatus::Refunded,
        ),
        PaymentStatus::Authorized => (ctx.deps.gateway.void(&order.authorization_id, &key).await, RefundStatus::Voided),
        PaymentStatus::Voided | PaymentStatus::Refunded => {
            return Ok(json!({ "refund": order.payment_status.as_str() }))
        }
    };
    let (status, failure) = match result {
        Ok(()) => (done, None),
        Err(GatewayError::Declined(reason)) => {
            (RefundStatus::PendingManual, Some(business(AppError::PaymentFailed { reason })))
        }
        Err(GatewayError::Transient(m)) if ctx.is_last_attempt() => {
            (RefundStatus::PendingManual, Some(super::transient(m)))
        }
        Err(GatewayError::Transient(m)) => return Err(super::transient(m)),
    };
    ctx.deps.orders.execute(id, OrderCommand::SetRefund { status }, &ctx.by(), Vec::new()).await.map_err(classify)?;
    match failure {
        Some(f) => {
            tracing::error!(order_id = %id, "refund failed for good: PENDING_MANUAL, saga parked for an operator");
            Err(f)
        }
        None => Ok(json!({ "refund": status.as_str() })),
    }
}
