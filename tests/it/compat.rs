//! The contract's compatibility promise: a plugin built against an older
//! minor version of `warden:plugin` keeps loading and running on this host.
//! `tests/fixtures/wit-0.1.0/sqlprobe.wasm` is the `sqlprobe` fixture as
//! built against `warden:plugin@0.1.0` (before `mongo` and `artifacts`
//! were added in 0.1.1); it is kept as a binary on purpose.

use crate::world::{World, error_of, invoke};
use warden::runs::RunStatus;
use warden_tests::repo_root;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_built_against_0_1_0_runs_on_the_0_1_1_host() {
    let old = repo_root().join("tests/fixtures/wit-0.1.0/sqlprobe.wasm");
    let w = World::new()
        .component(&old)
        .sqlite_target("db", "db.sqlite")
        .grant("sqlprobe", "db", &["read"], "");
    create_empty_sqlite(&w.path("db.sqlite")).await;
    let agent = w.agent().await;
    let rec = invoke(
        &agent,
        "sqlprobe",
        "db",
        &[("statement", "SELECT 41 + 1"), ("mode", "query")],
        false,
    )
    .await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{}", error_of(&rec));
    let report = rec.report.unwrap();
    assert!(
        report
            .metrics
            .iter()
            .any(|m| m.name == "first_value" && m.value == 42.0),
        "{:?}",
        report.metrics
    );
}

/// Creates an empty SQLite database file.
async fn create_empty_sqlite(path: &std::path::Path) {
    use sqlx::ConnectOptions as _;
    let conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    drop(conn);
}
