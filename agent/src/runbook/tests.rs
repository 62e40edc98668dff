#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::diag::Diagnostic;

/// A valid PostgreSQL runbook using every kind of step. Line numbers
/// matter to the tests below.
const PG: &str = r#"[runbook]
name = "pg-conn"
description = "Connections near max."
severity = "critical"
target_kind = "postgres"
alerts = ['alertname="PostgresConnectionsHigh"', 'severity=~"warning|critical"']
max_steps = 50

[params.idle_minutes]
type = "integer"
default = 10
description = "Idle longer than this is ended."

[params.grace]
type = "duration"
default = "90s"

[[step]]
id = "idle"
kind = "query"
title = "Idle in transaction"
sql = "SELECT pid FROM pg_stat_activity WHERE now() - state_change > make_interval(mins => $1)"
args = ["params.idle_minutes"]

[[step]]
id = "too_many"
kind = "check"
expr = "size(steps.idle.rows) > 0 && steps.idle.rows.all(r, r.pid > 0)"
else = "report"

[[step]]
id = "end_idle"
kind = "action"
when = "steps.too_many.result"
terminate = "steps.idle.rows.map(r, r.pid)"
timeout = "30s"
on_failure = "goto:report"

[[step]]
id = "vacuum"
kind = "run_plugin"
plugin = "vacuum"
params = { table = "'pg_class'", reason = "alert.labels.alertname" }
on_failure = "continue"

[[step]]
id = "drained"
kind = "wait"
refresh = "idle"
every = "2s"
until = "size(steps.idle.rows) == 0 || steps['too_many'].result == false"
timeout = "1m"

[[step]]
id = "report"
kind = "note"
text = "{{ steps.idle.rows | length }} idle on {{ target }} ({{ params.idle_minutes }} min); waited {{ steps.drained.waited_ms }} ms"
"#;

/// A valid MongoDB runbook.
const MONGO: &str = r#"[runbook]
name = "mongo-ops"
target_kind = "mongodb"

[[step]]
id = "ops"
kind = "query"
mongo = '{"aggregate": 1, "pipeline": [{"$currentOp": {}}], "cursor": {}}'
database = "admin"

[[step]]
id = "kill"
kind = "action"
kill_ops = "steps.ops.docs.map(o, o.opid)"
requires_approval = false
"#;

/// Writes `files` (name, text) in a new folder.
fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn load(files: &[(&str, &str)]) -> Result<RunbookSet, Diagnostics> {
    let dir = folder(files);
    RunbookSet::load_dir(dir.path())
}

/// The diagnostics of `text` as `rb.toml`.
fn errors(text: &str) -> Diagnostics {
    match load(&[("rb.toml", text)]) {
        Ok(_) => panic!("expected errors in:\n{text}"),
        Err(diags) => diags,
    }
}

/// The one diagnostic of `text`, checked: in `rb.toml`, at `line`, about
/// `field`, with `message` in its message.
fn one(text: &str, line: usize, field: &str, message: &str) -> Diagnostic {
    let diags = errors(text);
    assert_eq!(diags.len(), 1, "expected one diagnostic, got:\n{diags}");
    let d = diags.0.into_iter().next().unwrap();
    assert_eq!(
        d.file.file_name().and_then(|n| n.to_str()),
        Some("rb.toml"),
        "{d}"
    );
    assert_eq!(d.line, Some(line), "{d}");
    assert_eq!(d.field, field, "{d}");
    assert!(
        d.message.contains(message),
        "expected {message:?} in the message of:\n{d}"
    );
    d
}

/// `text` with `old` (which must be there) replaced by `new`.
fn with(text: &str, old: &str, new: &str) -> String {
    assert!(text.contains(old), "{old:?} is not in the text");
    text.replacen(old, new, 1)
}

#[test]
fn valid_runbooks_load() {
    let set = load(&[("pg.toml", PG), ("mongo.toml", MONGO)]).unwrap();
    let names: Vec<&str> = set.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["mongo-ops", "pg-conn"], "sorted by name");
    let pg = set.get("pg-conn").unwrap();
    assert_eq!(pg.severity, Severity::Critical);
    assert_eq!(pg.target_kind, TargetKind::Postgres);
    assert_eq!(pg.max_steps, 50);
    assert_eq!(pg.source.line, 1);
    assert_eq!(
        pg.params["grace"].default,
        Some(ParamValue::Duration(Duration::from_secs(90)))
    );
    let ids: Vec<&str> = pg.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "idle", "too_many", "end_idle", "vacuum", "drained", "report"
        ]
    );
    let end = pg.step("end_idle").unwrap();
    assert_eq!(end.line, 31);
    assert_eq!(end.timeout, Some(Duration::from_secs(30)));
    assert_eq!(end.on_failure, OnFailure::Goto("report".into()));
    assert_eq!(
        end.kind,
        StepKind::Action {
            action: Action::Terminate("steps.idle.rows.map(r, r.pid)".into()),
            requires_approval: true,
        }
    );
    let mongo = set.get("mongo-ops").unwrap();
    assert_eq!(mongo.severity, Severity::Warning, "the default");
    assert_eq!(mongo.max_steps, 100, "the default");
    assert!(set.get("nope").is_none());
}

#[test]
fn the_folder_is_checked_like_the_policy_folder() {
    let dir = folder(&[
        ("a.toml", MONGO),
        ("README.md", "not a runbook"),
        (".hidden.toml", "garbage ="),
    ]);
    std::fs::create_dir(dir.path().join("sub.toml")).unwrap();
    let set = RunbookSet::load_dir(dir.path()).unwrap();
    assert_eq!(set.len(), 1);

    let empty = folder(&[]);
    assert!(RunbookSet::load_dir(empty.path()).unwrap().is_empty());

    let missing = empty.path().join("missing");
    let diags = RunbookSet::load_dir(&missing).unwrap_err();
    assert!(
        diags
            .to_string()
            .contains("the runbook folder does not exist"),
        "{diags}"
    );
}

#[test]
fn a_bad_file_refuses_the_whole_set() {
    let bad = with(MONGO, "kind = \"action\"", "kind = \"actoin\"");
    let diags = load(&[("a.toml", PG), ("b.toml", &bad)]).unwrap_err();
    assert_eq!(diags.len(), 1, "{diags}");
    assert!(diags.0[0].file.ends_with("b.toml"));
}

#[test]
fn toml_syntax_errors_have_positions() {
    let diags = errors("[runbook]\nname = \n");
    assert_eq!(diags.0[0].line, Some(2), "{diags}");
}

#[test]
fn unknown_fields_are_reported_with_the_step() {
    one(
        &with(PG, "title = \"Idle in transaction\"", "titel = \"x\""),
        21,
        "step[0] (id \"idle\").titel",
        "unknown field `titel`",
    );
    one(
        &with(PG, "max_steps = 50", "max_step = 50"),
        7,
        "runbook.max_step",
        "unknown field",
    );
    one(
        &with(PG, "default = \"90s\"", "defualt = \"90s\""),
        16,
        "params.grace.defualt",
        "unknown field",
    );
    one(
        &format!("{MONGO}\n[extra]\nx = 1\n"),
        17,
        "extra",
        "unknown field `extra`",
    );
}

#[test]
fn unknown_kinds_are_reported() {
    one(
        &with(MONGO, "kind = \"action\"", "kind = \"actoin\""),
        13,
        "step[1] (id \"kill\").kind",
        "unknown variant `actoin`",
    );
}

#[test]
fn a_field_of_another_kind_is_reported() {
    one(
        &with(
            PG,
            "else = \"report\"",
            "else = \"report\"\nsql = \"SELECT 1\"",
        ),
        30,
        "step[1] (id \"too_many\").sql",
        "`sql` does not apply to a `check` step",
    );
}

#[test]
fn missing_fields_are_reported() {
    one(
        &with(PG, "name = \"pg-conn\"\n", ""),
        1,
        "runbook.name",
        "missing field `name`",
    );
    one(
        &with(MONGO, "target_kind = \"mongodb\"\n", ""),
        1,
        "runbook.target_kind",
        "missing field `target_kind`",
    );
    one(
        &with(PG, "type = \"duration\"\n", ""),
        14,
        "params.grace.type",
        "missing field `type`",
    );
    one(
        &with(MONGO, "id = \"kill\"\n", ""),
        11,
        "step[1].id",
        "missing field `id`",
    );
    one(
        &with(MONGO, "kind = \"action\"\n", ""),
        11,
        "step[1] (id \"kill\").kind",
        "missing field `kind`",
    );
    one(
        &with(
            PG,
            "expr = \"size(steps.idle.rows) > 0 && steps.idle.rows.all(r, r.pid > 0)\"\n",
            "",
        ),
        25,
        "step[1] (id \"too_many\").expr",
        "missing field `expr`",
    );
    one(
        &with(PG, "plugin = \"vacuum\"\n", ""),
        39,
        "step[3] (id \"vacuum\").plugin",
        "missing field `plugin`",
    );
    one(
        &with(
            PG,
            "until = \"size(steps.idle.rows) == 0 || steps['too_many'].result == false\"\n",
            "",
        ),
        46,
        "step[4] (id \"drained\").until",
        "missing field `until`",
    );
    let diags = errors(&with(
        PG,
        "text = \"{{ steps.idle.rows | length }}",
        "txt = \"{{ steps.idle.rows | length }}",
    ));
    let found: Vec<(Option<usize>, &str)> =
        diags.iter().map(|d| (d.line, d.field.as_str())).collect();
    assert_eq!(
        found,
        [
            (Some(54), "step[5] (id \"report\").text"),
            (Some(57), "step[5] (id \"report\").txt"),
        ],
        "{diags}"
    );
    assert_eq!(diags.0[0].message, "missing field `text`");
    one(
        &with(
            MONGO,
            "mongo = '{\"aggregate\": 1, \"pipeline\": [{\"$currentOp\": {}}], \"cursor\": {}}'\ndatabase = \"admin\"\n",
            "",
        ),
        5,
        "step[0] (id \"ops\").sql",
        "a query step needs `sql` (SQL targets) or `mongo`",
    );
    one(
        "[[step]]\nid = \"a\"\nkind = \"note\"\ntext = \"x\"\n",
        1,
        "runbook",
        "missing table `[runbook]`",
    );
    one(
        "[runbook]\nname = \"x\"\ntarget_kind = \"sqlite\"\n",
        1,
        "step",
        "has no steps",
    );
}

#[test]
fn names_and_ids_are_checked() {
    one(
        &with(PG, "name = \"pg-conn\"", "name = \"PG conn\""),
        2,
        "runbook.name",
        "invalid runbook name \"PG conn\"",
    );
    let long = "a".repeat(65);
    one(
        &with(PG, "name = \"pg-conn\"", &format!("name = \"{long}\"")),
        2,
        "runbook.name",
        "at most 64",
    );
    one(
        &with(MONGO, "id = \"kill\"", "id = \"kill-it\""),
        12,
        "step[1] (id \"kill-it\").id",
        "invalid step id \"kill-it\"",
    );
    one(
        &with(PG, "[params.grace]", "[params.\"grace-time\"]"),
        14,
        "params.grace-time",
        "invalid parameter name",
    );
}

#[test]
fn duplicate_names_and_ids_are_reported() {
    let diags = load(&[("a.toml", PG), ("b.toml", PG)]).unwrap_err();
    assert_eq!(diags.len(), 1, "{diags}");
    let d = &diags.0[0];
    assert!(d.file.ends_with("b.toml"), "{d}");
    assert_eq!((d.line, d.field.as_str()), (Some(2), "runbook.name"));
    assert!(
        d.message
            .contains("runbook `pg-conn` is already defined at")
            && d.message.contains("a.toml:1"),
        "{d}"
    );

    one(
        &with(MONGO, "id = \"kill\"", "id = \"ops\""),
        12,
        "step[1] (id \"ops\").id",
        "duplicate step id \"ops\": already used at line 6",
    );
}

#[test]
fn bad_matchers_are_reported() {
    one(
        &with(PG, "'severity=~\"warning|critical\"'", "'severity=~\"(\"'"),
        6,
        "runbook.alerts[1]",
        "invalid regex",
    );
    one(
        &with(PG, "'alertname=\"PostgresConnectionsHigh\"'", "'alertname'"),
        6,
        "runbook.alerts[0]",
        "invalid matcher",
    );
}

#[test]
fn cel_that_does_not_parse_is_reported() {
    for (old, new, line, field) in [
        (
            "args = [\"params.idle_minutes\"]",
            "args = [\"params.idle_minutes +\"]",
            23,
            "step[0] (id \"idle\").args[0]",
        ),
        (
            "expr = \"size(steps.idle.rows) > 0",
            "expr = \"size(steps.idle.rows >) > 0",
            28,
            "step[1] (id \"too_many\").expr",
        ),
        (
            "when = \"steps.too_many.result\"",
            "when = \"steps.too_many.result)\"",
            34,
            "step[2] (id \"end_idle\").when",
        ),
        (
            "terminate = \"steps.idle.rows.map(r, r.pid)\"",
            "terminate = \"steps.idle.rows.map(r, \"",
            35,
            "step[2] (id \"end_idle\").terminate",
        ),
        (
            "table = \"'pg_class'\"",
            "table = \"'pg_class\"",
            43,
            "step[3] (id \"vacuum\").params.table",
        ),
        (
            "until = \"size(steps.idle.rows) == 0",
            "until = \"size(steps.idle.rows) === 0",
            51,
            "step[4] (id \"drained\").until",
        ),
    ] {
        one(&with(PG, old, new), line, field, "invalid CEL expression");
    }
    one(
        &with(
            PG,
            "on_failure = \"continue\"",
            "target = \"\"\non_failure = \"continue\"",
        ),
        44,
        "step[3] (id \"vacuum\").target",
        "empty CEL expression",
    );
    one(
        &with(
            MONGO,
            "kill_ops = \"steps.ops.docs.map(o, o.opid)\"",
            "kill_ops = \"[1, 2\"",
        ),
        14,
        "step[1] (id \"kill\").kill_ops",
        "invalid CEL expression",
    );
}

#[test]
fn sql_templates_are_checked_like_notes() {
    // A name interpolated into a statement must be a declared parameter.
    let d = one(
        &with(
            PG,
            "SELECT pid FROM pg_stat_activity WHERE",
            "SELECT pid FROM {{ params.no_such_table }} WHERE",
        ),
        22,
        "step[0] (id \"idle\").sql",
        "no_such_table",
    );
    assert!(d.message.contains("params"), "{}", d.message);
    one(
        &with(
            PG,
            "SELECT pid FROM pg_stat_activity WHERE",
            "SELECT pid FROM {{ params.idle_minutes WHERE",
        ),
        22,
        "step[0] (id \"idle\").sql",
        "invalid template",
    );
}

#[test]
fn templates_that_do_not_parse_are_reported() {
    one(
        &with(PG, "{{ target }}", "{{ target }"),
        57,
        "step[5] (id \"report\").text",
        "invalid template",
    );
    one(
        &with(
            PG,
            "{{ steps.idle.rows | length }}",
            "{{ target | no_such_filter }}",
        ),
        57,
        "step[5] (id \"report\").text",
        "unknown filter",
    );
}

#[test]
fn references_to_unknown_steps_are_reported() {
    one(
        &with(
            PG,
            "expr = \"size(steps.idle.rows)",
            "expr = \"size(steps.idel.rows)",
        ),
        28,
        "step[1] (id \"too_many\").expr",
        "`steps.idel`: there is no step with id \"idel\"",
    );
    one(
        &with(
            PG,
            "{{ steps.drained.waited_ms }}",
            "{{ steps.drainde.waited_ms }}",
        ),
        57,
        "step[5] (id \"report\").text",
        "`steps.drainde`: there is no step with id",
    );
    one(
        &with(PG, "else = \"report\"", "else = \"reprot\""),
        29,
        "step[1] (id \"too_many\").else",
        "there is no step with id \"reprot\"",
    );
    one(
        &with(
            PG,
            "on_failure = \"goto:report\"",
            "on_failure = \"goto:nowhere\"",
        ),
        37,
        "step[2] (id \"end_idle\").on_failure",
        "there is no step with id \"nowhere\"",
    );
    one(
        &with(PG, "refresh = \"idle\"", "refresh = \"idel\""),
        49,
        "step[4] (id \"drained\").refresh",
        "there is no step with id \"idel\"",
    );
}

#[test]
fn references_to_later_steps_are_reported() {
    one(
        &with(
            PG,
            "when = \"steps.too_many.result\"",
            "when = \"steps.drained.result\"",
        ),
        34,
        "step[2] (id \"end_idle\").when",
        "`steps.drained` is step[4], which comes later",
    );
    one(
        &with(
            PG,
            "when = \"steps.too_many.result\"",
            "when = \"size(steps.end_idle.done) == 0\"",
        ),
        34,
        "step[2] (id \"end_idle\").when",
        "this step's own output",
    );
    one(
        &with(
            PG,
            "args = [\"params.idle_minutes\"]",
            "args = [\"steps['report'].text\"]",
        ),
        23,
        "step[0] (id \"idle\").args[0]",
        "`steps.report` is step[5], which comes later",
    );
    // `else`, `goto:` and `refresh` may go backwards (bounded by max_steps).
    let back = with(
        PG,
        "on_failure = \"goto:report\"",
        "on_failure = \"goto:idle\"",
    );
    let back = with(&back, "else = \"report\"", "else = \"too_many\"");
    load(&[("rb.toml", &back)]).unwrap();
}

#[test]
fn unknown_params_and_variables_are_reported() {
    one(
        &with(
            PG,
            "args = [\"params.idle_minutes\"]",
            "args = [\"params.idle_minute\"]",
        ),
        23,
        "step[0] (id \"idle\").args[0]",
        "`params.idle_minute`: no parameter \"idle_minute\" is declared (declared: `grace`, \
         `idle_minutes`",
    );
    one(
        &with(
            PG,
            "({{ params.idle_minutes }} min)",
            "({{ params.idle }} min)",
        ),
        57,
        "step[5] (id \"report\").text",
        "`params.idle`: no parameter",
    );
    one(
        &with(
            PG,
            "reason = \"alert.labels.alertname\"",
            "reason = \"labels.alertname\"",
        ),
        43,
        "step[3] (id \"vacuum\").params.reason",
        "unknown variable `labels`",
    );
    one(
        &with(PG, "{{ target }}", "{{ targets }}"),
        57,
        "step[5] (id \"report\").text",
        "unknown variable `targets`",
    );
    // Comprehension variables, CEL type names and template loop variables
    // are not unknown.
    let ok = with(
        PG,
        "when = \"steps.too_many.result\"",
        "when = \"steps.idle.rows.exists(row, type(row.pid) == int) && [1].all(x, x > 0)\"",
    );
    let ok = with(
        &ok,
        "text = \"{{ steps.idle.rows | length }}",
        "text = \"{% for r in steps.idle.rows %}{{ r.pid }}{% endfor %}{{ steps.idle.rows | length }}",
    );
    load(&[("rb.toml", &ok)]).unwrap();
}

#[test]
fn refresh_must_name_a_query_step() {
    one(
        &with(PG, "refresh = \"idle\"", "refresh = \"too_many\""),
        49,
        "step[4] (id \"drained\").refresh",
        "step \"too_many\" is a `check` step: `refresh` re-runs a `query` step",
    );
}

#[test]
fn an_action_needs_exactly_one_thing_to_do() {
    one(
        &with(MONGO, "kill_ops = \"steps.ops.docs.map(o, o.opid)\"\n", ""),
        11,
        "step[1] (id \"kill\").kind",
        "an action step needs exactly one of",
    );
    one(
        &with(
            PG,
            "terminate = \"steps.idle.rows.map(r, r.pid)\"",
            "terminate = \"steps.idle.rows.map(r, r.pid)\"\ncancel = \"[]\"",
        ),
        36,
        "step[2] (id \"end_idle\").cancel",
        "exactly one of `terminate`, `cancel`, `kill_ops`, `sql` or `mongo`: `terminate` is given",
    );
    // A mutating statement is an action too.
    let sql = with(
        PG,
        "terminate = \"steps.idle.rows.map(r, r.pid)\"",
        "sql = \"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = $1\"\nargs = [\"steps.idle.rows[0].pid\"]",
    );
    let set = load(&[("rb.toml", &sql)]).unwrap();
    let step = set
        .get("pg-conn")
        .unwrap()
        .step("end_idle")
        .unwrap()
        .clone();
    assert!(matches!(
        step.kind,
        StepKind::Action {
            action: Action::Statement(Statement::Sql { .. }),
            ..
        }
    ));
}

#[test]
fn steps_must_fit_the_target_kind() {
    one(
        &with(
            MONGO,
            "kill_ops = \"steps.ops.docs.map(o, o.opid)\"",
            "terminate = \"[1]\"",
        ),
        14,
        "step[1] (id \"kill\").terminate",
        "it does not fit target_kind \"mongodb\"",
    );
    one(
        &with(
            PG,
            "terminate = \"steps.idle.rows.map(r, r.pid)\"",
            "kill_ops = \"[1]\"",
        ),
        35,
        "step[2] (id \"end_idle\").kill_ops",
        "it does not fit target_kind \"postgres\"",
    );
    one(
        &with(PG, "target_kind = \"postgres\"", "target_kind = \"sqlite\""),
        35,
        "step[2] (id \"end_idle\").terminate",
        "it does not fit target_kind \"sqlite\"",
    );
    one(
        &with(
            PG,
            "target_kind = \"postgres\"",
            "target_kind = \"mongodb\"",
        )
        .replace(
            "terminate = \"steps.idle.rows.map(r, r.pid)\"",
            "kill_ops = \"[]\"",
        ),
        22,
        "step[0] (id \"idle\").sql",
        "is for SQL targets",
    );
    one(
        &with(
            MONGO,
            "target_kind = \"mongodb\"",
            "target_kind = \"postgres\"",
        )
        .replace(
            "kill_ops = \"steps.ops.docs.map(o, o.opid)\"",
            "cancel = \"[]\"",
        ),
        8,
        "step[0] (id \"ops\").mongo",
        "is for MongoDB targets",
    );
    one(
        &with(
            MONGO,
            "database = \"admin\"",
            "database = \"admin\"\nargs = [\"1\"]",
        ),
        10,
        "step[0] (id \"ops\").args",
        "do not apply to `mongo`",
    );
    one(
        &with(MONGO, "\"cursor\": {}}'", "\"cursor\": {}'"),
        8,
        "step[0] (id \"ops\").mongo",
        "invalid JSON command",
    );
}

#[test]
fn defaults_must_fit_their_type() {
    one(
        &with(PG, "default = 10", "default = \"10\""),
        11,
        "params.idle_minutes.default",
        "the default \"10\" does not fit type `integer`",
    );
    one(
        &with(PG, "default = \"90s\"", "default = \"90 parsecs\""),
        16,
        "params.grace.default",
        "invalid duration \"90 parsecs\"",
    );
    one(
        &with(PG, "type = \"integer\"", "type = \"bool\""),
        11,
        "params.idle_minutes.default",
        "does not fit type `bool`",
    );
    let number = with(PG, "type = \"integer\"", "type = \"number\"");
    let set = load(&[("rb.toml", &number)]).unwrap();
    assert_eq!(
        set.get("pg-conn").unwrap().params["idle_minutes"].default,
        Some(ParamValue::Number(10.0))
    );
    one(
        &with(PG, "type = \"integer\"", "type = \"int\""),
        10,
        "params.idle_minutes.type",
        "unknown variant `int`",
    );
}

#[test]
fn bad_durations_are_reported() {
    one(
        &with(PG, "timeout = \"30s\"", "timeout = \"30 sekunden\""),
        36,
        "step[2] (id \"end_idle\").timeout",
        "invalid duration \"30 sekunden\"",
    );
    one(
        &with(PG, "timeout = \"30s\"", "timeout = \"0s\""),
        36,
        "step[2] (id \"end_idle\").timeout",
        "must be greater than zero",
    );
    one(
        &with(PG, "every = \"2s\"", "every = \"50ms\""),
        50,
        "step[4] (id \"drained\").every",
        "must be at least 100ms",
    );
    one(
        &with(PG, "timeout = \"30s\"", "timeout = 30"),
        36,
        "step[2] (id \"end_idle\").timeout",
        "invalid type: integer `30`, expected a string",
    );
}

#[test]
fn other_values_are_checked() {
    one(
        &with(PG, "max_steps = 50", "max_steps = 1001"),
        7,
        "runbook.max_steps",
        "must be between 1 and 1000",
    );
    one(
        &with(PG, "severity = \"critical\"", "severity = \"fatal\""),
        4,
        "runbook.severity",
        "unknown variant `fatal`",
    );
    one(
        &with(PG, "on_failure = \"continue\"", "on_failure = \"retry\""),
        44,
        "step[3] (id \"vacuum\").on_failure",
        "expected `stop`, `continue` or `goto:<step id>`",
    );
    one(
        &with(PG, "plugin = \"vacuum\"", "plugin = \"Vacuum\""),
        42,
        "step[3] (id \"vacuum\").plugin",
        "invalid plugin name",
    );
}

#[test]
fn every_problem_of_a_file_is_reported_in_line_order() {
    let text = with(PG, "else = \"report\"", "else = \"nowhere\"");
    let text = with(&text, "every = \"2s\"", "every = \"1ms\"");
    let text = with(&text, "default = 10", "default = true");
    let diags = errors(&text);
    let found: Vec<(Option<usize>, &str)> =
        diags.iter().map(|d| (d.line, d.field.as_str())).collect();
    assert_eq!(
        found,
        [
            (Some(11), "params.idle_minutes.default"),
            (Some(29), "step[1] (id \"too_many\").else"),
            (Some(50), "step[4] (id \"drained\").every"),
        ],
        "{diags}"
    );
}

#[test]
fn for_alert_needs_every_matcher_and_some() {
    let no_alerts = with(
        PG,
        "alerts = ['alertname=\"PostgresConnectionsHigh\"', 'severity=~\"warning|critical\"']\n",
        "",
    );
    let no_alerts = with(&no_alerts, "name = \"pg-conn\"", "name = \"by-name-only\"");
    let other = with(PG, "name = \"pg-conn\"", "name = \"another\"");
    let set = load(&[("a.toml", PG), ("b.toml", &no_alerts), ("c.toml", &other)]).unwrap();
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let names = |l: &BTreeMap<String, String>| -> Vec<String> {
        set.for_alert(l).iter().map(|r| r.name.clone()).collect()
    };
    let firing = labels(&[
        ("alertname", "PostgresConnectionsHigh"),
        ("severity", "critical"),
        ("instance", "db1"),
    ]);
    assert_eq!(names(&firing), ["another", "pg-conn"], "by name");
    let info = labels(&[
        ("alertname", "PostgresConnectionsHigh"),
        ("severity", "info"),
    ]);
    assert!(names(&info).is_empty(), "every matcher must match");
    assert!(names(&BTreeMap::new()).is_empty());

    // The host call gives the same names.
    let wit = crate::host::bindings::types::Label {
        name: "alertname".into(),
        value: "PostgresConnectionsHigh".into(),
    };
    let sev = crate::host::bindings::types::Label {
        name: "severity".into(),
        value: "warning".into(),
    };
    assert_eq!(
        crate::host::runbooks::for_alert(&set, vec![wit, sev]),
        ["another", "pg-conn"]
    );
}

#[test]
fn get_gives_the_documented_json() {
    let dir = folder(&[("pg.toml", PG), ("mongo.toml", MONGO)]);
    let set = RunbookSet::load_dir(dir.path()).unwrap();
    let text = crate::host::runbooks::get(&set, "pg-conn").unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let source = format!("{}:1", dir.path().join("pg.toml").display());
    assert_eq!(
        value,
        json!({
            "name": "pg-conn",
            "description": "Connections near max.",
            "severity": "critical",
            "target_kind": "postgres",
            "alerts": ["alertname=\"PostgresConnectionsHigh\"", "severity=~\"warning|critical\""],
            "max_steps": 50,
            "params": {
                "grace": {"type": "duration", "default": "1m30s", "description": ""},
                "idle_minutes": {"type": "integer", "default": 10, "description": "Idle longer than this is ended."},
            },
            "steps": [
                {"id": "idle", "kind": "query", "title": "Idle in transaction", "on_failure": "stop",
                 "sql": "SELECT pid FROM pg_stat_activity WHERE now() - state_change > make_interval(mins => $1)",
                 "args": ["params.idle_minutes"]},
                {"id": "too_many", "kind": "check", "on_failure": "stop",
                 "expr": "size(steps.idle.rows) > 0 && steps.idle.rows.all(r, r.pid > 0)", "else": "report"},
                {"id": "end_idle", "kind": "action", "when": "steps.too_many.result", "timeout": "30s",
                 "on_failure": "goto:report", "terminate": "steps.idle.rows.map(r, r.pid)",
                 "requires_approval": true},
                {"id": "vacuum", "kind": "run_plugin", "on_failure": "continue", "plugin": "vacuum",
                 "params": {"reason": "alert.labels.alertname", "table": "'pg_class'"}},
                {"id": "drained", "kind": "wait", "timeout": "1m", "on_failure": "stop", "refresh": "idle",
                 "every": "2s", "until": "size(steps.idle.rows) == 0 || steps['too_many'].result == false"},
                {"id": "report", "kind": "note", "on_failure": "stop",
                 "text": "{{ steps.idle.rows | length }} idle on {{ target }} ({{ params.idle_minutes }} min); waited {{ steps.drained.waited_ms }} ms"},
            ],
            "source": source,
        })
    );
    let mongo: serde_json::Value =
        serde_json::from_str(&crate::host::runbooks::get(&set, "mongo-ops").unwrap()).unwrap();
    assert_eq!(mongo["params"], json!({}));
    assert_eq!(mongo["alerts"], json!([]));
    assert_eq!(
        mongo["steps"],
        json!([
            {"id": "ops", "kind": "query", "on_failure": "stop",
             "mongo": "{\"aggregate\": 1, \"pipeline\": [{\"$currentOp\": {}}], \"cursor\": {}}",
             "database": "admin"},
            {"id": "kill", "kind": "action", "on_failure": "stop",
             "kill_ops": "steps.ops.docs.map(o, o.opid)", "requires_approval": false},
        ])
    );
    match crate::host::runbooks::get(&set, "nope") {
        Err(crate::host::bindings::types::Error::InvalidInput(m)) => assert_eq!(
            m,
            "no runbook named `nope` (loaded: `mongo-ops`, `pg-conn`)"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn durations_are_formatted_for_plugins() {
    let cases = [
        (Duration::ZERO, "0s"),
        (Duration::from_millis(250), "250ms"),
        (Duration::from_secs(30), "30s"),
        (Duration::from_secs(90), "1m30s"),
        (Duration::from_secs(3600), "1h"),
        (Duration::from_secs(90_061), "1d1h1m1s"),
        (Duration::new(1, 1_500), "1s1us500ns"),
    ];
    for (d, text) in cases {
        assert_eq!(format_duration(d), text);
        assert_eq!(humantime::parse_duration(text).unwrap(), d, "{text}");
    }
}

/// The shipped runbooks, `policies/runbooks/*.toml`.
fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/runbooks")
}

#[test]
fn the_shipped_runbooks_load() {
    let set = RunbookSet::load_dir(&shipped()).unwrap_or_else(|d| panic!("{d}"));
    let files = std::fs::read_dir(shipped())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "toml"))
        })
        .count();
    assert_eq!(set.len(), files, "one runbook per file");
}
