//! Every run tells the truth (issue 13, parts 1 and 2), against the real
//! PostgreSQL 15 cluster: server notices and warnings reach the plugin, the
//! action record and the span; a maintenance statement PostgreSQL skipped
//! with a warning is a failed action; a report with a failed action is a
//! failed run, counted as such.

use crate::world::{World, error_of, finding, invoke, metric, warden_bin};
use sqlx::Connection;
use std::time::Duration;
use warden::runs::{Action, ActionState, Blame, Origin, RunRecord, RunStatus};
use warden_tests::pg::{TestDb, cluster};
use warden_tests::wait_for;

/// A database with a maintenance role that owns `mine` but not `events` or
/// `fresh` (owned by another role): `events` and `mine` have 80% dead
/// tuples, `fresh` only inserts (it needs ANALYZE, not VACUUM).
struct NonOwner {
    db: TestDb,
    /// The maintenance role's URL.
    url: String,
    owner: String,
}

async fn counters(url: &str, table: &str) -> (i64, i64, i64) {
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_as(
        "SELECT n_dead_tup, vacuum_count, analyze_count FROM pg_stat_user_tables WHERE relname = $1",
    )
    .bind(table)
    .fetch_one(&mut c)
    .await
    .unwrap()
}

async fn non_owner(hint: &str) -> NonOwner {
    let db = cluster().create_database(hint).await;
    let maint = format!("maint_{}", db.name);
    let owner = format!("own_{}", db.name);
    let password = format!("pw-{}", db.name);
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(&format!(
        "CREATE ROLE {owner} NOLOGIN;
         CREATE ROLE {maint} LOGIN PASSWORD '{password}';
         CREATE TABLE events (id int PRIMARY KEY, payload text) WITH (autovacuum_enabled = false);
         CREATE TABLE fresh (id int PRIMARY KEY, payload text) WITH (autovacuum_enabled = false);
         CREATE TABLE mine (id int PRIMARY KEY, payload text) WITH (autovacuum_enabled = false);
         INSERT INTO events SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g;
         INSERT INTO mine SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g;
         DELETE FROM events WHERE id % 5 <> 0;
         DELETE FROM mine WHERE id % 5 <> 0;
         INSERT INTO fresh SELECT g, repeat('y', 100) FROM generate_series(1, 5000) g;
         ALTER TABLE events OWNER TO {owner};
         ALTER TABLE fresh OWNER TO {owner};
         ALTER TABLE mine OWNER TO {maint};
         GRANT SELECT ON events, fresh TO {maint};"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let url = db.url.clone();
    wait_for("the churn to be counted", Duration::from_secs(15), || {
        let url = url.clone();
        async move {
            counters(&url, "events").await.0 >= 16000 && counters(&url, "mine").await.0 >= 16000
        }
    })
    .await;
    let port = cluster().port();
    NonOwner {
        url: format!("postgres://{maint}:{password}@127.0.0.1:{port}/{}", db.name),
        db,
        owner,
    }
}

fn host_action<'r>(r: &'r RunRecord, statement: &str) -> &'r Action {
    r.actions
        .iter()
        .find(|a| a.origin == Origin::Host && a.statement == statement)
        .unwrap_or_else(|| panic!("no host action `{statement}` in {:#?}", r.actions))
}

fn plugin_claim<'r>(r: &'r RunRecord, statement: &str) -> Option<&'r Action> {
    r.report
        .as_ref()
        .unwrap()
        .actions
        .iter()
        .find(|a| a.origin == Origin::Plugin && a.statement == statement)
}

fn runs_total(agent: &warden::agent::Agent, plugin: &str, status: &str) -> u64 {
    let text = agent.metrics.encode();
    // Summed over targets.
    let key = format!("warden_runs_total{{plugin=\"{plugin}\",status=\"{status}\",");
    text.lines()
        .filter(|l| l.starts_with(&key))
        .map(|l| l.rsplit(' ').next().unwrap().trim().parse::<u64>().unwrap())
        .sum()
}

/// Part 1 and 2 for VACUUM and ANALYZE: PostgreSQL skips the tables the role
/// does not own with a WARNING only; the run is failed, the warnings are in
/// the host's action records, each skipped table is a failed action with a
/// finding that names the owner and the fix, and the owned table, vacuumed
/// for real, stays an executed action.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_and_analyze_of_tables_the_role_does_not_own_fail_the_run() {
    let n = non_owner("truth_vacuum").await;
    let w = World::new().pg_target("pg", &n.url).plugin("vacuum").grant(
        "vacuum",
        "pg",
        &["read", "maintenance"],
        "max_runtime = \"60s\"",
    );
    let agent = w.agent().await;
    let before_events = counters(&n.db.url, "events").await;
    let before_fresh = counters(&n.db.url, "fresh").await;
    let r = invoke(&agent, "vacuum", "pg", &[], false).await;

    assert_eq!(r.status, RunStatus::Failed, "{r:#?}");
    let error = r.error.as_ref().unwrap();
    assert_eq!(error.blame, Blame::Guest);
    assert_eq!(error.kind, "action-failed");
    assert!(
        error.message.starts_with("2 failed actions in the report"),
        "{}",
        error.message
    );

    // VACUUM: the host ran it and kept PostgreSQL's warning.
    let vacuum = r#"VACUUM (ANALYZE) "public"."events""#;
    let host = host_action(&r, vacuum);
    assert_eq!(host.state, ActionState::Executed, "{host:#?}");
    assert_eq!(host.notices.len(), 1, "{host:#?}");
    assert_eq!(host.notices[0].severity, "WARNING");
    assert_eq!(
        host.notices[0].message,
        r#"skipping "events" --- only table or database owner can vacuum it"#
    );
    // ANALYZE: the same for the table that only needed statistics.
    let analyze = r#"ANALYZE "public"."fresh""#;
    let host = host_action(&r, analyze);
    assert_eq!(host.state, ActionState::Executed, "{host:#?}");
    assert_eq!(
        host.notices.first().map(|n| n.message.as_str()),
        Some(r#"skipping "fresh" --- only table or database owner can analyze it"#),
        "{host:#?}"
    );
    // The plugin checked the counters: both are failed actions, with the
    // reason and the fix.
    for (statement, table, verb) in [
        (vacuum, "events", "VACUUM (ANALYZE)"),
        (analyze, "fresh", "ANALYZE"),
    ] {
        let claim = plugin_claim(&r, statement)
            .unwrap_or_else(|| panic!("no failed action for {statement}: {r:#?}"));
        assert_eq!(claim.state, ActionState::Failed);
        let title = format!("public.{table}: {verb} did not take effect");
        let detail = finding(&r, &title);
        assert!(detail.contains("only table or database owner"), "{detail}");
        assert!(detail.contains("did not move"), "{detail}");
        let f = r
            .report
            .as_ref()
            .unwrap()
            .findings
            .iter()
            .find(|f| f.title == title)
            .unwrap();
        let fix = f.suggested_action.as_deref().unwrap();
        assert!(
            fix.contains(&format!("ALTER TABLE \"public\".\"{table}\" OWNER TO")),
            "{fix}"
        );
        assert!(fix.contains(&format!("owned by `{}`", n.owner)), "{fix}");
        assert!(
            fix.contains("GRANT MAINTAIN") && fix.contains("pg_maintain"),
            "{fix}"
        );
    }
    assert_eq!(metric(&r, "actions_failed"), 2.0);
    assert_eq!(metric(&r, "tables_vacuumed"), 1.0);
    // Nothing moved on the skipped tables ...
    let after_events = counters(&n.db.url, "events").await;
    assert_eq!(after_events.1, before_events.1, "events was not vacuumed");
    assert!(after_events.0 >= 16000, "{after_events:?}");
    assert_eq!(counters(&n.db.url, "fresh").await.2, before_fresh.2);
    // ... and the owned table was vacuumed for real, recorded as executed,
    // with no failure claimed.
    let mine = r#"VACUUM (ANALYZE) "public"."mine""#;
    assert_eq!(host_action(&r, mine).state, ActionState::Executed);
    assert!(host_action(&r, mine).notices.is_empty());
    assert!(plugin_claim(&r, mine).is_none(), "{r:#?}");
    let (_, vacuums, analyzes) = counters(&n.db.url, "mine").await;
    assert!(vacuums >= 1 && analyzes >= 1, "{vacuums} {analyzes}");
    // The metric counts the run as failed.
    assert_eq!(runs_total(&agent, "vacuum", "failed"), 1);
    assert_eq!(runs_total(&agent, "vacuum", "succeeded"), 0);
}

/// The owner case: the same plugin as the owner of every table succeeds,
/// and the counters moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_as_the_owner_succeeds_and_the_counters_move() {
    let n = non_owner("truth_owner").await;
    // The superuser's URL: it may maintain every table.
    let w = World::new()
        .pg_target("pg", &n.db.url)
        .plugin("vacuum")
        .grant(
            "vacuum",
            "pg",
            &["read", "maintenance"],
            "max_runtime = \"60s\"",
        );
    let agent = w.agent().await;
    let r = invoke(&agent, "vacuum", "pg", &[], false).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:#?}");
    assert!(
        r.actions
            .iter()
            .all(|a| a.state == ActionState::Executed && a.notices.is_empty()),
        "{r:#?}"
    );
    assert_eq!(metric(&r, "actions_failed"), 0.0);
    for table in ["events", "mine"] {
        let (_, vacuums, _) = counters(&n.db.url, table).await;
        assert_eq!(vacuums, 1, "{table}");
    }
    assert_eq!(counters(&n.db.url, "fresh").await.2, 1);
    assert_eq!(runs_total(&agent, "vacuum", "succeeded"), 1);
    assert_eq!(runs_total(&agent, "vacuum", "failed"), 0);
}

fn probe_world(url: &str, classes: &[&str]) -> World {
    World::new()
        .pg_target("pg", url)
        .fixture("sqlprobe")
        .grant("sqlprobe", "pg", classes, "")
}

fn notice_findings(r: &RunRecord) -> Vec<(String, String)> {
    r.report
        .as_ref()
        .unwrap()
        .findings
        .iter()
        .filter_map(|f| {
            f.title
                .strip_prefix("notice ")
                .map(|s| (s.to_string(), f.detail.clone()))
        })
        .collect()
}

/// `query-with-notices` hands the plugin the server's notices in order,
/// bounded (32 per call, the rest counted), and `execute-with-notices` the
/// notice of a DDL statement, which the host's action record keeps too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_gets_the_notices_of_its_call_in_order_and_bounded() {
    let db = cluster().create_database("truth_notices").await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION noisy(n int) RETURNS int LANGUAGE plpgsql STABLE AS $$
         BEGIN
           FOR i IN 1..n LOOP
             IF i % 2 = 1 THEN RAISE NOTICE 'n%', i; ELSE RAISE WARNING 'w%', i; END IF;
           END LOOP;
           RETURN n;
         END $$;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let w = probe_world(&db.url, &["read", "ddl"]);
    let agent = w.agent().await;

    let r = invoke(
        &agent,
        "sqlprobe",
        "pg",
        &[("statement", "SELECT noisy(3)"), ("mode", "query-notices")],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    let expected: Vec<(String, String)> = [("NOTICE", "n1"), ("WARNING", "w2"), ("NOTICE", "n3")]
        .iter()
        .map(|(s, m)| (s.to_string(), m.to_string()))
        .collect();
    assert_eq!(notice_findings(&r), expected);

    let r = invoke(
        &agent,
        "sqlprobe",
        "pg",
        &[("statement", "SELECT noisy(40)"), ("mode", "query-notices")],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    let got = notice_findings(&r);
    assert_eq!(got.len(), 32);
    assert_eq!(got[0], ("NOTICE".to_string(), "n1".to_string()));
    assert_eq!(got[31], ("WARNING".to_string(), "w32".to_string()));
    assert_eq!(metric(&r, "notices"), 32.0);

    // A DDL statement's NOTICE, through execute-with-notices; the host's
    // action keeps it too.
    let r = invoke(
        &agent,
        "sqlprobe",
        "pg",
        &[
            ("statement", "DROP TABLE IF EXISTS nope"),
            ("mode", "execute-notices"),
        ],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    let said = r#"table "nope" does not exist, skipping"#;
    assert_eq!(
        notice_findings(&r),
        vec![("NOTICE".to_string(), said.to_string())]
    );
    let host = host_action(&r, "DROP TABLE IF EXISTS nope");
    assert_eq!(host.notices.len(), 1);
    assert_eq!(host.notices[0].message, said);
    // An old-style call (execute) gets the same record; nothing leaks from
    // one call's notices into the next call's.
    let r = invoke(
        &agent,
        "sqlprobe",
        "pg",
        &[
            ("statement", "CREATE TABLE IF NOT EXISTS t (id int)"),
            ("mode", "execute"),
        ],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    assert!(
        host_action(&r, "CREATE TABLE IF NOT EXISTS t (id int)")
            .notices
            .is_empty()
    );
    let r = invoke(
        &agent,
        "sqlprobe",
        "pg",
        &[
            ("statement", "CREATE TABLE IF NOT EXISTS t (id int)"),
            ("mode", "execute"),
        ],
        false,
    )
    .await;
    let host = host_action(&r, "CREATE TABLE IF NOT EXISTS t (id int)");
    assert_eq!(host.notices.len(), 1, "{host:#?}");
    assert_eq!(
        host.notices[0].message,
        r#"relation "t" already exists, skipping"#
    );
}

/// Part 2, several members of the class: a failed action the host recorded
/// (a REINDEX PostgreSQL refused, an ANALYZE of a missing table, both
/// tolerated by the plugin) and one the plugin reported itself make a
/// failed run with guest blame, counted by the metric; the same runs
/// without a failed action succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_with_a_failed_action_is_a_failed_run() {
    let n = non_owner("truth_rule").await;
    let w = probe_world(&n.url, &["read", "maintenance", "ddl"]);
    let agent = w.agent().await;
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[
                ("statement", "REINDEX TABLE events"),
                ("mode", "execute-tolerant"),
            ],
            "REINDEX TABLE events",
        ),
        (
            &[
                ("statement", "ANALYZE missing_table"),
                ("mode", "execute-tolerant"),
            ],
            "ANALYZE missing_table",
        ),
        (
            &[
                ("statement", "SELECT 1"),
                ("mode", "execute"),
                ("claim_failed", "CHECKPOINT"),
            ],
            "CHECKPOINT",
        ),
    ];
    for (i, (params, first)) in cases.iter().enumerate() {
        let r = invoke(&agent, "sqlprobe", "pg", params, false).await;
        assert_eq!(r.status, RunStatus::Failed, "{params:?}: {r:#?}");
        let e = r.error.as_ref().unwrap();
        assert_eq!((e.blame, e.kind.as_str()), (Blame::Guest, "action-failed"));
        assert!(
            e.message.starts_with("1 failed action in the report")
                && e.message.contains(&format!("`{first}` on target `pg`")),
            "{}",
            e.message
        );
        // The plugin's own report said ok: the host's rule decided.
        assert_eq!(
            r.report.as_ref().unwrap().status,
            warden::runs::ReportStatus::Ok
        );
        assert_eq!(runs_total(&agent, "sqlprobe", "failed"), i as u64 + 1);
    }
    let r = invoke(
        &agent,
        "sqlprobe",
        "pg",
        &[
            ("statement", "REINDEX TABLE events"),
            ("mode", "execute-tolerant"),
        ],
        false,
    )
    .await;
    assert!(
        error_of(&r).contains("must be owner of table events"),
        "{}",
        error_of(&r)
    );
    // Controls: the same calls without a failed action succeed.
    for params in [
        &[
            ("statement", "REINDEX TABLE mine"),
            ("mode", "execute-tolerant"),
        ][..],
        &[("statement", "SELECT 1"), ("mode", "execute")][..],
    ] {
        let r = invoke(&agent, "sqlprobe", "pg", params, false).await;
        assert_eq!(
            r.status,
            RunStatus::Succeeded,
            "{params:?}: {}",
            error_of(&r)
        );
    }
    assert_eq!(runs_total(&agent, "sqlprobe", "succeeded"), 2);
}

/// The `warden` binary, with its real logging subscriber installed: a
/// notice still reaches the record (and the subscriber does not swallow it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_binary_captures_notices_with_its_own_logging() {
    let n = non_owner("truth_bin").await;
    let w = probe_world(&n.url, &["read", "maintenance"]);
    let config = w.write();
    for log in ["warn", "error", "trace"] {
        let out = std::process::Command::new(warden_bin())
            .arg("--config")
            .arg(&config)
            .args([
                "invoke",
                "sqlprobe",
                "--target",
                "pg",
                "--param",
                "statement=ANALYZE events",
                "--param",
                "mode=execute-notices",
                "--output",
                "json",
            ])
            .env("WARDEN_LOG", log)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let record: RunRecord = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{log}: {e}: {stdout}\n{stderr}"));
        let host = host_action(&record, "ANALYZE events");
        assert_eq!(
            host.notices.first().map(|n| n.message.as_str()),
            Some(r#"skipping "events" --- only table or database owner can analyze it"#),
            "{log}: {record:#?}\n{stderr}"
        );
        assert_eq!(
            notice_findings(&record).first().map(|(s, _)| s.as_str()),
            Some("WARNING"),
            "{log}"
        );
    }
}
