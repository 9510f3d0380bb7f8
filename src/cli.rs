//! The operator CLI: `cartwright sagas list|show|resume|abort|abort-preview|policy|
//! bulk-resume|bulk-abort|bulk-status|bulk-list`, `cartwright quarantine list|pause|release`,
//! `cartwright webhooks replay` and `cartwright backup`, thin clients of a running server's
//! admin API (`--url`/`--token` or `CARTWRIGHT_URL`/`CARTWRIGHT_TOKEN`;
//! `--operator`/`CARTWRIGHT_OPERATOR` names who acts, for the audit trail), and
//! `cartwright restore` and `cartwright cluster`, which need no server (the latter reads a
//! PostgreSQL store's leases and servers with the server's settings).

pub mod quarantine;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

#[derive(Args)]
pub struct Remote {
    /// The server's base URL.
    #[arg(long, env = "CARTWRIGHT_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub url: String,
    /// An admin bearer token. No default: a shipped token would only work against a server
    /// that should not be running with it.
    #[arg(long, env = "CARTWRIGHT_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Who is acting, as the audit trail names them (sent as `X-Operator`).
    #[arg(long, env = "CARTWRIGHT_OPERATOR", global = true)]
    pub operator: Option<String>,
}

/// The saga filter, as `sagas list`, `bulk-resume` and `bulk-abort` take it.
#[derive(Args, Default)]
pub struct SagaFilterArgs {
    /// RUNNING, RETRYING, COMPENSATING, COMPLETED, FAILED, STUCK or ABORTED.
    #[arg(long)]
    state: Option<String>,
    #[arg(long = "type")]
    saga_type: Option<String>,
    /// The current step (or compensation).
    #[arg(long)]
    step: Option<String>,
    /// Text in the saga's error or a step's last error (case-insensitive).
    #[arg(long)]
    error: Option<String>,
    #[arg(long)]
    order_id: Option<String>,
    #[arg(long)]
    customer_id: Option<String>,
    /// RFC 3339, e.g. 2026-11-26T08:00:00Z.
    #[arg(long)]
    created_after: Option<String>,
    #[arg(long)]
    created_before: Option<String>,
}

impl SagaFilterArgs {
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        let fields = [
            ("state", &self.state),
            ("type", &self.saga_type),
            ("step", &self.step),
            ("error", &self.error),
            ("order_id", &self.order_id),
            ("customer_id", &self.customer_id),
            ("created_after", &self.created_after),
            ("created_before", &self.created_before),
        ];
        fields.into_iter().filter_map(|(k, v)| v.as_deref().map(|v| (k, v))).collect()
    }

    fn to_json(&self) -> serde_json::Map<String, Value> {
        self.pairs().into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect()
    }
}

impl Remote {
    /// The token, or the error telling the operator how to give one.
    pub fn token(&self) -> anyhow::Result<&str> {
        match self.token.as_deref() {
            Some(t) if !t.is_empty() => Ok(t),
            _ => anyhow::bail!("no admin token: pass --token or set CARTWRIGHT_TOKEN"),
        }
    }
}

#[derive(Subcommand)]
pub enum SagaCommand {
    /// List sagas (oldest first; `--newest` for newest first), optionally filtered.
    List {
        #[command(flatten)]
        filter: SagaFilterArgs,
        #[arg(long)]
        newest: bool,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Resume every STUCK or RETRYING saga the filter matches (in the background; capped).
    BulkResume {
        #[command(flatten)]
        filter: SagaFilterArgs,
        /// Give each saga's step a fresh set of attempts.
        #[arg(long)]
        reset_attempts: bool,
        /// Only count the matching sagas and show a sample.
        #[arg(long)]
        dry_run: bool,
    },
    /// Abort every unfinished saga the filter matches (those past their point of no return
    /// are skipped).
    BulkAbort {
        #[command(flatten)]
        filter: SagaFilterArgs,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        dry_run: bool,
    },
    /// A bulk action's progress.
    BulkStatus { bulk_action_id: String },
    /// The bulk actions, newest first.
    BulkList,
    /// Show one saga with its full step history.
    Show { saga_id: String },
    /// Run a STUCK or RETRYING saga's parked step now.
    Resume {
        saga_id: String,
        /// Give the step a fresh set of attempts.
        #[arg(long)]
        reset_attempts: bool,
    },
    /// Compensate what a saga did and end it ABORTED.
    Abort {
        saga_id: String,
        #[arg(long)]
        reason: String,
    },
    /// Whether an abort is allowed now, and the compensations it would run, in order.
    AbortPreview { saga_id: String },
    /// Retry policies: `policy list`, or `policy set TYPE STEP ...`.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    List,
    Set {
        saga_type: String,
        step: String,
        #[arg(long)]
        max_attempts: u32,
        #[arg(long)]
        initial_backoff_ms: u64,
        #[arg(long, default_value_t = 2.0)]
        multiplier: f64,
        #[arg(long)]
        max_backoff_ms: u64,
    },
}

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// Process a `needs_review` webhook event again, with corrected data from a file.
    Replay {
        /// payment or carrier.
        source: String,
        event_id: String,
        /// A JSON file holding the corrected `data` object of the event.
        #[arg(long)]
        payload: Option<std::path::PathBuf>,
    },
}

impl Remote {
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        Ok(Client {
            http: reqwest::Client::new(),
            url: self.url.trim_end_matches('/').to_string(),
            token: self.token()?.to_string(),
            operator: self.operator.clone(),
        })
    }
}

/// `cartwright webhooks ...`.
pub fn webhooks(remote: Remote, command: WebhookCommand) -> anyhow::Result<()> {
    let client = remote.client()?;
    let WebhookCommand::Replay { source, event_id, payload } = command;
    let body = match payload {
        Some(file) => {
            let text = std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let data: Value =
                serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not JSON: {e}", file.display()))?;
            json!({ "payload": data })
        }
        None => json!({}),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let path = format!("/admin/v1/webhooks/{source}/{event_id}/replay");
    print(&rt.block_on(client.call(reqwest::Method::POST, &path, Some(body)))?);
    Ok(())
}

/// Runs one command; the error is what to print before exiting non-zero.
pub fn run(remote: Remote, command: SagaCommand) -> anyhow::Result<()> {
    let client = remote.client()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        match command {
            SagaCommand::List { filter, newest, limit } => {
                let mut q = vec![("limit", limit.to_string())];
                q.extend(filter.pairs().into_iter().map(|(k, v)| (k, v.to_string())));
                if newest {
                    q.push(("order", "newest".into()));
                }
                let body = client.get_query("/admin/v1/sagas", &q).await?;
                println!("{:<38} {:<14} {:<13} {:<22} UPDATED", "SAGA", "TYPE", "STATE", "STEP");
                for s in body["sagas"].as_array().into_iter().flatten() {
                    println!(
                        "{:<38} {:<14} {:<13} {:<22} {}",
                        s["saga_id"].as_str().unwrap_or("-"),
                        s["type"].as_str().unwrap_or("-"),
                        s["state"].as_str().unwrap_or("-"),
                        s["current_step"].as_str().unwrap_or("-"),
                        s["updated_at"].as_str().unwrap_or("-"),
                    );
                }
            }
            SagaCommand::Show { saga_id } => {
                print(&client.call(reqwest::Method::GET, &format!("/admin/v1/sagas/{saga_id}"), None).await?)
            }
            SagaCommand::Resume { saga_id, reset_attempts } => print(
                &client
                    .call(
                        reqwest::Method::POST,
                        &format!("/admin/v1/sagas/{saga_id}/resume"),
                        Some(json!({ "reset_attempts": reset_attempts })),
                    )
                    .await?,
            ),
            SagaCommand::Abort { saga_id, reason } => print(
                &client
                    .call(
                        reqwest::Method::POST,
                        &format!("/admin/v1/sagas/{saga_id}/abort"),
                        Some(json!({ "reason": reason })),
                    )
                    .await?,
            ),
            SagaCommand::BulkResume { filter, reset_attempts, dry_run } => {
                let mut body = filter.to_json();
                body.insert("dry_run".into(), json!(dry_run));
                if reset_attempts {
                    body.insert("reset_attempts".into(), json!(true));
                }
                let path = "/admin/v1/sagas/bulk-resume";
                print(&client.call(reqwest::Method::POST, path, Some(Value::Object(body))).await?)
            }
            SagaCommand::BulkAbort { filter, reason, dry_run } => {
                let mut body = filter.to_json();
                body.insert("dry_run".into(), json!(dry_run));
                if let Some(r) = reason {
                    body.insert("reason".into(), json!(r));
                }
                let path = "/admin/v1/sagas/bulk-abort";
                print(&client.call(reqwest::Method::POST, path, Some(Value::Object(body))).await?)
            }
            SagaCommand::BulkStatus { bulk_action_id } => print(
                &client.call(reqwest::Method::GET, &format!("/admin/v1/bulk-actions/{bulk_action_id}"), None).await?,
            ),
            SagaCommand::BulkList => print(&client.call(reqwest::Method::GET, "/admin/v1/bulk-actions", None).await?),
            SagaCommand::AbortPreview { saga_id } => print(
                &client.call(reqwest::Method::GET, &format!("/admin/v1/sagas/{saga_id}/abort-preview"), None).await?,
            ),
            SagaCommand::Policy(PolicyCommand::List) => {
                print(&client.call(reqwest::Method::GET, "/admin/v1/retry-policies", None).await?)
            }
            SagaCommand::Policy(PolicyCommand::Set {
                saga_type,
                step,
                max_attempts,
                initial_backoff_ms,
                multiplier,
                max_backoff_ms,
            }) => print(
                &client
                    .call(
                        reqwest::Method::PUT,
                        &format!("/admin/v1/retry-policies/{saga_type}/{step}"),
                        Some(json!({
                            "max_attempts": max_attempts,
                            "initial_backoff_ms": initial_backoff_ms,
                            "multiplier": multiplier,
                            "max_backoff_ms": max_backoff_ms,
                        })),
                    )
                    .await?,
            ),
        }
        Ok(())
    })
}

/// `cartwright backup --to DIR [--force]`.
pub fn backup(remote: Remote, dir: &std::path::Path, force: bool) -> anyhow::Result<()> {
    let token = remote.token()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let summary = rt.block_on(crate::backup::fetch(&remote.url, token, dir, force))?;
    println!("backup saved to {}", summary.file.display());
    print_summary(&summary);
    Ok(())
}

/// `cartwright restore --from DIR --to PATH`.
pub fn restore(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    let summary = crate::backup::restore(from, to)?;
    println!("restored {} into {}", summary.file.display(), to.display());
    print_summary(&summary);
    Ok(())
}

/// `cartwright cluster`: who holds the store's leases and which servers are alive, read
/// from the database with the server's own settings, so it answers during an outage, when
/// no server leads and the admin API is not answered.
pub fn cluster(settings: &crate::config::Settings, as_json: bool) -> anyhow::Result<()> {
    let (leases, nodes) = crate::store::Store::cluster_view(&settings.storage)?;
    if as_json {
        print(&json!({ "partitions": leases.len(), "leases": leases, "nodes": nodes }));
        return Ok(());
    }
    for line in cluster_report(&leases, &nodes) {
        println!("{line}");
    }
    Ok(())
}

/// The lines `cartwright cluster` prints: who holds which partitions, then every server.
use crate::domain::partition::ranges;

fn cluster_report(leases: &[crate::store::LeaseView], nodes: &[crate::store::NodeView]) -> Vec<String> {
    let mut lines = vec![format!("{} partitions", leases.len())];
    let mut holders: Vec<(&str, i64, Vec<i32>)> = Vec::new();
    let mut unheld = Vec::new();
    for l in leases {
        if !l.live {
            unheld.push(l.partition);
        } else if let Some(h) = holders.iter_mut().find(|(o, e, _)| *o == l.owner && *e == l.epoch) {
            h.2.push(l.partition);
        } else {
            holders.push((&l.owner, l.epoch, vec![l.partition]));
        }
    }
    for (owner, epoch, partitions) in &holders {
        lines.push(format!("  held by {owner} (epoch {epoch}): {}", ranges(partitions)));
    }
    if !unheld.is_empty() {
        lines
            .push(format!("  held by no server: {} (their requests answer 503 until one takes them)", ranges(&unheld)));
    }
    lines.push(format!("{:<24} {:<9} {:>10}  {:<22} URL", "SERVER", "ROLE", "PARTITIONS", "HEARTBEAT"));
    for n in nodes {
        let role = if n.leader { "leader" } else { "follower" };
        let beat = format!("{} ms ago{}", n.heartbeat_age_ms, if n.stale { " STALE" } else { "" });
        lines.push(format!("{:<24} {:<9} {:>10}  {:<22} {}", n.node_id, role, n.partitions, beat, n.advertise_url));
    }
    if nodes.is_empty() {
        lines.push("(no server has joined, or every one stopped cleanly)".into());
    }
    lines
}

fn print_summary(summary: &crate::backup::Summary) {
    let created = chrono::DateTime::from_timestamp_millis(summary.header.created_at_ms)
        .map_or_else(|| "?".to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    println!(
        "format {}, cartwright {}, taken at {created}",
        summary.header.format_version, summary.header.cartwright_version
    );
    println!("{:<28} RECORDS", "TABLE");
    for tree in &summary.trees {
        println!("{:<28} {}", tree.name, tree.records);
    }
}

fn print(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub(crate) struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
    operator: Option<String>,
}

impl Client {
    /// A GET with its query string encoded (error texts may hold anything).
    async fn get_query(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.url)).query(query)).await
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut rb = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        self.send(rb).await
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let mut rb = rb.bearer_auth(&self.token);
        if let Some(name) = &self.operator {
            rb = rb.header("X-Operator", name);
        }
        let resp = rb.send().await.map_err(|e| anyhow::anyhow!("cannot reach {}: {e}", self.url))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            anyhow::bail!(
                "{} {}: {}",
                status.as_u16(),
                body["error"]["code"].as_str().unwrap_or("ERROR"),
                body["error"]["message"].as_str().unwrap_or("")
            );
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_cluster_report_groups_partitions_by_holder_and_names_those_nobody_holds() {
        let lease = |partition, owner: &str, epoch, live| crate::store::LeaseView {
            partition,
            owner: owner.into(),
            epoch,
            expires_at: "2026-11-27T06:00:00.000Z".into(),
            live,
        };
        let leases = [
            lease(0, "a", 3, true),
            lease(1, "a", 3, true),
            lease(2, "b", 1, false),
            lease(3, "a", 3, true),
            lease(4, "b", 1, false),
            lease(5, "b", 1, false),
        ];
        let node = crate::store::NodeView {
            node_id: "a".into(),
            advertise_url: "http://10.0.0.1:8080".into(),
            started_at: String::new(),
            heartbeat_at: String::new(),
            heartbeat_age_ms: 120,
            stale: false,
            leader: true,
            partitions: 3,
        };
        let report = cluster_report(&leases, &[node]);
        assert_eq!(
            report[..3],
            [
                "6 partitions",
                "  held by a (epoch 3): 0-1, 3",
                "  held by no server: 2, 4-5 (their requests answer 503 until one takes them)"
            ]
        );
        assert!(
            report[4].starts_with("a ") && report[4].contains("leader") && report[4].ends_with("http://10.0.0.1:8080"),
            "{report:?}"
        );
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: SagaCommand,
    }

    #[test]
    fn without_a_token_the_cli_refuses_instead_of_using_a_shipped_one() {
        let cli = Cli::try_parse_from(["cartwright", "list"]).unwrap();
        if std::env::var_os("CARTWRIGHT_TOKEN").is_none() {
            assert!(cli.remote.token.is_none());
            let err = run(cli.remote, cli.command).unwrap_err().to_string();
            assert!(err.contains("--token") && err.contains("CARTWRIGHT_TOKEN"), "{err}");
        }
        let cli = Cli::try_parse_from(["cartwright", "--token", "a-real-admin-token", "list"]).unwrap();
        assert_eq!(cli.remote.token().unwrap(), "a-real-admin-token");
    }
}
