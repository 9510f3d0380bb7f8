//! Retry policies per (saga type, step or compensation): viewed and edited. New sagas take
//! a changed policy; running ones at their next failure.

use maud::{html, Markup};

use super::layout::{self, Shell};
use super::{ConsoleError, Ctx, Page};
use crate::retry::RetryPolicy;
use crate::saga::definition::OnExhausted;

const NOTICES: &[(&str, &str)] = &[("saved", "Policy saved: new sagas take it, running ones at their next failure.")];

pub fn list(ctx: &Ctx<'_>) -> Page {
    let session = ctx.admin()?;
    let all = ctx.shop.sagas.policies_json();
    let empty = serde_json::Map::new();
    let types = all["retry_policies"].as_object().unwrap_or(&empty);
    let content = html! {
        (layout::notice(ctx, NOTICES))
        p.muted { "Each step and compensation of each saga type runs with its own policy: attempts in all (the first included) and the backoff between them. A change applies to sagas started after it, and to running ones at their next failure." }
        @for (saga_type, steps) in types {
            h2 { (saga_type) }
            table {
                thead { tr { th { "Step or compensation" } th { "Applies to" } th { "Max attempts" } th { "Initial backoff (ms)" } th { "Multiplier" } th { "Max backoff (ms)" } th {} } }
                tbody {
                    @for (step, p) in steps.as_object().unwrap_or(&empty) {
                        @let form_id = format!("policy-{saga_type}-{step}");
                        tr id=(format!("row-{saga_type}-{step}")) {
                            td { code { (step) } }
                            td { (applies_to(ctx, saga_type, step)) }
                            td { input form=(form_id) type="number" name="max_attempts" min="1" required value=(layout::text(&p["max_attempts"]).into_string()); }
                            td { input form=(form_id) type="number" name="initial_backoff_ms" min="1" required value=(layout::text(&p["initial_backoff_ms"]).into_string()); }
                            td { input form=(form_id) type="number" name="multiplier" min="1" step="any" required value=(layout::text(&p["multiplier"]).into_string()); }
                            td { input form=(form_id) type="number" name="max_backoff_ms" min="1" required value=(layout::text(&p["max_backoff_ms"]).into_string()); }
                            td {
                                form id=(form_id) method="post" action=(format!("/console/policies/{saga_type}/{step}")) {
                                    (layout::csrf(session))
                                    button type="submit" { "Save" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::html_response(200, layout::page(ctx, "Retry policies", Shell::default(), content)))
}

/// What a policy governs, per the definition new sagas of the type start under: which step
/// it is and what happens when its attempts run out, or which step it compensates.
fn applies_to(ctx: &Ctx<'_>, saga_type: &str, name: &str) -> Markup {
    let Some(def) = ctx.shop.sagas.current_definition(saga_type) else { return html! {} };
    let total = def.steps.len();
    let point = def.point_of_no_return.as_deref();
    for (i, step) in def.steps.iter().enumerate() {
        if step.name == name {
            let exhausted = match step.on_exhausted {
                OnExhausted::Compensate => "the saga compensates",
                OnExhausted::Stuck => "the saga parks STUCK",
            };
            return html! {
                "step " (i + 1) " of " (total) "; when its attempts run out, " (exhausted)
                @if point == Some(name) { " (its point of no return)" }
            };
        }
        if step.compensation.as_deref() == Some(name) {
            return html! { "compensation of " code { (step.name) } };
        }
    }
    html! { span.muted { "an earlier version's step" } }
}

pub async fn set(ctx: &Ctx<'_>, saga_type: &str, step: &str) -> Page {
    let session = ctx.admin()?;
    let form = ctx.form()?;
    let field = |name: &str| {
        form.get(name).map(|v| v.trim()).ok_or_else(|| ConsoleError::Invalid(format!("{name} is required")))
    };
    let number = |name: &str| -> Result<u64, ConsoleError> {
        field(name)?.parse().map_err(|_| ConsoleError::Invalid(format!("{name} must be a whole number")))
    };
    let max_attempts = u32::try_from(number("max_attempts")?)
        .map_err(|_| ConsoleError::Invalid("max_attempts is too large".into()))?;
    let multiplier: f64 = field("multiplier")?
        .parse()
        .ok()
        .filter(|m: &f64| m.is_finite())
        .ok_or_else(|| ConsoleError::Invalid("multiplier must be a number".into()))?;
    let policy = RetryPolicy {
        max_attempts,
        initial_backoff_ms: number("initial_backoff_ms")?,
        multiplier,
        max_backoff_ms: number("max_backoff_ms")?,
    };
    // The engine writes the audit row with the policy, naming the operator.
    ctx.shop.sagas.set_policy(saga_type, step, policy, &session.actor()).await?;
    Ok(layout::redirect(&format!("/console/policies?done=saved#row-{saga_type}-{step}")))
}
