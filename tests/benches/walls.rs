//! Figures for the sql capability's walls (issue 12), on the harness's
//! PostgreSQL cluster with the `sqlprobe` fixture in an in-process agent:
//!
//! - the agent's peak RSS above idle for a read that selects a 300 MB row
//!   (`SELECT repeat('x', 150000000), repeat('y', 150000000)`) under a grant
//!   with `max_result_bytes = "16MiB"` (target: under 64 MiB), and the same
//!   for SQLite (`zeroblob(300000000)`); the peak is reset before each read
//!   (`/proc/self/clear_refs`), so it is this read's alone;
//! - the time from a statement's deadline (the run's `max_runtime`, the
//!   grant's `statement_timeout` being an hour away) to its backend being
//!   gone from `pg_stat_activity` (target: under 1 s).
//!
//! Prints figures; asserts only correctness (the huge reads return no row,
//! the stopped runs fail), never timing. Run with `cargo xtask bench` or
//! `cargo bench -p warden-tests --bench walls` after `cargo xtask build-plugins`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use sqlx::Connection as _;
use warden::agent::{Agent, RunRequest};
use warden::runs::{RunRecord, RunStatus};
use warden_tests::{fixture_wasm, pg, repo_root};

const RUNS: usize = 5;
const MAX_RUNTIME: Duration = Duration::from_secs(1);

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} not in /proc/self/status"))
}

/// Resets the process's peak RSS to its current RSS.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

async fn install(dir: &std::path::Path, pg_url: &str) -> Agent {
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::copy(fixture_wasm("sqlprobe"), dir.join("plugins/sqlprobe.wasm")).unwrap();
    std::fs::write(dir.join("app.url"), pg_url).unwrap();
    let lite = dir.join("lite.db");
    warden_tests::create_sqlite(&lite, "CREATE TABLE t (x int)").await;
    std::fs::write(
        dir.join("warden.toml"),
        format!(
            "plugin_dir = \"plugins\"\npolicy_dir = \"policies\"\nstate_db = \"state/warden.db\"\n\
             cache_dir = \"{}\"\n\n\
             [[target]]\nname = \"app\"\nkind = \"postgres\"\nurl_file = \"app.url\"\n\n\
             [[target]]\nname = \"big\"\nkind = \"postgres\"\nurl_file = \"app.url\"\n\n\
             [[target]]\nname = \"lite\"\nkind = \"sqlite\"\npath = \"lite.db\"\n",
            repo_root().join("target/bench-component-cache").display(),
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("policies/sqlprobe.toml"),
        format!(
            "[[grant]]\nplugin = \"sqlprobe\"\ntargets = [\"app\", \"lite\"]\n\
             capabilities = [\"read\"]\nmax_result_bytes = \"16MiB\"\n\
             statement_timeout = \"1h\"\nlock_timeout = \"1h\"\nmax_runtime = \"{}ms\"\n\
             memory = \"256MiB\"\n\n\
             [[grant]]\nplugin = \"sqlprobe\"\ntargets = [\"big\"]\n\
             capabilities = [\"read\"]\nmax_result_bytes = \"16MiB\"\nmax_runtime = \"2m\"\n\
             statement_timeout = \"2m\"\nmemory = \"256MiB\"\n",
            MAX_RUNTIME.as_millis()
        ),
    )
    .unwrap();
    match Agent::load(&dir.join("warden.toml")).await {
        Ok(agent) => agent,
        Err(diag) => panic!("the agent did not load:\n{diag}"),
    }
}

async fn read(agent: &Agent, target: &str, statement: &str) -> RunRecord {
    agent
        .invoke(
            RunRequest::manual("sqlprobe", target)
                .param("mode", "query")
                .param("statement", statement),
        )
        .await
        .unwrap()
}

fn summary(rec: &RunRecord) -> String {
    match (&rec.report, &rec.error) {
        (Some(r), _) => r.summary.clone(),
        (None, Some(e)) => e.message.clone(),
        _ => String::new(),
    }
}

/// Peak RSS above the RSS before, in MiB, for one read.
async fn peak_above_idle(agent: &Agent, target: &str, statement: &str) -> (f64, RunRecord) {
    let before = status_kib("VmRSS:");
    reset_peak();
    let rec = read(agent, target, statement).await;
    let peak = status_kib("VmHWM:");
    #[allow(clippy::cast_precision_loss)]
    let mib = peak.saturating_sub(before) as f64 / 1024.0;
    (mib, rec)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cluster = pg::cluster();
    let db = cluster.create_database("walls_bench").await;
    let dir = tempfile::tempdir().unwrap();
    let agent = install(dir.path(), &db.url).await;
    // Warm: the component compiled and instantiated, connections made once.
    for target in ["app", "big", "lite"] {
        let rec = read(&agent, target, "SELECT 1").await;
        assert_eq!(rec.status, RunStatus::Succeeded, "{rec:?}");
    }

    println!("== peak RSS above idle for one read of a 300 MB row, max_result_bytes 16 MiB");
    for (target, statement) in [
        ("big", "SELECT 1"),
        (
            "big",
            "SELECT repeat('x', 150000000), repeat('y', 150000000)",
        ),
        (
            "big",
            "SELECT repeat('x', 1000000) FROM generate_series(1, 300)",
        ),
        ("lite", "SELECT zeroblob(300000000)"),
        ("lite", "SELECT zeroblob(150000000), zeroblob(150000000)"),
    ] {
        let mut worst = 0f64;
        let mut last = None;
        for _ in 0..RUNS {
            let (mib, rec) = peak_above_idle(&agent, target, statement).await;
            worst = worst.max(mib);
            last = Some(rec);
        }
        let rec = last.unwrap();
        println!(
            "  {target:<5} {statement:<60} peak +{worst:>6.1} MiB (worst of {RUNS}; target < 64)  [{:?}: {}]",
            rec.status,
            summary(&rec)
        );
    }

    println!("\n== time from a statement's deadline to its backend being gone");
    let mut probe = sqlx::PgConnection::connect(&db.url).await.unwrap();
    for statement in [
        "SELECT count(*) FROM generate_series(1, 100000000000)",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
    ] {
        let mut figures = Vec::new();
        for _ in 0..RUNS {
            let started = Instant::now();
            let rec = read(&agent, "app", statement).await;
            assert!(
                matches!(rec.status, RunStatus::Failed | RunStatus::TimedOut),
                "{rec:?}"
            );
            loop {
                let left: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                     AND application_name LIKE 'warden/%'",
                )
                .bind(&db.name)
                .fetch_one(&mut probe)
                .await
                .unwrap();
                if left == 0 || started.elapsed() > Duration::from_secs(30) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let after_deadline = started.elapsed().saturating_sub(MAX_RUNTIME);
            figures.push(after_deadline.as_secs_f64() * 1000.0);
        }
        figures.sort_by(f64::total_cmp);
        println!(
            "  {statement:<90} median {:>6.0} ms, worst {:>6.0} ms after the deadline (target < 1000)",
            figures[figures.len() / 2],
            figures[figures.len() - 1]
        );
    }
}
