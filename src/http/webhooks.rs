//! `POST /webhooks/payment` and `POST /webhooks/carrier`: signature first, then the event.

use serde_json::json;

use super::request::Request;
use super::response::json;
use super::routes::Reply;
use super::spec::schemas as doc;
use crate::services::webhooks::{verify_signature, Source};
use crate::services::Shop;

async fn receive(shop: &Shop, req: &Request, source: Source) -> Reply {
    let header = req.headers.get("cartwright-signature").and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    verify_signature(shop.webhooks.secret(source), header, &req.body, now, shop.settings.webhooks.tolerance_secs)?;
    let (status, outcome) = shop.webhooks.handle(source, &req.body).await?;
    Ok(json(status, &json!({ "status": outcome })))
}

/// A payment webhook: `payment.captured` with `{"authorization_id", "amount"}` confirms the
/// order (audited). Recorded durably before the answer; processed at most once per event id.
#[utoipa::path(post, path = "/webhooks/payment", operation_id = "webhooks.payment", tag = "webhooks",
    security(("webhook_signature" = [])),
    request_body = doc::WebhookDelivery,
    responses(
        (status = 200, description = "`processed`, or `duplicate` for a repeated event id", body = doc::WebhookOutcome),
        (status = 202, description = "`needs_review`: an amount other than the order's total, or no order for the authorization; nothing applied, an admin alert queued", body = doc::WebhookOutcome),
        (status = 401, description = "`INVALID_SIGNATURE`: bad, missing, malformed or stale signature; nothing recorded"),
        (status = 409, description = "`INVALID_STATUS_TRANSITION`: the order is not `PENDING` (a capture of a cancelled order is refunded)"),
        (status = 422, description = "`UNKNOWN_EVENT_TYPE`"),
    ))]
pub async fn payment(shop: &Shop, req: &Request) -> Reply {
    receive(shop, req, Source::Payment).await
}

/// A carrier webhook: `delivery.confirmed` with `{"tracking_number"}` marks the order
/// `DELIVERED` and queues the delivery email. Processed at most once per event id.
#[utoipa::path(post, path = "/webhooks/carrier", operation_id = "webhooks.carrier", tag = "webhooks",
    security(("webhook_signature" = [])),
    request_body = doc::WebhookDelivery,
    responses(
        (status = 200, description = "`processed`; `ignored` (the order is not `SHIPPED`); `duplicate`", body = doc::WebhookOutcome),
        (status = 202, description = "`needs_review`: an unknown tracking number", body = doc::WebhookOutcome),
        (status = 401, description = "`INVALID_SIGNATURE`: bad, missing, malformed or stale signature; nothing recorded"),
        (status = 422, description = "`UNKNOWN_EVENT_TYPE`"),
    ))]
pub async fn carrier(shop: &Shop, req: &Request) -> Reply {
    receive(shop, req, Source::Carrier).await
}
