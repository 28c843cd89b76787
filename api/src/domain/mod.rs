//! The values LeadRank's rules are written in, parsed once at the edge.
//!
//! A GraphQL resolver (or the import, or the event endpoint) turns what a
//! client sent into these types and names the field it came from when it
//! cannot; a service taking an [`Email`] knows it holds an address and
//! never checks again. Ids are typed too ([`LeadId`], [`UserId`],
//! [`TeamId`]), so one cannot be passed for another.

mod email;
mod locale;
mod phone;
mod slug;

pub use email::Email;
pub use entity::{LeadId, PipelineId, ScoringModelId, StageId, TeamId, UserId};
pub use locale::Locale;
pub use phone::Phone;
pub use slug::Slug;

/// A value that parses from a client's text.
pub trait Parse: Sized {
    /// The value in `raw`.
    ///
    /// # Errors
    /// Why `raw` is not one, worded for the person who typed it; the edge
    /// places it on the field.
    fn parse(raw: &str) -> Result<Self, &'static str>;
}

/// Text values keep their canonical form, which is what is stored.
macro_rules! text_value {
    ($($name:ident),*) => {$(
        impl $name {
            /// The canonical text, as stored.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    )*};
}

text_value!(Email, Phone, Slug);
