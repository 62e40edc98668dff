//! Runbooks: incident procedures as data, one per `*.toml` file of the
//! folder `[runbooks] dir` of `warden.toml` (the format is
//! `policies/runbooks/README.md`).
//!
//! ```toml
//! [runbook]
//! name = "pg-connection-exhaustion"   # unique across the folder; [a-z0-9-], ≤ 64
//! description = "..."                 # default ""
//! severity = "critical"               # info | warning (default) | critical
//! target_kind = "postgres"            # postgres | mongodb | sqlite; required
//! alerts = ['alertname="PostgresConnectionsHigh"']   # all must match; optional
//! max_steps = 100                     # 1..=1000, default 100
//!
//! [params.idle_minutes]
//! type = "integer"                    # string | integer | number | bool | duration
//! default = 10                        # optional: without one the parameter is required
//! description = "..."
//!
//! [[step]]
//! id = "idle"                         # unique in the file; [a-z0-9_], ≤ 64
//! kind = "query"                      # query | check | action | run_plugin | wait | note
//! sql = "SELECT pid FROM pg_stat_activity WHERE state = 'idle in transaction'"
//! ```
//!
//! Loading checks everything the host can check without running a step:
//! the fields of each kind, durations, defaults against their types,
//! matchers, that every CEL expression parses (with `cel-parser`, the parser
//! of `cel-interpreter`, which the `runbook` plugin evaluates them with) and
//! every template parses (minijinja), and what they refer to: `steps.<id>`
//! must be a step before this one, `params.<name>` a declared parameter,
//! and the only variables are `params`, `alert`, `target` and `steps`.
//! `else`, `goto:<id>` and `refresh` may name any step (`refresh` a `query`
//! step). Every problem names the file, the line, the step (`step[3] (id
//! "end_idle")`) and the field, like the policy loader (see
//! [`crate::diag`]).
//!
//! A folder with any error gives no set at all: at start-up that is a load
//! error; on hot reload the previous set stays in force
//! ([`crate::reload`]).
//!
//! ```no_run
//! # fn main() -> Result<(), warden::diag::Diagnostics> {
//! use std::collections::BTreeMap;
//! let runbooks = warden::runbook::RunbookSet::load_dir("policies/runbooks".as_ref())?;
//! let labels = BTreeMap::from([("alertname".to_owned(), "PostgresConnectionsHigh".to_owned())]);
//! for runbook in runbooks.for_alert(&labels) {
//!     println!("{} ({} steps)", runbook.name, runbook.steps.len());
//! }
//! # Ok(())
//! # }
//! ```

mod file;
mod refs;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::capability::TargetKind;
use crate::config::Config;
use crate::diag::Diagnostics;
use crate::policy::{Location, Matcher};

/// Every runbook of the folder, checked, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunbookSet {
    /// Sorted by name; names are unique.
    runbooks: Vec<Runbook>,
}

/// One runbook file.
#[derive(Debug, Clone, PartialEq)]
pub struct Runbook {
    /// `[a-z0-9-]`, at most 64 characters; unique across the folder.
    pub name: String,
    pub description: String,
    pub severity: Severity,
    /// The kind of target it runs on.
    pub target_kind: TargetKind,
    /// Alertmanager matchers; all must match an alert's labels. None: it
    /// is never chosen by an alert (only by name).
    pub alerts: Vec<Matcher>,
    /// Bound on the steps executed in one run (`goto` loops).
    pub max_steps: u32,
    /// Parameter name to its spec.
    pub params: BTreeMap<String, ParamSpec>,
    /// In file order; ids are unique.
    pub steps: Vec<Step>,
    /// The `[runbook]` table.
    pub source: Location,
}

/// How bad the incident a runbook handles is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    #[default]
    Warning,
    Critical,
}

impl Severity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// A parameter of a runbook.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    pub kind: ParamType,
    /// Of type `kind`; `None`: the parameter is required.
    pub default: Option<ParamValue>,
    pub description: String,
}

/// The type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Integer,
    Number,
    Bool,
    Duration,
}

impl ParamType {
    pub const fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Bool => "bool",
            ParamType::Duration => "duration",
        }
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parameter value (a default), of its [`ParamType`].
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    String(String),
    Integer(i64),
    Number(f64),
    Bool(bool),
    Duration(Duration),
}

impl ParamValue {
    /// As JSON; a duration as a string like `"1m30s"`.
    pub fn to_json(&self) -> Value {
        match self {
            ParamValue::String(s) => json!(s),
            ParamValue::Integer(i) => json!(i),
            ParamValue::Number(n) => json!(n),
            ParamValue::Bool(b) => json!(b),
            ParamValue::Duration(d) => json!(format_duration(*d)),
        }
    }
}

/// One `[[step]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// `[a-z0-9_]`, at most 64 characters; unique in the runbook.
    pub id: String,
    pub title: Option<String>,
    /// CEL guard: the step is skipped when it is false.
    pub when: Option<String>,
    pub timeout: Option<Duration>,
    pub on_failure: OnFailure,
    pub kind: StepKind,
    /// The line of its `[[step]]` header.
    pub line: usize,
}

/// What a step does, with the fields of its kind.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// One read.
    Query(Statement),
    /// `expr` (CEL, a bool); when false, goes to `otherwise` (`else`) if
    /// set, else on.
    Check {
        expr: String,
        otherwise: Option<String>,
    },
    /// A change, executed only in an approved run when `requires_approval`.
    Action {
        action: Action,
        requires_approval: bool,
    },
    /// Queues a run of another plugin; `params` values and `target` are CEL.
    RunPlugin {
        plugin: String,
        params: BTreeMap<String, String>,
        target: Option<String>,
    },
    /// Re-runs the query step `refresh` (if any) every `every` until
    /// `until` (CEL) holds or the step's timeout passes.
    Wait {
        refresh: Option<String>,
        every: Option<Duration>,
        until: String,
    },
    /// A line for the timeline: a minijinja template.
    Note { text: String },
}

impl StepKind {
    /// As written in the file: `query`, `check`, ...
    pub const fn as_str(&self) -> &'static str {
        match self {
            StepKind::Query(_) => "query",
            StepKind::Check { .. } => "check",
            StepKind::Action { .. } => "action",
            StepKind::RunPlugin { .. } => "run_plugin",
            StepKind::Wait { .. } => "wait",
            StepKind::Note { .. } => "note",
        }
    }
}

/// A statement for the target: SQL with CEL `args` bound as `$1, $2, ...`,
/// or a MongoDB command as JSON text.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    Sql {
        sql: String,
        args: Vec<String>,
    },
    Mongo {
        command: String,
        database: Option<String>,
    },
}

/// What an action step does. The strings are CEL expressions giving the
/// list of ids to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// PostgreSQL: `pg_terminate_backend` of each pid.
    Terminate(String),
    /// PostgreSQL: `pg_cancel_backend` of each pid.
    Cancel(String),
    /// MongoDB: `killOp` of each opid.
    KillOps(String),
    /// A mutating statement.
    Statement(Statement),
}

/// What happens when a step fails.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// The run ends (the default).
    #[default]
    Stop,
    /// The next step runs.
    Continue,
    /// This step runs next.
    Goto(String),
}

impl fmt::Display for OnFailure {
    /// As written: `stop`, `continue`, `goto:<id>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OnFailure::Stop => f.write_str("stop"),
            OnFailure::Continue => f.write_str("continue"),
            OnFailure::Goto(id) => write!(f, "goto:{id}"),
        }
    }
}

impl RunbookSet {
    /// Loads every `*.toml` file directly in `dir` (not hidden), in order
    /// of name. A missing folder is an error; an empty one loads nothing.
    pub fn load_dir(dir: &Path) -> Result<RunbookSet, Diagnostics> {
        let files = crate::policy::toml_files(
            dir,
            "runbook",
            "the runbook folder does not exist: create it (an empty folder holds no runbooks) \
             or change `[runbooks] dir` in the config",
        )?;
        RunbookSet::load_files(&files)
    }

    /// Loads the given runbook files, in the order given (a name used twice
    /// is reported at the second).
    pub fn load_files(files: &[PathBuf]) -> Result<RunbookSet, Diagnostics> {
        let mut all = Diagnostics::new();
        let mut names: BTreeMap<String, Location> = BTreeMap::new();
        let mut runbooks = Vec::new();
        for path in files {
            let mut diags = Diagnostics::new();
            if let Some(runbook) = file::read(path, &mut names, &mut diags)
                && diags.is_empty()
            {
                runbooks.push(runbook);
            }
            diags.sort_by_line();
            all.append(&mut diags);
        }
        runbooks.sort_by(|a, b| a.name.cmp(&b.name));
        all.into_result(RunbookSet { runbooks })
    }

    /// The runbooks of `config`'s `[runbooks] dir`; none without one.
    pub fn load_configured(config: &Config) -> Result<RunbookSet, Diagnostics> {
        match &config.runbooks_dir {
            Some(dir) => RunbookSet::load_dir(dir),
            None => Ok(RunbookSet::default()),
        }
    }

    /// The runbook named `name`.
    pub fn get(&self, name: &str) -> Option<&Runbook> {
        self.runbooks
            .binary_search_by(|r| r.name.as_str().cmp(name))
            .ok()
            .and_then(|i| self.runbooks.get(i))
    }

    /// The runbooks whose `alerts` matchers all match `labels` (those
    /// without matchers never match), by name.
    pub fn for_alert(&self, labels: &BTreeMap<String, String>) -> Vec<&Runbook> {
        self.runbooks.iter().filter(|r| r.matches(labels)).collect()
    }

    /// Every runbook, by name.
    pub fn iter(&self) -> std::slice::Iter<'_, Runbook> {
        self.runbooks.iter()
    }

    pub fn len(&self) -> usize {
        self.runbooks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.runbooks.is_empty()
    }
}

impl Runbook {
    /// True if it has matchers and every one matches `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.alerts.is_empty() && self.alerts.iter().all(|m| m.matches(labels))
    }

    /// The step with id `id`.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// What `runbooks.get` gives plugins: `{"name", "description",
    /// "severity", "target_kind", "alerts": [..], "max_steps", "params":
    /// {name: {"type", "default"?, "description"}}, "steps": [{"id",
    /// "kind", ...}], "source": "file:line"}`. Step fields are named as in
    /// the file; optional ones left out are absent, except `on_failure`
    /// (always, as written: `stop`, `continue`, `goto:<id>`) and an
    /// action's `requires_approval` (always, default applied). Durations
    /// are strings like `"30s"` or `"1m30s"`.
    pub fn to_json(&self) -> Value {
        let params: Map<String, Value> = self
            .params
            .iter()
            .map(|(name, spec)| {
                let mut p = Map::new();
                p.insert("type".into(), json!(spec.kind.as_str()));
                if let Some(default) = &spec.default {
                    p.insert("default".into(), default.to_json());
                }
                p.insert("description".into(), json!(spec.description));
                (name.clone(), Value::Object(p))
            })
            .collect();
        json!({
            "name": self.name,
            "description": self.description,
            "severity": self.severity.as_str(),
            "target_kind": self.target_kind.as_str(),
            "alerts": self.alerts.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "max_steps": self.max_steps,
            "params": params,
            "steps": self.steps.iter().map(Step::to_json).collect::<Vec<_>>(),
            "source": self.source.to_string(),
        })
    }
}

impl Step {
    /// One element of `steps` in [`Runbook::to_json`].
    pub fn to_json(&self) -> Value {
        let mut s = Map::new();
        s.insert("id".into(), json!(self.id));
        s.insert("kind".into(), json!(self.kind.as_str()));
        if let Some(title) = &self.title {
            s.insert("title".into(), json!(title));
        }
        if let Some(when) = &self.when {
            s.insert("when".into(), json!(when));
        }
        if let Some(timeout) = self.timeout {
            s.insert("timeout".into(), json!(format_duration(timeout)));
        }
        s.insert("on_failure".into(), json!(self.on_failure.to_string()));
        let statement = |s: &mut Map<String, Value>, st: &Statement| match st {
            Statement::Sql { sql, args } => {
                s.insert("sql".into(), json!(sql));
                s.insert("args".into(), json!(args));
            }
            Statement::Mongo { command, database } => {
                s.insert("mongo".into(), json!(command));
                if let Some(database) = database {
                    s.insert("database".into(), json!(database));
                }
            }
        };
        match &self.kind {
            StepKind::Query(st) => statement(&mut s, st),
            StepKind::Check { expr, otherwise } => {
                s.insert("expr".into(), json!(expr));
                if let Some(otherwise) = otherwise {
                    s.insert("else".into(), json!(otherwise));
                }
            }
            StepKind::Action {
                action,
                requires_approval,
            } => {
                match action {
                    Action::Terminate(e) => {
                        s.insert("terminate".into(), json!(e));
                    }
                    Action::Cancel(e) => {
                        s.insert("cancel".into(), json!(e));
                    }
                    Action::KillOps(e) => {
                        s.insert("kill_ops".into(), json!(e));
                    }
                    Action::Statement(st) => statement(&mut s, st),
                }
                s.insert("requires_approval".into(), json!(requires_approval));
            }
            StepKind::RunPlugin {
                plugin,
                params,
                target,
            } => {
                s.insert("plugin".into(), json!(plugin));
                s.insert("params".into(), json!(params));
                if let Some(target) = target {
                    s.insert("target".into(), json!(target));
                }
            }
            StepKind::Wait {
                refresh,
                every,
                until,
            } => {
                if let Some(refresh) = refresh {
                    s.insert("refresh".into(), json!(refresh));
                }
                if let Some(every) = every {
                    s.insert("every".into(), json!(format_duration(*every)));
                }
                s.insert("until".into(), json!(until));
            }
            StepKind::Note { text } => {
                s.insert("text".into(), json!(text));
            }
        }
        Value::Object(s)
    }
}

/// `d` as a string like `"30s"`, `"1m30s"`, `"1h"`, `"250ms"` or `"0s"`:
/// units `d`, `h`, `m`, `s`, `ms`, `us`, `ns`, largest first, no spaces.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    let parts = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3_600, "h"),
        (secs % 3_600 / 60, "m"),
        (secs % 60, "s"),
        (u64::from(nanos / 1_000_000), "ms"),
        (u64::from(nanos / 1_000 % 1_000), "us"),
        (u64::from(nanos % 1_000), "ns"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect()
}

/// The names of `set`, for messages: `` `a`, `b` `` or "none".
fn known_names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// The declared parameter names, for [`refs`].
type ParamNames = BTreeSet<String>;

#[cfg(test)]
mod tests;
