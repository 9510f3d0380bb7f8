//! What a store backend does for reads: every read of [`super::Store`] is one of these two.
//! Writes go through the committer (see [`super::committer::GroupWriter`]).

use std::ops::Bound;

use super::{StoreError, Table};

/// Key and value pairs of one table, in key order (or reversed), read lazily.
pub(crate) type Entries<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + 'a>;

pub(crate) trait Backend: Send + Sync {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    fn contains(&self, table: Table, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.get(table, key)?.is_some())
    }

    /// The entries of `table` between the bounds (never an empty or inverted range: the
    /// caller checks), ascending or with `reverse` descending. `chunk` is how many the
    /// caller expects to read, so a backend that fetches in batches sizes its first one.
    fn range(
        &self,
        table: Table,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
        reverse: bool,
        chunk: usize,
    ) -> Entries<'_>;

    /// Called once the committer has stopped: whatever the backend still has to write.
    fn close(&self) -> Result<(), StoreError>;

    /// The store's leases as the database has them (none on an embedded store).
    fn leases(&self) -> Result<Vec<LeaseView>, StoreError> {
        Ok(Vec::new())
    }

    /// Whether this server surely still holds the store's lease (always, on an embedded
    /// store): asked before a call to the outside that the store's fence cannot guard.
    fn holds_lease(&self) -> bool {
        true
    }

    /// The servers sharing the store (none on an embedded store).
    fn nodes(&self) -> Result<Vec<NodeView>, StoreError> {
        Ok(Vec::new())
    }
}

/// One server of the cluster, as its row in the database says.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeView {
    pub node_id: String,
    /// Where the other servers forward requests to it.
    pub advertise_url: String,
    /// RFC 3339, on the database's clock.
    pub started_at: String,
    pub heartbeat_at: String,
    pub heartbeat_age_ms: i64,
    /// No heartbeat for three leases: dead, paused or cut off. Its row is deleted after ten.
    pub stale: bool,
    /// Holds partition 0's lease: answers the requests about records without a partition.
    pub leader: bool,
    /// How many partitions' unexpired leases it holds.
    pub partitions: i64,
}

/// Who owns a partition now, and where it answers: what a server forwards a request of
/// that partition to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub partition: crate::domain::partition::Partition,
    pub node_id: String,
    pub advertise_url: String,
}

/// One lease row: who may write to a partition of the store, at which epoch, until when.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LeaseView {
    pub partition: i32,
    pub owner: String,
    pub epoch: i64,
    /// RFC 3339, on the database's clock.
    pub expires_at: String,
    /// Not expired: `owner` may write to the partition now.
    pub live: bool,
}
