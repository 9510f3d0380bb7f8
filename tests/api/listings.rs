//! Admin listings read a page at a time from indexes kept in the same write as each change:
//! every filter answers exactly the rows in their current state, oldest first, and the
//! cursors chain through them without gaps or repeats.

use cartwright::store::{Table, WriteSet};
use serde_json::{json, Value};

use crate::helpers::*;

/// Every row of a listing, page by page (`limit` each), following `next_cursor`.
async fn walk(app: &TestApp, path: &str, rows: &str, limit: usize) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let page_path = match &cursor {
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let (status, body) = app.get(&page_path, Some(ADMIN)).await;
        assert_eq!(status, 200, "{page_path}: {body}");
        let page = body[rows].as_array().unwrap().clone();
        assert!(page.len() <= limit, "{page_path}: {body}");
        out.extend(page);
        cursor = match &body["next_cursor"] {
            Value::Null => return out,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
    }
    panic!("{path}: the cursors never ended");
}

fn field(rows: &[Value], name: &str) -> Vec<String> {
    rows.iter().map(|r| r[name].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn an_order_is_listed_under_its_current_status_only() {
    let app = spawn_app().await;
    let mut placed = Vec::new();
    for _ in 0..3 {
        let (c, _, order) = app.pending_order(1).await;
        placed.push((c, order));
    }
    let ids: Vec<String> = placed.iter().map(|(_, o)| o["order_id"].as_str().unwrap().to_string()).collect();
    let listed = |status: &'static str| orders_listed(&app, status);
    assert_eq!(listed("").await, ids);
    assert_eq!(listed("PENDING").await, ids);
    assert!(listed("CONFIRMED").await.is_empty());

    // PENDING -> CONFIRMED
    let (c0, o0) = &placed[0];
    let (auth, total) = (o0["payment"]["authorization_id"].as_str().unwrap(), o0["total"].as_str().unwrap());
    assert_eq!(app.capture("evt_listing", auth, total).await.0, 200);
    assert_eq!(listed("PENDING").await, ids[1..]);
    assert_eq!(listed("CONFIRMED").await, ids[..1]);

    // CONFIRMED -> CANCELLED
    let (status, body) = app.cancel_order(&c0.token, &ids[0]).await;
    assert_eq!(status, 200, "{body}");
    assert!(listed("CONFIRMED").await.is_empty());
    assert_eq!(listed("CANCELLED").await, ids[..1]);
    assert_eq!(listed("PENDING").await, ids[1..]);
    assert_eq!(listed("").await, ids, "the unfiltered listing keeps creation order");

    // One page of two, then the rest.
    let (_, first) = app.get("/admin/v1/orders?status=PENDING&limit=1", Some(ADMIN)).await;
    assert_eq!(field(first["orders"].as_array().unwrap(), "order_id"), ids[1..2]);
    assert_eq!(first["next_cursor"], ids[1]);
    let (_, last) = app.get(&format!("/admin/v1/orders?status=PENDING&cursor={}", ids[1]), Some(ADMIN)).await;
    assert_eq!(field(last["orders"].as_array().unwrap(), "order_id"), ids[2..]);
    assert_eq!(last["next_cursor"], Value::Null);

    // One status entry per order: each change deleted the entry of the status before.
    let mut app = app;
    app.write_store(|store| {
        let entries = store.scan_prefix_keys(Table::OrdersByStatus, &[], usize::MAX).unwrap();
        assert_eq!(entries.len(), 3);
        // Then as a store written before the index existed: orders without entries.
        entries.into_iter().fold(WriteSet::new(), |ws, e| ws.delete(Table::OrdersByStatus, e))
    })
    .await;
    assert_eq!(orders_listed(&app, "CANCELLED").await, ids[..1], "built again on start");
    assert_eq!(orders_listed(&app, "PENDING").await, ids[1..]);
}

async fn orders_listed(app: &TestApp, status: &str) -> Vec<String> {
    let path =
        if status.is_empty() { "/admin/v1/orders".to_string() } else { format!("/admin/v1/orders?status={status}") };
    field(&walk(app, &path, "orders", 1).await, "order_id")
}

/// Entries of an index table (read with the server stopped).
async fn index_entries(app: &mut TestApp, table: Table) -> usize {
    let mut count = 0;
    app.write_store(|store| {
        count = store.scan_prefix_keys(table, &[], usize::MAX).unwrap().len();
        WriteSet::new()
    })
    .await;
    count
}

/// A checkout left RETRYING at authorize_payment (long backoff, flaky card).
async fn retrying_checkout(app: &TestApp) -> String {
    retrying_checkout_with(app, 5, 60_000, 1).await.2
}

#[tokio::test]
async fn a_saga_is_listed_by_its_current_state_and_its_type() {
    let app = spawn_app_with(|s| s.checkout.sync_wait_ms = 50).await;
    let (_, _, done) = app.pending_order(1).await;
    let completed = done["saga_id"].as_str().unwrap().to_string();
    let retrying = retrying_checkout(&app).await;
    let listed = |query: &'static str| {
        let app = &app;
        async move { field(&walk(app, &format!("/admin/v1/sagas{query}"), "sagas", 1).await, "saga_id") }
    };
    assert_eq!(listed("").await, [completed.as_str(), retrying.as_str()]);
    assert_eq!(listed("?type=place_order").await, [completed.as_str(), retrying.as_str()]);
    assert_eq!(listed("?state=RETRYING").await, [retrying.as_str()]);
    assert_eq!(listed("?state=RETRYING&type=place_order").await, [retrying.as_str()]);
    assert_eq!(listed("?state=COMPLETED&type=place_order").await, [completed.as_str()]);
    assert!(listed("?type=cancel_order").await.is_empty());

    let (status, body) =
        app.post(&format!("/admin/v1/sagas/{retrying}/abort"), Some(ADMIN), json!({ "reason": "test" })).await;
    assert_eq!(status, 200, "{body}");
    app.saga_reaches(&retrying, "ABORTED").await;
    assert!(listed("?state=RETRYING").await.is_empty(), "it left RETRYING");
    assert!(listed("?state=RETRYING&type=place_order").await.is_empty());
    assert_eq!(listed("?state=ABORTED").await, [retrying.as_str()]);
    assert_eq!(listed("?state=ABORTED&type=place_order").await, [retrying.as_str()]);
    assert_eq!(listed("?type=place_order").await, [completed.as_str(), retrying.as_str()], "listed once");
    assert_eq!(listed("?state=COMPLETED").await, [completed.as_str()]);
    let mut app = app;
    // Each saga has its type; only the ABORTED one also its state, and its type and state
    // (unfinished sagas are listed from the active list, COMPLETED ones by a filtered walk).
    assert_eq!(index_entries(&mut app, Table::SagasByFilter).await, 2 + 2, "type for both, state for the aborted");
}

#[tokio::test]
async fn a_sent_notification_leaves_the_queued_listing() {
    // Every first attempt fails: each notification is QUEUED a while, then SENT.
    let app = spawn_app_with(|s| s.notifications.fail_first_attempts = 1).await;
    let mut customers = Vec::new();
    for _ in 0..3 {
        customers.push(app.customer().await);
    }
    let kinds = |rows: &[Value]| field(rows, "kind");
    app.eventually("all sent", || async {
        walk(&app, "/admin/v1/notifications?status=SENT", "notifications", 2).await.len() == 3
    })
    .await;
    let sent = walk(&app, "/admin/v1/notifications?status=SENT", "notifications", 1).await;
    assert_eq!(kinds(&sent), ["email_verification"; 3]);
    let to: Vec<&str> = sent.iter().map(|n| n["to"].as_str().unwrap()).collect();
    let emails: Vec<&str> = customers.iter().map(|c| c.email.as_str()).collect();
    assert_eq!(to, emails, "oldest first");
    assert!(walk(&app, "/admin/v1/notifications?status=QUEUED", "notifications", 1).await.is_empty());
    assert!(walk(&app, "/admin/v1/notifications?status=QUEUED&kind=email_verification", "notifications", 1)
        .await
        .is_empty());
    let both = walk(&app, "/admin/v1/notifications?status=SENT&kind=email_verification", "notifications", 2).await;
    assert_eq!(field(&both, "notification_id"), field(&sent, "notification_id"));
    let all = walk(&app, "/admin/v1/notifications", "notifications", 2).await;
    assert_eq!(field(&all, "notification_id"), field(&sent, "notification_id"));
    let by_kind = walk(&app, "/admin/v1/notifications?kind=email_verification", "notifications", 1).await;
    assert_eq!(field(&by_kind, "notification_id"), field(&sent, "notification_id"));
    assert!(walk(&app, "/admin/v1/notifications?kind=order_shipped", "notifications", 1).await.is_empty());
    let mut app = app;
    assert_eq!(index_entries(&mut app, Table::NotificationsByFilter).await, 3 * 3, "status, kind, both");
}

#[tokio::test]
async fn webhook_events_are_listed_by_source_and_status_in_order_of_reception() {
    let app = spawn_app().await;
    let (_, _, order) = app.pending_order(1).await;
    let (auth, total) = (order["payment"]["authorization_id"].as_str().unwrap(), order["total"].as_str().unwrap());
    // Sent in the order their keys sort too, so events received in the same millisecond
    // keep it: carrier/w1, payment/w2, payment/w3, payment/w4.
    assert_eq!(app.deliver("w1", "no-such-tracking").await.0, 202);
    assert_eq!(app.capture("w2", auth, total).await.0, 200);
    assert_eq!(app.capture("w3", "no-such-authorization", "1.00").await.0, 202);
    let unknown = json!({ "id": "w4", "type": "payment.refunded", "data": {} });
    assert_eq!(app.webhook_signed("payment", PAYMENT_SECRET, None, &unknown).await.0, 422);

    let listed = |query: &'static str| {
        let app = &app;
        async move { field(&walk(app, &format!("/admin/v1/webhooks{query}"), "webhooks", 1).await, "event_id") }
    };
    assert_eq!(listed("").await, ["w1", "w2", "w3", "w4"]);
    assert_eq!(listed("?source=payment").await, ["w2", "w3", "w4"]);
    assert_eq!(listed("?source=carrier").await, ["w1"]);
    assert_eq!(listed("?status=needs_review").await, ["w1", "w3"]);
    assert_eq!(listed("?status=processed").await, ["w2"]);
    assert_eq!(listed("?source=payment&status=needs_review").await, ["w3"]);
    assert_eq!(listed("?source=payment&status=rejected").await, ["w4"]);
    assert!(listed("?source=carrier&status=processed").await.is_empty());

    let (_, first) = app.get("/admin/v1/webhooks?limit=3", Some(ADMIN)).await;
    assert_eq!(first["webhooks"].as_array().unwrap().len(), 3);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, rest) = app.get(&format!("/admin/v1/webhooks?cursor={cursor}"), Some(ADMIN)).await;
    assert_eq!(field(rest["webhooks"].as_array().unwrap(), "event_id"), ["w4"]);
    assert_eq!(rest["next_cursor"], Value::Null);
    let (status, body) = app.get("/admin/v1/webhooks?cursor=not-hex", Some(ADMIN)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_REQUEST")));
}

#[tokio::test]
async fn audit_rows_are_paged_by_entity_type_entity_or_not_at_all() {
    let app = spawn_app().await;
    let mut orders = Vec::new();
    for n in 0..2 {
        let (c, _, order) = app.pending_order(1).await;
        let id = order["order_id"].as_str().unwrap().to_string();
        assert_eq!(app.cancel_order(&c.token, &id).await.0, 200, "order {n}");
        orders.push(id);
    }
    let all = walk(&app, "/admin/v1/audit", "entries", 2).await;
    assert!(all.len() > 2, "{all:?}");
    let of_orders = walk(&app, "/admin/v1/audit?entity_type=order", "entries", 1).await;
    let expected: Vec<Value> = all.iter().filter(|a| a["entity_type"] == "order").cloned().collect();
    assert!(!expected.is_empty());
    assert_eq!(of_orders, expected, "one type's rows, oldest first");
    let one = walk(&app, &format!("/admin/v1/audit?entity_type=order&entity_id={}", orders[1]), "entries", 1).await;
    let expected: Vec<Value> = all.iter().filter(|a| a["entity_id"] == orders[1].as_str()).cloned().collect();
    assert!(!expected.is_empty());
    assert_eq!(one, expected);

    let (status, body) = app.get(&format!("/admin/v1/audit?entity_id={}", orders[0]), Some(ADMIN)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_REQUEST")), "{body}");
}
