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
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::config::Settings;

/// Opens the pool. An SQLite file is created if missing, in WAL mode so
/// readers do not wait for the writer.
///
/// # Errors
/// When the database cannot be reached.
pub async fn connect(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
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
        });
    Database::connect(options).await.with_context(|| {
        format!(
            "failed to connect to the database at {}",
            redact(&settings.database_url)
        )
    })
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

/// A database URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_hidden_from_database_urls() {
        assert_eq!(
            redact("postgres://lr:s3cret@localhost:5432/db"),
            "postgres://lr:***@localhost:5432/db"
        );
        assert_eq!(redact("sqlite://leadrank.db"), "sqlite://leadrank.db");
    }
}
