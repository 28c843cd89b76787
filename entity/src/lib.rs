//! sea-orm entities: the shapes of LeadRank's tables and nothing else.
//! Behaviour lives in the `api` crate's services; every query there goes
//! through its tenant scope.

pub mod enums;
pub mod ids;

pub use ids::{LeadId, PipelineId, ScoringModelId, StageId, TeamId, UserId};

pub mod activity;
pub mod api_key;
pub mod assignment_rule;
pub mod audit_entry;
pub mod change_notice;
pub mod ingestion_key;
pub mod job_lease;
pub mod job_run;
pub mod lead;
pub mod lead_event;
pub mod lead_facts;
pub mod lead_field;
pub mod lead_score;
pub mod login_failure;
pub mod pipeline;
pub mod pool_rule;
pub mod predictor_model;
pub mod refresh_session;
pub mod score_event;
pub mod scoring_model;
pub mod signal_type;
pub mod stage;
pub mod team;
pub mod team_member;
pub mod tenant;
pub mod user;
pub mod webhook_delivery;
pub mod webhook_endpoint;
