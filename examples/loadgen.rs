//! Load generator: N concurrent keep-alive HTTP clients against a Cartwright server for a
//! fixed time; latencies in an HdrHistogram; prints throughput, p50/p90/p99/p99.9/max and
//! the server's RSS, and writes the same as JSON.
//!
//! By default it starts the release server itself on a fresh temp directory (durable mode):
//!
//! ```sh
//! cargo build --release --bin cartwright --example loadgen
//! cargo run --release --example loadgen -- --scenario add-to-cart --clients 64 --duration-secs 20
//! cargo run --release --example loadgen -- --scenario place-order --clients 64 --duration-secs 20
//! cargo run --release --example loadgen -- --scenario recovery --sagas 10000
//! ```
//!
//! Scenarios:
//! - `add-to-cart`: `POST /v1/cart/items` over `--customers` carts and `--products` products.
//! - `place-order`: each request fills nothing; every virtual customer's cart is refilled
//!   (one add) and checked out with the simulated gateway; measures `POST /v1/orders` (201s).
//! - `cancel-order`: place an order, then measure its `POST /v1/orders/{id}/cancel`.
//! - `recovery`: park `--sagas` checkouts mid-flight (RETRYING), `kill -9` the server,
//!   restart it and measure how long it takes until it listens again with all resumed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Scenario {
    AddToCart,
    PlaceOrder,
    CancelOrder,
    Recovery,
}

#[derive(Parser, Debug, Clone)]
#[command(about = "Cartwright load generator")]
struct Opts {
    #[arg(long, value_enum, default_value = "add-to-cart")]
    scenario: Scenario,
    #[arg(long, default_value_t = 64)]
    clients: usize,
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Distinct customers (and so carts) the run touches.
    #[arg(long, default_value_t = 2000)]
    customers: usize,
    #[arg(long, default_value_t = 200)]
    products: usize,
    /// In-flight sagas for the recovery scenario.
    #[arg(long, default_value_t = 10_000)]
    sagas: usize,
    /// An already running server; without it the release server is started here.
    #[arg(long)]
    url: Option<String>,
    /// The server's pid (for RSS) when `--url` is given.
    #[arg(long)]
    server_pid: Option<u32>,
    #[arg(long, default_value = "target/release/cartwright")]
    server_bin: String,
    /// Passivation timeout given to a spawned server.
    #[arg(long, default_value_t = 10)]
    idle_secs: u64,
    #[arg(long, default_value = "dev-admin-token-change-me")]
    admin_token: String,
    #[arg(long, default_value = "loadgen.json")]
    out: String,
}

const PASSWORD: &str = "loadgen-password-1";

struct Server {
    child: Option<Child>,
    url: String,
    pid: Option<u32>,
    dir: Option<tempfile::TempDir>,
}

fn spawn_server(opts: &Opts, dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(&opts.server_bin)
        .env("CARTWRIGHT__SERVER__ADDR", "127.0.0.1:0")
        .env("CARTWRIGHT__STORAGE__PATH", dir)
        .env("CARTWRIGHT__AUTH__ADMIN_TOKEN", &opts.admin_token)
        // Cheap password hashing so that setting up 100k customers takes seconds, not hours.
        .env("CARTWRIGHT__AUTH__ARGON2_MEMORY_KIB", "1024")
        .env("CARTWRIGHT__AUTH__ARGON2_ITERATIONS", "1")
        .env("CARTWRIGHT__ACTORS__IDLE_TIMEOUT_SECS", opts.idle_secs.to_string())
        .env("CARTWRIGHT__CHECKOUT__SYNC_WAIT_MS", if opts.scenario == Scenario::Recovery { "1" } else { "5000" })
        .env("RUST_LOG", "warn,cartwright=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {} (build it with cargo build --release): {e}", opts.server_bin));
    let mut lines = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
    let url = loop {
        let line = lines.next().expect("server exited before listening").expect("readable stdout");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break format!("http://{}", rest.split_whitespace().next().expect("an address"));
        }
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    (child, url)
}

fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
}

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    url: String,
    admin: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value), reqwest::Error> {
        let mut rb = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body)).await.expect("request")
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method, path, Some(&self.admin.clone()), body).await.expect("request");
        assert!(s < 300, "{path}: {s} {v}");
        v
    }
}

struct Customer {
    token: String,
}

/// A minimal HTTP/1.1 keep-alive connection for the measured loop: pre-formatted requests,
/// status and Content-Length parsing only. A general client (reqwest) spends a large share
/// of this 2-core machine's CPU that the server under test should have.
struct Conn {
    addr: String,
    stream: Option<tokio::io::BufReader<tokio::net::TcpStream>>,
}

impl Conn {
    fn new(url: &str) -> Conn {
        Conn { addr: url.trim_start_matches("http://").to_string(), stream: None }
    }

    /// Sends one request; answers (status, body). Reconnects once if the connection died.
    async fn request(&mut self, method: &str, path: &str, token: &str, body: &str) -> std::io::Result<(u16, Vec<u8>)> {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        match self.send(&req).await {
            Ok(r) => Ok(r),
            Err(_) => {
                self.stream = None;
                self.send(&req).await
            }
        }
    }

    async fn send(&mut self, req: &str) -> std::io::Result<(u16, Vec<u8>)> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        if self.stream.is_none() {
            let s = tokio::net::TcpStream::connect(&self.addr).await?;
            s.set_nodelay(true)?;
            self.stream = Some(tokio::io::BufReader::with_capacity(64 * 1024, s));
        }
        let stream = self.stream.as_mut().expect("connected");
        stream.get_mut().write_all(req.as_bytes()).await?;
        let mut line = String::new();
        stream.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other("bad status line"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            if stream.read_line(&mut line).await? == 0 {
                return Err(std::io::Error::other("connection closed"));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await?;
        Ok((status, body))
    }
}

/// Registers, verifies (for checkouts) and logs in `n` customers, 32 at a time.
async fn setup_customers(api: &Api, n: usize, run: &str, verify: bool) -> Vec<Customer> {
    let next = Arc::new(AtomicU64::new(0));
    let out = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (api, next, out, run) = (api.clone(), next.clone(), out.clone(), run.to_string());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= n {
                        return;
                    }
                    let email = format!("lg-{run}-{i}@example.com");
                    let (s, c) = api.post("/v1/customers", None, json!({ "email": email, "password": PASSWORD })).await;
                    assert_eq!(s, 201, "{c}");
                    let (s, session) =
                        api.post("/v1/sessions", None, json!({ "email": email, "password": PASSWORD })).await;
                    assert_eq!(s, 201, "{session}");
                    out.lock().expect("lock").push((
                        c["customer_id"].as_str().unwrap_or_default().to_string(),
                        session["token"].as_str().unwrap_or_default().to_string(),
                    ));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("setup task");
    }
    let registered = std::mem::take(&mut *out.lock().expect("lock"));
    if verify {
        // The verification tokens are in the outbox; page through it once.
        let mut tokens = std::collections::HashMap::new();
        let mut cursor = String::new();
        loop {
            let page = api
                .admin(
                    reqwest::Method::GET,
                    &format!("/admin/v1/notifications?kind=email_verification&limit=1000{cursor}"),
                    None,
                )
                .await;
            for n in page["notifications"].as_array().into_iter().flatten() {
                tokens.insert(
                    n["payload"]["customer_id"].as_str().unwrap_or_default().to_string(),
                    n["payload"]["verification_token"].clone(),
                );
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => break,
            }
        }
        let chunks: Vec<Vec<Value>> = registered
            .iter()
            .map(|(id, _)| tokens[id].clone())
            .collect::<Vec<_>>()
            .chunks(n.div_ceil(32).max(1))
            .map(<[Value]>::to_vec)
            .collect();
        let tasks: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let api = api.clone();
                tokio::spawn(async move {
                    for t in chunk {
                        api.post("/v1/customers/verify-email", None, json!({ "token": t })).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("verify task");
        }
    }
    registered.into_iter().map(|(_, token)| Customer { token }).collect()
}

async fn setup_catalog(api: &Api, n: usize) -> Vec<String> {
    let cat = api.admin(reqwest::Method::POST, "/admin/v1/categories", Some(json!({ "name": "Load" }))).await;
    let mut products = Vec::with_capacity(n);
    for i in 0..n {
        let p = api
            .admin(
                reqwest::Method::POST,
                "/admin/v1/products",
                Some(json!({ "name": format!("Product {i}"), "price": "9.99", "category_id": cat["category_id"], "initial_stock": 1_000_000_000u64 })),
            )
            .await;
        products.push(p["product_id"].as_str().unwrap_or_default().to_string());
    }
    products
}

#[derive(Default)]
struct Tally {
    ok: u64,
    errors: std::collections::BTreeMap<u16, u64>,
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// What one virtual client does, and when.
struct Plan {
    scenario: Scenario,
    api: Api,
    customers: Arc<Vec<Customer>>,
    products: Arc<Vec<String>>,
    /// This client's number; it uses customers me, me + clients, me + 2 * clients...
    me: usize,
    clients: usize,
    measure_from: Instant,
    until: Instant,
}

/// One virtual client: its own share of the customers, one request at a time.
async fn client_loop(plan: Plan) -> (Histogram<u64>, Tally) {
    let Plan { scenario, api, customers, products, me, clients, measure_from, until } = plan;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut tally = Tally::default();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (me as u64 + 1));
    let mine: Vec<usize> = (me..customers.len()).step_by(clients).collect();
    if mine.is_empty() {
        return (hist, tally);
    }
    let mut conn = Conn::new(&api.url);
    let mut k = 0usize;
    while Instant::now() < until {
        let c = &customers[mine[k % mine.len()]];
        k += 1;
        // Each customer keeps to 20 products so a cart stays under its 100-line bound.
        let product = &products[(mine[k % mine.len()] * 7 + rng.below(20)) % products.len()];
        let add = format!("{{\"product_id\":\"{product}\",\"quantity\":1}}");
        let order = order_body("tok_visa").to_string();
        let (started, result) = match scenario {
            Scenario::AddToCart => {
                let t = Instant::now();
                (t, conn.request("POST", "/v1/cart/items", &c.token, &add).await)
            }
            Scenario::PlaceOrder | Scenario::Recovery => {
                let _ = conn.request("POST", "/v1/cart/items", &c.token, &add).await;
                let t = Instant::now();
                (t, conn.request("POST", "/v1/orders", &c.token, &order).await)
            }
            Scenario::CancelOrder => {
                let _ = conn.request("POST", "/v1/cart/items", &c.token, &add).await;
                let placed = conn.request("POST", "/v1/orders", &c.token, &order).await;
                let Ok((201, body)) = placed else { continue };
                let order: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let t = Instant::now();
                let path = format!("/v1/orders/{}/cancel", order["order_id"].as_str().unwrap_or_default());
                (t, conn.request("POST", &path, &c.token, "").await)
            }
        };
        let micros = started.elapsed().as_micros() as u64;
        if started < measure_from {
            continue;
        }
        match result {
            Ok((s, _)) if s < 300 => {
                tally.ok += 1;
                let _ = hist.record(micros.max(1));
            }
            Ok((s, _)) => *tally.errors.entry(s).or_default() += 1,
            Err(_) => *tally.errors.entry(0).or_default() += 1,
        }
    }
    (hist, tally)
}

fn order_body(card: &str) -> Value {
    json!({
        "shipping_address": { "name": "Load Test", "line1": "1 Bench Way", "city": "Perf", "postal_code": "00000", "country": "US" },
        "payment": { "token": card }
    })
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

async fn run_load(opts: &Opts, api: &Api, server: &Server, customers: Vec<Customer>, products: Vec<String>) -> Value {
    let customers = Arc::new(customers);
    let products = Arc::new(products);
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(opts.warmup_secs);
    let until = measure_from + Duration::from_secs(opts.duration_secs);
    let rss_start = server.pid.and_then(|p| rss_kib(p, "VmRSS:"));
    let peak = Arc::new(AtomicU64::new(0));
    // Every 5 s: seconds into the run, RSS in MiB, carts in memory (is memory flat?).
    let series = Arc::new(Mutex::new(Vec::<Value>::new()));
    let sampler = server.pid.map(|pid| {
        let (peak, series, api) = (peak.clone(), series.clone(), api.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                if let Some(r) = rss_kib(pid, "VmRSS:") {
                    peak.fetch_max(r, Ordering::Relaxed);
                    if n.is_multiple_of(10) {
                        let stats = api.admin(reqwest::Method::GET, "/admin/v1/stats", None).await;
                        let at = start.elapsed().as_secs();
                        series.lock().expect("lock").push(json!([at, r / 1024, stats["actors"]["carts"]]));
                    }
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    });
    let tasks: Vec<_> = (0..opts.clients)
        .map(|me| {
            let (api, customers, products, clients, scenario) =
                (api.clone(), customers.clone(), products.clone(), opts.clients, opts.scenario);
            tokio::spawn(client_loop(Plan { scenario, api, customers, products, me, clients, measure_from, until }))
        })
        .collect();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut tally = Tally::default();
    for t in tasks {
        let (h, t) = t.await.expect("client task");
        hist.add(&h).expect("same bounds");
        tally.ok += t.ok;
        for (k, v) in t.errors {
            *tally.errors.entry(k).or_default() += v;
        }
    }
    if let Some(s) = sampler {
        let _ = s.await;
    }
    let stats = api.admin(reqwest::Method::GET, "/admin/v1/stats", None).await;
    let seconds = opts.duration_secs as f64;
    json!({
        "scenario": format!("{:?}", opts.scenario),
        "clients": opts.clients,
        "duration_secs": opts.duration_secs,
        "customers": customers.len(),
        "products": products.len(),
        "ok": tally.ok,
        "errors_by_status": tally.errors,
        "throughput_per_sec": (tally.ok as f64 / seconds).round(),
        "latency_ms": {
            "p50": ms(&hist, 0.50), "p90": ms(&hist, 0.90), "p99": ms(&hist, 0.99),
            "p99_9": ms(&hist, 0.999), "max": hist.max() as f64 / 1000.0,
        },
        "server_rss_mib": {
            "start": rss_start.map(|k| k / 1024),
            "end": server.pid.and_then(|p| rss_kib(p, "VmRSS:")).map(|k| k / 1024),
            "peak_sampled": (peak.load(Ordering::Relaxed) > 0).then(|| peak.load(Ordering::Relaxed) / 1024),
            "high_water_mark": server.pid.and_then(|p| rss_kib(p, "VmHWM:")).map(|k| k / 1024),
        },
        "actors_in_memory_at_end": stats["actors"],
        "rss_series_secs_mib_carts": *series.lock().expect("lock"),
    })
}

/// Parks `n` checkouts in RETRYING, kills the server, and times the restart.
async fn run_recovery(
    opts: &Opts,
    api: &Api,
    server: &mut Server,
    customers: Vec<Customer>,
    products: Vec<String>,
) -> Value {
    api.admin(
        reqwest::Method::PUT,
        "/admin/v1/retry-policies/place_order/authorize_payment",
        Some(json!({ "max_attempts": 5, "initial_backoff_ms": 600_000, "multiplier": 1.0, "max_backoff_ms": 600_000 })),
    )
    .await;
    let customers = Arc::new(customers);
    for (i, c) in customers.iter().enumerate() {
        api.call(
            reqwest::Method::POST,
            "/v1/cart/items",
            Some(&c.token),
            Some(json!({ "product_id": products[i % products.len()], "quantity": 1 })),
        )
        .await
        .expect("add");
    }
    let next = Arc::new(AtomicU64::new(0));
    let placed = Instant::now();
    let tasks: Vec<_> = (0..opts.clients)
        .map(|_| {
            let (api, customers, next, n) = (api.clone(), customers.clone(), next.clone(), opts.sagas);
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= n {
                        return;
                    }
                    let c = &customers[i % customers.len()];
                    let _ = api
                        .call(reqwest::Method::POST, "/v1/orders", Some(&c.token), Some(order_body("tok_flaky")))
                        .await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("checkout task");
    }
    let parked_in = placed.elapsed();
    let retrying = api.admin(reqwest::Method::GET, "/admin/v1/stats", None).await;
    println!("{} checkouts parked in {:.1} s; killing the server (kill -9)", opts.sagas, parked_in.as_secs_f64());
    let mut child = server.child.take().expect("a spawned server");
    child.kill().expect("kill -9");
    let _ = child.wait();
    let dir = server.dir.as_ref().expect("spawned server dir").path().to_path_buf();
    let started = Instant::now();
    let (child, url) = spawn_server(opts, &dir);
    let listening_after = started.elapsed();
    server.pid = Some(child.id());
    server.child = Some(child);
    server.url = url.clone();
    let api = Api { url, ..api.clone() };
    let stats = api.admin(reqwest::Method::GET, "/admin/v1/stats", None).await;
    json!({
        "scenario": "Recovery",
        "in_flight_sagas": opts.sagas,
        "parked_in_secs": parked_in.as_secs_f64(),
        "stats_before_kill": retrying,
        "restart_to_listening_secs": listening_after.as_secs_f64(),
        "sagas_in_memory_after_restart": stats["actors"]["sagas"],
        "server_rss_mib_after_restart": server.pid.and_then(|p| rss_kib(p, "VmRSS:")).map(|k| k / 1024),
    })
}

#[tokio::main]
async fn main() {
    let opts = Opts::parse();
    let mut server = match &opts.url {
        Some(url) => Server { child: None, url: url.clone(), pid: opts.server_pid, dir: None },
        None => {
            let dir = tempfile::tempdir().expect("temp dir");
            let (child, url) = spawn_server(&opts, dir.path());
            Server { pid: Some(child.id()), child: Some(child), url, dir: Some(dir) }
        }
    };
    let api = Api {
        http: reqwest::Client::builder().pool_max_idle_per_host(opts.clients * 2).build().expect("client"),
        url: server.url.clone(),
        admin: opts.admin_token.clone(),
    };
    let run = format!("{}", std::process::id());
    let setup = Instant::now();
    let products = setup_catalog(&api, opts.products).await;
    let verify = opts.scenario != Scenario::AddToCart;
    let n = if opts.scenario == Scenario::Recovery { opts.customers.min(opts.sagas) } else { opts.customers };
    let customers = setup_customers(&api, n, &run, verify).await;
    println!(
        "setup: {} products, {} customers in {:.1} s (argon2 cost lowered for setup speed)",
        products.len(),
        customers.len(),
        setup.elapsed().as_secs_f64()
    );
    let report = match opts.scenario {
        Scenario::Recovery => run_recovery(&opts, &api, &mut server, customers, products).await,
        _ => run_load(&opts, &api, &server, customers, products).await,
    };
    println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    std::fs::write(&opts.out, serde_json::to_string_pretty(&report).expect("json")).expect("write report");
    if let Some(mut c) = server.child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}
