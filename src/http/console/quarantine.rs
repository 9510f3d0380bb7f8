//! Quarantine: the paused keys (who paused them, when, why), each with its release button,
//! and the form that pauses one. The stock and order pages embed [`key_panel`] for their
//! key. Pausing and releasing go through `QuarantineService`, which writes the audit rows
//! naming the console's operator and resumes the sagas parked on a released key.

use maud::{html, Markup};

use super::layout::{self, Shell};
use super::session::Session;
use super::{ConsoleError, Ctx, Page};
use crate::domain::quarantine::{self, KeyKind, QuarantineEntry, QuarantineKey};

const NOTICES: &[(&str, &str)] = &[
    ("paused", "Paused: commands to that key are refused, and sagas reaching it park PAUSED."),
    ("released", "Released: the sagas parked on that key run again."),
];

pub async fn list(ctx: &Ctx<'_>) -> Page {
    let session = ctx.admin()?;
    let entries = ctx.shop.quarantine.list().await?;
    let content = html! {
        (layout::notice(ctx, NOTICES))
        h2 { "Pause a key" }
        form.filter method="post" action="/console/quarantine" {
            (layout::csrf(session))
            label { "Kind"
                select name="kind" {
                    @for k in KeyKind::ALL { option value=(k.as_str()) { (k.as_str()) } }
                }
            }
            label { "Id (a customer id for a cart, an order id, a product id)" input type="text" name="id" size="40" required; }
            label { "Reason" input type="text" name="reason" maxlength="500" required; }
            button.danger type="submit" { "Pause" }
        }
        h2 { "Paused keys" }
        @if entries.is_empty() {
            p.muted { "No key is paused." }
        } @else {
            table data-testid="quarantine-list" id="quarantine-list" {
                thead { tr { th { "Kind" } th { "Key" } th { "Paused by" } th { "Since" } th { "Reason" } th {} } }
                tbody {
                    @for e in &entries {
                        tr {
                            td { (e.key.kind.as_str()) }
                            td { a.id href=(key_page(&e.key)) { (e.key.id) } }
                            td { (e.paused_by) }
                            td { (layout::time(Some(e.paused_at))) }
                            td { (e.reason) }
                            td { (release_form(session, &e.key, None)) }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::html_response(200, layout::page(ctx, "Quarantine", Shell::default(), content)))
}

/// Where a key's own console page is (a cart has none: the saga list of its customer).
fn key_page(key: &QuarantineKey) -> String {
    match key.kind {
        KeyKind::Order => format!("/console/orders/{}", key.id),
        KeyKind::Inventory => format!("/console/stock/{}", key.id),
        KeyKind::Cart => format!("/console/sagas?customer_id={}", key.id),
    }
}

fn release_form(session: &Session, key: &QuarantineKey, back: Option<&str>) -> Markup {
    html! {
        form.inline method="post" action=(format!("/console/quarantine/{}/{}/release", key.kind.as_str(), key.id))
            data-confirm="Release this key? The sagas parked on it run again." {
            (layout::csrf(session))
            @if let Some(b) = back { input type="hidden" name="back" value=(b); }
            button.primary type="submit" { "Release" }
        }
    }
}

/// Whether `key` is paused, with the form that pauses or releases it; for the pages of the
/// things a key stands for (an order, a product's stock). `back` is that page.
pub async fn key_panel(
    ctx: &Ctx<'_>,
    session: &Session,
    key: QuarantineKey,
    back: &str,
) -> Result<Markup, ConsoleError> {
    let entry: Option<QuarantineEntry> = ctx.shop.quarantine.list().await?.into_iter().find(|e| e.key == key);
    Ok(html! {
        h2 { "Quarantine" }
        div.panel #quarantine {
            @match &entry {
                Some(e) => {
                    p { strong { "Paused" } " by " (e.paused_by) " since " (layout::time(Some(e.paused_at))) ": " (e.reason) }
                    (release_form(session, &key, Some(back)))
                },
                None => {
                    p { "Not paused." }
                    form.inline method="post" action="/console/quarantine" {
                        (layout::csrf(session))
                        input type="hidden" name="kind" value=(key.kind.as_str());
                        input type="hidden" name="id" value=(key.id.to_string());
                        input type="hidden" name="back" value=(back);
                        label { "Reason" input type="text" name="reason" maxlength="500" required; }
                        button.danger type="submit" { "Pause" }
                    }
                },
            }
        }
    })
}

/// Where to go after a form: the page it came from when that is a console page (never
/// another site), else the quarantine list with a notice.
fn after(back: Option<&String>, done: &str) -> String {
    match back {
        Some(b) if b.starts_with("/console/") && !b.contains("//") && !b.contains('\\') => b.clone(),
        _ => format!("/console/quarantine?done={done}"),
    }
}

fn key_of(kind: &str, id: &str) -> Result<QuarantineKey, ConsoleError> {
    let kind =
        KeyKind::parse(kind).ok_or_else(|| ConsoleError::Invalid("the kind is cart, order or inventory".into()))?;
    let id = uuid::Uuid::parse_str(id.trim()).map_err(|_| {
        ConsoleError::Invalid("the id is a UUID (a customer id for a cart, an order id, a product id)".into())
    })?;
    Ok(QuarantineKey::new(kind, id))
}

/// `POST /console/quarantine` `kind, id, reason[, back]`.
pub async fn pause(ctx: &Ctx<'_>) -> Page {
    let session = ctx.admin()?;
    let form = ctx.form()?;
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let key = key_of(field("kind"), field("id"))?;
    let reason = quarantine::reason(field("reason")).map_err(ConsoleError::Invalid)?;
    ctx.shop.quarantine.pause(key, reason, &session.actor()).await?;
    Ok(layout::redirect(&after(form.get("back"), "paused")))
}

/// `POST /console/quarantine/{kind}/{id}/release` `[back]`.
pub async fn release(ctx: &Ctx<'_>, kind: &str, id: &str) -> Page {
    let session = ctx.admin()?;
    let form = ctx.form()?;
    let key = key_of(kind, id)?;
    ctx.shop.quarantine.release(key, &session.actor()).await?;
    Ok(layout::redirect(&after(form.get("back"), "released")))
}
