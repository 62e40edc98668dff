//! Warden's integration tests: real plugins in a real engine, against a
//! real PostgreSQL cluster (one per test run) and SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli;
mod hostile;
mod pg_harness;
mod secrets;
mod sql_guard;
mod state;
mod vacuum;
mod world;
