//! Operators and sagas: triage, list, show, resume, abort; retry policies.

use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::auth;
use super::request::{path_id, Request};
use super::response::{json, Reply};
use super::spec::schemas as doc;
use super::ApiError;
use crate::domain::ids::SagaId;
use crate::operations::saga_audit;
use crate::retry::RetryPolicy;
use crate::saga::query::{Direction, FilterParams, SagaFilter};
use crate::saga::{SagaError, SagaInstance};
use crate::services::audit;
use crate::startup::Shop;
use crate::store::AuditEntry;

#[derive(Deserialize, Default, ToSchema)]
struct Resume {
    /// Start the parked step's attempts from zero.
    #[serde(default)]
    reset_attempts: bool,
}

#[derive(Deserialize, ToSchema)]
struct Abort {
    /// 1 to 500 characters, kept with the saga.
    #[schema(min_length = 1)]
    reason: String,
}

fn saga_id(id: &str) -> Result<SagaId, ApiError> {
    path_id(id, ApiError::from(crate::saga::SagaError::NotFound))
}

/// Sagas, a page at a time. A page reads at most `query::SCAN_BUDGET` sagas: it may hold
/// fewer than `limit` (even none) while `next_cursor` says where to go on.
#[utoipa::path(get, path = "/admin/v1/sagas", operation_id = "admin.sagas.list", tag = "sagas",
    security(("admin_token" = [])),
    params(
        ("state" = Option<String>, Query, description = "`RUNNING`, `RETRYING`, `PAUSED`, `COMPENSATING`, `COMPLETED`, `FAILED`, `STUCK` or `ABORTED`; another value is 400"),
        ("type" = Option<String>, Query, description = "`place_order`, `cancel_order`, `ship_order`, `refund_capture`; an unknown type is 400"),
        ("step" = Option<String>, Query, description = "The current step or compensation; one the type does not have is 400"),
        ("error" = Option<String>, Query, description = "Text found (ignoring case) in the saga's error or a step's last error"),
        ("order_id" = Option<uuid::Uuid>, Query, description = "The order's sagas"),
        ("customer_id" = Option<uuid::Uuid>, Query, description = "The customer's sagas"),
        ("created_after" = Option<String>, Query, description = "RFC 3339; created at or after"),
        ("created_before" = Option<String>, Query, description = "RFC 3339; created strictly before"),
        ("order" = Option<String>, Query, description = "`oldest` (default) or `newest` first"),
        ("cursor" = Option<uuid::Uuid>, Query, description = "`next_cursor` of the page before"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size (default 50)"),
    ),
    responses((status = 200, description = "Sagas", body = doc::SagaPage)))]
pub async fn list(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    let filter = SagaFilter::parse(&FilterParams::from_query(&req.query), &shop.sagas)?;
    let direction = Direction::parse(req.query.get("order").map(String::as_str))?;
    let cursor = req.query_param::<SagaId>("cursor")?;
    let (sagas, next) = shop.sagas.list(&filter, direction, cursor, req.limit(50, 500)?).await?;
    let sagas: Vec<_> = sagas.iter().map(|s| s.to_json()).collect();
    Ok(json(200, &json!({ "sagas": sagas, "next_cursor": next })))
}

/// A saga with its full step history.
#[utoipa::path(get, path = "/admin/v1/sagas/{id}", operation_id = "admin.sagas.get", tag = "sagas",
    security(("admin_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "Saga id")),
    responses(
        (status = 200, description = "The saga", body = doc::Saga),
        (status = 404, description = "`SAGA_NOT_FOUND` (also once deleted past `sagas.retention_secs`)"),
    ))]
pub async fn get(shop: &Shop, req: &Request, id: &str) -> Reply {
    auth::admin(shop, req)?;
    let saga = shop.sagas.get(saga_id(id)?).await?.ok_or(crate::saga::SagaError::NotFound)?;
    Ok(json(200, &saga.to_json()))
}

/// Run the parked step now: only a `STUCK` or `RETRYING` saga (or a `RUNNING` one nothing drives).
#[utoipa::path(post, path = "/admin/v1/sagas/{id}/resume", operation_id = "admin.sagas.resume", tag = "sagas",
    security(("admin_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "Saga id")),
    request_body(content = Option<Resume>, description = "Optional"),
    responses(
        (status = 200, description = "The saga", body = doc::Saga),
        (status = 404, description = "`SAGA_NOT_FOUND`"),
        (status = 409, description = "`INVALID_SAGA_STATE`"),
    ))]
pub async fn resume(shop: &Shop, req: &Request, id: &str) -> Reply {
    let actor = auth::admin_actor(shop, req)?;
    let id = saga_id(id)?;
    let body: Resume = if req.body.is_empty() { Resume::default() } else { req.json()? };
    let before = shop.sagas.get(id).await?.ok_or(crate::saga::SagaError::NotFound)?;
    let outcome = shop.sagas.resume(id, body.reset_attempts).await;
    let extra = json!({ "reset_attempts": body.reset_attempts });
    audited(shop, saga_audit::saga_action(&actor, "saga.resume", id, Some(before.state), &outcome, extra), outcome)
        .await
}

/// Compensate the completed steps in reverse order and end `ABORTED`.
#[utoipa::path(post, path = "/admin/v1/sagas/{id}/abort", operation_id = "admin.sagas.abort", tag = "sagas",
    security(("admin_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "Saga id")),
    request_body = Abort,
    responses(
        (status = 200, description = "The saga", body = doc::Saga),
        (status = 404, description = "`SAGA_NOT_FOUND`"),
        (status = 409, description = "`INVALID_SAGA_STATE` (finished); `ABORT_NOT_ALLOWED` (past the point of no return)"),
    ))]
pub async fn abort(shop: &Shop, req: &Request, id: &str) -> Reply {
    let actor = auth::admin_actor(shop, req)?;
    let id = saga_id(id)?;
    let body: Abort = req.json()?;
    let reason = abort_reason(&body.reason)?;
    let before = shop.sagas.get(id).await?.ok_or(crate::saga::SagaError::NotFound)?;
    let outcome = shop.sagas.abort(id, reason).await;
    let extra = json!({ "reason": reason });
    audited(shop, saga_audit::saga_action(&actor, "saga.abort", id, Some(before.state), &outcome, extra), outcome).await
}

/// 1 to 500 characters once trimmed.
pub fn abort_reason(reason: &str) -> Result<&str, ApiError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::invalid("reason", "reason must be 1 to 500 characters"));
    }
    Ok(reason)
}

/// Records the operator's action, done or refused, then answers its outcome.
async fn audited(shop: &Shop, row: AuditEntry, outcome: Result<SagaInstance, SagaError>) -> Reply {
    audit::record(&shop.store, row).await?;
    Ok(json(200, &outcome?.to_json()))
}

/// `GET /admin/v1/sagas/{id}/abort-preview`: whether an abort is allowed now, and the
/// compensations it would run, in order.
#[utoipa::path(get, path = "/admin/v1/sagas/{id}/abort-preview", operation_id = "admin.sagas.abort_preview", tag = "sagas",
    security(("admin_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "Saga id")),
    responses(
        (status = 200, description = "What an abort would do now", body = doc::AbortPreview),
        (status = 404, description = "`SAGA_NOT_FOUND`"),
    ))]
pub async fn abort_preview(shop: &Shop, req: &Request, id: &str) -> Reply {
    auth::admin(shop, req)?;
    Ok(json(200, &shop.sagas.abort_preview(saga_id(id)?).await?))
}

/// Sagas by type and state, and the STUCK, RETRYING, COMPENSATING and PAUSED ones grouped
/// by (state, type, step, error), from memory.
#[utoipa::path(get, path = "/admin/v1/triage", operation_id = "admin.triage", tag = "sagas",
    security(("admin_token" = [])),
    responses((status = 200, description = "`{\"counts\", \"groups\", \"complete\"}`; on a cluster sharing the partitions, every server's census added, with `\"servers\"`, `\"unanswered_servers\"`, `\"uncounted_partitions\"` and `\"partitions_counted_twice\"`", body = Object)))]
pub async fn triage(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    Ok(json(200, &shop.sagas.cluster_triage().await.to_json(crate::domain::time::Timestamp::now())))
}

/// Every retry policy, by saga type and step.
#[utoipa::path(get, path = "/admin/v1/retry-policies", operation_id = "admin.policies.list", tag = "sagas",
    security(("admin_token" = [])),
    responses((status = 200, description = "Policies", body = doc::RetryPolicies)))]
pub async fn policies(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    Ok(json(200, &shop.sagas.policies_json()))
}

/// Store a step's retry policy: new sagas take it, running ones at their next attempt.
#[utoipa::path(put, path = "/admin/v1/retry-policies/{saga_type}/{step}", operation_id = "admin.policies.set", tag = "sagas",
    security(("admin_token" = [])),
    params(
        ("saga_type" = String, Path, description = "`place_order`, `cancel_order`, `ship_order`, ..."),
        ("step" = String, Path, description = "A step or compensation of that saga"),
    ),
    request_body = crate::retry::RetryPolicy,
    responses(
        (status = 200, description = "Stored", body = doc::PolicySet),
        (status = 404, description = "`SAGA_NOT_FOUND`: no such saga type"),
        (status = 422, description = "`INVALID_RETRY_POLICY`: no such step, or values out of range"),
    ))]
pub async fn set_policy(shop: &Shop, req: &Request, saga_type: &str, step: &str) -> Reply {
    let actor = auth::admin_actor(shop, req)?;
    let policy: RetryPolicy = req.json()?;
    shop.sagas.set_policy(saga_type, step, policy, &actor).await?;
    Ok(json(200, &json!({ "saga_type": saga_type, "step": step, "policy": policy })))
}
