//! Signing in with a staff token (exchanged for a session cookie) and out again.

use maud::html;
use warp::http::HeaderValue;

use super::layout::{self, Shell};
use super::session::{self, Role};
use super::{ConsoleError, Ctx, Page};
use crate::domain::text::{is_visible_text, Layout};
use crate::services::token_hash;

/// `/console`: the first page the signed-in role may see.
pub fn home(ctx: &Ctx<'_>) -> Page {
    let s = ctx.staff()?;
    Ok(layout::redirect(layout::landing(s.role)))
}

/// Where a GET without a session goes: the sign-in page, which sends it back after.
pub fn redirect_to_sign_in(ctx: &Ctx<'_>) -> warp::reply::Response {
    if ctx.req.method != warp::http::Method::GET {
        return layout::redirect("/console/sign-in");
    }
    let mut back = ctx.req.path.clone();
    if !ctx.req.query.is_empty() {
        back.push('?');
        back.push_str(&form_urlencoded::Serializer::new(String::new()).extend_pairs(ctx.req.query.iter()).finish());
    }
    let query = form_urlencoded::Serializer::new(String::new()).append_pair("next", &back).finish();
    layout::redirect(&format!("/console/sign-in?{query}"))
}

/// A place to return to after signing in: a console path of ours, nothing else (no open
/// redirect through `next`).
fn safe_next(next: Option<&str>) -> Option<&str> {
    next.filter(|n| {
        n.starts_with("/console/") && !n.contains("//") && !n.contains('\\') && n.chars().all(|c| !c.is_control())
    })
}

/// The sign-in page; `next` is where to go after it (kept only if it is a console path).
pub fn form(ctx: &Ctx<'_>, status: u16, problem: Option<&str>, next: Option<&str>) -> warp::reply::Response {
    let next = safe_next(next);
    let content = html! {
        div.sign-in.panel {
            @if let Some(p) = problem { p.error role="alert" { (p) } }
            form method="post" action="/console/sign-in" {
                label { "Staff token (admin or fulfillment)"
                    input type="password" name="token" required autocomplete="off" autofocus;
                }
                label { "Your name (optional; shown in pages and recorded in the audit log)"
                    input type="text" name="name" maxlength="64" autocomplete="name";
                }
                @if let Some(n) = next { input type="hidden" name="next" value=(n); }
                button.primary type="submit" { "Sign in" }
            }
        }
    };
    layout::html_response(status, layout::page(ctx, "Sign in", Shell::default(), content))
}

pub async fn sign_in(ctx: &Ctx<'_>) -> Page {
    if !session::same_origin(&ctx.shop.settings, ctx.req) {
        return Err(ConsoleError::Csrf);
    }
    ctx.shop.console.check_sign_in(ctx.req.remote.map(|a| a.ip()))?;
    let fields = ctx.fields();
    let next = fields.get("next").map(String::as_str);
    let token = fields.get("token").map(|t| t.trim()).unwrap_or_default();
    let digest = token_hash(token);
    let role = if token.is_empty() {
        None
    } else if digest == ctx.shop.staff_tokens.admin {
        Some(Role::Admin)
    } else if digest == ctx.shop.staff_tokens.fulfillment {
        Some(Role::Fulfillment)
    } else {
        None
    };
    let Some(role) = role else {
        tracing::info!("console sign-in refused");
        return Ok(form(ctx, 401, Some("That token is not a staff token."), next));
    };
    let operator = match fields.get("name").map(|n| n.trim()).filter(|n| !n.is_empty()) {
        None => None,
        Some(n) if n.chars().count() <= 64 && is_visible_text(n, Layout::SingleLine) => Some(n.to_string()),
        Some(_) => {
            let problem = "A name is at most 64 characters, without control characters.";
            return Ok(form(ctx, 400, Some(problem), next));
        }
    };
    tracing::info!(role = role.name(), operator = operator.as_deref().unwrap_or(""), "console sign-in");
    let id = ctx.shop.console.create(role, operator).await?;
    let next = safe_next(next).unwrap_or(layout::landing(role));
    let mut r = layout::redirect(next);
    let cookie = session::set_cookie(&id, ctx.shop.console.ttl(), session::behind_tls(&ctx.shop.settings, ctx.req));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert("set-cookie", v);
    }
    Ok(r)
}

pub async fn sign_out(ctx: &Ctx<'_>) -> Page {
    ctx.form()?;
    session::end(&ctx.shop.console, ctx.req).await?;
    let mut r = layout::redirect("/console/sign-in");
    let cookie = session::clear_cookie(session::behind_tls(&ctx.shop.settings, ctx.req));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert("set-cookie", v);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_only_ever_a_console_path() {
        assert_eq!(safe_next(Some("/console/sagas?state=STUCK")), Some("/console/sagas?state=STUCK"));
        for bad in [
            "//evil.example/",
            "https://evil.example/console/",
            "/console//evil",
            "/console\\x",
            "/admin/v1/sagas",
            "/console/\nx",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad}");
        }
    }
}
