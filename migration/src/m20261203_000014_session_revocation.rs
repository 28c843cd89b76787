//! Taking access away: each user gets a session version, bumped when their
//! sessions are revoked (a password change, "sign out everywhere", an
//! admin's revocation), which every access token carries and every request
//! compares; and each refresh token records when its session family began,
//! so a family cannot be refreshed past an absolute lifetime.

use sea_orm_migration::{prelude::*, schema::*};

use crate::shape::index;

#[derive(DeriveIden)]
enum Users {
    Table,
    SessionVersion,
}

#[derive(DeriveIden)]
enum RefreshSessions {
    Table,
    TenantId,
    UserId,
    FamilyStartedAt,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(integer(Users::SessionVersion).default(0))
                    .to_owned(),
            )
            .await?;
        // Nullable because SQLite cannot add a NOT NULL column without a
        // constant default; every row is filled below and every new row
        // sets it.
        manager
            .alter_table(
                Table::alter()
                    .table(RefreshSessions::Table)
                    .add_column(timestamp_with_time_zone_null(
                        RefreshSessions::FamilyStartedAt,
                    ))
                    .to_owned(),
            )
            .await?;
        // Existing families began when their first token was issued.
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE refresh_sessions SET family_started_at = (\
                   SELECT MIN(f.created_at) FROM refresh_sessions f \
                   WHERE f.tenant_id = refresh_sessions.tenant_id \
                     AND f.family_id = refresh_sessions.family_id)",
            )
            .await?;
        // Revoking every session of a user, and reading which of their
        // families were revoked, go by user.
        manager
            .create_index(index(
                "ix_refresh_sessions_user",
                RefreshSessions::Table,
                vec![RefreshSessions::TenantId, RefreshSessions::UserId],
                false,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_refresh_sessions_user")
                    .table(RefreshSessions::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(RefreshSessions::Table)
                    .drop_column(RefreshSessions::FamilyStartedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::SessionVersion)
                    .to_owned(),
            )
            .await
    }
}
