//! The agent configuration, `warden.toml`: where plugins and policies live,
//! where state goes, and the databases (targets) plugins may work on.
//!
//! ```toml
//! plugin_dir = "plugins"
//! policy_dir = "policies"
//!
//! [[target]]
//! name = "app"
//! kind = "postgres"
//! url_env = "APP_DATABASE_URL"
//! # Optional: every read-class call logs in as a role that may only read.
//! read_url_env = "APP_READ_DATABASE_URL"
//!
//! [[target]]
//! name = "quickstart"
//! kind = "sqlite"
//! path = "quickstart.db"
//!
//! [[store]]
//! name = "local"
//! kind = "local"
//! root = "/var/lib/warden/artifacts"
//! ```
//!
//! ```no_run
//! # fn main() -> Result<(), warden::diag::Diagnostics> {
//! let config = warden::config::Config::load("warden.toml".as_ref())?;
//! for target in &config.targets {
//!     println!("{} ({})", target.name, target.kind); // never prints the URL
//!     // The credentials a `read` call uses: the read URL, else the main one.
//!     let _url = target.url_for(warden::capability::CapabilityClass::Read);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Relative paths are relative to the folder of the config file. Loading
//! reports every problem at once (see [`crate::diag`]) and never puts a
//! connection URL, or any part of one, in an error message.
//!
//! Each section has its module, with the section as written (`...File`)
//! and how it is resolved and checked: `target` (`[[target]]`), `http`,
//! `telemetry`, `tools`, `runbooks`, `runs` and `notify` (`[[notify]]`);
//! this module reads the top level and puts the sections together.

pub(crate) mod document;
mod http;
mod notify;
mod runbooks;
mod runs;
mod secret;
pub mod store;
mod target;
mod telemetry;
mod tools;
pub(crate) mod units;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IgnoredAny;
use toml::Spanned;

use crate::diag::{Diagnostic, Diagnostics};
use document::{Document, Table};
use http::HttpFile;
pub use http::{
    DEFAULT_HTTP_HEADER_TIMEOUT, DEFAULT_HTTP_IDLE_TIMEOUT, DEFAULT_HTTP_MAX_BODY,
    DEFAULT_HTTP_MAX_CONNECTIONS, DEFAULT_HTTP_REQUEST_TIMEOUT, HttpConfig,
    MAX_HTTP_MAX_CONNECTIONS,
};
pub use notify::{ApproverConfig, NotifyConfig, NotifyEvent, NotifyKind, read_ca_file};
use runbooks::RunbooksFile;
pub use runs::RunLimits;
use runs::{RunsFile, run_limits};
pub use secret::Secret;
pub(crate) use secret::percent_decode;
use target::TargetFile;
pub use target::{Target, is_valid_target_name};
use telemetry::TelemetryFile;
pub use telemetry::{OtlpConfig, OtlpProtocol};
use tools::ToolsFile;

/// Default `state_db`, relative to the config file's folder.
pub const DEFAULT_STATE_DB: &str = "state/warden.db";
/// Name of the default `cache_dir`, in the folder of `state_db`.
pub const DEFAULT_CACHE_DIR_NAME: &str = "cache";
/// Default `state_keep`: 30 days.
pub const DEFAULT_STATE_KEEP: std::time::Duration =
    std::time::Duration::from_secs(30 * 24 * 60 * 60);

/// The loaded agent configuration; every path is absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The config file itself.
    pub file: PathBuf,
    /// Folder of plugin components (`*.wasm`).
    pub plugin_dir: PathBuf,
    /// Folder of policies (`*.toml`).
    pub policy_dir: PathBuf,
    /// The SQLite state database.
    pub state_db: PathBuf,
    /// How long finished runs and accepted alerts are kept in `state_db`
    /// (see [`crate::runs::retention`]).
    pub state_keep: std::time::Duration,
    /// Cache of compiled components.
    pub cache_dir: PathBuf,
    pub log_format: LogFormat,
    /// In the order of the file; names are unique.
    pub targets: Vec<Target>,
    /// The HTTP API (`warden run`), if `[http]` is set.
    pub http: Option<HttpConfig>,
    /// OTLP trace export, if `[telemetry]` sets an endpoint.
    pub otlp: Option<OtlpConfig>,
    /// Artifact stores (`[[store]]`), in the order of the file; names are unique.
    pub stores: Vec<store::StoreConfig>,
    /// Folder of the PostgreSQL client tools (`pg_dump`, `pg_restore`), from
    /// `[tools] pg_bin_dir`; `None` picks the newest installed.
    pub pg_bin_dir: Option<PathBuf>,
    /// Folder of runbooks (`*.toml`), from `[runbooks] dir`; `None` loads
    /// none.
    pub runbooks_dir: Option<PathBuf>,
    /// Bounds on runs started by runs (`runs.start`), from `[runs]`.
    pub runs: RunLimits,
    /// Where run events are sent (`[[notify]]`), in the order of the file.
    pub notify: Vec<NotifyConfig>,
}

/// One `[[store]]` table: where the host keeps artifacts (backups).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    /// The name policies (`artifacts = [...]` in a grant) and plugins use.
    /// Same rules as a target name. Unique. Required.
    name: Option<Spanned<String>>,
    /// `"local"`: a folder of this host. Required.
    kind: Option<Spanned<StoreKindFile>>,
    /// local: the folder, dedicated to the store. Relative to the folder of
    /// this file. Required for `local`.
    root: Option<Spanned<PathBuf>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StoreKindFile {
    Local,
}

/// How the agent writes its logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `warden.toml` as written. Required fields are `Option`s too, checked by
/// `Table::require`, so that all missing ones are reported.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// Folder holding the plugin components (`*.wasm`). Required. Relative to
    /// the folder of this file.
    plugin_dir: Option<Spanned<PathBuf>>,
    /// Folder holding the policies (`*.toml`; subfolders are ignored, so
    /// examples can live in `policies/examples/`). Required. Relative to the
    /// folder of this file.
    policy_dir: Option<Spanned<PathBuf>>,
    /// The SQLite database where the agent keeps its state (runs, schedules).
    /// Default `"state/warden.db"`, relative to the folder of this file.
    state_db: Option<Spanned<PathBuf>>,
    /// How long `warden run` keeps history in `state_db`: finished runs
    /// (with their reports and logs) and accepted alerts older than this are
    /// deleted, a batch at a time, every few minutes. A duration like
    /// `"30d"` (the default), `"12h"` or `"1y"`; more than zero. Runs still
    /// queued, running or awaiting approval are never deleted. Runs of alert
    /// rules are kept at least as long as the longest `dedup_window`,
    /// `cooldown` and throttle `per` of the policies, whatever this says:
    /// the guardrails are rebuilt from them at start (`warden check` warns
    /// when this is shorter).
    state_keep: Option<Spanned<units::HumanDuration>>,
    /// Folder caching compiled plugin components. Default: `cache` next to
    /// `state_db`. Relative to the folder of this file.
    cache_dir: Option<Spanned<PathBuf>>,
    /// Log format: `"text"` (default) or `"json"`.
    #[serde(default = "default_log_format")]
    log_format: LogFormat,
    /// The databases, as `[[target]]` tables: see `TargetFile`. (They are
    /// read one table at a time; this field only names them for serde.)
    #[serde(default, rename = "target")]
    _target: Option<IgnoredAny>,
    /// `[http]`: see `HttpFile` (read on its own).
    #[serde(default, rename = "http")]
    _http: Option<IgnoredAny>,
    /// `[telemetry]`: see `TelemetryFile` (read on its own).
    #[serde(default, rename = "telemetry")]
    _telemetry: Option<IgnoredAny>,
    /// `[[store]]` tables: see `StoreFile` (read one at a time).
    #[serde(default, rename = "store")]
    _store: Option<IgnoredAny>,
    /// `[tools]`: see `ToolsFile` (read on its own).
    #[serde(default, rename = "tools")]
    _tools: Option<IgnoredAny>,
    /// `[runbooks]`: see `RunbooksFile` (read on its own).
    #[serde(default, rename = "runbooks")]
    _runbooks: Option<IgnoredAny>,
    /// `[runs]`: see `RunsFile` (read on its own).
    #[serde(default, rename = "runs")]
    _runs: Option<IgnoredAny>,
}

const fn default_log_format() -> LogFormat {
    LogFormat::Text
}

impl Config {
    /// Loads and checks `path`, reading connection URLs from the process
    /// environment. Returns every problem found, or the whole config.
    pub fn load(path: &Path) -> Result<Config, Diagnostics> {
        Config::load_with_env(path, |name| std::env::var_os(name))
    }

    /// [`Config::load`] with `env` in place of the process environment.
    pub fn load_with_env(
        path: &Path,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Config, Diagnostics> {
        let file = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let text = fs::read_to_string(&file)
            .map_err(|e| Diagnostic::new(&file, "", format!("cannot read the config file: {e}")))?;
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();

        let mut diags = Diagnostics::new();
        let Some(mut document) = Document::parse(&file, &text, &mut diags) else {
            return Err(diags);
        };
        let targets = document.take_array::<TargetFile>("target", &mut diags);
        let http = document.take_table::<HttpFile>("http", &mut diags);
        let telemetry = document.take_table::<TelemetryFile>("telemetry", &mut diags);
        let stores = document.take_array::<StoreFile>("store", &mut diags);
        let tools = document.take_table::<ToolsFile>("tools", &mut diags);
        let runbooks = document.take_table::<RunbooksFile>("runbooks", &mut diags);
        let runs = document.take_table::<RunsFile>("runs", &mut diags);
        let notify = document.take_array::<notify::NotifyFile>("notify", &mut diags);
        let root = document.finish::<ConfigFile>(&mut diags);

        let resolver = Resolver {
            dir: &dir,
            env: &env,
        };
        let targets = resolver.targets(&targets, &mut diags);
        let http = http.and_then(|t| resolver.http(&t, &mut diags));
        let otlp = telemetry.and_then(|t| resolver.telemetry(&t, &mut diags));
        let stores = resolver.stores(&stores, &mut diags);
        let pg_bin_dir = tools.and_then(|t| resolver.pg_bin_dir(&t));
        let runbooks_dir = runbooks.and_then(|t| resolver.runbooks_dir(&t, &mut diags));
        let runs = runs.map_or_else(RunLimits::default, |t| run_limits(&t, &mut diags));
        let notify = resolver.notifies(&notify, &mut diags);
        let config = root
            .and_then(|root| resolver.config(&root, targets, &mut diags))
            .map(|config| Config {
                http,
                otlp,
                stores,
                pg_bin_dir,
                runbooks_dir,
                runs,
                notify,
                ..config
            });
        diags.sort_by_line();
        match config {
            Some(config) => diags.into_result(config),
            None => Err(diags),
        }
    }

    /// The target called `name`.
    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// The store called `name`.
    pub fn store(&self, name: &str) -> Option<&store::StoreConfig> {
        self.stores.iter().find(|s| s.name == name)
    }

    /// The names of the targets, in order.
    pub fn target_names(&self) -> Vec<&str> {
        self.targets.iter().map(|t| t.name.as_str()).collect()
    }
}

/// Turns the file structs into domain types, checking them.
struct Resolver<'a, E> {
    /// The folder of the config file.
    dir: &'a Path,
    env: &'a E,
}

impl<E: Fn(&str) -> Option<OsString>> Resolver<'_, E> {
    fn config(
        &self,
        root: &Table<'_, ConfigFile>,
        targets: Vec<Target>,
        diags: &mut Diagnostics,
    ) -> Option<Config> {
        let file = &root.value;
        let plugin_dir = root.require("plugin_dir", &file.plugin_dir, diags);
        let policy_dir = root.require("policy_dir", &file.policy_dir, diags);
        let plugin_dir = self.path(root, "plugin_dir", plugin_dir, diags);
        let policy_dir = self.path(root, "policy_dir", policy_dir, diags);
        let state_db = match &file.state_db {
            Some(state_db) => self.path(root, "state_db", Some(state_db), diags)?,
            None => self.dir.join(DEFAULT_STATE_DB),
        };
        let state_keep = match &file.state_keep {
            Some(keep) if keep.get_ref().0.is_zero() => {
                diags.push(root.source.error(
                    &keep.span(),
                    root.field("state_keep"),
                    "must be more than zero (history would be deleted as soon as it is \
                     written); give a duration like \"30d\"",
                ));
                DEFAULT_STATE_KEEP
            }
            Some(keep) => keep.get_ref().0,
            None => DEFAULT_STATE_KEEP,
        };
        let cache_dir = match &file.cache_dir {
            Some(cache_dir) => self.path(root, "cache_dir", Some(cache_dir), diags)?,
            None => state_db
                .parent()
                .unwrap_or(self.dir)
                .join(DEFAULT_CACHE_DIR_NAME),
        };
        Some(Config {
            file: root.source.file.to_path_buf(),
            plugin_dir: plugin_dir?,
            policy_dir: policy_dir?,
            state_db,
            state_keep,
            cache_dir,
            log_format: file.log_format,
            targets,
            http: None,
            otlp: None,
            stores: Vec::new(),
            pg_bin_dir: None,
            runbooks_dir: None,
            runs: RunLimits::default(),
            notify: Vec::new(),
        })
    }

    /// `path` resolved against the config folder; reports an empty path.
    fn path(
        &self,
        root: &Table<'_, ConfigFile>,
        field: &str,
        path: Option<&Spanned<PathBuf>>,
        diags: &mut Diagnostics,
    ) -> Option<PathBuf> {
        let path = path?;
        if path.get_ref().as_os_str().is_empty() {
            diags.push(
                root.source
                    .error(&path.span(), root.field(field), "must not be empty"),
            );
            return None;
        }
        Some(self.dir.join(path.get_ref()))
    }

    fn stores(
        &self,
        tables: &[Table<'_, StoreFile>],
        diags: &mut Diagnostics,
    ) -> Vec<store::StoreConfig> {
        use store::{StoreConfig, StoreKind};
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut stores = Vec::new();
        for table in tables {
            let file = &table.value;
            let name = table.require("name", &file.name, diags);
            let kind = table.require("kind", &file.kind, diags);
            let (Some(name), Some(kind)) = (name, kind) else {
                continue;
            };
            let store_kind = match kind.get_ref() {
                StoreKindFile::Local => {
                    let Some(root) = table.require("root", &file.root, diags) else {
                        continue;
                    };
                    StoreKind::Local {
                        root: self.dir.join(root.get_ref()),
                    }
                }
            };
            let store = StoreConfig {
                name: name.get_ref().clone(),
                kind: store_kind,
            };
            if let Err(problem) = store.validate() {
                let field = if problem.contains("root") {
                    "root"
                } else {
                    "name"
                };
                let span = match (field, &file.root) {
                    ("root", Some(root)) => root.span(),
                    _ => name.span(),
                };
                diags.push(table.source.error(&span, table.field(field), problem));
                continue;
            }
            if let Some(line) = seen.get(&store.name) {
                diags.push(table.source.error(
                    &name.span(),
                    table.field("name"),
                    format!(
                        "store `{}` is already defined at line {line}; store names must be unique",
                        store.name
                    ),
                ));
                continue;
            }
            seen.insert(store.name.clone(), table.source.line(&name.span()));
            stores.push(store);
        }
        stores
    }
}

#[cfg(test)]
mod tests;
