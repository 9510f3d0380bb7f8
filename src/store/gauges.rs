//! Key-only reads behind the saga census and the gauges: which sagas exist of each type and
//! which are FAILED or ABORTED (the census's count of finished sagas at start), without
//! reading a single saga record (every saga has a type entry; FAILED and ABORTED ones also
//! a state entry, see [`super::saga_index`]); and the outbox's backlog.

use std::ops::Bound;

use super::tables::{split_listing_key, ListingFilter};
use super::{Store, StoreError, Table};
use crate::domain::saga_state::SagaState;
use crate::domain::time::Timestamp;

impl Store {
    /// Every saga's (type, id) from its type entry, in index order; `visit` answers false to stop.
    pub fn each_saga_by_type(&self, mut visit: impl FnMut(&[u8], &[u8]) -> bool) -> Result<(), StoreError> {
        let family = ListingFilter::SagaType("").prefix()[0];
        for kv in self.entries(Table::SagasByFilter, super::prefix_bounds(&[family]), false, 1024) {
            let (key, _) = kv?;
            if let Some((_, saga_type, id)) = split_listing_key(&key) {
                if !visit(saga_type, id) {
                    break;
                }
            }
        }
        Ok(())
    }

    /// The ids of the sagas whose state entry says `state` (FAILED or ABORTED: the only
    /// states indexed).
    pub fn saga_ids_indexed_in(&self, state: SagaState) -> Result<Vec<Vec<u8>>, StoreError> {
        let prefix = ListingFilter::SagaState(state.as_str()).prefix();
        self.keys_after(Table::SagasByFilter, &prefix, None).collect()
    }

    /// Queued notifications (due now or waiting for a retry), and when the most overdue one
    /// fell due, if one has. Reads the due index's keys: proportional to the backlog.
    pub fn outbox_backlog(&self, now: Timestamp) -> Result<(u64, Option<Timestamp>), StoreError> {
        let (mut queued, mut first_due) = (0, None);
        for kv in self.entries(Table::OutboxDue, (Bound::Unbounded, Bound::Unbounded), false, 1024) {
            let (key, _) = kv?;
            if queued == 0 {
                first_due =
                    key.get(..8).and_then(|b| b.try_into().ok()).map(|b| Timestamp(u64::from_be_bytes(b) as i64));
            }
            queued += 1;
        }
        Ok((queued, first_due.filter(|due| *due <= now)))
    }
}
