//! LeadRank: whom to follow up next, and why. A multi-tenant GraphQL
//! backend that scores every lead through the pure `scoring` crate.

pub mod auth;
pub mod config;
pub mod db;
pub mod demo;
pub mod error;
pub mod graphql;
pub mod jobs;
pub mod live;
pub mod rate_limit;
pub mod service;
pub mod startup;
pub mod telemetry;
pub mod tenancy;
pub mod ws;
