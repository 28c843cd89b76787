//! Leaks inside a tenant (issue 17, item 12): what a rep or a manager may
//! not see of their colleagues' work stays hidden through the side doors
//! too: the duplicate check, a team's members, the funnel, closing pool
//! leads.

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, error_message, spawn_app};

/// Creates a lead as `token` and returns the whole response.
async fn create(app: &TestApp, token: &str, input: Value) -> Value {
    app.create_lead_json(token, input).await
}

#[tokio::test]
async fn a_duplicate_of_a_lead_the_caller_cannot_see_answers_conflict_without_its_name_or_id() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let (ada, ada_token) = app.member(&acme, "ada@acme.test", "REP", &[]).await;
    let (_, bo_token) = app.member(&acme, "bo@acme.test", "REP", &[]).await;
    let secret = app
        .new_lead_json(
            &acme.token,
            json!({"name": "Secret Deal", "email": "cfo@bigco.example", "phone": "+1 555 0100",
                   "ownerId": ada, "externalId": "CRM-7"}),
        )
        .await;
    let secret_id = secret["id"].as_str().unwrap();

    // Bo probes with Ada's customer's email, phone and external id.
    for probe in [
        json!({"name": "Probe", "email": "cfo@bigco.example"}),
        json!({"name": "Probe", "phone": "+1 555 0100"}),
        json!({"name": "Probe", "externalId": "CRM-7"}),
    ] {
        let body = create(&app, &bo_token, probe).await;
        assert_eq!(error_code(&body), "CONFLICT", "{body}");
        assert!(
            body["errors"][0]["extensions"]["existingId"].is_null(),
            "{body}"
        );
        let message = error_message(&body);
        assert!(!message.contains("Secret Deal"), "{message}");
        assert!(!message.contains(secret_id), "{message}");
    }

    // Those who may see the lead are told which it is.
    for token in [&ada_token, &acme.token] {
        let body = create(
            &app,
            token,
            json!({"name": "Again", "email": "cfo@bigco.example"}),
        )
        .await;
        assert_eq!(error_code(&body), "CONFLICT");
        assert_eq!(body["errors"][0]["extensions"]["existingId"], secret_id);
        assert!(error_message(&body).contains("Secret Deal"), "{body}");
    }
}

#[tokio::test]
async fn a_rep_sees_only_themself_among_a_teams_members_as_users_shows_them_nobody() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let east = app.new_team(&acme.token, "East").await;
    let (ada, ada_token) = app.member(&acme, "ada@acme.test", "REP", &[&east]).await;
    app.member(&acme, "bo@acme.test", "REP", &[&east]).await;
    let (_, boss) = app
        .member(&acme, "boss@acme.test", "MANAGER", &[&east])
        .await;
    let members = |token: String| {
        let app = &app;
        async move {
            let body = app
                .graphql(
                    Some(&token),
                    "{ teams { name members { id email } } me { teams { members { email } } } }",
                    json!({}),
                )
                .await;
            assert!(body["errors"].is_null(), "{body}");
            body
        }
    };

    let seen = members(ada_token.clone()).await;
    assert_eq!(
        seen["data"]["teams"][0]["members"],
        json!([{"id": ada, "email": "ada@acme.test"}])
    );
    assert_eq!(
        seen["data"]["me"]["teams"][0]["members"],
        json!([{"email": "ada@acme.test"}])
    );
    // The users rule itself, unchanged.
    let users = app
        .graphql(Some(&ada_token), "{ users { id } }", json!({}))
        .await;
    assert_eq!(error_code(&users), "FORBIDDEN");

    // A manager still sees the whole team.
    let seen = members(boss).await;
    assert_eq!(
        seen["data"]["teams"][0]["members"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn a_managers_funnel_counts_only_their_teams_leads() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let east = app.new_team(&acme.token, "East").await;
    let west = app.new_team(&acme.token, "West").await;
    let (ed, _) = app.member(&acme, "ed@acme.test", "REP", &[&east]).await;
    let (wes, _) = app.member(&acme, "wes@acme.test", "REP", &[&west]).await;
    let (_, boss) = app
        .member(&acme, "boss@acme.test", "MANAGER", &[&east])
        .await;
    // East's: one of Ed's, one filed under the team. Not East's: one of
    // Wes's and one in the pool.
    app.new_lead_json(&acme.token, json!({"name": "Ed's", "ownerId": ed}))
        .await;
    app.new_lead_json(&acme.token, json!({"name": "East's", "teamId": east}))
        .await;
    app.new_lead_json(&acme.token, json!({"name": "Wes's", "ownerId": wes}))
        .await;
    app.new_lead_json(&acme.token, json!({"name": "Pool"}))
        .await;
    let pipelines = app
        .graphql(
            Some(&acme.token),
            "{ pipelines { id isDefault } }",
            json!({}),
        )
        .await;
    let pipeline = pipelines["data"]["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["isDefault"] == true)
        .unwrap()["id"]
        .clone();
    let entered = |token: String| {
        let app = &app;
        let pipeline = pipeline.clone();
        async move {
            let body = app
                .graphql(
                    Some(&token),
                    "query($p: ID!) { funnel(pipelineId: $p) { entered } }",
                    json!({"p": pipeline}),
                )
                .await;
            body["data"]["funnel"][0]["entered"]
                .as_i64()
                .unwrap_or_else(|| panic!("{body}"))
        }
    };

    assert_eq!(entered(boss).await, 2);
    assert_eq!(entered(acme.token.clone()).await, 4);
}

#[tokio::test]
async fn a_rep_cannot_close_a_pool_lead_but_can_once_it_is_theirs() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let (ada, ada_token) = app.member(&acme, "ada@acme.test", "REP", &[]).await;
    let pool = app
        .new_lead_json(&acme.token, json!({"name": "Pool"}))
        .await;
    let id = pool["id"].as_str().unwrap();
    let close = |token: String| {
        let app = &app;
        async move {
            app.lead_mutation_json(
                &token,
                "closeLead",
                "CloseLeadInput",
                json!({"id": id, "outcome": "LOST", "reason": "not mine to close"}),
            )
            .await
        }
    };

    let refused = close(ada_token.clone()).await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    let still = app
        .graphql(
            Some(&acme.token),
            "query($id: ID!) { lead(id: $id) { status } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(still["data"]["lead"]["status"], "OPEN");

    let taken = app
        .lead_mutation_json(
            &ada_token,
            "assignLead",
            "AssignLeadInput",
            json!({"id": id, "ownerId": ada}),
        )
        .await;
    assert!(taken["data"]["assignLead"].is_object(), "{taken}");
    let closed = close(ada_token).await;
    assert_eq!(
        closed["data"]["closeLead"]["lead"]["status"], "LOST",
        "{closed}"
    );
}
