//! Operators: quarantine (pause one cart, order or product's stock; list; release).

use serde::Deserialize;
use serde_json::json;

use super::auth;
use super::request::Request;
use super::response::json;
use super::routes::Reply;
use crate::domain::quarantine::{self, KeyKind, QuarantineEntry, QuarantineKey};
use crate::domain::text::{is_visible_text, Layout};
use crate::error::AppError;
use crate::services::Shop;

#[derive(Deserialize)]
struct Pause {
    reason: String,
}

/// Longest `X-Operator` name, in characters.
const MAX_OPERATOR_CHARS: usize = 100;

/// Who does it, for the audit row and the list: the credential's role, plus the name the
/// optional `X-Operator` header gives (`admin:ada`). The name is the caller's word, not
/// authenticated: it tells operators sharing one token apart, nothing more.
fn operator(shop: &Shop, req: &Request) -> Result<String, AppError> {
    let role = auth::admin(shop, req)?.name();
    let Some(raw) = req.headers.get("x-operator") else { return Ok(role.to_string()) };
    let invalid =
        || AppError::invalid("X-Operator", format!("X-Operator must be 1 to {MAX_OPERATOR_CHARS} visible characters"));
    let name = raw.to_str().map_err(|_| invalid())?.trim();
    if name.is_empty() || name.chars().count() > MAX_OPERATOR_CHARS || !is_visible_text(name, Layout::SingleLine) {
        return Err(invalid());
    }
    Ok(format!("{role}:{name}"))
}

/// The key a `{kind}/{id}` path names; a bad kind or id is 400 naming it.
fn key(kind: &str, id: &str) -> Result<QuarantineKey, AppError> {
    let kind =
        KeyKind::parse(kind).ok_or_else(|| AppError::invalid("kind", "kind must be cart, order or inventory"))?;
    let id = uuid::Uuid::parse_str(id).map_err(|_| {
        AppError::invalid("id", "id must be a UUID (a customer id for a cart, an order id, a product id)")
    })?;
    Ok(QuarantineKey::new(kind, id))
}

/// `GET /admin/v1/quarantine`.
pub async fn list(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    let keys: Vec<_> = shop.quarantine.list().await?.iter().map(QuarantineEntry::to_json).collect();
    Ok(json(200, &json!({ "keys": keys })))
}

/// `PUT /admin/v1/quarantine/{kind}/{id}` `{"reason"}`: idempotent.
pub async fn pause(shop: &Shop, req: &Request, kind: &str, id: &str) -> Reply {
    let by = operator(shop, req)?;
    let key = key(kind, id)?;
    let body: Pause = req.json()?;
    let reason = quarantine::reason(&body.reason).map_err(|m| AppError::invalid("reason", m))?;
    let (entry, changed) = shop.quarantine.pause(key, reason, &by).await?;
    let mut out = entry.to_json();
    out["changed"] = json!(changed);
    Ok(json(200, &out))
}

/// `DELETE /admin/v1/quarantine/{kind}/{id}`: releases the key (no error if it was not
/// paused) and resumes the sagas parked on it.
pub async fn release(shop: &Shop, req: &Request, kind: &str, id: &str) -> Reply {
    let by = operator(shop, req)?;
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
