//! The live feed behind GraphQL subscriptions: every server process
//! listens for the notices any process writes (NOTIFY on PostgreSQL, the
//! `change_notices` table on SQLite) and fans them out in memory to its own
//! subscribers.
//!
//! Publishing never waits for a subscriber: the in-memory channel is a
//! bounded broadcast, and a subscriber that falls behind it loses its place
//! and is disconnected with a reason, instead of slowing anyone down.

pub mod ws;

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::Utc;
use entity::{change_notice, lead};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sqlx::postgres::PgListener,
};
use tokio::sync::{OnceCell, broadcast};
use uuid::Uuid;

use crate::{
    auth::access,
    error::AppResult,
    service::{
        configuration::tenant_config,
        events::{CHANNEL, NoticeBatch},
    },
    tenancy::Walled,
};

/// How often SQLite's notices are read.
const SQLITE_POLL: Duration = Duration::from_millis(100);

/// How long SQLite keeps notices: a process reads them within a poll.
const SQLITE_KEEP_MINUTES: i64 = 5;

/// A batch of notices as subscribers get it: the leads it names are read
/// once for all of this process's subscribers, who each keep only what they
/// may see.
pub struct Delivered {
    pub batch: NoticeBatch,
    leads: OnceCell<Arc<HashMap<entity::LeadId, lead::Model>>>,
}

impl Delivered {
    /// The batch's leads as they are now, read at most once.
    ///
    /// # Errors
    /// Database errors.
    pub async fn leads(
        &self,
        db: &DatabaseConnection,
    ) -> AppResult<Arc<HashMap<entity::LeadId, lead::Model>>> {
        self.leads
            .get_or_try_init(|| async {
                let ids = self.batch.notices.iter().map(|n| n.lead_id);
                let walled = Walled::new(db, self.batch.tenant_id);
                let rows = walled
                    .scope()
                    .select::<lead::Entity>()
                    .filter(lead::Column::Id.is_in(ids))
                    .all(&walled)
                    .await?;
                Ok(Arc::new(rows.into_iter().map(|l| (l.id, l)).collect()))
            })
            .await
            .cloned()
    }
}

/// The process's fan-out of notices to its subscribers.
#[derive(Clone)]
pub struct Bus {
    sender: broadcast::Sender<Arc<Delivered>>,
    /// `(tenant, user)` whose access changed, for their open connections.
    access_changes: broadcast::Sender<(Uuid, entity::UserId)>,
}

impl Bus {
    /// A bus holding up to `capacity` batches for its slowest subscriber.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        let (access_changes, _) = broadcast::channel(capacity.max(1));
        Self {
            sender,
            access_changes,
        }
    }

    /// Tells a connection when some user's access changed, to check its own.
    #[must_use]
    pub fn access_changes(&self) -> broadcast::Receiver<(Uuid, entity::UserId)> {
        self.access_changes.subscribe()
    }

    /// A new subscriber's receiver.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Delivered>> {
        self.sender.subscribe()
    }

    fn publish(&self, raw: &str) {
        let batch = match serde_json::from_str::<NoticeBatch>(raw) {
            Ok(batch) => batch,
            Err(err) => {
                tracing::warn!(error = %err, "ignored a change notice that does not parse");
                return;
            }
        };
        if batch.config_changed {
            tenant_config::invalidate(batch.tenant_id);
        }
        for user in &batch.users_changed {
            access::invalidate(batch.tenant_id, *user);
            // No connection of that user is not an error.
            drop(self.access_changes.send((batch.tenant_id, *user)));
        }
        if !batch.notices.is_empty() {
            // No subscriber is not an error.
            drop(self.sender.send(Arc::new(Delivered {
                batch,
                leads: OnceCell::new(),
            })));
        }
    }

    /// Feeds the bus from the database until the process ends.
    pub fn spawn_listener(&self, db: DatabaseConnection) {
        let bus = self.clone();
        tokio::spawn(async move {
            match db.get_database_backend() {
                DbBackend::Postgres => bus.listen_postgres(&db).await,
                _ => bus.poll_sqlite(&db).await,
            }
        });
    }

    async fn listen_postgres(&self, db: &DatabaseConnection) {
        let pool = db.get_postgres_connection_pool();
        loop {
            let listener = async {
                let mut listener = PgListener::connect_with(pool).await?;
                listener.listen(CHANNEL).await?;
                Ok::<_, sea_orm::sqlx::Error>(listener)
            };
            let mut listener = match listener.await {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::warn!(error = %err, "live updates: cannot LISTEN; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            loop {
                match listener.recv().await {
                    Ok(notification) => self.publish(notification.payload()),
                    Err(err) => {
                        tracing::warn!(error = %err, "live updates: the LISTEN connection failed; reconnecting");
                        break;
                    }
                }
            }
        }
    }

    // Reads every tenant's notices: this process's subscribers each re-read
    // through their own scope only what they may see.
    #[allow(clippy::disallowed_methods)]
    async fn poll_sqlite(&self, db: &DatabaseConnection) {
        // The one read across tenants: new notices of any tenant, for this
        // process's subscribers, who each re-read only what they may see.
        let latest = || {
            change_notice::Entity::find()
                .select_only()
                .column(change_notice::Column::Id)
                .order_by_desc(change_notice::Column::Id)
                .into_tuple::<Uuid>()
                .one(db)
        };
        let mut last = latest().await.ok().flatten().unwrap_or(Uuid::nil());
        let mut ticker = tokio::time::interval(SQLITE_POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut polls = 0u64;
        loop {
            ticker.tick().await;
            let fresh = change_notice::Entity::find()
                .filter(change_notice::Column::Id.gt(last))
                .order_by_asc(change_notice::Column::Id)
                .limit(1000)
                .all(db)
                .await;
            match fresh {
                Ok(rows) => {
                    for row in rows {
                        last = row.id;
                        self.publish(&row.payload);
                    }
                }
                Err(err) => tracing::warn!(error = %err, "live updates: reading notices failed"),
            }
            polls += 1;
            if polls.is_multiple_of(600) {
                let cutoff = Utc::now() - chrono::Duration::minutes(SQLITE_KEEP_MINUTES);
                if let Err(err) = change_notice::Entity::delete_many()
                    .filter(change_notice::Column::CreatedAt.lt(cutoff))
                    .exec(db)
                    .await
                {
                    tracing::warn!(error = %err, "live updates: pruning old notices failed");
                }
            }
        }
    }
}
