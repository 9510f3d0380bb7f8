//! One saga: its whole timeline, why it is where it is, its input and step outputs, its
//! order, and the operator's actions (resume, resume with attempts reset, abort with a
//! reason after seeing exactly which compensations will run). Actions are audited with
//! the operator who did them.

use maud::{html, Markup};
use serde_json::{json, Value};

use super::layout::{self, Shell};
use super::session::Session;
use super::{ConsoleError, Ctx, Page};
use crate::domain::ids::SagaId;
use crate::domain::time::Timestamp;
use crate::http::ApiError;
use crate::operations::saga_audit;
use crate::saga::instance::{Phase, Work};
use crate::saga::{SagaError, SagaInstance, SagaState};
use crate::services::audit;

const NOTICES: &[(&str, &str)] = &[
    ("resumed", "Resumed: the parked work runs now."),
    ("resumed_reset", "Resumed with its attempts reset: the parked work runs now."),
    ("aborted", "Abort accepted: the compensations run (or will, once the work in flight ends)."),
];

fn saga_id(id: &str) -> Result<SagaId, ConsoleError> {
    id.parse().map_err(|_| ConsoleError::App(SagaError::NotFound.into()))
}

pub async fn show(ctx: &Ctx<'_>, id: &str) -> Page {
    let session = ctx.admin()?;
    let id = saga_id(id)?;
    let saga = ctx.shop.sagas.get(id).await?.ok_or(ApiError::from(SagaError::NotFound))?;
    let preview = ctx.shop.sagas.abort_preview(id).await?;
    let order_exists = match saga.order_id {
        Some(o) => ctx.shop.orders.get_committed(o)?.is_some(),
        None => false,
    };
    let content = html! {
        (layout::notice(ctx, NOTICES))
        (facts(&saga, order_exists))
        h2 { "Why it is here" }
        (why(&saga))
        h2 { "Actions" }
        (actions(session, &saga, &preview))
        h2 { "Timeline" }
        (timeline(&saga))
        h2 { "Input" }
        (layout::json_block(&saga.input_json()))
        h2 { "Step outputs" }
        (layout::json_block(&saga.data_json()))
    };
    let title = format!("Saga {}", saga.saga_type);
    Ok(layout::html_response(200, layout::page(ctx, &title, Shell::default(), content)))
}

/// `order_exists`: a checkout names its order before its create_order step makes it.
fn facts(saga: &SagaInstance, order_exists: bool) -> Markup {
    html! {
        div.panel {
            dl.facts {
                dt { "Saga id" } dd.id { (saga.saga_id) }
                dt { "Type" } dd { (saga.saga_type) " (definition v" (saga.definition_version) ")" }
                dt { "State" } dd { span class=(format!("state state-{}", saga.state.as_str())) { (saga.state.as_str()) } }
                dt { "Order" } dd {
                    @match saga.order_id {
                        Some(o) => {
                            a.id href=(format!("/console/orders/{o}")) { (o) }
                            @if !order_exists { span.muted { " (not created yet)" } }
                        },
                        None => span.none { "—" },
                    }
                }
                @if let Some(c) = saga.customer_id { dt { "Customer" } dd.id { (c) } }
                dt { "Created" } dd { (layout::time(Some(saga.created_at))) }
                dt { "Updated" } dd { (layout::time(Some(saga.updated_at))) }
                @if let Some(r) = &saga.abort_reason { dt { "Abort reason" } dd { (r) } }
                @if let Some(e) = &saga.error { dt { "Error" } dd.error { (e.code) ": " (e.message) } }
            }
        }
    }
}

/// The current work, what happened to it last, and what happens next.
fn why(saga: &SagaInstance) -> Markup {
    let work = saga.current();
    let doing = match saga.phase {
        Phase::Forward => "step",
        Phase::Compensating => "compensation",
    };
    let summary = match saga.state {
        SagaState::Running => "A coordinator is running its current work now.",
        SagaState::Retrying => "Its current work failed and waits for its next attempt (resume runs it now).",
        SagaState::Compensating => "It is undoing what it did, compensation by compensation.",
        SagaState::Stuck => "It needs an operator: its current work used up its attempts or cannot be undone.",
        SagaState::Completed => "It completed; nothing is left to do.",
        SagaState::Failed => "It failed and was compensated.",
        SagaState::Aborted => "An operator aborted it; it was compensated.",
        SagaState::Paused => {
            "Its current work touches a quarantined key: it waits, without using attempts, until the key is \
             released (resume tries now; it parks again while the key is paused)."
        }
    };
    html! {
        div.panel {
            p { (summary) }
            @if let (Some(w), false) = (work, saga.state.is_terminal()) {
                dl.facts {
                    dt { "Current " (doing) } dd { (w.name) }
                    dt { "Attempts" } dd { (w.attempts) " of " (w.policy.max_attempts) " allowed by its retry policy" }
                    dt { "Last error" } dd { @match &w.last_error { Some(e) => span.error { (e) }, None => span.none { "—" } } }
                    dt { "Next attempt" } dd { (next_attempt(saga, w)) }
                    @if let Some(key) = saga.paused_on {
                        dt { "Paused on" } dd {
                            (key.kind.as_str()) " " span.id { (key.id) }
                            " (" a href="/console/quarantine" { "quarantine" } ")"
                        }
                    }
                }
            }
        }
    }
}

fn next_attempt(saga: &SagaInstance, w: &Work) -> Markup {
    match (saga.state, w.next_attempt_at) {
        (SagaState::Retrying, Some(at)) => {
            let secs = (at.0 - Timestamp::now().0).max(0) / 1000;
            html! { (layout::time(Some(at))) " (in about " (secs) " s)" }
        }
        (SagaState::Stuck, _) => html! { "none: it waits for an operator" },
        (SagaState::Paused, _) => html! { "when the key it is paused on is released" },
        _ => html! { span.none { "—" } },
    }
}

/// Resume while it is parked; abort only as the preview allows, listing what will run.
fn actions(session: &Session, saga: &SagaInstance, preview: &Value) -> Markup {
    let resumable = matches!(saga.state, SagaState::Stuck | SagaState::Retrying | SagaState::Paused);
    let action = |what: &str| format!("/console/sagas/{}/{what}", saga.saga_id);
    let compensations = preview["compensations"].as_array().cloned().unwrap_or_default();
    html! {
        div.panel {
            @if resumable {
                div.row {
                    form.inline method="post" action=(action("resume")) {
                        (layout::csrf(session))
                        button.primary type="submit" { "Resume now" }
                    }
                    form.inline method="post" action=(action("resume")) data-confirm="Resume with the attempt count set back to zero?" {
                        (layout::csrf(session))
                        input type="hidden" name="reset_attempts" value="true";
                        button type="submit" { "Resume with attempts reset" }
                    }
                }
            } @else {
                p.muted { "Resume applies to STUCK, RETRYING or PAUSED sagas; this one is " (saga.state.as_str()) "." }
            }
            @if preview["allowed"] == json!(true) {
                h3 { "Abort" }
                @if compensations.is_empty() {
                    p { "Aborting runs no compensation: nothing it did needs undoing." }
                } @else {
                    p { "Aborting runs these compensations, in this order:" }
                    ol {
                        @for c in &compensations {
                            li { code { (layout::text(&c["compensation"])) } " (undoes " code { (layout::text(&c["step"])) } ")" }
                        }
                    }
                }
                form method="post" action=(action("abort")) data-confirm="Abort this saga? The compensations listed run and it ends ABORTED." {
                    (layout::csrf(session))
                    label { "Reason (recorded with the saga and in the audit log)"
                        textarea name="reason" required maxlength="500" rows="2" {}
                    }
                    p { button.danger type="submit" { "Abort" } }
                }
            } @else if !saga.state.is_terminal() {
                h3 { "Abort" }
                p { "It cannot be aborted: " (layout::text(&preview["reason"])) }
            }
        }
    }
}

fn timeline(saga: &SagaInstance) -> Markup {
    html! {
        p.muted { "Each step and compensation: its attempts, when it first started and finished, its last error. Every failed attempt is listed below it." }
        table {
            thead { tr { th { "Work" } th { "State" } th { "Attempts" } th { "Started" } th { "Finished" } th { "Duration" } th { "Last error" } } }
            tbody {
                @for (i, r) in saga.steps.iter().enumerate() {
                    (work_row(&r.step, i as u32 == saga.cursor && saga.phase == Phase::Forward, false))
                    (failed_attempts(saga, &r.step.name, false))
                    @if let Some(c) = &r.compensation {
                        (work_row(c, i as u32 == saga.cursor && saga.phase == Phase::Compensating, true))
                        (failed_attempts(saga, &c.name, true))
                    }
                }
            }
        }
    }
}

/// One row per failed attempt of a work: its number, start, duration, kind and error.
fn failed_attempts(saga: &SagaInstance, work: &str, compensation: bool) -> Markup {
    let attempts = saga.failed_attempts.iter().filter(|f| f.work == work && f.compensation == compensation);
    html! {
        @for f in attempts {
            tr.attempt {
                td { "attempt " (f.attempt) " failed" }
                td { span class="state state-FAILED" { (f.kind) } }
                td {}
                td { (layout::time(f.started_at)) }
                td { (layout::time(Some(f.finished_at))) }
                td { @match f.started_at { Some(s) => (format!("{:.3} s", (f.finished_at.0 - s.0).max(0) as f64 / 1000.0)), None => span.none { "—" } } }
                td { span.error { (f.error) } }
            }
        }
    }
}

fn work_row(w: &Work, current: bool, compensation: bool) -> Markup {
    let duration = match (w.started_at, w.finished_at) {
        (Some(s), Some(f)) => Some(format!("{:.3} s", (f.0 - s.0).max(0) as f64 / 1000.0)),
        _ => None,
    };
    html! {
        tr class=[compensation.then_some("compensation")] {
            td {
                @if compensation { "↳ compensation " }
                code { (w.name) }
                @if current { " ◀ current" }
            }
            td { span class=(format!("state state-{}", w.state.as_str())) { (w.state.as_str()) } }
            td { (w.attempts) " / " (w.policy.max_attempts) }
            td { (layout::time(w.started_at)) }
            td { (layout::time(w.finished_at)) }
            td { @match duration { Some(d) => (d), None => span.none { "—" } } }
            td { @if let Some(e) = &w.last_error { span.error { (e) } } }
        }
    }
}

pub async fn resume(ctx: &Ctx<'_>, id: &str) -> Page {
    let session = ctx.admin()?;
    let form = ctx.form()?;
    let id = saga_id(id)?;
    let reset = form.get("reset_attempts").is_some_and(|v| v == "true");
    let before = ctx.shop.sagas.get(id).await?.ok_or(ApiError::from(SagaError::NotFound))?;
    let outcome = ctx.shop.sagas.resume(id, reset).await;
    let extra = json!({ "reset_attempts": reset });
    let row = saga_audit::saga_action(&session.actor(), "saga.resume", id, Some(before.state), &outcome, extra);
    audit::record(&ctx.shop.store, row).await?;
    outcome?;
    let done = if reset { "resumed_reset" } else { "resumed" };
    Ok(layout::redirect(&format!("/console/sagas/{id}?done={done}")))
}

pub async fn abort(ctx: &Ctx<'_>, id: &str) -> Page {
    let session = ctx.admin()?;
    let form = ctx.form()?;
    let id = saga_id(id)?;
    let reason = form.get("reason").map(|r| r.trim()).unwrap_or_default();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ConsoleError::Invalid("an abort needs a reason of 1 to 500 characters".into()));
    }
    let before = ctx.shop.sagas.get(id).await?.ok_or(ApiError::from(SagaError::NotFound))?;
    let outcome = ctx.shop.sagas.abort(id, reason).await;
    let row = saga_audit::saga_action(
        &session.actor(),
        "saga.abort",
        id,
        Some(before.state),
        &outcome,
        json!({ "reason": reason }),
    );
    audit::record(&ctx.shop.store, row).await?;
    outcome?;
    Ok(layout::redirect(&format!("/console/sagas/{id}?done=aborted")))
}
