//! Event ingestion: `POST /v1/events` with an API key, and
//! `recordActivities` in GraphQL. Each event is accepted, a duplicate or
//! rejected on its own; a rejected one writes nothing.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::helpers::{GraphqlErrors, Id, Lead, TestApp, parse_answer, spawn_app, spawn_app_with};

/// How `/v1/events` refused a request: its errors are shaped as GraphQL's
/// and read the same way.
fn refusal(body: &Value) -> GraphqlErrors {
    parse_answer::<Value>("POST /v1/events", body.clone()).expect_err("the events are refused")
}

/// The code `/v1/events` refused a request with.
fn error_code(body: &Value) -> String {
    refusal(body).code().to_owned()
}

/// A lead's activity as [`TestApp::activities_of`] asks for it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Activity {
    signal_key: String,
    note: Option<String>,
    amount: Option<f64>,
    api_key: Option<KeyName>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyName {
    name: String,
}

impl TestApp {
    /// Posts events with `key`; (HTTP status, Retry-After, body). The body
    /// is `/v1/events`' own JSON (`accepted`, `results`), not a GraphQL
    /// answer, and is read as such.
    pub(crate) async fn post_events(
        &self,
        key: &str,
        content_type: &str,
        body: String,
    ) -> (u16, Option<String>, Value) {
        let response = self
            .client
            .post(format!("{}/v1/events", self.address))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        let retry = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, retry, response.json().await.expect("a JSON body"))
    }

    /// Posts a JSON array of events.
    pub(crate) async fn send_events(&self, key: &str, events: Value) -> (u16, Value) {
        let (status, _, body) = self
            .post_events(key, "application/json", events.to_string())
            .await;
        (status, body)
    }

    /// A lead's activities as its owner sees them, newest first.
    async fn activities_of(&self, token: &str, lead: &str) -> Vec<Activity> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Activities {
            activities: Vec<Activity>,
        }
        let lead: Option<Activities> = self
            .root(
                Some(token),
                "query($id: ID!) { lead(id: $id) { activities(first: 200) { signalKey note amount apiKey { name } } } }",
                json!({"id": lead}),
            )
            .await;
        lead.expect("the lead is visible").activities
    }
}

#[tokio::test]
async fn a_mixed_batch_records_the_good_events_naming_each_bad_one() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let known = app
        .new_lead(
            &acme.token,
            json!({"name": "Li Wei", "company": "Hangzhou Optics", "externalId": "crm-1"}),
        )
        .await;
    let key = app.new_api_key(&acme.token, "website", &["INGEST"]).await;

    let (status, body) = app
        .send_events(
            &key.secret,
            json!([
                {"lead": {"externalId": "crm-1"}, "signal": "urgent_quote_request", "occurredAt": "2026-11-30T09:00:00Z"},
                {"lead": {"externalId": "crm-1"}, "signal": "no_such_signal"},
                {"lead": {"externalId": "crm-1"}, "signal": "website_visit", "occurredAt": "2999-01-01T00:00:00Z"},
                {"lead": {"email": "new@visitor.example"}, "signal": "website_visit",
                 "createIfMissing": {"name": "New Visitor", "company": "Visitor GmbH"}},
                {"lead": {"externalId": "crm-404"}, "signal": "website_visit"},
                {"lead": {"externalId": "crm-1"}, "signal": "website_visit", "amount": "lots"},
                "not an event"
            ]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["accepted"].as_i64(), body["rejected"].as_i64()),
        (Some(2), Some(5)),
        "{body}"
    );
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "accepted");
    assert_eq!(results[0]["leadId"], known.id.as_str());
    assert_eq!(results[0]["created"], false);
    assert_eq!(
        (results[1]["code"].as_str(), results[1]["field"].as_str()),
        (Some("BAD_USER_INPUT"), Some("signal"))
    );
    assert_eq!(results[2]["field"], "occurredAt");
    assert_eq!(results[3]["status"], "accepted");
    assert_eq!(results[3]["created"], true);
    assert_eq!(
        (results[4]["code"].as_str(), results[4]["field"].as_str()),
        (Some("NOT_FOUND"), Some("lead"))
    );
    assert_eq!(results[5]["field"], "amount");
    assert_eq!(results[6]["status"], "rejected");

    // Only the accepted event reached the known lead, attributed to the key,
    // and it was scored: an urgent quote request makes it urgent.
    let activities = app.activities_of(&acme.token, &known.id).await;
    assert_eq!(activities.len(), 1, "{activities:?}");
    assert_eq!(activities[0].signal_key, "urgent_quote_request");
    assert_eq!(
        activities[0].api_key.as_ref().map(|k| k.name.as_str()),
        Some("website")
    );
    let lead = app.lead_by_id(&acme.token, &known.id).await;
    assert!(lead.score > known.score, "{lead:?}");
    assert!(lead.has_flag("URGENT"), "{lead:?}");
    assert_eq!(lead.version, known.version + 1);

    // The new lead exists with its email and one activity.
    let created = app
        .lead_by_id(&acme.token, results[3]["leadId"].as_str().unwrap())
        .await;
    assert_eq!(
        (
            created.name.as_str(),
            created.company.as_deref(),
            created.email.as_deref()
        ),
        (
            "New Visitor",
            Some("Visitor GmbH"),
            Some("new@visitor.example")
        )
    );
    assert_eq!(app.activities_of(&acme.token, &created.id).await.len(), 1);
}

#[tokio::test]
async fn each_event_keeps_its_own_note_and_amount_and_absent_ones_stay_empty() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let lead = app
        .new_lead(
            &acme.token,
            json!({"name": "Ana Souza", "company": "Recife Labs", "externalId": "crm-7"}),
        )
        .await;
    let key = app.new_api_key(&acme.token, "shop", &["INGEST"]).await;

    // One batch, so the events are written together: notes and amounts
    // set on some events and absent on others, in both orders.
    let (status, body) = app
        .send_events(
            &key.secret,
            json!([
                {"lead": {"externalId": "crm-7"}, "signal": "website_visit",
                 "occurredAt": "2026-11-30T09:00:00Z", "note": "pricing page", "amount": 120.5},
                {"lead": {"externalId": "crm-7"}, "signal": "website_visit",
                 "occurredAt": "2026-11-30T10:00:00Z"},
                {"lead": {"externalId": "crm-7"}, "signal": "website_visit",
                 "occurredAt": "2026-11-30T11:00:00Z", "amount": 0.0},
                {"lead": {"externalId": "crm-7"}, "signal": "website_visit",
                 "occurredAt": "2026-11-30T12:00:00Z", "note": "docs"}
            ]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"].as_i64(), Some(4), "{body}");

    // Newest first.
    let written: Vec<(Option<String>, Option<f64>)> = app
        .activities_of(&acme.token, &lead.id)
        .await
        .into_iter()
        .map(|a| (a.note, a.amount))
        .collect();
    assert_eq!(
        written,
        vec![
            (Some("docs".to_owned()), None),
            (None, Some(0.0)),
            (None, None),
            (Some("pricing page".to_owned()), Some(120.5)),
        ]
    );
}

#[tokio::test]
async fn a_repeated_idempotency_key_is_a_duplicate_never_a_second_activity() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let lead = app
        .new_lead(
            &acme.token,
            json!({"name": "Li Wei", "externalId": "crm-1"}),
        )
        .await;
    let key = app.new_api_key(&acme.token, "website", &["INGEST"]).await;
    let event = json!({"lead": {"externalId": "crm-1"}, "signal": "website_visit", "idempotencyKey": "visit-42"});

    let (_, first) = app
        .send_events(&key.secret, json!([event.clone(), event.clone()]))
        .await;
    assert_eq!(first["results"][0]["status"], "accepted", "{first}");
    assert_eq!(first["results"][1]["status"], "duplicate");
    assert_eq!(
        first["results"][1]["activityId"],
        first["results"][0]["activityId"]
    );

    // A retry of the whole request, as JSON lines this time.
    let (status, _, again) = app
        .post_events(&key.secret, "application/x-ndjson", format!("{event}\n"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["duplicates"], 1, "{again}");
    assert_eq!(
        again["results"][0]["activityId"],
        first["results"][0]["activityId"]
    );

    assert_eq!(app.activities_of(&acme.token, &lead.id).await.len(), 1);
}

#[tokio::test]
async fn only_an_ingest_key_may_send_events() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let read = app.new_api_key(&acme.token, "dashboard", &["READ"]).await;
    let events = json!([{"lead": {"externalId": "x"}, "signal": "website_visit"}]);

    let (status, body) = app.send_events(&read.secret, events.clone()).await;
    assert_eq!((status, error_code(&body).as_str()), (403, "FORBIDDEN"));
    let (status, body) = app.send_events(&acme.token, events.clone()).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (401, "UNAUTHENTICATED")
    );
    let (status, body) = app.send_events("lrk_nonsense", events.clone()).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (401, "UNAUTHENTICATED")
    );
    let key = app.new_api_key(&acme.token, "website", &["INGEST"]).await;
    let (status, body) = app
        .post_events(&key.secret, "application/json", "[{\"lead\": ".into())
        .await
        .into_parts();
    assert_eq!((status, error_code(&body).as_str()), (400, "BAD_REQUEST"));
}

trait Parts {
    fn into_parts(self) -> (u16, Value);
}

impl Parts for (u16, Option<String>, Value) {
    fn into_parts(self) -> (u16, Value) {
        (self.0, self.2)
    }
}

#[tokio::test]
async fn a_key_sending_too_many_events_is_told_when_to_come_back() {
    let app = spawn_app_with(&[("LEADRANK_INGEST_EVENTS_PER_MINUTE", "3")]).await;
    let acme = app.sign_up_tenant("acme").await;
    let lead = app
        .new_lead(
            &acme.token,
            json!({"name": "Li Wei", "externalId": "crm-1"}),
        )
        .await;
    let key = app.new_api_key(&acme.token, "website", &["INGEST"]).await;
    let event = json!({"lead": {"externalId": "crm-1"}, "signal": "website_visit"});

    let (status, _) = app
        .send_events(
            &key.secret,
            json!([event.clone(), event.clone(), event.clone()]),
        )
        .await;
    assert_eq!(status, 200);
    let (status, retry, body) = app
        .post_events(
            &key.secret,
            "application/json",
            json!([event.clone()]).to_string(),
        )
        .await;
    assert_eq!((status, error_code(&body).as_str()), (429, "RATE_LIMITED"));
    let wait: u64 = retry.unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait));
    assert_eq!(refusal(&body).errors[0].extensions.retry_after, Some(wait));
    // Nothing of the refused request was recorded.
    assert_eq!(app.activities_of(&acme.token, &lead.id).await.len(), 3);

    // recordActivities counts against the same kind of bucket.
    let input: Vec<Value> = (0..4)
        .map(|_| json!({"leadId": lead.id, "signalKey": "website_visit"}))
        .collect();
    let refused = app
        .refused(
            Some(&acme.token),
            "mutation($input: [RecordActivityInput!]!) { recordActivities(input: $input) { accepted } }",
            json!({"input": input}),
        )
        .await;
    assert_eq!(refused.code(), "RATE_LIMITED");
    assert!(
        refused.errors[0]
            .extensions
            .retry_after
            .is_some_and(|wait| wait >= 1),
        "{refused}"
    );
}

#[tokio::test]
async fn record_activities_names_each_bad_activity_by_its_input_path() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    let lead = app.new_lead(&acme.token, json!({"name": "Li Wei"})).await;
    let theirs = app.new_lead(&globex.token, json!({"name": "Hidden"})).await;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Recorded {
        accepted: i64,
        rejected: i64,
        results: Vec<Outcome>,
    }
    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Outcome {
        index: i64,
        status: String,
        lead_id: Option<String>,
        code: Option<String>,
        field: Option<String>,
    }
    let payload: Recorded = app
        .root(
            Some(&acme.token),
            "mutation($input: [RecordActivityInput!]!) { recordActivities(input: $input) { accepted rejected results { index status leadId code field } } }",
            json!({"input": [
                {"leadId": lead.id, "signalKey": "website_visit"},
                {"leadId": lead.id, "signalKey": "nope"},
                {"leadId": theirs.id, "signalKey": "website_visit"},
                {"leadId": "not-an-id", "signalKey": "website_visit"},
                {"leadId": lead.id, "signalKey": "meeting_request", "note": "asked for a demo"}
            ]}),
        )
        .await;
    assert_eq!((payload.accepted, payload.rejected), (2, 3), "{payload:?}");
    let indexes: Vec<i64> = payload.results.iter().map(|r| r.index).collect();
    assert_eq!(indexes, [0, 1, 2, 3, 4], "{payload:?}");
    assert_eq!(
        payload.results[1].field.as_deref(),
        Some("input[1].signalKey")
    );
    // Another tenant's lead is as unknown as one that never existed.
    assert_eq!(payload.results[2].code.as_deref(), Some("NOT_FOUND"));
    assert_eq!(payload.results[2].field.as_deref(), Some("input[2].leadId"));
    assert_eq!(payload.results[3].field.as_deref(), Some("input[3].leadId"));

    let activities = app.activities_of(&acme.token, &lead.id).await;
    assert_eq!(activities.len(), 2);
    assert!(
        activities
            .iter()
            .any(|a| a.note.as_deref() == Some("asked for a demo")),
        "{activities:?}"
    );
    assert!(
        app.activities_of(&globex.token, &theirs.id)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn webhooks_hear_of_what_ingestion_changed() {
    let app = spawn_app_with(&[
        ("LEADRANK_WEBHOOK_WORKER", "false"),
        ("LEADRANK_WEBHOOK_ALLOW_HTTP_LOCALHOST", "true"),
    ])
    .await;
    let acme = app.sign_up_tenant("acme").await;
    app.new_lead(
        &acme.token,
        json!({"name": "Li Wei", "externalId": "crm-1"}),
    )
    .await;
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Created {
        endpoint: Id,
    }
    let created: Created = app
        .root(
            Some(&acme.token),
            "mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }",
            json!({"input": {"url": "http://127.0.0.1:9/hooks", "eventTypes": ["LEAD_BECAME_URGENT"]}}),
        )
        .await;
    assert!(!created.endpoint.id.is_empty());
    let key = app.new_api_key(&acme.token, "website", &["INGEST"]).await;

    let (status, body) = app
        .send_events(
            &key.secret,
            json!([{"lead": {"externalId": "crm-1"}, "signal": "urgent_quote_request"}]),
        )
        .await;
    assert_eq!(
        (status, body["accepted"].as_i64()),
        (200, Some(1)),
        "{body}"
    );

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Delivery {
        event_type: String,
    }
    let deliveries: Vec<Delivery> = app
        .root(
            Some(&acme.token),
            "{ webhookDeliveries { eventType } }",
            json!({}),
        )
        .await;
    let types: Vec<&str> = deliveries.iter().map(|d| d.event_type.as_str()).collect();
    assert_eq!(types, ["lead.became_urgent"], "{deliveries:?}");
}

/// Statements the server ran for one batch of a website visit to each of
/// the first `leads` of the imported `crm-N` leads.
async fn statements_for_a_batch(app: &TestApp, key: &str, leads: usize) -> u64 {
    let events: Vec<Value> = (0..leads)
        .map(|n| json!({"lead": {"externalId": format!("crm-{n}")}, "signal": "website_visit"}))
        .collect();
    let before = app.queries.get();
    let (status, body) = app.send_events(key, Value::Array(events)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"].as_u64(), Some(leads as u64), "{body}");
    app.queries.get() - before
}

#[tokio::test]
async fn a_batch_for_fifty_leads_costs_postgresql_the_statements_of_a_batch_for_five() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let csv: String = std::iter::once("external_id,name,company\n".to_owned())
        .chain((0..50).map(|n| format!("crm-{n},Lead {n},Company {n}\n")))
        .collect();
    crate::import::import_report(&app, &acme.token, &csv, false).await;
    let key = app.new_api_key(&acme.token, "website", &["INGEST"]).await;

    let five = statements_for_a_batch(&app, &key.secret, 5).await;
    let fifty = statements_for_a_batch(&app, &key.secret, 50).await;

    // The count includes the server's background pollers, a few
    // statements either way; a statement per lead would add 45 or more.
    let slack = 5;
    if app.database_url.starts_with("postgres") {
        // Every lead's score and facts go in one statement per table: a
        // round trip per lead is what held ingestion to 2,000 events/s.
        assert!(
            fifty <= five + slack,
            "50 leads ran {fifty} statements, 5 ran {five}"
        );
    } else {
        // SQLite runs in the process, where a statement per lead costs no
        // round trip: two per lead, no more.
        assert!(
            fifty <= five + 2 * 45 + slack,
            "50 leads ran {fifty} statements, 5 ran {five}"
        );
    }
}

#[tokio::test]
async fn a_bulk_write_over_a_lead_changed_since_it_was_read_writes_nothing_of_it() {
    use entity::lead;
    use leadrank::{error::AppError, service::leads::lead_writer::Bulk};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};

    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let first: Lead = app
        .new_lead(&acme.token, json!({"name": "Ana Souza", "company": "Acme"}))
        .await;
    let second = app
        .new_lead(
            &acme.token,
            json!({"name": "Ben Okafor", "company": "Beta"}),
        )
        .await;
    let read = |id: &str| {
        let id: uuid::Uuid = id.parse().unwrap();
        let db = app.system_db.clone();
        async move {
            let found = lead::Entity::find().filter(lead::Column::Id.eq(id));
            found.one(&db).await.unwrap().unwrap()
        }
    };
    let (first_read, second_read) = (read(&first.id).await, read(&second.id).await);

    // Someone renames the second lead after the bulk writer read it.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Renamed {
        lead: Version,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Version {
        version: i64,
    }
    let renamed: Renamed = app
        .root(
            Some(&acme.token),
            "mutation($input: UpdateLeadInput!) { updateLead(input: $input) { lead { version } } }",
            json!({"input": {"id": second.id, "name": "Ben Okafor-Smith", "expectedVersion": second_read.version}}),
        )
        .await;
    assert_eq!(renamed.lead.version, i64::from(second_read.version) + 1);

    let write = |reads: [lead::Model; 2]| {
        let db = app.system_db.clone();
        async move {
            let mut batch = Bulk::new(reads[0].tenant_id, db.get_database_backend());
            let now = chrono::Utc::now();
            for before in &reads {
                let mut after = before.clone();
                after.company = Some("Written by the batch".into());
                batch.update(before, after, "test", now);
            }
            let txn = db.begin().await.unwrap();
            batch.prepared().write(&txn).await?;
            txn.commit().await.unwrap();
            Ok::<_, AppError>(())
        }
    };
    let refused = write([first_read.clone(), second_read.clone()]).await;
    assert!(
        matches!(&refused, Err(AppError::Conflict { existing_id: Some(id), .. }) if *id == second_read.id.uuid()),
        "{:?}",
        refused.err()
    );
    let second_now = read(&second.id).await;
    assert_eq!(
        (second_now.name.as_str(), second_now.company.as_deref()),
        ("Ben Okafor-Smith", Some("Beta"))
    );
    assert_eq!(
        read(&first.id).await,
        first_read,
        "the batch was rolled back"
    );

    // Read afresh, the same batch writes both leads, facts and version.
    write([first_read.clone(), second_now.clone()])
        .await
        .unwrap();
    for (id, was) in [(&first.id, &first_read), (&second.id, &second_now)] {
        let now = read(id).await;
        assert_eq!(now.company.as_deref(), Some("Written by the batch"));
        assert_eq!(
            (now.name.as_str(), now.version),
            (was.name.as_str(), was.version + 1)
        );
    }
}
