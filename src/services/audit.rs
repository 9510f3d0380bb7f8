//! Operator actions in the audit trail: who (the credential's role and the `X-Operator`
//! name), when, what and with what result. Actions whose change already carries its audit
//! row in the same write (restock, reserve, release, a retry policy) are not written twice.

use serde_json::Value;

use super::ServiceError;
use crate::domain::time::Timestamp;
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

/// Writes one audit row on its own.
pub async fn record(store: &Store, row: AuditEntry) -> Result<(), ServiceError> {
    Ok(store.commit(WriteSet::new().audit(row)).await?)
}
