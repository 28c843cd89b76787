//! A lead's identity and facts: the `leads` table. What scoring keeps of
//! the lead, and what its activities change, is in `lead_score`; readers
//! use `lead`, which joins the two.

use crate::enums::LeadStatus;
use crate::ids::{LeadId, PipelineId, StageId, TeamId, UserId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "leads")]
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
    /// The same as `lead_scores.owner_id`, which the queue reads.
    pub owner_id: Option<UserId>,
    /// The same as `lead_scores.team_id`.
    pub team_id: Option<TeamId>,
    pub pipeline_id: PipelineId,
    pub stage_id: StageId,
    pub stage_entered_at: DateTimeUtc,
    /// The same as `lead_scores.status`.
    pub status: LeadStatus,
    pub closed_at: Option<DateTimeUtc>,
    pub close_reason: Option<String>,
    /// The key of the tenant's lost-reason category a LOST lead names.
    pub close_reason_category: Option<String>,
    /// When the deal is expected to close, for the forecast.
    pub expected_close_at: Option<DateTimeUtc>,
    pub pinned_tier: Option<String>,
    pub pin_reason: Option<String>,
    pub pin_expires_at: Option<DateTimeUtc>,
    pub pinned_by: Option<UserId>,
    /// A follow-up someone scheduled: when, why, and who.
    pub scheduled_follow_up_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub scheduled_follow_up_note: Option<String>,
    pub scheduled_follow_up_by: Option<UserId>,
    pub created_by: Option<UserId>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
