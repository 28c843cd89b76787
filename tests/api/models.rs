//! Scoring model versions as an admin manages them: drafts from the active
//! model, a template or explicit parts, a preview of what activating one
//! would do, activation and rollback re-scoring the leads (in the request or
//! through the job), team models beside the tenant default, who may do what,
//! the audit trail, and the analytics that judge a model.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    helpers::{AuditEntry, Connection, GraphqlErrors, Id, TestApp, spawn_app, spawn_app_with},
    helpers::{strong, weak},
};

#[tokio::test]
async fn a_draft_takes_the_next_version_whatever_it_starts_from() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let active = active_model(&app, &t.token, None).await;
    assert_eq!(active.version, 1, "{active:?}");
    assert_eq!(active.status, "ACTIVE");

    let copy = draft(&app, &t.token, json!({"name": "Copy", "copyActive": true})).await;
    assert_eq!(copy.version, 2);
    assert_eq!(copy.status, "DRAFT");
    assert_eq!(copy.name, "Copy");
    assert!(copy.team.is_none(), "the tenant default: {copy:?}");
    assert!(copy.activated_at.is_none());
    assert!(!copy.created_at.is_empty());
    assert_eq!(
        copy.dimensions, active.dimensions,
        "dimensions copied from the active model"
    );
    assert_eq!(
        copy.tiers, active.tiers,
        "tiers copied from the active model"
    );
    assert_eq!(
        copy.overrides, active.overrides,
        "overrides copied from the active model"
    );

    let saas = draft(&app, &t.token, json!({"name": "SaaS", "template": "saas"})).await;
    assert_eq!(saas.version, 3);
    assert_eq!(
        dimension_keys(&saas),
        [
            "trial_activity",
            "decision_makers",
            "budget",
            "close_probability",
            "industry_position",
            "stage_progress"
        ]
    );
    assert_eq!(tier_keys(&saas), ["A", "B", "C", "D"]);

    // Parts given explicitly replace the base's; the rest comes from it.
    let retiered = draft(
        &app,
        &t.token,
        json!({"name": "Three tiers", "template": "general",
               "tiers": tiers(&[("A", 90.0), ("B", 60.0), ("C", 0.0)])}),
    )
    .await;
    assert_eq!(retiered.version, 4);
    assert_eq!(
        dimension_keys(&retiered),
        [
            "industry_position",
            "activity",
            "recent_interactions",
            "budget",
            "decision_chain",
            "close_probability",
            "stage_progress"
        ]
    );
    let thresholds: Vec<f64> = retiered.tiers.iter().map(|t| t.min_score).collect();
    assert_eq!(thresholds, [90.0, 60.0, 0.0]);

    let explicit = draft(
        &app,
        &t.token,
        json!({"name": "Budget first",
               "dimensions": [rating("budget", 70.0), rating("need", 30.0)],
               "tiers": tiers(&[("A", 80.0), ("B", 50.0), ("C", 0.0)])}),
    )
    .await;
    assert_eq!(explicit.version, 5);
    let budget = &explicit.dimensions[0];
    assert_eq!(budget.key, "budget");
    assert_eq!(budget.kind, "RATING");
    assert_eq!(budget.weight, 70.0);
    assert_eq!(budget.params, json!({"field": "budget"}));
    assert_eq!(explicit.tiers[2].follow_up_every_days, 14.0);
    assert!(explicit.overrides.is_empty(), "no base, no overrides");

    let listed = models(&app, &t.token, None).await;
    assert_eq!(
        statuses(&listed),
        [
            (5, "DRAFT"),
            (4, "DRAFT"),
            (3, "DRAFT"),
            (2, "DRAFT"),
            (1, "ACTIVE")
        ],
        "newest first"
    );
    assert_eq!(
        active_model(&app, &t.token, None).await.id,
        active.id,
        "a draft changes nothing until it is activated"
    );
}

#[tokio::test]
async fn a_team_with_its_own_model_scores_its_leads_differently_from_the_tenant_default() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let team = app.new_team(&t.token, "Enterprise").await;
    let default = active_model(&app, &t.token, None).await;
    let inside = app
        .new_lead(
            &t.token,
            json!({"name": "Inside", "attributes": strong(), "teamId": team}),
        )
        .await;
    let outside = app
        .new_lead(&t.token, json!({"name": "Outside", "attributes": strong()}))
        .await;
    assert!(
        (inside.score - outside.score).abs() < 1e-9,
        "one model scores both so far"
    );

    let own = draft(
        &app,
        &t.token,
        json!({"teamId": team, "name": "Enterprise model", "copyActive": true,
               "dimensions": [rating("budget", 60.0), rating("need", 40.0)]}),
    )
    .await;
    assert_eq!(own.version, 1, "the team's first version: {own:?}");
    assert_eq!(
        own.team.as_ref().map(|t| t.id.as_str()),
        Some(team.as_str())
    );
    assert_eq!(
        own.tiers, default.tiers,
        "a team without a model of its own copies the tenant default"
    );
    let payload = activate(&app, &t.token, &own.id).await;
    assert_eq!(payload.model.status, "ACTIVE");
    assert!(payload.model.activated_at.is_some(), "{payload:?}");
    assert!(
        payload.job_run.is_none(),
        "one lead is re-scored in the request: {payload:?}"
    );

    let inside_now = scored(&app, &t.token, &inside.id).await;
    assert_eq!(inside_now.score_breakdown.model_id, own.id);
    assert_eq!(inside_now.score_breakdown.model_version, 1);
    assert_eq!(
        contribution_keys(&inside_now),
        ["budget", "need"],
        "{inside_now:?}"
    );
    assert!(
        (inside_now.score - 100.0).abs() < 1e-9,
        "budget and need rated 5 earn every point: {inside_now:?}"
    );
    assert_eq!(inside_now.tier, "A");

    let outside_now = scored(&app, &t.token, &outside.id).await;
    assert_eq!(outside_now.score_breakdown.model_id, default.id);
    assert!(
        (outside_now.score - outside.score).abs() < 1e-9,
        "the lead outside the team keeps its score: {outside_now:?}"
    );
    assert!((inside_now.score - outside_now.score).abs() > 1.0);

    // A new lead of the team is scored by the team's model at once.
    let later = app
        .new_lead(
            &t.token,
            json!({"name": "Later", "attributes": {"budget": 3, "need": 5}, "teamId": team}),
        )
        .await;
    let later = scored(&app, &t.token, &later.id).await;
    assert_eq!(later.score_breakdown.model_id, own.id);
    assert!((later.score - 70.0).abs() < 1e-9, "30 + 40: {later:?}");

    let theirs = models(&app, &t.token, Some(&team)).await;
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!(theirs[0].id, own.id);
    assert_eq!(theirs[0].status, "ACTIVE");
    let tenant_wide = models(&app, &t.token, None).await;
    assert_eq!(tenant_wide.len(), 1, "{tenant_wide:?}");
    assert_eq!(tenant_wide[0].id, default.id);
    assert_eq!(tenant_wide[0].status, "ACTIVE");
    assert_eq!(active_model(&app, &t.token, Some(&team)).await.id, own.id);
    assert_eq!(active_model(&app, &t.token, None).await.id, default.id);

    // The team's tier counts use the team's model.
    let counts = tier_distribution(&app, &t.token, Some(&team))
        .await
        .unwrap_or_else(|e| panic!("tierDistribution failed: {e}"));
    assert_eq!(
        counts,
        expected_distribution(&own, &[&inside_now.tier, &later.tier])
    );

    // A tenant default draft previews the leads outside the team; a team
    // draft the team's, starting from the team's own model.
    let next_default = draft(
        &app,
        &t.token,
        json!({"name": "Next default", "copyActive": true}),
    )
    .await;
    assert_eq!(next_default.version, 2);
    assert_eq!(next_default.dimensions, default.dimensions);
    let p = previewed(&app, &t.token, &next_default.id).await;
    assert_eq!(p.leads_evaluated, 1, "{p:?}");
    let next_team = draft(
        &app,
        &t.token,
        json!({"teamId": team, "name": "Enterprise v2", "copyActive": true}),
    )
    .await;
    assert_eq!(next_team.version, 2);
    assert_eq!(next_team.dimensions, own.dimensions);
    let p = previewed(&app, &t.token, &next_team.id).await;
    assert_eq!(p.leads_evaluated, 2, "{p:?}");
}

#[tokio::test]
async fn the_preview_reports_the_tier_moves_that_activation_then_produces() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let profiles = [
        strong(),
        weak(),
        rated(4),
        rated(3),
        rated(2),
        json!({"budget": 5, "authority": 1, "need": 1, "timeline": 1}),
        json!({"budget": 1, "authority": 5, "need": 5, "timeline": 5}),
        json!({}),
    ];
    let mut before: BTreeMap<String, (f64, String)> = BTreeMap::new();
    for (i, attributes) in profiles.into_iter().enumerate() {
        let lead = app
            .new_lead(
                &t.token,
                json!({"name": format!("Lead {i}"), "attributes": attributes}),
            )
            .await;
        before.insert(lead.id, (lead.score, lead.tier));
    }
    // A closed lead is not re-scored, but the preview judges it.
    let won = app
        .new_lead(&t.token, json!({"name": "Won", "attributes": strong()}))
        .await;
    close(&app, &t.token, &won.id, "WON").await;

    let candidate = draft(
        &app,
        &t.token,
        json!({"name": "Stricter", "copyActive": true,
               "dimensions": [rating("budget", 40.0), rating("authority", 20.0),
                              rating("need", 20.0), rating("timeline", 20.0)],
               "tiers": tiers(&[("A", 95.0), ("B", 70.0), ("C", 0.0)])}),
    )
    .await;
    let p = previewed(&app, &t.token, &candidate.id).await;
    assert_eq!(p.leads_evaluated, 8, "the open leads: {p:?}");
    let closed = p
        .closed_leads_auc
        .as_ref()
        .unwrap_or_else(|| panic!("the closed lead is judged: {p:?}"));
    assert_eq!(closed.closed_leads, 1, "{p:?}");
    assert!(closed.auc_before.is_none(), "one outcome only: {p:?}");
    assert!(closed.auc_after.is_none());

    // Previewing changed nothing.
    for (lead, (old_score, old_tier)) in &before {
        let now = app.lead_by_id(&t.token, lead).await;
        assert!((now.score - old_score).abs() < 1e-9, "{now:?}");
        assert_eq!(&now.tier, old_tier);
        assert_eq!(now.score_breakdown.model_version, 1);
    }
    assert_eq!(models(&app, &t.token, None).await[0].status, "DRAFT");

    let payload = activate(&app, &t.token, &candidate.id).await;
    assert!(payload.job_run.is_none(), "{payload:?}");
    let mut after: BTreeMap<String, (f64, String)> = BTreeMap::new();
    let mut observed: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (lead, (_, old_tier)) in &before {
        let now = app.lead_by_id(&t.token, lead).await;
        assert_eq!(now.score_breakdown.model_version, 2, "{now:?}");
        *observed
            .entry((old_tier.clone(), now.tier.clone()))
            .or_default() += 1;
        after.insert(lead.clone(), (now.score, now.tier));
    }
    let predicted: BTreeMap<(String, String), i64> = p
        .tier_moves
        .iter()
        .filter(|m| m.count > 0)
        .map(|m| ((m.from.clone(), m.to.clone()), m.count))
        .collect();
    assert_eq!(predicted, observed, "{p:?}");
    assert!(
        observed.keys().any(|(from, to)| from != to),
        "some leads change tier: {observed:?}"
    );
    assert!(
        observed.keys().any(|(from, to)| from == to),
        "unchanged pairs are listed too: {observed:?}"
    );

    let mean = |scores: &BTreeMap<String, (f64, String)>| {
        scores.values().map(|(s, _)| s).sum::<f64>() / scores.len() as f64
    };
    assert!((p.before.mean - mean(&before)).abs() < 1e-6, "{p:?}");
    assert!((p.after.mean - mean(&after)).abs() < 1e-6, "{p:?}");
    for (stats, scores) in [(&p.before, &before), (&p.after, &after)] {
        let low = scores
            .values()
            .map(|(s, _)| *s)
            .fold(f64::INFINITY, f64::min);
        let high = scores
            .values()
            .map(|(s, _)| *s)
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(
            low - 1e-9 <= stats.p10
                && stats.p10 <= stats.p50
                && stats.p50 <= stats.p90
                && stats.p90 <= high + 1e-9,
            "{stats:?}"
        );
    }

    let moves = &p.biggest_moves;
    assert!(!moves.is_empty() && moves.len() <= 20, "{p:?}");
    let mut listed = BTreeSet::new();
    for m in moves {
        let lead = m.lead.id.clone();
        let (from_score, from_tier) = &before[&lead];
        let (to_score, to_tier) = &after[&lead];
        assert!((m.from_score - from_score).abs() < 1e-9, "{m:?}");
        assert!((m.to_score - to_score).abs() < 1e-9, "{m:?}");
        assert_eq!(&m.from_tier, from_tier);
        assert_eq!(&m.to_tier, to_tier);
        listed.insert(lead);
    }
    for (lead, (_, from_tier)) in &before {
        if *from_tier != after[lead].1 {
            assert!(
                listed.contains(lead),
                "a tier change is among the biggest moves: {p:?}"
            );
        }
    }
}

#[tokio::test]
async fn rolling_back_restores_the_previous_scores_exactly() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    // No activities: nothing decays between the activations.
    let mut original = Vec::new();
    for (i, attributes) in [strong(), weak(), rated(3), json!({"budget": 4, "need": 2})]
        .into_iter()
        .enumerate()
    {
        let lead = app
            .new_lead(
                &t.token,
                json!({"name": format!("Lead {i}"), "attributes": attributes}),
            )
            .await;
        original.push((lead.id, lead.score, lead.tier));
    }
    let first = active_model(&app, &t.token, None).await;
    let second = draft(
        &app,
        &t.token,
        json!({"name": "Budget only", "dimensions": [rating("budget", 100.0)],
               "tiers": tiers(&[("A", 80.0), ("B", 50.0), ("C", 0.0)])}),
    )
    .await;

    let payload = activate(&app, &t.token, &second.id).await;
    assert_eq!(payload.model.status, "ACTIVE");
    for (lead, old, _) in &original {
        let now = app.lead_by_id(&t.token, lead).await;
        assert!((now.score - old).abs() > 1e-6, "{old} unchanged: {now:?}");
        assert_eq!(now.score_breakdown.model_version, 2);
    }
    let listed = models(&app, &t.token, None).await;
    assert_eq!(statuses(&listed), [(2, "ACTIVE"), (1, "RETIRED")]);

    let payload = activate(&app, &t.token, &first.id).await;
    let rolled_back = &payload.model;
    assert_eq!(rolled_back.id, first.id, "{payload:?}");
    assert_eq!(rolled_back.version, 1);
    assert_eq!(rolled_back.status, "ACTIVE");
    assert!(rolled_back.activated_at.is_some());
    assert!(payload.job_run.is_none());
    for (lead, old_score, old_tier) in &original {
        let now = app.lead_by_id(&t.token, lead).await;
        assert!(
            (now.score - old_score).abs() < 1e-9,
            "{old_score} before, now {now:?}"
        );
        assert_eq!(&now.tier, old_tier);
        assert_eq!(now.score_breakdown.model_version, 1);
    }
    let listed = models(&app, &t.token, None).await;
    assert_eq!(statuses(&listed), [(2, "RETIRED"), (1, "ACTIVE")]);
    assert_eq!(active_model(&app, &t.token, None).await.id, first.id);
}

#[tokio::test]
async fn an_invalid_model_is_refused_by_field_without_saving_anything() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let active = active_model(&app, &t.token, None).await;
    let three = tiers(&[("A", 80.0), ("B", 50.0), ("C", 0.0)]);
    let cases = [
        (
            "a negative weight",
            json!({"name": "Bad", "tiers": three,
                   "dimensions": [rating("budget", 60.0), rating("need", -10.0), rating("authority", 50.0)]}),
            "input.dimensions[1].weight",
        ),
        (
            "weights that do not add up to 100",
            json!({"name": "Bad", "tiers": three,
                   "dimensions": [rating("budget", 50.0), rating("need", 30.0)]}),
            "input.dimensions",
        ),
        (
            "thresholds out of order",
            json!({"name": "Bad", "dimensions": [rating("budget", 100.0)],
                   "tiers": tiers(&[("A", 50.0), ("B", 80.0), ("C", 0.0)])}),
            "input.tiers[1].minScore",
        ),
        (
            "a rating of an unknown lead field",
            json!({"name": "Bad", "tiers": three, "dimensions": [
                {"key": "shoe_size", "label": "Shoe size", "kind": "RATING", "weight": 100.0,
                 "params": {"field": "shoe_size"}}]}),
            "input.dimensions[0].params.field",
        ),
        (
            "an urgent override on an unknown signal",
            json!({"name": "Bad", "copyActive": true, "overrides": [
                {"kind": "URGENT_SIGNAL", "params": {"withinDays": 7.0, "signals": ["smoke_signal"]}}]}),
            "input.overrides[0].params.signals[0]",
        ),
        (
            "an unknown template",
            json!({"name": "Bad", "template": "retail"}),
            "input.template",
        ),
        (
            "no base and no dimensions",
            json!({"name": "Bad", "tiers": three}),
            "input.dimensions",
        ),
    ];
    for (case, input, field) in cases {
        let refused = create_draft(&app, &t.token, input).await.expect_err(case);
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{case}: {refused}");
        assert_eq!(refused.field(), field, "{case}: {refused}");
    }

    let listed = models(&app, &t.token, None).await;
    assert_eq!(listed.len(), 1, "nothing saved: {listed:?}");
    assert_eq!(listed[0].id, active.id);
    assert_eq!(active_model(&app, &t.token, None).await, active);
    let log = app.audit_entries(&t.token).await;
    assert!(log.iter().all(|e| e.entity != "scoring_model"), "{log:?}");
    // The same parts, put right, make a draft.
    let fixed = draft(
        &app,
        &t.token,
        json!({"name": "Good", "tiers": three,
               "dimensions": [rating("budget", 60.0), rating("need", 10.0), rating("authority", 30.0)]}),
    )
    .await;
    assert_eq!(fixed.version, 2);
}

#[tokio::test]
async fn each_role_changes_only_the_models_it_owns_inside_its_tenant() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let east = app.new_team(&t.token, "East").await;
    let west = app.new_team(&t.token, "West").await;
    let (_, manager) = app.member(&t, "boss@acme.test", "MANAGER", &[&east]).await;
    let rep = app.user_with_role(&t, "REP").await;
    let admin = app.user_with_role(&t, "ADMIN").await;
    let first = active_model(&app, &t.token, None).await;
    let default_draft = draft(
        &app,
        &t.token,
        json!({"name": "Owner's draft", "copyActive": true}),
    )
    .await;
    let west_draft = draft(
        &app,
        &t.token,
        json!({"teamId": west, "name": "West", "copyActive": true}),
    )
    .await;

    let refused = [
        create_draft(&app, &rep, json!({"name": "Mine", "copyActive": true}))
            .await
            .map(|m| format!("{m:?}")),
        create_draft(
            &app,
            &rep,
            json!({"teamId": east, "name": "Mine", "copyActive": true}),
        )
        .await
        .map(|m| format!("{m:?}")),
        preview(&app, &rep, &default_draft.id)
            .await
            .map(|p| format!("{p:?}")),
        try_activate(&app, &rep, &default_draft.id)
            .await
            .map(|a| format!("{a:?}")),
    ];
    for answer in refused {
        let refused = answer.expect_err("REP is refused");
        assert_eq!(refused.code(), "FORBIDDEN", "REP: {refused}");
    }

    let east_draft = draft(
        &app,
        &manager,
        json!({"teamId": east, "name": "East", "copyActive": true}),
    )
    .await;
    assert_eq!(
        east_draft.team.as_ref().map(|t| t.id.as_str()),
        Some(east.as_str())
    );
    previewed(&app, &manager, &east_draft.id).await;
    let refused = [
        create_draft(
            &app,
            &manager,
            json!({"name": "Default", "copyActive": true}),
        )
        .await
        .map(|m| format!("{m:?}")),
        create_draft(
            &app,
            &manager,
            json!({"teamId": west, "name": "West", "copyActive": true}),
        )
        .await
        .map(|m| format!("{m:?}")),
        preview(&app, &manager, &default_draft.id)
            .await
            .map(|p| format!("{p:?}")),
        preview(&app, &manager, &west_draft.id)
            .await
            .map(|p| format!("{p:?}")),
        try_activate(&app, &manager, &east_draft.id)
            .await
            .map(|a| format!("{a:?}")),
    ];
    for answer in refused {
        let refused = answer.expect_err("MANAGER is refused");
        assert_eq!(refused.code(), "FORBIDDEN", "MANAGER: {refused}");
    }
    let east_models = models(&app, &t.token, Some(&east)).await;
    assert_eq!(statuses(&east_models), [(1, "DRAFT")]);
    assert_eq!(
        statuses(&models(&app, &t.token, Some(&west)).await),
        [(1, "DRAFT")]
    );
    assert_eq!(active_model(&app, &t.token, None).await.id, first.id);

    let admins = draft(
        &app,
        &admin,
        json!({"name": "Admin's draft", "copyActive": true}),
    )
    .await;
    assert_eq!(admins.version, 3);
    previewed(&app, &admin, &admins.id).await;
    let payload = activate(&app, &admin, &admins.id).await;
    assert_eq!(payload.model.status, "ACTIVE");
    let acme_active = active_model(&app, &t.token, None).await;
    assert_eq!(acme_active.id, admins.id);

    // Another company sees none of these models and cannot use them.
    let other = app.sign_up_tenant("globex").await;
    let acme_ids: BTreeSet<&str> = [&first, &default_draft, &west_draft, &east_draft, &admins]
        .into_iter()
        .map(|m| m.id.as_str())
        .collect();
    let theirs = models(&app, &other.token, None).await;
    assert_eq!(theirs.len(), 1, "their own default only: {theirs:?}");
    assert!(
        theirs.iter().all(|m| !acme_ids.contains(m.id.as_str())),
        "{theirs:?}"
    );
    for model in [&default_draft, &first] {
        let refused = preview(&app, &other.token, &model.id)
            .await
            .expect_err("another company's model");
        assert_eq!(refused.code(), "NOT_FOUND", "{refused}");
        let refused = try_activate(&app, &other.token, &model.id)
            .await
            .expect_err("another company's model");
        assert_eq!(refused.code(), "NOT_FOUND", "{refused}");
    }
    let team_models = app
        .refused(
            Some(&other.token),
            "query($team: ID) { scoringModels(teamId: $team) { id } }",
            json!({"team": east}),
        )
        .await;
    assert_eq!(team_models.code(), "NOT_FOUND", "{team_models}");
    assert_eq!(active_model(&app, &t.token, None).await, acme_active);
    assert_eq!(
        statuses(&models(&app, &t.token, None).await),
        [(3, "ACTIVE"), (2, "DRAFT"), (1, "RETIRED")]
    );
}

#[tokio::test]
async fn the_audit_log_keeps_every_model_change_with_its_before_and_after() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let first = active_model(&app, &t.token, None).await;
    let second = draft(
        &app,
        &t.token,
        json!({"name": "Budget heavy", "copyActive": true,
               "dimensions": [rating("budget", 80.0), rating("need", 20.0)]}),
    )
    .await;
    activate(&app, &t.token, &second.id).await;
    activate(&app, &t.token, &first.id).await;

    let entries: Vec<AuditEntry> = app
        .audit_entries(&t.token)
        .await
        .into_iter()
        .filter(|e| e.entity == "scoring_model")
        .collect();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "scoring_model.rolled_back",
            "scoring_model.activated",
            "scoring_model.draft_created",
        ],
        "newest first"
    );
    for entry in &entries {
        assert_eq!(entry.actor_id(), Some(t.owner_id.as_str()), "{entry:?}");
    }

    let created = &entries[2];
    assert_eq!(created.entity_id.as_deref(), Some(second.id.as_str()));
    assert!(created.before.is_null(), "{created:?}");
    assert_eq!(created.after["version"], 2, "{created:?}");
    assert_eq!(created.after["name"], "Budget heavy");

    let activated = &entries[1];
    assert_eq!(activated.entity_id.as_deref(), Some(second.id.as_str()));
    assert!(activated.before.is_object(), "{activated:?}");
    assert!(activated.after.is_object(), "{activated:?}");
    assert_ne!(activated.before, activated.after);
    assert!(
        activated.after.to_string().contains(&second.id),
        "the version now active: {activated:?}"
    );

    let rolled_back = &entries[0];
    assert_eq!(rolled_back.entity_id.as_deref(), Some(first.id.as_str()));
    assert!(rolled_back.before.is_object(), "{rolled_back:?}");
    assert!(rolled_back.after.is_object(), "{rolled_back:?}");
    assert_ne!(rolled_back.before, rolled_back.after);
    assert!(
        rolled_back.after.to_string().contains(&first.id),
        "the version now active: {rolled_back:?}"
    );
}

#[tokio::test]
async fn activating_a_model_for_many_leads_moves_every_lead_to_the_new_version_through_the_job() {
    let app = spawn_app_with(&[("LEADRANK_ACTIVATION_INLINE_LEADS", "0")]).await;
    let t = app.sign_up_tenant("acme").await;
    const LEADS: i64 = 30;
    let mut budgets = BTreeMap::new();
    for i in 0..LEADS {
        let budget = 1 + i % 5;
        let lead = app
            .new_lead(
                &t.token,
                json!({"name": format!("Lead {i}"), "attributes": {"budget": budget}}),
            )
            .await;
        budgets.insert(lead.id, budget);
    }
    let next = draft(
        &app,
        &t.token,
        json!({"name": "Budget only", "dimensions": [rating("budget", 100.0)],
               "tiers": tiers(&[("A", 80.0), ("B", 50.0), ("C", 0.0)])}),
    )
    .await;

    let payload = activate(&app, &t.token, &next.id).await;
    assert_eq!(payload.model.status, "ACTIVE", "{payload:?}");
    let run = payload
        .job_run
        .as_ref()
        .unwrap_or_else(|| panic!("the leads go to the job: {payload:?}"));
    assert!(
        matches!(run.status.as_str(), "QUEUED" | "RUNNING"),
        "{payload:?}"
    );
    assert_eq!(run.trigger, "MODEL_ACTIVATION");

    let finished = app.finished_run(&t.token, &run.id).await;
    assert_eq!(finished.status, "SUCCEEDED", "{finished:?}");
    assert_eq!(finished.trigger, "MODEL_ACTIVATION");
    assert_eq!(finished.leads_scanned, LEADS);

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Node {
        id: String,
        score: f64,
        score_breakdown: Version,
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Version {
        model_version: i64,
    }
    let leads: Connection<Node> = app
        .root(
            Some(&t.token),
            "{ leads(first: 100) { totalCount edges { node { id score scoreBreakdown { modelVersion } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(leads.edges.len() as i64, LEADS);
    assert_eq!(leads.total_count, Some(LEADS));
    for lead in leads.nodes() {
        assert_eq!(lead.score_breakdown.model_version, 2, "{lead:?}");
        let budget = budgets[&lead.id] as f64;
        assert!(
            (lead.score - (budget - 1.0) * 25.0).abs() < 1e-9,
            "budget {budget}: {lead:?}"
        );
    }
}

#[tokio::test]
async fn the_funnel_counts_who_entered_each_stage_beside_who_moved_further() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Pipeline {
        id: String,
        is_default: bool,
        stages: Vec<Stage>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Stage {
        key: String,
        kind: String,
        position: i64,
    }
    let pipelines: Vec<Pipeline> = app
        .root(
            Some(&t.token),
            "{ pipelines { id isDefault stages { key kind position } } }",
            json!({}),
        )
        .await;
    let pipeline = pipelines
        .into_iter()
        .find(|p| p.is_default)
        .expect("a default pipeline");
    let stages = &pipeline.stages;
    assert!(
        stages.windows(2).all(|w| w[0].position < w[1].position),
        "listed in order: {stages:?}"
    );
    let keyed = |kind: &str| -> Vec<String> {
        stages
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| s.key.clone())
            .collect()
    };
    let open = keyed("OPEN");
    let won = keyed("WON")[0].clone();
    let lost = keyed("LOST")[0].clone();

    let mut leads = Vec::new();
    for name in ["Ann", "Bo", "Cy", "Di"] {
        let lead = app.new_lead(&t.token, json!({"name": name})).await;
        assert_eq!(lead.stage.key, open[0]);
        leads.push(lead.id);
    }
    // Ann, Bo and Cy reach the second stage; Ann the third and then wins;
    // Bo is lost from the second; Cy stays there; Di stays in the first.
    for lead in &leads[..3] {
        move_stage(&app, &t.token, lead, &open[1]).await;
    }
    move_stage(&app, &t.token, &leads[0], &open[2]).await;
    close(&app, &t.token, &leads[0], "WON").await;
    close(&app, &t.token, &leads[1], "LOST").await;

    let expected: BTreeMap<&str, (i64, i64)> = [
        (open[0].as_str(), (4, 3)),
        (open[1].as_str(), (3, 1)),
        (open[2].as_str(), (1, 1)),
        (won.as_str(), (1, 0)),
        (lost.as_str(), (1, 0)),
    ]
    .into_iter()
    .collect();
    let left: BTreeSet<&str> = open[..3].iter().map(String::as_str).collect();
    let pipeline_id = pipeline.id.as_str();
    let rows = funnel(&app, &t.token, pipeline_id, None, None)
        .await
        .unwrap_or_else(|e| panic!("funnel failed: {e}"));
    let stage_keys: Vec<&str> = stages.iter().map(|s| s.key.as_str()).collect();
    let row_keys: Vec<&str> = rows.iter().map(|r| r.stage.key.as_str()).collect();
    assert_eq!(row_keys, stage_keys, "one entry per stage, in order");
    for row in &rows {
        let key = row.stage.key.as_str();
        let (entered, advanced) = expected.get(key).copied().unwrap_or((0, 0));
        assert_eq!(row.entered, entered, "{key}: {row:?}");
        assert_eq!(row.advanced, advanced, "{key}: {row:?}");
        let rate = if entered == 0 {
            0.0
        } else {
            advanced as f64 / entered as f64
        };
        assert!((row.conversion_rate - rate).abs() < 1e-9, "{key}: {row:?}");
        if left.contains(key) {
            let days = row.average_days.unwrap_or(-1.0);
            assert!((0.0..1.0).contains(&days), "left today: {row:?}");
        } else {
            assert!(row.average_days.is_none(), "nobody left {key}: {row:?}");
        }
    }

    // A window that holds today counts the same; one that starts tomorrow nothing.
    let hour = chrono::Duration::hours(1);
    let around = funnel(
        &app,
        &t.token,
        pipeline_id,
        Some((chrono::Utc::now() - hour).to_rfc3339()),
        Some((chrono::Utc::now() + hour).to_rfc3339()),
    )
    .await
    .unwrap_or_else(|e| panic!("funnel failed: {e}"));
    assert_eq!(around, rows);
    let tomorrow = funnel(
        &app,
        &t.token,
        pipeline_id,
        Some((chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339()),
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("funnel failed: {e}"));
    assert_eq!(tomorrow.len(), stages.len());
    assert!(
        tomorrow
            .iter()
            .all(|r| r.entered == 0 && r.advanced == 0 && r.conversion_rate == 0.0),
        "{tomorrow:?}"
    );

    let (_, manager) = app.member(&t, "boss@acme.test", "MANAGER", &[]).await;
    let managed = funnel(&app, &manager, pipeline_id, None, None)
        .await
        .unwrap_or_else(|e| panic!("a manager reads the funnel: {e}"));
    assert_eq!(managed.len(), stages.len(), "{managed:?}");
    let rep = app.user_with_role(&t, "REP").await;
    let refused = funnel(&app, &rep, pipeline_id, None, None)
        .await
        .expect_err("a rep may not read the funnel");
    assert_eq!(refused.code(), "FORBIDDEN");
}

#[tokio::test]
async fn the_tier_distribution_counts_the_open_leads_each_caller_may_see() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let east = app.new_team(&t.token, "East").await;
    let (rep1, rep1_token) = app.member(&t, "rep1@acme.test", "REP", &[&east]).await;
    let (rep2, rep2_token) = app.member(&t, "rep2@acme.test", "REP", &[]).await;
    let (_, manager) = app.member(&t, "boss@acme.test", "MANAGER", &[&east]).await;
    let pool_strong = app
        .new_lead(
            &t.token,
            json!({"name": "Pool strong", "attributes": strong()}),
        )
        .await
        .tier;
    let pool_weak = app
        .new_lead(&t.token, json!({"name": "Pool weak", "attributes": weak()}))
        .await
        .tier;
    let rep1_lead = app
        .new_lead(
            &t.token,
            json!({"name": "Rep1's", "attributes": strong(), "ownerId": rep1, "teamId": east}),
        )
        .await
        .tier;
    let rep2_lead = app
        .new_lead(
            &t.token,
            json!({"name": "Rep2's", "ownerId": rep2,
                   "attributes": {"budget": 5, "industry_position": 5, "decision_chain": 5}}),
        )
        .await
        .tier;
    let closed = app
        .new_lead(
            &t.token,
            json!({"name": "Closed", "attributes": strong(), "ownerId": rep1}),
        )
        .await;
    close(&app, &t.token, &closed.id, "WON").await;
    let model = active_model(&app, &t.token, None).await;
    let distinct: BTreeSet<&str> = [&pool_strong, &pool_weak, &rep2_lead]
        .into_iter()
        .map(String::as_str)
        .collect();
    assert!(
        distinct.len() >= 2,
        "leads of different tiers: {distinct:?}"
    );

    let views = [
        (
            "OWNER",
            t.token.clone(),
            None,
            vec![&pool_strong, &pool_weak, &rep1_lead, &rep2_lead],
        ),
        (
            "rep1",
            rep1_token,
            None,
            vec![&pool_strong, &pool_weak, &rep1_lead],
        ),
        (
            "rep2",
            rep2_token,
            None,
            vec![&pool_strong, &pool_weak, &rep2_lead],
        ),
        (
            "MANAGER",
            manager,
            None,
            vec![&pool_strong, &pool_weak, &rep1_lead],
        ),
        (
            "OWNER, East",
            t.token.clone(),
            Some(east.clone()),
            vec![&rep1_lead],
        ),
    ];
    for (who, token, team, visible) in views {
        let counts = tier_distribution(&app, &token, team.as_deref())
            .await
            .unwrap_or_else(|e| panic!("{who}: tierDistribution failed: {e}"));
        let visible: Vec<&str> = visible.into_iter().map(String::as_str).collect();
        assert_eq!(counts, expected_distribution(&model, &visible), "{who}");
    }
}

#[tokio::test]
async fn a_models_evaluation_shows_strong_leads_won_more_often_than_weak_ones() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for i in 0..4 {
        for (attributes, outcome) in [(strong(), "WON"), (weak(), "LOST")] {
            let lead = app
                .new_lead(
                    &t.token,
                    json!({"name": format!("{outcome} {i}"), "attributes": attributes}),
                )
                .await;
            let entry = expected.entry(lead.tier.clone()).or_default();
            entry.0 += 1;
            entry.1 += i64::from(outcome == "WON");
            close(&app, &t.token, &lead.id, outcome).await;
        }
    }
    app.new_lead(
        &t.token,
        json!({"name": "Still open", "attributes": strong()}),
    )
    .await;
    assert!(
        expected.len() >= 2,
        "strong and weak in different tiers: {expected:?}"
    );
    let model = active_model(&app, &t.token, None).await;

    let e = evaluation(&app, &t.token, &model.id)
        .await
        .unwrap_or_else(|e| panic!("modelEvaluation failed: {e}"));
    assert_eq!(e.model_id, model.id);
    assert_eq!(e.closed_leads, 8, "the open lead is not judged: {e:?}");
    let auc = e.auc.unwrap_or_else(|| panic!("{e:?}"));
    assert!(auc > 0.5, "strong leads score higher: {e:?}");

    let order = tier_keys(&model);
    let listed: Vec<&str> = e.tiers.iter().map(|r| r.tier.as_str()).collect();
    let in_order: Vec<&str> = order
        .iter()
        .copied()
        .filter(|k| listed.contains(k))
        .collect();
    assert_eq!(listed, in_order, "top tier first: {e:?}");
    let overall = 0.5;
    let mut with_leads = Vec::new();
    for row in &e.tiers {
        let key = row.tier.as_str();
        let (leads, won) = expected.get(key).copied().unwrap_or((0, 0));
        assert_eq!(row.leads, leads, "{key}: {e:?}");
        assert_eq!(row.won, won, "{key}: {e:?}");
        if leads > 0 {
            assert!(
                (row.won_rate - won as f64 / leads as f64).abs() < 1e-9,
                "{row:?}"
            );
            with_leads.push(row.won_rate);
        }
        assert!((row.lift - row.won_rate / overall).abs() < 1e-9, "{row:?}");
    }
    assert_eq!(with_leads.len(), expected.len(), "{e:?}");
    assert!(
        with_leads.first() > with_leads.last(),
        "the top tier wins more often than the bottom: {e:?}"
    );

    // A team model without closed leads in its scope has nothing to judge.
    let team = app.new_team(&t.token, "East").await;
    let team_draft = draft(
        &app,
        &t.token,
        json!({"teamId": team, "name": "East", "copyActive": true}),
    )
    .await;
    let e = evaluation(&app, &t.token, &team_draft.id)
        .await
        .unwrap_or_else(|e| panic!("modelEvaluation failed: {e}"));
    assert_eq!(e.closed_leads, 0, "{e:?}");
    assert!(e.auc.is_none(), "{e:?}");

    let rep = app.user_with_role(&t, "REP").await;
    let refused = evaluation(&app, &rep, &model.id)
        .await
        .expect_err("a rep may not judge a model");
    assert_eq!(refused.code(), "FORBIDDEN");
}

const MODEL: &str = "id version status name team { id }
    dimensions { key label kind weight params }
    tiers { key label minScore followUpEveryDays }
    overrides { kind params } createdAt activatedAt";

/// A scoring model version as [`MODEL`] asks for it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Model {
    id: String,
    version: i64,
    status: String,
    name: String,
    team: Option<Id>,
    dimensions: Vec<Dimension>,
    tiers: Vec<Tier>,
    overrides: Vec<Override>,
    created_at: String,
    activated_at: Option<String>,
}

/// `dimensions { key label kind weight params }`.
// Every field the query asks for is named, though not every test reads
// every one.
#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Dimension {
    key: String,
    label: String,
    kind: String,
    weight: f64,
    /// A JSON scalar: its keys depend on the kind.
    params: Value,
}

/// `tiers { key label minScore followUpEveryDays }`.
// Every field the query asks for is named, though not every test reads
// every one.
#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Tier {
    key: String,
    label: String,
    min_score: f64,
    follow_up_every_days: f64,
}

/// `overrides { kind params }`.
#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Override {
    kind: String,
    params: Value,
}

/// `jobRun { id status trigger }` of an activation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueuedRun {
    id: String,
    status: String,
    trigger: String,
}

/// What `activateScoringModel` answers: `{ model jobRun }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Activation {
    model: Model,
    job_run: Option<QueuedRun>,
}

/// What `previewScoringModel` answers.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Preview {
    leads_evaluated: i64,
    tier_moves: Vec<TierMove>,
    before: ScoreStats,
    after: ScoreStats,
    biggest_moves: Vec<BiggestMove>,
    /// Null when the scope has no closed lead to judge.
    closed_leads_auc: Option<ClosedLeadsAuc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TierMove {
    from: String,
    to: String,
    count: i64,
}

/// `{ mean p10 p50 p90 }` of the scores, 0 to 100.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScoreStats {
    mean: f64,
    p10: f64,
    p50: f64,
    p90: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BiggestMove {
    lead: Id,
    from_score: f64,
    to_score: f64,
    from_tier: String,
    to_tier: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClosedLeadsAuc {
    closed_leads: i64,
    auc_before: Option<f64>,
    auc_after: Option<f64>,
}

/// A lead's score, tier and which model version scored it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Scored {
    id: String,
    score: f64,
    tier: String,
    score_breakdown: ScoredBy,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScoredBy {
    model_id: String,
    model_version: i64,
    contributions: Vec<Share>,
}

/// `contributions { dimensionKey weight points }`.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Share {
    dimension_key: String,
    weight: f64,
    points: f64,
}

/// `tierDistribution { tier count }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct TierCount {
    tier: String,
    count: i64,
}

/// What `modelEvaluation` answers, as [`evaluation`] asks for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Evaluation {
    model_id: String,
    closed_leads: i64,
    auc: Option<f64>,
    tiers: Vec<TierEvaluation>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TierEvaluation {
    tier: String,
    leads: i64,
    won: i64,
    won_rate: f64,
    lift: f64,
}

/// One stage's row of the funnel.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FunnelRow {
    stage: StageKey,
    entered: i64,
    advanced: i64,
    conversion_rate: f64,
    average_days: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct StageKey {
    key: String,
}

/// A RATING dimension on the lead field `key`.
fn rating(key: &str, weight: f64) -> Value {
    json!({"key": key, "label": key.replace('_', " "), "kind": "RATING", "weight": weight,
           "params": {"field": key}})
}

/// Tiers from the top down, following up every 2, 5, 14… days.
fn tiers(thresholds: &[(&str, f64)]) -> Value {
    let every = [2.0, 5.0, 14.0, 30.0, 60.0];
    Value::Array(
        thresholds
            .iter()
            .zip(every)
            .map(|((key, min), days)| {
                json!({"key": key, "label": format!("Tier {key}"), "minScore": min,
                       "followUpEveryDays": days})
            })
            .collect(),
    )
}

/// Every demand-radar field rated `n`.
fn rated(n: i64) -> Value {
    json!({"budget": n, "authority": n, "need": n, "timeline": n,
           "industry_position": n, "decision_chain": n})
}

/// The `key`s of a model's dimensions, in order.
fn dimension_keys(model: &Model) -> Vec<&str> {
    model.dimensions.iter().map(|d| d.key.as_str()).collect()
}

/// The `key`s of a model's tiers, top first.
fn tier_keys(model: &Model) -> Vec<&str> {
    model.tiers.iter().map(|t| t.key.as_str()).collect()
}

fn contribution_keys(lead: &Scored) -> Vec<&str> {
    lead.score_breakdown
        .contributions
        .iter()
        .map(|c| c.dimension_key.as_str())
        .collect()
}

/// (version, status) of each model, as listed.
fn statuses(models: &[Model]) -> Vec<(i64, &str)> {
    models
        .iter()
        .map(|m| (m.version, m.status.as_str()))
        .collect()
}

/// Every tier of `model`, top first, with how many of `tiers` (one per
/// lead) are in it.
fn expected_distribution(model: &Model, tiers: &[&str]) -> Vec<TierCount> {
    tier_keys(model)
        .into_iter()
        .map(|key| TierCount {
            tier: key.to_owned(),
            count: tiers.iter().filter(|t| **t == key).count() as i64,
        })
        .collect()
}

/// Creates a draft: the model, or why it was refused.
async fn create_draft(app: &TestApp, token: &str, input: Value) -> Result<Model, GraphqlErrors> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Payload {
        model: Model,
        job_run: Option<Value>,
    }
    let payload: Payload = app
        .query_root(
            Some(token),
            &format!(
                "mutation($input: ScoringModelInput!) {{ createScoringModelDraft(input: $input) {{ model {{ {MODEL} }} jobRun {{ id status }} }} }}"
            ),
            json!({ "input": input }),
        )
        .await?;
    assert!(
        payload.job_run.is_none(),
        "a draft re-scores nothing: {:?}",
        payload.job_run
    );
    Ok(payload.model)
}

/// Creates a draft that must succeed, and returns the model.
async fn draft(app: &TestApp, token: &str, input: Value) -> Model {
    create_draft(app, token, input)
        .await
        .unwrap_or_else(|e| panic!("createScoringModelDraft failed: {e}"))
}

/// Previews activating `model`: what it would do, or why it was refused.
async fn preview(app: &TestApp, token: &str, model: &str) -> Result<Preview, GraphqlErrors> {
    app.query_root(
        Some(token),
        "mutation($input: PreviewInput!) { previewScoringModel(input: $input) {
            leadsEvaluated tierMoves { from to count }
            before { mean p10 p50 p90 } after { mean p10 p50 p90 }
            biggestMoves { lead { id } fromScore toScore fromTier toTier }
            closedLeadsAuc { closedLeads aucBefore aucAfter } } }",
        json!({"input": {"modelId": model}}),
    )
    .await
}

/// A preview that must succeed.
async fn previewed(app: &TestApp, token: &str, model: &str) -> Preview {
    preview(app, token, model)
        .await
        .unwrap_or_else(|e| panic!("previewScoringModel failed: {e}"))
}

/// Activates a version: `{ model jobRun }`, or why it was refused.
async fn try_activate(
    app: &TestApp,
    token: &str,
    model: &str,
) -> Result<Activation, GraphqlErrors> {
    app.query_root(
        Some(token),
        &format!(
            "mutation($input: ActivateInput!) {{ activateScoringModel(input: $input) {{ model {{ {MODEL} }} jobRun {{ id status trigger }} }} }}"
        ),
        json!({"input": {"modelId": model}}),
    )
    .await
}

/// Activates a version, which must succeed; returns `{ model jobRun }`.
async fn activate(app: &TestApp, token: &str, model: &str) -> Activation {
    try_activate(app, token, model)
        .await
        .unwrap_or_else(|e| panic!("activateScoringModel failed: {e}"))
}

async fn models(app: &TestApp, token: &str, team: Option<&str>) -> Vec<Model> {
    app.root(
        Some(token),
        &format!("query($team: ID) {{ scoringModels(teamId: $team) {{ {MODEL} }} }}"),
        json!({ "team": team }),
    )
    .await
}

async fn active_model(app: &TestApp, token: &str, team: Option<&str>) -> Model {
    app.root(
        Some(token),
        &format!("query($team: ID) {{ activeScoringModel(teamId: $team) {{ {MODEL} }} }}"),
        json!({ "team": team }),
    )
    .await
}

/// A lead's score, tier and which model version scored it.
async fn scored(app: &TestApp, token: &str, lead: &str) -> Scored {
    let scored: Scored = app
        .root(
            Some(token),
            "query($id: ID!) { lead(id: $id) { id score tier
                scoreBreakdown { modelId modelVersion contributions { dimensionKey weight points } } } }",
            json!({ "id": lead }),
        )
        .await;
    assert_eq!(scored.id, lead);
    scored
}

async fn close(app: &TestApp, token: &str, lead: &str, outcome: &str) {
    let closed = app
        .lead_mutation(
            token,
            "closeLead",
            "CloseLeadInput",
            json!({"id": lead, "outcome": outcome}),
        )
        .await
        .unwrap_or_else(|e| panic!("closeLead failed: {e}"));
    assert_eq!(closed.status, outcome, "{closed:?}");
}

async fn move_stage(app: &TestApp, token: &str, lead: &str, stage: &str) {
    let moved = app
        .lead_mutation(
            token,
            "moveLeadStage",
            "MoveStageInput",
            json!({"id": lead, "stageKey": stage}),
        )
        .await
        .unwrap_or_else(|e| panic!("moveLeadStage failed: {e}"));
    assert_eq!(moved.stage.key, stage, "{moved:?}");
}

async fn tier_distribution(
    app: &TestApp,
    token: &str,
    team: Option<&str>,
) -> Result<Vec<TierCount>, GraphqlErrors> {
    app.query_root(
        Some(token),
        "query($team: ID) { tierDistribution(teamId: $team) { tier count } }",
        json!({ "team": team }),
    )
    .await
}

async fn evaluation(app: &TestApp, token: &str, model: &str) -> Result<Evaluation, GraphqlErrors> {
    app.query_root(
        Some(token),
        "query($id: ID!) { modelEvaluation(modelId: $id) {
            modelId closedLeads auc tiers { tier leads won wonRate lift } } }",
        json!({ "id": model }),
    )
    .await
}

async fn funnel(
    app: &TestApp,
    token: &str,
    pipeline: &str,
    from: Option<String>,
    to: Option<String>,
) -> Result<Vec<FunnelRow>, GraphqlErrors> {
    app.query_root(
        Some(token),
        "query($pipeline: ID!, $from: DateTime, $to: DateTime) {
            funnel(pipelineId: $pipeline, from: $from, to: $to) {
                stage { key } entered advanced conversionRate averageDays } }",
        json!({ "pipeline": pipeline, "from": from, "to": to }),
    )
    .await
}
