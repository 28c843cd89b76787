//! Taking access away: changing a password, signing out, revoking a
//! user's sessions and changing their role.
//!
//! Each of these ends with [`commit_change`], so the change holds
//! on the very next request, on every server process: requests compare
//! their token with the user as they are now (see [`crate::auth::access`]).

use chrono::{DateTime, Utc};
use entity::UserId;
use entity::{enums::Role, refresh_session, user};
use sea_orm::{
    ActiveEnum, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, PaginatorTrait,
    QueryFilter, QuerySelect, sea_query::Expr,
};
use serde_json::json;
use uuid::Uuid;

use crate::service::{
    accounts::account::{self, Auth, Family, Session, hash_off_thread},
    accounts::audit,
    begin_write, validate,
};
use crate::{
    auth::{
        Principal, access, password::verify_password, throttle::AttemptKeys, tokens::SessionClaims,
    },
    error::{AppError, AppResult},
    tenancy::{TenantScope, Walled},
};

/// Ends every session of `user`: bumps their session version, so every
/// access token issued before stops working, and revokes every refresh
/// token. Returns how many session families were still live.
async fn end_every_session<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    user: &user::Model,
    now: DateTime<Utc>,
) -> AppResult<(user::Model, u64)> {
    let live: Vec<Uuid> = scope
        .select::<refresh_session::Entity>()
        .select_only()
        .column(refresh_session::Column::FamilyId)
        .distinct()
        .filter(refresh_session::Column::UserId.eq(user.id))
        .filter(refresh_session::Column::RevokedAt.is_null())
        .filter(refresh_session::Column::RotatedAt.is_null())
        .filter(refresh_session::Column::ExpiresAt.gt(now))
        .into_tuple()
        .all(scope.conn())
        .await?;
    scope
        .update_many::<refresh_session::Entity>()
        .col_expr(refresh_session::Column::RevokedAt, Expr::value(now))
        .filter(refresh_session::Column::UserId.eq(user.id))
        .filter(refresh_session::Column::RevokedAt.is_null())
        .exec(scope.conn())
        .await?;
    let mut row: user::ActiveModel = user.clone().into();
    row.session_version = Set(user.session_version.saturating_add(1));
    row.updated_at = Set(now);
    let saved = scope.update(row).await?;
    Ok((saved, live.len() as u64))
}

/// The user `id` of the scope's tenant, or NOT_FOUND.
async fn target_user<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    id: UserId,
) -> AppResult<user::Model> {
    scope.get::<user::Entity>(id).await
}

/// Whether `principal` may change `target`'s access: themselves always;
/// others as OWNER or ADMIN, and an OWNER's only as an OWNER (the rule of
/// `createUser`: only owners make, and so unmake, owners).
fn require_may_manage(
    principal: &Principal,
    target: &user::Model,
    action: &'static str,
) -> AppResult<()> {
    if target.id == principal.user_id {
        return Ok(());
    }
    principal.require_admin(action)?;
    if target.role == Role::Owner {
        principal.require_at_least(Role::Owner, action)?;
    }
    Ok(())
}

/// The fields of `ChangePasswordInput`.
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// Changes the caller's password after checking the current one, ends
/// every other session (a thief holding a token or a refresh token is
/// locked out) and signs the caller in afresh.
///
/// # Errors
/// BAD_USER_INPUT on `input.currentPassword` when it is wrong, on
/// `input.newPassword` when it is too weak; RATE_LIMITED after too many
/// wrong current passwords (counted with failed logins of the account).
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, user_id = %principal.user_id))]
pub async fn change_password(
    db: &DatabaseConnection,
    auth: &Auth,
    principal: &Principal,
    input: PasswordChange,
    client: &str,
    now: DateTime<Utc>,
) -> AppResult<Session> {
    validate::new_password("new_password", &input.new_password)?;
    let walled = Walled::new(db, principal.tenant_id);
    let scope = walled.scope();
    let tenant = account::get_tenant(&scope).await?;
    let me = account::me(&scope, principal).await?;
    // A stolen access token must not become a way to guess the password
    // without the login throttle: wrong guesses here count as failed logins.
    let attempt = AttemptKeys::new(&tenant.slug, &me.email, client);
    let pending = auth.throttle.begin_attempt(db, &attempt, now).await?;
    let stored = me.password_hash.clone();
    let current = input.current_password;
    let verified = tokio::task::spawn_blocking(move || verify_password(&current, &stored))
        .await
        .map_err(|err| {
            AppError::Internal(anyhow::Error::new(err).context("password check did not finish"))
        })?;
    if !verified {
        return Err(AppError::invalid(
            "current_password",
            "the current password is not correct",
        ));
    }
    pending.forget(db).await?;
    let password_hash = hash_off_thread(input.new_password).await?;

    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let me = scope.get::<user::Entity>(principal.user_id).await?;
    let mut row: user::ActiveModel = me.clone().into();
    row.password_hash = Set(password_hash);
    let me = scope.update(row).await?;
    let (me, _) = end_every_session(&scope, &me, now).await?;
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "user.password_changed",
            entity: "user",
            entity_id: Some(me.id.into()),
            before: None,
            after: None,
        },
        now,
    )
    .await?;
    let session = account::issue_session(&scope, auth, me, tenant, Family::new(now), now).await?;
    commit_change(txn, principal.tenant_id, &[principal.user_id], now).await?;
    tracing::info!("password changed; every other session ended");
    Ok(session)
}

/// Signs the caller out: of the session their token belongs to, or, with
/// `everywhere`, of every session on every device. The token used stops
/// working at once either way. Returns the number of sessions ended.
///
/// A token issued before tokens named their session cannot be told apart
/// from the user's others, so it signs out everywhere.
///
/// # Errors
/// Database errors.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, user_id = %principal.user_id, everywhere = everywhere))]
pub async fn sign_out(
    db: &DatabaseConnection,
    principal: &Principal,
    session: SessionClaims,
    everywhere: bool,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let ended = match session.family.filter(|_| !everywhere) {
        Some(family) => {
            scope
                .update_many::<refresh_session::Entity>()
                .col_expr(refresh_session::Column::RevokedAt, Expr::value(now))
                .filter(refresh_session::Column::UserId.eq(principal.user_id))
                .filter(refresh_session::Column::FamilyId.eq(family))
                .filter(refresh_session::Column::RevokedAt.is_null())
                .exec(&txn)
                .await?;
            1
        }
        None => {
            let me = scope.get::<user::Entity>(principal.user_id).await?;
            end_every_session(&scope, &me, now).await?.1
        }
    };
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "user.signed_out",
            entity: "user",
            entity_id: Some(principal.user_id.into()),
            before: None,
            after: Some(json!({"everywhere": everywhere || session.family.is_none()})),
        },
        now,
    )
    .await?;
    commit_change(txn, principal.tenant_id, &[principal.user_id], now).await?;
    Ok(ended)
}

/// Ends every session of a user: their access tokens stop working at once
/// and their refresh tokens are refused. Anyone for themselves; OWNER and
/// ADMIN for others, an OWNER's only by an OWNER.
///
/// # Errors
/// NOT_FOUND for a user of another tenant; FORBIDDEN as above.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, target_user_id = %user_id))]
pub async fn revoke_sessions(
    db: &DatabaseConnection,
    principal: &Principal,
    user_id: UserId,
    now: DateTime<Utc>,
) -> AppResult<(user::Model, u64)> {
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let target = target_user(&scope, user_id).await?;
    require_may_manage(principal, &target, "end another user's sessions")?;
    let (target, ended) = end_every_session(&scope, &target, now).await?;
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "user.sessions_revoked",
            entity: "user",
            entity_id: Some(target.id.into()),
            before: None,
            after: Some(json!({"sessionsEnded": ended})),
        },
        now,
    )
    .await?;
    commit_change(txn, principal.tenant_id, &[target.id], now).await?;
    tracing::info!(target_user_id = %target.id, sessions = ended, "sessions revoked");
    Ok((target, ended))
}

/// Changes a user's role, effective on their next request. OWNER and ADMIN
/// only; only an OWNER grants the OWNER role or changes an OWNER's; the
/// company keeps at least one active OWNER.
///
/// # Errors
/// FORBIDDEN as above; NOT_FOUND for a user of another tenant;
/// BAD_USER_INPUT on `input.role` when it would leave no owner.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, target_user_id = %user_id, role = ?role))]
pub async fn update_user_role(
    db: &DatabaseConnection,
    principal: &Principal,
    user_id: UserId,
    role: Role,
    now: DateTime<Utc>,
) -> AppResult<user::Model> {
    // The rules of `createUser`: OWNER and ADMIN manage people, and only an
    // OWNER makes owners.
    principal.require_admin("change a user's role")?;
    principal.require_may_grant(role)?;
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let target = target_user(&scope, user_id).await?;
    // Only an owner unmakes an owner.
    if target.role == Role::Owner {
        principal.require_at_least(Role::Owner, "change an owner's role")?;
    }
    if target.role == role {
        return Ok(target);
    }
    if target.role == Role::Owner {
        let owners = scope
            .select::<user::Entity>()
            .filter(user::Column::Role.eq(Role::Owner))
            .filter(user::Column::Active.eq(true))
            .filter(user::Column::Id.ne(target.id))
            .count(&txn)
            .await?;
        if owners == 0 {
            return Err(AppError::invalid(
                "role",
                "the company needs at least one owner: make someone else OWNER first",
            ));
        }
    }
    let before = target.role;
    let mut row: user::ActiveModel = target.into();
    row.role = Set(role);
    row.updated_at = Set(now);
    let saved = scope.update(row).await?;
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "user.role_changed",
            entity: "user",
            entity_id: Some(saved.id.into()),
            before: Some(json!({"role": before.to_value()})),
            after: Some(json!({"role": saved.role.to_value()})),
        },
        now,
    )
    .await?;
    commit_change(txn, principal.tenant_id, &[saved.id], now).await?;
    Ok(saved)
}

/// Where a user's open leads go: to an active user of the company, or
/// back to the shared pool (`None`). `field` names the input.
async fn lead_recipient<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    id: Option<UserId>,
    field: &str,
) -> AppResult<Option<user::Model>> {
    let Some(id) = id else {
        return Ok(None);
    };
    match scope.find::<user::Entity>(id).await? {
        Some(user) if user.active => Ok(Some(user)),
        _ => Err(AppError::invalid(
            field,
            "no such active user in your company",
        )),
    }
}

/// Whether a MANAGER may move leads between `users`: each must belong to
/// one of the manager's teams. OWNER and ADMIN may move anyone's; a REP
/// no one's.
async fn require_may_move_leads_of<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    users: &[UserId],
) -> AppResult<()> {
    match principal.role {
        Role::Owner | Role::Admin => Ok(()),
        Role::Rep => Err(AppError::Forbidden {
            action: "move other people's leads",
        }),
        Role::Manager => {
            let config = crate::service::configuration::tenant_config::get(scope).await?;
            let mine = config.teams_of(principal.user_id);
            let in_my_teams =
                |user: &UserId| config.teams_of(*user).iter().any(|t| mine.contains(t));
            if users.iter().all(in_my_teams) {
                Ok(())
            } else {
                Err(AppError::Forbidden {
                    action: "move leads of someone outside your teams",
                })
            }
        }
    }
}

/// Moves every open lead of one user to another, or back to the shared
/// pool: for a rep who changes territory or goes on leave. OWNER and
/// ADMIN for anyone; a MANAGER between members of their teams. Audited;
/// each lead's history records the move. Returns how many moved.
///
/// # Errors
/// BAD_USER_INPUT naming the field for an unknown user or the same user
/// twice; FORBIDDEN as above.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, from_user_id = %from_id, to_user_id = ?to))]
pub async fn reassign_leads(
    db: &DatabaseConnection,
    principal: &Principal,
    from_id: UserId,
    to: Option<UserId>,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let source = scope
        .find::<user::Entity>(from_id)
        .await?
        .ok_or_else(|| AppError::invalid("from_user_id", "no such user in your company"))?;
    let target = lead_recipient(&scope, to, "to_user_id").await?;
    if target.as_ref().is_some_and(|t| t.id == source.id) {
        return Err(AppError::invalid(
            "to_user_id",
            "is the user the leads are moving from",
        ));
    }
    let mut involved = vec![source.id];
    involved.extend(target.as_ref().map(|t| t.id));
    require_may_move_leads_of(&scope, principal, &involved).await?;
    let to_id = target.as_ref().map(|t| t.id);
    let moved = crate::service::leads::lead_writer::reassign_open_leads(
        &scope,
        source.id,
        to_id,
        Some(principal.user_id),
        "leads reassigned",
        now,
    )
    .await?;
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "leads.reassigned",
            entity: "user",
            entity_id: Some(source.id.into()),
            before: Some(json!({"ownerId": source.id})),
            after: Some(json!({"ownerId": to_id, "moved": moved})),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    tracing::info!(from_user_id = %source.id, to_user_id = ?to_id, moved, "leads reassigned");
    Ok(moved)
}

/// Deactivates a user: they can no longer sign in, their access and
/// refresh tokens stop working on the next request on every server, and
/// their open leads go to `reassign_to` or back to the shared pool. OWNER
/// and ADMIN only, an OWNER only by an OWNER; never oneself, and the
/// company keeps an active OWNER. Audited.
///
/// # Errors
/// FORBIDDEN as above; NOT_FOUND for a user of another tenant;
/// BAD_USER_INPUT naming the field for oneself or an unknown recipient.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, target_user_id = %user_id, to_user_id = ?reassign_to))]
pub async fn deactivate_user(
    db: &DatabaseConnection,
    principal: &Principal,
    user_id: UserId,
    reassign_to: Option<UserId>,
    now: DateTime<Utc>,
) -> AppResult<user::Model> {
    principal.require_admin("deactivate users")?;
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let target = target_user(&scope, user_id).await?;
    if target.id == principal.user_id {
        return Err(AppError::invalid(
            "user_id",
            "you cannot deactivate yourself; ask another owner or admin",
        ));
    }
    require_may_manage(principal, &target, "deactivate an owner")?;
    let recipient = lead_recipient(&scope, reassign_to, "reassign_to").await?;
    if recipient.as_ref().is_some_and(|r| r.id == target.id) {
        return Err(AppError::invalid(
            "reassign_to",
            "is the user being deactivated",
        ));
    }
    if !target.active {
        return Ok(target);
    }
    let (target, _) = end_every_session(&scope, &target, now).await?;
    let mut row: user::ActiveModel = target.into();
    row.active = Set(false);
    row.updated_at = Set(now);
    let saved = scope.update(row).await?;
    let to_id = recipient.as_ref().map(|r| r.id);
    let moved = crate::service::leads::lead_writer::reassign_open_leads(
        &scope,
        saved.id,
        to_id,
        Some(principal.user_id),
        "owner deactivated",
        now,
    )
    .await?;
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "user.deactivated",
            entity: "user",
            entity_id: Some(saved.id.into()),
            before: Some(json!({"active": true})),
            after: Some(json!({"active": false, "leadsTo": to_id, "leadsMoved": moved})),
        },
        now,
    )
    .await?;
    commit_change(txn, principal.tenant_id, &[saved.id], now).await?;
    tracing::info!(target_user_id = %saved.id, moved, "user deactivated");
    Ok(saved)
}

/// Commits a transaction that changed the access of `users`: announces
/// the change to every process, commits, and drops this process's copies
/// (see [`access::invalidate`]), so the very next request sees it.
///
/// # Errors
/// Database errors.
pub async fn commit_change(
    txn: sea_orm::DatabaseTransaction,
    tenant_id: Uuid,
    users: &[UserId],
    now: DateTime<Utc>,
) -> AppResult<()> {
    crate::service::events::announce_access_change(
        &TenantScope::enter(&txn, tenant_id).await?,
        users,
        now,
    )
    .await?;
    txn.commit().await?;
    for user in users {
        access::invalidate(tenant_id, *user);
    }
    Ok(())
}
