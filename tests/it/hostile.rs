//! Hostile guests: each ends with a clear status, and a normal plugin runs
//! fine right after in the same agent.

use crate::world::{World, error_of, invoke};
use std::time::{Duration, Instant};
use warden::runs::{Blame, RunStatus};

const LIMITS: &str = "max_runtime = \"2s\"\nmemory = \"32MiB\"";

fn world() -> World {
    let mut w = World::new()
        .sqlite_target("db", "db.sqlite")
        .fixture("noop");
    for f in ["spin", "membomb", "recurse", "panic", "hostfile"] {
        w = w.fixture(f).grant(f, "db", &["read"], LIMITS);
    }
    // The flood is about caps, not speed: a debug build of the host is slow.
    w = w
        .fixture("flood")
        .grant("flood", "db", &["read"], "max_runtime = \"120s\"");
    w.grant("noop", "db", &["read"], LIMITS)
}

async fn noop_still_works(agent: &warden::agent::Agent) {
    let r = invoke(agent, "noop", "db", &[], false).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert_eq!(r.report.unwrap().summary, "noop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_is_stopped_at_the_deadline() {
    let w = world();
    let agent = w.agent().await;
    let t = Instant::now();
    let r = invoke(&agent, "spin", "db", &[], false).await;
    assert_eq!(r.status, RunStatus::TimedOut, "{r:?}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    let e = r.error.clone().unwrap();
    assert_eq!(e.blame, Blame::Guest);
    assert!(e.message.contains("max_runtime of 2s"), "{}", e.message);
    noop_still_works(&agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_fails_at_the_limit() {
    let w = world();
    let agent = w.agent().await;
    let r = invoke(&agent, "membomb", "db", &[], false).await;
    assert_eq!(r.status, RunStatus::LimitExceeded, "{r:?}");
    assert!(
        error_of(&r).contains("memory limit of 32.0 MiB"),
        "{}",
        error_of(&r)
    );
    noop_still_works(&agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_traps_as_stack_overflow() {
    let w = world();
    let agent = w.agent().await;
    let r = invoke(&agent, "recurse", "db", &[], false).await;
    assert_eq!(r.status, RunStatus::Trapped, "{r:?}");
    assert!(error_of(&r).contains("stack overflow"), "{}", error_of(&r));
    noop_still_works(&agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_traps_with_its_message() {
    let w = world();
    let agent = w.agent().await;
    let r = invoke(&agent, "panic", "db", &[], false).await;
    assert_eq!(r.status, RunStatus::Trapped, "{r:?}");
    assert!(
        error_of(&r).contains("fixture panic: boom"),
        "{}",
        error_of(&r)
    );
    noop_still_works(&agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_flood_is_capped() {
    let w = world();
    let agent = w.agent().await;
    let r = invoke(&agent, "flood", "db", &[("mode", "log")], false).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    // 100,000 lines of 1 KiB: the byte cap keeps the first 256 KiB.
    assert_eq!(r.logs.len() as u64 + r.logs_dropped, 100_000);
    let bytes: usize = r.logs.iter().map(|l| l.message.len()).sum();
    assert!(bytes <= warden::host::log::MAX_BYTES + warden::host::log::MAX_LINE);
    assert!(r.logs.len() >= 200, "kept {}", r.logs.len());
    assert!(r.logs[0].message.starts_with("flood line 000000"));
    let stored = agent.store.get(&r.id).await.unwrap().unwrap();
    assert!(serde_json::to_vec(&stored).unwrap().len() < 1 << 20);
    noop_still_works(&agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_report_is_capped() {
    let w = world();
    let agent = w.agent().await;
    let r = invoke(&agent, "flood", "db", &[("mode", "report")], false).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    let report = r.report.clone().unwrap();
    assert!(report.findings.len() <= warden::runtime::report::MAX_ITEMS + 1);
    let last = report.findings.last().unwrap();
    assert_eq!(last.title, "report truncated by the host");
    assert!(last.detail.contains("20000 findings"), "{}", last.detail);
    let size = serde_json::to_vec(&r).unwrap().len();
    assert!(size < 2 << 20, "record is {size} bytes");
    noop_still_works(&agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_files_and_environment_are_out_of_reach() {
    let w = world();
    let agent = w.agent().await;
    let r = invoke(&agent, "hostfile", "db", &[], false).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    let summary = r.report.clone().unwrap().summary;
    assert!(summary.starts_with("denied:"), "{summary}");
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains("root:x:0:0"), "host file content leaked");
    noop_still_works(&agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_without_a_grant_is_denied_before_it_starts() {
    let w = World::new()
        .sqlite_target("db", "db.sqlite")
        .sqlite_target("other", "other.sqlite")
        .fixture("noop")
        .grant("noop", "db", &["read"], "");
    let agent = w.agent().await;
    let r = invoke(&agent, "noop", "other", &[], false).await;
    assert_eq!(r.status, RunStatus::Denied, "{r:?}");
    assert!(
        error_of(&r).contains("no grant for target `other`"),
        "{}",
        error_of(&r)
    );
    assert!(r.report.is_none());
    noop_still_works(&agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_rejected_with_their_names() {
    let w = World::new()
        .sqlite_target("db", "db.sqlite")
        .fixture("flood")
        .grant("flood", "db", &["read"], "");
    let agent = w.agent().await;
    let r = invoke(&agent, "flood", "db", &[("nope", "1")], false).await;
    assert_eq!(r.status, RunStatus::Rejected, "{r:?}");
    assert!(
        error_of(&r).contains("no parameter `nope`"),
        "{}",
        error_of(&r)
    );
    let r = invoke(&agent, "missing", "db", &[], false).await;
    assert_eq!(r.status, RunStatus::Rejected);
    assert!(error_of(&r).contains("no plugin named `missing`"));
}
