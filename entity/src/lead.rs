//! A lead as every reader sees it: its facts (`leads`) joined with what
//! scoring keeps of it (`lead_scores`), through the `lead_view` view. It is
//! read only; the API's lead writer writes the two tables.

use crate::enums::LeadStatus;
use crate::ids::{LeadId, PipelineId, ScoringModelId, StageId, TeamId, UserId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "lead_view")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: LeadId,
    pub external_id: Option<String>,
    pub name: String,
    pub company: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub dedupe_key: Option<String>,
    pub industry: Option<String>,
    pub source: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub attributes: Json,
    pub deal_value: Option<f64>,
    pub owner_id: Option<UserId>,
    pub team_id: Option<TeamId>,
    pub pipeline_id: PipelineId,
    pub stage_id: StageId,
    pub stage_entered_at: DateTimeUtc,
    pub status: LeadStatus,
    pub closed_at: Option<DateTimeUtc>,
    pub close_reason: Option<String>,
    /// The key of the tenant's lost-reason category a LOST lead names.
    pub close_reason_category: Option<String>,
    /// When the deal is expected to close, for the forecast.
    pub expected_close_at: Option<DateTimeUtc>,
    pub score: f64,
    pub tier: String,
    pub tier_rank: i32,
    pub priority: i64,
    pub flags: i32,
    /// 0: open and due when scored; 1: open, not due yet; 2: closed.
    pub bucket: i16,
    pub close_probability: Option<f64>,
    pub scoring_model_id: Option<ScoringModelId>,
    pub model_version: Option<i32>,
    pub next_follow_up_at: Option<DateTimeUtc>,
    pub last_activity_at: Option<DateTimeUtc>,
    pub last_inbound_at: Option<DateTimeUtc>,
    pub last_outbound_at: Option<DateTimeUtc>,
    /// The activity state in scoring's stored form
    /// (`scoring::ActivityState::from_bytes`).
    #[sea_orm(column_type = "VarBinary(StringLen::None)")]
    pub signal_state: Vec<u8>,
    pub scored_at: Option<DateTimeUtc>,
    pub pinned_tier: Option<String>,
    pub pin_reason: Option<String>,
    pub pin_expires_at: Option<DateTimeUtc>,
    pub pinned_by: Option<UserId>,
    /// A follow-up someone scheduled: when, why, and who.
    pub scheduled_follow_up_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub scheduled_follow_up_note: Option<String>,
    pub scheduled_follow_up_by: Option<UserId>,
    pub tier_rose_at: Option<DateTimeUtc>,
    pub version: i32,
    pub created_by: Option<UserId>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
