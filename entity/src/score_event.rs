//! A change of a lead's score or tier.

use crate::ids::{LeadId, ScoringModelId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "score_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub lead_id: LeadId,
    pub at: DateTimeUtc,
    pub old_score: Option<f64>,
    pub new_score: f64,
    pub old_tier: Option<String>,
    pub new_tier: String,
    pub reason: String,
    pub model_id: Option<ScoringModelId>,
    pub model_version: i32,
    pub job_run_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
