//! The refund_capture saga's one step: a payment was captured for an order that is already
//! cancelled or expired, so the money goes back. The order records the outcome: refund
//! REFUNDED, or PENDING_MANUAL with an admin alert when the gateway refuses or keeps failing.

use serde::Serialize;
use serde_json::json;

use super::{business, classify, StepContext};
use crate::domain::ids::OrderId;
use crate::domain::order::{OrderCommand, RefundStatus};
use crate::gateways::payment::GatewayError;
use crate::saga::machine::Failure;
use crate::saga::shapes::RefundCaptureInput;
use crate::services::ServiceError;
use crate::store::{keys, Notification, StoreError, WriteSet};

/// refund_captured_payment's output (`RefundCaptureData`).
#[derive(Serialize)]
pub struct CaptureRefunded {
    refund_id: String,
}

pub async fn refund_captured_payment(ctx: StepContext) -> Result<CaptureRefunded, Failure> {
    let RefundCaptureInput { order_id, authorization_id, amount, event_id } = ctx.input()?;
    let key = ctx.key("refund_captured_payment");
    let failure = match ctx.deps.gateway.refund(&authorization_id, amount, &key).await {
        Ok(refund_id) => {
            set_refund(&ctx, order_id, RefundStatus::Refunded).await?;
            tracing::info!(%order_id, %authorization_id, %amount, "capture of a cancelled order refunded");
            return Ok(CaptureRefunded { refund_id });
        }
        Err(GatewayError::Declined(reason)) => business(ServiceError::PaymentFailed { reason }),
        Err(GatewayError::Transient(m) | GatewayError::Uncertain(m)) if ctx.is_last_attempt() => super::transient(m),
        Err(GatewayError::Transient(m) | GatewayError::Uncertain(m)) => return Err(super::transient(m)),
    };
    // The saga parks STUCK after this: the order says so and an operator is told.
    tracing::error!(%order_id, %authorization_id, %amount, "refund of a capture failed for good; PENDING_MANUAL, admin alerted");
    let reason = match &failure {
        Failure::Business(e) => e.message.clone(),
        Failure::Transient { message, .. } | Failure::Quarantined { message, .. } => message.clone(),
    };
    let alert = Notification::queued(
        "refund_failed_alert",
        &ctx.deps.settings.notifications.admin_email,
        format!("Refund of a captured payment failed: order {order_id}"),
        json!({
            "order_id": order_id,
            "authorization_id": authorization_id,
            "amount": amount,
            "saga_id": ctx.saga_id,
            "event_id": event_id,
            "reason": reason,
        }),
    );
    set_refund(&ctx, order_id, RefundStatus::PendingManual).await?;
    // Once per saga (a marker keyed by it): a resumed saga that fails again does not alert twice.
    let marker = keys::refund_failed_alert(ctx.saga_id);
    let ws = WriteSet::new().save_new(marker, &ctx.saga_id.0, "refund_alert").notify(alert);
    match ctx.deps.store.commit(ws).await {
        Ok(_) | Err(StoreError::Conflict(_)) => Err(failure),
        Err(e) => Err(classify(e.into())),
    }
}

/// Records the refund's state on the order (a repeat changes nothing).
async fn set_refund(ctx: &StepContext, order_id: OrderId, status: RefundStatus) -> Result<(), Failure> {
    ctx.deps
        .orders
        .execute(order_id, OrderCommand::SetRefund { status }, &ctx.by(), Vec::new())
        .await
        .map_err(classify)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saga::shapes::RefundCaptureData;

    #[test]
    fn the_steps_output_is_the_data_shape() {
        let output = serde_json::to_value(CaptureRefunded { refund_id: "ref_1".into() }).unwrap();
        let data: RefundCaptureData = serde_json::from_value(output).unwrap();
        assert_eq!(data.refund_id.as_deref(), Some("ref_1"));
    }
}
