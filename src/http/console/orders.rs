//! Orders and stock: an order looked up by id or by its customer's email, with its sagas,
//! events and audit trail; an inventory item's on-hand / reserved / available with its holds.
//! Fulfillment staff see orders (not their sagas or audit rows); stock is the admin's.

use maud::{html, Markup};
use serde_json::Value;

use super::layout::{self, Shell};
use super::session::Role;
use super::{order_events, quarantine};
use super::{ConsoleError, Ctx, Page};
use crate::domain::email::Email;
use crate::domain::ids::{OrderId, ProductId};
use crate::domain::order::{Order, OrderStatus};
use crate::domain::quarantine::{KeyKind, QuarantineKey};
use crate::http::ApiError;
use crate::saga::query::{Direction, SagaFilter};
use crate::services::catalog::CatalogError;
use crate::services::inventory::item_keys;
use crate::services::orders::order_json;
use crate::services::ServiceError;

const PAGE: usize = 50;
const STATUSES: [&str; 5] = ["PENDING", "CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED"];
/// Audit rows of one order shown on its page (the audit page has them all).
const AUDIT_ROWS: usize = 200;
/// Sagas of one order shown on its page: an order has a handful (placing, cancelling,
/// shipping, refunds); the saga list filtered by the order has them all.
const SAGAS: usize = 50;

pub async fn list(ctx: &Ctx<'_>) -> Page {
    ctx.staff()?;
    if let Some(q) = ctx.query("q") {
        return lookup(ctx, q).await;
    }
    let status = match ctx.query("status") {
        Some(s) => {
            Some(OrderStatus::parse(s).ok_or_else(|| ConsoleError::Invalid(format!("unknown order status {s}")))?)
        }
        None => None,
    };
    let cursor = match ctx.query("cursor") {
        Some(c) => Some(c.parse::<OrderId>().map_err(|_| ConsoleError::Invalid("the cursor is not valid".into()))?),
        None => None,
    };
    let (orders, next) = ctx.shop.orders.list(status, cursor, PAGE).await?;
    let content = html! {
        (search_form(None))
        form.filter method="get" action="/console/orders" {
            label { "Status"
                select name="status" {
                    option value="" { "any" }
                    @for s in STATUSES { option value=(s) selected[status.map(OrderStatus::as_str) == Some(s)] { (s) } }
                }
            }
            button type="submit" { "List" }
        }
        p.muted { "Oldest first." }
        (table(&orders))
        @if let Some(n) = next { (layout::next_page(ctx, &serde_json::json!(n))) }
    };
    Ok(layout::html_response(200, layout::page(ctx, "Orders", Shell::default(), content)))
}

fn search_form(q: Option<&str>) -> Markup {
    html! {
        form.filter method="get" action="/console/orders" {
            label { "Order id or customer email"
                input type="search" name="q" size="40" required value=[q];
            }
            button.primary type="submit" { "Look up" }
        }
    }
}

/// An order id opens that order; an email lists its customer's orders.
async fn lookup(ctx: &Ctx<'_>, q: &str) -> Page {
    if let Ok(id) = q.parse::<OrderId>() {
        return Ok(layout::redirect(&format!("/console/orders/{id}")));
    }
    let email = Email::parse(q).map_err(|_| ConsoleError::Invalid("enter an order id or a customer's email".into()))?;
    let (status, orders) = match ctx.shop.customers.find_by_email(&email)? {
        Some(c) => (200, Some(ctx.shop.orders.list_for_customer(c.customer_id).await?)),
        None => (404, None),
    };
    let content = html! {
        (search_form(Some(q)))
        @match &orders {
            Some(orders) => {
                h2 { "Orders of " (q) }
                (table(orders))
            },
            None => p.error { "No customer is registered with that email." },
        }
    };
    Ok(layout::html_response(status, layout::page(ctx, "Orders", Shell::default(), content)))
}

fn table(orders: &[Order]) -> Markup {
    html! {
        @if orders.is_empty() {
            p.muted { "No orders." }
        } @else {
            table {
                thead { tr { th { "Order" } th { "Status" } th { "Customer" } th { "Total" } th { "Created" } } }
                tbody {
                    @for o in orders {
                        @let j = order_json(o);
                        tr {
                            td { a.id href=(format!("/console/orders/{}", o.order_id)) { (o.order_id) } }
                            td { span.state { (o.status.as_str()) } }
                            td.id { (o.customer_id) }
                            td { (layout::text(&j["total"])) }
                            td { (layout::time(Some(o.created_at))) }
                        }
                    }
                }
            }
        }
    }
}

pub async fn show(ctx: &Ctx<'_>, id: &str) -> Page {
    let session = ctx.staff()?;
    let id: OrderId = id.parse().map_err(|_| ConsoleError::App(ApiError::from(ServiceError::OrderNotFound)))?;
    let order = ctx.shop.orders.get(id).await?.ok_or(ApiError::from(ServiceError::OrderNotFound))?;
    let j = order_json(&order);
    let admin = session.role == Role::Admin;
    let content = html! {
        (search_form(None))
        div.panel {
            dl.facts {
                dt { "Order id" } dd.id { (order.order_id) }
                dt { "Status" } dd { span.state { (order.status.as_str()) } }
                dt { "Customer" } dd.id { (order.customer_id) }
                dt { "Created" } dd { (layout::time(Some(order.created_at))) }
                dt { "Updated" } dd { (layout::time(Some(order.updated_at))) }
                dt { "Subtotal" } dd { (layout::text(&j["subtotal"])) }
                dt { "Shipping" } dd { (layout::text(&j["shipping_cost"])) }
                dt { "Total" } dd { strong { (layout::text(&j["total"])) } }
                dt { "Payment" } dd { (layout::text(&j["payment"]["status"])) " · authorization " span.id { (layout::text(&j["payment"]["authorization_id"])) } }
                @if !j["refund"].is_null() { dt { "Refund" } dd { (layout::text(&j["refund"]["status"])) } }
                @if !j["tracking_number"].is_null() { dt { "Tracking" } dd { (layout::text(&j["tracking_number"])) } }
                @if !j["cancel_reason"].is_null() { dt { "Cancel reason" } dd { (layout::text(&j["cancel_reason"])) } }
            }
        }
        h2 { "Items" }
        table {
            thead { tr { th { "Product" } th { "Quantity" } th { "Unit price" } th { "Subtotal" } } }
            tbody {
                @for line in j["items"].as_array().into_iter().flatten() {
                    tr {
                        td {
                            @if admin {
                                a href=(format!("/console/stock/{}", line["product_id"].as_str().unwrap_or(""))) { (layout::text(&line["name"])) }
                            } @else { (layout::text(&line["name"])) }
                        }
                        td { (layout::text(&line["quantity"])) }
                        td { (layout::text(&line["unit_price"])) }
                        td { (layout::text(&line["subtotal"])) }
                    }
                }
            }
        }
        h2 { "Shipping address" }
        (layout::json_block(&j["shipping_address"]))
        @if admin {
            @let key = QuarantineKey::new(KeyKind::Order, order.order_id.0);
            (quarantine::key_panel(ctx, session, key, &format!("/console/orders/{id}")).await?)
            (sagas_and_audit(ctx, &order).await?)
        }
        (order_events::section(ctx, order.order_id, session.role).await?)
    };
    Ok(layout::html_response(200, layout::page(ctx, "Order", Shell::default(), content)))
}

/// Every saga of the order, from the index of sagas by order (so one that has not changed
/// the order yet, a refund still retrying or a shipment before it marks the order, is listed
/// too), and the order's audit rows.
async fn sagas_and_audit(ctx: &Ctx<'_>, order: &Order) -> Result<Markup, ConsoleError> {
    let id = order.order_id.to_string();
    let filter = SagaFilter { order_id: Some(order.order_id), ..SagaFilter::default() };
    let (sagas, more) = ctx.shop.sagas.list(&filter, Direction::OldestFirst, None, SAGAS).await?;
    let audit = ctx.shop.logs.audit(&order_rows(&id), None, AUDIT_ROWS)?;
    let rows = audit["entries"].as_array().cloned().unwrap_or_default();
    Ok(html! {
        h2 { "Sagas" }
        @if sagas.is_empty() { p.muted { "None found." } }
        @else {
            table {
                thead { tr { th { "Saga" } th { "Type" } th { "State" } th { "Updated" } } }
                tbody {
                    @for s in &sagas {
                        tr {
                            td { a.id href=(format!("/console/sagas/{}", s.saga_id)) { (s.saga_id) } }
                            td { (s.saga_type) }
                            td { span class=(format!("state state-{}", s.state.as_str())) { (s.state.as_str()) } }
                            td { (layout::time(Some(s.updated_at))) }
                        }
                    }
                }
            }
            @if more.is_some() {
                p { a href=(format!("/console/sagas?order_id={id}")) { "All of its sagas" } }
            }
        }
        h2 { "Audit trail" }
        @if rows.is_empty() { p.muted { "No audit rows." } }
        @else {
            table {
                thead { tr { th { "At" } th { "Who" } th { "Action" } th { "Before" } th { "After" } } }
                tbody {
                    @for r in &rows {
                        tr {
                            td { (layout::text(&r["at"])) }
                            td { (layout::text(&r["actor"])) }
                            td { code { (layout::text(&r["action"])) } }
                            td { (compact(&r["before"])) }
                            td { (compact(&r["after"])) }
                        }
                    }
                }
            }
            p { a href=(format!("/console/audit?entity_type=order&entity_id={id}")) { "All of its audit rows" } }
        }
    })
}

fn compact(v: &Value) -> Markup {
    html! { code { (v.to_string()) } }
}

/// `GET /console/stock?product_id=`: the look-up form, or the product's page.
pub fn stock_lookup(ctx: &Ctx<'_>) -> Page {
    ctx.admin()?;
    if let Some(id) = ctx.query("product_id") {
        let id: ProductId = id.parse().map_err(|_| ConsoleError::Invalid("a product id is a UUID".into()))?;
        return Ok(layout::redirect(&format!("/console/stock/{id}")));
    }
    Ok(layout::html_response(200, layout::page(ctx, "Stock", Shell::default(), stock_form())))
}

fn stock_form() -> Markup {
    html! {
        form.filter method="get" action="/console/stock" {
            label { "Product id" input type="search" name="product_id" size="40" required; }
            button.primary type="submit" { "Look up" }
        }
    }
}

pub async fn stock(ctx: &Ctx<'_>, id: &str) -> Page {
    let session = ctx.admin()?;
    let id: ProductId = id.parse().map_err(|_| ConsoleError::App(CatalogError::ProductNotFound.into()))?;
    let product = ctx.shop.catalog.product(id)?;
    let stock = ctx.shop.inventory.stock(id).await?;
    let mut items = Vec::new();
    for (key, item) in item_keys(&product).into_iter().zip(&stock.items) {
        let variant = key.variant_id.and_then(|v| product.variants.iter().find(|x| x.variant_id == v));
        let holds = ctx.shop.inventory.reservations(key).await?;
        items.push((variant.map(|v| v.name.clone()), item, holds));
    }
    let content = html! {
        (stock_form())
        div.panel {
            dl.facts {
                dt { "Product" } dd { strong { (product.name) } }
                dt { "Product id" } dd.id { (product.product_id) }
                dt { "Active" } dd { (if product.is_active { "yes" } else { "no" }) }
            }
        }
        @for (variant, item, holds) in &items {
            h2 { @match variant { Some(v) => { "Variant " (v) }, None => "Stock" } }
            table {
                thead { tr { th { "On hand" } th { "Reserved" } th { "Available" } } }
                tbody { tr { td { (item.on_hand) } td { (item.reserved) } td { strong { (item.available) } } } }
            }
            h3 { "Reservations" }
            @if holds.is_empty() { p.muted { "None." } }
            @else {
                table {
                    thead { tr { th { "Owner (a saga, an order or an operator's hold)" } th { "Quantity" } } }
                    tbody {
                        @for (owner, quantity) in holds {
                            tr { td.id { (owner) } td { (quantity) } }
                        }
                    }
                }
            }
        }
        (quarantine::key_panel(ctx, session, QuarantineKey::new(KeyKind::Inventory, id.0), &format!("/console/stock/{id}")).await?)
        p { a href=(format!("/console/audit?entity_type=product&entity_id={id}")) { "Audit rows of this product" } }
    };
    Ok(layout::html_response(200, layout::page(ctx, "Stock", Shell::default(), content)))
}

/// The audit rows of one order.
fn order_rows(id: &str) -> crate::services::logs::AuditFilter<'_> {
    crate::services::logs::AuditFilter { entity_type: Some("order"), entity_id: Some(id), actor: None, action: None }
}
