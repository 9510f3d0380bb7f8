//! The PostgreSQL schema: one key-value table per [`Table`], in the schema named by
//! `storage.postgres.schema`, created and upgraded by versioned migrations applied at start.
//! Keys and values are `bytea`: PostgreSQL (and CockroachDB, YugabyteDB) order `bytea` byte
//! by byte, which is the order every key layout of [`super::super::keys`] relies on.
//! Only plain SQL that those databases share: no advisory locks, no LISTEN/NOTIFY.

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::super::{StoreError, Table};

/// The tables migration 1 creates: the key layout as it was when PostgreSQL support came.
/// A table added to [`Table`] later needs a migration of its own (a test checks it has one).
const V1_TABLES: [&str; 39] = [
    "customers",
    "customer_emails",
    "sessions",
    "verify_tokens",
    "categories",
    "products",
    "stock",
    "reservations",
    "carts",
    "events",
    "audit",
    "audit_by_entity",
    "outbox",
    "outbox_due",
    "orders",
    "orders_by_customer",
    "sagas",
    "active_sagas",
    "retry_policies",
    "idempotency",
    "orders_by_authorization",
    "orders_by_tracking",
    "webhook_events",
    "order_expiry",
    "cursors",
    "idempotency_by_time",
    "finished_sagas",
    "webhook_events_by_time",
    "orders_by_status",
    "sagas_by_filter",
    "webhooks_by_filter",
    "notifications_by_filter",
    "audit_by_type",
    "index_builds",
    "quarantine",
    "saga_alerts",
    "sagas_by_owner",
    "bulk_actions",
    "events_by_order",
];

struct Migration {
    version: i32,
    description: &'static str,
    statements: fn(schema: &str) -> Vec<String>,
}

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, description: "one key-value table per store table", statements: key_value_tables },
    Migration { version: 2, description: "the store's leases (see lease.rs)", statements: leases },
    Migration { version: 3, description: "the cluster's nodes (see membership.rs)", statements: nodes },
    Migration {
        version: 4,
        description: "the cluster's shared secret (see membership.rs)",
        statements: cluster_secret,
    },
    Migration { version: 5, description: "the console's sessions in the store", statements: staff_sessions },
    Migration {
        version: 6,
        description: "settings fixed for the store's life, such as its partition count (see lease.rs)",
        statements: cluster_settings,
    },
    Migration {
        version: 7,
        description: "each server's process in its nodes row, to tell a second server with its id (see membership.rs)",
        statements: node_instances,
    },
    Migration {
        version: 8,
        description: "the logs a partition's owner stages for the shared partition's owner (see staged.rs)",
        statements: staged_logs,
    },
    Migration {
        version: 9,
        description: "the log of cached records changed, which every server polls (see invalidations.rs)",
        statements: cache_invalidations,
    },
];

fn cache_invalidations(schema: &str) -> Vec<String> {
    vec![key_value_table(schema, "cache_invalidations")]
}

fn staged_logs(schema: &str) -> Vec<String> {
    vec![key_value_table(schema, "staged_logs")]
}

fn node_instances(schema: &str) -> Vec<String> {
    vec![format!(r#"ALTER TABLE "{schema}".nodes ADD COLUMN IF NOT EXISTS instance TEXT NOT NULL DEFAULT ''"#)]
}

fn cluster_settings(schema: &str) -> Vec<String> {
    vec![format!(
        r#"CREATE TABLE IF NOT EXISTS "{schema}".cluster_settings (
               name TEXT PRIMARY KEY,
               value BIGINT NOT NULL)"#
    )]
}

fn staff_sessions(schema: &str) -> Vec<String> {
    vec![key_value_table(schema, "staff_sessions")]
}

/// One row, written by the first server that finds it missing (see membership.rs).
fn cluster_secret(schema: &str) -> Vec<String> {
    vec![format!(
        r#"CREATE TABLE IF NOT EXISTS "{schema}".cluster_secret (
               id INT PRIMARY KEY,
               secret BYTEA NOT NULL)"#
    )]
}

fn nodes(schema: &str) -> Vec<String> {
    vec![format!(
        r#"CREATE TABLE IF NOT EXISTS "{schema}".nodes (
               node_id TEXT PRIMARY KEY,
               advertise_url TEXT NOT NULL,
               started_at TIMESTAMPTZ NOT NULL,
               heartbeat_at TIMESTAMPTZ NOT NULL)"#
    )]
}

fn leases(schema: &str) -> Vec<String> {
    vec![format!(
        r#"CREATE TABLE IF NOT EXISTS "{schema}".leases (
               partition_id INT PRIMARY KEY,
               owner TEXT NOT NULL,
               epoch BIGINT NOT NULL,
               expires_at TIMESTAMPTZ NOT NULL)"#
    )]
}

fn key_value_tables(schema: &str) -> Vec<String> {
    V1_TABLES.iter().map(|name| key_value_table(schema, name)).collect()
}

/// The table of one [`Table`]: ordered `bytea` keys and their values.
fn key_value_table(schema: &str, name: &str) -> String {
    format!(r#"CREATE TABLE IF NOT EXISTS "{schema}"."{name}" (k BYTEA PRIMARY KEY, v BYTEA NOT NULL)"#)
}

/// The quoted, schema-qualified name of `table`.
pub(super) fn qualified(schema: &str, table: Table) -> String {
    format!(r#""{schema}"."{}""#, table.name())
}

/// Brings the schema up to this build's version. Several nodes may start at once: every
/// statement is idempotent and a race on the schema itself is simply tried again.
pub(super) async fn migrate(client: &mut Client, schema: &str) -> Result<(), StoreError> {
    let mut attempts = 0;
    loop {
        match try_migrate(client, schema).await {
            Err(StoreError::Postgres(e)) if attempts < 5 && is_race(&e) => attempts += 1,
            other => return other,
        }
    }
}

fn is_race(e: &tokio_postgres::Error) -> bool {
    let code = e.code();
    code == Some(&SqlState::UNIQUE_VIOLATION)
        || code == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
        || code == Some(&SqlState::DUPLICATE_SCHEMA)
        || code == Some(&SqlState::DUPLICATE_TABLE)
}

async fn try_migrate(client: &mut Client, schema: &str) -> Result<(), StoreError> {
    client
        .batch_execute(&format!(
            r#"CREATE SCHEMA IF NOT EXISTS "{schema}";
               CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations (
                   version INT PRIMARY KEY,
                   description TEXT NOT NULL,
                   applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"#
        ))
        .await?;
    let row = client.query_one(&format!(r#"SELECT max(version) FROM "{schema}".schema_migrations"#), &[]).await?;
    let found: i32 = row.get::<_, Option<i32>>(0).unwrap_or(0);
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if found > known {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > found) {
        let tx = client.transaction().await?;
        for statement in (m.statements)(schema) {
            tx.batch_execute(&statement).await?;
        }
        let record = format!(
            r#"INSERT INTO "{schema}".schema_migrations (version, description) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING"#
        );
        tx.execute(&record, &[&m.version, &m.description]).await?;
        tx.commit().await?;
        tracing::info!(schema, version = m.version, description = m.description, "applied store migration");
    }
    tracing::info!(schema, version = known, "the store's schema is up to date");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_created_by_a_migration() {
        let created: Vec<String> = MIGRATIONS.iter().flat_map(|m| (m.statements)("s")).collect();
        for table in Table::ALL {
            let name = format!(r#""s"."{}" "#, table.name());
            assert!(created.iter().any(|sql| sql.contains(&name)), "no migration creates {}", table.name());
        }
        let versions: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "versions ascend");
    }
}
