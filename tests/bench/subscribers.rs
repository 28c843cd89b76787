//! WebSocket subscribers for `http-bench --subscribers N`: each follows
//! `leadChanged` as a rep and notes when each change arrived, so the bench
//! can set arrivals against the mutations that caused them.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{
    connect_async,
    tungstenite::{Message, client::IntoClientRequest},
};

/// A change, as both sides see it: the lead and its version after it.
pub type ChangeKey = (String, i64);

/// When each change reached each subscriber that saw it.
#[derive(Clone, Default)]
pub struct Arrivals(Arc<Mutex<HashMap<ChangeKey, Vec<Instant>>>>);

impl Arrivals {
    fn note(&self, key: ChangeKey, at: Instant) {
        if let Ok(mut map) = self.0.lock() {
            map.entry(key).or_default().push(at);
        }
    }

    /// Every arrival's delay after the moment the change was known
    /// committed (`committed`, by key); arrivals before that count as 0.
    pub fn delays(&self, committed: &HashMap<ChangeKey, Instant>) -> Vec<Duration> {
        let Ok(map) = self.0.lock() else {
            return Vec::new();
        };
        let mut delays: Vec<Duration> = committed
            .iter()
            .flat_map(|(key, at)| {
                map.get(key)
                    .into_iter()
                    .flatten()
                    .map(move |arrived| arrived.saturating_duration_since(*at))
            })
            .collect();
        delays.sort();
        delays
    }
}

const SUBSCRIPTION: &str = "subscription { leadChanged { reason lead { id version tier score } } }";

/// Opens one subscription per token in `tokens`, and waits until each is
/// acknowledged.
pub async fn connect(graphql_url: &str, tokens: &[String]) -> anyhow::Result<Arrivals> {
    let arrivals = Arrivals::default();
    let url = graphql_url.replacen("http", "ws", 1);
    for token in tokens {
        let mut request = url.as_str().into_client_request()?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
        let (mut socket, _) = connect_async(request)
            .await
            .context("the WebSocket opens")?;
        let init = json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
        socket.send(Message::Text(init.to_string().into())).await?;
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.contains("connection_ack") => {}
            other => bail!("the server refused a subscriber: {other:?}"),
        }
        let subscribe = json!({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}});
        socket
            .send(Message::Text(subscribe.to_string().into()))
            .await?;
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                let at = Instant::now();
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(body) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if body["type"] == "ping" {
                    let pong = json!({"type": "pong"}).to_string();
                    if socket.send(Message::Text(pong.into())).await.is_err() {
                        break;
                    }
                    continue;
                }
                let lead = &body["payload"]["data"]["leadChanged"]["lead"];
                if let (Some(id), Some(version)) = (lead["id"].as_str(), lead["version"].as_i64()) {
                    arrivals.note((id.to_owned(), version), at);
                }
            }
        });
    }
    Ok(arrivals)
}
