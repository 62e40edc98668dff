//! End-to-end test of the monitoring harness (`warden_tests::monitoring`): a metric
//! crosses a Prometheus rule, Alertmanager posts the alert to a webhook, the metric
//! drops back and the resolved notification follows.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use serde_json::Value;
use warden_tests::monitoring::{Alertmanager, MetricSource, Prometheus};

const TOKEN: &str = "sekret-webhook-token-42";
const METRIC: &str = "warden_test_dead_tuples";
const RULES: &str = r#"
groups:
  - name: warden-test
    rules:
      - alert: DeadTuplesHigh
        expr: warden_test_dead_tuples > 1000
        for: 0s
        labels:
          severity: warning
        annotations:
          summary: "{{ $labels.target }} has {{ $value }} dead tuples"
"#;

/// One webhook call: the Authorization header and the JSON body.
type Received = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A webhook receiver on 127.0.0.1:PORT/hook recording what it gets.
async fn start_receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let state = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::Json<Value>| {
            let auth = headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            state.lock().unwrap().push((auth, body.0));
            async { "ok" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// Waits for a notification whose `status` is `status`; panics with both servers'
/// logs when none arrives in time.
async fn wait_notification(
    received: &Received,
    status: &str,
    deadline: Duration,
    servers: (&Alertmanager, &Prometheus),
) -> (Option<String>, Value) {
    let start = Instant::now();
    loop {
        let found = received
            .lock()
            .unwrap()
            .iter()
            .find(|(_, body)| body["status"] == status)
            .cloned();
        if let Some(found) = found {
            return found;
        }
        if start.elapsed() > deadline {
            let (am, prom) = servers;
            panic!(
                "no {status} notification within {deadline:?}; received: {:#?}\n\
                 --- alertmanager log ---\n{}\n--- prometheus log ---\n{}",
                received.lock().unwrap(),
                tail(&am.log(), 30),
                tail(&prom.log(), 30)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn process_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metric_over_threshold_fires_and_resolves_through_the_real_stack() {
    let total = Instant::now();
    let (webhook_url, received) = start_receiver().await;
    let source = MetricSource::start().await;
    source.set(METRIC, &[("target", "app")], 5000.0);

    let phase = Instant::now();
    let am = Alertmanager::start(&webhook_url, TOKEN).await;
    eprintln!("alertmanager ready in {:.2?}", phase.elapsed());
    let phase = Instant::now();
    let prom = Prometheus::start(&[source.address()], RULES, &am).await;
    eprintln!("prometheus ready in {:.2?}", phase.elapsed());

    let phase = Instant::now();
    let (auth, body) =
        wait_notification(&received, "firing", Duration::from_secs(20), (&am, &prom)).await;
    eprintln!("firing notification after {:.2?}", phase.elapsed());
    assert_eq!(auth.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
    assert_eq!(body["version"], "4", "{body:#}");
    assert_eq!(body["receiver"], "warden", "{body:#}");
    assert_eq!(
        body["groupLabels"]["alertname"], "DeadTuplesHigh",
        "{body:#}"
    );
    assert_eq!(body["groupLabels"]["target"], "app", "{body:#}");
    let alerts = body["alerts"].as_array().expect("alerts is an array");
    assert_eq!(alerts.len(), 1, "{body:#}");
    let alert = &alerts[0];
    assert_eq!(alert["status"], "firing", "{body:#}");
    assert_eq!(alert["labels"]["alertname"], "DeadTuplesHigh", "{body:#}");
    assert_eq!(alert["labels"]["target"], "app", "{body:#}");
    assert_eq!(alert["labels"]["severity"], "warning", "{body:#}");
    assert_eq!(alert["labels"]["job"], "warden-test", "{body:#}");
    assert_eq!(
        alert["annotations"]["summary"], "app has 5000 dead tuples",
        "{body:#}"
    );
    let fingerprint = alert["fingerprint"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!fingerprint.is_empty(), "a fingerprint: {body:#}");
    assert!(
        alert["generatorURL"]
            .as_str()
            .is_some_and(|u| u.contains("warden_test_dead_tuples")),
        "{body:#}"
    );

    source.set(METRIC, &[("target", "app")], 0.0);
    let phase = Instant::now();
    let (auth, body) =
        wait_notification(&received, "resolved", Duration::from_secs(20), (&am, &prom)).await;
    eprintln!("resolved notification after {:.2?}", phase.elapsed());
    assert_eq!(auth.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
    assert_eq!(body["version"], "4", "{body:#}");
    let alert = &body["alerts"][0];
    assert_eq!(alert["status"], "resolved", "{body:#}");
    assert_eq!(alert["fingerprint"], fingerprint.as_str(), "{body:#}");
    assert_eq!(alert["labels"]["target"], "app", "{body:#}");
    assert!(
        alert["endsAt"]
            .as_str()
            .is_some_and(|t| !t.starts_with("0001")),
        "a resolved alert has an end: {body:#}"
    );
    let firing = received
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, b)| b["status"] == "firing")
        .count();
    assert_eq!(firing, 1, "one firing notification (repeat_interval is 1h)");

    let pids = [am.pid(), prom.pid()];
    let phase = Instant::now();
    drop(prom);
    drop(am);
    eprintln!("both servers stopped in {:.2?}", phase.elapsed());
    for pid in pids {
        assert!(!process_alive(pid), "process {pid} is gone after drop");
    }
    eprintln!("whole test: {:.2?}", total.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_posted_to_alertmanager_reach_the_webhook() {
    let (webhook_url, received) = start_receiver().await;
    let am = Alertmanager::start(&webhook_url, TOKEN).await;
    let labels = serde_json::json!({"alertname": "PostedAlert", "target": "db1"});
    am.post_alerts(serde_json::json!([{
        "labels": labels,
        "annotations": {"summary": "posted directly"},
    }]))
    .await;
    let start = Instant::now();
    let firing =
        warden_tests::wait_for_value("a firing notification", Duration::from_secs(15), || {
            let found = received
                .lock()
                .unwrap()
                .iter()
                .find(|(_, b)| b["status"] == "firing")
                .cloned();
            async move { found }
        })
        .await;
    eprintln!("posted alert notified after {:.2?}", start.elapsed());
    assert_eq!(
        firing.0.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(firing.1["alerts"][0]["labels"], labels);

    // Resolving a posted alert: post it again with an end in the past.
    let ended = (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
    am.post_alerts(serde_json::json!([{ "labels": labels, "endsAt": ended }]))
        .await;
    let start = Instant::now();
    warden_tests::wait_for("a resolved notification", Duration::from_secs(15), || {
        let found = received
            .lock()
            .unwrap()
            .iter()
            .any(|(_, b)| b["status"] == "resolved");
        async move { found }
    })
    .await;
    eprintln!("posted resolution notified after {:.2?}", start.elapsed());
}
