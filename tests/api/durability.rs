//! Persist, then answer: everything acknowledged survives a restart, a SIGTERM and a kill -9.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn graceful_restart_keeps_catalogue_customers_carts_and_logs() {
    let mut app = spawn_app().await;
    let (pid, variants) = app.product_with_variants("7.00", &[("S", 5), ("L", 9)]).await;
    let c = app.customer().await;
    let (_, cart) =
        app.add_to_cart(&c.token, json!({ "product_id": pid, "variant_id": variants[1], "quantity": 4 })).await;
    app.restock(&pid, json!({ "quantity": 3, "variant_id": variants[0] })).await;
    let hold = uuid::Uuid::now_v7();
    app.post(
        &format!("/admin/v1/inventory/{pid}/reservations"),
        Some(ADMIN),
        json!({ "owner_id": hold, "quantity": 2, "variant_id": variants[0] }),
    )
    .await;
    let stock_before = app.stock(&pid).await;
    let events_before = app.events("ItemAddedToCart").await.len();

    app.restart().await;

    // The session token still works, the cart is intact, stock and holds are there.
    assert_eq!(app.cart(&c.token).await, cart);
    assert_eq!(app.stock(&pid).await, stock_before);
    assert_eq!(stock_before["items"][0]["reserved"], 2);
    assert_eq!(app.events("ItemAddedToCart").await.len(), events_before);
    // The hold's owner is remembered: releasing it after the restart frees the stock.
    let (_, after) = app
        .delete(&format!("/admin/v1/inventory/{pid}/reservations/{hold}?variant_id={}", variants[0]), Some(ADMIN))
        .await;
    assert_eq!(after["items"][0]["reserved"], 0);
    // Email uniqueness survives too.
    assert_eq!(app.register(&c.email).await.0, 409);
    // New events continue the sequence.
    let all = app.get("/admin/v1/events?limit=1000", Some(ADMIN)).await.1;
    let seqs: Vec<u64> = all["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
}

async fn call(
    client: &reqwest::Client,
    url: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value), reqwest::Error> {
    raw_call(client, url, method, path, token, None, body).await
}

/// Registers, logs in and returns (customer id, token) against a child server.
async fn customer_on(client: &reqwest::Client, url: &str, i: usize) -> (String, String) {
    let email = format!("k{i}-{}@example.com", uuid::Uuid::new_v4().simple());
    let (s, b) = call(
        client,
        url,
        reqwest::Method::POST,
        "/v1/customers",
        None,
        Some(json!({ "email": email, "password": PASSWORD })),
    )
    .await
    .unwrap();
    assert_eq!(s, 201, "{b}");
    let (s, session) = call(
        client,
        url,
        reqwest::Method::POST,
        "/v1/sessions",
        None,
        Some(json!({ "email": email, "password": PASSWORD })),
    )
    .await
    .unwrap();
    assert_eq!(s, 201);
    (b["customer_id"].as_str().unwrap().into(), session["token"].as_str().unwrap().into())
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9_under_load() {
    let dir = store_dir();
    let client = reqwest::Client::new();
    let server = ServerProcess::start(dir.path());
    let url = server.url.clone();
    let (_, cat) =
        call(&client, &url, reqwest::Method::POST, "/admin/v1/categories", Some(ADMIN), Some(json!({ "name": "K" })))
            .await
            .unwrap();
    let (_, p) = call(
        &client,
        &url,
        reqwest::Method::POST,
        "/admin/v1/products",
        Some(ADMIN),
        Some(json!({
            "name": "Kill", "price": "1.00", "category_id": cat["category_id"], "initial_stock": 1_000_000
        })),
    )
    .await
    .unwrap();
    let pid = p["product_id"].as_str().unwrap().to_string();
    let mut customers = Vec::new();
    for i in 0..8 {
        customers.push(customer_on(&client, &url, i).await);
    }

    // 8 customers add one unit at a time as fast as they can; count what was acknowledged.
    let acked: Arc<std::sync::Mutex<HashMap<String, u64>>> = Default::default();
    let mut tasks = Vec::new();
    for (_, token) in customers.clone() {
        let (client, url, pid, acked) = (client.clone(), url.clone(), pid.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let r = call(
                    &client,
                    &url,
                    reqwest::Method::POST,
                    "/v1/cart/items",
                    Some(&token),
                    Some(json!({ "product_id": pid, "quantity": 1 })),
                )
                .await;
                match r {
                    Ok((200, _)) => *acked.lock().unwrap().entry(token.clone()).or_default() += 1,
                    _ => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill9();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.values().sum::<u64>() > 50, "the load ran: {acked:?}");

    let server = ServerProcess::start(dir.path());
    for (_, token) in &customers {
        let (s, cart) = call(&client, &server.url, reqwest::Method::GET, "/v1/cart", Some(token), None).await.unwrap();
        assert_eq!(s, 200);
        let got = cart["items"][0]["quantity"].as_u64().unwrap_or(0);
        let want = acked.get(token).copied().unwrap_or(0);
        // Every acknowledged add is there; at most the one in flight at the kill is extra.
        assert!(got == want || got == want + 1, "acknowledged {want}, found {got}");
    }
    // The event log is intact and its sequence has no holes or repeats.
    let (_, events) =
        call(&client, &server.url, reqwest::Method::GET, "/admin/v1/events?limit=1000", Some(ADMIN), None)
            .await
            .unwrap();
    let seqs: Vec<u64> = events["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    server.kill9();
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let dir = store_dir();
    let client = reqwest::Client::new();
    let server = ServerProcess::start(dir.path());
    let (id, token) = customer_on(&client, &server.url, 0).await;
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    let server = ServerProcess::start(dir.path());
    let (s, me) = call(&client, &server.url, reqwest::Method::GET, "/v1/me", Some(&token), None).await.unwrap();
    assert_eq!((s, me["customer_id"].as_str()), (200, Some(id.as_str())));
    server.kill9();
}
