//! One version of a tenant's (or a team's) scoring model; `config` is the `scoring` crate's JSON.

use crate::enums::ModelStatus;
use crate::ids::{ScoringModelId, TeamId, UserId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "scoring_models")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: ScoringModelId,
    pub team_id: Option<TeamId>,
    pub version: i32,
    pub status: ModelStatus,
    pub name: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub config: Json,
    pub created_by: Option<UserId>,
    pub created_at: DateTimeUtc,
    pub activated_at: Option<DateTimeUtc>,
    pub retired_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
