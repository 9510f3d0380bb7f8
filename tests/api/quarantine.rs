//! Quarantine: an operator pauses one key (a product's stock, a cart, an order). Commands to
//! it answer 423 KEY_QUARANTINED, reads still work, sagas touching it park PAUSED without
//! using attempts, and releasing it resumes them. Survives a restart; audited.

use serde_json::{json, Value};

use crate::helpers::*;

/// `PUT /admin/v1/quarantine/{kind}/{id}` with the admin token and, when given, `X-Operator`.
async fn pause_as(app: &TestApp, kind: &str, id: &str, body: Value, operator: Option<&str>) -> (u16, Value) {
    let mut rb = app.client.put(format!("{}/admin/v1/quarantine/{kind}/{id}", app.url)).bearer_auth(ADMIN).json(&body);
    if let Some(name) = operator {
        rb = rb.header("X-Operator", name);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn pause(app: &TestApp, kind: &str, id: &str, reason: &str) -> Value {
    let (status, body) = pause_as(app, kind, id, json!({ "reason": reason }), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn release(app: &TestApp, kind: &str, id: &str) -> Value {
    let (status, body) = app.delete(&format!("/admin/v1/quarantine/{kind}/{id}"), Some(ADMIN)).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn assert_quarantined(status: u16, body: &Value, reason: &str) {
    assert_eq!((status, body["error"]["code"].as_str()), (423, Some("KEY_QUARANTINED")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(reason), "{body}");
    assert_eq!(body["error"]["details"]["reason"], reason);
}

/// A verified customer with `quantity` of `product` in the cart places an order: 202, PAUSED.
async fn paused_checkout(app: &TestApp, product: &str, quantity: u32) -> (Customer, String) {
    let c = app.verified_customer().await;
    let (status, cart) = app.add_to_cart(&c.token, json!({ "product_id": product, "quantity": quantity })).await;
    assert_eq!(status, 200, "adding to a cart only reads the paused stock: {cart}");
    let (status, body) = app.place_order(&c.token, "tok_visa").await;
    assert_eq!((status, body["state"].as_str()), (202, Some("PAUSED")), "{body}");
    (c, body["saga_id"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn a_paused_product_refuses_stock_commands_with_the_reason_and_answers_reads() {
    let app = spawn_app().await;
    let p = app.product("10.00", 5).await;
    let (status, entry) =
        pause_as(&app, "inventory", &p, json!({ "reason": "stock count disputed" }), Some("ada")).await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!((entry["kind"].as_str(), entry["key"].as_str()), (Some("inventory"), Some(p.as_str())));
    assert_eq!((entry["paused_by"].as_str(), entry["changed"].as_bool()), (Some("admin:ada"), Some(true)));

    let (status, body) = app.restock(&p, json!({ "quantity": 3 })).await;
    assert_quarantined(status, &body, "stock count disputed");
    assert_eq!(body["error"]["details"]["kind"], "inventory");
    let hold = json!({ "owner_id": uuid::Uuid::now_v7(), "quantity": 1 });
    let (status, body) = app.post(&format!("/admin/v1/inventory/{p}/reservations"), Some(ADMIN), hold.clone()).await;
    assert_quarantined(status, &body, "stock count disputed");
    assert_eq!(app.stock_of(&p).await, (5, 0), "reads still answer; nothing applied");
    assert_eq!(app.get(&format!("/v1/products/{p}"), None).await.0, 200);

    // Idempotent: the same pause again changes nothing and writes no second audit row.
    let again = pause(&app, "inventory", &p, "stock count disputed").await;
    assert_eq!((again["changed"].as_bool(), again["paused_by"].as_str()), (Some(false), Some("admin:ada")));
    let (status, list) = app.get("/admin/v1/quarantine", Some(ADMIN)).await;
    assert_eq!(status, 200);
    let keys = list["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{list}");
    assert_eq!(keys[0]["reason"], "stock count disputed");
    assert!(keys[0]["paused_at"].is_string());

    let released = release(&app, "inventory", &p).await;
    assert_eq!((released["released"].as_bool(), released["resumed_sagas"].as_u64()), (Some(true), Some(0)));
    assert_eq!(app.restock(&p, json!({ "quantity": 3 })).await.0, 200);
    assert_eq!(app.post(&format!("/admin/v1/inventory/{p}/reservations"), Some(ADMIN), hold).await.0, 200);
    assert_eq!(app.stock_of(&p).await, (8, 1));
    assert!(app.get("/admin/v1/quarantine", Some(ADMIN)).await.1["keys"].as_array().unwrap().is_empty());
    assert_eq!(release(&app, "inventory", &p).await["released"], false, "releasing again is no error");

    let audit = app.audit("inventory", &p).await;
    let actions: Vec<_> = audit.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions.iter().filter(|a| a.starts_with("quarantine.")).count(), 2, "{actions:?}");
    let paused = audit.iter().find(|e| e["action"] == "quarantine.paused").unwrap();
    assert_eq!(paused["actor"], "admin:ada");
    assert!(paused["after"].to_string().contains("stock count disputed"), "{paused}");
    let released = audit.iter().find(|e| e["action"] == "quarantine.released").unwrap();
    assert_eq!(released["actor"], "admin");
}

#[tokio::test]
async fn a_checkout_parks_paused_without_using_attempts_and_completes_once_released() {
    let app = spawn_app().await;
    let p = app.product("10.00", 5).await;
    pause(&app, "inventory", &p, "recount in progress").await;
    let (c, saga_id) = paused_checkout(&app, &p, 2).await;

    let saga = app.saga(&saga_id).await;
    assert_eq!((saga["state"].as_str(), saga["current_step"].as_str()), (Some("PAUSED"), Some("reserve_inventory")));
    assert_eq!(saga["paused_on"], json!({ "kind": "inventory", "key": p }));
    let reserve = &saga["steps"][2];
    assert_eq!((reserve["state"].as_str(), reserve["attempts"].as_u64()), (Some("PENDING"), Some(0)), "{saga}");
    assert!(reserve["last_error"].as_str().unwrap().contains("recount in progress"), "{saga}");
    let (_, listed) = app.get("/admin/v1/sagas?state=PAUSED", Some(ADMIN)).await;
    assert_eq!(listed["sagas"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(app.get(&format!("/v1/sagas/{saga_id}"), Some(&c.token)).await.1["state"], "PAUSED");
    assert_eq!(app.stock_of(&p).await, (5, 0));

    // An operator's resume while the key is still paused parks it again, attempts unused.
    let (status, _) = app.post(&format!("/admin/v1/sagas/{saga_id}/resume"), Some(ADMIN), json!({})).await;
    assert_eq!(status, 200);
    let saga = app.saga_reaches(&saga_id, "PAUSED").await;
    assert_eq!(saga["steps"][2]["attempts"], 0);

    let released = release(&app, "inventory", &p).await;
    assert_eq!(released["resumed_sagas"], 1);
    let saga = app.saga_reaches(&saga_id, "COMPLETED").await;
    assert_eq!(saga["steps"][2]["attempts"], 1);
    assert!(saga["paused_on"].is_null());
    assert_eq!(app.stock_of(&p).await, (5, 2));
    let order_id = saga["order_id"].as_str().unwrap();
    let (_, order) = app.get(&format!("/v1/orders/{order_id}"), Some(&c.token)).await;
    assert_eq!(order["status"], "PENDING");
    let authorization = order["payment"]["authorization_id"].as_str().unwrap();
    let (status, body) = app.capture("evt-quarantine-1", authorization, order["total"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.get(&format!("/v1/orders/{order_id}"), Some(&c.token)).await.1["status"], "CONFIRMED");
}

#[tokio::test]
async fn an_operator_aborts_a_paused_checkout_whose_undo_waits_for_the_release() {
    let app = spawn_app().await;
    let p = app.product("10.00", 5).await;
    pause(&app, "inventory", &p, "supplier recall").await;
    let (c, saga_id) = paused_checkout(&app, &p, 1).await;
    let (status, body) =
        app.post(&format!("/admin/v1/sagas/{saga_id}/abort"), Some(ADMIN), json!({ "reason": "recalled" })).await;
    assert_eq!(status, 200, "{body}");
    // Undoing the reservation touches the paused item too: that compensation parks as well.
    let saga = app.saga_reaches(&saga_id, "PAUSED").await;
    assert_eq!(saga["current_step"], "release_inventory", "{saga}");
    assert_eq!(saga["abort_reason"], "recalled");
    assert_eq!(release(&app, "inventory", &p).await["resumed_sagas"], 1);
    let saga = app.saga_reaches(&saga_id, "ABORTED").await;
    assert!(saga["paused_on"].is_null());
    assert!(app.get("/v1/orders", Some(&c.token)).await.1["orders"].as_array().unwrap().is_empty());
    assert_eq!(app.stock_of(&p).await, (5, 0), "nothing left held");
}

#[tokio::test]
async fn a_pause_survives_a_restart_and_a_key_released_while_down_resumes_its_sagas_on_start() {
    let mut app = spawn_app().await;
    let p = app.product("10.00", 5).await;
    pause(&app, "inventory", &p, "audit hold").await;
    let (_, saga_id) = paused_checkout(&app, &p, 1).await;

    app.restart().await;
    let (_, list) = app.get("/admin/v1/quarantine", Some(ADMIN)).await;
    assert_eq!(list["keys"][0]["key"], p.as_str(), "{list}");
    let (status, body) = app.restock(&p, json!({ "quantity": 1 })).await;
    assert_quarantined(status, &body, "audit hold");
    assert_eq!(app.saga(&saga_id).await["state"], "PAUSED", "still parked after the start");

    // The release is committed but its resumes never ran (a crash right after it): the
    // next start finds the saga PAUSED on a key no longer paused and resumes it.
    let key = cartwright::domain::quarantine::QuarantineKey::new(
        cartwright::domain::quarantine::KeyKind::Inventory,
        p.parse().unwrap(),
    );
    app.write_store(|_| cartwright::store::WriteSet::new().remove(cartwright::store::keys::quarantine(&key))).await;
    app.saga_reaches(&saga_id, "COMPLETED").await;
    assert_eq!(app.stock_of(&p).await, (5, 1));
    assert_eq!(app.restock(&p, json!({ "quantity": 1 })).await.0, 200);
}

#[tokio::test]
async fn paused_carts_and_orders_refuse_commands_and_a_refused_webhook_can_be_redelivered() {
    let app = spawn_app().await;
    let (c, p, order) = app.pending_order(1).await;
    let order_id = order["order_id"].as_str().unwrap();

    pause(&app, "cart", &c.id, "chargeback review").await;
    let (status, body) = app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    assert_quarantined(status, &body, "chargeback review");
    assert_eq!(app.get("/v1/cart", Some(&c.token)).await.0, 200);
    release(&app, "cart", &c.id).await;
    assert_eq!(app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await.0, 200);

    pause(&app, "order", order_id, "double capture suspected").await;
    let authorization = order["payment"]["authorization_id"].as_str().unwrap();
    let total = order["total"].as_str().unwrap();
    let (status, body) = app.capture("evt-q-order", authorization, total).await;
    assert_quarantined(status, &body, "double capture suspected");
    assert_eq!(app.get(&format!("/v1/orders/{order_id}"), Some(&c.token)).await.1["status"], "PENDING");
    release(&app, "order", order_id).await;
    // The refused event was not recorded: the provider's redelivery is processed.
    let (status, body) = app.capture("evt-q-order", authorization, total).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("processed")), "{body}");
    assert_eq!(app.get(&format!("/v1/orders/{order_id}"), Some(&c.token)).await.1["status"], "CONFIRMED");
}

#[tokio::test]
async fn bad_kinds_ids_reasons_and_credentials_are_refused() {
    let app = spawn_app().await;
    let id = uuid::Uuid::now_v7().to_string();
    let field = |body: &Value| body["error"]["details"]["field"].as_str().map(str::to_string);
    let cases = [
        ("product", id.as_str(), json!({ "reason": "x" }), "kind"),
        ("cart", "not-a-uuid", json!({ "reason": "x" }), "id"),
        ("order", id.as_str(), json!({ "reason": "   " }), "reason"),
        ("order", id.as_str(), json!({ "reason": "x".repeat(501) }), "reason"),
        ("order", id.as_str(), json!({ "reason": "a\u{202E}b" }), "reason"),
        ("order", id.as_str(), json!({}), "reason"),
    ];
    for (kind, key, body, expected) in cases {
        let (status, answer) = pause_as(&app, kind, key, body, None).await;
        assert_eq!((status, field(&answer).as_deref()), (400, Some(expected)), "{kind}/{key}: {answer}");
    }
    let (status, answer) = pause_as(&app, "order", &id, json!({ "reason": "x" }), Some(" ")).await;
    assert_eq!((status, field(&answer).as_deref()), (400, Some("X-Operator")), "{answer}");
    let (status, answer) = app.delete(&format!("/admin/v1/quarantine/parcel/{id}"), Some(ADMIN)).await;
    assert_eq!((status, field(&answer).as_deref()), (400, Some("kind")));
    assert!(app.get("/admin/v1/quarantine", Some(ADMIN)).await.1["keys"].as_array().unwrap().is_empty());

    let path = format!("/admin/v1/quarantine/order/{id}");
    for token in [Some(FULFILLMENT), None] {
        let expected = if token.is_some() { 403 } else { 401 };
        assert_eq!(app.get("/admin/v1/quarantine", token).await.0, expected);
        assert_eq!(app.put(&path, token, json!({ "reason": "x" })).await.0, expected);
        assert_eq!(app.delete(&path, token).await.0, expected);
    }
    assert_eq!(app.post("/admin/v1/quarantine", Some(ADMIN), json!({})).await.0, 405);
}

/// The real binary's `quarantine pause|list|release`, with the operator's name recorded.
#[tokio::test]
async fn the_cli_pauses_lists_and_releases_a_key() {
    let app = spawn_app().await;
    let p = app.product("10.00", 5).await;
    // The server runs on its own thread and runtime: blocking this one while the CLI runs is fine.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cartwright"))
            .args(["quarantine", "--url", &app.url, "--token", ADMIN])
            .args(args)
            .env_remove("CARTWRIGHT_TOKEN")
            .env_remove("CARTWRIGHT_OPERATOR")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    let (ok, out) = cli(&["pause", "inventory", &p, "--reason", "bad count", "--operator", "grace"]);
    assert!(ok && out.contains("\"paused_by\": \"admin:grace\""), "{out}");
    let (ok, out) = cli(&["list"]);
    assert!(ok && out.contains(&p) && out.contains("bad count") && out.contains("admin:grace"), "{out}");
    assert_eq!(app.restock(&p, json!({ "quantity": 1 })).await.0, 423);
    let (ok, out) = cli(&["pause", "parcel", &p, "--reason", "x"]);
    assert!(!ok && out.contains("400 INVALID_REQUEST"), "{out}");
    let (ok, out) = cli(&["release", "inventory", &p]);
    assert!(ok && out.contains("\"released\": true"), "{out}");
    assert_eq!(app.restock(&p, json!({ "quantity": 1 })).await.0, 200);
}

/// clear_cart carries the checkout's completion in the cart's write. A paused cart refuses
/// that write: the entry it carried never lands, the checkout parks PAUSED at clear_cart
/// with its order placed, and completes once the cart is released.
#[tokio::test]
async fn a_checkout_meeting_a_paused_cart_at_clear_cart_parks_there_then_completes() {
    let app = spawn_app().await;
    let p = app.product("10.00", 5).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 2 })).await;
    pause(&app, "cart", &c.id, "chargeback review").await;
    let (status, body) = app.place_order(&c.token, "tok_visa").await;
    assert_eq!((status, body["state"].as_str()), (202, Some("PAUSED")), "{body}");
    let saga_id = body["saga_id"].as_str().unwrap().to_string();
    let saga = app.saga(&saga_id).await;
    assert_eq!(saga["current_step"], "clear_cart", "{saga}");
    assert_eq!(saga["steps"][5]["state"], "SUCCEEDED", "{saga}");
    assert_eq!(saga["steps"][6]["state"], "PENDING", "{saga}");
    let order_id = saga["order_id"].as_str().unwrap().to_string();
    assert_eq!(app.get(&format!("/v1/orders/{order_id}"), Some(&c.token)).await.1["status"], "PENDING");
    assert_eq!(app.cart(&c.token).await["items"].as_array().unwrap().len(), 1, "nothing taken out yet");

    let released = release(&app, "cart", &c.id).await;
    assert_eq!(released["resumed_sagas"], 1);
    let saga = app.saga_reaches(&saga_id, "COMPLETED").await;
    assert_eq!(saga["steps"][6]["state"], "SUCCEEDED", "{saga}");
    assert!(app.cart(&c.token).await["items"].as_array().unwrap().is_empty());
    assert_eq!(app.stock_of(&p).await, (5, 2));
}
