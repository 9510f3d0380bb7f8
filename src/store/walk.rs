//! Walking an index in either direction between two order keys: the saga filters read a
//! bounded number of entries per page and resume from the last one looked at.

use std::ops::Bound;

use super::codec::Record;
use super::{prefix_end, Page, Store, StoreError, Table};

/// Where a bounded walk reads: the entries under `prefix` in `index` (the whole of `main`
/// with an empty prefix and `index == main`), between two order keys, in either direction.
/// An entry's order key is also its row's key in `main`.
pub struct Walk<'a> {
    pub index: Table,
    pub prefix: &'a [u8],
    pub main: Table,
    pub lower: Bound<&'a [u8]>,
    pub upper: Bound<&'a [u8]>,
    pub reverse: bool,
}

impl Store {
    /// Up to `limit` rows that `keep` accepts, reading at most `budget` entries: a page of a
    /// filter no index narrows costs bounded work however rare its matches. `next` is the
    /// order key to go on after (exclusive) whenever the walk stopped before the end: the
    /// last row returned, or, when the budget ran out first, the last entry read (the page
    /// may then hold fewer than `limit` rows, even none).
    pub fn page_walk<T: Record>(
        &self,
        walk: &Walk,
        limit: usize,
        budget: usize,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Page<T>, StoreError> {
        let (mut rows, mut last_row, mut last_read) = (Vec::new(), None, None);
        for (read, key) in self.order_keys(walk.index, walk.prefix, walk.lower, walk.upper, walk.reverse).enumerate() {
            let key = key?;
            if read == budget {
                let resume = if rows.len() == limit { last_row } else { last_read };
                return Ok(Page { rows, next: resume });
            }
            if let Some(row) = self.get::<T>(walk.main, &key)?.filter(&keep) {
                if rows.len() == limit {
                    return Ok(Page { rows, next: last_row });
                }
                rows.push(row);
                last_row = Some(key.clone());
            }
            last_read = Some(key);
        }
        Ok(Page { rows, next: None })
    }

    /// The order keys (each without `prefix`) of the entries of `table` under `prefix`
    /// between `lower` and `upper`, lazily, oldest first or, with `reverse`, newest first.
    pub fn order_keys<'a>(
        &'a self,
        table: Table,
        prefix: &'a [u8],
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
    ) -> Box<dyn Iterator<Item = Result<Vec<u8>, StoreError>> + 'a> {
        let with_prefix = |b: Bound<&[u8]>| b.map(|k| [prefix, k].concat());
        let lower = match lower {
            Bound::Unbounded => Bound::Included(prefix.to_vec()),
            b => with_prefix(b),
        };
        let upper = match upper {
            Bound::Unbounded => prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded),
            b => with_prefix(b),
        };
        let strip = move |kv: Result<(Vec<u8>, Vec<u8>), StoreError>| kv.map(|(k, _)| k[prefix.len()..].to_vec());
        Box::new(self.entries(table, (lower, upper), reverse, 64).map(strip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::WriteSet;

    #[tokio::test]
    async fn walks_one_prefix_between_bounds_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = crate::config::Settings::load_layers(None, false).unwrap();
        settings.storage.path = dir.path().into();
        let store = Store::open(&settings.storage).unwrap();
        let mut ws = WriteSet::new();
        for (p, k) in [(1u8, 1u8), (1, 2), (1, 3), (1, 255), (2, 0), (0, 9)] {
            ws = ws.put_key(Table::SagasByOwner, vec![p, k]);
        }
        store.commit(ws).await.unwrap();
        let keys = |lower, upper, reverse| -> Vec<u8> {
            store.order_keys(Table::SagasByOwner, &[1], lower, upper, reverse).map(|k| k.unwrap()[0]).collect()
        };
        assert_eq!(keys(Bound::Unbounded, Bound::Unbounded, false), [1, 2, 3, 255]);
        assert_eq!(keys(Bound::Unbounded, Bound::Unbounded, true), [255, 3, 2, 1]);
        assert_eq!(keys(Bound::Excluded(&[1]), Bound::Excluded(&[255]), false), [2, 3]);
        assert_eq!(keys(Bound::Included(&[2]), Bound::Unbounded, true), [255, 3, 2]);
        assert!(keys(Bound::Included(&[3]), Bound::Excluded(&[2]), false).is_empty());
        assert_eq!(crate::store::prefix_end(&[1, 255]), Some(vec![2]));
        assert_eq!(crate::store::prefix_end(&[255]), None);
        store.close().unwrap();
    }

    #[tokio::test]
    async fn a_page_reads_at_most_its_budget_and_says_where_to_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = crate::config::Settings::load_layers(None, false).unwrap();
        settings.storage.path = dir.path().into();
        let store = Store::open(&settings.storage).unwrap();
        let ws = (1u32..=6).fold(WriteSet::new(), |ws, n| ws.put(Table::Cursors, vec![n as u8], &n));
        store.commit(ws).await.unwrap();
        let even = |n: &u32| n.is_multiple_of(2);
        let page = |after: Option<&[u8]>, limit, budget| {
            let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
            let (index, main, upper) = (Table::Cursors, Table::Cursors, Bound::Unbounded);
            let walk = Walk { index, prefix: &[], main, lower, upper, reverse: false };
            store.page_walk::<u32>(&walk, limit, budget, even).unwrap()
        };
        // Out of budget after three reads: one match, and the last key read to go on from.
        let p = page(None, 10, 3);
        assert_eq!((p.rows, p.next), (vec![2], Some(vec![3])));
        let p = page(Some(&[3]), 10, 3);
        assert_eq!((p.rows, p.next), (vec![4, 6], None));
        // A full page goes on after its last row.
        let p = page(None, 1, 10);
        assert_eq!((p.rows, p.next), (vec![2], Some(vec![2])));
        store.close().unwrap();
    }
}
