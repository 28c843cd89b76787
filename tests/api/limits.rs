//! Request limits, health, the IDE, introspection and CORS.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::helpers::{Connection, Introspected, parse_answer, spawn_app, spawn_app_with};

#[tokio::test]
async fn an_over_deep_query_is_refused() {
    let app = spawn_app_with(&[("LEADRANK_MAX_QUERY_DEPTH", "6")]).await;
    let acme = app.sign_up_tenant("acme").await;
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Me {
        teams: Vec<Members>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Members {
        members: Vec<Email>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Email {
        #[allow(dead_code)]
        email: String,
    }
    let shallow: Me = app
        .root(
            Some(&acme.token),
            "{ me { teams { members { email } } } }",
            json!({}),
        )
        .await;
    assert!(
        shallow.teams.iter().all(|t| !t.members.is_empty()),
        "{shallow:?}"
    );

    let deep = app
        .refused(
            Some(&acme.token),
            "{ me { teams { members { teams { members { teams { members { email } } } } } } } }",
            json!({}),
        )
        .await;
    assert!(deep.has_no_data(), "{deep}");
    assert!(deep.message().contains("nested too deep"), "{deep}");
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
    let shown: Introspected = open
        .data(None, "{ __schema { queryType { name } } }", json!({}))
        .await;
    let schema = shown.__schema.expect("introspection answers when on");
    assert_eq!(schema.query_type.name, "Query");

    let closed = spawn_app_with(&[("LEADRANK_INTROSPECTION", "false")]).await;
    for query in [
        "{ __schema { queryType { name } } }",
        "{ __type(name: \"User\") { fields { name } } }",
    ] {
        // The schema is not revealed: the introspection fields answer null.
        let shown: BTreeMap<String, Option<Value>> = closed.data(None, query, json!({})).await;
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert!(shown.values().all(Option::is_none), "{shown:?}");
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
    // /healthz is not GraphQL: its body is its own JSON.
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "ok", "database": "ok"})
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
    let body: Value = response.json().await.unwrap();
    let refused = parse_answer::<Value>("{not json", body).expect_err("a malformed body");
    assert!(
        refused.message().contains("not a GraphQL request"),
        "{refused}"
    );
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
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Node {
        #[allow(dead_code)]
        id: String,
        activities: Vec<crate::helpers::Id>,
    }
    let page: Connection<Node> = app
        .root(
            Some(&acme.token),
            "{ leads(first: 50) { edges { node { id activities(first: 5) { id } } } } }",
            json!({}),
        )
        .await;
    assert!(page.nodes().all(|n| n.activities.len() <= 5), "{page:?}");

    // 200 leads × 200 activities each: tens of thousands of rows.
    let fan_out = app
        .refused(
            Some(&acme.token),
            "{ leads(first: 200) { edges { node { id activities(first: 200) { id signalKey note } } } } }",
            json!({}),
        )
        .await;
    assert!(fan_out.has_no_data(), "{fan_out}");
    assert!(fan_out.message().contains("too complex"), "{fan_out}");
}
