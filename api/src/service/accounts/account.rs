//! Tenants, users, teams and sessions.

use entity::{PipelineId, ScoringModelId, StageId, TeamId, UserId};
use std::collections::HashMap;
use std::hash::Hash;

use chrono::{DateTime, Duration, Utc};
use entity::{
    enums::{ModelStatus, Role},
    lead_field, pipeline, refresh_session, scoring_model, signal_type, stage, team, team_member,
    tenant, user,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, sea_query::Expr,
};
use serde_json::json;
use uuid::Uuid;

use crate::domain::{Email, Locale, Slug};
use crate::service::{
    accounts::audit, begin_write, configuration::defaults, configuration::tenant_config, validate,
};
use crate::{
    auth::{
        Principal,
        password::{hash_password, verify_against_nothing, verify_password},
        throttle::{AttemptKeys, LoginThrottle, SignUpThrottle},
        tokens::{RefreshToken, SessionClaims, TokenKeys},
    },
    error::{AppError, AppResult},
    tenancy::{self, TenantScope, Walled},
};

/// What issuing sessions needs, built once at start-up.
#[derive(Clone)]
pub struct Auth {
    /// Signs and verifies access tokens.
    pub keys: TokenKeys,
    /// Lifetime of an access token.
    pub access_ttl: Duration,
    /// Lifetime of a refresh token.
    pub refresh_ttl: Duration,
    /// The longest a session family lives, however often it is refreshed.
    pub session_max_lifetime: Duration,
    /// Failed-login limits.
    pub throttle: LoginThrottle,
    /// Sign-ups per client address.
    pub sign_ups: SignUpThrottle,
}

/// A signed-in session, as `AuthPayload` returns it.
pub struct Session {
    /// The bearer token for requests.
    pub access_token: String,
    /// The one-time token for `refreshSession`.
    pub refresh_token: String,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
    /// The user.
    pub user: user::Model,
    /// Their tenant.
    pub tenant: tenant::Model,
}

/// A new tenant and its owner.
pub struct SignUp {
    pub tenant_name: String,
    pub tenant_slug: Slug,
    pub email: Email,
    pub password: String,
    pub display_name: String,
    pub locale: Locale,
    pub time_zone: String,
}

/// Creates a tenant, its OWNER and its defaults in one transaction, and
/// signs the owner in.
///
/// # Errors
/// BAD_USER_INPUT naming the field; CONFLICT when the slug is taken;
/// RATE_LIMITED after too many sign-ups from `client`.
#[tracing::instrument(skip_all, fields(tenant_slug = %input.tenant_slug, tenant_id = tracing::field::Empty))]
pub async fn sign_up(
    db: &DatabaseConnection,
    auth: &Auth,
    input: SignUp,
    client: &str,
    now: DateTime<Utc>,
) -> AppResult<Session> {
    let tenant_name = validate::required_text("tenant_name", &input.tenant_name, 200)?;
    let slug = String::from(input.tenant_slug);
    let email = String::from(input.email);
    validate::new_password("password", &input.password)?;
    let display_name = validate::required_text("display_name", &input.display_name, 200)?;
    let locale = input.locale.as_str().to_owned();
    let time_zone = validate::time_zone("time_zone", &input.time_zone)?;
    // Sign-up is open and each one creates a company with its defaults:
    // one client address may only make a few per window.
    auth.sign_ups.count_attempt(db, client, now).await?;
    let password_hash = hash_off_thread(input.password.clone()).await?;

    let txn = begin_write(db).await?;
    // The taken tenant's id is not revealed: it belongs to someone else.
    if tenancy::tenants()
        .filter(tenant::Column::Slug.eq(&slug))
        .one(&txn)
        .await?
        .is_some()
    {
        return Err(AppError::Conflict {
            message: format!("the tenant slug \"{slug}\" is taken; choose another"),
            existing_id: None,
        });
    }
    #[allow(clippy::disallowed_methods)] // The new tenant's own row.
    let tenant = tenant::Entity::insert(tenant::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(tenant_name),
        slug: Set(slug),
        locale: Set(locale.clone()),
        time_zone: Set(time_zone),
        nightly_hour: Set(2),
        reps_may_pin: Set(false),
        lost_reason_categories: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_with_returning(&txn)
    .await?;
    let scope = TenantScope::enter(&txn, tenant.id).await?;
    let owner = scope
        .insert(user::ActiveModel {
            id: Set(UserId::new()),
            email: Set(email),
            display_name: Set(display_name),
            role: Set(Role::Owner),
            password_hash: Set(password_hash),
            active: Set(true),
            away: Set(false),
            capacity: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .await?;
    create_tenant_defaults(&scope, &locale, owner.id, now).await?;
    audit::record(
        &scope,
        audit::Change {
            actor: Some(owner.id),
            action: "tenant.created",
            entity: "tenant",
            entity_id: Some(tenant.id),
            before: None,
            after: Some(json!({"name": tenant.name, "slug": tenant.slug, "locale": tenant.locale, "timeZone": tenant.time_zone})),
        },
        now,
    )
    .await?;
    let session = issue_session(&scope, auth, owner, tenant, Family::new(now), now).await?;
    txn.commit().await?;
    tracing::Span::current().record("tenant_id", tracing::field::display(session.tenant.id));
    tracing::info!(tenant_id = %session.tenant.id, "tenant signed up");
    Ok(session)
}

/// The default pipeline, signal types, lead fields and active scoring model.
async fn create_tenant_defaults<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    locale: &str,
    owner: UserId,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let pipeline_id = PipelineId::new();
    scope
        .insert(pipeline::ActiveModel {
            id: Set(pipeline_id),
            name: Set(defaults::pipeline_name(locale).to_owned()),
            is_default: Set(true),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .await?;
    scope
        .insert_many(
            defaults::stages(locale)
                .into_iter()
                .zip(0..)
                .map(|(s, position)| stage::ActiveModel {
                    id: Set(StageId::new()),
                    pipeline_id: Set(pipeline_id),
                    key: Set(s.key.to_owned()),
                    name: Set(s.name.to_owned()),
                    kind: Set(s.kind),
                    position: Set(position),
                    win_probability: Set(s.win_probability),
                    rotting_days: Set(s.rotting_days),
                    post_sale: Set(s.post_sale),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                }),
        )
        .await?;

    let catalog = scoring::templates::default_catalog();
    scope
        .insert_many(catalog.signals.iter().map(|s| signal_type::ActiveModel {
            id: Set(Uuid::now_v7()),
            key: Set(s.key.clone()),
            label: Set(defaults::signal_label(&s.key, locale)),
            points: Set(s.points),
            half_life_days: Set(s.half_life_days),
            urgent: Set(s.urgent),
            direction: Set(defaults::direction(s.direction)),
            retired: Set(s.retired),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }))
        .await?;
    scope
        .insert_many(
            catalog
                .fields
                .iter()
                .zip(0..)
                .map(|(f, position)| lead_field::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    key: Set(f.key.clone()),
                    label: Set(defaults::field_label(&f.key, locale)),
                    field_type: Set(defaults::field_type(f.field_type)),
                    options: Set(json!(f.options)),
                    required: Set(false),
                    position: Set(position),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                }),
        )
        .await?;

    let model = scoring::templates::general();
    if let Err(errors) = model.validate(&catalog) {
        return Err(AppError::Internal(anyhow::anyhow!(
            "the default scoring model does not validate: {errors:?}"
        )));
    }
    scope
        .insert(scoring_model::ActiveModel {
            id: Set(ScoringModelId::new()),
            team_id: Set(None),
            version: Set(1),
            status: Set(ModelStatus::Active),
            name: Set(defaults::model_name(locale).to_owned()),
            config: Set(model.to_json()),
            created_by: Set(Some(owner)),
            created_at: Set(now),
            activated_at: Set(Some(now)),
            retired_at: Set(None),
            ..Default::default()
        })
        .await?;
    Ok(())
}

/// A session family: the refresh tokens that descend from one sign-in.
#[derive(Clone, Copy, Debug)]
pub struct Family {
    /// The family's id, carried by its access tokens as `sid`.
    pub id: Uuid,
    /// When the sign-in happened: the family ends at this plus
    /// [`Auth::session_max_lifetime`].
    pub started_at: DateTime<Utc>,
}

impl Family {
    /// A new family, for a sign-in at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            started_at: now,
        }
    }
}

/// Issues an access token and a new refresh token in `family`. The access
/// token carries the user's session version and the family, so revoking
/// either stops it; the refresh token never outlives the family.
pub(crate) async fn issue_session<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    auth: &Auth,
    user: user::Model,
    tenant: tenant::Model,
    family: Family,
    now: DateTime<Utc>,
) -> AppResult<Session> {
    let principal = Principal {
        tenant_id: tenant.id,
        user_id: user.id,
        role: user.role,
    };
    let expires_at = now + auth.access_ttl;
    let access_token = auth.keys.issue_for_session(
        &principal,
        SessionClaims {
            version: user.session_version,
            family: Some(family.id),
        },
        now,
        expires_at,
    )?;
    let refresh = RefreshToken::generate(tenant.id)?;
    let refresh_expires_at =
        (now + auth.refresh_ttl).min(family.started_at + auth.session_max_lifetime);
    scope
        .insert(refresh_session::ActiveModel {
            id: Set(refresh.session_id),
            user_id: Set(user.id),
            family_id: Set(family.id),
            token_hash: Set(refresh.hash()),
            created_at: Set(now),
            expires_at: Set(refresh_expires_at),
            rotated_at: Set(None),
            revoked_at: Set(None),
            family_started_at: Set(Some(family.started_at)),
            ..Default::default()
        })
        .await?;
    Ok(Session {
        access_token,
        refresh_token: refresh.encode(),
        expires_at,
        user,
        tenant,
    })
}

const BAD_CREDENTIALS: &str = "the tenant, email or password is not correct";

/// Signs a user in. The answer and the time taken are the same whether the
/// tenant or email exist or not.
///
/// # Errors
/// UNAUTHENTICATED on bad credentials; RATE_LIMITED after too many failures.
#[tracing::instrument(skip_all, fields(tenant_slug = %tenant_slug, tenant_id = tracing::field::Empty))]
pub async fn login(
    db: &DatabaseConnection,
    auth: &Auth,
    tenant_slug: &str,
    email: &str,
    password: &str,
    client: &str,
    now: DateTime<Utc>,
) -> AppResult<Session> {
    let slug = tenant_slug.trim().to_lowercase();
    let email = email.trim().to_lowercase();
    let attempt = AttemptKeys::new(&slug, &email, client);
    // The attempt is counted before the password is checked, so concurrent
    // guesses cannot all slip under the limit; a success uncounts it.
    let pending = auth.throttle.begin_attempt(db, &attempt, now).await?;

    let tenant = tenancy::tenants()
        .filter(tenant::Column::Slug.eq(&slug))
        .one(db)
        .await?;
    let user = match &tenant {
        Some(tenant) => {
            let walled = Walled::new(db, tenant.id);
            walled
                .scope()
                .select::<user::Entity>()
                .filter(user::Column::Email.eq(&email))
                .filter(user::Column::Active.eq(true))
                .one(&walled)
                .await?
        }
        None => None,
    };
    // Verify against a dummy hash when there is no user, so both cost the same.
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let password = password.to_owned();
    let verified = tokio::task::spawn_blocking(move || match stored {
        Some(hash) => verify_password(&password, &hash),
        None => {
            verify_against_nothing(&password);
            false
        }
    })
    .await
    .map_err(|err| {
        AppError::Internal(anyhow::Error::new(err).context("password check did not finish"))
    })?;
    let (Some(tenant), Some(user), true) = (tenant, user, verified) else {
        tracing::info!("login refused");
        return Err(AppError::Unauthorized(BAD_CREDENTIALS));
    };
    tracing::Span::current().record("tenant_id", tracing::field::display(tenant.id));
    pending.forget(db).await?;
    attempt.remember_client(db, now).await?;
    let txn = begin_write(db).await?;
    let session = issue_session(
        &TenantScope::enter(&txn, tenant.id).await?,
        auth,
        user,
        tenant,
        Family::new(now),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(session)
}

/// Trades a refresh token for a new session. Each refresh token works
/// once: presenting a used one ends its whole session family, since it means
/// the token was copied.
///
/// # Errors
/// UNAUTHENTICATED for unknown, expired, revoked or reused tokens.
#[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty))]
pub async fn refresh_session(
    db: &DatabaseConnection,
    auth: &Auth,
    raw: &str,
    now: DateTime<Utc>,
) -> AppResult<Session> {
    const INVALID: &str = "the refresh token is not valid; sign in again";
    let token = RefreshToken::parse(raw).ok_or(AppError::Unauthorized(INVALID))?;
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, token.tenant_id).await?;
    let session = scope
        .find::<refresh_session::Entity>(token.session_id)
        .await?;
    let Some(session) = session.filter(|s| constant_time_eq(&s.token_hash, &token.hash())) else {
        return Err(AppError::Unauthorized(INVALID));
    };
    // Only once the token checks out: an unchecked one may name any tenant.
    tracing::Span::current().record("tenant_id", tracing::field::display(token.tenant_id));
    if session.revoked_at.is_some() || session.expires_at <= now {
        return Err(AppError::Unauthorized(INVALID));
    }
    // However often it is refreshed, a sign-in lasts no longer than the
    // maximum lifetime: a stolen refresh token cannot be kept alive forever.
    let family = Family {
        id: session.family_id,
        started_at: session.family_started_at.unwrap_or(session.created_at),
    };
    if family.started_at + auth.session_max_lifetime <= now {
        return Err(AppError::Unauthorized(
            "this session reached its maximum lifetime; sign in again",
        ));
    }
    // Claim the token atomically: of two concurrent refreshes, one wins.
    let claimed = scope
        .update_many::<refresh_session::Entity>()
        .col_expr(refresh_session::Column::RotatedAt, Expr::value(now))
        .filter(refresh_session::Column::Id.eq(session.id))
        .filter(refresh_session::Column::RotatedAt.is_null())
        .exec(&txn)
        .await?;
    if claimed.rows_affected != 1 {
        scope
            .update_many::<refresh_session::Entity>()
            .col_expr(refresh_session::Column::RevokedAt, Expr::value(now))
            .filter(refresh_session::Column::FamilyId.eq(session.family_id))
            .filter(refresh_session::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        // The family's access tokens stop too, on every process.
        super::access::commit_change(txn, token.tenant_id, &[session.user_id], now).await?;
        tracing::warn!(tenant_id = %token.tenant_id, user_id = %session.user_id, "a used refresh token was presented again; its session family is revoked");
        return Err(AppError::Unauthorized(
            "this refresh token was already used, so the session has been ended for safety; sign in again",
        ));
    }
    let user = scope
        .find::<user::Entity>(session.user_id)
        .await?
        .filter(|u| u.active)
        .ok_or(AppError::Unauthorized(INVALID))?;
    let tenant = tenancy::tenant(token.tenant_id)
        .one(&txn)
        .await?
        .ok_or(AppError::Unauthorized(INVALID))?;
    let fresh = issue_session(&scope, auth, user, tenant, family, now).await?;
    txn.commit().await?;
    Ok(fresh)
}

pub(crate) async fn hash_off_thread(password: String) -> AppResult<String> {
    // Argon2 takes tens of milliseconds of CPU: keep it off the request workers.
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|err| {
            AppError::Internal(anyhow::Error::new(err).context("password hashing did not finish"))
        })?
        .map_err(AppError::Internal)
}

pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The caller's tenant.
///
/// # Errors
/// NOT_FOUND if the tenant was deleted.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %scope.tenant_id()))]
pub async fn get_tenant<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
) -> AppResult<tenant::Model> {
    tenancy::tenant(scope.tenant_id())
        .one(scope.conn())
        .await?
        .ok_or_else(|| AppError::not_found("tenant", scope.tenant_id()))
}

/// The fields of `UpdateTenantSettingsInput`; `None` leaves a setting as
/// it is.
#[derive(Default)]
pub struct TenantSettings {
    pub reps_may_pin: Option<bool>,
}

/// Changes the caller's tenant's settings, audited with the settings before
/// and after.
///
/// # Errors
/// FORBIDDEN below ADMIN.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id))]
pub async fn update_tenant_settings(
    db: &DatabaseConnection,
    principal: &Principal,
    settings: TenantSettings,
    now: DateTime<Utc>,
) -> AppResult<tenant::Model> {
    principal.require_admin("change the company's settings")?;
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let current = get_tenant(&scope).await?;
    let reps_may_pin = settings.reps_may_pin.unwrap_or(current.reps_may_pin);
    if reps_may_pin == current.reps_may_pin {
        return Ok(current);
    }
    // The tenants table is the one table without `tenant_id`: the row is
    // the caller's tenant itself, addressed by the principal's tenant id.
    let mut row: tenant::ActiveModel = current.clone().into();
    row.reps_may_pin = Set(reps_may_pin);
    row.updated_at = Set(now);
    let saved = tenant::Entity::update(row).exec(&txn).await?;
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "tenant.settings_updated",
            entity: "tenant",
            entity_id: Some(saved.id),
            before: Some(json!({"repsMayPin": current.reps_may_pin})),
            after: Some(json!({"repsMayPin": saved.reps_may_pin})),
        },
        now,
    )
    .await?;
    tenant_config::commit_change(txn, principal.tenant_id, now).await?;
    Ok(saved)
}

/// The caller.
///
/// # Errors
/// UNAUTHENTICATED when the user no longer exists or was deactivated.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %principal.tenant_id, user_id = %principal.user_id))]
pub async fn me<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
) -> AppResult<user::Model> {
    scope
        .find::<user::Entity>(principal.user_id)
        .await?
        .filter(|u| u.active)
        .ok_or(AppError::Unauthorized("your account is no longer active"))
}

/// Every user of the tenant, by name.
///
/// # Errors
/// FORBIDDEN below ADMIN.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %principal.tenant_id))]
pub async fn users<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
) -> AppResult<Vec<user::Model>> {
    principal.require_admin("list users")?;
    Ok(scope
        .select::<user::Entity>()
        .order_by_asc(user::Column::DisplayName)
        .all(scope.conn())
        .await?)
}

/// A user to add to a tenant.
pub struct NewUser {
    pub email: Email,
    pub password: String,
    pub display_name: String,
    pub role: Role,
    pub team_ids: Vec<TeamId>,
}

/// Adds a user to the caller's tenant, optionally into teams.
///
/// # Errors
/// FORBIDDEN below ADMIN; BAD_USER_INPUT naming the field; CONFLICT when the
/// email is taken in this tenant; NOT_FOUND for a team of another tenant.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id))]
pub async fn create_user(
    db: &DatabaseConnection,
    principal: &Principal,
    input: NewUser,
    now: DateTime<Utc>,
) -> AppResult<user::Model> {
    // Only OWNER and ADMIN manage people, and only an OWNER makes owners.
    principal.require_admin("create users")?;
    principal.require_may_grant(input.role)?;
    let email = String::from(input.email);
    validate::new_password("password", &input.password)?;
    let display_name = validate::required_text("display_name", &input.display_name, 200)?;
    let team_ids = input.team_ids;
    let password_hash = hash_off_thread(input.password.clone()).await?;

    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    if let Some(existing) = scope
        .select::<user::Entity>()
        .filter(user::Column::Email.eq(&email))
        .one(&txn)
        .await?
    {
        return Err(AppError::Conflict {
            message: format!("a user with the email {email} already exists"),
            existing_id: Some(existing.id.into()),
        });
    }
    require_teams(&scope, &team_ids, "team_ids").await?;
    let user = scope
        .insert(user::ActiveModel {
            id: Set(UserId::new()),
            email: Set(email),
            display_name: Set(display_name),
            role: Set(input.role),
            password_hash: Set(password_hash),
            active: Set(true),
            away: Set(false),
            capacity: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .await?;
    scope
        .insert_many(
            team_ids
                .iter()
                .map(|team_id| membership(*team_id, user.id, now)),
        )
        .await?;
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "user.created",
            entity: "user",
            entity_id: Some(user.id.into()),
            before: None,
            after: Some(json!({"email": user.email, "displayName": user.display_name, "role": user.role, "teamIds": team_ids})),
        },
        now,
    )
    .await?;
    tenant_config::commit_change(txn, principal.tenant_id, now).await?;
    Ok(user)
}

/// Every team of the tenant, by name.
///
/// # Errors
/// Database errors.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %scope.tenant_id()))]
pub async fn teams<C: ConnectionTrait>(scope: &TenantScope<'_, C>) -> AppResult<Vec<team::Model>> {
    Ok(scope
        .select::<team::Entity>()
        .order_by_asc(team::Column::Name)
        .all(scope.conn())
        .await?)
}

/// Creates a team, optionally with members.
///
/// # Errors
/// FORBIDDEN below ADMIN; BAD_USER_INPUT; CONFLICT when the name is taken;
/// NOT_FOUND for a user of another tenant.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id))]
pub async fn create_team(
    db: &DatabaseConnection,
    principal: &Principal,
    name: &str,
    member_ids: &[UserId],
    now: DateTime<Utc>,
) -> AppResult<team::Model> {
    principal.require_admin("create teams")?;
    let name = validate::required_text("name", name, 200)?;

    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    if let Some(existing) = scope
        .select::<team::Entity>()
        .filter(team::Column::Name.eq(&name))
        .one(&txn)
        .await?
    {
        return Err(AppError::Conflict {
            message: format!("a team named \"{name}\" already exists"),
            existing_id: Some(existing.id.into()),
        });
    }
    let found = scope
        .select::<user::Entity>()
        .filter(user::Column::Id.is_in(member_ids.iter().copied()))
        .all(&txn)
        .await?;
    if let Some(missing) = member_ids
        .iter()
        .find(|id| !found.iter().any(|u| u.id == **id))
    {
        return Err(AppError::not_found("user", missing));
    }
    let team = scope
        .insert(team::ActiveModel {
            id: Set(TeamId::new()),
            name: Set(name),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .await?;
    scope
        .insert_many(
            member_ids
                .iter()
                .map(|user_id| membership(team.id, *user_id, now)),
        )
        .await?;
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "team.created",
            entity: "team",
            entity_id: Some(team.id.into()),
            before: None,
            after: Some(json!({"name": team.name, "memberIds": member_ids})),
        },
        now,
    )
    .await?;
    tenant_config::commit_change(txn, principal.tenant_id, now).await?;
    Ok(team)
}

fn membership(team_id: TeamId, user_id: UserId, now: DateTime<Utc>) -> team_member::ActiveModel {
    team_member::ActiveModel {
        team_id: Set(team_id),
        user_id: Set(user_id),
        created_at: Set(now),
        ..Default::default()
    }
}

async fn require_teams<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    ids: &[TeamId],
    field: &str,
) -> AppResult<()> {
    let found = scope
        .select::<team::Entity>()
        .filter(team::Column::Id.is_in(ids.iter().copied()))
        .all(scope.conn())
        .await?;
    match ids.iter().position(|id| !found.iter().any(|t| t.id == *id)) {
        Some(i) => Err(AppError::InvalidInput {
            field: format!("{field}[{i}]"),
            message: "no such team".into(),
        }),
        None => Ok(()),
    }
}

/// The teams of each of `user_ids`, in two queries whatever their number.
///
/// # Errors
/// Database errors.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %scope.tenant_id(), users = user_ids.len()))]
pub async fn teams_of_users<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    user_ids: &[UserId],
) -> AppResult<HashMap<UserId, Vec<team::Model>>> {
    let links = scope
        .select::<team_member::Entity>()
        .filter(team_member::Column::UserId.is_in(user_ids.iter().copied()))
        .all(scope.conn())
        .await?;
    let teams: HashMap<TeamId, team::Model> = scope
        .select::<team::Entity>()
        .filter(team::Column::Id.is_in(links.iter().map(|l| l.team_id)))
        .all(scope.conn())
        .await?
        .into_iter()
        .map(|t| (t.id, t))
        .collect();
    let pairs = links.iter().map(|l| (l.user_id, l.team_id));
    Ok(group_by_link(pairs, &teams, |t: &team::Model| {
        t.name.clone()
    }))
}

/// The members of each of `team_ids`, in two queries whatever their number.
///
/// # Errors
/// Database errors.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %scope.tenant_id(), teams = team_ids.len()))]
pub async fn members_of_teams<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    team_ids: &[TeamId],
) -> AppResult<HashMap<TeamId, Vec<user::Model>>> {
    let links = scope
        .select::<team_member::Entity>()
        .filter(team_member::Column::TeamId.is_in(team_ids.iter().copied()))
        .all(scope.conn())
        .await?;
    let users: HashMap<UserId, user::Model> = scope
        .select::<user::Entity>()
        .filter(user::Column::Id.is_in(links.iter().map(|l| l.user_id)))
        .all(scope.conn())
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let pairs = links.iter().map(|l| (l.team_id, l.user_id));
    Ok(group_by_link(pairs, &users, |u: &user::Model| {
        u.display_name.clone()
    }))
}

/// Groups the rows that `(owner, row id)` links point at by owner, each
/// group sorted by `sort_key`.
fn group_by_link<O: Eq + Hash, R: Eq + Hash, T: Clone, K: Ord>(
    links: impl Iterator<Item = (O, R)>,
    rows: &HashMap<R, T>,
    sort_key: impl Fn(&T) -> K,
) -> HashMap<O, Vec<T>> {
    let mut grouped: HashMap<O, Vec<T>> = HashMap::new();
    for (owner, row_id) in links {
        if let Some(row) = rows.get(&row_id) {
            grouped.entry(owner).or_default().push(row.clone());
        }
    }
    for group in grouped.values_mut() {
        group.sort_by_key(|row| sort_key(row));
    }
    grouped
}
