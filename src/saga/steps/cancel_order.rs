//! SEQ-ORDER-005 steps: validate, cancel the order, (release inventory: shared), void or
//! refund the payment. The customer's email follows from the OrderCancelled event (the
//! notification handler).

use serde::Serialize;

use super::{business, classify, NoOutput, StepContext};
use crate::domain::ids::{CustomerId, OrderId, SagaId};
use crate::domain::money::Money;
use crate::domain::order::{OrderCommand, OrderLine, PaymentStatus, RefundStatus};
use crate::gateways::payment::GatewayError;
use crate::saga::machine::Failure;
use crate::saga::shapes::CancelOrderInput;
use crate::services::ServiceError;

/// validate_cancellation's output: fields of `CancelOrderData`.
#[derive(Serialize)]
pub struct CancellationChecked {
    reservation_owner: SagaId,
    lines: Vec<OrderLine>,
    customer_id: CustomerId,
    total: Money,
}

/// refund_payment's output (`refund` in `CancelOrderData`); absent when there was no
/// order to settle.
#[derive(Serialize)]
pub struct RefundOutcome {
    #[serde(skip_serializing_if = "Option::is_none")]
    refund: Option<&'static str>,
}

impl RefundOutcome {
    pub fn nothing() -> RefundOutcome {
        RefundOutcome { refund: None }
    }
}

fn input(ctx: &StepContext) -> Result<CancelOrderInput, Failure> {
    ctx.input()
}

pub async fn validate_cancellation(ctx: StepContext) -> Result<CancellationChecked, Failure> {
    let input = input(&ctx)?;
    let order = ctx.deps.orders.get(input.order_id).await.map_err(classify)?;
    let order = order
        .filter(|o| input.customer_id.is_none_or(|c| o.customer_id == c))
        .ok_or_else(|| business(ServiceError::OrderNotFound))?;
    order.cancellable(input.only_if_pending).map_err(|e| business(e.into()))?;
    Ok(CancellationChecked {
        reservation_owner: order.saga_id,
        lines: order.items,
        customer_id: order.customer_id,
        total: order.total,
    })
}

/// The point of no return: from here on the order is cancelled whatever happens.
pub async fn cancel_order(ctx: StepContext) -> Result<NoOutput, Failure> {
    let input = input(&ctx)?;
    let reason = input.reason.unwrap_or_else(|| "customer_request".to_string());
    let cmd = OrderCommand::Cancel { by: ctx.saga_id, reason, only_if_pending: input.only_if_pending };
    ctx.deps.orders.execute(input.order_id, cmd, &ctx.by(), Vec::new()).await.map_err(classify)?;
    Ok(NoOutput {})
}

pub async fn refund_payment(ctx: StepContext) -> Result<RefundOutcome, Failure> {
    let order_id = input(&ctx)?.order_id;
    refund_order_payment(&ctx, order_id).await
}

/// Voids an authorization that was never captured, refunds a captured one (also the second
/// half of place_order's cancel_created_order). When the gateway
/// keeps failing, the order's refund becomes PENDING_MANUAL and the saga parks for an operator.
pub async fn refund_order_payment(ctx: &StepContext, id: OrderId) -> Result<RefundOutcome, Failure> {
    let order =
        ctx.deps.orders.get(id).await.map_err(classify)?.ok_or_else(|| business(ServiceError::OrderNotFound))?;
    let key = ctx.key("refund_payment");
    let (result, done) = match order.payment_status {
        PaymentStatus::Captured => (
            ctx.deps.gateway.refund(&order.authorization_id, order.total, &key).await.map(drop),
            RefundStatus::Refunded,
        ),
        PaymentStatus::Authorized => (ctx.deps.gateway.void(&order.authorization_id, &key).await, RefundStatus::Voided),
        PaymentStatus::Voided | PaymentStatus::Refunded => {
            return Ok(RefundOutcome { refund: Some(order.payment_status.as_str()) })
        }
    };
    let (status, failure) = match result {
        Ok(()) => (done, None),
        Err(GatewayError::Declined(reason)) => {
            (RefundStatus::PendingManual, Some(business(ServiceError::PaymentFailed { reason })))
        }
        Err(GatewayError::Transient(m) | GatewayError::Uncertain(m)) if ctx.is_last_attempt() => {
            (RefundStatus::PendingManual, Some(super::transient(m)))
        }
        Err(GatewayError::Transient(m) | GatewayError::Uncertain(m)) => return Err(super::transient(m)),
    };
    ctx.deps.orders.execute(id, OrderCommand::SetRefund { status }, &ctx.by(), Vec::new()).await.map_err(classify)?;
    match failure {
        Some(f) => {
            tracing::error!(order_id = %id, "refund failed for good: PENDING_MANUAL, saga parked for an operator");
            Err(f)
        }
        None => Ok(RefundOutcome { refund: Some(status.as_str()) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saga::shapes::CancelOrderData;

    #[test]
    fn the_steps_outputs_are_the_fields_of_the_data_shape() {
        let checked = CancellationChecked {
            reservation_owner: SagaId::new(),
            lines: Vec::new(),
            customer_id: CustomerId::new(),
            total: Money::ZERO,
        };
        let mut data = serde_json::to_value(checked).unwrap();
        let refund = serde_json::to_value(RefundOutcome { refund: Some("VOIDED") }).unwrap();
        data.as_object_mut().unwrap().extend(refund.as_object().unwrap().clone());
        let data: CancelOrderData = serde_json::from_value(data).unwrap();
        let json = serde_json::to_value(&data).unwrap();
        assert!(json.as_object().unwrap().values().all(|v| !v.is_null()), "{json}");
        assert_eq!(serde_json::to_value(RefundOutcome::nothing()).unwrap(), serde_json::json!({}));
    }
}
