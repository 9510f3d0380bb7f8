//! What the store promises about where acknowledged bytes live: with the largest inputs
//! the API accepts, no record ever reaches sled's `blobs/` directory (files sled never
//! fsyncs), so a power cut cannot take back an acknowledged write through them.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

/// A product as large as the contract allows: the longest name and description in 4-byte
/// characters, and as many variants with long names as fit under the body limit.
fn largest_product(category_id: &str, n: usize) -> Value {
    let variants: Vec<Value> =
        (0..100).map(|i| json!({ "name": format!("{i:03}{}", "€".repeat(97)), "initial_stock": 1000 })).collect();
    json!({
        "name": format!("{n:03}{}", "𝄞".repeat(197)),
        "description": "𝄞".repeat(5000),
        "price": "19.90",
        "category_id": category_id,
        "variants": variants,
    })
}

fn blob_files(app: &TestApp) -> Vec<String> {
    match std::fs::read_dir(app.data_dir().join("blobs")) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn the_largest_accepted_inputs_never_reach_unsynced_blob_files() {
    let app = spawn_app().await;
    let (status, category) = app.post("/admin/v1/categories", Some(ADMIN), json!({ "name": "𝄞".repeat(100) })).await;
    assert_eq!(status, 201, "{category}");
    let category_id = category["category_id"].as_str().unwrap();

    let mut products = Vec::new();
    for n in 0..20 {
        let body = largest_product(category_id, n);
        assert!(serde_json::to_vec(&body).unwrap().len() < 65536);
        let (status, product) = app.create_product(body).await;
        assert_eq!(status, 201, "{product}");
        products.push(product);
    }

    // A cart at its line limit, checked out with the longest address, then cancelled.
    let c = app.verified_customer().await;
    let product_id = products[0]["product_id"].as_str().unwrap();
    for v in products[0]["variants"].as_array().unwrap() {
        let line = json!({ "product_id": product_id, "variant_id": v["variant_id"], "quantity": 1000 });
        let (status, body) = app.add_to_cart(&c.token, line).await;
        assert!(status == 200 || status == 201, "{status} {body}");
    }
    let address = json!({
        "name": "𝄞".repeat(200), "line1": "𝄞".repeat(200), "city": "𝄞".repeat(100),
        "postal_code": "𝄞".repeat(20), "country": "US"
    });
    let (status, order) = app
        .post("/v1/orders", Some(&c.token), json!({ "shipping_address": address, "payment": { "token": "tok_visa" } }))
        .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["items"].as_array().unwrap().len(), 100);
    let order_id = order["order_id"].as_str().unwrap();
    let (status, cancelled) = app.cancel_order(&c.token, order_id).await;
    assert_eq!(status, 200, "{cancelled}");

    // Webhook bodies are kept whole: the largest one the body limit lets through.
    let pad = "x".repeat(60_000);
    let body = json!({ "id": "e".repeat(200), "type": "payment.captured",
        "data": { "authorization_id": "auth_unknown", "amount": "1.00", "note": pad } });
    let (status, answer) = app.webhook_signed("payment", PAYMENT_SECRET, None, &body).await;
    assert_eq!(status, 202, "{answer}");

    // PostgreSQL has no blobs/ (its data is not in this directory); the largest inputs must
    // still be accepted and read back whole, so the rest runs on both.
    if postgres_url().is_none() {
        assert_eq!(blob_files(&app), Vec::<String>::new(), "acknowledged records in sled's unsynced blobs/");
    }
    // The workload did write records near the limits, and every one stayed within the bound.
    let metrics = app.client.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    let largest: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cartwright_store_largest_record_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .expect("largest record metric");
    eprintln!("largest record written: {largest} bytes");
    assert!(largest > 60_000 && largest <= cartwright::store::MAX_RECORD_BYTES, "largest record {largest} bytes");
    let (status, product) = app.get(&format!("/admin/v1/products/{product_id}"), Some(ADMIN)).await;
    assert_eq!(status, 200);
    assert_eq!(product["description"].as_str().unwrap().chars().count(), 5000);
}

/// Fail-stop: when a group's sync fails (EIO injected through the store's fault hook), the
/// process exits at once with its fail-stop status and a clear log line; the write that
/// was being synced is never acknowledged, and after a restart everything acknowledged
/// before is there and the unacknowledged write is applied at most once.
#[tokio::test]
async fn a_failed_sync_stops_the_process_before_anything_is_acknowledged() {
    let why = "the EIO fault hook fails sled's fsync of its files; a PostgreSQL store's is the database's";
    if sled_only("a_failed_sync_stops_the_process_before_anything_is_acknowledged", why) {
        return;
    }
    let dir = store_dir();
    let trigger = dir.path().join("inject-eio");
    let store = dir.path().join("store");
    let trigger_env = trigger.to_str().unwrap();
    let mut server = ServerProcess::start_with(&store, &[("CARTWRIGHT_FAULT_SYNC_EIO_FILE", trigger_env)]);
    let client = reqwest::Client::new();
    let call = |method, path: &str, body| {
        let (client, url, path) = (client.clone(), server.url.clone(), path.to_string());
        async move { raw_call(&client, &url, method, &path, Some(ADMIN), None, body).await }
    };

    let (status, category) =
        call(reqwest::Method::POST, "/admin/v1/categories", Some(json!({ "name": "Tools" }))).await.unwrap();
    assert_eq!(status, 201);
    let product =
        json!({ "name": "Hammer", "price": "9.90", "category_id": category["category_id"], "initial_stock": 5 });
    let (status, product) = call(reqwest::Method::POST, "/admin/v1/products", Some(product)).await.unwrap();
    assert_eq!(status, 201);
    let product_id = product["product_id"].as_str().unwrap().to_string();

    std::fs::write(&trigger, b"").unwrap();
    let restock = format!("/admin/v1/inventory/{product_id}/restock");
    let answer = call(reqwest::Method::POST, &restock, Some(json!({ "quantity": 3 }))).await;
    assert!(!matches!(answer, Ok((200..=299, _))), "a write whose sync failed was acknowledged: {answer:?}");
    let status = server.exits_within(Duration::from_secs(10)).expect("the server stopped by itself");
    assert_eq!(status.code(), Some(cartwright::store::FAIL_STOP_EXIT_CODE));
    assert!(
        server.log.lock().unwrap().iter().any(|l| l.contains("FATAL") && l.contains("fail-stop")),
        "a clear log line names the fail-stop"
    );

    std::fs::remove_file(&trigger).unwrap();
    let server = ServerProcess::start(&store);
    let client = reqwest::Client::new();
    let (status, stock) = raw_call(
        &client,
        &server.url,
        reqwest::Method::GET,
        &format!("/admin/v1/inventory/{product_id}"),
        Some(ADMIN),
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "the acknowledged product survived: {stock}");
    let on_hand = stock["items"][0]["on_hand"].as_u64().unwrap();
    assert!(on_hand == 5 || on_hand == 8, "the unacknowledged restock applied at most once: {on_hand}");
    server.kill9();
}
