//! API keys for machines (OWNER and ADMIN).

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::api_key;

use crate::graphql::RequestContext;
use crate::{
    error::IntoGraphql,
    service::accounts::api_keys::{self, Scope, Scopes},
};

/// What a key may do.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ApiKeyScope {
    /// Record signals (`POST /v1/events`, `recordActivity`,
    /// `recordActivities`) and create or update leads.
    Ingest,
    /// Read leads and the queue as an ADMIN would; no changes.
    Read,
}

impl From<ApiKeyScope> for Scope {
    fn from(s: ApiKeyScope) -> Self {
        match s {
            ApiKeyScope::Ingest => Self::Ingest,
            ApiKeyScope::Read => Self::Read,
        }
    }
}

impl From<Scope> for ApiKeyScope {
    fn from(s: Scope) -> Self {
        match s {
            Scope::Ingest => Self::Ingest,
            Scope::Read => Self::Read,
        }
    }
}

/// A key for machines. Its secret is shown only by `createApiKey`.
#[derive(SimpleObject)]
pub struct ApiKey {
    pub id: ID,
    pub name: String,
    pub scopes: Vec<ApiKeyScope>,
    pub created_at: DateTime<Utc>,
    /// When it was last used (noted at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked; a revoked key is refused.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<api_key::Model> for ApiKey {
    fn from(k: api_key::Model) -> Self {
        Self {
            id: ID(k.id.to_string()),
            scopes: Scopes::parse(&k.scopes)
                .list()
                .into_iter()
                .map(Into::into)
                .collect(),
            name: k.name,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

#[derive(InputObject)]
pub struct CreateApiKeyInput {
    /// What the key is for, e.g. "website"; history shows it as the author.
    pub name: String,
    pub scopes: Vec<ApiKeyScope>,
}

/// A new key with its secret, shown this once.
#[derive(SimpleObject)]
pub struct CreateApiKeyPayload {
    pub api_key: ApiKey,
    /// `lrk_…`: send it as `Authorization: Bearer lrk_…`. Keep it: LeadRank
    /// stores only its hash and shows it only now.
    pub secret: String,
}

#[derive(InputObject)]
pub struct RevokeApiKeyInput {
    pub id: ID,
}

/// The result of `revokeApiKey`.
#[derive(SimpleObject)]
pub struct ApiKeyPayload {
    pub api_key: ApiKey,
}

#[derive(Default)]
pub struct ApiKeyQuery;

#[Object]
impl ApiKeyQuery {
    /// The company's API keys, newest first, revoked ones included (OWNER
    /// and ADMIN).
    async fn api_keys(&self, ctx: &Context<'_>) -> Result<Vec<ApiKey>> {
        let (principal, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        Ok(api_keys::api_keys(&scope, &principal)
            .await
            .gql()?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

#[derive(Default)]
pub struct ApiKeyMutation;

#[Object]
impl ApiKeyMutation {
    /// Creates a key for a machine (OWNER and ADMIN); the answer carries its
    /// secret, shown only here.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
    ) -> Result<CreateApiKeyPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let scopes: Vec<Scope> = input.scopes.into_iter().map(Into::into).collect();
        let (key, secret) =
            api_keys::create_api_key(&rc.db, &principal, &input.name, &scopes, Utc::now())
                .await
                .gql_at("input")?;
        Ok(CreateApiKeyPayload {
            api_key: key.into(),
            secret,
        })
    }

    /// Revokes a key: it is refused from the next request on (OWNER and
    /// ADMIN).
    async fn revoke_api_key(
        &self,
        ctx: &Context<'_>,
        input: RevokeApiKeyInput,
    ) -> Result<ApiKeyPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let key = api_keys::revoke_api_key(
            &rc.db,
            &principal,
            crate::graphql::id_at("input.id", &input.id)?,
            Utc::now(),
        )
        .await
        .gql_at("input")?;
        Ok(ApiKeyPayload {
            api_key: key.into(),
        })
    }
}
