//! The saga layer's refusals, as a type (re-exported as `saga::SagaError`): callers match
//! on the variant, never on text. Each becomes an [`AppError`](crate::error::AppError) (and
//! so a status and a code) in the parent module, which is why it is defined here rather
//! than in `saga/`.

/// A refusal of the saga engine or a coordinator.
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
}
