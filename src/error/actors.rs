//! The actor layer's refusals, as a type (re-exported as `actors::ActorError`). Each
//! becomes an [`AppError`](crate::error::AppError) (a status and a code) in the parent
//! module, which is why it is defined here rather than in `actors/`.

use crate::domain::quarantine::QuarantineKey;

/// A message an entity actor did not handle.
#[derive(Debug, thiserror::Error)]
pub enum ActorError {
    /// An operator paused this key: commands to it wait until it is released.
    #[error("{key} is quarantined: {reason}")]
    Quarantined { key: QuarantineKey, reason: String },
    /// The actor stopped (a failed write) with the message unhandled: an actor answers
    /// everything it took before it stops, so nothing was applied and a retry is safe.
    #[error("the entity is reloading; retry the request")]
    Reloading,
}

impl From<actix::MailboxError> for ActorError {
    fn from(_: actix::MailboxError) -> ActorError {
        ActorError::Reloading
    }
}
