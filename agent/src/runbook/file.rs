//! One runbook file as written (the private `...File` structs) and its
//! checks, into a [`Runbook`].

use std::collections::BTreeMap;
use std::fs;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;
use toml::Spanned;

use super::refs::{RawStep, Scope};
use warden_model::{DEFAULT_MAX_STEPS, MAX_MAX_STEPS};

use super::{
    Action, OnFailure, ParamNames, ParamSpec, ParamType, ParamValue, Runbook, Severity, Statement,
    Step, StepKind, known_names, refs,
};
use crate::capability::TargetKind;
use crate::config::document::{Document, Source, Table, push_key};
use crate::config::units::DURATION_FORM;
use crate::diag::Diagnostics;
use crate::policy::{Location, Matcher, is_valid_plugin_name};

/// Most characters in a runbook name or a step id.
const MAX_NAME: usize = 64;
/// Shortest `every` of a wait step.
const MIN_EVERY: Duration = Duration::from_millis(100);

/// The top level of a runbook file: only names its tables, so that an
/// unknown key is reported with the expected ones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopFile {
    /// `[runbook]`: see `HeaderFile`.
    #[serde(default, rename = "runbook")]
    _runbook: Option<IgnoredAny>,
    /// `[params.<name>]`: see `ParamFile`.
    #[serde(default, rename = "params")]
    _params: Option<IgnoredAny>,
    /// `[[step]]`: see `StepFile`.
    #[serde(default, rename = "step")]
    _step: Option<IgnoredAny>,
}

/// `[runbook]`. Every field is optional here; required ones are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderFile {
    /// Required; `[a-z0-9-]`, at most 64; unique across the folder.
    name: Option<Spanned<String>>,
    description: Option<String>,
    /// Default `warning`.
    severity: Option<Severity>,
    /// Required.
    target_kind: Option<TargetKind>,
    /// Alertmanager matchers.
    alerts: Option<Vec<Spanned<String>>>,
    /// 1..=1000, default 100.
    max_steps: Option<Spanned<i64>>,
}

/// `[params.<name>]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamFile {
    /// Required.
    #[serde(rename = "type")]
    kind: Option<ParamType>,
    /// Must fit `type`; without one the parameter is required.
    default: Option<Spanned<toml::Value>>,
    description: Option<String>,
}

/// The `kind` of a step, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum KindName {
    Query,
    Check,
    Action,
    RunPlugin,
    Wait,
    Note,
}

impl KindName {
    const fn as_str(self) -> &'static str {
        match self {
            KindName::Query => "query",
            KindName::Check => "check",
            KindName::Action => "action",
            KindName::RunPlugin => "run_plugin",
            KindName::Wait => "wait",
            KindName::Note => "note",
        }
    }

    /// The fields of this kind, beyond those of every step (`id`, `kind`,
    /// `title`, `when`, `timeout`, `on_failure`).
    const fn fields(self) -> &'static [&'static str] {
        match self {
            KindName::Query => &["sql", "args", "mongo", "database"],
            KindName::Check => &["expr", "else"],
            KindName::Action => &[
                "terminate",
                "cancel",
                "kill_ops",
                "sql",
                "args",
                "mongo",
                "database",
                "requires_approval",
            ],
            KindName::RunPlugin => &["plugin", "params", "target"],
            KindName::Wait => &["refresh", "every", "until"],
            KindName::Note => &["text"],
        }
    }
}

/// One `[[step]]`, every field of every kind; which apply is checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    id: Option<Spanned<String>>,
    kind: Option<Spanned<KindName>>,
    title: Option<String>,
    when: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    on_failure: Option<Spanned<String>>,
    sql: Option<Spanned<String>>,
    args: Option<Vec<Spanned<String>>>,
    mongo: Option<Spanned<String>>,
    database: Option<Spanned<String>>,
    expr: Option<Spanned<String>>,
    #[serde(rename = "else")]
    otherwise: Option<Spanned<String>>,
    terminate: Option<Spanned<String>>,
    cancel: Option<Spanned<String>>,
    kill_ops: Option<Spanned<String>>,
    requires_approval: Option<Spanned<bool>>,
    plugin: Option<Spanned<String>>,
    params: Option<BTreeMap<String, Spanned<String>>>,
    target: Option<Spanned<String>>,
    refresh: Option<Spanned<String>>,
    every: Option<Spanned<String>>,
    until: Option<Spanned<String>>,
    text: Option<Spanned<String>>,
}

impl StepFile {
    /// The kind-specific fields given, with a span to report them at.
    fn given(&self) -> Vec<(&'static str, Range<usize>)> {
        let span = |v: Option<&Spanned<String>>| v.map(Spanned::span);
        let list = |v: &Option<Vec<Spanned<String>>>| {
            v.as_ref()
                .and_then(|v| v.first().map(Spanned::span))
                .or_else(|| v.as_ref().map(|_| 0..0))
        };
        let map = |v: &Option<BTreeMap<String, Spanned<String>>>| {
            v.as_ref()
                .map(|m| m.values().next().map_or(0..0, Spanned::span))
        };
        [
            ("sql", span(self.sql.as_ref())),
            ("args", list(&self.args)),
            ("mongo", span(self.mongo.as_ref())),
            ("database", span(self.database.as_ref())),
            ("expr", span(self.expr.as_ref())),
            ("else", span(self.otherwise.as_ref())),
            ("terminate", span(self.terminate.as_ref())),
            ("cancel", span(self.cancel.as_ref())),
            ("kill_ops", span(self.kill_ops.as_ref())),
            (
                "requires_approval",
                self.requires_approval.as_ref().map(Spanned::span),
            ),
            ("plugin", span(self.plugin.as_ref())),
            ("params", map(&self.params)),
            ("target", span(self.target.as_ref())),
            ("refresh", span(self.refresh.as_ref())),
            ("every", span(self.every.as_ref())),
            ("until", span(self.until.as_ref())),
            ("text", span(self.text.as_ref())),
        ]
        .into_iter()
        .filter_map(|(name, span)| Some((name, span?)))
        .collect()
    }
}

/// Reads and checks one runbook file. `names` are the runbook names of the
/// files read before (and where), to refuse a second one. The runbook is
/// only meaningful if nothing was reported.
pub(super) fn read(
    file: &Path,
    names: &mut BTreeMap<String, Location>,
    diags: &mut Diagnostics,
) -> Option<Runbook> {
    let text = match fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            diags.push(crate::diag::Diagnostic::new(
                file,
                "",
                format!("cannot read the runbook file: {e}"),
            ));
            return None;
        }
    };
    let mut document = Document::parse(file, &text, diags)?;
    let raw = Raw::scan(&text);
    let header = document.take_table::<HeaderFile>("runbook", diags);
    let params = document.take_table::<BTreeMap<String, Spanned<ParamFile>>>("params", diags);
    let steps = document.take_array::<StepFile>("step", diags);
    let source = document.source();
    let _: Option<Table<'_, TopFile>> = document.finish(diags);

    let runbook = check(source, &raw, header, params, &steps, names, diags);
    label_steps(diags, &raw.steps);
    runbook
}

/// What the checks need to know of the whole file before checking it
/// table by table: the ids and kinds of every step (also of those that
/// fail to read, so that a reference to one is not reported as unknown)
/// and the declared parameter names.
struct Raw {
    has_header: bool,
    steps: Vec<RawStep>,
    params: ParamNames,
}

impl Raw {
    fn scan(text: &str) -> Raw {
        let root = text.parse::<toml::Table>().unwrap_or_default();
        let steps = root
            .get("step")
            .and_then(toml::Value::as_array)
            .map(|steps| {
                steps
                    .iter()
                    .map(|step| RawStep {
                        id: step.get("id").and_then(|v| v.as_str()).map(str::to_owned),
                        kind: step.get("kind").and_then(|v| v.as_str()).map(str::to_owned),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let params = root
            .get("params")
            .and_then(toml::Value::as_table)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        Raw {
            has_header: root.contains_key("runbook"),
            steps,
            params,
        }
    }
}

/// Puts the step's id in the field paths: `step[3].terminate` becomes
/// `step[3] (id "end_idle").terminate`.
fn label_steps(diags: &mut Diagnostics, steps: &[RawStep]) {
    for d in &mut diags.0 {
        let Some(rest) = d.field.strip_prefix("step[") else {
            continue;
        };
        let Some((index, after)) = rest.split_once(']') else {
            continue;
        };
        let Some(id) = index
            .parse::<usize>()
            .ok()
            .and_then(|i| steps.get(i))
            .and_then(|s| s.id.as_deref())
        else {
            continue;
        };
        d.field = format!("step[{index}] (id {id:?}){after}");
    }
}

/// True for `[a-z0-9-]+`, at most 64 characters.
fn is_valid_runbook_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// True for `[a-z0-9_]+`, at most 64 characters.
fn is_valid_step_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_NAME
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// True for a name CEL can select (`params.<name>`): `[A-Za-z_][A-Za-z0-9_]*`.
fn is_valid_param_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses a duration like `"30s"`, `"5m"` or `"1h 30m"`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration {text:?} ({e}): expected {DURATION_FORM}"))
}

/// Checks the whole file.
fn check(
    source: Source<'_>,
    raw: &Raw,
    header: Option<Table<'_, HeaderFile>>,
    params: Option<Table<'_, BTreeMap<String, Spanned<ParamFile>>>>,
    steps: &[Table<'_, StepFile>],
    names: &mut BTreeMap<String, Location>,
    diags: &mut Diagnostics,
) -> Option<Runbook> {
    let before = diags.len();
    if !raw.has_header {
        diags.push(source.error(
            &(0..0),
            "runbook",
            "missing table `[runbook]` (with at least `name` and `target_kind`)",
        ));
    }
    let header = header.and_then(|h| check_header(&h, names, diags));
    let params = params.map(|p| check_params(&p, diags)).unwrap_or_default();
    if raw.steps.is_empty() {
        diags.push(source.error(
            &(0..0),
            "step",
            "the runbook has no steps: add at least one `[[step]]`",
        ));
    }
    let target_kind = header.as_ref().map(|h| h.target_kind);
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut checked = Vec::new();
    for table in steps {
        let index = step_index(&table.path);
        let scope = Scope {
            steps: &raw.steps,
            index,
            params: &raw.params,
        };
        let step = StepCheck {
            table,
            scope,
            target_kind,
        }
        .check(&mut seen, diags);
        checked.extend(step);
    }
    let header = header?;
    if diags.len() != before || checked.len() != raw.steps.len() {
        return None;
    }
    names.insert(header.name.clone(), header.source.clone());
    Some(Runbook {
        name: header.name,
        description: header.description,
        severity: header.severity,
        target_kind: header.target_kind,
        alerts: header.alerts,
        max_steps: header.max_steps,
        params,
        steps: checked,
        source: header.source,
    })
}

/// The index of `step[N]`.
fn step_index(path: &str) -> usize {
    path.strip_prefix("step[")
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

/// `[runbook]`, checked.
struct Header {
    name: String,
    description: String,
    severity: Severity,
    target_kind: TargetKind,
    alerts: Vec<Matcher>,
    max_steps: u32,
    source: Location,
}

fn check_header(
    table: &Table<'_, HeaderFile>,
    names: &BTreeMap<String, Location>,
    diags: &mut Diagnostics,
) -> Option<Header> {
    let file = &table.value;
    let source = table.source;
    let name = table.require("name", &file.name, diags);
    let target_kind = table.require("target_kind", &file.target_kind, diags);
    let mut valid_name = true;
    if let Some(name) = name {
        let text = name.get_ref();
        if !is_valid_runbook_name(text) {
            valid_name = false;
            diags.push(source.error(
                &name.span(),
                table.field("name"),
                format!(
                    "invalid runbook name {text:?}: use lowercase letters, digits and `-`, at \
                     most {MAX_NAME} characters"
                ),
            ));
        } else if let Some(first) = names.get(text) {
            valid_name = false;
            diags.push(source.error(
                &name.span(),
                table.field("name"),
                format!(
                    "runbook `{text}` is already defined at {first}: runbook names must be \
                     unique across the folder"
                ),
            ));
        }
    }
    let mut alerts = Vec::new();
    for (i, text) in file.alerts.iter().flatten().enumerate() {
        match Matcher::parse(text.get_ref()) {
            Ok(matcher) => alerts.push(matcher),
            Err(message) => diags.push(source.error(
                &text.span(),
                format!("{}[{i}]", table.field("alerts")),
                message,
            )),
        }
    }
    let max_steps = match &file.max_steps {
        None => DEFAULT_MAX_STEPS,
        Some(value) => {
            let n = *value.get_ref();
            match u32::try_from(n) {
                Ok(n) if (1..=MAX_MAX_STEPS).contains(&n) => n,
                _ => {
                    diags.push(source.error(
                        &value.span(),
                        table.field("max_steps"),
                        format!("must be between 1 and {MAX_MAX_STEPS}, not {n}"),
                    ));
                    DEFAULT_MAX_STEPS
                }
            }
        }
    };
    let (name, target_kind) = (name?, target_kind?);
    if !valid_name {
        return None;
    }
    Some(Header {
        name: name.get_ref().clone(),
        description: file.description.clone().unwrap_or_default(),
        severity: file.severity.unwrap_or_default(),
        target_kind: *target_kind,
        alerts,
        max_steps,
        source: Location {
            file: source.file.to_path_buf(),
            line: source.line(&table.span),
        },
    })
}

fn check_params(
    table: &Table<'_, BTreeMap<String, Spanned<ParamFile>>>,
    diags: &mut Diagnostics,
) -> BTreeMap<String, ParamSpec> {
    let source = table.source;
    let mut out = BTreeMap::new();
    for (name, param) in &table.value {
        let path = push_key(table.path.clone(), name);
        let field = |f: &str| push_key(path.clone(), f);
        if !is_valid_param_name(name) {
            diags.push(source.error(
                &param.span(),
                path.clone(),
                format!(
                    "invalid parameter name {name:?}: use letters, digits and `_`, not \
                     starting with a digit (expressions read it as `params.<name>`)"
                ),
            ));
        }
        let spec = param.get_ref();
        let Some(kind) = spec.kind else {
            diags.push(source.error(
                &param.span(),
                field("type"),
                "missing field `type`: one of `string`, `integer`, `number`, `bool`, `duration`",
            ));
            continue;
        };
        let default = match &spec.default {
            None => None,
            Some(value) => match default_value(kind, value.get_ref()) {
                Ok(v) => Some(v),
                Err(message) => {
                    diags.push(source.error(&value.span(), field("default"), message));
                    None
                }
            },
        };
        out.insert(
            name.clone(),
            ParamSpec {
                kind,
                default,
                description: spec.description.clone().unwrap_or_default(),
            },
        );
    }
    out
}

/// A default, if it fits `kind`.
fn default_value(kind: ParamType, value: &toml::Value) -> Result<ParamValue, String> {
    use toml::Value as V;
    let value = match (kind, value) {
        (ParamType::String, V::String(s)) => ParamValue::String(s.clone()),
        (ParamType::Integer, V::Integer(i)) => ParamValue::Integer(*i),
        #[allow(clippy::cast_precision_loss)]
        (ParamType::Number, V::Integer(i)) => ParamValue::Number(*i as f64),
        (ParamType::Number, V::Float(f)) => ParamValue::Number(*f),
        (ParamType::Bool, V::Boolean(b)) => ParamValue::Bool(*b),
        (ParamType::Duration, V::String(s)) => ParamValue::Duration(parse_duration(s)?),
        _ => {
            let expected = match kind {
                ParamType::String => "a string",
                ParamType::Integer => "an integer",
                ParamType::Number => "a number",
                ParamType::Bool => "true or false",
                ParamType::Duration => "a duration string like \"30s\"",
            };
            return Err(format!(
                "the default {value} does not fit type `{kind}`: expected {expected}"
            ));
        }
    };
    Ok(value)
}

/// One step's checks.
struct StepCheck<'a, 's> {
    table: &'a Table<'s, StepFile>,
    scope: Scope<'a>,
    /// `None` if `[runbook]` is missing or broken.
    target_kind: Option<TargetKind>,
}

impl<'a> StepCheck<'a, '_> {
    fn error(
        &self,
        span: &Range<usize>,
        field: &str,
        message: impl AsRef<str>,
    ) -> crate::diag::Diagnostic {
        // `field` is a path below the step, like `args[2]` or `params.table`.
        let path = format!("{}.{field}", self.table.path);
        self.table.source.error(span, path, message)
    }

    /// Checks a CEL expression field (`field` may be like `args[2]`).
    fn cel(&self, field: &str, value: &Spanned<String>, diags: &mut Diagnostics) {
        for message in refs::check_cel(value.get_ref(), &self.scope) {
            diags.push(self.error(&value.span(), field, message));
        }
    }

    /// Checks a field naming a step (`else`, `goto:`, `refresh`); returns
    /// its index.
    fn step_ref(
        &self,
        field: &str,
        span: &Range<usize>,
        id: &str,
        diags: &mut Diagnostics,
    ) -> Option<usize> {
        let found = self.scope.find(id);
        if found.is_none() {
            diags.push(self.error(
                span,
                field,
                format!(
                    "there is no step with id {id:?} (ids: {})",
                    known_names(self.scope.steps.iter().filter_map(|s| s.id.as_deref()))
                ),
            ));
        }
        found
    }

    fn duration(
        &self,
        field: &str,
        value: &Spanned<String>,
        min: Duration,
        diags: &mut Diagnostics,
    ) -> Option<Duration> {
        match parse_duration(value.get_ref()) {
            Ok(d) if d < min || d.is_zero() => {
                let least = if min.is_zero() {
                    "greater than zero".to_owned()
                } else {
                    format!("at least {}", super::format_duration(min))
                };
                diags.push(self.error(&value.span(), field, format!("must be {least}")));
                None
            }
            Ok(d) => Some(d),
            Err(message) => {
                diags.push(self.error(&value.span(), field, message));
                None
            }
        }
    }

    fn check(&self, seen: &mut BTreeMap<&'a str, usize>, diags: &mut Diagnostics) -> Option<Step> {
        let table: &'a Table<'_, StepFile> = self.table;
        let file = &table.value;
        let source = table.source;
        let before = diags.len();
        let id = table.require("id", &file.id, diags);
        let kind = table.require("kind", &file.kind, diags);
        if let Some(id) = id {
            let text = id.get_ref();
            if !is_valid_step_id(text) {
                diags.push(self.error(
                    &id.span(),
                    "id",
                    format!(
                        "invalid step id {text:?}: use lowercase letters, digits and `_`, at \
                         most {MAX_NAME} characters"
                    ),
                ));
            } else if let Some(line) = seen.get(text.as_str()) {
                diags.push(self.error(
                    &id.span(),
                    "id",
                    format!("duplicate step id {text:?}: already used at line {line}"),
                ));
            } else {
                seen.insert(text.as_str(), source.line(&id.span()));
            }
        }
        if let Some(when) = &file.when {
            self.cel("when", when, diags);
        }
        let timeout = file
            .timeout
            .as_ref()
            .and_then(|t| self.duration("timeout", t, Duration::ZERO, diags));
        let on_failure = self.on_failure(diags);

        let kind = *kind?.get_ref();
        for (name, span) in file.given() {
            if !kind.fields().contains(&name) {
                let span = if span == (0..0) {
                    table.span.clone()
                } else {
                    span
                };
                diags.push(self.error(
                    &span,
                    name,
                    format!(
                        "`{name}` does not apply to a `{}` step (it takes `{}`, besides `id`, \
                         `kind`, `title`, `when`, `timeout` and `on_failure`)",
                        kind.as_str(),
                        kind.fields().join("`, `")
                    ),
                ));
            }
        }
        let step_kind = match kind {
            KindName::Query => self.query(diags).map(StepKind::Query),
            KindName::Check => self.check_step(diags),
            KindName::Action => self.action(diags),
            KindName::RunPlugin => self.run_plugin(diags),
            KindName::Wait => self.wait(diags),
            KindName::Note => self.note(diags),
        };
        let (id, step_kind) = (id?, step_kind?);
        if diags.len() != before {
            return None;
        }
        Some(Step {
            id: id.get_ref().clone(),
            title: file.title.clone(),
            when: file.when.as_ref().map(|w| w.get_ref().clone()),
            timeout,
            on_failure,
            kind: step_kind,
            line: source.line(&table.span),
        })
    }

    fn on_failure(&self, diags: &mut Diagnostics) -> OnFailure {
        let Some(value) = &self.table.value.on_failure else {
            return OnFailure::Stop;
        };
        let text = value.get_ref().trim();
        match text {
            "stop" => OnFailure::Stop,
            "continue" => OnFailure::Continue,
            _ => match text.strip_prefix("goto:") {
                Some(id) => {
                    let id = id.trim();
                    self.step_ref("on_failure", &value.span(), id, diags);
                    OnFailure::Goto(id.to_owned())
                }
                None => {
                    diags.push(self.error(
                        &value.span(),
                        "on_failure",
                        format!(
                            "invalid value {text:?}: expected `stop`, `continue` or \
                             `goto:<step id>`"
                        ),
                    ));
                    OnFailure::Stop
                }
            },
        }
    }

    /// Whether `field` fits the runbook's target kind.
    fn fits(
        &self,
        field: &str,
        span: &Range<usize>,
        kinds: &[TargetKind],
        what: &str,
        diags: &mut Diagnostics,
    ) {
        if let Some(kind) = self.target_kind
            && !kinds.contains(&kind)
        {
            diags.push(self.error(
                span,
                field,
                format!("`{field}` {what}: it does not fit target_kind \"{kind}\""),
            ));
        }
    }

    /// `sql` (with `args`) or `mongo` (with `database`): the one given.
    fn statement(&self, diags: &mut Diagnostics) -> Option<Statement> {
        let file = &self.table.value;
        if let Some(sql) = &file.sql {
            self.fits(
                "sql",
                &sql.span(),
                &[TargetKind::Postgres, TargetKind::Sqlite],
                "is for SQL targets (MongoDB runbooks use `mongo`)",
                diags,
            );
            if let Some(database) = &file.database {
                diags.push(self.error(
                    &database.span(),
                    "database",
                    "`database` goes with `mongo`, not `sql`",
                ));
            }
            // `{{ ... }}` interpolates names (always as quoted identifiers):
            // checked like a note's template.
            if sql.get_ref().contains("{{") || sql.get_ref().contains("{%") {
                for message in refs::check_template(sql.get_ref(), &self.scope) {
                    diags.push(self.error(&sql.span(), "sql", message));
                }
            }
            let mut args = Vec::new();
            for (i, arg) in file.args.iter().flatten().enumerate() {
                self.cel(&format!("args[{i}]"), arg, diags);
                args.push(arg.get_ref().clone());
            }
            return Some(Statement::Sql {
                sql: sql.get_ref().clone(),
                args,
            });
        }
        let mongo = file.mongo.as_ref()?;
        self.fits(
            "mongo",
            &mongo.span(),
            &[TargetKind::Mongodb],
            "is for MongoDB targets (SQL runbooks use `sql`)",
            diags,
        );
        if let Some(arg) = file.args.as_ref().and_then(|a| a.first()) {
            diags.push(self.error(
                &arg.span(),
                "args",
                "`args` bind `$1, $2, ...` of `sql`: they do not apply to `mongo`",
            ));
        }
        match serde_json::from_str::<serde_json::Value>(mongo.get_ref()) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => diags.push(self.error(
                &mongo.span(),
                "mongo",
                "must be a JSON object: the command, like '{\"aggregate\": 1, \"pipeline\": [], \"cursor\": {}}'",
            )),
            Err(e) => diags.push(self.error(
                &mongo.span(),
                "mongo",
                format!("invalid JSON command: {e}"),
            )),
        }
        Some(Statement::Mongo {
            command: mongo.get_ref().clone(),
            database: file.database.as_ref().map(|d| d.get_ref().clone()),
        })
    }

    fn query(&self, diags: &mut Diagnostics) -> Option<Statement> {
        let file = &self.table.value;
        match (&file.sql, &file.mongo) {
            (Some(_), Some(mongo)) => {
                diags.push(self.error(
                    &mongo.span(),
                    "mongo",
                    "give either `sql` or `mongo`, not both",
                ));
                None
            }
            (None, None) => {
                if !self.table.is_broken("sql") && !self.table.is_broken("mongo") {
                    diags.push(self.error(
                        &self.table.span,
                        "sql",
                        "missing field: a query step needs `sql` (SQL targets) or `mongo` \
                         (MongoDB targets)",
                    ));
                }
                None
            }
            _ => self.statement(diags),
        }
    }

    fn check_step(&self, diags: &mut Diagnostics) -> Option<StepKind> {
        let file = &self.table.value;
        let expr = self.table.require("expr", &file.expr, diags);
        if let Some(expr) = expr {
            self.cel("expr", expr, diags);
        }
        if let Some(otherwise) = &file.otherwise {
            self.step_ref("else", &otherwise.span(), otherwise.get_ref(), diags);
        }
        Some(StepKind::Check {
            expr: expr?.get_ref().clone(),
            otherwise: file.otherwise.as_ref().map(|o| o.get_ref().clone()),
        })
    }

    fn action(&self, diags: &mut Diagnostics) -> Option<StepKind> {
        const WHAT: [&str; 5] = ["terminate", "cancel", "kill_ops", "sql", "mongo"];
        let file = &self.table.value;
        let given: Vec<(&str, &Spanned<String>)> = [
            &file.terminate,
            &file.cancel,
            &file.kill_ops,
            &file.sql,
            &file.mongo,
        ]
        .into_iter()
        .zip(WHAT)
        .filter_map(|(value, name)| Some((name, value.as_ref()?)))
        .collect();
        let requires_approval = file.requires_approval.as_ref().is_none_or(|r| *r.get_ref());
        let (name, value) = match given.as_slice() {
            [] => {
                if !WHAT.iter().any(|w| self.table.is_broken(w)) {
                    diags.push(self.error(
                        &self.table.span,
                        "kind",
                        "an action step needs exactly one of `terminate`, `cancel` (PostgreSQL), \
                         `kill_ops` (MongoDB), `sql` or `mongo`",
                    ));
                }
                return None;
            }
            [(name, value)] => (*name, *value),
            [(first, _), (second, value), ..] => {
                diags.push(self.error(
                    &value.span(),
                    second,
                    format!(
                        "an action step takes exactly one of `terminate`, `cancel`, `kill_ops`, \
                         `sql` or `mongo`: `{first}` is given already"
                    ),
                ));
                return None;
            }
        };
        let action = match name {
            "terminate" | "cancel" => {
                self.fits(
                    name,
                    &value.span(),
                    &[TargetKind::Postgres],
                    "ends PostgreSQL backends",
                    diags,
                );
                self.cel(name, value, diags);
                let e = value.get_ref().clone();
                if name == "terminate" {
                    Action::Terminate(e)
                } else {
                    Action::Cancel(e)
                }
            }
            "kill_ops" => {
                self.fits(
                    name,
                    &value.span(),
                    &[TargetKind::Mongodb],
                    "kills MongoDB operations",
                    diags,
                );
                self.cel(name, value, diags);
                Action::KillOps(value.get_ref().clone())
            }
            _ => Action::Statement(self.statement(diags)?),
        };
        if !matches!(action, Action::Statement(_)) {
            for (field, span) in [
                (
                    "args",
                    file.args
                        .as_ref()
                        .and_then(|a| a.first())
                        .map(Spanned::span),
                ),
                ("database", file.database.as_ref().map(Spanned::span)),
            ] {
                if let Some(span) = span {
                    diags.push(self.error(
                        &span,
                        field,
                        format!("`{field}` goes with `sql` or `mongo`, not `{name}`"),
                    ));
                }
            }
        }
        Some(StepKind::Action {
            action,
            requires_approval,
        })
    }

    fn run_plugin(&self, diags: &mut Diagnostics) -> Option<StepKind> {
        let file = &self.table.value;
        let plugin = self.table.require("plugin", &file.plugin, diags);
        if let Some(plugin) = plugin
            && !is_valid_plugin_name(plugin.get_ref())
        {
            diags.push(self.error(
                &plugin.span(),
                "plugin",
                format!(
                    "invalid plugin name {:?}: use lowercase letters, digits and `-`, starting \
                     with a letter",
                    plugin.get_ref()
                ),
            ));
        }
        let mut params = BTreeMap::new();
        for (key, value) in file.params.iter().flatten() {
            self.cel(&push_key("params".to_owned(), key), value, diags);
            params.insert(key.clone(), value.get_ref().clone());
        }
        if let Some(target) = &file.target {
            self.cel("target", target, diags);
        }
        Some(StepKind::RunPlugin {
            plugin: plugin?.get_ref().clone(),
            params,
            target: file.target.as_ref().map(|t| t.get_ref().clone()),
        })
    }

    fn wait(&self, diags: &mut Diagnostics) -> Option<StepKind> {
        let file = &self.table.value;
        let until = self.table.require("until", &file.until, diags);
        if let Some(until) = until {
            self.cel("until", until, diags);
        }
        if let Some(refresh) = &file.refresh {
            let id = refresh.get_ref();
            if let Some(index) = self.step_ref("refresh", &refresh.span(), id, diags) {
                let kind = self.scope.steps.get(index).and_then(|s| s.kind.as_deref());
                if kind.is_some_and(|k| k != "query") {
                    diags.push(self.error(
                        &refresh.span(),
                        "refresh",
                        format!(
                            "step {id:?} is a `{}` step: `refresh` re-runs a `query` step",
                            kind.unwrap_or_default()
                        ),
                    ));
                }
            }
        }
        let every = file
            .every
            .as_ref()
            .and_then(|e| self.duration("every", e, MIN_EVERY, diags));
        Some(StepKind::Wait {
            refresh: file.refresh.as_ref().map(|r| r.get_ref().clone()),
            every,
            until: until?.get_ref().clone(),
        })
    }

    fn note(&self, diags: &mut Diagnostics) -> Option<StepKind> {
        let text = self.table.require("text", &self.table.value.text, diags)?;
        for message in refs::check_template(text.get_ref(), &self.scope) {
            diags.push(self.error(&text.span(), "text", message));
        }
        Some(StepKind::Note {
            text: text.get_ref().clone(),
        })
    }
}
