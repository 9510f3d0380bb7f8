//! The embedded backend: one sled tree per table under `storage.path`, written by the
//! committer in one sled transaction per group, made durable by sled's flush plus an
//! `fdatasync` of its `db` file (sled's flush is only `sync_file_range`; see
//! docs/storage.md). `flush_async` is never used: it deadlocks with 7+ concurrent callers.

use std::fs::File;
use std::ops::Bound;
use std::path::Path;
use std::time::Duration;

use sled::transaction::TransactionError;
use sled::Transactional;

use super::backend::{Backend, Entries};
use super::committer::{GroupFailed, GroupWriter};
use super::files::{self, BlobSyncer, SyncFault};
use super::plan::{plan, Change, Logs, Outcome, Seqs};
use super::snapshot::Snapshot;
use super::{StoreError, Table, WriteSet};
use crate::config::{Durability, StorageSettings};
use crate::domain::time::Timestamp;

pub(crate) struct SledBackend {
    db: sled::Db,
    trees: Vec<sled::Tree>,
}

pub(crate) struct SledWriter {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    data_file: File,
    blobs: BlobSyncer,
    fault: SyncFault,
    durable: bool,
}

/// Opens (or creates) the store: builds any index an older store lacks, makes its layout
/// durable, and reads where the event and audit logs go on.
pub(crate) fn open(settings: &StorageSettings) -> Result<(SledBackend, SledWriter, Seqs), StoreError> {
    std::fs::create_dir_all(&settings.path)?;
    let db = open_with_retry(&settings.path, settings.cache_capacity_mb)?;
    let trees = Table::ALL.iter().map(|t| db.open_tree(t.name())).collect::<Result<Vec<_>, _>>()?;
    db.flush()?;
    let data_file = File::open(settings.path.join("db"))?;
    data_file.sync_data()?;
    files::sync_layout(&settings.path)?;
    let mut blobs = BlobSyncer::new(&settings.path);
    blobs.sync_new()?;
    let next = |t: Table| -> Result<u64, StoreError> {
        Ok(match trees[t as usize].last()? {
            Some((k, _)) => u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8])) + 1,
            None => 1,
        })
    };
    let seqs = Seqs {
        event: next(Table::Events)?,
        audit: next(Table::Audit)?,
        invalidation: next(Table::CacheInvalidations)?,
        staged: 0,
    };
    let writer = SledWriter {
        db: db.clone(),
        trees: trees.clone(),
        data_file,
        blobs,
        fault: SyncFault::from_env(),
        durable: settings.durability == Durability::Durable,
    };
    Ok((SledBackend { db, trees }, writer, seqs))
}

impl Backend for SledBackend {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.trees[table as usize].get(key)?.map(|v| v.to_vec()))
    }

    fn range(
        &self,
        table: Table,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
        reverse: bool,
        _: usize,
    ) -> Entries<'_> {
        let range = self.trees[table as usize].range::<Vec<u8>, _>((lower, upper));
        let owned = |kv: sled::Result<(sled::IVec, sled::IVec)>| {
            kv.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(StoreError::from)
        };
        if reverse {
            Box::new(range.rev().map(owned))
        } else {
            Box::new(range.map(owned))
        }
    }

    fn close(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

impl GroupWriter for SledWriter {
    fn commit(&mut self, group: &[&WriteSet], seqs: Seqs, now: Timestamp) -> Result<(Vec<Outcome>, Seqs), GroupFailed> {
        let applying = |error| GroupFailed { what: "applying a commit group", error };
        // The committer is the store's only writer, so reading outside the transaction
        // sees exactly what the group starts from.
        let trees = &self.trees;
        let plan =
            plan(group, seqs, now, Logs::Direct, |t, k| Ok(trees[t as usize].contains_key(k)?)).map_err(applying)?;
        let result = self.trees.as_slice().transaction(|tx| {
            for w in &plan.writes {
                let tree = &tx[w.table as usize];
                match &w.change {
                    Change::Put(value) | Change::New(value) => {
                        tree.insert(w.key.as_ref(), value.as_ref())?;
                    }
                    Change::Delete => {
                        tree.remove(w.key.as_ref())?;
                    }
                }
            }
            Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
        });
        match result {
            Ok(()) => {}
            Err(TransactionError::Storage(e)) => return Err(applying(e.into())),
            Err(TransactionError::Abort(())) => return Err(applying(StoreError::Closed)),
        }
        // A group of barriers only (empty write sets) has nothing to make durable: every
        // earlier group already is, since groups are committed one after the other.
        if self.durable && group.iter().any(|ws| !ws.is_empty()) {
            self.sync().map_err(|e| GroupFailed { what: "syncing a commit group to disk", error: e.into() })?;
        }
        Ok((plan.outcomes, plan.seqs))
    }

    fn snapshot(&self) -> Option<Snapshot<'_>> {
        Some(Snapshot { db: &self.db })
    }
}

impl SledWriter {
    /// sled's flush (writes, `sync_file_range`), then every blob file sled created since
    /// the last group and `blobs/`, then `fdatasync` of the log: the log never becomes
    /// durable pointing at a blob that is not.
    fn sync(&mut self) -> std::io::Result<()> {
        self.fault.check()?;
        self.db.flush().map_err(std::io::Error::other)?;
        self.blobs.sync_new()?;
        self.data_file.sync_data()
    }
}

/// sled holds a file lock; a process that just closed the same directory may still be
/// letting go of it for a moment (in-process restarts in tests), so retry briefly.
pub(crate) fn open_with_retry(path: &Path, cache_mb: u64) -> Result<sled::Db, StoreError> {
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
