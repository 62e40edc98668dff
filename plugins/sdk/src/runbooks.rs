//! Runbooks, `warden:plugin/runbooks` (since 0.1.5): incident procedures as
//! data, loaded by the host from the folder `[runbooks] dir` of
//! `warden.toml` (the format is `policies/runbooks/README.md`), validated at
//! load and reloaded when the folder changes. Any plugin may read them;
//! they hold no secrets. A run sees the runbooks in force when it started.
//!
//! [`get`] gives one runbook as JSON text. The `warden-model` crate
//! (`plugins/model`, the model the host loads runbooks into) reads it:
//! `serde_json::from_str::<warden_model::Runbook>(&json)` (the SDK itself
//! does not depend on serde):
//!
//! ```json
//! {"name": "pg-connection-exhaustion", "description": "...", "severity": "critical",
//!  "target_kind": "postgres", "alerts": ["alertname=\"PostgresConnectionsHigh\""],
//!  "max_steps": 100,
//!  "params": {"idle_minutes": {"type": "integer", "default": 10, "description": "..."}},
//!  "steps": [{"id": "idle", "kind": "query", "on_failure": "stop", "sql": "SELECT ...",
//!             "args": ["params.idle_minutes * 60"]},
//!            {"id": "end_idle", "kind": "action", "on_failure": "stop", "timeout": "30s",
//!             "terminate": "steps.idle.rows.map(r, r.pid)", "requires_approval": true}],
//!  "source": "/etc/warden/runbooks/pg.toml:1"}
//! ```
//!
//! Step fields are named as in the file (`else` included); optional ones
//! that are not set are absent, except `on_failure` (always: `stop`,
//! `continue` or `goto:<id>`) and an action's `requires_approval` (always,
//! default `true`). Durations are strings like `"30s"` or `"1m30s"`
//! ([`crate::parse_duration`] reads them); a `duration` parameter's default
//! too. The host checked every CEL expression and template, and every step
//! they name, at load.
//!
//! ```no_run
//! use warden_sdk::runbooks;
//! # fn demo(labels: &[warden_sdk::Label]) -> Result<(), warden_sdk::Error> {
//! // The runbooks for the alert that triggered this run, by name.
//! for name in runbooks::for_alert(labels) {
//!     let json = runbooks::get(&name)?;
//!     // ... serde_json::from_str::<warden_model::Runbook>(&json)
//! #   let _ = json;
//! }
//! # Ok(()) }
//! ```

use crate::bindings::warden::plugin::runbooks as wit;
use crate::{Error, Label};

/// The runbook named `name`, as JSON (see the module documentation).
/// `invalid-input` if no runbook has that name (the message lists the
/// loaded ones).
pub fn get(name: &str) -> Result<String, Error> {
    wit::get(name)
}

/// Opens the action of step `step` of runbook `runbook` (since 0.1.7):
/// the host checks, from the runbook it loaded, that the step is an action
/// and that its `requires_approval` is met (the run is approved or
/// dry-run). `access-denied` when it is not; call it before the action's
/// host calls and do nothing when it fails.
pub fn begin_action(runbook: &str, step: &str) -> Result<(), Error> {
    wit::begin_action(runbook, step)
}

/// The names of the runbooks whose `alerts` matchers all match `labels`
/// (an alert's labels, like [`crate::Alert::labels`]), sorted by name.
/// Runbooks without `alerts` are never chosen this way, only by name.
pub fn for_alert(labels: &[Label]) -> Vec<String> {
    wit::for_alert(labels)
}
