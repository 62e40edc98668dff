//! The plugin folder: every `*.wasm` loaded, and the grants checked against
//! what the plugins ask for.

use crate::diag::{DiagKind, Diagnostic};
use crate::policy::PolicySet;
use crate::runtime::{LoadedPlugin, Runtime};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Loads every `*.wasm` in `dir`, returning the plugins that loaded and a
/// diagnostic ([`DiagKind::Plugin`]) for each one that did not (or that
/// duplicates a name). A file that fails keeps the plugin `previous` had
/// loaded from it, if any (hot reload: the old version stays in force); a
/// file whose digest did not change keeps its loaded plugin.
///
/// Blocking (disk, hashing, compiling): call it off the executor, on a
/// thread that has a tokio runtime (`tokio::task::spawn_blocking`); the
/// plugin's `describe()` runs on that runtime.
pub fn load_plugins(
    runtime: &Runtime,
    dir: &Path,
    previous: &BTreeMap<String, Arc<LoadedPlugin>>,
) -> (BTreeMap<String, Arc<LoadedPlugin>>, Vec<Diagnostic>) {
    let mut plugins: BTreeMap<String, Arc<LoadedPlugin>> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "wasm")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect(),
        Err(e) => {
            problems.push(plugin_diag(
                dir,
                format!("cannot read the plugin folder: {e}"),
            ));
            return (previous.clone(), problems);
        }
    };
    files.sort();
    let handle = tokio::runtime::Handle::try_current();
    for path in files {
        let before = previous.values().find(|p| p.path == path);
        let unchanged = before.filter(|p| {
            std::fs::read(&path)
                .is_ok_and(|bytes| crate::runtime::cache::digest(&bytes) == p.digest)
        });
        let plugin = match unchanged {
            Some(p) => p.clone(),
            None => {
                let loaded = match &handle {
                    Ok(handle) => handle.block_on(runtime.load_file(&path)),
                    Err(e) => Err(anyhow::anyhow!("no tokio runtime to load plugins on: {e}")),
                };
                match loaded {
                    Ok(p) => Arc::new(p),
                    Err(e) => {
                        problems.push(plugin_diag(&path, format!("{e:#}")));
                        match before {
                            Some(p) => p.clone(),
                            None => continue,
                        }
                    }
                }
            }
        };
        if let Some(prev) = plugins.get(&plugin.manifest.name) {
            problems.push(plugin_diag(
                &path,
                format!(
                    "plugin name `{}` is already used by {}",
                    plugin.manifest.name,
                    prev.path.display()
                ),
            ));
        } else {
            plugins.insert(plugin.manifest.name.clone(), plugin);
        }
    }
    (plugins, problems)
}

/// A [`DiagKind::Plugin`] error about `path`.
pub(crate) fn plugin_diag(path: &Path, message: String) -> Diagnostic {
    Diagnostic::new(path, "plugin", message).kind(DiagKind::Plugin)
}

/// Grants that name a plugin that is not installed (errors,
/// [`DiagKind::UnknownPlugin`]), or that give classes the plugin never asks
/// for (warnings, [`DiagKind::WideGrant`]).
pub fn cross_check<P: std::borrow::Borrow<LoadedPlugin>>(
    policies: &PolicySet,
    plugins: &BTreeMap<String, P>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for g in &policies.grants {
        match plugins.get(&g.plugin) {
            None => out.push(
                Diagnostic::new(
                    &g.source.file,
                    "plugin",
                    format!(
                        "no plugin named `{}` is installed (installed: {})",
                        g.plugin,
                        plugins.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
                .with_line(g.source.line)
                .kind(DiagKind::UnknownPlugin),
            ),
            Some(p) => {
                let p: &LoadedPlugin = p.borrow();
                let extra: Vec<&str> = g
                    .classes
                    .iter()
                    .filter(|c| !p.manifest.capabilities.contains(c))
                    .map(|c| c.as_str())
                    .collect();
                if !extra.is_empty() {
                    let message = format!(
                        "grants {} to `{}`, which does not ask for it (it asks for: {})",
                        extra.join(", "),
                        g.plugin,
                        p.manifest
                            .capabilities
                            .iter()
                            .map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    out.push(
                        Diagnostic::new(&g.source.file, "capabilities", message)
                            .with_line(g.source.line)
                            .kind(DiagKind::WideGrant)
                            .warning(),
                    );
                }
            }
        }
    }
    out
}
