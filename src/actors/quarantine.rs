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

    /// The board as `paused` says (every paused key with its reason), whatever it held.
    pub fn reset<'a>(&self, paused: impl IntoIterator<Item = (QuarantineKey, &'a str)>) {
        let mut held = whole::write(&self.held);
        *held = paused.into_iter().map(|(key, reason)| (key, Arc::from(reason))).collect();
        self.any.store(!held.is_empty(), Ordering::Release);
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
    fn a_reset_board_holds_exactly_what_it_was_given() {
        let board = QuarantineBoard::default();
        let (a, b) = (
            QuarantineKey::new(KeyKind::Order, uuid::Uuid::now_v7()),
            QuarantineKey::new(KeyKind::Cart, uuid::Uuid::now_v7()),
        );
        board.hold(a, "stale");
        board.reset([(b, "fresh")]);
        assert!(!board.holds(&a), "released: the table no longer has it");
        assert_eq!(board.reason(&b).as_deref(), Some("fresh"));
        board.reset([]);
        assert!(!board.holds(&b));
        assert!(!board.any.load(Ordering::Acquire));
    }
}
