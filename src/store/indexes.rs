//! The admin listings' index entries: which entries a row has, how a write set keeps them in
//! step with a change (in the same write set, never a separate one), and the one-time
//! backfill of an index that a store written by an older build does not have yet. The saga
//! engine owns the saga record, so it hands the store its sagas' entries (and their
//! backfills, see `saga::indexes`): the store lays out the entries from a saga's id, type,
//! state, order and customer, never reading a saga itself.

use std::ops::Bound;

use super::codec::Record;
use super::keys::{self, saga_owner_prefix, webhook_order_key, SagaOwner};
use super::records::{AuditEntry, EventRecord, Notification, WebhookEvent};
use super::tables::{ListingFilter, Table};
use super::{Store, StoreError, WriteSet};
use crate::domain::events::DomainEvent;
use crate::domain::ids::{CustomerId, OrderId};
use crate::domain::order::Order;
use crate::domain::saga_state::SagaState;

/// Entries read and written per batch of a backfill.
const BACKFILL_BATCH: usize = 10_000;

/// An order's entries in [`Table::OrdersByStatus`].
pub fn order_index(o: &Order) -> Vec<Vec<u8>> {
    vec![ListingFilter::OrderStatus(o.status.as_str()).key(o.order_id.as_bytes())]
}

/// How the saga listing finds the sagas in a state without reading the whole table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SagaStateSource {
    /// Unfinished (RUNNING, RETRYING, COMPENSATING, STUCK): the active list, which holds
    /// exactly the unfinished sagas, so its size is the work in flight, not the history.
    Active,
    /// FAILED and ABORTED: rare, final, so indexed by state once, at the end.
    Index,
    /// COMPLETED: most sagas, so a filtered walk of the table (or of the type's entries)
    /// finds a page after reading little more than the page.
    Dense,
}

pub fn saga_state_source(state: SagaState) -> SagaStateSource {
    match state {
        SagaState::Failed | SagaState::Aborted => SagaStateSource::Index,
        SagaState::Completed => SagaStateSource::Dense,
        _ => SagaStateSource::Active,
    }
}

/// Where the sagas of `state` and `saga_type` are found, in creation order (the saga id
/// after `prefix`, in `table`): `None` for the whole `sagas` table. Rows read from it must
/// still be checked against the filter (the active list and a type's entries hold others).
pub fn saga_listing(state: Option<SagaState>, saga_type: Option<&str>) -> Option<(Table, Vec<u8>)> {
    match (state, saga_type) {
        (None, None) => None,
        (Some(st), t) => match (saga_state_source(st), t) {
            (SagaStateSource::Active, _) => Some((Table::ActiveSagas, Vec::new())),
            (SagaStateSource::Dense, None) => Some((Table::Sagas, Vec::new())),
            (SagaStateSource::Dense, Some(t)) => Some((Table::SagasByFilter, ListingFilter::SagaType(t).prefix())),
            (SagaStateSource::Index, None) => {
                Some((Table::SagasByFilter, ListingFilter::SagaState(st.as_str()).prefix()))
            }
            (SagaStateSource::Index, Some(t)) => {
                Some((Table::SagasByFilter, ListingFilter::SagaTypeState(t, st.as_str()).prefix()))
            }
        },
        (None, Some(t)) => Some((Table::SagasByFilter, ListingFilter::SagaType(t).prefix())),
    }
}

/// A saga's entries in [`Table::SagasByFilter`], given its type and state: its type (once,
/// at the first write), and its state only when that is FAILED or ABORTED. A checkout
/// that runs to COMPLETED writes one entry in its life: every index entry is one more
/// insert in the group commit that every saga step waits on.
pub fn saga_index(saga_id: &[u8], saga_type: &str, state: SagaState) -> Vec<Vec<u8>> {
    let mut entries = vec![ListingFilter::SagaType(saga_type).key(saga_id)];
    if saga_state_source(state) == SagaStateSource::Index {
        let state = state.as_str();
        entries.push(ListingFilter::SagaState(state).key(saga_id));
        entries.push(ListingFilter::SagaTypeState(saga_type, state).key(saga_id));
    }
    entries
}

/// A saga's entries in [`Table::SagasByOwner`]: its order's and its customer's. They never
/// change, so they are written once, with the saga's first log write.
pub fn saga_owner_index(saga_id: &[u8], order: Option<OrderId>, customer: Option<CustomerId>) -> Vec<Vec<u8>> {
    let order = order.map(|o| [saga_owner_prefix(SagaOwner::Order, o.as_bytes()), saga_id.to_vec()].concat());
    let customer = customer.map(|c| [saga_owner_prefix(SagaOwner::Customer, c.as_bytes()), saga_id.to_vec()].concat());
    order.into_iter().chain(customer).collect()
}

/// A webhook event's entries in [`Table::WebhooksByFilter`].
pub fn webhook_index(w: &WebhookEvent) -> Vec<Vec<u8>> {
    let order = webhook_order_key(w.received_at.0, &w.source, &w.event_id);
    [
        ListingFilter::WebhookAll,
        ListingFilter::WebhookSource(&w.source),
        ListingFilter::WebhookStatus(&w.status),
        ListingFilter::WebhookSourceStatus(&w.source, &w.status),
    ]
    .iter()
    .map(|f| f.key(&order))
    .collect()
}

/// A notification's entries in [`Table::NotificationsByFilter`].
pub fn notification_index(n: &Notification) -> Vec<Vec<u8>> {
    let (status, kind) = (n.status.as_str(), n.kind.as_str());
    [
        ListingFilter::NotificationStatus(status),
        ListingFilter::NotificationKind(kind),
        ListingFilter::NotificationStatusKind(status, kind),
    ]
    .iter()
    .map(|f| f.key(n.notification_id.as_bytes()))
    .collect()
}

/// Moves a row's entries in `table` from `before` (none for a new row) to `after`: deletes
/// only the entries that change and puts only the new ones, so a change that leaves the
/// indexed fields alone writes nothing here.
pub fn reindex(mut ws: WriteSet, table: Table, before: &[Vec<u8>], after: &[Vec<u8>]) -> WriteSet {
    for gone in before.iter().filter(|k| !after.contains(k)) {
        ws = ws.delete(table, gone.clone());
    }
    for new in after.iter().filter(|k| !before.contains(k)) {
        ws = ws.put_key(table, new.clone());
    }
    ws
}

/// Deletes a row's entries (the row is being deleted).
pub fn unindex(ws: WriteSet, table: Table, entries: &[Vec<u8>]) -> WriteSet {
    reindex(ws, table, entries, &[])
}

/// A main-table row's (key, value) to its index entries.
pub type Entries = fn(&[u8], &[u8]) -> Result<Vec<Vec<u8>>, StoreError>;

/// How to rebuild one index from its main table.
pub struct Backfill {
    pub index: Table,
    pub main: Table,
    /// A table whose rows mean the index has entries (most often `main`): the index is
    /// built when this table has rows and the index has none.
    pub implied_by: Table,
    pub entries: Entries,
}

/// A logged event's entry in [`Table::EventsByOrder`], if it concerns an order.
fn order_event_index(e: &EventRecord) -> Vec<Vec<u8>> {
    DomainEvent::order_in_data(&e.data).map(|o| keys::order_event(o, e.seq).into_bytes()).into_iter().collect()
}

/// A row decoded as `T`, then its entries.
pub fn decoded<T: Record>(
    table: Table,
    bytes: &[u8],
    index: impl Fn(&T) -> Vec<Vec<u8>>,
) -> Result<Vec<Vec<u8>>, StoreError> {
    T::decode(table, bytes).map(|row| index(&row))
}

/// The backfills of the indexes whose rows the store reads itself (the saga engine's own
/// are in `saga::indexes`).
const BACKFILLS: [Backfill; 5] = [
    Backfill {
        index: Table::OrdersByStatus,
        main: Table::Orders,
        implied_by: Table::Orders,
        entries: |_, v| decoded(Table::Orders, v, order_index),
    },
    Backfill {
        index: Table::WebhooksByFilter,
        main: Table::WebhookEvents,
        implied_by: Table::WebhookEvents,
        entries: |_, v| decoded(Table::WebhookEvents, v, webhook_index),
    },
    Backfill {
        index: Table::NotificationsByFilter,
        main: Table::Outbox,
        implied_by: Table::Outbox,
        entries: |_, v| decoded(Table::Outbox, v, notification_index),
    },
    Backfill {
        index: Table::AuditByType,
        main: Table::Audit,
        implied_by: Table::Audit,
        entries: |k, v| {
            decoded(Table::Audit, v, |a: &AuditEntry| vec![ListingFilter::AuditType(&a.entity_type).key(k)])
        },
    },
    // Most events concern no order, so the events alone say nothing; but every order was
    // created with its OrderPlaced event, so a store with orders has entries here.
    Backfill {
        index: Table::EventsByOrder,
        main: Table::Events,
        implied_by: Table::Orders,
        entries: |_, v| decoded(Table::Events, v, order_event_index),
    },
];

/// The store's own backfills, on open (see [`backfill`]).
pub(super) fn backfill_own(store: &Store) -> Result<(), StoreError> {
    backfill(store, &BACKFILLS)
}

/// Builds every index of `backfills` that is empty while the table implying its entries
/// is not (a store written before the index existed), from the main table in batches of
/// durable write sets; runs before any write to those tables is accepted (the store's own
/// on open, the saga engine's at its boot), so nothing changes under it. A build is marked
/// under way in [`Table::IndexBuilds`] until its last entries are durable: one cut short by
/// a crash (its index no longer empty) is done again, with the same entries, on the next
/// start. Through the store's own reads and commits, so on either backend.
pub fn backfill(store: &Store, backfills: &[Backfill]) -> Result<(), StoreError> {
    let everything = || (Bound::Unbounded, Bound::Unbounded);
    let holds_rows = |t: Table| -> Result<bool, StoreError> {
        Ok(store.entries(t, everything(), false, 1).next().transpose()?.is_some())
    };
    for b in backfills {
        let marker = b.index.name().as_bytes();
        let unfinished = store.contains(Table::IndexBuilds, marker)?;
        if !unfinished && (!holds_rows(b.implied_by)? || holds_rows(b.index)?) {
            continue;
        }
        tracing::info!(index = b.index.name(), from = b.main.name(), "building index from existing rows");
        durably(store, WriteSet::new().put_key(Table::IndexBuilds, marker))?;
        let (mut batch, mut rows, mut pending) = (WriteSet::new(), 0, 0);
        for kv in store.entries(b.main, everything(), false, 1024) {
            let (k, v) = kv?;
            match (b.entries)(&k, &v) {
                Ok(entries) => batch = entries.into_iter().fold(batch, |ws, e| ws.put_key(b.index, e)),
                // A row this build cannot read stays out of the listings, as it would anyway.
                Err(e) => tracing::warn!(table = b.main.name(), error = %e, "row left out of the index"),
            }
            rows += 1;
            pending += 1;
            if pending == BACKFILL_BATCH {
                durably(store, std::mem::take(&mut batch))?;
                pending = 0;
                tracing::info!(index = b.index.name(), rows, "building index: rows so far");
            }
        }
        durably(store, batch)?;
        durably(store, WriteSet::new().delete(Table::IndexBuilds, marker))?;
        tracing::info!(index = b.index.name(), rows, "index built");
    }
    Ok(())
}

/// Commits `ws` and waits until it is durable (on open, before any async caller exists).
fn durably(store: &Store, ws: WriteSet) -> Result<(), StoreError> {
    futures::executor::block_on(store.commit(ws))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::domain::ids::{CustomerId, OrderId, SagaId};
    use crate::domain::money::Money;
    use crate::domain::order::{OrderStatus, ShippingAddress};
    use crate::domain::time::Timestamp;
    use crate::store::Store;

    fn order(status: OrderStatus) -> Order {
        let address = ShippingAddress {
            name: "A".into(),
            line1: "1 Road".into(),
            city: "Town".into(),
            postal_code: "1".into(),
            country: "US".into(),
        };
        let zero = (Money::ZERO, Money::ZERO, Money::ZERO);
        let (id, customer, saga) = (OrderId::new(), CustomerId::new(), SagaId::new());
        let placed = Order::placed(id, customer, vec![], zero, address, "a".into(), saga, Timestamp::now());
        Order { status, ..placed }
    }

    fn all_keys(store: &Store, table: Table) -> Vec<Vec<u8>> {
        store.scan_prefix_keys(table, &[], usize::MAX).unwrap()
    }

    #[test]
    fn reindex_writes_only_what_changes() {
        let before = vec![b"a".to_vec(), b"b".to_vec()];
        let after = vec![b"a".to_vec(), b"c".to_vec()];
        let ws = reindex(WriteSet::new(), Table::OrdersByStatus, &before, &after);
        assert_eq!(ws.ops.len(), 2, "one delete and one put: {:?}", ws.ops);
        assert!(reindex(WriteSet::new(), Table::OrdersByStatus, &before, &before).is_empty());
    }

    /// A store written before the index of events by order existed: its orders' events are
    /// indexed on open, and only those.
    #[tokio::test]
    async fn an_older_stores_events_are_indexed_by_order_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::load_layers(None, false).unwrap();
        settings.storage.path = dir.path().into();
        let (a, b) = (order(OrderStatus::Pending), order(OrderStatus::Pending));
        let placed = |o: &Order| DomainEvent::OrderPlaced {
            order_id: o.order_id,
            customer_id: o.customer_id,
            total: Money::ZERO,
            saga_id: o.saga_id,
        };
        let other = DomainEvent::CustomerEmailVerified { customer_id: a.customer_id };
        let store = Store::open(&settings.storage).unwrap();
        let ws = WriteSet::new().put(Table::Orders, a.order_id.as_bytes().to_vec(), &a);
        store.commit(ws.events([&placed(&a), &other, &placed(&b)])).await.unwrap();
        let written = all_keys(&store, Table::EventsByOrder);
        let mut want =
            vec![keys::order_event(a.order_id, 1).into_bytes(), keys::order_event(b.order_id, 3).into_bytes()];
        want.sort();
        assert_eq!(written, want, "written by the committer with each event");
        let ws = written.iter().fold(WriteSet::new(), |ws, k| ws.delete(Table::EventsByOrder, k.clone()));
        store.commit(ws).await.unwrap();
        store.close().unwrap();
        drop(store);

        let store = Store::open(&settings.storage).unwrap();
        assert_eq!(all_keys(&store, Table::EventsByOrder), want);
        assert!(all_keys(&store, Table::IndexBuilds).is_empty());
        store.close().unwrap();
    }

    /// A store written before the listing indexes existed: rows without their entries. (The
    /// saga engine's indexes: `saga::indexes::tests`.)
    #[tokio::test]
    async fn indexes_missing_from_an_older_store_are_built_once_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::load_layers(None, false).unwrap();
        settings.storage.path = dir.path().into();
        let orders: Vec<Order> = (0..25).map(|n| order([OrderStatus::Pending, OrderStatus::Shipped][n % 2])).collect();
        let mut note = Notification::queued("order_shipped", "a@example.com", "s".into(), serde_json::json!({}));
        note.status = crate::store::NotificationStatus::Sent;
        let store = Store::open(&settings.storage).unwrap();
        let mut ws = WriteSet::new();
        for o in &orders {
            ws = ws.put(Table::Orders, o.order_id.as_bytes().to_vec(), o);
        }
        ws = ws.put(Table::Outbox, note.notification_id.as_bytes().to_vec(), &note);
        store.commit(ws).await.unwrap();
        assert!(all_keys(&store, Table::OrdersByStatus).is_empty());
        store.close().unwrap();
        drop(store);

        let store = Store::open(&settings.storage).unwrap();
        let mut want: Vec<Vec<u8>> = orders.iter().flat_map(order_index).collect();
        want.sort();
        assert_eq!(all_keys(&store, Table::OrdersByStatus), want);
        let mut want = notification_index(&note);
        want.sort();
        assert_eq!(all_keys(&store, Table::NotificationsByFilter), want);
        assert!(all_keys(&store, Table::IndexBuilds).is_empty(), "no build left under way");

        // Built once: an entry deleted since (as a change would) is not put back on open.
        let first = all_keys(&store, Table::OrdersByStatus).remove(0);
        store.commit(WriteSet::new().delete(Table::OrdersByStatus, first.clone())).await.unwrap();
        store.close().unwrap();
        drop(store);
        let store = Store::open(&settings.storage).unwrap();
        assert!(!all_keys(&store, Table::OrdersByStatus).contains(&first));

        // A build a crash cut short (marked under way, partly written) is done again.
        let marker = Table::OrdersByStatus.name().as_bytes().to_vec();
        store.commit(WriteSet::new().put_key(Table::IndexBuilds, marker)).await.unwrap();
        store.close().unwrap();
        drop(store);
        let store = Store::open(&settings.storage).unwrap();
        assert!(all_keys(&store, Table::OrdersByStatus).contains(&first));
        assert!(all_keys(&store, Table::IndexBuilds).is_empty());
        store.close().unwrap();
    }
}
