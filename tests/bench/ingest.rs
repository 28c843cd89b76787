//! `ingest-bench`: events per second through `POST /v1/events` on a loaded
//! tenant, beside the single-row floor (`recordActivity`, one event per
//! request, the same key).
//!
//! ```text
//! DATABASE_URL=postgres://leadrank:secret@127.0.0.1:5432/leadrank cargo run --release -- demo --tenant demo --leads 100000
//! DATABASE_URL=postgres://leadrank:secret@127.0.0.1:5432/leadrank cargo run --release -p tests --bin ingest-bench -- --tenant demo
//! ```
//!
//! The server runs in this process on a random port. The bench creates an
//! API key with INGEST for the tenant's owner, then its clients send
//! batches of `--batch` events (random open leads by id, random signals)
//! for `--seconds`. Clients and server share the machine's cores.

#![allow(clippy::print_stdout)]
// The benchmark reads its tenant and times the floor straight from the
// database.
#![allow(clippy::disallowed_methods)]
// The schema's merged query and mutation types nest deeper than the
// compiler's default limit when their futures are laid out.
#![recursion_limit = "256"]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use tests::BenchServer;

use anyhow::{Context, bail};
use chrono::Utc;
use entity::{
    enums::{LeadStatus, Role},
    lead, user,
};
use leadrank::{
    auth::Principal,
    service::accounts::api_keys::{self, Scope},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use serde_json::{Value, json};
use uuid::Uuid;

const SIGNALS: [&str; 5] = [
    "website_visit",
    "deep_page_view",
    "trial_activity",
    "inbound_inquiry",
    "email",
];

struct Options {
    tenant: String,
    clients: usize,
    batch: usize,
    seconds: u64,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        tenant: "demo".into(),
        clients: 4,
        batch: 1000,
        seconds: 10,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--tenant" => options.tenant = value()?,
            "--clients" => options.clients = value()?.parse().context("--clients")?,
            "--batch" => options.batch = value()?.parse().context("--batch")?,
            "--seconds" => options.seconds = value()?.parse().context("--seconds")?,
            "-h" | "--help" => {
                println!(
                    "ingest-bench [--tenant demo] [--clients 4] [--batch 1000] [--seconds 10]\n\
                     Uses DATABASE_URL (default sqlite://leadrank.db); load the tenant first with\n\
                     `leadrank demo --tenant demo --leads 100000`."
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}; see --help"),
        }
    }
    Ok(options)
}

/// Runs `work` from `clients` tasks for `seconds`; (calls that succeeded,
/// calls that failed, their latencies sorted).
async fn drive<F, Fut>(clients: usize, seconds: u64, work: F) -> (usize, usize, Vec<Duration>)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let work = Arc::new(work);
    let stop_at = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let work = Arc::clone(&work);
            tokio::spawn(async move {
                let (mut ok, mut failed, mut latencies) = (0, 0, Vec::new());
                let mut n: u64 = client as u64 * 1_000_003 + 7;
                while Instant::now() < stop_at {
                    n = n
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let started = Instant::now();
                    if work(n >> 17).await {
                        ok += 1;
                        latencies.push(started.elapsed());
                    } else {
                        failed += 1;
                    }
                }
                (ok, failed, latencies)
            })
        })
        .collect();
    let (mut ok, mut failed, mut latencies) = (0, 0, Vec::new());
    for task in tasks {
        if let Ok((o, f, l)) = task.await {
            ok += o;
            failed += f;
            latencies.extend(l);
        }
    }
    latencies.sort();
    (ok, failed, latencies)
}

fn quantile(latencies: &[Duration], q: f64) -> f64 {
    if latencies.is_empty() {
        return f64::NAN;
    }
    let i = ((latencies.len() - 1) as f64 * q).round() as usize;
    latencies[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let server = BenchServer::start(
        &options.tenant,
        &[
            (
                "LEADRANK_DB_MAX_CONNECTIONS",
                (options.clients * 2).max(4).to_string(),
            ),
            ("LEADRANK_INGEST_EVENTS_PER_MINUTE", "0".to_owned()),
            ("LEADRANK_SCHEDULER", "false".to_owned()),
            ("LEADRANK_WEBHOOK_WORKER", "false".to_owned()),
        ],
    )
    .await?;
    let BenchServer {
        base,
        db,
        tenant,
        database_url,
        ..
    } = server;
    let owner = user::Entity::find()
        .filter(user::Column::TenantId.eq(tenant.id))
        .filter(user::Column::Role.eq(Role::Owner))
        .one(&db)
        .await?
        .context("the tenant has no owner")?;
    let principal = Principal {
        tenant_id: tenant.id,
        user_id: owner.id,
        role: Role::Owner,
    };
    let (_, key) = api_keys::create_api_key(
        &db,
        &principal,
        "ingest-bench",
        &[Scope::Ingest],
        Utc::now(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let leads: Arc<Vec<Uuid>> = Arc::new(
        lead::Entity::find()
            .select_only()
            .column(lead::Column::Id)
            .filter(lead::Column::TenantId.eq(tenant.id))
            .filter(lead::Column::Status.eq(LeadStatus::Open))
            .into_tuple()
            .all(&db)
            .await?,
    );
    if leads.is_empty() {
        bail!("tenant {} has no open leads", tenant.slug);
    }
    println!(
        "LeadRank ingest bench: {} on {}, {} open leads, {} clients, batches of {}, {} s each, {} cores",
        tenant.slug,
        leadrank::config::redact(&database_url),
        leads.len(),
        options.clients,
        options.batch,
        options.seconds,
        std::thread::available_parallelism().map_or(0, usize::from),
    );
    leadrank::tls::install_provider();
    let client = reqwest::Client::new();
    let key = Arc::new(key);

    // Batches through POST /v1/events.
    let batch = options.batch;
    let (c, k, l, url) = (
        client.clone(),
        Arc::clone(&key),
        Arc::clone(&leads),
        format!("{base}/v1/events"),
    );
    let (ok, failed, latencies) = drive(options.clients, options.seconds, move |n| {
        let (c, k, l, url) = (c.clone(), Arc::clone(&k), Arc::clone(&l), url.clone());
        async move {
            let events: Vec<Value> = (0..batch as u64)
                .map(|i| {
                    let x = n
                        .wrapping_mul(31)
                        .wrapping_add(i.wrapping_mul(2_654_435_761));
                    json!({
                        "lead": {"id": l[(x as usize) % l.len()]},
                        "signal": SIGNALS[(x as usize / 7) % SIGNALS.len()],
                    })
                })
                .collect();
            let Ok(response) = c
                .post(&url)
                .bearer_auth(k.as_str())
                .json(&events)
                .send()
                .await
            else {
                return false;
            };
            response.status().is_success()
                && response
                    .json::<Value>()
                    .await
                    .is_ok_and(|b| b["accepted"].as_u64() == Some(batch as u64))
        }
    })
    .await;
    println!(
        "POST /v1/events, {batch} a batch      {:>9.0} events/s   {:>6.1} batches/s   p50 {:>8.2} ms   p99 {:>8.2} ms   {} failed",
        (ok * batch) as f64 / options.seconds as f64,
        ok as f64 / options.seconds as f64,
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
        failed
    );

    // The single-row floor: one recordActivity per request.
    let (c, k, l, url) = (
        client.clone(),
        Arc::clone(&key),
        Arc::clone(&leads),
        format!("{base}/graphql"),
    );
    let (ok, failed, latencies) = drive(options.clients, options.seconds, move |n| {
        let (c, k, l, url) = (c.clone(), Arc::clone(&k), Arc::clone(&l), url.clone());
        async move {
            let body = json!({
                "query": "mutation($input: RecordActivityInput!) { recordActivity(input: $input) { lead { id } } }",
                "variables": {"input": {"leadId": l[(n as usize) % l.len()], "signalKey": SIGNALS[(n as usize / 7) % SIGNALS.len()]}}
            });
            let Ok(response) = c.post(&url).bearer_auth(k.as_str()).json(&body).send().await else {
                return false;
            };
            response
                .json::<Value>()
                .await
                .is_ok_and(|b| b.get("errors").is_none())
        }
    })
    .await;
    println!(
        "recordActivity, one a request     {:>9.0} events/s                        p50 {:>8.2} ms   p99 {:>8.2} ms   {} failed",
        ok as f64 / options.seconds as f64,
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
        failed
    );
    Ok(())
}
