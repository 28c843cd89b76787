//! The manager's weekly review: rep scorecards, value per tier and tier
//! movements, over the leads the caller may see.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, NaiveTime, Utc};

use crate::graphql::id_at;
use crate::graphql::{
    RequestContext,
    configuration::scoring_models::TierCount,
    cost,
    types::{Stage, User},
};
use crate::{
    auth::Principal,
    error::IntoGraphql,
    service::analytics::review::{self, Window},
    tenancy::{TenantScope, Walled},
};

/// The period a review covers and whose leads it counts.
#[derive(InputObject)]
pub struct ReviewInput {
    /// Start of the period, inclusive.
    pub from: DateTime<Utc>,
    /// End of the period, exclusive; at most ten years after `from`.
    pub to: DateTime<Utc>,
    /// One team's leads (led by the team or owned by its members); all
    /// the caller may see when absent. A MANAGER may name only their own
    /// teams.
    pub team_id: Option<ID>,
}

fn int(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// a / b, null when b is 0.
fn share(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// Leads of one tier won and lost in the period.
#[derive(SimpleObject)]
pub struct TierOutcome {
    pub tier: String,
    pub won: i32,
    pub lost: i32,
    /// won / (won + lost); null when none closed.
    pub won_rate: Option<f64>,
}

impl From<review::TierOutcome> for TierOutcome {
    fn from(t: review::TierOutcome) -> Self {
        Self {
            won_rate: share(t.won as f64, (t.won + t.lost) as f64),
            tier: t.tier,
            won: int(t.won),
            lost: int(t.lost),
        }
    }
}

/// How one rep is doing: their open leads now and their work and results
/// in the period.
#[derive(SimpleObject)]
pub struct RepScorecard {
    pub rep: User,
    /// Open leads owned now.
    pub open_leads: i32,
    /// Open leads now per tier, every tier of the model, top first.
    pub open_by_tier: Vec<TierCount>,
    /// Open leads whose follow-up time has passed.
    pub overdue_leads: i32,
    /// overdueLeads / openLeads; null without open leads.
    pub overdue_share: Option<f64>,
    /// Leads assigned to the rep in the period: given, claimed from the
    /// pool, or created with the rep as owner.
    pub assigned_leads: i32,
    /// Of those, the leads the rep has contacted since (an outbound
    /// activity after the assignment).
    pub contacted_leads: i32,
    /// Median hours from assignment to first outbound contact over the
    /// contacted leads; null when none.
    pub median_hours_to_first_contact: Option<f64>,
    /// Outbound activities in the period: recorded by the rep, or by an
    /// integration on a lead the rep owns.
    pub outbound_activities: i32,
    /// Monday to Friday dates the period touches, in the company's time
    /// zone.
    pub working_days: i32,
    /// outboundActivities / workingDays.
    pub outbound_per_working_day: f64,
    /// Leads closed in the period.
    pub won: i32,
    pub lost: i32,
    /// won / (won + lost); null when none closed.
    pub won_rate: Option<f64>,
    /// Won and lost per tier (the tier the lead held when it closed).
    pub closed_by_tier: Vec<TierOutcome>,
    /// Summed deal value of the leads won in the period.
    pub won_value: f64,
    /// Median days from creation to close, won or lost, of the leads
    /// closed in the period; null when none.
    pub median_days_to_close: Option<f64>,
}

/// What one tier holds now and brought in over the period.
#[derive(SimpleObject)]
pub struct TierValue {
    pub tier: String,
    /// Open leads in the tier now.
    pub open_leads: i32,
    /// Their summed deal value (leads without one count 0).
    pub open_value: f64,
    /// Leads closed in the period, by the tier they held when they closed.
    pub won: i32,
    pub lost: i32,
    /// won / (won + lost); null when none closed.
    pub won_rate: Option<f64>,
    /// Deal value won in the period.
    pub won_value: f64,
    /// This tier's share of all leads won in the period; null when none.
    pub won_share: Option<f64>,
    /// This tier's share of all value won in the period ("tier A is 10%
    /// of customers and 60% of revenue"); null when nothing was won.
    pub won_value_share: Option<f64>,
}

/// Value per tier over a period.
#[derive(SimpleObject)]
pub struct TierReport {
    /// Every tier of the model, top first, then tiers of older models that
    /// leads still hold.
    pub tiers: Vec<TierValue>,
    pub open_leads: i32,
    pub open_value: f64,
    pub won: i32,
    pub lost: i32,
    pub won_value: f64,
}

/// Leads in one tier at the period's start and another at its end.
#[derive(SimpleObject)]
pub struct TierMovement {
    /// Null for leads created within the period.
    pub from_tier: Option<String>,
    pub to_tier: String,
    pub leads: i32,
}

/// Of the leads in a lower tier at the period's start, those that reached
/// a higher tier (or above) at any time within it, and of those, the ones
/// won by its end.
#[derive(SimpleObject)]
pub struct TierClimb {
    pub from_tier: String,
    pub to_tier: String,
    /// Leads in fromTier at the start.
    pub leads: i32,
    pub reached: i32,
    pub won: i32,
}

/// How leads moved between tiers over a period, from their score history.
/// Leads closed before the period are left out.
#[derive(SimpleObject)]
pub struct TierMovements {
    /// The tiers, top first.
    pub tiers: Vec<String>,
    /// The matrix: every (fromTier, toTier) pair that has leads.
    pub cells: Vec<TierMovement>,
    /// For every pair of a lower and a higher tier of the model: how many
    /// climbed, and won ("of the B leads, how many reached A, and won").
    pub climbs: Vec<TierClimb>,
}

/// The months a forecast covers and whose deals it counts.
#[derive(InputObject)]
pub struct ForecastInput {
    /// Start of the period, inclusive: its month is the first listed.
    pub from: DateTime<Utc>,
    /// End of the period, exclusive; at most ten years after `from`.
    pub to: DateTime<Utc>,
    /// One team's deals (led by the team or owned by its members); a
    /// MANAGER may name only their own teams.
    pub team_id: Option<ID>,
    /// One rep's deals; a MANAGER may name only their teams' members.
    pub owner_id: Option<ID>,
}

/// Open deal value: unweighted, and weighted by each deal's close
/// probability (deals without a value count 0).
#[derive(SimpleObject)]
pub struct DealSum {
    pub open_leads: i32,
    pub unweighted_value: f64,
    pub weighted_value: f64,
}

impl From<review::Sum> for DealSum {
    fn from(s: review::Sum) -> Self {
        Self {
            open_leads: int(s.open_leads),
            unweighted_value: s.unweighted,
            weighted_value: s.weighted,
        }
    }
}

/// One month: the open deal value expected to close in it, and what was
/// won in it, to hold forecast and actuals side by side.
#[derive(SimpleObject)]
pub struct ForecastMonth {
    /// `2026-12`.
    pub month: String,
    /// The month's first moment in the company's time zone.
    pub starts_at: DateTime<Utc>,
    /// Open deals expected to close in the month (deals whose date has
    /// passed count in the current month).
    pub expected: DealSum,
    /// Deals won in the month, within the period.
    pub won_leads: i32,
    pub won_value: f64,
}

/// Open deal value of one stage expected to close within the period.
#[derive(SimpleObject)]
pub struct ForecastStage {
    pub stage: Stage,
    pub expected: DealSum,
    /// Median days from entering the stage to a win, learned from the
    /// deals won in the last two years; the forecast dates the stage's
    /// deals without an expected close by it. Null until a deal that
    /// passed through the stage is won.
    pub typical_days_to_close: Option<f64>,
}

/// Open deal value weighted by close probability by the month it is
/// expected to close and by stage, with the value won per month beside it.
#[derive(SimpleObject)]
pub struct Forecast {
    /// Every month of the period, in order.
    pub months: Vec<ForecastMonth>,
    /// Every open stage of every pipeline, in order.
    pub stages: Vec<ForecastStage>,
    /// All deals expected within the period.
    pub expected: DealSum,
    /// Deals expected to close after the period (or before it, for a
    /// period that starts later than this month).
    pub outside_period: DealSum,
    /// Deals with no expected close date in a stage with no typical time
    /// to close yet.
    pub undated: DealSum,
}

#[derive(Default)]
pub struct ReviewQuery;

/// What every report starts from: the caller, their scope, the checked
/// window and the leads they may count, narrowed to a team or rep.
struct Review<'a> {
    principal: Principal,
    scope: TenantScope<'a, Walled>,
    window: Window,
    counted: review::Counted,
}

impl<'a> Review<'a> {
    async fn start(
        ctx: &Context<'a>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        team: Option<&ID>,
        owner: Option<&ID>,
    ) -> Result<Self> {
        let (principal, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        let window = Window::new(from, to).gql_at("input")?;
        let counted = review::counted(
            &scope,
            &principal,
            team.map(|t| id_at("input.teamId", t)).transpose()?,
            owner.map(|o| id_at("input.ownerId", o)).transpose()?,
        )
        .await
        .gql_at("input")?;
        Ok(Self {
            principal,
            scope,
            window,
            counted,
        })
    }
}

#[Object]
impl ReviewQuery {
    /// A scorecard per rep the caller may see (a REP themselves, a MANAGER
    /// their teams' members, OWNER and ADMIN everyone), by name.
    #[graphql(complexity = "cost::ANALYTICS + child_complexity")]
    async fn rep_scorecards(
        &self,
        ctx: &Context<'_>,
        input: ReviewInput,
    ) -> Result<Vec<RepScorecard>> {
        let Review {
            principal,
            scope,
            window,
            counted,
        } = Review::start(ctx, input.from, input.to, input.team_id.as_ref(), None).await?;
        let working_days = window.working_days(&counted.config.tenant.time_zone);
        let cards = review::scorecards(&scope, &principal, &counted, window, Utc::now())
            .await
            .gql_at("input")?;
        Ok(cards
            .into_iter()
            .map(|c| {
                let (open, won, lost) = (c.open_leads(), c.won(), c.lost());
                RepScorecard {
                    open_leads: int(open),
                    overdue_leads: int(c.overdue),
                    overdue_share: share(c.overdue as f64, open as f64),
                    assigned_leads: int(c.assigned),
                    contacted_leads: int(c.contacted),
                    median_hours_to_first_contact: c.median_hours_to_first_contact,
                    outbound_activities: int(c.outbound_activities),
                    working_days: i32::try_from(working_days).unwrap_or(i32::MAX),
                    outbound_per_working_day: c.outbound_activities as f64
                        / f64::from(working_days.max(1)),
                    won: int(won),
                    lost: int(lost),
                    won_rate: share(won as f64, (won + lost) as f64),
                    won_value: c.won_value,
                    median_days_to_close: c.median_days_to_close,
                    open_by_tier: c
                        .open_by_tier
                        .into_iter()
                        .map(|(tier, n)| TierCount {
                            tier,
                            count: int(n),
                        })
                        .collect(),
                    closed_by_tier: c.closed_by_tier.into_iter().map(Into::into).collect(),
                    rep: c.rep.into(),
                }
            })
            .collect())
    }

    /// Per tier: open leads and deal value now, leads won and lost in the
    /// period, won rate, won value and each tier's share of what was won.
    #[graphql(complexity = "cost::ANALYTICS + child_complexity")]
    async fn tier_report(&self, ctx: &Context<'_>, input: ReviewInput) -> Result<TierReport> {
        let Review {
            principal: _,
            scope,
            window,
            counted,
        } = Review::start(ctx, input.from, input.to, input.team_id.as_ref(), None).await?;
        let rows = review::tier_report(&scope, &counted, window)
            .await
            .gql_at("input")?;
        let won: u64 = rows.iter().map(|r| r.won).sum();
        let won_value: f64 = rows.iter().map(|r| r.won_value).sum();
        Ok(TierReport {
            open_leads: int(rows.iter().map(|r| r.open_leads).sum()),
            open_value: rows.iter().map(|r| r.open_value).sum(),
            won: int(won),
            lost: int(rows.iter().map(|r| r.lost).sum()),
            won_value,
            tiers: rows
                .into_iter()
                .map(|r| TierValue {
                    won_rate: share(r.won as f64, (r.won + r.lost) as f64),
                    won_share: share(r.won as f64, won as f64),
                    won_value_share: share(r.won_value, won_value),
                    tier: r.tier,
                    open_leads: int(r.open_leads),
                    open_value: r.open_value,
                    won: int(r.won),
                    lost: int(r.lost),
                    won_value: r.won_value,
                })
                .collect(),
        })
    }

    /// Open deal value weighted by close probability, by expected close
    /// month (the lead's `expectedCloseAt`, else its stage's typical time
    /// to a win) and by stage, with the unweighted value and each month's
    /// won value beside it.
    #[graphql(complexity = "cost::ANALYTICS + child_complexity")]
    async fn forecast(&self, ctx: &Context<'_>, input: ForecastInput) -> Result<Forecast> {
        let Review {
            principal: _,
            scope,
            window,
            counted,
        } = Review::start(
            ctx,
            input.from,
            input.to,
            input.team_id.as_ref(),
            input.owner_id.as_ref(),
        )
        .await?;
        let zone: chrono_tz::Tz = counted
            .config
            .tenant
            .time_zone
            .parse()
            .unwrap_or(chrono_tz::UTC);
        let f = review::forecast(&scope, &counted, window, Utc::now())
            .await
            .gql_at("input")?;
        let mut expected = review::Sum::default();
        for m in &f.months {
            expected.open_leads += m.open_leads;
            expected.unweighted += m.unweighted;
            expected.weighted += m.weighted;
        }
        Ok(Forecast {
            months: f
                .months
                .into_iter()
                .map(|m| ForecastMonth {
                    month: m.month.format("%Y-%m").to_string(),
                    starts_at: m
                        .month
                        .and_time(NaiveTime::MIN)
                        .and_local_timezone(zone)
                        .earliest()
                        .map_or(window.from, |at| at.with_timezone(&Utc)),
                    expected: review::Sum {
                        open_leads: m.open_leads,
                        unweighted: m.unweighted,
                        weighted: m.weighted,
                    }
                    .into(),
                    won_leads: int(m.won_leads),
                    won_value: m.won_value,
                })
                .collect(),
            stages: f
                .stages
                .into_iter()
                .map(|s| ForecastStage {
                    stage: s.stage.into(),
                    expected: s.sum.into(),
                    typical_days_to_close: s.typical_days,
                })
                .collect(),
            expected: expected.into(),
            outside_period: f.outside.into(),
            undated: f.undated.into(),
        })
    }

    /// The matrix of leads by tier at the period's start against their
    /// tier at its end, and how many lower-tier leads climbed and won.
    #[graphql(complexity = "cost::ANALYTICS + child_complexity")]
    async fn tier_movements(&self, ctx: &Context<'_>, input: ReviewInput) -> Result<TierMovements> {
        let Review {
            principal: _,
            scope,
            window,
            counted,
        } = Review::start(ctx, input.from, input.to, input.team_id.as_ref(), None).await?;
        let m = review::tier_movements(&scope, &counted, window, Utc::now())
            .await
            .gql_at("input")?;
        Ok(TierMovements {
            tiers: m.tiers,
            cells: m
                .cells
                .into_iter()
                .map(|c| TierMovement {
                    from_tier: c.from_tier,
                    to_tier: c.to_tier,
                    leads: int(c.leads),
                })
                .collect(),
            climbs: m
                .climbs
                .into_iter()
                .map(|c| TierClimb {
                    from_tier: c.from_tier,
                    to_tier: c.to_tier,
                    leads: int(c.leads),
                    reached: int(c.reached),
                    won: int(c.won),
                })
                .collect(),
        })
    }
}
