//! Whom next, as the sales methods say: the queue's order, cooling from
//! the last reply, follow-ups people schedule, the pool, customers.

use serde::Deserialize;
use serde_json::json;

use crate::helpers::{Connection, Id, TestApp, days_ago, spawn_app, strong, weak};

/// `history { kind … }` entries; only what the query asked is there.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LeadEvent {
    kind: String,
    from_value: Option<String>,
    to_value: Option<String>,
}

/// `scheduledFollowUp { at note setBy { id } }`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScheduledFollowUp {
    at: String,
    note: Option<String>,
    set_by: Option<Id>,
}

/// A lead as the follow-up queries here read it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FollowUpLead {
    id: Option<String>,
    next_follow_up_at: Option<String>,
    #[serde(default)]
    flags: Vec<String>,
    scheduled_follow_up: Option<ScheduledFollowUp>,
    #[serde(default)]
    history: Vec<LeadEvent>,
    owner: Option<Id>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeadPayload {
    lead: FollowUpLead,
}

/// A date-time the API gave, in UTC.
fn at(value: Option<&str>) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(value.unwrap_or_default())
        .unwrap_or_else(|e| panic!("{value:?} is not a date-time: {e}"))
        .with_timezone(&chrono::Utc)
}

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
    let id = lead.id.as_str();
    let cold = app
        .record(
            &t.token,
            id,
            "inbound_inquiry",
            json!({"occurredAt": days_ago(30)}),
        )
        .await;
    assert!(cold.has_flag("COLD"), "{cold:?}");
    let queue = app.queue(&t.token, None).await;
    let reasons = queue[0].reasons.join("; ");
    assert!(reasons.contains("cold: no reply for 30 days"), "{reasons}");

    // A reply today warms it again.
    let warm = app.record(&t.token, id, "inbound_inquiry", json!({})).await;
    assert!(!warm.has_flag("COLD"), "{warm:?}");
}

const SCHEDULE: &str = "mutation($input: ScheduleFollowUpInput!) { scheduleFollowUp(input: $input) { lead { id nextFollowUpAt flags scheduledFollowUp { at note setBy { id } } } } }";

/// Moves a lead's scheduled follow-up and stored due date `hours` back, as
/// if that much time had passed since it was scheduled.
async fn as_if_hours_passed(app: &TestApp, lead: &str, hours: i64) {
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
async fn an_outbound_call_completes_a_scheduled_follow_up_that_topped_the_queue() {
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
    let tender_id = tender.id.as_str();
    let cadence = at(tender.next_follow_up_at.as_deref());

    let asked = chrono::Utc::now() + chrono::Duration::hours(2);
    let scheduled: LeadPayload = app
        .root(
            Some(&t.token),
            SCHEDULE,
            json!({"input": {"leadId": tender_id, "at": asked.to_rfc3339(), "note": "call after the tender on the 15th"}}),
        )
        .await;
    let lead = scheduled.lead;
    assert_eq!(lead.id.as_deref(), Some(tender_id));
    assert!(!lead.flags.iter().any(|f| f == "OVERDUE"), "{lead:?}");
    let follow_up = lead
        .scheduled_follow_up
        .as_ref()
        .expect("the follow-up is scheduled");
    assert_eq!(
        follow_up.note.as_deref(),
        Some("call after the tender on the 15th")
    );
    assert_eq!(follow_up.set_by.as_ref().map(|u| u.id.as_str()), Some(me));
    assert!(
        (at(Some(&follow_up.at)) - asked).num_seconds().abs() <= 1,
        "{lead:?}"
    );
    let due = at(lead.next_follow_up_at.as_deref());
    assert!(
        (due - asked).num_seconds().abs() <= 1,
        "due at the scheduled time: {lead:?}"
    );
    assert!(
        due < cadence,
        "the schedule is earlier than the weak lead's cadence"
    );

    // Three hours on, the weak lead comes before the strong one, saying why.
    as_if_hours_passed(&app, tender_id, 3).await;
    let queue = app.queue(&t.token, None).await;
    assert_eq!(queue[0].lead.id, tender_id, "{queue:?}");
    let reasons = queue[0].reasons.join("; ");
    assert!(
        reasons.contains("scheduled follow-up: call after the tender on the 15th"),
        "{reasons}"
    );
    assert_eq!(queue[1].lead.id, strong_lead.id);

    // The call is the follow-up: the schedule is done and says so.
    let called = app.record(&t.token, tender_id, "call", json!({})).await;
    let lead: FollowUpLead = app
        .root(
            Some(&t.token),
            "query($id: ID!) { lead(id: $id) { nextFollowUpAt flags scheduledFollowUp { at } history { kind toValue } } }",
            json!({"id": tender_id}),
        )
        .await;
    assert!(lead.scheduled_follow_up.is_none(), "{lead:?}");
    assert!(!called.has_flag("OVERDUE"), "{called:?}");
    assert!(!lead.flags.iter().any(|f| f == "OVERDUE"), "{lead:?}");
    let kinds: Vec<&str> = lead.history.iter().map(|e| e.kind.as_str()).collect();
    assert!(
        kinds.contains(&"FOLLOW_UP_DONE") && kinds.contains(&"FOLLOW_UP_SCHEDULED"),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a_follow_up_in_the_past_or_on_a_pool_lead_by_a_rep_or_anothers_lead_is_refused() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let lead = app
        .new_lead(&t.token, json!({"name": "Pool lead", "attributes": weak()}))
        .await;
    let id = lead.id.as_str();
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let refused = app
        .refused(
            Some(&t.token),
            SCHEDULE,
            json!({"input": {"leadId": id, "at": past}}),
        )
        .await;
    assert_eq!(refused.code(), "BAD_USER_INPUT");
    assert_eq!(refused.field(), "input.at");

    let soon = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let (_, rep) = app.member(&t, "rep@acme.example", "REP", &[]).await;
    let refused = app
        .refused(
            Some(&rep),
            SCHEDULE,
            json!({"input": {"leadId": id, "at": soon}}),
        )
        .await;
    assert_eq!(refused.code(), "FORBIDDEN", "{refused}");

    let other = app.sign_up_tenant("globex").await;
    let refused = app
        .refused(
            Some(&other.token),
            SCHEDULE,
            json!({"input": {"leadId": id, "at": soon}}),
        )
        .await;
    assert_eq!(refused.code(), "NOT_FOUND", "{refused}");
    let refused = app
        .refused(
            Some(&other.token),
            "mutation($input: ClearScheduledFollowUpInput!) { clearScheduledFollowUp(input: $input) { lead { id } } }",
            json!({"input": {"leadId": id}}),
        )
        .await;
    assert_eq!(refused.code(), "NOT_FOUND", "{refused}");

    // Nothing of it was written.
    let read: FollowUpLead = app
        .root(
            Some(&t.token),
            "query($id: ID!) { lead(id: $id) { scheduledFollowUp { at } history { kind } } }",
            json!({"id": id}),
        )
        .await;
    assert!(read.scheduled_follow_up.is_none(), "{read:?}");
    assert!(
        !read.history.iter().any(|e| e.kind.contains("FOLLOW_UP")),
        "{read:?}"
    );

    // The owner schedules it, then clears it.
    let scheduled: LeadPayload = app
        .root(
            Some(&t.token),
            SCHEDULE,
            json!({"input": {"leadId": id, "at": soon}}),
        )
        .await;
    assert!(
        scheduled.lead.scheduled_follow_up.is_some(),
        "{scheduled:?}"
    );
    let cleared: LeadPayload = app
        .root(
            Some(&t.token),
            "mutation($input: ClearScheduledFollowUpInput!) { clearScheduledFollowUp(input: $input) { lead { scheduledFollowUp { at } } } }",
            json!({"input": {"leadId": id}}),
        )
        .await;
    assert!(cleared.lead.scheduled_follow_up.is_none(), "{cleared:?}");
}

#[tokio::test]
async fn an_urgent_lead_tops_a_queue_of_overdue_leads_with_its_reason_first() {
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
        assert!(overdue.has_flag("OVERDUE"), "{overdue:?}");
    }
    let quiet = app
        .new_lead(
            &t.token,
            json!({"name": "Quote", "attributes": weak(), "ownerId": me}),
        )
        .await;
    let quiet_id = quiet.id.as_str();
    let urgent = app
        .record(&t.token, quiet_id, "urgent_quote_request", json!({}))
        .await;
    assert!(urgent.has_flag("URGENT"), "{urgent:?}");

    let queue = app.queue(&t.token, None).await;
    assert_eq!(queue.len(), 4, "{queue:?}");
    assert_eq!(queue[0].lead.id, quiet_id, "{queue:?}");
    assert!(queue[0].reasons[0].starts_with("urgent: "), "{queue:?}");
    let priorities: Vec<i64> = queue.iter().map(|e| e.priority).collect();
    assert!(
        priorities.windows(2).all(|w| w[0] >= w[1]),
        "{priorities:?}"
    );

    // The lead list's priority order agrees with the queue.
    let listed: Connection<Id> = app
        .root(
            Some(&t.token),
            "{ leads(orderBy: PRIORITY, first: 1) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed.nodes().next().map(|n| n.id.as_str()),
        Some(quiet_id),
        "{listed:?}"
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
    let id = lead.id.as_str();
    let lead = app.record(&t.token, id, "meeting_request", json!({})).await;
    assert_eq!(lead.tier, "A", "{lead:?}");
    let due = at(lead.next_follow_up_at.as_deref());
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    assert!(
        (due - in_an_hour).num_minutes().abs() <= 1,
        "due within the hour, not after A's two-day cadence: {lead:?}"
    );
    let queue = app.queue(&t.token, None).await;
    let reasons = queue[0].reasons.join("; ");
    assert!(
        reasons.contains("new tier A lead: respond within 1 hour"),
        "{reasons}"
    );

    // The first call answers it: the reason goes and A's cadence counts.
    let called = app.record(&t.token, id, "call", json!({})).await;
    let due = at(called.next_follow_up_at.as_deref());
    assert!(
        due > chrono::Utc::now() + chrono::Duration::days(1),
        "{called:?}"
    );
    let queue = app.queue(&t.token, None).await;
    let reasons = queue[0].reasons.join("; ");
    assert!(!reasons.contains("respond within"), "{reasons}");
}

const DEACTIVATE: &str = "mutation($input: DeactivateUserInput!) { deactivateUser(input: $input) { user { id active } } }";
const REASSIGN: &str =
    "mutation($input: ReassignLeadsInput!) { reassignLeads(input: $input) { moved } }";

/// Who owns `lead` and what happened to it.
async fn owner_of(app: &TestApp, token: &str, lead: &str) -> FollowUpLead {
    app.root(
        Some(token),
        "query($id: ID!) { lead(id: $id) { owner { id } history { kind fromValue toValue } } }",
        json!({"id": lead}),
    )
    .await
}

/// The id of the caller, or why they were refused.
async fn me(app: &TestApp, token: &str) -> Result<Id, crate::helpers::GraphqlErrors> {
    app.query_root(Some(token), "{ me { id } }", json!({}))
        .await
}

/// `deactivateUser`'s payload.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Deactivated {
    user: DeactivatedUser,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeactivatedUser {
    id: String,
    active: bool,
}

/// `reassignLeads`' payload.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reassigned {
    moved: i64,
}

#[tokio::test]
async fn a_deactivated_rep_is_refused_at_once_with_their_leads_handed_on() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let (rep_id, rep) = app.member(&t, "rep@acme.example", "REP", &[]).await;
    let mut leads = Vec::new();
    for name in ["First", "Second"] {
        let lead = app
            .new_lead(&rep, json!({"name": name, "attributes": weak()}))
            .await;
        leads.push(lead.id);
    }
    let rep_is = Id { id: rep_id.clone() };
    assert_eq!(me(&app, &rep).await.expect("the rep is signed in"), rep_is);

    // The rep may not deactivate anyone, themselves included.
    let refused = app
        .refused(
            Some(&rep),
            DEACTIVATE,
            json!({"input": {"userId": t.owner_id}}),
        )
        .await;
    assert_eq!(refused.code(), "FORBIDDEN", "{refused}");
    // The owner may not deactivate themselves, nor hand the leads to the
    // one leaving.
    let refused = app
        .refused(
            Some(&t.token),
            DEACTIVATE,
            json!({"input": {"userId": t.owner_id}}),
        )
        .await;
    assert_eq!(refused.field(), "input.userId", "{refused}");
    let refused = app
        .refused(
            Some(&t.token),
            DEACTIVATE,
            json!({"input": {"userId": rep_id, "reassignTo": rep_id}}),
        )
        .await;
    assert_eq!(refused.field(), "input.reassignTo", "{refused}");
    // Nothing of that was written: the rep still works.
    assert_eq!(me(&app, &rep).await.expect("the rep is signed in"), rep_is);

    let deactivated: Deactivated = app
        .root(
            Some(&t.token),
            DEACTIVATE,
            json!({"input": {"userId": rep_id, "reassignTo": t.owner_id}}),
        )
        .await;
    assert_eq!(deactivated.user.id, rep_id);
    assert!(!deactivated.user.active, "{deactivated:?}");

    let refused = me(&app, &rep).await.expect_err("the token is refused");
    assert_eq!(refused.code(), "UNAUTHENTICATED", "{refused}");
    let login = app
        .try_login(&t.slug, "rep@acme.example", crate::helpers::PASSWORD)
        .await
        .expect_err("a deactivated rep cannot sign in");
    assert_eq!(login.code(), "UNAUTHENTICATED", "{login}");
    for lead in &leads {
        let read = owner_of(&app, &t.token, lead).await;
        assert_eq!(
            read.owner,
            Some(Id {
                id: t.owner_id.clone()
            }),
            "{read:?}"
        );
        assert!(
            read.history.iter().any(|e| e.kind == "ASSIGNED"),
            "{read:?}"
        );
        assert!(
            read.history.iter().any(|e| [&e.from_value, &e.to_value]
                .into_iter()
                .flatten()
                .any(|v| v.contains(&rep_id))),
            "the history names the rep the leads left: {read:?}"
        );
    }
    let queue = app.queue(&t.token, None).await;
    assert_eq!(
        queue.len(),
        2,
        "the owner's queue holds the moved leads: {queue:?}"
    );
}

#[tokio::test]
async fn a_manager_reassigns_leads_only_within_their_team() {
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
        leads.push(lead.id);
    }

    let refused = app
        .refused(
            Some(&manager),
            REASSIGN,
            json!({"input": {"fromUserId": east_id, "toUserId": west_id}}),
        )
        .await;
    assert_eq!(refused.code(), "FORBIDDEN", "{refused}");
    let refused = app
        .refused(
            Some(&east),
            REASSIGN,
            json!({"input": {"fromUserId": east_id, "toUserId": east2_id}}),
        )
        .await;
    assert_eq!(refused.code(), "FORBIDDEN", "{refused}");
    let other = app.sign_up_tenant("globex").await;
    let refused = app
        .refused(
            Some(&other.token),
            REASSIGN,
            json!({"input": {"fromUserId": east_id, "toUserId": null}}),
        )
        .await;
    assert_eq!(refused.field(), "input.fromUserId", "{refused}");
    let owned_by = |id: &str| Some(Id { id: id.to_owned() });
    for lead in &leads {
        let read = owner_of(&app, &t.token, lead).await;
        assert_eq!(read.owner, owned_by(&east_id), "{read:?}");
    }

    let reassigned: Reassigned = app
        .root(
            Some(&manager),
            REASSIGN,
            json!({"input": {"fromUserId": east_id, "toUserId": east2_id}}),
        )
        .await;
    assert_eq!(reassigned.moved, 3);
    for lead in &leads {
        let read = owner_of(&app, &t.token, lead).await;
        assert_eq!(read.owner, owned_by(&east2_id), "{read:?}");
    }
    // And back to the pool.
    let reassigned: Reassigned = app
        .root(
            Some(&t.token),
            REASSIGN,
            json!({"input": {"fromUserId": east2_id, "toUserId": null}}),
        )
        .await;
    assert_eq!(reassigned.moved, 3);
    let pool: Connection<Id> = app
        .root(
            Some(&t.token),
            "{ leads(filter: {unassigned: true}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(pool.total_count, Some(3), "{pool:?}");
}
