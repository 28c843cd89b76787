//! Leads through GraphQL as a frontend uses them: scoring on every change,
//! explanations, the list, the follow-up queue, visibility and tenancy.

use entity::lead_score;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::helpers::{
    Connection, Id, Name, TestApp, days_ago, spawn_app, spawn_quiet_app, strong, weak,
};

#[tokio::test]
async fn a_lead_with_strong_ratings_outranks_a_weak_one_in_the_queue() {
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

    assert!(strong.score > weak.score + 20.0, "{strong:?} vs {weak:?}");
    assert!(strong.tier_rank < weak.tier_rank);
    for lead in [&strong, &weak] {
        let breakdown = &lead.score_breakdown;
        assert!(
            (lead.points_shown() - lead.score).abs() < 1e-6,
            "{breakdown:?}"
        );
        assert_eq!(breakdown.tier, lead.tier);
        assert_eq!(breakdown.model_version, 1);
    }

    let queue = app.queue(&t.token, None).await;
    assert_eq!(queue.len(), 2, "{queue:?}");
    assert_eq!(queue[0].lead.id, strong.id);
    let reasons = queue[0].reasons.join("; ");
    assert!(
        reasons.contains(&format!("tier {}: score", strong.tier)),
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
        ids.push(lead.id);
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
    let order: Vec<&str> = queue.iter().map(|e| e.lead.id.as_str()).collect();
    assert_eq!(
        order,
        [fallen_id.as_str(), strong_id.as_str(), undated_id.as_str()],
        "{queue:?}"
    );
}

#[tokio::test]
async fn an_urgent_signal_lifts_a_low_lead_to_the_top_tier_saying_why() {
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
    assert_ne!(low.tier, "A");

    let lifted = app
        .record(
            &t.token,
            &low.id,
            "urgent_quote_request",
            json!({"occurredAt": days_ago(2)}),
        )
        .await;
    assert_eq!(lifted.tier, "A", "{lifted:?}");
    assert!(lifted.has_flag("URGENT"));
    let overrides = &lifted.score_breakdown.overrides;
    assert!(
        overrides.iter().any(|o| o.rule == "URGENT_SIGNAL"),
        "{overrides:?}"
    );
    assert_eq!(lifted.version, 2);

    let queue = app.queue(&t.token, None).await;
    assert_eq!(queue[0].lead.id, low.id, "{queue:?}");
    assert_eq!(queue[1].lead.id, other.id);
    assert_eq!(
        queue[0].reasons[0], "urgent: requests an urgent quote 2 days ago",
        "{queue:?}"
    );

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct History {
        score_history: Vec<ScoreEvent>,
        activities: Vec<Activity>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct ScoreEvent {
        old_tier: Option<String>,
        new_tier: String,
        reason: String,
        model_version: i64,
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Activity {
        signal_key: String,
        direction: String,
    }
    let history: History = app
        .root(
            Some(&t.token),
            "query($id: ID!) { lead(id: $id) { scoreHistory { oldTier newTier reason modelVersion } activities { signalKey direction } } }",
            json!({"id": low.id}),
        )
        .await;
    let events = &history.score_history;
    assert_eq!(events[0].new_tier, "A", "{history:?}");
    assert_eq!(events[0].old_tier.as_deref(), Some(low.tier.as_str()));
    assert_eq!(events[0].reason, "activity: urgent_quote_request");
    assert_eq!(events[0].model_version, 1);
    assert_eq!(events[1].reason, "created");
    assert_eq!(history.activities[0].signal_key, "urgent_quote_request");
    assert_eq!(history.activities[0].direction, "INBOUND");
}

#[tokio::test]
async fn a_burst_of_inbound_activity_raises_the_score() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let lead = app
        .new_lead(&t.token, json!({"name": "Ann", "attributes": weak()}))
        .await;
    let mut last = lead.score;
    for signal in ["inbound_inquiry", "detail_question", "deep_page_view"] {
        let now = app.record(&t.token, &lead.id, signal, json!({})).await;
        assert!(now.score > last, "{signal} did not raise {last}: {now:?}");
        last = now.score;
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

    let after = app
        .record(&t.token, &older.id, "inbound_inquiry", json!({}))
        .await;

    // The activity state lives beside the score, not in the lead's facts:
    // the lead still shows it changed, and when.
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
    assert!(
        at(&after.updated_at) > at(&older.updated_at),
        "updatedAt {} -> {}",
        older.updated_at,
        after.updated_at
    );
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Changed {
        id: String,
        last_activity_at: Option<String>,
    }
    let page: Connection<Changed> = app
        .root(
            Some(&t.token),
            "{ leads(orderBy: UPDATED, first: 2) { edges { node { id lastActivityAt } } } }",
            json!({}),
        )
        .await;
    let ids: Vec<&str> = page.edges.iter().map(|e| e.node.id.as_str()).collect();
    assert_eq!(ids, [older.id.as_str(), newer.id.as_str()], "{page:?}");
    assert!(page.edges[0].node.last_activity_at.is_some(), "{page:?}");
}

#[tokio::test]
async fn three_activities_recorded_on_one_lead_at_once_all_land() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let lead = app
        .new_lead(&t.token, json!({"name": "Ann", "attributes": weak()}))
        .await;
    let id = lead.id.as_str();

    // Each write that finds the lead changed by another tries again, and a
    // writer can lose only to the two others.
    let (a, b, c) = tokio::join!(
        app.record(&t.token, id, "website_visit", json!({})),
        app.record(&t.token, id, "deep_page_view", json!({})),
        app.record(&t.token, id, "inbound_inquiry", json!({})),
    );

    let versions: Vec<i64> = [&a, &b, &c].iter().map(|l| l.version).collect();
    let base = lead.version;
    let mut sorted = versions.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![base + 1, base + 2, base + 3], "{versions:?}");
    let now = app.lead_by_id(&t.token, id).await;
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
    let signals: Activities = app
        .root(
            Some(&t.token),
            "query($id: ID!) { lead(id: $id) { activities(first: 10) { signalKey } } }",
            json!({"id": id}),
        )
        .await;
    let mut recorded: Vec<&str> = signals
        .activities
        .iter()
        .map(|a| a.signal_key.as_str())
        .collect();
    recorded.sort_unstable();
    assert_eq!(
        recorded,
        ["deep_page_view", "inbound_inquiry", "website_visit"]
    );
    // The last write folded all three into the score.
    assert!(now.score > lead.score, "{now:?}");
}

#[tokio::test]
async fn a_lead_silent_for_a_month_is_cold_which_caps_it_below_the_top_tier() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let lead = app
        .new_lead(
            &t.token,
            json!({"name": "Quiet", "attributes": strong(), "ownerId": t.owner_id, "createdAt": days_ago(60)}),
        )
        .await;
    let cold = app
        .record(
            &t.token,
            &lead.id,
            "inbound_inquiry",
            json!({"occurredAt": days_ago(30)}),
        )
        .await;
    assert!(cold.has_flag("COLD"), "{cold:?}");
    assert_ne!(cold.tier, "A");
    assert!(cold.tier_rank >= 2, "capped at C: {cold:?}");

    let queue = app.queue(&t.token, None).await;
    let reasons = queue[0].reasons.join("; ");
    assert!(reasons.contains("cold: no reply for 30 days"), "{reasons}");

    // Filtering by flag finds it; the total counts it.
    let listed: Connection<Id> = app
        .root(
            Some(&t.token),
            "{ leads(filter: {flags: [COLD]}) { totalCount edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(listed.total_count, Some(1), "{listed:?}");
    assert_eq!(listed.nodes().next(), Some(&Id { id: lead.id }));
}

#[tokio::test]
async fn moving_a_lead_forward_raises_its_score() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let lead = app
        .new_lead(
            &t.token,
            json!({"name": "Mo", "attributes": weak(), "ownerId": t.owner_id}),
        )
        .await;
    assert_eq!(lead.stage.key, "lead");
    let id = lead.id.as_str();
    let moved = app
        .lead_mutation(
            &t.token,
            "moveLeadStage",
            "MoveStageInput",
            json!({"id": id, "stageKey": "intent_confirmed"}),
        )
        .await
        .expect("the lead moves forward");
    assert_eq!(moved.stage.key, "intent_confirmed", "{moved:?}");
    assert!(moved.score > lead.score);
}

#[tokio::test]
async fn a_lead_is_won_only_by_closing_it_which_takes_it_off_the_queue_for_good() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let lead = app
        .new_lead(
            &t.token,
            json!({"name": "Mo", "attributes": weak(), "ownerId": t.owner_id}),
        )
        .await;
    let id = lead.id.as_str();

    let to_won = app
        .lead_mutation(
            &t.token,
            "moveLeadStage",
            "MoveStageInput",
            json!({"id": id, "stageKey": "won"}),
        )
        .await
        .expect_err("a lead is won by closing it, not by moving it");
    assert_eq!(to_won.code(), "BAD_USER_INPUT");
    assert_eq!(to_won.field(), "input.stageKey");

    assert_eq!(app.queue(&t.token, None).await.len(), 1);
    let closed = app
        .lead_mutation(
            &t.token,
            "closeLead",
            "CloseLeadInput",
            json!({"id": id, "outcome": "WON", "reason": "signed"}),
        )
        .await
        .expect("an open lead closes");
    assert_eq!(closed.status, "WON", "{closed:?}");
    assert_eq!(closed.stage.kind, "WON");
    let queue = app.queue(&t.token, None).await;
    assert!(queue.is_empty(), "{queue:?}");

    let again = app
        .lead_mutation(
            &t.token,
            "closeLead",
            "CloseLeadInput",
            json!({"id": id, "outcome": "LOST"}),
        )
        .await
        .expect_err("a closed lead stays closed");
    assert_eq!(again.code(), "BAD_USER_INPUT");
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
        ids.push(lead.id);
    }
    for order in ["PRIORITY", "SCORE", "NEXT_FOLLOW_UP", "UPDATED"] {
        let mut seen: Vec<String> = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let conn: Connection<Id> = app
                .root(
                    Some(&t.token),
                    "query($order: LeadOrder!, $after: String) { leads(orderBy: $order, first: 5, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }",
                    json!({"order": order, "after": after}),
                )
                .await;
            assert_eq!(conn.total_count, Some(23), "{conn:?}");
            let page: Vec<String> = conn.nodes().map(|n| n.id.clone()).collect();
            // Re-score a lead already seen: it must not shift the others.
            if pages == 1 {
                app.record(&t.token, &seen[0], "meeting_request", json!({}))
                    .await;
            }
            seen.extend(page);
            pages += 1;
            if !conn.has_next_page() {
                break;
            }
            after = conn.end_cursor();
        }
        for id in &ids {
            assert!(seen.contains(id), "{order}: lead {id} was never listed");
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
        .refused(
            Some(&t.token),
            "{ leads(orderBy: SCORE, after: \"bm9wZQ\") { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(foreign.code(), "BAD_USER_INPUT");
    assert_eq!(foreign.field(), "after");
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
                // Compared as JSON: the two lists must match value for value.
                let mut conn: Value = app
                    .root(
                        Some(&t.token),
                        &format!(
                            "query($order: LeadOrder!, $after: String) {{ leads(orderBy: $order, first: 5, after: $after) {{ pageInfo {{ hasNextPage endCursor }} edges {{ cursor node {{ {fields} {extra} }} }} }} }}"
                        ),
                        json!({"order": order, "after": after[i]}),
                    )
                    .await;
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
async fn a_duplicate_lead_is_refused_as_a_conflict_naming_the_one_that_exists() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let first = app
        .new_lead(
            &t.token,
            json!({"name": "Li Lei", "company": "华为", "email": " Li.Lei@Example.com ", "phone": "+86 138-0000-0000"}),
        )
        .await;
    assert_eq!(first.email.as_deref(), Some("li.lei@example.com"));
    assert_eq!(first.phone.as_deref(), Some("+8613800000000"));

    for duplicate in [
        json!({"name": "Other", "email": "LI.LEI@example.com"}),
        json!({"name": "Other", "phone": "+86 13800000000"}),
        json!({"name": "li lei", "company": " 华为 "}),
    ] {
        let refused = app
            .create_lead(&t.token, duplicate.clone())
            .await
            .expect_err("a duplicate is refused");
        assert_eq!(refused.code(), "CONFLICT", "{duplicate}: {refused}");
        assert_eq!(
            refused.errors[0].extensions.existing_id.as_deref(),
            Some(first.id.as_str()),
            "{refused}"
        );
    }
}

#[tokio::test]
async fn an_update_made_from_a_stale_version_is_refused_as_a_conflict() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let first = app.new_lead(&t.token, json!({"name": "Li Lei"})).await;
    let id = first.id.as_str();
    let update = |version: i64, name: &str| json!({"id": id, "expectedVersion": version, "name": name, "attributes": {"budget": 4}});
    let ok = app
        .lead_mutation(
            &t.token,
            "updateLead",
            "UpdateLeadInput",
            update(1, "Li Lei Jr"),
        )
        .await
        .expect("an update of the current version succeeds");
    assert_eq!(ok.version, 2, "{ok:?}");
    let stale = app
        .lead_mutation(
            &t.token,
            "updateLead",
            "UpdateLeadInput",
            update(1, "Lost update"),
        )
        .await
        .expect_err("an update of a stale version is refused");
    assert_eq!(stale.code(), "CONFLICT");
    assert_eq!(app.lead_by_id(&t.token, id).await.name, "Li Lei Jr");
}

#[tokio::test]
async fn a_bad_attribute_is_refused_by_name_without_writing_anything() {
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
        let refused = app
            .create_lead(&t.token, json!({"name": "Bad", "attributes": attributes}))
            .await
            .expect_err("a bad attribute is refused");
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{refused}");
        assert_eq!(refused.field(), field);
    }
    let bad_email = app
        .create_lead(&t.token, json!({"name": "Bad", "email": "nope"}))
        .await
        .expect_err("a malformed email is refused");
    assert_eq!(bad_email.field(), "input.email");
    let long_name = app
        .create_lead(&t.token, json!({"name": "x".repeat(201)}))
        .await
        .expect_err("a name of 201 characters is refused");
    assert_eq!(long_name.field(), "input.name");

    let count: Connection<Id> = app
        .root(Some(&t.token), "{ leads { totalCount } }", json!({}))
        .await;
    assert_eq!(count.total_count, Some(0));

    let lead = app
        .new_lead(
            &t.token,
            json!({"name": "Good", "attributes": {"budget": 3}}),
        )
        .await;
    let id = lead.id.as_str();
    let refused = app
        .lead_mutation(
            &t.token,
            "updateLead",
            "UpdateLeadInput",
            json!({"id": id, "expectedVersion": 1, "name": "Renamed", "attributes": {"need": 0}}),
        )
        .await
        .expect_err("an update with a bad attribute is refused");
    assert_eq!(refused.field(), "input.attributes.need");
    let unchanged = app.lead_by_id(&t.token, id).await;
    assert_eq!(unchanged.name, "Good");
    assert_eq!(unchanged.version, 1);
    assert_eq!(unchanged.attributes, json!({"budget": 3}));
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
    let id = lead.id.as_str();

    let read: Option<Id> = app
        .root(
            Some(&b.token),
            "query($id: ID!) { lead(id: $id) { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(read, None, "another tenant's lead reads as null");
    let listed: Connection<Id> = app
        .root(
            Some(&b.token),
            "{ leads { totalCount edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(listed.total_count, Some(0), "{listed:?}");

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
        let refused = app
            .lead_mutation(&b.token, name, input_type, input)
            .await
            .expect_err("another tenant's lead cannot be changed");
        assert_eq!(refused.code(), "NOT_FOUND", "{name}: {refused}");
    }
    // Nor may it hand its own leads to the first tenant's people or read their queue.
    let foreign_owner = app
        .create_lead(&b.token, json!({"name": "Mine", "ownerId": a.owner_id}))
        .await
        .expect_err("another tenant's person cannot own a lead");
    assert_eq!(foreign_owner.field(), "input.ownerId");
    let queue = app
        .try_queue(&b.token, Some(&a.owner_id))
        .await
        .expect_err("another tenant's person has no queue here");
    assert_eq!(queue.code(), "NOT_FOUND");
    // The same email is free in another tenant.
    app.new_lead(&b.token, json!({"name": "Secret", "email": "s@acme.test"}))
        .await;

    let after = app.lead_by_id(&a.token, id).await;
    assert_eq!(after.name, "Secret");
    assert_eq!(after.version, 1);
    assert_eq!(after.status, "OPEN");
}

#[tokio::test]
async fn each_role_sees_the_leads_its_visibility_rule_allows() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let team_id = app.new_team(&t.token, "East").await;
    let (rep1, rep1_token) = app.member(&t, "rep1@acme.test", "REP", &[&team_id]).await;
    let (rep2, rep2_token) = app.member(&t, "rep2@acme.test", "REP", &[]).await;
    let (_, manager_token) = app
        .member(&t, "boss@acme.test", "MANAGER", &[&team_id])
        .await;

    let own = app
        .new_lead(&rep1_token, json!({"name": "Rep1 lead"}))
        .await;
    assert_eq!(
        own.owner_id(),
        Some(rep1.as_str()),
        "a rep's new lead is theirs"
    );
    let theirs = app
        .new_lead(&rep2_token, json!({"name": "Rep2 lead"}))
        .await;
    let pool = app.new_lead(&t.token, json!({"name": "Pool lead"})).await;

    let visible = |token: String| {
        let app = &app;
        async move {
            let leads: Connection<Name> = app
                .root(
                    Some(&token),
                    "{ leads { totalCount edges { node { name } } } }",
                    json!({}),
                )
                .await;
            let mut names: Vec<String> = leads.nodes().map(|n| n.name.clone()).collect();
            assert_eq!(leads.total_count, Some(names.len() as i64));
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

    let other_id = theirs.id.as_str();
    let read: Option<Id> = app
        .root(
            Some(&rep1_token),
            "query($id: ID!) { lead(id: $id) { id } }",
            json!({"id": other_id}),
        )
        .await;
    assert_eq!(read, None, "a colleague's lead reads as null");
    let touch = app
        .lead_mutation(
            &rep1_token,
            "recordActivity",
            "RecordActivityInput",
            json!({"leadId": other_id, "signalKey": "call"}),
        )
        .await
        .expect_err("a rep cannot record on a colleague's lead");
    assert_eq!(touch.code(), "NOT_FOUND");

    // A rep may take a pool lead but not hand it to a colleague.
    let give = app
        .lead_mutation(
            &rep1_token,
            "assignLead",
            "AssignLeadInput",
            json!({"id": pool.id, "ownerId": rep2}),
        )
        .await
        .expect_err("a rep cannot hand a lead to a colleague");
    assert_eq!(give.code(), "FORBIDDEN");
    let take = app
        .lead_mutation(
            &rep1_token,
            "assignLead",
            "AssignLeadInput",
            json!({"id": pool.id, "ownerId": rep1}),
        )
        .await
        .expect("a rep takes a pool lead");
    assert_eq!(take.owner_id(), Some(rep1.as_str()), "{take:?}");

    // Queues: a rep reads only their own; a manager their team's reps'.
    let refused = app.try_queue(&rep1_token, Some(&rep2)).await;
    assert_eq!(refused.expect_err("not their queue").code(), "FORBIDDEN");
    let managed = app.queue(&manager_token, Some(&rep1)).await;
    assert_eq!(managed.len(), 2, "{managed:?}");
    let refused = app.try_queue(&manager_token, Some(&rep2)).await;
    assert_eq!(refused.expect_err("not their team").code(), "FORBIDDEN");
}

#[tokio::test]
async fn a_page_of_leads_costs_the_same_number_of_queries_whatever_its_size() {
    let app = spawn_quiet_app().await;
    let t = app.sign_up_tenant("acme").await;
    let mut owners = vec![t.owner_id.clone()];
    let mut teams = Vec::new();
    for i in 0..3 {
        teams.push(app.new_team(&t.token, &format!("Team {i}")).await);
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
    // Read as JSON: the page's size is what counts here, not its fields.
    let page: Connection<Value> = app.root(Some(token), query, json!({"first": first})).await;
    assert_eq!(page.edges.len(), first);
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
    app.record(&t.token, &lead.id, "urgent_quote_request", json!({}))
        .await;
    let queue = app.queue(&t.token, None).await;
    let reasons = &queue[0].reasons;
    assert_eq!(reasons[0], "紧急：今天紧急索要报价", "{queue:?}");
    // The urgent quote lifted it into A: A's first response is asked.
    assert_eq!(reasons[1], "新的A级线索：1小时内响应", "{queue:?}");
    assert!(reasons[2].starts_with("A级：得分"), "{reasons:?}");
    assert_eq!(queue[0].lead.name, "李雷");
}

#[tokio::test]
async fn the_lead_list_filters_by_any_of_its_criteria() {
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
        json!({"id": moved.id, "stageKey": "proposal"}),
    )
    .await
    .expect("the lead moves to the proposal");
    let won = app.new_lead(&t.token, json!({"name": "Won"})).await;
    app.lead_mutation(
        &t.token,
        "closeLead",
        "CloseLeadInput",
        json!({"id": won.id, "outcome": "WON"}),
    )
    .await
    .expect("the lead is won");

    let names = |filter: Value, order: &'static str| {
        let app = &app;
        let token = t.token.clone();
        async move {
            #[derive(Debug, Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Node {
                name: String,
                score: f64,
            }
            let conn: Connection<Node> = app
                .root(
                    Some(&token),
                    "query($f: LeadFilter, $o: LeadOrder!) { leads(filter: $f, orderBy: $o) { totalCount edges { node { name score } } } }",
                    json!({"f": filter, "o": order}),
                )
                .await;
            let names: Vec<String> = conn.nodes().map(|n| n.name.clone()).collect();
            assert_eq!(conn.total_count, Some(names.len() as i64), "{conn:?}");
            if order == "SCORE" {
                let scores: Vec<f64> = conn.nodes().map(|n| n.score).collect();
                assert!(scores.is_sorted_by(|a, b| a >= b), "{scores:?}");
            }
            names
        }
    };
    let hot_tier = hot.tier.as_str();
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
    assert!(by_score.contains(&cold.name));
}
