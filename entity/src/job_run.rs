//! One run of a background job (re-scoring, import).

use crate::enums::JobStatus;
use crate::ids::{LeadId, TeamId, UserId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "job_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub kind: String,
    pub trigger: String,
    pub status: JobStatus,
    pub team_id: Option<TeamId>,
    pub requested_by: Option<UserId>,
    pub queued_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    pub heartbeat_at: Option<DateTimeUtc>,
    pub leads_scanned: i64,
    pub leads_changed: i64,
    #[sea_orm(column_type = "JsonBinary")]
    pub tier_changes: Json,
    pub newly_cold: i32,
    pub stale: i32,
    pub churn_risk: i32,
    pub checkpoint: Option<LeadId>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub details: Option<Json>,
    pub error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
