//! Staged logs: how a server that does not own the shared partition still writes events,
//! audit rows, notifications and cache invalidations, without two servers ever writing the
//! logs.
//!
//! The event log (and the audit log, the outbox and the cache invalidation log) must keep
//! one sequence that no consumer skips: `GET /admin/v1/events?after=`, the notification
//! handler and the cache pollers read on from the last number they saw, so an entry must
//! never commit below a number a reader has already passed. One writer assigning the numbers in commit order guarantees it: the
//! owner of [`Partition::SHARED`]. Any other server commits its write sets' log entries in the same transaction
//! as their rows, into `staged_logs` under a partition it owns (key: partition, the epoch it
//! took that partition at, a sequence from 0 per start, so a partition's entries sort in
//! commit order, a later owner's after an earlier one's), fenced like its rows. The shared partition's
//! owner moves them into the logs ([`move_staged`]): each run of entries committed at one
//! instant in one write set, with their original time, deleting them from `staged_logs` in
//! the same transaction, so an entry is moved once or not at all, whatever crashes.

use std::time::Duration;

use tokio::sync::watch;

use super::keys::partition_of_staged_log;
use super::records::{StagedEntry, StagedLog};
use super::writeset::LoggedEvent;
use super::{Store, StoreError, Table, WriteSet};
use crate::domain::partition::Partition;

/// Entries moved per pass at most.
const BATCH: usize = 256;

/// How often the shared partition's owner looks for staged entries.
const EVERY: Duration = Duration::from_millis(100);

/// Moves the oldest staged entries (a partition's in the order they were committed) into
/// the logs, if this server writes them; how many it moved.
pub async fn move_staged(store: &Store) -> Result<usize, StoreError> {
    if !store.owns_shared() {
        return Ok(0);
    }
    let staged: Vec<(Vec<u8>, StagedEntry)> = store.page(Table::StagedLogs, None, BATCH)?;
    let mut tickets = Vec::new();
    for run in
        staged.chunk_by(|(a, x), (b, y)| x.at == y.at && partition_of_staged_log(a) == partition_of_staged_log(b))
    {
        let moved = run.iter().fold(WriteSet::new().logged_at(run[0].1.at), |ws, (key, entry)| {
            let ws = match &entry.log {
                StagedLog::Event { event_type, data, order_id } => ws.logged_event(LoggedEvent {
                    event_type: event_type.clone(),
                    data: data.clone(),
                    order_id: *order_id,
                }),
                StagedLog::Audit(entry) => ws.audit(entry.clone()),
                StagedLog::Notification(n) => ws.notify(n.clone()),
                StagedLog::Invalidation(what) => ws.invalidate(*what),
            };
            ws.delete(Table::StagedLogs, key.clone())
        });
        tickets.push(store.commit(moved));
    }
    for ticket in tickets {
        ticket.await?;
    }
    if !staged.is_empty() {
        let partitions: std::collections::BTreeSet<u16> =
            staged.iter().filter_map(|(k, _)| partition_of_staged_log(k)).map(|p: Partition| p.0).collect();
        tracing::debug!(entries = staged.len(), ?partitions, "moved staged log entries into the logs");
    }
    Ok(staged.len())
}

/// Runs [`move_staged`] until `stop`: again at once while it finds a full batch.
pub async fn run_mover(store: Store, mut stop: watch::Receiver<bool>) {
    loop {
        let moved = match move_staged(&store).await {
            Ok(moved) => moved,
            Err(e) => {
                tracing::error!(error = %e, "moving staged log entries failed; trying again");
                0
            }
        };
        if *stop.borrow() {
            break;
        }
        if moved < BATCH {
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = stop.changed() => {}
            }
        }
    }
    tracing::info!("staged log mover stopped");
}

#[cfg(test)]
mod tests {
    use super::super::invalidations::{Invalidation, InvalidationEntry};
    use super::super::keys;
    use super::super::records::{AuditEntry, EventRecord, Notification};
    use super::*;
    use crate::domain::ids::OrderId;
    use crate::domain::time::Timestamp;

    fn staged(at: i64, log: StagedLog) -> StagedEntry {
        StagedEntry { at: Timestamp(at), log }
    }

    fn event(name: &str, order_id: Option<OrderId>) -> StagedLog {
        StagedLog::Event { event_type: name.into(), data: format!("{{\"n\":\"{name}\"}}"), order_id }
    }

    /// What two other servers staged (as their committers would: see
    /// `plan::tests::without_the_shared_partition_log_entries_are_staged_in_order_in_a_partition_it_owns`)
    /// is moved into the logs once, a partition's entries in order, an earlier owner's
    /// (lower epoch) before a later one's, each keeping the time it was committed.
    #[tokio::test]
    async fn staged_entries_are_moved_into_the_logs_once_in_order_with_their_own_time() {
        let (_dir, store) = Store::temporary();
        let order = OrderId(uuid::Uuid::now_v7());
        let audit = AuditEntry::sample(&order.0.to_string());
        let note = Notification::queued("order_confirmed", "a@example.com", "s".into(), serde_json::json!({}));
        let (p3, p9) = (Partition(3), Partition(9));
        let signed_out = Invalidation::Session([7; 32]);
        let rows = [
            // Written in this order by the servers; keys sort them otherwise.
            (keys::staged_log(p3, 5, 0), staged(3_000, event("Third", None))),
            (keys::staged_log(p3, 2, 0), staged(1_000, event("First", Some(order)))),
            (keys::staged_log(p3, 2, 1), staged(1_000, StagedLog::Audit(audit))),
            (keys::staged_log(p3, 2, 2), staged(2_000, event("Second", None))),
            (keys::staged_log(p9, 4, 0), staged(1_500, StagedLog::Notification(note.clone()))),
            (keys::staged_log(p9, 4, 1), staged(1_500, StagedLog::Invalidation(signed_out))),
        ];
        let ws = rows.iter().fold(WriteSet::new(), |ws, (k, e)| ws.save(k.clone(), e));
        store.commit(ws).await.unwrap();

        assert_eq!(move_staged(&store).await.unwrap(), 6);
        let events: Vec<EventRecord> =
            store.page(Table::Events, None, 10).unwrap().into_iter().map(|(_, e)| e).collect();
        let seen: Vec<(u64, &str, i64)> = events.iter().map(|e| (e.seq, e.event_type.as_str(), e.at.0)).collect();
        assert_eq!(seen, [(1, "First", 1_000), (2, "Second", 2_000), (3, "Third", 3_000)]);
        assert_eq!(events[0].data, "{\"n\":\"First\"}");
        let history = store.scan_prefix_keys(Table::EventsByOrder, order.0.as_bytes(), 10).unwrap();
        assert_eq!(history, [keys::order_event(order, 1).into_bytes()], "indexed under its order");
        let audit: Vec<AuditEntry> = store.page(Table::Audit, None, 10).unwrap().into_iter().map(|(_, a)| a).collect();
        assert_eq!(audit.iter().map(|a| (a.action.as_str(), a.at.0)).collect::<Vec<_>>(), [("confirm", 1_000)]);
        let outbox: Vec<Notification> =
            store.page(Table::Outbox, None, 10).unwrap().into_iter().map(|(_, n)| n).collect();
        assert_eq!(outbox, [note]);
        let invalidations = super::super::invalidations::after(&store, 0, 10).unwrap();
        assert_eq!(invalidations, [(1, InvalidationEntry { at: Timestamp(1_500), what: signed_out })]);
        assert!(store.page::<StagedEntry>(Table::StagedLogs, None, 10).unwrap().is_empty(), "moved, so gone");

        assert_eq!(move_staged(&store).await.unwrap(), 0, "nothing is moved twice");
        assert_eq!(store.page::<EventRecord>(Table::Events, None, 10).unwrap().len(), 3);
        store.close().unwrap();
    }
}
