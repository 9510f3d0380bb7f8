//! The operators' logs of the listing benchmark: audit rows, webhook events and notifications,
//! each written as its service writes it (the row with its listing entries, in one write
//! set), and a page of each listing read through the same `LogService` call the admin
//! endpoints make (`/admin/v1/audit`, `/admin/v1/webhooks`, `/admin/v1/notifications`).

use cartwright::domain::time::Timestamp;
use cartwright::services::audit;
use cartwright::services::logs::{AuditFilter, LogService};
use cartwright::store::{keys, notification_index, reindex, retained, Notification, NotificationStatus, Table};
use cartwright::store::{WebhookEvent, WriteSet};
use serde_json::{json, Value};

/// Each audited entity has this many rows (an order shipped, resumed, restocked...).
const ROWS_PER_ENTITY: usize = 10;

/// The entity of the `n`th audit row. One entity in 1,000 is a bulk action (the rare
/// type); the rest are orders (60 %), sagas (30 %) and stock (10 %), interleaved (7919 is
/// prime to 1,000) so that a small table has some of each.
fn audited_entity(n: usize) -> (&'static str, &'static str, String) {
    let entity = n / ROWS_PER_ENTITY;
    let (entity_type, action) = match entity * 7919 % 1000 {
        0 => ("bulk_action", "bulk_action.resume"),
        1..=600 => ("order", "order.ship"),
        601..=900 => ("saga", "saga.resume"),
        _ => ("inventory", "inventory.restock"),
    };
    (entity_type, action, uuid::Uuid::from_u128(entity as u128).to_string())
}

/// The one entity whose rows the entity listing reads: an order (7 * 7919 % 1000 = 433).
pub fn listed_entity() -> String {
    uuid::Uuid::from_u128(7).to_string()
}

/// One audit row in 1,000 is by `admin:bob` (the rare actor), the rest by `admin:alice`.
fn audit_row(ws: WriteSet, n: usize) -> WriteSet {
    let (entity_type, action, id) = audited_entity(n);
    let actor = if n % 1000 == 1 { "admin:bob" } else { "admin:alice" };
    let after = json!({ "saga_id": uuid::Uuid::now_v7(), "reason": "benchmark" });
    ws.audit(audit::entry(actor, action, (entity_type, &id), Value::Null, after))
}

/// 70 % payment, 30 % carrier; one in 1,000 needs review (the rare status), 1 % rejected,
/// 5 % ignored, the rest processed. Recorded as the webhook service records a new event.
fn webhook_event(ws: WriteSet, n: usize) -> WriteSet {
    let (source, event_type) =
        if n % 10 < 7 { ("payment", "payment.captured") } else { ("carrier", "delivery.confirmed") };
    let status = match n % 1000 {
        0 => "needs_review",
        1..=10 => "rejected",
        11..=60 => "ignored",
        _ => "processed",
    };
    let event_id = format!("evt_{n:09}");
    let body = json!({ "id": event_id, "type": event_type, "data": { "authorization_id": format!("auth_{n}"), "amount": "15.99" } });
    let event = WebhookEvent {
        source: source.into(),
        event_id,
        event_type: event_type.into(),
        status: status.into(),
        detail: String::new(),
        body: body.to_string(),
        order_id: Some(uuid::Uuid::now_v7()),
        received_at: Timestamp::now(),
    };
    retained::webhook_event(ws, &event, None, true)
}

/// 97.9 % SENT, 2 % QUEUED, one in 1,000 FAILED (the rare status); kinds spread over four
/// customer emails, with one in 1,000 a refund alert (the rare kind). A QUEUED one is written
/// as it is queued; a SENT or FAILED one as the outbox leaves it after its last attempt.
fn notification(ws: WriteSet, n: usize) -> WriteSet {
    let kind = match (n % 1000, n % 4) {
        (500, _) => "refund_failed_alert",
        (_, 0) => "order_cancelled",
        (_, 1) => "order_shipped",
        (_, 2) => "order_delivered",
        _ => "email_verification",
    };
    let payload = json!({ "order_id": uuid::Uuid::now_v7(), "event_seq": n });
    let mut note = Notification::queued(kind, "ada@example.com", format!("Your order ({kind})"), payload);
    let status = match n % 1000 {
        0 => NotificationStatus::Failed,
        1..=20 => return ws.notify(note),
        _ => NotificationStatus::Sent,
    };
    note.status = status;
    note.attempts = 1;
    if status == NotificationStatus::Failed {
        note.attempts = 8;
        note.last_error = Some("550 mailbox unavailable".into());
    }
    let ws = reindex(ws, Table::NotificationsByFilter, &[], &notification_index(&note));
    ws.save(keys::notification(note.notification_id), &note)
}

/// The `n`th row of each of the three logs.
pub fn rows(ws: WriteSet, n: usize) -> WriteSet {
    notification(webhook_event(audit_row(ws, n), n), n)
}

/// The log listings timed, in the order of [`HEADER`]: each reads one page of `limit` and
/// answers how many rows it holds. `entity` is [`listed_entity`].
pub fn listings<'a>(logs: &'a LogService, entity: &'a str, limit: usize) -> Vec<Box<dyn Fn() -> usize + 'a>> {
    type Read<'a> = Box<dyn Fn() -> usize + 'a>;
    let audit = |filter: AuditFilter<'a>| -> Read<'a> {
        Box::new(move || count(&logs.audit(&filter, None, limit).expect("audit page"), "entries"))
    };
    let webhooks = |source: Option<&'a str>, status: Option<&'a str>| -> Read<'a> {
        Box::new(move || count(&logs.webhooks(source, status, None, limit).expect("webhook page"), "webhooks"))
    };
    let notes = |status: Option<&'a str>, kind: Option<&'a str>| -> Read<'a> {
        Box::new(move || {
            count(&logs.notifications(status, kind, None, limit).expect("notification page"), "notifications")
        })
    };
    vec![
        audit(AuditFilter { entity_type: Some("bulk_action"), ..Default::default() }),
        audit(AuditFilter { entity_type: Some("order"), ..Default::default() }),
        audit(AuditFilter { entity_type: Some("order"), entity_id: Some(entity), ..Default::default() }),
        audit(AuditFilter::default()),
        audit(AuditFilter { actor: Some("admin:bob"), ..Default::default() }),
        audit(AuditFilter { action: Some("saga.resume"), ..Default::default() }),
        webhooks(None, Some("needs_review")),
        webhooks(Some("payment"), Some("processed")),
        webhooks(Some("carrier"), None),
        webhooks(None, None),
        notes(Some("FAILED"), None),
        notes(Some("SENT"), None),
        notes(None, Some("refund_failed_alert")),
        notes(Some("SENT"), Some("order_shipped")),
        notes(None, None),
    ]
}

/// The columns of [`listings`].
pub const HEADER: &[&str] = &[
    "audit bulk_action (0.1%)",
    "audit order (60%)",
    "audit one order (10 rows)",
    "audit, no filter",
    "audit actor=admin:bob (0.1%, scan budget)",
    "audit action=saga.resume (30%)",
    "webhooks needs_review (0.1%)",
    "webhooks payment + processed (66%)",
    "webhooks carrier (30%)",
    "webhooks, no filter",
    "notifications FAILED (0.1%)",
    "notifications SENT (98%)",
    "notifications refund_failed_alert (0.1%)",
    "notifications SENT + order_shipped (24%)",
    "notifications, no filter",
];

fn count(page: &Value, field: &str) -> usize {
    page[field].as_array().map_or(0, Vec::len)
}
