//! Group commit on PostgreSQL: the committer's group becomes one transaction. Keys that
//! must be absent are read first (one query per table), the group is planned against what
//! was found, and its writes go as one multi-row statement per table and kind, pipelined
//! on the connection. `COMMIT` returns once the WAL is flushed (`synchronous_commit`).
//! Serialization failures, deadlocks, and a key that another writer inserted since it was
//! read make the whole group run again; any other error stops the process (fail-stop),
//! since a group whose `COMMIT` got no answer may or may not have committed.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Transaction};

use super::super::committer::{GroupFailed, GroupWriter};
use super::super::plan::{plan, Change, Outcome, Plan, Seqs};
use super::super::snapshot::Snapshot;
use super::super::writeset::{Op, WriteSet};
use super::super::{StoreError, Table};
use super::schema::qualified;
use crate::domain::time::Timestamp;

/// Attempts of one group before the committer gives up (and stops the process).
const MAX_ATTEMPTS: u32 = 20;

pub(crate) struct PgWriter {
    handle: Handle,
    client: Client,
    schema: String,
}

/// Why an attempt did not commit.
enum Attempt {
    /// Nothing was committed and running the group again can succeed.
    Retry(&'static str),
    Failed(StoreError),
}

impl From<tokio_postgres::Error> for Attempt {
    fn from(e: tokio_postgres::Error) -> Attempt {
        let code = e.code();
        if code == Some(&SqlState::T_R_SERIALIZATION_FAILURE) || code == Some(&SqlState::T_R_DEADLOCK_DETECTED) {
            Attempt::Retry("serialization failure")
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
    pub(super) fn new(handle: Handle, client: Client, schema: &str) -> PgWriter {
        PgWriter { handle, client, schema: schema.to_string() }
    }

    async fn attempt(
        &mut self,
        group: &[&WriteSet],
        seqs: Seqs,
        now: Timestamp,
    ) -> Result<(Vec<Outcome>, Seqs), Attempt> {
        let schema = self.schema.clone();
        let tx = self.client.transaction().await?;
        let taken = taken_keys(&tx, &schema, group).await?;
        let plan = plan(group, seqs, now, |t, k| Ok(taken.contains(&(t, k.to_vec()))))?;
        write(&tx, &schema, &plan).await?;
        tx.commit().await?;
        Ok((plan.outcomes, plan.seqs))
    }
}

impl GroupWriter for PgWriter {
    fn commit(&mut self, group: &[&WriteSet], seqs: Seqs, now: Timestamp) -> Result<(Vec<Outcome>, Seqs), GroupFailed> {
        let failed = |error| GroupFailed { what: "committing a group to PostgreSQL", error };
        if group.iter().all(|ws| ws.is_empty()) {
            // Barriers only: every earlier group is committed already.
            return Ok((group.iter().map(|_| Ok(())).collect(), seqs));
        }
        let handle = self.handle.clone();
        for attempt in 1..=MAX_ATTEMPTS {
            match handle.block_on(self.attempt(group, seqs, now)) {
                Ok(done) => return Ok(done),
                Err(Attempt::Retry(why)) => {
                    tracing::debug!(attempt, why, "commit group runs again");
                    std::thread::sleep(Duration::from_millis(u64::from(attempt).min(10)));
                }
                Err(Attempt::Failed(e)) => return Err(failed(e)),
            }
        }
        Err(failed(StoreError::Conflict("a commit group kept failing serialization")))
    }

    fn snapshot(&self) -> Option<Snapshot<'_>> {
        None
    }
}

/// Which of the group's must-be-absent keys are in the database, by table.
async fn taken_keys(
    tx: &Transaction<'_>,
    schema: &str,
    group: &[&WriteSet],
) -> Result<HashSet<(Table, Vec<u8>)>, Attempt> {
    let mut wanted: HashMap<Table, Vec<&[u8]>> = HashMap::new();
    for ws in group {
        for op in &ws.ops {
            if let Op::PutIfAbsent(table, key, _, _) = op {
                wanted.entry(*table).or_default().push(key);
            }
        }
    }
    let mut taken = HashSet::new();
    for (table, keys) in wanted {
        let sql = format!("SELECT k FROM {} WHERE k = ANY($1)", qualified(schema, table));
        for row in tx.query(&sql, &[&keys]).await? {
            taken.insert((table, row.get::<_, Vec<u8>>(0)));
        }
    }
    Ok(taken)
}

/// The plan's writes, the last write to each key winning, as one statement per table and
/// kind, all in flight at once on the connection.
async fn write(tx: &Transaction<'_>, schema: &str, plan: &Plan<'_>) -> Result<(), Attempt> {
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
    let mut statements = Vec::new();
    for (table, t) in &tables {
        let name = qualified(schema, *table);
        if !t.put.0.is_empty() {
            let sql = format!(
                "INSERT INTO {name} (k, v) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
                 ON CONFLICT (k) DO UPDATE SET v = excluded.v"
            );
            statements.push((sql, vec![&t.put.0, &t.put.1], None));
        }
        if !t.new.0.is_empty() {
            // A row that appeared since it was read is left alone and counted: the group runs again.
            let sql = format!(
                "INSERT INTO {name} (k, v) SELECT * FROM unnest($1::bytea[], $2::bytea[]) ON CONFLICT (k) DO NOTHING"
            );
            statements.push((sql, vec![&t.new.0, &t.new.1], Some(t.new.0.len() as u64)));
        }
        if !t.delete.is_empty() {
            statements.push((format!("DELETE FROM {name} WHERE k = ANY($1)"), vec![&t.delete], None));
        }
    }
    let runs = statements.iter().map(|(sql, params, _)| {
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            params.iter().map(|p| *p as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
        async move { tx.execute(sql.as_str(), &params).await }
    });
    let counts = futures::future::try_join_all(runs).await?;
    for ((_, _, expected), count) in statements.iter().zip(counts) {
        if expected.is_some_and(|n| n != count) {
            return Err(Attempt::Retry("a key that had to be new was inserted by another writer"));
        }
    }
    Ok(())
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
