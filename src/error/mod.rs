//! The one error type the layers return, and the one place it becomes an HTTP status, a
//! stable code and details. Codes are the HTTP contract's; never rename one.
//!
//! Layers refuse with their own enums, nested here whole and mapped below, so callers
//! match on types, never on text: the front door ([`HttpError`]), the customer service
//! ([`AccountError`]), webhooks and bulk actions ([`OperationError`]), the saga engine
//! ([`SagaError`]), entity actors ([`ActorError`]), the catalogue ([`CatalogError`]), the
//! checkout ([`CheckoutError`]); the domain's refusals ([`OrderError`], [`InventoryError`],
//! [`CartError`] inside [`CartRefusal`]) are held as the domain gave them; a store failure
//! becomes [`AppError::Internal`] with the store error kept as its cause (or
//! [`AppError::ShuttingDown`] for a closed store).
//!
//! Why the mapping sits here, below the saga engine, and not in `http/`: a saga records a
//! failure's status and code ([`ErrorRecord`], through [`AppError::record`]) so that a
//! retried request is answered identically later, from the record, whatever the code
//! does by then. The saga therefore needs the mapping, and `http` sits above the saga. So
//! the layers' refusal enums are defined in the submodules here (one file per layer, each
//! re-exported from its layer: `saga::SagaError`, `actors::ActorError`, …) and this module
//! depends on nothing above the domain and the store; `layering.rs` checks that.

use serde_json::{json, Value};

pub mod actors;
pub mod http;
pub mod operations;
pub mod saga;
pub mod services;

use self::actors::{ActorError, ActorFailure};
use self::http::HttpError;
use self::operations::OperationError;
use self::saga::SagaError;
use self::services::{AccountError, CartRefusal, CatalogError, CheckoutError};
use crate::domain::cart::CartError;
use crate::domain::inventory::InventoryError;
use crate::domain::order::OrderError;
use crate::domain::product::{ProductRuleError, VariantChoiceError};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    InvalidRequest { message: String, field: Option<String> },
    /// A request the front door refused (body, path, method).
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("missing or invalid credentials")]
    Unauthenticated,
    #[error("not allowed with these credentials")]
    Forbidden,
    /// A refusal of the customer service (registration, verification, sign-in).
    #[error(transparent)]
    Account(#[from] AccountError),
    /// A refusal of the catalogue (categories, products, variant choice).
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("{0}")]
    InvalidQuantity(String),
    /// A refusal of the cart (the domain's, with the capped cart when there is one).
    #[error(transparent)]
    Cart(#[from] CartRefusal),
    /// A refusal of one inventory item, as the domain gave it.
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// Lines short of stock, each named by product and variant (a reservation or a checkout).
    #[error("not enough stock")]
    InsufficientStock { items: Value },
    #[error("order not found")]
    OrderNotFound,
    /// A refusal of an order's rules, as the domain gave it.
    #[error(transparent)]
    Order(#[from] OrderError),
    /// A checkout refused before any order existed.
    #[error(transparent)]
    Checkout(#[from] CheckoutError),
    #[error("payment failed: {reason}")]
    PaymentFailed { reason: String },
    #[error("tracking number {0} is already used by another order")]
    TrackingNumberInUse(String),
    /// An error recorded earlier (a failed saga) answered again exactly as it was.
    #[error("{}", .0.message)]
    Recorded(ErrorRecord),
    #[error("too many attempts; retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    /// Every password-hashing slot is taken; the request was not applied.
    #[error("the server is busy; retry in {retry_after_secs} s")]
    ServerBusy { retry_after_secs: u64 },
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Temporarily unable to serve the request, which was not applied; retrying is safe.
    #[error("{0}")]
    Unavailable(&'static str),
    /// Something this deployment cannot do (a backup of a PostgreSQL store); says what to
    /// do instead.
    #[error("{0}")]
    NotSupported(&'static str),
    /// A failure on the server's side; its cause is kept for the log (see [`InternalError`]).
    #[error("internal error: {0}")]
    Internal(#[source] InternalError),
    /// A message an entity actor did not handle.
    #[error(transparent)]
    Actor(#[from] ActorError),
    /// A refusal of a webhook or a bulk action.
    #[error(transparent)]
    Operation(#[from] OperationError),
    /// A refusal of the saga layer.
    #[error(transparent)]
    Saga(#[from] SagaError),
}

impl AppError {
    /// A server-side failure while doing `context`, keeping the error that caused it.
    pub fn internal(context: impl Into<String>, cause: impl Into<BoxError>) -> AppError {
        AppError::Internal(InternalError { context: context.into(), cause: Some(cause.into()) })
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> AppError {
        AppError::InvalidRequest { message: message.into(), field: Some(field.to_string()) }
    }

    pub fn status(&self) -> u16 {
        use AppError::*;
        match self {
            Recorded(r) => r.status,
            InvalidRequest { .. }
            | Account(AccountError::InvalidToken)
            | Catalog(CatalogError::ProductRule(ProductRuleError::InvalidDescription(_))) => 400,
            Unauthenticated
            | Account(AccountError::InvalidCredentials)
            | Checkout(CheckoutError::RegistrationRequired) => 401,
            PaymentFailed { .. } => 402,
            Forbidden | Checkout(CheckoutError::EmailNotVerified) => 403,
            Operation(OperationError::InvalidSignature) => 401,
            Http(HttpError::RouteNotFound(_))
            | Catalog(
                CatalogError::CategoryNotFound
                | CatalogError::ProductNotFound
                | CatalogError::VariantChoice(VariantChoiceError::NotFound),
            )
            | Cart(CartRefusal { error: CartError::ItemNotFound, .. })
            | OrderNotFound
            | Saga(SagaError::NotFound)
            | Operation(OperationError::BulkActionNotFound | OperationError::WebhookEventNotFound) => 404,
            Http(HttpError::MethodNotAllowed { .. }) => 405,
            Actor(ActorError::Quarantined { .. }) => 423,
            Account(AccountError::EmailAlreadyRegistered)
            | Cart(CartRefusal { error: CartError::OutOfStock | CartError::QuantityExceedsStock { .. }, .. })
            | InsufficientStock { .. }
            | Inventory(InventoryError::InsufficientStock { .. } | InventoryError::ReservationConflict { .. })
            | Order(_)
            | TrackingNumberInUse(_)
            | Saga(SagaError::InvalidState(_) | SagaError::FirstWriteConflict(_) | SagaError::AbortNotAllowed(_))
            | Operation(OperationError::WebhookNotReplayable(_)) => 409,
            Http(HttpError::RequestTimeout { .. }) => 408,
            Http(HttpError::PayloadTooLarge { .. }) => 413,
            Http(HttpError::LeaderUnreachable(_)) => 502,
            Http(HttpError::NoLeader | HttpError::NotLeader) => 503,
            TooManyRequests { .. } => 429,
            Account(AccountError::InvalidEmail(_) | AccountError::WeakPassword { .. })
            | Catalog(
                CatalogError::InvalidCategoryName(_)
                | CatalogError::VariantChoice(VariantChoiceError::Required)
                | CatalogError::ProductRule(
                    ProductRuleError::InvalidPrice(_)
                    | ProductRuleError::InvalidName(_)
                    | ProductRuleError::DescriptionTooLong(_),
                ),
            )
            | InvalidQuantity(_)
            | Inventory(InventoryError::StockLimit)
            | Cart(CartRefusal {
                error: CartError::CartFull { .. } | CartError::LineQuantityTooLarge { .. }, ..
            })
            | Checkout(CheckoutError::EmptyCart | CheckoutError::InternationalShippingNotAvailable(_))
            | Saga(SagaError::InvalidRetryPolicy(_))
            | Operation(OperationError::UnknownEventType(_)) => 422,
            Internal(_) => 500,
            NotSupported(_) => 501,
            ShuttingDown | Unavailable(_) | Actor(ActorError::Reloading) | ServerBusy { .. } => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        use AppError::*;
        match self {
            InvalidRequest { .. } | Catalog(CatalogError::ProductRule(ProductRuleError::InvalidDescription(_))) => {
                "INVALID_REQUEST"
            }
            Http(HttpError::PayloadTooLarge { .. }) => "PAYLOAD_TOO_LARGE",
            Http(HttpError::RequestTimeout { .. }) => "REQUEST_TIMEOUT",
            Http(HttpError::RouteNotFound(_)) => "NOT_FOUND",
            Http(HttpError::MethodNotAllowed { .. }) => "METHOD_NOT_ALLOWED",
            Http(HttpError::NoLeader | HttpError::NotLeader) => "UNAVAILABLE",
            Http(HttpError::LeaderUnreachable(_)) => "LEADER_UNREACHABLE",
            Unauthenticated => "UNAUTHENTICATED",
            Forbidden => "FORBIDDEN",
            Account(AccountError::InvalidCredentials) => "INVALID_CREDENTIALS",
            Account(AccountError::InvalidToken) => "INVALID_TOKEN",
            Account(AccountError::EmailAlreadyRegistered) => "EMAIL_ALREADY_REGISTERED",
            Account(AccountError::InvalidEmail(_)) => "INVALID_EMAIL",
            Account(AccountError::WeakPassword { .. }) => "WEAK_PASSWORD",
            Catalog(CatalogError::InvalidCategoryName(_)) => "INVALID_CATEGORY_NAME",
            Catalog(CatalogError::CategoryNotFound) => "CATEGORY_NOT_FOUND",
            Catalog(CatalogError::ProductNotFound) => "PRODUCT_NOT_FOUND",
            Catalog(CatalogError::VariantChoice(VariantChoiceError::Required)) => "VARIANT_REQUIRED",
            Catalog(CatalogError::VariantChoice(VariantChoiceError::NotFound)) => "VARIANT_NOT_FOUND",
            Catalog(CatalogError::ProductRule(ProductRuleError::InvalidPrice(_))) => "INVALID_PRICE",
            Catalog(CatalogError::ProductRule(ProductRuleError::InvalidName(_))) => "INVALID_PRODUCT_NAME",
            Catalog(CatalogError::ProductRule(ProductRuleError::DescriptionTooLong(_))) => "DESCRIPTION_TOO_LONG",
            InvalidQuantity(_)
            | Inventory(InventoryError::StockLimit)
            | Cart(CartRefusal { error: CartError::LineQuantityTooLarge { .. }, .. }) => "INVALID_QUANTITY",
            Cart(CartRefusal { error: CartError::OutOfStock, .. }) => "OUT_OF_STOCK",
            Cart(CartRefusal { error: CartError::QuantityExceedsStock { .. }, .. }) => "QUANTITY_EXCEEDS_STOCK",
            Cart(CartRefusal { error: CartError::ItemNotFound, .. }) => "ITEM_NOT_FOUND",
            Cart(CartRefusal { error: CartError::CartFull { .. }, .. }) => "CART_FULL",
            InsufficientStock { .. } | Inventory(InventoryError::InsufficientStock { .. }) => "INSUFFICIENT_STOCK",
            Inventory(InventoryError::ReservationConflict { .. }) => "RESERVATION_CONFLICT",
            OrderNotFound => "ORDER_NOT_FOUND",
            Order(OrderError::InvalidStatusTransition { .. } | OrderError::NotShippable(_)) => {
                "INVALID_STATUS_TRANSITION"
            }
            Order(OrderError::CancellationNotAllowed(_)) => "CANCELLATION_NOT_ALLOWED",
            Checkout(CheckoutError::RegistrationRequired) => "REGISTRATION_REQUIRED",
            Checkout(CheckoutError::EmailNotVerified) => "EMAIL_NOT_VERIFIED",
            Checkout(CheckoutError::EmptyCart) => "EMPTY_CART",
            Checkout(CheckoutError::InternationalShippingNotAvailable(_)) => "INTERNATIONAL_SHIPPING_NOT_AVAILABLE",
            PaymentFailed { .. } => "PAYMENT_FAILED",
            Saga(SagaError::NotFound) => "SAGA_NOT_FOUND",
            Saga(SagaError::InvalidState(_) | SagaError::FirstWriteConflict(_)) => "INVALID_SAGA_STATE",
            Saga(SagaError::AbortNotAllowed(_)) => "ABORT_NOT_ALLOWED",
            Saga(SagaError::InvalidRetryPolicy(_)) => "INVALID_RETRY_POLICY",
            Actor(ActorError::Quarantined { .. }) => "KEY_QUARANTINED",
            Order(OrderError::AmountMismatch { .. }) => "AMOUNT_MISMATCH",
            TrackingNumberInUse(_) => "TRACKING_NUMBER_IN_USE",
            Operation(OperationError::InvalidSignature) => "INVALID_SIGNATURE",
            Operation(OperationError::UnknownEventType(_)) => "UNKNOWN_EVENT_TYPE",
            Operation(OperationError::BulkActionNotFound) => "BULK_ACTION_NOT_FOUND",
            Operation(OperationError::WebhookEventNotFound) => "WEBHOOK_EVENT_NOT_FOUND",
            Operation(OperationError::WebhookNotReplayable(_)) => "WEBHOOK_NOT_REPLAYABLE",
            Recorded(_) => "RECORDED",
            TooManyRequests { .. } => "TOO_MANY_REQUESTS",
            ServerBusy { .. } => "SERVER_BUSY",
            ShuttingDown => "SHUTTING_DOWN",
            NotSupported(_) => "NOT_SUPPORTED",
            Unavailable(_) | Actor(ActorError::Reloading) => "UNAVAILABLE",
            Internal(_) => "INTERNAL",
        }
    }

    pub fn details(&self) -> Value {
        use AppError::*;
        match self {
            InvalidRequest { field: Some(f), .. } => json!({ "field": f }),
            Catalog(CatalogError::ProductRule(ProductRuleError::InvalidDescription(_))) => {
                json!({ "field": "description" })
            }
            Http(HttpError::PayloadTooLarge { limit }) => json!({ "limit_bytes": limit }),
            Http(HttpError::RequestTimeout { timeout_ms }) => json!({ "timeout_ms": timeout_ms }),
            Http(HttpError::MethodNotAllowed { allow }) => json!({ "allow": allow }),
            Account(AccountError::WeakPassword { unmet }) => json!({
                "requirements": crate::domain::password::REQUIREMENTS,
                "unmet": unmet,
            }),
            Cart(CartRefusal { error: CartError::QuantityExceedsStock { available }, cart: Some(cart) }) => {
                json!({ "available": available, "cart": cart })
            }
            Cart(CartRefusal { error: CartError::QuantityExceedsStock { available }, cart: None }) => {
                json!({ "available": available })
            }
            Cart(CartRefusal { error: CartError::CartFull { max }, .. }) => json!({ "max_lines": max }),
            InsufficientStock { items } => json!({ "items": items }),
            Inventory(InventoryError::InsufficientStock { requested, available }) => {
                json!({ "items": [{ "requested": requested, "available": available }] })
            }
            Inventory(InventoryError::ReservationConflict { held }) => json!({ "held": held }),
            PaymentFailed { reason } => json!({ "reason": reason }),
            Actor(ActorError::Quarantined { key, reason }) => {
                json!({ "kind": key.kind.as_str(), "key": key.id, "reason": reason })
            }
            Checkout(CheckoutError::InternationalShippingNotAvailable(country)) => json!({ "country": country }),
            TooManyRequests { retry_after_secs } | ServerBusy { retry_after_secs } => {
                json!({ "retry_after_secs": retry_after_secs })
            }
            Recorded(r) => serde_json::from_str(&r.details).unwrap_or_else(|_| json!({})),
            _ => json!({}),
        }
    }

    /// A 503 for a message that was not handled (an actor or a saga reloading from the
    /// store): sending it again, to a fresh activation, applies it at most once.
    pub fn is_retry_safe_unavailable(&self) -> bool {
        matches!(self, AppError::Unavailable(_) | AppError::Actor(ActorError::Reloading))
    }

    /// Seconds for a `Retry-After` header, for the errors that say when to come back.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            AppError::TooManyRequests { retry_after_secs } | AppError::ServerBusy { retry_after_secs } => {
                Some(*retry_after_secs)
            }
            AppError::Http(HttpError::NoLeader | HttpError::NotLeader) => Some(1),
            _ => None,
        }
    }

    /// What a saga keeps of a business error, to answer it again later.
    pub fn record(&self) -> ErrorRecord {
        ErrorRecord {
            status: self.status(),
            code: self.stable_code().to_string(),
            message: self.to_string(),
            details: self.details().to_string(),
        }
    }

    /// The code, looking through a recorded error.
    pub fn stable_code(&self) -> &str {
        match self {
            AppError::Recorded(r) => &r.code,
            other => other.code(),
        }
    }

    /// The body every error answers with.
    pub fn body(&self) -> Value {
        // Internal details go to the log, not to the client.
        let (message, details) = match self {
            AppError::Internal { .. } => (INTERNAL_MESSAGE.to_string(), json!({})),
            AppError::Recorded(r) => {
                let shown = r.for_customer();
                (shown.message, serde_json::from_str(&shown.details).unwrap_or_else(|_| json!({})))
            }
            other => (other.to_string(), other.details()),
        };
        json!({ "error": { "code": self.stable_code(), "message": message, "details": details } })
    }
}

/// Every code [`AppError::code`] answers (a recorded error answers the code it recorded,
/// one of these): the contract's error codes, for the OpenAPI document's check.
pub const CODES: &[&str] = &[
    "INVALID_REQUEST",
    "LEADER_UNREACHABLE",
    "PAYLOAD_TOO_LARGE",
    "REQUEST_TIMEOUT",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "INVALID_CREDENTIALS",
    "INVALID_TOKEN",
    "EMAIL_ALREADY_REGISTERED",
    "INVALID_EMAIL",
    "WEAK_PASSWORD",
    "INVALID_CATEGORY_NAME",
    "CATEGORY_NOT_FOUND",
    "PRODUCT_NOT_FOUND",
    "VARIANT_REQUIRED",
    "VARIANT_NOT_FOUND",
    "INVALID_PRICE",
    "INVALID_PRODUCT_NAME",
    "DESCRIPTION_TOO_LONG",
    "INVALID_QUANTITY",
    "OUT_OF_STOCK",
    "QUANTITY_EXCEEDS_STOCK",
    "ITEM_NOT_FOUND",
    "CART_FULL",
    "INSUFFICIENT_STOCK",
    "RESERVATION_CONFLICT",
    "ORDER_NOT_FOUND",
    "INVALID_STATUS_TRANSITION",
    "CANCELLATION_NOT_ALLOWED",
    "REGISTRATION_REQUIRED",
    "EMAIL_NOT_VERIFIED",
    "EMPTY_CART",
    "INTERNATIONAL_SHIPPING_NOT_AVAILABLE",
    "PAYMENT_FAILED",
    "SAGA_NOT_FOUND",
    "INVALID_SAGA_STATE",
    "ABORT_NOT_ALLOWED",
    "INVALID_RETRY_POLICY",
    "KEY_QUARANTINED",
    "AMOUNT_MISMATCH",
    "TRACKING_NUMBER_IN_USE",
    "INVALID_SIGNATURE",
    "UNKNOWN_EVENT_TYPE",
    "BULK_ACTION_NOT_FOUND",
    "WEBHOOK_EVENT_NOT_FOUND",
    "WEBHOOK_NOT_REPLAYABLE",
    "TOO_MANY_REQUESTS",
    "SERVER_BUSY",
    "SHUTTING_DOWN",
    "NOT_SUPPORTED",
    "UNAVAILABLE",
    "INTERNAL",
];

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

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> AppError {
        match e {
            StoreError::Closed => AppError::ShuttingDown,
            StoreError::Unsupported(what) => AppError::NotSupported(what),
            other => AppError::internal("", other),
        }
    }
}

/// An actor's failure answers as its part always did: the refusal as the actor's, the
/// domain's refusal as the domain's, a store failure as the store's.
impl From<ActorFailure> for AppError {
    fn from(e: ActorFailure) -> AppError {
        match e {
            ActorFailure::Refused(e) => e.into(),
            ActorFailure::Cart(e) => e.into(),
            ActorFailure::Inventory(e) => e.into(),
            ActorFailure::Order(e) => e.into(),
            ActorFailure::OrderNotFound => AppError::OrderNotFound,
            ActorFailure::Store(e) => e.into(),
            ActorFailure::Internal(e) => AppError::Internal(e),
        }
    }
}

impl From<CartError> for AppError {
    fn from(e: CartError) -> AppError {
        CartRefusal::from(e).into()
    }
}

impl From<ProductRuleError> for AppError {
    fn from(e: ProductRuleError) -> AppError {
        CatalogError::from(e).into()
    }
}

impl From<VariantChoiceError> for AppError {
    fn from(e: VariantChoiceError) -> AppError {
        CatalogError::from(e).into()
    }
}

impl From<actix::MailboxError> for AppError {
    /// The actor stopped with the message still in its mailbox: see [`ActorError::Reloading`].
    fn from(e: actix::MailboxError) -> AppError {
        ActorError::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `CODES` is exactly what the arms of `AppError::code` answer (read from this file, so
    /// a new arm cannot be left out), the placeholder of a recorded error aside.
    #[test]
    fn codes_lists_every_code_the_mapping_answers() {
        let source = include_str!("mod.rs");
        let start = source.find("pub fn code(&self)").unwrap();
        let body = &source[start..start + source[start..].find("\n    }\n").unwrap()];
        let mut answered: Vec<&str> = body
            .split("=> \"")
            .skip(1)
            .chain(body.split("=> {\n                \"").skip(1))
            .filter_map(|rest| rest.split('"').next())
            .filter(|code| *code != "RECORDED")
            .collect();
        answered.sort();
        answered.dedup();
        let mut listed = CODES.to_vec();
        listed.sort();
        assert_eq!(answered, listed);
    }

    #[test]
    fn body_shape() {
        let b = AppError::from(CartError::QuantityExceedsStock { available: 3 }).body();
        assert_eq!(b["error"]["code"], "QUANTITY_EXCEEDS_STOCK");
        assert_eq!(b["error"]["details"]["available"], 3);
        assert_eq!(AppError::Internal("secret path".into()).body()["error"]["message"], "internal error");
    }

    #[test]
    fn a_saga_refused_at_its_first_write_answers_as_a_saga_state_conflict() {
        let e = AppError::from(SagaError::FirstWriteConflict("idempotency_key"));
        assert_eq!((e.status(), e.code()), (409, "INVALID_SAGA_STATE"));
        assert_eq!(e.body()["error"]["message"], "conflict on idempotency_key");
        assert!(matches!(e, AppError::Saga(SagaError::FirstWriteConflict("idempotency_key"))), "typed, not text");
    }

    #[test]
    fn the_saga_layers_refusals_answer_with_their_contract_status_and_code() {
        let answers = [
            (SagaError::NotFound, 404, "SAGA_NOT_FOUND", "saga not found"),
            (
                SagaError::InvalidState("the saga is COMPLETED".into()),
                409,
                "INVALID_SAGA_STATE",
                "the saga is COMPLETED",
            ),
            (SagaError::AbortNotAllowed("resume it instead".into()), 409, "ABORT_NOT_ALLOWED", "resume it instead"),
            (SagaError::InvalidRetryPolicy("no step x".into()), 422, "INVALID_RETRY_POLICY", "no step x"),
        ];
        for (refusal, status, code, message) in answers {
            let e = AppError::from(refusal);
            assert_eq!((e.status(), e.code()), (status, code));
            assert_eq!(e.body()["error"]["message"], message);
            assert_eq!(e.record().code, code, "a saga keeps the code it answered");
        }
    }

    #[test]
    fn the_actor_layers_refusals_answer_with_their_contract_status_code_and_details() {
        use crate::domain::quarantine::{KeyKind, QuarantineKey};
        let key = QuarantineKey::new(KeyKind::Order, uuid::Uuid::nil());
        let e = AppError::from(ActorError::Quarantined { key, reason: "double capture".into() });
        assert_eq!((e.status(), e.code()), (423, "KEY_QUARANTINED"));
        let details = &e.body()["error"]["details"];
        assert_eq!((details["kind"].as_str(), details["reason"].as_str()), (Some("order"), Some("double capture")));
        let e = AppError::from(ActorError::Reloading);
        assert_eq!((e.status(), e.code()), (503, "UNAVAILABLE"));
        assert_eq!(e.body()["error"]["message"], "the entity is reloading; retry the request");
        assert!(e.is_retry_safe_unavailable() && AppError::Unavailable("x").is_retry_safe_unavailable());
        assert!(!AppError::ShuttingDown.is_retry_safe_unavailable());
    }

    #[test]
    fn an_actors_failure_answers_as_its_part_always_did() {
        use crate::domain::quarantine::{KeyKind, QuarantineKey};
        let key = QuarantineKey::new(KeyKind::Cart, uuid::Uuid::nil());
        let quarantined = || ActorError::Quarantined { key, reason: "r".into() };
        let io = || std::io::Error::other("bad owner id");
        let answers: [(ActorFailure, AppError, u16, &str); 8] = [
            (quarantined().into(), quarantined().into(), 423, "KEY_QUARANTINED"),
            (ActorError::Reloading.into(), ActorError::Reloading.into(), 503, "UNAVAILABLE"),
            (CartError::OutOfStock.into(), CartError::OutOfStock.into(), 409, "OUT_OF_STOCK"),
            (InventoryError::StockLimit.into(), InventoryError::StockLimit.into(), 422, "INVALID_QUANTITY"),
            (
                OrderError::CancellationNotAllowed("SHIPPED").into(),
                OrderError::CancellationNotAllowed("SHIPPED").into(),
                409,
                "CANCELLATION_NOT_ALLOWED",
            ),
            (ActorFailure::OrderNotFound, AppError::OrderNotFound, 404, "ORDER_NOT_FOUND"),
            (StoreError::Closed.into(), StoreError::Closed.into(), 503, "SHUTTING_DOWN"),
            (ActorFailure::internal("x", io()), AppError::internal("x", io()), 500, "INTERNAL"),
        ];
        for (failure, direct, status, code) in answers {
            let e = AppError::from(failure);
            assert_eq!((e.status(), e.code()), (status, code));
            assert_eq!(e.body(), direct.body(), "answered as the part alone always was");
        }
        let e = AppError::from(ActorFailure::from(ActorError::Reloading));
        assert!(e.is_retry_safe_unavailable(), "a retry stays safe");
        let e = AppError::from(ActorFailure::from(CartError::OutOfStock));
        assert!(matches!(e, AppError::Cart(CartRefusal { error: CartError::OutOfStock, cart: None })), "{e:?}");
        let e = AppError::from(ActorFailure::internal("activating", io()));
        assert_eq!(e.to_string(), "internal error: activating: bad owner id", "the cause is kept");
    }

    #[test]
    fn the_operations_layers_refusals_answer_with_their_contract_status_and_code() {
        let answers = [
            (OperationError::InvalidSignature, 401, "INVALID_SIGNATURE"),
            (OperationError::UnknownEventType("x.y".into()), 422, "UNKNOWN_EVENT_TYPE"),
            (OperationError::WebhookEventNotFound, 404, "WEBHOOK_EVENT_NOT_FOUND"),
            (OperationError::WebhookNotReplayable("processed".into()), 409, "WEBHOOK_NOT_REPLAYABLE"),
            (OperationError::BulkActionNotFound, 404, "BULK_ACTION_NOT_FOUND"),
        ];
        for (refusal, status, code) in answers {
            let message = refusal.to_string();
            let e = AppError::from(refusal);
            assert_eq!((e.status(), e.code()), (status, code));
            assert_eq!(e.body()["error"]["message"], message.as_str());
        }
        assert_eq!(
            AppError::from(OperationError::UnknownEventType("x.y".into())).to_string(),
            "unknown event type x.y"
        );
    }

    #[test]
    fn the_front_doors_refusals_answer_with_their_contract_status_code_and_details() {
        let e = AppError::from(HttpError::PayloadTooLarge { limit: 10 });
        assert_eq!((e.status(), e.code(), e.details()["limit_bytes"].as_u64()), (413, "PAYLOAD_TOO_LARGE", Some(10)));
        let e = AppError::from(HttpError::RequestTimeout { timeout_ms: 5 });
        assert_eq!((e.status(), e.code(), e.details()["timeout_ms"].as_u64()), (408, "REQUEST_TIMEOUT", Some(5)));
        let e = AppError::from(HttpError::RouteNotFound("/nope".into()));
        assert_eq!((e.status(), e.code(), e.to_string().as_str()), (404, "NOT_FOUND", "no route for /nope"));
        let e = AppError::from(HttpError::MethodNotAllowed { allow: "GET, POST".into() });
        assert_eq!(
            (e.status(), e.code(), e.details()["allow"].as_str()),
            (405, "METHOD_NOT_ALLOWED", Some("GET, POST"))
        );
        assert_eq!(e.to_string(), "method not allowed; this path takes GET, POST");
    }

    #[test]
    fn the_customer_services_refusals_answer_with_their_contract_status_and_code() {
        let answers = [
            (AccountError::InvalidCredentials, 401, "INVALID_CREDENTIALS", "email or password is wrong"),
            (AccountError::InvalidToken, 400, "INVALID_TOKEN", "unknown or expired token"),
            (AccountError::EmailAlreadyRegistered, 409, "EMAIL_ALREADY_REGISTERED", "this email is already registered"),
            (AccountError::InvalidEmail("not an email".into()), 422, "INVALID_EMAIL", "not an email"),
        ];
        for (refusal, status, code, message) in answers {
            let e = AppError::from(refusal);
            assert_eq!((e.status(), e.code(), e.to_string().as_str()), (status, code, message));
        }
        let e = AppError::from(AccountError::WeakPassword { unmet: vec!["length"] });
        assert_eq!((e.status(), e.code()), (422, "WEAK_PASSWORD"));
        assert_eq!(e.details()["unmet"], json!(["length"]));
        assert_eq!(e.details()["requirements"], json!(crate::domain::password::REQUIREMENTS));
    }

    #[test]
    fn the_catalogs_refusals_answer_with_their_contract_status_and_code() {
        let answers: [(CatalogError, u16, &str, &str); 9] = [
            (CatalogError::InvalidCategoryName("too long".into()), 422, "INVALID_CATEGORY_NAME", "too long"),
            (CatalogError::CategoryNotFound, 404, "CATEGORY_NOT_FOUND", "category not found"),
            (CatalogError::ProductNotFound, 404, "PRODUCT_NOT_FOUND", "product not found"),
            (VariantChoiceError::Required.into(), 422, "VARIANT_REQUIRED", "this product has variants: choose one"),
            (VariantChoiceError::NotFound.into(), 404, "VARIANT_NOT_FOUND", "variant not found"),
            (ProductRuleError::InvalidPrice("price x".into()).into(), 422, "INVALID_PRICE", "price x"),
            (ProductRuleError::InvalidName("name x".into()).into(), 422, "INVALID_PRODUCT_NAME", "name x"),
            (ProductRuleError::DescriptionTooLong("desc x".into()).into(), 422, "DESCRIPTION_TOO_LONG", "desc x"),
            (ProductRuleError::InvalidDescription("bidi".into()).into(), 400, "INVALID_REQUEST", "bidi"),
        ];
        for (refusal, status, code, message) in answers {
            let e = AppError::from(refusal);
            assert_eq!((e.status(), e.code(), e.to_string().as_str()), (status, code, message));
            assert_eq!(e.record().code, code, "a saga keeps the code it answered");
        }
        let e = AppError::from(ProductRuleError::InvalidDescription("bidi".into()));
        assert_eq!(e.details(), json!({ "field": "description" }), "answered as a bad field, as before");
        assert_eq!(AppError::from(CatalogError::ProductNotFound).details(), json!({}));
        assert!(matches!(
            AppError::from(VariantChoiceError::NotFound),
            AppError::Catalog(CatalogError::VariantChoice(VariantChoiceError::NotFound))
        ));
    }

    #[test]
    fn the_inventorys_refusals_answer_with_their_contract_status_code_and_details() {
        let e = AppError::from(InventoryError::InsufficientStock { requested: 3, available: 1 });
        assert_eq!((e.status(), e.code(), e.to_string().as_str()), (409, "INSUFFICIENT_STOCK", "not enough stock"));
        assert_eq!(e.details(), json!({ "items": [{ "requested": 3, "available": 1 }] }));
        let e = AppError::from(InventoryError::ReservationConflict { held: 4 });
        assert_eq!((e.status(), e.code()), (409, "RESERVATION_CONFLICT"));
        assert_eq!(e.to_string(), "this owner already holds a reservation of 4");
        assert_eq!(e.details(), json!({ "held": 4 }));
        let e = AppError::from(InventoryError::StockLimit);
        assert_eq!((e.status(), e.code()), (422, "INVALID_QUANTITY"));
        assert_eq!(e.to_string(), format!("stock cannot exceed {}", crate::domain::inventory::MAX_STOCK));
        assert_eq!(e.record().code, "INVALID_QUANTITY", "a saga keeps the code it answered");
        assert!(matches!(e, AppError::Inventory(InventoryError::StockLimit)), "held whole");
    }

    #[test]
    fn the_carts_refusals_answer_with_their_contract_status_code_and_details() {
        let answers = [
            (CartError::OutOfStock, 409, "OUT_OF_STOCK", "the product is out of stock", json!({})),
            (
                CartError::QuantityExceedsStock { available: 2 },
                409,
                "QUANTITY_EXCEEDS_STOCK",
                "only 2 available",
                json!({ "available": 2 }),
            ),
            (CartError::ItemNotFound, 404, "ITEM_NOT_FOUND", "no such item in the cart", json!({})),
            (
                CartError::CartFull { max: 3 },
                422,
                "CART_FULL",
                "a cart holds at most 3 different items",
                json!({ "max_lines": 3 }),
            ),
            (
                CartError::LineQuantityTooLarge { max: 50 },
                422,
                "INVALID_QUANTITY",
                "a cart line holds at most 50 units",
                json!({}),
            ),
        ];
        for (refusal, status, code, message, details) in answers {
            let e = AppError::from(refusal);
            assert_eq!((e.status(), e.code(), e.to_string().as_str()), (status, code, message));
            assert_eq!(e.details(), details);
        }
    }

    #[test]
    fn a_capped_update_answers_with_the_cart_as_it_now_is() {
        let cart = crate::services::cart::CartView {
            cart_id: crate::domain::ids::LineId::new(),
            customer_id: crate::domain::ids::CustomerId::new(),
            items: vec![],
            total_price: crate::domain::money::Money::ZERO,
        };
        let e = AppError::from(CartRefusal {
            error: CartError::QuantityExceedsStock { available: 1 },
            cart: Some(Box::new(serde_json::to_value(&cart).unwrap())),
        });
        assert_eq!((e.status(), e.code()), (409, "QUANTITY_EXCEEDS_STOCK"));
        assert_eq!(e.details(), json!({ "available": 1, "cart": serde_json::to_value(&cart).unwrap() }));
    }

    #[test]
    fn the_order_rules_refusals_answer_with_their_contract_status_and_code() {
        use crate::domain::money::Money;
        let answers = [
            (
                OrderError::InvalidStatusTransition { from: "SHIPPED", to: "CANCELLED" },
                "INVALID_STATUS_TRANSITION",
                "order is SHIPPED; it cannot become CANCELLED",
            ),
            (
                OrderError::NotShippable("PENDING"),
                "INVALID_STATUS_TRANSITION",
                "order is PENDING; only a CONFIRMED order can be shipped",
            ),
            (
                OrderError::CancellationNotAllowed("SHIPPED"),
                "CANCELLATION_NOT_ALLOWED",
                "an order that is SHIPPED cannot be cancelled",
            ),
            (
                OrderError::AmountMismatch {
                    captured: Money::parse("1.00").unwrap(),
                    total: Money::parse("2.00").unwrap(),
                },
                "AMOUNT_MISMATCH",
                "captured 1.00, but the order total is 2.00",
            ),
        ];
        for (refusal, code, message) in answers {
            let e = AppError::from(refusal);
            assert_eq!((e.status(), e.code(), e.to_string().as_str()), (409, code, message));
            assert_eq!(e.details(), json!({}));
            assert_eq!(e.record().code, code, "a saga keeps the code it answered");
        }
    }

    #[test]
    fn the_checkouts_refusals_answer_with_their_contract_status_code_and_details() {
        let answers = [
            (
                CheckoutError::RegistrationRequired,
                401,
                "REGISTRATION_REQUIRED",
                "sign in (with a verified account) to place an order",
            ),
            (
                CheckoutError::EmailNotVerified,
                403,
                "EMAIL_NOT_VERIFIED",
                "verify your email address before placing an order",
            ),
            (CheckoutError::EmptyCart, 422, "EMPTY_CART", "the cart is empty"),
            (
                CheckoutError::InternationalShippingNotAvailable("FR".into()),
                422,
                "INTERNATIONAL_SHIPPING_NOT_AVAILABLE",
                "we do not ship to FR",
            ),
        ];
        for (refusal, status, code, message) in answers {
            let e = AppError::from(refusal);
            assert_eq!((e.status(), e.code(), e.to_string().as_str()), (status, code, message));
            assert_eq!(e.record().code, code, "a saga keeps the code it answered");
        }
        let e = AppError::from(CheckoutError::InternationalShippingNotAvailable("FR".into()));
        assert_eq!(e.details(), json!({ "country": "FR" }));
        assert_eq!(AppError::from(CheckoutError::EmptyCart).details(), json!({}));
    }

    #[test]
    fn a_server_side_failure_keeps_its_cause_and_its_text() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "/var/data/db: denied");
        let e = AppError::from(StoreError::from(io));
        assert_eq!(e.to_string(), "internal error: i/o error: /var/data/db: denied");
        let store = std::error::Error::source(&e).and_then(std::error::Error::source);
        assert!(store.is_some_and(|s| s.downcast_ref::<StoreError>().is_some()), "the store error is kept: {e:?}");
        let e = AppError::internal("backup task", std::io::Error::other("joined"));
        assert_eq!(
            (e.status(), e.code(), e.to_string().as_str()),
            (500, "INTERNAL", "internal error: backup task: joined")
        );
        assert_eq!(e.body()["error"]["message"], "internal error");
    }

    #[test]
    fn refusals_that_say_when_to_come_back() {
        let e = AppError::TooManyRequests { retry_after_secs: 7 };
        assert_eq!((e.status(), e.code(), e.retry_after_secs()), (429, "TOO_MANY_REQUESTS", Some(7)));
        assert_eq!(e.body()["error"]["details"]["retry_after_secs"], 7);
        let e = AppError::ServerBusy { retry_after_secs: 1 };
        assert_eq!((e.status(), e.code(), e.retry_after_secs()), (503, "SERVER_BUSY", Some(1)));
        assert_eq!(AppError::ShuttingDown.retry_after_secs(), None);
    }

    #[test]
    fn recorded_server_failures_hide_their_text_from_clients() {
        let internal = AppError::Internal("sled: /var/data/db: I/O error".into()).record();
        assert_eq!((internal.status, internal.code.as_str()), (500, "INTERNAL"));
        assert!(internal.message.contains("/var/data"), "the record keeps the full text for operators");
        let shown = internal.for_customer();
        assert_eq!((shown.status, shown.code.as_str(), shown.message.as_str()), (500, "INTERNAL", "internal error"));
        let body = AppError::Recorded(internal).body();
        assert_eq!(body["error"]["code"], "INTERNAL");
        assert_eq!(body["error"]["message"], "internal error");
        assert!(!body.to_string().contains("/var/data"), "{body}");

        let business = AppError::PaymentFailed { reason: "card declined".into() }.record();
        assert_eq!(business.for_customer(), business);
        let body = AppError::Recorded(business).body();
        assert_eq!(body["error"]["details"]["reason"], "card declined");
    }
}
