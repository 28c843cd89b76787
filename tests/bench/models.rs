//! `model-bench`: times a scoring model's preview and activation over a
//! tenant's open leads, through the same service calls as the GraphQL
//! mutations.
//!
//! ```text
//! DATABASE_URL=… cargo run --release -- demo --tenant demo --leads 100000
//! DATABASE_URL=… cargo run --release -p tests --bin model-bench -- --tenant demo
//! ```
//!
//! It drafts the `saas` template as the tenant default, previews it five
//! times (median and each run), activates it with every lead re-scored
//! before the call returns, then rolls back to the version that was active
//! and times that too, leaving the tenant as it found it.

#![allow(clippy::print_stdout)]
// The benchmark reads its tenant straight from the database.
#![allow(clippy::disallowed_methods)]
// The schema's merged query and mutation types nest deeper than the
// compiler's default limit when their futures are laid out.
#![recursion_limit = "256"]

use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use entity::{
    enums::{ModelStatus, Role},
    scoring_model, tenant, user,
};
use leadrank::{
    auth::Principal,
    config::Settings,
    db,
    service::configuration::scoring_models::{self, DraftSpec},
    tenancy::Walled,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut slug = "demo".to_owned();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tenant" => slug = args.next().context("--tenant needs a slug")?,
            other => anyhow::bail!("unknown argument {other}; use --tenant SLUG"),
        }
    }
    let settings = Settings::from_env()?;
    let conn = db::connect_system(&settings).await?;
    db::migrate(&conn).await?;
    let tenant = tenant::Entity::find()
        .filter(tenant::Column::Slug.eq(&slug))
        .one(&conn)
        .await?
        .with_context(|| {
            format!("no tenant \"{slug}\"; load it with `leadrank demo --tenant {slug}`")
        })?;
    let owner = user::Entity::find()
        .filter(user::Column::TenantId.eq(tenant.id))
        .filter(user::Column::Role.eq(Role::Owner))
        .one(&conn)
        .await?
        .context("the tenant has no owner")?;
    let principal = Principal {
        tenant_id: tenant.id,
        user_id: owner.id,
        role: Role::Owner,
    };
    let walled = Walled::new(&conn, tenant.id);
    let scope = walled.scope();
    let was_active = scoring_model::Entity::find()
        .filter(scoring_model::Column::TenantId.eq(tenant.id))
        .filter(scoring_model::Column::TeamId.is_null())
        .filter(scoring_model::Column::Status.eq(ModelStatus::Active))
        .order_by_desc(scoring_model::Column::Version)
        .one(&conn)
        .await?
        .context("the tenant has no active default model")?;

    let draft = scoring_models::create_draft(
        &conn,
        &principal,
        DraftSpec {
            team_id: None,
            name: "model-bench: saas".into(),
            template: Some("saas".into()),
            copy_active: false,
            dimensions: None,
            tiers: None,
            overrides: None,
        },
        Utc::now(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;

    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let started = Instant::now();
        let preview = scoring_models::preview(&scope, &principal, draft.id, Utc::now())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        times.push(started.elapsed().as_secs_f64());
        last = Some(preview);
    }
    let preview = last.context("five previews ran")?;
    let moved: usize = preview
        .comparison
        .tier_moves
        .iter()
        .filter(|m| m.from != m.to)
        .map(|m| m.count)
        .sum();
    println!(
        "preview: {} open leads, {} change tier, {} closed leads judged (last run: open leads {} ms, closed leads {} ms)",
        preview.comparison.leads_evaluated,
        moved,
        preview.closed.map_or(0, |c| c.0),
        preview.open_ms,
        preview.closed_ms,
    );
    println!(
        "preview: median {:.3} s (runs: {})",
        median(&mut times.clone()),
        times
            .iter()
            .map(|t| format!("{t:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    for (what, id) in [("activation", draft.id), ("rollback", was_active.id)] {
        let started = Instant::now();
        let activated = scoring_models::activate(&conn, &principal, id, u64::MAX, Utc::now())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let secs = started.elapsed().as_secs_f64();
        let run = leadrank::jobs::rescore::latest_run(&conn, tenant.id).await?;
        println!(
            "{what}: {secs:.2} s, version {} active; re-scoring run {}: {} scanned, {} written{}",
            activated.model.version,
            run.as_ref()
                .map_or("none".into(), |r| format!("{:?}", r.status)),
            run.as_ref().map_or(0, |r| r.leads_scanned),
            run.as_ref().map_or(0, |r| r.leads_changed),
            run.as_ref()
                .and_then(|r| r.details.as_ref())
                .map_or(String::new(), |d| format!(" ({d})")),
        );
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}
