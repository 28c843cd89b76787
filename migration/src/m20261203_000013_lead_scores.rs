//! What scoring rewrites moves to a narrow table of its own.
//!
//! Every mutation and every night rewrites a lead's score, tier, queue keys,
//! flags, next follow-up and version; on the lead row, with its JSON facts,
//! its stored explanation and eleven indexes, each of those writes cost
//! several times a write of a narrow row. `lead_scores` keeps them, one row
//! per lead, with the owner, team and status the queue filters by, and only
//! the indexes queries use: the follow-up queue's and the priority order's.
//! The stored explanation goes: it is derived from the lead's facts and the
//! model version at `scored_at` when it is read.
//!
//! `lead_view` joins the two back into the lead as every reader sees it.
//! Writes go through the API's lead writer, which keeps the owner, team and
//! status on both tables.

use sea_orm_migration::{prelude::*, schema::*};

use crate::idens::{LeadScores, Leads, Teams, Users};
use crate::shape::{index, owned_by_tenant, tenant_fk};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The columns leaving `leads`: to `lead_scores`, but the stored
/// explanation, which is dropped.
const MOVED: [&str; 12] = [
    "version",
    "score",
    "tier",
    "tier_rank",
    "priority",
    "flags",
    "close_probability",
    "breakdown",
    "scoring_model_id",
    "model_version",
    "next_follow_up_at",
    "scored_at",
];

/// Indexes of `leads` over moved columns, or that nothing reads any more.
const DROPPED_INDEXES: [&str; 4] = [
    "ix_leads_queue",
    "ix_leads_queue_order",
    "ix_leads_status_priority",
    "ix_leads_team_status_priority",
];

const VIEW: &str = "CREATE VIEW lead_view AS SELECT \
    s.tenant_id, s.lead_id AS id, l.external_id, l.name, l.company, l.email, l.phone, \
    l.dedupe_key, l.industry, l.source, l.attributes, l.deal_value, s.owner_id, s.team_id, \
    l.pipeline_id, l.stage_id, l.stage_entered_at, s.status, l.closed_at, l.close_reason, \
    s.score, s.tier, s.tier_rank, s.priority, s.flags, s.bucket, s.close_probability, \
    s.scoring_model_id, s.model_version, s.next_follow_up_at, l.last_activity_at, \
    l.last_inbound_at, l.last_outbound_at, l.signal_state, s.scored_at, l.pinned_tier, \
    l.pin_reason, l.pin_expires_at, l.pinned_by, s.version, l.created_by, l.created_at, \
    l.updated_at \
    FROM lead_scores s LEFT JOIN leads l ON l.tenant_id = s.tenant_id AND l.id = s.lead_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let postgres = manager.get_database_backend() == sea_orm::DbBackend::Postgres;
        manager
            .create_table(
                Table::create()
                    .table(LeadScores::Table)
                    .if_not_exists()
                    .col(uuid(LeadScores::TenantId))
                    .col(uuid(LeadScores::LeadId))
                    .col(integer(LeadScores::Version).default(1))
                    .col(uuid_null(LeadScores::OwnerId))
                    .col(uuid_null(LeadScores::TeamId))
                    .col(string_len(LeadScores::Status, 8))
                    // 0: open and due when scored; 1: open, not due yet; 2: closed
                    .col(small_integer(LeadScores::Bucket).default(1))
                    .col(double(LeadScores::Score).default(0.0))
                    .col(string_len(LeadScores::Tier, 32))
                    .col(integer(LeadScores::TierRank).default(0))
                    .col(big_integer(LeadScores::Priority).default(0))
                    .col(integer(LeadScores::Flags).default(0))
                    .col(double_null(LeadScores::CloseProbability))
                    .col(uuid_null(LeadScores::ScoringModelId))
                    .col(integer_null(LeadScores::ModelVersion))
                    .col(timestamp_with_time_zone_null(LeadScores::NextFollowUpAt))
                    .col(timestamp_with_time_zone_null(LeadScores::ScoredAt))
                    .primary_key(
                        Index::create()
                            .col(LeadScores::TenantId)
                            .col(LeadScores::LeadId),
                    )
                    .foreign_key(&mut owned_by_tenant(
                        LeadScores::Table,
                        LeadScores::TenantId,
                    ))
                    .foreign_key(
                        tenant_fk(
                            LeadScores::Table,
                            LeadScores::LeadId,
                            Leads::Table,
                            LeadScores::TenantId,
                            Leads::TenantId,
                            Leads::Id,
                        )
                        .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(&mut tenant_fk(
                        LeadScores::Table,
                        LeadScores::OwnerId,
                        Users::Table,
                        LeadScores::TenantId,
                        Users::TenantId,
                        Users::Id,
                    ))
                    .foreign_key(&mut tenant_fk(
                        LeadScores::Table,
                        LeadScores::TeamId,
                        Teams::Table,
                        LeadScores::TenantId,
                        Teams::TenantId,
                        Teams::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "INSERT INTO lead_scores (tenant_id, lead_id, version, owner_id, team_id, status, \
             bucket, score, tier, tier_rank, priority, flags, close_probability, \
             scoring_model_id, model_version, next_follow_up_at, scored_at) \
             SELECT tenant_id, id, version, owner_id, team_id, status, \
             CASE WHEN status <> 'OPEN' THEN 2 \
                  WHEN next_follow_up_at IS NOT NULL AND next_follow_up_at <= scored_at THEN 0 \
                  ELSE 1 END, \
             score, tier, tier_rank, priority, flags, close_probability, scoring_model_id, \
             model_version, next_follow_up_at, scored_at FROM leads",
        )
        .await?;
        if postgres {
            // Room on each page for a row's next version, so rewriting a
            // score that leaves the indexed keys alone stays on its page
            // (a HOT update) instead of touching every index.
            db.execute_unprepared("ALTER TABLE lead_scores SET (fillfactor = 80)")
                .await?;
        }
        // The follow-up queue: one owner's open leads, due first, then by
        // tier and score, read in order from the index alone; the
        // follow-up date at the end finds the leads that fell due since
        // they were scored without reading their rows.
        db.execute_unprepared(
            "CREATE INDEX ix_lead_scores_queue ON lead_scores \
             (tenant_id, owner_id, bucket, tier_rank, score DESC, lead_id, next_follow_up_at)",
        )
        .await?;
        // `leads(orderBy: PRIORITY)`, the default order of the lead list.
        manager
            .create_index(index(
                "ix_lead_scores_priority",
                LeadScores::Table,
                vec![
                    LeadScores::TenantId,
                    LeadScores::Priority,
                    LeadScores::LeadId,
                ],
                false,
            ))
            .await?;
        for name in DROPPED_INDEXES {
            manager
                .drop_index(Index::drop().name(name).table(Leads::Table).to_owned())
                .await?;
        }
        for column in MOVED {
            db.execute_unprepared(&format!("ALTER TABLE leads DROP COLUMN {column}"))
                .await?;
        }
        db.execute_unprepared(VIEW).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP VIEW lead_view").await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Leads::Table)
                    .add_column(integer(Leads::Version).default(1))
                    .to_owned(),
            )
            .await?;
        for column in [
            double(Leads::Score).default(0.0).to_owned(),
            string_len(Leads::Tier, 32).default("").to_owned(),
            integer(Leads::TierRank).default(0).to_owned(),
            big_integer(Leads::Priority).default(0).to_owned(),
            integer(Leads::Flags).default(0).to_owned(),
            double_null(Leads::CloseProbability),
            json_binary(Leads::Breakdown).default("{}").to_owned(),
            uuid_null(Leads::ScoringModelId),
            integer_null(Leads::ModelVersion),
            timestamp_with_time_zone_null(Leads::NextFollowUpAt),
            timestamp_with_time_zone_null(Leads::ScoredAt),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Leads::Table)
                        .add_column(column.clone())
                        .to_owned(),
                )
                .await?;
        }
        db.execute_unprepared(
            "UPDATE leads SET version = s.version, score = s.score, tier = s.tier, \
             tier_rank = s.tier_rank, priority = s.priority, flags = s.flags, \
             close_probability = s.close_probability, scoring_model_id = s.scoring_model_id, \
             model_version = s.model_version, next_follow_up_at = s.next_follow_up_at, \
             scored_at = s.scored_at \
             FROM lead_scores s WHERE s.tenant_id = leads.tenant_id AND s.lead_id = leads.id",
        )
        .await?;
        manager
            .drop_table(Table::drop().table(LeadScores::Table).to_owned())
            .await
    }
}
