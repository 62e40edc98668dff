//! The sessions capability (`warden:plugin/sessions`) through a real plugin
//! (`sessionprobe`) against the PostgreSQL test cluster and the
//! MongoDB-wire test server: a session idle in transaction is terminated, a
//! long statement cancelled, dry-run plans and leaves the session alive;
//! without `session-control` it is denied; the agent's own sessions,
//! superuser and background sessions (unless `allow_privileged_sessions`)
//! are refused; a missing pid or opid is a clear error; `sql.execute` and
//! `mongo.run-command` refuse to signal sessions themselves.
//!
//! The MongoDB-wire test server's `currentOp` lists only the requesting
//! connection's own operation, so killing another client's operation is
//! not exercised here (the rules for MongoDB operations are unit-tested in
//! `agent/src/host/sessions.rs`); the agent's own operation is, through it.

use crate::world::{World, error_of, finding, invoke, metric};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, PgConnection};
use std::time::Duration;
use warden::agent::Agent;
use warden::capability::CapabilityClass;
use warden::runs::{ActionState, Origin, RunRecord, RunStatus};
use warden_tests::pg::{TestDb, cluster};

/// A database, a non-superuser role for the victim sessions, and an agent
/// with `sessionprobe` on three targets for it: `pg` (read and
/// session-control), `pgpriv` (the same with `allow_privileged_sessions`)
/// and `pgread` (read only).
struct Pg {
    db: TestDb,
    role: String,
    agent: Agent,
    _world: World,
}

async fn pg(hint: &str) -> Pg {
    let db = cluster().create_database(hint).await;
    let role = format!("victim_{}", db.name);
    let mut admin = PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(&format!(
        "CREATE ROLE \"{role}\" LOGIN NOSUPERUSER; GRANT CONNECT ON DATABASE \"{}\" TO \"{role}\";",
        db.name
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    let world = World::new()
        .fixture("sessionprobe")
        .pg_target("pg", &db.url)
        .pg_target("pgpriv", &db.url)
        .pg_target("pgread", &db.url)
        .grant("sessionprobe", "pg", &["read", "session-control"], "")
        .grant(
            "sessionprobe",
            "pgpriv",
            &["read", "session-control"],
            "allow_privileged_sessions = true",
        )
        .grant("sessionprobe", "pgread", &["read"], "");
    let agent = world.agent().await;
    Pg {
        db,
        role,
        agent,
        _world: world,
    }
}

impl Pg {
    /// A session of `user` (the victim role unless given) named `app`,
    /// over the cluster's trusted socket, and its pid.
    async fn session(&self, app: &str, user: Option<&str>) -> (PgConnection, i32) {
        let mut conn = PgConnectOptions::new()
            .socket(cluster().socket_dir())
            .port(cluster().port())
            .username(user.unwrap_or(&self.role))
            .database(&self.db.name)
            .application_name(app)
            .connect()
            .await
            .unwrap();
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        (conn, pid)
    }

    /// A victim session held idle in transaction.
    async fn idle_in_transaction(&self, app: &str) -> (PgConnection, i32) {
        let (mut conn, pid) = self.session(app, None).await;
        sqlx::raw_sql("BEGIN; SELECT 1;")
            .execute(&mut conn)
            .await
            .unwrap();
        (conn, pid)
    }

    async fn alive(&self, pid: i32) -> bool {
        let mut c = PgConnection::connect(&self.db.url).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = $1")
            .bind(pid)
            .fetch_one(&mut c)
            .await
            .unwrap();
        n == 1
    }

    async fn signal(&self, target: &str, mode: &str, pid: i32, dry_run: bool) -> RunRecord {
        invoke(
            &self.agent,
            "sessionprobe",
            target,
            &[("mode", mode), ("pid", &pid.to_string())],
            dry_run,
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_in_transaction_session_is_terminated() {
    let pg = pg("sess_terminate").await;
    let (mut victim, pid) = pg.idle_in_transaction("victim-app").await;

    let rec = pg.signal("pg", "terminate", pid, false).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{}", error_of(&rec));
    assert_eq!(rec.report.as_ref().unwrap().summary, "executed");
    assert_eq!(metric(&rec, "executed"), 1.0);
    assert_eq!(metric(&rec, "signalled"), 1.0);
    let description = finding(&rec, "description");
    for part in [
        format!("backend {pid}"),
        format!("user \"{}\"", pg.role),
        "application \"victim-app\"".to_string(),
        "client local socket".to_string(),
        "idle in transaction for".to_string(),
        "query \"BEGIN; SELECT 1;\"".to_string(),
    ] {
        assert!(description.contains(&part), "{part} in {description}");
    }
    assert!(!description.contains('\n'), "{description}");
    assert_eq!(rec.actions.len(), 1, "{:?}", rec.actions);
    let action = &rec.actions[0];
    assert_eq!(action.state, ActionState::Executed);
    assert_eq!(action.origin, Origin::Host);
    assert_eq!(action.class, CapabilityClass::SessionControl);
    assert!(
        action.statement.starts_with(&format!(
            "SELECT pg_terminate_backend({pid}) -- backend {pid}"
        )),
        "{}",
        action.statement
    );

    warden_tests::wait_for(
        "the terminated backend to leave pg_stat_activity",
        Duration::from_secs(10),
        || async { !pg.alive(pid).await },
    )
    .await;
    assert!(
        sqlx::query("SELECT 1").execute(&mut victim).await.is_err(),
        "the terminated session still answers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_statement_is_cancelled_and_the_session_stays() {
    let pg = pg("sess_cancel").await;
    let (mut victim, pid) = pg.session("sleeper", None).await;
    let sleeping = tokio::spawn(async move {
        let result = sqlx::query("SELECT pg_sleep(30)")
            .execute(&mut victim)
            .await
            .map(|_| ());
        (victim, result)
    });
    warden_tests::wait_for(
        "pg_sleep to be running",
        Duration::from_secs(10),
        || async {
            let mut c = PgConnection::connect(&pg.db.url).await.unwrap();
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE pid = $1 AND state = 'active' AND query LIKE '%pg_sleep%'",
            )
            .bind(pid)
            .fetch_one(&mut c)
            .await
            .unwrap()
                == 1
        },
    )
    .await;

    let rec = pg.signal("pg", "cancel", pid, false).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{}", error_of(&rec));
    assert_eq!(metric(&rec, "signalled"), 1.0);
    let description = finding(&rec, "description");
    assert!(
        description.contains("active for") && description.contains("pg_sleep(30)"),
        "{description}"
    );
    assert!(
        rec.actions[0]
            .statement
            .starts_with(&format!("SELECT pg_cancel_backend({pid})")),
        "{}",
        rec.actions[0].statement
    );
    let (mut victim, result) = tokio::time::timeout(Duration::from_secs(10), sleeping)
        .await
        .expect("the cancelled statement returns at once")
        .unwrap();
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("canceling statement due to user request"),
        "{err}"
    );
    // Cancel stops the statement, not the session.
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut victim)
        .await
        .unwrap();
    assert_eq!(one, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_plans_and_leaves_the_session_alive() {
    let pg = pg("sess_dry").await;
    let (mut victim, pid) = pg.idle_in_transaction("victim-app").await;

    let rec = pg.signal("pg", "terminate", pid, true).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{}", error_of(&rec));
    assert_eq!(rec.report.as_ref().unwrap().summary, "planned");
    assert_eq!(metric(&rec, "executed"), 0.0);
    assert_eq!(metric(&rec, "signalled"), 0.0);
    assert!(finding(&rec, "description").contains("idle in transaction"));
    assert_eq!(rec.actions.len(), 1);
    assert_eq!(rec.actions[0].state, ActionState::Planned);
    assert_eq!(rec.actions[0].class, CapabilityClass::SessionControl);
    assert!(
        rec.actions[0]
            .statement
            .starts_with(&format!("SELECT pg_terminate_backend({pid})")),
        "{}",
        rec.actions[0].statement
    );
    // Still there, still in its transaction.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(pg.alive(pid).await);
    sqlx::raw_sql("SELECT 2; COMMIT;")
        .execute(&mut victim)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_say_why_and_signal_nothing() {
    let pg = pg("sess_refuse").await;
    let (_victim, pid) = pg.idle_in_transaction("victim-app").await;

    // No session-control in the grant.
    let rec = pg.signal("pgread", "terminate", pid, false).await;
    assert_eq!(rec.status, RunStatus::Denied, "{rec:?}");
    let e = error_of(&rec);
    assert!(
        e.contains("does not list `session-control` in `capabilities`"),
        "{e}"
    );
    assert!(rec.actions.is_empty());

    // The agent's own sessions, whatever the grant.
    let (_other, warden_pid) = pg.idle_in_transaction("warden/other").await;
    for target in ["pg", "pgpriv"] {
        let rec = pg.signal(target, "terminate", warden_pid, false).await;
        assert_eq!(rec.status, RunStatus::Denied, "{target}: {rec:?}");
        let e = error_of(&rec);
        assert!(
            e.contains("the agent's own sessions") && e.contains("\"warden/other\""),
            "{e}"
        );
        assert!(rec.actions.is_empty());
    }
    assert!(pg.alive(warden_pid).await);

    // A superuser session: refused unless the grant allows privileged ones.
    let (mut su, su_pid) = pg.session("admin-console", Some("postgres")).await;
    let rec = pg.signal("pg", "terminate", su_pid, false).await;
    assert_eq!(rec.status, RunStatus::Denied, "{rec:?}");
    let e = error_of(&rec);
    assert!(
        e.contains("superuser session (user \"postgres\")")
            && e.contains("allow_privileged_sessions = true"),
        "{e}"
    );
    assert!(rec.actions.is_empty());
    sqlx::query("SELECT 1").execute(&mut su).await.unwrap();
    let rec = pg.signal("pgpriv", "terminate", su_pid, false).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{}", error_of(&rec));
    assert!(finding(&rec, "description").contains("(superuser)"));
    warden_tests::wait_for(
        "the superuser session to end",
        Duration::from_secs(10),
        || async { !pg.alive(su_pid).await },
    )
    .await;

    // A background process: not a client session.
    let mut c = PgConnection::connect(&pg.db.url).await.unwrap();
    let checkpointer: i32 =
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
            .fetch_one(&mut c)
            .await
            .unwrap();
    let rec = pg.signal("pg", "cancel", checkpointer, false).await;
    assert_eq!(rec.status, RunStatus::Denied, "{rec:?}");
    assert!(
        error_of(&rec).contains("is a checkpointer backend, not a client session"),
        "{}",
        error_of(&rec)
    );

    // No such session.
    let rec = pg.signal("pg", "terminate", 999_999, false).await;
    assert_eq!(rec.status, RunStatus::Failed, "{rec:?}");
    assert_eq!(rec.error.as_ref().unwrap().kind, "invalid-input");
    assert!(
        error_of(&rec).contains("no session with pid 999999 on target `pg`"),
        "{}",
        error_of(&rec)
    );
    assert!(rec.actions.is_empty());

    // The generic path: sql.execute does not signal sessions, even with a
    // session-control grant; it points to sessions.signal-backend.
    let rec = pg.signal("pg", "sql-terminate", pid, false).await;
    assert_eq!(rec.status, RunStatus::Denied, "{rec:?}");
    assert!(
        error_of(&rec).contains("use `sessions.signal-backend`"),
        "{}",
        error_of(&rec)
    );
    assert!(rec.actions.is_empty());
    assert!(pg.alive(pid).await, "the victim survived every refusal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_operations_are_looked_up_and_the_agents_own_refused() {
    let db = warden_tests::mongo::server()
        .create_database("sess_mongo")
        .await;
    let w = World::new()
        .fixture("sessionprobe")
        .mongo_target("m", &db.url)
        .mongo_target("mread", &db.url)
        .grant("sessionprobe", "m", &["read", "session-control"], "")
        .grant("sessionprobe", "mread", &["read"], "");
    let agent = w.agent().await;
    let probe = |target: &'static str, params: Vec<(&'static str, String)>, dry: bool| {
        let agent = &agent;
        async move {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            invoke(agent, "sessionprobe", target, &params, dry).await
        }
    };

    // The agent's own operation (the host's connection, as currentOp shows
    // it to the plugin): refused, in dry-run too.
    // (The test server lists only the asking connection's operations; when
    // the host's lookup runs on another pooled connection the operation is
    // not found instead. Either way nothing is killed.)
    for dry in [false, true] {
        let rec = probe("m", vec![("mode", "own-op".into())], dry).await;
        let refused = rec.status == RunStatus::Denied
            && error_of(&rec).contains("the agent's own operations")
            && error_of(&rec).contains("warden/sessionprobe");
        let gone = rec.status == RunStatus::Failed && error_of(&rec).contains("not in currentOp");
        assert!(refused || gone, "{rec:?}");
        assert!(rec.actions.is_empty());
    }

    // No such operation.
    let rec = probe(
        "m",
        vec![("mode", "kill-op".into()), ("opid", "987654".into())],
        false,
    )
    .await;
    assert_eq!(rec.status, RunStatus::Failed, "{rec:?}");
    assert_eq!(rec.error.as_ref().unwrap().kind, "invalid-input");
    assert!(
        error_of(&rec).contains("no session with operation 987654 on target `m`"),
        "{}",
        error_of(&rec)
    );

    // No session-control in the grant.
    let rec = probe(
        "mread",
        vec![("mode", "kill-op".into()), ("opid", "1".into())],
        false,
    )
    .await;
    assert_eq!(rec.status, RunStatus::Denied, "{rec:?}");
    assert!(
        error_of(&rec).contains("does not list `session-control` in `capabilities`"),
        "{}",
        error_of(&rec)
    );

    // The generic path: killOp through mongo.run-command is refused.
    let rec = probe(
        "m",
        vec![("mode", "mongo-kill".into()), ("opid", "1".into())],
        false,
    )
    .await;
    assert_eq!(rec.status, RunStatus::Denied, "{rec:?}");
    assert!(
        error_of(&rec).contains("use `sessions.kill-op`"),
        "{}",
        error_of(&rec)
    );
    assert!(rec.actions.is_empty());
}
