//! What a commit group writes, worked out the same way whatever the backend: each write
//! set's preconditions (a `put_if_absent` key free, every record within
//! [`MAX_RECORD_BYTES`]), the sequence numbers of its events, audit rows and cache
//! invalidations, and the rows
//! derived from them (the event, audit and outbox indexes). A backend then applies
//! [`Plan::writes`] in one transaction.

use std::borrow::Cow;

use super::codec::Record;
use super::files::MAX_RECORD_BYTES;
use super::indexes::notification_index;
use super::invalidations::InvalidationEntry;
use super::keys::{self, Key};
use super::records::{EventRecord, StagedEntry, StagedLog};
use super::tables::ListingFilter;
use super::writeset::{Op, WriteSet};
use super::{StoreError, Table};
use crate::domain::partition::{Partition, Partitions};
use crate::domain::time::Timestamp;
use crate::metrics;

/// A write set's fate: applied, or refused (and not applied at all).
pub(crate) type Outcome = Result<(), Refused>;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Refused {
    /// A `put_if_absent` found its key taken: the named condition.
    Conflict(&'static str),
    /// A record would weigh more than [`MAX_RECORD_BYTES`].
    TooLarge { table: &'static str, bytes: usize },
    /// Another server took over this partition, which the write set touches.
    Fenced { partition: u16 },
}

impl Refused {
    pub(crate) fn into_error(self) -> StoreError {
        match self {
            Refused::Conflict(tag) => StoreError::Conflict(tag),
            Refused::TooLarge { table, bytes } => {
                tracing::error!(table, bytes, limit = MAX_RECORD_BYTES, "write set refused: record too large");
                StoreError::TooLarge { table, bytes }
            }
            Refused::Fenced { partition } => StoreError::Fenced(format!(
                "partition {partition} is no longer this server's: another server took it over"
            )),
        }
    }
}

/// The next sequence numbers of the event log, the audit log and the cache invalidation
/// log, and of the entries this server stages (see [`Logs::Staged`]; from 0 at each start:
/// the staging partition's epoch, new at each take, orders them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seqs {
    pub(crate) event: u64,
    pub(crate) audit: u64,
    pub(crate) invalidation: u64,
    pub(crate) staged: u64,
}

/// Where a group's log entries (events, audit rows, notifications, cache invalidations) are
/// written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Logs<'a> {
    /// Into the logs: this server owns the shared partition (or is the only server).
    Direct,
    /// Into the staged log of a partition this server owns, which the shared partition's
    /// owner moves into the logs (see [`super::staged`]): `owned` (sorted by partition, never
    /// empty) are this server's partitions, each with the epoch it was taken at, of a key
    /// space of `count`.
    Staged { owned: &'a [(Partition, i64)], count: Partitions },
}

impl Logs<'_> {
    /// The partition `ws`'s log entries are written in: the shared one, or the first of
    /// this server's partitions that `ws` touches anyway (else its first partition).
    pub(crate) fn partition_for(&self, ws: &WriteSet) -> Partition {
        self.staging(ws).0
    }

    /// [`Self::partition_for`], with the epoch it was taken at (0 for the shared one, whose
    /// entries are not staged).
    fn staging(&self, ws: &WriteSet) -> (Partition, i64) {
        match self {
            Logs::Direct => (Partition::SHARED, 0),
            Logs::Staged { owned, count } => {
                let touched = ws.partitions(*count, Partition::SHARED);
                let first = owned.first().copied().unwrap_or((Partition::SHARED, 0));
                owned.iter().copied().find(|(p, _)| touched.contains(p)).unwrap_or(first)
            }
        }
    }
}

/// One row change. `New` rows come from `put_if_absent`: checked free when planned, and a
/// backend that other writers share inserts them so that a row that appeared since is
/// noticed rather than overwritten.
#[derive(Debug)]
pub(crate) enum Change<'a> {
    Put(Cow<'a, [u8]>),
    New(Cow<'a, [u8]>),
    Delete,
}

#[derive(Debug)]
pub(crate) struct Write<'a> {
    pub(crate) table: Table,
    pub(crate) key: Cow<'a, [u8]>,
    pub(crate) change: Change<'a>,
}

/// The group's writes in order (a later write to a key wins), each write set's outcome, and
/// the sequence numbers after it.
pub(crate) struct Plan<'a> {
    pub(crate) writes: Vec<Write<'a>>,
    pub(crate) outcomes: Vec<Outcome>,
    pub(crate) seqs: Seqs,
}

/// Plans `group` from `seqs`; `exists` says whether a key is in the store as it was before
/// the group (the plan itself accounts for the group's own earlier writes).
pub(crate) fn plan<'a>(
    group: &[&'a WriteSet],
    mut seqs: Seqs,
    now: Timestamp,
    logs: Logs<'_>,
    mut exists: impl FnMut(Table, &[u8]) -> Result<bool, StoreError>,
) -> Result<Plan<'a>, StoreError> {
    let mut plan = Plan { writes: Vec::new(), outcomes: Vec::new(), seqs };
    // Only tables with a must-be-absent key need the group's own writes remembered (a
    // few keys), not every write of the group.
    let watched = Watched::of(group);
    let mut overlay: Vec<(Table, Vec<u8>, bool)> = Vec::new();
    for ws in group {
        let outcome = match refusal(&overlay, ws, &mut exists)? {
            Some(refused) => Err(refused),
            None => {
                let from = plan.writes.len();
                push_writes(&mut plan.writes, ws);
                match logs {
                    Logs::Direct => push_logs(&mut plan.writes, ws, now, &mut seqs),
                    Logs::Staged { .. } => {
                        let (partition, epoch) = logs.staging(ws);
                        stage_logs(&mut plan.writes, ws, now, partition, epoch, &mut seqs);
                    }
                }
                overlay.extend(plan.writes[from..].iter().filter(|w| watched.has(w.table)).map(|w| {
                    let present = !matches!(w.change, Change::Delete);
                    (w.table, w.key.to_vec(), present)
                }));
                Ok(())
            }
        };
        plan.outcomes.push(outcome);
    }
    plan.seqs = seqs;
    Ok(plan)
}

/// The tables that some `put_if_absent` of the group writes to.
struct Watched(u64);

impl Watched {
    fn of(group: &[&WriteSet]) -> Watched {
        const _: () = assert!(Table::ALL.len() <= 64, "one bit per table");
        let tables = group.iter().flat_map(|ws| &ws.ops).filter_map(|op| match op {
            Op::PutIfAbsent(table, ..) => Some(*table as u64),
            _ => None,
        });
        Watched(tables.fold(0, |bits, t| bits | 1 << t))
    }

    fn has(&self, table: Table) -> bool {
        self.0 & (1 << table as u64) != 0
    }
}

/// Why `ws` cannot be applied after the group's earlier writes to watched tables
/// (`overlay`: table, key, whether the key is there after the write), if it cannot.
fn refusal(
    overlay: &[(Table, Vec<u8>, bool)],
    ws: &WriteSet,
    exists: &mut impl FnMut(Table, &[u8]) -> Result<bool, StoreError>,
) -> Result<Option<Refused>, StoreError> {
    if let Some(refused) = oversized(ws) {
        return Ok(Some(refused));
    }
    for op in &ws.ops {
        if let Op::PutIfAbsent(table, key, _, tag) = op {
            // The group's own latest write to the key decides; without one, the store does.
            let latest = overlay.iter().rev().find(|(t, k, _)| t == table && k == key);
            let taken = match latest {
                Some((_, _, present)) => *present,
                None => exists(*table, key)?,
            };
            if taken {
                return Ok(Some(Refused::Conflict(tag)));
            }
        }
    }
    Ok(None)
}

/// The rows of `ws`.
fn push_writes<'a>(writes: &mut Vec<Write<'a>>, ws: &'a WriteSet) {
    let borrowed = |table: Table, key: &'a [u8], change: Change<'a>| Write { table, key: Cow::Borrowed(key), change };
    for op in &ws.ops {
        writes.push(match op {
            Op::Put(table, key, value) => borrowed(*table, key, Change::Put(Cow::Borrowed(value))),
            Op::PutIfAbsent(table, key, value, _) => borrowed(*table, key, Change::New(Cow::Borrowed(value))),
            Op::Delete(table, key) => borrowed(*table, key, Change::Delete),
        });
    }
}

/// Each log entry of `ws` as a staged entry of `partition` (see [`Logs::Staged`]).
fn stage_logs(
    writes: &mut Vec<Write<'_>>,
    ws: &WriteSet,
    now: Timestamp,
    partition: Partition,
    epoch: i64,
    seqs: &mut Seqs,
) {
    let at = ws.logged_at.unwrap_or(now);
    let events = ws.events.iter().map(|e| StagedLog::Event {
        event_type: e.event_type.clone(),
        data: e.data.clone(),
        order_id: e.order_id,
    });
    let audit = ws.audit.iter().cloned().map(StagedLog::Audit);
    let notifications = ws.notifications.iter().cloned().map(StagedLog::Notification);
    let invalidations = ws.invalidations.iter().copied().map(StagedLog::Invalidation);
    for log in events.chain(audit).chain(notifications).chain(invalidations) {
        let key = keys::staged_log(partition, epoch, seqs.staged);
        seqs.staged += 1;
        writes.push(Write {
            table: Table::StagedLogs,
            key: Cow::Owned(key.into_bytes()),
            change: Change::Put(Cow::Owned(StagedEntry { at, log }.encode())),
        });
    }
}

/// The log rows of `ws`, with their sequence numbers: its events (and each one's entry in
/// its order's history), audit rows (and their indexes), notifications (and the outbox's),
/// cache invalidations.
fn push_logs(writes: &mut Vec<Write<'_>>, ws: &WriteSet, now: Timestamp, seqs: &mut Seqs) {
    let at = ws.logged_at.unwrap_or(now);
    let owned = |key: Key, value: Vec<u8>| Write {
        table: key.table(),
        key: Cow::Owned(key.into_bytes()),
        change: Change::Put(Cow::Owned(value)),
    };
    for event in &ws.events {
        let seq = seqs.event;
        seqs.event += 1;
        let record = EventRecord { seq, event_type: event.event_type.clone(), at, data: event.data.clone() };
        writes.push(owned(keys::event(seq), record.encode()));
        if let Some(order) = event.order_id {
            writes.push(owned(keys::order_event(order, seq), Vec::new()));
        }
    }
    for entry in &ws.audit {
        let seq = seqs.audit;
        seqs.audit += 1;
        let mut entry = entry.clone();
        entry.at = at;
        writes.push(owned(keys::audit(seq), entry.encode()));
        writes.push(owned(keys::audit_entity_row(&entry.entity_type, &entry.entity_id, seq), Vec::new()));
        let by_type = ListingFilter::AuditType(&entry.entity_type).key(&seq.to_be_bytes());
        writes.push(Write {
            table: Table::AuditByType,
            key: Cow::Owned(by_type),
            change: Change::Put(Cow::Borrowed(&[])),
        });
    }
    for n in &ws.notifications {
        writes.push(owned(keys::notification(n.notification_id), n.encode()));
        writes.push(owned(keys::outbox_due(n.next_attempt_at.0, n.notification_id), Vec::new()));
        for entry in notification_index(n) {
            writes.push(Write {
                table: Table::NotificationsByFilter,
                key: Cow::Owned(entry),
                change: Change::Put(Cow::Borrowed(&[])),
            });
        }
    }
    for what in &ws.invalidations {
        let seq = seqs.invalidation;
        seqs.invalidation += 1;
        writes.push(owned(keys::cache_invalidation(seq), InvalidationEntry { at, what: *what }.encode()));
    }
}

/// The first record of `ws` heavier than [`MAX_RECORD_BYTES`] (key, value and, for log
/// rows, their fixed fields), if any; also tracks the heaviest record seen.
fn oversized(ws: &WriteSet) -> Option<Refused> {
    const LOG_ROW_OVERHEAD: usize = 64;
    let puts = ws.ops.iter().filter_map(|op| match op {
        Op::Put(table, key, value) | Op::PutIfAbsent(table, key, value, _) => Some((*table, key.len() + value.len())),
        Op::Delete(..) => None,
    });
    let events = ws.events.iter().map(|e| (Table::Events, e.event_type.len() + e.data.len() + LOG_ROW_OVERHEAD));
    let audit = ws.audit.iter().map(|a| {
        let text = a.actor.len() + a.action.len() + a.entity_type.len() + a.entity_id.len();
        (Table::Audit, text + a.before.len() + a.after.len() + LOG_ROW_OVERHEAD)
    });
    let outbox = ws.notifications.iter().map(|n| {
        let text = n.kind.len() + n.to.len() + n.subject.len() + n.payload.len();
        (Table::Outbox, text + n.last_error.as_ref().map_or(0, String::len) + LOG_ROW_OVERHEAD)
    });
    let mut heaviest = 0;
    let mut refused = None;
    for (table, bytes) in puts.chain(events).chain(audit).chain(outbox) {
        heaviest = heaviest.max(bytes);
        if bytes > MAX_RECORD_BYTES && refused.is_none() {
            refused = Some(Refused::TooLarge { table: table.name(), bytes });
        }
    }
    metrics::observe_record_bytes(heaviest);
    refused
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan of `group` into empty logs, every key free.
    fn plan_fresh<'a>(group: &[&'a WriteSet]) -> Plan<'a> {
        let seqs = Seqs { event: 1, audit: 1, invalidation: 1, staged: 0 };
        plan(group, seqs, Timestamp::now(), Logs::Direct, |_, _| Ok(false)).unwrap()
    }

    /// The partition a planned write touches, as the fence counts it.
    fn written_in(w: &Write, count: Partitions) -> Partition {
        let value = match &w.change {
            Change::Put(v) | Change::New(v) => Some(&v[..]),
            Change::Delete => None,
        };
        super::super::homes::written_in(w.table, &w.key, value, count)
    }

    fn keys_of(plan: &Plan) -> Vec<(Table, Vec<u8>, bool)> {
        plan.writes.iter().map(|w| (w.table, w.key.to_vec(), matches!(w.change, Change::Delete))).collect()
    }

    #[test]
    fn a_key_taken_by_an_earlier_write_set_of_the_group_refuses_the_later_one_whole() {
        let first = WriteSet::new().put_if_absent(Table::Cursors, vec![1], &1u32, "one");
        let second =
            WriteSet::new().put(Table::Cursors, vec![2], &2u32).put_if_absent(Table::Cursors, vec![1], &3u32, "one");
        let freed = WriteSet::new().delete(Table::Cursors, vec![1]);
        let again = WriteSet::new().put_if_absent(Table::Cursors, vec![1], &4u32, "one");
        let seqs = Seqs { event: 1, audit: 1, invalidation: 1, staged: 0 };
        let group = [first, second, freed, again];
        let group: Vec<&WriteSet> = group.iter().collect();
        let plan = plan(&group, seqs, Timestamp::now(), Logs::Direct, |_, _| Ok(false)).unwrap();
        let outcomes: Vec<_> = plan.outcomes.iter().map(|o| o.map_err(|r| format!("{r:?}"))).collect();
        assert_eq!(outcomes, [Ok(()), Err("Conflict(\"one\")".into()), Ok(()), Ok(())]);
        // The refused write set wrote nothing, not even its first, unconditional put.
        let want =
            vec![(Table::Cursors, vec![1], false), (Table::Cursors, vec![1], true), (Table::Cursors, vec![1], false)];
        assert_eq!(keys_of(&plan), want);
        assert_eq!(plan.seqs, seqs);
    }

    #[test]
    fn a_key_already_in_the_store_refuses_and_events_take_consecutive_seqs() {
        let taken = WriteSet::new().put_if_absent(Table::Cursors, vec![9], &1u32, "nine");
        let event = crate::domain::events::DomainEvent::CustomerEmailVerified {
            customer_id: crate::domain::ids::CustomerId::new(),
        };
        let logged = WriteSet::new().event(&event).event(&event);
        let group = [taken, logged];
        let group: Vec<&WriteSet> = group.iter().collect();
        let plan = plan(
            &group,
            Seqs { event: 7, audit: 3, invalidation: 1, staged: 0 },
            Timestamp::now(),
            Logs::Direct,
            |t, k| Ok(t == Table::Cursors && k == [9]),
        )
        .unwrap();
        assert!(matches!(plan.outcomes[0], Err(Refused::Conflict("nine"))));
        assert_eq!(plan.seqs, Seqs { event: 9, audit: 3, invalidation: 1, staged: 0 });
        let events: Vec<_> = plan.writes.iter().filter(|w| w.table == Table::Events).map(|w| w.key.to_vec()).collect();
        assert_eq!(events, [7u64.to_be_bytes().to_vec(), 8u64.to_be_bytes().to_vec()]);
    }

    #[test]
    fn a_record_over_the_bound_refuses_its_write_set_whole_and_the_rest_of_the_group_applies() {
        let event = crate::domain::events::DomainEvent::CustomerEmailVerified {
            customer_id: crate::domain::ids::CustomerId::new(),
        };
        let normal = |key: u8| WriteSet::new().put(Table::Cursors, vec![key], &1u32).event(&event);
        let mut oversized = WriteSet::new().put(Table::Cursors, vec![5], &1u32).event(&event);
        oversized.ops.push(Op::Put(Table::Cursors, vec![6], vec![0; MAX_RECORD_BYTES + 1]));
        let group = [normal(1), oversized, normal(2)];
        let group: Vec<&WriteSet> = group.iter().collect();
        let plan = plan_fresh(&group);
        assert!(matches!(plan.outcomes[..], [Ok(()), Err(Refused::TooLarge { table: "cursors", .. }), Ok(())]));
        let Err(Refused::TooLarge { bytes, .. }) = plan.outcomes[1] else { unreachable!() };
        assert_eq!(bytes, 1 + MAX_RECORD_BYTES + 1, "key and value");
        // Nothing of the refused set is written: neither its small put nor its event.
        let cursors: Vec<_> = keys_of(&plan).into_iter().filter(|(t, ..)| *t == Table::Cursors).collect();
        assert_eq!(cursors, [(Table::Cursors, vec![1], false), (Table::Cursors, vec![2], false)]);
        let events: Vec<_> = plan.writes.iter().filter(|w| w.table == Table::Events).map(|w| w.key.to_vec()).collect();
        assert_eq!(
            events,
            [1u64.to_be_bytes().to_vec(), 2u64.to_be_bytes().to_vec()],
            "no seq taken by the refused set"
        );
        assert_eq!(plan.seqs, Seqs { event: 3, audit: 1, invalidation: 1, staged: 0 });
    }

    /// The fence checks the partitions a write set names before the group is planned: every
    /// row the plan then writes for it (its own, and the log, history and outbox rows derived
    /// from its events, audit rows and notifications) must lie in one of them.
    #[test]
    fn every_row_planned_for_a_write_set_lies_in_a_partition_it_names() {
        use super::super::invalidations::Invalidation;
        use crate::domain::ids::{CustomerId, OrderId};
        use crate::domain::partition::{Partition, Partitions};
        let count = Partitions::new(16).unwrap();
        let (customer, order) = (CustomerId::new(), OrderId(uuid::Uuid::now_v7()));
        let confirmed = crate::domain::events::DomainEvent::OrderConfirmed {
            order_id: order,
            customer_id: customer,
            event_id: "e".into(),
        };
        let audit = super::super::records::AuditEntry::sample(&order.0.to_string());
        let notification = super::super::records::Notification::queued("k", "a@b.c", "s".into(), serde_json::json!({}));
        let ws = WriteSet::new()
            .put_key(Table::Carts, customer.0.as_bytes().to_vec())
            .event(&confirmed)
            .audit(audit)
            .notify(notification)
            .invalidate(Invalidation::Customer(customer));
        let named = ws.partitions(count, Partition::SHARED);
        assert!(named.contains(&count.of(&customer.0)));
        assert!(named.contains(&Partition::SHARED), "the logs are shared");
        let group = [&ws];
        let plan = plan_fresh(&group);
        assert!(plan.writes.len() > 4, "the derived rows are planned too");
        assert!(plan.writes.iter().any(|w| w.table == Table::CacheInvalidations));
        for w in &plan.writes {
            let p = written_in(w, count);
            assert!(named.contains(&p), "{:?} row in {p:?}, not among {named:?}", w.table);
        }
        let plain = WriteSet::new().put_key(Table::Orders, order.0.as_bytes().to_vec());
        assert_eq!(
            plain.partitions(count, Partition::SHARED).into_iter().collect::<Vec<_>>(),
            [count.of(&order.0)],
            "no logs, no shared"
        );
    }

    /// A server without the shared partition writes no log row: each entry is staged in a
    /// partition of its own, in order, and the fence's partitions are its rows' and that one.
    #[test]
    fn without_the_shared_partition_log_entries_are_staged_in_order_in_a_partition_it_owns() {
        use super::super::records::{AuditEntry, StagedEntry, StagedLog};
        use crate::domain::ids::{CustomerId, OrderId};
        let count = Partitions::new(16).unwrap();
        let customer = CustomerId(uuid::Uuid::now_v7());
        let home = count.of(&customer.0);
        let other = Partition((home.0 + 1) % 16).max(Partition(1));
        let order = OrderId(crate::domain::partition::alike(uuid::Uuid::now_v7(), &customer.0));
        let confirmed = crate::domain::events::DomainEvent::OrderConfirmed {
            order_id: order,
            customer_id: customer,
            event_id: "e".into(),
        };
        let audit = AuditEntry::sample("o");
        // The payment index's entry too: a shared table, written in its order's partition.
        let ws = WriteSet::new()
            .put_key(Table::Carts, customer.0.as_bytes().to_vec())
            .save(keys::order_by_authorization("auth_1"), &order.0)
            .event(&confirmed)
            .audit(audit);
        // Each partition at the epoch it was taken at: the entries carry their own's.
        let mut sorted = [(other, 9), (home, 7)];
        sorted.sort();
        let logs = Logs::Staged { owned: &sorted, count };
        assert_eq!(logs.partition_for(&ws), home, "the partition it touches anyway, not merely its first");
        let bare = WriteSet::new().event(&confirmed);
        assert_eq!(logs.partition_for(&bare), sorted[0].0, "no rows: its first partition");

        let now = Timestamp(1_700_000_000_000);
        let group = [&ws];
        let plan = plan(&group, Seqs { event: 10, audit: 4, invalidation: 1, staged: 3 }, now, logs, |_, _| Ok(false))
            .unwrap();
        assert_eq!(
            plan.seqs,
            Seqs { event: 10, audit: 4, invalidation: 1, staged: 5 },
            "no log number taken, two staged"
        );
        let staged: Vec<_> = plan.writes.iter().filter(|w| w.table == Table::StagedLogs).collect();
        let want_keys = [keys::staged_log(home, 7, 3).into_bytes(), keys::staged_log(home, 7, 4).into_bytes()];
        assert_eq!(staged.iter().map(|w| w.key.to_vec()).collect::<Vec<_>>(), want_keys);
        let Change::Put(first) = &staged[0].change else { panic!("a put") };
        let first = StagedEntry::decode(Table::StagedLogs, first).unwrap();
        assert_eq!(first.at, now);
        assert!(
            matches!(first.log, StagedLog::Event { ref event_type, order_id: Some(o), .. } if event_type == "OrderConfirmed" && o == order)
        );
        let named = ws.partitions(count, home);
        assert_eq!(named.iter().copied().collect::<Vec<_>>(), [home]);
        for w in &plan.writes {
            assert!(!matches!(w.table, Table::Events | Table::Audit | Table::EventsByOrder | Table::AuditByEntity));
            let p = written_in(w, count);
            assert!(named.contains(&p), "{:?} row in {p:?}", w.table);
        }
    }
    /// Like the events': the write sets of one group that commit take the next numbers,
    /// one after the other in the order they commit (a refused one takes none), each entry
    /// with the commit's time; the next group goes on from there.
    #[test]
    fn invalidations_of_a_group_take_consecutive_numbers_in_commit_order() {
        use super::super::invalidations::{Invalidation, InvalidationEntry};
        use crate::domain::ids::{CustomerId, ProductId};
        let (customer, product) = (CustomerId::new(), ProductId::new());
        let first =
            WriteSet::new().invalidate(Invalidation::Session([1; 32])).invalidate(Invalidation::Customer(customer));
        let refused = WriteSet::new()
            .put_if_absent(Table::Cursors, vec![9], &1u32, "nine")
            .invalidate(Invalidation::StaffSession([2; 32]));
        let last = WriteSet::new().invalidate(Invalidation::Product(product));
        let group = [first, refused, last];
        let group: Vec<&WriteSet> = group.iter().collect();
        let now = Timestamp(1_700_000_000_000);
        let seqs = Seqs { event: 4, audit: 2, invalidation: 41, staged: 0 };
        let plan = plan(&group, seqs, now, Logs::Direct, |t, k| Ok(t == Table::Cursors && k == [9])).unwrap();
        assert!(matches!(plan.outcomes[1], Err(Refused::Conflict("nine"))));
        assert_eq!(plan.seqs, Seqs { invalidation: 44, ..seqs }, "three numbers taken, no other");
        let logged: Vec<(Vec<u8>, InvalidationEntry)> = plan
            .writes
            .iter()
            .filter(|w| w.table == Table::CacheInvalidations)
            .map(|w| match &w.change {
                Change::Put(v) => (w.key.to_vec(), InvalidationEntry::decode(Table::CacheInvalidations, v).unwrap()),
                other => panic!("a put, not {other:?}"),
            })
            .collect();
        let want = [
            (41, Invalidation::Session([1; 32])),
            (42, Invalidation::Customer(customer)),
            (43, Invalidation::Product(product)),
        ];
        let want: Vec<(Vec<u8>, InvalidationEntry)> = want
            .into_iter()
            .map(|(seq, what)| (keys::cache_invalidation(seq).into_bytes(), InvalidationEntry { at: now, what }))
            .collect();
        assert_eq!(logged, want);
    }

    /// A server without the shared partition stages its invalidations like its other log
    /// entries (after them, in order), taking no number of the log.
    #[test]
    fn without_the_shared_partition_invalidations_are_staged() {
        use super::super::invalidations::Invalidation;
        use super::super::records::{StagedEntry, StagedLog};
        use crate::domain::ids::CustomerId;
        let count = Partitions::new(16).unwrap();
        let customer = CustomerId(uuid::Uuid::now_v7());
        let owned = [(Partition(3), 2)];
        let logs = Logs::Staged { owned: &owned, count };
        let event = crate::domain::events::DomainEvent::CustomerEmailVerified { customer_id: customer };
        let ws = WriteSet::new().invalidate(Invalidation::Customer(customer)).event(&event);
        let group = [&ws];
        let seqs = Seqs { event: 1, audit: 1, invalidation: 7, staged: 0 };
        let plan = plan(&group, seqs, Timestamp::now(), logs, |_, _| Ok(false)).unwrap();
        assert_eq!(plan.seqs, Seqs { staged: 2, ..seqs });
        assert!(plan.writes.iter().all(|w| w.table == Table::StagedLogs));
        let staged: Vec<StagedLog> = plan
            .writes
            .iter()
            .map(|w| match &w.change {
                Change::Put(v) => StagedEntry::decode(Table::StagedLogs, v).unwrap().log,
                other => panic!("a put, not {other:?}"),
            })
            .collect();
        assert!(matches!(staged[0], StagedLog::Event { .. }));
        assert_eq!(staged[1], StagedLog::Invalidation(Invalidation::Customer(customer)));
        assert_eq!(plan.writes[1].key.to_vec(), keys::staged_log(Partition(3), 2, 1).into_bytes());
    }
}
