//! On PostgreSQL, an activity's and a score event's lead reference checks
//! `lead_scores` instead of `leads`. The check locks the row it finds (FOR
//! KEY SHARE) until the transaction ends: on `leads` that lock was a write
//! of a row the change otherwise leaves alone — a dirtied page and a WAL
//! record, and after each checkpoint the whole 8 KB page — for every lead
//! an ingested batch touched. The writer holds the lead's `lead_scores` row
//! already (it locks it to guard the version, then rewrites it), so there
//! the check costs nothing more. Integrity is the same: each lead has
//! exactly one `lead_scores` row, which goes with the lead (ON DELETE
//! CASCADE), and takes its activities and score events with it.
//!
//! SQLite keeps its references as they are: it cannot change a table's
//! foreign keys without rebuilding the table, and it takes no row locks.

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The history tables whose rows name a lead.
const TABLES: [&str; 2] = ["activities", "score_events"];

async fn point_at(
    manager: &SchemaManager<'_>,
    table: &str,
    target: &str,
    key: &str,
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    // Every tenant's rows are checked when the key is validated.
    db.execute_unprepared("SET LOCAL leadrank.system = 'on'")
        .await?;
    db.execute_unprepared(&format!(
        "ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {table}_tenant_id_lead_id_fkey; \
         ALTER TABLE {table} ADD CONSTRAINT {table}_tenant_id_lead_id_fkey \
         FOREIGN KEY (tenant_id, lead_id) REFERENCES {target} (tenant_id, {key}) ON DELETE CASCADE"
    ))
    .await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        for table in TABLES {
            point_at(manager, table, "lead_scores", "lead_id").await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        for table in TABLES {
            point_at(manager, table, "leads", "id").await?;
        }
        Ok(())
    }
}
