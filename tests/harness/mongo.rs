//! A throwaway MongoDB-wire server for the integration tests: SecantusDB's
//! `secantusd-rs`, or its slower Python build `secantusd-py` (same engine). It is
//! GPL-2.0-only, so it only ever runs as a separate program, never linked.
//!
//! [`server()`] starts one server per test process, lazily, on first use; every test
//! then takes a database name of its own from [`MongoServer::create_database`]
//! (MongoDB creates a database on its first write).
//!
//! [`start_owned()`] starts a server of the caller's own, for tests that stop or kill
//! it ([`MongoServer::kill`]: "the connection fails mid-dump"): it has its own temp
//! dir and is stopped (SIGTERM, SIGKILL after [`STOP_GRACE`]) and removed when the
//! value is dropped.
//!
//! - Storage, an empty config file (so no `secantusd.toml` is picked up from `~` or
//!   `/etc`) and the server log (`server.log`, stdout and stderr) live in a fresh temp
//!   dir (`$TMPDIR/warden-mongo-*`). The server binds `127.0.0.1:0` itself and the
//!   port is read from its `listening on 127.0.0.1:PORT` line, so no port race.
//! - It advertises a single-node replica set; the URLs carry `directConnection=true`,
//!   which works the same against a standalone or replica-set `mongod`.
//! - The shared server is stopped when the test process exits (`atexit`: SIGTERM,
//!   SIGKILL after [`STOP_GRACE`]) and its dir removed; an owned one when it is
//!   dropped. Every server is started from a thread that lives as long as the server
//!   (the process, for the shared one), with `PR_SET_PDEATHSIG` = SIGKILL, so it dies
//!   with a killed test process too; a watchdog process then removes the dir.
//!
//! Which program runs: `WARDEN_TEST_MONGOD` (`cargo xtask test` sets it), else the
//! builds `cargo xtask test` caches under `$HOME/.cache/warden/tools/`:
//! `secantus-mdb-0.5.3-beta.196/bin/secantusd-rs` first, then the venv
//! `secantusdb-py-0.7.0b3/bin/secantusd-py`. Keep these names in step with
//! `xtask/src/mongo.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::{sanitize, tail};
use std::fs::{self, File};
use std::io::Write as _;
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};

/// `secantus-mdb` on crates.io, whose binary is `secantusd-rs`.
pub const RS_VERSION: &str = "0.5.3-beta.196";
/// `SecantusDB` on PyPI, whose script is `secantusd-py`.
pub const PY_VERSION: &str = "0.7.0b3";
/// Overrides the server program.
pub const ENV_VAR: &str = "WARDEN_TEST_MONGOD";
/// How long the server may take to print its port.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the server may take to stop after SIGTERM before it gets SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// Lines of the server log quoted in a panic message.
const LOG_TAIL_LINES: usize = 40;

static SERVER: OnceLock<Result<MongoServer, String>> = OnceLock::new();

/// The test process's MongoDB server, started on first use. Panics (failing the
/// calling test) with the reason, including the tail of the server log, when it
/// cannot start.
pub fn server() -> &'static MongoServer {
    let started = SERVER.get_or_init(|| {
        let server = MongoServer::start(false).map_err(|err| format!("{err:#}"))?;
        // SAFETY: `stop_at_exit` is an `extern "C" fn()` that does not unwind.
        if unsafe { libc::atexit(stop_at_exit) } != 0 {
            eprintln!("warden_tests::mongo: atexit failed; the server dies with the process");
        }
        Ok(server)
    });
    match started {
        Ok(server) => server,
        Err(err) => panic!("the MongoDB test server could not start: {err}"),
    }
}

/// A server of the caller's own (see [`MongoServer::start_owned`]): stopped and
/// removed when dropped. Panics with the reason when it cannot start.
pub fn start_owned() -> MongoServer {
    MongoServer::start_owned()
}

/// A database name reserved for one test.
#[derive(Debug, Clone)]
pub struct TestMongoDb {
    pub name: String,
    /// `mongodb://127.0.0.1:PORT/NAME?directConnection=true`.
    pub url: String,
}

/// A running throwaway server. See the module documentation.
pub struct MongoServer {
    dir: PathBuf,
    program: PathBuf,
    flavour: String,
    port: u16,
    started_in: Duration,
    owner_pid: u32,
    counter: AtomicU64,
    child: Mutex<Child>,
    /// The write end of the watchdog's stdin: `stopped` when the atexit handler (or
    /// `Drop`) has done its work, EOF alone when this process died without it.
    watchdog: Mutex<Option<ChildStdin>>,
    /// Stopped and removed on drop (false for the shared [`server()`]).
    owned: bool,
    /// Keeps the thread that started the server (its `PR_SET_PDEATHSIG` parent)
    /// alive; dropped after the server has stopped, which ends the thread.
    _parent: mpsc::Sender<()>,
}

impl MongoServer {
    /// Starts a server of the caller's own, in a temp dir of its own, separate from
    /// the shared [`server()`]: stopped (SIGTERM, SIGKILL after [`STOP_GRACE`]) and
    /// its dir removed when it is dropped. For fault tests: [`MongoServer::kill`].
    /// Panics with the reason, including the tail of the server log, when it cannot
    /// start. It blocks until the server listens (a blocking task in async code).
    pub fn start_owned() -> MongoServer {
        MongoServer::try_start_owned()
            .unwrap_or_else(|err| panic!("an owned MongoDB test server could not start: {err:#}"))
    }

    /// [`MongoServer::start_owned`], with the reason as an error.
    pub fn try_start_owned() -> Result<MongoServer> {
        MongoServer::start(true)
    }

    /// SIGKILL now, and reap it: the server is gone without a goodbye, and every
    /// connection to it fails (for fault tests: "the connection fails mid-dump").
    /// Its dir, with the log, stays until the value is dropped. Does nothing when it
    /// is not running.
    pub fn kill(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(PoisonError::into_inner);
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// True while the server process runs (false after [`MongoServer::kill`], or when
    /// it died).
    pub fn is_running(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        matches!(child.try_wait(), Ok(None))
    }

    /// The server's temp dir (storage, config, `server.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `mongodb://127.0.0.1:PORT/?directConnection=true`.
    pub fn url(&self) -> String {
        self.url_for("")
    }

    /// The URL with database `db` in the path (the driver's default database).
    pub fn url_for(&self, db: &str) -> String {
        format!(
            "mongodb://127.0.0.1:{}/{db}?directConnection=true",
            self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `secantusd-rs 0.5.3-beta.196` or `secantusd-py 0.7.0b3` (the program's name
    /// alone when its version is not known from where it lives).
    pub fn flavour(&self) -> &str {
        &self.flavour
    }

    /// The server program.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .id()
    }

    /// How long starting the server took (until it printed its port).
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(log_file(&self.dir)).unwrap_or_default()
    }

    /// The last lines of the server log under a heading, for a failing test's message.
    pub fn log_tail(&self) -> String {
        log_tail_section(&self.dir)
    }

    /// A client for [`MongoServer::url`]. Panics when the URL does not parse.
    pub async fn client(&self) -> mongodb::Client {
        let url = self.url();
        mongodb::Client::with_uri_str(&url)
            .await
            .unwrap_or_else(|err| panic!("a MongoDB client for {url}: {err}"))
    }

    /// A database name made of `hint` (sanitized), a counter and the process id, unique
    /// in this process's server; the database itself appears on its first write.
    pub async fn create_database(&self, hint: &str) -> TestMongoDb {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}_{n}_{}", sanitize(hint), std::process::id());
        TestMongoDb {
            url: self.url_for(&name),
            name,
        }
    }

    fn start(owned: bool) -> Result<MongoServer> {
        let started = Instant::now();
        let (program, flavour) = find_program()?;
        let dir = tempfile::Builder::new()
            .prefix("warden-mongo-")
            .tempdir()
            .context("creating the server's temp dir")?
            .keep();
        let result = Self::start_in(&dir, program, flavour, started, owned);
        if result.is_err() {
            let _ = fs::remove_dir_all(&dir);
        }
        result
    }

    fn start_in(
        dir: &Path,
        program: PathBuf,
        flavour: String,
        started: Instant,
        owned: bool,
    ) -> Result<MongoServer> {
        let config = dir.join("secantusd.toml");
        fs::write(
            &config,
            "# empty: the built-in defaults and the flags apply\n",
        )
        .context("writing the config file")?;
        let storage = dir.join("data");
        let log = File::create(log_file(dir)).context("creating the server log")?;
        let mut cmd = Command::new(&program);
        cmd.arg("--config")
            .arg(&config)
            .args(["--host", "127.0.0.1", "--port", "0", "--storage-path"])
            .arg(&storage)
            .args(["--cache-size", "256M"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("cloning the log file handle")?)
            .stderr(log);
        let line = format!("{cmd:?}");
        let (mut child, parent) = spawn_from_lasting_thread(cmd)
            .with_context(|| format!("could not start {flavour} ({line})"))?;

        let port = match wait_for_port(&mut child, dir) {
            Ok(port) => port,
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{flavour} did not start ({err:#}): {line}\n{}",
                    log_tail_section(dir)
                );
            }
        };
        let watchdog = match spawn_watchdog(child.id(), dir) {
            Ok(watchdog) => watchdog,
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err);
            }
        };
        Ok(MongoServer {
            dir: dir.to_path_buf(),
            program,
            flavour,
            port,
            started_in: started.elapsed(),
            owner_pid: std::process::id(),
            counter: AtomicU64::new(0),
            child: Mutex::new(child),
            watchdog: Mutex::new(Some(watchdog)),
            owned,
            _parent: parent,
        })
    }

    /// SIGTERM, SIGKILL after [`STOP_GRACE`], reap, remove the dir, tell the watchdog.
    fn stop(&self) {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(child.try_wait(), Ok(None)) {
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: kill has no memory-safety preconditions; the pid is our
                // unreaped child, so it cannot name another process.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let deadline = Instant::now() + STOP_GRACE;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(child.try_wait(), Ok(None)) {
                eprintln!(
                    "warden_tests::mongo: {} still running {STOP_GRACE:?} after SIGTERM, killing it",
                    self.flavour
                );
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
        let watchdog = self
            .watchdog
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut watchdog) = watchdog {
            let _ = watchdog.write_all(b"stopped\n");
        }
    }
}

impl Drop for MongoServer {
    /// An owned server is stopped and its dir removed; the shared one lives in a
    /// static and is stopped at exit instead.
    fn drop(&mut self) {
        // A forked child must not stop its parent's server.
        if self.owned && self.owner_pid == std::process::id() {
            self.stop();
        }
    }
}

extern "C" fn stop_at_exit() {
    if let Some(Ok(server)) = SERVER.get() {
        // A forked child that exits must not stop its parent's server.
        if server.owner_pid == std::process::id() {
            server.stop();
        }
    }
}

/// The program to run and its flavour: `WARDEN_TEST_MONGOD`, else the cached builds.
fn find_program() -> Result<(PathBuf, String)> {
    if let Some(program) = std::env::var_os(ENV_VAR) {
        let program = PathBuf::from(program);
        if !program.is_file() {
            bail!("{ENV_VAR}={} is not a file", program.display());
        }
        let flavour = flavour_of(&program);
        return Ok((program, flavour));
    }
    let tools = tools_dir()?;
    let candidates = [
        tools
            .join(format!("secantus-mdb-{RS_VERSION}"))
            .join("bin/secantusd-rs"),
        tools
            .join(format!("secantusdb-py-{PY_VERSION}"))
            .join("bin/secantusd-py"),
    ];
    match candidates.iter().find(|c| c.is_file()) {
        Some(program) => Ok((program.clone(), flavour_of(program))),
        None => bail!(
            "no MongoDB test server: neither {} nor {} exists; run `cargo xtask test` once \
             (it installs one there) or set {ENV_VAR} to a secantusd-rs / secantusd-py",
            candidates[0].display(),
            candidates[1].display()
        ),
    }
}

/// `$HOME/.cache/warden/tools`.
fn tools_dir() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set"))?;
    Ok(PathBuf::from(home).join(".cache/warden/tools"))
}

/// `secantusd-rs 0.5.3-beta.196` for `.../secantus-mdb-0.5.3-beta.196/bin/secantusd-rs`
/// (and the same for `secantusdb-py-*`); the file name alone elsewhere.
fn flavour_of(program: &Path) -> String {
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let install_dir = program
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let version = match name.as_str() {
        "secantusd-rs" => install_dir.strip_prefix("secantus-mdb-"),
        "secantusd-py" => install_dir.strip_prefix("secantusdb-py-"),
        _ => None,
    };
    match version {
        Some(version) => format!("{name} {version}"),
        None => name,
    }
}

/// Spawns `cmd` from a thread of its own, with `PR_SET_PDEATHSIG` = SIGKILL: the
/// signal comes when the *thread* that forked the child ends, so a test's own thread
/// (which ends with the test) must not fork it. The thread waits until the returned
/// sender is dropped (for the shared server: never; for an owned one: after it has
/// stopped), or until the process exits.
fn spawn_from_lasting_thread(mut cmd: Command) -> Result<(Child, mpsc::Sender<()>)> {
    let parent = std::process::id();
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) run between fork
    // and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before prctl took effect.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (sender, receiver) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("warden-mongo-parent".into())
        .spawn(move || {
            let _ = sender.send(cmd.spawn());
            // Returns when `release` is dropped (nothing is ever sent).
            let _ = released.recv();
        })
        .context("starting the server's parent thread")?;
    let child = receiver
        .recv()
        .context("the server's parent thread ended")?
        .map_err(anyhow::Error::from)?;
    Ok((child, release))
}

/// Waits for `listening on 127.0.0.1:PORT` in the log, then checks the port accepts.
fn wait_for_port(child: &mut Child, dir: &Path) -> Result<u16> {
    let start = Instant::now();
    let mut interval = Duration::from_millis(5);
    loop {
        let log = fs::read_to_string(log_file(dir)).unwrap_or_default();
        if let Some(port) = listening_port(&log) {
            TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(5))
                .with_context(|| {
                    format!("it said it listens on port {port}, but connecting failed")
                })?;
            return Ok(port);
        }
        if let Some(status) = child.try_wait().context("polling the server")? {
            bail!("it exited with {status}");
        }
        if start.elapsed() > START_TIMEOUT {
            bail!("it printed no `listening on 127.0.0.1:PORT` line within {START_TIMEOUT:?}");
        }
        std::thread::sleep(interval);
        interval = (interval * 2).min(Duration::from_millis(50));
    }
}

/// The port in the first `listening on HOST:PORT` of the log.
fn listening_port(log: &str) -> Option<u16> {
    log.lines().find_map(|line| {
        let (_, rest) = line.split_once("listening on ")?;
        let address = rest.split_whitespace().next()?;
        let (_, port) = address.rsplit_once(':')?;
        let digits: String = port.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok().filter(|p| *p != 0)
    })
}

/// `sh` waiting on its stdin: on EOF without a `stopped` line (this process died
/// without its exit handlers) it waits up to 5 s for the server to be gone, then
/// removes the dir. In its own process group so Ctrl-C on the test run does not
/// reach it.
fn spawn_watchdog(server_pid: u32, dir: &Path) -> Result<ChildStdin> {
    let script = r#"read -r state; [ "$state" = stopped ] && exit 0
i=0; while kill -0 "$1" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i+1)); done
rm -rf -- "$2""#;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("warden-mongo-watchdog")
        .arg(server_pid.to_string())
        .arg(dir)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("starting the server's watchdog")?;
    child.stdin.take().context("the watchdog has no stdin")
}

fn log_file(dir: &Path) -> PathBuf {
    dir.join("server.log")
}

fn log_tail_section(dir: &Path) -> String {
    let file = log_file(dir);
    let log = fs::read_to_string(&file).unwrap_or_default();
    format!(
        "--- {} (tail) ---\n{}",
        file.display(),
        tail(&log, LOG_TAIL_LINES)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_listening_line() {
        let py = "2026-11-22 03:57:39,205 INFO secantus.cli: loaded config from x.toml\n\
                  2026-11-22 03:57:39,505 INFO secantus.server: secantus listening on 127.0.0.1:44883\n";
        assert_eq!(listening_port(py), Some(44883));
        assert_eq!(listening_port("listening on 127.0.0.1:5"), Some(5));
        assert_eq!(listening_port("listening on 127.0.0.1:0"), None);
        assert_eq!(listening_port("starting"), None);
    }

    #[test]
    fn flavour_from_the_cache_layout() {
        let rs = Path::new("/h/.cache/warden/tools/secantus-mdb-0.5.3-beta.196/bin/secantusd-rs");
        assert_eq!(flavour_of(rs), "secantusd-rs 0.5.3-beta.196");
        let py = Path::new("/h/.cache/warden/tools/secantusdb-py-0.7.0b3/bin/secantusd-py");
        assert_eq!(flavour_of(py), "secantusd-py 0.7.0b3");
        assert_eq!(
            flavour_of(Path::new("/usr/bin/secantusd-rs")),
            "secantusd-rs"
        );
    }
}
