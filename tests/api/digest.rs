//! The weekly digest: on Monday at the company's nightly hour, one
//! `digest.weekly` event for the company and one per team, with the
//! week's figures, and only once a week.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveTime, TimeZone, Utc};
use entity::{tenant, webhook_delivery};
use leadrank::jobs::digest;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::{
    helpers::{Id, spawn_app_with},
    helpers::{strong, weak},
};

/// The first Monday after now at `hour` in Shanghai (the tests' time zone).
fn next_monday_at(hour: u32) -> DateTime<Utc> {
    let shanghai = FixedOffset::east_opt(8 * 3600).unwrap();
    let today = Utc::now().with_timezone(&shanghai).date_naive();
    let monday = today + Duration::days(7 - i64::from(today.weekday().num_days_from_monday()));
    shanghai
        .from_local_datetime(&monday.and_time(NaiveTime::from_hms_opt(hour, 0, 0).unwrap()))
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn on_monday_the_company_and_each_team_get_the_weeks_figures_once() {
    let app = spawn_app_with(&[("LEADRANK_WEBHOOK_ALLOW_HTTP_LOCALHOST", "true")]).await;
    let t = app.sign_up_tenant("acme").await;
    let token = t.token.as_str();
    let north = app.new_team(token, "North").await;
    let (ann, _) = app.member(&t, "ann@acme.test", "REP", &[&north]).await;
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Hooked {
        endpoint: Id,
    }
    let hooked: Hooked = app
        .root(
            Some(token),
            "mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }",
            json!({"input": {"url": "http://127.0.0.1:9/hook", "eventTypes": ["DIGEST_WEEKLY"]}}),
        )
        .await;
    assert!(!hooked.endpoint.id.is_empty(), "{hooked:?}");

    let lead = |name: &str, owner: Option<&str>, attributes: Value, value: f64| json!({"name": name, "ownerId": owner, "attributes": attributes, "dealValue": value});
    let anns_open = app
        .new_lead(token, lead("Ann open", Some(&ann), strong(), 100.0))
        .await;
    let anns_lost = app
        .new_lead(token, lead("Ann lost", Some(&ann), weak(), 200.0))
        .await;
    let won = app
        .new_lead(token, lead("Owner won", Some(&t.owner_id), weak(), 300.0))
        .await;
    let hot = app
        .new_lead(token, lead("Pool hot", None, weak(), 400.0))
        .await;
    let up = app
        .record(token, &hot.id, "urgent_quote_request", json!({}))
        .await;
    assert_eq!(up.tier, "A", "its tier rose this week");
    for (l, outcome) in [(&anns_lost, "LOST"), (&won, "WON")] {
        let closed = app
            .lead_mutation(
                token,
                "closeLead",
                "CloseLeadInput",
                json!({"id": l.id, "outcome": outcome}),
            )
            .await
            .unwrap_or_else(|e| panic!("closeLead failed: {e}"));
        assert_eq!(closed.status, outcome, "{closed:?}");
    }

    let company: tenant::Model = tenant::Entity::find_by_id(t.id.parse::<uuid::Uuid>().unwrap())
        .one(&app.system_db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(company.nightly_hour, 2);
    // Monday before the hour, and any Tuesday: nothing.
    assert!(
        !digest::send_if_due(&app.db, &company, next_monday_at(1))
            .await
            .unwrap()
    );
    let monday = next_monday_at(3);
    assert!(
        !digest::send_if_due(
            &app.db,
            &company,
            monday + Duration::days(1) - Duration::days(7)
        )
        .await
        .unwrap()
    );
    assert!(
        digest::send_if_due(&app.db, &company, monday)
            .await
            .unwrap()
    );
    assert!(
        !digest::send_if_due(&app.db, &company, monday + Duration::hours(1))
            .await
            .unwrap(),
        "once a week"
    );

    let deliveries = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::EventType.eq("digest.weekly"))
        .all(&app.system_db)
        .await
        .unwrap();
    assert_eq!(deliveries.len(), 2, "the company and North");
    // A webhook payload is the event, read as JSON as a receiver would:
    // its `data` is the digest, not a GraphQL answer.
    let of = |team: Option<&str>| {
        deliveries
            .iter()
            .map(|d| d.payload["data"].clone())
            .find(|d| d["team"]["id"].as_str() == team)
            .unwrap_or_else(|| panic!("no digest for {team:?}"))
    };
    // The whole company: four new leads, one won (300) and one lost, two
    // open; the one that rose to A heads the movers.
    let all = of(None);
    assert_eq!(
        (
            all["newLeads"].as_i64(),
            all["won"].as_i64(),
            all["lost"].as_i64(),
            all["openLeads"].as_i64()
        ),
        (Some(4), Some(1), Some(1), Some(2)),
        "{all}"
    );
    assert_eq!(all["wonRate"], 0.5);
    assert_eq!(all["wonValue"], 300.0);
    assert_eq!(all["topMovers"][0]["id"], hot.id.as_str());
    assert_eq!(all["topMovers"][0]["tier"], "A");
    let mut overdue = 0;
    for l in [&anns_open, &hot] {
        let now = app.lead_by_id(token, &l.id).await;
        let due: DateTime<Utc> = now
            .next_follow_up_at
            .as_deref()
            .unwrap_or_else(|| panic!("an open lead is due: {now:?}"))
            .parse()
            .unwrap();
        overdue += i64::from(due <= monday);
    }
    assert_eq!(all["overdueLeads"].as_i64(), Some(overdue));
    assert_eq!(all["overdueShare"].as_f64(), Some(overdue as f64 / 2.0));
    let tiers: Vec<&str> = all["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tier"].as_str().unwrap())
        .collect();
    assert_eq!(tiers, ["A", "B", "C", "D"]);
    // North: Ann's two leads.
    let norths = of(Some(&north));
    assert_eq!(norths["team"]["name"], "North");
    assert_eq!(
        (
            norths["newLeads"].as_i64(),
            norths["won"].as_i64(),
            norths["lost"].as_i64(),
            norths["openLeads"].as_i64()
        ),
        (Some(2), Some(0), Some(1), Some(1)),
        "{norths}"
    );
    assert_eq!(norths["wonRate"], 0.0);
    let week_from: DateTime<Utc> = all["from"].as_str().unwrap().parse().unwrap();
    assert_eq!(monday - week_from, Duration::days(7) + Duration::hours(3));
}
