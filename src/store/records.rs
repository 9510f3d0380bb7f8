//! Persisted record types that are not domain aggregates, and the version of every record.
//! Records are plain structs (no serde tagging, flattening or skipping: bincode 2 cannot
//! decode those reliably); JSON payloads are stored as strings.

use serde::{Deserialize, Serialize};

use super::codec::Record;
use crate::domain::cart::Cart;
use crate::domain::ids::{CustomerId, NotificationId};
use crate::domain::inventory::StockRecord;
use crate::domain::product::{Category, Product};
use crate::domain::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub customer_id: CustomerId,
    pub email: String,
    pub name: Option<String>,
    pub password_hash: String,
    pub email_verified: bool,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub customer_id: CustomerId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Who signed in to the console: the staff token given at sign-in decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StaffRole {
    Admin,
    /// Sees orders only.
    Fulfillment,
}

impl StaffRole {
    pub fn name(self) -> &'static str {
        match self {
            StaffRole::Admin => "admin",
            StaffRole::Fulfillment => "fulfillment",
        }
    }
}

/// A console session (kept under the SHA-256 of its id, the cookie's value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaffSession {
    pub role: StaffRole,
    /// The name the operator gave at sign-in, shown in pages and recorded in audit rows.
    pub operator: Option<String>,
    /// Rendered into forms (it is not the session id) and required back on every POST.
    pub csrf: String,
    /// Which staff token signed in (a one-way fingerprint of it): once that token is
    /// rotated, the session is no session.
    pub token_fingerprint: [u8; 32],
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// An email verification token (kept under its SHA-256 hash): whose, and until when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyToken {
    pub customer_id: CustomerId,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: u64,
    pub event_type: String,
    pub at: Timestamp,
    /// JSON text of the event's data.
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: Timestamp,
    /// Who did it: "admin", "fulfillment", "system", a customer id.
    pub actor: String,
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    /// JSON text.
    pub before: String,
    /// JSON text.
    pub after: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotificationStatus {
    Queued,
    Sent,
    Failed,
}

impl NotificationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationStatus::Queued => "QUEUED",
            NotificationStatus::Sent => "SENT",
            NotificationStatus::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub notification_id: NotificationId,
    pub kind: String,
    pub to: String,
    pub subject: String,
    pub status: NotificationStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// JSON text.
    pub payload: String,
    pub created_at: Timestamp,
    pub next_attempt_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Notification {
    pub fn queued(kind: &str, to: &str, subject: String, payload: serde_json::Value) -> Notification {
        let now = Timestamp::now();
        Notification {
            notification_id: NotificationId::new(),
            kind: kind.to_string(),
            to: to.to_string(),
            subject,
            status: NotificationStatus::Queued,
            attempts: 0,
            last_error: None,
            payload: payload.to_string(),
            created_at: now,
            next_attempt_at: now,
            updated_at: now,
        }
    }
}

/// A webhook event as received, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEvent {
    pub source: String,
    pub event_id: String,
    pub event_type: String,
    /// "processed", "needs_review", "ignored", "rejected".
    pub status: String,
    pub detail: String,
    /// JSON text of the whole body.
    pub body: String,
    pub order_id: Option<uuid::Uuid>,
    pub received_at: Timestamp,
}

#[cfg(test)]
impl WebhookEvent {
    /// A processed payment webhook `evt_1`, received `at`, bound to `order_id`.
    pub(crate) fn sample(at: Timestamp, order_id: Option<uuid::Uuid>) -> WebhookEvent {
        WebhookEvent {
            source: "payment".into(),
            event_id: "evt_1".into(),
            event_type: "payment.captured".into(),
            status: "processed".into(),
            detail: String::new(),
            body: "{}".into(),
            order_id,
            received_at: at,
        }
    }
}

impl Record for WebhookEvent {
    const VERSION: u8 = 1;
}

impl Record for Customer {
    const VERSION: u8 = 1;
}
impl Record for Session {
    const VERSION: u8 = 1;
}
impl Record for StaffSession {
    const VERSION: u8 = 1;
}
/// Version 1 of a verification token was the bare customer id (a `uuid::Uuid` record), with
/// no expiry; `CustomerService` still reads those.
impl Record for VerifyToken {
    const VERSION: u8 = 2;
}
impl Record for EventRecord {
    const VERSION: u8 = 1;
}
#[cfg(test)]
impl AuditEntry {
    /// An admin's confirmation of `entity_id` (an order), for tests of the logs.
    pub(crate) fn sample(entity_id: &str) -> AuditEntry {
        AuditEntry {
            at: Timestamp(0),
            actor: "admin".into(),
            action: "confirm".into(),
            entity_type: "order".into(),
            entity_id: entity_id.into(),
            before: "{}".into(),
            after: "{}".into(),
        }
    }
}

/// A log entry a server staged in a partition it owns, for the shared partition's owner to
/// move into its log (see `store::staged`); `at` is when it was first committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagedEntry {
    pub at: Timestamp,
    pub log: StagedLog,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StagedLog {
    Event {
        event_type: String,
        data: String,
        order_id: Option<crate::domain::ids::OrderId>,
    },
    Audit(AuditEntry),
    Notification(Notification),
    /// Appended last: entries staged before it existed decode as they did.
    Invalidation(super::invalidations::Invalidation),
}

impl Record for StagedEntry {
    const VERSION: u8 = 1;
}
impl Record for AuditEntry {
    const VERSION: u8 = 1;
}
impl Record for Notification {
    const VERSION: u8 = 1;
}
impl Record for Cart {
    const VERSION: u8 = 1;
}
impl Record for StockRecord {
    const VERSION: u8 = 1;
}
impl Record for Product {
    const VERSION: u8 = 1;
}
impl Record for crate::domain::order::Order {
    const VERSION: u8 = 1;
}
impl Record for crate::retry::RetryPolicy {
    const VERSION: u8 = 1;
}
impl Record for Category {
    const VERSION: u8 = 1;
}
impl Record for crate::domain::quarantine::QuarantineEntry {
    const VERSION: u8 = 1;
}
/// Index values that are just an id.
impl Record for uuid::Uuid {
    const VERSION: u8 = 1;
}
/// Reservation quantities.
impl Record for u32 {
    const VERSION: u8 = 1;
}
/// Event-log cursors.
impl Record for u64 {
    const VERSION: u8 = 1;
}
