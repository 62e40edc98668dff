use std::time::Duration;

use serde_json::json;

use super::*;

#[test]
fn the_hosts_json_reads_into_the_model() {
    let json = r#"{
        "name": "pg-x", "description": "d", "severity": "critical", "target_kind": "postgres",
        "alerts": ["alertname=\"X\""], "max_steps": 20,
        "params": {"idle_minutes": {"type": "integer", "default": 10, "description": "m"},
                   "grace": {"type": "duration", "default": "1m30s", "description": ""}},
        "steps": [
            {"id": "q", "kind": "query", "sql": "SELECT 1", "args": ["params.idle_minutes"], "on_failure": "stop"},
            {"id": "a", "kind": "action", "terminate": "[1]", "on_failure": "goto:q", "timeout": "30s"},
            {"id": "r", "kind": "run_plugin", "plugin": "vacuum", "params": {"table": "'t'"}},
            {"id": "c", "kind": "check", "expr": "true", "else": "q"},
            {"id": "w", "kind": "wait", "every": "250ms", "until": "true"}
        ],
        "source": "pg.toml:1"
    }"#;
    let rb: Runbook = serde_json::from_str(json).unwrap();
    assert_eq!(rb.max_steps, 20);
    assert_eq!(rb.severity, Severity::Critical);
    assert_eq!(
        rb.params["idle_minutes"].default,
        Some(ParamValue::Integer(10))
    );
    assert_eq!(
        rb.params["grace"].default,
        Some(ParamValue::Duration(Duration::from_secs(90)))
    );
    assert!(rb.steps[1].needs_approval());
    assert_eq!(rb.steps[1].on_failure, OnFailure::Goto("q".into()));
    assert_eq!(rb.steps[1].timeout, Some(Duration::from_secs(30)));
    assert_eq!(
        rb.steps[1].kind,
        StepKind::Action {
            action: Action::Terminate("[1]".into()),
            requires_approval: true
        }
    );
    let StepKind::RunPlugin { params, .. } = &rb.steps[2].kind else {
        panic!("{:?}", rb.steps[2]);
    };
    assert_eq!(params["table"], "'t'");
    assert_eq!(
        rb.steps[3].kind,
        StepKind::Check {
            expr: "true".into(),
            otherwise: Some("q".into())
        }
    );
    let StepKind::Wait { every, .. } = &rb.steps[4].kind else {
        panic!("{:?}", rb.steps[4]);
    };
    assert_eq!(*every, Some(Duration::from_millis(250)));
    assert!(!rb.steps[0].needs_approval());
}

#[test]
fn defaults_are_the_models() {
    let rb: Runbook = serde_json::from_str(
        r#"{"name": "x", "steps": [{"id": "a", "kind": "action", "sql": "DELETE FROM t"}]}"#,
    )
    .unwrap();
    assert_eq!(rb.max_steps, DEFAULT_MAX_STEPS);
    assert_eq!(rb.severity, Severity::Warning);
    assert_eq!(rb.steps[0].on_failure, OnFailure::Stop);
    assert!(
        rb.steps[0].needs_approval(),
        "actions need approval by default"
    );
    assert_eq!(
        rb.steps[0].kind,
        StepKind::Action {
            action: Action::Statement(Statement::Sql {
                sql: "DELETE FROM t".into(),
                args: vec![]
            }),
            requires_approval: true
        }
    );
}

#[test]
fn the_json_form_round_trips_and_leaves_unset_fields_out() {
    let step = Step {
        id: "end".into(),
        title: None,
        when: None,
        timeout: Some(Duration::from_secs(90)),
        on_failure: OnFailure::Continue,
        kind: StepKind::Action {
            action: Action::Statement(Statement::Mongo {
                command: "{}".into(),
                database: None,
            }),
            requires_approval: false,
        },
        line: 0,
    };
    let value = serde_json::to_value(&step).unwrap();
    assert_eq!(
        value,
        json!({"id": "end", "kind": "action", "timeout": "1m30s", "on_failure": "continue",
               "mongo": "{}", "requires_approval": false})
    );
    let back: Step = serde_json::from_value(value).unwrap();
    assert_eq!(back, step);

    let spec = ParamSpec {
        kind: ParamType::Number,
        default: None,
        description: "d".into(),
    };
    let value = serde_json::to_value(&spec).unwrap();
    assert_eq!(value, json!({"type": "number", "description": "d"}));
    assert_eq!(serde_json::from_value::<ParamSpec>(value).unwrap(), spec);
}

#[test]
fn malformed_steps_are_refused_with_the_step_named() {
    let err = |json: &str| serde_json::from_str::<Step>(json).unwrap_err().to_string();
    assert!(
        err(r#"{"id": "q", "kind": "query"}"#)
            .contains("step `q`: a query step needs `sql` or `mongo`")
    );
    assert!(err(r#"{"id": "z", "kind": "dance"}"#).contains("unknown step kind `dance`"));
    assert!(
        err(r#"{"id": "t", "kind": "note", "timeout": "soon"}"#).contains("`timeout` \"soon\"")
    );
    assert!(
        err(r#"{"id": "g", "kind": "note", "on_failure": "goto:"}"#).contains("goto:<step id>")
    );
    let spec = serde_json::from_str::<ParamSpec>(r#"{"type": "integer", "default": "ten"}"#);
    assert!(
        spec.unwrap_err()
            .to_string()
            .contains("not of type `integer`")
    );
}

#[test]
fn durations_read_back_what_format_writes() {
    for d in [
        Duration::ZERO,
        Duration::from_millis(250),
        Duration::from_secs(90),
        Duration::from_secs(86_400 + 3_600 + 61),
        Duration::new(3, 1_002_003),
    ] {
        assert_eq!(parse_duration(&format_duration(d)), Some(d), "{d:?}");
    }
    assert_eq!(format_duration(Duration::from_secs(5_400)), "1h30m");
    for bad in ["", "5", "m", "1.5h", "1 h", "3parsecs"] {
        assert_eq!(parse_duration(bad), None, "{bad:?}");
    }
}
