//! Background work: the nightly re-scoring job, its lease and its
//! scheduler.

pub mod digest;
pub mod lease;
pub mod rescore;
pub mod scheduler;
pub mod webhooks;
