//! Assignment rules for the whole company as well as per team, with a cap
//! on open leads per rep.
//!
//! The first shape (m7) tied every rule to a team and had no cap. Nothing
//! wrote to that table yet, so it is rebuilt rather than altered: SQLite
//! cannot drop a column's NOT NULL in place.

use sea_orm_migration::{prelude::*, schema::*};

use crate::idens::{AssignmentRules, Teams};
use crate::shape::{index, tenant_fk, tenant_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn rules_table(team_required: bool, with_cap: bool) -> TableCreateStatement {
    let mut table = tenant_table(
        AssignmentRules::Table,
        AssignmentRules::TenantId,
        AssignmentRules::Id,
    );
    if team_required {
        table.col(uuid(AssignmentRules::TeamId));
    } else {
        table.col(uuid_null(AssignmentRules::TeamId));
    }
    table
        .col(string_len(AssignmentRules::Name, 200))
        .col(string_len(AssignmentRules::Strategy, 32))
        .col(json_binary(AssignmentRules::Filter))
        .col(integer(AssignmentRules::Position))
        .col(boolean(AssignmentRules::Active).default(true))
        .col(uuid_null(AssignmentRules::LastAssignedUserId));
    if with_cap {
        table.col(integer_null(AssignmentRules::MaxOpenPerRep));
    }
    table
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
        .to_owned()
}

async fn rebuild(
    manager: &SchemaManager<'_>,
    team_required: bool,
    with_cap: bool,
) -> Result<(), DbErr> {
    manager
        .drop_table(Table::drop().table(AssignmentRules::Table).to_owned())
        .await?;
    manager
        .create_table(rules_table(team_required, with_cap))
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

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, false, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, true, false).await
    }
}
