//! `importLeads`: a CSV of leads with their history.

use async_graphql::{Context, InputObject, Object, Result, SimpleObject};
use chrono::Utc;

use crate::graphql::{RequestContext, jobs::JobRun};
use crate::{
    error::IntoGraphql,
    service::{ingestion::import, leads::rescore_run as rescore},
};

#[derive(InputObject)]
pub struct ImportLeadsInput {
    /// The file's text, header row first; see the README's import section.
    pub csv: String,
    /// Check every row and report, writing nothing.
    #[graphql(default = false)]
    pub dry_run: bool,
}

/// A problem with one row (line 1 is the header).
#[derive(SimpleObject)]
pub struct ImportError {
    pub line: i32,
    /// The column, when the problem is in one.
    pub field: Option<String>,
    pub message: String,
}

/// What an import did; for a dry run, what it would do.
#[derive(SimpleObject)]
pub struct ImportResult {
    pub created: i32,
    pub updated: i32,
    /// Rows not written: refused for the problems in `errors`, or already
    /// matching their lead.
    pub skipped: i32,
    /// Of `skipped`, the rows that already matched their lead.
    pub unchanged: i32,
    /// The first 200 problems, by line; `errorCount` counts them all.
    pub errors: Vec<ImportError>,
    /// Every problem found in the file, listed in `errors` or not.
    pub error_count: i32,
    /// The re-scoring run queued to retrain the close-probability model
    /// from imported closed leads.
    pub job_run: Option<JobRun>,
    /// The import's own run, whose counters showed its progress.
    pub import_run: Option<JobRun>,
}

fn count(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[derive(Default)]
pub struct ImportMutation;

#[Object]
impl ImportMutation {
    /// Imports leads from CSV (OWNER and ADMIN); `jobRuns` shows progress.
    async fn import_leads(
        &self,
        ctx: &Context<'_>,
        input: ImportLeadsInput,
    ) -> Result<ImportResult> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let report = import::import(
            &rc.db,
            &principal,
            input.csv.as_bytes(),
            input.dry_run,
            |_, _| {},
            Utc::now(),
        )
        .await
        .gql_at("input")?;
        if report.rescoring_run.is_some() {
            rescore::spawn_queued(rc.db.clone(), principal.tenant_id);
        }
        Ok(ImportResult {
            created: count(report.created),
            updated: count(report.updated),
            skipped: count(report.refused + report.unchanged),
            unchanged: count(report.unchanged),
            error_count: count(report.error_count),
            errors: report
                .errors
                .into_iter()
                .map(|e| ImportError {
                    line: count(e.line),
                    field: e.field,
                    message: e.message,
                })
                .collect(),
            job_run: report.rescoring_run.map(JobRun::from),
            import_run: report.import_run.map(JobRun::from),
        })
    }
}
