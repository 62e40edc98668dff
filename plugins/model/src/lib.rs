//! Warden's runbook model: one set of types for the host, which loads and
//! checks runbook files (`agent/src/runbook`), and for the guest `runbook`
//! plugin, which runs them (`plugins/runbook`). The types and defaults live
//! here once; so does their JSON form, which is what
//! `warden:plugin/runbooks.get` returns (documented in `wit/plugin.wit`).
//!
//! The host reads files through its own `Document`/`Diagnostic` machinery
//! (errors with file, line and field) and builds these types; the guest
//! reads them back from the host's JSON with serde. No host dependencies:
//! the crate builds for the host and for `wasm32-wasip2`.
//!
//! ```
//! use warden_model::{Runbook, StepKind, DEFAULT_MAX_STEPS};
//!
//! let json = r#"{"name": "pg-x", "target_kind": "postgres",
//!                "steps": [{"id": "q", "kind": "query", "sql": "SELECT 1", "on_failure": "stop"}]}"#;
//! let runbook: Runbook = serde_json::from_str(json).unwrap();
//! assert_eq!(runbook.max_steps, DEFAULT_MAX_STEPS);
//! assert!(matches!(runbook.steps[0].kind, StepKind::Query(_)));
//! ```

mod step;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use step::{Action, OnFailure, Statement, Step, StepKind};

/// `max_steps` when a runbook does not set it.
pub const DEFAULT_MAX_STEPS: u32 = 100;
/// The largest `max_steps` a runbook may set.
pub const MAX_MAX_STEPS: u32 = 1000;

const fn default_max_steps() -> u32 {
    DEFAULT_MAX_STEPS
}

/// One runbook, as `runbooks.get` gives it to plugins. The host keeps its
/// own header (typed target kind, parsed matchers, file location) and
/// builds this for the wire; the steps and parameters are these types on
/// both sides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Runbook {
    /// `[a-z0-9-]`, at most 64 characters; unique across the folder.
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub severity: Severity,
    /// `postgres`, `mongodb` or `sqlite`; empty when unknown.
    #[serde(default)]
    pub target_kind: String,
    /// Alertmanager matchers, as written (`alertname="X"`).
    #[serde(default)]
    pub alerts: Vec<String>,
    /// Bound on the steps executed in one run (`goto` loops).
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    /// Parameter name to its spec.
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
    /// In file order; ids are unique.
    pub steps: Vec<Step>,
    /// `file:line` of the `[runbook]` table.
    #[serde(default)]
    pub source: String,
}

impl Runbook {
    /// The step with id `id`.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }
}

/// How bad the incident a runbook handles is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parameter of a runbook. On the wire: `{"type", "default"?,
/// "description"}`, the default as JSON of its type (a duration as a
/// string like `"1m30s"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ParamSpecWire", into = "ParamSpecWire")]
pub struct ParamSpec {
    pub kind: ParamType,
    /// Of type `kind`; `None`: the parameter is required.
    pub default: Option<ParamValue>,
    pub description: String,
}

/// [`ParamSpec`] as JSON.
#[derive(Serialize, Deserialize)]
struct ParamSpecWire {
    #[serde(rename = "type")]
    kind: ParamType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default: Option<Value>,
    #[serde(default)]
    description: String,
}

impl From<ParamSpec> for ParamSpecWire {
    fn from(spec: ParamSpec) -> ParamSpecWire {
        ParamSpecWire {
            kind: spec.kind,
            default: spec.default.as_ref().map(ParamValue::to_json),
            description: spec.description,
        }
    }
}

impl TryFrom<ParamSpecWire> for ParamSpec {
    type Error = String;

    fn try_from(wire: ParamSpecWire) -> Result<ParamSpec, String> {
        let default = match &wire.default {
            None => None,
            Some(value) => Some(
                ParamValue::from_json(wire.kind, value)
                    .ok_or_else(|| format!("the default {value} is not of type `{}`", wire.kind))?,
            ),
        };
        Ok(ParamSpec {
            kind: wire.kind,
            default,
            description: wire.description,
        })
    }
}

/// The type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

    /// The value of type `kind` that [`ParamValue::to_json`] gave as `json`.
    pub fn from_json(kind: ParamType, json: &Value) -> Option<ParamValue> {
        Some(match kind {
            ParamType::String => ParamValue::String(json.as_str()?.to_owned()),
            ParamType::Integer => ParamValue::Integer(json.as_i64()?),
            ParamType::Number => ParamValue::Number(json.as_f64()?),
            ParamType::Bool => ParamValue::Bool(json.as_bool()?),
            ParamType::Duration => ParamValue::Duration(parse_duration(json.as_str()?)?),
        })
    }
}

/// `d` as a string like `"30s"`, `"1m30s"`, `"1h"`, `"250ms"` or `"0s"`:
/// units `d`, `h`, `m`, `s`, `ms`, `us`, `ns`, largest first, no spaces.
/// [`parse_duration`] reads it back.
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

/// Reads what [`format_duration`] writes: whole numbers each followed by a
/// unit (`d`, `h`, `m`, `s`, `ms`, `us`, `ns`), summed. `None` for anything
/// else.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let letters = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(letters);
        let n: u64 = number.parse().ok()?;
        let part = match unit {
            "d" => Duration::from_secs(n.checked_mul(86_400)?),
            "h" => Duration::from_secs(n.checked_mul(3_600)?),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "s" => Duration::from_secs(n),
            "ms" => Duration::from_millis(n),
            "us" => Duration::from_micros(n),
            "ns" => Duration::from_nanos(n),
            _ => return None,
        };
        total = total.checked_add(part)?;
        rest = after;
    }
    Some(total)
}

#[cfg(test)]
mod tests;
