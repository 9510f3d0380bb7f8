//! The audit log: who changed what, when, from what to what; by entity type, or one entity.

use maud::html;

use super::layout::{self, Shell};
use super::{ConsoleError, Ctx, Page};
use crate::services::logs::AuditFilter;

const PAGE: usize = 100;

pub fn list(ctx: &Ctx<'_>) -> Page {
    ctx.admin()?;
    let entity_type = ctx.query("entity_type");
    let entity_id = ctx.query("entity_id");
    let cursor = match ctx.query("cursor") {
        Some(c) => Some(c.parse::<u64>().map_err(|_| ConsoleError::Invalid("the cursor is not valid".into()))?),
        None => None,
    };
    let (actor, action) = (ctx.query("actor"), ctx.query("action"));
    let filter = AuditFilter { entity_type, entity_id, actor, action };
    let page = ctx.shop.logs.audit(&filter, cursor, PAGE)?;
    let entries = page["entries"].as_array().cloned().unwrap_or_default();
    let content = html! {
        form.filter method="get" action="/console/audit" {
            label { "Entity type (saga, order, product, inventory, retry_policy…)"
                input type="text" name="entity_type" value=[entity_type];
            }
            label { "Entity id (needs its type)"
                input type="text" name="entity_id" value=[entity_id];
            }
            label { "Who (admin, admin:NAME, fulfillment…)"
                input type="text" name="actor" value=[actor];
            }
            label { "Action, exactly (saga.resume, saga.abort, bulk_action.abort…)"
                input type="text" name="action" value=[action];
            }
            button type="submit" { "Filter" }
        }
        p.muted { "Oldest first." }
        @if entries.is_empty() {
            p.muted { "No audit row matches this filter." }
        } @else {
            table {
                thead { tr { th { "At" } th { "Who" } th { "Action" } th { "Entity" } th { "Before" } th { "After" } } }
                tbody {
                    @for e in &entries {
                        tr {
                            td { (layout::text(&e["at"])) }
                            td { (layout::text(&e["actor"])) }
                            td { code { (layout::text(&e["action"])) } }
                            td { (entity_link(e["entity_type"].as_str().unwrap_or(""), e["entity_id"].as_str().unwrap_or(""))) }
                            td { (layout::json_block(&e["before"])) }
                            td { (layout::json_block(&e["after"])) }
                        }
                    }
                }
            }
        }
        (layout::next_page(ctx, &page["next_cursor"]))
    };
    Ok(layout::html_response(200, layout::page(ctx, "Audit log", Shell { refresh: true }, content)))
}

/// The entity, linked to its console page when it has one.
fn entity_link(entity_type: &str, id: &str) -> maud::Markup {
    let href = match entity_type {
        "saga" => Some(format!("/console/sagas/{id}")),
        "order" => Some(format!("/console/orders/{id}")),
        "product" => Some(format!("/console/stock/{id}")),
        _ => None,
    };
    html! {
        (entity_type) " "
        @match href {
            Some(h) => a.id href=(h) { (id) },
            None => span.id { (id) },
        }
    }
}
