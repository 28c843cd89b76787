//! Typed ids: a lead's id cannot be passed where a user's is expected.
//!
//! Each is a [`Uuid`] underneath and is stored as one (sea-orm's
//! `DeriveValueType`), so queries, keys and migrations are unchanged. The
//! API parses client ids into these at its edge; services take them.

use std::{fmt, str::FromStr};

use sea_orm::{DeriveValueType, TryFromU64, error::DbErr};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_types {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            Serialize, Deserialize, DeriveValueType,
        )]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id (UUID v7), as every new row gets.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The id as a plain [`Uuid`].
            #[must_use]
            pub const fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self)
            }
        }

        /// Ids are never auto-incremented; sea-orm asks for this of every
        /// primary key type all the same.
        impl TryFromU64 for $name {
            fn try_from_u64(_: u64) -> Result<Self, DbErr> {
                Err(DbErr::ConvertFromU64(stringify!($name)))
            }
        }
    )*};
}

id_types! {
    /// A lead (`leads.id`, `lead_scores.lead_id`, and every history row's `lead_id`).
    LeadId;
    /// A user of a tenant: an owner, an actor, a member of a team.
    UserId;
    /// A team of a tenant.
    TeamId;
    /// A sales pipeline of a tenant (`pipelines.id`, a lead's and a stage's
    /// `pipeline_id`).
    PipelineId;
    /// A stage of a pipeline (`stages.id`, a lead's `stage_id`).
    StageId;
    /// A version of a scoring model (`scoring_models.id`, the model a lead
    /// and a score event were scored with).
    ScoringModelId;
}
