//! `[[grant]]`: what a plugin may do on which targets, within which limits.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Location;
use super::fields::DEFAULT_APPROVAL_TTL;
use crate::capability::CapabilityClass;
use crate::config::document::Table;
use crate::config::units::{HumanDuration, HumanSize, format_size};
use crate::diag::Diagnostics;

/// One `[[grant]]` table of a policy file. Required fields are `Option`s
/// too, checked by `Table::require`, so that all missing ones are reported.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GrantFile {
    /// The plugin this grant is for, like `"vacuum"`: lowercase letters,
    /// digits and `-`, starting with a letter. Required.
    plugin: Option<Spanned<String>>,
    /// The targets the plugin may work on: names of `[[target]]`s in
    /// `warden.toml`. Required, at least one. A plugin may have one grant
    /// per target.
    targets: Option<Spanned<Vec<Spanned<String>>>>,
    /// What the plugin may do on those targets, any of `"read"`,
    /// `"maintenance"`, `"ddl"`, `"write"` and `"session-control"`.
    /// Required, at least one. Anything not listed is denied.
    capabilities: Option<Spanned<Vec<Spanned<CapabilityClass>>>>,
    /// Longest a run of the plugin may take, like `"5m"`. Default `"60s"`.
    max_runtime: Option<Spanned<HumanDuration>>,
    /// Most memory the plugin may use, like `"64MiB"`. Default `"64MiB"`;
    /// at most `"4GiB"`.
    memory: Option<Spanned<HumanSize>>,
    /// Longest one statement may run on the database, like `"30s"`.
    /// Default `"30s"`.
    statement_timeout: Option<Spanned<HumanDuration>>,
    /// Longest one statement may wait for a lock, like `"5s"`. Default
    /// `"5s"`.
    lock_timeout: Option<Spanned<HumanDuration>>,
    /// Most rows one query may return to the plugin. Default `10000`.
    max_rows: Option<u32>,
    /// Most bytes one query result may take, like `"16MiB"`. Default
    /// `"16MiB"`.
    max_result_bytes: Option<Spanned<HumanSize>>,
    /// Every run of the plugin on these targets waits for an approval.
    /// Default `false`.
    require_approval: Option<bool>,
    /// How long a run waits for approval, like `"1h"`. Default `"24h"`.
    approval_ttl: Option<Spanned<HumanDuration>>,
    /// Artifact stores (`[[store]]` names in `warden.toml`) the plugin may
    /// dump these targets into, and list, verify, restore and delete their
    /// artifacts in. Default none: no artifacts capability.
    artifacts: Option<Vec<Spanned<String>>>,
    /// Targets the artifacts of these targets may be restored into (of the
    /// same kind; a scratch database for restore tests, say). A restore
    /// replaces what is there. Default none.
    restore_to: Option<Vec<Spanned<String>>>,
    /// Server log files on this host the plugin may read through these
    /// targets (`warden:plugin/logs`): absolute paths of files, or of
    /// directories ending in `/` (the files directly in them, not in
    /// subdirectories). Default none: no log file is readable.
    log_files: Option<Vec<Spanned<String>>>,
    /// With `session-control`: `sessions.signal-backend` / `sessions.kill-op`
    /// may also signal superuser sessions and non-client backends
    /// (PostgreSQL), internal operations and operations on the `admin`,
    /// `local` and `config` databases (MongoDB). The agent's own sessions
    /// stay refused. Default `false`.
    allow_privileged_sessions: Option<Spanned<bool>>,
    /// Plugins this plugin may start on these targets through the agent's
    /// queue (`warden:plugin/runs`), each run under its own grant. Default
    /// none.
    run_plugins: Option<Vec<Spanned<String>>>,
    /// Most runs one run of the plugin may start (`runs.start`), counted
    /// by the host per run across all targets: a start through this grant
    /// is refused once the run has started this many. Needs `run_plugins`.
    /// 1 to 1000; default 10.
    max_started_runs: Option<Spanned<i64>>,
}

/// Permission for one plugin to work on one target. A `[[grant]]` listing several
/// targets gives one `Grant` per target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub plugin: String,
    pub target: String,
    /// The capability classes allowed; anything else is denied.
    pub classes: BTreeSet<CapabilityClass>,
    pub max_runtime: Duration,
    pub memory_bytes: u64,
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
    pub max_rows: u32,
    pub max_result_bytes: u64,
    /// Every run waits for an approval.
    pub require_approval: bool,
    /// How long a run waits for approval.
    pub approval_ttl: Duration,
    /// Stores the plugin may keep these targets' artifacts in.
    pub artifacts: BTreeSet<String>,
    /// Targets these targets' artifacts may be restored into.
    pub restore_to: BTreeSet<String>,
    /// Log files (and directories of them) the plugin may read.
    pub log_files: BTreeSet<LogPath>,
    /// The sessions capability may signal privileged sessions (superusers,
    /// background and replication backends, internal MongoDB operations).
    pub allow_privileged_sessions: bool,
    /// Plugins this plugin may start on this target (`runs.start`).
    pub run_plugins: BTreeSet<String>,
    /// Most runs one run of the plugin may start in all; a start through
    /// this grant is refused once the run has started this many.
    pub max_started_runs: u32,
    /// The `[[grant]]` this comes from.
    pub source: Location,
}

impl Grant {
    /// Default `max_runtime`: 60s.
    pub const fn default_max_runtime() -> Duration {
        Duration::from_secs(60)
    }

    /// Default `memory`: 64MiB.
    pub const fn default_memory_bytes() -> u64 {
        64 << 20
    }

    /// Largest `memory`: 4GiB (a 32-bit WebAssembly memory).
    pub const fn max_memory_bytes() -> u64 {
        4 << 30
    }

    /// Default `statement_timeout`: 30s.
    pub const fn default_statement_timeout() -> Duration {
        Duration::from_secs(30)
    }

    /// Default `lock_timeout`: 5s.
    pub const fn default_lock_timeout() -> Duration {
        Duration::from_secs(5)
    }

    /// Default `max_rows`: 10000.
    pub const fn default_max_rows() -> u32 {
        10_000
    }

    /// Default `max_result_bytes`: 16MiB.
    pub const fn default_max_result_bytes() -> u64 {
        16 << 20
    }

    /// Default `approval_ttl`: 24h.
    pub const fn default_approval_ttl() -> Duration {
        DEFAULT_APPROVAL_TTL
    }

    /// Default `max_started_runs`: 10.
    pub const fn default_max_started_runs() -> u32 {
        10
    }

    /// Largest `max_started_runs`: 1000.
    pub const fn max_max_started_runs() -> u32 {
        1000
    }

    /// True if the grant allows `class`.
    pub fn allows(&self, class: CapabilityClass) -> bool {
        self.classes.contains(&class)
    }
}

/// One entry of a grant's `log_files`: an absolute, normalized path (no
/// `.` or `..` segments, no empty segment), as written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogPath {
    /// This file (`"/var/log/mongodb/mongod.log"`).
    File(PathBuf),
    /// Every file directly in this directory, written with a trailing `/`
    /// (`"/var/log/mongodb/"`); not the files of its subdirectories.
    Dir(PathBuf),
}

impl LogPath {
    /// Parses one entry; the error says what is wrong with it.
    pub fn parse(entry: &str) -> Result<LogPath, String> {
        if !entry.starts_with('/') {
            return Err(format!(
                "{entry:?} is not an absolute path: log files are named from the root, like \
                 \"/var/log/mongodb/mongod.log\" (or a directory, \"/var/log/mongodb/\")"
            ));
        }
        if entry.contains('\0') {
            return Err(format!("{entry:?} contains a NUL byte"));
        }
        let dir = entry.len() > 1 && entry.ends_with('/');
        let body = entry.trim_end_matches('/');
        if body
            .split('/')
            .skip(1)
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        {
            return Err(format!(
                "{entry:?} is not a normalized path: no empty, `.` or `..` segments"
            ));
        }
        if body.is_empty() {
            // `/`: the files directly in the root directory.
            return Ok(LogPath::Dir(PathBuf::from("/")));
        }
        Ok(if dir {
            LogPath::Dir(PathBuf::from(body))
        } else {
            LogPath::File(PathBuf::from(body))
        })
    }

    /// The path as written (without the directory's trailing `/`).
    pub fn path(&self) -> &Path {
        match self {
            LogPath::File(p) | LogPath::Dir(p) => p,
        }
    }

    /// True when `path` (absolute and normalized) is this file, or a file
    /// directly in this directory, comparing paths as they are written
    /// (see [`LogPath::covers`] for resolved paths).
    pub fn covers_as_written(&self, path: &Path) -> bool {
        match self {
            LogPath::File(file) => path == file,
            LogPath::Dir(dir) => path.parent() == Some(dir.as_path()),
        }
    }

    /// True when `path` is covered by this entry as written or by this
    /// entry with its symlinks resolved (a granted `/var/log/mongodb/`
    /// that is a link to `/data/log/` also covers `/data/log/mongod.log`).
    /// Resolving stats the granted path: call it off the async executor.
    pub fn covers(&self, path: &Path) -> bool {
        if self.covers_as_written(path) {
            return true;
        }
        let Ok(real) = std::fs::canonicalize(self.path()) else {
            return false;
        };
        match self {
            LogPath::File(_) => path == real,
            LogPath::Dir(_) => path.parent() == Some(real.as_path()),
        }
    }
}

impl std::fmt::Display for LogPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogPath::File(p) => write!(f, "{}", p.display()),
            LogPath::Dir(p) if p.as_os_str() == "/" => f.write_str("/"),
            LogPath::Dir(p) => write!(f, "{}/", p.display()),
        }
    }
}

/// True for `[a-z][a-z0-9-]*`.
pub fn is_valid_plugin_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A [`Grant`] with where its target is named, for checks across grants.
pub(super) struct Expanded {
    pub(super) grant: Grant,
    /// The span of the entry in `targets`.
    pub(super) span: Range<usize>,
    /// The field path of that entry, like `grant[0].targets[1]`.
    pub(super) field: String,
}

/// Checks one `[[grant]]` and expands it into one [`Grant`] per known
/// target. Reports every problem; the grants returned are only meaningful
/// if none was reported.
pub(super) fn expand(
    table: &Table<'_, GrantFile>,
    known_targets: &[&str],
    diags: &mut Diagnostics,
) -> Vec<Expanded> {
    let file = &table.value;
    let source = table.source;
    let plugin = table.require("plugin", &file.plugin, diags);
    let targets = table.require("targets", &file.targets, diags);
    let capabilities = table.require("capabilities", &file.capabilities, diags);

    if let Some(plugin) = plugin
        && !is_valid_plugin_name(plugin.get_ref())
    {
        diags.push(source.error(
            &plugin.span(),
            table.field("plugin"),
            format!(
                "invalid plugin name {:?}: use lowercase letters, digits and `-`, starting with \
                 a letter",
                plugin.get_ref()
            ),
        ));
    }

    if let Some(capabilities) = capabilities
        && capabilities.get_ref().is_empty()
    {
        let all: Vec<String> = CapabilityClass::ALL
            .iter()
            .map(|c| format!("`{c}`"))
            .collect();
        diags.push(source.error(
            &capabilities.span(),
            table.field("capabilities"),
            format!(
                "lists no capabilities: grant at least one of {}",
                all.join(", ")
            ),
        ));
    }

    let duration = |value: &Option<Spanned<HumanDuration>>,
                    name: &str,
                    default: Duration,
                    diags: &mut Diagnostics| {
        let Some(value) = value else {
            return default;
        };
        let HumanDuration(duration) = *value.get_ref();
        if duration.is_zero() {
            diags.push(source.error(
                &value.span(),
                table.field(name),
                "must be greater than zero",
            ));
        }
        duration
    };
    let max_runtime = duration(
        &file.max_runtime,
        "max_runtime",
        Grant::default_max_runtime(),
        diags,
    );
    let statement_timeout = duration(
        &file.statement_timeout,
        "statement_timeout",
        Grant::default_statement_timeout(),
        diags,
    );
    let lock_timeout = duration(
        &file.lock_timeout,
        "lock_timeout",
        Grant::default_lock_timeout(),
        diags,
    );
    let approval_ttl = duration(
        &file.approval_ttl,
        "approval_ttl",
        Grant::default_approval_ttl(),
        diags,
    );
    let require_approval = file.require_approval.unwrap_or(false);

    let memory_bytes = match &file.memory {
        None => Grant::default_memory_bytes(),
        Some(memory) => {
            let HumanSize(bytes) = *memory.get_ref();
            if bytes == 0 {
                diags.push(source.error(
                    &memory.span(),
                    table.field("memory"),
                    "must be greater than zero",
                ));
            } else if bytes > Grant::max_memory_bytes() {
                diags.push(source.error(
                    &memory.span(),
                    table.field("memory"),
                    format!(
                        "{} is more than the limit of {}",
                        format_size(bytes),
                        format_size(Grant::max_memory_bytes())
                    ),
                ));
            }
            bytes
        }
    };
    let max_result_bytes = file
        .max_result_bytes
        .as_ref()
        .map_or(Grant::default_max_result_bytes(), |size| size.get_ref().0);
    let max_rows = file.max_rows.unwrap_or(Grant::default_max_rows());
    let artifacts: BTreeSet<String> = file
        .artifacts
        .iter()
        .flatten()
        .map(|s| s.get_ref().clone())
        .collect();
    let mut restore_to = BTreeSet::new();
    for (i, dest) in file.restore_to.iter().flatten().enumerate() {
        let name = dest.get_ref();
        if known_targets.contains(&name.as_str()) {
            restore_to.insert(name.clone());
        } else {
            diags.push(source.error(
                &dest.span(),
                format!("{}[{i}]", table.field("restore_to")),
                format!("unknown target {name:?}: {}", known_list(known_targets)),
            ));
        }
    }
    let mut log_files = BTreeSet::new();
    for (i, entry) in file.log_files.iter().flatten().enumerate() {
        match LogPath::parse(entry.get_ref()) {
            Ok(path) => {
                log_files.insert(path);
            }
            Err(message) => diags.push(source.error(
                &entry.span(),
                format!("{}[{i}]", table.field("log_files")),
                message,
            )),
        }
    }

    let mut run_plugins = BTreeSet::new();
    for (i, name) in file.run_plugins.iter().flatten().enumerate() {
        let text = name.get_ref();
        let valid = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if valid {
            run_plugins.insert(text.clone());
        } else {
            diags.push(source.error(
                &name.span(),
                format!("{}[{i}]", table.field("run_plugins")),
                format!("{text:?} is not a plugin name ([a-z0-9_-], 1 to 64 characters)"),
            ));
        }
    }

    let max_started_runs = match &file.max_started_runs {
        None => Grant::default_max_started_runs(),
        Some(value) => {
            let max = Grant::max_max_started_runs();
            match u32::try_from(*value.get_ref()) {
                Ok(n) if (1..=max).contains(&n) => {
                    if file.run_plugins.as_ref().is_none_or(Vec::is_empty) {
                        diags.push(source.error(
                            &value.span(),
                            table.field("max_started_runs"),
                            "has no effect without `run_plugins`: list the plugins this plugin \
                             may start, or remove this field",
                        ));
                    }
                    n
                }
                _ => {
                    diags.push(source.error(
                        &value.span(),
                        table.field("max_started_runs"),
                        format!(
                            "{} is out of range: use 1 to {max} (default {}); to let the \
                             plugin start no runs, remove `run_plugins`",
                            value.get_ref(),
                            Grant::default_max_started_runs()
                        ),
                    ));
                    Grant::default_max_started_runs()
                }
            }
        }
    };

    let allow_privileged_sessions = match &file.allow_privileged_sessions {
        None => false,
        Some(flag) => {
            let on = *flag.get_ref();
            let session_control = capabilities.is_some_and(|c| {
                c.get_ref()
                    .iter()
                    .any(|c| *c.get_ref() == CapabilityClass::SessionControl)
            });
            if on && capabilities.is_some() && !session_control {
                diags.push(source.error(
                    &flag.span(),
                    table.field("allow_privileged_sessions"),
                    "has no effect without `session-control` in `capabilities`: add it, or \
                     remove this field",
                ));
            }
            on
        }
    };

    let Some(targets) = targets else {
        return Vec::new();
    };
    if targets.get_ref().is_empty() {
        diags.push(source.error(
            &targets.span(),
            table.field("targets"),
            format!(
                "lists no targets: name at least one; {}",
                known_list(known_targets)
            ),
        ));
    }
    let mut known = Vec::new();
    for (i, target) in targets.get_ref().iter().enumerate() {
        let name = target.get_ref();
        let field = format!("{}[{i}]", table.field("targets"));
        if known_targets.contains(&name.as_str()) {
            known.push((target, field));
        } else {
            diags.push(source.error(
                &target.span(),
                field,
                format!("unknown target {name:?}: {}", known_list(known_targets)),
            ));
        }
    }

    let (Some(plugin), Some(capabilities)) = (plugin, capabilities) else {
        return Vec::new();
    };
    let classes: BTreeSet<CapabilityClass> = capabilities
        .get_ref()
        .iter()
        .map(|c| *c.get_ref())
        .collect();
    let location = Location {
        file: source.file.to_path_buf(),
        line: source.line(&table.span),
    };
    known
        .into_iter()
        .map(|(target, field)| Expanded {
            grant: Grant {
                plugin: plugin.get_ref().clone(),
                target: target.get_ref().clone(),
                classes: classes.clone(),
                max_runtime,
                memory_bytes,
                statement_timeout,
                lock_timeout,
                max_rows,
                max_result_bytes,
                require_approval,
                approval_ttl,
                artifacts: artifacts.clone(),
                restore_to: restore_to.clone(),
                log_files: log_files.clone(),
                allow_privileged_sessions,
                run_plugins: run_plugins.clone(),
                max_started_runs,
                source: location.clone(),
            },
            span: target.span(),
            field,
        })
        .collect()
}

/// "the config defines `a`, `b`" for messages.
pub(super) fn known_list(known_targets: &[&str]) -> String {
    if known_targets.is_empty() {
        return "the config defines no targets (add `[[target]]` tables to warden.toml)".to_owned();
    }
    let names: Vec<String> = known_targets.iter().map(|t| format!("`{t}`")).collect();
    format!("the config defines {}", names.join(", "))
}
