//! Sign-up, tenant defaults, users, teams and roles.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::helpers::{Id, Member, Name, SignedUpSlug, TeamName, spawn_app};

/// `{ key }` of anything.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Key {
    key: String,
}

#[tokio::test]
async fn signing_up_creates_a_tenant_owned_by_its_first_user_with_english_defaults() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Defaults {
        me: Value,
        tenant: Value,
        pipelines: Vec<Pipeline>,
        signal_types: Vec<SignalType>,
        lead_fields: Vec<Key>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Pipeline {
        is_default: bool,
        stages: Vec<Stage>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Stage {
        key: String,
        name: String,
        kind: String,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SignalType {
        key: String,
        urgent: bool,
    }
    let data: Defaults = app
        .data(
            Some(&acme.token),
            "{ me { email role } tenant { slug locale timeZone nightlyHour }
               pipelines { isDefault stages { key name kind } }
               signalTypes { key urgent }
               leadFields { key } }",
            json!({}),
        )
        .await;
    // Compared whole: every field asked is named here.
    assert_eq!(
        data.me,
        json!({"email": "owner@acme.test", "role": "OWNER"})
    );
    assert_eq!(
        data.tenant,
        json!({"slug": "acme", "locale": "en", "timeZone": "Asia/Shanghai", "nightlyHour": 2})
    );

    let pipeline = &data.pipelines[0];
    assert!(pipeline.is_default);
    let keys: Vec<&str> = pipeline.stages.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "lead",
            "initial_contact",
            "needs_discovery",
            "proposal",
            "intent_confirmed",
            "won",
            "post_sale",
            "lost"
        ]
    );
    assert_eq!(pipeline.stages[5].kind, "WON");
    assert_eq!(pipeline.stages[7].kind, "LOST");
    assert_eq!(pipeline.stages[0].name, "Lead");

    let urgent: Vec<&str> = data
        .signal_types
        .iter()
        .filter(|s| s.urgent)
        .map(|s| s.key.as_str())
        .collect();
    for key in [
        "meeting_request",
        "urgent_quote_request",
        "executive_invited",
        "group_chat_created",
    ] {
        assert!(urgent.contains(&key), "{key} should be urgent: {urgent:?}");
    }
    let fields: Vec<&str> = data.lead_fields.iter().map(|f| f.key.as_str()).collect();
    for key in [
        "budget",
        "timeline",
        "authority",
        "need",
        "source",
        "company_size",
    ] {
        assert!(fields.contains(&key), "missing lead field {key}");
    }
}

#[tokio::test]
async fn a_chinese_tenant_gets_its_pipeline_named_in_chinese() {
    let app = spawn_app().await;
    let shop = app.sign_up_tenant_in("huadong-sales", "zh-CN").await;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Localised {
        tenant: Locale,
        pipelines: Vec<Stages>,
        active_scoring_model: Name,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Locale {
        locale: String,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Stages {
        stages: Vec<Name>,
    }
    let data: Localised = app
        .data(
            Some(&shop.token),
            "{ tenant { locale } pipelines { stages { name } } activeScoringModel { name } }",
            json!({}),
        )
        .await;
    assert_eq!(data.tenant.locale, "zh-CN");
    let names: Vec<&str> = data.pipelines[0]
        .stages
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "线索阶段",
            "初步接触",
            "需求了解",
            "方案报价",
            "意向确认",
            "签约/成交",
            "后续维护",
            "已流失"
        ]
    );
    assert_eq!(data.active_scoring_model.name, "默认评分模型");
}

#[tokio::test]
async fn a_new_tenant_scores_with_the_recommended_four_tier_model() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Model {
        version: i64,
        status: String,
        team: Option<Id>,
        activated_at: Option<String>,
        dimensions: Vec<Dimension>,
        tiers: Vec<Tier>,
        overrides: Vec<Override>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Dimension {
        key: String,
        weight: f64,
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Tier {
        key: String,
        min_score: f64,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Override {
        kind: String,
    }
    let model: Model = app
        .root(
            Some(&acme.token),
            "{ activeScoringModel { version status team { id } activatedAt dimensions { key weight } tiers { key minScore } overrides { kind } } }",
            json!({}),
        )
        .await;
    assert_eq!(model.status, "ACTIVE");
    assert_eq!(model.version, 1);
    assert_eq!(model.team, None);
    assert!(model.activated_at.is_some(), "{model:?}");
    let weights: f64 = model.dimensions.iter().map(|d| d.weight).sum();
    assert_eq!(weights, 100.0, "{:?}", model.dimensions);
    assert!(model.dimensions.iter().any(|d| d.key == "budget"));
    let tiers: Vec<&str> = model.tiers.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(tiers, ["A", "B", "C", "D"]);
    assert_eq!(model.tiers[0].min_score, 80.0);
    let overrides: Vec<&str> = model.overrides.iter().map(|o| o.kind.as_str()).collect();
    assert!(
        overrides.contains(&"URGENT_SIGNAL")
            && overrides.contains(&"COLD")
            && overrides.contains(&"BANT"),
        "{overrides:?}"
    );

    let history: Value = app
        .root(
            Some(&acme.token),
            "{ scoringModels { version status } }",
            json!({}),
        )
        .await;
    assert_eq!(history, json!([{"version": 1, "status": "ACTIVE"}]));
}

#[tokio::test]
async fn a_taken_tenant_slug_is_a_conflict() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;

    let refused = app
        .refused(
            None,
            "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken } }",
            json!({"input": {"tenantName": "Other", "tenantSlug": "ACME", "email": "x@other.test", "password": "long enough password", "displayName": "X"}}),
        )
        .await;
    assert_eq!(refused.code(), "CONFLICT");
    // The other company's id is not revealed.
    assert_eq!(refused.errors[0].extensions.existing_id, None, "{refused}");
    assert!(!refused.body.to_string().contains(&acme.id));
}

#[tokio::test]
async fn bad_sign_up_input_is_refused_naming_the_field() {
    let app = spawn_app().await;
    let valid = json!({"tenantName": "Acme", "tenantSlug": "acme", "email": "ana@acme.test", "password": "long enough password", "displayName": "Ana"});
    let cases = [
        ("password", json!("short"), "input.password"),
        ("email", json!("not-an-email"), "input.email"),
        ("tenantSlug", json!("Not A Slug!"), "input.tenantSlug"),
        ("timeZone", json!("Mars/Olympus"), "input.timeZone"),
        ("locale", json!("fr"), "input.locale"),
        ("displayName", json!("   "), "input.displayName"),
    ];
    for (key, value, field) in cases {
        let mut input = valid.clone();
        input[key] = value;
        let refused = app
            .refused(
                None,
                "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken } }",
                json!({"input": input}),
            )
            .await;
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{key}: {refused}");
        assert_eq!(refused.field(), field);
    }
    // Nothing was half-created: the slug is still free.
    let signed_up: SignedUpSlug = app
        .root(
            None,
            "mutation($input: SignUpInput!) { signUp(input: $input) { tenant { slug } } }",
            json!({"input": valid}),
        )
        .await;
    assert_eq!(signed_up.tenant.slug, "acme");
}

#[tokio::test]
async fn the_members_of_a_team_an_owner_built_see_it() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;

    let rep = app
        .try_create_user(&acme.token, "rep@acme.test", "REP", &[])
        .await
        .expect("the owner creates a rep");
    let team = app
        .try_create_team(&acme.token, "Enterprise", &[&rep.id])
        .await
        .expect("the owner creates a team");
    assert_eq!(
        team.members,
        [Member {
            id: rep.id.clone(),
            email: "rep@acme.test".into()
        }]
    );

    let manager = app
        .try_create_user(&acme.token, "manager@acme.test", "MANAGER", &[&team.id])
        .await
        .expect("the owner creates a manager");
    assert_eq!(
        manager.teams,
        [TeamName {
            id: team.id.clone(),
            name: "Enterprise".into()
        }]
    );

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Listing {
        users: Vec<ListedUser>,
        teams: Vec<ListedTeam>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ListedUser {
        email: String,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ListedTeam {
        name: String,
        members: Vec<ListedUser>,
    }
    let listing: Listing = app
        .data(
            Some(&acme.token),
            "{ users { email } teams { name members { email } } }",
            json!({}),
        )
        .await;
    assert_eq!(listing.users.len(), 3);
    assert_eq!(listing.teams[0].name, "Enterprise");
    let members: Vec<&str> = listing.teams[0]
        .members
        .iter()
        .map(|m| m.email.as_str())
        .collect();
    assert_eq!(members.len(), 2);
    assert!(members.contains(&"manager@acme.test") && members.contains(&"rep@acme.test"));
}

#[tokio::test]
async fn a_duplicate_email_within_a_tenant_is_a_conflict_naming_the_existing_user() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let first = app
        .try_create_user(&acme.token, "rep@acme.test", "REP", &[])
        .await
        .expect("the first rep is created");

    let again = app
        .try_create_user(&acme.token, "REP@acme.test", "REP", &[])
        .await
        .expect_err("the same email again is refused");
    assert_eq!(again.code(), "CONFLICT");
    assert_eq!(again.errors[0].extensions.existing_id, Some(first.id));

    // The same person may work for two companies.
    let globex = app.sign_up_tenant("globex").await;
    let elsewhere = app
        .try_create_user(&globex.token, "rep@acme.test", "REP", &[])
        .await
        .expect("another company may have the same person");
    assert_eq!(elsewhere.email, "rep@acme.test");
}

#[tokio::test]
async fn a_rep_cannot_create_users_or_teams_or_list_users() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let rep = app.user_with_role(&acme, "REP").await;

    let refused = app.try_create_user(&rep, "new@acme.test", "REP", &[]).await;
    assert_eq!(refused.expect_err("a rep").code(), "FORBIDDEN");
    let refused = app.try_create_team(&rep, "Mine", &[]).await;
    assert_eq!(refused.expect_err("a rep").code(), "FORBIDDEN");
    let refused = app.refused(Some(&rep), "{ users { id } }", json!({})).await;
    assert_eq!(refused.code(), "FORBIDDEN");
    // but can read the configuration that drives their work
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        me: Role,
        teams: Vec<Name>,
        pipelines: Vec<Name>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Role {
        role: String,
    }
    let config: Config = app
        .data(
            Some(&rep),
            "{ me { role } teams { name } pipelines { name } }",
            json!({}),
        )
        .await;
    assert_eq!(config.me.role, "REP");
    assert!(config.teams.is_empty());
    assert_eq!(config.pipelines.len(), 1);
}

#[tokio::test]
async fn users_are_created_by_admins_up_to_their_own_rank() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let manager = app.user_with_role(&acme, "MANAGER").await;
    let admin = app.user_with_role(&acme, "ADMIN").await;

    let refused = app
        .try_create_user(&manager, "x@acme.test", "REP", &[])
        .await;
    assert_eq!(refused.expect_err("a manager").code(), "FORBIDDEN");
    let refused = app
        .try_create_user(&admin, "boss@acme.test", "OWNER", &[])
        .await;
    assert_eq!(refused.expect_err("an owner").code(), "FORBIDDEN");
    let rep = app
        .try_create_user(&admin, "rep@acme.test", "REP", &[])
        .await
        .expect("an admin creates a rep");
    assert_eq!(rep.role, "REP");
}

#[tokio::test]
async fn creating_a_user_with_a_short_password_names_the_field() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let refused = app
        .refused(
            Some(&acme.token),
            "mutation($input: CreateUserInput!) { createUser(input: $input) { user { id } } }",
            json!({"input": {"email": "rep@acme.test", "password": "123456789", "displayName": "Rep", "role": "REP"}}),
        )
        .await;
    assert_eq!(refused.code(), "BAD_USER_INPUT");
    assert_eq!(refused.field(), "input.password");
}

#[tokio::test]
async fn every_operation_but_signing_in_needs_a_token() {
    let app = spawn_app().await;
    for query in [
        "{ me { id } }",
        "{ tenant { id } }",
        "{ teams { id } }",
        "{ pipelines { id } }",
        "{ activeScoringModel { id } }",
    ] {
        let refused = app.refused(None, query, json!({})).await;
        assert_eq!(refused.code(), "UNAUTHENTICATED", "{query}");
    }
}

#[tokio::test]
async fn a_user_reads_their_teams_from_the_answer_that_signs_them_in() {
    let app = spawn_app().await;
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct SignedUp {
        access_token: String,
        user: SignedIn,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SignedIn {
        email: Option<String>,
        teams: Vec<Value>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct LoggedIn {
        user: SignedIn,
    }
    let signed_up: SignedUp = app
        .root(
            None,
            "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken user { email teams { name members { email } } } } }",
            json!({"input": {"tenantName": "Acme", "tenantSlug": "acme", "email": "ana@acme.test", "password": "long enough password", "displayName": "Ana"}}),
        )
        .await;
    assert_eq!(signed_up.user.email.as_deref(), Some("ana@acme.test"));
    assert!(signed_up.user.teams.is_empty(), "{signed_up:?}");
    app.try_create_team(&signed_up.access_token, "Enterprise", &[])
        .await
        .expect("the owner creates a team");
    let login: LoggedIn = app
        .root(
            None,
            "mutation { login(input: {tenantSlug: \"acme\", email: \"ana@acme.test\", password: \"long enough password\"}) { user { teams { name } } } }",
            json!({}),
        )
        .await;
    // The owner is not a member of the team they made.
    assert!(login.user.teams.is_empty(), "{login:?}");
}
