//! Operators: inventory (SEQ-INV-001/002), and the event log, audit trail and outbox.

use serde::Deserialize;
use serde_json::Value;

use super::auth;
use super::request::{path_id, Request};
use super::response::json;
use super::routes::Reply;
use crate::domain::ids::{NotificationId, OwnerId, ProductId, VariantId};
use crate::domain::quantity::Quantity;
use crate::error::AppError;
use crate::services::logs::{AuditFilter, MAX_PAGE};
use crate::services::Shop;

#[derive(Deserialize)]
struct Restock {
    quantity: Value,
    variant_id: Option<VariantId>,
}

#[derive(Deserialize)]
struct Reserve {
    owner_id: OwnerId,
    quantity: Value,
    variant_id: Option<VariantId>,
}

fn product_id(id: &str) -> Result<ProductId, AppError> {
    path_id(id, AppError::ProductNotFound)
}

pub async fn inventory(shop: &Shop, req: &Request, id: &str) -> Reply {
    auth::admin(shop, req)?;
    Ok(json(200, &shop.inventory.stock(product_id(id)?).await?))
}

pub async fn restock(shop: &Shop, req: &Request, id: &str) -> Reply {
    let by = auth::admin_actor(shop, req)?;
    let id = product_id(id)?;
    let body: Restock = req.json()?;
    let quantity = Quantity::from_json(&body.quantity).map_err(AppError::InvalidQuantity)?;
    let stock = shop.inventory.restock(id, body.variant_id, quantity, &by).await?;
    tracing::info!(product_id = %id, quantity = quantity.get(), "restocked");
    Ok(json(200, &stock))
}

/// An operator's hold on stock, keyed by owner: repeating it is a no-op.
pub async fn reserve(shop: &Shop, req: &Request, id: &str) -> Reply {
    let by = auth::admin_actor(shop, req)?;
    let id = product_id(id)?;
    let body: Reserve = req.json()?;
    let quantity = Quantity::from_json(&body.quantity).map_err(AppError::InvalidQuantity)?;
    Ok(json(200, &shop.inventory.reserve(id, body.variant_id, body.owner_id, quantity, &by).await?))
}

/// Releases an owner's hold; releasing an unknown owner is a no-op.
pub async fn release(shop: &Shop, req: &Request, id: &str, owner: &str) -> Reply {
    let by = auth::admin_actor(shop, req)?;
    let id = product_id(id)?;
    let owner: OwnerId = owner.parse().map_err(|_| AppError::invalid("owner_id", "owner id must be a UUID"))?;
    let variant_id = req.query_param::<VariantId>("variant_id")?;
    Ok(json(200, &shop.inventory.release(id, variant_id, owner, &by).await?))
}

pub async fn events(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    let after = req.query_param::<u64>("after")?.unwrap_or(0);
    Ok(json(200, &shop.logs.events(after, req.limit(100, MAX_PAGE)?)?))
}

pub async fn audit(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    let get = |k: &str| req.query.get(k).map(String::as_str).filter(|v| !v.is_empty());
    for field in ["actor", "action"] {
        if get(field).is_some_and(|v| v.chars().count() > 200) {
            return Err(AppError::invalid(field, format!("{field} must be at most 200 characters")));
        }
    }
    let filter = AuditFilter {
        entity_type: get("entity_type"),
        entity_id: get("entity_id"),
        actor: get("actor"),
        action: get("action"),
    };
    let cursor = req.query_param::<u64>("cursor")?;
    Ok(json(200, &shop.logs.audit(&filter, cursor, req.limit(100, MAX_PAGE)?)?))
}

/// Webhook events, oldest first: `?source=payment|carrier&status=processed|needs_review|ignored|rejected&cursor=`.
pub async fn webhooks(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    let source = req.query.get("source").map(String::as_str);
    let status = req.query.get("status").map(String::as_str);
    let cursor = req.query.get("cursor").filter(|c| !c.is_empty()).map(String::as_str);
    Ok(json(200, &shop.logs.webhooks(source, status, cursor, req.limit(100, MAX_PAGE)?)?))
}

pub async fn notifications(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    let status = req.query.get("status").map(String::as_str);
    let kind = req.query.get("kind").map(String::as_str);
    let cursor = req.query_param::<NotificationId>("cursor")?;
    Ok(json(200, &shop.logs.notifications(status, kind, cursor, req.limit(100, MAX_PAGE)?)?))
}

/// What is in memory right now: passivation keeps this bounded by the active set.
pub async fn stats(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    Ok(json(200, &serde_json::json!({ "actors": shop.active_actors() })))
}
