//! Reading the tenant's configuration.

use async_graphql::{Context, ID, Object, Result};

use super::{
    RequestContext,
    types::{LeadField, Pipeline, ScoringModel, SignalType},
};
use crate::{
    error::{AppError, IntoGraphql},
    service::{configuration, validate},
};

fn team_id(team_id: Option<&ID>) -> Result<Option<uuid::Uuid>, AppError> {
    team_id.map(|id| validate::id("teamId", id)).transpose()
}

#[derive(Default)]
pub struct ConfigurationQuery;

#[Object]
impl ConfigurationQuery {
    /// The tenant's pipelines, the default first, stages in order.
    async fn pipelines(&self, ctx: &Context<'_>) -> Result<Vec<Pipeline>> {
        let (_, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        let pipelines = configuration::pipelines(&scope).await.gql()?;
        Ok(pipelines
            .into_iter()
            .map(|p| Pipeline::new(p.pipeline, p.stages))
            .collect())
    }

    /// The tenant's behaviour signals.
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
