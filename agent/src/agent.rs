//! The agent: config, policies, plugins, the runtime and the state database
//! brought together, and the one path every run takes ([`Agent::invoke`]).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use warden::agent::{Agent, RunRequest};
//! let agent = Agent::load(std::path::Path::new("warden.toml")).await?;
//! let record = agent.invoke(RunRequest::manual("vacuum", "quickstart")).await?;
//! println!("{} {}", record.id, record.status);
//! # Ok(()) }
//! ```

use crate::capability::TargetKind;
use crate::config::Config;
use crate::diag::{DiagKind, Diagnostic, Diagnostics};
use crate::host::bindings::types as wit;
use crate::host::{RunEnv, permission};
use crate::policy::PolicySet;
use crate::runs::{
    Approval, ApprovalState, Blame, RunError, RunRecord, RunStatus, RunStore, Trigger,
};
use crate::runtime::Runtime;
use crate::secrets::Redactor;
use crate::telemetry::{self, Metrics};
use anyhow::Context as _;
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument as _;

/// A request to run a plugin once.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub plugin: String,
    pub target: String,
    pub params: BTreeMap<String, String>,
    pub dry_run: bool,
    pub trigger: Trigger,
}

impl RunRequest {
    /// A manual run with no parameters.
    pub fn manual(plugin: &str, target: &str) -> RunRequest {
        RunRequest {
            plugin: plugin.to_string(),
            target: target.to_string(),
            params: BTreeMap::new(),
            dry_run: false,
            trigger: Trigger::Manual {
                by: std::env::var("USER").unwrap_or_else(|_| "cli".to_string()),
            },
        }
    }

    pub fn param(mut self, key: &str, value: &str) -> RunRequest {
        self.params.insert(key.to_string(), value.to_string());
        self
    }

    pub fn dry_run(mut self, dry_run: bool) -> RunRequest {
        self.dry_run = dry_run;
        self
    }
}

pub use crate::load::Loaded;

/// Everything the agent loaded.
pub struct Agent {
    pub config: Arc<Config>,
    loaded: ArcSwap<Loaded>,
    pub runtime: Runtime,
    pub store: RunStore,
    pub redactor: Arc<Redactor>,
    pub metrics: Metrics,
    /// Where runs started by plugins (`runs.start`) go: the dispatch
    /// layer's admission, once the agent runs as a service. Empty for
    /// `warden invoke`.
    pub starter: std::sync::OnceLock<Arc<dyn crate::host::runs::RunStarter>>,
    /// Where run events go (`[[notify]]`), once the agent runs as a
    /// service. Empty for `warden invoke`.
    pub notifier: std::sync::OnceLock<crate::notify::Notifier>,
    /// "Now" for the guardrails, the queue, plan expiry and schedules
    /// ([`crate::clock`]); the system clock unless a test sets another.
    pub clock: crate::clock::SharedClock,
}

/// The redactor for every target's credentials.
pub fn redactor_for(config: &Config) -> Redactor {
    let api_token = config.http.iter().map(|h| h.token.expose().to_string());
    let otlp_headers = config
        .otlp
        .iter()
        .flat_map(|o| o.headers.iter().map(|(_, v)| v.expose().to_string()));
    Redactor::new(
        config
            .targets
            .iter()
            .flat_map(crate::config::Target::password_fragments)
            .chain(api_token)
            .chain(otlp_headers),
    )
}

/// Config, policies, runbooks and plugins loaded and cross-checked, with
/// every problem found: what `warden check` reports and what the agent
/// starts from.
pub struct Inspection {
    pub config: Config,
    pub runtime: Runtime,
    /// What loaded ([`crate::load::load`] from nothing: a part with an error
    /// is empty).
    pub loaded: Loaded,
    /// Every problem: errors keep the agent from starting, warnings are
    /// worth a look (a grant wider than a plugin asks for).
    pub diagnostics: Diagnostics,
}

/// Loads config, policies, runbooks and plugins, collecting every problem.
/// Fails outright only when the config itself cannot be read or the engine
/// cannot start.
pub async fn inspect(config_path: &Path) -> Result<Inspection, Diagnostics> {
    inspect_config(Config::load(config_path)?).await
}

/// [`inspect`] for a config already loaded: [`crate::load::load`], off the
/// executor.
pub async fn inspect_config(config: Config) -> Result<Inspection, Diagnostics> {
    let cache_dir = config.cache_dir.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let runtime = Runtime::new(&config.cache_dir).map_err(|e| {
            Diagnostics(vec![
                Diagnostic::new(&config.cache_dir, "plugin", format!("{e:#}"))
                    .kind(DiagKind::Startup),
            ])
        })?;
        let found = crate::load::load(&config, &runtime, &Loaded::default());
        Ok(Inspection {
            config,
            runtime,
            loaded: found.loaded,
            diagnostics: found.diagnostics,
        })
    })
    .await;
    joined.unwrap_or_else(|e| {
        Err(Diagnostics(vec![
            Diagnostic::new(cache_dir, "", format!("loading failed: {e}")).kind(DiagKind::Startup),
        ]))
    })
}

impl Agent {
    /// Loads config, policies and plugins and opens the state database.
    /// Every problem is reported at once; nothing starts half-loaded.
    pub async fn load(config_path: &Path) -> Result<Agent, Diagnostics> {
        Agent::from_config(Config::load(config_path)?).await
    }

    /// [`Agent::load`] for a config already loaded. Refuses on any error
    /// [`inspect_config`] finds; logs its warnings.
    pub async fn from_config(config: Config) -> Result<Agent, Diagnostics> {
        let Inspection {
            config,
            runtime,
            loaded,
            diagnostics,
        } = inspect_config(config).await?;
        let (mut errors, warnings): (Vec<_>, Vec<_>) =
            diagnostics.into_iter().partition(Diagnostic::is_error);
        for w in &warnings {
            tracing::warn!("{w}");
        }
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }
        let store = match RunStore::open(&config.state_db).await {
            Ok(s) => s,
            Err(e) => {
                errors.push(
                    Diagnostic::new(&config.state_db, "state_db", format!("{e:#}"))
                        .kind(DiagKind::Startup),
                );
                return Err(Diagnostics(errors));
            }
        };
        Ok(Agent {
            redactor: Arc::new(redactor_for(&config)),
            config: Arc::new(config),
            loaded: ArcSwap::from_pointee(loaded),
            runtime,
            store,
            metrics: Metrics::new(),
            starter: std::sync::OnceLock::new(),
            notifier: std::sync::OnceLock::new(),
            clock: crate::clock::system(),
        })
    }

    /// Sends `rec`'s event (awaiting approval, ended) to the `[[notify]]`
    /// that want it; never waits.
    pub fn notify(&self, rec: &RunRecord) {
        if let Some(n) = self.notifier.get() {
            n.run_event(rec);
        }
    }

    /// Sets the metrics that describe the state database rather than this
    /// process: `warden_last_success_timestamp_seconds` and
    /// `warden_last_run_failed` from the records (so a restart does not make
    /// a backup look stale, never done or fixed) and
    /// `warden_approvals_pending`. Called at start.
    pub async fn restore_metrics(&self) -> anyhow::Result<()> {
        for (plugin, target, at) in self.store.last_successes().await? {
            self.metrics
                .run_succeeded(&plugin, &target, unix_seconds(at));
        }
        for (plugin, target, status) in self.store.last_outcomes().await? {
            self.metrics
                .run_outcome(&plugin, &target, status.is_failure());
        }
        self.refresh_approvals_metric().await
    }

    /// `warden_approvals_pending` from the state database (each scrape
    /// calls this: approvals are decided and expire in several places).
    pub async fn refresh_approvals_metric(&self) -> anyhow::Result<()> {
        let n = self.store.count(RunStatus::AwaitingApproval).await?;
        self.metrics
            .set_approvals_pending(i64::try_from(n).unwrap_or(i64::MAX));
        Ok(())
    }

    /// The policies and plugins in force now.
    pub fn loaded(&self) -> Arc<Loaded> {
        self.loaded.load_full()
    }

    /// The policies in force now.
    pub fn policies(&self) -> Arc<PolicySet> {
        self.loaded.load().policies.clone()
    }

    /// Puts a new set of policies and plugins in force; runs in flight keep
    /// the set they started with.
    pub fn replace(&self, loaded: Loaded) {
        self.loaded.store(Arc::new(loaded));
    }

    /// How long a plan for `rec` may wait for approval, if its rule,
    /// schedule or grant requires approval and it is not a dry run
    /// already. The real run after an approval needs none.
    pub fn approval_ttl(&self, rec: &RunRecord) -> Option<std::time::Duration> {
        if rec.dry_run
            || rec
                .approval
                .as_ref()
                .is_some_and(|a| a.state == ApprovalState::Approved)
        {
            return None;
        }
        let loaded = self.loaded();
        let policies = &loaded.policies;
        let origin = match &rec.trigger {
            Trigger::Alert { rule, .. } => policies
                .rule(rule)
                .filter(|r| r.require_approval)
                .map(|r| r.approval_ttl),
            Trigger::Schedule { name } => policies
                .schedule(name)
                .filter(|s| s.require_approval)
                .map(|s| s.approval_ttl),
            Trigger::Manual { .. } => None,
        };
        let grant = policies
            .grant(&rec.plugin, &rec.target)
            .filter(|g| g.require_approval)
            .map(|g| g.approval_ttl);
        match (origin, grant) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Turns a request that needs approval into the dry run that makes its
    /// plan. Returns true if it did.
    pub fn plan_first_if_required(&self, rec: &mut RunRecord) -> bool {
        let Some(ttl) = self.approval_ttl(rec) else {
            return false;
        };
        rec.dry_run = true;
        rec.approval = Some(Approval::new(ApprovalState::Planning, ttl.as_secs()));
        true
    }

    /// Runs a plugin once, now, and records the run. Every request gets a
    /// record, also when it is rejected or denied before the plugin
    /// starts. A request whose grant requires approval runs as the dry run
    /// that makes its plan, and waits (`awaiting-approval`).
    pub async fn invoke(&self, req: RunRequest) -> anyhow::Result<RunRecord> {
        let mut record = RunRecord::new(
            &req.plugin,
            &req.target,
            req.trigger,
            req.params,
            req.dry_run,
        );
        self.plan_first_if_required(&mut record);
        self.execute(record).await
    }

    /// Runs a request now (no queue, no guardrails) and saves its final
    /// record.
    pub async fn execute(&self, record: RunRecord) -> anyhow::Result<RunRecord> {
        let record = self.run_record(record).await?;
        let id = record.id.clone();
        self.store
            .save(&record)
            .await
            .with_context(|| format!("recording run {id}"))?;
        Ok(record)
    }

    /// Runs a request now and returns its final record, which the caller
    /// saves (the run queue saves it with a retry in one transaction). The
    /// `running` state is saved here.
    pub async fn run_record(&self, mut record: RunRecord) -> anyhow::Result<RunRecord> {
        let loaded = self.loaded();
        let started = chrono::Utc::now();
        record.status = RunStatus::Running;
        record.started_at = started;
        record.ended_at = None;
        let refuse = |mut record: RunRecord, status: RunStatus, message: String| {
            record.status = status;
            record.ended_at = Some(chrono::Utc::now());
            record.error = Some(RunError {
                blame: Blame::Request,
                kind: if status == RunStatus::Denied {
                    "access-denied".into()
                } else {
                    "invalid-input".into()
                },
                message,
            });
            record
        };
        let Some(plugin) = loaded.plugins.get(&record.plugin).cloned() else {
            let known: Vec<&str> = loaded.plugins.keys().map(String::as_str).collect();
            let message = format!(
                "no plugin named `{}` (installed: {})",
                record.plugin,
                known.join(", ")
            );
            return Ok(self.finished(refuse(record, RunStatus::Rejected, message)));
        };
        record.digest = plugin.digest.clone();
        record.plugin_version = plugin.manifest.version.clone();
        // The same lookups the host's permission decision makes, with the
        // messages of a refused request (what is configured, where grants go).
        let Ok(target) = permission::lookup(&self.config, &record.target) else {
            let known: Vec<&str> = self
                .config
                .targets
                .iter()
                .map(|t| t.name.as_str())
                .collect();
            let message = format!(
                "no target named `{}` (configured: {})",
                record.target,
                known.join(", ")
            );
            return Ok(self.finished(refuse(record, RunStatus::Rejected, message)));
        };
        if !plugin.manifest.target_kinds.contains(&target.kind) {
            let message = format!(
                "plugin `{}` does not support {} targets (it supports: {})",
                record.plugin,
                target.kind,
                plugin
                    .manifest
                    .target_kinds
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return Ok(self.finished(refuse(record, RunStatus::Rejected, message)));
        }
        let scope = permission::Scope {
            plugin: &record.plugin,
            config: &self.config,
            policies: &loaded.policies,
        };
        let Ok(grant) = permission::grant(scope, &record.target) else {
            let message = format!(
                "plugin `{}` has no grant for target `{}` (deny by default: add a [[grant]] in {})",
                record.plugin,
                record.target,
                self.config.policy_dir.display()
            );
            return Ok(self.finished(refuse(record, RunStatus::Denied, message)));
        };
        let params = match plugin.manifest.resolve_params(&record.params) {
            Ok(p) => p,
            Err(errors) => {
                let message = errors.join("; ");
                return Ok(self.finished(refuse(record, RunStatus::Rejected, message)));
            }
        };
        let span = telemetry::run_span(
            &record.id,
            &record.plugin,
            &plugin.digest,
            &record.target,
            record.trigger.kind(),
        );
        if let Some(parent) = &record.traceparent {
            telemetry::set_parent_from_traceparent(&span, Some(parent), None);
        }
        record.trace_id = telemetry::span_trace_id(&span);
        // The real run of an approved plan may make only the plan's calls:
        // without the plan it does not start.
        let approved_plan =
            match crate::runs::approvals::ApprovedPlan::for_run(&self.store, &record).await {
                Ok(plan) => plan.map(Arc::new),
                Err(e) => {
                    record.status = RunStatus::Failed;
                    record.ended_at = Some(chrono::Utc::now());
                    record.error = Some(RunError {
                        blame: Blame::Host,
                        kind: crate::runs::approvals::PLAN_NO_LONGER_HOLDS.into(),
                        message: format!("the approved plan could not be read: {e:#}"),
                    });
                    return Ok(self.finished(record));
                }
            };
        self.store.save(&record).await?;
        let id = record.id.clone();
        let env = Arc::new(RunEnv {
            run_id: id.clone(),
            plugin: record.plugin.clone(),
            invocation: wit::Invocation {
                run_id: id.clone(),
                trigger: to_wit_trigger(&record.trigger),
                target: record.target.clone(),
                target_kind: match target.kind {
                    TargetKind::Sqlite => wit::TargetKind::Sqlite,
                    TargetKind::Postgres => wit::TargetKind::Postgres,
                    TargetKind::Mongodb => wit::TargetKind::Mongodb,
                },
                params: params
                    .iter()
                    .map(|(k, v)| wit::Param {
                        name: k.clone(),
                        value: v.clone(),
                    })
                    .collect(),
                dry_run: record.dry_run,
            },
            config: self.config.clone(),
            policies: loaded.policies.clone(),
            runbooks: loaded.runbooks.clone(),
            starter: self.starter.get().cloned(),
            depth: record.depth,
            metrics: self.metrics.clone(),
            store: self.store.clone(),
            redactor: self.redactor.clone(),
            deadline: Instant::now() + grant.max_runtime,
            max_runtime: grant.max_runtime,
            approved: !record.dry_run
                && record
                    .approval
                    .as_ref()
                    .is_some_and(|a| a.state == ApprovalState::Approved),
            approved_plan,
        });
        let memory = usize::try_from(grant.memory_bytes).unwrap_or(usize::MAX);
        let outcome = self
            .runtime
            .execute(&plugin, env, memory)
            .instrument(span.clone())
            .await;
        span.record("warden.run.status", outcome.status.as_str());
        if outcome.status != RunStatus::Succeeded {
            telemetry::mark_error(&span, outcome.status.as_str());
        }
        if !outcome.state_writes.is_empty()
            && let Err(e) = self
                .store
                .state_commit(&record.plugin, outcome.state_writes)
                .await
        {
            tracing::error!(run = %id, error = %e, "committing plugin state failed");
        }
        record.status = outcome.status;
        record.report = outcome.report;
        record.error = outcome.error;
        record.actions = outcome.actions;
        record.logs = outcome.logs;
        record.logs_dropped = outcome.logs_dropped;
        // Inside the run's span: the log line carries its trace and span ids.
        Ok(span.in_scope(|| self.finished(record)))
    }

    /// Stamps the end of a run, moves a finished plan to `awaiting-approval`,
    /// counts it and logs it.
    fn finished(&self, mut record: RunRecord) -> RunRecord {
        let now = chrono::Utc::now();
        record.ended_at = Some(now);
        if let Some(approval) = &mut record.approval
            && approval.state == ApprovalState::Planning
        {
            let planned = record
                .actions
                .iter()
                .any(|a| a.state == crate::runs::ActionState::Planned);
            if record.status == RunStatus::Succeeded && !planned {
                // Nothing would change: nothing to approve, no wait.
                approval.state = ApprovalState::NotNeeded;
                approval.reason = Some("the plan has no actions: nothing to approve".into());
            } else if record.status == RunStatus::Succeeded {
                record.status = RunStatus::AwaitingApproval;
                approval.state = ApprovalState::Pending;
                approval.expires_at = Some(
                    now + chrono::Duration::seconds(
                        i64::try_from(approval.ttl_secs).unwrap_or(i64::MAX / 1000),
                    ),
                );
            } else {
                approval.state = ApprovalState::Rejected;
                approval.reason = Some("the dry run that makes the plan did not succeed".into());
            }
        }
        let duration = (now - record.started_at).to_std().unwrap_or_default();
        self.metrics.run_finished(
            &record.plugin,
            &record.target,
            record.status.as_str(),
            duration,
        );
        // A dry run did nothing: it is no success of the plugin's work, and
        // the numbers it reports are about what it would have done.
        if !record.dry_run {
            if record.status == RunStatus::Succeeded {
                self.metrics
                    .run_succeeded(&record.plugin, &record.target, unix_seconds(now));
                self.metrics
                    .run_outcome(&record.plugin, &record.target, false);
            } else if record.status.is_failure() {
                self.metrics
                    .run_outcome(&record.plugin, &record.target, true);
            }
            if let Some(report) = &record.report {
                self.metrics.plugin_report(
                    &record.plugin,
                    &record.target,
                    report
                        .metrics
                        .iter()
                        .map(|m| (m.name.as_str(), m.unit.as_str(), m.value)),
                );
            }
        }
        tracing::info!(
            run = %record.id,
            plugin = %record.plugin,
            target = %record.target,
            status = %record.status,
            "run finished"
        );
        record
    }
}

/// `at` as Unix seconds with the fraction.
pub(crate) fn unix_seconds(at: chrono::DateTime<chrono::Utc>) -> f64 {
    at.timestamp() as f64 + f64::from(at.timestamp_subsec_micros()) / 1e6
}

fn labels(m: &BTreeMap<String, String>) -> Vec<wit::Label> {
    m.iter()
        .map(|(k, v)| wit::Label {
            name: k.clone(),
            value: v.clone(),
        })
        .collect()
}

fn to_wit_trigger(t: &Trigger) -> wit::Trigger {
    match t {
        Trigger::Manual { by } => wit::Trigger::Manual(by.clone()),
        Trigger::Schedule { name } => wit::Trigger::Schedule(name.clone()),
        Trigger::Alert {
            rule: _,
            status,
            labels: l,
            annotations,
            fingerprint,
            starts_at,
        } => wit::Trigger::Alert(wit::Alert {
            status: status.clone(),
            labels: labels(l),
            annotations: labels(annotations),
            fingerprint: fingerprint.clone(),
            starts_at: starts_at.clone(),
        }),
    }
}
