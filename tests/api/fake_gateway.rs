//! A fake payment gateway speaking the HTTP contract's protocol, started by a test on port 0. Its
//! behaviour follows the card token; it records every call by idempotency key, so tests can
//! check what reached the gateway and how often.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use warp::Filter;

#[derive(Default)]
pub struct Ledger {
    /// (path kind, idempotency key) -> calls
    pub calls: HashMap<(String, String), u32>,
    /// authorization id -> (token, amount)
    pub authorizations: HashMap<String, (String, String)>,
    /// authorization id -> idempotency keys that voided it successfully
    pub voids: HashMap<String, Vec<String>>,
    /// authorization id -> idempotency keys that refunded it successfully
    pub refunds: HashMap<String, Vec<String>>,
    /// Chance in 0..=100 that any call fails with 503 (crash tests).
    pub flaky_percent: u32,
    pub rng: u64,
}

impl Ledger {
    fn roll(&mut self) -> bool {
        // xorshift: seeded, reproducible.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % 100) < u64::from(self.flaky_percent)
    }

    pub fn calls(&self, kind: &str, key: &str) -> u32 {
        self.calls.get(&(kind.to_string(), key.to_string())).copied().unwrap_or(0)
    }
}

pub struct FakeGateway {
    pub url: String,
    pub ledger: Arc<Mutex<Ledger>>,
}

fn reply(status: u16, body: Value) -> warp::reply::Response {
    use warp::Reply;
    warp::reply::with_status(warp::reply::json(&body), warp::http::StatusCode::from_u16(status).unwrap())
        .into_response()
}

async fn handle(ledger: Arc<Mutex<Ledger>>, path: String, key: String, body: Value) -> warp::reply::Response {
    let kind = if path == "/authorizations" {
        "authorize"
    } else if path.ends_with("/void") {
        "void"
    } else if path == "/refunds" {
        "refund"
    } else {
        return reply(404, json!({}));
    };
    let (n, flaky) = {
        let mut l = ledger.lock().unwrap();
        let n = {
            let c = l.calls.entry((kind.to_string(), key.clone())).or_default();
            *c += 1;
            *c
        };
        (n, l.roll())
    };
    if flaky {
        return reply(503, json!({ "reason": "flaky" }));
    }
    match kind {
        "authorize" => {
            let token = body["token"].as_str().unwrap_or_default().to_string();
            match token.as_str() {
                "tok_decline" => return reply(402, json!({ "reason": "insufficient_funds" })),
                "tok_503" => return reply(503, json!({})),
                "tok_503_twice" if n <= 2 => return reply(503, json!({})),
                "tok_hang_once" if n == 1 => tokio::time::sleep(Duration::from_millis(1500)).await,
                "tok_slow" => tokio::time::sleep(Duration::from_millis(1200)).await,
                "tok_bad_request" => return reply(400, json!({ "reason": "malformed" })),
                _ => {}
            }
            // Idempotent: the same key always names the same authorization.
            let id = format!("fake_auth_{}", key.replace(':', "_"));
            // Its first two calls (a checkout's two attempts) are applied, and answered late.
            let applied_late = token == "tok_applied_then_hang" && n <= 2;
            ledger
                .lock()
                .unwrap()
                .authorizations
                .insert(id.clone(), (token, body["amount"].as_str().unwrap_or_default().into()));
            if applied_late {
                // Applied, but the answer never arrives in time (the caller times out).
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
            reply(201, json!({ "authorization_id": id }))
        }
        "void" => {
            let id = path.trim_start_matches("/authorizations/").trim_end_matches("/void").to_string();
            let mut l = ledger.lock().unwrap();
            let keys = l.voids.entry(id).or_default();
            if !keys.contains(&key) {
                keys.push(key);
            }
            reply(200, json!({}))
        }
        _ => {
            let id = body["authorization_id"].as_str().unwrap_or_default().to_string();
            let mut l = ledger.lock().unwrap();
            let keys = l.refunds.entry(id).or_default();
            if !keys.contains(&key) {
                keys.push(key.clone());
            }
            reply(201, json!({ "refund_id": format!("fake_refund_{key}") }))
        }
    }
}

impl FakeGateway {
    pub async fn start(flaky_percent: u32, seed: u64) -> FakeGateway {
        let ledger = Arc::new(Mutex::new(Ledger { flaky_percent, rng: seed.max(1), ..Ledger::default() }));
        let l = ledger.clone();
        let route = warp::post()
            .and(warp::path::full())
            .and(warp::header::optional::<String>("idempotency-key"))
            .and(warp::body::json())
            .then(move |path: warp::path::FullPath, key: Option<String>, body: Value| {
                handle(l.clone(), path.as_str().to_string(), key.unwrap_or_default(), body)
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(route).incoming(listener).run());
        FakeGateway { url: format!("http://{addr}"), ledger }
    }
}
