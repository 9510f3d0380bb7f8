//! A write set: everything one command changes, applied atomically or not at all.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use std::collections::BTreeSet;

use super::codec::Record;
use super::homes;
use super::invalidations::Invalidation;
use super::keys::Key;
use super::records::{AuditEntry, Notification};
use super::{StoreError, Table};
use crate::domain::events::DomainEvent;
use crate::domain::ids::OrderId;
use crate::domain::partition::{Partition, Partitions};
use crate::domain::time::Timestamp;

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Put(Table, Vec<u8>, Vec<u8>),
    Delete(Table, Vec<u8>),
    /// Applied only if the key is absent; otherwise the whole write set is refused with
    /// `StoreError::Conflict(tag)`.
    PutIfAbsent(Table, Vec<u8>, Vec<u8>, &'static str),
}

/// A domain event as the log stores it, and the order whose history it belongs to (the
/// committer indexes it there, with its seq).
#[derive(Debug, Clone)]
pub(crate) struct LoggedEvent {
    pub(crate) event_type: String,
    pub(crate) data: String,
    pub(crate) order_id: Option<OrderId>,
}

#[derive(Debug, Default, Clone)]
pub struct WriteSet {
    pub(crate) ops: Vec<Op>,
    /// Each domain event, in order.
    pub(crate) events: Vec<LoggedEvent>,
    pub(crate) audit: Vec<AuditEntry>,
    pub(crate) notifications: Vec<Notification>,
    /// The cached records it changes (see [`super::invalidations`]).
    pub(crate) invalidations: Vec<Invalidation>,
    /// See [`WriteSet::logged_at`].
    pub(crate) logged_at: Option<Timestamp>,
}

impl WriteSet {
    pub fn new() -> WriteSet {
        WriteSet::default()
    }

    /// Writes `value` at `key` (built by [`super::keys`]).
    pub fn save<T: Record>(self, key: Key, value: &T) -> Self {
        let table = key.table();
        self.put(table, key.into_bytes(), value)
    }

    /// Writes `value` at `key` if nothing is there; otherwise the whole write set is refused
    /// with `StoreError::Conflict(conflict)`.
    pub fn save_new<T: Record>(self, key: Key, value: &T, conflict: &'static str) -> Self {
        let table = key.table();
        self.put_if_absent(table, key.into_bytes(), value, conflict)
    }

    pub fn remove(self, key: Key) -> Self {
        let table = key.table();
        self.delete(table, key.into_bytes())
    }

    /// By table and raw key: for keys read back from a table (sweeps, index maintenance); any
    /// other key is built by [`super::keys`] and written with [`WriteSet::save`].
    pub fn put<T: Record>(mut self, table: Table, key: impl Into<Vec<u8>>, value: &T) -> Self {
        self.ops.push(Op::Put(table, key.into(), value.encode()));
        self
    }

    /// An index entry: the key says everything, the value is empty.
    pub fn put_key(mut self, table: Table, key: impl Into<Vec<u8>>) -> Self {
        self.ops.push(Op::Put(table, key.into(), Vec::new()));
        self
    }

    pub fn delete(mut self, table: Table, key: impl Into<Vec<u8>>) -> Self {
        self.ops.push(Op::Delete(table, key.into()));
        self
    }

    pub fn put_if_absent<T: Record>(
        mut self,
        table: Table,
        key: impl Into<Vec<u8>>,
        value: &T,
        conflict: &'static str,
    ) -> Self {
        self.ops.push(Op::PutIfAbsent(table, key.into(), value.encode(), conflict));
        self
    }

    /// This write set followed by `other`, applied together (all or nothing).
    pub fn merge(mut self, other: WriteSet) -> Self {
        self.ops.extend(other.ops);
        self.events.extend(other.events);
        self.audit.extend(other.audit);
        self.notifications.extend(other.notifications);
        self.invalidations.extend(other.invalidations);
        self.logged_at = self.logged_at.or(other.logged_at);
        self
    }

    pub fn event(mut self, event: &DomainEvent) -> Self {
        let (event_type, data) = event.split();
        self.events.push(LoggedEvent { event_type, data, order_id: event.order_id() });
        self
    }

    /// An event as the log stores it (moved from a staged log, see [`super::staged`]).
    pub(crate) fn logged_event(mut self, event: LoggedEvent) -> Self {
        self.events.push(event);
        self
    }

    pub fn events<'a>(self, events: impl IntoIterator<Item = &'a DomainEvent>) -> Self {
        events.into_iter().fold(self, |ws, e| ws.event(e))
    }

    pub fn audit(mut self, entry: AuditEntry) -> Self {
        self.audit.push(entry);
        self
    }

    pub fn notify(mut self, notification: Notification) -> Self {
        self.notifications.push(notification);
        self
    }

    /// Tells every server's caches that `what` changed (see [`super::invalidations`]): each
    /// write set that changes a record some server keeps a copy of names it.
    pub fn invalidate(mut self, what: Invalidation) -> Self {
        self.invalidations.push(what);
        self
    }

    /// The partitions this write set touches: its rows' (see [`super::homes`]) and, if it
    /// has events, audit rows, notifications or invalidations, `logs`: where they go (the shared partition,
    /// or the partition a server that does not own it stages them in, see [`super::plan::Logs`]).
    /// A row that [`homes::follows`] another lies where the write set's first put of that
    /// other table does.
    pub(crate) fn partitions(&self, count: Partitions, logs: Partition) -> BTreeSet<Partition> {
        let written_in = |op: &Op| match op {
            Op::Put(table, key, value) | Op::PutIfAbsent(table, key, value, _) => {
                homes::written_in(*table, key, Some(value), count)
            }
            Op::Delete(table, key) => homes::written_in(*table, key, None, count),
        };
        let main_row = |main: Table| {
            self.ops
                .iter()
                .find(|op| matches!(op, Op::Put(t, ..) | Op::PutIfAbsent(t, ..) if *t == main))
                .map(written_in)
        };
        let rows = self.ops.iter().map(|op| {
            let table = match op {
                Op::Put(table, ..) | Op::PutIfAbsent(table, ..) | Op::Delete(table, _) => *table,
            };
            homes::follows(table).and_then(main_row).unwrap_or_else(|| written_in(op))
        });
        rows.chain(self.has_logs().then_some(logs)).collect()
    }

    /// Whether it writes to the logs: events, audit rows, notifications, invalidations.
    pub(crate) fn has_logs(&self) -> bool {
        !self.events.is_empty()
            || !self.audit.is_empty()
            || !self.notifications.is_empty()
            || !self.invalidations.is_empty()
    }

    /// Its events and audit rows keep `at` as their time instead of the commit's: entries
    /// moved from a staged log (see [`super::staged`]) were committed then.
    pub(crate) fn logged_at(mut self, at: Timestamp) -> Self {
        self.logged_at = Some(at);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && !self.has_logs()
    }
}

/// Resolves once the write set is durable (or refused). Dropping it does not cancel the write.
pub struct CommitTicket {
    rx: Option<oneshot::Receiver<Result<(), StoreError>>>,
    failed: Option<StoreError>,
}

impl CommitTicket {
    pub(crate) fn pending(rx: oneshot::Receiver<Result<(), StoreError>>) -> CommitTicket {
        CommitTicket { rx: Some(rx), failed: None }
    }

    pub(crate) fn failed(e: StoreError) -> CommitTicket {
        CommitTicket { rx: None, failed: Some(e) }
    }
}

impl Future for CommitTicket {
    type Output = Result<(), StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(e) = self.failed.take() {
            return Poll::Ready(Err(e));
        }
        match self.rx.as_mut() {
            Some(rx) => Pin::new(rx).poll(cx).map(|r| r.unwrap_or(Err(StoreError::Closed))),
            None => Poll::Ready(Err(StoreError::Closed)),
        }
    }
}
