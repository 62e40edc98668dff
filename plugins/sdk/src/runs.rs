//! Starting other plugins, `warden:plugin/runs` (since 0.1.5): a run queued
//! through the agent's queue, with its own grant, limits and guardrails,
//! dry-run when this run is. The plugin must be in this plugin's grant
//! `run_plugins` for the target.
//!
//! ```no_run
//! use warden_sdk::{Param, runs};
//! # fn demo() -> Result<(), warden_sdk::Error> {
//! let params = [Param { name: "max_tables".into(), value: "5".into() }];
//! let run = runs::start("vacuum", "app", &params)?;
//! let now = runs::get(&run.id)?;
//! # let _ = now;
//! # Ok(()) }
//! ```

use crate::bindings::warden::plugin::runs as wit;
pub use crate::bindings::warden::plugin::runs::{RunInfo, RunState};
use crate::{Error, Param};

/// Queues a run of `plugin` on `target` with `params`. `access-denied`,
/// nothing queued, over the agent's `max_chain_depth`, the grant's
/// `max_started_runs` or the plugin's `max_queued_per_plugin` (the text
/// names the bound, its value and where it is set).
pub fn start(plugin: &str, target: &str, params: &[Param]) -> Result<RunInfo, Error> {
    wit::start(plugin, target, params)
}

/// A run this run started, by id.
pub fn get(id: &str) -> Result<RunInfo, Error> {
    wit::get(id)
}
