//! The leads that fell due since they were scored, found by a range scan.
//!
//! The queue index orders one owner's open leads by bucket, tier and score,
//! so the not-due leads whose follow-up date has since passed could only be
//! found by reading the owner's whole not-due range (a hundred pages for a
//! rep with a few thousand leads, most of the queue's database time). This
//! index orders that range by follow-up date.

use sea_orm_migration::prelude::*;

use crate::{idens::LeadScores, shape::index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const NAME: &str = "ix_lead_scores_follow_up";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(index(
                NAME,
                LeadScores::Table,
                vec![
                    LeadScores::TenantId,
                    LeadScores::OwnerId,
                    LeadScores::Bucket,
                    LeadScores::NextFollowUpAt,
                ],
                false,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(NAME).table(LeadScores::Table).to_owned())
            .await
    }
}
