//! The cluster's members: every server on a PostgreSQL store has a row in `nodes` (its id,
//! the URL the others reach it at, a heartbeat), written before it serves anything and
//! renewed every third of `cluster.lease_ms`. Each server serves its share of the
//! partitions and forwards the other requests to their owners' URLs, found here; a live
//! heartbeat is what counts a server in the fair share (see `lease.rs`). Partition 0's
//! owner is listed as the leader.
//! A member is stale once its heartbeat is older than three leases (shown so in the cluster
//! view); a clean stop deletes its row, and the leader deletes the row of a member whose
//! heartbeat is older than [`FORGOTTEN_AFTER_LEASES`] leases (it died without stopping).
//! A server whose row was deleted while it was only paused writes it again at its next beat.
//!
//! Two servers must never share a `cluster.node_id` (each would take the other's leases as
//! its own, and they would fence each other in turn for ever). Each process writes a random
//! instance id with its heartbeat; a server starting with an id whose row has a fresh
//! heartbeat from another instance watches it for one beat: if it goes on, another live
//! server has the id and this one refuses to start; if not, it was this server's previous
//! run (killed), and it goes on.
//!
//! The database also holds the cluster's shared secret (`cluster_secret`, one random row
//! written by the first server to start): a follower signs with it the client address it
//! forwards, so the leader can believe it (see `http/relayed.rs`).

use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use tokio::runtime::Handle;
use tokio_postgres::Client;

use super::{connect, run, schema, OwnedRuntime, Target};
use crate::config::{ClusterSettings, StorageSettings};
use crate::store::backend::NodeView;
use crate::store::StoreError;

/// This server's place in the cluster, kept alive by its heartbeat until [`Membership::leave`].
pub(crate) struct Membership {
    handle: Handle,
    client: Arc<Client>,
    schema: String,
    node_id: String,
    lease_ms: u64,
    /// The cluster's shared secret (see the module's doc).
    secret: Vec<u8>,
    stop_beating: tokio::sync::watch::Sender<bool>,
    /// The heartbeat's task: waited for before the row is deleted, so a beat in flight cannot
    /// write it again after.
    beating: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Kept for its thread; dropped last.
    _runtime: OwnedRuntime,
}

impl Membership {
    /// Connects, brings the schema up to date, reads the cluster's secret (creating it if
    /// this is the first server) and writes this server's row.
    pub(crate) fn join(settings: &StorageSettings, cluster: &ClusterSettings) -> Result<Membership, StoreError> {
        let runtime = OwnedRuntime::new(1, "cluster-membership")?;
        let handle = runtime.handle();
        let target = Target::new(&settings.postgres)?;
        let (node_id, url, partitions) = (cluster.node_id.clone(), cluster.advertise_url.clone(), cluster.partitions);
        let (instance, lease_ms) = (uuid::Uuid::new_v4().to_string(), cluster.lease_ms);
        let schema_name = target.schema.clone();
        let mine = instance.clone();
        let (client, secret) = run(&handle, async move {
            let mut client = connect(&target).await?;
            schema::migrate(&mut client, &target.schema).await?;
            super::lease::check_partitions(&client, &target.schema, partitions).await?;
            let secret = shared_secret(&client, &target.schema).await?;
            refuse_a_live_twin(&client, &target.schema, &node_id, &mine, lease_ms).await?;
            let sql = format!(
                r#"INSERT INTO "{}".nodes (node_id, advertise_url, started_at, heartbeat_at, instance)
                   VALUES ($1, $2, now(), now(), $3)
                   ON CONFLICT (node_id) DO UPDATE
                     SET advertise_url = excluded.advertise_url, started_at = now(), heartbeat_at = now(),
                         instance = excluded.instance"#,
                target.schema
            );
            client.execute(&sql, &[&node_id, &url, &mine]).await?;
            Ok::<_, StoreError>((client, secret))
        })??;
        let client = Arc::new(client);
        let (stop_beating, stop) = tokio::sync::watch::channel(false);
        let heart = Heart {
            client: client.clone(),
            schema: schema_name.clone(),
            node_id: cluster.node_id.clone(),
            advertise_url: cluster.advertise_url.clone(),
            instance,
            lease_ms: cluster.lease_ms,
        };
        let beating = std::sync::Mutex::new(Some(handle.spawn(heart.beat(stop))));
        crate::metrics::PARTITIONS.set(i64::from(cluster.partitions.count()));
        tracing::info!(node_id = %cluster.node_id, advertise_url = %cluster.advertise_url, "joined the cluster");
        Ok(Membership {
            handle,
            client,
            schema: schema_name,
            node_id: cluster.node_id.clone(),
            lease_ms: cluster.lease_ms,
            secret,
            stop_beating,
            beating,
            _runtime: runtime,
        })
    }

    /// Every member, stale or not, the leader first.
    pub(crate) fn nodes(&self) -> Result<Vec<NodeView>, StoreError> {
        let (client, schema, lease_ms) = (self.client.clone(), self.schema.clone(), self.lease_ms);
        run(&self.handle, async move { nodes(&client, &schema, lease_ms).await })?
    }

    /// The secret every server of the cluster shares.
    pub(crate) fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// Deletes this server's row (a clean stop): the others stop counting it at once.
    pub(crate) fn leave(&self) -> Result<(), StoreError> {
        let _ = self.stop_beating.send(true);
        let beating = self.beating.lock().ok().and_then(|mut b| b.take());
        let (client, schema, node_id) = (self.client.clone(), self.schema.clone(), self.node_id.clone());
        run(&self.handle, async move {
            if let Some(beating) = beating {
                let _ = beating.await;
            }
            let sql = format!(r#"DELETE FROM "{schema}".nodes WHERE node_id = $1"#);
            client.execute(&sql, &[&node_id]).await.map(drop)
        })?
        .map_err(StoreError::from)
    }
}

/// A member whose heartbeat is older than this many leases is stale.
const STALE_AFTER_LEASES: i64 = 3;

/// The leader deletes the row of a member whose heartbeat is older than this many leases:
/// long past stale (so the cluster view shows it stale for a while first), and long enough
/// that a server paused or cut off for a moment keeps its row.
const FORGOTTEN_AFTER_LEASES: i64 = 10;

/// The cluster's secret: the one row of `cluster_secret`, written with 32 random bytes by
/// whichever server gets there first (the others' inserts do nothing), then read by each.
async fn shared_secret(client: &Client, schema: &str) -> Result<Vec<u8>, StoreError> {
    let mut fresh = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut fresh);
    let insert =
        format!(r#"INSERT INTO "{schema}".cluster_secret (id, secret) VALUES (1, $1) ON CONFLICT (id) DO NOTHING"#);
    client.execute(&insert, &[&fresh]).await?;
    let row = client.query_one(&format!(r#"SELECT secret FROM "{schema}".cluster_secret WHERE id = 1"#), &[]).await?;
    Ok(row.get(0))
}

/// Refuses to start when another live server has `node_id`: its row's heartbeat is fresh
/// (within a lease), written by another instance, and it beats again while this one
/// watches for a little more than one heartbeat interval. A row whose beat does not move
/// was this server's own previous run (killed): nothing to refuse, and only a restart with
/// a fixed `cluster.node_id` within a lease of a crash waits that long.
async fn refuse_a_live_twin(
    client: &Client,
    schema: &str,
    node_id: &str,
    instance: &str,
    lease_ms: u64,
) -> Result<(), StoreError> {
    let read = format!(
        r#"SELECT heartbeat_at, advertise_url FROM "{schema}".nodes
           WHERE node_id = $1 AND instance <> $2 AND instance <> ''
             AND heartbeat_at > now() - $3::BIGINT * INTERVAL '1 millisecond'"#
    );
    let ms = lease_ms as i64;
    let Some(first) = client.query_opt(&read, &[&node_id, &instance, &ms]).await? else {
        return Ok(());
    };
    let beat: std::time::SystemTime = first.get(0);
    tracing::info!(node_id, "a fresh heartbeat under this server's id: watching it for one beat");
    tokio::time::sleep(Duration::from_millis(lease_ms / 3 + lease_ms / 6 + 50)).await;
    let again = client.query_opt(&read, &[&node_id, &instance, &ms]).await?;
    match again {
        Some(row) if row.get::<_, std::time::SystemTime>(0) > beat => {
            let url: String = row.get(1);
            Err(StoreError::Settings(format!(
                "another live server has cluster.node_id = {node_id} (reached at {url}): every server needs its \
                 own id (leave it empty for a random one)"
            )))
        }
        _ => Ok(()),
    }
}

/// Every member as the database has them: stale = a heartbeat older than three of
/// `lease_ms`, partitions = how many unexpired leases it holds, leader = the holder of
/// partition 0's (today the one holding them all).
pub(super) async fn nodes(client: &Client, schema: &str, lease_ms: u64) -> Result<Vec<NodeView>, StoreError> {
    let sql = format!(
        r#"SELECT n.node_id, n.advertise_url,
                  to_char(n.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                  to_char(n.heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                  (EXTRACT(EPOCH FROM (now() - n.heartbeat_at)) * 1000)::BIGINT,
                  EXISTS (SELECT 1 FROM "{schema}".leases l
                          WHERE l.owner = n.node_id AND l.expires_at > now() AND l.partition_id = 0),
                  (SELECT count(*) FROM "{schema}".leases l
                   WHERE l.owner = n.node_id AND l.expires_at > now())
           FROM "{schema}".nodes n
           ORDER BY 6 DESC, n.node_id"#
    );
    let rows = client.query(&sql, &[]).await?;
    Ok(rows
        .iter()
        .map(|r| NodeView {
            node_id: r.get(0),
            advertise_url: r.get(1),
            started_at: r.get(2),
            heartbeat_at: r.get(3),
            heartbeat_age_ms: r.get(4),
            stale: r.get::<_, i64>(4) > STALE_AFTER_LEASES * lease_ms as i64,
            leader: r.get(5),
            partitions: r.get(6),
        })
        .collect())
}

/// What renews this server's heartbeat.
struct Heart {
    client: Arc<Client>,
    schema: String,
    node_id: String,
    advertise_url: String,
    /// This process's random id (see the module's doc).
    instance: String,
    lease_ms: u64,
}

impl Heart {
    /// Renews the heartbeat every third of a lease until `stop`, writing the row again if
    /// the leader deleted it (this server was paused past [`FORGOTTEN_AFTER_LEASES`]), and
    /// deletes the rows of long-dead members if this server leads. A failed beat is logged
    /// and tried again (the rows only say who may be forwarded to; the lease guards writes).
    async fn beat(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let schema = &self.schema;
        let renew = format!(
            r#"INSERT INTO "{schema}".nodes (node_id, advertise_url, started_at, heartbeat_at, instance)
               VALUES ($1, $2, now(), now(), $3)
               ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = now(), instance = excluded.instance"#
        );
        // Only the holder of partition 0's unexpired lease prunes, so one server does it.
        let prune = format!(
            r#"DELETE FROM "{schema}".nodes
               WHERE heartbeat_at < now() - $2 * interval '1 millisecond'
                 AND EXISTS (SELECT 1 FROM "{schema}".leases
                             WHERE partition_id = 0 AND owner = $1 AND expires_at > now())
               RETURNING node_id"#
        );
        let forget_after_ms = (FORGOTTEN_AFTER_LEASES * self.lease_ms as i64) as f64;
        let every = Duration::from_millis((self.lease_ms / 3).max(50));
        while super::tick(every, &mut stop).await {
            if let Err(e) = self.client.execute(&renew, &[&self.node_id, &self.advertise_url, &self.instance]).await {
                tracing::warn!(error = %e, "could not renew this server's heartbeat; trying again");
            }
            match self.client.query(&prune, &[&self.node_id, &forget_after_ms]).await {
                Ok(gone) => {
                    for row in gone {
                        let node: String = row.get(0);
                        tracing::info!(node_id = %node, forget_after_ms, "forgot a server whose heartbeat stopped");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not prune the cluster's dead servers"),
            }
        }
    }
}

use crate::domain::partition::Partition;
use crate::store::backend::Owner;

impl Membership {
    /// The owner of every partition with an unexpired lease (see [`owners`]).
    pub(crate) fn owners(&self) -> Result<Vec<Owner>, StoreError> {
        let (client, schema) = (self.client.clone(), self.schema.clone());
        run(&self.handle, async move { owners(&client, &schema).await })?
    }
}

/// Who owns which partition, in one read: every unexpired lease with the URL of its
/// owner's row in `nodes`, in partition order. A lease whose owner has no row (it left, or
/// was forgotten) has no URL and is left out.
pub(super) async fn owners(client: &Client, schema: &str) -> Result<Vec<Owner>, StoreError> {
    let sql = format!(
        r#"SELECT l.partition_id, l.owner, n.advertise_url
           FROM "{schema}".leases l JOIN "{schema}".nodes n ON n.node_id = l.owner
           WHERE l.expires_at > now()
           ORDER BY l.partition_id"#
    );
    let rows = client.query(&sql, &[]).await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let partition = u16::try_from(r.get::<_, i32>(0)).ok().map(Partition)?;
            Some(Owner { partition, node_id: r.get(1), advertise_url: r.get(2) })
        })
        .collect())
}
