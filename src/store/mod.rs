//! The only code that touches the database. Named tables, typed records encoded with
//! bincode 2 behind a one-byte version tag, and group commit: a [`WriteSet`] (state,
//! domain events, audit rows, queued notifications) is applied atomically by one committer
//! thread together with whatever else is waiting, made durable, and only then is its
//! [`CommitTicket`] resolved. Between two groups the committer can also run a reader
//! ([`Store::snapshot`]), which then sees the whole store at one instant: how backups are
//! taken.
//!
//! Two backends hold the tables: sled, embedded under `storage.path` (the default), and
//! PostgreSQL (`storage.backend = "postgres"`), one table per [`Table`]. Everything above
//! this module sees the same [`Store`] either way.

mod backend;
mod codec;
mod committer;
mod files;
mod gauges;
mod homes;
mod indexes;
pub mod invalidations;
pub mod keys;
mod listing;
mod ownership;
mod plan;
mod postgres;
mod records;
pub mod retained;
mod sled_backend;
mod snapshot;
pub mod staged;
mod tables;
mod walk;
mod writeset;

use std::ops::Bound;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub use backend::{LeaseView, NodeView, Owner};
pub use codec::{decode_version, Record};
pub use committer::FAIL_STOP_EXIT_CODE;
pub use files::MAX_RECORD_BYTES;
pub use indexes::{
    backfill, decoded, notification_index, order_index, reindex, saga_index, saga_listing, saga_owner_index,
    saga_state_source, unindex, webhook_index, Backfill, SagaStateSource,
};
pub use invalidations::{Invalidation, InvalidationEntry};
pub use keys::{saga_owner_prefix, time_bound, time_key, time_key_rest, webhook_order_key, Key, Prefix, SagaOwner};
pub use listing::Page;
pub use ownership::Ownership;
pub use postgres::Wait;
pub use records::{
    AuditEntry, Customer, EventRecord, Notification, NotificationStatus, Session, StaffRole, StaffSession, VerifyToken,
    WebhookEvent,
};
pub use snapshot::{Importer, Snapshot};
pub use tables::{ListingFilter, Table};
pub use walk::Walk;
pub use writeset::{CommitTicket, WriteSet};

use crate::config::{Backend as BackendKind, ClusterSettings, StorageSettings};
use crate::domain::partition::Owned;
use backend::Backend;
use committer::GroupWriter;

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
    #[error("postgres: {}", postgres_detail(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// PostgreSQL connection settings no connection can be made with: an unknown `sslmode`
    /// or a CA file that cannot be read (refused before connecting), or a database
    /// certificate they do not trust.
    #[error("{0}")]
    Settings(String),
    /// The PostgreSQL schema was written by a newer build (its migrations are unknown here).
    #[error("the store's schema is at version {found}; this build knows up to {known}")]
    SchemaTooNew { found: i32, known: i32 },
    /// Another server took over a partition the write set touches: it was refused whole.
    #[error("{0}")]
    Fenced(String),
    /// Something only the other backend does (a snapshot of a PostgreSQL store).
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("the store is shut down")]
    Closed,
}

/// A cheap handle; clones share one database and one committer thread.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Box<dyn Backend>,
    /// The server this store was opened as (its lease owner on PostgreSQL).
    node_id: String,
    submit: Mutex<Option<mpsc::Sender<committer::Task>>>,
    committer: Mutex<Option<JoinHandle<()>>>,
    /// The partitions this server owns.
    ownership: Ownership,
    /// Woken after every commit that queued a notification, so delivery starts at once.
    pub(crate) outbox_signal: Arc<tokio::sync::Notify>,
    /// Woken after every commit that appended domain events (event-log consumers).
    pub(crate) events_signal: Arc<tokio::sync::Notify>,
}

impl Drop for Inner {
    /// The committer goes before the backend it writes through (a PostgreSQL backend's
    /// runtime must outlive the group in flight).
    fn drop(&mut self) {
        self.stop_committer();
    }
}

impl Inner {
    /// Stops accepting write sets and waits until the committer has drained what is queued
    /// (once: a later call finds nothing to stop).
    fn stop_committer(&self) {
        if let Ok(mut submit) = self.submit.lock() {
            submit.take();
        }
        if let Some(handle) = self.committer.lock().ok().and_then(|mut h| h.take()) {
            let _ = handle.join();
        }
    }
}

impl Store {
    /// An embedded store in a fresh temporary directory (deleted with the `TempDir`), with
    /// the default settings: what the store's own and its callers' unit tests write to.
    #[cfg(test)]
    pub(crate) fn temporary() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut settings = crate::config::Settings::load_layers(None, false).expect("the default settings");
        settings.storage.path = dir.path().into();
        let store = Store::open(&settings.storage).expect("a fresh store opens");
        (dir, store)
    }

    /// Opens the store as a tool would (a random node id, the default lease).
    pub fn open(settings: &StorageSettings) -> Result<Store, StoreError> {
        Store::open_as(settings, &ClusterSettings::for_tools())
    }

    /// Opens the store as the process `cluster` names, to write anywhere (a tool: a restore,
    /// an operator's command; on PostgreSQL it takes every partition's lease, waiting while
    /// another server holds any, and keeps them all whoever joins).
    pub fn open_as(settings: &StorageSettings, cluster: &ClusterSettings) -> Result<Store, StoreError> {
        let opened =
            Store::open_with(settings, cluster, postgres::Claim::Whole, Wait::Forever, postgres::Schema::Migrate)?;
        Ok(opened.expect("waited for the lease"))
    }

    /// Opens the store as a server of its cluster: on PostgreSQL it takes a fair share of
    /// the partitions (see `postgres/lease.rs`); `None` while the others hold them all: at
    /// once with [`Wait::No`], or once `Wait::Until`'s value turns true (a follower asked to
    /// stop).
    /// For a server that has `joined` its cluster, which brought the schema up to date: it
    /// is not checked again (a follower opens the store twice, at start and when it leads).
    pub fn open_when_free(
        settings: &StorageSettings,
        cluster: &ClusterSettings,
        wait: Wait,
        joined: &Membership,
    ) -> Result<Option<Store>, StoreError> {
        let schema = if joined.is_clustered() { postgres::Schema::UpToDate } else { postgres::Schema::Migrate };
        Store::open_with(settings, cluster, postgres::Claim::Share, wait, schema)
    }

    fn open_with(
        settings: &StorageSettings,
        cluster: &ClusterSettings,
        claim: postgres::Claim,
        wait: Wait,
        schema: postgres::Schema,
    ) -> Result<Option<Store>, StoreError> {
        let (backend, writer, seqs, ownership): (Box<dyn Backend>, Box<dyn GroupWriter>, _, _) = match settings.backend
        {
            BackendKind::Sled => {
                let (backend, writer, seqs) = sled_backend::open(settings)?;
                (Box::new(backend), Box::new(writer), seqs, Ownership::new(Owned::every(cluster.partitions)))
            }
            BackendKind::Postgres => match postgres::open(settings, cluster, claim, wait, schema)? {
                Some((backend, writer, seqs, ownership)) => (Box::new(backend), Box::new(writer), seqs, ownership),
                None => return Ok(None),
            },
        };
        let outbox_signal = Arc::new(tokio::sync::Notify::new());
        let events_signal = Arc::new(tokio::sync::Notify::new());
        let (tx, rx) = mpsc::channel();
        let worker = committer::Committer::new(writer, seqs, outbox_signal.clone(), events_signal.clone());
        let handle = std::thread::Builder::new().name("store-committer".into()).spawn(move || worker.run(rx))?;
        let store = Store {
            inner: Arc::new(Inner {
                backend,
                node_id: cluster.node_id.clone(),
                submit: Mutex::new(Some(tx)),
                committer: Mutex::new(Some(handle)),
                ownership,
                outbox_signal,
                events_signal,
            }),
        };
        indexes::backfill_own(&store)?;
        Ok(Some(store))
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
        let task = committer::Task::Read(Box::new(move |snapshot: Option<&Snapshot>| {
            let Some(snapshot) = snapshot else {
                let _ = tx.send(None);
                return;
            };
            // A panicking reader must not take the committer, and every later write, down.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(snapshot)));
            let _ = tx.send(Some(result));
        }));
        if !self.submit(task) {
            return Err(StoreError::Closed);
        }
        match rx.recv() {
            Ok(Some(Ok(value))) => Ok(value),
            Ok(Some(Err(panic))) => std::panic::resume_unwind(panic),
            Ok(None) => Err(StoreError::Unsupported(
                "this store cannot be snapshotted by Cartwright: back up a PostgreSQL store with its own tools (pg_dump, base backups)",
            )),
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
        match self.inner.backend.get(table, key)? {
            Some(bytes) => Ok(Some(T::decode(table, &bytes)?)),
            None => Ok(None),
        }
    }

    pub fn contains(&self, table: Table, key: &[u8]) -> Result<bool, StoreError> {
        self.inner.backend.contains(table, key)
    }

    /// Records whose key starts with `prefix`, in key order.
    pub fn scan_prefix<T: Record>(&self, table: Table, prefix: &[u8]) -> Result<Vec<(Vec<u8>, T)>, StoreError> {
        self.entries(table, prefix_bounds(prefix), false, 256)
            .map(|kv| {
                let (k, v) = kv?;
                Ok((k, T::decode(table, &v)?))
            })
            .collect()
    }

    /// Keys starting with `prefix`, in order, up to `limit`.
    pub fn scan_prefix_keys(&self, table: Table, prefix: &[u8], limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.entries(table, prefix_bounds(prefix), false, limit).take(limit).map(|kv| Ok(kv?.0)).collect()
    }

    /// Up to `limit` records with key strictly greater than `after` (or from the start).
    pub fn page<T: Record>(
        &self,
        table: Table,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, T)>, StoreError> {
        let lower = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_vec()));
        self.entries(table, (lower, Bound::Unbounded), false, limit)
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                Ok((k, T::decode(table, &v)?))
            })
            .collect()
    }

    /// Keys in `[from, to)`, in order, up to `limit` (used for time-ordered indexes).
    pub fn keys_between(&self, table: Table, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let bounds = (Bound::Included(from.to_vec()), Bound::Excluded(to.to_vec()));
        self.entries(table, bounds, false, limit).take(limit).map(|kv| Ok(kv?.0)).collect()
    }

    /// The entries between two bounds, lazily; nothing for an empty or inverted range.
    fn entries(
        &self,
        table: Table,
        (lower, upper): (Bound<Vec<u8>>, Bound<Vec<u8>>),
        reverse: bool,
        chunk: usize,
    ) -> backend::Entries<'_> {
        if empty_range(&lower, &upper) {
            return Box::new(std::iter::empty());
        }
        self.inner.backend.range(table, lower, upper, reverse, chunk.clamp(1, 1024))
    }

    /// The server this store was opened as.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// The store's leases as the database has them (none on the embedded store).
    pub fn leases(&self) -> Result<Vec<LeaseView>, StoreError> {
        self.inner.backend.leases()
    }

    /// Whether this server surely still holds the store's lease (always on the embedded
    /// store). The store's own writes are fenced in the database; a call to the outside
    /// (a payment) asks this first, so a server paused past its lease cannot make one
    /// once resumed.
    pub fn holds_lease(&self) -> bool {
        self.inner.backend.holds_lease()
    }

    /// The partitions this server owns as of now (see [`Ownership`]).
    pub fn owned(&self) -> Arc<Owned> {
        self.inner.ownership.current()
    }

    /// Whether the row at `key` in `table` lives in a partition this server owns: only then
    /// does a worker walking the table write it (another server's would be fenced).
    pub fn owns(&self, table: Table, key: &[u8]) -> bool {
        Store::lies_in(table, key, &self.owned())
    }

    /// Whether the row at `key` in `table` lives in one of the partitions of `share`.
    pub fn lies_in(table: Table, key: &[u8], share: &Owned) -> bool {
        share.contains(homes::home(table, key).partition(share.count()))
    }

    /// This server's share, to follow as it changes.
    pub fn ownership(&self) -> &Ownership {
        &self.inner.ownership
    }

    /// Whether this server owns the shared partition: it alone writes the records without
    /// a partition of their own (customers, sessions, the outbox, bulk actions...) and the
    /// logs (another server stages its entries, see [`staged`]), so the work on them is its.
    pub fn owns_shared(&self) -> bool {
        self.owned().has_shared()
    }

    /// The servers sharing the store, the leader first (none on the embedded store).
    pub fn nodes(&self) -> Result<Vec<NodeView>, StoreError> {
        self.inner.backend.nodes()
    }

    /// The leases and servers of the PostgreSQL store `settings` name, read without being
    /// a server of it (`cartwright cluster`; it answers while no server leads).
    pub fn cluster_view(
        settings: &crate::config::StorageSettings,
    ) -> Result<(Vec<LeaseView>, Vec<NodeView>), StoreError> {
        match settings.backend {
            crate::config::Backend::Postgres => postgres::cluster_view(settings),
            crate::config::Backend::Sled => Err(StoreError::Settings(
                "the embedded store has one server and no leases: `cartwright cluster` is for storage.backend = \"postgres\""
                    .into(),
            )),
        }
    }

    pub fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        self.inner.outbox_signal.clone()
    }

    pub fn events_signal(&self) -> Arc<tokio::sync::Notify> {
        self.inner.events_signal.clone()
    }

    /// Stops accepting write sets, lets the committer drain what is queued, and flushes.
    pub fn close(&self) -> Result<(), StoreError> {
        self.inner.stop_committer();
        self.inner.backend.close()
    }
}

/// The keys that start with `prefix`.
fn prefix_bounds(prefix: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    (Bound::Included(prefix.to_vec()), prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded))
}

/// The first key after every key that starts with `prefix` (`None`: there is none).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Whether no key lies between the bounds (sled refuses such a range).
fn empty_range(lower: &Bound<Vec<u8>>, upper: &Bound<Vec<u8>>) -> bool {
    match (lower, upper) {
        (Bound::Included(l), Bound::Included(u)) => l > u,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(u)) | (Bound::Excluded(l), Bound::Included(u)) => {
            l >= u
        }
        _ => false,
    }
}

/// This server's membership of a cluster on a PostgreSQL store (see
/// `postgres/membership.rs`); nothing on the embedded store, which has one server.
pub struct Membership(Option<postgres::Membership>);

impl Membership {
    /// Joins the cluster the store names: writes this server's row (with
    /// `cluster.advertise_url`) and keeps its heartbeat. Migrates the schema first.
    pub fn join(settings: &StorageSettings, cluster: &ClusterSettings) -> Result<Membership, StoreError> {
        match settings.backend {
            BackendKind::Sled => Ok(Membership(None)),
            BackendKind::Postgres => Ok(Membership(Some(postgres::Membership::join(settings, cluster)?))),
        }
    }

    /// Whether other servers can share this store (and so lead or follow).
    pub fn is_clustered(&self) -> bool {
        self.0.is_some()
    }

    /// Every server of the cluster, the leader first.
    pub fn nodes(&self) -> Result<Vec<NodeView>, StoreError> {
        self.0.as_ref().map_or(Ok(Vec::new()), |m| m.nodes())
    }

    /// The secret every server of the cluster shares (none on the embedded store).
    pub fn secret(&self) -> Option<&[u8]> {
        self.0.as_ref().map(|m| m.secret())
    }

    /// Leaves the cluster (a clean stop).
    pub fn leave(&self) -> Result<(), StoreError> {
        self.0.as_ref().map_or(Ok(()), |m| m.leave())
    }
}

impl Membership {
    /// Every unexpired lease joined with its owner's row (the URL to forward to), in one
    /// read; none on the embedded store.
    pub fn owners(&self) -> Result<Vec<Owner>, StoreError> {
        self.0.as_ref().map_or(Ok(Vec::new()), |m| m.owners())
    }
}

/// What the database said, when it said something ("db error" alone says nothing): its
/// message and SQLSTATE, e.g. a session ended by `idle_in_transaction_session_timeout`.
pub(crate) fn postgres_detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}
