//! Warden plugin `runbook`: runs an incident runbook (see
//! `policies/runbooks/README.md`) and reports its timeline.
//!
//! - **Which runbook**: the `runbook` parameter, else the first (by name)
//!   whose `alerts` matchers match the triggering alert's labels.
//! - **Its parameters**: `params` (`name=value, name=value`, or a JSON
//!   object), then the alert's labels and annotations of the same names,
//!   then the runbook's defaults; typed by the runbook's specs.
//! - **Steps** run in [`engine`]: queries, checks (CEL), actions (session
//!   control, statements, commands; approval-gated), other plugins through
//!   the agent's queue, waits and notes.
//! - **Report**: one finding per step (what it saw, decided, did, and how
//!   long it took), a closing finding with the whole timeline as Markdown
//!   for the post-incident review, and metrics. Status: `ok` when nothing
//!   needed doing, `warning` when something was done, planned or is waiting
//!   for approval, `critical` when a step failed and stopped the runbook or
//!   the step limit was hit.

mod engine;
mod model;
mod timeline;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warden_sdk::mongo::{Bson, document_from_json};
use warden_sdk::{
    CapabilityClass, Context, Error, Manifest, Param, Params as _, Plugin, Report, TargetKind,
    Value as SqlValue, runbooks, runs, sessions,
};

use crate::engine::{ActionOut, Effects, Inputs, QueryOut, Started};
use crate::model::Runbook;

struct RunbookPlugin;

/// The host, as the engine sees it.
struct Host<'c> {
    ctx: &'c Context,
    started: Instant,
}

fn sql_value(value: &Value) -> SqlValue {
    match value {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Json(other.to_string()),
    }
}

fn json_value(value: &SqlValue) -> Value {
    match value {
        SqlValue::Null => Value::Null,
        SqlValue::Boolean(b) => json!(b),
        SqlValue::Integer(i) => json!(i),
        SqlValue::Float(f) => json!(f),
        SqlValue::Text(s) | SqlValue::Timestamp(s) => json!(s),
        SqlValue::Numeric(s) => s
            .parse::<i64>()
            .map(|i| json!(i))
            .or_else(|_| s.parse::<f64>().map(|f| json!(f)))
            .unwrap_or_else(|_| json!(s)),
        SqlValue::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| json!(s)),
        SqlValue::Bytes(b) => json!(format!("<{} bytes>", b.len())),
    }
}

fn bson_json(value: Bson) -> Value {
    value.into_relaxed_extjson()
}

fn message(e: &Error) -> String {
    e.summary()
}

impl Effects for Host<'_> {
    fn query_sql(&mut self, sql: &str, args: &[Value]) -> Result<QueryOut, String> {
        let values: Vec<SqlValue> = args.iter().map(sql_value).collect();
        let rows = self
            .ctx
            .sql()
            .query(sql, &values)
            .map_err(|e| message(&e))?;
        let out = rows
            .iter()
            .map(|row| {
                let map: serde_json::Map<String, Value> = row
                    .columns()
                    .iter()
                    .zip(row.values())
                    .map(|(c, v)| (c.name.clone(), json_value(v)))
                    .collect();
                Value::Object(map)
            })
            .collect();
        Ok(QueryOut {
            rows: out,
            truncated: rows.truncated(),
        })
    }

    fn query_mongo(&mut self, database: &str, command: &str) -> Result<QueryOut, String> {
        let command = document_from_json(command).map_err(|e| message(&e))?;
        let reply = self
            .ctx
            .mongo()
            .run_command(database, &command)
            .map_err(|e| message(&e))?;
        let batch = reply
            .reply
            .get_document("cursor")
            .ok()
            .and_then(|c| {
                c.get_array("firstBatch")
                    .or_else(|_| c.get_array("nextBatch"))
                    .ok()
            })
            .cloned();
        let rows = match batch {
            Some(docs) => docs.into_iter().map(bson_json).collect(),
            None => vec![bson_json(Bson::Document(reply.reply))],
        };
        Ok(QueryOut {
            rows,
            truncated: false,
        })
    }

    fn execute_sql(&mut self, sql: &str, args: &[Value]) -> Result<ActionOut, String> {
        let values: Vec<SqlValue> = args.iter().map(sql_value).collect();
        let done = self
            .ctx
            .sql()
            .execute(sql, &values)
            .map_err(|e| message(&e))?;
        Ok(ActionOut {
            executed: done.is_executed(),
            detail: format!("`{sql}` ({} rows)", done.rows_affected),
        })
    }

    fn execute_mongo(&mut self, database: &str, command: &str) -> Result<ActionOut, String> {
        let parsed = document_from_json(command).map_err(|e| message(&e))?;
        let reply = self
            .ctx
            .mongo()
            .run_command(database, &parsed)
            .map_err(|e| message(&e))?;
        Ok(ActionOut {
            executed: reply.is_executed(),
            detail: format!("`{command}`"),
        })
    }

    fn begin_action(&mut self, runbook: &str, step: &str) -> Result<(), String> {
        runbooks::begin_action(runbook, step).map_err(|e| message(&e))
    }

    fn signal_backend(&mut self, pid: i64, terminate: bool) -> Result<ActionOut, String> {
        let pid = i32::try_from(pid).map_err(|_| format!("{pid} is not a backend pid"))?;
        let signal = if terminate {
            sessions::Signal::Terminate
        } else {
            sessions::Signal::Cancel
        };
        let out =
            sessions::signal_backend(self.ctx.target(), pid, signal).map_err(|e| message(&e))?;
        let what = if terminate { "terminate" } else { "cancel" };
        if out.executed && !out.signalled {
            // The server signalled nothing (the session ended, or its pid
            // was reused): the action did not happen.
            return Err(format!(
                "{what} pid {pid} ({}): the server signalled no session (gone already?)",
                out.description
            ));
        }
        Ok(ActionOut {
            executed: out.executed,
            detail: format!("{what} pid {pid} ({})", out.description),
        })
    }

    fn kill_op(&mut self, opid: i64) -> Result<ActionOut, String> {
        let out = sessions::kill_op(self.ctx.target(), opid).map_err(|e| message(&e))?;
        if out.executed && !out.signalled {
            return Err(format!(
                "killOp {opid} ({}): the server did not answer ok",
                out.description
            ));
        }
        Ok(ActionOut {
            executed: out.executed,
            detail: format!("killOp {opid} ({})", out.description),
        })
    }

    fn start_plugin(
        &mut self,
        plugin: &str,
        target: &str,
        params: &[(String, String)],
    ) -> Result<Started, String> {
        let params: Vec<Param> = params
            .iter()
            .map(|(name, value)| Param {
                name: name.clone(),
                value: value.clone(),
            })
            .collect();
        let info = runs::start(plugin, target, &params).map_err(|e| message(&e))?;
        Ok(Started {
            id: info.id,
            state: format!("{:?}", info.state).to_lowercase(),
            summary: info.summary,
        })
    }

    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }

    fn now_ms(&mut self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn remaining_ms(&mut self) -> u64 {
        self.ctx.remaining_ms()
    }
}

/// `name=value, name=value` or a JSON object.
fn explicit_params(text: Option<&str>) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(out);
    };
    if text.starts_with('{') {
        let map: serde_json::Map<String, Value> = serde_json::from_str(text).map_err(|e| {
            Error::invalid_input(format!("parameter `params` is not a JSON object: {e}"))
        })?;
        for (k, v) in map {
            let v = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            out.insert(k, v);
        }
        return Ok(out);
    }
    for pair in text.split(',') {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(Error::invalid_input(format!(
                "parameter `params`: `{}` is not name=value",
                pair.trim()
            )));
        };
        out.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    Ok(out)
}

warden_sdk::params! {
    /// The plugin's parameters.
    struct Params {
        /// The runbook's name; default: the first one whose alert matchers match the triggering alert.
        runbook: Option<String>,
        /// The runbook's parameters: `name=value, name=value` or a JSON object (alert labels of the same names fill the rest).
        params: Option<String>,
    }
}

fn choose(ctx: &Context, p: &Params) -> Result<Runbook, Error> {
    let name = match p
        .runbook
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        Some(name) => name.to_owned(),
        None => {
            let Some(alert) = ctx.alert() else {
                return Err(Error::invalid_input(
                    "no runbook: set the `runbook` parameter, or run from an alert one matches",
                ));
            };
            let found = runbooks::for_alert(&alert.labels);
            let Some(first) = found.into_iter().next() else {
                let labels: Vec<String> = alert
                    .labels
                    .iter()
                    .map(|l| format!("{}={:?}", l.name, l.value))
                    .collect();
                return Err(Error::invalid_input(format!(
                    "no runbook answers the alert {{{}}}",
                    labels.join(", ")
                )));
            };
            first
        }
    };
    let json = runbooks::get(&name)?;
    serde_json::from_str(&json)
        .map_err(|e| Error::other(format!("runbook `{name}` as the host gave it: {e}")))
}

fn inputs(ctx: &Context, p: &Params, runbook: &Runbook) -> Result<Inputs, Error> {
    let mut params = explicit_params(p.params.as_deref())?;
    let mut alert = Value::Null;
    if let Some(a) = ctx.alert() {
        let map = |items: &[warden_sdk::Label]| -> serde_json::Map<String, Value> {
            items
                .iter()
                .map(|l| (l.name.clone(), Value::String(l.value.clone())))
                .collect()
        };
        // Labels and annotations fill the runbook's parameters of the same
        // names that were not given explicitly.
        for l in a.labels.iter().chain(&a.annotations) {
            if runbook.params.contains_key(&l.name) && !params.contains_key(&l.name) {
                params.insert(l.name.clone(), l.value.clone());
            }
        }
        alert = json!({
            "labels": map(&a.labels),
            "annotations": map(&a.annotations),
            "status": a.status,
            "fingerprint": a.fingerprint,
            "starts_at": a.starts_at,
        });
    }
    Ok(Inputs {
        params,
        alert,
        target: ctx.target().to_owned(),
        dry_run: ctx.dry_run(),
        approved: ctx.approved(),
    })
}

impl Plugin for RunbookPlugin {
    fn manifest() -> Manifest {
        Manifest::new(
            "runbook",
            env!("CARGO_PKG_VERSION"),
            "Run an incident runbook from the runbooks folder: diagnose with queries and checks, remediate with approval-gated actions and other plugins, and report the timeline.",
        )
        .capabilities([
            CapabilityClass::Read,
            CapabilityClass::Maintenance,
            CapabilityClass::Write,
            CapabilityClass::SessionControl,
        ])
        .target_kinds([TargetKind::Postgres, TargetKind::Mongodb, TargetKind::Sqlite])
        .params::<Params>()
    }

    fn run(ctx: &Context) -> Result<Report, Error> {
        let p = Params::from_context(ctx)?;
        let runbook = choose(ctx, &p)?;
        let kind = ctx.target_kind().name();
        if !runbook.target_kind.is_empty() && runbook.target_kind != kind {
            return Err(Error::invalid_input(format!(
                "runbook `{}` is for {} targets; `{}` is {kind}",
                runbook.name,
                runbook.target_kind,
                ctx.target()
            )));
        }
        let inputs = inputs(ctx, &p, &runbook)?;
        let mut host = Host {
            ctx,
            started: Instant::now(),
        };
        let outcome = engine::run(&runbook, &inputs, &mut host).map_err(Error::invalid_input)?;
        Ok(timeline::report(&runbook, &inputs, &outcome))
    }
}

warden_sdk::export_plugin!(RunbookPlugin);
