//! Notices of changed leads for live subscriptions, on SQLite: written in
//! the change's transaction and read by every server process on the same
//! file. PostgreSQL carries the same notices with NOTIFY instead and leaves
//! this table empty.

use sea_orm_migration::{prelude::*, schema::*};

use crate::idens::ChangeNotices;
use crate::shape::{index, tenant_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                tenant_table(
                    ChangeNotices::Table,
                    ChangeNotices::TenantId,
                    ChangeNotices::Id,
                )
                .col(text(ChangeNotices::Payload))
                .col(timestamp_with_time_zone(ChangeNotices::CreatedAt))
                .to_owned(),
            )
            .await?;
        // Readers follow the newest ids across tenants.
        manager
            .create_index(index(
                "ix_change_notices_id",
                ChangeNotices::Table,
                vec![ChangeNotices::Id],
                false,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ChangeNotices::Table).to_owned())
            .await
    }
}
