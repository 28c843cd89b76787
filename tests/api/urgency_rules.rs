//! Stage urgency, bursts, responsiveness and dates (issue 18 items 3 and
//! 4): a tenant writes the rules into its model, and leads move by them
//! on every change and on activation.

use serde_json::{Value, json};

use crate::helpers::{Tenant, TestApp, error_code, error_field, spawn_app};

const LEAD: &str = "id tier score flags stage { key }
    scoreBreakdown { tier baseTier contributions { dimensionKey rawValue normalized points detail }
                     overrides { rule effect reason } }";

/// Creates a draft from the active model with `changes` (dimensions,
/// overrides), returning the whole response.
async fn create_draft(app: &TestApp, t: &Tenant, changes: Value) -> Value {
    let mut input = json!({"name": "Urgency", "copyActive": true});
    if let (Some(input), Some(changes)) = (input.as_object_mut(), changes.as_object()) {
        input.extend(changes.clone());
    }
    app.graphql(
        Some(&t.token),
        "mutation($input: ScoringModelInput!) { createScoringModelDraft(input: $input) { model { id overrides { kind params } } } }",
        json!({ "input": input }),
    )
    .await
}

/// Drafts and activates a model with `changes`; returns its id.
async fn activate_with(app: &TestApp, t: &Tenant, changes: Value) -> String {
    let body = create_draft(app, t, changes).await;
    let id = body["data"]["createScoringModelDraft"]["model"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("createScoringModelDraft failed: {body}"))
        .to_owned();
    let body = app
        .graphql(
            Some(&t.token),
            "mutation($input: ActivateInput!) { activateScoringModel(input: $input) { model { status } } }",
            json!({"input": {"modelId": id}}),
        )
        .await;
    assert_eq!(
        body["data"]["activateScoringModel"]["model"]["status"], "ACTIVE",
        "{body}"
    );
    id
}

async fn create_lead(app: &TestApp, t: &Tenant, input: Value) -> Value {
    let mut full = json!({"name": "Lead", "ownerId": t.owner_id});
    if let (Some(full), Some(input)) = (full.as_object_mut(), input.as_object()) {
        full.extend(input.clone());
    }
    let body = app
        .graphql(
            Some(&t.token),
            &format!("mutation($input: CreateLeadInput!) {{ createLead(input: $input) {{ lead {{ {LEAD} }} }} }}"),
            json!({ "input": full }),
        )
        .await;
    let lead = body["data"]["createLead"]["lead"].clone();
    assert!(lead.is_object(), "createLead failed: {body}");
    lead
}

async fn lead(app: &TestApp, t: &Tenant, id: &str) -> Value {
    let body = app
        .graphql(
            Some(&t.token),
            &format!("query($id: ID!) {{ lead(id: $id) {{ {LEAD} }} }}"),
            json!({ "id": id }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["lead"].clone()
}

async fn record(app: &TestApp, t: &Tenant, lead: &str, signal: &str, hours_ago: i64) -> Value {
    let at = (chrono::Utc::now() - chrono::Duration::hours(hours_ago)).to_rfc3339();
    let body = app
        .graphql(
            Some(&t.token),
            &format!("mutation($input: RecordActivityInput!) {{ recordActivity(input: $input) {{ lead {{ {LEAD} }} }} }}"),
            json!({"input": {"leadId": lead, "signalKey": signal, "occurredAt": at}}),
        )
        .await;
    let lead = body["data"]["recordActivity"]["lead"].clone();
    assert!(lead.is_object(), "recordActivity failed: {body}");
    lead
}

/// A software pipeline, whose stages include contract negotiation; its id.
async fn software_pipeline(app: &TestApp, t: &Tenant) -> String {
    let body = app
        .graphql(
            Some(&t.token),
            "mutation($input: PipelineInput!) { createPipeline(input: $input) { pipeline { id } } }",
            json!({"input": {"name": "Software deals", "template": "saas"}}),
        )
        .await;
    body["data"]["createPipeline"]["pipeline"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("createPipeline failed: {body}"))
        .to_owned()
}

async fn reasons_of(app: &TestApp, t: &Tenant, id: &str) -> String {
    let body = app
        .graphql(
            Some(&t.token),
            "{ followUpQueue(limit: 100) { reasons lead { id } } }",
            json!({}),
        )
        .await;
    body["data"]["followUpQueue"]
        .as_array()
        .unwrap_or_else(|| panic!("followUpQueue failed: {body}"))
        .iter()
        .find(|e| e["lead"]["id"] == id)
        .map(|e| e["reasons"].to_string())
        .unwrap_or_else(|| panic!("the lead is in the queue: {body}"))
}

fn override_of<'a>(lead: &'a Value, rule: &str) -> &'a Value {
    lead["scoreBreakdown"]["overrides"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["rule"] == rule))
        .unwrap_or_else(|| panic!("no {rule} override: {lead}"))
}

fn weak() -> Value {
    json!({"budget": 1, "authority": 1, "need": 1, "timeline": 1, "industry_position": 1, "decision_chain": 1})
}

fn middling() -> Value {
    json!({"budget": 3, "authority": 2, "need": 2, "timeline": 2, "industry_position": 3, "decision_chain": 3})
}

#[tokio::test]
async fn a_stage_rule_lifts_a_contract_negotiation_lead_to_a() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let pipeline = software_pipeline(&app, &t).await;
    let negotiating = create_lead(
        &app,
        &t,
        json!({"pipelineId": pipeline, "stageKey": "negotiation", "attributes": weak()}),
    )
    .await;
    let id = negotiating["id"].as_str().unwrap_or_default();
    assert_ne!(negotiating["tier"], "A", "{negotiating}");

    // Activating the rule re-scores the lead already there.
    activate_with(
        &app,
        &t,
        json!({"overrides": [{"kind": "STAGE", "params": {"stages": ["negotiation"], "tier": "A"}}]}),
    )
    .await;
    let lifted = lead(&app, &t, id).await;
    assert_eq!(lifted["tier"], "A", "{lifted}");
    assert_eq!(
        override_of(&lifted, "STAGE")["reason"],
        "in stage negotiation: at least tier A"
    );
    let reasons = reasons_of(&app, &t, id).await;
    assert!(
        reasons.contains("late stage: Contract negotiation"),
        "{reasons}"
    );

    // A lead moved into the stage later is lifted on the move.
    let proposal = create_lead(
        &app,
        &t,
        json!({"pipelineId": pipeline, "stageKey": "proposal", "attributes": weak()}),
    )
    .await;
    assert_ne!(proposal["tier"], "A", "{proposal}");
    let body = app
        .graphql(
            Some(&t.token),
            &format!("mutation($input: MoveStageInput!) {{ moveLeadStage(input: $input) {{ lead {{ {LEAD} }} }} }}"),
            json!({"input": {"id": proposal["id"], "stageKey": "negotiation"}}),
        )
        .await;
    assert_eq!(body["data"]["moveLeadStage"]["lead"]["tier"], "A", "{body}");
}

#[tokio::test]
async fn a_burst_of_three_inbound_signals_in_two_days_lifts_a_quiet_c_lead() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    activate_with(
        &app,
        &t,
        json!({"overrides": [{"kind": "BURST", "params": {"atLeast": 3, "withinDays": 2, "tier": "B"}}]}),
    )
    .await;
    let quiet = create_lead(&app, &t, json!({"attributes": middling()})).await;
    let id = quiet["id"].as_str().unwrap_or_default();
    let quiet = record(&app, &t, id, "website_visit", 10 * 24).await;
    assert_eq!(quiet["tier"], "C", "{quiet}");

    let once = record(&app, &t, id, "website_visit", 30).await;
    let twice = record(&app, &t, id, "detail_question", 5).await;
    assert_eq!(twice["tier"], "C", "two are not a burst: {once} {twice}");
    let burst = record(&app, &t, id, "inbound_inquiry", 1).await;
    assert_eq!(burst["tier"], "B", "{burst}");
    assert_eq!(burst["scoreBreakdown"]["baseTier"], "C");
    let o = override_of(&burst, "BURST");
    assert_eq!(o["effect"], "raised C → B");
    assert_eq!(
        o["reason"],
        "burst: 3 inbound signals in 2 days: at least tier B"
    );
    let reasons = reasons_of(&app, &t, id).await;
    assert!(
        reasons.contains("burst: 3 inbound signals in 2 days"),
        "{reasons}"
    );
}

#[tokio::test]
async fn a_tender_date_near_its_day_scores_higher_than_a_far_one() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let body = app
        .graphql(
            Some(&t.token),
            "mutation($input: LeadFieldInput!) { upsertLeadField(input: $input) { field { key type } } }",
            json!({"input": {"key": "tender_date", "label": "Tender date", "type": "DATE"}}),
        )
        .await;
    assert_eq!(
        body["data"]["upsertLeadField"]["field"]["type"], "DATE",
        "{body}"
    );
    activate_with(
        &app,
        &t,
        json!({"dimensions": [
            {"key": "budget", "label": "Budget", "kind": "RATING", "weight": 50, "params": {"field": "budget"}},
            {"key": "tender", "label": "Tender", "kind": "DATE_PROXIMITY", "weight": 50,
             "params": {"field": "tender_date", "horizonDays": 30}}
        ]}),
    )
    .await;
    let today = chrono::Utc::now().date_naive();
    let date = |days: i64| (today + chrono::Duration::days(days)).to_string();
    let near = create_lead(
        &app,
        &t,
        json!({"attributes": {"budget": 3, "tender_date": date(3)}}),
    )
    .await;
    let far = create_lead(
        &app,
        &t,
        json!({"attributes": {"budget": 3, "tender_date": date(25)}}),
    )
    .await;
    let score = |l: &Value| l["score"].as_f64().unwrap_or_default();
    assert!(score(&near) > score(&far), "{near} {far}");
    let tender = &near["scoreBreakdown"]["contributions"][1];
    assert_eq!(tender["rawValue"], 3.0);
    assert_eq!(tender["detail"], "tender_date in 3 day(s)");
    assert!((tender["normalized"].as_f64().unwrap_or_default() - 0.9).abs() < 1e-9);

    // A date must be a date; nothing is written.
    let body = app
        .graphql(
            Some(&t.token),
            "mutation($input: CreateLeadInput!) { createLead(input: $input) { lead { id } } }",
            json!({"input": {"name": "Bad", "attributes": {"tender_date": "next Tuesday"}}}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "input.attributes.tender_date");
}

#[tokio::test]
async fn responsiveness_ranks_a_quick_responder_over_a_slow_one() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    activate_with(
        &app,
        &t,
        json!({"dimensions": [
            {"key": "budget", "label": "Budget", "kind": "RATING", "weight": 50, "params": {"field": "budget"}},
            {"key": "answers", "label": "Answers quickly", "kind": "RESPONSIVENESS", "weight": 50,
             "params": {"windowDays": 30, "targetHours": 24}}
        ]}),
    )
    .await;
    let quick = create_lead(
        &app,
        &t,
        json!({"name": "Quick", "attributes": {"budget": 3}}),
    )
    .await;
    let slow = create_lead(
        &app,
        &t,
        json!({"name": "Slow", "attributes": {"budget": 3}}),
    )
    .await;
    let (quick, slow) = (
        quick["id"].as_str().unwrap_or_default(),
        slow["id"].as_str().unwrap_or_default(),
    );
    record(&app, &t, quick, "call", 5 * 24).await;
    let quick = record(&app, &t, quick, "inbound_inquiry", 5 * 24 - 2).await;
    record(&app, &t, slow, "email", 10 * 24).await;
    let slow = record(&app, &t, slow, "inbound_inquiry", 7 * 24).await;
    let answers = |l: &Value| l["scoreBreakdown"]["contributions"][1].clone();
    assert_eq!(answers(&quick)["rawValue"], 2.0, "{quick}");
    assert_eq!(answers(&slow)["rawValue"], 72.0, "{slow}");
    assert_eq!(
        answers(&quick)["detail"],
        "replies to our contacts in 2.0 hours (median)"
    );
    assert!(
        quick["score"].as_f64() > slow["score"].as_f64(),
        "{quick} {slow}"
    );
}

#[tokio::test]
async fn rules_with_an_unknown_stage_or_a_count_below_one_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let before = app
        .graphql(Some(&t.token), "{ scoringModels { id } }", json!({}))
        .await;
    for (overrides, field) in [
        (
            json!([{"kind": "STAGE", "params": {"stages": ["proposal", "haggling"], "tier": "A"}}]),
            "input.overrides[0].params.stages[1]",
        ),
        (
            json!([{"kind": "BURST", "params": {"atLeast": 0, "withinDays": 2, "tier": "B"}}]),
            "input.overrides[0].params.atLeast",
        ),
        (
            json!([{"kind": "BURST", "params": {"atLeast": 3, "withinDays": -1, "tier": "B"}}]),
            "input.overrides[0].params.withinDays",
        ),
    ] {
        let body = create_draft(&app, &t, json!({ "overrides": overrides })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), field, "{body}");
    }
    let after = app
        .graphql(Some(&t.token), "{ scoringModels { id } }", json!({}))
        .await;
    assert_eq!(before, after, "nothing was written");
}

#[tokio::test]
async fn a_second_tenant_can_neither_read_nor_use_nor_change_the_rules() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    software_pipeline(&app, &acme).await;
    let rule = json!([{"kind": "STAGE", "params": {"stages": ["negotiation"], "tier": "A"}}]);
    let draft = create_draft(&app, &acme, json!({ "overrides": rule })).await;
    let draft = draft["data"]["createScoringModelDraft"]["model"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // Globex does not see acme's rule among its models.
    let theirs = app
        .graphql(
            Some(&globex.token),
            "{ scoringModels { id overrides { kind } } }",
            json!({}),
        )
        .await;
    let text = theirs.to_string();
    assert!(
        !text.contains(&draft) && !text.contains("\"STAGE\""),
        "{text}"
    );
    // Nor can it activate it.
    let body = app
        .graphql(
            Some(&globex.token),
            "mutation($input: ActivateInput!) { activateScoringModel(input: $input) { model { id } } }",
            json!({"input": {"modelId": draft}}),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    // Acme's stages are not globex's to name.
    let body = create_draft(&app, &globex, json!({ "overrides": rule })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "input.overrides[0].params.stages[0]");
}
