//! Whom next, as the sales methods say: the queue's order, cooling from
//! the last reply, follow-ups people schedule, the pool, customers.

use serde_json::json;

use crate::{
    helpers::{error_code, error_field, spawn_app},
    leads::{days_ago, flags, strong, weak},
};

#[tokio::test]
async fn a_lead_entered_today_whose_last_reply_was_thirty_days_ago_is_cold() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let lead = app
        .new_lead(
            &t.token,
            json!({"name": "Brought over", "attributes": strong(), "ownerId": t.owner_id}),
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
    let queue = app.queue(&t.token, None).await;
    let reasons = queue["data"]["followUpQueue"][0]["reasons"].to_string();
    assert!(reasons.contains("cold: no reply for 30 days"), "{reasons}");

    // A reply today warms it again.
    let warm = app.record(&t.token, id, "inbound_inquiry", json!({})).await;
    assert!(!flags(&warm).contains(&"COLD"), "{warm}");
}

const SCHEDULE: &str = "mutation($input: ScheduleFollowUpInput!) { scheduleFollowUp(input: $input) { lead { id nextFollowUpAt flags scheduledFollowUp { at note setBy { id } } } } }";

/// Moves a lead's scheduled follow-up and stored due date `hours` back, as
/// if that much time had passed since it was scheduled.
async fn as_if_hours_passed(app: &crate::helpers::TestApp, lead: &str, hours: i64) {
    use entity::{lead_facts, lead_score};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    let id: uuid::Uuid = lead.parse().expect("a UUID");
    let back = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.map(|at| at - chrono::Duration::hours(hours))
    };
    let facts = lead_facts::Entity::find()
        .filter(lead_facts::Column::Id.eq(id))
        .one(&app.system_db)
        .await
        .expect("the lead is read")
        .expect("the lead exists");
    lead_facts::Entity::update_many()
        .col_expr(
            lead_facts::Column::ScheduledFollowUpAt,
            Expr::value(back(facts.scheduled_follow_up_at)),
        )
        .filter(lead_facts::Column::Id.eq(id))
        .exec(&app.system_db)
        .await
        .expect("the schedule moves");
    let score = lead_score::Entity::find()
        .filter(lead_score::Column::LeadId.eq(id))
        .one(&app.system_db)
        .await
        .expect("the score is read")
        .expect("the score exists");
    lead_score::Entity::update_many()
        .col_expr(
            lead_score::Column::NextFollowUpAt,
            Expr::value(back(score.next_follow_up_at)),
        )
        .filter(lead_score::Column::LeadId.eq(id))
        .exec(&app.system_db)
        .await
        .expect("the due date moves");
}

#[tokio::test]
async fn a_scheduled_follow_up_tops_the_queue_when_due_and_an_outbound_call_completes_it() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let me = t.owner_id.as_str();
    let strong_lead = app
        .new_lead(
            &t.token,
            json!({"name": "Strong", "attributes": strong(), "ownerId": me}),
        )
        .await;
    let tender = app
        .new_lead(
            &t.token,
            json!({"name": "Tender", "attributes": weak(), "ownerId": me}),
        )
        .await;
    let tender_id = tender["id"].as_str().unwrap_or_default();
    let cadence = tender["nextFollowUpAt"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let at = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let body = app
        .graphql(
            Some(&t.token),
            SCHEDULE,
            json!({"input": {"leadId": tender_id, "at": at, "note": "call after the tender on the 15th"}}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let lead = &body["data"]["scheduleFollowUp"]["lead"];
    let scheduled = &lead["scheduledFollowUp"];
    assert_eq!(scheduled["note"], "call after the tender on the 15th");
    assert_eq!(scheduled["setBy"]["id"], me);
    let due =
        chrono::DateTime::parse_from_rfc3339(lead["nextFollowUpAt"].as_str().unwrap_or_default())
            .expect("a due date");
    let asked = chrono::DateTime::parse_from_rfc3339(&at).expect("a date");
    assert!(
        (due - asked).num_seconds().abs() <= 1,
        "due at the scheduled time: {lead}"
    );
    assert!(
        due < chrono::DateTime::parse_from_rfc3339(&cadence).expect("a cadence date"),
        "the schedule is earlier than the weak lead's cadence"
    );

    // Three hours on, the weak lead comes before the strong one, saying why.
    as_if_hours_passed(&app, tender_id, 3).await;
    let queue = app.queue(&t.token, None).await;
    let first = &queue["data"]["followUpQueue"][0];
    assert_eq!(first["lead"]["id"], tender_id, "{queue}");
    let reasons = first["reasons"].to_string();
    assert!(
        reasons.contains("scheduled follow-up: call after the tender on the 15th"),
        "{reasons}"
    );
    assert_ne!(queue["data"]["followUpQueue"][1]["lead"]["id"], tender_id);
    assert_eq!(
        queue["data"]["followUpQueue"][1]["lead"]["id"],
        strong_lead["id"]
    );

    // The call is the follow-up: the schedule is done and says so.
    let called = app.record(&t.token, tender_id, "call", json!({})).await;
    let after = app
        .graphql(
            Some(&t.token),
            "query($id: ID!) { lead(id: $id) { nextFollowUpAt flags scheduledFollowUp { at } history { kind toValue } } }",
            json!({"id": tender_id}),
        )
        .await;
    let lead = &after["data"]["lead"];
    assert!(lead["scheduledFollowUp"].is_null(), "{after}");
    assert!(!flags(&called).contains(&"OVERDUE"), "{called}");
    let history = lead["history"].to_string();
    assert!(
        history.contains("FOLLOW_UP_DONE") && history.contains("FOLLOW_UP_SCHEDULED"),
        "{history}"
    );
}

#[tokio::test]
async fn a_follow_up_in_the_past_or_on_a_pool_lead_by_a_rep_or_anothers_lead_is_refused() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let lead = app
        .new_lead(&t.token, json!({"name": "Pool lead", "attributes": weak()}))
        .await;
    let id = lead["id"].as_str().unwrap_or_default();
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let body = app
        .graphql(
            Some(&t.token),
            SCHEDULE,
            json!({"input": {"leadId": id, "at": past}}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(error_field(&body), "input.at");

    let soon = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let (_, rep) = app.member(&t, "rep@acme.example", "REP", &[]).await;
    let body = app
        .graphql(
            Some(&rep),
            SCHEDULE,
            json!({"input": {"leadId": id, "at": soon}}),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");

    let other = app.sign_up_tenant("globex").await;
    let body = app
        .graphql(
            Some(&other.token),
            SCHEDULE,
            json!({"input": {"leadId": id, "at": soon}}),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    let body = app
        .graphql(
            Some(&other.token),
            "mutation($input: ClearScheduledFollowUpInput!) { clearScheduledFollowUp(input: $input) { lead { id } } }",
            json!({"input": {"leadId": id}}),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");

    // Nothing of it was written.
    let read = app
        .graphql(
            Some(&t.token),
            "query($id: ID!) { lead(id: $id) { scheduledFollowUp { at } history { kind } } }",
            json!({"id": id}),
        )
        .await;
    assert!(
        read["data"]["lead"]["scheduledFollowUp"].is_null(),
        "{read}"
    );
    assert!(
        !read["data"]["lead"]["history"]
            .to_string()
            .contains("FOLLOW_UP"),
        "{read}"
    );

    // The owner schedules it, then clears it.
    let body = app
        .graphql(
            Some(&t.token),
            SCHEDULE,
            json!({"input": {"leadId": id, "at": soon}}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let cleared = app
        .graphql(
            Some(&t.token),
            "mutation($input: ClearScheduledFollowUpInput!) { clearScheduledFollowUp(input: $input) { lead { scheduledFollowUp { at } } } }",
            json!({"input": {"leadId": id}}),
        )
        .await;
    assert!(
        cleared["data"]["clearScheduledFollowUp"]["lead"]["scheduledFollowUp"].is_null(),
        "{cleared}"
    );
}

#[tokio::test]
async fn an_urgent_lead_tops_a_queue_of_overdue_leads_and_says_why_first() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let me = t.owner_id.as_str();
    for i in 0..3 {
        let overdue = app
            .new_lead(
                &t.token,
                json!({"name": format!("Overdue {i}"), "attributes": weak(), "ownerId": me, "createdAt": days_ago(60)}),
            )
            .await;
        assert!(flags(&overdue).contains(&"OVERDUE"), "{overdue}");
    }
    let quiet = app
        .new_lead(
            &t.token,
            json!({"name": "Quote", "attributes": weak(), "ownerId": me}),
        )
        .await;
    let quiet_id = quiet["id"].as_str().unwrap_or_default();
    let urgent = app
        .record(&t.token, quiet_id, "urgent_quote_request", json!({}))
        .await;
    assert!(flags(&urgent).contains(&"URGENT"), "{urgent}");

    let queue = app.queue(&t.token, None).await;
    let entries = queue["data"]["followUpQueue"].as_array().expect("a queue");
    assert_eq!(entries.len(), 4, "{queue}");
    assert_eq!(entries[0]["lead"]["id"], quiet_id, "{queue}");
    assert!(
        entries[0]["reasons"][0]
            .as_str()
            .is_some_and(|r| r.starts_with("urgent: ")),
        "{queue}"
    );
    let priorities: Vec<i64> = entries
        .iter()
        .filter_map(|e| e["priority"].as_i64())
        .collect();
    assert!(
        priorities.windows(2).all(|w| w[0] >= w[1]),
        "{priorities:?}"
    );

    // The lead list's priority order agrees with the queue.
    let listed = app
        .graphql(
            Some(&t.token),
            "{ leads(orderBy: PRIORITY, first: 1) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed["data"]["leads"]["edges"][0]["node"]["id"], quiet_id,
        "{listed}"
    );
}

#[tokio::test]
async fn a_new_top_tier_lead_is_due_within_the_hour_with_the_reason() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let me = t.owner_id.as_str();
    let lead = app
        .new_lead(
            &t.token,
            json!({"name": "Hot", "attributes": strong(), "ownerId": me}),
        )
        .await;
    let id = lead["id"].as_str().unwrap_or_default();
    let lead = app.record(&t.token, id, "meeting_request", json!({})).await;
    assert_eq!(lead["tier"], "A", "{lead}");
    let due =
        chrono::DateTime::parse_from_rfc3339(lead["nextFollowUpAt"].as_str().unwrap_or_default())
            .expect("a due date");
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    assert!(
        (due.with_timezone(&chrono::Utc) - in_an_hour)
            .num_minutes()
            .abs()
            <= 1,
        "due within the hour, not after A's two-day cadence: {lead}"
    );
    let queue = app.queue(&t.token, None).await;
    let reasons = queue["data"]["followUpQueue"][0]["reasons"].to_string();
    assert!(
        reasons.contains("new tier A lead: respond within 1 hour"),
        "{reasons}"
    );

    // The first call answers it: the reason goes and A's cadence counts.
    let called = app.record(&t.token, id, "call", json!({})).await;
    let due =
        chrono::DateTime::parse_from_rfc3339(called["nextFollowUpAt"].as_str().unwrap_or_default())
            .expect("a due date");
    assert!(
        due.with_timezone(&chrono::Utc) > chrono::Utc::now() + chrono::Duration::days(1),
        "{called}"
    );
    let queue = app.queue(&t.token, None).await;
    let reasons = queue["data"]["followUpQueue"][0]["reasons"].to_string();
    assert!(!reasons.contains("respond within"), "{reasons}");
}

const DEACTIVATE: &str = "mutation($input: DeactivateUserInput!) { deactivateUser(input: $input) { user { id active } } }";
const REASSIGN: &str =
    "mutation($input: ReassignLeadsInput!) { reassignLeads(input: $input) { moved } }";

async fn owner_of(app: &crate::helpers::TestApp, token: &str, lead: &str) -> serde_json::Value {
    let body = app
        .graphql(
            Some(token),
            "query($id: ID!) { lead(id: $id) { owner { id } history { kind fromValue toValue } } }",
            json!({"id": lead}),
        )
        .await;
    body["data"]["lead"].clone()
}

#[tokio::test]
async fn a_deactivated_reps_token_is_refused_at_once_and_their_leads_move() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let (rep_id, rep) = app.member(&t, "rep@acme.example", "REP", &[]).await;
    let mut leads = Vec::new();
    for name in ["First", "Second"] {
        let lead = app
            .new_lead(&rep, json!({"name": name, "attributes": weak()}))
            .await;
        leads.push(lead["id"].as_str().unwrap_or_default().to_owned());
    }
    let me = app.graphql(Some(&rep), "{ me { id } }", json!({})).await;
    assert_eq!(me["data"]["me"]["id"], rep_id.as_str(), "{me}");

    // The rep may not deactivate anyone, themselves included.
    let body = app
        .graphql(
            Some(&rep),
            DEACTIVATE,
            json!({"input": {"userId": t.owner_id}}),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    // The owner may not deactivate themselves, nor hand the leads to the
    // one leaving.
    let body = app
        .graphql(
            Some(&t.token),
            DEACTIVATE,
            json!({"input": {"userId": t.owner_id}}),
        )
        .await;
    assert_eq!(error_field(&body), "input.userId", "{body}");
    let body = app
        .graphql(
            Some(&t.token),
            DEACTIVATE,
            json!({"input": {"userId": rep_id, "reassignTo": rep_id}}),
        )
        .await;
    assert_eq!(error_field(&body), "input.reassignTo", "{body}");
    // Nothing of that was written: the rep still works.
    let me = app.graphql(Some(&rep), "{ me { id } }", json!({})).await;
    assert_eq!(me["data"]["me"]["id"], rep_id.as_str(), "{me}");

    let body = app
        .graphql(
            Some(&t.token),
            DEACTIVATE,
            json!({"input": {"userId": rep_id, "reassignTo": t.owner_id}}),
        )
        .await;
    assert_eq!(
        body["data"]["deactivateUser"]["user"]["active"], false,
        "{body}"
    );

    let me = app.graphql(Some(&rep), "{ me { id } }", json!({})).await;
    assert_eq!(error_code(&me), "UNAUTHENTICATED", "{me}");
    let login = app
        .login(&t.slug, "rep@acme.example", crate::helpers::PASSWORD)
        .await;
    assert!(login["data"]["login"].is_null(), "{login}");
    for lead in &leads {
        let read = owner_of(&app, &t.token, lead).await;
        assert_eq!(read["owner"]["id"], t.owner_id.as_str(), "{read}");
        let history = read["history"].to_string();
        assert!(
            history.contains("ASSIGNED") && history.contains(&rep_id),
            "{history}"
        );
    }
    let queue = app.queue(&t.token, None).await;
    assert_eq!(
        queue["data"]["followUpQueue"].as_array().map(Vec::len),
        Some(2),
        "the owner's queue holds the moved leads: {queue}"
    );
}

#[tokio::test]
async fn leads_move_between_members_of_a_managers_team_and_no_further() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let east_team = app.new_team(&t.token, "East").await;
    let west_team = app.new_team(&t.token, "West").await;
    let east_teams = [east_team.as_str()];
    let (_, manager) = app
        .member(&t, "mgr@acme.example", "MANAGER", &east_teams)
        .await;
    let (east_id, east) = app
        .member(&t, "east@acme.example", "REP", &east_teams)
        .await;
    let (east2_id, _) = app
        .member(&t, "east2@acme.example", "REP", &east_teams)
        .await;
    let (west_id, _) = app
        .member(&t, "west@acme.example", "REP", &[west_team.as_str()])
        .await;
    let mut leads = Vec::new();
    for name in ["A", "B", "C"] {
        let lead = app
            .new_lead(&east, json!({"name": name, "attributes": weak()}))
            .await;
        leads.push(lead["id"].as_str().unwrap_or_default().to_owned());
    }

    let body = app
        .graphql(
            Some(&manager),
            REASSIGN,
            json!({"input": {"fromUserId": east_id, "toUserId": west_id}}),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    let body = app
        .graphql(
            Some(&east),
            REASSIGN,
            json!({"input": {"fromUserId": east_id, "toUserId": east2_id}}),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    let other = app.sign_up_tenant("globex").await;
    let body = app
        .graphql(
            Some(&other.token),
            REASSIGN,
            json!({"input": {"fromUserId": east_id, "toUserId": null}}),
        )
        .await;
    assert_eq!(error_field(&body), "input.fromUserId", "{body}");
    for lead in &leads {
        assert_eq!(
            owner_of(&app, &t.token, lead).await["owner"]["id"],
            east_id.as_str()
        );
    }

    let body = app
        .graphql(
            Some(&manager),
            REASSIGN,
            json!({"input": {"fromUserId": east_id, "toUserId": east2_id}}),
        )
        .await;
    assert_eq!(body["data"]["reassignLeads"]["moved"], 3, "{body}");
    for lead in &leads {
        assert_eq!(
            owner_of(&app, &t.token, lead).await["owner"]["id"],
            east2_id.as_str()
        );
    }
    // And back to the pool.
    let body = app
        .graphql(
            Some(&t.token),
            REASSIGN,
            json!({"input": {"fromUserId": east2_id, "toUserId": null}}),
        )
        .await;
    assert_eq!(body["data"]["reassignLeads"]["moved"], 3, "{body}");
    let pool = app
        .graphql(
            Some(&t.token),
            "{ leads(filter: {unassigned: true}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(pool["data"]["leads"]["totalCount"], 3, "{pool}");
}
