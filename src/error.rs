//! What every layer's error is made of: a server-side failure with its cause kept
//! ([`InternalError`], inside [`Fault`]), bad input naming its field ([`InvalidInput`]), the
//! answer a saga keeps to give it again ([`ErrorRecord`]), and the one view of an error as
//! the contract answers it ([`Answer`]).
//!
//! Each layer has its own error and wraps the one below whole: the store's `StoreError`,
//! the actors' `ActorFailure`, the services' `ServiceError`, the saga engine's `SagaError`,
//! the operations' `OperationError`, the front door's `ApiError`. Status, code and details
//! are decided in one place, `http::error`, which implements [`Answer`] for each of them;
//! the layers below only *record* an answer through the trait (a failed saga keeps its
//! status and code so a retried request is answered identically later; an audit row names
//! the code), never decide one.

use serde_json::Value;

use crate::store::StoreError;

/// An error as the HTTP contract answers it. Implemented in `http::error` for every
/// layer's error; see the module doc for why the trait sits here.
pub trait Answer: std::fmt::Display {
    fn status(&self) -> u16;
    /// The contract's stable code (`ORDER_NOT_FOUND`, `INTERNAL`, ...).
    fn code(&self) -> &str;
    fn details(&self) -> Value;

    /// What a saga keeps of a failure, to answer it again later.
    fn record(&self) -> ErrorRecord {
        ErrorRecord {
            status: self.status(),
            code: self.code().to_string(),
            message: self.to_string(),
            details: self.details().to_string(),
        }
    }
}

/// What fails on the server's side, whatever the layer; every layer's error carries it
/// whole, so a store failure deep in a step reaches the log with its cause.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Temporarily unable to serve the request, which was not applied; retrying is safe.
    #[error("{0}")]
    Unavailable(&'static str),
    /// Something this deployment cannot do (a backup of a PostgreSQL store); says what to
    /// do instead.
    #[error("{0}")]
    NotSupported(&'static str),
    /// A failure on the server's side; its cause is kept for the log.
    #[error("internal error: {0}")]
    Internal(#[source] InternalError),
}

impl Fault {
    /// A server-side failure while doing `context`, keeping the error that caused it.
    pub fn internal(context: impl Into<String>, cause: impl Into<BoxError>) -> Fault {
        Fault::Internal(InternalError::new(context, cause))
    }

    /// A failure described by its text alone.
    pub fn internal_text(context: impl Into<String>) -> Fault {
        Fault::Internal(InternalError { context: context.into(), cause: None })
    }

    /// Whether another attempt may pass: the request was not applied (a store hiccup, a
    /// reload) — all but a deployment's hard "no".
    pub fn is_transient(&self) -> bool {
        !matches!(self, Fault::NotSupported(_))
    }
}

impl From<StoreError> for Fault {
    fn from(e: StoreError) -> Fault {
        match e {
            StoreError::Closed => Fault::ShuttingDown,
            StoreError::Unsupported(what) => Fault::NotSupported(what),
            // Nothing was written; the partition's new owner serves the retry.
            StoreError::Fenced(_) => Fault::Unavailable("another server took over these records; retry"),
            other => Fault::internal("", other),
        }
    }
}

/// What every layer's error (with `Invalid(InvalidInput)` and `Fault(Fault)` variants)
/// offers: `internal(context, cause)`, `invalid(field, message)`, and a store failure as
/// a [`Fault`].
macro_rules! layer_error {
    ($t:ty) => {
        impl $t {
            /// A server-side failure while doing `context`, keeping the error that caused it.
            pub fn internal(context: impl Into<String>, cause: impl Into<$crate::error::BoxError>) -> Self {
                $crate::error::Fault::internal(context, cause).into()
            }

            /// Bad input in `field`.
            pub fn invalid(field: &str, message: impl Into<String>) -> Self {
                $crate::error::InvalidInput::field(field, message).into()
            }
        }

        impl From<$crate::store::StoreError> for $t {
            fn from(e: $crate::store::StoreError) -> Self {
                $crate::error::Fault::from(e).into()
            }
        }
    };
}
pub(crate) use layer_error;

/// Bad input a layer checked, naming the field when there is one (400 INVALID_REQUEST).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidInput {
    pub message: String,
    pub field: Option<String>,
}

impl InvalidInput {
    pub fn field(field: &str, message: impl Into<String>) -> InvalidInput {
        InvalidInput { message: message.into(), field: Some(field.to_string()) }
    }
}

/// Any error kept as the cause of another.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What failed on the server's side: what was being done, and the error that stopped it
/// when there is one. The text is "{context}: {cause}" (only the cause when there is no
/// context) for the log and the saga record; the cause stays reachable as `source()`.
#[derive(Debug)]
pub struct InternalError {
    context: String,
    cause: Option<BoxError>,
}

impl InternalError {
    /// A failure while doing `context`, caused by `cause`.
    pub fn new(context: impl Into<String>, cause: impl Into<BoxError>) -> InternalError {
        InternalError { context: context.into(), cause: Some(cause.into()) }
    }
}

impl std::fmt::Display for InternalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.cause {
            None => f.write_str(&self.context),
            Some(cause) if self.context.is_empty() => write!(f, "{cause}"),
            Some(cause) => write!(f, "{}: {cause}", self.context),
        }
    }
}

impl std::error::Error for InternalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_deref().map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// A failure described by its text alone (no error value caused it).
impl From<String> for InternalError {
    fn from(context: String) -> InternalError {
        InternalError { context, cause: None }
    }
}

impl From<&str> for InternalError {
    fn from(context: &str) -> InternalError {
        context.to_string().into()
    }
}

/// What clients read instead of the text of a server-side failure.
pub const INTERNAL_MESSAGE: &str = "internal error";

/// A business error as stored in a saga: enough to answer it again, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorRecord {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// JSON text.
    pub details: String,
}

impl ErrorRecord {
    /// The record as a client may see it. A server-side failure (INTERNAL, SHUTTING_DOWN:
    /// any 5xx) keeps its status and code but not its text or details, which can name
    /// internals (store paths, gateway answers); operators read the full record in the
    /// admin saga view, and the log has it. Business errors are shown as recorded.
    pub fn for_customer(&self) -> ErrorRecord {
        if self.status < 500 {
            return self.clone();
        }
        ErrorRecord { message: INTERNAL_MESSAGE.to_string(), details: "{}".to_string(), ..self.clone() }
    }
}
