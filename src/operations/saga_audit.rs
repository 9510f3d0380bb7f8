//! The audit rows of operators' resumes and aborts of sagas (one at a time or in bulk).

use serde_json::{json, Value};

use crate::domain::ids::SagaId;
use crate::error::Answer;
use crate::saga::{SagaError, SagaInstance, SagaState};
use crate::services::audit::entry;
use crate::store::AuditEntry;

/// What became of an operator's action on one saga, as the audit row's `after` says it.
pub fn saga_outcome(outcome: &Result<SagaInstance, SagaError>, extra: Value) -> Value {
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
pub fn result_of(e: &SagaError) -> &'static str {
    match e {
        SagaError::InvalidState(_) | SagaError::AbortNotAllowed(_) | SagaError::NotFound => "skipped",
        _ => "failed",
    }
}

/// The audit row of an operator's resume or abort of one saga.
pub fn saga_action(
    actor: &str,
    action: &str,
    saga_id: SagaId,
    before: Option<SagaState>,
    outcome: &Result<SagaInstance, SagaError>,
    extra: Value,
) -> AuditEntry {
    let before = json!({ "state": before.map(SagaState::as_str) });
    entry(actor, action, ("saga", &saga_id.to_string()), before, saga_outcome(outcome, extra))
}
