//! An admin shaping LeadRank to their sales process: pipelines from
//! templates or by hand, signal types and lead fields, each change refused
//! whole when anything is wrong, and every change in the audit log.

use serde_json::{Value, json};

use crate::helpers::{Tenant, TestApp, error_code, error_field, error_message, spawn_app};

const PIPELINE: &str =
    "id name isDefault stages { id key name kind position winProbability rottingDays }";

fn stage(key: &str, kind: &str, win_probability: f64) -> Value {
    json!({"key": key, "name": key.replace('_', " "), "kind": kind,
           "winProbability": win_probability, "rottingDays": 10})
}

/// lead (0.1) → demo (0.4) → won / lost.
fn small_pipeline() -> Value {
    json!([
        stage("lead", "OPEN", 0.1),
        stage("demo", "OPEN", 0.4),
        stage("won", "WON", 1.0),
        stage("lost", "LOST", 0.0),
    ])
}

impl TestApp {
    async fn create_pipeline(&self, token: &str, input: Value) -> Value {
        self.graphql(
            Some(token),
            &format!("mutation($input: PipelineInput!) {{ createPipeline(input: $input) {{ pipeline {{ {PIPELINE} }} }} }}"),
            json!({ "input": input }),
        )
        .await
    }

    /// Creates a pipeline that must succeed, and returns it.
    async fn new_pipeline(&self, token: &str, input: Value) -> Value {
        let body = self.create_pipeline(token, input).await;
        let pipeline = body["data"]["createPipeline"]["pipeline"].clone();
        assert!(pipeline.is_object(), "createPipeline failed: {body}");
        pipeline
    }

    async fn update_pipeline(&self, token: &str, input: Value) -> Value {
        self.graphql(
            Some(token),
            &format!("mutation($input: UpdatePipelineInput!) {{ updatePipeline(input: $input) {{ pipeline {{ {PIPELINE} }} }} }}"),
            json!({ "input": input }),
        )
        .await
    }

    async fn pipelines(&self, token: &str) -> Value {
        let body = self
            .graphql(
                Some(token),
                &format!("{{ pipelines {{ {PIPELINE} }} }}"),
                json!({}),
            )
            .await;
        assert!(body["errors"].is_null(), "pipelines failed: {body}");
        body["data"]["pipelines"].clone()
    }

    async fn upsert_signal_type(&self, token: &str, input: Value) -> Value {
        self.graphql(
            Some(token),
            "mutation($input: SignalTypeInput!) { upsertSignalType(input: $input) { signalType { id key label points halfLifeDays urgent direction retired } } }",
            json!({ "input": input }),
        )
        .await
    }

    async fn upsert_lead_field(&self, token: &str, input: Value) -> Value {
        self.graphql(
            Some(token),
            "mutation($input: LeadFieldInput!) { upsertLeadField(input: $input) { field { key label type options required } } }",
            json!({ "input": input }),
        )
        .await
    }

    async fn catalog(&self, token: &str) -> Value {
        let body = self
            .graphql(
                Some(token),
                "{ signalTypes { key label points halfLifeDays urgent direction retired } leadFields { key label type options required } }",
                json!({}),
            )
            .await;
        assert!(body["errors"].is_null(), "catalog failed: {body}");
        body["data"].clone()
    }

    async fn audit_log(&self, token: &str, first: i32, after: Option<&str>) -> Value {
        self.graphql(
            Some(token),
            "query($first: Int, $after: String) { auditLog(first: $first, after: $after) {
                edges { cursor node { id at action entity entityId before after actor { id email } } }
                pageInfo { hasNextPage endCursor } } }",
            json!({ "first": first, "after": after }),
        )
        .await
    }

    /// Creates a lead in a stage of a pipeline; returns (id, score).
    async fn lead_in_stage(
        &self,
        tenant: &Tenant,
        pipeline: &str,
        stage: &str,
        name: &str,
        attributes: Value,
    ) -> (String, f64) {
        let body = self
            .graphql(
                Some(&tenant.token),
                "mutation($input: CreateLeadInput!) { createLead(input: $input) { lead { id score stage { key } } } }",
                json!({"input": {"name": name, "pipelineId": pipeline, "stageKey": stage,
                                 "ownerId": tenant.owner_id, "attributes": attributes}}),
            )
            .await;
        let lead = &body["data"]["createLead"]["lead"];
        assert_eq!(lead["stage"]["key"], stage, "createLead failed: {body}");
        (
            lead["id"].as_str().unwrap().to_owned(),
            lead["score"].as_f64().unwrap(),
        )
    }

    /// A lead's stage key, score, version and newest score event reason.
    async fn lead_state(&self, token: &str, id: &str) -> Value {
        let body = self
            .graphql(
                Some(token),
                "query($id: ID!) { lead(id: $id) { stage { id key } score version scoreHistory(first: 1) { reason } } }",
                json!({ "id": id }),
            )
            .await;
        assert!(body["data"]["lead"].is_object(), "lead failed: {body}");
        body["data"]["lead"].clone()
    }
}

fn keys(pipeline: &Value) -> Vec<&str> {
    pipeline["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| s["key"].as_str().expect("a key"))
        .collect()
}

fn stage_named<'a>(pipeline: &'a Value, key: &str) -> &'a Value {
    pipeline["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .find(|s| s["key"] == key)
        .unwrap_or_else(|| panic!("no stage {key} in {pipeline}"))
}

/// The stages of `pipeline` as `StageInput`s, for editing.
fn as_input(pipeline: &Value) -> Vec<Value> {
    pipeline["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| {
            json!({"key": s["key"], "name": s["name"], "kind": s["kind"],
                   "winProbability": s["winProbability"], "rottingDays": s["rottingDays"]})
        })
        .collect()
}

#[tokio::test]
async fn a_pipeline_from_a_template_speaks_the_tenants_language() {
    let app = spawn_app().await;
    let en = app.sign_up_tenant("acme").await;
    let zh = app.sign_up_tenant_in("huaxia", "zh-CN").await;

    let english = app
        .new_pipeline(
            &en.token,
            json!({"name": "Courses", "template": "education"}),
        )
        .await;
    let chinese = app
        .new_pipeline(
            &zh.token,
            json!({"name": "课程销售", "template": "education"}),
        )
        .await;

    let education = [
        "lead",
        "initial_contact",
        "trial_lesson",
        "parent_talk",
        "enrolled",
        "lost",
    ];
    assert_eq!(keys(&english), education);
    assert_eq!(keys(&chinese), education);
    assert_eq!(
        stage_named(&english, "trial_lesson")["name"],
        "Trial lesson"
    );
    assert_eq!(stage_named(&chinese, "trial_lesson")["name"], "试听课");
    assert_eq!(stage_named(&chinese, "enrolled")["kind"], "WON");
    assert_eq!(english["isDefault"], false);
    let positions: Vec<i64> = english["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, [0, 1, 2, 3, 4, 5]);

    let listed = app.pipelines(&en.token).await;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed[0]["isDefault"], true);
    assert_eq!(listed[1]["name"], "Courses");

    for template in ["general", "saas", "finance", "medical"] {
        let pipeline = app
            .new_pipeline(&en.token, json!({"name": template, "template": template}))
            .await;
        let kinds: Vec<&str> = pipeline["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == "WON").count(),
            1,
            "{template}"
        );
    }
    let unknown = app
        .create_pipeline(&en.token, json!({"name": "Shop", "template": "retail"}))
        .await;
    assert_eq!(error_code(&unknown), "BAD_USER_INPUT");
    assert_eq!(error_field(&unknown), "input.template");
}

#[tokio::test]
async fn a_pipeline_from_explicit_stages_keeps_their_order_and_numbers() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;

    let pipeline = app
        .new_pipeline(
            &t.token,
            json!({"name": "Partners", "stages": [
                {"key": "intro", "name": "Introduction", "kind": "OPEN", "winProbability": 0.2, "rottingDays": 5},
                {"key": "signed", "name": "Signed", "kind": "WON", "winProbability": 1.0},
                {"key": "dropped", "name": "Dropped", "kind": "LOST", "winProbability": 0.0},
            ]}),
        )
        .await;

    assert_eq!(keys(&pipeline), ["intro", "signed", "dropped"]);
    let intro = stage_named(&pipeline, "intro");
    assert_eq!(intro["name"], "Introduction");
    assert_eq!(intro["winProbability"], 0.2);
    assert_eq!(intro["rottingDays"], 5);
    assert!(stage_named(&pipeline, "signed")["rottingDays"].is_null());

    let taken = app
        .create_pipeline(&t.token, json!({"name": "Partners", "template": "saas"}))
        .await;
    assert_eq!(error_code(&taken), "CONFLICT");
}

#[tokio::test]
async fn stages_are_renamed_and_reordered_and_keep_their_ids() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let pipeline = app
        .new_pipeline(
            &t.token,
            json!({"name": "Deals", "stages": small_pipeline()}),
        )
        .await;
    let demo_id = stage_named(&pipeline, "demo")["id"].clone();

    let body = app
        .update_pipeline(
            &t.token,
            json!({"id": pipeline["id"], "name": "Big deals", "stages": [
                stage("demo", "OPEN", 0.4),
                {"key": "lead", "name": "New lead", "kind": "OPEN", "winProbability": 0.1, "rottingDays": null},
                stage("negotiation", "OPEN", 0.7),
                stage("won", "WON", 1.0),
                stage("lost", "LOST", 0.0),
            ]}),
        )
        .await;
    let updated = &body["data"]["updatePipeline"]["pipeline"];
    assert!(updated.is_object(), "updatePipeline failed: {body}");

    assert_eq!(updated["name"], "Big deals");
    assert_eq!(
        keys(updated),
        ["demo", "lead", "negotiation", "won", "lost"]
    );
    assert_eq!(stage_named(updated, "demo")["id"], demo_id);
    assert_eq!(stage_named(updated, "demo")["position"], 0);
    assert_eq!(stage_named(updated, "lead")["name"], "New lead");
    assert!(stage_named(updated, "lead")["rottingDays"].is_null());
    let listed = app.pipelines(&t.token).await;
    assert_eq!(listed[1], *updated);
}

#[tokio::test]
async fn an_invalid_pipeline_is_refused_with_the_field_named_and_nothing_changes() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let pipeline = app
        .new_pipeline(
            &t.token,
            json!({"name": "Deals", "stages": small_pipeline()}),
        )
        .await;
    let before = app.pipelines(&t.token).await;

    let cases = [
        (
            "the WON stage removed",
            json!([stage("lead", "OPEN", 0.1), stage("lost", "LOST", 0.0)]),
            "input.stages",
        ),
        (
            "two WON stages",
            json!([
                stage("lead", "OPEN", 0.1),
                stage("won", "WON", 1.0),
                stage("won_too", "WON", 1.0),
                stage("lost", "LOST", 0.0)
            ]),
            "input.stages[2].kind",
        ),
        (
            "a win probability above 1",
            json!([
                stage("lead", "OPEN", 0.1),
                stage("won", "WON", 1.0),
                stage("demo", "OPEN", 1.5),
                stage("lost", "LOST", 0.0)
            ]),
            "input.stages[2].winProbability",
        ),
        (
            "a duplicate key",
            json!([
                stage("lead", "OPEN", 0.1),
                stage("demo", "OPEN", 0.4),
                stage("won", "WON", 1.0),
                stage("demo", "OPEN", 0.5),
                stage("lost", "LOST", 0.0)
            ]),
            "input.stages[3].key",
        ),
        (
            "no LOST stage",
            json!([stage("lead", "OPEN", 0.1), stage("won", "WON", 1.0)]),
            "input.stages",
        ),
        (
            "a key with capitals",
            json!([
                stage("Lead", "OPEN", 0.1),
                stage("won", "WON", 1.0),
                stage("lost", "LOST", 0.0)
            ]),
            "input.stages[0].key",
        ),
    ];
    for (case, stages, field) in cases {
        let body = app
            .update_pipeline(
                &t.token,
                json!({"id": pipeline["id"], "name": "Renamed", "stages": stages}),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{case}: {body}");
        assert_eq!(error_field(&body), field, "{case}: {body}");

        let created = app
            .create_pipeline(&t.token, json!({"name": case, "stages": stages}))
            .await;
        assert_eq!(error_field(&created), field, "{case}: {created}");
    }

    assert_eq!(app.pipelines(&t.token).await, before);
    let log = app.audit_log(&t.token, 50, None).await;
    let actions: Vec<&str> = log["data"]["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["pipeline.created", "tenant.created"], "{log}");
}

#[tokio::test]
async fn removing_a_stage_that_holds_leads_needs_somewhere_for_them_to_go() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let pipeline = app
        .new_pipeline(
            &t.token,
            json!({"name": "Deals", "stages": small_pipeline()}),
        )
        .await;
    let id = pipeline["id"].as_str().unwrap();
    let ratings = json!({"budget": 3, "authority": 3, "need": 3, "timeline": 3});
    let (first, first_score) = app
        .lead_in_stage(&t, id, "demo", "Ana", ratings.clone())
        .await;
    let (second, _) = app.lead_in_stage(&t, id, "demo", "Bo", ratings).await;
    let without_demo = json!([
        stage("lead", "OPEN", 0.1),
        stage("won", "WON", 1.0),
        stage("lost", "LOST", 0.0)
    ]);

    let refused = app
        .update_pipeline(&t.token, json!({"id": id, "stages": without_demo}))
        .await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT");
    assert_eq!(error_field(&refused), "input.moveLeadsTo");
    assert!(
        error_message(&refused).contains("\"demo\" holds 2 leads"),
        "{refused}"
    );
    let into_won = app
        .update_pipeline(
            &t.token,
            json!({"id": id, "stages": without_demo, "moveLeadsTo": [{"fromKey": "demo", "toKey": "won"}]}),
        )
        .await;
    assert_eq!(error_field(&into_won), "input.moveLeadsTo[0].toKey");
    assert_eq!(
        app.lead_state(&t.token, &first).await["stage"]["key"],
        "demo"
    );

    let body = app
        .update_pipeline(
            &t.token,
            json!({"id": id, "stages": without_demo, "moveLeadsTo": [{"fromKey": "demo", "toKey": "lead"}]}),
        )
        .await;
    let updated = &body["data"]["updatePipeline"]["pipeline"];
    assert!(updated.is_object(), "updatePipeline failed: {body}");
    assert_eq!(keys(updated), ["lead", "won", "lost"]);

    for lead in [&first, &second] {
        let moved = app.lead_state(&t.token, lead).await;
        assert_eq!(moved["stage"]["key"], "lead");
        assert_eq!(moved["stage"]["id"], stage_named(updated, "lead")["id"]);
        assert_eq!(moved["version"], 2);
        assert_eq!(
            moved["scoreHistory"][0]["reason"],
            "stage demo removed: moved to lead"
        );
    }
    let moved = app.lead_state(&t.token, &first).await;
    // The lead stage's win probability is lower, and the default model weighs it.
    assert!(
        moved["score"].as_f64().unwrap() < first_score,
        "{first_score} → {moved}"
    );
}

#[tokio::test]
async fn a_new_win_probability_rescores_the_pipelines_open_leads() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let pipeline = app
        .new_pipeline(
            &t.token,
            json!({"name": "Deals", "stages": small_pipeline()}),
        )
        .await;
    let id = pipeline["id"].as_str().unwrap();
    let (lead, score) = app
        .lead_in_stage(&t, id, "demo", "Ana", json!({"budget": 4}))
        .await;

    let mut stages = as_input(&pipeline);
    stages[1]["winProbability"] = json!(0.9);
    let body = app
        .update_pipeline(&t.token, json!({"id": id, "stages": stages}))
        .await;
    assert!(body["errors"].is_null(), "{body}");

    let rescored = app.lead_state(&t.token, &lead).await;
    assert!(
        rescored["score"].as_f64().unwrap() > score,
        "{score} → {rescored}"
    );
    assert_eq!(
        rescored["scoreHistory"][0]["reason"],
        "pipeline stages changed"
    );
    assert_eq!(rescored["version"], 2);
}

#[tokio::test]
async fn a_stage_that_holds_leads_keeps_its_kind() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let pipeline = app
        .new_pipeline(
            &t.token,
            json!({"name": "Deals", "stages": small_pipeline()}),
        )
        .await;
    let id = pipeline["id"].as_str().unwrap();
    app.lead_in_stage(&t, id, "demo", "Ana", json!({})).await;

    let mut stages = as_input(&pipeline);
    stages[1]["kind"] = json!("LOST");
    let body = app
        .update_pipeline(&t.token, json!({"id": id, "stages": stages}))
        .await;
    assert_eq!(error_field(&body), "input.stages[1].kind");
    assert!(error_message(&body).contains("holds 1 leads"), "{body}");
}

#[tokio::test]
async fn a_new_signal_type_counts_for_activities_until_it_is_retired() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let (lead, score) = app
        .lead_in_stage(
            &t,
            &default_pipeline(&app, &t).await,
            "lead",
            "Ana",
            json!({}),
        )
        .await;
    let webinar = json!({"key": "webinar_attended", "label": "Attended a webinar",
                         "points": 12, "halfLifeDays": 10});

    let body = app.upsert_signal_type(&t.token, webinar.clone()).await;
    let created = &body["data"]["upsertSignalType"]["signalType"];
    assert_eq!(created["key"], "webinar_attended", "{body}");
    assert_eq!(created["urgent"], false);
    assert_eq!(created["direction"], "INBOUND");
    let recorded = app
        .graphql(
            Some(&t.token),
            "mutation($input: RecordActivityInput!) { recordActivity(input: $input) { lead { score } } }",
            json!({"input": {"leadId": lead, "signalKey": "webinar_attended"}}),
        )
        .await;
    let new_score = recorded["data"]["recordActivity"]["lead"]["score"]
        .as_f64()
        .unwrap_or_else(|| panic!("recordActivity failed: {recorded}"));
    assert!(new_score > score, "{score} → {new_score}");

    let mut retired = webinar;
    retired["retired"] = json!(true);
    let body = app.upsert_signal_type(&t.token, retired).await;
    assert_eq!(
        body["data"]["upsertSignalType"]["signalType"]["retired"], true,
        "{body}"
    );
    let refused = app
        .graphql(
            Some(&t.token),
            "mutation($input: RecordActivityInput!) { recordActivity(input: $input) { lead { score } } }",
            json!({"input": {"leadId": lead, "signalKey": "webinar_attended"}}),
        )
        .await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT");
    assert_eq!(error_field(&refused), "input.signalKey");
    let activities = app
        .graphql(
            Some(&t.token),
            "query($id: ID!) { lead(id: $id) { activities { signalKey } } }",
            json!({"id": lead}),
        )
        .await;
    assert_eq!(
        activities["data"]["lead"]["activities"][0]["signalKey"],
        "webinar_attended"
    );
}

async fn default_pipeline(app: &TestApp, tenant: &Tenant) -> String {
    app.pipelines(&tenant.token).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn invalid_signal_types_and_fields_are_refused_with_the_field_named() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let before = app.catalog(&t.token).await;
    let signal = |patch: Value| {
        let mut input =
            json!({"key": "webinar", "label": "Webinar", "points": 5, "halfLifeDays": 7});
        if let (Some(input), Some(patch)) = (input.as_object_mut(), patch.as_object()) {
            input.extend(patch.clone());
        }
        input
    };
    for (patch, field) in [
        (json!({"key": "Webinar!"}), "input.key"),
        (json!({"label": "  "}), "input.label"),
        (json!({"points": 1000.5}), "input.points"),
        (json!({"halfLifeDays": 0}), "input.halfLifeDays"),
        (json!({"halfLifeDays": 4000}), "input.halfLifeDays"),
    ] {
        let body = app
            .upsert_signal_type(&t.token, signal(patch.clone()))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{patch}: {body}");
        assert_eq!(error_field(&body), field, "{patch}: {body}");
    }
    for (input, field) in [
        (
            json!({"key": "region", "label": "Region", "type": "CATEGORY", "options": []}),
            "input.options",
        ),
        (
            json!({"key": "region", "label": "Region", "type": "CATEGORY", "options": ["north", "north"]}),
            "input.options[1]",
        ),
        (
            json!({"key": "seats", "label": "Seats", "type": "NUMBER", "options": ["1"]}),
            "input.options",
        ),
        (
            json!({"key": "x".repeat(65), "label": "Long", "type": "TEXT"}),
            "input.key",
        ),
    ] {
        let body = app.upsert_lead_field(&t.token, input.clone()).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{input}: {body}");
        assert_eq!(error_field(&body), field, "{input}: {body}");
    }
    assert_eq!(app.catalog(&t.token).await, before);
}

#[tokio::test]
async fn a_fields_type_and_options_stay_while_leads_use_them() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let body = app
        .upsert_lead_field(
            &t.token,
            json!({"key": "region", "label": "Region", "type": "CATEGORY", "options": ["north", "south"]}),
        )
        .await;
    assert_eq!(
        body["data"]["upsertLeadField"]["field"]["options"],
        json!(["north", "south"]),
        "{body}"
    );
    let pipeline = default_pipeline(&app, &t).await;
    for (name, region) in [("Ana", "north"), ("Bo", "north"), ("Cy", "south")] {
        app.lead_in_stage(&t, &pipeline, "lead", name, json!({"region": region}))
            .await;
    }
    app.lead_in_stage(&t, &pipeline, "lead", "Di", json!({}))
        .await;

    let retyped = app
        .upsert_lead_field(
            &t.token,
            json!({"key": "region", "label": "Region", "type": "TEXT"}),
        )
        .await;
    assert_eq!(error_code(&retyped), "BAD_USER_INPUT");
    assert_eq!(error_field(&retyped), "input.type");
    assert!(error_message(&retyped).starts_with("3 leads"), "{retyped}");

    let narrowed = app
        .upsert_lead_field(
            &t.token,
            json!({"key": "region", "label": "Region", "type": "CATEGORY", "options": ["south", "west"]}),
        )
        .await;
    assert_eq!(error_field(&narrowed), "input.options");
    assert!(
        error_message(&narrowed).starts_with("2 leads"),
        "{narrowed}"
    );

    let required = app
        .upsert_lead_field(
            &t.token,
            json!({"key": "region", "label": "Region", "type": "CATEGORY", "options": ["north", "south"], "required": true}),
        )
        .await;
    assert_eq!(error_field(&required), "input.required");
    assert!(
        error_message(&required).starts_with("1 leads"),
        "{required}"
    );

    let widened = app
        .upsert_lead_field(
            &t.token,
            json!({"key": "region", "label": "Sales region", "type": "CATEGORY", "options": ["north", "south", "west"]}),
        )
        .await;
    assert_eq!(
        widened["data"]["upsertLeadField"]["field"]["label"], "Sales region",
        "{widened}"
    );
}

#[tokio::test]
async fn a_field_the_active_model_weighs_cannot_change_type_under_it() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;

    let body = app
        .upsert_lead_field(
            &t.token,
            json!({"key": "budget", "label": "Budget", "type": "TEXT"}),
        )
        .await;

    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(error_field(&body), "input.type");
    assert!(
        error_message(&body).contains("\"Default scoring model\" (version 1)"),
        "{body}"
    );
}

#[tokio::test]
async fn reps_and_managers_cannot_change_configuration_or_read_the_audit_log() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let pipeline = default_pipeline(&app, &t).await;
    let before = (app.pipelines(&t.token).await, app.catalog(&t.token).await);

    for role in ["REP", "MANAGER"] {
        let token = app.user_with_role(&t, role).await;
        let attempts = [
            app.create_pipeline(&token, json!({"name": "Mine", "template": "saas"}))
                .await,
            app.update_pipeline(&token, json!({"id": pipeline, "name": "Mine"}))
                .await,
            app.upsert_signal_type(
                &token,
                json!({"key": "call", "label": "Call", "points": 100, "halfLifeDays": 7}),
            )
            .await,
            app.upsert_lead_field(
                &token,
                json!({"key": "budget", "label": "Money", "type": "RATING"}),
            )
            .await,
            app.audit_log(&token, 10, None).await,
        ];
        for body in attempts {
            assert_eq!(error_code(&body), "FORBIDDEN", "{role}: {body}");
        }
    }
    assert_eq!(
        (app.pipelines(&t.token).await, app.catalog(&t.token).await),
        before
    );
}

#[tokio::test]
async fn another_tenant_can_neither_see_nor_change_the_configuration() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    let pipeline = app
        .new_pipeline(&acme.token, json!({"name": "Deals", "template": "saas"}))
        .await;
    app.upsert_signal_type(
        &acme.token,
        json!({"key": "webinar", "label": "Webinar", "points": 5, "halfLifeDays": 7}),
    )
    .await;

    let renamed = app
        .update_pipeline(
            &globex.token,
            json!({"id": pipeline["id"], "name": "Stolen"}),
        )
        .await;
    assert_eq!(error_code(&renamed), "NOT_FOUND");
    let theirs = app.pipelines(&globex.token).await;
    assert_eq!(theirs.as_array().unwrap().len(), 1);
    assert!(!theirs.to_string().contains("Deals"));
    let catalog = app.catalog(&globex.token).await;
    assert!(!catalog.to_string().contains("webinar"));
    let log = app.audit_log(&globex.token, 50, None).await;
    let edges = log["data"]["auditLog"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1, "{log}");
    assert_eq!(edges[0]["node"]["action"], "tenant.created");

    // The same key in another tenant is that tenant's own signal type.
    let own = app
        .upsert_signal_type(
            &globex.token,
            json!({"key": "webinar", "label": "Webinar", "points": 1, "halfLifeDays": 3}),
        )
        .await;
    assert_eq!(own["data"]["upsertSignalType"]["signalType"]["points"], 1.0);
    let acme_catalog = app.catalog(&acme.token).await;
    let webinar = acme_catalog["signalTypes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "webinar")
        .unwrap();
    assert_eq!(webinar["points"], 5.0);
}

#[tokio::test]
async fn the_audit_log_shows_every_change_with_before_and_after_newest_first() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let admin = app.user_with_role(&t, "ADMIN").await;
    let created = app.create_team(&t.token, "Hunters", &[]).await;
    assert!(created["data"]["createTeam"].is_object(), "{created}");
    let pipeline = app
        .new_pipeline(&admin, json!({"name": "Deals", "stages": small_pipeline()}))
        .await;
    let body = app
        .update_pipeline(&admin, json!({"id": pipeline["id"], "name": "Big deals"}))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    app.upsert_signal_type(
        &t.token,
        json!({"key": "call", "label": "Phone call", "points": 2, "halfLifeDays": 7, "direction": "OUTBOUND"}),
    )
    .await;
    app.upsert_lead_field(
        &t.token,
        json!({"key": "region", "label": "Region", "type": "TEXT"}),
    )
    .await;

    let mut nodes = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = app.audit_log(&t.token, 2, after.as_deref()).await;
        let log = &page["data"]["auditLog"];
        assert!(log.is_object(), "auditLog failed: {page}");
        let edges = log["edges"].as_array().unwrap();
        assert!(edges.len() <= 2);
        nodes.extend(edges.iter().map(|e| e["node"].clone()));
        if log["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = log["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    let actions: Vec<&str> = nodes
        .iter()
        .map(|n| n["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "lead_field.upserted",
            "signal_type.upserted",
            "pipeline.updated",
            "pipeline.created",
            "team.created",
            "user.created",
            "tenant.created",
        ]
    );

    let field = &nodes[0];
    assert_eq!(field["entity"], "lead_field");
    assert!(field["before"].is_null());
    assert_eq!(field["after"]["type"], "TEXT");
    assert_eq!(field["actor"]["id"], t.owner_id.as_str());
    let signal = &nodes[1];
    assert_eq!(signal["before"]["label"], "Call");
    assert_eq!(signal["after"]["label"], "Phone call");
    assert_eq!(signal["after"]["points"], 2.0);
    let renamed = &nodes[2];
    assert_eq!(renamed["entityId"], pipeline["id"]);
    assert_eq!(renamed["before"]["name"], "Deals");
    assert_eq!(renamed["after"]["name"], "Big deals");
    assert_eq!(renamed["actor"]["email"], "admin@acme.test");
    assert_eq!(nodes[3]["after"]["stages"][2]["kind"], "WON");
    let at: Vec<&str> = nodes.iter().map(|n| n["at"].as_str().unwrap()).collect();
    let newest_first = at.windows(2).all(|w| {
        chrono::DateTime::parse_from_rfc3339(w[0]).unwrap()
            >= chrono::DateTime::parse_from_rfc3339(w[1]).unwrap()
    });
    assert!(newest_first, "{at:?}");

    let bad = app.audit_log(&t.token, 2, Some("not-a-cursor")).await;
    assert_eq!(error_field(&bad), "after");
}
