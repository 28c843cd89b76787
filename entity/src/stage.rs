//! One stage of a pipeline.

use crate::enums::StageKind;
use crate::ids::{PipelineId, StageId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "stages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: StageId,
    pub pipeline_id: PipelineId,
    pub key: String,
    pub name: String,
    pub kind: StageKind,
    pub position: i32,
    pub win_probability: f64,
    pub rotting_days: Option<i32>,
    /// A stage a won lead goes on to as a customer (maintenance, renewal);
    /// always an OPEN stage. A lead in one keeps its WON outcome.
    pub post_sale: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
