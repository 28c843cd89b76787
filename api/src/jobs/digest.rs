//! The weekly digest: every Monday, at the company's nightly hour in its
//! time zone, a `digest.weekly` webhook event per team and one for the
//! whole company, carrying the week's headline figures (new leads, won and
//! lost, won rate per tier, the share of open leads overdue, the leads
//! whose tier rose), so a chat bot or mail tool can post them. Each week's
//! digest is recorded as a `digest` job run, which keeps it to once a week
//! however often the scheduler looks.

use crate::tenancy::Walled;
use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use entity::UserId;
use entity::{
    enums::{JobStatus, LeadStatus, Role},
    job_run, lead, team, tenant,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::service::lease::{Clock, Lease};
use crate::service::{
    analytics::review::{self, Counted, Window},
    begin_write,
    events::{self, Event, Outgoing},
    leads::follow_up,
};
use crate::{auth::Principal, error::AppResult, tenancy::TenantScope};

/// The job run kind that records a week's digest.
pub const KIND: &str = "digest";

/// Leads listed as the week's top movers.
const TOP_MOVERS: u64 = 5;

/// The week a digest sent at `now` covers: from the Monday before the
/// last one to the last one, at midnight in `zone`; none unless `now` is a
/// Monday at or after `hour` there.
#[must_use]
pub fn week_before(now: DateTime<Utc>, zone: Tz, hour: u32) -> Option<Window> {
    let local = now.with_timezone(&zone);
    let at_hour = NaiveTime::from_hms_opt(hour.min(23), 0, 0).unwrap_or(NaiveTime::MIN);
    if local.weekday() != Weekday::Mon || local.time() < at_hour {
        return None;
    }
    let monday = local.date_naive();
    // A day's first moment: midnight, or the hour after where summer
    // time skips midnight.
    let midnight = |day: chrono::NaiveDate| {
        [0, 1].into_iter().find_map(|h| {
            zone.from_local_datetime(&day.and_time(NaiveTime::from_hms_opt(h, 0, 0)?))
                .earliest()
                .map(|at| at.with_timezone(&Utc))
        })
    };
    Window::new(midnight(monday - Duration::days(7))?, midnight(monday)?).ok()
}

/// The week's figures over the counted leads, as the event carries them.
async fn figures<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    counted: &Counted,
    week: Window,
    now: DateTime<Utc>,
) -> AppResult<Value> {
    let leads = || scope.select::<lead::Entity>().filter(counted.leads.clone());
    let new_leads = leads()
        .filter(lead::Column::CreatedAt.gte(week.from))
        .filter(lead::Column::CreatedAt.lt(week.to))
        .count(scope.conn())
        .await?;
    let open = leads()
        .filter(lead::Column::Status.eq(LeadStatus::Open))
        .count(scope.conn())
        .await?;
    let overdue = leads()
        .filter(follow_up::overdue_condition(now))
        .count(scope.conn())
        .await?;
    let tiers = review::tier_report(scope, counted, week).await?;
    let (won, lost) = tiers
        .iter()
        .fold((0, 0), |(w, l), t| (w + t.won, l + t.lost));
    let won_value: f64 = tiers.iter().map(|t| t.won_value).sum();
    let rate = |won: u64, lost: u64| (won + lost > 0).then(|| won as f64 / (won + lost) as f64);
    // The leads whose tier rose during the week and are still open, best
    // tier first.
    let movers: Vec<(Uuid, String, Option<String>, String, f64)> = leads()
        .select_only()
        .columns([
            lead::Column::Id,
            lead::Column::Name,
            lead::Column::Company,
            lead::Column::Tier,
            lead::Column::Score,
        ])
        .filter(lead::Column::Status.eq(LeadStatus::Open))
        .filter(lead::Column::TierRoseAt.gte(week.from))
        .filter(lead::Column::TierRoseAt.lt(week.to))
        .order_by_asc(lead::Column::TierRank)
        .order_by_desc(lead::Column::Score)
        .order_by_asc(lead::Column::Id)
        .limit(TOP_MOVERS)
        .into_tuple()
        .all(scope.conn())
        .await?;
    Ok(json!({
        "from": week.from,
        "to": week.to,
        "newLeads": new_leads,
        "won": won,
        "lost": lost,
        "wonRate": rate(won, lost),
        "wonValue": won_value,
        "openLeads": open,
        "overdueLeads": overdue,
        "overdueShare": (open > 0).then(|| overdue as f64 / open as f64),
        "tiers": tiers.iter().map(|t| json!({
            "tier": t.tier, "won": t.won, "lost": t.lost, "wonRate": rate(t.won, t.lost),
            "wonValue": t.won_value,
        })).collect::<Vec<_>>(),
        "topMovers": movers.into_iter().map(|(id, name, company, tier, score)| json!({
            "id": id, "name": name, "company": company, "tier": tier, "score": score,
        })).collect::<Vec<_>>(),
    }))
}

/// Sends the tenant's digest for the week before `now`, when `now` is a
/// Monday at or after its nightly hour and none was sent for that week:
/// one event for the company (`team` null) and one per team. Returns
/// whether it sent them.
///
/// # Errors
/// Database errors.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %tenant.id))]
pub async fn send_if_due(
    db: &DatabaseConnection,
    tenant: &tenant::Model,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let zone: Tz = tenant.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let hour = u32::try_from(tenant.nightly_hour).unwrap_or(2);
    let Some(week) = week_before(now, zone, hour) else {
        return Ok(false);
    };
    // One process sends: the scheduler runs in every one.
    let walled = Walled::new(db, tenant.id);
    let Some(lease) = Lease::claim(
        &walled.scope(),
        KIND,
        &Lease::holder_for_run(KIND),
        Duration::minutes(5),
        Clock::starting_at(now),
    )
    .await?
    else {
        return Ok(false);
    };
    let sent = send(db, tenant, week, now).await;
    lease.release(&walled.scope()).await?;
    sent
}

/// [`send_if_due`] under the lease.
async fn send(
    db: &DatabaseConnection,
    tenant: &tenant::Model,
    week: Window,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let walled = Walled::new(db, tenant.id);
    let scope = walled.scope();
    let sent = scope
        .select::<job_run::Entity>()
        .filter(job_run::Column::Kind.eq(KIND))
        .filter(job_run::Column::QueuedAt.gte(week.to))
        .count(scope.conn())
        .await?;
    if sent > 0 {
        return Ok(false);
    }
    // The system reads as the company's owner would: every lead.
    let system = Principal {
        tenant_id: tenant.id,
        user_id: UserId(uuid::Uuid::nil()),
        role: Role::Owner,
    };
    let mut teams: Vec<Option<team::Model>> = vec![None];
    teams.extend(
        scope
            .select::<team::Entity>()
            .order_by_asc(team::Column::Name)
            .all(scope.conn())
            .await?
            .into_iter()
            .map(Some),
    );
    let mut out = Outgoing::default();
    for team in teams {
        let counted = review::counted(&scope, &system, team.as_ref().map(|t| t.id), None).await?;
        let mut data = figures(&scope, &counted, week, now).await?;
        data["team"] = team.map_or(Value::Null, |t| json!({"id": t.id, "name": t.name}));
        out.events.push(Event::weekly_digest(tenant.id, data, now));
    }
    let txn = begin_write(db).await?;
    let in_txn = TenantScope::enter(&txn, tenant.id).await?;
    in_txn
        .insert(job_run::ActiveModel {
            id: Set(Uuid::now_v7()),
            kind: Set(KIND.to_owned()),
            trigger: Set(crate::service::leads::rescore_run::Trigger::Schedule
                .as_str()
                .to_owned()),
            status: Set(JobStatus::Succeeded),
            queued_at: Set(now),
            started_at: Set(Some(now)),
            finished_at: Set(Some(now)),
            team_id: Set(None),
            requested_by: Set(None),
            heartbeat_at: Set(None),
            leads_scanned: Set(0),
            leads_changed: Set(0),
            tier_changes: Set(json!([])),
            newly_cold: Set(0),
            stale: Set(0),
            churn_risk: Set(0),
            checkpoint: Set(None),
            details: Set(Some(
                json!({"from": week.from, "to": week.to, "events": out.events.len()}),
            )),
            error: Set(None),
            ..Default::default()
        })
        .await?;
    events::emit(&in_txn, &out, now).await?;
    txn.commit().await?;
    tracing::info!(tenant_id = %tenant.id, tenant_slug = %tenant.slug, teams = out.events.len() - 1, "weekly digest sent");
    Ok(true)
}
