//! The operators' console: server-rendered HTML under `/console`, in the same binary, over
//! the same services the JSON handlers call (never the HTTP API). See docs/console.md.
//!
//! - [`routes`]: the page table and [`dispatch`], which turns a page's error into its HTML.
//! - [`session`]: sign-in sessions, cookies, CSRF and origin checks.
//! - [`layout`]: the page shell, the navigation, error pages, small renderers.
//! - one module per page: [`signin`], [`triage`], [`sagas`], [`saga`], [`bulk`],
//!   [`quarantine`], [`policies`], [`webhooks`], [`orders`] (with [`order_events`]), [`audit`].
//!
//! Every answer is HTML (errors too, with their status); maud escapes every value it
//! renders, and no page renders a token or a session id.

mod audit;
mod bulk;
mod cluster;
mod layout;
mod order_events;
mod orders;
mod policies;
mod quarantine;
mod routes;
mod saga;
mod sagas;
pub mod session;
mod signin;
mod triage;
mod webhooks;

use std::collections::HashMap;

use crate::error::Answer;
use crate::http::ApiError;
use crate::server::Request;
use crate::startup::Shop;
pub use routes::dispatch;
use session::{Role, Session};

/// What a console page can fail with; each becomes an HTML page with its status.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No live session: GETs are sent to the sign-in page, and come back after it.
    #[error("sign in to continue")]
    SignInRequired,
    #[error("this page is for the admin; the fulfillment token sees orders only")]
    AdminOnly,
    #[error("this form is stale or came from another site: reload the page and try again")]
    Csrf,
    #[error("no such console page")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    App(#[from] ApiError),
}

/// Any layer's error, as the API would answer it.
macro_rules! console_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for ConsoleError {
            fn from(e: $t) -> ConsoleError {
                ConsoleError::App(e.into())
            }
        }
    )*};
}

console_error_from!(
    crate::services::ServiceError,
    crate::saga::SagaError,
    crate::operations::OperationError,
    crate::store::StoreError,
    crate::error::Fault
);

impl ConsoleError {
    fn status(&self) -> u16 {
        match self {
            ConsoleError::SignInRequired => 303,
            ConsoleError::AdminOnly | ConsoleError::Csrf => 403,
            ConsoleError::NotFound => 404,
            ConsoleError::Invalid(_) => 400,
            ConsoleError::App(e) => e.status(),
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ConsoleError::App(e) => e.retry_after_secs(),
            _ => None,
        }
    }

    /// What the page says: an internal failure's text stays in the log.
    fn message(&self) -> String {
        match self {
            ConsoleError::App(e) => e.body()["error"]["message"].as_str().unwrap_or("error").to_string(),
            other => other.to_string(),
        }
    }
}

pub type Page = Result<warp::reply::Response, ConsoleError>;

/// A request to a console page, with its session if it has a live one.
pub struct Ctx<'a> {
    pub shop: &'a Shop,
    pub req: &'a Request,
    pub session: Option<Session>,
}

impl Ctx<'_> {
    /// A signed-in operator (admin or fulfillment).
    pub fn staff(&self) -> Result<&Session, ConsoleError> {
        self.session.as_ref().ok_or(ConsoleError::SignInRequired)
    }

    pub fn admin(&self) -> Result<&Session, ConsoleError> {
        let s = self.staff()?;
        match s.role {
            Role::Admin => Ok(s),
            Role::Fulfillment => Err(ConsoleError::AdminOnly),
        }
    }

    /// The fields of a state-changing form, once its origin and CSRF token are checked.
    pub fn form(&self) -> Result<HashMap<String, String>, ConsoleError> {
        let session = self.staff()?;
        let form = self.fields();
        if !session::same_origin(&self.shop.settings, self.req) {
            return Err(ConsoleError::Csrf);
        }
        match form.get("csrf") {
            Some(token) if session.csrf_matches(token) => Ok(form),
            _ => Err(ConsoleError::Csrf),
        }
    }

    /// The url-encoded body's fields (the last of a repeated name wins).
    pub fn fields(&self) -> HashMap<String, String> {
        form_urlencoded::parse(&self.req.body).into_owned().collect()
    }

    /// A query parameter, blank as absent.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.req.query.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }
}
