//! Scoring model versions (draft, preview, activate) and the analytics
//! that judge them: funnel, tier distribution, model evaluation.

use crate::graphql::cost;
use crate::graphql::id_at;
use async_graphql::{Context, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::lead;
use sea_orm::{ColumnTrait, QueryFilter};
use serde_json::{Value, json};

use crate::graphql::{
    RequestContext,
    configuration::lost_reasons::LostReasonCount,
    jobs::{JobRun, TierMove},
    leads::lead::Lead,
    types::{DimensionKind, ScoringModel, Stage},
};
use crate::{
    error::{AppError, IntoGraphql},
    service::{
        analytics, configuration::lost_reasons, configuration::scoring_models,
        configuration::tenant_config, leads::visibility::LeadVisibility,
    },
};

/// How many leads a model activation re-scores in the request; beyond it
/// the re-scoring job does it in the background.
#[derive(Clone, Copy)]
pub struct ActivationInlineLeads(pub u64);

/// A weighted dimension of a new model version.
#[derive(InputObject)]
pub struct DimensionInput {
    pub key: String,
    pub label: String,
    pub kind: DimensionKind,
    /// Percentage of the total score; the weights sum to 100.
    pub weight: f64,
    /// Kind-specific parameters, e.g. `{"field": "budget"}` for RATING.
    pub params: Option<Json<Value>>,
}

/// A score threshold and its cadence; tiers are listed from the top.
#[derive(InputObject)]
pub struct TierInput {
    pub key: String,
    pub label: String,
    pub min_score: f64,
    pub follow_up_every_days: f64,
    /// Hours within which a lead new to the tier is due for a first
    /// contact; > 0. Null: the cadence alone.
    pub first_response_hours: Option<f64>,
}

/// A rule that raises or caps the tier: URGENT_SIGNAL, BANT, COLD, STALE,
/// CHURN_RISK, STAGE (`{"stages": ["negotiation"], "tier": "A"}`) or BURST
/// (`{"atLeast": 3, "withinDays": 2, "tier": "B"}`).
#[derive(InputObject)]
pub struct OverrideInput {
    pub kind: String,
    pub params: Option<Json<Value>>,
}

/// A new draft version: from a template, from the active model
/// (`copyActive`) or from scratch; the parts given replace the base's.
#[derive(InputObject)]
pub struct ScoringModelInput {
    /// The team whose model this is; null for the tenant default.
    pub team_id: Option<ID>,
    pub name: String,
    /// general, saas or medical.
    pub template: Option<String>,
    #[graphql(default = false)]
    pub copy_active: bool,
    pub dimensions: Option<Vec<DimensionInput>>,
    pub tiers: Option<Vec<TierInput>>,
    pub overrides: Option<Vec<OverrideInput>>,
}

#[derive(InputObject)]
pub struct PreviewInput {
    pub model_id: ID,
}

/// A draft to activate, or an older retired version to roll back to.
#[derive(InputObject)]
pub struct ActivateInput {
    pub model_id: ID,
}

/// The result of `createScoringModelDraft` and `activateScoringModel`.
#[derive(SimpleObject)]
pub struct ScoringModelPayload {
    pub model: ScoringModel,
    /// The re-scoring run, when the leads were too many to re-score in the
    /// request; `jobRuns` shows its progress.
    pub job_run: Option<JobRun>,
}

/// Mean and deciles of scores.
#[derive(SimpleObject)]
pub struct ScoreStats {
    pub mean: f64,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
}

impl From<scoring::ScoreStats> for ScoreStats {
    fn from(s: scoring::ScoreStats) -> Self {
        Self {
            mean: s.mean,
            p10: s.p10,
            p50: s.p50,
            p90: s.p90,
        }
    }
}

/// A lead whose score the new version moves.
#[derive(SimpleObject)]
pub struct LeadMove {
    pub lead: Lead,
    pub from_score: f64,
    pub to_score: f64,
    pub from_tier: String,
    pub to_tier: String,
}

/// Both models judged on the scope's closed leads, as they stood just
/// before closing.
#[derive(SimpleObject)]
pub struct ModelComparison {
    pub closed_leads: i32,
    /// ROC AUC of the model in use; null with a single outcome.
    pub auc_before: Option<f64>,
    /// ROC AUC of the previewed version.
    pub auc_after: Option<f64>,
}

/// What activating a version would do to the open leads it would score.
#[derive(SimpleObject)]
pub struct ScoringPreview {
    pub leads_evaluated: i32,
    /// Every (from, to) pair of tiers with its count, unchanged ones too.
    pub tier_moves: Vec<TierMove>,
    /// The leads' scores now.
    pub before: ScoreStats,
    /// Their scores under the version.
    pub after: ScoreStats,
    /// The 20 leads that move most, tier changes first.
    pub biggest_moves: Vec<LeadMove>,
    /// Null when the scope has no closed leads.
    pub closed_leads_auc: Option<ModelComparison>,
}

/// One stage of a pipeline's funnel.
#[derive(SimpleObject)]
pub struct FunnelStage {
    pub stage: Stage,
    /// Leads that entered the stage in the window.
    pub entered: i32,
    /// Of those, leads that went on further down the pipeline.
    pub advanced: i32,
    /// advanced / entered.
    pub conversion_rate: f64,
    /// Mean days spent in the stage by the leads that left it.
    pub average_days: Option<f64>,
    /// Of the leads that entered, those lost from this stage.
    pub lost: i32,
    /// Those lost leads per lost-reason category: the categories with
    /// leads, in the tenant's order, then any no longer listed, then
    /// those lost without one ("none given").
    pub lost_reasons: Vec<LostReasonCount>,
}

/// Open leads in a tier.
#[derive(SimpleObject)]
pub struct TierCount {
    pub tier: String,
    pub count: i32,
}

/// Closed leads in one tier of a model.
#[derive(SimpleObject)]
pub struct TierEvaluation {
    pub tier: String,
    pub leads: i32,
    pub won: i32,
    pub won_rate: f64,
    /// won rate / overall won rate: 2 means twice as likely to win.
    pub lift: f64,
}

/// Closed leads whose predicted probability fell in `[lower, upper)` (the
/// last bin includes 1): what they were predicted on average against how
/// often they were won. A calibrated model has the two close in every bin.
#[derive(SimpleObject)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    pub leads: i32,
    pub mean_predicted: f64,
    pub won_rate: f64,
}

impl From<scoring::ReliabilityBin> for ReliabilityBin {
    fn from(b: scoring::ReliabilityBin) -> Self {
        Self {
            lower: b.lower,
            upper: b.upper,
            leads: count(b.leads),
            mean_predicted: b.mean_predicted,
            won_rate: b.won_rate,
        }
    }
}

/// The close-probability model in use for the scope, as trained by the
/// nightly job, and how it did on the most recent closed leads, which it
/// held out of its training to be judged on them (out of sample), then
/// learned from.
#[derive(SimpleObject)]
pub struct CloseProbabilityEvaluation {
    pub trained_at: DateTime<Utc>,
    /// Closed leads it learned from, and of those won.
    pub training_leads: i32,
    pub training_won: i32,
    /// Whether the figures below are out of sample; false when too few
    /// closed leads of either outcome could be held out, and they are on
    /// the training leads.
    pub out_of_sample: bool,
    /// The held-out recent closed leads judged, and of those won.
    pub held_out_leads: i32,
    pub held_out_won: i32,
    pub auc: Option<f64>,
    /// Mean squared error of the probabilities (0 best, 0.25 a coin).
    pub brier: Option<f64>,
    pub log_loss: Option<f64>,
    /// Ten bins of predicted probability against the observed won rate.
    pub reliability: Vec<ReliabilityBin>,
}

impl From<scoring::TrainingMetadata> for CloseProbabilityEvaluation {
    fn from(m: scoring::TrainingMetadata) -> Self {
        let held_out = m.validation.as_ref();
        Self {
            trained_at: DateTime::from_timestamp(m.trained_at, 0).unwrap_or_default(),
            training_leads: count(m.rows),
            training_won: count(m.won),
            out_of_sample: held_out.is_some(),
            held_out_leads: count(held_out.map_or(0, |v| v.rows)),
            held_out_won: count(held_out.map_or(0, |v| v.won)),
            auc: m.auc,
            brier: m.brier,
            log_loss: held_out.map(|v| v.log_loss),
            reliability: held_out
                .map(|v| v.reliability.iter().copied().map(Into::into).collect())
                .unwrap_or_default(),
        }
    }
}

/// A model judged on the closed leads of its scope.
#[derive(SimpleObject)]
pub struct ModelEvaluation {
    pub model_id: ID,
    pub closed_leads: i32,
    pub auc: Option<f64>,
    pub tiers: Vec<TierEvaluation>,
    /// Brier score of the model's scores read as probabilities (score /
    /// 100) against the closed leads' outcomes.
    pub brier: Option<f64>,
    /// The scores read as probabilities, in ten bins, against how often
    /// those leads were won.
    pub reliability: Vec<ReliabilityBin>,
    /// The close-probability model in use for the scope; null before the
    /// nightly job has trained one.
    pub close_probability: Option<CloseProbabilityEvaluation>,
}

fn count(n: impl TryInto<i32>) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

#[derive(Default)]
pub struct ModelQuery;

#[Object]
impl ModelQuery {
    /// Stage by stage: leads entered, advanced, conversion, days spent and
    /// leads lost by reason, between `from` and `to` (OWNER, ADMIN and
    /// MANAGER), of one team (led by it or owned by its members) or one
    /// rep when asked; a MANAGER may name only their teams and members.
    #[graphql(complexity = "cost::ANALYTICS + child_complexity")]
    async fn funnel(
        &self,
        ctx: &Context<'_>,
        pipeline_id: ID,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        team_id: Option<ID>,
        owner_id: Option<ID>,
    ) -> Result<Vec<FunnelStage>> {
        let (principal, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        let narrowing = analytics::Narrowing {
            team: team_id.map(|t| id_at("teamId", &t)).transpose()?,
            owner: owner_id.map(|o| id_at("ownerId", &o)).transpose()?,
        };
        let pipeline_id = id_at("pipelineId", &pipeline_id)?;
        let stages = analytics::funnel(&scope, &principal, pipeline_id, narrowing, from, to)
            .await
            .gql()?;
        let config = tenant_config::get(&scope).await.gql()?;
        let categories = lost_reasons::of_tenant(&config.tenant);
        Ok(stages
            .into_iter()
            .map(|s| FunnelStage {
                conversion_rate: s.conversion_rate(),
                entered: count(s.entered),
                advanced: count(s.advanced),
                average_days: s.average_days,
                lost: count(s.lost.values().sum::<u64>()),
                lost_reasons: analytics::by_category(&categories, &s.lost, false)
                    .into_iter()
                    .map(Into::into)
                    .collect(),
                stage: s.stage.into(),
            })
            .collect())
    }

    /// Open leads per tier among those the caller sees, of one team or all.
    #[graphql(complexity = "cost::ANALYTICS + child_complexity")]
    async fn tier_distribution(
        &self,
        ctx: &Context<'_>,
        team_id: Option<ID>,
    ) -> Result<Vec<TierCount>> {
        let (principal, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        let counts = analytics::tier_distribution(
            &scope,
            &principal,
            team_id.map(|t| id_at("teamId", &t)).transpose()?,
        )
        .await
        .gql()?;
        Ok(counts
            .into_iter()
            .map(|(tier, n)| TierCount {
                tier,
                count: count(n),
            })
            .collect())
    }

    /// A model version judged on its scope's closed leads: AUC, won rate
    /// and lift per tier (OWNER, ADMIN; MANAGER for their teams).
    #[graphql(complexity = "cost::EVALUATION + child_complexity")]
    async fn model_evaluation(&self, ctx: &Context<'_>, model_id: ID) -> Result<ModelEvaluation> {
        let (principal, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        let scoring_models::Evaluation {
            scores: e,
            predictor,
        } = scoring_models::evaluation(&scope, &principal, id_at("modelId", &model_id)?)
            .await
            .gql()?;
        Ok(ModelEvaluation {
            model_id,
            brier: e.brier,
            reliability: e.reliability.iter().copied().map(Into::into).collect(),
            close_probability: predictor.map(Into::into),
            closed_leads: count(e.closed_leads),
            auc: e.auc,
            tiers: e
                .tiers
                .into_iter()
                .map(|t| TierEvaluation {
                    tier: t.tier,
                    leads: count(t.leads),
                    won: count(t.won),
                    won_rate: t.won_rate,
                    lift: t.lift,
                })
                .collect(),
        })
    }
}

#[derive(Default)]
pub struct ModelMutation;

#[Object]
impl ModelMutation {
    /// Creates a draft version (OWNER, ADMIN; MANAGER for their team).
    async fn create_scoring_model_draft(
        &self,
        ctx: &Context<'_>,
        input: ScoringModelInput,
    ) -> Result<ScoringModelPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let spec = scoring_models::DraftSpec {
            team_id: input
                .team_id
                .map(|t| id_at("input.teamId", &t))
                .transpose()?,
            name: input.name,
            template: input.template,
            copy_active: input.copy_active,
            dimensions: input.dimensions.map(|dims| {
                dims.into_iter()
                    .map(|d| {
                        json!({
                            "key": d.key,
                            "label": d.label,
                            "kind": scoring::DimensionKind::from(d.kind),
                            "weight": d.weight,
                            "params": d.params.map_or(Value::Null, |p| p.0),
                        })
                    })
                    .collect()
            }),
            tiers: input.tiers.map(|tiers| {
                tiers
                    .into_iter()
                    .map(|t| {
                        json!({
                            "key": t.key,
                            "label": t.label,
                            "minScore": t.min_score,
                            "followUpEveryDays": t.follow_up_every_days,
                            "firstResponseHours": t.first_response_hours,
                        })
                    })
                    .collect()
            }),
            overrides: input.overrides.map(|rules| {
                rules
                    .into_iter()
                    .map(|o| json!({"kind": o.kind, "params": o.params.map_or(Value::Null, |p| p.0)}))
                    .collect()
            }),
        };
        let saved = scoring_models::create_draft(&rc.db, &principal, spec, Utc::now())
            .await
            .gql_at("input")?;
        Ok(ScoringModelPayload {
            model: ScoringModel::try_from(saved).gql_at("input")?,
            job_run: None,
        })
    }

    /// What activating a version would do; changes nothing (OWNER, ADMIN;
    /// MANAGER for their team).
    #[graphql(complexity = "cost::PREVIEW + child_complexity")]
    async fn preview_scoring_model(
        &self,
        ctx: &Context<'_>,
        input: PreviewInput,
    ) -> Result<ScoringPreview> {
        let (principal, scope) = ctx.data::<RequestContext>()?.scope().gql_at("input")?;
        let preview = scoring_models::preview(
            &scope,
            &principal,
            id_at("input.modelId", &input.model_id)?,
            Utc::now(),
        )
        .await
        .gql_at("input")?;
        let visible = LeadVisibility::load(&scope, &principal)
            .await
            .gql_at("input")?;
        let leads = scope
            .select::<lead::Entity>()
            .filter(lead::Column::Id.is_in(preview.moved_leads.iter().copied()))
            .filter(visible.condition())
            .all(scope.conn())
            .await
            .map_err(AppError::from)
            .gql_at("input")?;
        let mut leads: std::collections::HashMap<entity::LeadId, lead::Model> =
            leads.into_iter().map(|l| (l.id, l)).collect();
        let c = preview.comparison;
        let biggest_moves = c
            .biggest_moves
            .into_iter()
            .zip(&preview.moved_leads)
            .filter_map(|(m, id)| {
                Some(LeadMove {
                    lead: leads.remove(id)?.into(),
                    from_score: m.from_score,
                    to_score: m.to_score,
                    from_tier: m.from_tier,
                    to_tier: m.to_tier,
                })
            })
            .collect();
        Ok(ScoringPreview {
            leads_evaluated: count(c.leads_evaluated),
            tier_moves: c
                .tier_moves
                .into_iter()
                .map(|m| TierMove {
                    from: m.from,
                    to: m.to,
                    count: count(m.count),
                })
                .collect(),
            before: c.before.into(),
            after: c.after.into(),
            biggest_moves,
            closed_leads_auc: preview
                .closed
                .map(|(closed, before, after)| ModelComparison {
                    closed_leads: count(closed),
                    auc_before: before,
                    auc_after: after,
                }),
        })
    }

    /// Makes a version active, retiring the one it replaces; a retired
    /// version rolls back to it (OWNER and ADMIN). The affected open leads
    /// are re-scored, in the background when they are many (`jobRun`).
    async fn activate_scoring_model(
        &self,
        ctx: &Context<'_>,
        input: ActivateInput,
    ) -> Result<ScoringModelPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let limit = ctx
            .data_opt::<ActivationInlineLeads>()
            .map_or(2000, |l| l.0);
        let activated = scoring_models::activate(
            &rc.db,
            &principal,
            id_at("input.modelId", &input.model_id)?,
            limit,
            Utc::now(),
        )
        .await
        .gql_at("input")?;
        Ok(ScoringModelPayload {
            model: ScoringModel::try_from(activated.model).gql_at("input")?,
            job_run: activated.job_run.map(JobRun::from),
        })
    }
}
