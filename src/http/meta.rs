//! Handlers for the service's own endpoints: liveness and metrics, for probes and scrapers (no auth).

use super::response;
use super::spec::schemas as doc;
use crate::startup::Shop;

/// Liveness: no auth.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "meta",
    responses((status = 200, description = "Up", body = doc::Health)))]
pub fn health() -> warp::reply::Response {
    response::json(200, &serde_json::json!({ "status": "ok" }))
}

/// Prometheus metrics: no auth.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "meta",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub fn metrics(shop: &Shop) -> warp::reply::Response {
    response::text(200, shop.sagas.metrics_text(), "text/plain; version=0.0.4")
}
