//! Leads, their activities and score history, the lead list and the
//! follow-up queue.

use crate::domain::Parse;
use crate::graphql::cost;
use crate::graphql::id_at;
use std::sync::Arc;

use async_graphql::{
    ComplexObject, Context, Enum, ID, InputObject, Json, MaybeUndefined, Object, Result,
    SimpleObject,
};
use chrono::{DateTime, Utc};
use entity::{activity, lead, lead_event, lead_score, score_event};
use serde_json::Value;

use crate::graphql::{
    Loaders, RequestContext,
    loaders::PipelineWithStages,
    types::{DimensionKind, Direction, ExtendRef, Pipeline, Stage, Team, User},
};
use crate::{
    auth::Principal,
    error::{AppError, IntoGraphql},
    service::{
        configuration::tenant_config,
        leads::follow_up,
        leads::lead::{
            self as leads, LeadChanges, NewActivity, NewLead, NewScheduledFollowUp, NewTierPin,
        },
        leads::lead_query::{self, LeadFilter as Filter},
        leads::lead_writer,
        leads::pool,
        leads::reasons::{self, QueueFacts},
        leads::rescoring,
        validate,
    },
};

/// Where a lead is in its life.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::enums::LeadStatus")]
pub enum LeadStatus {
    Open,
    Won,
    Lost,
}

/// How a closed lead ended.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum Outcome {
    Won,
    Lost,
}

/// A warning or signal on a lead.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "scoring::LeadFlag")]
pub enum LeadFlag {
    /// An urgent signal inside its window: follow up now.
    Urgent,
    /// No reply for a long time.
    Cold,
    /// Idle in its stage beyond the stage's rotting days.
    Stale,
    /// Replying less often than before.
    ChurnRisk,
    /// The next follow-up is due or past.
    Overdue,
}

/// Orders of the lead list.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "crate::service::leads::lead_query::LeadOrder")]
pub enum LeadOrder {
    /// The follow-up queue's order: overdue, then tier, then score.
    Priority,
    /// Highest score first.
    Score,
    /// Soonest follow-up first.
    NextFollowUp,
    /// Most recently changed first.
    Updated,
}

/// A lead with its latest score. What scoring keeps of it is always at
/// hand; its facts (name, attributes, stage…) are read when a field asks
/// for them, so a queue that shows ids, scores and tiers reads the narrow
/// score rows only.
pub struct Lead {
    score: lead_score::Model,
    /// The whole lead, once read; shared with the request's loader rather
    /// than copied out of it (its JSON facts are most of its size).
    row: tokio::sync::OnceCell<Arc<lead::Model>>,
    /// The explanation of the stored score, derived once when asked for.
    card: tokio::sync::OnceCell<scoring::Scorecard>,
}

impl From<lead::Model> for Lead {
    fn from(row: lead::Model) -> Self {
        Self {
            score: lead_writer::score_of(&row),
            row: tokio::sync::OnceCell::new_with(Some(Arc::new(row))),
            card: tokio::sync::OnceCell::new(),
        }
    }
}

impl From<lead_score::Model> for Lead {
    fn from(score: lead_score::Model) -> Self {
        Self {
            score,
            row: tokio::sync::OnceCell::new(),
            card: tokio::sync::OnceCell::new(),
        }
    }
}

impl Lead {
    /// The whole lead, through the request's loader (one query for every
    /// lead of a list that needs it).
    async fn row(&self, ctx: &Context<'_>) -> Result<&lead::Model> {
        self.row
            .get_or_try_init(|| async {
                ctx.data::<Loaders>()?
                    .lead
                    .load_one(self.score.lead_id)
                    .await
                    .map_err(|e| e.extend_ref())?
                    .ok_or_else(|| {
                        AppError::Internal(anyhow::anyhow!(
                            "lead {} has a score but no facts",
                            self.score.lead_id
                        ))
                        .into()
                    })
            })
            .await
            .map(AsRef::as_ref)
    }

    /// The explanation of the stored score, derived from the lead's facts
    /// and the model version that scored it.
    async fn scorecard(&self, ctx: &Context<'_>) -> Result<&scoring::Scorecard> {
        self.card
            .get_or_try_init(|| async {
                let row = self.row(ctx).await?;
                let (_, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
                let pinner = match row.pinned_tier {
                    Some(_) => Loaders::user(ctx, row.pinned_by)
                        .await?
                        .map(|user| user.display_name),
                    None => None,
                };
                rescoring::explain(&scope, row, pinner.as_deref())
                    .await
                    .gql()
            })
            .await
    }

    async fn pipeline_with_stages(&self, ctx: &Context<'_>) -> Result<PipelineWithStages> {
        let row = self.row(ctx).await?;
        ctx.data::<Loaders>()?
            .pipeline
            .load_one(row.pipeline_id)
            .await
            .map_err(|e| e.extend_ref())?
            .ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!(
                    "lead {} points at a missing pipeline",
                    row.id
                ))
                .into()
            })
    }
}

/// Loads the owners, teams and pipelines of a list of leads in one batch
/// each, when the query asks for them, so that every lead's own field then
/// reads from the request's loader cache.
async fn prime<R: std::borrow::Borrow<lead::Model>>(
    ctx: &Context<'_>,
    rows: &[R],
    node: &[&str],
) -> Result<()> {
    let rows: Vec<&lead::Model> = rows.iter().map(R::borrow).collect();
    let loaders = ctx.data::<Loaders>()?;
    let mut selection = ctx.look_ahead();
    for field in node {
        selection = selection.field(field);
    }
    let wants = |field: &str| selection.field(field).exists();
    let owners: Vec<_> = rows.iter().filter_map(|r| r.owner_id).collect();
    let teams: Vec<_> = rows.iter().filter_map(|r| r.team_id).collect();
    let pipelines: Vec<_> = rows.iter().map(|r| r.pipeline_id).collect();
    let (users, teams, pipelines) = tokio::join!(
        async {
            if wants("owner") {
                loaders.user.load_many(owners).await.map(drop)
            } else {
                Ok(())
            }
        },
        async {
            if wants("team") {
                loaders.team.load_many(teams).await.map(drop)
            } else {
                Ok(())
            }
        },
        async {
            if wants("pipeline") || wants("stage") {
                loaders.pipeline.load_many(pipelines).await.map(drop)
            } else {
                Ok(())
            }
        },
    );
    for loaded in [users, teams, pipelines] {
        loaded.map_err(|e| e.extend_ref())?;
    }
    Ok(())
}

/// Loads the owners and teams of leads known by their scores alone, when
/// the query asks for them.
async fn prime_people<R: std::borrow::Borrow<lead_score::Model>>(
    ctx: &Context<'_>,
    rows: &[R],
    node: &[&str],
) -> Result<()> {
    let rows: Vec<&lead_score::Model> = rows.iter().map(R::borrow).collect();
    let loaders = ctx.data::<Loaders>()?;
    let mut selection = ctx.look_ahead();
    for field in node {
        selection = selection.field(field);
    }
    if selection.field("owner").exists() {
        let owners: Vec<_> = rows.iter().filter_map(|r| r.owner_id).collect();
        loaders
            .user
            .load_many(owners)
            .await
            .map_err(|e| e.extend_ref())?;
    }
    if selection.field("team").exists() {
        let teams: Vec<_> = rows.iter().filter_map(|r| r.team_id).collect();
        loaders
            .team
            .load_many(teams)
            .await
            .map_err(|e| e.extend_ref())?;
    }
    Ok(())
}

#[Object]
impl Lead {
    async fn id(&self) -> ID {
        ID(self.score.lead_id.to_string())
    }
    /// The lead's id in the system it was imported from.
    async fn external_id<'a>(&'a self, ctx: &Context<'_>) -> Result<Option<&'a str>> {
        let row = self.row(ctx).await?;
        Ok(row.external_id.as_deref())
    }
    async fn name<'a>(&'a self, ctx: &Context<'_>) -> Result<&'a str> {
        let row = self.row(ctx).await?;
        Ok(&row.name)
    }
    async fn company<'a>(&'a self, ctx: &Context<'_>) -> Result<Option<&'a str>> {
        let row = self.row(ctx).await?;
        Ok(row.company.as_deref())
    }
    /// Lower-cased.
    async fn email<'a>(&'a self, ctx: &Context<'_>) -> Result<Option<&'a str>> {
        let row = self.row(ctx).await?;
        Ok(row.email.as_deref())
    }
    /// Digits, with a leading `+` when given internationally.
    async fn phone<'a>(&'a self, ctx: &Context<'_>) -> Result<Option<&'a str>> {
        let row = self.row(ctx).await?;
        Ok(row.phone.as_deref())
    }
    async fn industry<'a>(&'a self, ctx: &Context<'_>) -> Result<Option<&'a str>> {
        let row = self.row(ctx).await?;
        Ok(row.industry.as_deref())
    }
    /// Where the lead came from (web form, fair, import…).
    async fn source<'a>(&'a self, ctx: &Context<'_>) -> Result<Option<&'a str>> {
        let row = self.row(ctx).await?;
        Ok(row.source.as_deref())
    }
    /// The salesperson following it up; null in the shared pool.
    async fn owner(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        Loaders::user(ctx, self.score.owner_id).await
    }
    async fn team(&self, ctx: &Context<'_>) -> Result<Option<Team>> {
        Loaders::team(ctx, self.score.team_id).await
    }
    async fn pipeline(&self, ctx: &Context<'_>) -> Result<Pipeline> {
        let loaded = self.pipeline_with_stages(ctx).await?;
        Ok(Pipeline::new(loaded.0.clone(), loaded.1.clone()))
    }
    async fn stage(&self, ctx: &Context<'_>) -> Result<Stage> {
        let loaded = self.pipeline_with_stages(ctx).await?;
        let row = self.row(ctx).await?;
        loaded
            .1
            .iter()
            .find(|s| s.id == row.stage_id)
            .cloned()
            .map(Stage::from)
            .ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!("lead {} points at a missing stage", row.id))
                    .into()
            })
    }
    async fn stage_entered_at(&self, ctx: &Context<'_>) -> Result<DateTime<Utc>> {
        let row = self.row(ctx).await?;
        Ok(row.stage_entered_at)
    }
    /// Field key to value, e.g. `{"budget": 5, "timeline": 3}`.
    async fn attributes<'a>(&'a self, ctx: &Context<'_>) -> Result<Json<&'a Value>> {
        let row = self.row(ctx).await?;
        Ok(Json(&row.attributes))
    }
    /// When the deal is expected to close, as last set; the forecast
    /// groups open deal value by it.
    async fn expected_close_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>> {
        let row = self.row(ctx).await?;
        Ok(row.expected_close_at)
    }

    async fn deal_value(&self, ctx: &Context<'_>) -> Result<Option<f64>> {
        let row = self.row(ctx).await?;
        Ok(row.deal_value)
    }
    /// 0 to 100.
    async fn score(&self) -> f64 {
        self.score.score
    }
    /// A tier key of the model that scored it, e.g. "A".
    async fn tier(&self) -> &str {
        &self.score.tier
    }
    /// 0 = the top tier.
    async fn tier_rank(&self) -> i32 {
        self.score.tier_rank
    }
    /// 0 to 1, from the tenant's learned predictor once trained.
    async fn close_probability(&self) -> Option<f64> {
        self.score.close_probability
    }
    /// The tier pin holding this lead at a tier of someone's choosing;
    /// null when there is none or it has expired. The score is computed
    /// as ever; `scoreBreakdown.overrides` shows the pin as `PIN`.
    async fn pin(&self, ctx: &Context<'_>) -> Result<Option<TierPin>> {
        let row = self.row(ctx).await?;
        let Some(tier) = row.pinned_tier.clone() else {
            return Ok(None);
        };
        if !follow_up::pin_in_force(row.pin_expires_at, Utc::now()) {
            return Ok(None);
        }
        Ok(Some(TierPin {
            tier,
            reason: row.pin_reason.clone().unwrap_or_default(),
            expires_at: row.pin_expires_at,
            pinned_by_id: row.pinned_by,
        }))
    }
    /// A follow-up someone scheduled and no outbound contact has completed
    /// yet; the lead is due at the earlier of it and its tier's cadence.
    async fn scheduled_follow_up(&self, ctx: &Context<'_>) -> Result<Option<ScheduledFollowUp>> {
        let row = self.row(ctx).await?;
        Ok(row.scheduled_follow_up_at.map(|at| ScheduledFollowUp {
            at,
            note: row.scheduled_follow_up_note.clone(),
            set_by_id: row.scheduled_follow_up_by,
        }))
    }
    /// How the score was made: every dimension's points and the rules
    /// that fired.
    async fn score_breakdown(&self, ctx: &Context<'_>) -> Result<ScoreBreakdown> {
        let card = self.scorecard(ctx).await?;
        Ok(ScoreBreakdown {
            total: card.total,
            tier: card.tier.clone(),
            base_tier: card.base_tier.clone(),
            model_id: ID(self
                .score
                .scoring_model_id
                .map(|id| id.to_string())
                .unwrap_or_default()),
            model_version: self.score.model_version.unwrap_or_default(),
            computed_at: crate::service::leads::rescoring::from_secs(card.computed_at),
            contributions: card
                .contributions
                .iter()
                .map(|c| Contribution {
                    dimension_key: c.dimension_key.clone(),
                    label: c.label.clone(),
                    kind: c.kind.into(),
                    raw_value: c.raw_value,
                    normalized: c.normalized,
                    weight: c.weight,
                    points: c.points,
                    detail: c.detail.clone(),
                })
                .collect(),
            overrides: card
                .overrides
                .iter()
                .map(|o| AppliedOverride {
                    rule: o.rule.clone(),
                    effect: o.effect.clone(),
                    reason: o.reason.clone(),
                })
                .collect(),
        })
    }
    /// Flags from the last scoring; OVERDUE is judged now.
    async fn flags(&self) -> Vec<LeadFlag> {
        let s = &self.score;
        follow_up::flags_at(s.flags, s.status, s.next_follow_up_at, Utc::now())
            .into_iter()
            .map(LeadFlag::from)
            .collect()
    }
    async fn next_follow_up_at(&self) -> Option<DateTime<Utc>> {
        self.score.next_follow_up_at
    }
    async fn last_activity_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>> {
        let row = self.row(ctx).await?;
        Ok(row.last_activity_at)
    }
    async fn status(&self) -> LeadStatus {
        self.score.status.into()
    }
    async fn closed_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>> {
        let row = self.row(ctx).await?;
        Ok(row.closed_at)
    }
    async fn close_reason<'a>(&'a self, ctx: &Context<'_>) -> Result<Option<&'a str>> {
        let row = self.row(ctx).await?;
        Ok(row.close_reason.as_deref())
    }
    /// The key of the lost-reason category a LOST lead was closed with
    /// (see `lostReasonCategories`).
    async fn close_reason_category<'a>(&'a self, ctx: &Context<'_>) -> Result<Option<&'a str>> {
        let row = self.row(ctx).await?;
        Ok(row.close_reason_category.as_deref())
    }
    /// Why the lead is a CHURN_RISK, from its last scoring; empty when it
    /// is not one. The explanation's CHURN_RISK entries give the figures.
    async fn churn_causes(&self) -> Vec<ChurnCause> {
        crate::service::leads::rescoring::churn_causes(self.score.flags)
            .into_iter()
            .map(ChurnCause::from)
            .collect()
    }
    /// Send it back as `expectedVersion` with `updateLead`.
    async fn version(&self) -> i32 {
        self.score.version
    }
    async fn created_at(&self, ctx: &Context<'_>) -> Result<DateTime<Utc>> {
        let row = self.row(ctx).await?;
        Ok(row.created_at)
    }
    async fn updated_at(&self, ctx: &Context<'_>) -> Result<DateTime<Utc>> {
        let row = self.row(ctx).await?;
        Ok(row.updated_at)
    }
    /// Newest first.
    #[graphql(complexity = "count_of(first) * child_complexity")]
    async fn activities(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> Result<Vec<Activity>> {
        let (_, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        let first = bounded("first", first, 200).gql()?;
        Ok(leads::activities(&scope, self.score.lead_id, first)
            .await
            .gql()?
            .into_iter()
            .map(Activity::from)
            .collect())
    }
    /// Score and tier changes, newest first.
    #[graphql(complexity = "count_of(first) * child_complexity")]
    async fn score_history(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> Result<Vec<ScoreEvent>> {
        let (_, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        let first = bounded("first", first, 200).gql()?;
        Ok(leads::score_history(&scope, self.score.lead_id, first)
            .await
            .gql()?
            .into_iter()
            .map(ScoreEvent::from)
            .collect())
    }
    /// What happened to the lead, newest first: stage moves, assignments
    /// (by a person or by a rule), closes, pins.
    #[graphql(complexity = "count_of(first) * child_complexity")]
    async fn history(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> Result<Vec<LeadEvent>> {
        let (_, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        let first = bounded("first", first, 200).gql()?;
        Ok(leads::lead_events(&scope, self.score.lead_id, first)
            .await
            .gql()?
            .into_iter()
            .map(|row| LeadEvent { row })
            .collect())
    }
}

/// Something that happened to a lead.
pub struct LeadEvent {
    row: lead_event::Model,
}

async fn user_named(ctx: &Context<'_>, id: Option<&str>) -> Result<Option<User>> {
    Loaders::user(ctx, id.and_then(|id| id.parse().ok())).await
}

#[Object]
impl LeadEvent {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    /// STAGE (a move, or a close into a won or lost stage), REOPENED (a
    /// lost lead back into an open stage) or RENEWAL (a won customer's
    /// renewal), both with the reason, ASSIGNED, CLAIMED (a rep took it
    /// from the pool), RETURNED_TO_POOL (by the pool rules, with the
    /// reason), PIN, UNPIN, FOLLOW_UP_SCHEDULED, FOLLOW_UP_CLEARED or
    /// FOLLOW_UP_DONE (an outbound activity completed it; the value after
    /// is its signal).
    async fn kind(&self) -> &str {
        &self.row.kind
    }
    async fn at(&self) -> DateTime<Utc> {
        self.row.at
    }
    /// Who did it; null when LeadRank did (an assignment rule, an import's
    /// history) or an API key did.
    async fn actor(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        Loaders::user(ctx, self.row.actor_id).await
    }
    /// The API key that did it (its name is the author); null otherwise.
    async fn api_key(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Option<crate::graphql::accounts::api_keys::ApiKey>> {
        Loaders::api_key(ctx, self.row.actor_id.map(uuid::Uuid::from)).await
    }
    /// The value before: a stage key, or an owner's id for ASSIGNED.
    async fn from_value(&self) -> Option<&str> {
        self.row.from_value.as_deref()
    }
    /// The value after: a stage key, or an owner's id for ASSIGNED (null:
    /// back to the pool).
    async fn to_value(&self) -> Option<&str> {
        self.row.to_value.as_deref()
    }
    /// For ASSIGNED, CLAIMED and RETURNED_TO_POOL: the owner before.
    async fn previous_owner(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        if !self.changes_owner() {
            return Ok(None);
        }
        user_named(ctx, self.row.from_value.as_deref()).await
    }
    /// For ASSIGNED, CLAIMED and RETURNED_TO_POOL: the owner after.
    async fn new_owner(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        if !self.changes_owner() {
            return Ok(None);
        }
        user_named(ctx, self.row.to_value.as_deref()).await
    }
    /// The assignment rule that made an automatic assignment.
    async fn rule_id(&self) -> Option<ID> {
        self.data_str("rule_id").map(|id| ID(id.to_owned()))
    }
    /// The rule's name when it made the assignment.
    async fn rule_name(&self) -> Option<&str> {
        self.data_str("rule_name")
    }
    /// Why, when recorded: `imported` for history written by an import;
    /// for RETURNED_TO_POOL the pool rule that sent it back ("no outbound
    /// contact by its owner for 14 days", "cold for 30 days").
    async fn reason(&self) -> Option<&str> {
        self.data_str("reason")
    }
}

impl LeadEvent {
    fn changes_owner(&self) -> bool {
        matches!(
            self.row.kind.as_str(),
            "ASSIGNED" | pool::CLAIMED | pool::RETURNED
        )
    }

    fn data_str(&self, key: &str) -> Option<&str> {
        self.row.data.as_ref().and_then(|d| d[key].as_str())
    }
}

/// A list argument's size for the complexity limit: a page of 50 costs 50
/// times its fields.
fn count_of(first: i32) -> usize {
    usize::try_from(first).unwrap_or(0).max(1)
}

fn bounded(field: &str, value: i32, max: u64) -> Result<u64, AppError> {
    u64::try_from(value)
        .ok()
        .filter(|v| *v <= max)
        .ok_or_else(|| AppError::invalid(field, format!("must be from 0 to {max}")))
}

/// How a score was made.
#[derive(SimpleObject)]
pub struct ScoreBreakdown {
    pub total: f64,
    pub tier: String,
    /// The tier from the thresholds alone, before override rules.
    pub base_tier: String,
    pub model_id: ID,
    pub model_version: i32,
    pub computed_at: DateTime<Utc>,
    /// Every dimension, in model order; the points sum to `total`.
    pub contributions: Vec<Contribution>,
    /// Rules that raised or capped the tier, in the order they applied.
    pub overrides: Vec<AppliedOverride>,
}

/// One dimension's share of the score.
#[derive(SimpleObject)]
pub struct Contribution {
    pub dimension_key: String,
    pub label: String,
    pub kind: DimensionKind,
    /// The measured value in the dimension's unit (rating, days, points…).
    pub raw_value: f64,
    /// The value mapped to 0–1.
    pub normalized: f64,
    /// Percent of the total score.
    pub weight: f64,
    /// `weight × normalized`.
    pub points: f64,
    /// What was measured, in a sentence, where the number alone does not
    /// say it (RESPONSIVENESS, DATE_PROXIMITY): "tender_date in 12 day(s)".
    pub detail: Option<String>,
}

/// A rule that fired.
#[derive(SimpleObject)]
pub struct AppliedOverride {
    pub rule: String,
    /// What it did, e.g. "raised C → A".
    pub effect: String,
    pub reason: String,
}

/// A lead's tier, held by someone with a reason until it expires.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct TierPin {
    /// A tier key of the model that scores the lead.
    pub tier: String,
    /// Why, in the words of who pinned it.
    pub reason: String,
    /// When the pin lapses and the model's tier applies again; never when
    /// null.
    pub expires_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    pinned_by_id: Option<entity::UserId>,
}

#[ComplexObject]
impl TierPin {
    /// Who pinned it.
    async fn pinned_by(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        Loaders::user(ctx, self.pinned_by_id).await
    }
}

/// A follow-up someone scheduled: "call back after the tender on the 15th".
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct ScheduledFollowUp {
    /// When to follow up.
    pub at: DateTime<Utc>,
    /// Why, in the words of who scheduled it.
    pub note: Option<String>,
    #[graphql(skip)]
    set_by_id: Option<entity::UserId>,
}

#[ComplexObject]
impl ScheduledFollowUp {
    /// Who scheduled it.
    async fn set_by(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        Loaders::user(ctx, self.set_by_id).await
    }
}

/// Something that happened with a lead.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Activity {
    pub id: ID,
    pub signal_key: String,
    pub direction: Direction,
    pub occurred_at: DateTime<Utc>,
    pub note: Option<String>,
    pub amount: Option<f64>,
    #[graphql(skip)]
    created_by: Option<entity::UserId>,
}

#[async_graphql::ComplexObject]
impl Activity {
    /// The API key that recorded it (its name is the author); null when a
    /// person or an import did.
    async fn api_key(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Option<crate::graphql::accounts::api_keys::ApiKey>> {
        // What a key records names the key as its author (see
        // `ApiKeyCaller::principal`).
        Loaders::api_key(ctx, self.created_by.map(uuid::Uuid::from)).await
    }
}

impl From<activity::Model> for Activity {
    fn from(a: activity::Model) -> Self {
        Self {
            id: ID(a.id.to_string()),
            signal_key: a.signal_key,
            direction: a.direction.into(),
            occurred_at: a.occurred_at,
            note: a.note,
            amount: a.amount,
            created_by: a.created_by,
        }
    }
}

/// A change of score or tier.
#[derive(SimpleObject)]
pub struct ScoreEvent {
    pub at: DateTime<Utc>,
    pub old_score: Option<f64>,
    pub new_score: f64,
    pub old_tier: Option<String>,
    pub new_tier: String,
    pub reason: String,
    pub model_version: i32,
}

impl From<score_event::Model> for ScoreEvent {
    fn from(e: score_event::Model) -> Self {
        Self {
            at: e.at,
            old_score: e.old_score,
            new_score: e.new_score,
            old_tier: e.old_tier,
            new_tier: e.new_tier,
            reason: e.reason,
            model_version: e.model_version,
        }
    }
}

/// One lead of the follow-up queue, with why it is there.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct QueueEntry {
    pub lead: Lead,
    /// Larger comes first: an urgent signal inside its window, then
    /// overdue, then due later today, then tier, then score.
    pub priority: i32,
    /// When the follow-up is due.
    pub due_at: Option<DateTime<Utc>>,
    /// Whole days past due; 0 when not overdue.
    pub overdue_days: i32,
    /// When the queue was read: the reasons speak of it.
    #[graphql(skip)]
    pub now: DateTime<Utc>,
}

#[ComplexObject]
impl QueueEntry {
    /// Short phrases in the tenant's language, most pressing first.
    async fn reasons(&self, ctx: &Context<'_>) -> Result<Vec<String>> {
        let (_, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        let config = tenant_config::get(&scope).await.gql()?;
        let row = self.lead.row(ctx).await?;
        let stage = config
            .stages(row.pipeline_id)
            .iter()
            .find(|s| s.id == row.stage_id);
        let model = config.model(row.team_id).gql()?;
        let model = model.compiled.config();
        let first_response_hours = model
            .tiers
            .iter()
            .find(|t| t.key == row.tier)
            .and_then(|t| t.first_response_hours);
        Ok(reasons::queue_reasons(
            &QueueFacts {
                lead: row,
                stage_name: stage.map_or("", |s| s.name.as_str()),
                stage_key: stage.map_or("", |s| s.key.as_str()),
                signals: &config.catalog.signals,
                first_response_hours,
                rules: &model.overrides,
            },
            &config.tenant.locale,
            self.now,
        ))
    }
}

/// Filters of the lead list; a list matches any of its values, and
/// filters combine with AND.
#[derive(InputObject, Default)]
pub struct LeadFilter {
    pub tiers: Option<Vec<String>>,
    pub stage_keys: Option<Vec<String>>,
    pub owner_id: Option<ID>,
    pub team_id: Option<ID>,
    pub status: Option<Vec<LeadStatus>>,
    /// Leads with any of these flags.
    pub flags: Option<Vec<LeadFlag>>,
    /// Part of the name, company, email or phone, in any case.
    pub text: Option<String>,
    /// true: only the shared pool; false: only owned leads.
    pub unassigned: Option<bool>,
}

impl LeadFilter {
    pub(crate) fn into_service(self) -> Result<Filter, AppError> {
        fn id<T: From<uuid::Uuid>>(field: &str, v: Option<ID>) -> Result<Option<T>, AppError> {
            v.map(|v| validate::id(field, &v)).transpose()
        }
        Ok(Filter {
            tiers: self.tiers,
            stage_keys: self.stage_keys,
            owner_id: id("filter.ownerId", self.owner_id)?,
            team_id: id("filter.teamId", self.team_id)?,
            status: self.status.map(|s| s.into_iter().map(Into::into).collect()),
            flags: self.flags.map(|f| f.into_iter().map(Into::into).collect()),
            text: self.text,
            unassigned: self.unassigned,
        })
    }
}

/// A page of leads.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct LeadConnection {
    pub edges: Vec<LeadEdge>,
    pub page_info: PageInfo,
    #[graphql(skip)]
    principal: Principal,
    #[graphql(skip)]
    filter: Arc<Filter>,
    /// Counted once however many aliases ask: each would otherwise run
    /// its own COUNT.
    #[graphql(skip)]
    total_count: tokio::sync::OnceCell<i32>,
}

#[ComplexObject]
impl LeadConnection {
    /// All leads matching the filter that the caller may see; counted only
    /// when asked for.
    #[graphql(complexity = "cost::COUNT")]
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let total = self
            .total_count
            .get_or_try_init(|| async {
                let (_, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
                let n = lead_query::count(&scope, &self.principal, &self.filter, Utc::now())
                    .await
                    .gql()?;
                Ok::<_, async_graphql::Error>(i32::try_from(n).unwrap_or(i32::MAX))
            })
            .await?;
        Ok(*total)
    }
}

/// A lead and its cursor.
#[derive(SimpleObject)]
pub struct LeadEdge {
    /// Pass as `after` for the page that follows this lead.
    pub cursor: String,
    pub node: Lead,
}

/// Whether there is more.
#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

#[derive(Default)]
pub struct LeadQuery;

#[Object]
impl LeadQuery {
    /// The lead, or null when it does not exist or the caller may not see it.
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn lead(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Lead>> {
        let (principal, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        let Ok(id) = validate::id("id", &id) else {
            return Ok(None);
        };
        Ok(leads::find_visible(&scope, &principal, id)
            .await
            .gql()?
            .map(Lead::from))
    }

    /// The leads the caller may see, filtered and ordered, a page at a time.
    #[graphql(complexity = "cost::PAGE + count_of(first) * child_complexity")]
    async fn leads(
        &self,
        ctx: &Context<'_>,
        filter: Option<LeadFilter>,
        #[graphql(default_with = "LeadOrder::Priority")] order_by: LeadOrder,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
    ) -> Result<LeadConnection> {
        let (principal, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        let filter = filter.unwrap_or_default().into_service().gql()?;
        let order = lead_query::LeadOrder::from(order_by);
        let now = Utc::now();
        let node = ctx.look_ahead().field("edges").field("node");
        // A list that shows only what scoring keeps reads only that.
        let (edges, has_next_page) =
            if order == lead_query::LeadOrder::Updated || asks_beyond_scores(&node) {
                let page = lead_query::page(
                    &scope,
                    &principal,
                    &filter,
                    order,
                    first,
                    after.as_deref(),
                    now,
                )
                .await
                .gql()?;
                let rows: Vec<&lead::Model> = page.edges.iter().map(|(_, row)| row).collect();
                prime(ctx, &rows, &["edges", "node"]).await?;
                (edges_of(page.edges), page.has_next_page)
            } else {
                let page = lead_query::page_of_scores(
                    &scope,
                    &principal,
                    &filter,
                    order,
                    first,
                    after.as_deref(),
                    now,
                )
                .await
                .gql()?;
                let rows: Vec<&lead_score::Model> = page.edges.iter().map(|(_, row)| row).collect();
                prime_people(ctx, &rows, &["edges", "node"]).await?;
                (edges_of(page.edges), page.has_next_page)
            };
        let end_cursor = edges.last().map(|edge| edge.cursor.clone());
        Ok(LeadConnection {
            edges,
            page_info: PageInfo {
                has_next_page,
                end_cursor,
            },
            principal,
            filter: Arc::new(filter),
            total_count: tokio::sync::OnceCell::new(),
        })
    }

    /// Whom to follow up next: the caller's open leads (or, for a manager,
    /// a rep's of their team), overdue first, then by tier and score, each
    /// with its reasons.
    #[graphql(complexity = "cost::READ + count_of(limit) * child_complexity")]
    async fn follow_up_queue(
        &self,
        ctx: &Context<'_>,
        owner_id: Option<ID>,
        #[graphql(default = 50)] limit: i32,
    ) -> Result<Vec<QueueEntry>> {
        let (principal, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        let now = Utc::now();
        let owner = owner_id
            .map(|id| validate::id("ownerId", &id))
            .transpose()
            .gql()?;
        let owner = lead_query::queue_owner(&scope, &principal, owner)
            .await
            .gql()?;
        let queued = lead_query::follow_up_queue(&scope, owner, limit, now)
            .await
            .gql()?;
        if queued.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<&lead_score::Model> = queued.iter().map(|q| &q.score).collect();
        // The leads' facts only when a field (or the reasons) asks for
        // more than what scoring keeps: one query for the whole queue.
        let selection = ctx.look_ahead();
        let needs_facts =
            selection.field("reasons").exists() || asks_beyond_scores(&selection.field("lead"));
        if needs_facts {
            let facts = ctx
                .data::<Loaders>()?
                .lead
                .load_many(rows.iter().map(|r| r.lead_id))
                .await
                .map_err(|e| e.extend_ref())?;
            let facts: Vec<Arc<lead::Model>> = facts.into_values().collect();
            prime(ctx, &facts, &["lead"]).await?;
        } else {
            prime_people(ctx, &rows, &["lead"]).await?;
        }
        Ok(queued
            .into_iter()
            .map(|q| QueueEntry {
                priority: i32::try_from(q.priority).unwrap_or(i32::MAX),
                due_at: q.score.next_follow_up_at,
                overdue_days: i32::try_from(q.overdue_days).unwrap_or(i32::MAX),
                now,
                lead: Lead::from(q.score),
            })
            .collect())
    }
}

/// Whether any occurrence of a selected `Lead` asks for a field that what
/// scoring keeps of the lead does not answer.
fn asks_beyond_scores(lead: &async_graphql::Lookahead<'_>) -> bool {
    lead.selection_fields()
        .iter()
        .flat_map(|f| f.selection_set())
        .any(|f| !SCORE_FIELDS.contains(&f.name()))
}

/// A page's rows as edges.
fn edges_of<R: Into<Lead>>(rows: Vec<(String, R)>) -> Vec<LeadEdge> {
    rows.into_iter()
        .map(|(cursor, row)| LeadEdge {
            cursor,
            node: row.into(),
        })
        .collect()
}

/// The fields of `Lead` that what scoring keeps of a lead answers alone.
const SCORE_FIELDS: [&str; 15] = [
    "__typename",
    "id",
    "score",
    "tier",
    "tierRank",
    "closeProbability",
    "flags",
    "nextFollowUpAt",
    "status",
    "version",
    "owner",
    "team",
    "activities",
    "scoreHistory",
    "history",
];

#[derive(InputObject)]
pub struct CreateLeadInput {
    pub name: String,
    pub company: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub industry: Option<String>,
    /// Field key to value, checked against the tenant's lead fields.
    pub attributes: Option<Json<Value>>,
    pub deal_value: Option<f64>,
    /// Null: the shared pool (a REP's new lead is always their own).
    pub owner_id: Option<ID>,
    pub team_id: Option<ID>,
    /// Default: the tenant's default pipeline.
    pub pipeline_id: Option<ID>,
    /// Default: the pipeline's first stage.
    pub stage_key: Option<String>,
    pub external_id: Option<String>,
    pub source: Option<String>,
    /// For leads brought over from elsewhere; never in the future.
    pub created_at: Option<DateTime<Utc>>,
    /// When the deal is expected to close, for the forecast; without it
    /// the forecast uses the stage's typical time to close.
    pub expected_close_at: Option<DateTime<Utc>>,
}

#[derive(InputObject)]
pub struct UpdateLeadInput {
    pub id: ID,
    /// The `version` you loaded; a newer one means someone else changed it.
    pub expected_version: i32,
    pub name: Option<String>,
    /// Null clears it, as for email, phone, industry, deal value and team.
    pub company: MaybeUndefined<String>,
    pub email: MaybeUndefined<String>,
    pub phone: MaybeUndefined<String>,
    pub industry: MaybeUndefined<String>,
    /// Merged into the lead's attributes; a null value removes its key.
    pub attributes: Option<Json<Value>>,
    pub deal_value: MaybeUndefined<f64>,
    pub team_id: MaybeUndefined<ID>,
    /// When the deal is expected to close; null clears it.
    pub expected_close_at: MaybeUndefined<DateTime<Utc>>,
}

#[derive(InputObject)]
pub struct MoveStageInput {
    pub id: ID,
    pub stage_key: String,
}

#[derive(InputObject)]
pub struct AssignLeadInput {
    pub id: ID,
    /// Null: back to the shared pool.
    pub owner_id: Option<ID>,
}

#[derive(InputObject)]
pub struct RecordActivityInput {
    pub lead_id: ID,
    /// A key of the tenant's signal types.
    pub signal_key: String,
    /// Default: now. The past is allowed.
    pub occurred_at: Option<DateTime<Utc>>,
    /// Default: the signal type's direction.
    pub direction: Option<Direction>,
    pub note: Option<String>,
    pub amount: Option<f64>,
}

/// Why a customer is a churn risk.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ChurnCause {
    /// Inbound interactions fell, window over window.
    InteractionsFalling,
    /// Complaints (signals with negative points) rose over a window.
    ComplaintsRising,
    /// Purchase amounts fell, window over window.
    OrderAmountsFalling,
}

impl From<scoring::ChurnCause> for ChurnCause {
    fn from(c: scoring::ChurnCause) -> Self {
        match c {
            scoring::ChurnCause::InteractionsFalling => Self::InteractionsFalling,
            scoring::ChurnCause::ComplaintsRising => Self::ComplaintsRising,
            scoring::ChurnCause::OrderAmountsFalling => Self::OrderAmountsFalling,
        }
    }
}

/// Reopens a LOST lead into an open stage (re-engagement), or starts a
/// WON customer's renewal in a post-sale stage (it stays WON).
#[derive(InputObject)]
pub struct ReopenLeadInput {
    pub id: ID,
    /// A stage of the lead's pipeline: an open stage before the sale for a
    /// lost lead, a post-sale stage for a won customer.
    pub stage_key: String,
    /// Why, recorded in the lead's history and score history.
    pub reason: String,
}

#[derive(InputObject)]
pub struct CloseLeadInput {
    pub id: ID,
    pub outcome: Outcome,
    pub reason: Option<String>,
    /// For LOST only: the key of one of the tenant's lost-reason categories
    /// (`lostReasonCategories`), counted by `lostReasons`.
    pub reason_category: Option<String>,
    /// Default: now.
    pub closed_at: Option<DateTime<Utc>>,
}

#[derive(InputObject)]
pub struct PinLeadTierInput {
    pub id: ID,
    /// A tier key of the model that scores the lead, e.g. "A".
    pub tier: String,
    /// Why, shown in the lead's explanation; up to 500 characters.
    pub reason: String,
    /// When the pin lapses; in the future. Null: until it is removed.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(InputObject)]
pub struct UnpinLeadTierInput {
    pub id: ID,
}

#[derive(InputObject)]
pub struct ScheduleFollowUpInput {
    pub lead_id: ID,
    /// When to follow up; in the future.
    pub at: DateTime<Utc>,
    /// Why, up to 500 characters; shown in the queue's reasons.
    pub note: Option<String>,
}

#[derive(InputObject)]
pub struct ClearScheduledFollowUpInput {
    pub lead_id: ID,
}

/// The lead after a change, re-scored.
#[derive(SimpleObject)]
pub struct LeadPayload {
    pub lead: Lead,
}

impl From<lead::Model> for LeadPayload {
    fn from(row: lead::Model) -> Self {
        Self { lead: row.into() }
    }
}

/// Text to clear (empty) or set; absent leaves it as it is.
fn text_change(value: MaybeUndefined<String>) -> Option<String> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(String::new()),
        MaybeUndefined::Value(v) => Some(v),
    }
}

/// An optional contact (an email, a phone) at `field`: empty means none.
fn contact<T: Parse>(field: &str, raw: Option<&str>) -> Result<Option<T>> {
    raw.map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| validate::parse(field, v))
        .transpose()
        .gql()
}

/// A contact to set, or to clear (null or empty); absent leaves it.
fn contact_change<T: Parse>(
    field: &str,
    value: MaybeUndefined<String>,
) -> Result<Option<Option<T>>> {
    text_change(value)
        .map(|v| contact(field, Some(&v)))
        .transpose()
}

#[derive(Default)]
pub struct LeadMutation;

#[Object]
impl LeadMutation {
    /// Adds a lead, scored at once. Duplicates (same email, phone, or
    /// company and name) are refused with the existing lead's id.
    async fn create_lead(&self, ctx: &Context<'_>, input: CreateLeadInput) -> Result<LeadPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let input = NewLead {
            name: input.name,
            company: input.company,
            email: contact("input.email", input.email.as_deref())?,
            phone: contact("input.phone", input.phone.as_deref())?,
            industry: input.industry,
            attributes: input.attributes.map(|j| j.0),
            deal_value: input.deal_value,
            owner_id: input
                .owner_id
                .map(|id| id_at("input.ownerId", &id))
                .transpose()?,
            team_id: input
                .team_id
                .map(|id| id_at("input.teamId", &id))
                .transpose()?,
            pipeline_id: input
                .pipeline_id
                .map(|id| id_at("input.pipelineId", &id))
                .transpose()?,
            stage_key: input.stage_key,
            external_id: input.external_id,
            source: input.source,
            created_at: input.created_at,
            expected_close_at: input.expected_close_at,
        };
        Ok(leads::create_lead(&rc.db, &principal, input, Utc::now())
            .await
            .gql_at("input")?
            .into())
    }

    /// Changes a lead's details when `expectedVersion` is still current.
    async fn update_lead(&self, ctx: &Context<'_>, input: UpdateLeadInput) -> Result<LeadPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let changes = LeadChanges {
            name: input.name,
            company: text_change(input.company),
            email: contact_change("input.email", input.email)?,
            phone: contact_change("input.phone", input.phone)?,
            industry: text_change(input.industry),
            attributes: input.attributes.map(|j| j.0),
            deal_value: input.deal_value.into(),
            team_id: Option::<Option<ID>>::from(input.team_id)
                .map(|team| team.map(|id| id_at("input.teamId", &id)).transpose())
                .transpose()?,
            expected_close_at: input.expected_close_at.into(),
        };
        Ok(leads::update_lead(
            &rc.db,
            &principal,
            id_at("input.id", &input.id)?,
            input.expected_version,
            changes,
            Utc::now(),
        )
        .await
        .gql_at("input")?
        .into())
    }

    /// Moves an open lead to another open stage of its pipeline.
    async fn move_lead_stage(
        &self,
        ctx: &Context<'_>,
        input: MoveStageInput,
    ) -> Result<LeadPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        Ok(leads::move_lead_stage(
            &rc.db,
            &principal,
            id_at("input.id", &input.id)?,
            &input.stage_key,
            Utc::now(),
        )
        .await
        .gql_at("input")?
        .into())
    }

    /// Gives a lead to someone of the company, or back to the shared pool.
    async fn assign_lead(&self, ctx: &Context<'_>, input: AssignLeadInput) -> Result<LeadPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let id = id_at("input.id", &input.id)?;
        let owner = input
            .owner_id
            .map(|id| id_at("input.ownerId", &id))
            .transpose()?;
        Ok(
            leads::assign_lead(&rc.db, &principal, id, owner, Utc::now())
                .await
                .gql_at("input")?
                .into(),
        )
    }

    /// Logs a call, an email, a visit… and re-scores the lead.
    async fn record_activity(
        &self,
        ctx: &Context<'_>,
        input: RecordActivityInput,
    ) -> Result<LeadPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let input = NewActivity {
            lead_id: id_at("input.leadId", &input.lead_id)?,
            signal_key: input.signal_key,
            occurred_at: input.occurred_at,
            direction: input.direction.map(Into::into),
            note: input.note,
            amount: input.amount,
        };
        Ok(
            leads::record_activity(&rc.db, &principal, input, Utc::now())
                .await
                .gql_at("input")?
                .into(),
        )
    }

    /// Holds an open lead at a tier, with a reason and an optional expiry;
    /// its score is still computed and shown. OWNER, ADMIN and MANAGER for
    /// leads they see; a REP for leads they own when the company allows it
    /// (`Tenant.repsMayPin`). Replaces an earlier pin. Audited.
    async fn pin_lead_tier(
        &self,
        ctx: &Context<'_>,
        input: PinLeadTierInput,
    ) -> Result<LeadPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let input = NewTierPin {
            id: id_at("input.id", &input.id)?,
            tier: input.tier,
            reason: input.reason,
            expires_at: input.expires_at,
        };
        Ok(leads::pin_lead_tier(&rc.db, &principal, input, Utc::now())
            .await
            .gql_at("input")?
            .into())
    }

    /// Removes a lead's tier pin, so the model's tier applies again; who
    /// may is as for `pinLeadTier`. Audited.
    async fn unpin_lead_tier(
        &self,
        ctx: &Context<'_>,
        input: UnpinLeadTierInput,
    ) -> Result<LeadPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        Ok(leads::unpin_lead_tier(
            &rc.db,
            &principal,
            id_at("input.id", &input.id)?,
            Utc::now(),
        )
        .await
        .gql_at("input")?
        .into())
    }

    /// Schedules a follow-up of an open lead: it is due at the earlier of
    /// this and its tier's cadence, until an outbound activity at or after
    /// the time completes it. Replaces an earlier schedule. Whoever may
    /// edit the lead may; a REP not on a lead of the shared pool.
    async fn schedule_follow_up(
        &self,
        ctx: &Context<'_>,
        input: ScheduleFollowUpInput,
    ) -> Result<LeadPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let input = NewScheduledFollowUp {
            lead_id: id_at("input.leadId", &input.lead_id)?,
            at: input.at,
            note: input.note,
        };
        Ok(
            leads::schedule_follow_up(&rc.db, &principal, input, Utc::now())
                .await
                .gql_at("input")?
                .into(),
        )
    }

    /// Clears a lead's scheduled follow-up; its cadence alone says when it
    /// is due again.
    async fn clear_scheduled_follow_up(
        &self,
        ctx: &Context<'_>,
        input: ClearScheduledFollowUpInput,
    ) -> Result<LeadPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        Ok(leads::clear_scheduled_follow_up(
            &rc.db,
            &principal,
            id_at("input.leadId", &input.lead_id)?,
            Utc::now(),
        )
        .await
        .gql_at("input")?
        .into())
    }

    /// Reopens a LOST lead into an open stage before the sale, or starts a
    /// WON customer's renewal in a post-sale stage (the lead stays WON, so
    /// training and reports keep the sale). Recorded in the lead's history
    /// (REOPENED or RENEWAL, with the reason) and its score history.
    async fn reopen_lead(&self, ctx: &Context<'_>, input: ReopenLeadInput) -> Result<LeadPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        Ok(leads::reopen_lead(
            &rc.db,
            &principal,
            id_at("input.id", &input.id)?,
            &input.stage_key,
            &input.reason,
            Utc::now(),
        )
        .await
        .gql_at("input")?
        .into())
    }

    /// Closes an open lead as won or lost.
    async fn close_lead(&self, ctx: &Context<'_>, input: CloseLeadInput) -> Result<LeadPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        Ok(leads::close_lead(
            &rc.db,
            &principal,
            id_at("input.id", &input.id)?,
            input.outcome == Outcome::Won,
            input.reason.as_deref(),
            input.reason_category.as_deref(),
            input.closed_at,
            Utc::now(),
        )
        .await
        .gql_at("input")?
        .into())
    }
}
