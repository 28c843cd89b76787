//! Manual tier pins: a manager (or a rep, for their own leads, when the
//! company allows it) holds a lead at a tier with a reason until a date;
//! the score is still computed, the explanation says who and why, the pin
//! lapses by itself when the nightly job runs past it, and every pin and
//! unpin is audited. A second tenant sees none of it.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use entity::{lead_event, lead_facts};
use leadrank::jobs::rescore::{self, Options, Outcome, Trigger};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, sea_query::Expr};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    helpers::{PASSWORD, Tenant, TestApp, error_code, error_field, error_message, spawn_app},
    helpers::{score_json, weak},
};

const PIN_FIELDS: &str = "id score tier version
    pin { tier reason expiresAt pinnedBy { id displayName } }
    scoreBreakdown { total tier baseTier overrides { rule effect reason } }
    scoreHistory(first: 1) { oldTier newTier reason }";

const REASON: &str = "met the CFO, budget confirmed";

/// A user of `tenant` with a display name, signed in: (id, token).
async fn person(
    app: &TestApp,
    tenant: &Tenant,
    name: &str,
    role: &str,
    teams: &[&str],
) -> (String, String) {
    let email = format!(
        "{}@{}.test",
        name.to_lowercase().replace(' ', "."),
        tenant.slug
    );
    let created = app
        .graphql(
            Some(&tenant.token),
            "mutation($input: CreateUserInput!) { createUser(input: $input) { user { id } } }",
            json!({"input": {"email": email, "password": PASSWORD, "displayName": name,
                             "role": role, "teamIds": teams}}),
        )
        .await;
    let id = created["data"]["createUser"]["user"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("createUser failed: {created}"))
        .to_owned();
    let login = app.login(&tenant.slug, &email, PASSWORD).await;
    let token = login["data"]["login"]["accessToken"]
        .as_str()
        .expect("the new user signs in")
        .to_owned();
    (id, token)
}

/// A team of `tenant` with `members`; its id.
async fn team(app: &TestApp, tenant: &Tenant, name: &str, members: &[&str]) -> String {
    let body = app.create_team(&tenant.token, name, members).await;
    body["data"]["createTeam"]["team"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("createTeam failed: {body}"))
        .to_owned()
}

/// A whole-second time `days` from now, as the API echoes it.
fn days_from_now(days: i64) -> DateTime<Utc> {
    (Utc::now() + Duration::days(days)).trunc_subsecs(0)
}

fn parse_time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("a time, got {value}"))
}

/// The PIN override of a lead's breakdown, if any.
fn pin_override(lead: &Value) -> Option<&Value> {
    lead["scoreBreakdown"]["overrides"]
        .as_array()
        .expect("overrides")
        .iter()
        .find(|o| o["rule"] == "PIN")
}

impl TestApp {
    async fn pin(
        &self,
        token: &str,
        lead: &str,
        tier: &str,
        reason: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Value {
        self.graphql(
            Some(token),
            &format!(
                "mutation($input: PinLeadTierInput!) {{ pinLeadTier(input: $input) {{ lead {{ {PIN_FIELDS} }} }} }}"
            ),
            json!({"input": {"id": lead, "tier": tier, "reason": reason,
                             "expiresAt": expires_at.map(|t| t.to_rfc3339())}}),
        )
        .await
    }

    /// Pins a lead's tier, which must succeed; returns the lead.
    async fn pinned(
        &self,
        token: &str,
        lead: &str,
        tier: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Value {
        let body = self.pin(token, lead, tier, REASON, expires_at).await;
        let lead = body["data"]["pinLeadTier"]["lead"].clone();
        assert!(lead.is_object(), "pinLeadTier failed: {body}");
        lead
    }

    async fn unpin(&self, token: &str, lead: &str) -> Value {
        self.graphql(
            Some(token),
            &format!(
                "mutation($input: UnpinLeadTierInput!) {{ unpinLeadTier(input: $input) {{ lead {{ {PIN_FIELDS} }} }} }}"
            ),
            json!({"input": {"id": lead}}),
        )
        .await
    }

    async fn pinned_lead(&self, token: &str, id: &str) -> Value {
        let body = self
            .graphql(
                Some(token),
                &format!("query($id: ID!) {{ lead(id: $id) {{ {PIN_FIELDS} }} }}"),
                json!({ "id": id }),
            )
            .await;
        assert!(body["errors"].is_null(), "lead query failed: {body}");
        body["data"]["lead"].clone()
    }

    async fn allow_reps_to_pin(&self, token: &str, allowed: bool) -> Value {
        self.graphql(
            Some(token),
            "mutation($input: UpdateTenantSettingsInput!) { updateTenantSettings(input: $input) { tenant { repsMayPin } } }",
            json!({"input": {"repsMayPin": allowed}}),
        )
        .await
    }

    /// The tenant's audit entries with `action`, newest first.
    async fn audited(&self, token: &str, action: &str) -> Vec<Value> {
        self.audit_entries(token)
            .await
            .into_iter()
            .filter(|n| n["action"] == action)
            .collect()
    }

    /// A lead's history events of `kind`, oldest first.
    async fn history(&self, lead: &str, kind: &str) -> Vec<lead_event::Model> {
        lead_event::Entity::find()
            .filter(lead_event::Column::LeadId.eq(lead.parse::<Uuid>().expect("a lead id")))
            .filter(lead_event::Column::Kind.eq(kind))
            .order_by_asc(lead_event::Column::At)
            .all(&self.system_db)
            .await
            .expect("lead events")
    }

    async fn rescore_tenant_at(&self, tenant: &Tenant, at: DateTime<Utc>) {
        let outcome = rescore::run(
            &self.db,
            tenant.id.parse().expect("a tenant id"),
            Trigger::Manual,
            None,
            at,
            &Options::default(),
        )
        .await
        .expect("the run is recorded");
        match outcome {
            Outcome::Finished(run) => {
                assert_eq!(run.status, entity::enums::JobStatus::Succeeded, "{run:?}")
            }
            Outcome::Busy => panic!("the run found the lease taken"),
        }
    }
}

/// A tenant with a manager, Mia, of team East, and a weak lead of East.
struct Desk {
    tenant: Tenant,
    mia_id: String,
    mia: String,
    lead: Value,
}

async fn desk(app: &TestApp, slug: &str) -> Desk {
    let tenant = app.sign_up_tenant(slug).await;
    let east = team(app, &tenant, "East", &[]).await;
    let (mia_id, mia) = person(app, &tenant, "Mia Manager", "MANAGER", &[&east]).await;
    let created = app
        .new_lead_json(
            &tenant.token,
            json!({"name": "Wei", "company": "Small Co", "attributes": weak(), "teamId": east}),
        )
        .await;
    let lead = app
        .pinned_lead(&tenant.token, created["id"].as_str().expect("an id"))
        .await;
    Desk {
        tenant,
        mia_id,
        mia,
        lead,
    }
}

fn id(lead: &Value) -> &str {
    lead["id"].as_str().expect("a lead id")
}

#[tokio::test]
async fn a_managers_pin_lifts_a_weak_lead_to_a_with_who_and_why_explained() {
    let app = spawn_app().await;
    let d = desk(&app, "acme").await;
    let before = &d.lead;
    assert_ne!(before["tier"], "A", "{before}");
    assert!(before["pin"].is_null());
    let until = days_from_now(30);

    let pinned = app.pinned(&d.mia, id(before), "A", Some(until)).await;

    assert_eq!(pinned["tier"], "A", "{pinned}");
    assert_eq!(
        score_json(&pinned),
        score_json(before),
        "only the tier is pinned: the score is computed as ever"
    );
    assert_eq!(pinned["scoreBreakdown"]["total"], pinned["score"]);
    assert_eq!(pinned["scoreBreakdown"]["baseTier"], before["tier"]);
    assert_eq!(pinned["version"], before["version"].as_i64().unwrap() + 1);
    let pin = pin_override(&pinned).unwrap_or_else(|| panic!("a PIN override: {pinned}"));
    assert_eq!(
        pin["effect"],
        format!("pinned {} → A", before["tier"].as_str().unwrap())
    );
    assert_eq!(
        pin["reason"],
        format!(
            "tier pinned to A by Mia Manager until {}: {REASON}",
            until.format("%Y-%m-%d")
        )
    );
    assert_eq!(pinned["pin"]["tier"], "A");
    assert_eq!(pinned["pin"]["reason"], REASON);
    assert_eq!(parse_time(&pinned["pin"]["expiresAt"]), until);
    assert_eq!(pinned["pin"]["pinnedBy"]["displayName"], "Mia Manager");
    assert_eq!(
        pinned["scoreHistory"][0],
        json!({"oldTier": before["tier"], "newTier": "A",
               "reason": format!("tier pinned to A by Mia Manager: {REASON}")})
    );

    let audited = app.audited(&d.tenant.token, "lead.tier_pinned").await;
    assert_eq!(audited.len(), 1, "{audited:?}");
    let entry = &audited[0];
    assert_eq!(entry["entity"], "lead");
    assert_eq!(entry["entityId"], before["id"]);
    assert_eq!(entry["actor"]["id"], d.mia_id.as_str());
    assert!(entry["before"].is_null(), "{entry}");
    assert_eq!(entry["after"]["tier"], "A");
    assert_eq!(entry["after"]["reason"], REASON);
    assert_eq!(parse_time(&entry["after"]["expiresAt"]), until);
    assert_eq!(entry["after"]["pinnedBy"], d.mia_id.as_str());
    let history = app.history(id(before), "PIN").await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].from_value.as_deref(), before["tier"].as_str());
    assert_eq!(history[0].to_value.as_deref(), Some("A"));

    // Any later change re-scores the lead: the pin holds, still explained.
    let touched = app
        .record_json(&d.mia, id(before), "website_visit", json!({}))
        .await;
    assert_eq!(touched["tier"], "A", "{touched}");
    let reason = touched["scoreBreakdown"]["overrides"].to_string();
    assert!(reason.contains("by Mia Manager"), "{reason}");
}

#[tokio::test]
async fn a_pin_holds_through_nightly_runs_until_its_expiry() {
    let app = spawn_app().await;
    let d = desk(&app, "acme").await;
    let until = days_from_now(1);
    app.pinned(&d.mia, id(&d.lead), "A", Some(until)).await;

    app.rescore_tenant_at(&d.tenant, until - Duration::hours(12))
        .await;
    let held = app.pinned_lead(&d.tenant.token, id(&d.lead)).await;
    assert_eq!(held["tier"], "A", "the nightly job keeps the pin: {held}");
    let explained = pin_override(&held).unwrap_or_else(|| panic!("a PIN override: {held}"));
    assert!(
        explained["reason"]
            .as_str()
            .is_some_and(|r| r.contains("by Mia Manager")),
        "{held}"
    );

    app.rescore_tenant_at(&d.tenant, until + Duration::days(1))
        .await;
    let lapsed = app.pinned_lead(&d.tenant.token, id(&d.lead)).await;
    assert_eq!(lapsed["tier"], d.lead["tier"], "the model's tier: {lapsed}");
    assert!(pin_override(&lapsed).is_none(), "{lapsed}");
    assert_eq!(
        lapsed["scoreHistory"][0],
        json!({"oldTier": "A", "newTier": d.lead["tier"], "reason": "nightly re-scoring"})
    );

    // `pin` is judged by the server's clock: move the expiry behind it, as
    // the day passing would.
    lead_facts::Entity::update_many()
        .col_expr(
            lead_facts::Column::PinExpiresAt,
            Expr::value(Some(Utc::now() - Duration::hours(1))),
        )
        .filter(lead_facts::Column::Id.eq(id(&d.lead).parse::<Uuid>().expect("an id")))
        .exec(&app.system_db)
        .await
        .expect("the expiry moves");
    let shown = app.pinned_lead(&d.tenant.token, id(&d.lead)).await;
    assert!(
        shown["pin"].is_null(),
        "an expired pin is not shown: {shown}"
    );
    assert_eq!(shown["tier"], d.lead["tier"]);
}

#[tokio::test]
async fn unpinning_gives_the_lead_its_models_tier_back_with_an_audit_entry() {
    let app = spawn_app().await;
    let d = desk(&app, "acme").await;
    app.pinned(&d.mia, id(&d.lead), "A", None).await;

    let body = app.unpin(&d.mia, id(&d.lead)).await;
    let unpinned = &body["data"]["unpinLeadTier"]["lead"];
    assert!(unpinned.is_object(), "unpinLeadTier failed: {body}");

    assert_eq!(unpinned["tier"], d.lead["tier"]);
    assert_eq!(score_json(unpinned), score_json(&d.lead));
    assert!(unpinned["pin"].is_null());
    assert!(pin_override(unpinned).is_none(), "{unpinned}");
    assert_eq!(
        unpinned["scoreHistory"][0]["reason"],
        "tier pin removed by Mia Manager"
    );
    let audited = app.audited(&d.tenant.token, "lead.tier_unpinned").await;
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!(audited[0]["entityId"], d.lead["id"]);
    assert_eq!(audited[0]["before"]["tier"], "A");
    assert_eq!(audited[0]["before"]["reason"], REASON);
    assert!(audited[0]["before"]["expiresAt"].is_null());
    assert!(audited[0]["after"].is_null());
    let history = app.history(id(&d.lead), "UNPIN").await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].from_value.as_deref(), Some("A"));
    assert_eq!(history[0].to_value.as_deref(), d.lead["tier"].as_str());

    // Nothing left to remove: the lead is answered as it is, nothing audited.
    let again = app.unpin(&d.mia, id(&d.lead)).await;
    assert_eq!(
        again["data"]["unpinLeadTier"]["lead"]["version"],
        unpinned["version"]
    );
    assert_eq!(
        app.audited(&d.tenant.token, "lead.tier_unpinned")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_rep_pins_only_their_own_leads_once_the_company_allows_it() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let (_, rep) = person(&app, &t, "Rey Rep", "REP", &[]).await;
    let (_, other_rep) = person(&app, &t, "Ola Other", "REP", &[]).await;
    let own = app
        .new_lead_json(&rep, json!({"name": "Mine", "attributes": weak()}))
        .await;
    let theirs = app
        .new_lead_json(&other_rep, json!({"name": "Theirs", "attributes": weak()}))
        .await;
    let pool = app
        .new_lead_json(&t.token, json!({"name": "Pool", "attributes": weak()}))
        .await;

    let refused = app.pin(&rep, id(&own), "A", REASON, None).await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    let settings = app.allow_reps_to_pin(&rep, true).await;
    assert_eq!(error_code(&settings), "FORBIDDEN", "{settings}");

    let settings = app.allow_reps_to_pin(&t.token, true).await;
    assert_eq!(
        settings["data"]["updateTenantSettings"]["tenant"]["repsMayPin"], true,
        "{settings}"
    );
    let audited = app.audited(&t.token, "tenant.settings_updated").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0]["before"], json!({"repsMayPin": false}));
    assert_eq!(audited[0]["after"], json!({"repsMayPin": true}));
    let tenant = app
        .graphql(Some(&rep), "{ tenant { repsMayPin } }", json!({}))
        .await;
    assert_eq!(tenant["data"]["tenant"]["repsMayPin"], true);

    let pinned = app.pinned(&rep, id(&own), "A", None).await;
    assert_eq!(pinned["tier"], "A");
    assert_eq!(pinned["pin"]["pinnedBy"]["displayName"], "Rey Rep");
    let pool_pin = app.pin(&rep, id(&pool), "A", REASON, None).await;
    assert_eq!(
        error_code(&pool_pin),
        "FORBIDDEN",
        "a pool lead is not theirs"
    );
    let other_pin = app.pin(&rep, id(&theirs), "A", REASON, None).await;
    assert_eq!(
        error_code(&other_pin),
        "NOT_FOUND",
        "another rep's lead is not visible"
    );
    let other_unpin = app.unpin(&other_rep, id(&own)).await;
    assert_eq!(error_code(&other_unpin), "NOT_FOUND");
    assert_eq!(
        app.pinned_lead(&t.token, id(&pool)).await["tier"],
        pool["tier"]
    );
    assert_eq!(
        app.pinned_lead(&t.token, id(&theirs)).await["tier"],
        theirs["tier"]
    );
}

#[tokio::test]
async fn a_manager_cannot_pin_a_lead_outside_their_teams() {
    let app = spawn_app().await;
    let d = desk(&app, "acme").await;
    let west = team(&app, &d.tenant, "West", &[]).await;
    let elsewhere = app
        .new_lead_json(
            &d.tenant.token,
            json!({"name": "Far", "attributes": weak(), "teamId": west, "ownerId": d.tenant.owner_id}),
        )
        .await;

    let body = app.pin(&d.mia, id(&elsewhere), "A", REASON, None).await;

    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
}

#[tokio::test]
async fn a_bad_tier_reason_or_expiry_is_refused_by_field_without_changing_anything() {
    let app = spawn_app().await;
    let d = desk(&app, "acme").await;
    let lead = id(&d.lead);
    let long = "x".repeat(501);
    let past = Some(Utc::now() - Duration::minutes(1));
    let cases: [(&str, &str, Option<DateTime<Utc>>, &str); 5] = [
        ("S", REASON, None, "input.tier"),
        ("A", "   ", None, "input.reason"),
        ("A", "", None, "input.reason"),
        ("A", &long, None, "input.reason"),
        ("A", REASON, past, "input.expiresAt"),
    ];
    for (tier, reason, expires_at, field) in cases {
        let body = app.pin(&d.mia, lead, tier, reason, expires_at).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{field}: {body}");
        assert_eq!(error_field(&body), field, "{body}");
    }
    let unknown = app.pin(&d.mia, lead, "S", REASON, None).await;
    assert!(
        error_message(&unknown).contains("its tiers are A, B, C, D"),
        "{unknown}"
    );

    let after = app.pinned_lead(&d.tenant.token, lead).await;
    assert_eq!(after, d.lead, "nothing was written");
    assert!(
        app.audited(&d.tenant.token, "lead.tier_pinned")
            .await
            .is_empty()
    );
    assert!(app.history(lead, "PIN").await.is_empty());
}

#[tokio::test]
async fn a_second_tenant_can_neither_pin_nor_see_anothers_pinned_lead() {
    let app = spawn_app().await;
    let d = desk(&app, "acme").await;
    let globex = app.sign_up_tenant("globex").await;
    let pinned = app.pinned(&d.mia, id(&d.lead), "A", None).await;

    let pin = app.pin(&globex.token, id(&d.lead), "D", REASON, None).await;
    assert_eq!(error_code(&pin), "NOT_FOUND", "{pin}");
    let unpin = app.unpin(&globex.token, id(&d.lead)).await;
    assert_eq!(error_code(&unpin), "NOT_FOUND", "{unpin}");

    let seen = app
        .graphql(
            Some(&globex.token),
            "query($id: ID!) { lead(id: $id) { id pin { tier } } leads { totalCount } }",
            json!({"id": id(&d.lead)}),
        )
        .await;
    assert!(seen["data"]["lead"].is_null(), "{seen}");
    assert_eq!(seen["data"]["leads"]["totalCount"], 0);
    for action in ["lead.tier_pinned", "lead.tier_unpinned"] {
        assert!(app.audited(&globex.token, action).await.is_empty());
    }
    let still = app.pinned_lead(&d.tenant.token, id(&d.lead)).await;
    assert_eq!(still, pinned, "acme's pin is untouched");
}

/// Every lead's explanation, as the list shows it.
async fn explained(app: &TestApp, token: &str) -> Vec<Value> {
    let body = app
        .graphql(
            Some(token),
            "{ leads(first: 50) { edges { node { id name score tier
                scoreBreakdown { total tier contributions { points } overrides { rule reason } } } } } }",
            json!({}),
        )
        .await;
    assert!(body["errors"].is_null(), "leads failed: {body}");
    body["data"]["leads"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// The explanation is not stored: it is worked out again when asked for,
/// from the lead's facts and the model version at the moment it was
/// scored. It must show the very numbers of the stored score, rules and
/// pins included, after every kind of write.
#[tokio::test]
async fn the_explanation_shown_adds_up_to_the_stored_score_after_every_kind_of_write() {
    let app = spawn_app().await;
    let d = desk(&app, "acme").await;
    let strong_lead = app
        .new_lead_json(
            &d.tenant.token,
            json!({"name": "Li", "company": "Big Co", "attributes": crate::helpers::strong()}),
        )
        .await;
    let urgent = app
        .new_lead_json(
            &d.tenant.token,
            json!({"name": "Rush", "company": "Rush Co", "attributes": weak()}),
        )
        .await;
    let recorded = app
        .lead_mutation_json(
            &d.tenant.token,
            "recordActivity",
            "RecordActivityInput",
            json!({"leadId": id(&urgent), "signalKey": "urgent_quote_request"}),
        )
        .await;
    assert!(recorded["errors"].is_null(), "{recorded}");
    app.pinned(&d.mia, id(&d.lead), "A", Some(days_from_now(30)))
        .await;
    app.pinned(&d.tenant.token, id(&strong_lead), "D", None)
        .await;

    // Once as the mutations left them, once as the nightly job re-scored
    // them a day later, everything decayed a little.
    for round in ["after the mutations", "after the nightly job"] {
        let leads = explained(&app, &d.tenant.token).await;
        assert_eq!(leads.len(), 3, "{round}");
        for lead in &leads {
            let breakdown = &lead["scoreBreakdown"];
            let points = crate::helpers::points_shown_json(lead);
            assert!((points - score_json(lead)).abs() < 1e-6, "{round}: {lead}");
            assert_eq!(breakdown["total"], lead["score"], "{round}: {lead}");
            assert_eq!(breakdown["tier"], lead["tier"], "{round}: {lead}");
        }
        let named = |name: &str| {
            leads
                .iter()
                .find(|l| l["name"] == name)
                .unwrap_or_else(|| panic!("{name} is listed"))
        };
        let rules = |lead: &Value| -> Vec<String> {
            lead["scoreBreakdown"]["overrides"]
                .as_array()
                .expect("overrides")
                .iter()
                .map(|o| o["rule"].as_str().unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(named("Rush")["tier"], "A", "{round}");
        assert!(
            rules(named("Rush")).iter().any(|r| r.contains("URGENT")),
            "{round}: {}",
            named("Rush")
        );
        let wei = pin_override(named("Wei")).expect("Wei's pin is explained");
        assert!(
            wei["reason"]
                .as_str()
                .is_some_and(|r| r.contains("Mia Manager") && r.contains(REASON)),
            "{round}: {wei}"
        );
        assert_eq!(named("Li")["tier"], "D", "{round}");
        assert!(pin_override(named("Li")).is_some(), "{round}");
        if round == "after the mutations" {
            app.rescore_tenant_at(&d.tenant, Utc::now() + Duration::days(1))
                .await;
        }
    }
}
