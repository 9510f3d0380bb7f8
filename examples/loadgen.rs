//! Load generator: N concurrent keep-alive HTTP clients against a Cartwright server for a
//! fixed time; latencies in an HdrHistogram; prints throughput, p50/p90/p99/p99.9/max, the
//! server's RSS (start of the measured phase, end, peak), the entity actors in memory and the
//! mean group-commit size, and writes the same as JSON (`--out`).
//!
//! By default it starts the release server itself on a fresh temp directory (durable mode):
//!
//! ```sh
//! cargo build --release --bin cartwright --example loadgen
//! cargo run --release --example loadgen -- --scenario add-to-cart --clients 64 --duration-secs 20
//! cargo run --release --example loadgen -- --clients 64 --duration-secs 60 --customers 100000 --idle-secs 5
//! cargo run --release --example loadgen -- --scenario place-order --clients 64 --duration-secs 20
//! cargo run --release --example loadgen -- --scenario recovery --sagas 10000
//! cargo run --release --example loadgen -- --url http://127.0.0.1:8080 --server-pid "$(pidof cartwright)"
//! ```
//!
//! Scenarios:
//! - `add-to-cart`: `POST /v1/cart/items` over `--customers` carts and `--products` products;
//!   each customer keeps to `--products-per-customer` products so no cart reaches
//!   `cart.max_lines`.
//! - `place-order`: every virtual customer's cart is refilled (one add, not measured) and
//!   checked out with the simulated gateway; measures `POST /v1/orders`.
//! - `cancel-order`: place an order (not measured), then measure its `POST /v1/orders/{id}/cancel`.
//! - `recovery`: park `--sagas` checkouts mid-flight (RETRYING), `kill -9` the server,
//!   restart it and measure how long it takes until it listens again with all resumed.
//!
//! A spawned server gets a cheap Argon2 cost (1 MiB, 1 pass) so that registering and logging
//! in 100,000 customers takes a minute rather than hours; the measured requests do not hash.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Scenario {
    AddToCart,
    PlaceOrder,
    CancelOrder,
    Recovery,
}

impl Scenario {
    fn name(self) -> String {
        self.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
    }

    /// The server's route label (in `cartwright_http_request_seconds`) of the measured request.
    fn route(self) -> &'static str {
        match self {
            Scenario::AddToCart => "cart.add",
            Scenario::PlaceOrder | Scenario::Recovery => "orders.place",
            Scenario::CancelOrder => "orders.cancel",
        }
    }
}

#[derive(Parser, Debug, Clone)]
#[command(about = "Cartwright load generator")]
struct Opts {
    #[arg(long, value_enum, default_value = "add-to-cart")]
    scenario: Scenario,
    /// Concurrent virtual clients, each on its own keep-alive connection.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Length of the measured phase.
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    /// Load before the measured phase whose samples are thrown away.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Distinct customers (and so carts) the run touches.
    #[arg(long, default_value_t = 2000)]
    customers: usize,
    #[arg(long, default_value_t = 200)]
    products: usize,
    /// Products one customer draws from, so a cart stays under `cart.max_lines` (100).
    #[arg(long, default_value_t = 20)]
    products_per_customer: usize,
    /// In-flight sagas for the recovery scenario.
    #[arg(long, default_value_t = 10_000)]
    sagas: usize,
    /// An already running server; without it the release server is started here (`--spawn`).
    #[arg(long, conflicts_with = "spawn")]
    url: Option<String>,
    /// Start the release server on a fresh temp directory (the default without `--url`).
    #[arg(long)]
    spawn: bool,
    /// The server's pid (for RSS and per-thread CPU) when `--url` is given.
    #[arg(long, requires = "url")]
    server_pid: Option<u32>,
    #[arg(long, default_value = "target/release/cartwright")]
    server_bin: String,
    /// Passivation timeout (`actors.idle_timeout_secs`) given to a spawned server.
    #[arg(long, default_value_t = 10)]
    idle_secs: u64,
    #[arg(long, default_value = "dev-admin-token-change-me")]
    admin_token: String,
    /// Where the JSON report goes.
    #[arg(long, default_value = "loadgen.json")]
    out: String,
    /// An operator watching the console during the run: every this many seconds (0: none),
    /// one signed-in session loads the triage page and the saga list, as the console's
    /// auto-refresh does (about every 10 s).
    #[arg(long, default_value_t = 0.0)]
    console_refresh_secs: f64,
}

const PASSWORD: &str = "loadgen-password-1";

/// The server under test. A spawned one is killed (and its temp directory removed) on drop,
/// so a failed setup assertion does not leave it running.
struct Server {
    child: Option<Child>,
    url: String,
    pid: Option<u32>,
    dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_server(opts: &Opts, dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(&opts.server_bin)
        .env("CARTWRIGHT__SERVER__ADDR", "127.0.0.1:0")
        .env("CARTWRIGHT__STORAGE__PATH", dir)
        .env("CARTWRIGHT__AUTH__ADMIN_TOKEN", &opts.admin_token)
        // Cheap password hashing so that setting up 100k customers takes seconds, not hours.
        .env("CARTWRIGHT__AUTH__ARGON2_MEMORY_KIB", "1024")
        .env("CARTWRIGHT__AUTH__ARGON2_ITERATIONS", "1")
        // Every client logs in from 127.0.0.1: the per-address login limit would refuse most.
        .env("CARTWRIGHT__AUTH__LOGIN_PER_IP_PER_MINUTE", "0")
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
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    (child, url)
}

fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
}

fn mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0)
}

/// Clock ticks per second of /proc's utime and stime (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// utime + stime (ticks) from a /proc `stat` line, and the thread's name.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // After the name: state is field 3 of stat(5), utime 14 and stime 15.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((name, ticks))
}

fn process_ticks(pid: &str) -> Option<u64> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?).map(|(_, t)| t)
}

/// CPU ticks of each of a process's threads, by thread id, with their names.
fn thread_ticks(pid: u32) -> HashMap<String, (String, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for entry in dir.flatten() {
        let tid = entry.file_name().to_string_lossy().to_string();
        if let Some(stat) = std::fs::read_to_string(entry.path().join("stat")).ok().and_then(|s| parse_stat(&s)) {
            out.insert(tid, stat);
        }
    }
    out
}

/// CPU (in cores) each thread name used between two snapshots, busiest first.
fn thread_cpu(
    before: &HashMap<String, (String, u64)>,
    after: &HashMap<String, (String, u64)>,
    secs: f64,
) -> Vec<Value> {
    let mut by_name: BTreeMap<String, (u64, usize)> = BTreeMap::new();
    for (tid, (name, ticks)) in after {
        let was = before.get(tid).map_or(0, |(_, t)| *t);
        let e = by_name.entry(name.clone()).or_default();
        e.0 += ticks.saturating_sub(was);
        e.1 += 1;
    }
    let mut rows: Vec<_> = by_name.into_iter().filter(|(_, (t, _))| *t > 0).collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.1 .0));
    rows.into_iter()
        .map(|(name, (t, n))| json!({ "thread": name, "threads": n, "cores": round2(t as f64 / TICKS / secs) }))
        .collect()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `GET /metrics` as series name (with labels) to value.
#[derive(Default, Clone)]
struct Metrics(HashMap<String, f64>);

impl Metrics {
    fn parse(text: &str) -> Metrics {
        Metrics(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let (k, v) = l.rsplit_once(' ')?;
                    Some((k.to_string(), v.parse().ok()?))
                })
                .collect(),
        )
    }

    fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    fn actors(&self, kind: &str) -> i64 {
        self.get(&format!("cartwright_actors_active{{kind=\"{kind}\"}}")) as i64
    }

    /// Mean of a histogram over what was observed between `earlier` and `self`.
    fn mean_since(&self, earlier: &Metrics, name: &str, labels: &str) -> Option<f64> {
        let sum = self.get(&format!("{name}_sum{labels}")) - earlier.get(&format!("{name}_sum{labels}"));
        let count = self.get(&format!("{name}_count{labels}")) - earlier.get(&format!("{name}_count{labels}"));
        (count > 0.0).then(|| sum / count)
    }
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

    /// A POST that waits out the server's 503 SERVER_BUSY (password hashing is bounded, and a
    /// busy machine reaches the bound during setup) for the time its Retry-After asks.
    async fn post_patiently(&self, path: &str, body: Value) -> (u16, Value) {
        loop {
            let (s, v) = self.post(path, None, body.clone()).await;
            if s != 503 || v["error"]["code"] != "SERVER_BUSY" {
                return (s, v);
            }
            let secs = v["error"]["details"]["retry_after_secs"].as_u64().unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(secs)).await;
        }
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method, path, Some(&self.admin), body).await.expect("request");
        assert!(s < 300, "{path}: {s} {v}");
        v
    }

    async fn metrics(&self) -> Metrics {
        match self.http.get(format!("{}/metrics", self.url)).send().await {
            Ok(r) => Metrics::parse(&r.text().await.unwrap_or_default()),
            Err(_) => Metrics::default(),
        }
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
        Conn { addr: url.trim_start_matches("http://").trim_end_matches('/').to_string(), stream: None }
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
    let started = Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (api, next, out, run) = (api.clone(), next.clone(), out.clone(), run.to_string());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= n {
                        return;
                    }
                    if i > 0 && i.is_multiple_of(10_000) {
                        println!("  setup: {i} customers after {:.1} s", started.elapsed().as_secs_f64());
                    }
                    let email = format!("lg-{run}-{i}@example.com");
                    let credentials = json!({ "email": email, "password": PASSWORD });
                    let (s, c) = api.post_patiently("/v1/customers", credentials.clone()).await;
                    assert_eq!(s, 201, "register {email}: {c}");
                    let (s, session) = api.post_patiently("/v1/sessions", credentials).await;
                    assert_eq!(s, 201, "log in {email}: {session}");
                    out.lock().expect("lock").push((
                        c["customer_id"].as_str().expect("a customer_id").to_string(),
                        session["token"].as_str().expect("a session token").to_string(),
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
        let mut tokens = HashMap::new();
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
            .map(|(id, _)| tokens.get(id).cloned().expect("a verification email for every customer"))
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
        products.push(p["product_id"].as_str().expect("a product_id").to_string());
    }
    products
}

/// Outcomes of one client's measured requests.
#[derive(Default)]
struct Tally {
    ok: u64,
    /// 422s (CART_FULL, INVALID_QUANTITY...): the server refused a request the generator
    /// should not have made; counted apart from errors.
    refused: u64,
    /// Other non-2xx answers by status; "io" for transport failures.
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.refused += other.refused;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// What one virtual client does, and when.
struct Plan {
    scenario: Scenario,
    url: String,
    customers: Arc<Vec<Customer>>,
    products: Arc<Vec<String>>,
    per_customer: usize,
    /// This client's number; it uses customers me, me + clients, me + 2 * clients...
    me: usize,
    clients: usize,
    measure_from: Instant,
    until: Instant,
}

fn new_histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 60 s, 3 significant figures.
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// One virtual client: its own share of the customers in turn (so the run touches every
/// cart), one request at a time on one keep-alive connection.
async fn client_loop(plan: Plan) -> (Histogram<u64>, Tally) {
    let Plan { scenario, url, customers, products, per_customer, me, clients, measure_from, until } = plan;
    let mut hist = new_histogram();
    let mut tally = Tally::default();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (me as u64 + 1));
    let mine: Vec<usize> = (me..customers.len()).step_by(clients).collect();
    if mine.is_empty() {
        return (hist, tally);
    }
    let order = order_body("tok_visa").to_string();
    let mut conn = Conn::new(&url);
    let mut k = 0usize;
    while Instant::now() < until {
        let i = mine[k % mine.len()];
        k += 1;
        let c = &customers[i];
        // Customer i keeps to its own `per_customer` products, so its cart stays under its line bound.
        let product = &products[(i * 7 + rng.below(per_customer)) % products.len()];
        let add = format!("{{\"product_id\":\"{product}\",\"quantity\":1}}");
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
        if started < measure_from || started >= until {
            continue;
        }
        match result {
            Ok((s, _)) => {
                let _ = hist.record(micros.max(1));
                match s {
                    200..=299 => tally.ok += 1,
                    422 => tally.refused += 1,
                    _ => *tally.errors.entry(s.to_string()).or_default() += 1,
                }
            }
            Err(_) => *tally.errors.entry("io".to_string()).or_default() += 1,
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

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// One reading of the sampler.
#[derive(Serialize, Clone, Copy)]
struct Sample {
    t_secs: f64,
    rss_mib: Option<f64>,
    carts: i64,
    inventory: i64,
}

#[derive(Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    p99_9: f64,
    max: f64,
    mean: f64,
}

#[derive(Serialize)]
struct Rss {
    at_measure_start: Option<f64>,
    at_end: Option<f64>,
    peak_sampled: Option<f64>,
    /// VmHWM: the process's own peak, including setup.
    high_water_mark: Option<f64>,
}

#[derive(Serialize)]
struct Report {
    scenario: String,
    url: String,
    spawned_server: bool,
    clients: usize,
    duration_secs: u64,
    warmup_secs: u64,
    customers: usize,
    products: usize,
    idle_secs: Option<u64>,
    setup_secs: f64,
    ok: u64,
    refused_422: u64,
    errors_by_status: BTreeMap<String, u64>,
    throughput_ok_per_sec: f64,
    /// Over every answered measured request (ok, refused and errors).
    latency_ms: Latency,
    /// Server-side mean of the measured route over the measured phase (from /metrics).
    server_mean_ms: Option<f64>,
    server_rss_mib: Rss,
    /// `cartwright_actors_active` at the end of the run.
    actors_active_at_end: BTreeMap<String, i64>,
    actors_active_peak_carts: i64,
    /// Mean write sets per group commit (fdatasync) and mean commit time, over the measured phase.
    commit_group_size_mean: Option<f64>,
    commit_ms_mean: Option<f64>,
    /// CPU cores used during the measured phase.
    server_cpu_cores: Option<f64>,
    loadgen_cpu_cores: Option<f64>,
    server_threads_cpu: Vec<Value>,
    samples: Vec<Sample>,
}

/// What the sampler reads at the start of the measured phase.
struct AtStart {
    rss_kib: Option<u64>,
    metrics: Metrics,
    server_ticks: Option<u64>,
    loadgen_ticks: Option<u64>,
    threads: HashMap<String, (String, u64)>,
}

async fn run_load(opts: &Opts, api: &Api, server: &Server, customers: Vec<Customer>, products: Vec<String>) -> Report {
    let customers = Arc::new(customers);
    let products = Arc::new(products);
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(opts.warmup_secs);
    let until = measure_from + Duration::from_secs(opts.duration_secs);
    let pid = server.pid;
    let warmup = opts.warmup_secs as f64;

    let sampler = {
        let api = api.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut at_start = None;
            loop {
                let now = Instant::now();
                if at_start.is_none() && now >= measure_from {
                    at_start = Some(AtStart {
                        rss_kib: pid.and_then(|p| rss_kib(p, "VmRSS:")),
                        metrics: api.metrics().await,
                        server_ticks: pid.and_then(|p| process_ticks(&p.to_string())),
                        loadgen_ticks: process_ticks("self"),
                        threads: pid.map(thread_ticks).unwrap_or_default(),
                    });
                }
                if now >= until {
                    break;
                }
                let m = api.metrics().await;
                samples.push(Sample {
                    // Seconds into the measured phase (negative during the warm-up).
                    t_secs: round2(now.duration_since(start).as_secs_f64() - warmup),
                    rss_mib: mib(pid.and_then(|p| rss_kib(p, "VmRSS:"))),
                    carts: m.actors("cart"),
                    inventory: m.actors("inventory"),
                });
                let next = now + Duration::from_millis(500);
                let wake = if at_start.is_none() && measure_from < next { measure_from } else { next.min(until) };
                tokio::time::sleep_until(wake.into()).await;
            }
            (samples, at_start.expect("the sampler reaches the measured phase"))
        })
    };

    let tasks: Vec<_> = (0..opts.clients)
        .map(|me| {
            tokio::spawn(client_loop(Plan {
                scenario: opts.scenario,
                url: api.url.clone(),
                customers: customers.clone(),
                products: products.clone(),
                per_customer: opts.products_per_customer.clamp(1, products.len().max(1)),
                me,
                clients: opts.clients,
                measure_from,
                until,
            }))
        })
        .collect();
    let mut hist = new_histogram();
    let mut tally = Tally::default();
    for t in tasks {
        let (h, t) = t.await.expect("client task");
        hist.add(&h).expect("same bounds");
        tally.merge(t);
    }
    let (samples, at_start) = sampler.await.expect("sampler task");

    let seconds = opts.duration_secs.max(1) as f64;
    let end = api.metrics().await;
    let server_ticks = pid.and_then(|p| process_ticks(&p.to_string()));
    let loadgen_ticks = process_ticks("self");
    let cores = |a: Option<u64>, b: Option<u64>| Some(round2(b?.saturating_sub(a?) as f64 / TICKS / seconds));
    let mut actors = BTreeMap::new();
    for kind in ["cart", "inventory", "order", "saga"] {
        actors.insert(kind.to_string(), end.actors(kind));
    }
    Report {
        scenario: opts.scenario.name(),
        url: server.url.clone(),
        spawned_server: server.child.is_some(),
        clients: opts.clients,
        duration_secs: opts.duration_secs,
        warmup_secs: opts.warmup_secs,
        customers: customers.len(),
        products: products.len(),
        idle_secs: server.child.is_some().then_some(opts.idle_secs),
        setup_secs: 0.0,
        ok: tally.ok,
        refused_422: tally.refused,
        errors_by_status: tally.errors,
        throughput_ok_per_sec: (tally.ok as f64 / seconds).round(),
        latency_ms: Latency {
            p50: ms(hist.value_at_quantile(0.50)),
            p90: ms(hist.value_at_quantile(0.90)),
            p99: ms(hist.value_at_quantile(0.99)),
            p99_9: ms(hist.value_at_quantile(0.999)),
            max: ms(hist.max()),
            mean: ms(hist.mean() as u64),
        },
        server_mean_ms: end
            .mean_since(
                &at_start.metrics,
                "cartwright_http_request_seconds",
                &format!("{{route=\"{}\"}}", opts.scenario.route()),
            )
            .map(|s| ms((s * 1e6) as u64)),
        server_rss_mib: Rss {
            at_measure_start: mib(at_start.rss_kib),
            at_end: mib(pid.and_then(|p| rss_kib(p, "VmRSS:"))),
            peak_sampled: samples.iter().filter_map(|s| s.rss_mib).reduce(f64::max),
            high_water_mark: mib(pid.and_then(|p| rss_kib(p, "VmHWM:"))),
        },
        actors_active_at_end: actors,
        actors_active_peak_carts: samples.iter().map(|s| s.carts).max().unwrap_or(0),
        commit_group_size_mean: end.mean_since(&at_start.metrics, "cartwright_commit_group_size", "").map(round2),
        commit_ms_mean: end
            .mean_since(&at_start.metrics, "cartwright_commit_seconds", "")
            .map(|s| ms((s * 1e6) as u64)),
        server_cpu_cores: cores(at_start.server_ticks, server_ticks),
        loadgen_cpu_cores: cores(at_start.loadgen_ticks, loadgen_ticks),
        server_threads_cpu: pid.map(|p| thread_cpu(&at_start.threads, &thread_ticks(p), seconds)).unwrap_or_default(),
        samples,
    }
}

fn opt(x: Option<f64>, unit: &str) -> String {
    x.map_or_else(|| "n/a".to_string(), |v| format!("{v:.1}{unit}"))
}

fn print_summary(r: &Report) {
    let l = &r.latency_ms;
    println!("== loadgen: {} ==", r.scenario);
    println!(
        "server      {} ({}{})",
        r.url,
        if r.spawned_server { "spawned, durable, argon2 lowered to 1 MiB/1 pass for setup" } else { "external" },
        r.idle_secs.map(|s| format!(", idle timeout {s} s")).unwrap_or_default()
    );
    println!(
        "load        {} clients, {} s measured after {} s warm-up, {} customers, {} products (setup {:.1} s)",
        r.clients, r.duration_secs, r.warmup_secs, r.customers, r.products, r.setup_secs
    );
    println!("requests    ok {}  refused(422) {}  errors {:?}", r.ok, r.refused_422, r.errors_by_status);
    println!("throughput  {:.0} ok req/s", r.throughput_ok_per_sec);
    println!(
        "latency ms  p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  mean {:.2}  (server-side mean {})",
        l.p50,
        l.p90,
        l.p99,
        l.p99_9,
        l.max,
        l.mean,
        r.server_mean_ms.map_or_else(|| "n/a".to_string(), |m| format!("{m:.2} ms"))
    );
    let m = &r.server_rss_mib;
    println!(
        "server RSS  start {}  end {}  peak {}  (VmHWM {})",
        opt(m.at_measure_start, " MiB"),
        opt(m.at_end, " MiB"),
        opt(m.peak_sampled, " MiB"),
        opt(m.high_water_mark, " MiB")
    );
    // A few points of the timeline, so "flat" can be judged at a glance.
    let step = r.samples.len().div_ceil(10).max(1);
    let points: Vec<String> = r
        .samples
        .iter()
        .step_by(step)
        .map(|s| format!("{:.1}s:{}/{}", s.t_secs, opt(s.rss_mib, ""), s.carts))
        .collect();
    println!("timeline    t:RSS MiB/carts in memory  {}", points.join("  "));
    println!("actors      at end {:?}, peak carts {}", r.actors_active_at_end, r.actors_active_peak_carts);
    println!(
        "commit      mean group size {}  mean commit {}",
        opt(r.commit_group_size_mean, ""),
        opt(r.commit_ms_mean.map(|m| m * 1000.0), " µs")
    );
    println!(
        "cpu         server {} cores, loadgen {} cores",
        opt(r.server_cpu_cores, ""),
        opt(r.loadgen_cpu_cores, "")
    );
    let hot: Vec<String> = r
        .server_threads_cpu
        .iter()
        .take(8)
        .map(|t| format!("{} x{} {}", t["thread"].as_str().unwrap_or("?"), t["threads"], t["cores"]))
        .collect();
    if !hot.is_empty() {
        println!("threads     {}", hot.join(", "));
    }
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
    let mut child = server.child.take().expect("recovery needs a spawned server (no --url)");
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
        "scenario": "recovery",
        "in_flight_sagas": opts.sagas,
        "parked_in_secs": parked_in.as_secs_f64(),
        "stats_before_kill": retrying,
        "restart_to_listening_secs": listening_after.as_secs_f64(),
        "sagas_in_memory_after_restart": stats["actors"]["sagas"],
        "server_rss_mib_after_restart": mib(server.pid.and_then(|p| rss_kib(p, "VmRSS:"))),
    })
}

#[tokio::main]
async fn main() {
    let opts = Opts::parse();
    let mut server = match &opts.url {
        Some(url) => {
            Server { child: None, url: url.trim_end_matches('/').to_string(), pid: opts.server_pid, dir: None }
        }
        None => {
            let dir = tempfile::tempdir().expect("temp dir");
            let (child, url) = spawn_server(&opts, dir.path());
            println!(
                "spawned {} (pid {}) at {url} on {}; argon2 lowered to 1 MiB/1 pass so setup is fast",
                opts.server_bin,
                child.id(),
                dir.path().display()
            );
            Server { pid: Some(child.id()), child: Some(child), url, dir: Some(dir) }
        }
    };
    let api = Api {
        http: reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("http client"),
        url: server.url.clone(),
        admin: opts.admin_token.clone(),
    };
    let run = format!("{}-{}", std::process::id(), chrono::Utc::now().timestamp());
    let setup = Instant::now();
    let products = setup_catalog(&api, opts.products).await;
    let verify = opts.scenario != Scenario::AddToCart;
    let n = if opts.scenario == Scenario::Recovery { opts.customers.min(opts.sagas) } else { opts.customers };
    let customers = setup_customers(&api, n, &run, verify).await;
    let setup_secs = setup.elapsed().as_secs_f64();
    println!(
        "setup: {} products, {} customers registered and logged in in {setup_secs:.1} s (not measured)",
        products.len(),
        customers.len(),
    );
    let report = match opts.scenario {
        Scenario::Recovery => {
            let report = run_recovery(&opts, &api, &mut server, customers, products).await;
            println!("{}", serde_json::to_string_pretty(&report).expect("json"));
            report
        }
        _ => {
            let console = (opts.console_refresh_secs > 0.0).then(|| watch_console(&opts, &server.url));
            let mut report = run_load(&opts, &api, &server, customers, products).await;
            if let Some((task, counts)) = console {
                task.abort();
                let (pages, failed) = (counts.0.load(Ordering::Relaxed), counts.1.load(Ordering::Relaxed));
                println!(
                    "console     {pages} pages loaded during the run ({failed} not 200), one every {} s",
                    opts.console_refresh_secs
                );
            }
            report.setup_secs = (setup_secs * 10.0).round() / 10.0;
            print_summary(&report);
            serde_json::to_value(&report).expect("json")
        }
    };
    std::fs::write(&opts.out, serde_json::to_string_pretty(&report).expect("json"))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", opts.out));
    println!("report written to {}", opts.out);
    drop(server);
}

/// An operator's console left open on the triage page and the saga list, reloading every
/// `--console-refresh-secs`: signs in once, then loads the pages in turn. Counts the pages
/// loaded and those that were not 200.
fn watch_console(opts: &Opts, url: &str) -> (tokio::task::JoinHandle<()>, Arc<(AtomicU64, AtomicU64)>) {
    let (url, token, every) =
        (url.to_string(), opts.admin_token.clone(), Duration::from_secs_f64(opts.console_refresh_secs));
    let counts = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let task = tokio::spawn({
        let counts = counts.clone();
        async move {
            let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
            let signed = http
                .post(format!("{url}/console/sign-in"))
                .form(&[("token", token.as_str()), ("name", "loadgen")])
                .send()
                .await;
            let cookie = signed
                .ok()
                .and_then(|r| r.headers().get("set-cookie").and_then(|v| v.to_str().ok()).map(str::to_string))
                .and_then(|c| c.split(';').next().map(str::to_string))
                .expect("the console signs the load generator in");
            let pages = ["/console/triage", "/console/sagas?state=RUNNING", "/console/sagas"];
            for page in pages.iter().cycle() {
                tokio::time::sleep(every).await;
                let status = http
                    .get(format!("{url}{page}"))
                    .header("cookie", &cookie)
                    .send()
                    .await
                    .map(|r| r.status().as_u16());
                counts.0.fetch_add(1, Ordering::Relaxed);
                if status.ok() != Some(200) {
                    counts.1.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    (task, counts)
}
