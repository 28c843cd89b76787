//! Job runs (nightly re-scoring, imports) and the per-tenant leases that keep
//! two replicas from running the same tenant's job at once.

use sea_orm_migration::{prelude::*, schema::*};

use crate::idens::{JobLeases, JobRuns};
use crate::shape::{index, owned_by_tenant, tenant_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                tenant_table(JobRuns::Table, JobRuns::TenantId, JobRuns::Id)
                    .col(string_len(JobRuns::Kind, 32))
                    .col(string_len(JobRuns::Trigger, 32))
                    .col(string_len(JobRuns::Status, 16))
                    .col(uuid_null(JobRuns::TeamId))
                    .col(uuid_null(JobRuns::RequestedBy))
                    .col(timestamp_with_time_zone(JobRuns::QueuedAt))
                    .col(timestamp_with_time_zone_null(JobRuns::StartedAt))
                    .col(timestamp_with_time_zone_null(JobRuns::FinishedAt))
                    .col(timestamp_with_time_zone_null(JobRuns::HeartbeatAt))
                    .col(big_integer(JobRuns::LeadsScanned).default(0))
                    .col(big_integer(JobRuns::LeadsChanged).default(0))
                    .col(json_binary(JobRuns::TierChanges))
                    .col(integer(JobRuns::NewlyCold).default(0))
                    .col(integer(JobRuns::Stale).default(0))
                    .col(integer(JobRuns::ChurnRisk).default(0))
                    // the last lead id done, so a crashed run resumes instead of starting over
                    .col(uuid_null(JobRuns::Checkpoint))
                    .col(json_binary_null(JobRuns::Details))
                    .col(text_null(JobRuns::Error))
                    .foreign_key(&mut owned_by_tenant(JobRuns::Table, JobRuns::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_job_runs_queued",
                JobRuns::Table,
                vec![JobRuns::TenantId, JobRuns::QueuedAt],
                false,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(JobLeases::Table)
                    .if_not_exists()
                    .col(uuid(JobLeases::TenantId))
                    .col(string_len(JobLeases::Kind, 32))
                    .col(string_len(JobLeases::Holder, 128))
                    .col(uuid_null(JobLeases::JobRunId))
                    .col(timestamp_with_time_zone(JobLeases::AcquiredAt))
                    .col(timestamp_with_time_zone(JobLeases::HeartbeatAt))
                    .col(timestamp_with_time_zone(JobLeases::ExpiresAt))
                    .primary_key(
                        Index::create()
                            .col(JobLeases::TenantId)
                            .col(JobLeases::Kind),
                    )
                    .foreign_key(&mut owned_by_tenant(JobLeases::Table, JobLeases::TenantId))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(JobLeases::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(JobRuns::Table).to_owned())
            .await
    }
}
