//! Warden: a host agent that keeps databases healthy by running sandboxed
//! WebAssembly component plugins (`warden:plugin@0.1.0`, see `wit/`) against
//! SQLite, PostgreSQL and MongoDB targets, under deny-by-default policies.
//!
//! The pieces, in the order a run meets them:
//! - [`config`]: `warden.toml` (targets, folders, state database);
//! - [`policy`]: grants per plugin × target × capability class;
//! - [`runbook`]: incident runbooks, served to plugins;
//! - [`runtime`]: the wasmtime engine, component cache and per-run stores;
//! - [`host`]: the capabilities a plugin imports, each checked by
//!   [`host::permission`];
//! - [`runs`]: the run store: records, alerts, circuits and plugin state in
//!   the state database;
//! - [`agent`]: the path every run takes;
//! - [`dispatch`]: orchestration above the run path (admission,
//!   guardrails, the queue);
//! - [`triggers`]: what asks for runs (Alertmanager webhook, HTTP API,
//!   schedules), through [`dispatch`];
//! - [`cli`]: the `warden` command, which shows outsiders' text through
//!   [`text`] (control characters escaped);
//! - [`credentials`]: `warden check --connect`, what the roles behind the
//!   targets' URLs may do.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let agent = warden::agent::Agent::load(std::path::Path::new("warden.toml")).await?;
//! let run = agent
//!     .invoke(warden::agent::RunRequest::manual("vacuum", "quickstart").dry_run(true))
//!     .await?;
//! println!("{}: {}", run.id, run.status);
//! # Ok(()) }
//! ```

pub mod agent;
pub mod artifacts;
pub mod capability;
pub mod cli;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod diag;
pub mod dispatch;
pub mod host;
pub mod ident;
#[cfg(test)]
mod layers;
pub mod load;
pub mod notify;
pub mod policy;
pub mod reload;
pub mod runbook;
pub mod runs;
pub mod runtime;
pub mod secrets;
pub mod service;
pub mod telemetry;
pub mod text;
pub mod triggers;
#[cfg(test)]
mod ui_tests;

/// Makes ring the process's rustls crypto provider (once; a provider
/// installed earlier stays). reqwest, the HTTP client of the OTLP/HTTP
/// exporter and of notifications, is built with rustls but without a
/// provider of its own, and panics when it builds a client without one:
/// call this before building any.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
