//! The nightly re-scoring job, run at chosen times (the clock is passed in,
//! never slept on): decay and flags, one run at a time, resuming from a
//! checkpoint, mutations winning over the job, failures kept per tenant,
//! and retraining.

use std::sync::Arc;

use chrono::{Duration, Utc};
use entity::{enums::JobStatus, job_run, lead, score_event};
use leadrank::jobs::{
    rescore::{self, Options, Outcome, Trigger},
    scheduler,
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Statement};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::{
    hardening::assert_healthy,
    helpers::{Id, TestApp, spawn_app},
    helpers::{strong, weak},
};

fn uuid(id: &str) -> Uuid {
    id.parse().expect("a lead id")
}

async fn finished(outcome: Outcome) -> job_run::Model {
    match outcome {
        Outcome::Finished(run) => *run,
        Outcome::Busy => panic!("the run found the lease taken"),
    }
}

impl TestApp {
    async fn rescore_at(
        &self,
        tenant: &str,
        at: chrono::DateTime<Utc>,
        options: &Options,
    ) -> job_run::Model {
        let outcome = rescore::run(
            &self.db,
            tenant.parse().expect("a tenant id"),
            Trigger::Manual,
            None,
            at,
            options,
        )
        .await
        .expect("the run is recorded");
        finished(outcome).await
    }

    async fn events_of_run(&self, run: Uuid) -> Vec<score_event::Model> {
        score_event::Entity::find()
            .filter(score_event::Column::JobRunId.eq(run))
            .all(&self.system_db)
            .await
            .expect("score events")
    }
}

#[tokio::test]
async fn a_lead_quiet_for_weeks_decays_into_a_cold_stale_lower_tier_on_the_nightly_run() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let lead = app
        .new_lead(
            &t.token,
            json!({"name": "Hot", "attributes": weak(), "ownerId": t.owner_id}),
        )
        .await;
    let id = lead.id;
    let hot = app
        .record(&t.token, &id, "urgent_quote_request", json!({}))
        .await;
    assert_eq!(hot.tier, "A");

    // Today nothing has moved enough to be written.
    let today = app.rescore_at(&t.id, Utc::now(), &Options::default()).await;
    assert_eq!(today.status, JobStatus::Succeeded, "{today:?}");
    assert_eq!((today.leads_scanned, today.leads_changed), (1, 0));

    let later = Utc::now() + Duration::days(20);
    let run = app.rescore_at(&t.id, later, &Options::default()).await;
    assert_eq!(run.status, JobStatus::Succeeded, "{run:?}");
    assert_eq!((run.leads_scanned, run.leads_changed), (1, 1));
    assert_eq!(run.newly_cold, 1);
    assert_eq!(
        run.stale, 1,
        "20 days in the first stage, which rots after 14"
    );

    let after = app.lead_by_id(&t.token, &id).await;
    assert_ne!(after.tier, "A", "{after:?}");
    assert!(after.score < hot.score);
    assert!(
        after.has_flag("COLD") && after.has_flag("STALE"),
        "{after:?}"
    );
    assert!(!after.has_flag("URGENT"));

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Run {
        status: String,
        trigger: String,
        leads_scanned: i64,
        leads_changed: i64,
        newly_cold: i64,
        tier_changes: Vec<TierChange>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TierChange {
        from: String,
        to: String,
        count: i64,
    }
    let runs: Vec<Run> = app
        .root(
            Some(&t.token),
            "{ jobRuns { status trigger leadsScanned leadsChanged newlyCold tierChanges { from to count } } }",
            json!({}),
        )
        .await;
    let newest = &runs[0];
    assert_eq!(newest.status, "SUCCEEDED", "{runs:?}");
    assert_eq!(newest.trigger, "MANUAL", "{runs:?}");
    assert_eq!(
        (
            newest.leads_scanned,
            newest.leads_changed,
            newest.newly_cold
        ),
        (1, 1, 1),
        "{runs:?}"
    );
    assert_eq!(newest.tier_changes[0].from, "A");
    assert_eq!(newest.tier_changes[0].to, after.tier);
    assert_eq!(newest.tier_changes[0].count, 1);
    let events = app.events_of_run(run.id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, "nightly re-scoring");
}

#[tokio::test]
async fn a_second_runner_finds_the_tenant_busy_while_the_first_holds_the_lease() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    for i in 0..5 {
        app.new_lead(&t.token, json!({"name": format!("L{i}")}))
            .await;
    }
    let tenant: Uuid = t.id.parse().expect("id");
    let at = Utc::now() + Duration::days(3);
    // The first runner stops mid-run, holding the lease, while a second
    // one starts: it must find the tenant busy, and one run is recorded.
    let pause = Arc::new((tokio::sync::Barrier::new(2), tokio::sync::Barrier::new(2)));
    let one = Options {
        holder: "one".into(),
        pause_before_first_write: Some(Arc::clone(&pause)),
        ..Options::default()
    };
    let two = Options {
        holder: "two".into(),
        ..Options::default()
    };
    let db = app.db.clone();
    let first =
        tokio::spawn(
            async move { rescore::run(&db, tenant, Trigger::Schedule, None, at, &one).await },
        );
    pause.0.wait().await;
    let second = rescore::run(&app.db, tenant, Trigger::Schedule, None, at, &two)
        .await
        .expect("recorded");
    assert!(matches!(second, Outcome::Busy), "{second:?}");
    pause.1.wait().await;
    let run = finished(first.await.expect("the first runner").expect("recorded")).await;
    assert_eq!(run.status, JobStatus::Succeeded);
    assert_eq!(run.leads_scanned, 5);
    let runs = job_run::Entity::find()
        .filter(job_run::Column::TenantId.eq(tenant))
        .count(&app.system_db)
        .await
        .expect("count");
    assert_eq!(runs, 1);

    // Once the lease is released, the next runner may go.
    let later = rescore::run(&app.db, tenant, Trigger::Schedule, None, at, &two)
        .await
        .expect("recorded");
    assert!(matches!(later, Outcome::Finished(_)));
}

#[tokio::test]
async fn a_run_killed_after_its_first_batch_resumes_from_its_checkpoint() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let lead = app
            .new_lead(
                &t.token,
                json!({"name": format!("L{i}"), "attributes": weak(), "ownerId": t.owner_id}),
            )
            .await;
        app.record(&t.token, &lead.id, "meeting_request", json!({}))
            .await;
        ids.push(uuid(&lead.id));
    }
    let first_try = Utc::now() + Duration::days(10);
    let dying = Options {
        batch_size: Some(2),
        crash_after_batches: Some(1),
        ..Options::default()
    };
    let crashed = app.rescore_at(&t.id, first_try, &dying).await;
    assert_eq!(
        crashed.status,
        JobStatus::Running,
        "left as a dead process leaves it"
    );
    assert_eq!(crashed.leads_scanned, 2);
    assert!(crashed.checkpoint.is_some());

    // Before the lease expires nobody else may run; after, the run resumes.
    let busy = rescore::run(
        &app.db,
        t.id.parse().expect("id"),
        Trigger::Manual,
        None,
        first_try,
        &Options {
            holder: "other".into(),
            ..Options::default()
        },
    )
    .await
    .expect("recorded");
    assert!(matches!(busy, Outcome::Busy));
    let resumed_at = first_try + Duration::minutes(5);
    let resumed = app
        .rescore_at(
            &t.id,
            resumed_at,
            &Options {
                batch_size: Some(2),
                holder: "other".into(),
                ..Options::default()
            },
        )
        .await;
    assert_eq!(resumed.id, crashed.id, "the same run carries on");
    assert_eq!(resumed.status, JobStatus::Succeeded);
    assert_eq!(
        resumed.leads_scanned, 5,
        "each lead once: 2 before the crash, 3 after"
    );

    let events = app.events_of_run(resumed.id).await;
    let mut leads: Vec<Uuid> = events.iter().map(|e| e.lead_id.uuid()).collect();
    leads.sort();
    leads.dedup();
    assert_eq!(
        leads.len(),
        events.len(),
        "no lead has two events from one run"
    );
    assert_eq!(leads.len(), 5, "every lead dropped from A once");

    // Running the same night again writes nothing more.
    let again = app.rescore_at(&t.id, resumed_at, &Options::default()).await;
    assert_eq!(again.leads_changed, 0);
    assert!(app.events_of_run(again.id).await.is_empty());
}

#[tokio::test]
async fn a_mutation_during_the_run_is_not_overwritten() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let a = app
        .new_lead(&t.token, json!({"name": "A", "attributes": weak()}))
        .await;
    let b = app
        .new_lead(&t.token, json!({"name": "B", "attributes": weak()}))
        .await;
    let pause = Arc::new((tokio::sync::Barrier::new(2), tokio::sync::Barrier::new(2)));
    let options = Options {
        pause_before_first_write: Some(Arc::clone(&pause)),
        ..Options::default()
    };
    let db = app.db.clone();
    let tenant: Uuid = t.id.parse().expect("id");
    let later = Utc::now() + Duration::days(30);
    let job = tokio::spawn(async move {
        rescore::run(&db, tenant, Trigger::Manual, None, later, &options).await
    });

    pause.0.wait().await;
    let mutated = app
        .record(&t.token, &a.id, "urgent_quote_request", json!({}))
        .await;
    pause.1.wait().await;
    let run = finished(job.await.expect("the job task").expect("recorded")).await;
    assert_eq!(run.status, JobStatus::Succeeded);

    let a_now = app.lead_by_id(&t.token, &a.id).await;
    assert_eq!(a_now.score, mutated.score, "the mutation's score stands");
    assert_eq!(a_now.tier, "A");
    assert_eq!(a_now.version, mutated.version);
    let b_row = lead::Entity::find()
        .filter(lead::Column::Id.eq(uuid(&b.id)))
        .one(&app.system_db)
        .await
        .expect("query")
        .expect("lead b");
    assert_eq!(
        b_row.scored_at.map(|s| s.timestamp()),
        Some(later.timestamp()),
        "B was re-scored by the job"
    );
    assert_eq!(run.leads_changed, 1);
}

#[tokio::test]
async fn one_tenants_failure_does_not_stop_the_others() {
    let app = spawn_app().await;
    let good = app.sign_up_tenant("good").await;
    let bad = app.sign_up_tenant("bad").await;
    for t in [&good, &bad] {
        app.new_lead(&t.token, json!({"name": "L", "attributes": strong()}))
            .await;
    }
    // Break the bad tenant's model so that scoring it fails.
    app.system_db
        .execute_raw(Statement::from_sql_and_values(
            app.db.get_database_backend(),
            match app.db.get_database_backend() {
                sea_orm::DbBackend::Postgres => {
                    "UPDATE scoring_models SET config = '{\"dimensions\": 5}' WHERE tenant_id = $1"
                }
                _ => "UPDATE scoring_models SET config = '{\"dimensions\": 5}' WHERE tenant_id = ?",
            },
            [bad.id.parse::<Uuid>().expect("id").into()],
        ))
        .await
        .expect("the model is broken");
    let tenants = entity::tenant::Entity::find()
        .all(&app.system_db)
        .await
        .expect("tenants");
    let outcomes = scheduler::run_tenants(
        &app.db,
        tenants,
        Trigger::Schedule,
        Utc::now(),
        2,
        &Options::default(),
    )
    .await
    .expect("both run");
    let mut by_tenant = std::collections::HashMap::new();
    for outcome in outcomes {
        let run = finished(outcome).await;
        by_tenant.insert(run.tenant_id.to_string(), run);
    }
    assert_eq!(by_tenant[&good.id].status, JobStatus::Succeeded);
    assert_eq!(by_tenant[&bad.id].status, JobStatus::Failed);
    assert!(
        by_tenant[&bad.id]
            .error
            .as_deref()
            .is_some_and(|e| !e.is_empty())
    );
}

#[tokio::test]
async fn retraining_moves_close_probability_the_way_the_history_says() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    for i in 0..12 {
        for (attributes, outcome) in [(strong(), "WON"), (weak(), "LOST")] {
            let lead = app
                .new_lead(
                    &t.token,
                    json!({"name": format!("{outcome} {i}"), "attributes": attributes}),
                )
                .await;
            let closed = app
                .lead_mutation(
                    &t.token,
                    "closeLead",
                    "CloseLeadInput",
                    json!({"id": lead.id, "outcome": outcome}),
                )
                .await
                .unwrap_or_else(|e| panic!("closeLead failed: {e}"));
            assert_eq!(closed.status, outcome, "{closed:?}");
        }
    }
    let likely = app
        .new_lead(&t.token, json!({"name": "Likely", "attributes": strong()}))
        .await;
    let unlikely = app
        .new_lead(&t.token, json!({"name": "Unlikely", "attributes": weak()}))
        .await;
    assert!(likely.close_probability.is_none());

    let run = app.rescore_at(&t.id, Utc::now(), &Options::default()).await;
    assert_eq!(run.status, JobStatus::Succeeded, "{run:?}");
    let p = |lead: &crate::helpers::Lead| {
        let app = &app;
        let token = t.token.clone();
        let id = lead.id.clone();
        async move {
            let lead = app.lead_by_id(&token, &id).await;
            lead.close_probability
                .unwrap_or_else(|| panic!("no close probability: {lead:?}"))
        }
    };
    let (high, low) = (p(&likely).await, p(&unlikely).await);
    assert!(high > low + 0.2, "strong {high} vs weak {low}");

    // Between trainings, a change re-predicts at once with the trained model.
    let improved = app
        .lead_mutation(
            &t.token,
            "updateLead",
            "UpdateLeadInput",
            json!({"id": unlikely.id, "expectedVersion": 1, "attributes": strong()}),
        )
        .await
        .unwrap_or_else(|e| panic!("updateLead failed: {e}"));
    let now = improved
        .close_probability
        .unwrap_or_else(|| panic!("no close probability: {improved:?}"));
    assert!(
        (now - high).abs() < 1e-9,
        "the same facts, the same probability: {now} vs {high}"
    );
}

#[tokio::test]
async fn an_admin_watches_a_job_they_started_finish() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    app.new_lead(&t.token, json!({"name": "L"})).await;
    let rep = app.user_with_role(&t, "REP").await;
    let refused = app
        .refused(
            Some(&rep),
            "mutation { runRescoring(input: {}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(refused.code(), "FORBIDDEN");

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Started {
        id: String,
        status: String,
        trigger: String,
    }
    let run: Started = app
        .root(
            Some(&t.token),
            "mutation { runRescoring(input: {}) { id status trigger } }",
            json!({}),
        )
        .await;
    assert_eq!(run.trigger, "MANUAL", "{run:?}");
    assert!(
        matches!(run.status.as_str(), "QUEUED" | "RUNNING" | "SUCCEEDED"),
        "{run:?}"
    );
    let finished = app.finished_run(&t.token, &run.id).await;
    assert_eq!(finished.status, "SUCCEEDED", "{finished:?}");
    assert_eq!(finished.leads_scanned, 1, "{finished:?}");

    // Another company sees none of it.
    let other = app.sign_up_tenant("globex").await;
    let theirs: Vec<Id> = app
        .root(Some(&other.token), "{ jobRuns { id } }", json!({}))
        .await;
    assert!(theirs.is_empty(), "{theirs:?}");
}

#[tokio::test]
async fn a_customer_replying_less_than_before_is_flagged_as_a_churn_risk() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let lead = app
        .new_lead(
            &t.token,
            json!({"name": "Fading", "attributes": strong(), "ownerId": t.owner_id, "createdAt": crate::helpers::days_ago(90)}),
        )
        .await;
    let id = lead.id;
    for days in [35, 40, 45, 50] {
        app.record(
            &t.token,
            &id,
            "inbound_inquiry",
            json!({"occurredAt": crate::helpers::days_ago(days)}),
        )
        .await;
    }
    // Busy the month before last, quiet since: flagged, and counted by the job.
    let run = app.rescore_at(&t.id, Utc::now(), &Options::default()).await;
    assert_eq!(run.status, JobStatus::Succeeded);
    assert_eq!(run.churn_risk, 1, "{run:?}");
    let after = app.lead_by_id(&t.token, &id).await;
    assert!(after.has_flag("CHURN_RISK"), "{after:?}");
}

/// A clock the test moves by hand, shared by every runner of a test.
#[derive(Clone)]
struct HandClock(Arc<std::sync::atomic::AtomicI64>);

impl HandClock {
    fn at(start: chrono::DateTime<Utc>) -> Self {
        Self(Arc::new(std::sync::atomic::AtomicI64::new(
            start.timestamp(),
        )))
    }

    fn advance(&self, by: Duration) {
        self.0
            .fetch_add(by.num_seconds(), std::sync::atomic::Ordering::SeqCst);
    }

    fn clock(&self) -> leadrank::jobs::lease::Clock {
        let secs = Arc::clone(&self.0);
        leadrank::jobs::lease::Clock::injected(move || {
            chrono::DateTime::from_timestamp(secs.load(std::sync::atomic::Ordering::SeqCst), 0)
                .unwrap_or_default()
        })
    }
}

/// Six leads that each drop a tier ten days on: every one is written by
/// the job, once, with one score event.
async fn six_leads_that_decay(app: &TestApp, t: &crate::helpers::Tenant) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in 0..6 {
        let lead = app
            .new_lead(
                &t.token,
                json!({"name": format!("L{i}"), "attributes": weak(), "ownerId": t.owner_id}),
            )
            .await;
        app.record(&t.token, &lead.id, "meeting_request", json!({}))
            .await;
        ids.push(uuid(&lead.id));
    }
    ids
}

impl TestApp {
    /// The tenant's runs as `jobRuns` lists them over HTTP: (status, leadsScanned).
    async fn listed_runs(&self, token: &str) -> Vec<(String, i64)> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Listed {
            status: String,
            leads_scanned: i64,
        }
        let runs: Vec<Listed> = self
            .root(
                Some(token),
                "{ jobRuns(first: 50) { status leadsScanned } }",
                json!({}),
            )
            .await;
        runs.into_iter()
            .map(|r| (r.status, r.leads_scanned))
            .collect()
    }
}

/// Each lead of `ids` has exactly one score event from `run`.
async fn each_announced_once(app: &TestApp, run: Uuid, ids: &[Uuid]) {
    let events = app.events_of_run(run).await;
    let mut leads: Vec<Uuid> = events.iter().map(|e| e.lead_id.uuid()).collect();
    leads.sort();
    let mut expected = ids.to_vec();
    expected.sort();
    assert_eq!(leads, expected, "each lead announced exactly once");
}

#[tokio::test]
async fn a_run_longer_than_its_lease_keeps_it_so_no_second_run_starts() {
    // Issue 17, item 6: heartbeats renewed from the run's start, so the
    // lease lapsed 120 s in however alive the run was, and a second copy
    // resumed the live run: leads announced twice, the run FAILED.
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let ids = six_leads_that_decay(&app, &t).await;
    let tenant: Uuid = t.id.parse().expect("id");
    let at = Utc::now() + Duration::days(10);
    let hand = HandClock::at(at);
    let pause = Arc::new((tokio::sync::Barrier::new(2), tokio::sync::Barrier::new(2)));
    let first = Options {
        batch_size: Some(2),
        clock: Some(hand.clock()),
        pause_after_each_batch: Some(Arc::clone(&pause)),
        ..Options::default()
    };
    // The same process name: two runs of one process are told apart too.
    let second = Options {
        clock: Some(hand.clock()),
        ..Options::default()
    };
    let db = app.db.clone();
    let running = tokio::spawn(async move {
        rescore::run(&db, tenant, Trigger::Schedule, None, at, &first).await
    });

    // Three batches, 100 s apart by the clock: 300 s in all, longer than
    // the 120 s lease, each heartbeat well within it.
    for _ in 0..3 {
        pause.0.wait().await;
        hand.advance(Duration::seconds(100));
        let other = rescore::run(&app.db, tenant, Trigger::Schedule, None, at, &second)
            .await
            .expect("recorded");
        assert!(
            matches!(other, Outcome::Busy),
            "a live run's lease was taken: {other:?}"
        );
        assert_healthy(&app).await;
        pause.1.wait().await;
    }
    let run = finished(running.await.expect("the runner").expect("recorded")).await;

    assert_eq!(run.status, JobStatus::Succeeded, "{run:?}");
    assert_eq!(run.leads_scanned, 6);
    assert_eq!(
        app.listed_runs(&t.token).await,
        vec![("SUCCEEDED".to_owned(), 6)]
    );
    each_announced_once(&app, run.id, &ids).await;
    assert_healthy(&app).await;
}

#[tokio::test]
async fn a_run_that_lost_its_lease_commits_nothing_more() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let ids = six_leads_that_decay(&app, &t).await;
    let tenant: Uuid = t.id.parse().expect("id");
    let at = Utc::now() + Duration::days(10);
    let hand = HandClock::at(at);
    let pause = Arc::new((tokio::sync::Barrier::new(2), tokio::sync::Barrier::new(2)));
    let stalling = Options {
        batch_size: Some(2),
        clock: Some(hand.clock()),
        pause_after_each_batch: Some(Arc::clone(&pause)),
        ..Options::default()
    };
    let db = app.db.clone();
    let stalled = tokio::spawn(async move {
        rescore::run(&db, tenant, Trigger::Schedule, None, at, &stalling).await
    });

    // The first run stalls after its first batch for longer than the
    // lease, holding its next batch scored; a second run takes the lease,
    // resumes from the checkpoint and finishes the run.
    pause.0.wait().await;
    hand.advance(Duration::minutes(5));
    let taker = Options {
        batch_size: Some(2),
        clock: Some(hand.clock()),
        ..Options::default()
    };
    let resumed = app.rescore_at(&t.id, at, &taker).await;
    assert_eq!(resumed.status, JobStatus::Succeeded, "{resumed:?}");
    assert_eq!(resumed.leads_scanned, 6, "2 before the stall, 4 after");

    // The stalled run wakes up: its next write is fenced off, and it
    // neither marks the run FAILED nor announces anything again.
    pause.1.wait().await;
    let woke = finished(
        stalled
            .await
            .expect("the stalled runner")
            .expect("recorded"),
    )
    .await;
    assert_eq!(woke.id, resumed.id, "the same run, carried on by the other");
    assert_eq!(woke.status, JobStatus::Succeeded, "{woke:?}");
    assert_eq!(woke.leads_scanned, 6);
    assert_eq!(
        app.listed_runs(&t.token).await,
        vec![("SUCCEEDED".to_owned(), 6)]
    );
    each_announced_once(&app, resumed.id, &ids).await;
    assert_healthy(&app).await;
}
