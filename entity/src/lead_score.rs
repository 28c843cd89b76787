//! What scoring keeps of a lead, one narrow row per lead, rewritten by
//! every change of the lead and by the nightly job: the `lead_scores` table.
//! It carries the owner, team and status too, for the follow-up queue's
//! index, and the activity state each signal moves.

use crate::enums::LeadStatus;
use crate::ids::{LeadId, ScoringModelId, TeamId, UserId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "lead_scores")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub lead_id: LeadId,
    /// The lead's version: every change of the lead raises it.
    pub version: i32,
    pub owner_id: Option<UserId>,
    pub team_id: Option<TeamId>,
    pub status: LeadStatus,
    /// 0: open and due when scored; 1: open, not due yet; 2: closed.
    pub bucket: i16,
    pub score: f64,
    pub tier: String,
    pub tier_rank: i32,
    pub priority: i64,
    pub flags: i32,
    pub close_probability: Option<f64>,
    pub scoring_model_id: Option<ScoringModelId>,
    pub model_version: Option<i32>,
    pub next_follow_up_at: Option<DateTimeUtc>,
    pub scored_at: Option<DateTimeUtc>,
    /// When the lead last rose into a higher tier: until an outbound
    /// contact after it, it is due within the tier's first response.
    pub tier_rose_at: Option<DateTimeUtc>,
    // What every activity rewrites lives here, beside the score it moves,
    // so an activity leaves the wide `leads` row alone.
    pub last_activity_at: Option<DateTimeUtc>,
    pub last_inbound_at: Option<DateTimeUtc>,
    pub last_outbound_at: Option<DateTimeUtc>,
    /// Per-signal decayed accumulators, so re-scoring never re-reads
    /// activities, in scoring's stored form
    /// (`scoring::ActivityState::from_bytes`).
    #[sea_orm(column_type = "VarBinary(StringLen::None)")]
    pub signal_state: Vec<u8>,
    /// When the lead last changed: any edit, activity or assignment (the
    /// nightly re-scoring is not a change of the lead).
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
