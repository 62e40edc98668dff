//! Missed schedule ticks (issue 13, part 4) across a real stop and restart
//! of the `warden run` binary: each tick that passed while the agent was
//! down is recorded as `missed` with the time it should have run, counted
//! in `warden_runs_total{status="missed"}`, listed by `warden runs list`;
//! `catch_up = "latest"` runs the latest one once; a schedule whose cron
//! changed while the agent was down records none.
//!
//! Wall-clock tolerant: nothing asserts how many ticks passed, only that the
//! missed ones are exactly the cron's ticks between the last one that fired
//! before the stop and the first one that fired after the restart.

use crate::daemon::Proc;
use crate::world::{World, warden_bin};
use chrono::{DateTime, Utc};
use std::time::Duration;
use warden::runs::{DecisionKind, RunRecord, RunStatus, RunStore, Trigger};
use warden_tests::wait_for;

const TICK_SECS: i64 = 2;

fn schedule(cron: &str, catch_up: Option<&str>) -> String {
    let catch_up = catch_up
        .map(|c| format!("catch_up = \"{c}\"\n"))
        .unwrap_or_default();
    format!(
        "[[schedule]]\nname = \"tick\"\nplugin = \"noop\"\ntarget = \"app\"\ncron = \"{cron}\"\n{catch_up}"
    )
}

fn world(catch_up: Option<&str>) -> World {
    let w = World::new()
        .fixture("noop")
        .sqlite_target("app", "app.db")
        .grant("noop", "app", &["read"], "")
        .policy(&schedule("*/2 * * * * *", catch_up))
        .http();
    w.write();
    w
}

fn fired(p: &Proc) -> usize {
    p.log_text().matches("schedule fired").count()
}

/// Starts `warden run` and waits until the schedule has fired `n` times.
async fn run_until_fired(w: &World, n: usize) -> Proc {
    let p = Proc::start(&w.path("warden.toml")).await;
    wait_for("the schedule to fire", Duration::from_secs(60), || async {
        fired(&p) >= n
    })
    .await;
    p
}

async fn records(w: &World) -> Vec<RunRecord> {
    let store = RunStore::open(&w.path("state/warden.db")).await.unwrap();
    let mut list = store.list(100_000).await.unwrap();
    store.close().await;
    list.sort_by_key(|r| (r.scheduled_for, r.requested_at));
    list
}

fn tick_of(r: &RunRecord) -> DateTime<Utc> {
    r.scheduled_for
        .unwrap_or_else(|| panic!("no scheduled_for: {r:#?}"))
}

/// Stops the agent, lets several ticks pass, and starts it again until a
/// tick fires after the restart. Returns the records from before the
/// restart, and the restarted agent.
async fn stop_wait_restart(w: &World, mut first: Proc) -> (Vec<RunRecord>, Proc) {
    assert!(first.term().success());
    let before = records(w).await;
    assert!(
        before.iter().all(|r| r.status != RunStatus::Missed),
        "{before:#?}"
    );
    let last = before.iter().map(tick_of).max().unwrap();
    // At least three ticks pass while the agent is down.
    let resume = last + chrono::Duration::seconds(4 * TICK_SECS + 1);
    while Utc::now() < resume {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let second = run_until_fired(w, 1).await;
    (before, second)
}

/// Checks the missed records: the cron's ticks, 2 s apart, exactly between
/// the last tick before the stop and the first scheduled after the restart.
fn check_missed(before: &[RunRecord], after: &[RunRecord]) -> Vec<RunRecord> {
    let last_before = before.iter().map(tick_of).max().unwrap();
    let missed: Vec<RunRecord> = after
        .iter()
        .filter(|r| r.status == RunStatus::Missed)
        .cloned()
        .collect();
    assert!(missed.len() >= 3, "{missed:#?}");
    for (i, r) in missed.iter().enumerate() {
        assert_eq!(
            tick_of(r),
            last_before + chrono::Duration::seconds(TICK_SECS * (i as i64 + 1)),
            "missed tick {i}: {missed:#?}"
        );
        assert_eq!(
            r.trigger,
            Trigger::Schedule {
                name: "tick".into()
            }
        );
        assert_eq!((r.plugin.as_str(), r.target.as_str()), ("noop", "app"));
        let d = r.decision.as_ref().expect("a decision");
        assert_eq!(d.kind, DecisionKind::AgentDown);
        assert!(d.detail.contains("the agent was not running at"), "{d:?}");
        assert!(r.ended_at.is_some() && r.report.is_none() && r.actions.is_empty());
    }
    // The first tick the restarted agent fired itself follows the last
    // missed one: none lost, none twice.
    let latest_missed = tick_of(missed.last().unwrap());
    let fired_after: Vec<DateTime<Utc>> = after
        .iter()
        .filter(|r| r.status != RunStatus::Missed && tick_of(r) > last_before)
        .filter(|r| r.requested_at >= tick_of(r))
        .filter(|r| r.requested_at - tick_of(r) < chrono::Duration::seconds(1))
        .map(tick_of)
        .collect();
    assert_eq!(
        fired_after.first().copied(),
        Some(latest_missed + chrono::Duration::seconds(TICK_SECS)),
        "{after:#?}"
    );
    missed
}

async fn metrics(p: &Proc) -> String {
    let (_, m) = p
        .api
        .send(reqwest::Method::GET, "/metrics", None, None, &[])
        .await;
    m.as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_missed_while_stopped_are_recorded() {
    let w = world(None);
    let first = run_until_fired(&w, 2).await;
    let (before, mut second) = stop_wait_restart(&w, first).await;
    let text = metrics(&second).await;
    assert!(second.term().success());
    let log = second.log_text();
    let after = records(&w).await;
    let missed = check_missed(&before, &after);
    assert!(
        log.contains("schedule ticks missed while the agent was down"),
        "{log}"
    );
    // Counted as runs with status `missed`.
    let line = format!(
        "warden_runs_total{{plugin=\"noop\",status=\"missed\",target=\"app\"}} {}",
        missed.len()
    );
    assert!(text.contains(&line), "{line} not in\n{text}");
    // No catch-up: every non-missed schedule run is for a tick the agent
    // was up for (requested within a second of its tick).
    for r in after.iter().filter(|r| r.status != RunStatus::Missed) {
        let lag = r.requested_at - tick_of(r);
        assert!(lag < chrono::Duration::seconds(1), "{r:#?}");
    }
    // `warden runs list --status missed` and `runs show` print them.
    let out = std::process::Command::new(warden_bin())
        .arg("--config")
        .arg(w.path("warden.toml"))
        .args(["runs", "list", "--limit", "1000", "--status", "missed"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listed}");
    assert_eq!(listed.matches(" missed ").count(), missed.len(), "{listed}");
    let out = std::process::Command::new(warden_bin())
        .arg("--config")
        .arg(w.path("warden.toml"))
        .args(["runs", "show", &missed[0].id])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("decision: agent-down"), "{shown}");
    assert!(
        shown.contains(&format!(
            "scheduled for: {}",
            tick_of(&missed[0]).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_latest_runs_the_latest_missed_tick_once() {
    let w = world(Some("latest"));
    let first = run_until_fired(&w, 2).await;
    let (before, mut second) = stop_wait_restart(&w, first).await;
    // Wait for the catch-up run to finish before stopping.
    let log = second.log_text();
    let run_id = log
        .lines()
        .filter(|l| l.contains("catching up the latest missed tick"))
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v["run"].as_str().map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no catch-up in the log:\n{log}"));
    let settled = second.api.settled(&run_id, Duration::from_secs(60)).await;
    assert_eq!(settled.status, RunStatus::Succeeded, "{settled:#?}");
    assert!(second.term().success());
    let after = records(&w).await;
    let missed = check_missed(&before, &after);
    let latest = tick_of(missed.last().unwrap());
    // Exactly one run whose tick is a missed one: the latest, requested at
    // the restart.
    let caught: Vec<&RunRecord> = after
        .iter()
        .filter(|r| r.status != RunStatus::Missed)
        .filter(|r| missed.iter().any(|m| tick_of(m) == tick_of(r)))
        .collect();
    assert_eq!(caught.len(), 1, "{caught:#?}");
    assert_eq!(caught[0].id, run_id);
    assert_eq!(tick_of(caught[0]), latest);
    assert!(caught[0].requested_at > latest);
    assert_eq!(
        caught[0].trigger,
        Trigger::Schedule {
            name: "tick".into()
        }
    );
    // The latest missed record names the run that caught it up.
    let d = missed.last().unwrap().decision.as_ref().unwrap();
    assert_eq!(d.related_run.as_deref(), Some(run_id.as_str()));
    assert!(
        missed[..missed.len() - 1].iter().all(|m| m
            .decision
            .as_ref()
            .unwrap()
            .related_run
            .is_none())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_changed_while_stopped_records_no_flood() {
    let w = world(None);
    let mut first = run_until_fired(&w, 1).await;
    assert!(first.term().success());
    // Every second instead of every two, changed while the agent is down.
    std::fs::write(
        w.path("policies/grants.toml"),
        std::fs::read_to_string(w.path("policies/grants.toml"))
            .unwrap()
            .replace("*/2 * * * * *", "* * * * * *"),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut second = run_until_fired(&w, 2).await;
    assert!(second.term().success());
    let log = second.log_text();
    assert!(
        log.contains("the schedule changed while the agent was down"),
        "{log}"
    );
    let after = records(&w).await;
    assert!(
        after.iter().all(|r| r.status != RunStatus::Missed),
        "{after:#?}"
    );
}
