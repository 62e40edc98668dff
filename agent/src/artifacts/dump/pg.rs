//! PostgreSQL: `pg_dump` and `pg_restore`, run as child processes (never
//! through a shell, arguments as separate arguments).
//!
//! The connection comes from the target URL, parsed into libpq's
//! environment variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`,
//! `PGSSLMODE`, ...): the password goes only into `PGPASSWORD`, never on
//! a command line. Inherited `PG*` variables are removed from the tools'
//! environment, so the URL alone decides where they connect.
//!
//! A dump is consistent and its counts exact: the host opens a
//! `REPEATABLE READ READ ONLY` transaction, exports its snapshot, runs
//! `pg_dump --snapshot=<id>` while the transaction stays open, lists the
//! tables whose data the archive holds (`pg_restore --list`, `TABLE DATA`
//! entries, identified by their OID) and counts their rows in that same
//! snapshot.
//!
//! Manifest metadata of a dump: `source-kind` (`postgres`), `format`
//! (`custom` | `directory`), `compression`, `jobs`, `database`,
//! `server-version`, `tool-version` (`pg_dump --version`).

use crate::ident::quote as quote_ident;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::str::FromStr as _;

use futures_util::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions as _, Connection as _};
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::process::Command;

use super::{
    Counts, DumpContext, DumpError, DumpOutcome, META_SOURCE_KIND, PgDumpOptions, PgFormat,
    RestoreOptions, Tools, shown,
};
use crate::config::{Target, percent_decode};

/// Where Debian installs each PostgreSQL version's programs.
const DEBIAN_PG_LIB: &str = "/usr/lib/postgresql";
/// Bytes of a tool's stderr kept for an error message.
const STDERR_TAIL_BYTES: usize = 8 * 1024;
/// Lines of a tool's stderr quoted in an error message.
const STDERR_TAIL_LINES: usize = 20;
/// Most bytes read from `pg_restore --list`.
const MAX_LIST_BYTES: usize = 256 * 1024 * 1024;
/// `PGCONNECT_TIMEOUT` when the URL sets none, in seconds.
const DEFAULT_CONNECT_TIMEOUT: &str = "30";

/// URL query parameters passed to the tools as environment variables.
const PARAM_ENV: &[(&str, &str)] = &[
    ("hostaddr", "PGHOSTADDR"),
    ("passfile", "PGPASSFILE"),
    ("service", "PGSERVICE"),
    ("options", "PGOPTIONS"),
    ("sslmode", "PGSSLMODE"),
    ("sslcompression", "PGSSLCOMPRESSION"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcrl", "PGSSLCRL"),
    ("sslcrldir", "PGSSLCRLDIR"),
    ("sslsni", "PGSSLSNI"),
    ("ssl_min_protocol_version", "PGSSLMINPROTOCOLVERSION"),
    ("ssl_max_protocol_version", "PGSSLMAXPROTOCOLVERSION"),
    ("requirepeer", "PGREQUIREPEER"),
    ("require_auth", "PGREQUIREAUTH"),
    ("channel_binding", "PGCHANNELBINDING"),
    ("gssencmode", "PGGSSENCMODE"),
    ("krbsrvname", "PGKRBSRVNAME"),
    ("gsslib", "PGGSSLIB"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("target_session_attrs", "PGTARGETSESSIONATTRS"),
    ("load_balance_hosts", "PGLOADBALANCEHOSTS"),
];

/// URL query parameters that do not change where or how the tools connect
/// (the application name is the host's), or that only the driver reads.
const PARAM_IGNORED: &[&str] = &[
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "statement-cache-capacity",
    "extra_float_digits",
];

/// A PostgreSQL URL as libpq's connection parameters.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct ConnParams {
    /// Host names, addresses or socket folders (percent-decoded).
    pub(crate) hosts: Vec<String>,
    /// One per host, or one for all; may be empty entries.
    pub(crate) ports: Vec<String>,
    pub(crate) user: Option<String>,
    pub(crate) dbname: Option<String>,
    password: Option<String>,
    /// Other libpq settings, as `(environment variable, value)`.
    pub(crate) settings: Vec<(&'static str, String)>,
}

impl fmt::Debug for ConnParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnParams")
            .field("hosts", &self.hosts)
            .field("ports", &self.ports)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("settings", &self.settings)
            .finish()
    }
}

impl ConnParams {
    /// Parses `postgres://user:pass@host:port,host2:port2/db?param=value`
    /// (also `postgresql://`, percent-encoded parts, `host=` socket folders
    /// and `[v6]` addresses). The error never quotes the URL or a value.
    pub(crate) fn parse(url: &str) -> Result<ConnParams, String> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or("the URL must start with postgres:// or postgresql://")?;
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (head, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = head.split_once('/').unwrap_or((head, ""));
        let (user_info, host_list) = match authority.rsplit_once('@') {
            Some((user_info, hosts)) => (Some(user_info), hosts),
            None => (None, authority),
        };
        let mut params = ConnParams::default();
        if let Some(user_info) = user_info {
            let (user, password) = match user_info.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (user_info, None),
            };
            if !user.is_empty() {
                params.user = Some(percent_decode(user));
            }
            params.password = password.map(percent_decode);
        }
        if !host_list.is_empty() {
            for host_port in host_list.split(',') {
                let (host, port) = split_host_port(host_port)?;
                params.hosts.push(percent_decode(host));
                params.ports.push(port.to_owned());
            }
            if params.ports.iter().all(String::is_empty) {
                params.ports.clear();
            }
        }
        if !path.is_empty() {
            params.dbname = Some(percent_decode(path));
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or("a query parameter of the URL has no `=`")?;
            let key = percent_decode(key);
            let value = percent_decode(value);
            match key.as_str() {
                "host" => params.hosts = value.split(',').map(str::to_owned).collect(),
                "port" => params.ports = value.split(',').map(str::to_owned).collect(),
                "user" => params.user = Some(value),
                "password" => params.password = Some(value),
                "dbname" => params.dbname = Some(value),
                _ => {
                    if let Some((_, var)) = PARAM_ENV.iter().find(|(k, _)| *k == key) {
                        params.settings.retain(|(v, _)| v != var);
                        params.settings.push((var, value));
                    } else if !PARAM_IGNORED.contains(&key.as_str()) {
                        return Err(format!(
                            "the URL parameter {} is not supported for pg_dump and pg_restore",
                            shown(&key)
                        ));
                    }
                }
            }
        }
        for port in &params.ports {
            if !port.chars().all(|c| c.is_ascii_digit()) {
                return Err("a port in the URL is not a number".to_owned());
            }
        }
        Ok(params)
    }

    /// The environment of a tool connecting with these parameters.
    pub(crate) fn env(&self, application_name: &str) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        if !self.hosts.is_empty() {
            env.push(("PGHOST", self.hosts.join(",")));
        }
        if !self.ports.is_empty() {
            env.push(("PGPORT", self.ports.join(",")));
        }
        if let Some(user) = &self.user {
            env.push(("PGUSER", user.clone()));
        }
        if let Some(dbname) = &self.dbname {
            env.push(("PGDATABASE", dbname.clone()));
        }
        if let Some(password) = &self.password {
            env.push(("PGPASSWORD", password.clone()));
        }
        env.extend(self.settings.iter().cloned());
        if !self.settings.iter().any(|(v, _)| *v == "PGCONNECT_TIMEOUT") {
            env.push(("PGCONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT.to_owned()));
        }
        env.push(("PGAPPNAME", application_name.to_owned()));
        env
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(s: &str) -> Result<(&str, &str), String> {
    if let Some(bracketed) = s.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or("an IPv6 host in the URL lacks its `]`")?;
        return match after {
            "" => Ok((host, "")),
            _ => after
                .strip_prefix(':')
                .map(|port| (host, port))
                .ok_or_else(|| "unexpected text after an IPv6 host in the URL".to_owned()),
        };
    }
    Ok(s.rsplit_once(':').unwrap_or((s, "")))
}

/// A located tool and its version.
#[derive(Debug, Clone)]
struct Tool {
    name: &'static str,
    path: PathBuf,
    /// `pg_dump (PostgreSQL) 15.13 (Debian ...)`.
    version: String,
    /// Comparable with [`server_version_key`].
    version_key: u32,
}

/// `"pg_dump (PostgreSQL) 15.13 (Debian 15.13-0+deb12u1)"` → 150000;
/// `"... 9.6.24"` → 90600.
fn tool_version_key(version: &str) -> Option<u32> {
    let number = version
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let mut parts = number
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty());
    let major: u32 = parts.next()?.parse().ok()?;
    if major >= 10 {
        Some(major * 10_000)
    } else {
        let minor: u32 = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
        Some(major * 10_000 + minor * 100)
    }
}

/// `server_version_num` (150013) → 150000; 90624 → 90600.
fn server_version_key(num: u32) -> u32 {
    if num >= 100_000 {
        num / 10_000 * 10_000
    } else {
        num / 100 * 100
    }
}

fn version_label(key: u32) -> String {
    if key >= 100_000 {
        format!("{}", key / 10_000)
    } else {
        format!("{}.{}", key / 10_000, key / 100 % 100)
    }
}

/// Finds `name` (configured folder; else the highest Debian version
/// folder that has it; else `PATH`) and checks that its version is at
/// least `min_key` (the server's major version).
async fn find_tool(tools: &Tools, name: &'static str, min_key: u32) -> Result<Tool, DumpError> {
    let path = match &tools.pg_bin_dir {
        Some(dir) => dir.join(name),
        None => highest_debian_tool(name).unwrap_or_else(|| PathBuf::from(name)),
    };
    let run = run_tool(name, &path, &["--version".to_owned()], &[], true)
        .await
        .map_err(|e| {
            DumpError::Failed(format!(
                "{e} (configure the PostgreSQL client tools' folder, or install the client \
                 tools)"
            ))
        })?;
    let version = String::from_utf8_lossy(&run.stdout).trim().to_owned();
    if !run.status.success() {
        return Err(DumpError::Failed(format!(
            "`{} --version` failed ({}): {}",
            path.display(),
            run.status,
            run.stderr_tail()
        )));
    }
    let version_key = tool_version_key(&version).ok_or_else(|| {
        DumpError::Failed(format!(
            "`{} --version` printed no version: {}",
            path.display(),
            shown(&version)
        ))
    })?;
    if version_key < min_key {
        return Err(DumpError::Failed(format!(
            "{} is version {} but the server is PostgreSQL {}: {name} must be at least the \
             server's major version (install postgresql-client-{} or configure a newer tools \
             folder)",
            path.display(),
            version_label(version_key),
            version_label(min_key),
            version_label(min_key),
        )));
    }
    Ok(Tool {
        name,
        path,
        version,
        version_key,
    })
}

/// `/usr/lib/postgresql/<highest version with the tool>/bin/<name>`.
fn highest_debian_tool(name: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(DEBIAN_PG_LIB).ok()?;
    let mut found: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let path = entry.path().join("bin").join(name);
            path.is_file().then_some((version, path))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, path)| path)
}

/// What a tool run left.
struct ToolRun {
    status: ExitStatus,
    stdout: Vec<u8>,
    /// The last [`STDERR_TAIL_BYTES`] of stderr.
    stderr: Vec<u8>,
}

impl ToolRun {
    /// The last lines of stderr, for an error message (not yet redacted).
    fn stderr_tail(&self) -> String {
        let text = String::from_utf8_lossy(&self.stderr);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines
            .get(lines.len().saturating_sub(STDERR_TAIL_LINES)..)
            .unwrap_or_default()
            .join("\n");
        if tail.is_empty() {
            "(nothing on stderr)".to_owned()
        } else {
            tail
        }
    }
}

/// Runs `path args` with `env` added to the environment minus inherited
/// `PG*` variables; stdin is empty, stdout kept if `keep_stdout`. The child
/// is killed if this future is dropped.
async fn run_tool(
    name: &str,
    path: &Path,
    args: &[String],
    env: &[(&'static str, String)],
    keep_stdout: bool,
) -> Result<ToolRun, DumpError> {
    let mut cmd = Command::new(path);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(if keep_stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(&key);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let mut child = cmd
        .spawn()
        .map_err(|e| DumpError::Failed(format!("cannot run {name} ({}): {e}", path.display())))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let read_stdout = async {
        let mut out = Vec::new();
        if let Some(stdout) = stdout {
            let mut limited = stdout.take(MAX_LIST_BYTES as u64 + 1);
            limited
                .read_to_end(&mut out)
                .await
                .map_err(|e| DumpError::Failed(format!("reading the output of {name}: {e}")))?;
            if out.len() > MAX_LIST_BYTES {
                return Err(DumpError::Failed(format!(
                    "{name} printed more than {MAX_LIST_BYTES} bytes"
                )));
            }
        }
        Ok(out)
    };
    let read_stderr = async {
        match stderr {
            Some(stderr) => read_tail(stderr, STDERR_TAIL_BYTES).await,
            None => Vec::new(),
        }
    };
    let (stdout, stderr, status) = tokio::join!(read_stdout, read_stderr, child.wait());
    let status =
        status.map_err(|e| DumpError::Failed(format!("waiting for {name} to finish: {e}")))?;
    Ok(ToolRun {
        status,
        stdout: stdout?,
        stderr,
    })
}

/// Reads `reader` to its end, keeping the last `keep` bytes.
async fn read_tail(mut reader: impl AsyncRead + Unpin, keep: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut chunk = vec![0u8; 4096];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(chunk.get(..n).unwrap_or_default());
                if kept.len() > 2 * keep {
                    kept.drain(..kept.len() - keep);
                }
            }
        }
    }
    if kept.len() > keep {
        kept.drain(..kept.len() - keep);
    }
    kept
}

/// Runs a tool and fails unless it exits successfully.
async fn run_checked(
    tool: &Tool,
    args: &[String],
    env: &[(&'static str, String)],
    keep_stdout: bool,
    doing: &str,
) -> Result<Vec<u8>, DumpError> {
    let run = run_tool(tool.name, &tool.path, args, env, keep_stdout).await?;
    if !run.status.success() {
        return Err(DumpError::Failed(format!(
            "{} failed ({}) {doing}:\n{}",
            tool.name,
            run.status,
            run.stderr_tail()
        )));
    }
    Ok(run.stdout)
}

/// A `TABLE DATA` entry of an archive's table of contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableData {
    /// The table's OID in the dumped database.
    pub(crate) oid: u32,
    /// `schema name owner`, as `pg_restore --list` prints them (line
    /// breaks in names turned into spaces, no quoting).
    pub(crate) rest: String,
}

/// The `TABLE DATA` entries of `pg_restore --list` output, such as
/// `3345; 0 16386 TABLE DATA public t1 postgres`.
pub(crate) fn parse_table_data(list: &str) -> Vec<TableData> {
    list.lines()
        .filter(|line| !line.starts_with(';'))
        .filter_map(|line| {
            let (_dump_id, entry) = line.split_once(';')?;
            let entry = entry.trim_start();
            let (_table_oid, entry) = entry.split_once(' ')?;
            let (oid, entry) = entry.split_once(' ')?;
            let rest = entry.strip_prefix("TABLE DATA ")?;
            Some(TableData {
                oid: oid.parse().ok()?,
                rest: rest.to_owned(),
            })
        })
        .collect()
}

/// Which of `tables` (schema, name) the entry is: the longest
/// `schema name` that the entry's text starts with, followed by the owner.
pub(crate) fn match_entry<'t>(
    entry: &TableData,
    tables: &'t [(String, String)],
) -> Option<&'t (String, String)> {
    let listed = |s: &str| s.replace(['\n', '\r'], " ");
    tables
        .iter()
        .filter(|(schema, name)| {
            let prefix = format!("{} {}", listed(schema), listed(name));
            entry.rest == prefix
                || entry
                    .rest
                    .strip_prefix(&prefix)
                    .is_some_and(|after| after.starts_with(' '))
        })
        .max_by_key(|(schema, name)| schema.len() + name.len())
}

/// `'value'` for a libpq connection string.
fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

async fn connect(
    target: &Target,
    database: Option<&str>,
    ctx: &DumpContext<'_>,
) -> Result<PgConnection, DumpError> {
    let fail = |e: sqlx::Error| {
        DumpError::Failed(format!("cannot connect to target `{}`: {e}", target.name))
    };
    let mut options = PgConnectOptions::from_str(target.url.expose())
        .map_err(fail)?
        .application_name(&ctx.application_name);
    if let Some(database) = database {
        options = options.database(database);
    }
    options.connect().await.map_err(fail)
}

/// `(server_version_num, server_version, current_database())`.
async fn server_facts(
    conn: &mut PgConnection,
    target: &Target,
) -> Result<(u32, String, String), DumpError> {
    let (num, version, database): (i32, String, String) = facts(&mut *conn)
        .await
        .map_err(|e| query_failed(target, "reading the server version", e))?;
    Ok((u32::try_from(num).unwrap_or(0), version, database))
}

// The sqlx calls, each boxed where its lifetimes are named: awaited inline
// in the dump's future they trip the `Send` check of the async host trait
// ("implementation of `Executor` is not general enough").

/// Runs `;`-separated statements (none may contain a `;` of its own).
fn exec<'c>(conn: &'c mut PgConnection, sql: &'c str) -> BoxFuture<'c, Result<(), sqlx::Error>> {
    Box::pin(async move {
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::Executor::execute(&mut *conn, statement).await?;
        }
        Ok(())
    })
}

fn scalar<'c, T>(conn: &'c mut PgConnection, sql: String) -> BoxFuture<'c, Result<T, sqlx::Error>>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin + 'c,
{
    Box::pin(async move { sqlx::query_scalar(&sql).fetch_one(&mut *conn).await })
}

fn facts(conn: &mut PgConnection) -> BoxFuture<'_, Result<(i32, String, String), sqlx::Error>> {
    Box::pin(async move {
        sqlx::query_as(
            "SELECT current_setting('server_version_num')::int4, \
             current_setting('server_version'), current_database()::text",
        )
        .fetch_one(&mut *conn)
        .await
    })
}

/// A table's OID, schema and name.
type NamedOid = (i64, String, String);

fn tables_by_oid(
    conn: &mut PgConnection,
    oids: Vec<i64>,
) -> BoxFuture<'_, Result<Vec<NamedOid>, sqlx::Error>> {
    Box::pin(async move {
        sqlx::query_as(
            "SELECT c.oid::int8, n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY($1::int8[]::oid[])",
        )
        .bind(&oids)
        .fetch_all(&mut *conn)
        .await
    })
}

/// Every ordinary and partitioned table outside the system schemas.
fn user_tables(conn: &mut PgConnection) -> BoxFuture<'_, Result<Vec<NamedOid>, sqlx::Error>> {
    Box::pin(async move {
        sqlx::query_as(
            "SELECT c.oid::int8, n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'",
        )
        .fetch_all(&mut *conn)
        .await
    })
}

fn all_tables(
    conn: &mut PgConnection,
) -> BoxFuture<'_, Result<Vec<(String, String)>, sqlx::Error>> {
    Box::pin(async move {
        sqlx::query_as(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'f')",
        )
        .fetch_all(&mut *conn)
        .await
    })
}

fn query_failed(target: &Target, doing: &str, e: sqlx::Error) -> DumpError {
    DumpError::Failed(format!("target `{}`: {doing}: {e}", target.name))
}

/// Counts the rows of each table (`ONLY`, as `COPY` dumps them).
async fn count_tables(
    conn: &mut PgConnection,
    target: &Target,
    tables: &[(String, String)],
) -> Result<Counts, DumpError> {
    let mut counts = Counts::new();
    for (schema, name) in tables {
        let sql = format!(
            "SELECT count(*) FROM ONLY {}.{}",
            quote_ident(schema),
            quote_ident(name)
        );
        let n: i64 = scalar(&mut *conn, sql).await.map_err(|e| {
            query_failed(
                target,
                &format!(
                    "counting the rows of {}.{}",
                    quote_ident(schema),
                    quote_ident(name)
                ),
                e,
            )
        })?;
        counts.insert(format!("{schema}.{name}"), u64::try_from(n).unwrap_or(0));
    }
    Ok(counts)
}

/// See the [module docs](self).
pub(super) fn dump<'a>(
    source: &'a Target,
    options: &'a PgDumpOptions,
    out: &'a Path,
    ctx: &'a DumpContext<'a>,
) -> BoxFuture<'a, Result<DumpOutcome, DumpError>> {
    // Boxed where the lifetimes are named: sqlx's executors otherwise trip
    // the `Send` check of the async host trait that awaits this.
    Box::pin(async move {
        let params = ConnParams::parse(source.url.expose()).map_err(|p| invalid_url(source, &p))?;
        let mut conn = connect(source, None, ctx).await?;
        let (server_num, server_version, database) = server_facts(&mut conn, source).await?;
        let min_key = server_version_key(server_num);
        let pg_dump = find_tool(ctx.tools, "pg_dump", min_key).await?;
        let pg_restore = find_sibling(ctx.tools, &pg_dump, "pg_restore").await?;

        // The snapshot pg_dump reads and the counts are taken in.
        exec(
            &mut conn,
            "SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0; \
             BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        )
        .await
        .map_err(|e| query_failed(source, "opening the snapshot transaction", e))?;
        let snapshot: String = scalar(&mut conn, "SELECT pg_export_snapshot()".to_owned())
            .await
            .map_err(|e| query_failed(source, "exporting the snapshot", e))?;

        let jobs = options.jobs.max(1);
        let mut args = vec![
            match options.format {
                PgFormat::Custom => "-Fc".to_owned(),
                PgFormat::Directory => "-Fd".to_owned(),
            },
            "-Z".to_owned(),
            options.compression.to_string(),
        ];
        if options.format == PgFormat::Directory && jobs > 1 {
            args.extend(["-j".to_owned(), jobs.to_string()]);
        }
        for (flag, patterns) in [
            ("-n", &options.include_schemas),
            ("-N", &options.exclude_schemas),
            ("-t", &options.include_tables),
            ("-T", &options.exclude_tables),
        ] {
            for pattern in patterns {
                args.push(flag.to_owned());
                args.push(pattern.clone());
            }
        }
        args.push("--no-password".to_owned());
        args.push(format!("--snapshot={snapshot}"));
        args.push("-f".to_owned());
        args.push(out.to_string_lossy().into_owned());
        let env = params.env(&ctx.application_name);
        let doing = format!("dumping target `{}`", source.name);
        let dumping = run_checked(&pg_dump, &args, &env, false, &doing);
        // Without filters every user table is dumped: count them in the
        // snapshot while pg_dump runs. With filters, count after, only what
        // the archive holds (a filtered dump of a small table must not scan
        // the big ones).
        let unfiltered = options.include_schemas.is_empty()
            && options.exclude_schemas.is_empty()
            && options.include_tables.is_empty()
            && options.exclude_tables.is_empty();
        let early = if unfiltered {
            let all = user_tables(&mut conn)
                .await
                .map_err(|e| query_failed(source, "listing the tables", e))?;
            let pairs: Vec<(String, String)> =
                all.iter().map(|(_, s, n)| (s.clone(), n.clone())).collect();
            let (dumped, counted) = tokio::join!(dumping, count_tables(&mut conn, source, &pairs));
            dumped?;
            Some((all, counted?))
        } else {
            dumping.await?;
            None
        };

        let list = list_archive(&pg_restore, out, options.format).await?;
        let entries = parse_table_data(&list);
        let rows: Vec<NamedOid> = match &early {
            Some((all, _)) => all.clone(),
            None => {
                let oids: Vec<i64> = entries.iter().map(|e| i64::from(e.oid)).collect();
                tables_by_oid(&mut conn, oids)
                    .await
                    .map_err(|e| query_failed(source, "naming the dumped tables", e))?
            }
        };
        let by_oid: BTreeMap<i64, (String, String)> = rows
            .into_iter()
            .map(|(oid, schema, name)| (oid, (schema, name)))
            .collect();
        let mut tables = Vec::with_capacity(entries.len());
        for entry in &entries {
            let table = by_oid.get(&i64::from(entry.oid)).ok_or_else(|| {
                DumpError::Failed(format!(
                    "target `{}`: the archive holds data of table {} (OID {}), which the snapshot \
                     does not have",
                    source.name,
                    shown(&entry.rest),
                    entry.oid
                ))
            })?;
            tables.push(table.clone());
        }
        let counts = match early {
            Some((_, all_counts)) => tables
                .iter()
                .filter_map(|(schema, name)| {
                    let key = format!("{schema}.{name}");
                    all_counts.get(&key).map(|n| (key, *n))
                })
                .collect(),
            None => count_tables(&mut conn, source, &tables).await?,
        };
        exec(&mut conn, "COMMIT")
            .await
            .map_err(|e| query_failed(source, "ending the snapshot transaction", e))?;
        let _ = conn.close().await;

        let metadata = BTreeMap::from([
            (META_SOURCE_KIND.to_owned(), "postgres".to_owned()),
            ("format".to_owned(), options.format.as_str().to_owned()),
            ("compression".to_owned(), options.compression.to_string()),
            ("jobs".to_owned(), jobs.to_string()),
            ("database".to_owned(), database),
            ("server-version".to_owned(), server_version),
            ("tool-version".to_owned(), pg_dump.version.clone()),
        ]);
        Ok(DumpOutcome {
            counts,
            metadata,
            digests: Default::default(),
        })
    })
}

/// `pg_restore` next to `pg_dump` (same version), or found like any tool.
async fn find_sibling(tools: &Tools, found: &Tool, name: &'static str) -> Result<Tool, DumpError> {
    let tools = match found.path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => Tools {
            pg_bin_dir: Some(dir.to_path_buf()),
        },
        _ => tools.clone(),
    };
    find_tool(&tools, name, found.version_key).await
}

/// `pg_restore --list` of an archive.
async fn list_archive(
    pg_restore: &Tool,
    archive: &Path,
    format: PgFormat,
) -> Result<String, DumpError> {
    let args = [
        "--list".to_owned(),
        match format {
            PgFormat::Custom => "-Fc".to_owned(),
            PgFormat::Directory => "-Fd".to_owned(),
        },
        archive.to_string_lossy().into_owned(),
    ];
    let stdout = run_checked(
        pg_restore,
        &args,
        &[],
        true,
        &format!("listing the archive {}", archive.display()),
    )
    .await?;
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

fn invalid_url(target: &Target, problem: &str) -> DumpError {
    DumpError::InvalidInput(format!("target `{}`: {problem}", target.name))
}

/// See the [module docs](self).
pub(super) fn restore<'a>(
    destination: &'a Target,
    data: &'a Path,
    metadata: &'a BTreeMap<String, String>,
    options: &'a RestoreOptions,
    ctx: &'a DumpContext<'a>,
) -> BoxFuture<'a, Result<Counts, DumpError>> {
    // Boxed where the lifetimes are named: sqlx's executors otherwise trip
    // the `Send` check of the async host trait that awaits this.
    Box::pin(async move {
        let mut params = ConnParams::parse(destination.url.expose())
            .map_err(|p| invalid_url(destination, &p))?;
        if let Some(database) = &options.database {
            params.dbname = Some(database.clone());
        }
        let dbname = params.dbname.clone().ok_or_else(|| {
            DumpError::InvalidInput(format!(
                "target `{}`: the URL names no database to restore into (set the database option)",
                destination.name
            ))
        })?;
        let format = match metadata.get("format").map(String::as_str) {
            Some("custom") => PgFormat::Custom,
            Some("directory") => PgFormat::Directory,
            Some(other) => {
                return Err(DumpError::InvalidInput(format!(
                    "the artifact's metadata has format {}; expected custom or directory",
                    shown(other)
                )));
            }
            None if data.is_dir() => PgFormat::Directory,
            None => PgFormat::Custom,
        };
        let meta = std::fs::metadata(data)
            .map_err(|e| DumpError::Failed(format!("reading {}: {e}", data.display())))?;
        if meta.is_dir() != (format == PgFormat::Directory) {
            return Err(DumpError::InvalidInput(format!(
                "{} is a {}, but the artifact's format is {}",
                data.display(),
                if meta.is_dir() { "folder" } else { "file" },
                format.as_str()
            )));
        }

        let mut conn = connect(destination, Some(&dbname), ctx).await?;
        let (server_num, _, _) = server_facts(&mut conn, destination).await?;
        let mut min_key = server_version_key(server_num);
        if let Some(dumped_with) = metadata
            .get("tool-version")
            .and_then(|v| tool_version_key(v))
        {
            min_key = min_key.max(dumped_with);
        }
        let pg_restore = find_tool(ctx.tools, "pg_restore", min_key).await?;
        let entries = parse_table_data(&list_archive(&pg_restore, data, format).await?);

        let mut args = vec![
            "--no-owner".to_owned(),
            "--no-privileges".to_owned(),
            "--exit-on-error".to_owned(),
            "--no-password".to_owned(),
        ];
        if options.clean {
            args.extend(["--clean".to_owned(), "--if-exists".to_owned()]);
        }
        if options.jobs > 1 {
            args.extend(["-j".to_owned(), options.jobs.to_string()]);
        }
        args.push(match format {
            PgFormat::Custom => "-Fc".to_owned(),
            PgFormat::Directory => "-Fd".to_owned(),
        });
        args.push(format!("--dbname=dbname={}", conninfo_value(&dbname)));
        args.push(data.to_string_lossy().into_owned());
        let env = params.env(&ctx.application_name);
        run_checked(
            &pg_restore,
            &args,
            &env,
            false,
            &format!("restoring into target `{}`", destination.name),
        )
        .await?;

        let tables: Vec<(String, String)> = all_tables(&mut conn)
            .await
            .map_err(|e| query_failed(destination, "listing the restored tables", e))?;
        let mut restored = Vec::with_capacity(entries.len());
        for entry in &entries {
            let table = match_entry(entry, &tables).ok_or_else(|| {
                DumpError::Failed(format!(
                    "target `{}`: table {} of the archive is missing after the restore",
                    destination.name,
                    shown(&entry.rest)
                ))
            })?;
            restored.push(table.clone());
        }
        let counts = count_tables(&mut conn, destination, &restored).await?;
        let _ = conn.close().await;
        Ok(counts)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn env_of(url: &str) -> BTreeMap<&'static str, String> {
        ConnParams::parse(url)
            .unwrap()
            .env("warden/backup")
            .into_iter()
            .collect()
    }

    #[test]
    fn url_to_env() {
        let env = env_of("postgres://app:s3cret@db.example:6432/sales?sslmode=require");
        assert_eq!(env["PGHOST"], "db.example");
        assert_eq!(env["PGPORT"], "6432");
        assert_eq!(env["PGUSER"], "app");
        assert_eq!(env["PGDATABASE"], "sales");
        assert_eq!(env["PGPASSWORD"], "s3cret");
        assert_eq!(env["PGSSLMODE"], "require");
        assert_eq!(env["PGAPPNAME"], "warden/backup");
        assert_eq!(env["PGCONNECT_TIMEOUT"], "30");
    }

    #[test]
    fn percent_encoded_parts_are_decoded() {
        let env = env_of("postgresql://ap%40p:p%40ss%3Aw0rd%2F@h/my%20db?connect_timeout=5");
        assert_eq!(env["PGUSER"], "ap@p");
        assert_eq!(env["PGPASSWORD"], "p@ss:w0rd/");
        assert_eq!(env["PGDATABASE"], "my db");
        assert_eq!(env["PGCONNECT_TIMEOUT"], "5");
        assert!(!env.contains_key("PGPORT"));
        // An unescaped `@` in the password: the user info ends at the last one.
        let env = env_of("postgres://u:se@cret@h:5432/db");
        assert_eq!(env["PGPASSWORD"], "se@cret");
        assert_eq!(env["PGHOST"], "h");
    }

    #[test]
    fn socket_hosts_and_several_hosts() {
        let env = env_of("postgres:///app?host=/var/run/postgresql&user=me");
        assert_eq!(env["PGHOST"], "/var/run/postgresql");
        assert_eq!(env["PGUSER"], "me");
        assert_eq!(env["PGDATABASE"], "app");
        assert!(!env.contains_key("PGPASSWORD"));
        let env = env_of("postgres://%2Ftmp%2Fpg:5433/app");
        assert_eq!(env["PGHOST"], "/tmp/pg");
        assert_eq!(env["PGPORT"], "5433");
        let env = env_of("postgres://u@h1:5432,h2,[::1]:5434/app?target_session_attrs=read-write");
        assert_eq!(env["PGHOST"], "h1,h2,::1");
        assert_eq!(env["PGPORT"], "5432,,5434");
        assert_eq!(env["PGTARGETSESSIONATTRS"], "read-write");
        let env = env_of("postgres://localhost");
        assert_eq!(env["PGHOST"], "localhost");
        assert!(!env.contains_key("PGDATABASE"));
    }

    #[test]
    fn bad_urls_are_refused_without_quoting_them() {
        for (url, problem) in [
            ("mysql://u:pw@h/db", "must start with"),
            ("postgres://u:pw@h:port/db", "not a number"),
            ("postgres://u:pw@h/db?frobnicate=pw", "frobnicate"),
            ("postgres://u:pw@h/db?sslmode", "no `=`"),
        ] {
            let err = ConnParams::parse(url).unwrap_err();
            assert!(err.contains(problem), "{url}: {err}");
            assert!(!err.contains("pw@"), "{err}");
        }
        // The driver-only and host-decided parameters are accepted.
        ConnParams::parse("postgres://h/db?application_name=x&statement-cache-capacity=10")
            .unwrap();
    }

    #[test]
    fn debug_hides_the_password() {
        let params = ConnParams::parse("postgres://u:hunter22@h/db").unwrap();
        assert!(!format!("{params:?}").contains("hunter22"));
    }

    #[test]
    fn table_data_entries_of_a_listing() {
        let list = "\
;
; Archive created at 2025-01-31 02:00:00 UTC
;     dbname: app
;
; Selected TOC Entries:
;
5; 2615 16385 SCHEMA - extra postgres
215; 1259 16386 TABLE public t1 postgres
216; 1259 16390 TABLE extra my table postgres
3345; 0 16386 TABLE DATA public t1 postgres
3346; 0 16390 TABLE DATA extra my table postgres
3347; 0 0 SEQUENCE SET public t1_id_seq postgres
3348; 0 16400 MATERIALIZED VIEW DATA public mv postgres
3349; 0 16401 TABLE DATA public nobody 
";
        let entries = parse_table_data(list);
        assert_eq!(
            entries,
            [
                TableData {
                    oid: 16386,
                    rest: "public t1 postgres".into()
                },
                TableData {
                    oid: 16390,
                    rest: "extra my table postgres".into()
                },
                TableData {
                    oid: 16401,
                    rest: "public nobody ".into()
                },
            ]
        );
        let tables: Vec<(String, String)> = [
            ("public", "t1"),
            ("public", "t"),
            ("extra", "my"),
            ("extra", "my table"),
            ("public", "nobody"),
        ]
        .iter()
        .map(|(s, n)| (s.to_string(), n.to_string()))
        .collect();
        let names: Vec<_> = entries
            .iter()
            .map(|e| match_entry(e, &tables).cloned())
            .collect();
        assert_eq!(
            names,
            [
                Some(("public".into(), "t1".into())),
                Some(("extra".into(), "my table".into())),
                Some(("public".into(), "nobody".into())),
            ]
        );
    }

    #[test]
    fn versions() {
        assert_eq!(
            tool_version_key("pg_dump (PostgreSQL) 15.13 (Debian 15.13-0+deb12u1)"),
            Some(150_000)
        );
        assert_eq!(
            tool_version_key("pg_dump (PostgreSQL) 17beta1"),
            Some(170_000)
        );
        assert_eq!(
            tool_version_key("pg_dump (PostgreSQL) 9.6.24"),
            Some(90_600)
        );
        assert_eq!(tool_version_key("nothing"), None);
        assert_eq!(server_version_key(150_013), 150_000);
        assert_eq!(server_version_key(90_624), 90_600);
        assert_eq!(version_label(90_600), "9.6");
        assert_eq!(version_label(160_000), "16");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(conninfo_value(r"it's\x"), r"'it\'s\\x'");
    }
}
