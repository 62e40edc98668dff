//! The Alertmanager webhook: what each kind of bad input gets, and that
//! nothing accepted is lost.

use crate::daemon::{Daemon, alert, payload};
use crate::world::{TOKEN, World};
use std::time::Duration;
use warden::runs::{DecisionKind, RunStatus, Trigger};

const RULE: &str = r#"
[[rule]]
name = "dead-tuples"
match = ['alertname="DeadTuples"', 'severity=~"warning|critical"']
plugin = "scripted"
target_label = "target"
params = { note = "{{ labels.table }} on {{ labels.target }}" }
"#;

fn world() -> World {
    World::new()
        .fixture("scripted")
        .sqlite_target("app", "app.db")
        .sqlite_target("other", "other.db")
        .grant("scripted", "app", &["read"], "")
        .policy(RULE)
        .http()
}

fn firing(fp: &str, target: &str) -> serde_json::Value {
    alert(
        "firing",
        fp,
        &[
            ("alertname", "DeadTuples"),
            ("severity", "warning"),
            ("target", target),
            ("table", "orders"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_documented_answer_and_nothing_is_stored() {
    let w = world();
    let d = Daemon::start(&w).await;
    let api = &d.api;
    let post = |body: Vec<u8>, token: Option<&'static str>| {
        let api = api.clone();
        async move {
            api.send(
                reqwest::Method::POST,
                "/api/v1/alerts",
                Some(body),
                token,
                &[],
            )
            .await
        }
    };
    let good = serde_json::to_vec(&payload(vec![firing("fp1", "app")])).unwrap();

    let (code, body) = post(good.clone(), None).await;
    assert_eq!(code, 401, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("Authorization"),
        "{body}"
    );
    let (code, body) = post(good.clone(), Some("wrong-token-wrong-token")).await;
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["error"], "wrong token");

    let (code, body) = post(
        b"{\"version\": \"4\",\n \"alerts\": [".to_vec(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("line 2"), "{body}");

    let mut v3 = payload(vec![firing("fp1", "app")]);
    v3["version"] = "3".into();
    let (code, body) = post(serde_json::to_vec(&v3).unwrap(), Some(TOKEN)).await;
    assert_eq!(code, 422, "{body}");
    assert!(
        body["problems"][0].as_str().unwrap().contains("version"),
        "{body}"
    );

    // A 2 MiB body against the 1 MiB limit. Only a little over the limit is
    // sent: the server answers as soon as it has read past the limit and may
    // then close, so a client still writing would see a reset, not the 413.
    let status = post_over_limit(&api.base, 2 << 20, (1 << 20) + 4096).await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");

    // One alert of three names an unknown target: the whole call is refused.
    let mixed = payload(vec![
        firing("fp1", "app"),
        firing("fp2", "nope"),
        firing("fp3", "other"),
    ]);
    let (code, body) = post(serde_json::to_vec(&mixed).unwrap(), Some(TOKEN)).await;
    assert_eq!(code, 422, "{body}");
    let problem = body["problems"][0].as_str().unwrap();
    assert!(
        problem.contains("alerts[1]") && problem.contains("nope"),
        "{body}"
    );
    assert_eq!(body["problems"].as_array().unwrap().len(), 1, "{body}");

    assert!(d.agent.store.alerts(100).await.unwrap().is_empty());
    assert!(api.runs().await.is_empty());

    // The good one is accepted, stored, and runs with its labels.
    let body = api.alerts(&payload(vec![firing("fp1", "app")])).await;
    assert_eq!(body["accepted"], 1, "{body}");
    let id = body["runs"][0]["id"].as_str().unwrap().to_string();
    let run = api.settled(&id, Duration::from_secs(30)).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(
        run.report.as_ref().unwrap().summary,
        "scripted: orders on app"
    );
    let Trigger::Alert { rule, labels, .. } = &run.trigger else {
        panic!("{run:#?}")
    };
    assert_eq!(rule, "dead-tuples");
    assert_eq!(labels["table"], "orders");
    let stored = d.agent.store.alerts(100).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].runs, vec![id]);

    // Health and metrics need no token.
    let (code, _) = api
        .send(reqwest::Method::GET, "/healthz", None, None, &[])
        .await;
    assert_eq!(code, 200);
    let (code, _) = api
        .send(reqwest::Method::GET, "/readyz", None, None, &[])
        .await;
    assert_eq!(code, 200);
    let (code, metrics) = api
        .send(reqwest::Method::GET, "/metrics", None, None, &[])
        .await;
    assert_eq!(code, 200);
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains("warden_webhook_requests_total"),
        "{metrics}"
    );
    assert!(metrics.contains("code=\"401\""), "{metrics}");
    assert!(metrics.contains("warden_runs_total"), "{metrics}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_duplicates_runs_once() {
    let w = world();
    let d = Daemon::start(&w).await;
    let mut calls = Vec::new();
    for _ in 0..40 {
        let api = d.api.clone();
        calls.push(tokio::spawn(async move {
            api.alerts(&payload(vec![firing("same", "app")])).await
        }));
    }
    for c in calls {
        c.await.unwrap();
    }
    let runs = d.api.runs().await;
    assert_eq!(runs.len(), 40);
    let real: Vec<_> = runs.iter().filter(|r| r.decision.is_none()).collect();
    assert_eq!(real.len(), 1, "{runs:#?}");
    let dups = runs
        .iter()
        .filter(|r| {
            r.decision
                .as_ref()
                .is_some_and(|d| d.kind == DecisionKind::Deduplicated)
        })
        .count();
    assert_eq!(dups, 39);
    let original = &real[0].id;
    assert!(runs.iter().filter(|r| r.decision.is_some()).all(|r| {
        r.status == RunStatus::Skipped
            && r.decision.as_ref().unwrap().related_run.as_ref() == Some(original)
    }));
    assert_eq!(
        d.agent.store.alerts(1000).await.unwrap().len(),
        40,
        "every alert is kept"
    );
    d.api.settled(original, Duration::from_secs(30)).await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolved_alerts_follow_on_resolved() {
    // The plan has an action (an empty plan needs no approval).
    let w = world()
        .grant("scripted", "other", &["read", "write"], "")
        .policy(
            r#"
[[rule]]
name = "cancel-on-resolve"
match = ['alertname="Slow"']
plugin = "scripted"
target = "other"
require_approval = true
on_resolved = "cancel"
params = { hit_sql = "INSERT INTO t (x) VALUES (1)" }
"#,
        );
    let d = Daemon::start(&w).await;
    // dead-tuples ignores resolved alerts: accepted, stored, no run.
    let body = d
        .api
        .alerts(&payload(vec![alert(
            "resolved",
            "fp-r",
            &[
                ("alertname", "DeadTuples"),
                ("severity", "warning"),
                ("target", "app"),
            ],
        )]))
        .await;
    assert_eq!(body["accepted"], 1);
    assert_eq!(body["runs"].as_array().unwrap().len(), 0, "{body}");
    assert_eq!(d.agent.store.alerts(10).await.unwrap().len(), 1);

    // A plan waiting for approval is cancelled when its alert resolves.
    let body = d
        .api
        .alerts(&payload(vec![alert(
            "firing",
            "fp-s",
            &[("alertname", "Slow")],
        )]))
        .await;
    let id = body["runs"][0]["id"].as_str().unwrap().to_string();
    let plan = d.api.settled(&id, Duration::from_secs(30)).await;
    assert_eq!(plan.status, RunStatus::AwaitingApproval, "{plan:#?}");
    let body = d
        .api
        .alerts(&payload(vec![alert(
            "resolved",
            "fp-s",
            &[("alertname", "Slow")],
        )]))
        .await;
    assert_eq!(body["runs"][0]["id"], id.as_str(), "{body}");
    let plan = d.api.run(&id).await;
    assert_eq!(plan.status, RunStatus::Cancelled);
    assert_eq!(plan.decision.unwrap().kind, DecisionKind::Resolved);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_runs_over_http() {
    let w = world();
    let d = Daemon::start(&w).await;
    let (code, body) = d
        .api
        .post(
            "/api/v1/runs",
            &serde_json::json!({"plugin": "scripted", "target": "app", "params": {"note": "hi", "sleep_ms": 1}, "dry_run": true}),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let run = d.api.settled(&id, Duration::from_secs(30)).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert!(run.dry_run);
    assert_eq!(run.report.unwrap().summary, "scripted: hi");

    let (code, body) = d
        .api
        .post(
            "/api/v1/runs",
            &serde_json::json!({"plugin": "nope", "target": "mars"}),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["problems"].as_array().unwrap().len(), 2, "{body}");
    let (code, body) = d
        .api
        .post(
            "/api/v1/runs",
            &serde_json::json!({"plugin": "scripted", "target": "app", "bogus": 1}),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("bogus"), "{body}");
    let (code, _) = d.api.get("/api/v1/runs/0000").await;
    assert_eq!(code, 404);
    let (code, body) = d.api.get("/api/v1/runs?status=sleeping").await;
    assert_eq!(code, 422, "{body}");
    d.stop().await;
}

/// Grafana's webhook contact point (version 1): what it sends for a firing
/// alert, with the fields Warden ignores (`state`, `title`, `message`, ...).
fn grafana(alerts: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({
        "receiver": "warden", "status": "firing", "orgId": 1,
        "alerts": alerts,
        "groupLabels": {}, "commonLabels": {"team": "db"}, "commonAnnotations": {},
        "externalURL": "http://grafana:3000/", "version": "1",
        "groupKey": "{}:{alertname=\"DeadTuples\"}", "truncatedAlerts": 0,
        "title": "[FIRING:1] DeadTuples", "state": "alerting",
        "message": "**Firing**\n\nLabels:\n - alertname = DeadTuples\n",
    })
}

fn grafana_alert(fp: &str) -> serde_json::Value {
    let mut a = firing(fp, "app");
    a["silenceURL"] = "http://grafana:3000/alerting/silence/new".into();
    a["dashboardURL"] = "".into();
    a["panelURL"] = "".into();
    a["values"] = serde_json::json!({"B": 44.5, "C": 1});
    a["valueString"] = "[ var='B' labels={} value=44.5 ]".into();
    a
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_gzip_and_content_errors_with_field_paths() {
    let w = world();
    let d = Daemon::start(&w).await;
    let api = &d.api;
    let post = |body: Vec<u8>, headers: Vec<(&'static str, &'static str)>| {
        let api = api.clone();
        async move {
            api.send(
                reqwest::Method::POST,
                "/api/v1/alerts",
                Some(body),
                Some(TOKEN),
                &headers,
            )
            .await
        }
    };
    let json = |v: &serde_json::Value| serde_json::to_vec(v).unwrap();

    // Valid JSON of the wrong types: 422 with the field's path, for a
    // label value, an alert field, the alerts list and the version.
    let mut cases: Vec<(serde_json::Value, &str)> = Vec::new();
    let mut p = payload(vec![firing("fp1", "app")]);
    p["alerts"][0]["labels"]["table"] = 3.into();
    cases.push((p, "alerts[0].labels.table"));
    let mut p = payload(vec![firing("fp1", "app")]);
    p["alerts"][0]["status"] = serde_json::json!(["firing"]);
    cases.push((p, "alerts[0].status"));
    let mut p = payload(vec![firing("fp1", "app")]);
    p["alerts"] = serde_json::json!({"0": {}});
    cases.push((p, "alerts"));
    let mut p = payload(vec![firing("fp1", "app")]);
    p["version"] = 4.into();
    cases.push((p, "version"));
    let mut p = grafana(vec![grafana_alert("fp1")]);
    p["alerts"][0]["values"]["B"] = "high".into();
    cases.push((p, "alerts[0].values.B"));
    let mut p = grafana(vec![grafana_alert("fp1")]);
    p["orgId"] = "one".into();
    cases.push((p, "orgId"));
    for (body, path) in cases {
        let (code, answer) = post(json(&body), vec![]).await;
        assert_eq!(code, 422, "{path}: {answer}");
        let problem = answer["problems"][0].as_str().unwrap();
        assert!(
            problem.starts_with(&format!("{path}: ")),
            "{path}: {answer}"
        );
        assert!(problem.contains("invalid type"), "{path}: {answer}");
    }

    // A label or annotation given twice: 422 naming it (JSON parsers
    // disagree on which wins, so neither does).
    for (body, path, key) in [
        (
            r#"{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"DeadTuples","target":"app","target":"other"},"startsAt":"2026-11-22T10:00:00Z","fingerprint":"a"}]}"#,
            "alerts[0].labels",
            "target",
        ),
        (
            r#"{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"DeadTuples","target":"app"},"annotations":{"summary":"a","summary":"b"},"startsAt":"2026-11-22T10:00:00Z","fingerprint":"a"}]}"#,
            "alerts[0].annotations",
            "summary",
        ),
    ] {
        let (code, answer) = post(body.as_bytes().to_vec(), vec![]).await;
        assert_eq!(code, 422, "{answer}");
        let problem = answer["problems"][0].as_str().unwrap();
        assert!(
            problem.starts_with(path) && problem.contains(&format!("\"{key}\" is given twice")),
            "{answer}"
        );
    }

    // Version 1 without Grafana's orgId is not Grafana's payload.
    let mut p = grafana(vec![grafana_alert("fp1")]);
    p.as_object_mut().unwrap().remove("orgId");
    let (code, answer) = post(json(&p), vec![]).await;
    assert_eq!(code, 422, "{answer}");
    assert!(
        answer["problems"][0].as_str().unwrap().contains("orgId"),
        "{answer}"
    );

    // Encodings: anything but gzip is refused with 415 naming it; a gzip
    // body that is not gzip is 400; a gzip body over max_body (1 MiB) once
    // decoded is 413, however small it is on the wire.
    let good = json(&payload(vec![firing("fp9", "app")]));
    for enc in ["br", "deflate", "zstd", "gzip, br", "compress"] {
        let (code, answer) = post(gzip(&good), vec![("content-encoding", enc)]).await;
        assert_eq!(code, 415, "{enc}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(enc), "{answer}");
    }
    let (code, answer) = post(good.clone(), vec![("content-encoding", "gzip")]).await;
    assert_eq!(code, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("gzip"),
        "{answer}"
    );
    let mut bomb = payload(vec![firing("fp9", "app")]);
    bomb["padding"] = " ".repeat(4 << 20).into();
    let bomb = gzip(&json(&bomb));
    assert!(bomb.len() < 64 << 10, "{}", bomb.len());
    let (code, answer) = post(bomb, vec![("content-encoding", "gzip")]).await;
    assert_eq!(code, 413, "{answer}");

    assert!(d.agent.store.alerts(100).await.unwrap().is_empty());
    assert!(api.runs().await.is_empty());

    // Grafana's payload, gzip-encoded, is accepted and runs; its values
    // reach the run as annotations.
    let body = gzip(&json(&grafana(vec![grafana_alert("gf1")])));
    let (code, answer) = post(body, vec![("content-encoding", "gzip")]).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["accepted"], 1, "{answer}");
    let id = answer["runs"][0]["id"].as_str().unwrap().to_string();
    let run = api.settled(&id, Duration::from_secs(30)).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    let Trigger::Alert {
        labels,
        annotations,
        ..
    } = &run.trigger
    else {
        panic!("{run:#?}")
    };
    assert_eq!(labels["table"], "orders");
    assert_eq!(annotations["value_B"], "44.5");
    assert_eq!(annotations["value_C"], "1");
    assert_eq!(annotations["summary"], "test alert");
}

/// Posts an alert body declared as `declared` bytes long, sends only `sent`
/// bytes of it, and returns the response's status line.
async fn post_over_limit(base: &str, declared: usize, sent: usize) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/alerts HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&vec![b' '; sent]).await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    while !response.windows(2).any(|w| w == b"\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("no answer to an oversized body")
            .unwrap();
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&response);
    text.lines().next().unwrap_or_default().to_string()
}
