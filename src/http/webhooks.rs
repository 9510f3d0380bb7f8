//! `POST /webhooks/payment` and `POST /webhooks/carrier`: signature first, then the event.

use serde::Deserialize;
use serde_json::{json, Value};

use super::auth;
use super::request::Request;
use super::response::json;
use super::routes::Reply;
use crate::error::AppError;
use crate::services::webhooks::{replay_view, verify_signature, Source};
use crate::services::Shop;

pub async fn receive(shop: &Shop, req: &Request, source: Source) -> Reply {
    let header = req.headers.get("cartwright-signature").and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    verify_signature(shop.webhooks.secret(source), header, &req.body, now, shop.settings.webhooks.tolerance_secs)?;
    let (status, outcome) = shop.webhooks.handle(source, &req.body).await?;
    Ok(json(status, &json!({ "status": outcome })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Replay {
    /// Replaces the event's `data`.
    payload: Option<serde_json::Map<String, Value>>,
}

/// `POST /admin/v1/webhooks/{source}/{id}/replay` `{"payload"?: {...}}`: a `needs_review`
/// event processed again (with corrected data), audited whatever its outcome.
pub async fn replay(shop: &Shop, req: &Request, source: &str, id: &str) -> Reply {
    let actor = auth::admin_actor(shop, req)?;
    let source = match source {
        "payment" => Source::Payment,
        "carrier" => Source::Carrier,
        _ => return Err(AppError::WebhookEventNotFound),
    };
    let body: Replay = if req.body.is_empty() { Replay::default() } else { req.json()? };
    let payload = body.payload.map(Value::Object);
    let ((status, outcome), after) = shop.webhooks.replay_audited(&actor, source, id, payload).await?;
    Ok(json(status, &json!({ "status": outcome, "event": replay_view(&after) })))
}
