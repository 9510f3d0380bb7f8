//! Bulk actions: resume or abort every saga a filter matches. The filter form's "Dry run"
//! shows the count, how many an abort would skip (past their point of no return) and a
//! sample; the confirm form under it starts the background action (the same
//! `BulkService` the admin API uses, with the console's operator as its actor, so every
//! saga's audit row names them), and its page follows the progress.

use std::collections::HashMap;

use maud::{html, Markup};
use serde_json::Value;

use super::layout::{self, Shell};
use super::sagas::{filter_fields, saga_types};
use super::session::Session;
use super::{ConsoleError, Ctx, Page};
use crate::http::ApiError;
use crate::operations::bulk::{BulkKind, BulkRequest};
use crate::operations::OperationError;
use crate::saga::query::{FilterParams, SagaFilter};

/// Recent bulk actions listed under the form.
const RECENT: usize = 20;
const MAX_REASON_CHARS: usize = 500;

/// The action the form asks for (resume unless it says abort).
fn kind(fields: &HashMap<String, String>) -> Result<BulkKind, ConsoleError> {
    match fields.get("action").map(String::as_str) {
        Some("resume") | None => {
            Ok(BulkKind::Resume { reset_attempts: fields.get("reset_attempts").is_some_and(|v| v == "true") })
        }
        Some("abort") => Ok(BulkKind::Abort),
        Some(_) => Err(ConsoleError::Invalid("the action is resume or abort".into())),
    }
}

/// A filter naming a state the action does not apply to is refused, as the API does.
fn check_applies(kind: BulkKind, filter: &SagaFilter) -> Result<(), ConsoleError> {
    match filter.state.filter(|s| !kind.applies_to(*s)) {
        None => Ok(()),
        Some(state) => {
            let applies = match kind {
                BulkKind::Resume { .. } => "STUCK or RETRYING",
                BulkKind::Abort => "unfinished",
            };
            Err(ConsoleError::Invalid(format!(
                "bulk {} applies to {applies} sagas, not {}",
                kind.name(),
                state.as_str()
            )))
        }
    }
}

fn reason(fields: &HashMap<String, String>) -> Option<String> {
    fields.get("reason").map(|r| r.trim().to_string()).filter(|r| !r.is_empty())
}

/// `GET /console/bulk`: the form; with `dry_run`, what the action would do and the
/// confirm form; and the recent bulk actions.
pub async fn form(ctx: &Ctx<'_>) -> Page {
    let session = ctx.admin()?;
    let params = FilterParams::from_query(&ctx.req.query);
    let filter = SagaFilter::parse(&params, &ctx.shop.sagas)?;
    let fields = ctx.req.query.clone();
    let kind = kind(&fields)?;
    let reason = reason(&fields);
    // Opening the page with any list's filter shows the form; only a dry run is refused
    // a state the action does not apply to.
    let dry_run = match ctx.query("dry_run") {
        Some(_) => {
            check_applies(kind, &filter)?;
            let request = BulkRequest { kind, filter: filter.clone(), reason: reason.clone(), actor: session.actor() };
            Some(ctx.shop.bulk.dry_run(&request).await?)
        }
        None => None,
    };
    let types = saga_types(ctx);
    let recent = ctx.shop.bulk.list(None, RECENT)?;
    let is_abort = kind == BulkKind::Abort;
    let reset = matches!(kind, BulkKind::Resume { reset_attempts: true });
    let content = html! {
        form.filter method="get" action="/console/bulk" {
            (filter_fields(&types, &params, filter.state))
            label { "Action"
                select name="action" {
                    option value="resume" selected[!is_abort] { "resume" }
                    option value="abort" selected[is_abort] { "abort" }
                }
            }
            label { input type="checkbox" name="reset_attempts" value="true" checked[reset]; " reset attempts (resume)" }
            label { "Reason (abort)" input type="text" name="reason" maxlength="500" value=(reason.clone().unwrap_or_default()); }
            button.primary type="submit" name="dry_run" value="1" { "Dry run" }
        }
        @if let Some(d) = &dry_run { (dry_run_result(ctx, session, d, kind, reason.as_deref())) }
        h2 { "Recent bulk actions" }
        (recent_table(&recent))
    };
    Ok(layout::html_response(200, layout::page(ctx, "Bulk actions", Shell::default(), content)))
}

fn dry_run_result(ctx: &Ctx<'_>, session: &Session, d: &Value, kind: BulkKind, reason: Option<&str>) -> Markup {
    let matched = d["matched"].as_u64().unwrap_or(0);
    let verb = match kind {
        BulkKind::Resume { .. } => "Resume",
        BulkKind::Abort => "Abort",
    };
    let sample = d["sample"].as_array().cloned().unwrap_or_default();
    // The confirm form carries the filter the dry run used, as the query gave it.
    let carried: Vec<(&String, &String)> = ctx
        .req
        .query
        .iter()
        .filter(|(k, v)| !matches!(k.as_str(), "dry_run" | "reason" | "csrf") && !v.is_empty())
        .collect();
    html! {
        div.panel #dry-run {
            h2 { "Dry run" }
            p {
                strong { (matched) } " saga(s) match"
                @if d["capped"] == Value::Bool(true) { " (capped at " (layout::text(&d["cap"])) ": only the first are acted on)" }
                "."
                @if let Some(n) = d["past_point_of_no_return"].as_u64() {
                    " " strong { (n) } " of them would be skipped: past their point of no return."
                }
            }
            @if !sample.is_empty() {
                table #bulk-sample {
                    thead { tr { th { "Saga" } th { "Type" } th { "State" } th { "Current step" } th { "Last error" } } }
                    tbody {
                        @for s in &sample {
                            tr {
                                td { a.id href=(format!("/console/sagas/{}", s["saga_id"].as_str().unwrap_or(""))) { (layout::text(&s["saga_id"])) } }
                                td { (layout::text(&s["type"])) }
                                td { (layout::text(&s["state"])) }
                                td { (layout::text(&s["current_step"])) }
                                td { (layout::text(&s["last_error"])) }
                            }
                        }
                    }
                }
            }
            @if matched > 0 {
                form method="post" action="/console/bulk" data-confirm=(format!("{verb} {matched} sagas?")) {
                    (layout::csrf(session))
                    @for (k, v) in &carried { input type="hidden" name=(k) value=(v); }
                    @if kind == BulkKind::Abort {
                        label { "Reason (recorded with each saga and in the audit log)"
                            input type="text" name="reason" required maxlength="500" value=(reason.unwrap_or_default());
                        }
                    }
                    p { button.danger type="submit" { (verb) " these " (matched) " sagas" } }
                }
            }
        }
    }
}

fn recent_table(recent: &Value) -> Markup {
    let actions = recent["bulk_actions"].as_array().cloned().unwrap_or_default();
    html! {
        @if actions.is_empty() {
            p.muted { "None yet." }
        } @else {
            table #bulk-recent {
                thead { tr { th { "Started" } th { "Action" } th { "By" } th { "State" } th { "Matched" } th { "Done" } th { "Skipped" } th { "Failed" } } }
                tbody {
                    @for a in &actions {
                        tr {
                            td { a href=(format!("/console/bulk/{}", a["bulk_action_id"].as_str().unwrap_or(""))) { (layout::text(&a["created_at"])) } }
                            td { (layout::text(&a["action"])) }
                            td { (layout::text(&a["actor"])) }
                            td { (layout::text(&a["state"])) }
                            td { (layout::text(&a["matched"])) }
                            td { (layout::text(&a["done"])) }
                            td { (layout::text(&a["skipped"])) }
                            td { (layout::text(&a["failed"])) }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /console/bulk`: starts the action in the background and shows its progress.
pub async fn start(ctx: &Ctx<'_>) -> Page {
    let session = ctx.admin()?;
    let fields = ctx.form()?;
    let filter = SagaFilter::parse(&FilterParams::from_query(&fields), &ctx.shop.sagas)?;
    let kind = kind(&fields)?;
    check_applies(kind, &filter)?;
    let reason = reason(&fields);
    if kind == BulkKind::Abort && reason.as_ref().is_none_or(|r| r.chars().count() > MAX_REASON_CHARS) {
        return Err(ConsoleError::Invalid("a bulk abort needs a reason of 1 to 500 characters".into()));
    }
    let reason = reason.filter(|_| kind == BulkKind::Abort);
    let action = ctx.shop.bulk.start(BulkRequest { kind, filter, reason, actor: session.actor() }).await?;
    Ok(layout::redirect(&format!("/console/bulk/{}", action.id)))
}

/// `GET /console/bulk/{id}`: one action's progress; reloads itself while it runs.
pub fn progress(ctx: &Ctx<'_>, id: &str) -> Page {
    ctx.admin()?;
    let id: uuid::Uuid = id.parse().map_err(|_| ConsoleError::App(OperationError::BulkActionNotFound.into()))?;
    let action = ctx.shop.bulk.get(id)?.ok_or(ApiError::from(OperationError::BulkActionNotFound))?;
    let a = action.to_json();
    let running = action.state == "running";
    let problems = a["problems"].as_array().cloned().unwrap_or_default();
    let content = html! {
        div.panel {
            dl.facts {
                dt { "Action" } dd { (action.action) @if action.reset_attempts { " (attempts reset)" } }
                dt { "By" } dd { (action.actor) }
                dt { "Filter" } dd { code { (a["filter"].to_string()) } }
                @if let Some(r) = &action.reason { dt { "Reason" } dd { (r) } }
                dt { "Started" } dd { (layout::time(Some(action.created_at))) }
                dt { "Finished" } dd { (layout::time(action.finished_at)) }
                @if let Some(e) = &action.error { dt { "Error" } dd.error { (e) } }
            }
        }
        table data-testid="bulk-progress" id="bulk-progress" {
            thead { tr { th { "State" } th { "Matched" } th { "Done" } th { "Skipped" } th { "Failed" } } }
            tbody {
                tr {
                    td.state data-field="state" { (action.state) }
                    td data-field="matched" { (action.matched) @if action.capped { " (capped)" } }
                    td data-field="done" { (action.done) }
                    td data-field="skipped" { (action.skipped) }
                    td data-field="failed" { (action.failed) }
                }
            }
        }
        @if !problems.is_empty() {
            h2 { "Not done" }
            table {
                thead { tr { th { "Saga" } th { "Result" } th { "Why" } } }
                tbody {
                    @for p in &problems {
                        tr {
                            td { a.id href=(format!("/console/sagas/{}", p["saga_id"].as_str().unwrap_or(""))) { (layout::text(&p["saga_id"])) } }
                            td { (layout::text(&p["result"])) }
                            td { (layout::text(&p["reason"])) }
                        }
                    }
                }
            }
        }
        p { a href="/console/bulk" { "All bulk actions" } }
    };
    Ok(layout::html_response(200, layout::page(ctx, "Bulk action", Shell { refresh: running }, content)))
}
