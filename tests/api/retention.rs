//! What the sweeper deletes once its time is up: Idempotency-Keys past their TTL, finished
//! sagas and webhook events past their retention; and what it never deletes.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

/// Everything kept for one second, swept every second.
async fn short_memory_app() -> TestApp {
    spawn_app_with(|s| {
        s.auth.sweep_interval_secs = 1;
        s.checkout.idempotency_ttl_secs = 1;
        s.sagas.retention_secs = 1;
        s.webhooks.retention_secs = 1;
    })
    .await
}

/// The sweeper runs every second: whatever it deletes is gone well within this.
const A_FEW_SWEEPS: Duration = Duration::from_secs(20);

async fn saga_status(app: &TestApp, id: &str) -> u16 {
    app.get(&format!("/admin/v1/sagas/{id}"), Some(ADMIN)).await.0
}

#[tokio::test]
async fn an_idempotency_key_past_its_ttl_starts_a_new_checkout() {
    let app = short_memory_app().await;
    let p = app.product("10.00", 10).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let (status, first) = app.place_order_with_key(&c.token, "tok_visa", "checkout-1").await;
    assert_eq!(status, 201, "{first}");
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 2 })).await;

    // Until the key expires a repeat answers the first order; after, it is a new checkout.
    let deadline = std::time::Instant::now() + A_FEW_SWEEPS;
    let second: Value = loop {
        let (status, order) = app.place_order_with_key(&c.token, "tok_visa", "checkout-1").await;
        assert_eq!(status, 201, "{order}");
        if order["order_id"] != first["order_id"] {
            break order;
        }
        assert!(std::time::Instant::now() < deadline, "the key never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(second["saga_id"], first["saga_id"]);
    assert_eq!(second["items"][0]["quantity"], 2, "the new checkout took the cart as it is now");
    assert_eq!(app.stock_of(&p).await, (10, 3));
}

#[tokio::test]
async fn finished_sagas_and_webhook_events_past_retention_are_deleted_and_a_stuck_saga_is_kept() {
    let app = short_memory_app().await;
    let p = app.product("10.00", 10).await;
    let c = app.verified_customer().await;

    // A STUCK cancellation first: it is the oldest saga of all.
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let (status, refund_flaky) = app.place_order(&c.token, "tok_refund_flaky").await;
    assert_eq!(status, 201, "{refund_flaky}");
    let (status, cancelled) = app.cancel_order(&c.token, refund_flaky["order_id"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{cancelled}");
    let (_, stuck) = app.get("/admin/v1/sagas?state=STUCK", Some(ADMIN)).await;
    let stuck_id = stuck["sagas"][0]["saga_id"].as_str().expect("a STUCK saga").to_string();

    // Then a COMPLETED checkout, a FAILED one, and a captured payment's webhook event.
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let (status, declined) = app.place_order(&c.token, "tok_declined").await;
    assert_eq!(status, 402, "{declined}");
    let (status, order) = app.place_order(&c.token, "tok_visa").await;
    assert_eq!(status, 201, "{order}");
    let completed_id = order["saga_id"].as_str().unwrap().to_string();
    let (_, failed) = app.get("/admin/v1/sagas?state=FAILED", Some(ADMIN)).await;
    let failed_id = failed["sagas"][0]["saga_id"].as_str().expect("a FAILED saga").to_string();
    let auth = order["payment"]["authorization_id"].as_str().unwrap();
    let (status, body) = app.capture("evt_kept_a_second", auth, order["total"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{body}");

    let deadline = std::time::Instant::now() + A_FEW_SWEEPS;
    loop {
        let (_, hooks) = app.get("/admin/v1/webhooks", Some(ADMIN)).await;
        let sagas = (saga_status(&app, &completed_id).await, saga_status(&app, &failed_id).await);
        if sagas == (404, 404) && hooks["webhooks"] == json!([]) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still there: sagas {sagas:?}, webhooks {hooks}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = app.get(&format!("/admin/v1/sagas/{completed_id}"), Some(ADMIN)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("SAGA_NOT_FOUND")));
    assert_eq!(app.saga(&stuck_id).await["state"], "STUCK", "older than the deleted ones, and kept");
    // The order itself is kept; only its saga's log is gone.
    let (status, order) = app.get(&format!("/v1/orders/{}", order["order_id"].as_str().unwrap()), Some(&c.token)).await;
    assert_eq!((status, order["status"].as_str()), (200, Some("CONFIRMED")));
}
