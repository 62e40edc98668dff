//! The agent as a process: `kill -9` mid-run, retries across a restart,
//! and the SIGTERM drain. Checked through the HTTP API and a side table the
//! plugin writes to, which counts real executions.

use crate::daemon::{Proc, alert, payload};
use crate::world::World;
use std::time::Duration;
use warden::runs::{RunStatus, RunStore};
use warden_tests::{wait_for, wait_for_value};

const RULES: &str = r#"
[[rule]]
name = "slow"
match = ['alertname="Slow"']
plugin = "scripted"
target = "app"
params = { sleep_ms = "{{ labels.sleep }}", hit_sql = "INSERT INTO hits (what) VALUES ('{{ labels.what }}')" }

[[rule]]
name = "retrying"
match = ['alertname="Retry"']
plugin = "scripted"
target = "app"
params = { hit_sql = "INSERT INTO hits (what) VALUES ('retry')", fail_if_sql = "SELECT fail FROM control" }
retry = { attempts = 2, backoff = "3s" }

[[concurrency]]
target = "app"
max = 1
"#;

struct Setup {
    world: World,
    pool: sqlx::SqlitePool,
}

async fn setup() -> Setup {
    let world = World::new()
        .fixture("scripted")
        .sqlite_target("app", "app.db")
        .grant(
            "scripted",
            "app",
            &["read", "write"],
            "max_runtime = \"30s\"",
        )
        .policy(RULES)
        .http();
    world.write();
    let db = world.path("app.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", db.display()))
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE hits (what TEXT); CREATE TABLE control (fail INTEGER); INSERT INTO control VALUES (1);",
    )
    .execute(&pool)
    .await
    .unwrap();
    Setup { world, pool }
}

async fn hits(pool: &sqlx::SqlitePool, what: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM hits WHERE what = ?")
        .bind(what)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn slow(fp: &str, what: &str, sleep_ms: u32) -> serde_json::Value {
    payload(vec![alert(
        "firing",
        fp,
        &[
            ("alertname", "Slow"),
            ("what", what),
            ("sleep", &sleep_ms.to_string()),
        ],
    )])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_loses_no_alert_and_runs_nothing_twice() {
    let s = setup().await;
    let config = s.world.path("warden.toml");
    let mut agent = Proc::start(&config).await;
    let long = agent.api.alerts(&slow("a", "long", 20_000)).await;
    let long_id = long["runs"][0]["id"].as_str().unwrap().to_string();
    wait_for("the long run to start", Duration::from_secs(30), || async {
        hits(&s.pool, "long").await == 1
    })
    .await;
    // Two more, queued behind the concurrency limit of 1 on `app`.
    let b = agent.api.alerts(&slow("b", "b", 0)).await;
    let c = agent.api.alerts(&slow("c", "c", 0)).await;
    let queued = [
        b["runs"][0]["id"].as_str().unwrap().to_string(),
        c["runs"][0]["id"].as_str().unwrap().to_string(),
    ];
    assert_eq!(agent.api.run(&queued[0]).await.status, RunStatus::Queued);
    agent.kill9();

    let store = RunStore::open(&s.world.path("state/warden.db"))
        .await
        .unwrap();
    assert_eq!(
        store.alerts(10).await.unwrap().len(),
        3,
        "every accepted alert survived"
    );
    assert_eq!(
        store.get(&long_id).await.unwrap().unwrap().status,
        RunStatus::Running
    );
    drop(store);

    let agent = Proc::start(&config).await;
    let long = agent.api.run(&long_id).await;
    assert_eq!(long.status, RunStatus::Interrupted, "{long:#?}");
    for id in &queued {
        let r = agent.api.settled(id, Duration::from_secs(30)).await;
        assert_eq!(r.status, RunStatus::Succeeded, "{r:#?}");
    }
    assert_eq!(
        hits(&s.pool, "long").await,
        1,
        "the interrupted run is not run again"
    );
    assert_eq!(hits(&s.pool, "b").await, 1);
    assert_eq!(hits(&s.pool, "c").await, 1);
    let store = RunStore::open(&s.world.path("state/warden.db"))
        .await
        .unwrap();
    assert_eq!(store.alerts(10).await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_survives_a_restart_and_happens_once() {
    let s = setup().await;
    let config = s.world.path("warden.toml");
    let mut agent = Proc::start(&config).await;
    let body = agent
        .api
        .alerts(&payload(vec![alert(
            "firing",
            "r",
            &[("alertname", "Retry")],
        )]))
        .await;
    let first_id = body["runs"][0]["id"].as_str().unwrap().to_string();
    let first = wait_for_value(
        "the first attempt to fail",
        Duration::from_secs(30),
        || async {
            let r = agent.api.run(&first_id).await;
            (r.status == RunStatus::Failed && r.retried_by.is_some()).then_some(r)
        },
    )
    .await;
    agent.kill9();
    assert_eq!(hits(&s.pool, "retry").await, 1);
    sqlx::query("UPDATE control SET fail = 0")
        .execute(&s.pool)
        .await
        .unwrap();

    let agent = Proc::start(&config).await;
    let retry_id = first.retried_by.unwrap();
    let retry = agent.api.settled(&retry_id, Duration::from_secs(30)).await;
    assert_eq!(retry.status, RunStatus::Succeeded, "{retry:#?}");
    assert_eq!(retry.attempt, 2);
    assert_eq!(retry.retry_of.as_deref(), Some(first_id.as_str()));
    // Nothing else runs: wait past another backoff and count.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(hits(&s.pool, "retry").await, 2, "first attempt + one retry");
    let runs = agent.api.runs().await;
    assert_eq!(runs.len(), 2, "{runs:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_keeps_the_queue() {
    let s = setup().await;
    let config = s.world.path("warden.toml");
    let mut agent = Proc::start(&config).await;
    let body = agent.api.alerts(&slow("d1", "drain", 1500)).await;
    let running_id = body["runs"][0]["id"].as_str().unwrap().to_string();
    wait_for("the run to start", Duration::from_secs(30), || async {
        hits(&s.pool, "drain").await == 1
    })
    .await;
    let body = agent.api.alerts(&slow("d2", "later", 0)).await;
    let queued_id = body["runs"][0]["id"].as_str().unwrap().to_string();
    let status = agent.term();
    assert!(status.success(), "{status:?}\n{}", agent.log_text());
    assert!(
        agent.log_text().contains("draining"),
        "{}",
        agent.log_text()
    );

    let store = RunStore::open(&s.world.path("state/warden.db"))
        .await
        .unwrap();
    let finished = store.get(&running_id).await.unwrap().unwrap();
    assert_eq!(
        finished.status,
        RunStatus::Succeeded,
        "the run in flight finished"
    );
    assert_eq!(
        store.get(&queued_id).await.unwrap().unwrap().status,
        RunStatus::Queued
    );
    assert_eq!(hits(&s.pool, "later").await, 0);
    drop(store);

    let agent = Proc::start(&config).await;
    let r = agent.api.settled(&queued_id, Duration::from_secs(30)).await;
    assert_eq!(r.status, RunStatus::Succeeded);
    assert_eq!(hits(&s.pool, "later").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_from_the_command_line_runs_in_the_agent() {
    let s = setup().await;
    std::fs::write(
        s.world.path("policies/approval.toml"),
        r#"
[[rule]]
name = "careful"
match = ['alertname="Careful"']
plugin = "scripted"
target = "app"
require_approval = true
params = { hit_sql = "INSERT INTO hits (what) VALUES ('careful')" }
"#,
    )
    .unwrap();
    let config = s.world.path("warden.toml");
    let agent = Proc::start(&config).await;
    let body = agent
        .api
        .alerts(&payload(vec![alert(
            "firing",
            "c",
            &[("alertname", "Careful")],
        )]))
        .await;
    let plan_id = body["runs"][0]["id"].as_str().unwrap().to_string();
    let plan = agent.api.settled(&plan_id, Duration::from_secs(30)).await;
    assert_eq!(plan.status, RunStatus::AwaitingApproval, "{plan:#?}");
    assert_eq!(hits(&s.pool, "careful").await, 0);

    let out = std::process::Command::new(crate::world::warden_bin())
        .arg("--config")
        .arg(&config)
        .args(["approve", &plan_id, "--output", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let real_id = v["run"]["id"].as_str().unwrap().to_string();
    let real = agent.api.settled(&real_id, Duration::from_secs(30)).await;
    assert_eq!(real.status, RunStatus::Succeeded, "{real:#?}");
    // The approver is the operating-system user running the command (its
    // real uid), not a name given on the command line.
    let approval = real.approval.unwrap();
    let uid = unsafe { libc::getuid() };
    let by = approval.decided_by.unwrap();
    assert!(by.ends_with(&format!(" (uid {uid})")), "{by}");
    assert_eq!(approval.decided_via.as_deref(), Some("local-user"));
    assert_eq!(hits(&s.pool, "careful").await, 1);

    // A second approval is refused with exit code 2 and a reason.
    let out = std::process::Command::new(crate::world::warden_bin())
        .arg("--config")
        .arg(&config)
        .args(["approve", &plan_id])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not awaiting approval"));
}
