//! Writes of records kept only for a while (Idempotency-Keys, finished sagas, webhook
//! events): each goes with its entry in a time index, in the same write set, so that the
//! retention sweep (`operations::retention`) reads only the index range older than its cutoff.
//! Here, below the saga engine and the services, so that both can write them.

use super::indexes::{reindex, webhook_index};
use super::{keys, Key, Table, WebhookEvent, WriteSet};
use crate::domain::ids::SagaId;
use crate::domain::time::Timestamp;

/// The conflict tag of an Idempotency-Key already taken (see [`idempotency_key`]).
pub const IDEMPOTENCY_KEY_TAKEN: &str = "idempotency_key";

/// The Idempotency-Key of a new saga (the bytes of a `keys::idempotency` row), with its
/// place in the TTL index (first write).
pub fn idempotency_key(ws: WriteSet, key: Key, saga_id: SagaId, now: Timestamp) -> WriteSet {
    ws.save(keys::idempotency_by_time(now.0, &key), &saga_id.0).save_new(key, &saga_id.0, IDEMPOTENCY_KEY_TAKEN)
}

/// A saga's place in the retention index, written with its terminal state.
pub fn saga_finished(ws: WriteSet, saga_id: SagaId, now: Timestamp) -> WriteSet {
    ws.save(keys::finished_saga(now.0, saga_id), &0u32)
}

/// The conflict tag of a webhook event already received (see [`webhook_event`]).
pub const WEBHOOK_EVENT_TAKEN: &str = "webhook_event";

/// A received webhook event, its place in the retention index and its listing entries
/// (moved from those of `before`, the record it replaces, if any).
pub fn webhook_event(ws: WriteSet, event: &WebhookEvent, before: Option<&WebhookEvent>, if_absent: bool) -> WriteSet {
    let key = keys::webhook_event(&event.source, &event.event_id);
    let ws = ws.save(keys::webhook_event_by_time(event.received_at.0, &event.source, &event.event_id), &0u32);
    let old = before.map(webhook_index).unwrap_or_default();
    let ws = reindex(ws, Table::WebhooksByFilter, &old, &webhook_index(event));
    if if_absent {
        ws.save_new(key, event, WEBHOOK_EVENT_TAKEN)
    } else {
        ws.save(key, event)
    }
}
