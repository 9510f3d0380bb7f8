//! The page shell (navigation, who is signed in, sign-out), error pages, the stylesheet and
//! script served from the binary, and small renderers shared by the pages.

use maud::{html, Markup, DOCTYPE};
use serde_json::Value;
use warp::http::{HeaderValue, StatusCode};
use warp::Reply as _;

use super::session::{Role, Session};
use super::Ctx;
use crate::domain::time::Timestamp;

/// One entry of the navigation. Adding a page to the menu is one line here.
struct NavItem {
    path: &'static str,
    label: &'static str,
    admin_only: bool,
}

const NAV: &[NavItem] = &[
    NavItem { path: "/console/triage", label: "Triage", admin_only: true },
    NavItem { path: "/console/sagas", label: "Sagas", admin_only: true },
    NavItem { path: "/console/bulk", label: "Bulk actions", admin_only: true },
    NavItem { path: "/console/quarantine", label: "Quarantine", admin_only: true },
    NavItem { path: "/console/policies", label: "Retry policies", admin_only: true },
    NavItem { path: "/console/webhooks", label: "Webhooks", admin_only: true },
    NavItem { path: "/console/orders", label: "Orders", admin_only: false },
    NavItem { path: "/console/stock", label: "Stock", admin_only: true },
    NavItem { path: "/console/audit", label: "Audit", admin_only: true },
    NavItem { path: "/console/cluster", label: "Cluster", admin_only: true },
];

/// Where `/console` sends a role: the first page of the menu it may see.
pub fn landing(role: Role) -> &'static str {
    NAV.iter().find(|i| role == Role::Admin || !i.admin_only).map_or("/console/orders", |i| i.path)
}

/// A page's options beyond its title and content.
#[derive(Default)]
pub struct Shell {
    /// Lists that follow live state reload themselves (about every 10 s, pausable).
    pub refresh: bool,
}

/// A whole page: head, navigation for the signed-in role, the content.
pub fn page(ctx: &Ctx<'_>, title: &str, shell: Shell, content: Markup) -> Markup {
    let session = ctx.session.as_ref();
    let current = ctx.req.path.as_str();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Cartwright console" }
                link rel="stylesheet" href="/console/style.css";
                // Named, or every browser asks for /favicon.ico and logs its 404.
                link rel="icon" href="/console/favicon.svg" type="image/svg+xml";
                script src="/console/app.js" defer {}
            }
            body data-refresh=[shell.refresh.then_some("10")] {
                header {
                    a.brand href="/console" { "Cartwright" }
                    @if let Some(s) = session {
                        nav {
                            @for item in NAV.iter().filter(|i| s.role == Role::Admin || !i.admin_only) {
                                a href=(item.path) aria-current=[current.starts_with(item.path).then_some("page")] {
                                    (item.label)
                                }
                            }
                        }
                        (who(s))
                    }
                }
                main {
                    h1 { (title) }
                    @if shell.refresh {
                        p.refresh {
                            a href=(refresh_href(ctx)) { "Refresh" }
                            " "
                            button #refresh-toggle type="button" hidden { "Pause auto-refresh" }
                        }
                    }
                    (content)
                }
            }
        }
    }
}

fn refresh_href(ctx: &Ctx<'_>) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(ctx.req.query.iter()).finish();
    if query.is_empty() {
        ctx.req.path.clone()
    } else {
        format!("{}?{query}", ctx.req.path)
    }
}

fn who(s: &Session) -> Markup {
    html! {
        div.who {
            "Signed in as " strong { (s.role.name()) }
            @if let Some(name) = &s.operator { " (" (name) ")" }
            form method="post" action="/console/sign-out" {
                (csrf(s))
                button type="submit" { "Sign out" }
            }
        }
    }
}

/// The hidden field every state-changing form carries.
pub fn csrf(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

pub fn html_response(status: u16, markup: Markup) -> warp::reply::Response {
    let mut r = warp::reply::html(markup.into_string()).into_response();
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// `303 See Other` to `location` (after a form, so that reloading does not post it again).
pub fn redirect(location: &str) -> warp::reply::Response {
    let mut r = warp::reply::with_status(warp::reply(), StatusCode::SEE_OTHER).into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert("location", v);
    }
    r
}

pub fn error_page(ctx: &Ctx<'_>, status: u16, message: &str) -> warp::reply::Response {
    let title = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
    let content = html! {
        p.error { (message) }
        p { a href="/console" { "Back to the console" } }
    };
    html_response(status, page(ctx, title, Shell::default(), content))
}

/// Headers every console answer carries: only our own script and stylesheet may run, no
/// framing, no caching of pages that show operational data, no sniffing.
pub fn secured(mut r: warp::reply::Response) -> warp::reply::Response {
    let h = r.headers_mut();
    let set = |h: &mut warp::http::HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "same-origin");
    if !h.contains_key("cache-control") {
        set(h, "cache-control", "no-store");
    }
    r
}

fn asset(body: &'static str, content_type: &'static str) -> warp::reply::Response {
    let mut r = warp::reply::with_header(body, "content-type", content_type).into_response();
    r.headers_mut().insert("cache-control", HeaderValue::from_static("max-age=300"));
    r
}

pub fn stylesheet() -> warp::reply::Response {
    asset(include_str!("assets/style.css"), "text/css; charset=utf-8")
}

pub fn favicon() -> warp::reply::Response {
    asset(include_str!("assets/favicon.svg"), "image/svg+xml")
}

pub fn script() -> warp::reply::Response {
    asset(include_str!("assets/app.js"), "text/javascript; charset=utf-8")
}

pub fn time(at: Option<Timestamp>) -> Markup {
    match at {
        Some(t) => html! { time datetime=(t.rfc3339()) { (t.rfc3339()) } },
        None => html! { span.none { "—" } },
    }
}

/// A JSON value as indented text, escaped like everything else.
pub fn json_block(v: &Value) -> Markup {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    html! { pre.json { (text) } }
}

/// A JSON string field as text (`—` when absent).
pub fn text(v: &Value) -> Markup {
    match v {
        Value::Null => html! { span.none { "—" } },
        Value::String(s) => html! { (s) },
        other => html! { (other.to_string()) },
    }
}

/// A link keeping the current filter and moving the cursor: what makes paging bookmarkable.
pub fn next_page(ctx: &Ctx<'_>, cursor: &Value) -> Markup {
    let cursor = match cursor {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return html! {},
    };
    let pairs = ctx.req.query.iter().filter(|(k, v)| k.as_str() != "cursor" && !v.is_empty());
    let query: String =
        form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).append_pair("cursor", &cursor).finish();
    html! { p.paging { a href=(format!("{}?{query}", ctx.req.path)) { "Next page →" } } }
}

/// A notice after a form was applied (`?done=`), from a fixed list: nothing from the URL is
/// echoed as a message.
pub fn notice(ctx: &Ctx<'_>, known: &[(&str, &str)]) -> Markup {
    let done = ctx.query("done");
    match known.iter().find(|(k, _)| Some(*k) == done) {
        Some((_, text)) => html! { p.notice role="status" { (text) } },
        None => html! {},
    }
}
