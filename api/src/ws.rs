//! GraphQL subscriptions over WebSocket: the `graphql-transport-ws`
//! protocol (and the older `graphql-ws` of subscriptions-transport-ws),
//! authenticated by the access token in the `connection_init` payload.

use std::{sync::Arc, time::Duration};

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason};
use async_graphql::{
    Data,
    http::{ALL_WEBSOCKET_PROTOCOLS, WebSocket, WebSocketProtocols, WsMessage},
};
use futures_util::StreamExt;
use sea_orm::DatabaseConnection;

use crate::{
    auth::{Authentication, Principal},
    graphql::{LeadRankSchema, Loaders, RequestContext, live::Kick},
    service::account::Auth,
};

/// A frame that takes longer than this to hand to a client means the
/// client has stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The close code for a subscriber that fell behind (application range).
const TOO_SLOW: u16 = 4008;

/// The close code of graphql-transport-ws for a refused connection_init.
const FORBIDDEN: u16 = 4403;

/// The access token of a `connection_init` payload: `{"Authorization":
/// "Bearer …"}` (any case) or `{"accessToken": "…"}`.
fn token_of(payload: &serde_json::Value) -> Option<String> {
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

/// Upgrades the request and serves subscriptions until either side closes.
///
/// # Errors
/// When the request is not a WebSocket handshake.
pub fn serve(
    req: &HttpRequest,
    body: web::Payload,
    schema: LeadRankSchema,
    db: DatabaseConnection,
    auth: Arc<Auth>,
    client: String,
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
        return Ok(HttpResponse::BadRequest().json(serde_json::json!({
            "errors": [{"message": "subscribe with the graphql-transport-ws WebSocket protocol",
                        "extensions": {"code": "BAD_REQUEST"}}]
        })));
    };
    let (response, mut session, messages) =
        actix_ws::handle_with_protocols(req, body, &ALL_WEBSOCKET_PROTOCOLS)?;
    let kick = Arc::new(Kick::default());
    let (incoming_tx, incoming_rx) = tokio::sync::mpsc::channel::<String>(16);
    let incoming = futures_util::stream::unfold(incoming_rx, |mut rx| async move {
        rx.recv().await.map(|text| (text, rx))
    });

    // Reads the client's frames; answers pings; ends the protocol's input
    // when the client closes.
    let mut pongs = session.clone();
    actix_web::rt::spawn(async move {
        let mut messages = messages.max_frame_size(64 * 1024).aggregate_continuations();
        while let Some(Ok(message)) = messages.next().await {
            let open = match message {
                actix_ws::AggregatedMessage::Text(text) => {
                    incoming_tx.send(text.to_string()).await.is_ok()
                }
                actix_ws::AggregatedMessage::Ping(bytes) => pongs.pong(&bytes).await.is_ok(),
                actix_ws::AggregatedMessage::Close(_) => false,
                _ => true,
            };
            if !open {
                break;
            }
        }
    });

    let init_kick = kick.clone();
    let refused = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let init_refused = refused.clone();
    let graphql = WebSocket::new(schema, incoming, protocol)
        .on_connection_init(move |payload| async move {
            let refuse = |why: &str| {
                init_refused.store(true, std::sync::atomic::Ordering::Relaxed);
                Err(async_graphql::Error::new(why))
            };
            let authentication = match token_of(&payload) {
                Some(token) => match auth.keys.verify(&token) {
                    Ok(principal) => Authentication::Authenticated(principal),
                    Err(why) => return refuse(why),
                },
                None => {
                    return refuse(
                        "send the access token in the connection_init payload: {\"Authorization\": \"Bearer <accessToken>\"}",
                    );
                }
            };
            let mut data = Data::default();
            if let Authentication::Authenticated(Principal { tenant_id, .. }) = &authentication {
                data.insert(Loaders::new(db.clone(), *tenant_id));
            }
            data.insert(RequestContext {
                db,
                auth,
                authentication,
                client,
            });
            data.insert(init_kick);
            Ok(data)
        })
        .keepalive_timeout(Duration::from_secs(60));

    actix_web::rt::spawn(async move {
        let mut graphql = std::pin::pin!(graphql);
        let close = loop {
            tokio::select! {
                reason = kick.kicked() => {
                    break Some(CloseReason { code: CloseCode::Other(TOO_SLOW), description: Some(reason) });
                }
                out = graphql.next() => match out {
                    Some(WsMessage::Text(text)) => {
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
                        // connection_init; the library sends 1002.
                        let code = if refused.load(std::sync::atomic::Ordering::Relaxed) { FORBIDDEN } else { code };
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_token_comes_from_the_usual_init_payload_shapes() {
        let t = |v: serde_json::Value| token_of(&v);
        assert_eq!(
            t(serde_json::json!({"Authorization": "Bearer abc"})).as_deref(),
            Some("abc")
        );
        assert_eq!(
            t(serde_json::json!({"authorization": "bearer abc"})).as_deref(),
            Some("abc")
        );
        assert_eq!(
            t(serde_json::json!({"accessToken": "abc"})).as_deref(),
            Some("abc")
        );
        assert_eq!(t(serde_json::json!({"Authorization": "Basic abc"})), None);
        assert_eq!(t(serde_json::json!({})), None);
        assert_eq!(t(serde_json::json!(null)), None);
    }
}
