//! Analytics: the manager's weekly review and the CSV export.

pub mod export;
pub mod review;
