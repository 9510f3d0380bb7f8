//! Servers claiming a fair share of a PostgreSQL store's partitions (see
//! `store/postgres/lease.rs`): stores opened in this process, each as its own server with
//! its own membership, over one schema. What the servers of a cluster will claim once stock
//! calls and webhooks reach their partition's owner; the lease is tested here for it now.

use std::time::{Duration, Instant};

use cartwright::config::{Claim, ClusterSettings, Settings};
use cartwright::domain::partition::{Partition, Partitions};
use cartwright::store::{LeaseView, Membership, Store, StoreError, Table, WriteSet};

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
    cluster.claim = Claim::FairShare;
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
    let a = Store::open_as(storage, &ca).expect("a opens");
    let b = Store::open_as(storage, &cb).expect("b opens");
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
    let c = Store::open_as(storage, &cc).expect("c opens");
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
