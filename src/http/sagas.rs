//! Operators and sagas: triage, list, show, resume, abort; retry policies.

use serde::Deserialize;
use serde_json::json;

use super::auth;
use super::request::{path_id, Request};
use super::response::json;
use super::routes::Reply;
use crate::domain::ids::SagaId;
use crate::error::AppError;
use crate::retry::RetryPolicy;
use crate::saga::query::{Direction, FilterParams, SagaFilter};
use crate::saga::SagaInstance;
use crate::services::{audit, Shop};
use crate::store::AuditEntry;

#[derive(Deserialize, Default)]
struct Resume {
    #[serde(default)]
    reset_attempts: bool,
}

#[derive(Deserialize)]
struct Abort {
    reason: String,
}

fn saga_id(id: &str) -> Result<SagaId, AppError> {
    path_id(id, AppError::SagaNotFound)
}

/// `GET /admin/v1/sagas?state=&type=&step=&error=&order_id=&customer_id=&created_after=&created_before=&order=&limit=&cursor=`.
/// A page reads at most `query::SCAN_BUDGET` sagas: it may hold fewer than `limit` (even
/// none) while `next_cursor` says where to go on.
pub async fn list(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    let filter = SagaFilter::parse(&FilterParams::from_query(&req.query), &shop.sagas)?;
    let direction = Direction::parse(req.query.get("order").map(String::as_str))?;
    let cursor = req.query_param::<SagaId>("cursor")?;
    let (sagas, next) = shop.sagas.list(&filter, direction, cursor, req.limit(50, 500)?).await?;
    let sagas: Vec<_> = sagas.iter().map(|s| s.to_json()).collect();
    Ok(json(200, &json!({ "sagas": sagas, "next_cursor": next })))
}

pub async fn get(shop: &Shop, req: &Request, id: &str) -> Reply {
    auth::admin(shop, req)?;
    let saga = shop.sagas.get(saga_id(id)?).await?.ok_or(AppError::SagaNotFound)?;
    Ok(json(200, &saga.to_json()))
}

pub async fn resume(shop: &Shop, req: &Request, id: &str) -> Reply {
    let actor = auth::admin_actor(shop, req)?;
    let id = saga_id(id)?;
    let body: Resume = if req.body.is_empty() { Resume::default() } else { req.json()? };
    let before = shop.sagas.get(id).await?.ok_or(AppError::SagaNotFound)?;
    let outcome = shop.sagas.resume(id, body.reset_attempts).await;
    let extra = json!({ "reset_attempts": body.reset_attempts });
    audited(shop, audit::saga_action(&actor, "saga.resume", id, Some(before.state), &outcome, extra), outcome).await
}

pub async fn abort(shop: &Shop, req: &Request, id: &str) -> Reply {
    let actor = auth::admin_actor(shop, req)?;
    let id = saga_id(id)?;
    let body: Abort = req.json()?;
    let reason = abort_reason(&body.reason)?;
    let before = shop.sagas.get(id).await?.ok_or(AppError::SagaNotFound)?;
    let outcome = shop.sagas.abort(id, reason).await;
    let extra = json!({ "reason": reason });
    audited(shop, audit::saga_action(&actor, "saga.abort", id, Some(before.state), &outcome, extra), outcome).await
}

/// 1 to 500 characters once trimmed.
pub fn abort_reason(reason: &str) -> Result<&str, AppError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(AppError::invalid("reason", "reason must be 1 to 500 characters"));
    }
    Ok(reason)
}

/// Records the operator's action, done or refused, then answers its outcome.
async fn audited(shop: &Shop, row: AuditEntry, outcome: Result<SagaInstance, AppError>) -> Reply {
    audit::record(&shop.store, row).await?;
    Ok(json(200, &outcome?.to_json()))
}

/// `GET /admin/v1/sagas/{id}/abort-preview`: whether an abort is allowed now, and the
/// compensations it would run, in order.
pub async fn abort_preview(shop: &Shop, req: &Request, id: &str) -> Reply {
    auth::admin(shop, req)?;
    Ok(json(200, &shop.sagas.abort_preview(saga_id(id)?).await?))
}

/// `GET /admin/v1/triage`: sagas by type and state, and the STUCK, RETRYING and
/// COMPENSATING ones grouped by (state, type, step, error), from memory.
pub async fn triage(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    Ok(json(200, &shop.sagas.triage().to_json(crate::domain::time::Timestamp::now())))
}

pub async fn policies(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    Ok(json(200, &shop.sagas.policies_json()))
}

pub async fn set_policy(shop: &Shop, req: &Request, saga_type: &str, step: &str) -> Reply {
    let actor = auth::admin_actor(shop, req)?;
    let policy: RetryPolicy = req.json()?;
    shop.sagas.set_policy(saga_type, step, policy, &actor).await?;
    Ok(json(200, &json!({ "saga_type": saga_type, "step": step, "policy": policy })))
}
