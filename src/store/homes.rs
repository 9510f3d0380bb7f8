//! Where each row lives: the partition a row belongs to follows from its table and key
//! alone (see [`crate::domain::partition`]), so a write set can say which partitions it
//! touches without reading anything, and the commit's fence checks exactly those.
//!
//! A cart, an order, a saga and what indexes them live in the partition of the id they are
//! about (a customer's, an order's, a saga's: minted alike, so one customer's land in one
//! partition); stock and reservations in their variant's (or, without variants, their
//! product's). Everything else (customers, sessions, the catalogue, the event and audit
//! logs and their indexes, the outbox, webhooks, operators' tables) has no partition of its
//! own: it is [`Home::Shared`], written by the owner of [`Partition::SHARED`]. A server that
//! does not own that partition stages its log entries in one of its own (see `staged`).
//! Two shared tables are written in another partition entry by entry: the payment and
//! carrier indexes, each entry in the partition of the order it names ([`written_in`]).
//!
//! The layouts read here are the ones [`super::keys`] builds; the tests build each key
//! there and check its home, so a layout change that this module missed fails them.

use super::codec::Record;
use super::keys::partition_of_staged_log;
use super::records::WebhookEvent;
use super::tables::Table;
use crate::domain::partition::{Affinity, Partition, Partitions};

/// A row's home.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Home {
    /// The partition of an id with this affinity.
    Of(Affinity),
    /// The partition the key names itself.
    In(Partition),
    /// No partition of its own.
    Shared,
}

impl Home {
    pub(crate) fn partition(self, count: Partitions) -> Partition {
        match self {
            Home::Of(affinity) => count.of_affinity(affinity),
            Home::In(partition) => partition,
            Home::Shared => Partition::SHARED,
        }
    }
}

/// The home of the row at `key` in `table`. A key too short for its table's layout (none
/// is written) counts as shared.
pub(crate) fn home(table: Table, key: &[u8]) -> Home {
    match table {
        // The id first: customer, order, saga, then anything.
        Table::Carts
        | Table::Orders
        | Table::OrdersByCustomer
        | Table::Sagas
        | Table::ActiveSagas
        | Table::SagaAlerts => id_at(key, 0),
        // A time, a status or a filter first, the order's or saga's id last.
        Table::FinishedSagas
        | Table::OrderExpiry
        | Table::OrdersByStatus
        | Table::SagasByFilter
        | Table::SagasByOwner => id_at(key, key.len().saturating_sub(16)),
        // The item: product id, then variant id (zeros without variants).
        Table::Stock | Table::Reservations => item(key),
        Table::Idempotency => idempotency(key),
        // Its creation time, then the Idempotency row's key.
        Table::IdempotencyByTime => key.get(8..).map_or(Home::Shared, idempotency),
        // Staged by the partition's owner (see `staged`).
        Table::StagedLogs => partition_of_staged_log(key).map_or(Home::Shared, Home::In),
        Table::Customers
        | Table::CustomerEmails
        | Table::Sessions
        | Table::VerifyTokens
        | Table::Categories
        | Table::Products
        | Table::Events
        | Table::EventsByOrder
        | Table::Audit
        | Table::AuditByEntity
        | Table::AuditByType
        | Table::Outbox
        | Table::OutboxDue
        | Table::NotificationsByFilter
        | Table::RetryPolicies
        // Read by anyone; each entry written in its order's partition (see `written_in`).
        | Table::OrdersByAuthorization
        | Table::OrdersByTracking
        | Table::WebhookEvents
        | Table::WebhookEventsByTime
        | Table::WebhooksByFilter
        | Table::Cursors
        | Table::IndexBuilds
        | Table::Quarantine
        | Table::BulkActions
        | Table::StaffSessions
        | Table::CacheInvalidations => Home::Shared,
    }
}

/// The partition a write of the row at `key` in `table` touches (`value`: what a put
/// writes, `None` for a removal): the row's home, but for
/// - the removal of a staged log entry, which the shared partition's owner does as it
///   moves the entry into its log (while the entry's partition's owner may go on staging
///   others);
/// - an entry of the payment and carrier indexes: keyed by a number the outside world chose
///   (an authorization, a tracking number), it names one order and is written with that
///   order, by the owner of the order's partition, so it is fenced there. No write for
///   another order names the same number: an authorization is its order's own, a tracking
///   number is claimed once (a must-be-new row, which the database decides).
/// - a webhook event bound to an order (its payment or delivery), written by the order's
///   owner with the order (an event of no order is partition 0's);
/// - an operator's Idempotency row, or the one refund of a capture: keyed by what the
///   outside world chose, each names the saga it started (its value), minted in the order's
///   partition and written with it.
pub(crate) fn written_in(table: Table, key: &[u8], value: Option<&[u8]>, count: Partitions) -> Partition {
    let of_id =
        |value: &[u8]| <uuid::Uuid as Record>::decode(table, value).map_or(Partition::SHARED, |id| count.of(&id));
    match (table, value) {
        (Table::StagedLogs, None) => Partition::SHARED,
        (Table::OrdersByAuthorization | Table::OrdersByTracking, Some(value)) => of_id(value),
        (Table::WebhookEvents, Some(value)) => WebhookEvent::decode(table, value)
            .ok()
            .and_then(|event| event.order_id)
            .map_or(Partition::SHARED, |order| count.of(&order)),
        (Table::Idempotency, Some(value)) if home(table, key) == Home::Shared => of_id(value),
        _ => home(table, key).partition(count),
    }
}

/// The table whose row a row of `table` is written with, in the same write set (an index
/// or time entry of it): such a row lies where that row does (see [`written_in`]).
pub(crate) fn follows(table: Table) -> Option<Table> {
    match table {
        Table::WebhookEventsByTime | Table::WebhooksByFilter => Some(Table::WebhookEvents),
        Table::IdempotencyByTime => Some(Table::Idempotency),
        _ => None,
    }
}

/// The home of the 16-byte id at `at` in `key`.
fn id_at(key: &[u8], at: usize) -> Home {
    match key.get(at..at + 16).and_then(|id| <&[u8; 16]>::try_from(id).ok()) {
        Some(id) => Home::Of(Affinity::of_bytes(id)),
        None => Home::Shared,
    }
}

/// An inventory item's: its variant's, or its product's when it has none (zeros).
fn item(key: &[u8]) -> Home {
    match key.get(16..32) {
        Some(variant) if variant.iter().any(|b| *b != 0) => id_at(key, 16),
        _ => id_at(key, 0),
    }
}

/// An Idempotency row: a customer's key starts with the customer id; the others with a tag
/// (a UUIDv7 never starts with these bytes: its first six are a time in ms, and ASCII
/// letters there would be a date past the year 3800), the id they are once-per after it.
fn idempotency(key: &[u8]) -> Home {
    const ONCE_PER_ID: [&[u8]; 2] = [b"expire:", b"refund_failed_alert:"];
    const SHARED: [&[u8]; 2] = [b"operator:", b"refund_capture:"];
    if let Some(tag) = ONCE_PER_ID.iter().find(|tag| key.starts_with(tag)) {
        return id_at(key, tag.len());
    }
    if SHARED.iter().any(|tag| key.starts_with(tag)) {
        return Home::Shared;
    }
    id_at(key, 0)
}

#[cfg(test)]
mod tests {
    use super::super::keys::{self, IdempotentOperation, SagaOwner};
    use super::super::tables::ListingFilter;
    use super::*;
    use crate::domain::ids::{CustomerId, ItemKey, NotificationId, OrderId, OwnerId, ProductId, SagaId, VariantId};
    use uuid::Uuid;

    fn home_of(key: keys::Key) -> Home {
        home(key.table(), key.as_bytes())
    }

    fn of(id: &Uuid) -> Home {
        Home::Of(Affinity::of(id))
    }

    #[test]
    fn carts_orders_sagas_and_their_indexes_live_with_their_id() {
        let (c, o, s) = (CustomerId(Uuid::now_v7()), OrderId(Uuid::now_v7()), SagaId(Uuid::now_v7()));
        assert_eq!(home_of(keys::cart(c)), of(&c.0));
        assert_eq!(home_of(keys::order(o)), of(&o.0));
        assert_eq!(home_of(keys::customer_order(c, o)), of(&c.0), "a customer's orders list is the customer's");
        assert_eq!(home_of(keys::order_expiry(1_700_000_000_000, o)), of(&o.0));
        assert_eq!(home_of(keys::saga(s)), of(&s.0));
        assert_eq!(home_of(keys::active_saga(s)), of(&s.0));
        assert_eq!(home_of(keys::finished_saga(1_700_000_000_000, s)), of(&s.0));
        assert_eq!(home_of(keys::saga_alert(s, 1_700_000_000_000)), of(&s.0));
        let by_owner = keys::saga_owner_prefix(SagaOwner::Order, o.0.as_bytes());
        assert_eq!(home(Table::SagasByOwner, &[by_owner, s.0.as_bytes().to_vec()].concat()), of(&s.0));
        for filter in [ListingFilter::SagaState("RUNNING"), ListingFilter::SagaType("place_order")] {
            let prefix = keys::listing(filter);
            let key = [prefix.as_bytes(), s.0.as_bytes()].concat();
            assert_eq!(home(prefix.table(), &key), of(&s.0), "{filter:?}");
        }
        let prefix = keys::listing(ListingFilter::OrderStatus("PLACED"));
        assert_eq!(home(prefix.table(), &[prefix.as_bytes(), o.0.as_bytes()].concat()), of(&o.0));
    }

    #[test]
    fn stock_and_reservations_live_with_their_variant_else_their_product() {
        let product = ProductId(Uuid::now_v7());
        let variant = VariantId(Uuid::now_v7());
        let plain = ItemKey { product_id: product, variant_id: None };
        let varied = ItemKey { product_id: product, variant_id: Some(variant) };
        let owner = OwnerId(Uuid::now_v7());
        assert_eq!(home_of(keys::stock(&plain)), of(&product.0));
        assert_eq!(home_of(keys::reservation(&plain, &owner)), of(&product.0));
        assert_eq!(home_of(keys::stock(&varied)), of(&variant.0));
        assert_eq!(home_of(keys::reservation(&varied, &owner)), of(&variant.0), "not the owner's");
    }

    #[test]
    fn an_idempotency_row_lives_with_whom_it_is_once_for() {
        let (c, o, s) = (CustomerId(Uuid::now_v7()), OrderId(Uuid::now_v7()), SagaId(Uuid::now_v7()));
        let place = keys::idempotency(c, "key-1", IdempotentOperation::Place);
        assert_eq!(home_of(place.clone()), of(&c.0));
        assert_eq!(home_of(keys::idempotency(c, "k", IdempotentOperation::Cancel(o))), of(&c.0));
        assert_eq!(home_of(keys::idempotency_by_time(1_700_000_000_000, &place)), of(&c.0));
        assert_eq!(home_of(keys::expiry_cancellation(o)), of(&o.0));
        assert_eq!(home_of(keys::refund_failed_alert(s)), of(&s.0));
        assert_eq!(home_of(keys::operator_idempotency("k", IdempotentOperation::Place)), Home::Shared);
        assert_eq!(home_of(keys::refund_of_capture("auth_1")), Home::Shared);
        let operator = keys::operator_idempotency("k", IdempotentOperation::Place);
        assert_eq!(home_of(keys::idempotency_by_time(1, &operator)), Home::Shared);
    }

    #[test]
    fn records_without_a_partition_are_shared_and_short_keys_never_panic() {
        assert_eq!(home_of(keys::customer(CustomerId(Uuid::now_v7()))), Home::Shared);
        assert_eq!(home_of(keys::product(ProductId(Uuid::now_v7()))), Home::Shared);
        assert_eq!(home_of(keys::event(7)), Home::Shared);
        assert_eq!(home_of(keys::audit(7)), Home::Shared);
        assert_eq!(home_of(keys::notification(NotificationId(Uuid::now_v7()))), Home::Shared);
        assert_eq!(home_of(keys::order_by_authorization("auth_1")), Home::Shared);
        let order = OrderId(Uuid::now_v7());
        assert_eq!(home_of(keys::order_event(order, 42)), Home::Shared, "an index of the event log");
        for table in Table::ALL {
            for len in [0, 1, 8, 15, 17, 23, 31] {
                let _ = home(table, &vec![0xab; len]);
            }
        }
        assert_eq!(home(Table::Orders, &[1; 15]), Home::Shared);
    }

    #[test]
    fn a_staged_entry_is_written_in_its_partition_and_removed_in_the_shared_one() {
        let count = Partitions::new(16).unwrap();
        let key = keys::staged_log(Partition(5), 3, 9);
        assert_eq!(home_of(key.clone()), Home::In(Partition(5)));
        assert_eq!(written_in(Table::StagedLogs, key.as_bytes(), Some(b"entry"), count), Partition(5));
        assert_eq!(written_in(Table::StagedLogs, key.as_bytes(), None, count), Partition::SHARED);
        let cart = keys::cart(CustomerId(Uuid::now_v7()));
        assert_eq!(written_in(Table::Carts, cart.as_bytes(), None, count), home_of(cart).partition(count));
    }

    #[test]
    fn a_payment_or_carrier_index_entry_is_written_in_the_partition_of_the_order_it_names() {
        let count = Partitions::new(16).unwrap();
        let order = OrderId(Uuid::now_v7());
        let value = order.0.encode();
        for key in [keys::order_by_authorization("auth_1"), keys::order_by_tracking("1Z999")] {
            let (table, key) = (key.table(), key.as_bytes());
            assert_eq!(written_in(table, key, Some(&value), count), count.of(&order.0), "{table:?}");
            assert_eq!(written_in(table, key, Some(b"not an id"), count), Partition::SHARED, "unreadable: shared");
            assert_eq!(written_in(table, key, None, count), Partition::SHARED, "a removal names no order");
        }
    }

    /// A webhook event bound to an order, with its time and listing entries, is written by
    /// the order's owner; an operator's Idempotency row (and its time entry) where the saga it
    /// names lies; without an order or a readable saga id, partition 0.
    #[test]
    fn a_webhook_event_or_an_operators_key_is_written_where_its_order_or_saga_lies() {
        use crate::domain::time::Timestamp;
        use crate::store::{retained, WebhookEvent, WriteSet};
        let count = Partitions::new(16).unwrap();
        let order = OrderId(Uuid::now_v7());
        let event = |order_id: Option<Uuid>| WebhookEvent::sample(Timestamp(1_700_000_000_000), order_id);
        let bound = retained::webhook_event(WriteSet::new(), &event(Some(order.0)), None, false);
        assert_eq!(bound.partitions(count, Partition::SHARED).into_iter().collect::<Vec<_>>(), [count.of(&order.0)]);
        let unbound = retained::webhook_event(WriteSet::new(), &event(None), None, true);
        assert_eq!(unbound.partitions(count, Partition::SHARED).into_iter().collect::<Vec<_>>(), [Partition::SHARED]);
        let swept = WriteSet::new()
            .remove(keys::webhook_event("payment", "evt_1"))
            .remove(keys::webhook_event_by_time(1_700_000_000_000, "payment", "evt_1"));
        assert_eq!(swept.partitions(count, Partition::SHARED).into_iter().collect::<Vec<_>>(), [Partition::SHARED]);

        let saga = SagaId(crate::domain::partition::alike(Uuid::now_v7(), &order.0));
        let key = keys::operator_idempotency("k", IdempotentOperation::Cancel(order));
        let keyed = retained::idempotency_key(WriteSet::new(), key.clone(), saga, Timestamp::now());
        assert_eq!(keyed.partitions(count, Partition::SHARED).into_iter().collect::<Vec<_>>(), [count.of(&order.0)]);
        let capture = keys::refund_of_capture("auth_1");
        assert_eq!(
            written_in(Table::Idempotency, capture.as_bytes(), Some(&saga.0.encode()), count),
            count.of(&order.0)
        );
        assert_eq!(written_in(Table::Idempotency, key.as_bytes(), None, count), Partition::SHARED);
    }

    #[test]
    fn a_shared_row_lives_in_the_shared_partition_whatever_the_count() {
        let count = Partitions::new(7).unwrap();
        assert_eq!(Home::Shared.partition(count), Partition::SHARED);
        assert_eq!(Home::Of(Affinity(9)).partition(count), Partition(2));
    }
}
