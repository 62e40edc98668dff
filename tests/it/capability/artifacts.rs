//! `artifacts.*` without wasm: a SQLite dump into a local store.

use super::load;
use crate::world::World;
use warden::host::bindings::types::Error;
use warden::host::bindings::warden::plugin::artifacts as wit;
use warden::runs::ActionState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_lands_in_the_granted_store_and_verifies() {
    let w = World::new()
        .sqlite_target("db", "db.sqlite")
        .store("local")
        .store("offsite")
        .grant("p", "db", &["read"], "artifacts = [\"local\"]");
    let l = load(&w).await;
    let mut run = l.run("p", "db", false);
    let dumped = run
        .artifacts_dump("db", "local", "nightly", wit::DumpOptions::Sqlite)
        .await
        .unwrap();
    assert_eq!(dumped.outcome, wit::Outcome::Executed);
    let artifact = dumped.artifact.unwrap();
    assert!(artifact.name.starts_with("nightly"), "{}", artifact.name);
    let listed = run.artifacts_list("db", "local", "").await.unwrap();
    assert_eq!(listed.len(), 1);
    let verified = run
        .artifacts_verify("db", "local", &artifact.name)
        .await
        .unwrap();
    assert!(verified.ok, "{:?}", verified.problems);
    let refused = run
        .artifacts_dump("db", "offsite", "nightly", wit::DumpOptions::Sqlite)
        .await;
    assert!(
        matches!(&refused, Err(Error::AccessDenied(m)) if m.contains("add `artifacts = [\"offsite\"]`")),
        "{refused:?}"
    );
    let effects = run.finish().await;
    assert_eq!(effects.actions.len(), 1, "{:?}", effects.actions);
    assert_eq!(effects.actions[0].state, ActionState::Executed);
    assert!(effects.actions[0].statement.contains("into store `local`"));
}
