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
use std::path::{Path, PathBuf};

pub use warden_model::{
    Action, OnFailure, ParamSpec, ParamType, ParamValue, Severity, Statement, Step, StepKind,
    format_duration,
};

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

    /// What `runbooks.get` gives plugins: the shared model
    /// ([`warden_model::Runbook`]), whose JSON form is the contract (see
    /// `wit/plugin.wit`): the host's header (typed target kind, parsed
    /// matchers, file location) as text, the steps and parameters as they are.
    pub fn to_model(&self) -> warden_model::Runbook {
        warden_model::Runbook {
            name: self.name.clone(),
            description: self.description.clone(),
            severity: self.severity,
            target_kind: self.target_kind.as_str().to_owned(),
            alerts: self.alerts.iter().map(ToString::to_string).collect(),
            max_steps: self.max_steps,
            params: self.params.clone(),
            steps: self.steps.clone(),
            source: self.source.to_string(),
        }
    }
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
