//! A trained close-probability predictor, serialised by the `scoring` crate.

use crate::ids::TeamId;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "predictor_models")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub team_id: Option<TeamId>,
    pub version: i32,
    pub active: bool,
    pub trained_at: DateTimeUtc,
    pub training_rows: i32,
    pub won: i32,
    pub lost: i32,
    #[sea_orm(column_type = "JsonBinary")]
    pub metrics: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub model: Json,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
