//! The `cartwright` binary: parses the command line and calls the library.

use clap::{Parser, Subcommand};

/// mimalloc: the request path allocates many small short-lived buffers across threads,
/// which glibc's allocator serves measurably slower (see README, Performance).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "cartwright", version, about = "Commerce backend on durable actors and sagas")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Inspect and steer sagas on a running server.
    Sagas {
        #[command(flatten)]
        remote: cartwright::cli::Remote,
        #[command(subcommand)]
        command: cartwright::cli::SagaCommand,
    },
    /// Pause one key (a cart, an order, a product's stock) on a running server, list or release.
    Quarantine {
        #[command(flatten)]
        remote: cartwright::cli::Remote,
        #[command(subcommand)]
        command: cartwright::cli::quarantine::QuarantineCommand,
    },
    /// Replay webhook events kept for review on a running server.
    Webhooks {
        #[command(flatten)]
        remote: cartwright::cli::Remote,
        #[command(subcommand)]
        command: cartwright::cli::WebhookCommand,
    },
    /// Save a consistent backup of a running server's store into a directory.
    Backup {
        #[command(flatten)]
        remote: cartwright::cli::Remote,
        /// The directory to save it in (created if missing).
        #[arg(long)]
        to: std::path::PathBuf,
        /// Replace a backup the directory already holds.
        #[arg(long)]
        force: bool,
    },
    /// Who holds the PostgreSQL store's leases and which servers are alive, read from the
    /// database with the server's settings (CARTWRIGHT_CONFIG, CARTWRIGHT__...): it answers
    /// while no server leads.
    Cluster {
        /// The leases and servers as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a new store directory, for a server to start on, from a backup.
    Restore {
        /// The backup directory (or the backup file).
        #[arg(long)]
        from: std::path::PathBuf,
        /// The store directory to create; must not exist or be empty.
        #[arg(long)]
        to: std::path::PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            cartwright::telemetry::init();
            let settings = cartwright::config::Settings::load()?;
            cartwright::app::run(settings, cartwright::app::shutdown_signal(), |_| {})
        }
        Command::Sagas { remote, command } => cartwright::cli::run(remote, command),
        Command::Quarantine { remote, command } => cartwright::cli::quarantine::run(remote, command),
        Command::Webhooks { remote, command } => cartwright::cli::webhooks(remote, command),
        Command::Backup { remote, to, force } => cartwright::cli::backup(remote, &to, force),
        Command::Restore { from, to } => cartwright::cli::restore(&from, &to),
        Command::Cluster { json } => cartwright::cli::cluster(&cartwright::config::Settings::load()?, json),
    }
}
