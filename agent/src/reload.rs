//! Hot reload: the plugin and policy folders are watched (`notify`); after
//! a change settles ([`SETTLE`]), everything is loaded again and checked
//! the way start-up does. What fails stays out, with an error log and a
//! `warden_reloads_total{result="rejected"}` count, and the previous
//! version keeps serving:
//! - a policy folder with any error keeps the previous policies (a policy
//!   set is all or nothing);
//! - a plugin that does not load keeps the previous plugin from that file
//!   (if there was one);
//! - a new set whose grants name a plugin that is not installed keeps the
//!   previous policies.
//!
//! The new set is swapped in at once ([`Agent::replace`]); a run in flight
//! keeps the set it started with.

use crate::agent::{Agent, Loaded, cross_check};
use crate::policy::PolicySet;
use crate::runtime::LoadedPlugin;
use notify::{RecursiveMode, Watcher as _};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How long the folders must be quiet before a reload.
pub const SETTLE: Duration = Duration::from_millis(300);

/// Keeps the watcher alive; dropping it stops hot reload.
pub struct Reloader {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Reloader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn relevant(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'));
    !hidden && path.extension().is_some_and(|e| e == "toml" || e == "wasm")
}

impl Reloader {
    /// Watches the agent's folders; `reloaded` is bumped after every
    /// reload that changed what is in force.
    pub fn start(agent: Arc<Agent>, reloaded: watch::Sender<u64>) -> anyhow::Result<Reloader> {
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if let Ok(event) = res
                    && !matches!(event.kind, notify::EventKind::Access(_))
                    && event.paths.iter().any(|p| relevant(p))
                {
                    let _ = tx.send(());
                }
            })?;
        watcher.watch(&agent.config.plugin_dir, RecursiveMode::NonRecursive)?;
        watcher.watch(&agent.config.policy_dir, RecursiveMode::NonRecursive)?;
        let task = tokio::spawn(async move {
            while rx.recv().await.is_some() {
                // Let the change settle: editors and `cp` write in steps.
                loop {
                    tokio::time::sleep(SETTLE).await;
                    let mut more = false;
                    while rx.try_recv().is_ok() {
                        more = true;
                    }
                    if !more {
                        break;
                    }
                }
                if reload(&agent).await {
                    reloaded.send_modify(|n| *n += 1);
                }
            }
        });
        Ok(Reloader {
            _watcher: watcher,
            task,
        })
    }
}

/// Loads the folders again and puts what is valid in force. Returns true if
/// the set in force changed.
pub async fn reload(agent: &Agent) -> bool {
    let old = agent.loaded();
    let config = &agent.config;
    let policies = match PolicySet::load_dir(&config.policy_dir, &config.target_names()) {
        Ok(p) => Some(Arc::new(p)),
        Err(diags) => {
            for d in diags.iter() {
                tracing::error!("policy rejected, the previous policies stay in force: {d}");
            }
            agent.metrics.reload("policy", false);
            None
        }
    };
    let plugins = load_plugins_keeping(agent, &old.plugins).await;
    let candidate = policies.clone().unwrap_or_else(|| old.policies.clone());
    let problems: Vec<_> = cross_check(&candidate, &plugins)
        .into_iter()
        .filter(|d| d.field == "plugin")
        .collect();
    let policies = if problems.is_empty() {
        candidate
    } else {
        for d in &problems {
            tracing::error!("reload rejected, the previous policies stay in force: {d}");
        }
        agent.metrics.reload("policy", false);
        old.policies.clone()
    };
    let still_ok = cross_check(&policies, &plugins)
        .iter()
        .all(|d| d.field != "plugin");
    if !still_ok {
        tracing::error!(
            "reload rejected: the policies in force need a plugin that is gone; nothing changed"
        );
        agent.metrics.reload("plugin", false);
        return false;
    }
    let same_plugins = plugins.len() == old.plugins.len()
        && plugins
            .iter()
            .all(|(n, p)| old.plugins.get(n).is_some_and(|o| o.digest == p.digest));
    let same_policies = Arc::ptr_eq(&policies, &old.policies);
    if same_plugins && same_policies {
        return false;
    }
    if !same_policies {
        agent.metrics.reload("policy", true);
    }
    if !same_plugins {
        agent.metrics.reload("plugin", true);
    }
    tracing::info!(
        plugins = plugins.len(),
        grants = policies.grants.len(),
        schedules = policies.schedules.len(),
        rules = policies.rules.len(),
        "reloaded plugins and policies"
    );
    agent.replace(Loaded { policies, plugins });
    true
}

/// Every `*.wasm` in the plugin folder, loaded; a file that fails keeps the
/// plugin previously loaded from it.
async fn load_plugins_keeping(
    agent: &Agent,
    old: &BTreeMap<String, Arc<LoadedPlugin>>,
) -> BTreeMap<String, Arc<LoadedPlugin>> {
    let dir = &agent.config.plugin_dir;
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| relevant(p) && p.extension().is_some_and(|e| e == "wasm"))
            .collect(),
        Err(e) => {
            tracing::error!(folder = %dir.display(), error = %e, "cannot read the plugin folder; plugins unchanged");
            return old.clone();
        }
    };
    files.sort();
    let mut out: BTreeMap<String, Arc<LoadedPlugin>> = BTreeMap::new();
    for path in files {
        let unchanged = old.values().find(|p| p.path == path).filter(|p| {
            std::fs::read(&path)
                .map(|bytes| crate::runtime::cache::digest(&bytes) == p.digest)
                .unwrap_or(false)
        });
        let plugin = match unchanged {
            Some(p) => p.clone(),
            None => match agent.runtime.load_file(&path).await {
                Ok(p) => Arc::new(p),
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %format!("{e:#}"), "plugin rejected");
                    agent.metrics.reload("plugin", false);
                    match old.values().find(|p| p.path == path) {
                        Some(p) => {
                            tracing::warn!(plugin = %p.manifest.name, "the previous version stays in force");
                            p.clone()
                        }
                        None => continue,
                    }
                }
            },
        };
        if let Some(prev) = out.get(&plugin.manifest.name) {
            tracing::error!(
                file = %path.display(),
                "plugin name `{}` is already used by {}; this file is ignored",
                plugin.manifest.name,
                prev.path.display()
            );
            continue;
        }
        out.insert(plugin.manifest.name.clone(), plugin);
    }
    out
}
