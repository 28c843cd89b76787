//! The shared pool's rules: per company, with per-team overrides, when an
//! owner's neglected or long-cold lead goes back to the pool, how long a
//! new owner is protected from that, and how many pool leads a rep may
//! claim a day.
//!
//! A rule's id is its team's id, or the company's for the company rule, so
//! the primary key itself keeps one rule per team.

use sea_orm_migration::{prelude::*, schema::*};

use crate::shape::{owned_by_tenant, tenant_table};

#[derive(DeriveIden, Clone)]
enum PoolRules {
    Table,
    TenantId,
    Id,
    TeamId,
    NoOutboundDays,
    ColdDays,
    ProtectionDays,
    ClaimsPerDay,
    UpdatedBy,
    UpdatedAt,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                tenant_table(PoolRules::Table, PoolRules::TenantId, PoolRules::Id)
                    .col(uuid_null(PoolRules::TeamId))
                    .col(integer_null(PoolRules::NoOutboundDays))
                    .col(integer_null(PoolRules::ColdDays))
                    .col(integer(PoolRules::ProtectionDays))
                    .col(integer(PoolRules::ClaimsPerDay))
                    .col(uuid_null(PoolRules::UpdatedBy))
                    .col(timestamp_with_time_zone(PoolRules::UpdatedAt))
                    .foreign_key(&mut owned_by_tenant(PoolRules::Table, PoolRules::TenantId))
                    .to_owned(),
            )
            .await?;
        // A rep's claims today are counted at every claim; only claims are
        // indexed, not the far more numerous other history entries.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX IF NOT EXISTS ix_lead_events_claims \
                 ON lead_events (tenant_id, actor_id, at) WHERE kind = 'CLAIMED'",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS ix_lead_events_claims")
            .await?;
        manager
            .drop_table(Table::drop().table(PoolRules::Table).to_owned())
            .await
    }
}
