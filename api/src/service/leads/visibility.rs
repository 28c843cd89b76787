//! Who may see which lead. One rule, read once per request or
//! subscription, answered two ways: as a SQL condition for queries and in
//! memory for leads already loaded (live subscriptions, duplicate checks),
//! so the two can never disagree.

use entity::{TeamId, UserId};
use entity::{enums::Role, lead};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait};

use crate::service::configuration::tenant_config;
use crate::{auth::Principal, error::AppResult, tenancy::TenantScope};

/// The leads a caller may see: OWNER and ADMIN every lead of their
/// tenant; a REP their own and the shared pool (no owner); a MANAGER also
/// their teams' leads and the leads owned by their teams' members. A lead
/// of another tenant never.
pub struct LeadVisibility {
    principal: Principal,
    /// A MANAGER's teams; empty for every other role, whose view does not
    /// depend on teams.
    teams: Vec<TeamId>,
    /// Everyone in `teams`.
    members: Vec<UserId>,
}

impl LeadVisibility {
    /// The caller's view. Only a MANAGER's needs their teams, so only a
    /// MANAGER's reads the tenant configuration.
    ///
    /// # Errors
    /// Database errors.
    pub async fn load<C: ConnectionTrait>(
        scope: &TenantScope<'_, C>,
        principal: &Principal,
    ) -> AppResult<Self> {
        let (teams, members) = if principal.role == Role::Manager {
            let config = tenant_config::get(scope).await?;
            let teams = config.teams_of(principal.user_id).to_vec();
            let members = config.members_of(&teams);
            (teams, members)
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(Self {
            principal: *principal,
            teams,
            members,
        })
    }

    /// The rule as a filter on `lead` rows. It leaves the tenant to the
    /// [`TenantScope`] the query starts from.
    #[must_use]
    pub fn condition(&self) -> Condition {
        let own_or_pool = Condition::any()
            .add(lead::Column::OwnerId.eq(self.principal.user_id))
            .add(lead::Column::OwnerId.is_null());
        match self.principal.role {
            Role::Owner | Role::Admin => Condition::all(),
            Role::Rep => own_or_pool,
            Role::Manager => own_or_pool
                .add(lead::Column::TeamId.is_in(self.teams.clone()))
                .add(lead::Column::OwnerId.is_in(self.members.clone())),
        }
    }

    /// Whether the caller may see `lead`, judged in memory.
    #[must_use]
    pub fn sees(&self, lead: &lead::Model) -> bool {
        if lead.tenant_id != self.principal.tenant_id {
            return false;
        }
        let own_or_pool = lead.owner_id.is_none_or(|o| o == self.principal.user_id);
        match self.principal.role {
            Role::Owner | Role::Admin => true,
            Role::Rep => own_or_pool,
            Role::Manager => {
                own_or_pool
                    || lead.team_id.is_some_and(|t| self.teams.contains(&t))
                    || lead.owner_id.is_some_and(|o| self.members.contains(&o))
            }
        }
    }

    /// Whether a lead of the caller's tenant owned by `owner` (none: the
    /// pool) might be visible, knowing only its owner, so that a caller
    /// can skip reading leads that cannot be. False only when it surely
    /// is not: for a REP, someone else's lead. For a MANAGER a lead owned
    /// outside their teams may still be led by one of them, which only
    /// [`sees`](Self::sees) can tell.
    #[must_use]
    pub fn might_see_owned_by(&self, owner: Option<UserId>) -> bool {
        self.principal.role != Role::Rep || owner.is_none_or(|o| o == self.principal.user_id)
    }

    /// A MANAGER's teams; empty for every other role.
    #[must_use]
    pub fn managed_teams(&self) -> &[TeamId] {
        &self.teams
    }

    /// Everyone in [`managed_teams`](Self::managed_teams).
    #[must_use]
    pub fn team_members(&self) -> &[UserId] {
        &self.members
    }
}
