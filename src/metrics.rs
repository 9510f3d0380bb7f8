//! Prometheus metrics, rendered by `GET /metrics`.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

fn register<T: prometheus::core::Collector + Clone + 'static>(metric: T) -> T {
    // Registration fails only on a duplicate name, which would be a programming error here.
    let _ = REGISTRY.register(Box::new(metric.clone()));
    metric
}

pub static COMMIT_GROUP_SIZE: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new("cartwright_commit_group_size", "Write sets made durable by one group commit")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0]),
        )
        .expect("valid histogram"),
    )
});

pub static COMMIT_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new("cartwright_commit_seconds", "Time to apply and sync one commit group")
                .buckets(prometheus::exponential_buckets(0.00005, 2.0, 14).expect("valid buckets")),
        )
        .expect("valid histogram"),
    )
});

/// The heaviest record written since start (key + value): how close real data comes to the
/// store's record bound, which keeps sled away from its unsynced blob files.
pub static LARGEST_RECORD_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new("cartwright_store_largest_record_bytes", "Heaviest record written since start, in bytes")
            .expect("valid gauge"),
    )
});

/// Store leases this server holds (PostgreSQL: one per partition it may write to).
pub static LEASES_HELD: LazyLock<IntGauge> = LazyLock::new(|| {
    register(IntGauge::new("cartwright_leases_held", "Store leases this server holds").expect("valid gauge"))
});

/// How many partitions the store's key space has (PostgreSQL; the same on every server),
/// so that an alert can tell partitions nobody holds: the sum of `cartwright_leases_held`
/// below it.
pub static PARTITIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new("cartwright_partitions", "Partitions of the store's key space, each with a lease")
            .expect("valid gauge"),
    )
});

/// Leases this server took (at start, or over from a server that let its lease expire).
pub static LEASE_TAKEOVERS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new("cartwright_lease_takeovers_total", "Store leases this server took").expect("valid counter"),
    )
});

pub static LEASE_RENEWALS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new("cartwright_lease_renewals_total", "Renewals of this server's store leases")
            .expect("valid counter"),
    )
});

/// Write sets refused because another server holds the lease now (the process then stops).
pub static FENCED_WRITES: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "cartwright_fenced_writes_total",
            "Write sets refused because this server lost its store lease",
        )
        .expect("valid counter"),
    )
});

/// Entries of the cache invalidation log this server applied to its caches (its own
/// writes' included: see `services::invalidations`).
pub static CACHE_INVALIDATIONS_APPLIED: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "cartwright_cache_invalidations_applied_total",
            "Cache invalidation log entries this server applied to its in-memory caches",
        )
        .expect("valid counter"),
    )
});

/// Requests a follower forwarded to the leader, by outcome: `forwarded` (the leader
/// answered, whatever its status), `no_leader` (none during a takeover: 503), `failed`
/// (the leader did not answer: 502).
/// Calls this server made to another server (see `http/calls.rs`), by kind (`stock`,
/// `saga`, `census`) and outcome: answered (done or refused there), not_owner (the server
/// called had given the partition up: looked up again), unreachable (never sent), no_answer
/// (sent, no answer: maybe applied; a census not answered in time), no_owner (no server
/// held the partition), failed.
pub static CLUSTER_CALLS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "cartwright_cluster_calls_total",
                "Calls this server made to another server, by kind and outcome",
            ),
            &["kind", "outcome"],
        )
        .expect("valid counter"),
    )
});

pub static FORWARDED_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new("cartwright_forwarded_requests_total", "Requests this follower forwarded to the leader"),
            &["outcome"],
        )
        .expect("valid counter"),
    )
});

/// The process-wide metrics alone (a follower, which has no saga engine yet).
pub fn render() -> String {
    render_with(&Registry::new())
}

/// Raises [`LARGEST_RECORD_BYTES`] to `bytes` if it is heavier (only the committer calls it).
pub fn observe_record_bytes(bytes: usize) {
    if bytes as i64 > LARGEST_RECORD_BYTES.get() {
        LARGEST_RECORD_BYTES.set(bytes as i64);
    }
}

pub static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new("cartwright_http_requests_total", "HTTP requests by route and status"),
            &["route", "status"],
        )
        .expect("valid counter"),
    )
});

pub static HTTP_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new("cartwright_http_request_seconds", "HTTP request latency by route")
                .buckets(prometheus::exponential_buckets(0.0001, 2.0, 16).expect("valid buckets")),
            &["route"],
        )
        .expect("valid histogram"),
    )
});

pub static ACTORS_ACTIVE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(Opts::new("cartwright_actors_active", "Entity actors in memory by kind"), &["kind"])
            .expect("valid gauge"),
    )
});

pub static NOTIFICATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new("cartwright_notification_attempts_total", "Notification delivery attempts by outcome"),
            &["outcome"],
        )
        .expect("valid counter"),
    )
});

/// The process-wide metrics and those of `extra` (a server's own, e.g. its saga engine's).
pub fn render_with(extra: &Registry) -> String {
    // The store's leases are served whatever the backend (0 on the embedded store: no
    // partitions, no leases), so alert rules and dashboards over them hold on either.
    LazyLock::force(&PARTITIONS);
    LazyLock::force(&LEASES_HELD);
    LazyLock::force(&LEASE_TAKEOVERS);
    LazyLock::force(&LEASE_RENEWALS);
    LazyLock::force(&FENCED_WRITES);
    LazyLock::force(&CACHE_INVALIDATIONS_APPLIED);
    let mut families = REGISTRY.gather();
    families.extend(extra.gather());
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&families, &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}
