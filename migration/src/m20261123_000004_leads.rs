//! Leads with what scoring keeps on the row, their activities, score history
//! and lifecycle events (stage moves, assignments, closes, pins).

use sea_orm_migration::{prelude::*, schema::*};

use crate::idens::{Activities, LeadEvents, Leads, Pipelines, ScoreEvents, Stages, Teams, Users};
use crate::shape::{index, owned_by_tenant, tenant_fk, tenant_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                tenant_table(Leads::Table, Leads::TenantId, Leads::Id)
                    .col(string_len_null(Leads::ExternalId, 200))
                    .col(string_len(Leads::Name, 200))
                    .col(string_len_null(Leads::Company, 200))
                    .col(string_len_null(Leads::Email, 254))
                    .col(string_len_null(Leads::Phone, 32))
                    // lower-cased "company\u{1f}name", for duplicate detection
                    .col(string_len_null(Leads::DedupeKey, 420))
                    .col(string_len_null(Leads::Industry, 120))
                    .col(string_len_null(Leads::Source, 120))
                    .col(json_binary(Leads::Attributes))
                    .col(double_null(Leads::DealValue))
                    .col(uuid_null(Leads::OwnerId))
                    .col(uuid_null(Leads::TeamId))
                    .col(uuid(Leads::PipelineId))
                    .col(uuid(Leads::StageId))
                    .col(timestamp_with_time_zone(Leads::StageEnteredAt))
                    .col(string_len(Leads::Status, 8))
                    .col(timestamp_with_time_zone_null(Leads::ClosedAt))
                    .col(string_len_null(Leads::CloseReason, 500))
                    .col(double(Leads::Score).default(0.0))
                    .col(string_len(Leads::Tier, 32))
                    .col(integer(Leads::TierRank).default(0))
                    // one sortable key for the follow-up queue: larger comes first
                    .col(big_integer(Leads::Priority).default(0))
                    // bit set of LeadFlag
                    .col(integer(Leads::Flags).default(0))
                    .col(double_null(Leads::CloseProbability))
                    .col(json_binary(Leads::Breakdown))
                    .col(uuid_null(Leads::ScoringModelId))
                    .col(integer_null(Leads::ModelVersion))
                    .col(timestamp_with_time_zone_null(Leads::NextFollowUpAt))
                    .col(timestamp_with_time_zone_null(Leads::LastActivityAt))
                    .col(timestamp_with_time_zone_null(Leads::LastInboundAt))
                    .col(timestamp_with_time_zone_null(Leads::LastOutboundAt))
                    // per-signal decayed accumulators, so re-scoring never re-reads activities
                    .col(json_binary(Leads::SignalState))
                    .col(timestamp_with_time_zone_null(Leads::ScoredAt))
                    .col(string_len_null(Leads::PinnedTier, 32))
                    .col(string_len_null(Leads::PinReason, 500))
                    .col(timestamp_with_time_zone_null(Leads::PinExpiresAt))
                    .col(uuid_null(Leads::PinnedBy))
                    .col(integer(Leads::Version).default(1))
                    .col(uuid_null(Leads::CreatedBy))
                    .col(timestamp_with_time_zone(Leads::CreatedAt))
                    .col(timestamp_with_time_zone(Leads::UpdatedAt))
                    .foreign_key(&mut owned_by_tenant(Leads::Table, Leads::TenantId))
                    .foreign_key(&mut tenant_fk(
                        Leads::Table,
                        Leads::OwnerId,
                        Users::Table,
                        Leads::TenantId,
                        Users::TenantId,
                        Users::Id,
                    ))
                    .foreign_key(&mut tenant_fk(
                        Leads::Table,
                        Leads::TeamId,
                        Teams::Table,
                        Leads::TenantId,
                        Teams::TenantId,
                        Teams::Id,
                    ))
                    .foreign_key(&mut tenant_fk(
                        Leads::Table,
                        Leads::PipelineId,
                        Pipelines::Table,
                        Leads::TenantId,
                        Pipelines::TenantId,
                        Pipelines::Id,
                    ))
                    .foreign_key(&mut tenant_fk(
                        Leads::Table,
                        Leads::StageId,
                        Stages::Table,
                        Leads::TenantId,
                        Stages::TenantId,
                        Stages::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        let lead_indexes: [(&str, Vec<Leads>, bool); 9] = [
            // the follow-up queue: one owner's open leads by priority
            (
                "ix_leads_queue",
                vec![
                    Leads::TenantId,
                    Leads::OwnerId,
                    Leads::Status,
                    Leads::Priority,
                ],
                false,
            ),
            (
                "ix_leads_status_priority",
                vec![Leads::TenantId, Leads::Status, Leads::Priority],
                false,
            ),
            (
                "ix_leads_team_status_priority",
                vec![
                    Leads::TenantId,
                    Leads::TeamId,
                    Leads::Status,
                    Leads::Priority,
                ],
                false,
            ),
            (
                "ix_leads_stage",
                vec![Leads::TenantId, Leads::StageId],
                false,
            ),
            ("ix_leads_email", vec![Leads::TenantId, Leads::Email], false),
            ("ix_leads_phone", vec![Leads::TenantId, Leads::Phone], false),
            (
                "ix_leads_dedupe",
                vec![Leads::TenantId, Leads::DedupeKey],
                false,
            ),
            (
                "ix_leads_updated",
                vec![Leads::TenantId, Leads::UpdatedAt],
                false,
            ),
            (
                "ux_leads_external_id",
                vec![Leads::TenantId, Leads::ExternalId],
                true,
            ),
        ];
        for (name, cols, unique) in lead_indexes {
            manager
                .create_index(index(name, Leads::Table, cols, unique))
                .await?;
        }

        manager
            .create_table(
                tenant_table(Activities::Table, Activities::TenantId, Activities::Id)
                    .col(uuid(Activities::LeadId))
                    .col(string_len(Activities::SignalKey, 64))
                    .col(string_len(Activities::Direction, 8))
                    .col(timestamp_with_time_zone(Activities::OccurredAt))
                    .col(text_null(Activities::Note))
                    .col(double_null(Activities::Amount))
                    .col(uuid_null(Activities::CreatedBy))
                    .col(timestamp_with_time_zone(Activities::CreatedAt))
                    .foreign_key(
                        tenant_fk(
                            Activities::Table,
                            Activities::LeadId,
                            Leads::Table,
                            Activities::TenantId,
                            Leads::TenantId,
                            Leads::Id,
                        )
                        .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_activities_lead_time",
                Activities::Table,
                vec![
                    Activities::TenantId,
                    Activities::LeadId,
                    Activities::OccurredAt,
                ],
                false,
            ))
            .await?;

        manager
            .create_table(
                tenant_table(ScoreEvents::Table, ScoreEvents::TenantId, ScoreEvents::Id)
                    .col(uuid(ScoreEvents::LeadId))
                    .col(timestamp_with_time_zone(ScoreEvents::At))
                    .col(double_null(ScoreEvents::OldScore))
                    .col(double(ScoreEvents::NewScore))
                    .col(string_len_null(ScoreEvents::OldTier, 32))
                    .col(string_len(ScoreEvents::NewTier, 32))
                    .col(string_len(ScoreEvents::Reason, 500))
                    .col(uuid_null(ScoreEvents::ModelId))
                    .col(integer(ScoreEvents::ModelVersion))
                    .col(uuid_null(ScoreEvents::JobRunId))
                    .foreign_key(
                        tenant_fk(
                            ScoreEvents::Table,
                            ScoreEvents::LeadId,
                            Leads::Table,
                            ScoreEvents::TenantId,
                            Leads::TenantId,
                            Leads::Id,
                        )
                        .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_score_events_lead_time",
                ScoreEvents::Table,
                vec![ScoreEvents::TenantId, ScoreEvents::LeadId, ScoreEvents::At],
                false,
            ))
            .await?;
        // a resumed or repeated job run never writes the same lead's event twice
        manager
            .create_index(index(
                "ux_score_events_job_lead",
                ScoreEvents::Table,
                vec![
                    ScoreEvents::TenantId,
                    ScoreEvents::JobRunId,
                    ScoreEvents::LeadId,
                ],
                true,
            ))
            .await?;

        manager
            .create_table(
                tenant_table(LeadEvents::Table, LeadEvents::TenantId, LeadEvents::Id)
                    .col(uuid(LeadEvents::LeadId))
                    .col(string_len(LeadEvents::Kind, 32))
                    .col(uuid_null(LeadEvents::ActorId))
                    .col(timestamp_with_time_zone(LeadEvents::At))
                    .col(string_len_null(LeadEvents::FromValue, 200))
                    .col(string_len_null(LeadEvents::ToValue, 200))
                    .col(json_binary_null(LeadEvents::Data))
                    .foreign_key(
                        tenant_fk(
                            LeadEvents::Table,
                            LeadEvents::LeadId,
                            Leads::Table,
                            LeadEvents::TenantId,
                            Leads::TenantId,
                            Leads::Id,
                        )
                        .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_lead_events_lead_time",
                LeadEvents::Table,
                vec![LeadEvents::TenantId, LeadEvents::LeadId, LeadEvents::At],
                false,
            ))
            .await?;
        // funnel analytics read stage moves by time
        manager
            .create_index(index(
                "ix_lead_events_kind_time",
                LeadEvents::Table,
                vec![LeadEvents::TenantId, LeadEvents::Kind, LeadEvents::At],
                false,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            LeadEvents::Table.into_iden(),
            ScoreEvents::Table.into_iden(),
            Activities::Table.into_iden(),
            Leads::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
