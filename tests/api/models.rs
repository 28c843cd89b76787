//! Scoring model versions as an admin manages them: drafts from the active
//! model, a template or explicit parts, a preview of what activating one
//! would do, activation and rollback re-scoring the leads (in the request or
//! through the job), team models beside the tenant default, who may do what,
//! the audit trail, and the analytics that judge a model.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, error_code, error_field, spawn_app, spawn_app_with},
    helpers::{score_json, strong, weak},
};

#[tokio::test]
async fn a_draft_takes_the_next_version_whatever_it_starts_from() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let active = active_model(&app, &t.token, None).await;
    assert_eq!(active["version"], 1, "{active}");
    assert_eq!(active["status"], "ACTIVE");

    let copy = draft(&app, &t.token, json!({"name": "Copy", "copyActive": true})).await;
    assert_eq!(copy["version"], 2);
    assert_eq!(copy["status"], "DRAFT");
    assert_eq!(copy["name"], "Copy");
    assert!(copy["team"].is_null(), "the tenant default: {copy}");
    assert!(copy["activatedAt"].is_null());
    assert!(copy["createdAt"].is_string());
    for part in ["dimensions", "tiers", "overrides"] {
        assert_eq!(
            copy[part], active[part],
            "{part} copied from the active model"
        );
    }

    let saas = draft(&app, &t.token, json!({"name": "SaaS", "template": "saas"})).await;
    assert_eq!(saas["version"], 3);
    assert_eq!(
        keys(&saas["dimensions"]),
        [
            "trial_activity",
            "decision_makers",
            "budget",
            "close_probability",
            "industry_position",
            "stage_progress"
        ]
    );
    assert_eq!(keys(&saas["tiers"]), ["A", "B", "C", "D"]);

    // Parts given explicitly replace the base's; the rest comes from it.
    let retiered = draft(
        &app,
        &t.token,
        json!({"name": "Three tiers", "template": "general",
               "tiers": tiers(&[("A", 90.0), ("B", 60.0), ("C", 0.0)])}),
    )
    .await;
    assert_eq!(retiered["version"], 4);
    assert_eq!(
        keys(&retiered["dimensions"]),
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
    let thresholds: Vec<f64> = retiered["tiers"]
        .as_array()
        .expect("tiers")
        .iter()
        .map(|t| t["minScore"].as_f64().expect("a threshold"))
        .collect();
    assert_eq!(thresholds, [90.0, 60.0, 0.0]);

    let explicit = draft(
        &app,
        &t.token,
        json!({"name": "Budget first",
               "dimensions": [rating("budget", 70.0), rating("need", 30.0)],
               "tiers": tiers(&[("A", 80.0), ("B", 50.0), ("C", 0.0)])}),
    )
    .await;
    assert_eq!(explicit["version"], 5);
    let budget = &explicit["dimensions"][0];
    assert_eq!(budget["key"], "budget");
    assert_eq!(budget["kind"], "RATING");
    assert_eq!(budget["weight"], 70.0);
    assert_eq!(budget["params"]["field"], "budget");
    assert_eq!(explicit["tiers"][2]["followUpEveryDays"], 14.0);
    assert_eq!(explicit["overrides"], json!([]), "no base, no overrides");

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
        active_model(&app, &t.token, None).await["id"],
        active["id"],
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
        .new_lead_json(
            &t.token,
            json!({"name": "Inside", "attributes": strong(), "teamId": team}),
        )
        .await;
    let outside = app
        .new_lead_json(&t.token, json!({"name": "Outside", "attributes": strong()}))
        .await;
    assert!(
        (score_json(&inside) - score_json(&outside)).abs() < 1e-9,
        "one model scores both so far"
    );

    let own = draft(
        &app,
        &t.token,
        json!({"teamId": team, "name": "Enterprise model", "copyActive": true,
               "dimensions": [rating("budget", 60.0), rating("need", 40.0)]}),
    )
    .await;
    assert_eq!(own["version"], 1, "the team's first version: {own}");
    assert_eq!(own["team"]["id"], team.as_str());
    assert_eq!(
        own["tiers"], default["tiers"],
        "a team without a model of its own copies the tenant default"
    );
    let payload = activate(&app, &t.token, &id(&own)).await;
    assert_eq!(payload["model"]["status"], "ACTIVE");
    assert!(payload["model"]["activatedAt"].is_string(), "{payload}");
    assert!(
        payload["jobRun"].is_null(),
        "one lead is re-scored in the request: {payload}"
    );

    let inside_now = scored(&app, &t.token, &id(&inside)).await;
    assert_eq!(inside_now["scoreBreakdown"]["modelId"], own["id"]);
    assert_eq!(inside_now["scoreBreakdown"]["modelVersion"], 1);
    assert_eq!(
        contribution_keys(&inside_now),
        ["budget", "need"],
        "{inside_now}"
    );
    assert!(
        (score_json(&inside_now) - 100.0).abs() < 1e-9,
        "budget and need rated 5 earn every point: {inside_now}"
    );
    assert_eq!(inside_now["tier"], "A");

    let outside_now = scored(&app, &t.token, &id(&outside)).await;
    assert_eq!(outside_now["scoreBreakdown"]["modelId"], default["id"]);
    assert!(
        (score_json(&outside_now) - score_json(&outside)).abs() < 1e-9,
        "the lead outside the team keeps its score: {outside_now}"
    );
    assert!((score_json(&inside_now) - score_json(&outside_now)).abs() > 1.0);

    // A new lead of the team is scored by the team's model at once.
    let later = app
        .new_lead_json(
            &t.token,
            json!({"name": "Later", "attributes": {"budget": 3, "need": 5}, "teamId": team}),
        )
        .await;
    let later = scored(&app, &t.token, &id(&later)).await;
    assert_eq!(later["scoreBreakdown"]["modelId"], own["id"]);
    assert!((score_json(&later) - 70.0).abs() < 1e-9, "30 + 40: {later}");

    let theirs = models(&app, &t.token, Some(&team)).await;
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!(theirs[0]["id"], own["id"]);
    assert_eq!(theirs[0]["status"], "ACTIVE");
    let tenant_wide = models(&app, &t.token, None).await;
    assert_eq!(tenant_wide.len(), 1, "{tenant_wide:?}");
    assert_eq!(tenant_wide[0]["id"], default["id"]);
    assert_eq!(tenant_wide[0]["status"], "ACTIVE");
    assert_eq!(
        active_model(&app, &t.token, Some(&team)).await["id"],
        own["id"]
    );
    assert_eq!(
        active_model(&app, &t.token, None).await["id"],
        default["id"]
    );

    // The team's tier counts use the team's model.
    let body = tier_distribution(&app, &t.token, Some(&team)).await;
    assert_eq!(
        body["data"]["tierDistribution"],
        expected_distribution(&own, &[&inside_now, &later]),
        "{body}"
    );

    // A tenant default draft previews the leads outside the team; a team
    // draft the team's, starting from the team's own model.
    let next_default = draft(
        &app,
        &t.token,
        json!({"name": "Next default", "copyActive": true}),
    )
    .await;
    assert_eq!(next_default["version"], 2);
    assert_eq!(next_default["dimensions"], default["dimensions"]);
    let body = preview(&app, &t.token, &id(&next_default)).await;
    assert_eq!(
        body["data"]["previewScoringModel"]["leadsEvaluated"], 1,
        "{body}"
    );
    let next_team = draft(
        &app,
        &t.token,
        json!({"teamId": team, "name": "Enterprise v2", "copyActive": true}),
    )
    .await;
    assert_eq!(next_team["version"], 2);
    assert_eq!(next_team["dimensions"], own["dimensions"]);
    let body = preview(&app, &t.token, &id(&next_team)).await;
    assert_eq!(
        body["data"]["previewScoringModel"]["leadsEvaluated"], 2,
        "{body}"
    );
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
            .new_lead_json(
                &t.token,
                json!({"name": format!("Lead {i}"), "attributes": attributes}),
            )
            .await;
        before.insert(id(&lead), (score_json(&lead), tier(&lead)));
    }
    // A closed lead is not re-scored, but the preview judges it.
    let won = app
        .new_lead_json(&t.token, json!({"name": "Won", "attributes": strong()}))
        .await;
    close(&app, &t.token, &id(&won), "WON").await;

    let candidate = draft(
        &app,
        &t.token,
        json!({"name": "Stricter", "copyActive": true,
               "dimensions": [rating("budget", 40.0), rating("authority", 20.0),
                              rating("need", 20.0), rating("timeline", 20.0)],
               "tiers": tiers(&[("A", 95.0), ("B", 70.0), ("C", 0.0)])}),
    )
    .await;
    let body = preview(&app, &t.token, &id(&candidate)).await;
    let p = &body["data"]["previewScoringModel"];
    assert!(p.is_object(), "previewScoringModel failed: {body}");
    assert_eq!(p["leadsEvaluated"], 8, "the open leads: {p}");
    let closed = &p["closedLeadsAuc"];
    assert_eq!(closed["closedLeads"], 1, "{p}");
    assert!(closed["aucBefore"].is_null(), "one outcome only: {p}");
    assert!(closed["aucAfter"].is_null());

    // Previewing changed nothing.
    for (lead, (old_score, old_tier)) in &before {
        let now = app.lead_by_id_json(&t.token, lead).await;
        assert!((score_json(&now) - old_score).abs() < 1e-9, "{now}");
        assert_eq!(now["tier"], old_tier.as_str());
        assert_eq!(now["scoreBreakdown"]["modelVersion"], 1);
    }
    assert_eq!(models(&app, &t.token, None).await[0]["status"], "DRAFT");

    let payload = activate(&app, &t.token, &id(&candidate)).await;
    assert!(payload["jobRun"].is_null(), "{payload}");
    let mut after: BTreeMap<String, (f64, String)> = BTreeMap::new();
    let mut observed: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (lead, (_, old_tier)) in &before {
        let now = app.lead_by_id_json(&t.token, lead).await;
        assert_eq!(now["scoreBreakdown"]["modelVersion"], 2, "{now}");
        *observed.entry((old_tier.clone(), tier(&now))).or_default() += 1;
        after.insert(lead.clone(), (score_json(&now), tier(&now)));
    }
    let predicted: BTreeMap<(String, String), i64> = p["tierMoves"]
        .as_array()
        .expect("tier moves")
        .iter()
        .filter(|m| m["count"].as_i64() > Some(0))
        .map(|m| {
            (
                (
                    m["from"].as_str().unwrap().to_owned(),
                    m["to"].as_str().unwrap().to_owned(),
                ),
                m["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(predicted, observed, "{p}");
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
    assert!(
        (p["before"]["mean"].as_f64().unwrap() - mean(&before)).abs() < 1e-6,
        "{p}"
    );
    assert!(
        (p["after"]["mean"].as_f64().unwrap() - mean(&after)).abs() < 1e-6,
        "{p}"
    );
    for (stats, scores) in [(&p["before"], &before), (&p["after"], &after)] {
        let low = scores
            .values()
            .map(|(s, _)| *s)
            .fold(f64::INFINITY, f64::min);
        let high = scores
            .values()
            .map(|(s, _)| *s)
            .fold(f64::NEG_INFINITY, f64::max);
        let q: Vec<f64> = ["p10", "p50", "p90"]
            .iter()
            .map(|k| stats[*k].as_f64().unwrap())
            .collect();
        assert!(
            low - 1e-9 <= q[0] && q[0] <= q[1] && q[1] <= q[2] && q[2] <= high + 1e-9,
            "{stats}"
        );
    }

    let moves = p["biggestMoves"].as_array().expect("biggest moves");
    assert!(!moves.is_empty() && moves.len() <= 20, "{p}");
    let mut listed = BTreeSet::new();
    for m in moves {
        let lead = m["lead"]["id"].as_str().unwrap_or_default().to_owned();
        let (from_score, from_tier) = &before[&lead];
        let (to_score, to_tier) = &after[&lead];
        assert!(
            (m["fromScore"].as_f64().unwrap() - from_score).abs() < 1e-9,
            "{m}"
        );
        assert!(
            (m["toScore"].as_f64().unwrap() - to_score).abs() < 1e-9,
            "{m}"
        );
        assert_eq!(m["fromTier"], from_tier.as_str());
        assert_eq!(m["toTier"], to_tier.as_str());
        listed.insert(lead);
    }
    for (lead, (_, from_tier)) in &before {
        if *from_tier != after[lead].1 {
            assert!(
                listed.contains(lead),
                "a tier change is among the biggest moves: {p}"
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
            .new_lead_json(
                &t.token,
                json!({"name": format!("Lead {i}"), "attributes": attributes}),
            )
            .await;
        original.push((id(&lead), score_json(&lead), tier(&lead)));
    }
    let first = active_model(&app, &t.token, None).await;
    let second = draft(
        &app,
        &t.token,
        json!({"name": "Budget only", "dimensions": [rating("budget", 100.0)],
               "tiers": tiers(&[("A", 80.0), ("B", 50.0), ("C", 0.0)])}),
    )
    .await;

    let payload = activate(&app, &t.token, &id(&second)).await;
    assert_eq!(payload["model"]["status"], "ACTIVE");
    for (lead, old, _) in &original {
        let now = app.lead_by_id_json(&t.token, lead).await;
        assert!(
            (score_json(&now) - old).abs() > 1e-6,
            "{old} unchanged: {now}"
        );
        assert_eq!(now["scoreBreakdown"]["modelVersion"], 2);
    }
    let listed = models(&app, &t.token, None).await;
    assert_eq!(statuses(&listed), [(2, "ACTIVE"), (1, "RETIRED")]);

    let payload = activate(&app, &t.token, &id(&first)).await;
    let rolled_back = &payload["model"];
    assert_eq!(rolled_back["id"], first["id"], "{payload}");
    assert_eq!(rolled_back["version"], 1);
    assert_eq!(rolled_back["status"], "ACTIVE");
    assert!(rolled_back["activatedAt"].is_string());
    assert!(payload["jobRun"].is_null());
    for (lead, old_score, old_tier) in &original {
        let now = app.lead_by_id_json(&t.token, lead).await;
        assert!(
            (score_json(&now) - old_score).abs() < 1e-9,
            "{old_score} before, now {now}"
        );
        assert_eq!(now["tier"], old_tier.as_str());
        assert_eq!(now["scoreBreakdown"]["modelVersion"], 1);
    }
    let listed = models(&app, &t.token, None).await;
    assert_eq!(statuses(&listed), [(2, "RETIRED"), (1, "ACTIVE")]);
    assert_eq!(active_model(&app, &t.token, None).await["id"], first["id"]);
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
        let body = create_draft(&app, &t.token, input).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{case}: {body}");
        assert_eq!(error_field(&body), field, "{case}: {body}");
    }

    let listed = models(&app, &t.token, None).await;
    assert_eq!(listed.len(), 1, "nothing saved: {listed:?}");
    assert_eq!(listed[0]["id"], active["id"]);
    assert_eq!(active_model(&app, &t.token, None).await, active);
    let log = app.audit_entries(&t.token).await;
    assert!(
        log.iter().all(|e| e["entity"] != "scoring_model"),
        "{log:?}"
    );
    // The same parts, put right, make a draft.
    let fixed = draft(
        &app,
        &t.token,
        json!({"name": "Good", "tiers": three,
               "dimensions": [rating("budget", 60.0), rating("need", 10.0), rating("authority", 30.0)]}),
    )
    .await;
    assert_eq!(fixed["version"], 2);
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
        create_draft(&app, &rep, json!({"name": "Mine", "copyActive": true})).await,
        create_draft(
            &app,
            &rep,
            json!({"teamId": east, "name": "Mine", "copyActive": true}),
        )
        .await,
        preview(&app, &rep, &id(&default_draft)).await,
        activate_raw(&app, &rep, &id(&default_draft)).await,
    ];
    for body in refused {
        assert_eq!(error_code(&body), "FORBIDDEN", "REP: {body}");
    }

    let east_draft = draft(
        &app,
        &manager,
        json!({"teamId": east, "name": "East", "copyActive": true}),
    )
    .await;
    assert_eq!(east_draft["team"]["id"], east.as_str());
    let own_preview = preview(&app, &manager, &id(&east_draft)).await;
    assert!(
        own_preview["data"]["previewScoringModel"].is_object(),
        "{own_preview}"
    );
    let refused = [
        create_draft(
            &app,
            &manager,
            json!({"name": "Default", "copyActive": true}),
        )
        .await,
        create_draft(
            &app,
            &manager,
            json!({"teamId": west, "name": "West", "copyActive": true}),
        )
        .await,
        preview(&app, &manager, &id(&default_draft)).await,
        preview(&app, &manager, &id(&west_draft)).await,
        activate_raw(&app, &manager, &id(&east_draft)).await,
    ];
    for body in refused {
        assert_eq!(error_code(&body), "FORBIDDEN", "MANAGER: {body}");
    }
    let east_models = models(&app, &t.token, Some(&east)).await;
    assert_eq!(statuses(&east_models), [(1, "DRAFT")]);
    assert_eq!(
        statuses(&models(&app, &t.token, Some(&west)).await),
        [(1, "DRAFT")]
    );
    assert_eq!(active_model(&app, &t.token, None).await["id"], first["id"]);

    let admins = draft(
        &app,
        &admin,
        json!({"name": "Admin's draft", "copyActive": true}),
    )
    .await;
    assert_eq!(admins["version"], 3);
    let body = preview(&app, &admin, &id(&admins)).await;
    assert!(body["data"]["previewScoringModel"].is_object(), "{body}");
    let payload = activate(&app, &admin, &id(&admins)).await;
    assert_eq!(payload["model"]["status"], "ACTIVE");
    let acme_active = active_model(&app, &t.token, None).await;
    assert_eq!(acme_active["id"], admins["id"]);

    // Another company sees none of these models and cannot use them.
    let other = app.sign_up_tenant("globex").await;
    let acme_ids: BTreeSet<String> = [&first, &default_draft, &west_draft, &east_draft, &admins]
        .into_iter()
        .map(id)
        .collect();
    let theirs = models(&app, &other.token, None).await;
    assert_eq!(theirs.len(), 1, "their own default only: {theirs:?}");
    assert!(
        theirs.iter().all(|m| !acme_ids.contains(&id(m))),
        "{theirs:?}"
    );
    for model in [&default_draft, &first] {
        let body = preview(&app, &other.token, &id(model)).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
        let body = activate_raw(&app, &other.token, &id(model)).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    }
    let team_models = app
        .graphql(
            Some(&other.token),
            "query($team: ID) { scoringModels(teamId: $team) { id } }",
            json!({"team": east}),
        )
        .await;
    assert_eq!(error_code(&team_models), "NOT_FOUND", "{team_models}");
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
    activate(&app, &t.token, &id(&second)).await;
    activate(&app, &t.token, &id(&first)).await;

    let entries: Vec<Value> = app
        .audit_entries(&t.token)
        .await
        .into_iter()
        .filter(|e| e["entity"] == "scoring_model")
        .collect();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default())
        .collect();
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
        assert_eq!(entry["actor"]["id"], t.owner_id.as_str(), "{entry}");
    }

    let created = &entries[2];
    assert_eq!(created["entityId"], second["id"]);
    assert!(created["before"].is_null(), "{created}");
    assert_eq!(created["after"]["version"], 2, "{created}");
    assert_eq!(created["after"]["name"], "Budget heavy");

    let activated = &entries[1];
    assert_eq!(activated["entityId"], second["id"]);
    assert!(activated["before"].is_object(), "{activated}");
    assert!(activated["after"].is_object(), "{activated}");
    assert_ne!(activated["before"], activated["after"]);
    assert!(
        activated["after"].to_string().contains(&id(&second)),
        "the version now active: {activated}"
    );

    let rolled_back = &entries[0];
    assert_eq!(rolled_back["entityId"], first["id"]);
    assert!(rolled_back["before"].is_object(), "{rolled_back}");
    assert!(rolled_back["after"].is_object(), "{rolled_back}");
    assert_ne!(rolled_back["before"], rolled_back["after"]);
    assert!(
        rolled_back["after"].to_string().contains(&id(&first)),
        "the version now active: {rolled_back}"
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
            .new_lead_json(
                &t.token,
                json!({"name": format!("Lead {i}"), "attributes": {"budget": budget}}),
            )
            .await;
        budgets.insert(id(&lead), budget);
    }
    let next = draft(
        &app,
        &t.token,
        json!({"name": "Budget only", "dimensions": [rating("budget", 100.0)],
               "tiers": tiers(&[("A", 80.0), ("B", 50.0), ("C", 0.0)])}),
    )
    .await;

    let payload = activate(&app, &t.token, &id(&next)).await;
    assert_eq!(payload["model"]["status"], "ACTIVE", "{payload}");
    let run = &payload["jobRun"];
    assert!(run.is_object(), "the leads go to the job: {payload}");
    assert!(
        matches!(run["status"].as_str(), Some("QUEUED" | "RUNNING")),
        "{payload}"
    );
    assert_eq!(run["trigger"], "MODEL_ACTIVATION");

    let finished = app.finished_run(&t.token, &run["id"]).await;
    assert_eq!(finished["status"], "SUCCEEDED", "{finished}");
    assert_eq!(finished["trigger"], "MODEL_ACTIVATION");
    assert_eq!(finished["leadsScanned"], LEADS);

    let body = app
        .graphql(
            Some(&t.token),
            "{ leads(first: 100) { totalCount edges { node { id score scoreBreakdown { modelVersion } } } } }",
            json!({}),
        )
        .await;
    let edges = body["data"]["leads"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(edges.len() as i64, LEADS);
    for edge in edges {
        let lead = &edge["node"];
        assert_eq!(lead["scoreBreakdown"]["modelVersion"], 2, "{lead}");
        let budget = budgets[&id(lead)] as f64;
        assert!(
            (score_json(lead) - (budget - 1.0) * 25.0).abs() < 1e-9,
            "budget {budget}: {lead}"
        );
    }
}

#[tokio::test]
async fn the_funnel_counts_who_entered_each_stage_beside_who_moved_further() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let body = app
        .graphql(
            Some(&t.token),
            "{ pipelines { id isDefault stages { key kind position } } }",
            json!({}),
        )
        .await;
    let pipeline = body["data"]["pipelines"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .find(|p| p["isDefault"] == true)
        .expect("a default pipeline")
        .clone();
    let stages = pipeline["stages"].as_array().expect("stages");
    let keyed = |kind: &str| -> Vec<String> {
        stages
            .iter()
            .filter(|s| s["kind"] == kind)
            .map(|s| s["key"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let open = keyed("OPEN");
    let won = keyed("WON")[0].clone();
    let lost = keyed("LOST")[0].clone();

    let mut leads = Vec::new();
    for name in ["Ann", "Bo", "Cy", "Di"] {
        let lead = app.new_lead_json(&t.token, json!({"name": name})).await;
        assert_eq!(lead["stage"]["key"], open[0].as_str());
        leads.push(id(&lead));
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
    let pipeline_id = id(&pipeline);
    let body = funnel(&app, &t.token, &pipeline_id, None, None).await;
    let rows = body["data"]["funnel"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .clone();
    let stage_keys: Vec<&str> = stages.iter().map(|s| s["key"].as_str().unwrap()).collect();
    let row_keys: Vec<&str> = rows
        .iter()
        .map(|r| r["stage"]["key"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(row_keys, stage_keys, "one entry per stage, in order");
    for row in &rows {
        let key = row["stage"]["key"].as_str().unwrap_or_default();
        let (entered, advanced) = expected.get(key).copied().unwrap_or((0, 0));
        assert_eq!(row["entered"], entered, "{key}: {row}");
        assert_eq!(row["advanced"], advanced, "{key}: {row}");
        let rate = if entered == 0 {
            0.0
        } else {
            advanced as f64 / entered as f64
        };
        assert!(
            (row["conversionRate"].as_f64().unwrap() - rate).abs() < 1e-9,
            "{key}: {row}"
        );
        if left.contains(key) {
            let days = row["averageDays"].as_f64().unwrap_or(-1.0);
            assert!((0.0..1.0).contains(&days), "left today: {row}");
        } else {
            assert!(row["averageDays"].is_null(), "nobody left {key}: {row}");
        }
    }

    // A window that holds today counts the same; one that starts tomorrow nothing.
    let hour = chrono::Duration::hours(1);
    let around = funnel(
        &app,
        &t.token,
        &pipeline_id,
        Some((chrono::Utc::now() - hour).to_rfc3339()),
        Some((chrono::Utc::now() + hour).to_rfc3339()),
    )
    .await;
    assert_eq!(around["data"]["funnel"], json!(rows), "{around}");
    let tomorrow = funnel(
        &app,
        &t.token,
        &pipeline_id,
        Some((chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339()),
        None,
    )
    .await;
    let tomorrow = tomorrow["data"]["funnel"]
        .as_array()
        .unwrap_or_else(|| panic!("{tomorrow}"));
    assert_eq!(tomorrow.len(), stages.len());
    assert!(
        tomorrow
            .iter()
            .all(|r| r["entered"] == 0 && r["advanced"] == 0 && r["conversionRate"] == 0.0),
        "{tomorrow:?}"
    );

    let (_, manager) = app.member(&t, "boss@acme.test", "MANAGER", &[]).await;
    let managed = funnel(&app, &manager, &pipeline_id, None, None).await;
    assert_eq!(
        managed["data"]["funnel"].as_array().map(Vec::len),
        Some(stages.len()),
        "{managed}"
    );
    let rep = app.user_with_role(&t, "REP").await;
    let refused = funnel(&app, &rep, &pipeline_id, None, None).await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
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
        .new_lead_json(
            &t.token,
            json!({"name": "Pool strong", "attributes": strong()}),
        )
        .await;
    let pool_weak = app
        .new_lead_json(&t.token, json!({"name": "Pool weak", "attributes": weak()}))
        .await;
    let rep1_lead = app
        .new_lead_json(
            &t.token,
            json!({"name": "Rep1's", "attributes": strong(), "ownerId": rep1, "teamId": east}),
        )
        .await;
    let rep2_lead = app
        .new_lead_json(
            &t.token,
            json!({"name": "Rep2's", "ownerId": rep2,
                   "attributes": {"budget": 5, "industry_position": 5, "decision_chain": 5}}),
        )
        .await;
    let closed = app
        .new_lead_json(
            &t.token,
            json!({"name": "Closed", "attributes": strong(), "ownerId": rep1}),
        )
        .await;
    close(&app, &t.token, &id(&closed), "WON").await;
    let model = active_model(&app, &t.token, None).await;
    let distinct: BTreeSet<String> = [&pool_strong, &pool_weak, &rep2_lead]
        .into_iter()
        .map(tier)
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
        let body = tier_distribution(&app, &token, team.as_deref()).await;
        assert_eq!(
            body["data"]["tierDistribution"],
            expected_distribution(&model, &visible),
            "{who}: {body}"
        );
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
                .new_lead_json(
                    &t.token,
                    json!({"name": format!("{outcome} {i}"), "attributes": attributes}),
                )
                .await;
            let entry = expected.entry(tier(&lead)).or_default();
            entry.0 += 1;
            entry.1 += i64::from(outcome == "WON");
            close(&app, &t.token, &id(&lead), outcome).await;
        }
    }
    app.new_lead_json(
        &t.token,
        json!({"name": "Still open", "attributes": strong()}),
    )
    .await;
    assert!(
        expected.len() >= 2,
        "strong and weak in different tiers: {expected:?}"
    );
    let model = active_model(&app, &t.token, None).await;

    let body = evaluation(&app, &t.token, &id(&model)).await;
    let e = &body["data"]["modelEvaluation"];
    assert!(e.is_object(), "modelEvaluation failed: {body}");
    assert_eq!(e["modelId"], model["id"]);
    assert_eq!(e["closedLeads"], 8, "the open lead is not judged: {e}");
    let auc = e["auc"].as_f64().unwrap_or_else(|| panic!("{e}"));
    assert!(auc > 0.5, "strong leads score higher: {e}");

    let order = keys(&model["tiers"]);
    let rows = e["tiers"].as_array().expect("tiers");
    let listed: Vec<&str> = rows.iter().map(|r| r["tier"].as_str().unwrap()).collect();
    let in_order: Vec<&str> = order
        .iter()
        .copied()
        .filter(|k| listed.contains(k))
        .collect();
    assert_eq!(listed, in_order, "top tier first: {e}");
    let overall = 0.5;
    let mut with_leads = Vec::new();
    for row in rows {
        let key = row["tier"].as_str().unwrap_or_default();
        let (leads, won) = expected.get(key).copied().unwrap_or((0, 0));
        assert_eq!(row["leads"], leads, "{key}: {e}");
        assert_eq!(row["won"], won, "{key}: {e}");
        let won_rate = row["wonRate"].as_f64().unwrap();
        if leads > 0 {
            assert!((won_rate - won as f64 / leads as f64).abs() < 1e-9, "{row}");
            with_leads.push(won_rate);
        }
        assert!(
            (row["lift"].as_f64().unwrap() - won_rate / overall).abs() < 1e-9,
            "{row}"
        );
    }
    assert_eq!(with_leads.len(), expected.len(), "{e}");
    assert!(
        with_leads.first() > with_leads.last(),
        "the top tier wins more often than the bottom: {e}"
    );

    // A team model without closed leads in its scope has nothing to judge.
    let team = app.new_team(&t.token, "East").await;
    let team_draft = draft(
        &app,
        &t.token,
        json!({"teamId": team, "name": "East", "copyActive": true}),
    )
    .await;
    let body = evaluation(&app, &t.token, &id(&team_draft)).await;
    let e = &body["data"]["modelEvaluation"];
    assert_eq!(e["closedLeads"], 0, "{body}");
    assert!(e["auc"].is_null(), "{body}");

    let rep = app.user_with_role(&t, "REP").await;
    let refused = evaluation(&app, &rep, &id(&model)).await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
}

const MODEL: &str = "id version status name team { id }
    dimensions { key label kind weight params }
    tiers { key label minScore followUpEveryDays }
    overrides { kind params } createdAt activatedAt";

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

fn id(value: &Value) -> String {
    value["id"].as_str().unwrap_or_default().to_owned()
}

fn tier(lead: &Value) -> String {
    lead["tier"].as_str().expect("a tier").to_owned()
}

/// The `key`s of a list of dimensions or tiers, in order.
fn keys(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|item| item["key"].as_str().expect("a key"))
        .collect()
}

fn contribution_keys(lead: &Value) -> Vec<&str> {
    lead["scoreBreakdown"]["contributions"]
        .as_array()
        .expect("contributions")
        .iter()
        .map(|c| c["dimensionKey"].as_str().expect("a key"))
        .collect()
}

/// (version, status) of each model, as listed.
fn statuses(models: &[Value]) -> Vec<(i64, &str)> {
    models
        .iter()
        .map(|m| {
            (
                m["version"].as_i64().expect("a version"),
                m["status"].as_str().expect("a status"),
            )
        })
        .collect()
}

/// Every tier of `model`, top first, with how many of `leads` are in it.
fn expected_distribution(model: &Value, leads: &[&Value]) -> Value {
    Value::Array(
        keys(&model["tiers"])
            .into_iter()
            .map(|key| {
                let count = leads.iter().filter(|l| l["tier"] == key).count();
                json!({"tier": key, "count": count})
            })
            .collect(),
    )
}

async fn create_draft(app: &TestApp, token: &str, input: Value) -> Value {
    app.graphql(
        Some(token),
        &format!(
            "mutation($input: ScoringModelInput!) {{ createScoringModelDraft(input: $input) {{ model {{ {MODEL} }} jobRun {{ id status }} }} }}"
        ),
        json!({ "input": input }),
    )
    .await
}

/// Creates a draft that must succeed, and returns the model.
async fn draft(app: &TestApp, token: &str, input: Value) -> Value {
    let body = create_draft(app, token, input).await;
    let model = body["data"]["createScoringModelDraft"]["model"].clone();
    assert!(model.is_object(), "createScoringModelDraft failed: {body}");
    model
}

async fn preview(app: &TestApp, token: &str, model: &str) -> Value {
    app.graphql(
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

async fn activate_raw(app: &TestApp, token: &str, model: &str) -> Value {
    app.graphql(
        Some(token),
        &format!(
            "mutation($input: ActivateInput!) {{ activateScoringModel(input: $input) {{ model {{ {MODEL} }} jobRun {{ id status trigger }} }} }}"
        ),
        json!({"input": {"modelId": model}}),
    )
    .await
}

/// Activates a version, which must succeed; returns `{ model jobRun }`.
async fn activate(app: &TestApp, token: &str, model: &str) -> Value {
    let body = activate_raw(app, token, model).await;
    let payload = body["data"]["activateScoringModel"].clone();
    assert!(
        payload["model"].is_object(),
        "activateScoringModel failed: {body}"
    );
    payload
}

async fn models(app: &TestApp, token: &str, team: Option<&str>) -> Vec<Value> {
    let body = app
        .graphql(
            Some(token),
            &format!("query($team: ID) {{ scoringModels(teamId: $team) {{ {MODEL} }} }}"),
            json!({ "team": team }),
        )
        .await;
    body["data"]["scoringModels"]
        .as_array()
        .unwrap_or_else(|| panic!("scoringModels failed: {body}"))
        .clone()
}

async fn active_model(app: &TestApp, token: &str, team: Option<&str>) -> Value {
    let body = app
        .graphql(
            Some(token),
            &format!("query($team: ID) {{ activeScoringModel(teamId: $team) {{ {MODEL} }} }}"),
            json!({ "team": team }),
        )
        .await;
    let model = body["data"]["activeScoringModel"].clone();
    assert!(model.is_object(), "activeScoringModel failed: {body}");
    model
}

/// A lead's score, tier and which model version scored it.
async fn scored(app: &TestApp, token: &str, lead: &str) -> Value {
    let body = app
        .graphql(
            Some(token),
            "query($id: ID!) { lead(id: $id) { id score tier
                scoreBreakdown { modelId modelVersion contributions { dimensionKey weight points } } } }",
            json!({ "id": lead }),
        )
        .await;
    let lead = body["data"]["lead"].clone();
    assert!(lead.is_object(), "lead failed: {body}");
    lead
}

async fn close(app: &TestApp, token: &str, lead: &str, outcome: &str) {
    let body = app
        .lead_mutation_json(
            token,
            "closeLead",
            "CloseLeadInput",
            json!({"id": lead, "outcome": outcome}),
        )
        .await;
    assert!(body["errors"].is_null(), "closeLead failed: {body}");
}

async fn move_stage(app: &TestApp, token: &str, lead: &str, stage: &str) {
    let body = app
        .lead_mutation_json(
            token,
            "moveLeadStage",
            "MoveStageInput",
            json!({"id": lead, "stageKey": stage}),
        )
        .await;
    assert_eq!(
        body["data"]["moveLeadStage"]["lead"]["stage"]["key"], stage,
        "moveLeadStage failed: {body}"
    );
}

async fn tier_distribution(app: &TestApp, token: &str, team: Option<&str>) -> Value {
    app.graphql(
        Some(token),
        "query($team: ID) { tierDistribution(teamId: $team) { tier count } }",
        json!({ "team": team }),
    )
    .await
}

async fn evaluation(app: &TestApp, token: &str, model: &str) -> Value {
    app.graphql(
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
) -> Value {
    app.graphql(
        Some(token),
        "query($pipeline: ID!, $from: DateTime, $to: DateTime) {
            funnel(pipelineId: $pipeline, from: $from, to: $to) {
                stage { key } entered advanced conversionRate averageDays } }",
        json!({ "pipeline": pipeline, "from": from, "to": to }),
    )
    .await
}
