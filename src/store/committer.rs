//! Group commit. One thread takes every write set waiting in its queue, applies them in one
//! sled transaction (one trip through sled's process-wide write lock for the whole group),
//! then makes the group durable with `flush()` and an `fdatasync` of sled's `db` file
//! (sled's flush is only `sync_file_range`; see DEPENDENCIES.md), then answers every waiter.
//! `flush_async` is never used: it deadlocks with 7+ concurrent callers.

use std::fs::File;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;
use tokio::sync::oneshot;

use super::codec::Record;
use super::records::EventRecord;
use super::tables::{audit_entity_prefix, due_key};
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

pub(crate) struct Committer {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    data_file: File,
    durable: bool,
    outbox_signal: Arc<tokio::sync::Notify>,
    events_signal: Arc<tokio::sync::Notify>,
    next_event_seq: u64,
    next_audit_seq: u64,
}

/// A write set's fate: applied, or refused by the named condition.
type Outcome = Result<(), &'static str>;

impl Committer {
    pub(crate) fn new(
        db: sled::Db,
        trees: Vec<sled::Tree>,
        data_file: File,
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
            durable,
            outbox_signal,
            events_signal,
        })
    }

    pub(crate) fn run(mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            self.commit_group(group);
        }
        tracing::info!("store committer drained and stopped");
    }

    fn commit_group(&mut self, group: Vec<Job>) {
        let started = Instant::now();
        let now = Timestamp::now();
        // A group of barriers only (empty write sets) has nothing to make durable: every
        // earlier group already is, since groups are committed one after the other.
        let writes = group.iter().any(|j| !j.ws.is_empty());
        let applied = self.apply(&group, now).and_then(|outcomes| {
            if self.durable && writes {
                self.db.flush()?;
                self.data_file.sync_data()?;
            }
            Ok(outcomes)
        });
        metrics::COMMIT_GROUP_SIZE.observe(group.len() as f64);
        metrics::COMMIT_SECONDS.observe(started.elapsed().as_secs_f64());
        let wakes_outbox = group.iter().any(|j| !j.ws.notifications.is_empty());
        let wakes_consumers = group.iter().any(|j| !j.ws.events.is_empty());
        match applied {
            Ok(outcomes) => {
                for (job, outcome) in group.into_iter().zip(outcomes) {
                    let reply = outcome.map_err(StoreError::Conflict);
                    let _ = job.reply.send(reply);
                }
                if wakes_outbox {
                    self.outbox_signal.notify_one();
                }
                if wakes_consumers {
                    self.events_signal.notify_one();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, writes = group.len(), "group commit failed; nothing acknowledged");
                for job in group {
                    let _ = job.reply.send(Err(StoreError::Io(std::io::Error::other(e.to_string()))));
                }
            }
        }
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
    for op in &ws.ops {
        if let Op::PutIfAbsent(table, key, _, tag) = op {
            if t(*table).get(key)?.is_some() {
                return Ok(Err(*tag));
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
    for (event_type, data) in &ws.events {
        let seq = seqs.0;
        seqs.0 += 1;
        let record = EventRecord { seq, event_type: event_type.clone(), at: now, data: data.clone() };
        t(Table::Events).insert(&seq.to_be_bytes(), record.encode())?;
    }
    for entry in &ws.audit {
        let seq = seqs.1;
        seqs.1 += 1;
        let mut entry = entry.clone();
        entry.at = now;
        t(Table::Audit).insert(&seq.to_be_bytes(), entry.encode())?;
        let mut index = audit_entity_prefix(&entry.entity_type, &entry.entity_id);
        index.extend_from_slice(&seq.to_be_bytes());
        t(Table::AuditByEntity).insert(index, &[])?;
    }
    for n in &ws.notifications {
        let id = n.notification_id.as_bytes();
        t(Table::Outbox).insert(id.as_slice(), n.encode())?;
        t(Table::OutboxDue).insert(due_key(n.next_attempt_at.0, id), &[])?;
    }
    Ok(Ok(()))
}
