//! The runbook step gate, enforced by the host: once a run has read a
//! runbook, it changes nothing outside an action that
//! `runbooks.begin-action` opened, whatever capability it changes it
//! with, and a refused action closes the gate.

use super::{Loaded, load};
use crate::world::World;
use std::sync::Arc;
use warden::host::HostState;
use warden::host::bindings::types::Error;
use warden::host::bindings::warden::plugin::artifacts as wit;
use warden::host::bindings::warden::plugin::runbooks::Host as _;
use warden::host::bindings::warden::plugin::sql::Outcome;
use warden::runbook::RunbookSet;
use warden::runs::ActionState;

const RUNBOOK: &str = r#"[runbook]
name = "tidy"
target_kind = "sqlite"

[[step]]
id = "look"
kind = "query"
sql = "SELECT 1"

[[step]]
id = "free"
kind = "action"
sql = "DELETE FROM t"
requires_approval = false

[[step]]
id = "guarded"
kind = "action"
sql = "DROP TABLE t"
"#;

fn world() -> World {
    World::new()
        .sqlite_target("db", "db.sqlite")
        .store("local")
        .grant(
            "runbook",
            "db",
            &["read", "write", "ddl"],
            "artifacts = [\"local\"]",
        )
}

/// A run of the `runbook` plugin with the runbook loaded, and a table to
/// change (made by another run, which reads no runbook).
async fn run(w: &World, l: &Loaded, dry_run: bool) -> HostState {
    let mut setup = l.run("runbook", "db", false);
    setup
        .sql_execute("db", "CREATE TABLE IF NOT EXISTS t (id INTEGER)", vec![])
        .await
        .unwrap();
    setup.finish().await;
    let file = w.path("tidy.toml");
    std::fs::write(&file, RUNBOOK).unwrap();
    let set = RunbookSet::load_files(&[file]).unwrap_or_else(|d| panic!("{d}"));
    let mut env = l.env("runbook", "db", dry_run);
    env.runbooks = Arc::new(set);
    HostState::for_test(Arc::new(env))
}

fn outside(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::AccessDenied(m)) if m.contains("only inside a runbook action") => m,
        other => panic!("expected the runbook gate's access-denied, got {other:?}"),
    }
}

/// Every kind of change a runbook run could make, each tried outside an
/// action: SQL writes and DDL, an artifact dump and (in a real run) a
/// deletion.
async fn every_change_is_refused(run: &mut HostState) -> Vec<String> {
    let mut refused = vec![
        outside(run.sql_execute("db", "DELETE FROM t", vec![]).await),
        outside(
            run.sql_execute("db", "INSERT INTO t VALUES (1)", vec![])
                .await,
        ),
        outside(run.sql_execute("db", "DROP TABLE t", vec![]).await),
        outside(
            run.artifacts_dump("db", "local", "x", wit::DumpOptions::Sqlite)
                .await,
        ),
    ];
    // A dry run first says whether there is anything to delete.
    if !run.env().unwrap().dry_run() {
        refused.push(outside(run.artifacts_delete("db", "local", "x").await));
    }
    refused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_read_a_runbook_changes_nothing_outside_an_action() {
    let w = world();
    let l = load(&w).await;
    let mut run = run(&w, &l, false).await;
    // Before it reads a runbook, a run is held only to its grant.
    run.sql_execute("db", "INSERT INTO t VALUES (1)", vec![])
        .await
        .unwrap();
    run.get("tidy".into()).await.unwrap().unwrap();
    let refused = every_change_is_refused(&mut run).await;
    assert!(
        refused[0].contains("no runbook action was opened"),
        "{}",
        refused[0]
    );
    // Reads stay free.
    run.sql_query("db", "SELECT count(*) FROM t", vec![], 0)
        .await
        .unwrap();
    // An opened action lets its change through.
    run.begin_action("tidy".into(), "free".into())
        .await
        .unwrap()
        .unwrap();
    let done = run
        .sql_execute("db", "DELETE FROM t", vec![])
        .await
        .unwrap();
    assert_eq!(done.outcome, Outcome::Executed);
    assert_eq!(done.rows_affected, 1);
    // A refused action (approval needed, the run was not approved)
    // closes the gate again, naming the step.
    let denied = run
        .begin_action("tidy".into(), "guarded".into())
        .await
        .unwrap();
    assert!(matches!(denied, Err(Error::AccessDenied(_))), "{denied:?}");
    let refused = every_change_is_refused(&mut run).await;
    assert!(
        refused[2].contains("step `guarded` of runbook `tidy`) was refused"),
        "{}",
        refused[2]
    );
    let effects = run.finish().await;
    let states: Vec<ActionState> = effects.actions.iter().map(|a| a.state).collect();
    let refused_count = states
        .iter()
        .filter(|s| **s == ActionState::Refused)
        .count();
    assert_eq!(refused_count, 10, "{:?}", effects.actions);
    assert_eq!(
        states
            .iter()
            .filter(|s| **s == ActionState::Executed)
            .count(),
        2,
        "{:?}",
        effects.actions
    );
    // The table is still there: the DROP never ran.
    let mut check = l.run("runbook", "db", false);
    check
        .sql_query("db", "SELECT count(*) FROM t", vec![], 0)
        .await
        .unwrap();
    check.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_that_read_a_runbook_plans_only_inside_an_action() {
    let w = world();
    let l = load(&w).await;
    let mut run = run(&w, &l, true).await;
    run.for_alert(vec![]).await.unwrap();
    run.get("tidy".into()).await.unwrap().unwrap();
    every_change_is_refused(&mut run).await;
    // In a dry run even a step that needs approval opens: its change is
    // planned, not made.
    run.begin_action("tidy".into(), "guarded".into())
        .await
        .unwrap()
        .unwrap();
    let planned = run.sql_execute("db", "DROP TABLE t", vec![]).await.unwrap();
    assert_eq!(planned.outcome, Outcome::Planned);
    let effects = run.finish().await;
    let last = effects.actions.last().unwrap();
    assert_eq!(last.state, ActionState::Planned, "{:?}", effects.actions);
}
