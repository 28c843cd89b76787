//! Per-tenant configuration: signal types, lead fields, versioned scoring
//! models and trained close-probability predictors.

use sea_orm_migration::{prelude::*, schema::*};

use crate::idens::{LeadFields, PredictorModels, ScoringModels, SignalTypes, Teams};
use crate::shape::{index, owned_by_tenant, tenant_fk, tenant_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                tenant_table(SignalTypes::Table, SignalTypes::TenantId, SignalTypes::Id)
                    .col(string_len(SignalTypes::Key, 64))
                    .col(string_len(SignalTypes::Label, 200))
                    .col(double(SignalTypes::Points))
                    .col(double(SignalTypes::HalfLifeDays))
                    .col(boolean(SignalTypes::Urgent).default(false))
                    .col(string_len(SignalTypes::Direction, 8))
                    .col(boolean(SignalTypes::Retired).default(false))
                    .col(timestamp_with_time_zone(SignalTypes::CreatedAt))
                    .col(timestamp_with_time_zone(SignalTypes::UpdatedAt))
                    .foreign_key(&mut owned_by_tenant(
                        SignalTypes::Table,
                        SignalTypes::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ux_signal_types_key",
                SignalTypes::Table,
                vec![SignalTypes::TenantId, SignalTypes::Key],
                true,
            ))
            .await?;

        manager
            .create_table(
                tenant_table(LeadFields::Table, LeadFields::TenantId, LeadFields::Id)
                    .col(string_len(LeadFields::Key, 64))
                    .col(string_len(LeadFields::Label, 200))
                    .col(string_len(LeadFields::FieldType, 16))
                    .col(json_binary(LeadFields::Options))
                    .col(boolean(LeadFields::Required).default(false))
                    .col(integer(LeadFields::Position))
                    .col(timestamp_with_time_zone(LeadFields::CreatedAt))
                    .col(timestamp_with_time_zone(LeadFields::UpdatedAt))
                    .foreign_key(&mut owned_by_tenant(
                        LeadFields::Table,
                        LeadFields::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ux_lead_fields_key",
                LeadFields::Table,
                vec![LeadFields::TenantId, LeadFields::Key],
                true,
            ))
            .await?;

        manager
            .create_table(
                tenant_table(
                    ScoringModels::Table,
                    ScoringModels::TenantId,
                    ScoringModels::Id,
                )
                .col(uuid_null(ScoringModels::TeamId))
                .col(integer(ScoringModels::Version))
                .col(string_len(ScoringModels::Status, 8))
                .col(string_len(ScoringModels::Name, 200))
                .col(json_binary(ScoringModels::Config))
                .col(uuid_null(ScoringModels::CreatedBy))
                .col(timestamp_with_time_zone(ScoringModels::CreatedAt))
                .col(timestamp_with_time_zone_null(ScoringModels::ActivatedAt))
                .col(timestamp_with_time_zone_null(ScoringModels::RetiredAt))
                .foreign_key(&mut owned_by_tenant(
                    ScoringModels::Table,
                    ScoringModels::TenantId,
                ))
                .foreign_key(&mut tenant_fk(
                    ScoringModels::Table,
                    ScoringModels::TeamId,
                    Teams::Table,
                    ScoringModels::TenantId,
                    Teams::TenantId,
                    Teams::Id,
                ))
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_scoring_models_scope",
                ScoringModels::Table,
                vec![
                    ScoringModels::TenantId,
                    ScoringModels::TeamId,
                    ScoringModels::Status,
                ],
                false,
            ))
            .await?;

        manager
            .create_table(
                tenant_table(
                    PredictorModels::Table,
                    PredictorModels::TenantId,
                    PredictorModels::Id,
                )
                .col(uuid_null(PredictorModels::TeamId))
                .col(integer(PredictorModels::Version))
                .col(boolean(PredictorModels::Active).default(false))
                .col(timestamp_with_time_zone(PredictorModels::TrainedAt))
                .col(integer(PredictorModels::TrainingRows))
                .col(integer(PredictorModels::Won))
                .col(integer(PredictorModels::Lost))
                .col(json_binary(PredictorModels::Metrics))
                .col(json_binary(PredictorModels::Model))
                .foreign_key(&mut owned_by_tenant(
                    PredictorModels::Table,
                    PredictorModels::TenantId,
                ))
                .foreign_key(&mut tenant_fk(
                    PredictorModels::Table,
                    PredictorModels::TeamId,
                    Teams::Table,
                    PredictorModels::TenantId,
                    Teams::TenantId,
                    Teams::Id,
                ))
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_predictor_models_scope",
                PredictorModels::Table,
                vec![
                    PredictorModels::TenantId,
                    PredictorModels::TeamId,
                    PredictorModels::Active,
                ],
                false,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            PredictorModels::Table.into_iden(),
            ScoringModels::Table.into_iden(),
            LeadFields::Table.into_iden(),
            SignalTypes::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
