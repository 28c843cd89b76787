//! Follow-ups people schedule ("call back after the tender on the 15th")
//! and the first response a lead new to its tier is due.
//!
//! A lead's scheduled follow-up (when, a note, who set it) is a fact of the
//! lead, like its pin: scoring reads it (the lead is due at the earlier of
//! its cadence and the scheduled time), so it lives on `leads`. When a lead
//! last rose into a higher tier is what scoring itself keeps, rewritten
//! with its score, so it lives on `lead_scores`. `lead_view` shows both.
//! Urgent open leads get a queue bucket of their own, ahead of the due.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `lead_view` as of `m20261203_000013_lead_scores`, plus the schedule.
const VIEW: &str = "CREATE VIEW lead_view AS SELECT \
    s.tenant_id, s.lead_id AS id, l.external_id, l.name, l.company, l.email, l.phone, \
    l.dedupe_key, l.industry, l.source, l.attributes, l.deal_value, s.owner_id, s.team_id, \
    l.pipeline_id, l.stage_id, l.stage_entered_at, s.status, l.closed_at, l.close_reason, \
    s.score, s.tier, s.tier_rank, s.priority, s.flags, s.bucket, s.close_probability, \
    s.scoring_model_id, s.model_version, s.next_follow_up_at, l.last_activity_at, \
    l.last_inbound_at, l.last_outbound_at, l.signal_state, s.scored_at, l.pinned_tier, \
    l.pin_reason, l.pin_expires_at, l.pinned_by, s.version, l.created_by, l.created_at, \
    l.updated_at, l.scheduled_follow_up_at, l.scheduled_follow_up_note, \
    l.scheduled_follow_up_by, s.tier_rose_at \
    FROM lead_scores s LEFT JOIN leads l ON l.tenant_id = s.tenant_id AND l.id = s.lead_id";

const OLD_VIEW: &str = "CREATE VIEW lead_view AS SELECT \
    s.tenant_id, s.lead_id AS id, l.external_id, l.name, l.company, l.email, l.phone, \
    l.dedupe_key, l.industry, l.source, l.attributes, l.deal_value, s.owner_id, s.team_id, \
    l.pipeline_id, l.stage_id, l.stage_entered_at, s.status, l.closed_at, l.close_reason, \
    s.score, s.tier, s.tier_rank, s.priority, s.flags, s.bucket, s.close_probability, \
    s.scoring_model_id, s.model_version, s.next_follow_up_at, l.last_activity_at, \
    l.last_inbound_at, l.last_outbound_at, l.signal_state, s.scored_at, l.pinned_tier, \
    l.pin_reason, l.pin_expires_at, l.pinned_by, s.version, l.created_by, l.created_at, \
    l.updated_at \
    FROM lead_scores s LEFT JOIN leads l ON l.tenant_id = s.tenant_id AND l.id = s.lead_id";

/// The URGENT and OVERDUE bits of `lead_scores.flags`.
const URGENT: i32 = 1;
const OVERDUE: i32 = 16;

const COLUMNS: [(&str, &str, &str); 3] = [
    (
        "scheduled_follow_up_at",
        "timestamptz",
        "timestamp_with_timezone_text",
    ),
    ("scheduled_follow_up_note", "text", "text"),
    ("scheduled_follow_up_by", "uuid", "uuid_text"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let postgres = manager.get_database_backend() == sea_orm::DbBackend::Postgres;
        db.execute_unprepared("DROP VIEW lead_view").await?;
        for (name, pg, sqlite) in COLUMNS {
            let ty = if postgres { pg } else { sqlite };
            db.execute_unprepared(&format!("ALTER TABLE leads ADD COLUMN {name} {ty} NULL"))
                .await?;
        }
        let ts = if postgres {
            "timestamptz"
        } else {
            "timestamp_with_timezone_text"
        };
        db.execute_unprepared(&format!(
            "ALTER TABLE lead_scores ADD COLUMN tier_rose_at {ts} NULL"
        ))
        .await?;
        db.execute_unprepared(VIEW).await?;
        // Urgent open leads move to their own bucket, first in the queue's
        // index; their priorities take the new urgency term.
        db.execute_unprepared(&format!(
            "UPDATE lead_scores SET bucket = -1 WHERE status = 'OPEN' AND (flags & {URGENT}) <> 0"
        ))
        .await?;
        let least = if postgres { "LEAST" } else { "MIN" };
        db.execute_unprepared(&format!(
            "UPDATE lead_scores SET priority = \
             (CASE WHEN status = 'OPEN' AND (flags & {URGENT}) <> 0 THEN 3 \
                   WHEN status = 'OPEN' AND (flags & {OVERDUE}) <> 0 THEN 2 ELSE 0 END) * 500000000 \
             + (49 - {least}(tier_rank, 49)) * 10000000 \
             + CAST(ROUND({least}(score, 100) * 10000) AS BIGINT)"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP VIEW lead_view").await?;
        db.execute_unprepared("UPDATE lead_scores SET bucket = 0 WHERE bucket = -1")
            .await?;
        db.execute_unprepared("ALTER TABLE lead_scores DROP COLUMN tier_rose_at")
            .await?;
        for (name, _, _) in COLUMNS {
            db.execute_unprepared(&format!("ALTER TABLE leads DROP COLUMN {name}"))
                .await?;
        }
        db.execute_unprepared(OLD_VIEW).await?;
        Ok(())
    }
}
