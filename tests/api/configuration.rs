//! An admin shaping LeadRank to their sales process: pipelines from
//! templates or by hand, signal types and lead fields, each change refused
//! whole when anything is wrong, and every change in the audit log.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::helpers::{Connection, GraphqlErrors, Tenant, TestApp, spawn_app};

const PIPELINE: &str =
    "id name isDefault stages { id key name kind position winProbability rottingDays }";

/// A pipeline as [`PIPELINE`] asks for it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Pipeline {
    id: String,
    name: String,
    is_default: bool,
    stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Stage {
    id: String,
    key: String,
    name: String,
    kind: String,
    position: i64,
    win_probability: f64,
    rotting_days: Option<i64>,
}

impl Pipeline {
    fn keys(&self) -> Vec<&str> {
        self.stages.iter().map(|s| s.key.as_str()).collect()
    }

    fn stage(&self, key: &str) -> &Stage {
        self.stages
            .iter()
            .find(|s| s.key == key)
            .unwrap_or_else(|| panic!("no stage {key} in {self:?}"))
    }

    /// Its stages as `StageInput`s, for editing.
    fn as_input(&self) -> Vec<Value> {
        self.stages
            .iter()
            .map(|s| {
                json!({"key": s.key, "name": s.name, "kind": s.kind,
                       "winProbability": s.win_probability, "rottingDays": s.rotting_days})
            })
            .collect()
    }
}

/// A signal type as the catalog asks for it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SignalType {
    id: Option<String>,
    key: String,
    label: String,
    points: f64,
    half_life_days: f64,
    urgent: bool,
    direction: String,
    retired: bool,
}

/// A lead field as the catalog asks for it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LeadField {
    key: String,
    label: String,
    r#type: String,
    options: Vec<String>,
    required: bool,
}

/// The tenant's signal types and lead fields.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Catalog {
    signal_types: Vec<SignalType>,
    lead_fields: Vec<LeadField>,
}

/// An audit log entry; `before` and `after` are the entity as JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AuditEntry {
    id: String,
    at: String,
    action: String,
    entity: String,
    entity_id: Option<String>,
    before: Option<Value>,
    after: Option<Value>,
    actor: Option<Actor>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Actor {
    id: String,
    email: String,
}

/// A lead's stage, score, version and newest score event.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LeadState {
    stage: StageId,
    score: f64,
    version: i64,
    score_history: Vec<Reason>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StageId {
    id: String,
    key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: String,
}

/// `{ pipeline }` of the pipeline mutations.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelinePayload {
    pipeline: Pipeline,
}

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
    async fn create_pipeline(&self, token: &str, input: Value) -> Result<Pipeline, GraphqlErrors> {
        let payload: PipelinePayload = self
            .query_root(
                Some(token),
                &format!("mutation($input: PipelineInput!) {{ createPipeline(input: $input) {{ pipeline {{ {PIPELINE} }} }} }}"),
                json!({ "input": input }),
            )
            .await?;
        Ok(payload.pipeline)
    }

    /// Creates a pipeline that must succeed, and returns it.
    async fn new_pipeline(&self, token: &str, input: Value) -> Pipeline {
        self.create_pipeline(token, input)
            .await
            .unwrap_or_else(|e| panic!("createPipeline failed: {e}"))
    }

    async fn update_pipeline(&self, token: &str, input: Value) -> Result<Pipeline, GraphqlErrors> {
        let payload: PipelinePayload = self
            .query_root(
                Some(token),
                &format!("mutation($input: UpdatePipelineInput!) {{ updatePipeline(input: $input) {{ pipeline {{ {PIPELINE} }} }} }}"),
                json!({ "input": input }),
            )
            .await?;
        Ok(payload.pipeline)
    }

    async fn pipelines(&self, token: &str) -> Vec<Pipeline> {
        self.root(
            Some(token),
            &format!("{{ pipelines {{ {PIPELINE} }} }}"),
            json!({}),
        )
        .await
    }

    async fn upsert_signal_type(
        &self,
        token: &str,
        input: Value,
    ) -> Result<SignalType, GraphqlErrors> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Payload {
            signal_type: SignalType,
        }
        let payload: Payload = self
            .query_root(
                Some(token),
                "mutation($input: SignalTypeInput!) { upsertSignalType(input: $input) { signalType { id key label points halfLifeDays urgent direction retired } } }",
                json!({ "input": input }),
            )
            .await?;
        Ok(payload.signal_type)
    }

    async fn upsert_lead_field(
        &self,
        token: &str,
        input: Value,
    ) -> Result<LeadField, GraphqlErrors> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Payload {
            field: LeadField,
        }
        let payload: Payload = self
            .query_root(
                Some(token),
                "mutation($input: LeadFieldInput!) { upsertLeadField(input: $input) { field { key label type options required } } }",
                json!({ "input": input }),
            )
            .await?;
        Ok(payload.field)
    }

    async fn catalog(&self, token: &str) -> Catalog {
        self.data(
            Some(token),
            "{ signalTypes { key label points halfLifeDays urgent direction retired } leadFields { key label type options required } }",
            json!({}),
        )
        .await
    }

    async fn audit_log(
        &self,
        token: &str,
        first: i32,
        after: Option<&str>,
    ) -> Result<Connection<AuditEntry>, GraphqlErrors> {
        self.query_root(
            Some(token),
            "query($first: Int, $after: String) { auditLog(first: $first, after: $after) {
                edges { cursor node { id at action entity entityId before after actor { id email } } }
                pageInfo { hasNextPage endCursor } } }",
            json!({ "first": first, "after": after }),
        )
        .await
    }

    /// The actions of the tenant's newest `first` audit entries.
    async fn audit_actions(&self, token: &str, first: i32) -> Vec<String> {
        let log = self
            .audit_log(token, first, None)
            .await
            .unwrap_or_else(|e| panic!("auditLog failed: {e}"));
        log.nodes().map(|n| n.action.clone()).collect()
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
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Payload {
            lead: Created,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Created {
            id: String,
            score: f64,
            stage: Key,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Key {
            key: String,
        }
        let created: Payload = self
            .root(
                Some(&tenant.token),
                "mutation($input: CreateLeadInput!) { createLead(input: $input) { lead { id score stage { key } } } }",
                json!({"input": {"name": name, "pipelineId": pipeline, "stageKey": stage,
                                 "ownerId": tenant.owner_id, "attributes": attributes}}),
            )
            .await;
        assert_eq!(created.lead.stage.key, stage);
        (created.lead.id, created.lead.score)
    }

    /// A lead's stage key, score, version and newest score event reason.
    async fn lead_state(&self, token: &str, id: &str) -> LeadState {
        self.root(
            Some(token),
            "query($id: ID!) { lead(id: $id) { stage { id key } score version scoreHistory(first: 1) { reason } } }",
            json!({ "id": id }),
        )
        .await
    }
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
    assert_eq!(english.keys(), education);
    assert_eq!(chinese.keys(), education);
    assert_eq!(english.stage("trial_lesson").name, "Trial lesson");
    assert_eq!(chinese.stage("trial_lesson").name, "试听课");
    assert_eq!(chinese.stage("enrolled").kind, "WON");
    assert!(!english.is_default);
    let positions: Vec<i64> = english.stages.iter().map(|s| s.position).collect();
    assert_eq!(positions, [0, 1, 2, 3, 4, 5]);

    let listed = app.pipelines(&en.token).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed[0].is_default);
    assert_eq!(listed[1], english);

    for template in ["general", "saas", "finance", "medical"] {
        let pipeline = app
            .new_pipeline(&en.token, json!({"name": template, "template": template}))
            .await;
        let won = pipeline.stages.iter().filter(|s| s.kind == "WON").count();
        assert_eq!(won, 1, "{template}");
    }
    let unknown = app
        .create_pipeline(&en.token, json!({"name": "Shop", "template": "retail"}))
        .await
        .expect_err("an unknown template is refused");
    assert_eq!(unknown.code(), "BAD_USER_INPUT");
    assert_eq!(unknown.field(), "input.template");
}

#[tokio::test]
async fn a_pipeline_keeps_the_order_and_numbers_of_the_stages_it_was_given() {
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

    assert_eq!(pipeline.keys(), ["intro", "signed", "dropped"]);
    let intro = pipeline.stage("intro");
    assert_eq!(intro.name, "Introduction");
    assert_eq!(intro.win_probability, 0.2);
    assert_eq!(intro.rotting_days, Some(5));
    assert_eq!(pipeline.stage("signed").rotting_days, None);

    let taken = app
        .create_pipeline(&t.token, json!({"name": "Partners", "template": "saas"}))
        .await
        .expect_err("a pipeline's name is taken once");
    assert_eq!(taken.code(), "CONFLICT");
}

#[tokio::test]
async fn a_renamed_or_reordered_stage_keeps_its_id() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let pipeline = app
        .new_pipeline(
            &t.token,
            json!({"name": "Deals", "stages": small_pipeline()}),
        )
        .await;
    let demo_id = pipeline.stage("demo").id.clone();

    let updated = app
        .update_pipeline(
            &t.token,
            json!({"id": pipeline.id, "name": "Big deals", "stages": [
                stage("demo", "OPEN", 0.4),
                {"key": "lead", "name": "New lead", "kind": "OPEN", "winProbability": 0.1, "rottingDays": null},
                stage("negotiation", "OPEN", 0.7),
                stage("won", "WON", 1.0),
                stage("lost", "LOST", 0.0),
            ]}),
        )
        .await
        .expect("the stages are renamed and reordered");

    assert_eq!(updated.name, "Big deals");
    assert_eq!(
        updated.keys(),
        ["demo", "lead", "negotiation", "won", "lost"]
    );
    assert_eq!(updated.stage("demo").id, demo_id);
    assert_eq!(updated.stage("demo").position, 0);
    assert_eq!(updated.stage("lead").name, "New lead");
    assert_eq!(updated.stage("lead").rotting_days, None);
    let listed = app.pipelines(&t.token).await;
    assert_eq!(listed[1], updated);
}

#[tokio::test]
async fn an_invalid_pipeline_is_refused_by_field_without_changing_anything() {
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
        let refused = app
            .update_pipeline(
                &t.token,
                json!({"id": pipeline.id, "name": "Renamed", "stages": stages}),
            )
            .await
            .expect_err("an invalid update is refused");
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{case}: {refused}");
        assert_eq!(refused.field(), field, "{case}: {refused}");

        let created = app
            .create_pipeline(&t.token, json!({"name": case, "stages": stages}))
            .await
            .expect_err("an invalid pipeline is refused");
        assert_eq!(created.field(), field, "{case}: {created}");
    }

    assert_eq!(app.pipelines(&t.token).await, before);
    let actions = app.audit_actions(&t.token, 50).await;
    assert_eq!(actions, ["pipeline.created", "tenant.created"]);
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
    let id = pipeline.id.as_str();
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
        .await
        .expect_err("the leads in demo need somewhere to go");
    assert_eq!(refused.code(), "BAD_USER_INPUT");
    assert_eq!(refused.field(), "input.moveLeadsTo");
    assert!(
        refused.message().contains("\"demo\" holds 2 leads"),
        "{refused}"
    );
    let into_won = app
        .update_pipeline(
            &t.token,
            json!({"id": id, "stages": without_demo, "moveLeadsTo": [{"fromKey": "demo", "toKey": "won"}]}),
        )
        .await
        .expect_err("open leads cannot be moved into a WON stage");
    assert_eq!(into_won.field(), "input.moveLeadsTo[0].toKey");
    assert_eq!(app.lead_state(&t.token, &first).await.stage.key, "demo");

    let updated = app
        .update_pipeline(
            &t.token,
            json!({"id": id, "stages": without_demo, "moveLeadsTo": [{"fromKey": "demo", "toKey": "lead"}]}),
        )
        .await
        .expect("the stage goes once its leads have somewhere to go");
    assert_eq!(updated.keys(), ["lead", "won", "lost"]);

    for lead in [&first, &second] {
        let moved = app.lead_state(&t.token, lead).await;
        assert_eq!(moved.stage.key, "lead");
        assert_eq!(moved.stage.id, updated.stage("lead").id);
        assert_eq!(moved.version, 2);
        assert_eq!(
            moved.score_history[0].reason,
            "stage demo removed: moved to lead"
        );
    }
    let moved = app.lead_state(&t.token, &first).await;
    // The lead stage's win probability is lower, and the default model weighs it.
    assert!(moved.score < first_score, "{first_score} → {moved:?}");
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
    let id = pipeline.id.as_str();
    let (lead, score) = app
        .lead_in_stage(&t, id, "demo", "Ana", json!({"budget": 4}))
        .await;

    let mut stages = pipeline.as_input();
    stages[1]["winProbability"] = json!(0.9);
    let updated = app
        .update_pipeline(&t.token, json!({"id": id, "stages": stages}))
        .await
        .expect("the win probability changes");
    assert_eq!(updated.stage("demo").win_probability, 0.9);

    let rescored = app.lead_state(&t.token, &lead).await;
    assert!(rescored.score > score, "{score} → {rescored:?}");
    assert_eq!(rescored.score_history[0].reason, "pipeline stages changed");
    assert_eq!(rescored.version, 2);
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
    let id = pipeline.id.as_str();
    app.lead_in_stage(&t, id, "demo", "Ana", json!({})).await;

    let mut stages = pipeline.as_input();
    stages[1]["kind"] = json!("LOST");
    let refused = app
        .update_pipeline(&t.token, json!({"id": id, "stages": stages}))
        .await
        .expect_err("a stage holding a lead keeps its kind");
    assert_eq!(refused.field(), "input.stages[1].kind");
    assert!(refused.message().contains("holds 1 leads"), "{refused}");
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

    let created = app
        .upsert_signal_type(&t.token, webinar.clone())
        .await
        .expect("the signal type is created");
    assert_eq!(created.key, "webinar_attended");
    assert!(!created.urgent);
    assert_eq!(created.direction, "INBOUND");
    let recorded = app
        .lead_mutation(
            &t.token,
            "recordActivity",
            "RecordActivityInput",
            json!({"leadId": lead, "signalKey": "webinar_attended"}),
        )
        .await
        .expect("the new signal is recorded");
    assert!(recorded.score > score, "{score} → {}", recorded.score);

    let mut retired = webinar;
    retired["retired"] = json!(true);
    let retired = app
        .upsert_signal_type(&t.token, retired)
        .await
        .expect("the signal type is retired");
    assert!(retired.retired, "{retired:?}");
    let refused = app
        .lead_mutation(
            &t.token,
            "recordActivity",
            "RecordActivityInput",
            json!({"leadId": lead, "signalKey": "webinar_attended"}),
        )
        .await
        .expect_err("a retired signal is refused");
    assert_eq!(refused.code(), "BAD_USER_INPUT");
    assert_eq!(refused.field(), "input.signalKey");
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Activities {
        activities: Vec<SignalKey>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct SignalKey {
        signal_key: String,
    }
    let read: Activities = app
        .root(
            Some(&t.token),
            "query($id: ID!) { lead(id: $id) { activities { signalKey } } }",
            json!({"id": lead}),
        )
        .await;
    assert_eq!(read.activities.len(), 1);
    assert_eq!(read.activities[0].signal_key, "webinar_attended");
}

async fn default_pipeline(app: &TestApp, tenant: &Tenant) -> String {
    let pipelines = app.pipelines(&tenant.token).await;
    assert!(pipelines[0].is_default, "{pipelines:?}");
    pipelines[0].id.clone()
}

#[tokio::test]
async fn an_invalid_signal_type_or_lead_field_is_refused_by_field() {
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
        let refused = app
            .upsert_signal_type(&t.token, signal(patch.clone()))
            .await
            .expect_err("an invalid signal type is refused");
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{patch}: {refused}");
        assert_eq!(refused.field(), field, "{patch}: {refused}");
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
        let refused = app
            .upsert_lead_field(&t.token, input.clone())
            .await
            .expect_err("an invalid lead field is refused");
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{input}: {refused}");
        assert_eq!(refused.field(), field, "{input}: {refused}");
    }
    assert_eq!(app.catalog(&t.token).await, before);
}

#[tokio::test]
async fn a_lead_field_in_use_keeps_its_type_and_options() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let created = app
        .upsert_lead_field(
            &t.token,
            json!({"key": "region", "label": "Region", "type": "CATEGORY", "options": ["north", "south"]}),
        )
        .await
        .expect("the field is created");
    assert_eq!(created.options, ["north", "south"], "{created:?}");
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
        .await
        .expect_err("a field in use keeps its type");
    assert_eq!(retyped.code(), "BAD_USER_INPUT");
    assert_eq!(retyped.field(), "input.type");
    assert!(retyped.message().starts_with("3 leads"), "{retyped}");

    let narrowed = app
        .upsert_lead_field(
            &t.token,
            json!({"key": "region", "label": "Region", "type": "CATEGORY", "options": ["south", "west"]}),
        )
        .await
        .expect_err("a field in use keeps the options its leads hold");
    assert_eq!(narrowed.field(), "input.options");
    assert!(narrowed.message().starts_with("2 leads"), "{narrowed}");

    let required = app
        .upsert_lead_field(
            &t.token,
            json!({"key": "region", "label": "Region", "type": "CATEGORY", "options": ["north", "south"], "required": true}),
        )
        .await
        .expect_err("a field some lead lacks cannot become required");
    assert_eq!(required.field(), "input.required");
    assert!(required.message().starts_with("1 leads"), "{required}");

    let widened = app
        .upsert_lead_field(
            &t.token,
            json!({"key": "region", "label": "Sales region", "type": "CATEGORY", "options": ["north", "south", "west"]}),
        )
        .await
        .expect("a relabelled field with more options is accepted");
    assert_eq!(widened.label, "Sales region", "{widened:?}");
    assert_eq!(widened.options, ["north", "south", "west"]);
}

#[tokio::test]
async fn a_field_the_active_model_weighs_cannot_change_type_under_it() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;

    let refused = app
        .upsert_lead_field(
            &t.token,
            json!({"key": "budget", "label": "Budget", "type": "TEXT"}),
        )
        .await
        .expect_err("a weighed field keeps its type");

    assert_eq!(refused.code(), "BAD_USER_INPUT");
    assert_eq!(refused.field(), "input.type");
    assert!(
        refused
            .message()
            .contains("\"Default scoring model\" (version 1)"),
        "{refused}"
    );
}

#[tokio::test]
async fn only_admins_change_configuration_or_read_the_audit_log() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let pipeline = default_pipeline(&app, &t).await;
    let before = (app.pipelines(&t.token).await, app.catalog(&t.token).await);

    for role in ["REP", "MANAGER"] {
        let token = app.user_with_role(&t, role).await;
        let attempts = [
            app.create_pipeline(&token, json!({"name": "Mine", "template": "saas"}))
                .await
                .map(drop),
            app.update_pipeline(&token, json!({"id": pipeline, "name": "Mine"}))
                .await
                .map(drop),
            app.upsert_signal_type(
                &token,
                json!({"key": "call", "label": "Call", "points": 100, "halfLifeDays": 7}),
            )
            .await
            .map(drop),
            app.upsert_lead_field(
                &token,
                json!({"key": "budget", "label": "Money", "type": "RATING"}),
            )
            .await
            .map(drop),
            app.audit_log(&token, 10, None).await.map(drop),
        ];
        for (i, attempt) in attempts.into_iter().enumerate() {
            let refused = attempt.expect_err("only admins configure");
            assert_eq!(
                refused.code(),
                "FORBIDDEN",
                "{role}, attempt {i}: {refused}"
            );
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
    .await
    .expect("acme adds a signal type");

    let renamed = app
        .update_pipeline(&globex.token, json!({"id": pipeline.id, "name": "Stolen"}))
        .await
        .expect_err("another tenant's pipeline cannot be changed");
    assert_eq!(renamed.code(), "NOT_FOUND");
    let theirs = app.pipelines(&globex.token).await;
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert!(theirs.iter().all(|p| p.name != "Deals"));
    let catalog = app.catalog(&globex.token).await;
    assert!(catalog.signal_types.iter().all(|s| s.key != "webinar"));
    let actions = app.audit_actions(&globex.token, 50).await;
    assert_eq!(actions, ["tenant.created"]);

    // The same key in another tenant is that tenant's own signal type.
    let own = app
        .upsert_signal_type(
            &globex.token,
            json!({"key": "webinar", "label": "Webinar", "points": 1, "halfLifeDays": 3}),
        )
        .await
        .expect("the key is free in another tenant");
    assert_eq!(own.points, 1.0);
    let acme_catalog = app.catalog(&acme.token).await;
    let webinar = acme_catalog
        .signal_types
        .iter()
        .find(|s| s.key == "webinar")
        .expect("acme keeps its webinar");
    assert_eq!(webinar.points, 5.0);
}

#[tokio::test]
async fn the_audit_log_lists_every_configuration_change_newest_first_with_its_before_and_after() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let admin = app.user_with_role(&t, "ADMIN").await;
    app.new_team(&t.token, "Hunters").await;
    let pipeline = app
        .new_pipeline(&admin, json!({"name": "Deals", "stages": small_pipeline()}))
        .await;
    app.update_pipeline(&admin, json!({"id": pipeline.id, "name": "Big deals"}))
        .await
        .expect("an admin renames the pipeline");
    app.upsert_signal_type(
        &t.token,
        json!({"key": "call", "label": "Phone call", "points": 2, "halfLifeDays": 7, "direction": "OUTBOUND"}),
    )
    .await
    .expect("the owner changes a signal type");
    app.upsert_lead_field(
        &t.token,
        json!({"key": "region", "label": "Region", "type": "TEXT"}),
    )
    .await
    .expect("the owner adds a lead field");

    let mut nodes = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = app
            .audit_log(&t.token, 2, after.as_deref())
            .await
            .unwrap_or_else(|e| panic!("auditLog failed: {e}"));
        assert!(page.edges.len() <= 2);
        nodes.extend(page.nodes().cloned());
        if !page.has_next_page() {
            break;
        }
        after = page.end_cursor();
    }
    let ids: std::collections::HashSet<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids.len(), nodes.len(), "no entry twice");
    let actions: Vec<&str> = nodes.iter().map(|n| n.action.as_str()).collect();
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

    // `before` and `after` are the entity as the log keeps it: JSON.
    let field = &nodes[0];
    assert_eq!(field.entity, "lead_field");
    assert_eq!(field.before, None);
    assert_eq!(
        field.after.as_ref().map(|a| &a["type"]),
        Some(&json!("TEXT"))
    );
    assert_eq!(
        field.actor.as_ref().map(|a| a.id.as_str()),
        Some(t.owner_id.as_str())
    );
    let signal = &nodes[1];
    assert_eq!(
        signal.before.as_ref().map(|b| &b["label"]),
        Some(&json!("Call"))
    );
    let signal_after = signal.after.as_ref().expect("the signal type after");
    assert_eq!(signal_after["label"], "Phone call");
    assert_eq!(signal_after["points"], 2.0);
    let renamed = &nodes[2];
    assert_eq!(renamed.entity_id.as_deref(), Some(pipeline.id.as_str()));
    assert_eq!(
        renamed.before.as_ref().map(|b| &b["name"]),
        Some(&json!("Deals"))
    );
    assert_eq!(
        renamed.after.as_ref().map(|a| &a["name"]),
        Some(&json!("Big deals"))
    );
    assert_eq!(
        renamed.actor.as_ref().map(|a| a.email.as_str()),
        Some("admin@acme.test")
    );
    let created = nodes[3].after.as_ref().expect("the pipeline created");
    assert_eq!(created["stages"][2]["kind"], "WON");
    let at: Vec<&str> = nodes.iter().map(|n| n.at.as_str()).collect();
    let newest_first = at.windows(2).all(|w| {
        chrono::DateTime::parse_from_rfc3339(w[0]).unwrap()
            >= chrono::DateTime::parse_from_rfc3339(w[1]).unwrap()
    });
    assert!(newest_first, "{at:?}");

    let bad = app
        .audit_log(&t.token, 2, Some("not-a-cursor"))
        .await
        .expect_err("a cursor the server did not make is refused");
    assert_eq!(bad.field(), "after");
}
