//! `POST /webhooks/payment` and `POST /webhooks/carrier`: signature first, then the event.

use serde_json::json;

use super::request::Request;
use super::response::json;
use super::routes::Reply;
use crate::services::webhooks::{verify_signature, Source};
use crate::services::Shop;

pub async fn receive(shop: &Shop, req: &Request, source: Source) -> Reply {
    let header = req.headers.get("cartwright-signature").and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    verify_signature(shop.webhooks.secret(source), header, &req.body, now, shop.settings.webhooks.tolerance_secs)?;
    let (status, outcome) = shop.webhooks.handle(source, &req.body).await?;
    Ok(json(status, &json!({ "status": outcome })))
}
