//! What every signal rewrites moves beside the score. An activity changed a
//! lead's signal accumulators, last-contact times and `updated_at`, all on
//! the 1.4 KB `leads` row with seven indexes; as `updated_at` is indexed,
//! none of those rewrites could be a heap-only update, so each activity
//! cost a new leads tuple and seven index entries besides the `lead_scores`
//! row it rewrites anyway. On `lead_scores`, which changes with every
//! activity already, they cost one index entry (`updated_at`, for the
//! "most recently changed" order) and the `leads` row is left alone unless
//! a fact of the lead changes. `lead_view` shows the lead as before.
//!
//! And the unique index that keeps a resumed job from writing a lead's
//! score event twice covers only the job's events: every activity's score
//! event (no job) paid an entry in it for nothing.

use sea_orm_migration::{
    prelude::*,
    sea_orm::{DbBackend, Statement},
};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `lead_view` as of `m20261206_000001_expected_close`, with the activity
/// state read from `lead_scores`.
pub(crate) const VIEW: &str = "CREATE VIEW lead_view AS SELECT \
    s.tenant_id, s.lead_id AS id, l.external_id, l.name, l.company, l.email, l.phone, \
    l.dedupe_key, l.industry, l.source, l.attributes, l.deal_value, s.owner_id, s.team_id, \
    l.pipeline_id, l.stage_id, l.stage_entered_at, s.status, l.closed_at, l.close_reason, \
    s.score, s.tier, s.tier_rank, s.priority, s.flags, s.bucket, s.close_probability, \
    s.scoring_model_id, s.model_version, s.next_follow_up_at, s.last_activity_at, \
    s.last_inbound_at, s.last_outbound_at, s.signal_state, s.scored_at, l.pinned_tier, \
    l.pin_reason, l.pin_expires_at, l.pinned_by, s.version, l.created_by, l.created_at, \
    s.updated_at, l.scheduled_follow_up_at, l.scheduled_follow_up_note, \
    l.scheduled_follow_up_by, s.tier_rose_at, l.close_reason_category, l.expected_close_at \
    FROM lead_scores s LEFT JOIN leads l ON l.tenant_id = s.tenant_id AND l.id = s.lead_id";

/// `lead_view` as of `m20261206_000001_expected_close`.
const OLD_VIEW: &str = "CREATE VIEW lead_view AS SELECT \
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

const TIMES: [&str; 3] = ["last_activity_at", "last_inbound_at", "last_outbound_at"];

/// Every column that moves, as `SET` assignments from the table `from`.
fn copy_from(from: &str) -> String {
    TIMES
        .iter()
        .chain(&["signal_state", "updated_at"])
        .map(|c| format!("{c} = {from}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The moving columns for table `table`: the same types on either side.
/// A stand-in default lets SQLite add the NOT NULL columns to existing
/// rows (it refuses a non-constant one); the copy then overwrites it.
fn columns(table: &str) -> Vec<TableAlterStatement> {
    let mut out: Vec<TableAlterStatement> = TIMES
        .iter()
        .map(|c| {
            Table::alter()
                .table(Alias::new(table))
                .add_column(
                    ColumnDef::new(Alias::new(*c))
                        .timestamp_with_time_zone()
                        .null(),
                )
                .to_owned()
        })
        .collect();
    out.push(
        Table::alter()
            .table(Alias::new(table))
            .add_column(
                ColumnDef::new(Alias::new("signal_state"))
                    .json_binary()
                    .not_null()
                    .default("{}"),
            )
            .to_owned(),
    );
    out.push(
        Table::alter()
            .table(Alias::new(table))
            .add_column(
                ColumnDef::new(Alias::new("updated_at"))
                    .timestamp_with_time_zone()
                    .not_null()
                    .default("1970-01-01 00:00:00+00:00"),
            )
            .to_owned(),
    );
    out
}

async fn move_columns(
    manager: &SchemaManager<'_>,
    from: &str,
    to: &str,
    key: (&str, &str),
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for add in columns(to) {
        manager.alter_table(add).await?;
    }
    // Every tenant's rows: past the tenant wall for this transaction.
    if manager.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared("SET LOCAL leadrank.system = 'on'")
            .await?;
    }
    let (to_key, from_key) = key;
    db.execute_raw(Statement::from_string(
        manager.get_database_backend(),
        format!(
            "UPDATE {to} SET {} FROM {from} AS f \
             WHERE f.tenant_id = {to}.tenant_id AND f.{from_key} = {to}.{to_key}",
            copy_from("f")
        ),
    ))
    .await?;
    for column in TIMES.iter().chain(&["signal_state", "updated_at"]) {
        db.execute_unprepared(&format!("ALTER TABLE {from} DROP COLUMN {column}"))
            .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP VIEW lead_view").await?;
        db.execute_unprepared("DROP INDEX IF EXISTS ix_leads_updated")
            .await?;
        move_columns(manager, "leads", "lead_scores", ("lead_id", "id")).await?;
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS ix_lead_scores_updated ON lead_scores (tenant_id, updated_at)",
        )
        .await?;
        db.execute_unprepared(VIEW).await?;
        db.execute_unprepared("DROP INDEX IF EXISTS ux_score_events_job_lead")
            .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX ux_score_events_job_run_lead \
             ON score_events (tenant_id, job_run_id, lead_id) WHERE job_run_id IS NOT NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS ux_score_events_job_run_lead")
            .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX ux_score_events_job_lead \
             ON score_events (tenant_id, job_run_id, lead_id)",
        )
        .await?;
        db.execute_unprepared("DROP VIEW lead_view").await?;
        db.execute_unprepared("DROP INDEX IF EXISTS ix_lead_scores_updated")
            .await?;
        move_columns(manager, "lead_scores", "leads", ("id", "lead_id")).await?;
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS ix_leads_updated ON leads (tenant_id, updated_at)",
        )
        .await?;
        db.execute_unprepared(OLD_VIEW).await?;
        Ok(())
    }
}
