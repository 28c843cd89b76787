//! Taking access away: `changePassword`, `signOut`, `revokeSessions` and
//! `updateUserRole`.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::Utc;

use crate::graphql::id_at;
use crate::graphql::{
    RequestContext,
    types::{AuthPayload, Role, User, UserPayload},
};
use crate::{error::IntoGraphql, service::accounts::access};

#[derive(InputObject)]
pub struct ReassignLeadsInput {
    pub from_user_id: ID,
    /// Null: back to the shared pool.
    pub to_user_id: Option<ID>,
}

/// How many open leads moved.
#[derive(SimpleObject)]
pub struct ReassignLeadsPayload {
    pub moved: i32,
}

#[derive(InputObject)]
pub struct DeactivateUserInput {
    pub user_id: ID,
    /// Who takes the user's open leads; null: the shared pool.
    pub reassign_to: Option<ID>,
}

#[derive(InputObject)]
pub struct ChangePasswordInput {
    pub current_password: String,
    /// At least 10 characters.
    pub new_password: String,
}

#[derive(InputObject)]
pub struct SignOutInput {
    /// Every session of the caller, on every device, not only this one.
    #[graphql(default = false)]
    pub everywhere: bool,
}

/// The result of `signOut`.
#[derive(SimpleObject)]
pub struct SignOutPayload {
    /// Sessions (sign-ins) ended.
    pub sessions_ended: i32,
}

#[derive(InputObject)]
pub struct RevokeSessionsInput {
    pub user_id: ID,
}

/// The result of `revokeSessions`.
#[derive(SimpleObject)]
pub struct RevokeSessionsPayload {
    pub user: User,
    /// Sessions (sign-ins) that were still live and are now ended.
    pub sessions_ended: i32,
}

#[derive(InputObject)]
pub struct UpdateUserRoleInput {
    pub user_id: ID,
    pub role: Role,
}

fn count(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[derive(Default)]
pub struct AccessMutation;

#[Object]
impl AccessMutation {
    /// Changes the caller's password; every other session ends, and the
    /// answer is a fresh session for this client.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        input: ChangePasswordInput,
    ) -> Result<AuthPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let change = access::PasswordChange {
            current_password: input.current_password,
            new_password: input.new_password,
        };
        let session =
            access::change_password(&rc.db, &rc.auth, &principal, change, &rc.client, Utc::now())
                .await
                .gql_at("input")?;
        Ok(session.into())
    }

    /// Signs out of this session, or of every session with `everywhere`;
    /// the token used stops working at once.
    async fn sign_out(&self, ctx: &Context<'_>, input: SignOutInput) -> Result<SignOutPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let ended = access::sign_out(&rc.db, &principal, rc.session, input.everywhere, Utc::now())
            .await
            .gql_at("input")?;
        Ok(SignOutPayload {
            sessions_ended: count(ended),
        })
    }

    /// Ends every session of a user (yourself, or as OWNER or ADMIN anyone;
    /// an owner's only as an owner).
    async fn revoke_sessions(
        &self,
        ctx: &Context<'_>,
        input: RevokeSessionsInput,
    ) -> Result<RevokeSessionsPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let (user, ended) = access::revoke_sessions(
            &rc.db,
            &principal,
            id_at("input.userId", &input.user_id)?,
            Utc::now(),
        )
        .await
        .gql_at("input")?;
        Ok(RevokeSessionsPayload {
            user: user.into(),
            sessions_ended: count(ended),
        })
    }

    /// Moves every open lead of one user to another, or back to the shared
    /// pool when `toUserId` is null: OWNER and ADMIN for anyone, a MANAGER
    /// between members of their teams. Audited.
    async fn reassign_leads(
        &self,
        ctx: &Context<'_>,
        input: ReassignLeadsInput,
    ) -> Result<ReassignLeadsPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let moved = access::reassign_leads(
            &rc.db,
            &principal,
            id_at("input.fromUserId", &input.from_user_id)?,
            input
                .to_user_id
                .map(|id| id_at("input.toUserId", &id))
                .transpose()?,
            Utc::now(),
        )
        .await
        .gql_at("input")?;
        Ok(ReassignLeadsPayload {
            moved: i32::try_from(moved).unwrap_or(i32::MAX),
        })
    }

    /// Deactivates a user (OWNER and ADMIN; an OWNER only by an OWNER): they
    /// can no longer sign in, their tokens stop working on their next
    /// request, and their open leads go to `reassignTo` or back to the
    /// shared pool. Audited.
    async fn deactivate_user(
        &self,
        ctx: &Context<'_>,
        input: DeactivateUserInput,
    ) -> Result<UserPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let user = access::deactivate_user(
            &rc.db,
            &principal,
            id_at("input.userId", &input.user_id)?,
            input
                .reassign_to
                .map(|id| id_at("input.reassignTo", &id))
                .transpose()?,
            Utc::now(),
        )
        .await
        .gql_at("input")?;
        Ok(UserPayload { user: user.into() })
    }

    /// Changes a user's role (OWNER and ADMIN; only an OWNER grants or takes
    /// away OWNER); effective on their next request.
    async fn update_user_role(
        &self,
        ctx: &Context<'_>,
        input: UpdateUserRoleInput,
    ) -> Result<UserPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let user = access::update_user_role(
            &rc.db,
            &principal,
            id_at("input.userId", &input.user_id)?,
            input.role.into(),
            Utc::now(),
        )
        .await
        .gql_at("input")?;
        Ok(UserPayload { user: user.into() })
    }
}
