//! When the company's (no team) or a team's owned leads go back to the
//! shared pool, and how many pool leads a rep may claim a day.

use crate::ids::{TeamId, UserId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "pool_rules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    /// The team's id, or the tenant's for the company rule.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub team_id: Option<TeamId>,
    /// An owner with no outbound contact for this many days loses the lead.
    pub no_outbound_days: Option<i32>,
    /// A lead COLD for this many days goes back.
    pub cold_days: Option<i32>,
    /// Days after a lead is claimed or assigned during which it stays.
    pub protection_days: i32,
    pub claims_per_day: i32,
    pub updated_by: Option<UserId>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
