//! The manager's weekly review: rep scorecards, value per tier and tier
//! movements. Every figure is an aggregation the database computes over
//! the leads the caller may see (the rule of `leads`), of one team or
//! all; only grouped rows come back, never a row per lead.

use entity::{PipelineId, StageId, TeamId, UserId};
use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
};

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, Offset, TimeZone, Utc, Weekday};
use entity::{
    activity,
    enums::{Direction, LeadStatus, Role, StageKind},
    lead, lead_event, score_event, stage, team, user,
};
use sea_orm::{
    ActiveEnum, ColumnTrait, Condition, ConnectionTrait, QueryFilter, QueryResult, QuerySelect,
    QueryTrait,
};

use crate::service::{
    configuration::tenant_config::{self, TenantConfig},
    leads::pool,
    leads::{follow_up, visibility::LeadVisibility},
    sql::Sql,
};
use crate::{
    auth::Principal,
    error::{AppError, AppResult},
    tenancy::TenantScope,
};

/// The longest window a report covers.
const MAX_WINDOW_DAYS: i64 = 3_660;

/// The period a report covers: from `from` (inclusive) to `to`
/// (exclusive).
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Window {
    /// # Errors
    /// BAD_USER_INPUT on `input.to` when `to` is not after `from` or the
    /// window spans more than ten years.
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> AppResult<Self> {
        if to <= from {
            return Err(AppError::invalid("to", "must be after from"));
        }
        if to - from > Duration::days(MAX_WINDOW_DAYS) {
            return Err(AppError::invalid(
                "to",
                "must be at most ten years after from",
            ));
        }
        Ok(Self { from, to })
    }

    /// Monday to Friday dates, in `time_zone`, the window touches.
    #[must_use]
    pub fn working_days(&self, time_zone: &str) -> u32 {
        let zone: chrono_tz::Tz = time_zone.parse().unwrap_or(chrono_tz::UTC);
        let first = self.from.with_timezone(&zone).date_naive();
        let last = (self.to - Duration::nanoseconds(1))
            .with_timezone(&zone)
            .date_naive();
        first
            .iter_days()
            .take_while(|d| *d <= last)
            .filter(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
            .fold(0, |n, _| n + 1)
    }
}

/// Whose leads a report counts, and the tiers it lists.
pub struct Counted {
    /// The leads the caller may see, of the team asked for.
    pub leads: Condition,
    /// Whether that is every lead of the tenant, so that a statement over
    /// activities or events need not check their leads.
    pub every_lead: bool,
    pub team: Option<TeamId>,
    /// The tiers of the model scoring those leads, top first.
    pub tiers: Vec<String>,
    pub config: Arc<TenantConfig>,
}

impl Counted {
    /// The model's tiers, then any other tier `seen` (kept by leads scored
    /// with an older model), in the order first seen.
    fn tier_order<'a>(&self, seen: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut out = self.tiers.clone();
        for tier in seen {
            if !out.iter().any(|t| t == tier) {
                out.push(tier.to_owned());
            }
        }
        out
    }

    /// Narrows a select of rows of leads (`lead_column`) to the counted
    /// leads, unless every lead counts.
    fn of_counted<E: sea_orm::EntityTrait, C: ConnectionTrait>(
        &self,
        scope: &TenantScope<'_, C>,
        select: sea_orm::Select<E>,
        lead_column: impl ColumnTrait,
    ) -> sea_orm::Select<E> {
        if self.every_lead {
            select
        } else {
            select.filter(
                lead_column.in_subquery(self.select(scope, [lead::Column::Id]).into_query()),
            )
        }
    }

    /// The scoped select of the counted leads, with `columns`.
    fn select<C: ConnectionTrait>(
        &self,
        scope: &TenantScope<'_, C>,
        columns: impl IntoIterator<Item = lead::Column>,
    ) -> sea_orm::Select<lead::Entity> {
        scope
            .select::<lead::Entity>()
            .select_only()
            .columns(columns)
            .filter(self.leads.clone())
    }
}

/// The leads a report on `team` (or every team) counts for the caller:
/// those `leads` shows them, of that team (led by it, or owned by one of
/// its members), and of `owner` when named.
///
/// # Errors
/// BAD_USER_INPUT or NOT_FOUND for a bad team or owner; FORBIDDEN for a
/// MANAGER naming a team they do not manage or someone outside their
/// teams.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %principal.tenant_id, team_id = ?team, owner_id = ?owner))]
pub async fn counted<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    team: Option<TeamId>,
    owner: Option<UserId>,
) -> AppResult<Counted> {
    let config = tenant_config::get(scope).await?;
    let mut leads = Condition::all().add(LeadVisibility::load(scope, principal).await?.condition());
    if let Some(team) = team {
        scope.get::<team::Entity>(team).await?;
        let theirs = config.teams_of(principal.user_id).contains(&team);
        if matches!(principal.role, Role::Manager | Role::Rep) && !theirs {
            return Err(AppError::Forbidden {
                action: "read the review of a team you are not in",
            });
        }
        leads = leads.add(
            Condition::any()
                .add(lead::Column::TeamId.eq(team))
                .add(lead::Column::OwnerId.is_in(config.members_of(&[team]))),
        );
    }
    if let Some(owner) = owner {
        scope.get::<user::Entity>(owner).await?;
        let mut members = config.members_of(config.teams_of(principal.user_id));
        members.push(principal.user_id);
        let allowed = match principal.role {
            Role::Owner | Role::Admin => true,
            Role::Manager => members.contains(&owner),
            Role::Rep => owner == principal.user_id,
        };
        if !allowed {
            return Err(AppError::Forbidden {
                action: "read the review of someone outside your teams",
            });
        }
        leads = leads.add(lead::Column::OwnerId.eq(owner));
    }
    let tiers = config
        .model(team)?
        .compiled
        .config()
        .tiers
        .iter()
        .map(|t| t.key.clone())
        .collect();
    Ok(Counted {
        every_lead: matches!(principal.role, Role::Owner | Role::Admin)
            && team.is_none()
            && owner.is_none(),
        leads,
        team,
        tiers,
        config,
    })
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Rows of `(group, median)` from `inner`, a select of `g` and `v`: the
/// median of `v` per `g`, found by the database (the middle row, or the
/// mean of the middle two, of each group in order).
fn median_by(backend: sea_orm::DbBackend, inner: impl FnOnce(&mut Sql)) -> Sql {
    let mut sql = Sql::new(backend);
    sql.push(
        "SELECT g, AVG(v) AS median FROM (SELECT g, v, \
         ROW_NUMBER() OVER (PARTITION BY g ORDER BY v) AS rn, \
         COUNT(*) OVER (PARTITION BY g) AS n FROM (",
    );
    inner(&mut sql);
    sql.push(") x WHERE v IS NOT NULL) r WHERE rn IN ((n + 1) / 2, (n + 2) / 2) GROUP BY g");
    sql
}

/// The median of `values` (unsorted); none when empty.
fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        f64::midpoint(values[n / 2 - 1], values[n / 2])
    })
}

// ---------------------------------------------------------------- tiers

/// What one tier holds and brought in.
#[derive(Debug, Default, Clone)]
pub struct TierFigures {
    pub tier: String,
    /// Open leads in the tier now, and their summed deal value.
    pub open_leads: u64,
    pub open_value: f64,
    /// Leads of the tier closed within the window.
    pub won: u64,
    pub lost: u64,
    pub won_value: f64,
}

/// Per tier: open leads and their value now, and the leads won and lost
/// within the window (by the tier they held when they closed), with the
/// value won; every tier of the model listed, top first, even when empty.
///
/// # Errors
/// Database errors.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %scope.tenant_id()))]
pub async fn tier_report<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    counted: &Counted,
    window: Window,
) -> AppResult<Vec<TierFigures>> {
    let open: Vec<(String, i64, Option<f64>)> = counted
        .select(scope, [lead::Column::Tier])
        .column_as(lead::Column::Id.count(), "n")
        .column_as(lead::Column::DealValue.sum(), "value")
        .filter(lead::Column::Status.eq(LeadStatus::Open))
        .group_by(lead::Column::Tier)
        .into_tuple()
        .all(scope.conn())
        .await?;
    let closed: Vec<(String, LeadStatus, i64, Option<f64>)> = closed_in(scope, counted, window)
        .await?
        .into_iter()
        .map(|c| (c.tier, c.status, c.leads, Some(c.value)))
        .collect();
    let order = counted.tier_order(
        open.iter()
            .map(|(t, ..)| t.as_str())
            .chain(closed.iter().map(|(t, ..)| t.as_str())),
    );
    let mut rows: Vec<TierFigures> = order
        .into_iter()
        .map(|tier| TierFigures {
            tier,
            ..TierFigures::default()
        })
        .collect();
    for (tier, n, value) in open {
        if let Some(r) = rows.iter_mut().find(|r| r.tier == tier) {
            r.open_leads = count(n);
            r.open_value = value.unwrap_or(0.0);
        }
    }
    for (tier, status, n, value) in closed {
        if let Some(r) = rows.iter_mut().find(|r| r.tier == tier) {
            // One group per owner: they add up.
            if status == LeadStatus::Won {
                r.won += count(n);
                r.won_value += value.unwrap_or(0.0);
            } else {
                r.lost += count(n);
            }
        }
    }
    Ok(rows)
}

/// Counted leads closed within a window with one owner, tier and outcome.
struct ClosedGroup {
    owner: Option<UserId>,
    /// The tier the lead held when it closed.
    tier: String,
    status: LeadStatus,
    leads: i64,
    /// Their summed deal value.
    value: f64,
}

/// The counted leads closed within the window, grouped by owner, outcome
/// and the tier they held when they closed: the tier of their last score
/// event at or before the close (the close's own re-score included), for
/// a customer's tier moves on after the sale as the post-sale stages
/// re-score it.
async fn closed_in<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    counted: &Counted,
    window: Window,
) -> AppResult<Vec<ClosedGroup>> {
    let mut sql = Sql::new(scope.conn().get_database_backend());
    sql.push(
        "SELECT c.owner_id AS owner, c.tier AS tier, c.status AS status, \
         COUNT(*) AS n, SUM(COALESCE(c.deal_value, 0.0)) AS value FROM \
         (SELECT l.owner_id, l.status, l.deal_value, COALESCE((SELECT e.new_tier FROM ",
    )
    .subquery(
        scope
            .select::<score_event::Entity>()
            .select_only()
            .columns([
                score_event::Column::LeadId,
                score_event::Column::At,
                score_event::Column::NewTier,
            ]),
    )
    .push(
        " e WHERE e.lead_id = l.id AND e.at <= l.closed_at ORDER BY e.at DESC LIMIT 1), \
         l.tier) AS tier FROM ",
    )
    .subquery(
        counted
            .select(
                scope,
                [
                    lead::Column::Id,
                    lead::Column::OwnerId,
                    lead::Column::Status,
                    lead::Column::DealValue,
                    lead::Column::ClosedAt,
                    lead::Column::Tier,
                ],
            )
            .filter(lead::Column::Status.is_in([LeadStatus::Won, LeadStatus::Lost]))
            .filter(lead::Column::ClosedAt.gte(window.from))
            .filter(lead::Column::ClosedAt.lt(window.to)),
    )
    .push(" l) c GROUP BY c.owner_id, c.tier, c.status");
    sql.all(scope.conn())
        .await?
        .iter()
        .map(|r| {
            Ok(ClosedGroup {
                owner: r.try_get("", "owner")?,
                tier: r.try_get("", "tier")?,
                status: r.try_get("", "status")?,
                leads: r.try_get("", "n")?,
                value: r.try_get::<Option<f64>>("", "value")?.unwrap_or(0.0),
            })
        })
        .collect()
}

// ---------------------------------------------------------- scorecards

/// Leads of one tier won and lost.
#[derive(Debug, Default, Clone)]
pub struct TierOutcome {
    pub tier: String,
    pub won: u64,
    pub lost: u64,
}

/// How one rep is doing.
#[derive(Debug, Clone)]
pub struct Scorecard {
    pub rep: user::Model,
    /// Open leads now per tier, every tier listed.
    pub open_by_tier: Vec<(String, u64)>,
    /// Open leads whose follow-up time has passed.
    pub overdue: u64,
    /// Leads assigned to the rep within the window (given, claimed, or
    /// created with them as owner), and of those the ones the rep has
    /// since contacted.
    pub assigned: u64,
    pub contacted: u64,
    /// Median hours from assignment to the first outbound activity, over
    /// the contacted ones.
    pub median_hours_to_first_contact: Option<f64>,
    /// Outbound activities within the window: recorded by the rep, or
    /// sent by an integration (no person) on a lead the rep owns.
    pub outbound_activities: u64,
    /// Leads closed within the window, per tier (every tier listed).
    pub closed_by_tier: Vec<TierOutcome>,
    pub won_value: f64,
    /// Median days from creation to close of the leads closed within the
    /// window, won or lost.
    pub median_days_to_close: Option<f64>,
}

impl Scorecard {
    #[must_use]
    pub fn open_leads(&self) -> u64 {
        self.open_by_tier.iter().map(|(_, n)| n).sum()
    }

    #[must_use]
    pub fn won(&self) -> u64 {
        self.closed_by_tier.iter().map(|t| t.won).sum()
    }

    #[must_use]
    pub fn lost(&self) -> u64 {
        self.closed_by_tier.iter().map(|t| t.lost).sum()
    }
}

/// The reps a caller's scorecards cover: a REP themselves; a MANAGER
/// their teams' members and themselves; OWNER and ADMIN every active REP
/// and MANAGER; narrowed to the team's members when one is asked for.
/// Anyone else owning a counted lead is added by the caller.
fn reps_in_view(principal: &Principal, counted: &Counted) -> Option<Vec<UserId>> {
    let config = &counted.config;
    let mut reps = match principal.role {
        Role::Rep => vec![principal.user_id],
        Role::Manager => {
            let mut members = config.members_of(config.teams_of(principal.user_id));
            members.push(principal.user_id);
            members
        }
        Role::Owner | Role::Admin => return counted.team.map(|t| config.members_of(&[t])),
    };
    if let Some(team) = counted.team {
        let members = config.members_of(&[team]);
        reps.retain(|r| members.contains(r));
    }
    Some(reps)
}

/// Scorecards of the reps the caller may see (see [`reps_in_view`]),
/// by name.
///
/// # Errors
/// Database errors.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %scope.tenant_id()))]
pub async fn scorecards<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    counted: &Counted,
    window: Window,
    now: DateTime<Utc>,
) -> AppResult<Vec<Scorecard>> {
    let backend = scope.conn().get_database_backend();
    let open: Vec<(UserId, String, i64)> = counted
        .select(scope, [lead::Column::OwnerId, lead::Column::Tier])
        .column_as(lead::Column::Id.count(), "n")
        .filter(lead::Column::Status.eq(LeadStatus::Open))
        .filter(lead::Column::OwnerId.is_not_null())
        .group_by(lead::Column::OwnerId)
        .group_by(lead::Column::Tier)
        .into_tuple()
        .all(scope.conn())
        .await?;
    let overdue: Vec<(UserId, i64)> = counted
        .select(scope, [lead::Column::OwnerId])
        .column_as(lead::Column::Id.count(), "n")
        .filter(follow_up::overdue_condition(now))
        .filter(lead::Column::OwnerId.is_not_null())
        .group_by(lead::Column::OwnerId)
        .into_tuple()
        .all(scope.conn())
        .await?;
    let closed: Vec<(UserId, String, LeadStatus, i64, Option<f64>)> =
        closed_in(scope, counted, window)
            .await?
            .into_iter()
            .filter_map(|c| Some((c.owner?, c.tier, c.status, c.leads, Some(c.value))))
            .collect();
    let days_to_close = median_by(backend, |sql| {
        sql.push("SELECT l.owner_id AS g, (")
            .epoch("l.closed_at")
            .push(" - ")
            .epoch("l.created_at")
            .push(") / 86400.0 AS v FROM ")
            .subquery(
                counted
                    .select(
                        scope,
                        [
                            lead::Column::OwnerId,
                            lead::Column::CreatedAt,
                            lead::Column::ClosedAt,
                        ],
                    )
                    .filter(lead::Column::Status.is_in([LeadStatus::Won, LeadStatus::Lost]))
                    .filter(lead::Column::ClosedAt.gte(window.from))
                    .filter(lead::Column::ClosedAt.lt(window.to))
                    .filter(lead::Column::OwnerId.is_not_null()),
            )
            .push(" l");
    })
    .all(scope.conn())
    .await?;
    let days_to_close: HashMap<UserId, f64> = medians(&days_to_close)?;
    let first_contacts = first_contacts(scope, counted, window).await?;
    let outbound = outbound_activities(scope, counted, window).await?;

    let mut ids: BTreeSet<UserId> = open.iter().map(|(o, ..)| *o).collect();
    ids.extend(closed.iter().map(|(o, ..)| *o));
    let wanted = reps_in_view(principal, counted);
    if let Some(wanted) = &wanted {
        ids.retain(|id| wanted.contains(id));
        ids.extend(wanted.iter().copied());
    }
    let mut users = scope.select::<user::Entity>();
    users = if wanted.is_none() {
        users.filter(
            Condition::any().add(user::Column::Id.is_in(ids)).add(
                Condition::all()
                    .add(user::Column::Active.eq(true))
                    .add(user::Column::Role.is_in([Role::Rep, Role::Manager])),
            ),
        )
    } else {
        users.filter(user::Column::Id.is_in(ids))
    };
    let mut reps = users.all(scope.conn()).await?;
    reps.sort_by(|a, b| a.display_name.cmp(&b.display_name).then(a.id.cmp(&b.id)));

    let order = counted.tier_order(
        open.iter()
            .map(|(_, t, _)| t.as_str())
            .chain(closed.iter().map(|(_, t, ..)| t.as_str())),
    );
    Ok(reps
        .into_iter()
        .map(|rep| {
            let id = rep.id;
            let open_by_tier = order
                .iter()
                .map(|tier| {
                    let n = open
                        .iter()
                        .find(|(o, t, _)| *o == id && t == tier)
                        .map_or(0, |(.., n)| count(*n));
                    (tier.clone(), n)
                })
                .collect();
            let closed_by_tier = order
                .iter()
                .map(|tier| {
                    let of = |status: LeadStatus| {
                        closed
                            .iter()
                            .find(|(o, t, s, ..)| *o == id && t == tier && *s == status)
                            .map_or(0, |(.., n, _)| count(*n))
                    };
                    TierOutcome {
                        tier: tier.clone(),
                        won: of(LeadStatus::Won),
                        lost: of(LeadStatus::Lost),
                    }
                })
                .collect();
            let won_value = closed
                .iter()
                .filter(|(o, _, s, ..)| *o == id && *s == LeadStatus::Won)
                .filter_map(|(.., v)| *v)
                .sum();
            let hours: Vec<Option<f64>> = first_contacts
                .iter()
                .filter(|(o, _)| *o == id)
                .map(|(_, h)| *h)
                .collect();
            Scorecard {
                open_by_tier,
                overdue: overdue
                    .iter()
                    .find(|(o, _)| *o == id)
                    .map_or(0, |(_, n)| count(*n)),
                assigned: hours.len() as u64,
                contacted: hours.iter().flatten().count() as u64,
                median_hours_to_first_contact: median(hours.into_iter().flatten().collect()),
                outbound_activities: outbound.get(&id).copied().unwrap_or(0),
                closed_by_tier,
                won_value,
                median_days_to_close: days_to_close.get(&id).copied(),
                rep,
            }
        })
        .collect())
}

/// `(g, median)` rows as a map.
fn medians(rows: &[QueryResult]) -> AppResult<HashMap<UserId, f64>> {
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<UserId>("", "g")?,
                r.try_get::<f64>("", "median")?,
            ))
        })
        .collect()
}

/// The scoped select of outbound activities within `window`, with
/// `columns`.
fn outbound_in<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    columns: impl IntoIterator<Item = activity::Column>,
) -> sea_orm::Select<activity::Entity> {
    scope
        .select::<activity::Entity>()
        .select_only()
        .columns(columns)
        .filter(activity::Column::Direction.eq(Direction::Outbound))
}

/// Each assignment within the window of a counted lead: the rep, and the
/// hours until the lead's first outbound activity after it (none while
/// there is none). An assignment is a recorded owner change or claim, or
/// the creation of a lead whose owner never changed since.
async fn first_contacts<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    counted: &Counted,
    window: Window,
) -> AppResult<Vec<(UserId, Option<f64>)>> {
    let backend = scope.conn().get_database_backend();
    let assignment_kinds = ["ASSIGNED", pool::CLAIMED];
    // The first outbound activity at or after `at` on `lead`.
    // The direction is judged per row, not in the WHERE clause: there
    // SQLite would take the index of outbound activities by time, which
    // covers the lookup, and scan it from the assignment on for every
    // lead, instead of the lead's own few activities.
    let first_after = |sql: &mut Sql, lead: &str, at: &str| {
        sql.push("(SELECT MIN(CASE WHEN a.direction = ")
            .bind(Direction::Outbound.to_value())
            .push(" THEN a.occurred_at END) FROM ")
            .subquery(scope.select::<activity::Entity>().select_only().columns([
                activity::Column::LeadId,
                activity::Column::OccurredAt,
                activity::Column::Direction,
            ]))
            .push(&format!(
                " a WHERE a.lead_id = {lead} AND a.occurred_at >= {at})"
            ));
    };
    let hours = |sql: &mut Sql| {
        sql.push("(")
            .epoch("x.first")
            .push(" - ")
            .epoch("x.at")
            .push(") / 3600.0 AS hours FROM (");
    };

    let mut given = Sql::new(backend);
    given.push("SELECT x.owner AS owner, ");
    hours(&mut given);
    given.push("SELECT e.to_value AS owner, e.at AS at, ");
    first_after(&mut given, "e.lead_id", "e.at");
    given
        .push(" AS first FROM ")
        .subquery(
            counted.of_counted(
                scope,
                scope
                    .select::<lead_event::Entity>()
                    .select_only()
                    .columns([
                        lead_event::Column::LeadId,
                        lead_event::Column::ToValue,
                        lead_event::Column::At,
                    ])
                    .filter(lead_event::Column::Kind.is_in(assignment_kinds))
                    .filter(lead_event::Column::At.gte(window.from))
                    .filter(lead_event::Column::At.lt(window.to))
                    .filter(lead_event::Column::ToValue.is_not_null()),
                lead_event::Column::LeadId,
            ),
        )
        .push(" e) x");
    let mut out = Vec::new();
    for row in given.all(scope.conn()).await? {
        let owner: String = row.try_get("", "owner")?;
        if let Ok(owner) = owner.parse::<UserId>() {
            out.push((owner, row.try_get::<Option<f64>>("", "hours")?));
        }
    }

    let mut created = Sql::new(backend);
    created.push("SELECT x.owner_id AS owner, ");
    hours(&mut created);
    created.push("SELECT l.owner_id AS owner_id, l.created_at AS at, ");
    first_after(&mut created, "l.id", "l.created_at");
    created
        .push(" AS first FROM ")
        .subquery(
            counted
                .select(
                    scope,
                    [
                        lead::Column::Id,
                        lead::Column::OwnerId,
                        lead::Column::CreatedAt,
                    ],
                )
                .filter(lead::Column::CreatedAt.gte(window.from))
                .filter(lead::Column::CreatedAt.lt(window.to))
                .filter(lead::Column::OwnerId.is_not_null()),
        )
        .push(" l WHERE NOT EXISTS (SELECT 1 FROM ")
        .subquery(
            scope
                .select::<lead_event::Entity>()
                .select_only()
                .column(lead_event::Column::LeadId)
                .filter(lead_event::Column::Kind.is_in(assignment_kinds)),
        )
        .push(" e WHERE e.lead_id = l.id)) x");
    for row in created.all(scope.conn()).await? {
        out.push((
            row.try_get::<UserId>("", "owner")?,
            row.try_get::<Option<f64>>("", "hours")?,
        ));
    }
    Ok(out)
}

/// Outbound activities within the window on counted leads, per rep: those
/// the rep recorded, and those an integration recorded (no person) on a
/// lead the rep owns.
async fn outbound_activities<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    counted: &Counted,
    window: Window,
) -> AppResult<HashMap<UserId, u64>> {
    let in_window = |select: sea_orm::Select<activity::Entity>| {
        select
            .filter(activity::Column::OccurredAt.gte(window.from))
            .filter(activity::Column::OccurredAt.lt(window.to))
    };
    // Counting lead ids, which the outbound index holds, not row ids.
    let by_person: Vec<(UserId, i64)> = counted
        .of_counted(
            scope,
            in_window(outbound_in(scope, [activity::Column::CreatedBy])),
            activity::Column::LeadId,
        )
        .column_as(activity::Column::LeadId.count(), "n")
        .filter(activity::Column::CreatedBy.is_not_null())
        .group_by(activity::Column::CreatedBy)
        .into_tuple()
        .all(scope.conn())
        .await?;
    let mut sql = Sql::new(scope.conn().get_database_backend());
    sql.push("SELECT l.owner_id AS g, COUNT(*) AS n FROM ")
        .subquery(
            in_window(outbound_in(scope, [activity::Column::LeadId]))
                .filter(activity::Column::CreatedBy.is_null()),
        )
        .push(" a JOIN ")
        .subquery(
            counted
                .select(scope, [lead::Column::Id, lead::Column::OwnerId])
                .filter(lead::Column::OwnerId.is_not_null()),
        )
        .push(" l ON l.id = a.lead_id GROUP BY l.owner_id");
    let mut out: HashMap<UserId, u64> = HashMap::new();
    for (rep, n) in by_person {
        *out.entry(rep).or_default() += count(n);
    }
    for row in sql.all(scope.conn()).await? {
        let rep: UserId = row.try_get("", "g")?;
        *out.entry(rep).or_default() += count(row.try_get::<i64>("", "n")?);
    }
    Ok(out)
}

// ------------------------------------------------------------ movements

/// Leads in one tier at the window's start and another at its end.
#[derive(Debug, Clone)]
pub struct TierMovement {
    /// None for leads created within the window.
    pub from_tier: Option<String>,
    pub to_tier: String,
    pub leads: u64,
}

/// Of the leads in a lower tier at the window's start, those that reached
/// a higher one at any time within it, and of those the ones won.
#[derive(Debug, Clone)]
pub struct TierClimb {
    pub from_tier: String,
    pub to_tier: String,
    pub leads: u64,
    pub reached: u64,
    pub won: u64,
}

pub struct Movements {
    /// The tiers in order, top first.
    pub tiers: Vec<String>,
    /// Every (from, to) pair with leads, in tier order.
    pub cells: Vec<TierMovement>,
    /// Every pair of a lower and a higher tier of the model.
    pub climbs: Vec<TierClimb>,
}

/// The tier of each counted lead at the window's start and at its end
/// (from its score history: the tier of its last score event before
/// each), and how far up each lower tier climbed within it. Leads closed
/// before the window started are left out; leads created within it start
/// from no tier.
///
/// # Errors
/// Database errors.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %scope.tenant_id()))]
pub async fn tier_movements<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    counted: &Counted,
    window: Window,
    now: DateTime<Utc>,
) -> AppResult<Movements> {
    let events = || {
        scope
            .select::<score_event::Entity>()
            .select_only()
            .columns([
                score_event::Column::Id,
                score_event::Column::LeadId,
                score_event::Column::At,
                score_event::Column::NewTier,
            ])
    };
    let tier_at = |sql: &mut Sql, at: DateTime<Utc>| {
        sql.push("(SELECT e.new_tier FROM ")
            .subquery(events())
            .push(" e WHERE e.lead_id = l.id AND e.at < ")
            .bind(at)
            // By time alone, so that the lead's index gives the latest at
            // once: a lead is scored once per write, so two of its events
            // never share a time.
            .push(" ORDER BY e.at DESC LIMIT 1)");
    };
    // Each lead costs an index lookup or two in the score history, so
    // the lookups that cannot find anything are skipped: a lead created
    // after the start had no tier then, and one without a tier then
    // climbed from nowhere; and when the window reaches the present, the
    // tier at its end is the one the lead holds.
    let mut sql = Sql::new(scope.conn().get_database_backend());
    sql.push(
        "SELECT m.tier_from AS tier_from, m.tier_to AS tier_to, \
         CASE WHEN m.tier_from IS NULL THEN NULL ELSE (SELECT CAST(MIN(CASE e.new_tier",
    );
    // The best tier reached within the window, as its place in the list.
    for (rank, tier) in counted.tiers.iter().enumerate() {
        sql.push(" WHEN ")
            .bind(tier.as_str())
            .push(&format!(" THEN {rank}"));
    }
    // Both databases read the figures as 64-bit integers.
    sql.push(" ELSE 1000 END) AS BIGINT) FROM ")
        .subquery(events())
        .push(" e WHERE e.lead_id = m.id AND e.at >= ")
        .bind(window.from)
        .push(" AND e.at < ")
        .bind(window.to)
        .push(") END AS best, m.won AS won, COUNT(*) AS n FROM (SELECT l.id AS id, CASE WHEN l.created_at >= ")
        .bind(window.from)
        .push(" THEN NULL ELSE ");
    tier_at(&mut sql, window.from);
    sql.push(" END AS tier_from, ");
    if window.to >= now {
        sql.push("l.tier");
    } else {
        tier_at(&mut sql, window.to);
    }
    sql.push(" AS tier_to, CAST(CASE WHEN l.status = 'WON' AND l.closed_at < ")
        .bind(window.to)
        .push(" THEN 1 ELSE 0 END AS BIGINT) AS won FROM ")
        .subquery(
            counted
                .select(
                    scope,
                    [
                        lead::Column::Id,
                        lead::Column::Status,
                        lead::Column::ClosedAt,
                        lead::Column::CreatedAt,
                        lead::Column::Tier,
                    ],
                )
                .filter(lead::Column::CreatedAt.lt(window.to))
                .filter(
                    Condition::any()
                        .add(lead::Column::ClosedAt.is_null())
                        .add(lead::Column::ClosedAt.gte(window.from)),
                ),
        )
        .push(" l) m GROUP BY 1, 2, 3, 4");
    struct Group {
        from: Option<String>,
        to: Option<String>,
        best: Option<i64>,
        won: bool,
        n: u64,
    }
    let groups: Vec<Group> = sql
        .all(scope.conn())
        .await?
        .iter()
        .map(|r| {
            Ok(Group {
                from: r.try_get("", "tier_from")?,
                to: r.try_get("", "tier_to")?,
                best: r.try_get("", "best")?,
                won: r.try_get::<i64>("", "won")? == 1,
                n: count(r.try_get("", "n")?),
            })
        })
        .collect::<AppResult<_>>()?;
    let tiers = counted.tier_order(
        groups
            .iter()
            .flat_map(|g| [g.from.as_deref(), g.to.as_deref()])
            .flatten(),
    );
    let rank = |tier: &str| tiers.iter().position(|t| t == tier).unwrap_or(usize::MAX);

    let mut cells: HashMap<(Option<String>, String), u64> = HashMap::new();
    for g in &groups {
        // A lead without a tier at the end was created after it.
        if let Some(to) = &g.to {
            *cells.entry((g.from.clone(), to.clone())).or_default() += g.n;
        }
    }
    let mut cells: Vec<TierMovement> = cells
        .into_iter()
        .map(|((from_tier, to_tier), leads)| TierMovement {
            from_tier,
            to_tier,
            leads,
        })
        .collect();
    cells.sort_by_key(|c| {
        (
            c.from_tier
                .as_deref()
                .map_or(0, |t| rank(t).saturating_add(1)),
            rank(&c.to_tier),
        )
    });

    let model_tiers = counted.tiers.len();
    let mut climbs = Vec::new();
    for low in 1..model_tiers {
        for high in 0..low {
            let from: Vec<&Group> = groups
                .iter()
                .filter(|g| g.from.as_deref() == Some(tiers[low].as_str()))
                .collect();
            let reached: Vec<&&Group> = from
                .iter()
                .filter(|g| {
                    g.best
                        .is_some_and(|b| usize::try_from(b).is_ok_and(|b| b <= high))
                })
                .collect();
            climbs.push(TierClimb {
                from_tier: tiers[low].clone(),
                to_tier: tiers[high].clone(),
                leads: from.iter().map(|g| g.n).sum(),
                reached: reached.iter().map(|g| g.n).sum(),
                won: reached.iter().filter(|g| g.won).map(|g| g.n).sum(),
            });
        }
    }
    Ok(Movements {
        tiers,
        cells,
        climbs,
    })
}

// ------------------------------------------------------------- forecast

/// How far back won deals teach the stages' typical time to close.
const LEARN_FROM_DAYS: i64 = 730;

/// Open deal value expected to close in one month, beside what was won.
#[derive(Debug, Clone, Default)]
pub struct MonthFigures {
    /// The month's first day, in the company's time zone.
    pub month: NaiveDate,
    pub open_leads: u64,
    pub unweighted: f64,
    pub weighted: f64,
    pub won_leads: u64,
    pub won_value: f64,
}

/// Open deal value of the leads in one stage.
#[derive(Debug, Clone, Default)]
pub struct Sum {
    pub open_leads: u64,
    pub unweighted: f64,
    pub weighted: f64,
}

impl Sum {
    fn add(&mut self, n: u64, unweighted: f64, weighted: f64) {
        self.open_leads += n;
        self.unweighted += unweighted;
        self.weighted += weighted;
    }
}

pub struct StageForecast {
    pub stage: stage::Model,
    /// The stage's leads expected to close within the window.
    pub sum: Sum,
    /// Median days from entering the stage to a win, learned from the
    /// deals won in the last two years; none without such deals.
    pub typical_days: Option<f64>,
}

pub struct Forecast {
    /// Every month the window touches, in order.
    pub months: Vec<MonthFigures>,
    /// Every open stage of every pipeline (post-sale ones aside), in
    /// pipeline order.
    pub stages: Vec<StageForecast>,
    /// Open leads expected to close outside the window.
    pub outside: Sum,
    /// Open leads without an expected close date whose stage has no
    /// typical time to close yet.
    pub undated: Sum,
}

/// Median days from entering each stage of `pipeline` to a win, over the
/// tenant's deals won since `since`: a lead enters a stage when it is
/// moved there, or when it is created in it.
async fn typical_days<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    counted: &Counted,
    pipeline: PipelineId,
    since: DateTime<Utc>,
) -> AppResult<HashMap<String, f64>> {
    // The won leads and their stage moves are read once each (`w`, `m`):
    // joined as subqueries instead, SQLite matched every move against
    // every won lead, twice.
    let won = counted
        .select(
            scope,
            [
                lead::Column::Id,
                lead::Column::CreatedAt,
                lead::Column::ClosedAt,
            ],
        )
        .filter(lead::Column::PipelineId.eq(pipeline))
        .filter(lead::Column::Status.eq(LeadStatus::Won))
        .filter(lead::Column::ClosedAt.gte(since));
    let moves = scope
        .select::<lead_event::Entity>()
        .select_only()
        .columns([
            lead_event::Column::Id,
            lead_event::Column::LeadId,
            lead_event::Column::FromValue,
            lead_event::Column::ToValue,
            lead_event::Column::At,
        ])
        .filter(lead_event::Column::Kind.eq("STAGE"));
    let backend = scope.conn().get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push("WITH w AS ")
        .subquery(won)
        .push(
            ", m AS (SELECT x.lead_id, x.from_value, x.to_value, x.at, \
             ROW_NUMBER() OVER (PARTITION BY x.lead_id ORDER BY x.at, x.id) AS k FROM ",
        )
        .subquery(moves)
        .push(
            " x WHERE x.lead_id IN (SELECT id FROM w)) \
             SELECT g, AVG(v) AS median FROM (SELECT g, v, \
             ROW_NUMBER() OVER (PARTITION BY g ORDER BY v) AS rn, \
             COUNT(*) OVER (PARTITION BY g) AS n FROM (SELECT m.to_value AS g, (",
        )
        .epoch("w.closed_at")
        .push(" - ")
        .epoch("m.at")
        .push(
            ") / 86400.0 AS v FROM m JOIN w ON w.id = m.lead_id WHERE m.at <= w.closed_at \
             UNION ALL SELECT m.from_value AS g, (",
        )
        .epoch("w.closed_at")
        .push(" - ")
        .epoch("w.created_at")
        .push(
            ") / 86400.0 AS v FROM m JOIN w ON w.id = m.lead_id WHERE m.k = 1\
             ) y WHERE g IS NOT NULL AND v IS NOT NULL) r \
             WHERE rn IN ((n + 1) / 2, (n + 2) / 2) GROUP BY g",
        );
    sql.all(scope.conn())
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get::<String>("", "g")?,
                r.try_get::<f64>("", "median")?,
            ))
        })
        .collect()
}

/// The first day of the month of `day`.
fn month_of(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

/// Open deal value of the counted leads by the month they are expected to
/// close (their expected close date, else the day they entered their stage
/// plus the stage's typical time to a win; a date already past counts in
/// the current month), weighted by close probability, and by stage; with
/// the value won in each month of the window beside it. Months are the
/// company's, in its time zone.
///
/// # Errors
/// Database errors.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %scope.tenant_id()))]
pub async fn forecast<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    counted: &Counted,
    window: Window,
    now: DateTime<Utc>,
) -> AppResult<Forecast> {
    let zone: chrono_tz::Tz = counted
        .config
        .tenant
        .time_zone
        .parse()
        .unwrap_or(chrono_tz::UTC);
    // Days are cut at the company's midnight as it falls now; across a
    // change to or from summer time a deal within an hour of midnight may
    // fall on the neighbouring day.
    let offset = f64::from(
        zone.offset_from_utc_datetime(&now.naive_utc())
            .fix()
            .local_minus_utc(),
    );
    let local_day = |at: DateTime<Utc>| at.with_timezone(&zone).date_naive();
    let epoch_day = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let day_of = |n: i64| epoch_day + Duration::days(n);

    let mut typical: HashMap<StageId, f64> = HashMap::new();
    let mut stages: Vec<StageForecast> = Vec::new();
    for pipeline in counted.config.pipelines() {
        let days = typical_days(
            scope,
            counted,
            pipeline.0.id,
            now - Duration::days(LEARN_FROM_DAYS),
        )
        .await?;
        for stage in &pipeline.1 {
            if stage.kind != StageKind::Open || stage.post_sale {
                continue;
            }
            let typical_days = days.get(&stage.key).copied();
            if let Some(d) = typical_days {
                typical.insert(stage.id, d);
            }
            stages.push(StageForecast {
                stage: stage.clone(),
                sum: Sum::default(),
                typical_days,
            });
        }
    }

    let backend = scope.conn().get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push("SELECT l.stage_id AS stage, ");
    sql.floor_begin()
        .push("(l.expected + ")
        .bind(offset)
        .push(") / 86400.0")
        .floor_end()
        .push(
            " AS day, COUNT(*) AS n, SUM(COALESCE(l.deal_value, 0.0)) AS value, \
             SUM(COALESCE(l.deal_value, 0.0) * COALESCE(l.close_probability, 0.0)) AS weighted \
             FROM (SELECT o.stage_id, o.deal_value, o.close_probability, COALESCE(",
        )
        .epoch("o.expected_close_at")
        .push(", ")
        .epoch("o.stage_entered_at")
        .push(" + ");
    if typical.is_empty() {
        sql.push("NULL");
    } else {
        sql.push("CASE o.stage_id");
        for (stage, days) in &typical {
            sql.push(" WHEN ")
                .bind(*stage)
                .push(" THEN CAST(")
                .bind(days * 86_400.0)
                .push(" AS DOUBLE PRECISION)");
        }
        sql.push(" END");
    }
    sql.push(") AS expected FROM ")
        .subquery(
            counted
                .select(
                    scope,
                    [
                        lead::Column::StageId,
                        lead::Column::DealValue,
                        lead::Column::CloseProbability,
                        lead::Column::ExpectedCloseAt,
                        lead::Column::StageEnteredAt,
                    ],
                )
                .filter(lead::Column::Status.eq(LeadStatus::Open)),
        )
        .push(" o) l GROUP BY l.stage_id, day");
    let open = sql.all(scope.conn()).await?;

    let first = month_of(local_day(window.from));
    let last = month_of(local_day(window.to - Duration::nanoseconds(1)));
    let mut months: Vec<MonthFigures> = Vec::new();
    let mut month = first;
    while month <= last {
        months.push(MonthFigures {
            month,
            ..MonthFigures::default()
        });
        month = month
            .checked_add_months(Months::new(1))
            .unwrap_or(NaiveDate::MAX);
    }
    let today = local_day(now);
    let mut outside = Sum::default();
    let mut undated = Sum::default();
    for row in &open {
        let stage: StageId = row.try_get("", "stage")?;
        let day: Option<i64> = row.try_get("", "day")?;
        let n = count(row.try_get("", "n")?);
        let value: f64 = row.try_get::<Option<f64>>("", "value")?.unwrap_or(0.0);
        let weighted: f64 = row.try_get::<Option<f64>>("", "weighted")?.unwrap_or(0.0);
        let Some(day) = day else {
            undated.add(n, value, weighted);
            continue;
        };
        let expected = month_of(day_of(day).max(today));
        match months.iter_mut().find(|m| m.month == expected) {
            Some(m) => {
                m.open_leads += n;
                m.unweighted += value;
                m.weighted += weighted;
                if let Some(s) = stages.iter_mut().find(|s| s.stage.id == stage) {
                    s.sum.add(n, value, weighted);
                }
            }
            None => outside.add(n, value, weighted),
        }
    }

    let mut won = Sql::new(backend);
    won.push("SELECT ")
        .floor_begin()
        .push("(")
        .epoch("w.closed_at")
        .push(" + ")
        .bind(offset)
        .push(") / 86400.0")
        .floor_end()
        .push(" AS day, COUNT(*) AS n, SUM(COALESCE(w.deal_value, 0.0)) AS value FROM ")
        .subquery(
            counted
                .select(scope, [lead::Column::ClosedAt, lead::Column::DealValue])
                .filter(lead::Column::Status.eq(LeadStatus::Won))
                .filter(lead::Column::ClosedAt.gte(window.from))
                .filter(lead::Column::ClosedAt.lt(window.to)),
        )
        .push(" w GROUP BY day");
    for row in won.all(scope.conn()).await? {
        let Some(day) = row.try_get::<Option<i64>>("", "day")? else {
            continue;
        };
        if let Some(m) = months.iter_mut().find(|m| m.month == month_of(day_of(day))) {
            m.won_leads += count(row.try_get("", "n")?);
            m.won_value += row.try_get::<Option<f64>>("", "value")?.unwrap_or(0.0);
        }
    }
    Ok(Forecast {
        months,
        stages,
        outside,
        undated,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_week_from_monday_has_five_working_days() {
        let from = Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap();
        let window = Window::new(from, from + Duration::days(7)).unwrap();
        assert_eq!(window.working_days("UTC"), 5);
        // Midnight Monday in Shanghai is Sunday afternoon in UTC.
        let shanghai = Utc.with_ymd_and_hms(2026, 11, 29, 16, 0, 0).unwrap();
        let window = Window::new(shanghai, shanghai + Duration::days(7)).unwrap();
        assert_eq!(window.working_days("Asia/Shanghai"), 5);
        // Friday evening in UTC is Saturday morning in Shanghai.
        let friday = Utc.with_ymd_and_hms(2026, 12, 4, 20, 0, 0).unwrap();
        let window = Window::new(friday, friday + Duration::hours(14)).unwrap();
        assert_eq!(window.working_days("UTC"), 1);
        assert_eq!(window.working_days("Asia/Shanghai"), 0);
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn a_window_must_run_forward() {
        let at = Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap();
        assert!(Window::new(at, at).is_err());
        assert!(Window::new(at, at + Duration::days(MAX_WINDOW_DAYS + 1)).is_err());
    }
}
