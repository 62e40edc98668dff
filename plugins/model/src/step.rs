//! One `[[step]]` of a runbook, and its JSON form: one flat object per step
//! with the fields named as in the file (`else` included), `kind` saying
//! which apply. Optional fields that are not set are absent, except
//! `on_failure` (always: `stop`, `continue` or `goto:<id>`) and an action's
//! `requires_approval` (always, default `true`). Durations are strings like
//! `"30s"` or `"1m30s"`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{format_duration, parse_duration};

/// One `[[step]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StepWire", into = "StepWire")]
pub struct Step {
    /// `[a-z0-9_]`, at most 64 characters; unique in the runbook.
    pub id: String,
    pub title: Option<String>,
    /// CEL guard: the step is skipped when it is false.
    pub when: Option<String>,
    pub timeout: Option<Duration>,
    pub on_failure: OnFailure,
    pub kind: StepKind,
    /// The line of its `[[step]]` header in the runbook file, as the host
    /// read it; not on the wire (0 when read from JSON).
    pub line: usize,
}

impl Step {
    /// `title`, else the id.
    pub fn label(&self) -> &str {
        self.title.as_deref().unwrap_or(&self.id)
    }

    /// True for an action that runs only in an approved run.
    pub fn needs_approval(&self) -> bool {
        matches!(
            self.kind,
            StepKind::Action {
                requires_approval: true,
                ..
            }
        )
    }
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

impl FromStr for OnFailure {
    type Err = String;

    /// `stop`, `continue` or `goto:<id>` (the id trimmed, not checked).
    fn from_str(text: &str) -> Result<OnFailure, String> {
        match text {
            "stop" => Ok(OnFailure::Stop),
            "continue" => Ok(OnFailure::Continue),
            _ => match text.strip_prefix("goto:") {
                Some(id) if !id.trim().is_empty() => Ok(OnFailure::Goto(id.trim().to_owned())),
                _ => Err(format!(
                    "`{text}` is not `stop`, `continue` or `goto:<step id>`"
                )),
            },
        }
    }
}

/// [`Step`] as JSON: every field of every kind, flat.
#[derive(Default, Serialize, Deserialize)]
struct StepWire {
    id: String,
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    when: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on_failure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sql: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    args: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mongo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expr: Option<String>,
    #[serde(default, rename = "else", skip_serializing_if = "Option::is_none")]
    otherwise: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    terminate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cancel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kill_ops: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    requires_approval: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plugin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    params: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    every: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

impl StepWire {
    fn put_statement(&mut self, statement: Statement) {
        match statement {
            Statement::Sql { sql, args } => {
                self.sql = Some(sql);
                self.args = Some(args);
            }
            Statement::Mongo { command, database } => {
                self.mongo = Some(command);
                self.database = database;
            }
        }
    }

    fn take_statement(&mut self) -> Option<Statement> {
        if let Some(sql) = self.sql.take() {
            Some(Statement::Sql {
                sql,
                args: self.args.take().unwrap_or_default(),
            })
        } else {
            self.mongo.take().map(|command| Statement::Mongo {
                command,
                database: self.database.take(),
            })
        }
    }
}

impl From<Step> for StepWire {
    fn from(step: Step) -> StepWire {
        let mut w = StepWire {
            id: step.id,
            kind: step.kind.as_str().to_owned(),
            title: step.title,
            when: step.when,
            timeout: step.timeout.map(format_duration),
            on_failure: Some(step.on_failure.to_string()),
            ..StepWire::default()
        };
        match step.kind {
            StepKind::Query(statement) => w.put_statement(statement),
            StepKind::Check { expr, otherwise } => {
                w.expr = Some(expr);
                w.otherwise = otherwise;
            }
            StepKind::Action {
                action,
                requires_approval,
            } => {
                match action {
                    Action::Terminate(e) => w.terminate = Some(e),
                    Action::Cancel(e) => w.cancel = Some(e),
                    Action::KillOps(e) => w.kill_ops = Some(e),
                    Action::Statement(statement) => w.put_statement(statement),
                }
                w.requires_approval = Some(requires_approval);
            }
            StepKind::RunPlugin {
                plugin,
                params,
                target,
            } => {
                w.plugin = Some(plugin);
                w.params = Some(params);
                w.target = target;
            }
            StepKind::Wait {
                refresh,
                every,
                until,
            } => {
                w.refresh = refresh;
                w.every = every.map(format_duration);
                w.until = Some(until);
            }
            StepKind::Note { text } => w.text = Some(text),
        }
        w
    }
}

impl TryFrom<StepWire> for Step {
    type Error = String;

    fn try_from(mut w: StepWire) -> Result<Step, String> {
        let id = std::mem::take(&mut w.id);
        let bad = |why: &str| format!("step `{id}`: {why}");
        let duration = |field: &str, text: Option<&String>| match text {
            None => Ok(None),
            Some(text) => parse_duration(text)
                .map(Some)
                .ok_or_else(|| bad(&format!("`{field}` {text:?} is not a duration"))),
        };
        let timeout = duration("timeout", w.timeout.as_ref())?;
        let on_failure = match &w.on_failure {
            None => OnFailure::Stop,
            Some(text) => text.parse().map_err(|e: String| bad(&e))?,
        };
        let kind = match w.kind.as_str() {
            "query" => StepKind::Query(
                w.take_statement()
                    .ok_or_else(|| bad("a query step needs `sql` or `mongo`"))?,
            ),
            "check" => StepKind::Check {
                expr: w.expr.take().unwrap_or_else(|| "true".to_owned()),
                otherwise: w.otherwise.take(),
            },
            "action" => {
                let action = if let Some(e) = w.terminate.take() {
                    Action::Terminate(e)
                } else if let Some(e) = w.cancel.take() {
                    Action::Cancel(e)
                } else if let Some(e) = w.kill_ops.take() {
                    Action::KillOps(e)
                } else {
                    Action::Statement(w.take_statement().ok_or_else(|| {
                        bad("an action needs terminate, cancel, kill_ops, sql or mongo")
                    })?)
                };
                StepKind::Action {
                    action,
                    requires_approval: w.requires_approval.unwrap_or(true),
                }
            }
            "run_plugin" => StepKind::RunPlugin {
                plugin: w.plugin.take().unwrap_or_default(),
                params: w.params.take().unwrap_or_default(),
                target: w.target.take(),
            },
            "wait" => StepKind::Wait {
                refresh: w.refresh.take(),
                every: duration("every", w.every.as_ref())?,
                until: w.until.take().unwrap_or_else(|| "true".to_owned()),
            },
            "note" => StepKind::Note {
                text: w.text.take().unwrap_or_default(),
            },
            other => return Err(bad(&format!("unknown step kind `{other}`"))),
        };
        Ok(Step {
            id,
            title: w.title,
            when: w.when,
            timeout,
            on_failure,
            kind,
            line: 0,
        })
    }
}
