//! Table and column names, shared by the migrations that create and later
//! alter the tables.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden, Clone)]
pub enum Tenants {
    Table,
    Id,
    Name,
    Slug,
    Locale,
    TimeZone,
    NightlyHour,
    RepsMayPin,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
pub enum Users {
    Table,
    TenantId,
    Id,
    Email,
    DisplayName,
    Role,
    PasswordHash,
    Active,
    Away,
    Capacity,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
pub enum Teams {
    Table,
    TenantId,
    Id,
    Name,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
pub enum TeamMembers {
    Table,
    TenantId,
    TeamId,
    UserId,
    CreatedAt,
}

#[derive(DeriveIden, Clone)]
pub enum RefreshSessions {
    Table,
    TenantId,
    Id,
    UserId,
    FamilyId,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    RotatedAt,
    RevokedAt,
}

#[derive(DeriveIden, Clone)]
pub enum Pipelines {
    Table,
    TenantId,
    Id,
    Name,
    IsDefault,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
pub enum Stages {
    Table,
    TenantId,
    Id,
    PipelineId,
    Key,
    Name,
    Kind,
    Position,
    WinProbability,
    RottingDays,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
pub enum SignalTypes {
    Table,
    TenantId,
    Id,
    Key,
    Label,
    Points,
    HalfLifeDays,
    Urgent,
    Direction,
    Retired,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
pub enum LeadFields {
    Table,
    TenantId,
    Id,
    Key,
    Label,
    FieldType,
    Options,
    Required,
    Position,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
pub enum ScoringModels {
    Table,
    TenantId,
    Id,
    TeamId,
    Version,
    Status,
    Name,
    Config,
    CreatedBy,
    CreatedAt,
    ActivatedAt,
    RetiredAt,
}

#[derive(DeriveIden, Clone)]
pub enum PredictorModels {
    Table,
    TenantId,
    Id,
    TeamId,
    Version,
    Active,
    TrainedAt,
    TrainingRows,
    Won,
    Lost,
    Metrics,
    Model,
}

#[derive(DeriveIden, Clone)]
pub enum Leads {
    Table,
    TenantId,
    Id,
    ExternalId,
    Name,
    Company,
    Email,
    Phone,
    DedupeKey,
    Industry,
    Source,
    Attributes,
    DealValue,
    OwnerId,
    TeamId,
    PipelineId,
    StageId,
    StageEnteredAt,
    Status,
    ClosedAt,
    CloseReason,
    Score,
    Tier,
    TierRank,
    Priority,
    Flags,
    CloseProbability,
    Breakdown,
    ScoringModelId,
    ModelVersion,
    NextFollowUpAt,
    LastActivityAt,
    LastInboundAt,
    LastOutboundAt,
    SignalState,
    ScoredAt,
    PinnedTier,
    PinReason,
    PinExpiresAt,
    PinnedBy,
    Version,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
pub enum Activities {
    Table,
    TenantId,
    Id,
    LeadId,
    SignalKey,
    Direction,
    OccurredAt,
    Note,
    Amount,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden, Clone)]
pub enum ScoreEvents {
    Table,
    TenantId,
    Id,
    LeadId,
    At,
    OldScore,
    NewScore,
    OldTier,
    NewTier,
    Reason,
    ModelId,
    ModelVersion,
    JobRunId,
}

#[derive(DeriveIden, Clone)]
pub enum LeadEvents {
    Table,
    TenantId,
    Id,
    LeadId,
    Kind,
    ActorId,
    At,
    FromValue,
    ToValue,
    Data,
}

#[derive(DeriveIden, Clone)]
pub enum JobRuns {
    Table,
    TenantId,
    Id,
    Kind,
    Trigger,
    Status,
    TeamId,
    RequestedBy,
    QueuedAt,
    StartedAt,
    FinishedAt,
    HeartbeatAt,
    LeadsScanned,
    LeadsChanged,
    TierChanges,
    NewlyCold,
    Stale,
    ChurnRisk,
    Checkpoint,
    Details,
    Error,
}

#[derive(DeriveIden, Clone)]
pub enum JobLeases {
    Table,
    TenantId,
    Kind,
    Holder,
    JobRunId,
    AcquiredAt,
    HeartbeatAt,
    ExpiresAt,
}

#[derive(DeriveIden, Clone)]
pub enum AuditLog {
    Table,
    TenantId,
    Id,
    At,
    ActorId,
    Action,
    Entity,
    EntityId,
    Before,
    After,
}

#[derive(DeriveIden, Clone)]
pub enum LoginFailures {
    Table,
    Id,
    ThrottleKey,
    At,
}

#[derive(DeriveIden, Clone)]
pub enum AssignmentRules {
    Table,
    TenantId,
    Id,
    TeamId,
    Name,
    Strategy,
    Filter,
    Position,
    Active,
    LastAssignedUserId,
    MaxOpenPerRep,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
pub enum WebhookEndpoints {
    Table,
    TenantId,
    Id,
    Url,
    Description,
    EventTypes,
    Secret,
    Active,
    DisabledReason,
    ConsecutiveFailures,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
pub enum WebhookDeliveries {
    Table,
    TenantId,
    Id,
    EndpointId,
    EventId,
    EventType,
    Payload,
    Status,
    Attempts,
    NextAttemptAt,
    LockedUntil,
    LastStatusCode,
    LastError,
    CreatedAt,
    DeliveredAt,
}

#[derive(DeriveIden, Clone)]
pub enum ChangeNotices {
    Table,
    TenantId,
    Id,
    Payload,
    CreatedAt,
}

#[derive(DeriveIden, Clone)]
pub enum LeadScores {
    Table,
    TenantId,
    LeadId,
    Version,
    OwnerId,
    TeamId,
    Status,
    Bucket,
    Score,
    Tier,
    TierRank,
    Priority,
    Flags,
    CloseProbability,
    ScoringModelId,
    ModelVersion,
    NextFollowUpAt,
    ScoredAt,
}
