//! The operator CLI: `cartwright sagas list|show|resume|abort|abort-preview|policy`,
//! `cartwright quarantine list|pause|release` and `cartwright backup`, thin clients of a running server's admin API (`--url`/`--token` or
//! `CARTWRIGHT_URL`/`CARTWRIGHT_TOKEN`), and `cartwright restore`, which needs no server.

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
    /// List sagas (newest last), optionally by state and type.
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long = "type")]
        saga_type: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
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

/// Runs one command; the error is what to print before exiting non-zero.
pub fn run(remote: Remote, command: SagaCommand) -> anyhow::Result<()> {
    let token = remote.token()?.to_string();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let client = Client { http: reqwest::Client::new(), url: remote.url.trim_end_matches('/').to_string(), token };
        match command {
            SagaCommand::List { state, saga_type, limit } => {
                let mut q = format!("?limit={limit}");
                if let Some(s) = state {
                    q.push_str(&format!("&state={s}"));
                }
                if let Some(t) = saga_type {
                    q.push_str(&format!("&type={t}"));
                }
                let body = client.call(reqwest::Method::GET, &format!("/admin/v1/sagas{q}"), None).await?;
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

struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Client {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut rb = self.http.request(method, format!("{}{path}", self.url)).bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(&b);
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
