//! Customers after the sale: a pipeline marks the stages a won lead goes
//! on to as a customer (post-sale maintenance, renewal). A won lead in one
//! keeps its WON outcome, for training and reports, and is re-scored like
//! an open lead so that churn warnings reach its owner.
//!
//! The default pipeline's `post_sale` stage becomes one.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("stages"))
                    .add_column(boolean(Alias::new("post_sale")).default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE stages SET post_sale = TRUE WHERE key = 'post_sale' AND kind = 'OPEN'",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("stages"))
                    .drop_column(Alias::new("post_sale"))
                    .to_owned(),
            )
            .await
    }
}
