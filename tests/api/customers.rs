//! Customers after the sale: a won lead carries on in the post-sale stages
//! keeping its WON outcome, churn warnings name their cause and reach
//! webhooks (live and from the nightly job), lost and won leads are
//! reopened, and lost deals are counted by reason category.

use chrono::{Duration, Utc};
use entity::webhook_delivery;
use leadrank::jobs::rescore::{self, Options, Outcome, Trigger};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    helpers::{Connection, GraphqlErrors, Id, LEAD_FIELDS, Lead, days_ago, strong},
    helpers::{Tenant, TestApp, spawn_app, spawn_app_with},
};

/// Webhooks to a local address are allowed, so endpoints can be registered.
const LOCAL_WEBHOOKS: [(&str, &str); 1] = [("LEADRANK_WEBHOOK_ALLOW_HTTP_LOCALHOST", "true")];

const CUSTOMER_FIELDS: &str =
    "id status flags churnCauses closeReasonCategory version stage { key kind postSale }
    scoreBreakdown { overrides { rule reason } }
    history(first: 10) { kind fromValue toValue reason }
    scoreHistory(first: 5) { reason }";

/// A lead as [`CUSTOMER_FIELDS`] asks for it.
// Every field the query asks for is named, though not every test reads
// every one.
#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Customer {
    id: String,
    status: String,
    flags: Vec<String>,
    churn_causes: Vec<String>,
    close_reason_category: Option<String>,
    version: i64,
    stage: CustomerStage,
    score_breakdown: Overrides,
    history: Vec<HistoryEntry>,
    score_history: Vec<ScoreReason>,
}

impl Customer {
    fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The reasons of the CHURN_RISK overrides of its last scoring.
    fn churn_reasons(&self) -> Vec<&str> {
        self.score_breakdown
            .overrides
            .iter()
            .filter(|o| o.rule == "CHURN_RISK")
            .map(|o| o.reason.as_str())
            .collect()
    }
}

#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CustomerStage {
    key: String,
    kind: String,
    post_sale: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Overrides {
    overrides: Vec<Override>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Override {
    rule: String,
    reason: String,
}

/// `history { kind fromValue toValue reason }`.
#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HistoryEntry {
    kind: String,
    from_value: Option<String>,
    to_value: Option<String>,
    reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScoreReason {
    reason: String,
}

/// `lostReasons { category label count }`.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LostReasonCount {
    category: Option<String>,
    label: String,
    count: i64,
}

/// `{ key label }` of a lost-reason category.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Category {
    key: String,
    label: String,
}

impl TestApp {
    /// The nightly job of `t` as if run at `at`.
    async fn nightly_at(&self, t: &Tenant, at: chrono::DateTime<Utc>) -> entity::job_run::Model {
        let outcome = rescore::run(
            &self.db,
            t.id.parse().expect("a tenant id"),
            Trigger::Manual,
            None,
            at,
            &Options::default(),
        )
        .await
        .expect("the run is recorded");
        match outcome {
            Outcome::Finished(run) => *run,
            Outcome::Busy => panic!("the run found the lease taken"),
        }
    }

    /// A lead of `t`'s owner created `age_days` ago.
    async fn aged_lead(&self, t: &Tenant, name: &str, age_days: i64) -> String {
        self.new_lead(
            &t.token,
            json!({"name": name, "attributes": strong(), "ownerId": t.owner_id, "createdAt": days_ago(age_days)}),
        )
        .await
        .id
    }

    /// Closes a lead: the lead, or why it was refused.
    async fn close(&self, token: &str, id: &str, input: Value) -> Result<Lead, GraphqlErrors> {
        let mut full = json!({"id": id});
        if let (Some(full), Some(input)) = (full.as_object_mut(), input.as_object()) {
            full.extend(input.clone());
        }
        self.lead_mutation(token, "closeLead", "CloseLeadInput", full)
            .await
    }

    /// Closes a lead, which must succeed, and returns it.
    async fn closed_lead(&self, token: &str, id: &str, input: Value) -> Lead {
        self.close(token, id, input)
            .await
            .unwrap_or_else(|e| panic!("closeLead failed: {e}"))
    }

    /// Wins a lead and moves it on to the post-sale stage: a customer.
    async fn customer(&self, t: &Tenant, name: &str) -> String {
        let id = self.aged_lead(t, name, 200).await;
        let won = self
            .closed_lead(&t.token, &id, json!({"outcome": "WON"}))
            .await;
        assert_eq!(won.status, "WON", "{won:?}");
        let moved = self
            .lead_mutation(
                &t.token,
                "moveLeadStage",
                "MoveStageInput",
                json!({"id": id, "stageKey": "post_sale"}),
            )
            .await
            .unwrap_or_else(|e| panic!("moveLeadStage failed: {e}"));
        assert_eq!(moved.status, "WON", "{moved:?}");
        id
    }

    async fn customer_view(&self, token: &str, id: &str) -> Customer {
        self.root(
            Some(token),
            &format!("query($id: ID!) {{ lead(id: $id) {{ {CUSTOMER_FIELDS} }} }}"),
            json!({"id": id}),
        )
        .await
    }

    /// Reopens a lead: the lead, or why it was refused.
    async fn reopen(&self, token: &str, input: Value) -> Result<Customer, GraphqlErrors> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Payload {
            lead: Customer,
        }
        let payload: Payload = self
            .query_root(
                Some(token),
                &format!(
                    "mutation($input: ReopenLeadInput!) {{ reopenLead(input: $input) {{ lead {{ {CUSTOMER_FIELDS} }} }} }}"
                ),
                json!({"input": input}),
            )
            .await?;
        Ok(payload.lead)
    }

    /// Registers an endpoint for `types`; deliveries stay in the outbox.
    async fn hook(&self, token: &str, types: &[&str]) {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Created {
            endpoint: Id,
        }
        let created: Created = self
            .root(
                Some(token),
                "mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }",
                json!({"input": {"url": "http://127.0.0.1:9/hook", "eventTypes": types}}),
            )
            .await;
        assert!(!created.endpoint.id.is_empty());
    }

    /// The payloads of the outbox's events of `kind` about lead `id`. A
    /// webhook payload is JSON the receiver reads as such (its `data` is the
    /// event's, not a GraphQL answer's), so it stays a `Value`.
    async fn events_about(&self, kind: &str, id: &str) -> Vec<Value> {
        webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::EventType.eq(kind))
            .all(&self.system_db)
            .await
            .expect("deliveries")
            .into_iter()
            .map(|d| d.payload)
            .filter(|p| p["data"]["lead"]["id"] == id)
            .collect()
    }

    async fn lost_reasons(&self, token: &str) -> Vec<LostReasonCount> {
        self.root(
            Some(token),
            "{ lostReasons { category label count } }",
            json!({}),
        )
        .await
    }
}

#[tokio::test]
async fn a_customer_whose_orders_fall_becomes_a_churn_risk_announced_with_its_cause() {
    let app = spawn_app_with(&LOCAL_WEBHOOKS).await;
    let acme = app.sign_up_tenant("acme").await;
    app.hook(&acme.token, &["LEAD_CHURN_RISK"]).await;
    let id = app.customer(&acme, "Big buyer").await;
    // Orders worth 3,000 three to five months ago, 100 this month.
    for (days, amount) in [(100, 1000.0), (120, 1000.0), (150, 1000.0), (10, 100.0)] {
        app.record(
            &acme.token,
            &id,
            "purchase",
            json!({"occurredAt": days_ago(days), "amount": amount}),
        )
        .await;
    }

    let lead = app.customer_view(&acme.token, &id).await;
    assert_eq!(lead.status, "WON", "{lead:?}");
    assert!(lead.has_flag("CHURN_RISK"), "{lead:?}");
    assert_eq!(lead.churn_causes, ["ORDER_AMOUNTS_FALLING"], "{lead:?}");
    let reasons = lead.churn_reasons();
    assert!(
        reasons.len() == 1 && reasons[0].starts_with("order amounts falling"),
        "{reasons:?}"
    );
    let events = app.events_about("lead.churn_risk", &id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0]["data"]["causes"],
        json!(["ORDER_AMOUNTS_FALLING"])
    );
}

#[tokio::test]
async fn the_nightly_job_announces_a_customer_whose_orders_stopped_as_a_churn_risk() {
    let app = spawn_app_with(&LOCAL_WEBHOOKS).await;
    let acme = app.sign_up_tenant("acme").await;
    app.hook(&acme.token, &["LEAD_CHURN_RISK", "LEAD_WENT_STALE"])
        .await;
    let id = app.customer(&acme, "Steady buyer").await;
    for days in [20, 100] {
        app.record(
            &acme.token,
            &id,
            "purchase",
            json!({"occurredAt": days_ago(days), "amount": 1000.0}),
        )
        .await;
    }
    let before = app.customer_view(&acme.token, &id).await;
    assert!(!before.has_flag("CHURN_RISK"), "{before:?}");
    assert!(!before.has_flag("STALE"), "{before:?}");
    // Brought over in its first stage long idle, it went stale once then.
    let stale_before = app.events_about("lead.went_stale", &id).await.len();

    // Eleven weeks on, nothing ordered in the last ninety days.
    let run = app.nightly_at(&acme, Utc::now() + Duration::days(75)).await;
    assert_eq!(run.churn_risk, 1, "{run:?}");
    let after = app.customer_view(&acme.token, &id).await;
    assert_eq!(after.status, "WON", "{after:?}");
    assert!(after.has_flag("CHURN_RISK"), "{after:?}");
    assert!(after.has_flag("STALE"), "{after:?}");
    assert_eq!(after.churn_causes, ["ORDER_AMOUNTS_FALLING"]);
    let churn = app.events_about("lead.churn_risk", &id).await;
    assert_eq!(churn.len(), 1, "{churn:#?}");
    assert_eq!(
        app.events_about("lead.went_stale", &id).await.len(),
        stale_before + 1
    );
}

#[tokio::test]
async fn rising_complaints_or_falling_interactions_make_a_churn_risk_named_for_its_cause() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let complaining = app.customer(&acme, "Unhappy").await;
    for days in [2, 5, 9] {
        app.record(
            &acme.token,
            &complaining,
            "complaint",
            json!({"occurredAt": days_ago(days)}),
        )
        .await;
    }
    let fading = app.customer(&acme, "Fading").await;
    for days in [35, 40, 45, 50] {
        app.record(
            &acme.token,
            &fading,
            "inbound_inquiry",
            json!({"occurredAt": days_ago(days)}),
        )
        .await;
    }

    let unhappy = app.customer_view(&acme.token, &complaining).await;
    assert_eq!(unhappy.churn_causes, ["COMPLAINTS_RISING"], "{unhappy:?}");
    assert!(unhappy.churn_reasons()[0].starts_with("complaints rising: 3 complaints"));
    let quiet = app.customer_view(&acme.token, &fading).await;
    assert_eq!(quiet.churn_causes, ["INTERACTIONS_FALLING"], "{quiet:?}");
    assert!(quiet.churn_reasons()[0].starts_with("interaction frequency falling"));
}

#[tokio::test]
async fn a_won_lead_moved_to_a_post_sale_stage_stays_won() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let id = app.customer(&acme, "Customer").await;
    let lead = app.customer_view(&acme.token, &id).await;
    assert_eq!(lead.stage.key, "post_sale");
    assert!(lead.stage.post_sale);
    assert_eq!(lead.status, "WON");

    // The nightly job scores it and leaves the outcome alone.
    app.nightly_at(&acme, Utc::now()).await;
    let model: Id = app
        .root(
            Some(&acme.token),
            "{ activeScoringModel { id } }",
            json!({}),
        )
        .await;
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Report {
        model_evaluation: Evaluation,
        leads: Connection<Value>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Evaluation {
        closed_leads: i64,
        tiers: Vec<Won>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Won {
        won: i64,
    }
    let report: Report = app
        .data(
            Some(&acme.token),
            "query($id: ID!) { modelEvaluation(modelId: $id) { closedLeads tiers { won } }
              leads(filter: {status: [WON]}) { totalCount } }",
            json!({"id": model.id}),
        )
        .await;
    assert_eq!(report.model_evaluation.closed_leads, 1, "{report:?}");
    assert_eq!(report.leads.total_count, Some(1), "{report:?}");
    let won: i64 = report.model_evaluation.tiers.iter().map(|t| t.won).sum();
    assert_eq!(won, 1, "{report:?}");

    // An open lead does not skip the sale, and a customer does not go back.
    let open = app.aged_lead(&acme, "Prospect", 1).await;
    for (lead, key) in [(open.as_str(), "post_sale"), (id.as_str(), "proposal")] {
        let refused = app
            .lead_mutation(
                &acme.token,
                "moveLeadStage",
                "MoveStageInput",
                json!({"id": lead, "stageKey": key}),
            )
            .await
            .expect_err("the move is refused");
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{refused}");
        assert_eq!(refused.field(), "input.stageKey", "{refused}");
    }
}

#[tokio::test]
async fn a_reopened_lost_leads_history_says_why_it_was_reopened() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let id = app.aged_lead(&acme, "Came back", 30).await;
    let lost = app
        .closed_lead(
            &acme.token,
            &id,
            json!({"outcome": "LOST", "reason": "too dear", "reasonCategory": "price"}),
        )
        .await;
    assert_eq!(lost.status, "LOST", "{lost:?}");

    let lead = app
        .reopen(
            &acme.token,
            json!({"id": id, "stageKey": "needs_discovery", "reason": "budget approved after all"}),
        )
        .await
        .unwrap_or_else(|e| panic!("reopenLead failed: {e}"));
    assert_eq!(lead.status, "OPEN", "{lead:?}");
    assert_eq!(lead.stage.key, "needs_discovery");
    assert!(lead.close_reason_category.is_none());
    let reopened = &lead.history[0];
    assert_eq!(reopened.kind, "REOPENED", "{lead:?}");
    assert_eq!(reopened.from_value.as_deref(), Some("lost"));
    assert_eq!(
        reopened.reason.as_deref(),
        Some("budget approved after all")
    );
    assert_eq!(
        lead.score_history[0].reason,
        "reopened: budget approved after all"
    );
}

#[tokio::test]
async fn a_won_customer_in_renewal_stays_won() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let id = app.aged_lead(&acme, "Renewing", 400).await;
    app.closed_lead(&acme.token, &id, json!({"outcome": "WON"}))
        .await;

    // Renewals start in a post-sale stage, nowhere else.
    let refused = app
        .reopen(
            &acme.token,
            json!({"id": id, "stageKey": "proposal", "reason": "renewal"}),
        )
        .await
        .expect_err("a renewal outside the post-sale stages");
    assert_eq!(refused.field(), "input.stageKey", "{refused}");

    let lead = app
        .reopen(
            &acme.token,
            json!({"id": id, "stageKey": "post_sale", "reason": "contract renews in March"}),
        )
        .await
        .unwrap_or_else(|e| panic!("reopenLead failed: {e}"));
    assert_eq!(lead.status, "WON", "{lead:?}");
    assert_eq!(lead.stage.key, "post_sale");
    assert_eq!(lead.history[0].kind, "RENEWAL", "{lead:?}");
    assert_eq!(
        lead.history[0].reason.as_deref(),
        Some("contract renews in March")
    );
    assert_eq!(
        lead.score_history[0].reason,
        "renewal: contract renews in March"
    );
}

#[tokio::test]
async fn lost_leads_are_counted_by_reason_category() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    for (name, category) in [
        ("A", Some("price")),
        ("B", Some("price")),
        ("C", Some("competitor")),
        ("D", None),
    ] {
        let id = app.aged_lead(&acme, name, 5).await;
        let mut input = json!({"outcome": "LOST"});
        if let Some(c) = category {
            input["reasonCategory"] = json!(c);
        }
        let closed = app.closed_lead(&acme.token, &id, input).await;
        assert_eq!(closed.status, "LOST", "{closed:?}");
    }
    let counts = app.lost_reasons(&acme.token).await;
    let count = |key: Option<&str>| {
        counts
            .iter()
            .find(|c| c.category.as_deref() == key)
            .map(|c| c.count)
    };
    assert_eq!(count(Some("price")), Some(2), "{counts:?}");
    assert_eq!(count(Some("competitor")), Some(1), "{counts:?}");
    assert_eq!(count(Some("timing")), Some(0), "{counts:?}");
    assert_eq!(count(None), Some(1), "{counts:?}");

    // The owner edits the list, audited; a rep may not.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Categories {
        categories: Vec<Category>,
    }
    let set = "mutation($input: SetLostReasonCategoriesInput!) { setLostReasonCategories(input: $input) { categories { key label } } }";
    let edited: Categories = app
        .root(
            Some(&acme.token),
            set,
            json!({"input": {"categories": [{"key": "price", "label": "Too expensive"}, {"key": "lost_trust", "label": "Lost trust"}]}}),
        )
        .await;
    assert_eq!(edited.categories[1].key, "lost_trust", "{edited:?}");
    assert!(
        app.audit_entries(&acme.token)
            .await
            .iter()
            .any(|e| e.action == "tenant.lost_reason_categories_updated")
    );
    let (_, rep) = app.member(&acme, "rep@acme.test", "REP", &[]).await;
    let refused = app
        .refused(
            Some(&rep),
            set,
            json!({"input": {"categories": [{"key": "price", "label": "Price"}]}}),
        )
        .await;
    assert_eq!(refused.code(), "FORBIDDEN", "{refused}");

    // A Chinese tenant starts with the categories in Chinese.
    let zh = app.sign_up_tenant_in("huawen", "zh-CN").await;
    let list: Vec<Category> = app
        .root(
            Some(&zh.token),
            "{ lostReasonCategories { key label } }",
            json!({}),
        )
        .await;
    assert_eq!(
        list[0],
        Category {
            key: "price".into(),
            label: "价格".into()
        },
        "{list:?}"
    );
}

#[tokio::test]
async fn a_bad_category_or_stage_key_is_refused_by_name_without_writing_anything() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let id = app.aged_lead(&acme, "Careful", 5).await;
    let before = app.lead_by_id(&acme.token, &id).await;

    for input in [
        json!({"outcome": "LOST", "reasonCategory": "vibes"}),
        json!({"outcome": "WON", "reasonCategory": "price"}),
    ] {
        let refused = app
            .close(&acme.token, &id, input)
            .await
            .expect_err("a bad category");
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{refused}");
        assert_eq!(refused.field(), "input.reasonCategory", "{refused}");
    }
    let after = app.lead_by_id(&acme.token, &id).await;
    assert_eq!(after.status, "OPEN");
    assert_eq!(after.version, before.version);

    app.closed_lead(&acme.token, &id, json!({"outcome": "LOST"}))
        .await;
    let lost = app.customer_view(&acme.token, &id).await;
    for (input, field) in [
        (
            json!({"id": id, "stageKey": "nope", "reason": "again"}),
            "input.stageKey",
        ),
        (
            json!({"id": id, "stageKey": "won", "reason": "again"}),
            "input.stageKey",
        ),
        (
            json!({"id": id, "stageKey": "proposal", "reason": "  "}),
            "input.reason",
        ),
    ] {
        let refused = app
            .reopen(&acme.token, input)
            .await
            .expect_err("a bad stage or reason");
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{refused}");
        assert_eq!(refused.field(), field, "{refused}");
    }
    let still = app.customer_view(&acme.token, &id).await;
    assert_eq!(still.status, "LOST");
    assert_eq!(still.version, lost.version);
    assert_eq!(still.history, lost.history);
}

#[tokio::test]
async fn another_tenant_can_read_or_change_none_of_it() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    let id = app.aged_lead(&acme, "Acme's", 5).await;
    app.closed_lead(
        &acme.token,
        &id,
        json!({"outcome": "LOST", "reasonCategory": "price"}),
    )
    .await;
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Keys {
        categories: Vec<Key>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Key {
        key: String,
    }
    let set: Keys = app
        .root(
            Some(&acme.token),
            "mutation { setLostReasonCategories(input: {categories: [{key: \"price\", label: \"Acme price\"}]}) { categories { key } } }",
            json!({}),
        )
        .await;
    assert_eq!(set.categories.len(), 1, "{set:?}");
    assert_eq!(set.categories[0].key, "price");

    let theirs = app
        .reopen(
            &globex.token,
            json!({"id": id, "stageKey": "proposal", "reason": "mine now"}),
        )
        .await
        .expect_err("another tenant's lead");
    assert_eq!(theirs.code(), "NOT_FOUND", "{theirs}");
    let close = app
        .close(
            &globex.token,
            &id,
            json!({"outcome": "LOST", "reasonCategory": "price"}),
        )
        .await
        .expect_err("another tenant's lead");
    assert_eq!(close.code(), "NOT_FOUND", "{close}");
    let seen: Option<Lead> = app
        .root(
            Some(&globex.token),
            &format!("query($id: ID!) {{ lead(id: $id) {{ {LEAD_FIELDS} }} }}"),
            json!({"id": id}),
        )
        .await;
    assert!(seen.is_none(), "{seen:?}");
    let counts = app.lost_reasons(&globex.token).await;
    assert!(counts.iter().all(|c| c.count == 0), "{counts:?}");
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Label {
        label: String,
    }
    let list: Vec<Label> = app
        .root(
            Some(&globex.token),
            "{ lostReasonCategories { label } }",
            json!({}),
        )
        .await;
    assert_eq!(list[0].label, "Price", "{list:?}");

    // Acme's own lead is still lost, as acme left it.
    let mine = app.customer_view(&acme.token, &id).await;
    assert_eq!(mine.status, "LOST");
    assert_eq!(mine.close_reason_category.as_deref(), Some("price"));
}
