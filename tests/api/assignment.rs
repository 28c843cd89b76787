//! Assignment rules: unowned leads reach reps by round-robin or by room
//! left under a cap, filtered by tier, source or field values; away reps are
//! skipped; rules apply on create, on import and in the nightly job; every
//! automatic assignment shows on the lead's history with its rule; rules
//! and availability are audited and confined to their company and roles.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::{
    helpers::{Tenant, TestApp, error_code, error_field, spawn_app},
    helpers::{strong, weak},
};

const RULE: &str = "rule { id name strategy position active maxOpenPerRep team { id }
    filter { tiers sources fields { key values } } lastAssignedTo { id } }";

impl TestApp {
    async fn create_rule(&self, token: &str, input: Value) -> Value {
        self.graphql(
            Some(token),
            &format!(
                "mutation($input: CreateAssignmentRuleInput!) {{ createAssignmentRule(input: $input) {{ {RULE} }} }}"
            ),
            json!({ "input": input }),
        )
        .await
    }

    /// Creates a rule that must be accepted; its id.
    async fn new_rule(&self, token: &str, input: Value) -> String {
        let body = self.create_rule(token, input).await;
        body["data"]["createAssignmentRule"]["rule"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("createAssignmentRule failed: {body}"))
            .to_owned()
    }

    async fn set_availability(&self, token: &str, input: Value) -> Value {
        self.graphql(
            Some(token),
            "mutation($input: SetUserAvailabilityInput!) { setUserAvailability(input: $input) { user { id away capacity } } }",
            json!({ "input": input }),
        )
        .await
    }

    /// The owner of a lead as the lead reads; `None` for the pool.
    async fn owner_of(&self, token: &str, id: &str) -> Option<String> {
        self.lead_by_id_json(token, id).await["owner"]["id"]
            .as_str()
            .map(str::to_owned)
    }
}

/// Three reps of `tenant` in one team: (team id, rep ids, rep tokens).
async fn three_reps(
    app: &TestApp,
    tenant: &Tenant,
    team: &str,
) -> (String, Vec<String>, Vec<String>) {
    let team_id = app.new_team(&tenant.token, team).await;
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    for n in 1..=3 {
        let email = format!("rep{n}.{}@{}.test", team.to_lowercase(), tenant.slug);
        let (id, token) = app.member(tenant, &email, "REP", &[&team_id]).await;
        ids.push(id);
        tokens.push(token);
    }
    (team_id, ids, tokens)
}

/// How many of `leads` each owner got.
async fn tally(app: &TestApp, token: &str, leads: &[String]) -> BTreeMap<Option<String>, usize> {
    let mut counts = BTreeMap::new();
    for id in leads {
        *counts.entry(app.owner_of(token, id).await).or_default() += 1;
    }
    counts
}

async fn pool_leads(
    app: &TestApp,
    tenant: &Tenant,
    prefix: &str,
    n: usize,
    extra: Value,
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let mut input =
            json!({"name": format!("{prefix} {i}"), "company": format!("{prefix} Co {i}")});
        if let (Some(input), Some(extra)) = (input.as_object_mut(), extra.as_object()) {
            input.extend(extra.clone());
        }
        let lead = app.new_lead_json(&tenant.token, input).await;
        ids.push(lead["id"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test]
async fn round_robin_spreads_ten_new_leads_four_three_three_skipping_a_rep_who_is_away() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let (team, reps, rep_tokens) = three_reps(&app, &acme, "East").await;
    let rule = app
        .new_rule(
            &acme.token,
            json!({"teamId": team, "name": "East in turn", "strategy": "ROUND_ROBIN"}),
        )
        .await;

    let leads = pool_leads(&app, &acme, "Turn", 10, json!({"teamId": team})).await;
    let counts = tally(&app, &acme.token, &leads).await;
    let spread: Vec<usize> = reps
        .iter()
        .map(|r| counts.get(&Some(r.clone())).copied().unwrap_or(0))
        .collect();
    assert_eq!(
        spread,
        vec![4, 3, 3],
        "in turn, in joining order: {counts:?}"
    );

    // The lead's history says a rule did it, and which.
    let body = app
        .graphql(
            Some(&acme.token),
            "query($id: ID!) { lead(id: $id) { history { kind actor { id } newOwner { id } ruleId ruleName } } }",
            json!({"id": leads[0]}),
        )
        .await;
    let history = body["data"]["lead"]["history"].as_array().unwrap();
    let assigned = history
        .iter()
        .find(|e| e["kind"] == "ASSIGNED")
        .unwrap_or_else(|| panic!("no ASSIGNED event: {body}"));
    assert_eq!(assigned["actor"], Value::Null, "no person did it");
    assert_eq!(assigned["newOwner"]["id"], reps[0].as_str());
    assert_eq!(assigned["ruleId"], rule.as_str());
    assert_eq!(assigned["ruleName"], "East in turn");

    // The rep who would be next marks themselves away: the turn passes them.
    let next = &reps[1];
    let away = app
        .set_availability(&rep_tokens[1], json!({"userId": next, "away": true}))
        .await;
    assert_eq!(
        away["data"]["setUserAvailability"]["user"]["away"], true,
        "{away}"
    );
    let more = pool_leads(&app, &acme, "Later", 4, json!({"teamId": team})).await;
    let counts = tally(&app, &acme.token, &more).await;
    assert_eq!(counts.get(&Some(next.clone())), None, "{counts:?}");
    assert_eq!(counts.get(&Some(reps[0].clone())), Some(&2), "{counts:?}");
    assert_eq!(counts.get(&Some(reps[2].clone())), Some(&2), "{counts:?}");

    // A lead given an owner, or created by a rep, is not touched.
    let given = app
        .new_lead_json(
            &acme.token,
            json!({"name": "Given", "teamId": team, "ownerId": reps[2]}),
        )
        .await;
    assert_eq!(given["owner"]["id"], reps[2].as_str());
    let own = app
        .new_lead_json(&rep_tokens[0], json!({"name": "Mine", "teamId": team}))
        .await;
    assert_eq!(own["owner"]["id"], reps[0].as_str());
}

#[tokio::test]
async fn a_full_rep_gets_no_new_leads_until_the_nightly_job_finds_room() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let (team, reps, _) = three_reps(&app, &acme, "West").await;
    // A rule needs a cap to weigh by it.
    let refused = app
        .create_rule(
            &acme.token,
            json!({"teamId": team, "name": "By room", "strategy": "REMAINING_CAPACITY"}),
        )
        .await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT");
    assert_eq!(error_field(&refused), "input.maxOpenPerRep");
    app.new_rule(
        &acme.token,
        json!({"teamId": team, "name": "By room", "strategy": "REMAINING_CAPACITY", "maxOpenPerRep": 2}),
    )
    .await;
    // The third rep may hold only one open lead.
    let capped = app
        .set_availability(&acme.token, json!({"userId": reps[2], "capacity": 1}))
        .await;
    assert_eq!(
        capped["data"]["setUserAvailability"]["user"]["capacity"], 1,
        "{capped}"
    );

    let leads = pool_leads(&app, &acme, "Room", 6, json!({"teamId": team})).await;
    let counts = tally(&app, &acme.token, &leads).await;
    assert_eq!(counts.get(&Some(reps[0].clone())), Some(&2), "{counts:?}");
    assert_eq!(counts.get(&Some(reps[1].clone())), Some(&2), "{counts:?}");
    assert_eq!(counts.get(&Some(reps[2].clone())), Some(&1), "{counts:?}");
    assert_eq!(
        counts.get(&None),
        Some(&1),
        "everyone is full: one waits in the pool"
    );
    let waiting = leads[5].clone();
    assert_eq!(app.owner_of(&acme.token, &waiting).await, None);

    // A rep closes a lead: the nightly job hands the waiting one to them.
    let mut closed = None;
    for id in &leads {
        if app.owner_of(&acme.token, id).await.as_ref() == Some(&reps[0]) {
            closed = Some(id.clone());
            break;
        }
    }
    let closed = closed.expect("the first rep holds leads");
    let body = app
        .lead_mutation_json(
            &acme.token,
            "closeLead",
            "CloseLeadInput",
            json!({"id": closed, "outcome": "LOST", "reason": "went elsewhere"}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let run = app
        .graphql(
            Some(&acme.token),
            "mutation { runRescoring(input: {}) { id } }",
            json!({}),
        )
        .await;
    let id = run["data"]["runRescoring"]["id"].clone();
    assert!(id.is_string(), "{run}");
    let finished = app.finished_run(&acme.token, &id).await;
    assert_eq!(finished["status"], "SUCCEEDED", "{finished}");
    let runs = app
        .graphql(
            Some(&acme.token),
            "{ jobRuns(first: 5) { id leadsAssigned } }",
            json!({}),
        )
        .await;
    let this = runs["data"]["jobRuns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .cloned()
        .unwrap();
    assert_eq!(this["leadsAssigned"], 1, "{runs}");
    assert_eq!(
        app.owner_of(&acme.token, &waiting).await.as_ref(),
        Some(&reps[0])
    );
}

#[tokio::test]
async fn filters_send_each_lead_to_the_first_rule_that_matches_team_rules_before_company_rules() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let (team, team_reps, _) = three_reps(&app, &acme, "Key").await;
    let (other_id, _) = app.member(&acme, "generalist@acme.test", "REP", &[]).await;
    // Qualified (tier B: BANT met, no activity yet) web leads with a full
    // budget go to the key-account team's rule; the rest to the company's.
    app.new_rule(
        &acme.token,
        json!({"name": "Everyone else", "strategy": "ROUND_ROBIN"}),
    )
    .await;
    app.new_rule(
        &acme.token,
        json!({"teamId": team, "name": "Hot web leads", "strategy": "ROUND_ROBIN",
               "filter": {"tiers": ["B"], "sources": ["Web"], "fields": [{"key": "budget", "values": ["5"]}]}}),
    )
    .await;

    let hot = app
        .new_lead_json(
            &acme.token,
            json!({"name": "Hot", "teamId": team, "source": "web", "attributes": strong()}),
        )
        .await;
    assert_eq!(hot["tier"], "B", "{hot}");
    assert!(
        team_reps.iter().any(|r| hot["owner"]["id"] == r.as_str()),
        "{hot}"
    );

    // A weak lead of the same team fails the tier filter: the company rule
    // takes it, among the team's reps since the lead has a team.
    let cold = app
        .new_lead_json(
            &acme.token,
            json!({"name": "Cold", "teamId": team, "source": "web", "attributes": weak()}),
        )
        .await;
    assert_ne!(cold["tier"], "B");
    assert!(
        team_reps.iter().any(|r| cold["owner"]["id"] == r.as_str()),
        "{cold}"
    );

    // Without a team, the company rule hands leads to every rep in turn;
    // the team's rule is not even tried.
    let unteamed = pool_leads(
        &app,
        &acme,
        "Walk-in",
        4,
        json!({"source": "web", "attributes": strong()}),
    )
    .await;
    let counts = tally(&app, &acme.token, &unteamed).await;
    assert_eq!(counts.values().sum::<usize>(), 4);
    assert!(!counts.contains_key(&None), "{counts:?}");
    assert_eq!(
        counts.get(&Some(other_id.clone())),
        Some(&1),
        "four reps in turn: {counts:?}"
    );

    // Bad filters are refused with the field named.
    for (filter, field) in [
        (json!({"tiers": ["Z"]}), "input.filter.tiers[0]"),
        (
            json!({"fields": [{"key": "nope", "values": ["x"]}]}),
            "input.filter.fields[0].key",
        ),
        (
            json!({"fields": [{"key": "budget", "values": ["7"]}]}),
            "input.filter.fields[0].values[0]",
        ),
        (json!({"sources": [" "]}), "input.filter.sources[0]"),
    ] {
        let body = app
            .create_rule(
                &acme.token,
                json!({"name": "Bad", "strategy": "ROUND_ROBIN", "filter": filter}),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), field, "{body}");
    }
    let rules = app
        .graphql(
            Some(&acme.token),
            "{ assignmentRules { name team { id } } }",
            json!({}),
        )
        .await;
    let names: Vec<&str> = rules["data"]["assignmentRules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(
        names,
        vec!["Everyone else", "Hot web leads"],
        "nothing saved from the bad ones"
    );
}

#[tokio::test]
async fn the_round_robin_turn_carries_on_across_import_batches_into_the_next_lead() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let (_, reps, _) = three_reps(&app, &acme, "North").await;
    app.new_rule(
        &acme.token,
        json!({"name": "All reps", "strategy": "ROUND_ROBIN"}),
    )
    .await;
    // Three transactions: the next batch is prepared, and the rule's turn
    // moved on, while the one before is written.
    let rows = 2 * leadrank::service::ingestion::import::ROWS_PER_TRANSACTION + 2;
    let mut csv = String::from("external_id,name,company\n");
    for i in 0..rows {
        csv.push_str(&format!("big-{i},Lead {i},Account {i}\n"));
    }
    let body = app
        .graphql(
            Some(&acme.token),
            "mutation($input: ImportLeadsInput!) { importLeads(input: $input) { created errors { line message } } }",
            json!({"input": {"csv": csv, "dryRun": false}}),
        )
        .await;
    assert_eq!(body["data"]["importLeads"]["created"], rows, "{body}");

    let mut open = Vec::new();
    for rep in &reps {
        let body = app
            .graphql(
                Some(&acme.token),
                "query($rep: ID!) { leads(first: 1, filter: {ownerId: $rep}) { totalCount } }",
                json!({"rep": rep}),
            )
            .await;
        open.push(body["data"]["leads"]["totalCount"].as_u64().unwrap_or(0));
    }
    // Rows go to the reps in turn: the first rep has the 1st, 4th, 7th…
    let turns: Vec<u64> = (0..3).map(|k| ((rows - k).div_ceil(3)) as u64).collect();
    assert_eq!(open, turns);

    // The turn saved with the last batch goes on where the file stopped.
    let lead = app
        .new_lead_json(&acme.token, json!({"name": "After the import"}))
        .await;
    assert_eq!(lead["owner"]["id"], reps[rows % 3].as_str(), "{lead}");
}

#[tokio::test]
async fn imported_leads_without_an_owner_are_assigned_by_the_rules() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let (_, reps, _) = three_reps(&app, &acme, "North").await;
    app.new_rule(
        &acme.token,
        json!({"name": "All reps", "strategy": "ROUND_ROBIN"}),
    )
    .await;
    let csv = "external_id,name,company,owner_email,status,closed_at\n\
         x1,Ada,Ada Co,,open,\n\
         x2,Bo,Bo Co,,open,\n\
         x3,Cy,Cy Co,rep1.north@acme.test,open,\n\
         x4,Di,Di Co,,won,2026-01-05\n";
    let body = app
        .graphql(
            Some(&acme.token),
            "mutation($input: ImportLeadsInput!) { importLeads(input: $input) { created errors { line message } } }",
            json!({"input": {"csv": csv, "dryRun": false}}),
        )
        .await;
    assert_eq!(body["data"]["importLeads"]["created"], 4, "{body}");
    let leads = app
        .graphql(
            Some(&acme.token),
            "{ leads(first: 10) { edges { node { externalId status owner { id } history { kind ruleName } } } } }",
            json!({}),
        )
        .await;
    let by_id: BTreeMap<String, Value> = leads["data"]["leads"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"]["externalId"].as_str().unwrap().to_owned(),
                e["node"].clone(),
            )
        })
        .collect();
    assert_eq!(by_id["x1"]["owner"]["id"], reps[0].as_str(), "{leads}");
    assert_eq!(by_id["x2"]["owner"]["id"], reps[1].as_str(), "{leads}");
    assert_eq!(
        by_id["x3"]["owner"]["id"],
        reps[0].as_str(),
        "the file's owner stays"
    );
    assert_eq!(
        by_id["x4"]["owner"],
        Value::Null,
        "a closed lead is not handed out"
    );
    let events = by_id["x1"]["history"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "ASSIGNED" && e["ruleName"] == "All reps"),
        "{events:?}"
    );
}

#[tokio::test]
async fn each_role_changes_only_the_assignment_settings_it_owns_with_an_audit_entry() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let (team, reps, rep_tokens) = three_reps(&app, &acme, "South").await;
    let other_team = app.new_team(&acme.token, "Elsewhere").await;
    let (_, manager) = app
        .member(&acme, "boss@acme.test", "MANAGER", &[&team])
        .await;

    let mine = app
        .create_rule(
            &manager,
            json!({"teamId": team, "name": "Ours", "strategy": "ROUND_ROBIN"}),
        )
        .await;
    assert!(mine["errors"].is_null(), "{mine}");
    let rule = mine["data"]["createAssignmentRule"]["rule"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for input in [
        json!({"teamId": other_team, "name": "Theirs", "strategy": "ROUND_ROBIN"}),
        json!({"name": "Company", "strategy": "ROUND_ROBIN"}),
    ] {
        let body = app.create_rule(&manager, input).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    }
    let body = app
        .create_rule(
            &rep_tokens[0],
            json!({"teamId": team, "name": "Me", "strategy": "ROUND_ROBIN"}),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    let body = app
        .graphql(
            Some(&rep_tokens[0]),
            "{ assignmentRules { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");

    let updated = app
        .graphql(
            Some(&manager),
            "mutation($input: UpdateAssignmentRuleInput!) { updateAssignmentRule(input: $input) { rule { active maxOpenPerRep } } }",
            json!({"input": {"id": rule, "active": false, "maxOpenPerRep": 5}}),
        )
        .await;
    assert_eq!(
        updated["data"]["updateAssignmentRule"]["rule"]["active"], false,
        "{updated}"
    );
    // An inactive rule assigns nothing.
    let lead = app
        .new_lead_json(&acme.token, json!({"name": "Idle", "teamId": team}))
        .await;
    assert_eq!(lead["owner"], Value::Null);

    // A rep marks themselves away but may not set their own capacity, nor
    // anyone else's absence; their manager may do both.
    let own_cap = app
        .set_availability(&rep_tokens[0], json!({"userId": reps[0], "capacity": 99}))
        .await;
    assert_eq!(error_code(&own_cap), "FORBIDDEN");
    let other = app
        .set_availability(&rep_tokens[0], json!({"userId": reps[1], "away": true}))
        .await;
    assert_eq!(error_code(&other), "FORBIDDEN");
    let by_manager = app
        .set_availability(
            &manager,
            json!({"userId": reps[1], "away": true, "capacity": 10}),
        )
        .await;
    assert_eq!(
        by_manager["data"]["setUserAvailability"]["user"],
        json!({"id": reps[1], "away": true, "capacity": 10})
    );
    let cleared = app
        .set_availability(&manager, json!({"userId": reps[1], "capacity": null}))
        .await;
    assert_eq!(
        cleared["data"]["setUserAvailability"]["user"]["capacity"],
        Value::Null,
        "{cleared}"
    );
    let bad = app
        .set_availability(&manager, json!({"userId": reps[1], "capacity": 0}))
        .await;
    assert_eq!(error_field(&bad), "input.capacity");

    let deleted = app
        .graphql(
            Some(&manager),
            "mutation($id: ID!) { deleteAssignmentRule(id: $id) { deletedId } }",
            json!({"id": rule}),
        )
        .await;
    assert_eq!(
        deleted["data"]["deleteAssignmentRule"]["deletedId"],
        rule.as_str()
    );

    let actions: Vec<String> = app
        .audit_entries(&acme.token)
        .await
        .iter()
        .filter_map(|e| e["action"].as_str().map(str::to_owned))
        .collect();
    for action in [
        "assignment_rule.created",
        "assignment_rule.updated",
        "assignment_rule.deleted",
        "user.availability_changed",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} missing: {actions:?}"
        );
    }
}

#[tokio::test]
async fn a_companys_assignment_rules_never_reach_another_company() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    let (_, acme_reps, _) = three_reps(&app, &acme, "Core").await;
    let rule = app
        .new_rule(
            &acme.token,
            json!({"name": "Acme turn", "strategy": "ROUND_ROBIN"}),
        )
        .await;

    let listed = app
        .graphql(Some(&globex.token), "{ assignmentRules { id } }", json!({}))
        .await;
    assert_eq!(listed["data"]["assignmentRules"], json!([]), "{listed}");
    let changed = app
        .graphql(
            Some(&globex.token),
            "mutation($input: UpdateAssignmentRuleInput!) { updateAssignmentRule(input: $input) { rule { id } } }",
            json!({"input": {"id": rule, "active": false}}),
        )
        .await;
    assert_eq!(error_code(&changed), "NOT_FOUND");
    let deleted = app
        .graphql(
            Some(&globex.token),
            "mutation($id: ID!) { deleteAssignmentRule(id: $id) { deletedId } }",
            json!({"id": rule}),
        )
        .await;
    assert_eq!(error_code(&deleted), "NOT_FOUND");
    let away = app
        .set_availability(&globex.token, json!({"userId": acme_reps[0], "away": true}))
        .await;
    assert_eq!(error_code(&away), "NOT_FOUND");
    let foreign_team = app
        .create_rule(
            &globex.token,
            json!({"teamId": acme.id, "name": "x", "strategy": "ROUND_ROBIN"}),
        )
        .await;
    assert_eq!(error_code(&foreign_team), "NOT_FOUND");

    // Globex has no rule: its new leads stay in its own pool.
    let lead = app
        .new_lead_json(&globex.token, json!({"name": "Globex lead"}))
        .await;
    assert_eq!(lead["owner"], Value::Null);
    let acme_rule = app
        .graphql(
            Some(&acme.token),
            "{ assignmentRules { active lastAssignedTo { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        acme_rule["data"]["assignmentRules"],
        json!([{"active": true, "lastAssignedTo": null}]),
        "Acme's rule untouched"
    );
}
