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
    /// Re-score now: retrain the close-probability predictor and re-score
    /// every open lead, for cron or a Kubernetes CronJob. Exits non-zero
    /// when a tenant's run fails.
    Rescore {
        /// The tenant's slug.
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        tenant: Option<String>,
        /// Every tenant, a few at a time (`LEADRANK_JOB_CONCURRENCY`).
        #[arg(long)]
        all: bool,
    },
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
        Command::Rescore { tenant, all } => {
            let conn = db::connect(&settings).await?;
            db::migrate(&conn).await?;
            leadrank::jobs::cli::rescore(&conn, tenant.as_deref(), all, settings.job_concurrency)
                .await?;
        }
        Command::Schema => {}
    }
    Ok(())
}
