//! Benchmark (not a test) of the operators' triage: fills a fresh store with finished sagas
//! and STUCK ones (in the active list, as the coordinator leaves them), spread over a few
//! steps and errors, then times
//! - the census's start: the unfinished sagas read from the active list (before the
//!   server listens) and the background count of the finished ones;
//! - `SagaCensus::triage()` and its JSON, as `GET /admin/v1/triage` computes them;
//! - `GET /admin/v1/triage` over HTTP against the server started on that store;
//! - the console's triage page (`GET /console/triage`, HTML) for a signed-in operator.
//!
//! ```sh
//! cargo build --release --example triage_bench
//! ./target/release/examples/triage_bench --finished 100000 --stuck 1000
//! ```
//! Each figure is the median of `--runs` reads (default 21).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cartwright::config::{Durability, Settings};
use cartwright::domain::time::Timestamp;
use cartwright::saga::census::SagaCensus;
use cartwright::saga::coordinator::log_write;
use cartwright::saga::definition::SagaDefinition;
use cartwright::saga::instance::{Phase, StepState};
use cartwright::saga::{SagaInstance, SagaState};
use cartwright::store::{Store, Table, WriteSet};
use clap::Parser;

#[derive(Parser)]
struct Opts {
    /// Finished sagas (COMPLETED, one in 20 FAILED).
    #[arg(long, default_value_t = 100_000)]
    finished: usize,
    /// STUCK sagas, unfinished.
    #[arg(long, default_value_t = 1_000)]
    stuck: usize,
    #[arg(long, default_value_t = 21)]
    runs: usize,
    /// Sagas per write set while filling.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
}

const ADMIN_TOKEN: &str = "triage-bench-admin-token";

fn definition(name: &str) -> SagaDefinition {
    cartwright::saga::definition::embedded()
        .expect("definitions")
        .into_iter()
        .filter(|d| d.name == name)
        .max_by_key(|d| d.version)
        .expect("a definition")
}

fn instance(def: &SagaDefinition, n: usize) -> SagaInstance {
    let input = serde_json::json!({ "payment_token": "tok", "order_id": uuid::Uuid::now_v7() });
    let mut saga = SagaInstance::new(def, |s| def.policies()[s], input, None, None);
    saga.state = if n.is_multiple_of(20) { SagaState::Failed } else { SagaState::Completed };
    saga
}

/// STUCK as a step that kept failing leaves a saga: one of four steps, one of three causes
/// (one of them naming an id, as real errors do).
fn stuck(def: &SagaDefinition, n: usize) -> SagaInstance {
    let mut saga = instance(def, n);
    let step = n % def.steps.len().min(4);
    saga.state = SagaState::Stuck;
    saga.phase = Phase::Forward;
    saga.cursor = step as u32;
    saga.updated_at = Timestamp::now().plus_millis(-(n as i64) * 1000);
    let w = &mut saga.steps[step].step;
    w.state = StepState::Failed;
    w.attempts = 3;
    w.last_error = Some(match n % 3 {
        0 => "gateway timeout (retries exhausted)".to_string(),
        1 => format!("order {} not found", uuid::Uuid::now_v7()),
        _ => "inventory unavailable (retries exhausted)".to_string(),
    });
    saga
}

async fn fill(store: &Store, opts: &Opts) {
    let (place, cancel) = (definition("place_order"), definition("cancel_order"));
    let total = opts.finished + opts.stuck;
    let mut n = 0;
    while n < total {
        let mut ws = WriteSet::new();
        for i in n..(n + opts.batch).min(total) {
            let def = if i % 3 == 0 { &cancel } else { &place };
            let saga = if i < opts.finished { instance(def, i) } else { stuck(def, i) };
            ws = log_write(ws, &saga, None);
            ws = match saga.state.is_terminal() {
                true => cartwright::store::retained::saga_finished(ws, saga.saga_id, Timestamp::now()),
                false => ws.put(Table::ActiveSagas, saga.saga_id.as_bytes().to_vec(), &0u32),
            };
        }
        store.commit(ws).await.expect("fill commit");
        n = (n + opts.batch).min(total);
    }
}

fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

/// The census as the engine seeds it at start: the active list read synchronously, then
/// the finished sagas counted (here in the foreground, to time it).
fn census_of(store: &Store) -> (Arc<SagaCensus>, Duration, Duration) {
    let census = Arc::new(SagaCensus::new(store.owned().count()));
    let started = Instant::now();
    let active: Vec<SagaInstance> = store
        .scan_prefix_keys(Table::ActiveSagas, &[], usize::MAX)
        .expect("active list")
        .iter()
        .filter_map(|k| store.get::<SagaInstance>(Table::Sagas, k).expect("saga"))
        .collect();
    census.seed_unfinished(&active);
    let unfinished = started.elapsed();
    let started = Instant::now();
    census.count_finished(store).expect("finished sagas counted");
    (census, unfinished, started.elapsed())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let opts = Opts::parse();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::load_layers(None, false).expect("default settings");
    settings.storage.path = dir.path().to_path_buf();
    settings.storage.durability = Durability::Relaxed;
    settings.server.addr = "127.0.0.1:0".parse().unwrap();
    settings.auth.admin_token = ADMIN_TOKEN.into();
    let store = Store::open(&settings.storage).expect("store opens");
    let started = Instant::now();
    fill(&store, &opts).await;
    println!(
        "{} finished and {} STUCK sagas written in {:.1} s",
        opts.finished,
        opts.stuck,
        started.elapsed().as_secs_f64()
    );

    let (census, unfinished, finished) = census_of(&store);
    let triage = census.triage();
    println!("census: unfinished sagas read from the active list {} (before listening)", ms(unfinished));
    println!("census: finished sagas counted from the index {} (in the background)", ms(finished));
    println!("triage: {} groups, counts {:?}", triage.groups.len(), triage.counts);
    let t = median(opts.runs, || drop(census.triage()));
    let j = median(opts.runs, || drop(census.triage().to_json(Timestamp::now()).to_string()));
    println!("SagaCensus::triage(): {} (median of {}); with its JSON text: {}", ms(t), opts.runs, ms(j));
    store.close().expect("store closes");
    drop(store);

    http(settings, opts.runs).await;
}

/// The server on the filled store; `GET /admin/v1/triage` timed once its census is complete.
async fn http(settings: Settings, runs: usize) {
    let started = Instant::now();
    let server = cartwright::app::spawn(settings).await.expect("the server listens");
    let addr = server.addr;
    println!("server listening after {}", ms(started.elapsed()));
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/admin/v1/triage");
    let get = || async {
        let resp = client.get(&url).bearer_auth(ADMIN_TOKEN).send().await.expect("triage answers");
        assert_eq!(resp.status().as_u16(), 200);
        resp.json::<serde_json::Value>().await.expect("JSON")
    };
    while get().await["complete"] != true {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("census complete after {}", ms(started.elapsed()));
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        get().await;
        times.push(t.elapsed());
    }
    times.sort();
    println!("GET /admin/v1/triage: {} (median of {runs}), slowest {}", ms(times[runs / 2]), ms(times[runs - 1]));
    console_page(&addr.to_string(), runs).await;
    server.stop().await.expect("server stops cleanly");
}

/// The operator's landing page: signs in to the console once, then times `GET /console/triage`.
async fn console_page(addr: &str, runs: usize) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let signed = client
        .post(format!("http://{addr}/console/sign-in"))
        .form(&[("token", ADMIN_TOKEN), ("name", "bench")])
        .send()
        .await
        .expect("sign-in answers");
    let cookie = signed
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("the console signs the bench in")
        .to_string();
    let page = format!("http://{addr}/console/triage");
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let resp = client.get(&page).header("cookie", &cookie).send().await.expect("the page answers");
        assert_eq!(resp.status().as_u16(), 200);
        let html = resp.text().await.expect("HTML");
        assert!(html.contains("triage-groups"), "the page holds the groups");
        times.push(t.elapsed());
    }
    times.sort();
    println!("GET /console/triage (HTML): {} (median of {runs}), slowest {}", ms(times[runs / 2]), ms(times[runs - 1]));
}
