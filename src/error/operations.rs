//! The operations layer's refusals (webhooks, bulk actions), as a type (re-exported as
//! `operations::OperationError`). Each becomes an [`AppError`](crate::error::AppError) (a
//! status and a code) in the parent module, which is why it is defined here rather than in
//! `operations/`.

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
