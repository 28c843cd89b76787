//! Per-team rules that hand unowned leads to reps.

use sea_orm_migration::{prelude::*, schema::*};

use crate::idens::{AssignmentRules, Teams};
use crate::shape::{index, tenant_fk, tenant_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                tenant_table(
                    AssignmentRules::Table,
                    AssignmentRules::TenantId,
                    AssignmentRules::Id,
                )
                .col(uuid(AssignmentRules::TeamId))
                .col(string_len(AssignmentRules::Name, 200))
                .col(string_len(AssignmentRules::Strategy, 32))
                .col(json_binary(AssignmentRules::Filter))
                .col(integer(AssignmentRules::Position))
                .col(boolean(AssignmentRules::Active).default(true))
                .col(uuid_null(AssignmentRules::LastAssignedUserId))
                .col(timestamp_with_time_zone(AssignmentRules::CreatedAt))
                .col(timestamp_with_time_zone(AssignmentRules::UpdatedAt))
                .foreign_key(
                    tenant_fk(
                        AssignmentRules::Table,
                        AssignmentRules::TeamId,
                        Teams::Table,
                        AssignmentRules::TenantId,
                        Teams::TenantId,
                        Teams::Id,
                    )
                    .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_assignment_rules_team",
                AssignmentRules::Table,
                vec![
                    AssignmentRules::TenantId,
                    AssignmentRules::TeamId,
                    AssignmentRules::Position,
                ],
                false,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AssignmentRules::Table).to_owned())
            .await
    }
}
