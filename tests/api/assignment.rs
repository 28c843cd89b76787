//! Assignment rules: unowned leads reach reps by round-robin or by room
//! left under a cap, filtered by tier, source or field values; away reps are
//! skipped; rules apply on create, on import and in the nightly job; every
//! automatic assignment shows on the lead's history with its rule; rules
//! and availability are audited and confined to their company and roles.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    helpers::{Connection, GraphqlErrors, Id, Tenant, TestApp, spawn_app},
    helpers::{strong, weak},
};

const RULE: &str = "rule { id name strategy position active maxOpenPerRep team { id }
    filter { tiers sources fields { key values } } lastAssignedTo { id } }";

/// An assignment rule as [`RULE`] asks for it.
// Every field the query asks for is named, though not every test reads
// every one.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Rule {
    id: String,
    name: String,
    strategy: String,
    position: i64,
    active: bool,
    max_open_per_rep: Option<i64>,
    team: Option<Id>,
    filter: RuleFilter,
    last_assigned_to: Option<Id>,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFilter {
    tiers: Vec<String>,
    sources: Vec<String>,
    fields: Vec<FieldFilter>,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldFilter {
    key: String,
    values: Vec<String>,
}

/// A user's `{ id away capacity }`.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Availability {
    id: String,
    away: bool,
    capacity: Option<i64>,
}

/// What `importLeads` answers to `{ created errors { line message } }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Imported {
    created: usize,
    errors: Vec<Value>,
}

const IMPORT: &str = "mutation($input: ImportLeadsInput!) { importLeads(input: $input) { created errors { line message } } }";

impl TestApp {
    /// Creates a rule: the rule, or why it was refused.
    async fn create_rule(&self, token: &str, input: Value) -> Result<Rule, GraphqlErrors> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Payload {
            rule: Rule,
        }
        let payload: Payload = self
            .query_root(
                Some(token),
                &format!(
                    "mutation($input: CreateAssignmentRuleInput!) {{ createAssignmentRule(input: $input) {{ {RULE} }} }}"
                ),
                json!({ "input": input }),
            )
            .await?;
        Ok(payload.rule)
    }

    /// Creates a rule that must be accepted; its id.
    async fn new_rule(&self, token: &str, input: Value) -> String {
        self.create_rule(token, input)
            .await
            .unwrap_or_else(|e| panic!("createAssignmentRule failed: {e}"))
            .id
    }

    /// Sets a user's availability: the user's, or why it was refused.
    async fn set_availability(
        &self,
        token: &str,
        input: Value,
    ) -> Result<Availability, GraphqlErrors> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Payload {
            user: Availability,
        }
        let payload: Payload = self
            .query_root(
                Some(token),
                "mutation($input: SetUserAvailabilityInput!) { setUserAvailability(input: $input) { user { id away capacity } } }",
                json!({ "input": input }),
            )
            .await?;
        Ok(payload.user)
    }

    /// The owner of a lead as the lead reads; `None` for the pool.
    async fn owner_of(&self, token: &str, id: &str) -> Option<String> {
        self.lead_by_id(token, id).await.owner.map(|o| o.id)
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
        ids.push(app.new_lead(&tenant.token, input).await.id);
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
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct History {
        history: Vec<Event>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Event {
        kind: String,
        actor: Option<Id>,
        new_owner: Option<Id>,
        rule_id: Option<String>,
        rule_name: Option<String>,
    }
    let lead: History = app
        .root(
            Some(&acme.token),
            "query($id: ID!) { lead(id: $id) { history { kind actor { id } newOwner { id } ruleId ruleName } } }",
            json!({"id": leads[0]}),
        )
        .await;
    let assigned = lead
        .history
        .iter()
        .find(|e| e.kind == "ASSIGNED")
        .unwrap_or_else(|| panic!("no ASSIGNED event: {lead:?}"));
    assert!(assigned.actor.is_none(), "no person did it");
    assert_eq!(
        assigned.new_owner.as_ref(),
        Some(&Id {
            id: reps[0].clone()
        })
    );
    assert_eq!(assigned.rule_id.as_deref(), Some(rule.as_str()));
    assert_eq!(assigned.rule_name.as_deref(), Some("East in turn"));

    // The rep who would be next marks themselves away: the turn passes them.
    let next = &reps[1];
    let away = app
        .set_availability(&rep_tokens[1], json!({"userId": next, "away": true}))
        .await
        .unwrap_or_else(|e| panic!("a rep marks themselves away: {e}"));
    assert!(away.away, "{away:?}");
    let more = pool_leads(&app, &acme, "Later", 4, json!({"teamId": team})).await;
    let counts = tally(&app, &acme.token, &more).await;
    assert_eq!(counts.get(&Some(next.clone())), None, "{counts:?}");
    assert_eq!(counts.get(&Some(reps[0].clone())), Some(&2), "{counts:?}");
    assert_eq!(counts.get(&Some(reps[2].clone())), Some(&2), "{counts:?}");

    // A lead given an owner, or created by a rep, is not touched.
    let given = app
        .new_lead(
            &acme.token,
            json!({"name": "Given", "teamId": team, "ownerId": reps[2]}),
        )
        .await;
    assert_eq!(given.owner_id(), Some(reps[2].as_str()));
    let own = app
        .new_lead(&rep_tokens[0], json!({"name": "Mine", "teamId": team}))
        .await;
    assert_eq!(own.owner_id(), Some(reps[0].as_str()));
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
        .await
        .expect_err("a rule by room needs a cap");
    assert_eq!(refused.code(), "BAD_USER_INPUT");
    assert_eq!(refused.field(), "input.maxOpenPerRep");
    app.new_rule(
        &acme.token,
        json!({"teamId": team, "name": "By room", "strategy": "REMAINING_CAPACITY", "maxOpenPerRep": 2}),
    )
    .await;
    // The third rep may hold only one open lead.
    let capped = app
        .set_availability(&acme.token, json!({"userId": reps[2], "capacity": 1}))
        .await
        .unwrap_or_else(|e| panic!("the owner sets a capacity: {e}"));
    assert_eq!(capped.capacity, Some(1), "{capped:?}");

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
    let lost = app
        .lead_mutation(
            &acme.token,
            "closeLead",
            "CloseLeadInput",
            json!({"id": closed, "outcome": "LOST", "reason": "went elsewhere"}),
        )
        .await
        .unwrap_or_else(|e| panic!("closeLead failed: {e}"));
    assert_eq!(lost.status, "LOST", "{lost:?}");
    let run: Id = app
        .root(
            Some(&acme.token),
            "mutation { runRescoring(input: {}) { id } }",
            json!({}),
        )
        .await;
    let finished = app.finished_run(&acme.token, &run.id).await;
    assert_eq!(finished.status, "SUCCEEDED", "{finished:?}");
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Assigned {
        id: String,
        leads_assigned: i64,
    }
    let runs: Vec<Assigned> = app
        .root(
            Some(&acme.token),
            "{ jobRuns(first: 5) { id leadsAssigned } }",
            json!({}),
        )
        .await;
    let this = runs
        .iter()
        .find(|r| r.id == run.id)
        .unwrap_or_else(|| panic!("the run is listed: {runs:?}"));
    assert_eq!(this.leads_assigned, 1, "{runs:?}");
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
        .new_lead(
            &acme.token,
            json!({"name": "Hot", "teamId": team, "source": "web", "attributes": strong()}),
        )
        .await;
    assert_eq!(hot.tier, "B", "{hot:?}");
    assert!(
        team_reps.iter().any(|r| hot.owner_id() == Some(r.as_str())),
        "{hot:?}"
    );

    // A weak lead of the same team fails the tier filter: the company rule
    // takes it, among the team's reps since the lead has a team.
    let cold = app
        .new_lead(
            &acme.token,
            json!({"name": "Cold", "teamId": team, "source": "web", "attributes": weak()}),
        )
        .await;
    assert_ne!(cold.tier, "B");
    assert!(
        team_reps
            .iter()
            .any(|r| cold.owner_id() == Some(r.as_str())),
        "{cold:?}"
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
        let refused = app
            .create_rule(
                &acme.token,
                json!({"name": "Bad", "strategy": "ROUND_ROBIN", "filter": filter}),
            )
            .await
            .expect_err("a bad filter");
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{refused}");
        assert_eq!(refused.field(), field, "{refused}");
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Named {
        name: String,
        team: Option<Id>,
    }
    let rules: Vec<Named> = app
        .root(
            Some(&acme.token),
            "{ assignmentRules { name team { id } } }",
            json!({}),
        )
        .await;
    let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    assert!(rules[0].team.is_none(), "the company's rule: {rules:?}");
    assert_eq!(
        rules[1].team.as_ref(),
        Some(&Id { id: team.clone() }),
        "the team's rule: {rules:?}"
    );
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
    let imported: Imported = app
        .root(
            Some(&acme.token),
            IMPORT,
            json!({"input": {"csv": csv, "dryRun": false}}),
        )
        .await;
    assert_eq!(imported.created, rows, "{imported:?}");
    assert!(imported.errors.is_empty(), "{imported:?}");

    let mut open = Vec::new();
    for rep in &reps {
        let leads: Connection<Value> = app
            .root(
                Some(&acme.token),
                "query($rep: ID!) { leads(first: 1, filter: {ownerId: $rep}) { totalCount } }",
                json!({"rep": rep}),
            )
            .await;
        open.push(leads.total_count.expect("totalCount was asked"));
    }
    // Rows go to the reps in turn: the first rep has the 1st, 4th, 7th…
    let turns: Vec<i64> = (0..3).map(|k| ((rows - k).div_ceil(3)) as i64).collect();
    assert_eq!(open, turns);

    // The turn saved with the last batch goes on where the file stopped.
    let lead = app
        .new_lead(&acme.token, json!({"name": "After the import"}))
        .await;
    assert_eq!(lead.owner_id(), Some(reps[rows % 3].as_str()), "{lead:?}");
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
    let imported: Imported = app
        .root(
            Some(&acme.token),
            IMPORT,
            json!({"input": {"csv": csv, "dryRun": false}}),
        )
        .await;
    assert_eq!(imported.created, 4, "{imported:?}");
    assert!(imported.errors.is_empty(), "{imported:?}");
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Node {
        external_id: String,
        status: String,
        owner: Option<Id>,
        history: Vec<Event>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Event {
        kind: String,
        rule_name: Option<String>,
    }
    impl Node {
        fn owner_id(&self) -> Option<&str> {
            self.owner.as_ref().map(|o| o.id.as_str())
        }
    }
    let leads: Connection<Node> = app
        .root(
            Some(&acme.token),
            "{ leads(first: 10) { edges { node { externalId status owner { id } history { kind ruleName } } } } }",
            json!({}),
        )
        .await;
    let by_id: BTreeMap<&str, &Node> = leads.nodes().map(|n| (n.external_id.as_str(), n)).collect();
    assert_eq!(by_id["x1"].owner_id(), Some(reps[0].as_str()), "{leads:?}");
    assert_eq!(by_id["x2"].owner_id(), Some(reps[1].as_str()), "{leads:?}");
    assert_eq!(
        by_id["x3"].owner_id(),
        Some(reps[0].as_str()),
        "the file's owner stays"
    );
    assert_eq!(by_id["x4"].status, "WON", "{leads:?}");
    assert_eq!(
        by_id["x4"].owner_id(),
        None,
        "a closed lead is not handed out"
    );
    let events = &by_id["x1"].history;
    assert!(
        events
            .iter()
            .any(|e| e.kind == "ASSIGNED" && e.rule_name.as_deref() == Some("All reps")),
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

    let rule = app
        .create_rule(
            &manager,
            json!({"teamId": team, "name": "Ours", "strategy": "ROUND_ROBIN"}),
        )
        .await
        .unwrap_or_else(|e| panic!("a manager makes a rule for their team: {e}"))
        .id;
    for input in [
        json!({"teamId": other_team, "name": "Theirs", "strategy": "ROUND_ROBIN"}),
        json!({"name": "Company", "strategy": "ROUND_ROBIN"}),
    ] {
        let refused = app
            .create_rule(&manager, input)
            .await
            .expect_err("not the manager's team");
        assert_eq!(refused.code(), "FORBIDDEN", "{refused}");
    }
    let refused = app
        .create_rule(
            &rep_tokens[0],
            json!({"teamId": team, "name": "Me", "strategy": "ROUND_ROBIN"}),
        )
        .await
        .expect_err("a rep makes no rules");
    assert_eq!(refused.code(), "FORBIDDEN");
    let refused = app
        .refused(
            Some(&rep_tokens[0]),
            "{ assignmentRules { id } }",
            json!({}),
        )
        .await;
    assert_eq!(refused.code(), "FORBIDDEN");

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Updated {
        rule: UpdatedRule,
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct UpdatedRule {
        active: bool,
        max_open_per_rep: Option<i64>,
    }
    let updated: Updated = app
        .root(
            Some(&manager),
            "mutation($input: UpdateAssignmentRuleInput!) { updateAssignmentRule(input: $input) { rule { active maxOpenPerRep } } }",
            json!({"input": {"id": rule, "active": false, "maxOpenPerRep": 5}}),
        )
        .await;
    assert!(!updated.rule.active, "{updated:?}");
    assert_eq!(updated.rule.max_open_per_rep, Some(5), "{updated:?}");
    // An inactive rule assigns nothing.
    let lead = app
        .new_lead(&acme.token, json!({"name": "Idle", "teamId": team}))
        .await;
    assert_eq!(lead.owner_id(), None);

    // A rep marks themselves away but may not set their own capacity, nor
    // anyone else's absence; their manager may do both.
    let own_cap = app
        .set_availability(&rep_tokens[0], json!({"userId": reps[0], "capacity": 99}))
        .await
        .expect_err("a rep sets no capacity");
    assert_eq!(own_cap.code(), "FORBIDDEN");
    let other = app
        .set_availability(&rep_tokens[0], json!({"userId": reps[1], "away": true}))
        .await
        .expect_err("a rep marks only themselves away");
    assert_eq!(other.code(), "FORBIDDEN");
    let by_manager = app
        .set_availability(
            &manager,
            json!({"userId": reps[1], "away": true, "capacity": 10}),
        )
        .await
        .unwrap_or_else(|e| panic!("the manager sets both: {e}"));
    assert_eq!(
        by_manager,
        Availability {
            id: reps[1].clone(),
            away: true,
            capacity: Some(10)
        }
    );
    let cleared = app
        .set_availability(&manager, json!({"userId": reps[1], "capacity": null}))
        .await
        .unwrap_or_else(|e| panic!("the manager clears the capacity: {e}"));
    assert_eq!(cleared.capacity, None, "{cleared:?}");
    let bad = app
        .set_availability(&manager, json!({"userId": reps[1], "capacity": 0}))
        .await
        .expect_err("a capacity of 0");
    assert_eq!(bad.field(), "input.capacity");

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Deleted {
        deleted_id: String,
    }
    let deleted: Deleted = app
        .root(
            Some(&manager),
            "mutation($id: ID!) { deleteAssignmentRule(id: $id) { deletedId } }",
            json!({"id": rule}),
        )
        .await;
    assert_eq!(deleted.deleted_id, rule);

    let actions: Vec<String> = app
        .audit_entries(&acme.token)
        .await
        .into_iter()
        .map(|e| e.action)
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

    let listed: Vec<Id> = app
        .root(Some(&globex.token), "{ assignmentRules { id } }", json!({}))
        .await;
    assert!(listed.is_empty(), "{listed:?}");
    let changed = app
        .refused(
            Some(&globex.token),
            "mutation($input: UpdateAssignmentRuleInput!) { updateAssignmentRule(input: $input) { rule { id } } }",
            json!({"input": {"id": rule, "active": false}}),
        )
        .await;
    assert_eq!(changed.code(), "NOT_FOUND");
    let deleted = app
        .refused(
            Some(&globex.token),
            "mutation($id: ID!) { deleteAssignmentRule(id: $id) { deletedId } }",
            json!({"id": rule}),
        )
        .await;
    assert_eq!(deleted.code(), "NOT_FOUND");
    let away = app
        .set_availability(&globex.token, json!({"userId": acme_reps[0], "away": true}))
        .await
        .expect_err("another company's rep");
    assert_eq!(away.code(), "NOT_FOUND");
    let foreign_team = app
        .create_rule(
            &globex.token,
            json!({"teamId": acme.id, "name": "x", "strategy": "ROUND_ROBIN"}),
        )
        .await
        .expect_err("another company's team");
    assert_eq!(foreign_team.code(), "NOT_FOUND");

    // Globex has no rule: its new leads stay in its own pool.
    let lead = app
        .new_lead(&globex.token, json!({"name": "Globex lead"}))
        .await;
    assert_eq!(lead.owner_id(), None);
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Untouched {
        active: bool,
        last_assigned_to: Option<Id>,
    }
    let acme_rules: Vec<Untouched> = app
        .root(
            Some(&acme.token),
            "{ assignmentRules { active lastAssignedTo { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(acme_rules.len(), 1, "{acme_rules:?}");
    assert!(
        acme_rules[0].active && acme_rules[0].last_assigned_to.is_none(),
        "Acme's rule untouched: {acme_rules:?}"
    );
}
