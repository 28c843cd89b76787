//! `leadrank import`: a CSV of leads from the command line, with a progress
//! bar on standard error and the report on standard output; and `leadrank
//! export`, the same columns out.

use crate::tenancy::{self, Walled};
use std::io::Write as _;

use chrono::Utc;
use entity::{
    enums::{JobStatus, Role},
    tenant, user,
};
use sea_orm::{ColumnTrait, DatabaseConnection, QueryFilter, QueryOrder};

use crate::service::leads::rescore_run::{self as rescore, Options, Outcome, Trigger};
use crate::{auth::Principal, service::ingestion::import};

/// The tenant `slug` and its owner, whom the command line acts as.
async fn owner_of(
    db: &DatabaseConnection,
    slug: &str,
) -> anyhow::Result<(tenant::Model, Principal)> {
    let tenant = tenancy::tenants()
        .filter(tenant::Column::Slug.eq(slug))
        .one(db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("there is no tenant \"{slug}\""))?;
    let walled = Walled::new(db, tenant.id);
    let owner = walled
        .scope()
        .select::<user::Entity>()
        .filter(user::Column::Role.eq(Role::Owner))
        .filter(user::Column::Active.eq(true))
        .order_by_asc(user::Column::CreatedAt)
        .one(&walled)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the tenant \"{slug}\" has no active owner"))?;
    let principal = Principal {
        tenant_id: tenant.id,
        user_id: owner.id,
        role: Role::Owner,
    };
    Ok((tenant, principal))
}

/// Writes the tenant's leads matching `filter` (a GraphQL `LeadFilter` as
/// JSON, e.g. `{"status": ["WON"], "tiers": ["A"]}`) to standard output as
/// CSV in the import's columns, a page at a time; `bom` starts it with the
/// byte-order mark Excel needs for UTF-8.
///
/// # Errors
/// An unknown tenant, a filter that is not a `LeadFilter`, the database,
/// or standard output closing.
pub async fn export(
    db: &DatabaseConnection,
    slug: &str,
    filter: Option<&str>,
    bom: bool,
) -> anyhow::Result<()> {
    use async_graphql::InputType as _;
    use futures_util::StreamExt as _;

    let (_, principal) = owner_of(db, slug).await?;
    let filter = match filter {
        None => crate::graphql::leads::lead::LeadFilter::default(),
        Some(raw) => {
            let json: serde_json::Value = serde_json::from_str(raw)
                .map_err(|e| anyhow::anyhow!("--filter is not JSON: {e}"))?;
            crate::graphql::leads::lead::LeadFilter::parse(Some(async_graphql::Value::from_json(
                json,
            )?))
            .map_err(|e| {
                anyhow::anyhow!(
                    "--filter is not a LeadFilter: {}",
                    e.into_server_error(async_graphql::Pos::default()).message
                )
            })?
        }
    };
    let request = crate::service::analytics::export::ExportRequest {
        filter: filter
            .into_service()
            .map_err(|e| anyhow::anyhow!("--filter: {e}"))?,
        bom,
    };
    let mut out = std::io::stdout().lock();
    let mut chunks = std::pin::pin!(crate::service::analytics::export::stream(
        db.clone(),
        principal,
        request
    ));
    while let Some(chunk) = chunks.next().await {
        out.write_all(&chunk.map_err(|e| anyhow::anyhow!("{e}"))?)?;
    }
    out.flush()?;
    Ok(())
}

/// Imports `path` into the tenant as its owner; with closed leads, then
/// re-scores the tenant so the predictor learns from them.
///
/// # Errors
/// An unknown tenant, an unreadable file, rows refused, or the database.
#[allow(clippy::print_stdout, clippy::print_stderr)]
pub async fn import(
    db: &DatabaseConnection,
    slug: &str,
    path: &std::path::Path,
    dry_run: bool,
) -> anyhow::Result<()> {
    let (tenant, principal) = owner_of(db, slug).await?;
    let csv = std::fs::read(path)
        .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", path.display()))?;
    let started = std::time::Instant::now();
    let report = import::import(
        db,
        &principal,
        &csv,
        dry_run,
        |done, total| {
            let width = 30;
            let filled = usize::try_from(done * width / total.max(1)).unwrap_or(0);
            eprint!(
                "\r[{}{}] {done}/{total} rows",
                "#".repeat(filled),
                ".".repeat(usize::try_from(width).unwrap_or(0).saturating_sub(filled))
            );
            std::io::stderr().flush().ok();
            if done == total {
                eprintln!();
            }
        },
        Utc::now(),
    )
    .await
    .map_err(|err| anyhow::anyhow!("{err}"))?;
    let verb = if dry_run { " would be" } else { "" };
    println!(
        "{} rows: {}{verb} created, {}{verb} updated, {} unchanged, {} refused ({:.1} s)",
        report.rows,
        report.created,
        report.updated,
        report.unchanged,
        report.refused,
        started.elapsed().as_secs_f64()
    );
    if let Some(details) = report.import_run.as_ref().and_then(|r| r.details.as_ref()) {
        println!(
            "reading and scoring: {} ms; writing: {} ms (the two overlap)",
            details["prepareMs"], details["writeMs"]
        );
    }
    if !report.errors.is_empty() {
        println!("{}", import::describe(&report.errors));
    }
    let unlisted = report
        .error_count
        .saturating_sub(report.errors.len() as u64);
    if unlisted > 0 {
        println!("… and {unlisted} more problems not listed; fix these and check the file again");
    }
    if report.rescoring_run.is_some() {
        println!(
            "re-scoring the tenant so its close-probability model learns from the closed leads…"
        );
        match rescore::run(
            db,
            tenant.id,
            Trigger::Import,
            None,
            Utc::now(),
            &Options::default(),
        )
        .await?
        {
            Outcome::Busy => {
                println!("another process is re-scoring this tenant; it will pick the import up")
            }
            Outcome::Finished(run) if run.status == JobStatus::Succeeded => println!(
                "re-scored: {} leads scanned, {} changed",
                run.leads_scanned, run.leads_changed
            ),
            Outcome::Finished(run) => anyhow::bail!(
                "re-scoring after the import failed: {}",
                run.error.unwrap_or_default()
            ),
        }
    }
    if !report.errors.is_empty() {
        anyhow::bail!(
            "{} row(s) refused; see the lines above",
            report.refused.max(1)
        );
    }
    Ok(())
}
