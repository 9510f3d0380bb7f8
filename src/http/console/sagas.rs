//! The saga list: filtered by state, type, current step, error text, order or customer and
//! creation time (the filter `GET /admin/v1/sagas` and the bulk actions take), newest or
//! oldest first, a page at a time by cursor, the filter in the URL so that a view can be
//! bookmarked and shared.

use maud::html;

use super::layout::{self, Shell};
use super::{ConsoleError, Ctx, Page};
use crate::domain::ids::SagaId;
use crate::saga::query::{Direction, FilterParams, SagaFilter};
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
    // The same filter as GET /admin/v1/sagas and the bulk actions, from the same query
    // parameters, so a console URL and an API call select the same sagas.
    let params = FilterParams::from_query(&ctx.req.query);
    let filter = SagaFilter::parse(&params, &ctx.shop.sagas)?;
    let direction = Direction::parse(ctx.query("order"))?;
    let cursor = match ctx.query("cursor") {
        Some(c) => Some(c.parse::<SagaId>().map_err(|_| ConsoleError::Invalid("the cursor is not valid".into()))?),
        None => None,
    };
    let (sagas, next) = ctx.shop.sagas.list(&filter, direction, cursor, PAGE).await?;
    let types = saga_types(ctx);
    let content = html! {
        form.filter method="get" action="/console/sagas" {
            (filter_fields(&types, &params, filter.state))
            label { "Order"
                select name="order" {
                    option value="oldest" selected[direction == Direction::OldestFirst] { "oldest first" }
                    option value="newest" selected[direction == Direction::NewestFirst] { "newest first" }
                }
            }
            button type="submit" { "Filter" }
        }
        p { a href=(bulk_link(ctx)) { "Bulk action on this filter" } }
        @if sagas.is_empty() {
            p.muted { "No saga matches this filter on this page." @if next.is_some() { " More may follow: a page reads a bounded number of sagas." } }
        } @else {
            (table(&sagas))
        }
        @if let Some(n) = next { (layout::next_page(ctx, &serde_json::json!(n))) }
    };
    Ok(layout::html_response(200, layout::page(ctx, "Sagas", Shell { refresh: true }, content)))
}

/// The filter's fields (the saga list's and the bulk actions' forms share them).
pub fn filter_fields(types: &[String], params: &FilterParams, state: Option<SagaState>) -> maud::Markup {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    html! {
        label { "State"
            select name="state" {
                option value="" { "any" }
                @for s in STATES { option value=(s) selected[state.map(SagaState::as_str) == Some(s)] { (s) } }
            }
        }
        label { "Type"
            select name="type" {
                option value="" { "any" }
                @for t in types { option value=(t) selected[params.saga_type.as_deref() == Some(t.as_str())] { (t) } }
            }
        }
        label { "Current step" input type="text" name="step" value=(text(&params.step)); }
        label { "Error text" input type="text" name="error" value=(text(&params.error)); }
        label { "Order id" input type="text" name="order_id" value=(text(&params.order_id)); }
        label { "Customer id" input type="text" name="customer_id" value=(text(&params.customer_id)); }
        label { "Created after (RFC 3339)" input type="text" name="created_after" value=(text(&params.created_after)); }
        label { "Created before" input type="text" name="created_before" value=(text(&params.created_before)); }
    }
}

/// The bulk actions page with this list's filter (not its order or cursor).
fn bulk_link(ctx: &Ctx<'_>) -> String {
    let pairs = ctx.req.query.iter().filter(|(k, v)| !matches!(k.as_str(), "cursor" | "order") && !v.is_empty());
    let query: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    format!("/console/bulk?{query}")
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
