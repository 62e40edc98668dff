//! A run's connection to one SQL target, and the walls the host puts around
//! every call on it. Nothing here is cached between calls on the guest's
//! word: each call starts from the grant's settings again.
//!
//! - **PostgreSQL.** The connection is opened with the grant's
//!   `statement_timeout` and `lock_timeout` and `standard_conforming_strings
//!   = on` as connection options, which makes them the session's reset
//!   values. Every call starts with `RESET ALL`, so whatever an earlier call
//!   changed (a setting changed by a function the classifier let through)
//!   is gone. A read then runs inside `BEGIN READ ONLY` and always ends
//!   with `ROLLBACK`: the read-only mode cannot be lifted from inside the
//!   transaction, and the rollback undoes every session setting the read
//!   changed (`set_config(..., false)` included). Before a read runs, every
//!   function it names is resolved in the target's own catalog
//!   ([`Catalog`]): under `read`, only functions `pg_proc` marks immutable
//!   or stable, or a short reviewed list of harmless volatile ones.
//! - **Deadlines.** A call that outlives its deadline is stopped on the
//!   server: PostgreSQL's backend is terminated from a separate control
//!   connection (`pg_terminate_backend(pid, timeout)`, allowed for one's own
//!   role), SQLite's statement is interrupted by a progress handler that
//!   checks the call's deadline. The same happens when the call's future is
//!   dropped (the run was cancelled): see [`Busy`].
//! - **SQLite.** Each call sets `PRAGMA query_only` for its class, and reads
//!   run with `SQLITE_LIMIT_LENGTH` at the grant's `max_result_bytes`: no
//!   string or blob larger than that can be made by a read, inside SQLite or
//!   in the agent.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

use crate::config::Secret;

/// A run's open connection to one target.
pub enum Conn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// One target's connection with what the host needs to wall each call.
pub struct Session {
    pub(crate) conn: Conn,
    /// Set when a call was abandoned and its backend is being stopped.
    stopping: Stopping,
    /// PostgreSQL: how to reach this backend again, to stop it.
    backend: Option<Backend>,
    /// SQLite: the deadline the progress handler checks.
    interrupt: Option<Arc<Interrupt>>,
    /// PostgreSQL: verdicts on function names, resolved once per connection.
    catalog: Catalog,
    /// SQLite: the longest string or blob a read may make.
    max_value: i32,
}

/// A PostgreSQL backend: the URL it was opened with and its pid.
#[derive(Clone)]
pub(crate) struct Backend {
    url: Secret,
    pid: i32,
}

/// When a SQLite statement must stop: milliseconds since `base`
/// (`u64::MAX`: no call running).
pub(crate) struct Interrupt {
    base: Instant,
    deadline_ms: AtomicU64,
}

impl Interrupt {
    fn new() -> Interrupt {
        Interrupt {
            base: Instant::now(),
            deadline_ms: AtomicU64::new(u64::MAX),
        }
    }

    fn set(&self, deadline: Instant) {
        let ms = deadline.saturating_duration_since(self.base).as_millis();
        self.deadline_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX - 1), Ordering::SeqCst);
    }

    fn now(&self) {
        self.deadline_ms.store(0, Ordering::SeqCst);
    }

    fn clear(&self) {
        self.deadline_ms.store(u64::MAX, Ordering::SeqCst);
    }

    /// Whether the running statement may go on.
    fn may_continue(&self) -> bool {
        let deadline = self.deadline_ms.load(Ordering::SeqCst);
        deadline == u64::MAX
            || u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX) < deadline
    }
}

/// SQLite virtual-machine instructions between two deadline checks.
const PROGRESS_OPS: i32 = 1000;

/// One call in flight. Dropped before [`Session::end`] (the call's future
/// was dropped at a timeout or a cancelled run), it stops the statement on
/// the server.
pub(crate) struct Busy {
    backend: Option<Backend>,
    stopping: Stopping,
    interrupt: Option<Arc<Interrupt>>,
    read: bool,
    armed: bool,
}

impl Busy {
    /// The call ended on its own: nothing to stop. Returns whether it was a read.
    fn disarm(mut self) -> bool {
        self.armed = false;
        self.read
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(i) = &self.interrupt {
            i.now();
        }
        if let Some(backend) = self.backend.clone()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            let task = handle.spawn(async move {
                let _ = terminate(&backend).await;
            });
            if let Ok(mut slot) = self.stopping.lock() {
                *slot = Some(task);
            }
        }
    }
}

/// The task stopping a session's backend, once a call was abandoned.
type Stopping = Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>;

/// How long the host waits for a backend it terminates to be gone.
pub(crate) const TERMINATE_WAIT: Duration = Duration::from_secs(2);

/// Terminates `backend` from a control connection of the same role and
/// waits (up to [`TERMINATE_WAIT`]) until it is gone. Returns whether it is.
pub(crate) async fn terminate(backend: &Backend) -> Result<bool, sqlx::Error> {
    let work = async {
        let mut control = PgConnectOptions::from_str(backend.url.expose())?
            .application_name("warden/control")
            .connect()
            .await?;
        let wait_ms = i64::try_from(TERMINATE_WAIT.as_millis()).unwrap_or(2000);
        // PostgreSQL 14+ waits for the backend to exit; older servers lack
        // the two-argument form (42883) and only signal it.
        let gone = match sqlx::query_scalar::<_, bool>("SELECT pg_terminate_backend($1, $2)")
            .bind(backend.pid)
            .bind(wait_ms)
            .fetch_one(&mut control)
            .await
        {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42883") => {
                sqlx::query_scalar::<_, bool>("SELECT pg_terminate_backend($1)")
                    .bind(backend.pid)
                    .fetch_one(&mut control)
                    .await?
            }
            other => other?,
        };
        let _ = control.close().await;
        Ok(gone)
    };
    match tokio::time::timeout(TERMINATE_WAIT + Duration::from_secs(3), work).await {
        Ok(result) => result,
        Err(_) => Ok(false),
    }
}

impl Session {
    /// Opens a connection to a PostgreSQL target with the grant's settings
    /// as its reset values.
    pub(crate) async fn open_postgres(
        url: &Secret,
        application: &str,
        statement_timeout: Duration,
        lock_timeout: Duration,
    ) -> Result<Session, sqlx::Error> {
        let opts = PgConnectOptions::from_str(url.expose())?
            .application_name(application)
            .options([
                (
                    "statement_timeout",
                    format!("{}", statement_timeout.as_millis()),
                ),
                ("lock_timeout", format!("{}", lock_timeout.as_millis())),
                ("standard_conforming_strings", "on".to_string()),
            ]);
        let mut conn = opts.connect().await?;
        let (pid, schemas): (i32, Vec<String>) =
            sqlx::query_as("SELECT pg_backend_pid(), current_schemas(true)::text[]")
                .fetch_one(&mut conn)
                .await?;
        Ok(Session {
            conn: Conn::Postgres(conn),
            stopping: Stopping::default(),
            backend: Some(Backend {
                url: url.clone(),
                pid,
            }),
            interrupt: None,
            catalog: Catalog::new(schemas),
            max_value: i32::MAX,
        })
    }

    /// Opens a SQLite target with the deadline's progress handler.
    pub(crate) async fn open_sqlite(
        url: &Secret,
        busy_timeout: Duration,
        max_result_bytes: u64,
    ) -> Result<Session, sqlx::Error> {
        let mut conn = SqliteConnectOptions::from_str(url.expose())?
            .create_if_missing(false)
            .busy_timeout(busy_timeout)
            .connect()
            .await?;
        let interrupt = Arc::new(Interrupt::new());
        let check = interrupt.clone();
        conn.lock_handle()
            .await?
            .set_progress_handler(PROGRESS_OPS, move || check.may_continue());
        Ok(Session {
            conn: Conn::Sqlite(conn),
            stopping: Stopping::default(),
            backend: None,
            interrupt: Some(interrupt),
            catalog: Catalog::new(Vec::new()),
            max_value: i32::try_from(max_result_bytes.max(1)).unwrap_or(i32::MAX),
        })
    }

    /// Starts a call: re-asserts the grant's settings (PostgreSQL `RESET
    /// ALL`, and `BEGIN READ ONLY` for a read; SQLite `PRAGMA query_only` and
    /// the value length limit) and arms the deadline.
    pub(crate) fn begin(
        &mut self,
        read: bool,
        deadline: Instant,
    ) -> BoxFuture<'_, Result<Busy, sqlx::Error>> {
        Box::pin(async move {
            match &mut self.conn {
                Conn::Postgres(c) => {
                    let preamble = if read {
                        "RESET ALL; BEGIN READ ONLY"
                    } else {
                        "RESET ALL"
                    };
                    sqlx::Executor::execute(&mut *c, preamble).await?;
                }
                Conn::Sqlite(c) => {
                    let length = if read { self.max_value } else { i32::MAX };
                    set_sqlite_length_limit(c, length).await?;
                    let pragma = if read {
                        "PRAGMA query_only = ON"
                    } else {
                        "PRAGMA query_only = OFF"
                    };
                    sqlx::Executor::execute(&mut *c, pragma).await?;
                }
            }
            if let Some(i) = &self.interrupt {
                i.set(deadline);
            }
            Ok(Busy {
                backend: self.backend.clone(),
                stopping: self.stopping.clone(),
                interrupt: self.interrupt.clone(),
                read,
                armed: true,
            })
        })
    }

    /// Ends a call (whether it succeeded or not): a PostgreSQL read is
    /// rolled back, undoing anything it changed in the session.
    pub(crate) fn end(&mut self, busy: Busy) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        Box::pin(async move {
            let read = busy.disarm();
            if let Some(i) = &self.interrupt {
                i.clear();
            }
            if read && let Conn::Postgres(c) = &mut self.conn {
                sqlx::Executor::execute(&mut *c, "ROLLBACK").await?;
            }
            Ok(())
        })
    }

    /// For host code that runs a sequence of its own statements (what-if
    /// planning): back to the grant's settings, and read-only for the whole
    /// session when `on` until the next call.
    pub(crate) fn set_read_only(&mut self, on: bool) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        Box::pin(async move {
            match &mut self.conn {
                Conn::Postgres(c) => {
                    let stmt = if on {
                        "RESET ALL; SET default_transaction_read_only = on"
                    } else {
                        "RESET ALL"
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
            Ok(())
        })
    }

    /// Stops this session's backend after a call was abandoned mid-way
    /// (a timeout): waits for the stop the abandoned call started, or
    /// starts one. Returns once the backend is gone (or the wait ran out).
    pub(crate) async fn abandon(self) {
        let started = self.stopping.lock().ok().and_then(|mut s| s.take());
        let backend = self.backend.clone();
        drop(self.conn);
        match (started, backend) {
            (Some(task), _) => {
                let _ = tokio::time::timeout(TERMINATE_WAIT + Duration::from_secs(4), task).await;
            }
            (None, Some(backend)) => {
                let _ = terminate(&backend).await;
            }
            (None, None) => {}
        }
    }

    /// Checks the functions a read names against the target's catalog
    /// (PostgreSQL; SQLite has no such catalog and nothing to allow). Must
    /// run inside the call (after [`Session::begin`]).
    pub(crate) fn check_read_functions<'a>(
        &'a mut self,
        functions: &'a [Vec<String>],
    ) -> BoxFuture<'a, Result<Result<(), String>, sqlx::Error>> {
        match &mut self.conn {
            Conn::Postgres(c) => self.catalog.check_read(c, functions),
            Conn::Sqlite(_) => Box::pin(async { Ok(Ok(())) }),
        }
    }

    /// Closes the connection.
    pub(crate) async fn close(self) {
        let _ = match self.conn {
            Conn::Postgres(c) => c.close().await,
            Conn::Sqlite(c) => c.close().await,
        };
    }
}

/// Sets SQLite's `SQLITE_LIMIT_LENGTH` (the longest string or blob) on `conn`.
fn set_sqlite_length_limit(
    conn: &mut SqliteConnection,
    length: i32,
) -> BoxFuture<'_, Result<(), sqlx::Error>> {
    Box::pin(async move {
        let mut handle = conn.lock_handle().await?;
        let raw = handle.as_raw_handle();
        // SAFETY: the locked handle guarantees that the worker thread makes no
        // call on this connection meanwhile; `sqlite3_limit` only stores the
        // value (SQLite clamps it to its compile-time maximum).
        unsafe {
            libsqlite3_sys::sqlite3_limit(
                raw.as_ptr(),
                libsqlite3_sys::SQLITE_LIMIT_LENGTH,
                length,
            );
        }
        Ok(())
    })
}

/// A function a read may call although `pg_proc` marks it volatile: each
/// only reads (sizes, positions, clocks, random numbers).
struct Harmless {
    name: &'static str,
    /// `None`: the function must be in `pg_catalog`; otherwise the extension
    /// that must own it (wherever it is installed).
    extension: Option<&'static str>,
}

/// The reviewed list of harmless volatile functions. Anything else volatile
/// may change something and needs more than `read`.
const HARMLESS_VOLATILE: &[Harmless] = &[
    Harmless {
        name: "random",
        extension: None,
    },
    Harmless {
        name: "random_normal",
        extension: None,
    },
    Harmless {
        name: "clock_timestamp",
        extension: None,
    },
    Harmless {
        name: "timeofday",
        extension: None,
    },
    Harmless {
        name: "gen_random_uuid",
        extension: None,
    },
    Harmless {
        name: "pg_relation_size",
        extension: None,
    },
    Harmless {
        name: "pg_table_size",
        extension: None,
    },
    Harmless {
        name: "pg_indexes_size",
        extension: None,
    },
    Harmless {
        name: "pg_total_relation_size",
        extension: None,
    },
    Harmless {
        name: "pg_database_size",
        extension: None,
    },
    Harmless {
        name: "pg_tablespace_size",
        extension: None,
    },
    Harmless {
        name: "pg_is_in_recovery",
        extension: None,
    },
    Harmless {
        name: "pg_is_wal_replay_paused",
        extension: None,
    },
    Harmless {
        name: "pg_get_wal_replay_pause_state",
        extension: None,
    },
    Harmless {
        name: "pg_current_wal_lsn",
        extension: None,
    },
    Harmless {
        name: "pg_current_wal_insert_lsn",
        extension: None,
    },
    Harmless {
        name: "pg_current_wal_flush_lsn",
        extension: None,
    },
    Harmless {
        name: "pg_last_wal_receive_lsn",
        extension: None,
    },
    Harmless {
        name: "pg_last_wal_replay_lsn",
        extension: None,
    },
    Harmless {
        name: "pg_last_xact_replay_timestamp",
        extension: None,
    },
    Harmless {
        name: "pg_blocking_pids",
        extension: None,
    },
    Harmless {
        name: "pg_safe_snapshot_blocking_pids",
        extension: None,
    },
    Harmless {
        name: "pg_stat_get_snapshot_timestamp",
        extension: None,
    },
    Harmless {
        name: "pg_stat_clear_snapshot",
        extension: None,
    },
    Harmless {
        name: "pg_stat_force_next_flush",
        extension: None,
    },
    Harmless {
        name: "pg_control_checkpoint",
        extension: None,
    },
    Harmless {
        name: "pg_control_system",
        extension: None,
    },
    Harmless {
        name: "pg_control_recovery",
        extension: None,
    },
    Harmless {
        name: "pg_control_init",
        extension: None,
    },
    Harmless {
        name: "pg_stat_statements",
        extension: Some("pg_stat_statements"),
    },
    Harmless {
        name: "pg_stat_statements_info",
        extension: Some("pg_stat_statements"),
    },
    Harmless {
        name: "pg_qualstats_example_query",
        extension: Some("pg_qualstats"),
    },
    Harmless {
        name: "pg_qualstats_example_queries",
        extension: Some("pg_qualstats"),
    },
    Harmless {
        name: "pg_qualstats",
        extension: Some("pg_qualstats"),
    },
    Harmless {
        name: "pg_qualstats_names",
        extension: Some("pg_qualstats"),
    },
];

/// Names the parser shows as function calls that PostgreSQL's grammar
/// turns into expressions of their own (no `pg_proc` entry): they evaluate
/// only their arguments, which are checked themselves.
const SQL_CONSTRUCTS: &[&str] = &[
    "coalesce",
    "greatest",
    "least",
    "nullif",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "current_user",
    "current_role",
    "session_user",
    "system_user",
    "user",
    "current_catalog",
    "row",
    "grouping",
    "xmlelement",
    "xmlforest",
    "xmlconcat",
    "xmlpi",
    "xmlroot",
    "xmlparse",
    "xmlserialize",
    "xmlexists",
];

/// One overload of a function name, from `pg_proc`.
struct Overload {
    schema: String,
    volatile: bool,
    extension: Option<String>,
}

/// Verdicts on function names for reads, per connection: resolved from
/// `pg_proc` the first time a name is seen.
struct Catalog {
    /// `current_schemas(true)` when the connection opened (the reset
    /// `search_path`, which every call restores).
    schemas: Vec<String>,
    verdicts: HashMap<Vec<String>, Result<(), String>>,
}

/// Names resolved per catalog query at most.
const CATALOG_BATCH: usize = 256;

/// An unqualified name of [`SQL_CONSTRUCTS`].
fn is_construct(function: &[String]) -> bool {
    matches!(function, [name] if SQL_CONSTRUCTS.contains(&name.as_str()))
}

impl Catalog {
    fn new(schemas: Vec<String>) -> Catalog {
        Catalog {
            schemas,
            verdicts: HashMap::new(),
        }
    }

    fn check_read<'a>(
        &'a mut self,
        conn: &'a mut PgConnection,
        functions: &'a [Vec<String>],
    ) -> BoxFuture<'a, Result<Result<(), String>, sqlx::Error>> {
        Box::pin(async move {
            let unknown: Vec<&Vec<String>> = functions
                .iter()
                .filter(|f| !is_construct(f))
                .filter(|f| !self.verdicts.contains_key(*f))
                .take(CATALOG_BATCH)
                .collect();
            if !unknown.is_empty() {
                let mut names: Vec<String> =
                    unknown.iter().filter_map(|f| f.last().cloned()).collect();
                names.sort();
                names.dedup();
                let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
                    "SELECT n.nspname::text, p.proname::text, p.provolatile::text, \
                        (SELECT e.extname::text FROM pg_catalog.pg_depend d \
                           JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid \
                          WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid \
                            AND d.refclassid = 'pg_catalog.pg_extension'::regclass \
                            AND d.deptype = 'e' LIMIT 1) \
                   FROM pg_catalog.pg_proc p \
                   JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
                  WHERE p.proname = ANY($1)",
                )
                .bind(&names)
                .fetch_all(&mut *conn)
                .await?;
                let mut by_name: HashMap<String, Vec<Overload>> = HashMap::new();
                for (schema, name, volatility, extension) in rows {
                    by_name.entry(name).or_default().push(Overload {
                        schema,
                        volatile: volatility == "v",
                        extension,
                    });
                }
                for f in unknown {
                    let verdict = self.judge(f, &by_name);
                    self.verdicts.insert(f.clone(), verdict);
                }
            }
            for f in functions.iter().filter(|f| !is_construct(f)) {
                match self.verdicts.get(f) {
                    Some(Ok(())) => {}
                    Some(Err(why)) => return Ok(Err(why.clone())),
                    // More names than one batch: resolve the rest.
                    None => return self.check_read(conn, functions).await,
                }
            }
            Ok(Ok(()))
        })
    }

    /// The verdict on one name: every overload it could resolve to must be
    /// non-volatile or on the reviewed list.
    fn judge(
        &self,
        function: &[String],
        by_name: &HashMap<String, Vec<Overload>>,
    ) -> Result<(), String> {
        let shown = function.join(".");
        let (schema, name) = match function {
            [name] => (None, name),
            [.., schema, name] => (Some(schema), name),
            [] => return Err("a function without a name".into()),
        };
        let candidates: Vec<&Overload> = by_name
            .get(name.as_str())
            .into_iter()
            .flatten()
            .filter(|o| match schema {
                Some(s) => &o.schema == s,
                None => self.schemas.contains(&o.schema),
            })
            .collect();
        if candidates.is_empty() {
            return Err(format!(
                "function `{shown}` is not in the target's catalog (on the search path {:?}); \
                 a read may call only functions the host can look up",
                self.schemas
            ));
        }
        for o in candidates {
            if !o.volatile {
                continue;
            }
            let harmless = HARMLESS_VOLATILE.iter().any(|h| {
                h.name == name.as_str()
                    && match h.extension {
                        None => o.schema == "pg_catalog",
                        Some(ext) => o.extension.as_deref() == Some(ext),
                    }
            });
            if !harmless {
                return Err(format!(
                    "function `{}.{name}` is volatile in the target's catalog (pg_proc), so it may \
                     change something: a `read` grant allows only functions marked immutable or \
                     stable, and a reviewed list of harmless volatile ones. Grant `write` to call it",
                    o.schema
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn catalog() -> (Catalog, HashMap<String, Vec<Overload>>) {
        let c = Catalog::new(vec!["pg_catalog".into(), "public".into()]);
        let o = |schema: &str, volatile: bool, extension: Option<&str>| Overload {
            schema: schema.into(),
            volatile,
            extension: extension.map(Into::into),
        };
        let mut m = HashMap::new();
        m.insert("now".into(), vec![o("pg_catalog", false, None)]);
        m.insert("random".into(), vec![o("pg_catalog", true, None)]);
        m.insert(
            "ts_rewrite".into(),
            vec![o("pg_catalog", false, None), o("pg_catalog", true, None)],
        );
        m.insert("setval".into(), vec![o("pg_catalog", true, None)]);
        // A user function shadowing a harmless name.
        m.insert(
            "pg_table_size".into(),
            vec![o("pg_catalog", true, None), o("public", true, None)],
        );
        m.insert("cleanup".into(), vec![o("app", true, None)]);
        m.insert(
            "pg_qualstats_example_query".into(),
            vec![o("ext", true, Some("pg_qualstats"))],
        );
        (c, m)
    }

    fn judge(name: &[&str]) -> Result<(), String> {
        let (c, m) = catalog();
        let f: Vec<String> = name.iter().map(|s| s.to_string()).collect();
        c.judge(&f, &m)
    }

    #[test]
    fn stable_and_reviewed_volatile_functions_are_reads() {
        judge(&["now"]).unwrap();
        judge(&["pg_catalog", "now"]).unwrap();
        judge(&["random"]).unwrap();
        judge(&["ext", "pg_qualstats_example_query"]).unwrap();
    }

    #[test]
    fn volatile_unknown_and_shadowed_functions_are_not() {
        for (name, needle) in [
            (vec!["setval"], "volatile"),
            (vec!["ts_rewrite"], "volatile"),
            (vec!["pg_table_size"], "public.pg_table_size"),
            (vec!["app", "cleanup"], "volatile"),
            // Not on the search path.
            (vec!["cleanup"], "not in the target's catalog"),
            (vec!["no_such_function"], "not in the target's catalog"),
            (vec!["public", "now"], "not in the target's catalog"),
            // The reviewed name in another schema is not the reviewed function.
            (vec!["public", "pg_table_size"], "volatile"),
        ] {
            let err = judge(&name).unwrap_err();
            assert!(err.contains(needle), "{name:?}: {err}");
        }
    }

    #[test]
    fn the_interrupt_stops_at_its_deadline() {
        let i = Interrupt::new();
        assert!(i.may_continue());
        i.set(Instant::now() + Duration::from_secs(60));
        assert!(i.may_continue());
        i.now();
        assert!(!i.may_continue());
        i.clear();
        assert!(i.may_continue());
        i.set(Instant::now());
        std::thread::sleep(Duration::from_millis(2));
        assert!(!i.may_continue());
    }
}
