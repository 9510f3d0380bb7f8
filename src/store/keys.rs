//! Every table's keys, built in one place ([`super::tables`] documents the layout). A
//! [`Key`] carries its table, so a caller names the row it means (`keys::order(id)`) and
//! cannot pair bytes with the wrong table or lay them out differently from another caller.
//! The layout is on disk: a change here must keep existing stores readable (the tests at
//! the end pin it byte for byte).

use super::tables::{ListingFilter, Table};
use crate::domain::email::Email;
use crate::domain::ids::{CategoryId, CustomerId, ItemKey, NotificationId, OrderId, OwnerId, ProductId, SagaId};
use crate::domain::partition::Partition;
use crate::domain::quarantine::{KeyKind, QuarantineKey};

/// One row's key in one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    table: Table,
    bytes: Vec<u8>,
}

/// Where a group of rows of one table begins: every key that starts with these bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    table: Table,
    bytes: Vec<u8>,
}

impl Key {
    fn new(table: Table, bytes: impl Into<Vec<u8>>) -> Key {
        Key { table, bytes: bytes.into() }
    }

    pub fn table(&self) -> Table {
        self.table
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl Prefix {
    fn new(table: Table, bytes: impl Into<Vec<u8>>) -> Prefix {
        Prefix { table, bytes: bytes.into() }
    }

    /// Every row of `table`.
    pub fn all(table: Table) -> Prefix {
        Prefix::new(table, Vec::new())
    }

    pub fn table(&self) -> Table {
        self.table
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

pub fn customer(id: CustomerId) -> Key {
    Key::new(Table::Customers, id.as_bytes().as_slice())
}

/// The row that makes an email address taken (its lookup form: case and dots folded).
pub fn customer_email(email: &Email) -> Key {
    Key::new(Table::CustomerEmails, email.lookup_key().into_bytes())
}

/// A session, by the SHA-256 of its token (`services::token_hash`): the token is never stored.
pub fn session(token_digest: &[u8; 32]) -> Key {
    Key::new(Table::Sessions, token_digest.as_slice())
}

pub fn staff_session(id_digest: &[u8; 32]) -> Key {
    Key::new(Table::StaffSessions, id_digest.as_slice())
}

/// A bound past every [`session`] and [`verify_token`] key (each a 32-byte digest).
pub fn past_every_token_digest() -> Vec<u8> {
    vec![0xff; 33]
}

/// An email verification token, by its SHA-256 like a session.
pub fn verify_token(token_digest: &[u8; 32]) -> Key {
    Key::new(Table::VerifyTokens, token_digest.as_slice())
}

pub fn category(id: CategoryId) -> Key {
    Key::new(Table::Categories, id.as_bytes().as_slice())
}

pub fn product(id: ProductId) -> Key {
    Key::new(Table::Products, id.as_bytes().as_slice())
}

/// An inventory item's 32 bytes: product id then variant id (zeros for a product without
/// variants).
fn item_bytes(item: &ItemKey) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(item.product_id.as_bytes());
    if let Some(v) = item.variant_id {
        out[16..].copy_from_slice(v.as_bytes());
    }
    out
}

pub fn stock(item: &ItemKey) -> Key {
    Key::new(Table::Stock, item_bytes(item).as_slice())
}

/// How much of `item` `owner` holds: the item first, so one item's reservations are a prefix.
pub fn reservation(item: &ItemKey, owner: &OwnerId) -> Key {
    Key::new(Table::Reservations, [item_bytes(item).as_slice(), owner.as_bytes()].concat())
}

pub fn reservations_of(item: &ItemKey) -> Prefix {
    Prefix::new(Table::Reservations, item_bytes(item).as_slice())
}

/// The owner id in a [`reservation`] key.
pub fn owner_in_reservation(key: &[u8]) -> &[u8] {
    key.get(32..).unwrap_or_default()
}

pub fn cart(customer: CustomerId) -> Key {
    Key::new(Table::Carts, customer.as_bytes().as_slice())
}

/// A domain event by its sequence number (big-endian, so the log reads in order).
pub fn event(seq: u64) -> Key {
    Key::new(Table::Events, seq.to_be_bytes())
}

/// An order's entry for the event `seq`: the order id (an order's entries are that
/// prefix), then the seq, so they sort in log order.
pub fn order_event(order: OrderId, seq: u64) -> Key {
    Key::new(Table::EventsByOrder, [order.as_bytes().as_slice(), &seq.to_be_bytes()].concat())
}

pub fn events_of_order(order: OrderId) -> Prefix {
    Prefix::new(Table::EventsByOrder, order.as_bytes().as_slice())
}

/// An audit row by its sequence number.
pub fn audit(seq: u64) -> Key {
    Key::new(Table::Audit, seq.to_be_bytes())
}

/// The audit rows of one entity; the row's sequence number follows.
pub fn audit_of_entity(entity_type: &str, entity_id: &str) -> Prefix {
    Prefix::new(Table::AuditByEntity, audit_entity_prefix(entity_type, entity_id))
}

/// An audit row's entry among its entity's rows.
pub fn audit_entity_row(entity_type: &str, entity_id: &str, seq: u64) -> Key {
    Key::new(Table::AuditByEntity, [audit_entity_prefix(entity_type, entity_id), seq.to_be_bytes().to_vec()].concat())
}

fn audit_entity_prefix(entity_type: &str, entity_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(entity_type.len() + entity_id.len() + 2);
    k.extend_from_slice(entity_type.as_bytes());
    k.push(0);
    k.extend_from_slice(entity_id.as_bytes());
    k.push(0);
    k
}

pub fn notification(id: NotificationId) -> Key {
    Key::new(Table::Outbox, id.as_bytes().as_slice())
}

/// A notification's place in the delivery queue: due time first, so what is due is a range.
pub fn outbox_due(at_ms: i64, id: NotificationId) -> Key {
    Key::new(Table::OutboxDue, due_key(at_ms, id.as_bytes()))
}

/// A table of timers keyed by due time (ms, u64 BE; before 1970 counts as 0) then a 16-byte
/// id, so that what is due is one range from the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueQueue {
    /// Notifications to deliver ([`outbox_due`]).
    Outbox,
    /// Unpaid orders to cancel ([`order_expiry`]).
    OrderExpiry,
}

impl DueQueue {
    fn table(self) -> Table {
        match self {
            DueQueue::Outbox => Table::OutboxDue,
            DueQueue::OrderExpiry => Table::OrderExpiry,
        }
    }

    /// Where the entries due at `at_ms` begin (the bound of a range).
    pub fn from(self, at_ms: i64) -> Key {
        Key::new(self.table(), due_key(at_ms, &[0; 16]))
    }

    /// An entry read back from the queue (to delete it once handled).
    pub fn entry(self, key: &[u8]) -> Key {
        Key::new(self.table(), key)
    }
}

fn due_key(at_ms: i64, id: &[u8; 16]) -> Vec<u8> {
    [&(at_ms.max(0) as u64).to_be_bytes()[..], id].concat()
}

pub fn order(id: OrderId) -> Key {
    Key::new(Table::Orders, id.as_bytes().as_slice())
}

/// An order's entry among its customer's, whose orders are then in creation order.
pub fn customer_order(customer: CustomerId, order: OrderId) -> Key {
    Key::new(Table::OrdersByCustomer, [customer.as_bytes().as_slice(), order.as_bytes()].concat())
}

pub fn orders_of_customer(customer: CustomerId) -> Prefix {
    Prefix::new(Table::OrdersByCustomer, customer.as_bytes().as_slice())
}

/// The order id in a [`customer_order`] key.
pub fn order_in_customer_order(key: &[u8]) -> &[u8] {
    key.get(16..).unwrap_or_default()
}

/// The order a payment authorization belongs to.
pub fn order_by_authorization(authorization_id: &str) -> Key {
    Key::new(Table::OrdersByAuthorization, authorization_id.as_bytes())
}

/// The order a tracking number was given to.
pub fn order_by_tracking(tracking_number: &str) -> Key {
    Key::new(Table::OrdersByTracking, tracking_number.as_bytes())
}

/// An unpaid order's expiry timer: the time first, so what is due is a range.
pub fn order_expiry(at_ms: i64, order: OrderId) -> Key {
    Key::new(Table::OrderExpiry, due_key(at_ms, order.as_bytes()))
}

pub fn saga(id: SagaId) -> Key {
    Key::new(Table::Sagas, id.as_bytes().as_slice())
}

/// The mark of a saga not yet terminal (resumed on start).
pub fn active_saga(id: SagaId) -> Key {
    Key::new(Table::ActiveSagas, id.as_bytes().as_slice())
}

/// What a customer's Idempotency-Key was given for: one key may place an order and cancel
/// one, each its own row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdempotentOperation {
    Place,
    Cancel(OrderId),
}

/// The saga a customer's Idempotency-Key started for `operation`: the customer, the key's
/// SHA-256 (any length of key, fixed length of row key), then the operation (`place`, or
/// `cancel` and the order id).
pub fn idempotency(customer: CustomerId, idempotency_key: &str, operation: IdempotentOperation) -> Key {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(idempotency_key.as_bytes());
    Key::new(Table::Idempotency, [customer.as_bytes().as_slice(), digest.as_slice(), &operation.bytes()].concat())
}

impl IdempotentOperation {
    /// The operation's part of an Idempotency row's key.
    fn bytes(self) -> Vec<u8> {
        match self {
            IdempotentOperation::Place => b"place".to_vec(),
            IdempotentOperation::Cancel(order) => [b"cancel".as_slice(), order.as_bytes()].concat(),
        }
    }
}

/// The saga an operator's Idempotency-Key started for `operation`: apart from every
/// customer's keys (a customer's row starts with the customer's 16-byte id).
pub fn operator_idempotency(idempotency_key: &str, operation: IdempotentOperation) -> Key {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(idempotency_key.as_bytes());
    Key::new(Table::Idempotency, [b"operator:".as_slice(), digest.as_slice(), &operation.bytes()].concat())
}

/// Once per order: the cancellation started when its payment timed out.
pub fn expiry_cancellation(order: OrderId) -> Key {
    Key::new(Table::Idempotency, [b"expire:".as_slice(), order.as_bytes()].concat())
}

/// Once per payment authorization: the refund saga started for a capture that came after
/// its order was cancelled.
pub fn refund_of_capture(authorization_id: &str) -> Key {
    Key::new(Table::Idempotency, [b"refund_capture:".as_slice(), authorization_id.as_bytes()].concat())
}

/// Once per saga: the alert that its refund failed.
pub fn refund_failed_alert(saga: SagaId) -> Key {
    Key::new(Table::Idempotency, [b"refund_failed_alert:".as_slice(), saga.as_bytes()].concat())
}

/// The time index entry of an Idempotency row: its creation time, then its key.
pub fn idempotency_by_time(at_ms: i64, idempotency: &Key) -> Key {
    Key::new(Table::IdempotencyByTime, time_key(at_ms, idempotency.as_bytes()))
}

/// The time index entry of a saga that became terminal at `at_ms`.
pub fn finished_saga(at_ms: i64, saga: SagaId) -> Key {
    Key::new(Table::FinishedSagas, time_key(at_ms, saga.as_bytes()))
}

/// Every webhook event, by its source and the sender's event id.
pub fn webhook_event(source: &str, event_id: &str) -> Key {
    Key::new(Table::WebhookEvents, webhook_event_bytes(source, event_id))
}

fn webhook_event_bytes(source: &str, event_id: &str) -> Vec<u8> {
    [source.as_bytes(), &[0], event_id.as_bytes()].concat()
}

/// The time index entry of a webhook event received at `received_ms`.
pub fn webhook_event_by_time(received_ms: i64, source: &str, event_id: &str) -> Key {
    Key::new(Table::WebhookEventsByTime, webhook_order_key(received_ms, source, event_id))
}

/// A webhook event's place in the order of reception: received (ms, BE) ++ its key.
pub fn webhook_order_key(received_ms: i64, source: &str, event_id: &str) -> Vec<u8> {
    time_key(received_ms, &webhook_event_bytes(source, event_id))
}

/// A durable cursor of an event-log consumer.
pub fn cursor(consumer: &str) -> Key {
    Key::new(Table::Cursors, consumer.as_bytes())
}

/// A quarantined key's row: the kind's byte (its place in [`KeyKind`]), then the id.
pub fn quarantine(key: &QuarantineKey) -> Key {
    let kind = match key.kind {
        KeyKind::Cart => 0,
        KeyKind::Order => 1,
        KeyKind::Inventory => 2,
    };
    Key::new(Table::Quarantine, [&[kind][..], key.id.as_bytes()].concat())
}

/// The alert sent for one retry episode of a saga: the saga, then when the episode began.
pub fn saga_alert(saga: SagaId, retrying_since_ms: i64) -> Key {
    Key::new(Table::SagaAlerts, [saga.as_bytes().as_slice(), &time_bound(retrying_since_ms)].concat())
}

/// Every alert marker of a saga (the retention sweep deletes them with it).
pub fn saga_alerts_of(saga: &[u8]) -> Prefix {
    Prefix::new(Table::SagaAlerts, saga)
}

pub fn bulk_action(id: uuid::Uuid) -> Key {
    Key::new(Table::BulkActions, id.as_bytes().as_slice())
}

/// Key of a time-ordered index (`IdempotencyByTime`, `FinishedSagas`...): the time first, so
/// everything older than a cutoff is one range from the start, then the indexed key.
pub fn time_key(at_ms: i64, key: &[u8]) -> Vec<u8> {
    [&(at_ms.max(0) as u64).to_be_bytes()[..], key].concat()
}

/// Where the entries of a time index at or after `at_ms` begin.
pub fn time_bound(at_ms: i64) -> Vec<u8> {
    (at_ms.max(0) as u64).to_be_bytes().to_vec()
}

/// A time-index entry moved to `at_ms` (its indexed key kept).
pub fn retimed(entry: &[u8], at_ms: i64) -> Vec<u8> {
    time_key(at_ms, time_key_rest(entry))
}

/// The indexed key of a time-index entry.
pub fn time_key_rest(key: &[u8]) -> &[u8] {
    key.get(8..).unwrap_or_default()
}

/// Whose sagas an entry of [`Table::SagasByOwner`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SagaOwner {
    Order,
    Customer,
}

/// Where the entries of one order's (or customer's) sagas begin in [`Table::SagasByOwner`];
/// the saga id follows.
pub fn saga_owner_prefix(owner: SagaOwner, id: &[u8; 16]) -> Vec<u8> {
    let kind = match owner {
        SagaOwner::Order => b'o',
        SagaOwner::Customer => b'c',
    };
    [&[kind][..], id].concat()
}

/// The retry policy an operator set (or the definition seeded) for one step of a saga type:
/// `{saga_type}/{step}`.
pub fn retry_policy(saga_type: &str, step: &str) -> Key {
    Key::new(Table::RetryPolicies, format!("{saga_type}/{step}").into_bytes())
}

/// The saga type and step of a [`retry_policy`] key (read back from the table).
pub fn retry_policy_of(key: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(key);
    let (saga_type, step) = text.split_once('/').unwrap_or((&text, ""));
    (saga_type.to_string(), step.to_string())
}

/// The smallest saga id (a UUIDv7: its first 48 bits are the creation time in ms) of
/// millisecond `ms`: the bound of a walk of saga keys (or of the saga ids that end index
/// entries) created at or after `ms`.
pub fn saga_id_floor(ms: i64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..6].copy_from_slice(&(ms.clamp(0, (1 << 48) - 1) as u64).to_be_bytes()[2..]);
    k
}

/// The entry numbered `seq` of the cache invalidation log (see [`super::invalidations`]).
pub fn cache_invalidation(seq: u64) -> Key {
    Key::new(Table::CacheInvalidations, seq.to_be_bytes())
}

/// The sequence number of an [`event`], [`audit`] or [`cache_invalidation`] key (or of the
/// entry an index of them points to), if it is one.
pub fn seq_of(key: &[u8]) -> Option<u64> {
    key.try_into().ok().map(u64::from_be_bytes)
}

/// The first key after `key` in its table: where a walk resumes after it.
pub fn successor(key: &[u8]) -> Vec<u8> {
    [key, &[0]].concat()
}

/// A log entry staged by the owner of `partition`, which took it at `epoch` (see
/// [`super::staged`]): partition, then epoch, then seq, so a partition's entries sort in the
/// order they were committed, a later owner's (a higher epoch) after an earlier one's.
pub fn staged_log(partition: Partition, epoch: i64, seq: u64) -> Key {
    let mut k = Vec::with_capacity(18);
    k.extend_from_slice(&partition.0.to_be_bytes());
    k.extend_from_slice(&epoch.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    Key::new(Table::StagedLogs, k)
}

/// The partition a [`staged_log`] key names.
pub fn partition_of_staged_log(key: &[u8]) -> Option<Partition> {
    key.get(..2).map(|b| Partition(u16::from_be_bytes([b[0], b[1]])))
}

/// The rows of one admin listing filter.
pub fn listing(filter: ListingFilter<'_>) -> Prefix {
    Prefix::new(filter.table(), filter.prefix())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::VariantId;
    use uuid::Uuid;

    fn id(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    /// Existing stores hold these bytes: a layout change must fail here first.
    #[test]
    fn key_layouts_are_pinned_byte_for_byte() {
        let (c, o, s) = (CustomerId(id(1)), OrderId(id(2)), SagaId(id(3)));
        assert_eq!((order(o).table(), order(o).as_bytes()), (Table::Orders, &[2u8; 16][..]));
        assert_eq!(customer_order(c, o).as_bytes(), [[1u8; 16], [2; 16]].concat());
        assert_eq!(order_in_customer_order(customer_order(c, o).as_bytes()), &[2u8; 16]);
        let item = ItemKey { product_id: ProductId(id(4)), variant_id: None };
        assert_eq!(reservation(&item, &OwnerId(id(5))).as_bytes(), [[4u8; 16], [0; 16], [5; 16]].concat());
        let variant = ItemKey { product_id: ProductId(id(4)), variant_id: Some(VariantId(id(6))) };
        assert_eq!(stock(&variant).as_bytes(), [[4u8; 16], [6; 16]].concat());
        assert_eq!(
            order_expiry(0x0102, o).as_bytes(),
            [&[0, 0, 0, 0, 0, 0, 1, 2][..], &[2; 16]].concat(),
            "time (u64 BE) then order id"
        );
        assert_eq!(outbox_due(-5, NotificationId(id(7))).as_bytes(), [[0u8; 8].as_slice(), &[7; 16]].concat());
        let idem = idempotency(c, "k", IdempotentOperation::Place);
        let sha_of_k = hex::decode("8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a").unwrap();
        assert_eq!(idem.as_bytes(), [&[1u8; 16][..], &sha_of_k, b"place"].concat());
        assert_eq!(idempotency_by_time(1, &idem).as_bytes(), [&1u64.to_be_bytes()[..], idem.as_bytes()].concat());
        assert_eq!(refund_of_capture("auth_1").as_bytes(), b"refund_capture:auth_1");
        assert_eq!(refund_failed_alert(s).as_bytes(), [&b"refund_failed_alert:"[..], &[3; 16]].concat());
        assert_eq!(webhook_event("payment", "evt_1").as_bytes(), b"payment\0evt_1");
        assert_eq!(webhook_event_by_time(2, "p", "e").as_bytes(), [&2u64.to_be_bytes()[..], b"p\0e"].concat());
        assert_eq!(saga_alert(s, 9).as_bytes(), [&[3u8; 16][..], &9u64.to_be_bytes()].concat());
        assert_eq!(quarantine(&QuarantineKey::new(KeyKind::Order, id(8))).as_bytes(), [&[1u8][..], &[8; 16]].concat());
        assert_eq!(quarantine(&QuarantineKey::new(KeyKind::Cart, id(8))).as_bytes()[0], 0);
        assert_eq!(quarantine(&QuarantineKey::new(KeyKind::Inventory, id(8))).as_bytes()[0], 2);
        assert_eq!(retry_policy("place_order", "reserve").as_bytes(), b"place_order/reserve");
        assert_eq!(
            retry_policy_of(retry_policy("place_order", "reserve").as_bytes()),
            ("place_order".to_string(), "reserve".to_string())
        );
        assert_eq!(saga_id_floor(0x0102_0304_0506), [1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(saga_id_floor(-1), [0; 16], "before 1970 is the first id");
        assert_eq!(idempotency(c, "k", IdempotentOperation::Place).as_bytes(), idem.as_bytes());
        assert_eq!(
            idempotency(c, "k", IdempotentOperation::Cancel(o)).as_bytes(),
            [&[1u8; 16][..], &sha_of_k, b"cancel", &[2; 16]].concat()
        );
        assert_eq!(seq_of(event(258).as_bytes()), Some(258));
        assert_eq!(seq_of(audit(7).as_bytes()), Some(7));
        assert_eq!(cache_invalidation(258).as_bytes(), [0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(seq_of(cache_invalidation(9).as_bytes()), Some(9));
        assert_eq!(seq_of(b"short"), None);
        assert_eq!(successor(b"ab"), b"ab\0");
        assert!(past_every_token_digest().as_slice() > session(&[0xff; 32]).as_bytes());
        assert_eq!(audit_of_entity("order", "x").as_bytes(), b"order\0x\0");
        assert_eq!(audit_entity_row("order", "x", 1).as_bytes(), b"order\0x\0\0\0\0\0\0\0\0\x01");
        assert_eq!(event(258).as_bytes(), [0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(cursor("alerts").as_bytes(), b"alerts");
        assert_eq!(expiry_cancellation(o).as_bytes(), [&b"expire:"[..], &[2; 16]].concat());
        assert_eq!(saga_owner_prefix(SagaOwner::Customer, &[1; 16]), [&[b'c'][..], &[1; 16]].concat());
    }

    #[test]
    fn an_orders_event_keys_share_its_id_and_sort_by_seq() {
        let (a, b) = (OrderId(id(1)), OrderId(id(2)));
        let k = order_event(a, 0x0102).into_bytes();
        assert_eq!((&k[..16], &k[16..]), (&[1u8; 16][..], &0x0102u64.to_be_bytes()[..]));
        assert!(k.starts_with(events_of_order(a).as_bytes()));
        // Numeric order past a byte boundary, and every entry of `a` before any of `b`.
        assert!(order_event(a, 255).into_bytes() < order_event(a, 256).into_bytes());
        assert!(order_event(a, u64::MAX).into_bytes() < order_event(b, 0).into_bytes());
    }

    #[test]
    fn keys_of_different_kinds_never_share_a_row() {
        let id = Uuid::now_v7();
        let rows: Vec<_> = KeyKind::ALL.iter().map(|&k| quarantine(&QuarantineKey::new(k, id))).collect();
        assert!(rows[0] != rows[1] && rows[1] != rows[2] && rows[0] != rows[2]);
    }

    #[test]
    fn due_keys_sort_by_time() {
        let n = NotificationId(id(9));
        let due = |at, n| outbox_due(at, n).into_bytes();
        assert!(due(5, n) < due(6, NotificationId(id(0))));
        let from = |at| DueQueue::Outbox.from(at).into_bytes();
        assert!(from(5) <= due(5, n) && due(5, n) < from(6));
        assert!(time_key(5, &[0xff; 40]) < time_bound(6));
        assert!(time_bound(6) <= time_key(6, &[]));
        assert_eq!(time_key_rest(&time_key(7, b"abc")), b"abc");
        assert_eq!(retimed(&time_key(7, b"abc"), 9), time_key(9, b"abc"));
    }
}
