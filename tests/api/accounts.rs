//! Sign-up, tenant defaults, users, teams and roles.

use serde_json::json;

use crate::helpers::{error_code, error_field, spawn_app};

#[tokio::test]
async fn signing_up_creates_a_tenant_its_owner_and_english_defaults() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;

    let body = app
        .graphql(
            Some(&acme.token),
            "{ me { email role } tenant { slug locale timeZone nightlyHour }
               pipelines { name isDefault stages { key name kind position winProbability rottingDays } }
               signalTypes { key label urgent direction points halfLifeDays }
               leadFields { key label type options required } }",
            json!({}),
        )
        .await;
    let data = &body["data"];
    assert_eq!(
        data["me"],
        json!({"email": "owner@acme.test", "role": "OWNER"})
    );
    assert_eq!(
        data["tenant"],
        json!({"slug": "acme", "locale": "en", "timeZone": "Asia/Shanghai", "nightlyHour": 2})
    );

    let pipeline = &data["pipelines"][0];
    assert_eq!(pipeline["isDefault"], true);
    let keys: Vec<&str> = pipeline["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
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
    assert_eq!(pipeline["stages"][5]["kind"], "WON");
    assert_eq!(pipeline["stages"][7]["kind"], "LOST");
    assert_eq!(pipeline["stages"][0]["name"], "Lead");

    let urgent: Vec<&str> = data["signalTypes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["urgent"] == true)
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    for key in [
        "meeting_request",
        "urgent_quote_request",
        "executive_invited",
        "group_chat_created",
    ] {
        assert!(urgent.contains(&key), "{key} should be urgent: {urgent:?}");
    }
    let fields: Vec<&str> = data["leadFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
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

    let body = app
        .graphql(
            Some(&shop.token),
            "{ tenant { locale } pipelines { stages { name } } activeScoringModel { name } }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["tenant"]["locale"], "zh-CN");
    let names: Vec<&str> = body["data"]["pipelines"][0]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
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
    assert_eq!(body["data"]["activeScoringModel"]["name"], "默认评分模型");
}

#[tokio::test]
async fn the_default_scoring_model_is_active_with_the_recommended_weights_and_four_tiers() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;

    let body = app
        .graphql(
            Some(&acme.token),
            "{ activeScoringModel { version status team { id } activatedAt dimensions { key kind weight params } tiers { key minScore followUpEveryDays } overrides { kind } } }",
            json!({}),
        )
        .await;
    let model = &body["data"]["activeScoringModel"];
    assert_eq!(model["status"], "ACTIVE");
    assert_eq!(model["version"], 1);
    assert!(model["team"].is_null());
    assert!(model["activatedAt"].is_string());
    let weights: Vec<(String, f64)> = model["dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["key"].as_str().unwrap().to_owned(),
                d["weight"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(weights.iter().map(|(_, w)| w).sum::<f64>(), 100.0);
    let tiers: Vec<&str> = model["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .collect();
    assert_eq!(tiers, ["A", "B", "C", "D"]);
    assert_eq!(model["tiers"][0]["minScore"], 80.0);
    let overrides: Vec<&str> = model["overrides"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert!(
        overrides.contains(&"URGENT_SIGNAL")
            && overrides.contains(&"COLD")
            && overrides.contains(&"BANT"),
        "{overrides:?}"
    );

    let history = app
        .graphql(
            Some(&acme.token),
            "{ scoringModels { version status } }",
            json!({}),
        )
        .await;
    assert_eq!(
        history["data"]["scoringModels"],
        json!([{"version": 1, "status": "ACTIVE"}])
    );
}

#[tokio::test]
async fn a_taken_tenant_slug_is_a_conflict() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;

    let body = app
        .graphql(
            None,
            "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken } }",
            json!({"input": {"tenantName": "Other", "tenantSlug": "ACME", "email": "x@other.test", "password": "long enough password", "displayName": "X"}}),
        )
        .await;
    assert_eq!(error_code(&body), "CONFLICT");
    // The other company's id is not revealed.
    assert!(
        body["errors"][0]["extensions"]["existingId"].is_null(),
        "{body}"
    );
    assert!(!body.to_string().contains(&acme.id));
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
        let body = app
            .graphql(
                None,
                "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken } }",
                json!({"input": input}),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{key}: {body}");
        assert_eq!(error_field(&body), field);
    }
    // Nothing was half-created: the slug is still free.
    let body = app
        .graphql(
            None,
            "mutation($input: SignUpInput!) { signUp(input: $input) { tenant { slug } } }",
            json!({"input": valid}),
        )
        .await;
    assert_eq!(body["data"]["signUp"]["tenant"]["slug"], "acme");
}

#[tokio::test]
async fn an_owner_builds_a_team_and_its_members_see_it() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;

    let rep = app
        .create_user(&acme.token, "rep@acme.test", "REP", &[])
        .await;
    let rep_id = rep["data"]["createUser"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let team = app.create_team(&acme.token, "Enterprise", &[&rep_id]).await;
    let team_id = team["data"]["createTeam"]["team"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        team["data"]["createTeam"]["team"]["members"],
        json!([{"id": rep_id, "email": "rep@acme.test"}])
    );

    let manager = app
        .create_user(&acme.token, "manager@acme.test", "MANAGER", &[&team_id])
        .await;
    assert_eq!(
        manager["data"]["createUser"]["user"]["teams"],
        json!([{"id": team_id, "name": "Enterprise"}])
    );

    let listing = app
        .graphql(
            Some(&acme.token),
            "{ users { email role teams { name } } teams { name members { email } } }",
            json!({}),
        )
        .await;
    let users = listing["data"]["users"].as_array().unwrap();
    assert_eq!(users.len(), 3);
    let members: Vec<&str> = listing["data"]["teams"][0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap())
        .collect();
    assert_eq!(members.len(), 2);
    assert!(members.contains(&"manager@acme.test") && members.contains(&"rep@acme.test"));
}

#[tokio::test]
async fn a_duplicate_email_within_a_tenant_is_a_conflict_naming_the_existing_user() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let first = app
        .create_user(&acme.token, "rep@acme.test", "REP", &[])
        .await;

    let again = app
        .create_user(&acme.token, "REP@acme.test", "REP", &[])
        .await;
    assert_eq!(error_code(&again), "CONFLICT");
    assert_eq!(
        again["errors"][0]["extensions"]["existingId"],
        first["data"]["createUser"]["user"]["id"]
    );

    // The same person may work for two companies.
    let globex = app.sign_up_tenant("globex").await;
    let elsewhere = app
        .create_user(&globex.token, "rep@acme.test", "REP", &[])
        .await;
    assert!(elsewhere["data"]["createUser"].is_object(), "{elsewhere}");
}

#[tokio::test]
async fn a_rep_cannot_create_users_or_teams_or_list_users() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let rep = app.user_with_role(&acme, "REP").await;

    assert_eq!(
        error_code(&app.create_user(&rep, "new@acme.test", "REP", &[]).await),
        "FORBIDDEN"
    );
    assert_eq!(
        error_code(&app.create_team(&rep, "Mine", &[]).await),
        "FORBIDDEN"
    );
    assert_eq!(
        error_code(&app.graphql(Some(&rep), "{ users { id } }", json!({})).await),
        "FORBIDDEN"
    );
    // but can read the configuration that drives their work
    let config = app
        .graphql(
            Some(&rep),
            "{ me { role } teams { name } pipelines { name } }",
            json!({}),
        )
        .await;
    assert_eq!(config["data"]["me"]["role"], "REP");
}

#[tokio::test]
async fn a_manager_cannot_create_users_and_an_admin_cannot_make_an_owner() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let manager = app.user_with_role(&acme, "MANAGER").await;
    let admin = app.user_with_role(&acme, "ADMIN").await;

    assert_eq!(
        error_code(&app.create_user(&manager, "x@acme.test", "REP", &[]).await),
        "FORBIDDEN"
    );
    assert_eq!(
        error_code(
            &app.create_user(&admin, "boss@acme.test", "OWNER", &[])
                .await
        ),
        "FORBIDDEN"
    );
    let rep = app.create_user(&admin, "rep@acme.test", "REP", &[]).await;
    assert_eq!(rep["data"]["createUser"]["user"]["role"], "REP");
}

#[tokio::test]
async fn creating_a_user_with_a_short_password_names_the_field() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let body = app
        .graphql(
            Some(&acme.token),
            "mutation($input: CreateUserInput!) { createUser(input: $input) { user { id } } }",
            json!({"input": {"email": "rep@acme.test", "password": "123456789", "displayName": "Rep", "role": "REP"}}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(error_field(&body), "input.password");
}

#[tokio::test]
async fn everything_but_sign_up_login_and_refresh_needs_a_token() {
    let app = spawn_app().await;
    for query in [
        "{ me { id } }",
        "{ tenant { id } }",
        "{ teams { id } }",
        "{ pipelines { id } }",
        "{ activeScoringModel { id } }",
    ] {
        assert_eq!(
            error_code(&app.graphql(None, query, json!({})).await),
            "UNAUTHENTICATED",
            "{query}"
        );
    }
}

#[tokio::test]
async fn the_sign_up_and_login_answers_can_include_the_users_teams() {
    let app = spawn_app().await;
    let body = app
        .graphql(
            None,
            "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken user { email teams { name members { email } } } } }",
            json!({"input": {"tenantName": "Acme", "tenantSlug": "acme", "email": "ana@acme.test", "password": "long enough password", "displayName": "Ana"}}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"]["signUp"]["user"]["teams"], json!([]));
    let token = body["data"]["signUp"]["accessToken"].as_str().unwrap();
    let team = app.create_team(token, "Enterprise", &[]).await;
    assert!(team["data"]["createTeam"].is_object());
    let login = app
        .graphql(
            None,
            "mutation { login(input: {tenantSlug: \"acme\", email: \"ana@acme.test\", password: \"long enough password\"}) { user { teams { name } } } }",
            json!({}),
        )
        .await;
    assert!(login["errors"].is_null(), "{login}");
    assert_eq!(login["data"]["login"]["user"]["teams"], json!([]));
}
