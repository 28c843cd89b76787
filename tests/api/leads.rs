//! Leads through GraphQL as a frontend uses them: scoring on every change,
//! explanations, the list, the follow-up queue, visibility and tenancy.

use entity::lead_score;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, Tenant, TestApp, error_code, error_field, spawn_app, spawn_quiet_app,
};

pub(crate) const LEAD_FIELDS: &str =
    "id name company updatedAt email phone score tier tierRank flags status version closeProbability
    nextFollowUpAt attributes owner { id } team { id } stage { key kind } pipeline { name }
    scoreBreakdown { total tier modelVersion contributions { dimensionKey points weight normalized }
                     overrides { rule effect reason } }";

pub(crate) fn strong() -> Value {
    json!({"budget": 5, "authority": 5, "need": 5, "timeline": 5, "industry_position": 5, "decision_chain": 5})
}

pub(crate) fn weak() -> Value {
    json!({"budget": 1, "authority": 1, "need": 2, "timeline": 1, "industry_position": 1, "decision_chain": 1})
}

impl TestApp {
    /// Creates a lead and returns the whole response.
    pub(crate) async fn create_lead(&self, token: &str, input: Value) -> Value {
        self.graphql(
            Some(token),
            &format!(
                "mutation($input: CreateLeadInput!) {{ createLead(input: $input) {{ lead {{ {LEAD_FIELDS} }} }} }}"
            ),
            json!({ "input": input }),
        )
        .await
    }

    /// Creates a lead that must succeed, and returns it.
    pub(crate) async fn new_lead(&self, token: &str, input: Value) -> Value {
        let body = self.create_lead(token, input).await;
        let lead = body["data"]["createLead"]["lead"].clone();
        assert!(lead.is_object(), "createLead failed: {body}");
        lead
    }

    /// Runs a lead mutation whose payload is `{ lead }`; returns the body.
    pub(crate) async fn lead_mutation(
        &self,
        token: &str,
        name: &str,
        input_type: &str,
        input: Value,
    ) -> Value {
        self.graphql(
            Some(token),
            &format!(
                "mutation($input: {input_type}!) {{ {name}(input: $input) {{ lead {{ {LEAD_FIELDS} }} }} }}"
            ),
            json!({ "input": input }),
        )
        .await
    }

    pub(crate) async fn record(
        &self,
        token: &str,
        lead: &str,
        signal: &str,
        extra: Value,
    ) -> Value {
        let mut input = json!({"leadId": lead, "signalKey": signal});
        if let (Some(input), Some(extra)) = (input.as_object_mut(), extra.as_object()) {
            input.extend(extra.clone());
        }
        let body = self
            .lead_mutation(token, "recordActivity", "RecordActivityInput", input)
            .await;
        let lead = body["data"]["recordActivity"]["lead"].clone();
        assert!(lead.is_object(), "recordActivity failed: {body}");
        lead
    }

    pub(crate) async fn queue(&self, token: &str, owner: Option<&str>) -> Value {
        self.graphql(
            Some(token),
            "query($owner: ID) { followUpQueue(ownerId: $owner) { priority dueAt overdueDays reasons lead { id name tier score flags } } }",
            json!({ "owner": owner }),
        )
        .await
    }

    pub(crate) async fn lead_by_id(&self, token: &str, id: &str) -> Value {
        let body = self
            .graphql(
                Some(token),
                &format!("query($id: ID!) {{ lead(id: $id) {{ {LEAD_FIELDS} }} }}"),
                json!({ "id": id }),
            )
            .await;
        assert!(body["errors"].is_null(), "lead query failed: {body}");
        body["data"]["lead"].clone()
    }

    /// Creates a user of `tenant` and signs them in: (id, token).
    pub(crate) async fn member(
        &self,
        tenant: &Tenant,
        email: &str,
        role: &str,
        teams: &[&str],
    ) -> (String, String) {
        let created = self.create_user(&tenant.token, email, role, teams).await;
        let id = created["data"]["createUser"]["user"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("createUser failed: {created}"))
            .to_owned();
        let login = self.login(&tenant.slug, email, PASSWORD).await;
        let token = login["data"]["login"]["accessToken"]
            .as_str()
            .expect("the new user signs in")
            .to_owned();
        (id, token)
    }
}

/// The points of every dimension a lead's explanation shows, added up.
pub(crate) fn points_shown(lead: &Value) -> f64 {
    lead["scoreBreakdown"]["contributions"]
        .as_array()
        .expect("contributions")
        .iter()
        .map(|c| c["points"].as_f64().expect("points"))
        .sum()
}

pub(crate) fn score(lead: &Value) -> f64 {
    lead["score"].as_f64().expect("a score")
}

pub(crate) fn flags(lead: &Value) -> Vec<&str> {
    lead["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

pub(crate) fn days_ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339()
}

#[tokio::test]
async fn a_lead_with_strong_ratings_outranks_a_weak_one_and_its_points_add_up() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let me = t.owner_id.as_str();
    let weak = app
        .new_lead(
            &t.token,
            json!({"name": "Wei", "company": "Small Co", "attributes": weak(), "ownerId": me}),
        )
        .await;
    let strong = app
        .new_lead(
            &t.token,
            json!({"name": "Sam", "company": "Big Co", "attributes": strong(), "ownerId": me}),
        )
        .await;

    assert!(score(&strong) > score(&weak) + 20.0, "{strong} vs {weak}");
    assert!(strong["tierRank"].as_i64() < weak["tierRank"].as_i64());
    for lead in [&strong, &weak] {
        let breakdown = &lead["scoreBreakdown"];
        let points = points_shown(lead);
        assert!((points - score(lead)).abs() < 1e-6, "{breakdown}");
        assert_eq!(breakdown["tier"], lead["tier"]);
        assert_eq!(breakdown["modelVersion"], 1);
    }

    let queue = app.queue(&t.token, None).await;
    let entries = queue["data"]["followUpQueue"].as_array().expect("a queue");
    assert_eq!(entries.len(), 2, "{queue}");
    assert_eq!(entries[0]["lead"]["id"], strong["id"]);
    let reasons = entries[0]["reasons"].to_string();
    assert!(
        reasons.contains(&format!(
            "tier {}: score",
            strong["tier"].as_str().unwrap_or_default()
        )),
        "{reasons}"
    );
}

/// Time passes between scorings: a lead whose follow-up date has come
/// since it was last scored is due now and leads the queue, ahead of a
/// stronger lead that is not due, and a lead without a follow-up date
/// still has its place.
#[tokio::test]
async fn a_lead_that_fell_due_since_it_was_scored_comes_first() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let me = t.owner_id.as_str();
    let mut ids = Vec::new();
    for (name, attributes) in [
        ("Strong", strong()),
        ("Fallen", weak()),
        ("Undated", weak()),
    ] {
        let lead = app
            .new_lead(
                &t.token,
                json!({"name": name, "attributes": attributes, "ownerId": me}),
            )
            .await;
        ids.push(lead["id"].as_str().expect("an id").to_owned());
    }
    let [strong_id, fallen_id, undated_id] = ids.as_slice() else {
        unreachable!("three leads were made");
    };
    // As the night left them: none due; the weak lead's date is an hour
    // past now, but it has not been scored since.
    let now = chrono::Utc::now();
    for (id, next) in [
        (strong_id, Some(now + chrono::Duration::days(3))),
        (fallen_id, Some(now - chrono::Duration::hours(1))),
        (undated_id, None),
    ] {
        lead_score::Entity::update_many()
            .col_expr(lead_score::Column::Bucket, Expr::value(1_i16))
            .col_expr(lead_score::Column::NextFollowUpAt, Expr::value(next))
            .filter(lead_score::Column::LeadId.eq(id.parse::<uuid::Uuid>().expect("a UUID")))
            .exec(&app.system_db)
            .await
            .expect("the score row is updated");
    }

    let queue = app.queue(&t.token, None).await;
    let order: Vec<&str> = queue["data"]["followUpQueue"]
        .as_array()
        .expect("a queue")
        .iter()
        .filter_map(|e| e["lead"]["id"].as_str())
        .collect();
    assert_eq!(
        order,
        [fallen_id.as_str(), strong_id.as_str(), undated_id.as_str()],
        "{queue}"
    );
}

#[tokio::test]
async fn an_urgent_signal_lifts_a_low_lead_to_the_top_tier_and_says_why() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let me = t.owner_id.as_str();
    let low = app
        .new_lead(
            &t.token,
            json!({"name": "Lo", "attributes": weak(), "ownerId": me}),
        )
        .await;
    let other = app
        .new_lead(
            &t.token,
            json!({"name": "Hi", "attributes": strong(), "ownerId": me}),
        )
        .await;
    assert_ne!(low["tier"], "A");

    let lifted = app
        .record(
            &t.token,
            low["id"].as_str().unwrap_or_default(),
            "urgent_quote_request",
            json!({"occurredAt": days_ago(2)}),
        )
        .await;
    assert_eq!(lifted["tier"], "A", "{lifted}");
    assert!(flags(&lifted).contains(&"URGENT"));
    let overrides = lifted["scoreBreakdown"]["overrides"]
        .as_array()
        .expect("overrides");
    assert!(
        overrides.iter().any(|o| o["rule"] == "URGENT_SIGNAL"),
        "{overrides:?}"
    );
    assert_eq!(lifted["version"], 2);

    let queue = app.queue(&t.token, None).await;
    let entries = queue["data"]["followUpQueue"].as_array().expect("a queue");
    assert_eq!(entries[0]["lead"]["id"], low["id"], "{queue}");
    assert_eq!(entries[1]["lead"]["id"], other["id"]);
    let reasons = entries[0]["reasons"].as_array().expect("reasons");
    assert_eq!(
        reasons[0], "urgent: requests an urgent quote 2 days ago",
        "{reasons:?}"
    );

    let history = app
        .graphql(
            Some(&t.token),
            "query($id: ID!) { lead(id: $id) { scoreHistory { oldTier newTier reason modelVersion } activities { signalKey direction } } }",
            json!({"id": low["id"]}),
        )
        .await;
    let events = &history["data"]["lead"]["scoreHistory"];
    assert_eq!(events[0]["newTier"], "A", "{history}");
    assert_eq!(events[0]["reason"], "activity: urgent_quote_request");
    assert_eq!(events[1]["reason"], "created");
    assert_eq!(
        history["data"]["lead"]["activities"][0]["direction"],
        "INBOUND"
    );
}

#[tokio::test]
async fn a_burst_of_inbound_activity_raises_the_score() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let lead = app
        .new_lead(&t.token, json!({"name": "Ann", "attributes": weak()}))
        .await;
    let id = lead["id"].as_str().unwrap_or_default();
    let mut last = score(&lead);
    for signal in ["inbound_inquiry", "detail_question", "deep_page_view"] {
        let now = app.record(&t.token, id, signal, json!({})).await;
        assert!(score(&now) > last, "{signal} did not raise {last}: {now}");
        last = score(&now);
    }
}

#[tokio::test]
async fn a_lead_with_a_new_activity_is_the_most_recently_changed() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let older = app
        .new_lead(&t.token, json!({"name": "Ann", "attributes": weak()}))
        .await;
    let newer = app
        .new_lead(&t.token, json!({"name": "Bo", "attributes": weak()}))
        .await;
    let older_id = older["id"].as_str().unwrap_or_default();

    let after = app
        .record(&t.token, older_id, "inbound_inquiry", json!({}))
        .await;

    // The activity state lives beside the score, not in the lead's facts:
    // the lead still shows it changed, and when.
    let before = older["updatedAt"].as_str().unwrap_or_default();
    let changed = after["updatedAt"].as_str().unwrap_or_default();
    assert!(
        chrono::DateTime::parse_from_rfc3339(changed).ok()
            > chrono::DateTime::parse_from_rfc3339(before).ok(),
        "updatedAt {before} -> {changed}"
    );
    let body = app
        .graphql(
            Some(&t.token),
            "{ leads(orderBy: UPDATED, first: 2) { edges { node { id lastActivityAt } } } }",
            json!({}),
        )
        .await;
    let edges = body["data"]["leads"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ids: Vec<&str> = edges
        .iter()
        .filter_map(|e| e["node"]["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [older_id, newer["id"].as_str().unwrap_or_default()],
        "{body}"
    );
    assert!(edges[0]["node"]["lastActivityAt"].is_string(), "{body}");
}

#[tokio::test]
async fn three_activities_recorded_on_one_lead_at_once_all_land() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let lead = app
        .new_lead(&t.token, json!({"name": "Ann", "attributes": weak()}))
        .await;
    let id = lead["id"].as_str().unwrap_or_default();

    // Each write that finds the lead changed by another tries again, and a
    // writer can lose only to the two others.
    let (a, b, c) = tokio::join!(
        app.record(&t.token, id, "website_visit", json!({})),
        app.record(&t.token, id, "deep_page_view", json!({})),
        app.record(&t.token, id, "inbound_inquiry", json!({})),
    );

    let versions: Vec<i64> = [&a, &b, &c]
        .iter()
        .filter_map(|l| l["version"].as_i64())
        .collect();
    let base = lead["version"].as_i64().unwrap_or_default();
    let mut sorted = versions.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![base + 1, base + 2, base + 3], "{versions:?}");
    let now = app.lead_by_id(&t.token, id).await;
    let signals = app
        .graphql(
            Some(&t.token),
            "query($id: ID!) { lead(id: $id) { activities(first: 10) { signalKey } } }",
            json!({"id": id}),
        )
        .await;
    let mut recorded: Vec<&str> = signals["data"]["lead"]["activities"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["signalKey"].as_str()).collect())
        .unwrap_or_default();
    recorded.sort_unstable();
    assert_eq!(
        recorded,
        ["deep_page_view", "inbound_inquiry", "website_visit"],
        "{signals}"
    );
    // The last write folded all three into the score.
    assert!(score(&now) > score(&lead), "{now}");
}

#[tokio::test]
async fn a_lead_silent_for_a_month_is_cold_and_not_in_the_top_tier() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let lead = app
        .new_lead(
            &t.token,
            json!({"name": "Quiet", "attributes": strong(), "ownerId": t.owner_id, "createdAt": days_ago(60)}),
        )
        .await;
    let id = lead["id"].as_str().unwrap_or_default();
    let cold = app
        .record(
            &t.token,
            id,
            "inbound_inquiry",
            json!({"occurredAt": days_ago(30)}),
        )
        .await;
    assert!(flags(&cold).contains(&"COLD"), "{cold}");
    assert_ne!(cold["tier"], "A");
    assert!(cold["tierRank"].as_i64() >= Some(2), "capped at C: {cold}");

    let queue = app.queue(&t.token, None).await;
    let reasons = queue["data"]["followUpQueue"][0]["reasons"].to_string();
    assert!(reasons.contains("cold: no reply for 30 days"), "{reasons}");

    // Filtering by flag finds it; the total counts it.
    let listed = app
        .graphql(
            Some(&t.token),
            "{ leads(filter: {flags: [COLD]}) { totalCount edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["data"]["leads"]["totalCount"], 1, "{listed}");
}

#[tokio::test]
async fn moving_forward_raises_the_score_and_closing_leaves_the_queue() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let lead = app
        .new_lead(
            &t.token,
            json!({"name": "Mo", "attributes": weak(), "ownerId": t.owner_id}),
        )
        .await;
    assert_eq!(lead["stage"]["key"], "lead");
    let id = lead["id"].as_str().unwrap_or_default();
    let moved = app
        .lead_mutation(
            &t.token,
            "moveLeadStage",
            "MoveStageInput",
            json!({"id": id, "stageKey": "intent_confirmed"}),
        )
        .await;
    let moved = &moved["data"]["moveLeadStage"]["lead"];
    assert_eq!(moved["stage"]["key"], "intent_confirmed", "{moved}");
    assert!(score(moved) > score(&lead));

    let to_won = app
        .lead_mutation(
            &t.token,
            "moveLeadStage",
            "MoveStageInput",
            json!({"id": id, "stageKey": "won"}),
        )
        .await;
    assert_eq!(error_code(&to_won), "BAD_USER_INPUT");
    assert_eq!(error_field(&to_won), "input.stageKey");

    assert_eq!(
        app.queue(&t.token, None).await["data"]["followUpQueue"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let closed = app
        .lead_mutation(
            &t.token,
            "closeLead",
            "CloseLeadInput",
            json!({"id": id, "outcome": "WON", "reason": "signed"}),
        )
        .await;
    let closed = &closed["data"]["closeLead"]["lead"];
    assert_eq!(closed["status"], "WON", "{closed}");
    assert_eq!(closed["stage"]["kind"], "WON");
    let queue = app.queue(&t.token, None).await;
    assert_eq!(queue["data"]["followUpQueue"], json!([]), "{queue}");

    let again = app
        .lead_mutation(
            &t.token,
            "closeLead",
            "CloseLeadInput",
            json!({"id": id, "outcome": "LOST"}),
        )
        .await;
    assert_eq!(error_code(&again), "BAD_USER_INPUT");
}

#[tokio::test]
async fn pages_return_every_lead_exactly_once_even_when_leads_are_rescored_between_pages() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let mut ids = Vec::new();
    for i in 0..23 {
        let rating = 1 + i % 5;
        let lead = app
            .new_lead(
                &t.token,
                json!({"name": format!("Lead {i}"), "attributes": {"budget": rating, "authority": rating}}),
            )
            .await;
        ids.push(lead["id"].as_str().unwrap_or_default().to_owned());
    }
    for order in ["PRIORITY", "SCORE", "NEXT_FOLLOW_UP", "UPDATED"] {
        let mut seen: Vec<String> = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let body = app
                .graphql(
                    Some(&t.token),
                    "query($order: LeadOrder!, $after: String) { leads(orderBy: $order, first: 5, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }",
                    json!({"order": order, "after": after}),
                )
                .await;
            let conn = &body["data"]["leads"];
            assert_eq!(conn["totalCount"], 23, "{body}");
            let page: Vec<String> = conn["edges"]
                .as_array()
                .expect("edges")
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap_or_default().to_owned())
                .collect();
            // Re-score a lead already seen: it must not shift the others.
            if pages == 1 {
                app.record(&t.token, &seen[0], "meeting_request", json!({}))
                    .await;
            }
            seen.extend(page);
            pages += 1;
            if conn["pageInfo"]["hasNextPage"] != true {
                break;
            }
            after = conn["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        }
        let rescored = seen[0].clone();
        let others: Vec<&String> = seen.iter().filter(|id| **id != rescored).collect();
        let mut unique = others.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), others.len(), "{order}: a lead came twice");
        assert_eq!(others.len(), 22, "{order}: a lead was skipped");
        assert_eq!(pages, 5, "{order}");
    }

    let foreign = app
        .graphql(
            Some(&t.token),
            "{ leads(orderBy: SCORE, after: \"bm9wZQ\") { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&foreign), "BAD_USER_INPUT");
    assert_eq!(error_field(&foreign), "after");
}

/// A list that shows only scores reads only what scoring keeps of each
/// lead; it must list the same leads, in the same order, with the same
/// cursors and values as a list that also shows their names.
#[tokio::test]
async fn a_list_of_scores_alone_matches_the_list_with_names_page_for_page() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    for i in 0..12 {
        let rating = 1 + i % 5;
        app.new_lead(
            &t.token,
            json!({"name": format!("Lead {i}"), "attributes": {"budget": rating, "authority": 6 - rating}}),
        )
        .await;
    }
    let fields = "id score tier tierRank flags nextFollowUpAt status version owner { id }";
    for order in ["PRIORITY", "SCORE", "NEXT_FOLLOW_UP"] {
        let mut after: [Option<String>; 2] = [None, None];
        loop {
            let mut pages = Vec::new();
            for (i, extra) in ["", "name company"].into_iter().enumerate() {
                let body = app
                    .graphql(
                        Some(&t.token),
                        &format!(
                            "query($order: LeadOrder!, $after: String) {{ leads(orderBy: $order, first: 5, after: $after) {{ pageInfo {{ hasNextPage endCursor }} edges {{ cursor node {{ {fields} {extra} }} }} }} }}"
                        ),
                        json!({"order": order, "after": after[i]}),
                    )
                    .await;
                assert!(body["errors"].is_null(), "{body}");
                let mut conn = body["data"]["leads"].clone();
                for edge in conn["edges"].as_array_mut().expect("edges") {
                    let node = edge["node"].as_object_mut().expect("node");
                    assert!(
                        extra.is_empty()
                            || node["name"]
                                .as_str()
                                .is_some_and(|n| n.starts_with("Lead "))
                    );
                    node.remove("name");
                    node.remove("company");
                }
                after[i] = conn["pageInfo"]["endCursor"].as_str().map(str::to_owned);
                pages.push(conn);
            }
            assert_eq!(pages[0], pages[1], "{order}");
            if pages[0]["pageInfo"]["hasNextPage"] != true {
                break;
            }
        }
    }
}

#[tokio::test]
async fn duplicates_and_stale_versions_are_conflicts() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let first = app
        .new_lead(
            &t.token,
            json!({"name": "Li Lei", "company": "华为", "email": " Li.Lei@Example.com ", "phone": "+86 138-0000-0000"}),
        )
        .await;
    assert_eq!(first["email"], "li.lei@example.com");
    assert_eq!(first["phone"], "+8613800000000");

    for duplicate in [
        json!({"name": "Other", "email": "LI.LEI@example.com"}),
        json!({"name": "Other", "phone": "+86 13800000000"}),
        json!({"name": "li lei", "company": " 华为 "}),
    ] {
        let body = app.create_lead(&t.token, duplicate.clone()).await;
        assert_eq!(error_code(&body), "CONFLICT", "{duplicate}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["existingId"], first["id"]);
    }

    let id = first["id"].as_str().unwrap_or_default();
    let update = |version: i64, name: &str| json!({"id": id, "expectedVersion": version, "name": name, "attributes": {"budget": 4}});
    let ok = app
        .lead_mutation(
            &t.token,
            "updateLead",
            "UpdateLeadInput",
            update(1, "Li Lei Jr"),
        )
        .await;
    assert_eq!(ok["data"]["updateLead"]["lead"]["version"], 2, "{ok}");
    let stale = app
        .lead_mutation(
            &t.token,
            "updateLead",
            "UpdateLeadInput",
            update(1, "Lost update"),
        )
        .await;
    assert_eq!(error_code(&stale), "CONFLICT");
    assert_eq!(app.lead_by_id(&t.token, id).await["name"], "Li Lei Jr");
}

#[tokio::test]
async fn a_bad_attribute_is_refused_by_name_and_nothing_is_written() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    for (attributes, field) in [
        (json!({"budget": 7}), "input.attributes.budget"),
        (json!({"budget": "high"}), "input.attributes.budget"),
        (json!({"colour": "red"}), "input.attributes.colour"),
        (
            json!({"source": "carrier pigeon"}),
            "input.attributes.source",
        ),
    ] {
        let body = app
            .create_lead(&t.token, json!({"name": "Bad", "attributes": attributes}))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), field);
    }
    let bad_email = app
        .create_lead(&t.token, json!({"name": "Bad", "email": "nope"}))
        .await;
    assert_eq!(error_field(&bad_email), "input.email");
    let long_name = app
        .create_lead(&t.token, json!({"name": "x".repeat(201)}))
        .await;
    assert_eq!(error_field(&long_name), "input.name");

    let count = "{ leads { totalCount } }";
    assert_eq!(
        app.graphql(Some(&t.token), count, json!({})).await["data"]["leads"]["totalCount"],
        0
    );

    let lead = app
        .new_lead(
            &t.token,
            json!({"name": "Good", "attributes": {"budget": 3}}),
        )
        .await;
    let id = lead["id"].as_str().unwrap_or_default();
    let refused = app
        .lead_mutation(
            &t.token,
            "updateLead",
            "UpdateLeadInput",
            json!({"id": id, "expectedVersion": 1, "name": "Renamed", "attributes": {"need": 0}}),
        )
        .await;
    assert_eq!(error_field(&refused), "input.attributes.need");
    let unchanged = app.lead_by_id(&t.token, id).await;
    assert_eq!(unchanged["name"], "Good");
    assert_eq!(unchanged["version"], 1);
    assert_eq!(unchanged["attributes"], json!({"budget": 3}));
}

#[tokio::test]
async fn another_tenant_can_neither_read_nor_change_a_lead() {
    let app = spawn_app().await;
    let a = app.sign_up_tenant("acme").await;
    let b = app.sign_up_tenant("globex").await;
    let lead = app
        .new_lead(
            &a.token,
            json!({"name": "Secret", "email": "s@acme.test", "ownerId": a.owner_id}),
        )
        .await;
    let id = lead["id"].as_str().unwrap_or_default();

    assert!(app.lead_by_id(&b.token, id).await.is_null());
    let listed = app
        .graphql(
            Some(&b.token),
            "{ leads { totalCount edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["data"]["leads"]["totalCount"], 0, "{listed}");

    let attempts = [
        (
            "updateLead",
            "UpdateLeadInput",
            json!({"id": id, "expectedVersion": 1, "name": "Stolen"}),
        ),
        (
            "moveLeadStage",
            "MoveStageInput",
            json!({"id": id, "stageKey": "intent_confirmed"}),
        ),
        (
            "assignLead",
            "AssignLeadInput",
            json!({"id": id, "ownerId": b.owner_id}),
        ),
        (
            "recordActivity",
            "RecordActivityInput",
            json!({"leadId": id, "signalKey": "call"}),
        ),
        (
            "closeLead",
            "CloseLeadInput",
            json!({"id": id, "outcome": "LOST"}),
        ),
    ];
    for (name, input_type, input) in attempts {
        let body = app.lead_mutation(&b.token, name, input_type, input).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{name}: {body}");
    }
    // Nor may it hand its own leads to the first tenant's people or read their queue.
    let foreign_owner = app
        .create_lead(&b.token, json!({"name": "Mine", "ownerId": a.owner_id}))
        .await;
    assert_eq!(error_field(&foreign_owner), "input.ownerId");
    let queue = app.queue(&b.token, Some(&a.owner_id)).await;
    assert_eq!(error_code(&queue), "NOT_FOUND");
    // The same email is free in another tenant.
    app.new_lead(&b.token, json!({"name": "Secret", "email": "s@acme.test"}))
        .await;

    let after = app.lead_by_id(&a.token, id).await;
    assert_eq!(after["name"], "Secret");
    assert_eq!(after["version"], 1);
    assert_eq!(after["status"], "OPEN");
}

#[tokio::test]
async fn reps_see_their_own_leads_and_the_pool_and_managers_see_their_team() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let team = app.create_team(&t.token, "East", &[]).await;
    let team_id = team["data"]["createTeam"]["team"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (rep1, rep1_token) = app.member(&t, "rep1@acme.test", "REP", &[&team_id]).await;
    let (rep2, rep2_token) = app.member(&t, "rep2@acme.test", "REP", &[]).await;
    let (_, manager_token) = app
        .member(&t, "boss@acme.test", "MANAGER", &[&team_id])
        .await;

    let own = app
        .new_lead(&rep1_token, json!({"name": "Rep1 lead"}))
        .await;
    assert_eq!(
        own["owner"]["id"],
        rep1.as_str(),
        "a rep's new lead is theirs"
    );
    let theirs = app
        .new_lead(&rep2_token, json!({"name": "Rep2 lead"}))
        .await;
    let pool = app.new_lead(&t.token, json!({"name": "Pool lead"})).await;

    let visible = |token: String| {
        let app = &app;
        async move {
            let body = app
                .graphql(
                    Some(&token),
                    "{ leads { totalCount edges { node { name } } } }",
                    json!({}),
                )
                .await;
            let mut names: Vec<String> = body["data"]["leads"]["edges"]
                .as_array()
                .unwrap_or_else(|| panic!("{body}"))
                .iter()
                .map(|e| e["node"]["name"].as_str().unwrap_or_default().to_owned())
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(
        visible(rep1_token.clone()).await,
        ["Pool lead", "Rep1 lead"]
    );
    assert_eq!(
        visible(manager_token.clone()).await,
        ["Pool lead", "Rep1 lead"]
    );
    assert_eq!(
        visible(t.token.clone()).await,
        ["Pool lead", "Rep1 lead", "Rep2 lead"]
    );

    let other_id = theirs["id"].as_str().unwrap_or_default();
    assert!(app.lead_by_id(&rep1_token, other_id).await.is_null());
    let touch = app.record_raw(&rep1_token, other_id).await;
    assert_eq!(error_code(&touch), "NOT_FOUND");

    // A rep may take a pool lead but not hand it to a colleague.
    let give = app
        .lead_mutation(
            &rep1_token,
            "assignLead",
            "AssignLeadInput",
            json!({"id": pool["id"], "ownerId": rep2}),
        )
        .await;
    assert_eq!(error_code(&give), "FORBIDDEN");
    let take = app
        .lead_mutation(
            &rep1_token,
            "assignLead",
            "AssignLeadInput",
            json!({"id": pool["id"], "ownerId": rep1}),
        )
        .await;
    assert_eq!(
        take["data"]["assignLead"]["lead"]["owner"]["id"],
        rep1.as_str(),
        "{take}"
    );

    // Queues: a rep reads only their own; a manager their team's reps'.
    assert_eq!(
        error_code(&app.queue(&rep1_token, Some(&rep2)).await),
        "FORBIDDEN"
    );
    let managed = app.queue(&manager_token, Some(&rep1)).await;
    assert_eq!(
        managed["data"]["followUpQueue"].as_array().map(Vec::len),
        Some(2),
        "{managed}"
    );
    assert_eq!(
        error_code(&app.queue(&manager_token, Some(&rep2)).await),
        "FORBIDDEN"
    );
}

impl TestApp {
    pub(crate) async fn record_raw(&self, token: &str, lead: &str) -> Value {
        self.lead_mutation(
            token,
            "recordActivity",
            "RecordActivityInput",
            json!({"leadId": lead, "signalKey": "call"}),
        )
        .await
    }
}

#[tokio::test]
async fn a_page_of_leads_costs_the_same_number_of_queries_whatever_its_size() {
    let app = spawn_quiet_app().await;
    let t = app.sign_up_tenant("acme").await;
    let mut owners = vec![t.owner_id.clone()];
    let mut teams = Vec::new();
    for i in 0..3 {
        let team = app.create_team(&t.token, &format!("Team {i}"), &[]).await;
        teams.push(
            team["data"]["createTeam"]["team"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        let (id, _) = app
            .member(&t, &format!("rep{i}@acme.test"), "REP", &[])
            .await;
        owners.push(id);
    }
    for i in 0..50 {
        app.new_lead(
            &t.token,
            json!({"name": format!("L{i}"), "ownerId": owners[i % owners.len()], "teamId": teams[i % teams.len()]}),
        )
        .await;
    }
    let small = queries_for_page(&app, &t.token, 5).await;
    let full = queries_for_page(&app, &t.token, 50).await;
    assert_eq!(
        small, full,
        "a page of 50 ran {full} queries, a page of 5 ran {small}"
    );
    assert!(full <= 8, "a page of 50 ran {full} queries");
}

/// Statements the server ran for one page of `first` leads with their
/// owner, team, stage, pipeline and breakdown.
async fn queries_for_page(app: &TestApp, token: &str, first: usize) -> u64 {
    let query = "query($first: Int!) { leads(first: $first) { edges { node { id score tier
        owner { id displayName } team { id name } stage { key name } pipeline { id name }
        scoreBreakdown { total contributions { points } } } } } }";
    let before = app.queries.get();
    let body = app
        .graphql(Some(token), query, json!({"first": first}))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(
        body["data"]["leads"]["edges"].as_array().map(Vec::len),
        Some(first)
    );
    app.queries.get() - before
}

#[tokio::test]
async fn queue_reasons_speak_the_tenants_language() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant_in("zhongguo", "zh-CN").await;
    let lead = app
        .new_lead(
            &t.token,
            json!({"name": "李雷", "company": "华为", "attributes": weak(), "ownerId": t.owner_id}),
        )
        .await;
    app.record(
        &t.token,
        lead["id"].as_str().unwrap_or_default(),
        "urgent_quote_request",
        json!({}),
    )
    .await;
    let queue = app.queue(&t.token, None).await;
    let reasons = &queue["data"]["followUpQueue"][0]["reasons"];
    assert_eq!(reasons[0], "紧急：今天紧急索要报价", "{queue}");
    // The urgent quote lifted it into A: A's first response is asked.
    assert_eq!(reasons[1], "新的A级线索：1小时内响应", "{queue}");
    assert_eq!(
        reasons[2].as_str().map(|r| r.starts_with("A级：得分")),
        Some(true),
        "{reasons}"
    );
    assert_eq!(queue["data"]["followUpQueue"][0]["lead"]["name"], "李雷");
}

#[tokio::test]
async fn the_list_filters_by_tier_stage_status_owner_text_and_pool() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let hot = app
        .new_lead(&t.token, json!({"name": "Hot", "company": "Zeta 100% Ltd", "attributes": strong(), "ownerId": t.owner_id}))
        .await;
    let cold = app
        .new_lead(
            &t.token,
            json!({"name": "Cold", "company": "Alpha", "attributes": weak()}),
        )
        .await;
    let moved = app
        .new_lead(&t.token, json!({"name": "Moved", "email": "m@zeta.test"}))
        .await;
    app.lead_mutation(
        &t.token,
        "moveLeadStage",
        "MoveStageInput",
        json!({"id": moved["id"], "stageKey": "proposal"}),
    )
    .await;
    let won = app.new_lead(&t.token, json!({"name": "Won"})).await;
    app.lead_mutation(
        &t.token,
        "closeLead",
        "CloseLeadInput",
        json!({"id": won["id"], "outcome": "WON"}),
    )
    .await;

    let names = |filter: Value, order: &'static str| {
        let app = &app;
        let token = t.token.clone();
        async move {
            let body = app
                .graphql(
                    Some(&token),
                    "query($f: LeadFilter, $o: LeadOrder!) { leads(filter: $f, orderBy: $o) { totalCount edges { node { name score } } } }",
                    json!({"f": filter, "o": order}),
                )
                .await;
            let conn = &body["data"]["leads"];
            let names: Vec<String> = conn["edges"]
                .as_array()
                .unwrap_or_else(|| panic!("{body}"))
                .iter()
                .map(|e| e["node"]["name"].as_str().unwrap_or_default().to_owned())
                .collect();
            assert_eq!(
                conn["totalCount"].as_u64(),
                Some(names.len() as u64),
                "{body}"
            );
            names
        }
    };
    let hot_tier = hot["tier"].as_str().unwrap_or_default();
    assert_eq!(names(json!({"tiers": [hot_tier]}), "SCORE").await, ["Hot"]);
    assert_eq!(
        names(json!({"stageKeys": ["proposal"]}), "SCORE").await,
        ["Moved"]
    );
    assert_eq!(names(json!({"status": ["WON"]}), "SCORE").await, ["Won"]);
    assert_eq!(
        names(json!({"ownerId": t.owner_id}), "SCORE").await,
        ["Hot"]
    );
    assert_eq!(
        names(json!({"text": "ZETA"}), "SCORE").await.len(),
        2,
        "company and email match"
    );
    assert_eq!(
        names(json!({"text": "100%"}), "SCORE").await,
        ["Hot"],
        "% is literal"
    );
    assert_eq!(
        names(json!({"unassigned": true, "status": ["OPEN"]}), "UPDATED").await,
        ["Moved", "Cold"],
        "newest change first"
    );
    let by_score = names(json!({"status": ["OPEN"]}), "SCORE").await;
    assert_eq!(by_score.first().map(String::as_str), Some("Hot"));
    assert_eq!(by_score.len(), 3);
    assert!(by_score.contains(&cold["name"].as_str().unwrap_or_default().to_owned()));
}
