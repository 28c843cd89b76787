//! Webhooks: signed deliveries from the transactional outbox, retried with
//! backoff under the same event id, logged, disabled when an endpoint keeps
//! failing, delivered after a crash, and confined to their company.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{
    hardening::while_healthy,
    helpers::{GraphqlErrors, Id, weak},
    helpers::{TestApp, eventually, spawn_app, spawn_app_with},
};

/// Fast polls and retries, and http to the test's own receiver.
pub(crate) const FAST: [(&str, &str); 3] = [
    ("LEADRANK_WEBHOOK_POLL_MS", "50"),
    ("LEADRANK_WEBHOOK_RETRY_BASE_MS", "50"),
    ("LEADRANK_WEBHOOK_ALLOW_HTTP_LOCALHOST", "true"),
];

/// A server whose webhook worker is off, so that the test runs the
/// worker's passes itself and waits for their sends; http to the test's
/// own receiver is allowed.
pub(crate) const DRIVEN: [(&str, &str); 2] = [
    ("LEADRANK_WEBHOOK_WORKER", "false"),
    ("LEADRANK_WEBHOOK_ALLOW_HTTP_LOCALHOST", "true"),
];

/// Runs one pass of the webhook worker as of `hours` from now and waits
/// for its sends to finish; returns how many deliveries it attempted.
/// Passing the time in makes every retry due without waiting for it:
/// backoff never exceeds six hours, so seven hours a pass always suffice.
async fn deliver_at(
    app: &TestApp,
    settings: &leadrank::config::WebhookSettings,
    hours: i64,
) -> usize {
    let client = leadrank::jobs::webhooks::client(settings).expect("a client");
    let at = chrono::Utc::now() + chrono::Duration::hours(hours);
    leadrank::jobs::webhooks::deliver_due(&app.db, &client, settings, at)
        .await
        .expect("a pass")
}

/// One request as the receiver got it.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    event_id: String,
    pub(crate) event_type: String,
    timestamp: String,
    signature: String,
    pub(crate) body: String,
}

impl Received {
    /// The body as the receiver parses it. A webhook's body is the event
    /// (`{ id type data … }`), not a GraphQL answer: its `data` is the
    /// event's own and is read as JSON, as a receiver would.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

struct Inbox {
    received: Mutex<Vec<Received>>,
    /// Status codes to answer with, in order; 200 once they run out.
    script: Mutex<VecDeque<u16>>,
    /// How many requests have arrived, for tests to wait on.
    arrived: tokio::sync::watch::Sender<usize>,
}

/// A webhook receiver on localhost.
pub(crate) struct Receiver {
    pub(crate) url: String,
    inbox: Arc<Inbox>,
}

impl Receiver {
    pub(crate) async fn start(script: &[u16]) -> Self {
        let inbox = Arc::new(Inbox {
            received: Mutex::default(),
            script: Mutex::new(script.iter().copied().collect()),
            arrived: tokio::sync::watch::Sender::new(0),
        });
        let shared = web::Data::from(inbox.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .expect("a free port");
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        Self {
            url: format!("http://127.0.0.1:{port}/hooks/leadrank"),
            inbox,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.inbox.received.lock().unwrap().clone()
    }

    /// Waits (up to 10 seconds) until `n` requests have arrived: woken by
    /// each arrival, not by a clock.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Received> {
        let mut arrived = self.inbox.arrived.subscribe();
        let within = Duration::from_secs(10);
        match tokio::time::timeout(within, arrived.wait_for(|&count| count >= n)).await {
            Ok(Ok(_)) => self.received(),
            _ => panic!(
                "expected {n} deliveries within {within:?}, got {:?}",
                self.received()
            ),
        }
    }
}

async fn receive(req: HttpRequest, body: web::Bytes, inbox: web::Data<Inbox>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let count = {
        let mut received = inbox.received.lock().unwrap();
        received.push(Received {
            event_id: header("LeadRank-Event-Id"),
            event_type: header("LeadRank-Event-Type"),
            timestamp: header("LeadRank-Timestamp"),
            signature: header("LeadRank-Signature"),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        received.len()
    };
    inbox.arrived.send_replace(count);
    let code = inbox.script.lock().unwrap().pop_front().unwrap_or(200);
    HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap()).finish()
}

/// What a receiver does with the secret: recompute the HMAC of
/// `"{timestamp}.{body}"` and compare in constant time.
fn verifies(secret: &str, timestamp: &str, body: &str, signature: &str) -> bool {
    let Some(hex_sig) = signature.strip_prefix("v1=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    mac.verify_slice(&expected).is_ok()
}

/// What `createWebhookEndpoint` answers: the secret, shown once, and the
/// endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatedEndpoint {
    secret: String,
    endpoint: Endpoint,
}

/// `endpoint { id url eventTypes active }`.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Endpoint {
    id: String,
    url: String,
    event_types: Vec<String>,
    active: bool,
}

/// A delivery as [`TestApp::deliveries`] asks for it.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Delivery {
    endpoint_id: String,
    event_id: String,
    event_type: String,
    status: String,
    attempts: i64,
    last_status_code: Option<i64>,
    last_error: Option<String>,
}

const DELIVERIES: &str = "query($endpoint: ID) { webhookDeliveries(endpointId: $endpoint) {
    endpointId eventId eventType status attempts lastStatusCode lastError } }";

impl TestApp {
    /// Registers an endpoint; (id, secret).
    pub(crate) async fn endpoint(
        &self,
        token: &str,
        url: &str,
        types: &[&str],
    ) -> (String, String) {
        let created = self
            .create_endpoint(token, json!({"url": url, "eventTypes": types}))
            .await
            .unwrap_or_else(|e| panic!("createWebhookEndpoint failed: {e}"));
        assert_eq!(created.endpoint.url, url, "{created:?}");
        assert!(created.endpoint.active, "{created:?}");
        (created.endpoint.id, created.secret)
    }

    /// Registers an endpoint: it and its secret, or why it was refused.
    async fn create_endpoint(
        &self,
        token: &str,
        input: Value,
    ) -> Result<CreatedEndpoint, GraphqlErrors> {
        self.query_root(
            Some(token),
            "mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { secret endpoint { id url eventTypes active } } }",
            json!({"input": input}),
        )
        .await
    }

    /// The company's webhook deliveries, newest first.
    async fn deliveries(&self, token: &str) -> Vec<Delivery> {
        self.root(Some(token), DELIVERIES, json!({})).await
    }

    /// The deliveries to one endpoint, newest first.
    async fn deliveries_to(&self, token: &str, endpoint: &str) -> Vec<Delivery> {
        self.root(Some(token), DELIVERIES, json!({"endpoint": endpoint}))
            .await
    }
}

#[tokio::test]
async fn an_urgent_signal_reaches_the_receiver_signed_so_tampering_fails_verification() {
    let app = spawn_app_with(&FAST).await;
    let acme = app.sign_up_tenant("acme").await;
    let receiver = Receiver::start(&[]).await;
    let (_, secret) = app
        .endpoint(
            &acme.token,
            &receiver.url,
            &["LEAD_BECAME_URGENT", "LEAD_TIER_CHANGED"],
        )
        .await;
    let lead = app
        .new_lead(
            &acme.token,
            json!({"name": "Quiet", "attributes": weak(), "ownerId": acme.owner_id}),
        )
        .await;
    let id = lead.id.as_str();
    let first_tier = lead.tier.clone();
    app.record(&acme.token, id, "urgent_quote_request", json!({}))
        .await;

    // The new lead's first tier, then the urgent signal's two events. An
    // endpoint's deliveries are sent at once, so they may arrive in any
    // order; event ids are time-ordered and give the order they happened.
    let mut got = receiver.wait_for(3).await;
    got.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    let types: Vec<&str> = got.iter().map(|r| r.event_type.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "lead.tier_changed",
            "lead.tier_changed",
            "lead.became_urgent"
        ],
        "{got:?}"
    );
    for r in &got {
        assert!(
            verifies(&secret, &r.timestamp, &r.body, &r.signature),
            "{r:?}"
        );
        assert_eq!(
            r.json()["id"],
            r.event_id.as_str(),
            "the header names the body's event"
        );
        assert_eq!(r.json()["data"]["lead"]["id"], id);
    }
    let lifted = got[1].json();
    assert_eq!(lifted["data"]["previousTier"], first_tier.as_str());
    assert_eq!(lifted["data"]["lead"]["tier"], "A");
    assert_eq!(lifted["data"]["lead"]["flags"], json!(["URGENT"]));
    assert_eq!(lifted["data"]["reason"], "activity: urgent_quote_request");

    // A body changed on the way, or a signature made with another secret,
    // does not verify.
    let r = &got[2];
    let tampered = r.body.replace("\"A\"", "\"D\"");
    assert_ne!(tampered, r.body);
    assert!(!verifies(&secret, &r.timestamp, &tampered, &r.signature));
    assert!(!verifies(
        "whsec_other",
        &r.timestamp,
        &r.body,
        &r.signature
    ));
    let later = (r.timestamp.parse::<i64>().unwrap() + 1).to_string();
    assert!(
        !verifies(&secret, &later, &r.body, &r.signature),
        "the timestamp is signed too"
    );
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_same_event_three_times_as_the_log_shows() {
    let app = spawn_app_with(&DRIVEN).await;
    let settings = worker_settings(true);
    let acme = app.sign_up_tenant("acme").await;
    let receiver = Receiver::start(&[500, 500]).await;
    app.endpoint(&acme.token, &receiver.url, &["LEAD_ASSIGNED"])
        .await;
    let lead = app
        .new_lead(&acme.token, json!({"name": "Pool lead"}))
        .await;
    let assigned = app
        .lead_mutation(
            &acme.token,
            "assignLead",
            "AssignLeadInput",
            json!({"id": lead.id, "ownerId": acme.owner_id}),
        )
        .await
        .unwrap_or_else(|e| panic!("assignLead failed: {e}"));
    assert_eq!(assigned.owner_id(), Some(acme.owner_id.as_str()));

    // Two failures, each retried once its backoff has passed; the third
    // attempt is answered 200.
    for (pass, hours) in [0, 7, 14].into_iter().enumerate() {
        assert_eq!(deliver_at(&app, &settings, hours).await, 1, "pass {pass}");
    }
    let got = receiver.received();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.iter().all(|r| r.event_id == got[0].event_id), "{got:?}");
    assert_eq!(
        got[0].json()["data"]["lead"]["ownerId"],
        acme.owner_id.as_str()
    );
    let log = app.deliveries(&acme.token).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].status, "DELIVERED");
    assert_eq!(log[0].attempts, 3);
    assert_eq!(log[0].last_status_code, Some(200));
    assert_eq!(log[0].event_id, got[0].event_id);
    assert_eq!(log[0].event_type, "lead.assigned");
    // Delivered means done: a pass a day later sends nothing more.
    assert_eq!(deliver_at(&app, &settings, 24).await, 0);
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test]
async fn an_endpoint_that_keeps_failing_is_disabled_with_the_reason() {
    let app = spawn_app_with(&DRIVEN).await;
    let settings = leadrank::config::WebhookSettings {
        disable_after: 3,
        ..worker_settings(true)
    };
    let acme = app.sign_up_tenant("acme").await;
    let receiver = Receiver::start(&[503; 20]).await;
    let (id, _) = app
        .endpoint(&acme.token, &receiver.url, &["LEAD_CLOSED"])
        .await;
    let lead = app.new_lead(&acme.token, json!({"name": "Gone"})).await;
    close(&app, &acme.token, &lead.id, "LOST", Some("no budget")).await;

    // Three failed attempts in a row, each once its backoff has passed;
    // then the endpoint is off and a later pass sends nothing.
    for (pass, hours) in [0, 7, 14].into_iter().enumerate() {
        assert_eq!(deliver_at(&app, &settings, hours).await, 1, "pass {pass}");
    }
    assert_eq!(deliver_at(&app, &settings, 21).await, 0);
    assert_eq!(receiver.received().len(), 3);
    #[derive(Debug, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Health {
        active: bool,
        disabled_reason: Option<String>,
        consecutive_failures: i64,
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Listed {
        id: String,
        #[serde(flatten)]
        health: Health,
    }
    let listed: Vec<Listed> = app
        .root(
            Some(&acme.token),
            "{ webhookEndpoints { id active disabledReason consecutiveFailures } }",
            json!({}),
        )
        .await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let endpoint = &listed[0];
    assert_eq!(endpoint.id, id);
    assert!(!endpoint.health.active, "{endpoint:?}");
    assert_eq!(endpoint.health.consecutive_failures, 3);
    let reason = endpoint
        .health
        .disabled_reason
        .as_deref()
        .unwrap_or_default();
    assert!(
        reason.contains("3 failed attempts") && reason.contains("503"),
        "{reason}"
    );
    let log = app.deliveries(&acme.token).await;
    assert_eq!(log[0].last_status_code, Some(503));

    // Re-enabling clears the count and the reason.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Updated {
        endpoint: Health,
    }
    let updated: Updated = app
        .root(
            Some(&acme.token),
            "mutation($input: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(input: $input) { endpoint { active disabledReason consecutiveFailures } } }",
            json!({"input": {"id": id, "active": true}}),
        )
        .await;
    assert_eq!(
        updated.endpoint,
        Health {
            active: true,
            disabled_reason: None,
            consecutive_failures: 0
        }
    );
}

#[tokio::test]
async fn a_change_committed_before_a_crash_is_delivered_once_after_restart() {
    let mut stopped = FAST.to_vec();
    // As if the process died right after the commit: no worker sends.
    stopped.push(("LEADRANK_WEBHOOK_WORKER", "false"));
    let first = spawn_app_with(&stopped).await;
    let acme = first.sign_up_tenant("acme").await;
    let receiver = Receiver::start(&[]).await;
    first
        .endpoint(&acme.token, &receiver.url, &["LEAD_CLOSED"])
        .await;
    let lead = first.new_lead(&acme.token, json!({"name": "Signed"})).await;
    close(
        &first,
        &acme.token,
        &lead.id,
        "WON",
        Some("contract signed"),
    )
    .await;
    let log = first.deliveries(&acme.token).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, "PENDING");
    assert!(receiver.received().is_empty());

    // Another process on the same database picks the outbox up.
    let mut restarted = FAST.to_vec();
    restarted.push(("DATABASE_URL", first.database_url.as_str()));
    restarted.push(("LEADRANK_JWT_SECRET", first.jwt_secret.as_str()));
    let second = spawn_app_with(&restarted).await;
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].event_type, "lead.closed");
    assert_eq!(got[0].json()["data"]["outcome"], "WON");
    assert_eq!(got[0].event_id, log[0].event_id);
    // The worker records the answer after the receiver has it.
    let (app, token) = (&second, acme.token.as_str());
    let log = eventually(
        "the delivery is logged as delivered",
        Duration::from_secs(10),
        || async move {
            let log = app.deliveries(token).await;
            log.first()
                .is_some_and(|d| d.status == "DELIVERED")
                .then_some(log)
        },
    )
    .await;
    assert_eq!(log.len(), 1, "{log:?}");
    // Exactly once: nothing is left to send, even a day later.
    assert_eq!(deliver_at(&second, &worker_settings(true), 24).await, 0);
    assert_eq!(receiver.received().len(), 1, "exactly once");
}

#[tokio::test]
async fn a_rotated_webhook_secret_signs_every_announcement_from_then_on() {
    let app = spawn_app_with(&FAST).await;
    let acme = app.sign_up_tenant("acme").await;
    let receiver = Receiver::start(&[]).await;
    let (id, old_secret) = app
        .endpoint(&acme.token, &receiver.url, &["JOB_FINISHED"])
        .await;
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Rotated {
        secret: String,
        endpoint: Id,
    }
    let rotated: Rotated = app
        .root(
            Some(&acme.token),
            "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret endpoint { id } } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(rotated.endpoint.id, id);
    let secret = rotated.secret;
    assert_ne!(secret, old_secret);
    let run: Id = app
        .root(
            Some(&acme.token),
            "mutation { runRescoring(input: {}) { id } }",
            json!({}),
        )
        .await;
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].event_type, "job.finished");
    assert_eq!(got[0].json()["data"]["jobRun"]["id"], run.id.as_str());
    assert_eq!(got[0].json()["data"]["jobRun"]["status"], "SUCCEEDED");
    assert!(verifies(
        &secret,
        &got[0].timestamp,
        &got[0].body,
        &got[0].signature
    ));
    assert!(!verifies(
        &old_secret,
        &got[0].timestamp,
        &got[0].body,
        &got[0].signature
    ));

    // The audit log records the endpoint's life, never a secret.
    let entries = app.audit_entries(&acme.token).await;
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"webhook.created") && actions.contains(&"webhook.secret_rotated"));
    let dump = serde_json::to_string(&entries).unwrap();
    assert!(!dump.contains(&secret) && !dump.contains(&old_secret));
}

#[tokio::test]
async fn webhooks_are_managed_by_admins_inside_their_own_company() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    for (url, why) in [
        ("http://hooks.example.com/x", "must use https"),
        (
            "http://127.0.0.1:9/x",
            "LEADRANK_WEBHOOK_ALLOW_HTTP_LOCALHOST",
        ),
        (
            "https://user:pw@hooks.example.com/",
            "user name or password",
        ),
        ("hooks.example.com", "is not a URL"),
    ] {
        let refused = app
            .create_endpoint(
                &acme.token,
                json!({"url": url, "eventTypes": ["LEAD_CLOSED"]}),
            )
            .await
            .expect_err(url);
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{url}: {refused}");
        assert_eq!(refused.field(), "input.url");
        assert!(refused.message().contains(why), "{refused}");
    }
    let none = app
        .create_endpoint(
            &acme.token,
            json!({"url": "https://hooks.example.com/", "eventTypes": []}),
        )
        .await
        .expect_err("no event types");
    assert_eq!(none.field(), "input.eventTypes");

    let (id, _) = app
        .endpoint(
            &acme.token,
            "https://hooks.example.com/leadrank",
            &["LEAD_CLOSED"],
        )
        .await;
    let manager = app.user_with_role(&acme, "MANAGER").await;
    let refused = app
        .create_endpoint(
            &manager,
            json!({"url": "https://hooks.example.com/", "eventTypes": ["LEAD_CLOSED"]}),
        )
        .await
        .expect_err("a manager registers no endpoint");
    assert_eq!(refused.code(), "FORBIDDEN");
    let refused = app
        .refused(Some(&manager), "{ webhookEndpoints { id } }", json!({}))
        .await;
    assert_eq!(refused.code(), "FORBIDDEN");

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Listed {
        webhook_endpoints: Vec<Id>,
        webhook_deliveries: Vec<Id>,
    }
    let listed: Listed = app
        .data(
            Some(&globex.token),
            "{ webhookEndpoints { id } webhookDeliveries { id } }",
            json!({}),
        )
        .await;
    assert!(listed.webhook_endpoints.is_empty(), "{listed:?}");
    assert!(listed.webhook_deliveries.is_empty(), "{listed:?}");
    for query in [
        "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }",
        "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { deletedId } }",
        "query($id: ID!) { webhookDeliveries(endpointId: $id) { id } }",
    ] {
        let refused = app
            .refused(Some(&globex.token), query, json!({"id": id}))
            .await;
        assert_eq!(refused.code(), "NOT_FOUND", "{query}: {refused}");
    }
    // Globex's own changes never reach Acme's endpoint.
    let lead = app.new_lead(&globex.token, json!({"name": "Theirs"})).await;
    close(&app, &globex.token, &lead.id, "LOST", None).await;
    assert!(app.deliveries(&acme.token).await.is_empty());
    assert!(app.deliveries(&globex.token).await.is_empty());
}

/// The README's example receiver (`tests/examples/webhook_receiver.py`),
/// run as a reader would run it, accepts a real delivery.
#[tokio::test]
async fn the_example_receiver_verifies_a_real_delivery() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let app = spawn_app_with(&FAST).await;
    let acme = app.sign_up_tenant("acme").await;
    // The secret comes with the endpoint; the receiver's port after it starts.
    let (id, secret) = app
        .endpoint(&acme.token, "http://127.0.0.1:9/", &["LEAD_CLOSED"])
        .await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/webhook_receiver.py");
    let mut child = Command::new("python3")
        .args([script, "--port", "0"])
        .env("LEADRANK_WEBHOOK_SECRET", &secret)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the example");
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = |lines: &std::sync::mpsc::Receiver<String>| {
        lines
            .recv_timeout(Duration::from_secs(10))
            .expect("the receiver prints a line within 10 s")
    };
    let listening = next_line(&lines);
    let port = listening.strip_prefix("listening on ").expect("its port");
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Moved {
        endpoint: Url,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Url {
        url: String,
    }
    let url = format!("http://127.0.0.1:{port}/");
    let moved: Moved = app
        .root(
            Some(&acme.token),
            "mutation($input: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(input: $input) { endpoint { url } } }",
            json!({"input": {"id": id, "url": url}}),
        )
        .await;
    assert_eq!(moved.endpoint.url, url);
    let lead = app.new_lead(&acme.token, json!({"name": "Example"})).await;
    close(&app, &acme.token, &lead.id, "WON", None).await;
    let verdict = tokio::task::spawn_blocking(move || next_line(&lines))
        .await
        .unwrap();
    child.kill().ok();
    child.wait().ok();
    assert!(
        verdict.starts_with("verified ") && verdict.ends_with(" lead.closed"),
        "{verdict}"
    );
}

/// A TCP listener on loopback that accepts connections and never answers:
/// a receiver as slow as can be, or an internal service that must never
/// hear from the worker. It counts the connections made to it.
struct Hanging {
    port: u16,
    accepted: tokio::sync::watch::Receiver<usize>,
}

impl Hanging {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let port = listener.local_addr().expect("bound").port();
        let (counter, accepted) = tokio::sync::watch::channel(0);
        tokio::spawn(async move {
            // Kept open and unanswered until the test ends.
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
                counter.send_replace(held.len());
            }
        });
        Self { port, accepted }
    }

    fn accepted(&self) -> usize {
        *self.accepted.borrow()
    }

    /// Waits (up to 10 seconds) for a first connection: woken when it is
    /// accepted, not by a clock.
    async fn wait_for_a_connection(&self) {
        let mut accepted = self.accepted.clone();
        let within = Duration::from_secs(10);
        let waited = tokio::time::timeout(within, accepted.wait_for(|&n| n > 0)).await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "nothing connected within {within:?}"
        );
    }
}

impl TestApp {
    /// Stores `url` on an endpoint as it stands in the database, past the
    /// check at registration: an endpoint registered before the check, or
    /// a row written by hand.
    async fn store_endpoint_url(&self, id: &str, url: &str) {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
        entity::webhook_endpoint::Entity::update_many()
            .col_expr(entity::webhook_endpoint::Column::Url, Expr::value(url))
            .filter(entity::webhook_endpoint::Column::Id.eq(id.parse::<uuid::Uuid>().unwrap()))
            .exec(&self.system_db)
            .await
            .expect("the endpoint row");
    }
}

#[tokio::test]
async fn webhook_urls_that_point_inside_the_network_are_refused_at_registration() {
    // Issue 17, item 7: each of these was accepted and the worker connected.
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let attacks = [
        ("https://127.0.0.1/x", "a loopback address (127.0.0.1)"),
        ("https://[::1]/x", "a loopback address (::1)"),
        (
            "https://169.254.169.254/latest/meta-data/",
            "a link-local address (169.254.169.254)",
        ),
        ("https://10.0.0.1/x", "a private address (10.0.0.1)"),
        ("https://0x7f000001/x", "a loopback address (127.0.0.1)"),
        ("https://2130706433/x", "a loopback address (127.0.0.1)"),
        ("https://localhost./x", "a loopback address (localhost.)"),
        (
            "https://metadata.google.internal/computeMetadata/v1/",
            "a name that only resolves inside a network",
        ),
        ("https://[::ffff:127.0.0.1]/x", "a loopback address"),
        ("https://[::ffff:a9fe:a9fe]/x", "a link-local address"),
        ("https://[fd00::1]/x", "a unique-local address"),
        ("https://[fe80::1]/x", "a link-local address"),
        ("https://0.0.0.0/x", "an unspecified address"),
        ("https://[::]/x", "an unspecified address"),
        ("https://224.0.0.1/x", "a multicast address"),
        ("https://[ff02::1]/x", "a multicast address"),
        ("https://192.168.1.1/x", "a private address"),
        ("https://172.16.0.1/x", "a private address"),
        ("https://100.64.0.1/x", "a private address"),
        ("https://127.1/x", "a loopback address (127.0.0.1)"),
        ("https://intranet/x", "a name that only resolves inside"),
    ];
    let answers = while_healthy(&app, async {
        let mut answers = Vec::new();
        for (url, _) in attacks {
            answers.push(
                app.create_endpoint(
                    &acme.token,
                    json!({"url": url, "eventTypes": ["LEAD_CLOSED"]}),
                )
                .await,
            );
        }
        answers
    })
    .await;
    for ((url, why), answer) in attacks.iter().zip(&answers) {
        let refused = answer
            .as_ref()
            .err()
            .unwrap_or_else(|| panic!("{url} was accepted: {answer:?}"));
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{url}: {refused}");
        assert_eq!(refused.field(), "input.url", "{url}");
        let message = refused.message();
        assert!(
            message.contains(why) && message.contains("public internet addresses only"),
            "{url}: {message}"
        );
    }

    // Moving an endpoint inside is refused the same way.
    let (id, _) = app
        .endpoint(&acme.token, "https://hooks.example.com/x", &["LEAD_CLOSED"])
        .await;
    let moved = app
        .refused(
            Some(&acme.token),
            "mutation($input: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(input: $input) { endpoint { id url } } }",
            json!({"input": {"id": id, "url": "https://169.254.169.254/"}}),
        )
        .await;
    assert_eq!(moved.code(), "BAD_USER_INPUT", "{moved}");
    assert_eq!(moved.field(), "input.url");
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Url {
        url: String,
    }
    let listed: Vec<Url> = app
        .root(Some(&acme.token), "{ webhookEndpoints { url } }", json!({}))
        .await;
    let urls: Vec<&str> = listed.iter().map(|e| e.url.as_str()).collect();
    assert_eq!(urls, ["https://hooks.example.com/x"]);
}

#[tokio::test]
async fn the_development_setting_opens_only_loopback_inside_the_network() {
    let app = spawn_app_with(&FAST).await;
    let acme = app.sign_up_tenant("acme").await;
    for url in [
        "http://127.0.0.1:9000/x",
        "http://localhost:9000/x",
        "https://[::1]:9000/x",
    ] {
        let created = app
            .create_endpoint(
                &acme.token,
                json!({"url": url, "eventTypes": ["LEAD_CLOSED"]}),
            )
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(created.endpoint.url, url);
    }
    for url in [
        "https://10.0.0.1/x",
        "https://169.254.169.254/x",
        "https://metadata.google.internal/x",
        "https://[fd00::1]/x",
    ] {
        let refused = app
            .create_endpoint(
                &acme.token,
                json!({"url": url, "eventTypes": ["LEAD_CLOSED"]}),
            )
            .await
            .expect_err(url);
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{url}: {refused}");
        assert_eq!(refused.field(), "input.url");
    }
}

#[tokio::test]
async fn an_internal_url_stored_before_the_check_is_refused_at_send_time_without_connecting() {
    // Production settings (no http, no loopback); the test runs the
    // worker's pass itself.
    let app = spawn_app_with(&[("LEADRANK_WEBHOOK_WORKER", "false")]).await;
    let acme = app.sign_up_tenant("acme").await;
    let inside = Hanging::start().await;
    let port = inside.port;
    for url in [
        format!("https://127.0.0.1:{port}/x"),
        format!("https://localhost.:{port}/x"),
        format!("https://[::ffff:127.0.0.1]:{port}/x"),
    ] {
        let (id, _) = app
            .endpoint(
                &acme.token,
                "https://hooks.example.com/x",
                &["LEAD_TIER_CHANGED"],
            )
            .await;
        app.store_endpoint_url(&id, &url).await;
    }

    app.new_lead(&acme.token, json!({"name": "Probe"})).await;
    let attempted = while_healthy(&app, deliver_at(&app, &worker_settings(false), 0)).await;
    assert_eq!(attempted, 3);
    let log = app.deliveries(&acme.token).await;
    assert_eq!(log.len(), 3, "{log:?}");
    for delivery in &log {
        assert_eq!(delivery.status, "PENDING", "{delivery:?}");
        assert_eq!(delivery.last_status_code, None);
        let error = delivery.last_error.as_deref().unwrap_or_default();
        assert!(
            error.contains("must not point to a loopback address"),
            "{error}"
        );
    }
    assert_eq!(inside.accepted(), 0, "the worker connected inside");
}

/// A DNS server under the attacker's control: every name resolves to
/// `answer`.
fn dns_answering(answer: &'static str) -> leadrank::service::events::webhook_target::Lookup {
    leadrank::service::events::webhook_target::lookup(move |_| async move {
        Ok(vec![answer.parse().unwrap()])
    })
}

fn worker_settings(allow_loopback: bool) -> leadrank::config::WebhookSettings {
    leadrank::config::WebhookSettings {
        worker: true,
        poll_interval: Duration::from_millis(50),
        timeout: Duration::from_secs(5),
        retry_base: Duration::from_secs(60),
        max_attempts: 10,
        disable_after: 50,
        per_endpoint: 4,
        per_tenant: 16,
        allow_http_localhost: allow_loopback,
    }
}

#[tokio::test]
async fn a_name_that_resolves_inside_at_send_time_is_refused_without_connecting() {
    // The test runs the worker itself, with its own DNS answers.
    let app = spawn_app_with(&[("LEADRANK_WEBHOOK_WORKER", "false")]).await;
    let acme = app.sign_up_tenant("acme").await;
    let inside = Hanging::start().await;
    // A public-looking name passes registration; at send time the
    // attacker's DNS points it at this machine (DNS rebinding).
    let url = format!("https://rebind.example.com:{}/x", inside.port);
    app.endpoint(&acme.token, &url, &["LEAD_TIER_CHANGED"])
        .await;
    app.new_lead(&acme.token, json!({"name": "Probe"})).await;

    let settings = worker_settings(false);
    let client =
        leadrank::jobs::webhooks::client_with_lookup(&settings, dns_answering("127.0.0.1"))
            .expect("a client");
    let attempted = while_healthy(
        &app,
        leadrank::jobs::webhooks::deliver_due(&app.db, &client, &settings, chrono::Utc::now()),
    )
    .await
    .expect("a pass");
    assert_eq!(attempted, 1);

    let log = app.deliveries(&acme.token).await;
    let error = log[0].last_error.as_deref().unwrap_or_default();
    assert!(
        error.contains("rebind.example.com resolves to 127.0.0.1")
            && error.contains("a loopback address"),
        "{log:?}"
    );
    assert_eq!(inside.accepted(), 0, "the worker connected inside");
}

#[tokio::test]
async fn a_slow_receiver_slows_only_its_own_endpoint_not_its_tenants_others_nor_other_tenants() {
    // Issue 17, item 8: tenants were served one after another, and a pass
    // waited for every send, so one slow receiver held up everyone's
    // deliveries. Here it never answers within the test, and a request
    // may take a minute before it times out.
    let mut settings = FAST.to_vec();
    settings.extend([
        ("LEADRANK_WEBHOOK_TIMEOUT_SECS", "60"),
        ("LEADRANK_WEBHOOK_CONCURRENCY", "2"),
    ]);
    let app = spawn_app_with(&settings).await;
    let slowco = app.sign_up_tenant("slowco").await;
    let other = app.sign_up_tenant("other").await;
    let slow = Hanging::start().await;
    let sibling = Receiver::start(&[]).await;
    let elsewhere = Receiver::start(&[]).await;
    let (slow_id, _) = app
        .endpoint(
            &slowco.token,
            &format!("http://127.0.0.1:{}/hooks", slow.port),
            &["LEAD_TIER_CHANGED"],
        )
        .await;
    let (sibling_id, _) = app
        .endpoint(&slowco.token, &sibling.url, &["LEAD_TIER_CHANGED"])
        .await;
    app.endpoint(&other.token, &elsewhere.url, &["LEAD_TIER_CHANGED"])
        .await;

    // Five events for the slow endpoint (and its sibling): the worker is
    // stuck on the slow one before the other company's event exists.
    for i in 0..5 {
        app.new_lead(&slowco.token, json!({"name": format!("S{i}")}))
            .await;
    }
    slow.wait_for_a_connection().await;

    let (from_sibling, from_elsewhere) = while_healthy(&app, async {
        app.new_lead(&other.token, json!({"name": "Elsewhere"}))
            .await;
        tokio::join!(sibling.wait_for(5), elsewhere.wait_for(1))
    })
    .await;
    assert_eq!(from_sibling.len(), 5);
    assert_eq!(from_elsewhere.len(), 1);
    assert!(
        slow.accepted() <= 2,
        "the slow endpoint had {} requests in flight, over its limit of 2",
        slow.accepted()
    );
    // The slow endpoint's own deliveries, counted by endpoint: counted by
    // status across the company, a sibling delivery the receiver already
    // had but the worker had not yet logged as DELIVERED read as a sixth
    // PENDING one.
    let stuck = app.deliveries_to(&slowco.token, &slow_id).await;
    assert_eq!(stuck.len(), 5, "{stuck:?}");
    assert!(
        stuck.iter().all(|d| d.status == "PENDING"),
        "the slow endpoint's deliveries wait their turn: {stuck:?}"
    );
    // The sibling's five are logged as delivered once the worker has
    // recorded each answer, which it does after the receiver has it.
    let (app, token, sibling_id) = (&app, slowco.token.as_str(), sibling_id.as_str());
    let delivered = eventually(
        "the sibling's deliveries are logged as delivered",
        Duration::from_secs(10),
        || async move {
            let log = app.deliveries_to(token, sibling_id).await;
            log.iter().all(|d| d.status == "DELIVERED").then_some(log)
        },
    )
    .await;
    assert_eq!(delivered.len(), 5, "{delivered:?}");
}

/// Closes a lead, which must succeed, with `outcome` and a reason.
async fn close(app: &TestApp, token: &str, id: &str, outcome: &str, reason: Option<&str>) {
    let closed = app
        .lead_mutation(
            token,
            "closeLead",
            "CloseLeadInput",
            json!({"id": id, "outcome": outcome, "reason": reason}),
        )
        .await
        .unwrap_or_else(|e| panic!("closeLead failed: {e}"));
    assert_eq!(closed.status, outcome, "{closed:?}");
}
