//! Lazy paging for the admin listings: a page reads its own rows (and one more, to know
//! whether a next page exists) from a key range, decoding as it goes, never the table.

use std::ops::Bound;

use super::codec::Record;
use super::{Store, StoreError, Table};

/// One page of a listing; `next` is the order key of its last row when more rows follow.
#[derive(Debug)]
pub struct Page<T> {
    pub rows: Vec<T>,
    pub next: Option<Vec<u8>>,
}

impl Store {
    /// Keys of `table` starting with `prefix` and sorting after `prefix ++ after` (from the
    /// prefix's first key without `after`), each without the prefix, read lazily in order.
    pub fn keys_after<'a>(
        &'a self,
        table: Table,
        prefix: &'a [u8],
        after: Option<&[u8]>,
    ) -> impl Iterator<Item = Result<Vec<u8>, StoreError>> + 'a {
        let (start, end) = super::prefix_bounds(prefix);
        let start = after.map_or(start, |a| Bound::Excluded([prefix, a].concat()));
        self.entries(table, (start, end), false, 64).map(move |kv| kv.map(|(k, _)| k[prefix.len()..].to_vec()))
    }

    /// A page of `table` itself, in key order, after the key `after`.
    pub fn page_table<T: Record>(
        &self,
        table: Table,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<T>, StoreError> {
        let mut rows = self.page::<T>(table, after, limit.saturating_add(1))?;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        Ok(Page { rows: rows.into_iter().map(|(_, v)| v).collect(), next })
    }

    /// A page of the rows of `main` that the index entries under `prefix` in `index` point
    /// at, in index order, after the order key `after`. `main_key` finds a row's key in its
    /// order key. A row that is gone, or that `keep` refuses (an entry read while the change
    /// that moves it is being applied), is passed over.
    pub fn page_index<T: Record>(
        &self,
        index: (Table, &[u8]),
        main: Table,
        main_key: impl Fn(&[u8]) -> &[u8],
        after: Option<&[u8]>,
        limit: usize,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Page<T>, StoreError> {
        let mut rows = Vec::new();
        let mut last = None;
        for order_key in self.keys_after(index.0, index.1, after) {
            let order_key = order_key?;
            let Some(row) = self.get::<T>(main, main_key(&order_key))? else { continue };
            if !keep(&row) {
                continue;
            }
            if rows.len() == limit {
                return Ok(Page { rows, next: last });
            }
            rows.push(row);
            last = Some(order_key);
        }
        Ok(Page { rows, next: None })
    }
}
