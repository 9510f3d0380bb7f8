//! Backup of a running shop and restore: taken during a checkout load, restored into a new
//! directory, and the restored shop's books balance.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{
    address, postgres_url, sled_only, spawn_app, spawn_app_with, store_dir, TestApp, ADMIN, FULFILLMENT,
};

/// Why backups are sled's: they copy sled's trees, and a PostgreSQL store answers that
/// pg_dump is the tool for it.
const SLED_BACKUP: &str = "backups are snapshots of sled's trees; PostgreSQL is backed up with pg_dump";

/// Orders the shoppers were told about (201), and the cancellations (200) of some of them.
#[derive(Default)]
struct Acknowledged {
    placed: Vec<String>,
    cancelled: Vec<String>,
}

async fn send(client: &reqwest::Client, url: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
    let resp = client.post(format!("{url}{path}")).bearer_auth(token).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// One customer's loop: add an item, check out with tok_visa, cancel every third order.
async fn shopper(
    url: String,
    token: String,
    products: Arc<Vec<String>>,
    acked: Arc<Mutex<Acknowledged>>,
    stop: Arc<AtomicBool>,
) {
    let client = reqwest::Client::new();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let item = json!({ "product_id": products[n % products.len()], "quantity": 1 + n % 2 });
        let (status, body) = send(&client, &url, "/v1/cart/items", &token, item).await;
        assert_eq!(status, 200, "{body}");
        let checkout = json!({ "shipping_address": address("US"), "payment": { "token": "tok_visa" } });
        let (status, order) = send(&client, &url, "/v1/orders", &token, checkout).await;
        if status != 201 {
            continue; // 202: still running; the restored shop must settle it all the same
        }
        let order_id = order["order_id"].as_str().unwrap().to_string();
        acked.lock().unwrap().placed.push(order_id.clone());
        if n.is_multiple_of(3) {
            let path = format!("/v1/orders/{order_id}/cancel");
            let (status, body) = send(&client, &url, &path, &token, json!({ "reason": "changed my mind" })).await;
            assert_eq!(status, 200, "{body}");
            acked.lock().unwrap().cancelled.push(order_id);
        }
    }
}

async fn placed_count(acked: &Mutex<Acknowledged>) -> usize {
    acked.lock().unwrap().placed.len()
}

async fn wait_for_orders(acked: &Mutex<Acknowledged>, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while placed_count(acked).await < at_least {
        assert!(Instant::now() < deadline, "the load placed too few orders");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every saga, once none is running, retrying or compensating any more.
async fn settled_sagas(app: &TestApp) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut sagas = Vec::new();
        let mut cursor = String::new();
        loop {
            let (status, body) = app.get(&format!("/admin/v1/sagas?limit=500{cursor}"), Some(ADMIN)).await;
            assert_eq!(status, 200, "{body}");
            sagas.extend(body["sagas"].as_array().unwrap().iter().cloned());
            match body["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
        if sagas.iter().all(|s| ["COMPLETED", "FAILED", "ABORTED"].contains(&s["state"].as_str().unwrap())) {
            return sagas;
        }
        assert!(Instant::now() < deadline, "sagas did not settle: {sagas:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_during_checkouts_restores_a_shop_whose_books_balance() {
    if sled_only("a_backup_taken_during_checkouts_restores_a_shop_whose_books_balance", SLED_BACKUP) {
        return;
    }
    let app = spawn_app().await;
    let products = Arc::new(vec![app.product("10.00", 10_000).await, app.product("3.50", 10_000).await]);
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut shoppers = Vec::new();
    for _ in 0..6 {
        let customer = app.verified_customer().await;
        let run = shopper(app.url.clone(), customer.token, products.clone(), acked.clone(), stop.clone());
        shoppers.push(tokio::spawn(run));
    }

    // Three backups, each taken while the shoppers keep checking out and cancelling.
    let mut taken = Vec::new();
    for round in 1..=3 {
        wait_for_orders(&acked, 12 * round).await;
        let before = {
            let a = acked.lock().unwrap();
            Acknowledged { placed: a.placed.clone(), cancelled: a.cancelled.clone() }
        };
        let dir = store_dir();
        let summary = cartwright::backup::fetch(&app.url, ADMIN, dir.path(), false).await.unwrap();
        taken.push((dir, summary, before));
    }
    wait_for_orders(&acked, placed_count(&acked).await + 6).await;
    stop.store(true, Ordering::Relaxed);
    for s in shoppers {
        s.await.unwrap();
    }
    for (dir, summary, before) in taken {
        restores_a_shop_whose_books_balance(dir.path(), &summary, &before, &products).await;
    }
}

/// Restores the backup in `dir` into a new directory, starts a server on it and checks it.
async fn restores_a_shop_whose_books_balance(
    dir: &std::path::Path,
    summary: &cartwright::backup::Summary,
    before: &Acknowledged,
    products: &[String],
) {
    let records = |name: &str| summary.trees.iter().find(|t| t.name == name).map_or(0, |t| t.records);
    assert!(records("orders") as usize >= before.placed.len(), "{:?}", summary.trees);
    assert!(records("events_by_order") >= records("orders"), "each order's events are indexed: {:?}", summary.trees);
    println!("backup: {} orders, {} sagas unfinished when it was taken", records("orders"), records("active_sagas"));
    let target = dir.join("restored-store");
    let (from, to) = (dir.to_path_buf(), target.clone());
    let restored = tokio::task::spawn_blocking(move || cartwright::backup::restore(&from, &to)).await.unwrap().unwrap();
    assert_eq!(restored.trees, summary.trees);
    let shop = spawn_app_with(|s| s.storage.path = target.clone()).await;

    // Every saga the backup caught in flight resumed and finished.
    let sagas = settled_sagas(&shop).await;
    assert!(sagas.iter().any(|s| s["state"] == "COMPLETED"));

    // Every write acknowledged before the backup started is in it.
    let (status, body) = shop.get("/admin/v1/orders?limit=1000", Some(ADMIN)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["next_cursor"].is_null());
    let orders = body["orders"].as_array().unwrap().clone();
    let status_of: HashMap<&str, &str> =
        orders.iter().map(|o| (o["order_id"].as_str().unwrap(), o["status"].as_str().unwrap())).collect();
    for id in &before.placed {
        assert!(status_of.contains_key(id.as_str()), "order {id} acknowledged before the backup is missing");
    }
    for id in &before.cancelled {
        assert_eq!(status_of[id.as_str()], "CANCELLED", "order {id} was cancelled before the backup");
    }
    // An order's events come with it.
    if let Some(id) = before.placed.first() {
        let (status, events) = shop.get(&format!("/admin/v1/orders/{id}/events"), Some(ADMIN)).await;
        assert_eq!((status, events["events"][0]["type"].as_str()), (200, Some("OrderPlaced")), "{events}");
    }

    // reserved is exactly what the live orders hold.
    for p in products {
        let held: u64 = orders
            .iter()
            .filter(|o| o["status"] == "PENDING" || o["status"] == "CONFIRMED")
            .flat_map(|o| o["items"].as_array().unwrap().clone())
            .filter(|i| i["product_id"] == p.as_str())
            .map(|i| i["quantity"].as_u64().unwrap())
            .sum();
        assert_eq!(shop.stock_of(p).await, (10_000, held), "product {p}");
    }

    // One OrderPlaced per order, and no event sequence number twice.
    let mut seqs = HashSet::new();
    let mut placed_events: HashMap<String, usize> = HashMap::new();
    let mut after = 0;
    loop {
        let (status, page) = shop.get(&format!("/admin/v1/events?after={after}&limit=1000"), Some(ADMIN)).await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().unwrap();
        let Some(last) = events.last() else { break };
        after = last["seq"].as_u64().unwrap();
        for e in events {
            assert!(seqs.insert(e["seq"].as_u64().unwrap()), "repeated seq {e}");
            if e["type"] == "OrderPlaced" {
                *placed_events.entry(e["data"]["order_id"].as_str().unwrap().to_string()).or_default() += 1;
            }
        }
    }
    assert_eq!(placed_events.len(), orders.len(), "an OrderPlaced for every order");
    for (order, n) in &placed_events {
        assert_eq!(*n, 1, "order {order} placed {n} times");
        assert!(status_of.contains_key(order.as_str()), "OrderPlaced for an order that does not exist: {order}");
    }
}

#[tokio::test]
async fn only_the_admin_may_take_a_backup() {
    let app = spawn_app().await;
    let (status, body) = app.post("/admin/v1/backups", Some(FULFILLMENT), json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("FORBIDDEN")), "{body}");
    let (status, _) = app.post("/admin/v1/backups", None, json!({})).await;
    assert_eq!(status, 401);
    let (status, _) = app.get("/admin/v1/backups", Some(ADMIN)).await;
    assert_eq!(status, 405);
    let dir = store_dir();
    let err = cartwright::backup::fetch(&app.url, FULFILLMENT, dir.path(), false).await.unwrap_err();
    assert!(err.to_string().contains("403 FORBIDDEN"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing saved");

    if postgres_url().is_some() {
        // The database's own tools back up a PostgreSQL store; the answer says so.
        let (status, body) = app.post("/admin/v1/backups", Some(ADMIN), json!({})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (501, Some("NOT_SUPPORTED")), "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("pg_dump"), "{body}");
        return;
    }
    let resp = app.client.post(format!("{}/admin/v1/backups", app.url)).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    let announced: usize = resp.headers()["content-length"].to_str().unwrap().parse().unwrap();
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), announced);
    assert!(body.starts_with(b"CWBACKUP"));
}

/// The real binary's `backup` and `restore`: what they print, and what they refuse.
#[tokio::test]
async fn the_cli_backs_up_a_running_server_and_restores_only_into_an_empty_directory() {
    if sled_only("the_cli_backs_up_a_running_server_and_restores_only_into_an_empty_directory", SLED_BACKUP) {
        return;
    }
    let app = spawn_app().await;
    let product = app.product("5.00", 7).await;
    let dir = store_dir();
    let backups = dir.path().join("backups");
    // The server runs on its own thread and runtime: blocking this one while the CLI runs is fine.
    let cli = |args: Vec<String>| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cartwright"))
            .args(&args)
            .env_remove("CARTWRIGHT_TOKEN")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    let backup_args = |extra: &[&str]| {
        let mut args: Vec<String> = ["backup", "--url", &app.url, "--token", ADMIN, "--to"].map(String::from).into();
        args.push(backups.display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };

    let (ok, out) = cli(backup_args(&[]));
    assert!(ok, "{out}");
    assert!(out.contains("products") && out.contains("cartwright.backup"), "{out}");
    let (ok, out) = cli(backup_args(&[]));
    assert!(!ok && out.contains("--force"), "a second backup into the same directory is refused: {out}");
    let (ok, out) = cli(backup_args(&["--force"]));
    assert!(ok, "{out}");

    let store = dir.path().join("store");
    let restore_args = vec![
        "restore".into(),
        "--from".into(),
        backups.display().to_string(),
        "--to".into(),
        store.display().to_string(),
    ];
    let (ok, out) = cli(restore_args.clone());
    assert!(ok, "{out}");
    assert!(out.contains("products"), "{out}");
    let (ok, out) = cli(restore_args);
    assert!(!ok && out.contains("not empty"), "{out}");

    std::fs::write(backups.join("cartwright.backup"), b"CWBACKUP\0\0\0\x01 and then nothing").unwrap();
    let other = dir.path().join("other");
    let (ok, out) = cli(vec![
        "restore".into(),
        "--from".into(),
        backups.display().to_string(),
        "--to".into(),
        other.display().to_string(),
    ]);
    assert!(!ok && out.contains("checksum"), "{out}");
    assert!(!other.exists());

    let restored = spawn_app_with(|s| s.storage.path = store.clone()).await;
    assert_eq!(restored.stock_of(&product).await, (7, 0));
}
