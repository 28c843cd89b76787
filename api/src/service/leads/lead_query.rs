//! Reading leads: filtered, ordered pages with keyset cursors, counts, and
//! the follow-up queue. Every query starts from the tenant scope and the
//! caller's visibility.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use entity::{LeadId, StageId, TeamId, UserId};
use entity::{
    enums::{LeadStatus, Role},
    lead, lead_score, team_member,
};
use scoring::{LeadFlag, tiers::Urgency};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, ExprTrait, FromQueryResult, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select,
    sea_query::{Asterisk, Expr, Func, LikeExpr, Query, UnionType},
};
use serde::{Deserialize, Serialize};

use crate::service::{
    configuration::tenant_config::teams_of,
    leads::lead_writer::{BUCKET_CLOSED, BUCKET_NOT_DUE, BUCKET_URGENT},
    leads::{follow_up, visibility::LeadVisibility},
};
use crate::{
    auth::Principal,
    error::{AppError, AppResult},
    tenancy::TenantScope,
};

/// Largest page of `leads`.
pub const MAX_PAGE: u64 = 200;
/// Largest `followUpQueue`.
pub const MAX_QUEUE: u64 = 200;

/// The fields of `LeadFilter`; each list matches any of its values, and
/// the filters combine with AND.
#[derive(Default, Debug, Serialize, Deserialize)]
pub struct LeadFilter {
    pub tiers: Option<Vec<String>>,
    pub stage_keys: Option<Vec<String>>,
    pub owner_id: Option<UserId>,
    pub team_id: Option<TeamId>,
    pub status: Option<Vec<LeadStatus>>,
    pub flags: Option<Vec<LeadFlag>>,
    pub text: Option<String>,
    pub unassigned: Option<bool>,
}

/// The orders of `LeadOrder`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeadOrder {
    /// Queue priority, highest first.
    Priority,
    /// Score, highest first.
    Score,
    /// Next follow-up, soonest first.
    NextFollowUp,
    /// Last change, newest first.
    Updated,
}

/// Where a page ended: the order it was taken in, the last lead's sort
/// value and id. Carrying the value (not a position) keeps the next page
/// right when leads are re-scored, added or closed in between: a lead that
/// does not move is returned exactly once.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Cursor {
    #[serde(rename = "o")]
    order: LeadOrder,
    #[serde(rename = "v")]
    value: SortValue,
    #[serde(rename = "i")]
    id: LeadId,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(untagged)]
enum SortValue {
    Int(i64),
    Float(f64),
    Time(Option<DateTime<Utc>>),
}

impl Cursor {
    fn of(order: LeadOrder, lead: &lead::Model) -> Self {
        let value = match order {
            LeadOrder::Priority => SortValue::Int(lead.priority),
            LeadOrder::Score => SortValue::Float(lead.score),
            LeadOrder::NextFollowUp => SortValue::Time(lead.next_follow_up_at),
            LeadOrder::Updated => SortValue::Time(Some(lead.updated_at)),
        };
        Self {
            order,
            value,
            id: lead.id,
        }
    }

    /// As [`Cursor::of`], from what scoring keeps of the lead; `Updated`
    /// is not kept there (see [`page_of_scores`]).
    fn of_scores(order: LeadOrder, score: &lead_score::Model) -> Self {
        let value = match order {
            LeadOrder::Priority => SortValue::Int(score.priority),
            LeadOrder::Score => SortValue::Float(score.score),
            LeadOrder::NextFollowUp | LeadOrder::Updated => {
                SortValue::Time(score.next_follow_up_at)
            }
        };
        Self {
            order,
            value,
            id: score.lead_id,
        }
    }

    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(raw: &str, order: LeadOrder) -> AppResult<Self> {
        let cursor: Self = URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| AppError::invalid("after", "is not a cursor returned by this query"))?;
        if cursor.order != order {
            return Err(AppError::invalid(
                "after",
                "belongs to a different orderBy; start again without `after`",
            ));
        }
        Ok(cursor)
    }

    /// Rows strictly after this cursor in `order`.
    fn after(&self) -> AppResult<Condition> {
        let id = lead::Column::Id;
        let descending = |col: lead::Column, value: sea_orm::Value| {
            Condition::any()
                .add(col.lt(value.clone()))
                .add(Condition::all().add(col.eq(value)).add(id.lt(self.id)))
        };
        Ok(match (&self.order, &self.value) {
            (LeadOrder::Priority, SortValue::Int(v)) => {
                descending(lead::Column::Priority, (*v).into())
            }
            (LeadOrder::Score, SortValue::Float(v)) => descending(lead::Column::Score, (*v).into()),
            (LeadOrder::Score, SortValue::Int(v)) => {
                descending(lead::Column::Score, (*v as f64).into())
            }
            (LeadOrder::Updated, SortValue::Time(Some(v))) => {
                descending(lead::Column::UpdatedAt, (*v).into())
            }
            (LeadOrder::NextFollowUp, SortValue::Time(Some(v))) => {
                // Ascending, leads without a follow-up date last.
                let col = lead::Column::NextFollowUpAt;
                Condition::any()
                    .add(col.gt(*v))
                    .add(col.is_null())
                    .add(Condition::all().add(col.eq(*v)).add(id.gt(self.id)))
            }
            (LeadOrder::NextFollowUp, SortValue::Time(None)) => Condition::all()
                .add(lead::Column::NextFollowUpAt.is_null())
                .add(id.gt(self.id)),
            _ => {
                return Err(AppError::invalid(
                    "after",
                    "is not a cursor returned by this query",
                ));
            }
        })
    }
}

/// One page of leads: whole rows, or what scoring keeps of each
/// ([`page_of_scores`]).
pub struct LeadPage<R = lead::Model> {
    /// The leads with their cursors, in order.
    pub edges: Vec<(String, R)>,
    /// Whether more follow.
    pub has_next_page: bool,
}

/// The visible leads matching `filter`, before ordering.
pub(crate) async fn filtered<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    filter: &LeadFilter,
    now: DateTime<Utc>,
) -> AppResult<Select<lead::Entity>> {
    let mut query = scope
        .select::<lead::Entity>()
        .filter(LeadVisibility::load(scope, principal).await?.condition());
    if let Some(tiers) = &filter.tiers {
        query = query.filter(lead::Column::Tier.is_in(tiers.iter().cloned()));
    }
    if let Some(keys) = &filter.stage_keys {
        // Stage keys repeat across pipelines: match all stages with the key.
        let config = crate::service::configuration::tenant_config::get(scope).await?;
        let stages: Vec<StageId> = config
            .pipelines()
            .iter()
            .flat_map(|p| p.1.iter())
            .filter(|s| keys.contains(&s.key))
            .map(|s| s.id)
            .collect();
        query = query.filter(lead::Column::StageId.is_in(stages));
    }
    if let Some(owner) = filter.owner_id {
        query = query.filter(lead::Column::OwnerId.eq(owner));
    }
    if let Some(team) = filter.team_id {
        query = query.filter(lead::Column::TeamId.eq(team));
    }
    if let Some(status) = &filter.status {
        query = query.filter(lead::Column::Status.is_in(status.iter().copied()));
    }
    if let Some(flags) = &filter.flags {
        // OVERDUE is judged at `now`, as the queue does; the others are as
        // the lead was last scored.
        let mask = flags
            .iter()
            .filter(|f| **f != LeadFlag::Overdue)
            .fold(0i32, |m, f| m | i32::from(f.bit()));
        let mut any = Condition::any();
        if mask != 0 {
            any = any.add(Expr::col(lead::Column::Flags).bit_and(mask).ne(0));
        }
        if flags.contains(&LeadFlag::Overdue) {
            any = any.add(follow_up::overdue_condition(now));
        }
        query = query.filter(any);
    }
    if let Some(text) = filter
        .text
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let pattern = format!("%{}%", escape_like(&text.to_lowercase()));
        let like = |col: lead::Column| {
            Expr::expr(Func::lower(Expr::col(col)))
                .like(LikeExpr::new(pattern.clone()).escape('\\'))
        };
        query = query.filter(
            Condition::any()
                .add(like(lead::Column::Name))
                .add(like(lead::Column::Company))
                .add(like(lead::Column::Email))
                .add(like(lead::Column::Phone)),
        );
    }
    match filter.unassigned {
        Some(true) => query = query.filter(lead::Column::OwnerId.is_null()),
        Some(false) => query = query.filter(lead::Column::OwnerId.is_not_null()),
        None => {}
    }
    Ok(query)
}

fn escape_like(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}

/// A page of the visible leads matching `filter`, in `order`, after the
/// cursor `after`.
///
/// # Errors
/// BAD_USER_INPUT for `first` out of range or a foreign cursor.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %principal.tenant_id, first = first))]
pub async fn page<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    filter: &LeadFilter,
    order: LeadOrder,
    first: i32,
    after: Option<&str>,
    now: DateTime<Utc>,
) -> AppResult<LeadPage> {
    let (query, first) = ordered(scope, principal, filter, order, first, after, now).await?;
    let rows = query.limit(first + 1).all(scope.conn()).await?;
    Ok(paged(rows, first, |lead| Cursor::of(order, lead)))
}

/// [`page`] reading only what scoring keeps of each lead (its score, tier,
/// flags, owner, follow-up), for a list that shows no more: a whole row
/// is mostly its JSON facts, which the database would otherwise read and
/// send for nothing. Not for `LeadOrder::Updated`, whose cursor needs the
/// lead's last change.
///
/// # Errors
/// As [`page`].
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %principal.tenant_id, first = first))]
pub async fn page_of_scores<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    filter: &LeadFilter,
    order: LeadOrder,
    first: i32,
    after: Option<&str>,
    now: DateTime<Utc>,
) -> AppResult<LeadPage<lead_score::Model>> {
    if order == LeadOrder::Updated {
        return Err(AppError::Internal(anyhow::anyhow!(
            "a page of scores has no last-change cursor; read whole leads"
        )));
    }
    let (query, first) = ordered(scope, principal, filter, order, first, after, now).await?;
    let rows = query
        .select_only()
        .column_as(lead::Column::Id, "lead_id")
        .columns([
            lead::Column::TenantId,
            lead::Column::Version,
            lead::Column::OwnerId,
            lead::Column::TeamId,
            lead::Column::Status,
            lead::Column::Bucket,
            lead::Column::Score,
            lead::Column::Tier,
            lead::Column::TierRank,
            lead::Column::Priority,
            lead::Column::Flags,
            lead::Column::CloseProbability,
            lead::Column::ScoringModelId,
            lead::Column::ModelVersion,
            lead::Column::NextFollowUpAt,
            lead::Column::ScoredAt,
            lead::Column::TierRoseAt,
            lead::Column::LastActivityAt,
            lead::Column::LastInboundAt,
            lead::Column::LastOutboundAt,
            lead::Column::SignalState,
            lead::Column::UpdatedAt,
        ])
        .limit(first + 1)
        .into_model::<lead_score::Model>()
        .all(scope.conn())
        .await?;
    Ok(paged(rows, first, |row| Cursor::of_scores(order, row)))
}

/// The visible leads matching `filter` after the cursor, in `order`, and
/// the page size checked.
async fn ordered<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    filter: &LeadFilter,
    order: LeadOrder,
    first: i32,
    after: Option<&str>,
    now: DateTime<Utc>,
) -> AppResult<(Select<lead::Entity>, u64)> {
    let first = u64::try_from(first)
        .ok()
        .filter(|f| *f <= MAX_PAGE)
        .ok_or_else(|| AppError::invalid("first", format!("must be from 0 to {MAX_PAGE}")))?;
    let mut query = filtered(scope, principal, filter, now).await?;
    if let Some(raw) = after {
        query = query.filter(Cursor::decode(raw, order)?.after()?);
    }
    query = match order {
        LeadOrder::Priority => query
            .order_by_desc(lead::Column::Priority)
            .order_by_desc(lead::Column::Id),
        LeadOrder::Score => query
            .order_by_desc(lead::Column::Score)
            .order_by_desc(lead::Column::Id),
        LeadOrder::Updated => query
            .order_by_desc(lead::Column::UpdatedAt)
            .order_by_desc(lead::Column::Id),
        LeadOrder::NextFollowUp => query
            // NULLs last on both databases.
            .order_by(lead::Column::NextFollowUpAt.is_null(), Order::Asc)
            .order_by_asc(lead::Column::NextFollowUpAt)
            .order_by_asc(lead::Column::Id),
    };
    Ok((query, first))
}

/// The first `first` of `rows` (read one more, to tell whether more
/// follow) with their cursors.
fn paged<R>(mut rows: Vec<R>, first: u64, cursor: impl Fn(&R) -> Cursor) -> LeadPage<R> {
    let has_next_page = rows.len() as u64 > first;
    rows.truncate(usize::try_from(first).unwrap_or(usize::MAX));
    LeadPage {
        edges: rows
            .into_iter()
            .map(|row| (cursor(&row).encode(), row))
            .collect(),
        has_next_page,
    }
}

/// How many visible leads match `filter`.
///
/// # Errors
/// Database errors.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %principal.tenant_id))]
pub async fn count<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    filter: &LeadFilter,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    Ok(filtered(scope, principal, filter, now)
        .await?
        .count(scope.conn())
        .await?)
}

/// Whose queue the caller may read: their own; a MANAGER also their teams'
/// members'; ADMIN and OWNER anyone's in the tenant.
///
/// # Errors
/// FORBIDDEN; NOT_FOUND for a user outside the tenant.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %principal.tenant_id, owner_id = ?owner))]
pub async fn queue_owner<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    owner: Option<UserId>,
) -> AppResult<UserId> {
    let Some(owner) = owner.filter(|o| *o != principal.user_id) else {
        return Ok(principal.user_id);
    };
    scope.get::<entity::user::Entity>(owner).await?;
    match principal.role {
        Role::Owner | Role::Admin => Ok(owner),
        Role::Rep => Err(AppError::Forbidden {
            action: "read another rep's queue",
        }),
        Role::Manager => {
            let mine = teams_of(scope, principal.user_id).await?;
            let shared = scope
                .select::<team_member::Entity>()
                .filter(team_member::Column::UserId.eq(owner))
                .filter(team_member::Column::TeamId.is_in(mine))
                .count(scope.conn())
                .await?;
            if shared > 0 {
                Ok(owner)
            } else {
                Err(AppError::Forbidden {
                    action: "read the queue of someone outside your teams",
                })
            }
        }
    }
}

/// A queued lead: what scoring keeps of it, and how pressing it is now.
pub struct Queued {
    pub score: lead_score::Model,
    pub urgency: Urgency,
    /// Larger comes first: the queue's order as one number (see
    /// [`scoring::tiers::priority`]).
    pub priority: i64,
    /// Whole days past due; 0 when not overdue.
    pub overdue_days: i64,
}

impl Queued {
    /// `score` queued at `now`, judged against the end of the tenant's day.
    fn at(score: lead_score::Model, now: DateTime<Utc>, end_of_today: DateTime<Utc>) -> Self {
        let urgency = urgency(&score, now, end_of_today);
        // A rank past u8 sorts below every real tier.
        let rank = u8::try_from(score.tier_rank).unwrap_or(u8::MAX);
        Self {
            priority: scoring::tiers::priority(urgency, rank, score.score),
            overdue_days: follow_up::overdue_days(score.status, score.next_follow_up_at, now),
            urgency,
            score,
        }
    }
}

/// How pressing a lead is at `now`: urgent when it was scored with an
/// urgent signal inside its window, else overdue when its follow-up time
/// has passed, due today when it falls before `end_of_today`, or not due.
#[must_use]
pub fn urgency(
    score: &lead_score::Model,
    now: DateTime<Utc>,
    end_of_today: DateTime<Utc>,
) -> Urgency {
    let due = score.next_follow_up_at;
    if score.status != LeadStatus::Open {
        Urgency::NotDue
    } else if score.bucket == BUCKET_URGENT {
        Urgency::Urgent
    } else if follow_up::overdue(score.status, due, now) {
        Urgency::Overdue
    } else if due.is_some_and(|at| at < end_of_today) {
        Urgency::DueToday
    } else {
        Urgency::NotDue
    }
}

/// The first moment of tomorrow in the tenant's time zone.
#[must_use]
pub fn end_of_today(now: DateTime<Utc>, time_zone: &str) -> DateTime<Utc> {
    let zone: chrono_tz::Tz = time_zone.parse().unwrap_or(chrono_tz::UTC);
    let today = now.with_timezone(&zone).date_naive();
    today
        .succ_opt()
        .and_then(|tomorrow| tomorrow.and_hms_opt(0, 0, 0))
        .and_then(|midnight| midnight.and_local_timezone(zone).earliest())
        .map_or(now + chrono::Duration::days(1), |at| at.with_timezone(&Utc))
}

/// What scoring keeps of `owner`'s open leads, in follow-up order: leads
/// with an urgent signal inside its window first, then overdue, then due
/// later today (in the tenant's time zone), then by tier (top first), then
/// by score. Due is judged at `now`, not when the lead was last scored, so
/// a follow-up that fell due since comes up at once.
///
/// The order is read from the queue index alone: leads in the index's
/// urgent and due buckets (as scored) come first, and the few not due when
/// scored that fall due by the end of today are found in the index by
/// their follow-up date and merged in.
///
/// # Errors
/// BAD_USER_INPUT for `limit` out of range.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %scope.tenant_id(), owner_id = %owner, limit = limit))]
pub async fn follow_up_queue<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    owner: UserId,
    limit: i32,
    now: DateTime<Utc>,
) -> AppResult<Vec<Queued>> {
    let limit = u64::try_from(limit)
        .ok()
        .filter(|l| *l <= MAX_QUEUE)
        .ok_or_else(|| AppError::invalid("limit", format!("must be from 0 to {MAX_QUEUE}")))?;
    if limit == 0 {
        return Ok(Vec::new());
    }
    let config = crate::service::configuration::tenant_config::get(scope).await?;
    let end_of_today = end_of_today(now, &config.tenant.time_zone);
    // One statement, one round trip: the top of the index range, without
    // the leads due by the end of today that were not due when scored, and
    // those leads. Both halves start from the scope.
    let due_today = || {
        Condition::all()
            .add(lead_score::Column::Bucket.eq(BUCKET_NOT_DUE))
            .add(lead_score::Column::NextFollowUpAt.lt(end_of_today))
    };
    let top = scope
        .select::<lead_score::Entity>()
        .filter(lead_score::Column::OwnerId.eq(owner))
        .filter(lead_score::Column::Bucket.lt(BUCKET_CLOSED))
        .filter(
            // Spelled out rather than NOT(due today): a lead without a
            // follow-up date would make that NULL and drop out of both halves.
            Condition::any()
                .add(lead_score::Column::Bucket.ne(BUCKET_NOT_DUE))
                .add(lead_score::Column::NextFollowUpAt.is_null())
                .add(lead_score::Column::NextFollowUpAt.gte(end_of_today)),
        )
        .order_by_asc(lead_score::Column::Bucket)
        .order_by_asc(lead_score::Column::TierRank)
        .order_by_desc(lead_score::Column::Score)
        .order_by_asc(lead_score::Column::LeadId)
        .limit(limit)
        .into_query();
    let today = scope
        .select::<lead_score::Entity>()
        .filter(lead_score::Column::OwnerId.eq(owner))
        .filter(due_today())
        .into_query();
    let query = Query::select()
        .column(Asterisk)
        .from_subquery(top, "top")
        .union(UnionType::All, today)
        .to_owned();
    let backend = scope.conn().get_database_backend();
    let rows = lead_score::Model::find_by_statement(backend.build(&query))
        .all(scope.conn())
        .await?;
    let mut queued: Vec<Queued> = rows
        .into_iter()
        .map(|score| Queued::at(score, now, end_of_today))
        .collect();
    queued.sort_by(|a, b| {
        b.urgency
            .cmp(&a.urgency)
            .then(a.score.tier_rank.cmp(&b.score.tier_rank))
            .then(b.score.score.total_cmp(&a.score.score))
            .then(a.score.lead_id.cmp(&b.score.lead_id))
    });
    queued.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(queued)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_another_order() {
        let cursor = Cursor {
            order: LeadOrder::Score,
            value: SortValue::Float(81.25),
            id: LeadId::new(),
        };
        let raw = cursor.encode();
        assert_eq!(Cursor::decode(&raw, LeadOrder::Score).unwrap(), cursor);
        assert!(Cursor::decode(&raw, LeadOrder::Priority).is_err());
        assert!(Cursor::decode("not-a-cursor", LeadOrder::Score).is_err());
    }

    #[test]
    fn like_wildcards_in_search_text_are_literal() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
    }
}
