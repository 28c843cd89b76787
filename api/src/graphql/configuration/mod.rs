//! Reading and changing the tenant's configuration; its lost reasons and
//! scoring models are submodules.

pub mod lost_reasons;
pub mod scoring_models;

use crate::graphql::cost;
use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::Utc;

use crate::graphql::{
    RequestContext,
    types::{Direction, FieldType, LeadField, Pipeline, ScoringModel, SignalType, StageKind},
};
use crate::{
    error::{AppError, IntoGraphql},
    service::{configuration, configuration::catalog, configuration::pipeline, validate},
};

fn team_id(team_id: Option<&ID>) -> Result<Option<entity::TeamId>, AppError> {
    team_id.map(|id| validate::id("teamId", id)).transpose()
}

#[derive(Default)]
pub struct ConfigurationQuery;

#[Object]
impl ConfigurationQuery {
    /// The tenant's pipelines, the default first, stages in order.
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn pipelines(&self, ctx: &Context<'_>) -> Result<Vec<Pipeline>> {
        let (_, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        let pipelines = configuration::pipelines(&scope).await.gql()?;
        Ok(pipelines
            .into_iter()
            .map(|p| Pipeline::new(p.pipeline, p.stages))
            .collect())
    }

    /// The tenant's behaviour signals.
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn signal_types(&self, ctx: &Context<'_>) -> Result<Vec<SignalType>> {
        let (_, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        Ok(configuration::signal_types(&scope)
            .await
            .gql()?
            .into_iter()
            .map(SignalType::from)
            .collect())
    }

    /// The tenant's custom lead fields.
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn lead_fields(&self, ctx: &Context<'_>) -> Result<Vec<LeadField>> {
        let (_, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        Ok(configuration::lead_fields(&scope)
            .await
            .gql()?
            .into_iter()
            .map(LeadField::from)
            .collect())
    }

    /// All versions of the tenant's (or a team's) scoring model, newest first.
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn scoring_models(
        &self,
        ctx: &Context<'_>,
        team_id: Option<ID>,
    ) -> Result<Vec<ScoringModel>> {
        let (_, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        let team = self::team_id(team_id.as_ref()).gql()?;
        let models = configuration::scoring_models(&scope, team).await.gql()?;
        models
            .into_iter()
            .map(|m| ScoringModel::try_from(m).gql())
            .collect()
    }

    /// The model that scores the team's leads: its own, else the tenant default.
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn active_scoring_model(
        &self,
        ctx: &Context<'_>,
        team_id: Option<ID>,
    ) -> Result<ScoringModel> {
        let (_, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        let team = self::team_id(team_id.as_ref()).gql()?;
        ScoringModel::try_from(
            configuration::active_scoring_model(&scope, team)
                .await
                .gql()?,
        )
        .gql()
    }
}

/// A stage of a new or changed pipeline.
#[derive(InputObject)]
pub struct StageInput {
    /// Lower-case letters, digits and underscores; a stage keeps its id
    /// (and its leads) while its key stays.
    pub key: String,
    pub name: String,
    pub kind: StageKind,
    /// Probability of winning from this stage, 0 to 1.
    pub win_probability: f64,
    /// Days idle before a lead is flagged stale, at least 1; null for never.
    pub rotting_days: Option<i32>,
    /// A stage won leads go on to as customers (maintenance, renewal),
    /// keeping their WON outcome; OPEN stages only.
    #[graphql(default = false)]
    pub post_sale: bool,
}

impl From<StageInput> for pipeline::StageSpec {
    fn from(s: StageInput) -> Self {
        Self {
            key: s.key,
            name: s.name,
            kind: s.kind.into(),
            win_probability: s.win_probability,
            rotting_days: s.rotting_days,
            post_sale: s.post_sale,
        }
    }
}

#[derive(InputObject)]
pub struct PipelineInput {
    pub name: String,
    /// general, saas, education, finance or medical, named in the tenant's
    /// locale; `general` when neither this nor `stages` is given.
    pub template: Option<String>,
    /// The stages in order, instead of a template.
    pub stages: Option<Vec<StageInput>>,
}

/// Where the leads of a removed stage go.
#[derive(InputObject)]
pub struct StageMove {
    pub from_key: String,
    pub to_key: String,
}

#[derive(InputObject)]
pub struct UpdatePipelineInput {
    pub id: ID,
    pub name: Option<String>,
    /// The full new list in order: stages are matched by key; missing keys
    /// are removed, new keys added.
    pub stages: Option<Vec<StageInput>>,
    /// Required for each removed stage that holds leads.
    pub move_leads_to: Option<Vec<StageMove>>,
}

/// The result of `createPipeline` and `updatePipeline`.
#[derive(SimpleObject)]
pub struct PipelinePayload {
    pub pipeline: Pipeline,
}

#[derive(InputObject)]
pub struct SignalTypeInput {
    /// Lower-case letters, digits and underscores; an existing key is changed.
    pub key: String,
    pub label: String,
    /// Points of one fresh occurrence, -1000 to 1000.
    pub points: f64,
    /// Days after which an occurrence counts half, more than 0 and at most 3650.
    pub half_life_days: f64,
    #[graphql(default = false)]
    pub urgent: bool,
    #[graphql(default_with = "Direction::Inbound")]
    pub direction: Direction,
    /// A retired signal keeps its history and takes no new activities.
    #[graphql(default = false)]
    pub retired: bool,
}

/// The result of `upsertSignalType`.
#[derive(SimpleObject)]
pub struct SignalTypePayload {
    pub signal_type: SignalType,
}

#[derive(InputObject)]
pub struct LeadFieldInput {
    /// Lower-case letters, digits and underscores; an existing key is changed.
    pub key: String,
    pub label: String,
    #[graphql(name = "type")]
    pub field_type: FieldType,
    /// The allowed values of a CATEGORY field.
    pub options: Option<Vec<String>>,
    #[graphql(default = false)]
    pub required: bool,
}

/// The result of `upsertLeadField`.
#[derive(SimpleObject)]
pub struct LeadFieldPayload {
    pub field: LeadField,
}

#[derive(Default)]
pub struct ConfigurationMutation;

#[Object]
impl ConfigurationMutation {
    /// Creates a pipeline from a template or from stages (OWNER and ADMIN).
    async fn create_pipeline(
        &self,
        ctx: &Context<'_>,
        input: PipelineInput,
    ) -> Result<PipelinePayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let input = pipeline::NewPipeline {
            name: input.name,
            template: input.template,
            stages: input
                .stages
                .map(|stages| stages.into_iter().map(Into::into).collect()),
        };
        let created = pipeline::create_pipeline(&rc.db, &principal, input, Utc::now())
            .await
            .gql_at("input")?;
        Ok(PipelinePayload {
            pipeline: Pipeline::new(created.pipeline, created.stages),
        })
    }

    /// Renames a pipeline or replaces its stages, moving the leads of
    /// removed stages (OWNER and ADMIN).
    async fn update_pipeline(
        &self,
        ctx: &Context<'_>,
        input: UpdatePipelineInput,
    ) -> Result<PipelinePayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let changes = pipeline::PipelineChanges {
            id: crate::graphql::id_at("input.id", &input.id)?,
            name: input.name,
            stages: input
                .stages
                .map(|stages| stages.into_iter().map(Into::into).collect()),
            move_leads_to: input
                .move_leads_to
                .unwrap_or_default()
                .into_iter()
                .map(|m| pipeline::StageMove {
                    from_key: m.from_key,
                    to_key: m.to_key,
                })
                .collect(),
        };
        let updated = pipeline::update_pipeline(&rc.db, &principal, changes, Utc::now())
            .await
            .gql_at("input")?;
        Ok(PipelinePayload {
            pipeline: Pipeline::new(updated.pipeline, updated.stages),
        })
    }

    /// Creates or changes a signal type by key (OWNER and ADMIN).
    async fn upsert_signal_type(
        &self,
        ctx: &Context<'_>,
        input: SignalTypeInput,
    ) -> Result<SignalTypePayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let spec = catalog::SignalTypeSpec {
            key: input.key,
            label: input.label,
            points: input.points,
            half_life_days: input.half_life_days,
            urgent: input.urgent,
            direction: input.direction.into(),
            retired: input.retired,
        };
        let saved = catalog::upsert_signal_type(&rc.db, &principal, spec, Utc::now())
            .await
            .gql_at("input")?;
        Ok(SignalTypePayload {
            signal_type: saved.into(),
        })
    }

    /// Creates or changes a lead field by key (OWNER and ADMIN).
    async fn upsert_lead_field(
        &self,
        ctx: &Context<'_>,
        input: LeadFieldInput,
    ) -> Result<LeadFieldPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let spec = catalog::LeadFieldSpec {
            key: input.key,
            label: input.label,
            field_type: input.field_type.into(),
            options: input.options,
            required: input.required,
        };
        let saved = catalog::upsert_lead_field(&rc.db, &principal, spec, Utc::now())
            .await
            .gql_at("input")?;
        Ok(LeadFieldPayload {
            field: saved.into(),
        })
    }
}
