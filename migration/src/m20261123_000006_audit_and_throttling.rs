//! The configuration audit log, and failed logins kept in the database so the
//! throttle holds across replicas.

use sea_orm_migration::{prelude::*, schema::*};

use crate::idens::{AuditLog, LoginFailures};
use crate::shape::{index, owned_by_tenant, tenant_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                tenant_table(AuditLog::Table, AuditLog::TenantId, AuditLog::Id)
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .col(uuid_null(AuditLog::ActorId))
                    .col(string_len(AuditLog::Action, 64))
                    .col(string_len(AuditLog::Entity, 64))
                    .col(string_len_null(AuditLog::EntityId, 64))
                    .col(json_binary_null(AuditLog::Before))
                    .col(json_binary_null(AuditLog::After))
                    .foreign_key(&mut owned_by_tenant(AuditLog::Table, AuditLog::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_audit_log_time",
                AuditLog::Table,
                vec![AuditLog::TenantId, AuditLog::At],
                false,
            ))
            .await?;

        // Not tenant-owned: a failed login may name a tenant that does not exist.
        manager
            .create_table(
                Table::create()
                    .table(LoginFailures::Table)
                    .if_not_exists()
                    .col(big_pk_auto(LoginFailures::Id))
                    .col(string_len(LoginFailures::ThrottleKey, 400))
                    .col(timestamp_with_time_zone(LoginFailures::At))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_login_failures_key_time",
                LoginFailures::Table,
                vec![LoginFailures::ThrottleKey, LoginFailures::At],
                false,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LoginFailures::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(AuditLog::Table).to_owned())
            .await
    }
}
