//! Events out: what changed about a lead or a job, written in the
//! transaction of the change itself, so a rolled-back change announces
//! nothing and a committed one is not lost.
//!
//! Two kinds leave here:
//! - notices, small and for every change of a lead, to the live
//!   subscriptions of every server process: by NOTIFY on PostgreSQL
//!   (delivered at commit; an ingested batch's just after it, see
//!   [`AfterCommit`]), through the `change_notices` table on SQLite;
//! - webhook events, for the kinds endpoints ask for, to the outbox the
//!   webhook worker sends from. Managing the endpoints (`webhooks`) and
//!   checking where they point (`webhook_target`) are submodules.

pub mod webhook_target;
pub mod webhooks;

use chrono::{DateTime, Utc};
use entity::{LeadId, TeamId, UserId};
use entity::{change_notice, enums::LeadStatus, lead, webhook_delivery};
use scoring::LeadFlag;
use sea_orm::{
    ActiveEnum, ActiveValue::Set, ConnectionTrait, DatabaseConnection, DbBackend, Statement,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    tenancy::TenantScope,
};

/// The PostgreSQL channel notices go through.
pub const CHANNEL: &str = "leadrank_changes";

/// Notices per NOTIFY payload: well under PostgreSQL's 8,000 bytes.
const NOTICES_PER_PAYLOAD: usize = 25;

/// One lead changed: enough for a subscriber to decide whether to re-read
/// it, never its data (the subscriber reads what it may see).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    #[serde(rename = "l")]
    pub lead_id: LeadId,
    #[serde(rename = "o")]
    pub owner_id: Option<UserId>,
    /// The owner before, when the change gave the lead to someone else.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub previous_owner_id: Option<UserId>,
    #[serde(rename = "r")]
    pub reason: String,
}

/// Notices of one tenant, as one payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeBatch {
    #[serde(rename = "t")]
    pub tenant_id: Uuid,
    #[serde(rename = "n", default)]
    pub notices: Vec<Notice>,
    /// The tenant's configuration changed: every process drops its copy.
    #[serde(rename = "c", default, skip_serializing_if = "std::ops::Not::not")]
    pub config_changed: bool,
    /// Users whose role, active flag or sessions changed: every process
    /// drops its copy of their access and closes what they may no longer
    /// hold open.
    #[serde(rename = "u", default, skip_serializing_if = "Vec::is_empty")]
    pub users_changed: Vec<UserId>,
}

/// What one transaction announces.
#[derive(Default)]
pub struct Outgoing {
    pub notices: Vec<Notice>,
    pub events: Vec<Event>,
}

impl Outgoing {
    /// A lead's change from `before` (none for a new lead): its notice and
    /// its webhook events.
    pub fn lead(
        &mut self,
        tenant_id: Uuid,
        before: Option<&LeadState>,
        after: &LeadSummary,
        reason: &str,
        rule: Option<ByRule<'_>>,
        at: DateTime<Utc>,
    ) {
        let previous = before.and_then(|b| b.owner_id);
        self.notices.push(Notice {
            lead_id: after.id,
            owner_id: after.state.owner_id,
            previous_owner_id: previous.filter(|p| Some(*p) != after.state.owner_id),
            reason: reason.chars().take(80).collect(),
        });
        self.events
            .extend(lead_changed(tenant_id, before, after, reason, rule, at));
    }
}

/// The kinds of event a webhook endpoint can ask for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EventType {
    TierChanged,
    BecameUrgent,
    WentCold,
    Assigned,
    Closed,
    ReturnedToPool,
    JobFinished,
    ChurnRisk,
    WentStale,
    WeeklyDigest,
}

impl EventType {
    /// Every kind, in the order the documentation lists them.
    pub const ALL: [Self; 10] = [
        Self::TierChanged,
        Self::BecameUrgent,
        Self::WentCold,
        Self::Assigned,
        Self::Closed,
        Self::ReturnedToPool,
        Self::JobFinished,
        Self::ChurnRisk,
        Self::WentStale,
        Self::WeeklyDigest,
    ];

    /// The name in payloads and in an endpoint's list, e.g. `lead.tier_changed`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TierChanged => "lead.tier_changed",
            Self::BecameUrgent => "lead.became_urgent",
            Self::WentCold => "lead.went_cold",
            Self::Assigned => "lead.assigned",
            Self::Closed => "lead.closed",
            Self::ReturnedToPool => "lead.returned_to_pool",
            Self::JobFinished => "job.finished",
            Self::ChurnRisk => "lead.churn_risk",
            Self::WentStale => "lead.went_stale",
            Self::WeeklyDigest => "digest.weekly",
        }
    }

    /// The kind named `name`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// One event, the same for every endpoint it goes to.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: Uuid,
    pub kind: EventType,
    /// The whole JSON body a receiver gets.
    pub payload: Value,
}

impl Event {
    fn new(kind: EventType, tenant_id: Uuid, data: Value, at: DateTime<Utc>) -> Self {
        let id = Uuid::now_v7();
        Self {
            id,
            kind,
            payload: json!({
                "id": id,
                "type": kind.as_str(),
                "tenantId": tenant_id,
                "occurredAt": at,
                "data": data,
            }),
        }
    }

    /// `digest.weekly` with a week's figures of the company or a team.
    #[must_use]
    pub fn weekly_digest(tenant_id: Uuid, figures: Value, at: DateTime<Utc>) -> Self {
        Self::new(EventType::WeeklyDigest, tenant_id, figures, at)
    }

    /// `job.finished` for a job run as it ended.
    #[must_use]
    pub fn job_finished(run: &entity::job_run::Model, at: DateTime<Utc>) -> Self {
        Self::new(
            EventType::JobFinished,
            run.tenant_id,
            json!({"jobRun": {
                "id": run.id,
                "kind": run.kind,
                "trigger": run.trigger,
                "status": run.status.to_value(),
                "leadsScanned": run.leads_scanned,
                "leadsChanged": run.leads_changed,
                "tierChanges": run.tier_changes,
                "newlyCold": run.newly_cold,
                "error": run.error,
            }}),
            at,
        )
    }
}

/// What the events compare: a lead's tier, flags, owner and status.
#[derive(Clone, Debug)]
pub struct LeadState {
    pub tier: String,
    pub flags: i32,
    pub owner_id: Option<UserId>,
    pub status: LeadStatus,
}

impl From<&lead::Model> for LeadState {
    fn from(l: &lead::Model) -> Self {
        Self {
            tier: l.tier.clone(),
            flags: l.flags,
            owner_id: l.owner_id,
            status: l.status,
        }
    }
}

/// A lead as an event shows it: enough for a chat message; a receiver
/// reads the rest through the API by id.
#[derive(Clone, Debug)]
pub struct LeadSummary {
    pub id: LeadId,
    pub name: String,
    pub company: Option<String>,
    pub team_id: Option<TeamId>,
    pub score: f64,
    pub state: LeadState,
}

impl From<&lead::Model> for LeadSummary {
    fn from(l: &lead::Model) -> Self {
        Self {
            id: l.id,
            name: l.name.clone(),
            company: l.company.clone(),
            team_id: l.team_id,
            score: l.score,
            state: LeadState::from(l),
        }
    }
}

fn flag_names(bits: i32) -> Vec<&'static str> {
    [
        (LeadFlag::Urgent, "URGENT"),
        (LeadFlag::Cold, "COLD"),
        (LeadFlag::Stale, "STALE"),
        (LeadFlag::ChurnRisk, "CHURN_RISK"),
    ]
    .into_iter()
    .filter(|(flag, _)| bits & i32::from(flag.bit()) != 0)
    .map(|(_, name)| name)
    .collect()
}

/// An assignment rule that made an assignment, for `lead.assigned`.
pub struct ByRule<'a> {
    pub id: Uuid,
    pub name: &'a str,
}

/// The events of one lead's change from `before` (none for a new lead).
fn lead_changed(
    tenant_id: Uuid,
    before: Option<&LeadState>,
    after: &LeadSummary,
    reason: &str,
    rule: Option<ByRule<'_>>,
    at: DateTime<Utc>,
) -> Vec<Event> {
    let now = &after.state;
    let lead = json!({
        "id": after.id,
        "name": after.name,
        "company": after.company,
        "ownerId": now.owner_id,
        "teamId": after.team_id,
        "score": (after.score * 100.0).round() / 100.0,
        "tier": now.tier,
        "flags": flag_names(now.flags),
        "status": now.status.to_value(),
    });
    let mut events = Vec::new();
    let mut push = |kind, extra: Value| {
        let mut data = json!({"lead": lead, "reason": reason});
        if let (Some(data), Some(extra)) = (data.as_object_mut(), extra.as_object()) {
            data.extend(extra.clone());
        }
        events.push(Event::new(kind, tenant_id, data, at));
    };
    let was = |flag: LeadFlag| before.is_some_and(|b| b.flags & i32::from(flag.bit()) != 0);
    let is = |flag: LeadFlag| now.flags & i32::from(flag.bit()) != 0;
    if before.is_none_or(|b| b.tier != now.tier) {
        push(
            EventType::TierChanged,
            json!({"previousTier": before.map(|b| b.tier.clone())}),
        );
    }
    if is(LeadFlag::Urgent) && !was(LeadFlag::Urgent) {
        push(EventType::BecameUrgent, json!({}));
    }
    if is(LeadFlag::Cold) && !was(LeadFlag::Cold) {
        push(EventType::WentCold, json!({}));
    }
    if is(LeadFlag::ChurnRisk) && !was(LeadFlag::ChurnRisk) {
        push(
            EventType::ChurnRisk,
            json!({"causes": crate::service::leads::rescoring::churn_causes(now.flags)
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()}),
        );
    }
    if is(LeadFlag::Stale) && !was(LeadFlag::Stale) {
        push(EventType::WentStale, json!({}));
    }
    if now.owner_id.is_some() && before.is_none_or(|b| b.owner_id != now.owner_id) {
        push(
            EventType::Assigned,
            json!({
                "previousOwnerId": before.and_then(|b| b.owner_id),
                "rule": rule.map(|r| json!({"id": r.id, "name": r.name})),
            }),
        );
    }
    if let Some(previous) = before.and_then(|b| b.owner_id)
        && now.owner_id.is_none()
        && now.status == LeadStatus::Open
    {
        push(
            EventType::ReturnedToPool,
            json!({"previousOwnerId": previous}),
        );
    }
    if now.status != LeadStatus::Open && before.is_some_and(|b| b.status == LeadStatus::Open) {
        push(EventType::Closed, json!({"outcome": now.status.to_value()}));
    }
    events
}

/// Sends what `out` announces, in the caller's transaction.
///
/// # Errors
/// Database errors.
pub async fn emit<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    out: &Outgoing,
    now: DateTime<Utc>,
) -> AppResult<()> {
    notify(scope, &out.notices, now).await?;
    outbox(scope, &out.events, now).await
}

/// Like [`emit`], for large changes on PostgreSQL: the webhook events go in
/// the caller's transaction, the notices after it commits, in a transaction
/// of their own (see [`AfterCommit`]). On SQLite, where notices are rows
/// of the change itself, all of it goes in the caller's transaction.
///
/// # Errors
/// Database errors.
pub async fn emit_after_commit<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    out: &Outgoing,
    now: DateTime<Utc>,
) -> AppResult<AfterCommit> {
    outbox(scope, &out.events, now).await?;
    if scope.conn().get_database_backend() != DbBackend::Postgres {
        notify(scope, &out.notices, now).await?;
        return Ok(AfterCommit::default());
    }
    Ok(AfterCommit {
        tenant_id: scope.tenant_id(),
        payloads: payloads(scope.tenant_id(), &out.notices)?,
    })
}

/// Notices of a change, to send once it has committed.
///
/// PostgreSQL serialises the commits of every transaction that notifies
/// (they take one lock, held until the commit is on disk). An ingested
/// batch commits megabytes of WAL and some forty notice payloads, so with
/// the notices inside it, concurrent batches queued behind each other's
/// disk flush: seen in the ingestion benchmark as COMMITs waiting on that
/// lock. Sent afterwards, the notifying transaction writes nothing else and
/// does not wait for the disk (`synchronous_commit = off`): a crash can
/// lose the notices, which only tell live subscribers to re-read, never
/// the change.
#[derive(Default)]
#[must_use = "send the notices once the change has committed"]
pub struct AfterCommit {
    tenant_id: Uuid,
    payloads: Vec<String>,
}

impl AfterCommit {
    /// Sends the notices. A failure is logged, not returned: the change is
    /// committed, and its caller must hear so.
    pub async fn send(self, db: &DatabaseConnection) {
        if self.payloads.is_empty() {
            return;
        }
        let tenant_id = self.tenant_id;
        if let Err(err) = self.try_send(db).await {
            tracing::warn!(
                tenant = %tenant_id,
                error = %err,
                "live updates: the notices of a committed change were not sent"
            );
        }
    }

    async fn try_send(self, db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
        let txn = db.begin().await?;
        txn.execute_unprepared("SET LOCAL synchronous_commit = off")
            .await?;
        txn.execute_raw(pg_notify(self.payloads)).await?;
        txn.commit().await
    }
}

/// The payloads of `notices`, a few to each.
fn payloads(tenant_id: Uuid, notices: &[Notice]) -> AppResult<Vec<String>> {
    notices
        .chunks(NOTICES_PER_PAYLOAD)
        .map(|chunk| {
            serde_json::to_string(&NoticeBatch {
                tenant_id,
                notices: chunk.to_vec(),
                config_changed: false,
                users_changed: Vec::new(),
            })
            .map_err(|e| AppError::Internal(e.into()))
        })
        .collect()
}

/// One statement sending every payload: one round trip for a change,
/// however many.
fn pg_notify(payloads: Vec<String>) -> Statement {
    let calls: Vec<String> = (0..payloads.len())
        .map(|i| format!("pg_notify($1, ${})", i + 2))
        .collect();
    let mut values: Vec<sea_orm::Value> = vec![CHANNEL.into()];
    values.extend(payloads.into_iter().map(Into::into));
    Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!("SELECT {}", calls.join(", ")),
        values,
    )
}

/// Hands notices to every server process once the transaction commits.
async fn notify<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    notices: &[Notice],
    now: DateTime<Utc>,
) -> AppResult<()> {
    send(scope, payloads(scope.tenant_id(), notices)?, now).await
}

/// Tells every server process, once the transaction commits, that the
/// tenant's configuration changed.
///
/// # Errors
/// Database errors.
pub async fn announce_config_change<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let payload = serde_json::to_string(&NoticeBatch {
        tenant_id: scope.tenant_id(),
        notices: Vec::new(),
        config_changed: true,
        users_changed: Vec::new(),
    })
    .map_err(|e| AppError::Internal(e.into()))?;
    send(scope, vec![payload], now).await
}

/// Tells every process, at commit, that the access of `users` changed.
///
/// # Errors
/// Database errors.
pub async fn announce_access_change<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    users: &[UserId],
    now: DateTime<Utc>,
) -> AppResult<()> {
    // Ids are 36 characters: 100 stay well under NOTIFY's 8,000 bytes.
    let payloads = users
        .chunks(100)
        .map(|chunk| {
            serde_json::to_string(&NoticeBatch {
                tenant_id: scope.tenant_id(),
                notices: Vec::new(),
                config_changed: false,
                users_changed: chunk.to_vec(),
            })
            .map_err(|e| AppError::Internal(e.into()))
        })
        .collect::<AppResult<Vec<_>>>()?;
    send(scope, payloads, now).await
}

/// Sends payloads on the notice channel at commit.
async fn send<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    payloads: Vec<String>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let backend = scope.conn().get_database_backend();
    if payloads.is_empty() {
        return Ok(());
    }
    if backend == DbBackend::Postgres {
        scope.conn().execute_raw(pg_notify(payloads)).await?;
        return Ok(());
    }
    let rows = payloads
        .into_iter()
        .map(|payload| change_notice::ActiveModel {
            id: Set(Uuid::now_v7()),
            payload: Set(payload),
            created_at: Set(now),
            ..Default::default()
        });
    scope.insert_many(rows).await
}

/// Writes a delivery for each event to each active endpoint of the tenant
/// that asked for its kind.
async fn outbox<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    events: &[Event],
    now: DateTime<Utc>,
) -> AppResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let config = crate::service::configuration::tenant_config::get(scope).await?;
    let endpoints = &config.webhooks;
    if endpoints.is_empty() {
        return Ok(());
    }
    let mut rows = Vec::new();
    for (endpoint, wanted) in endpoints {
        for event in events
            .iter()
            .filter(|e| wanted.iter().any(|w| w == e.kind.as_str()))
        {
            rows.push(webhook_delivery::ActiveModel {
                id: Set(Uuid::now_v7()),
                endpoint_id: Set(*endpoint),
                event_id: Set(event.id),
                event_type: Set(event.kind.as_str().to_owned()),
                payload: Set(event.payload.clone()),
                status: Set("PENDING".into()),
                attempts: Set(0),
                next_attempt_at: Set(now),
                locked_until: Set(None),
                last_status_code: Set(None),
                last_error: Set(None),
                created_at: Set(now),
                delivered_at: Set(None),
                ..Default::default()
            });
        }
    }
    for chunk in rows.chunks(500) {
        scope.insert_many(chunk.to_vec()).await?;
    }
    Ok(())
}
