//! What operators read: the domain event log, the audit trail and the notification outbox.

use serde_json::{json, Value};

use super::ServiceError;
use crate::domain::ids::{NotificationId, OrderId};
use crate::store::{
    keys, AuditEntry, EventRecord, Key, ListingFilter, Notification, Page, Prefix, Store, Table, Walk, WebhookEvent,
};

pub const MAX_PAGE: usize = 1000;
/// Audit rows read at most for one page filtered by actor or action.
pub const AUDIT_SCAN_BUDGET: usize = 5_000;

/// Which audit rows (all optional).
#[derive(Debug, Default)]
pub struct AuditFilter<'a> {
    pub entity_type: Option<&'a str>,
    pub entity_id: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub action: Option<&'a str>,
}

#[derive(Clone)]
pub struct LogService {
    store: Store,
}

impl LogService {
    pub fn new(store: Store) -> LogService {
        LogService { store }
    }

    /// Events with `seq > after`, oldest first.
    pub fn events(&self, after: u64, limit: usize) -> Result<Value, ServiceError> {
        let after = keys::event(after);
        let page = self.store.page::<EventRecord>(after.table(), Some(after.as_bytes()), limit)?;
        let events: Vec<Value> = page.iter().map(|(_, e)| event_json(e)).collect();
        let next_after = events.last().map(|e| e["seq"].clone());
        Ok(json!({ "events": events, "next_after": next_after }))
    }

    /// One order's events, oldest first, after the event `cursor` (a seq), from their index;
    /// ORDER_NOT_FOUND for an order that does not exist.
    pub fn order_events(&self, order: OrderId, cursor: Option<u64>, limit: usize) -> Result<Value, ServiceError> {
        if !self.store.exists(&keys::order(order))? {
            return Err(ServiceError::OrderNotFound);
        }
        let after = cursor.map(keys::event);
        let entries = keys::events_of_order(order);
        let index = (entries.table(), entries.as_bytes());
        // The order key after the prefix is the seq, which is the event's key.
        let page: Page<EventRecord> = self.store.page_index(
            index,
            Table::Events,
            |seq| seq,
            after.as_ref().map(Key::as_bytes),
            limit,
            |_| true,
        )?;
        let events: Vec<Value> = page.rows.iter().map(event_json).collect();
        let next_cursor = page.next.and_then(|k| keys::seq_of(&k));
        Ok(json!({ "events": events, "next_cursor": next_cursor }))
    }

    /// Audit rows, oldest first, after the row `cursor` (a seq): one entity's rows, or one
    /// entity type's, come from their index, the rest from the table, a page at a time.
    /// `actor` (a role, `admin`, or a role and name, `admin:alice`) and `action` narrow no
    /// index: rows are checked as read, at most [`AUDIT_SCAN_BUDGET`] per page, so a page
    /// may hold fewer rows than `limit` while `next_cursor` says where to go on.
    pub fn audit(&self, filter: &AuditFilter, cursor: Option<u64>, limit: usize) -> Result<Value, ServiceError> {
        let after = cursor.map(keys::audit);
        let after = after.as_ref().map(Key::as_bytes);
        let rows = match (filter.entity_type, filter.entity_id) {
            (Some(t), Some(id)) => keys::audit_of_entity(t, id),
            (Some(t), None) => keys::listing(ListingFilter::AuditType(t)),
            (None, Some(_)) => return Err(ServiceError::invalid("entity_type", "entity_id needs its entity_type")),
            (None, None) => Prefix::all(Table::Audit),
        };
        let keep = |a: &AuditEntry| {
            filter.entity_type.is_none_or(|t| a.entity_type == t)
                && filter.entity_id.is_none_or(|id| a.entity_id == id)
                && filter.action.is_none_or(|x| a.action == x)
                && filter
                    .actor
                    .is_none_or(|x| a.actor == x || a.actor.strip_prefix(x).is_some_and(|r| r.starts_with(':')))
        };
        let lower = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let walk = Walk {
            index: rows.table(),
            prefix: rows.as_bytes(),
            main: Table::Audit,
            lower,
            upper: std::ops::Bound::Unbounded,
            reverse: false,
        };
        let budget = if filter.actor.is_some() || filter.action.is_some() { AUDIT_SCAN_BUDGET } else { usize::MAX };
        let page: Page<AuditEntry> = self.store.page_walk(&walk, limit, budget, keep)?;
        let entries: Vec<Value> = page
            .rows
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
        let next_cursor = page.next.and_then(|k| keys::seq_of(&k));
        Ok(json!({ "entries": entries, "next_cursor": next_cursor }))
    }

    /// Webhook events in order of reception, by source and status, after `cursor` (the
    /// opaque `next_cursor` of the page before), a page at a time from their index.
    pub fn webhooks(
        &self,
        source: Option<&str>,
        status: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Value, ServiceError> {
        let after = match cursor {
            Some(c) => Some(
                hex::decode(c).map_err(|_| ServiceError::invalid("cursor", "query parameter cursor is not valid"))?,
            ),
            None => None,
        };
        let filter = match (source, status) {
            (None, None) => ListingFilter::WebhookAll,
            (Some(so), None) => ListingFilter::WebhookSource(so),
            (None, Some(st)) => ListingFilter::WebhookStatus(st),
            (Some(so), Some(st)) => ListingFilter::WebhookSourceStatus(so, st),
        };
        let prefix = filter.prefix();
        let keep = |w: &WebhookEvent| source.is_none_or(|s| w.source == s) && status.is_none_or(|s| w.status == s);
        let index = (filter.table(), prefix.as_slice());
        // An order key is the reception time, then the event's own key.
        let page: Page<WebhookEvent> =
            self.store.page_index(index, Table::WebhookEvents, keys::time_key_rest, after.as_deref(), limit, keep)?;
        let events: Vec<Value> = page
            .rows
            .iter()
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
        Ok(json!({ "webhooks": events, "next_cursor": page.next.map(hex::encode) }))
    }

    /// Notifications, oldest first, filtered by status and kind, after `cursor`: from the
    /// outbox (ids are UUIDv7) or from its index, a page at a time.
    pub fn notifications(
        &self,
        status: Option<&str>,
        kind: Option<&str>,
        cursor: Option<NotificationId>,
        limit: usize,
    ) -> Result<Value, ServiceError> {
        // A notification's key is its id, and its index entries end with it.
        let after = cursor.map(|c| keys::notification(c).into_bytes());
        let filter = match (status, kind) {
            (None, None) => None,
            (Some(s), None) => Some(ListingFilter::NotificationStatus(s)),
            (None, Some(k)) => Some(ListingFilter::NotificationKind(k)),
            (Some(s), Some(k)) => Some(ListingFilter::NotificationStatusKind(s, k)),
        };
        let page: Page<Notification> = match filter {
            None => self.store.page_table(Table::Outbox, after.as_deref(), limit)?,
            Some(f) => {
                let prefix = f.prefix();
                let keep = |n: &Notification| {
                    status.is_none_or(|s| n.status.as_str() == s) && kind.is_none_or(|k| n.kind == k)
                };
                self.store.page_index((f.table(), &prefix), Table::Outbox, |k| k, after.as_deref(), limit, keep)?
            }
        };
        let out: Vec<Value> = page.rows.iter().map(notification_json).collect();
        let next_cursor = page.next.and_then(|k| uuid::Uuid::from_slice(&k).ok());
        Ok(json!({ "notifications": out, "next_cursor": next_cursor }))
    }
}

/// A domain event on the wire: `{"seq", "type", "at", "data"}`.
pub fn event_json(e: &EventRecord) -> Value {
    json!({
        "seq": e.seq,
        "type": e.event_type,
        "at": e.at.rfc3339(),
        "data": serde_json::from_str::<Value>(&e.data).unwrap_or(Value::Null),
    })
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
