//! Observability an on-call engineer can alert on, with a real agent
//! (`warden run` as a child process), real promtool, and a real OTLP
//! receiver: the shipped alert rules pass `promtool test rules`; the agent's
//! `/metrics` passes `promtool check metrics`, carries the last success,
//! the last outcome, plugin-reported metrics, pending approvals, build and
//! process metrics, keeps what the state database knows across a restart,
//! and has every metric the shipped Grafana dashboard queries; JSON log
//! lines carry the message and the trace and span ids at top level; the
//! webhook request's span parents the runs it admits and a run parents the
//! runs it starts.

use crate::daemon::{Proc, alert, payload};
use crate::world::{TOKEN, World};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use warden::runs::{RunRecord, RunStatus};
use warden_tests::otlp::OtlpReceiver;

const SETTLE: Duration = Duration::from_secs(60);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `WARDEN_PROMTOOL_BIN`, else `/usr/bin/promtool` (Debian's `prometheus`
/// package, which `cargo xtask test` installs).
fn promtool() -> PathBuf {
    let bin = std::env::var_os("WARDEN_PROMTOOL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/promtool"));
    assert!(
        bin.exists(),
        "{} not found: install the `prometheus` package (cargo xtask test does) or set WARDEN_PROMTOOL_BIN",
        bin.display()
    );
    bin
}

/// Runs promtool with `args` in `dir`, `stdin` on its standard input;
/// returns (success, stdout + stderr).
fn run_promtool(dir: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_example_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = repo_root().join("examples/prometheus");
    let (ok, out) = run_promtool(&dir, &["check", "rules", "warden-rules.yml"], None);
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) = run_promtool(&dir, &["test", "rules", "warden-rules.test.yml"], None);
    assert!(ok, "promtool test rules:\n{out}");
    // The unit tests cover every alert of the file.
    let rules = std::fs::read_to_string(dir.join("warden-rules.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("warden-rules.test.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 5, "{alerts:?}");
    for a in alerts {
        assert!(
            tests.contains(&format!("alertname: {a}\n")),
            "alert {a} has no unit test"
        );
    }
}

/// The value of the sample `series` (name and labels exactly as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

/// Names of every sample and declared family (`# TYPE`) in a 0.0.4 text
/// exposition.
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap_or(""));
            names.insert(name.to_string());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// The agent's and process metric names a Grafana dashboard's PromQL uses.
fn dashboard_metric_names(dashboard: &Value) -> BTreeSet<String> {
    let mut exprs = Vec::new();
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr", Value::String(e)) => out.push(e),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    walk(dashboard, &mut exprs);
    assert!(!exprs.is_empty(), "the dashboard has no queries");
    exprs
        .iter()
        .flat_map(|e| metric_names_in(e))
        .collect::<BTreeSet<String>>()
}

/// The names starting with `warden_` or `process_` in a PromQL expression
/// (whole names: not preceded or followed by a name character).
fn metric_names_in(text: &str) -> Vec<String> {
    {
        let bytes = text.as_bytes();
        let name_char = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let starts = ["warden_", "process_"]
                .iter()
                .any(|p| text[i..].starts_with(p));
            if starts && (i == 0 || !name_char(bytes[i - 1])) {
                let mut j = i;
                while j < bytes.len() && name_char(bytes[j]) {
                    j += 1;
                }
                out.push(text[i..j].to_string());
                i = j;
            } else {
                i += 1;
            }
        }
        out
    }
}

#[test]
fn metric_names_are_found_in_promql() {
    assert_eq!(
        metric_names_in(
            r#"histogram_quantile(0.95, sum by (le) (rate(warden_run_duration_seconds_bucket{x="warden_no"}[5m]))) / process_open_fds + my_warden_x"#
        ),
        [
            "warden_run_duration_seconds_bucket",
            "warden_no",
            "process_open_fds"
        ]
    );
}

async fn post_run(agent: &Proc, body: Value) -> RunRecord {
    let (code, resp) = agent.api.post("/api/v1/runs", &body).await;
    assert_eq!(code, 202, "{resp}");
    let id = resp["id"].as_str().unwrap().to_string();
    wait_final(agent, &id).await
}

/// The record once it is final or awaiting approval.
async fn wait_final(agent: &Proc, id: &str) -> RunRecord {
    warden_tests::wait_for_value("the run to settle", SETTLE, || async {
        let r = agent.api.run(id).await;
        (r.status.is_final() || r.status == RunStatus::AwaitingApproval).then_some(r)
    })
    .await
}

/// `/metrics` as curl gets it (no OpenMetrics in `Accept`).
async fn scrape(agent: &Proc) -> String {
    let (code, body) = agent
        .api
        .send(reqwest::Method::GET, "/metrics", None, None, &[])
        .await;
    assert_eq!(code, 200);
    body.as_str().unwrap().to_string()
}

fn unix(at: chrono::DateTime<chrono::Utc>) -> f64 {
    at.timestamp_micros() as f64 / 1e6
}

fn world() -> World {
    World::new()
        .sqlite_target("db", "db.sqlite")
        .sqlite_target("db2", "db2.sqlite")
        .sqlite_target("db3", "db3.sqlite")
        .sqlite_target("db4", "db4.sqlite")
        .fixture("scripted")
        .grant("scripted", "db", &["read"], "")
        .grant("scripted", "db2", &["read"], "")
        .grant("scripted", "db3", &["read"], "")
        .grant(
            "scripted",
            "db4",
            &["read", "write"],
            "require_approval = true",
        )
        .http()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_agents_metrics_lint_feed_the_dashboard_and_survive_a_restart() {
    let w = world();
    let config = w.write();
    let mut agent = Proc::start(&config).await;
    // Nothing ran yet: no last-success or outcome series at all.
    let text = scrape(&agent).await;
    assert!(
        !text.contains("warden_last_success_timestamp_seconds{"),
        "{text}"
    );
    assert!(!text.contains("warden_last_run_failed{"), "{text}");

    let ok = post_run(
        &agent,
        json!({"plugin": "scripted", "target": "db", "params": {
            "metrics": "rows_seen:rows:42;ratio::0.5;Bad-Name::1;too_big:bytes:inf;9lives::1"
        }}),
    )
    .await;
    assert_eq!(ok.status, RunStatus::Succeeded, "{ok:#?}");
    let ok2 = post_run(&agent, json!({"plugin": "scripted", "target": "db2"})).await;
    assert_eq!(ok2.status, RunStatus::Succeeded, "{ok2:#?}");
    let failed = post_run(
        &agent,
        json!({"plugin": "scripted", "target": "db2", "params": {"fail": true}}),
    )
    .await;
    assert_eq!(failed.status, RunStatus::Failed, "{failed:#?}");
    // A dry run that succeeds is no success, and its numbers are not exported.
    let dry = post_run(
        &agent,
        json!({"plugin": "scripted", "target": "db3", "dry_run": true,
               "params": {"metrics": "would_free:bytes:100"}}),
    )
    .await;
    assert_eq!(dry.status, RunStatus::Succeeded, "{dry:#?}");
    // The plan has an action (an empty plan needs no approval).
    let plan = post_run(
        &agent,
        json!({"plugin": "scripted", "target": "db4",
               "params": {"hit_sql": "INSERT INTO t (x) VALUES (1)"}}),
    )
    .await;
    assert_eq!(plan.status, RunStatus::AwaitingApproval, "{plan:#?}");

    let text = scrape(&agent).await;
    let last = |target: &str| {
        sample(
            &text,
            &format!(
                r#"warden_last_success_timestamp_seconds{{plugin="scripted",target="{target}"}}"#
            ),
        )
    };
    let failed_gauge = |text: &str, target: &str| {
        sample(
            text,
            &format!(r#"warden_last_run_failed{{plugin="scripted",target="{target}"}}"#),
        )
    };
    let at = last("db").unwrap_or_else(|| panic!("no last success for db:\n{text}"));
    assert!(
        (at - unix(ok.ended_at.unwrap())).abs() < 0.001,
        "{at} {ok:#?}"
    );
    let at2 = last("db2").unwrap();
    assert!((at2 - unix(ok2.ended_at.unwrap())).abs() < 0.001, "{at2}");
    assert_eq!(last("db3"), None, "a dry run is no success:\n{text}");
    assert_eq!(last("db4"), None, "a plan is no success:\n{text}");
    assert_eq!(failed_gauge(&text, "db"), Some(0.0));
    assert_eq!(failed_gauge(&text, "db2"), Some(1.0));
    assert_eq!(failed_gauge(&text, "db3"), None);
    for (status, target, n) in [
        ("succeeded", "db", 1.0),
        ("succeeded", "db2", 1.0),
        ("failed", "db2", 1.0),
        ("succeeded", "db3", 1.0),
        ("awaiting-approval", "db4", 1.0),
    ] {
        let series = format!(
            r#"warden_runs_total{{plugin="scripted",status="{status}",target="{target}"}}"#
        );
        assert_eq!(sample(&text, &series), Some(n), "{series}\n{text}");
    }
    assert_eq!(
        sample(
            &text,
            r#"warden_plugin_metric{plugin="scripted",target="db",name="rows_seen",unit="rows"}"#
        ),
        Some(42.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"warden_plugin_metric{plugin="scripted",target="db",name="ratio",unit=""}"#
        ),
        Some(0.5)
    );
    assert!(
        !text.contains("would_free"),
        "dry run metrics exported:\n{text}"
    );
    // A value that is not finite cannot be recorded: the host leaves it
    // out of the record (with a finding), so it never reaches the metrics.
    let report = ok.report.as_ref().unwrap();
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.title.starts_with("metrics without a finite value")
                && f.detail == "too_big = inf"),
        "{report:#?}"
    );
    assert!(!text.contains("too_big"), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"warden_plugin_metrics_dropped_total{plugin="scripted",reason="invalid_name"}"#
        ),
        Some(2.0),
        "Bad-Name and 9lives\n{text}"
    );
    assert_eq!(sample(&text, "warden_approvals_pending"), Some(1.0));
    assert!(
        text.lines()
            .any(|l| l.starts_with("warden_build_info{version=\"") && l.ends_with(" 1")),
        "{text}"
    );
    let now = unix(chrono::Utc::now());
    let start = sample(&text, "process_start_time_seconds").unwrap();
    assert!(start > now - 600.0 && start <= now + 1.0, "{start} {now}");
    assert!(sample(&text, "process_resident_memory_bytes").unwrap() > 1e6);
    assert!(sample(&text, "process_open_fds").unwrap() >= 3.0);
    assert!(sample(&text, "process_cpu_seconds_total").unwrap() > 0.0);
    assert_eq!(
        sample(
            &text,
            r#"warden_otlp_spans_dropped_total{reason="queue_full"}"#
        ),
        Some(0.0)
    );

    // promtool lints the exposition (names, help, units, counters).
    let (lint_ok, out) = run_promtool(&repo_root(), &["check", "metrics"], Some(&text));
    assert!(lint_ok, "promtool check metrics:\n{out}\n{text}");
    // Prometheus asks for OpenMetrics and gets it.
    let client = warden_tests::http_client();
    let resp = client
        .get(format!("{}/metrics", agent.api.base))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        resp.headers()
    );
    assert!(resp.text().await.unwrap().ends_with("# EOF\n"));

    // Every metric the dashboard queries is exported.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("examples/grafana/warden-dashboard.json"))
            .unwrap(),
    )
    .unwrap();
    let wanted = dashboard_metric_names(&dashboard);
    // One webhook call (refused: no token) makes its counter appear.
    let (code, _) = agent
        .api
        .send(
            reqwest::Method::POST,
            "/api/v1/alerts",
            Some(b"{}".to_vec()),
            None,
            &[],
        )
        .await;
    assert_eq!(code, 401);
    let text = scrape(&agent).await;
    let exported = exported_names(&text);
    // Counters of events this test does not cause appear at their first
    // event (prometheus-client writes no family without samples); each
    // must be one the agent documents.
    let event_counters = [
        "warden_guardrail_decisions_total",
        "warden_http_connections_closed_total",
        "warden_reloads_total",
        "warden_run_starts_refused_total",
    ];
    let documented =
        std::fs::read_to_string(repo_root().join("agent/src/telemetry/metrics.rs")).unwrap();
    let missing: Vec<&String> = wanted.difference(&exported).collect();
    for name in &missing {
        assert!(
            event_counters.contains(&name.as_str()),
            "the dashboard queries {name}, which the agent does not export:\n{text}"
        );
        let family = name.strip_suffix("_total").unwrap();
        assert!(
            documented.contains(&format!("| `{name}` |"))
                && documented.contains(&format!("\"{family}\"")),
            "{name} is not a documented, registered family"
        );
    }
    assert!(exported.contains("warden_webhook_requests_total"));
    for key in [
        "warden_last_success_timestamp_seconds",
        "warden_runs_total",
        "warden_plugin_metric",
        "warden_approvals_pending",
        "process_resident_memory_bytes",
    ] {
        assert!(wanted.contains(key), "the dashboard does not show {key}");
    }

    // JSON logs: the run's "run finished" line is in its span.
    let logs: Vec<Value> = agent
        .log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for rec in [&ok, &failed] {
        let line = logs
            .iter()
            .find(|l| l["message"] == "run finished" && l["run"] == rec.id.as_str())
            .unwrap_or_else(|| {
                panic!(
                    "no `run finished` line for {}:\n{}",
                    rec.id,
                    agent.log_text()
                )
            });
        assert_eq!(line["level"], "INFO", "{line}");
        assert!(
            line["target"].as_str().unwrap().starts_with("warden"),
            "{line}"
        );
        assert_eq!(line["fields"]["target"], rec.target.as_str(), "{line}");
        assert_eq!(line["status"], rec.status.as_str(), "{line}");
        assert_eq!(line["trace_id"].as_str(), rec.trace_id.as_deref(), "{line}");
        let span_id = line["span_id"].as_str().unwrap();
        assert!(
            span_id.len() == 16 && span_id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{line}"
        );
        assert_eq!(line["span"]["name"], "warden.run", "{line}");
        chrono::DateTime::parse_from_rfc3339(line["timestamp"].as_str().unwrap()).unwrap();
    }
    // Outside any span: no ids, message still at top level.
    let listening = logs.iter().find(|l| l.get("address").is_some()).unwrap();
    assert!(listening["message"].is_string(), "{listening}");
    assert!(listening.get("trace_id").is_none(), "{listening}");

    // A restart keeps what the state database knows.
    assert!(agent.term().success(), "{}", agent.log_text());
    drop(agent);
    let agent = Proc::start(&config).await;
    let after = scrape(&agent).await;
    for target in ["db", "db2"] {
        let series = format!(
            r#"warden_last_success_timestamp_seconds{{plugin="scripted",target="{target}"}}"#
        );
        let before = sample(&text, &series).unwrap();
        let now = sample(&after, &series).unwrap_or_else(|| panic!("{series} lost:\n{after}"));
        assert!(
            (before - now).abs() < 0.001,
            "{series}: {before} then {now}"
        );
    }
    assert!(
        !after.contains(r#"warden_last_success_timestamp_seconds{plugin="scripted",target="db3"}"#),
        "{after}"
    );
    assert_eq!(failed_gauge(&after, "db"), Some(0.0));
    assert_eq!(failed_gauge(&after, "db2"), Some(1.0));
    assert_eq!(failed_gauge(&after, "db3"), None);
    assert_eq!(sample(&after, "warden_approvals_pending"), Some(1.0));
    // A later success clears the failure.
    let fixed = post_run(&agent, json!({"plugin": "scripted", "target": "db2"})).await;
    assert_eq!(fixed.status, RunStatus::Succeeded);
    let text = scrape(&agent).await;
    assert_eq!(failed_gauge(&text, "db2"), Some(0.0));
    let at = sample(
        &text,
        r#"warden_last_success_timestamp_seconds{plugin="scripted",target="db2"}"#,
    )
    .unwrap();
    assert!((at - unix(fixed.ended_at.unwrap())).abs() < 0.001);
}

/// Trace ids of a webhook call's runs and of runs started by runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_span_parents_its_runs_and_a_run_parents_the_runs_it_starts() {
    let receiver = OtlpReceiver::start();
    let w = World::new()
        .sqlite_target("db", "db.sqlite")
        .fixture("scripted")
        .fixture("starter")
        .fixture("noop")
        .grant("scripted", "db", &["read"], "")
        .grant("noop", "db", &["read"], "")
        .grant("starter", "db", &["read"], r#"run_plugins = ["noop"]"#)
        .policy(
            r#"
[[rule]]
name = "traced"
match = ['alertname="Traced"']
plugin = "scripted"
target = "db"
"#,
        )
        .http()
        .config(&format!(
            "[telemetry]\notlp_endpoint = \"{}\"\notlp_protocol = \"grpc\"\n",
            receiver.grpc_endpoint()
        ));
    let config = w.write();
    let mut agent = Proc::start(&config).await;

    // With and without a caller's traceparent; one and three alerts.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let mut webhook_runs: Vec<(Option<&str>, Vec<String>)> = Vec::new();
    for (traceparent, alerts) in [
        (Some(format!("00-{caller_trace}-{caller_span}-01")), 3),
        (None, 1),
    ] {
        let body = serde_json::to_vec(&payload(
            (0..alerts)
                .map(|i| {
                    alert(
                        "firing",
                        &format!("fp-{}-{i}", traceparent.is_some()),
                        &[("alertname", "Traced"), ("instance", &format!("i{i}"))],
                    )
                })
                .collect(),
        ))
        .unwrap();
        let headers: Vec<(&str, &str)> = traceparent
            .as_deref()
            .map(|t| vec![("traceparent", t)])
            .unwrap_or_default();
        let (code, resp) = agent
            .api
            .send(
                reqwest::Method::POST,
                "/api/v1/alerts",
                Some(body),
                Some(TOKEN),
                &headers,
            )
            .await;
        assert_eq!(code, 200, "{resp}");
        let ids: Vec<String> = resp["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), alerts, "{resp}");
        webhook_runs.push((traceparent.is_some().then_some(caller_span), ids));
    }
    let (code, resp) = agent
        .api
        .post(
            "/api/v1/runs",
            &json!({"plugin": "starter", "target": "db", "params": {"cycle": "starter,noop", "count": 2}}),
        )
        .await;
    assert_eq!(code, 202, "{resp}");
    let starter = resp["id"].as_str().unwrap().to_string();
    let mut records = Vec::new();
    for id in webhook_runs
        .iter()
        .flat_map(|(_, ids)| ids)
        .chain([&starter])
    {
        let r = wait_final(&agent, id).await;
        assert_eq!(r.status, RunStatus::Succeeded, "{r:#?}");
        records.push(r);
    }
    let children: Vec<RunRecord> =
        warden_tests::wait_for_value("2 started runs", SETTLE, || async {
            let runs = agent.api.runs().await;
            let kids: Vec<RunRecord> = runs
                .into_iter()
                .filter(|r| {
                    r.parent_run.as_deref() == Some(starter.as_str()) && r.status.is_final()
                })
                .collect();
            (kids.len() == 2).then_some(kids)
        })
        .await;
    // SIGTERM flushes the exporter.
    assert!(agent.term().success(), "{}", agent.log_text());
    let run_ids: BTreeSet<String> = records
        .iter()
        .chain(&children)
        .map(|r| r.id.clone())
        .collect();
    let spans = receiver
        .wait_for_async(
            |s| {
                let runs: BTreeSet<&str> = s
                    .iter()
                    .filter(|s| s.name == "warden.run")
                    .filter_map(|s| s.attr("warden.run.id"))
                    .collect();
                run_ids.iter().all(|id| runs.contains(id.as_str()))
                    && s.iter().filter(|s| s.name == "warden.webhook").count() >= 2
            },
            Duration::from_secs(20),
        )
        .await;
    let run_span = |id: &str| {
        spans
            .iter()
            .find(|s| s.name == "warden.run" && s.attr("warden.run.id") == Some(id))
            .unwrap()
    };
    for (caller, ids) in &webhook_runs {
        let first = run_span(&ids[0]);
        let webhook = spans
            .iter()
            .find(|s| s.name == "warden.webhook" && s.span_id == first.parent_span_id)
            .unwrap_or_else(|| panic!("run {} has no webhook parent: {spans:#?}", ids[0]));
        assert_eq!(webhook.kind, "server");
        match caller {
            Some(parent) => {
                assert_eq!(webhook.parent_span_id, *parent);
                assert_eq!(webhook.trace_id, caller_trace);
            }
            None => assert_eq!(webhook.parent_span_id, ""),
        }
        for id in ids {
            let s = run_span(id);
            assert_eq!(s.parent_span_id, webhook.span_id, "run {id}");
            assert_eq!(s.trace_id, webhook.trace_id, "run {id}");
            let rec = records.iter().find(|r| &r.id == id).unwrap();
            assert_eq!(rec.trace_id.as_deref(), Some(webhook.trace_id.as_str()));
        }
    }
    let root = run_span(&starter);
    assert_eq!(
        root.parent_span_id, "",
        "a manual run without traceparent is a root"
    );
    for child in &children {
        let s = run_span(&child.id);
        assert_eq!(s.parent_span_id, root.span_id, "{child:#?}");
        assert_eq!(s.trace_id, root.trace_id);
        assert_eq!(child.trace_id.as_deref(), Some(root.trace_id.as_str()));
    }
}
