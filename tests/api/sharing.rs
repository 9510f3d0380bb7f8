//! Servers sharing a PostgreSQL store's partitions (see `store/postgres/lease.rs`): stores
//! opened in this process, each as its own server with its own membership, over one
//! schema, and whole shops (two servers in this process) each serving half: what a
//! server does for the partitions it does not own (stock and saga calls, webhooks sent on).

use std::time::{Duration, Instant};

use cartwright::config::{ClusterSettings, Settings};
use cartwright::domain::partition::{Partition, Partitions};
use cartwright::store::{LeaseView, Membership, Store, StoreError, Table, Wait, WriteSet};
use serde_json::{json, Value};

use crate::helpers::*;

const WHY: &str = "partitions are shared among the servers of a PostgreSQL store; the embedded store has one";

/// A lease renewed (and the share balanced) every 300 ms; a server is live while its
/// heartbeat is younger than that.
const LEASE_MS: u64 = 900;

fn server(settings: &Settings, node_id: &str) -> ClusterSettings {
    let mut cluster = settings.cluster.clone();
    cluster.node_id = node_id.into();
    cluster.advertise_url = format!("http://127.0.0.1:9/{node_id}");
    cluster.lease_ms = LEASE_MS;
    cluster
}

/// A write in `partition`: an index entry of a customer whose id falls in it.
fn write_in(store: &Store, partition: u16) -> Result<(), StoreError> {
    let customer = loop {
        let id = uuid::Uuid::new_v4();
        if Partitions::DEFAULT.of(&id) == Partition(partition) {
            break id;
        }
    };
    let mut key = customer.as_bytes().to_vec();
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    futures::executor::block_on(store.commit(WriteSet::new().put_key(Table::OrdersByCustomer, key)))
}

fn partitions(store: &Store) -> Vec<u16> {
    store.owned().partitions().iter().map(|p| p.0).collect()
}

/// Each partition's (owner, epoch), in partition order.
fn leases(store: &Store) -> Vec<(String, i64)> {
    let live: Vec<LeaseView> = store.leases().expect("the lease table reads");
    assert!(live.iter().all(|l| l.live), "every partition is held: {live:?}");
    live.into_iter().map(|l| (l.owner, l.epoch)).collect()
}

/// Waits (at most `within`) for `done`; how long it took.
fn until(what: &str, within: Duration, done: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

fn refused(outcome: Result<(), StoreError>) -> bool {
    matches!(outcome, Err(StoreError::Fenced(_)))
}

#[test]
fn servers_claiming_a_fair_share_split_the_partitions_and_rebalance_as_they_come_and_go() {
    if postgres_only("servers_claiming_a_fair_share_split_the_partitions_and_rebalance_as_they_come_and_go", WHY) {
        return;
    }
    let dir = store_dir();
    let settings = test_settings(&dir);
    let storage = &settings.storage;
    let (ca, cb, cc) = (server(&settings, "a"), server(&settings, "b"), server(&settings, "c"));
    let a_joins = Membership::join(storage, &ca).expect("a joins");
    let b_joins = Membership::join(storage, &cb).expect("b joins");

    // Two live servers: each takes half, the first the lowest, each partition at epoch 1.
    let a = Store::open_when_free(storage, &ca, Wait::Forever, &a_joins).expect("a opens").expect("it waited");
    let b = Store::open_when_free(storage, &cb, Wait::Forever, &b_joins).expect("b opens").expect("it waited");
    assert_eq!(partitions(&a), (0..8).collect::<Vec<_>>());
    assert_eq!(partitions(&b), (8..16).collect::<Vec<_>>());
    let held = leases(&a);
    assert!(held[..8].iter().all(|l| *l == ("a".into(), 1)) && held[8..].iter().all(|l| *l == ("b".into(), 1)));
    // Each writes in its own partitions only; B, without the shared partition, stages the
    // logs of its writes (none here) and is fenced like A.
    assert_eq!(write_in(&a, 3).map_err(|e| e.to_string()), Ok(()));
    assert!(refused(write_in(&a, 9)), "not A's partition");
    assert_eq!(write_in(&b, 9).map_err(|e| e.to_string()), Ok(()));
    assert!(refused(write_in(&b, 0)), "not B's partition");

    // B stops cleanly: A takes its partitions at their next epoch, and writes in them.
    b.close().expect("b closes");
    b_joins.leave().expect("b leaves");
    let took = until("A takes B's partitions", Duration::from_secs(10), || a.owned().is_every());
    let held = leases(&a);
    assert!(held[..8].iter().all(|l| *l == ("a".into(), 1)), "{held:?}");
    assert!(held[8..].iter().all(|l| *l == ("a".into(), 2)), "each partition has its own epoch: {held:?}");
    assert_eq!(write_in(&a, 9).map_err(|e| e.to_string()), Ok(()), "fenced at the partition's new epoch");
    assert_eq!(write_in(&a, 3).map_err(|e| e.to_string()), Ok(()), "and the others at theirs");

    // C joins: A gives up its surplus (the highest partitions, dropped at once, released a
    // renewal later) and C takes it, each partition above the epoch it had.
    let c_joins = Membership::join(storage, &cc).expect("c joins");
    let started = Instant::now();
    let c = Store::open_when_free(storage, &cc, Wait::Forever, &c_joins).expect("c opens").expect("it waited");
    let rebalanced = started.elapsed();
    assert_eq!(partitions(&c), (8..16).collect::<Vec<_>>());
    until("A's share shrinks", Duration::from_secs(5), || partitions(&a) == (0..8).collect::<Vec<_>>());
    let held = leases(&c);
    assert!(held[..8].iter().all(|l| *l == ("a".into(), 1)), "{held:?}");
    assert!(held[8..].iter().all(|l| *l == ("c".into(), 3)), "{held:?}");
    assert!(refused(write_in(&a, 9)), "given up: A writes there no more");
    assert_eq!(write_in(&c, 9).map_err(|e| e.to_string()), Ok(()));
    println!("a server stopped: its partitions taken in {took:?}; one joined: half given to it in {rebalanced:?}");

    c.close().expect("c closes");
    c_joins.leave().expect("c leaves");
    a.close().expect("a closes");
    a_joins.leave().expect("a leaves");
}

/// Two servers over one schema, each claiming a fair share, `b` started second: once each
/// serves half (`a` the lower, with partition 0), both.
async fn two_servers_sharing() -> (TestApp, TestApp) {
    let share = |s: &mut Settings, id: &str| {
        s.cluster.node_id = id.into();
        s.cluster.lease_ms = LEASE_MS;
    };
    let a = spawn_app_with(|s| share(s, "a")).await;
    let schema = postgres_schema(a.data_dir());
    let b = spawn_app_with(|s| {
        share(s, "b");
        s.storage.postgres.schema = schema;
    })
    .await;
    let started = Instant::now();
    loop {
        let (_, view) = a.get("/admin/v1/cluster", Some(ADMIN)).await;
        let owners: Vec<&str> =
            view["leases"].as_array().into_iter().flatten().filter_map(|l| l["owner"].as_str()).collect();
        let b_serves = b.get("/healthz", None).await.1["role"] != "follower";
        if owners.len() == 16
            && owners[..8].iter().all(|o| *o == "a")
            && owners[8..].iter().all(|o| *o == "b")
            && b_serves
        {
            return (a, b);
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the servers did not split the partitions: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn partition_of(id: &str) -> u16 {
    Partitions::DEFAULT.of(&id.parse().unwrap()).0
}

/// A server checks out a customer of its half against stock the other server owns: the
/// reservation, its refusal when short, the release at a cancel and the deduction at a
/// shipment are stock calls to the owner, answered as its actor answered; the payment and
/// delivery webhooks sent to the other server reach the order's owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_runs_on_its_owner_with_stock_calls_to_the_other_server_and_webhooks_forwarded_to_it() {
    if postgres_only(
        "an_order_runs_on_its_owner_with_stock_calls_to_the_other_server_and_webhooks_forwarded_to_it",
        WHY,
    ) {
        return;
    }
    let (a, b) = two_servers_sharing().await;
    // Created on partition 0's owner, in a partition of its own.
    let product = b.product("5.00", 3).await;
    assert!(partition_of(&product) < 8, "the stock lies in a's half: {product}");
    let mut customer = b.verified_customer().await;
    while partition_of(&customer.id) < 8 {
        customer = b.verified_customer().await;
    }
    let calls = || async {
        let text = reqwest::get(format!("{}/metrics", b.url)).await.unwrap().text().await.unwrap();
        let line =
            text.lines().find(|l| l.starts_with("cartwright_cluster_calls_total{kind=\"stock\",outcome=\"answered\"}"));
        line.and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).unwrap_or(0.0)
    };
    let before = calls().await;
    // Servers call each other with the cluster's signature; to anyone else there is no such route.
    let forged = json!({ "product_id": product, "variant_id": null, "command": { "kind": "restock", "quantity": 5 }, "by": "x" });
    let (status, body) = a.post("/internal/v1/stock", None, forged).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("NOT_FOUND")), "{body}");

    // More than there is: refused by the owner, answered here as if local.
    let (status, body) = b.add_to_cart(&customer.token, json!({ "product_id": product, "quantity": 3 })).await;
    assert!(status == 200 || status == 201, "{body}");
    b.restock(&product, json!({ "quantity": 1 })).await;
    a.post(
        &format!("/admin/v1/inventory/{product}/reservations"),
        Some(ADMIN),
        json!({ "owner_id": uuid::Uuid::now_v7(), "quantity": 2 }),
    )
    .await;
    let (status, body) = b.place_order(&customer.token, "tok_visa").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("INSUFFICIENT_STOCK")), "{body}");
    assert_eq!(body["error"]["details"]["items"][0]["available"], 2, "{body}");
    assert_eq!(a.stock_of(&product).await, (4, 2), "nothing reserved for the refused checkout");

    // Enough: reserved there, the order placed and its payment authorized here.
    let (status, body) = b
        .patch(
            &format!("/v1/cart/items/{}", b.cart(&customer.token).await["items"][0]["line_id"].as_str().unwrap()),
            Some(&customer.token),
            json!({ "quantity": 2 }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, order) = b.place_order(&customer.token, "tok_visa").await;
    assert_eq!(status, 201, "{order}");
    assert_eq!((order["status"].as_str(), order["payment"]["status"].as_str()), (Some("PENDING"), Some("AUTHORIZED")));
    assert_eq!(a.stock_of(&product).await, (4, 4), "reserved by the owner's actor");
    assert!(calls().await >= before + 2.0, "the refused and the granted reservation were calls");

    // Cancelled here: released there.
    let order_id = order["order_id"].as_str().unwrap();
    let (status, body) = b.cancel_order(&customer.token, order_id).await;
    assert_eq!(status, 200, "{body}");
    a.eventually("the release reached the owner", || async { a.stock_of(&product).await == (4, 2) }).await;

    // Another order of b's, whose payment and delivery webhooks reach a: each is answered
    // by the order's owner (the order and the event written together there), and the
    // shipment deducts the stock a owns.
    let (status, body) = b.add_to_cart(&customer.token, json!({ "product_id": product, "quantity": 2 })).await;
    assert!(status == 200 || status == 201, "{body}");
    let (status, order) = b.place_order(&customer.token, "tok_visa").await;
    assert_eq!(status, 201, "{order}");
    let (order_id, authorization) =
        (order["order_id"].as_str().unwrap(), order["payment"]["authorization_id"].as_str().unwrap());
    let total = order["total"].as_str().unwrap();
    // A capture of the wrong amount is kept for review, bound to the order, by its owner;
    // an operator's replay with the right amount, asked of a, is answered there too.
    let (status, body) = a.capture("evt_shared_1", authorization, "1.00").await;
    assert_eq!((status, body["status"].as_str()), (202, Some("needs_review")), "{body}");
    let replay = json!({ "payload": { "authorization_id": authorization, "amount": total } });
    let (status, body) = a.post("/admin/v1/webhooks/payment/evt_shared_1/replay", Some(ADMIN), replay).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("processed")), "{body}");
    assert_eq!(b.get(&format!("/v1/orders/{order_id}"), Some(&customer.token)).await.1["status"], "CONFIRMED");
    let (status, body) = a.capture("evt_shared_1", authorization, total).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("duplicate")), "applied once: {body}");
    let (status, shipped) = a.ship(ADMIN, order_id, "TRK-SHARED-1").await;
    assert_eq!((status, shipped["status"].as_str()), (200, Some("SHIPPED")), "{shipped}");
    assert_eq!(a.stock_of(&product).await, (2, 2), "deducted by the owner: the admin's hold is left");
    let (status, body) = a.deliver("evt_shared_2", "TRK-SHARED-1").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("processed")), "{body}");
    assert_eq!(b.get(&format!("/v1/orders/{order_id}"), Some(&customer.token)).await.1["status"], "DELIVERED");
    let (_, listed) = a.get("/admin/v1/webhooks", Some(ADMIN)).await;
    let processed: Vec<&Value> =
        listed["webhooks"].as_array().unwrap().iter().filter(|w| w["order_id"] == order_id).collect();
    assert_eq!(processed.len(), 2, "both events recorded, bound to the order: {listed}");
    assert!(processed.iter().all(|w| w["status"] == "processed"), "{listed}");
}

/// A bulk resume, run by partition 0's owner, reaches a stuck saga the other server owns by
/// a saga call: resumed and completed there, counted and audited here.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bulk_resume_reaches_a_saga_the_other_server_owns() {
    if postgres_only("a_bulk_resume_reaches_a_saga_the_other_server_owns", WHY) {
        return;
    }
    let (a, b) = two_servers_sharing().await;
    let product = b.product("10.00", 10).await;
    let mut customer = b.verified_customer().await;
    while partition_of(&customer.id) < 8 {
        customer = b.verified_customer().await;
    }
    b.add_to_cart(&customer.token, json!({ "product_id": product, "quantity": 1 })).await;
    let (status, order) = b.place_order(&customer.token, "tok_refund_flaky").await;
    assert_eq!(status, 201, "{order}");
    let order_id = order["order_id"].as_str().unwrap();
    let (status, cancelled) = b.cancel_order(&customer.token, order_id).await;
    assert_eq!((status, cancelled["refund"]["status"].as_str()), (200, Some("PENDING_MANUAL")), "{cancelled}");
    let (_, list) = a.get(&format!("/admin/v1/sagas?type=cancel_order&order_id={order_id}"), Some(ADMIN)).await;
    let saga_id = list["sagas"][0]["saga_id"].as_str().expect("the order's cancel saga").to_string();
    assert!(partition_of(&saga_id) >= 8, "the saga is b's");
    b.saga_reaches(&saga_id, "STUCK").await;

    // The triage, answered by a, counts b's sagas too: b's census is asked for and added.
    let (status, triage) = a.get("/admin/v1/triage", Some(ADMIN)).await;
    assert_eq!(status, 200, "{triage}");
    let stuck: Vec<&Value> = triage["groups"].as_array().unwrap().iter().filter(|g| g["state"] == "STUCK").collect();
    assert_eq!(stuck.len(), 1, "{triage}");
    assert_eq!((stuck[0]["count"].as_u64(), stuck[0]["oldest_saga_id"].as_str()), (Some(1), Some(saga_id.as_str())));
    assert_eq!(triage["counts"]["cancel_order"]["STUCK"], 1, "{triage}");
    assert_eq!(triage["counts"]["place_order"]["COMPLETED"], 1, "{triage}");
    let servers: Vec<(&str, Vec<u64>)> = triage["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["node_id"].as_str().unwrap(),
                s["partitions"].as_array().unwrap().iter().filter_map(Value::as_u64).collect(),
            )
        })
        .collect();
    assert_eq!(servers, vec![("a", (0..8).collect()), ("b", (8..16).collect())], "{triage}");
    assert_eq!(triage["uncounted_partitions"], json!([]), "{triage}");
    assert_eq!(triage["unanswered_servers"], json!([]), "{triage}");
    let console = crate::console::Browser::signed_in(&b, ADMIN).await;
    let page = console.get("/console/triage").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Counted by 2 servers"), "{}", page.body);
    assert!(page.body.contains(&saga_id), "the STUCK group's oldest saga links to b's saga: {}", page.body);

    let filter = json!({ "state": "STUCK", "type": "cancel_order", "step": "refund_payment" });
    let (status, started) = a.post("/admin/v1/sagas/bulk-resume", Some(ADMIN), filter).await;
    assert_eq!((status, started["matched"].as_u64()), (202, Some(1)), "{started}");
    let action = a.bulk_finished(started["bulk_action_id"].as_str().unwrap()).await;
    assert_eq!(
        (action["state"].as_str(), action["done"].as_u64(), action["failed"].as_u64()),
        (Some("done"), Some(1), Some(0)),
        "{action}"
    );
    a.saga_reaches(&saga_id, "COMPLETED").await;
    let (_, order) = b.get(&format!("/v1/orders/{order_id}"), Some(&customer.token)).await;
    assert_eq!(order["refund"]["status"], "VOIDED", "{order}");
    let resumed = a.audit("saga", &saga_id).await;
    let row = resumed.iter().find(|r| r["action"] == "saga.resume").expect("the bulk's audit row");
    assert_eq!((row["before"]["state"].as_str(), row["after"]["result"].as_str()), (Some("STUCK"), Some("done")));
    let text = reqwest::get(format!("{}/metrics", a.url)).await.unwrap().text().await.unwrap();
    assert!(text.contains("cartwright_cluster_calls_total{kind=\"saga\",outcome=\"answered\"}"), "{text}");
}
