//! The actor layer's refusals ([`ActorError`]) and what its messages fail with
//! ([`ActorFailure`]: the refusal, the domain's, the store's). Status and code are decided
//! in `http::error`.

use crate::domain::cart::CartError;
use crate::domain::inventory::InventoryError;
use crate::domain::order::OrderError;
use crate::domain::quarantine::QuarantineKey;
use crate::error::{BoxError, InternalError};
use crate::store::StoreError;

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

/// Everything an entity actor's message can fail with: the actor's own refusal, the
/// domain's refusal of the command, an order that does not exist, or the store's failure
/// (a write that did not become durable). A service's error holds each part as it always did.
#[derive(Debug, thiserror::Error)]
pub enum ActorFailure {
    #[error(transparent)]
    Refused(#[from] ActorError),
    #[error(transparent)]
    Cart(#[from] CartError),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Order(#[from] OrderError),
    #[error("order not found")]
    OrderNotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A failure on the server's side that is not the store's (a stored key that does not
    /// parse), its cause kept.
    #[error("internal error: {0}")]
    Internal(#[source] InternalError),
}

impl ActorFailure {
    /// A server-side failure while doing `context`, keeping the error that caused it.
    pub fn internal(context: impl Into<String>, cause: impl Into<BoxError>) -> ActorFailure {
        ActorFailure::Internal(InternalError::new(context, cause))
    }
}
