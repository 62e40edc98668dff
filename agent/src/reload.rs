//! Hot reload: the plugin, policy and runbook folders are watched (`notify`); after
//! a change settles ([`SETTLE`]), everything is loaded again by the one loader
//! ([`crate::load`], as `warden check` and start-up do). What fails stays
//! out, with an error log and a
//! `warden_reloads_total{result="rejected"}` count, and the previous
//! version keeps serving:
//! - a policy folder with any error keeps the previous policies (a policy
//!   set is all or nothing);
//! - a plugin that does not load keeps the previous plugin from that file
//!   (if there was one);
//! - a new set whose grants name a plugin that is not installed keeps the
//!   previous policies;
//! - a runbook folder with any error keeps the previous runbooks (a
//!   runbook set is all or nothing too).
//!
//! The new set is swapped in at once ([`Agent::replace`]); a run in flight
//! keeps the set it started with.
//!
//! SIGHUP ([`on_sighup`]) reloads the folders at once, the same way, and
//! reads `warden.toml` again. The config file itself is **not** swapped in
//! a running agent: targets, stores, `[http]`, `[telemetry]`, `[runs]` and
//! the paths take effect at the next start. SIGHUP checks the file the way
//! start-up would and logs either its problems (file, line, field; the
//! running config stays, `warden_reloads_total{kind="config",
//! result="rejected"}`) or which of its parts changed and that a restart
//! applies them, so an operator knows before restarting whether the new
//! file is good.

use crate::agent::{Agent, Loaded};
use crate::config::Config;
use crate::diag::DiagKind;
use crate::load::load;
use notify::{RecursiveMode, Watcher as _};
use std::path::Path;
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
        if let Some(dir) = &agent.config.runbooks_dir {
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
        }
        #[cfg(unix)]
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let task = tokio::spawn(async move {
            loop {
                #[cfg(unix)]
                let hup = tokio::select! {
                    changed = rx.recv() => match changed {
                        Some(()) => false,
                        None => break,
                    },
                    _ = hangup.recv() => true,
                };
                #[cfg(not(unix))]
                let hup = match rx.recv().await {
                    Some(()) => false,
                    None => break,
                };
                if hup {
                    if on_sighup(&agent).await {
                        reloaded.send_modify(|n| *n += 1);
                    }
                    continue;
                }
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

/// SIGHUP: [`reload`] now, and `warden.toml` checked again (see the module
/// documentation: it is not swapped in). Returns true if the set in force
/// changed.
pub async fn on_sighup(agent: &Arc<Agent>) -> bool {
    tracing::info!("SIGHUP: reloading plugins, policies and runbooks, checking the config file");
    let changed = reload(agent).await;
    let file = &agent.config.file;
    match Config::load(file) {
        Err(diags) => {
            for d in diags.iter() {
                tracing::error!("config file rejected, the running config stays: {d}");
            }
            agent.metrics.reload("config", false);
        }
        Ok(new) if new == *agent.config => {
            tracing::info!(file = %file.display(), "config file unchanged");
        }
        Ok(new) => {
            let parts = changed_parts(&agent.config, &new);
            tracing::warn!(
                file = %file.display(),
                changed = %parts.join(", "),
                "config file changed and is valid; its settings take effect when the agent restarts \
                 (systemctl restart warden), the running config stays until then"
            );
        }
    }
    changed
}

/// The parts of the config that differ, by their name in `warden.toml`.
fn changed_parts(old: &Config, new: &Config) -> Vec<String> {
    let mut parts = Vec::new();
    let mut names: Vec<&str> = old.targets.iter().map(|t| t.name.as_str()).collect();
    names.extend(new.targets.iter().map(|t| t.name.as_str()));
    names.sort_unstable();
    names.dedup();
    for name in names {
        let a = old.targets.iter().find(|t| t.name == name);
        let b = new.targets.iter().find(|t| t.name == name);
        match (a, b) {
            (Some(a), Some(b)) if a == b => {}
            (Some(_), Some(_)) => parts.push(format!("target {name:?} changed")),
            (Some(_), None) => parts.push(format!("target {name:?} removed")),
            (None, _) => parts.push(format!("target {name:?} added")),
        }
    }
    let mut differ = |name: &str, same: bool| {
        if !same {
            parts.push(name.to_string());
        }
    };
    differ("[[store]]", old.stores == new.stores);
    differ("[http]", old.http == new.http);
    differ("[telemetry]", old.otlp == new.otlp);
    differ("[runs]", old.runs == new.runs);
    differ("[tools]", old.pg_bin_dir == new.pg_bin_dir);
    differ("[runbooks]", old.runbooks_dir == new.runbooks_dir);
    differ(
        "paths (plugin_dir, policy_dir, state_db, cache_dir)",
        (
            &old.plugin_dir,
            &old.policy_dir,
            &old.state_db,
            &old.cache_dir,
        ) == (
            &new.plugin_dir,
            &new.policy_dir,
            &new.state_db,
            &new.cache_dir,
        ),
    );
    if parts.is_empty() {
        parts.push("other settings".to_string());
    }
    parts
}

/// Loads the folders again ([`crate::load::load`], off the executor) and
/// puts what is valid in force. Returns true if the set in force changed.
pub async fn reload(agent: &Arc<Agent>) -> bool {
    let old = agent.loaded();
    let found = {
        let agent = agent.clone();
        let old = old.clone();
        tokio::task::spawn_blocking(move || load(&agent.config, &agent.runtime, &old)).await
    };
    let found = match found {
        Ok(found) => found,
        Err(e) => {
            tracing::error!("reload failed, nothing changed: {e}");
            return false;
        }
    };
    for d in found.diagnostics.errors() {
        match d.kind {
            DiagKind::Policy => {
                tracing::error!("policy rejected, the previous policies stay in force: {d}");
            }
            DiagKind::Runbook => {
                tracing::error!("runbook rejected, the previous runbooks stay in force: {d}");
            }
            DiagKind::Plugin => {
                tracing::error!("plugin rejected, a previous version (if any) stays in force: {d}");
                agent.metrics.reload("plugin", false);
            }
            DiagKind::UnknownPlugin => {
                tracing::error!("reload rejected, the previous policies stay in force: {d}");
            }
            _ => {}
        }
    }
    if found.diagnostics.has_error(DiagKind::Policy) {
        agent.metrics.reload("policy", false);
    }
    if found.diagnostics.has_error(DiagKind::Runbook) {
        agent.metrics.reload("runbook", false);
    }
    if found.diagnostics.has_error(DiagKind::UnknownPlugin) {
        agent.metrics.reload("policy", false);
    }
    if found.diagnostics.has_error(DiagKind::PluginGone) {
        tracing::error!(
            "reload rejected: the policies in force need a plugin that is gone; nothing changed"
        );
        agent.metrics.reload("plugin", false);
        return false;
    }
    let Loaded {
        policies,
        plugins,
        runbooks,
    } = found.loaded;
    let same_plugins = plugins.len() == old.plugins.len()
        && plugins
            .iter()
            .all(|(n, p)| old.plugins.get(n).is_some_and(|o| o.digest == p.digest));
    let same_policies = Arc::ptr_eq(&policies, &old.policies);
    let same_runbooks = Arc::ptr_eq(&runbooks, &old.runbooks);
    if same_plugins && same_policies && same_runbooks {
        return false;
    }
    if !same_policies {
        agent.metrics.reload("policy", true);
    }
    if !same_runbooks {
        agent.metrics.reload("runbook", true);
    }
    if !same_plugins {
        agent.metrics.reload("plugin", true);
    }
    tracing::info!(
        plugins = plugins.len(),
        grants = policies.grants.len(),
        schedules = policies.schedules.len(),
        rules = policies.rules.len(),
        runbooks = runbooks.len(),
        "reloaded plugins, policies and runbooks"
    );
    agent.replace(Loaded {
        policies,
        plugins,
        runbooks,
    });
    true
}
