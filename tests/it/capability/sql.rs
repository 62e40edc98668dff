//! `sql.*` without wasm, on a real SQLite file.

use super::load;
use crate::world::World;
use warden::host::bindings::types::{CapabilityClass, Error};
use warden::host::bindings::warden::plugin::sql::{Host as _, Outcome, Value};
use warden::runs::ActionState;

fn world() -> World {
    World::new()
        .sqlite_target("db", "db.sqlite")
        .sqlite_target("other", "other.sqlite")
        .grant("p", "db", &["read", "write", "ddl"], "")
        .grant("reader", "db", &["read"], "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_run_under_the_grant_and_mutations_are_recorded() {
    let w = world();
    let l = load(&w).await;
    let mut run = l.run("p", "db", false);
    let made = run
        .execute(
            "db".into(),
            "CREATE TABLE t (id INTEGER, name TEXT)".into(),
            vec![],
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(made.outcome, Outcome::Executed);
    assert_eq!(made.class, CapabilityClass::Ddl);
    let added = run
        .execute(
            "db".into(),
            "INSERT INTO t VALUES (?, ?)".into(),
            vec![Value::Integer(1), Value::Text("a".into())],
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(added.rows_affected, 1);
    let rows = run
        .query("db".into(), "SELECT name FROM t".into(), vec![], 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rows.rows.len(), 1);
    // A write through `query` is refused, and nothing is recorded for it.
    let Err(Error::InvalidInput(m)) = run
        .query("db".into(), "DELETE FROM t".into(), vec![], 0)
        .await
        .unwrap()
    else {
        panic!("a write through query is invalid input");
    };
    assert!(m.contains("query runs reads only"), "{m}");
    let effects = run.finish().await;
    let recorded: Vec<(&str, ActionState)> = effects
        .actions
        .iter()
        .map(|a| (a.statement.as_str(), a.state))
        .collect();
    assert_eq!(
        recorded,
        [
            (
                "CREATE TABLE t (id INTEGER, name TEXT)",
                ActionState::Executed
            ),
            ("INSERT INTO t VALUES (?, ?)", ActionState::Executed),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_plans_and_a_read_grant_refuses() {
    let w = world();
    let l = load(&w).await;
    let mut dry = l.run("p", "db", true);
    let planned = dry
        .execute("db".into(), "CREATE TABLE t (id INTEGER)".into(), vec![])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(planned.outcome, Outcome::Planned);
    let effects = dry.finish().await;
    assert_eq!(effects.actions.len(), 1);
    assert_eq!(effects.actions[0].state, ActionState::Planned);

    // The dry run made no table: a real read finds none.
    let mut reader = l.run("reader", "db", false);
    let missing = reader
        .query("db".into(), "SELECT * FROM t".into(), vec![], 0)
        .await
        .unwrap();
    assert!(
        matches!(&missing, Err(Error::TargetError(d)) if d.message.contains("no such table")),
        "{missing:?}"
    );
    for (target, statement, what) in [
        (
            "db",
            "CREATE TABLE u (id INTEGER)",
            "is not granted `ddl` on target `db`",
        ),
        ("other", "SELECT 1", "has no grant for target `other`"),
        ("nowhere", "SELECT 1", "no target named `nowhere`"),
    ] {
        let refused = reader
            .execute(target.into(), statement.into(), vec![])
            .await
            .unwrap();
        assert!(
            matches!(&refused, Err(Error::AccessDenied(m)) if m.contains(what)),
            "{target} {statement}: {refused:?}"
        );
    }
    assert!(reader.finish().await.actions.is_empty());
}
