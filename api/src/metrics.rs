//! Prometheus metrics, served at `/metrics` in the text format when
//! `LEADRANK_METRICS_TOKEN` is set (and asked for with it as a bearer
//! token).
//!
//! One registry per process, as the code that counts (jobs, the webhook
//! worker, the WebSocket handler, login throttling) runs far from any
//! request. Labels are bounded: operation names are the client's, so only
//! the first [`MAX_OPERATIONS`] distinct well-formed names get a series of
//! their own and the rest count as `other`; outcomes are error codes.
//! Gauges of the database (pool, webhook outbox) are read when scraped.

use std::{
    collections::HashSet,
    sync::{LazyLock, Mutex},
    time::Duration,
};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

/// Distinct operation names that get series of their own.
pub const MAX_OPERATIONS: usize = 200;

/// Latency buckets, seconds: 1 ms to 30 s.
const LATENCY: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Job durations, seconds: 100 ms to an hour.
const JOB_DURATION: &[f64] = &[0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0];

struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pool: IntGaugeVec,
    pool_acquire: Histogram,
    job_runs: IntCounterVec,
    job_duration: HistogramVec,
    leads_scored: IntCounterVec,
    events: IntCounterVec,
    outbox: IntGauge,
    deliveries: IntCounterVec,
    subscribers: IntGauge,
    subscribers_dropped: IntCounter,
    login_throttled: IntCounter,
    operations: Mutex<HashSet<String>>,
}

#[allow(clippy::expect_used)] // Fixed names and labels: a mistake shows on the first test.
static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry =
        Registry::new_custom(Some("leadrank".into()), None).expect("the metrics prefix is valid");
    let counter = |name: &str, help: &str, labels: &[&str]| {
        let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid counter");
        registry
            .register(Box::new(c.clone()))
            .expect("registered once");
        c
    };
    let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
        let h = HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        )
        .expect("a valid histogram");
        registry
            .register(Box::new(h.clone()))
            .expect("registered once");
        h
    };
    let gauge = |name: &str, help: &str| {
        let g = IntGauge::new(name, help).expect("a valid gauge");
        registry
            .register(Box::new(g.clone()))
            .expect("registered once");
        g
    };
    let single = |name: &str, help: &str| {
        let c = IntCounter::new(name, help).expect("a valid counter");
        registry
            .register(Box::new(c.clone()))
            .expect("registered once");
        c
    };
    let pool = IntGaugeVec::new(
        Opts::new("db_pool_connections", "database pool connections by state"),
        &["state"],
    )
    .expect("a valid gauge");
    registry
        .register(Box::new(pool.clone()))
        .expect("registered once");
    let pool_acquire = Histogram::with_opts(
        HistogramOpts::new(
            "db_pool_acquire_seconds",
            "time a scrape of /metrics waited to acquire a database connection: a sample of the pool's wait",
        )
        .buckets(LATENCY.to_vec()),
    )
    .expect("a valid histogram");
    registry
        .register(Box::new(pool_acquire.clone()))
        .expect("registered once");
    Metrics {
        requests: counter(
            "http_requests_total",
            "requests by GraphQL operation name (or route) and outcome (ok or the first error's code)",
            &["operation", "outcome"],
        ),
        latency: histogram(
            "http_request_duration_seconds",
            "request latency by GraphQL operation name (or route)",
            &["operation"],
            LATENCY,
        ),
        pool,
        pool_acquire,
        job_runs: counter(
            "job_runs_total",
            "re-scoring runs by trigger and final status",
            &["trigger", "status"],
        ),
        job_duration: histogram(
            "job_run_duration_seconds",
            "re-scoring run duration by trigger",
            &["trigger"],
            JOB_DURATION,
        ),
        leads_scored: counter(
            "leads_scored_total",
            "leads scored and written, by path (job, ingest)",
            &["path"],
        ),
        events: counter(
            "events_ingested_total",
            "ingested events by outcome (accepted, duplicate, rejected)",
            &["outcome"],
        ),
        outbox: gauge(
            "webhook_outbox_pending",
            "webhook deliveries waiting to be sent (read when scraped)",
        ),
        deliveries: counter(
            "webhook_deliveries_total",
            "webhook delivery attempts by outcome (delivered, retry, failed)",
            &["outcome"],
        ),
        subscribers: gauge(
            "subscribers_connected",
            "WebSocket connections open on this process",
        ),
        subscribers_dropped: single(
            "subscribers_dropped_total",
            "WebSocket connections the server closed (too slow, access taken away, refused)",
        ),
        login_throttled: single(
            "login_throttled_total",
            "sign-in and sign-up attempts refused by throttling",
        ),
        operations: Mutex::new(HashSet::new()),
        registry,
    }
});

/// The series name of an operation: its name when well formed and among
/// the first [`MAX_OPERATIONS`], else `other`; `anonymous` without one.
fn operation_label(name: Option<&str>) -> String {
    let Some(name) = name else {
        return "anonymous".to_owned();
    };
    let well_formed = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !well_formed {
        return "other".to_owned();
    }
    let Ok(mut known) = METRICS.operations.lock() else {
        return "other".to_owned();
    };
    if known.contains(name) || known.len() < MAX_OPERATIONS {
        known.insert(name.to_owned());
        name.to_owned()
    } else {
        "other".to_owned()
    }
}

/// One answered request: its operation (or route), outcome and time.
pub fn request(operation: Option<&str>, outcome: &str, elapsed: Duration) {
    let operation = operation_label(operation);
    METRICS
        .requests
        .with_label_values(&[operation.as_str(), outcome])
        .inc();
    METRICS
        .latency
        .with_label_values(&[operation.as_str()])
        .observe(elapsed.as_secs_f64());
}

/// A route's request (not GraphQL): `route` is fixed by the code.
pub fn route(route: &'static str, status: u16, elapsed: Duration) {
    let outcome = match status {
        200..=299 => "ok",
        401 => "UNAUTHENTICATED",
        403 => "FORBIDDEN",
        429 => "RATE_LIMITED",
        400..=499 => "BAD_REQUEST",
        _ => "INTERNAL",
    };
    METRICS.requests.with_label_values(&[route, outcome]).inc();
    METRICS
        .latency
        .with_label_values(&[route])
        .observe(elapsed.as_secs_f64());
}

/// A finished re-scoring run.
pub fn job_run(trigger: &str, status: &str, elapsed: Duration, leads_written: u64) {
    METRICS.job_runs.with_label_values(&[trigger, status]).inc();
    METRICS
        .job_duration
        .with_label_values(&[trigger])
        .observe(elapsed.as_secs_f64());
    METRICS
        .leads_scored
        .with_label_values(&["job"])
        .inc_by(leads_written);
}

/// An ingestion request's outcome counts and the leads it scored.
pub fn events_ingested(accepted: u64, duplicates: u64, rejected: u64, leads: u64) {
    for (outcome, n) in [
        ("accepted", accepted),
        ("duplicate", duplicates),
        ("rejected", rejected),
    ] {
        METRICS.events.with_label_values(&[outcome]).inc_by(n);
    }
    METRICS
        .leads_scored
        .with_label_values(&["ingest"])
        .inc_by(leads);
}

/// A webhook delivery attempt: `delivered`, `retry` or `failed`.
pub fn webhook_delivery(outcome: &'static str) {
    METRICS.deliveries.with_label_values(&[outcome]).inc();
}

/// A WebSocket connection opened (`true`) or closed.
pub fn subscriber(connected: bool) {
    if connected {
        METRICS.subscribers.inc();
    } else {
        METRICS.subscribers.dec();
    }
}

/// A WebSocket connection the server closed.
pub fn subscriber_dropped() {
    METRICS.subscribers_dropped.inc();
}

/// A sign-in or sign-up refused by throttling.
pub fn login_throttled() {
    METRICS.login_throttled.inc();
}

/// The pool's state, a sample of its wait, and the webhook outbox, read
/// now.
async fn sample_database(db: &DatabaseConnection) {
    let started = std::time::Instant::now();
    let (size, idle, max, acquired) = match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            let acquired = pool.acquire().await.is_ok();
            (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
                acquired,
            )
        }
        DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            let acquired = pool.acquire().await.is_ok();
            (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
                acquired,
            )
        }
        _ => (0, 0, 0, false),
    };
    if acquired {
        METRICS
            .pool_acquire
            .observe(started.elapsed().as_secs_f64());
    }
    let idle = u32::try_from(idle).unwrap_or(u32::MAX);
    for (state, n) in [
        ("idle", idle),
        ("in_use", size.saturating_sub(idle)),
        ("max", max),
    ] {
        METRICS.pool.with_label_values(&[state]).set(i64::from(n));
    }
    // The outbox across tenants: an operator's figure, not a tenant query.
    let pending = async {
        let txn = crate::tenancy::across_tenants(db).await?;
        let row = txn
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'PENDING'",
            ))
            .await?;
        txn.commit().await?;
        Ok::<_, sea_orm::DbErr>(row)
    }
    .await;
    match pending {
        Ok(Some(row)) => {
            if let Ok(n) = row.try_get::<i64>("", "n") {
                METRICS.outbox.set(n);
            }
        }
        Ok(None) => {}
        Err(err) => {
            tracing::warn!(error = %err, "metrics: the webhook outbox could not be counted")
        }
    }
}

/// The metrics in Prometheus's text format, with the database read now.
pub async fn render(db: &DatabaseConnection) -> String {
    sample_database(db).await;
    let mut out = Vec::new();
    if let Err(err) = TextEncoder::new().encode(&METRICS.registry.gather(), &mut out) {
        tracing::error!(error = %err, "metrics could not be encoded");
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_bounded() {
        assert_eq!(operation_label(None), "anonymous");
        assert_eq!(operation_label(Some("Queue")), "Queue");
        assert_eq!(operation_label(Some("drop table; --")), "other");
        assert_eq!(operation_label(Some(&"x".repeat(65))), "other");
    }
}
