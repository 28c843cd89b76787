//! The weekly review. When a deal is expected to close: an optional date
//! on the lead that the forecast groups open deal value by (else the
//! stage's typical time to close, learned from history), a fact of the
//! lead shown through `lead_view`. And an index of outbound activities by
//! time, which the reps' scorecards count per period.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `lead_view` as of `m20261205_000003_lost_reason_categories`, plus the
/// expected close.
const VIEW: &str = "CREATE VIEW lead_view AS SELECT \
    s.tenant_id, s.lead_id AS id, l.external_id, l.name, l.company, l.email, l.phone, \
    l.dedupe_key, l.industry, l.source, l.attributes, l.deal_value, s.owner_id, s.team_id, \
    l.pipeline_id, l.stage_id, l.stage_entered_at, s.status, l.closed_at, l.close_reason, \
    s.score, s.tier, s.tier_rank, s.priority, s.flags, s.bucket, s.close_probability, \
    s.scoring_model_id, s.model_version, s.next_follow_up_at, l.last_activity_at, \
    l.last_inbound_at, l.last_outbound_at, l.signal_state, s.scored_at, l.pinned_tier, \
    l.pin_reason, l.pin_expires_at, l.pinned_by, s.version, l.created_by, l.created_at, \
    l.updated_at, l.scheduled_follow_up_at, l.scheduled_follow_up_note, \
    l.scheduled_follow_up_by, s.tier_rose_at, l.close_reason_category, l.expected_close_at \
    FROM lead_scores s LEFT JOIN leads l ON l.tenant_id = s.tenant_id AND l.id = s.lead_id";

/// `lead_view` as of `m20261205_000003_lost_reason_categories`.
const OLD_VIEW: &str = "CREATE VIEW lead_view AS SELECT \
    s.tenant_id, s.lead_id AS id, l.external_id, l.name, l.company, l.email, l.phone, \
    l.dedupe_key, l.industry, l.source, l.attributes, l.deal_value, s.owner_id, s.team_id, \
    l.pipeline_id, l.stage_id, l.stage_entered_at, s.status, l.closed_at, l.close_reason, \
    s.score, s.tier, s.tier_rank, s.priority, s.flags, s.bucket, s.close_probability, \
    s.scoring_model_id, s.model_version, s.next_follow_up_at, l.last_activity_at, \
    l.last_inbound_at, l.last_outbound_at, l.signal_state, s.scored_at, l.pinned_tier, \
    l.pin_reason, l.pin_expires_at, l.pinned_by, s.version, l.created_by, l.created_at, \
    l.updated_at, l.scheduled_follow_up_at, l.scheduled_follow_up_note, \
    l.scheduled_follow_up_by, s.tier_rose_at, l.close_reason_category \
    FROM lead_scores s LEFT JOIN leads l ON l.tenant_id = s.tenant_id AND l.id = s.lead_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP VIEW lead_view").await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("leads"))
                    .add_column(timestamp_with_time_zone_null(Alias::new(
                        "expected_close_at",
                    )))
                    .to_owned(),
            )
            .await?;
        db.execute_unprepared(VIEW).await?;
        // A quarter of a 100,000-lead tenant holds some 700,000 activities;
        // counting the outbound ones per rep reads this index alone
        // (covering who recorded each and on which lead) instead of the
        // whole table. Inbound signals, most of what flows in, skip it.
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS ix_activities_outbound \
             ON activities (tenant_id, occurred_at, created_by, lead_id) \
             WHERE direction = 'OUTBOUND'",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS ix_activities_outbound")
            .await?;
        db.execute_unprepared("DROP VIEW lead_view").await?;
        db.execute_unprepared("ALTER TABLE leads DROP COLUMN expected_close_at")
            .await?;
        db.execute_unprepared(OLD_VIEW).await?;
        Ok(())
    }
}
