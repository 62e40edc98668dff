//! Bounds on runs started by runs (`runs.start`), with a real agent and
//! the `starter` fixtures (a plugin that starts itself, or a cycle of
//! plugins, N times per run): self-recursion stops at `max_chain_depth`, a
//! cycle A→B→A too, a fan-out stops at the grant's `max_started_runs`, a
//! flood stops at `max_queued_per_plugin` (counting runs queued by anyone),
//! every refusal is an `access-denied` naming the bound, its value and
//! where it is set, recorded on the calling run and counted, and the agent
//! serves on.

use crate::daemon::Daemon;
use crate::world::World;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use warden::runs::{RunRecord, RunStatus};
use warden_tests::wait_for_value;

const SETTLE: Duration = Duration::from_secs(120);

fn world() -> World {
    World::new()
        .sqlite_target("db", "db.sqlite")
        .fixture("starter")
        .fixture("starter-b")
        .fixture("noop")
        .fixture("scripted")
        .grant("noop", "db", &["read"], "")
        .grant("scripted", "db", &["read", "write"], "")
        .http()
}

async fn post(d: &Daemon, plugin: &str, params: serde_json::Value) -> String {
    let (code, body) = d
        .api
        .post(
            "/api/v1/runs",
            &json!({"plugin": plugin, "target": "db", "params": params}),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// Every run, once none is queued or running (a run's children are
/// queued before it ends, so this state is final).
async fn all_settled(d: &Daemon) -> Vec<RunRecord> {
    wait_for_value("every run to settle", SETTLE, || async {
        let runs = d.api.runs().await;
        runs.iter().all(|r| r.status.is_final()).then_some(runs)
    })
    .await
}

fn metric(rec: &RunRecord, name: &str) -> f64 {
    crate::world::metric(rec, name)
}

/// The host's messages for refused starts in a starter run's report.
fn refusals(rec: &RunRecord) -> Vec<String> {
    rec.report
        .as_ref()
        .map(|r| {
            r.findings
                .iter()
                .filter(|f| f.title.starts_with("refused"))
                .map(|f| format!("{}: {}", f.title, f.detail))
                .collect()
        })
        .unwrap_or_default()
}

/// The host's log lines about refused starts on a run's record.
fn refusal_lines(rec: &RunRecord) -> Vec<&str> {
    rec.logs
        .iter()
        .filter(|l| l.message.starts_with("host: runs.start refused"))
        .map(|l| l.message.as_str())
        .collect()
}

async fn metrics(d: &Daemon) -> String {
    let (_, m) = d
        .api
        .send(reqwest::Method::GET, "/metrics", None, None, &[])
        .await;
    m.as_str().unwrap().to_string()
}

fn refused_metric(text: &str, plugin: &str, limit: &str) -> u64 {
    let prefix =
        format!("warden_run_starts_refused_total{{plugin=\"{plugin}\",limit=\"{limit}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// The agent still answers and still runs plugins.
async fn still_serving(d: &Daemon) {
    let (code, body) = d
        .api
        .send(reqwest::Method::GET, "/healthz", None, None, &[])
        .await;
    assert_eq!((code, body.as_str()), (200, Some("ok\n")));
    let id = post(d, "noop", json!({})).await;
    let r = d.api.settled(&id, SETTLE).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:#?}");
    assert_eq!((r.depth, r.parent_run.as_deref()), (0, None));
}

/// Checks the links of a tree of runs started by runs: every run but the
/// root names a parent one level shallower, in its record and in the
/// state database's `parent_run` column; returns the runs by depth.
async fn check_tree(d: &Daemon, runs: &[RunRecord], root: &str) -> BTreeMap<u32, Vec<RunRecord>> {
    let by_id: BTreeMap<&str, &RunRecord> = runs.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut by_depth: BTreeMap<u32, Vec<RunRecord>> = BTreeMap::new();
    for r in runs {
        if r.id == root {
            assert_eq!((r.depth, r.parent_run.as_deref()), (0, None), "{r:#?}");
        } else if let Some(parent) = r.parent_run.as_deref() {
            let p = by_id[parent];
            assert_eq!(r.depth, p.depth + 1, "{r:#?}");
            assert_eq!(
                r.trigger,
                warden::runs::Trigger::Manual {
                    by: format!("run {} ({})", p.id, p.plugin)
                }
            );
        } else {
            continue;
        }
        by_depth.entry(r.depth).or_default().push(r.clone());
    }
    for r in by_depth.values().flatten() {
        let children = d.agent.store.children_of(&r.id).await.unwrap();
        let expected = runs
            .iter()
            .filter(|c| c.parent_run.as_deref() == Some(r.id.as_str()))
            .count();
        assert_eq!(children.len(), expected, "children of {}", r.id);
    }
    by_depth
}

/// The plugin of issue 12: it starts itself 3 times per run. It used to
/// queue more than 1,000 runs in 20 s; now the chain stops at depth 3:
/// 1 + 3 + 9 + 27 runs, and each of the 27 deepest is refused 3 times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_recursion_stops_at_the_depth_limit() {
    let w = world().grant("starter", "db", &["read"], r#"run_plugins = ["starter"]"#);
    let d = Daemon::start(&w).await;
    let root = post(&d, "starter", json!({"count": 3})).await;
    let runs = all_settled(&d).await;
    assert_eq!(runs.len(), 40, "1 + 3 + 9 + 27 runs");
    let by_depth = check_tree(&d, &runs, &root).await;
    let sizes: Vec<(u32, usize)> = by_depth.iter().map(|(k, v)| (*k, v.len())).collect();
    assert_eq!(sizes, [(0, 1), (1, 3), (2, 9), (3, 27)]);
    let config = w.path("warden.toml");
    for r in by_depth.values().flatten() {
        assert_eq!(r.plugin, "starter");
        assert_eq!(r.status, RunStatus::Succeeded, "{r:#?}");
        if r.depth < 3 {
            assert_eq!((metric(r, "started"), metric(r, "refused")), (3.0, 0.0));
            assert!(refusal_lines(r).is_empty(), "{:#?}", r.logs);
            continue;
        }
        assert_eq!((metric(r, "started"), metric(r, "refused")), (0.0, 3.0));
        assert_eq!(
            refusals(r),
            [format!(
                "refused (access-denied): plugin `starter` may not start `starter` on `db`: run \
                 {} is at depth 3 of a chain of runs started by runs, and a run at depth 3 or \
                 deeper may start none (`max_chain_depth = 3` in `[runs]` of {}; default 3)",
                r.id,
                config.display()
            )]
        );
        let lines = refusal_lines(r);
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(lines[0].starts_with("host: runs.start refused (chain-depth): plugin `starter`"));
    }
    assert_eq!(
        refused_metric(&metrics(&d).await, "starter", "chain-depth"),
        81
    );
    still_serving(&d).await;
    d.stop().await;

    // The bound is the config's: one level, then nothing more.
    let w = world()
        .grant("starter", "db", &["read"], r#"run_plugins = ["starter"]"#)
        .config("[runs]\nmax_chain_depth = 1\n");
    let d = Daemon::start(&w).await;
    let root = post(&d, "starter", json!({"count": 2})).await;
    let runs = all_settled(&d).await;
    let sizes: Vec<(u32, usize)> = check_tree(&d, &runs, &root)
        .await
        .iter()
        .map(|(k, v)| (*k, v.len()))
        .collect();
    assert_eq!(sizes, [(0, 1), (1, 2)]);
    for r in runs.iter().filter(|r| r.depth == 1) {
        assert!(
            refusals(r)[0].contains("`max_chain_depth = 1` in `[runs]`"),
            "{:?}",
            refusals(r)
        );
    }
    d.stop().await;
}

/// Two plugins starting each other (A→B→A→...) are one chain: the depth
/// counts across plugins and grants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_recursion_is_bounded_too() {
    let w = world()
        .grant("starter", "db", &["read"], r#"run_plugins = ["starter-b"]"#)
        .grant("starter-b", "db", &["read"], r#"run_plugins = ["starter"]"#);
    let d = Daemon::start(&w).await;
    let root = post(
        &d,
        "starter",
        json!({"cycle": "starter,starter-b", "count": 2}),
    )
    .await;
    let runs = all_settled(&d).await;
    assert_eq!(runs.len(), 15, "1 + 2 + 4 + 8 runs");
    let by_depth = check_tree(&d, &runs, &root).await;
    for (depth, plugin, n) in [
        (0, "starter", 1),
        (1, "starter-b", 2),
        (2, "starter", 4),
        (3, "starter-b", 8),
    ] {
        let level = &by_depth[&depth];
        assert_eq!(level.len(), n, "depth {depth}");
        assert!(level.iter().all(|r| r.plugin == plugin), "{level:#?}");
        assert!(level.iter().all(|r| r.status == RunStatus::Succeeded));
    }
    for r in &by_depth[&3] {
        assert_eq!(metric(r, "refused"), 2.0);
        let why = &refusals(r)[0];
        assert!(
            why.starts_with(
                "refused (access-denied): plugin `starter-b` may not start `starter` on `db`"
            ) && why.contains("`max_chain_depth = 3`"),
            "{why}"
        );
    }
    let text = metrics(&d).await;
    assert_eq!(refused_metric(&text, "starter-b", "chain-depth"), 16);
    assert_eq!(refused_metric(&text, "starter", "chain-depth"), 0);
    still_serving(&d).await;
    d.stop().await;
}

/// One run may start at most its grant's `max_started_runs`, counted per
/// run: the next run of the same plugin starts afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_past_the_per_run_limit_is_refused() {
    let w = world().grant(
        "starter",
        "db",
        &["read"],
        "run_plugins = [\"noop\"]\nmax_started_runs = 4",
    );
    let d = Daemon::start(&w).await;
    let grant_at = d
        .agent
        .policies()
        .grant("starter", "db")
        .unwrap()
        .source
        .clone();
    assert_eq!(grant_at.file, w.path("policies/grants.toml"));
    for count in [7, 40] {
        let root = post(
            &d,
            "starter",
            json!({"cycle": "starter,noop", "count": count}),
        )
        .await;
        let r = d.api.settled(&root, SETTLE).await;
        assert_eq!(r.status, RunStatus::Succeeded, "{r:#?}");
        assert_eq!(
            (metric(&r, "started"), metric(&r, "refused")),
            (4.0, f64::from(count - 4))
        );
        assert_eq!(
            refusals(&r),
            [format!(
                "refused (access-denied): plugin `starter` may not start `noop` on `db`: run {} \
                 has already started 4 runs, the most one run may start (`max_started_runs = 4` \
                 in the grant at {grant_at}; default 10)",
                r.id
            )]
        );
        assert_eq!(refusal_lines(&r).len(), count as usize - 4);
        let children = d.agent.store.children_of(&root).await.unwrap();
        assert_eq!(children.len(), 4);
        assert!(
            children.iter().all(|c| c.plugin == "noop" && c.depth == 1),
            "{children:#?}"
        );
        let shown = warden::cli::render_text(&children[0]);
        assert!(
            shown.contains(&format!(
                "started by run {root} (depth 1 of a chain of runs started by runs)"
            )),
            "{shown}"
        );
    }
    let runs = all_settled(&d).await;
    assert_eq!(runs.iter().filter(|r| r.plugin == "noop").count(), 8);
    assert!(runs.iter().all(|r| r.status == RunStatus::Succeeded));
    assert_eq!(
        refused_metric(&metrics(&d).await, "starter", "per-run"),
        3 + 36
    );
    still_serving(&d).await;
    d.stop().await;
}

/// A run flooding one plugin's queue stops at `max_queued_per_plugin`,
/// counting the runs others queued: nothing past the cap is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_past_the_per_plugin_queue_cap_is_refused() {
    let w = world()
        .grant(
            "starter",
            "db",
            &["read"],
            "run_plugins = [\"scripted\"]\nmax_started_runs = 50",
        )
        .policy("[[concurrency]]\nplugin = \"scripted\"\nmax = 1\n")
        .config("[runs]\nmax_queued_per_plugin = 20\n");
    let d = Daemon::start(&w).await;
    // One scripted run holds the plugin's only slot; five more wait.
    let blocker = post(&d, "scripted", json!({"sleep_ms": 10_000})).await;
    wait_for_value("the blocking run to start", SETTLE, || async {
        (d.api.run(&blocker).await.status == RunStatus::Running).then_some(())
    })
    .await;
    for _ in 0..5 {
        post(&d, "scripted", json!({})).await;
    }
    let flood = post(
        &d,
        "starter",
        json!({"cycle": "starter,scripted", "count": 50}),
    )
    .await;
    let r = d.api.settled(&flood, SETTLE).await;
    assert_eq!(
        d.api.run(&blocker).await.status,
        RunStatus::Running,
        "the blocking run ended before the flood did: the counts below would not hold"
    );
    assert_eq!(r.status, RunStatus::Succeeded, "{r:#?}");
    assert_eq!((metric(&r, "started"), metric(&r, "refused")), (15.0, 35.0));
    let config = w.path("warden.toml");
    assert_eq!(
        refusals(&r),
        [format!(
            "refused (access-denied): plugin `starter` may not start `scripted` on `db`: \
             `scripted` already has 20 queued runs, the most a run may add to; nothing was \
             queued (`max_queued_per_plugin = 20` in `[runs]` of {}; default 100)",
            config.display()
        )]
    );
    assert_eq!(refusal_lines(&r).len(), 35);
    assert_eq!(d.agent.store.children_of(&flood).await.unwrap().len(), 15);
    assert_eq!(d.agent.store.queued_of("scripted").await.unwrap(), 20);
    assert_eq!(refused_metric(&metrics(&d).await, "starter", "queue"), 35);
    // Not a per-plugin limit on everything: the HTTP API still queues.
    post(&d, "scripted", json!({})).await;
    still_serving(&d).await;
    let runs = all_settled(&d).await;
    let scripted: Vec<&RunRecord> = runs.iter().filter(|r| r.plugin == "scripted").collect();
    assert_eq!(scripted.len(), 1 + 5 + 15 + 1);
    assert!(
        scripted.iter().all(|r| r.status == RunStatus::Succeeded),
        "{scripted:#?}"
    );
    d.stop().await;
}
