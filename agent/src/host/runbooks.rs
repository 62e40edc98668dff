//! `warden:plugin/runbooks`: the runbooks in force when the run started
//! (see [`crate::runbook`]). Any plugin may read them (they hold no
//! secrets): the permission is that of `context`.
//!
//! `begin-action` (since 0.1.7) is the host's side of a runbook step's
//! approval: [`action_gate`] decides, from the runbook the host loaded,
//! whether the step may act in this run (approved, or dry-run, or a step
//! that does not require approval). The `runbook` plugin asks before every
//! action; its own check stays as a friendly early stop.

use std::collections::BTreeMap;

use super::permission::{Denied, LocalCall, check_local, check_runbook_step};
use super::{HostState, RunEnv, denied};
use crate::host::bindings::types::{Error, Label};
use crate::host::bindings::warden::plugin::runbooks::Host;
use crate::runbook::{RunbookSet, StepKind};

/// Which runbook action a run is inside: what [`HostState::mutation`]
/// holds every change of a run that read a runbook to
/// ([`check_runbook_step`]). The `runbook` plugin opens an action before
/// each step that changes something; a step it skipped asking for, or one
/// the host refused, cannot change anything.
#[derive(Debug)]
pub struct RunbookStep {
    /// The run was handed a runbook (`runbooks.get`, or names from
    /// `runbooks.for-alert`).
    read: bool,
    /// The runbook and step of the open action, or why none is open.
    open: Result<(String, String), String>,
}

impl Default for RunbookStep {
    fn default() -> Self {
        RunbookStep {
            read: false,
            open: Err("no runbook action was opened".into()),
        }
    }
}

impl RunbookStep {
    /// Whether a change may be made now.
    pub fn allows(&self) -> Result<(), Denied> {
        check_runbook_step(self.read, self.open.as_ref().map_err(String::as_str))
    }

    fn begun(&mut self, runbook: &str, step: &str, gate: &Result<(), Error>) {
        self.open = match gate {
            Ok(()) => Ok((runbook.to_owned(), step.to_owned())),
            Err(e) => Err(format!(
                "the last action (step `{step}` of runbook `{runbook}`) was refused: {}",
                super::wit::error_text(e)
            )),
        };
    }
}

impl HostState {
    /// The run's environment if reading runbooks is allowed.
    fn runbook_env(&self) -> Result<std::sync::Arc<RunEnv>, String> {
        check_local(self.env.clone(), LocalCall::Context).map_err(|e| e.to_string())
    }
}

/// `runbooks.get`: the runbook as JSON, the form of the shared model
/// (see [`crate::runbook::Runbook::to_model`]).
pub fn get(runbooks: &RunbookSet, name: &str) -> Result<String, Error> {
    match runbooks.get(name) {
        Some(runbook) => serde_json::to_string(&runbook.to_model())
            .map_err(|e| Error::Other(format!("runbook `{name}` has no JSON form: {e}"))),
        None => Err(no_runbook(runbooks, name)),
    }
}

/// `invalid-input`: no runbook named `name`, with the loaded ones.
fn no_runbook(runbooks: &RunbookSet, name: &str) -> Error {
    let mut known: Vec<String> = runbooks
        .iter()
        .take(20)
        .map(|r| format!("`{}`", r.name))
        .collect();
    if runbooks.len() > known.len() {
        known.push("...".to_owned());
    }
    let known = if known.is_empty() {
        "none are loaded".to_owned()
    } else {
        format!("loaded: {}", known.join(", "))
    };
    Error::InvalidInput(format!("no runbook named `{name}` ({known})"))
}

/// The gate of `runbooks.begin-action`: `Ok` when step `step` of runbook
/// `runbook` is an action that may act in a run that is `approved` or
/// `dry_run` (an action with `requires_approval = false` always may).
/// Pure: the caller passes what the run is.
pub fn action_gate(
    runbooks: &RunbookSet,
    runbook: &str,
    step: &str,
    approved: bool,
    dry_run: bool,
) -> Result<(), Error> {
    let rb = runbooks
        .get(runbook)
        .ok_or_else(|| no_runbook(runbooks, runbook))?;
    let Some(s) = rb.step(step) else {
        let ids: Vec<String> = rb.steps.iter().map(|s| format!("`{}`", s.id)).collect();
        return Err(Error::InvalidInput(format!(
            "runbook `{runbook}` has no step `{step}` (its steps: {})",
            ids.join(", ")
        )));
    };
    let at = format!("{}:{}", rb.source.file.display(), s.line);
    match &s.kind {
        StepKind::Action {
            requires_approval, ..
        } => {
            if !requires_approval || approved || dry_run {
                Ok(())
            } else {
                Err(Error::AccessDenied(format!(
                    "step `{step}` of runbook `{runbook}` ({at}) requires approval, and this run \
                     was not approved: run the runbook under a grant or rule with \
                     `require_approval = true` and approve the plan, or set \
                     `requires_approval = false` on the step"
                )))
            }
        }
        other => Err(Error::InvalidInput(format!(
            "step `{step}` of runbook `{runbook}` ({at}) is a `{}` step, not an `action`",
            other.as_str()
        ))),
    }
}

/// `runbooks.for-alert`: the names of the runbooks matching `labels`.
pub fn for_alert(runbooks: &RunbookSet, labels: Vec<Label>) -> Vec<String> {
    let labels: BTreeMap<String, String> = labels.into_iter().map(|l| (l.name, l.value)).collect();
    runbooks
        .for_alert(&labels)
        .into_iter()
        .map(|r| r.name.clone())
        .collect()
}

impl Host for HostState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, Error>> {
        let got = match self.runbook_env() {
            Ok(env) => get(&env.runbooks, &name),
            Err(e) => Err(denied(e)),
        };
        if got.is_ok() {
            self.runbook_step.read = true;
        }
        Ok(got)
    }

    async fn for_alert(&mut self, labels: Vec<Label>) -> wasmtime::Result<Vec<String>> {
        match self.runbook_env() {
            Ok(env) => {
                let names = for_alert(&env.runbooks, labels);
                if !names.is_empty() {
                    self.runbook_step.read = true;
                }
                Ok(names)
            }
            Err(e) => Err(wasmtime::Error::msg(e)),
        }
    }

    async fn begin_action(
        &mut self,
        runbook: String,
        step: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(match self.runbook_env() {
            Ok(env) => {
                let gate = action_gate(&env.runbooks, &runbook, &step, env.approved, env.dry_run());
                match &gate {
                    Ok(()) => tracing::info!(%runbook, %step, "runbook action opened"),
                    Err(e) => tracing::warn!(%runbook, %step, error = ?e, "runbook action refused"),
                }
                self.runbook_step.begun(&runbook, &step, &gate);
                gate
            }
            Err(e) => Err(denied(e)),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const RUNBOOK: &str = r#"[runbook]
name = "pg-x"
target_kind = "postgres"

[[step]]
id = "look"
kind = "query"
sql = "SELECT 1"

[[step]]
id = "end"
kind = "action"
terminate = "[1]"

[[step]]
id = "tidy"
kind = "action"
sql = "DELETE FROM t"
requires_approval = false
"#;

    fn set() -> (tempfile::TempDir, RunbookSet) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pg.toml");
        std::fs::write(&file, RUNBOOK).unwrap();
        let set = RunbookSet::load_files(&[file]).unwrap();
        (dir, set)
    }

    fn denied_text(result: Result<(), Error>) -> String {
        match result {
            Err(Error::AccessDenied(m)) => m,
            other => panic!("expected access-denied, got {other:?}"),
        }
    }

    fn invalid_text(result: Result<(), Error>) -> String {
        match result {
            Err(Error::InvalidInput(m)) => m,
            other => panic!("expected invalid-input, got {other:?}"),
        }
    }

    #[test]
    fn an_action_needing_approval_opens_only_when_approved_or_dry_run() {
        let (_dir, set) = set();
        assert!(action_gate(&set, "pg-x", "end", true, false).is_ok());
        assert!(action_gate(&set, "pg-x", "end", false, true).is_ok());
        let why = denied_text(action_gate(&set, "pg-x", "end", false, false));
        assert!(why.contains("step `end` of runbook `pg-x`"), "{why}");
        assert!(why.contains("pg.toml:10) requires approval"), "{why}");
    }

    #[test]
    fn an_action_that_does_not_require_approval_always_opens() {
        let (_dir, set) = set();
        assert!(action_gate(&set, "pg-x", "tidy", false, false).is_ok());
    }

    #[test]
    fn only_actions_of_loaded_runbooks_open() {
        let (_dir, set) = set();
        let why = invalid_text(action_gate(&set, "pg-x", "look", true, false));
        assert!(why.contains("is a `query` step, not an `action`"), "{why}");
        let why = invalid_text(action_gate(&set, "pg-x", "nope", true, false));
        assert_eq!(
            why,
            "runbook `pg-x` has no step `nope` (its steps: `look`, `end`, `tidy`)"
        );
        let why = invalid_text(action_gate(&set, "other", "end", true, false));
        assert_eq!(why, "no runbook named `other` (loaded: `pg-x`)");
    }
}
