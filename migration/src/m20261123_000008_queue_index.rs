//! A covering index for the follow-up queue: one owner's open leads with
//! what the queue sorts by (overdue now, tier, score) and the id, so the
//! order is found from the index alone and only the 50 rows shown are read.

use sea_orm_migration::prelude::*;

use crate::idens::Leads;
use crate::shape::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

const NAME: &str = "ix_leads_queue_order";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(index(
                NAME,
                Leads::Table,
                vec![
                    Leads::TenantId,
                    Leads::OwnerId,
                    Leads::Status,
                    Leads::TierRank,
                    Leads::Score,
                    Leads::NextFollowUpAt,
                    Leads::Id,
                ],
                false,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(NAME).table(Leads::Table).to_owned())
            .await
    }
}
