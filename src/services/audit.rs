//! Operator actions in the audit trail: who (the credential's role and the `X-Operator`
//! name), when, what and with what result. Actions whose change already carries its audit
//! row in the same write (restock, reserve, release, a retry policy) are not written twice.

use serde_json::{json, Value};

use crate::domain::ids::SagaId;
use crate::domain::time::Timestamp;
use crate::error::AppError;
use crate::saga::{SagaInstance, SagaState};
use crate::store::{AuditEntry, Store, WriteSet};

/// An audit row; `at` is set by the committer.
pub fn entry(actor: &str, action: &str, entity: (&str, &str), before: Value, after: Value) -> AuditEntry {
    AuditEntry {
        at: Timestamp::now(),
        actor: actor.to_string(),
        action: action.to_string(),
        entity_type: entity.0.to_string(),
        entity_id: entity.1.to_string(),
        before: before.to_string(),
        after: after.to_string(),
    }
}

/// What became of an operator's action on one saga, as the audit row's `after` says it.
pub fn saga_outcome(outcome: &Result<SagaInstance, AppError>, extra: Value) -> Value {
    let mut after = match outcome {
        Ok(s) => json!({ "result": "done", "state": s.state.as_str() }),
        Err(e) => json!({ "result": result_of(e), "error": { "code": e.code(), "message": e.to_string() } }),
    };
    if let (Some(after), Value::Object(extra)) = (after.as_object_mut(), extra) {
        after.extend(extra);
    }
    after
}

/// A refusal (the saga was not in a state the action applies to) skips it; anything else
/// failed.
pub fn result_of(e: &AppError) -> &'static str {
    match e {
        AppError::InvalidSagaState(_) | AppError::AbortNotAllowed(_) | AppError::SagaNotFound => "skipped",
        _ => "failed",
    }
}

/// The audit row of an operator's resume or abort of one saga.
pub fn saga_action(
    actor: &str,
    action: &str,
    saga_id: SagaId,
    before: Option<SagaState>,
    outcome: &Result<SagaInstance, AppError>,
    extra: Value,
) -> AuditEntry {
    let before = json!({ "state": before.map(SagaState::as_str) });
    entry(actor, action, ("saga", &saga_id.to_string()), before, saga_outcome(outcome, extra))
}

/// Writes one audit row on its own.
pub async fn record(store: &Store, row: AuditEntry) -> Result<(), AppError> {
    Ok(store.commit(WriteSet::new().audit(row)).await?)
}
