//! `review-bench`: times the weekly review's reports over HTTP on the
//! release server, as a manager's dashboard asks for them, beside the
//! floor of one grouped scan of the tenant's leads in the database.
//!
//! ```text
//! DATABASE_URL=… cargo run --release -- demo --tenant demo --leads 100000
//! DATABASE_URL=… cargo run --release -p tests --bin review-bench -- --tenant demo
//! ```
//!
//! The server runs in this process on a random port with a fresh signing
//! secret; the bench signs the owner's and a manager's tokens itself. Each
//! report is asked `--runs` times by one client, then by `--clients`
//! clients at once (each asking every report in turn); it prints the
//! median and the slowest answer.

#![allow(clippy::print_stdout)]
// The benchmark reads its tenant and times the floor straight from the
// database.
#![allow(clippy::disallowed_methods)]
// The schema's merged query and mutation types nest deeper than the
// compiler's default limit when their futures are laid out.
#![recursion_limit = "256"]

use std::time::{Duration, Instant};
use tests::BenchServer;

use anyhow::{Context, bail};
use chrono::Utc;
use entity::{
    enums::{LeadStatus, Role},
    lead, pipeline, team_member, user,
};
use leadrank::auth::Principal;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};
use serde_json::{Value, json};

const SCORECARDS: &str = "query($input: ReviewInput!) { repScorecards(input: $input) {
    rep { id } openLeads openByTier { tier count } overdueShare assignedLeads contactedLeads
    medianHoursToFirstContact outboundActivities outboundPerWorkingDay won lost wonRate
    closedByTier { tier won lost } wonValue medianDaysToClose } }";
const TIER_REPORT: &str = "query($input: ReviewInput!) { tierReport(input: $input) {
    tiers { tier openLeads openValue won lost wonRate wonValue wonShare wonValueShare } } }";
const MOVEMENTS: &str = "query($input: ReviewInput!) { tierMovements(input: $input) {
    cells { fromTier toTier leads } climbs { fromTier toTier leads reached won } } }";
const FORECAST: &str = "query($input: ForecastInput!) { forecast(input: $input) {
    months { month expected { openLeads unweightedValue weightedValue } wonValue }
    stages { stage { key } expected { weightedValue } typicalDaysToClose } } }";
const FUNNEL: &str = "query($p: ID!) { funnel(pipelineId: $p) {
    stage { key } entered advanced lost lostReasons { category count } } }";

struct Options {
    tenant: String,
    runs: usize,
    clients: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        tenant: "demo".into(),
        runs: 5,
        clients: 4,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--tenant" => options.tenant = value()?,
            "--runs" => options.runs = value()?.parse().context("--runs")?,
            "--clients" => options.clients = value()?.parse().context("--clients")?,
            other => bail!("unknown argument {other}; use --tenant SLUG --runs N --clients N"),
        }
    }
    Ok(options)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    match (times.get(times.len() / 2), times.last()) {
        (Some(median), Some(max)) => format!(
            "median {:>8.1} ms   max {:>8.1} ms   ({} answers)",
            millis(*median),
            millis(*max),
            times.len()
        ),
        _ => "no answers".to_owned(),
    }
}

async fn ask(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    query: &str,
    variables: &Value,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let body: Value = client
        .post(url)
        .bearer_auth(token)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await?
        .json()
        .await?;
    let took = started.elapsed();
    if let Some(errors) = body.get("errors") {
        bail!("the server answered with errors: {errors}");
    }
    Ok(took)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    // Warnings and errors of the server, when a report fails.
    let _telemetry = leadrank::telemetry::init();
    let server = BenchServer::start(&options.tenant, &[]).await?;
    let BenchServer {
        base,
        db,
        tenant,
        keys,
        database_url,
    } = server;
    let url = format!("{base}/graphql");
    let now = Utc::now();
    let token_of = |u: &user::Model| {
        keys.issue(
            &Principal {
                tenant_id: tenant.id,
                user_id: u.id,
                role: u.role,
            },
            now,
            now + chrono::Duration::hours(2),
        )
    };
    let users = user::Entity::find()
        .filter(user::Column::TenantId.eq(tenant.id))
        .all(&db)
        .await?;
    let owner = users
        .iter()
        .find(|u| u.role == Role::Owner)
        .context("the tenant has no owner")?;
    let owner_token = token_of(owner)?;
    // A manager of a team, when the demo has one.
    let mut managed = None;
    for m in users.iter().filter(|u| u.role == Role::Manager) {
        let teams = team_member::Entity::find()
            .filter(team_member::Column::TenantId.eq(tenant.id))
            .filter(team_member::Column::UserId.eq(m.id))
            .count(&db)
            .await?;
        if teams > 0 {
            managed = Some(token_of(m)?);
            break;
        }
    }
    let pipeline: uuid::Uuid = pipeline::Entity::find()
        .select_only()
        .column(pipeline::Column::Id)
        .filter(pipeline::Column::TenantId.eq(tenant.id))
        .filter(pipeline::Column::IsDefault.eq(true))
        .into_tuple()
        .one(&db)
        .await?
        .context("the tenant has no default pipeline")?;
    let leads = lead::Entity::find()
        .filter(lead::Column::TenantId.eq(tenant.id))
        .count(&db)
        .await?;
    println!(
        "LeadRank review bench: {} on {}, {} leads, {} users, {} cores",
        tenant.slug,
        leadrank::config::redact(&database_url),
        leads,
        users.len(),
        std::thread::available_parallelism().map_or(0, usize::from),
    );

    let week = json!({"input": {"from": (now - chrono::Duration::days(7)).to_rfc3339(), "to": now.to_rfc3339()}});
    let quarter = json!({"input": {"from": (now - chrono::Duration::days(90)).to_rfc3339(), "to": now.to_rfc3339()}});
    let half_year = json!({"input": {"from": (now - chrono::Duration::days(31)).to_rfc3339(), "to": (now + chrono::Duration::days(150)).to_rfc3339()}});
    let funnel = json!({"p": pipeline.to_string()});
    let mut reports: Vec<(String, &str, Value, String)> = vec![
        (
            "repScorecards, a week".into(),
            SCORECARDS,
            week.clone(),
            owner_token.clone(),
        ),
        (
            "repScorecards, a quarter".into(),
            SCORECARDS,
            quarter.clone(),
            owner_token.clone(),
        ),
        (
            "tierReport, a quarter".into(),
            TIER_REPORT,
            quarter.clone(),
            owner_token.clone(),
        ),
        (
            "tierMovements, a week".into(),
            MOVEMENTS,
            week.clone(),
            owner_token.clone(),
        ),
        (
            "tierMovements, a quarter".into(),
            MOVEMENTS,
            quarter.clone(),
            owner_token.clone(),
        ),
        (
            "forecast, six months".into(),
            FORECAST,
            half_year,
            owner_token.clone(),
        ),
        ("funnel".into(), FUNNEL, funnel.clone(), owner_token.clone()),
    ];
    if let Some(manager) = managed {
        reports.push((
            "repScorecards, a week, as a manager".into(),
            SCORECARDS,
            week,
            manager.clone(),
        ));
        reports.push(("funnel, as a manager".into(), FUNNEL, funnel, manager));
    }

    let client = reqwest::Client::new();
    // The floor: one grouped scan of the tenant's open leads, straight
    // from the database.
    let mut floor = Vec::new();
    for _ in 0..options.runs {
        let started = Instant::now();
        let rows: Vec<(String, i64, Option<f64>)> = lead::Entity::find()
            .select_only()
            .column(lead::Column::Tier)
            .column_as(lead::Column::Id.count(), "n")
            .column_as(lead::Column::DealValue.sum(), "value")
            .filter(lead::Column::TenantId.eq(tenant.id))
            .filter(lead::Column::Status.eq(LeadStatus::Open))
            .group_by(lead::Column::Tier)
            .into_tuple()
            .all(&db)
            .await?;
        floor.push(started.elapsed());
        assert!(!rows.is_empty(), "the tenant has open leads");
    }
    println!(
        "{:<40} {}",
        "floor: open leads by tier, in the database",
        summary(floor)
    );

    for (name, query, variables, token) in &reports {
        let mut times = Vec::new();
        // One unmeasured answer first: it fills the tenant's caches.
        ask(&client, &url, token, query, variables).await?;
        for _ in 0..options.runs {
            times.push(ask(&client, &url, token, query, variables).await?);
        }
        println!("{name:<40} {}", summary(times));
    }

    let started = Instant::now();
    let tasks: Vec<_> = (0..options.clients)
        .map(|c| {
            let (client, url) = (client.clone(), url.clone());
            let mut mine = reports.clone();
            mine.rotate_left(c % reports.len().max(1));
            tokio::spawn(async move {
                let mut times = Vec::new();
                for (_, query, variables, token) in &mine {
                    times.push(ask(&client, &url, token, query, variables).await?);
                }
                anyhow::Ok(times)
            })
        })
        .collect();
    let mut times = Vec::new();
    for task in tasks {
        times.extend(task.await??);
    }
    println!(
        "{:<40} {}   {:.1} s for all",
        format!("every report, {} clients at once", options.clients),
        summary(times),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
