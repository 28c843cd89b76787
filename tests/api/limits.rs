//! Request limits, health, the IDE, introspection and CORS.

use serde_json::json;

use crate::helpers::{error_message, spawn_app, spawn_app_with};

#[tokio::test]
async fn an_over_deep_query_is_refused() {
    let app = spawn_app_with(&[("LEADRANK_MAX_QUERY_DEPTH", "6")]).await;
    let acme = app.sign_up_tenant("acme").await;
    let shallow = app
        .graphql(
            Some(&acme.token),
            "{ me { teams { members { email } } } }",
            json!({}),
        )
        .await;
    assert!(shallow["errors"].is_null(), "{shallow}");

    let deep = app
        .graphql(
            Some(&acme.token),
            "{ me { teams { members { teams { members { teams { members { email } } } } } } } }",
            json!({}),
        )
        .await;
    assert!(deep["data"].is_null(), "{deep}");
    assert!(error_message(&deep).contains("nested too deep"), "{deep}");
}

#[tokio::test]
async fn an_oversized_request_body_is_refused() {
    let app = spawn_app_with(&[("LEADRANK_BODY_LIMIT_BYTES", "2048")]).await;
    let padding = "x".repeat(4096);
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!({"query": format!("{{ me {{ id }} }} # {padding}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
}

#[tokio::test]
async fn introspection_can_be_switched_off() {
    let open = spawn_app().await;
    let body = open
        .graphql(None, "{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");

    let closed = spawn_app_with(&[("LEADRANK_INTROSPECTION", "false")]).await;
    for query in [
        "{ __schema { queryType { name } } }",
        "{ __type(name: \"User\") { fields { name } } }",
    ] {
        let body = closed.graphql(None, query, json!({})).await;
        // The schema is not revealed: the introspection fields answer null.
        assert!(
            body["data"]
                .as_object()
                .unwrap()
                .values()
                .all(serde_json::Value::is_null),
            "{body}"
        );
    }
}

#[tokio::test]
async fn health_reports_the_database_beside_a_served_ide() {
    let app = spawn_app().await;
    let health = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(
        health.json::<serde_json::Value>().await.unwrap()["database"],
        "ok"
    );

    let ide = app
        .client
        .get(format!("{}/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ide.status().as_u16(), 200);
    assert!(ide.text().await.unwrap().contains("graphiql"));
}

#[tokio::test]
async fn a_malformed_body_gets_a_clear_bad_request() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(error_message(&body).contains("not a GraphQL request"));
}

#[tokio::test]
async fn only_configured_origins_may_call_from_a_browser() {
    let app = spawn_app_with(&[("LEADRANK_CORS_ORIGINS", "https://app.leadrank.test")]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, format!("{}/graphql", app.address))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.leadrank.test").await.unwrap();
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .unwrap(),
        "https://app.leadrank.test"
    );
    let refused = preflight("https://evil.test").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn a_query_fanning_out_over_nested_lists_is_refused_before_it_runs() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let page = app
        .graphql(
            Some(&acme.token),
            "{ leads(first: 50) { edges { node { id activities(first: 5) { id } } } } }",
            json!({}),
        )
        .await;
    assert!(page["errors"].is_null(), "{page}");

    // 200 leads × 200 activities each: tens of thousands of rows.
    let fan_out = app
        .graphql(
            Some(&acme.token),
            "{ leads(first: 200) { edges { node { id activities(first: 200) { id signalKey note } } } } }",
            json!({}),
        )
        .await;
    assert!(fan_out["data"].is_null(), "{fan_out}");
    assert!(error_message(&fan_out).contains("too complex"), "{fan_out}");
}
