//! Group commit. One thread takes every write set waiting in its queue, applies them in one
//! sled transaction (one trip through sled's process-wide write lock for the whole group),
//! then makes the group durable with `flush()` and an `fdatasync` of sled's `db` file
//! (sled's flush is only `sync_file_range`; see docs/storage.md), then answers every waiter.
//! `flush_async` is never used: it deadlocks with 7+ concurrent callers.
//! A reader queued among the write sets (a backup) runs after the groups before it and
//! before any after it: with no group half-applied, it sees one consistent instant.
//!
//! Fail-stop: if applying or syncing a group fails, the process exits at once (see
//! [`fail_stop`]). After a failed fsync the kernel may have dropped the dirty pages while
//! marking them clean, so a later successful fsync proves nothing (PostgreSQL's
//! "fsyncgate"); only a restart, which recovers from what is really on disk, can say what
//! survived. Nobody is ever told "durable" about a group whose sync failed.

use std::fs::File;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;
use tokio::sync::oneshot;

use super::codec::Record;
use super::files::{BlobSyncer, SyncFault, MAX_RECORD_BYTES};
use super::indexes::notification_index;
use super::keys::{self, Key};
use super::records::EventRecord;
use super::tables::ListingFilter;
use super::writeset::{CommitTicket, Op, WriteSet};
use super::{StoreError, Table};
use crate::domain::time::Timestamp;
use crate::metrics;

/// Upper bound of write sets per group, so one group's transaction stays short.
const MAX_GROUP: usize = 512;

pub(crate) struct Job {
    ws: WriteSet,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

impl Job {
    pub(crate) fn new(ws: WriteSet) -> (Job, CommitTicket) {
        let (reply, rx) = oneshot::channel();
        (Job { ws, reply }, CommitTicket::pending(rx))
    }
}

/// What the committer's queue carries: write sets, and now and then a reader that must see
/// the store between two groups (a backup), when no write is half-applied.
pub(crate) enum Task {
    Commit(Job),
    Read(Box<dyn FnOnce(&sled::Db) + Send>),
}

pub(crate) struct Committer {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    data_file: File,
    blobs: BlobSyncer,
    fault: SyncFault,
    durable: bool,
    outbox_signal: Arc<tokio::sync::Notify>,
    events_signal: Arc<tokio::sync::Notify>,
    next_event_seq: u64,
    next_audit_seq: u64,
}

/// A write set's fate: applied, or refused (and not applied at all).
type Outcome = Result<(), Refused>;

#[derive(Debug, Clone, Copy)]
enum Refused {
    /// A `put_if_absent` found its key taken: the named condition.
    Conflict(&'static str),
    /// A record would weigh more than [`MAX_RECORD_BYTES`].
    TooLarge { table: &'static str, bytes: usize },
}

/// Exit status of a fail-stop, so supervisors and tests can tell it from a crash.
pub const FAIL_STOP_EXIT_CODE: i32 = 75;

/// Stops the process after a storage error, without answering anyone and without letting
/// sled flush anything more: recovery on the next start decides what is durable.
fn fail_stop(what: &str, error: &dyn std::fmt::Display) -> ! {
    tracing::error!(error = %error, "FATAL: {what} failed; stopping the process (fail-stop), restart to recover from disk");
    eprintln!("cartwright: FATAL: {what} failed: {error}; stopping (fail-stop), restart to recover from disk");
    std::process::exit(FAIL_STOP_EXIT_CODE)
}

impl Committer {
    pub(crate) fn new(
        db: sled::Db,
        trees: Vec<sled::Tree>,
        data_file: File,
        blobs: BlobSyncer,
        durable: bool,
        outbox_signal: Arc<tokio::sync::Notify>,
        events_signal: Arc<tokio::sync::Notify>,
    ) -> Result<Committer, StoreError> {
        let next = |t: Table| -> Result<u64, StoreError> {
            Ok(match trees[t as usize].last()? {
                Some((k, _)) => u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8])) + 1,
                None => 1,
            })
        };
        Ok(Committer {
            next_event_seq: next(Table::Events)?,
            next_audit_seq: next(Table::Audit)?,
            db,
            trees,
            data_file,
            blobs,
            fault: SyncFault::from_env(),
            durable,
            outbox_signal,
            events_signal,
        })
    }

    pub(crate) fn run(mut self, rx: mpsc::Receiver<Task>) {
        while let Ok(first) = rx.recv() {
            let mut group = Vec::new();
            let mut reader = None;
            let mut next = Some(first);
            while let Some(task) = next {
                match task {
                    Task::Commit(job) => group.push(job),
                    // The writes queued before it are applied first, the ones after it wait.
                    Task::Read(read) => {
                        reader = Some(read);
                        break;
                    }
                }
                next = if group.len() < MAX_GROUP { rx.try_recv().ok() } else { None };
            }
            if !group.is_empty() {
                self.commit_group(group);
            }
            if let Some(read) = reader {
                read(&self.db);
            }
        }
        tracing::info!("store committer drained and stopped");
    }

    fn commit_group(&mut self, group: Vec<Job>) {
        let started = Instant::now();
        let now = Timestamp::now();
        // A group of barriers only (empty write sets) has nothing to make durable: every
        // earlier group already is, since groups are committed one after the other.
        let writes = group.iter().any(|j| !j.ws.is_empty());
        let outcomes = match self.apply(&group, now) {
            Ok(outcomes) => outcomes,
            Err(e) => fail_stop("applying a commit group", &e),
        };
        if self.durable && writes {
            if let Err(e) = self.sync() {
                fail_stop("syncing a commit group to disk", &e);
            }
        }
        metrics::COMMIT_GROUP_SIZE.observe(group.len() as f64);
        metrics::COMMIT_SECONDS.observe(started.elapsed().as_secs_f64());
        let wakes_outbox = group.iter().any(|j| !j.ws.notifications.is_empty());
        let wakes_consumers = group.iter().any(|j| !j.ws.events.is_empty());
        for (job, outcome) in group.into_iter().zip(outcomes) {
            let reply = outcome.map_err(|refused| match refused {
                Refused::Conflict(tag) => StoreError::Conflict(tag),
                Refused::TooLarge { table, bytes } => {
                    tracing::error!(table, bytes, limit = MAX_RECORD_BYTES, "write set refused: record too large");
                    StoreError::TooLarge { table, bytes }
                }
            });
            let _ = job.reply.send(reply);
        }
        if wakes_outbox {
            self.outbox_signal.notify_one();
        }
        if wakes_consumers {
            self.events_signal.notify_one();
        }
    }

    /// sled's flush (writes, `sync_file_range`), then every blob file sled created since
    /// the last group and `blobs/`, then `fdatasync` of the log: the log never becomes
    /// durable pointing at a blob that is not.
    fn sync(&mut self) -> std::io::Result<()> {
        self.fault.check()?;
        self.db.flush().map_err(std::io::Error::other)?;
        self.blobs.sync_new()?;
        self.data_file.sync_data()
    }

    /// One transaction for the whole group. A write set whose precondition fails is skipped
    /// whole; the others still commit.
    fn apply(&mut self, group: &[Job], now: Timestamp) -> Result<Vec<Outcome>, StoreError> {
        let (first_event, first_audit) = (self.next_event_seq, self.next_audit_seq);
        let result = self.trees.as_slice().transaction(|tx| {
            let mut seqs = (first_event, first_audit);
            let outcomes =
                group.iter().map(|job| apply_one(tx, &job.ws, now, &mut seqs)).collect::<Result<Vec<_>, _>>()?;
            Ok((outcomes, seqs))
        });
        match result {
            Ok((outcomes, (event_seq, audit_seq))) => {
                self.next_event_seq = event_seq;
                self.next_audit_seq = audit_seq;
                Ok(outcomes)
            }
            Err(TransactionError::Storage(e)) => Err(e.into()),
            Err(TransactionError::Abort(())) => Err(StoreError::Closed),
        }
    }
}

fn apply_one(
    tx: &[TransactionalTree],
    ws: &WriteSet,
    now: Timestamp,
    seqs: &mut (u64, u64),
) -> Result<Outcome, ConflictableTransactionError<()>> {
    let t = |table: Table| &tx[table as usize];
    if let Some(refused) = oversized(ws) {
        return Ok(Err(refused));
    }
    for op in &ws.ops {
        if let Op::PutIfAbsent(table, key, _, tag) = op {
            if t(*table).get(key)?.is_some() {
                return Ok(Err(Refused::Conflict(tag)));
            }
        }
    }
    for op in &ws.ops {
        match op {
            Op::Put(table, key, value) | Op::PutIfAbsent(table, key, value, _) => {
                t(*table).insert(key.as_slice(), value.as_slice())?;
            }
            Op::Delete(table, key) => {
                t(*table).remove(key.as_slice())?;
            }
        }
    }
    let insert = |key: Key, value: Vec<u8>| t(key.table()).insert(key.into_bytes(), value);
    for event in &ws.events {
        let seq = seqs.0;
        seqs.0 += 1;
        let record = EventRecord { seq, event_type: event.event_type.clone(), at: now, data: event.data.clone() };
        insert(keys::event(seq), record.encode())?;
        if let Some(order) = event.order_id {
            insert(keys::order_event(order, seq), Vec::new())?;
        }
    }
    for entry in &ws.audit {
        let seq = seqs.1;
        seqs.1 += 1;
        let mut entry = entry.clone();
        entry.at = now;
        insert(keys::audit(seq), entry.encode())?;
        insert(keys::audit_entity_row(&entry.entity_type, &entry.entity_id, seq), Vec::new())?;
        t(Table::AuditByType).insert(ListingFilter::AuditType(&entry.entity_type).key(&seq.to_be_bytes()), &[])?;
    }
    for n in &ws.notifications {
        insert(keys::notification(n.notification_id), n.encode())?;
        insert(keys::outbox_due(n.next_attempt_at.0, n.notification_id), Vec::new())?;
        for entry in notification_index(n) {
            t(Table::NotificationsByFilter).insert(entry, &[])?;
        }
    }
    Ok(Ok(()))
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
