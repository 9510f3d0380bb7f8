//! The store's lease: one server at a time writes to a PostgreSQL store. The server holding
//! the row in `leases` (owner, epoch, expiry on the database's clock) renews it every third
//! of `cluster.lease_ms`; another server takes it once it has expired, with the next epoch.
//! Every commit group re-checks, inside its own transaction, that the lease is still this
//! server's at the epoch it took (and holds the row for share until it commits, so a
//! takeover waits for it): a server that paused past its lease (GC, SIGSTOP, a partition
//! from the database) can never write after another took over. Its late write is refused
//! (fenced) and the process stops; a restart waits for the lease like any new server.
//!
//! One lease for the whole store today (partition 0); partitions of the key space, each
//! with its own lease, are the next step toward several servers sharing one database.

use std::time::Duration;

use tokio_postgres::Client;

use super::super::StoreError;
use crate::metrics;

/// The partition every key belongs to, until there are more.
pub(super) const WHOLE_STORE: i32 = 0;

/// This server's hold on the store: who it is and the epoch it took the lease at.
#[derive(Debug, Clone)]
pub(super) struct Holder {
    pub(super) node_id: String,
    pub(super) epoch: i64,
    pub(super) lease_ms: i64,
    /// When the statement that took the lease was sent (its expiry counts from later).
    pub(super) taken_at: std::time::Instant,
}

/// Until when, on this process's monotonic clock, the lease is surely still this server's:
/// a lease from the sending of the last statement that took or renewed it, less a tenth
/// for clock drift. The database's fence guards every write; this guards what the fence
/// cannot reach, calls to the outside (a payment gateway): a server paused past its lease
/// (the monotonic clock runs on through SIGSTOP) must not authorize a payment once resumed.
#[derive(Debug)]
pub(super) struct LeaseClock {
    origin: std::time::Instant,
    valid_until_ms: std::sync::atomic::AtomicU64,
}

impl LeaseClock {
    pub(super) fn new(holder: &Holder) -> LeaseClock {
        let clock = LeaseClock { origin: holder.taken_at, valid_until_ms: 0.into() };
        clock.renewed(holder.taken_at, holder.lease_ms);
        clock
    }

    /// A statement sent at `sent` took or renewed the lease.
    pub(super) fn renewed(&self, sent: std::time::Instant, lease_ms: i64) {
        let until = sent.saturating_duration_since(self.origin).as_millis() as u64 + lease_ms as u64 * 9 / 10;
        self.valid_until_ms.fetch_max(until, std::sync::atomic::Ordering::AcqRel);
    }

    /// The lease was given up: nothing more may be done in its name.
    pub(super) fn lapse(&self) {
        self.valid_until_ms.store(0, std::sync::atomic::Ordering::Release);
    }

    pub(super) fn holds(&self) -> bool {
        (self.origin.elapsed().as_millis() as u64) < self.valid_until_ms.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// The statement that fences a commit group: divides by zero (SQLSTATE 22012, which aborts
/// the transaction, so even a pipelined `COMMIT` commits nothing) unless this server
/// still holds the lease at its epoch. `FOR SHARE` keeps a takeover waiting until the group
/// is committed.
pub(super) fn fence_sql(schema: &str) -> String {
    format!(
        r#"SELECT 1 / count(*)::INT FROM (SELECT 1 FROM "{schema}".leases
               WHERE partition_id = {WHOLE_STORE} AND owner = $1 AND epoch = $2 FOR SHARE) AS held"#
    )
}

/// Whether to wait for a lease another server holds.
#[derive(Debug, Clone)]
pub enum Wait {
    /// Answer `None` at once.
    No,
    /// Until it is free.
    Forever,
    /// Until it is free, or until the value turns `true` (then `None`): a server asked to
    /// stop while it waits.
    Until(tokio::sync::watch::Receiver<bool>),
}

/// Takes the lease; while another server holds an unexpired one, waits for it as `wait`
/// says, or answers `None`.
pub(super) async fn acquire(
    client: &Client,
    schema: &str,
    node_id: &str,
    lease_ms: u64,
    wait: Wait,
) -> Result<Option<Holder>, StoreError> {
    let lease_ms = lease_ms as i64;
    let take = format!(
        r#"INSERT INTO "{schema}".leases AS l (partition_id, owner, epoch, expires_at)
           VALUES ({WHOLE_STORE}, $1, 1, now() + $2::BIGINT * INTERVAL '1 millisecond')
           ON CONFLICT (partition_id) DO UPDATE
             SET owner = excluded.owner, epoch = l.epoch + 1, expires_at = excluded.expires_at
             WHERE l.expires_at < now() OR l.owner = excluded.owner
           RETURNING epoch"#
    );
    let holder = format!(r#"SELECT owner, expires_at::TEXT FROM "{schema}".leases WHERE partition_id = {WHOLE_STORE}"#);
    let mut waited = false;
    loop {
        let taken_at = std::time::Instant::now();
        if let Some(row) = client.query_opt(&take, &[&node_id, &lease_ms]).await? {
            let epoch: i64 = row.get(0);
            tracing::info!(node_id, epoch, lease_ms, "took the store's lease");
            metrics::LEASE_TAKEOVERS.inc();
            metrics::LEASES_HELD.set(1);
            return Ok(Some(Holder { node_id: node_id.to_string(), epoch, lease_ms, taken_at }));
        }
        let gave_up = |w: &Wait| match w {
            Wait::No => true,
            Wait::Forever => false,
            Wait::Until(stop) => *stop.borrow(),
        };
        if gave_up(&wait) {
            return Ok(None);
        }
        if !waited {
            if let Some(row) = client.query_opt(&holder, &[]).await? {
                let (owner, until): (String, String) = (row.get(0), row.get(1));
                tracing::warn!(%owner, %until, "another server holds the store's lease; waiting for it to expire");
            }
            waited = true;
        }
        let pause = tokio::time::sleep(Duration::from_millis((lease_ms as u64 / 5).max(50)));
        match &wait {
            Wait::Until(stop) => {
                let mut stop = stop.clone();
                tokio::select! {
                    _ = pause => {}
                    _ = stop.changed() => {}
                }
            }
            _ => pause.await,
        }
    }
}

/// Extends the lease; `false` if it is no longer this server's (taken over).
pub(super) async fn renew(client: &Client, schema: &str, holder: &Holder) -> Result<bool, StoreError> {
    let sql = format!(
        r#"UPDATE "{schema}".leases SET expires_at = now() + $3::BIGINT * INTERVAL '1 millisecond'
           WHERE partition_id = {WHOLE_STORE} AND owner = $1 AND epoch = $2"#
    );
    let n = client.execute(&sql, &[&holder.node_id, &holder.epoch, &holder.lease_ms]).await?;
    Ok(n == 1)
}

/// Gives the lease up at once (a clean stop), so the next server need not wait it out.
pub(super) async fn release(client: &Client, schema: &str, holder: &Holder) -> Result<(), StoreError> {
    let sql = format!(
        r#"UPDATE "{schema}".leases SET expires_at = now() - INTERVAL '1 millisecond'
           WHERE partition_id = {WHOLE_STORE} AND owner = $1 AND epoch = $2"#
    );
    client.execute(&sql, &[&holder.node_id, &holder.epoch]).await?;
    metrics::LEASES_HELD.set(0);
    Ok(())
}

/// Renews the lease every third of its length until `stop`; stops the process once the
/// lease is lost, or once it has expired without a renewal (the database unreachable):
/// from then on another server may hold it.
pub(super) async fn keep(
    client: std::sync::Arc<Client>,
    schema: String,
    holder: Holder,
    clock: std::sync::Arc<LeaseClock>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let every = Duration::from_millis((holder.lease_ms as u64 / 3).max(50));
    let mut renewed = tokio::time::Instant::now();
    let mut stop = stop;
    while super::tick(every, &mut stop).await {
        let attempt_started = tokio::time::Instant::now();
        match renew(&client, &schema, &holder).await {
            Ok(true) => {
                metrics::LEASE_RENEWALS.inc();
                renewed = attempt_started;
                clock.renewed(attempt_started.into_std(), holder.lease_ms);
            }
            Ok(false) => {
                metrics::LEASES_HELD.set(0);
                super::super::committer::fail_stop(
                    "renewing the store's lease",
                    &format!("another server took the lease over from {} (epoch {})", holder.node_id, holder.epoch),
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not renew the store's lease; trying again");
                if renewed.elapsed() >= Duration::from_millis(holder.lease_ms as u64) {
                    super::super::committer::fail_stop(
                        "renewing the store's lease",
                        &format!("not renewed for a whole lease: {e}"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(taken_ago: Duration) -> Holder {
        let taken_at = std::time::Instant::now().checked_sub(taken_ago).expect("the clock goes back that far");
        Holder { node_id: "n".into(), epoch: 1, lease_ms: 1000, taken_at }
    }

    #[test]
    fn the_lease_holds_for_nine_tenths_of_a_lease_from_the_statement_that_took_or_renewed_it() {
        assert!(LeaseClock::new(&holder(Duration::from_millis(100))).holds());
        let paused = LeaseClock::new(&holder(Duration::from_millis(950)));
        assert!(!paused.holds(), "past 900 ms of a 1 s lease: maybe taken over already");
        paused.renewed(std::time::Instant::now(), 1000);
        assert!(paused.holds(), "a renewal sent just now holds it again");
        paused.renewed(std::time::Instant::now() - Duration::from_secs(5), 1000);
        assert!(paused.holds(), "an older renewal answering late never shortens it");
    }
}
