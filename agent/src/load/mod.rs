//! The one loader behind `warden check`, agent start and hot reload: the
//! policy, runbook and plugin folders of a [`Config`] loaded, cross-checked
//! and judged by one rule ([`load`]).
//!
//! Every problem comes back as a [`Diagnostic`]; what is fatal is decided
//! by its severity and [`DiagKind`], here and nowhere else:
//! - `warden check` prints every diagnostic;
//! - the agent does not start on any error;
//! - hot reload puts in force each part ([`Loaded`]'s policies, runbooks,
//!   plugins) that has no error and keeps the previous value of each part
//!   that has one (a plugin file that does not load keeps its previous
//!   version, if any; see [`plugins::load_plugins`]).
//!
//! [`load`] blocks (disk I/O, hashing and compiling components): callers in
//! async code run it with `tokio::task::spawn_blocking`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use warden::{agent::Loaded, config::Config, load::load, runtime::Runtime};
//! let config = Config::load("warden.toml".as_ref())?;
//! let found = tokio::task::spawn_blocking(move || {
//!     let runtime = Runtime::new(&config.cache_dir)?;
//!     anyhow::Ok(load(&config, &runtime, &Loaded::default()))
//! })
//! .await??;
//! for d in &found.diagnostics {
//!     eprintln!("{d}");
//! }
//! # Ok(()) }
//! ```

pub mod plugins;

pub use plugins::{cross_check, load_plugins};

use crate::config::Config;
use crate::diag::{DiagKind, Diagnostic, Diagnostics};
use crate::policy::PolicySet;
use crate::runbook::RunbookSet;
use crate::runtime::{LoadedPlugin, Runtime};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The policies, plugins and runbooks in force. Hot reload swaps the
/// whole set; a run keeps the set it started with until it ends.
#[derive(Debug, Default)]
pub struct Loaded {
    pub policies: Arc<PolicySet>,
    pub plugins: BTreeMap<String, Arc<LoadedPlugin>>,
    /// From `[runbooks] dir` (empty without one).
    pub runbooks: Arc<RunbookSet>,
}

/// What [`load`] found.
#[derive(Debug)]
pub struct Load {
    /// What to put in force: each part as loaded, or `previous`'s where
    /// the part has an error.
    pub loaded: Loaded,
    /// Every problem, errors and warnings, in the order found: policies,
    /// runbooks, plugins, then the policies checked against the config
    /// and the plugins.
    pub diagnostics: Diagnostics,
}

/// Loads the policy, runbook and plugin folders of `config`, checks them
/// against each other, and keeps `previous`'s value of every part with an
/// error (see the module documentation). Start-up and `warden check` pass
/// an empty `previous` ([`Loaded::default`]).
///
/// The rule, per part:
/// - policies: any error in the policy files ([`DiagKind::Policy`]) or a
///   grant naming a plugin that is not installed
///   ([`DiagKind::UnknownPlugin`]) keeps the previous policies;
/// - runbooks: any error ([`DiagKind::Runbook`]) keeps the previous
///   runbooks; a set equal to the previous one keeps the previous value;
/// - plugins: per file (see [`load_plugins`]);
/// - if the policies that stay need a plugin that is gone
///   ([`DiagKind::PluginGone`]), all of `previous` stays.
///
/// Blocking; see the module documentation.
pub fn load(config: &Config, runtime: &Runtime, previous: &Loaded) -> Load {
    let mut diagnostics = Diagnostics::new();
    let new_policies = PolicySet::load_dir(&config.policy_dir, &config.target_names())
        .map_err(|d| d.0)
        .and_then(|p| {
            let problems = p.check_config(config);
            if problems.is_empty() {
                Ok(p)
            } else {
                Err(problems)
            }
        });
    let new_policies = match new_policies {
        Ok(p) => Some(p),
        Err(problems) => {
            diagnostics.extend(problems.into_iter().map(|d| d.kind(DiagKind::Policy)));
            None
        }
    };
    let runbooks = match RunbookSet::load_configured(config) {
        Ok(r) if r == *previous.runbooks => previous.runbooks.clone(),
        Ok(r) => Arc::new(r),
        Err(d) => {
            diagnostics.extend(d.into_iter().map(|d| d.kind(DiagKind::Runbook)));
            previous.runbooks.clone()
        }
    };
    let (plugins, problems) = load_plugins(runtime, &config.plugin_dir, &previous.plugins);
    diagnostics.extend(problems);
    let policies = match new_policies {
        Some(p) => {
            diagnostics.extend(keep_warnings(config, &p));
            let checked = cross_check(&p, &plugins);
            let unknown = checked.iter().any(|d| d.kind == DiagKind::UnknownPlugin);
            diagnostics.extend(checked);
            if unknown {
                previous.policies.clone()
            } else {
                Arc::new(p)
            }
        }
        None => {
            // The previous policies stay: they must still find their plugins.
            diagnostics.extend(
                cross_check(&previous.policies, &plugins)
                    .into_iter()
                    .filter(|d| d.kind == DiagKind::UnknownPlugin),
            );
            previous.policies.clone()
        }
    };
    if Arc::ptr_eq(&policies, &previous.policies) {
        let gone: Vec<Diagnostic> = cross_check(&policies, &plugins)
            .into_iter()
            .filter(|d| d.kind == DiagKind::UnknownPlugin)
            .map(|d| d.kind(DiagKind::PluginGone))
            .collect();
        if !gone.is_empty() {
            diagnostics.extend(gone);
            return Load {
                loaded: Loaded {
                    policies: previous.policies.clone(),
                    plugins: previous.plugins.clone(),
                    runbooks: previous.runbooks.clone(),
                },
                diagnostics,
            };
        }
    }
    Load {
        loaded: Loaded {
            policies,
            plugins,
            runbooks,
        },
        diagnostics,
    }
}

/// Rule windows longer than `state_keep`: retention keeps the runs of
/// rules that long anyway (see [`crate::runs::retention`]), which the
/// operator may not expect. Warnings, [`DiagKind::StateKeep`].
pub fn keep_warnings(config: &Config, policies: &PolicySet) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for rule in &policies.rules {
        for (field, window) in crate::policy::history_windows(rule) {
            if window > config.state_keep {
                let message = format!(
                    "rule `{}`: {field} {} is longer than state_keep {} ({}); runs of \
                     rules are kept {} so that the guardrails see them after a restart",
                    rule.name,
                    humantime::format_duration(window),
                    humantime::format_duration(config.state_keep),
                    config.file.display(),
                    humantime::format_duration(window),
                );
                out.push(
                    Diagnostic::new(&rule.source.file, field, message)
                        .with_line(rule.source.line)
                        .kind(DiagKind::StateKeep)
                        .warning(),
                );
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::path::Path;

    const GRANT: &str =
        "[[grant]]\nplugin = \"vacuum\"\ntargets = [\"db\"]\ncapabilities = [\"read\"]\n";

    fn config(dir: &Path) -> Config {
        for sub in ["plugins", "policies", "state"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let file = dir.join("warden.toml");
        std::fs::write(
            &file,
            "plugin_dir = \"plugins\"\npolicy_dir = \"policies\"\n\n[[target]]\nname = \"db\"\nkind = \"sqlite\"\npath = \"db.sqlite\"\n",
        )
        .unwrap();
        Config::load(&file).unwrap()
    }

    #[tokio::test]
    async fn each_part_with_an_error_keeps_its_previous_value() {
        // As the agent calls it: off the executor, on a runtime's thread.
        tokio::task::spawn_blocking(parts_are_kept).await.unwrap();
    }

    fn parts_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let runtime = Runtime::new(&config.cache_dir).unwrap();

        // Nothing before, no grant: all good, nothing loaded.
        let first = load(&config, &runtime, &Loaded::default());
        assert!(first.diagnostics.is_empty(), "{:?}", first.diagnostics);

        // A grant for a plugin that is not installed: an error, and the
        // previous (empty) policies stay.
        std::fs::write(dir.path().join("policies/a.toml"), GRANT).unwrap();
        let unknown = load(&config, &runtime, &first.loaded);
        let kinds: Vec<DiagKind> = unknown.diagnostics.errors().map(|d| d.kind).collect();
        assert_eq!(
            kinds,
            [DiagKind::UnknownPlugin],
            "{:?}",
            unknown.diagnostics
        );
        assert!(Arc::ptr_eq(
            &unknown.loaded.policies,
            &first.loaded.policies
        ));
        assert_eq!(
            unknown.diagnostics.errors().next().unwrap().to_string(),
            format!(
                "{}:1: plugin: no plugin named `vacuum` is installed (installed: )",
                dir.path().join("policies/a.toml").display()
            )
        );

        // A broken policy file: a policy error, previous policies stay;
        // a broken runbook folder (missing) does not touch the policies.
        std::fs::write(dir.path().join("policies/a.toml"), "[[grant]\n").unwrap();
        let broken = load(&config, &runtime, &first.loaded);
        assert!(
            broken.diagnostics.has_error(DiagKind::Policy),
            "{:?}",
            broken.diagnostics
        );
        assert!(!broken.diagnostics.has_error(DiagKind::UnknownPlugin));
        assert!(Arc::ptr_eq(&broken.loaded.policies, &first.loaded.policies));
        assert!(Arc::ptr_eq(&broken.loaded.runbooks, &first.loaded.runbooks));

        // A plugin file that does not load: a plugin error, and no plugin.
        std::fs::write(dir.path().join("plugins/bad.wasm"), b"not wasm").unwrap();
        std::fs::remove_file(dir.path().join("policies/a.toml")).unwrap();
        let bad = load(&config, &runtime, &first.loaded);
        let kinds: Vec<DiagKind> = bad.diagnostics.errors().map(|d| d.kind).collect();
        assert_eq!(kinds, [DiagKind::Plugin], "{:?}", bad.diagnostics);
        let message = &bad.diagnostics.errors().next().unwrap().message;
        assert!(message.contains("compiling"), "{message}");
        assert!(bad.loaded.plugins.is_empty());
        assert!(!Arc::ptr_eq(&bad.loaded.policies, &first.loaded.policies));
    }
}
