//! The manager's weekly review: rep scorecards, value per tier and tier
//! movements, over a small history whose every figure is worked out by
//! hand here; a MANAGER sees only their teams, a REP only themselves, and
//! another company nothing.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveTime, TimeZone, Utc};
use entity::lead_event;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};

use crate::{
    helpers::{Tenant, TestApp, error_code, error_field, spawn_app},
    helpers::{strong, weak},
};

const SCORECARD_FIELDS: &str = "rep { id displayName } openLeads openByTier { tier count }
    overdueLeads overdueShare assignedLeads contactedLeads medianHoursToFirstContact
    outboundActivities workingDays outboundPerWorkingDay won lost wonRate
    closedByTier { tier won lost wonRate } wonValue medianDaysToClose";

const TIER_REPORT_FIELDS: &str = "openLeads openValue won lost wonValue
    tiers { tier openLeads openValue won lost wonRate wonValue wonShare wonValueShare }";

const MOVEMENT_FIELDS: &str =
    "tiers cells { fromTier toTier leads } climbs { fromTier toTier leads reached won }";

fn hours_ago(hours: i64) -> String {
    (Utc::now() - Duration::hours(hours)).to_rfc3339()
}

fn days_ago(days: i64) -> String {
    (Utc::now() - Duration::days(days)).to_rfc3339()
}

/// Three whole weeks in the tenants' time zone (Shanghai, UTC+8, no
/// summer time), ending at the Monday midnight after now: 15 working days.
fn three_weeks() -> (String, String) {
    let shanghai = FixedOffset::east_opt(8 * 3600).unwrap();
    let today = Utc::now().with_timezone(&shanghai).date_naive();
    let days_to_monday = 7 - i64::from(today.weekday().num_days_from_monday());
    let monday = today + Duration::days(days_to_monday);
    let to = shanghai
        .from_local_datetime(&monday.and_time(NaiveTime::MIN))
        .unwrap()
        .with_timezone(&Utc);
    ((to - Duration::days(21)).to_rfc3339(), to.to_rfc3339())
}

fn close_to(value: &Value, expected: f64) {
    let got = value
        .as_f64()
        .unwrap_or_else(|| panic!("a number, got {value}"));
    assert!(
        (got - expected).abs() < 0.01,
        "expected {expected}, got {got}"
    );
}

impl TestApp {
    async fn review(&self, token: &str, field: &str, fields: &str, input: Value) -> Value {
        self.graphql(
            Some(token),
            &format!("query($input: ReviewInput!) {{ {field}(input: $input) {{ {fields} }} }}"),
            json!({"input": input}),
        )
        .await
    }

    async fn review_ok(&self, token: &str, field: &str, fields: &str, input: Value) -> Value {
        let body = self.review(token, field, fields, input).await;
        assert!(body["errors"].is_null(), "{body}");
        body["data"][field].clone()
    }

    /// A lead made with `input`; returns (id, tier).
    async fn made(&self, token: &str, input: Value) -> (String, String) {
        let lead = self.new_lead_json(token, input).await;
        (
            lead["id"].as_str().unwrap().to_owned(),
            lead["tier"].as_str().unwrap().to_owned(),
        )
    }

    /// Closes a lead with `outcome`; returns the tier it closed in.
    async fn closed(&self, token: &str, id: &str, outcome: &str, at: Option<String>) -> String {
        let body = self
            .lead_mutation_json(
                token,
                "closeLead",
                "CloseLeadInput",
                json!({"id": id, "outcome": outcome, "closedAt": at}),
            )
            .await;
        let lead = &body["data"]["closeLead"]["lead"];
        assert_eq!(lead["status"], outcome, "{body}");
        lead["tier"].as_str().unwrap().to_owned()
    }

    /// Moves the time of `lead`'s recorded assignment back to `at`, as if
    /// it had been given then.
    async fn assigned_at(&self, lead: &str, at: DateTime<Utc>) {
        let changed = lead_event::Entity::update_many()
            .col_expr(lead_event::Column::At, Expr::value(at))
            .filter(lead_event::Column::LeadId.eq(lead.parse::<uuid::Uuid>().unwrap()))
            .filter(lead_event::Column::Kind.eq("ASSIGNED"))
            .exec(&self.system_db)
            .await
            .unwrap();
        assert_eq!(changed.rows_affected, 1);
    }
}

#[tokio::test]
async fn the_tier_report_shows_each_tiers_holdings_beside_what_it_brought_in() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let token = t.token.as_str();
    let me = t.owner_id.as_str();
    let lead = |name: &str, attributes: Value, deal: Option<f64>| json!({"name": name, "attributes": attributes, "dealValue": deal, "ownerId": me});
    let (a_won, _) = app.made(token, lead("A won", strong(), Some(1000.0))).await;
    let (_, a) = app
        .made(token, lead("A open", strong(), Some(3000.0)))
        .await;
    let (low_lost, low) = app.made(token, lead("Low lost", weak(), Some(500.0))).await;
    let (low_won, _) = app.made(token, lead("Low won", weak(), Some(100.0))).await;
    app.made(token, lead("Low open", weak(), None)).await;
    let (old, _) = app
        .made(token, lead("Closed long ago", weak(), Some(999.0)))
        .await;
    assert_eq!((a.as_str(), low.as_str()), ("B", "D"));

    assert_eq!(app.closed(token, &a_won, "WON", None).await, "B");
    assert_eq!(app.closed(token, &low_lost, "LOST", None).await, "D");
    // Closing re-scores: a win reaches the last stage and climbs a tier.
    assert_eq!(app.closed(token, &low_won, "WON", None).await, "C");
    app.closed(token, &old, "LOST", Some(days_ago(30))).await;

    // A won customer's tier moves on after the sale (an upsell quote
    // request in the post-sale stage); the report keeps the tier it was
    // won in.
    let moved = app
        .lead_mutation_json(
            token,
            "moveLeadStage",
            "MoveStageInput",
            json!({"id": a_won, "stageKey": "post_sale"}),
        )
        .await;
    assert_eq!(
        moved["data"]["moveLeadStage"]["lead"]["status"], "WON",
        "{moved}"
    );
    let after = app
        .record_json(token, &a_won, "urgent_quote_request", json!({}))
        .await;
    assert_eq!(after["tier"], "A", "the customer's tier moved on: {after}");

    let input = json!({"from": days_ago(7), "to": (Utc::now() + Duration::hours(1)).to_rfc3339()});
    let report = app
        .review_ok(token, "tierReport", TIER_REPORT_FIELDS, input.clone())
        .await;
    assert_eq!(
        report["tiers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tier"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["A", "B", "C", "D"],
        "every tier, top first"
    );
    let tier = |key: &str| {
        report["tiers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tier"] == key)
            .unwrap()
            .clone()
    };
    // B: one open at 3,000; one won at 1,000 of the 1,100 won in all.
    let b = tier("B");
    assert_eq!(
        (
            b["openLeads"].as_i64(),
            b["won"].as_i64(),
            b["lost"].as_i64()
        ),
        (Some(1), Some(1), Some(0))
    );
    close_to(&b["openValue"], 3000.0);
    close_to(&b["wonRate"], 1.0);
    close_to(&b["wonValue"], 1000.0);
    close_to(&b["wonShare"], 0.5);
    close_to(&b["wonValueShare"], 1000.0 / 1100.0);
    // D: one open without a value, one lost (the one lost 30 days ago is
    // outside the week).
    let d = tier("D");
    assert_eq!(
        (
            d["openLeads"].as_i64(),
            d["won"].as_i64(),
            d["lost"].as_i64()
        ),
        (Some(1), Some(0), Some(1))
    );
    close_to(&d["openValue"], 0.0);
    close_to(&d["wonRate"], 0.0);
    close_to(&d["wonShare"], 0.0);
    close_to(&d["wonValueShare"], 0.0);
    // C: the one won at 100.
    let c = tier("C");
    assert_eq!(
        (
            c["openLeads"].as_i64(),
            c["won"].as_i64(),
            c["lost"].as_i64()
        ),
        (Some(0), Some(1), Some(0))
    );
    close_to(&c["wonRate"], 1.0);
    close_to(&c["wonShare"], 0.5);
    close_to(&c["wonValueShare"], 100.0 / 1100.0);
    // A: nothing, and no rate to speak of.
    let b = tier("A");
    assert_eq!(
        (b["openLeads"].as_i64(), b["won"].as_i64()),
        (Some(0), Some(0))
    );
    assert!(b["wonRate"].is_null(), "{b}");
    close_to(&b["wonValueShare"], 0.0);
    assert_eq!(
        (
            report["won"].as_i64(),
            report["lost"].as_i64(),
            report["openLeads"].as_i64()
        ),
        (Some(2), Some(1), Some(2))
    );
    close_to(&report["wonValue"], 1100.0);

    // Another company sees none of it.
    let other = app.sign_up_tenant("globex").await;
    let theirs = app
        .review_ok(&other.token, "tierReport", TIER_REPORT_FIELDS, input)
        .await;
    assert_eq!(
        (
            theirs["openLeads"].as_i64(),
            theirs["won"].as_i64(),
            theirs["lost"].as_i64()
        ),
        (Some(0), Some(0), Some(0))
    );
}

#[tokio::test]
async fn a_window_that_runs_backwards_is_refused_on_its_end() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let body = app
        .review(
            &t.token,
            "tierReport",
            "won",
            json!({"from": days_ago(1), "to": days_ago(2)}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "input.to");
}

/// The scorecard history: rep Ann (team North, managed by Max) and rep
/// Bob (team South).
struct Reps {
    t: Tenant,
    ann: (String, String),
    bob: (String, String),
    max: (String, String),
    south: String,
    /// Ann's open leads.
    ann_open: Vec<String>,
}

async fn reps(app: &TestApp) -> Reps {
    let t = app.sign_up_tenant("acme").await;
    let north = app.new_team(&t.token, "North").await;
    let south = app.new_team(&t.token, "South").await;
    let ann = app.member(&t, "ann@acme.test", "REP", &[&north]).await;
    let bob = app.member(&t, "bob@acme.test", "REP", &[&south]).await;
    let max = app.member(&t, "max@acme.test", "MANAGER", &[&north]).await;
    let token = t.token.as_str();
    let lead = |name: &str, owner: Option<&str>, attributes: Value, deal: f64, created: String| json!({"name": name, "ownerId": owner, "attributes": attributes, "dealValue": deal, "createdAt": created});

    // Ann won a deal created 10 days ago and lost one created 4 days ago:
    // 7 days to close, the median of 10 and 4.
    let (won, _) = app
        .made(
            token,
            lead("Won", Some(&ann.0), strong(), 1000.0, days_ago(10)),
        )
        .await;
    // A call the owner made on her lead is the owner's, not hers, and,
    // made before the lead was hers, no first contact.
    app.record_json(token, &won, "call", json!({"occurredAt": days_ago(11)}))
        .await;
    let (lost, _) = app
        .made(
            token,
            lead("Lost", Some(&ann.0), weak(), 400.0, days_ago(4)),
        )
        .await;
    assert_eq!(app.closed(token, &won, "WON", None).await, "B");
    let body = app
        .lead_mutation_json(
            token,
            "closeLead",
            "CloseLeadInput",
            json!({"id": lost, "outcome": "LOST", "reasonCategory": "price"}),
        )
        .await;
    assert_eq!(body["data"]["closeLead"]["lead"]["tier"], "D", "{body}");

    // Created for her 5 hours ago, called 3 hours ago: 2 hours.
    let (quick, _) = app
        .made(
            token,
            lead("Quick", Some(&ann.0), strong(), 200.0, hours_ago(5)),
        )
        .await;
    app.record_json(&ann.1, &quick, "call", json!({"occurredAt": hours_ago(3)}))
        .await;
    // In the pool for 20 days, given to her 10 hours ago, called 4 hours
    // ago: 6 hours.
    let (slow, _) = app
        .made(token, lead("Slow", None, weak(), 50.0, days_ago(20)))
        .await;
    let given = app
        .lead_mutation_json(
            token,
            "assignLead",
            "AssignLeadInput",
            json!({"id": slow, "ownerId": ann.0}),
        )
        .await;
    assert!(given["data"]["assignLead"].is_object(), "{given}");
    app.assigned_at(&slow, Utc::now() - Duration::hours(10))
        .await;
    app.record_json(&ann.1, &slow, "call", json!({"occurredAt": hours_ago(4)}))
        .await;
    // Created for her an hour ago and not yet contacted.
    let (waiting, _) = app
        .made(
            token,
            lead("Waiting", Some(&ann.0), weak(), 10.0, hours_ago(1)),
        )
        .await;

    // Bob won a deal created 2 days ago, worth 300.
    let (bobs, _) = app
        .made(
            token,
            lead("Bob's", Some(&bob.0), weak(), 300.0, days_ago(2)),
        )
        .await;
    app.closed(token, &bobs, "WON", None).await;

    Reps {
        t,
        ann,
        bob,
        max,
        south,
        ann_open: vec![quick, slow, waiting],
    }
}

fn card<'a>(cards: &'a Value, rep: &str) -> &'a Value {
    cards
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["rep"]["id"] == rep)
        .unwrap_or_else(|| panic!("no scorecard of {rep} in {cards}"))
}

fn reps_listed(cards: &Value) -> Vec<&str> {
    cards
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["rep"]["displayName"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_scorecard_shows_how_a_rep_is_doing() {
    let app = spawn_app().await;
    let r = reps(&app).await;
    let (from, to) = three_weeks();
    let cards = app
        .review_ok(
            &r.t.token,
            "repScorecards",
            SCORECARD_FIELDS,
            json!({"from": from, "to": to}),
        )
        .await;
    let ann = card(&cards, &r.ann.0);

    // Open now: Quick (B), Slow and Waiting (D).
    assert_eq!(ann["openLeads"], 3, "{ann}");
    let tiers: Vec<(&str, i64)> = ann["openByTier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["tier"].as_str().unwrap(), t["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(tiers, [("A", 0), ("B", 1), ("C", 0), ("D", 2)]);
    // Overdue: those of her open leads whose follow-up time has passed.
    let mut overdue = 0;
    for id in &r.ann_open {
        let lead = app.lead_by_id_json(&r.t.token, id).await;
        let due: DateTime<Utc> = lead["nextFollowUpAt"].as_str().unwrap().parse().unwrap();
        overdue += i64::from(due <= Utc::now());
    }
    assert_eq!(ann["overdueLeads"].as_i64(), Some(overdue));
    close_to(&ann["overdueShare"], overdue as f64 / 3.0);

    // Assigned in the window: Won, Lost, Quick and Waiting created for
    // her, Slow given to her. Contacted: Quick after 2 hours, Slow after
    // 6; the median is 4.
    assert_eq!(
        (
            ann["assignedLeads"].as_i64(),
            ann["contactedLeads"].as_i64()
        ),
        (Some(5), Some(2))
    );
    close_to(&ann["medianHoursToFirstContact"], 4.0);
    // Her two calls over the 15 working days of three weeks.
    assert_eq!(
        (
            ann["outboundActivities"].as_i64(),
            ann["workingDays"].as_i64()
        ),
        (Some(2), Some(15))
    );
    close_to(&ann["outboundPerWorkingDay"], 2.0 / 15.0);
    // Won 1 (B, 1,000), lost 1 (D); 10 and 4 days to close.
    assert_eq!(
        (ann["won"].as_i64(), ann["lost"].as_i64()),
        (Some(1), Some(1))
    );
    close_to(&ann["wonRate"], 0.5);
    close_to(&ann["wonValue"], 1000.0);
    close_to(&ann["medianDaysToClose"], 7.0);
    let closed: Vec<(&str, i64, i64)> = ann["closedByTier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tier"].as_str().unwrap(),
                t["won"].as_i64().unwrap(),
                t["lost"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(closed, [("A", 0, 0), ("B", 1, 0), ("C", 0, 0), ("D", 0, 1)]);

    let bob = card(&cards, &r.bob.0);
    assert_eq!(
        (
            bob["openLeads"].as_i64(),
            bob["won"].as_i64(),
            bob["lost"].as_i64()
        ),
        (Some(0), Some(1), Some(0))
    );
    close_to(&bob["wonValue"], 300.0);
    close_to(&bob["medianDaysToClose"], 2.0);
    assert!(
        bob["overdueShare"].is_null() && bob["medianHoursToFirstContact"].is_null(),
        "{bob}"
    );
    assert_eq!(bob["assignedLeads"], 1, "Bob's one lead, created for him");

    // The owner sees every rep and manager, by name.
    assert_eq!(
        reps_listed(&cards),
        ["ann@acme.test", "bob@acme.test", "max@acme.test"]
    );
}

#[tokio::test]
async fn each_person_reviews_only_the_people_they_lead() {
    let app = spawn_app().await;
    let r = reps(&app).await;
    let (from, to) = three_weeks();
    let window = json!({"from": from, "to": to});

    let theirs = app
        .review_ok(&r.max.1, "repScorecards", SCORECARD_FIELDS, window.clone())
        .await;
    assert_eq!(reps_listed(&theirs), ["ann@acme.test", "max@acme.test"]);
    let report = app
        .review_ok(&r.max.1, "tierReport", TIER_REPORT_FIELDS, window.clone())
        .await;
    assert_eq!(
        (report["won"].as_i64(), report["lost"].as_i64()),
        (Some(1), Some(1)),
        "Bob's win is South's"
    );
    close_to(&report["wonValue"], 1000.0);

    let mut south = window.clone();
    south["teamId"] = json!(r.south);
    let refused = app
        .review(&r.max.1, "repScorecards", "won", south.clone())
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");

    // The owner may look at South alone.
    let souths = app
        .review_ok(&r.t.token, "tierReport", TIER_REPORT_FIELDS, south)
        .await;
    assert_eq!(souths["won"], 1);
    close_to(&souths["wonValue"], 300.0);

    let own = app
        .review_ok(&r.ann.1, "repScorecards", SCORECARD_FIELDS, window.clone())
        .await;
    assert_eq!(reps_listed(&own), ["ann@acme.test"]);
    // Nor may a rep name another team or rep.
    let mut bobs = window.clone();
    bobs["ownerId"] = json!(r.bob.0);
    let refused = app
        .graphql(
            Some(&r.ann.1),
            "query($input: ForecastInput!) { forecast(input: $input) { undated { openLeads } } }",
            json!({"input": bobs}),
        )
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    let mut south = window.clone();
    south["teamId"] = json!(r.south);
    let refused = app.review(&r.ann.1, "tierReport", "won", south).await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");

    let other = app.sign_up_tenant("globex").await;
    let none = app
        .review_ok(
            &other.token,
            "repScorecards",
            SCORECARD_FIELDS,
            window.clone(),
        )
        .await;
    assert_eq!(none, json!([]));
    let mut theirs = window;
    theirs["teamId"] = json!(r.south);
    let hidden = app.review(&other.token, "tierReport", "won", theirs).await;
    assert_eq!(error_code(&hidden), "NOT_FOUND", "{hidden}");
}

#[tokio::test]
async fn tier_movements_show_which_lower_leads_climbed_to_win() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let token = t.token.as_str();
    let me = t.owner_id.as_str();
    let lead = |name: &str, attributes: Value| json!({"name": name, "attributes": attributes, "ownerId": me});

    let (climber, c1) = app.made(token, lead("Climber", weak())).await;
    let (winner, c2) = app.made(token, lead("Winner", weak())).await;
    let (_, c3) = app.made(token, lead("Stays", weak())).await;
    let (_, a) = app.made(token, lead("Top", strong())).await;
    let (gone, _) = app.made(token, lead("Gone", weak())).await;
    assert_eq!(
        [c1.as_str(), c2.as_str(), c3.as_str(), a.as_str()],
        ["D", "D", "D", "B"]
    );
    app.closed(token, &gone, "LOST", None).await;
    let from = Utc::now();

    // Within the window: Climber and Winner get urgent quote requests and
    // reach A; Winner is won; a new lead arrives.
    let up = app
        .record_json(token, &climber, "urgent_quote_request", json!({}))
        .await;
    assert_eq!(up["tier"], "A");
    let up = app
        .record_json(token, &winner, "urgent_quote_request", json!({}))
        .await;
    assert_eq!(up["tier"], "A");
    app.closed(token, &winner, "WON", None).await;
    let (_, new) = app.made(token, lead("New", weak())).await;
    // Reaching past now: the tiers at the end are the leads' own.
    let to = Utc::now() + Duration::hours(1);

    let moves = app
        .review_ok(
            token,
            "tierMovements",
            MOVEMENT_FIELDS,
            json!({"from": from.to_rfc3339(), "to": to.to_rfc3339()}),
        )
        .await;
    assert_eq!(moves["tiers"], json!(["A", "B", "C", "D"]));
    let cells: Vec<(Option<&str>, &str, i64)> = moves["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["fromTier"].as_str(),
                c["toTier"].as_str().unwrap(),
                c["leads"].as_i64().unwrap(),
            )
        })
        .collect();
    // Gone closed before the window and is left out.
    assert_eq!(
        cells,
        [
            (None, new.as_str(), 1),
            (Some("B"), "B", 1),
            (Some("D"), "A", 2),
            (Some("D"), "D", 1),
        ]
    );
    let climb = |from: &str, to: &str| {
        moves["climbs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["fromTier"] == from && c["toTier"] == to)
            .map(|c| {
                (
                    c["leads"].as_i64().unwrap(),
                    c["reached"].as_i64().unwrap(),
                    c["won"].as_i64().unwrap(),
                )
            })
            .unwrap()
    };
    // Of the three D leads, two reached A (and so B and C), one of them
    // won; the B lead stayed.
    assert_eq!(climb("D", "A"), (3, 2, 1));
    assert_eq!(climb("D", "B"), (3, 2, 1));
    assert_eq!(climb("D", "C"), (3, 2, 1));
    assert_eq!(climb("B", "A"), (1, 0, 0));
    assert_eq!(climb("C", "A"), (0, 0, 0));

    // Before the window everything stood where it was made.
    let earlier = app
        .review_ok(
            token,
            "tierMovements",
            MOVEMENT_FIELDS,
            json!({"from": days_ago(1), "to": from.to_rfc3339()}),
        )
        .await;
    let cells: Vec<(Option<&str>, &str, i64)> = earlier["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["fromTier"].as_str(),
                c["toTier"].as_str().unwrap(),
                c["leads"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(cells, [(None, "B", 1), (None, "D", 4)]);
}

impl TestApp {
    /// The first stage of the default pipeline's funnel, narrowed by
    /// `narrowing` (`teamId`, `ownerId`).
    async fn first_stage(&self, token: &str, narrowing: Value) -> Value {
        let pipelines = self
            .graphql(Some(token), "{ pipelines { id isDefault } }", json!({}))
            .await;
        let pipeline = pipelines["data"]["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["isDefault"] == true)
            .unwrap()["id"]
            .clone();
        let mut variables = json!({"pipeline": pipeline});
        variables
            .as_object_mut()
            .unwrap()
            .extend(narrowing.as_object().unwrap().clone());
        self.graphql(
            Some(token),
            "query($pipeline: ID!, $teamId: ID, $ownerId: ID) {
                funnel(pipelineId: $pipeline, teamId: $teamId, ownerId: $ownerId) {
                    stage { key } entered advanced lost lostReasons { category count } } }",
            variables,
        )
        .await
    }
}

#[tokio::test]
async fn the_funnel_narrows_to_a_team_or_a_rep_counting_lost_leads_by_reason() {
    let app = spawn_app().await;
    let r = reps(&app).await;
    let first = |body: &Value| {
        assert!(body["errors"].is_null(), "{body}");
        body["data"]["funnel"][0].clone()
    };

    // Ann's five leads all started in the first stage; one was won (so
    // went on), one lost from it for price.
    let anns = first(
        &app.first_stage(&r.t.token, json!({"ownerId": r.ann.0}))
            .await,
    );
    assert_eq!(
        (
            anns["entered"].as_i64(),
            anns["advanced"].as_i64(),
            anns["lost"].as_i64()
        ),
        (Some(5), Some(1), Some(1)),
        "{anns}"
    );
    assert_eq!(
        anns["lostReasons"],
        json!([{"category": "price", "count": 1}])
    );

    let souths = first(
        &app.first_stage(&r.t.token, json!({"teamId": r.south}))
            .await,
    );
    assert_eq!(
        (souths["entered"].as_i64(), souths["lost"].as_i64()),
        (Some(1), Some(0))
    );
    assert_eq!(souths["lostReasons"], json!([]));

    // Max manages North: Ann's leads, not Bob's, and may not name South or Bob.
    let managed = first(&app.first_stage(&r.max.1, json!({})).await);
    assert_eq!(managed["entered"], 5, "{managed}");
    for narrowing in [json!({"teamId": r.south}), json!({"ownerId": r.bob.0})] {
        let refused = app.first_stage(&r.max.1, narrowing).await;
        assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    }
}

const FORECAST_FIELDS: &str = "months { month startsAt expected { openLeads unweightedValue weightedValue } wonLeads wonValue }
    stages { stage { key } expected { openLeads unweightedValue weightedValue } typicalDaysToClose }
    expected { openLeads unweightedValue weightedValue }
    outsidePeriod { openLeads unweightedValue weightedValue }
    undated { openLeads unweightedValue weightedValue }";

/// The first day of the month of `at` in Shanghai, `months` later.
fn shanghai_month(at: DateTime<Utc>, months: u32) -> chrono::NaiveDate {
    let shanghai = FixedOffset::east_opt(8 * 3600).unwrap();
    let day = at
        .with_timezone(&shanghai)
        .date_naive()
        .with_day(1)
        .unwrap();
    day.checked_add_months(chrono::Months::new(months)).unwrap()
}

#[tokio::test]
async fn the_forecast_weighs_open_deals_by_expected_month_beside_what_was_won() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let token = t.token.as_str();
    let me = t.owner_id.as_str();
    let now = Utc::now();

    // History: two deals won from the first stage, 30 and 10 days after
    // they came in: the stage's typical time to a win is 20 days.
    for (days, value) in [(30, 100.0), (10, 50.0)] {
        let (id, _) = app
            .made(token, json!({"name": format!("Won after {days}"), "attributes": weak(), "ownerId": me, "dealValue": value, "createdAt": days_ago(days)}))
            .await;
        app.closed(token, &id, "WON", None).await;
    }

    let deal = |name: &str, value: f64, extra: Value| {
        let mut input =
            json!({"name": name, "attributes": weak(), "ownerId": me, "dealValue": value});
        input
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        input
    };
    // Dated by its stage: in 20 days.
    let by_stage = app
        .new_lead_json(token, deal("By stage", 1000.0, json!({})))
        .await;
    // Dated by hand: next month, 10 days ago (slipped: this month), and
    // in 200 days (after the period).
    let next_month = shanghai_month(now, 1)
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc();
    let dated = app
        .new_lead_json(
            token,
            deal(
                "Next month",
                500.0,
                json!({"expectedCloseAt": next_month.to_rfc3339()}),
            ),
        )
        .await;
    let slipped = app
        .new_lead_json(
            token,
            deal("Slipped", 300.0, json!({"expectedCloseAt": days_ago(10)})),
        )
        .await;
    // (Without a value: it counts as a deal worth 0.)
    app.new_lead_json(
        token,
        json!({"name": "Later", "attributes": weak(), "ownerId": me,
               "expectedCloseAt": (now + Duration::days(200)).to_rfc3339()}),
    )
    .await;
    // In a stage no deal has been won from yet: undated.
    let undated = app
        .new_lead_json(
            token,
            deal("Undated", 200.0, json!({"stageKey": "initial_contact"})),
        )
        .await;
    let weighted =
        |lead: &Value, value: f64| value * lead["closeProbability"].as_f64().unwrap_or(0.0);

    let from = shanghai_month(now, 0)
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        - Duration::hours(8);
    let to = shanghai_month(now, 3)
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        - Duration::hours(8);
    let body = app
        .graphql(
            Some(token),
            &format!("query($input: ForecastInput!) {{ forecast(input: $input) {{ {FORECAST_FIELDS} }} }}"),
            json!({"input": {"from": from.to_rfc3339(), "to": to.to_rfc3339()}}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let f = &body["data"]["forecast"];

    let months: Vec<&str> = f["months"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["month"].as_str().unwrap())
        .collect();
    let name = |d: chrono::NaiveDate| d.format("%Y-%m").to_string();
    assert_eq!(
        months,
        [
            name(shanghai_month(now, 0)),
            name(shanghai_month(now, 1)),
            name(shanghai_month(now, 2))
        ]
    );
    assert_eq!(
        f["months"][0]["startsAt"]
            .as_str()
            .map(|s| s.parse::<DateTime<Utc>>().unwrap()),
        Some(from)
    );

    // By hand: this month holds the slipped deal, and the one dated by its
    // stage when 20 days from now is still this month.
    let by_stage_month = shanghai_month(now + Duration::days(20), 0);
    let mut expected = [(0, 0.0, 0.0), (0, 0.0, 0.0), (0, 0.0, 0.0)];
    expected[0] = (1, 300.0, weighted(&slipped, 300.0));
    let i = (0..3u32)
        .find(|i| shanghai_month(now, *i) == by_stage_month)
        .unwrap() as usize;
    expected[i].0 += 1;
    expected[i].1 += 1000.0;
    expected[i].2 += weighted(&by_stage, 1000.0);
    expected[1].0 += 1;
    expected[1].1 += 500.0;
    expected[1].2 += weighted(&dated, 500.0);
    for (m, (n, value, weight)) in f["months"].as_array().unwrap().iter().zip(expected) {
        assert_eq!(m["expected"]["openLeads"].as_i64(), Some(n), "{m}");
        close_to(&m["expected"]["unweightedValue"], value);
        close_to(&m["expected"]["weightedValue"], weight);
    }
    // Won this month: the two deals of the history.
    assert_eq!(f["months"][0]["wonLeads"], 2);
    close_to(&f["months"][0]["wonValue"], 150.0);
    assert_eq!(f["months"][1]["wonLeads"], 0);

    assert_eq!(f["expected"]["openLeads"], 3);
    close_to(&f["expected"]["unweightedValue"], 1800.0);
    assert_eq!(f["outsidePeriod"]["openLeads"], 1);
    close_to(&f["outsidePeriod"]["unweightedValue"], 0.0);
    close_to(&f["outsidePeriod"]["weightedValue"], 0.0);
    assert_eq!(f["undated"]["openLeads"], 1);
    close_to(&f["undated"]["unweightedValue"], 200.0);
    close_to(&f["undated"]["weightedValue"], weighted(&undated, 200.0));

    let stage = |key: &str| {
        f["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stage"]["key"] == key)
            .unwrap()
            .clone()
    };
    let lead_stage = stage("lead");
    close_to(&lead_stage["typicalDaysToClose"], 20.0);
    assert_eq!(lead_stage["expected"]["openLeads"], 3);
    close_to(&lead_stage["expected"]["unweightedValue"], 1800.0);
    assert!(stage("initial_contact")["typicalDaysToClose"].is_null());
    assert!(
        f["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["stage"]["key"] != "won" && s["stage"]["key"] != "lost"),
        "only open stages"
    );

    // One rep's forecast holds only their deals; the lead that shows the
    // date carries it.
    let (rep, _) = app.member(&t, "rep@acme.test", "REP", &[]).await;
    let theirs = app
        .graphql(
            Some(token),
            "query($input: ForecastInput!) { forecast(input: $input) { expected { openLeads } months { wonLeads } } }",
            json!({"input": {"from": from.to_rfc3339(), "to": to.to_rfc3339(), "ownerId": rep}}),
        )
        .await;
    assert_eq!(
        theirs["data"]["forecast"]["expected"]["openLeads"], 0,
        "{theirs}"
    );
    let shown = app
        .graphql(
            Some(token),
            "query($id: ID!) { lead(id: $id) { expectedCloseAt } }",
            json!({"id": dated["id"]}),
        )
        .await;
    assert_eq!(
        shown["data"]["lead"]["expectedCloseAt"]
            .as_str()
            .map(|s| s.parse::<DateTime<Utc>>().unwrap()),
        Some(next_month)
    );
}
