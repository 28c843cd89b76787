//! Batched loads of related objects, so a list costs a constant number of
//! queries whatever its length.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::Loader;
use entity::{team, user};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::{error::AppError, service::account, tenancy::TenantScope};

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
