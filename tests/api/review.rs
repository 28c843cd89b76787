//! The manager's weekly review: rep scorecards, value per tier and tier
//! movements, over a small history whose every figure is worked out by
//! hand here; a MANAGER sees only their teams, a REP only themselves, and
//! another company nothing.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveTime, TimeZone, Utc};
use entity::lead_event;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::{
    helpers::{GraphqlErrors, Lead, Tenant, TestApp, spawn_app},
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

/// What `tierReport` answers to [`TIER_REPORT_FIELDS`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TierReport {
    open_leads: i64,
    open_value: f64,
    won: i64,
    lost: i64,
    won_value: f64,
    tiers: Vec<TierValue>,
}

/// One tier's row of the report; the rates and shares are null with
/// nothing to divide by.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TierValue {
    tier: String,
    open_leads: i64,
    open_value: f64,
    won: i64,
    lost: i64,
    won_rate: Option<f64>,
    won_value: f64,
    won_share: Option<f64>,
    won_value_share: Option<f64>,
}

/// A rep's scorecard as [`SCORECARD_FIELDS`] asks for it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Scorecard {
    rep: Rep,
    open_leads: i64,
    open_by_tier: Vec<TierCount>,
    overdue_leads: i64,
    overdue_share: Option<f64>,
    assigned_leads: i64,
    contacted_leads: i64,
    median_hours_to_first_contact: Option<f64>,
    outbound_activities: i64,
    working_days: i64,
    outbound_per_working_day: f64,
    won: i64,
    lost: i64,
    won_rate: Option<f64>,
    closed_by_tier: Vec<TierOutcome>,
    won_value: f64,
    median_days_to_close: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Rep {
    id: String,
    display_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TierCount {
    tier: String,
    count: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TierOutcome {
    tier: String,
    won: i64,
    lost: i64,
    won_rate: Option<f64>,
}

/// What `tierMovements` answers to [`MOVEMENT_FIELDS`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Movements {
    tiers: Vec<String>,
    cells: Vec<Cell>,
    climbs: Vec<Climb>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Cell {
    from_tier: Option<String>,
    to_tier: String,
    leads: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Climb {
    from_tier: String,
    to_tier: String,
    leads: i64,
    reached: i64,
    won: i64,
}

impl Movements {
    /// (from, to, leads) of each cell, as listed.
    fn cells(&self) -> Vec<(Option<&str>, &str, i64)> {
        self.cells
            .iter()
            .map(|c| (c.from_tier.as_deref(), c.to_tier.as_str(), c.leads))
            .collect()
    }
}

/// `{ won }` of a report, for the refusals.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Won {
    won: i64,
}

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

/// `got` is `expected` to the cent; a null is a failure.
fn close_to(got: impl Into<Option<f64>>, expected: f64) {
    let got = got
        .into()
        .unwrap_or_else(|| panic!("a number, got null, expected {expected}"));
    assert!(
        (got - expected).abs() < 0.01,
        "expected {expected}, got {got}"
    );
}

impl TestApp {
    /// One review (`field` with `fields`) over `input`: the answer, or
    /// why it was refused.
    async fn review<T: DeserializeOwned>(
        &self,
        token: &str,
        field: &str,
        fields: &str,
        input: Value,
    ) -> Result<T, GraphqlErrors> {
        self.query_root(
            Some(token),
            &format!("query($input: ReviewInput!) {{ {field}(input: $input) {{ {fields} }} }}"),
            json!({"input": input}),
        )
        .await
    }

    /// One review that must be answered.
    async fn review_ok<T: DeserializeOwned>(
        &self,
        token: &str,
        field: &str,
        fields: &str,
        input: Value,
    ) -> T {
        self.review(token, field, fields, input)
            .await
            .unwrap_or_else(|e| panic!("{field} failed: {e}"))
    }

    /// A review that must be refused; its errors.
    async fn review_refused(&self, token: &str, field: &str, input: Value) -> GraphqlErrors {
        match self.review::<Value>(token, field, "won", input).await {
            Ok(answer) => panic!("{field} was answered: {answer}"),
            Err(errors) => errors,
        }
    }

    /// A lead made with `input`; returns (id, tier).
    async fn made(&self, token: &str, input: Value) -> (String, String) {
        let lead = self.new_lead(token, input).await;
        (lead.id, lead.tier)
    }

    /// Closes a lead with `outcome`; returns the tier it closed in.
    async fn closed(&self, token: &str, id: &str, outcome: &str, at: Option<String>) -> String {
        let lead = self
            .lead_mutation(
                token,
                "closeLead",
                "CloseLeadInput",
                json!({"id": id, "outcome": outcome, "closedAt": at}),
            )
            .await
            .unwrap_or_else(|e| panic!("closeLead failed: {e}"));
        assert_eq!(lead.status, outcome, "{lead:?}");
        lead.tier
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
        .lead_mutation(
            token,
            "moveLeadStage",
            "MoveStageInput",
            json!({"id": a_won, "stageKey": "post_sale"}),
        )
        .await
        .unwrap_or_else(|e| panic!("moveLeadStage failed: {e}"));
    assert_eq!(moved.status, "WON", "{moved:?}");
    let after = app
        .record(token, &a_won, "urgent_quote_request", json!({}))
        .await;
    assert_eq!(after.tier, "A", "the customer's tier moved on: {after:?}");

    let input = json!({"from": days_ago(7), "to": (Utc::now() + Duration::hours(1)).to_rfc3339()});
    let report: TierReport = app
        .review_ok(token, "tierReport", TIER_REPORT_FIELDS, input.clone())
        .await;
    assert_eq!(
        report
            .tiers
            .iter()
            .map(|t| t.tier.as_str())
            .collect::<Vec<_>>(),
        ["A", "B", "C", "D"],
        "every tier, top first"
    );
    let tier = |key: &str| {
        report
            .tiers
            .iter()
            .find(|t| t.tier == key)
            .unwrap_or_else(|| panic!("no tier {key}: {report:?}"))
            .clone()
    };
    // B: one open at 3,000; one won at 1,000 of the 1,100 won in all.
    let b = tier("B");
    assert_eq!((b.open_leads, b.won, b.lost), (1, 1, 0));
    close_to(b.open_value, 3000.0);
    close_to(b.won_rate, 1.0);
    close_to(b.won_value, 1000.0);
    close_to(b.won_share, 0.5);
    close_to(b.won_value_share, 1000.0 / 1100.0);
    // D: one open without a value, one lost (the one lost 30 days ago is
    // outside the week).
    let d = tier("D");
    assert_eq!((d.open_leads, d.won, d.lost), (1, 0, 1));
    close_to(d.open_value, 0.0);
    close_to(d.won_rate, 0.0);
    close_to(d.won_share, 0.0);
    close_to(d.won_value_share, 0.0);
    // C: the one won at 100.
    let c = tier("C");
    assert_eq!((c.open_leads, c.won, c.lost), (0, 1, 0));
    close_to(c.won_rate, 1.0);
    close_to(c.won_share, 0.5);
    close_to(c.won_value_share, 100.0 / 1100.0);
    // A: nothing, and no rate to speak of.
    let a = tier("A");
    assert_eq!((a.open_leads, a.won), (0, 0));
    assert!(a.won_rate.is_none(), "{a:?}");
    close_to(a.won_value_share, 0.0);
    assert_eq!((report.won, report.lost, report.open_leads), (2, 1, 2));
    close_to(report.won_value, 1100.0);
    close_to(report.open_value, 3000.0);

    // Another company sees none of it.
    let other = app.sign_up_tenant("globex").await;
    let theirs: TierReport = app
        .review_ok(&other.token, "tierReport", TIER_REPORT_FIELDS, input)
        .await;
    assert_eq!((theirs.open_leads, theirs.won, theirs.lost), (0, 0, 0));
}

#[tokio::test]
async fn a_window_that_runs_backwards_is_refused_on_its_end() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let refused = app
        .review_refused(
            &t.token,
            "tierReport",
            json!({"from": days_ago(1), "to": days_ago(2)}),
        )
        .await;
    assert_eq!(refused.code(), "BAD_USER_INPUT", "{refused}");
    assert_eq!(refused.field(), "input.to");
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
    app.record(token, &won, "call", json!({"occurredAt": days_ago(11)}))
        .await;
    let (lost, _) = app
        .made(
            token,
            lead("Lost", Some(&ann.0), weak(), 400.0, days_ago(4)),
        )
        .await;
    assert_eq!(app.closed(token, &won, "WON", None).await, "B");
    let closed = app
        .lead_mutation(
            token,
            "closeLead",
            "CloseLeadInput",
            json!({"id": lost, "outcome": "LOST", "reasonCategory": "price"}),
        )
        .await
        .unwrap_or_else(|e| panic!("closeLead failed: {e}"));
    assert_eq!(closed.tier, "D", "{closed:?}");

    // Created for her 5 hours ago, called 3 hours ago: 2 hours.
    let (quick, _) = app
        .made(
            token,
            lead("Quick", Some(&ann.0), strong(), 200.0, hours_ago(5)),
        )
        .await;
    app.record(&ann.1, &quick, "call", json!({"occurredAt": hours_ago(3)}))
        .await;
    // In the pool for 20 days, given to her 10 hours ago, called 4 hours
    // ago: 6 hours.
    let (slow, _) = app
        .made(token, lead("Slow", None, weak(), 50.0, days_ago(20)))
        .await;
    let given = app
        .lead_mutation(
            token,
            "assignLead",
            "AssignLeadInput",
            json!({"id": slow, "ownerId": ann.0}),
        )
        .await
        .unwrap_or_else(|e| panic!("assignLead failed: {e}"));
    assert_eq!(given.owner_id(), Some(ann.0.as_str()), "{given:?}");
    app.assigned_at(&slow, Utc::now() - Duration::hours(10))
        .await;
    app.record(&ann.1, &slow, "call", json!({"occurredAt": hours_ago(4)}))
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

fn card<'a>(cards: &'a [Scorecard], rep: &str) -> &'a Scorecard {
    cards
        .iter()
        .find(|c| c.rep.id == rep)
        .unwrap_or_else(|| panic!("no scorecard of {rep} in {cards:?}"))
}

fn reps_listed(cards: &[Scorecard]) -> Vec<&str> {
    cards.iter().map(|c| c.rep.display_name.as_str()).collect()
}

#[tokio::test]
async fn a_scorecard_shows_how_a_rep_is_doing() {
    let app = spawn_app().await;
    let r = reps(&app).await;
    let (from, to) = three_weeks();
    let cards: Vec<Scorecard> = app
        .review_ok(
            &r.t.token,
            "repScorecards",
            SCORECARD_FIELDS,
            json!({"from": from, "to": to}),
        )
        .await;
    let ann = card(&cards, &r.ann.0);

    // Open now: Quick (B), Slow and Waiting (D).
    assert_eq!(ann.open_leads, 3, "{ann:?}");
    let tiers: Vec<(&str, i64)> = ann
        .open_by_tier
        .iter()
        .map(|t| (t.tier.as_str(), t.count))
        .collect();
    assert_eq!(tiers, [("A", 0), ("B", 1), ("C", 0), ("D", 2)]);
    // Overdue: those of her open leads whose follow-up time has passed.
    let mut overdue = 0;
    for id in &r.ann_open {
        let lead = app.lead_by_id(&r.t.token, id).await;
        let due: DateTime<Utc> = lead
            .next_follow_up_at
            .as_deref()
            .unwrap_or_else(|| panic!("an open lead is due: {lead:?}"))
            .parse()
            .unwrap();
        overdue += i64::from(due <= Utc::now());
    }
    assert_eq!(ann.overdue_leads, overdue);
    close_to(ann.overdue_share, overdue as f64 / 3.0);

    // Assigned in the window: Won, Lost, Quick and Waiting created for
    // her, Slow given to her. Contacted: Quick after 2 hours, Slow after
    // 6; the median is 4.
    assert_eq!((ann.assigned_leads, ann.contacted_leads), (5, 2));
    close_to(ann.median_hours_to_first_contact, 4.0);
    // Her two calls over the 15 working days of three weeks.
    assert_eq!((ann.outbound_activities, ann.working_days), (2, 15));
    close_to(ann.outbound_per_working_day, 2.0 / 15.0);
    // Won 1 (B, 1,000), lost 1 (D); 10 and 4 days to close.
    assert_eq!((ann.won, ann.lost), (1, 1));
    close_to(ann.won_rate, 0.5);
    close_to(ann.won_value, 1000.0);
    close_to(ann.median_days_to_close, 7.0);
    let closed: Vec<(&str, i64, i64)> = ann
        .closed_by_tier
        .iter()
        .map(|t| (t.tier.as_str(), t.won, t.lost))
        .collect();
    assert_eq!(closed, [("A", 0, 0), ("B", 1, 0), ("C", 0, 0), ("D", 0, 1)]);
    let rates: Vec<Option<f64>> = ann.closed_by_tier.iter().map(|t| t.won_rate).collect();
    assert_eq!(rates, [None, Some(1.0), None, Some(0.0)]);

    let bob = card(&cards, &r.bob.0);
    assert_eq!((bob.open_leads, bob.won, bob.lost), (0, 1, 0));
    close_to(bob.won_value, 300.0);
    close_to(bob.median_days_to_close, 2.0);
    assert!(
        bob.overdue_share.is_none() && bob.median_hours_to_first_contact.is_none(),
        "{bob:?}"
    );
    assert_eq!(bob.assigned_leads, 1, "Bob's one lead, created for him");

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

    let theirs: Vec<Scorecard> = app
        .review_ok(&r.max.1, "repScorecards", SCORECARD_FIELDS, window.clone())
        .await;
    assert_eq!(reps_listed(&theirs), ["ann@acme.test", "max@acme.test"]);
    let report: TierReport = app
        .review_ok(&r.max.1, "tierReport", TIER_REPORT_FIELDS, window.clone())
        .await;
    assert_eq!((report.won, report.lost), (1, 1), "Bob's win is South's");
    close_to(report.won_value, 1000.0);

    let mut south = window.clone();
    south["teamId"] = json!(r.south);
    let refused = app
        .review_refused(&r.max.1, "repScorecards", south.clone())
        .await;
    assert_eq!(refused.code(), "FORBIDDEN", "{refused}");

    // The owner may look at South alone.
    let souths: TierReport = app
        .review_ok(&r.t.token, "tierReport", TIER_REPORT_FIELDS, south)
        .await;
    assert_eq!(souths.won, 1);
    close_to(souths.won_value, 300.0);

    let own: Vec<Scorecard> = app
        .review_ok(&r.ann.1, "repScorecards", SCORECARD_FIELDS, window.clone())
        .await;
    assert_eq!(reps_listed(&own), ["ann@acme.test"]);
    // Nor may a rep name another team or rep.
    let mut bobs = window.clone();
    bobs["ownerId"] = json!(r.bob.0);
    let refused = app
        .refused(
            Some(&r.ann.1),
            "query($input: ForecastInput!) { forecast(input: $input) { undated { openLeads } } }",
            json!({"input": bobs}),
        )
        .await;
    assert_eq!(refused.code(), "FORBIDDEN", "{refused}");
    let mut south = window.clone();
    south["teamId"] = json!(r.south);
    let refused = app.review_refused(&r.ann.1, "tierReport", south).await;
    assert_eq!(refused.code(), "FORBIDDEN", "{refused}");

    let other = app.sign_up_tenant("globex").await;
    let none: Vec<Scorecard> = app
        .review_ok(
            &other.token,
            "repScorecards",
            SCORECARD_FIELDS,
            window.clone(),
        )
        .await;
    assert!(none.is_empty(), "{none:?}");
    let mut theirs = window;
    theirs["teamId"] = json!(r.south);
    let hidden = app.review_refused(&other.token, "tierReport", theirs).await;
    assert_eq!(hidden.code(), "NOT_FOUND", "{hidden}");
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
        .record(token, &climber, "urgent_quote_request", json!({}))
        .await;
    assert_eq!(up.tier, "A");
    let up = app
        .record(token, &winner, "urgent_quote_request", json!({}))
        .await;
    assert_eq!(up.tier, "A");
    app.closed(token, &winner, "WON", None).await;
    let (_, new) = app.made(token, lead("New", weak())).await;
    // Reaching past now: the tiers at the end are the leads' own.
    let to = Utc::now() + Duration::hours(1);

    let moves: Movements = app
        .review_ok(
            token,
            "tierMovements",
            MOVEMENT_FIELDS,
            json!({"from": from.to_rfc3339(), "to": to.to_rfc3339()}),
        )
        .await;
    assert_eq!(moves.tiers, ["A", "B", "C", "D"]);
    // Gone closed before the window and is left out.
    assert_eq!(
        moves.cells(),
        [
            (None, new.as_str(), 1),
            (Some("B"), "B", 1),
            (Some("D"), "A", 2),
            (Some("D"), "D", 1),
        ]
    );
    let climb = |from: &str, to: &str| {
        moves
            .climbs
            .iter()
            .find(|c| c.from_tier == from && c.to_tier == to)
            .map(|c| (c.leads, c.reached, c.won))
            .unwrap_or_else(|| panic!("no climb {from} → {to}: {moves:?}"))
    };
    // Of the three D leads, two reached A (and so B and C), one of them
    // won; the B lead stayed.
    assert_eq!(climb("D", "A"), (3, 2, 1));
    assert_eq!(climb("D", "B"), (3, 2, 1));
    assert_eq!(climb("D", "C"), (3, 2, 1));
    assert_eq!(climb("B", "A"), (1, 0, 0));
    assert_eq!(climb("C", "A"), (0, 0, 0));

    // Before the window everything stood where it was made.
    let earlier: Movements = app
        .review_ok(
            token,
            "tierMovements",
            MOVEMENT_FIELDS,
            json!({"from": days_ago(1), "to": from.to_rfc3339()}),
        )
        .await;
    assert_eq!(earlier.cells(), [(None, "B", 1), (None, "D", 4)]);
}

impl TestApp {
    /// The first stage of the default pipeline's funnel, narrowed by
    /// `narrowing` (`teamId`, `ownerId`).
    async fn first_stage(
        &self,
        token: &str,
        narrowing: Value,
    ) -> Result<FunnelStage, GraphqlErrors> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Pipeline {
            id: String,
            is_default: bool,
        }
        let pipelines: Vec<Pipeline> = self
            .root(Some(token), "{ pipelines { id isDefault } }", json!({}))
            .await;
        let pipeline = pipelines
            .into_iter()
            .find(|p| p.is_default)
            .expect("a default pipeline");
        let mut variables = json!({"pipeline": pipeline.id});
        variables
            .as_object_mut()
            .unwrap()
            .extend(narrowing.as_object().unwrap().clone());
        let stages: Vec<FunnelStage> = self
            .query_root(
                Some(token),
                "query($pipeline: ID!, $teamId: ID, $ownerId: ID) {
                    funnel(pipelineId: $pipeline, teamId: $teamId, ownerId: $ownerId) {
                        stage { key } entered advanced lost lostReasons { category count } } }",
                variables,
            )
            .await?;
        Ok(stages.into_iter().next().expect("a first stage"))
    }
}

/// A funnel stage as [`TestApp::first_stage`] asks for it.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FunnelStage {
    stage: StageKey,
    entered: i64,
    advanced: i64,
    lost: i64,
    lost_reasons: Vec<LostReason>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StageKey {
    key: String,
}

#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct LostReason {
    category: Option<String>,
    count: i64,
}

#[tokio::test]
async fn the_funnel_narrows_to_a_team_or_a_rep_counting_lost_leads_by_reason() {
    let app = spawn_app().await;
    let r = reps(&app).await;
    let first = |answer: Result<FunnelStage, GraphqlErrors>| {
        answer.unwrap_or_else(|e| panic!("funnel failed: {e}"))
    };

    // Ann's five leads all started in the first stage; one was won (so
    // went on), one lost from it for price.
    let anns = first(
        app.first_stage(&r.t.token, json!({"ownerId": r.ann.0}))
            .await,
    );
    assert_eq!(
        (anns.entered, anns.advanced, anns.lost),
        (5, 1, 1),
        "{anns:?}"
    );
    assert_eq!(
        anns.lost_reasons,
        [LostReason {
            category: Some("price".into()),
            count: 1
        }]
    );

    let souths = first(
        app.first_stage(&r.t.token, json!({"teamId": r.south}))
            .await,
    );
    assert_eq!((souths.entered, souths.lost), (1, 0));
    assert!(souths.lost_reasons.is_empty(), "{souths:?}");

    // Max manages North: Ann's leads, not Bob's, and may not name South or Bob.
    let managed = first(app.first_stage(&r.max.1, json!({})).await);
    assert_eq!(managed.entered, 5, "{managed:?}");
    for narrowing in [json!({"teamId": r.south}), json!({"ownerId": r.bob.0})] {
        let refused = app
            .first_stage(&r.max.1, narrowing)
            .await
            .expect_err("not Max's to name");
        assert_eq!(refused.code(), "FORBIDDEN", "{refused}");
    }
}

const FORECAST_FIELDS: &str = "months { month startsAt expected { openLeads unweightedValue weightedValue } wonLeads wonValue }
    stages { stage { key } expected { openLeads unweightedValue weightedValue } typicalDaysToClose }
    expected { openLeads unweightedValue weightedValue }
    outsidePeriod { openLeads unweightedValue weightedValue }
    undated { openLeads unweightedValue weightedValue }";

/// What `forecast` answers to [`FORECAST_FIELDS`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Forecast {
    months: Vec<ForecastMonth>,
    stages: Vec<ForecastStage>,
    expected: DealSum,
    outside_period: DealSum,
    undated: DealSum,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ForecastMonth {
    month: String,
    starts_at: String,
    expected: DealSum,
    won_leads: i64,
    won_value: f64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ForecastStage {
    stage: StageKey,
    expected: DealSum,
    typical_days_to_close: Option<f64>,
}

/// `{ openLeads unweightedValue weightedValue }`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DealSum {
    open_leads: i64,
    unweighted_value: f64,
    weighted_value: f64,
}

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
        .new_lead(token, deal("By stage", 1000.0, json!({})))
        .await;
    // Dated by hand: next month, 10 days ago (slipped: this month), and
    // in 200 days (after the period).
    let next_month = shanghai_month(now, 1)
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc();
    let dated = app
        .new_lead(
            token,
            deal(
                "Next month",
                500.0,
                json!({"expectedCloseAt": next_month.to_rfc3339()}),
            ),
        )
        .await;
    let slipped = app
        .new_lead(
            token,
            deal("Slipped", 300.0, json!({"expectedCloseAt": days_ago(10)})),
        )
        .await;
    // (Without a value: it counts as a deal worth 0.)
    app.new_lead(
        token,
        json!({"name": "Later", "attributes": weak(), "ownerId": me,
               "expectedCloseAt": (now + Duration::days(200)).to_rfc3339()}),
    )
    .await;
    // In a stage no deal has been won from yet: undated.
    let undated = app
        .new_lead(
            token,
            deal("Undated", 200.0, json!({"stageKey": "initial_contact"})),
        )
        .await;
    let weighted = |lead: &Lead, value: f64| value * lead.close_probability.unwrap_or(0.0);

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
    let f: Forecast = app
        .root(
            Some(token),
            &format!("query($input: ForecastInput!) {{ forecast(input: $input) {{ {FORECAST_FIELDS} }} }}"),
            json!({"input": {"from": from.to_rfc3339(), "to": to.to_rfc3339()}}),
        )
        .await;

    let months: Vec<&str> = f.months.iter().map(|m| m.month.as_str()).collect();
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
        f.months[0].starts_at.parse::<DateTime<Utc>>().unwrap(),
        from
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
    assert_eq!(f.months.len(), 3, "{f:?}");
    for (m, (n, value, weight)) in f.months.iter().zip(expected) {
        assert_eq!(m.expected.open_leads, n, "{m:?}");
        close_to(m.expected.unweighted_value, value);
        close_to(m.expected.weighted_value, weight);
    }
    // Won this month: the two deals of the history.
    assert_eq!(f.months[0].won_leads, 2);
    close_to(f.months[0].won_value, 150.0);
    assert_eq!(f.months[1].won_leads, 0);

    assert_eq!(f.expected.open_leads, 3);
    close_to(f.expected.unweighted_value, 1800.0);
    assert_eq!(f.outside_period.open_leads, 1);
    close_to(f.outside_period.unweighted_value, 0.0);
    close_to(f.outside_period.weighted_value, 0.0);
    assert_eq!(f.undated.open_leads, 1);
    close_to(f.undated.unweighted_value, 200.0);
    close_to(f.undated.weighted_value, weighted(&undated, 200.0));

    let stage = |key: &str| {
        f.stages
            .iter()
            .find(|s| s.stage.key == key)
            .unwrap_or_else(|| panic!("no stage {key}: {f:?}"))
    };
    let lead_stage = stage("lead");
    close_to(lead_stage.typical_days_to_close, 20.0);
    assert_eq!(lead_stage.expected.open_leads, 3);
    close_to(lead_stage.expected.unweighted_value, 1800.0);
    assert!(stage("initial_contact").typical_days_to_close.is_none());
    assert!(
        f.stages
            .iter()
            .all(|s| s.stage.key != "won" && s.stage.key != "lost"),
        "only open stages"
    );

    // One rep's forecast holds only their deals; the lead that shows the
    // date carries it.
    let (rep, _) = app.member(&t, "rep@acme.test", "REP", &[]).await;
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Theirs {
        expected: OpenLeads,
        months: Vec<WonLeads>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct OpenLeads {
        open_leads: i64,
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct WonLeads {
        won_leads: i64,
    }
    let theirs: Theirs = app
        .root(
            Some(token),
            "query($input: ForecastInput!) { forecast(input: $input) { expected { openLeads } months { wonLeads } } }",
            json!({"input": {"from": from.to_rfc3339(), "to": to.to_rfc3339(), "ownerId": rep}}),
        )
        .await;
    assert_eq!(theirs.expected.open_leads, 0, "{theirs:?}");
    assert!(theirs.months.iter().all(|m| m.won_leads == 0), "{theirs:?}");
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Dated {
        expected_close_at: Option<String>,
    }
    let shown: Dated = app
        .root(
            Some(token),
            "query($id: ID!) { lead(id: $id) { expectedCloseAt } }",
            json!({"id": dated.id}),
        )
        .await;
    assert_eq!(
        shown
            .expected_close_at
            .as_deref()
            .map(|s| s.parse::<DateTime<Utc>>().unwrap()),
        Some(next_month)
    );
}
