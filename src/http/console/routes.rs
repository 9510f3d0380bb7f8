//! The console's page table: every (method, path) with its page, and the dispatch that turns a
//! page's error into an HTML answer. Pages depend on [`super`] (the context and error types),
//! never on this table.

use warp::http::Method;

use super::{audit, bulk, cluster, layout, orders, policies, quarantine, saga, sagas, signin, triage, webhooks};
use super::{ConsoleError, Ctx, Page};
use crate::http::ApiError;
use crate::server::Request;
use crate::startup::Shop;

pub type Reply = Result<warp::reply::Response, ApiError>;

/// Handles every `/console...` request; the answer is always HTML (or a redirect).
pub async fn dispatch(shop: &Shop, req: &Request) -> (&'static str, Reply) {
    if !shop.settings.console.enabled {
        return ("not_found", Err(crate::http::HttpError::RouteNotFound(req.path.clone()).into()));
    }
    let (session, failed) = match super::session::current(&shop.console, req) {
        Ok(session) => (session, None),
        Err(e) => (None, Some(e)),
    };
    let ctx = Ctx { shop, req, session };
    // A session the store could not be asked about: the page says so (never "sign in").
    let (label, page) = match failed {
        Some(e) => ("console.session", Err(e.into())),
        None => route(&ctx).await,
    };
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
        (Method::POST, ["console", "sign-out"]) => page!("console.sign_out", signin::sign_out(ctx)),
        (Method::GET, ["console", "triage"]) => page!("console.triage", triage::show(ctx)),
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
        (Method::GET, ["console", "cluster"]) => ("console.cluster", cluster::show(ctx)),
        _ => ("console.not_found", Err(ConsoleError::NotFound)),
    }
}
