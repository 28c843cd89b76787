//! `http-bench`: drives the real HTTP server the way salespeople do, on the
//! demo tenant, and prints throughput and latency beside what the database
//! alone costs for the same work.
//!
//! ```text
//! DATABASE_URL=sqlite://leadrank.db cargo run --release -- demo --tenant demo --leads 100000
//! DATABASE_URL=sqlite://leadrank.db cargo run --release -p tests --bin http-bench -- --tenant demo
//! ```
//!
//! The server runs in this process on a random port, with a fresh signing
//! secret: the bench signs the reps' access tokens itself, so it needs no
//! passwords. Clients and server share the machine's cores, so the figures
//! include the cost of the clients.

#![allow(clippy::print_stdout)]
// The benchmark reads its tenant and times the floor straight from the
// database.
#![allow(clippy::disallowed_methods)]
// The schema's merged query and mutation types nest deeper than the
// compiler's default limit when their futures are laid out.
#![recursion_limit = "256"]

mod subscribers;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use tests::BenchServer;

use anyhow::{Context, bail};
use chrono::Utc;
use entity::{
    enums::{LeadStatus, Role},
    lead, lead_score, tenant, user,
};
use leadrank::{
    auth::{Principal, tokens::TokenKeys},
    service::leads::lead_query,
    tenancy::Walled,
};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::Expr,
};
use serde_json::{Value, json};
use uuid::Uuid;

const TYPENAME: &str = "{ __typename }";

const ME: &str = "{ me { id } }";

const QUEUE_LIGHT: &str =
    "query($limit: Int!) { followUpQueue(limit: $limit) { lead { id score tier } } }";

/// A page of the rep's lead list as a list view shows it: scores only,
/// then with the names and companies a row also shows.
const LEADS_LIGHT: &str = "{ leads(first: 50) { edges { cursor node { id score tier } } } }";
const LEADS_NAMED: &str =
    "{ leads(first: 50) { edges { cursor node { id name company score tier } } } }";
const QUEUE: &str = "query($limit: Int!) { followUpQueue(limit: $limit) { priority dueAt overdueDays reasons
    lead { id name company tier score flags nextFollowUpAt stage { key name } owner { id displayName }
      scoreBreakdown { total tier modelVersion computedAt
        contributions { dimensionKey label kind rawValue normalized weight points }
        overrides { rule effect reason } } } } }";

const RECORD: &str = "mutation($input: RecordActivityInput!) { recordActivity(input: $input) {
    lead { id score tier flags version nextFollowUpAt } } }";

const SIGNALS: [&str; 5] = [
    "call",
    "email",
    "website_visit",
    "inbound_inquiry",
    "meeting",
];

struct Options {
    tenant: String,
    clients: usize,
    seconds: u64,
    warmup: u64,
    /// WebSocket subscribers for the second recordActivity run.
    subscribers: usize,
    /// Only the scenarios whose name contains this, for a profiler.
    only: Option<String>,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        tenant: "demo".into(),
        clients: 8,
        seconds: 10,
        warmup: 2,
        subscribers: 0,
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--tenant" => options.tenant = value()?,
            "--clients" => options.clients = value()?.parse().context("--clients")?,
            "--seconds" => options.seconds = value()?.parse().context("--seconds")?,
            "--warmup" => options.warmup = value()?.parse().context("--warmup")?,
            "--only" => options.only = Some(value()?),
            "--subscribers" => {
                options.subscribers = value()?.parse().context("--subscribers")?;
            }
            "-h" | "--help" => {
                println!(
                    "http-bench [--tenant demo] [--clients 8] [--seconds 10] [--warmup 2] [--subscribers 200] [--only NAME]\n\
                     --only runs just the scenarios whose name contains NAME (to profile one)\n\
                     --subscribers N runs recordActivity again with N leadChanged subscribers\n\
                     connected (as the reps, in turn) and reports when changes reached them.\n\
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

/// Latencies of one scenario.
struct Figures {
    name: String,
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

impl Figures {
    fn quantile(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[i].as_secs_f64() * 1000.0
    }

    fn print(&self) {
        if self.latencies.is_empty() && self.errors == 0 {
            return;
        }
        println!(
            "{:<34} {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>8.2} ms   {} requests, {} errors",
            self.name,
            self.latencies.len() as f64 / self.elapsed.as_secs_f64(),
            self.quantile(0.50),
            self.quantile(0.99),
            self.quantile(1.0),
            self.latencies.len(),
            self.errors,
        );
    }
}

/// Runs `work` from `clients` concurrent tasks for the warm-up, then for
/// the measured time, and collects the measured latencies.
async fn drive<F, Fut>(name: &str, options: &Options, work: F) -> Figures
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let mut figures = Figures {
        name: name.to_owned(),
        latencies: Vec::new(),
        errors: 0,
        elapsed: Duration::from_secs(options.seconds),
    };
    if options
        .only
        .as_ref()
        .is_some_and(|only| !name.contains(only.as_str()))
    {
        return figures;
    }
    let work = Arc::new(work);
    let warm_until = Instant::now() + Duration::from_secs(options.warmup);
    let stop_at = warm_until + Duration::from_secs(options.seconds);
    let tasks: Vec<_> = (0..options.clients)
        .map(|client| {
            let work = Arc::clone(&work);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                let mut n: u64 = client as u64 * 1_000_003;
                loop {
                    let started = Instant::now();
                    if started >= stop_at {
                        break;
                    }
                    n = n
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let ok = work(client, n >> 17).await;
                    if started >= warm_until {
                        if ok {
                            latencies.push(started.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    for task in tasks {
        if let Ok((latencies, errors)) = task.await {
            figures.latencies.extend(latencies);
            figures.errors += errors;
        }
    }
    figures.latencies.sort();
    figures
}

/// A rep with a token and some of their open leads.
struct Rep {
    principal: Principal,
    token: String,
    leads: Vec<Uuid>,
}

async fn reps(
    db: &DatabaseConnection,
    tenant: &tenant::Model,
    keys: &TokenKeys,
) -> anyhow::Result<Vec<Rep>> {
    let users = user::Entity::find()
        .filter(user::Column::TenantId.eq(tenant.id))
        .filter(user::Column::Role.eq(Role::Rep))
        .all(db)
        .await?;
    let mut reps = Vec::new();
    let now = Utc::now();
    for u in users {
        let leads: Vec<Uuid> = lead::Entity::find()
            .select_only()
            .column(lead::Column::Id)
            .filter(lead::Column::TenantId.eq(tenant.id))
            .filter(lead::Column::OwnerId.eq(u.id))
            .filter(lead::Column::Status.eq(LeadStatus::Open))
            .order_by_asc(lead::Column::Id)
            .limit(500)
            .into_tuple()
            .all(db)
            .await?;
        if leads.is_empty() {
            continue;
        }
        let principal = Principal {
            tenant_id: tenant.id,
            user_id: u.id,
            role: u.role,
        };
        let token = keys.issue(&principal, now, now + chrono::Duration::hours(2))?;
        reps.push(Rep {
            principal,
            token,
            leads,
        });
    }
    if reps.is_empty() {
        bail!(
            "tenant {} has no rep with open leads; load it with `leadrank demo`",
            tenant.slug
        );
    }
    Ok(reps)
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    query: &str,
    variables: Value,
) -> bool {
    // Skim the answer for errors without building its data, closer to
    // wrk: a page of explanations parsed into a JSON tree costs the
    // client about as much as the server spends making it.
    #[derive(serde::Deserialize)]
    struct Answer {
        errors: Option<Value>,
    }
    let Some(response) = send(client, url, token, query, variables).await else {
        return false;
    };
    response.bytes().await.is_ok_and(|body| {
        serde_json::from_slice::<Answer>(&body)
            .is_ok_and(|answer| answer.errors.as_ref().is_none_or(conflict))
    })
}

/// Two clients updating the same lead at once: one gets CONFLICT, as
/// a salesperson would; that is the product working, not a failure.
fn conflict(errors: &Value) -> bool {
    errors[0]["extensions"]["code"] == "CONFLICT"
}

/// The answer's body when the request succeeded (a CONFLICT counts as success).
async fn post_json(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    query: &str,
    variables: Value,
) -> Option<Value> {
    let response = send(client, url, token, query, variables).await?;
    let body = response.json::<Value>().await.ok()?;
    body.get("errors").is_none_or(conflict).then_some(body)
}

/// The answer, when the server answered with a success status.
async fn send(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    query: &str,
    variables: Value,
) -> Option<reqwest::Response> {
    let response = client
        .post(url)
        .bearer_auth(token)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .ok()?;
    response.status().is_success().then_some(response)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let server = BenchServer::start(
        &options.tenant,
        &[(
            "LEADRANK_DB_MAX_CONNECTIONS",
            (options.clients * 2).to_string(),
        )],
    )
    .await?;
    let BenchServer {
        base,
        db,
        tenant,
        keys,
        database_url,
    } = server;
    let url = format!("{base}/graphql");
    let reps = Arc::new(reps(&db, &tenant, &keys).await?);
    let total: u64 = lead::Entity::find()
        .filter(lead::Column::TenantId.eq(tenant.id))
        .count(&db)
        .await?;
    println!(
        "LeadRank HTTP bench: {} on {}, {} leads, {} reps, {} clients, {} s each after {} s warm-up, {} cores",
        tenant.slug,
        leadrank::config::redact(&database_url),
        total,
        reps.len(),
        options.clients,
        options.seconds,
        options.warmup,
        std::thread::available_parallelism().map_or(0, usize::from),
    );

    leadrank::tls::install_provider();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.clients)
        .build()?;
    let mut results = Vec::new();

    for (name, query, variables) in [
        ("{ __typename } over HTTP", TYPENAME, json!({})),
        ("{ me { id } } over HTTP", ME, json!({})),
        (
            "followUpQueue(50) { id score tier }",
            QUEUE_LIGHT,
            json!({"limit": 50}),
        ),
        ("leads(first: 50) { id score tier }", LEADS_LIGHT, json!({})),
        (
            "leads(first: 50) { id name company score tier }",
            LEADS_NAMED,
            json!({}),
        ),
    ] {
        let (c, u, r) = (client.clone(), url.clone(), Arc::clone(&reps));
        results.push(
            drive(name, &options, move |_, n| {
                let (c, u, r, v) = (c.clone(), u.clone(), Arc::clone(&r), variables.clone());
                async move {
                    let rep = &r[(n as usize) % r.len()];
                    post(&c, &u, &rep.token, query, v).await
                }
            })
            .await,
        );
    }

    let (c, u, r) = (client.clone(), url.clone(), Arc::clone(&reps));
    results.push(
        drive("followUpQueue(50), explained", &options, move |_, n| {
            let (c, u, r) = (c.clone(), u.clone(), Arc::clone(&r));
            async move {
                let rep = &r[(n as usize) % r.len()];
                post(&c, &u, &rep.token, QUEUE, json!({"limit": 50})).await
            }
        })
        .await,
    );

    let (c, u, r) = (client.clone(), url.clone(), Arc::clone(&reps));
    results.push(
        drive("recordActivity over HTTP", &options, move |_, n| {
            let (c, u, r) = (c.clone(), u.clone(), Arc::clone(&r));
            async move {
                let rep = &r[(n as usize) % r.len()];
                let lead = rep.leads[(n as usize / r.len()) % rep.leads.len()];
                let signal = SIGNALS[(n as usize) % SIGNALS.len()];
                let input = json!({"leadId": lead.to_string(), "signalKey": signal});
                post(&c, &u, &rep.token, RECORD, json!({"input": input})).await
            }
        })
        .await,
    );

    if options.subscribers > 0 {
        results.push(with_subscribers(&options, &client, &url, &reps).await?);
    }

    // The database alone: the same queue query, and a one-row update
    // keyed like the mutation's, through the same pool and ORM, each
    // statement telling PostgreSQL's row-level security the tenant as the
    // server does.
    let (d, r) = (db.clone(), Arc::clone(&reps));
    results.push(
        drive("  database: queue query", &options, move |_, n| {
            let (d, r) = (d.clone(), Arc::clone(&r));
            async move {
                let rep = &r[(n as usize) % r.len()];
                let walled = Walled::new(&d, rep.principal.tenant_id);
                lead_query::follow_up_queue(&walled.scope(), rep.principal.user_id, 50, Utc::now())
                    .await
                    .is_ok()
            }
        })
        .await,
    );
    let (d, r) = (db.clone(), Arc::clone(&reps));
    results.push(
        drive("  database: one-row update", &options, move |_, n| {
            let (d, r) = (d.clone(), Arc::clone(&r));
            async move {
                let rep = &r[(n as usize) % r.len()];
                let lead = rep.leads[(n as usize / r.len()) % rep.leads.len()];
                let walled = Walled::new(&d, rep.principal.tenant_id);
                walled
                    .scope()
                    .update_many::<lead_score::Entity>()
                    .col_expr(lead_score::Column::ScoredAt, Expr::value(Some(Utc::now())))
                    .filter(lead_score::Column::LeadId.eq(lead))
                    .exec(&walled)
                    .await
                    .is_ok()
            }
        })
        .await,
    );

    println!();
    for figures in &results {
        figures.print();
    }
    if results.iter().any(|f| f.errors > 0) {
        bail!("some requests failed; see the error counts above");
    }
    Ok(())
}

/// recordActivity again, with `options.subscribers` leadChanged
/// subscribers connected; prints when the changes reached them.
async fn with_subscribers(
    options: &Options,
    client: &reqwest::Client,
    url: &str,
    reps: &Arc<Vec<Rep>>,
) -> anyhow::Result<Figures> {
    let tokens: Vec<String> = (0..options.subscribers)
        .map(|i| reps[i % reps.len()].token.clone())
        .collect();
    let arrivals = subscribers::connect(url, &tokens).await?;
    let committed: Arc<
        std::sync::Mutex<std::collections::HashMap<subscribers::ChangeKey, Instant>>,
    > = Arc::default();
    let (c, u, r, k) = (
        client.clone(),
        url.to_owned(),
        Arc::clone(reps),
        Arc::clone(&committed),
    );
    let name = format!("recordActivity, {} subscribers", options.subscribers);
    let figures = drive(&name, options, move |_, n| {
        let (c, u, r, k) = (c.clone(), u.clone(), Arc::clone(&r), Arc::clone(&k));
        async move {
            let rep = &r[(n as usize) % r.len()];
            let lead = rep.leads[(n as usize / r.len()) % rep.leads.len()];
            let signal = SIGNALS[(n as usize) % SIGNALS.len()];
            let input = json!({"leadId": lead.to_string(), "signalKey": signal});
            let Some(body) = post_json(&c, &u, &rep.token, RECORD, json!({"input": input})).await
            else {
                return false;
            };
            let saved = &body["data"]["recordActivity"]["lead"];
            if let (Some(id), Some(version), Ok(mut map)) =
                (saved["id"].as_str(), saved["version"].as_i64(), k.lock())
            {
                map.insert((id.to_owned(), version), Instant::now());
            }
            true
        }
    })
    .await;
    // Changes still on their way when the run stopped.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let committed = committed.lock().map(|m| m.clone()).unwrap_or_default();
    let delays = arrivals.delays(&committed);
    let at = |q: f64| {
        delays
            .get(((delays.len().saturating_sub(1)) as f64 * q).round() as usize)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    let per_change = options.subscribers as f64 / reps.len() as f64;
    println!(
        "event latency, commit to subscriber: p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms   \
         {} arrivals of {} changes (each owner has {:.0} subscribers)",
        at(0.5),
        at(0.99),
        at(1.0),
        delays.len(),
        committed.len(),
        per_change,
    );
    Ok(figures)
}
