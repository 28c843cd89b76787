//! Sign-up, sessions, users, teams and the tenant.

use crate::graphql::cost;
use async_graphql::{Context, ID, InputObject, Object, Result};
use chrono::Utc;

use crate::graphql::{
    RequestContext,
    types::{AuthPayload, Role, Team, TeamPayload, Tenant, TenantPayload, User, UserPayload},
};
use crate::{
    error::IntoGraphql,
    service::{accounts::account, validate},
};

#[derive(InputObject)]
pub struct SignUpInput {
    pub tenant_name: String,
    /// Lower-case letters, digits and hyphens; used to sign in.
    pub tenant_slug: String,
    pub email: String,
    /// At least 10 characters.
    pub password: String,
    pub display_name: String,
    /// `en` or `zh-CN`: names of the default pipeline and signals.
    #[graphql(default_with = "String::from(\"en\")")]
    pub locale: String,
    /// An IANA time zone; the nightly job runs at the tenant's local hour.
    #[graphql(default_with = "String::from(\"UTC\")")]
    pub time_zone: String,
}

#[derive(InputObject)]
pub struct LoginInput {
    pub tenant_slug: String,
    pub email: String,
    pub password: String,
}

#[derive(InputObject)]
pub struct RefreshInput {
    pub refresh_token: String,
}

#[derive(InputObject)]
pub struct CreateUserInput {
    pub email: String,
    pub password: String,
    pub display_name: String,
    pub role: Role,
    pub team_ids: Option<Vec<ID>>,
}

#[derive(InputObject)]
pub struct CreateTeamInput {
    pub name: String,
    pub member_ids: Option<Vec<ID>>,
}

/// Settings to change; an absent one stays as it is.
#[derive(InputObject)]
pub struct UpdateTenantSettingsInput {
    /// Whether a REP may pin the tier of a lead they own.
    pub reps_may_pin: Option<bool>,
}

/// The ids of an optional list at `field`, each once.
fn ids<T: From<uuid::Uuid> + Copy + Ord>(field: &str, list: Option<Vec<ID>>) -> Result<Vec<T>> {
    validate::ids(field, &list.unwrap_or_default()).gql()
}

#[derive(Default)]
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    /// The signed-in user.
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        let (principal, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        Ok(account::me(&scope, &principal).await.gql()?.into())
    }

    /// The signed-in user's tenant.
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn tenant(&self, ctx: &Context<'_>) -> Result<Tenant> {
        let (_, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        Ok(account::get_tenant(&scope).await.gql()?.into())
    }

    /// Every user of the tenant (OWNER and ADMIN).
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn users(&self, ctx: &Context<'_>) -> Result<Vec<User>> {
        let (principal, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        Ok(account::users(&scope, &principal)
            .await
            .gql()?
            .into_iter()
            .map(User::from)
            .collect())
    }

    /// Every team of the tenant.
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn teams(&self, ctx: &Context<'_>) -> Result<Vec<Team>> {
        let (_, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        Ok(account::teams(&scope)
            .await
            .gql()?
            .into_iter()
            .map(Team::from)
            .collect())
    }
}

#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Creates a tenant with its owner and defaults, and signs the owner in.
    async fn sign_up(&self, ctx: &Context<'_>, input: SignUpInput) -> Result<AuthPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let input = account::SignUp {
            tenant_name: input.tenant_name,
            tenant_slug: validate::parse("input.tenantSlug", &input.tenant_slug).gql()?,
            email: validate::parse("input.email", &input.email).gql()?,
            password: input.password,
            display_name: input.display_name,
            locale: validate::parse("input.locale", &input.locale).gql()?,
            time_zone: input.time_zone,
        };
        Ok(
            account::sign_up(&rc.db, &rc.auth, input, &rc.client, Utc::now())
                .await
                .gql_at("input")?
                .into(),
        )
    }

    /// Signs in with the tenant's slug, an email and a password.
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<AuthPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let session = account::login(
            &rc.db,
            &rc.auth,
            &input.tenant_slug,
            &input.email,
            &input.password,
            &rc.client,
            Utc::now(),
        )
        .await;
        Ok(session.gql_at("input")?.into())
    }

    /// Trades a refresh token (usable once) for a new session.
    async fn refresh_session(&self, ctx: &Context<'_>, input: RefreshInput) -> Result<AuthPayload> {
        let rc = ctx.data::<RequestContext>()?;
        Ok(
            account::refresh_session(&rc.db, &rc.auth, &input.refresh_token, Utc::now())
                .await
                .gql_at("input")?
                .into(),
        )
    }

    /// Adds a user to the tenant (OWNER and ADMIN).
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> Result<UserPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let input = account::NewUser {
            email: validate::parse("input.email", &input.email).gql()?,
            password: input.password,
            display_name: input.display_name,
            role: input.role.into(),
            team_ids: ids("input.teamIds", input.team_ids)?,
        };
        let user = account::create_user(&rc.db, &principal, input, Utc::now())
            .await
            .gql_at("input")?;
        Ok(UserPayload { user: user.into() })
    }

    /// Changes the company's settings (OWNER and ADMIN); audited.
    async fn update_tenant_settings(
        &self,
        ctx: &Context<'_>,
        input: UpdateTenantSettingsInput,
    ) -> Result<TenantPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let settings = account::TenantSettings {
            reps_may_pin: input.reps_may_pin,
        };
        let tenant = account::update_tenant_settings(&rc.db, &principal, settings, Utc::now())
            .await
            .gql_at("input")?;
        Ok(TenantPayload {
            tenant: tenant.into(),
        })
    }

    /// Creates a team (OWNER and ADMIN).
    async fn create_team(&self, ctx: &Context<'_>, input: CreateTeamInput) -> Result<TeamPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let team = account::create_team(
            &rc.db,
            &principal,
            &input.name,
            &ids("input.memberIds", input.member_ids)?,
            Utc::now(),
        )
        .await
        .gql_at("input")?;
        Ok(TeamPayload { team: team.into() })
    }
}
