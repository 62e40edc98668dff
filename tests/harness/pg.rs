//! A throwaway PostgreSQL 15 cluster for the integration tests.
//!
//! [`cluster()`] starts one cluster per test process, lazily, on first use; every test
//! then gets its own database from [`PgCluster::create_database`] (a copy of a template
//! that already has `pg_stat_statements`, and `hypopg` / `pg_qualstats` when installed).
//!
//! - Data, socket and log live in a fresh temp dir (`$TMPDIR/warden-pg-*`); the server
//!   listens on 127.0.0.1 on a free port and on a socket in that dir.
//! - Local (socket) connections are trusted; TCP connections need the superuser's
//!   password (SCRAM), which is random per cluster (`sekret-pw-<hex>`), so a test can
//!   check that it never leaks into a record, log line or span.
//! - As root, `initdb` and the server run as the `postgres` user (they refuse root).
//! - Settings appended to the cluster's `postgresql.conf`: durability off (`fsync`,
//!   `synchronous_commit`, `full_page_writes`), `max_connections = 200`,
//!   `shared_preload_libraries = 'pg_stat_statements,pg_qualstats'`,
//!   `pg_qualstats.sample_rate = 1`, `pg_stat_statements.track = all`. Autovacuum
//!   stays on: a test that counts dead tuples should disable it on its tables.
//! - The cluster is stopped and its dir removed when the test process exits
//!   (`atexit`); a watchdog process does the same if the process is killed instead.
//!
//! `WARDEN_PG_BIN` overrides the binary directory (default `/usr/lib/postgresql/15/bin`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::{sanitize, tail};
use std::fmt::Write as _;
use std::fs;
use std::io::Read as _;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};

const DEFAULT_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// The database every test database is copied from.
pub const TEMPLATE_DB: &str = "warden_template";
/// The superuser.
pub const SUPERUSER: &str = "postgres";
/// Extensions created in every test database when the server has them.
const WANTED_EXTENSIONS: [&str; 3] = ["pg_stat_statements", "hypopg", "pg_qualstats"];

static CLUSTER: OnceLock<Result<PgCluster, String>> = OnceLock::new();

/// The test process's PostgreSQL cluster, started on first use. Panics (failing the
/// calling test) with the reason, including the tail of the server log, when it
/// cannot start.
pub fn cluster() -> &'static PgCluster {
    let started = CLUSTER.get_or_init(|| PgCluster::start().map_err(|err| format!("{err:#}")));
    match started {
        Ok(cluster) => cluster,
        Err(err) => panic!("the PostgreSQL test cluster could not start: {err}"),
    }
}

/// A database created for one test.
#[derive(Debug, Clone)]
pub struct TestDb {
    pub name: String,
    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/NAME`.
    pub url: String,
}

/// A running throwaway cluster. See the module documentation.
pub struct PgCluster {
    layout: Layout,
    port: u16,
    password: String,
    extensions: Vec<String>,
    started_in: Duration,
    owner_pid: u32,
    counter: AtomicU64,
    /// The write end of the watchdog's stdin: it sees EOF when this process is gone.
    _watchdog: ChildStdin,
}

impl PgCluster {
    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/postgres`.
    pub fn admin_url(&self) -> String {
        self.url_for("postgres")
    }

    /// The superuser's URL for database `db` (TCP, with the password).
    pub fn url_for(&self, db: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        )
    }

    /// The superuser's password (random per cluster).
    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the server's Unix socket (`host=` for libpq-style tools;
    /// socket connections are trusted, no password needed).
    pub fn socket_dir(&self) -> &Path {
        &self.layout.dir
    }

    /// The PostgreSQL binary directory (`pg_dump`, `pg_restore`, `psql`, ...).
    pub fn bin_dir(&self) -> &Path {
        &self.layout.bin_dir
    }

    /// The extensions every test database has (always `pg_stat_statements`).
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// True when every test database has extension `name`.
    pub fn has_extension(&self, name: &str) -> bool {
        self.extensions.iter().any(|e| e == name)
    }

    /// How long starting the cluster took (initdb, start, template).
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The server log so far (for a failing test's message).
    pub fn server_log(&self) -> String {
        fs::read_to_string(self.layout.log_file()).unwrap_or_default()
    }

    /// Creates a database named after `hint` (plus a counter and the process id) from
    /// the template, so it already has the extensions. Panics when that fails.
    pub async fn create_database(&self, hint: &str) -> TestDb {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}_{n}_{}", sanitize(hint), std::process::id());
        // Over the trusted socket: a SCRAM handshake costs ~50 ms in a debug build.
        let mut conn = PgConnectOptions::new()
            .socket(&self.layout.dir)
            .port(self.port)
            .username(SUPERUSER)
            .database("postgres")
            .connect()
            .await
            .unwrap_or_else(|err| panic!("connecting to the test cluster: {err}"));
        sqlx::raw_sql(&format!(
            r#"CREATE DATABASE "{name}" TEMPLATE {TEMPLATE_DB}"#
        ))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|err| panic!("creating test database {name}: {err}"));
        let _ = conn.close().await;
        TestDb {
            url: self.url_for(&name),
            name,
        }
    }

    fn start() -> Result<PgCluster> {
        let started = Instant::now();
        let bin_dir = std::env::var_os("WARDEN_PG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_BIN_DIR));
        if !bin_dir.join("initdb").is_file() {
            bail!(
                "{} not found: install PostgreSQL 15 (`cargo xtask test` does, as root: \
                 postgresql-15 postgresql-client-15 postgresql-15-hypopg \
                 postgresql-15-pg-qualstats) or set WARDEN_PG_BIN",
                bin_dir.join("initdb").display()
            );
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let as_postgres = unsafe { libc::geteuid() } == 0;

        let dir = tempfile::Builder::new()
            .prefix("warden-pg-")
            .tempdir()
            .context("creating the cluster's temp dir")?
            .keep();
        let layout = Layout {
            data_dir: dir.join("data"),
            dir,
            bin_dir,
            as_postgres,
        };
        let result = Self::start_in(layout.clone(), started);
        if result.is_err() {
            layout.stop();
        }
        result
    }

    fn start_in(layout: Layout, started: Instant) -> Result<PgCluster> {
        let dir = &layout.dir;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
        if layout.as_postgres {
            make_traversable(dir)?;
            let uid = id_of("-u")?;
            let gid = id_of("-g")?;
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                .with_context(|| format!("chown postgres {}", dir.display()))?;
        }

        // The watchdog stops the server and removes the dir if this process dies
        // without running its exit handlers (SIGKILL, Ctrl-C).
        let watchdog = layout.spawn_watchdog()?;

        let password = format!("sekret-pw-{}", random_hex(12)?);
        let pwfile = dir.join("pwfile");
        fs::write(&pwfile, format!("{password}\n"))?;
        fs::set_permissions(&pwfile, fs::Permissions::from_mode(0o600))?;
        if layout.as_postgres {
            std::os::unix::fs::chown(&pwfile, Some(id_of("-u")?), Some(id_of("-g")?))?;
        }
        let initdb = layout
            .command("initdb")
            .arg("-D")
            .arg(&layout.data_dir)
            .args([
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["-E", "UTF8", "--locale=C", "-N"])
            .output()
            .context("running initdb")?;
        let _ = fs::remove_file(&pwfile);
        if !initdb.status.success() {
            bail!(
                "initdb failed ({}):\n{}{}",
                initdb.status,
                String::from_utf8_lossy(&initdb.stdout),
                String::from_utf8_lossy(&initdb.stderr)
            );
        }

        let lib_dir = layout.bin_dir.join("../lib");
        let qualstats = lib_dir.join("pg_qualstats.so").exists();
        let mut conf = String::from("\n# warden test cluster\n");
        let _ = writeln!(conf, "listen_addresses = '127.0.0.1'");
        let _ = writeln!(conf, "unix_socket_directories = '{}'", dir.display());
        let _ = writeln!(conf, "max_connections = 200");
        let _ = writeln!(conf, "fsync = off");
        let _ = writeln!(conf, "synchronous_commit = off");
        let _ = writeln!(conf, "full_page_writes = off");
        let _ = writeln!(conf, "pg_stat_statements.track = all");
        if qualstats {
            let _ = writeln!(
                conf,
                "shared_preload_libraries = 'pg_stat_statements,pg_qualstats'"
            );
            let _ = writeln!(conf, "pg_qualstats.sample_rate = 1");
        } else {
            let _ = writeln!(conf, "shared_preload_libraries = 'pg_stat_statements'");
        }
        let conf_file = layout.data_dir.join("postgresql.conf");
        let mut existing = fs::read_to_string(&conf_file).context("reading postgresql.conf")?;
        existing.push_str(&conf);
        fs::write(&conf_file, existing).context("writing postgresql.conf")?;

        // A free port can be taken between probing and binding: retry on a new one.
        let mut attempt = 0;
        let port = loop {
            attempt += 1;
            let port = free_port()?;
            let _ = fs::remove_file(layout.log_file());
            let out = layout
                .command("pg_ctl")
                .arg("-D")
                .arg(&layout.data_dir)
                .arg("-l")
                .arg(layout.log_file())
                .args(["-w", "-t", "60", "-o", &format!("-p {port}"), "start"])
                .output()
                .context("running pg_ctl start")?;
            if out.status.success() {
                break port;
            }
            let log = fs::read_to_string(layout.log_file()).unwrap_or_default();
            if attempt < 5 && log.contains("could not bind") {
                continue;
            }
            bail!(
                "pg_ctl start failed ({}): {}\n--- server log (tail) ---\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                tail(&log, 40)
            );
        };

        let extensions = setup_template(&layout, port, qualstats).map_err(|err| {
            let log = fs::read_to_string(layout.log_file()).unwrap_or_default();
            err.context(format!("--- server log (tail) ---\n{}", tail(&log, 40)))
        })?;

        // SAFETY: `stop_at_exit` is an `extern "C" fn()` that does not unwind.
        if unsafe { libc::atexit(stop_at_exit) } != 0 {
            eprintln!("warden_tests::pg: atexit failed; the watchdog will stop the cluster");
        }
        Ok(PgCluster {
            layout,
            port,
            password,
            extensions,
            started_in: started.elapsed(),
            owner_pid: std::process::id(),
            counter: AtomicU64::new(0),
            _watchdog: watchdog,
        })
    }
}

/// Where the cluster lives and how to run its programs.
#[derive(Clone)]
struct Layout {
    /// The temp dir: socket, log, and `data/`.
    dir: PathBuf,
    data_dir: PathBuf,
    bin_dir: PathBuf,
    /// Run the server programs as `postgres` (we are root).
    as_postgres: bool,
}

impl Layout {
    fn log_file(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// `bin_dir/program`, through `runuser -u postgres --` when root.
    fn command(&self, program: &str) -> Command {
        let [first, rest @ ..] = &self.command_line(program)[..] else {
            unreachable!("a command line has a program");
        };
        let mut cmd = Command::new(first);
        cmd.args(rest).current_dir(&self.dir).stdin(Stdio::null());
        cmd
    }

    fn command_line(&self, program: &str) -> Vec<String> {
        let path = self.bin_dir.join(program).display().to_string();
        if self.as_postgres {
            vec![
                "runuser".into(),
                "-u".into(),
                SUPERUSER.into(),
                "--".into(),
                path,
            ]
        } else {
            vec![path]
        }
    }

    fn stop_line(&self) -> Vec<String> {
        let mut line = self.command_line("pg_ctl");
        line.extend([
            "-D".into(),
            self.data_dir.display().to_string(),
            "-m".into(),
            "immediate".into(),
            "-w".into(),
            "stop".into(),
        ]);
        line
    }

    /// Stops the server (if running) and removes the dir.
    fn stop(&self) {
        if self.data_dir.join("postmaster.pid").exists() {
            let mut line = self.stop_line().into_iter();
            if let Some(program) = line.next() {
                let _ = Command::new(program)
                    .args(line)
                    .current_dir(&self.dir)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }

    /// `sh` waiting for EOF on its stdin, then stopping the server and removing the
    /// dir; in its own process group so Ctrl-C on the test run does not reach it.
    fn spawn_watchdog(&self) -> Result<ChildStdin> {
        let script = r#"cat >/dev/null 2>&1; "$@" >/dev/null 2>&1; rm -rf -- "$WARDEN_PG_DIR""#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("warden-pg-watchdog")
            .args(self.stop_line())
            .env("WARDEN_PG_DIR", &self.dir)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting the cluster's watchdog")?;
        child.stdin.take().context("the watchdog has no stdin")
    }
}

extern "C" fn stop_at_exit() {
    if let Some(Ok(cluster)) = CLUSTER.get() {
        // A forked child that exits must not stop its parent's cluster.
        if cluster.owner_pid == std::process::id() {
            cluster.layout.stop();
        }
    }
}

/// Creates the template database with the extensions; returns their names.
fn setup_template(layout: &Layout, port: u16, qualstats: bool) -> Result<Vec<String>> {
    let psql = |db: &str, sql: &str| -> Result<String> {
        let out = Command::new(layout.bin_dir.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&layout.dir)
            .args([
                "-p",
                &port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                db,
                "-c",
                sql,
            ])
            .current_dir(&layout.dir)
            .stdin(Stdio::null())
            .output()
            .context("running psql")?;
        if !out.status.success() {
            bail!(
                "psql -c {sql:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let available = psql(
        "postgres",
        "SELECT name FROM pg_available_extensions ORDER BY name",
    )?;
    let available: Vec<&str> = available.lines().map(str::trim).collect();
    let extensions: Vec<String> = WANTED_EXTENSIONS
        .iter()
        .filter(|e| available.contains(e))
        // pg_qualstats only works when preloaded.
        .filter(|e| **e != "pg_qualstats" || qualstats)
        .map(|e| e.to_string())
        .collect();
    if !extensions.iter().any(|e| e == "pg_stat_statements") {
        bail!("the pg_stat_statements extension is not available (postgresql-contrib?)");
    }
    psql("postgres", &format!("CREATE DATABASE {TEMPLATE_DB}"))?;
    let create: String = extensions
        .iter()
        .map(|e| format!("CREATE EXTENSION {e};"))
        .collect();
    psql(TEMPLATE_DB, &create)?;
    psql(
        "postgres",
        &format!("ALTER DATABASE {TEMPLATE_DB} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"),
    )?;
    Ok(extensions)
}

/// Adds o+x to every parent of `dir` that lacks it, so `postgres` can reach `dir`.
fn make_traversable(dir: &Path) -> Result<()> {
    for parent in dir.ancestors().skip(1) {
        let mode = fs::metadata(parent)
            .with_context(|| format!("stat {}", parent.display()))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            eprintln!(
                "warden_tests::pg: adding o+x to {} so user postgres can reach the cluster",
                parent.display()
            );
            fs::set_permissions(parent, fs::Permissions::from_mode(mode | 0o001))
                .with_context(|| format!("chmod o+x {}", parent.display()))?;
        }
    }
    Ok(())
}

/// `id -u postgres` / `id -g postgres`.
fn id_of(flag: &str) -> Result<u32> {
    let out = Command::new("id")
        .args([flag, SUPERUSER])
        .output()
        .context("running id")?;
    if !out.status.success() {
        bail!("there is no `{SUPERUSER}` user (is postgresql-15 installed?)");
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("parsing the output of id")
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")
        .context("probing for a free port")?
        .local_addr()?
        .port())
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

/// Flushes this backend's pending statistics, then resets the database's
/// counters (`pg_stat_reset`): what ran before (a seed's inserts) does not
/// count as the workload's writes or scans.
pub async fn reset_statistics(conn: &mut sqlx::PgConnection) {
    sqlx::raw_sql("SELECT pg_stat_force_next_flush()")
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("pg_stat_force_next_flush: {e}"));
    sqlx::raw_sql("SELECT pg_stat_reset()")
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("pg_stat_reset: {e}"));
}

/// Runs `statement` `runs` times under `EXPLAIN (ANALYZE, BUFFERS)`: the
/// median execution time in ms, and the shared buffers (hit + read) the
/// last run touched.
pub async fn measure_execution(
    conn: &mut sqlx::PgConnection,
    statement: &str,
    runs: usize,
) -> (f64, i64) {
    let mut times = Vec::new();
    let mut buffers = 0;
    for _ in 0..runs.max(1) {
        let (plan,): (serde_json::Value,) = sqlx::query_as(&format!(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}"
        ))
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
        let top = &plan[0];
        times.push(top["Execution Time"].as_f64().unwrap_or(f64::NAN));
        let node = &top["Plan"];
        buffers = node["Shared Hit Blocks"].as_i64().unwrap_or(0)
            + node["Shared Read Blocks"].as_i64().unwrap_or(0);
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], buffers)
}
