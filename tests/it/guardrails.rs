//! Guardrails the host enforces for every plugin: cooldown, throttle,
//! circuit breaker, concurrency (queue vs skip), approvals.

use crate::daemon::{Daemon, alert, payload};
use crate::world::World;
use serde_json::json;
use std::time::Duration;
use warden::runs::{ApprovalState, DecisionKind, RunRecord, RunStatus};
use warden_tests::wait_for;

fn world(rules: &str) -> World {
    World::new()
        .fixture("scripted")
        .sqlite_target("app", "app.db")
        .sqlite_target("b", "b.db")
        .grant(
            "scripted",
            "app",
            &["read", "write"],
            "max_runtime = \"20s\"",
        )
        .grant("scripted", "b", &["read", "write"], "max_runtime = \"20s\"")
        .policy(rules)
        .http()
}

fn fired(name: &str, fp: &str, extra: &[(&str, &str)]) -> serde_json::Value {
    let mut labels = vec![("alertname", name)];
    labels.extend_from_slice(extra);
    payload(vec![alert("firing", fp, &labels)])
}

/// Admitted to run (the queue may already have started or finished it).
fn admitted(r: &RunRecord) -> bool {
    r.decision.is_none()
        && matches!(
            r.status,
            RunStatus::Queued | RunStatus::Running | RunStatus::Succeeded
        )
}

fn decision(r: &RunRecord) -> Option<DecisionKind> {
    r.decision.as_ref().map(|d| d.kind)
}

async fn post_one(d: &Daemon, body: &serde_json::Value) -> RunRecord {
    let resp = d.api.alerts(body).await;
    let id = resp["runs"][0]["id"].as_str().unwrap().to_string();
    d.api.run(&id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooldown_per_rule_and_target() {
    let w = world(
        r#"
[[rule]]
name = "cool"
match = ['alertname="Cool"']
plugin = "scripted"
target_label = "target"
cooldown = "1h"
"#,
    );
    let d = Daemon::start(&w).await;
    let first = post_one(&d, &fired("Cool", "a1", &[("target", "app")])).await;
    assert!(admitted(&first), "{first:#?}");
    // A different alert, same rule and target: cooled down.
    let second = post_one(&d, &fired("Cool", "a2", &[("target", "app")])).await;
    assert_eq!(
        decision(&second),
        Some(DecisionKind::Cooldown),
        "{second:#?}"
    );
    assert!(second.decision.unwrap().detail.contains("cooldown is 1h"));
    // Another target is not.
    let third = post_one(&d, &fired("Cool", "a3", &[("target", "b")])).await;
    assert!(admitted(&third), "{third:#?}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_by_label_group() {
    let w = world(
        r#"
[[rule]]
name = "thr"
match = ['alertname="Thr"']
plugin = "scripted"
target = "app"
throttle = { max = 2, per = "1h", group_by = ["cluster"] }
"#,
    );
    let d = Daemon::start(&w).await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let r = post_one(&d, &fired("Thr", &format!("t{i}"), &[("cluster", "east")])).await;
        statuses.push(decision(&r));
    }
    assert_eq!(
        statuses,
        vec![
            None,
            None,
            Some(DecisionKind::Throttled),
            Some(DecisionKind::Throttled)
        ]
    );
    let west = post_one(&d, &fired("Thr", "w0", &[("cluster", "west")])).await;
    assert_eq!(decision(&west), None, "another group has its own budget");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_opens_and_closes() {
    let w = world(
        r#"
[[rule]]
name = "flaky"
match = ['alertname="Flaky"']
plugin = "scripted"
target = "app"
params = { fail = "{{ labels.fail }}" }
circuit_breaker = { max_failures = 2, window = "1h", open_for = "2s" }
"#,
    );
    let d = Daemon::start(&w).await;
    for i in 0..2 {
        let r = post_one(&d, &fired("Flaky", &format!("f{i}"), &[("fail", "true")])).await;
        let r = d.api.settled(&r.id, Duration::from_secs(30)).await;
        assert_eq!(r.status, RunStatus::Failed, "{r:#?}");
    }
    // Two failures: open. The next alert is not run.
    let r = post_one(&d, &fired("Flaky", "f2", &[("fail", "false")])).await;
    assert_eq!(decision(&r), Some(DecisionKind::CircuitOpen), "{r:#?}");
    assert!(r.decision.unwrap().detail.contains("2 failed runs"));
    let (_, circuits) = d.api.get("/api/v1/circuits").await;
    assert_eq!(circuits["flaky"]["state"], "open", "{circuits}");

    // After open_for, one trial run goes through (half-open); while it
    // runs, others are skipped; its success closes the circuit.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let trial = post_one(&d, &fired("Flaky", "f3", &[("fail", "false")])).await;
    assert!(admitted(&trial), "{trial:#?}");
    let trial = d.api.settled(&trial.id, Duration::from_secs(30)).await;
    assert_eq!(trial.status, RunStatus::Succeeded);
    let (_, circuits) = d.api.get("/api/v1/circuits").await;
    assert_eq!(circuits["flaky"]["state"], "closed", "{circuits}");
    let after = post_one(&d, &fired("Flaky", "f4", &[("fail", "false")])).await;
    assert!(admitted(&after), "{after:#?}");

    // Open it again and reset it by hand.
    for i in 5..7 {
        let r = post_one(&d, &fired("Flaky", &format!("f{i}"), &[("fail", "true")])).await;
        d.api.settled(&r.id, Duration::from_secs(30)).await;
    }
    let r = post_one(&d, &fired("Flaky", "f7", &[("fail", "false")])).await;
    assert_eq!(decision(&r), Some(DecisionKind::CircuitOpen));
    let (code, body) = d
        .api
        .post("/api/v1/circuits/flaky/reset", &json!({"by": "alice"}))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["reason"], "reset by alice");
    let r = post_one(&d, &fired("Flaky", "f8", &[("fail", "false")])).await;
    assert!(admitted(&r), "{r:#?}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_queue_versus_skip() {
    let w = world(
        r#"
[[concurrency]]
target = "app"
max = 1
on_limit = "queue"

[[concurrency]]
target = "b"
max = 1
on_limit = "skip"
"#,
    );
    let d = Daemon::start(&w).await;
    let mut ids = Vec::new();
    for target in ["app", "app", "b", "b"] {
        let (code, body) = d
            .api
            .post(
                "/api/v1/runs",
                &json!({"plugin": "scripted", "target": target, "params": {"sleep_ms": 700}}),
            )
            .await;
        assert_eq!(code, 202, "{body}");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    let mut runs = Vec::new();
    for id in &ids {
        runs.push(d.api.settled(id, Duration::from_secs(30)).await);
    }
    // `app` queues: both ran, one after the other.
    assert_eq!(runs[0].status, RunStatus::Succeeded);
    assert_eq!(runs[1].status, RunStatus::Succeeded);
    let (a, b) = (&runs[0], &runs[1]);
    let (first, second) = if a.started_at <= b.started_at {
        (a, b)
    } else {
        (b, a)
    };
    assert!(
        second.started_at >= first.ended_at.unwrap(),
        "queued run started before the first ended: {first:#?} {second:#?}"
    );
    // `b` skips: one ran, one was skipped naming the limit.
    let skipped: Vec<_> = runs[2..]
        .iter()
        .filter(|r| r.status == RunStatus::Skipped)
        .collect();
    assert_eq!(skipped.len(), 1, "{:#?}", &runs[2..]);
    assert_eq!(decision(skipped[0]), Some(DecisionKind::Concurrency));
    assert!(
        skipped[0]
            .decision
            .as_ref()
            .unwrap()
            .detail
            .contains("target `b`")
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_plan_then_execute_and_expire() {
    let w = world(
        r#"
[[rule]]
name = "needs-ok"
match = ['alertname="Fix"']
plugin = "scripted"
target = "app"
require_approval = true
approval_ttl = "2s"
params = { hit_sql = "INSERT INTO hits (at) VALUES (CURRENT_TIMESTAMP)" }
"#,
    );
    let db = w.path("app.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", db.display()))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE hits (at TEXT)")
        .execute(&pool)
        .await
        .unwrap();
    let hits = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM hits")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let d = Daemon::start(&w).await;

    let plan = post_one(&d, &fired("Fix", "x1", &[])).await;
    let plan = d.api.settled(&plan.id, Duration::from_secs(30)).await;
    assert_eq!(plan.status, RunStatus::AwaitingApproval, "{plan:#?}");
    assert!(plan.dry_run);
    assert_eq!(plan.actions.len(), 1, "the INSERT is planned: {plan:#?}");
    assert_eq!(hits().await, 0, "nothing executed before approval");

    let (code, body) = d.api.approve(&plan.id, "carol").await;
    assert_eq!(code, 200, "{body}");
    let real_id = body["run"]["id"].as_str().unwrap().to_string();
    let real = d.api.settled(&real_id, Duration::from_secs(30)).await;
    assert_eq!(real.status, RunStatus::Succeeded, "{real:#?}");
    assert!(!real.dry_run);
    let a = real.approval.unwrap();
    assert_eq!(a.state, ApprovalState::Approved);
    assert_eq!(a.decided_by.as_deref(), Some("carol"));
    assert_eq!(a.linked_run.as_deref(), Some(plan.id.as_str()));
    assert_eq!(hits().await, 1, "executed once after approval");
    let plan = d.api.run(&plan.id).await;
    assert_eq!(plan.status, RunStatus::Approved);
    // Approving twice is refused.
    let (code, _) = d.api.approve(&plan.id, "carol").await;
    assert_eq!(code, 409);

    // A plan nobody approves expires.
    let late = post_one(&d, &fired("Fix", "x2", &[])).await;
    let late = d.api.settled(&late.id, Duration::from_secs(30)).await;
    assert_eq!(late.status, RunStatus::AwaitingApproval);
    wait_for("the plan to expire", Duration::from_secs(10), || async {
        d.api.run(&late.id).await.status == RunStatus::Expired
    })
    .await;
    let (code, body) = d.api.approve(&late.id, "carol").await;
    assert_eq!(code, 409, "{body}");

    // Rejecting ends a plan.
    let third = post_one(&d, &fired("Fix", "x3", &[])).await;
    d.api.settled(&third.id, Duration::from_secs(30)).await;
    let (code, body) = d
        .api
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/runs/{}/reject", third.id),
            Some(br#"{"reason": "not now"}"#.to_vec()),
            Some(&crate::world::approver_token("bob")),
            &[],
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["approval"]["decided_by"], "bob");
    assert_eq!(body["approval"]["decided_via"], "api-token");
    assert_eq!(hits().await, 1);
    d.stop().await;
}
