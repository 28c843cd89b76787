//! A second wall between tenants, on PostgreSQL: row-level security on
//! every table that holds a `tenant_id`. The application's queries all
//! filter by tenant already; this is for the one that forgets. A row is
//! visible, and may be written, only when the transaction has said which
//! tenant it works for (`SET LOCAL leadrank.tenant_id`), or when the
//! connection says it is one of the few system-wide readers
//! (`leadrank.system = on`, set when that pool connects). With neither, a
//! query sees nothing rather than every company's rows.
//!
//! The tables belong to the role the server connects as, which row-level
//! security would otherwise exempt; FORCE applies the policy to it too.
//! SQLite has no row-level security: there the tenant filter of
//! `TenantScope` is the only wall.
//!
//! A later migration that reads or rewrites rows of several tenants says
//! `SET LOCAL leadrank.system = 'on'` first (each migration runs in a
//! transaction of its own on PostgreSQL).

use sea_orm_migration::{
    prelude::*,
    sea_orm::{DbBackend, Statement},
};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Who may see a row. `NULLIF` because a setting once set in a session
/// reads as an empty string after its transaction ends. The tenant side
/// is a stable expression the planner evaluates once, so the policy
/// costs an index condition, not a function call per row.
const POLICY: &str = "tenant_id = NULLIF(current_setting('leadrank.tenant_id', true), '')::uuid \
     OR current_setting('leadrank.system', true) = 'on'";

/// The base tables of the current schema with a `tenant_id` column.
const TENANT_TABLES: &str = "SELECT c.table_name::text AS name \
     FROM information_schema.columns c \
     JOIN information_schema.tables t \
       ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
     WHERE c.table_schema = current_schema() AND c.column_name = 'tenant_id' \
       AND t.table_type = 'BASE TABLE' \
     ORDER BY 1";

async fn tenant_tables(manager: &SchemaManager<'_>) -> Result<Vec<String>, DbErr> {
    let db = manager.get_connection();
    let rows = db
        .query_all_raw(Statement::from_string(
            manager.get_database_backend(),
            TENANT_TABLES,
        ))
        .await?;
    rows.iter()
        .map(|row| row.try_get::<String>("", "name"))
        .collect()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for table in tenant_tables(manager).await? {
            db.execute_unprepared(&format!(
                "ALTER TABLE \"{table}\" ENABLE ROW LEVEL SECURITY; \
                 ALTER TABLE \"{table}\" FORCE ROW LEVEL SECURITY; \
                 CREATE POLICY tenant_wall ON \"{table}\" USING ({POLICY}) WITH CHECK ({POLICY})"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for table in tenant_tables(manager).await? {
            db.execute_unprepared(&format!(
                "DROP POLICY IF EXISTS tenant_wall ON \"{table}\"; \
                 ALTER TABLE \"{table}\" NO FORCE ROW LEVEL SECURITY; \
                 ALTER TABLE \"{table}\" DISABLE ROW LEVEL SECURITY"
            ))
            .await?;
        }
        Ok(())
    }
}
