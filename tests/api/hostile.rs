//! Hostile clients: floods of signatures, tokens used beyond their reach, malformed bodies,
//! invisible characters, made-up ids, repeated keys, stale verification tokens.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

async fn recorded_webhooks(app: &TestApp) -> usize {
    let (status, body) = app.get("/admin/v1/webhooks", Some(ADMIN)).await;
    assert_eq!(status, 200, "{body}");
    body["webhooks"].as_array().unwrap().len()
}

async fn post_signed_raw(app: &TestApp, signature: &str, raw: Vec<u8>) -> (u16, Value) {
    app.webhook_raw("payment", signature, raw).await
}

#[tokio::test]
async fn a_signature_header_with_thousands_of_entries_is_refused_and_records_nothing() {
    let app = spawn_app().await;
    let body = json!({ "id": "evt_flood", "type": "payment.captured", "data": { "authorization_id": "sim_auth_x", "amount": "1.00" } });
    let raw = serde_json::to_vec(&body).unwrap();
    let genuine = cartwright::operations::webhooks::sign(PAYMENT_SECRET, chrono::Utc::now().timestamp(), &raw);
    let (t, v1) = genuine.split_once(',').unwrap();
    // Thousands of empty candidates, then the genuine one: refused before any MAC is computed.
    let flood = format!("{t},{}{v1}", "v1=,".repeat(5_000));
    let (status, answer) = post_signed_raw(&app, &flood, raw.clone()).await;
    assert_eq!((status, code(&answer)), (401, Some("INVALID_SIGNATURE")), "{answer}");
    // Too many well-formed candidates are refused as well.
    let many = format!("{t},{}", [v1; 5].join(","));
    let (status, answer) = post_signed_raw(&app, &many, raw.clone()).await;
    assert_eq!((status, code(&answer)), (401, Some("INVALID_SIGNATURE")), "{answer}");
    assert_eq!(recorded_webhooks(&app).await, 0);
    // The same signature alone is accepted: what was refused was the shape.
    let (status, answer) = post_signed_raw(&app, &genuine, raw).await;
    assert_eq!((status, answer["status"].as_str()), (202, Some("needs_review")), "{answer}");
    assert_eq!(recorded_webhooks(&app).await, 1);
}

#[tokio::test]
async fn the_fulfillment_token_reaches_orders_and_nothing_else() {
    let app = spawn_app().await;
    let (_, product, order) = app.pending_order(1).await;
    let order_id = order["order_id"].as_str().unwrap();
    let saga_id = order["saga_id"].as_str().unwrap();
    let owner = uuid::Uuid::new_v4();
    let gets = [
        "/admin/v1/stats".to_string(),
        format!("/admin/v1/inventory/{product}"),
        format!("/admin/v1/products/{product}"),
        "/admin/v1/categories".to_string(),
        "/admin/v1/sagas".to_string(),
        format!("/admin/v1/sagas/{saga_id}"),
        "/admin/v1/retry-policies".to_string(),
        "/admin/v1/events".to_string(),
        "/admin/v1/audit".to_string(),
        "/admin/v1/webhooks".to_string(),
        "/admin/v1/notifications".to_string(),
    ];
    for path in &gets {
        let (status, body) = app.get(path, Some(FULFILLMENT)).await;
        assert_eq!((status, code(&body)), (403, Some("FORBIDDEN")), "GET {path}: {body}");
    }
    let writes = [
        (reqwest::Method::POST, "/admin/v1/categories".to_string(), json!({ "name": "Games" })),
        (reqwest::Method::PUT, format!("/admin/v1/products/{product}/price"), json!({ "price": "1.00" })),
        (reqwest::Method::POST, format!("/admin/v1/inventory/{product}/restock"), json!({ "quantity": 1 })),
        (
            reqwest::Method::POST,
            format!("/admin/v1/inventory/{product}/reservations"),
            json!({ "owner_id": owner, "quantity": 1 }),
        ),
        (reqwest::Method::POST, format!("/admin/v1/sagas/{saga_id}/abort"), json!({ "reason": "x" })),
    ];
    for (method, path, body) in writes {
        let (status, answer) = app.call(method.clone(), &path, Some(FULFILLMENT), Some(body)).await;
        assert_eq!((status, code(&answer)), (403, Some("FORBIDDEN")), "{method} {path}: {answer}");
    }
    // What the contract gives it: list and read orders, ship them.
    assert_eq!(app.get("/admin/v1/orders", Some(FULFILLMENT)).await.0, 200);
    assert_eq!(app.get(&format!("/admin/v1/orders/{order_id}"), Some(FULFILLMENT)).await.0, 200);
    let (status, body) = app.ship(FULFILLMENT, order_id, "TRK-FUL-1").await;
    assert_eq!((status, code(&body)), (409, Some("INVALID_STATUS_TRANSITION")), "not yet paid, but allowed: {body}");
    // The admin still reads everything.
    assert_eq!(app.get("/admin/v1/stats", Some(ADMIN)).await.0, 200);
    assert_eq!(app.get(&format!("/admin/v1/products/{product}"), Some(ADMIN)).await.0, 200);
}

#[tokio::test]
async fn json_followed_by_anything_but_whitespace_is_invalid_request() {
    let app = spawn_app().await;
    for raw in [&br#"{"name":"Books"} xyz"#[..], br#"{"name":"Books"}{}"#, br#"{"name":"Books"}}"#, b"{}{}"] {
        let (status, body) = app.post_raw("/admin/v1/categories", Some(ADMIN), raw.to_vec()).await;
        let shown = String::from_utf8_lossy(raw);
        assert_eq!((status, code(&body)), (400, Some("INVALID_REQUEST")), "{shown}: {body}");
    }
    let (_, list) = app.get("/admin/v1/categories", Some(ADMIN)).await;
    assert!(list["categories"].as_array().unwrap().is_empty(), "{list}");
    let (status, body) = app.post_raw("/admin/v1/categories", Some(ADMIN), b"{\"name\":\"Books\"} \n\t".to_vec()).await;
    assert_eq!(status, 201, "trailing whitespace is fine: {body}");
}

#[tokio::test]
async fn names_descriptions_and_addresses_refuse_invisible_and_bidi_characters() {
    let app = spawn_app().await;
    let (status, body) = app
        .post(
            "/v1/customers",
            None,
            json!({ "email": "bidi@example.com", "password": PASSWORD, "name": "Ada\u{202E}ecalevol" }),
        )
        .await;
    assert_eq!(
        (status, code(&body), body["error"]["details"]["field"].as_str()),
        (400, Some("INVALID_REQUEST"), Some("name"))
    );
    assert_eq!(app.login("bidi@example.com", PASSWORD).await.0, 401, "no account was created");

    let (status, body) = app.post("/admin/v1/categories", Some(ADMIN), json!({ "name": "Bo\u{200B}oks" })).await;
    assert_eq!((status, code(&body)), (422, Some("INVALID_CATEGORY_NAME")), "{body}");

    let category = app.category().await;
    let product = |name: &str, description: &str, variant: &str| {
        json!({ "name": name, "description": description, "price": "5.00", "category_id": category,
                "variants": [{ "name": variant, "initial_stock": 1 }] })
    };
    let (status, body) = app.create_product(product("Dune\u{2066}", "Desert", "Red")).await;
    assert_eq!((status, code(&body)), (422, Some("INVALID_PRODUCT_NAME")), "{body}");
    let (status, body) = app.create_product(product("Dune", "Desert", "Red\u{FEFF}")).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("variants[0].name")), "{body}");
    let (status, body) = app.create_product(product("Dune", "Desert\u{200F} planet", "Red")).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("description")), "{body}");
    let (status, body) = app.create_product(product("Dune", "Desert\u{7}", "Red")).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("description")), "{body}");
    let (status, body) = app.create_product(product("Dune", "Line one\n\tLine two", "Red")).await;
    assert_eq!(status, 201, "descriptions keep newlines and tabs: {body}");

    let c = app.verified_customer().await;
    let variant = body["variants"][0]["variant_id"].as_str().unwrap();
    app.add_to_cart(&c.token, json!({ "product_id": body["product_id"], "variant_id": variant, "quantity": 1 })).await;
    let mut address = address("US");
    address["line1"] = json!("12 Main St\u{2067}");
    let (status, body) = app
        .post("/v1/orders", Some(&c.token), json!({ "shipping_address": address, "payment": { "token": "tok_visa" } }))
        .await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("shipping_address.line1")), "{body}");
    let (_, sagas) = app.get("/admin/v1/sagas?type=place_order", Some(ADMIN)).await;
    assert!(sagas["sagas"].as_array().unwrap().is_empty(), "{sagas}");
}

#[tokio::test]
async fn an_unverified_customer_is_refused_before_any_saga_starts() {
    let app = spawn_app().await;
    let p = app.product("10.00", 5).await;
    let c = app.customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let (status, body) = app.place_order(&c.token, "tok_visa").await;
    assert_eq!((status, code(&body)), (403, Some("EMAIL_NOT_VERIFIED")), "{body}");
    let (_, sagas) = app.get("/admin/v1/sagas?type=place_order", Some(ADMIN)).await;
    assert!(sagas["sagas"].as_array().unwrap().is_empty(), "{sagas}");
    assert!(app.events("InventoryReserved").await.is_empty());
    assert_eq!(app.stock_of(&p).await, (5, 0));
}

async fn active_orders(app: &TestApp) -> u64 {
    let (status, stats) = app.get("/admin/v1/stats", Some(ADMIN)).await;
    assert_eq!(status, 200, "{stats}");
    stats["actors"]["orders"].as_u64().unwrap()
}

#[tokio::test]
async fn made_up_order_ids_are_not_found_and_activate_no_actor() {
    let app = spawn_app().await;
    let c = app.verified_customer().await;
    let before = active_orders(&app).await;
    for i in 0..50 {
        let id = uuid::Uuid::now_v7();
        let (status, body) = app.get(&format!("/v1/orders/{id}"), Some(&c.token)).await;
        assert_eq!((status, code(&body)), (404, Some("ORDER_NOT_FOUND")), "{body}");
        let (status, body) = app.cancel_order(&c.token, &id.to_string()).await;
        assert_eq!((status, code(&body)), (404, Some("ORDER_NOT_FOUND")), "{body}");
        let resp = app
            .client
            .post(format!("{}/v1/orders/{id}/cancel", app.url))
            .bearer_auth(&c.token)
            .header("Idempotency-Key", format!("cancel-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 404, "with an Idempotency-Key too");
        let (status, body) = app.ship(ADMIN, &id.to_string(), &format!("TRK-{i}")).await;
        assert_eq!((status, code(&body)), (404, Some("ORDER_NOT_FOUND")), "{body}");
        let (status, _) = app.get(&format!("/admin/v1/orders/{id}"), Some(ADMIN)).await;
        assert_eq!(status, 404);
    }
    assert_eq!(active_orders(&app).await, before);
    let (_, sagas) = app.get("/admin/v1/sagas", Some(ADMIN)).await;
    assert!(sagas["sagas"].as_array().unwrap().is_empty(), "no saga for a made-up order: {sagas}");
}

#[tokio::test]
async fn repeating_an_idempotency_key_on_a_retrying_saga_answers_the_same_saga() {
    let app = spawn_app_with(|s| s.checkout.sync_wait_ms = 20).await;
    app.set_policy("place_order", "authorize_payment", 5, 600_000).await;
    let p = app.product("10.00", 5).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let (status, first) = app.place_order_with_key(&c.token, "tok_flaky", "same-key").await;
    assert_eq!(status, 202, "{first}");
    let saga_id = first["saga_id"].as_str().unwrap().to_string();
    app.saga_reaches(&saga_id, "RETRYING").await;
    let repeats = (0..200).map(|_| app.place_order_with_key(&c.token, "tok_flaky", "same-key"));
    for (status, body) in futures::future::join_all(repeats).await {
        assert_eq!((status, body["saga_id"].as_str()), (202, Some(saga_id.as_str())), "{body}");
    }
    let (_, sagas) = app.get("/admin/v1/sagas?type=place_order", Some(ADMIN)).await;
    assert_eq!(sagas["sagas"].as_array().unwrap().len(), 1);
    assert_eq!(app.saga(&saga_id).await["state"], "RETRYING");
}

#[tokio::test]
async fn an_expired_verification_token_answers_as_an_unknown_one() {
    let app = spawn_app_with(|s| s.auth.verification_ttl_secs = 1).await;
    let c = app.customer().await;
    let token = app.verification_token(&c.id).await;
    // Past the token's lifetime (not waiting for anything to happen).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, expired) = app.post("/v1/customers/verify-email", None, json!({ "token": token })).await;
    assert_eq!((status, code(&expired)), (400, Some("INVALID_TOKEN")), "{expired}");
    let (_, unknown) = app.post("/v1/customers/verify-email", None, json!({ "token": "cwv_never_issued" })).await;
    assert_eq!(expired, unknown);
    let (_, me) = app.get("/v1/me", Some(&c.token)).await;
    assert_eq!(me["email_verified"], false, "{me}");
}

#[tokio::test]
async fn the_log_names_the_verification_email_but_never_its_token() {
    let dir = store_dir();
    let server = ServerProcess::start(dir.path());
    let client = reqwest::Client::new();
    let register = json!({ "email": "logged@example.com", "password": PASSWORD });
    let (status, customer) =
        raw_call(&client, &server.url, reqwest::Method::POST, "/v1/customers", None, None, Some(register))
            .await
            .unwrap();
    assert_eq!(status, 201, "{customer}");
    let path = "/admin/v1/notifications?kind=email_verification";
    let (_, list) = raw_call(&client, &server.url, reqwest::Method::GET, path, Some(ADMIN), None, None).await.unwrap();
    let n = &list["notifications"][0];
    let id = n["notification_id"].as_str().unwrap().to_string();
    let token = n["payload"]["verification_token"].as_str().unwrap().to_string();
    // The delivery worker sends it in the background: wait until its log line is there.
    for _ in 0..400 {
        if server.logged(&id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let log = server.log.lock().unwrap().join("\n");
    assert!(log.contains(&id) && log.contains("logged@example.com"), "the send is logged:\n{log}");
    assert!(!log.contains(&token), "the token is not:\n{log}");
    server.kill9();
}
