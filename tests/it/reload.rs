//! Hot reload of the policy, plugin and runbook folders, and cron schedules.

use crate::daemon::{Daemon, alert, payload};
use crate::world::World;
use serde_json::json;
use std::time::Duration;
use warden::runs::{DecisionKind, RunStatus, Trigger};
use warden_tests::{fixture_wasm, wait_for};

fn world() -> World {
    World::new()
        .fixture("scripted")
        .sqlite_target("app", "app.db")
        .grant("scripted", "app", &["read", "write"], "")
        .http()
}

async fn metrics(d: &Daemon) -> String {
    let (_, m) = d
        .api
        .send(reqwest::Method::GET, "/metrics", None, None, &[])
        .await;
    m.as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_and_plugins_reload_and_bad_ones_are_rejected() {
    let w = world();
    let d = Daemon::start(&w).await;
    let policies = w.path("policies");

    // A valid new rule is picked up without a restart.
    std::fs::write(
        policies.join("rules.toml"),
        "[[rule]]\nname = \"new-rule\"\nmatch = ['alertname=\"New\"']\nplugin = \"scripted\"\ntarget = \"app\"\n",
    )
    .unwrap();
    wait_for("the new rule", Duration::from_secs(10), || async {
        d.agent.policies().rule("new-rule").is_some()
    })
    .await;
    let body = d
        .api
        .alerts(&payload(vec![alert(
            "firing",
            "n1",
            &[("alertname", "New")],
        )]))
        .await;
    let id = body["runs"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        d.api.settled(&id, Duration::from_secs(30)).await.status,
        RunStatus::Succeeded
    );

    // An invalid policy file is rejected; the previous policies serve on.
    std::fs::write(
        policies.join("broken.toml"),
        "[[rule]]\nname = \"x\"\nmatch = [\n",
    )
    .unwrap();
    wait_for(
        "the rejection to be counted",
        Duration::from_secs(10),
        || async {
            metrics(&d)
                .await
                .contains("warden_reloads_total{kind=\"policy\",result=\"rejected\"}")
        },
    )
    .await;
    assert!(d.agent.policies().rule("new-rule").is_some());
    let body = d
        .api
        .alerts(&payload(vec![alert(
            "firing",
            "n2",
            &[("alertname", "New")],
        )]))
        .await;
    let id = body["runs"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        d.api.settled(&id, Duration::from_secs(30)).await.status,
        RunStatus::Succeeded
    );
    std::fs::remove_file(policies.join("broken.toml")).unwrap();

    // A plugin file that does not compile is rejected; the old one serves.
    let before = d.agent.loaded().plugins["scripted"].digest.clone();
    std::fs::write(w.path("plugins/scripted.wasm"), b"\0asm garbage").unwrap();
    wait_for(
        "the plugin rejection to be counted",
        Duration::from_secs(10),
        || async {
            metrics(&d)
                .await
                .contains("warden_reloads_total{kind=\"plugin\",result=\"rejected\"}")
        },
    )
    .await;
    assert_eq!(d.agent.loaded().plugins["scripted"].digest, before);
    let (_, body) = d
        .api
        .post(
            "/api/v1/runs",
            &json!({"plugin": "scripted", "target": "app"}),
        )
        .await;
    let r = d
        .api
        .settled(body["id"].as_str().unwrap(), Duration::from_secs(30))
        .await;
    assert_eq!(r.status, RunStatus::Succeeded);
    assert_eq!(r.digest, before);

    // A new plugin appears.
    std::fs::copy(fixture_wasm("noop"), w.path("plugins/noop.wasm")).unwrap();
    wait_for("the noop plugin", Duration::from_secs(10), || async {
        d.agent.loaded().plugins.contains_key("noop")
    })
    .await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_reload_and_bad_ones_are_rejected() {
    let w = world().config("[runbooks]\ndir = \"runbooks\"");
    let dir = w.path("runbooks");
    std::fs::create_dir_all(&dir).unwrap();
    let runbook = |name: &str| {
        format!(
            "[runbook]\nname = \"{name}\"\ntarget_kind = \"sqlite\"\nalerts = ['alertname=\"X\"']\n\n\
             [[step]]\nid = \"count\"\nkind = \"query\"\nsql = \"SELECT 1 AS n\"\n\n\
             [[step]]\nid = \"say\"\nkind = \"note\"\ntext = \"{{{{ steps.count.rows | length }}}}\"\n"
        )
    };
    std::fs::write(dir.join("first.toml"), runbook("first")).unwrap();
    let d = Daemon::start(&w).await;
    assert!(d.agent.loaded().runbooks.get("first").is_some());

    // A new runbook is picked up without a restart.
    std::fs::write(dir.join("second.toml"), runbook("second")).unwrap();
    wait_for("the new runbook", Duration::from_secs(10), || async {
        d.agent.loaded().runbooks.get("second").is_some()
    })
    .await;

    // A runbook with an error is refused; the previous runbooks serve on.
    let broken = runbook("third").replace("steps.count.rows", "steps.nothing.rows");
    std::fs::write(dir.join("third.toml"), broken).unwrap();
    wait_for(
        "the runbook rejection to be counted",
        Duration::from_secs(10),
        || async {
            metrics(&d)
                .await
                .contains("warden_reloads_total{kind=\"runbook\",result=\"rejected\"}")
        },
    )
    .await;
    let loaded = d.agent.loaded();
    let names: Vec<&str> = loaded.runbooks.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["first", "second"]);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_in_flight_keeps_the_policies_it_started_with() {
    let w = world();
    let d = Daemon::start(&w).await;
    let (_, body) = d
        .api
        .post(
            "/api/v1/runs",
            &json!({"plugin": "scripted", "target": "app", "params": {"sleep_ms": 1500}}),
        )
        .await;
    let id = body["id"].as_str().unwrap().to_string();
    wait_for("the run to start", Duration::from_secs(30), || async {
        d.api.run(&id).await.status == RunStatus::Running
    })
    .await;
    // Revoke the grant while it runs.
    std::fs::write(w.path("policies/grants.toml"), "# nothing granted\n").unwrap();
    wait_for("the grant to be gone", Duration::from_secs(10), || async {
        d.agent.policies().grants.is_empty()
    })
    .await;
    let r = d.api.settled(&id, Duration::from_secs(30)).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:#?}");
    let (_, body) = d
        .api
        .post(
            "/api/v1/runs",
            &json!({"plugin": "scripted", "target": "app"}),
        )
        .await;
    let r = d
        .api
        .settled(body["id"].as_str().unwrap(), Duration::from_secs(30))
        .await;
    assert_eq!(r.status, RunStatus::Denied, "{r:#?}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_fire_and_respect_windows_and_jitter() {
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%a")
        .to_string()
        .to_lowercase();
    let w = world().policy(&format!(
        r#"
[[schedule]]
name = "every-second"
plugin = "scripted"
target = "app"
cron = "* * * * * *"
params = {{ note = "tick" }}

[[schedule]]
name = "closed-window"
plugin = "scripted"
target = "app"
cron = "* * * * * *"
window = {{ days = ["{tomorrow}"], start = "00:00", end = "00:00" }}

[[schedule]]
name = "jittered"
plugin = "scripted"
target = "app"
cron = "*/2 * * * * *"
jitter = "1500ms"
"#
    ));
    let d = Daemon::start(&w).await;
    wait_for("scheduled runs", Duration::from_secs(15), || async {
        let runs = d.api.runs().await;
        let of = |name: &str| {
            runs.iter()
                .filter(|r| matches!(&r.trigger, Trigger::Schedule { name: n } if n == name))
                .filter(|r| r.status.is_final())
                .count()
        };
        of("every-second") >= 2 && of("closed-window") >= 1 && of("jittered") >= 1
    })
    .await;
    let runs = d.api.runs().await;
    for r in &runs {
        let Trigger::Schedule { name } = &r.trigger else {
            panic!("{r:#?}")
        };
        match name.as_str() {
            "every-second" => {
                if r.status.is_final() {
                    assert_eq!(r.status, RunStatus::Succeeded, "{r:#?}");
                    assert_eq!(r.report.as_ref().unwrap().summary, "scripted: tick");
                }
            }
            "closed-window" => {
                if r.status.is_final() {
                    assert_eq!(r.status, RunStatus::Skipped, "{r:#?}");
                    let dec = r.decision.as_ref().unwrap();
                    assert_eq!(dec.kind, DecisionKind::OutsideWindow);
                    assert!(dec.detail.contains(&tomorrow), "{dec:?}");
                }
            }
            "jittered" => {
                if let Some(nb) = r.not_before {
                    let delay = nb - r.requested_at;
                    assert!(delay <= chrono::Duration::milliseconds(1500), "{r:#?}");
                }
            }
            other => panic!("unknown schedule {other}"),
        }
    }
    d.stop().await;
}

/// SIGHUP reloads the folders and checks `warden.toml` again: a bad file
/// is reported with its place and changes nothing, a good changed file is
/// reported with what changed (it applies at restart), and the agent keeps
/// serving through all of it (before, SIGHUP's default action killed it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_checks_the_config_file_and_keeps_serving() {
    let w = world();
    let config = w.write();
    let original = std::fs::read_to_string(&config).unwrap();
    let mut agent = crate::daemon::Proc::start(&config).await;
    let pid = agent.child.id() as i32;
    let hup_until = |needle: &'static str, count: usize| {
        let log = agent.log.clone();
        async move {
            unsafe { libc::kill(pid, libc::SIGHUP) };
            wait_for(needle, Duration::from_secs(20), || {
                let log = log.clone();
                async move {
                    log.lock()
                        .unwrap()
                        .iter()
                        .filter(|l| l.contains(needle))
                        .count()
                        >= count
                }
            })
            .await;
        }
    };

    hup_until("config file unchanged", 1).await;
    hup_until("config file unchanged", 2).await;

    // Broken in three ways: a syntax error, an unknown field, a bad value.
    let broken = [
        format!("{original}\n[[target]]\nname = \"x\"\n"),
        format!("{original}\nplugin_dirr = \"plugins\"\n"),
        original.replace("state_db = \"state/warden.db\"", "state_db = 7"),
    ];
    for (i, text) in broken.iter().enumerate() {
        std::fs::write(&config, text).unwrap();
        hup_until("config file rejected", i + 1).await;
    }
    let log = agent.log_text();
    let rejected: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("config file rejected"))
        .collect();
    assert!(rejected.iter().all(|l| l.contains("warden.toml")), "{log}");
    assert!(rejected.iter().any(|l| l.contains("plugin_dirr")), "{log}");
    assert!(rejected.iter().any(|l| l.contains("state_db")), "{log}");

    // A valid change: named, and left for the restart.
    std::fs::write(
        &config,
        format!("{original}\n[[target]]\nname = \"more\"\nkind = \"sqlite\"\npath = \"more.db\"\n"),
    )
    .unwrap();
    hup_until("config file changed", 1).await;
    let log = agent.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("config file changed"))
        .unwrap();
    assert!(line.contains("more") && line.contains("added"), "{line}");
    assert!(line.contains("restart"), "{line}");

    assert!(agent.child.try_wait().unwrap().is_none(), "{log}");
    let (code, metrics) = agent
        .api
        .send(reqwest::Method::GET, "/metrics", None, None, &[])
        .await;
    assert_eq!(code, 200);
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains(r#"warden_reloads_total{kind="config",result="rejected"} 3"#),
        "{metrics}"
    );
    let (code, _) = agent
        .api
        .send(reqwest::Method::GET, "/healthz", None, None, &[])
        .await;
    assert_eq!(code, 200);
    assert!(agent.term().success());
}
