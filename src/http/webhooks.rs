//! `POST /webhooks/payment` and `POST /webhooks/carrier`: signature first, then the event.

use serde::Deserialize;
use serde_json::{json, Value};

use super::auth;
use super::request::Request;
use super::response::json;
use super::routes::Reply;
use crate::error::AppError;
use crate::services::webhooks::{verify_signature, Source};
use crate::services::{audit, Shop};
use crate::store::WebhookEvent;

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
    let replayed = shop.webhooks.replay(source, id, body.payload.map(Value::Object)).await?;
    let view = |w: &WebhookEvent| {
        let data = serde_json::from_str::<Value>(&w.body).map(|b| b["data"].clone()).unwrap_or(Value::Null);
        json!({ "status": w.status, "detail": w.detail, "data": data })
    };
    let mut after = view(&replayed.after);
    after["result"] = match &replayed.outcome {
        Ok((_, status)) => json!(status),
        Err(e) => json!({ "error": e.code() }),
    };
    let entity = format!("{}/{id}", source.name());
    let row = audit::entry(&actor, "webhook.replay", ("webhook_event", &entity), view(&replayed.before), after);
    audit::record(&shop.store, row).await?;
    let (status, outcome) = replayed.outcome?;
    Ok(json(status, &json!({ "status": outcome, "event": view(&replayed.after) })))
}
