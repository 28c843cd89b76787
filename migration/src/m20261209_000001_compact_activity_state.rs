//! A lead's activity state is stored in scoring's compact binary form
//! (`scoring::stored`) instead of JSON. Every activity rewrites it with the
//! rest of the `lead_scores` row: as JSONB it was 1.2 KB of a 1.4 KB row,
//! so a 100,000-lead tenant's scores outgrew PostgreSQL's default buffer
//! cache, and every ingested event paid the whole state again in the
//! write-ahead log. The compact form is about a third of that.
//!
//! The column becomes bytes holding the old JSON text, then every state is
//! rewritten in the new form, a few thousand rows per statement. Readers
//! still take JSON that starts with `{`, so nothing depends on the rewrite
//! having reached every row.

use scoring::ActivityState;
use sea_orm::prelude::Uuid;
use sea_orm_migration::{
    prelude::*,
    sea_orm::{ConnectionTrait, DbBackend, Statement},
};

use crate::m20261208_000001_activity_state_on_scores::VIEW;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// States rewritten per statement.
const CHUNK: u64 = 2_000;

/// Rewrites the states still held as JSON into the compact form. A state
/// that does not read is left for the readers, which treat it as empty,
/// as they did before.
async fn compact(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let backend = manager.get_database_backend();
    let json_first = holds_json(backend);
    // Keyset pages: a state that does not read stays JSON and must not be
    // met again.
    let mut after: Option<(Uuid, Uuid)> = None;
    loop {
        let (from, values) = match after {
            None => ("", vec![]),
            Some((tenant, lead)) => (
                match backend {
                    DbBackend::Postgres => " AND (tenant_id, lead_id) > ($1, $2)",
                    _ => " AND (tenant_id, lead_id) > (?, ?)",
                },
                vec![tenant.into(), lead.into()],
            ),
        };
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT tenant_id, lead_id, signal_state FROM lead_scores \
                     WHERE {json_first}{from} ORDER BY tenant_id, lead_id LIMIT {CHUNK}"
                ),
                values,
            ))
            .await?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = Some((last.try_get("", "tenant_id")?, last.try_get("", "lead_id")?));
        let mut rewritten: Vec<(Uuid, Uuid, Vec<u8>)> = Vec::with_capacity(rows.len());
        for row in &rows {
            let bytes: Vec<u8> = row.try_get("", "signal_state")?;
            if let Ok(state) = ActivityState::from_bytes(&bytes) {
                rewritten.push((
                    row.try_get("", "tenant_id")?,
                    row.try_get("", "lead_id")?,
                    state.to_bytes(),
                ));
            }
        }
        match backend {
            DbBackend::Postgres => {
                let array: Vec<serde_json::Value> = rewritten
                    .iter()
                    .map(|(t, l, s)| serde_json::json!({"t": t, "l": l, "s": hex::encode(s)}))
                    .collect();
                db.execute_raw(Statement::from_sql_and_values(
                    backend,
                    "UPDATE lead_scores AS s SET signal_state = decode(v.s, 'hex') \
                     FROM jsonb_to_recordset($1::jsonb) AS v(t uuid, l uuid, s text) \
                     WHERE s.tenant_id = v.t AND s.lead_id = v.l",
                    [serde_json::Value::Array(array).to_string().into()],
                ))
                .await?;
            }
            _ => {
                for (t, l, s) in rewritten {
                    db.execute_raw(Statement::from_sql_and_values(
                        backend,
                        "UPDATE lead_scores SET signal_state = ? WHERE tenant_id = ? AND lead_id = ?",
                        [s.into(), t.into(), l.into()],
                    ))
                    .await?;
                }
            }
        }
    }
}

/// Whether a stored state is JSON of earlier versions (starts with `{`).
fn holds_json(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "substring(signal_state FROM 1 FOR 1) = '\\x7b'::bytea",
        _ => "substr(signal_state, 1, 1) = X'7B'",
    }
}

/// Gives `lead_scores.signal_state` new values, for every tenant: on
/// PostgreSQL the column becomes `pg_type` with each value `using` and the
/// default `default` (the view that reads it goes while it does); SQLite,
/// which keeps any value in any column, runs `sqlite` instead.
async fn retype(
    manager: &SchemaManager<'_>,
    pg_type: &str,
    using: &str,
    default: &str,
    sqlite: &str,
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    if manager.get_database_backend() != DbBackend::Postgres {
        db.execute_unprepared(sqlite).await?;
        return Ok(());
    }
    // Every tenant's rows: past the tenant wall for this transaction.
    db.execute_unprepared("SET LOCAL leadrank.system = 'on'")
        .await?;
    db.execute_unprepared("DROP VIEW lead_view").await?;
    db.execute_unprepared(&format!(
        "ALTER TABLE lead_scores ALTER COLUMN signal_state DROP DEFAULT; \
         ALTER TABLE lead_scores ALTER COLUMN signal_state TYPE {pg_type} USING {using}; \
         ALTER TABLE lead_scores ALTER COLUMN signal_state SET DEFAULT {default}"
    ))
    .await?;
    db.execute_unprepared(VIEW).await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite: the JSON text becomes bytes, so that it reads as bytes
        // until it is rewritten.
        retype(
            manager,
            "bytea",
            "convert_to(signal_state::text, 'UTF8')",
            "''::bytea",
            "UPDATE lead_scores SET signal_state = CAST(signal_state AS BLOB) \
             WHERE typeof(signal_state) = 'text'",
        )
        .await?;
        compact(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The compact form cannot be turned back into JSON in SQL: those
        // states become empty. The activities stay; their decayed counts
        // start again from each lead's next activity.
        let backend = manager.get_database_backend();
        retype(
            manager,
            "jsonb",
            &format!(
                "CASE WHEN {} THEN convert_from(signal_state, 'UTF8')::jsonb \
                 ELSE '{{}}'::jsonb END",
                holds_json(backend)
            ),
            "'{}'::jsonb",
            &format!(
                "UPDATE lead_scores SET signal_state = CASE WHEN {} \
                 THEN CAST(signal_state AS TEXT) ELSE '{{}}' END",
                holds_json(backend)
            ),
        )
        .await
    }
}
