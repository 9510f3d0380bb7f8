//! What the services fail with ([`ServiceError`]): their refusals, as types — the customer
//! service ([`AccountError`]), the catalogue ([`CatalogError`]), the cart
//! ([`CartRefusal`]), the checkout ([`CheckoutError`]) — the domain's refusals as the
//! domain gave them, the actors' failures, and the server-side [`Fault`]. Each service
//! re-exports its own refusal (`services::catalog::CatalogError`). Status and code are
//! decided in `http::error`.

use serde_json::Value;

use crate::actors::{ActorError, ActorFailure};
use crate::domain::cart::CartError;
use crate::domain::inventory::InventoryError;
use crate::domain::order::OrderError;
use crate::domain::product::{ProductRuleError, VariantChoiceError};
use crate::error::{Fault, InvalidInput};

/// Everything a service call can fail with: what a service refuses, what the domain or an
/// actor refused underneath, and what failed on the server's side.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("{0}")]
    InvalidQuantity(String),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
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
    #[error(transparent)]
    Checkout(#[from] CheckoutError),
    #[error("payment failed: {reason}")]
    PaymentFailed { reason: String },
    #[error("tracking number {0} is already used by another order")]
    TrackingNumberInUse(String),
    #[error("too many attempts; retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    /// Every password-hashing slot is taken; the request was not applied.
    #[error("the server is busy; retry in {retry_after_secs} s")]
    ServerBusy { retry_after_secs: u64 },
    /// A message an entity actor did not handle (quarantined, reloading).
    #[error(transparent)]
    Actor(#[from] ActorError),
    #[error(transparent)]
    Fault(#[from] Fault),
}

crate::error::layer_error!(ServiceError);

impl ServiceError {
    /// Whether another attempt may pass: nothing was applied (a store hiccup, an actor
    /// reloading). A refusal is final; so is a quarantined key (it waits for an operator).
    pub fn is_transient(&self) -> bool {
        match self {
            ServiceError::Fault(f) => f.is_transient(),
            ServiceError::Actor(ActorError::Reloading) => true,
            _ => false,
        }
    }
}

/// An actor's failure, as each of its parts always answered.
impl From<ActorFailure> for ServiceError {
    fn from(e: ActorFailure) -> ServiceError {
        match e {
            ActorFailure::Refused(e) => e.into(),
            ActorFailure::Cart(e) => e.into(),
            ActorFailure::Inventory(e) => e.into(),
            ActorFailure::Order(e) => e.into(),
            ActorFailure::OrderNotFound => ServiceError::OrderNotFound,
            ActorFailure::Store(e) => e.into(),
            ActorFailure::Internal(e) => Fault::Internal(e).into(),
        }
    }
}

impl From<CartError> for ServiceError {
    fn from(e: CartError) -> ServiceError {
        CartRefusal::from(e).into()
    }
}

impl From<ProductRuleError> for ServiceError {
    fn from(e: ProductRuleError) -> ServiceError {
        CatalogError::from(e).into()
    }
}

impl From<VariantChoiceError> for ServiceError {
    fn from(e: VariantChoiceError) -> ServiceError {
        CatalogError::from(e).into()
    }
}

impl From<actix::MailboxError> for ServiceError {
    /// The actor stopped with the message still in its mailbox: see [`ActorError::Reloading`].
    fn from(e: actix::MailboxError) -> ServiceError {
        ActorError::from(e).into()
    }
}

/// What the customer service refuses: registration, verification and sign-in.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("email or password is wrong")]
    InvalidCredentials,
    #[error("unknown or expired token")]
    InvalidToken,
    #[error("this email is already registered")]
    EmailAlreadyRegistered,
    #[error("{0}")]
    InvalidEmail(String),
    #[error("password does not meet the requirements")]
    WeakPassword { unmet: Vec<&'static str> },
}

/// A refusal of the catalogue: a category or product that is not there, or a rule of the
/// domain's (product fields, variant choice) kept whole.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{0}")]
    InvalidCategoryName(String),
    #[error("category not found")]
    CategoryNotFound,
    #[error("product not found")]
    ProductNotFound,
    #[error(transparent)]
    ProductRule(#[from] ProductRuleError),
    #[error(transparent)]
    VariantChoice(#[from] VariantChoiceError),
}

/// A refusal of the cart, as the domain gave it; an update capped to the stock also carries
/// the cart as it now is (QUANTITY_EXCEEDS_STOCK answers with it).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct CartRefusal {
    pub error: CartError,
    /// The cart view as the answer shows it (serialized by the cart service).
    pub cart: Option<Box<Value>>,
}

impl From<CartError> for CartRefusal {
    fn from(error: CartError) -> CartRefusal {
        CartRefusal { error, cart: None }
    }
}

/// Why a checkout was refused before any order existed (the place-order saga's checks and
/// the front door's early ones).
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("sign in (with a verified account) to place an order")]
    RegistrationRequired,
    #[error("verify your email address before placing an order")]
    EmailNotVerified,
    #[error("the cart is empty")]
    EmptyCart,
    #[error("we do not ship to {0}")]
    InternationalShippingNotAvailable(String),
}
