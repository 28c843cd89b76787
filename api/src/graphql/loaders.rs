//! Batched loads of related objects, so a list costs a constant number of
//! queries whatever its length.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::Loader;
use entity::{pipeline, stage, team, user};
use sea_orm::{ColumnTrait, DatabaseConnection, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::{
    error::AppError,
    service::account,
    tenancy::{TenantOwned, TenantScope},
};

/// The teams of users, by user id.
pub struct TeamsOfUser {
    pub(super) db: DatabaseConnection,
    pub(super) tenant_id: Uuid,
}

impl Loader<Uuid> for TeamsOfUser {
    type Value = Vec<team::Model>;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        account::teams_of_users(&TenantScope::new(&self.db, self.tenant_id), keys)
            .await
            .map_err(Arc::new)
    }
}

/// The members of teams, by team id.
pub struct MembersOfTeam {
    pub(super) db: DatabaseConnection,
    pub(super) tenant_id: Uuid,
}

impl Loader<Uuid> for MembersOfTeam {
    type Value = Vec<user::Model>;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        account::members_of_teams(&TenantScope::new(&self.db, self.tenant_id), keys)
            .await
            .map_err(Arc::new)
    }
}

/// Users by id (owners of leads).
pub struct UserById {
    pub(super) db: DatabaseConnection,
    pub(super) tenant_id: Uuid,
}

impl Loader<Uuid> for UserById {
    type Value = user::Model;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        by_id::<user::Entity>(&self.db, self.tenant_id, keys, |u| u.id).await
    }
}

/// Teams by id.
pub struct TeamById {
    pub(super) db: DatabaseConnection,
    pub(super) tenant_id: Uuid,
}

impl Loader<Uuid> for TeamById {
    type Value = team::Model;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        by_id::<team::Entity>(&self.db, self.tenant_id, keys, |t| t.id).await
    }
}

/// Pipelines with their stages in order, by pipeline id: a lead's stage is
/// found among its pipeline's, so one loader serves both.
pub struct PipelineById {
    pub(super) db: DatabaseConnection,
    pub(super) tenant_id: Uuid,
}

/// A pipeline and its stages in order.
pub type PipelineWithStages = Arc<(pipeline::Model, Vec<stage::Model>)>;

impl Loader<Uuid> for PipelineById {
    type Value = PipelineWithStages;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let scope = TenantScope::new(&self.db, self.tenant_id);
        let load = async {
            let pipelines = scope
                .select::<pipeline::Entity>()
                .filter(pipeline::Column::Id.is_in(keys.iter().copied()))
                .all(&self.db)
                .await?;
            let stages = scope
                .select::<stage::Entity>()
                .filter(stage::Column::PipelineId.is_in(keys.iter().copied()))
                .order_by_asc(stage::Column::Position)
                .all(&self.db)
                .await?;
            let mut by_pipeline: HashMap<Uuid, Vec<stage::Model>> = HashMap::new();
            for s in stages {
                by_pipeline.entry(s.pipeline_id).or_default().push(s);
            }
            Ok::<_, AppError>(
                pipelines
                    .into_iter()
                    .map(|p| {
                        let stages = by_pipeline.remove(&p.id).unwrap_or_default();
                        (p.id, Arc::new((p, stages)))
                    })
                    .collect(),
            )
        };
        load.await.map_err(Arc::new)
    }
}

/// The tenant's rows of `E` with the given ids, keyed by id.
async fn by_id<E: TenantOwned>(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    keys: &[Uuid],
    id_of: fn(&E::Model) -> Uuid,
) -> Result<HashMap<Uuid, E::Model>, Arc<AppError>> {
    let id_column = E::id_column().ok_or_else(|| {
        Arc::new(AppError::Internal(anyhow::anyhow!(
            "{} has no id column",
            E::NAME
        )))
    })?;
    let rows = TenantScope::new(db, tenant_id)
        .select::<E>()
        .filter(id_column.is_in(keys.iter().copied()))
        .all(db)
        .await
        .map_err(|err| Arc::new(AppError::from(err)))?;
    Ok(rows.into_iter().map(|row| (id_of(&row), row)).collect())
}
