//! Operators: inventory (SEQ-INV-001/002), and the event log, audit trail and outbox.

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::auth;
use super::request::{path_id, Request};
use super::response::{json, Reply};
use super::spec::schemas as doc;
use super::ApiError;
use crate::domain::ids::{NotificationId, OwnerId, ProductId, VariantId};
use crate::domain::quantity::Quantity;
use crate::services::catalog::CatalogError;
use crate::services::logs::{AuditFilter, MAX_PAGE};
use crate::services::ServiceError;
use crate::startup::Shop;

#[derive(Deserialize, ToSchema)]
struct Restock {
    #[schema(value_type = i64, minimum = 1, maximum = 1_000_000_000)]
    quantity: Value,
    /// Required for a product with variants.
    #[schema(value_type = Option<uuid::Uuid>)]
    variant_id: Option<VariantId>,
}

#[derive(Deserialize, ToSchema)]
struct Reserve {
    /// Whose hold this is: one hold per owner and item; repeating it is a no-op.
    #[schema(value_type = uuid::Uuid)]
    owner_id: OwnerId,
    #[schema(value_type = i64, minimum = 1, maximum = 1_000_000_000)]
    quantity: Value,
    #[schema(value_type = Option<uuid::Uuid>)]
    variant_id: Option<VariantId>,
}

fn product_id(id: &str) -> Result<ProductId, ApiError> {
    path_id(id, ApiError::from(CatalogError::ProductNotFound))
}

/// A product's stock, per item.
#[utoipa::path(get, path = "/admin/v1/inventory/{id}", operation_id = "admin.inventory.get", tag = "inventory",
    security(("admin_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "Product id")),
    responses(
        (status = 200, description = "Stock", body = doc::Stock),
        (status = 404, description = "`PRODUCT_NOT_FOUND`"),
    ))]
pub async fn inventory(shop: &Shop, req: &Request, id: &str) -> Reply {
    auth::admin(shop, req)?;
    Ok(json(200, &shop.inventory.stock(product_id(id)?).await?))
}

/// Add stock (audited).
#[utoipa::path(post, path = "/admin/v1/inventory/{id}/restock", operation_id = "admin.inventory.restock", tag = "inventory",
    security(("admin_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "Product id")),
    request_body = Restock,
    responses(
        (status = 200, description = "Stock", body = doc::Stock),
        (status = 404, description = "`PRODUCT_NOT_FOUND`, `VARIANT_NOT_FOUND`"),
        (status = 422, description = "`INVALID_QUANTITY` (also past the stock limit), `VARIANT_REQUIRED`"),
    ))]
pub async fn restock(shop: &Shop, req: &Request, id: &str) -> Reply {
    let by = auth::admin_actor(shop, req)?;
    let id = product_id(id)?;
    let body: Restock = req.json()?;
    let quantity = Quantity::from_json(&body.quantity).map_err(ServiceError::InvalidQuantity)?;
    let stock = shop.inventory.restock(id, body.variant_id, quantity, &by).await?;
    tracing::info!(product_id = %id, quantity = quantity.get(), "restocked");
    Ok(json(200, &stock))
}

/// An operator's hold on stock, keyed by owner: repeating it is a no-op.
#[utoipa::path(post, path = "/admin/v1/inventory/{id}/reservations", operation_id = "admin.inventory.reserve", tag = "inventory",
    security(("admin_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "Product id")),
    request_body = Reserve,
    responses(
        (status = 200, description = "Stock", body = doc::Stock),
        (status = 404, description = "`PRODUCT_NOT_FOUND`, `VARIANT_NOT_FOUND`"),
        (status = 409, description = "`INSUFFICIENT_STOCK` with `details.items`; `RESERVATION_CONFLICT` (the owner holds another quantity; `details.held`)"),
        (status = 422, description = "`INVALID_QUANTITY`, `VARIANT_REQUIRED`"),
    ))]
pub async fn reserve(shop: &Shop, req: &Request, id: &str) -> Reply {
    let by = auth::admin_actor(shop, req)?;
    let id = product_id(id)?;
    let body: Reserve = req.json()?;
    let quantity = Quantity::from_json(&body.quantity).map_err(ServiceError::InvalidQuantity)?;
    Ok(json(200, &shop.inventory.reserve(id, body.variant_id, body.owner_id, quantity, &by).await?))
}

/// Releases an owner's hold; releasing an unknown owner is a no-op.
#[utoipa::path(delete, path = "/admin/v1/inventory/{id}/reservations/{owner_id}", operation_id = "admin.inventory.release", tag = "inventory",
    security(("admin_token" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "Product id"),
        ("owner_id" = uuid::Uuid, Path, description = "The hold's owner"),
        ("variant_id" = Option<uuid::Uuid>, Query, description = "The variant, for a product with variants"),
    ),
    responses(
        (status = 200, description = "Stock", body = doc::Stock),
        (status = 404, description = "`PRODUCT_NOT_FOUND`, `VARIANT_NOT_FOUND`"),
        (status = 422, description = "`VARIANT_REQUIRED`"),
    ))]
pub async fn release(shop: &Shop, req: &Request, id: &str, owner: &str) -> Reply {
    let by = auth::admin_actor(shop, req)?;
    let id = product_id(id)?;
    let owner: OwnerId = owner.parse().map_err(|_| ApiError::invalid("owner_id", "owner id must be a UUID"))?;
    let variant_id = req.query_param::<VariantId>("variant_id")?;
    Ok(json(200, &shop.inventory.release(id, variant_id, owner, &by).await?))
}

/// The domain event log, oldest first.
#[utoipa::path(get, path = "/admin/v1/events", operation_id = "admin.events", tag = "operators",
    security(("admin_token" = [])),
    params(
        ("after" = Option<u64>, Query, description = "Events with a greater `seq` (default 0)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
    ),
    responses((status = 200, description = "Events", body = doc::Events)))]
pub async fn events(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    let after = req.query_param::<u64>("after")?.unwrap_or(0);
    Ok(json(200, &shop.logs.events(after, req.limit(100, MAX_PAGE)?)?))
}

/// The audit trail, oldest first: everything, one entity type's rows, or one entity's.
#[utoipa::path(get, path = "/admin/v1/audit", operation_id = "admin.audit", tag = "operators",
    security(("admin_token" = [])),
    params(
        ("entity_type" = Option<String>, Query, description = "`product`, `category`, `inventory`, `order`, ..."),
        ("entity_id" = Option<String>, Query, description = "Needs `entity_type`"),
        ("cursor" = Option<u64>, Query, description = "`next_cursor` of the page before"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
    ),
    responses((status = 200, description = "Audit rows", body = doc::AuditPage)))]
pub async fn audit(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    let get = |k: &str| req.query.get(k).map(String::as_str).filter(|v| !v.is_empty());
    for field in ["actor", "action"] {
        if get(field).is_some_and(|v| v.chars().count() > 200) {
            return Err(ApiError::invalid(field, format!("{field} must be at most 200 characters")));
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
#[utoipa::path(get, path = "/admin/v1/webhooks", operation_id = "admin.webhooks", tag = "operators",
    security(("admin_token" = [])),
    params(
        ("source" = Option<String>, Query, description = "`payment` or `carrier`"),
        ("status" = Option<String>, Query, description = "`processed`, `needs_review`, `ignored`, `rejected`, ..."),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the page before (hex)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
    ),
    responses((status = 200, description = "Received webhook events", body = doc::WebhookEventPage)))]
pub async fn webhooks(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    let source = req.query.get("source").map(String::as_str);
    let status = req.query.get("status").map(String::as_str);
    let cursor = req.query.get("cursor").filter(|c| !c.is_empty()).map(String::as_str);
    Ok(json(200, &shop.logs.webhooks(source, status, cursor, req.limit(100, MAX_PAGE)?)?))
}

/// The notification outbox, oldest first.
#[utoipa::path(get, path = "/admin/v1/notifications", operation_id = "admin.notifications", tag = "operators",
    security(("admin_token" = [])),
    params(
        ("status" = Option<String>, Query, description = "`QUEUED`, `SENT` or `FAILED`"),
        ("kind" = Option<String>, Query, description = "`email_verification`, `order_shipped`, `order_delivered`, `order_cancelled`, `out_of_stock_alert`, `needs_review_alert`, `refund_failed_alert`, ..."),
        ("cursor" = Option<uuid::Uuid>, Query, description = "`next_cursor` of the page before"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
    ),
    responses((status = 200, description = "Notifications", body = doc::NotificationPage)))]
pub async fn notifications(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    let status = req.query.get("status").map(String::as_str);
    let kind = req.query.get("kind").map(String::as_str);
    let cursor = req.query_param::<NotificationId>("cursor")?;
    Ok(json(200, &shop.logs.notifications(status, kind, cursor, req.limit(100, MAX_PAGE)?)?))
}

/// What is in memory right now: passivation keeps this bounded by the active set.
#[utoipa::path(get, path = "/admin/v1/stats", operation_id = "admin.stats", tag = "operators",
    security(("admin_token" = [])),
    responses((status = 200, description = "Actors in memory", body = doc::Stats)))]
pub async fn stats(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    Ok(json(200, &serde_json::json!({ "actors": shop.active_actors() })))
}

/// This server, the store's leases (which server may write to each partition, at which
/// epoch, until when) and the cluster's servers (where each is reached, its heartbeat, how
/// many partitions it holds, which one leads).
#[utoipa::path(get, path = "/admin/v1/cluster", operation_id = "admin.cluster", tag = "operators",
    security(("admin_token" = [])),
    responses((status = 200, description = "`{\"backend\", \"node_id\", \"leases\": [{\"partition\", \"owner\", \"epoch\", \"expires_at\"}], \"nodes\": [{\"node_id\", \"advertise_url\", \"started_at\", \"heartbeat_at\", \"heartbeat_age_ms\", \"stale\", \"leader\", \"partitions\"}], \"partitions\"}` (answered by the leader: a follower forwards it; stale: no heartbeat for three leases, the row deleted after ten)", body = Object)))]
pub async fn cluster(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    let store = shop.store.clone();
    let (leases, nodes) =
        tokio::task::spawn_blocking(move || Ok::<_, crate::store::StoreError>((store.leases()?, store.nodes()?)))
            .await
            .map_err(|e| ApiError::internal("reading the leases", e))??;
    let backend = match shop.settings.storage.backend {
        crate::config::Backend::Sled => "sled",
        crate::config::Backend::Postgres => "postgres",
    };
    // How many partitions the key space has (a node's `partitions` is how many it holds);
    // an embedded store has no partitions: one server holds everything.
    let partitions = match shop.settings.storage.backend {
        crate::config::Backend::Sled => None,
        crate::config::Backend::Postgres => Some(shop.settings.cluster.partitions.count()),
    };
    let view = serde_json::json!({
        "backend": backend, "node_id": shop.store.node_id(), "partitions": partitions, "leases": leases, "nodes": nodes,
    });
    Ok(json(200, &view))
}
