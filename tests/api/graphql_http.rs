//! GraphQL over HTTP as the spec and the `graphql-http` audits want it:
//! media types, status codes, GET never changing data. The full audit
//! suite runs in `.ci/run` (`tests/http-audit`); these are the cases a
//! change here is most likely to break.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::helpers::{Name, parse_answer, spawn_app};

/// `{ me { email } tenant { slug } }`, the persisted document's answer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MeAndTenant {
    me: Email,
    tenant: Slug,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Email {
    email: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Slug {
    slug: String,
}

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

async fn post(app: &crate::helpers::TestApp, accept: &str, body: Value) -> (u16, String, Value) {
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("accept", accept)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let media = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, media, response.json().await.unwrap())
}

#[tokio::test]
async fn the_graphql_response_media_type_is_answered_with_status_codes_that_follow_the_outcome() {
    // Conformance: the raw body's shape is the subject (whether `data` is
    // there at all beside the status code), so it is read as JSON.
    let app = spawn_app().await;

    let (status, media, body) =
        post(&app, GRAPHQL_RESPONSE, json!({"query": "{ __typename }"})).await;
    assert_eq!((status, media.as_str()), (200, GRAPHQL_RESPONSE));
    assert_eq!(body["data"]["__typename"], "Query");

    // A document that does not parse, or does not validate, is a request
    // error: 400, no data entry, the same code as ever.
    let (status, _, body) = post(&app, GRAPHQL_RESPONSE, json!({"query": "{"})).await;
    assert_eq!(status, 400);
    assert!(body.get("data").is_none(), "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "GRAPHQL_PARSE_FAILED"
    );
    let (status, _, body) = post(&app, GRAPHQL_RESPONSE, json!({"query": "{ nope }"})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );

    // A resolver's error leaves data (null) and stays 200.
    let (status, _, body) = post(&app, GRAPHQL_RESPONSE, json!({"query": "{ me { id } }"})).await;
    assert_eq!(status, 200);
    assert!(body.get("data").is_some());
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");

    // application/json keeps answering 200 with the errors.
    let (status, media, body) = post(&app, "application/json", json!({"query": "{"})).await;
    assert_eq!((status, media.as_str()), (200, "application/json"));
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "GRAPHQL_PARSE_FAILED"
    );
}

#[tokio::test]
async fn a_body_the_server_cannot_read_is_refused_with_the_matching_http_status() {
    let app = spawn_app().await;
    let (status, _, body) =
        post(&app, "application/json", json!({"qeury": "{ __typename }"})).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST");
    let (status, _, _) = post(&app, "application/json", json!({"query": 7})).await;
    assert_eq!(status, 400);

    let response = app
        .client
        .get(format!("{}/graphql?operationName=x", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);

    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("content-type", "text/plain")
        .body(r#"{"query": "{ __typename }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
}

#[tokio::test]
async fn a_mutation_over_get_is_refused_with_405_without_changing_anything() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let response = app
        .client
        // mutation { createTeam(input: {name: "by GET", memberIds: []}) { team { id } } }
        .get(format!(
            "{}/graphql?query=mutation%20%7B%20createTeam%28input%3A%20%7Bname%3A%20%22by%20GET%22%2C%20memberIds%3A%20%5B%5D%7D%29%20%7B%20team%20%7B%20id%20%7D%20%7D%20%7D",
            app.address
        ))
        .bearer_auth(&acme.token)
        .header("accept", GRAPHQL_RESPONSE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let teams: Vec<Name> = app
        .root(Some(&acme.token), "{ teams { name } }", json!({}))
        .await;
    assert!(teams.is_empty(), "{teams:?}");
}

fn persisted(hash: &str) -> Value {
    json!({"persistedQuery": {"version": 1, "sha256Hash": hash}})
}

fn sha256(document: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(document.as_bytes()))
}

#[tokio::test]
async fn a_persisted_query_is_asked_for_once_then_run_by_its_hash() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let document = "query Me { me { email } tenant { slug } }";
    let hash = sha256(document);
    let send = |body: Value| {
        app.client
            .post(format!("{}/graphql", app.address))
            .bearer_auth(&acme.token)
            .json(&body)
            .send()
    };

    // An unknown hash: the client is asked for the document, as Apollo
    // clients expect.
    let response = send(json!({"extensions": persisted(&hash)})).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    let refused = parse_answer::<Value>("(by hash)", body).expect_err("an unknown hash");
    assert_eq!(refused.code(), "PERSISTED_QUERY_NOT_FOUND");
    assert_eq!(refused.message(), "PersistedQueryNotFound");

    // The document with its hash runs and is kept.
    let body: Value = send(json!({"query": document, "extensions": persisted(&hash)}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let answer: MeAndTenant =
        parse_answer(document, body).unwrap_or_else(|e| panic!("the document runs: {e}"));
    assert_eq!(answer.tenant.slug, "acme");

    // From now on the hash alone is enough, over POST and GET.
    let body: Value = send(json!({"extensions": persisted(&hash), "operationName": "Me"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let answer: MeAndTenant =
        parse_answer(document, body).unwrap_or_else(|e| panic!("the hash runs: {e}"));
    assert_eq!(answer.me.email, acme.owner_email);
    let extensions = persisted(&hash).to_string();
    let encoded: String = extensions
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let body: Value = app
        .client
        .get(format!("{}/graphql?extensions={encoded}", app.address))
        .bearer_auth(&acme.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let answer: MeAndTenant =
        parse_answer(document, body).unwrap_or_else(|e| panic!("the hash runs over GET: {e}"));
    assert_eq!(answer.tenant.slug, "acme");

    // A document that does not match its hash is refused and not kept.
    let response =
        send(json!({"query": "{ __typename }", "extensions": persisted(&"ab".repeat(32))}))
            .await
            .unwrap();
    let body: Value = response.json().await.unwrap();
    let refused = parse_answer::<Value>("{ __typename }", body).expect_err("a wrong hash");
    assert_eq!(refused.code(), "BAD_REQUEST");
}

#[tokio::test]
async fn a_persisted_mutation_is_still_refused_over_get() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let document =
        "mutation { createTeam(input: {name: \"by GET\", memberIds: []}) { team { id } } }";
    let hash = sha256(document);
    let created = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(&acme.token)
        .json(&json!({"query": document, "extensions": persisted(&hash)}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 200);
    let extensions = persisted(&hash).to_string();
    let encoded: String = extensions.bytes().map(|b| format!("%{b:02X}")).collect();
    let response = app
        .client
        .get(format!("{}/graphql?extensions={encoded}", app.address))
        .bearer_auth(&acme.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let teams: Vec<Name> = app
        .root(Some(&acme.token), "{ teams { name } }", json!({}))
        .await;
    assert_eq!(
        teams,
        [Name {
            name: "by GET".into()
        }],
        "created once, over POST"
    );
}
