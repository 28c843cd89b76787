//! `rescore-bench`: times the nightly re-scoring of one tenant and, on the
//! same database in the same run, the floor: reading every lead row once
//! and rewriting score and tier of every row in one bulk statement.
//!
//! ```text
//! DATABASE_URL=… cargo run --release -- demo --tenant big --leads 1000000
//! DATABASE_URL=… cargo run --release -p tests --bin rescore-bench -- --tenant big
//! ```
//!
//! The run is scored a day after now (`--days N` for N days, to rerun on
//! the same data), so decay moves scores and the job has real writing to do. Peak memory is the process's high-water mark
//! (VmHWM) after the run, before the floor is measured.

#![allow(clippy::print_stdout)]
// The benchmark reads its tenant and times the floor straight from the
// database.
#![allow(clippy::disallowed_methods)]
// The schema's merged query and mutation types nest deeper than the
// compiler's default limit when their futures are laid out.
#![recursion_limit = "256"]

use std::time::Instant;

use anyhow::Context;
use chrono::{Duration, Utc};
use entity::{lead, tenant};
use futures_util::TryStreamExt;
use leadrank::{
    config::Settings,
    db,
    jobs::rescore::{self, Options, Outcome, Trigger},
    service::leads::rescoring::FactColumns,
};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement};

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut slug = "demo".to_owned();
    let mut batch_size = None;
    // Each run on the same data should find every score decayed, so a
    // rerun is told to score further ahead than the one before.
    let mut days = 1i64;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tenant" => slug = args.next().context("--tenant needs a slug")?,
            "--batch-size" => {
                batch_size = Some(
                    args.next()
                        .context("--batch-size needs a number")?
                        .parse()?,
                );
            }
            "--days" => days = args.next().context("--days needs a number")?.parse()?,
            other => anyhow::bail!(
                "unknown argument {other}; use --tenant SLUG [--batch-size N] [--days N]"
            ),
        }
    }
    let settings = Settings::from_env()?;
    let conn = db::connect_system(&settings).await?;
    db::migrate(&conn).await?;
    let tenant = tenant::Entity::find()
        .filter(tenant::Column::Slug.eq(&slug))
        .one(&conn)
        .await?
        .with_context(|| {
            format!("no tenant \"{slug}\"; load it with `leadrank demo --tenant {slug}`")
        })?;

    let backend = conn.get_database_backend();
    let at = Utc::now() + Duration::days(days);
    let options = Options {
        batch_size,
        ..Options::default()
    };
    let started = Instant::now();
    let outcome = rescore::run(&conn, tenant.id, Trigger::Manual, None, at, &options).await?;
    let job_secs = started.elapsed().as_secs_f64();
    let Outcome::Finished(run) = outcome else {
        anyhow::bail!("another process holds the tenant's re-scoring lease");
    };
    let rss = peak_rss_mb();
    let details = run.details.clone().unwrap_or_default();

    // The floor: every open lead's scoring facts read once, then the score
    // and priority of as many rows rewritten in one statement, in a narrow
    // table with a primary key and one queue index.
    let started = Instant::now();
    let mut rows = 0u64;
    let mut stream = FactColumns::select(lead::Entity::find())
        .filter(lead::Column::TenantId.eq(tenant.id))
        .filter(lead::Column::Status.eq(entity::enums::LeadStatus::Open))
        .into_model::<FactColumns>()
        .stream(&conn)
        .await?;
    while let Some(row) = stream.try_next().await? {
        rows += u64::from(!row.attributes.is_empty() && !row.signal_state.is_empty());
    }
    drop(stream);
    let read_secs = started.elapsed().as_secs_f64();
    let param = |n: usize| match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => format!("?{n}"),
    };
    for sql in [
        "DROP TABLE IF EXISTS floor_scores".to_owned(),
        "CREATE TABLE floor_scores (tenant_id uuid NOT NULL, lead_id uuid NOT NULL, \
         owner_id uuid, score double precision NOT NULL, priority bigint NOT NULL, \
         PRIMARY KEY (tenant_id, lead_id))"
            .to_owned(),
        "CREATE INDEX ix_floor_scores_queue ON floor_scores (tenant_id, owner_id, priority)"
            .to_owned(),
    ] {
        conn.execute_unprepared(&sql).await?;
    }
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "INSERT INTO floor_scores SELECT tenant_id, lead_id, owner_id, score, priority \
             FROM lead_scores WHERE tenant_id = {} AND status = 'OPEN'",
            param(1)
        ),
        [tenant.id.into()],
    ))
    .await?;
    let started = Instant::now();
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "UPDATE floor_scores SET score = score * 0.99, priority = priority - 1 \
             WHERE tenant_id = {}",
            param(1)
        ),
        [tenant.id.into()],
    ))
    .await?;
    let write_secs = started.elapsed().as_secs_f64();
    conn.execute_unprepared("DROP TABLE floor_scores").await?;
    let floor = read_secs + write_secs;

    println!(
        "re-scoring {} on {}: {:?}",
        slug,
        leadrank::config::redact(&settings.database_url),
        run.status
    );
    println!(
        "  {} open leads scanned, {} written, {} newly cold, in {job_secs:.1} s = {:.0} leads/s",
        run.leads_scanned,
        run.leads_changed,
        run.newly_cold,
        run.leads_scanned as f64 / job_secs
    );
    println!(
        "  split: read {} ms, score {} ms, write {} ms (batch {}; the next batch is read and scored while one is written)",
        details["readMs"],
        details["scoreMs"],
        details["writeMs"],
        options.batch_size(backend)
    );
    println!("  peak RSS {rss:.0} MB");
    println!(
        "floor: read {rows} leads' facts {read_secs:.1} s + rewrite as many narrow rows {write_secs:.1} s = {floor:.1} s; the job takes {:.2}× the floor",
        job_secs / floor
    );
    if let Some(error) = run.error {
        anyhow::bail!("the run failed: {error}");
    }
    Ok(())
}
