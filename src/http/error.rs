//! The front door's error ([`ApiError`]: its own refusals, [`HttpError`], and every layer's
//! error whole) and the one place an error becomes an HTTP status, a stable code and
//! details: [`Answer`] for each layer's error. Codes are the HTTP contract's; never rename
//! one. The layers below record an answer through the trait (a failed saga, an audit row)
//! and never decide one.

use serde_json::{json, Value};

use crate::actors::{ActorError, ActorFailure};
use crate::domain::cart::CartError;
use crate::domain::inventory::InventoryError;
use crate::domain::order::OrderError;
use crate::domain::product::{ProductRuleError, VariantChoiceError};
use crate::error::{Answer, ErrorRecord, Fault, InvalidInput, INTERNAL_MESSAGE};
use crate::operations::OperationError;
use crate::saga::SagaError;
use crate::services::error::{AccountError, CartRefusal, CatalogError, CheckoutError};
use crate::services::ServiceError;

/// A request refused by the front door: its body, its path or its method.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body did not arrive within {timeout_ms} ms")]
    RequestTimeout { timeout_ms: u64 },
    #[error("no route for {0}")]
    RouteNotFound(String),
    /// `allow` lists the path's methods, for the `Allow` header.
    #[error("method not allowed; this path takes {allow}")]
    MethodNotAllowed { allow: String },
    /// A follower has no leader to forward to (a takeover is under way); nothing was applied.
    #[error("no server leads the cluster right now (a takeover is under way); retry")]
    NoLeader,
    /// A request already forwarded once reached a server that does not lead: forwarded at
    /// most once, so it stops here, not applied.
    #[error("this server does not lead the cluster and forwards a request only once; retry")]
    NotLeader,
    /// The leader did not answer a forwarded request: it may or may not have applied it
    /// (retry with the same Idempotency-Key where the route takes one).
    #[error("the cluster's leader did not answer: {0}")]
    LeaderUnreachable(String),
}

impl HttpError {
    /// Whether the rest of the body was left unread, so the connection cannot carry another
    /// request.
    pub fn body_left_unread(&self) -> bool {
        matches!(self, HttpError::PayloadTooLarge { .. } | HttpError::RequestTimeout { .. })
    }
}

/// What a request can fail with: the front door's refusals and any layer's error, whole.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request the front door refused (body, path, method, cluster).
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("missing or invalid credentials")]
    Unauthenticated,
    #[error("not allowed with these credentials")]
    Forbidden,
    /// An error recorded earlier (a failed saga) answered again exactly as it was.
    #[error("{}", .0.message)]
    Recorded(ErrorRecord),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Saga(#[from] SagaError),
    #[error(transparent)]
    Operation(#[from] OperationError),
    #[error(transparent)]
    Fault(#[from] Fault),
}

crate::error::layer_error!(ApiError);

impl ApiError {
    /// Seconds for a `Retry-After` header, for the errors that say when to come back.
    pub fn retry_after_secs(&self) -> Option<u64> {
        if let Some(
            ServiceError::TooManyRequests { retry_after_secs } | ServiceError::ServerBusy { retry_after_secs },
        ) = self.service()
        {
            return Some(*retry_after_secs);
        }
        matches!(self, ApiError::Http(HttpError::NoLeader | HttpError::NotLeader)).then_some(1)
    }

    /// The service's error inside, however deep.
    fn service(&self) -> Option<&ServiceError> {
        match self {
            ApiError::Service(e)
            | ApiError::Saga(SagaError::Service(e))
            | ApiError::Operation(OperationError::Service(e) | OperationError::Saga(SagaError::Service(e))) => Some(e),
            _ => None,
        }
    }

    /// The body every error answers with.
    pub fn body(&self) -> Value {
        // Server-side details go to the log, not to the client.
        let (message, details) = match self {
            ApiError::Recorded(r) => {
                let shown = r.for_customer();
                (shown.message, serde_json::from_str(&shown.details).unwrap_or_else(|_| json!({})))
            }
            e if e.code() == "INTERNAL" => (INTERNAL_MESSAGE.to_string(), json!({})),
            other => (other.to_string(), other.details()),
        };
        json!({ "error": { "code": self.code(), "message": message, "details": details } })
    }
}

/// The services' refusals (and the domain's under them), as the service would fail.
macro_rules! api_error_via_service {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(e: $t) -> ApiError {
                ServiceError::from(e).into()
            }
        }
    )*};
}

api_error_via_service!(
    AccountError,
    CatalogError,
    CartRefusal,
    CartError,
    CheckoutError,
    InventoryError,
    OrderError,
    ProductRuleError,
    VariantChoiceError
);

impl From<ActorFailure> for ApiError {
    fn from(e: ActorFailure) -> ApiError {
        ServiceError::from(e).into()
    }
}

impl From<ActorError> for ApiError {
    fn from(e: ActorError) -> ApiError {
        ServiceError::from(e).into()
    }
}

/// Each layer's error as the contract answers it: `(status, code)` and details, one match
/// per type. A new variant fails to compile until it is answered here.
trait Contract {
    fn contract(&self) -> (u16, &'static str);
    fn contract_details(&self) -> Value {
        json!({})
    }
}

macro_rules! answer_with_contract {
    ($($t:ty),*) => {$(
        impl Answer for $t {
            fn status(&self) -> u16 {
                self.contract().0
            }
            fn code(&self) -> &str {
                self.contract().1
            }
            fn details(&self) -> Value {
                self.contract_details()
            }
        }
    )*};
}

answer_with_contract!(ServiceError, SagaError, OperationError, HttpError, Fault);

impl Answer for ApiError {
    fn status(&self) -> u16 {
        match self {
            ApiError::Recorded(r) => r.status,
            other => other.contract().0,
        }
    }
    fn code(&self) -> &str {
        match self {
            ApiError::Recorded(r) => &r.code,
            other => other.contract().1,
        }
    }
    fn details(&self) -> Value {
        match self {
            ApiError::Recorded(r) => serde_json::from_str(&r.details).unwrap_or_else(|_| json!({})),
            other => other.contract_details(),
        }
    }
}

impl Contract for ApiError {
    fn contract(&self) -> (u16, &'static str) {
        match self {
            ApiError::Http(e) => e.contract(),
            ApiError::Invalid(e) => e.contract(),
            ApiError::Unauthenticated => (401, "UNAUTHENTICATED"),
            ApiError::Forbidden => (403, "FORBIDDEN"),
            // Answered from the record (see `Answer for ApiError`); a placeholder here.
            ApiError::Recorded(_) => (500, "RECORDED"),
            ApiError::Service(e) => e.contract(),
            ApiError::Saga(e) => e.contract(),
            ApiError::Operation(e) => e.contract(),
            ApiError::Fault(e) => e.contract(),
        }
    }
    fn contract_details(&self) -> Value {
        match self {
            ApiError::Http(e) => e.contract_details(),
            ApiError::Invalid(e) => e.contract_details(),
            ApiError::Service(e) => e.contract_details(),
            ApiError::Saga(e) => e.contract_details(),
            ApiError::Operation(e) => e.contract_details(),
            _ => json!({}),
        }
    }
}

impl Contract for HttpError {
    fn contract(&self) -> (u16, &'static str) {
        match self {
            HttpError::PayloadTooLarge { .. } => (413, "PAYLOAD_TOO_LARGE"),
            HttpError::RequestTimeout { .. } => (408, "REQUEST_TIMEOUT"),
            HttpError::RouteNotFound(_) => (404, "NOT_FOUND"),
            HttpError::MethodNotAllowed { .. } => (405, "METHOD_NOT_ALLOWED"),
            HttpError::NoLeader | HttpError::NotLeader => (503, "UNAVAILABLE"),
            HttpError::LeaderUnreachable(_) => (502, "LEADER_UNREACHABLE"),
        }
    }
    fn contract_details(&self) -> Value {
        match self {
            HttpError::PayloadTooLarge { limit } => json!({ "limit_bytes": limit }),
            HttpError::RequestTimeout { timeout_ms } => json!({ "timeout_ms": timeout_ms }),
            HttpError::MethodNotAllowed { allow } => json!({ "allow": allow }),
            _ => json!({}),
        }
    }
}

impl Contract for InvalidInput {
    fn contract(&self) -> (u16, &'static str) {
        (400, "INVALID_REQUEST")
    }
    fn contract_details(&self) -> Value {
        match &self.field {
            Some(f) => json!({ "field": f }),
            None => json!({}),
        }
    }
}

impl Contract for Fault {
    fn contract(&self) -> (u16, &'static str) {
        match self {
            Fault::ShuttingDown => (503, "SHUTTING_DOWN"),
            Fault::Unavailable(_) => (503, "UNAVAILABLE"),
            Fault::NotSupported(_) => (501, "NOT_SUPPORTED"),
            Fault::Internal(_) => (500, "INTERNAL"),
        }
    }
}

impl Contract for SagaError {
    fn contract(&self) -> (u16, &'static str) {
        match self {
            SagaError::NotFound => (404, "SAGA_NOT_FOUND"),
            SagaError::InvalidState(_) | SagaError::FirstWriteConflict(_) => (409, "INVALID_SAGA_STATE"),
            SagaError::AbortNotAllowed(_) => (409, "ABORT_NOT_ALLOWED"),
            SagaError::InvalidRetryPolicy(_) => (422, "INVALID_RETRY_POLICY"),
            SagaError::Invalid(e) => e.contract(),
            SagaError::Service(e) => e.contract(),
            SagaError::Fault(e) => e.contract(),
        }
    }
    fn contract_details(&self) -> Value {
        match self {
            SagaError::Invalid(e) => e.contract_details(),
            SagaError::Service(e) => e.contract_details(),
            _ => json!({}),
        }
    }
}

impl Contract for OperationError {
    fn contract(&self) -> (u16, &'static str) {
        match self {
            OperationError::InvalidSignature => (401, "INVALID_SIGNATURE"),
            OperationError::UnknownEventType(_) => (422, "UNKNOWN_EVENT_TYPE"),
            OperationError::WebhookEventNotFound => (404, "WEBHOOK_EVENT_NOT_FOUND"),
            OperationError::WebhookNotReplayable(_) => (409, "WEBHOOK_NOT_REPLAYABLE"),
            OperationError::BulkActionNotFound => (404, "BULK_ACTION_NOT_FOUND"),
            OperationError::Invalid(e) => e.contract(),
            OperationError::Service(e) => e.contract(),
            OperationError::Saga(e) => e.contract(),
            OperationError::Fault(e) => e.contract(),
        }
    }
    fn contract_details(&self) -> Value {
        match self {
            OperationError::Invalid(e) => e.contract_details(),
            OperationError::Service(e) => e.contract_details(),
            OperationError::Saga(e) => e.contract_details(),
            _ => json!({}),
        }
    }
}

impl Contract for ServiceError {
    fn contract(&self) -> (u16, &'static str) {
        use ServiceError::*;
        match self {
            Invalid(e) => e.contract(),
            InvalidQuantity(_) => (422, "INVALID_QUANTITY"),
            Account(e) => e.contract(),
            Catalog(e) => e.contract(),
            Cart(e) => e.error.contract(),
            Inventory(e) => e.contract(),
            InsufficientStock { .. } => (409, "INSUFFICIENT_STOCK"),
            OrderNotFound => (404, "ORDER_NOT_FOUND"),
            Order(e) => e.contract(),
            Checkout(e) => e.contract(),
            PaymentFailed { .. } => (402, "PAYMENT_FAILED"),
            TrackingNumberInUse(_) => (409, "TRACKING_NUMBER_IN_USE"),
            TooManyRequests { .. } => (429, "TOO_MANY_REQUESTS"),
            ServerBusy { .. } => (503, "SERVER_BUSY"),
            Actor(e) => e.contract(),
            Fault(e) => e.contract(),
        }
    }
    fn contract_details(&self) -> Value {
        use ServiceError::*;
        match self {
            Invalid(e) => e.contract_details(),
            Account(e) => e.contract_details(),
            Catalog(e) => e.contract_details(),
            Cart(CartRefusal { error: CartError::QuantityExceedsStock { available }, cart: Some(cart) }) => {
                json!({ "available": available, "cart": cart })
            }
            Cart(e) => e.error.contract_details(),
            Inventory(e) => e.contract_details(),
            InsufficientStock { items } => json!({ "items": items }),
            Checkout(e) => e.contract_details(),
            PaymentFailed { reason } => json!({ "reason": reason }),
            TooManyRequests { retry_after_secs } | ServerBusy { retry_after_secs } => {
                json!({ "retry_after_secs": retry_after_secs })
            }
            Actor(e) => e.contract_details(),
            _ => json!({}),
        }
    }
}

impl Contract for AccountError {
    fn contract(&self) -> (u16, &'static str) {
        match self {
            AccountError::InvalidCredentials => (401, "INVALID_CREDENTIALS"),
            AccountError::InvalidToken => (400, "INVALID_TOKEN"),
            AccountError::EmailAlreadyRegistered => (409, "EMAIL_ALREADY_REGISTERED"),
            AccountError::InvalidEmail(_) => (422, "INVALID_EMAIL"),
            AccountError::WeakPassword { .. } => (422, "WEAK_PASSWORD"),
        }
    }
    fn contract_details(&self) -> Value {
        match self {
            AccountError::WeakPassword { unmet } => json!({
                "requirements": crate::domain::password::REQUIREMENTS,
                "unmet": unmet,
            }),
            _ => json!({}),
        }
    }
}

impl Contract for CatalogError {
    fn contract(&self) -> (u16, &'static str) {
        match self {
            CatalogError::InvalidCategoryName(_) => (422, "INVALID_CATEGORY_NAME"),
            CatalogError::CategoryNotFound => (404, "CATEGORY_NOT_FOUND"),
            CatalogError::ProductNotFound => (404, "PRODUCT_NOT_FOUND"),
            CatalogError::VariantChoice(VariantChoiceError::Required) => (422, "VARIANT_REQUIRED"),
            CatalogError::VariantChoice(VariantChoiceError::NotFound) => (404, "VARIANT_NOT_FOUND"),
            CatalogError::ProductRule(ProductRuleError::InvalidPrice(_)) => (422, "INVALID_PRICE"),
            CatalogError::ProductRule(ProductRuleError::InvalidName(_)) => (422, "INVALID_PRODUCT_NAME"),
            CatalogError::ProductRule(ProductRuleError::DescriptionTooLong(_)) => (422, "DESCRIPTION_TOO_LONG"),
            // Control or bidirectional characters: a malformed field, not a business rule.
            CatalogError::ProductRule(ProductRuleError::InvalidDescription(_)) => (400, "INVALID_REQUEST"),
        }
    }
    fn contract_details(&self) -> Value {
        match self {
            CatalogError::ProductRule(ProductRuleError::InvalidDescription(_)) => json!({ "field": "description" }),
            _ => json!({}),
        }
    }
}

impl Contract for CartError {
    fn contract(&self) -> (u16, &'static str) {
        match self {
            CartError::OutOfStock => (409, "OUT_OF_STOCK"),
            CartError::QuantityExceedsStock { .. } => (409, "QUANTITY_EXCEEDS_STOCK"),
            CartError::ItemNotFound => (404, "ITEM_NOT_FOUND"),
            CartError::CartFull { .. } => (422, "CART_FULL"),
            CartError::LineQuantityTooLarge { .. } => (422, "INVALID_QUANTITY"),
        }
    }
    fn contract_details(&self) -> Value {
        match self {
            CartError::QuantityExceedsStock { available } => json!({ "available": available }),
            CartError::CartFull { max } => json!({ "max_lines": max }),
            _ => json!({}),
        }
    }
}

impl Contract for InventoryError {
    fn contract(&self) -> (u16, &'static str) {
        match self {
            InventoryError::InsufficientStock { .. } => (409, "INSUFFICIENT_STOCK"),
            InventoryError::ReservationConflict { .. } => (409, "RESERVATION_CONFLICT"),
            InventoryError::StockLimit => (422, "INVALID_QUANTITY"),
        }
    }
    fn contract_details(&self) -> Value {
        match self {
            InventoryError::InsufficientStock { requested, available } => {
                json!({ "items": [{ "requested": requested, "available": available }] })
            }
            InventoryError::ReservationConflict { held } => json!({ "held": held }),
            InventoryError::StockLimit => json!({}),
        }
    }
}

impl Contract for OrderError {
    fn contract(&self) -> (u16, &'static str) {
        match self {
            OrderError::InvalidStatusTransition { .. } | OrderError::NotShippable(_) => {
                (409, "INVALID_STATUS_TRANSITION")
            }
            OrderError::CancellationNotAllowed(_) => (409, "CANCELLATION_NOT_ALLOWED"),
            OrderError::AmountMismatch { .. } => (409, "AMOUNT_MISMATCH"),
        }
    }
}

impl Contract for CheckoutError {
    fn contract(&self) -> (u16, &'static str) {
        match self {
            CheckoutError::RegistrationRequired => (401, "REGISTRATION_REQUIRED"),
            CheckoutError::EmailNotVerified => (403, "EMAIL_NOT_VERIFIED"),
            CheckoutError::EmptyCart => (422, "EMPTY_CART"),
            CheckoutError::InternationalShippingNotAvailable(_) => (422, "INTERNATIONAL_SHIPPING_NOT_AVAILABLE"),
        }
    }
    fn contract_details(&self) -> Value {
        match self {
            CheckoutError::InternationalShippingNotAvailable(country) => json!({ "country": country }),
            _ => json!({}),
        }
    }
}

impl Contract for ActorError {
    fn contract(&self) -> (u16, &'static str) {
        match self {
            ActorError::Quarantined { .. } => (423, "KEY_QUARANTINED"),
            ActorError::Reloading => (503, "UNAVAILABLE"),
        }
    }
    fn contract_details(&self) -> Value {
        match self {
            ActorError::Quarantined { key, reason } => {
                json!({ "kind": key.kind.as_str(), "key": key.id, "reason": reason })
            }
            ActorError::Reloading => json!({}),
        }
    }
}

/// Every code the mapping above answers (a recorded error answers the code it recorded,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    /// `CODES` is exactly what the mapping's arms answer (read from this file, so a new arm
    /// cannot be left out), the placeholder of a recorded error aside.
    #[test]
    fn codes_lists_every_code_the_mapping_answers() {
        let source = include_str!("error.rs");
        let mapping = &source[source.find("trait Contract").unwrap()..source.find("pub const CODES").unwrap()];
        let mut answered: Vec<&str> = mapping
            .split(", \"")
            .skip(1)
            .filter_map(|rest| rest.split_once("\")").map(|(code, _)| code))
            .filter(|code| code.chars().all(|c| c.is_ascii_uppercase() || c == '_') && *code != "RECORDED")
            .collect();
        answered.sort();
        answered.dedup();
        let mut listed = CODES.to_vec();
        listed.sort();
        assert_eq!(answered, listed);
    }

    #[test]
    fn body_shape() {
        let b = ApiError::from(CartError::QuantityExceedsStock { available: 3 }).body();
        assert_eq!(b["error"]["code"], "QUANTITY_EXCEEDS_STOCK");
        assert_eq!(b["error"]["details"]["available"], 3);
        assert_eq!(ApiError::from(Fault::internal_text("secret path")).body()["error"]["message"], "internal error");
    }

    #[test]
    fn a_saga_refused_at_its_first_write_answers_as_a_saga_state_conflict() {
        let e = ApiError::from(SagaError::FirstWriteConflict("idempotency_key"));
        assert_eq!((e.status(), e.code()), (409, "INVALID_SAGA_STATE"));
        assert_eq!(e.body()["error"]["message"], "conflict on idempotency_key");
        assert!(matches!(e, ApiError::Saga(SagaError::FirstWriteConflict("idempotency_key"))), "typed, not text");
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
            let e = ApiError::from(refusal);
            assert_eq!((e.status(), e.code()), (status, code));
            assert_eq!(e.body()["error"]["message"], message);
            assert_eq!(e.record().code, code, "a saga keeps the code it answered");
        }
    }

    #[test]
    fn the_actor_layers_refusals_answer_with_their_contract_status_code_and_details() {
        use crate::domain::quarantine::{KeyKind, QuarantineKey};
        let key = QuarantineKey::new(KeyKind::Order, uuid::Uuid::nil());
        let e = ApiError::from(ActorError::Quarantined { key, reason: "double capture".into() });
        assert_eq!((e.status(), e.code()), (423, "KEY_QUARANTINED"));
        let details = &e.body()["error"]["details"];
        assert_eq!((details["kind"].as_str(), details["reason"].as_str()), (Some("order"), Some("double capture")));
        let e = ApiError::from(ActorError::Reloading);
        assert_eq!((e.status(), e.code()), (503, "UNAVAILABLE"));
        assert_eq!(e.body()["error"]["message"], "the entity is reloading; retry the request");
        assert!(ServiceError::from(ActorError::Reloading).is_transient(), "a reload is retried");
        let quarantined = ActorError::Quarantined { key, reason: "r".into() };
        assert!(!ServiceError::from(quarantined).is_transient(), "a quarantined key waits for an operator");
    }

    #[test]
    fn an_actors_failure_answers_as_its_part_always_did() {
        use crate::domain::quarantine::{KeyKind, QuarantineKey};
        let key = QuarantineKey::new(KeyKind::Cart, uuid::Uuid::nil());
        let quarantined = || ActorError::Quarantined { key, reason: "r".into() };
        let io = || std::io::Error::other("bad owner id");
        let answers: [(ActorFailure, ApiError, u16, &str); 8] = [
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
            (ActorFailure::OrderNotFound, ServiceError::OrderNotFound.into(), 404, "ORDER_NOT_FOUND"),
            (StoreError::Closed.into(), StoreError::Closed.into(), 503, "SHUTTING_DOWN"),
            (ActorFailure::internal("x", io()), ApiError::internal("x", io()), 500, "INTERNAL"),
        ];
        for (failure, direct, status, code) in answers {
            let e = ApiError::from(failure);
            assert_eq!((e.status(), e.code()), (status, code));
            assert_eq!(e.body(), direct.body(), "answered as the part alone always was");
        }
        let e = ServiceError::from(ActorFailure::from(ActorError::Reloading));
        assert!(e.is_transient(), "a retry stays safe");
        let e = ServiceError::from(ActorFailure::from(CartError::OutOfStock));
        assert!(matches!(e, ServiceError::Cart(CartRefusal { error: CartError::OutOfStock, cart: None })), "{e:?}");
        let e = ApiError::from(ActorFailure::internal("activating", io()));
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
            let e = ApiError::from(refusal);
            assert_eq!((e.status(), e.code()), (status, code));
            assert_eq!(e.body()["error"]["message"], message.as_str());
        }
        assert_eq!(
            ApiError::from(OperationError::UnknownEventType("x.y".into())).to_string(),
            "unknown event type x.y"
        );
    }

    #[test]
    fn the_front_doors_refusals_answer_with_their_contract_status_code_and_details() {
        let e = ApiError::from(HttpError::PayloadTooLarge { limit: 10 });
        assert_eq!((e.status(), e.code(), e.details()["limit_bytes"].as_u64()), (413, "PAYLOAD_TOO_LARGE", Some(10)));
        let e = ApiError::from(HttpError::RequestTimeout { timeout_ms: 5 });
        assert_eq!((e.status(), e.code(), e.details()["timeout_ms"].as_u64()), (408, "REQUEST_TIMEOUT", Some(5)));
        let e = ApiError::from(HttpError::RouteNotFound("/nope".into()));
        assert_eq!((e.status(), e.code(), e.to_string().as_str()), (404, "NOT_FOUND", "no route for /nope"));
        let e = ApiError::from(HttpError::MethodNotAllowed { allow: "GET, POST".into() });
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
            let e = ApiError::from(refusal);
            assert_eq!((e.status(), e.code(), e.to_string().as_str()), (status, code, message));
        }
        let e = ApiError::from(AccountError::WeakPassword { unmet: vec!["length"] });
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
            let e = ApiError::from(refusal);
            assert_eq!((e.status(), e.code(), e.to_string().as_str()), (status, code, message));
            assert_eq!(e.record().code, code, "a saga keeps the code it answered");
        }
        let e = ApiError::from(ProductRuleError::InvalidDescription("bidi".into()));
        assert_eq!(e.details(), json!({ "field": "description" }), "answered as a bad field, as before");
        assert_eq!(ApiError::from(CatalogError::ProductNotFound).details(), json!({}));
        assert!(matches!(
            ServiceError::from(VariantChoiceError::NotFound),
            ServiceError::Catalog(CatalogError::VariantChoice(VariantChoiceError::NotFound))
        ));
    }

    #[test]
    fn the_inventorys_refusals_answer_with_their_contract_status_code_and_details() {
        let e = ApiError::from(InventoryError::InsufficientStock { requested: 3, available: 1 });
        assert_eq!((e.status(), e.code(), e.to_string().as_str()), (409, "INSUFFICIENT_STOCK", "not enough stock"));
        assert_eq!(e.details(), json!({ "items": [{ "requested": 3, "available": 1 }] }));
        let e = ApiError::from(InventoryError::ReservationConflict { held: 4 });
        assert_eq!((e.status(), e.code()), (409, "RESERVATION_CONFLICT"));
        assert_eq!(e.to_string(), "this owner already holds a reservation of 4");
        assert_eq!(e.details(), json!({ "held": 4 }));
        let e = ApiError::from(InventoryError::StockLimit);
        assert_eq!((e.status(), e.code()), (422, "INVALID_QUANTITY"));
        assert_eq!(e.to_string(), format!("stock cannot exceed {}", crate::domain::inventory::MAX_STOCK));
        assert_eq!(e.record().code, "INVALID_QUANTITY", "a saga keeps the code it answered");
        assert!(matches!(e, ApiError::Service(ServiceError::Inventory(InventoryError::StockLimit))), "held whole");
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
            let e = ApiError::from(refusal);
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
        let e = ApiError::from(CartRefusal {
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
            let e = ApiError::from(refusal);
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
            let e = ApiError::from(refusal);
            assert_eq!((e.status(), e.code(), e.to_string().as_str()), (status, code, message));
            assert_eq!(e.record().code, code, "a saga keeps the code it answered");
        }
        let e = ApiError::from(CheckoutError::InternationalShippingNotAvailable("FR".into()));
        assert_eq!(e.details(), json!({ "country": "FR" }));
        assert_eq!(ApiError::from(CheckoutError::EmptyCart).details(), json!({}));
    }

    #[test]
    fn a_server_side_failure_keeps_its_cause_and_its_text() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "/var/data/db: denied");
        let e = ApiError::from(StoreError::from(io));
        assert_eq!(e.to_string(), "internal error: i/o error: /var/data/db: denied");
        let store = std::error::Error::source(&e).and_then(std::error::Error::source);
        assert!(store.is_some_and(|s| s.downcast_ref::<StoreError>().is_some()), "the store error is kept: {e:?}");
        let e = ApiError::internal("backup task", std::io::Error::other("joined"));
        assert_eq!(
            (e.status(), e.code(), e.to_string().as_str()),
            (500, "INTERNAL", "internal error: backup task: joined")
        );
        assert_eq!(e.body()["error"]["message"], "internal error");
    }

    #[test]
    fn refusals_that_say_when_to_come_back() {
        let e = ApiError::from(ServiceError::TooManyRequests { retry_after_secs: 7 });
        assert_eq!((e.status(), e.code(), e.retry_after_secs()), (429, "TOO_MANY_REQUESTS", Some(7)));
        assert_eq!(e.body()["error"]["details"]["retry_after_secs"], 7);
        let e = ApiError::from(ServiceError::ServerBusy { retry_after_secs: 1 });
        assert_eq!((e.status(), e.code(), e.retry_after_secs()), (503, "SERVER_BUSY", Some(1)));
        assert_eq!(ApiError::from(Fault::ShuttingDown).retry_after_secs(), None);
        let e = ApiError::from(HttpError::NoLeader);
        assert_eq!((e.status(), e.code(), e.retry_after_secs()), (503, "UNAVAILABLE", Some(1)));
    }

    #[test]
    fn recorded_server_failures_hide_their_text_from_clients() {
        let internal = ApiError::from(Fault::internal_text("sled: /var/data/db: I/O error")).record();
        assert_eq!((internal.status, internal.code.as_str()), (500, "INTERNAL"));
        assert!(internal.message.contains("/var/data"), "the record keeps the full text for operators");
        let shown = internal.for_customer();
        assert_eq!((shown.status, shown.code.as_str(), shown.message.as_str()), (500, "INTERNAL", "internal error"));
        let body = ApiError::Recorded(internal).body();
        assert_eq!(body["error"]["code"], "INTERNAL");
        assert_eq!(body["error"]["message"], "internal error");
        assert!(!body.to_string().contains("/var/data"), "{body}");

        let business = ServiceError::PaymentFailed { reason: "card declined".into() }.record();
        assert_eq!(business.for_customer(), business);
        let body = ApiError::Recorded(business).body();
        assert_eq!(body["error"]["details"]["reason"], "card declined");
    }
}
