//! Runs each tenant's re-scoring once a night at the tenant's hour, in its
//! time zone. A night is a local calendar date: a tenant is due once its
//! local clock has passed the hour on a date it has no scheduled run for,
//! so a daylight-saving change neither skips a night nor runs one twice.

use crate::tenancy::{self, Walled};
use std::{sync::Arc, time::Duration};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use entity::{job_run, tenant};
use sea_orm::{ColumnTrait, DatabaseConnection, QueryFilter, QueryOrder};
use tokio::sync::Semaphore;

use crate::error::AppResult;
use crate::service::leads::rescore_run::{self as rescore, KIND, Options, Outcome, Trigger};

/// The local date of the night `now` falls in for a tenant whose job runs
/// at `hour` in `zone`: the local date once the hour has passed, else the
/// night before's.
pub fn night_of(now: DateTime<Utc>, zone: Tz, hour: u32) -> NaiveDate {
    let local = zone.from_utc_datetime(&now.naive_utc());
    let date = local.date_naive();
    if local.time() >= chrono::NaiveTime::from_hms_opt(hour.min(23), 0, 0).unwrap_or_default() {
        date
    } else {
        date.pred_opt().unwrap_or(date)
    }
}

/// Whether the tenant's scheduled run for the current night is still to do.
///
/// # Errors
/// Database errors.
pub async fn is_due(
    db: &DatabaseConnection,
    tenant: &tenant::Model,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let zone: Tz = tenant.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let hour = u32::try_from(tenant.nightly_hour).unwrap_or(2);
    let night = night_of(now, zone, hour);
    let walled = Walled::new(db, tenant.id);
    let last = walled
        .scope()
        .select::<job_run::Entity>()
        .filter(job_run::Column::Kind.eq(KIND))
        .filter(job_run::Column::Trigger.eq(Trigger::Schedule.as_str()))
        .order_by_desc(job_run::Column::QueuedAt)
        .one(&walled)
        .await?;
    // A new tenant's first night is the one after it signed up.
    let since = last.map_or(tenant.created_at, |run| run.queued_at);
    Ok(night_of(since, zone, hour) < night)
}

/// Runs every due tenant now, `concurrency` at a time; one tenant's
/// failure is logged and does not stop the others. Returns the runs made.
///
/// # Errors
/// Database errors listing the tenants.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn run_due(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    concurrency: usize,
    options: &Options,
) -> AppResult<Vec<Outcome>> {
    let tenants = tenancy::tenants().all(db).await?;
    let mut due = Vec::new();
    for t in tenants {
        // A digest that fails is logged and tried again at the next tick;
        // it never holds up the nightly runs.
        if let Err(err) = super::digest::send_if_due(db, &t, now).await {
            tracing::error!(tenant_id = %t.id, tenant_slug = %t.slug, error = %err, "the weekly digest could not be sent");
        }
        if is_due(db, &t, now).await? {
            due.push(t);
        }
    }
    run_tenants(db, due, Trigger::Schedule, now, concurrency, options).await
}

/// Runs the job for `tenants`, `concurrency` at a time.
///
/// # Errors
/// Never for a tenant's failure (that is recorded on its run).
#[tracing::instrument(skip_all, fields(tenants = tenants.len(), trigger = trigger.as_str()))]
pub async fn run_tenants(
    db: &DatabaseConnection,
    tenants: Vec<tenant::Model>,
    trigger: Trigger,
    now: DateTime<Utc>,
    concurrency: usize,
    options: &Options,
) -> AppResult<Vec<Outcome>> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::new();
    for t in tenants {
        let (db, options, permits) = (db.clone(), options.clone(), Arc::clone(&permits));
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let outcome = rescore::run(&db, t.id, trigger, None, now, &options).await;
            if let Err(err) = &outcome {
                tracing::error!(tenant_id = %t.id, tenant_slug = %t.slug, error = %err, "re-scoring could not run");
            }
            outcome
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        if let Ok(Ok(outcome)) = task.await {
            outcomes.push(outcome);
        }
    }
    Ok(outcomes)
}

/// Checks every minute for tenants whose night has come, for as long as
/// the server runs.
pub fn spawn(db: DatabaseConnection, concurrency: usize) {
    tokio::spawn(async move {
        let options = Options::default();
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            if let Err(err) = run_due(&db, Utc::now(), concurrency, &options).await {
                tracing::error!(error = %err, "the nightly scheduler could not check tenants");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_night_starts_at_the_tenants_local_hour() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 00:30 UTC is 01:30 in Berlin in winter: still the night before.
        assert_eq!(
            night_of(at("2026-11-24T00:30:00Z"), berlin, 2),
            NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
        );
        assert_eq!(
            night_of(at("2026-11-24T01:05:00Z"), berlin, 2),
            NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
        );
    }

    #[test]
    fn daylight_saving_changes_neither_skip_nor_double_a_night() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // Clocks go from 02:00 to 03:00 on 29 March 2026: 02:00 never
        // happens, yet that night still comes once, at 03:00 local.
        let before = night_of(at("2026-03-28T23:59:00Z"), berlin, 2);
        let after = night_of(at("2026-03-29T01:00:00Z"), berlin, 2);
        assert_eq!(after, before.succ_opt().unwrap());
        // Clocks go back on 25 October: 02:30 happens twice, one night.
        let first = night_of(at("2026-10-25T00:30:00Z"), berlin, 2);
        let second = night_of(at("2026-10-25T01:30:00Z"), berlin, 2);
        assert_eq!(first, second);
    }
}
