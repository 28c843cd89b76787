//! Leads: the mutations (`lead`), the one place lead rows are written
//! (`lead_writer`), reading pages and the follow-up queue (`lead_query`),
//! the queue's reasons, re-scoring one lead, the shared pool, and the
//! multi-row inserts bulk loaders use, a lead field's values
//! (`attributes`), who may see which lead
//! (`visibility`), and when a follow-up is overdue and a pin in force
//! (`follow_up`).

pub mod attributes;
pub mod bulk;
pub mod follow_up;
pub mod lead;
pub mod lead_query;
pub mod lead_writer;
pub mod pool;
pub mod reasons;
pub mod rescore_run;
pub mod rescoring;
pub mod visibility;
