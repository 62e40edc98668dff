#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::*;

/// A valid PostgreSQL runbook using every kind of step (a UI case too,
/// see `crate::ui_tests`). Line numbers matter to the tests below.
const PG: &str = include_str!("../../../tests/ui/runbook/valid/pg.toml");

/// A valid MongoDB runbook.
const MONGO: &str = include_str!("../../../tests/ui/runbook/valid/mongo.toml");

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
}

#[test]
fn references_to_later_steps_are_reported() {
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
fn an_action_needs_exactly_one_thing_to_do() {
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
fn defaults_must_fit_their_type() {
    let number = with(PG, "type = \"integer\"", "type = \"number\"");
    let set = load(&[("rb.toml", &number)]).unwrap();
    assert_eq!(
        set.get("pg-conn").unwrap().params["idle_minutes"].default,
        Some(ParamValue::Number(10.0))
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
