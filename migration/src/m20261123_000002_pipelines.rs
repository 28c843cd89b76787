//! Pipelines and their ordered stages.

use sea_orm_migration::{prelude::*, schema::*};

use crate::idens::{Pipelines, Stages};
use crate::shape::{index, owned_by_tenant, tenant_fk, tenant_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                tenant_table(Pipelines::Table, Pipelines::TenantId, Pipelines::Id)
                    .col(string_len(Pipelines::Name, 200))
                    .col(boolean(Pipelines::IsDefault).default(false))
                    .col(timestamp_with_time_zone(Pipelines::CreatedAt))
                    .col(timestamp_with_time_zone(Pipelines::UpdatedAt))
                    .foreign_key(&mut owned_by_tenant(Pipelines::Table, Pipelines::TenantId))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                tenant_table(Stages::Table, Stages::TenantId, Stages::Id)
                    .col(uuid(Stages::PipelineId))
                    .col(string_len(Stages::Key, 64))
                    .col(string_len(Stages::Name, 200))
                    .col(string_len(Stages::Kind, 8))
                    .col(integer(Stages::Position))
                    .col(double(Stages::WinProbability))
                    .col(integer_null(Stages::RottingDays))
                    .col(timestamp_with_time_zone(Stages::CreatedAt))
                    .col(timestamp_with_time_zone(Stages::UpdatedAt))
                    .foreign_key(
                        tenant_fk(
                            Stages::Table,
                            Stages::PipelineId,
                            Pipelines::Table,
                            Stages::TenantId,
                            Pipelines::TenantId,
                            Pipelines::Id,
                        )
                        .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ux_stages_pipeline_key",
                Stages::Table,
                vec![Stages::TenantId, Stages::PipelineId, Stages::Key],
                true,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Stages::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Pipelines::Table).to_owned())
            .await
    }
}
