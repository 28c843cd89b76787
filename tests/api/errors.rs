//! The errors a client can get, as it gets them: a fault on our side
//! answers INTERNAL without its cause and logs the cause.

use serde_json::json;

use crate::helpers::{GraphqlErrors, TestApp, error_log, parse_answer, spawn_quiet_app};

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
async fn a_broken_database_answers_internal_without_the_cause_and_logs_the_cause() {
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
