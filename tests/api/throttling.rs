//! Failed logins are throttled per tenant and email, and per client.

use crate::helpers::{GraphqlErrors, PASSWORD, Session, spawn_app, spawn_app_with};

/// Seconds to wait, as a RATE_LIMITED refusal says.
fn retry_after(refused: &GraphqlErrors) -> u64 {
    refused.errors[0]
        .extensions
        .retry_after
        .unwrap_or_else(|| panic!("expected retryAfter: {refused}"))
}

/// The code a sign-in was refused with; fails when it went through.
fn refused_with(answer: Result<Session, GraphqlErrors>) -> GraphqlErrors {
    match answer {
        Ok(session) => panic!("signed in as {}, expected a refusal", session.user.email),
        Err(errors) => errors,
    }
}

#[tokio::test]
async fn after_five_failures_even_the_right_password_waits_out_the_window() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    for attempt in 1..=5 {
        let refused = refused_with(
            app.try_login(&acme.slug, &acme.owner_email, "wrong password")
                .await,
        );
        assert_eq!(refused.code(), "UNAUTHENTICATED", "attempt {attempt}");
    }

    let refused = refused_with(app.try_login(&acme.slug, &acme.owner_email, PASSWORD).await);
    assert_eq!(refused.code(), "RATE_LIMITED");
    let wait = retry_after(&refused);
    assert!((1..=15 * 60).contains(&wait), "retry after {wait}s");
    // Another account of the same tenant is not locked out.
    let other = app
        .try_create_user(&acme.token, "rep@acme.test", "REP", &[])
        .await
        .unwrap_or_else(|e| panic!("createUser failed: {e}"));
    assert_eq!(other.email, "rep@acme.test");
    let session = app
        .try_login(&acme.slug, "rep@acme.test", PASSWORD)
        .await
        .unwrap_or_else(|e| panic!("the rep is not locked out: {e}"));
    assert_eq!(session.user.email, "rep@acme.test");
}

#[tokio::test]
async fn successful_logins_are_never_counted() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    for _ in 0..4 {
        let refused = refused_with(
            app.try_login(&acme.slug, &acme.owner_email, "wrong password")
                .await,
        );
        assert_eq!(refused.code(), "UNAUTHENTICATED");
    }
    for _ in 0..6 {
        let session = app
            .try_login(&acme.slug, &acme.owner_email, PASSWORD)
            .await
            .unwrap_or_else(|e| panic!("a right password is never counted: {e}"));
        assert_eq!(session.user.email, acme.owner_email);
    }
}

#[tokio::test]
async fn one_client_guessing_across_many_accounts_is_throttled() {
    let app = spawn_app_with(&[("LEADRANK_LOGIN_MAX_FAILURES_PER_CLIENT", "3")]).await;
    let acme = app.sign_up_tenant("acme").await;
    for n in 0..3 {
        let refused = refused_with(
            app.try_login(&acme.slug, &format!("guess{n}@acme.test"), "wrong password")
                .await,
        );
        assert_eq!(refused.code(), "UNAUTHENTICATED");
    }
    let refused = refused_with(app.try_login(&acme.slug, &acme.owner_email, PASSWORD).await);
    assert_eq!(refused.code(), "RATE_LIMITED");
    assert!(retry_after(&refused) > 0);
}

#[tokio::test]
async fn guesses_sent_all_at_once_get_no_more_tries_than_the_limit() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let guesses = (0..10).map(|n| {
        let password = if n == 9 { PASSWORD } else { "wrong password" };
        Box::pin(app.try_login(&acme.slug, &acme.owner_email, password))
    });
    let answers = join_all(guesses.collect()).await;

    let refused = answers
        .iter()
        .filter(|a| a.as_ref().is_err_and(|e| e.code() == "RATE_LIMITED"))
        .count();
    let checked = answers.len() - refused;
    assert!(
        checked <= 5,
        "{checked} attempts reached the password check: {answers:?}"
    );
    assert!(refused >= 5);
}

/// Polls every request together, so they reach the server at once.
async fn join_all<T: Clone, F: std::future::Future<Output = T> + Unpin>(
    mut futures: Vec<F>,
) -> Vec<T> {
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
