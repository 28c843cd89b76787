//! Accounts (issue 17, item 11): sign-up is throttled per client address;
//! weak passwords are refused wherever a password is set; a stranger's
//! failed guesses cannot lock an account's owner out of a client they
//! signed in from before.

use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::helpers::{
    GraphqlErrors, PASSWORD, SignedUpSlug, TestApp, parse_answer, spawn_app, spawn_app_with,
};

/// Posts a GraphQL request as if from `client` (the server trusts
/// `X-Forwarded-For` in these tests, as behind a proxy), and reads its one
/// root field: the answer, or why it was refused.
async fn from<T: DeserializeOwned>(
    app: &TestApp,
    client: &str,
    query: &str,
    variables: Value,
) -> Result<T, GraphqlErrors> {
    let body: Value = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("x-forwarded-for", client)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .expect("the server answers")
        .json()
        .await
        .expect("a JSON body");
    let mut data: std::collections::BTreeMap<String, T> = parse_answer(query, body)?;
    let root = data.pop_first().map(|(_, v)| v).expect("one root field");
    assert!(data.is_empty(), "one root field in the answer to {query}");
    Ok(root)
}

/// `login { accessToken }`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SignedIn {
    access_token: String,
}

/// Signs in from `client`: the access token, or why it was refused.
async fn login_from(
    app: &TestApp,
    client: &str,
    slug: &str,
    email: &str,
    password: &str,
) -> Result<String, GraphqlErrors> {
    let signed_in: SignedIn = from(
        app,
        client,
        "mutation($input: LoginInput!) { login(input: $input) { accessToken } }",
        json!({"input": {"tenantSlug": slug, "email": email, "password": password}}),
    )
    .await?;
    Ok(signed_in.access_token)
}

/// Signs a company up from `client`: its slug, or why it was refused.
async fn sign_up_from(
    app: &TestApp,
    client: &str,
    slug: &str,
    password: &str,
) -> Result<String, GraphqlErrors> {
    let signed_up: SignedUpSlug = from(
        app,
        client,
        "mutation($input: SignUpInput!) { signUp(input: $input) { tenant { slug } } }",
        json!({"input": {"tenantName": slug, "tenantSlug": slug, "email": format!("owner@{slug}.test"),
                         "password": password, "displayName": "Owner"}}),
    )
    .await?;
    Ok(signed_up.tenant.slug)
}

#[tokio::test]
async fn sign_ups_are_throttled_per_client_address() {
    let app = spawn_app_with(&[
        ("LEADRANK_SIGNUPS_PER_CLIENT", "2"),
        ("LEADRANK_TRUST_FORWARDED_FOR", "true"),
    ])
    .await;
    for slug in ["one", "two"] {
        let signed_up = sign_up_from(&app, "203.0.113.9", slug, PASSWORD).await;
        assert_eq!(signed_up.as_deref().ok(), Some(slug), "{signed_up:?}");
    }

    let refused = sign_up_from(&app, "203.0.113.9", "three", PASSWORD)
        .await
        .expect_err("a third sign-up from one address");
    assert_eq!(refused.code(), "RATE_LIMITED", "{refused}");
    assert!(
        refused.errors[0]
            .extensions
            .retry_after
            .is_some_and(|wait| wait > 0),
        "{refused}"
    );
    let signed_up = sign_up_from(&app, "198.51.100.7", "three", PASSWORD).await;
    assert_eq!(signed_up.as_deref().ok(), Some("three"), "{signed_up:?}");
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
        let refused = sign_up_from(&app, "127.0.0.1", "weak", password)
            .await
            .expect_err(password);
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{password:?}: {refused}");
        assert_eq!(refused.field(), "input.password");

        let refused = app
            .refused(
                Some(&acme.token),
                "mutation($input: CreateUserInput!) { createUser(input: $input) { user { id } } }",
                json!({"input": {"email": "rep@acme.test", "password": password, "displayName": "Rep", "role": "REP"}}),
            )
            .await;
        assert_eq!(refused.field(), "input.password", "{password:?}: {refused}");

        let refused = app
            .refused(
                Some(&acme.token),
                "mutation($input: ChangePasswordInput!) { changePassword(input: $input) { accessToken } }",
                json!({"input": {"currentPassword": PASSWORD, "newPassword": password}}),
            )
            .await;
        assert_eq!(
            refused.field(),
            "input.newPassword",
            "{password:?}: {refused}"
        );
    }
    // The minimum length stays.
    let refused = sign_up_from(&app, "127.0.0.1", "weak", "Zq8#mLp2v")
        .await
        .expect_err("nine characters");
    assert_eq!(refused.field(), "input.password");
    let signed_up = sign_up_from(&app, "127.0.0.1", "strong", "Zq8#mLp2vX").await;
    assert_eq!(signed_up.as_deref().ok(), Some("strong"), "{signed_up:?}");
}

#[tokio::test]
async fn a_strangers_guesses_cannot_lock_the_owner_out_of_a_client_they_signed_in_from() {
    let app = spawn_app_with(&[("LEADRANK_TRUST_FORWARDED_FOR", "true")]).await;
    let acme = app.sign_up_tenant("acme").await;
    let (slug, email) = (acme.slug.as_str(), acme.owner_email.as_str());
    let office = "192.0.2.10";
    let attacker = "203.0.113.66";
    let ok = login_from(&app, office, slug, email, PASSWORD).await;
    assert!(ok.as_ref().is_ok_and(|t| !t.is_empty()), "{ok:?}");
    let refused_with = |answer: Result<String, GraphqlErrors>| match answer {
        Ok(token) => panic!("signed in ({token}), expected a refusal"),
        Err(errors) => errors.code().to_owned(),
    };

    // A stranger guesses until the account is locked for them.
    for _ in 0..5 {
        let answer = login_from(&app, attacker, slug, email, "a wrong guess").await;
        assert_eq!(refused_with(answer), "UNAUTHENTICATED");
    }
    let answer = login_from(&app, attacker, slug, email, PASSWORD).await;
    assert_eq!(refused_with(answer), "RATE_LIMITED");
    // A client the account never signed in from waits too...
    let answer = login_from(&app, "198.51.100.20", slug, email, PASSWORD).await;
    assert_eq!(refused_with(answer), "RATE_LIMITED");
    // ...but the owner, from the office, gets in.
    let ok = login_from(&app, office, slug, email, PASSWORD).await;
    assert!(ok.as_ref().is_ok_and(|t| !t.is_empty()), "{ok:?}");

    // The office itself guessing wrong is throttled like anyone.
    for _ in 0..5 {
        let answer = login_from(&app, office, slug, email, "another wrong guess").await;
        assert_eq!(refused_with(answer), "UNAUTHENTICATED");
    }
    let answer = login_from(&app, office, slug, email, PASSWORD).await;
    assert_eq!(refused_with(answer), "RATE_LIMITED");
}
