//! What the operations layer (webhooks, bulk actions) refuses, as a type. Each becomes an
//! [`AppError`](crate::error::AppError) (a status and a code) in `error.rs`.

/// A refusal of a webhook or an operator's bulk action.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error("missing, malformed, stale or wrong webhook signature")]
    InvalidSignature,
    #[error("unknown event type {0}")]
    UnknownEventType(String),
    #[error("webhook event not found")]
    WebhookEventNotFound,
    /// Only an event kept for review can be replayed (a replayed one is no longer).
    #[error("{0}")]
    WebhookNotReplayable(String),
    #[error("bulk action not found")]
    BulkActionNotFound,
}
