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
//! 4. Reads run with the session read-only (PostgreSQL
//!    `default_transaction_read_only`, so each read is a read-only
//!    transaction; SQLite `PRAGMA query_only`): a misclassified write still
//!    fails.
//! 5. Each run has its own connection with `statement_timeout` and
//!    `lock_timeout` from the grant, closed when the run ends.
//!
//! Results are capped by rows and bytes (the grant's limits); credentials
//! stay in the host, and database errors are redacted before the guest or a
//! record sees them.

pub mod classify;
pub mod whatif;

use super::permission::{HostCall, check};
use super::{HostState, RunEnv, call_timeout, denied, invalid, record_error};
use crate::capability::{CapabilityClass, TargetKind};
use crate::policy::Grant;
use crate::runs::{Action, ActionState, Origin};
use crate::runtime::bindings::types::{CapabilityClass as WitClass, DbError, Error};
use crate::runtime::bindings::warden::plugin::sql::{
    Column, Execution, Host, Outcome, RowSet, Value,
};
use classify::{Classified, Dialect};
use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgRow, PgTypeInfo};
use sqlx::sqlite::{SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{Arguments, Column as _, ConnectOptions, Connection, Row, TypeInfo, ValueRef};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;
use tracing::Instrument as _;

/// Longest statement accepted.
pub const MAX_STATEMENT: usize = 1024 * 1024;
/// Most parameters per statement.
pub const MAX_PARAMS: usize = 10_000;
/// How much of a statement an action record keeps.
const ACTION_STATEMENT_CHARS: usize = 4096;

/// A run's open connection to one target.
pub enum Conn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// A connection and whether it is in read-only mode right now. The mode is
/// switched only when the class of statement changes, so a run of reads
/// costs no extra round trips.
pub struct Session {
    pub(crate) conn: Conn,
    read_only: bool,
}

impl Session {
    fn new(conn: Conn) -> Session {
        Session {
            conn,
            read_only: false,
        }
    }

    /// Wall 4: reads run with the session read-only (PostgreSQL
    /// `default_transaction_read_only`, SQLite `PRAGMA query_only`), so a
    /// write the classifier missed still fails. The guest cannot undo it:
    /// `SET` and writable PRAGMAs are refused by the classifier.
    pub(crate) async fn set_read_only(&mut self, on: bool) -> Result<(), sqlx::Error> {
        if self.read_only == on {
            return Ok(());
        }
        match &mut self.conn {
            Conn::Postgres(c) => {
                let stmt = if on {
                    "SET default_transaction_read_only = on"
                } else {
                    "SET default_transaction_read_only = off"
                };
                sqlx::Executor::execute(&mut *c, stmt).await?;
            }
            Conn::Sqlite(c) => {
                let stmt = if on {
                    "PRAGMA query_only = ON"
                } else {
                    "PRAGMA query_only = OFF"
                };
                sqlx::Executor::execute(&mut *c, stmt).await?;
            }
        }
        self.read_only = on;
        Ok(())
    }
}

/// A run's connections, one per target, closed at the end of the run.
#[derive(Default)]
pub struct SqlSessions {
    sessions: HashMap<String, Session>,
}

impl SqlSessions {
    /// A call on `target` outlived `timeout`: its connection may be mid-statement,
    /// so it is dropped (a later call opens a fresh one).
    pub(crate) fn timed_out(&mut self, target: &str, timeout: Duration) -> Error {
        self.sessions.remove(target);
        Error::Timeout(format!(
            "statement did not finish within {}",
            humantime::format_duration(timeout)
        ))
    }

    /// Closes every connection (at the end of a run).
    pub async fn close(&mut self) {
        for (_, s) in self.sessions.drain() {
            let _ = match s.conn {
                Conn::Postgres(c) => c.close().await,
                Conn::Sqlite(c) => c.close().await,
            };
        }
    }
}

pub(crate) fn to_wit_class(c: CapabilityClass) -> WitClass {
    match c {
        CapabilityClass::Read => WitClass::Read,
        CapabilityClass::Maintenance => WitClass::Maintenance,
        CapabilityClass::Ddl => WitClass::Ddl,
        CapabilityClass::Write => WitClass::Write,
        CapabilityClass::SessionControl => WitClass::SessionControl,
    }
}

fn dialect_of(kind: TargetKind) -> Option<Dialect> {
    match kind {
        TargetKind::Sqlite => Some(Dialect::Sqlite),
        TargetKind::Postgres => Some(Dialect::Postgres),
        TargetKind::Mongodb => None,
    }
}

/// What a statement call needs after the checks passed.
pub(crate) struct Checked<'e> {
    pub(crate) classified: Classified,
    pub(crate) grant: &'e Grant,
    pub(crate) kind: TargetKind,
}

/// Walls 1 and 2: size caps, classification and the grant.
pub(crate) fn check_statement<'e>(
    env: &'e RunEnv,
    target: &str,
    statement: &str,
    params: &[Value],
) -> Result<Checked<'e>, Error> {
    if statement.len() > MAX_STATEMENT {
        return Err(invalid(format!(
            "statement is {} bytes; the limit is {MAX_STATEMENT}",
            statement.len()
        )));
    }
    if params.len() > MAX_PARAMS {
        return Err(invalid(format!(
            "{} parameters; the limit is {MAX_PARAMS}",
            params.len()
        )));
    }
    let Some(t) = env.config.target(target) else {
        return Err(denied(format!("no target named `{target}`")));
    };
    let Some(dialect) = dialect_of(t.kind) else {
        return Err(denied(format!(
            "target `{target}` is a {} database: the sql capability does not apply",
            t.kind
        )));
    };
    let classified = classify::classify(statement, dialect).map_err(|e| match e {
        classify::ClassifyError::Forbidden { .. } => denied(e.to_string()),
        other => invalid(other.to_string()),
    })?;
    let grant = check(
        Some(env),
        HostCall::Sql {
            target,
            class: classified.class,
        },
    )
    .map_err(denied)?
    .ok_or_else(|| denied(format!("no grant for target `{target}`")))?;
    Ok(Checked {
        classified,
        grant,
        kind: t.kind,
    })
}

fn action_text(env: &RunEnv, statement: &str) -> String {
    let mut s = env.redactor.redact(statement.trim());
    super::log::truncate_utf8(&mut s, ACTION_STATEMENT_CHARS);
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

/// The connection for `target`, opened with the grant's session settings on first use.
pub(crate) async fn session<'s>(
    sessions: &'s mut SqlSessions,
    env: &RunEnv,
    target: &str,
    grant: &Grant,
) -> Result<&'s mut Session, Error> {
    if !sessions.sessions.contains_key(target) {
        let s = open_session(env, target, grant).await?;
        sessions.sessions.insert(target.to_string(), s);
    }
    sessions
        .sessions
        .get_mut(target)
        .ok_or_else(|| Error::Other("session vanished".into()))
}

async fn open_session(env: &RunEnv, target: &str, grant: &Grant) -> Result<Session, Error> {
    let Some(t) = env.config.target(target) else {
        return Err(denied(format!("no target named `{target}`")));
    };
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
        TargetKind::Postgres => {
            let opts = PgConnectOptions::from_str(t.url.expose())
                .map_err(redact)?
                .application_name(&format!("warden/{}", env.plugin))
                .options([
                    (
                        "statement_timeout",
                        format!("{}", grant.statement_timeout.as_millis()),
                    ),
                    (
                        "lock_timeout",
                        format!("{}", grant.lock_timeout.as_millis()),
                    ),
                ]);
            let conn = opts.connect().await.map_err(redact)?;
            Ok(Session::new(Conn::Postgres(conn)))
        }
        TargetKind::Sqlite => {
            let opts = SqliteConnectOptions::from_str(t.url.expose())
                .map_err(redact)?
                .create_if_missing(false)
                .busy_timeout(grant.lock_timeout);
            let conn = opts.connect().await.map_err(redact)?;
            Ok(Session::new(Conn::Sqlite(conn)))
        }
        TargetKind::Mongodb => Err(denied(format!(
            "target `{target}` is a mongodb database: the sql capability does not apply"
        ))),
    }
}

/// Row and byte caps for one query.
struct Caps {
    rows: usize,
    bytes: usize,
}

fn value_size(v: &Value) -> usize {
    16 + match v {
        Value::Null | Value::Boolean(_) | Value::Integer(_) | Value::Float(_) => 8,
        Value::Text(s) | Value::Json(s) | Value::Timestamp(s) | Value::Numeric(s) => s.len(),
        Value::Bytes(b) => b.len(),
    }
}

/// Runs a read and returns its rows, within the caps.
fn run_query<'a>(
    session: &'a mut Session,
    statement: &'a str,
    params: Vec<Value>,
    caps: &'a Caps,
    read_only: bool,
) -> BoxFuture<'a, Result<RowSet, sqlx::Error>> {
    Box::pin(async move {
        session.set_read_only(read_only).await?;
        match &mut session.conn {
            Conn::Postgres(conn) => pg_fetch(conn, statement, params, caps).await,
            Conn::Sqlite(conn) => sqlite_fetch(conn, statement, params, caps).await,
        }
    })
}

async fn pg_fetch(
    conn: &mut PgConnection,
    statement: &str,
    params: Vec<Value>,
    caps: &Caps,
) -> Result<RowSet, sqlx::Error> {
    let stream = sqlx::query_with(statement, pg_args(params)?).fetch(&mut *conn);
    collect_capped(stream, caps, pg_columns, pg_row).await
}

async fn sqlite_fetch(
    conn: &mut SqliteConnection,
    statement: &str,
    params: Vec<Value>,
    caps: &Caps,
) -> Result<RowSet, sqlx::Error> {
    let stream = sqlx::query_with(statement, sqlite_args(params)?).fetch(&mut *conn);
    collect_capped(stream, caps, sqlite_columns, sqlite_row).await
}

/// Reads rows until the stream ends or a cap is reached (then `truncated`).
async fn collect_capped<R, S>(
    mut stream: S,
    caps: &Caps,
    columns: fn(&R) -> Vec<Column>,
    decode: fn(&R) -> Result<Vec<Value>, sqlx::Error>,
) -> Result<RowSet, sqlx::Error>
where
    S: futures_util::Stream<Item = Result<R, sqlx::Error>> + Unpin,
{
    let mut set = RowSet {
        columns: Vec::new(),
        rows: Vec::new(),
        truncated: false,
    };
    let mut bytes = 0usize;
    while let Some(row) = stream.try_next().await? {
        if set.columns.is_empty() {
            set.columns = columns(&row);
        }
        if set.rows.len() >= caps.rows || bytes >= caps.bytes {
            set.truncated = true;
            break;
        }
        let values = decode(&row)?;
        bytes += values.iter().map(value_size).sum::<usize>();
        set.rows.push(values);
    }
    Ok(set)
}

fn sqlite_columns(row: &SqliteRow) -> Vec<Column> {
    row.columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_string(),
            type_name: c.type_info().name().to_string(),
        })
        .collect()
}

/// Runs a statement for its effect; returns rows affected.
fn run_execute<'a>(
    session: &'a mut Session,
    statement: &'a str,
    params: Vec<Value>,
    read_only: bool,
) -> BoxFuture<'a, Result<u64, sqlx::Error>> {
    Box::pin(async move {
        session.set_read_only(read_only).await?;
        let result = match &mut session.conn {
            // Simple protocol when there are no parameters: VACUUM and
            // CREATE INDEX CONCURRENTLY refuse to run in a transaction block.
            // The classifier has checked there is exactly one statement.
            Conn::Postgres(conn) if params.is_empty() => {
                sqlx::Executor::execute(&mut *conn, statement)
                    .await?
                    .rows_affected()
            }
            Conn::Postgres(conn) => sqlx::query_with(statement, pg_args(params)?)
                .execute(&mut *conn)
                .await?
                .rows_affected(),
            Conn::Sqlite(conn) => sqlx::query_with(statement, sqlite_args(params)?)
                .execute(&mut *conn)
                .await?
                .rows_affected(),
        };
        Ok(result)
    })
}

/// A NULL whose type PostgreSQL infers from the statement.
struct PgNull;

impl sqlx::Type<sqlx::Postgres> for PgNull {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(sqlx::postgres::types::Oid(0))
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for PgNull {
    fn encode_by_ref(
        &self,
        _buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        Ok(sqlx::encode::IsNull::Yes)
    }
}

fn bad_param(i: usize, what: &str) -> sqlx::Error {
    sqlx::Error::Encode(format!("parameter ${}: {what}", i + 1).into())
}

fn pg_args(params: Vec<Value>) -> Result<PgArguments, sqlx::Error> {
    let mut args = PgArguments::default();
    for (i, p) in params.into_iter().enumerate() {
        let r = match p {
            Value::Null => args.add(PgNull),
            Value::Boolean(b) => args.add(b),
            Value::Integer(n) => args.add(n),
            Value::Float(f) => args.add(f),
            Value::Text(s) => args.add(s),
            Value::Bytes(b) => args.add(b),
            Value::Json(s) => {
                let v: serde_json::Value = serde_json::from_str(&s)
                    .map_err(|e| bad_param(i, &format!("invalid JSON: {e}")))?;
                args.add(v)
            }
            Value::Timestamp(s) => {
                let t = chrono::DateTime::parse_from_rfc3339(&s)
                    .map_err(|e| bad_param(i, &format!("invalid RFC 3339 timestamp: {e}")))?;
                args.add(t.with_timezone(&chrono::Utc))
            }
            Value::Numeric(s) => {
                let d = rust_decimal::Decimal::from_str(&s)
                    .map_err(|e| bad_param(i, &format!("invalid numeric: {e}")))?;
                args.add(d)
            }
        };
        r.map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

fn sqlite_args(params: Vec<Value>) -> Result<SqliteArguments<'static>, sqlx::Error> {
    let mut args = SqliteArguments::default();
    for p in params {
        let r = match p {
            Value::Null => args.add(Option::<i64>::None),
            Value::Boolean(b) => args.add(b),
            Value::Integer(n) => args.add(n),
            Value::Float(f) => args.add(f),
            Value::Text(s) | Value::Json(s) | Value::Timestamp(s) | Value::Numeric(s) => {
                args.add(s)
            }
            Value::Bytes(b) => args.add(b),
        };
        r.map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

fn pg_columns(row: &PgRow) -> Vec<Column> {
    row.columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_string(),
            type_name: c.type_info().name().to_lowercase(),
        })
        .collect()
}

fn pg_row(row: &PgRow) -> Result<Vec<Value>, sqlx::Error> {
    let mut out = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        if row.try_get_raw(i)?.is_null() {
            out.push(Value::Null);
            continue;
        }
        let ty = col.type_info().name().to_string();
        let v = match ty.as_str() {
            "BOOL" => Value::Boolean(row.try_get(i)?),
            "INT2" => Value::Integer(i64::from(row.try_get::<i16, _>(i)?)),
            "INT4" => Value::Integer(i64::from(row.try_get::<i32, _>(i)?)),
            "INT8" => Value::Integer(row.try_get(i)?),
            "OID" => Value::Integer(i64::from(
                row.try_get::<sqlx::postgres::types::Oid, _>(i)?.0,
            )),
            "FLOAT4" => Value::Float(f64::from(row.try_get::<f32, _>(i)?)),
            "FLOAT8" => Value::Float(row.try_get(i)?),
            "NUMERIC" => Value::Numeric(row.try_get::<rust_decimal::Decimal, _>(i)?.to_string()),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "UNKNOWN" | "CITEXT" => {
                Value::Text(row.try_get(i)?)
            }
            "\"CHAR\"" | "CHAR" => {
                Value::Text(char::from(row.try_get::<i8, _>(i)?.to_ne_bytes()[0]).to_string())
            }
            "JSON" | "JSONB" => Value::Json(row.try_get::<serde_json::Value, _>(i)?.to_string()),
            "BYTEA" => Value::Bytes(row.try_get(i)?),
            "TIMESTAMPTZ" => Value::Timestamp(
                row.try_get::<chrono::DateTime<chrono::Utc>, _>(i)?
                    .to_rfc3339(),
            ),
            "TIMESTAMP" => Value::Timestamp(
                row.try_get::<chrono::NaiveDateTime, _>(i)?
                    .and_utc()
                    .to_rfc3339(),
            ),
            "DATE" => Value::Text(row.try_get::<chrono::NaiveDate, _>(i)?.to_string()),
            "TIME" => Value::Text(row.try_get::<chrono::NaiveTime, _>(i)?.to_string()),
            "TEXT[]" | "VARCHAR[]" | "NAME[]" => {
                Value::Json(serde_json::Value::from(row.try_get::<Vec<String>, _>(i)?).to_string())
            }
            "INT4[]" => {
                Value::Json(serde_json::Value::from(row.try_get::<Vec<i32>, _>(i)?).to_string())
            }
            "INT8[]" => {
                Value::Json(serde_json::Value::from(row.try_get::<Vec<i64>, _>(i)?).to_string())
            }
            other => {
                return Err(sqlx::Error::ColumnDecode {
                    index: col.name().to_string(),
                    source: format!(
                        "type {other} is not returned by the sql capability; cast the column (e.g. `{}::text`)",
                        col.name()
                    )
                    .into(),
                });
            }
        };
        out.push(v);
    }
    Ok(out)
}

fn sqlite_row(row: &SqliteRow) -> Result<Vec<Value>, sqlx::Error> {
    let mut out = Vec::with_capacity(row.len());
    for i in 0..row.len() {
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            out.push(Value::Null);
            continue;
        }
        let storage = raw.type_info().name().to_string();
        let v = match storage.as_str() {
            "INTEGER" | "BOOLEAN" => Value::Integer(row.try_get_unchecked(i)?),
            "REAL" => Value::Float(row.try_get_unchecked(i)?),
            "BLOB" => Value::Bytes(row.try_get_unchecked(i)?),
            _ => Value::Text(row.try_get_unchecked(i)?),
        };
        out.push(v);
    }
    Ok(out)
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
        let env = self.run_env()?;
        let checked = check_statement(&env, target, statement, &params)?;
        if checked.classified.class != CapabilityClass::Read {
            return Err(invalid(format!(
                "`{}` is a {} statement: query runs reads only; use execute",
                checked.classified.operation, checked.classified.class
            )));
        }
        let grant = checked.grant;
        let caps = Caps {
            rows: match max_rows {
                0 => grant.max_rows as usize,
                n => n.min(grant.max_rows) as usize,
            },
            bytes: usize::try_from(grant.max_result_bytes).unwrap_or(usize::MAX),
        };
        let span = call_span("sql.query", &checked, target);
        let timeout = call_timeout(&env, grant);
        let result = async {
            let session = session(&mut self.sql, &env, target, grant).await?;
            match tokio::time::timeout(timeout, run_query(session, statement, params, &caps, true))
                .await
            {
                Ok(Ok(set)) => Ok(set),
                Ok(Err(e)) => Err(db_error(&env, grant, e)),
                Err(_) => Err(self.sql.timed_out(target, timeout)),
            }
        }
        .instrument(span.clone())
        .await;
        match &result {
            Ok(set) => {
                span.record("db.response.returned_rows", set.rows.len());
            }
            Err(e) => record_error(&span, e),
        }
        result
    }

    /// `sql.execute` without the wasm boundary (also used by tests).
    pub async fn sql_execute(
        &mut self,
        target: &str,
        statement: &str,
        params: Vec<Value>,
    ) -> Result<Execution, Error> {
        let env = self.run_env()?;
        let checked = check_statement(&env, target, statement, &params)?;
        let class = checked.classified.class;
        let grant = checked.grant;
        let mutating = class.is_mutating();
        if mutating && env.dry_run() {
            self.actions.push(Action {
                target: target.to_string(),
                statement: action_text(&env, statement),
                class,
                state: ActionState::Planned,
                origin: Origin::Host,
                error: None,
            });
            return Ok(Execution {
                outcome: Outcome::Planned,
                class: to_wit_class(class),
                rows_affected: 0,
            });
        }
        let span = call_span("sql.execute", &checked, target);
        let timeout = call_timeout(&env, grant);
        let result = async {
            let session = session(&mut self.sql, &env, target, grant).await?;
            match tokio::time::timeout(timeout, run_execute(session, statement, params, !mutating))
                .await
            {
                Ok(Ok(n)) => Ok(n),
                Ok(Err(e)) => Err(db_error(&env, grant, e)),
                Err(_) => Err(self.sql.timed_out(target, timeout)),
            }
        }
        .instrument(span.clone())
        .await;
        if let Err(e) = &result {
            record_error(&span, e);
        }
        if mutating {
            self.actions.push(Action {
                target: target.to_string(),
                statement: action_text(&env, statement),
                class,
                state: if result.is_ok() {
                    ActionState::Executed
                } else {
                    ActionState::Failed
                },
                origin: Origin::Host,
                error: result.as_ref().err().map(error_text),
            });
        }
        result.map(|rows_affected| Execution {
            outcome: Outcome::Executed,
            class: to_wit_class(class),
            rows_affected,
        })
    }
}

/// The text of a WIT error, for records.
pub(crate) fn error_text(e: &Error) -> String {
    match e {
        Error::AccessDenied(m) => format!("access denied: {m}"),
        Error::Timeout(m) => format!("timeout: {m}"),
        Error::InvalidInput(m) => format!("invalid input: {m}"),
        Error::TargetError(d) if d.code.is_empty() => format!("target error: {}", d.message),
        Error::TargetError(d) => format!("target error {}: {}", d.code, d.message),
        Error::Other(m) => m.clone(),
    }
}

/// The span of one sql host call: semantic-convention attributes only,
/// never the statement's parameters or the connection.
fn call_span(call: &str, checked: &Checked<'_>, target: &str) -> tracing::Span {
    crate::telemetry::host_call_span(
        call,
        system_name(checked.kind),
        &checked.classified.operation,
        target,
        checked.classified.class.as_str(),
    )
}

pub(crate) fn system_name(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Postgres => "postgresql",
        TargetKind::Sqlite => "sqlite",
        TargetKind::Mongodb => "mongodb",
    }
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

    async fn classify(&mut self, statement: String) -> wasmtime::Result<Result<WitClass, Error>> {
        if let Err(e) = check(self.env.as_deref(), HostCall::SqlClassify) {
            return Ok(Err(denied(e)));
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
        if let Err(e) = check(
            self.env.as_deref(),
            HostCall::SqlQuoteIdent { target: &target },
        ) {
            return Ok(Err(denied(e)));
        }
        Ok(classify::quote_ident(&ident).map_err(|e| invalid(e.to_string())))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    async fn sqlite() -> Session {
        let conn = SqliteConnectOptions::from_str("sqlite::memory:")
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut s = Session::new(Conn::Sqlite(conn));
        run_execute(
            &mut s,
            "CREATE TABLE t (id INTEGER, name TEXT)",
            vec![],
            false,
        )
        .await
        .unwrap();
        s
    }

    #[tokio::test]
    async fn the_read_only_wall_stops_a_write_that_got_past_the_classifier() {
        let mut s = sqlite().await;
        let err = run_execute(&mut s, "INSERT INTO t VALUES (1, 'a')", vec![], true)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("readonly"), "{err}");
        // The wall is lifted again for the next, classified, write.
        let n = run_execute(&mut s, "INSERT INTO t VALUES (1, 'a')", vec![], false)
            .await
            .unwrap();
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn rows_are_capped_and_typed() {
        let mut s = sqlite().await;
        for i in 0..10 {
            run_execute(
                &mut s,
                "INSERT INTO t VALUES (?, ?)",
                vec![Value::Integer(i), Value::Text(format!("n{i}"))],
                false,
            )
            .await
            .unwrap();
        }
        let caps = Caps {
            rows: 3,
            bytes: 1 << 20,
        };
        let set = run_query(
            &mut s,
            "SELECT id, name, NULL AS z FROM t ORDER BY id",
            vec![],
            &caps,
            true,
        )
        .await
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
        let set = run_query(&mut s, "SELECT name FROM t", vec![], &tiny, true)
            .await
            .unwrap();
        assert!(set.truncated && set.rows.len() < 10, "{}", set.rows.len());
    }
}
