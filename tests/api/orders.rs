//! SEQ-ORDER-001 (place order) and SEQ-ORDER-005 (cancel order) through the saga engine.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn placing_an_order_reserves_authorizes_creates_and_clears_the_cart() {
    let app = spawn_app().await;
    let (a, b) = (app.product("19.90", 5).await, app.product("5.00", 10).await);
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": a, "quantity": 2 })).await;
    app.add_to_cart(&c.token, json!({ "product_id": b, "quantity": 1 })).await;

    let (status, order) = app.place_order(&c.token, "tok_visa").await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["customer_id"], c.id.as_str());
    assert_eq!(order["subtotal"], "44.80");
    assert_eq!(order["shipping_cost"], "5.99");
    assert_eq!(order["total"], "50.79");
    assert_eq!(order["payment"]["status"], "AUTHORIZED");
    assert!(order["payment"]["authorization_id"].as_str().unwrap().starts_with("sim_auth_"));
    assert_eq!(order["items"].as_array().unwrap().len(), 2);
    assert_eq!(order["shipping_address"]["country"], "US");

    assert_eq!(app.stock_of(&a).await, (5, 2));
    assert_eq!(app.stock_of(&b).await, (10, 1));
    assert_eq!(app.cart(&c.token).await["items"], json!([]));
    for ty in ["InventoryReserved", "OrderPlaced", "CartCleared"] {
        assert!(!app.events(ty).await.is_empty(), "{ty}");
    }
    let saga = app.saga(order["saga_id"].as_str().unwrap()).await;
    assert_eq!(saga["state"], "COMPLETED");
    let names: Vec<&str> = saga["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "validate_customer",
            "load_cart",
            "reserve_inventory",
            "calculate_shipping",
            "authorize_payment",
            "create_order",
            "clear_cart"
        ]
    );
    assert!(saga["steps"].as_array().unwrap().iter().all(|s| s["state"] == "SUCCEEDED" && s["attempts"] == 1));

    let id = order["order_id"].as_str().unwrap();
    let (status, mine) = app.get(&format!("/v1/orders/{id}"), Some(&c.token)).await;
    assert_eq!((status, &mine["order_id"]), (200, &order["order_id"]));
    let (_, list) = app.get("/v1/orders", Some(&c.token)).await;
    assert_eq!(list["orders"].as_array().unwrap().len(), 1);
    let other = app.customer().await;
    assert_eq!(app.get(&format!("/v1/orders/{id}"), Some(&other.token)).await.0, 404);
    assert_eq!(app.get(&format!("/v1/sagas/{}", order["saga_id"].as_str().unwrap()), Some(&other.token)).await.0, 404);
}

#[tokio::test]
async fn shipping_is_free_over_the_threshold() {
    let app = spawn_app().await;
    let p = app.product("25.00", 5).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 2 })).await;
    let (status, order) = app.place_order(&c.token, "tok_visa").await;
    assert_eq!(status, 201);
    assert_eq!((order["shipping_cost"].as_str(), order["total"].as_str()), (Some("0.00"), Some("50.00")));
}

#[tokio::test]
async fn only_signed_in_verified_customers_with_a_cart_may_order() {
    let app = spawn_app().await;
    let p = app.product("1.00", 5).await;
    for token in [None, Some("cws_forged")] {
        let (status, body) = app
            .post("/v1/orders", token, json!({ "shipping_address": address("US"), "payment": { "token": "tok_visa" } }))
            .await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("REGISTRATION_REQUIRED")));
    }
    let unverified = app.customer().await;
    app.add_to_cart(&unverified.token, json!({ "product_id": p, "quantity": 1 })).await;
    let (status, body) = app.place_order(&unverified.token, "tok_visa").await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("EMAIL_NOT_VERIFIED")));

    let verified = app.verified_customer().await;
    let (status, body) = app.place_order(&verified.token, "tok_visa").await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("EMPTY_CART")));
    assert_eq!(app.stock_of(&p).await, (5, 0));
    assert!(app.events("OrderPlaced").await.is_empty());
}

#[tokio::test]
async fn insufficient_stock_names_every_short_item_and_leaves_nothing_reserved() {
    let app = spawn_app().await;
    let (plenty, short1, short2) =
        (app.product("1.00", 10).await, app.product("1.00", 3).await, app.product("1.00", 2).await);
    let c = app.verified_customer().await;
    for (p, q) in [(&plenty, 2), (&short1, 3), (&short2, 2)] {
        assert_eq!(app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": q })).await.0, 200);
    }
    // Someone else holds stock of two of them in the meantime.
    for (p, q) in [(&short1, 1), (&short2, 2)] {
        let (s, _) = app
            .post(
                &format!("/admin/v1/inventory/{p}/reservations"),
                Some(ADMIN),
                json!({ "owner_id": uuid::Uuid::now_v7(), "quantity": q }),
            )
            .await;
        assert_eq!(s, 200);
    }
    let (status, body) = app.place_order(&c.token, "tok_visa").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "INSUFFICIENT_STOCK");
    let items = body["error"]["details"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0], json!({ "product_id": short1, "variant_id": null, "requested": 3, "available": 2 }));
    assert_eq!(items[1], json!({ "product_id": short2, "variant_id": null, "requested": 2, "available": 0 }));
    // The line that could be reserved was released by the compensation.
    assert_eq!(app.stock_of(&plenty).await, (10, 0));
    assert_eq!(app.stock_of(&short1).await, (3, 1));
    assert_eq!(app.cart(&c.token).await["items"].as_array().unwrap().len(), 3, "the cart is kept");
    let saga_id = app.get("/admin/v1/sagas?type=place_order", Some(ADMIN)).await.1["sagas"][0]["saga_id"]
        .as_str()
        .unwrap()
        .to_string();
    let saga = app.saga(&saga_id).await;
    assert_eq!(saga["state"], "FAILED");
    assert_eq!(saga["steps"][2]["state"], "FAILED");
    assert_eq!(saga["steps"][2]["compensation"]["state"], "SUCCEEDED");
}

#[tokio::test]
async fn international_addresses_are_refused_after_compensation() {
    let app = spawn_app().await;
    let p = app.product("10.00", 5).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 2 })).await;
    let (status, body) = app
        .post(
            "/v1/orders",
            Some(&c.token),
            json!({ "shipping_address": address("FR"), "payment": { "token": "tok_visa" } }),
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("INTERNATIONAL_SHIPPING_NOT_AVAILABLE")));
    assert_eq!(app.stock_of(&p).await, (5, 0));
    assert_eq!(app.events("InventoryReleased").await.len(), 1);
    assert_eq!(app.cart(&c.token).await["items"][0]["quantity"], 2);
}

#[tokio::test]
async fn a_declined_card_fails_with_payment_failed_and_releases_stock() {
    let app = spawn_app().await;
    let p = app.product("10.00", 5).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    for card in ["tok_declined", "tok_unknown"] {
        let (status, body) = app.place_order(&c.token, card).await;
        assert_eq!((status, body["error"]["code"].as_str()), (402, Some("PAYMENT_FAILED")), "{card}");
        assert_eq!(body["error"]["details"]["reason"], "card_declined");
    }
    assert_eq!(app.stock_of(&p).await, (5, 0));
    assert!(app.events("OrderPlaced").await.is_empty());
    assert_eq!(app.cart(&c.token).await["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn transient_gateway_failures_are_retried() {
    let app = spawn_app().await;
    let p = app.product("10.00", 5).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let (status, order) = app.place_order(&c.token, "tok_flaky").await;
    assert_eq!(status, 201, "{order}");
    let saga = app.saga(order["saga_id"].as_str().unwrap()).await;
    assert_eq!(saga["steps"][4]["name"], "authorize_payment");
    assert_eq!(saga["steps"][4]["attempts"], 3);
}

#[tokio::test]
async fn exhausted_gateway_retries_compensate_with_payment_failed() {
    let app = spawn_app().await;
    app.set_policy("place_order", "authorize_payment", 2, 10).await;
    let p = app.product("10.00", 5).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let (status, body) = app.place_order(&c.token, "tok_flaky").await;
    assert_eq!((status, body["error"]["code"].as_str()), (402, Some("PAYMENT_FAILED")), "{body}");
    assert_eq!(app.stock_of(&p).await, (5, 0));
    let saga_id = app.get("/admin/v1/sagas?state=FAILED", Some(ADMIN)).await.1["sagas"][0]["saga_id"]
        .as_str()
        .unwrap()
        .to_string();
    let saga = app.saga(&saga_id).await;
    assert_eq!(saga["steps"][4]["attempts"], 2);
    assert_eq!(saga["retry_policies"]["authorize_payment"]["max_attempts"], 2);
    assert!(saga["steps"][4]["last_error"].as_str().unwrap().contains("retries exhausted"));
}

#[tokio::test]
async fn a_slow_saga_answers_202_and_can_be_polled() {
    let app = spawn_app_with(|s| s.checkout.sync_wait_ms = 20).await;
    app.set_policy("place_order", "authorize_payment", 4, 200).await;
    let p = app.product("10.00", 5).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let (status, body) = app.place_order(&c.token, "tok_flaky").await;
    assert_eq!(status, 202, "{body}");
    let saga_id = body["saga_id"].as_str().unwrap();
    assert!(["RUNNING", "RETRYING"].contains(&body["state"].as_str().unwrap()));
    let mut last = json!(null);
    for _ in 0..200 {
        let (s, view) = app.get(&format!("/v1/sagas/{saga_id}"), Some(&c.token)).await;
        assert_eq!(s, 200);
        last = view;
        if last["state"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(last["state"], "COMPLETED");
    assert_eq!(last["type"], "place_order");
    let order_id = last["order_id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/v1/orders/{order_id}"), Some(&c.token)).await.1["status"], "PENDING");
}

#[tokio::test]
async fn a_client_may_ask_not_to_wait_or_to_wait_less_for_the_saga() {
    let app = spawn_app().await; // waits up to 15 s (test_settings)
    let p = app.product("10.00", 5).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let (status, applied, body) = app.place_order_preferring(&c.token, "tok_visa", "respond-async").await;
    assert_eq!((status, applied.as_deref()), (202, Some("respond-async")), "{body}");
    let saga = app.saga_reaches(body["saga_id"].as_str().unwrap(), "COMPLETED").await;
    let (_, order) = app.get(&format!("/v1/orders/{}", saga["order_id"].as_str().unwrap()), Some(&c.token)).await;
    assert_eq!(order["status"], "PENDING", "answered at once, placed all the same");

    // A wait longer than the server's is not honoured (and not echoed): the settled answer.
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let (status, applied, body) = app.place_order_preferring(&c.token, "tok_visa", "wait=3600").await;
    assert_eq!((status, applied), (201, None), "{body}");

    // A saga that cannot settle soon (every authorization retried a minute later): the
    // request waits the second it asked for, not the server's fifteen.
    app.set_policy("place_order", "authorize_payment", 5, 60_000).await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let asked = std::time::Instant::now();
    let (status, applied, body) = app.place_order_preferring(&c.token, "tok_flaky", "handling=lenient, wait=1").await;
    assert_eq!((status, applied.as_deref()), (202, Some("wait=1")), "{body}");
    let waited = asked.elapsed();
    assert!(waited >= std::time::Duration::from_secs(1) && waited < std::time::Duration::from_secs(10), "{waited:?}");
    app.saga_reaches(body["saga_id"].as_str().unwrap(), "RETRYING").await;

    // Nonsense in the header is ignored, never refused.
    let (status, applied, body) = app.place_order_preferring(&c.token, "tok_visa", "wait=soon, ;;,=").await;
    assert_eq!((status, applied), (201, None), "the server's wait: {body}");
    assert_eq!(body["status"], "PENDING");
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_outcome() {
    let app = spawn_app().await;
    let p = app.product("10.00", 5).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let results =
        futures::future::join_all((0..4).map(|_| app.place_order_with_key(&c.token, "tok_visa", "checkout-1"))).await;
    for (status, order) in &results {
        assert_eq!(*status, 201, "{order}");
        assert_eq!(order["order_id"], results[0].1["order_id"]);
    }
    assert_eq!(app.events("OrderPlaced").await.len(), 1);
    assert_eq!(app.stock_of(&p).await, (5, 1));
    // A failure replays too, with the same status and code.
    let d = app.verified_customer().await;
    let first = app.place_order_with_key(&d.token, "tok_visa", "k").await;
    let again = app.place_order_with_key(&d.token, "tok_visa", "k").await;
    assert_eq!((first.0, &first.1["error"]["code"]), (422, &json!("EMPTY_CART")));
    assert_eq!(first, again);
    // The same key from another customer is another request.
    app.add_to_cart(&d.token, json!({ "product_id": p, "quantity": 1 })).await;
    assert_eq!(app.place_order_with_key(&d.token, "tok_visa", "checkout-1").await.0, 201);
}

#[tokio::test]
async fn bad_order_requests_are_refused_before_anything_starts() {
    let app = spawn_app().await;
    let c = app.verified_customer().await;
    let mut addr = address("US");
    addr["country"] = json!("USA");
    let (status, body) = app
        .post("/v1/orders", Some(&c.token), json!({ "shipping_address": addr, "payment": { "token": "tok_visa" } }))
        .await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("shipping_address.country")));
    let (status, body) = app.post("/v1/orders", Some(&c.token), json!({ "shipping_address": address("US") })).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("payment")));
    let resp = app
        .client
        .post(format!("{}/v1/orders", app.url))
        .bearer_auth(&c.token)
        .header("Idempotency-Key", "x".repeat(300))
        .json(&json!({ "shipping_address": address("US"), "payment": { "token": "tok_visa" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(app.get("/admin/v1/sagas", Some(ADMIN)).await.1["sagas"].as_array().unwrap().is_empty());
}

async fn placed(app: &TestApp, card: &str, quantity: u32) -> (Customer, String, String) {
    let p = app.product("10.00", 10).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": quantity })).await;
    let (status, order) = app.place_order(&c.token, card).await;
    assert_eq!(status, 201, "{order}");
    (c, p, order["order_id"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn cancelling_releases_stock_voids_payment_and_emails_the_customer() {
    let app = spawn_app().await;
    let (c, p, order_id) = placed(&app, "tok_visa", 3).await;
    assert_eq!(app.stock_of(&p).await, (10, 3));
    let (status, order) = app.cancel_order(&c.token, &order_id).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["status"], "CANCELLED");
    assert_eq!(order["refund"]["status"], "VOIDED");
    assert_eq!(order["payment"]["status"], "VOIDED");
    assert_eq!(app.stock_of(&p).await, (10, 0));
    assert_eq!(app.events("OrderCancelled").await.len(), 1);
    assert_eq!(app.events("InventoryReleased").await.len(), 1);
    app.eventually("cancellation email sent", || async {
        app.notifications("order_cancelled").await.iter().any(|n| n["status"] == "SENT" && n["to"] == c.email.as_str())
    })
    .await;
    let audit = app.audit("order", &order_id).await;
    assert!(audit.iter().any(|a| a["after"]["status"] == "CANCELLED" && a["before"]["status"] == "PENDING"));

    let (status, body) = app.cancel_order(&c.token, &order_id).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("INVALID_STATUS_TRANSITION")));
    assert_eq!(app.stock_of(&p).await, (10, 0));
}

#[tokio::test]
async fn cancelling_someone_elses_or_an_unknown_order_is_not_found() {
    let app = spawn_app().await;
    let (_, _, order_id) = placed(&app, "tok_visa", 1).await;
    let other = app.verified_customer().await;
    for id in [order_id.as_str(), &uuid::Uuid::now_v7().to_string(), "nope"] {
        let (status, body) = app.cancel_order(&other.token, id).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("ORDER_NOT_FOUND")));
    }
    assert!(app.events("OrderCancelled").await.is_empty());
}

#[tokio::test]
async fn a_refund_that_keeps_failing_parks_the_saga_until_an_operator_resumes_it() {
    let app = spawn_app().await;
    let (c, p, order_id) = placed(&app, "tok_refund_flaky", 2).await;
    let (status, order) = app.cancel_order(&c.token, &order_id).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["status"], "CANCELLED");
    assert_eq!(order["refund"]["status"], "PENDING_MANUAL");
    assert_eq!(app.stock_of(&p).await, (10, 0), "the reservation is released all the same");

    let (_, stuck) = app.get("/admin/v1/sagas?state=STUCK", Some(ADMIN)).await;
    let saga = &stuck["sagas"][0];
    assert_eq!(saga["type"], "cancel_order");
    assert_eq!(saga["current_step"], "refund_payment");
    assert_eq!(saga["steps"][3]["attempts"], 3);
    let saga_id = saga["saga_id"].as_str().unwrap();

    let (status, resumed) =
        app.post(&format!("/admin/v1/sagas/{saga_id}/resume"), Some(ADMIN), json!({ "reset_attempts": true })).await;
    assert_eq!(status, 200, "{resumed}");
    app.saga_reaches(saga_id, "COMPLETED").await;
    let (_, order) = app.get(&format!("/v1/orders/{order_id}"), Some(&c.token)).await;
    assert_eq!(order["refund"]["status"], "VOIDED");
    // Resuming a finished saga is refused.
    let (status, body) = app.post(&format!("/admin/v1/sagas/{saga_id}/resume"), Some(ADMIN), json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("INVALID_SAGA_STATE")));
}

#[tokio::test]
async fn an_idempotent_cancel_replays_its_answer() {
    let app = spawn_app().await;
    let (c, _, order_id) = placed(&app, "tok_visa", 1).await;
    let send = || {
        app.client
            .post(format!("{}/v1/orders/{order_id}/cancel", app.url))
            .bearer_auth(&c.token)
            .header("Idempotency-Key", "cancel-1")
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status().as_u16(), 200);
    let second = send().await.unwrap();
    assert_eq!(second.status().as_u16(), 200);
    assert_eq!(app.events("OrderCancelled").await.len(), 1);
}

#[tokio::test]
async fn the_last_units_go_to_exactly_as_many_customers_as_there_are_units() {
    let app = spawn_app().await;
    let p = app.product("10.00", 3).await;
    let mut customers = Vec::new();
    for _ in 0..8 {
        let c = app.verified_customer().await;
        app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
        customers.push(c);
    }
    let results = futures::future::join_all(customers.iter().map(|c| app.place_order(&c.token, "tok_visa"))).await;
    let won = results.iter().filter(|(s, _)| *s == 201).count();
    let lost: Vec<_> = results.iter().filter(|(s, _)| *s == 409).collect();
    assert_eq!((won, lost.len()), (3, 5), "{results:?}");
    assert!(lost.iter().all(|(_, b)| b["error"]["code"] == "INSUFFICIENT_STOCK"));
    assert_eq!(app.stock_of(&p).await, (3, 3));
}

#[tokio::test]
async fn an_operator_cancel_refunds_a_captured_order_and_refuses_what_the_customers_cancel_refuses() {
    let app = spawn_app().await;
    let text = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    let (c, p, order) = app.pending_order(2).await;
    let id = text(&order["order_id"]);
    app.capture("evt_op_cancel", &text(&order["payment"]["authorization_id"]), &text(&order["total"])).await;

    // Only the admin token: a customer (even the order's own) and fulfillment are refused.
    for token in [c.token.as_str(), FULFILLMENT] {
        let (status, body) = app.operator_cancel(token, &id, None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("FORBIDDEN")), "{body}");
    }
    let (status, cancelled) = app.operator_cancel(ADMIN, &id, None).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "CANCELLED");
    assert_eq!(
        (cancelled["refund"]["status"].as_str(), cancelled["payment"]["status"].as_str()),
        (Some("REFUNDED"), Some("REFUNDED"))
    );
    assert_eq!(app.stock_of(&p).await, (10, 0));
    let event = app.events("OrderCancelled").await;
    assert_eq!(event[0]["data"]["reason"], "checkout stuck past its point of no return", "{event:?}");

    // The same refusals as the customer's cancel.
    let (status, body) = app.operator_cancel(ADMIN, &id, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("INVALID_STATUS_TRANSITION")), "{body}");
    let (status, body) = app.operator_cancel(ADMIN, &uuid::Uuid::now_v7().to_string(), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("ORDER_NOT_FOUND")), "{body}");
    let (_, _, shipped) = app.pending_order(1).await;
    let shipped_id = text(&shipped["order_id"]);
    app.capture("evt_op_ship", &text(&shipped["payment"]["authorization_id"]), &text(&shipped["total"])).await;
    assert_eq!(app.ship(FULFILLMENT, &shipped_id, "1ZOPCANCEL").await.0, 200);
    for key in [None, Some("cancel-shipped")] {
        let (status, body) = app.operator_cancel(ADMIN, &shipped_id, key).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("CANCELLATION_NOT_ALLOWED")),
            "{key:?}: {body}"
        );
    }
    let (_, now) = app.get(&format!("/admin/v1/orders/{shipped_id}"), Some(ADMIN)).await;
    assert_eq!(now["status"], "SHIPPED");
    assert_eq!(app.events("OrderCancelled").await.len(), 1, "nothing else was cancelled");
}
