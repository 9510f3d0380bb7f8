//! Group commit on PostgreSQL: the committer's group becomes one transaction. Keys that
//! must be absent are read first (one query per table), the group is planned against what
//! was found, and its writes go as one multi-row statement per table and kind. Everything
//! is pipelined on the connection: a group without such keys is `BEGIN`, its writes and
//! `COMMIT` in one round trip. `COMMIT` returns once the WAL is flushed
//! (`synchronous_commit`).
//! Serialization failures, deadlocks, and a key that another writer inserted since it was
//! read make the whole group run again; any other error stops the process (fail-stop),
//! since a group whose `COMMIT` got no answer may or may not have committed.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Statement};

use super::super::committer::{GroupFailed, GroupWriter};
use super::super::plan::{plan, Change, Logs, Outcome, Plan, Refused, Seqs};
use super::super::snapshot::Snapshot;
use super::super::writeset::{Op, WriteSet};
use super::super::{StoreError, Table};
use super::lease::{fence_sql, lost, Held, Holder, Leases};
use super::schema::qualified;
use crate::domain::partition::{Partition, Partitions};
use crate::domain::time::Timestamp;

/// Attempts of one group before the committer gives up (and stops the process).
const MAX_ATTEMPTS: u32 = 20;

pub(crate) struct PgWriter {
    handle: Handle,
    client: Client,
    prepared: Prepared,
    /// Whose leases every group re-checks (see [`super::lease`]).
    holder: Holder,
    /// The partitions the lease holds now, each at its epoch: what the fence checks, and
    /// whether the group writes the logs or stages them.
    leases: Leases,
    fence: Option<Statement>,
}

/// The statements a group runs, by table and kind, prepared once on the writer's connection
/// (a statement prepared for each use costs a round trip and a parse on the server).
struct Prepared {
    schema: String,
    cache: HashMap<(Table, Kind), Statement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// Which of the keys `$1` are taken.
    Taken,
    /// Write the rows `($1[i], $2[i])`.
    Put,
    /// Insert the rows `($1[i], $2[i])` whose key is free (a row that appeared since it was
    /// read is left alone, and the count tells).
    New,
    /// Delete the keys `$1`.
    Delete,
}

impl Prepared {
    fn sql(&self, table: Table, kind: Kind) -> String {
        let name = qualified(&self.schema, table);
        let rows = "SELECT * FROM unnest($1::bytea[], $2::bytea[])";
        match kind {
            Kind::Taken => format!("SELECT k FROM {name} WHERE k = ANY($1)"),
            Kind::Put => format!("INSERT INTO {name} (k, v) {rows} ON CONFLICT (k) DO UPDATE SET v = excluded.v"),
            Kind::New => format!("INSERT INTO {name} (k, v) {rows} ON CONFLICT (k) DO NOTHING"),
            Kind::Delete => format!("DELETE FROM {name} WHERE k = ANY($1)"),
        }
    }

    /// Prepares whichever of `needed` is not prepared yet.
    async fn ensure(
        &mut self,
        client: &Client,
        needed: impl IntoIterator<Item = (Table, Kind)>,
    ) -> Result<(), tokio_postgres::Error> {
        for key in needed {
            if !self.cache.contains_key(&key) {
                let statement = client.prepare(&self.sql(key.0, key.1)).await?;
                self.cache.insert(key, statement);
            }
        }
        Ok(())
    }

    fn get(&self, table: Table, kind: Kind) -> &Statement {
        &self.cache[&(table, kind)]
    }
}

/// Why an attempt did not commit.
enum Attempt {
    /// Nothing was committed and running the group again can succeed.
    Retry(&'static str),
    /// Another server holds the store's lease now: nothing was committed, nothing may be.
    Fenced,
    Failed(StoreError),
}

impl From<tokio_postgres::Error> for Attempt {
    fn from(e: tokio_postgres::Error) -> Attempt {
        let code = e.code();
        if code == Some(&SqlState::T_R_SERIALIZATION_FAILURE) || code == Some(&SqlState::T_R_DEADLOCK_DETECTED) {
            Attempt::Retry("serialization failure")
        } else if code == Some(&SqlState::DIVISION_BY_ZERO) {
            // Only the fence divides (see `fence_sql`).
            Attempt::Fenced
        } else {
            Attempt::Failed(e.into())
        }
    }
}

impl From<StoreError> for Attempt {
    fn from(e: StoreError) -> Attempt {
        Attempt::Failed(e)
    }
}

/// One table's share of a group: rows to write, rows that must be new, keys to delete.
#[derive(Default)]
struct TableWrites<'a> {
    put: (Vec<&'a [u8]>, Vec<&'a [u8]>),
    new: (Vec<&'a [u8]>, Vec<&'a [u8]>),
    delete: Vec<&'a [u8]>,
}

impl PgWriter {
    pub(super) fn new(handle: Handle, client: Client, schema: &str, holder: Holder, leases: Leases) -> PgWriter {
        let prepared = Prepared { schema: schema.to_string(), cache: HashMap::new() };
        PgWriter { handle, client, prepared, holder, leases, fence: None }
    }

    /// One try at committing the group. The statements are sent without waiting for each
    /// other's answers (the connection runs them in order); an error in any of them makes
    /// PostgreSQL roll the transaction back, `COMMIT` included.
    async fn attempt(
        &mut self,
        group: &[&WriteSet],
        partitions: &(Vec<i32>, Vec<i64>),
        logs: Logs<'_>,
        seqs: Seqs,
        now: Timestamp,
    ) -> Result<(Vec<Outcome>, Seqs), Attempt> {
        if self.fence.is_none() {
            self.fence = Some(self.client.prepare(&fence_sql(&self.prepared.schema)).await?);
        }
        let PgWriter { client, prepared, holder, fence, .. } = self;
        let wanted = must_be_absent(group);
        prepared.ensure(client, wanted.keys().map(|t| (*t, Kind::Taken))).await?;
        let (reader, statements_so_far) = (&*client, &*prepared);
        let fence = fence.as_ref().expect("prepared above");
        // Sent in this order without waiting: BEGIN, the fence, the reads.
        let begin = reader.batch_execute("BEGIN");
        let how_many = partitions.0.len() as i64;
        let lease: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&holder.node_id, &partitions.0, &partitions.1, &how_many];
        let fenced = reader.query(fence, &lease);
        let reads = futures::future::try_join_all(wanted.iter().map(|(table, keys)| async move {
            let rows = reader.query(statements_so_far.get(*table, Kind::Taken), &[keys]).await?;
            Ok::<_, tokio_postgres::Error>((*table, rows))
        }));
        let (begun, fenced, found) = futures::join!(begin, fenced, reads);
        // The fence's own error first: after it, the reads only say the transaction aborted.
        let found = match begun.and(fenced).and(found) {
            Ok(found) => found,
            Err(e) => return Err(rolled_back(client, e.into()).await),
        };
        let taken: HashSet<(Table, Vec<u8>)> =
            found.iter().flat_map(|(t, rows)| rows.iter().map(|r| (*t, r.get::<_, Vec<u8>>(0)))).collect();
        let plan = match plan(group, seqs, now, logs, |t, k| Ok(taken.contains(&(t, k.to_vec())))) {
            Ok(plan) => plan,
            Err(e) => return Err(rolled_back(client, e.into()).await),
        };
        let tables = by_table(&plan);
        let statements = statements(&tables);
        if let Err(e) = prepared.ensure(client, statements.iter().map(|s| (s.table, s.kind))).await {
            return Err(rolled_back(client, e.into()).await);
        }
        let prepared = &*prepared;
        let client = &*client;
        let writes = futures::future::try_join_all(statements.iter().map(|s| async move {
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                s.params.iter().map(|p| *p as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
            client.execute(prepared.get(s.table, s.kind), &params).await
        }));
        if statements.iter().all(|s| s.must_insert.is_none()) {
            let (written, committed) = futures::join!(writes, client.batch_execute("COMMIT"));
            written?;
            committed?;
        } else {
            // Rows that must be new are counted before anything commits.
            let counts = match writes.await {
                Ok(counts) => counts,
                Err(e) => return Err(rolled_back(client, e.into()).await),
            };
            if statements.iter().zip(counts).any(|(s, n)| s.must_insert.is_some_and(|want| want != n)) {
                let race = Attempt::Retry("a key that had to be new was inserted by another writer");
                return Err(rolled_back(client, race).await);
            }
            client.batch_execute("COMMIT").await?;
        }
        Ok((plan.outcomes, plan.seqs))
    }
}

/// Ends the transaction in flight (if any) and passes `why` on.
async fn rolled_back(client: &Client, why: Attempt) -> Attempt {
    match client.batch_execute("ROLLBACK").await {
        Ok(()) => why,
        // The connection is gone: nothing of the group committed, but the writer cannot go on.
        Err(e) => Attempt::Failed(e.into()),
    }
}

impl GroupWriter for PgWriter {
    /// A group fenced because another server took some of the partitions it touches is
    /// split: its write sets in those partitions are refused (counted, each answered
    /// [`Refused::Fenced`]), the rest of the group runs again and may commit.
    fn commit(&mut self, group: &[&WriteSet], seqs: Seqs, now: Timestamp) -> Result<(Vec<Outcome>, Seqs), GroupFailed> {
        let failed = |error| GroupFailed { what: "committing a group to PostgreSQL", error };
        if group.iter().all(|ws| ws.is_empty()) {
            // Barriers only: every earlier group is committed already.
            return Ok((group.iter().map(|_| Ok(())).collect(), seqs));
        }
        let handle = self.handle.clone();
        let held = self.leases.current();
        let logs = logs(&held, self.holder.key_space);
        let touched: Vec<BTreeSet<Partition>> =
            group.iter().map(|ws| ws.partitions(self.holder.key_space, logs.partition_for(ws))).collect();
        let mut outcomes: Vec<Outcome> = vec![Ok(()); group.len()];
        // Write sets in a partition this server no longer holds are refused before anything
        // is sent (the lease's renewal found it taken over, or it was given up).
        let gone: Vec<Partition> = touched.iter().flatten().filter(|p| !held.contains(**p)).copied().collect();
        // The write sets not refused so far, by their place in `group`.
        let mut live = self.refuse(&mut outcomes, (0..group.len()).collect(), &touched, &gone);
        for attempt in 1..=MAX_ATTEMPTS {
            if live.is_empty() {
                return Ok((outcomes, seqs));
            }
            let sets: Vec<&WriteSet> = live.iter().map(|i| group[*i]).collect();
            let partitions = held.rows(as_rows(live.iter().flat_map(|i| &touched[*i])));
            match handle.block_on(self.attempt(&sets, &partitions, logs, seqs, now)) {
                Ok((done, seqs)) => {
                    for (i, outcome) in live.iter().zip(done) {
                        outcomes[*i] = outcome;
                    }
                    return Ok((outcomes, seqs));
                }
                Err(Attempt::Retry(why)) => {
                    tracing::debug!(attempt, why, "commit group runs again");
                    std::thread::sleep(Duration::from_millis(u64::from(attempt).min(10)));
                }
                Err(Attempt::Failed(e)) => return Err(failed(e)),
                Err(Attempt::Fenced) => {
                    let lost = handle
                        .block_on(lost(&self.client, &self.prepared.schema, &self.holder.node_id, &partitions))
                        .map_err(failed)?;
                    live = self.refuse(&mut outcomes, live, &touched, &lost);
                }
            }
        }
        Err(failed(StoreError::Conflict("a commit group kept failing serialization")))
    }

    fn snapshot(&self) -> Option<Snapshot<'_>> {
        None
    }
}

impl PgWriter {
    /// Refuses the write sets among `live` that touch a partition in `lost` (each answered
    /// [`Refused::Fenced`], counted); the others, still live.
    fn refuse(
        &self,
        outcomes: &mut [Outcome],
        live: Vec<usize>,
        touched: &[BTreeSet<Partition>],
        lost: &[Partition],
    ) -> Vec<usize> {
        if lost.is_empty() {
            return live;
        }
        let (refused, kept): (Vec<usize>, Vec<usize>) =
            live.into_iter().partition(|i| lost.iter().any(|p| touched[*i].contains(p)));
        for i in &refused {
            let partition = lost.iter().find(|p| touched[*i].contains(p)).map_or(0, |p| p.0);
            outcomes[*i] = Err(Refused::Fenced { partition });
        }
        if !refused.is_empty() {
            crate::metrics::FENCED_WRITES.inc_by(refused.len() as u64);
            let lost: BTreeSet<u16> = lost.iter().map(|p| p.0).collect();
            tracing::warn!(
                node_id = %self.holder.node_id,
                lost = %crate::domain::partition::ranges(&lost.into_iter().collect::<Vec<_>>()),
                "partitions no longer this server's (another server took them over): {} write sets refused (fenced)",
                refused.len()
            );
        }
        kept
    }
}

/// Where a group's log entries go: into the logs when this server holds the shared
/// partition, else staged in one of its own, at that partition's epoch.
fn logs(held: &Held, count: Partitions) -> Logs<'_> {
    if held.contains(Partition::SHARED) {
        Logs::Direct
    } else {
        Logs::Staged { owned: held.pairs(), count }
    }
}

/// Partitions, each once, in order.
fn as_rows<'a>(partitions: impl Iterator<Item = &'a Partition>) -> BTreeSet<Partition> {
    partitions.copied().collect()
}

/// The group's must-be-absent keys, by table.
fn must_be_absent<'a>(group: &[&'a WriteSet]) -> HashMap<Table, Vec<&'a [u8]>> {
    let mut wanted: HashMap<Table, Vec<&[u8]>> = HashMap::new();
    for ws in group {
        for op in &ws.ops {
            if let Op::PutIfAbsent(table, key, _, _) = op {
                wanted.entry(*table).or_default().push(key);
            }
        }
    }
    wanted
}

/// The plan's writes by table, the last write to each key winning.
fn by_table<'a>(plan: &'a Plan<'_>) -> HashMap<Table, TableWrites<'a>> {
    let mut tables: HashMap<Table, TableWrites> = HashMap::new();
    for (table, key, change) in last_writes(plan) {
        let t = tables.entry(table).or_default();
        match change {
            Last::Put(v) => {
                t.put.0.push(key);
                t.put.1.push(v);
            }
            Last::New(v) => {
                t.new.0.push(key);
                t.new.1.push(v);
            }
            Last::Delete => t.delete.push(key),
        }
    }
    tables
}

/// One statement of a group's writes.
struct Write<'t, 'a> {
    table: Table,
    kind: Kind,
    params: Vec<&'t Vec<&'a [u8]>>,
    /// For rows that must be new: how many must be inserted.
    must_insert: Option<u64>,
}

/// One statement per table and kind of write.
fn statements<'t, 'a>(tables: &'t HashMap<Table, TableWrites<'a>>) -> Vec<Write<'t, 'a>> {
    let mut out = Vec::new();
    for (table, t) in tables {
        let table = *table;
        if !t.put.0.is_empty() {
            out.push(Write { table, kind: Kind::Put, params: vec![&t.put.0, &t.put.1], must_insert: None });
        }
        if !t.new.0.is_empty() {
            let must_insert = Some(t.new.0.len() as u64);
            out.push(Write { table, kind: Kind::New, params: vec![&t.new.0, &t.new.1], must_insert });
        }
        if !t.delete.is_empty() {
            out.push(Write { table, kind: Kind::Delete, params: vec![&t.delete], must_insert: None });
        }
    }
    out
}

/// A key's last change in a group.
enum Last<'a> {
    Put(&'a [u8]),
    New(&'a [u8]),
    Delete,
}

/// Each key's last change in the group. A `New` after an earlier change to the same key in
/// the group (a delete) is a plain write: the key's absence was the group's own doing.
fn last_writes<'a>(plan: &'a Plan<'_>) -> Vec<(Table, &'a [u8], Last<'a>)> {
    let mut last: HashMap<(Table, &[u8]), (usize, bool)> = HashMap::new();
    for (i, w) in plan.writes.iter().enumerate() {
        let seen_before = last.contains_key(&(w.table, w.key.as_ref()));
        last.insert((w.table, w.key.as_ref()), (i, seen_before));
    }
    let mut out: Vec<(usize, Table, &[u8], Last)> = last
        .into_iter()
        .map(|((table, key), (i, seen_before))| {
            let change = match &plan.writes[i].change {
                Change::Put(v) => Last::Put(v.as_ref()),
                Change::New(v) if seen_before => Last::Put(v.as_ref()),
                Change::New(v) => Last::New(v.as_ref()),
                Change::Delete => Last::Delete,
            };
            (i, table, key, change)
        })
        .collect();
    // Statement order does not matter to the outcome; a stable one keeps locks in one order.
    out.sort_by_key(|(i, ..)| *i);
    out.into_iter().map(|(_, table, key, change)| (table, key, change)).collect()
}
