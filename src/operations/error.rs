//! What the operations (webhooks, bulk actions, quarantine, retention, expiry) fail with:
//! their refusals, the services' and the saga engine's errors whole, and the server-side
//! [`Fault`](crate::error::Fault). Status and code are decided in `http::error`.

use crate::error::{Fault, InvalidInput};
use crate::saga::SagaError;
use crate::services::ServiceError;

/// A refusal or a failure of a webhook or an operator's action.
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
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Saga(#[from] SagaError),
    #[error(transparent)]
    Fault(#[from] Fault),
}

crate::error::layer_error!(OperationError);
