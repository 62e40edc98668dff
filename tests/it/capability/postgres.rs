//! `sql.*` and `sessions.*` without wasm, on the run's shared PostgreSQL
//! cluster: what the call pipeline promises on a real server (the
//! budget stops the statement on the server, a signal is recorded as
//! what happened).

use super::load;
use crate::world::World;
use sqlx::{Connection as _, PgConnection};
use std::time::Duration;
use warden::host::bindings::types::Error;
use warden::host::bindings::warden::plugin::sessions::Signal;
use warden::runs::ActionState;
use warden_tests::pg;

async fn world(hint: &str, extra: &str) -> (World, pg::TestDb) {
    let db = pg::cluster().create_database(hint).await;
    let w = World::new().pg_target("pg", &db.url).grant(
        "p",
        "pg",
        &["read", "write", "ddl", "session-control"],
        extra,
    );
    (w, db)
}

/// The backends running `query` on the server, once the server has
/// caught up with them (a backend reports its state a moment after it sent
/// its error: polled for up to 5s).
async fn running(conn: &mut PgConnection, query: &str) -> i64 {
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let n = active(conn, query).await;
        if n == 0 || std::time::Instant::now() > until {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn active(conn: &mut PgConnection, query: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE query = $1 AND state = 'active' AND pid <> pg_backend_pid()",
    )
    .bind(query)
    .fetch_one(conn)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_past_its_budget_is_stopped_on_the_server() {
    let (w, db) = world("cap pg timeout", "statement_timeout = \"1s\"").await;
    let l = load(&w).await;
    let mut run = l.run("p", "pg", false);
    let mut watch = PgConnection::connect(&db.url).await.unwrap();
    // A read, a write and a function call: each stopped at the grant's
    // timeout, and none left running on the server.
    for statement in [
        "SELECT count(*) FROM generate_series(1, 10000000000)",
        "CREATE TABLE slow AS SELECT count(*) AS n FROM generate_series(1, 10000000000)",
        "SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b",
    ] {
        let started = std::time::Instant::now();
        let result = if statement.starts_with("CREATE") {
            run.sql_execute("pg", statement, vec![]).await.map(drop)
        } else {
            run.sql_query("pg", statement, vec![], 0).await.map(drop)
        };
        assert!(
            matches!(&result, Err(Error::Timeout(_)) | Err(Error::TargetError(_))),
            "{statement}: {result:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{statement} ran {:?}",
            started.elapsed()
        );
        assert_eq!(running(&mut watch, statement).await, 0, "{statement}");
    }
    // The run goes on with a fresh session.
    run.sql_query("pg", "SELECT 1", vec![], 0).await.unwrap();
    let effects = run.finish().await;
    let create = effects
        .actions
        .iter()
        .find(|a| a.statement.starts_with("CREATE TABLE slow"))
        .unwrap();
    assert_eq!(create.state, ActionState::Failed, "{create:?}");
    assert!(create.error.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_is_recorded_as_what_happened() {
    // The test's sessions are the cluster's superuser's.
    let (w, db) = world("cap pg signal", "allow_privileged_sessions = true").await;
    let l = load(&w).await;
    // A client session of someone else, idle.
    let mut victim = PgConnection::connect(&db.url).await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut victim)
        .await
        .unwrap();

    // A dry run looks it up and plans the signal; the session lives.
    let mut dry = l.run("p", "pg", true);
    let planned = dry
        .sessions_signal_backend("pg", pid, Signal::Terminate)
        .await
        .unwrap();
    assert!(!planned.executed && !planned.signalled, "{planned:?}");
    let effects = dry.finish().await;
    assert_eq!(effects.actions.len(), 1);
    assert_eq!(effects.actions[0].state, ActionState::Planned);
    sqlx::query("SELECT 1").execute(&mut victim).await.unwrap();

    let mut run = l.run("p", "pg", false);
    // No such session, a negative pid, and the agent's own session: each
    // refused before anything is sent, with nothing recorded.
    for (bad, want) in [
        (0, "positive"),
        (-7, "positive"),
        (i32::MAX, "not in pg_stat_activity"),
    ] {
        let refused = run.sessions_signal_backend("pg", bad, Signal::Cancel).await;
        assert!(
            matches!(&refused, Err(Error::InvalidInput(m)) if m.contains(want)),
            "{bad}: {refused:?}"
        );
    }
    let done = run
        .sessions_signal_backend("pg", pid, Signal::Terminate)
        .await
        .unwrap();
    assert!(done.executed && done.signalled, "{done:?}");
    // Gone now: a second signal finds no session.
    let again = run
        .sessions_signal_backend("pg", pid, Signal::Terminate)
        .await;
    assert!(matches!(&again, Err(Error::InvalidInput(_))), "{again:?}");
    let effects = run.finish().await;
    let states: Vec<ActionState> = effects.actions.iter().map(|a| a.state).collect();
    assert_eq!(states, [ActionState::Executed], "{:?}", effects.actions);
    assert!(
        effects.actions[0]
            .statement
            .starts_with(&format!("SELECT pg_terminate_backend({pid})")),
        "{:?}",
        effects.actions[0]
    );
    assert!(sqlx::query("SELECT 1").execute(&mut victim).await.is_err());
}
