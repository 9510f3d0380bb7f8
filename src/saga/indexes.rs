//! A saga's entries in the listing indexes, from its record: the store lays out the
//! entries, the engine (which owns the saga record) says which a saga has, and builds the
//! saga indexes a store written by an older build lacks at boot, before any saga is
//! written (see [`build_missing`]).

use super::SagaInstance;
use crate::store::{self, decoded, Backfill, Store, StoreError, Table};

/// A saga's entries in [`Table::SagasByFilter`] (see [`store::saga_index`]).
pub fn saga_index_of(s: &SagaInstance) -> Vec<Vec<u8>> {
    store::saga_index(s.saga_id.as_bytes(), &s.saga_type, s.state)
}

/// A saga's entries in [`Table::SagasByOwner`]: its order's and its customer's.
pub fn saga_owner_index(s: &SagaInstance) -> Vec<Vec<u8>> {
    store::saga_owner_index(s.saga_id.as_bytes(), s.order_id, s.customer_id)
}

const BACKFILLS: [Backfill; 2] = [
    Backfill {
        index: Table::SagasByFilter,
        main: Table::Sagas,
        implied_by: Table::Sagas,
        entries: |_, v| decoded(Table::Sagas, v, saga_index_of),
    },
    Backfill {
        index: Table::SagasByOwner,
        main: Table::Sagas,
        implied_by: Table::Sagas,
        entries: |_, v| decoded(Table::Sagas, v, saga_owner_index),
    },
];

/// Builds the saga listing indexes a store written before they existed lacks, once (see
/// [`store::backfill`]). Runs first at the engine's boot, before it writes any saga.
pub fn build_missing(store: &Store) -> Result<(), StoreError> {
    store::backfill(store, &BACKFILLS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::domain::ids::{CustomerId, OrderId};
    use crate::saga::SagaState;
    use crate::store::WriteSet;

    fn saga(state: SagaState) -> SagaInstance {
        let def = &crate::saga::definition::embedded().unwrap()[0];
        let mut saga = SagaInstance::new(def, |_| crate::retry::RetryPolicy::NONE, serde_json::json!({}), None, None);
        saga.state = state;
        saga
    }

    fn all_keys(store: &Store, table: Table) -> Vec<Vec<u8>> {
        store.scan_prefix_keys(table, &[], usize::MAX).unwrap()
    }

    /// A store written before the saga listing indexes existed: sagas without their entries.
    #[tokio::test]
    async fn saga_indexes_missing_from_an_older_store_are_built_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::load_layers(None, false).unwrap();
        settings.storage.path = dir.path().into();
        let mut owned = saga(SagaState::Running);
        (owned.order_id, owned.customer_id) = (Some(OrderId::new()), Some(CustomerId::new()));
        let sagas = [owned, saga(SagaState::Stuck)];
        let store = Store::open(&settings.storage).unwrap();
        let ws = sagas.iter().fold(WriteSet::new(), |ws, s| ws.put(Table::Sagas, s.saga_id.as_bytes().to_vec(), s));
        store.commit(ws).await.unwrap();
        assert!(all_keys(&store, Table::SagasByFilter).is_empty());

        build_missing(&store).unwrap();
        let mut want: Vec<Vec<u8>> = sagas.iter().flat_map(saga_index_of).collect();
        want.sort();
        assert_eq!(all_keys(&store, Table::SagasByFilter), want);
        let mut want: Vec<Vec<u8>> = sagas.iter().flat_map(saga_owner_index).collect();
        want.sort();
        assert_eq!((want.len(), all_keys(&store, Table::SagasByOwner)), (2, want));
        assert!(all_keys(&store, Table::IndexBuilds).is_empty(), "no build left under way");

        // Built once: an entry deleted since (as a change would) is not put back.
        let first = all_keys(&store, Table::SagasByFilter).remove(0);
        store.commit(WriteSet::new().delete(Table::SagasByFilter, first.clone())).await.unwrap();
        build_missing(&store).unwrap();
        assert!(!all_keys(&store, Table::SagasByFilter).contains(&first));
        store.close().unwrap();
    }
}
