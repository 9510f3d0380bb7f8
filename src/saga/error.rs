//! What the saga engine and its coordinators fail with: their refusals (callers match on the
//! variant, never on text), a service's error met while starting or steering a saga, and
//! the server-side [`Fault`](crate::error::Fault). Status and code are decided in `http::error`.

use crate::error::{Fault, InvalidInput};
use crate::services::ServiceError;

/// A refusal or a failure of the saga engine or a coordinator.
#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    /// No saga (or no saga type) by that name; a customer also hears it for a saga that is
    /// not theirs.
    #[error("saga not found")]
    NotFound,
    /// The saga is not in a state the input applies to; the text says which it is in.
    #[error("{0}")]
    InvalidState(String),
    /// The saga passed its point of no return; the text says what to do instead.
    #[error("{0}")]
    AbortNotAllowed(String),
    /// A retry policy an operator set that no step could run under, or for no step.
    #[error("{0}")]
    InvalidRetryPolicy(String),
    /// A new saga's first write found the key of one of its conditional puts taken (`tag`
    /// names which, e.g. `idempotency_key`): nothing was written and the saga never started.
    #[error("conflict on {0}")]
    FirstWriteConflict(&'static str),
    /// A query's filter that does not parse.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// A service's error met by the engine (a step's check run before the saga starts).
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Fault(#[from] Fault),
}

crate::error::layer_error!(SagaError);

impl SagaError {
    /// A message the engine or a coordinator did not handle because it was reloading or
    /// stopping: sending it again, to a fresh activation, applies it at most once.
    pub fn is_retry_safe_unavailable(&self) -> bool {
        matches!(self, SagaError::Fault(Fault::Unavailable(_)))
            || matches!(self, SagaError::Service(ServiceError::Actor(crate::actors::ActorError::Reloading)))
    }
}

impl From<crate::actors::ActorError> for SagaError {
    /// A coordinator's mailbox closed (it was leaving): answered as an entity reloading.
    fn from(e: crate::actors::ActorError) -> SagaError {
        ServiceError::from(e).into()
    }
}
