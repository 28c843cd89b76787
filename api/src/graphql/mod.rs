//! The GraphQL schema: thin resolvers over `service`, merged per domain.

pub mod account;
pub mod configuration;
pub mod loaders;
pub mod types;

use std::sync::Arc;

use async_graphql::{EmptySubscription, MergedObject, Schema, dataloader::DataLoader};
use sea_orm::DatabaseConnection;

use crate::{
    auth::{Authentication, Principal},
    config::Settings,
    error::AppResult,
    service::account::Auth,
    tenancy::TenantScope,
};

/// Every query.
#[derive(MergedObject, Default)]
pub struct Query(account::AccountQuery, configuration::ConfigurationQuery);

/// Every mutation.
#[derive(MergedObject, Default)]
pub struct Mutation(account::AccountMutation);

/// The schema type.
pub type LeadRankSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema with the limits from the settings.
pub fn build_schema(settings: &Settings) -> LeadRankSchema {
    let builder = Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_depth(settings.max_query_depth)
        .limit_complexity(settings.max_query_complexity);
    let builder = if settings.introspection {
        builder
    } else {
        builder.disable_introspection()
    };
    builder.finish()
}

/// The schema's SDL, as exported to `api/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
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
    /// The client's address, for login throttling.
    pub client: String,
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
    pub fn scope(&self) -> AppResult<(Principal, TenantScope<'_, DatabaseConnection>)> {
        let principal = self.principal()?;
        Ok((principal, TenantScope::new(&self.db, principal.tenant_id)))
    }
}

/// DataLoaders that batch related-object lookups within one request.
pub struct Loaders {
    /// Teams of a user.
    pub teams_of_user: DataLoader<loaders::TeamsOfUser>,
    /// Members of a team.
    pub members_of_team: DataLoader<loaders::MembersOfTeam>,
}

impl Loaders {
    /// Loaders for one request of `tenant_id`.
    pub fn new(db: DatabaseConnection, tenant_id: uuid::Uuid) -> Self {
        Self {
            teams_of_user: DataLoader::new(
                loaders::TeamsOfUser {
                    db: db.clone(),
                    tenant_id,
                },
                tokio::spawn,
            ),
            members_of_team: DataLoader::new(
                loaders::MembersOfTeam { db, tenant_id },
                tokio::spawn,
            ),
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
