//! The only code that touches sled. Named tables (sled trees), typed records encoded with
//! bincode 2 behind a one-byte version tag, and group commit: a [`WriteSet`] (state,
//! domain events, audit rows, queued notifications) is applied atomically by one committer
//! thread together with whatever else is waiting, made durable with `flush()` plus an
//! `fdatasync` of sled's data file, and only then is its [`CommitTicket`] resolved.
//! Between two groups the committer can also run a reader ([`Store::snapshot`]), which
//! then sees the whole store at one instant: how backups are taken.

mod codec;
mod committer;
mod files;
mod gauges;
mod indexes;
pub mod keys;
mod listing;
mod records;
pub mod retained;
mod snapshot;
mod tables;
mod walk;
mod writeset;

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use codec::{decode_version, Record};
pub use committer::FAIL_STOP_EXIT_CODE;
pub use files::MAX_RECORD_BYTES;
pub use indexes::{
    notification_index, order_index, reindex, saga_index, saga_index_of, saga_listing, saga_owner_index,
    saga_state_source, unindex, webhook_index, SagaStateSource,
};
pub use keys::{saga_owner_prefix, time_bound, time_key, time_key_rest, webhook_order_key, Key, Prefix, SagaOwner};
pub use listing::Page;
pub use records::{
    AuditEntry, Customer, EventRecord, Notification, NotificationStatus, Session, VerifyToken, WebhookEvent,
};
pub use snapshot::{Importer, Snapshot};
pub use tables::{ListingFilter, Table};
pub use walk::Walk;
pub use writeset::{CommitTicket, WriteSet};

use crate::config::{Durability, StorageSettings};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("record {table}: {reason}")]
    Codec { table: &'static str, reason: String },
    /// A `put_if_absent` found its key taken; the whole write set was not applied.
    #[error("conflict on {0}")]
    Conflict(&'static str),
    /// A record of the write set would exceed [`MAX_RECORD_BYTES`]; nothing was applied.
    #[error("a {table} record of {bytes} bytes exceeds the record size limit")]
    TooLarge { table: &'static str, bytes: usize },
    #[error("the store is shut down")]
    Closed,
}

/// A cheap handle; clones share one database and one committer thread.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    submit: Mutex<Option<mpsc::Sender<committer::Task>>>,
    committer: Mutex<Option<JoinHandle<()>>>,
    /// Woken after every commit that queued a notification, so delivery starts at once.
    pub(crate) outbox_signal: Arc<tokio::sync::Notify>,
    /// Woken after every commit that appended domain events (event-log consumers).
    pub(crate) events_signal: Arc<tokio::sync::Notify>,
}

impl Store {
    pub fn open(settings: &StorageSettings) -> Result<Store, StoreError> {
        std::fs::create_dir_all(&settings.path)?;
        let db = open_with_retry(&settings.path, settings.cache_capacity_mb)?;
        let trees = Table::ALL.iter().map(|t| db.open_tree(t.name())).collect::<Result<Vec<_>, _>>()?;
        indexes::backfill(&db, &trees)?;
        db.flush()?;
        let data_file = std::fs::File::open(settings.path.join("db"))?;
        data_file.sync_data()?;
        files::sync_layout(&settings.path)?;
        let mut blobs = files::BlobSyncer::new(&settings.path);
        blobs.sync_new()?;
        let outbox_signal = Arc::new(tokio::sync::Notify::new());
        let events_signal = Arc::new(tokio::sync::Notify::new());
        let (tx, rx) = mpsc::channel();
        let worker = committer::Committer::new(
            db.clone(),
            trees.clone(),
            data_file,
            blobs,
            settings.durability == Durability::Durable,
            outbox_signal.clone(),
            events_signal.clone(),
        )?;
        let handle = std::thread::Builder::new().name("store-committer".into()).spawn(move || worker.run(rx))?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                trees,
                submit: Mutex::new(Some(tx)),
                committer: Mutex::new(Some(handle)),
                outbox_signal,
                events_signal,
            }),
        })
    }

    /// Queues `ws` behind every earlier write set, in submission order. The write is applied
    /// and durable once the returned ticket resolves with `Ok`.
    pub fn commit(&self, ws: WriteSet) -> CommitTicket {
        let (job, ticket) = committer::Job::new(ws);
        if self.submit(committer::Task::Commit(job)) {
            ticket
        } else {
            CommitTicket::failed(StoreError::Closed)
        }
    }

    /// Runs `read` on the committer thread between two commit groups, so it sees every
    /// write set submitted before this call and none submitted after, each whole: a
    /// consistent point in time across all trees. Writes wait while it runs. Blocks the
    /// calling thread (use `spawn_blocking` from async code).
    pub fn snapshot<R: Send + 'static>(
        &self,
        read: impl FnOnce(&Snapshot) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let task = committer::Task::Read(Box::new(move |db: &sled::Db| {
            // A panicking reader must not take the committer, and every later write, down.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(&Snapshot { db })));
            let _ = tx.send(result);
        }));
        if !self.submit(task) {
            return Err(StoreError::Closed);
        }
        match rx.recv() {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(StoreError::Closed),
        }
    }

    fn submit(&self, task: committer::Task) -> bool {
        self.inner.submit.lock().ok().and_then(|g| g.as_ref().map(|tx| tx.send(task).is_ok())).unwrap_or(false)
    }

    /// Resolves once every write set submitted before it is durable: a read that must not
    /// show state which a crash could still take back waits on this before answering.
    pub fn barrier(&self) -> CommitTicket {
        self.commit(WriteSet::new())
    }

    /// The record at `key` (built by [`keys`]).
    pub fn load<T: Record>(&self, key: &Key) -> Result<Option<T>, StoreError> {
        self.get(key.table(), key.as_bytes())
    }

    pub fn exists(&self, key: &Key) -> Result<bool, StoreError> {
        self.contains(key.table(), key.as_bytes())
    }

    /// The records under `prefix` (built by [`keys`]), in key order.
    pub fn scan<T: Record>(&self, prefix: &Prefix) -> Result<Vec<(Vec<u8>, T)>, StoreError> {
        self.scan_prefix(prefix.table(), prefix.as_bytes())
    }

    /// The keys under `prefix`, in order, up to `limit`.
    pub fn scan_keys(&self, prefix: &Prefix, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.scan_prefix_keys(prefix.table(), prefix.as_bytes(), limit)
    }

    /// The keys in `[from, to)` of their table, in order, up to `limit`.
    pub fn keys_in(&self, from: &Key, to: &Key, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        debug_assert_eq!(from.table(), to.table(), "a range within one table");
        self.keys_between(from.table(), from.as_bytes(), to.as_bytes(), limit)
    }

    /// By table and raw key: for keys read back from a table (sweeps, index walks); any other
    /// key is built by [`keys`] and read with [`Store::load`].
    pub fn get<T: Record>(&self, table: Table, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.tree(table).get(key)? {
            Some(bytes) => Ok(Some(T::decode(table, &bytes)?)),
            None => Ok(None),
        }
    }

    pub fn contains(&self, table: Table, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.tree(table).contains_key(key)?)
    }

    /// Records whose key starts with `prefix`, in key order.
    pub fn scan_prefix<T: Record>(&self, table: Table, prefix: &[u8]) -> Result<Vec<(Vec<u8>, T)>, StoreError> {
        self.tree(table)
            .scan_prefix(prefix)
            .map(|kv| {
                let (k, v) = kv?;
                Ok((k.to_vec(), T::decode(table, &v)?))
            })
            .collect()
    }

    /// Keys starting with `prefix`, in order, up to `limit`.
    pub fn scan_prefix_keys(&self, table: Table, prefix: &[u8], limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.tree(table).scan_prefix(prefix).take(limit).map(|kv| Ok(kv?.0.to_vec())).collect()
    }

    /// Up to `limit` records with key strictly greater than `after` (or from the start).
    pub fn page<T: Record>(
        &self,
        table: Table,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, T)>, StoreError> {
        let tree = self.tree(table);
        let iter = match after {
            Some(a) => tree.range::<&[u8], _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => tree.iter(),
        };
        iter.take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                Ok((k.to_vec(), T::decode(table, &v)?))
            })
            .collect()
    }

    /// Keys in `[from, to)`, in order, up to `limit` (used for time-ordered indexes).
    pub fn keys_between(&self, table: Table, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.tree(table).range(from..to).take(limit).map(|kv| Ok(kv?.0.to_vec())).collect()
    }

    pub fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        self.inner.outbox_signal.clone()
    }

    pub fn events_signal(&self) -> Arc<tokio::sync::Notify> {
        self.inner.events_signal.clone()
    }

    /// Stops accepting write sets, lets the committer drain what is queued, and flushes.
    pub fn close(&self) -> Result<(), StoreError> {
        if let Ok(mut submit) = self.inner.submit.lock() {
            submit.take();
        }
        if let Some(handle) = self.inner.committer.lock().ok().and_then(|mut h| h.take()) {
            let _ = handle.join();
        }
        self.inner.db.flush()?;
        Ok(())
    }

    fn tree(&self, table: Table) -> &sled::Tree {
        &self.inner.trees[table as usize]
    }
}

/// sled holds a file lock; a process that just closed the same directory may still be
/// letting go of it for a moment (in-process restarts in tests), so retry briefly.
fn open_with_retry(path: &Path, cache_mb: u64) -> Result<sled::Db, StoreError> {
    let mut attempts = 0;
    loop {
        let result = sled::Config::new()
            .path(path)
            .segment_size(files::segment_size(path))
            .cache_capacity(cache_mb * 1024 * 1024)
            .mode(sled::Mode::HighThroughput)
            .open();
        match result {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e)) if is_lock_held(&e) && attempts < 100 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// sled reports a held lock as a plain `Other` error whose only trace of the cause is its
/// text (sled 0.34 `config.rs`: "could not acquire lock on ..."), so that text is the signal.
fn is_lock_held(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().starts_with("could not acquire lock")
}
