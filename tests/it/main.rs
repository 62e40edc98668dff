//! Warden's integration tests: real plugins in a real engine, against a
//! real PostgreSQL cluster (one per test run) and SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod alert_e2e;
mod approvals;
mod backup;
mod backup_data;
mod backup_retention;
mod capability;
mod cli;
mod compat;
mod crash;
mod credentials;
mod daemon;
mod dump;
mod guardrails;
mod hostile;
mod index_advisor;
mod index_mongo;
mod index_workload;
mod logs_capability;
mod missed_ticks;
mod mongo_capability;
mod mongo_harness;
mod monitoring;
mod observability;
mod pg_harness;
mod planner;
mod reload;
mod retention;
mod run_chains;
mod runbooks;
mod secrets;
mod sessions_capability;
mod slow_clients;
mod sql_guard;
mod sql_walls;
mod state;
mod telemetry;
mod truth;
mod vacuum;
mod webhook;
mod world;
