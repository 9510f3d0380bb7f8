//! Raw access to every tree, for backups: a [`Snapshot`] reads the store between two commit
//! groups (see [`Store::snapshot`](super::Store::snapshot)), an [`Importer`] fills a new
//! store. Trees are named by sled's own names, so tables added later are carried without
//! anyone listing them here.

use std::fs::File;
use std::ops::Deref;
use std::path::PathBuf;

use super::files::{self, BlobSyncer};
use super::sled_backend::open_with_retry;
use super::StoreError;
use crate::config::StorageSettings;

/// sled's default tree: not one of our tables, but carried like any other tree.
const DEFAULT_TREE: &[u8] = b"__sled__default";

fn tree(db: &sled::Db, name: &[u8]) -> Result<sled::Tree, StoreError> {
    if name == DEFAULT_TREE {
        Ok(db.deref().clone())
    } else {
        Ok(db.open_tree(name)?)
    }
}

/// The whole store at one instant: valid only inside the closure given to
/// [`Store::snapshot`](super::Store::snapshot), while no commit group is being applied.
pub struct Snapshot<'a> {
    pub(super) db: &'a sled::Db,
}

impl Snapshot<'_> {
    /// Every tree's name, sorted, sled's default tree included.
    pub fn tree_names(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = self.db.tree_names().iter().map(|n| n.to_vec()).collect();
        if !names.iter().any(|n| n == DEFAULT_TREE) {
            names.push(DEFAULT_TREE.to_vec());
        }
        names.sort();
        names
    }

    /// How many records the tree holds (a full scan: sled keeps no count).
    pub fn count(&self, name: &[u8]) -> Result<u64, StoreError> {
        Ok(tree(self.db, name)?.len() as u64)
    }

    /// Calls `visit` with each record of the tree, in key order.
    pub fn for_each<E: From<StoreError>>(
        &self,
        name: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        for kv in tree(self.db, name)?.iter() {
            let (k, v) = kv.map_err(StoreError::from)?;
            visit(&k, &v)?;
        }
        Ok(())
    }
}

/// Fills a new store, opened with the same sled settings as the server's, record by record.
pub struct Importer {
    db: sled::Db,
    path: PathBuf,
    current: Option<(Vec<u8>, sled::Tree)>,
}

impl Importer {
    /// Refuses a store that already holds a record: an import never overwrites.
    pub fn create(settings: &StorageSettings) -> Result<Importer, StoreError> {
        std::fs::create_dir_all(&settings.path)?;
        let db = open_with_retry(&settings.path, settings.cache_capacity_mb)?;
        for name in db.tree_names() {
            if !tree(&db, &name)?.is_empty() {
                return Err(StoreError::Conflict("import into a store that is not empty"));
            }
        }
        Ok(Importer { db, path: settings.path.clone(), current: None })
    }

    pub fn insert(&mut self, tree_name: &[u8], key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        if self.current.as_ref().is_none_or(|(name, _)| name != tree_name) {
            self.current = Some((tree_name.to_vec(), tree(&self.db, tree_name)?));
        }
        let Some((_, tree)) = &self.current else { unreachable!("set above") };
        match tree.insert(key, value)? {
            None => Ok(()),
            Some(_) => Err(StoreError::Conflict("a key imported twice")),
        }
    }

    /// Makes everything imported durable the way the committer does (flush, blob files,
    /// `fdatasync` of the log) and the store's layout too, then closes it.
    pub fn finish(self) -> Result<(), StoreError> {
        self.db.flush()?;
        BlobSyncer::new(&self.path).sync_new()?;
        File::open(self.path.join("db"))?.sync_data()?;
        files::sync_layout(&self.path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::config::Durability;
    use crate::store::{Record, Store, Table, WriteSet};

    #[derive(Serialize, Deserialize)]
    struct Mark(u64);

    impl Record for Mark {
        const VERSION: u8 = 1;
    }

    /// Each write set puts one key into three tables that a snapshot reads one after the
    /// other: a snapshot taken between groups sees the same keys in all three, however
    /// fast the writers go.
    #[test]
    fn a_snapshot_sees_every_write_set_whole_while_writers_keep_committing() {
        let dir = tempfile::tempdir().unwrap();
        let settings = StorageSettings {
            durability: Durability::Relaxed,
            ..StorageSettings::sled_at(dir.path().to_path_buf(), 8)
        };
        let store = Store::open(&settings).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                let (store, stop) = (store.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let mut last = None;
                        for _ in 0..64 {
                            i += 1;
                            let key = [w.to_be_bytes(), i.to_be_bytes()].concat();
                            let ws = WriteSet::new()
                                .put(Table::Carts, key.clone(), &Mark(i))
                                .put(Table::Orders, key.clone(), &Mark(i))
                                .put(Table::Stock, key, &Mark(i));
                            last = Some(store.commit(ws));
                        }
                        // Committed in submission order: the last one done means all are.
                        futures::executor::block_on(last.unwrap()).unwrap();
                    }
                })
            })
            .collect();
        let mut seen = Vec::new();
        for _ in 0..20 {
            let keys = store
                .snapshot(|snap| {
                    ["carts", "orders", "stock"].map(|t| {
                        let mut keys = Vec::new();
                        snap.for_each::<StoreError>(t.as_bytes(), |k, _| {
                            keys.push(k.to_vec());
                            Ok(())
                        })
                        .unwrap();
                        keys
                    })
                })
                .unwrap();
            assert!(keys[0] == keys[1] && keys[1] == keys[2], "a write set seen in part");
            seen.push(keys[0].len());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        assert!(seen.first() < seen.last(), "the writers ran between the snapshots: {seen:?}");
        store.close().unwrap();
    }
}
