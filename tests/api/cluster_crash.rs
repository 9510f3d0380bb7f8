//! Three servers on one PostgreSQL store under a checkout load spread over all three (carts,
//! checkouts, cancels against a flaky payment gateway), through each way a server goes away:
//! `kill -9` of the leader, a leader paused (`SIGSTOP`) past its lease and resumed, and a
//! rolling restart of all three. Clients retry a request the cluster did not answer (no
//! leader during a takeover) with the same Idempotency-Key. Afterwards the books balance
//! exactly as in the single-server crash test ([`crate::crash::check_books`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::crash::{check_books, seed, server_env, set_up, with, Load, Rng};
use crate::fake_gateway::FakeGateway;
use crate::helpers::*;

const WHY: &str = "several servers share a PostgreSQL store; the embedded store has one server";
const LEADING: &str = "leading: this server now serves requests itself";
const FOLLOWING: &str = "following: another server holds the store's lease";
const NAMES: [&str; 3] = ["a", "b", "c"];

/// The three servers by name, and the URLs the shoppers use.
struct Cluster<'a> {
    dir: &'a std::path::Path,
    env: &'a [(&'static str, String)],
    servers: HashMap<&'static str, ServerProcess>,
    urls: Arc<RwLock<Vec<String>>>,
}

impl Cluster<'_> {
    fn start(&mut self, name: &'static str) {
        // Three servers, the database and this test share two cores: a generous gateway
        // timeout keeps this test about crashes and pauses. (A call that times out but was
        // applied is found again and voided by the checkout's compensation: `gateway::`.)
        let extra = [("CARTWRIGHT__CLUSTER__NODE_ID", name), ("CARTWRIGHT__PAYMENT__HTTP__TIMEOUT_MS", "3000")];
        let server = ServerProcess::start_listening(self.dir, &with(self.env, &extra));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(server.logged(LEADING) || server.logged(FOLLOWING)) {
            assert!(Instant::now() < deadline, "{name} serves, itself or by forwarding");
            std::thread::sleep(Duration::from_millis(10));
        }
        self.servers.insert(name, server);
        self.publish();
    }

    fn publish(&self) {
        *self.urls.write().unwrap() = self.servers.values().map(|s| s.url.clone()).collect();
    }

    /// The leader's name, as the cluster view says (answered by the leader itself).
    async fn leader(&self, client: &reqwest::Client) -> &'static str {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for server in self.servers.values() {
                if let Ok((200, view)) =
                    raw_call(client, &server.url, reqwest::Method::GET, "/admin/v1/cluster", Some(ADMIN), None, None)
                        .await
                {
                    let id = view["node_id"].as_str().unwrap_or_default();
                    if let Some(name) = NAMES.iter().find(|n| **n == id) {
                        return name;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the other servers hold every partition (each partition's lease live and
    /// not `gone`'s), as the database says (a server's cluster view would be forwarded to
    /// partition 0's owner, which may be the one paused); how long it took.
    async fn takeover(&self, gone: &str, since: Instant) -> Duration {
        let (db, connection) = tokio_postgres::connect(&postgres_url().unwrap(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let sql = format!(
            r#"SELECT count(*) FROM "{}".leases WHERE owner <> $1 AND expires_at > now()"#,
            postgres_schema(self.dir)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let held: i64 = db.query_one(&sql, &[&gone]).await.unwrap().get(0);
            if held == 16 {
                return since.elapsed();
            }
            assert!(Instant::now() < deadline, "nobody took over from {gone}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// Two workers: the fake gateway (served by this test's runtime) must keep answering while
// the test blocks on a server starting or stopping, or the servers' payment calls time out
// for seconds on end, which is not what this test is about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_lose_nothing_across_kill_9_a_pause_past_the_lease_and_a_rolling_restart() {
    if postgres_only("three_servers_lose_nothing_across_kill_9_a_pause_past_the_lease_and_a_rolling_restart", WHY) {
        return;
    }
    let mut rng = Rng(seed());
    let gw = FakeGateway::start(15, rng.0).await;
    let dir = store_dir();
    let env = server_env(&gw);
    let client = reqwest::Client::new();
    let urls = Arc::new(RwLock::new(Vec::new()));
    let mut cluster = Cluster { dir: dir.path(), env: &env, servers: HashMap::new(), urls: urls.clone() };
    for name in NAMES {
        cluster.start(name);
    }
    let first = cluster.leader(&client).await;
    let (products, tokens) = set_up(&client, &cluster.servers[first].url).await;
    let load = Load::start(&client, &urls, &tokens, &products, &mut rng);

    // kill -9 of partition 0's owner: the others take its partitions over (lease 1 s in
    // tests); the killed one comes back and takes its share again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let leader = cluster.leader(&client).await;
    let killed = Instant::now();
    cluster.servers.remove(leader).unwrap().kill9();
    cluster.publish();
    let took = cluster.takeover(leader, killed).await;
    println!("kill -9 of {leader}: its partitions taken over {took:?} later");
    cluster.start(leader);

    // Partition 0's owner paused past its lease: the others take its partitions over;
    // resumed, its late writes are refused and it gives up what was taken, then serves
    // its share again (or, if the database ended a transaction it was paused in, stops
    // and comes back).
    tokio::time::sleep(Duration::from_millis(800)).await;
    let paused = cluster.leader(&client).await;
    let pid = rustix::process::Pid::from_child(&cluster.servers[paused].child);
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    let since = Instant::now();
    let took = cluster.takeover(paused, since).await;
    println!("SIGSTOP of {paused}: its partitions taken over {took:?} later");
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
    let mut resumed = cluster.servers.remove(paused).unwrap();
    cluster.publish();
    let stopped = resumed.exits_within(Duration::from_secs(3));
    if let Some(status) = stopped {
        assert_eq!(status.code(), Some(cartwright::store::FAIL_STOP_EXIT_CODE));
    }
    let fenced: u64 = resumed
        .log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| l.split(" write sets refused").next().filter(|head| head.len() < l.len()))
        .filter_map(|head| head.split_whitespace().last()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    // Or the lease was found lost at a renewal, or the database had ended the transaction
    // the server was paused in (it waits a lease for it, then closes the connection).
    let lost = resumed.logged("took the lease over from")
        || resumed.logged("idle-in-transaction timeout")
        || resumed.logged("committing a group to PostgreSQL failed");
    assert!(fenced > 0 || lost, "the resumed server says what it lost: {:?}", resumed.log.lock().unwrap());
    println!("{paused} resumed: {fenced} late write sets refused (fenced); stopped: {stopped:?}");
    if stopped.is_some() {
        cluster.start(paused);
    } else {
        cluster.servers.insert(paused, resumed);
        cluster.publish();
    }

    // A rolling restart: each server in turn stops cleanly and starts again.
    for name in NAMES {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let server = cluster.servers.remove(name).unwrap();
        cluster.publish();
        let log = server.log.clone();
        let status = server.terminate();
        let said = whole_log(&log);
        assert!(status.success(), "{name} stops cleanly, not {status:?}; its log: {said}");
        cluster.start(name);
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    load.finish().await;
    // Events a server without partition 0 staged are in the log within the mover's 100 ms.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let any = cluster.servers.values().next().unwrap().url.clone();
    check_books(&client, &any, &gw, &products).await;
}

/// A server's output so far, one line each, for a failure's message.
fn whole_log(log: &std::sync::Mutex<Vec<String>>) -> String {
    log.lock().map(|lines| lines.join("\n")).unwrap_or_default()
}
