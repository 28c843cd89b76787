//! The GraphQL schema: thin resolvers over `service`, merged per domain.

pub mod accounts;
pub mod analytics;
pub mod assignment;
pub mod configuration;
pub mod cost;
pub mod events;
pub mod ingestion;
pub mod jobs;
pub mod key_gate;
pub mod leads;
pub mod limits;
pub mod loaders;
pub mod persisted;
pub mod subscription;
pub mod types;

use std::sync::Arc;

use async_graphql::{
    MergedObject, Schema,
    dataloader::{DataLoader, HashMapCache, Loader},
};
use sea_orm::DatabaseConnection;

use crate::{
    auth::{Authentication, Principal},
    config::Settings,
    error::{AppError, AppResult},
    service::accounts::account::Auth,
    tenancy::{TenantScope, Walled},
};

/// Every query.
#[derive(MergedObject, Default)]
pub struct Query(
    accounts::account::AccountQuery,
    configuration::ConfigurationQuery,
    leads::lead::LeadQuery,
    jobs::JobQuery,
    accounts::audit::AuditQuery,
    configuration::scoring_models::ModelQuery,
    assignment::AssignmentQuery,
    events::webhooks::WebhookQuery,
    accounts::api_keys::ApiKeyQuery,
    leads::pool::PoolQuery,
    configuration::lost_reasons::LostReasonQuery,
    analytics::review::ReviewQuery,
);

/// Every mutation.
#[derive(MergedObject, Default)]
pub struct Mutation(
    accounts::account::AccountMutation,
    accounts::access::AccessMutation,
    leads::lead::LeadMutation,
    jobs::JobMutation,
    configuration::ConfigurationMutation,
    configuration::scoring_models::ModelMutation,
    ingestion::import::ImportMutation,
    assignment::AssignmentMutation,
    events::webhooks::WebhookMutation,
    accounts::api_keys::ApiKeyMutation,
    ingestion::ingest::IngestMutation,
    leads::pool::PoolMutation,
    configuration::lost_reasons::LostReasonMutation,
    analytics::export::ExportMutation,
);

/// The schema type.
pub type LeadRankSchema = Schema<Query, Mutation, subscription::Subscription>;

/// The schema twice over, with and without the extension that checks
/// the shape of each operation.
///
/// Any extension sends every field of every answer through async-graphql's
/// slow path (a registry lookup, path and type names and a boxed future per
/// value), a fifth of an explained queue's CPU. A single operation over
/// HTTP has its shape checked before it runs (`limits::admit`) and runs on
/// the lean schema; batches and WebSocket operations, whose operations
/// share one allowance, run on the full one.
#[derive(Clone)]
pub struct Schemas {
    /// With the shape checks: batches and WebSocket.
    pub full: LeadRankSchema,
    /// Without: single operations over HTTP, checked beforehand.
    pub lean: LeadRankSchema,
    /// The limits both apply.
    pub limits: limits::DocumentLimits,
    /// Ingested events per caller, shared by `recordActivities` and
    /// `POST /v1/events`.
    pub events_limit: Arc<crate::rate_limit::EventRateLimit>,
}

/// Builds the schemas with the limits from the settings; subscriptions
/// read from `bus`.
pub fn build_schemas(settings: &Settings, bus: crate::live::Bus) -> Schemas {
    let limits = limits::DocumentLimits::from_settings(settings);
    let events_limit = Arc::new(crate::rate_limit::EventRateLimit::new(
        settings.ingest_events_per_minute,
    ));
    let builder = || {
        let builder = Schema::build(
            Query::default(),
            Mutation::default(),
            subscription::Subscription,
        )
        .data(bus.clone())
        .limit_depth(settings.max_query_depth)
        .limit_complexity(settings.max_query_complexity)
        .data(configuration::scoring_models::ActivationInlineLeads(
            settings.activation_inline_leads,
        ))
        .data(settings.webhooks.clone())
        .data(Arc::clone(&events_limit));
        if settings.introspection {
            builder
        } else {
            builder.disable_introspection()
        }
    };
    Schemas {
        full: builder().extension(limits::QueryLimits(limits)).finish(),
        lean: builder().finish(),
        limits,
        events_limit,
    }
}

/// The schema's SDL, as exported to `api/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(
        Query::default(),
        Mutation::default(),
        subscription::Subscription,
    )
    .finish()
    .sdl()
}

/// Everything a resolver needs about the request: the database, who is
/// calling, and from where.
pub struct RequestContext {
    /// The connection pool.
    pub db: DatabaseConnection,
    /// Session issuing and verification.
    pub auth: Arc<Auth>,
    /// What the `Authorization` header amounted to.
    pub authentication: Authentication,
    /// The session of the caller's token (default when anonymous), for
    /// signing out of it.
    pub session: crate::auth::tokens::SessionClaims,
    /// The client's address, for login throttling.
    pub client: String,
    /// The API key the request authenticated with, if it did with one
    /// (then `authentication` holds the key as its principal).
    pub api_key: Option<crate::service::accounts::api_keys::ApiKeyCaller>,
    /// The pool confined to the caller's tenant, made on first need.
    pub walled: std::sync::OnceLock<Walled>,
}

impl RequestContext {
    /// The authenticated caller.
    ///
    /// # Errors
    /// UNAUTHENTICATED without a valid token.
    pub fn principal(&self) -> AppResult<Principal> {
        self.authentication.principal()
    }

    /// The caller and a query scope confined to their tenant.
    ///
    /// # Errors
    /// UNAUTHENTICATED without a valid token.
    pub fn scope(&self) -> AppResult<(Principal, TenantScope<'_, Walled>)> {
        let principal = self.principal()?;
        let walled = self
            .walled
            .get_or_init(|| Walled::new(&self.db, principal.tenant_id));
        if walled.tenant_id() != principal.tenant_id {
            return Err(AppError::Internal(anyhow::anyhow!(
                "a request's connection works for another tenant than its caller"
            )));
        }
        Ok((principal, walled.scope()))
    }
}

/// DataLoaders that batch related-object lookups within one request. Each
/// caches what it loaded for the rest of the request, so lists prime them in
/// one batch (see `leads::lead::prime`) and every item then reads from the cache:
/// a page costs the same number of queries whatever its length.
pub struct Loaders {
    /// Teams of a user.
    pub teams_of_user: RequestLoader<loaders::TeamsOfUser>,
    /// Members of a team.
    pub members_of_team: RequestLoader<loaders::MembersOfTeam>,
    /// Users by id.
    pub user: RequestLoader<loaders::UserById>,
    /// Teams by id.
    pub team: RequestLoader<loaders::TeamById>,
    /// Whole leads by id.
    pub lead: RequestLoader<loaders::LeadById>,
    /// Pipelines with their stages, by id.
    pub pipeline: RequestLoader<loaders::PipelineById>,
    /// API keys by id.
    pub api_key: RequestLoader<loaders::ApiKeyById>,
}

/// A loader that lives for one request and remembers its results.
/// The client's id at `field` (an argument, or a path inside one), as the
/// kind of id it names; a malformed one is BAD_USER_INPUT there.
pub(crate) fn id_at<T: From<uuid::Uuid>>(
    field: &str,
    id: &async_graphql::ID,
) -> async_graphql::Result<T> {
    crate::error::IntoGraphql::gql(crate::service::validate::id(field, id))
}

pub type RequestLoader<T> = DataLoader<T, HashMapCache>;

fn request_loader<K, T>(loader: T) -> RequestLoader<T>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    T: Loader<K>,
{
    // No batching delay: lists call `load_many` with every key at once, and
    // a delay would only add latency to each request.
    DataLoader::with_cache(loader, tokio::spawn, HashMapCache::default())
        .delay(std::time::Duration::ZERO)
}

impl Loaders {
    /// The user `id` of the caller's tenant, through the request's loader;
    /// none for no id.
    ///
    /// # Errors
    /// Database errors.
    pub async fn user(
        ctx: &async_graphql::Context<'_>,
        id: Option<entity::UserId>,
    ) -> async_graphql::Result<Option<types::User>> {
        let Some(id) = id else { return Ok(None) };
        Ok(ctx
            .data::<Self>()?
            .user
            .load_one(id)
            .await
            .map_err(|e| types::ExtendRef::extend_ref(&e))?
            .map(types::User::from))
    }

    /// The API key `id` of the caller's tenant, as [`Self::user`]; none
    /// when `id` is a person's.
    ///
    /// # Errors
    /// Database errors.
    pub async fn api_key(
        ctx: &async_graphql::Context<'_>,
        id: Option<uuid::Uuid>,
    ) -> async_graphql::Result<Option<accounts::api_keys::ApiKey>> {
        let Some(id) = id else { return Ok(None) };
        Ok(ctx
            .data::<Self>()?
            .api_key
            .load_one(id)
            .await
            .map_err(|e| types::ExtendRef::extend_ref(&e))?
            .map(accounts::api_keys::ApiKey::from))
    }

    /// The team `id` of the caller's tenant, as [`Self::user`].
    ///
    /// # Errors
    /// Database errors.
    pub async fn team(
        ctx: &async_graphql::Context<'_>,
        id: Option<entity::TeamId>,
    ) -> async_graphql::Result<Option<types::Team>> {
        let Some(id) = id else { return Ok(None) };
        Ok(ctx
            .data::<Self>()?
            .team
            .load_one(id)
            .await
            .map_err(|e| types::ExtendRef::extend_ref(&e))?
            .map(types::Team::from))
    }

    /// Loaders for one request of `tenant_id`.
    pub fn new(db: DatabaseConnection, tenant_id: uuid::Uuid) -> Self {
        Self {
            teams_of_user: request_loader(loaders::TeamsOfUser {
                db: db.clone(),
                tenant_id,
            }),
            members_of_team: request_loader(loaders::MembersOfTeam {
                db: db.clone(),
                tenant_id,
            }),
            user: request_loader(loaders::UserById {
                db: db.clone(),
                tenant_id,
            }),
            lead: request_loader(loaders::LeadById {
                db: db.clone(),
                tenant_id,
            }),
            team: request_loader(loaders::TeamById {
                db: db.clone(),
                tenant_id,
            }),
            api_key: request_loader(loaders::ApiKeyById {
                db: db.clone(),
                tenant_id,
            }),
            pipeline: request_loader(loaders::PipelineById { db, tenant_id }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    /// The exported schema is what frontends read; it must match the code.
    /// Run `cargo run -p api -- schema > api/schema.graphql` after a change.
    #[test]
    fn the_exported_schema_matches_the_code() {
        let exported =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
                .expect("api/schema.graphql exists");
        let current = super::sdl();
        assert!(
            exported == current,
            "api/schema.graphql is out of date: run `cargo run -p api -- schema > api/schema.graphql`"
        );
    }
}
