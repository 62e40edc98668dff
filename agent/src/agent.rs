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
use crate::diag::{Diagnostic, Diagnostics};
use crate::host::RunEnv;
use crate::policy::PolicySet;
use crate::runs::{Blame, RunError, RunRecord, RunStatus, RunStore, Trigger};
use crate::runtime::bindings::types as wit;
use crate::runtime::{LoadedPlugin, Runtime};
use crate::secrets::Redactor;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

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

/// Everything the agent loaded.
pub struct Agent {
    pub config: Arc<Config>,
    pub policies: Arc<PolicySet>,
    pub plugins: BTreeMap<String, LoadedPlugin>,
    pub runtime: Runtime,
    pub store: RunStore,
    pub redactor: Arc<Redactor>,
}

/// Loads every `*.wasm` in `dir`, returning the plugins that loaded and a
/// diagnostic for each one that did not (or that duplicates a name).
pub async fn load_plugins(
    runtime: &Runtime,
    dir: &Path,
) -> (BTreeMap<String, LoadedPlugin>, Vec<Diagnostic>) {
    let mut plugins: BTreeMap<String, LoadedPlugin> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .collect(),
        Err(e) => {
            problems.push(plugin_diag(
                dir,
                format!("cannot read the plugin folder: {e}"),
            ));
            return (plugins, problems);
        }
    };
    files.sort();
    for path in files {
        match runtime.load_file(&path).await {
            Ok(p) => {
                if let Some(prev) = plugins.get(&p.manifest.name) {
                    problems.push(plugin_diag(
                        &path,
                        format!(
                            "plugin name `{}` is already used by {}",
                            p.manifest.name,
                            prev.path.display()
                        ),
                    ));
                } else {
                    plugins.insert(p.manifest.name.clone(), p);
                }
            }
            Err(e) => problems.push(plugin_diag(&path, format!("{e:#}"))),
        }
    }
    (plugins, problems)
}

fn plugin_diag(path: &Path, message: String) -> Diagnostic {
    Diagnostic {
        file: path.to_path_buf(),
        line: None,
        column: None,
        field: "plugin".to_string(),
        message,
    }
}

/// Grants that name a plugin that is not installed, or that give classes the
/// plugin never asks for.
pub fn cross_check(
    policies: &PolicySet,
    plugins: &BTreeMap<String, LoadedPlugin>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for g in &policies.grants {
        match plugins.get(&g.plugin) {
            None => out.push(Diagnostic {
                file: g.source.file.clone(),
                line: Some(g.source.line),
                column: None,
                field: "plugin".to_string(),
                message: format!(
                    "no plugin named `{}` is installed (installed: {})",
                    g.plugin,
                    plugins.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            }),
            Some(p) => {
                let extra: Vec<&str> = g
                    .classes
                    .iter()
                    .filter(|c| !p.manifest.capabilities.contains(c))
                    .map(|c| c.as_str())
                    .collect();
                if !extra.is_empty() {
                    out.push(Diagnostic {
                        file: g.source.file.clone(),
                        line: Some(g.source.line),
                        column: None,
                        field: "capabilities".to_string(),
                        message: format!(
                            "grants {} to `{}`, which does not ask for it (it asks for: {})",
                            extra.join(", "),
                            g.plugin,
                            p.manifest
                                .capabilities
                                .iter()
                                .map(|c| c.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                }
            }
        }
    }
    out
}

/// The redactor for every target's credentials.
pub fn redactor_for(config: &Config) -> Redactor {
    Redactor::new(
        config
            .targets
            .iter()
            .flat_map(|t| t.url.password_fragments()),
    )
}

/// Config, policies and plugins loaded and cross-checked, with every
/// problem found: what `warden check` reports and what the agent starts from.
pub struct Inspection {
    pub config: Config,
    /// `None` when a policy file has errors (they are in `errors`).
    pub policies: Option<PolicySet>,
    pub runtime: Runtime,
    pub plugins: BTreeMap<String, LoadedPlugin>,
    /// Problems that keep the agent from starting.
    pub errors: Vec<Diagnostic>,
    /// Problems worth a look that do not (a grant wider than a plugin asks for).
    pub warnings: Vec<Diagnostic>,
}

/// Loads config, policies and plugins, collecting every problem. Fails
/// outright only when the config itself cannot be read or the engine
/// cannot start.
pub async fn inspect(config_path: &Path) -> Result<Inspection, Diagnostics> {
    inspect_config(Config::load(config_path)?).await
}

/// [`inspect`] for a config already loaded.
pub async fn inspect_config(config: Config) -> Result<Inspection, Diagnostics> {
    let mut errors = Vec::new();
    let target_names: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
    let policies = match PolicySet::load_dir(&config.policy_dir, &target_names) {
        Ok(p) => Some(p),
        Err(d) => {
            errors.extend(d.0);
            None
        }
    };
    let runtime = Runtime::new(&config.cache_dir)
        .map_err(|e| Diagnostics(vec![plugin_diag(&config.cache_dir, format!("{e:#}"))]))?;
    let (plugins, plugin_problems) = load_plugins(&runtime, &config.plugin_dir).await;
    errors.extend(plugin_problems);
    let mut warnings = Vec::new();
    if let Some(p) = &policies {
        for d in cross_check(p, &plugins) {
            if d.field == "plugin" {
                errors.push(d);
            } else {
                warnings.push(d);
            }
        }
    }
    Ok(Inspection {
        config,
        policies,
        runtime,
        plugins,
        errors,
        warnings,
    })
}

impl Agent {
    /// Loads config, policies and plugins and opens the state database.
    /// Every problem is reported at once; nothing starts half-loaded.
    pub async fn load(config_path: &Path) -> Result<Agent, Diagnostics> {
        Agent::from_config(Config::load(config_path)?).await
    }

    /// [`Agent::load`] for a config already loaded.
    pub async fn from_config(config: Config) -> Result<Agent, Diagnostics> {
        let Inspection {
            config,
            policies,
            runtime,
            plugins,
            mut errors,
            warnings,
        } = inspect_config(config).await?;
        for w in &warnings {
            tracing::warn!("{w}");
        }
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }
        let store = match RunStore::open(&config.state_db).await {
            Ok(s) => s,
            Err(e) => {
                errors.push(Diagnostic {
                    file: config.state_db.clone(),
                    line: None,
                    column: None,
                    field: "state_db".to_string(),
                    message: format!("{e:#}"),
                });
                return Err(Diagnostics(errors));
            }
        };
        let Some(policies) = policies else {
            return Err(Diagnostics(errors));
        };
        Ok(Agent {
            redactor: Arc::new(redactor_for(&config)),
            config: Arc::new(config),
            policies: Arc::new(policies),
            plugins,
            runtime,
            store,
        })
    }

    /// Runs a plugin once and records the run. Every request gets a record,
    /// also when it is rejected or denied before the plugin starts.
    pub async fn invoke(&self, req: RunRequest) -> anyhow::Result<RunRecord> {
        let id = uuid::Uuid::now_v7().to_string();
        let started = chrono::Utc::now();
        let mut record = RunRecord {
            id: id.clone(),
            plugin: req.plugin.clone(),
            digest: String::new(),
            plugin_version: String::new(),
            target: req.target.clone(),
            trigger: req.trigger.clone(),
            params: req.params.clone(),
            dry_run: req.dry_run,
            status: RunStatus::Running,
            started_at: started,
            ended_at: None,
            report: None,
            error: None,
            actions: Vec::new(),
            logs: Vec::new(),
            logs_dropped: 0,
        };
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
        let Some(plugin) = self.plugins.get(&req.plugin) else {
            let known: Vec<&str> = self.plugins.keys().map(String::as_str).collect();
            let rec = refuse(
                record,
                RunStatus::Rejected,
                format!(
                    "no plugin named `{}` (installed: {})",
                    req.plugin,
                    known.join(", ")
                ),
            );
            self.store.save(&rec).await?;
            return Ok(rec);
        };
        record.digest = plugin.digest.clone();
        record.plugin_version = plugin.manifest.version.clone();
        let Some(target) = self.config.target(&req.target) else {
            let known: Vec<&str> = self
                .config
                .targets
                .iter()
                .map(|t| t.name.as_str())
                .collect();
            let rec = refuse(
                record,
                RunStatus::Rejected,
                format!(
                    "no target named `{}` (configured: {})",
                    req.target,
                    known.join(", ")
                ),
            );
            self.store.save(&rec).await?;
            return Ok(rec);
        };
        if !plugin.manifest.target_kinds.contains(&target.kind) {
            let rec = refuse(
                record,
                RunStatus::Rejected,
                format!(
                    "plugin `{}` does not support {} targets (it supports: {})",
                    req.plugin,
                    target.kind,
                    plugin
                        .manifest
                        .target_kinds
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            self.store.save(&rec).await?;
            return Ok(rec);
        }
        let Some(grant) = self.policies.grant(&req.plugin, &req.target) else {
            let rec = refuse(
                record,
                RunStatus::Denied,
                format!(
                    "plugin `{}` has no grant for target `{}` (deny by default: add a [[grant]] in {})",
                    req.plugin,
                    req.target,
                    self.config.policy_dir.display()
                ),
            );
            self.store.save(&rec).await?;
            return Ok(rec);
        };
        let params = match plugin.manifest.resolve_params(&req.params) {
            Ok(p) => p,
            Err(errors) => {
                let rec = refuse(record, RunStatus::Rejected, errors.join("; "));
                self.store.save(&rec).await?;
                return Ok(rec);
            }
        };
        self.store.save(&record).await?;
        let env = Arc::new(RunEnv {
            run_id: id.clone(),
            plugin: req.plugin.clone(),
            invocation: wit::Invocation {
                run_id: id.clone(),
                trigger: to_wit_trigger(&req.trigger),
                target: req.target.clone(),
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
                dry_run: req.dry_run,
            },
            config: self.config.clone(),
            policies: self.policies.clone(),
            store: self.store.clone(),
            redactor: self.redactor.clone(),
            deadline: Instant::now() + grant.max_runtime,
            max_runtime: grant.max_runtime,
        });
        let memory = usize::try_from(grant.memory_bytes).unwrap_or(usize::MAX);
        let span = tracing::info_span!(
            "run",
            run.id = %id,
            warden.plugin = %req.plugin,
            warden.plugin.digest = %plugin.digest,
            warden.target = %req.target,
            warden.trigger = req.trigger.kind(),
        );
        let outcome = {
            let _g = span.enter();
            self.runtime.execute(plugin, env, memory).await
        };
        if !outcome.state_writes.is_empty()
            && let Err(e) = self
                .store
                .state_commit(&req.plugin, outcome.state_writes)
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
        record.ended_at = Some(chrono::Utc::now());
        self.store
            .save(&record)
            .await
            .with_context(|| format!("recording run {id}"))?;
        tracing::info!(
            run = %id,
            plugin = %req.plugin,
            target = %req.target,
            status = %record.status,
            "run finished"
        );
        Ok(record)
    }
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
