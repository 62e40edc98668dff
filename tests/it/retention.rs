//! The state database stays bounded: its write-ahead log while the agent
//! writes and after it stops, and its history by `state_keep`, without
//! losing what the guardrails and the run queue need.

use crate::daemon::{Daemon, Proc, alert, payload};
use crate::world::{World, warden_bin};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use warden::runs::retention::sweep;
use warden::runs::{
    DecisionKind, RunRecord, RunStatus, RunStore, StoreLimits, StoredAlert, Trigger,
};
use warden_tests::wait_for;

fn stored_alert(i: usize, received_at: DateTime<Utc>) -> StoredAlert {
    StoredAlert {
        received_at,
        status: "firing".into(),
        fingerprint: format!("fp{i:08}"),
        starts_at: "2026-11-22T10:00:00Z".into(),
        ends_at: String::new(),
        labels: BTreeMap::from([("alertname".to_string(), format!("A{}", i % 7))]),
        annotations: BTreeMap::from([("description".to_string(), "x".repeat(600))]),
        runs: Vec::new(),
    }
}

/// Writes alerts in batches of 100 for `secs`, with a reader polling
/// alongside (as the agent's run queue does); returns the largest WAL size
/// seen and the number of alerts written.
async fn write_for(store: &RunStore, secs: u64) -> (u64, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn({
        let store = store.clone();
        let stop = stop.clone();
        async move {
            while !stop.load(Ordering::Relaxed) {
                store.list(20).await.unwrap();
                tokio::task::yield_now().await;
            }
        }
    });
    let start = Instant::now();
    let (mut max, mut n) = (0, 0);
    while start.elapsed() < Duration::from_secs(secs) {
        let batch: Vec<StoredAlert> = (n..n + 100).map(|i| stored_alert(i, Utc::now())).collect();
        n += 100;
        store.save_all(&batch, &[]).await.unwrap();
        max = max.max(store.wal_size());
    }
    stop.store(true, Ordering::Relaxed);
    reader.await.unwrap();
    (max, n)
}

/// The WAL file is gone or empty.
fn wal_is_empty(store_path: &std::path::Path) -> bool {
    let mut wal = store_path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(std::path::PathBuf::from(wal)).map_or(true, |m| m.len() == 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_stays_bounded_under_writes_and_is_emptied_at_close() {
    let dir = tempfile::tempdir().unwrap();
    // What the issue saw: passive checkpoints only (a bound no file
    // reaches), and the log grows with everything written.
    let unbounded = RunStore::open_with(
        &dir.path().join("unbounded.db"),
        StoreLimits {
            wal_max_bytes: 1 << 60,
        },
    )
    .await
    .unwrap();
    let (unbounded_max, _) = write_for(&unbounded, 4).await;
    unbounded.close().await;

    let limit = 1 << 20;
    let path = dir.path().join("state.db");
    let store = RunStore::open_with(
        &path,
        StoreLimits {
            wal_max_bytes: limit,
        },
    )
    .await
    .unwrap();
    let (max, n) = write_for(&store, 4).await;
    eprintln!(
        "{n} alerts: WAL at most {max} bytes with a {limit}-byte bound; \
         {unbounded_max} bytes with passive checkpoints only"
    );
    assert!(
        unbounded_max > 16 * limit,
        "the control wrote too little to tell: {unbounded_max} bytes"
    );
    assert!(
        max * 4 < unbounded_max && max < 8 * limit,
        "the WAL reached {max} bytes under a {limit}-byte bound ({unbounded_max} unbounded)"
    );
    // Idle: back under the bound.
    wait_for(
        "the WAL back under its bound",
        Duration::from_secs(10),
        || {
            let size = store.wal_size();
            async move { size <= limit }
        },
    )
    .await;
    store.close().await;
    assert!(wal_is_empty(&path), "a clean close leaves no WAL behind");
    // Nothing was lost on the way.
    let reopened = RunStore::open(&path).await.unwrap();
    assert_eq!(reopened.alerts(u32::MAX).await.unwrap().len(), n);
    reopened.close().await;
    assert!(wal_is_empty(&path));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_agent_leaves_no_write_ahead_log() {
    let w = World::new()
        .sqlite_target("db", "db.sqlite")
        .fixture("noop")
        .grant("noop", "db", &["read"], "")
        .http();
    let config = w.write();
    let db = w.path("state/warden.db");
    let mut agent = Proc::start(&config).await;
    for batch in 0..20 {
        let alerts = (0..100)
            .map(|i| {
                alert(
                    "firing",
                    &format!("f{batch}-{i}"),
                    &[("alertname", "Nobody")],
                )
            })
            .collect();
        agent.api.alerts(&payload(alerts)).await;
    }
    assert!(!wal_is_empty(&db), "the agent wrote through its WAL");
    let status = agent.term();
    assert!(status.success(), "{status:?}\n{}", agent.log_text());
    assert!(
        wal_is_empty(&db),
        "the WAL is empty after a clean shutdown:\n{}",
        agent.log_text()
    );
    let store = RunStore::open(&db).await.unwrap();
    assert_eq!(store.alerts(u32::MAX).await.unwrap().len(), 2000);
    store.close().await;
}

fn record(trigger: Trigger, status: RunStatus, at: DateTime<Utc>) -> RunRecord {
    let mut r = RunRecord::new("scripted", "app", trigger, BTreeMap::new(), false);
    r.status = status;
    r.requested_at = at;
    r.started_at = at;
    if status.is_final() {
        r.ended_at = Some(at);
    }
    r
}

fn manual() -> Trigger {
    Trigger::Manual { by: "test".into() }
}

fn from_rule(rule: &str, fingerprint: &str) -> Trigger {
    Trigger::Alert {
        rule: rule.into(),
        status: "firing".into(),
        labels: BTreeMap::from([("alertname".to_string(), "A".to_string())]),
        annotations: BTreeMap::new(),
        fingerprint: fingerprint.into(),
        starts_at: "2026-11-22T10:00:00Z".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_finished_history_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = RunStore::open(&dir.path().join("state.db")).await.unwrap();
    let now = Utc::now();
    let days = |d: i64| now - chrono::Duration::days(d);
    let day = Duration::from_secs(86_400);
    let (keep, rule_window) = (30 * day, 40 * day);

    let mut gone = Vec::new();
    let mut kept = Vec::new();
    // More than a batch of old finished runs.
    for _ in 0..1_234 {
        gone.push(record(manual(), RunStatus::Succeeded, days(31)));
    }
    for status in RunStatus::ALL {
        let r = record(manual(), status, days(400));
        if status.is_final() {
            gone.push(r);
        } else {
            // Queued, running, awaiting approval: never, however old.
            kept.push(r);
        }
    }
    kept.push(record(manual(), RunStatus::Failed, days(29)));
    // Runs of rules and schedules: kept while the guardrails' window is.
    kept.push(record(from_rule("r", "f1"), RunStatus::Succeeded, days(35)));
    kept.push(record(
        Trigger::Schedule {
            name: "nightly".into(),
        },
        RunStatus::Succeeded,
        days(39),
    ));
    gone.push(record(from_rule("r", "f2"), RunStatus::Succeeded, days(41)));
    gone.push(record(
        Trigger::Schedule {
            name: "nightly".into(),
        },
        RunStatus::Failed,
        days(41),
    ));
    let mut alerts: Vec<StoredAlert> = (0..700).map(|i| stored_alert(i, days(31))).collect();
    alerts.extend((700..703).map(|i| stored_alert(i, days(29))));
    let all: Vec<RunRecord> = gone.iter().chain(&kept).cloned().collect();
    store.save_all(&alerts, &all).await.unwrap();

    let deleted = sweep(&store, keep, rule_window, now).await.unwrap();
    assert_eq!(deleted.runs, gone.len() as u64);
    assert_eq!(deleted.alerts, 700);
    for r in &gone {
        assert_eq!(
            store.get(&r.id).await.unwrap(),
            None,
            "{} {:?}",
            r.status,
            r.trigger
        );
    }
    for r in &kept {
        let found = store.get(&r.id).await.unwrap();
        assert_eq!(
            found.as_ref().map(|f| f.status),
            Some(r.status),
            "{:?}",
            r.trigger
        );
    }
    let left = store.alerts(u32::MAX).await.unwrap();
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|a| a.received_at == days(29)));

    // Nothing more to do; a shorter rule window lets the rule run go too.
    let again = sweep(&store, keep, rule_window, now).await.unwrap();
    assert_eq!((again.runs, again.alerts), (0, 0));
    let shorter = sweep(&store, keep, day, now).await.unwrap();
    assert_eq!(
        shorter.runs, 2,
        "the rule's and the schedule's run past 30 days"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_applies_state_keep_and_keeps_what_guardrails_need() {
    let w = World::new()
        .fixture("scripted")
        .sqlite_target("app", "app.db")
        .grant("scripted", "app", &["read", "write"], "")
        .policy(
            r#"
[[rule]]
name = "r"
match = ['alertname="A"']
plugin = "scripted"
target = "app"
"#,
        )
        .top_level("state_keep = \"1h\"")
        .http();
    w.write();
    let db = w.path("state/warden.db");
    let hours = |h: i64| Utc::now() - chrono::Duration::hours(h);
    // What an agent that ran before left behind.
    let old_manual = record(manual(), RunStatus::Succeeded, hours(3));
    let old_rule_run = record(from_rule("r", "f1"), RunStatus::Succeeded, hours(3));
    let mut old_queued = record(manual(), RunStatus::Queued, hours(3));
    old_queued.not_before = Some(Utc::now() + chrono::Duration::days(1));
    let recent = record(manual(), RunStatus::Succeeded, hours(0));
    {
        let store = RunStore::open(&db).await.unwrap();
        store
            .save_all(
                &[stored_alert(1, hours(3)), stored_alert(2, hours(0))],
                &[
                    old_manual.clone(),
                    old_rule_run.clone(),
                    old_queued.clone(),
                    recent.clone(),
                ],
            )
            .await
            .unwrap();
        store.close().await;
    }

    let d = Daemon::start(&w).await;
    let store = d.agent.store.clone();
    wait_for("the sweep at start", Duration::from_secs(30), || {
        let store = store.clone();
        let id = old_manual.id.clone();
        async move { store.get(&id).await.unwrap().is_none() }
    })
    .await;
    for r in [&old_rule_run, &old_queued, &recent] {
        assert!(
            store.get(&r.id).await.unwrap().is_some(),
            "{:?} kept",
            r.trigger
        );
    }
    assert_eq!(
        store.alerts(100).await.unwrap().len(),
        1,
        "the old alert went"
    );
    d.stop().await;
    assert_eq!(store.wal_size(), 0, "stopping truncates the WAL");

    // Restarted, the guardrails still know the rule's run (dedup_window
    // 24h > state_keep 1h): the same alert is a duplicate.
    let d = Daemon::start(&w).await;
    let resp = d
        .api
        .alerts(&payload(vec![alert("firing", "f1", &[("alertname", "A")])]))
        .await;
    let id = resp["runs"][0]["id"].as_str().unwrap();
    let rec = d.api.run(id).await;
    assert_eq!(
        rec.decision.as_ref().map(|d| d.kind),
        Some(DecisionKind::Deduplicated),
        "{rec:#?}"
    );
    assert_eq!(
        rec.decision.unwrap().related_run.as_deref(),
        Some(old_rule_run.id.as_str())
    );
    d.stop().await;
}

#[test]
fn state_keep_is_checked_by_warden_check() {
    let w = World::new()
        .fixture("noop")
        .sqlite_target("db", "db.sqlite")
        .grant("noop", "db", &["read"], "")
        .policy(
            "[[rule]]\nname = \"r\"\nmatch = ['alertname=\"A\"']\nplugin = \"noop\"\ntarget = \"db\"\ncooldown = \"2h\"\n",
        );
    let config = w.write();
    let text = std::fs::read_to_string(&config).unwrap();
    let check = |keep: &str| {
        let with = text.replacen("cache_dir", &format!("state_keep = {keep}\ncache_dir"), 1);
        std::fs::write(&config, with).unwrap();
        let o = std::process::Command::new(warden_bin())
            .arg("--config")
            .arg(&config)
            .arg("check")
            .output()
            .unwrap();
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.code(), out)
    };
    // state_keep is on line 4.
    for (keep, message) in [
        ("\"0s\"", "must be more than zero"),
        ("\"a month\"", "invalid duration \"a month\""),
        ("30", "expected a duration like"),
        ("\"-5d\"", "invalid duration \"-5d\""),
    ] {
        let (code, out) = check(keep);
        assert_eq!(code, Some(2), "{keep}: {out}");
        assert!(
            out.contains("warden.toml:4:") && out.contains("state_keep: ") && out.contains(message),
            "{keep}: {out}"
        );
    }
    // Shorter than the rule's windows: fine, with a warning naming them.
    let (code, out) = check("\"1h\"");
    assert_eq!(code, Some(0), "{out}");
    for field in [
        "dedup_window: rule `r`: dedup_window 1day",
        "cooldown: rule `r`: cooldown 2h",
    ] {
        assert!(
            out.contains("warning: ") && out.contains("grants.toml:") && out.contains(field),
            "{field}: {out}"
        );
    }
    let (code, out) = check("\"30d\"");
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("warning"), "{out}");
}
