//! `[[rule]]`: which plugin to run when an Alertmanager alert matches.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::LazyLock;
use std::time::Duration;

use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde::Deserialize;
use toml::Spanned;

use super::fields::{self, DEFAULT_APPROVAL_TTL, ParamsFile, is_valid_label_name};
use super::grant::known_list;
use super::matcher::Matcher;
use super::window::{self, Window, WindowFile};
use super::{Location, is_valid_plugin_name};
use crate::config::document::{Source, Table, push_key};
use crate::config::units::HumanDuration;
use crate::diag::Diagnostics;

/// One `[[rule]]` table of a policy file (see `GrantFile` for the shape).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleFile {
    /// The rule's name, unique among rules. Required.
    name: Option<Spanned<String>>,
    /// Alertmanager matchers, all of which an alert's labels must satisfy,
    /// like `['alertname="PostgresDeadTuples"', 'severity=~"warning|critical"']`.
    /// Required, at least one.
    #[serde(rename = "match")]
    matchers: Option<Spanned<Vec<Spanned<String>>>>,
    /// The plugin to run. Required.
    plugin: Option<Spanned<String>>,
    /// The target to run it on: a `[[target]]` of `warden.toml`. This or
    /// `target_label` is required.
    target: Option<Spanned<String>>,
    /// The alert label naming the target, like `"instance"`.
    target_label: Option<Spanned<String>>,
    /// The plugin's params: minijinja templates over `labels`,
    /// `annotations`, `status`, `fingerprint` and `starts_at`.
    params: Option<ParamsFile>,
    /// What a resolved alert does: `"ignore"` (default), `"run"` or
    /// `"cancel"`.
    on_resolved: Option<OnResolved>,
    /// Run the plugin in dry-run mode. Default `false`.
    dry_run: Option<bool>,
    /// Wait for an approval before running. Default `false`.
    require_approval: Option<bool>,
    /// How long a run waits for approval. Default `"24h"`.
    approval_ttl: Option<Spanned<HumanDuration>>,
    /// The same alert (fingerprint and start) runs once within this.
    /// Default `"24h"`; `"0s"` runs every notification.
    dedup_window: Option<Spanned<HumanDuration>>,
    /// Least time between two runs of the rule on one target.
    cooldown: Option<Spanned<HumanDuration>>,
    /// At most `max` runs `per` period (per `group_by` labels).
    throttle: Option<Spanned<ThrottleFile>>,
    /// Stops running after too many failures or runs.
    circuit_breaker: Option<Spanned<CircuitBreakerFile>>,
    /// Retries a failed run.
    retry: Option<Spanned<RetryFile>>,
    /// When runs are allowed (UTC unless it names a time zone).
    window: Option<Spanned<WindowFile>>,
}

/// `throttle = { max = 5, per = "10m", group_by = ["cluster"] }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ThrottleFile {
    max: Option<Spanned<u32>>,
    per: Option<Spanned<HumanDuration>>,
    group_by: Option<Vec<Spanned<String>>>,
}

/// `circuit_breaker = { max_failures = 3, max_runs = 10, window = "1h", open_for = "15m" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CircuitBreakerFile {
    max_failures: Option<Spanned<u32>>,
    max_runs: Option<Spanned<u32>>,
    window: Option<Spanned<HumanDuration>>,
    open_for: Option<Spanned<HumanDuration>>,
}

/// `retry = { attempts = 3, backoff = "30s", max_backoff = "10m" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RetryFile {
    attempts: Option<Spanned<u32>>,
    backoff: Option<Spanned<HumanDuration>>,
    max_backoff: Option<Spanned<HumanDuration>>,
}

/// What runs the plugin when an alert matches, and within which limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    /// All must match the alert's labels.
    pub matchers: Vec<Matcher>,
    pub plugin: String,
    pub target: RuleTarget,
    /// Param name to minijinja template, rendered by
    /// [`Rule::render_params`].
    pub params: BTreeMap<String, String>,
    pub on_resolved: OnResolved,
    pub dry_run: bool,
    pub require_approval: bool,
    pub approval_ttl: Duration,
    /// The same alert (fingerprint and `startsAt`) runs once within this.
    pub dedup_window: Duration,
    /// Least time between two runs of the rule on one target.
    pub cooldown: Option<Duration>,
    pub throttle: Option<Throttle>,
    pub circuit_breaker: Option<CircuitBreaker>,
    pub retry: Option<Retry>,
    pub window: Option<Window>,
    /// The `[[rule]]` this comes from.
    pub source: Location,
}

/// The target a rule runs on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuleTarget {
    /// `target = "app"`.
    Fixed(String),
    /// `target_label = "instance"`: the target named by this alert label.
    Label(String),
}

/// What a resolved alert does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnResolved {
    /// Nothing (the default).
    #[default]
    Ignore,
    /// Runs the plugin too.
    Run,
    /// Cancels the alert's queued or waiting runs.
    Cancel,
}

/// At most `max` runs `per` period, counted per value of the `group_by`
/// labels (all together when empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    pub max: u32,
    pub per: Duration,
    pub group_by: Vec<String>,
}

/// Opens (stops runs) for `open_for` after `max_failures` failures, or
/// `max_runs` runs, within `window`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitBreaker {
    pub max_failures: u32,
    pub max_runs: Option<u32>,
    pub window: Duration,
    pub open_for: Duration,
}

impl CircuitBreaker {
    /// Default `max_failures`: 3.
    pub const DEFAULT_MAX_FAILURES: u32 = 3;
    /// Default `window`: 1h.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60 * 60);
    /// Default `open_for`: 15m.
    pub const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(15 * 60);
}

/// Retries of a failed run: `attempts` more after the first, waiting
/// `backoff`, then twice as long each time, at most `max_backoff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Retry {
    /// Default `backoff`: 30s.
    pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(30);
    /// Default `max_backoff`: 10m.
    pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(10 * 60);

    /// The wait before retry `attempt` (1 for the first retry): `backoff`,
    /// `2 × backoff`, `4 × backoff`, ..., at most `max_backoff`. Attempt 0
    /// counts as 1.
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(63);
        let factor = 1u64 << doublings;
        let nanos = self.backoff.as_nanos().saturating_mul(u128::from(factor));
        let secs = u64::try_from(nanos / 1_000_000_000);
        let subsec = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
        let delay = secs.map_or(Duration::MAX, |secs| Duration::new(secs, subsec));
        delay.min(self.max_backoff)
    }
}

/// One alert, for [`Rule::render_params`].
#[derive(Debug, Clone, Copy)]
pub struct AlertContext<'a> {
    /// `"firing"` or `"resolved"`.
    pub status: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub annotations: &'a BTreeMap<String, String>,
    pub fingerprint: &'a str,
    pub starts_at: &'a str,
}

/// The variables a param template may use.
const TEMPLATE_VARIABLES: [&str; 5] = [
    "labels",
    "annotations",
    "status",
    "fingerprint",
    "starts_at",
];

/// Renders params: printing an undefined value is an error, testing one
/// (`{% if labels.x %}`, `| default(...)`) is not.
static RENDER: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env
});

/// Tries templates at load time, where anything may be undefined.
static TRY: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env
});

impl Rule {
    /// Default `dedup_window`: 24h.
    pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

    /// True if every matcher matches `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers.iter().all(|matcher| matcher.matches(labels))
    }

    /// Renders `params` for one alert. The error names the param and what
    /// is wrong, like "param `table`: the alert has no label `table`".
    pub fn render_params(
        &self,
        ctx: &AlertContext<'_>,
    ) -> Result<BTreeMap<String, String>, String> {
        let context = minijinja::context! {
            status => ctx.status,
            labels => ctx.labels,
            annotations => ctx.annotations,
            fingerprint => ctx.fingerprint,
            starts_at => ctx.starts_at,
        };
        self.params
            .iter()
            .map(|(name, source)| {
                RENDER
                    .render_str(source, &context)
                    .map(|value| (name.clone(), value))
                    .map_err(|e| format!("param `{name}`: {}", render_error(source, &e, ctx)))
            })
            .collect()
    }
}

/// A render error in words, naming the missing label or annotation when
/// that is the problem.
fn render_error(source: &str, error: &minijinja::Error, ctx: &AlertContext<'_>) -> String {
    if error.kind() == ErrorKind::UndefinedError
        && let Ok(template) = RENDER.template_from_str(source)
    {
        let mut used: Vec<String> = template.undeclared_variables(true).into_iter().collect();
        used.sort();
        for variable in used {
            let mut parts = variable.splitn(3, '.');
            let (Some(map), Some(key)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (what, values) = match map {
                "labels" => ("label", ctx.labels),
                "annotations" => ("annotation", ctx.annotations),
                _ => continue,
            };
            if !values.contains_key(key) {
                return format!(
                    "the alert has no {what} `{key}` (use `{map}.{key} | default(\"...\")` to \
                     make it optional)"
                );
            }
        }
    }
    template_error(error)
}

/// `kind: detail` of a template error, without the template name.
fn template_error(error: &minijinja::Error) -> String {
    match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    }
}

/// Checks a param template: its syntax, its variables, and the filters
/// and tests it uses (as far as trying it on an empty alert reaches).
fn check_template(source: &str) -> Result<(), String> {
    let template = TRY.template_from_str(source).map_err(|e| {
        let line = e
            .line()
            .map(|l| format!(" (line {l} of the template)"))
            .unwrap_or_default();
        format!("invalid template: {}{line}", template_error(&e))
    })?;
    let globals: Vec<&str> = TRY.globals().map(|(name, _)| name).collect();
    let mut unknown: Vec<String> = template
        .undeclared_variables(false)
        .into_iter()
        .filter(|name| {
            !TEMPLATE_VARIABLES.contains(&name.as_str()) && !globals.contains(&name.as_str())
        })
        .collect();
    unknown.sort();
    if let Some(name) = unknown.first() {
        return Err(format!(
            "invalid template: unknown variable `{name}`: templates can use `labels`, \
             `annotations`, `status`, `fingerprint` and `starts_at`"
        ));
    }
    let empty = BTreeMap::<String, String>::new();
    let context = minijinja::context! {
        status => "firing",
        labels => &empty,
        annotations => &empty,
        fingerprint => "",
        starts_at => "",
    };
    match template.render(context) {
        Err(e) if matches!(e.kind(), ErrorKind::UnknownFilter | ErrorKind::UnknownTest) => {
            Err(format!("invalid template: {}", template_error(&e)))
        }
        _ => Ok(()),
    }
}

/// A checked [`Rule`] with what the checks across rules need.
pub(super) struct Checked {
    pub(super) rule: Rule,
    /// The span and field path of `name`.
    pub(super) name: (Range<usize>, String),
    /// The span and field path of `plugin`, or of `target` for a fixed
    /// target.
    pub(super) pair: (Range<usize>, String),
}

/// Checks one `[[rule]]`, reporting every problem. `None` if something
/// required is missing or wrong; the rule is only meaningful if nothing
/// was reported.
pub(super) fn check(
    table: &Table<'_, RuleFile>,
    known_targets: &[&str],
    diags: &mut Diagnostics,
) -> Option<Checked> {
    let file = &table.value;
    let source = table.source;
    let before = diags.len();
    let name = table.require("name", &file.name, diags);
    let matchers_list = table.require("match", &file.matchers, diags);
    let plugin = table.require("plugin", &file.plugin, diags);

    if let Some(name) = name
        && name.get_ref().trim().is_empty()
    {
        diags.push(source.error(&name.span(), table.field("name"), "must not be empty"));
    }
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

    let mut matchers = Vec::new();
    if let Some(list) = matchers_list {
        if list.get_ref().is_empty() {
            diags.push(source.error(
                &list.span(),
                table.field("match"),
                "lists no matchers: give at least one, like `match = ['alertname=\"X\"']`",
            ));
        }
        for (i, text) in list.get_ref().iter().enumerate() {
            match Matcher::parse(text.get_ref()) {
                Ok(matcher) => matchers.push(matcher),
                Err(message) => diags.push(source.error(
                    &text.span(),
                    format!("{}[{i}]", table.field("match")),
                    message,
                )),
            }
        }
    }

    let target = match (&file.target, &file.target_label) {
        (Some(_), Some(label)) => {
            diags.push(source.error(
                &label.span(),
                table.field("target_label"),
                "give either `target` or `target_label`, not both",
            ));
            None
        }
        (Some(target), None) => {
            let name = target.get_ref();
            if !known_targets.contains(&name.as_str()) {
                diags.push(source.error(
                    &target.span(),
                    table.field("target"),
                    format!("unknown target {name:?}: {}", known_list(known_targets)),
                ));
            }
            Some(RuleTarget::Fixed(name.clone()))
        }
        (None, Some(label)) => {
            let name = label.get_ref();
            if !is_valid_label_name(name) {
                diags.push(source.error(
                    &label.span(),
                    table.field("target_label"),
                    format!(
                        "invalid label name {name:?}: use letters, digits and `_`, not starting \
                         with a digit"
                    ),
                ));
            }
            Some(RuleTarget::Label(name.clone()))
        }
        (None, None) => {
            if !table.is_broken("target") && !table.is_broken("target_label") {
                diags.push(source.error(
                    &table.span,
                    table.field("target"),
                    "missing field `target`: name the target (`target = \"app\"`) or the alert \
                     label naming it (`target_label = \"instance\"`)",
                ));
            }
            None
        }
    };

    let params_path = table.field("params");
    let mut params = BTreeMap::new();
    for (key, value, span, field) in fields::params(&params_path, &file.params) {
        if let Err(message) = check_template(&value) {
            diags.push(source.error(&span, field, message));
        }
        params.insert(key, value);
    }

    let field = |name: &'static str| move || table.field(name);
    let approval_ttl = fields::duration(
        source,
        field("approval_ttl"),
        &file.approval_ttl,
        DEFAULT_APPROVAL_TTL,
        true,
        diags,
    );
    let dedup_window = fields::duration(
        source,
        field("dedup_window"),
        &file.dedup_window,
        Rule::DEFAULT_DEDUP_WINDOW,
        false,
        diags,
    );
    let cooldown = file.cooldown.as_ref().map(|_| {
        fields::duration(
            source,
            field("cooldown"),
            &file.cooldown,
            Duration::ZERO,
            true,
            diags,
        )
    });
    let throttle = file
        .throttle
        .as_ref()
        .and_then(|value| check_throttle(source, &table.field("throttle"), value, diags));
    let circuit_breaker = file.circuit_breaker.as_ref().and_then(|value| {
        check_circuit_breaker(source, &table.field("circuit_breaker"), value, diags)
    });
    let retry = file
        .retry
        .as_ref()
        .and_then(|value| check_retry(source, &table.field("retry"), value, diags));
    let window = file.window.as_ref().and_then(|value| {
        window::check(source, &table.field("window"), value, chrono_tz::UTC, diags)
    });

    let (name, plugin, target) = (name?, plugin?, target?);
    if diags.len() != before {
        return None;
    }
    let pair = match (&target, &file.target) {
        (RuleTarget::Fixed(_), Some(fixed)) => (fixed.span(), table.field("target")),
        _ => (plugin.span(), table.field("plugin")),
    };
    Some(Checked {
        rule: Rule {
            name: name.get_ref().clone(),
            matchers,
            plugin: plugin.get_ref().clone(),
            target,
            params,
            on_resolved: file.on_resolved.unwrap_or_default(),
            dry_run: file.dry_run.unwrap_or(false),
            require_approval: file.require_approval.unwrap_or(false),
            approval_ttl,
            dedup_window,
            cooldown,
            throttle,
            circuit_breaker,
            retry,
            window,
            source: fields::location(source, &table.span),
        },
        name: (name.span(), table.field("name")),
        pair,
    })
}

/// Reports a missing field `name` of the inline table at `span`.
fn missing(
    source: Source<'_>,
    path: &str,
    span: &Range<usize>,
    name: &str,
    diags: &mut Diagnostics,
) {
    diags.push(source.error(
        span,
        push_key(path.to_owned(), name),
        format!("missing field `{name}`"),
    ));
}

fn check_throttle(
    source: Source<'_>,
    path: &str,
    value: &Spanned<ThrottleFile>,
    diags: &mut Diagnostics,
) -> Option<Throttle> {
    let file = value.get_ref();
    let field = |name: &'static str| move || push_key(path.to_owned(), name);
    let before = diags.len();
    let max = match &file.max {
        Some(max) => Some(fields::at_least_one(source, field("max"), max, diags)),
        None => {
            missing(source, path, &value.span(), "max", diags);
            None
        }
    };
    let per = match &file.per {
        Some(_) => Some(fields::duration(
            source,
            field("per"),
            &file.per,
            Duration::ZERO,
            true,
            diags,
        )),
        None => {
            missing(source, path, &value.span(), "per", diags);
            None
        }
    };
    let mut group_by = Vec::new();
    for (i, label) in file.group_by.iter().flatten().enumerate() {
        if !is_valid_label_name(label.get_ref()) {
            diags.push(source.error(
                &label.span(),
                format!("{}[{i}]", push_key(path.to_owned(), "group_by")),
                format!(
                    "invalid label name {:?}: use letters, digits and `_`, not starting with a \
                     digit",
                    label.get_ref()
                ),
            ));
        }
        group_by.push(label.get_ref().clone());
    }
    if diags.len() != before {
        return None;
    }
    Some(Throttle {
        max: max?,
        per: per?,
        group_by,
    })
}

fn check_circuit_breaker(
    source: Source<'_>,
    path: &str,
    value: &Spanned<CircuitBreakerFile>,
    diags: &mut Diagnostics,
) -> Option<CircuitBreaker> {
    let file = value.get_ref();
    let field = |name: &'static str| move || push_key(path.to_owned(), name);
    let before = diags.len();
    let max_failures = file
        .max_failures
        .as_ref()
        .map_or(CircuitBreaker::DEFAULT_MAX_FAILURES, |max| {
            fields::at_least_one(source, field("max_failures"), max, diags)
        });
    let max_runs = file
        .max_runs
        .as_ref()
        .map(|max| fields::at_least_one(source, field("max_runs"), max, diags));
    let window = fields::duration(
        source,
        field("window"),
        &file.window,
        CircuitBreaker::DEFAULT_WINDOW,
        true,
        diags,
    );
    let open_for = fields::duration(
        source,
        field("open_for"),
        &file.open_for,
        CircuitBreaker::DEFAULT_OPEN_FOR,
        true,
        diags,
    );
    (diags.len() == before).then_some(CircuitBreaker {
        max_failures,
        max_runs,
        window,
        open_for,
    })
}

/// Checks a `retry` (of a rule or a schedule) at field path `path`.
pub(super) fn check_retry(
    source: Source<'_>,
    path: &str,
    value: &Spanned<RetryFile>,
    diags: &mut Diagnostics,
) -> Option<Retry> {
    let file = value.get_ref();
    let field = |name: &'static str| move || push_key(path.to_owned(), name);
    let before = diags.len();
    let attempts = match &file.attempts {
        Some(attempts) => Some(fields::at_least_one(
            source,
            field("attempts"),
            attempts,
            diags,
        )),
        None => {
            missing(source, path, &value.span(), "attempts", diags);
            None
        }
    };
    let backoff = fields::duration(
        source,
        field("backoff"),
        &file.backoff,
        Retry::DEFAULT_BACKOFF,
        true,
        diags,
    );
    let max_backoff = fields::duration(
        source,
        field("max_backoff"),
        &file.max_backoff,
        Retry::DEFAULT_MAX_BACKOFF,
        true,
        diags,
    );
    if diags.len() == before && max_backoff < backoff {
        let span = file
            .max_backoff
            .as_ref()
            .or(file.backoff.as_ref())
            .map_or_else(|| value.span(), Spanned::span);
        let at = if file.max_backoff.is_some() {
            "max_backoff"
        } else {
            "backoff"
        };
        diags.push(source.error(
            &span,
            field(at)(),
            format!(
                "`max_backoff` ({}) is less than `backoff` ({})",
                humantime::format_duration(max_backoff),
                humantime::format_duration(backoff)
            ),
        ));
    }
    if diags.len() != before {
        return None;
    }
    Some(Retry {
        attempts: attempts?,
        backoff,
        max_backoff,
    })
}
/// The windows of `rule` that the guardrails rebuild from run records
/// (`dispatch::guardrails::Guardrails::restore`), by field name:
/// `dedup_window`, `cooldown`, `throttle.per`. (Circuit breakers are saved
/// on their own, in the `circuits` table, and need no history.)
pub fn history_windows(rule: &Rule) -> impl Iterator<Item = (&'static str, Duration)> {
    [
        ("dedup_window", Some(rule.dedup_window)),
        ("cooldown", rule.cooldown),
        ("throttle.per", rule.throttle.as_ref().map(|t| t.per)),
    ]
    .into_iter()
    .filter_map(|(field, d)| d.map(|d| (field, d)))
}

/// How far back the guardrails of `rules` read run records when rebuilt:
/// their longest [`history_windows`]. Retention
/// ([`crate::runs::retention`]) never deletes rule runs younger than this.
pub fn history_needed(rules: &[Rule]) -> Duration {
    rules
        .iter()
        .flat_map(history_windows)
        .map(|(_, d)| d)
        .max()
        .unwrap_or_default()
}
