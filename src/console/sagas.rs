//! The saga list: filtered by state and type (the filters `SagaEngine::list` offers), a
//! page at a time by cursor, the filter in the URL so that a view can be bookmarked.

use maud::html;

use super::layout::{self, Shell};
use super::{ConsoleError, Ctx, Page};
use crate::domain::ids::SagaId;
use crate::saga::{SagaInstance, SagaState};

const PAGE: usize = 50;

pub const STATES: [&str; 8] =
    ["RUNNING", "RETRYING", "PAUSED", "COMPENSATING", "STUCK", "COMPLETED", "FAILED", "ABORTED"];

/// The saga types there are, from the retry policy table (every type has its policies).
pub fn saga_types(ctx: &Ctx<'_>) -> Vec<String> {
    let policies = ctx.shop.sagas.policies_json();
    policies["retry_policies"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

pub async fn list(ctx: &Ctx<'_>) -> Page {
    ctx.admin()?;
    let state = match ctx.query("state") {
        Some(s) => Some(SagaState::parse(s).ok_or_else(|| ConsoleError::Invalid(format!("unknown saga state {s}")))?),
        None => None,
    };
    let saga_type = ctx.query("type");
    let cursor = match ctx.query("cursor") {
        Some(c) => Some(c.parse::<SagaId>().map_err(|_| ConsoleError::Invalid("the cursor is not valid".into()))?),
        None => None,
    };
    let (sagas, next) = ctx.shop.sagas.list(state, saga_type, cursor, PAGE).await?;
    let types = saga_types(ctx);
    let content = html! {
        form.filter method="get" action="/console/sagas" {
            label { "State"
                select name="state" {
                    option value="" { "any" }
                    @for s in STATES { option value=(s) selected[state.map(SagaState::as_str) == Some(s)] { (s) } }
                }
            }
            label { "Type"
                select name="type" {
                    option value="" { "any" }
                    @for t in &types { option value=(t) selected[saga_type == Some(t.as_str())] { (t) } }
                }
            }
            button type="submit" { "Filter" }
        }
        p.muted { "Oldest first." }
        @if sagas.is_empty() {
            p.muted { "No saga matches this filter." }
        } @else {
            (table(&sagas))
        }
        @if let Some(n) = next { (layout::next_page(ctx, &serde_json::json!(n))) }
    };
    Ok(layout::html_response(200, layout::page(ctx, "Sagas", Shell { refresh: true }, content)))
}

fn table(sagas: &[SagaInstance]) -> maud::Markup {
    html! {
        table {
            thead { tr { th { "Saga" } th { "Type" } th { "State" } th { "Current step" } th { "Attempts" } th { "Last error" } th { "Updated" } } }
            tbody {
                @for s in sagas {
                    @let current = s.current();
                    tr {
                        td { a.id href=(format!("/console/sagas/{}", s.saga_id)) { (s.saga_id) } }
                        td { (s.saga_type) }
                        td { span class=(format!("state state-{}", s.state.as_str())) { (s.state.as_str()) } }
                        td { @if let Some(w) = current { (w.name) } }
                        td { @if let Some(w) = current { (w.attempts) " / " (w.policy.max_attempts) } }
                        td { @if let Some(e) = current.and_then(|w| w.last_error.as_deref()) { (e) } }
                        td { (layout::time(Some(s.updated_at))) }
                    }
                }
            }
        }
    }
}
