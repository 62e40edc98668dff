//! Policies: which plugin may do what on which target. Deny by default:
//! without a grant for a (plugin, target) pair, nothing is allowed.
//!
//! Policies are the `*.toml` files directly in the policy folder, read in
//! order of name (subfolders are ignored, so examples can live in
//! `policies/examples/`):
//!
//! ```toml
//! [[grant]]
//! plugin = "vacuum"
//! targets = ["app", "quickstart"]
//! capabilities = ["read", "maintenance"]
//! max_runtime = "5m"
//! require_approval = false   # every run waits for an approval (default false)
//! approval_ttl = "24h"       # how long a run waits for it (default 24h)
//!
//! # Runs a plugin at cron times. Needs a [[grant]] for the plugin and target.
//! [[schedule]]
//! name = "nightly-vacuum"    # unique among schedules: [a-z][a-z0-9_-]*
//! plugin = "vacuum"
//! target = "app"
//! cron = "0 3 * * *"         # 5 fields, or 6 with seconds first ("*/10 * * * * *"), or "@daily"
//! timezone = "Europe/Berlin" # the zone of `cron` (default UTC), DST-correct
//! params = { table = "events", analyze = true }  # strings, numbers, booleans
//! jitter = "30s"             # a random delay up to this before each run (default none)
//! window = { days = ["mon", "tue", "wed", "thu", "fri"], start = "01:00", end = "05:00" }
//! dry_run = false
//! require_approval = false
//! approval_ttl = "24h"
//! retry = { attempts = 3, backoff = "30s", max_backoff = "10m" }
//!
//! # Runs a plugin when an Alertmanager alert matches (all the matchers).
//! [[rule]]
//! name = "dead-tuples"       # unique among rules
//! match = ['alertname="PostgresDeadTuples"', 'severity=~"warning|critical"']
//! plugin = "vacuum"
//! target = "app"             # or `target_label = "instance"`: the alert label naming it
//! params = { table = "{{ labels.table }}", reason = "{{ annotations.summary | default('alert') }}" }
//! on_resolved = "ignore"     # ignore (default) | run | cancel
//! dry_run = false
//! require_approval = false
//! approval_ttl = "24h"
//! dedup_window = "24h"       # the same alert (fingerprint + startsAt) runs once within this
//! cooldown = "10m"           # least time between runs of this rule on one target
//! throttle = { max = 5, per = "10m", group_by = ["cluster"] }
//! circuit_breaker = { max_failures = 3, max_runs = 10, window = "1h", open_for = "15m" }
//! retry = { attempts = 3, backoff = "30s", max_backoff = "10m" }
//! window = { days = ["sat", "sun"], start = "22:00", end = "06:00", timezone = "Europe/Berlin" }
//!
//! # Most runs under way at once: for one of plugin = "...", target = "..." or global = true.
//! [[concurrency]]
//! plugin = "vacuum"
//! max = 2
//! on_limit = "queue"         # queue (default) | skip
//! ```
//!
//! Matchers follow Alertmanager: `=`, `!=`, `=~`, `!~`; regexes match the
//! whole value; a missing label has the empty value; the value may be
//! left unquoted (`severity=critical`). Rule params are
//! [minijinja](https://docs.rs/minijinja) templates over `labels`,
//! `annotations`, `status`, `fingerprint` and `starts_at`; printing a
//! missing label is an error at run time (test it with `{% if %}` or
//! `| default(...)`). A window runs from `start` to `end` on `days` (every
//! day if none); an `end` before `start` crosses midnight, an `end` equal
//! to `start` is the whole day. A schedule or rule whose plugin and target
//! have no `[[grant]]` is an error (for `target_label`, the plugin needs
//! at least one grant), as is a second `[[concurrency]]` for the same
//! scope.
//!
//! ```no_run
//! # fn main() -> Result<(), warden::diag::Diagnostics> {
//! use warden::capability::CapabilityClass;
//! let policies = warden::policy::PolicySet::load_dir("policies".as_ref(), &["app", "quickstart"])?;
//! let allowed = policies
//!     .grant("vacuum", "app")
//!     .is_some_and(|grant| grant.allows(CapabilityClass::Maintenance));
//! # Ok(())
//! # }
//! ```
//!
//! Loading reports every problem in every file at once (see
//! [`crate::diag`]) and gives either the whole set or nothing.
//!
//! To add a kind of table (say `[[schedule]]`): a module like `grant` with
//! its `ScheduleFile` and domain type, a field in `PolicyFile` naming it, one
//! `take_array` line in `Builder::add_file` and a field in [`PolicySet`].
//! Checks that need every file (names unique across files, a grant for
//! each schedule and rule) are in `Builder`.

mod concurrency;
mod fields;
mod grant;
mod matcher;
mod rule;
mod schedule;
mod window;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::config::document::{Document, Source, Table};
use crate::diag::{Diagnostic, Diagnostics};
use concurrency::ConcurrencyFile;
use grant::{Expanded, GrantFile};
use rule::RuleFile;
use schedule::ScheduleFile;

pub use concurrency::{ConcurrencyLimit, OnLimit, Scope};
pub use grant::{Grant, LogPath, is_valid_plugin_name};
pub use matcher::{MatchOp, Matcher};
pub use rule::{
    AlertContext, CircuitBreaker, OnResolved, Retry, Rule, RuleTarget, Throttle, history_needed,
    history_windows,
};
pub use schedule::{CatchUp, Schedule};
pub use window::Window;

/// Every policy, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicySet {
    /// One per (plugin, target) pair, in file order.
    pub grants: Vec<Grant>,
    /// In file order; names are unique.
    pub schedules: Vec<Schedule>,
    /// In file order; names are unique. An alert is matched against all.
    pub rules: Vec<Rule>,
    /// In file order; one per scope.
    pub concurrency: Vec<ConcurrencyLimit>,
}

/// Where something was defined: a file and a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Location {
    /// `file:line`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A policy file as written. Its tables are read one at a time (see
/// `GrantFile`); the fields here only name them, so that an unknown
/// top-level key is reported along with the expected ones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    /// Grants, as `[[grant]]` tables: see `GrantFile`.
    #[serde(default, rename = "grant")]
    _grant: Option<IgnoredAny>,
    /// Schedules, as `[[schedule]]` tables: see `ScheduleFile`.
    #[serde(default, rename = "schedule")]
    _schedule: Option<IgnoredAny>,
    /// Alert rules, as `[[rule]]` tables: see `RuleFile`.
    #[serde(default, rename = "rule")]
    _rule: Option<IgnoredAny>,
    /// Concurrency limits, as `[[concurrency]]` tables: see
    /// `ConcurrencyFile`.
    #[serde(default, rename = "concurrency")]
    _concurrency: Option<IgnoredAny>,
}

impl PolicySet {
    /// Loads every `*.toml` file directly in `dir`, in order of name.
    /// `known_targets` are the names of the targets in the config. A
    /// missing folder is an error; an empty one grants nothing.
    pub fn load_dir(dir: &Path, known_targets: &[&str]) -> Result<PolicySet, Diagnostics> {
        let files = toml_files(
            dir,
            "policy",
            "the policy folder does not exist: create it (an empty folder grants nothing) or \
             change `policy_dir` in the config",
        )?;
        PolicySet::load_files(&files, known_targets)
    }

    /// Loads the given policy files, in the order given.
    pub fn load_files(files: &[PathBuf], known_targets: &[&str]) -> Result<PolicySet, Diagnostics> {
        let mut builder = Builder::new(known_targets);
        for file in files {
            builder.add_file(file);
        }
        builder.finish()
    }

    /// The grant for `plugin` on `target`, if any: deny by default.
    /// What the grants name in `warden.toml` beyond target names: the
    /// stores of `artifacts` must exist, and a `restore_to` target must be
    /// of the same kind as the target it restores. One diagnostic per
    /// problem, at the grant.
    pub fn check_config(&self, config: &crate::config::Config) -> Vec<crate::diag::Diagnostic> {
        let mut out = Vec::new();
        let at = |g: &Grant, field: &str, message: String| {
            crate::diag::Diagnostic::new(&g.source.file, field, message).with_line(g.source.line)
        };
        for g in &self.grants {
            for store in &g.artifacts {
                if config.store(store).is_none() {
                    let known: Vec<String> = config
                        .stores
                        .iter()
                        .map(|s| format!("`{}`", s.name))
                        .collect();
                    let known = if known.is_empty() {
                        "the config defines no stores (add a `[[store]]` table to warden.toml)"
                            .to_string()
                    } else {
                        format!("the config defines {}", known.join(", "))
                    };
                    out.push(at(
                        g,
                        "artifacts",
                        format!("unknown store {store:?}: {known}"),
                    ));
                }
            }
            let source_kind = config.target(&g.target).map(|t| t.kind);
            for dest in &g.restore_to {
                let dest_kind = config.target(dest).map(|t| t.kind);
                if let (Some(a), Some(b)) = (source_kind, dest_kind)
                    && a != b
                {
                    out.push(at(
                        g,
                        "restore_to",
                        format!(
                            "target `{dest}` is a {b} database and cannot receive a restore of \
                             `{}`, a {a} database",
                            g.target
                        ),
                    ));
                }
            }
        }
        out
    }

    pub fn grant(&self, plugin: &str, target: &str) -> Option<&Grant> {
        self.grants
            .iter()
            .find(|grant| grant.plugin == plugin && grant.target == target)
    }

    /// Every plugin that has at least one grant.
    pub fn plugins(&self) -> BTreeSet<&str> {
        self.grants
            .iter()
            .map(|grant| grant.plugin.as_str())
            .collect()
    }

    /// The rule named `name`, if any.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.name == name)
    }

    /// The schedule named `name`, if any.
    pub fn schedule(&self, name: &str) -> Option<&Schedule> {
        self.schedules.iter().find(|schedule| schedule.name == name)
    }

    /// The concurrency limit for exactly `scope`, if any.
    pub fn concurrency_limit(&self, scope: &Scope) -> Option<&ConcurrencyLimit> {
        self.concurrency.iter().find(|limit| &limit.scope == scope)
    }
}

/// The `*.toml` files directly in `dir` (not hidden), sorted by name:
/// the policy and runbook folders. `what` names the folder's files in
/// messages (`policy`, `runbook`); `missing` says what to do when the folder
/// does not exist.
pub(crate) fn toml_files(
    dir: &Path,
    what: &str,
    missing: &str,
) -> Result<Vec<PathBuf>, Diagnostics> {
    let entries = fs::read_dir(dir).map_err(|e| {
        let message = match e.kind() {
            io::ErrorKind::NotFound => missing.to_owned(),
            _ => format!("cannot read the {what} folder: {e}"),
        };
        Diagnostic::new(dir, "", message)
    })?;
    let mut diags = Diagnostics::new();
    let mut files = Vec::new();
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                diags.push(Diagnostic::new(
                    dir,
                    "",
                    format!("cannot read the {what} folder: {e}"),
                ));
                continue;
            }
        };
        let is_toml = path.extension().is_some_and(|ext| ext == "toml");
        let hidden = path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with('.'));
        if !is_toml || hidden {
            continue;
        }
        // Follows symbolic links; folders (even named `*.toml`) are skipped.
        match fs::metadata(&path) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => files.push(path),
            Err(e) => diags.push(Diagnostic::new(
                &path,
                "",
                format!("cannot read the {what} file: {e}"),
            )),
        }
    }
    files.sort();
    diags.into_result(files)
}

/// What a schedule or rule needs a grant for.
enum Need {
    /// A grant for this (plugin, target).
    Pair(String, String),
    /// At least one grant for this plugin.
    Plugin(String),
}

/// Collects the policies file by file, checking what spans files.
struct Builder<'k> {
    known_targets: &'k [&'k str],
    grants: Vec<Grant>,
    /// Where each (plugin, target) pair was granted: its `targets` entry.
    granted: BTreeMap<(String, String), Location>,
    schedules: Vec<Schedule>,
    /// Where each schedule name was given.
    schedule_names: BTreeMap<String, Location>,
    rules: Vec<Rule>,
    /// Where each rule name was given.
    rule_names: BTreeMap<String, Location>,
    concurrency: Vec<ConcurrencyLimit>,
    /// Where each concurrency scope was given.
    scopes: BTreeMap<Scope, Location>,
    /// The diagnostics of each file read, in order.
    file_diags: Vec<Diagnostics>,
    /// Grants that schedules and rules need, checked once every grant is
    /// known: the index of the file, the need, and the diagnostic if unmet.
    needs: Vec<(usize, Need, Diagnostic)>,
    /// False once a grant could not be read: then a missing grant may just
    /// be a broken one, and is not reported.
    grants_complete: bool,
}

impl<'k> Builder<'k> {
    fn new(known_targets: &'k [&'k str]) -> Self {
        Builder {
            known_targets,
            grants: Vec::new(),
            granted: BTreeMap::new(),
            schedules: Vec::new(),
            schedule_names: BTreeMap::new(),
            rules: Vec::new(),
            rule_names: BTreeMap::new(),
            concurrency: Vec::new(),
            scopes: BTreeMap::new(),
            file_diags: Vec::new(),
            needs: Vec::new(),
            grants_complete: true,
        }
    }

    /// Reads and checks one policy file.
    fn add_file(&mut self, file: &Path) {
        let mut diags = Diagnostics::new();
        self.read_file(file, &mut diags);
        self.file_diags.push(diags);
    }

    fn read_file(&mut self, file: &Path, diags: &mut Diagnostics) {
        let text = match fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                diags.push(Diagnostic::new(
                    file,
                    "",
                    format!("cannot read the policy file: {e}"),
                ));
                self.grants_complete = false;
                return;
            }
        };
        let Some(mut document) = Document::parse(file, &text, diags) else {
            self.grants_complete = false;
            return;
        };
        let before = diags.len();
        let grants = document.take_array::<GrantFile>("grant", diags);
        let mut expanded = Vec::new();
        for table in &grants {
            expanded.extend(grant::expand(table, self.known_targets, diags));
        }
        if diags.len() != before {
            self.grants_complete = false;
        }
        let schedules = document.take_array::<ScheduleFile>("schedule", diags);
        let rules = document.take_array::<RuleFile>("rule", diags);
        let limits = document.take_array::<ConcurrencyFile>("concurrency", diags);
        let source = document.source();
        let _: Option<Table<'_, PolicyFile>> = document.finish(diags);

        for grant in expanded {
            self.add_grant(source, grant, diags);
        }
        for table in &schedules {
            if let Some(checked) = schedule::check(table, self.known_targets, diags) {
                self.add_schedule(source, checked, diags);
            }
        }
        for table in &rules {
            if let Some(checked) = rule::check(table, self.known_targets, diags) {
                self.add_rule(source, checked, diags);
            }
        }
        for table in &limits {
            if let Some(checked) = concurrency::check(table, self.known_targets, diags) {
                self.add_limit(source, checked, diags);
            }
        }
    }

    /// Adds a grant, refusing a second one for the same (plugin, target).
    fn add_grant(&mut self, source: Source<'_>, expanded: Expanded, diags: &mut Diagnostics) {
        let Expanded { grant, span, field } = expanded;
        let key = (grant.plugin.clone(), grant.target.clone());
        if let Some(first) = self.granted.get(&key) {
            let (plugin, target) = key;
            diags.push(source.error(
                &span,
                field,
                format!(
                    "plugin `{plugin}` already has a grant for target `{target}` at {first}: \
                     a plugin may have one grant per target, merge the two"
                ),
            ));
            return;
        }
        self.granted.insert(key, fields::location(source, &span));
        self.grants.push(grant);
    }

    /// Adds a schedule, refusing a second one of the same name.
    fn add_schedule(
        &mut self,
        source: Source<'_>,
        checked: schedule::Checked,
        diags: &mut Diagnostics,
    ) {
        let schedule::Checked {
            schedule,
            name: (name_span, name_field),
            target: (target_span, target_field),
        } = checked;
        if let Some(first) = self.schedule_names.get(&schedule.name) {
            diags.push(source.error(
                &name_span,
                name_field,
                format!(
                    "schedule `{}` is already defined at {first}: schedule names must be unique",
                    schedule.name
                ),
            ));
            return;
        }
        self.schedule_names
            .insert(schedule.name.clone(), fields::location(source, &name_span));
        self.need(
            Need::Pair(schedule.plugin.clone(), schedule.target.clone()),
            source.error(
                &target_span,
                target_field,
                format!(
                    "schedule `{}` runs plugin `{}` on target `{}` but no [[grant]] allows it: \
                     add a [[grant]] for plugin `{}` listing `{}` in its targets",
                    schedule.name,
                    schedule.plugin,
                    schedule.target,
                    schedule.plugin,
                    schedule.target
                ),
            ),
        );
        self.schedules.push(schedule);
    }

    /// Adds a rule, refusing a second one of the same name.
    fn add_rule(&mut self, source: Source<'_>, checked: rule::Checked, diags: &mut Diagnostics) {
        let rule::Checked {
            rule,
            name: (name_span, name_field),
            pair: (pair_span, pair_field),
        } = checked;
        if let Some(first) = self.rule_names.get(&rule.name) {
            diags.push(source.error(
                &name_span,
                name_field,
                format!(
                    "rule `{}` is already defined at {first}: rule names must be unique",
                    rule.name
                ),
            ));
            return;
        }
        self.rule_names
            .insert(rule.name.clone(), fields::location(source, &name_span));
        let (need, message) = match &rule.target {
            RuleTarget::Fixed(target) => (
                Need::Pair(rule.plugin.clone(), target.clone()),
                format!(
                    "rule `{}` runs plugin `{}` on target `{target}` but no [[grant]] allows it: \
                     add a [[grant]] for plugin `{}` listing `{target}` in its targets",
                    rule.name, rule.plugin, rule.plugin
                ),
            ),
            RuleTarget::Label(label) => (
                Need::Plugin(rule.plugin.clone()),
                format!(
                    "rule `{}` runs plugin `{}` on the target named by label `{label}` but no \
                     [[grant]] allows plugin `{}` on any target",
                    rule.name, rule.plugin, rule.plugin
                ),
            ),
        };
        self.need(need, source.error(&pair_span, pair_field, message));
        self.rules.push(rule);
    }

    /// Adds a concurrency limit, refusing a second one for the same scope.
    fn add_limit(
        &mut self,
        source: Source<'_>,
        checked: concurrency::Checked,
        diags: &mut Diagnostics,
    ) {
        let concurrency::Checked {
            limit,
            scope: (span, field),
        } = checked;
        if let Some(first) = self.scopes.get(&limit.scope) {
            diags.push(source.error(
                &span,
                field,
                format!(
                    "a [[concurrency]] limit for {} is already defined at {first}: give one per \
                     scope",
                    limit.scope
                ),
            ));
            return;
        }
        self.scopes
            .insert(limit.scope.clone(), fields::location(source, &span));
        self.concurrency.push(limit);
    }

    /// Records a grant the current file needs.
    fn need(&mut self, need: Need, unmet: Diagnostic) {
        self.needs.push((self.file_diags.len(), need, unmet));
    }

    /// Checks the needs for grants and gives the set, or every diagnostic:
    /// files in order, lines in order within a file.
    fn finish(mut self) -> Result<PolicySet, Diagnostics> {
        if self.grants_complete {
            for (file, need, unmet) in std::mem::take(&mut self.needs) {
                let met = match &need {
                    Need::Pair(plugin, target) => {
                        self.granted.contains_key(&(plugin.clone(), target.clone()))
                    }
                    Need::Plugin(plugin) => self.granted.keys().any(|(p, _)| p == plugin),
                };
                if let (false, Some(diags)) = (met, self.file_diags.get_mut(file)) {
                    diags.push(unmet);
                }
            }
        }
        let mut all = Diagnostics::new();
        for mut diags in self.file_diags {
            diags.sort_by_line();
            all.append(&mut diags);
        }
        all.into_result(PolicySet {
            grants: self.grants,
            schedules: self.schedules,
            rules: self.rules,
            concurrency: self.concurrency,
        })
    }
}

#[cfg(test)]
mod tests;
