//! Stage urgency, bursts, responsiveness and dates (issue 18 items 3 and
//! 4): a tenant writes the rules into its model, and leads move by them
//! on every change and on activation.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::helpers::{AppliedOverride, GraphqlErrors, Id, Tenant, TestApp, spawn_app};

const LEAD: &str = "id tier score flags stage { key }
    scoreBreakdown { tier baseTier contributions { dimensionKey rawValue normalized points detail }
                     overrides { rule effect reason } }";

/// A lead as [`LEAD`] asks for it.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Lead {
    id: String,
    tier: String,
    score: f64,
    flags: Vec<String>,
    stage: StageKey,
    score_breakdown: Breakdown,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StageKey {
    key: String,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Breakdown {
    tier: String,
    base_tier: String,
    contributions: Vec<Contribution>,
    overrides: Vec<AppliedOverride>,
}

/// `contributions { dimensionKey rawValue normalized points detail }`.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Contribution {
    dimension_key: String,
    raw_value: f64,
    normalized: f64,
    points: f64,
    detail: Option<String>,
}

impl Lead {
    fn override_of(&self, rule: &str) -> &AppliedOverride {
        self.score_breakdown
            .overrides
            .iter()
            .find(|o| o.rule == rule)
            .unwrap_or_else(|| panic!("no {rule} override: {self:?}"))
    }

    /// The contribution of the dimension `key`.
    fn contribution(&self, key: &str) -> &Contribution {
        self.score_breakdown
            .contributions
            .iter()
            .find(|c| c.dimension_key == key)
            .unwrap_or_else(|| panic!("no {key} contribution: {self:?}"))
    }
}

/// `{ lead { … } }` of a lead mutation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    lead: Lead,
}

/// `model { id overrides { kind params } }` of a new draft.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Draft {
    id: String,
    overrides: Vec<Value>,
}

/// Creates a draft from the active model with `changes` (dimensions,
/// overrides): the draft, or why it was refused.
async fn create_draft(app: &TestApp, t: &Tenant, changes: Value) -> Result<Draft, GraphqlErrors> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Created {
        model: Draft,
    }
    let mut input = json!({"name": "Urgency", "copyActive": true});
    if let (Some(input), Some(changes)) = (input.as_object_mut(), changes.as_object()) {
        input.extend(changes.clone());
    }
    let created: Created = app
        .query_root(
            Some(&t.token),
            "mutation($input: ScoringModelInput!) { createScoringModelDraft(input: $input) { model { id overrides { kind params } } } }",
            json!({ "input": input }),
        )
        .await?;
    Ok(created.model)
}

/// Drafts and activates a model with `changes`; returns its id.
async fn activate_with(app: &TestApp, t: &Tenant, changes: Value) -> String {
    let id = create_draft(app, t, changes)
        .await
        .unwrap_or_else(|e| panic!("createScoringModelDraft failed: {e}"))
        .id;
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Activated {
        model: Status,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Status {
        status: String,
    }
    let activated: Activated = app
        .root(
            Some(&t.token),
            "mutation($input: ActivateInput!) { activateScoringModel(input: $input) { model { status } } }",
            json!({"input": {"modelId": id}}),
        )
        .await;
    assert_eq!(activated.model.status, "ACTIVE", "{activated:?}");
    id
}

async fn create_lead(app: &TestApp, t: &Tenant, input: Value) -> Lead {
    let mut full = json!({"name": "Lead", "ownerId": t.owner_id});
    if let (Some(full), Some(input)) = (full.as_object_mut(), input.as_object()) {
        full.extend(input.clone());
    }
    let created: Payload = app
        .root(
            Some(&t.token),
            &format!("mutation($input: CreateLeadInput!) {{ createLead(input: $input) {{ lead {{ {LEAD} }} }} }}"),
            json!({ "input": full }),
        )
        .await;
    created.lead
}

async fn lead(app: &TestApp, t: &Tenant, id: &str) -> Lead {
    app.root(
        Some(&t.token),
        &format!("query($id: ID!) {{ lead(id: $id) {{ {LEAD} }} }}"),
        json!({ "id": id }),
    )
    .await
}

/// Records `signal` on `lead` as happening `hours_ago` hours before `now`.
/// Every time a test writes is reckoned from its one `now`, so the gaps
/// between them are exactly the hours it names.
async fn record(
    app: &TestApp,
    t: &Tenant,
    lead: &str,
    signal: &str,
    now: DateTime<Utc>,
    hours_ago: i64,
) -> Lead {
    let at = (now - Duration::hours(hours_ago)).to_rfc3339();
    let recorded: Payload = app
        .root(
            Some(&t.token),
            &format!("mutation($input: RecordActivityInput!) {{ recordActivity(input: $input) {{ lead {{ {LEAD} }} }} }}"),
            json!({"input": {"leadId": lead, "signalKey": signal, "occurredAt": at}}),
        )
        .await;
    recorded.lead
}

/// A software pipeline, whose stages include contract negotiation; its id.
async fn software_pipeline(app: &TestApp, t: &Tenant) -> String {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Created {
        pipeline: Id,
    }
    let created: Created = app
        .root(
            Some(&t.token),
            "mutation($input: PipelineInput!) { createPipeline(input: $input) { pipeline { id } } }",
            json!({"input": {"name": "Software deals", "template": "saas"}}),
        )
        .await;
    created.pipeline.id
}

/// The queue's reasons for the lead `id`, joined.
async fn reasons_of(app: &TestApp, t: &Tenant, id: &str) -> String {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        reasons: Vec<String>,
        lead: Id,
    }
    let queue: Vec<Entry> = app
        .root(
            Some(&t.token),
            "{ followUpQueue(limit: 100) { reasons lead { id } } }",
            json!({}),
        )
        .await;
    queue
        .iter()
        .find(|e| e.lead.id == id)
        .map(|e| e.reasons.join("; "))
        .unwrap_or_else(|| panic!("the lead is in the queue: {queue:?}"))
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
    let id = negotiating.id.as_str();
    assert_eq!(negotiating.stage.key, "negotiation");
    assert_ne!(negotiating.tier, "A", "{negotiating:?}");

    // Activating the rule re-scores the lead already there.
    activate_with(
        &app,
        &t,
        json!({"overrides": [{"kind": "STAGE", "params": {"stages": ["negotiation"], "tier": "A"}}]}),
    )
    .await;
    let lifted = lead(&app, &t, id).await;
    assert_eq!(lifted.tier, "A", "{lifted:?}");
    assert_eq!(
        lifted.override_of("STAGE").reason,
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
    assert_ne!(proposal.tier, "A", "{proposal:?}");
    let moved: Payload = app
        .root(
            Some(&t.token),
            &format!("mutation($input: MoveStageInput!) {{ moveLeadStage(input: $input) {{ lead {{ {LEAD} }} }} }}"),
            json!({"input": {"id": proposal.id, "stageKey": "negotiation"}}),
        )
        .await;
    assert_eq!(moved.lead.stage.key, "negotiation");
    assert_eq!(moved.lead.tier, "A", "{moved:?}");
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
    let id = quiet.id.as_str();
    let now = Utc::now();
    let quiet = record(&app, &t, id, "website_visit", now, 10 * 24).await;
    assert_eq!(quiet.tier, "C", "{quiet:?}");

    let once = record(&app, &t, id, "website_visit", now, 30).await;
    let twice = record(&app, &t, id, "detail_question", now, 5).await;
    assert_eq!(twice.tier, "C", "two are not a burst: {once:?} {twice:?}");
    let burst = record(&app, &t, id, "inbound_inquiry", now, 1).await;
    assert_eq!(burst.tier, "B", "{burst:?}");
    assert_eq!(burst.score_breakdown.base_tier, "C");
    let o = burst.override_of("BURST");
    assert_eq!(o.effect, "raised C → B");
    assert_eq!(
        o.reason,
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
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Upserted {
        field: Field,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Field {
        key: String,
        r#type: String,
    }
    let upserted: Upserted = app
        .root(
            Some(&t.token),
            "mutation($input: LeadFieldInput!) { upsertLeadField(input: $input) { field { key type } } }",
            json!({"input": {"key": "tender_date", "label": "Tender date", "type": "DATE"}}),
        )
        .await;
    assert_eq!(upserted.field.key, "tender_date", "{upserted:?}");
    assert_eq!(upserted.field.r#type, "DATE", "{upserted:?}");
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
    assert!(near.score > far.score, "{near:?} {far:?}");
    let tender = near.contribution("tender");
    assert_eq!(tender.raw_value, 3.0);
    assert_eq!(tender.detail.as_deref(), Some("tender_date in 3 day(s)"));
    assert!((tender.normalized - 0.9).abs() < 1e-9);

    // A date must be a date; nothing is written.
    let refused = app
        .refused(
            Some(&t.token),
            "mutation($input: CreateLeadInput!) { createLead(input: $input) { lead { id } } }",
            json!({"input": {"name": "Bad", "attributes": {"tender_date": "next Tuesday"}}}),
        )
        .await;
    assert_eq!(refused.code(), "BAD_USER_INPUT", "{refused}");
    assert_eq!(refused.field(), "input.attributes.tender_date");
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
    let (quick, slow) = (quick.id.as_str(), slow.id.as_str());
    // One clock reading for every activity: each reply comes exactly the
    // hours named after our contact. Read once per call, the clock moved
    // between a contact and its reply, and "2 hours" came back a hair over
    // 2.0, failing the exact compare.
    let now = Utc::now();
    record(&app, &t, quick, "call", now, 5 * 24).await;
    let quick = record(&app, &t, quick, "inbound_inquiry", now, 5 * 24 - 2).await;
    record(&app, &t, slow, "email", now, 10 * 24).await;
    let slow = record(&app, &t, slow, "inbound_inquiry", now, 7 * 24).await;
    assert_eq!(quick.contribution("answers").raw_value, 2.0, "{quick:?}");
    assert_eq!(slow.contribution("answers").raw_value, 72.0, "{slow:?}");
    assert_eq!(
        quick.contribution("answers").detail.as_deref(),
        Some("replies to our contacts in 2.0 hours (median)")
    );
    assert!(quick.score > slow.score, "{quick:?} {slow:?}");
}

#[tokio::test]
async fn rules_with_an_unknown_stage_or_a_count_below_one_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let before: Vec<Id> = app
        .root(Some(&t.token), "{ scoringModels { id } }", json!({}))
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
        let refused = create_draft(&app, &t, json!({ "overrides": overrides }))
            .await
            .expect_err(field);
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{refused}");
        assert_eq!(refused.field(), field, "{refused}");
    }
    let after: Vec<Id> = app
        .root(Some(&t.token), "{ scoringModels { id } }", json!({}))
        .await;
    assert_eq!(before, after, "nothing was written");
    assert_eq!(before.len(), 1, "{before:?}");
}

#[tokio::test]
async fn a_second_tenant_can_neither_read_nor_use_nor_change_the_rules() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    software_pipeline(&app, &acme).await;
    let rule = json!([{"kind": "STAGE", "params": {"stages": ["negotiation"], "tier": "A"}}]);
    let draft = create_draft(&app, &acme, json!({ "overrides": rule }))
        .await
        .unwrap_or_else(|e| panic!("createScoringModelDraft failed: {e}"))
        .id;

    // Globex does not see acme's rule among its models.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Model {
        id: String,
        overrides: Vec<Kind>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Kind {
        kind: String,
    }
    let theirs: Vec<Model> = app
        .root(
            Some(&globex.token),
            "{ scoringModels { id overrides { kind } } }",
            json!({}),
        )
        .await;
    assert!(!theirs.is_empty(), "globex has its own default");
    assert!(
        theirs
            .iter()
            .all(|m| m.id != draft && m.overrides.iter().all(|o| o.kind != "STAGE")),
        "{theirs:?}"
    );
    // Nor can it activate it.
    let refused = app
        .refused(
            Some(&globex.token),
            "mutation($input: ActivateInput!) { activateScoringModel(input: $input) { model { id } } }",
            json!({"input": {"modelId": draft}}),
        )
        .await;
    assert_eq!(refused.code(), "NOT_FOUND", "{refused}");
    // Acme's stages are not globex's to name.
    let refused = create_draft(&app, &globex, json!({ "overrides": rule }))
        .await
        .expect_err("acme's stage");
    assert_eq!(refused.code(), "BAD_USER_INPUT", "{refused}");
    assert_eq!(refused.field(), "input.overrides[0].params.stages[0]");
}
