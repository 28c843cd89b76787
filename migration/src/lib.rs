//! Database migrations for LeadRank. The same migrations run on SQLite and
//! PostgreSQL. Every tenant-owned table's primary key and every index that
//! serves a tenant query start with `tenant_id`, so the data can later be
//! distributed by tenant (e.g. Citus).
//!
//! One change per file; a migration that has shipped is never edited.

pub use sea_orm_migration::prelude::*;

mod idens;
mod m20261123_000001_tenants_users_teams;
mod m20261123_000002_pipelines;
mod m20261123_000003_configuration;
mod m20261123_000004_leads;
mod m20261123_000005_jobs;
mod m20261123_000006_audit_and_throttling;
mod m20261123_000007_assignment_rules;
mod m20261123_000008_queue_index;
mod m20261123_000009_pin_policy;
mod m20261124_000010_tenant_assignment_rules;
mod m20261124_000011_webhooks;
mod m20261124_000012_change_notices;
mod m20261203_000013_lead_scores;
mod m20261203_000014_fell_due_index;
mod m20261203_000014_session_revocation;
mod m20261204_000001_api_keys_and_ingestion;
mod m20261204_000010_scheduled_follow_ups;
mod m20261205_000002_customers_and_churn;
mod m20261205_000003_lost_reason_categories;
mod m20261205_000004_pool_rules;
mod m20261206_000001_expected_close;
mod m20261207_000001_tenant_wall;
mod m20261208_000001_activity_state_on_scores;
mod m20261208_000002_history_points_at_scores;
mod m20261209_000001_compact_activity_state;
mod shape;

/// Applies LeadRank's migrations in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_tenants_users_teams::Migration),
            Box::new(m20261123_000002_pipelines::Migration),
            Box::new(m20261123_000003_configuration::Migration),
            Box::new(m20261123_000004_leads::Migration),
            Box::new(m20261123_000005_jobs::Migration),
            Box::new(m20261123_000006_audit_and_throttling::Migration),
            Box::new(m20261123_000007_assignment_rules::Migration),
            Box::new(m20261123_000008_queue_index::Migration),
            Box::new(m20261123_000009_pin_policy::Migration),
            Box::new(m20261124_000010_tenant_assignment_rules::Migration),
            Box::new(m20261124_000011_webhooks::Migration),
            Box::new(m20261124_000012_change_notices::Migration),
            Box::new(m20261203_000013_lead_scores::Migration),
            Box::new(m20261203_000014_fell_due_index::Migration),
            Box::new(m20261203_000014_session_revocation::Migration),
            Box::new(m20261204_000001_api_keys_and_ingestion::Migration),
            Box::new(m20261204_000010_scheduled_follow_ups::Migration),
            Box::new(m20261205_000002_customers_and_churn::Migration),
            Box::new(m20261205_000003_lost_reason_categories::Migration),
            Box::new(m20261205_000004_pool_rules::Migration),
            Box::new(m20261206_000001_expected_close::Migration),
            Box::new(m20261207_000001_tenant_wall::Migration),
            Box::new(m20261208_000001_activity_state_on_scores::Migration),
            Box::new(m20261208_000002_history_points_at_scores::Migration),
            Box::new(m20261209_000001_compact_activity_state::Migration),
        ]
    }
}
