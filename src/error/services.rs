//! What the entity services refuse, as types: the customer service ([`AccountError`]), the
//! catalogue ([`CatalogError`]), the cart ([`CartRefusal`]) and the checkout
//! ([`CheckoutError`]). Each service re-exports its own (`services::catalog::CatalogError`);
//! they are defined here, with the one status and code mapping in the parent module, so
//! that mapping depends on no layer above the domain and the store.

use serde_json::Value;

use crate::domain::cart::CartError;
use crate::domain::product::{ProductRuleError, VariantChoiceError};

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
