//! Connecting to the database and applying migrations.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr};

use crate::config::Settings;

/// The tables a bulk load of leads fills.
pub const LEAD_TABLES: &[&str] = &["leads", "lead_scores", "activities", "score_events"];

/// Brings PostgreSQL's planner statistics of `tables` up to date after a
/// bulk write, before anything reads what it wrote. Autovacuum analyzes a
/// table only some time after a share of it changed; until then a tenant
/// just loaded looks empty to the planner, and the re-score that follows
/// an import joined its 20,000 leads to their scores by re-reading the
/// score table once per lead: 13 s for each page of 5,000, three quarters
/// of the import. SQLite plans without statistics unless asked to keep
/// them, so it has nothing to refresh.
///
/// # Errors
/// Database errors.
pub async fn refresh_statistics<C: ConnectionTrait>(db: &C, tables: &[&str]) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Postgres || tables.is_empty() {
        return Ok(());
    }
    db.execute_unprepared(&format!("ANALYZE {}", tables.join(", ")))
        .await
        .map(drop)
}

/// Opens the pool. An SQLite file is created if missing, in WAL mode so
/// readers do not wait for the writer.
///
/// # Errors
/// When the database cannot be reached.
pub async fn connect(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    open(settings, false).await
}

/// A pool for which PostgreSQL's row-level security shows every tenant's
/// rows (`leadrank.system = on`), for benchmarks and tools that set up and
/// check data across tenants; never for serving requests. On SQLite, the
/// same as [`connect`].
///
/// # Errors
/// When the database cannot be reached.
pub async fn connect_system(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    open(settings, true).await
}

async fn open(settings: &Settings, system: bool) -> anyhow::Result<DatabaseConnection> {
    // SQLite's default page cache is 2 MB: a bulk re-score then reads every
    // index page it updates from the OS again, and runs ten times slower
    // than with the indexes of 100,000 leads held in memory.
    let cache_kib = format!("-{}", settings.sqlite_cache_mb.saturating_mul(1024));
    let mut options = ConnectOptions::new(settings.database_url.clone());
    options
        .max_connections(settings.db_max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |opts| {
            opts.create_if_missing(true)
                .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .pragma("cache_size", cache_kib.clone())
        })
        // PostgreSQL compiles a statement it estimates costly to machine
        // code first; for the review's grouped reads over 100,000 leads that
        // compiling took 150 ms of a 700 ms answer, and the short statements
        // of the request path never gain from it.
        .map_sqlx_postgres_opts(move |opts| {
            let opts = opts.options([("jit", "off")]);
            if system {
                opts.options([("leadrank.system", "on")])
            } else {
                opts
            }
        });
    Database::connect(options).await.with_context(|| {
        format!(
            "failed to connect to the database at {}",
            crate::config::redact(&settings.database_url)
        )
    })
}

/// Warns when PostgreSQL's row-level security cannot bind the server's
/// role: a superuser or a role with BYPASSRLS sees every tenant's rows
/// whatever the transaction says, so only the tenant filter would stand.
///
/// # Errors
/// Database errors.
pub async fn warn_if_the_wall_is_bypassed(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            DbBackend::Postgres,
            "SELECT rolsuper OR rolbypassrls AS bypasses FROM pg_roles WHERE rolname = current_user",
        ))
        .await?;
    if row.and_then(|r| r.try_get::<bool>("", "bypasses").ok()) == Some(true) {
        tracing::warn!(
            "the database role LeadRank connects as is a superuser or has BYPASSRLS, so row-level security does not hold tenants apart (only the application's filter does); connect as an ordinary role that owns the tables"
        );
    }
    Ok(())
}

/// How many statements a connection pool has run: lets a test check that
/// a page of leads costs a constant number of queries whatever its size.
#[derive(Clone, Default, Debug)]
pub struct QueryCounter(Arc<AtomicU64>);

impl QueryCounter {
    /// Statements run so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Starts counting the statements `db` (and every clone made after this
/// call) runs. One relaxed atomic add per statement.
pub fn count_queries(db: &mut DatabaseConnection) -> QueryCounter {
    let counter = QueryCounter::default();
    let inner = Arc::clone(&counter.0);
    db.set_metric_callback(move |_| {
        inner.fetch_add(1, Ordering::Relaxed);
    });
    counter
}

/// Brings the schema up to date.
///
/// # Errors
/// When a migration fails.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None)
        .await
        .context("failed to apply database migrations")
}

#[cfg(test)]
// The migration test writes rows as they were before a migration, which no
// scope of today's entities can.
#[allow(clippy::disallowed_methods)]
mod tests {
    /// Leads scored before `lead_scores` existed keep their score, tier,
    /// version and place in the queue through the migration that moved
    /// what scoring keeps out of the lead row.
    #[tokio::test]
    async fn leads_scored_before_the_score_table_keep_their_scores() -> anyhow::Result<()> {
        use chrono::{Duration, Utc};
        use entity::{
            enums::{LeadStatus, StageKind},
            lead, pipeline, stage, tenant,
        };
        use migration::{Migrator, MigratorTrait};
        use sea_orm::{
            ActiveModelTrait, ActiveValue::Set, ConnectionTrait, Database, DbBackend, EntityTrait,
            QueryOrder, Statement,
        };
        use uuid::Uuid;

        let db = Database::connect("sqlite::memory:").await?;
        // Every migration before the move.
        Migrator::up(&db, Some(12)).await?;
        let now = Utc::now();
        let (t, p, s) = (
            Uuid::now_v7(),
            entity::PipelineId::new(),
            entity::StageId::new(),
        );
        // Without RETURNING: columns added later do not exist yet.
        tenant::Entity::insert(tenant::ActiveModel {
            id: Set(t),
            name: Set("Acme".into()),
            slug: Set("acme".into()),
            locale: Set("en".into()),
            time_zone: Set("UTC".into()),
            nightly_hour: Set(2),
            reps_may_pin: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec_without_returning(&db)
        .await?;
        pipeline::ActiveModel {
            tenant_id: Set(t),
            id: Set(p),
            name: Set("Sales".into()),
            is_default: Set(true),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&db)
        .await?;
        stage::Entity::insert(stage::ActiveModel {
            tenant_id: Set(t),
            id: Set(s),
            pipeline_id: Set(p),
            key: Set("lead".into()),
            name: Set("Lead".into()),
            kind: Set(StageKind::Open),
            position: Set(0),
            win_probability: Set(0.1),
            rotting_days: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec_without_returning(&db)
        .await?;
        // A state with history, stored as JSON as it was then.
        let mut state = scoring::ActivityState::new();
        let visit = scoring::SignalDef {
            key: "website_visit".into(),
            points: 5.0,
            half_life_days: 7.0,
            urgent: false,
            direction: scoring::Direction::Inbound,
            retired: false,
        };
        for i in 0..5 {
            state.record_as(
                &visit,
                scoring::Direction::Inbound,
                1_790_000_000 + i * 3_600,
                None,
            );
        }
        let state_json = serde_json::to_string(&state)?;
        let due = Uuid::now_v7();
        let later = Uuid::now_v7();
        let closed = Uuid::now_v7();
        for (id, next, version, status) in [
            (due, now - Duration::days(1), 3, "OPEN"),
            (later, now + Duration::days(2), 1, "OPEN"),
            (closed, now + Duration::days(2), 5, "WON"),
        ] {
            db.execute_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "INSERT INTO leads (tenant_id, id, name, attributes, pipeline_id, stage_id, \
                 stage_entered_at, status, score, tier, tier_rank, priority, flags, breakdown, \
                 next_follow_up_at, signal_state, scored_at, version, created_at, updated_at) \
                 VALUES (?, ?, 'Li', '{}', ?, ?, ?, ?, 81.5, 'A', 0, 123, 4, '{}', ?, ?, ?, \
                 ?, ?, ?)",
                [
                    t.into(),
                    id.into(),
                    p.into(),
                    s.into(),
                    now.into(),
                    status.into(),
                    next.into(),
                    state_json.clone().into(),
                    now.into(),
                    version.into(),
                    now.into(),
                    now.into(),
                ],
            ))
            .await?;
        }

        Migrator::up(&db, None).await?;

        let leads = lead::Entity::find()
            .order_by_asc(lead::Column::Id)
            .all(&db)
            .await?;
        let found: Vec<(Uuid, i32, LeadStatus, i16)> = leads
            .iter()
            .map(|l| (l.id.uuid(), l.version, l.status, l.bucket))
            .collect();
        assert_eq!(
            found,
            vec![
                (due, 3, LeadStatus::Open, 0),
                (later, 1, LeadStatus::Open, 1),
                (closed, 5, LeadStatus::Won, 2),
            ]
        );
        for l in &leads {
            // The priority is recomputed with the urgency term of
            // m20261204_000010 (neither urgent nor overdue: 0), tier rank 0
            // and score 81.5.
            assert_eq!(
                (l.score, l.tier.as_str(), l.priority, l.flags),
                (81.5, "A", 490_815_000, 4)
            );
            assert_eq!(l.name, "Li");
            // The JSON state is rewritten in the compact form, whole.
            assert_eq!(l.signal_state.first(), Some(&1));
            assert_eq!(scoring::ActivityState::from_bytes(&l.signal_state)?, state);
            assert_eq!(l.stage_id, s);
        }

        // Down and up again: the compact states cannot go back to JSON and
        // come back empty, as the migration says; nothing else is lost.
        Migrator::down(&db, Some(1)).await?;
        Migrator::up(&db, None).await?;
        let again = lead::Entity::find().all(&db).await?;
        assert_eq!(again.len(), 3);
        for l in &again {
            assert_eq!(l.signal_state.first(), Some(&1));
            assert_eq!(
                scoring::ActivityState::from_bytes(&l.signal_state)?,
                scoring::ActivityState::default()
            );
            assert_eq!((l.score, l.name.as_str()), (81.5, "Li"));
        }
        Ok(())
    }
}
