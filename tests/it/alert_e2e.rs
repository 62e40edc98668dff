//! End to end with real Prometheus and Alertmanager: a metric crosses a
//! Prometheus alert rule, Alertmanager posts the alert to Warden's webhook,
//! the matching `[[rule]]` runs the vacuum plugin against the test
//! PostgreSQL, and the run record carries the alert's labels.

use crate::daemon::Daemon;
use crate::vacuum::{churned_database, stat};
use crate::world::{TOKEN, World};
use std::time::Duration;
use warden::runs::{ActionState, RunStatus, Trigger};
use warden_tests::monitoring::{Alertmanager, MetricSource, Prometheus};
use warden_tests::{wait_for, wait_for_value};

const PROM_RULES: &str = r#"
groups:
  - name: warden-e2e
    rules:
      - alert: DeadTuplesHigh
        expr: warden_test_dead_tuples > 1000
        for: 0s
        labels:
          severity: warning
        annotations:
          summary: "{{ $labels.table }} on {{ $labels.target }} has {{ $value }} dead tuples"
"#;

const WARDEN_RULE: &str = r#"
[[rule]]
name = "vacuum-on-dead-tuples"
match = ['alertname="DeadTuplesHigh"', 'severity=~"warning|critical"']
plugin = "vacuum"
target_label = "target"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_alert_runs_vacuum_on_postgres() {
    let db = churned_database("e2e").await;
    let w = World::new()
        .pg_target("pg", &db.url)
        .plugin("vacuum")
        .grant(
            "vacuum",
            "pg",
            &["read", "maintenance"],
            "max_runtime = \"60s\"",
        )
        .policy(WARDEN_RULE)
        .http();
    let d = Daemon::start(&w).await;
    let metrics = MetricSource::start().await;
    metrics.set(
        "warden_test_dead_tuples",
        &[("target", "pg"), ("table", "churn")],
        5000.0,
    );
    let am = Alertmanager::start(&format!("{}/api/v1/alerts", d.api.base), TOKEN).await;
    let _prom = Prometheus::start(&[metrics.address()], PROM_RULES, &am).await;

    let run = wait_for_value(
        "a run triggered by the alert",
        Duration::from_secs(60),
        || async { d.api.runs().await.into_iter().find(|r| r.status.is_final()) },
    )
    .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.plugin, "vacuum");
    assert_eq!(run.target, "pg");
    let Trigger::Alert {
        rule,
        status,
        labels,
        annotations,
        fingerprint,
        ..
    } = &run.trigger
    else {
        panic!("{run:#?}")
    };
    assert_eq!(rule, "vacuum-on-dead-tuples");
    assert_eq!(status, "firing");
    assert_eq!(labels["alertname"], "DeadTuplesHigh");
    assert_eq!(labels["severity"], "warning");
    assert_eq!(labels["table"], "churn");
    assert!(!fingerprint.is_empty());
    assert!(
        annotations["summary"].contains("churn on pg"),
        "{annotations:?}"
    );
    assert!(
        run.actions
            .iter()
            .any(|a| a.state == ActionState::Executed && a.statement.contains("churn")),
        "{run:#?}"
    );
    wait_for("churn to be vacuumed", Duration::from_secs(15), || {
        let url = db.url.clone();
        async move {
            let (dead, last_vacuum, _) = stat(&url, "churn").await;
            dead == 0 && last_vacuum.is_some()
        }
    })
    .await;
    // Alertmanager repeats the group on changes; the same alert runs once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let runs = d.api.runs().await;
    let ran = runs.iter().filter(|r| r.decision.is_none()).count();
    assert_eq!(ran, 1, "{runs:#?}");
    d.stop().await;
}
