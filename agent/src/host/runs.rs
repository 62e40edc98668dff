//! `warden:plugin/runs`: starting other plugins through the agent's queue.
//!
//! A started run is an ordinary `queued` run record (trigger `manual`, by
//! `run <id> (<plugin>)`, with `parent_run` and `depth` set), admitted
//! like a run requested over the HTTP API: the dispatcher then applies its
//! own grant, limits, concurrency and guardrails. It is dry-run when this
//! run is. The calling plugin needs the started plugin in its grant's
//! `run_plugins` for that target, and only the agent running as a service
//! has a queue (`warden invoke` refuses).
//!
//! Three bounds keep a plugin that starts itself (or a cycle of plugins
//! starting each other) from flooding the queue, each refused with
//! `access-denied` before anything is written, naming the bound, its value
//! and where to change it:
//! 1. chain depth: a run at `[runs] max_chain_depth` starts none;
//! 2. per run: a run that has started the grant's `max_started_runs` starts
//!    no more (counted here, per run);
//! 3. per plugin queue: admission refuses while the started plugin has
//!    `[runs] max_queued_per_plugin` runs queued (checked by the one writer,
//!    so concurrent starts cannot overshoot).
//!
//! Each refusal is counted (`warden_run_starts_refused_total{plugin,limit}`)
//! and logged on the calling run's record; the first of each bound per run
//! is kept even when the run's log is full.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::permission::{LocalCall, TargetCall, check_local, check_target};
use super::{HostState, RunEnv, denied, invalid};
use crate::config::RunLimits;
use crate::host::bindings::types::{Error, Param};
use crate::host::bindings::warden::plugin::runs::{Host, RunInfo, RunState};
use crate::policy::Location;
use crate::runs::{RunRecord, RunStatus};
use futures_util::future::BoxFuture;

/// Why admission wrote nothing for a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// [`Request::Started`] while the started plugin's queue is full.
    #[error(
        "plugin `{plugin}` already has {queued} queued runs, the most a run may add to \
         (max_queued_per_plugin = {max})"
    )]
    QueueFull {
        plugin: String,
        queued: u64,
        max: u32,
    },
    /// The request was invalid, the state database refused the write, or
    /// the agent is shutting down.
    #[error("{0}")]
    Failed(String),
}

/// The refusal for starting a run of `plugin` when `queued` of its runs
/// are queued already, if that is `max_queued` or more.
pub fn queue_full(plugin: &str, queued: u64, max_queued: u32) -> Option<AdmitError> {
    (queued >= u64::from(max_queued)).then(|| AdmitError::QueueFull {
        plugin: plugin.to_string(),
        queued,
        max: max_queued,
    })
}

/// The port through which `runs.start` queues a run. The dispatch layer
/// implements it ([`crate::dispatch::admit::Admitter`]) and the agent hands
/// it to each run ([`RunEnv::starter`]); the host knows nothing else of
/// admission.
pub trait RunStarter: Send + Sync {
    /// Writes `rec` (a `queued` record) unless its plugin already has
    /// `max_queued` runs queued ([`queue_full`]), and returns it as written.
    fn start(
        &self,
        rec: RunRecord,
        max_queued: u32,
    ) -> BoxFuture<'_, Result<RunRecord, AdmitError>>;
}

/// A `runs.start` refused by one of the bounds on runs started by runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartRefusal {
    /// The calling run is at `[runs] max_chain_depth`.
    #[error(
        "run {run} is at depth {depth} of a chain of runs started by runs, and a run at depth \
         {max} or deeper may start none (`max_chain_depth = {max}` in `[runs]` of {}; \
         default {})",
        config.display(),
        RunLimits::default_max_chain_depth()
    )]
    ChainDepth {
        run: String,
        depth: u32,
        max: u32,
        config: PathBuf,
    },
    /// The calling run has started its grant's `max_started_runs`.
    #[error(
        "run {run} has already started {started} runs, the most one run may start \
         (`max_started_runs = {max}` in the grant at {grant}; default {})",
        crate::policy::Grant::default_max_started_runs()
    )]
    PerRun {
        run: String,
        started: usize,
        max: u32,
        grant: Location,
    },
    /// The started plugin has `[runs] max_queued_per_plugin` runs queued.
    #[error(
        "`{plugin}` already has {queued} queued runs, the most a run may add to; nothing was \
         queued (`max_queued_per_plugin = {max}` in `[runs]` of {}; default {})",
        config.display(),
        RunLimits::default_max_queued_per_plugin()
    )]
    Queue {
        plugin: String,
        queued: u64,
        max: u32,
        config: PathBuf,
    },
}

impl StartRefusal {
    /// The bound's name, for metrics and logs: `chain-depth`, `per-run`,
    /// `queue`.
    pub const fn limit(&self) -> &'static str {
        match self {
            StartRefusal::ChainDepth { .. } => "chain-depth",
            StartRefusal::PerRun { .. } => "per-run",
            StartRefusal::Queue { .. } => "queue",
        }
    }
}

/// The bounds a run has hit, each noted on its record once for sure.
#[derive(Debug, Default)]
pub struct Refusals {
    noted: Vec<&'static str>,
}

impl Refusals {
    /// True the first time `limit` is hit in this run.
    fn first(&mut self, limit: &'static str) -> bool {
        if self.noted.contains(&limit) {
            return false;
        }
        self.noted.push(limit);
        true
    }
}

/// Checks the bounds that need no queue: run `run`'s `depth` against
/// `limits.max_chain_depth` (set in `config`), then the `started` runs it
/// started against `max_started` (the `max_started_runs` of the grant at
/// `grant`).
pub fn check_bounds(
    run: &str,
    depth: u32,
    limits: RunLimits,
    config: &Path,
    started: usize,
    max_started: u32,
    grant: &Location,
) -> Result<(), StartRefusal> {
    if depth >= limits.max_chain_depth {
        return Err(StartRefusal::ChainDepth {
            run: run.to_string(),
            depth,
            max: limits.max_chain_depth,
            config: config.to_path_buf(),
        });
    }
    if started >= usize::try_from(max_started).unwrap_or(usize::MAX) {
        return Err(StartRefusal::PerRun {
            run: run.to_string(),
            started,
            max: max_started,
            grant: grant.clone(),
        });
    }
    Ok(())
}

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
        let grant = check_target(env.scope(), TargetCall::RunStart { target, plugin })?.grant;
        let Some(starter) = env.starter.clone() else {
            return Err(invalid(
                "starting other plugins needs the agent's run queue: run the agent as a \
                 service (`warden run`), not `warden invoke`",
            ));
        };
        if let Err(refusal) = check_bounds(
            &env.run_id,
            env.depth,
            env.config.runs,
            &env.config.file,
            self.started_runs.len(),
            grant.max_started_runs,
            &grant.source,
        ) {
            return Err(self.refuse(&env, plugin, target, &refusal));
        }
        let params: BTreeMap<String, String> =
            params.into_iter().map(|p| (p.name, p.value)).collect();
        let mut rec = RunRecord::started_by(
            &env.run_id,
            &env.plugin,
            env.depth,
            plugin,
            target,
            params,
            env.dry_run(),
        );
        // The started run's span is a child of this run's (the current
        // span while the plugin runs).
        rec.traceparent = crate::telemetry::current_traceparent();
        let rec = match starter
            .start(rec, env.config.runs.max_queued_per_plugin)
            .await
        {
            Ok(rec) => rec,
            Err(AdmitError::QueueFull {
                plugin: full,
                queued,
                max,
            }) => {
                let refusal = StartRefusal::Queue {
                    plugin: full,
                    queued,
                    max,
                    config: env.config.file.clone(),
                };
                return Err(self.refuse(&env, plugin, target, &refusal));
            }
            Err(e) => {
                return Err(Error::Other(format!(
                    "queueing `{plugin}` on `{target}`: {e}"
                )));
            }
        };
        self.started_runs.push(rec.id.clone());
        Ok(info(&rec))
    }

    /// Counts and records a refused start; the error for the plugin.
    fn refuse(
        &mut self,
        env: &RunEnv,
        plugin: &str,
        target: &str,
        refusal: &StartRefusal,
    ) -> Error {
        let limit = refusal.limit();
        env.metrics.run_start_refused(&env.plugin, limit);
        let message = format!(
            "plugin `{}` may not start `{plugin}` on `{target}`: {refusal}",
            env.plugin
        );
        let line = format!("host: runs.start refused ({limit}): {message}");
        if self.start_refusals.first(limit) {
            tracing::warn!(run = %env.run_id, plugin = %env.plugin, limit, "{message}");
            self.log.push_host("warn", line);
        } else {
            tracing::debug!(run = %env.run_id, plugin = %env.plugin, limit, "{message}");
            self.log.push("warn", line);
        }
        denied(message)
    }

    async fn runs_get(&mut self, id: &str) -> Result<RunInfo, Error> {
        let env = self.run_env()?;
        check_local(Some(&env), LocalCall::RunGet)?;
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn grant_at() -> Location {
        Location {
            file: PathBuf::from("/etc/warden/policies/runbook.toml"),
            line: 7,
        }
    }

    const CONFIG: &str = "/etc/warden/warden.toml";

    fn bounds(
        depth: u32,
        limits: RunLimits,
        started: usize,
        max_started: u32,
    ) -> Result<(), StartRefusal> {
        check_bounds(
            "r1",
            depth,
            limits,
            Path::new(CONFIG),
            started,
            max_started,
            &grant_at(),
        )
    }

    #[test]
    fn depth_is_bounded_for_every_chain() {
        let limits = RunLimits::default();
        assert_eq!(limits.max_chain_depth, 3);
        // Depths 0, 1, 2 may start (their runs get 1, 2, 3); 3 and deeper
        // (a limit lowered while runs were queued) may not.
        for depth in 0..3 {
            assert_eq!(bounds(depth, limits, 0, 10), Ok(()), "depth {depth}");
        }
        for depth in [3, 4, 100] {
            let refusal = bounds(depth, limits, 0, 10).unwrap_err();
            assert_eq!(refusal.limit(), "chain-depth");
            assert_eq!(
                refusal.to_string(),
                format!(
                    "run r1 is at depth {depth} of a chain of runs started by runs, and a run at \
                     depth 3 or deeper may start none (`max_chain_depth = 3` in `[runs]` of \
                     {CONFIG}; default 3)"
                )
            );
        }
        let one = RunLimits {
            max_chain_depth: 1,
            ..limits
        };
        assert_eq!(bounds(0, one, 0, 10), Ok(()));
        assert_eq!(bounds(1, one, 0, 10).unwrap_err().limit(), "chain-depth");
        // Depth is checked first: a deep run that also started too many is
        // refused for its depth.
        assert_eq!(
            bounds(3, limits, 10, 10).unwrap_err().limit(),
            "chain-depth"
        );
    }

    #[test]
    fn each_run_starts_at_most_its_grants_max() {
        let limits = RunLimits::default();
        for started in 0..10 {
            assert_eq!(bounds(0, limits, started, 10), Ok(()), "{started} started");
        }
        for (started, max) in [(10, 10), (11, 10), (1, 1), (1000, 1000)] {
            let refusal = bounds(1, limits, started, max).unwrap_err();
            assert_eq!(refusal.limit(), "per-run");
            assert_eq!(
                refusal.to_string(),
                format!(
                    "run r1 has already started {started} runs, the most one run may start \
                     (`max_started_runs = {max}` in the grant at \
                     /etc/warden/policies/runbook.toml:7; default 10)"
                )
            );
        }
    }

    #[test]
    fn the_queue_of_each_plugin_is_capped() {
        assert_eq!(queue_full("starter", 0, 100), None);
        assert_eq!(queue_full("starter", 99, 100), None);
        for queued in [100, 101, 5000] {
            let Some(AdmitError::QueueFull {
                plugin,
                queued: n,
                max,
            }) = queue_full("starter", queued, 100)
            else {
                panic!("{queued} queued runs should be refused");
            };
            assert_eq!((plugin.as_str(), n, max), ("starter", queued, 100));
            let refusal = StartRefusal::Queue {
                plugin,
                queued: n,
                max,
                config: PathBuf::from(CONFIG),
            };
            assert_eq!(refusal.limit(), "queue");
            assert_eq!(
                refusal.to_string(),
                format!(
                    "`starter` already has {queued} queued runs, the most a run may add to; \
                     nothing was queued (`max_queued_per_plugin = 100` in `[runs]` of \
                     {CONFIG}; default 100)"
                )
            );
        }
        assert!(queue_full("starter", 1, 1).is_some());
    }

    #[test]
    fn each_bound_is_noted_once_for_sure() {
        let mut refusals = Refusals::default();
        assert!(refusals.first("chain-depth"));
        assert!(!refusals.first("chain-depth"));
        assert!(refusals.first("queue"));
        assert!(refusals.first("per-run"));
        assert!(!refusals.first("queue"));
    }
}
