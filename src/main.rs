//! The `cartwright` binary: parses the command line and calls the library.

use clap::{Parser, Subcommand};

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cartwright::telemetry::init();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let settings = cartwright::config::Settings::load()?;
            cartwright::app::run(settings, cartwright::app::shutdown_signal(), |_| {})
        }
    }
}
