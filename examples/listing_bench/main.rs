//! Benchmark (not a test) of the admin listings against table size: fills a fresh store,
//! through `Store::commit` of write sets built as the order actor, the saga coordinator and
//! the services build theirs (rows plus their listing-index entries), with orders of mixed
//! statuses, sagas of mixed states, and as many audit rows, webhook events and notifications
//! (see `logs.rs` for their mix); then at each size times a page of 50 for a rare and a
//! common filter value and the unfiltered first page, as the admin listings read them; and,
//! for comparison, the whole-table scan the order listing did before its index.
//!
//! ```sh
//! cargo build --release --example listing_bench
//! ./target/release/examples/listing_bench --sizes 1000,100000,1000000
//! ```
//! Each figure is the median of `--runs` reads (default 21). Two tables are printed at the
//! end: orders and sagas, then the three logs.

mod logs;

use std::time::{Duration, Instant};

use cartwright::config::{Durability, Settings};
use cartwright::domain::ids::{CustomerId, OrderId, SagaId};
use cartwright::domain::money::Money;
use cartwright::domain::order::{Order, OrderStatus, ShippingAddress};
use cartwright::domain::time::Timestamp;
use cartwright::saga::coordinator::log_write;
use cartwright::saga::{SagaInstance, SagaState};
use cartwright::store::{order_index, reindex, ListingFilter, Page, Store, Table, WriteSet};
use clap::Parser;

#[derive(Parser)]
struct Opts {
    /// Table sizes to measure at, ascending: rows of orders and as many sagas, audit rows,
    /// webhook events and notifications.
    #[arg(long, value_delimiter = ',', default_value = "1000,100000,1000000")]
    sizes: Vec<usize>,
    #[arg(long, default_value_t = 21)]
    runs: usize,
    /// Rows per write set while filling.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Also time opening a store of this many orders and sagas written without their
    /// listing entries (as an older build left them): the one-time index build (0: skip).
    #[arg(long, default_value_t = 0)]
    backfill_rows: usize,
}

const LIMIT: usize = 50;
/// One order in 1,000 is DELIVERED (the rare status); the rest are spread over the others,
/// PENDING most of all.
fn order_status(n: usize) -> OrderStatus {
    match n % 1000 {
        0 => OrderStatus::Delivered,
        1..=599 => OrderStatus::Pending,
        600..=799 => OrderStatus::Confirmed,
        800..=899 => OrderStatus::Shipped,
        _ => OrderStatus::Cancelled,
    }
}

/// One saga in 1,000 is STUCK (the rare state); nine in ten are COMPLETED.
fn saga_state(n: usize) -> SagaState {
    match n % 1000 {
        0 => SagaState::Stuck,
        1..=899 => SagaState::Completed,
        900..=949 => SagaState::Failed,
        _ => SagaState::Retrying,
    }
}

fn order(n: usize) -> Order {
    let address = ShippingAddress {
        name: "Ada Lovelace".into(),
        line1: "12 St James's Square".into(),
        city: "Springfield".into(),
        postal_code: "12345".into(),
        country: "US".into(),
    };
    let total = Money::from_cents(1599);
    let placed = Order::placed(
        OrderId::new(),
        CustomerId::new(),
        vec![],
        (total, Money::ZERO, total),
        address,
        format!("auth_{n}"),
        SagaId::new(),
        Timestamp::now(),
    );
    Order { status: order_status(n), ..placed }
}

struct Bench {
    store: Store,
    place_order: cartwright::saga::definition::SagaDefinition,
    rows: usize,
}

impl Bench {
    /// Adds orders, sagas and log rows up to `size` of each.
    async fn fill_to(&mut self, size: usize, batch: usize) {
        self.fill(size, batch, true).await
    }

    /// As `fill_to`, with or without the listing entries (without them: orders and sagas
    /// only, as the backfill builds the entries of those).
    async fn fill(&mut self, size: usize, batch: usize, indexed: bool) {
        while self.rows < size {
            let upto = (self.rows + batch).min(size);
            let mut ws = WriteSet::new();
            for n in self.rows..upto {
                // As the order actor's CreateOrder writes it, at its current status.
                let o = order(n);
                if indexed {
                    ws = reindex(ws, Table::OrdersByStatus, &[], &order_index(&o));
                }
                ws = ws.put(Table::Orders, o.order_id.as_bytes().to_vec(), &o);
                // As the coordinator logs a saga (first write: no listing entries before).
                let def = &self.place_order;
                let mut saga = SagaInstance::new(
                    def,
                    |s| def.policies()[s],
                    serde_json::json!({"payment_token": "tok"}),
                    None,
                    None,
                );
                saga.state = saga_state(n);
                ws = if indexed {
                    log_write(ws, &saga, None)
                } else {
                    ws.put(Table::Sagas, saga.saga_id.as_bytes().to_vec(), &saga)
                };
                // An unfinished saga is in the active list, as its first write puts it.
                if !saga.state.is_terminal() {
                    ws = ws.put(Table::ActiveSagas, saga.saga_id.as_bytes().to_vec(), &0u32);
                }
                if indexed {
                    ws = logs::rows(ws, n);
                }
            }
            self.store.commit(ws).await.expect("fill commit");
            self.rows = upto;
        }
    }
}

fn median(runs: usize, mut read: impl FnMut() -> usize) -> (Duration, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut rows = 0;
    for _ in 0..runs {
        let started = Instant::now();
        rows = read();
        times.push(started.elapsed());
    }
    times.sort();
    (times[runs / 2], rows)
}

/// A page of the sagas in `state` (and of `saga_type`), found where the saga listing finds them.
fn sagas(store: &Store, state: SagaState, saga_type: Option<&str>) -> usize {
    let (table, prefix) = cartwright::store::saga_listing(Some(state), saga_type).expect("a filtered listing");
    let keep = |s: &SagaInstance| s.state == state && saga_type.is_none_or(|t| t == s.saga_type);
    let page: Page<SagaInstance> = store.page_index((table, &prefix), Table::Sagas, |k| k, None, LIMIT, keep).unwrap();
    page.rows.len()
}

fn by_index<T: cartwright::store::Record>(store: &Store, filter: ListingFilter, main: Table) -> usize {
    let prefix = filter.prefix();
    let page: Page<T> = store.page_index((filter.table(), &prefix), main, |k| k, None, LIMIT, |_| true).unwrap();
    page.rows.len()
}

fn first_page<T: cartwright::store::Record>(store: &Store, table: Table) -> usize {
    store.page_table::<T>(table, None, LIMIT).unwrap().rows.len()
}

/// What the listing did before: every row read and decoded, then filtered.
fn whole_table_scan(store: &Store, status: OrderStatus) -> usize {
    let all = store.page::<Order>(Table::Orders, None, usize::MAX).unwrap();
    all.into_iter().filter(|(_, o)| o.status == status).take(LIMIT).count()
}

/// A fresh store (relaxed durability: filling is not what is measured, reads are the same).
fn fresh_store() -> (tempfile::TempDir, Settings, Bench) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::load_layers(None, false).expect("default settings");
    settings.storage.path = dir.path().to_path_buf();
    settings.storage.durability = Durability::Relaxed;
    let store = Store::open(&settings.storage).expect("store opens");
    let place_order = cartwright::saga::definition::embedded()
        .expect("definitions")
        .into_iter()
        .filter(|d| d.name == "place_order")
        .max_by_key(|d| d.version)
        .expect("place_order");
    (dir, settings, Bench { store, place_order, rows: 0 })
}

/// Times the open that builds the listing indexes of `rows` orders and sagas.
async fn time_backfill(rows: usize, batch: usize) {
    let (_dir, settings, mut bench) = fresh_store();
    bench.fill(rows, batch, false).await;
    bench.store.close().expect("store closes");
    drop(bench);
    let started = Instant::now();
    let store = Store::open(&settings.storage).expect("store opens and builds its indexes");
    // The saga engine builds the saga indexes at its boot, right after the open.
    cartwright::saga::indexes::build_missing(&store).expect("saga indexes build");
    let took = started.elapsed();
    let prefix = ListingFilter::OrderStatus("DELIVERED").prefix();
    let built = store.keys_after(Table::OrdersByStatus, &prefix, None).count();
    println!(
        "\nopen with {rows} orders and {rows} sagas not indexed yet: {:.1} s ({built} DELIVERED entries built)",
        took.as_secs_f64()
    );
    store.close().expect("store closes");
}

#[tokio::main]
async fn main() {
    let opts = Opts::parse();
    let (_dir, _settings, mut bench) = fresh_store();
    let store = bench.store.clone();
    let log_service = cartwright::services::logs::LogService::new(store.clone());
    let entity = logs::listed_entity();
    let log_listings = logs::listings(&log_service, &entity, LIMIT);
    let (mut tables, mut log_tables) = (Vec::new(), Vec::new());
    for &size in &opts.sizes {
        let started = Instant::now();
        bench.fill_to(size, opts.batch).await;
        let fill = started.elapsed();
        eprintln!("filled to {size} rows of each table in {:.1} s", fill.as_secs_f64());
        let us = |(d, rows): (Duration, usize)| format!("{} ({rows})", d.as_micros());
        let r = opts.runs;
        let cols = [
            us(median(r, || by_index::<Order>(&store, ListingFilter::OrderStatus("DELIVERED"), Table::Orders))),
            us(median(r, || by_index::<Order>(&store, ListingFilter::OrderStatus("PENDING"), Table::Orders))),
            us(median(r, || first_page::<Order>(&store, Table::Orders))),
            us(median(r, || sagas(&store, SagaState::Stuck, None))),
            us(median(r, || sagas(&store, SagaState::Completed, None))),
            us(median(r, || sagas(&store, SagaState::Failed, None))),
            us(median(r, || sagas(&store, SagaState::Retrying, Some("place_order")))),
            us(median(r, || first_page::<SagaInstance>(&store, Table::Sagas))),
            us(median(3.min(r), || whole_table_scan(&store, OrderStatus::Delivered))),
        ];
        tables.push(format!("| {size} | {} | {:.1} s |", cols.join(" | "), fill.as_secs_f64()));
        let log_cols: Vec<String> = log_listings.iter().map(|read| us(median(r, read))).collect();
        log_tables.push(format!("| {size} | {} |", log_cols.join(" | ")));
    }
    println!("page of {LIMIT}; median of {} reads; times in microseconds (rows returned)\n", opts.runs);
    println!(
        "| rows (orders + sagas) | orders DELIVERED (0.1%) | orders PENDING (60%) | orders, no filter | sagas STUCK (0.1%) | sagas COMPLETED (90%) | sagas FAILED (5%) | sagas place_order + RETRYING (5%) | sagas, no filter | orders DELIVERED by whole-table scan (before) | fill time (all five tables) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    tables.iter().for_each(|row| println!("{row}"));
    println!("\n| rows (of each log) | {} |", logs::HEADER.join(" | "));
    println!("|---|{}", "---|".repeat(logs::HEADER.len()));
    log_tables.iter().for_each(|row| println!("{row}"));
    drop(log_listings);
    store.close().expect("store closes");
    drop((bench, store, _dir));
    if opts.backfill_rows > 0 {
        time_backfill(opts.backfill_rows, opts.batch).await;
    }
}
