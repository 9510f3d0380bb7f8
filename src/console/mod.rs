//! The operators' console: server-rendered HTML under `/console`, in the same binary, over
//! the same services the JSON handlers call (never the HTTP API). See docs/console.md.
//!
//! - [`session`]: sign-in sessions, cookies, CSRF and origin checks.
//! - [`layout`]: the page shell, the navigation, error pages, small renderers.
//! - one module per page: [`signin`], [`triage`], [`sagas`], [`saga`], [`bulk`],
//!   [`quarantine`], [`policies`], [`webhooks`], [`orders`] (with [`order_events`]), [`audit`].
//!
//! Every answer is HTML (errors too, with their status); maud escapes every value it
//! renders, and no page renders a token or a session id.

mod audit;
mod bulk;
mod layout;
mod order_events;
mod orders;
mod policies;
mod quarantine;
mod saga;
mod sagas;
pub mod session;
mod signin;
mod triage;
mod webhooks;

use std::collections::HashMap;

use warp::http::Method;

use crate::error::AppError;
use crate::http::Request;
use crate::startup::Shop;
pub use session::Sessions;
use session::{Role, Session};

pub type Reply = Result<warp::reply::Response, AppError>;

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
    App(#[from] AppError),
}

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

/// Handles every `/console...` request; the answer is always HTML (or a redirect).
pub async fn dispatch(shop: &Shop, req: &Request) -> (&'static str, Reply) {
    if !shop.settings.console.enabled {
        return ("not_found", Err(AppError::RouteNotFound(req.path.clone())));
    }
    let ctx = Ctx { shop, req, session: shop.console.current(req) };
    let (label, page) = route(&ctx).await;
    let response = match page {
        Ok(response) => response,
        Err(ConsoleError::SignInRequired) => signin::redirect_to_sign_in(&ctx),
        Err(e) => {
            if e.status() >= 500 {
                tracing::error!(error = %e, "console page failed");
            }
            let mut response = layout::error_page(&ctx, e.status(), &e.message());
            if let Some(secs) = e.retry_after_secs() {
                response.headers_mut().insert(warp::http::header::RETRY_AFTER, secs.into());
            }
            response
        }
    };
    (label, Ok(layout::secured(response)))
}

async fn route(ctx: &Ctx<'_>) -> (&'static str, Page) {
    let path = ctx.req.path.trim_end_matches('/');
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    macro_rules! page {
        ($label:expr, $call:expr) => {
            ($label, $call.await)
        };
    }
    match (ctx.req.method.clone(), segments.as_slice()) {
        (Method::GET, ["console"]) => ("console.home", signin::home(ctx)),
        (Method::GET, ["console", "style.css"]) => ("console.asset", Ok(layout::stylesheet())),
        (Method::GET, ["console", "app.js"]) => ("console.asset", Ok(layout::script())),
        (Method::GET, ["console", "favicon.svg"]) => ("console.asset", Ok(layout::favicon())),
        (Method::GET, ["console", "sign-in"]) => {
            ("console.sign_in", Ok(signin::form(ctx, 200, None, ctx.query("next"))))
        }
        (Method::POST, ["console", "sign-in"]) => page!("console.sign_in", signin::sign_in(ctx)),
        (Method::POST, ["console", "sign-out"]) => ("console.sign_out", signin::sign_out(ctx)),
        (Method::GET, ["console", "triage"]) => ("console.triage", triage::show(ctx)),
        (Method::GET, ["console", "bulk"]) => page!("console.bulk", bulk::form(ctx)),
        (Method::POST, ["console", "bulk"]) => page!("console.bulk.start", bulk::start(ctx)),
        (Method::GET, ["console", "bulk", id]) => ("console.bulk.progress", bulk::progress(ctx, id)),
        (Method::GET, ["console", "quarantine"]) => page!("console.quarantine", quarantine::list(ctx)),
        (Method::POST, ["console", "quarantine"]) => page!("console.quarantine.pause", quarantine::pause(ctx)),
        (Method::POST, ["console", "quarantine", kind, id, "release"]) => {
            page!("console.quarantine.release", quarantine::release(ctx, kind, id))
        }
        (Method::GET, ["console", "webhooks", source, id]) => ("console.webhook", webhooks::show(ctx, source, id)),
        (Method::POST, ["console", "webhooks", source, id, "replay"]) => {
            page!("console.webhook.replay", webhooks::replay(ctx, source, id))
        }
        (Method::GET, ["console", "sagas"]) => page!("console.sagas", sagas::list(ctx)),
        (Method::GET, ["console", "sagas", id]) => page!("console.saga", saga::show(ctx, id)),
        (Method::POST, ["console", "sagas", id, "resume"]) => page!("console.saga.resume", saga::resume(ctx, id)),
        (Method::POST, ["console", "sagas", id, "abort"]) => page!("console.saga.abort", saga::abort(ctx, id)),
        (Method::GET, ["console", "policies"]) => ("console.policies", policies::list(ctx)),
        (Method::POST, ["console", "policies", saga_type, step]) => {
            page!("console.policies.set", policies::set(ctx, saga_type, step))
        }
        (Method::GET, ["console", "webhooks"]) => ("console.webhooks", webhooks::list(ctx)),
        (Method::GET, ["console", "orders"]) => page!("console.orders", orders::list(ctx)),
        (Method::GET, ["console", "orders", id]) => page!("console.order", orders::show(ctx, id)),
        (Method::GET, ["console", "stock"]) => ("console.stock", orders::stock_lookup(ctx)),
        (Method::GET, ["console", "stock", id]) => page!("console.stock", orders::stock(ctx, id)),
        (Method::GET, ["console", "audit"]) => ("console.audit", audit::list(ctx)),
        _ => ("console.not_found", Err(ConsoleError::NotFound)),
    }
}
