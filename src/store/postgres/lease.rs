//! The store's leases: one server at a time writes to a PostgreSQL store. The key space is
//! cut into `cluster.partitions` partitions (see [`crate::domain::partition`]), each with a
//! row in `leases` (owner, epoch, expiry on the database's clock). Today a server takes
//! every partition at once, in one transaction, with one new epoch (above every epoch any
//! partition had); it renews them all every third of `cluster.lease_ms` in one statement,
//! and another server takes them over once they have expired. Every commit group re-checks,
//! inside its own transaction, that each partition its write sets touch (see
//! [`super::super::homes`]) is still this server's at that epoch, and holds those rows for
//! share until it commits (so a takeover, which locks the rows it takes, waits for it): a
//! server that paused past its lease (GC, SIGSTOP, a partition from the database) can
//! never write in a partition after another took it over. Its late write sets there are
//! refused (fenced), the rest of their group commits, and the next renewal, finding the
//! partition gone, gives it up (see [`keep`]), or stops the process once it has lost every
//! one; a restart waits for the leases like any new server.
//!
//! Sharing the partitions among servers (each a fair share, requests and stock calls
//! forwarded to a partition's owner) is the next step; the rows, epochs and fence are per
//! partition already, so a store's rows do not change when it comes.

use std::time::Duration;

use tokio_postgres::Client;

use super::super::backend::LeaseView;
use super::super::StoreError;
use crate::domain::partition::{Owned, Partition, Partitions};
use crate::metrics;

/// This server's hold on the store: who it is, the epoch it took the leases at, and how
/// many partitions they are (`0..partitions`).
#[derive(Debug, Clone)]
pub(super) struct Holder {
    pub(super) node_id: String,
    pub(super) epoch: i64,
    pub(super) partitions: i32,
    /// The same count, to tell a row's partition.
    pub(super) key_space: Partitions,
    /// The partitions held, in order: every one when taken (today), fewer once another
    /// server took some over (the renewal keeps this server's copy in `keep`).
    pub(super) owned: Vec<Partition>,
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

/// The statement that fences a commit group (parameters: owner, epoch, the partitions
/// the group touches, how many they are): divides by zero (SQLSTATE 22012, which aborts
/// the transaction, so even a pipelined `COMMIT` commits nothing) unless this server still
/// holds each of them at its epoch. It locks their rows `FOR SHARE`, so a takeover of any
/// of them (which locks its row for update) waits until the group is committed, and once
/// it has, the row's new owner is what the next group's check sees. Partitions the group
/// does not touch are neither checked nor locked: another server may own them.
pub(super) fn fence_sql(schema: &str) -> String {
    format!(
        r#"SELECT 1 / ((SELECT count(*) FROM (SELECT 1 FROM "{schema}".leases
                                             WHERE partition_id = ANY($3) AND owner = $1 AND epoch = $2
                                             FOR SHARE) AS held) = $4)::INT"#
    )
}

/// Which of `partitions` this server no longer holds at its epoch (after a group was fenced:
/// its write sets in those are refused, the others may commit).
pub(super) async fn lost(
    client: &Client,
    schema: &str,
    holder: &Holder,
    partitions: &[i32],
) -> Result<Vec<Partition>, StoreError> {
    let sql = format!(
        r#"SELECT p FROM unnest($3::INT[]) AS p
           WHERE NOT EXISTS (SELECT 1 FROM "{schema}".leases WHERE partition_id = p AND owner = $1 AND epoch = $2)"#
    );
    let rows = client.query(&sql, &[&holder.node_id, &holder.epoch, &partitions]).await?;
    Ok(rows.iter().filter_map(|r| u16::try_from(r.get::<_, i32>(0)).ok().map(Partition)).collect())
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

/// Checks that the store was created with `partitions` (recording it if this is the first
/// server of a store that has no count yet): servers that cut the key space differently
/// would each think they own keys the other owns.
pub(super) async fn check_partitions(client: &Client, schema: &str, partitions: Partitions) -> Result<(), StoreError> {
    let count = i64::from(partitions.count());
    let record = format!(
        r#"INSERT INTO "{schema}".cluster_settings (name, value) VALUES ('partitions', $1)
           ON CONFLICT (name) DO NOTHING"#
    );
    client.execute(&record, &[&count]).await?;
    let read = format!(r#"SELECT value FROM "{schema}".cluster_settings WHERE name = 'partitions'"#);
    let fixed: i64 = client.query_one(&read, &[]).await?.get(0);
    if fixed != count {
        return Err(StoreError::Settings(format!(
            "the store's key space has {fixed} partitions, fixed when it was created, but this server has \
             cluster.partitions = {count}: set it to {fixed}"
        )));
    }
    Ok(())
}

/// Takes the leases of every partition; while another server holds an unexpired one,
/// waits for it as `wait` says, or answers `None`.
pub(super) async fn acquire(
    client: &mut Client,
    schema: &str,
    node_id: &str,
    lease_ms: u64,
    partitions: Partitions,
    wait: Wait,
) -> Result<Option<Holder>, StoreError> {
    let (lease_ms, count) = (lease_ms as i64, i32::from(partitions.count()));
    // Every partition has its row before any is taken, so a takeover can lock them all.
    let rows = format!(
        r#"INSERT INTO "{schema}".leases (partition_id, owner, epoch, expires_at)
           SELECT p, '', 0, now() - INTERVAL '1 millisecond' FROM generate_series(0, $1 - 1) AS p
           ON CONFLICT (partition_id) DO NOTHING"#
    );
    client.execute(&rows, &[&count]).await?;
    let mut waited = false;
    loop {
        let taken_at = std::time::Instant::now();
        match take(client, schema, node_id, lease_ms, count).await? {
            Taken::All(epoch) => {
                tracing::info!(node_id, epoch, lease_ms, partitions = count, "took the store's leases");
                metrics::LEASE_TAKEOVERS.inc();
                metrics::LEASES_HELD.set(i64::from(count));
                return Ok(Some(Holder {
                    node_id: node_id.to_string(),
                    epoch,
                    partitions: count,
                    key_space: partitions,
                    owned: partitions.all().collect(),
                    lease_ms,
                    taken_at,
                }));
            }
            Taken::HeldBy { owner, until } if !waited => {
                tracing::warn!(%owner, %until, "another server holds the store's leases; waiting for them to expire");
                waited = true;
            }
            Taken::HeldBy { .. } | Taken::Contended => {}
        }
        let gave_up = |w: &Wait| match w {
            Wait::No => true,
            Wait::Forever => false,
            Wait::Until(stop) => *stop.borrow(),
        };
        if gave_up(&wait) {
            return Ok(None);
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

/// What one try at taking the leases found.
enum Taken {
    /// Every partition, at this epoch.
    All(i64),
    /// None: at least one is another server's until then.
    HeldBy { owner: String, until: String },
    /// None: the database could not serialize the try with another's (CockroachDB); try again.
    Contended,
}

/// Takes every partition in one transaction, or none: their rows locked for update in
/// partition order (two servers trying at once queue, and the second sees the first's
/// leases), then all given this server with one epoch above any they had, if none is
/// another server's unexpired lease.
async fn take(
    client: &mut Client,
    schema: &str,
    node_id: &str,
    lease_ms: i64,
    count: i32,
) -> Result<Taken, StoreError> {
    let lock = format!(
        r#"SELECT owner, expires_at >= now(), expires_at::TEXT, epoch FROM "{schema}".leases
           WHERE partition_id < $1 ORDER BY partition_id FOR UPDATE"#
    );
    let give = format!(
        r#"UPDATE "{schema}".leases SET owner = $1, epoch = $2, expires_at = now() + $3::BIGINT * INTERVAL '1 millisecond'
           WHERE partition_id < $4"#
    );
    let tx = client.transaction().await?;
    let tried = async {
        let rows = tx.query(&lock, &[&count]).await?;
        let held = rows.iter().find(|r| r.get::<_, bool>(1) && r.get::<_, String>(0) != node_id);
        if let Some(r) = held {
            return Ok(Taken::HeldBy { owner: r.get(0), until: r.get(2) });
        }
        let epoch = rows.iter().map(|r| r.get::<_, i64>(3)).max().unwrap_or(0) + 1;
        tx.execute(&give, &[&node_id, &epoch, &lease_ms, &count]).await?;
        Ok::<_, tokio_postgres::Error>(Taken::All(epoch))
    }
    .await;
    let taken = match tried {
        Ok(taken @ Taken::All(_)) => tx.commit().await.map(|()| taken),
        Ok(other) => tx.rollback().await.map(|()| other),
        Err(e) => Err(e),
    };
    match taken {
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE) => Ok(Taken::Contended),
        other => Ok(other?),
    }
}

/// Every partition's lease row, in partition order.
pub(super) async fn all(client: &Client, schema: &str) -> Result<Vec<LeaseView>, StoreError> {
    let sql = format!(
        r#"SELECT partition_id, owner, epoch,
                  to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), expires_at > now()
           FROM "{schema}".leases ORDER BY partition_id"#
    );
    let rows = client.query(&sql, &[]).await?;
    Ok(rows
        .iter()
        .map(|r| LeaseView {
            partition: r.get(0),
            owner: r.get(1),
            epoch: r.get(2),
            expires_at: r.get(3),
            live: r.get(4),
        })
        .collect())
}

/// Extends the leases of this server's partitions; the partitions among them that are no
/// longer its own (taken over), in order.
pub(super) async fn renew(client: &Client, schema: &str, holder: &Holder) -> Result<Vec<u16>, StoreError> {
    let sql = format!(
        r#"UPDATE "{schema}".leases SET expires_at = now() + $3::BIGINT * INTERVAL '1 millisecond'
           WHERE partition_id = ANY($4) AND owner = $1 AND epoch = $2 RETURNING partition_id"#
    );
    let owned: Vec<i32> = holder.owned.iter().map(|p| i32::from(p.0)).collect();
    let rows = client.query(&sql, &[&holder.node_id, &holder.epoch, &holder.lease_ms, &owned]).await?;
    let renewed: std::collections::HashSet<i32> = rows.iter().map(|r| r.get(0)).collect();
    Ok(holder.owned.iter().map(|p| p.0).filter(|p| !renewed.contains(&i32::from(*p))).collect())
}

/// Gives the leases up at once (a clean stop), so the next server need not wait them out.
pub(super) async fn release(client: &Client, schema: &str, holder: &Holder) -> Result<(), StoreError> {
    let sql = format!(
        r#"UPDATE "{schema}".leases SET expires_at = now() - INTERVAL '1 millisecond'
           WHERE partition_id < $3 AND owner = $1 AND epoch = $2"#
    );
    client.execute(&sql, &[&holder.node_id, &holder.epoch, &holder.partitions]).await?;
    metrics::LEASES_HELD.set(0);
    Ok(())
}

/// Renews the lease every third of its length until `stop`. Partitions that another server
/// took over are given up (`ownership` shrinks: their actors and sagas are dropped, their
/// requests forwarded to the new owner, and renewals go on for the rest); once every one
/// is lost, or the lease has expired without a renewal (the database unreachable), the
/// process stops: from then on another server may hold all of it.
pub(super) async fn keep(
    client: std::sync::Arc<Client>,
    schema: String,
    mut holder: Holder,
    clock: std::sync::Arc<LeaseClock>,
    ownership: super::super::Ownership,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let every = Duration::from_millis((holder.lease_ms as u64 / 3).max(50));
    let mut renewed = tokio::time::Instant::now();
    let mut stop = stop;
    while super::tick(every, &mut stop).await {
        let attempt_started = tokio::time::Instant::now();
        match renew(&client, &schema, &holder).await {
            Ok(lost) if lost.is_empty() => {
                metrics::LEASE_RENEWALS.inc();
                renewed = attempt_started;
                clock.renewed(attempt_started.into_std(), holder.lease_ms);
            }
            Ok(lost) => {
                let taken = format!(
                    "another server took the lease over from {} (epoch {}): partitions {}",
                    holder.node_id,
                    holder.epoch,
                    crate::domain::partition::ranges(&lost)
                );
                holder.owned.retain(|p| !lost.contains(&p.0));
                metrics::LEASES_HELD.set(holder.owned.len() as i64);
                if holder.owned.is_empty() {
                    super::super::committer::fail_stop("renewing the store's lease", &taken);
                }
                tracing::warn!("{taken}; gave them up, serving the rest");
                ownership.set(Owned::share(holder.key_space, holder.owned.iter().copied()));
                // The rest were renewed by this very statement.
                metrics::LEASE_RENEWALS.inc();
                renewed = attempt_started;
                clock.renewed(attempt_started.into_std(), holder.lease_ms);
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
        Holder {
            node_id: "n".into(),
            epoch: 1,
            partitions: 1,
            key_space: Partitions::DEFAULT,
            owned: vec![Partition(0)],
            lease_ms: 1000,
            taken_at,
        }
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
