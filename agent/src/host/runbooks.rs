//! `warden:plugin/runbooks`: the runbooks in force when the run started
//! (see [`crate::runbook`]). Any plugin may read them (they hold no
//! secrets): the permission is that of `context`.

use std::collections::BTreeMap;

use super::permission::{HostCall, check};
use super::{HostState, RunEnv, denied};
use crate::runbook::RunbookSet;
use crate::runtime::bindings::types::{Error, Label};
use crate::runtime::bindings::warden::plugin::runbooks::Host;

impl HostState {
    /// The run's environment if reading runbooks is allowed.
    fn runbook_env(&self) -> Result<std::sync::Arc<RunEnv>, String> {
        check(self.env.as_deref(), HostCall::Context)?;
        self.env
            .clone()
            .ok_or_else(|| "describe() must not call host functions".to_owned())
    }
}

/// `runbooks.get`: the runbook as JSON, the form of the shared model
/// (see [`crate::runbook::Runbook::to_model`]).
pub fn get(runbooks: &RunbookSet, name: &str) -> Result<String, Error> {
    match runbooks.get(name) {
        Some(runbook) => serde_json::to_string(&runbook.to_model())
            .map_err(|e| Error::Other(format!("runbook `{name}` has no JSON form: {e}"))),
        None => {
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
            Err(Error::InvalidInput(format!(
                "no runbook named `{name}` ({known})"
            )))
        }
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
        Ok(match self.runbook_env() {
            Ok(env) => get(&env.runbooks, &name),
            Err(e) => Err(denied(e)),
        })
    }

    async fn for_alert(&mut self, labels: Vec<Label>) -> wasmtime::Result<Vec<String>> {
        match self.runbook_env() {
            Ok(env) => Ok(for_alert(&env.runbooks, labels)),
            Err(e) => Err(wasmtime::Error::msg(e)),
        }
    }
}
