//! The shared pool moves by itself: pool rules send neglected and
//! long-cold leads back on the nightly run, reps claim pool leads within a
//! day's limit, and a company's rules are its own.

use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    helpers::{Connection, GraphqlErrors, Id, Tenant, TestApp, spawn_app, spawn_app_with},
    import::rescore_now,
    webhooks::{FAST, Receiver},
};

const SET_RULE: &str = "mutation($input: PoolRuleInput!) { setPoolRule(input: $input) { poolRule { team { id } noOutboundDays coldDays protectionDays claimsPerDay updatedBy { id } } } }";
const CLAIM: &str =
    "mutation($id: ID!) { claimLead(input: {id: $id}) { lead { id owner { id } } } }";

/// A pool rule as SET_RULE asks for it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PoolRule {
    team: Option<Id>,
    no_outbound_days: Option<i64>,
    cold_days: Option<i64>,
    protection_days: i64,
    claims_per_day: i64,
    updated_by: Option<Id>,
}

/// Sets a pool rule: the rule, or why it was refused.
async fn set_rule(app: &TestApp, token: &str, input: Value) -> Result<PoolRule, GraphqlErrors> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Payload {
        pool_rule: PoolRule,
    }
    let payload: Payload = app
        .query_root(Some(token), SET_RULE, json!({"input": input}))
        .await?;
    Ok(payload.pool_rule)
}

/// Claims the pool lead `id`: its owner's id, or why it was refused.
async fn claim(app: &TestApp, token: &str, id: &str) -> Result<Option<String>, GraphqlErrors> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Payload {
        lead: Claimed,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Claimed {
        id: String,
        owner: Option<Id>,
    }
    let payload: Payload = app
        .query_root(Some(token), CLAIM, json!({"id": id}))
        .await?;
    assert_eq!(payload.lead.id, id);
    Ok(payload.lead.owner.map(|o| o.id))
}

/// Gives the lead `id` to `owner` with assignLead.
async fn assign(app: &TestApp, token: &str, id: &str, owner: &str) -> Result<Id, GraphqlErrors> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Payload {
        lead: Id,
    }
    let payload: Payload = app
        .query_root(
            Some(token),
            "mutation($id: ID!, $owner: ID) { assignLead(input: {id: $id, ownerId: $owner}) { lead { id } } }",
            json!({"id": id, "owner": owner}),
        )
        .await?;
    Ok(payload.lead)
}

/// The pool rules `token` reads, as JSON: compared whole.
async fn pool_rules(app: &TestApp, token: &str, fields: &str) -> Value {
    app.root(
        Some(token),
        &format!("{{ poolRules {{ {fields} }} }}"),
        json!({}),
    )
    .await
}

fn day(days_ago: i64) -> String {
    (Utc::now() - Duration::days(days_ago))
        .format("%Y-%m-%d")
        .to_string()
}

/// Imports `rows` of (external id, owner email or "", days since creation)
/// and returns each lead's id by external id, in the order given.
async fn import(app: &TestApp, tenant: &Tenant, rows: &[(&str, &str, i64)]) -> Vec<String> {
    let mut csv = String::from("external_id,name,company,owner_email,created_at\n");
    for (id, owner, age) in rows {
        csv.push_str(&format!("{id},Lead {id},{id} Ltd,{owner},{}\n", day(*age)));
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Imported {
        created: usize,
        errors: Vec<Value>,
    }
    let imported: Imported = app
        .root(
            Some(&tenant.token),
            "mutation($input: ImportLeadsInput!) { importLeads(input: $input) { created errors { line message } } }",
            json!({"input": {"csv": csv, "dryRun": false}}),
        )
        .await;
    assert_eq!(imported.created, rows.len(), "{imported:?}");
    assert!(imported.errors.is_empty(), "{imported:?}");
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Node {
        id: String,
        external_id: Option<String>,
    }
    let leads: Connection<Node> = app
        .root(
            Some(&tenant.token),
            "{ leads(first: 50) { edges { node { id externalId } } } }",
            json!({}),
        )
        .await;
    rows.iter()
        .map(|(external, _, _)| {
            leads
                .nodes()
                .find(|n| n.external_id.as_deref() == Some(*external))
                .map(|n| n.id.clone())
                .unwrap_or_else(|| panic!("{external} was imported: {leads:?}"))
        })
        .collect()
}

/// A lead's owner and its ownership history.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ownership {
    owner: Option<Id>,
    history: Vec<OwnershipEvent>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OwnershipEvent {
    kind: String,
    reason: Option<String>,
    actor: Option<Id>,
    previous_owner: Option<Id>,
    new_owner: Option<Id>,
}

impl Ownership {
    fn owner_id(&self) -> Option<&str> {
        self.owner.as_ref().map(|o| o.id.as_str())
    }

    fn entries(&self, kind: &str) -> Vec<&OwnershipEvent> {
        self.history.iter().filter(|e| e.kind == kind).collect()
    }
}

/// The id of a user an event names, if it names one.
fn id_of(user: &Option<Id>) -> Option<&str> {
    user.as_ref().map(|u| u.id.as_str())
}

/// The lead's owner and its ownership history.
async fn ownership(app: &TestApp, token: &str, id: &str) -> Ownership {
    app.root(
        Some(token),
        "query($id: ID!) { lead(id: $id) { owner { id } history { kind reason actor { id } previousOwner { id } newOwner { id } } } }",
        json!({"id": id}),
    )
    .await
}

#[tokio::test]
async fn neglected_or_long_cold_leads_return_to_the_pool_on_the_nightly_run_with_an_announcement() {
    let app = spawn_app_with(&FAST).await;
    let t = app.sign_up_tenant("acme").await;
    let (rep, _) = app.member(&t, "rep@acme.test", "REP", &[]).await;
    let receiver = Receiver::start(&[]).await;
    app.endpoint(&t.token, &receiver.url, &["LEAD_RETURNED_TO_POOL"])
        .await;
    let rule = set_rule(
        &app,
        &t.token,
        json!({"noOutboundDays": 14, "coldDays": 45}),
    )
    .await
    .expect("the owner sets the company's rule");
    assert_eq!(rule.protection_days, 3, "the default: {rule:?}");
    assert_eq!(rule.team, None);
    assert_eq!(id_of(&rule.updated_by), Some(t.owner_id.as_str()));

    let ids = import(
        &app,
        &t,
        &[
            ("neglected", "rep@acme.test", 20),
            ("called", "rep@acme.test", 20),
            ("cold", "rep@acme.test", 90),
            ("just-given", "", 90),
            ("fresh", "rep@acme.test", 3),
        ],
    )
    .await;
    let [neglected, called, cold, just_given, fresh] = ids.as_slice() else {
        panic!("five leads");
    };
    // The rep calls two of them today; one of those has not replied for
    // 90 days and has been cold for two months.
    app.record(&t.token, called, "call", json!({})).await;
    app.record(&t.token, cold, "call", json!({})).await;
    // A cold lead given to the rep today is theirs for the protection days.
    assign(&app, &t.token, just_given, &rep)
        .await
        .expect("the owner gives the lead to the rep");

    let run = rescore_now(&app, &t.id).await;
    assert_eq!(
        run.details
            .as_ref()
            .map(|d| d["leadsReturnedToPool"].clone()),
        Some(json!(2)),
        "{run:?}"
    );

    let lead = ownership(&app, &t.token, neglected).await;
    assert_eq!(lead.owner_id(), None, "{lead:?}");
    let returned = lead.entries("RETURNED_TO_POOL");
    assert_eq!(returned.len(), 1, "{lead:?}");
    assert_eq!(
        returned[0].reason.as_deref(),
        Some("no outbound contact by its owner for 14 days")
    );
    assert_eq!(id_of(&returned[0].previous_owner), Some(rep.as_str()));
    assert_eq!(id_of(&returned[0].new_owner), None);
    assert_eq!(returned[0].actor, None, "LeadRank did it: {lead:?}");

    let lead = ownership(&app, &t.token, cold).await;
    assert_eq!(lead.owner_id(), None, "{lead:?}");
    assert_eq!(
        lead.entries("RETURNED_TO_POOL")[0].reason.as_deref(),
        Some("cold for 45 days")
    );
    for (kept, why) in [
        (called, "called today"),
        (just_given, "protected"),
        (fresh, "too new to be neglected"),
    ] {
        let lead = ownership(&app, &t.token, kept).await;
        assert_eq!(lead.owner_id(), Some(rep.as_str()), "{why}: {lead:?}");
    }

    let got = receiver.wait_for(2).await;
    let mut returned: Vec<String> = got
        .iter()
        .filter(|r| r.event_type == "lead.returned_to_pool")
        .map(|r| {
            // The webhook body is the event; its `data` is the event's own.
            let body = r.json();
            assert_eq!(body["data"]["previousOwnerId"], rep.as_str(), "{body}");
            body["data"]["lead"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    returned.sort();
    let mut expected = vec![neglected.clone(), cold.clone()];
    expected.sort();
    assert_eq!(returned, expected);

    // The next night finds nothing more to return.
    let again = rescore_now(&app, &t.id).await;
    assert_eq!(
        again
            .details
            .as_ref()
            .map(|d| d["leadsReturnedToPool"].clone()),
        Some(json!(0))
    );
}

#[tokio::test]
async fn a_rep_claims_pool_leads_up_to_the_days_limit() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let (rep, rep_token) = app.member(&t, "rep@acme.test", "REP", &[]).await;
    let (other, _) = app.member(&t, "other@acme.test", "REP", &[]).await;
    set_rule(&app, &t.token, json!({"claimsPerDay": 2}))
        .await
        .expect("the owner sets the claims a day");
    let ids = import(
        &app,
        &t,
        &[
            ("p1", "", 1),
            ("p2", "", 1),
            ("p3", "", 1),
            ("owned", "other@acme.test", 1),
        ],
    )
    .await;

    for id in &ids[..2] {
        let owner = claim(&app, &rep_token, id).await.expect("a claim");
        assert_eq!(owner.as_deref(), Some(rep.as_str()));
        let lead = ownership(&app, &t.token, id).await;
        let claimed = lead.entries("CLAIMED");
        assert_eq!(claimed.len(), 1, "{lead:?}");
        assert_eq!(id_of(&claimed[0].actor), Some(rep.as_str()));
        assert_eq!(id_of(&claimed[0].new_owner), Some(rep.as_str()));
    }
    // Claiming one's own lead again is no new claim.
    let owner = claim(&app, &rep_token, &ids[0])
        .await
        .expect("one's own lead claims again");
    assert_eq!(owner.as_deref(), Some(rep.as_str()));

    // The third claim of the day is refused, by claimLead and by taking
    // the lead with assignLead alike, and the lead stays in the pool.
    let third = claim(&app, &rep_token, &ids[2])
        .await
        .expect_err("the third claim of the day");
    assert_eq!(third.code(), "BAD_USER_INPUT", "{third}");
    assert_eq!(third.field(), "input.id", "{third}");
    let taken = assign(&app, &rep_token, &ids[2], &rep)
        .await
        .expect_err("the third lead of the day, taken by assignLead");
    assert_eq!(taken.code(), "BAD_USER_INPUT", "{taken}");
    assert_eq!(taken.field(), "input.ownerId", "{taken}");
    let lead = ownership(&app, &t.token, &ids[2]).await;
    assert_eq!(lead.owner_id(), None, "{lead:?}");

    // Another rep's lead is not in the pool: a rep cannot even see it, an
    // admin is told someone owns it.
    let hidden = claim(&app, &rep_token, &ids[3])
        .await
        .expect_err("a colleague's lead");
    assert_eq!(hidden.code(), "NOT_FOUND", "{hidden}");
    let owned = claim(&app, &t.token, &ids[3])
        .await
        .expect_err("an owned lead");
    assert_eq!(owned.code(), "CONFLICT", "{owned}");
    let lead = ownership(&app, &t.token, &ids[3]).await;
    assert_eq!(lead.owner_id(), Some(other.as_str()));
}

#[tokio::test]
async fn a_pool_rule_is_set_with_sound_numbers_by_its_teams_manager_or_above() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let team = app.new_team(&t.token, "North").await;
    let elsewhere = app.new_team(&t.token, "South").await;
    let (_, manager) = app.member(&t, "boss@acme.test", "MANAGER", &[&team]).await;
    let (_, rep) = app.member(&t, "rep@acme.test", "REP", &[&team]).await;

    for (input, field) in [
        (json!({"noOutboundDays": 0}), "input.noOutboundDays"),
        (json!({"coldDays": -3}), "input.coldDays"),
        (json!({"protectionDays": -1}), "input.protectionDays"),
        (json!({"claimsPerDay": -1}), "input.claimsPerDay"),
        (
            json!({"teamId": uuid::Uuid::now_v7().to_string()}),
            "input.teamId",
        ),
        (json!({"teamId": "nope"}), "input.teamId"),
    ] {
        let refused = set_rule(&app, &t.token, input.clone())
            .await
            .expect_err("a bad rule is refused");
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{input}: {refused}");
        assert_eq!(refused.field(), field, "{input}: {refused}");
    }
    let rules = pool_rules(&app, &rep, "team { id } claimsPerDay").await;
    assert_eq!(rules, json!([]), "nothing saved");

    // A manager sets their team's rule, not the company's nor another team's.
    let own = set_rule(
        &app,
        &manager,
        json!({"teamId": team, "noOutboundDays": 7, "claimsPerDay": 5}),
    )
    .await
    .expect("a manager sets their team's rule");
    assert_eq!(id_of(&own.team), Some(team.as_str()), "{own:?}");
    assert_eq!(own.no_outbound_days, Some(7));
    assert_eq!(own.cold_days, None);
    assert_eq!(own.claims_per_day, 5);
    for input in [json!({"claimsPerDay": 1}), json!({"teamId": elsewhere})] {
        let refused = set_rule(&app, &manager, input.clone())
            .await
            .expect_err("not the manager's rule");
        assert_eq!(refused.code(), "FORBIDDEN", "{input}: {refused}");
    }
    let refused = set_rule(&app, &rep, json!({"claimsPerDay": 99}))
        .await
        .expect_err("a rep sets no rule");
    assert_eq!(refused.code(), "FORBIDDEN", "{refused}");

    // Setting again replaces the rule; everyone reads the rules.
    set_rule(&app, &t.token, json!({"coldDays": 30}))
        .await
        .expect("the owner sets the company's rule");
    set_rule(&app, &manager, json!({"teamId": team, "claimsPerDay": 4}))
        .await
        .expect("the manager replaces their team's rule");
    let rules = pool_rules(
        &app,
        &rep,
        "team { id } noOutboundDays coldDays protectionDays claimsPerDay",
    )
    .await;
    assert_eq!(
        rules,
        json!([
            {"team": null, "noOutboundDays": null, "coldDays": 30, "protectionDays": 3, "claimsPerDay": 20},
            {"team": {"id": team}, "noOutboundDays": null, "coldDays": null, "protectionDays": 3, "claimsPerDay": 4},
        ])
    );
    let audited: Vec<_> = app
        .audit_entries(&t.token)
        .await
        .into_iter()
        .filter(|e| e.action == "pool_rule.set")
        .collect();
    assert_eq!(audited.len(), 3, "{audited:?}");

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Removed {
        removed: bool,
    }
    let removed: Removed = app
        .root(
            Some(&manager),
            "mutation($team: ID) { removePoolRule(input: {teamId: $team}) { removed } }",
            json!({"team": team}),
        )
        .await;
    assert!(removed.removed);
}

#[tokio::test]
async fn another_company_can_neither_read_nor_change_the_pool_nor_claim_its_leads() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    let team = app.new_team(&acme.token, "North").await;
    set_rule(
        &app,
        &acme.token,
        json!({"teamId": team, "claimsPerDay": 1}),
    )
    .await
    .expect("acme sets its team's rule");
    let ids = import(&app, &acme, &[("pool-lead", "", 1)]).await;

    let rules = pool_rules(&app, &globex.token, "claimsPerDay").await;
    assert_eq!(rules, json!([]));
    let refused = set_rule(
        &app,
        &globex.token,
        json!({"teamId": team, "claimsPerDay": 50}),
    )
    .await
    .expect_err("another company's team has no rule here");
    assert_eq!(refused.field(), "input.teamId", "{refused}");
    let refused = app
        .refused(
            Some(&globex.token),
            "mutation($team: ID) { removePoolRule(input: {teamId: $team}) { removed } }",
            json!({"team": team}),
        )
        .await;
    assert_eq!(refused.field(), "input.teamId", "{refused}");
    let refused = claim(&app, &globex.token, &ids[0])
        .await
        .expect_err("another company's pool lead");
    assert_eq!(refused.code(), "NOT_FOUND", "{refused}");

    let lead = ownership(&app, &acme.token, &ids[0]).await;
    assert_eq!(lead.owner_id(), None, "{lead:?}");
    let rules = pool_rules(&app, &acme.token, "claimsPerDay").await;
    assert_eq!(rules, json!([{"claimsPerDay": 1}]));
}
