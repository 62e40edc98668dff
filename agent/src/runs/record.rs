//! The run record: what the state database keeps about every run.

use crate::capability::CapabilityClass;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// How a run ended (or where it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Started and not finished yet (or the agent died during it).
    Running,
    /// The plugin returned a report.
    Succeeded,
    /// The plugin returned an error.
    Failed,
    /// The plugin trapped (panic, stack overflow, invalid operation).
    Trapped,
    /// The run's deadline passed.
    TimedOut,
    /// The run hit a resource limit (memory, table size).
    LimitExceeded,
    /// No grant allows this plugin on this target.
    Denied,
    /// The request was invalid (unknown plugin, bad parameter).
    Rejected,
}

impl RunStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Trapped => "trapped",
            RunStatus::TimedOut => "timed-out",
            RunStatus::LimitExceeded => "limit-exceeded",
            RunStatus::Denied => "denied",
            RunStatus::Rejected => "rejected",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is to blame for a failed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Blame {
    /// The plugin: it trapped, timed out, exceeded a limit, or returned an error.
    Guest,
    /// The agent: a bug or a local resource problem.
    Host,
    /// The database the run worked on.
    Target,
    /// The request or the policy: no grant, bad parameters.
    Request,
}

/// Why a run did not succeed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunError {
    pub blame: Blame,
    /// The WIT error case or the host's failure kind (`access-denied`, `trap`, `timeout`, ...).
    pub kind: String,
    pub message: String,
}

/// What started a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Trigger {
    Manual {
        by: String,
    },
    Schedule {
        name: String,
    },
    Alert {
        status: String,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
        fingerprint: String,
        starts_at: String,
    },
}

impl Trigger {
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Manual { .. } => "manual",
            Trigger::Schedule { .. } => "schedule",
            Trigger::Alert { .. } => "alert",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportStatus {
    Ok,
    Warning,
    Critical,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    pub title: String,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_action: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionState {
    Executed,
    Planned,
    Failed,
}

/// Who recorded an action: the host (authoritative: it saw the statement) or
/// the plugin (a claim or a suggestion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    Host,
    Plugin,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub target: String,
    pub statement: String,
    pub class: CapabilityClass,
    pub state: ActionState,
    pub origin: Origin,
    /// For host actions that failed: the database's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    pub value: f64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
}

/// A run's structured report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub status: ReportStatus,
    pub summary: String,
    pub findings: Vec<Finding>,
    pub actions: Vec<Action>,
    pub metrics: Vec<Metric>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub at: DateTime<Utc>,
    pub level: String,
    pub message: String,
}

/// Everything recorded about one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub plugin: String,
    /// SHA-256 of the plugin's component, hex.
    pub digest: String,
    pub plugin_version: String,
    pub target: String,
    pub trigger: Trigger,
    pub params: BTreeMap<String, String>,
    pub dry_run: bool,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
    /// Host-recorded actions (also in the report when there is one).
    #[serde(default)]
    pub actions: Vec<Action>,
    #[serde(default)]
    pub logs: Vec<LogLine>,
    /// Log lines over the per-run cap, counted and dropped.
    #[serde(default)]
    pub logs_dropped: u64,
}

impl RunRecord {
    /// Duration in milliseconds, when finished.
    pub fn duration_ms(&self) -> Option<i64> {
        self.ended_at
            .map(|e| (e - self.started_at).num_milliseconds())
    }
}
