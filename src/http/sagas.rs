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
use crate::saga::SagaState;
use crate::services::Shop;

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

pub async fn list(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    let state = match req.query.get("state").filter(|s| !s.is_empty()) {
        Some(s) => Some(SagaState::parse(s).ok_or_else(|| AppError::invalid("state", "unknown saga state"))?),
        None => None,
    };
    let saga_type = req.query.get("type").filter(|s| !s.is_empty()).map(String::as_str);
    let cursor = req.query_param::<SagaId>("cursor")?;
    let (sagas, next) = shop.sagas.list(state, saga_type, cursor, req.limit(50, 500)?).await?;
    let sagas: Vec<_> = sagas.iter().map(|s| s.to_json()).collect();
    Ok(json(200, &json!({ "sagas": sagas, "next_cursor": next })))
}

pub async fn get(shop: &Shop, req: &Request, id: &str) -> Reply {
    auth::admin(shop, req)?;
    let saga = shop.sagas.get(saga_id(id)?).await?.ok_or(AppError::SagaNotFound)?;
    Ok(json(200, &saga.to_json()))
}

pub async fn resume(shop: &Shop, req: &Request, id: &str) -> Reply {
    auth::admin(shop, req)?;
    let id = saga_id(id)?;
    let body: Resume = if req.body.is_empty() { Resume::default() } else { req.json()? };
    shop.sagas.get(id).await?.ok_or(AppError::SagaNotFound)?;
    Ok(json(200, &shop.sagas.resume(id, body.reset_attempts).await?.to_json()))
}

pub async fn abort(shop: &Shop, req: &Request, id: &str) -> Reply {
    auth::admin(shop, req)?;
    let id = saga_id(id)?;
    let body: Abort = req.json()?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(AppError::invalid("reason", "reason must be 1 to 500 characters"));
    }
    shop.sagas.get(id).await?.ok_or(AppError::SagaNotFound)?;
    Ok(json(200, &shop.sagas.abort(id, reason).await?.to_json()))
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
    auth::admin(shop, req)?;
    let policy: RetryPolicy = req.json()?;
    shop.sagas.set_policy(saga_type, step, policy).await?;
    Ok(json(200, &json!({ "saga_type": saga_type, "step": step, "policy": policy })))
}
