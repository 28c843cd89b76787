//! Tenants, users and who may do what: sign-up and sign-in, roles and
//! teams, API keys, and the audit log of who changed what.

pub mod access;
pub mod account;
pub mod api_keys;
pub mod audit;
