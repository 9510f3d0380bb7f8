//! Crash consistency: concurrent customers place and cancel orders against a flaky gateway
//! while the real binary is SIGKILLed at random instants, six times. After the last restart
//! the sagas settle and every invariant is checked from the API (and the gateway's ledger).
//! Seeded: set CRASH_SEED to replay a run; the seed is printed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::fake_gateway::FakeGateway;
use crate::helpers::raw_call as call;
use crate::helpers::*;

const STOCK: u64 = 150;
const PRODUCTS: usize = 4;
const CUSTOMERS: usize = 10;
const KILLS: usize = 6;

pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An operator's read, retried as any client retries while the shop does not answer (a
/// cluster's takeover after its last restart may still be settling: 503, `Retry-After`).
async fn admin_get(client: &reqwest::Client, url: &str, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, v) = call(client, url, reqwest::Method::GET, path, Some(ADMIN), None, None).await.unwrap();
        if unanswered(s) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(s, 200, "{path}: {v}");
        return v;
    }
}

/// Whether a status says the shop did not answer (the server, or the leader a follower
/// forwards to, was away): retried with the same Idempotency-Key, as a client should.
fn unanswered(status: u16) -> bool {
    status == 502 || status == 503
}

/// One customer's loop on the servers of `urls` in turn: fill the cart, check out
/// (retrying with the same Idempotency-Key when the server died mid-request), sometimes
/// cancel.
async fn shopper(
    client: reqwest::Client,
    urls: Arc<RwLock<Vec<String>>>,
    token: String,
    products: Arc<Vec<String>>,
    mut rng: Rng,
    stop: Arc<AtomicBool>,
) {
    let mut pending_place: Option<String> = None;
    let mut pending_cancel: Option<(String, String)> = None;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let u = {
            let urls = urls.read().unwrap();
            urls[n % urls.len()].clone()
        };
        if let Some((order, key)) = pending_cancel.clone() {
            let r = call(
                &client,
                &u,
                reqwest::Method::POST,
                &format!("/v1/orders/{order}/cancel"),
                Some(&token),
                Some(&key),
                None,
            )
            .await;
            if r.is_ok_and(|(status, _)| !unanswered(status)) {
                pending_cancel = None;
            }
            continue;
        }
        if pending_place.is_none() {
            let p = &products[rng.below(products.len() as u64) as usize];
            let r = call(
                &client,
                &u,
                reqwest::Method::POST,
                "/v1/cart/items",
                Some(&token),
                None,
                Some(json!({ "product_id": p, "quantity": 1 + rng.below(2) })),
            )
            .await;
            if r.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        }
        let key = pending_place.take().unwrap_or_else(|| format!("{token}-{n}"));
        let card = if rng.below(5) == 0 { "tok_decline" } else { "tok_ok" };
        let body = json!({ "shipping_address": address("US"), "payment": { "token": card } });
        match call(&client, &u, reqwest::Method::POST, "/v1/orders", Some(&token), Some(&key), Some(body)).await {
            Ok((status, _)) if unanswered(status) => {
                pending_place = Some(key);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => {
                pending_place = Some(key);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok((201, order)) if rng.below(3) == 0 => {
                pending_cancel = Some((order["order_id"].as_str().unwrap_or_default().to_string(), format!("c-{key}")));
            }
            Ok(_) => {}
        }
    }
}

/// The seed of a run: `CRASH_SEED`, or the clock's (printed, to replay the run).
pub(crate) fn seed() -> u64 {
    let seed: u64 = std::env::var("CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    println!("crash test seed: CRASH_SEED={seed}");
    seed
}

/// The servers' settings for a run against `gw`, a flaky payment gateway.
pub(crate) fn server_env(gw: &FakeGateway) -> Vec<(&'static str, String)> {
    vec![
        ("CARTWRIGHT__PAYMENT__GATEWAY", "http".into()),
        ("CARTWRIGHT__PAYMENT__HTTP__BASE_URL", gw.url.clone()),
        ("CARTWRIGHT__PAYMENT__HTTP__TIMEOUT_MS", "500".into()),
        ("CARTWRIGHT__CHECKOUT__SYNC_WAIT_MS", "500".into()),
        ("CARTWRIGHT__NOTIFICATIONS__INITIAL_BACKOFF_MS", "20".into()),
        ("RUST_LOG", "warn".into()),
    ]
}

/// `env` as [`ServerProcess::start_with`] takes it, plus `extra`.
pub(crate) fn with<'a>(
    env: &'a [(&'static str, String)],
    extra: &[(&'static str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).chain(extra.iter().copied()).collect()
}

/// Fast retries so the run settles quickly, a catalogue of [`PRODUCTS`] with [`STOCK`]
/// each, [`CUSTOMERS`] verified and signed in: (product ids, session tokens).
pub(crate) async fn set_up(client: &reqwest::Client, u: &str) -> (Vec<String>, Vec<String>) {
    for (saga, step) in [
        ("place_order", "authorize_payment"),
        ("place_order", "void_authorization"),
        ("cancel_order", "refund_payment"),
    ] {
        let (s, _) = call(
            client,
            u,
            reqwest::Method::PUT,
            &format!("/admin/v1/retry-policies/{saga}/{step}"),
            Some(ADMIN),
            None,
            Some(json!({ "max_attempts": 6, "initial_backoff_ms": 20, "multiplier": 2.0, "max_backoff_ms": 200 })),
        )
        .await
        .unwrap();
        assert_eq!(s, 200);
    }
    let (_, cat) = call(
        client,
        u,
        reqwest::Method::POST,
        "/admin/v1/categories",
        Some(ADMIN),
        None,
        Some(json!({ "name": "Crash" })),
    )
    .await
    .unwrap();
    let mut products = Vec::new();
    for i in 0..PRODUCTS {
        let (s, p) = call(
            client,
            u,
            reqwest::Method::POST,
            "/admin/v1/products",
            Some(ADMIN),
            None,
            Some(json!({
                "name": format!("Item {i}"), "price": "7.50", "category_id": cat["category_id"], "initial_stock": STOCK
            })),
        )
        .await
        .unwrap();
        assert_eq!(s, 201, "{p}");
        products.push(p["product_id"].as_str().unwrap().to_string());
    }
    let mut tokens = Vec::new();
    for i in 0..CUSTOMERS {
        let email = format!("crash{i}@example.com");
        let (s, c) = call(
            client,
            u,
            reqwest::Method::POST,
            "/v1/customers",
            None,
            None,
            Some(json!({ "email": email, "password": PASSWORD })),
        )
        .await
        .unwrap();
        assert_eq!(s, 201, "{c}");
        let notes = admin_get(client, u, "/admin/v1/notifications?kind=email_verification&limit=1000").await;
        let token = notes["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["payload"]["customer_id"] == c["customer_id"])
            .unwrap()["payload"]["verification_token"]
            .clone();
        call(
            client,
            u,
            reqwest::Method::POST,
            "/v1/customers/verify-email",
            None,
            None,
            Some(json!({ "token": token })),
        )
        .await
        .unwrap();
        let (_, session) = call(
            client,
            u,
            reqwest::Method::POST,
            "/v1/sessions",
            None,
            None,
            Some(json!({ "email": email, "password": PASSWORD })),
        )
        .await
        .unwrap();
        tokens.push(session["token"].as_str().unwrap().to_string());
    }

    (products, tokens)
}

/// Shoppers at work on the servers of `urls` until [`Load::finish`].
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    shoppers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub(crate) fn start(
        client: &reqwest::Client,
        urls: &Arc<RwLock<Vec<String>>>,
        tokens: &[String],
        products: &[String],
        rng: &mut Rng,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let products = Arc::new(products.to_vec());
        let shoppers = tokens
            .iter()
            .map(|t| {
                let rng = Rng(rng.next() | 1);
                tokio::spawn(shopper(client.clone(), urls.clone(), t.clone(), products.clone(), rng, stop.clone()))
            })
            .collect();
        Load { stop, shoppers }
    }

    pub(crate) async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        for s in self.shoppers {
            s.await.unwrap();
        }
    }
}

/// Once the sagas settle, the books balance, read through `u`: stock reserved is what
/// live orders hold and on_hand never moved, one authorization per order (voided once if
/// cancelled), no orphan authorization, no cart emptied without an order, one OrderPlaced
/// per order, no event sequence number twice.
pub(crate) async fn check_books(client: &reqwest::Client, u: &str, gw: &FakeGateway, products: &[String]) {
    // Settle: no saga is still running, retrying or compensating.
    let deadline = Instant::now() + Duration::from_secs(60);
    let sagas = loop {
        let all = admin_get(client, u, "/admin/v1/sagas?limit=500").await["sagas"].as_array().unwrap().clone();
        let mut everything = all.clone();
        let mut cursor = admin_get(client, u, "/admin/v1/sagas?limit=500").await["next_cursor"].clone();
        while let Some(c) = cursor.as_str().map(str::to_string) {
            let page = admin_get(client, u, &format!("/admin/v1/sagas?limit=500&cursor={c}")).await;
            everything.extend(page["sagas"].as_array().unwrap().iter().cloned());
            cursor = page["next_cursor"].clone();
        }
        if everything
            .iter()
            .all(|s| ["COMPLETED", "FAILED", "ABORTED", "STUCK"].contains(&s["state"].as_str().unwrap()))
        {
            break everything;
        }
        assert!(Instant::now() < deadline, "sagas did not settle");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let count = |state: &str| sagas.iter().filter(|s| s["state"] == state).count();
    println!("sagas: {} completed, {} failed, {} stuck", count("COMPLETED"), count("FAILED"), count("STUCK"));
    assert!(count("COMPLETED") > 0, "the load placed orders");
    for s in sagas.iter().filter(|s| s["state"] == "STUCK") {
        let current = s["current_step"].as_str().unwrap();
        let step = s["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == current || x["compensation"]["name"] == current)
            .unwrap();
        let err = if step["name"] == current { &step["last_error"] } else { &step["compensation"]["last_error"] };
        assert!(err.is_string(), "a STUCK saga says why: {s}");
    }

    let orders = admin_get(client, u, "/admin/v1/orders?limit=1000").await["orders"].as_array().unwrap().clone();
    // The gateway's view, copied out so no lock is held across an await.
    let (authorizations, voids, refunds) = {
        let l = gw.ledger.lock().unwrap();
        (l.authorizations.clone(), l.voids.clone(), l.refunds.clone())
    };

    // Stock: reserved is exactly what live orders hold; on_hand never moved.
    for p in products.iter() {
        let stock = admin_get(client, u, &format!("/admin/v1/inventory/{p}")).await;
        let held: u64 = orders
            .iter()
            .filter(|o| o["status"] == "PENDING" || o["status"] == "CONFIRMED")
            .flat_map(|o| o["items"].as_array().unwrap().clone())
            .filter(|i| i["product_id"] == p.as_str())
            .map(|i| i["quantity"].as_u64().unwrap())
            .sum();
        assert_eq!(stock["items"][0]["on_hand"], STOCK, "{stock}");
        assert_eq!(stock["items"][0]["reserved"].as_u64().unwrap(), held, "product {p}: {stock}");
    }

    // Payments: every live order holds exactly one authorization, never voided; every
    // cancelled order's was voided once, or is PENDING_MANUAL for an operator.
    let by_auth: HashMap<&str, &Value> =
        orders.iter().map(|o| (o["payment"]["authorization_id"].as_str().unwrap(), o)).collect();
    for o in &orders {
        let auth = o["payment"]["authorization_id"].as_str().unwrap();
        assert!(authorizations.contains_key(auth), "{o}");
        let saga = o["saga_id"].as_str().unwrap();
        let auths_of_saga = authorizations.keys().filter(|a| a.contains(&saga.replace(':', "_"))).count();
        assert_eq!(auths_of_saga, 1, "one authorization per order: {o}");
        let settled = voids.get(auth).map_or(0, Vec::len) + refunds.get(auth).map_or(0, Vec::len);
        match o["status"].as_str().unwrap() {
            "PENDING" | "CONFIRMED" => assert_eq!(settled, 0, "a live order's payment was voided: {o}"),
            "CANCELLED" if o["refund"]["status"] == "PENDING_MANUAL" => assert!(settled <= 1, "{o}"),
            "CANCELLED" => assert_eq!(settled, 1, "voided exactly once: {o}"),
            other => panic!("unexpected status {other}"),
        }
    }
    // Authorizations without an order belong to failed checkouts: voided by the compensation.
    let saga_state: HashMap<String, &str> =
        sagas.iter().map(|s| (s["saga_id"].as_str().unwrap().to_string(), s["state"].as_str().unwrap())).collect();
    for auth in authorizations.keys().filter(|a| !by_auth.contains_key(a.as_str())) {
        let saga = auth.trim_start_matches("fake_auth_").trim_end_matches("_authorize_payment").to_string();
        let state = saga_state.get(&saga).copied().unwrap_or("UNKNOWN");
        let voided = voids.get(auth.as_str()).map_or(0, Vec::len);
        if !(state == "STUCK" || (voided == 1 && (state == "FAILED" || state == "ABORTED"))) {
            let record = admin_get(client, u, &format!("/admin/v1/sagas/{saga}")).await;
            panic!("orphan authorization {auth}: saga {state}, voided {voided}: {record:#}");
        }
    }

    // No cart was emptied without an order, and the event log has no repeated seq.
    let order_sagas: HashSet<&str> = orders.iter().map(|o| o["saga_id"].as_str().unwrap()).collect();
    let mut seqs = HashSet::new();
    let mut after = 0;
    loop {
        let page = admin_get(client, u, &format!("/admin/v1/events?after={after}&limit=1000")).await;
        let events = page["events"].as_array().unwrap();
        if events.is_empty() {
            break;
        }
        for e in events {
            assert!(seqs.insert(e["seq"].as_u64().unwrap()), "repeated seq {e}");
            if e["type"] == "CartCleared" {
                assert!(
                    order_sagas.contains(e["data"]["saga_id"].as_str().unwrap()),
                    "cart emptied without an order: {e}"
                );
            }
        }
        after = events.last().unwrap()["seq"].as_u64().unwrap();
    }
}

#[tokio::test]
async fn nothing_is_lost_or_applied_twice_across_repeated_kill_9() {
    let mut rng = Rng(seed());
    let gw = FakeGateway::start(15, rng.0).await;
    let dir = store_dir();
    let env = server_env(&gw);
    let client = reqwest::Client::new();
    let mut server = ServerProcess::start_with(dir.path(), &with(&env, &[]));
    let (products, tokens) = set_up(&client, &server.url).await;

    // Load, with kill -9 at random instants.
    let urls = Arc::new(RwLock::new(vec![server.url.clone()]));
    let load = Load::start(&client, &urls, &tokens, &products, &mut rng);
    for round in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(300 + rng.below(700))).await;
        server.kill9();
        println!("kill -9 #{}", round + 1);
        server = ServerProcess::start_with(dir.path(), &with(&env, &[]));
        *urls.write().unwrap() = vec![server.url.clone()];
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    load.finish().await;
    check_books(&client, &server.url, &gw, &products).await;
    server.kill9();
}
