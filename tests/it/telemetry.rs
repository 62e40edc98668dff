//! Telemetry: spans exported by OTLP (gRPC and HTTP) to a real receiver, and the
//! Prometheus metrics, encoded and scraped by a real Prometheus.
//!
//! `telemetry::init` installs a process-global subscriber, so these tests use
//! `OtlpPipeline::set_thread_default` instead: the same OTel layer and exporter,
//! on the test thread only.

use std::collections::BTreeMap;
use std::time::Duration;

use warden::telemetry::{self, CONTENT_TYPE, Metrics, OtlpPipeline, OtlpProtocol, OtlpSettings};
use warden_tests::otlp::{OtlpReceiver, ReceivedSpan};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_ID: &str = "b7ad6b7169203331";

fn by_name<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {spans:#?}"))
}

async fn export_over(protocol: OtlpProtocol) {
    let receiver = OtlpReceiver::start();
    let endpoint = match protocol {
        OtlpProtocol::Grpc => receiver.grpc_endpoint(),
        OtlpProtocol::HttpProtobuf => receiver.http_endpoint(),
    };
    let mut settings = OtlpSettings::new(endpoint, protocol);
    settings.headers = vec![("x-api-key".into(), "key-123".into())];
    settings.service_name = "warden-it".into();
    let mut pipeline = OtlpPipeline::new(&settings).unwrap();

    {
        let _default = pipeline.set_thread_default();
        let root = telemetry::run_span("run-1", "vacuum", "d1g3st", "db", "webhook");
        assert!(telemetry::set_parent_from_traceparent(
            &root,
            Some(&format!("00-{TRACE_ID}-{PARENT_ID}-01")),
            Some("congo=t61rcWkgMzE"),
        ));
        root.in_scope(|| {
            assert_eq!(telemetry::current_trace_id().as_deref(), Some(TRACE_ID));
            let call = telemetry::host_call_span("sql.query", "postgresql", "SELECT", "db", "read");
            call.in_scope(|| {});
            let failed = telemetry::host_call_span(
                "sql.execute",
                "postgresql",
                "VACUUM",
                "db",
                "maintenance",
            );
            failed.record("error.type", "permission_denied");
            failed.record("otel.status_code", "error");
            failed.in_scope(|| {});
        });
    }
    pipeline.force_flush().unwrap();

    let spans = receiver
        .wait_for_async(|s| s.len() >= 3, Duration::from_secs(15))
        .await;
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let root = by_name(&spans, "warden.run");
    let call = by_name(&spans, "sql.query");
    let failed = by_name(&spans, "sql.execute");
    let transport = match protocol {
        OtlpProtocol::Grpc => "grpc",
        OtlpProtocol::HttpProtobuf => "http",
    };
    assert!(spans.iter().all(|s| s.transport == transport));

    // The root continues the caller's trace.
    assert_eq!(root.trace_id, TRACE_ID);
    assert_eq!(root.parent_span_id, PARENT_ID);
    assert_eq!(root.span_id.len(), 16);
    let expected: BTreeMap<&str, &str> = [
        ("warden.run.id", "run-1"),
        ("warden.plugin", "vacuum"),
        ("warden.plugin.digest", "d1g3st"),
        ("warden.target", "db"),
        ("warden.trigger", "webhook"),
    ]
    .into();
    for (k, v) in expected {
        assert_eq!(root.attr(k), Some(v), "{k} in {root:#?}");
    }
    assert_eq!(root.resource.get("service.name").unwrap(), "warden-it");
    assert!(root.resource.contains_key("service.version"), "{root:#?}");

    // Host calls are children of the root, client spans with the db attributes.
    for child in [call, failed] {
        assert_eq!(child.trace_id, TRACE_ID);
        assert_eq!(child.parent_span_id, root.span_id);
        assert_eq!(child.kind, "client");
        assert_eq!(child.attr("db.system.name"), Some("postgresql"));
        assert_eq!(child.attr("db.namespace"), Some("db"));
        assert!(child.attr("otel.name").is_none(), "{child:#?}");
    }
    assert_eq!(call.attr("db.operation.name"), Some("SELECT"));
    assert_eq!(call.attr("warden.capability.class"), Some("read"));
    assert_eq!(call.status, "unset");
    assert_eq!(failed.attr("db.operation.name"), Some("VACUUM"));
    assert_eq!(failed.attr("warden.capability.class"), Some("maintenance"));
    assert_eq!(failed.attr("error.type"), Some("permission_denied"));
    assert_eq!(failed.status, "error");

    // The configured header reached the collector.
    let requests = receiver.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(
            r.headers.get("x-api-key").map(String::as_str),
            Some("key-123"),
            "{r:#?}"
        );
    }

    pipeline.shutdown().unwrap();
}

#[tokio::test]
async fn spans_are_exported_over_otlp_grpc() {
    export_over(OtlpProtocol::Grpc).await;
}

#[tokio::test]
async fn spans_are_exported_over_otlp_http() {
    export_over(OtlpProtocol::HttpProtobuf).await;
}

#[test]
fn spans_pending_at_shutdown_are_exported_and_a_dead_collector_does_not_hang() {
    let receiver = OtlpReceiver::start();
    let mut pipeline = OtlpPipeline::new(&OtlpSettings::new(
        receiver.grpc_endpoint(),
        OtlpProtocol::Grpc,
    ))
    .unwrap();
    {
        let _default = pipeline.set_thread_default();
        telemetry::run_span("run-2", "analyze", "d", "db", "manual").in_scope(|| {});
    }
    // No flush: shutdown exports what is pending.
    pipeline.shutdown().unwrap();
    let spans = receiver.spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].parent_span_id, "");
    assert_eq!(spans[0].attr("warden.run.id"), Some("run-2"));

    // Nobody listens there: the export fails, within the exporter's timeout.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut dead = OtlpPipeline::new(&OtlpSettings::new(
        format!("http://127.0.0.1:{port}/v1/traces"),
        OtlpProtocol::HttpProtobuf,
    ))
    .unwrap();
    {
        let _default = dead.set_thread_default();
        telemetry::run_span("run-3", "analyze", "d", "db", "manual").in_scope(|| {});
    }
    let start = std::time::Instant::now();
    let _ = dead.shutdown();
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_sampling_ratio_of_zero_exports_only_sampled_parents() {
    let receiver = OtlpReceiver::start();
    let mut settings = OtlpSettings::new(receiver.http_endpoint(), OtlpProtocol::HttpProtobuf);
    settings.sampling_ratio = 0.0;
    let mut pipeline = OtlpPipeline::new(&settings).unwrap();
    {
        let _default = pipeline.set_thread_default();
        // A new trace: not sampled at ratio 0.
        telemetry::run_span("unsampled", "p", "d", "db", "manual").in_scope(|| {});
        // The caller sampled it: parent-based sampling keeps it.
        let root = telemetry::run_span("sampled", "p", "d", "db", "webhook");
        assert!(telemetry::set_parent_from_traceparent(
            &root,
            Some(&format!("00-{TRACE_ID}-{PARENT_ID}-01")),
            None
        ));
        root.in_scope(|| {});
    }
    pipeline.shutdown().unwrap();
    let ids: Vec<_> = receiver
        .spans()
        .iter()
        .map(|s| s.attr("warden.run.id").unwrap_or("").to_string())
        .collect();
    assert_eq!(ids, ["sampled"]);
}

fn updated_metrics() -> Metrics {
    let m = Metrics::new();
    m.run_finished("vacuum", "db", "succeeded", Duration::from_millis(500));
    m.run_finished("vacuum", "db", "succeeded", Duration::from_secs(3));
    m.run_finished("analyze", "db", "failed", Duration::from_secs(1));
    m.set_queue_depth(4);
    m.set_running(1);
    m.guardrail_decision("max-rows", "deny");
    m.webhook_request(202);
    m.webhook_request(401);
    m.alerts_received(3);
    m.reload("policy", true);
    m.reload("config", false);
    m
}

#[test]
fn metrics_are_encoded_with_their_labels() {
    let text = updated_metrics().encode();
    for line in [
        r#"warden_runs_total{plugin="vacuum",status="succeeded",target="db"} 2"#,
        r#"warden_runs_total{plugin="analyze",status="failed",target="db"} 1"#,
        r#"warden_run_duration_seconds_count{plugin="vacuum",target="db"} 2"#,
        r#"warden_run_duration_seconds_sum{plugin="vacuum",target="db"} 3.5"#,
        "warden_queue_depth 4",
        "warden_runs_in_flight 1",
        r#"warden_guardrail_decisions_total{rule="max-rows",decision="deny"} 1"#,
        r#"warden_webhook_requests_total{code="202"} 1"#,
        r#"warden_webhook_requests_total{code="401"} 1"#,
        "warden_alerts_received_total 3",
        r#"warden_reloads_total{kind="policy",result="ok"} 1"#,
        r#"warden_reloads_total{kind="config",result="rejected"} 1"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(text.ends_with("# EOF\n"));
}

/// Serves `metrics` at `/metrics` with [`CONTENT_TYPE`]; returns the address.
async fn serve_metrics(metrics: Metrics) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
                    metrics.encode(),
                )
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

struct Prometheus {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_prometheus(scrape: std::net::SocketAddr) -> Prometheus {
    let bin = "/usr/bin/prometheus";
    assert!(
        std::path::Path::new(bin).exists(),
        "{bin} not found: install the `prometheus` package (cargo xtask test does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: warden\n    static_configs:\n      - targets: ['{scrape}']\n"
        ),
    )
    .unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let child = std::process::Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// The value of the first series `query` returns, once Prometheus has one.
async fn query(prom: &Prometheus, client: &reqwest::Client, query: &str) -> Option<String> {
    let url =
        reqwest::Url::parse_with_params(&format!("{}/api/v1/query", prom.url), &[("query", query)])
            .unwrap();
    let response = client.get(url).send().await.ok()?;
    let body: serde_json::Value = response.json().await.ok()?;
    let value = body["data"]["result"].get(0)?["value"][1].as_str()?;
    Some(value.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_metrics() {
    let addr = serve_metrics(updated_metrics()).await;
    let prom = start_prometheus(addr);
    let client = warden_tests::http_client();
    let deadline = Duration::from_secs(60);
    let up = warden_tests::wait_for_value("prometheus to scrape warden", deadline, || {
        query(&prom, &client, r#"up{job="warden"}"#)
    })
    .await;
    assert_eq!(
        up, "1",
        "the scrape failed: the exposition was not accepted"
    );
    for (q, want) in [
        (
            r#"warden_runs_total{plugin="vacuum",status="succeeded"}"#,
            "2",
        ),
        (
            r#"warden_run_duration_seconds_count{plugin="analyze"}"#,
            "1",
        ),
        (
            r#"warden_run_duration_seconds_bucket{plugin="vacuum",le="0.5"}"#,
            "1",
        ),
        ("warden_queue_depth", "4"),
        (r#"warden_guardrail_decisions_total{rule="max-rows"}"#, "1"),
        (
            r#"warden_reloads_total{kind="config",result="rejected"}"#,
            "1",
        ),
        ("warden_alerts_received_total", "3"),
    ] {
        let got =
            warden_tests::wait_for_value(q, Duration::from_secs(10), || query(&prom, &client, q))
                .await;
        assert_eq!(got, want, "{q}");
    }
}

/// Set (to a gRPC endpoint) only in the child process of
/// [`init_exports_spans_and_logs_json`].
const CHILD_ENV: &str = "WARDEN_IT_TELEMETRY_INIT_CHILD";

/// Runs [`init_child`] in a child process (this test binary again) with
/// `WARDEN_LOG` = `log`, exporting to a new receiver; returns its stderr and spans.
fn run_init_child(log: &str) -> (String, Vec<ReceivedSpan>) {
    let receiver = OtlpReceiver::start();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["telemetry::init_child", "--exact", "--nocapture"])
        .env(CHILD_ENV, receiver.grpc_endpoint())
        .env("WARDEN_LOG", log)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "child failed:\n{stderr}");
    // The child shut its exporter down before exiting: everything has arrived.
    (stderr, receiver.spans())
}

/// `telemetry::init` installs a global subscriber, so it runs in child processes.
#[test]
fn init_exports_spans_and_logs_json() {
    for log in ["warn", "info"] {
        let (stderr, spans) = run_init_child(log);
        // Quiet logs do not silence the traces.
        let root = by_name(&spans, "warden.run");
        let call = by_name(&spans, "sql.query");
        assert_eq!(root.trace_id, TRACE_ID);
        assert_eq!(root.parent_span_id, PARENT_ID);
        assert_eq!(call.parent_span_id, root.span_id);
        assert_eq!(root.resource.get("service.name").unwrap(), "warden");
        // Logs: JSON lines on stderr, filtered by WARDEN_LOG.
        let logs: Vec<serde_json::Value> = stderr
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let started = logs
            .iter()
            .find(|l| l["message"] == "exporting traces by OTLP");
        match log {
            "warn" => assert!(started.is_none(), "{stderr}"),
            _ => {
                let started = started.unwrap_or_else(|| panic!("no JSON log line in:\n{stderr}"));
                assert_eq!(started["level"], "INFO");
                assert!(
                    started["endpoint"]
                        .as_str()
                        .unwrap()
                        .starts_with("http://127.0.0.1:"),
                    "{started}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_child() {
    let Ok(endpoint) = std::env::var(CHILD_ENV) else {
        return; // only meaningful as the child of init_exports_spans_and_logs_json
    };
    let mut guard = telemetry::init(
        warden::config::LogFormat::Json,
        Some(OtlpSettings::new(endpoint, OtlpProtocol::Grpc)),
    )
    .unwrap();
    assert!(guard.exporting());
    let root = telemetry::run_span("run-init", "vacuum", "d", "db", "webhook");
    assert!(telemetry::set_parent_from_traceparent(
        &root,
        Some(&format!("00-{TRACE_ID}-{PARENT_ID}-01")),
        None
    ));
    root.in_scope(|| {
        assert_eq!(telemetry::current_trace_id().as_deref(), Some(TRACE_ID));
        telemetry::host_call_span("sql.query", "sqlite", "SELECT", "db", "read").in_scope(|| {});
    });
    drop(root);
    // A second init installs nothing and does not fail.
    let mut second = telemetry::init(warden::config::LogFormat::Text, None).unwrap();
    assert!(!second.exporting());
    second.shutdown().unwrap();
    guard.shutdown().unwrap();
}

/// End to end: `warden run` exports a run's root span, parented to the
/// webhook request's span (a child of the caller's `traceparent`), with
/// one child per host call, and no
/// secret or parameter value in any attribute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warden_run_exports_the_run_trace_with_its_parent_and_host_calls() {
    use crate::daemon::{Proc, alert, payload};
    use crate::world::{TOKEN, World};
    use std::time::Duration;
    use warden_tests::otlp::OtlpReceiver;

    let receiver = OtlpReceiver::start();
    let db = warden_tests::pg::cluster().create_database("traces").await;
    let password = warden_tests::pg::cluster().password().to_string();
    let w = World::new()
        .fixture("scripted")
        .pg_target("pg", &db.url)
        .grant("scripted", "pg", &["read"], "")
        .policy(
            r#"
[[rule]]
name = "traced"
match = ['alertname="Traced"']
plugin = "scripted"
target = "pg"
params = { note = "{{ labels.secret }}", hit_sql = "SELECT 1", fail_if_sql = "SELECT 0" }
"#,
        )
        .http()
        .config(&format!(
            "[telemetry]\notlp_endpoint = \"{}\"\notlp_protocol = \"grpc\"\nservice_name = \"warden-test\"\n",
            receiver.grpc_endpoint()
        ));
    let config = w.write();
    let mut agent = Proc::start(&config).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let body = serde_json::to_vec(&payload(vec![alert(
        "firing",
        "tr1",
        &[("alertname", "Traced"), ("secret", "param-value-s3cr3t")],
    )]))
    .unwrap();
    let (code, resp) = agent
        .api
        .send(
            reqwest::Method::POST,
            "/api/v1/alerts",
            Some(body),
            Some(TOKEN),
            &[("traceparent", &format!("00-{trace_id}-{parent_id}-01"))],
        )
        .await;
    assert_eq!(code, 200, "{resp}");
    let id = resp["runs"][0]["id"].as_str().unwrap().to_string();
    let run = agent.api.settled(&id, Duration::from_secs(30)).await;
    assert_eq!(run.status, warden::runs::RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.trace_id.as_deref(), Some(trace_id));
    // SIGTERM flushes the span exporter.
    assert!(agent.term().success(), "{}", agent.log_text());

    let spans = receiver
        .wait_for_async(
            |s| {
                s.iter().any(|s| s.name == "warden.run")
                    && s.iter().filter(|s| s.name.starts_with("sql.")).count() >= 2
            },
            Duration::from_secs(20),
        )
        .await;
    let root = spans.iter().find(|s| s.name == "warden.run").unwrap();
    assert_eq!(root.trace_id, trace_id);
    let webhook = spans
        .iter()
        .find(|s| s.name == "warden.webhook")
        .expect("the webhook request's span");
    assert_eq!(
        webhook.parent_span_id, parent_id,
        "the caller's traceparent is the webhook span's parent"
    );
    assert_eq!(
        root.parent_span_id, webhook.span_id,
        "the webhook request's span is the run's parent"
    );
    assert_eq!(root.attr("warden.run.id"), Some(id.as_str()));
    assert_eq!(root.attr("warden.plugin"), Some("scripted"));
    assert_eq!(root.attr("warden.target"), Some("pg"));
    assert_eq!(root.attr("warden.trigger"), Some("alert"));
    assert_eq!(root.attr("warden.plugin.digest"), Some(run.digest.as_str()));
    assert_eq!(
        root.resource.get("service.name").map(String::as_str),
        Some("warden-test")
    );
    let calls: Vec<_> = spans
        .iter()
        .filter(|s| s.name.starts_with("sql."))
        .collect();
    let names: Vec<&str> = calls.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"sql.execute") && names.contains(&"sql.query"),
        "{names:?}"
    );
    for c in &calls {
        assert_eq!(c.trace_id, trace_id);
        assert_eq!(
            c.parent_span_id, root.span_id,
            "host calls are children of the run: {c:#?}"
        );
        assert_eq!(c.attr("db.system.name"), Some("postgresql"));
        assert_eq!(c.attr("db.operation.name"), Some("SELECT"));
        assert_eq!(c.attr("db.namespace"), Some("pg"));
    }
    for s in &spans {
        for (k, v) in s.attributes.iter().chain(s.resource.iter()) {
            assert!(
                !v.contains("param-value-s3cr3t"),
                "parameter value in {}.{k}",
                s.name
            );
            assert!(!v.contains(&password), "password in {}.{k}", s.name);
            assert!(!v.contains("postgres://"), "URL in {}.{k}", s.name);
        }
    }
}
