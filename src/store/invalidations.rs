//! The cache invalidation log: which shared record a write set changed, for the servers
//! that keep in-memory copies of shared records (sessions, customers, products, the
//! quarantine board) to drop theirs.
//!
//! A write set names what it changed with [`super::WriteSet::invalidate`]; the committer
//! writes each name as an entry of `cache_invalidations` in the same transaction as the
//! change, numbered exactly like the event log (see [`super::plan::Seqs`]): by the one
//! committer of the shared partition's owner, in commit order, so an entry never commits
//! under a number a poller has already passed and a poller reading on `after` its last
//! number misses none. A server that does not own the shared partition stages its entries
//! like its other log entries (see [`super::staged`]). Numbers have no gaps: a poller that
//! finds one knows entries were deleted before it read them (it was stalled for longer
//! than they are kept) and must drop every copy it holds.

use std::ops::Bound;

use serde::{Deserialize, Serialize};

use super::codec::Record;
use super::keys::{self, seq_of};
use super::{Store, StoreError, Table};
use crate::domain::ids::{CustomerId, ProductId};
use crate::domain::quarantine::QuarantineKey;
use crate::domain::time::Timestamp;

/// A shared record that changed, as the caches holding copies of it know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Invalidation {
    /// A customer's session, by the digest of its token: signed out (or otherwise deleted).
    Session([u8; 32]),
    /// A console session, by the digest of its id: signed out.
    StaffSession([u8; 32]),
    /// A customer's record changed (verified, edited).
    Customer(CustomerId),
    /// A product's record changed (its price, its variants).
    Product(ProductId),
    /// A key was paused or released: the quarantine table's row for it is what holds now.
    Quarantine(QuarantineKey),
    /// A retry policy changed: the table holds them all (a few rows, read again whole).
    RetryPolicies,
}

/// One entry of the log: what changed, and when it was committed (for retention).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InvalidationEntry {
    pub at: Timestamp,
    pub what: Invalidation,
}

impl Record for InvalidationEntry {
    const VERSION: u8 = 1;
}

/// The number of the last entry of the log (0 for an empty log): where a poller whose
/// caches are empty starts.
pub fn end(store: &Store) -> Result<u64, StoreError> {
    let last = store.entries(Table::CacheInvalidations, (Bound::Unbounded, Bound::Unbounded), true, 1).next();
    match last.transpose()? {
        Some((key, _)) => seq_of(&key).ok_or_else(|| malformed(&key)),
        None => Ok(0),
    }
}

/// Up to `limit` entries numbered after `after`, in order, each with its number.
pub fn after(store: &Store, after: u64, limit: usize) -> Result<Vec<(u64, InvalidationEntry)>, StoreError> {
    let from = keys::cache_invalidation(after).into_bytes();
    store
        .page::<InvalidationEntry>(Table::CacheInvalidations, Some(&from), limit)?
        .into_iter()
        .map(|(key, entry)| Ok((seq_of(&key).ok_or_else(|| malformed(&key))?, entry)))
        .collect()
}

fn malformed(key: &[u8]) -> StoreError {
    StoreError::Codec { table: Table::CacheInvalidations.name(), reason: format!("a key of {} bytes", key.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::WriteSet;

    /// The log's end is its last number, and a store opened again numbers on from it.
    #[tokio::test]
    async fn entries_are_read_after_a_number_and_numbered_on_after_a_reopening() {
        let (dir, store) = Store::temporary();
        assert_eq!(end(&store).unwrap(), 0, "an empty log");
        let (a, b, c) =
            (Invalidation::Session([1; 32]), Invalidation::StaffSession([2; 32]), Invalidation::Session([3; 32]));
        store.commit(WriteSet::new().invalidate(a).invalidate(b)).await.unwrap();
        assert_eq!(end(&store).unwrap(), 2);
        let whats = |entries: Vec<(u64, InvalidationEntry)>| -> Vec<(u64, Invalidation)> {
            entries.into_iter().map(|(seq, e)| (seq, e.what)).collect()
        };
        assert_eq!(whats(after(&store, 0, 10).unwrap()), [(1, a), (2, b)]);
        assert_eq!(whats(after(&store, 1, 10).unwrap()), [(2, b)]);
        assert_eq!(whats(after(&store, 0, 1).unwrap()), [(1, a)], "at most the limit");
        store.close().unwrap();
        drop(store);

        let mut settings = crate::config::Settings::load_layers(None, false).unwrap();
        settings.storage.path = dir.path().into();
        let store = Store::open(&settings.storage).unwrap();
        store.commit(WriteSet::new().invalidate(c)).await.unwrap();
        assert_eq!(whats(after(&store, 2, 10).unwrap()), [(3, c)]);
        store.close().unwrap();
    }
}
