//! `warden_tests`: the shared harness of Warden's integration tests.
//!
//! - [`pg`]: one throwaway PostgreSQL 15 cluster per test process, a fresh database
//!   per test.
//! - [`plugin_wasm`] / [`fixture_wasm`]: the components `cargo xtask build-plugins` made.
//! - [`wait_for`] / [`wait_for_value`]: poll a condition instead of sleeping.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod mongo;
pub mod monitoring;
pub mod otlp;
pub mod pg;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The repository root (the parent of `tests/`).
pub fn repo_root() -> PathBuf {
    let tests_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    tests_dir.parent().map(PathBuf::from).unwrap_or(tests_dir)
}

/// `<repo>/target/plugins/<name>.wasm`, a shipped plugin. Panics when it is missing.
pub fn plugin_wasm(name: &str) -> PathBuf {
    built_component("plugins", name)
}

/// `<repo>/target/plugin-fixtures/<name>.wasm`, a test fixture. Panics when it is missing.
pub fn fixture_wasm(name: &str) -> PathBuf {
    built_component("plugin-fixtures", name)
}

fn built_component(dir: &str, name: &str) -> PathBuf {
    let path = repo_root()
        .join("target")
        .join(dir)
        .join(format!("{name}.wasm"));
    if !path.is_file() {
        panic!(
            "{} not found: run `cargo xtask build-plugins` first",
            path.display()
        );
    }
    path
}

/// Polls `condition` until it returns `true`; panics naming `what` once `deadline`
/// has passed. The first poll is immediate, then the interval grows from 5 ms to 100 ms.
pub async fn wait_for<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for_value(what, deadline, || {
        let fut = condition();
        async move { fut.await.then_some(()) }
    })
    .await
}

/// Polls `probe` until it returns `Some(value)` and returns the value; panics naming
/// `what` once `deadline` has passed.
pub async fn wait_for_value<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let mut interval = Duration::from_millis(5);
    let mut polls = 0u32;
    loop {
        polls += 1;
        if let Some(value) = probe().await {
            return value;
        }
        let elapsed = start.elapsed();
        if elapsed >= deadline {
            panic!("timed out after {elapsed:.2?} ({polls} polls) waiting for {what}");
        }
        tokio::time::sleep(interval.min(deadline - elapsed)).await;
        interval = (interval * 2).min(Duration::from_millis(100));
    }
}

/// The last `lines` lines of `text` (server logs in failure messages).
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A database-name piece from a test's hint: lowercase ASCII letters,
/// digits and `_`, starting with a letter, at most 43 characters.
pub(crate) fn sanitize(hint: &str) -> String {
    let mut name: String = hint
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() { c } else { '_' }
        })
        .take(40)
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "db_");
    }
    name
}

/// The first three fields of `/proc/loadavg`, and the number of CPUs, for
/// a benchmark's report.
pub fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    format!("load average {} on {cpus} CPUs", load.join(" "))
}

/// Creates the SQLite database `path` (if missing) and runs `sql` in it.
pub async fn create_sqlite(path: &Path, sql: &str) {
    use sqlx::Connection as _;
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite:{}?mode=rwc", path.display()))
        .await
        .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    sqlx::raw_sql(sql)
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql} in {}: {e}", path.display()));
    let _ = c.close().await;
}

/// A plain HTTP client for tests (reqwest's TLS needs the provider the
/// agent installs).
pub fn http_client() -> reqwest::Client {
    warden::install_tls_provider();
    reqwest::Client::new()
}
