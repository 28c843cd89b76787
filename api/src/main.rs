//! The `leadrank` command: the server and its maintenance subcommands.

use clap::{Parser, Subcommand};
use leadrank::{cli::demo, config::Settings, db, graphql, startup::Application, telemetry};

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
    /// Import leads from a CSV file (see the README's import section) as
    /// the tenant's owner. Exits non-zero when any row is refused.
    Import {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
        /// The CSV file, UTF-8, header row first.
        file: std::path::PathBuf,
        /// Check every row and report, writing nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write the tenant's leads to standard output as CSV in the import's
    /// columns (see the README's export section), as the tenant's owner.
    Export {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
        /// Only the leads matching a GraphQL `LeadFilter` as JSON, e.g.
        /// '{"status": ["WON"], "tiers": ["A"]}'.
        #[arg(long)]
        filter: Option<String>,
        /// Start with the byte-order mark Excel needs to read UTF-8
        /// (Chinese names) correctly.
        #[arg(long)]
        bom: bool,
    },
    /// Print the GraphQL schema (SDL) to standard output.
    Schema,
    /// Check the settings in the environment and print them as the server
    /// would use them, secrets redacted, with warnings for a deployment.
    /// Exits non-zero when a setting is invalid (or, with `--connect`, the
    /// database does not answer).
    CheckConfig {
        /// Also connect to the database and ping it.
        #[arg(long)]
        connect: bool,
    },
    /// Create a new tenant full of scored demo leads and activities, and
    /// print how to sign in to it. Applies migrations first.
    Demo {
        /// The new tenant's slug; refused when it exists.
        #[arg(long)]
        tenant: String,
        /// How many leads to create.
        #[arg(long)]
        leads: u64,
        /// Activities per lead on average; better leads get more.
        #[arg(long, default_value_t = 10)]
        activities_per_lead: u32,
        /// The same seed gives the same data (but new ids and password).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Sales reps, spread over four teams with a manager each.
        #[arg(long, default_value_t = 20)]
        reps: u32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Schema) = cli.command {
        print!("{}", graphql::sdl());
        return Ok(());
    }
    // The export's CSV goes to standard output, where the logs would mix
    // into it; its errors reach standard error as the command's own.
    let _telemetry = (!matches!(cli.command, Some(Command::Export { .. }))).then(telemetry::init);
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
            tracing::info!(database = %leadrank::config::redact(&settings.database_url), "migrations applied");
        }
        Command::Rescore { tenant, all } => {
            let conn = db::connect(&settings).await?;
            db::migrate(&conn).await?;
            leadrank::cli::rescore::rescore(
                &conn,
                tenant.as_deref(),
                all,
                settings.job_concurrency,
            )
            .await?;
        }
        Command::Demo {
            tenant,
            leads,
            activities_per_lead,
            seed,
            reps,
        } => {
            let conn = db::connect(&settings).await?;
            db::migrate(&conn).await?;
            let options = demo::DemoOptions {
                tenant_slug: tenant,
                leads,
                activities_per_lead,
                seed,
                reps,
                now: chrono::Utc::now(),
            };
            let summary = demo::generate(&conn, &demo::auth(&settings)?, options).await?;
            print!("{}", summary.report());
        }
        Command::Import {
            tenant,
            file,
            dry_run,
        } => {
            let conn = db::connect(&settings).await?;
            db::migrate(&conn).await?;
            leadrank::cli::import::import(&conn, &tenant, &file, dry_run).await?;
        }
        Command::Export {
            tenant,
            filter,
            bom,
        } => {
            let conn = db::connect(&settings).await?;
            db::migrate(&conn).await?;
            leadrank::cli::import::export(&conn, &tenant, filter.as_deref(), bom).await?;
        }
        Command::CheckConfig { connect } => {
            print!("{}", leadrank::config_check::report(&settings));
            if connect {
                let conn = db::connect(&settings).await?;
                conn.ping().await?;
                println!(
                    "The database answers: {}",
                    leadrank::config::redact(&settings.database_url)
                );
            }
        }
        Command::Schema => {}
    }
    Ok(())
}
