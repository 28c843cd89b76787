//! The shared pool moves by itself: pool rules send neglected and
//! long-cold leads back on the nightly run, reps claim pool leads within a
//! day's limit, and a company's rules are its own.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::{
    helpers::{Tenant, TestApp, error_code, error_field, spawn_app, spawn_app_with},
    import::rescore_now,
    webhooks::{FAST, Receiver},
};

const SET_RULE: &str = "mutation($input: PoolRuleInput!) { setPoolRule(input: $input) { poolRule { team { id } noOutboundDays coldDays protectionDays claimsPerDay updatedBy { id } } } }";
const CLAIM: &str =
    "mutation($id: ID!) { claimLead(input: {id: $id}) { lead { id owner { id } } } }";

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
    let body = app
        .graphql(
            Some(&tenant.token),
            "mutation($input: ImportLeadsInput!) { importLeads(input: $input) { created errors { line message } } }",
            json!({"input": {"csv": csv, "dryRun": false}}),
        )
        .await;
    assert_eq!(body["data"]["importLeads"]["created"], rows.len(), "{body}");
    let leads = app
        .graphql(
            Some(&tenant.token),
            "{ leads(first: 50) { edges { node { id externalId } } } }",
            json!({}),
        )
        .await;
    let all = leads["data"]["leads"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    rows.iter()
        .map(|(external, _, _)| {
            all.iter()
                .find(|e| e["node"]["externalId"] == *external)
                .and_then(|e| e["node"]["id"].as_str())
                .unwrap_or_else(|| panic!("{external} was imported: {leads}"))
                .to_owned()
        })
        .collect()
}

/// The lead's owner and its ownership history, newest last.
async fn ownership(app: &TestApp, token: &str, id: &str) -> Value {
    let body = app
        .graphql(
            Some(token),
            "query($id: ID!) { lead(id: $id) { owner { id } history { kind reason actor { id } previousOwner { id } newOwner { id } } } }",
            json!({"id": id}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["lead"].clone()
}

fn entries<'a>(lead: &'a Value, kind: &str) -> Vec<&'a Value> {
    lead["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == kind)
        .collect()
}

#[tokio::test]
async fn neglected_or_long_cold_leads_return_to_the_pool_on_the_nightly_run_with_an_announcement() {
    let app = spawn_app_with(&FAST).await;
    let t = app.sign_up_tenant("acme").await;
    let (rep, _) = app.member(&t, "rep@acme.test", "REP", &[]).await;
    let receiver = Receiver::start(&[]).await;
    app.endpoint(&t.token, &receiver.url, &["LEAD_RETURNED_TO_POOL"])
        .await;
    let body = app
        .graphql(
            Some(&t.token),
            SET_RULE,
            json!({"input": {"noOutboundDays": 14, "coldDays": 45}}),
        )
        .await;
    assert_eq!(
        body["data"]["setPoolRule"]["poolRule"]["protectionDays"], 3,
        "{body}"
    );

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
    app.record_json(&t.token, called, "call", json!({})).await;
    app.record_json(&t.token, cold, "call", json!({})).await;
    // A cold lead given to the rep today is theirs for the protection days.
    let given = app
        .graphql(
            Some(&t.token),
            "mutation($id: ID!, $owner: ID) { assignLead(input: {id: $id, ownerId: $owner}) { lead { id } } }",
            json!({"id": just_given, "owner": rep}),
        )
        .await;
    assert!(given["errors"].is_null(), "{given}");

    let run = rescore_now(&app, &t.id).await;
    assert_eq!(
        run.details
            .as_ref()
            .map(|d| d["leadsReturnedToPool"].clone()),
        Some(json!(2)),
        "{run:?}"
    );

    let lead = ownership(&app, &t.token, neglected).await;
    assert!(lead["owner"].is_null(), "{lead}");
    let returned = entries(&lead, "RETURNED_TO_POOL");
    assert_eq!(returned.len(), 1, "{lead}");
    assert_eq!(
        returned[0]["reason"],
        "no outbound contact by its owner for 14 days"
    );
    assert_eq!(returned[0]["previousOwner"]["id"], rep.as_str());
    assert!(returned[0]["actor"].is_null(), "LeadRank did it: {lead}");

    let lead = ownership(&app, &t.token, cold).await;
    assert!(lead["owner"].is_null(), "{lead}");
    assert_eq!(
        entries(&lead, "RETURNED_TO_POOL")[0]["reason"],
        "cold for 45 days"
    );
    for (kept, why) in [
        (called, "called today"),
        (just_given, "protected"),
        (fresh, "too new to be neglected"),
    ] {
        let lead = ownership(&app, &t.token, kept).await;
        assert_eq!(lead["owner"]["id"], rep.as_str(), "{why}: {lead}");
    }

    let got = receiver.wait_for(2).await;
    let mut returned: Vec<String> = got
        .iter()
        .filter(|r| r.event_type == "lead.returned_to_pool")
        .map(|r| {
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
    app.graphql(
        Some(&t.token),
        SET_RULE,
        json!({"input": {"claimsPerDay": 2}}),
    )
    .await;
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
        let body = app
            .graphql(Some(&rep_token), CLAIM, json!({"id": id}))
            .await;
        assert_eq!(
            body["data"]["claimLead"]["lead"]["owner"]["id"],
            rep.as_str(),
            "{body}"
        );
        let lead = ownership(&app, &t.token, id).await;
        let claimed = entries(&lead, "CLAIMED");
        assert_eq!(claimed.len(), 1, "{lead}");
        assert_eq!(claimed[0]["actor"]["id"], rep.as_str());
        assert_eq!(claimed[0]["newOwner"]["id"], rep.as_str());
    }
    // Claiming one's own lead again is no new claim.
    let again = app
        .graphql(Some(&rep_token), CLAIM, json!({"id": ids[0]}))
        .await;
    assert!(again["errors"].is_null(), "{again}");

    // The third claim of the day is refused, by claimLead and by taking
    // the lead with assignLead alike, and the lead stays in the pool.
    let third = app
        .graphql(Some(&rep_token), CLAIM, json!({"id": ids[2]}))
        .await;
    assert_eq!(error_code(&third), "BAD_USER_INPUT", "{third}");
    assert_eq!(error_field(&third), "input.id", "{third}");
    let taken = app
        .graphql(
            Some(&rep_token),
            "mutation($id: ID!, $owner: ID) { assignLead(input: {id: $id, ownerId: $owner}) { lead { id } } }",
            json!({"id": ids[2], "owner": rep}),
        )
        .await;
    assert_eq!(error_code(&taken), "BAD_USER_INPUT", "{taken}");
    assert_eq!(error_field(&taken), "input.ownerId", "{taken}");
    let lead = ownership(&app, &t.token, &ids[2]).await;
    assert!(lead["owner"].is_null(), "{lead}");

    // Another rep's lead is not in the pool: a rep cannot even see it, an
    // admin is told someone owns it.
    let hidden = app
        .graphql(Some(&rep_token), CLAIM, json!({"id": ids[3]}))
        .await;
    assert_eq!(error_code(&hidden), "NOT_FOUND", "{hidden}");
    let owned = app
        .graphql(Some(&t.token), CLAIM, json!({"id": ids[3]}))
        .await;
    assert_eq!(error_code(&owned), "CONFLICT", "{owned}");
    let lead = ownership(&app, &t.token, &ids[3]).await;
    assert_eq!(lead["owner"]["id"], other.as_str());
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
        let body = app
            .graphql(Some(&t.token), SET_RULE, json!({"input": input}))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), field, "{body}");
    }
    let rules = app
        .graphql(
            Some(&rep),
            "{ poolRules { team { id } claimsPerDay } }",
            json!({}),
        )
        .await;
    assert_eq!(
        rules["data"]["poolRules"],
        json!([]),
        "nothing saved: {rules}"
    );

    // A manager sets their team's rule, not the company's nor another team's.
    let own = app
        .graphql(
            Some(&manager),
            SET_RULE,
            json!({"input": {"teamId": team, "noOutboundDays": 7, "claimsPerDay": 5}}),
        )
        .await;
    assert_eq!(
        own["data"]["setPoolRule"]["poolRule"]["team"]["id"],
        team.as_str(),
        "{own}"
    );
    for input in [json!({"claimsPerDay": 1}), json!({"teamId": elsewhere})] {
        let body = app
            .graphql(Some(&manager), SET_RULE, json!({"input": input}))
            .await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    }
    let body = app
        .graphql(Some(&rep), SET_RULE, json!({"input": {"claimsPerDay": 99}}))
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");

    // Setting again replaces the rule; everyone reads the rules.
    app.graphql(Some(&t.token), SET_RULE, json!({"input": {"coldDays": 30}}))
        .await;
    app.graphql(
        Some(&manager),
        SET_RULE,
        json!({"input": {"teamId": team, "claimsPerDay": 4}}),
    )
    .await;
    let rules = app
        .graphql(
            Some(&rep),
            "{ poolRules { team { id } noOutboundDays coldDays protectionDays claimsPerDay } }",
            json!({}),
        )
        .await;
    assert_eq!(
        rules["data"]["poolRules"],
        json!([
            {"team": null, "noOutboundDays": null, "coldDays": 30, "protectionDays": 3, "claimsPerDay": 20},
            {"team": {"id": team}, "noOutboundDays": null, "coldDays": null, "protectionDays": 3, "claimsPerDay": 4},
        ]),
        "{rules}"
    );
    let audited: Vec<Value> = app
        .audit_entries(&t.token)
        .await
        .into_iter()
        .filter(|e| e["action"] == "pool_rule.set")
        .collect();
    assert_eq!(audited.len(), 3, "{audited:?}");

    let removed = app
        .graphql(
            Some(&manager),
            "mutation($team: ID) { removePoolRule(input: {teamId: $team}) { removed } }",
            json!({"team": team}),
        )
        .await;
    assert_eq!(
        removed["data"]["removePoolRule"]["removed"], true,
        "{removed}"
    );
}

#[tokio::test]
async fn another_company_can_neither_read_nor_change_the_pool_nor_claim_its_leads() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    let team = app.new_team(&acme.token, "North").await;
    app.graphql(
        Some(&acme.token),
        SET_RULE,
        json!({"input": {"teamId": team, "claimsPerDay": 1}}),
    )
    .await;
    let ids = import(&app, &acme, &[("pool-lead", "", 1)]).await;

    let rules = app
        .graphql(
            Some(&globex.token),
            "{ poolRules { claimsPerDay } }",
            json!({}),
        )
        .await;
    assert_eq!(rules["data"]["poolRules"], json!([]), "{rules}");
    let body = app
        .graphql(
            Some(&globex.token),
            SET_RULE,
            json!({"input": {"teamId": team, "claimsPerDay": 50}}),
        )
        .await;
    assert_eq!(error_field(&body), "input.teamId", "{body}");
    let body = app
        .graphql(
            Some(&globex.token),
            "mutation($team: ID) { removePoolRule(input: {teamId: $team}) { removed } }",
            json!({"team": team}),
        )
        .await;
    assert_eq!(error_field(&body), "input.teamId", "{body}");
    let body = app
        .graphql(Some(&globex.token), CLAIM, json!({"id": ids[0]}))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");

    let lead = ownership(&app, &acme.token, &ids[0]).await;
    assert!(lead["owner"].is_null(), "{lead}");
    let rules = app
        .graphql(
            Some(&acme.token),
            "{ poolRules { claimsPerDay } }",
            json!({}),
        )
        .await;
    assert_eq!(rules["data"]["poolRules"], json!([{"claimsPerDay": 1}]));
}
