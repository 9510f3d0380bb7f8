//! `cartwright quarantine list|pause|release`: the quarantine admin API from a shell.

use clap::Subcommand;
use serde_json::json;

use super::{print, Remote};

#[derive(Subcommand)]
pub enum QuarantineCommand {
    /// Every paused key: kind, key, who paused it, when and why.
    List,
    /// Pause a key (KIND: cart, order or inventory; ID: the customer, order or product id):
    /// commands to it answer 423 and sagas reaching it park PAUSED until it is released.
    Pause {
        kind: String,
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Release a key and resume the sagas parked on it.
    Release { kind: String, id: String },
}

/// Runs one command; the error is what to print before exiting non-zero.
pub fn run(remote: Remote, command: QuarantineCommand) -> anyhow::Result<()> {
    let client = remote.client()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        match command {
            QuarantineCommand::List => {
                let body = client.call(reqwest::Method::GET, "/admin/v1/quarantine", None).await?;
                println!("{:<10} {:<38} {:<20} {:<25} REASON", "KIND", "KEY", "PAUSED BY", "PAUSED AT");
                for k in body["keys"].as_array().into_iter().flatten() {
                    let field = |name: &str| k[name].as_str().unwrap_or("-").to_string();
                    let (kind, key, by, at) = (field("kind"), field("key"), field("paused_by"), field("paused_at"));
                    println!("{kind:<10} {key:<38} {by:<20} {at:<25} {}", field("reason"));
                }
            }
            QuarantineCommand::Pause { kind, id, reason, .. } => print(
                &client
                    .call(
                        reqwest::Method::PUT,
                        &format!("/admin/v1/quarantine/{kind}/{id}"),
                        Some(json!({ "reason": reason })),
                    )
                    .await?,
            ),
            QuarantineCommand::Release { kind, id, .. } => {
                print(&client.call(reqwest::Method::DELETE, &format!("/admin/v1/quarantine/{kind}/{id}"), None).await?)
            }
        }
        Ok(())
    })
}
