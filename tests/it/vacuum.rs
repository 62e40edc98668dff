//! The vacuum plugin end to end: real PostgreSQL and SQLite.

use crate::world::{World, invoke};
use sqlx::Connection;
use std::time::Duration;
use warden::runs::{ActionState, Origin, RunStatus};
use warden_tests::pg::cluster;
use warden_tests::wait_for;

pub(crate) async fn stat(url: &str, table: &str) -> (i64, Option<String>, Option<String>) {
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_as(
        "SELECT n_dead_tup, last_vacuum::text, last_analyze::text FROM pg_stat_user_tables WHERE relname = $1",
    )
    .bind(table)
    .fetch_one(&mut c)
    .await
    .unwrap()
}

/// `churn` gets 80% dead tuples; `clean` is analyzed and untouched since.
pub(crate) async fn churned_database(hint: &str) -> warden_tests::pg::TestDb {
    let db = cluster().create_database(hint).await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE churn (id int PRIMARY KEY, payload text) WITH (autovacuum_enabled = false);
         CREATE TABLE clean (id int PRIMARY KEY, payload text) WITH (autovacuum_enabled = false);
         INSERT INTO churn SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g;
         INSERT INTO clean SELECT g, repeat('y', 100) FROM generate_series(1, 20000) g;
         DELETE FROM churn WHERE id % 5 <> 0;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    // A session's table statistics are flushed when it ends, asynchronously.
    conn.close().await.unwrap();
    wait_for("the churn to be counted", Duration::from_secs(15), || {
        let url = db.url.clone();
        async move {
            stat(&url, "churn").await.0 >= 16000 && mod_since_analyze(&url, "clean").await >= 20000
        }
    })
    .await;
    // Analyze `clean` only once its inserts are counted, so it is clean.
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("ANALYZE clean")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    wait_for("clean to be analyzed", Duration::from_secs(15), || {
        let url = db.url.clone();
        async move {
            stat(&url, "clean").await.2.is_some() && mod_since_analyze(&url, "clean").await == 0
        }
    })
    .await;
    db
}

fn world(url: &str) -> World {
    World::new().pg_target("pg", url).plugin("vacuum").grant(
        "vacuum",
        "pg",
        &["read", "maintenance"],
        "max_runtime = \"60s\"",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuums_the_table_with_dead_tuples_and_leaves_the_clean_one() {
    let db = churned_database("vacuum").await;
    let w = world(&db.url);
    let agent = w.agent().await;
    let r = invoke(&agent, "vacuum", "pg", &[], false).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:#?}");
    let executed: Vec<&str> = r
        .actions
        .iter()
        .filter(|a| a.origin == Origin::Host && a.state == ActionState::Executed)
        .map(|a| a.statement.as_str())
        .collect();
    assert_eq!(
        executed,
        vec![r#"VACUUM (ANALYZE) "public"."churn""#],
        "{r:#?}"
    );
    let report = r.report.unwrap();
    let text = serde_json::to_string(&report.findings).unwrap();
    assert!(
        text.contains("churn"),
        "findings explain the decision: {text}"
    );
    assert!(
        text.contains("80"),
        "findings carry the dead-tuple share: {text}"
    );
    wait_for("churn to be vacuumed", Duration::from_secs(15), || {
        let url = db.url.clone();
        async move {
            let (dead, last_vacuum, _) = stat(&url, "churn").await;
            dead == 0 && last_vacuum.is_some()
        }
    })
    .await;
    let (_, clean_vacuum, _) = stat(&db.url, "clean").await;
    assert_eq!(clean_vacuum, None, "the clean table was left alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_only_plans_and_last_vacuum_does_not_change() {
    let db = churned_database("vacuumdry").await;
    let w = world(&db.url);
    let agent = w.agent().await;
    let r = invoke(&agent, "vacuum", "pg", &[], true).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:#?}");
    assert!(r.dry_run);
    assert_eq!(r.actions.len(), 1, "{r:#?}");
    assert_eq!(r.actions[0].state, ActionState::Planned);
    assert_eq!(
        r.actions[0].statement,
        r#"VACUUM (ANALYZE) "public"."churn""#
    );
    // A later real ANALYZE of the same table proves stats are flowing, so
    // an unchanged last_vacuum is not just a stale view.
    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("ANALYZE churn")
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    wait_for("churn's ANALYZE to show", Duration::from_secs(15), || {
        let url = db.url.clone();
        async move { stat(&url, "churn").await.2.is_some() }
    })
    .await;
    let (dead, last_vacuum, _) = stat(&db.url, "churn").await;
    assert_eq!(last_vacuum, None);
    assert!(dead >= 16000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_freelist_is_vacuumed() {
    let w = World::new()
        .sqlite_target("lite", "lite.db")
        .plugin("vacuum")
        .grant("vacuum", "lite", &["read", "maintenance"], "");
    let path = w.path("lite.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO t SELECT i, hex(randomblob(100)) FROM n;
         DELETE FROM t WHERE id % 10 <> 0;",
    )
    .execute(&mut c)
    .await
    .unwrap();
    assert!(freelist(&mut c).await > 100);
    c.close().await.unwrap();
    let agent = w.agent().await;
    let r = invoke(&agent, "vacuum", "lite", &[], false).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:#?}");
    assert!(
        r.actions
            .iter()
            .any(|a| a.statement == "VACUUM" && a.state == ActionState::Executed),
        "{r:#?}"
    );
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    assert_eq!(freelist(&mut c).await, 0);
    // Nothing left to do: a second run only reports.
    let r = invoke(&agent, "vacuum", "lite", &[], false).await;
    assert!(!r.actions.iter().any(|a| a.statement == "VACUUM"), "{r:#?}");
}

async fn freelist(c: &mut sqlx::SqliteConnection) -> i64 {
    sqlx::query_scalar::<_, i64>("PRAGMA freelist_count")
        .fetch_one(c)
        .await
        .unwrap()
}

async fn mod_since_analyze(url: &str, table: &str) -> i64 {
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar("SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = $1")
        .bind(table)
        .fetch_one(&mut c)
        .await
        .unwrap()
}
