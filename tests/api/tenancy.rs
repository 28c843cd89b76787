//! A second tenant tries to read and write the first one's data and finds
//! nothing, exactly as if it never existed.

use serde_json::json;

use crate::helpers::{error_code, error_field, spawn_app};

#[tokio::test]
async fn a_second_tenant_sees_none_of_the_first_tenants_users_teams_or_configuration() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    app.create_user(&acme.token, "rep@acme.test", "REP", &[])
        .await;
    app.create_team(&acme.token, "Acme Enterprise", &[]).await;

    let seen = app
        .graphql(
            Some(&globex.token),
            "{ users { email } teams { name } tenant { slug } pipelines { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        seen["data"]["users"],
        json!([{"email": "owner@globex.test"}])
    );
    assert_eq!(seen["data"]["teams"], json!([]));
    assert_eq!(seen["data"]["tenant"]["slug"], "globex");
    let acme_pipelines = app
        .graphql(Some(&acme.token), "{ pipelines { id } }", json!({}))
        .await;
    assert_ne!(
        seen["data"]["pipelines"],
        acme_pipelines["data"]["pipelines"]
    );
}

#[tokio::test]
async fn a_second_tenant_cannot_add_the_first_tenants_users_to_its_team() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;

    let stolen = app
        .create_team(&globex.token, "Poachers", &[&acme.owner_id])
        .await;
    let never_existed = app
        .create_team(
            &globex.token,
            "Poachers",
            &[&uuid::Uuid::now_v7().to_string()],
        )
        .await;
    assert_eq!(error_code(&stolen), "NOT_FOUND");
    assert_eq!(error_code(&never_existed), "NOT_FOUND");
    // Nothing was created by the refused attempts.
    let teams = app
        .graphql(Some(&globex.token), "{ teams { name } }", json!({}))
        .await;
    assert_eq!(teams["data"]["teams"], json!([]));
}

#[tokio::test]
async fn a_second_tenant_cannot_put_a_user_into_the_first_tenants_team() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    let team = app.create_team(&acme.token, "Acme Enterprise", &[]).await;
    let team_id = team["data"]["createTeam"]["team"]["id"].as_str().unwrap();

    let body = app
        .create_user(&globex.token, "mole@globex.test", "REP", &[team_id])
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(error_field(&body), "input.teamIds[0]");
    let members = app
        .graphql(
            Some(&acme.token),
            "{ teams { members { email } } }",
            json!({}),
        )
        .await;
    assert_eq!(members["data"]["teams"][0]["members"], json!([]));
    let globex_users = app
        .graphql(Some(&globex.token), "{ users { email } }", json!({}))
        .await;
    assert_eq!(globex_users["data"]["users"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn another_tenants_team_id_behaves_like_an_id_that_never_existed() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    let team = app.create_team(&acme.token, "Acme Enterprise", &[]).await;
    let acme_team = team["data"]["createTeam"]["team"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let random = uuid::Uuid::now_v7().to_string();

    for query in [
        "query($t: ID) { activeScoringModel(teamId: $t) { id } }",
        "query($t: ID) { scoringModels(teamId: $t) { id } }",
    ] {
        let foreign = app
            .graphql(Some(&globex.token), query, json!({"t": acme_team}))
            .await;
        let missing = app
            .graphql(Some(&globex.token), query, json!({"t": random}))
            .await;
        assert_eq!(error_code(&foreign), "NOT_FOUND");
        assert_eq!(error_code(&missing), "NOT_FOUND");
        assert_eq!(
            foreign["errors"][0]["message"]
                .as_str()
                .unwrap()
                .replace(&acme_team, "ID"),
            missing["errors"][0]["message"]
                .as_str()
                .unwrap()
                .replace(&random, "ID")
        );
    }
    // Acme itself can read its team's model (the tenant default applies).
    let own = app
        .graphql(
            Some(&acme.token),
            "query($t: ID) { activeScoringModel(teamId: $t) { version } }",
            json!({"t": acme_team}),
        )
        .await;
    assert_eq!(own["data"]["activeScoringModel"]["version"], 1);
}

#[tokio::test]
async fn a_refresh_token_cannot_be_replayed_against_another_tenant() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    // Graft acme's session id and secret onto globex's tenant id.
    let (_, acme_rest) = acme.refresh_token.split_once('.').unwrap();
    let forged = format!("{}.{acme_rest}", globex.id);
    let body = app
        .graphql(
            None,
            "mutation($input: RefreshInput!) { refreshSession(input: $input) { accessToken } }",
            json!({"input": {"refreshToken": forged}}),
        )
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
}
