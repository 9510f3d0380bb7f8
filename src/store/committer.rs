//! Group commit. One thread takes every write set waiting in its queue, plans them
//! together (see [`super::plan`]) and has the backend apply the whole group in one
//! transaction and make it durable (sled: one trip through its write lock, then `flush()`
//! and an `fdatasync` of its `db` file, see docs/storage.md; PostgreSQL: one transaction
//! committed with `synchronous_commit` on), then answers every waiter.
//! A reader queued among the write sets (a backup) runs after the groups before it and
//! before any after it: with no group half-applied, it sees one consistent instant.
//!
//! Fail-stop: if applying or syncing a group fails, the process exits at once (see
//! [`fail_stop`]). After a failed fsync the kernel may have dropped the dirty pages while
//! marking them clean, so a later successful fsync proves nothing (PostgreSQL's
//! "fsyncgate"); only a restart, which recovers from what is really on disk, can say what
//! survived. Nobody is ever told "durable" about a group whose sync failed.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use super::plan::{Outcome, Seqs};
use super::snapshot::Snapshot;
use super::writeset::{CommitTicket, WriteSet};
use super::StoreError;
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

/// A reader run between two groups; `None` when the backend cannot show the whole store
/// at one instant from here (PostgreSQL: back it up with the database's own tools).
pub(crate) type Reader = Box<dyn FnOnce(Option<&Snapshot>) + Send>;

/// What the committer's queue carries: write sets, and now and then a reader that must see
/// the store between two groups (a backup), when no write is half-applied.
pub(crate) enum Task {
    Commit(Job),
    Read(Reader),
}

/// Why a group could not be committed; the process stops on it (see [`fail_stop`]).
#[derive(Debug)]
pub(crate) struct GroupFailed {
    pub(crate) what: &'static str,
    pub(crate) error: StoreError,
}

/// A backend's side of group commit.
pub(crate) trait GroupWriter: Send + 'static {
    /// Applies every write set of `group` that its preconditions allow, in one transaction,
    /// durably (unless the settings relax durability): the outcome of each, in order, and
    /// the sequence numbers after the group.
    fn commit(&mut self, group: &[&WriteSet], seqs: Seqs, now: Timestamp) -> Result<(Vec<Outcome>, Seqs), GroupFailed>;

    /// The whole store as of now, between two groups.
    fn snapshot(&self) -> Option<Snapshot<'_>>;
}

pub(crate) struct Committer {
    writer: Box<dyn GroupWriter>,
    seqs: Seqs,
    outbox_signal: Arc<tokio::sync::Notify>,
    events_signal: Arc<tokio::sync::Notify>,
}

/// Exit status of a fail-stop, so supervisors and tests can tell it from a crash.
pub const FAIL_STOP_EXIT_CODE: i32 = 75;

/// Stops the process after a storage error, without answering anyone and without letting
/// the backend write anything more: recovery on the next start decides what is durable.
pub(crate) fn fail_stop(what: &str, error: &dyn std::fmt::Display) -> ! {
    tracing::error!(error = %error, "FATAL: {what} failed; stopping the process (fail-stop), restart to recover from what the store holds");
    eprintln!(
        "cartwright: FATAL: {what} failed: {error}; stopping (fail-stop), restart to recover from what the store holds"
    );
    std::process::exit(FAIL_STOP_EXIT_CODE)
}

impl Committer {
    pub(crate) fn new(
        writer: Box<dyn GroupWriter>,
        seqs: Seqs,
        outbox_signal: Arc<tokio::sync::Notify>,
        events_signal: Arc<tokio::sync::Notify>,
    ) -> Committer {
        Committer { writer, seqs, outbox_signal, events_signal }
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
                read(self.writer.snapshot().as_ref());
            }
        }
        tracing::info!("store committer drained and stopped");
    }

    fn commit_group(&mut self, group: Vec<Job>) {
        let started = Instant::now();
        let sets: Vec<&WriteSet> = group.iter().map(|j| &j.ws).collect();
        let (outcomes, seqs) = match self.writer.commit(&sets, self.seqs, Timestamp::now()) {
            Ok(done) => done,
            Err(failed) => fail_stop(failed.what, &failed.error),
        };
        self.seqs = seqs;
        metrics::COMMIT_GROUP_SIZE.observe(group.len() as f64);
        metrics::COMMIT_SECONDS.observe(started.elapsed().as_secs_f64());
        let wakes_outbox = group.iter().any(|j| !j.ws.notifications.is_empty());
        let wakes_consumers = group.iter().any(|j| !j.ws.events.is_empty());
        for (job, outcome) in group.into_iter().zip(outcomes) {
            let _ = job.reply.send(outcome.map_err(|refused| refused.into_error()));
        }
        if wakes_outbox {
            self.outbox_signal.notify_one();
        }
        if wakes_consumers {
            self.events_signal.notify_one();
        }
    }
}
