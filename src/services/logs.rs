//! What operators read: the domain event log, the audit trail and the notification outbox.

use serde_json::{json, Value};

use crate::domain::ids::NotificationId;
use crate::error::AppError;
use crate::store::{AuditEntry, EventRecord, Notification, Store, Table, WebhookEvent};

pub const MAX_PAGE: usize = 1000;

#[derive(Clone)]
pub struct LogService {
    store: Store,
}

impl LogService {
    pub fn new(store: Store) -> LogService {
        LogService { store }
    }

    /// Events with `seq > after`, oldest first.
    pub fn events(&self, after: u64, limit: usize) -> Result<Value, AppError> {
        let page = self.store.page::<EventRecord>(Table::Events, Some(&after.to_be_bytes()), limit)?;
        let events: Vec<Value> = page
            .into_iter()
            .map(|(_, e)| {
                json!({
                    "seq": e.seq,
                    "type": e.event_type,
                    "at": e.at.rfc3339(),
                    "data": serde_json::from_str::<Value>(&e.data).unwrap_or(Value::Null),
                })
            })
            .collect();
        let next_after = events.last().map(|e| e["seq"].clone());
        Ok(json!({ "events": events, "next_after": next_after }))
    }

    /// Audit rows, oldest first; one entity's rows come from its index.
    pub fn audit(&self, entity_type: Option<&str>, entity_id: Option<&str>, limit: usize) -> Result<Value, AppError> {
        let rows: Vec<AuditEntry> = match (entity_type, entity_id) {
            (Some(t), Some(id)) => {
                let prefix = crate::store::audit_entity_prefix(t, id);
                let keys = self.store.scan_prefix_keys(Table::AuditByEntity, &prefix, limit)?;
                let mut rows = Vec::with_capacity(keys.len());
                for k in keys {
                    let seq = &k[prefix.len()..];
                    if let Some(row) = self.store.get::<AuditEntry>(Table::Audit, seq)? {
                        rows.push(row);
                    }
                }
                rows
            }
            _ => self
                .store
                .page::<AuditEntry>(Table::Audit, None, usize::MAX)?
                .into_iter()
                .map(|(_, a)| a)
                .filter(|a| {
                    entity_type.is_none_or(|t| a.entity_type == t) && entity_id.is_none_or(|id| a.entity_id == id)
                })
                .take(limit)
                .collect(),
        };
        let entries: Vec<Value> = rows
            .into_iter()
            .map(|a| {
                json!({
                    "at": a.at.rfc3339(),
                    "actor": a.actor,
                    "action": a.action,
                    "entity_type": a.entity_type,
                    "entity_id": a.entity_id,
                    "before": serde_json::from_str::<Value>(&a.before).unwrap_or(Value::Null),
                    "after": serde_json::from_str::<Value>(&a.after).unwrap_or(Value::Null),
                })
            })
            .collect();
        Ok(json!({ "entries": entries }))
    }

    /// Webhook events as received, with what became of them; by source and status.
    pub fn webhooks(&self, source: Option<&str>, status: Option<&str>, limit: usize) -> Result<Value, AppError> {
        let mut rows: Vec<WebhookEvent> = self
            .store
            .page::<WebhookEvent>(Table::WebhookEvents, None, usize::MAX)?
            .into_iter()
            .map(|(_, w)| w)
            .filter(|w| source.is_none_or(|s| w.source == s) && status.is_none_or(|s| w.status == s))
            .collect();
        rows.sort_by_key(|w| w.received_at);
        let events: Vec<Value> = rows
            .iter()
            .take(limit)
            .map(|w| {
                json!({
                    "source": w.source,
                    "event_id": w.event_id,
                    "type": w.event_type,
                    "status": w.status,
                    "detail": w.detail,
                    "order_id": w.order_id,
                    "received_at": w.received_at.rfc3339(),
                    "body": serde_json::from_str::<Value>(&w.body).unwrap_or(Value::Null),
                })
            })
            .collect();
        Ok(json!({ "webhooks": events }))
    }

    /// Notifications, oldest first, filtered by status and kind.
    pub fn notifications(
        &self,
        status: Option<&str>,
        kind: Option<&str>,
        cursor: Option<NotificationId>,
        limit: usize,
    ) -> Result<Value, AppError> {
        let after = cursor.map(|c| c.as_bytes().to_vec());
        let mut out = Vec::new();
        let mut next_cursor = None;
        for (_, n) in self.store.page::<Notification>(Table::Outbox, after.as_deref(), usize::MAX)? {
            if status.is_some_and(|s| n.status.as_str() != s) || kind.is_some_and(|k| n.kind != k) {
                continue;
            }
            if out.len() == limit {
                next_cursor = out.last().map(|v: &Value| v["notification_id"].clone());
                break;
            }
            out.push(notification_json(&n));
        }
        Ok(json!({ "notifications": out, "next_cursor": next_cursor }))
    }
}

pub fn notification_json(n: &Notification) -> Value {
    json!({
        "notification_id": n.notification_id,
        "kind": n.kind,
        "to": n.to,
        "subject": n.subject,
        "status": n.status.as_str(),
        "attempts": n.attempts,
        "last_error": n.last_error,
        "payload": serde_json::from_str::<Value>(&n.payload).unwrap_or(Value::Null),
        "created_at": n.created_at.rfc3339(),
        "next_attempt_at": n.next_attempt_at.rfc3339(),
    })
}
