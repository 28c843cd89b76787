//! Subscriptions: `leadChanged` and `queueChanged`, over WebSocket.
//!
//! A notice names a lead and its owners, never its data: the process reads
//! a batch's leads once, within the batch's tenant, and each subscriber
//! keeps those it may see by the same rule as queries, so it never sees
//! another tenant's or another rep's lead.

use std::{collections::VecDeque, sync::Arc};

use async_graphql::{
    Context, ErrorExtensions, ID, InputObject, Result, SimpleObject, Subscription,
};
use futures_util::{Stream, stream};
use tokio::sync::{Notify, broadcast};
use uuid::Uuid;

use super::{RequestContext, leads::lead::Lead};
use crate::graphql::id_at;
use crate::{
    auth::Principal,
    error::IntoGraphql,
    live::{Bus, Delivered},
    service::{events::Notice, leads::lead_query, leads::visibility::LeadVisibility},
    tenancy::Walled,
};

/// The close code for a subscriber that fell behind (application range).
pub const TOO_SLOW: u16 = 4008;

/// Closes a subscriber's connection with a code and a reason: when it
/// falls behind, or when its access ends.
#[derive(Default)]
pub struct Kick {
    notify: Notify,
    reason: std::sync::Mutex<Option<(u16, String)>>,
}

impl Kick {
    fn kick(&self, reason: String) {
        self.close(TOO_SLOW, reason);
    }

    /// Asks the connection to close with `code` and `reason`; the first
    /// request wins.
    pub fn close(&self, code: u16, reason: String) {
        if let Ok(mut slot) = self.reason.lock() {
            if slot.is_none() {
                crate::metrics::subscriber_dropped();
            }
            slot.get_or_insert((code, reason));
        }
        self.notify.notify_one();
    }

    /// Waits until something asks to close the connection; its code and
    /// reason.
    pub async fn kicked(&self) -> (u16, String) {
        self.notify.notified().await;
        self.reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| (TOO_SLOW, "closed by the server".into()))
    }
}

/// Which changes `leadChanged` reports; none: every lead the caller sees.
#[derive(InputObject, Default)]
pub struct LeadChangeFilter {
    /// Only these leads.
    pub lead_ids: Option<Vec<ID>>,
    /// Only leads owned by this user after the change.
    pub owner_id: Option<ID>,
}

/// A lead as it is after a change.
#[derive(SimpleObject)]
pub struct LeadChange {
    /// The lead now: score, tier, flags, owner, stage.
    pub lead: Lead,
    /// What changed it, e.g. `activity: urgent_quote_request`.
    pub reason: String,
}

/// A queue to refetch (`followUpQueue`): leads of its owner changed,
/// arrived or left.
#[derive(SimpleObject)]
pub struct QueueChange {
    pub owner_id: ID,
    pub lead_ids: Vec<ID>,
    pub reasons: Vec<String>,
}

/// What a subscription needs from the connection.
struct Feed {
    rx: broadcast::Receiver<Arc<Delivered>>,
    kick: Option<Arc<Kick>>,
    tenant_id: Uuid,
}

impl Feed {
    fn open(ctx: &Context<'_>, principal: &Principal) -> Result<Self> {
        Ok(Self {
            rx: ctx.data::<Bus>()?.subscribe(),
            kick: ctx.data_opt::<Arc<Kick>>().cloned(),
            tenant_id: principal.tenant_id,
        })
    }

    /// The tenant's next batch of notices; `Err` when this subscriber fell
    /// behind (its connection is then closed with the reason) or the bus
    /// shut down.
    async fn next(&mut self) -> Option<Result<Arc<Delivered>, String>> {
        loop {
            match self.rx.recv().await {
                Ok(delivered) if delivered.batch.tenant_id == self.tenant_id => {
                    return Some(Ok(delivered));
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let reason =
                        format!("too slow: {missed} updates were missed; reconnect and refetch");
                    if let Some(kick) = &self.kick {
                        kick.kick(reason.clone());
                    }
                    return Some(Err(reason));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[derive(Default)]
pub struct Subscription;

#[Subscription]
impl Subscription {
    /// Each change of a lead the caller may see: re-scored, moved,
    /// assigned, closed. A subscriber that falls behind is disconnected
    /// with the reason.
    async fn lead_changed(
        &self,
        ctx: &Context<'_>,
        filter: Option<LeadChangeFilter>,
    ) -> Result<impl Stream<Item = Result<LeadChange>>> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql()?;
        let filter = filter.unwrap_or_default();
        let only: Option<Vec<entity::LeadId>> = filter
            .lead_ids
            .map(|ids| ids.iter().map(|id| id_at("filter.leadIds", id)).collect())
            .transpose()?;
        let owner = filter
            .owner_id
            .map(|id| id_at("filter.ownerId", &id))
            .transpose()?;
        let viewer = LeadVisibility::load(
            &Walled::new(&rc.db, principal.tenant_id).scope(),
            &principal,
        )
        .await
        .gql()?;
        let feed = Feed::open(ctx, &principal)?;
        let state = (feed, rc.db.clone(), VecDeque::<LeadChange>::new(), false);
        let viewer = Arc::new(viewer);
        Ok(stream::unfold(
            state,
            move |(mut feed, db, mut pending, done)| {
                let (only, viewer) = (only.clone(), Arc::clone(&viewer));
                async move {
                    if done {
                        return None;
                    }
                    loop {
                        if let Some(change) = pending.pop_front() {
                            return Some((Ok(change), (feed, db, pending, false)));
                        }
                        let delivered = match feed.next().await? {
                            Ok(delivered) => delivered,
                            Err(reason) => {
                                let err = async_graphql::Error::new(reason);
                                return Some((Err(err), (feed, db, pending, true)));
                            }
                        };
                        let wanted: Vec<&Notice> = delivered
                            .batch
                            .notices
                            .iter()
                            .filter(|n| {
                                only.as_ref().is_none_or(|ids| ids.contains(&n.lead_id))
                                    && owner.is_none_or(|o| n.owner_id == Some(o))
                                    && viewer.might_see_owned_by(n.owner_id)
                            })
                            .collect();
                        if wanted.is_empty() {
                            continue;
                        }
                        let leads = match delivered.leads(&db).await {
                            Ok(leads) => leads,
                            Err(err) => {
                                return Some((Err(err.extend()), (feed, db, pending, true)));
                            }
                        };
                        for notice in wanted {
                            if let Some(lead) =
                                leads.get(&notice.lead_id).filter(|l| viewer.sees(l))
                            {
                                pending.push_back(LeadChange {
                                    lead: lead.clone().into(),
                                    reason: notice.reason.clone(),
                                });
                            }
                        }
                    }
                }
            },
        ))
    }

    /// The caller's queue (or, for a manager, a rep's of their team)
    /// changed: refetch `followUpQueue`. One event per batch of changes.
    async fn queue_changed(
        &self,
        ctx: &Context<'_>,
        owner_id: Option<ID>,
    ) -> Result<impl Stream<Item = Result<QueueChange>>> {
        let rc = ctx.data::<RequestContext>()?;
        let (principal, scope) = rc.scope().gql()?;
        let owner = owner_id.map(|id| id_at("ownerId", &id)).transpose()?;
        let owner = lead_query::queue_owner(&scope, &principal, owner)
            .await
            .gql()?;
        let feed = Feed::open(ctx, &principal)?;
        Ok(stream::unfold(
            (feed, false),
            move |(mut feed, done)| async move {
                if done {
                    return None;
                }
                loop {
                    match feed.next().await? {
                        Ok(delivered) => {
                            let mine: Vec<&Notice> = delivered
                                .batch
                                .notices
                                .iter()
                                .filter(|n| {
                                    n.owner_id == Some(owner) || n.previous_owner_id == Some(owner)
                                })
                                .collect();
                            if mine.is_empty() {
                                continue;
                            }
                            let change = QueueChange {
                                owner_id: ID(owner.to_string()),
                                lead_ids: mine.iter().map(|n| ID(n.lead_id.to_string())).collect(),
                                reasons: mine.iter().map(|n| n.reason.clone()).collect(),
                            };
                            return Some((Ok(change), (feed, false)));
                        }
                        Err(reason) => {
                            return Some((Err(async_graphql::Error::new(reason)), (feed, true)));
                        }
                    }
                }
            },
        ))
    }
}
