//! Which keys are paused right now: the quarantine table mirrored in memory, so that the
//! check on every command (see [`super::registry::Lease::send`]) costs one atomic load while
//! nothing is paused, and a read-locked map lookup while something is.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use super::ActorError;
use crate::domain::quarantine::QuarantineKey;
use crate::whole;

#[derive(Default)]
pub struct QuarantineBoard {
    /// Paused key -> the operator's reason.
    held: RwLock<HashMap<QuarantineKey, Arc<str>>>,
    /// Whether `held` has any entry: the hot path's only cost while nothing is paused.
    any: AtomicBool,
}

impl QuarantineBoard {
    pub fn hold(&self, key: QuarantineKey, reason: &str) {
        let mut held = whole::write(&self.held);
        held.insert(key, reason.into());
        self.any.store(true, Ordering::Release);
    }

    pub fn release(&self, key: &QuarantineKey) {
        let mut held = whole::write(&self.held);
        held.remove(key);
        self.any.store(!held.is_empty(), Ordering::Release);
    }

    /// `key` as `read` finds it in the table now (its reason while paused), read while the
    /// board is locked: a pause or release that commits meanwhile reaches the board (its
    /// writer holds or releases after its commit) only after this, so the board never ends
    /// on a state older than the table's. Only for the cache invalidation poller: a key
    /// changes rarely, and commands wait for the lock only while some key is paused.
    pub fn reload<E>(&self, key: QuarantineKey, read: impl FnOnce() -> Result<Option<String>, E>) -> Result<(), E> {
        let mut held = whole::write(&self.held);
        match read()? {
            Some(reason) => held.insert(key, reason.into()),
            None => held.remove(&key),
        };
        self.any.store(!held.is_empty(), Ordering::Release);
        Ok(())
    }

    /// The board as `read` finds the whole table (every paused key with its reason),
    /// whatever it held; read while locked, as [`QuarantineBoard::reload`].
    pub fn reset<E>(&self, read: impl FnOnce() -> Result<Vec<(QuarantineKey, String)>, E>) -> Result<(), E> {
        let mut held = whole::write(&self.held);
        *held = read()?.into_iter().map(|(key, reason)| (key, Arc::from(reason))).collect();
        self.any.store(!held.is_empty(), Ordering::Release);
        Ok(())
    }

    /// The reason `key` is paused, if it is.
    pub fn reason(&self, key: &QuarantineKey) -> Option<Arc<str>> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        whole::read(&self.held).get(key).cloned()
    }

    pub fn holds(&self, key: &QuarantineKey) -> bool {
        self.reason(key).is_some()
    }

    /// `Err(KEY_QUARANTINED)` with the reason while `key` is paused.
    pub fn check(&self, key: &QuarantineKey) -> Result<(), ActorError> {
        match self.reason(key) {
            Some(reason) => Err(ActorError::Quarantined { key: *key, reason: reason.to_string() }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::quarantine::KeyKind;
    use crate::error::Answer;

    #[test]
    fn a_held_key_is_refused_with_its_reason_until_released() {
        let board = QuarantineBoard::default();
        let key = QuarantineKey::new(KeyKind::Order, uuid::Uuid::now_v7());
        let other = QuarantineKey::new(KeyKind::Cart, key.id);
        assert!(board.check(&key).is_ok());
        board.hold(key, "double capture");
        let refused = crate::http::ApiError::from(board.check(&key).unwrap_err());
        assert_eq!((refused.status(), refused.code()), (423, "KEY_QUARANTINED"));
        assert!(refused.to_string().contains("double capture"), "{refused}");
        assert!(board.check(&other).is_ok(), "the same id under another kind is another key");
        board.release(&key);
        assert!(board.check(&key).is_ok());
        assert!(!board.any.load(Ordering::Acquire));
    }
    #[test]
    fn a_reloaded_board_holds_exactly_what_the_table_says() {
        let board = QuarantineBoard::default();
        let (a, b) = (
            QuarantineKey::new(KeyKind::Order, uuid::Uuid::now_v7()),
            QuarantineKey::new(KeyKind::Cart, uuid::Uuid::now_v7()),
        );
        let found = |reason: &str| Ok::<_, ()>(Some(reason.to_string()));
        // Read while the board is locked: a holder or releaser after its commit waits for it.
        board
            .reload(a, || {
                assert!(board.held.try_read().is_err(), "the board is locked while the table is read");
                found("stale")
            })
            .unwrap();
        assert_eq!(board.reason(&a).as_deref(), Some("stale"));
        board.reload(a, || Ok::<_, ()>(None)).unwrap();
        assert!(!board.holds(&a), "released: the table no longer has it");
        assert_eq!(board.reload(b, || Err("unreadable")), Err("unreadable"));
        assert!(!board.holds(&b), "nothing changed");

        board.hold(a, "stale");
        board.reset(|| Ok::<_, ()>(vec![(b, "fresh".to_string())])).unwrap();
        assert!(!board.holds(&a), "released: the table no longer has it");
        assert_eq!(board.reason(&b).as_deref(), Some("fresh"));
        board.reset(|| Ok::<_, ()>(Vec::new())).unwrap();
        assert!(!board.holds(&b));
        assert!(!board.any.load(Ordering::Acquire));
    }
}
