//! `/metrics`: off unless a token is set, then Prometheus text for the
//! holder of the token, counting what the server did.

use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with};

const TOKEN: &str = "metrics-token-0123456789";

#[tokio::test]
async fn metrics_are_served_only_with_their_token() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);

    let app = spawn_app_with(&[("LEADRANK_METRICS_TOKEN", TOKEN)]).await;
    for token in [None, Some("wrong-token-0123456789")] {
        let mut request = app.client.get(format!("{}/metrics", app.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(request.send().await.unwrap().status().as_u16(), 401);
    }
}

#[tokio::test]
async fn metrics_count_the_traffic_they_saw() {
    let app = spawn_app_with(&[("LEADRANK_METRICS_TOKEN", TOKEN)]).await;
    let acme = app.sign_up_tenant("acme").await;
    let body = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(&acme.token)
        .json(&json!({"query": "query WhoAmI { me { id } }", "operationName": "WhoAmI"}))
        .send()
        .await
        .unwrap();
    assert!(body.status().is_success());
    app.new_lead(
        &acme.token,
        json!({"name": "Li Wei", "externalId": "crm-1"}),
    )
    .await;
    let key = app.new_api_key(&acme.token, "website", &["INGEST"]).await;
    let (status, _) = app
        .send_events(
            &key.secret,
            json!([{"lead": {"externalId": "crm-1"}, "signal": "website_visit"}]),
        )
        .await;
    assert_eq!(status, 200);

    let response = app
        .client
        .get(format!("{}/metrics", app.address))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for expected in [
        r#"leadrank_http_requests_total{operation="WhoAmI",outcome="ok"}"#,
        r#"leadrank_http_requests_total{operation="POST /v1/events",outcome="ok"}"#,
        r#"leadrank_http_request_duration_seconds_bucket{operation="WhoAmI""#,
        r#"leadrank_events_ingested_total{outcome="accepted"}"#,
        r#"leadrank_leads_scored_total{path="ingest"}"#,
        r#"leadrank_db_pool_connections{state="idle"}"#,
        r#"leadrank_db_pool_connections{state="in_use"}"#,
        "leadrank_db_pool_acquire_seconds_count",
        "leadrank_webhook_outbox_pending",
        "leadrank_subscribers_connected",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
}
