//! Tenants, their users and teams, and refresh sessions.

use sea_orm_migration::{prelude::*, schema::*};

use crate::idens::{RefreshSessions, TeamMembers, Teams, Tenants, Users};
use crate::shape::{index, owned_by_tenant, tenant_fk, tenant_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tenants::Table)
                    .if_not_exists()
                    .col(uuid(Tenants::Id).primary_key())
                    .col(string_len(Tenants::Name, 200))
                    .col(string_len_uniq(Tenants::Slug, 64))
                    .col(string_len(Tenants::Locale, 16))
                    .col(string_len(Tenants::TimeZone, 64))
                    .col(integer(Tenants::NightlyHour).default(2))
                    .col(timestamp_with_time_zone(Tenants::CreatedAt))
                    .col(timestamp_with_time_zone(Tenants::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                tenant_table(Users::Table, Users::TenantId, Users::Id)
                    .col(string_len(Users::Email, 254))
                    .col(string_len(Users::DisplayName, 200))
                    .col(string_len(Users::Role, 16))
                    .col(string_len(Users::PasswordHash, 256))
                    .col(boolean(Users::Active).default(true))
                    .col(boolean(Users::Away).default(false))
                    .col(integer_null(Users::Capacity))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .foreign_key(&mut owned_by_tenant(Users::Table, Users::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ux_users_tenant_email",
                Users::Table,
                vec![Users::TenantId, Users::Email],
                true,
            ))
            .await?;

        manager
            .create_table(
                tenant_table(Teams::Table, Teams::TenantId, Teams::Id)
                    .col(string_len(Teams::Name, 200))
                    .col(timestamp_with_time_zone(Teams::CreatedAt))
                    .col(timestamp_with_time_zone(Teams::UpdatedAt))
                    .foreign_key(&mut owned_by_tenant(Teams::Table, Teams::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ux_teams_tenant_name",
                Teams::Table,
                vec![Teams::TenantId, Teams::Name],
                true,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TeamMembers::Table)
                    .if_not_exists()
                    .col(uuid(TeamMembers::TenantId))
                    .col(uuid(TeamMembers::TeamId))
                    .col(uuid(TeamMembers::UserId))
                    .col(timestamp_with_time_zone(TeamMembers::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(TeamMembers::TenantId)
                            .col(TeamMembers::TeamId)
                            .col(TeamMembers::UserId),
                    )
                    .foreign_key(
                        tenant_fk(
                            TeamMembers::Table,
                            TeamMembers::TeamId,
                            Teams::Table,
                            TeamMembers::TenantId,
                            Teams::TenantId,
                            Teams::Id,
                        )
                        .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        tenant_fk(
                            TeamMembers::Table,
                            TeamMembers::UserId,
                            Users::Table,
                            TeamMembers::TenantId,
                            Users::TenantId,
                            Users::Id,
                        )
                        .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_team_members_user",
                TeamMembers::Table,
                vec![TeamMembers::TenantId, TeamMembers::UserId],
                false,
            ))
            .await?;

        manager
            .create_table(
                tenant_table(
                    RefreshSessions::Table,
                    RefreshSessions::TenantId,
                    RefreshSessions::Id,
                )
                .col(uuid(RefreshSessions::UserId))
                .col(uuid(RefreshSessions::FamilyId))
                .col(string_len(RefreshSessions::TokenHash, 128))
                .col(timestamp_with_time_zone(RefreshSessions::CreatedAt))
                .col(timestamp_with_time_zone(RefreshSessions::ExpiresAt))
                .col(timestamp_with_time_zone_null(RefreshSessions::RotatedAt))
                .col(timestamp_with_time_zone_null(RefreshSessions::RevokedAt))
                .foreign_key(
                    tenant_fk(
                        RefreshSessions::Table,
                        RefreshSessions::UserId,
                        Users::Table,
                        RefreshSessions::TenantId,
                        Users::TenantId,
                        Users::Id,
                    )
                    .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_refresh_sessions_family",
                RefreshSessions::Table,
                vec![RefreshSessions::TenantId, RefreshSessions::FamilyId],
                false,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            RefreshSessions::Table.into_iden(),
            TeamMembers::Table.into_iden(),
            Teams::Table.into_iden(),
            Users::Table.into_iden(),
            Tenants::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
