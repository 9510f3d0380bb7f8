//! Unpaid orders expire through the cancel_order saga: a persisted timer that fires after a
//! restart too, exactly once, and loses to a capture that gets there first.

use std::time::Duration;

use crate::helpers::*;

fn short_expiry(s: &mut cartwright::config::Settings) {
    s.orders.expire_unpaid_after_secs = 1;
}

async fn order_status(app: &TestApp, id: &str) -> serde_json::Value {
    app.get(&format!("/admin/v1/orders/{id}"), Some(ADMIN)).await.1
}

/// The expiry's cancel saga ran to the end (released, voided).
async fn expiry_done(app: &TestApp) {
    app.eventually("the expiry's cancel saga completed", || async {
        let (_, sagas) = app.get("/admin/v1/sagas?type=cancel_order&state=COMPLETED", Some(ADMIN)).await;
        !sagas["sagas"].as_array().unwrap().is_empty()
    })
    .await;
}

#[tokio::test]
async fn an_unpaid_order_is_cancelled_with_payment_timeout() {
    let app = spawn_app_with(short_expiry).await;
    let (c, p, order) = app.pending_order(2).await;
    let id = order["order_id"].as_str().unwrap().to_string();
    expiry_done(&app).await;
    let o = order_status(&app, &id).await;
    assert_eq!(o["status"], "CANCELLED");
    assert_eq!(
        (o["cancel_reason"].as_str(), o["refund"]["status"].as_str()),
        (Some("payment_timeout"), Some("VOIDED"))
    );
    assert_eq!(app.stock_of(&p).await, (10, 0));
    let cancelled = app.events("OrderCancelled").await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["data"]["reason"], "payment_timeout");
    app.eventually("customer told", || async {
        app.notifications("order_cancelled").await.iter().any(|n| n["to"] == c.email.as_str())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, sagas) = app.get("/admin/v1/sagas?type=cancel_order", Some(ADMIN)).await;
    assert_eq!(sagas["sagas"].as_array().unwrap().len(), 1, "the timer fired once");
}

#[tokio::test]
async fn a_capture_before_expiry_wins() {
    let app = spawn_app_with(short_expiry).await;
    let (_, p, order) = app.pending_order(1).await;
    let id = order["order_id"].as_str().unwrap().to_string();
    let (status, _) = app
        .capture("cap-early", order["payment"]["authorization_id"].as_str().unwrap(), order["total"].as_str().unwrap())
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(order_status(&app, &id).await["status"], "CONFIRMED");
    assert!(app.events("OrderCancelled").await.is_empty());
    assert_eq!(app.stock_of(&p).await, (10, 1));
}

#[tokio::test]
async fn captures_racing_the_expiry_never_both_apply() {
    let app = spawn_app_with(short_expiry).await;
    let mut orders = Vec::new();
    for _ in 0..4 {
        orders.push(app.pending_order(1).await.2);
    }
    // Aim the captures at the moment the timers fire.
    tokio::time::sleep(Duration::from_millis(950)).await;
    let captures = futures::future::join_all(orders.iter().enumerate().map(|(i, o)| {
        let (auth, total) =
            (o["payment"]["authorization_id"].as_str().unwrap().to_string(), o["total"].as_str().unwrap().to_string());
        let app = &app;
        async move { app.capture(&format!("race-{i}"), &auth, &total).await }
    }))
    .await;
    for o in &orders {
        let id = o["order_id"].as_str().unwrap().to_string();
        app.eventually("every order settled", || async { order_status(&app, &id).await["status"] != "PENDING" }).await;
    }
    for (o, (status, _)) in orders.iter().zip(&captures) {
        let now = order_status(&app, o["order_id"].as_str().unwrap()).await;
        match now["status"].as_str().unwrap() {
            "CONFIRMED" => assert_eq!(*status, 200),
            "CANCELLED" => {
                assert_eq!(*status, 409, "a capture after the expiry is refused");
                assert_eq!(now["cancel_reason"], "payment_timeout");
            }
            other => panic!("unexpected {other}"),
        }
    }
    let confirmed = app.events("OrderConfirmed").await.len();
    let cancelled = app.events("OrderCancelled").await.len();
    assert_eq!(confirmed + cancelled, 4, "each order either confirmed or cancelled, never both");
}

#[tokio::test]
async fn the_timer_survives_a_restart_and_fires_once() {
    let mut app = spawn_app_with(|s| s.orders.expire_unpaid_after_secs = 2).await;
    let (_, p, order) = app.pending_order(1).await;
    let id = order["order_id"].as_str().unwrap().to_string();
    app.stop().await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    app.restart().await;
    expiry_done(&app).await;
    assert_eq!(order_status(&app, &id).await["status"], "CANCELLED");
    assert_eq!(app.stock_of(&p).await, (10, 0));
    app.restart().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.events("OrderCancelled").await.len(), 1);
    let (_, sagas) = app.get("/admin/v1/sagas?type=cancel_order", Some(ADMIN)).await;
    assert_eq!(sagas["sagas"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_capture_arriving_after_the_expiry_is_refunded_by_a_saga() {
    let app = spawn_app_with(short_expiry).await;
    let (_, p, order) = app.pending_order(1).await;
    let id = order["order_id"].as_str().unwrap().to_string();
    expiry_done(&app).await;
    assert_eq!(order_status(&app, &id).await["cancel_reason"], "payment_timeout");

    // The gateway captured anyway: the contract answers 409, and the money goes back.
    let (auth, total) = (order["payment"]["authorization_id"].as_str().unwrap(), order["total"].as_str().unwrap());
    let (status, body) = app.capture("evt_after_expiry", auth, total).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("INVALID_STATUS_TRANSITION")), "{body}");
    let (_, sagas) = app.get("/admin/v1/sagas?type=refund_capture", Some(ADMIN)).await;
    let sagas = sagas["sagas"].as_array().unwrap().clone();
    assert_eq!(sagas.len(), 1, "{sagas:?}");
    let saga = app.saga_reaches(sagas[0]["saga_id"].as_str().unwrap(), "COMPLETED").await;
    assert_eq!(
        (saga["order_id"].as_str(), saga["input"]["event_id"].as_str()),
        (Some(id.as_str()), Some("evt_after_expiry"))
    );
    let o = order_status(&app, &id).await;
    assert_eq!(
        (o["status"].as_str(), o["refund"]["status"].as_str(), o["payment"]["status"].as_str()),
        (Some("CANCELLED"), Some("REFUNDED"), Some("REFUNDED")),
        "{o}"
    );
    let (_, events) = app.get("/admin/v1/webhooks?source=payment&status=refund_started", Some(ADMIN)).await;
    let events = events["webhooks"].as_array().unwrap();
    assert_eq!((events.len(), events[0]["event_id"].as_str()), (1, Some("evt_after_expiry")), "{events:?}");
    assert_eq!(app.stock_of(&p).await, (10, 0), "released once, by the expiry");
}
