//! The events section of an order's page: the order's domain events in log order (placed,
//! confirmed by the payment capture, shipped, delivered, cancelled, refund updates, webhooks
//! about it kept for review), a page at a time (`?cursor=` is the last seq shown).

use maud::{html, Markup};
use serde_json::Value;

use super::layout;
use super::session::Role;
use super::{ConsoleError, Ctx};
use crate::domain::ids::OrderId;

/// Events per page: an order has a handful.
const PAGE: usize = 100;

pub async fn section(ctx: &Ctx<'_>, order: OrderId, role: Role) -> Result<Markup, ConsoleError> {
    let cursor = match ctx.query("cursor") {
        Some(c) => Some(c.parse::<u64>().map_err(|_| ConsoleError::Invalid("the cursor is not valid".into()))?),
        None => None,
    };
    // Nothing shown that a crash could still take back.
    ctx.shop.store.barrier().await.map_err(crate::http::ApiError::from)?;
    let page = ctx.shop.logs.order_events(order, cursor, PAGE)?;
    let events = page["events"].as_array().cloned().unwrap_or_default();
    Ok(html! {
        h2 { "Events" }
        @if events.is_empty() { p.muted { "No events." } }
        @else {
            table data-testid="order-events" {
                thead { tr { th { "Seq" } th { "At" } th { "Type" } th { "Data" } } }
                tbody {
                    @for e in &events {
                        tr {
                            td { (layout::text(&e["seq"])) }
                            td { (layout::text(&e["at"])) }
                            td { code { (layout::text(&e["type"])) } }
                            td { (summary(&e["data"], role)) }
                        }
                    }
                }
            }
        }
        (layout::next_page(ctx, &page["next_cursor"]))
    })
}

/// The event's fields as `name: value`, without the order and customer (the page's own):
/// a saga id links to its saga for the admin, and is left out for fulfillment, who cannot
/// open sagas.
fn summary(data: &Value, role: Role) -> Markup {
    let fields =
        data.as_object().into_iter().flatten().filter(|(k, _)| !matches!(k.as_str(), "order_id" | "customer_id"));
    html! {
        @for (name, value) in fields {
            @if name == "saga_id" {
                @if role == Role::Admin {
                    span.field { (name) ": " a.id href=(format!("/console/sagas/{}", value.as_str().unwrap_or(""))) { (layout::text(value)) } " " }
                }
            } @else {
                span.field { (name) ": " code { (layout::text(value)) } " " }
            }
        }
    }
}
