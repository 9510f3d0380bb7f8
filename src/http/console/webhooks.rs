//! Webhook events as received, by source and outcome, in order of reception; a
//! `needs_review` event opens on its own page, where its data can be corrected and the
//! event replayed (the service the admin API's replay uses, audited the same way).

use maud::html;
use serde_json::Value;

use super::layout::{self, Shell};
use super::{ConsoleError, Ctx, Page};
use crate::http::ApiError;
use crate::operations::webhooks::Source;
use crate::operations::OperationError;
use crate::store::WebhookEvent;

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
                            td.id {
                                @if e["status"] == "needs_review" {
                                    a href=(event_link(e)) { (layout::text(&e["event_id"])) }
                                } @else { (layout::text(&e["event_id"])) }
                            }
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

fn event_link(e: &Value) -> String {
    let id: String = form_urlencoded::byte_serialize(e["event_id"].as_str().unwrap_or("").as_bytes()).collect();
    format!("/console/webhooks/{}/{id}", e["source"].as_str().unwrap_or(""))
}

fn source(name: &str) -> Result<Source, ConsoleError> {
    match name {
        "payment" => Ok(Source::Payment),
        "carrier" => Ok(Source::Carrier),
        _ => Err(ConsoleError::App(OperationError::WebhookEventNotFound.into())),
    }
}

/// The path's event id, percent-decoded (event ids are the sender's text).
fn event_id(raw: &str) -> String {
    let query = format!("x={}", raw.replace('+', "%2B"));
    form_urlencoded::parse(query.as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

fn data_of(w: &WebhookEvent) -> Value {
    serde_json::from_str::<Value>(&w.body).map(|b| b["data"].clone()).unwrap_or(Value::Null)
}

/// `GET /console/webhooks/{source}/{id}`: the event, and for one needing review the
/// replay form with its data to correct.
pub fn show(ctx: &Ctx<'_>, source_name: &str, raw_id: &str) -> Page {
    let session = ctx.admin()?;
    let src = source(source_name)?;
    let id = event_id(raw_id);
    let event = ctx.shop.webhooks.event(src, &id)?.ok_or(ApiError::from(OperationError::WebhookEventNotFound))?;
    let payload = serde_json::to_string_pretty(&data_of(&event)).unwrap_or_default();
    let action = format!("/console/webhooks/{source_name}/{raw_id}/replay");
    let result = ctx.query("result");
    let content = html! {
        @if let Some(r) = result {
            p.notice role="status" { "Replayed: the event is now " strong { (event.status) } @if r != event.status { " (" (r) ")" } "." }
        }
        div.panel {
            dl.facts {
                dt { "Source" } dd { (event.source) }
                dt { "Event id" } dd.id { (event.event_id) }
                dt { "Type" } dd { (event.event_type) }
                dt { "Outcome" } dd { span class=(format!("state outcome-{}", event.status)) { (event.status) } }
                dt { "Detail" } dd { (event.detail) }
                dt { "Received" } dd { (layout::time(Some(event.received_at))) }
                dt { "Order" } dd {
                    @match event.order_id {
                        Some(o) => a.id href=(format!("/console/orders/{o}")) { (o) },
                        None => span.none { "—" },
                    }
                }
            }
        }
        h2 { "Body as received" }
        (layout::json_block(&serde_json::from_str::<Value>(&event.body).unwrap_or(Value::Null)))
        @if event.status == "needs_review" {
            h2 { "Replay" }
            form method="post" action=(action) data-confirm="Replay this event with this data?" {
                (layout::csrf(session))
                label { "Its data (a JSON object; corrected, it replaces the event's data)"
                    textarea name="payload" rows="10" cols="80" required { (payload) }
                }
                p { button.primary type="submit" { "Replay" } }
            }
        } @else {
            p.muted { "Only an event that needs review can be replayed." }
        }
    };
    Ok(layout::html_response(200, layout::page(ctx, "Webhook event", Shell::default(), content)))
}

/// `POST /console/webhooks/{source}/{id}/replay` `payload`: the event processed again
/// with that data, audited (`webhook.replay`) with the operator, whatever the outcome.
pub async fn replay(ctx: &Ctx<'_>, source_name: &str, raw_id: &str) -> Page {
    let session = ctx.admin()?;
    let form = ctx.form()?;
    let src = source(source_name)?;
    let id = event_id(raw_id);
    let payload = match form.get("payload").map(|p| p.trim()).filter(|p| !p.is_empty()) {
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Object(_)) => Some(v),
            _ => return Err(ConsoleError::Invalid("the data must be a JSON object".into())),
        },
        None => None,
    };
    let ((_, outcome), _) = ctx.shop.webhooks.replay_audited(&session.actor(), src, &id, payload).await?;
    Ok(layout::redirect(&format!("/console/webhooks/{source_name}/{raw_id}?result={outcome}")))
}
