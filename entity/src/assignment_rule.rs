//! A rule for handing unowned leads to reps: the company's (no team) or a
//! team's.

use crate::ids::{TeamId, UserId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "assignment_rules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub team_id: Option<TeamId>,
    pub name: String,
    pub strategy: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub filter: Json,
    pub position: i32,
    pub active: bool,
    pub last_assigned_user_id: Option<UserId>,
    pub max_open_per_rep: Option<i32>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
