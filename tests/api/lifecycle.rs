//! SEQ-ORDER-002 (confirm by payment webhook), SEQ-ORDER-003 (ship), SEQ-ORDER-004 (deliver
//! by carrier webhook), SEQ-NOTIF-001 (shipping email), and webhook signatures and dedupe.

use serde_json::json;

use crate::helpers::*;

fn total(order: &serde_json::Value) -> String {
    order["total"].as_str().unwrap().to_string()
}

fn auth(order: &serde_json::Value) -> String {
    order["payment"]["authorization_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_captured_payment_confirms_the_order_once() {
    let app = spawn_app().await;
    let (c, _, order) = app.pending_order(2).await;
    let id = order["order_id"].as_str().unwrap();
    let (status, body) = app.capture("evt_1", &auth(&order), &total(&order)).await;
    assert_eq!((status, body), (200, json!({ "status": "processed" })));
    let (_, now) = app.get(&format!("/v1/orders/{id}"), Some(&c.token)).await;
    assert_eq!((now["status"].as_str(), now["payment"]["status"].as_str()), (Some("CONFIRMED"), Some("CAPTURED")));
    assert_eq!(app.events("OrderConfirmed").await.len(), 1);
    let audit = app.audit("order", id).await;
    assert!(audit.iter().any(|a| a["actor"] == "webhook:payment"
        && a["before"]["status"] == "PENDING"
        && a["after"]["status"] == "CONFIRMED"));

    // The same event again, sequentially and concurrently: a duplicate, applied once.
    assert_eq!(app.capture("evt_1", &auth(&order), &total(&order)).await, (200, json!({ "status": "duplicate" })));
    let (a, t) = (auth(&order), total(&order));
    let again = futures::future::join_all((0..5).map(|_| app.capture("evt_1", &a, &t))).await;
    assert!(again.iter().all(|r| r.1["status"] == "duplicate"));
    // Another event for a CONFIRMED order is an invalid transition.
    let (status, body) = app.capture("evt_2", &auth(&order), &total(&order)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("INVALID_STATUS_TRANSITION")));
    assert_eq!(app.events("OrderConfirmed").await.len(), 1);
}

#[tokio::test]
async fn concurrent_first_deliveries_of_one_capture_apply_it_once() {
    let app = spawn_app().await;
    let (_, _, order) = app.pending_order(1).await;
    let (a, t) = (auth(&order), total(&order));
    let results = futures::future::join_all((0..6).map(|_| app.capture("evt_race", &a, &t))).await;
    let processed = results.iter().filter(|r| r.1["status"] == "processed").count();
    assert_eq!(processed, 1, "{results:?}");
    assert!(results.iter().all(|r| r.0 == 200));
    assert_eq!(app.events("OrderConfirmed").await.len(), 1);
}

#[tokio::test]
async fn captures_that_cannot_be_applied_are_kept_for_review() {
    let app = spawn_app().await;
    let (c, _, order) = app.pending_order(1).await;
    let (status, body) = app.capture("evt_unknown", "auth_nobody_has", "10.00").await;
    assert_eq!((status, body), (202, json!({ "status": "needs_review" })));
    let (status, body) = app.capture("evt_wrong_amount", &auth(&order), "0.01").await;
    assert_eq!((status, body), (202, json!({ "status": "needs_review" })));
    let (_, now) = app.get(&format!("/v1/orders/{}", order["order_id"].as_str().unwrap()), Some(&c.token)).await;
    assert_eq!(now["status"], "PENDING", "a mismatched amount is never applied");
    app.eventually("two admin alerts", || async { app.notifications("needs_review_alert").await.len() == 2 }).await;
    let alerts = app.notifications("needs_review_alert").await;
    assert!(alerts.iter().all(|a| a["to"] == "ops@cartwright.local"));
    assert!(alerts.iter().any(|a| a["payload"]["reason"].as_str().unwrap().contains("order total")));
    // Kept for an operator, with the reason and the body as received.
    let (status, kept) = app.get("/admin/v1/webhooks?source=payment&status=needs_review", Some(ADMIN)).await;
    assert_eq!(status, 200);
    let kept = kept["webhooks"].as_array().unwrap();
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0]["event_id"], "evt_unknown");
    assert!(kept[0]["detail"].as_str().unwrap().contains("auth_nobody_has"));
    assert_eq!(kept[1]["body"]["data"]["amount"], "0.01");
    assert_eq!(app.get("/admin/v1/webhooks", Some(FULFILLMENT)).await.0, 403);
    // Kept: a redelivery is a duplicate, not a second alert.
    assert_eq!(app.capture("evt_unknown", "auth_nobody_has", "10.00").await.1["status"], "duplicate");
    assert_eq!(app.notifications("needs_review_alert").await.len(), 2);
}

#[tokio::test]
async fn bad_signatures_are_refused_and_record_nothing() {
    let app = spawn_app().await;
    let (_, _, order) = app.pending_order(1).await;
    let body = json!({ "id": "evt_sig", "type": "payment.captured", "data": { "authorization_id": auth(&order), "amount": total(&order) } });
    let stale = chrono::Utc::now().timestamp() - 301;
    for (secret, t) in [("wrong-secret", None), (PAYMENT_SECRET, Some(stale)), (CARRIER_SECRET, None)] {
        let (status, b) = app.webhook_signed("payment", secret, t, &body).await;
        assert_eq!((status, b["error"]["code"].as_str()), (401, Some("INVALID_SIGNATURE")));
    }
    // Tampered body: signed one thing, sent another.
    let raw = serde_json::to_vec(&body).unwrap();
    let sig = cartwright::operations::webhooks::sign(PAYMENT_SECRET, chrono::Utc::now().timestamp(), &raw);
    let mut tampered = raw.clone();
    let n = tampered.len();
    tampered[n - 3] = b'9';
    let resp = app
        .client
        .post(format!("{}/webhooks/payment", app.url))
        .header("Cartwright-Signature", &sig)
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = app.client.post(format!("{}/webhooks/payment", app.url)).body(raw.clone()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401, "missing header");
    assert!(app.events("OrderConfirmed").await.is_empty());
    // Nothing was recorded: the genuine delivery is processed, not a duplicate.
    assert_eq!(app.webhook_signed("payment", PAYMENT_SECRET, None, &body).await.1["status"], "processed");
}

#[tokio::test]
async fn malformed_and_unknown_events() {
    let app = spawn_app().await;
    let (status, body) = app
        .webhook_signed("payment", PAYMENT_SECRET, None, &json!({ "id": "e1", "type": "payment.refunded", "data": {} }))
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("UNKNOWN_EVENT_TYPE")));
    let (status, body) = app
        .webhook_signed("carrier", CARRIER_SECRET, None, &json!({ "id": "e2", "type": "payment.captured", "data": {} }))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("UNKNOWN_EVENT_TYPE")),
        "each source has its own types"
    );
    let (status, _) = app.webhook_signed("payment", PAYMENT_SECRET, None, &json!({ "type": "payment.captured" })).await;
    assert_eq!(status, 400);
    let (status, body) = app
        .webhook_signed(
            "payment",
            PAYMENT_SECRET,
            None,
            &json!({ "id": "e3", "type": "payment.captured", "data": { "authorization_id": "a", "amount": 5 } }),
        )
        .await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("data.amount")));
}

#[tokio::test]
async fn shipping_deducts_stock_emails_the_tracking_number_and_blocks_cancellation() {
    let app = spawn_app().await;
    let (c, p, order) = app.pending_order(3).await;
    let id = order["order_id"].as_str().unwrap();
    // Not CONFIRMED yet: refused, nothing deducted.
    let (status, body) = app.ship(FULFILLMENT, id, "1Z999").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("INVALID_STATUS_TRANSITION")));
    assert_eq!(app.stock_of(&p).await, (10, 3));

    app.capture("evt_cap", &auth(&order), &total(&order)).await;
    let (status, shipped) = app.ship(FULFILLMENT, id, "1Z999").await;
    assert_eq!(status, 200, "{shipped}");
    assert_eq!((shipped["status"].as_str(), shipped["tracking_number"].as_str()), (Some("SHIPPED"), Some("1Z999")));
    assert_eq!(app.stock_of(&p).await, (7, 0), "on_hand -= 3, reserved -= 3");
    assert_eq!(app.events("InventoryDeducted").await.len(), 1);
    assert_eq!(app.events("OrderShipped").await[0]["data"]["tracking_number"], "1Z999");
    app.eventually("shipping email sent", || async {
        app.notifications("order_shipped")
            .await
            .iter()
            .any(|n| n["status"] == "SENT" && n["to"] == c.email.as_str() && n["payload"]["tracking_number"] == "1Z999")
    })
    .await;

    // SEQ-ORDER-005's exception: a shipped order cannot be cancelled.
    let (status, body) = app.cancel_order(&c.token, id).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("CANCELLATION_NOT_ALLOWED")));
    // Shipping again is an invalid transition; nothing is deducted twice.
    let (status, _) = app.ship(ADMIN, id, "1Z999").await;
    assert_eq!(status, 409);
    assert_eq!(app.stock_of(&p).await, (7, 0));
}

#[tokio::test]
async fn a_tracking_number_names_one_order() {
    let app = spawn_app().await;
    let (_, _, a) = app.pending_order(1).await;
    let (_, pb, b) = app.pending_order(1).await;
    app.capture("ea", &auth(&a), &total(&a)).await;
    app.capture("eb", &auth(&b), &total(&b)).await;
    assert_eq!(app.ship(FULFILLMENT, a["order_id"].as_str().unwrap(), "TRK-1").await.0, 200);
    let (status, body) = app.ship(FULFILLMENT, b["order_id"].as_str().unwrap(), "TRK-1").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("TRACKING_NUMBER_IN_USE")));
    assert_eq!(app.stock_of(&pb).await, (10, 1), "nothing deducted");
    let c = app.customer().await;
    assert_eq!(app.ship(&c.token, b["order_id"].as_str().unwrap(), "TRK-2").await.0, 403);
    assert_eq!(app.ship(FULFILLMENT, &uuid::Uuid::now_v7().to_string(), "TRK-3").await.0, 404);
    assert_eq!(app.ship(FULFILLMENT, b["order_id"].as_str().unwrap(), "bad number!").await.0, 400);
}

#[tokio::test]
async fn delivery_webhooks_deliver_shipped_orders_once_and_ignore_the_rest() {
    let mut app = spawn_app().await;
    let (c, _, order) = app.pending_order(1).await;
    let id = order["order_id"].as_str().unwrap().to_string();
    app.capture("cap", &auth(&order), &total(&order)).await;
    app.ship(FULFILLMENT, &id, "TRK-D").await;

    let (status, body) = app.deliver("d1", "TRK-D").await;
    assert_eq!((status, body), (200, json!({ "status": "processed" })));
    let (_, now) = app.get(&format!("/v1/orders/{id}"), Some(&c.token)).await;
    assert_eq!(now["status"], "DELIVERED");
    assert_eq!(app.events("OrderDelivered").await.len(), 1);
    app.eventually("delivery email queued", || async { app.notifications("order_delivered").await.len() == 1 }).await;

    // A redelivery after a restart is still a duplicate; another event id is ignored.
    app.restart().await;
    assert_eq!(app.deliver("d1", "TRK-D").await.1["status"], "duplicate");
    assert_eq!(app.deliver("d2", "TRK-D").await, (200, json!({ "status": "ignored" })));
    let (status, body) = app.deliver("d3", "TRK-UNKNOWN").await;
    assert_eq!((status, body), (202, json!({ "status": "needs_review" })));
    assert_eq!(app.events("OrderDelivered").await.len(), 1);
}

#[tokio::test]
async fn a_restart_between_shipping_and_the_email_still_sends_it_once() {
    // Deliveries fail for a while, so the email is still owed when the server stops.
    let mut app = spawn_app_with(|s| {
        s.notifications.fail_first_attempts = 1;
        s.notifications.initial_backoff_ms = 400;
    })
    .await;
    let (c, _, order) = app.pending_order(1).await;
    let id = order["order_id"].as_str().unwrap();
    app.capture("cap-r", &auth(&order), &total(&order)).await;
    assert_eq!(app.ship(FULFILLMENT, id, "TRK-R").await.0, 200);
    app.restart().await;
    app.eventually("shipping email sent after the restart", || async {
        app.notifications("order_shipped").await.iter().any(|n| n["status"] == "SENT")
    })
    .await;
    let emails = app.notifications("order_shipped").await;
    assert_eq!(emails.len(), 1, "one email per shipment: {emails:?}");
    assert_eq!(
        (emails[0]["to"].as_str(), emails[0]["payload"]["tracking_number"].as_str()),
        (Some(c.email.as_str()), Some("TRK-R"))
    );
    app.restart().await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(app.notifications("order_shipped").await.len(), 1);
}

#[tokio::test]
async fn a_refund_of_a_late_capture_that_keeps_failing_parks_and_alerts_the_admin() {
    let app = spawn_app().await;
    // tok_refund_flaky: the first 3 voids/refunds of its authorization fail. The cancel
    // saga gets one (and parks), the capture's refund two: all three fail.
    app.set_policy("cancel_order", "refund_payment", 1, 10).await;
    app.set_policy("refund_capture", "refund_captured_payment", 2, 10).await;
    let (c, order) = app.cancelled_order_with_a_flaky_refund().await;
    let id = order["order_id"].as_str().unwrap();

    let (status, _) = app.capture("evt_late_rf", &auth(&order), &total(&order)).await;
    assert_eq!(status, 409);
    let (_, sagas) = app.get("/admin/v1/sagas?type=refund_capture", Some(ADMIN)).await;
    let saga_id = sagas["sagas"][0]["saga_id"].as_str().unwrap().to_string();
    let saga = app.saga_reaches(&saga_id, "STUCK").await;
    assert_eq!(saga["steps"][0]["attempts"], 2);
    let (_, now) = app.get(&format!("/v1/orders/{id}"), Some(&c.token)).await;
    assert_eq!(now["refund"]["status"], "PENDING_MANUAL");
    app.eventually("a refund_failed_alert", || async { !app.notifications("refund_failed_alert").await.is_empty() })
        .await;
    let alerts = app.notifications("refund_failed_alert").await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        (alerts[0]["to"].as_str(), alerts[0]["payload"]["order_id"].as_str()),
        (Some("ops@cartwright.local"), Some(id))
    );
    assert_eq!(alerts[0]["payload"]["saga_id"], saga_id.as_str());

    // An operator resumes it once the gateway is back: refunded.
    let (status, _) =
        app.post(&format!("/admin/v1/sagas/{saga_id}/resume"), Some(ADMIN), json!({ "reset_attempts": true })).await;
    assert_eq!(status, 200);
    app.saga_reaches(&saga_id, "COMPLETED").await;
    let (_, now) = app.get(&format!("/v1/orders/{id}"), Some(&c.token)).await;
    assert_eq!(
        (now["refund"]["status"].as_str(), now["payment"]["status"].as_str()),
        (Some("REFUNDED"), Some("REFUNDED"))
    );
}
