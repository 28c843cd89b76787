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

#[tokio::test]
async fn guesses_sent_all_at_once_get_no_more_tries_than_the_limit() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let guesses = (0..10).map(|n| {
        let password = if n == 9 { PASSWORD } else { "wrong password" };
        Box::pin(app.login(&acme.slug, &acme.owner_email, password))
    });
    let answers = join_all(guesses.collect()).await;

    let code = |b: &Value| {
        b["errors"][0]["extensions"]["code"]
            .as_str()
            .map(str::to_owned)
    };
    let refused = answers
        .iter()
        .filter(|b| code(b).as_deref() == Some("RATE_LIMITED"))
        .count();
    let checked = answers.len() - refused;
    assert!(
        checked <= 5,
        "{checked} attempts reached the password check: {answers:?}"
    );
    assert!(refused >= 5);
}

/// Polls every request together, so they reach the server at once.
async fn join_all<F: std::future::Future<Output = Value> + Unpin>(
    mut futures: Vec<F>,
) -> Vec<Value> {
    let mut results = vec![None; futures.len()];
    std::future::poll_fn(|cx| {
        for (slot, future) in results.iter_mut().zip(futures.iter_mut()) {
            if slot.is_none()
                && let std::task::Poll::Ready(value) = std::pin::Pin::new(future).poll(cx)
            {
                *slot = Some(value);
            }
        }
        if results.iter().all(Option::is_some) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    results.into_iter().flatten().collect()
}
