//! What would otherwise stay in sled forever: Idempotency-Keys (one per checkout), finished
//! sagas and received webhook events. Each is indexed by time in the same commit that
//! writes it (or, for a saga, that makes it terminal; see `store::retained`), so a sweep reads only the index range
//! older than its cutoff and never scans a whole table. The sweeper task runs every
//! `auth.sweep_interval_secs`, together with the sweep of expired sessions and tokens.
//!
//! Records written before these indexes existed have no index entry and are kept.

use std::sync::Arc;
use std::time::Duration;

use super::OperationError;
use crate::config::Settings;
use crate::domain::ids::SagaId;
use crate::domain::time::Timestamp;
use crate::error::Fault;
use crate::saga::census::SagaCensus;
use crate::saga::indexes::{saga_index_of, saga_owner_index};
use crate::saga::{SagaInstance, SagaState};
use crate::store::{
    keys, time_bound, time_key_rest, unindex, webhook_index, Store, StoreError, Table, WebhookEvent, WriteSet,
};

/// Index entries looked at, and deleted, per write.
const BATCH: usize = 256;
/// Batches per table per pass: a backlog (a first pass over months of data) is worked off
/// over several passes instead of holding the committer in one.
const MAX_BATCHES: usize = 16;

/// How long each kind of record is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub idempotency_ms: i64,
    pub sagas_ms: i64,
    pub webhooks_ms: i64,
}

impl Retention {
    pub fn from_settings(s: &Settings) -> Retention {
        let ms = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        Retention {
            idempotency_ms: ms(s.checkout.idempotency_ttl_secs),
            sagas_ms: ms(s.sagas.retention_secs),
            webhooks_ms: ms(s.webhooks.retention_secs),
        }
    }
}

/// What a sweep does with one index entry.
enum Verdict {
    /// The record is past its retention: delete it, its index entry and its other keys
    /// (listing entries, alert markers: their table and keys); for a saga, its id, type and
    /// state, for the census once the deletion is durable.
    Expire(Table, Vec<(Table, Vec<Vec<u8>>)>, Option<(SagaId, String, SagaState)>),
    /// The record is gone, or no longer the one indexed: delete the index entry.
    Stale,
    /// Not to be deleted now (a saga still running under the key): indexed again as of now,
    /// so that it is looked at again one retention later and never blocks the front of the
    /// index (a pass reads a bounded number of entries from the front).
    Requeue(uuid::Uuid),
    /// Left as it is (a record this build cannot read, a saga both terminal and active).
    Keep,
}

/// Deletes what expired by `now`; returns how many records (index entries not counted).
/// Sagas are left alone until the census has counted the finished ones (a deletion that
/// count may or may not have seen would make it inexact); every deleted saga leaves it.
pub async fn sweep_retained(
    store: &Store,
    retention: Retention,
    now: Timestamp,
    census: &SagaCensus,
) -> Result<usize, OperationError> {
    let cutoff = now.plus_millis(-retention.idempotency_ms);
    let keys =
        sweep_index(store, Table::IdempotencyByTime, cutoff, now, census, |entry| idempotency_verdict(store, entry));
    let keys = keys.await?;
    let sagas = match census.is_complete() {
        true => {
            let cutoff = now.plus_millis(-retention.sagas_ms);
            sweep_index(store, Table::FinishedSagas, cutoff, now, census, |entry| saga_verdict(store, entry)).await?
        }
        false => 0,
    };
    let cutoff = now.plus_millis(-retention.webhooks_ms);
    let webhooks = sweep_index(store, Table::WebhookEventsByTime, cutoff, now, census, |entry| {
        webhook_verdict(store, entry, cutoff)
    });
    Ok(keys + sagas + webhooks.await?)
}

/// Walks `index` up to `cutoff` (inclusive) in batches, deleting what `verdict` says.
async fn sweep_index(
    store: &Store,
    index: Table,
    cutoff: Timestamp,
    now: Timestamp,
    census: &SagaCensus,
    verdict: impl Fn(&[u8]) -> Result<Verdict, StoreError>,
) -> Result<usize, OperationError> {
    let end = time_bound(cutoff.0.saturating_add(1));
    let mut from = Vec::new();
    let mut deleted = 0;
    for _ in 0..MAX_BATCHES {
        let entries = store.keys_between(index, &from, &end, BATCH)?;
        let Some(last) = entries.last() else { break };
        from = keys::successor(last);
        let mut ws = WriteSet::new();
        let mut sagas_deleted = Vec::new();
        // Another server's rows are its own sweep's (a write to them here would be fenced).
        for entry in entries.into_iter().filter(|e| store.owns(index, e)) {
            match verdict(&entry) {
                Ok(Verdict::Expire(table, others, saga)) => {
                    ws = ws.delete(table, time_key_rest(&entry).to_vec()).delete(index, entry);
                    for (other, keys) in others {
                        ws = unindex(ws, other, &keys);
                    }
                    sagas_deleted.extend(saga);
                    deleted += 1;
                }
                Ok(Verdict::Stale) => ws = ws.delete(index, entry),
                Ok(Verdict::Requeue(value)) => {
                    // Deleted first: with a retention of 0 the new key may be the same.
                    let again = keys::retimed(&entry, now.0);
                    ws = ws.delete(index, entry).put(index, again, &value);
                }
                // A record this build cannot read is left for an operator.
                Ok(Verdict::Keep) | Err(StoreError::Codec { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !ws.is_empty() {
            store.commit(ws).await?;
        }
        for (saga_id, saga_type, state) in sagas_deleted {
            census.deleted(saga_id, &saga_type, state);
        }
    }
    Ok(deleted)
}

/// A key is deleted once it has expired, unless its saga is still unfinished (a repeat must
/// find that one, not start a second checkout).
fn idempotency_verdict(store: &Store, entry: &[u8]) -> Result<Verdict, StoreError> {
    let key = time_key_rest(entry);
    let Some(indexed) = store.get::<uuid::Uuid>(Table::IdempotencyByTime, entry)? else { return Ok(Verdict::Stale) };
    match store.get::<uuid::Uuid>(Table::Idempotency, key)? {
        Some(current) if current == indexed => {
            if store.exists(&keys::active_saga(SagaId(current)))? {
                Ok(Verdict::Requeue(current))
            } else {
                Ok(Verdict::Expire(Table::Idempotency, Vec::new(), None))
            }
        }
        _ => Ok(Verdict::Stale),
    }
}

/// Only COMPLETED, FAILED and ABORTED sagas are deleted; never a STUCK, RETRYING or running one.
fn saga_verdict(store: &Store, entry: &[u8]) -> Result<Verdict, StoreError> {
    let id = time_key_rest(entry);
    match store.get::<SagaInstance>(Table::Sagas, id)? {
        Some(saga) if saga.state.is_terminal() && !store.contains(Table::ActiveSagas, id)? => {
            let markers = store.scan_keys(&keys::saga_alerts_of(id), usize::MAX)?;
            let others = vec![
                (Table::SagasByFilter, saga_index_of(&saga)),
                (Table::SagasByOwner, saga_owner_index(&saga)),
                (Table::SagaAlerts, markers),
            ];
            Ok(Verdict::Expire(Table::Sagas, others, Some((saga.saga_id, saga.saga_type, saga.state))))
        }
        // Not terminal any more: it is indexed again when it becomes terminal.
        Some(saga) if !saga.state.is_terminal() => Ok(Verdict::Stale),
        Some(_) => Ok(Verdict::Keep),
        None => Ok(Verdict::Stale),
    }
}

/// The event is deleted if it is the one indexed (received by the cutoff).
fn webhook_verdict(store: &Store, entry: &[u8], cutoff: Timestamp) -> Result<Verdict, StoreError> {
    match store.get::<WebhookEvent>(Table::WebhookEvents, time_key_rest(entry))? {
        Some(event) if event.received_at <= cutoff => {
            Ok(Verdict::Expire(Table::WebhookEvents, vec![(Table::WebhooksByFilter, webhook_index(&event))], None))
        }
        _ => Ok(Verdict::Stale),
    }
}

/// Runs the sweep of expired sessions and tokens and [`sweep_retained`] every `every` until
/// the store closes.
pub fn spawn_sweeper(store: Store, every: Duration, retention: Retention, census: Arc<SagaCensus>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = Timestamp::now();
            match crate::services::credential_sweep::sweep_expired(&store, now).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "expired sessions and verification tokens deleted"),
                Err(crate::services::ServiceError::Fault(Fault::ShuttingDown)) => break,
                Err(e) => tracing::warn!(error = %e, "sweep of expired sessions and tokens failed; next pass retries"),
            }
            sweep_invalidations_logged(&store, now).await;
            match sweep_retained(&store, retention, now, &census).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(deleted = n, "expired idempotency keys, finished sagas and webhook events deleted")
                }
                Err(OperationError::Fault(Fault::ShuttingDown)) => break,
                Err(e) => tracing::warn!(error = %e, "retention sweep failed; next pass retries"),
            }
        }
    });
}

/// How long entries of the cache invalidation log are kept: far longer than any serving
/// server takes to read them (every `cluster.cache_poll_ms`); one that was stalled longer
/// finds the gap and drops all its copies (see `services::invalidations`).
pub const INVALIDATIONS_KEPT_MS: i64 = 10 * 60 * 1000;

/// Deletes the cache invalidation log's entries committed by `cutoff`, but never its last
/// entry: the log's next number is read from it when a server opens the store, so it must
/// never start over under numbers the pollers have passed. Only the shared partition's
/// owner writes the log (another server's deletions would be refused): it alone sweeps.
pub async fn sweep_invalidations(store: &Store, cutoff: Timestamp) -> Result<usize, OperationError> {
    if !store.owns_shared() {
        return Ok(0);
    }
    let last = crate::store::invalidations::end(store)?;
    let mut after = 0;
    let mut deleted = 0;
    for _ in 0..MAX_BATCHES * 4 {
        let entries = crate::store::invalidations::after(store, after, BATCH)?;
        let old: Vec<u64> =
            entries.iter().take_while(|(seq, e)| *seq < last && e.at <= cutoff).map(|(seq, _)| *seq).collect();
        let Some(&newest) = old.last() else { break };
        let ws = old.iter().fold(WriteSet::new(), |ws, seq| ws.remove(keys::cache_invalidation(*seq)));
        store.commit(ws).await?;
        deleted += old.len();
        after = newest;
        if old.len() < entries.len() {
            break;
        }
    }
    Ok(deleted)
}

/// [`sweep_invalidations`] of what is older than [`INVALIDATIONS_KEPT_MS`], logged.
async fn sweep_invalidations_logged(store: &Store, now: Timestamp) {
    match sweep_invalidations(store, now.plus_millis(-INVALIDATIONS_KEPT_MS)).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(deleted = n, "old cache invalidation log entries deleted"),
        // The sweeps after it stop the sweeper.
        Err(OperationError::Fault(Fault::ShuttingDown)) => {}
        Err(e) => tracing::warn!(error = %e, "sweep of the cache invalidation log failed; next pass retries"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saga::coordinator::log_write;
    use crate::store::retained::{idempotency_key, saga_finished, webhook_event};
    use crate::store::time_key;

    fn saga_with(state: SagaState) -> SagaInstance {
        let def = &crate::saga::definition::embedded().unwrap()[0];
        let (customer, order) = (Some(crate::domain::ids::CustomerId::new()), Some(crate::domain::ids::OrderId::new()));
        let mut saga =
            SagaInstance::new(def, |_| crate::retry::RetryPolicy::NONE, serde_json::json!({}), customer, order);
        saga.state = state;
        saga
    }

    /// A processed payment webhook `evt_1`, received `at`.
    fn payment_event(at: Timestamp) -> WebhookEvent {
        WebhookEvent::sample(at, None)
    }

    fn retention(ms: i64) -> Retention {
        Retention { idempotency_ms: ms, sagas_ms: ms, webhooks_ms: ms }
    }

    #[tokio::test]
    async fn only_finished_sagas_past_retention_are_deleted_batch_after_batch() {
        let (_dir, store) = Store::temporary();
        let now = Timestamp::now();
        let old = now.plus_millis(-10_000);
        let mut ws = WriteSet::new();
        let mut finished = Vec::new();
        // More than one batch of finished sagas, all indexed long ago.
        for n in 0..(BATCH + 5) {
            let state = [SagaState::Completed, SagaState::Failed, SagaState::Aborted][n % 3];
            let saga = saga_with(state);
            ws = saga_finished(log_write(ws, &saga, None), saga.saga_id, old);
            finished.push(saga.saga_id);
        }
        // Indexed, then resumed by nobody but still STUCK (an index entry never makes a
        // non-terminal saga deletable), and one finished just now.
        let stuck = saga_with(SagaState::Stuck);
        let recent = saga_with(SagaState::Completed);
        ws = saga_finished(log_write(ws, &stuck, None), stuck.saga_id, old);
        ws = saga_finished(log_write(ws, &recent, None), recent.saga_id, now);
        // An alert marker of a deleted saga goes with it.
        ws = ws.save(keys::saga_alert(finished[0], 0), &finished[0].0);
        store.commit(ws).await.unwrap();

        // Until the census has counted the finished sagas, none is deleted.
        let census = SagaCensus::new(crate::domain::partition::Partitions::DEFAULT);
        census.seed_unfinished(std::slice::from_ref(&stuck));
        assert_eq!(sweep_retained(&store, retention(5_000), now, &census).await.unwrap(), 0);
        census.count_finished(&store).unwrap();
        let completed = |c: &SagaCensus| c.counts().iter().find(|x| x.1 == SagaState::Completed).map_or(0, |x| x.2);
        assert_eq!(completed(&census), (BATCH as u64 + 5) / 3 + 1);
        assert_eq!(sweep_retained(&store, retention(5_000), now, &census).await.unwrap(), BATCH + 5);
        assert_eq!(completed(&census), 1, "the deleted ones leave the census");
        assert!(store.scan_prefix_keys(Table::SagaAlerts, &[], 10).unwrap().is_empty());
        assert!(finished.iter().all(|id| !store.exists(&keys::saga(*id)).unwrap()));
        assert!(store.exists(&keys::saga(stuck.saga_id)).unwrap(), "STUCK kept");
        assert!(store.exists(&keys::saga(recent.saga_id)).unwrap(), "recent kept");
        let index = store.scan_prefix_keys(Table::FinishedSagas, &[], usize::MAX).unwrap();
        assert_eq!(index.len(), 1, "the stuck saga's stale entry and the deleted ones are gone");
        let listed = store.scan_prefix_keys(Table::SagasByFilter, &[], usize::MAX).unwrap();
        let kept = [saga_index_of(&stuck), saga_index_of(&recent)].concat();
        assert_eq!(listed.len(), kept.len(), "deleted sagas leave no listing entries");
        assert!(kept.iter().all(|k| listed.contains(k)));
        let owned = store.scan_prefix_keys(Table::SagasByOwner, &[], usize::MAX).unwrap();
        let kept = [saga_owner_index(&stuck), saga_owner_index(&recent)].concat();
        assert_eq!(owned.len(), kept.len(), "nor entries under their order and customer");
        assert!(kept.iter().all(|k| owned.contains(k)));
        assert_eq!(sweep_retained(&store, retention(5_000), now, &census).await.unwrap(), 0);
        store.close().unwrap();
    }

    /// A server with a share sweeps its own partitions' rows and, only while it owns the
    /// shared partition, the shared ones; the others' it leaves to their owners.
    #[tokio::test]
    async fn a_server_sweeps_only_the_rows_of_its_partitions() {
        use crate::domain::partition::{id_in, Owned, Partition, Partitions};
        let (_dir, store) = Store::temporary();
        let now = Timestamp::now();
        let old = now.plus_millis(-10_000);
        let customer = |p| crate::domain::ids::CustomerId(id_in(Partition(p)));
        let (mine, theirs) = (
            keys::idempotency(customer(1), "k", keys::IdempotentOperation::Place),
            keys::idempotency(customer(2), "k", keys::IdempotentOperation::Place),
        );
        let mut ws = idempotency_key(WriteSet::new(), mine.clone(), SagaId(uuid::Uuid::now_v7()), old);
        ws = idempotency_key(ws, theirs.clone(), SagaId(uuid::Uuid::now_v7()), old);
        store.commit(webhook_event(ws, &payment_event(old), None, false)).await.unwrap();
        let census = SagaCensus::new(crate::domain::partition::Partitions::DEFAULT);

        store.ownership().set(Owned::share(Partitions::DEFAULT, [Partition(1)]));
        assert_eq!(sweep_retained(&store, retention(5_000), now, &census).await.unwrap(), 1);
        assert!(!store.exists(&mine).unwrap(), "its own partition's key, expired, is deleted");
        assert!(store.exists(&theirs).unwrap(), "another partition's is its owner's to sweep");
        assert!(store.exists(&keys::webhook_event("payment", "evt_1")).unwrap(), "shared: not this server's");

        store.ownership().set(Owned::share(Partitions::DEFAULT, [Partition::SHARED, Partition(2)]));
        assert_eq!(sweep_retained(&store, retention(5_000), now, &census).await.unwrap(), 2);
        assert!(!store.exists(&theirs).unwrap());
        assert!(!store.exists(&keys::webhook_event("payment", "evt_1")).unwrap());
        store.close().unwrap();
    }

    #[tokio::test]
    async fn an_expired_key_of_a_running_saga_is_kept_and_a_replaced_event_is_not_deleted() {
        let (_dir, store) = Store::temporary();
        let now = Timestamp::now();
        let old = now.plus_millis(-10_000);
        let (done, running) = (SagaId(uuid::Uuid::now_v7()), SagaId(uuid::Uuid::now_v7()));
        let customer = crate::domain::ids::CustomerId(uuid::Uuid::now_v7());
        let (key_done, key_running) = (
            keys::idempotency(customer, "done", keys::IdempotentOperation::Place),
            keys::idempotency(customer, "running", keys::IdempotentOperation::Place),
        );
        let mut ws = idempotency_key(WriteSet::new(), key_done.clone(), done, old);
        ws = idempotency_key(ws, key_running.clone(), running, old);
        ws = ws.save(keys::active_saga(running), &0u32);
        let event = payment_event;
        // An old index entry whose event was since recorded again (after an earlier sweep).
        ws = ws.save(keys::webhook_event_by_time(old.0, "payment", "evt_1"), &0u32);
        ws = webhook_event(ws, &event(now), None, false);
        store.commit(ws).await.unwrap();

        let census = SagaCensus::new(crate::domain::partition::Partitions::DEFAULT);
        assert_eq!(sweep_retained(&store, retention(5_000), now, &census).await.unwrap(), 1);
        assert!(!store.exists(&key_done).unwrap());
        assert!(store.exists(&key_running).unwrap(), "its saga still runs");
        let requeued = store.scan_prefix_keys(Table::IdempotencyByTime, &[], usize::MAX).unwrap();
        assert_eq!(requeued, vec![time_key(now.0, key_running.as_bytes())], "looked at again one TTL later");
        assert!(store.exists(&keys::webhook_event("payment", "evt_1")).unwrap());
        let listed = store.scan_prefix_keys(Table::WebhooksByFilter, &[], usize::MAX).unwrap();
        assert_eq!(listed, {
            let mut k = webhook_index(&event(now));
            k.sort();
            k
        });
        // Once past its retention, the event leaves the listings too.
        let later = now.plus_millis(10_000);
        assert_eq!(sweep_retained(&store, retention(5_000), later, &census).await.unwrap(), 1);
        assert!(store.scan_prefix_keys(Table::WebhooksByFilter, &[], usize::MAX).unwrap().is_empty());
        store.close().unwrap();
    }
    /// Entries past their retention go, newer ones stay, and the log's last entry stays
    /// whatever its age: the next server to open the store numbers on from it.
    #[tokio::test]
    async fn old_invalidations_are_deleted_but_never_the_last() {
        use crate::store::invalidations::{self, Invalidation};
        let (_dir, store) = Store::temporary();
        let now = Timestamp::now();
        let old = now.plus_millis(-INVALIDATIONS_KEPT_MS - 1);
        let entry = |n: u8| Invalidation::Session([n; 32]);
        for n in 1..=3 {
            store.commit(WriteSet::new().logged_at(old).invalidate(entry(n))).await.unwrap();
        }
        store.commit(WriteSet::new().invalidate(entry(4))).await.unwrap();
        store.commit(WriteSet::new().logged_at(old).invalidate(entry(5))).await.unwrap();
        let cutoff = now.plus_millis(-INVALIDATIONS_KEPT_MS);
        assert_eq!(sweep_invalidations(&store, cutoff).await.unwrap(), 3, "the old ones before a newer one");
        let left: Vec<(u64, Invalidation)> =
            invalidations::after(&store, 0, 10).unwrap().into_iter().map(|(seq, e)| (seq, e.what)).collect();
        assert_eq!(left, [(4, entry(4)), (5, entry(5))], "an old entry after a newer one waits for the next pass");
        let later = Timestamp::now().plus_millis(INVALIDATIONS_KEPT_MS + 1);
        assert_eq!(sweep_invalidations(&store, later.plus_millis(-INVALIDATIONS_KEPT_MS)).await.unwrap(), 1);
        assert_eq!(invalidations::end(&store).unwrap(), 5, "the last is kept");
        assert_eq!(invalidations::after(&store, 0, 10).unwrap().len(), 1);
        store.close().unwrap();
    }
}
