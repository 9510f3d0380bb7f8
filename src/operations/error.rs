//! What the operations (webhooks, bulk actions, quarantine, retention, expiry) fail with:
//! their refusals, the services' and the saga engine's errors whole, and the server-side
//! [`Fault`]. Status and code are decided in `http::error`.

use crate::error::{BoxError, Fault, InvalidInput};
use crate::saga::SagaError;
use crate::services::ServiceError;
use crate::store::StoreError;

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

impl OperationError {
    /// A server-side failure while doing `context`, keeping the error that caused it.
    pub fn internal(context: impl Into<String>, cause: impl Into<BoxError>) -> OperationError {
        Fault::internal(context, cause).into()
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> OperationError {
        InvalidInput::field(field, message).into()
    }
}

impl From<StoreError> for OperationError {
    fn from(e: StoreError) -> OperationError {
        Fault::from(e).into()
    }
}
