//! `warden:plugin/runs`: starting other plugins through the agent's queue.
//!
//! A started run is an ordinary `queued` run record (trigger `manual`, by
//! `run <id> (<plugin>)`), admitted like a run requested over the HTTP API:
//! the dispatcher then applies its own grant, limits, concurrency and
//! guardrails. It is dry-run when this run is. The calling plugin needs the
//! started plugin in its grant's `run_plugins` for that target, and only
//! the agent running as a service has a queue (`warden invoke` refuses).

use std::collections::BTreeMap;

use super::permission::{HostCall, check};
use super::{HostState, denied, invalid};
use crate::runs::admit::Request;
use crate::runs::{RunRecord, RunStatus, Trigger};
use crate::runtime::bindings::types::{Error, Param};
use crate::runtime::bindings::warden::plugin::runs::{Host, RunInfo, RunState};

fn info(rec: &RunRecord) -> RunInfo {
    let state = match rec.status {
        RunStatus::Queued => RunState::Queued,
        RunStatus::Running => RunState::Running,
        RunStatus::Succeeded => RunState::Succeeded,
        RunStatus::Failed | RunStatus::TimedOut => RunState::Failed,
        RunStatus::Skipped => RunState::Skipped,
        RunStatus::Denied => RunState::Denied,
        RunStatus::AwaitingApproval => RunState::AwaitingApproval,
        _ => RunState::Other,
    };
    let summary = match (&rec.report, &rec.error) {
        (Some(report), _) => report.summary.clone(),
        (None, Some(error)) => error.message.clone(),
        (None, None) => rec
            .decision
            .as_ref()
            .map(|d| d.detail.clone())
            .unwrap_or_default(),
    };
    RunInfo {
        id: rec.id.clone(),
        state,
        summary,
    }
}

impl HostState {
    async fn runs_start(
        &mut self,
        plugin: &str,
        target: &str,
        params: Vec<Param>,
    ) -> Result<RunInfo, Error> {
        let env = self.run_env()?;
        check(Some(&env), HostCall::RunStart { target, plugin }).map_err(denied)?;
        let Some(admitter) = env.admitter.clone() else {
            return Err(invalid(
                "starting other plugins needs the agent's run queue: run the agent as a \
                 service (`warden run`), not `warden invoke`",
            ));
        };
        let params: BTreeMap<String, String> =
            params.into_iter().map(|p| (p.name, p.value)).collect();
        let rec = RunRecord::new(
            plugin,
            target,
            Trigger::Manual {
                by: format!("run {} ({})", env.run_id, env.plugin),
            },
            params,
            env.dry_run(),
        );
        let admitted = admitter
            .admit(Request::Runs(vec![rec]))
            .await
            .map_err(|e| Error::Other(format!("queueing `{plugin}` on `{target}`: {e}")))?;
        let rec = admitted
            .runs
            .into_iter()
            .next()
            .ok_or_else(|| Error::Other("admission returned no record".into()))?;
        self.started_runs.push(rec.id.clone());
        Ok(info(&rec))
    }

    async fn runs_get(&mut self, id: &str) -> Result<RunInfo, Error> {
        let env = self.run_env()?;
        check(Some(&env), HostCall::RunGet).map_err(denied)?;
        if !self.started_runs.iter().any(|s| s == id) {
            return Err(invalid(format!("run `{id}` was not started by this run")));
        }
        match env.store.get(id).await {
            Ok(Some(rec)) => Ok(info(&rec)),
            Ok(None) => Err(invalid(format!("no run `{id}`"))),
            Err(e) => Err(Error::Other(format!("reading run `{id}`: {e}"))),
        }
    }
}

impl Host for HostState {
    async fn start(
        &mut self,
        plugin: String,
        target: String,
        params: Vec<Param>,
    ) -> wasmtime::Result<Result<RunInfo, Error>> {
        Ok(self.runs_start(&plugin, &target, params).await)
    }

    async fn get(&mut self, id: String) -> wasmtime::Result<Result<RunInfo, Error>> {
        Ok(self.runs_get(&id).await)
    }
}
