//! The store's leases: which server writes to which part of a PostgreSQL store. The key
//! space is cut into `cluster.partitions` partitions (see [`crate::domain::partition`]),
//! each with a row in `leases` (owner, epoch, expiry on the database's clock). Each take of
//! a partition gives it an epoch above its own previous one ([`Held`]: this server's
//! partitions and their epochs). A server claims a fair share of the partitions, taken and
//! given up while it serves (see [`fair_share`] and [`Keeper::balance`]). It renews
//! them every third of `cluster.lease_ms` in one statement, and another server takes a
//! partition over once its lease has expired. Every commit group re-checks, inside its own
//! transaction, that each partition its write sets touch (see [`super::super::homes`]) is
//! still this server's at the epoch it took it at, and holds those rows for share until it
//! commits (so a takeover, which locks the rows it takes, waits for it): a server that
//! paused past its lease (GC, SIGSTOP, a partition from the database) can never write in a
//! partition after another took it over. Its late write sets there are refused (fenced),
//! the rest of their group commits, and the next renewal, finding the partition gone,
//! gives it up (see [`keep`]).

use std::time::Duration;

use tokio_postgres::Client;

use super::super::backend::LeaseView;
use super::super::StoreError;
use crate::domain::partition::{Owned, Partition, Partitions};
use crate::metrics;

/// This server's hold on the store: who it is, how many partitions the key space has, and
/// the lease's length.
#[derive(Debug, Clone)]
pub(super) struct Holder {
    pub(super) node_id: String,
    pub(super) key_space: Partitions,
    pub(super) lease_ms: i64,
    /// When the statement that took the lease was sent (its expiry counts from later).
    pub(super) taken_at: std::time::Instant,
}

/// The partitions this server holds, each with the epoch it took it at, in partition order.
/// An epoch is a partition's own: each take of a partition gives it one above any it had,
/// so the fence tells this server's writes from a later owner's, and a partition's staged
/// log entries sort by owner (see [`crate::store::keys::staged_log`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Held(Vec<(Partition, i64)>);

impl Held {
    pub(super) fn new(mut pairs: Vec<(Partition, i64)>) -> Held {
        pairs.sort();
        pairs.dedup_by_key(|(p, _)| *p);
        Held(pairs)
    }

    /// Each partition with its epoch, in partition order.
    pub(super) fn pairs(&self) -> &[(Partition, i64)] {
        &self.0
    }

    pub(super) fn epoch_of(&self, partition: Partition) -> Option<i64> {
        self.0.binary_search_by_key(&partition, |(p, _)| *p).ok().map(|i| self.0[i].1)
    }

    pub(super) fn contains(&self, partition: Partition) -> bool {
        self.epoch_of(partition).is_some()
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These, less `gone`.
    pub(super) fn without(&self, gone: &[Partition]) -> Held {
        Held(self.0.iter().copied().filter(|(p, _)| !gone.contains(p)).collect())
    }

    /// What to give up to hold `fair` partitions: the highest first, the shared one last
    /// (the shared records' work moves with it).
    pub(super) fn surplus(&self, fair: usize) -> Vec<Partition> {
        let mut surplus: Vec<Partition> = self.0.iter().map(|(p, _)| *p).rev().collect();
        surplus.sort_by_key(|p| *p == Partition::SHARED);
        surplus.truncate(self.0.len().saturating_sub(fair));
        surplus
    }

    /// The share the rest of the server sees (without epochs).
    pub(super) fn owned(&self, key_space: Partitions) -> Owned {
        Owned::share(key_space, self.0.iter().map(|(p, _)| *p))
    }

    /// The held ones among `partitions` as the lease table's columns: partition ids and
    /// their epochs, in two arrays (the statements `unnest` them into pairs).
    pub(super) fn rows(&self, partitions: impl IntoIterator<Item = Partition>) -> (Vec<i32>, Vec<i64>) {
        partitions.into_iter().filter_map(|p| self.epoch_of(p).map(|e| (i32::from(p.0), e))).unzip()
    }

    /// Every held partition as the lease table's columns (see [`Held::rows`]).
    pub(super) fn all_rows(&self) -> (Vec<i32>, Vec<i64>) {
        self.0.iter().map(|(p, e)| (i32::from(p.0), *e)).unzip()
    }
}

/// The held partitions as of now, shared by the lease's keeper (which changes them) and the
/// committer's writer (which fences every group with them).
#[derive(Debug, Clone)]
pub(super) struct Leases(std::sync::Arc<tokio::sync::watch::Sender<std::sync::Arc<Held>>>);

impl Leases {
    pub(super) fn new(held: Held) -> Leases {
        Leases(std::sync::Arc::new(tokio::sync::watch::Sender::new(std::sync::Arc::new(held))))
    }

    pub(super) fn current(&self) -> std::sync::Arc<Held> {
        self.0.borrow().clone()
    }

    pub(super) fn set(&self, held: Held) {
        self.0.send_replace(std::sync::Arc::new(held));
    }
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

/// The statement that fences a commit group (parameters: owner, the partitions the group
/// touches and the epoch this server took each at, how many they are): divides by zero
/// (SQLSTATE 22012, which aborts the transaction, so even a pipelined `COMMIT` commits
/// nothing) unless this server still holds each of them at that epoch. It locks their
/// rows `FOR SHARE`, so a takeover of any of them (which locks its row for update) waits
/// until the group is committed, and once it has, the row's new owner is what the next
/// group's check sees. Partitions the group does not touch are neither checked nor locked:
/// another server may own them.
pub(super) fn fence_sql(schema: &str) -> String {
    format!(
        r#"SELECT 1 / ((SELECT count(*) FROM (SELECT 1 FROM "{schema}".leases
                                             WHERE owner = $1 AND (partition_id, epoch) IN
                                                   (SELECT * FROM unnest($2::INT[], $3::BIGINT[]))
                                             FOR SHARE) AS held) = $4)::INT"#
    )
}

/// Which of the `rows` (partitions and epochs, see [`Held::rows`]) this server no longer
/// holds at that epoch (after a group was fenced: its write sets in those are refused, the
/// others may commit).
pub(super) async fn lost(
    client: &Client,
    schema: &str,
    node_id: &str,
    rows: &(Vec<i32>, Vec<i64>),
) -> Result<Vec<Partition>, StoreError> {
    let sql = format!(
        r#"SELECT h.p FROM unnest($2::INT[], $3::BIGINT[]) AS h(p, e)
           WHERE NOT EXISTS (SELECT 1 FROM "{schema}".leases WHERE partition_id = h.p AND owner = $1 AND epoch = h.e)"#
    );
    let found = client.query(&sql, &[&node_id, &rows.0, &rows.1]).await?;
    Ok(found.iter().filter_map(|r| u16::try_from(r.get::<_, i32>(0)).ok().map(Partition)).collect())
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

/// How many partitions an opener of the store takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// A fair share, balanced while it serves: a server.
    Share,
    /// Every partition, once none is another's, kept whoever joins: a tool that writes
    /// anywhere (a restore, an operator's command run on the store).
    Whole,
}

/// Takes what `claim` says of the partitions whose lease is free (a fair share, see
/// [`fair_share`], or all of them); while it cannot, waits as `wait` says, or answers
/// `None`. A store from before partitions (one lease row, held by a server of that build,
/// which writes everywhere under it) is taken only once that lease is free: its other rows
/// are added as that lease is, so each partition is then taken above its epoch. (A server
/// of that build renews its one row only: stop those servers before starting this build's.)
pub(super) async fn acquire(
    client: &mut Client,
    schema: &str,
    node_id: &str,
    lease_ms: u64,
    partitions: Partitions,
    claim: Claim,
    wait: Wait,
) -> Result<Option<(Holder, Held)>, StoreError> {
    let (lease_ms, count) = (lease_ms as i64, i32::from(partitions.count()));
    // Every partition has its row before any is taken: a new store's free, those added to
    // a store from before partitions held as its one lease is (by its server, at its epoch,
    // until it expires), since that server writes in every partition.
    let rows = format!(
        r#"INSERT INTO "{schema}".leases (partition_id, owner, epoch, expires_at)
           SELECT p, COALESCE(old.owner, ''), COALESCE(old.epoch, 0),
                  COALESCE(old.expires_at, now() - INTERVAL '1 millisecond')
           FROM generate_series(0, $1 - 1) AS p
           LEFT JOIN (SELECT owner, epoch, expires_at FROM "{schema}".leases ORDER BY epoch DESC LIMIT 1) AS old ON true
           ON CONFLICT (partition_id) DO NOTHING"#
    );
    let added = client.execute(&rows, &[&count]).await?;
    let from_before_partitions = added > 0 && added < count as u64;
    let mut waited = false;
    loop {
        let taken_at = std::time::Instant::now();
        let holder = Holder { node_id: node_id.to_string(), key_space: partitions, lease_ms, taken_at };
        let wants_all = from_before_partitions || claim == Claim::Whole;
        if wants_all && held_by_another(client, schema, node_id).await? {
            if !waited {
                tracing::warn!(
                    "another server holds the store's leases (a store from before partitions); waiting for them to expire"
                );
                waited = true;
            }
            if !pause(&wait, lease_ms).await {
                return Ok(None);
            }
            continue;
        }
        let fair = match claim {
            Claim::Share => fair_share(client, schema, &holder).await?,
            Claim::Whole => usize::from(partitions.count()),
        };
        let held = take_free(client, schema, &holder, fair).await?;
        if claim == Claim::Whole && held.len() < fair {
            // Another server took some in between: give these back and wait for all.
            release(client, schema, node_id, &held).await?;
        } else if !held.is_empty() {
            tracing::info!(node_id, lease_ms, "took {} ({fair} a server)", describe(&held));
            metrics::LEASE_TAKEOVERS.inc();
            metrics::LEASES_HELD.set(held.len() as i64);
            return Ok(Some((holder, held)));
        }
        if !waited {
            tracing::warn!("other servers hold every partition; waiting for one to be given up or to expire");
            waited = true;
        }
        if !pause(&wait, lease_ms).await {
            return Ok(None);
        }
    }
}

/// Waits a fifth of a lease before the next try, as `wait` says: `false` to give up (at
/// once with [`Wait::No`], or once `Wait::Until`'s value turns true).
async fn pause(wait: &Wait, lease_ms: i64) -> bool {
    let gave_up = |w: &Wait| match w {
        Wait::No => true,
        Wait::Forever => false,
        Wait::Until(stop) => *stop.borrow(),
    };
    if gave_up(wait) {
        return false;
    }
    let pause = tokio::time::sleep(Duration::from_millis((lease_ms as u64 / 5).max(50)));
    match wait {
        Wait::Until(stop) => {
            let mut stop = stop.clone();
            tokio::select! {
                _ = pause => {}
                _ = stop.changed() => {}
            }
        }
        _ => pause.await,
    }
    !gave_up(wait)
}

/// Whether another server holds an unexpired lease.
async fn held_by_another(client: &Client, schema: &str, node_id: &str) -> Result<bool, StoreError> {
    let sql = format!(r#"SELECT EXISTS (SELECT 1 FROM "{schema}".leases WHERE owner <> $1 AND expires_at >= now())"#);
    Ok(client.query_one(&sql, &[&node_id]).await?.get(0))
}

/// Partitions and their epochs, as a log line says them: `0-7 (epoch 1)`.
fn describe(held: &Held) -> String {
    let numbers: Vec<u16> = held.pairs().iter().map(|(p, _)| p.0).collect();
    let epochs: std::collections::BTreeSet<String> = held.pairs().iter().map(|(_, e)| e.to_string()).collect();
    let epochs = epochs.into_iter().collect::<Vec<_>>().join(", ");
    format!("partitions {} (epoch {epochs})", crate::domain::partition::ranges(&numbers))
}

/// This server's fair share of the partitions: `ceil(partitions / live servers)`, a server
/// being live while its heartbeat (see [`super::membership`], every third of a lease) is
/// younger than half a lease; this one counts whatever its row says. Every partition is
/// someone's share: the shares of the live servers add up to at least the count. Half a
/// lease, not a whole one: a server that died renewed its leases last at most a third of a
/// lease before its last heartbeat, so by the time they expire it no longer counts, and
/// the others take all of its partitions at once instead of half a share first. Counting a
/// live server out for a moment (a late heartbeat) only lets the others take free
/// partitions, never one it holds.
async fn fair_share(client: &Client, schema: &str, holder: &Holder) -> Result<usize, StoreError> {
    let sql = format!(
        r#"SELECT count(*) FROM "{schema}".nodes
           WHERE node_id <> $1 AND heartbeat_at > now() - $2::BIGINT * INTERVAL '1 millisecond'"#
    );
    let others: i64 = client.query_one(&sql, &[&holder.node_id, &(holder.lease_ms / 2)]).await?.get(0);
    let live = usize::try_from(others).unwrap_or(0) + 1;
    Ok(usize::from(holder.key_space.count()).div_ceil(live))
}

/// Takes up to `want` partitions whose lease has expired (given up, released, or their
/// server gone), lowest first, each at one epoch above its own: the partitions taken.
/// Two servers taking at once never take one twice: the second's update waits for the
/// first's row lock and then finds the row no longer expired.
async fn take_free(client: &Client, schema: &str, holder: &Holder, want: usize) -> Result<Held, StoreError> {
    if want == 0 {
        return Ok(Held::default());
    }
    let sql = format!(
        r#"UPDATE "{schema}".leases
           SET owner = $1, epoch = epoch + 1, expires_at = now() + $2::BIGINT * INTERVAL '1 millisecond'
           WHERE partition_id IN (SELECT partition_id FROM "{schema}".leases WHERE expires_at < now()
                                  ORDER BY partition_id LIMIT $3)
             AND expires_at < now()
           RETURNING partition_id, epoch"#
    );
    let want = want as i64;
    match client.query(&sql, &[&holder.node_id, &holder.lease_ms, &want]).await {
        Ok(rows) => Ok(Held::new(
            rows.iter()
                .filter_map(|r| Some((Partition(u16::try_from(r.get::<_, i32>(0)).ok()?), r.get::<_, i64>(1))))
                .collect(),
        )),
        // Another server's take in the same rows (CockroachDB's serializable, a deadlock):
        // nothing taken this time.
        Err(e)
            if e.code() == Some(&tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE)
                || e.code() == Some(&tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED) =>
        {
            Ok(Held::default())
        }
        Err(e) => Err(e.into()),
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

/// Extends the leases of the `held` partitions; those among them that are no longer this
/// server's at their epoch (taken over), in order.
pub(super) async fn renew(
    client: &Client,
    schema: &str,
    holder: &Holder,
    held: &Held,
) -> Result<Vec<Partition>, StoreError> {
    let sql = format!(
        r#"UPDATE "{schema}".leases SET expires_at = now() + $2::BIGINT * INTERVAL '1 millisecond'
           WHERE owner = $1 AND (partition_id, epoch) IN (SELECT * FROM unnest($3::INT[], $4::BIGINT[]))
           RETURNING partition_id"#
    );
    let (partitions, epochs) = held.all_rows();
    let rows = client.query(&sql, &[&holder.node_id, &holder.lease_ms, &partitions, &epochs]).await?;
    let renewed: std::collections::HashSet<i32> = rows.iter().map(|r| r.get(0)).collect();
    Ok(held.pairs().iter().map(|(p, _)| *p).filter(|p| !renewed.contains(&i32::from(p.0))).collect())
}

/// Gives the `held` partitions' leases up at once (a clean stop), so the next server need
/// not wait them out.
pub(super) async fn release(client: &Client, schema: &str, node_id: &str, held: &Held) -> Result<(), StoreError> {
    let sql = format!(
        r#"UPDATE "{schema}".leases SET expires_at = now() - INTERVAL '1 millisecond'
           WHERE owner = $1 AND (partition_id, epoch) IN (SELECT * FROM unnest($2::INT[], $3::BIGINT[]))"#
    );
    let (partitions, epochs) = held.all_rows();
    client.execute(&sql, &[&node_id, &partitions, &epochs]).await?;
    Ok(())
}

/// Renews the lease every third of its length until `stop`. Partitions that another server
/// took over (this one paused past its lease) are given up: `ownership` shrinks (their
/// actors and sagas are dropped, their requests forwarded to the new owner), the payment
/// gateway stays closed until the next renewal (a step of theirs still running must not
/// call it), and renewals go on for the rest, none left included. Each renewal then
/// balances the share (see [`Keeper::balance`]). Once the lease has expired without a
/// renewal (the database unreachable), the process stops: another server may hold any of
/// its partitions by then.
pub(super) async fn keep(keeper: Keeper, stop: tokio::sync::watch::Receiver<bool>) {
    let every = Duration::from_millis((keeper.holder.lease_ms as u64 / 3).max(50));
    let mut keeper = keeper;
    let mut renewed = tokio::time::Instant::now();
    let mut stop = stop;
    while super::tick(every, &mut stop).await {
        let attempt_started = tokio::time::Instant::now();
        match keeper.renew().await {
            Ok(Renewed::All) => {
                metrics::LEASE_RENEWALS.inc();
                renewed = attempt_started;
                keeper.clock.renewed(attempt_started.into_std(), keeper.holder.lease_ms);
            }
            Ok(Renewed::LostSome) => {
                metrics::LEASE_RENEWALS.inc();
                renewed = attempt_started;
                keeper.clock.lapse();
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not renew the store's lease; trying again");
                if renewed.elapsed() >= Duration::from_millis(keeper.holder.lease_ms as u64) {
                    super::super::committer::fail_stop(
                        "renewing the store's lease",
                        &format!("not renewed for a whole lease: {e}"),
                    );
                }
                continue;
            }
        }
        if keeper.claim == Claim::Share {
            if let Err(e) = keeper.balance().await {
                tracing::warn!(error = %e, "could not balance the store's partitions; trying at the next renewal");
            }
        }
    }
    // Stopping: what was given up last is released with the rest (by `release` at close).
    if !keeper.releasing.is_empty() {
        if let Err(e) = release(&keeper.client, &keeper.schema, &keeper.holder.node_id, &keeper.releasing).await {
            tracing::warn!(error = %e, "could not release the partitions given up last; they expire within a lease");
        }
    }
}

/// What renews the lease: whose it is, what it holds, and whom to tell when that changes.
pub(super) struct Keeper {
    pub(super) client: std::sync::Arc<Client>,
    pub(super) schema: String,
    pub(super) holder: Holder,
    pub(super) claim: Claim,
    /// What the writer fences with.
    pub(super) leases: Leases,
    pub(super) clock: std::sync::Arc<LeaseClock>,
    /// What the rest of the server serves.
    pub(super) ownership: super::super::Ownership,
    /// Partitions given up at the last balance, released at this one: the server's actors
    /// and sagas had a renewal's time to let go of them before another server may take them.
    pub(super) releasing: Held,
}

/// What a renewal found.
enum Renewed {
    /// Every partition held is still this server's.
    All,
    /// Another server took some over: given up.
    LostSome,
}

impl Keeper {
    /// Renews the held partitions; gives up those another server took over.
    async fn renew(&mut self) -> Result<Renewed, StoreError> {
        let held = self.leases.current();
        let lost = renew(&self.client, &self.schema, &self.holder, &held).await?;
        if lost.is_empty() {
            return Ok(Renewed::All);
        }
        let gone = Held::new(lost.iter().filter_map(|p| Some((*p, held.epoch_of(*p)?))).collect());
        let taken = format!("another server took the lease over from {}: {}", self.holder.node_id, describe(&gone));
        tracing::warn!("{taken}; gave them up, serving the rest");
        self.hold(held.without(&lost));
        Ok(Renewed::LostSome)
    }

    /// Brings the share to this server's fair share: releases what the last balance gave up,
    /// gives up the surplus (dropped here now, released at the next balance), or takes free
    /// partitions up to the share. The shared partition is given up last.
    async fn balance(&mut self) -> Result<(), StoreError> {
        if !self.releasing.is_empty() {
            release(&self.client, &self.schema, &self.holder.node_id, &self.releasing).await?;
            tracing::info!("released {} for another server to take", describe(&self.releasing));
            self.releasing = Held::default();
        }
        let fair = fair_share(&self.client, &self.schema, &self.holder).await?;
        let held = self.leases.current();
        if held.len() > fair {
            let surplus = held.surplus(fair);
            let kept = held.without(&surplus);
            self.releasing = Held::new(surplus.iter().filter_map(|p| Some((*p, held.epoch_of(*p)?))).collect());
            tracing::info!("gave up {} to balance the cluster ({fair} a server)", describe(&self.releasing));
            self.hold(kept);
        } else if held.len() < fair {
            let taken = take_free(&self.client, &self.schema, &self.holder, fair - held.len()).await?;
            if !taken.is_empty() {
                tracing::info!("took {} ({fair} a server)", describe(&taken));
                metrics::LEASE_TAKEOVERS.inc();
                let mut pairs = held.pairs().to_vec();
                pairs.extend_from_slice(taken.pairs());
                self.hold(Held::new(pairs));
            }
        }
        Ok(())
    }

    /// From now on, these: a partition gained is fenced by the writer before the rest of the
    /// server serves it; a partition lost, dropped by the rest of the server before the
    /// writer refuses it.
    fn hold(&self, held: Held) {
        metrics::LEASES_HELD.set(held.len() as i64);
        let owned = held.owned(self.holder.key_space);
        let grows = held.pairs().iter().any(|(p, _)| !self.ownership.current().contains(*p));
        if grows {
            self.leases.set(held);
            self.ownership.set(owned);
        } else {
            self.ownership.set(owned);
            self.leases.set(held);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(taken_ago: Duration) -> Holder {
        let taken_at = std::time::Instant::now().checked_sub(taken_ago).expect("the clock goes back that far");
        Holder { node_id: "n".into(), key_space: Partitions::DEFAULT, lease_ms: 1000, taken_at }
    }

    #[test]
    fn held_partitions_keep_their_own_epochs_and_give_up_the_highest_first_the_shared_last() {
        let held = Held::new(vec![(Partition(9), 4), (Partition(0), 1), (Partition(3), 2), (Partition(9), 5)]);
        assert_eq!(held.pairs(), &[(Partition(0), 1), (Partition(3), 2), (Partition(9), 4)], "sorted, once each");
        assert_eq!((held.epoch_of(Partition(3)), held.epoch_of(Partition(4))), (Some(2), None));
        assert_eq!(held.rows([Partition(9), Partition(4), Partition(0)]), (vec![9, 0], vec![4, 1]), "held ones only");
        assert_eq!(held.without(&[Partition(3)]).pairs(), &[(Partition(0), 1), (Partition(9), 4)]);
        assert_eq!(held.surplus(1), vec![Partition(9), Partition(3)]);
        assert_eq!(held.surplus(0), vec![Partition(9), Partition(3), Partition(0)]);
        assert!(held.surplus(3).is_empty() && held.surplus(5).is_empty());
        assert_eq!(held.owned(Partitions::DEFAULT).partitions(), &[Partition(0), Partition(3), Partition(9)]);
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
