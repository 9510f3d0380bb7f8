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
    }
}
