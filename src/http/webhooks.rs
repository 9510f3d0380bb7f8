//! `POST /webhooks/payment` and `POST /webhooks/carrier`: signature first, then the event.

use serde::Deserialize;
use serde_json::{json, Value};

use super::auth;
use super::request::Request;
use super::response::{json, Reply};
use super::spec::schemas as doc;
use super::ApiError;
use crate::operations::webhooks::{replay_view, verify_signature, Source};
use crate::startup::Shop;

async fn receive(shop: &Shop, req: &Request, source: Source) -> Reply {
    let header = req.headers.get("cartwright-signature").and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    verify_signature(shop.webhooks.secret(source), header, &req.body, now, shop.settings.webhooks.tolerance_secs)?;
    let (status, outcome) = shop.webhooks.handle(source, &req.body).await?;
    Ok(json(status, &json!({ "status": outcome })))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// Replaces the event's `data`.
    payload: Option<serde_json::Map<String, Value>>,
}

/// A `needs_review` event processed again (with corrected data), once; audited whatever its
/// outcome.
#[utoipa::path(post, path = "/admin/v1/webhooks/{source}/{id}/replay", operation_id = "admin.webhooks.replay", tag = "operators",
    security(("admin_token" = [])),
    params(
        ("source" = String, Path, description = "`payment` or `carrier`"),
        ("id" = String, Path, description = "The event id"),
    ),
    request_body(content = Option<Replay>, description = "Optional: `payload` replaces the event's `data`"),
    responses(
        (status = 200, description = "`{\"status\", \"event\"}`", body = Object),
        (status = 202, description = "Still `needs_review` after the replay", body = Object),
        (status = 404, description = "`WEBHOOK_EVENT_NOT_FOUND`"),
        (status = 409, description = "`WEBHOOK_NOT_REPLAYABLE`: not `needs_review` (already replayed)"),
    ))]
pub async fn replay(shop: &Shop, req: &Request, source: &str, id: &str) -> Reply {
    let actor = auth::admin_actor(shop, req)?;
    let source = match source {
        "payment" => Source::Payment,
        "carrier" => Source::Carrier,
        _ => return Err(ApiError::from(crate::operations::OperationError::WebhookEventNotFound)),
    };
    let body: Replay = if req.body.is_empty() { Replay::default() } else { req.json()? };
    let payload = body.payload.map(Value::Object);
    let ((status, outcome), after) = shop.webhooks.replay_audited(&actor, source, id, payload).await?;
    Ok(json(status, &json!({ "status": outcome, "event": replay_view(&after) })))
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
