//! `state.*` without wasm: writes stay in the run until it hands them back.

use super::load;
use crate::world::World;
use warden::host::HostState;
use warden::host::bindings::types::Error;
use warden::host::bindings::warden::plugin::state::Host as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_read_back_in_the_run_and_handed_back_at_its_end() {
    let w = World::new()
        .sqlite_target("db", "db.sqlite")
        .grant("p", "db", &["read"], "");
    let l = load(&w).await;
    l.store
        .state_commit("p", vec![("kept".to_string(), Some(b"old".to_vec()))])
        .await
        .unwrap();
    let mut run = l.run("p", "db", false);
    assert_eq!(
        run.get("kept".into()).await.unwrap().unwrap(),
        Some(b"old".to_vec())
    );
    run.set("a".into(), b"1".to_vec()).await.unwrap().unwrap();
    run.delete("kept".into()).await.unwrap().unwrap();
    assert_eq!(
        run.get("a".into()).await.unwrap().unwrap(),
        Some(b"1".to_vec())
    );
    assert_eq!(run.get("kept".into()).await.unwrap().unwrap(), None);
    let Err(Error::InvalidInput(m)) = run.set(String::new(), b"x".to_vec()).await.unwrap() else {
        panic!("an empty key is invalid input");
    };
    assert!(m.contains("state key must be"), "{m}");
    // Nothing reached the store yet: another plugin's view and the store
    // itself still hold the old value.
    assert_eq!(
        l.store.state_get("p", "kept").await.unwrap(),
        Some(b"old".to_vec())
    );
    let effects = run.finish().await;
    assert_eq!(
        effects.state_writes,
        [
            ("a".to_string(), Some(b"1".to_vec())),
            ("kept".to_string(), None)
        ]
        .into()
    );
    assert!(effects.actions.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_may_not_touch_state() {
    let mut describing = HostState::new(None, 1 << 20);
    let trap = describing.get("a".into()).await.unwrap_err();
    assert_eq!(trap.to_string(), "describe() must not call host functions");
    assert!(describing.finish().await.state_writes.is_empty());
}
