//! Whether a tenant lets reps pin the tiers of their own leads; off until
//! an OWNER or ADMIN turns it on, since a pin overrides the scoring model.

use sea_orm_migration::{prelude::*, schema::*};

use crate::idens::Tenants;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Tenants::Table)
                    .add_column(boolean(Tenants::RepsMayPin).default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Tenants::Table)
                    .drop_column(Tenants::RepsMayPin)
                    .to_owned(),
            )
            .await
    }
}
