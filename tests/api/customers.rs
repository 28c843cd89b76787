//! Customers after the sale: a won lead carries on in the post-sale stages
//! keeping its WON outcome, churn warnings name their cause and reach
//! webhooks (live and from the nightly job), lost and won leads are
//! reopened, and lost deals are counted by reason category.

use chrono::{Duration, Utc};
use entity::webhook_delivery;
use leadrank::jobs::rescore::{self, Options, Outcome, Trigger};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::{
    helpers::{LEAD_FIELDS, days_ago, flags_json, strong},
    helpers::{Tenant, TestApp, error_code, error_field, spawn_app, spawn_app_with},
};

/// Webhooks to a local address are allowed, so endpoints can be registered.
const LOCAL_WEBHOOKS: [(&str, &str); 1] = [("LEADRANK_WEBHOOK_ALLOW_HTTP_LOCALHOST", "true")];

const CUSTOMER_FIELDS: &str =
    "id status flags churnCauses closeReasonCategory version stage { key kind postSale }
    scoreBreakdown { overrides { rule reason } }
    history(first: 10) { kind fromValue toValue reason }
    scoreHistory(first: 5) { reason }";

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
        let lead = self
            .new_lead_json(
                &t.token,
                json!({"name": name, "attributes": strong(), "ownerId": t.owner_id, "createdAt": days_ago(age_days)}),
            )
            .await;
        lead["id"].as_str().expect("a lead id").to_owned()
    }

    /// Closes a lead; returns the whole response.
    async fn close(&self, token: &str, id: &str, input: Value) -> Value {
        let mut full = json!({"id": id});
        if let (Some(full), Some(input)) = (full.as_object_mut(), input.as_object()) {
            full.extend(input.clone());
        }
        self.lead_mutation_json(token, "closeLead", "CloseLeadInput", full)
            .await
    }

    /// Wins a lead and moves it on to the post-sale stage: a customer.
    async fn customer(&self, t: &Tenant, name: &str) -> String {
        let id = self.aged_lead(t, name, 200).await;
        let won = self.close(&t.token, &id, json!({"outcome": "WON"})).await;
        assert_eq!(won["data"]["closeLead"]["lead"]["status"], "WON", "{won}");
        let moved = self
            .lead_mutation_json(
                &t.token,
                "moveLeadStage",
                "MoveStageInput",
                json!({"id": id, "stageKey": "post_sale"}),
            )
            .await;
        assert_eq!(
            moved["data"]["moveLeadStage"]["lead"]["status"], "WON",
            "{moved}"
        );
        id
    }

    async fn customer_view(&self, token: &str, id: &str) -> Value {
        let body = self
            .graphql(
                Some(token),
                &format!("query($id: ID!) {{ lead(id: $id) {{ {CUSTOMER_FIELDS} }} }}"),
                json!({"id": id}),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
        body["data"]["lead"].clone()
    }

    async fn reopen(&self, token: &str, input: Value) -> Value {
        self.graphql(
            Some(token),
            &format!(
                "mutation($input: ReopenLeadInput!) {{ reopenLead(input: $input) {{ lead {{ {CUSTOMER_FIELDS} }} }} }}"
            ),
            json!({"input": input}),
        )
        .await
    }

    /// Registers an endpoint for `types`; deliveries stay in the outbox.
    async fn hook(&self, token: &str, types: &[&str]) {
        let body = self
            .graphql(
                Some(token),
                "mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }",
                json!({"input": {"url": "http://127.0.0.1:9/hook", "eventTypes": types}}),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
    }

    /// The payloads of the outbox's events of `kind` about lead `id`.
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

    async fn lost_reasons(&self, token: &str) -> Value {
        self.graphql(
            Some(token),
            "{ lostReasons { category label count } }",
            json!({}),
        )
        .await
    }
}

fn churn_reasons(lead: &Value) -> Vec<String> {
    lead["scoreBreakdown"]["overrides"]
        .as_array()
        .expect("overrides")
        .iter()
        .filter(|o| o["rule"] == "CHURN_RISK")
        .filter_map(|o| o["reason"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_customer_whose_orders_fall_becomes_a_churn_risk_announced_with_its_cause() {
    let app = spawn_app_with(&LOCAL_WEBHOOKS).await;
    let acme = app.sign_up_tenant("acme").await;
    app.hook(&acme.token, &["LEAD_CHURN_RISK"]).await;
    let id = app.customer(&acme, "Big buyer").await;
    // Orders worth 3,000 three to five months ago, 100 this month.
    for (days, amount) in [(100, 1000.0), (120, 1000.0), (150, 1000.0), (10, 100.0)] {
        app.record_json(
            &acme.token,
            &id,
            "purchase",
            json!({"occurredAt": days_ago(days), "amount": amount}),
        )
        .await;
    }

    let lead = app.customer_view(&acme.token, &id).await;
    assert_eq!(lead["status"], "WON", "{lead}");
    assert!(flags_json(&lead).contains(&"CHURN_RISK"), "{lead}");
    assert_eq!(
        lead["churnCauses"],
        json!(["ORDER_AMOUNTS_FALLING"]),
        "{lead}"
    );
    let reasons = churn_reasons(&lead);
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
        app.record_json(
            &acme.token,
            &id,
            "purchase",
            json!({"occurredAt": days_ago(days), "amount": 1000.0}),
        )
        .await;
    }
    let before = app.customer_view(&acme.token, &id).await;
    assert!(!flags_json(&before).contains(&"CHURN_RISK"), "{before}");
    assert!(!flags_json(&before).contains(&"STALE"), "{before}");
    // Brought over in its first stage long idle, it went stale once then.
    let stale_before = app.events_about("lead.went_stale", &id).await.len();

    // Eleven weeks on, nothing ordered in the last ninety days.
    let run = app.nightly_at(&acme, Utc::now() + Duration::days(75)).await;
    assert_eq!(run.churn_risk, 1, "{run:?}");
    let after = app.customer_view(&acme.token, &id).await;
    assert_eq!(after["status"], "WON", "{after}");
    assert!(flags_json(&after).contains(&"CHURN_RISK"), "{after}");
    assert!(flags_json(&after).contains(&"STALE"), "{after}");
    assert_eq!(after["churnCauses"], json!(["ORDER_AMOUNTS_FALLING"]));
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
        app.record_json(
            &acme.token,
            &complaining,
            "complaint",
            json!({"occurredAt": days_ago(days)}),
        )
        .await;
    }
    let fading = app.customer(&acme, "Fading").await;
    for days in [35, 40, 45, 50] {
        app.record_json(
            &acme.token,
            &fading,
            "inbound_inquiry",
            json!({"occurredAt": days_ago(days)}),
        )
        .await;
    }

    let unhappy = app.customer_view(&acme.token, &complaining).await;
    assert_eq!(
        unhappy["churnCauses"],
        json!(["COMPLAINTS_RISING"]),
        "{unhappy}"
    );
    assert!(churn_reasons(&unhappy)[0].starts_with("complaints rising: 3 complaints"));
    let quiet = app.customer_view(&acme.token, &fading).await;
    assert_eq!(
        quiet["churnCauses"],
        json!(["INTERACTIONS_FALLING"]),
        "{quiet}"
    );
    assert!(churn_reasons(&quiet)[0].starts_with("interaction frequency falling"));
}

#[tokio::test]
async fn a_won_lead_moved_to_a_post_sale_stage_stays_won() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let id = app.customer(&acme, "Customer").await;
    let lead = app.customer_view(&acme.token, &id).await;
    assert_eq!(lead["stage"]["key"], "post_sale");
    assert_eq!(lead["stage"]["postSale"], true);
    assert_eq!(lead["status"], "WON");

    // The nightly job scores it and leaves the outcome alone.
    app.nightly_at(&acme, Utc::now()).await;
    let model = app
        .graphql(
            Some(&acme.token),
            "{ activeScoringModel { id } }",
            json!({}),
        )
        .await;
    let model_id = model["data"]["activeScoringModel"]["id"].clone();
    let report = app
        .graphql(
            Some(&acme.token),
            "query($id: ID!) { modelEvaluation(modelId: $id) { closedLeads tiers { won } }
              leads(filter: {status: [WON]}) { totalCount } }",
            json!({"id": model_id}),
        )
        .await;
    assert_eq!(
        report["data"]["modelEvaluation"]["closedLeads"], 1,
        "{report}"
    );
    assert_eq!(report["data"]["leads"]["totalCount"], 1, "{report}");
    let won: i64 = report["data"]["modelEvaluation"]["tiers"]
        .as_array()
        .expect("tiers")
        .iter()
        .filter_map(|t| t["won"].as_i64())
        .sum();
    assert_eq!(won, 1, "{report}");

    // An open lead does not skip the sale, and a customer does not go back.
    let open = app.aged_lead(&acme, "Prospect", 1).await;
    for (lead, key) in [(open.as_str(), "post_sale"), (id.as_str(), "proposal")] {
        let refused = app
            .lead_mutation_json(
                &acme.token,
                "moveLeadStage",
                "MoveStageInput",
                json!({"id": lead, "stageKey": key}),
            )
            .await;
        assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
        assert_eq!(error_field(&refused), "input.stageKey", "{refused}");
    }
}

#[tokio::test]
async fn a_reopened_lost_leads_history_says_why_it_was_reopened() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let id = app.aged_lead(&acme, "Came back", 30).await;
    let lost = app
        .close(
            &acme.token,
            &id,
            json!({"outcome": "LOST", "reason": "too dear", "reasonCategory": "price"}),
        )
        .await;
    assert_eq!(
        lost["data"]["closeLead"]["lead"]["status"], "LOST",
        "{lost}"
    );

    let body = app
        .reopen(
            &acme.token,
            json!({"id": id, "stageKey": "needs_discovery", "reason": "budget approved after all"}),
        )
        .await;
    let lead = &body["data"]["reopenLead"]["lead"];
    assert_eq!(lead["status"], "OPEN", "{body}");
    assert_eq!(lead["stage"]["key"], "needs_discovery");
    assert!(lead["closeReasonCategory"].is_null());
    assert_eq!(lead["history"][0]["kind"], "REOPENED", "{body}");
    assert_eq!(lead["history"][0]["fromValue"], "lost");
    assert_eq!(lead["history"][0]["reason"], "budget approved after all");
    assert_eq!(
        lead["scoreHistory"][0]["reason"],
        "reopened: budget approved after all"
    );
}

#[tokio::test]
async fn a_won_customer_in_renewal_stays_won() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let id = app.aged_lead(&acme, "Renewing", 400).await;
    app.close(&acme.token, &id, json!({"outcome": "WON"})).await;

    // Renewals start in a post-sale stage, nowhere else.
    let refused = app
        .reopen(
            &acme.token,
            json!({"id": id, "stageKey": "proposal", "reason": "renewal"}),
        )
        .await;
    assert_eq!(error_field(&refused), "input.stageKey", "{refused}");

    let body = app
        .reopen(
            &acme.token,
            json!({"id": id, "stageKey": "post_sale", "reason": "contract renews in March"}),
        )
        .await;
    let lead = &body["data"]["reopenLead"]["lead"];
    assert_eq!(lead["status"], "WON", "{body}");
    assert_eq!(lead["stage"]["key"], "post_sale");
    assert_eq!(lead["history"][0]["kind"], "RENEWAL", "{body}");
    assert_eq!(lead["history"][0]["reason"], "contract renews in March");
    assert_eq!(
        lead["scoreHistory"][0]["reason"],
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
        let closed = app.close(&acme.token, &id, input).await;
        assert_eq!(
            closed["data"]["closeLead"]["lead"]["status"], "LOST",
            "{closed}"
        );
    }
    let body = app.lost_reasons(&acme.token).await;
    let counts = &body["data"]["lostReasons"];
    let count = |key: Value| {
        counts
            .as_array()
            .expect("counts")
            .iter()
            .find(|c| c["category"] == key)
            .map(|c| c["count"].clone())
    };
    assert_eq!(count(json!("price")), Some(json!(2)), "{body}");
    assert_eq!(count(json!("competitor")), Some(json!(1)), "{body}");
    assert_eq!(count(json!("timing")), Some(json!(0)), "{body}");
    assert_eq!(count(Value::Null), Some(json!(1)), "{body}");

    // The owner edits the list, audited; a rep may not.
    let set = "mutation($input: SetLostReasonCategoriesInput!) { setLostReasonCategories(input: $input) { categories { key label } } }";
    let edited = app
        .graphql(
            Some(&acme.token),
            set,
            json!({"input": {"categories": [{"key": "price", "label": "Too expensive"}, {"key": "lost_trust", "label": "Lost trust"}]}}),
        )
        .await;
    assert_eq!(
        edited["data"]["setLostReasonCategories"]["categories"][1]["key"], "lost_trust",
        "{edited}"
    );
    assert!(
        app.audit_entries(&acme.token)
            .await
            .iter()
            .any(|e| e["action"] == "tenant.lost_reason_categories_updated")
    );
    let (_, rep) = app.member(&acme, "rep@acme.test", "REP", &[]).await;
    let refused = app
        .graphql(
            Some(&rep),
            set,
            json!({"input": {"categories": [{"key": "price", "label": "Price"}]}}),
        )
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");

    // A Chinese tenant starts with the categories in Chinese.
    let zh = app.sign_up_tenant_in("huawen", "zh-CN").await;
    let list = app
        .graphql(
            Some(&zh.token),
            "{ lostReasonCategories { key label } }",
            json!({}),
        )
        .await;
    assert_eq!(
        list["data"]["lostReasonCategories"][0],
        json!({"key": "price", "label": "价格"}),
        "{list}"
    );
}

#[tokio::test]
async fn a_bad_category_or_stage_key_is_refused_by_name_without_writing_anything() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let id = app.aged_lead(&acme, "Careful", 5).await;
    let before = app.lead_by_id_json(&acme.token, &id).await;

    for input in [
        json!({"outcome": "LOST", "reasonCategory": "vibes"}),
        json!({"outcome": "WON", "reasonCategory": "price"}),
    ] {
        let refused = app.close(&acme.token, &id, input).await;
        assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
        assert_eq!(error_field(&refused), "input.reasonCategory", "{refused}");
    }
    let after = app.lead_by_id_json(&acme.token, &id).await;
    assert_eq!(after["status"], "OPEN");
    assert_eq!(after["version"], before["version"]);

    app.close(&acme.token, &id, json!({"outcome": "LOST"}))
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
        let refused = app.reopen(&acme.token, input).await;
        assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
        assert_eq!(error_field(&refused), field, "{refused}");
    }
    let still = app.customer_view(&acme.token, &id).await;
    assert_eq!(still["status"], "LOST");
    assert_eq!(still["version"], lost["version"]);
    assert_eq!(still["history"], lost["history"]);
}

#[tokio::test]
async fn another_tenant_can_read_or_change_none_of_it() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    let id = app.aged_lead(&acme, "Acme's", 5).await;
    app.close(
        &acme.token,
        &id,
        json!({"outcome": "LOST", "reasonCategory": "price"}),
    )
    .await;
    app.graphql(
        Some(&acme.token),
        "mutation { setLostReasonCategories(input: {categories: [{key: \"price\", label: \"Acme price\"}]}) { categories { key } } }",
        json!({}),
    )
    .await;

    let theirs = app
        .reopen(
            &globex.token,
            json!({"id": id, "stageKey": "proposal", "reason": "mine now"}),
        )
        .await;
    assert_eq!(error_code(&theirs), "NOT_FOUND", "{theirs}");
    let close = app
        .close(
            &globex.token,
            &id,
            json!({"outcome": "LOST", "reasonCategory": "price"}),
        )
        .await;
    assert_eq!(error_code(&close), "NOT_FOUND", "{close}");
    let seen = app
        .graphql(
            Some(&globex.token),
            &format!("query($id: ID!) {{ lead(id: $id) {{ {LEAD_FIELDS} }} }}"),
            json!({"id": id}),
        )
        .await;
    assert!(seen["data"]["lead"].is_null(), "{seen}");
    let counts = app.lost_reasons(&globex.token).await;
    assert!(
        counts["data"]["lostReasons"]
            .as_array()
            .expect("counts")
            .iter()
            .all(|c| c["count"] == 0),
        "{counts}"
    );
    let list = app
        .graphql(
            Some(&globex.token),
            "{ lostReasonCategories { label } }",
            json!({}),
        )
        .await;
    assert_eq!(
        list["data"]["lostReasonCategories"][0]["label"], "Price",
        "{list}"
    );

    // Acme's own lead is still lost, as acme left it.
    let mine = app.customer_view(&acme.token, &id).await;
    assert_eq!(mine["status"], "LOST");
    assert_eq!(mine["closeReasonCategory"], "price");
}
