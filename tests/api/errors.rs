//! The errors a client can get, as it gets them: a fault on our side
//! answers INTERNAL without its cause and logs the cause, and every
//! variant of `AppError` is produced by some request.

use leadrank::error::AppError;
use serde_json::json;

use crate::helpers::{GraphqlErrors, PASSWORD, TestApp, error_log, parse_answer, spawn_quiet_app};

/// What the client reads for any INTERNAL error.
const INTERNAL_MESSAGE: &str = "something went wrong on our side; it has been logged";

/// Words of a database's error text that must never reach a client.
const DATABASE_WORDS: [&str; 8] = [
    "webhook_endpoints",
    "no such table",
    "relation",
    "does not exist",
    "SELECT",
    "sqlite",
    "postgres",
    "database",
];

/// Breaks the table `webhookEndpoints` reads and asks for them: returns the
/// request id and the answer.
async fn ask_with_a_broken_table(app: &TestApp, token: &str) -> (String, GraphqlErrors) {
    app.break_table("webhook_endpoints").await;
    let query = "{ webhookEndpoints { id url } }";
    let (request_id, body) = app
        .graphql_with_request_id(Some(token), query, json!({}))
        .await;
    let answer = parse_answer::<serde_json::Value>(query, body)
        .expect_err("a request on a broken table cannot succeed");
    (request_id, answer)
}

#[tokio::test]
async fn a_database_fault_is_answered_internal_with_its_cause_only_in_the_log() {
    let log = error_log();
    let app = spawn_quiet_app().await;
    let acme = app.sign_up_tenant("acme").await;

    let (request_id, answer) = ask_with_a_broken_table(&app, &acme.token).await;

    assert_eq!(answer.code(), "INTERNAL", "{answer}");
    assert_eq!(answer.message(), INTERNAL_MESSAGE, "{answer}");
    let shown = answer.body.to_string();
    for word in DATABASE_WORDS {
        assert!(
            !shown.to_lowercase().contains(&word.to_lowercase()),
            "the answer reveals {word:?}: {shown}"
        );
    }
    // The cause is in the log, once, under the request's id.
    let logged = log.of_request(&request_id);
    assert_eq!(logged.len(), 1, "{logged:#?}");
    assert!(
        logged[0].contains("request failed with an internal error")
            && logged[0].contains("webhook_endpoints"),
        "the log does not name the cause: {logged:#?}"
    );
}

// Each variant of `AppError`, the story that produces it, and the check
// that the answer is that variant. The rows build both the list the test
// walks and an exhaustive match on `AppError`: a new variant does not
// compile until it has a row, and its row's request runs in the test.
macro_rules! every_variant {
    ($($story:ident: $variant:pat),* $(,)?) => {
        /// A request that produces one variant.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Story {
            $($story),*
        }

        /// Every story, in order.
        const EVERY_STORY: &[Story] = &[$(Story::$story),*];

        /// The story that produces `error`'s variant.
        fn story_of(error: &AppError) -> Story {
            match error {
                $($variant => Story::$story),*
            }
        }
    };
}

every_variant! {
    NoToken: AppError::Unauthenticated,
    WrongPassword: AppError::Unauthorized(_),
    RepManagesUsers: AppError::Forbidden { .. },
    UnknownLead: AppError::NotFound { .. },
    MalformedEmail: AppError::InvalidInput { .. },
    DuplicateEmail: AppError::Conflict { .. },
    GuessedPasswords: AppError::RateLimited { .. },
    BrokenTable: AppError::Internal(_),
}

/// Tells `story` against `app` and returns the error it should produce
/// with the answer it got.
async fn tell(app: &TestApp, story: Story) -> (AppError, GraphqlErrors) {
    let acme = app.sign_up_tenant(&format!("story{}", story as u8)).await;
    match story {
        Story::NoToken => (
            AppError::Unauthenticated,
            app.refused(None, "{ me { id } }", json!({})).await,
        ),
        Story::WrongPassword => (
            AppError::Unauthorized("the tenant, email or password is not correct"),
            app.try_login(&acme.slug, &acme.owner_email, "not the password")
                .await
                .expect_err("a wrong password is refused"),
        ),
        Story::RepManagesUsers => {
            let rep = app.user_with_role(&acme, "REP").await;
            let refused = app
                .refused(
                    Some(&rep),
                    "mutation($input: CreateUserInput!) { createUser(input: $input) { user { id } } }",
                    json!({"input": {"email": "x@s.test", "password": PASSWORD, "displayName": "X", "role": "REP", "teamIds": []}}),
                )
                .await;
            (AppError::Forbidden { action: "" }, refused)
        }
        Story::UnknownLead => {
            let id = uuid::Uuid::now_v7();
            let refused = app
                .lead_mutation(
                    &acme.token,
                    "closeLead",
                    "CloseLeadInput",
                    json!({"id": id, "outcome": "LOST"}),
                )
                .await
                .expect_err("an unknown lead cannot be closed");
            (AppError::not_found("lead", id), refused)
        }
        Story::MalformedEmail => (
            AppError::invalid("input.email", ""),
            app.create_lead(&acme.token, json!({"name": "Bad", "email": "nope"}))
                .await
                .expect_err("a malformed email is refused"),
        ),
        Story::DuplicateEmail => {
            let first = app
                .new_lead(&acme.token, json!({"name": "Li", "email": "li@x.test"}))
                .await;
            let refused = app
                .create_lead(&acme.token, json!({"name": "Lee", "email": "li@x.test"}))
                .await
                .expect_err("a second lead with the same email is refused");
            let existing_id = first.id.parse().ok();
            let conflict = AppError::Conflict {
                message: String::new(),
                existing_id,
            };
            (conflict, refused)
        }
        Story::GuessedPasswords => {
            for _ in 0..5 {
                let refused = app
                    .try_login(&acme.slug, &acme.owner_email, "a guess")
                    .await
                    .expect_err("a guess is refused");
                assert_eq!(refused.code(), "UNAUTHENTICATED", "{refused}");
            }
            let throttled = app
                .try_login(&acme.slug, &acme.owner_email, PASSWORD)
                .await
                .expect_err("after five guesses even the password waits");
            (
                AppError::RateLimited {
                    retry_after_secs: 0,
                },
                throttled,
            )
        }
        Story::BrokenTable => {
            let (_, answer) = ask_with_a_broken_table(app, &acme.token).await;
            (
                AppError::Internal(anyhow::anyhow!("a broken table")),
                answer,
            )
        }
    }
}

/// Checks that `answer` is what a client gets for `expected`'s variant:
/// its code, and what the variant says besides.
fn assert_answers_as(expected: &AppError, answer: &GraphqlErrors) {
    assert_eq!(answer.code(), expected.code(), "{expected:?}: {answer}");
    let message = answer.message();
    match expected {
        AppError::Unauthenticated => assert_eq!(message, expected.to_string()),
        AppError::Unauthorized(why) => assert_eq!(message, *why),
        AppError::Forbidden { .. } => {
            assert!(
                message.starts_with("your role does not allow you to "),
                "{answer}"
            );
        }
        AppError::NotFound { .. } => assert_eq!(message, expected.to_string()),
        AppError::InvalidInput { field, .. } => {
            assert_eq!(answer.field(), field, "{answer}");
            assert!(!message.is_empty(), "{answer}");
        }
        AppError::Conflict { existing_id, .. } => {
            let existing_id = existing_id.map(|id| id.to_string());
            let extensions = &answer.errors[0].extensions;
            assert_eq!(extensions.existing_id, existing_id, "{answer}");
        }
        AppError::RateLimited { .. } => {
            assert!(
                message.starts_with("too many failed attempts; try again in "),
                "{answer}"
            );
            let retry_after = answer.errors[0].extensions.retry_after;
            assert!(retry_after.is_some_and(|s| s > 0), "{answer}");
        }
        AppError::Internal(_) => assert_eq!(message, INTERNAL_MESSAGE),
    }
}

#[tokio::test]
async fn every_error_a_client_can_get_is_produced_by_some_request() {
    let app = spawn_quiet_app().await;
    // The broken table breaks this server for good: its story goes last.
    let mut stories = EVERY_STORY.to_vec();
    stories.sort_by_key(|s| *s == Story::BrokenTable);
    for story in stories {
        let (expected, answer) = tell(&app, story).await;
        assert_eq!(story_of(&expected), story, "{expected:?}");
        assert_answers_as(&expected, &answer);
    }
}
