//! Failed logins are throttled per tenant and email, and per client.

use serde_json::Value;

use crate::helpers::{PASSWORD, error_code, spawn_app, spawn_app_with};

fn retry_after(body: &Value) -> u64 {
    body["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .unwrap_or_else(|| panic!("expected retryAfter: {body}"))
}

#[tokio::test]
async fn after_five_failures_even_the_right_password_waits_out_the_window() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    for attempt in 1..=5 {
        let body = app
            .login(&acme.slug, &acme.owner_email, "wrong password")
            .await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "attempt {attempt}");
    }

    let body = app.login(&acme.slug, &acme.owner_email, PASSWORD).await;
    assert_eq!(error_code(&body), "RATE_LIMITED");
    let wait = retry_after(&body);
    assert!((1..=15 * 60).contains(&wait), "retry after {wait}s");
    // Another account of the same tenant is not locked out.
    let other = app
        .create_user(&acme.token, "rep@acme.test", "REP", &[])
        .await;
    assert!(other["data"]["createUser"].is_object());
    assert!(app.login(&acme.slug, "rep@acme.test", PASSWORD).await["data"]["login"].is_object());
}

#[tokio::test]
async fn successful_logins_are_never_counted() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    for _ in 0..4 {
        assert_eq!(
            error_code(
                &app.login(&acme.slug, &acme.owner_email, "wrong password")
                    .await
            ),
            "UNAUTHENTICATED"
        );
    }
    for _ in 0..6 {
        assert!(
            app.login(&acme.slug, &acme.owner_email, PASSWORD).await["data"]["login"].is_object()
        );
    }
}

#[tokio::test]
async fn one_client_guessing_across_many_accounts_is_throttled() {
    let app = spawn_app_with(&[("LEADRANK_LOGIN_MAX_FAILURES_PER_CLIENT", "3")]).await;
    let acme = app.sign_up_tenant("acme").await;
    for n in 0..3 {
        let body = app
            .login(&acme.slug, &format!("guess{n}@acme.test"), "wrong password")
            .await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED");
    }
    let body = app.login(&acme.slug, &acme.owner_email, PASSWORD).await;
    assert_eq!(error_code(&body), "RATE_LIMITED");
    assert!(retry_after(&body) > 0);
}
