//! `warden:plugin/sessions`: cancelling and terminating PostgreSQL backends
//! (`signal-backend`) and killing MongoDB operations (`kill-op`), after
//! looking the session up.
//!
//! The walls, in order:
//! 1. Permission ([`check`] with [`HostCall::SessionSignal`] /
//!    [`HostCall::KillOp`]): the target is PostgreSQL (MongoDB) and the
//!    plugin's grant for it lists `session-control` in `capabilities`.
//! 2. The session is looked up on the run's own connection (the one `sql`
//!    and `mongo` use, `warden/<plugin>`): `pg_stat_activity` joined with
//!    `pg_roles` for that pid; `currentOp` with `$all` for that opid. None:
//!    `invalid-input` ("no session ...").
//! 3. Refused whatever the grant (`access-denied`): the agent's own
//!    sessions. PostgreSQL: an `application_name` starting with `warden/`
//!    (the host's `sql` connections and dumps name themselves so) and the
//!    very backend the host uses for the call (`pg_backend_pid()`).
//!    MongoDB: an `appName` or `clientMetadata.application.name` starting
//!    with `warden/`.
//! 4. Refused unless the grant sets `allow_privileged_sessions = true`
//!    (`access-denied`): PostgreSQL superuser sessions (`pg_roles.rolsuper`
//!    of the backend's role) and backends that are not client sessions
//!    (`backend_type <> 'client backend'`: walsenders, autovacuum,
//!    background and parallel workers, ...). MongoDB: internal operations
//!    (no `client`/`client_s`, or a `desc` other than `conn...`: replication,
//!    TTL and monitoring threads) and operations on the `admin`, `local` and
//!    `config` databases.
//! 5. Dry-run: after the lookup and the checks, the signal is recorded as a
//!    planned action (class `session-control`) and not sent;
//!    `executed: false`.
//! 6. Otherwise the signal is sent and recorded as an executed (or failed)
//!    action, like `SELECT pg_terminate_backend(4242)`, with the session's
//!    description. PostgreSQL signals only a backend with the pid *and*
//!    the start time seen in the lookup, so a pid reused meanwhile is not
//!    hit (then `signalled` is false).
//!
//! The statement and command paths of `sql` and `mongo` refuse
//! `session-control` (see `permission.rs`): this module is the only way to
//! signal a session. Each call has a span (`sessions.signal_backend`,
//! `sessions.kill_op`) and runs within the grant's `call_timeout`; the
//! description (user, application, client, state and its age, the query cut
//! to [`QUERY_CHARS`] characters) and every message are redacted with the
//! run's redactor.

use super::call::{Call, Cx, Go, Hold};
use super::permission::TargetCall;
use super::sql::{Conn, db_error};
use super::{HostState, RunEnv, denied, invalid};
use crate::capability::CapabilityClass;
use crate::host::bindings::types::Error;
use crate::host::bindings::warden::plugin::sessions::{Host, Outcome, Signal};
use crate::runs::{Action, ActionState};
use bson::{Bson, Document, doc};
use sqlx::Row as _;
use sqlx::postgres::PgConnection;
use std::time::Duration;

/// How much of a session's query (or MongoDB command) the description keeps.
pub const QUERY_CHARS: usize = 80;
/// The prefix of every application name the agent gives its own sessions.
pub const OWN_PREFIX: &str = "warden/";
/// MongoDB databases whose operations count as privileged.
const SYSTEM_DATABASES: [&str; 3] = ["admin", "local", "config"];

/// `pg_stat_activity` (and `pg_roles`) for one pid, with the pid of the
/// backend running this very query.
const PG_LOOKUP: &str = "SELECT a.usename::text AS usename, a.application_name, \
     host(a.client_addr) AS client_addr, a.datname::text AS datname, a.state, a.backend_type, \
     COALESCE(r.rolsuper, false) AS rolsuper, \
     EXTRACT(epoch FROM now() - a.state_change)::float8 AS state_secs, a.query, \
     (EXTRACT(epoch FROM a.backend_start) * 1000000)::int8 AS started_us, \
     pg_backend_pid() AS own_pid \
     FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid \
     WHERE a.pid = $1";

/// The signal, for the backend with that pid and start time only.
const PG_TERMINATE: &str = "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a \
     WHERE a.pid = $1 AND (EXTRACT(epoch FROM a.backend_start) * 1000000)::int8 = $2";
const PG_CANCEL: &str = "SELECT pg_cancel_backend(a.pid) FROM pg_stat_activity a \
     WHERE a.pid = $1 AND (EXTRACT(epoch FROM a.backend_start) * 1000000)::int8 = $2";

/// One PostgreSQL backend as the lookup saw it.
#[derive(Debug, Clone, Default, PartialEq)]
struct Backend {
    pid: i32,
    user: Option<String>,
    application: String,
    client: Option<String>,
    database: Option<String>,
    state: Option<String>,
    backend_type: Option<String>,
    superuser: bool,
    state_secs: Option<f64>,
    query: Option<String>,
    started_us: Option<i64>,
}

fn function_of(signal: Signal) -> &'static str {
    match signal {
        Signal::Cancel => "pg_cancel_backend",
        Signal::Terminate => "pg_terminate_backend",
    }
}

/// `text` on one line (whitespace runs collapsed), cut to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() <= max {
        return joined;
    }
    let mut cut: String = joined.chars().take(max).collect();
    cut.push('…');
    cut
}

/// "12s", "3m 5s": whole seconds.
fn age(secs: f64) -> String {
    let secs = if secs.is_finite() && secs > 0.0 {
        secs.round() as u64
    } else {
        0
    };
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// The backend on one line: what, who, from where, doing what for how long.
fn describe_backend(b: &Backend) -> String {
    let mut parts = Vec::new();
    let kind = match b.backend_type.as_deref() {
        Some("client backend") | None => "backend".to_string(),
        Some(other) => format!("{other} backend"),
    };
    parts.push(format!("{kind} {}", b.pid));
    if let Some(user) = &b.user {
        let su = if b.superuser { " (superuser)" } else { "" };
        parts.push(format!("user {user:?}{su}"));
    }
    if !b.application.is_empty() {
        parts.push(format!("application {:?}", b.application));
    }
    match &b.client {
        Some(addr) => parts.push(format!("client {addr}")),
        None if b.backend_type.as_deref() == Some("client backend") => {
            parts.push("client local socket".into());
        }
        None => {}
    }
    if let Some(db) = &b.database {
        parts.push(format!("database {db:?}"));
    }
    if let Some(state) = &b.state {
        match b.state_secs {
            Some(secs) => parts.push(format!("{state} for {}", age(secs))),
            None => parts.push(state.clone()),
        }
    }
    if let Some(query) = b.query.as_deref().filter(|q| !q.trim().is_empty()) {
        parts.push(format!("query {:?}", one_line(query, QUERY_CHARS)));
    }
    parts.join(", ")
}

/// Why the backend may not be signalled, if it may not.
fn pg_refusal(b: &Backend, own_pid: i32, allow_privileged: bool) -> Option<String> {
    if b.pid == own_pid {
        return Some(format!(
            "pid {} is the agent's own session for this call: the agent never signals its own \
             sessions",
            b.pid
        ));
    }
    if b.application.starts_with(OWN_PREFIX) {
        return Some(format!(
            "pid {} is one of the agent's own sessions (application_name {:?} starts with \
             `{OWN_PREFIX}`): the agent never signals its own sessions",
            b.pid, b.application
        ));
    }
    if allow_privileged {
        return None;
    }
    let unless = "refused unless the grant sets `allow_privileged_sessions = true`";
    match b.backend_type.as_deref() {
        Some("client backend") => {}
        other => {
            return Some(format!(
                "pid {} is a {} backend, not a client session: {unless}",
                b.pid,
                other.unwrap_or("server")
            ));
        }
    }
    if b.superuser {
        return Some(format!(
            "pid {} is a superuser session (user {:?}): {unless}",
            b.pid,
            b.user.as_deref().unwrap_or("")
        ));
    }
    None
}

async fn pg_lookup(
    conn: &mut PgConnection,
    pid: i32,
) -> Result<(Option<Backend>, i32), sqlx::Error> {
    let row = sqlx::query(PG_LOOKUP)
        .bind(pid)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        let own: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *conn)
            .await?;
        return Ok((None, own));
    };
    let backend = Backend {
        pid,
        user: row.try_get("usename")?,
        application: row
            .try_get::<Option<String>, _>("application_name")?
            .unwrap_or_default(),
        client: row.try_get("client_addr")?,
        database: row.try_get("datname")?,
        state: row.try_get("state")?,
        backend_type: row.try_get("backend_type")?,
        superuser: row.try_get("rolsuper")?,
        state_secs: row.try_get("state_secs")?,
        query: row.try_get("query")?,
        started_us: row.try_get("started_us")?,
    };
    Ok((Some(backend), row.try_get("own_pid")?))
}

/// Sends the signal; `None` when the backend is gone (or its pid now
/// belongs to a newer one).
async fn pg_signal(
    conn: &mut PgConnection,
    backend: &Backend,
    signal: Signal,
) -> Result<Option<bool>, sqlx::Error> {
    let statement = match signal {
        Signal::Cancel => PG_CANCEL,
        Signal::Terminate => PG_TERMINATE,
    };
    sqlx::query_scalar::<_, Option<bool>>(statement)
        .bind(backend.pid)
        .bind(backend.started_us)
        .fetch_optional(&mut *conn)
        .await
        .map(|found| found.map(|signalled| signalled.unwrap_or(false)))
}

/// The opid of a `currentOp` entry, whatever its numeric type.
fn opid_of(op: &Document) -> Option<i64> {
    match op.get("opid") {
        Some(Bson::Int32(n)) => Some(i64::from(*n)),
        Some(Bson::Int64(n)) => Some(*n),
        Some(Bson::Double(d)) if d.fract() == 0.0 => Some(*d as i64),
        _ => None,
    }
}

/// The application name of an operation's client: `appName`, else the
/// driver's `clientMetadata.application.name`.
fn app_name_of(op: &Document) -> Option<String> {
    if let Ok(name) = op.get_str("appName") {
        return Some(name.to_string());
    }
    op.get_document("clientMetadata")
        .and_then(|m| m.get_document("application"))
        .and_then(|a| a.get_str("name"))
        .ok()
        .map(str::to_string)
}

/// Every application name an operation carries (both places).
fn app_names_of(op: &Document) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(name) = op.get_str("appName") {
        names.push(name.to_string());
    }
    if let Ok(name) = op
        .get_document("clientMetadata")
        .and_then(|m| m.get_document("application"))
        .and_then(|a| a.get_str("name"))
    {
        names.push(name.to_string());
    }
    names
}

fn client_of(op: &Document) -> Option<&str> {
    op.get_str("client")
        .or_else(|_| op.get_str("client_s"))
        .ok()
}

/// The database of an operation's namespace (`db.coll`, `db.$cmd`).
fn database_of(op: &Document) -> Option<&str> {
    op.get_str("ns")
        .ok()
        .and_then(|ns| ns.split('.').next())
        .filter(|db| !db.is_empty())
}

/// The operation on one line.
fn describe_op(opid: i64, op: &Document) -> String {
    let mut parts = vec![format!("opid {opid}")];
    if let Ok(desc) = op.get_str("desc") {
        parts.push(format!("desc {desc:?}"));
    }
    let users: Vec<String> = op
        .get_array("effectiveUsers")
        .map(|users| {
            users
                .iter()
                .filter_map(|u| match u {
                    Bson::Document(d) => d.get_str("user").ok().map(|u| match d.get_str("db") {
                        Ok(db) => format!("{u}@{db}"),
                        Err(_) => u.to_string(),
                    }),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if !users.is_empty() {
        parts.push(format!("user {:?}", users.join(",")));
    }
    if let Some(app) = app_name_of(op) {
        parts.push(format!("application {app:?}"));
    }
    if let Some(client) = client_of(op) {
        parts.push(format!("client {client}"));
    }
    let what = op.get_str("op").unwrap_or("op");
    match op.get_str("ns") {
        Ok(ns) if !ns.is_empty() => parts.push(format!("{what} on {ns}")),
        _ => parts.push(what.to_string()),
    }
    let active = op.get_bool("active").unwrap_or(true);
    let secs = match op.get("microsecs_running") {
        Some(Bson::Int64(us)) => Some(*us as f64 / 1e6),
        Some(Bson::Int32(us)) => Some(f64::from(*us) / 1e6),
        _ => match op.get("secs_running") {
            Some(Bson::Int64(s)) => Some(*s as f64),
            Some(Bson::Int32(s)) => Some(f64::from(*s)),
            _ => None,
        },
    };
    let state = if active { "active" } else { "idle" };
    match secs {
        Some(secs) => parts.push(format!("{state} for {}", age(secs))),
        None => parts.push(state.to_string()),
    }
    if let Ok(command) = op.get_document("command") {
        let json = Bson::Document(command.clone())
            .into_relaxed_extjson()
            .to_string();
        parts.push(format!("command {:?}", one_line(&json, QUERY_CHARS)));
    }
    parts.join(", ")
}

/// Why the operation may not be killed, if it may not.
fn mongo_refusal(opid: i64, op: &Document, allow_privileged: bool) -> Option<String> {
    if let Some(name) = app_names_of(op)
        .into_iter()
        .find(|n| n.starts_with(OWN_PREFIX))
    {
        return Some(format!(
            "opid {opid} is one of the agent's own operations (application {name:?} starts with \
             `{OWN_PREFIX}`): the agent never kills its own operations"
        ));
    }
    if allow_privileged {
        return None;
    }
    let unless = "refused unless the grant sets `allow_privileged_sessions = true`";
    let desc = op.get_str("desc").unwrap_or("");
    if client_of(op).is_none() || !(desc.is_empty() || desc.starts_with("conn")) {
        let desc = if desc.is_empty() { "no desc" } else { desc };
        return Some(format!(
            "opid {opid} is an internal operation ({desc}, no client connection): {unless}"
        ));
    }
    if let Some(db) = database_of(op).filter(|db| SYSTEM_DATABASES.contains(db)) {
        return Some(format!("opid {opid} runs on the `{db}` database: {unless}"));
    }
    None
}

/// Time left before `deadline` (the call's timeout, counted from its start).
fn timed_out(timeout: Duration) -> Error {
    Error::Timeout(format!(
        "the session call did not finish within {}",
        humantime::format_duration(timeout)
    ))
}

/// The action a signal stands for, about to be made.
fn action(env: &RunEnv, target: &str, statement: &str, description: &str) -> Action {
    let mut text = env
        .redactor
        .redact(&format!("{statement} -- {description}"));
    crate::text::truncate_utf8(&mut text, 4096);
    // The fingerprint covers the signal, not the description (which holds
    // how long the session has been in its state).
    let class = CapabilityClass::SessionControl;
    let fingerprint = crate::runs::fingerprint(target, class, statement, &[]);
    Action::host(
        target,
        class,
        text,
        Vec::new(),
        fingerprint,
        ActionState::Executed,
    )
}

/// What a dry run answers for a signal it planned.
fn planned(env: &RunEnv, description: &str) -> Outcome {
    Outcome {
        executed: false,
        signalled: false,
        description: env.redactor.redact(description),
    }
}

impl HostState {
    /// The run's PostgreSQL connection to the call's target.
    async fn pg_conn(&mut self, cx: &Cx<'_, '_>) -> Result<&mut PgConnection, Error> {
        let class = CapabilityClass::SessionControl;
        let session =
            super::sql::session(&mut self.sql, cx.env, cx.target, cx.grant, class).await?;
        match &mut session.conn {
            Conn::Postgres(conn) => Ok(conn),
            Conn::Sqlite(_) => Err(denied(format!(
                "target `{}` is not a PostgreSQL database",
                cx.target.name
            ))),
        }
    }

    /// `sessions.signal-backend` without the wasm boundary.
    pub async fn sessions_signal_backend(
        &mut self,
        target: &str,
        pid: i32,
        signal: Signal,
    ) -> Result<Outcome, Error> {
        let call = Call::db(
            "sessions.signal_backend",
            function_of(signal),
            target,
            CapabilityClass::SessionControl,
            TargetCall::SessionSignal { target },
        );
        self.call(call, |host, cx| {
            Box::pin(host.signal_backend_allowed(cx, pid, signal))
        })
        .await
    }

    async fn signal_backend_allowed(
        &mut self,
        cx: Cx<'_, '_>,
        pid: i32,
        signal: Signal,
    ) -> Result<Outcome, Error> {
        let (env, t, grant) = (cx.env, cx.target, cx.grant);
        let target = t.name.as_str();
        if pid <= 0 {
            return Err(invalid(format!(
                "no session with pid {pid} on target `{target}`: a backend pid is positive"
            )));
        }
        let conn = self.pg_conn(&cx).await?;
        let looked = tokio::time::timeout(cx.left(), pg_lookup(conn, pid)).await;
        let (backend, own_pid) = match looked {
            Err(_) => return Err(self.sql.timed_out(target, cx.timeout).await),
            Ok(Err(e)) => return Err(db_error(env, grant, e)),
            Ok(Ok((None, _))) => {
                return Err(invalid(format!(
                    "no session with pid {pid} on target `{target}` (not in pg_stat_activity)"
                )));
            }
            Ok(Ok((Some(backend), own))) => (backend, own),
        };
        let description = describe_backend(&backend);
        if let Some(why) = pg_refusal(&backend, own_pid, grant.allow_privileged_sessions) {
            return Err(denied(format!("{why} [{description}]")));
        }
        let statement = format!("SELECT {}({pid})", function_of(signal));
        let call = action(env, target, &statement, &description);
        if self.mutation(env, call, Hold::ToPlan)? == Go::Planned {
            return Ok(planned(env, &description));
        }
        let conn = self.pg_conn(&cx).await?;
        let sent = tokio::time::timeout(cx.left(), pg_signal(conn, &backend, signal)).await;
        let found = match sent {
            Err(_) => return Err(self.sql.timed_out(target, cx.timeout).await),
            Ok(Err(e)) => return Err(db_error(env, grant, e)),
            Ok(Ok(found)) => found,
        };
        // A signal the server did not deliver (the session ended, or its
        // pid was reused) did nothing: recorded as failed, not executed.
        match found {
            Some(true) => {}
            Some(false) => self.settle(
                ActionState::Failed,
                Some(format!(
                    "{} returned false: no session was signalled",
                    function_of(signal)
                )),
            ),
            None => self.settle(
                ActionState::Failed,
                Some("the session was gone before the signal: nothing was signalled".to_string()),
            ),
        }
        let description = match found {
            Some(_) => description,
            None => format!("{description} (gone before the signal)"),
        };
        Ok(Outcome {
            executed: true,
            signalled: found.unwrap_or(false),
            description: env.redactor.redact(&description),
        })
    }

    /// `sessions.kill-op` without the wasm boundary.
    pub async fn sessions_kill_op(&mut self, target: &str, opid: i64) -> Result<Outcome, Error> {
        let call = Call::db(
            "sessions.kill_op",
            "killOp",
            target,
            CapabilityClass::SessionControl,
            TargetCall::KillOp { target },
        );
        self.call(call, |host, cx| Box::pin(host.kill_op_allowed(cx, opid)))
            .await
    }

    async fn kill_op_allowed(&mut self, cx: Cx<'_, '_>, opid: i64) -> Result<Outcome, Error> {
        let (env, t, grant) = (cx.env, cx.target, cx.grant);
        let target = t.name.as_str();
        let op_value = match i32::try_from(opid) {
            Ok(n) => Bson::Int32(n),
            Err(_) => Bson::Int64(opid),
        };
        let client = super::mongo::client(&mut self.mongo, env, t, grant).await?;
        let admin = client.database("admin");
        let lookup = doc! { "currentOp": 1, "$all": true, "opid": op_value.clone() };
        let reply = match tokio::time::timeout(cx.left(), admin.run_command(lookup)).await {
            Err(_) => return Err(timed_out(cx.timeout)),
            Ok(Err(e)) => return Err(super::mongo::redacted_error(env, target, &e)),
            Ok(Ok(reply)) => reply,
        };
        // The filter is the server's; the opid is checked here again.
        let op = reply
            .get_array("inprog")
            .ok()
            .and_then(|ops| {
                ops.iter().find_map(|op| match op {
                    Bson::Document(d) if opid_of(d) == Some(opid) => Some(d.clone()),
                    _ => None,
                })
            })
            .ok_or_else(|| {
                invalid(format!(
                    "no session with operation {opid} on target `{target}` (not in currentOp)"
                ))
            })?;
        let description = describe_op(opid, &op);
        if let Some(why) = mongo_refusal(opid, &op, grant.allow_privileged_sessions) {
            return Err(denied(format!("{why} [{description}]")));
        }
        let command = doc! { "killOp": 1, "op": op_value };
        let statement = format!(
            "db.admin: {}",
            Bson::Document(command.clone()).into_relaxed_extjson()
        );
        let call = action(env, target, &statement, &description);
        if self.mutation(env, call, Hold::ToPlan)? == Go::Planned {
            return Ok(planned(env, &description));
        }
        let reply = match tokio::time::timeout(cx.left(), admin.run_command(command)).await {
            Err(_) => return Err(timed_out(cx.timeout)),
            Ok(Err(e)) => return Err(super::mongo::redacted_error(env, target, &e)),
            Ok(Ok(reply)) => reply,
        };
        let ok = match reply.get("ok") {
            Some(Bson::Double(v)) => *v == 1.0,
            Some(Bson::Int32(v)) => *v == 1,
            Some(Bson::Int64(v)) => *v == 1,
            Some(Bson::Boolean(b)) => *b,
            _ => false,
        };
        // killOp not answered `ok` did nothing: recorded as failed.
        if !ok {
            self.settle(
                ActionState::Failed,
                Some("killOp did not answer ok: no operation was killed".to_string()),
            );
        }
        Ok(Outcome {
            executed: true,
            signalled: ok,
            description: env.redactor.redact(&description),
        })
    }
}

impl Host for HostState {
    async fn signal_backend(
        &mut self,
        target: String,
        pid: i32,
        signal: Signal,
    ) -> wasmtime::Result<Result<Outcome, Error>> {
        Ok(self.sessions_signal_backend(&target, pid, signal).await)
    }

    async fn kill_op(
        &mut self,
        target: String,
        opid: i64,
    ) -> wasmtime::Result<Result<Outcome, Error>> {
        Ok(self.sessions_kill_op(&target, opid).await)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn client(pid: i32) -> Backend {
        Backend {
            pid,
            user: Some("app".into()),
            application: "psql".into(),
            client: Some("10.0.0.7".into()),
            database: Some("orders".into()),
            state: Some("idle in transaction".into()),
            backend_type: Some("client backend".into()),
            superuser: false,
            state_secs: Some(83.4),
            query: Some("SELECT *\n  FROM   orders\tWHERE id = 1".into()),
            started_us: Some(1),
        }
    }

    #[test]
    fn a_backend_is_described_on_one_line() {
        let d = describe_backend(&client(4242));
        assert_eq!(
            d,
            "backend 4242, user \"app\", application \"psql\", client 10.0.0.7, database \
             \"orders\", idle in transaction for 1m 23s, query \"SELECT * FROM orders WHERE id = 1\""
        );
        let mut long = client(7);
        long.query = Some(format!("SELECT {}", "x, ".repeat(100)));
        let d = describe_backend(&long);
        let query = d.split("query ").nth(1).unwrap();
        assert!(query.chars().count() <= QUERY_CHARS + 3, "{query}");
        assert!(query.ends_with("…\""), "{query}");
        let bg = Backend {
            pid: 9,
            backend_type: Some("autovacuum launcher".into()),
            ..Backend::default()
        };
        assert_eq!(describe_backend(&bg), "autovacuum launcher backend 9");
    }

    #[test]
    fn own_privileged_and_background_backends_are_refused() {
        let plain = client(100);
        assert_eq!(pg_refusal(&plain, 1, false), None);
        // The call's own backend and every `warden/` session, whatever the grant.
        let e = pg_refusal(&plain, 100, true).unwrap();
        assert!(e.contains("the agent's own session for this call"), "{e}");
        let mut warden = client(101);
        warden.application = "warden/other".into();
        let e = pg_refusal(&warden, 1, true).unwrap();
        assert!(e.contains("\"warden/other\""), "{e}");
        // Superusers and non-client backends unless the grant allows them.
        let mut su = client(102);
        su.superuser = true;
        let e = pg_refusal(&su, 1, false).unwrap();
        assert!(
            e.contains("superuser") && e.contains("allow_privileged_sessions"),
            "{e}"
        );
        assert_eq!(pg_refusal(&su, 1, true), None);
        for kind in ["walsender", "autovacuum worker", "background worker"] {
            let mut bg = client(103);
            bg.backend_type = Some(kind.into());
            bg.application = String::new();
            let e = pg_refusal(&bg, 1, false).unwrap();
            assert!(
                e.contains(kind) && e.contains("not a client session"),
                "{e}"
            );
            assert_eq!(pg_refusal(&bg, 1, true), None);
        }
    }

    fn op(opid: i32) -> Document {
        doc! {
            "type": "op", "desc": "conn17", "client": "10.0.0.9:51234", "active": true,
            "opid": opid, "op": "query", "ns": "shop.orders",
            "command": {"find": "orders", "filter": {"status": "open"}},
            "microsecs_running": 12_500_000_i64,
            "appName": "report-job",
            "effectiveUsers": [{"user": "app", "db": "shop"}],
        }
    }

    #[test]
    fn an_operation_is_described_on_one_line() {
        assert_eq!(
            describe_op(7, &op(7)),
            "opid 7, desc \"conn17\", user \"app@shop\", application \"report-job\", client \
             10.0.0.9:51234, query on shop.orders, active for 13s, command \
             \"{\\\"find\\\":\\\"orders\\\",\\\"filter\\\":{\\\"status\\\":\\\"open\\\"}}\""
        );
        assert_eq!(opid_of(&op(7)), Some(7));
        assert_eq!(opid_of(&doc! {"opid": 8_i64}), Some(8));
        assert_eq!(opid_of(&doc! {"opid": "shard:8"}), None);
    }

    #[test]
    fn own_internal_and_system_operations_are_refused() {
        assert_eq!(mongo_refusal(7, &op(7), false), None);
        let mut own = op(7);
        own.remove("appName");
        own.insert(
            "clientMetadata",
            doc! {"application": {"name": "warden/sessionprobe"}},
        );
        let e = mongo_refusal(7, &own, true).unwrap();
        assert!(e.contains("agent's own"), "{e}");
        let mut own = op(7);
        own.insert("appName", "warden/backup");
        assert!(mongo_refusal(7, &own, true).is_some());

        let internal =
            doc! {"desc": "ReplBatcher", "opid": 3, "active": true, "op": "none", "ns": ""};
        let e = mongo_refusal(3, &internal, false).unwrap();
        assert!(e.contains("internal operation (ReplBatcher"), "{e}");
        assert_eq!(mongo_refusal(3, &internal, true), None);
        let mut no_client = op(5);
        no_client.remove("client");
        assert!(mongo_refusal(5, &no_client, false).is_some());
        let mut via_mongos = no_client.clone();
        via_mongos.insert("client_s", "10.0.0.9:1");
        assert_eq!(mongo_refusal(5, &via_mongos, false), None);
        for db in SYSTEM_DATABASES {
            let mut sys = op(6);
            sys.insert("ns", format!("{db}.$cmd"));
            let e = mongo_refusal(6, &sys, false).unwrap();
            assert!(e.contains(&format!("`{db}` database")), "{e}");
            assert_eq!(mongo_refusal(6, &sys, true), None);
        }
    }
}
