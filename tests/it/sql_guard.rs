//! The sql capability's walls against real PostgreSQL: classification
//! against the grant, multi-statement injection, forged targets, dry-run.

use crate::world::{World, error_of, invoke};
use sqlx::Connection;
use warden::runs::{ActionState, Origin, RunStatus};
use warden_tests::pg::cluster;

async fn setup(hint: &str) -> (warden_tests::pg::TestDb, sqlx::PgConnection) {
    let db = cluster().create_database(hint).await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g;
         ALTER TABLE items SET (autovacuum_enabled = false);",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    (db, conn)
}

async fn count(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_outside_a_read_grant_are_refused() {
    let (db, mut conn) = setup("guard").await;
    let w = World::new()
        .pg_target("pg", &db.url)
        .pg_target("other", &db.url)
        .fixture("sqlprobe")
        .grant("sqlprobe", "pg", &["read"], "");
    let agent = w.agent().await;

    let r = invoke(
        &agent,
        "sqlprobe",
        "pg",
        &[
            ("mode", "query"),
            ("statement", "SELECT count(*) FROM items"),
        ],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert_eq!(r.report.unwrap().summary, "rows 1");

    for (stmt, class) in [
        ("DROP TABLE items", "ddl"),
        ("DELETE FROM items", "write"),
        ("UPDATE items SET name = 'x'", "write"),
        ("VACUUM items", "maintenance"),
    ] {
        let r = invoke(&agent, "sqlprobe", "pg", &[("statement", stmt)], false).await;
        assert_eq!(r.status, RunStatus::Denied, "{stmt}: {r:?}");
        assert!(
            error_of(&r).contains(&format!("not granted `{class}` on target `pg`")),
            "{stmt}: {}",
            error_of(&r)
        );
        assert!(
            r.actions.is_empty(),
            "{stmt}: a refused statement is no action"
        );
    }
    // Signalling sessions: never through sql, whatever the grant; the
    // error points to the sessions capability, which looks the session up
    // first (`tests/it/sessions_capability.rs` has a session-control grant).
    for stmt in [
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
        "SELECT pg_cancel_backend(42)",
    ] {
        let r = invoke(&agent, "sqlprobe", "pg", &[("statement", stmt)], false).await;
        assert_eq!(r.status, RunStatus::Denied, "{stmt}: {r:?}");
        assert!(
            error_of(&r).contains("use `sessions.signal-backend`"),
            "{stmt}: {}",
            error_of(&r)
        );
        assert!(r.actions.is_empty(), "{stmt}");
    }
    // Statements no grant allows.
    for stmt in [
        "COPY items TO '/tmp/x'",
        "SET default_transaction_read_only = off",
        "SELECT pg_read_file('/etc/passwd')",
    ] {
        let r = invoke(&agent, "sqlprobe", "pg", &[("statement", stmt)], false).await;
        assert_eq!(r.status, RunStatus::Denied, "{stmt}: {r:?}");
    }
    assert_eq!(count(&mut conn).await, 100);

    // Multi-statement injection through a parameter the plugin splices in.
    let r = invoke(
        &agent,
        "sqlprobe",
        "pg",
        &[("mode", "query"), ("name", "x'; DROP TABLE items; --")],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Failed, "{r:?}");
    assert_eq!(r.error.as_ref().unwrap().kind, "invalid-input");
    assert!(
        error_of(&r).contains("statements in one call"),
        "{}",
        error_of(&r)
    );
    assert_eq!(count(&mut conn).await, 100);

    // A target the plugin has no grant for, named by the plugin itself.
    let r = invoke(
        &agent,
        "sqlprobe",
        "pg",
        &[
            ("mode", "query"),
            ("statement", "SELECT 1"),
            ("target", "other"),
        ],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Denied, "{r:?}");
    assert!(
        error_of(&r).contains("no grant for target `other`"),
        "{}",
        error_of(&r)
    );
    let r = invoke(
        &agent,
        "sqlprobe",
        "pg",
        &[
            ("mode", "query"),
            ("statement", "SELECT 1"),
            ("target", "nowhere"),
        ],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Denied, "{r:?}");
    assert!(
        error_of(&r).contains("no target named `nowhere`"),
        "{}",
        error_of(&r)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_plans_maintenance_and_leaves_the_table_alone() {
    let (db, mut conn) = setup("dryrun").await;
    let w = World::new()
        .pg_target("pg", &db.url)
        .fixture("sqlprobe")
        .grant("sqlprobe", "pg", &["read", "maintenance", "write"], "");
    let agent = w.agent().await;
    let last_vacuum = || async {
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT last_vacuum::text FROM pg_stat_user_tables WHERE relname = 'items'",
        )
        .fetch_one(&mut c)
        .await
        .unwrap()
    };
    assert_eq!(last_vacuum().await, None);

    let r = invoke(
        &agent,
        "sqlprobe",
        "pg",
        &[("statement", "VACUUM items")],
        true,
    )
    .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert_eq!(r.report.as_ref().unwrap().summary, "planned");
    assert_eq!(r.actions.len(), 1);
    assert_eq!(r.actions[0].state, ActionState::Planned);
    assert_eq!(r.actions[0].origin, Origin::Host);
    assert_eq!(r.actions[0].statement, "VACUUM items");
    assert_eq!(
        r.report.as_ref().unwrap().actions[0].state,
        ActionState::Planned
    );

    let r = invoke(
        &agent,
        "sqlprobe",
        "pg",
        &[("statement", "DELETE FROM items")],
        true,
    )
    .await;
    assert_eq!(r.report.as_ref().unwrap().summary, "planned");
    assert_eq!(count(&mut conn).await, 100);
    // Stats are flushed asynchronously: check after a real vacuum proves they move.
    let r = invoke(
        &agent,
        "sqlprobe",
        "pg",
        &[("statement", "VACUUM items")],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert_eq!(r.actions[0].state, ActionState::Executed);
    warden_tests::wait_for(
        "last_vacuum to be set",
        std::time::Duration::from_secs(10),
        || async { last_vacuum().await.is_some() },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_timeout_from_the_grant_applies() {
    let (db, _conn) = setup("locks").await;
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE;")
        .execute(&mut holder)
        .await
        .unwrap();
    let w = World::new()
        .pg_target("pg", &db.url)
        .fixture("sqlprobe")
        .grant(
            "sqlprobe",
            "pg",
            &["read", "maintenance"],
            "lock_timeout = \"200ms\"",
        );
    let agent = w.agent().await;
    let r = invoke(
        &agent,
        "sqlprobe",
        "pg",
        &[("statement", "ANALYZE items")],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Failed, "{r:?}");
    assert_eq!(r.error.as_ref().unwrap().kind, "timeout");
    assert!(
        error_of(&r).contains("lock timeout of 200ms"),
        "{}",
        error_of(&r)
    );
    assert_eq!(r.actions[0].state, ActionState::Failed);
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();
}
