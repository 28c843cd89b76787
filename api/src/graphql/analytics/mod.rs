//! Analytics: the review of a period and the CSV export.

pub mod export;
pub mod review;
