//! Traces: a service entry point's span says which tenant and which lead it
//! worked on, so one company's requests can be followed through the logs.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{SpanFields, created_lead_spans, eventually, spawn_app, strong};

#[tokio::test]
async fn creating_a_lead_is_traced_with_its_tenant_and_its_id() {
    let spans = created_lead_spans();
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;

    let lead = app
        .new_lead(
            &acme.token,
            json!({"name": "Li Wei", "company": "Hangzhou Optics", "attributes": strong()}),
        )
        .await;

    let lead_id = lead.id.as_str();
    let ours = || -> Vec<SpanFields> {
        spans
            .lock()
            .unwrap()
            .iter()
            .filter(|fields| fields.iter().any(|(k, v)| k == "lead_id" && v == lead_id))
            .cloned()
            .collect()
    };
    // A span is kept when it closes, and it closes only once every span
    // opened inside it has: one a database driver keeps may end just after
    // the answer reaches the test.
    let ours = eventually(
        "the create_lead span closes",
        Duration::from_secs(10),
        || {
            let found = ours();
            async move { (!found.is_empty()).then_some(found) }
        },
    )
    .await;
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert!(
        ours[0]
            .iter()
            .any(|(k, v)| k == "tenant_id" && *v == acme.id),
        "{ours:?}"
    );
}
