//! Login, access tokens and refresh-token rotation.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{Duration, Utc};
use entity::enums::Role;
use leadrank::{
    auth::{Principal, tokens::TokenKeys},
    config::Secret,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::helpers::{GraphqlErrors, PASSWORD, TestApp, spawn_app};

/// `{ email }` of the signed-in user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Email {
    email: String,
}

/// The caller's email, or why the token was refused.
async fn me(app: &TestApp, token: &str) -> Result<String, GraphqlErrors> {
    let me: Email = app
        .query_root(Some(token), "{ me { email } }", json!({}))
        .await?;
    Ok(me.email)
}

/// What `refreshSession` gives.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Refreshed {
    access_token: String,
    refresh_token: String,
    user: Email,
}

/// A new session for `refresh_token`, or why it was refused.
async fn refresh(app: &TestApp, refresh_token: &str) -> Result<Refreshed, GraphqlErrors> {
    app.query_root(
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

    let session = app
        .try_login("ACME", " Owner@Acme.test ", PASSWORD)
        .await
        .expect("the slug and email are read whatever their case");
    assert_eq!(session.user.role, "OWNER");
    assert_eq!(session.user.email, acme.owner_email);
    assert_eq!(
        me(&app, &session.access_token)
            .await
            .expect("a working token"),
        acme.owner_email
    );
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;

    let wrong_password = app
        .try_login(&acme.slug, &acme.owner_email, "not the password")
        .await
        .expect_err("a wrong password is refused");
    let unknown_email = app
        .try_login(&acme.slug, "nobody@acme.test", PASSWORD)
        .await
        .expect_err("an unknown email is refused");
    let unknown_tenant = app
        .try_login("nope", &acme.owner_email, PASSWORD)
        .await
        .expect_err("an unknown tenant is refused");
    for refused in [&wrong_password, &unknown_email, &unknown_tenant] {
        assert_eq!(refused.code(), "UNAUTHENTICATED");
        assert!(refused.has_no_data(), "{refused}");
    }
    assert_eq!(wrong_password.message(), unknown_email.message());
    assert_eq!(wrong_password.message(), unknown_tenant.message());
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

    let refused = app
        .refused(Some(&forged), "{ users { id } }", json!({}))
        .await;
    assert_eq!(refused.code(), "UNAUTHENTICATED");
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
        let refused = me(&app, &forged).await.expect_err("an unsigned token");
        assert_eq!(refused.code(), "UNAUTHENTICATED");
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

    let refused = me(&app, &expired).await.expect_err("an expired token");
    assert_eq!(refused.code(), "UNAUTHENTICATED");
    assert!(refused.message().contains("expired"), "{refused}");
    assert_eq!(
        me(&app, &fresh).await.expect("a fresh token works"),
        acme.owner_email
    );
}

#[tokio::test]
async fn refreshing_rotates_the_refresh_token() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;

    let session = refresh(&app, &acme.refresh_token)
        .await
        .expect("the refresh token works once");
    assert_eq!(session.user.email, acme.owner_email);
    assert_ne!(session.refresh_token, acme.refresh_token);
    assert_eq!(
        me(&app, &session.access_token)
            .await
            .expect("a working token"),
        acme.owner_email
    );

    let second = refresh(&app, &session.refresh_token)
        .await
        .expect("the rotated token works");
    assert!(!second.access_token.is_empty());
}

#[tokio::test]
async fn reusing_a_refresh_token_ends_the_whole_session() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let next = refresh(&app, &acme.refresh_token)
        .await
        .expect("the refresh token works once")
        .refresh_token;

    // Someone replays the old token: refused, and the family is revoked...
    let replay = refresh(&app, &acme.refresh_token)
        .await
        .expect_err("a used refresh token is refused");
    assert_eq!(replay.code(), "UNAUTHENTICATED");
    assert!(replay.message().contains("already used"), "{replay}");
    // ...so the legitimate newer token no longer works either.
    let revoked = refresh(&app, &next)
        .await
        .expect_err("the family is revoked");
    assert_eq!(revoked.code(), "UNAUTHENTICATED");
    // A fresh login still works.
    app.try_login(&acme.slug, &acme.owner_email, PASSWORD)
        .await
        .expect("a fresh login works");
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
        let refused = refresh(&app, &bad).await.expect_err("a malformed token");
        assert_eq!(refused.code(), "UNAUTHENTICATED", "{bad}");
    }
}
