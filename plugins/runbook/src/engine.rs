//! Runs a runbook's steps in order over [`Effects`] (the host calls), and
//! keeps the incident timeline: what each step saw, what it decided and
//! why, what it did or would do, and how long it took.
//!
//! Expressions are CEL (`cel-interpreter`), notes are minijinja templates;
//! both see `params` (typed; durations in seconds), `alert` (`labels`,
//! `annotations`, `status`), `target` and `steps.<id>` (each step's output,
//! see `policies/runbooks/README.md`).
//!
//! Guarantees kept here: at most `max_steps` steps run (a `goto` loop ends
//! with a clear stop, never a hang); an action that needs approval runs only
//! in an approved run (in dry-run the host plans it; in a run nobody
//! approved the runbook stops there and says so); a `wait` ends at its
//! timeout or when the run's deadline comes near; a per-step `timeout` is
//! checked between the step's host calls.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use warden_sdk::parse_duration;

use crate::model::{
    Action, OnFailure, ParamType, Runbook, Statement, Step, StepKind, format_duration,
};

/// A query's rows (SQL) or documents (MongoDB), as JSON.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryOut {
    pub rows: Vec<Value>,
    pub truncated: bool,
}

/// What a mutating host call did.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionOut {
    /// False in dry-run: planned.
    pub executed: bool,
    /// One line: what was (or would be) done, and to what.
    pub detail: String,
}

/// A run another plugin was asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct Started {
    pub id: String,
    pub state: String,
    pub summary: String,
}

/// The host calls a runbook makes. Errors are one line for the timeline.
pub trait Effects {
    /// Asks the host to open the action of step `step` of `runbook`
    /// (`runbooks.begin-action`): the host's own check of the step's
    /// approval, from the runbook it loaded.
    fn begin_action(&mut self, runbook: &str, step: &str) -> Result<(), String>;
    fn query_sql(&mut self, sql: &str, args: &[Value]) -> Result<QueryOut, String>;
    fn query_mongo(&mut self, database: &str, command: &str) -> Result<QueryOut, String>;
    fn execute_sql(&mut self, sql: &str, args: &[Value]) -> Result<ActionOut, String>;
    fn execute_mongo(&mut self, database: &str, command: &str) -> Result<ActionOut, String>;
    fn signal_backend(&mut self, pid: i64, terminate: bool) -> Result<ActionOut, String>;
    fn kill_op(&mut self, opid: i64) -> Result<ActionOut, String>;
    fn start_plugin(
        &mut self,
        plugin: &str,
        target: &str,
        params: &[(String, String)],
    ) -> Result<Started, String>;
    fn sleep(&mut self, duration: Duration);
    /// Milliseconds since some fixed point.
    fn now_ms(&mut self) -> u64;
    /// Milliseconds before the host stops the run.
    fn remaining_ms(&mut self) -> u64;
}

/// What the run knows besides the runbook.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// The invocation's parameters, as text (the runbook's own, typed by
    /// its specs; others are refused).
    pub params: BTreeMap<String, String>,
    /// `{"labels": {..}, "annotations": {..}, "status": ".."}`, or null.
    pub alert: Value,
    pub target: String,
    pub dry_run: bool,
    pub approved: bool,
}

/// How a step went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Skipped,
    /// Dry-run: the host planned the change.
    Planned,
    Failed,
    AwaitingApproval,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Skipped => "skipped",
            Status::Planned => "planned",
            Status::Failed => "failed",
            Status::AwaitingApproval => "awaiting approval",
        }
    }
}

/// One line of the timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub step: String,
    pub kind: String,
    pub title: String,
    pub status: Status,
    pub saw: String,
    pub decided: String,
    pub did: String,
    pub ms: u64,
}

/// How the runbook ended.
#[derive(Clone, Debug, PartialEq)]
pub enum End {
    Completed,
    /// A step failed with `on_failure = stop` (or a wait ran out).
    Stopped {
        step: String,
        reason: String,
    },
    /// `max_steps` steps ran.
    StepLimit {
        max: u32,
    },
    /// An action needs approval and this run was not approved.
    AwaitingApproval {
        step: String,
    },
    /// The run's deadline came near.
    Deadline {
        step: String,
    },
}

/// The whole story.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub timeline: Vec<Entry>,
    pub end: End,
    /// Changes made (executed) and planned (dry-run).
    pub executed: u32,
    pub planned: u32,
}

/// Turns the invocation's text parameters into typed JSON by the
/// runbook's specs. Unknown names and bad values are errors naming them.
pub fn typed_params(
    runbook: &Runbook,
    given: &BTreeMap<String, String>,
) -> Result<Map<String, Value>, String> {
    for name in given.keys() {
        if !runbook.params.contains_key(name) {
            let known: Vec<&str> = runbook.params.keys().map(String::as_str).collect();
            return Err(format!(
                "runbook `{}` has no parameter `{name}` (it has: {})",
                runbook.name,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ));
        }
    }
    let mut out = Map::new();
    for (name, spec) in &runbook.params {
        let raw = match (given.get(name), &spec.default) {
            (Some(text), _) => Value::String(text.clone()),
            (None, Some(default)) => default.to_json(),
            (None, None) => {
                return Err(format!(
                    "runbook `{}` needs parameter `{name}` ({})",
                    runbook.name, spec.description
                ));
            }
        };
        let bad = |why: &str| format!("parameter `{name}` of runbook `{}`: {why}", runbook.name);
        let text = match &raw {
            Value::String(s) => s.trim().to_owned(),
            other => other.to_string(),
        };
        let value = match spec.kind {
            ParamType::Integer => json!(
                text.parse::<i64>()
                    .map_err(|_| bad(&format!("{text:?} is not an integer")))?
            ),
            ParamType::Number => json!(
                text.parse::<f64>()
                    .map_err(|_| bad(&format!("{text:?} is not a number")))?
            ),
            ParamType::Bool => json!(match text.as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(bad(&format!("{text:?} is not true or false"))),
            }),
            ParamType::Duration => {
                let d = parse_duration(&text)
                    .ok_or_else(|| bad(&format!("{text:?} is not a duration")))?;
                json!(d.as_secs_f64())
            }
            ParamType::String => Value::String(text),
        };
        out.insert(name.clone(), value);
    }
    Ok(out)
}

/// Evaluates a CEL expression over the run's variables.
pub fn eval(expression: &str, vars: &Value) -> Result<Value, String> {
    let program = cel_interpreter::Program::compile(expression)
        .map_err(|e| format!("`{expression}` does not parse: {e}"))?;
    let mut context = cel_interpreter::Context::default();
    for name in ["params", "alert", "target", "steps"] {
        context.add_variable_from_value(name, to_cel(vars.get(name).unwrap_or(&Value::Null)));
    }
    let value = program
        .execute(&context)
        .map_err(|e| format!("`{expression}`: {e}"))?;
    value
        .json()
        .map_err(|e| format!("`{expression}` gave a value with no JSON form: {e}"))
}

/// JSON as CEL values: whole numbers as `int` (JSON does not say signed
/// or unsigned; CEL does not mix them), other numbers as `double`.
fn to_cel(value: &Value) -> cel_interpreter::Value {
    use cel_interpreter::Value as Cel;
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Cel::Int(i),
            (None, Some(u), _) => Cel::UInt(u),
            (_, _, Some(f)) => Cel::Float(f),
            _ => Cel::Null,
        },
        Value::String(s) => Cel::String(std::sync::Arc::new(s.clone())),
        Value::Array(items) => Cel::List(std::sync::Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => {
            let map: std::collections::HashMap<String, Cel> =
                map.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            Cel::from(map)
        }
    }
}

fn eval_bool(expression: &str, vars: &Value) -> Result<bool, String> {
    match eval(expression, vars)? {
        Value::Bool(b) => Ok(b),
        other => Err(format!("`{expression}` gave {other}, not true or false")),
    }
}

/// A CEL result that must be a list of integers (pids, opids); a single
/// integer is a list of one.
fn eval_ids(expression: &str, vars: &Value) -> Result<Vec<i64>, String> {
    let value = eval(expression, vars)?;
    let items = match value {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        single => vec![single],
    };
    items
        .iter()
        .map(|v| {
            v.as_i64()
                .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .ok_or_else(|| format!("`{expression}` gave {v}, not an integer id"))
        })
        .collect()
}

/// A JSON value as a parameter's text: strings as they are, a list as its
/// items' texts joined with commas (`tables = "a,b"`).
fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(as_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Renders a note.
pub fn render(template: &str, vars: &Value) -> Result<String, String> {
    let env = minijinja::Environment::new();
    env.render_str(template, vars)
        .map_err(|e| format!("the note does not render: {e}"))
}

/// A statement whose text interpolates values (`{{ params.table }}`): every
/// value comes out as a quoted identifier (`"public"."outbox"`, inner
/// quotes doubled), so nothing an alert label holds can become SQL. A text
/// without `{{`/`{%` is used as it is.
pub fn render_sql(template: &str, vars: &Value) -> Result<String, String> {
    if !template.contains("{{") && !template.contains("{%") {
        return Ok(template.to_owned());
    }
    let mut env = minijinja::Environment::new();
    env.set_formatter(|out, _state, value| {
        let text = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned);
        let quoted: Vec<String> = text
            .split('.')
            .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
            .collect();
        out.write_str(&quoted.join(".")).map_err(|_| {
            minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "writing the statement")
        })
    });
    env.render_str(template, vars)
        .map_err(|e| format!("the statement does not render: {e}"))
}

/// Compact JSON of the first rows, for "what it saw".
fn glimpse(rows: &[Value]) -> String {
    let mut text = String::new();
    for row in rows.iter().take(3) {
        if !text.is_empty() {
            text.push_str("; ");
        }
        text.push_str(&row.to_string());
    }
    if text.chars().count() > 300 {
        text = text.chars().take(297).collect::<String>() + "…";
    }
    text
}

/// The run's state while the steps go.
struct Run<'a, E: Effects> {
    runbook: &'a Runbook,
    inputs: &'a Inputs,
    effects: &'a mut E,
    vars: Value,
    timeline: Vec<Entry>,
    executed: u32,
    planned: u32,
}

/// What an action did, call by call.
#[derive(Default)]
struct Acc {
    done: Vec<String>,
    errors: Vec<String>,
    executed: u32,
    planned: u32,
}

impl Acc {
    fn record(&mut self, out: Result<ActionOut, String>) {
        match out {
            Ok(a) => {
                if a.executed {
                    self.executed += 1;
                } else {
                    self.planned += 1;
                }
                self.done.push(a.detail);
            }
            Err(e) => self.errors.push(e),
        }
    }
}

/// What one step asks of the loop.
enum Next {
    Go,
    Jump(String),
    Fail(String),
    Stop(End),
}

/// Runs `runbook`. `Err` only for what stops it before the first step (bad
/// parameters).
pub fn run<E: Effects>(
    runbook: &Runbook,
    inputs: &Inputs,
    effects: &mut E,
) -> Result<Outcome, String> {
    let params = typed_params(runbook, &inputs.params)?;
    let vars = json!({
        "params": params,
        "alert": inputs.alert,
        "target": inputs.target,
        "steps": {},
    });
    let mut run = Run {
        runbook,
        inputs,
        effects,
        vars,
        timeline: Vec::new(),
        executed: 0,
        planned: 0,
    };
    let end = run.steps();
    Ok(Outcome {
        timeline: run.timeline,
        end,
        executed: run.executed,
        planned: run.planned,
    })
}

impl<E: Effects> Run<'_, E> {
    fn index_of(&self, id: &str) -> Option<usize> {
        self.runbook.steps.iter().position(|s| s.id == id)
    }

    fn set_output(&mut self, id: &str, output: Value) {
        if let Some(steps) = self.vars.get_mut("steps").and_then(Value::as_object_mut) {
            steps.insert(id.to_owned(), output);
        }
    }

    fn entry(&mut self, step: &Step, status: Status, started: u64) -> &mut Entry {
        let ms = self.effects.now_ms().saturating_sub(started);
        self.timeline.push(Entry {
            step: step.id.clone(),
            kind: step.kind.as_str().to_owned(),
            title: step.label().to_owned(),
            status,
            saw: String::new(),
            decided: String::new(),
            did: String::new(),
            ms,
        });
        let last = self.timeline.len() - 1;
        &mut self.timeline[last]
    }

    fn steps(&mut self) -> End {
        let steps = &self.runbook.steps;
        let mut pc = 0usize;
        let mut count = 0u32;
        while pc < steps.len() {
            let step = &steps[pc];
            if count >= self.runbook.max_steps {
                return End::StepLimit {
                    max: self.runbook.max_steps,
                };
            }
            if self.effects.remaining_ms() < 1_000 {
                return End::Deadline {
                    step: step.id.clone(),
                };
            }
            count += 1;
            let started = self.effects.now_ms();
            if let Some(when) = &step.when {
                match eval_bool(when, &self.vars) {
                    Ok(true) => {}
                    Ok(false) => {
                        let e = self.entry(step, Status::Skipped, started);
                        e.decided = format!("skipped: `{when}` is false");
                        pc += 1;
                        continue;
                    }
                    Err(why) => {
                        let e = self.entry(step, Status::Failed, started);
                        e.decided = format!("its `when` failed: {why}");
                        match self.on_failure(step, why) {
                            Some(Ok(next)) => {
                                pc = next;
                                continue;
                            }
                            Some(Err(end)) => return end,
                            None => {
                                pc += 1;
                                continue;
                            }
                        }
                    }
                }
            }
            let next = match &step.kind {
                StepKind::Query(statement) => self.query(step, statement, started),
                StepKind::Check { expr, otherwise } => {
                    self.check(step, expr, otherwise.as_deref(), started)
                }
                StepKind::Action { action, .. } => self.action(step, action, started),
                StepKind::RunPlugin {
                    plugin,
                    params,
                    target,
                } => self.run_plugin(step, plugin, params, target.as_deref(), started),
                StepKind::Wait {
                    refresh,
                    every,
                    until,
                } => self.wait(step, refresh.as_deref(), *every, until, started),
                StepKind::Note { text } => self.note(step, text, started),
            };
            match next {
                Next::Go => pc += 1,
                Next::Jump(id) => match self.index_of(&id) {
                    Some(i) => pc = i,
                    None => {
                        return End::Stopped {
                            step: step.id.clone(),
                            reason: format!("no step `{id}` to go to"),
                        };
                    }
                },
                Next::Stop(end) => return end,
                Next::Fail(why) => match self.on_failure(step, why) {
                    Some(Ok(next)) => pc = next,
                    Some(Err(end)) => return end,
                    None => pc += 1,
                },
            }
        }
        End::Completed
    }

    /// Where to go after `step` failed: `None` to go on, `Some(Ok(i))` to
    /// jump, `Some(Err(end))` to stop.
    fn on_failure(&mut self, step: &Step, why: String) -> Option<Result<usize, End>> {
        match &step.on_failure {
            OnFailure::Continue => None,
            OnFailure::Stop => Some(Err(End::Stopped {
                step: step.id.clone(),
                reason: why,
            })),
            OnFailure::Goto(id) => Some(self.index_of(id).ok_or(End::Stopped {
                step: step.id.clone(),
                reason: format!("{why}; and there is no step `{id}` to go to"),
            })),
        }
    }

    fn args(&self, args: &[String]) -> Result<Vec<Value>, String> {
        args.iter().map(|a| eval(a, &self.vars)).collect()
    }

    fn run_query(&mut self, statement: &Statement) -> Result<QueryOut, String> {
        match statement {
            Statement::Sql { sql, args } => {
                let sql = render_sql(sql, &self.vars)?;
                let args = self.args(args)?;
                self.effects.query_sql(&sql, &args)
            }
            Statement::Mongo { command, database } => {
                let database = database.as_deref().unwrap_or("");
                self.effects.query_mongo(database, command)
            }
        }
    }

    fn store_query(&mut self, id: &str, statement: &Statement, out: &QueryOut) {
        let mongo = matches!(statement, Statement::Mongo { .. });
        let key = if mongo { "docs" } else { "rows" };
        self.set_output(
            id,
            json!({ key: out.rows, "count": out.rows.len(), "truncated": out.truncated }),
        );
    }

    fn query(&mut self, step: &Step, statement: &Statement, started: u64) -> Next {
        match self.run_query(statement) {
            Ok(out) => {
                self.store_query(&step.id, statement, &out);
                let e = self.entry(step, Status::Ok, started);
                e.saw = format!(
                    "{} {}{}{}",
                    out.rows.len(),
                    if matches!(statement, Statement::Mongo { .. }) {
                        "documents"
                    } else {
                        "rows"
                    },
                    if out.truncated { " (truncated)" } else { "" },
                    if out.rows.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", glimpse(&out.rows))
                    }
                );
                Next::Go
            }
            Err(why) => {
                let e = self.entry(step, Status::Failed, started);
                e.saw = format!("the query failed: {why}");
                Next::Fail(why)
            }
        }
    }

    fn check(&mut self, step: &Step, expr: &str, otherwise: Option<&str>, started: u64) -> Next {
        match eval_bool(expr, &self.vars) {
            Ok(result) => {
                self.set_output(&step.id, json!({ "result": result }));
                let e = self.entry(step, Status::Ok, started);
                e.decided = format!("`{expr}` is {result}");
                match (otherwise, result) {
                    (Some(target), false) => {
                        e.decided.push_str(&format!(": going to `{target}`"));
                        Next::Jump(target.to_owned())
                    }
                    _ => Next::Go,
                }
            }
            Err(why) => {
                let e = self.entry(step, Status::Failed, started);
                e.decided = format!("could not decide: {why}");
                Next::Fail(why)
            }
        }
    }

    fn action(&mut self, step: &Step, action: &Action, started: u64) -> Next {
        if step.needs_approval() && !self.inputs.dry_run && !self.inputs.approved {
            let e = self.entry(step, Status::AwaitingApproval, started);
            e.decided = "this action needs approval, and this run was not approved: nothing was done; run the runbook under a grant or rule with `require_approval = true` and approve the plan".to_owned();
            return Next::Stop(End::AwaitingApproval {
                step: step.id.clone(),
            });
        }
        if let Err(why) = self.effects.begin_action(&self.runbook.name, &step.id) {
            let e = self.entry(step, Status::Failed, started);
            e.decided = format!("the host did not open this action: {why}");
            return Next::Fail(why);
        }
        let deadline = step
            .timeout
            .map(|t| started + u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        let mut acc = Acc::default();
        let decided = match self.do_action(step, action, deadline, &mut acc) {
            Ok(decided) => decided,
            Err(why) => {
                acc.errors.push(why);
                String::new()
            }
        };
        let Acc {
            done,
            errors,
            executed,
            planned,
        } = acc;
        self.executed += executed;
        self.planned += planned;
        let failed = !errors.is_empty();
        self.set_output(&step.id, json!({ "done": done, "failed": failed }));
        let status = if failed {
            Status::Failed
        } else if planned > 0 && executed == 0 {
            Status::Planned
        } else {
            Status::Ok
        };
        let e = self.entry(step, status, started);
        e.decided = decided;
        e.did = if done.is_empty() && !failed {
            "nothing to do".to_owned()
        } else {
            let mut text = done.join("; ");
            if failed {
                if !text.is_empty() {
                    text.push_str("; ");
                }
                text.push_str(&format!("failed: {}", errors.join("; ")));
            }
            text
        };
        if planned > 0 && !e.did.is_empty() {
            e.did = format!("would (dry-run): {}", e.did);
        }
        if failed {
            Next::Fail(errors.join("; "))
        } else {
            Next::Go
        }
    }

    /// The action's host calls; `Ok` with what was decided.
    fn do_action(
        &mut self,
        step: &Step,
        action: &Action,
        deadline: Option<u64>,
        acc: &mut Acc,
    ) -> Result<String, String> {
        let timed_out = |effects: &mut E| deadline.is_some_and(|d| effects.now_ms() > d);
        let timeout_text = || {
            format!(
                "timed out after {}",
                step.timeout.map(format_duration).unwrap_or_default()
            )
        };
        let (expr, terminate) = match action {
            Action::Terminate(expr) => (expr, true),
            Action::Cancel(expr) => (expr, false),
            Action::KillOps(expr) => {
                let ids = eval_ids(expr, &self.vars)?;
                for opid in &ids {
                    if timed_out(self.effects) {
                        acc.errors.push(timeout_text());
                        break;
                    }
                    acc.record(self.effects.kill_op(*opid));
                }
                return Ok(format!(
                    "kill {} operation{} from `{expr}`",
                    ids.len(),
                    if ids.len() == 1 { "" } else { "s" }
                ));
            }
            Action::Statement(Statement::Sql { sql, args }) => {
                let sql = render_sql(sql, &self.vars)?;
                let args = self.args(args)?;
                acc.record(self.effects.execute_sql(&sql, &args));
                return Ok("run the statement".to_owned());
            }
            Action::Statement(Statement::Mongo { command, database }) => {
                let database = database.as_deref().unwrap_or("");
                acc.record(self.effects.execute_mongo(database, command));
                return Ok("run the command".to_owned());
            }
        };
        {
            let ids = eval_ids(expr, &self.vars)?;
            for pid in &ids {
                if timed_out(self.effects) {
                    acc.errors.push(timeout_text());
                    break;
                }
                acc.record(self.effects.signal_backend(*pid, terminate));
            }
            Ok(format!(
                "{} {} session{} from `{expr}`",
                if terminate { "terminate" } else { "cancel" },
                ids.len(),
                if ids.len() == 1 { "" } else { "s" }
            ))
        }
    }

    fn run_plugin(
        &mut self,
        step: &Step,
        plugin: &str,
        params: &BTreeMap<String, String>,
        target: Option<&str>,
        started: u64,
    ) -> Next {
        let prepared: Result<(String, Vec<(String, String)>), String> = (|| {
            let target = match target {
                Some(expr) => as_text(&eval(expr, &self.vars)?),
                None => self.inputs.target.clone(),
            };
            let params = params
                .iter()
                .map(|(k, expr)| Ok((k.clone(), as_text(&eval(expr, &self.vars)?))))
                .collect::<Result<Vec<_>, String>>()?;
            Ok((target, params))
        })();
        let (target, params) = match prepared {
            Ok(p) => p,
            Err(why) => {
                let e = self.entry(step, Status::Failed, started);
                e.decided = format!("could not prepare the run: {why}");
                return Next::Fail(why);
            }
        };
        let shown: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        match self.effects.start_plugin(plugin, &target, &params) {
            Ok(run) => {
                self.set_output(
                    &step.id,
                    json!({ "run": { "id": run.id, "state": run.state } }),
                );
                let e = self.entry(step, Status::Ok, started);
                e.decided = format!("start `{plugin}` on `{target}` ({})", shown.join(", "));
                e.did = format!(
                    "run {} {}{}",
                    run.id,
                    run.state,
                    if run.summary.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", run.summary)
                    }
                );
                Next::Go
            }
            Err(why) => {
                let e = self.entry(step, Status::Failed, started);
                e.decided = format!("start `{plugin}` on `{target}` ({})", shown.join(", "));
                e.did = format!("failed: {why}");
                Next::Fail(why)
            }
        }
    }

    fn wait(
        &mut self,
        step: &Step,
        refresh: Option<&str>,
        every: Option<Duration>,
        until: &str,
        started: u64,
    ) -> Next {
        let every = every
            .unwrap_or(Duration::from_secs(2))
            .max(Duration::from_millis(100));
        let timeout = step.timeout.unwrap_or(Duration::from_secs(60));
        let limit = started + u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let runbook = self.runbook;
        let refresh = refresh
            .and_then(|id| runbook.step(id))
            .and_then(|s| match &s.kind {
                StepKind::Query(statement) => Some((s.id.as_str(), statement)),
                _ => None,
            });
        let mut polls = 0u32;
        loop {
            if let Some((id, statement)) = refresh {
                match self.run_query(statement) {
                    Ok(out) => self.store_query(id, statement, &out),
                    Err(why) => {
                        let e = self.entry(step, Status::Failed, started);
                        e.saw = format!("refreshing `{id}` failed: {why}");
                        return Next::Fail(why);
                    }
                }
            }
            polls += 1;
            match eval_bool(until, &self.vars) {
                Ok(true) => {
                    let waited = self.effects.now_ms().saturating_sub(started);
                    self.set_output(&step.id, json!({ "result": true, "waited_ms": waited }));
                    let e = self.entry(step, Status::Ok, started);
                    e.decided = format!(
                        "`{until}` held after {polls} check{}",
                        if polls == 1 { "" } else { "s" }
                    );
                    return Next::Go;
                }
                Ok(false) => {}
                Err(why) => {
                    let e = self.entry(step, Status::Failed, started);
                    e.decided = format!("could not decide: {why}");
                    return Next::Fail(why);
                }
            }
            let now = self.effects.now_ms();
            let deadline_near =
                self.effects.remaining_ms() < 2_000 + u64::try_from(every.as_millis()).unwrap_or(0);
            if now >= limit || deadline_near {
                let waited = now.saturating_sub(started);
                self.set_output(&step.id, json!({ "result": false, "waited_ms": waited }));
                let why = if deadline_near && now < limit {
                    format!("the run's deadline came near before `{until}` held")
                } else {
                    format!(
                        "`{until}` did not hold within {}",
                        step.timeout
                            .map_or_else(|| "60s".to_owned(), format_duration)
                    )
                };
                let e = self.entry(step, Status::Failed, started);
                e.decided = format!("{why} ({polls} checks)");
                return Next::Fail(why);
            }
            self.effects.sleep(every);
        }
    }

    fn note(&mut self, step: &Step, text: &str, started: u64) -> Next {
        match render(text, &self.vars) {
            Ok(text) => {
                self.set_output(&step.id, json!({ "text": text }));
                let e = self.entry(step, Status::Ok, started);
                e.did = text;
                Next::Go
            }
            Err(why) => {
                let e = self.entry(step, Status::Failed, started);
                e.did = why.clone();
                Next::Fail(why)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Runbook;

    /// A scripted host: queries answer from a queue per SQL text; every
    /// call is logged.
    #[derive(Default)]
    struct Fake {
        answers: BTreeMap<String, Vec<Vec<Value>>>,
        calls: Vec<String>,
        clock: u64,
        dry_run: bool,
        fail_signal: bool,
        /// The actions the host was asked to open, as `runbook/step`.
        begun: Vec<String>,
        /// The host refuses to open actions.
        refuse_actions: bool,
    }

    impl Effects for Fake {
        fn begin_action(&mut self, runbook: &str, step: &str) -> Result<(), String> {
            self.begun.push(format!("{runbook}/{step}"));
            if self.refuse_actions {
                return Err(format!("step `{step}` requires approval"));
            }
            Ok(())
        }
        fn query_sql(&mut self, sql: &str, args: &[Value]) -> Result<QueryOut, String> {
            self.calls.push(format!("query {sql} {args:?}"));
            let queue = self.answers.get_mut(sql).ok_or("no such table")?;
            let rows = if queue.len() > 1 {
                queue.remove(0)
            } else {
                queue[0].clone()
            };
            Ok(QueryOut {
                rows,
                truncated: false,
            })
        }
        fn query_mongo(&mut self, database: &str, command: &str) -> Result<QueryOut, String> {
            self.calls.push(format!("mongo {database} {command}"));
            Ok(QueryOut::default())
        }
        fn execute_sql(&mut self, sql: &str, _args: &[Value]) -> Result<ActionOut, String> {
            self.calls.push(format!("execute {sql}"));
            Ok(ActionOut {
                executed: !self.dry_run,
                detail: sql.to_owned(),
            })
        }
        fn execute_mongo(&mut self, _database: &str, command: &str) -> Result<ActionOut, String> {
            self.calls.push(format!("execute-mongo {command}"));
            Ok(ActionOut {
                executed: !self.dry_run,
                detail: command.to_owned(),
            })
        }
        fn signal_backend(&mut self, pid: i64, terminate: bool) -> Result<ActionOut, String> {
            self.calls.push(format!(
                "{} {pid}",
                if terminate { "terminate" } else { "cancel" }
            ));
            if self.fail_signal {
                return Err(format!("pid {pid} is a superuser session"));
            }
            Ok(ActionOut {
                executed: !self.dry_run,
                detail: format!("pid {pid}"),
            })
        }
        fn kill_op(&mut self, opid: i64) -> Result<ActionOut, String> {
            self.calls.push(format!("killop {opid}"));
            Ok(ActionOut {
                executed: !self.dry_run,
                detail: format!("op {opid}"),
            })
        }
        fn start_plugin(
            &mut self,
            plugin: &str,
            target: &str,
            params: &[(String, String)],
        ) -> Result<Started, String> {
            self.calls
                .push(format!("start {plugin} {target} {params:?}"));
            Ok(Started {
                id: "r1".into(),
                state: "queued".into(),
                summary: String::new(),
            })
        }
        fn sleep(&mut self, duration: Duration) {
            self.clock += u64::try_from(duration.as_millis()).unwrap();
        }
        fn now_ms(&mut self) -> u64 {
            self.clock += 1;
            self.clock
        }
        fn remaining_ms(&mut self) -> u64 {
            600_000
        }
    }

    fn runbook(json: Value) -> Runbook {
        serde_json::from_value(json).unwrap()
    }

    fn idle_runbook() -> Runbook {
        runbook(json!({
            "name": "idle", "target_kind": "postgres",
            "params": {"idle_minutes": {"type": "integer", "default": 10, "description": "m"}},
            "steps": [
                {"id": "idle", "kind": "query", "sql": "IDLE", "args": ["params.idle_minutes * 60"]},
                {"id": "any", "kind": "check", "expr": "size(steps.idle.rows) > 0", "else": "report"},
                {"id": "end", "kind": "action", "terminate": "steps.idle.rows.map(r, r.pid)"},
                {"id": "report", "kind": "note", "text": "{{ steps.idle.count }} idle; {{ params.idle_minutes }} min"}
            ]
        }))
    }

    fn fake_with_idle(rows: Vec<Value>) -> Fake {
        let mut fake = Fake::default();
        fake.answers.insert("IDLE".into(), vec![rows]);
        fake
    }

    fn inputs(dry_run: bool, approved: bool) -> Inputs {
        Inputs {
            target: "app".into(),
            dry_run,
            approved,
            ..Inputs::default()
        }
    }

    #[test]
    fn every_action_is_opened_by_the_host_first_and_a_refusal_does_nothing() {
        let mut fake = fake_with_idle(vec![json!({"pid": 41})]);
        let out = run(&idle_runbook(), &inputs(false, true), &mut fake).unwrap();
        assert_eq!(out.end, End::Completed);
        assert_eq!(fake.begun, ["idle/end"]);

        let mut fake = fake_with_idle(vec![json!({"pid": 41})]);
        fake.refuse_actions = true;
        let out = run(&idle_runbook(), &inputs(false, true), &mut fake).unwrap();
        assert_eq!(
            fake.calls,
            ["query IDLE [Number(600)]"],
            "nothing was signalled"
        );
        assert_eq!(out.executed, 0);
        assert_eq!(
            out.end,
            End::Stopped {
                step: "end".into(),
                reason: "step `end` requires approval".into()
            }
        );
        let end = &out.timeline[2];
        assert_eq!(end.status, Status::Failed);
        assert!(
            end.decided.starts_with("the host did not open this action"),
            "{}",
            end.decided
        );

        // A run nobody approved stops at the guest's own check, before asking.
        let mut fake = fake_with_idle(vec![json!({"pid": 41})]);
        let out = run(&idle_runbook(), &inputs(false, false), &mut fake).unwrap();
        assert_eq!(out.end, End::AwaitingApproval { step: "end".into() });
        assert!(fake.begun.is_empty());
    }

    #[test]
    fn an_approved_run_diagnoses_decides_and_acts() {
        let mut fake = fake_with_idle(vec![json!({"pid": 41}), json!({"pid": 42})]);
        let out = run(&idle_runbook(), &inputs(false, true), &mut fake).unwrap();
        assert_eq!(out.end, End::Completed);
        assert_eq!(
            fake.calls,
            ["query IDLE [Number(600)]", "terminate 41", "terminate 42"]
        );
        assert_eq!(out.executed, 2);
        let statuses: Vec<Status> = out.timeline.iter().map(|e| e.status).collect();
        assert_eq!(statuses, [Status::Ok, Status::Ok, Status::Ok, Status::Ok]);
        assert_eq!(out.timeline[3].did, "2 idle; 10 min");
        assert!(out.timeline[2].decided.contains("terminate 2 sessions"));
    }

    #[test]
    fn a_run_nobody_approved_stops_before_the_action_and_dry_run_plans_it() {
        let mut fake = fake_with_idle(vec![json!({"pid": 41})]);
        let out = run(&idle_runbook(), &inputs(false, false), &mut fake).unwrap();
        assert_eq!(out.end, End::AwaitingApproval { step: "end".into() });
        assert_eq!(fake.calls, ["query IDLE [Number(600)]"]);
        assert_eq!(
            out.timeline.last().unwrap().status,
            Status::AwaitingApproval
        );

        let mut fake = fake_with_idle(vec![json!({"pid": 41})]);
        fake.dry_run = true;
        let out = run(&idle_runbook(), &inputs(true, false), &mut fake).unwrap();
        assert_eq!(out.end, End::Completed);
        assert_eq!((out.executed, out.planned), (0, 1));
        assert_eq!(out.timeline[2].status, Status::Planned);
        assert!(
            out.timeline[2].did.starts_with("would (dry-run): pid 41"),
            "{:?}",
            out.timeline[2]
        );
    }

    #[test]
    fn a_false_check_jumps_to_its_else_step() {
        let mut fake = fake_with_idle(vec![]);
        let out = run(&idle_runbook(), &inputs(false, true), &mut fake).unwrap();
        assert_eq!(out.end, End::Completed);
        let ids: Vec<&str> = out.timeline.iter().map(|e| e.step.as_str()).collect();
        assert_eq!(ids, ["idle", "any", "report"]);
        assert!(out.timeline[1].decided.contains("going to `report`"));
    }

    #[test]
    fn failures_follow_on_failure_and_goto_loops_are_bounded() {
        let mut fake = fake_with_idle(vec![json!({"pid": 41})]);
        fake.fail_signal = true;
        let out = run(&idle_runbook(), &inputs(false, true), &mut fake).unwrap();
        match &out.end {
            End::Stopped { step, reason } => {
                assert_eq!(step, "end");
                assert!(reason.contains("superuser"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // continue: the note still runs.
        let mut rb = idle_runbook();
        rb.steps[2].on_failure = OnFailure::Continue;
        let mut fake = fake_with_idle(vec![json!({"pid": 41})]);
        fake.fail_signal = true;
        let out = run(&rb, &inputs(false, true), &mut fake).unwrap();
        assert_eq!(out.end, End::Completed);
        assert_eq!(out.timeline[2].status, Status::Failed);
        // goto back to the query: an endless loop, stopped at max_steps.
        rb.steps[2].on_failure = OnFailure::Goto("idle".into());
        rb.max_steps = 7;
        let mut fake = fake_with_idle(vec![json!({"pid": 41})]);
        fake.fail_signal = true;
        let out = run(&rb, &inputs(false, true), &mut fake).unwrap();
        assert_eq!(out.end, End::StepLimit { max: 7 });
        assert_eq!(out.timeline.len(), 7);
    }

    #[test]
    fn wait_polls_its_query_until_the_condition_or_the_timeout() {
        let rb = runbook(json!({
            "name": "w", "steps": [
                {"id": "q", "kind": "query", "sql": "Q"},
                {"id": "w", "kind": "wait", "refresh": "q", "every": "1s", "until": "steps.q.count == 0", "timeout": "10s"}
            ]
        }));
        let mut fake = Fake::default();
        fake.answers.insert(
            "Q".into(),
            vec![vec![json!({"a": 1})], vec![json!({"a": 1})], vec![]],
        );
        let out = run(&rb, &inputs(false, true), &mut fake).unwrap();
        assert_eq!(out.end, End::Completed);
        assert!(
            out.timeline[1].decided.contains("after 2 checks"),
            "{:?}",
            out.timeline[1]
        );

        let mut fake = Fake::default();
        fake.answers.insert("Q".into(), vec![vec![json!({"a": 1})]]);
        let out = run(&rb, &inputs(false, true), &mut fake).unwrap();
        match out.end {
            End::Stopped { reason, .. } => {
                assert!(reason.contains("did not hold within 10s"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // About ten polls a second apart, not a hang.
        let polls = fake.calls.len();
        assert!((9..=12).contains(&polls), "{polls}");
    }

    #[test]
    fn statement_templates_interpolate_only_quoted_identifiers() {
        let vars = json!({"params": {"table": "public.outbox", "col": "x\"; DROP TABLE t; --"}});
        assert_eq!(
            render_sql(
                "SELECT count(*) FROM {{ params.table }} WHERE {{ params.col }} IS NULL",
                &vars
            )
            .unwrap(),
            r#"SELECT count(*) FROM "public"."outbox" WHERE "x""; DROP TABLE t; --" IS NULL"#
        );
        assert_eq!(render_sql("SELECT 1", &vars).unwrap(), "SELECT 1");
        assert!(render_sql("SELECT {{ ", &vars).is_err());
    }

    #[test]
    fn parameters_are_typed_and_unknown_ones_refused() {
        let rb = runbook(json!({
            "name": "p",
            "params": {
                "n": {"type": "integer", "default": 3},
                "d": {"type": "duration", "default": "2m"},
                "b": {"type": "bool", "default": false},
                "s": {"type": "string"}
            },
            "steps": []
        }));
        let given: BTreeMap<String, String> = [
            ("s".to_owned(), "x".to_owned()),
            ("n".to_owned(), "7".to_owned()),
        ]
        .into();
        let p = typed_params(&rb, &given).unwrap();
        assert_eq!(
            Value::Object(p),
            json!({"n": 7, "d": 120.0, "b": false, "s": "x"})
        );
        let missing = typed_params(&rb, &BTreeMap::new()).unwrap_err();
        assert!(missing.contains("needs parameter `s`"), "{missing}");
        let bad: BTreeMap<String, String> = [
            ("s".to_owned(), "x".to_owned()),
            ("n".to_owned(), "many".to_owned()),
        ]
        .into();
        assert!(
            typed_params(&rb, &bad)
                .unwrap_err()
                .contains("\"many\" is not an integer")
        );
        let unknown: BTreeMap<String, String> = [
            ("s".to_owned(), "x".to_owned()),
            ("zz".to_owned(), "1".to_owned()),
        ]
        .into();
        assert!(
            typed_params(&rb, &unknown)
                .unwrap_err()
                .contains("no parameter `zz`")
        );
    }

    #[test]
    fn run_plugin_and_when_guards() {
        let rb = runbook(json!({
            "name": "r", "steps": [
                {"id": "t", "kind": "query", "sql": "T"},
                {"id": "v", "kind": "run_plugin", "plugin": "vacuum", "when": "steps.t.count > 0",
                 "params": {"table": "steps.t.rows[0].relname", "analyze": "true", "all": "steps.t.rows.map(r, r.relname)"}},
                {"id": "n", "kind": "note", "when": "steps.t.count > 5", "text": "many"}
            ]
        }));
        let mut fake = Fake::default();
        fake.answers.insert(
            "T".into(),
            vec![vec![
                json!({"relname": "orders"}),
                json!({"relname": "items"}),
            ]],
        );
        let out = run(&rb, &inputs(false, false), &mut fake).unwrap();
        assert_eq!(out.end, End::Completed);
        assert_eq!(
            fake.calls[1],
            r#"start vacuum app [("all", "orders,items"), ("analyze", "true"), ("table", "orders")]"#
        );
        assert_eq!(out.timeline[2].status, Status::Skipped);
    }
}
