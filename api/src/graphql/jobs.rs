//! Background job runs: the nightly re-scoring, run now by an admin, and
//! the list of runs with their progress.

use crate::graphql::cost;
use crate::graphql::id_at;
use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::job_run;
use sea_orm::{QueryOrder, QuerySelect};

use super::RequestContext;
use crate::{
    error::{AppError, IntoGraphql},
    service::leads::rescore_run::{self as rescore, Trigger},
};

/// Where a job run is.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::enums::JobStatus")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

/// How many leads moved from one tier to another.
#[derive(SimpleObject, Clone)]
pub struct TierMove {
    pub from: String,
    pub to: String,
    pub count: i32,
}

/// One run of a background job; while it runs, its counters show progress.
#[derive(SimpleObject)]
pub struct JobRun {
    pub id: ID,
    /// `rescore`.
    pub kind: String,
    /// SCHEDULE, MANUAL, MODEL_ACTIVATION or IMPORT.
    pub trigger: String,
    pub status: JobStatus,
    /// The team whose leads it re-scored; null for the whole company.
    pub team_id: Option<ID>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub leads_scanned: i32,
    pub leads_changed: i32,
    pub tier_changes: Vec<TierMove>,
    /// Leads that turned cold in this run.
    pub newly_cold: i32,
    /// Open leads idle beyond their stage's rotting days.
    pub stale: i32,
    pub churn_risk: i32,
    /// Unowned leads the run handed to reps by the assignment rules.
    pub leads_assigned: i32,
    pub error: Option<String>,
}

impl From<job_run::Model> for JobRun {
    fn from(r: job_run::Model) -> Self {
        let count = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
        Self {
            id: ID(r.id.to_string()),
            kind: r.kind,
            trigger: r.trigger,
            status: r.status.into(),
            team_id: r.team_id.map(|t| ID(t.to_string())),
            queued_at: r.queued_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            leads_scanned: count(r.leads_scanned),
            leads_changed: count(r.leads_changed),
            tier_changes: r
                .tier_changes
                .as_array()
                .map(|moves| {
                    moves
                        .iter()
                        .filter_map(|m| {
                            Some(TierMove {
                                from: m["from"].as_str()?.to_owned(),
                                to: m["to"].as_str()?.to_owned(),
                                count: count(m["count"].as_i64()?),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
            newly_cold: r.newly_cold,
            stale: r.stale,
            churn_risk: r.churn_risk,
            leads_assigned: r
                .details
                .as_ref()
                .and_then(|d| d["leadsAssigned"].as_i64())
                .map_or(0, count),
            error: r.error,
        }
    }
}

#[derive(InputObject)]
pub struct RunRescoringInput {
    /// Only this team's leads; null for the whole company.
    pub team_id: Option<ID>,
}

#[derive(Default)]
pub struct JobQuery;

#[Object]
impl JobQuery {
    /// Job runs, newest first (OWNER, ADMIN and MANAGER).
    #[graphql(
        complexity = "cost::READ + usize::try_from(first).unwrap_or(0).max(1) * child_complexity"
    )]
    async fn job_runs(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> Result<Vec<JobRun>> {
        let (principal, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        principal
            .require_at_least(entity::enums::Role::Manager, "see job runs")
            .gql()?;
        let first = u64::try_from(first)
            .ok()
            .filter(|f| *f <= 200)
            .ok_or_else(|| AppError::invalid("first", "must be from 0 to 200"))
            .gql()?;
        Ok(scope
            .select::<job_run::Entity>()
            .order_by_desc(job_run::Column::QueuedAt)
            .order_by_desc(job_run::Column::Id)
            .limit(first)
            .all(scope.conn())
            .await
            .map_err(AppError::from)
            .gql()?
            .into_iter()
            .map(JobRun::from)
            .collect())
    }
}

#[derive(Default)]
pub struct JobMutation;

#[Object]
impl JobMutation {
    /// Runs the nightly re-scoring now (OWNER and ADMIN). Answers at once
    /// with the queued run; `jobRuns` shows its progress.
    async fn run_rescoring(&self, ctx: &Context<'_>, input: RunRescoringInput) -> Result<JobRun> {
        let rc = ctx.data::<RequestContext>()?;
        let (principal, scope) = rc.scope().gql_at("input")?;
        principal
            .require_admin("run the re-scoring job")
            .gql_at("input")?;
        let team = input
            .team_id
            .map(|t| id_at("input.teamId", &t))
            .transpose()?;
        if let Some(team) = team {
            scope
                .get::<entity::team::Entity>(team)
                .await
                .gql_at("input")?;
        }
        let run = rescore::enqueue(
            &rc.db,
            principal.tenant_id,
            Trigger::Manual,
            team,
            Some(principal.user_id),
            Utc::now(),
        )
        .await
        .gql_at("input")?;
        rescore::spawn_queued(rc.db.clone(), principal.tenant_id);
        Ok(run.into())
    }
}
