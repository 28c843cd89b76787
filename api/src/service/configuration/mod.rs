//! Reading a tenant's configuration: pipelines, signal types, lead fields
//! and scoring models. Changing each part, and the per-process cache of
//! the whole (`tenant_config`), are submodules.

pub mod catalog;
pub mod defaults;
pub mod lost_reasons;
pub mod pipeline;
pub mod scoring_models;
pub mod tenant_config;

use entity::TeamId;
use entity::{enums::ModelStatus, lead_field, scoring_model, signal_type, stage, team};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, QueryFilter, QueryOrder};

use crate::{error::AppResult, tenancy::TenantScope};

/// A pipeline with its stages in order.
pub struct PipelineWithStages {
    /// The pipeline.
    pub pipeline: entity::pipeline::Model,
    /// Its stages by position.
    pub stages: Vec<stage::Model>,
}

/// Every pipeline, the default first, with stages, in two queries.
///
/// # Errors
/// Database errors.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %scope.tenant_id()))]
pub async fn pipelines<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
) -> AppResult<Vec<PipelineWithStages>> {
    let pipelines = scope
        .select::<entity::pipeline::Entity>()
        .order_by_desc(entity::pipeline::Column::IsDefault)
        .order_by_asc(entity::pipeline::Column::Name)
        .all(scope.conn())
        .await?;
    let mut stages = scope
        .select::<stage::Entity>()
        .order_by_asc(stage::Column::Position)
        .all(scope.conn())
        .await?;
    Ok(pipelines
        .into_iter()
        .map(|pipeline| {
            let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut stages)
                .into_iter()
                .partition(|s| s.pipeline_id == pipeline.id);
            stages = rest;
            PipelineWithStages {
                pipeline,
                stages: mine,
            }
        })
        .collect())
}

/// Every signal type, by key.
///
/// # Errors
/// Database errors.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %scope.tenant_id()))]
pub async fn signal_types<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
) -> AppResult<Vec<signal_type::Model>> {
    Ok(scope
        .select::<signal_type::Entity>()
        .order_by_asc(signal_type::Column::Key)
        .all(scope.conn())
        .await?)
}

/// The keys of every pipeline's stages, each once, in key order: what
/// `STAGE` rules may name.
///
/// # Errors
/// Database errors.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %scope.tenant_id()))]
pub async fn stage_keys<C: ConnectionTrait>(scope: &TenantScope<'_, C>) -> AppResult<Vec<String>> {
    use sea_orm::QuerySelect;
    let mut keys: Vec<String> = scope
        .select::<stage::Entity>()
        .select_only()
        .column(stage::Column::Key)
        .order_by_asc(stage::Column::Key)
        .into_tuple()
        .all(scope.conn())
        .await?;
    keys.dedup();
    Ok(keys)
}

/// Every lead field, in display order.
///
/// # Errors
/// Database errors.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %scope.tenant_id()))]
pub async fn lead_fields<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
) -> AppResult<Vec<lead_field::Model>> {
    Ok(scope
        .select::<lead_field::Entity>()
        .order_by_asc(lead_field::Column::Position)
        .order_by_asc(lead_field::Column::Key)
        .all(scope.conn())
        .await?)
}

/// All versions of the tenant's default model (`team` none) or of a
/// team's model, newest first.
///
/// # Errors
/// NOT_FOUND for a team of another tenant.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %scope.tenant_id(), team_id = ?team))]
pub async fn scoring_models<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    team: Option<TeamId>,
) -> AppResult<Vec<scoring_model::Model>> {
    if let Some(team) = team {
        scope.get::<team::Entity>(team).await?;
    }
    let query = scope.select::<scoring_model::Entity>();
    let query = match team {
        Some(team) => query.filter(scoring_model::Column::TeamId.eq(team)),
        None => query.filter(scoring_model::Column::TeamId.is_null()),
    };
    Ok(query
        .order_by_desc(scoring_model::Column::Version)
        .order_by_desc(scoring_model::Column::CreatedAt)
        .all(scope.conn())
        .await?)
}

/// The model that scores a team's leads: the team's active one, else the
/// tenant's.
///
/// # Errors
/// NOT_FOUND for a team of another tenant, or when the tenant has no
/// active model at all.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %scope.tenant_id(), team_id = ?team))]
pub async fn active_scoring_model<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    team: Option<TeamId>,
) -> AppResult<scoring_model::Model> {
    if let Some(team) = team {
        scope.get::<team::Entity>(team).await?;
    }
    let active = scope
        .select::<scoring_model::Entity>()
        .filter(scoring_model::Column::Status.eq(ModelStatus::Active))
        .filter(
            Condition::any()
                .add(scoring_model::Column::TeamId.is_null())
                .add(scoring_model::Column::TeamId.is_in(team)),
        )
        .all(scope.conn())
        .await?;
    // A team's own model wins over the tenant default.
    let chosen = active
        .iter()
        .find(|m| m.team_id.is_some())
        .or_else(|| active.iter().find(|m| m.team_id.is_none()))
        .cloned();
    chosen.ok_or_else(|| {
        crate::error::AppError::not_found(
            "active scoring model",
            team.map_or("tenant default".into(), |t| t.to_string()),
        )
    })
}
