//! A company using LeadRank.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tenants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub locale: String,
    pub time_zone: String,
    pub nightly_hour: i32,
    /// Whether a REP may pin the tier of a lead they own.
    pub reps_may_pin: bool,
    /// The tenant's lost-reason categories, `[{"key", "label"}]`; the
    /// defaults in its locale while absent.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub lost_reason_categories: Option<Json>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
