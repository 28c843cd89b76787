//! GraphQL subscriptions over WebSocket: the `graphql-transport-ws`
//! protocol (and the older `graphql-ws` of subscriptions-transport-ws),
//! authenticated by the access token in the `connection_init` payload.
//!
//! A connection lives no longer than the access it was opened with:
//! - it closes with 4401 when its token expires, unless the client sends a
//!   fresh token of the same user first, in a `ping`'s payload
//!   (`{"type": "ping", "payload": {"Authorization": "Bearer …"}}`);
//! - it closes with 4403 as soon as the user's sessions are revoked, the
//!   user is deactivated or their role changes (every process hears of it
//!   through the change notices);
//! - it holds at most [`LiveLimits::subscriptions_per_connection`]
//!   subscriptions (one more is answered with an `error` message for its
//!   id), and a user holds at most [`LiveLimits::connections_per_user`]
//!   connections per process (one more is closed with 4429).

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, Ordering},
    },
    time::Duration,
};

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason};
use async_graphql::{
    Data,
    http::{ALL_WEBSOCKET_PROTOCOLS, WebSocket, WebSocketProtocols, WsMessage},
};
use chrono::{DateTime, Utc};
use entity::enums::Role;
use futures_util::StreamExt;
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use crate::{
    auth::{Authentication, access, tokens::Claims},
    graphql::{
        LeadRankSchema, Loaders, RequestContext,
        subscription::{Kick, TOO_SLOW},
    },
    live::Bus,
    service::accounts::account::Auth,
};

/// A frame that takes longer than this to hand to a client means the
/// client has stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The close code of graphql-transport-ws for a refused connection_init,
/// and ours for access that ended while the connection was open.
const FORBIDDEN: u16 = 4403;

/// The close code for a token that expired while the connection was open.
const UNAUTHORIZED: u16 = 4401;

/// The close code for one connection too many.
const TOO_MANY: u16 = 4429;

/// How many subscriptions and connections one client may hold.
#[derive(Clone, Copy, Debug)]
pub struct LiveLimits {
    /// `LEADRANK_MAX_SUBSCRIPTIONS_PER_CONNECTION`.
    pub subscriptions_per_connection: usize,
    /// `LEADRANK_MAX_CONNECTIONS_PER_USER`, per process.
    pub connections_per_user: usize,
}

/// The open connections of each user in this process.
#[derive(Default)]
pub struct Connections {
    open: Mutex<HashMap<(Uuid, entity::UserId), usize>>,
}

/// One user's place among the open connections, given back when the
/// connection ends (dropped with the connection's data).
struct Seat {
    registry: Arc<Connections>,
    key: (Uuid, entity::UserId),
}

impl Connections {
    /// A seat for `user` of `tenant`, unless they hold `max` already.
    fn take(self: &Arc<Self>, key: (Uuid, entity::UserId), max: usize) -> Option<Seat> {
        let mut open = self.open.lock().ok()?;
        let held = open.entry(key).or_default();
        if *held >= max {
            return None;
        }
        *held += 1;
        crate::metrics::subscriber(true);
        Some(Seat {
            registry: Arc::clone(self),
            key,
        })
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        crate::metrics::subscriber(false);
        if let Ok(mut open) = self.registry.open.lock()
            && let Some(held) = open.get_mut(&self.key)
        {
            *held = held.saturating_sub(1);
            if *held == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Who holds the connection, once `connection_init` admitted them.
#[derive(Clone)]
struct Holder {
    claims: Claims,
    role: Role,
}

impl Holder {
    fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.claims.exp, 0).unwrap_or_else(Utc::now)
    }
}

/// The access token of a `connection_init` (or `ping`) payload:
/// `{"Authorization": "Bearer …"}` (any case) or `{"accessToken": "…"}`.
fn token_of(payload: &Value) -> Option<String> {
    let object = payload.as_object()?;
    object.iter().find_map(|(key, value)| {
        let value = value.as_str()?;
        match key.to_ascii_lowercase().as_str() {
            "authorization" => value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .map(|t| t.trim().to_owned()),
            "accesstoken" | "token" => Some(value.trim().to_owned()),
            _ => None,
        }
    })
}

/// What the connection needs besides the schema.
pub struct ConnectionDeps {
    pub db: DatabaseConnection,
    pub auth: Arc<Auth>,
    pub bus: Bus,
    pub connections: Arc<Connections>,
    pub limits: LiveLimits,
    pub client: String,
}

/// Upgrades the request and serves subscriptions until either side closes.
///
/// # Errors
/// When the request is not a WebSocket handshake.
pub fn serve(
    req: &HttpRequest,
    body: web::Payload,
    schema: LeadRankSchema,
    deps: ConnectionDeps,
) -> actix_web::Result<HttpResponse> {
    let offered: Vec<&str> = req
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let Some(protocol) = offered
        .iter()
        .find_map(|p| p.parse::<WebSocketProtocols>().ok())
    else {
        return Ok(HttpResponse::BadRequest().json(json!({
            "errors": [{"message": "subscribe with the graphql-transport-ws WebSocket protocol",
                        "extensions": {"code": "BAD_REQUEST"}}]
        })));
    };
    let (response, mut session, messages) =
        actix_ws::handle_with_protocols(req, body, &ALL_WEBSOCKET_PROTOCOLS)?;
    let ConnectionDeps {
        db,
        auth,
        bus,
        connections,
        limits,
        client,
    } = deps;
    let kick = Arc::new(Kick::default());
    let (holder_tx, mut holder_rx) = watch::channel::<Option<Holder>>(None);
    let holder_tx = Arc::new(holder_tx);
    // Subscription ids the client holds open, to cap them.
    let open_ids: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (incoming_tx, incoming_rx) = tokio::sync::mpsc::channel::<String>(16);
    let incoming = futures_util::stream::unfold(incoming_rx, |mut rx| async move {
        rx.recv().await.map(|text| (text, rx))
    });

    // Reads the client's frames; answers pings; refuses a subscription past
    // the cap; ends the protocol's input when the client closes.
    let mut replies = session.clone();
    let reader_ids = Arc::clone(&open_ids);
    actix_web::rt::spawn(async move {
        let mut messages = messages.max_frame_size(64 * 1024).aggregate_continuations();
        while let Some(Ok(message)) = messages.next().await {
            let open = match message {
                actix_ws::AggregatedMessage::Text(text) => {
                    match admit_subscription(&text, &reader_ids, limits) {
                        Some(refusal) => replies.text(refusal).await.is_ok(),
                        None => incoming_tx.send(text.to_string()).await.is_ok(),
                    }
                }
                actix_ws::AggregatedMessage::Ping(bytes) => replies.pong(&bytes).await.is_ok(),
                actix_ws::AggregatedMessage::Close(_) => false,
                _ => true,
            };
            if !open {
                break;
            }
        }
    });

    let close_code = Arc::new(AtomicU16::new(0));
    let init = InitDeps {
        db: db.clone(),
        auth: Arc::clone(&auth),
        kick: Arc::clone(&kick),
        holder: Arc::clone(&holder_tx),
        connections,
        limits,
        client,
        close_code: Arc::clone(&close_code),
    };
    let ping = PingDeps {
        db: db.clone(),
        auth,
        kick: Arc::clone(&kick),
        holder: holder_tx,
    };
    let graphql = WebSocket::new(schema, incoming, protocol)
        .on_connection_init(move |payload| init.admit(payload))
        .on_ping(move |_, payload| ping.reauthenticate(payload))
        .keepalive_timeout(Duration::from_secs(60));

    let mut access_changes = bus.access_changes();
    actix_web::rt::spawn(async move {
        let mut graphql = std::pin::pin!(graphql);
        let close = loop {
            let holder = holder_rx.borrow().clone();
            let expiry = expiry_of(holder.as_ref());
            tokio::select! {
                (code, reason) = kick.kicked() => {
                    break Some(CloseReason { code: CloseCode::Other(code), description: Some(reason) });
                }
                () = tokio::time::sleep_until(expiry), if holder.is_some() => {
                    break Some(CloseReason {
                        code: CloseCode::Other(UNAUTHORIZED),
                        description: Some("your access token expired: send a fresh one in a ping \
                            ({\"type\": \"ping\", \"payload\": {\"Authorization\": \"Bearer …\"}}) \
                            before it expires, or reconnect".into()),
                    });
                }
                changed = holder_rx.changed() => {
                    if changed.is_err() {
                        break None;
                    }
                }
                change = access_changes.recv(), if holder.is_some() => {
                    let ours = match change {
                        Ok(key) => holder.as_ref().is_some_and(|h| key == (h.claims.tid, h.claims.sub)),
                        // Missed some: check ours to be safe.
                        Err(broadcast::error::RecvError::Lagged(_)) => true,
                        Err(broadcast::error::RecvError::Closed) => false,
                    };
                    if let (true, Some(holder)) = (ours, holder.as_ref())
                        && let Some(reason) = still_admitted(&db, holder).await
                    {
                        break Some(CloseReason { code: CloseCode::Other(FORBIDDEN), description: Some(reason) });
                    }
                }
                out = graphql.next() => match out {
                    Some(WsMessage::Text(text)) => {
                        forget_completed(&text, &open_ids);
                        match tokio::time::timeout(SEND_TIMEOUT, session.text(text)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) => break None,
                            Err(_) => break Some(CloseReason {
                                code: CloseCode::Other(TOO_SLOW),
                                description: Some("too slow: the client stopped reading".into()),
                            }),
                        }
                    }
                    Some(WsMessage::Close(code, reason)) => {
                        // graphql-transport-ws says 4403 for a refused
                        // connection_init (the library sends 1002), 4429
                        // for one connection too many.
                        let code = match close_code.load(Ordering::Relaxed) {
                            0 => code,
                            ours => ours,
                        };
                        break Some(CloseReason { code: CloseCode::Other(code), description: Some(reason) });
                    }
                    None => break None,
                }
            }
        };
        let _ = session.close(close).await;
    });
    Ok(response)
}

/// When the holder's token expires, as a timer deadline (far away before
/// anyone is admitted).
fn expiry_of(holder: Option<&Holder>) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    match holder {
        Some(holder) => {
            let left = (holder.expires_at() - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO);
            now + left
        }
        None => now + Duration::from_secs(24 * 3600),
    }
}

/// Why the holder may no longer keep the connection, checking the user as
/// they are now; `None` while they may.
async fn still_admitted(db: &DatabaseConnection, holder: &Holder) -> Option<String> {
    match access::admit(db, &holder.claims, Utc::now()).await {
        Ok(Ok(principal)) if principal.role == holder.role => None,
        Ok(Ok(_)) => {
            Some("your role changed: reconnect to subscribe with your new rights".to_owned())
        }
        Ok(Err(refusal)) => Some(refusal.message().to_owned()),
        Err(err) => {
            // Not knowing is not a reason to cut a subscriber off: the next
            // change, or the token's expiry, checks again.
            tracing::warn!(error = ?err, "could not re-check a subscriber's access");
            None
        }
    }
}

/// Counts a `subscribe` (or the older `start`) against the cap and drops a
/// `complete` (`stop`) from the count; the answer to send instead of
/// passing the frame on when the connection holds too many already.
fn admit_subscription(
    text: &str,
    open: &Mutex<HashSet<String>>,
    limits: LiveLimits,
) -> Option<String> {
    // Only the small control frames are parsed; a subscribe's payload is
    // a query of at most a frame (64 KB).
    let message: Value = serde_json::from_str(text).ok()?;
    let id = message.get("id").and_then(Value::as_str)?;
    let mut open = open.lock().ok()?;
    match message.get("type").and_then(Value::as_str)? {
        "subscribe" | "start" => {
            if open.contains(id) || open.len() < limits.subscriptions_per_connection {
                open.insert(id.to_owned());
                return None;
            }
            let max = limits.subscriptions_per_connection;
            Some(
                json!({"id": id, "type": "error", "payload": [{
                    "message": format!("a connection may hold at most {max} subscriptions: complete one first"),
                    "extensions": {"code": "TOO_MANY_SUBSCRIPTIONS", "max": max},
                }]})
                .to_string(),
            )
        }
        "complete" | "stop" => {
            open.remove(id);
            None
        }
        _ => None,
    }
}

/// A subscription the server completed no longer counts.
fn forget_completed(text: &str, open: &Mutex<HashSet<String>>) {
    // Server messages start with their type; only `complete` ends one.
    if !text.starts_with(r#"{"type":"complete""#) {
        return;
    }
    let id = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|m| m.get("id").and_then(Value::as_str).map(str::to_owned));
    if let (Some(id), Ok(mut open)) = (id, open.lock()) {
        open.remove(&id);
    }
}

/// What `connection_init` needs.
struct InitDeps {
    db: DatabaseConnection,
    auth: Arc<Auth>,
    kick: Arc<Kick>,
    holder: Arc<watch::Sender<Option<Holder>>>,
    connections: Arc<Connections>,
    limits: LiveLimits,
    client: String,
    close_code: Arc<AtomicU16>,
}

impl InitDeps {
    /// Admits the connection with the token of the payload, as a request
    /// would be, within the user's connection allowance.
    async fn admit(self, payload: Value) -> async_graphql::Result<Data> {
        let refuse = |code: u16, why: &str| {
            self.close_code.store(code, Ordering::Relaxed);
            Err(async_graphql::Error::new(why))
        };
        let Some(token) = token_of(&payload) else {
            return refuse(
                FORBIDDEN,
                "send the access token in the connection_init payload: {\"Authorization\": \"Bearer <accessToken>\"}",
            );
        };
        let (authentication, claims) =
            access::authenticate(&self.db, &self.auth.keys, &token, Utc::now()).await;
        let (principal, claims) = match (&authentication, claims) {
            (Authentication::Authenticated(principal), Some(claims)) => (*principal, claims),
            (Authentication::Rejected(why), _) => return refuse(FORBIDDEN, why),
            _ => return refuse(1011, "your access could not be checked; try again"),
        };
        let max = self.limits.connections_per_user;
        let Some(seat) = self
            .connections
            .take((principal.tenant_id, principal.user_id), max)
        else {
            return refuse(
                TOO_MANY,
                &format!("you hold {max} live connections already: close one first"),
            );
        };
        let mut data = Data::default();
        data.insert(Loaders::new(self.db.clone(), principal.tenant_id));
        data.insert(RequestContext {
            db: self.db,
            auth: self.auth,
            authentication,
            session: claims.session(),
            client: self.client,
            // Live updates are for people: a key never passes the token check.
            api_key: None,
            walled: std::sync::OnceLock::new(),
        });
        data.insert(self.kick);
        data.insert(seat);
        self.holder.send_replace(Some(Holder {
            role: principal.role,
            claims,
        }));
        Ok(data)
    }
}

/// What a re-authenticating `ping` needs.
#[derive(Clone)]
struct PingDeps {
    db: DatabaseConnection,
    auth: Arc<Auth>,
    kick: Arc<Kick>,
    holder: Arc<watch::Sender<Option<Holder>>>,
}

impl PingDeps {
    /// A `ping` carrying a token renews the connection's access: the token
    /// must be valid and the same user's, or the connection closes.
    async fn reauthenticate(self, payload: Option<Value>) -> async_graphql::Result<Option<Value>> {
        let Some(token) = payload.as_ref().and_then(token_of) else {
            return Ok(None);
        };
        let Some(current) = self.holder.borrow().clone() else {
            return Ok(None);
        };
        let (authentication, claims) =
            access::authenticate(&self.db, &self.auth.keys, &token, Utc::now()).await;
        match (authentication, claims) {
            (Authentication::Authenticated(principal), Some(claims))
                if claims.tid == current.claims.tid && claims.sub == current.claims.sub =>
            {
                if principal.role != current.role {
                    self.kick.close(
                        FORBIDDEN,
                        "your role changed: reconnect to subscribe with your new rights".into(),
                    );
                } else {
                    self.holder.send_replace(Some(Holder {
                        role: principal.role,
                        claims,
                    }));
                }
            }
            (Authentication::Rejected(why), _) => self.kick.close(FORBIDDEN, why.to_owned()),
            (Authentication::Unavailable, _) => {}
            _ => self.kick.close(
                FORBIDDEN,
                "a connection stays with the user who opened it".into(),
            ),
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_token_comes_from_the_usual_init_payload_shapes() {
        let t = |v: Value| token_of(&v);
        assert_eq!(
            t(json!({"Authorization": "Bearer abc"})).as_deref(),
            Some("abc")
        );
        assert_eq!(
            t(json!({"authorization": "bearer abc"})).as_deref(),
            Some("abc")
        );
        assert_eq!(t(json!({"accessToken": "abc"})).as_deref(), Some("abc"));
        assert_eq!(t(json!({"Authorization": "Basic abc"})), None);
        assert_eq!(t(json!({})), None);
        assert_eq!(t(json!(null)), None);
    }

    #[test]
    fn a_connection_holds_subscriptions_up_to_the_cap_and_completed_ones_free_a_place() {
        let limits = LiveLimits {
            subscriptions_per_connection: 2,
            connections_per_user: 1,
        };
        let open = Mutex::new(HashSet::new());
        let subscribe = |id: &str| {
            json!({"id": id, "type": "subscribe", "payload": {"query": "subscription { x }"}})
                .to_string()
        };
        assert!(admit_subscription(&subscribe("1"), &open, limits).is_none());
        assert!(admit_subscription(&subscribe("2"), &open, limits).is_none());
        let refused = admit_subscription(&subscribe("3"), &open, limits).expect("refused");
        assert!(refused.contains("TOO_MANY_SUBSCRIPTIONS"), "{refused}");
        forget_completed(r#"{"type":"complete","id":"1"}"#, &open);
        assert!(admit_subscription(&subscribe("3"), &open, limits).is_none());
        assert!(
            admit_subscription(
                &json!({"id": "2", "type": "complete"}).to_string(),
                &open,
                limits
            )
            .is_none()
        );
        assert!(admit_subscription(&subscribe("4"), &open, limits).is_none());
    }

    #[test]
    fn a_user_holds_connections_up_to_the_cap_and_a_closed_one_frees_its_seat() {
        let connections = Arc::new(Connections::default());
        let key = (Uuid::now_v7(), entity::UserId::new());
        let first = connections.take(key, 2).expect("a seat");
        let _second = connections.take(key, 2).expect("a seat");
        assert!(connections.take(key, 2).is_none());
        drop(first);
        assert!(connections.take(key, 2).is_some());
    }
}
