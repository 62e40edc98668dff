//! The shape every capability has: per-run state prepared when the run
//! starts, and handed back as [`RunEffects`] when it ends.
//!
//! [`super::HostState`] holds each capability's state in a private field;
//! the runtime never reaches into them: it calls
//! [`super::HostState::finish`] once and gets one [`RunEffects`].

use super::RunEnv;
use crate::runs::{Action, LogLine};
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;

/// What a finished run hands back to the runtime: everything the record
/// and the state store need, nothing of the capabilities' insides.
#[derive(Debug, Default)]
pub struct RunEffects {
    /// Host actions (statements above `read`, artifacts calls, ...), in
    /// the order they were made.
    pub actions: Vec<Action>,
    /// The run's log lines (the plugin's and the host's notes).
    pub logs: Vec<LogLine>,
    /// Lines not kept (over the caps).
    pub logs_dropped: u64,
    /// State writes to commit (`None` = delete); committed only for a
    /// succeeded, non-dry run.
    pub state_writes: BTreeMap<String, Option<Vec<u8>>>,
    /// In the real run of an approved plan: why the plan no longer holds.
    pub plan_broken: Option<String>,
}

/// One capability's per-run state.
pub trait Capability: Send + Sized + Default {
    /// The state at the start of a run (`env` is `None` in `describe`):
    /// empty unless the capability says otherwise.
    fn prepare(env: Option<&RunEnv>) -> Self {
        let _ = env;
        Self::default()
    }
    /// Ends the run for this capability: closes what it opened and moves
    /// what it produced into `effects`. Called once, after the guest
    /// returned (or was stopped).
    fn finish<'a>(&'a mut self, effects: &'a mut RunEffects) -> BoxFuture<'a, ()>;
    /// A call on `target` outlived its budget and was dropped: let go of
    /// what is open on it (stopping its work on the server), so a later
    /// call starts clean. Nothing by default.
    fn abandon<'a>(&'a mut self, target: &'a str) -> BoxFuture<'a, ()> {
        let _ = target;
        Box::pin(async {})
    }
}
