//! Who is calling: passwords, tokens, the request context and role checks.

pub mod access;
pub mod password;
pub mod throttle;
pub mod tokens;

use entity::UserId;
use entity::enums::Role;
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// The authenticated caller, taken from a verified access token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The caller's tenant: every query is scoped to it.
    pub tenant_id: Uuid,
    /// The caller.
    pub user_id: UserId,
    /// The caller's role: as the user is now for requests (see
    /// [`access`]), as issued inside a token's claims.
    pub role: Role,
}

/// How strong a role is: OWNER > ADMIN > MANAGER > REP.
fn rank(role: Role) -> u8 {
    match role {
        Role::Owner => 3,
        Role::Admin => 2,
        Role::Manager => 1,
        Role::Rep => 0,
    }
}

impl Principal {
    /// Refuses unless the caller's role is at least `role`.
    ///
    /// # Errors
    /// [`AppError::Forbidden`] naming `action`.
    pub fn require_at_least(&self, role: Role, action: &'static str) -> AppResult<()> {
        if rank(self.role) >= rank(role) {
            Ok(())
        } else {
            Err(AppError::Forbidden { action })
        }
    }

    /// OWNER and ADMIN manage users, teams and configuration.
    ///
    /// # Errors
    /// [`AppError::Forbidden`] for managers and reps.
    pub fn require_admin(&self, action: &'static str) -> AppResult<()> {
        self.require_at_least(Role::Admin, action)
    }

    /// Only an OWNER may hand out the OWNER role.
    ///
    /// # Errors
    /// [`AppError::Forbidden`] when the caller may not grant `role`.
    pub fn require_may_grant(&self, role: Role) -> AppResult<()> {
        match role {
            Role::Owner => self.require_at_least(Role::Owner, "grant the OWNER role"),
            _ => Ok(()),
        }
    }
}

/// What the request's `Authorization` header amounted to.
#[derive(Clone, Debug)]
pub enum Authentication {
    /// No header: only sign-up, login and refresh work.
    Anonymous,
    /// A verified token.
    Authenticated(Principal),
    /// A header that did not verify (tampered, expired, wrong algorithm),
    /// or a token whose session was ended or whose user was deactivated.
    Rejected(&'static str),
    /// The token verified but the user's access could not be read (the
    /// database failed): the request answers INTERNAL, not a sign-out.
    Unavailable,
}

impl Authentication {
    /// The caller, or UNAUTHENTICATED.
    ///
    /// # Errors
    /// [`AppError::Unauthenticated`] or the token's problem.
    pub fn principal(&self) -> AppResult<Principal> {
        match self {
            Self::Authenticated(principal) => Ok(*principal),
            Self::Anonymous => Err(AppError::Unauthenticated),
            Self::Rejected(why) => Err(AppError::Unauthorized(why)),
            Self::Unavailable => Err(AppError::Internal(anyhow::anyhow!(
                "the caller's access could not be checked"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn as_role(role: Role) -> Principal {
        Principal {
            tenant_id: Uuid::nil(),
            user_id: UserId(uuid::Uuid::nil()),
            role,
        }
    }

    #[test]
    fn only_owners_and_admins_pass_the_admin_check() {
        assert!(as_role(Role::Owner).require_admin("x").is_ok());
        assert!(as_role(Role::Admin).require_admin("x").is_ok());
        assert!(matches!(
            as_role(Role::Manager).require_admin("x"),
            Err(AppError::Forbidden { .. })
        ));
        assert!(matches!(
            as_role(Role::Rep).require_admin("x"),
            Err(AppError::Forbidden { .. })
        ));
    }

    #[test]
    fn an_admin_cannot_make_an_owner() {
        assert!(as_role(Role::Admin).require_may_grant(Role::Owner).is_err());
        assert!(as_role(Role::Admin).require_may_grant(Role::Admin).is_ok());
        assert!(as_role(Role::Owner).require_may_grant(Role::Owner).is_ok());
    }
}
