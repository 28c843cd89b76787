//! GraphQL object types shared by the resolvers, mapped from entities.

use async_graphql::{ComplexObject, Context, Enum, ID, Json, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{lead_field, pipeline, scoring_model, signal_type, stage, team, tenant, user};
use serde::Deserialize;
use serde_json::Value;

use super::{Loaders, RequestContext};
use crate::{
    error::{AppError, IntoGraphql},
    service::accounts::account,
    tenancy::Walled,
};

/// What a user may do in their tenant.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::enums::Role")]
pub enum Role {
    Owner,
    Admin,
    Manager,
    Rep,
}

/// Whether a stage is open or closes the lead.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::enums::StageKind")]
pub enum StageKind {
    Open,
    Won,
    Lost,
}

/// Who started an interaction.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::enums::Direction")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// The type of a lead field.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::enums::FieldType")]
pub enum FieldType {
    Rating,
    Category,
    Number,
    Boolean,
    Text,
    /// A calendar date, `YYYY-MM-DD`: a tender, a contract renewal.
    Date,
}

/// A scoring model version's state.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::enums::ModelStatus")]
pub enum ModelStatus {
    Draft,
    Active,
    Retired,
}

/// What a scoring dimension measures.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[graphql(remote = "scoring::DimensionKind")]
pub enum DimensionKind {
    Rating,
    Bant,
    Engagement,
    Recency,
    Frequency,
    Monetary,
    Stage,
    Predicted,
    /// How quickly the lead answers our contacts.
    Responsiveness,
    /// How close a DATE field's date is.
    DateProximity,
}

/// A person who signs in.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct User {
    pub id: ID,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    /// An away rep gets no leads from the assignment rules.
    pub away: bool,
    /// False once deactivated: they can no longer sign in.
    pub active: bool,
    /// The most open leads the assignment rules give this user; null for
    /// no limit of their own.
    pub capacity: Option<i32>,
    #[graphql(skip)]
    pub uuid: entity::UserId,
    #[graphql(skip)]
    pub tenant_id: uuid::Uuid,
}

impl From<user::Model> for User {
    fn from(u: user::Model) -> Self {
        Self {
            id: ID(u.id.to_string()),
            email: u.email,
            display_name: u.display_name,
            role: u.role.into(),
            away: u.away,
            active: u.active,
            capacity: u.capacity,
            uuid: u.id,
            tenant_id: u.tenant_id,
        }
    }
}

#[ComplexObject]
impl User {
    /// The teams the user belongs to, by name.
    async fn teams(&self, ctx: &Context<'_>) -> Result<Vec<Team>> {
        // Sign-up, login and refresh answer before a token exists: without
        // request loaders, load directly within the user's own tenant.
        let teams = match ctx.data_opt::<Loaders>() {
            Some(loaders) => loaders
                .teams_of_user
                .load_one(self.uuid)
                .await
                .map_err(|e| e.extend_ref())?,
            None => {
                let db = &ctx.data::<RequestContext>()?.db;
                account::teams_of_users(&Walled::new(db, self.tenant_id).scope(), &[self.uuid])
                    .await
                    .gql()?
                    .remove(&self.uuid)
            }
        };
        Ok(teams
            .unwrap_or_default()
            .into_iter()
            .map(Team::from)
            .collect())
    }
}

/// A company using LeadRank.
#[derive(SimpleObject)]
pub struct Tenant {
    pub id: ID,
    pub name: String,
    pub slug: String,
    pub locale: String,
    pub time_zone: String,
    /// The local hour (0–23, in `timeZone`) of the nightly re-scoring.
    pub nightly_hour: i32,
    /// Whether a REP may pin the tier of a lead they own (`pinLeadTier`);
    /// OWNER, ADMIN and MANAGER always may. Changed with
    /// `updateTenantSettings`.
    pub reps_may_pin: bool,
}

impl From<tenant::Model> for Tenant {
    fn from(t: tenant::Model) -> Self {
        Self {
            id: ID(t.id.to_string()),
            name: t.name,
            slug: t.slug,
            locale: t.locale,
            time_zone: t.time_zone,
            nightly_hour: t.nightly_hour,
            reps_may_pin: t.reps_may_pin,
        }
    }
}

/// A sales team.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Team {
    pub id: ID,
    pub name: String,
    #[graphql(skip)]
    pub uuid: entity::TeamId,
    #[graphql(skip)]
    pub tenant_id: uuid::Uuid,
}

impl From<team::Model> for Team {
    fn from(t: team::Model) -> Self {
        Self {
            id: ID(t.id.to_string()),
            name: t.name,
            uuid: t.id,
            tenant_id: t.tenant_id,
        }
    }
}

#[ComplexObject]
impl Team {
    /// The team's members, by name.
    async fn members(&self, ctx: &Context<'_>) -> Result<Vec<User>> {
        let members = match ctx.data_opt::<Loaders>() {
            Some(loaders) => loaders
                .members_of_team
                .load_one(self.uuid)
                .await
                .map_err(|e| e.extend_ref())?,
            None => {
                let db = &ctx.data::<RequestContext>()?.db;
                account::members_of_teams(&Walled::new(db, self.tenant_id).scope(), &[self.uuid])
                    .await
                    .gql()?
                    .remove(&self.uuid)
            }
        };
        // `users` lists nobody to a REP; neither do teams: a rep sees
        // themself among a team's members and no colleague's email.
        let rep = ctx
            .data_opt::<RequestContext>()
            .and_then(|rc| rc.principal().ok())
            .filter(|p| p.role == entity::enums::Role::Rep)
            .map(|p| p.user_id);
        Ok(members
            .unwrap_or_default()
            .into_iter()
            .filter(|u| rep.is_none_or(|me| u.id == me))
            .map(User::from)
            .collect())
    }
}

/// A pipeline with its stages in order.
#[derive(SimpleObject)]
pub struct Pipeline {
    pub id: ID,
    pub name: String,
    pub is_default: bool,
    pub stages: Vec<Stage>,
}

impl Pipeline {
    /// From a pipeline and its stages.
    pub fn new(pipeline: pipeline::Model, stages: Vec<stage::Model>) -> Self {
        Self {
            id: ID(pipeline.id.to_string()),
            name: pipeline.name,
            is_default: pipeline.is_default,
            stages: stages.into_iter().map(Stage::from).collect(),
        }
    }
}

/// One stage of a pipeline.
#[derive(SimpleObject)]
pub struct Stage {
    pub id: ID,
    pub key: String,
    pub name: String,
    pub kind: StageKind,
    pub position: i32,
    /// Probability of winning from this stage, 0 to 1.
    pub win_probability: f64,
    /// Days idle in this stage before the lead is flagged stale.
    pub rotting_days: Option<i32>,
    /// A stage won leads go on to as customers (maintenance, renewal):
    /// a lead in it keeps its WON outcome.
    pub post_sale: bool,
}

impl From<stage::Model> for Stage {
    fn from(s: stage::Model) -> Self {
        Self {
            id: ID(s.id.to_string()),
            key: s.key,
            name: s.name,
            kind: s.kind.into(),
            position: s.position,
            win_probability: s.win_probability,
            rotting_days: s.rotting_days,
            post_sale: s.post_sale,
        }
    }
}

/// A behaviour signal the tenant scores.
#[derive(SimpleObject)]
pub struct SignalType {
    pub id: ID,
    pub key: String,
    pub label: String,
    /// Engagement points of one fresh occurrence; negative lowers it.
    pub points: f64,
    /// Days after which an occurrence counts half.
    pub half_life_days: f64,
    /// Whether a recent occurrence forces the top tier.
    pub urgent: bool,
    pub direction: Direction,
    pub retired: bool,
}

impl From<signal_type::Model> for SignalType {
    fn from(s: signal_type::Model) -> Self {
        Self {
            id: ID(s.id.to_string()),
            key: s.key,
            label: s.label,
            points: s.points,
            half_life_days: s.half_life_days,
            urgent: s.urgent,
            direction: s.direction.into(),
            retired: s.retired,
        }
    }
}

/// A typed custom attribute of leads.
#[derive(SimpleObject)]
pub struct LeadField {
    pub key: String,
    pub label: String,
    #[graphql(name = "type")]
    pub field_type: FieldType,
    /// The allowed values of a CATEGORY field.
    pub options: Vec<String>,
    pub required: bool,
}

impl From<lead_field::Model> for LeadField {
    fn from(f: lead_field::Model) -> Self {
        Self {
            key: f.key,
            label: f.label,
            field_type: f.field_type.into(),
            options: serde_json::from_value(f.options).unwrap_or_default(),
            required: f.required,
        }
    }
}

/// One weighted dimension of a scoring model.
#[derive(SimpleObject, Deserialize)]
pub struct Dimension {
    pub key: String,
    pub label: String,
    pub kind: DimensionKind,
    /// Percentage of the total score, 0 to 100.
    pub weight: f64,
    #[serde(default)]
    pub params: Json<Value>,
}

/// A score threshold and its follow-up cadence.
#[derive(SimpleObject, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tier {
    pub key: String,
    pub label: String,
    /// The lowest total score (0–100) in this tier.
    pub min_score: f64,
    pub follow_up_every_days: f64,
    /// Hours within which a lead new to this tier (created in it, or just
    /// risen into it) is due for a first contact; null when the cadence
    /// alone applies.
    #[serde(default)]
    pub first_response_hours: Option<f64>,
}

/// A rule that raises or caps a lead's tier.
#[derive(SimpleObject, Deserialize)]
pub struct OverrideRule {
    pub kind: String,
    #[serde(default)]
    pub params: Json<Value>,
}

#[derive(Deserialize)]
struct StoredConfig {
    #[serde(default)]
    dimensions: Vec<Dimension>,
    #[serde(default)]
    tiers: Vec<Tier>,
    #[serde(default)]
    overrides: Vec<OverrideRule>,
}

/// One version of a scoring model.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct ScoringModel {
    pub id: ID,
    pub version: i32,
    pub status: ModelStatus,
    pub name: String,
    pub dimensions: Vec<Dimension>,
    pub tiers: Vec<Tier>,
    pub overrides: Vec<OverrideRule>,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    pub team_id: Option<entity::TeamId>,
}

impl TryFrom<scoring_model::Model> for ScoringModel {
    type Error = AppError;

    fn try_from(m: scoring_model::Model) -> Result<Self, AppError> {
        let config: StoredConfig = serde_json::from_value(m.config).map_err(|err| {
            AppError::Internal(anyhow::Error::new(err).context(format!(
                "scoring model {} has an unreadable configuration",
                m.id
            )))
        })?;
        Ok(Self {
            id: ID(m.id.to_string()),
            version: m.version,
            status: m.status.into(),
            name: m.name,
            dimensions: config.dimensions,
            tiers: config.tiers,
            overrides: config.overrides,
            created_at: m.created_at,
            activated_at: m.activated_at,
            team_id: m.team_id,
        })
    }
}

#[ComplexObject]
impl ScoringModel {
    /// The team this model is for; null for the tenant default.
    async fn team(&self, ctx: &Context<'_>) -> Result<Option<Team>> {
        let Some(team_id) = self.team_id else {
            return Ok(None);
        };
        let (_, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        Ok(scope
            .find::<team::Entity>(team_id)
            .await
            .gql()?
            .map(Team::from))
    }
}

/// The result of signing up, in or refreshing.
#[derive(SimpleObject)]
pub struct AuthPayload {
    pub access_token: String,
    /// One-time token for `refreshSession`.
    pub refresh_token: String,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
    pub user: User,
    pub tenant: Tenant,
}

impl From<crate::service::accounts::account::Session> for AuthPayload {
    fn from(s: crate::service::accounts::account::Session) -> Self {
        Self {
            access_token: s.access_token,
            refresh_token: s.refresh_token,
            expires_at: s.expires_at,
            user: s.user.into(),
            tenant: s.tenant.into(),
        }
    }
}

/// The result of `createUser`.
#[derive(SimpleObject)]
pub struct UserPayload {
    pub user: User,
}

/// The result of `createTeam`.
#[derive(SimpleObject)]
pub struct TeamPayload {
    pub team: Team,
}

/// The result of `updateTenantSettings`.
#[derive(SimpleObject)]
pub struct TenantPayload {
    pub tenant: Tenant,
}

/// Lets a shared (`Arc`) service error keep its code and field.
pub(super) trait ExtendRef {
    fn extend_ref(&self) -> async_graphql::Error;
}

impl ExtendRef for std::sync::Arc<AppError> {
    fn extend_ref(&self) -> async_graphql::Error {
        async_graphql::ErrorExtensions::extend(self.as_ref())
    }
}
