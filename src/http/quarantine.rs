//! Operators: quarantine (pause one cart, order or product's stock; list; release).

use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::auth;
use super::request::Request;
use super::response::{json, Reply};
use super::ApiError;
use crate::domain::quarantine::{self, KeyKind, QuarantineEntry, QuarantineKey};
use crate::startup::Shop;

#[derive(Deserialize, ToSchema)]
pub struct Pause {
    reason: String,
}

/// The key a `{kind}/{id}` path names; a bad kind or id is 400 naming it.
fn key(kind: &str, id: &str) -> Result<QuarantineKey, ApiError> {
    let kind =
        KeyKind::parse(kind).ok_or_else(|| ApiError::invalid("kind", "kind must be cart, order or inventory"))?;
    let id = uuid::Uuid::parse_str(id).map_err(|_| {
        ApiError::invalid("id", "id must be a UUID (a customer id for a cart, an order id, a product id)")
    })?;
    Ok(QuarantineKey::new(kind, id))
}

/// Every paused key: kind, key, who paused it, when and why.
#[utoipa::path(get, path = "/admin/v1/quarantine", operation_id = "admin.quarantine.list", tag = "operators",
    security(("admin_token" = [])),
    responses((status = 200, description = "`{\"keys\": [...]}`", body = Object)))]
pub async fn list(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    let keys: Vec<_> = shop.quarantine.list().await?.iter().map(QuarantineEntry::to_json).collect();
    Ok(json(200, &json!({ "keys": keys })))
}

/// Pause a key: commands to its actor answer `423 KEY_QUARANTINED`, sagas reaching it park
/// `PAUSED`. Idempotent.
#[utoipa::path(put, path = "/admin/v1/quarantine/{kind}/{id}", operation_id = "admin.quarantine.pause", tag = "operators",
    security(("admin_token" = [])),
    params(
        ("kind" = String, Path, description = "`cart`, `order` or `inventory`"),
        ("id" = uuid::Uuid, Path, description = "The customer id (cart), order id or product id"),
    ),
    request_body = Pause,
    responses(
        (status = 200, description = "The paused key, with `changed`", body = Object),
        (status = 400, description = "`INVALID_REQUEST`: a kind, id, reason or `X-Operator` that is not valid"),
    ))]
pub async fn pause(shop: &Shop, req: &Request, kind: &str, id: &str) -> Reply {
    let by = auth::admin_actor(shop, req)?;
    let key = key(kind, id)?;
    let body: Pause = req.json()?;
    let reason = quarantine::reason(&body.reason).map_err(|m| ApiError::invalid("reason", m))?;
    let (entry, changed) = shop.quarantine.pause(key, reason, &by).await?;
    let mut out = entry.to_json();
    out["changed"] = json!(changed);
    Ok(json(200, &out))
}

/// Release a key (no error if it was not paused) and resume the sagas parked on it.
#[utoipa::path(delete, path = "/admin/v1/quarantine/{kind}/{id}", operation_id = "admin.quarantine.release", tag = "operators",
    security(("admin_token" = [])),
    params(
        ("kind" = String, Path, description = "`cart`, `order` or `inventory`"),
        ("id" = uuid::Uuid, Path, description = "The customer id (cart), order id or product id"),
    ),
    responses(
        (status = 200, description = "`{\"kind\", \"key\", \"released\", \"resumed_sagas\"}`", body = Object),
        (status = 400, description = "`INVALID_REQUEST`: a kind, id or `X-Operator` that is not valid"),
    ))]
pub async fn release(shop: &Shop, req: &Request, kind: &str, id: &str) -> Reply {
    let by = auth::admin_actor(shop, req)?;
    let key = key(kind, id)?;
    let released = shop.quarantine.release(key, &by).await?;
    Ok(json(
        200,
        &json!({
            "kind": key.kind.as_str(),
            "key": key.id,
            "released": released.entry.is_some(),
            "resumed_sagas": released.resumed_sagas,
        }),
    ))
}
