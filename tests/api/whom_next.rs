//! Whom next, as the sales methods say: the queue's order, cooling from
//! the last reply, follow-ups people schedule, the pool, customers.

use serde_json::json;

use crate::{
    helpers::spawn_app,
    leads::{days_ago, flags, strong},
};

#[tokio::test]
async fn a_lead_entered_today_whose_last_reply_was_thirty_days_ago_is_cold() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let lead = app
        .new_lead(
            &t.token,
            json!({"name": "Brought over", "attributes": strong(), "ownerId": t.owner_id}),
        )
        .await;
    let id = lead["id"].as_str().unwrap_or_default();
    let cold = app
        .record(
            &t.token,
            id,
            "inbound_inquiry",
            json!({"occurredAt": days_ago(30)}),
        )
        .await;
    assert!(flags(&cold).contains(&"COLD"), "{cold}");
    let queue = app.queue(&t.token, None).await;
    let reasons = queue["data"]["followUpQueue"][0]["reasons"].to_string();
    assert!(reasons.contains("cold: no reply for 30 days"), "{reasons}");

    // A reply today warms it again.
    let warm = app.record(&t.token, id, "inbound_inquiry", json!({})).await;
    assert!(!flags(&warm).contains(&"COLD"), "{warm}");
}
