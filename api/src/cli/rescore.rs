//! `leadrank rescore`: the nightly job from the command line, with progress
//! and a summary on standard output.

use crate::tenancy;
use chrono::Utc;
use entity::{enums::JobStatus, tenant};
use sea_orm::{ColumnTrait, DatabaseConnection, QueryFilter};

use crate::{
    jobs::scheduler,
    service::leads::rescore_run::{Options, Outcome, Trigger},
};

/// Runs the job for one tenant or all, prints a line per tenant, and fails
/// when any run failed or a tenant is unknown.
///
/// # Errors
/// An unknown tenant, a failed run, or the database.
#[allow(clippy::print_stdout)]
pub async fn rescore(
    db: &DatabaseConnection,
    slug: Option<&str>,
    all: bool,
    concurrency: usize,
) -> anyhow::Result<()> {
    let tenants = if all {
        tenancy::tenants().all(db).await?
    } else {
        let slug = slug.unwrap_or_default();
        let found = tenancy::tenants()
            .filter(tenant::Column::Slug.eq(slug))
            .one(db)
            .await?;
        vec![found.ok_or_else(|| anyhow::anyhow!("there is no tenant \"{slug}\""))?]
    };
    let names: std::collections::HashMap<_, _> =
        tenants.iter().map(|t| (t.id, t.slug.clone())).collect();
    let started = std::time::Instant::now();
    let outcomes = scheduler::run_tenants(
        db,
        tenants,
        Trigger::Manual,
        Utc::now(),
        concurrency,
        &Options::default(),
    )
    .await?;
    let mut failed = 0;
    for outcome in outcomes {
        match outcome {
            Outcome::Busy => println!("skipped: another process is re-scoring this tenant"),
            Outcome::Finished(run) => {
                let slug = names.get(&run.tenant_id).map_or("?", String::as_str);
                let seconds = match (run.started_at, run.finished_at) {
                    (Some(s), Some(f)) => (f - s).num_milliseconds() as f64 / 1000.0,
                    _ => 0.0,
                };
                println!(
                    "{slug}: {:?}, {} leads scanned, {} changed, {} newly cold, {} stale, {} churn risk, {seconds:.1} s{}",
                    run.status,
                    run.leads_scanned,
                    run.leads_changed,
                    run.newly_cold,
                    run.stale,
                    run.churn_risk,
                    run.error.map(|e| format!(": {e}")).unwrap_or_default(),
                );
                failed += usize::from(run.status != JobStatus::Succeeded);
            }
        }
    }
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
    if failed > 0 {
        anyhow::bail!("{failed} tenant(s) failed to re-score");
    }
    Ok(())
}
