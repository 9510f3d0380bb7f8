//! Bulk actions over the sagas a filter matches: `POST /admin/v1/sagas/bulk-resume` and
//! `bulk-abort` (a dry run, or a background action), `GET /admin/v1/bulk-actions[/{id}]`.

use serde::Deserialize;
use utoipa::ToSchema;

use super::auth;
use super::request::{path_id, Request};
use super::response::{json, Reply};
use super::ApiError;
use crate::operations::bulk::{BulkKind, BulkRequest};
use crate::saga::query::{FilterParams, SagaFilter};
use crate::services::logs::MAX_PAGE;
use crate::startup::Shop;

/// The body of both: the saga filter's fields, and the action's own. An unknown field is
/// refused, not ignored: a misspelt filter must not widen what a bulk action touches.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Body {
    state: Option<String>,
    #[serde(rename = "type")]
    saga_type: Option<String>,
    step: Option<String>,
    error: Option<String>,
    order_id: Option<String>,
    customer_id: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    #[serde(default)]
    dry_run: bool,
    reason: Option<String>,
    reset_attempts: Option<bool>,
}

impl Body {
    fn filter(&self) -> FilterParams {
        FilterParams {
            state: self.state.clone(),
            saga_type: self.saga_type.clone(),
            step: self.step.clone(),
            error: self.error.clone(),
            order_id: self.order_id.clone(),
            customer_id: self.customer_id.clone(),
            created_after: self.created_after.clone(),
            created_before: self.created_before.clone(),
        }
    }
}

/// Resume every STUCK or RETRYING saga the filter matches: a dry run, or a background action.
#[utoipa::path(post, path = "/admin/v1/sagas/bulk-resume", operation_id = "admin.sagas.bulk_resume", tag = "sagas",
    security(("admin_token" = [])),
    request_body = Body,
    responses(
        (status = 200, description = "Dry run: `{\"matched\", \"capped\", \"sample\"}`", body = Object),
        (status = 202, description = "The bulk action, started in the background", body = Object),
    ))]
pub async fn resume(shop: &Shop, req: &Request) -> Reply {
    bulk(shop, req, |b| {
        if b.reason.is_some() {
            return Err(ApiError::invalid("reason", "a reason is for bulk-abort; bulk-resume takes reset_attempts"));
        }
        Ok(BulkKind::Resume { reset_attempts: b.reset_attempts.unwrap_or(false) })
    })
    .await
}

/// Abort every unfinished saga the filter matches (those past their point of no return are
/// skipped): a dry run, or a background action.
#[utoipa::path(post, path = "/admin/v1/sagas/bulk-abort", operation_id = "admin.sagas.bulk_abort", tag = "sagas",
    security(("admin_token" = [])),
    request_body = Body,
    responses(
        (status = 200, description = "Dry run: `{\"matched\", \"capped\", \"skipped\", \"sample\"}`", body = Object),
        (status = 202, description = "The bulk action, started in the background", body = Object),
    ))]
pub async fn abort(shop: &Shop, req: &Request) -> Reply {
    bulk(shop, req, |b| {
        if b.reset_attempts.is_some() {
            return Err(ApiError::invalid("reset_attempts", "reset_attempts is for bulk-resume"));
        }
        Ok(BulkKind::Abort)
    })
    .await
}

async fn bulk(shop: &Shop, req: &Request, kind: impl Fn(&Body) -> Result<BulkKind, ApiError>) -> Reply {
    let actor = auth::admin_actor(shop, req)?;
    let body: Body = req.json()?;
    let kind = kind(&body)?;
    let filter = SagaFilter::parse(&body.filter(), &shop.sagas)?;
    if let Some(state) = filter.state.filter(|s| !kind.applies_to(*s)) {
        let applies = match kind {
            BulkKind::Resume { .. } => "STUCK or RETRYING",
            BulkKind::Abort => "unfinished (RUNNING, RETRYING, COMPENSATING, STUCK)",
        };
        let message = format!("bulk {} applies to {applies} sagas, not {}", kind.name(), state.as_str());
        return Err(ApiError::invalid("state", message));
    }
    let reason = match (kind, body.reason.as_deref()) {
        (BulkKind::Abort, Some(r)) => Some(super::sagas::abort_reason(r)?.to_string()),
        (BulkKind::Abort, None) if !body.dry_run => {
            return Err(ApiError::invalid("reason", "reason must be 1 to 500 characters"));
        }
        _ => None,
    };
    let request = BulkRequest { kind, filter, reason, actor };
    if body.dry_run {
        return Ok(json(200, &shop.bulk.dry_run(&request).await?));
    }
    let action = shop.bulk.start(request).await?;
    Ok(json(202, &action.to_json()))
}

/// One bulk action and its progress.
#[utoipa::path(get, path = "/admin/v1/bulk-actions/{id}", operation_id = "admin.bulk_actions.get", tag = "sagas",
    security(("admin_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "Bulk action id")),
    responses(
        (status = 200, description = "`state` (`running`, `done`, `failed`, `interrupted`), `matched`, `done`, `skipped`, `failed`", body = Object),
        (status = 404, description = "`BULK_ACTION_NOT_FOUND`"),
    ))]
pub async fn get(shop: &Shop, req: &Request, id: &str) -> Reply {
    auth::admin(shop, req)?;
    let id: uuid::Uuid = path_id(id, ApiError::from(crate::operations::OperationError::BulkActionNotFound))?;
    let action = shop.bulk.get(id)?.ok_or(crate::operations::OperationError::BulkActionNotFound)?;
    Ok(json(200, &action.to_json()))
}

/// Bulk actions, newest first.
#[utoipa::path(get, path = "/admin/v1/bulk-actions", operation_id = "admin.bulk_actions.list", tag = "sagas",
    security(("admin_token" = [])),
    params(
        ("cursor" = Option<uuid::Uuid>, Query, description = "`next_cursor` of the page before"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 50)"),
    ),
    responses((status = 200, description = "`{\"bulk_actions\", \"next_cursor\"}`", body = Object)))]
pub async fn list(shop: &Shop, req: &Request) -> Reply {
    auth::admin(shop, req)?;
    let cursor = req.query_param::<uuid::Uuid>("cursor")?;
    Ok(json(200, &shop.bulk.list(cursor, req.limit(50, MAX_PAGE)?)?))
}
