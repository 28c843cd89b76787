//! Live updates over GraphQL subscriptions (graphql-transport-ws): a
//! subscriber sees its lead's change and its queue move at once; another
//! rep and another company see nothing; two server processes on one
//! database share their updates.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, client::IntoClientRequest},
};

use crate::{
    helpers::{Id, weak},
    helpers::{TestApp, parse_answer, spawn_app, spawn_app_with},
};

/// A `leadChanged` event as [`LEAD_CHANGED`] asks for it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LeadChanged {
    pub(crate) reason: String,
    pub(crate) lead: ChangedLead,
}

/// The lead of a [`LeadChanged`].
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangedLead {
    pub(crate) id: String,
    pub(crate) tier: String,
    pub(crate) score: f64,
    pub(crate) flags: Vec<String>,
    pub(crate) owner: Option<Id>,
}

/// A `queueChanged` event as [`QUEUE_CHANGED`] asks for it.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct QueueChanged {
    owner_id: String,
    lead_ids: Vec<String>,
    reasons: Vec<String>,
}

/// Reads a subscription's `next` payload (a GraphQL answer) as `T`, the
/// value of its one root field.
fn event<T: serde::de::DeserializeOwned>(field: &str, payload: Value) -> T {
    let mut data: std::collections::BTreeMap<String, T> = parse_answer(field, payload)
        .unwrap_or_else(|e| panic!("the subscription answered errors: {e}"));
    data.remove(field)
        .unwrap_or_else(|| panic!("no {field} in the payload"))
}

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A graphql-transport-ws client with one subscription.
pub(crate) struct Subscriber {
    socket: Socket,
}

impl Subscriber {
    /// Connects with `token` and starts `query`; panics unless the server
    /// acknowledges the connection.
    pub(crate) async fn start(app: &TestApp, token: &str, query: &str, variables: Value) -> Self {
        let mut socket = Self::connect(app).await;
        send(&mut socket, json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}})).await;
        let ack = receive(&mut socket, Duration::from_secs(5)).await;
        assert_eq!(
            ack.as_ref().map(|m| m["type"].clone()),
            Some(json!("connection_ack")),
            "{ack:?}"
        );
        send(&mut socket, json!({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}})).await;
        Self { socket }
    }

    /// Connects with `token` and answers whatever the server said to
    /// `connection_init`: the ack, or the close frame.
    pub(crate) async fn init(app: &TestApp, token: &str) -> (Self, Option<Value>) {
        let mut socket = Self::connect(app).await;
        send(&mut socket, json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}})).await;
        let answer = receive(&mut socket, Duration::from_secs(5)).await;
        (Self { socket }, answer)
    }

    pub(crate) async fn connect(app: &TestApp) -> Socket {
        let url = format!("{}/graphql", app.address.replacen("http", "ws", 1));
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (socket, response) = connect_async(request).await.expect("the WebSocket opens");
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some("graphql-transport-ws")
        );
        socket
    }

    /// The next message of the subscription, within `wait`.
    pub(crate) async fn next(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let message = receive(&mut self.socket, wait).await?;
            match message["type"].as_str() {
                Some("next") => return Some(message["payload"].clone()),
                Some("ping") => send(&mut self.socket, json!({"type": "pong"})).await,
                _ => return Some(message),
            }
        }
    }

    /// Sends a protocol message as it is.
    pub(crate) async fn send(&mut self, message: Value) {
        send(&mut self.socket, message).await;
    }

    /// Waits up to `wait` for the server to close the connection, skipping
    /// other messages; the close code and reason.
    pub(crate) async fn closed(&mut self, wait: Duration) -> Option<(u16, String)> {
        let deadline = Instant::now() + wait;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let message = self.next(left).await?;
            if let Some(code) = message.get("close") {
                return Some((
                    code.as_u64()
                        .and_then(|c| u16::try_from(c).ok())
                        .unwrap_or(0),
                    message["reason"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
        None
    }

    /// The first message naming `lead` within `wait`, skipping others.
    pub(crate) async fn about(&mut self, lead: &str, wait: Duration) -> Option<Value> {
        let deadline = Instant::now() + wait;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let payload = self.next(left).await?;
            if payload.to_string().contains(lead) {
                return Some(payload);
            }
        }
        None
    }

    /// Waits until a change of `lead` arrives, skipping others.
    pub(crate) async fn change_of(&mut self, lead: &str) -> LeadChanged {
        let payload = self
            .about(lead, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("no change of lead {lead} within 5 s"));
        let change: LeadChanged = event("leadChanged", payload);
        assert_eq!(change.lead.id, lead, "{change:?}");
        change
    }

    /// Asserts that nothing about `lead` arrives within `wait`.
    async fn never_sees(&mut self, lead: &str, wait: Duration) {
        if let Some(payload) = self.about(lead, wait).await {
            panic!("expected nothing about {lead}, got {payload}");
        }
    }

    /// A subscription starts on the server a moment after `subscribe` is
    /// sent: creates leads from `input` (as `token`) until one arrives, so
    /// what follows is seen by a live subscription.
    pub(crate) async fn until_live(&mut self, app: &TestApp, token: &str, input: Value) {
        for attempt in 0..10 {
            let mut input = input.clone();
            input["name"] = json!(format!("Warm-up {attempt} {}", uuid::Uuid::now_v7()));
            let lead = app.new_lead(token, input).await;
            if self.about(&lead.id, Duration::from_secs(1)).await.is_some() {
                return;
            }
        }
        panic!("the subscription never went live");
    }
}

pub(crate) async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .expect("the socket takes the message");
}

/// The next JSON message within `wait`; `{"close": code, "reason": …}` for
/// a close frame.
pub(crate) async fn receive(socket: &mut Socket, wait: Duration) -> Option<Value> {
    loop {
        let frame = tokio::time::timeout(wait, socket.next()).await.ok()??;
        match frame.ok()? {
            Message::Text(text) => return serde_json::from_str(&text).ok(),
            Message::Close(frame) => {
                return Some(json!({
                    "close": frame.as_ref().map(|f| u16::from(f.code)),
                    "reason": frame.as_ref().map(|f| f.reason.to_string()),
                }));
            }
            _ => {}
        }
    }
}

pub(crate) const LEAD_CHANGED: &str =
    "subscription { leadChanged { reason lead { id tier score flags owner { id } } } }";
pub(crate) const QUEUE_CHANGED: &str =
    "subscription($owner: ID) { queueChanged(ownerId: $owner) { ownerId leadIds reasons } }";

#[tokio::test]
async fn an_urgent_signal_reaches_only_its_reps_subscriptions_at_once() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    let (ada, ada_token) = app.member(&acme, "ada@acme.test", "REP", &[]).await;
    let (_, bo_token) = app.member(&acme, "bo@acme.test", "REP", &[]).await;
    let lead = app
        .new_lead(
            &acme.token,
            json!({"name": "Quiet Co", "attributes": weak(), "ownerId": ada}),
        )
        .await;
    let id = lead.id.as_str();

    let mut ada_leads = Subscriber::start(&app, &ada_token, LEAD_CHANGED, json!({})).await;
    let mut ada_queue = Subscriber::start(&app, &ada_token, QUEUE_CHANGED, json!({})).await;
    let mut bo_leads = Subscriber::start(&app, &bo_token, LEAD_CHANGED, json!({})).await;
    let mut globex_leads = Subscriber::start(&app, &globex.token, LEAD_CHANGED, json!({})).await;
    // Every subscription is live once it has seen a change it may see: a
    // pool lead for Acme's reps, one of Ada's for her queue, one of its own
    // for Globex.
    ada_leads.until_live(&app, &acme.token, json!({})).await;
    bo_leads.until_live(&app, &acme.token, json!({})).await;
    ada_queue
        .until_live(&app, &acme.token, json!({"ownerId": ada}))
        .await;
    globex_leads
        .until_live(&app, &globex.token, json!({}))
        .await;

    // How fast a change reaches subscribers is measured by the bench
    // (`http-bench --subscribers N`), not asserted here: the deadlines only
    // catch a change that never comes.
    app.record(&acme.token, id, "urgent_quote_request", json!({}))
        .await;
    let change = ada_leads.change_of(id).await;
    assert_eq!(change.reason, "activity: urgent_quote_request");
    assert_eq!(change.lead.tier, "A");
    assert_eq!(change.lead.flags, ["URGENT"]);
    let queue = ada_queue
        .about(id, Duration::from_secs(10))
        .await
        .expect("the queue moved");
    let queue: QueueChanged = event("queueChanged", queue);
    assert_eq!(queue.owner_id, ada);
    assert!(queue.lead_ids.iter().any(|l| l == id), "{queue:?}");

    // Another rep and another company get nothing of it.
    bo_leads.never_sees(id, Duration::from_millis(400)).await;
    globex_leads
        .never_sees(id, Duration::from_millis(100))
        .await;
}

#[tokio::test]
async fn a_change_on_one_server_reaches_a_subscriber_of_another_on_the_same_database() {
    let first = spawn_app().await;
    let acme = first.sign_up_tenant("acme").await;
    let second = spawn_app_with(&[
        ("DATABASE_URL", first.database_url.as_str()),
        ("LEADRANK_JWT_SECRET", first.jwt_secret.as_str()),
    ])
    .await;
    let mut subscriber = Subscriber::start(&second, &acme.token, LEAD_CHANGED, json!({})).await;
    subscriber.until_live(&second, &acme.token, json!({})).await;

    let lead = first.new_lead(&acme.token, json!({"name": "There"})).await;
    let change = subscriber.change_of(&lead.id).await;
    assert_eq!(change.reason, "created");
}

#[tokio::test]
async fn a_subscription_needs_the_rights_its_query_would_need() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let (other, _) = app.member(&acme, "cy@acme.test", "REP", &[]).await;
    let (_, rep) = app.member(&acme, "di@acme.test", "REP", &[]).await;

    let mut socket = Subscriber::connect(&app).await;
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {}}),
    )
    .await;
    let refused = receive(&mut socket, Duration::from_secs(5))
        .await
        .expect("an answer");
    assert_eq!(refused["close"], 4403, "{refused}");
    assert!(
        refused["reason"].as_str().unwrap().contains("access token"),
        "{refused}"
    );

    let mut socket = Subscriber::connect(&app).await;
    send(&mut socket, json!({"type": "connection_init", "payload": {"Authorization": "Bearer forged.token.here"}})).await;
    let refused = receive(&mut socket, Duration::from_secs(5))
        .await
        .expect("an answer");
    assert_eq!(refused["close"], 4403, "{refused}");

    // A rep may not follow another rep's queue.
    let mut sub = Subscriber::start(&app, &rep, QUEUE_CHANGED, json!({"owner": other})).await;
    let answer = sub.next(Duration::from_secs(5)).await.expect("an answer");
    let refused =
        parse_answer::<Value>(QUEUE_CHANGED, answer.clone()).expect_err("another rep's queue");
    assert_eq!(refused.code(), "FORBIDDEN", "{refused}");
    // The path is not among the typed fields a refusal carries.
    assert_eq!(answer["errors"][0]["path"], json!(["queueChanged"]));
}

#[tokio::test]
async fn a_manager_follows_only_their_own_teams_leads() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let east = app.new_team(&acme.token, "East").await;
    let west = app.new_team(&acme.token, "West").await;
    let (ed, _) = app.member(&acme, "ed@acme.test", "REP", &[&east]).await;
    let (_, east_boss) = app
        .member(&acme, "eve@acme.test", "MANAGER", &[&east])
        .await;
    let (_, west_boss) = app
        .member(&acme, "wes@acme.test", "MANAGER", &[&west])
        .await;
    let mut east_sub = Subscriber::start(&app, &east_boss, LEAD_CHANGED, json!({})).await;
    let mut west_sub = Subscriber::start(&app, &west_boss, LEAD_CHANGED, json!({})).await;
    east_sub.until_live(&app, &acme.token, json!({})).await;
    west_sub.until_live(&app, &acme.token, json!({})).await;

    // Ed's lead, outside any team: his manager sees it through him.
    let lead = app
        .new_lead(&acme.token, json!({"name": "Ed's", "ownerId": ed}))
        .await;
    let id = lead.id.as_str();
    let change = east_sub.change_of(id).await;
    assert_eq!(change.lead.owner, Some(Id { id: ed.clone() }));
    west_sub.never_sees(id, Duration::from_millis(400)).await;
}
