//! Power-cut test for Cartwright's durability contract: "a 2xx answer means the change is
//! on disk", power loss included.
//!
//! Each cycle mounts [`lazyfs`] (a FUSE file system that keeps unsynced writes in memory)
//! over a fresh backing directory, runs the release server on it, drives the shop from a
//! few concurrent clients while recording every acknowledged change, and at a random
//! instant cuts the power: the file system stops taking changes, the server is SIGKILLed
//! and everything never fsynced is dropped. Then the server restarts on what remained and
//! every acknowledged change must be there (see `verify`).

mod http;
mod lazyfs;
mod rng;
mod server;
mod verify;
mod workload;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use http::Client;
use lazyfs::{LazyFs, Names, PowerSwitch};
use rng::Rng;
use server::{Server, ServerConfig};
use workload::{ClientLog, Shared, Workload};

const USAGE: &str =
    "usage: powercut [--cycles N] [--seed S] [--server PATH] [--clients N] [--small-only] [--strict-dirs] [--relaxed]
                [--min-ms MS] [--max-ms MS] [--work-dir DIR]
  --cycles N     power cuts to run, each on a fresh store (default 5)
  --seed S       replay a run: the same choices and cut instants (default: from the clock)
  --server PATH  the cartwright binary (default: ../../target/release/cartwright from this package)
  --clients N    concurrent clients (default 4)
  --small-only   only small records (no 5,000-character descriptions or 100-variant products)
  --strict-dirs  a new name survives only once its own directory is fsynced (POSIX's letter);
                 by default any fsync commits every earlier name change, as ext4 and xfs do
  --relaxed      run the server with storage.durability = \"relaxed\": a self-check, the cuts
                 are expected to lose acknowledged writes and the run to fail
  --min-ms/--max-ms  the cut comes uniformly between these times after the load starts (1500/5000)
  --work-dir DIR where mount points, backing files and logs go (default: the temp dir)";

struct Options {
    cycles: u64,
    seed: u64,
    server: ServerConfig,
    clients: usize,
    small_only: bool,
    names: Names,
    min_ms: u64,
    max_ms: u64,
    work_dir: PathBuf,
}

fn parse_args() -> Result<Options, String> {
    let default_server = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/cartwright");
    let clock = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    let mut o = Options {
        cycles: 5,
        seed: clock % 1_000_000_007,
        server: ServerConfig { binary: default_server, relaxed: false },
        clients: 4,
        small_only: false,
        names: Names::Journal,
        min_ms: 1500,
        max_ms: 5000,
        work_dir: std::env::temp_dir(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{v}: {e}"));
        match arg.as_str() {
            "--cycles" => o.cycles = number(value()?)?,
            "--seed" => o.seed = number(value()?)?,
            "--server" => o.server.binary = PathBuf::from(value()?),
            "--clients" => o.clients = number(value()?)?.max(1) as usize,
            "--min-ms" => o.min_ms = number(value()?)?,
            "--max-ms" => o.max_ms = number(value()?)?,
            "--work-dir" => o.work_dir = PathBuf::from(value()?),
            "--small-only" => o.small_only = true,
            "--strict-dirs" => o.names = Names::PerDirectory,
            "--relaxed" => o.server.relaxed = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.min_ms > o.max_ms {
        return Err("--min-ms is above --max-ms".into());
    }
    if !o.server.binary.is_file() {
        return Err(format!(
            "no server binary at {} (cargo build --release --bin cartwright)",
            o.server.binary.display()
        ));
    }
    Ok(o)
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mode = if o.server.relaxed { "relaxed (self-check: expect failures)" } else { "durable" };
    let records = if o.small_only { "small records only" } else { "small and large records" };
    let names = if o.names == Names::Journal { "any sync commits names" } else { "names need their directory synced" };
    println!(
        "powercut: seed {}, {} cycles, {} clients, server {mode}, {records}, {names}",
        o.seed, o.cycles, o.clients
    );
    let (mut passed, mut failed) = (0, 0);
    for cycle in 1..=o.cycles {
        let seed = o.seed.wrapping_mul(1_000_003).wrapping_add(cycle);
        match run_cycle(&o, cycle, seed, failed == 0) {
            Ok(()) => passed += 1,
            Err(problems) => {
                failed += 1;
                println!("cycle {cycle}: FAIL ({} problems)", problems.len());
                for p in problems.iter().take(12) {
                    println!("    {p}");
                }
                if problems.len() > 12 {
                    println!("    ... and {} more", problems.len() - 12);
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        let flags = format!(
            "{}{}{}",
            if o.small_only { " --small-only" } else { "" },
            if o.names == Names::PerDirectory { " --strict-dirs" } else { "" },
            if o.server.relaxed { " --relaxed" } else { "" }
        );
        println!("replay: powercut --seed {} --cycles {}{flags}", o.seed, o.cycles);
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// One cycle's directories, removed when it passes (kept with their logs when it fails).
struct CycleDir {
    root: PathBuf,
    backing: PathBuf,
    mount: PathBuf,
}

impl CycleDir {
    fn new(work_dir: &Path, cycle: u64) -> std::io::Result<CycleDir> {
        let root = work_dir.join(format!("powercut-{}-{cycle}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (backing, mount) = (root.join("backing"), root.join("mnt"));
        std::fs::create_dir_all(&backing)?;
        std::fs::create_dir_all(&mount)?;
        Ok(CycleDir { root, backing, mount })
    }
}

/// A failed cycle keeps its server logs, and the first one its backing files too (tens of MB).
fn run_cycle(o: &Options, cycle: u64, seed: u64, keep_backing: bool) -> Result<(), Vec<String>> {
    let dir = CycleDir::new(&o.work_dir, cycle).map_err(|e| vec![format!("work dir: {e}")])?;
    let (fs, power) = LazyFs::new(&dir.backing, o.names);
    let mut config = fuser::Config::default();
    config.mount_options = vec![fuser::MountOption::FSName("powercut".into()), fuser::MountOption::DefaultPermissions];
    let session = fuser::spawn_mount(fs, &dir.mount, &config).map_err(|e| vec![format!("FUSE mount: {e}")])?;
    let result = cycle_on_mount(o, cycle, seed, &dir, &power);
    if let Err(e) = session.umount_and_join() {
        println!("cycle {cycle}: could not unmount {}: {e}", dir.mount.display());
    }
    match &result {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&dir.root);
        }
        Err(_) => {
            if keep_backing {
                let _ = std::fs::write(dir.root.join("durable-tree.txt"), power.durable_listing());
            } else {
                let _ = std::fs::remove_dir_all(&dir.backing);
            }
            println!("cycle {cycle}: logs kept in {}", dir.root.display());
        }
    }
    result
}

fn cycle_on_mount(o: &Options, cycle: u64, seed: u64, dir: &CycleDir, power: &PowerSwitch) -> Result<(), Vec<String>> {
    let data = dir.mount.join("data");
    let server = Server::start(&o.server, &data, &dir.root.join("server-before.log"))
        .map_err(|e| vec![format!("first start: {e}")])?;
    let mut rng = Rng::new(seed);
    let cut_after = Duration::from_millis(rng.range(o.min_ms, o.max_ms));

    let workload = Arc::new(Workload {
        client: Client { addr: server.addr },
        shared: Arc::new(Mutex::new(Shared::default())),
        stop: Arc::new(AtomicBool::new(false)),
        small_only: o.small_only,
    });
    let clients: Vec<_> = (0..o.clients)
        .map(|id| {
            let (w, client_seed) = (workload.clone(), rng.next_u64());
            std::thread::spawn(move || w.run_client(id, client_seed))
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(cut_after);

    // The power cut: nothing changes on the file system from this instant; the server dies
    // (reaped, so none of its requests is still in flight); then the unsynced state goes.
    power.power_off();
    server.kill9();
    let unsynced = power.unsynced_bytes();
    power.restore_power();
    let cut_at = started.elapsed();
    workload.stop.store(true, Ordering::SeqCst);
    let logs: Vec<ClientLog> = clients.into_iter().map(|c| c.join().unwrap_or_default()).collect();
    let shared = workload.shared.lock().unwrap_or_else(|p| p.into_inner());

    let customers: Vec<_> = logs.iter().flat_map(|l| &l.customers).collect();
    let orders: usize = customers.iter().map(|c| c.orders.len()).sum();
    let cancelled = customers.iter().flat_map(|c| &c.orders).filter(|o| o.cancel == workload::Cancel::Acked).count();
    let large = shared.products.iter().filter(|p| p.large).count();
    println!(
        "cycle {cycle}: cut at {:.2} s with {} KiB unsynced; acknowledged: {} categories, {} products ({large} large), \
         {} restocks, {} customers, {orders} orders, {cancelled} cancellations",
        cut_at.as_secs_f64(),
        unsynced / 1024,
        shared.categories.len(),
        shared.products.len(),
        shared.restocks,
        customers.len(),
    );

    let server = Server::start(&o.server, &data, &dir.root.join("server-after.log"))
        .map_err(|e| vec![format!("the server does not start after the cut: {e}")])?;
    let mut check = verify::Check::new(Client { addr: server.addr });
    check.run(&shared, &logs);
    server.stop();
    if check.problems.is_empty() {
        println!("cycle {cycle}: PASS");
        Ok(())
    } else {
        Err(check.problems)
    }
}
