//! What the saga layer refuses, as a type: callers match on the variant, never on text.
//! Each becomes an [`AppError`](crate::error::AppError) (and so a status and a code) in
//! `error.rs`, answered as it always was.

/// A refusal of the saga engine or a coordinator.
#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    /// A new saga's first write found the key of one of its conditional puts taken (`tag`
    /// names which, e.g. `idempotency_key`): nothing was written and the saga never started.
    #[error("conflict on {0}")]
    FirstWriteConflict(&'static str),
}
