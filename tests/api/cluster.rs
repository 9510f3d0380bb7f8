//! The store's lease on PostgreSQL: one server writes to a store at a time; a server that
//! paused past its lease is fenced, its late writes refused, once another took over.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

const WHY: &str = "leases are how servers share a PostgreSQL store; the embedded store has one server";

async fn admin_get(client: &reqwest::Client, url: &str, path: &str) -> (u16, Value) {
    raw_call(client, url, reqwest::Method::GET, path, Some(ADMIN), None, None).await.expect("server answers")
}

/// A category and a product in it; `Err` when the server closed the connection unanswered.
async fn create_product(client: &reqwest::Client, url: &str, name: &str) -> Result<(u16, Value), reqwest::Error> {
    let post = |path: &'static str, body: Value| {
        raw_call(client, url, reqwest::Method::POST, path, Some(ADMIN), None, Some(body))
    };
    let (_, category) = post("/admin/v1/categories", json!({ "name": "Books" })).await?;
    assert!(category["category_id"].is_string(), "{category}");
    let body = json!({ "name": name, "description": "d", "price": "5.00", "category_id": category["category_id"], "initial_stock": 3 });
    post("/admin/v1/products", body).await
}

fn signal(server: &ServerProcess, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_child(&server.child);
    rustix::process::kill_process(pid, signal).expect("signal delivered");
}

#[tokio::test]
async fn the_cluster_view_names_this_server_and_the_lease_it_holds() {
    let app = spawn_app_with(|s| s.cluster.node_id = "node-one".into()).await;
    let (status, body) = app.get("/admin/v1/cluster", Some(ADMIN)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["node_id"], "node-one");
    let (status, _) = app.get("/admin/v1/cluster", Some(FULFILLMENT)).await;
    assert_eq!(status, 403);
    let console = crate::console::Browser::signed_in(&app, ADMIN).await;
    let page = console.get("/console/cluster").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("node-one"), "{}", page.body);
    let fulfillment = crate::console::Browser::signed_in(&app, FULFILLMENT).await;
    assert_eq!(fulfillment.get("/console/cluster").await.status, 403);
    if postgres_only("the_cluster_view_names_this_server_and_the_lease_it_holds: the lease", WHY) {
        assert_eq!((body["backend"].as_str(), body["leases"].as_array().map(Vec::len)), (Some("sled"), Some(0)));
        return;
    }
    assert_eq!(body["backend"], "postgres");
    let lease = &body["leases"][0];
    assert_eq!((lease["partition"].as_i64(), lease["owner"].as_str()), (Some(0), Some("node-one")), "{body}");
    assert!(lease["epoch"].as_i64().unwrap() >= 1, "{body}");
    assert!(lease["expires_at"].as_str().unwrap().ends_with('Z'), "{body}");
    assert!(page.body.contains("node-one</code> (this server)"), "the console shows the lease: {}", page.body);
}

/// A server SIGSTOPped past its lease: a second one on the same store takes the lease over
/// (waiting out the first one's), serves, and the first one, resumed, gets no write in:
/// its late write is refused and it stops (fail-stop, exit 75), naming the lost lease.
#[tokio::test]
async fn a_server_paused_past_its_lease_is_fenced_and_its_late_write_is_refused() {
    if postgres_only("a_server_paused_past_its_lease_is_fenced_and_its_late_write_is_refused", WHY) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut first = ServerProcess::start_with(dir.path(), &[("CARTWRIGHT__CLUSTER__NODE_ID", "first")]);
    let (status, before) = create_product(&client, &first.url, "Before the pause").await.unwrap();
    assert_eq!(status, 201, "{before}");
    let (_, view) = admin_get(&client, &first.url, "/admin/v1/cluster").await;
    let first_epoch = view["leases"][0]["epoch"].as_i64().unwrap();

    signal(&first, rustix::process::Signal::STOP);
    // Starts once the first server's lease (1 s in tests) has run out.
    let second = ServerProcess::start_with(dir.path(), &[("CARTWRIGHT__CLUSTER__NODE_ID", "second")]);
    let (_, view) = admin_get(&client, &second.url, "/admin/v1/cluster").await;
    let lease = &view["leases"][0];
    assert_eq!((lease["owner"].as_str(), lease["epoch"].as_i64()), (Some("second"), Some(first_epoch + 1)), "{view}");
    let product_id = before["product_id"].as_str().unwrap();
    let (status, _) = admin_get(&client, &second.url, &format!("/v1/products/{product_id}")).await;
    assert_eq!(status, 200, "the second server sees what the first acknowledged");

    // The first server's write, sent while it is paused and served once it resumes.
    let late = {
        let (client, url) = (client.clone(), first.url.clone());
        tokio::spawn(async move { create_product(&client, &url, "Late write").await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(&first, rustix::process::Signal::CONT);
    let status = first.exits_within(Duration::from_secs(10)).expect("the fenced server stops");
    assert_eq!(status.code(), Some(cartwright::store::FAIL_STOP_EXIT_CODE));
    // Either the connection closes unanswered, or the answer is an error.
    if let Ok((status, body)) = late.await.unwrap() {
        assert!(status >= 500, "a late write is never acknowledged: {status} {body}");
    }
    let fenced = first.logged("refused (fenced)");
    let lost = first.logged("took the lease over from first");
    assert!(fenced || lost, "the first server said why it stopped: {:?}", first.log.lock().unwrap());

    // Nothing of the late write is in the store; the second server writes on.
    let (_, products) = admin_get(&client, &second.url, "/v1/products?limit=100").await;
    let names: Vec<&str> = products["products"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(names.contains(&"Before the pause") && !names.contains(&"Late write"), "{names:?}");
    let (status, body) = create_product(&client, &second.url, "After the takeover").await.unwrap();
    assert_eq!(status, 201, "{body}");
    second.kill9();
}

/// The fence itself, without the renewal getting there first (a lease of a minute is
/// renewed every 20 s): the lease taken over in the database, as another server would,
/// the next write set of the server that held it is refused inside its own transaction,
/// counted, and the server stops.
#[tokio::test]
async fn a_write_after_the_lease_was_taken_over_is_refused_inside_its_transaction() {
    if postgres_only("a_write_after_the_lease_was_taken_over_is_refused_inside_its_transaction", WHY) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let env = [("CARTWRIGHT__CLUSTER__NODE_ID", "holder"), ("CARTWRIGHT__CLUSTER__LEASE_MS", "60000")];
    let mut server = ServerProcess::start_with(dir.path(), &env);
    let (status, body) = create_product(&client, &server.url, "Acknowledged").await.unwrap();
    assert_eq!(status, 201, "{body}");

    let (db, connection) = tokio_postgres::connect(&postgres_url().unwrap(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let schema = postgres_schema(dir.path());
    let took = db
        .execute(&format!(r#"UPDATE "{schema}".leases SET owner = 'intruder', epoch = epoch + 1"#), &[])
        .await
        .unwrap();
    assert_eq!(took, 1);

    let late = create_product(&client, &server.url, "Fenced").await;
    assert!(late.as_ref().map_or(true, |(status, _)| *status >= 500), "never acknowledged: {late:?}");
    let status = server.exits_within(Duration::from_secs(10)).expect("the fenced server stops");
    assert_eq!(status.code(), Some(cartwright::store::FAIL_STOP_EXIT_CODE));
    assert!(server.logged("write sets refused (fenced)"), "{:?}", server.log.lock().unwrap());
    let names: Vec<String> = db
        .query(&format!(r#"SELECT v FROM "{schema}".products"#), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| String::from_utf8_lossy(row.get::<_, &[u8]>(0)).into_owned())
        .collect();
    assert_eq!(names.len(), 1, "only the acknowledged product is stored");
    assert!(names[0].contains("Acknowledged"));
}

/// An active server and a standby on one store: the standby waits for the lease. The active
/// one is killed (`kill -9`) with checkouts in flight (RETRYING at authorize_payment); the
/// standby takes the lease once it expires, recovers those sagas and completes them, and
/// the books balance: every order placed once, its stock reserved once.
#[tokio::test]
async fn a_standby_takes_over_after_kill_9_and_completes_the_checkouts_in_flight() {
    if postgres_only("a_standby_takes_over_after_kill_9_and_completes_the_checkouts_in_flight", WHY) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let common = [("CARTWRIGHT__CHECKOUT__SYNC_WAIT_MS", "20")];
    let active = ServerProcess::start_with(dir.path(), &[common[0], ("CARTWRIGHT__CLUSTER__NODE_ID", "active")]);
    let app = TestApp::client_of(&active.url);
    app.set_policy("place_order", "authorize_payment", 5, 400).await;
    let product = app.product("10.00", 20).await;
    let mut checkouts = Vec::new();
    for _ in 0..4 {
        let c = app.verified_customer().await;
        app.add_to_cart(&c.token, json!({ "product_id": product, "quantity": 2 })).await;
        let (status, body) = app.place_order(&c.token, "tok_flaky").await;
        assert_eq!(status, 202, "in flight when the active server dies: {body}");
        checkouts.push(body["saga_id"].as_str().unwrap().to_string());
    }

    let standby_dir = dir.path().to_path_buf();
    let standby = tokio::task::spawn_blocking(move || {
        ServerProcess::start_with(&standby_dir, &[common[0], ("CARTWRIGHT__CLUSTER__NODE_ID", "standby")])
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!standby.is_finished(), "the standby waits while the active server holds the lease");
    let killed = std::time::Instant::now();
    active.kill9();
    let standby = standby.await.unwrap();
    println!("standby serving {:?} after the kill (lease 1 s)", killed.elapsed());

    let app = TestApp::client_of(&standby.url);
    let (_, view) = app.get("/admin/v1/cluster", Some(ADMIN)).await;
    assert_eq!(view["leases"][0]["owner"], "standby", "{view}");
    let mut orders = std::collections::HashSet::new();
    for saga_id in &checkouts {
        let saga = app.saga_reaches(saga_id, "COMPLETED").await;
        orders.insert(saga["order_id"].as_str().unwrap().to_string());
    }
    assert_eq!(orders.len(), 4, "one order per checkout");
    assert_eq!(app.stock_of(&product).await, (20, 8), "each order's two units reserved once");
    let placed = app.events("OrderPlaced").await;
    assert_eq!(placed.len(), 4, "one OrderPlaced per order: {placed:?}");
}

/// A clean stop gives the lease up: a standby takes over at once instead of waiting out a
/// lease of a minute (a rolling restart waits for nobody), and serves what the first
/// server acknowledged.
#[tokio::test]
async fn a_clean_stop_hands_the_lease_to_the_standby_at_once() {
    if postgres_only("a_clean_stop_hands_the_lease_to_the_standby_at_once", WHY) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let minute = ("CARTWRIGHT__CLUSTER__LEASE_MS", "60000");
    let active = ServerProcess::start_with(dir.path(), &[minute, ("CARTWRIGHT__CLUSTER__NODE_ID", "active")]);
    let client = reqwest::Client::new();
    let (status, product) = create_product(&client, &active.url, "Kept").await.unwrap();
    assert_eq!(status, 201, "{product}");
    let (_, view) = admin_get(&client, &active.url, "/admin/v1/cluster").await;
    let epoch = view["leases"][0]["epoch"].as_i64().unwrap();

    let standby_dir = dir.path().to_path_buf();
    let standby = tokio::task::spawn_blocking(move || {
        ServerProcess::start_with(&standby_dir, &[minute, ("CARTWRIGHT__CLUSTER__NODE_ID", "standby")])
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!standby.is_finished(), "the standby waits while the active server holds the lease");
    let stopped = std::time::Instant::now();
    assert!(active.terminate().success(), "a clean stop");
    let standby = standby.await.unwrap();
    let waited = stopped.elapsed();
    assert!(waited < Duration::from_secs(30), "taken over on release, not at expiry: {waited:?}");
    let (_, view) = admin_get(&client, &standby.url, "/admin/v1/cluster").await;
    let lease = &view["leases"][0];
    assert_eq!((lease["owner"].as_str(), lease["epoch"].as_i64()), (Some("standby"), Some(epoch + 1)), "{view}");
    let id = product["product_id"].as_str().unwrap();
    assert_eq!(admin_get(&client, &standby.url, &format!("/v1/products/{id}")).await.0, 200);
}
