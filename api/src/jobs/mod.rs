//! Background work: the nightly scheduler, the weekly digest and the
//! webhook worker. The re-scoring run they start, and its lease, are in the
//! service layer (`service::leads::rescore_run`, `service::lease`).

pub mod digest;
pub mod scheduler;
pub mod webhooks;

// The re-scoring run and its lease live in the service layer, which starts
// runs too (activating a model, an import); their old paths stay for the
// integration tests and benchmarks.
pub use crate::service::leads::rescore_run as rescore;
pub use crate::service::lease;
