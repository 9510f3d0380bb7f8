//! One order's domain events: `GET /admin/v1/orders/{id}/events` and the console's order
//! page list exactly that order's events in log order, from an index written with each
//! event (and built on the first start of a store that lacks it).

use serde_json::Value;

use crate::console::Browser;
use crate::helpers::*;

/// Order A: a capture for the wrong amount (kept for review), the right capture, shipped.
/// Order B, placed in between: cancelled. Returns (A, B, the saga that placed A).
async fn two_orders(app: &TestApp) -> (String, String, String) {
    let (_, _, a) = app.pending_order(1).await;
    let (b_customer, _, b) = app.pending_order(2).await;
    let (a_id, b_id) = (a["order_id"].as_str().unwrap(), b["order_id"].as_str().unwrap());
    let authorization = a["payment"]["authorization_id"].as_str().unwrap();
    let (status, body) = app.capture("evt_wrong_amount", authorization, "0.01").await;
    assert_eq!((status, body["status"].as_str()), (202, Some("needs_review")), "{body}");
    let (status, body) = app.capture("evt_capture", authorization, a["total"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.cancel_order(&b_customer.token, b_id).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.ship(FULFILLMENT, a_id, "TRACK-A-1").await;
    assert_eq!(status, 200, "{body}");
    (a_id.to_string(), b_id.to_string(), a["saga_id"].as_str().unwrap().to_string())
}

/// Every page of an order's events, following `next_cursor` with pages of `limit`.
async fn order_events(app: &TestApp, order_id: &str, token: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/admin/v1/orders/{order_id}/events?limit={limit}&cursor={cursor}");
        let (status, page) = app.get(&path, Some(token)).await;
        assert_eq!(status, 200, "{page}");
        out.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_u64() {
            Some(next) => cursor = next.to_string(),
            None => return out,
        }
    }
}

/// The whole log's events whose data names `order_id`, in log order.
async fn from_the_log(app: &TestApp, order_id: &str) -> Vec<Value> {
    let (status, log) = app.get("/admin/v1/events?after=0&limit=1000", Some(ADMIN)).await;
    assert_eq!(status, 200, "{log}");
    log["events"].as_array().unwrap().iter().filter(|e| e["data"]["order_id"] == order_id).cloned().collect()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn an_orders_events_are_exactly_its_own_in_log_order() {
    let app = spawn_app().await;
    let (a, b, _) = two_orders(&app).await;

    let events = order_events(&app, &a, ADMIN, 100).await;
    let want = ["OrderPlaced", "WebhookNeedsReview", "OrderConfirmed", "OrderShipped"];
    assert_eq!(types(&events), want, "{events:?}");
    assert_eq!(events, from_the_log(&app, &a).await, "the same rows as the log, in seq order");
    assert!(events.iter().all(|e| e["data"]["order_id"] == a.as_str()), "none of another order's");
    assert_eq!(events[3]["data"]["tracking_number"], "TRACK-A-1");
    assert!(events[0]["at"].is_string() && events[0]["seq"].is_u64());

    // A page at a time, for the fulfillment token too; the last page says so.
    assert_eq!(order_events(&app, &a, FULFILLMENT, 1).await, events);
    let (_, last) = app.get(&format!("/admin/v1/orders/{a}/events?limit=4"), Some(FULFILLMENT)).await;
    assert_eq!((last["events"].as_array().unwrap().len(), &last["next_cursor"]), (4, &Value::Null));

    let cancelled = order_events(&app, &b, ADMIN, 100).await;
    assert_eq!(types(&cancelled)[..2], ["OrderPlaced", "OrderCancelled"], "{cancelled:?}");
    assert_eq!(cancelled, from_the_log(&app, &b).await);
    assert!(cancelled.iter().all(|e| e["data"]["order_id"] == b.as_str()));
}

#[tokio::test]
async fn an_unknown_order_bad_cursors_and_other_tokens_are_refused() {
    let app = spawn_app().await;
    let (customer, _, order) = app.pending_order(1).await;
    let id = order["order_id"].as_str().unwrap();
    for unknown in [uuid::Uuid::now_v7().to_string(), "not-an-id".to_string()] {
        let (status, body) = app.get(&format!("/admin/v1/orders/{unknown}/events"), Some(ADMIN)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("ORDER_NOT_FOUND")), "{body}");
    }
    let (status, body) = app.get(&format!("/admin/v1/orders/{id}/events?cursor=x"), Some(ADMIN)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_REQUEST")), "{body}");
    assert_eq!(app.get(&format!("/admin/v1/orders/{id}/events"), Some(&customer.token)).await.0, 403);
    assert_eq!(app.get(&format!("/admin/v1/orders/{id}/events"), None).await.0, 401);
}

#[tokio::test]
async fn the_console_order_page_lists_the_orders_events_in_order() {
    let app = spawn_app().await;
    let (a, b, placed_by) = two_orders(&app).await;
    let admin = Browser::signed_in(&app, ADMIN).await;
    let page = admin.get(&format!("/console/orders/{a}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let table = &page.body[page.body.find(r#"data-testid="order-events""#).expect("an events table")..];
    let at = |text: &str| table.find(text).unwrap_or_else(|| panic!("{text}: {table}"));
    assert!(at("OrderPlaced") < at("WebhookNeedsReview"));
    assert!(at("WebhookNeedsReview") < at("OrderConfirmed") && at("OrderConfirmed") < at("OrderShipped"));
    assert!(table.contains("TRACK-A-1") && table.contains("evt_capture"), "the data is summarized");
    assert!(table.contains(&format!(r#"href="/console/sagas/{placed_by}""#)), "its saga, linked for the admin");
    assert!(!table.contains("OrderCancelled") && !table.contains(&b), "none of the other order's");
    assert!(!page.body.contains("no index"), "{}", page.body);

    // Fulfillment sees the events, not the saga ids (the sagas are the admin's).
    let fulfillment = Browser::signed_in(&app, FULFILLMENT).await;
    let page = fulfillment.get(&format!("/console/orders/{a}")).await;
    assert!(page.status == 200 && page.body.contains("OrderShipped"), "{}", page.body);
    assert!(!page.body.contains(&placed_by), "{}", page.body);

    // `?cursor=` (a seq) shows the events after it.
    let placed = order_events(&app, &b, ADMIN, 1).await[0]["seq"].as_u64().unwrap();
    let rest = admin.get(&format!("/console/orders/{b}?cursor={placed}")).await;
    let table = &rest.body[rest.body.find(r#"data-testid="order-events""#).expect("an events table")..];
    assert!(table.contains("OrderCancelled") && !table.contains("OrderPlaced"), "{table}");
    assert_eq!(admin.get(&format!("/console/orders/{b}?cursor=x")).await.status, 400);
}

#[tokio::test]
async fn a_store_without_the_index_gets_it_built_on_start() {
    let mut app = spawn_app().await;
    let (a, b, _) = two_orders(&app).await;
    let before = (order_events(&app, &a, ADMIN, 100).await, order_events(&app, &b, ADMIN, 100).await);
    assert_eq!(types(&before.0).len(), 4);

    // As a build from before the index left the store: the events, none of their entries.
    app.write_store(|store| {
        let entries = store.scan_prefix_keys(cartwright::store::Table::EventsByOrder, &[], usize::MAX).unwrap();
        assert!(entries.len() >= 6, "{entries:?}");
        let ws = cartwright::store::WriteSet::new();
        entries.into_iter().fold(ws, |ws, k| ws.delete(cartwright::store::Table::EventsByOrder, k))
    })
    .await;

    let after = (order_events(&app, &a, ADMIN, 100).await, order_events(&app, &b, ADMIN, 100).await);
    assert_eq!(after, before);
    // And it goes on being written: a delivery after the build is listed too.
    let (status, body) = app.deliver("evt_delivered", "TRACK-A-1").await;
    assert_eq!(status, 200, "{body}");
    let events = order_events(&app, &a, ADMIN, 100).await;
    assert_eq!(types(&events).last(), Some(&"OrderDelivered"));
    assert_eq!(events.len(), 5);
}
