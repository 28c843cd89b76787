//! API keys for machines, and the idempotency keys of ingested events.
//!
//! A key's secret is handed out once as `lrk_<tenant>_<key>_<secret>`; only
//! the SHA-256 of the secret part is kept, and the tenant and key ids in
//! front let the server find the row by its primary key, scoped to the
//! tenant, without a global index on the hash.
//!
//! An ingested event may carry an idempotency key; the tenant's key maps to
//! the activity it recorded, so a retried event is a duplicate, never a
//! second activity.

use sea_orm_migration::{prelude::*, schema::*};

use crate::shape::{index, owned_by_tenant, tenant_table};

#[derive(DeriveIden, Clone)]
enum ApiKeys {
    Table,
    TenantId,
    Id,
    Name,
    Scopes,
    SecretHash,
    CreatedBy,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden, Clone)]
enum IngestionKeys {
    Table,
    TenantId,
    IdempotencyKey,
    ActivityId,
    LeadId,
    ApiKeyId,
    CreatedAt,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                tenant_table(ApiKeys::Table, ApiKeys::TenantId, ApiKeys::Id)
                    .col(string_len(ApiKeys::Name, 120))
                    // Comma-separated scope names, e.g. `INGEST,READ`.
                    .col(string_len(ApiKeys::Scopes, 64))
                    .col(string_len(ApiKeys::SecretHash, 64))
                    .col(uuid_null(ApiKeys::CreatedBy))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                    .foreign_key(&mut owned_by_tenant(ApiKeys::Table, ApiKeys::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(IngestionKeys::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(IngestionKeys::TenantId).uuid().not_null())
                    .col(string_len(IngestionKeys::IdempotencyKey, 200))
                    .col(uuid(IngestionKeys::ActivityId))
                    .col(uuid(IngestionKeys::LeadId))
                    .col(uuid_null(IngestionKeys::ApiKeyId))
                    .col(timestamp_with_time_zone(IngestionKeys::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(IngestionKeys::TenantId)
                            .col(IngestionKeys::IdempotencyKey),
                    )
                    .foreign_key(&mut owned_by_tenant(
                        IngestionKeys::Table,
                        IngestionKeys::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        // Keys are listed newest first.
        manager
            .create_index(index(
                "ix_api_keys_created",
                ApiKeys::Table,
                vec![ApiKeys::TenantId, ApiKeys::CreatedAt],
                false,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IngestionKeys::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ApiKeys::Table).to_owned())
            .await
    }
}
