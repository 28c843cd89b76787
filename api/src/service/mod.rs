//! Business rules, transactions and re-scoring. Resolvers call one function
//! here and map its result; every query goes through a
//! [`TenantScope`](crate::tenancy::TenantScope).

pub mod access;
pub mod account;
pub mod analytics;
pub mod api_keys;
pub mod assignment;
pub mod audit;
pub mod bulk;
pub mod catalog;
pub mod configuration;
pub mod defaults;
pub mod events;
pub mod export;
pub mod import;
pub mod ingest;
pub mod lead;
pub mod lead_query;
pub mod lead_writer;
pub mod lost_reasons;
pub mod models;
pub mod pipeline;
pub mod pool;
pub mod reasons;
pub mod rescoring;
pub mod review;
pub mod sql;
pub mod tenant_config;
pub mod validate;
pub mod webhook_target;
pub mod webhooks;

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
