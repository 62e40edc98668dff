//! `warden:plugin/sql`: one statement at a time against a SQLite or
//! PostgreSQL target, classified by the host and checked against the grant.
//!
//! The walls, in order:
//! 1. [`classify::classify`] parses the statement with a real SQL parser;
//!    several statements, transaction control, session settings and file or
//!    process access are refused outright.
//! 2. [`check`] refuses a class the plugin's grant for the target lacks,
//!    and `session-control` statements (`pg_terminate_backend`, ...)
//!    whatever the grant: sessions are signalled through
//!    `sessions.signal-backend` only, which looks them up first.
//! 3. Dry-run: anything above `read` is recorded as a planned action and not
//!    sent to the database.
//! 4. The session's walls ([`session`]): every call starts with `RESET
//!    ALL` (the grant's settings are the connection's reset values); a
//!    PostgreSQL read runs inside `BEGIN READ ONLY` ... `ROLLBACK` after its
//!    functions were checked against the target's catalog (only
//!    non-volatile ones or a reviewed list); SQLite reads run with
//!    `PRAGMA query_only` and `SQLITE_LIMIT_LENGTH` at `max_result_bytes`.
//!    A misclassified write still fails.
//! 5. Each run has its own connection (per target and credentials; reads
//!    use the target's read URL when it has one), closed when the run
//!    ends. A call past its deadline is stopped on the server (the backend
//!    terminated, the SQLite statement interrupted).
//!
//! Results are capped by rows and bytes (the grant's limits); credentials
//! stay in the host, and database errors are redacted before the guest or a
//! record sees them.

pub mod classify;
mod fetch;
pub mod notices;
pub mod session;
pub mod whatif;

use super::call::{Call, Go, Hold};
use super::permission::{self, Kinded, LocalCall, TargetCall, check_local, check_target};
use super::{HostState, RunEnv, at_most, denied, invalid};
use crate::capability::{CapabilityClass, TargetKind};
use crate::config::Target;
use crate::host::bindings::types::{CapabilityClass as WitClass, DbError, Error};
use crate::host::bindings::warden::plugin::sql::{
    Execution, Host, Notice as WitNotice, NoticedExecution, NoticedRows, Outcome, RowSet, Value,
};
use crate::host::wit::to_wit_class;
use crate::policy::Grant;
use crate::runs::{Action, ActionState};
use classify::{Classified, Dialect};
use fetch::Caps;
use futures_util::future::BoxFuture;
pub use notices::Captured;
pub use session::{Conn, Session};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Longest statement accepted.
pub const MAX_STATEMENT: usize = 1024 * 1024;
/// Most parameters per statement.
pub const MAX_PARAMS: usize = 10_000;
/// How much of a statement an action record keeps.
const ACTION_STATEMENT_CHARS: usize = 4096;

/// A run's connections, one per target, closed at the end of the run.
#[derive(Default)]
pub struct SqlSessions {
    sessions: HashMap<String, Session>,
}

impl SqlSessions {
    /// A call on `target` outlived `timeout`: its connection may be
    /// mid-statement, so it is dropped (a later call opens a fresh one) and
    /// its backend stopped on the server, waited for (at most
    /// [`session::TERMINATE_WAIT`]).
    pub(crate) async fn timed_out(&mut self, target: &str, timeout: Duration) -> Error {
        self.drop_target(target).await;
        Error::Timeout(format!(
            "statement did not finish within {} (stopped on the server)",
            humantime::format_duration(timeout)
        ))
    }

    /// Drops the target's sessions, stopping their backends on the server.
    async fn drop_target(&mut self, target: &str) {
        for key in [session_key(target, false), session_key(target, true)] {
            if let Some(s) = self.sessions.remove(&key) {
                s.abandon().await;
            }
        }
    }

    /// Closes every connection (at the end of a run).
    pub async fn close(&mut self) {
        for (_, s) in self.sessions.drain() {
            s.close().await;
        }
    }
}

/// The run's SQL connections: none at start, closed at the end.
impl super::capability::Capability for SqlSessions {
    fn finish<'a>(&'a mut self, _effects: &'a mut super::RunEffects) -> BoxFuture<'a, ()> {
        Box::pin(self.close())
    }

    fn abandon<'a>(&'a mut self, target: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(self.drop_target(target))
    }
}

fn dialect_of(kind: TargetKind) -> Option<Dialect> {
    match kind {
        TargetKind::Sqlite => Some(Dialect::Sqlite),
        TargetKind::Postgres => Some(Dialect::Postgres),
        TargetKind::Mongodb => None,
    }
}

/// The statement's class and operation, after the limits on its size and
/// parameters (the dialect is the target's): what the call's permission
/// and span depend on.
pub(crate) fn classify_statement(
    env: &RunEnv,
    target: &str,
    statement: &str,
    params: &[Value],
) -> Result<Classified, Error> {
    let n = statement.len();
    at_most(n, MAX_STATEMENT, || format!("statement is {n} bytes"))?;
    let n = params.len();
    at_most(n, MAX_PARAMS, || format!("{n} parameters"))?;
    // The dialect first (classifying needs it), then the decision on the class.
    let t = permission::lookup(&env.config, target)?;
    let Some(dialect) = dialect_of(t.kind) else {
        return Err(permission::wrong_kind(t, Kinded::Sql).into());
    };
    classify::classify(statement, dialect).map_err(|e| match e {
        classify::ClassifyError::Forbidden { .. } => denied(e.to_string()),
        other => invalid(other.to_string()),
    })
}

/// A parameter value as exact text, typed (`integer 42`, `text "a"`), for
/// an action's fingerprint.
fn param_text(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Boolean(b) => format!("boolean {b}"),
        Value::Integer(n) => format!("integer {n}"),
        Value::Float(f) => format!("float {f:?}"),
        Value::Text(s) => format!("text {s:?}"),
        Value::Bytes(b) => format!("bytes {}", hex::encode(b)),
        Value::Json(s) => format!("json {s:?}"),
        Value::Timestamp(s) => format!("timestamp {s:?}"),
        Value::Numeric(s) => format!("numeric {s}"),
    }
}

/// Most characters of one parameter value kept in a record.
const ACTION_PARAM_CHARS: usize = 256;

/// The host action a mutating `sql.execute` call stands for: the statement
/// and parameter values as recorded (redacted, trimmed) and the fingerprint
/// of the exact call.
fn execute_action(
    env: &RunEnv,
    target: &str,
    class: CapabilityClass,
    statement: &str,
    params: &[Value],
) -> Action {
    let exact: Vec<String> = params.iter().map(param_text).collect();
    let fingerprint = crate::runs::fingerprint(target, class, statement.trim(), &exact);
    let shown = exact
        .iter()
        .map(|p| {
            let mut p = env.redactor.redact(p);
            crate::text::truncate_utf8(&mut p, ACTION_PARAM_CHARS);
            p
        })
        .collect();
    Action::host(
        target,
        class,
        action_text(env, statement),
        shown,
        fingerprint,
        ActionState::Executed,
    )
}

fn action_text(env: &RunEnv, statement: &str) -> String {
    let mut s = env.redactor.redact(statement.trim());
    crate::text::truncate_utf8(&mut s, ACTION_STATEMENT_CHARS);
    s
}

/// Maps a database error to the WIT error, redacting it.
pub(crate) fn db_error(env: &RunEnv, grant: &Grant, e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            let message = env.redactor.redact(db.message());
            match code.as_str() {
                "57014" => Error::Timeout(format!(
                    "statement timeout of {} reached ({message})",
                    humantime::format_duration(grant.statement_timeout)
                )),
                "55P03" => Error::Timeout(format!(
                    "lock timeout of {} reached ({message})",
                    humantime::format_duration(grant.lock_timeout)
                )),
                _ => Error::TargetError(DbError { code, message }),
            }
        }
        other => Error::TargetError(DbError {
            code: String::new(),
            message: env.redactor.redact(&other.to_string()),
        }),
    }
}

/// The connection for `target` and a call of `class`, opened with the
/// grant's session settings on first use. Read-class calls use the
/// target's read credentials when it has them (`read_url_env`), on a
/// connection of their own.
pub(crate) async fn session<'s>(
    sessions: &'s mut SqlSessions,
    env: &RunEnv,
    t: &Target,
    grant: &Grant,
    class: CapabilityClass,
) -> Result<&'s mut Session, Error> {
    let key = session_key(
        &t.name,
        class == CapabilityClass::Read && t.read_url().is_some(),
    );
    Ok(match sessions.sessions.entry(key) {
        std::collections::hash_map::Entry::Occupied(open) => open.into_mut(),
        std::collections::hash_map::Entry::Vacant(slot) => {
            slot.insert(open_session(env, t, grant, class).await?)
        }
    })
}

/// Sessions are kept per target and credentials.
fn session_key(target: &str, read_credentials: bool) -> String {
    if read_credentials {
        format!("{target}\u{0}read")
    } else {
        target.to_string()
    }
}

async fn open_session(
    env: &RunEnv,
    t: &Target,
    grant: &Grant,
    class: CapabilityClass,
) -> Result<Session, Error> {
    let target = &t.name;
    let redact = |e: sqlx::Error| {
        Error::TargetError(DbError {
            code: String::new(),
            message: format!(
                "cannot connect to target `{target}`: {}",
                env.redactor.redact(&e.to_string())
            ),
        })
    };
    match t.kind {
        TargetKind::Postgres => Session::open_postgres(
            t.url_for(class),
            &format!("warden/{}", env.plugin),
            grant.statement_timeout,
            grant.lock_timeout,
        )
        .await
        .map_err(redact),
        TargetKind::Sqlite => {
            Session::open_sqlite(&t.url, grant.lock_timeout, grant.max_result_bytes)
                .await
                .map_err(redact)
        }
        TargetKind::Mongodb => Err(denied(format!(
            "target `{target}` is a mongodb database: the sql capability does not apply"
        ))),
    }
}

/// Why a call on a session failed.
#[derive(Debug)]
enum Failure {
    Db(sqlx::Error),
    /// The catalog check refused a function (access denied).
    Refused(String),
    /// The statement returns something the capability cannot hand back.
    Invalid(String),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Db(e)
    }
}

fn failure_error(env: &RunEnv, grant: &Grant, f: Failure) -> Error {
    match f {
        Failure::Db(e) => db_error(env, grant, e),
        Failure::Refused(m) => denied(m),
        Failure::Invalid(m) => invalid(m),
    }
}

/// Runs a read and returns its rows, within the caps: inside the session's
/// walls for reads ([`Session::begin`]), after the catalog check of the
/// functions it calls.
fn run_query<'a>(
    session: &'a mut Session,
    classified: &'a Classified,
    statement: &'a str,
    params: Vec<Value>,
    caps: &'a Caps,
    deadline: Instant,
) -> BoxFuture<'a, Result<RowSet, Failure>> {
    Box::pin(async move {
        let busy = session.begin(true, deadline).await?;
        let result = async {
            session
                .check_read_functions(&classified.functions)
                .await?
                .map_err(Failure::Refused)?;
            match &mut session.conn {
                Conn::Postgres(conn) => {
                    Ok(
                        fetch::pg_fetch(conn, statement, classified.query_len, params, caps)
                            .await?,
                    )
                }
                Conn::Sqlite(conn) => Ok(fetch::sqlite_fetch(conn, statement, params, caps).await?),
            }
        }
        .await;
        session.end(busy).await?;
        result
    })
}

/// Runs a statement for its effect; returns rows affected. A read (a
/// statement of class `read` sent through `execute`) gets the read walls.
fn run_execute<'a>(
    session: &'a mut Session,
    classified: &'a Classified,
    statement: &'a str,
    params: Vec<Value>,
    deadline: Instant,
) -> BoxFuture<'a, Result<u64, Failure>> {
    Box::pin(async move {
        let read = classified.class == CapabilityClass::Read;
        let busy = session.begin(read, deadline).await?;
        let result = async {
            if read {
                session
                    .check_read_functions(&classified.functions)
                    .await?
                    .map_err(Failure::Refused)?;
            }
            let n = match &mut session.conn {
                // Simple protocol when there are no parameters: VACUUM and
                // CREATE INDEX CONCURRENTLY refuse to run in a transaction block.
                // The classifier has checked there is exactly one statement.
                Conn::Postgres(conn) if params.is_empty() => {
                    sqlx::Executor::execute(&mut *conn, statement)
                        .await?
                        .rows_affected()
                }
                Conn::Postgres(conn) => sqlx::query_with(statement, fetch::pg_args(params)?)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected(),
                Conn::Sqlite(conn) => sqlx::query_with(statement, fetch::sqlite_args(params)?)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected(),
            };
            Ok(n)
        }
        .await;
        session.end(busy).await?;
        result
    })
}

impl HostState {
    /// `sql.query` without the wasm boundary (also used by tests).
    pub async fn sql_query(
        &mut self,
        target: &str,
        statement: &str,
        params: Vec<Value>,
        max_rows: u32,
    ) -> Result<RowSet, Error> {
        self.sql_query_noticed(target, statement, params, max_rows)
            .await
            .0
    }

    /// `sql.query-with-notices` without the wasm boundary: the result and
    /// the notices the server sent while the statement ran (redacted,
    /// bounded; also events of the call's span).
    pub async fn sql_query_noticed(
        &mut self,
        target: &str,
        statement: &str,
        params: Vec<Value>,
        max_rows: u32,
    ) -> (Result<RowSet, Error>, Captured) {
        let mut captured = Captured::default();
        let result = self
            .query_call(target, statement, params, max_rows, &mut captured)
            .await;
        (result, captured)
    }

    /// [`classify_statement`] in the run (denied in `describe`), its
    /// error redacted.
    fn classified(
        &self,
        target: &str,
        statement: &str,
        params: &[Value],
    ) -> Result<Classified, Error> {
        let env = self.run_env()?;
        classify_statement(&env, target, statement, params)
            .map_err(|e| super::call::redact(&env, e))
    }

    async fn query_call(
        &mut self,
        target: &str,
        statement: &str,
        params: Vec<Value>,
        max_rows: u32,
        captured: &mut Captured,
    ) -> Result<RowSet, Error> {
        let classified = &self.classified(target, statement, &params)?;
        let class = classified.class;
        self.call(
            statement_call("sql.query", target, classified),
            |host, cx| {
                Box::pin(async move {
                    // After the permission (a write is refused as one).
                    if class != CapabilityClass::Read {
                        return Err(invalid(format!(
                            "`{}` is a {class} statement: query runs reads only; use execute",
                            classified.operation
                        )));
                    }
                    let (env, grant) = (cx.env, cx.grant);
                    let caps = Caps {
                        rows: match max_rows {
                            0 => grant.max_rows as usize,
                            n => n.min(grant.max_rows) as usize,
                        },
                        bytes: usize::try_from(grant.max_result_bytes).unwrap_or(usize::MAX),
                    };
                    let session = session(&mut host.sql, env, cx.target, grant, class).await?;
                    let work =
                        run_query(session, classified, statement, params, &caps, cx.deadline);
                    let (outcome, got) =
                        notices::capture(tokio::time::timeout(cx.left(), work)).await;
                    *captured = record_notices(env, cx.span, got);
                    let set = match outcome {
                        Ok(Ok(set)) => set,
                        Ok(Err(e)) => return Err(failure_error(env, grant, e)),
                        Err(_) => return Err(host.sql.timed_out(target, cx.timeout).await),
                    };
                    cx.span.record("db.response.returned_rows", set.rows.len());
                    Ok(set)
                })
            },
        )
        .await
    }

    /// `sql.execute` without the wasm boundary (also used by tests).
    pub async fn sql_execute(
        &mut self,
        target: &str,
        statement: &str,
        params: Vec<Value>,
    ) -> Result<Execution, Error> {
        self.sql_execute_noticed(target, statement, params).await.0
    }

    /// `sql.execute-with-notices` without the wasm boundary: the result and
    /// the notices the server sent while the statement ran (redacted,
    /// bounded; also in the host's action record and events of the call's
    /// span).
    pub async fn sql_execute_noticed(
        &mut self,
        target: &str,
        statement: &str,
        params: Vec<Value>,
    ) -> (Result<Execution, Error>, Captured) {
        let mut captured = Captured::default();
        let result = self
            .execute_call(target, statement, params, &mut captured)
            .await;
        (result, captured)
    }

    async fn execute_call(
        &mut self,
        target: &str,
        statement: &str,
        params: Vec<Value>,
        captured: &mut Captured,
    ) -> Result<Execution, Error> {
        let classified = &self.classified(target, statement, &params)?;
        let class = classified.class;
        self.call(
            statement_call("sql.execute", target, classified),
            |host, cx| {
                Box::pin(async move {
                    let env = cx.env;
                    let execution = |outcome, rows_affected| Execution {
                        outcome,
                        class: to_wit_class(class),
                        rows_affected,
                    };
                    if class.is_mutating() {
                        let action = execute_action(env, target, class, statement, &params);
                        if host.mutation(env, action, Hold::ToPlan)? == Go::Planned {
                            return Ok(execution(Outcome::Planned, 0));
                        }
                    }
                    let session = session(&mut host.sql, env, cx.target, cx.grant, class).await?;
                    let work = run_execute(session, classified, statement, params, cx.deadline);
                    let (outcome, got) =
                        notices::capture(tokio::time::timeout(cx.left(), work)).await;
                    *captured = record_notices(env, cx.span, got);
                    if let Some(action) = host.pending_action() {
                        action.notices = captured.notices.clone();
                    }
                    match outcome {
                        Ok(Ok(n)) => Ok(execution(Outcome::Executed, n)),
                        Ok(Err(e)) => Err(failure_error(env, cx.grant, e)),
                        Err(_) => Err(host.sql.timed_out(target, cx.timeout).await),
                    }
                })
            },
        )
        .await
    }
}

/// A statement call on `target`, described by its classification.
fn statement_call<'x>(name: &'static str, target: &'x str, c: &'x Classified) -> Call<'x> {
    let ask = TargetCall::Sql {
        target,
        class: c.class,
    };
    Call::db(name, &c.operation, target, c.class, ask)
}

/// Redacts a call's notices and puts each on the call's span as an event
/// (target `warden::sql`, WARN for a `WARNING` or `ERROR`, INFO otherwise).
fn record_notices(env: &RunEnv, span: &tracing::Span, captured: Captured) -> Captured {
    let captured = captured.redacted(|m| env.redactor.redact(m));
    for n in &captured.notices {
        if matches!(n.severity.as_str(), "WARNING" | "ERROR") {
            tracing::event!(
                target: "warden::sql",
                parent: span,
                tracing::Level::WARN,
                db.notice.severity = %n.severity,
                db.notice.message = %n.message,
                "database notice"
            );
        } else {
            tracing::event!(
                target: "warden::sql",
                parent: span,
                tracing::Level::INFO,
                db.notice.severity = %n.severity,
                db.notice.message = %n.message,
                "database notice"
            );
        }
    }
    if captured.dropped > 0 {
        tracing::event!(
            target: "warden::sql",
            parent: span,
            tracing::Level::WARN,
            db.notices.dropped = captured.dropped,
            "database notices over the per-call bounds were dropped"
        );
    }
    captured
}

fn to_wit_notices(c: &Captured) -> Vec<WitNotice> {
    c.notices
        .iter()
        .map(|n| WitNotice {
            severity: n.severity.clone(),
            code: n.code.clone(),
            message: n.message.clone(),
        })
        .collect()
}

impl Host for HostState {
    async fn query(
        &mut self,
        target: String,
        statement: String,
        params: Vec<Value>,
        max_rows: u32,
    ) -> wasmtime::Result<Result<RowSet, Error>> {
        Ok(self.sql_query(&target, &statement, params, max_rows).await)
    }

    async fn execute(
        &mut self,
        target: String,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<Execution, Error>> {
        Ok(self.sql_execute(&target, &statement, params).await)
    }

    async fn execute_with_notices(
        &mut self,
        target: String,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<NoticedExecution, Error>> {
        let (result, captured) = self.sql_execute_noticed(&target, &statement, params).await;
        Ok(result.map(|execution| NoticedExecution {
            execution,
            notices: to_wit_notices(&captured),
            notices_dropped: captured.dropped,
        }))
    }

    async fn query_with_notices(
        &mut self,
        target: String,
        statement: String,
        params: Vec<Value>,
        max_rows: u32,
    ) -> wasmtime::Result<Result<NoticedRows, Error>> {
        let (result, captured) = self
            .sql_query_noticed(&target, &statement, params, max_rows)
            .await;
        Ok(result.map(|rows| NoticedRows {
            rows,
            notices: to_wit_notices(&captured),
            notices_dropped: captured.dropped,
        }))
    }

    async fn classify(&mut self, statement: String) -> wasmtime::Result<Result<WitClass, Error>> {
        if let Err(e) = check_local(self.env.as_deref(), LocalCall::SqlClassify) {
            return Ok(Err(e.into()));
        }
        // Classification is dialect-sensitive only for a few statements; the
        // PostgreSQL grammar is the stricter one.
        Ok(classify::classify(&statement, Dialect::Postgres)
            .map(|c| to_wit_class(c.class))
            .map_err(|e| invalid(e.to_string())))
    }

    async fn quote_ident(
        &mut self,
        target: String,
        ident: String,
    ) -> wasmtime::Result<Result<String, Error>> {
        let allowed = self.run_env().and_then(|env| {
            check_target(env.scope(), TargetCall::SqlQuoteIdent { target: &target })?;
            Ok(())
        });
        if let Err(e) = allowed {
            return Ok(Err(e));
        }
        Ok(classify::quote_ident(&ident).map_err(|e| invalid(e.to_string())))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::config::Secret;

    async fn sqlite(dir: &tempfile::TempDir, max_result_bytes: u64) -> Session {
        let path = dir.path().join("t.db");
        std::fs::File::create(&path).unwrap();
        let url = Secret::new(format!("sqlite:{}", path.display()));
        let mut s = Session::open_sqlite(&url, Duration::from_secs(1), max_result_bytes)
            .await
            .unwrap();
        exec(&mut s, "CREATE TABLE t (id INTEGER, name TEXT)", vec![])
            .await
            .unwrap();
        s
    }

    fn classified(statement: &str) -> Classified {
        classify::classify(statement, Dialect::Sqlite).unwrap()
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    async fn exec(s: &mut Session, statement: &str, params: Vec<Value>) -> Result<u64, Failure> {
        run_execute(s, &classified(statement), statement, params, soon()).await
    }

    async fn query(s: &mut Session, statement: &str, caps: &Caps) -> Result<RowSet, Failure> {
        run_query(s, &classified(statement), statement, vec![], caps, soon()).await
    }

    fn message(f: Failure) -> String {
        match f {
            Failure::Db(e) => e.to_string(),
            Failure::Refused(m) | Failure::Invalid(m) => m,
        }
    }

    #[tokio::test]
    async fn the_read_only_wall_stops_a_write_that_got_past_the_classifier() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sqlite(&dir, 1 << 20).await;
        // As if the classifier had called the INSERT a read.
        let mut read = classified("INSERT INTO t VALUES (1, 'a')");
        read.class = CapabilityClass::Read;
        let err = run_execute(
            &mut s,
            &read,
            "INSERT INTO t VALUES (1, 'a')",
            vec![],
            soon(),
        )
        .await
        .err()
        .unwrap();
        assert!(message(err).contains("readonly"));
        // The wall is lifted again for the next, classified, write.
        let n = exec(&mut s, "INSERT INTO t VALUES (1, 'a')", vec![])
            .await
            .map_err(message)
            .unwrap();
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn rows_are_capped_and_typed() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sqlite(&dir, 1 << 20).await;
        for i in 0..10 {
            exec(
                &mut s,
                "INSERT INTO t VALUES (?, ?)",
                vec![Value::Integer(i), Value::Text(format!("n{i}"))],
            )
            .await
            .map_err(message)
            .unwrap();
        }
        let caps = Caps {
            rows: 3,
            bytes: 1 << 20,
        };
        let set = query(
            &mut s,
            "SELECT id, name, NULL AS z FROM t ORDER BY id",
            &caps,
        )
        .await
        .map_err(message)
        .unwrap();
        assert_eq!(set.rows.len(), 3);
        assert!(set.truncated);
        assert_eq!(set.columns[1].name, "name");
        assert!(matches!(set.rows[2][0], Value::Integer(2)));
        assert!(matches!(&set.rows[2][1], Value::Text(t) if t == "n2"));
        assert!(matches!(set.rows[0][2], Value::Null));
        let tiny = Caps {
            rows: 100,
            bytes: 50,
        };
        let set = query(&mut s, "SELECT name FROM t", &tiny)
            .await
            .map_err(message)
            .unwrap();
        assert!(set.truncated && set.rows.len() < 10, "{}", set.rows.len());
    }

    #[tokio::test]
    async fn a_sqlite_read_cannot_make_a_value_larger_than_max_result_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sqlite(&dir, 64 * 1024).await;
        let caps = Caps {
            rows: 10,
            bytes: 64 * 1024,
        };
        for statement in [
            "SELECT zeroblob(300000000)",
            "SELECT zeroblob(1000000), zeroblob(1000000)",
            "SELECT randomblob(100000)",
            "SELECT hex(zeroblob(100000))",
            "WITH RECURSIVE r(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM r WHERE length(s) < 10000000) SELECT max(s) FROM r",
        ] {
            let err = query(&mut s, statement, &caps).await.err().map(message);
            let err = err.unwrap_or_else(|| panic!("{statement} was not stopped"));
            assert!(err.contains("too big"), "{statement}: {err}");
        }
        // A small value still reads, and a write afterwards may be large.
        query(&mut s, "SELECT zeroblob(1000)", &caps)
            .await
            .map_err(message)
            .unwrap();
        exec(
            &mut s,
            "INSERT INTO t VALUES (1, hex(zeroblob(100000)))",
            vec![],
        )
        .await
        .map_err(message)
        .unwrap();
    }

    #[tokio::test]
    async fn a_sqlite_statement_stops_at_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sqlite(&dir, 1 << 20).await;
        let statement = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r";
        let caps = Caps {
            rows: 10,
            bytes: 1 << 20,
        };
        let started = Instant::now();
        let deadline = started + Duration::from_millis(200);
        let err = run_query(
            &mut s,
            &classified(statement),
            statement,
            vec![],
            &caps,
            deadline,
        )
        .await
        .err()
        .map(message)
        .unwrap();
        assert!(err.contains("interrupt"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        // The connection goes on serving.
        query(&mut s, "SELECT count(*) FROM t", &caps)
            .await
            .map_err(message)
            .unwrap();
    }
}

/// The session walls without a plugin or the classifier, for the tests of
/// the walls themselves: they show that the database's own walls hold
/// where the classifier would be wrong. Not an API.
#[doc(hidden)]
pub mod testing {
    use super::*;

    fn shown(f: Failure) -> String {
        match f {
            Failure::Db(e) => e.to_string(),
            Failure::Refused(m) => format!("refused: {m}"),
            Failure::Invalid(m) => format!("invalid: {m}"),
        }
    }

    /// Opens a PostgreSQL session as a run would.
    pub async fn open_postgres(url: &str, statement_timeout: Duration) -> Result<Session, String> {
        Session::open_postgres(
            &crate::config::Secret::new(url),
            "warden/walls-test",
            statement_timeout,
            Duration::from_secs(5),
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// Runs `statement` as a read (whatever it is), after the catalog check
    /// of `functions`.
    pub async fn read(
        session: &mut Session,
        statement: &str,
        functions: &[&str],
        max_result_bytes: usize,
        timeout: Duration,
    ) -> Result<RowSet, String> {
        let classified = Classified {
            class: CapabilityClass::Read,
            operation: "SELECT".into(),
            functions: functions
                .iter()
                .map(|f| f.split('.').map(str::to_string).collect())
                .collect(),
            query_len: classify::classify(statement, Dialect::Postgres)
                .ok()
                .and_then(|c| c.query_len),
        };
        let caps = Caps {
            rows: 1000,
            bytes: max_result_bytes,
        };
        let deadline = Instant::now() + timeout;
        match tokio::time::timeout(
            timeout,
            run_query(session, &classified, statement, vec![], &caps, deadline),
        )
        .await
        {
            Ok(r) => r.map_err(shown),
            Err(_) => Err("timed out".into()),
        }
    }

    /// Runs `statement` for its effect as a statement of `class`.
    pub async fn execute(
        session: &mut Session,
        statement: &str,
        class: CapabilityClass,
    ) -> Result<u64, String> {
        let classified = Classified {
            class,
            operation: "TEST".into(),
            functions: Vec::new(),
            query_len: None,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        run_execute(session, &classified, statement, vec![], deadline)
            .await
            .map_err(shown)
    }
}
