//! Accounts (issue 17, item 11): sign-up is throttled per client address;
//! weak passwords are refused wherever a password is set; a stranger's
//! failed guesses cannot lock an account's owner out of a client they
//! signed in from before.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, error_code, error_field, spawn_app, spawn_app_with};

/// Posts a GraphQL request as if from `client` (the server trusts
/// `X-Forwarded-For` in these tests, as behind a proxy).
async fn from(app: &TestApp, client: &str, query: &str, variables: Value) -> Value {
    app.client
        .post(format!("{}/graphql", app.address))
        .header("x-forwarded-for", client)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .expect("the server answers")
        .json()
        .await
        .expect("a JSON body")
}

async fn login_from(app: &TestApp, client: &str, slug: &str, email: &str, password: &str) -> Value {
    from(
        app,
        client,
        "mutation($input: LoginInput!) { login(input: $input) { accessToken } }",
        json!({"input": {"tenantSlug": slug, "email": email, "password": password}}),
    )
    .await
}

async fn sign_up_from(app: &TestApp, client: &str, slug: &str, password: &str) -> Value {
    from(
        app,
        client,
        "mutation($input: SignUpInput!) { signUp(input: $input) { tenant { slug } } }",
        json!({"input": {"tenantName": slug, "tenantSlug": slug, "email": format!("owner@{slug}.test"),
                         "password": password, "displayName": "Owner"}}),
    )
    .await
}

#[tokio::test]
async fn sign_ups_are_throttled_per_client_address() {
    let app = spawn_app_with(&[
        ("LEADRANK_SIGNUPS_PER_CLIENT", "2"),
        ("LEADRANK_TRUST_FORWARDED_FOR", "true"),
    ])
    .await;
    for slug in ["one", "two"] {
        let body = sign_up_from(&app, "203.0.113.9", slug, PASSWORD).await;
        assert_eq!(body["data"]["signUp"]["tenant"]["slug"], slug, "{body}");
    }

    let refused = sign_up_from(&app, "203.0.113.9", "three", PASSWORD).await;
    assert_eq!(error_code(&refused), "RATE_LIMITED", "{refused}");
    assert!(
        refused["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .unwrap()
            > 0
    );
    let body = sign_up_from(&app, "198.51.100.7", "three", PASSWORD).await;
    assert_eq!(body["data"]["signUp"]["tenant"]["slug"], "three", "{body}");
}

#[tokio::test]
async fn a_weak_password_is_refused_wherever_a_password_is_set() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let weak = [
        "  short pw  ",
        "correct horse battery ",
        "zzzzzzzzzzzz",
        "1234567890",
        "Password123",
        "qwertyuiop",
    ];
    for password in weak {
        let body = sign_up_from(&app, "127.0.0.1", "weak", password).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{password:?}: {body}");
        assert_eq!(error_field(&body), "input.password");

        let body = app
            .graphql(
                Some(&acme.token),
                "mutation($input: CreateUserInput!) { createUser(input: $input) { user { id } } }",
                json!({"input": {"email": "rep@acme.test", "password": password, "displayName": "Rep", "role": "REP"}}),
            )
            .await;
        assert_eq!(error_field(&body), "input.password", "{password:?}: {body}");

        let body = app
            .graphql(
                Some(&acme.token),
                "mutation($input: ChangePasswordInput!) { changePassword(input: $input) { accessToken } }",
                json!({"input": {"currentPassword": PASSWORD, "newPassword": password}}),
            )
            .await;
        assert_eq!(
            error_field(&body),
            "input.newPassword",
            "{password:?}: {body}"
        );
    }
    // The minimum length stays.
    let body = sign_up_from(&app, "127.0.0.1", "weak", "Zq8#mLp2v").await;
    assert_eq!(error_field(&body), "input.password");
    let body = sign_up_from(&app, "127.0.0.1", "strong", "Zq8#mLp2vX").await;
    assert_eq!(body["data"]["signUp"]["tenant"]["slug"], "strong", "{body}");
}

#[tokio::test]
async fn a_strangers_guesses_cannot_lock_the_owner_out_of_a_client_they_signed_in_from() {
    let app = spawn_app_with(&[("LEADRANK_TRUST_FORWARDED_FOR", "true")]).await;
    let acme = app.sign_up_tenant("acme").await;
    let (slug, email) = (acme.slug.as_str(), acme.owner_email.as_str());
    let office = "192.0.2.10";
    let attacker = "203.0.113.66";
    let ok = login_from(&app, office, slug, email, PASSWORD).await;
    assert!(ok["data"]["login"]["accessToken"].is_string(), "{ok}");

    // A stranger guesses until the account is locked for them.
    for _ in 0..5 {
        let body = login_from(&app, attacker, slug, email, "a wrong guess").await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED");
    }
    let body = login_from(&app, attacker, slug, email, PASSWORD).await;
    assert_eq!(error_code(&body), "RATE_LIMITED");
    // A client the account never signed in from waits too...
    let body = login_from(&app, "198.51.100.20", slug, email, PASSWORD).await;
    assert_eq!(error_code(&body), "RATE_LIMITED");
    // ...but the owner, from the office, gets in.
    let body = login_from(&app, office, slug, email, PASSWORD).await;
    assert!(body["data"]["login"]["accessToken"].is_string(), "{body}");

    // The office itself guessing wrong is throttled like anyone.
    for _ in 0..5 {
        let body = login_from(&app, office, slug, email, "another wrong guess").await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED");
    }
    let body = login_from(&app, office, slug, email, PASSWORD).await;
    assert_eq!(error_code(&body), "RATE_LIMITED");
}
