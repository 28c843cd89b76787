//! Business rules, transactions and re-scoring. Resolvers call one function
//! here and map its result; every query goes through a
//! [`TenantScope`](crate::tenancy::TenantScope).

pub mod accounts;
pub mod analytics;
pub mod assignment;
pub mod configuration;
pub mod events;
pub mod ingestion;
pub mod leads;
pub mod lease;
pub mod sql;
pub mod validate;

use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionOptions, TransactionTrait};

use crate::error::AppResult;

/// Starts a transaction that will write. On SQLite it takes the write lock
/// at once, so two writers queue on the busy timeout instead of failing when
/// a read lock cannot be upgraded.
///
/// # Errors
/// Database errors.
pub async fn begin_write(db: &DatabaseConnection) -> AppResult<DatabaseTransaction> {
    let options = TransactionOptions {
        sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
        ..Default::default()
    };
    Ok(db.begin_with_options(options).await?)
}
