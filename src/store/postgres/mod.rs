//! The PostgreSQL backend (`storage.backend = "postgres"`), on tokio-postgres.
//!
//! The store's reads are synchronous (sled answers them in microseconds from memory), so
//! this backend runs its connections on a small runtime of its own and a read waits for
//! its answer there: the calling thread blocks for one round trip, never the runtime that
//! drives the connections. Each of `pool_size` read connections pipelines whatever queries
//! are in flight on it. Writes come only from the committer, on a connection of its own,
//! one transaction per group (see [`writer`]).

mod lease;
mod membership;
mod schema;
mod sslmode;
mod tls;
mod writer;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::runtime::{Handle, Runtime};
use tokio_postgres::{Client, Statement};

use super::backend::{Backend, Entries, LeaseView, NodeView};
use super::plan::Seqs;
use super::{Ownership, StoreError, Table};
use crate::config::{ClusterSettings, Durability, PostgresSettings, StorageSettings};
pub use lease::{Claim, Wait};
pub(crate) use membership::Membership;
pub(crate) use writer::PgWriter;

/// The lease this server holds, the connection that renews it, and how to stop renewing.
struct HeldLease {
    client: Arc<Client>,
    holder: lease::Holder,
    /// The partitions held as of now (fewer once another server took some over).
    leases: lease::Leases,
    stop_renewing: tokio::sync::watch::Sender<bool>,
    /// The renewing task: waited for before the lease is given up, so that a renewal in
    /// flight cannot find the lease already taken by the next server and stop the process.
    renewing: tokio::task::JoinHandle<()>,
}

/// Where to connect, how (TLS), and which schema holds the tables.
#[derive(Clone)]
struct Target {
    connector: tls::Connector,
    schema: String,
}

impl Target {
    /// Refuses settings no connection could be made with (an unknown `sslmode`, a CA file
    /// that cannot be read) before any is tried.
    fn new(pg: &PostgresSettings) -> Result<Target, StoreError> {
        let connector = tls::connector(pg).map_err(StoreError::Settings)?;
        Ok(Target { connector, schema: pg.schema.clone() })
    }
}

pub(crate) struct PgBackend {
    /// Kept for its threads; dropped last.
    _runtime: OwnedRuntime,
    /// This server's lease (released on close).
    lease: Mutex<Option<HeldLease>>,
    /// Until when the lease is surely this server's (see [`lease::LeaseClock`]).
    clock: Arc<lease::LeaseClock>,
    handle: Handle,
    target: Arc<Target>,
    pool: Vec<Mutex<Option<Conn>>>,
    next: AtomicUsize,
    statements: Arc<Statements>,
    /// `cluster.lease_ms`: how old a heartbeat makes a server stale in [`Backend::nodes`].
    lease_ms: u64,
}

/// One read connection and the statements prepared on it.
#[derive(Clone)]
struct Conn {
    client: Arc<Client>,
    prepared: Arc<Mutex<HashMap<(Table, Query), Statement>>>,
}

/// The shapes of query a read makes; each is prepared once per connection and table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Query {
    Get,
    Range { lower: Edge, upper: Edge, reverse: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Edge {
    Open,
    Included,
    Excluded,
}

fn edge(b: &Bound<Vec<u8>>) -> Edge {
    match b {
        Bound::Unbounded => Edge::Open,
        Bound::Included(_) => Edge::Included,
        Bound::Excluded(_) => Edge::Excluded,
    }
}

/// The SQL text of each query shape, per schema.
struct Statements {
    schema: String,
}

impl Statements {
    fn sql(&self, table: Table, query: Query) -> String {
        let name = schema::qualified(&self.schema, table);
        match query {
            Query::Get => format!("SELECT v FROM {name} WHERE k = $1"),
            Query::Range { lower, upper, reverse } => {
                let mut conditions = Vec::new();
                let mut n = 0;
                for (edge, incl, excl) in [(lower, ">=", ">"), (upper, "<=", "<")] {
                    let op = match edge {
                        Edge::Open => continue,
                        Edge::Included => incl,
                        Edge::Excluded => excl,
                    };
                    n += 1;
                    conditions.push(format!("k {op} ${n}"));
                }
                let filter =
                    if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
                let order = if reverse { "DESC" } else { "ASC" };
                format!("SELECT k, v FROM {name}{filter} ORDER BY k {order} LIMIT ${}", n + 1)
            }
        }
    }
}

/// What [`open`] gives: the backend, its committer's writer and where the logs go on.
pub(crate) type Opened = (PgBackend, PgWriter, Seqs, Ownership);

/// Whether [`open`] brings the schema up to date, or finds it so (this process's
/// [`Membership::join`] did, just before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Schema {
    Migrate,
    UpToDate,
}

/// Opens the database: applies migrations (as `schema` says), takes what `claim` says of the store's leases (waiting for them as
/// `wait` says, `None` when it is not taken), opens the read pool and the committer's
/// connection, and reads where the event and audit logs go on.
pub(crate) fn open(
    settings: &StorageSettings,
    cluster: &ClusterSettings,
    claim: Claim,
    wait: Wait,
    schema: Schema,
) -> Result<Option<Opened>, StoreError> {
    let pg = &settings.postgres;
    let runtime = OwnedRuntime::new(2, "store-postgres")?;
    let handle = runtime.handle();
    let target = Arc::new(Target::new(pg)?);
    let durable = settings.durability == Durability::Durable;
    let t = target.clone();
    let (node_id, lease_ms, partitions) = (cluster.node_id.clone(), cluster.lease_ms, cluster.partitions);
    let taken = run(&handle, async move {
        let mut client = connect(&t).await?;
        if schema == Schema::Migrate {
            schema::migrate(&mut client, &t.schema).await?;
            lease::check_partitions(&client, &t.schema, partitions).await?;
        }
        let mut lease_client = connect(&t).await?;
        let Some((holder, held)) =
            lease::acquire(&mut lease_client, &t.schema, &node_id, lease_ms, partitions, claim, wait).await?
        else {
            return Ok(None);
        };
        // Durable: COMMIT returns once the WAL is flushed (the server's default, made
        // explicit so a database configured otherwise cannot weaken the promise).
        let commit = if durable { "on" } else { "off" };
        client.batch_execute(&format!("SET synchronous_commit = {commit}")).await?;
        // A writer paused inside a group's transaction (GC, SIGSTOP) holds the lease row
        // for share, which would keep the next server's takeover waiting for ever: the
        // database ends such a transaction once it has waited a lease for the writer, so
        // the takeover waits at most that long (and the paused writer, its connection
        // gone, commits nothing and stops).
        client.batch_execute(&format!("SET idle_in_transaction_session_timeout = {lease_ms}")).await?;
        Ok::<_, StoreError>(Some((client, Arc::new(lease_client), holder, held)))
    })??;
    let Some((writer_client, lease_client, holder, held)) = taken else {
        return Ok(None);
    };
    let (stop_renewing, stop) = tokio::sync::watch::channel(false);
    let clock = Arc::new(lease::LeaseClock::new(&holder));
    let ownership = Ownership::new(held.owned(holder.key_space));
    let leases = lease::Leases::new(held);
    let keeper = lease::Keeper {
        client: lease_client.clone(),
        schema: pg.schema.clone(),
        holder: holder.clone(),
        claim,
        leases: leases.clone(),
        clock: clock.clone(),
        ownership: ownership.clone(),
        releasing: lease::Held::default(),
    };
    let renewing = handle.spawn(lease::keep(keeper, stop));
    let statements = Arc::new(Statements { schema: pg.schema.clone() });
    let backend = PgBackend {
        _runtime: runtime,
        lease: Mutex::new(Some(HeldLease {
            client: lease_client,
            holder: holder.clone(),
            leases: leases.clone(),
            stop_renewing,
            renewing,
        })),
        clock,
        handle: handle.clone(),
        target,
        pool: (0..pg.pool_size).map(|_| Mutex::new(None)).collect(),
        next: AtomicUsize::new(0),
        statements,
        lease_ms: cluster.lease_ms,
    };
    let last = |table| backend.range(table, Bound::Unbounded, Bound::Unbounded, true, 1).next().transpose();
    let next = |row: Option<(Vec<u8>, Vec<u8>)>| {
        row.map_or(1, |(k, _)| u64::from_be_bytes(k.as_slice().try_into().unwrap_or([0; 8])) + 1)
    };
    let seqs = Seqs {
        event: next(last(Table::Events)?),
        audit: next(last(Table::Audit)?),
        invalidation: next(last(Table::CacheInvalidations)?),
        staged: 0,
    };
    let tls = &backend.target.connector.summary;
    tracing::info!(schema = %pg.schema, pool = pg.pool_size, %tls, "store on PostgreSQL");
    let writer = PgWriter::new(handle, writer_client, &pg.schema, holder, leases);
    Ok(Some((backend, writer, seqs, ownership)))
}

/// The store's leases and servers as the database has them, read by a process that is not
/// a server (`cartwright cluster`): it answers while no server leads, which is when an
/// operator needs it most.
pub(crate) fn cluster_view(settings: &StorageSettings) -> Result<(Vec<LeaseView>, Vec<NodeView>), StoreError> {
    let runtime = OwnedRuntime::new(1, "cluster-view")?;
    let target = Target::new(&settings.postgres)?;
    // How old a heartbeat makes a server stale depends on the lease, which the servers'
    // settings give; this reader uses the default when it has no other.
    let lease_ms = crate::config::ClusterSettings::for_tools().lease_ms;
    run(&runtime.handle(), async move {
        let client = connect(&target).await?;
        let leases = lease::all(&client, &target.schema).await?;
        let nodes = membership::nodes(&client, &target.schema, lease_ms).await?;
        Ok((leases, nodes))
    })?
}

async fn connect(target: &Target) -> Result<Client, StoreError> {
    let tls = &target.connector;
    let (client, connection) = tls.config.connect(tls.tls.clone()).await.map_err(|e| tls::explain(e, &tls.summary))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %super::postgres_detail(&e), "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

/// Waits `every`; `false` once `stop` turns true (or its sender is gone): the loop of a
/// background task (renewing the lease, the heartbeat) ends there.
async fn tick(every: std::time::Duration, stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(every) => {}
        changed = stop.changed() => if changed.is_err() { return false },
    }
    !*stop.borrow()
}

/// Runs `work` on the backend's runtime and waits for it on this thread (which may belong
/// to another runtime: it only blocks, it never enters this one).
fn run<T: Send + 'static>(handle: &Handle, work: impl Future<Output = T> + Send + 'static) -> Result<T, StoreError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = tx.send(work.await);
    });
    rx.recv().map_err(|_| StoreError::Closed)
}

impl PgBackend {
    /// A live read connection, round robin; a closed one is replaced.
    fn conn(&self) -> Result<Conn, StoreError> {
        let slot = &self.pool[self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len()];
        let mut held = slot.lock().map_err(|_| StoreError::Closed)?;
        if let Some(conn) = held.as_ref().filter(|c| !c.client.is_closed()) {
            return Ok(conn.clone());
        }
        let target = self.target.clone();
        let client = run(&self.handle, async move { connect(&target).await })??;
        let conn = Conn { client: Arc::new(client), prepared: Arc::default() };
        *held = Some(conn.clone());
        Ok(conn)
    }

    /// Runs a read query of shape `query` on `table` with `params`.
    fn query(&self, table: Table, query: Query, params: Vec<Param>) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let conn = self.conn()?;
        let statements = self.statements.clone();
        run(&self.handle, async move {
            let cached = conn.prepared.lock().ok().and_then(|p| p.get(&(table, query)).cloned());
            let statement = match cached {
                Some(s) => s,
                None => {
                    // The SQL text is built only for the first read of its shape on a connection.
                    let s = conn.client.prepare(&statements.sql(table, query)).await?;
                    if let Ok(mut p) = conn.prepared.lock() {
                        p.insert((table, query), s.clone());
                    }
                    s
                }
            };
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params.iter().map(Param::as_sql).collect();
            Ok(conn.client.query(&statement, &refs).await?)
        })?
    }
}

/// An owned query parameter (the query runs on another thread).
enum Param {
    Bytes(Vec<u8>),
    Limit(i64),
}

impl Param {
    fn as_sql(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        match self {
            Param::Bytes(b) => b,
            Param::Limit(n) => n,
        }
    }
}

impl Backend for PgBackend {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = self.query(table, Query::Get, vec![Param::Bytes(key.to_vec())])?;
        Ok(rows.first().map(|r| r.get::<_, Vec<u8>>(0)))
    }

    fn range(
        &self,
        table: Table,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
        reverse: bool,
        chunk: usize,
    ) -> Entries<'_> {
        Box::new(Chunks {
            backend: self,
            table,
            lower,
            upper,
            reverse,
            chunk: chunk.max(1),
            buffer: VecDeque::new(),
            done: false,
        })
    }

    fn leases(&self) -> Result<Vec<LeaseView>, StoreError> {
        let conn = self.conn()?;
        let schema = self.statements.schema.clone();
        run(&self.handle, async move { lease::all(&conn.client, &schema).await })?
    }

    fn holds_lease(&self) -> bool {
        self.clock.holds()
    }

    fn nodes(&self) -> Result<Vec<NodeView>, StoreError> {
        let conn = self.conn()?;
        let (schema, lease_ms) = (self.statements.schema.clone(), self.lease_ms);
        run(&self.handle, async move { membership::nodes(&conn.client, &schema, lease_ms).await })?
    }

    /// Gives the lease up (the committer has stopped: nothing more will be written).
    fn close(&self) -> Result<(), StoreError> {
        let held = self.lease.lock().ok().and_then(|mut l| l.take());
        if let Some(HeldLease { client, holder, leases, stop_renewing, renewing }) = held {
            let _ = stop_renewing.send(true);
            self.clock.lapse();
            let schema = self.statements.schema.clone();
            run(&self.handle, async move {
                let _ = renewing.await;
                lease::release(&client, &schema, &holder.node_id, &leases.current()).await
            })??;
            crate::metrics::LEASES_HELD.set(0);
        }
        Ok(())
    }
}

/// The backend's runtime, shut down without blocking when dropped: a store is opened and
/// dropped from async code, where dropping a runtime the usual way panics.
struct OwnedRuntime(Option<Runtime>);

impl OwnedRuntime {
    /// A runtime of `threads` workers named `name`, for this backend's connections.
    fn new(threads: usize, name: &str) -> Result<OwnedRuntime, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(name)
            .enable_all()
            .build()?;
        Ok(OwnedRuntime(Some(runtime)))
    }

    fn handle(&self) -> Handle {
        self.0.as_ref().expect("present until dropped").handle().clone()
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// A range read in batches: each batch goes on after the last key of the one before, the
/// first sized by what the caller expects to read, the next ones doubling up to 1,024.
struct Chunks<'a> {
    backend: &'a PgBackend,
    table: Table,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    reverse: bool,
    chunk: usize,
    buffer: VecDeque<(Vec<u8>, Vec<u8>)>,
    done: bool,
}

impl Chunks<'_> {
    fn fetch(&mut self) -> Result<(), StoreError> {
        let query = Query::Range { lower: edge(&self.lower), upper: edge(&self.upper), reverse: self.reverse };
        let mut params = Vec::new();
        for bound in [&self.lower, &self.upper] {
            if let Bound::Included(k) | Bound::Excluded(k) = bound {
                params.push(Param::Bytes(k.clone()));
            }
        }
        params.push(Param::Limit(self.chunk as i64));
        let rows = self.backend.query(self.table, query, params)?;
        self.done = rows.len() < self.chunk;
        self.buffer.extend(rows.iter().map(|r| (r.get::<_, Vec<u8>>(0), r.get::<_, Vec<u8>>(1))));
        if let Some((last, _)) = self.buffer.back() {
            let after = Bound::Excluded(last.clone());
            if self.reverse {
                self.upper = after;
            } else {
                self.lower = after;
            }
        }
        self.chunk = (self.chunk * 2).min(1024);
        Ok(())
    }
}

impl Iterator for Chunks<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() && !self.done {
            if let Err(e) = self.fetch() {
                self.done = true;
                return Some(Err(e));
            }
        }
        self.buffer.pop_front().map(Ok)
    }
}
