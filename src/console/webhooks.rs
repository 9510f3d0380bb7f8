//! Webhook events as received, by source and outcome, in order of reception.

use maud::html;

use super::layout::{self, Shell};
use super::{Ctx, Page};

const PAGE: usize = 50;
const SOURCES: [&str; 2] = ["payment", "carrier"];
const OUTCOMES: [&str; 5] = ["processed", "needs_review", "refund_started", "ignored", "rejected"];

pub fn list(ctx: &Ctx<'_>) -> Page {
    ctx.admin()?;
    let source = ctx.query("source");
    let status = ctx.query("status");
    let page = ctx.shop.logs.webhooks(source, status, ctx.query("cursor"), PAGE)?;
    let events = page["webhooks"].as_array().cloned().unwrap_or_default();
    let content = html! {
        form.filter method="get" action="/console/webhooks" {
            label { "Source"
                select name="source" {
                    option value="" { "any" }
                    @for s in SOURCES { option value=(s) selected[source == Some(s)] { (s) } }
                }
            }
            label { "Outcome"
                select name="status" {
                    option value="" { "any" }
                    @for s in OUTCOMES { option value=(s) selected[status == Some(s)] { (s) } }
                }
            }
            button type="submit" { "Filter" }
        }
        @if events.is_empty() {
            p.muted { "No webhook event matches this filter." }
        } @else {
            table {
                thead { tr { th { "Received" } th { "Source" } th { "Event" } th { "Type" } th { "Outcome" } th { "Detail" } th { "Order" } th { "Body" } } }
                tbody {
                    @for e in &events {
                        tr {
                            td { (layout::text(&e["received_at"])) }
                            td { (layout::text(&e["source"])) }
                            td.id { (layout::text(&e["event_id"])) }
                            td { (layout::text(&e["type"])) }
                            td { span class=(format!("state outcome-{}", e["status"].as_str().unwrap_or(""))) { (layout::text(&e["status"])) } }
                            td { (layout::text(&e["detail"])) }
                            td {
                                @match e["order_id"].as_str() {
                                    Some(o) => a.id href=(format!("/console/orders/{o}")) { (o) },
                                    None => span.none { "—" },
                                }
                            }
                            td { details { summary { "body" } (layout::json_block(&e["body"])) } }
                        }
                    }
                }
            }
        }
        (layout::next_page(ctx, &page["next_cursor"]))
    };
    Ok(layout::html_response(200, layout::page(ctx, "Webhooks", Shell { refresh: true }, content)))
}
