//! The cluster's members: every server on a PostgreSQL store has a row in `nodes` (its id,
//! the URL the others reach it at, a heartbeat), written before it serves anything and
//! renewed every third of `cluster.lease_ms`. The server holding the store's lease is the
//! leader; the others serve by forwarding each request to the leader's URL, found here.
//! A member is live while its heartbeat is younger than three leases; a clean stop deletes
//! its row.

use std::sync::Arc;
use std::time::Duration;

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
    stop_beating: tokio::sync::watch::Sender<bool>,
    /// Kept for its thread; dropped last.
    _runtime: OwnedRuntime,
}

impl Membership {
    /// Connects, brings the schema up to date and writes this server's row.
    pub(crate) fn join(settings: &StorageSettings, cluster: &ClusterSettings) -> Result<Membership, StoreError> {
        let runtime = OwnedRuntime::new(1, "cluster-membership")?;
        let handle = runtime.handle();
        let target = Target::new(&settings.postgres)?;
        let (node_id, url) = (cluster.node_id.clone(), cluster.advertise_url.clone());
        let schema_name = target.schema.clone();
        let client = run(&handle, async move {
            let mut client = connect(&target).await?;
            schema::migrate(&mut client, &target.schema).await?;
            let sql = format!(
                r#"INSERT INTO "{}".nodes (node_id, advertise_url, started_at, heartbeat_at)
                   VALUES ($1, $2, now(), now())
                   ON CONFLICT (node_id) DO UPDATE
                     SET advertise_url = excluded.advertise_url, started_at = now(), heartbeat_at = now()"#,
                target.schema
            );
            client.execute(&sql, &[&node_id, &url]).await?;
            Ok::<_, StoreError>(client)
        })??;
        let client = Arc::new(client);
        let (stop_beating, stop) = tokio::sync::watch::channel(false);
        let every = Duration::from_millis((cluster.lease_ms / 3).max(50));
        handle.spawn(beat(client.clone(), schema_name.clone(), cluster.node_id.clone(), every, stop));
        tracing::info!(node_id = %cluster.node_id, advertise_url = %cluster.advertise_url, "joined the cluster");
        Ok(Membership {
            handle,
            client,
            schema: schema_name,
            node_id: cluster.node_id.clone(),
            stop_beating,
            _runtime: runtime,
        })
    }

    /// The live member holding the store's lease, if any (none during a takeover).
    pub(crate) fn leader(&self) -> Result<Option<NodeView>, StoreError> {
        Ok(self.nodes()?.into_iter().find(|n| n.leader))
    }

    /// Every member, live or not, the leader first.
    pub(crate) fn nodes(&self) -> Result<Vec<NodeView>, StoreError> {
        let (client, schema) = (self.client.clone(), self.schema.clone());
        run(&self.handle, async move { nodes(&client, &schema).await })?
    }

    /// Deletes this server's row (a clean stop): the others stop counting it at once.
    pub(crate) fn leave(&self) -> Result<(), StoreError> {
        let _ = self.stop_beating.send(true);
        let (client, schema, node_id) = (self.client.clone(), self.schema.clone(), self.node_id.clone());
        run(&self.handle, async move {
            let sql = format!(r#"DELETE FROM "{schema}".nodes WHERE node_id = $1"#);
            client.execute(&sql, &[&node_id]).await.map(drop)
        })?
        .map_err(StoreError::from)
    }
}

/// Every member as the database has them: live = a heartbeat younger than three leases
/// of the leader's, leader = the holder of the store's unexpired lease.
pub(super) async fn nodes(client: &Client, schema: &str) -> Result<Vec<NodeView>, StoreError> {
    let sql = format!(
        r#"SELECT n.node_id, n.advertise_url,
                  to_char(n.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                  to_char(n.heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                  (EXTRACT(EPOCH FROM (now() - n.heartbeat_at)) * 1000)::BIGINT,
                  EXISTS (SELECT 1 FROM "{schema}".leases l
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
            leader: r.get(5),
        })
        .collect())
}

/// Renews this server's heartbeat until `stop`; a failed beat is logged and tried again
/// (the row only says who may be forwarded to; the lease is what guards writes).
async fn beat(
    client: Arc<Client>,
    schema: String,
    node_id: String,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let sql = format!(r#"UPDATE "{schema}".nodes SET heartbeat_at = now() WHERE node_id = $1"#);
    while super::tick(every, &mut stop).await {
        if let Err(e) = client.execute(&sql, &[&node_id]).await {
            tracing::warn!(error = %e, "could not renew this server's heartbeat; trying again");
        }
    }
}
