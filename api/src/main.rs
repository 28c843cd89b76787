//! The `leadrank` command: the server and its maintenance subcommands.

use clap::{Parser, Subcommand};
use leadrank::{config::Settings, db, graphql, startup::Application, telemetry};

/// LeadRank: whom to follow up next, and why.
#[derive(Parser)]
#[command(name = "leadrank", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the GraphQL API (the default). Applies migrations first.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL) to standard output.
    Schema,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Schema) = cli.command {
        print!("{}", graphql::sdl());
        return Ok(());
    }
    telemetry::init();
    let settings = Settings::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            Application::build(settings)
                .await?
                .run_until_stopped()
                .await?
        }
        Command::Migrate => {
            let conn = db::connect(&settings).await?;
            db::migrate(&conn).await?;
            tracing::info!(database = %db::redact(&settings.database_url), "migrations applied");
        }
        Command::Schema => {}
    }
    Ok(())
}
