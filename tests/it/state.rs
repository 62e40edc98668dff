//! Plugin state: kept across runs, committed only by a successful real run.

use crate::world::{World, invoke};
use warden::runs::RunStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_persists_and_failed_or_dry_runs_leave_it_untouched() {
    let w = World::new()
        .sqlite_target("db", "db.sqlite")
        .fixture("stateful")
        .grant("stateful", "db", &["read"], "");
    let agent = w.agent().await;
    let summary = |r: &warden::runs::RunRecord| r.report.as_ref().unwrap().summary.clone();
    let r = invoke(&agent, "stateful", "db", &[], false).await;
    assert_eq!(summary(&r), "counter=1");
    let r = invoke(&agent, "stateful", "db", &[], false).await;
    assert_eq!(summary(&r), "counter=2");
    let r = invoke(&agent, "stateful", "db", &[], true).await;
    assert_eq!(summary(&r), "counter=3", "a dry run sees its own writes");
    let r = invoke(&agent, "stateful", "db", &[("fail", "true")], false).await;
    assert_eq!(r.status, RunStatus::Failed);
    let r = invoke(&agent, "stateful", "db", &[], false).await;
    assert_eq!(
        summary(&r),
        "counter=3",
        "dry and failed runs were not committed"
    );
    assert_eq!(
        agent.store.state_get("stateful", "counter").await.unwrap(),
        Some(b"3".to_vec())
    );
}
