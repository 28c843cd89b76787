//! Webhook endpoints and their outbox of deliveries. A delivery row is
//! written in the transaction of the change that caused it and sent later
//! by a worker, so a crash between the two loses nothing.

use sea_orm_migration::{prelude::*, schema::*};

use crate::idens::{WebhookDeliveries, WebhookEndpoints};
use crate::shape::{index, tenant_fk, tenant_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                tenant_table(
                    WebhookEndpoints::Table,
                    WebhookEndpoints::TenantId,
                    WebhookEndpoints::Id,
                )
                .col(string_len(WebhookEndpoints::Url, 2000))
                .col(string_len_null(WebhookEndpoints::Description, 500))
                .col(json_binary(WebhookEndpoints::EventTypes))
                .col(string_len(WebhookEndpoints::Secret, 200))
                .col(boolean(WebhookEndpoints::Active).default(true))
                .col(string_len_null(WebhookEndpoints::DisabledReason, 1000))
                .col(integer(WebhookEndpoints::ConsecutiveFailures).default(0))
                .col(uuid_null(WebhookEndpoints::CreatedBy))
                .col(timestamp_with_time_zone(WebhookEndpoints::CreatedAt))
                .col(timestamp_with_time_zone(WebhookEndpoints::UpdatedAt))
                .to_owned(),
            )
            .await?;
        manager
            .create_table(
                tenant_table(
                    WebhookDeliveries::Table,
                    WebhookDeliveries::TenantId,
                    WebhookDeliveries::Id,
                )
                .col(uuid(WebhookDeliveries::EndpointId))
                .col(uuid(WebhookDeliveries::EventId))
                .col(string_len(WebhookDeliveries::EventType, 64))
                .col(json_binary(WebhookDeliveries::Payload))
                .col(string_len(WebhookDeliveries::Status, 16))
                .col(integer(WebhookDeliveries::Attempts).default(0))
                .col(timestamp_with_time_zone(WebhookDeliveries::NextAttemptAt))
                .col(timestamp_with_time_zone_null(
                    WebhookDeliveries::LockedUntil,
                ))
                .col(integer_null(WebhookDeliveries::LastStatusCode))
                .col(string_len_null(WebhookDeliveries::LastError, 1000))
                .col(timestamp_with_time_zone(WebhookDeliveries::CreatedAt))
                .col(timestamp_with_time_zone_null(
                    WebhookDeliveries::DeliveredAt,
                ))
                .foreign_key(
                    tenant_fk(
                        WebhookDeliveries::Table,
                        WebhookDeliveries::EndpointId,
                        WebhookEndpoints::Table,
                        WebhookDeliveries::TenantId,
                        WebhookEndpoints::TenantId,
                        WebhookEndpoints::Id,
                    )
                    .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
            )
            .await?;
        // One delivery per endpoint per event: the outbox can be written
        // twice by a retried transaction, never sent twice.
        manager
            .create_index(index(
                "ux_webhook_deliveries_event",
                WebhookDeliveries::Table,
                vec![
                    WebhookDeliveries::TenantId,
                    WebhookDeliveries::EndpointId,
                    WebhookDeliveries::EventId,
                ],
                true,
            ))
            .await?;
        // The worker's scan spans tenants: due deliveries, oldest first.
        manager
            .create_index(index(
                "ix_webhook_deliveries_due",
                WebhookDeliveries::Table,
                vec![WebhookDeliveries::Status, WebhookDeliveries::NextAttemptAt],
                false,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookDeliveries::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(WebhookEndpoints::Table).to_owned())
            .await
    }
}
