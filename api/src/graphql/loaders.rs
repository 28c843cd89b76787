//! Batched loads of related objects, so a list costs a constant number of
//! queries whatever its length.

use entity::{LeadId, TeamId, UserId};
use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::Loader;
use entity::{lead, team, user};
use sea_orm::{ColumnTrait, DatabaseConnection, QueryFilter};
use uuid::Uuid;

use crate::{
    error::AppError,
    service::{accounts::account, configuration::tenant_config},
    tenancy::{TenantOwned, Walled},
};

/// The teams of users, by user id.
pub struct TeamsOfUser {
    pub(super) db: DatabaseConnection,
    pub(super) tenant_id: Uuid,
}

impl Loader<UserId> for TeamsOfUser {
    type Value = Vec<team::Model>;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[UserId]) -> Result<HashMap<UserId, Self::Value>, Self::Error> {
        account::teams_of_users(&Walled::new(&self.db, self.tenant_id).scope(), keys)
            .await
            .map_err(Arc::new)
    }
}

/// The members of teams, by team id.
pub struct MembersOfTeam {
    pub(super) db: DatabaseConnection,
    pub(super) tenant_id: Uuid,
}

impl Loader<TeamId> for MembersOfTeam {
    type Value = Vec<user::Model>;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[TeamId]) -> Result<HashMap<TeamId, Self::Value>, Self::Error> {
        account::members_of_teams(&Walled::new(&self.db, self.tenant_id).scope(), keys)
            .await
            .map_err(Arc::new)
    }
}

/// Users by id (owners of leads).
pub struct UserById {
    pub(super) db: DatabaseConnection,
    pub(super) tenant_id: Uuid,
}

impl Loader<UserId> for UserById {
    type Value = user::Model;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[UserId]) -> Result<HashMap<UserId, Self::Value>, Self::Error> {
        by_id::<user::Entity>(&self.db, self.tenant_id, keys, |u| u.id).await
    }
}

/// API keys by id (the authors of what a key recorded).
pub struct ApiKeyById {
    pub(super) db: DatabaseConnection,
    pub(super) tenant_id: Uuid,
}

impl Loader<Uuid> for ApiKeyById {
    type Value = entity::api_key::Model;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        by_id::<entity::api_key::Entity>(&self.db, self.tenant_id, keys, |k| k.id).await
    }
}

/// Teams by id.
pub struct TeamById {
    pub(super) db: DatabaseConnection,
    pub(super) tenant_id: Uuid,
}

impl Loader<TeamId> for TeamById {
    type Value = team::Model;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[TeamId]) -> Result<HashMap<TeamId, Self::Value>, Self::Error> {
        by_id::<team::Entity>(&self.db, self.tenant_id, keys, |t| t.id).await
    }
}

/// Whole leads (facts and score) by id, for the lists that read what
/// scoring keeps first and the facts only when a field needs them. The
/// lists check who may see each lead before they hand it out.
pub struct LeadById {
    pub(super) db: DatabaseConnection,
    pub(super) tenant_id: Uuid,
}

impl Loader<LeadId> for LeadById {
    // Shared, not cloned, with each lead that asked: a loader hands every
    // requester its own copy of the value.
    type Value = Arc<lead::Model>;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[LeadId]) -> Result<HashMap<LeadId, Self::Value>, Self::Error> {
        let rows = by_id::<lead::Entity>(&self.db, self.tenant_id, keys, |l| l.id).await?;
        Ok(rows
            .into_iter()
            .map(|(id, row)| (id, Arc::new(row)))
            .collect())
    }
}

/// Pipelines with their stages in order, by pipeline id: a lead's stage is
/// found among its pipeline's, so one loader serves both.
pub struct PipelineById {
    pub(super) db: DatabaseConnection,
    pub(super) tenant_id: Uuid,
}

/// A pipeline and its stages in order.
pub type PipelineWithStages = tenant_config::PipelineStages;

impl Loader<entity::PipelineId> for PipelineById {
    type Value = PipelineWithStages;
    type Error = Arc<AppError>;

    async fn load(
        &self,
        keys: &[entity::PipelineId],
    ) -> Result<HashMap<entity::PipelineId, Self::Value>, Self::Error> {
        // Pipelines change rarely and every lead names one: the tenant's
        // configuration in memory has them all.
        let walled = Walled::new(&self.db, self.tenant_id);
        let scope = walled.scope();
        let config = tenant_config::get(&scope).await.map_err(Arc::new)?;
        Ok(keys
            .iter()
            .filter_map(|id| config.pipeline(*id).map(|p| (*id, Arc::clone(p))))
            .collect())
    }
}

/// The tenant's rows of `E` with the given ids, keyed by id.
async fn by_id<E: TenantOwned>(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    keys: &[E::Id],
    id_of: fn(&E::Model) -> E::Id,
) -> Result<HashMap<E::Id, E::Model>, Arc<AppError>>
where
    E::Id: Eq + std::hash::Hash,
{
    let id_column = E::id_column().ok_or_else(|| {
        Arc::new(AppError::Internal(anyhow::anyhow!(
            "{} has no id column",
            E::NAME
        )))
    })?;
    let walled = Walled::new(db, tenant_id);
    let rows = walled
        .scope()
        .select::<E>()
        .filter(id_column.is_in(keys.iter().copied()))
        .all(&walled)
        .await
        .map_err(|err| Arc::new(AppError::from(err)))?;
    Ok(rows.into_iter().map(|row| (id_of(&row), row)).collect())
}
