//! The sql capability's walls against a hostile plugin on real PostgreSQL and
//! SQLite: a `read` grant cannot call what may change something (functions
//! allowed by the target's own catalog), cannot lift the read-only wall or
//! the grant's settings for later calls, cannot make the agent hold a huge
//! row, and a statement past its deadline is stopped on the server.

use std::time::{Duration, Instant};

use crate::world::{World, error_of, finding, invoke, metric};
use sqlx::Connection;
use warden::capability::CapabilityClass;
use warden::host::sql::testing;
use warden::runs::RunStatus;
use warden_tests::pg::cluster;
use warden_tests::wait_for;

async fn setup(hint: &str) -> (warden_tests::pg::TestDb, sqlx::PgConnection) {
    let db = cluster().create_database(hint).await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g;
         CREATE SEQUENCE seq;
         -- A user function that only reads but is not marked so (the default).
         CREATE FUNCTION item_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM items';
         CREATE FUNCTION item_count_stable() RETURNS bigint LANGUAGE sql STABLE
             AS 'SELECT count(*) FROM items';
         -- Volatile functions that change things the read-only wall does not cover.
         CREATE FUNCTION kick(p int) RETURNS boolean LANGUAGE sql
             AS 'SELECT pg_terminate_backend(p)';
         CREATE FUNCTION bump() RETURNS SETOF bigint LANGUAGE sql AS 'SELECT nextval(''seq'')';
         CREATE SCHEMA app;
         CREATE FUNCTION app.purge() RETURNS int LANGUAGE plpgsql
             AS 'BEGIN DELETE FROM items; RETURN 0; END';",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    (db, conn)
}

async fn read(agent: &warden::agent::Agent, statement: &str) -> warden::runs::RunRecord {
    invoke(
        agent,
        "sqlprobe",
        "pg",
        &[("mode", "query"), ("statement", statement)],
        false,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_grant_calls_only_functions_the_catalog_says_change_nothing() {
    let (db, mut conn) = setup("catalog").await;
    let w = World::new()
        .pg_target("pg", &db.url)
        .fixture("sqlprobe")
        .grant("sqlprobe", "pg", &["read"], "");
    let agent = w.agent().await;
    // A victim session the plugin would like to end.
    let mut victim = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let victim_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut victim)
        .await
        .unwrap();

    let refused = [
        // SQL run from text, whatever the route.
        format!("SELECT ts_rewrite('a'::tsquery, 'SELECT pg_terminate_backend({victim_pid})')"),
        "SELECT query_to_xml('SELECT pg_read_file(''/etc/hostname'')', true, true, '')".into(),
        "SELECT table_to_xml('items', true, true, '')".into(),
        "SELECT database_to_xml(true, true, '')".into(),
        // Volatile user functions, however they are reached.
        format!("SELECT kick({victim_pid})"),
        format!("SELECT public.kick({victim_pid})"),
        format!("SELECT 1 WHERE kick({victim_pid})"),
        format!("SELECT (SELECT kick({victim_pid}))"),
        format!("WITH k AS (SELECT kick({victim_pid}) AS k) SELECT * FROM k"),
        format!("SELECT x FROM (SELECT kick({victim_pid}) AS x) s"),
        "SELECT * FROM bump()".into(),
        "SELECT app.purge()".into(),
        "SELECT item_count()".into(),
        // Core functions that write or assign a transaction id.
        "SELECT setval('seq', 42)".into(),
        "SELECT nextval('seq')".into(),
        "SELECT txid_current()".into(),
        "SELECT pg_current_xact_id()".into(),
        // Unknown or out-of-path functions.
        "SELECT no_such_function()".into(),
        "SELECT purge()".into(),
    ];
    for statement in &refused {
        let r = read(&agent, statement).await;
        assert!(
            matches!(r.status, RunStatus::Denied | RunStatus::Failed),
            "{statement}: {r:?}"
        );
        let e = error_of(&r);
        assert!(
            e.contains("access denied")
                || e.contains("not granted")
                || e.contains("not allowed")
                || e.contains("volatile")
                || e.contains("not in the target's catalog"),
            "{statement}: {e}"
        );
    }
    // Nothing happened: the victim is alive, the rows and the sequence unchanged.
    let alive: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut victim)
        .await
        .expect("the victim session was not terminated");
    assert_eq!(alive, 1);
    let (rows, seq_called): (i64, bool) =
        sqlx::query_as("SELECT (SELECT count(*) FROM items), (SELECT is_called FROM seq)")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!((rows, seq_called), (100, false));

    // What a read needs still works: stable, immutable and reviewed volatile
    // functions, and a user function marked stable.
    for statement in [
        "SELECT count(*), now(), random(), pg_table_size('items') FROM items",
        "SELECT pg_catalog.pg_relation_size('items'::regclass), clock_timestamp()",
        "SELECT item_count_stable()",
        "SELECT pg_is_in_recovery(), pg_current_wal_lsn()::text",
        "SELECT format('%s', name) FROM items WHERE id = 1",
        // SQL constructs the parser shows as calls.
        "SELECT coalesce(NULL, 1), greatest(1, 2), least(1, 2), nullif(1, 2), \
         current_timestamp, current_user, session_user, localtime",
    ] {
        let r = read(&agent, statement).await;
        assert_eq!(r.status, RunStatus::Succeeded, "{statement}: {r:?}");
    }
    // The same volatile function is fine under `write`.
    let w = World::new()
        .pg_target("pg", &db.url)
        .fixture("sqlprobe")
        .grant("sqlprobe", "pg", &["write"], "");
    let agent = w.agent().await;
    let r = invoke(
        &agent,
        "sqlprobe",
        "pg",
        &[("statement", "SELECT setval('seq', 42)")],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert_eq!(finding(&r, "class"), "write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_cannot_change_the_session_for_later_calls() {
    // The classifier is bypassed here: these show the database's own walls
    // hold where the classifier would be wrong.
    let (db, mut conn) = setup("session").await;
    let mut s = testing::open_postgres(&db.url, Duration::from_secs(7))
        .await
        .unwrap();
    let show = |rows: warden::host::bindings::warden::plugin::sql::RowSet| {
        format!("{:?}", rows.rows[0][0])
    };
    let t = Duration::from_secs(10);
    for (change, setting, expected) in [
        (
            "SELECT set_config('statement_timeout', '0', false)",
            "statement_timeout",
            "7s",
        ),
        (
            "SELECT set_config('lock_timeout', '0', false)",
            "lock_timeout",
            "5s",
        ),
        (
            "SELECT set_config('standard_conforming_strings', 'off', false)",
            "standard_conforming_strings",
            "on",
        ),
        (
            "SELECT set_config('default_transaction_read_only', 'off', false)",
            "default_transaction_read_only",
            "off",
        ),
        (
            "SELECT set_config('search_path', 'app', false)",
            "search_path",
            "public",
        ),
    ] {
        // Through a read: rolled back with the read.
        testing::read(&mut s, change, &[], 1 << 20, t)
            .await
            .unwrap();
        let now = testing::read(&mut s, &format!("SHOW {setting}"), &[], 1 << 20, t)
            .await
            .unwrap();
        assert!(show(now).contains(expected), "{change} stayed after a read");
        // Through a write: reset before the next call.
        testing::execute(&mut s, change, CapabilityClass::Write)
            .await
            .unwrap();
        let now = testing::read(&mut s, &format!("SHOW {setting}"), &[], 1 << 20, t)
            .await
            .unwrap();
        assert!(
            show(now).contains(expected),
            "{change} stayed after a write"
        );
    }
    // Every read is a read-only transaction that cannot be made writable
    // from inside, whatever was done before.
    testing::execute(
        &mut s,
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        CapabilityClass::Write,
    )
    .await
    .unwrap();
    for write in [
        "SELECT setval('seq', 5)",
        "INSERT INTO items VALUES (1000, 'x') RETURNING id",
        "SELECT set_config('transaction_read_only', 'off', false), setval('seq', 6)",
        "DELETE FROM items RETURNING id",
    ] {
        let err = testing::read(&mut s, write, &[], 1 << 20, t)
            .await
            .unwrap_err();
        assert!(
            err.contains("read-only") || err.contains("read-write"),
            "{write}: {err}"
        );
    }
    let (rows, seq_called): (i64, bool) =
        sqlx::query_as("SELECT (SELECT count(*) FROM items), (SELECT is_called FROM seq)")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!((rows, seq_called), (100, false));
}

/// The agent's backends on `db` (by application name).
async fn agent_backends(conn: &mut sqlx::PgConnection, db: &str) -> Vec<(i32, String)> {
    sqlx::query_as(
        "SELECT pid, coalesce(query, '') FROM pg_stat_activity \
         WHERE datname = $1 AND application_name LIKE 'warden/%' AND pid <> pg_backend_pid()",
    )
    .bind(db)
    .fetch_all(conn)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_past_its_deadline_is_stopped_on_the_server() {
    let (db, mut conn) = setup("deadline").await;
    // The grant's statement_timeout is far away: the host's deadline (the
    // run's max_runtime) is what stops these.
    let w = World::new()
        .pg_target("pg", &db.url)
        .fixture("sqlprobe")
        .grant(
            "sqlprobe",
            "pg",
            &["read", "maintenance"],
            "statement_timeout = \"1h\"\nlock_timeout = \"1h\"\nmax_runtime = \"2s\"",
        );
    let agent = w.agent().await;
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE;")
        .execute(&mut holder)
        .await
        .unwrap();
    for (mode, statement) in [
        // Busy on the CPU.
        (
            "query",
            "SELECT count(*) FROM generate_series(1, 100000000000) a",
        ),
        // Waiting for a lock.
        ("query", "SELECT count(*) FROM items"),
        // A maintenance command waiting for a lock.
        ("execute", "ANALYZE items"),
        // Recursion without end.
        (
            "query",
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
        ),
    ] {
        let r = invoke(
            &agent,
            "sqlprobe",
            "pg",
            &[("mode", mode), ("statement", statement)],
            false,
        )
        .await;
        assert!(
            matches!(r.status, RunStatus::Failed | RunStatus::TimedOut),
            "{statement}: {r:?}"
        );
        let ended = Instant::now();
        // No backend outlives its run.
        let name = db.name.clone();
        let mut probe = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let left = agent_backends(&mut probe, &name).await;
        assert!(
            left.is_empty(),
            "{statement}: backends left {:?} after the run ended",
            left
        );
        assert!(ended.elapsed() < Duration::from_secs(5));
    }
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_row_never_reaches_the_agent() {
    let (db, mut conn) = setup("rows").await;
    // A stored value that compresses well: small on disk, 100 MB read back.
    sqlx::raw_sql(
        "CREATE TABLE docs (id int, body text, j jsonb);
         INSERT INTO docs VALUES (1, repeat('x', 100000000), NULL);
         INSERT INTO docs VALUES (2, 'small', jsonb_build_object('a', repeat('y', 20000000)));",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let w = World::new()
        .pg_target("pg", &db.url)
        .fixture("sqlprobe")
        .grant("sqlprobe", "pg", &["read"], "max_result_bytes = \"16MiB\"");
    let agent = w.agent().await;
    // Each is over 16 MiB in one row: nothing of it is returned.
    for statement in [
        "SELECT repeat('x', 150000000), repeat('y', 150000000)",
        "SELECT repeat('x', 20000000)",
        "SELECT 1 AS a, repeat('x', 10000000) AS b, repeat('y', 10000000) AS b",
        "SELECT body FROM docs WHERE id = 1",
        "SELECT j FROM docs WHERE id = 2",
        "SELECT array_fill('xx'::text, ARRAY[3000000])",
        "SELECT decode(repeat('00', 20000000), 'hex')",
        "VALUES (repeat('v', 20000000))",
        "SELECT repeat('x', 20000000); -- trailing comment",
    ] {
        let r = read(&agent, statement).await;
        assert_eq!(r.status, RunStatus::Succeeded, "{statement}: {r:?}");
        assert_eq!(metric(&r, "rows"), 0.0, "{statement}");
        assert_eq!(metric(&r, "truncated"), 1.0, "{statement}");
    }
    // Many rows: as many as fit, then truncated.
    let r = read(
        &agent,
        "SELECT repeat('x', 1000000) FROM generate_series(1, 200)",
    )
    .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    let rows = metric(&r, "rows");
    assert!((15.0..=18.0).contains(&rows), "{rows} rows of 1 MB");
    assert_eq!(metric(&r, "truncated"), 1.0);
    // Types the capability does not return are refused before they are sent.
    let r = read(&agent, "SELECT repeat('<a/>', 10000000)::xml AS doc").await;
    assert_eq!(r.status, RunStatus::Failed, "{r:?}");
    assert!(
        error_of(&r).contains("column `doc` has type xml"),
        "{}",
        error_of(&r)
    );
    // Ordinary reads are unchanged: order, parameters of the original, NULLs.
    let r = read(
        &agent,
        "SELECT id, name, NULL::text AS z FROM items ORDER BY id DESC LIMIT 3",
    )
    .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert_eq!(metric(&r, "rows"), 3.0);
    assert_eq!(metric(&r, "first_value"), 100.0);
    let r = read(&agent, "SELECT j->>'a' IS NOT NULL FROM docs WHERE id = 2").await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_statement_past_its_deadline_stops_burning_cpu() {
    let w = World::new()
        .sqlite_target("lite", "lite.db")
        .fixture("sqlprobe")
        .grant("sqlprobe", "lite", &["read"], "max_runtime = \"1s\"");
    let db = w.path("lite.db");
    warden_tests::create_sqlite(&db, "CREATE TABLE t (x int)").await;
    let agent = w.agent().await;
    let worker_cpu = || {
        // CPU time of each of this process's SQLite worker threads, by
        // thread id (threads of other tests come and go).
        let mut ticks = std::collections::BTreeMap::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if !comm.starts_with("sqlx-sqlite") {
                continue;
            }
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            let after = stat.rsplit_once(')').map(|(_, s)| s).unwrap_or("");
            let fields: Vec<&str> = after.split_whitespace().collect();
            let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
            let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
            ticks.insert(task.file_name(), utime + stime);
        }
        ticks
    };
    for statement in [
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
        "SELECT count(*) FROM (WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n FROM r) a, (SELECT 1) b",
    ] {
        let r = invoke(
            &agent,
            "sqlprobe",
            "lite",
            &[("mode", "query"), ("statement", statement)],
            false,
        )
        .await;
        assert!(
            matches!(r.status, RunStatus::Failed | RunStatus::TimedOut),
            "{statement}: {r:?}"
        );
        // Within a few seconds no SQLite worker of this process is burning a core.
        wait_for(
            "the SQLite workers to go idle",
            Duration::from_secs(10),
            || {
                let worker_cpu = &worker_cpu;
                async move {
                    let before = worker_cpu();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    // Less than a tenth of the half second (in clock ticks
                    // of 10 ms) on every worker that lived through it.
                    worker_cpu().iter().all(|(tid, now)| {
                        before
                            .get(tid)
                            .is_none_or(|was| now.saturating_sub(*was) <= 5)
                    })
                }
            },
        )
        .await;
    }
}
