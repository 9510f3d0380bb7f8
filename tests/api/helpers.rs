//! `spawn_app()` and a client with one method per request, in the zero-to-production style.

use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cartwright::config::{Backend, Settings};
use serde_json::{json, Value};
use tempfile::TempDir;

pub const ADMIN: &str = "test-admin-token";
pub const FULFILLMENT: &str = "test-fulfillment-token";
pub const PASSWORD: &str = "correct-horse-9";

pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    /// Kept so the directory outlives the server (and survives restarts); on PostgreSQL
    /// its schemas go with it, once `drop` stopped the server.
    _dir: Arc<StoreDir>,
    settings: Settings,
    running: Option<cartwright::app::Spawned>,
}

/// A customer registered and logged in.
#[derive(Debug, Clone)]
pub struct Customer {
    pub id: String,
    pub email: String,
    pub token: String,
}

/// Settings for tests: cheap password hashing, fast notification retries.
pub fn test_settings(dir: &TempDir) -> Settings {
    let mut s = Settings::load_layers(None, false).expect("default settings");
    s.server.addr = "127.0.0.1:0".parse().unwrap();
    s.server.shutdown_grace_secs = 5;
    s.storage.path = dir.path().to_path_buf();
    s.storage.cache_capacity_mb = 16;
    s.auth.admin_token = ADMIN.into();
    s.auth.fulfillment_token = FULFILLMENT.into();
    s.auth.argon2_memory_kib = 1024;
    s.auth.argon2_iterations = 1;
    // Every test client is 127.0.0.1 and many log in at once: the per-address login limit
    // and the hashing bound have their own tests (throttle.rs), with their own settings.
    s.auth.login_per_ip_per_minute = 100_000;
    s.auth.max_concurrent_hashes = 16;
    s.actors.arbiters = 2;
    s.notifications.initial_backoff_ms = 20;
    s.notifications.max_backoff_ms = 100;
    s.notifications.poll_interval_ms = 20;
    s.orders.expiry_check_interval_ms = 50;
    // Tests assert a saga's settled answer, and a loaded CI machine (the suite on PostgreSQL
    // beside the sled suite, two cores) may take seconds to settle one: the 202 path has
    // its own tests, each with a short wait of its own.
    s.checkout.sync_wait_ms = 15_000;
    if let Some(url) = postgres_url() {
        use_postgres(&mut s, &url, dir.path());
    }
    s
}

/// Set to a PostgreSQL URL, every test server stores in that database instead of sled
/// (see main.rs); `.ci/postgres.sh` starts one and sets it.
pub const POSTGRES_URL_VAR: &str = "CARTWRIGHT_TEST_POSTGRES_URL";

/// The database the suite runs against, when [`POSTGRES_URL_VAR`] is set (and not empty).
pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR).ok().filter(|url| !url.is_empty())
}

/// Points `s` at the PostgreSQL store at `url`, in the schema of the store directory `dir`.
fn use_postgres(s: &mut Settings, url: &str, dir: &Path) {
    s.storage.backend = Backend::Postgres;
    s.storage.postgres.url = url.to_string();
    s.storage.postgres.schema = postgres_schema(dir);
    // Tests run in parallel, several servers each: keep well under max_connections.
    s.storage.postgres.pool_size = 2;
    // A server killed by a test leaves its lease behind: the next one waits it out.
    s.cluster.lease_ms = 1000;
}

/// The same for the real binary, as `CARTWRIGHT__...` variables (none without PostgreSQL).
fn postgres_env(dir: &Path) -> Vec<(&'static str, String)> {
    let Some(url) = postgres_url() else { return Vec::new() };
    vec![
        ("CARTWRIGHT__STORAGE__BACKEND", "postgres".to_string()),
        ("CARTWRIGHT__STORAGE__POSTGRES__URL", url),
        ("CARTWRIGHT__STORAGE__POSTGRES__SCHEMA", postgres_schema(dir)),
        ("CARTWRIGHT__STORAGE__POSTGRES__POOL_SIZE", "2".to_string()),
        ("CARTWRIGHT__CLUSTER__LEASE_MS", "1000".to_string()),
    ]
}

/// The PostgreSQL schema that stands for the store directory `dir`: its path under the temp
/// directory, lower-cased, anything but a-z, 0-9 and _ as _, after `t_`. Derived, not drawn,
/// so a restart on the same directory finds the same data; temp directories are unique, so
/// no two tests share any. Past the 48 characters a schema name may have, a hash of the whole
/// path keeps it unique.
pub fn postgres_schema(dir: &Path) -> String {
    let relative = dir.strip_prefix(std::env::temp_dir()).unwrap_or(dir);
    let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    let name: String =
        relative.to_string_lossy().to_lowercase().chars().map(|c| if plain(c) { c } else { '_' }).collect();
    let schema = format!("t_{name}");
    if schema.len() <= 48 {
        return schema;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    relative.hash(&mut hasher);
    format!("{}_{:016x}", &schema[..31], hasher.finish())
}

/// For a test about sled's own files, which PostgreSQL does not have: true (skip the test,
/// saying so on stderr) when the suite runs against PostgreSQL. Use:
/// `if sled_only("the_test_name", "why it is about sled's files") { return; }`.
pub fn sled_only(test: &str, why: &str) -> bool {
    skipped_unless(postgres_url().is_none(), "postgres", test, why)
}

/// The mirror of [`sled_only`]: true (and a `SKIPPED on sled` line) unless the suite runs
/// against PostgreSQL, for tests of what only that backend does (leases, fencing).
pub fn postgres_only(test: &str, why: &str) -> bool {
    skipped_unless(postgres_url().is_some(), "sled", test, why)
}

/// True, with a `SKIPPED on <backend>` line, unless `runs`.
fn skipped_unless(runs: bool, backend: &str, test: &str, why: &str) -> bool {
    if runs {
        return false;
    }
    // Straight to the process's stderr: the test harness captures `eprintln!`, and the log
    // of a run must show what it skipped.
    let line = format!("SKIPPED on {backend}: {test} ({why})\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    true
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = Arc::new(store_dir());
    let mut settings = test_settings(&dir);
    adjust(&mut settings);
    let mut app = TestApp {
        url: String::new(),
        client: reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap(),
        _dir: dir,
        settings,
        running: None,
    };
    app.start().await;
    app
}

impl TestApp {
    /// The same client methods against a server this app did not start (a
    /// [`ServerProcess`]); stopping or restarting it is the caller's business.
    pub fn client_of(url: &str) -> TestApp {
        let dir = Arc::new(store_dir());
        TestApp {
            url: url.to_string(),
            client: reqwest::Client::new(),
            settings: test_settings(&dir),
            _dir: dir,
            running: None,
        }
    }

    async fn start(&mut self) {
        if let Err(e) = self.try_start().await {
            panic!("server did not start: {e}");
        }
    }

    /// Starts the server; `Err` with the reason if it refused to start.
    pub async fn try_start(&mut self) -> Result<(), String> {
        let spawned = tokio::time::timeout(Duration::from_secs(20), cartwright::app::spawn(self.settings.clone()))
            .await
            .expect("server started in time")
            .map_err(|e| format!("{e:#}"))?;
        self.url = format!("http://{}", spawned.addr);
        self.running = Some(spawned);
        Ok(())
    }

    /// Graceful stop: stops accepting, drains, flushes, closes the store.
    pub async fn stop(&mut self) {
        if let Some(server) = self.running.take() {
            server.stop().await.expect("server stopped cleanly");
        }
        // Connections to the old server are dead; start with a fresh pool.
        self.client = reqwest::Client::new();
    }

    /// The server's sled directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Stops and starts again on the same data directory.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start().await;
    }

    /// Stops the server, writes what `edit` builds straight into its store (as an older
    /// build, or a failure, would have left it), then starts again on that store.
    pub async fn write_store(&mut self, edit: impl FnOnce(&cartwright::store::Store) -> cartwright::store::WriteSet) {
        self.write_store_stopped(edit).await;
        self.start().await;
    }

    /// As [`TestApp::write_store`], leaving the server stopped (start it with `try_start`).
    pub async fn write_store_stopped(
        &mut self,
        edit: impl FnOnce(&cartwright::store::Store) -> cartwright::store::WriteSet,
    ) {
        self.stop().await;
        // A server that refused to start may still be letting go of the store's lock.
        let mut tries = 0;
        let store = loop {
            match cartwright::store::Store::open(&self.settings.storage) {
                Ok(store) => break store,
                Err(_) if tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("store opens: {e}"),
            }
        };
        let ws = edit(&store);
        store.commit(ws).await.expect("written");
        store.close().expect("store closes");
        drop(store);
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self.client.request(method, format!("{}{}", self.url, path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body read");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PATCH, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, token, None).await
    }

    /// Sends raw bytes (for malformed bodies).
    pub async fn post_raw(&self, path: &str, token: Option<&str>, body: Vec<u8>) -> (u16, Value) {
        let mut rb =
            self.client.post(format!("{}{}", self.url, path)).header("content-type", "application/json").body(body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        let resp = rb.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    // ----- customers -----

    pub async fn register(&self, email: &str) -> (u16, Value) {
        self.post("/v1/customers", None, json!({ "email": email, "password": PASSWORD, "name": "Test Customer" })).await
    }

    pub async fn login(&self, email: &str, password: &str) -> (u16, Value) {
        self.post("/v1/sessions", None, json!({ "email": email, "password": password })).await
    }

    /// A fresh customer with a unique email, registered and logged in.
    pub async fn customer(&self) -> Customer {
        let email = format!("c-{}@example.com", uuid::Uuid::new_v4().simple());
        let (status, body) = self.register(&email).await;
        assert_eq!(status, 201, "{body}");
        let (status, session) = self.login(&email, PASSWORD).await;
        assert_eq!(status, 201, "{session}");
        Customer {
            id: body["customer_id"].as_str().unwrap().to_string(),
            email,
            token: session["token"].as_str().unwrap().to_string(),
        }
    }

    /// The verification token from the customer's queued verification email.
    pub async fn verification_token(&self, customer_id: &str) -> String {
        let list = self.notifications("email_verification").await;
        let n = list.iter().find(|n| n["payload"]["customer_id"] == customer_id).expect("verification email queued");
        n["payload"]["verification_token"].as_str().unwrap().to_string()
    }

    // ----- catalogue -----

    pub async fn category(&self) -> String {
        let (status, body) = self.post("/admin/v1/categories", Some(ADMIN), json!({ "name": "Books" })).await;
        assert_eq!(status, 201, "{body}");
        body["category_id"].as_str().unwrap().to_string()
    }

    pub async fn create_product(&self, body: Value) -> (u16, Value) {
        self.post("/admin/v1/products", Some(ADMIN), body).await
    }

    /// A product without variants.
    pub async fn product(&self, price: &str, stock: u64) -> String {
        let category_id = self.category().await;
        let (status, body) = self
            .create_product(json!({
                "name": "Dune", "description": "Desert planet", "price": price,
                "category_id": category_id, "initial_stock": stock
            }))
            .await;
        assert_eq!(status, 201, "{body}");
        body["product_id"].as_str().unwrap().to_string()
    }

    /// A product with variants; returns (product id, variant ids).
    pub async fn product_with_variants(&self, price: &str, stocks: &[(&str, u64)]) -> (String, Vec<String>) {
        let category_id = self.category().await;
        let variants: Vec<Value> = stocks.iter().map(|(n, s)| json!({ "name": n, "initial_stock": s })).collect();
        let (status, body) = self
            .create_product(json!({
                "name": "T-shirt", "description": "Cotton", "price": price,
                "category_id": category_id, "variants": variants
            }))
            .await;
        assert_eq!(status, 201, "{body}");
        let ids = body["variants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["variant_id"].as_str().unwrap().to_string())
            .collect();
        (body["product_id"].as_str().unwrap().to_string(), ids)
    }

    pub async fn stock(&self, product_id: &str) -> Value {
        let (status, body) = self.get(&format!("/admin/v1/inventory/{product_id}"), Some(ADMIN)).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn restock(&self, product_id: &str, body: Value) -> (u16, Value) {
        self.post(&format!("/admin/v1/inventory/{product_id}/restock"), Some(ADMIN), body).await
    }

    // ----- cart -----

    pub async fn cart(&self, token: &str) -> Value {
        let (status, body) = self.get("/v1/cart", Some(token)).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn add_to_cart(&self, token: &str, body: Value) -> (u16, Value) {
        self.post("/v1/cart/items", Some(token), body).await
    }

    // ----- operators -----

    pub async fn events(&self, ty: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after = 0u64;
        loop {
            let (status, body) = self.get(&format!("/admin/v1/events?after={after}&limit=1000"), Some(ADMIN)).await;
            assert_eq!(status, 200, "{body}");
            let page = body["events"].as_array().unwrap().clone();
            if page.is_empty() {
                return out;
            }
            after = page.last().unwrap()["seq"].as_u64().unwrap();
            out.extend(page.into_iter().filter(|e| e["type"] == ty));
        }
    }

    pub async fn notifications(&self, kind: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/admin/v1/notifications?kind={kind}&limit=1000"), Some(ADMIN)).await;
        assert_eq!(status, 200, "{body}");
        body["notifications"].as_array().unwrap().clone()
    }

    pub async fn audit(&self, entity_type: &str, entity_id: &str) -> Vec<Value> {
        let (status, body) =
            self.get(&format!("/admin/v1/audit?entity_type={entity_type}&entity_id={entity_id}"), Some(ADMIN)).await;
        assert_eq!(status, 200, "{body}");
        body["entries"].as_array().unwrap().clone()
    }

    /// Polls until `check` holds (background work such as notification delivery).
    pub async fn eventually<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..200 {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("timed out waiting for: {what}");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = self.running.take() {
            let _ = server.stop_blocking();
        }
    }
}

/// A test's store directory: on PostgreSQL, the schemas of the store in it are dropped
/// with it, so a developer's own database does not collect a schema per test per run. A
/// test running servers as processes ([`ServerProcess`]) declares it before them, so that
/// they are stopped (dropped) first.
pub struct StoreDir(TempDir);

pub fn store_dir() -> StoreDir {
    StoreDir(tempfile::tempdir().expect("temp dir"))
}

impl std::ops::Deref for StoreDir {
    type Target = TempDir;
    fn deref(&self) -> &TempDir {
        &self.0
    }
}

impl Drop for StoreDir {
    fn drop(&mut self) {
        if let Some(url) = postgres_url() {
            drop_schemas(&url, &postgres_schema(self.0.path()));
        }
    }
}

/// Drops `schema` and those of the store's subdirectories. Best effort: a database that
/// cannot be reached keeps them.
fn drop_schemas(url: &str, schema: &str) {
    let (url, schema) = (url.to_string(), schema.to_string());
    let dropped = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.ok()?;
            tokio::spawn(connection);
            let sql = "SELECT nspname::text FROM pg_namespace WHERE nspname::text = $1 OR starts_with(nspname::text, $1 || '_')";
            for row in client.query(sql, &[&schema]).await.ok()? {
                let name: String = row.get(0);
                client.batch_execute(&format!(r#"DROP SCHEMA IF EXISTS "{name}" CASCADE"#)).await.ok()?;
            }
            Some(())
        })
    });
    let _ = dropped.join();
}

/// A test that fails midway (or one that paused its server) leaves no server behind.
impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = rustix::process::Pid::from_child(&self.child);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::CONT);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The real `cartwright` binary as a child process (for SIGKILL and SIGTERM tests).
pub struct ServerProcess {
    pub child: Child,
    pub url: String,
    /// Every line the server printed (its log), as it arrives.
    pub log: Arc<std::sync::Mutex<Vec<String>>>,
    /// The thread copying stdout into `log`; it ends at the server's exit.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ServerProcess {
    pub fn start(dir: &std::path::Path) -> ServerProcess {
        Self::start_with(dir, &[])
    }

    /// With extra `CARTWRIGHT__...` variables (they win over the test defaults). `dir` is the
    /// sled directory, or under PostgreSQL what names the schema. Returns once the server
    /// serves requests itself: on PostgreSQL, once it leads (a server started while
    /// another's lease runs, after a `kill -9` for instance, follows until it expires).
    pub fn start_with(dir: &std::path::Path, env: &[(&str, &str)]) -> ServerProcess {
        Self::spawn(dir, env, postgres_url().is_some())
    }

    /// As [`ServerProcess::start_with`], returning as soon as the server listens, leader
    /// or follower (PostgreSQL cluster tests).
    pub fn start_listening(dir: &std::path::Path, env: &[(&str, &str)]) -> ServerProcess {
        Self::spawn(dir, env, false)
    }

    fn spawn(dir: &std::path::Path, env: &[(&str, &str)], until_leading: bool) -> ServerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cartwright"));
        let mut child = command
            .env("CARTWRIGHT__SERVER__ADDR", "127.0.0.1:0")
            .env("CARTWRIGHT__STORAGE__PATH", dir)
            .envs(postgres_env(dir))
            .env("CARTWRIGHT__AUTH__ADMIN_TOKEN", ADMIN)
            .env("CARTWRIGHT__AUTH__FULFILLMENT_TOKEN", FULFILLMENT)
            .env("CARTWRIGHT__AUTH__ARGON2_MEMORY_KIB", "1024")
            .env("CARTWRIGHT__AUTH__ARGON2_ITERATIONS", "1")
            .env("CARTWRIGHT__AUTH__LOGIN_PER_IP_PER_MINUTE", "100000")
            .env("CARTWRIGHT__AUTH__MAX_CONCURRENT_HASHES", "16")
            .envs(env.iter().copied())
            // The address is read from the info-level "listening on" line.
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cartwright binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let url = loop {
            let line = lines.next().expect("server printed its address").expect("stdout readable");
            let url =
                line.split("listening on ").nth(1).map(|rest| rest.split_whitespace().next().unwrap().to_string());
            log.lock().unwrap().push(line);
            if let Some(url) = url {
                break format!("http://{url}");
            }
        };
        if until_leading {
            loop {
                let line = lines.next().expect("the server leads, or says why not").expect("stdout readable");
                let leading = line.contains("leading: this server now serves requests itself");
                log.lock().unwrap().push(line);
                if leading {
                    break;
                }
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        let sink = log.clone();
        let reader = std::thread::spawn(move || lines.map_while(Result::ok).for_each(|l| sink.lock().unwrap().push(l)));
        ServerProcess { child, url, log, reader: Some(reader) }
    }

    /// Whether a line the server logged so far contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Whether the server logs a line containing `needle` within `within`.
    pub fn logs_within(&self, needle: &str, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if self.logged(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The exit status, once the process has exited by itself within `within`; by then
    /// `log` holds every line it printed (its last ones may still be in the pipe when it
    /// exits).
    pub fn exits_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait on the server") {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Runs the binary with only `env` (plus a storage directory) as its settings, for a
    /// start that must fail: its exit status and everything it printed.
    pub fn run_to_exit(dir: &std::path::Path, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cartwright"))
            .env("CARTWRIGHT__STORAGE__PATH", dir)
            .envs(postgres_env(dir))
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cartwright binary starts");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while child.try_wait().expect("wait works").is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!("the server kept running: {}", String::from_utf8_lossy(&out.stdout));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("output readable");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status, text)
    }

    /// Runs `cartwright <args>` with the settings of a server on `dir` (its store), for the
    /// commands that read the store themselves (`cluster`).
    pub fn command_on_store(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_cartwright"))
            .args(args)
            .env("CARTWRIGHT__STORAGE__PATH", dir)
            .envs(postgres_env(dir))
            .output()
            .expect("cartwright runs")
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM delivered");
        self.child.wait().expect("server exits")
    }
}

/// A shipping address in the shop's country.
pub fn address(country: &str) -> Value {
    json!({ "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "Springfield", "postal_code": "12345", "country": country })
}

impl TestApp {
    /// A customer whose email is verified (may place orders).
    pub async fn verified_customer(&self) -> Customer {
        let c = self.customer().await;
        let token = self.verification_token(&c.id).await;
        let (status, body) = self.post("/v1/customers/verify-email", None, json!({ "token": token })).await;
        assert_eq!(status, 200, "{body}");
        c
    }

    /// `POST /v1/orders` with a domestic address and the given card token.
    pub async fn place_order(&self, token: &str, card: &str) -> (u16, Value) {
        self.post("/v1/orders", Some(token), json!({ "shipping_address": address("US"), "payment": { "token": card } }))
            .await
    }

    pub async fn place_order_with_key(&self, token: &str, card: &str, key: &str) -> (u16, Value) {
        let resp = self.place_order_with_header(token, card, ("Idempotency-Key", key)).await;
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `POST /v1/orders` with a `Prefer` header: (status, `Preference-Applied`, body).
    pub async fn place_order_preferring(&self, token: &str, card: &str, prefer: &str) -> (u16, Option<String>, Value) {
        let resp = self.place_order_with_header(token, card, ("Prefer", prefer)).await;
        let status = resp.status().as_u16();
        let applied = resp.headers().get("preference-applied").map(|v| v.to_str().unwrap().to_string());
        (status, applied, resp.json().await.unwrap_or(Value::Null))
    }

    async fn place_order_with_header(&self, token: &str, card: &str, (name, value): (&str, &str)) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/orders", self.url))
            .bearer_auth(token)
            .header(name, value)
            .json(&json!({ "shipping_address": address("US"), "payment": { "token": card } }))
            .send()
            .await
            .unwrap()
    }

    pub async fn cancel_order(&self, token: &str, order_id: &str) -> (u16, Value) {
        self.post(&format!("/v1/orders/{order_id}/cancel"), Some(token), json!({ "reason": "changed my mind" })).await
    }

    pub async fn saga(&self, saga_id: &str) -> Value {
        let (status, body) = self.get(&format!("/admin/v1/sagas/{saga_id}"), Some(ADMIN)).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Polls a bulk action through the JSON API until it is no longer running.
    pub async fn bulk_finished(&self, id: &str) -> Value {
        for _ in 0..400 {
            let (status, action) = self.get(&format!("/admin/v1/bulk-actions/{id}"), Some(ADMIN)).await;
            assert_eq!(status, 200, "{action}");
            if action["state"] != "running" {
                return action;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("bulk action {id} never finished");
    }

    /// Polls the operator view until the saga is in `state`.
    pub async fn saga_reaches(&self, saga_id: &str, state: &str) -> Value {
        for _ in 0..400 {
            let saga = self.saga(saga_id).await;
            if saga["state"] == state {
                return saga;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("saga {saga_id} never reached {state}: {}", self.saga(saga_id).await);
    }

    pub async fn set_policy(&self, saga_type: &str, step: &str, max_attempts: u32, backoff_ms: u64) {
        let (status, body) = self
            .put(
                &format!("/admin/v1/retry-policies/{saga_type}/{step}"),
                Some(ADMIN),
                json!({ "max_attempts": max_attempts, "initial_backoff_ms": backoff_ms, "multiplier": 1.0, "max_backoff_ms": backoff_ms }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// on_hand, reserved of a product without variants.
    pub async fn stock_of(&self, product_id: &str) -> (u64, u64) {
        let s = self.stock(product_id).await;
        (s["items"][0]["on_hand"].as_u64().unwrap(), s["items"][0]["reserved"].as_u64().unwrap())
    }
}

pub const PAYMENT_SECRET: &str = "dev-payment-webhook-secret";
pub const CARRIER_SECRET: &str = "dev-carrier-webhook-secret";

impl TestApp {
    /// Posts a webhook body signed with `secret` at time `t` (now if `None`).
    pub async fn webhook_signed(&self, source: &str, secret: &str, t: Option<i64>, body: &Value) -> (u16, Value) {
        let raw = serde_json::to_vec(body).unwrap();
        let t = t.unwrap_or_else(|| chrono::Utc::now().timestamp());
        let signature = cartwright::operations::webhooks::sign(secret, t, &raw);
        self.webhook_raw(source, &signature, raw).await
    }

    /// Posts `raw` to the `source` webhook with `signature` as its `Cartwright-Signature`.
    pub async fn webhook_raw(&self, source: &str, signature: &str, raw: Vec<u8>) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}/webhooks/{source}", self.url))
            .header("Cartwright-Signature", signature)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn capture(&self, event_id: &str, authorization_id: &str, amount: &str) -> (u16, Value) {
        let body = json!({ "id": event_id, "type": "payment.captured", "data": { "authorization_id": authorization_id, "amount": amount } });
        self.webhook_signed("payment", PAYMENT_SECRET, None, &body).await
    }

    pub async fn deliver(&self, event_id: &str, tracking_number: &str) -> (u16, Value) {
        let body =
            json!({ "id": event_id, "type": "delivery.confirmed", "data": { "tracking_number": tracking_number } });
        self.webhook_signed("carrier", CARRIER_SECRET, None, &body).await
    }

    pub async fn ship(&self, token: &str, order_id: &str, tracking: &str) -> (u16, Value) {
        self.post(
            &format!("/admin/v1/orders/{order_id}/ship"),
            Some(token),
            json!({ "tracking_number": tracking, "carrier": "UPS" }),
        )
        .await
    }

    /// An operator's cancel of any order: `POST /admin/v1/orders/{id}/cancel` with the given
    /// token as `X-Operator: alice`, with an Idempotency-Key when one is given.
    pub async fn operator_cancel(&self, token: &str, order_id: &str, key: Option<&str>) -> (u16, Value) {
        let mut rb = self
            .client
            .post(format!("{}/admin/v1/orders/{order_id}/cancel", self.url))
            .bearer_auth(token)
            .header("X-Operator", "alice")
            .json(&json!({ "reason": "checkout stuck past its point of no return" }));
        if let Some(k) = key {
            rb = rb.header("Idempotency-Key", k);
        }
        let resp = rb.send().await.expect("request sent");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A verified customer's PENDING order of `quantity` units of a fresh product (stock 10).
    pub async fn pending_order(&self, quantity: u32) -> (Customer, String, Value) {
        let p = self.product("10.00", 10).await;
        let c = self.verified_customer().await;
        self.add_to_cart(&c.token, json!({ "product_id": p, "quantity": quantity })).await;
        let (status, order) = self.place_order(&c.token, "tok_visa").await;
        let order = self.placed_order(&c.token, status, order).await;
        (c, p, order)
    }

    /// The order a checkout answered with 201, or, when it answered 202 (a server with a
    /// short `checkout.sync_wait_ms`), the order once its saga COMPLETED.
    pub async fn placed_order(&self, token: &str, status: u16, body: Value) -> Value {
        if status == 201 {
            return body;
        }
        assert_eq!(status, 202, "{body}");
        let saga = self.saga_reaches(body["saga_id"].as_str().unwrap(), "COMPLETED").await;
        let order_id = saga["order_id"].as_str().unwrap_or_else(|| panic!("no order: {saga}"));
        let (status, order) = self.get(&format!("/v1/orders/{order_id}"), Some(token)).await;
        assert_eq!(status, 200, "{order}");
        order
    }

    /// A customer's order paid with `tok_refund_flaky` (its first three voids or refunds
    /// fail), cancelled at once: the cancellation's refund and a late capture's refund then
    /// fail as the retry policies the caller set allow. The order as placed.
    pub async fn cancelled_order_with_a_flaky_refund(&self) -> (Customer, Value) {
        let p = self.product("10.00", 10).await;
        let c = self.verified_customer().await;
        self.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
        let (status, order) = self.place_order(&c.token, "tok_refund_flaky").await;
        assert_eq!(status, 201, "{order}");
        let (_, cancelled) = self.cancel_order(&c.token, order["order_id"].as_str().unwrap()).await;
        assert_eq!(cancelled["status"], "CANCELLED", "{cancelled}");
        (c, order)
    }

    /// A pending order whose payment capture `event_id` came with the wrong amount (1.00),
    /// so the event waits for review: what an operator corrects and replays.
    pub async fn order_needing_review(&self, event_id: &str) -> NeedsReview {
        let (customer, _, order) = self.pending_order(1).await;
        let text = |field: &Value| field.as_str().unwrap().to_string();
        let authorization_id = text(&order["payment"]["authorization_id"]);
        let (status, body) = self.capture(event_id, &authorization_id, "1.00").await;
        assert_eq!((status, body["status"].as_str()), (202, Some("needs_review")), "{body}");
        NeedsReview { customer, order_id: text(&order["order_id"]), authorization_id, total: text(&order["total"]) }
    }
}

/// See [`TestApp::order_needing_review`].
pub struct NeedsReview {
    pub customer: Customer,
    pub order_id: String,
    pub authorization_id: String,
    /// The amount a corrected capture carries.
    pub total: String,
}

/// One request to a server that may be gone (the child-process tests): transport errors
/// are returned, not panicked on.
pub async fn raw_call(
    client: &reqwest::Client,
    url: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    key: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value), reqwest::Error> {
    let mut rb = client.request(method, format!("{url}{path}")).timeout(Duration::from_secs(10));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    if let Some(k) = key {
        rb = rb.header("Idempotency-Key", k);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp = rb.send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

/// A checkout of `quantity` (a fresh product, a verified customer, the flaky card) left
/// RETRYING at authorize_payment under the given policy; returns (customer, product, saga).
pub async fn retrying_checkout_with(
    app: &TestApp,
    max_attempts: u32,
    backoff_ms: u64,
    quantity: u32,
) -> (Customer, String, String) {
    app.set_policy("place_order", "authorize_payment", max_attempts, backoff_ms).await;
    let p = app.product("10.00", 5).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": quantity })).await;
    let (status, _, body) = app.place_order_preferring(&c.token, "tok_flaky", "respond-async").await;
    assert_eq!(status, 202, "{body}");
    let saga_id = body["saga_id"].as_str().unwrap().to_string();
    app.saga_reaches(&saga_id, "RETRYING").await;
    // The census (gauges, triage, alerts) counts a transition once its write is durable, a
    // moment after the log shows it: wait until it counts every saga the log has RETRYING.
    app.eventually("the census counts every RETRYING saga", || async {
        let (_, listed) = app.get("/admin/v1/sagas?state=RETRYING&limit=500", Some(ADMIN)).await;
        let text = app.client.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
        let counted: f64 = text
            .lines()
            .filter(|l| l.starts_with("cartwright_sagas{") && l.contains(r#"state="RETRYING""#))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum();
        counted as usize >= listed["sagas"].as_array().map_or(0, Vec::len)
    })
    .await;
    (c, p, saga_id)
}

#[test]
fn each_store_directory_has_its_own_postgres_schema_for_good() {
    let valid = |s: &str| {
        s.len() <= 48
            && s.starts_with("t_")
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let schema = postgres_schema(a.path());
    assert!(valid(&schema) && schema.starts_with("t__tmp"), "{schema}");
    assert_eq!(schema, postgres_schema(a.path()), "a restart finds the same schema");
    assert_ne!(schema, postgres_schema(b.path()));
    let store = a.path().join("Store.v2");
    assert_eq!(postgres_schema(&store), format!("{schema}_store_v2"));

    let long = |end: &str| a.path().join("a-directory-whose-name-is-far-too-long-for-a-schema").join(end);
    let (one, two) = (postgres_schema(&long("one")), postgres_schema(&long("two")));
    assert!(valid(&one) && valid(&two) && one.len() == 48, "{one} {two}");
    assert_ne!(one, two, "past 48 characters the hash keeps them apart");

    let mut settings = test_settings(&a);
    use_postgres(&mut settings, "postgres://u:p@127.0.0.1:55432/db", a.path());
    let pg = &settings.storage.postgres;
    assert_eq!(settings.storage.backend, Backend::Postgres);
    assert_eq!((pg.url.as_str(), pg.schema.as_str(), pg.pool_size), ("postgres://u:p@127.0.0.1:55432/db", &*schema, 2));
}
