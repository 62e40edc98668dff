//! The shipped runbooks through the `runbook` plugin, against incidents
//! reproduced for real on the test cluster: sessions held idle in a
//! transaction, a lock chain, a stuck outbox; dry-run plans only, an
//! approved run remediates (checked in `pg_stat_activity`), a run nobody
//! approved does nothing; an Alertmanager alert picks the runbook and its
//! labels fill the parameters; a looping runbook stops at its bound.

use crate::daemon::{Daemon, alert, payload};
use crate::world::{World, error_of, invoke};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use std::time::Duration;
use warden::runs::{ReportStatus, RunRecord, RunStatus};
use warden_tests::pg::{TestDb, cluster};
use warden_tests::repo_root;

fn shipped() -> String {
    format!(
        "[runbooks]\ndir = {:?}\n",
        repo_root().join("policies/runbooks").display().to_string()
    )
}

pub(crate) fn world(db: &TestDb, extra_grant: &str) -> World {
    World::new()
        .pg_target("app", &db.url)
        .plugin("runbook")
        .grant("runbook", "app", &["read", "session-control"], extra_grant)
        .config(&shipped())
}

/// A login role that is not a superuser (the host refuses to signal
/// superuser sessions), and a connection URL for it.
pub(crate) async fn app_role(db: &TestDb) -> String {
    let role = format!("app_{}", db.name);
    let mut admin = PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(&format!(
        r#"CREATE ROLE "{role}" LOGIN PASSWORD 'pw'; GRANT ALL ON SCHEMA public TO "{role}";"#
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    format!(
        "postgres://{role}:pw@127.0.0.1:{}/{}?application_name=shop",
        cluster().port(),
        db.name
    )
}

pub(crate) async fn pid_of(conn: &mut PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Opens `n` sessions that sit idle in a transaction; their pids.
async fn idle_in_transaction(url: &str, n: usize) -> (Vec<PgConnection>, Vec<i32>) {
    let mut conns = Vec::new();
    let mut pids = Vec::new();
    for _ in 0..n {
        let mut c = PgConnection::connect(url).await.unwrap();
        pids.push(pid_of(&mut c).await);
        sqlx::raw_sql("BEGIN; SELECT 1;")
            .execute(&mut c)
            .await
            .unwrap();
        conns.push(c);
    }
    (conns, pids)
}

pub(crate) async fn alive(db: &TestDb, pids: &[i32]) -> Vec<i32> {
    let mut c = PgConnection::connect(&db.url).await.unwrap();
    let found: Vec<i32> =
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE pid = ANY($1) ORDER BY pid")
            .bind(pids)
            .fetch_all(&mut c)
            .await
            .unwrap();
    found
}

fn titles(r: &RunRecord) -> Vec<String> {
    r.report
        .as_ref()
        .map(|rep| rep.findings.iter().map(|f| f.title.clone()).collect())
        .unwrap_or_default()
}

fn detail<'r>(r: &'r RunRecord, prefix: &str) -> &'r str {
    let report = r.report.as_ref().expect("a report");
    report
        .findings
        .iter()
        .find(|f| f.title.starts_with(prefix))
        .map(|f| f.detail.as_str())
        .unwrap_or_else(|| panic!("no finding {prefix}…: {:#?}", report.findings))
}

pub(crate) async fn post_run(d: &Daemon, params: serde_json::Value) -> String {
    let (code, body) = d
        .api
        .post(
            "/api/v1/runs",
            &json!({"plugin": "runbook", "target": "app", "params": params}),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    body["id"].as_str().unwrap().to_string()
}

async fn approve(d: &Daemon, plan_id: &str) -> RunRecord {
    let (code, body) = d.api.approve(plan_id, "oncall").await;
    assert_eq!(code, 200, "{body}");
    let real_id = body["run"]["id"].as_str().unwrap().to_string();
    d.api.settled(&real_id, Duration::from_secs(90)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_exhaustion_plans_in_dry_run_and_ends_idle_sessions_once_approved() {
    let db = cluster().create_database("rb_conn").await;
    let url = app_role(&db).await;
    let (_held, pids) = idle_in_transaction(&url, 3).await;
    // A busy session of the same role that is not idle in a transaction.
    let mut busy = PgConnection::connect(&url).await.unwrap();
    let busy_pid = pid_of(&mut busy).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let w = world(&db, "require_approval = true").http();
    let d = Daemon::start(&w).await;
    let plan_id = post_run(
        &d,
        json!({"runbook": "pg-connection-exhaustion", "params": "idle_seconds=1"}),
    )
    .await;
    let plan = d.api.settled(&plan_id, Duration::from_secs(90)).await;
    assert_eq!(plan.status, RunStatus::AwaitingApproval, "{plan:#?}");
    assert!(plan.dry_run);
    let planned = detail(&plan, "step 5 end_idle (action): planned");
    for pid in &pids {
        assert!(planned.contains(&format!("pid {pid}")), "{planned}");
    }
    assert!(!planned.contains(&format!("pid {busy_pid}")), "{planned}");
    assert_eq!(plan.actions.len(), 3, "{:#?}", plan.actions);
    assert_eq!(alive(&db, &pids).await, pids, "dry-run ends nothing");

    let real = approve(&d, &plan_id).await;
    assert_eq!(real.status, RunStatus::Succeeded, "{}", error_of(&real));
    let done = detail(&real, "step 5 end_idle (action): ok");
    assert!(done.contains("terminate pid"), "{done}");
    assert!(
        alive(&db, &pids).await.is_empty(),
        "the idle sessions are gone"
    );
    assert_eq!(
        alive(&db, &[busy_pid]).await,
        [busy_pid],
        "the busy one stays"
    );
    // The agent's own session survived its own runbook: the summary ran after.
    let summary = detail(&real, "step 6 summary (note): ok");
    assert!(summary.contains("3 idle in a transaction"), "{summary}");
    let markdown = detail(&real, "incident timeline (markdown)");
    assert!(
        markdown.starts_with("## Incident timeline: pg-connection-exhaustion (critical)"),
        "{markdown}"
    );
    assert!(markdown.contains("- mode: approved run"), "{markdown}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_nobody_approved_diagnoses_but_ends_nothing() {
    let db = cluster().create_database("rb_noapproval").await;
    let url = app_role(&db).await;
    let (_held, pids) = idle_in_transaction(&url, 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let w = world(&db, "");
    let agent = w.agent().await;
    let r = invoke(
        &agent,
        "runbook",
        "app",
        &[
            ("runbook", "pg-connection-exhaustion"),
            ("params", "idle_seconds=1"),
        ],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    let report = r.report.as_ref().unwrap();
    assert_eq!(report.status, ReportStatus::Warning, "{report:#?}");
    assert!(
        report.summary.contains("needs approval"),
        "{}",
        report.summary
    );
    assert!(
        titles(&r).contains(&"step 5 end_idle (action): awaiting approval".to_owned()),
        "{:?}",
        titles(&r)
    );
    assert!(r.actions.is_empty(), "{:#?}", r.actions);
    assert_eq!(alive(&db, &pids).await, pids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_chain_is_broken_at_its_root_once_approved() {
    let db = cluster().create_database("rb_locks").await;
    let url = app_role(&db).await;
    let mut setup = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("CREATE TABLE t (id int); INSERT INTO t VALUES (1);")
        .execute(&mut setup)
        .await
        .unwrap();
    // The root: holds an exclusive lock, idle in its transaction.
    let mut root = PgConnection::connect(&url).await.unwrap();
    let root_pid = pid_of(&mut root).await;
    sqlx::raw_sql("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE;")
        .execute(&mut root)
        .await
        .unwrap();
    // Two sessions queue behind it.
    let mut waiters = Vec::new();
    for _ in 0..2 {
        let url = url.clone();
        waiters.push(tokio::spawn(async move {
            let mut c = PgConnection::connect(&url).await.unwrap();
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM t")
                .fetch_one(&mut c)
                .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let w = world(&db, "require_approval = true").http();
    let d = Daemon::start(&w).await;
    let plan_id = post_run(
        &d,
        json!({"runbook": "pg-lock-pileup", "params": "hold_seconds=1"}),
    )
    .await;
    let plan = d.api.settled(&plan_id, Duration::from_secs(90)).await;
    assert_eq!(plan.status, RunStatus::AwaitingApproval, "{plan:#?}");
    let roots = detail(&plan, "step 2 roots (query): ok");
    assert!(roots.contains(&format!("\"pid\":{root_pid}")), "{roots}");
    assert!(roots.contains("\"blocking\":2"), "{roots}");
    assert_eq!(alive(&db, &[root_pid]).await, [root_pid]);

    let real = approve(&d, &plan_id).await;
    assert_eq!(real.status, RunStatus::Succeeded, "{}", error_of(&real));
    // Cancelling an idle holder frees nothing; the wait runs out and the
    // root is terminated.
    let titles = titles(&real);
    assert!(
        titles.contains(&"step 5 released (wait): failed".to_owned()),
        "{titles:?}"
    );
    assert!(
        titles.contains(&"step 6 terminate (action): ok".to_owned()),
        "{titles:?}"
    );
    assert!(alive(&db, &[root_pid]).await.is_empty());
    for w in waiters {
        let n = tokio::time::timeout(Duration::from_secs(30), w)
            .await
            .expect("the waiters finish")
            .unwrap()
            .unwrap();
        assert_eq!(n, 1);
    }
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_picks_the_runbook_and_its_labels_fill_the_parameters() {
    let db = cluster().create_database("rb_alert").await;
    let url = app_role(&db).await;
    let (_held, pids) = idle_in_transaction(&url, 2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let w = world(&db, "require_approval = true").http().policy(
        r#"
[[rule]]
name = "connections"
match = ['alertname="PostgresConnectionsHigh"']
plugin = "runbook"
target = "app"
"#,
    );
    let d = Daemon::start(&w).await;
    let body = d
        .api
        .alerts(&payload(vec![alert(
            "firing",
            "f1",
            &[
                ("alertname", "PostgresConnectionsHigh"),
                ("idle_seconds", "1"),
            ],
        )]))
        .await;
    let plan_id = body["runs"][0]["id"].as_str().unwrap().to_string();
    let plan = d.api.settled(&plan_id, Duration::from_secs(90)).await;
    assert_eq!(plan.status, RunStatus::AwaitingApproval, "{plan:#?}");
    let report = plan.report.as_ref().unwrap();
    assert!(
        report
            .summary
            .starts_with("runbook pg-connection-exhaustion"),
        "{}",
        report.summary
    );
    let summary = detail(&plan, "step 6 summary (note): ok");
    assert!(summary.contains("over 1 s"), "{summary}");
    let markdown = detail(&plan, "incident timeline (markdown)");
    assert!(
        markdown.contains("alertname=PostgresConnectionsHigh"),
        "{markdown}"
    );
    assert_eq!(plan.actions.len(), 2, "{:#?}", plan.actions);
    assert_eq!(alive(&db, &pids).await, pids);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_outbox_is_escalated() {
    let db = cluster().create_database("rb_outbox").await;
    let mut c = PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE outbox (id serial PRIMARY KEY, payload text, created_at timestamptz NOT NULL, published_at timestamptz);
         INSERT INTO outbox (payload, created_at, published_at)
             SELECT 'e' || g, now() - interval '20 minutes' + g * interval '1 second', NULL FROM generate_series(1, 40) g;
         INSERT INTO outbox (payload, created_at, published_at)
             SELECT 'p' || g, now() - interval '1 hour', now() FROM generate_series(1, 10) g;",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let w = world(&db, "");
    let agent = w.agent().await;
    let r = invoke(
        &agent,
        "runbook",
        "app",
        &[("runbook", "pg-outbox-backlog")],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    let escalate = detail(&r, "step 3 escalate (note): ok");
    assert!(
        escalate.contains("ESCALATE: 40 unpublished rows in public.outbox"),
        "{escalate}"
    );

    // Published: the same runbook says it drains.
    sqlx::raw_sql("UPDATE outbox SET published_at = now()")
        .execute(&mut c)
        .await
        .unwrap();
    let r = invoke(
        &agent,
        "runbook",
        "app",
        &[("runbook", "pg-outbox-backlog")],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    assert!(detail(&r, "step 3 fine (note): ok").contains("0 unpublished"));
    assert_eq!(r.report.as_ref().unwrap().status, ReportStatus::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goto_loop_stops_at_max_steps() {
    let db = cluster().create_database("rb_loop").await;
    let base = World::new()
        .pg_target("app", &db.url)
        .plugin("runbook")
        .grant("runbook", "app", &["read"], "");
    let dir = base.path("runbooks");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("loop.toml"),
        r#"
[runbook]
name = "loop"
description = "Checks forever."
severity = "info"
target_kind = "postgres"
max_steps = 25

[[step]]
id = "look"
kind = "query"
sql = "SELECT 1 AS one"

[[step]]
id = "again"
kind = "check"
expr = "steps.look.count > 5"
else = "look"
"#,
    )
    .unwrap();
    let w = base.config(&format!(
        "[runbooks]\ndir = {:?}\n",
        dir.display().to_string()
    ));
    let agent = w.agent().await;
    let r = invoke(&agent, "runbook", "app", &[("runbook", "loop")], false).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    let report = r.report.as_ref().unwrap();
    assert_eq!(report.status, ReportStatus::Critical, "{report:#?}");
    assert!(
        report.summary.contains("stopped after 25 steps"),
        "{}",
        report.summary
    );
    // 25 step findings and the timeline.
    assert_eq!(report.findings.len(), 26);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_bloat_queues_a_vacuum_run_through_the_agent() {
    let db = cluster().create_database("rb_bloat").await;
    let mut c = PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE events (id int, payload text) WITH (autovacuum_enabled = false);
         INSERT INTO events SELECT g, repeat('x', 50) FROM generate_series(1, 40000) g;
         DELETE FROM events WHERE id % 4 <> 0;
         SELECT pg_stat_force_next_flush();",
    )
    .execute(&mut c)
    .await
    .unwrap();
    // The statistics reach pg_stat_user_tables once flushed.
    sqlx::raw_sql("SELECT 1").execute(&mut c).await.unwrap();
    let w = World::new()
        .pg_target("app", &db.url)
        .plugin("runbook")
        .plugin("vacuum")
        .grant("runbook", "app", &["read"], r#"run_plugins = ["vacuum"]"#)
        .grant("vacuum", "app", &["read", "maintenance"], "")
        .config(&shipped())
        .http();
    let d = Daemon::start(&w).await;
    let id = post_run(&d, json!({"runbook": "pg-table-bloat"})).await;
    let r = d.api.settled(&id, Duration::from_secs(90)).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    let bloated = detail(&r, "step 1 bloated (query): ok");
    assert!(bloated.contains("public.events"), "{bloated}");
    let queued = detail(&r, "step 3 vacuum (run_plugin): ok");
    assert!(
        queued.contains(
            "start `vacuum` on `app` (dead_ratio=0.2, min_dead_tuples=1000, tables=public.events)"
        ),
        "{queued}"
    );
    // The vacuum run the runbook queued ran under its own grant.
    let vacuum_run = d
        .api
        .runs()
        .await
        .into_iter()
        .find(|run| run.plugin == "vacuum")
        .expect("a vacuum run was queued");
    let vacuum_run = d.api.settled(&vacuum_run.id, Duration::from_secs(90)).await;
    assert_eq!(vacuum_run.status, RunStatus::Succeeded, "{vacuum_run:#?}");
    let vacuumed: bool = sqlx::query_scalar(
        "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'events'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert!(vacuumed, "{vacuum_run:#?}");
    d.stop().await;

    // Without vacuum in `run_plugins`, the step is refused and says why.
    let w = World::new()
        .pg_target("app", &db.url)
        .plugin("runbook")
        .plugin("vacuum")
        .grant("runbook", "app", &["read"], "")
        .grant("vacuum", "app", &["read", "maintenance"], "")
        .config(&shipped())
        .http();
    sqlx::raw_sql(
        "INSERT INTO events SELECT g, 'y' FROM generate_series(1, 40000) g;
         DELETE FROM events WHERE payload = 'y';
         SELECT pg_stat_force_next_flush();",
    )
    .execute(&mut c)
    .await
    .unwrap();
    sqlx::raw_sql("SELECT 1").execute(&mut c).await.unwrap();
    let d = Daemon::start(&w).await;
    let id = post_run(&d, json!({"runbook": "pg-table-bloat"})).await;
    let r = d.api.settled(&id, Duration::from_secs(90)).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    let refused = detail(&r, "step 3 vacuum (run_plugin): failed");
    assert!(refused.contains("run_plugins"), "{refused}");
    assert_eq!(r.report.as_ref().unwrap().status, ReportStatus::Critical);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_queries_are_ranked_and_the_index_advisor_is_queued() {
    let db = cluster().create_database("rb_slow").await;
    let mut c = PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, note text);
         INSERT INTO orders SELECT g, g % 5000, 'n' FROM generate_series(1, 100000) g;
         ANALYZE orders;",
    )
    .execute(&mut c)
    .await
    .unwrap();
    for i in 0..12 {
        sqlx::query("SELECT note FROM orders WHERE customer_id = $1")
            .bind(i)
            .execute(&mut c)
            .await
            .unwrap();
    }
    let w = World::new()
        .pg_target("app", &db.url)
        .plugin("runbook")
        .plugin("index-advisor")
        .grant(
            "runbook",
            "app",
            &["read"],
            r#"run_plugins = ["index-advisor"]"#,
        )
        .grant("index-advisor", "app", &["read"], "")
        .config(&shipped())
        .http();
    let d = Daemon::start(&w).await;
    let id = post_run(&d, json!({"runbook": "pg-slow-queries"})).await;
    let r = d.api.settled(&id, Duration::from_secs(90)).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    let top = detail(&r, "step 2 top_mean (query): ok");
    assert!(top.contains("customer_id = $1"), "{top}");
    assert!(detail(&r, "step 3 advise (run_plugin): ok").contains("start `index-advisor`"));
    let advisor = d
        .api
        .runs()
        .await
        .into_iter()
        .find(|run| run.plugin == "index-advisor")
        .expect("an index-advisor run was queued");
    let advisor = d.api.settled(&advisor.id, Duration::from_secs(90)).await;
    assert_eq!(advisor.status, RunStatus::Succeeded, "{advisor:#?}");
    let suggested: Vec<String> = titles(&advisor)
        .into_iter()
        .filter(|t| t.starts_with("suggested index"))
        .collect();
    assert_eq!(suggested, ["suggested index public.orders(customer_id)"]);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_lag_reports_without_acting() {
    let db = cluster().create_database("rb_repl").await;
    let w = world(&db, "");
    let agent = w.agent().await;
    let r = invoke(
        &agent,
        "runbook",
        "app",
        &[("runbook", "pg-replication-lag")],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    assert!(r.actions.is_empty());
    // The test cluster is a primary without replicas.
    let summary = detail(&r, "step 4 summary (note): ok");
    assert!(summary.contains("Primary with 0 replica(s)"), "{summary}");
    assert!(
        titles(&r).contains(&"step 3 receiver (query): skipped".to_owned()),
        "{:?}",
        titles(&r)
    );
    assert_eq!(r.report.as_ref().unwrap().status, ReportStatus::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_long_operations_never_kill_the_agents_own() {
    // The test server's currentOp lists only the asking connection's own
    // operation, so the only "long" operation the runbook can see is the
    // agent's own `currentOp`: the host must not kill it.
    let db = warden_tests::mongo::server()
        .create_database("rb_mongo")
        .await;
    let w = World::new()
        .mongo_target("docs", &db.url)
        .plugin("runbook")
        .grant("runbook", "docs", &["read", "session-control"], "")
        .config(&shipped());
    let agent = w.agent().await;
    let r = invoke(
        &agent,
        "runbook",
        "docs",
        &[
            ("runbook", "mongo-long-operations"),
            ("params", "max_seconds=0"),
        ],
        true,
    )
    .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    let ops = detail(&r, "step 1 long_ops (query): ok");
    assert!(ops.contains("\"inprog\""), "{ops}");
    let kill = detail(&r, "step 3 kill (action): failed");
    assert!(
        kill.contains("agent's own") || kill.contains("warden/"),
        "{kill}"
    );
    assert!(r.actions.is_empty(), "{:#?}", r.actions);
    // on_failure = continue: the summary still runs.
    assert!(titles(&r).contains(&"step 4 summary (note): ok".to_owned()));
}
