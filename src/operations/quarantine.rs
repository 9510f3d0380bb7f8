//! QuarantineService: operators pause one key (a cart, an order, a product's stock) and
//! release it. The table is the truth (written with its audit row, durably, before the
//! answer); the board mirrors it in memory for the check on every command: this server's
//! at once, every other server's within one poll of the cache invalidation log, which each
//! pause and release writes to (see `services::invalidations`). Releasing a key resumes the
//! sagas parked on it.

use std::sync::Arc;

use serde_json::{json, Value};

use super::OperationError;
use crate::actors::quarantine::QuarantineBoard;
use crate::domain::quarantine::{QuarantineEntry, QuarantineKey};
use crate::domain::time::Timestamp;
use crate::saga::SagaEngine;
use crate::services::catalog::audit;
use crate::store::{keys, Invalidation, Prefix, Store, StoreError, Table, WriteSet};

/// The board as the table says, at start.
pub fn load_board(store: &Store) -> Result<Arc<QuarantineBoard>, StoreError> {
    let board = QuarantineBoard::default();
    for (_, entry) in store.scan::<QuarantineEntry>(&Prefix::all(Table::Quarantine))? {
        board.hold(entry.key, &entry.reason);
    }
    Ok(Arc::new(board))
}

#[derive(Clone)]
pub struct QuarantineService {
    store: Store,
    board: Arc<QuarantineBoard>,
    sagas: Arc<SagaEngine>,
    /// One pause or release at a time, so the board never ends up disagreeing with the
    /// table (a pause and a release of one key committing in one order and reaching the
    /// board in the other). Operators' actions are rare; commands never take it.
    changes: Arc<tokio::sync::Mutex<()>>,
}

/// What a release did.
pub struct Released {
    /// The entry removed; `None` when the key was not paused.
    pub entry: Option<QuarantineEntry>,
    /// Sagas that were parked on the key and now run again.
    pub resumed_sagas: usize,
}

impl QuarantineService {
    pub fn new(store: Store, board: Arc<QuarantineBoard>, sagas: Arc<SagaEngine>) -> QuarantineService {
        QuarantineService { store, board, sagas, changes: Default::default() }
    }

    /// Every paused key, in key order (kind, then id).
    pub async fn list(&self) -> Result<Vec<QuarantineEntry>, OperationError> {
        self.store.barrier().await?;
        Ok(self.store.scan::<QuarantineEntry>(&Prefix::all(Table::Quarantine))?.into_iter().map(|(_, e)| e).collect())
    }

    /// Pauses `key`. Pausing it again with the same reason changes nothing (`false`: it was
    /// already paused so); with another reason, the reason and operator are replaced.
    pub async fn pause(
        &self,
        key: QuarantineKey,
        reason: String,
        by: &str,
    ) -> Result<(QuarantineEntry, bool), OperationError> {
        let _one_at_a_time = self.changes.lock().await;
        let before = self.store.load::<QuarantineEntry>(&keys::quarantine(&key))?;
        if let Some(same) = before.as_ref().filter(|e| e.reason == reason) {
            return Ok((same.clone(), false));
        }
        let entry = QuarantineEntry { key, reason, paused_by: by.to_string(), paused_at: Timestamp::now() };
        let row = audit(
            by,
            "quarantine.paused",
            key.kind.entity_type(),
            &key.id.to_string(),
            before.as_ref().map_or(Value::Null, QuarantineEntry::to_json),
            entry.to_json(),
        );
        let ws =
            WriteSet::new().save(keys::quarantine(&key), &entry).audit(row).invalidate(Invalidation::Quarantine(key));
        self.store.commit(ws).await?;
        // Only once durable: a refusal never cites a pause a crash could take back.
        self.board.hold(key, &entry.reason);
        tracing::warn!(%key, by, reason = %entry.reason, "key quarantined");
        Ok((entry, true))
    }

    /// Releases `key` (a key not paused is no error), then resumes every saga parked on it.
    pub async fn release(&self, key: QuarantineKey, by: &str) -> Result<Released, OperationError> {
        let (entry, parked) = {
            let _one_at_a_time = self.changes.lock().await;
            // Listed before the release commits: once it has, the release's own cache
            // invalidation may resume them first (then they are no longer PAUSED to list).
            let parked = self.sagas.parked_on(key).await?;
            let before = self.store.load::<QuarantineEntry>(&keys::quarantine(&key))?;
            if let Some(entry) = &before {
                let row = audit(
                    by,
                    "quarantine.released",
                    key.kind.entity_type(),
                    &key.id.to_string(),
                    entry.to_json(),
                    json!(null),
                );
                let ws = WriteSet::new().remove(keys::quarantine(&key)).audit(row);
                self.store.commit(ws.invalidate(Invalidation::Quarantine(key))).await?;
                self.board.release(&key);
                tracing::info!(%key, by, "key released from quarantine");
            }
            (before, parked)
        };
        // Also when it was not paused: a release whose resumes were cut short by a crash
        // is finished by repeating it (or by the next start).
        let resumed_sagas = self.sagas.resume_released(parked).await;
        Ok(Released { entry, resumed_sagas })
    }
}
