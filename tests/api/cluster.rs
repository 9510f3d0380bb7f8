//! The store's leases on PostgreSQL, one per partition, a fair share per server: one server
//! writes in a partition at a time; a server that paused past its lease is fenced, its late
//! writes refused, once another took its partitions over.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

const WHY: &str = "leases are how servers share a PostgreSQL store; the embedded store has one server";

/// What a server logs once it serves requests itself, and while it forwards them.
const LEADING: &str = "leading: this server now serves requests itself";
const FOLLOWING: &str = "following: another server holds the store's lease";

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

/// A browser without redirects, for the console.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Signs in to the console at `url` with the admin token; the session cookie's value.
async fn console_sign_in(url: &str) -> String {
    let resp = browser().post(format!("{url}/console/sign-in")).form(&[("token", ADMIN), ("name", "Ada")]).send().await;
    let resp = resp.expect("server answers");
    assert_eq!(resp.status().as_u16(), 303);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    cookie.strip_prefix("cartwright_console=").and_then(|c| c.split(';').next()).unwrap().to_string()
}

/// The status of a console page asked for with the session cookie `id`.
async fn console_page(url: &str, id: &str) -> u16 {
    let resp =
        browser().get(format!("{url}/console/sagas")).header("cookie", format!("cartwright_console={id}")).send();
    resp.await.expect("server answers").status().as_u16()
}

/// A connection to the test database, as an operator (or another server) would use it.
async fn database() -> tokio_postgres::Client {
    let (db, connection) = tokio_postgres::connect(&postgres_url().unwrap(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    db
}

/// Whether `server` joins its cluster within 10 s: it follows (the partitions are others')
/// or serves a share (another server gave some up to it first).
fn joins(server: &ServerProcess) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !(server.logged(FOLLOWING) || server.logged(LEADING)) {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
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
    assert_eq!((body["backend"].as_str(), body["partitions"].as_u64()), (Some("postgres"), Some(16)), "{body}");
    // One lease per partition, every one this server's, taken at one epoch.
    let leases = body["leases"].as_array().unwrap();
    let partitions: Vec<i64> = leases.iter().map(|l| l["partition"].as_i64().unwrap()).collect();
    assert_eq!(partitions, (0..16).collect::<Vec<_>>(), "{body}");
    assert!(leases.iter().all(|l| l["owner"] == "node-one" && l["epoch"] == leases[0]["epoch"]), "{body}");
    assert!(leases[0]["epoch"].as_i64().unwrap() >= 1, "{body}");
    assert!(leases.iter().all(|l| l["expires_at"].as_str().unwrap().ends_with('Z')), "{body}");
    let me = &body["nodes"][0];
    assert_eq!(
        (me["node_id"].as_str(), me["leader"].as_bool(), me["partitions"].as_i64()),
        (Some("node-one"), Some(true), Some(16))
    );
    assert!(page.body.contains("node-one</code> (this server)"), "the console shows the lease: {}", page.body);
    assert!(page.body.contains("16 of 16"), "the console shows the partitions held: {}", page.body);
    let metrics = app.client.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    for line in ["cartwright_partitions 16", "cartwright_leases_held 16"] {
        assert!(metrics.lines().any(|l| l == line), "{line} in the metrics, for the alert on unowned partitions");
    }
}

/// A store written by a build before partitions had one lease row (partition 0) and no
/// recorded count: a server of this build records its count, adds the other partitions'
/// rows and takes them all at one epoch above the old one, once the old lease has expired.
#[tokio::test]
async fn a_store_from_before_partitions_is_taken_whole_above_its_old_epoch() {
    if postgres_only("a_store_from_before_partitions_is_taken_whole_above_its_old_epoch", WHY) {
        return;
    }
    let dir = store_dir();
    let first = ServerProcess::start_listening(dir.path(), &[("CARTWRIGHT__CLUSTER__NODE_ID", "first")]);
    assert!(first.logs_within(LEADING, Duration::from_secs(10)));
    assert_eq!(first.terminate().code(), Some(0));
    let db = database().await;
    let schema = postgres_schema(dir.path());
    // What the old build left: one row, held by an old server whose lease ends in a few
    // seconds (long enough for the new server to start and find it held, even on a loaded
    // machine).
    let old = format!(
        r#"DELETE FROM "{schema}".leases WHERE partition_id > 0;
           DELETE FROM "{schema}".cluster_settings;
           UPDATE "{schema}".leases SET owner = 'old', epoch = 7, expires_at = now() + INTERVAL '4 seconds'"#
    );
    db.batch_execute(&old).await.unwrap();
    let new = ServerProcess::start_listening(dir.path(), &[("CARTWRIGHT__CLUSTER__NODE_ID", "new")]);
    assert!(
        new.logs_within("another server holds the store's leases", Duration::from_secs(10)),
        "it waits for the old one"
    );
    assert!(new.logs_within(LEADING, Duration::from_secs(10)), "then leads");
    let (_, view) = admin_get(&reqwest::Client::new(), &new.url, "/admin/v1/cluster").await;
    let leases = view["leases"].as_array().unwrap();
    assert_eq!(leases.len(), 16, "{view}");
    assert!(leases.iter().all(|l| l["owner"] == "new" && l["epoch"] == 8), "{view}");
    let recorded = db.query_one(&format!(r#"SELECT value FROM "{schema}".cluster_settings"#), &[]).await.unwrap();
    assert_eq!(recorded.get::<_, i64>(0), 16);
}

/// Two servers given one `cluster.node_id` would each take the other's leases as their own
/// and fence each other in turn: the second refuses to start while the first is alive, and
/// the first serves on. After a `kill -9`, the same id starts again at once (its old row's
/// heartbeat does not move) and leads.
#[tokio::test]
async fn a_second_server_with_a_live_servers_node_id_refuses_to_start() {
    if postgres_only("a_second_server_with_a_live_servers_node_id_refuses_to_start", WHY) {
        return;
    }
    let dir = store_dir();
    let client = reqwest::Client::new();
    // A lease of 5 s: the restart below must see the killed server's last heartbeat as
    // fresh (within a lease), however long a loaded machine takes to start it.
    let twin = [("CARTWRIGHT__CLUSTER__NODE_ID", "twin"), ("CARTWRIGHT__CLUSTER__LEASE_MS", "5000")];
    let first = ServerProcess::start_with(dir.path(), &twin);
    let (status, output) =
        ServerProcess::run_to_exit(dir.path(), &[twin[0], twin[1], ("CARTWRIGHT__SERVER__ADDR", "127.0.0.1:0")]);
    assert!(!status.success(), "{output}");
    assert!(output.contains("another live server has cluster.node_id = twin"), "{output}");
    assert!(output.contains(&first.url), "it names where the other one is: {output}");
    let (status, body) = create_product(&client, &first.url, "Still served").await.unwrap();
    assert_eq!(status, 201, "the first server leads on: {body}");
    let (_, view) = admin_get(&client, &first.url, "/admin/v1/cluster").await;
    assert_eq!(view["leases"][0]["owner"], "twin", "{view}");

    first.kill9();
    let again = ServerProcess::start_with(dir.path(), &twin);
    assert!(again.logged("watching it for one beat"), "{:?}", again.log.lock().unwrap());
    let (status, body) = create_product(&client, &again.url, "After the restart").await.unwrap();
    assert_eq!(status, 201, "{body}");
}

/// `cartwright cluster` reads the leases and servers from the database itself, with the
/// server's settings: it shows the leader holding every partition, and after a `kill -9`,
/// once the lease has run out, that nobody holds them, when no server is left to answer the
/// admin API. On the embedded store it says it has nothing to show.
#[tokio::test]
async fn the_cluster_command_reads_the_leases_from_the_database_even_with_no_leader() {
    let dir = store_dir();
    if postgres_only("the_cluster_command_reads_the_leases_from_the_database_even_with_no_leader", WHY) {
        let out = ServerProcess::command_on_store(dir.path(), &["cluster"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("the embedded store has one server and no leases"), "{err}");
        return;
    }
    let solo = ServerProcess::start_with(dir.path(), &[("CARTWRIGHT__CLUSTER__NODE_ID", "solo")]);
    let out = ServerProcess::command_on_store(dir.path(), &["cluster"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("16 partitions\n"), "{text}");
    assert!(text.contains("  held by solo (epoch ") && text.contains("): 0-15\n"), "{text}");
    assert!(!text.contains("held by no server"), "{text}");
    let row = text.lines().find(|l| l.starts_with("solo ")).expect("the server's row");
    assert_eq!(row.split_whitespace().take(3).collect::<Vec<_>>(), ["solo", "leader", "16"], "{text}");

    solo.kill9();
    tokio::time::sleep(Duration::from_millis(1_500)).await; // the test lease of 1 s runs out
    let out = ServerProcess::command_on_store(dir.path(), &["cluster", "--json"]);
    let view: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(view["partitions"], 16, "{view}");
    let leases = view["leases"].as_array().unwrap();
    assert!(leases.iter().all(|l| l["owner"] == "solo" && l["live"] == false), "expired, not taken: {view}");
    let node = &view["nodes"][0];
    assert_eq!(
        (node["node_id"].as_str(), node["leader"].as_bool(), node["partitions"].as_i64()),
        (Some("solo"), Some(false), Some(0)),
        "{view}"
    );
    let out = ServerProcess::command_on_store(dir.path(), &["cluster"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("  held by no server: 0-15 "), "{text}");
}

/// A store's partition count is fixed when it is created: a server configured with another
/// would take keys for its own that the others think theirs, so it refuses to start, saying
/// which count to set; a server with the right one joins.
#[tokio::test]
async fn a_server_configured_with_another_partition_count_refuses_the_store() {
    if postgres_only("a_server_configured_with_another_partition_count_refuses_the_store", WHY) {
        return;
    }
    let dir = store_dir();
    let first = ServerProcess::start_listening(dir.path(), &[("CARTWRIGHT__CLUSTER__NODE_ID", "first")]);
    assert!(first.logs_within(LEADING, Duration::from_secs(10)), "the first server leads");
    let with = |count| [("CARTWRIGHT__SERVER__ADDR", "127.0.0.1:0"), ("CARTWRIGHT__CLUSTER__PARTITIONS", count)];
    let (status, output) = ServerProcess::run_to_exit(dir.path(), &with("8"));
    assert!(!status.success(), "{output}");
    assert!(
        output.contains("the store's key space has 16 partitions") && output.contains("set it to 16"),
        "it says why and what to set: {output}"
    );
    let (status, output) = ServerProcess::run_to_exit(dir.path(), &with("0"));
    assert!(!status.success() && output.contains("1 to 1024"), "{output}");
    let same = ServerProcess::start_listening(dir.path(), &[("CARTWRIGHT__CLUSTER__NODE_ID", "same")]);
    assert!(joins(&same), "the same count joins");
}

/// A server SIGSTOPped past its lease: a second one on the same store takes every
/// partition over (waiting out the first one's lease), serves, and the first one, resumed,
/// gets no write in under the lease it lost: it names the partitions taken, gives them up
/// and takes its share back; a write sent to it while paused is stored if and only if it
/// was acknowledged.
#[tokio::test]
async fn a_server_paused_past_its_lease_gives_up_what_was_taken_and_takes_its_share_back() {
    if postgres_only("a_server_paused_past_its_lease_gives_up_what_was_taken_and_takes_its_share_back", WHY) {
        return;
    }
    let dir = store_dir();
    let client = reqwest::Client::new();
    let first = ServerProcess::start_listening(dir.path(), &[("CARTWRIGHT__CLUSTER__NODE_ID", "first")]);
    let (status, before) = create_product(&client, &first.url, "Before the pause").await.unwrap();
    assert_eq!(status, 201, "{before}");
    let (_, view) = admin_get(&client, &first.url, "/admin/v1/cluster").await;
    let first_epoch = view["leases"][0]["epoch"].as_i64().unwrap();

    signal(&first, rustix::process::Signal::STOP);
    // Follows, then leads once the first server's lease (1 s in tests) has run out.
    let second = ServerProcess::start_listening(dir.path(), &[("CARTWRIGHT__CLUSTER__NODE_ID", "second")]);
    assert!(second.logs_within(LEADING, Duration::from_secs(10)), "the second server took over");
    let (_, view) = admin_get(&client, &second.url, "/admin/v1/cluster").await;
    let lease = &view["leases"][0];
    assert_eq!((lease["owner"].as_str(), lease["epoch"].as_i64()), (Some("second"), Some(first_epoch + 1)), "{view}");
    let product_id = before["product_id"].as_str().unwrap();
    let (status, _) = admin_get(&client, &second.url, &format!("/v1/products/{product_id}")).await;
    assert_eq!(status, 200, "the second server sees what the first acknowledged");

    // A write sent to the first server while it is paused, served once it resumes: refused
    // (its lease is gone: fenced), or forwarded to the partition's owner by then; never
    // written under the lease it lost.
    let late = {
        let (client, url) = (client.clone(), first.url.clone());
        let body = json!({ "name": "Late write" });
        tokio::spawn(async move {
            raw_call(&client, &url, reqwest::Method::POST, "/admin/v1/categories", Some(ADMIN), None, Some(body)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(&first, rustix::process::Signal::CONT);
    let late = late.await.unwrap().ok();
    let said_why = || first.logged("refused (fenced)") || first.logged("took the lease over from first");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !said_why() {
        assert!(std::time::Instant::now() < deadline, "the first server says why: {:?}", first.log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // It gave up what was taken from it and serves on: its share comes back to it.
    let shares = |view: &Value| {
        let leases = view["leases"].as_array().cloned().unwrap_or_default();
        leases.iter().filter(|l| l["owner"] == "first").count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, view) = admin_get(&client, &second.url, "/admin/v1/cluster").await;
        if shares(&view) == 8 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the first server takes its share back: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The late write is stored if and only if it was acknowledged; both servers write on.
    let (_, products) = admin_get(&client, &second.url, "/v1/products?limit=100").await;
    let names: Vec<&str> = products["products"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(names.contains(&"Before the pause"), "{names:?}");
    let (_, categories) = admin_get(&client, &second.url, "/v1/categories").await;
    let stored = categories.to_string().contains("Late write");
    let acknowledged = matches!(late, Some((201, _)));
    assert_eq!(stored, acknowledged, "late write answered {late:?}; categories {categories}");
    println!("the late write, sent to the paused server: {late:?}");
    let (status, body) = create_product(&client, &second.url, "After the takeover").await.unwrap();
    assert_eq!(status, 201, "{body}");
    let (status, body) = create_product(&client, &first.url, "Through the first again").await.unwrap();
    assert_eq!(status, 201, "{body}");
    first.kill9();
    second.kill9();
}

/// The fence itself, without the renewal getting there first: one partition's lease taken
/// over in the database, as another server would. The next write set in that partition is
/// refused inside its own transaction and counted, while a write set in a partition still
/// this server's commits; the next renewal finds the partition gone and gives it up: the
/// server serves the rest, and forwards that partition's requests to its new owner (here
/// one without an address: 503, nothing applied).
#[tokio::test]
async fn a_write_in_a_partition_taken_over_is_refused_inside_its_transaction_and_others_commit() {
    if postgres_only("a_write_in_a_partition_taken_over_is_refused_inside_its_transaction_and_others_commit", WHY) {
        return;
    }
    let dir = store_dir();
    // Renewed every 5 s: the take and both writes fit between two renewals.
    let env = [("CARTWRIGHT__CLUSTER__NODE_ID", "holder"), ("CARTWRIGHT__CLUSTER__LEASE_MS", "15000")];
    let server = ServerProcess::start_listening(dir.path(), &env);
    let app = TestApp::client_of(&server.url);
    let product = app.product("5.00", 10).await;
    let partitions = cartwright::domain::partition::Partitions::DEFAULT;
    let partition_of = |c: &Customer| partitions.of(&c.id.parse().unwrap()).0;
    // The cart of the customer whose partition is taken must not share the one of the logs
    // (partition 0, which every write set with an event touches).
    let mut taken = app.verified_customer().await;
    while partition_of(&taken) == 0 {
        taken = app.verified_customer().await;
    }
    let mut kept = app.verified_customer().await;
    while partition_of(&kept) == partition_of(&taken) {
        kept = app.verified_customer().await;
    }

    let renewals = || async {
        let text = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
        metric(&text, "cartwright_lease_renewals_total")
    };
    let before = renewals().await;
    while renewals().await == before {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let db = database().await;
    let schema = postgres_schema(dir.path());
    let take = format!(r#"UPDATE "{schema}".leases SET owner = 'intruder', epoch = epoch + 1 WHERE partition_id = $1"#);
    assert_eq!(db.execute(&take, &[&i32::from(partition_of(&taken))]).await.unwrap(), 1);

    let item = json!({ "product_id": product, "quantity": 1 });
    let (status, body) = app.add_to_cart(&taken.token, item.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("UNAVAILABLE")), "{body}");
    let (status, body) = app.add_to_cart(&kept.token, item.clone()).await;
    assert!(status == 200 || status == 201, "a partition still this server's is written: {body}");
    let text = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
    assert_eq!(metric(&text, "cartwright_fenced_writes_total"), 1.0, "the one refused write set is counted");

    let named = format!("took the lease over from holder: partitions {} (epoch 1)", partition_of(&taken));
    assert!(server.logs_within(&named, Duration::from_secs(15)), "the renewal names the partition lost");
    assert!(server.logged("gave them up, serving the rest"), "{:?}", server.log.lock().unwrap());
    let dropped = "the actors and sagas of the others dropped";
    assert!(server.logs_within(dropped, Duration::from_secs(5)), "{:?}", server.log.lock().unwrap());
    assert!(server.logged("1 write sets refused (fenced)"), "{:?}", server.log.lock().unwrap());
    let text = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
    assert_eq!(metric(&text, "cartwright_leases_held"), 15.0, "the fifteen others are still this server's");
    // Forwarded to the partition's owner, which has no address: refused before anything.
    let (status, body) = app.add_to_cart(&taken.token, item.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("UNAVAILABLE")), "{body}");
    let text = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
    assert_eq!(metric(&text, "cartwright_fenced_writes_total"), 1.0, "not tried here: forwarded");
    let (status, body) = app.add_to_cart(&kept.token, item).await;
    assert!(status == 200 || status == 201, "the rest is served on: {body}");
    assert!(server.terminate().success(), "it stops cleanly when asked");
    // A cart as stored holds its items' product ids (16 bytes each).
    let holds_the_product = |customer: &Customer| {
        let (db, schema, product) = (&db, &schema, product.parse::<uuid::Uuid>().unwrap());
        let key = customer.id.parse::<uuid::Uuid>().unwrap().as_bytes().to_vec();
        async move {
            let rows = db.query(&format!(r#"SELECT v FROM "{schema}".carts WHERE k = $1"#), &[&key]).await.unwrap();
            rows.first().is_some_and(|row| row.get::<_, &[u8]>(0).windows(16).any(|w| w == product.as_bytes()))
        }
    };
    assert!(holds_the_product(&kept).await, "the acknowledged cart is stored");
    assert!(!holds_the_product(&taken).await, "the refused cart is not");
}

/// The value of an unlabelled series in a metrics page (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

/// A first server with checkouts in flight (RETRYING at authorize_payment) and a second one
/// started beside it, which takes half the partitions. The first is killed (`kill -9`):
/// the second takes the other half once its leases expire, recovers those sagas and
/// completes every checkout, and the books balance: every order placed once, its stock
/// reserved once.
#[tokio::test]
async fn a_standby_takes_over_after_kill_9_and_completes_the_checkouts_in_flight() {
    if postgres_only("a_standby_takes_over_after_kill_9_and_completes_the_checkouts_in_flight", WHY) {
        return;
    }
    let dir = store_dir();
    let common = [("CARTWRIGHT__CHECKOUT__SYNC_WAIT_MS", "20")];
    let active = ServerProcess::start_listening(dir.path(), &[common[0], ("CARTWRIGHT__CLUSTER__NODE_ID", "active")]);
    let app = TestApp::client_of(&active.url);
    // `tok_flaky` fails twice per gateway: the standby's fresh one fails twice more, so
    // the policy leaves room for as many attempts as the active server makes before the
    // kill on a loaded machine (one a second), and three after it.
    app.set_policy("place_order", "authorize_payment", 12, 1000).await;
    let product = app.product("10.00", 20).await;
    let mut checkouts = Vec::new();
    for _ in 0..4 {
        let c = app.verified_customer().await;
        app.add_to_cart(&c.token, json!({ "product_id": product, "quantity": 2 })).await;
        let (status, body) = app.place_order(&c.token, "tok_flaky").await;
        assert_eq!(status, 202, "in flight when the active server dies: {body}");
        checkouts.push(body["saga_id"].as_str().unwrap().to_string());
    }

    let standby = ServerProcess::start_listening(dir.path(), &[common[0], ("CARTWRIGHT__CLUSTER__NODE_ID", "standby")]);
    let through_standby = TestApp::client_of(&standby.url);
    let (_, view) = through_standby.get("/admin/v1/cluster", Some(ADMIN)).await;
    assert_eq!(view["node_id"], "active", "partition 0's owner answers: {view}");
    let killed = std::time::Instant::now();
    active.kill9();
    let app = TestApp::client_of(&standby.url);
    loop {
        let (_, view) = app.get("/admin/v1/cluster", Some(ADMIN)).await;
        let leases = view["leases"].as_array().cloned().unwrap_or_default();
        if leases.len() == 16 && leases.iter().all(|l| l["owner"] == "standby" && l["live"] == true) {
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(10), "the standby takes every partition over: {view}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("the standby holds every partition {:?} after the kill (lease 1 s)", killed.elapsed());
    let mut orders = std::collections::HashSet::new();
    for saga_id in &checkouts {
        let saga = app.saga_reaches(saga_id, "COMPLETED").await;
        orders.insert(saga["order_id"].as_str().unwrap().to_string());
    }
    assert_eq!(orders.len(), 4, "one order per checkout");
    assert_eq!(app.stock_of(&product).await, (20, 8), "each order's two units reserved once");
    // A checkout finished while the standby held half was staged there, and moved into the
    // log by partition 0's owner within its 100 ms.
    app.eventually("one OrderPlaced per order", || async { app.events("OrderPlaced").await.len() == 4 }).await;
}

/// A clean stop gives the lease up: a standby takes over at once instead of waiting out a
/// lease of a minute (a rolling restart waits for nobody), and serves what the first
/// server acknowledged, the console's sessions included.
#[tokio::test]
async fn a_clean_stop_hands_the_lease_to_the_standby_at_once() {
    if postgres_only("a_clean_stop_hands_the_lease_to_the_standby_at_once", WHY) {
        return;
    }
    let dir = store_dir();
    let minute = ("CARTWRIGHT__CLUSTER__LEASE_MS", "60000");
    let active = ServerProcess::start_listening(dir.path(), &[minute, ("CARTWRIGHT__CLUSTER__NODE_ID", "active")]);
    let client = reqwest::Client::new();
    let (status, product) = create_product(&client, &active.url, "Kept").await.unwrap();
    assert_eq!(status, 201, "{product}");
    let (_, view) = admin_get(&client, &active.url, "/admin/v1/cluster").await;
    let epoch = view["leases"][0]["epoch"].as_i64().unwrap();
    let operator = console_sign_in(&active.url).await;
    assert_eq!(console_page(&active.url, &operator).await, 200);

    let standby = ServerProcess::start_listening(dir.path(), &[minute, ("CARTWRIGHT__CLUSTER__NODE_ID", "standby")]);
    assert!(standby.logs_within(FOLLOWING, Duration::from_secs(5)), "the standby follows while the lease is held");
    let stopped = std::time::Instant::now();
    assert!(active.terminate().success(), "a clean stop");
    assert!(standby.logs_within(LEADING, Duration::from_secs(30)), "the standby took over");
    let waited = stopped.elapsed();
    assert!(waited < Duration::from_secs(30), "taken over on release, not at expiry: {waited:?}");
    let (_, view) = admin_get(&client, &standby.url, "/admin/v1/cluster").await;
    let lease = &view["leases"][0];
    assert_eq!((lease["owner"].as_str(), lease["epoch"].as_i64()), (Some("standby"), Some(epoch + 1)), "{view}");
    let id = product["product_id"].as_str().unwrap();
    assert_eq!(admin_get(&client, &standby.url, &format!("/v1/products/{id}")).await.0, 200);
    assert_eq!(console_page(&standby.url, &operator).await, 200, "the operator is still signed in");
    assert_eq!(console_page(&standby.url, "cws_guess").await, 303, "and nobody else is");
}

/// A server started while another leads follows it: customers, webhook senders and
/// operators reach the shop through either server. The follower forwards each request
/// once (a forwarded request reaching a follower is refused, not passed on), answers its
/// own health and metrics, and counts what it forwarded; the cluster view lists both. Each
/// server checked the schema once at start.
#[tokio::test]
async fn a_follower_forwards_customers_webhooks_and_operators_to_the_leader() {
    if postgres_only("a_follower_forwards_customers_webhooks_and_operators_to_the_leader", WHY) {
        return;
    }
    let dir = store_dir();
    let leader = ServerProcess::start_listening(dir.path(), &[("CARTWRIGHT__CLUSTER__NODE_ID", "leader")]);
    let follower = ServerProcess::start_listening(dir.path(), &[("CARTWRIGHT__CLUSTER__NODE_ID", "follower")]);
    assert!(follower.logs_within(LEADING, Duration::from_secs(10)), "the second server serves its share");
    let app = TestApp::client_of(&follower.url);

    let (status, health) = app.get("/healthz", None).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")), "{health}");
    let (_, view) = app.get("/admin/v1/cluster", Some(ADMIN)).await;
    assert_eq!(view["node_id"], "leader", "answered by the leader: {view}");
    let roles: Vec<(&str, bool)> = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["node_id"].as_str().unwrap(), n["leader"] == true))
        .collect();
    assert_eq!(roles, vec![("leader", true), ("follower", false)], "{view}");
    let advertised = view["nodes"][1]["advertise_url"].as_str().unwrap();
    assert_eq!(advertised, follower.url, "the follower advertises the address it bound");

    // A customer's whole checkout, and the payment provider's capture, through the follower.
    let (customer, product, order) = app.pending_order(2).await;
    let order_id = order["order_id"].as_str().unwrap();
    let authorization = order["payment"]["authorization_id"].as_str().unwrap();
    let total = order["total"].as_str().unwrap();
    let (status, body) = app.capture("evt_forwarded", authorization, total).await;
    assert_eq!((status, body), (200, json!({ "status": "processed" })), "the signature verifies at the leader");
    let direct = TestApp::client_of(&leader.url);
    let (_, seen) = direct.get(&format!("/v1/orders/{order_id}"), Some(&customer.token)).await;
    assert_eq!((seen["status"].as_str(), seen["payment"]["status"].as_str()), (Some("CONFIRMED"), Some("CAPTURED")));
    assert_eq!(direct.stock_of(&product).await, (10, 2), "reserved once");
    // Staged by the order's owner when that is the second server, moved into the log by
    // partition 0's owner within its 100 ms.
    direct.eventually("one OrderPlaced in the log", || async { direct.events("OrderPlaced").await.len() == 1 }).await;

    // Refusals come back as their owner gave them, status and body.
    let (status, body) = app.get("/v1/orders/00000000-0000-7000-8000-000000000000", Some(&customer.token)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("ORDER_NOT_FOUND")), "{body}");

    // Forwarded at most once: a forwarded request that reaches a follower stops there.
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/products", follower.url))
        .header(cartwright::http::HOP_HEADER, "elsewhere")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAVAILABLE", "{body}");

    let metrics = reqwest::get(format!("{}/metrics", follower.url)).await.unwrap().text().await.unwrap();
    let forwarded = metrics
        .lines()
        .find(|l| l.starts_with("cartwright_forwarded_requests_total{outcome=\"forwarded\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(forwarded >= 8, "the follower counts what it forwarded: {forwarded}\n{metrics}");
    assert!(metrics.contains("cartwright_forwarded_requests_total{outcome=\"not_leader\"} 1"), "{metrics}");

    // Each server checked the schema's migrations once: when it joined, not again when it
    // opened the store (nor, for the follower, when it opened it to wait for the lease).
    for server in [&leader, &follower] {
        let log = server.log.lock().unwrap();
        let checks = log.iter().filter(|l| l.contains("the store's schema is up to date")).count();
        assert_eq!(checks, 1, "the schema is checked once per start: {log:?}");
    }
    leader.kill9();
    follower.kill9();
}

/// A stand-in for a server of the cluster: answers every request with its name, the path
/// and the hop header it came with. Its URL.
async fn fake_owner(name: &'static str) -> String {
    use warp::Filter;
    let answer = warp::path::full().and(warp::header::optional::<String>(cartwright::http::HOP_HEADER)).map(
        move |path: warp::path::FullPath, hop: Option<String>| {
            warp::reply::json(&json!({ "owner": name, "path": path.as_str(), "hop": hop }))
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(answer).incoming(listener).run());
    format!("http://{addr}")
}

/// Partitions owned by two other servers (stand-ins whose rows and leases are written to
/// the database; partition 3 of 16 is B's, every other A's): a follower sends a request
/// naming an order, or carrying a session token, to the owner of its partition, and what
/// has no partition (the catalogue, an old token's cart) to partition 0's owner; once
/// partition 3's lease has expired the follower takes it and answers its requests itself.
#[tokio::test]
async fn a_follower_forwards_each_request_to_the_owner_of_its_partition() {
    if postgres_only("a_follower_forwards_each_request_to_the_owner_of_its_partition", WHY) {
        return;
    }
    let dir = store_dir();
    let first = ServerProcess::start_listening(dir.path(), &[("CARTWRIGHT__CLUSTER__NODE_ID", "first")]);
    assert!(first.logs_within(LEADING, Duration::from_secs(10)));
    assert_eq!(first.terminate().code(), Some(0), "a clean stop: the schema and lease rows stay, unowned");
    let (a, b) = (fake_owner("a").await, fake_owner("b").await);
    let db = database().await;
    let schema = postgres_schema(dir.path());
    let owners = format!(
        r#"INSERT INTO "{schema}".nodes (node_id, advertise_url, started_at, heartbeat_at, instance)
           VALUES ('a', $1, now(), now(), 'fake-a'), ('b', $2, now(), now(), 'fake-b')"#
    );
    db.execute(&owners, &[&a, &b]).await.unwrap();
    let leases = format!(
        r#"UPDATE "{schema}".leases SET owner = CASE WHEN partition_id = 3 THEN 'b' ELSE 'a' END, epoch = 100,
             expires_at = now() + INTERVAL '1 minute'"#
    );
    db.execute(&leases, &[]).await.unwrap();
    let follower = ServerProcess::start_listening(dir.path(), &[("CARTWRIGHT__CLUSTER__NODE_ID", "follower")]);
    assert!(follower.logs_within(FOLLOWING, Duration::from_secs(10)), "the partitions are others'");
    let app = TestApp::client_of(&follower.url);

    let in_3 = "01a2171c-069e-7033-8a4f-bfa6b3c90013"; // 0x0013 = 19, partition 3 of 16
    let in_4 = "01a2171c-069e-7033-8a4f-bfa6b3c90004";
    let secret = "5a".repeat(32);
    let (new_token_in_3, old_token) = (format!("cws_0013_{secret}"), format!("cws_{secret}"));
    for (path, token, owner) in [
        (format!("/v1/orders/{in_3}"), None, "b"),
        (format!("/admin/v1/orders/{in_3}/events?limit=2"), Some(ADMIN), "b"),
        (format!("/admin/v1/sagas/{in_3}"), Some(ADMIN), "b"),
        (format!("/v1/orders/{in_4}"), None, "a"),
        ("/v1/cart".to_string(), Some(new_token_in_3.as_str()), "b"),
        ("/v1/orders".to_string(), Some(new_token_in_3.as_str()), "b"),
        ("/v1/cart".to_string(), Some(old_token.as_str()), "a"),
        ("/v1/products".to_string(), None, "a"),
        ("/v1/orders/not-an-id".to_string(), None, "a"),
        ("/nothing/here".to_string(), None, "a"),
    ] {
        let (status, body) = app.get(&path, token).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!((body["owner"].as_str(), body["hop"].as_str()), (Some(owner), Some("follower")), "{path}: {body}");
        assert_eq!(body["path"].as_str(), path.split('?').next(), "forwarded as it came");
    }
    let (status, health) = app.get("/healthz", None).await;
    assert_eq!((status, health["role"].as_str()), (200, Some("follower")), "answered here: {health}");

    // Partition 3's lease runs out: the follower, below its fair share, takes it and from
    // then on answers its requests itself (here, without a token: 401), the rest forwarded.
    let expire =
        format!(r#"UPDATE "{schema}".leases SET expires_at = now() - INTERVAL '1 millisecond' WHERE partition_id = 3"#);
    db.execute(&expire, &[]).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = app.get(&format!("/v1/orders/{in_3}"), None).await;
        if (status, body["error"]["code"].as_str()) == (401, Some("UNAUTHENTICATED")) {
            break;
        }
        assert!(status == 200 || status == 503, "forwarded or unowned until taken: {status} {body}");
        assert!(std::time::Instant::now() < deadline, "the follower takes the free partition: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = app.get(&format!("/v1/orders/{in_4}"), None).await;
    assert_eq!((status, body["owner"].as_str()), (200, Some("a")), "{body}");
    let metrics = reqwest::get(format!("{}/metrics", follower.url)).await.unwrap().text().await.unwrap();
    assert_eq!(metric(&metrics, "cartwright_leases_held"), 1.0, "{metrics}");
    follower.kill9();
}

/// A login through the follower, from the client `from`: its status.
async fn login_via(from: &reqwest::Client, url: &str, n: usize, extra: Option<(&str, &str)>) -> u16 {
    let mut request = from
        .post(format!("{url}/v1/sessions"))
        .json(&json!({ "email": format!("guess-{n}@example.com"), "password": "wrong-password-1" }));
    if let Some((name, value)) = extra {
        request = request.header(name, value);
    }
    request.send().await.expect("answered").status().as_u16()
}

/// A client bound to `ip` (the whole 127/8 is loopback), so servers see distinct addresses.
fn client_at(ip: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(ip.parse::<std::net::IpAddr>().unwrap()).build().unwrap()
}

/// Behind a follower every request reaches the leader from the follower's address; the
/// follower tells the leader the client's, signed with the cluster's secret. So the per
/// address login throttle counts each client on its own through the follower (not one
/// bucket for everyone behind it), the leader counts a client the same whichever server it
/// came through, and a client cannot name another address: a follower replaces the header,
/// the leader ignores it unsigned or wrongly signed.
#[tokio::test]
async fn the_leader_throttles_each_client_behind_a_follower_by_its_own_signed_address() {
    if postgres_only("the_leader_throttles_each_client_behind_a_follower_by_its_own_signed_address", WHY) {
        return;
    }
    let dir = store_dir();
    let limits =
        [("CARTWRIGHT__AUTH__LOGIN_PER_IP_PER_MINUTE", "3"), ("CARTWRIGHT__AUTH__LOGIN_PER_ACCOUNT_PER_MINUTE", "100")];
    let leader =
        ServerProcess::start_listening(dir.path(), &[limits[0], limits[1], ("CARTWRIGHT__CLUSTER__NODE_ID", "leader")]);
    let follower = ServerProcess::start_listening(
        dir.path(),
        &[limits[0], limits[1], ("CARTWRIGHT__CLUSTER__NODE_ID", "follower")],
    );
    assert!(joins(&follower), "the second server joins");
    let (ada, bob) = (client_at("127.0.0.2"), client_at("127.0.0.3"));

    for n in 0..3 {
        assert_eq!(login_via(&ada, &follower.url, n, None).await, 401, "attempt {n} is counted, not refused");
    }
    assert_eq!(login_via(&ada, &follower.url, 3, None).await, 429, "a fourth within the minute is throttled");
    // Another client behind the same follower has its own bucket.
    assert_eq!(login_via(&bob, &follower.url, 4, None).await, 401, "bob is not throttled for ada's attempts");
    // The leader counted ada's attempts on ada's own address: straight to it, she is still throttled.
    assert_eq!(login_via(&ada, &leader.url, 5, None).await, 429, "the leader saw ada's address through the follower");

    // Forgeries: ada claiming to be someone else, through the follower and straight to the leader.
    let forged = format!("127.0.0.9:4000 {}", "ab".repeat(32));
    let header = cartwright::http::CLIENT_HEADER;
    assert_eq!(login_via(&ada, &follower.url, 6, Some((header, &forged))).await, 429, "the follower replaces it");
    let to_leader = ada
        .post(format!("{}/v1/sessions", leader.url))
        .header(cartwright::http::HOP_HEADER, "follower")
        .header(header, &forged)
        .json(&json!({ "email": "guess-7@example.com", "password": "wrong-password-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(to_leader.status().as_u16(), 429, "a wrongly signed address is not believed");
    let unsigned = login_via(&ada, &leader.url, 8, Some((header, "127.0.0.9:4000"))).await;
    assert_eq!(unsigned, 429, "nor an unsigned one");
    // Nor can a forged header spend another client's attempts: bob still has his.
    assert_eq!(login_via(&bob, &leader.url, 9, None).await, 401);

    leader.kill9();
    follower.kill9();
}

/// The node `id` in the leader's cluster view, if listed.
async fn node_in_view(client: &reqwest::Client, url: &str, id: &str) -> Option<Value> {
    let (status, view) = admin_get(client, url, "/admin/v1/cluster").await;
    assert_eq!(status, 200, "{view}");
    view["nodes"].as_array().unwrap().iter().find(|n| n["node_id"] == id).cloned()
}

/// A server that died without stopping (`kill -9`) is listed stale once its heartbeat is
/// three leases old, then the leader deletes its row after ten: the cluster view does not
/// keep dead servers for ever. (Leases of 1 s here.)
#[tokio::test]
async fn the_leader_forgets_a_killed_server_after_listing_it_stale() {
    if postgres_only("the_leader_forgets_a_killed_server_after_listing_it_stale", WHY) {
        return;
    }
    let dir = store_dir();
    let client = reqwest::Client::new();
    let leader = ServerProcess::start_listening(dir.path(), &[("CARTWRIGHT__CLUSTER__NODE_ID", "leader")]);
    let follower = ServerProcess::start_listening(dir.path(), &[("CARTWRIGHT__CLUSTER__NODE_ID", "doomed")]);
    assert!(joins(&follower), "the second server joins");
    let alive = node_in_view(&client, &leader.url, "doomed").await.expect("listed while alive");
    assert_eq!(alive["stale"], false, "{alive}");
    follower.kill9();

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seen_stale = None;
    loop {
        assert!(std::time::Instant::now() < deadline, "still listed: {seen_stale:?}");
        match node_in_view(&client, &leader.url, "doomed").await {
            Some(node) if node["stale"] == true => {
                let age = node["heartbeat_age_ms"].as_i64().unwrap();
                assert!(age > 3_000, "stale only after three leases: {node}");
                seen_stale.get_or_insert(age);
            }
            Some(node) => assert!(seen_stale.is_none(), "stale stays stale: {node}"),
            None => break,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first_stale = seen_stale.expect("listed stale before it was forgotten");
    assert!(first_stale < 10_000, "stale for a while before being forgotten (at {first_stale} ms)");
    let leader_row = node_in_view(&client, &leader.url, "leader").await.expect("the leader stays");
    assert_eq!((leader_row["stale"].as_bool(), leader_row["leader"].as_bool()), (Some(false), Some(true)));
    assert!(leader.logged("forgot a server whose heartbeat stopped"), "{:?}", leader.log.lock().unwrap());
    leader.kill9();
}
