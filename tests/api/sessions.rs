//! Login, access tokens and refresh-token rotation.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{Duration, Utc};
use entity::enums::Role;
use leadrank::{
    auth::{Principal, tokens::TokenKeys},
    config::Secret,
};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, error_code, error_message, spawn_app};

async fn me(app: &TestApp, token: &str) -> Value {
    app.graphql(Some(token), "{ me { email } }", json!({}))
        .await
}

async fn refresh(app: &TestApp, refresh_token: &str) -> Value {
    app.graphql(
        None,
        "mutation($input: RefreshInput!) { refreshSession(input: $input) { accessToken refreshToken user { email } } }",
        json!({"input": {"refreshToken": refresh_token}}),
    )
    .await
}

#[tokio::test]
async fn logging_in_with_the_right_password_gives_a_working_token() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;

    let body = app.login("ACME", " Owner@Acme.test ", PASSWORD).await;
    let token = body["data"]["login"]["accessToken"]
        .as_str()
        .expect("signed in");
    assert_eq!(body["data"]["login"]["user"]["role"], "OWNER");
    assert_eq!(
        me(&app, token).await["data"]["me"]["email"],
        acme.owner_email.as_str()
    );
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;

    let wrong_password = app
        .login(&acme.slug, &acme.owner_email, "not the password")
        .await;
    let unknown_email = app.login(&acme.slug, "nobody@acme.test", PASSWORD).await;
    let unknown_tenant = app.login("nope", &acme.owner_email, PASSWORD).await;
    for body in [&wrong_password, &unknown_email, &unknown_tenant] {
        assert_eq!(error_code(body), "UNAUTHENTICATED");
        assert!(body["data"].is_null(), "{body}");
    }
    assert_eq!(
        error_message(&wrong_password),
        error_message(&unknown_email)
    );
    assert_eq!(
        error_message(&wrong_password),
        error_message(&unknown_tenant)
    );
}

#[tokio::test]
async fn a_tampered_token_is_refused() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let rep = app.user_with_role(&acme, "REP").await;

    // Promote the rep to OWNER in the payload without re-signing.
    let mut parts: Vec<String> = rep.split('.').map(str::to_owned).collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims["role"] = json!("Owner");
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    let forged = parts.join(".");

    let body = app
        .graphql(Some(&forged), "{ users { id } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
}

#[tokio::test]
async fn an_unsigned_token_is_refused() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let (_, payload) = acme.token.split_once('.').unwrap();
    let payload = payload.split('.').next().unwrap();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);

    for forged in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        assert_eq!(error_code(&me(&app, &forged).await), "UNAUTHENTICATED");
    }
}

#[tokio::test]
async fn an_expired_token_is_refused_with_a_hint_to_refresh() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let keys = TokenKeys::from_secret(&Secret::new(app.jwt_secret.clone()));
    let principal = Principal {
        tenant_id: acme.id.parse().unwrap(),
        user_id: acme.owner_id.parse().unwrap(),
        role: Role::Owner,
    };
    let now = Utc::now();
    let expired = keys
        .issue(
            &principal,
            now - Duration::hours(2),
            now - Duration::hours(1),
        )
        .unwrap();
    let fresh = keys
        .issue(&principal, now, now + Duration::minutes(5))
        .unwrap();

    let body = me(&app, &expired).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    assert!(error_message(&body).contains("expired"), "{body}");
    assert_eq!(
        me(&app, &fresh).await["data"]["me"]["email"],
        acme.owner_email.as_str()
    );
}

#[tokio::test]
async fn refreshing_rotates_the_refresh_token() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;

    let first = refresh(&app, &acme.refresh_token).await;
    let session = &first["data"]["refreshSession"];
    assert_eq!(session["user"]["email"], acme.owner_email.as_str());
    let next = session["refreshToken"].as_str().unwrap();
    assert_ne!(next, acme.refresh_token);
    assert_eq!(
        me(&app, session["accessToken"].as_str().unwrap()).await["data"]["me"]["email"],
        acme.owner_email.as_str()
    );

    let second = refresh(&app, next).await;
    assert!(
        second["data"]["refreshSession"]["accessToken"].is_string(),
        "{second}"
    );
}

#[tokio::test]
async fn reusing_a_refresh_token_ends_the_whole_session() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let rotated = refresh(&app, &acme.refresh_token).await;
    let next = rotated["data"]["refreshSession"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();

    // Someone replays the old token: refused, and the family is revoked...
    let replay = refresh(&app, &acme.refresh_token).await;
    assert_eq!(error_code(&replay), "UNAUTHENTICATED");
    assert!(error_message(&replay).contains("already used"), "{replay}");
    // ...so the legitimate newer token no longer works either.
    assert_eq!(error_code(&refresh(&app, &next).await), "UNAUTHENTICATED");
    // A fresh login still works.
    assert!(app.login(&acme.slug, &acme.owner_email, PASSWORD).await["data"]["login"].is_object());
}

#[tokio::test]
async fn a_malformed_refresh_token_is_refused() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let (tenant, rest) = acme.refresh_token.split_once('.').unwrap();
    let (session, _) = rest.split_once('.').unwrap();
    for bad in [
        "garbage".to_owned(),
        format!("{tenant}.{session}.{}", "x".repeat(43)),
    ] {
        assert_eq!(
            error_code(&refresh(&app, &bad).await),
            "UNAUTHENTICATED",
            "{bad}"
        );
    }
}
