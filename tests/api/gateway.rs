//! The `http` payment gateway against a fake gateway server: declines, 5xx, timeouts,
//! idempotency keys, and one slow call never holding up other checkouts.

use serde_json::json;

use crate::fake_gateway::FakeGateway;
use crate::helpers::*;

async fn app_with_gateway(gw: &FakeGateway) -> TestApp {
    let url = gw.url.clone();
    spawn_app_with(move |s| {
        s.payment.gateway = "http".into();
        s.payment.http.base_url = url;
        s.payment.http.timeout_ms = 300;
    })
    .await
}

async fn checkout(app: &TestApp, card: &str) -> (u16, serde_json::Value) {
    let p = app.product("12.50", 10).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 2 })).await;
    app.place_order(&c.token, card).await
}

#[tokio::test]
async fn authorizes_with_an_idempotency_key_per_saga_and_step() {
    let gw = FakeGateway::start(0, 1).await;
    let app = app_with_gateway(&gw).await;
    let (status, order) = checkout(&app, "tok_ok").await;
    assert_eq!(status, 201, "{order}");
    let key = format!("{}:authorize_payment", order["saga_id"].as_str().unwrap());
    let ledger = gw.ledger.lock().unwrap();
    assert_eq!(ledger.calls("authorize", &key), 1);
    let auth = order["payment"]["authorization_id"].as_str().unwrap();
    assert_eq!(ledger.authorizations[auth], ("tok_ok".to_string(), "30.99".to_string()));
}

#[tokio::test]
async fn a_4xx_is_permanent_and_a_402_reason_reaches_the_customer() {
    let gw = FakeGateway::start(0, 1).await;
    let app = app_with_gateway(&gw).await;
    let (status, body) = checkout(&app, "tok_decline").await;
    assert_eq!((status, body["error"]["code"].as_str()), (402, Some("PAYMENT_FAILED")));
    assert_eq!(body["error"]["details"]["reason"], "insufficient_funds");
    let (status, _) = checkout(&app, "tok_bad_request").await;
    assert_eq!(status, 402);
    // Each was tried once: 4xx are not retried.
    assert!(gw.ledger.lock().unwrap().calls.values().all(|n| *n == 1));
}

#[tokio::test]
async fn a_5xx_is_retried_under_the_same_key() {
    let gw = FakeGateway::start(0, 1).await;
    let app = app_with_gateway(&gw).await;
    let (status, order) = checkout(&app, "tok_503_twice").await;
    assert_eq!(status, 201, "{order}");
    let key = format!("{}:authorize_payment", order["saga_id"].as_str().unwrap());
    assert_eq!(gw.ledger.lock().unwrap().calls("authorize", &key), 3);
}

#[tokio::test]
async fn a_gateway_that_stays_down_ends_in_payment_failed_with_nothing_held() {
    let gw = FakeGateway::start(0, 1).await;
    let app = app_with_gateway(&gw).await;
    app.set_policy("place_order", "authorize_payment", 3, 10).await;
    let (status, body) = checkout(&app, "tok_503").await;
    assert_eq!((status, body["error"]["code"].as_str()), (402, Some("PAYMENT_FAILED")));
    assert!(body["error"]["details"]["reason"].as_str().unwrap().contains("unavailable"));
    let (_, sagas) = app.get("/admin/v1/sagas?state=FAILED", Some(ADMIN)).await;
    let saga = &sagas["sagas"][0];
    assert_eq!(saga["steps"][4]["attempts"], 3);
    let p = saga["data"]["lines"][0]["product_id"].as_str().unwrap();
    assert_eq!(app.stock_of(p).await, (10, 0));
}

#[tokio::test]
async fn an_authorization_applied_but_never_answered_is_found_and_voided_when_the_checkout_fails() {
    let gw = FakeGateway::start(0, 1).await;
    let app = app_with_gateway(&gw).await;
    app.set_policy("place_order", "authorize_payment", 2, 10).await;
    // Both attempts are applied by the gateway and time out at the server; the gateway
    // answers again in time afterwards.
    let (status, body) = checkout(&app, "tok_applied_then_hang").await;
    let saga_id = match status {
        402 => {
            let (_, sagas) = app.get("/admin/v1/sagas?state=FAILED&type=place_order", Some(ADMIN)).await;
            sagas["sagas"][0]["saga_id"].as_str().unwrap().to_string()
        }
        202 => body["saga_id"].as_str().unwrap().to_string(),
        other => panic!("{other}: {body}"),
    };
    let saga = app.saga_reaches(&saga_id, "FAILED").await;
    assert_eq!(saga["error"]["code"], "PAYMENT_FAILED");
    let attempts = saga["failed_attempts"].as_array().unwrap();
    assert!(attempts.iter().any(|a| a["work"] == "authorize_payment" && a["kind"] == "uncertain"), "{saga}");
    let ledger = gw.ledger.lock().unwrap();
    let auth = format!("fake_auth_{saga_id}_authorize_payment");
    assert!(
        ledger.authorizations.contains_key(&auth),
        "the gateway made the authorization: {:?}",
        ledger.authorizations
    );
    assert_eq!(ledger.voids.get(&auth).map(Vec::len), Some(1), "and it was voided once: {:?}", ledger.voids);
}

#[tokio::test]
async fn a_call_that_hangs_past_the_timeout_is_retried_under_the_same_key() {
    let gw = FakeGateway::start(0, 1).await;
    let app = app_with_gateway(&gw).await;
    let (status, order) = checkout(&app, "tok_hang_once").await;
    assert_eq!(status, 201, "{order}");
    // The first call was cut at the 300 ms timeout; the retry carried the same key.
    let key = format!("{}:authorize_payment", order["saga_id"].as_str().unwrap());
    assert_eq!(gw.ledger.lock().unwrap().calls("authorize", &key), 2);
}

#[tokio::test]
async fn a_slow_gateway_call_never_holds_up_another_checkout() {
    let gw = FakeGateway::start(0, 1).await;
    let url = gw.url.clone();
    let app = spawn_app_with(move |s| {
        s.payment.gateway = "http".into();
        s.payment.http.base_url = url;
        s.payment.http.timeout_ms = 5000;
    })
    .await;
    let p = app.product("12.50", 10).await;
    let (slow_c, fast_c) = (app.verified_customer().await, app.verified_customer().await);
    for c in [&slow_c, &fast_c] {
        app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    }
    // The slow card's authorization takes 1.2 s; the other checkout starts just after it.
    let slow = async {
        let r = app.place_order(&slow_c.token, "tok_slow").await;
        (r.0, std::time::Instant::now())
    };
    let fast = async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let r = app.place_order(&fast_c.token, "tok_ok").await;
        (r.0, std::time::Instant::now())
    };
    let ((slow_status, slow_done), (fast_status, fast_done)) = futures::join!(slow, fast);
    assert_eq!((slow_status, fast_status), (201, 201));
    assert!(fast_done < slow_done, "the second checkout finished after the slow one: it was blocked");
}

/// A server on the fake gateway `gw`, and a verified customer's order of one item placed through it.
async fn ordered_through(gw: &FakeGateway) -> (TestApp, Customer, serde_json::Value) {
    let app = app_with_gateway(gw).await;
    let p = app.product("12.50", 10).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let (status, order) = app.place_order(&c.token, "tok_ok").await;
    assert_eq!(status, 201, "{order}");
    (app, c, order)
}

#[tokio::test]
async fn cancelling_voids_through_the_gateway_once() {
    let gw = FakeGateway::start(0, 1).await;
    let (app, c, order) = ordered_through(&gw).await;
    let (status, cancelled) = app.cancel_order(&c.token, order["order_id"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["refund"]["status"], "VOIDED");
    let auth = order["payment"]["authorization_id"].as_str().unwrap();
    assert_eq!(gw.ledger.lock().unwrap().voids[auth].len(), 1);
}

#[tokio::test]
async fn a_capture_for_a_cancelled_order_is_refunded_once_by_a_saga() {
    let gw = FakeGateway::start(0, 1).await;
    let (app, c, order) = ordered_through(&gw).await;
    let order_id = order["order_id"].as_str().unwrap();
    let (status, cancelled) = app.cancel_order(&c.token, order_id).await;
    assert_eq!((status, cancelled["refund"]["status"].as_str()), (200, Some("VOIDED")), "{cancelled}");
    let (auth, total) = (order["payment"]["authorization_id"].as_str().unwrap(), order["total"].as_str().unwrap());

    // The gateway captured anyway: the contract answers 409, and the money goes back.
    let (status, body) = app.capture("evt_late", auth, total).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("INVALID_STATUS_TRANSITION")), "{body}");
    let (_, sagas) = app.get("/admin/v1/sagas?type=refund_capture", Some(ADMIN)).await;
    let sagas = sagas["sagas"].as_array().unwrap().clone();
    assert_eq!(sagas.len(), 1);
    let saga_id = sagas[0]["saga_id"].as_str().unwrap();
    let saga = app.saga_reaches(saga_id, "COMPLETED").await;
    assert_eq!((saga["order_id"].as_str(), saga["input"]["event_id"].as_str()), (Some(order_id), Some("evt_late")));
    let key = format!("{saga_id}:refund_captured_payment");
    assert_eq!(gw.ledger.lock().unwrap().refunds[auth], vec![key]);
    let (_, now) = app.get(&format!("/v1/orders/{order_id}"), Some(&c.token)).await;
    assert_eq!((now["status"].as_str(), now["refund"]["status"].as_str()), (Some("CANCELLED"), Some("REFUNDED")));
    assert_eq!(now["payment"]["status"], "REFUNDED");
    let (_, events) = app.get("/admin/v1/webhooks?source=payment&status=refund_started", Some(ADMIN)).await;
    let events = events["webhooks"].as_array().unwrap();
    assert_eq!((events.len(), events[0]["event_id"].as_str()), (1, Some("evt_late")));

    // The same event again is a duplicate and starts nothing.
    assert_eq!(app.capture("evt_late", auth, total).await, (200, json!({ "status": "duplicate" })));
    let (_, again) = app.get("/admin/v1/sagas?type=refund_capture", Some(ADMIN)).await;
    assert_eq!(again["sagas"].as_array().unwrap().len(), 1);
    // Another event id capturing the same authorization is not refunded a second time.
    let (status, _) = app.capture("evt_late_again", auth, total).await;
    assert_eq!(status, 409);
    let (_, again) = app.get("/admin/v1/sagas?type=refund_capture", Some(ADMIN)).await;
    assert_eq!(again["sagas"].as_array().unwrap().len(), 1);
    let (_, rejected) = app.get("/admin/v1/webhooks?source=payment&status=rejected", Some(ADMIN)).await;
    assert_eq!(rejected["webhooks"][0]["event_id"], "evt_late_again");
    assert_eq!(gw.ledger.lock().unwrap().refunds[auth].len(), 1);
}
