//! The one place leads are written.
//!
//! It owns a lead's columns (what they may hold, which are derived from
//! which) and what every write of a lead brings with it: the score the
//! tenant's model gives the lead's facts at the time of writing, a score
//! event when the score or tier moved, and the change's notices and webhook
//! events, all in the caller's transaction.
//!
//! Two paths share those rules: one lead at a time for the mutations
//! ([`insert`], [`update`], [`assign_owner`]), and many at once for the
//! import, the demo loader, the nightly job and activations ([`Bulk`],
//! [`write_rescored`]), where thousands of leads go in a few statements.

use entity::{LeadId, PipelineId, ScoringModelId, StageId, TeamId, UserId};
use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use entity::{
    activity, enums::LeadStatus, lead, lead_event, lead_facts, lead_score, score_event, stage,
};
use scoring::Scorecard;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryTrait, Statement,
};
use serde_json::json;
use uuid::Uuid;

use crate::service::{
    events::{self, ByRule, LeadState, LeadSummary, Outgoing},
    leads::bulk,
    leads::follow_up,
    leads::rescoring::{self, ModelInUse, from_secs, secs},
};
use crate::{
    error::{AppError, AppResult},
    tenancy::TenantScope,
};

/// How far ahead of the server's clock a client's time may be and still
/// count as now.
pub const CLOCK_SKEW: Duration = Duration::minutes(5);

/// A deal value: a finite number of 0 or more.
///
/// # Errors
/// The message for the field when it is not one.
pub fn check_deal_value(value: Option<f64>) -> Result<Option<f64>, &'static str> {
    match value {
        Some(v) if !v.is_finite() || v < 0.0 => Err("must be a number of 0 or more"),
        other => Ok(other),
    }
}

/// When a lead came in, for leads brought over from elsewhere: never in
/// the future (a clock a little ahead counts as now).
///
/// # Errors
/// The message for the field when it is in the future.
pub fn check_created_at(
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, &'static str> {
    if at > now + CLOCK_SKEW {
        Err("must not be in the future")
    } else {
        Ok(at.min(now))
    }
}

/// Duplicate detection key for company + name.
pub fn dedupe_key(company: Option<&str>, name: &str) -> Option<String> {
    company.map(|c| {
        format!(
            "{}\u{1f}{}",
            c.trim().to_lowercase(),
            name.trim().to_lowercase()
        )
    })
}

/// A new, open, unscored lead with every optional column empty, for the
/// code that creates leads to fill in.
pub fn blank(
    tenant_id: Uuid,
    id: LeadId,
    by: UserId,
    pipeline: PipelineId,
    now: DateTime<Utc>,
) -> lead::Model {
    lead::Model {
        tenant_id,
        id,
        external_id: None,
        name: String::new(),
        company: None,
        email: None,
        phone: None,
        dedupe_key: None,
        industry: None,
        source: None,
        attributes: json!({}),
        deal_value: None,
        owner_id: None,
        team_id: None,
        pipeline_id: pipeline,
        stage_id: StageId(Uuid::nil()),
        stage_entered_at: now,
        status: LeadStatus::Open,
        closed_at: None,
        close_reason: None,
        close_reason_category: None,
        expected_close_at: None,
        score: 0.0,
        tier: String::new(),
        tier_rank: 0,
        priority: 0,
        flags: 0,
        bucket: BUCKET_NOT_DUE,
        close_probability: None,
        scoring_model_id: None,
        model_version: None,
        next_follow_up_at: None,
        last_activity_at: None,
        last_inbound_at: None,
        last_outbound_at: None,
        signal_state: Vec::new(),
        scored_at: None,
        pinned_tier: None,
        pin_reason: None,
        pin_expires_at: None,
        pinned_by: None,
        scheduled_follow_up_at: None,
        scheduled_follow_up_note: None,
        scheduled_follow_up_by: None,
        tier_rose_at: None,
        version: 1,
        created_by: Some(by),
        created_at: now,
        updated_at: now,
    }
}

/// Scores `lead` at `now` with `model` and writes the result onto its
/// score columns, with the columns derived from its facts. `pinned_by`
/// names who pinned its tier, for the explanation.
///
/// # Errors
/// INTERNAL when the explanation cannot be stored.
pub fn score(
    lead: &mut lead::Model,
    pinned_by: Option<&str>,
    stages: &[stage::Model],
    model: &ModelInUse,
    now: DateTime<Utc>,
) -> AppResult<Scorecard> {
    lead.dedupe_key = dedupe_key(lead.company.as_deref(), &lead.name);
    lead.last_activity_at = lead.last_inbound_at.max(lead.last_outbound_at);
    let mut facts = rescoring::facts(lead, pinned_by, stages);
    if let Some(predictor) = &model.predictor {
        let probability = predictor.predict(&facts);
        facts.predicted_close_probability = Some(probability);
        lead.close_probability = Some(probability);
    }
    let mut card = model.compiled.score(&facts, secs(now));
    // A lead that rose into a higher tier is new to it: its first response
    // counts from now. A new lead has no tier yet; its creation counts.
    let rose = !lead.tier.is_empty()
        && i64::from(card.tier_rank) < i64::from(lead.tier_rank)
        && lead.status == LeadStatus::Open;
    if rose {
        lead.tier_rose_at = Some(now);
        facts.tier_rose_at = Some(secs(now));
        card = model.compiled.score(&facts, secs(now));
    }
    lead.score = card.total;
    lead.tier.clone_from(&card.tier);
    lead.tier_rank = i32::try_from(card.tier_rank).unwrap_or(i32::MAX);
    lead.priority = card.priority;
    lead.flags = rescoring::flag_bits(&card);
    lead.next_follow_up_at = Some(from_secs(card.next_follow_up_at));
    lead.scoring_model_id = Some(model.row.id);
    lead.model_version = Some(model.row.version);
    lead.scored_at = Some(now);
    lead.bucket = bucket(lead.status, lead.flags, lead.next_follow_up_at, now);
    Ok(card)
}

/// The queue bucket of an open lead with an urgent signal inside its
/// window when it was scored: first in the queue, whenever it is due.
pub const BUCKET_URGENT: i16 = -1;
/// The queue bucket of an open lead whose follow-up was due when it was
/// scored: next in the queue.
pub const BUCKET_DUE: i16 = 0;
/// The bucket of an open lead not due when scored.
pub const BUCKET_NOT_DUE: i16 = 1;
/// The bucket of a closed lead, which no queue shows.
pub const BUCKET_CLOSED: i16 = 2;

/// Where a lead sorts in the follow-up queue as scored at `scored_at`, with
/// its flag bits then. The queue's index holds it, so urgent and due leads
/// come first without sorting every open lead; those that fall due after
/// they were scored are found by their follow-up date.
#[must_use]
pub fn bucket(
    status: LeadStatus,
    flags: i32,
    next_follow_up_at: Option<DateTime<Utc>>,
    scored_at: DateTime<Utc>,
) -> i16 {
    let urgent = flags & i32::from(scoring::LeadFlag::Urgent.bit()) != 0;
    match (status, next_follow_up_at) {
        (LeadStatus::Open, _) if urgent => BUCKET_URGENT,
        (LeadStatus::Open, due) if follow_up::overdue(status, due, scored_at) => BUCKET_DUE,
        (LeadStatus::Open, _) => BUCKET_NOT_DUE,
        _ => BUCKET_CLOSED,
    }
}

/// The lead's facts, every column to be written to `leads`.
fn facts_row(lead: &lead::Model) -> lead_facts::ActiveModel {
    lead_facts::ActiveModel {
        tenant_id: Set(lead.tenant_id),
        id: Set(lead.id),
        external_id: Set(lead.external_id.clone()),
        name: Set(lead.name.clone()),
        company: Set(lead.company.clone()),
        email: Set(lead.email.clone()),
        phone: Set(lead.phone.clone()),
        dedupe_key: Set(lead.dedupe_key.clone()),
        industry: Set(lead.industry.clone()),
        source: Set(lead.source.clone()),
        attributes: Set(lead.attributes.clone()),
        deal_value: Set(lead.deal_value),
        owner_id: Set(lead.owner_id),
        team_id: Set(lead.team_id),
        pipeline_id: Set(lead.pipeline_id),
        stage_id: Set(lead.stage_id),
        stage_entered_at: Set(lead.stage_entered_at),
        status: Set(lead.status),
        closed_at: Set(lead.closed_at),
        close_reason: Set(lead.close_reason.clone()),
        close_reason_category: Set(lead.close_reason_category.clone()),
        expected_close_at: Set(lead.expected_close_at),
        pinned_tier: Set(lead.pinned_tier.clone()),
        pin_reason: Set(lead.pin_reason.clone()),
        pin_expires_at: Set(lead.pin_expires_at),
        pinned_by: Set(lead.pinned_by),
        scheduled_follow_up_at: Set(lead.scheduled_follow_up_at),
        scheduled_follow_up_note: Set(lead.scheduled_follow_up_note.clone()),
        scheduled_follow_up_by: Set(lead.scheduled_follow_up_by),
        created_by: Set(lead.created_by),
        created_at: Set(lead.created_at),
    }
}

/// Whether a change of the lead from `before` to `after` changes its
/// facts: most changes (an activity, a re-scoring) only touch its
/// `lead_scores` row, and leave the wide `leads` row and its indexes alone.
fn facts_differ(before: &lead::Model, after: &lead::Model) -> bool {
    facts_row(before) != facts_row(after)
}

/// The lead's facts as an update of its `leads` row: every column but the
/// key.
fn facts_changes(lead: &lead::Model) -> lead_facts::ActiveModel {
    let mut row = facts_row(lead);
    row.tenant_id = NotSet;
    row.id = NotSet;
    row
}

/// What scoring keeps of the lead as an update of its `lead_scores` row:
/// every column but the key.
fn score_changes(lead: &lead::Model) -> lead_score::ActiveModel {
    let mut row = score_row(lead);
    row.tenant_id = NotSet;
    row.lead_id = NotSet;
    row
}

/// What scoring keeps of `lead`, as its `lead_scores` row.
#[must_use]
pub fn score_of(lead: &lead::Model) -> lead_score::Model {
    lead_score::Model {
        tenant_id: lead.tenant_id,
        lead_id: lead.id,
        version: lead.version,
        owner_id: lead.owner_id,
        team_id: lead.team_id,
        status: lead.status,
        bucket: lead.bucket,
        score: lead.score,
        tier: lead.tier.clone(),
        tier_rank: lead.tier_rank,
        priority: lead.priority,
        flags: lead.flags,
        close_probability: lead.close_probability,
        scoring_model_id: lead.scoring_model_id,
        model_version: lead.model_version,
        next_follow_up_at: lead.next_follow_up_at,
        scored_at: lead.scored_at,
        tier_rose_at: lead.tier_rose_at,
        last_activity_at: lead.last_activity_at,
        last_inbound_at: lead.last_inbound_at,
        last_outbound_at: lead.last_outbound_at,
        signal_state: lead.signal_state.clone(),
        updated_at: lead.updated_at,
    }
}

/// What scoring keeps of the lead, every column to be written to
/// `lead_scores`.
fn score_row(lead: &lead::Model) -> lead_score::ActiveModel {
    lead_score::ActiveModel {
        tenant_id: Set(lead.tenant_id),
        lead_id: Set(lead.id),
        version: Set(lead.version),
        owner_id: Set(lead.owner_id),
        team_id: Set(lead.team_id),
        status: Set(lead.status),
        bucket: Set(lead.bucket),
        score: Set(lead.score),
        tier: Set(lead.tier.clone()),
        tier_rank: Set(lead.tier_rank),
        priority: Set(lead.priority),
        flags: Set(lead.flags),
        close_probability: Set(lead.close_probability),
        scoring_model_id: Set(lead.scoring_model_id),
        model_version: Set(lead.model_version),
        next_follow_up_at: Set(lead.next_follow_up_at),
        scored_at: Set(lead.scored_at),
        tier_rose_at: Set(lead.tier_rose_at),
        last_activity_at: Set(lead.last_activity_at),
        last_inbound_at: Set(lead.last_inbound_at),
        last_outbound_at: Set(lead.last_outbound_at),
        signal_state: Set(lead.signal_state.clone()),
        updated_at: Set(lead.updated_at),
    }
}

/// The score event of a lead scored as `after` from `before` (score and
/// tier; none for a new lead), when either moved.
fn score_event(
    after: &lead::Model,
    before: Option<(f64, &str)>,
    reason: &str,
    job_run: Option<Uuid>,
    now: DateTime<Utc>,
) -> Option<score_event::ActiveModel> {
    let unchanged = before
        .is_some_and(|(score, tier)| (score - after.score).abs() < 1e-9 && tier == after.tier);
    (!unchanged).then(|| score_event::ActiveModel {
        tenant_id: Set(after.tenant_id),
        id: Set(Uuid::now_v7()),
        lead_id: Set(after.id),
        at: Set(now),
        old_score: Set(before.map(|(s, _)| s)),
        new_score: Set(after.score),
        old_tier: Set(before.map(|(_, t)| t.to_owned())),
        new_tier: Set(after.tier.clone()),
        reason: Set(reason.chars().take(500).collect()),
        model_id: Set(after.scoring_model_id),
        model_version: Set(after.model_version.unwrap_or_default()),
        job_run_id: Set(job_run),
    })
}

/// Writes a new lead, scored with [`score`]: its row, its first score
/// event, and the notice and events of its arrival (`rule` when an
/// assignment rule gave it its owner).
///
/// # Errors
/// Database errors; CONFLICT for a unique value taken meanwhile.
pub async fn insert<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    lead: lead::Model,
    reason: &str,
    rule: Option<ByRule<'_>>,
    now: DateTime<Utc>,
) -> AppResult<lead::Model> {
    let mut saved = lead;
    saved.tenant_id = scope.tenant_id();
    scope.insert_many([facts_row(&saved)]).await?;
    scope.insert_many([score_row(&saved)]).await?;
    if let Some(event) = score_event(&saved, None, reason, None, now) {
        scope.insert(event).await?;
    }
    announce(scope, None, &saved, reason, rule, now).await?;
    Ok(saved)
}

/// Sends the notice and webhook events of one lead's change from `before`
/// (none for a new lead) to `after`.
async fn announce<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    before: Option<&lead::Model>,
    after: &lead::Model,
    reason: &str,
    rule: Option<ByRule<'_>>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let mut out = Outgoing::default();
    out.lead(
        scope.tenant_id(),
        before.map(LeadState::from).as_ref(),
        &LeadSummary::from(after),
        reason,
        rule,
        now,
    );
    events::emit(scope, &out, now).await
}

/// Writes a changed lead, re-scored with [`score`], when `before` (the
/// lead as read) is still current: its version goes up by one, and a score
/// event and the change's notice and events go with it.
///
/// # Errors
/// CONFLICT when someone changed the lead since it was read; database
/// errors.
pub async fn update<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    before: &lead::Model,
    after: lead::Model,
    reason: &str,
    now: DateTime<Utc>,
) -> AppResult<lead::Model> {
    write_update(scope, before, after, reason, false, now).await
}

/// Like [`update`], with a score event even when neither the score nor
/// the tier moved: for changes the score history must show (a lead
/// reopened, a customer's renewal).
///
/// # Errors
/// As [`update`].
pub async fn update_recorded<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    before: &lead::Model,
    after: lead::Model,
    reason: &str,
    now: DateTime<Utc>,
) -> AppResult<lead::Model> {
    write_update(scope, before, after, reason, true, now).await
}

async fn write_update<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    before: &lead::Model,
    mut after: lead::Model,
    reason: &str,
    always_event: bool,
    now: DateTime<Utc>,
) -> AppResult<lead::Model> {
    after.version = before.version + 1;
    after.updated_at = now;
    // One statement claims the version and writes the score: of two racing
    // writers, one wins and the other gets CONFLICT, on every database.
    let written = scope
        .update_many::<lead_score::Entity>()
        .set(score_changes(&after))
        .filter(lead_score::Column::LeadId.eq(before.id))
        .filter(lead_score::Column::Version.eq(before.version))
        .exec(scope.conn())
        .await?;
    if written.rows_affected != 1 {
        return Err(AppError::Conflict {
            message: "the lead was changed by someone else at the same time; reload and try again"
                .into(),
            existing_id: Some(before.id.into()),
        });
    }
    if facts_differ(before, &after) {
        scope
            .update_many::<lead_facts::Entity>()
            .set(facts_changes(&after))
            .filter(lead_facts::Column::Id.eq(before.id))
            .exec(scope.conn())
            .await?;
    }
    // A score event of its own when asked for one: "from" is then left
    // empty only if nothing moved, never the same score twice.
    let event = score_event(
        &after,
        Some((before.score, &before.tier)),
        reason,
        None,
        now,
    )
    .or_else(|| {
        always_event
            .then(|| score_event(&after, None, reason, None, now))
            .flatten()
            .map(|mut e| {
                e.old_score = Set(Some(before.score));
                e.old_tier = Set(Some(before.tier.clone()));
                e
            })
    });
    if let Some(event) = event {
        scope.insert(event).await?;
    }
    announce(scope, Some(before), &after, reason, None, now).await?;
    Ok(after)
}

/// Gives an open lead of the pool to `owner` by an assignment rule, when
/// its version is still `version`; the owner does not change its score.
/// The change's notice and events join `out`. Whether it was written.
///
/// # Errors
/// Database errors.
pub async fn assign_owner<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    lead: &LeadSummary,
    version: i32,
    owner: UserId,
    rule: ByRule<'_>,
    out: &mut Outgoing,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    use sea_orm::sea_query::Expr;
    let done = scope
        .update_many::<lead_score::Entity>()
        .col_expr(lead_score::Column::OwnerId, Expr::value(Some(owner)))
        .col_expr(lead_score::Column::Version, Expr::value(version + 1))
        .col_expr(lead_score::Column::UpdatedAt, Expr::value(now))
        .filter(lead_score::Column::LeadId.eq(lead.id))
        .filter(lead_score::Column::Version.eq(version))
        .exec(scope.conn())
        .await?;
    if done.rows_affected != 1 {
        return Ok(false);
    }
    scope
        .update_many::<lead_facts::Entity>()
        .col_expr(lead_facts::Column::OwnerId, Expr::value(Some(owner)))
        .filter(lead_facts::Column::Id.eq(lead.id))
        .exec(scope.conn())
        .await?;
    let mut after = lead.clone();
    after.state.owner_id = Some(owner);
    out.lead(
        scope.tenant_id(),
        Some(&lead.state),
        &after,
        "assigned from the pool",
        Some(rule),
        now,
    );
    Ok(true)
}

/// Moves every open lead of `from` to `to` (or the shared pool), in the
/// caller's transaction, with a history entry per lead naming `actor` and
/// the change announced as any assignment is. Scores stay as they are: an
/// owner is not something scoring weighs. Returns how many moved.
///
/// # Errors
/// Database errors.
pub async fn reassign_open_leads<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    from: UserId,
    to: Option<UserId>,
    actor: Option<UserId>,
    reason: &str,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    let leads: Vec<lead::Model> = scope
        .select::<lead::Entity>()
        .filter(lead::Column::OwnerId.eq(from))
        .filter(lead::Column::Status.eq(LeadStatus::Open))
        .all(scope.conn())
        .await?;
    let moves: Vec<(&lead::Model, Option<String>)> = leads.iter().map(|l| (l, None)).collect();
    move_open_leads(scope, &moves, to, actor, "ASSIGNED", reason, now).await
}

/// Moves open leads, each from the owner it was read with, to `to` (or the
/// shared pool), in the caller's transaction: a history entry of `kind`
/// per lead, with the lead's own reason when it has one, and the change
/// announced as any assignment is. A lead whose owner changed since it was
/// read stays. Returns how many moved.
///
/// # Errors
/// Database errors.
pub async fn move_open_leads<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    leads: &[(&lead::Model, Option<String>)],
    to: Option<UserId>,
    actor: Option<UserId>,
    kind: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    use sea_orm::sea_query::{Expr, ExprTrait};
    let backend = scope.conn().get_database_backend();
    let mut out = Outgoing::default();
    let mut moved = 0u64;
    let mut by_owner: BTreeMap<Option<UserId>, Vec<&(&lead::Model, Option<String>)>> =
        BTreeMap::new();
    for entry in leads {
        by_owner.entry(entry.0.owner_id).or_default().push(entry);
    }
    for (from, leads) in by_owner {
        // Chunks keep each IN list within the bound-parameter limits.
        for chunk in leads.chunks(500) {
            let ids: Vec<LeadId> = chunk.iter().map(|(l, _)| l.id).collect();
            let (still, facts_still) = match from {
                Some(owner) => (
                    lead_score::Column::OwnerId.eq(owner),
                    lead_facts::Column::OwnerId.eq(owner),
                ),
                None => (
                    lead_score::Column::OwnerId.is_null(),
                    lead_facts::Column::OwnerId.is_null(),
                ),
            };
            let done = scope
                .update_many::<lead_score::Entity>()
                .col_expr(lead_score::Column::OwnerId, Expr::value(to))
                .col_expr(
                    lead_score::Column::Version,
                    Expr::col(lead_score::Column::Version).add(1),
                )
                .col_expr(lead_score::Column::UpdatedAt, Expr::value(now))
                .filter(lead_score::Column::LeadId.is_in(ids.clone()))
                .filter(still)
                .filter(lead_score::Column::Status.eq(LeadStatus::Open))
                .exec(scope.conn())
                .await?;
            moved += done.rows_affected;
            scope
                .update_many::<lead_facts::Entity>()
                .col_expr(lead_facts::Column::OwnerId, Expr::value(to))
                .filter(lead_facts::Column::Id.is_in(ids))
                // The facts keep the owner the score keeps: a lead given to
                // someone else since it was read stays with them.
                .filter(facts_still)
                .exec(scope.conn())
                .await?;
            let history: Vec<lead_event::ActiveModel> = chunk
                .iter()
                .map(|(l, why)| lead_event::ActiveModel {
                    tenant_id: Set(scope.tenant_id()),
                    id: Set(Uuid::now_v7()),
                    lead_id: Set(l.id),
                    kind: Set(kind.to_owned()),
                    actor_id: Set(actor),
                    at: Set(now),
                    from_value: Set(from.map(|f| f.to_string())),
                    to_value: Set(to.map(|t| t.to_string())),
                    data: Set(why.as_ref().map(|why| json!({"reason": why}))),
                })
                .collect();
            let mut statements = Vec::new();
            bulk::insert_statements(history, backend, &mut statements);
            for statement in statements {
                scope.conn().execute_raw(statement).await?;
            }
            for (l, why) in chunk {
                let mut after = LeadSummary::from(*l);
                after.state.owner_id = to;
                out.lead(
                    scope.tenant_id(),
                    Some(&LeadState::from(*l)),
                    &after,
                    why.as_deref().unwrap_or(reason),
                    None,
                    now,
                );
            }
        }
    }
    events::emit(scope, &out, now).await?;
    Ok(moved)
}

/// Many leads written in one transaction, with their activities and
/// history: the import and the demo loader. Rows go in as multi-row
/// inserts; changed leads keep the version guard of [`update`]. Nothing
/// is announced: a 100,000-row import would flood every receiver.
pub struct Bulk {
    tenant_id: Uuid,
    backend: DbBackend,
    inserts: Vec<lead_facts::ActiveModel>,
    scores: Vec<lead_score::ActiveModel>,
    /// Changed leads with the version each was read at, and whether their
    /// facts changed (or only what `lead_scores` keeps).
    updates: Vec<(lead::Model, i32, bool)>,
    activities: Vec<activity::ActiveModel>,
    score_events: Vec<score_event::ActiveModel>,
    lead_events: Vec<lead_event::ActiveModel>,
}

impl Bulk {
    /// An empty batch of `tenant_id`'s leads for `backend`.
    #[must_use]
    pub fn new(tenant_id: Uuid, backend: DbBackend) -> Self {
        Self {
            tenant_id,
            backend,
            inserts: Vec::new(),
            scores: Vec::new(),
            updates: Vec::new(),
            activities: Vec::new(),
            score_events: Vec::new(),
            lead_events: Vec::new(),
        }
    }

    /// A new lead, scored with [`score`], and its first score event.
    pub fn insert(&mut self, mut lead: lead::Model, reason: &str, now: DateTime<Utc>) {
        lead.tenant_id = self.tenant_id;
        self.score_events
            .extend(score_event(&lead, None, reason, None, now));
        self.inserts.push(facts_row(&lead));
        self.scores.push(score_row(&lead));
    }

    /// A changed lead, re-scored with [`score`], written when `before` is
    /// still current, with a score event when the score or tier moved.
    pub fn update(
        &mut self,
        before: &lead::Model,
        mut after: lead::Model,
        reason: &str,
        now: DateTime<Utc>,
    ) {
        after.tenant_id = self.tenant_id;
        after.version = before.version + 1;
        after.updated_at = now;
        self.score_events.extend(score_event(
            &after,
            Some((before.score, &before.tier)),
            reason,
            None,
            now,
        ));
        let facts = facts_differ(before, &after);
        self.updates.push((after, before.version, facts));
    }

    /// An activity of a lead of the batch.
    pub fn activity(&mut self, mut row: activity::ActiveModel) {
        row.tenant_id = Set(self.tenant_id);
        self.activities.push(row);
    }

    /// A history event of a lead of the batch.
    pub fn lead_event(&mut self, mut row: lead_event::ActiveModel) {
        row.tenant_id = Set(self.tenant_id);
        self.lead_events.push(row);
    }

    /// Activities and events in the batch.
    #[must_use]
    pub fn counts(&self) -> (usize, usize) {
        (
            self.activities.len(),
            self.score_events.len() + self.lead_events.len(),
        )
    }

    /// The inserts as statements, new leads before the rows that point at
    /// them. Every row carries the batch's tenant, so they can be built
    /// away from any connection (the demo builds them on a blocking
    /// thread), not through a `TenantScope`.
    fn insert_statements(&mut self) -> Vec<Statement> {
        let mut statements = Vec::new();
        let backend = self.backend;
        bulk::insert_statements(std::mem::take(&mut self.inserts), backend, &mut statements);
        bulk::insert_statements(std::mem::take(&mut self.scores), backend, &mut statements);
        bulk::insert_statements(
            std::mem::take(&mut self.activities),
            backend,
            &mut statements,
        );
        bulk::insert_statements(
            std::mem::take(&mut self.score_events),
            backend,
            &mut statements,
        );
        bulk::insert_statements(
            std::mem::take(&mut self.lead_events),
            backend,
            &mut statements,
        );
        statements
    }

    /// Builds every statement now, off the connection; the batch then only
    /// runs them. For loaders that build the next batch while the database
    /// writes this one.
    #[must_use]
    // Built before their transaction exists, so without a scope: each
    // filters by the batch's tenant itself.
    #[allow(clippy::disallowed_methods)]
    pub fn prepared(mut self) -> PreparedBulk {
        let (tenant_id, backend) = (self.tenant_id, self.backend);
        let updates = std::mem::take(&mut self.updates);
        let updates = if backend == DbBackend::Postgres
            && let Some(together) = Self::together(tenant_id, &updates)
        {
            together
        } else {
            Updates::Each(
                updates
                    .into_iter()
                    .map(|(lead, version, facts)| {
                        let score = lead_score::Entity::update_many()
                            .set(score_changes(&lead))
                            .filter(lead_score::Column::TenantId.eq(tenant_id))
                            .filter(lead_score::Column::LeadId.eq(lead.id))
                            .filter(lead_score::Column::Version.eq(version))
                            .build(backend);
                        let facts = facts.then(|| {
                            lead_facts::Entity::update_many()
                                .set(facts_changes(&lead))
                                .filter(lead_facts::Column::TenantId.eq(tenant_id))
                                .filter(lead_facts::Column::Id.eq(lead.id))
                                .build(backend)
                        });
                        (score, facts, lead.id)
                    })
                    .collect(),
            )
        };
        PreparedBulk {
            inserts: self.insert_statements(),
            updates,
        }
    }

    /// The changed leads as two statements on PostgreSQL, one per table;
    /// `None` when they cannot be (see [`bulk::bulk_update`]).
    fn together(tenant_id: Uuid, updates: &[(lead::Model, i32, bool)]) -> Option<Updates> {
        if updates.is_empty() {
            return Some(Updates::Each(Vec::new()));
        }
        let ids: Vec<LeadId> = updates.iter().map(|(lead, _, _)| lead.id).collect();
        // `update` raises each version by exactly one, so the version read
        // is the new one less one.
        if updates
            .iter()
            .any(|(lead, version, _)| lead.version != version + 1)
        {
            return None;
        }
        let scores: Vec<lead_score::ActiveModel> = updates
            .iter()
            .map(|(lead, _, _)| {
                let mut row = score_changes(lead);
                row.lead_id = Set(lead.id);
                row
            })
            .collect();
        let (facts, fact_ids): (Vec<lead_facts::ActiveModel>, Vec<LeadId>) = updates
            .iter()
            .filter(|(_, _, facts)| *facts)
            .map(|(lead, _, _)| {
                let mut row = facts_changes(lead);
                row.id = Set(lead.id);
                (row, lead.id)
            })
            .unzip();
        let facts = if facts.is_empty() {
            None
        } else {
            Some(bulk::bulk_update(
                tenant_id,
                &facts,
                lead_facts::Column::Id,
                &fact_ids,
                "",
            )?)
        };
        Some(Updates::Together {
            scores: bulk::bulk_update(
                tenant_id,
                &scores,
                lead_score::Column::LeadId,
                &ids,
                "t.version = v.version - 1",
            )?,
            facts,
            ids,
        })
    }
}

/// The changed leads of a [`PreparedBulk`].
enum Updates {
    /// The guarded score write, then the facts when they changed, of each
    /// changed lead.
    Each(Vec<(Statement, Option<Statement>, LeadId)>),
    /// Every lead's guarded score write in one statement, then the facts
    /// of those whose facts changed in another, for these leads.
    Together {
        scores: Statement,
        facts: Option<Statement>,
        ids: Vec<LeadId>,
    },
}

/// A [`Bulk`] as statements, ready to run in a transaction.
pub struct PreparedBulk {
    inserts: Vec<Statement>,
    updates: Updates,
}

impl PreparedBulk {
    /// Runs the batch in the caller's transaction.
    ///
    /// # Errors
    /// CONFLICT when a changed lead was changed by someone else since it
    /// was read; database errors.
    pub async fn write<C: ConnectionTrait>(self, txn: &C) -> AppResult<()> {
        for statement in self.inserts {
            txn.execute_raw(statement).await?;
        }
        let changed_meanwhile = |id: LeadId| AppError::Conflict {
            message: format!(
                "lead {id} changed while the file was imported; import the file again"
            ),
            existing_id: Some(id.into()),
        };
        match self.updates {
            Updates::Each(updates) => {
                for (score, facts, id) in updates {
                    if txn.execute_raw(score).await?.rows_affected() == 0 {
                        return Err(changed_meanwhile(id));
                    }
                    if let Some(facts) = facts {
                        txn.execute_raw(facts).await?;
                    }
                }
            }
            Updates::Together { scores, facts, ids } => {
                let written: HashSet<LeadId> = txn
                    .query_all_raw(scores)
                    .await?
                    .iter()
                    .map(|row| row.try_get::<LeadId>("", "key"))
                    .collect::<Result<_, _>>()?;
                if let Some(id) = ids.iter().find(|id| !written.contains(id)) {
                    return Err(changed_meanwhile(*id));
                }
                if let Some(facts) = facts {
                    txn.execute_raw(facts).await?;
                }
            }
        }
        Ok(())
    }
}

/// One lead's new score from the nightly job or an activation, with what
/// it had before and what events show of it.
pub struct Rescored {
    pub id: LeadId,
    /// The version read: the write lands only while it is current.
    pub version: i32,
    /// OPEN, or WON for a customer in a post-sale stage; unchanged by the write.
    pub status: LeadStatus,
    pub name: String,
    pub company: Option<String>,
    pub owner_id: Option<UserId>,
    pub team_id: Option<TeamId>,
    pub old_flags: i32,
    pub old_score: f64,
    pub old_tier: String,
    pub card: Scorecard,
    pub close_probability: Option<f64>,
    pub model_id: ScoringModelId,
    pub model_version: i32,
    /// When it last rose into a higher tier, kept or set by this scoring.
    pub tier_rose_at: Option<DateTime<Utc>>,
}

/// A re-scored lead as the bulk write reads it, one element of the JSON
/// array bound as the statement's only parameter.
#[derive(serde::Serialize)]
struct Written<'a> {
    id: LeadId,
    version: i32,
    score: f64,
    tier: &'a str,
    tier_rank: u32,
    priority: i64,
    flags: i32,
    bucket: i16,
    /// As the driver writes a timestamp to SQLite, so stored dates compare
    /// as text; PostgreSQL reads the same form.
    next_follow_up_at: String,
    close_probability: Option<f64>,
    scoring_model_id: ScoringModelId,
    model_version: i32,
    /// As `next_follow_up_at`.
    tier_rose_at: Option<String>,
}

/// The JSON row's fields besides the id: name, PostgreSQL type, and
/// whether SQLite keeps it as a UUID blob. All are written to the lead's
/// column of the same name but `version`, the guard.
const WRITTEN: [(&str, &str, bool); 12] = [
    ("score", "double precision", false),
    ("tier", "text", false),
    ("tier_rank", "integer", false),
    ("priority", "bigint", false),
    ("flags", "integer", false),
    ("bucket", "smallint", false),
    ("next_follow_up_at", "timestamptz", false),
    ("close_probability", "double precision", false),
    ("scoring_model_id", "uuid", true),
    ("model_version", "integer", false),
    ("tier_rose_at", "timestamptz", false),
    ("version", "integer", false),
];

/// The bulk write of re-scored leads: every lead of a batch in one
/// statement whose only bound parameters are the tenant, one JSON array
/// and the time. Binding twelve parameters per lead cost SQLite a scan of
/// the statement's parameter list per parameter (40% of the job in
/// `perf`); the database parses the array natively on both backends. The
/// version guard makes a lead a mutation re-scored after the read keep
/// its score.
pub(crate) fn rescored_sql(backend: DbBackend) -> String {
    let set = WRITTEN
        .iter()
        .filter(|(name, _, _)| *name != "version")
        .map(|(name, _, _)| format!("{name} = v.{name}"))
        .collect::<Vec<_>>()
        .join(", ");
    // (WITH clause, FROM source, tenant parameter, time parameter)
    let (with, from, tenant, at) = match backend {
        DbBackend::Postgres => {
            let types = WRITTEN
                .iter()
                .map(|(name, ty, _)| format!("{name} {ty}"))
                .collect::<Vec<_>>()
                .join(", ");
            (
                String::new(),
                format!("json_to_recordset($2::json) AS v(id uuid, {types})"),
                "$1",
                "$3",
            )
        }
        _ => {
            let uuid = |path: &str| format!("unhex(replace(value ->> '{path}', '-', ''))");
            let columns = WRITTEN
                .iter()
                .map(|(name, _, is_uuid)| match (*name, is_uuid) {
                    (_, true) => format!("{} AS {name}", uuid(name)),
                    _ => format!("value ->> '{name}' AS {name}"),
                })
                .collect::<Vec<_>>()
                .join(", ");
            // Materialised, so the rows drive the join and each finds its
            // lead by primary key: left to itself the planner scanned every
            // open lead and the whole array once per lead.
            (
                format!(
                    "WITH v AS MATERIALIZED (SELECT {} AS id, {columns} FROM json_each(?2)) ",
                    uuid("id")
                ),
                "v".to_owned(),
                "?1",
                "?3",
            )
        }
    };
    format!(
        "{with}UPDATE lead_scores SET {set}, scored_at = {at} FROM {from} \
         WHERE lead_scores.tenant_id = {tenant} AND lead_scores.lead_id = v.id \
         AND lead_scores.version = v.version AND lead_scores.status IN ('OPEN', 'WON') \
         RETURNING lead_scores.lead_id AS id"
    )
}

/// Writes a batch of re-scored leads in one statement, each guarded by the
/// version read, with score events for tier changes (tied to the job run
/// `run`, which a resumed run does not write twice) and the changes'
/// notices and events, in the caller's transaction. Returns the leads
/// written: a lead a mutation changed meanwhile is not.
///
/// # Errors
/// Database errors.
pub async fn write_rescored<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    run: Uuid,
    changes: &[Rescored],
    reason: &str,
    now: DateTime<Utc>,
) -> AppResult<HashSet<LeadId>> {
    if changes.is_empty() {
        return Ok(HashSet::new());
    }
    let tenant_id = scope.tenant_id();
    let backend = scope.conn().get_database_backend();
    let rows: Vec<Written> = changes
        .iter()
        .map(|c| Written {
            id: c.id,
            version: c.version,
            score: c.card.total,
            tier: &c.card.tier,
            tier_rank: c.card.tier_rank,
            priority: c.card.priority,
            flags: rescoring::flag_bits(&c.card),
            bucket: bucket(
                c.status,
                rescoring::flag_bits(&c.card),
                Some(from_secs(c.card.next_follow_up_at)),
                now,
            ),
            next_follow_up_at: from_secs(c.card.next_follow_up_at)
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
            close_probability: c.close_probability,
            scoring_model_id: c.model_id,
            model_version: c.model_version,
            tier_rose_at: c
                .tier_rose_at
                .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)),
        })
        .collect();
    let rows = serde_json::to_string(&rows).map_err(|e| AppError::Internal(e.into()))?;
    let written: HashSet<LeadId> = scope
        .conn()
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            rescored_sql(backend),
            [tenant_id.into(), rows.into(), Some(now).into()],
        ))
        .await?
        .iter()
        .map(|row| row.try_get::<LeadId>("", "id"))
        .collect::<Result<_, _>>()?;
    // Score events for tier changes; the unique (run, lead) index keeps a
    // resumed run from writing one twice.
    let events: Vec<score_event::ActiveModel> = changes
        .iter()
        .filter(|c| c.card.tier != c.old_tier && written.contains(&c.id))
        .map(|c| score_event::ActiveModel {
            tenant_id: Set(tenant_id),
            id: Set(Uuid::now_v7()),
            lead_id: Set(c.id),
            at: Set(now),
            old_score: Set(Some(c.old_score)),
            new_score: Set(c.card.total),
            old_tier: Set(Some(c.old_tier.clone())),
            new_tier: Set(c.card.tier.clone()),
            reason: Set(reason.to_owned()),
            model_id: Set(Some(c.model_id)),
            model_version: Set(c.model_version),
            job_run_id: Set(Some(run)),
        })
        .collect();
    let per_statement = bulk::rows_per_statement::<score_event::ActiveModel>(backend);
    for chunk in events.chunks(per_statement) {
        // Rows of the scope's tenant (set above); the scope's insert cannot
        // skip the duplicates a resumed run writes again.
        #[allow(clippy::disallowed_methods)]
        let inserted = score_event::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                sea_orm::sea_query::OnConflict::new()
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(scope.conn())
            .await;
        match inserted {
            Ok(_) | Err(sea_orm::DbErr::RecordNotInserted) => {}
            Err(err) => return Err(err.into()),
        }
    }
    let mut out = Outgoing::default();
    for c in changes.iter().filter(|c| written.contains(&c.id)) {
        let state = |tier: &str, flags: i32| LeadState {
            tier: tier.to_owned(),
            flags,
            owner_id: c.owner_id,
            status: c.status,
        };
        out.lead(
            tenant_id,
            Some(&state(&c.old_tier, c.old_flags)),
            &LeadSummary {
                id: c.id,
                name: c.name.clone(),
                company: c.company.clone(),
                team_id: c.team_id,
                score: c.card.total,
                state: state(&c.card.tier, rescoring::flag_bits(&c.card)),
            },
            reason,
            None,
            now,
        );
    }
    events::emit(scope, &out, now).await?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

    use super::rescored_sql;

    /// The bulk write must find each lead by primary key from the rows
    /// given: the other way round, SQLite reads every open lead of the
    /// tenant and the whole array once per lead, and a 100,000-lead run
    /// took over ten minutes instead of seconds.
    #[tokio::test]
    async fn sqlite_finds_each_written_lead_by_primary_key() -> anyhow::Result<()> {
        let db = Database::connect("sqlite::memory:").await?;
        crate::db::migrate(&db).await?;
        let plan = db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                format!("EXPLAIN QUERY PLAN {}", rescored_sql(DbBackend::Sqlite)),
            ))
            .await?
            .iter()
            .map(|row| row.try_get::<String>("", "detail"))
            .collect::<Result<Vec<_>, _>>()?;
        let position = |needle: &str| plan.iter().position(|step| step.contains(needle));
        let (Some(rows), Some(lookup)) = (
            position("SCAN v"),
            position(
                "SEARCH lead_scores USING INDEX sqlite_autoindex_lead_scores_1 (tenant_id=? AND lead_id=?)",
            ),
        ) else {
            anyhow::bail!("unexpected plan: {plan:?}");
        };
        assert!(rows < lookup, "the rows must drive the join: {plan:?}");
        Ok(())
    }
}
