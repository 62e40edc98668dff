//! Approvals reach people and approve what they saw: the real run makes
//! only the approved plan's calls (a real PostgreSQL session replaced by
//! another between plan and approval is not touched), an empty plan does
//! not wait, the approver is the owner of the token used (hostile tokens
//! and claims refused, nothing approved), and `[[notify]]` messages reach a
//! real local HTTP receiver, retried after a 500, with no secret in the
//! agent's log or records.

use crate::daemon::{Daemon, Proc, alert, payload};
use crate::runbooks;
use crate::world::{TOKEN, World, approver_token};
use axum::extract::{Path, State};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use warden::runs::{ActionState, ApprovalState, RunStatus};
use warden_tests::pg::{TestDb, cluster};
use warden_tests::{wait_for, wait_for_value};

/// Waits until session `pid` has been idle in its transaction for more
/// than `secs` seconds (what the runbook's `idle_seconds` looks for).
async fn idle_for(db: &TestDb, pid: i32, secs: f64) {
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    wait_for(
        &format!("session {pid} to be idle in a transaction for {secs}s"),
        Duration::from_secs(30),
        || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, bool>(
                    "SELECT coalesce(bool_or(state = 'idle in transaction' \
                     AND now() - state_change > make_interval(secs => $2)), false) \
                     FROM pg_stat_activity WHERE pid = $1",
                )
                .bind(pid)
                .bind(secs)
                .fetch_one(&pool)
                .await
                .unwrap()
            }
        },
    )
    .await;
    pool.close().await;
}

async fn idle_session(url: &str) -> (PgConnection, i32) {
    let mut c = PgConnection::connect(url).await.unwrap();
    let pid = runbooks::pid_of(&mut c).await;
    sqlx::raw_sql("BEGIN; SELECT 1;")
        .execute(&mut c)
        .await
        .unwrap();
    (c, pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_run_stops_when_its_plan_no_longer_holds() {
    let db = cluster().create_database("appr_world").await;
    let url = runbooks::app_role(&db).await;
    let (a, pid_a) = idle_session(&url).await;
    idle_for(&db, pid_a, 1.2).await;

    let w = runbooks::world(&db, "require_approval = true").http();
    let d = Daemon::start(&w).await;
    let plan_id = runbooks::post_run(
        &d,
        json!({"runbook": "pg-connection-exhaustion", "params": "idle_seconds=1"}),
    )
    .await;
    let plan = d.api.settled(&plan_id, Duration::from_secs(90)).await;
    assert_eq!(plan.status, RunStatus::AwaitingApproval, "{plan:#?}");
    assert_eq!(plan.actions.len(), 1, "{:#?}", plan.actions);
    let planned = &plan.actions[0];
    assert_eq!(planned.state, ActionState::Planned);
    assert!(
        planned
            .statement
            .starts_with(&format!("SELECT pg_terminate_backend({pid_a})")),
        "{}",
        planned.statement
    );
    assert!(planned.fingerprint.is_some());

    // The world changes: A ends, B (same role, same state) takes its place.
    a.close().await.unwrap();
    wait_for("session A to be gone", Duration::from_secs(30), || async {
        runbooks::alive(&db, &[pid_a]).await.is_empty()
    })
    .await;
    let (_b, pid_b) = idle_session(&url).await;
    idle_for(&db, pid_b, 1.2).await;

    let (code, body) = d.api.approve(&plan_id, "alice").await;
    assert_eq!(code, 200, "{body}");
    let real_id = body["run"]["id"].as_str().unwrap().to_string();
    let real = d.api.settled(&real_id, Duration::from_secs(90)).await;
    assert_eq!(real.status, RunStatus::Failed, "{real:#?}");
    let error = real.error.as_ref().unwrap();
    assert_eq!(error.kind, "plan-no-longer-holds", "{error:#?}");
    assert!(
        error
            .message
            .contains(&format!("pg_terminate_backend({pid_b})")),
        "{}",
        error.message
    );
    assert!(
        error
            .message
            .contains(&format!("pg_terminate_backend({pid_a})")),
        "{}",
        error.message
    );
    // The call was refused, not made: B lives and the record says so.
    assert_eq!(runbooks::alive(&db, &[pid_b]).await, [pid_b]);
    assert!(
        real.actions.iter().all(|a| a.state == ActionState::Refused),
        "{:#?}",
        real.actions
    );
    assert_eq!(real.actions.len(), 1, "{:#?}", real.actions);
    let approval = real.approval.as_ref().unwrap();
    assert_eq!(approval.decided_by.as_deref(), Some("alice"));
    // Not retried: it would be refused again.
    assert!(real.retried_by.is_none());
    d.stop().await;
}

fn sqlite_world(rules: &str) -> World {
    World::new()
        .fixture("scripted")
        .sqlite_target("app", "app.db")
        .grant(
            "scripted",
            "app",
            &["read", "write"],
            "max_runtime = \"20s\"",
        )
        .policy(rules)
        .http()
}

const CAREFUL: &str = r#"
[[rule]]
name = "careful"
match = ['alertname="Careful"']
plugin = "scripted"
target = "app"
require_approval = true
params = { hit_sql = "INSERT INTO hits (what) VALUES ('careful')" }

[[rule]]
name = "look"
match = ['alertname="Look"']
plugin = "scripted"
target = "app"
require_approval = true
params = { note = "reads only" }
"#;

async fn hits_table(w: &World) -> sqlx::SqlitePool {
    let db = w.path("app.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", db.display()))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE hits (what TEXT)")
        .execute(&pool)
        .await
        .unwrap();
    pool
}

async fn hits(pool: &sqlx::SqlitePool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM hits")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn fire(api: &crate::daemon::Api, name: &str, fp: &str) -> String {
    let body = api
        .alerts(&payload(vec![alert("firing", fp, &[("alertname", name)])]))
        .await;
    body["runs"][0]["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_plan_needs_no_approval() {
    let w = sqlite_world(CAREFUL);
    let pool = hits_table(&w).await;
    let d = Daemon::start(&w).await;
    let id = fire(&d.api, "Look", "e1").await;
    let r = d.api.settled(&id, Duration::from_secs(30)).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:#?}");
    assert!(r.dry_run, "it ran as the plan's dry run");
    let a = r.approval.as_ref().unwrap();
    assert_eq!(a.state, ApprovalState::NotNeeded);
    assert!(a.reason.as_deref().unwrap().contains("nothing to approve"));
    assert!(r.actions.is_empty());
    // A plan with an action still waits.
    let id = fire(&d.api, "Careful", "e2").await;
    let r = d.api.settled(&id, Duration::from_secs(30)).await;
    assert_eq!(r.status, RunStatus::AwaitingApproval, "{r:#?}");
    assert_eq!(hits(&pool).await, 0);
    d.stop().await;
}

/// What is tried, the token, the body, extra headers, the answer expected.
type TokenCase = (
    &'static str,
    Option<String>,
    &'static str,
    &'static [(&'static str, &'static str)],
    u16,
);

/// Config text, environment, the field the error must name.
type ConfigCase = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approver_is_the_owner_of_the_token() {
    let w = sqlite_world(CAREFUL);
    let pool = hits_table(&w).await;
    let d = Daemon::start(&w).await;
    let id = fire(&d.api, "Careful", "t1").await;
    let plan = d.api.settled(&id, Duration::from_secs(30)).await;
    assert_eq!(plan.status, RunStatus::AwaitingApproval, "{plan:#?}");
    let path = format!("/api/v1/runs/{id}/approve");
    let post = |token: Option<String>,
                body: &'static str,
                headers: &'static [(&'static str, &'static str)]| {
        let api = d.api.clone();
        let path = path.clone();
        async move {
            api.send(
                reqwest::Method::POST,
                &path,
                Some(body.as_bytes().to_vec()),
                token.as_deref(),
                headers,
            )
            .await
        }
    };
    // Hostile members: each refused, nothing approved.
    let alice = approver_token("alice");
    let cases: Vec<TokenCase> = vec![
        ("the shared token", Some(TOKEN.to_string()), "{}", &[], 403),
        (
            "the shared token claiming alice",
            Some(TOKEN.to_string()),
            r#"{"by":"alice"}"#,
            &[],
            403,
        ),
        ("no token", None, "{}", &[], 401),
        ("an empty token", Some(String::new()), "{}", &[], 401),
        (
            "an unknown token",
            Some("not-anyones-token-0123456789".into()),
            "{}",
            &[],
            401,
        ),
        (
            "alice's token with one character changed",
            Some(format!("{}x", &alice[..alice.len() - 1])),
            "{}",
            &[],
            401,
        ),
        (
            "alice's token claiming bob",
            Some(alice.clone()),
            r#"{"by":"bob"}"#,
            &[],
            422,
        ),
        (
            "the shared token with a forged user header",
            Some(TOKEN.to_string()),
            "{}",
            &[
                ("x-forwarded-user", "alice"),
                ("x-warden-approver", "alice"),
            ],
            403,
        ),
    ];
    for (what, token, body, headers, code) in cases {
        let (got, answer) = post(token, body, headers).await;
        assert_eq!(got, code, "{what}: {answer}");
        let now = d.api.run(&id).await;
        assert_eq!(now.status, RunStatus::AwaitingApproval, "{what}");
    }
    // An approver's token does nothing but approve, reject and read.
    let (code, body) = d
        .api
        .send(
            reqwest::Method::POST,
            "/api/v1/runs",
            Some(br#"{"plugin":"scripted","target":"app"}"#.to_vec()),
            Some(&alice),
            &[],
        )
        .await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(hits(&pool).await, 0);

    let (code, body) = post(Some(alice.clone()), r#"{"by":"alice"}"#, &[]).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["plan"]["approval"]["decided_by"], "alice");
    assert_eq!(body["plan"]["approval"]["decided_via"], "api-token");
    let real_id = body["run"]["id"].as_str().unwrap().to_string();
    let real = d.api.settled(&real_id, Duration::from_secs(30)).await;
    assert_eq!(real.status, RunStatus::Succeeded, "{real:#?}");
    assert_eq!(hits(&pool).await, 1);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_records_the_local_user_and_refuses_a_name() {
    let w = sqlite_world(CAREFUL);
    let _pool = hits_table(&w).await;
    let config = w.write();
    let out = std::process::Command::new(crate::world::warden_bin())
        .arg("--config")
        .arg(&config)
        .args(["approve", "some-id", "--by", "alice"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--by"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the receiver got: (path, body).
type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A local HTTP receiver: answers 500 to the first request on each path
/// whose name starts with `flaky`, 200 otherwise.
async fn receiver() -> (String, Received, tokio::task::JoinHandle<()>) {
    let got: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hooks/{name}/{secret}",
            axum::routing::post(
                |State(got): State<Received>,
                 Path((name, secret)): Path<(String, String)>,
                 body: axum::body::Bytes| async move {
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let mut got = got.lock().unwrap();
                    let first = !got
                        .iter()
                        .any(|(p, _)| p.starts_with(&format!("/hooks/{name}/")));
                    got.push((format!("/hooks/{name}/{secret}"), v));
                    if name.starts_with("flaky") && first {
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        axum::http::StatusCode::OK
                    }
                },
            ),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), got, task)
}

fn bodies(got: &Received, prefix: &str) -> Vec<Value> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p.starts_with(prefix))
        .map(|(_, v)| v.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_a_real_receiver_with_retries_and_no_secrets() {
    let (base, got, _server) = receiver().await;
    let slack_url = format!("{base}/hooks/flaky-slack/T0SECRETslackpath");
    let hook_url = format!("{base}/hooks/generic/S3CRETgenericpath");
    let w = sqlite_world(CAREFUL).config(
        r#"
[[notify]]
name = "chat"
kind = "slack"
url_env = "TEST_SLACK_URL"
on = ["awaiting_approval", "succeeded", "failed"]

[[notify]]
name = "pager"
kind = "webhook"
url_env = "TEST_HOOK_URL"
on = ["awaiting_approval", "succeeded"]
plugins = ["scripted"]
"#,
    );
    let pool = hits_table(&w).await;
    let config = w.write();
    let agent = Proc::start_with_env(
        &config,
        &[("TEST_SLACK_URL", &slack_url), ("TEST_HOOK_URL", &hook_url)],
    )
    .await;
    let id = fire(&agent.api, "Careful", "n1").await;
    let plan = agent.api.settled(&id, Duration::from_secs(30)).await;
    assert_eq!(plan.status, RunStatus::AwaitingApproval);

    // Awaiting approval: the Slack message after a 500 and a retry, the
    // generic object at once.
    let slack = wait_for_value("the Slack message", Duration::from_secs(30), || {
        let got = got.clone();
        async move {
            let b = bodies(&got, "/hooks/flaky-slack/");
            (b.len() >= 2).then_some(b)
        }
    })
    .await;
    assert_eq!(slack[0], slack[1], "the retry sends the same message");
    let text = slack[1]["text"].as_str().unwrap();
    assert!(text.contains("plan awaiting approval"), "{text}");
    assert!(text.contains(&format!("warden approve {id}")), "{text}");
    assert!(text.contains("plugin `scripted` on target `app`"), "{text}");
    assert!(text.contains("trigger alert `careful`"), "{text}");
    let generic = wait_for_value("the webhook object", Duration::from_secs(30), || {
        let got = got.clone();
        async move { bodies(&got, "/hooks/generic/").first().cloned() }
    })
    .await;
    assert_eq!(generic["version"], 1);
    assert_eq!(generic["event"], "awaiting_approval");
    assert_eq!(generic["run"]["id"], id.as_str());
    assert_eq!(generic["run"]["status"], "awaiting-approval");
    assert_eq!(generic["run"]["actions"][0]["state"], "planned");
    assert_eq!(
        generic["approve"]["command"],
        format!("warden approve {id}")
    );

    // Approved, the real run ends: both hear of it.
    let (code, body) = agent.api.approve(&id, "oncall").await;
    assert_eq!(code, 200, "{body}");
    let real_id = body["run"]["id"].as_str().unwrap().to_string();
    let real = agent.api.settled(&real_id, Duration::from_secs(30)).await;
    assert_eq!(real.status, RunStatus::Succeeded, "{real:#?}");
    assert_eq!(hits(&pool).await, 1);
    let ended = wait_for_value("the end messages", Duration::from_secs(30), || {
        let got = got.clone();
        let real_id = real_id.clone();
        async move {
            let s = bodies(&got, "/hooks/flaky-slack/");
            let g = bodies(&got, "/hooks/generic/");
            let s = s
                .into_iter()
                .find(|v| v["text"].as_str().is_some_and(|t| t.contains(&real_id)))?;
            let g = g.into_iter().find(|v| v["run"]["id"] == real_id.as_str())?;
            Some((s, g))
        }
    })
    .await;
    assert!(ended.0["text"].as_str().unwrap().contains("run succeeded"));
    assert_eq!(ended.1["event"], "succeeded");
    assert!(ended.1.get("approve").is_none());

    // Counted; and no URL (a secret) in the log or the records.
    let metrics = wait_for_value("the notification counters", Duration::from_secs(30), || {
        let api = agent.api.clone();
        async move {
            let (_, m) = api.get("/metrics").await;
            let m = m.as_str().unwrap_or_default().to_string();
            m.contains(r#"warden_notifications_total{notify="chat",outcome="sent"} 2"#)
                .then_some(m)
        }
    })
    .await;
    assert!(
        metrics
            .contains(r#"warden_notification_attempts_total{notify="chat",result="retryable"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"warden_notifications_total{notify="pager",outcome="sent"} 2"#),
        "{metrics}"
    );
    let log = agent.log_text();
    assert!(log.contains("notification failed; retrying"), "{log}");
    let records = serde_json::to_string(&agent.api.runs().await).unwrap();
    for secret in [
        "T0SECRETslackpath",
        "S3CRETgenericpath",
        &slack_url,
        &hook_url,
    ] {
        assert!(!log.contains(secret), "the log holds {secret}");
        assert!(!records.contains(secret), "the records hold {secret}");
    }
    for token in [TOKEN.to_string(), approver_token("oncall")] {
        assert!(!log.contains(&token));
        assert!(!records.contains(&token));
    }
}

#[test]
fn a_notify_url_is_read_by_reference_and_checked_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.toml");
    let write = |extra: &str| {
        std::fs::write(
            &path,
            format!("plugin_dir = \"p\"\npolicy_dir = \"q\"\n{extra}"),
        )
        .unwrap();
    };
    let load = |env: &'static [(&'static str, &'static str)]| {
        warden::config::Config::load_with_env(&path, move |name| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| std::ffi::OsString::from(v))
        })
    };
    // Several bad members, each named by field, none showing the value.
    let cases: [ConfigCase; 7] = [
        (
            "[[notify]]\nname = \"a\"\nkind = \"slack\"\nurl = \"http://x/y\"\n",
            &[],
            "notify[0].url",
        ),
        (
            "[[notify]]\nname = \"a\"\nkind = \"slack\"\n",
            &[],
            "notify[0]",
        ),
        (
            "[[notify]]\nname = \"a\"\nkind = \"slack\"\nurl_env = \"U\"\n",
            &[],
            "notify[0].url_env",
        ),
        (
            "[[notify]]\nname = \"a\"\nkind = \"slack\"\nurl_env = \"U\"\n",
            &[("U", "ftp://secretpart/x")],
            "notify[0].url_env",
        ),
        (
            "[[notify]]\nname = \"a\"\nkind = \"slack\"\nurl_env = \"U\"\nca_file = \"missing.pem\"\n",
            &[("U", "https://hooks.example/secretpart")],
            "notify[0].ca_file",
        ),
        (
            "[[notify]]\nname = \"a\"\nkind = \"slack\"\nurl_env = \"U\"\nca_file = \"warden.toml\"\n",
            &[("U", "https://hooks.example/secretpart")],
            "notify[0].ca_file",
        ),
        (
            "[[notify]]\nname = \"a\"\nkind = \"teams\"\nurl_env = \"U\"\n",
            &[("U", "http://h/secretpart")],
            "notify[0].kind",
        ),
    ];
    for (text, env, field) in cases {
        write(text);
        let err = load(env).unwrap_err().to_string();
        assert!(err.contains(field), "{text}: {err}");
        assert!(!err.contains("secretpart"), "{text}: {err}");
    }
    write("[[notify]]\nname = \"a\"\nkind = \"slack\"\nurl_env = \"U\"\n");
    let c = load(&[("U", "https://hooks.example/secretpart")]).unwrap();
    assert_eq!(c.notify.len(), 1, "an https:// URL is accepted");
    write("[[notify]]\nname = \"a\"\nkind = \"webhook\"\nurl_env = \"U\"\n");
    let c = load(&[("U", "http://127.0.0.1:9/secretpart")]).unwrap();
    assert_eq!(c.notify.len(), 1);
    assert_eq!(
        c.notify[0].on,
        [
            warden::config::NotifyEvent::AwaitingApproval,
            warden::config::NotifyEvent::Failed
        ]
    );
    assert!(!format!("{:?}", c.notify[0]).contains("secretpart"));
}

/// A test CA and a server certificate for 127.0.0.1 signed by it (the
/// `openssl` command line, which Debian's ca-certificates depends on).
fn test_ca(dir: &std::path::Path) -> [std::path::PathBuf; 3] {
    let run = |args: &[&str]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "openssl {args:?}: {o:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=warden test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    run(&ca);
    let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
    csr.extend(ec);
    csr.extend(["-keyout", "leaf.key", "-out", "leaf.csr"]);
    run(&csr);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "leaf.pem",
    ]);
    ["ca.pem", "leaf.pem", "leaf.key"].map(|f| dir.join(f))
}

/// An HTTPS receiver (rustls) that records each request's path and JSON
/// body and answers 200.
async fn tls_receiver(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> (String, Received, tokio::task::JoinHandle<()>) {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_rustls::rustls;
    let certs = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Received = Arc::default();
    let sink = got.clone();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let sink = sink.clone();
            tokio::spawn(async move {
                // A client that does not trust the certificate ends here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (path, body) = loop {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())
                                .flatten()
                        })
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    break (path, buf[end + 4..end + 4 + len].to_vec());
                };
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                sink.lock().unwrap().push((path, v));
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (format!("https://127.0.0.1:{port}"), got, task)
}

/// Notifications over HTTPS verify the server: a sink that trusts the
/// server's CA (`ca_file`) delivers; one that trusts only Mozilla's roots
/// refuses the certificate, retries, gives up, and the message is counted
/// failed, never sent in the clear or to an unverified server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_over_https_verify_the_server() {
    let certs = tempfile::tempdir().unwrap();
    let [ca, leaf, key] = test_ca(certs.path());
    let (base, got, _server) = tls_receiver(&leaf, &key).await;
    let w = sqlite_world(CAREFUL).config(&format!(
        r#"
[[notify]]
name = "trusted"
kind = "webhook"
url_env = "TEST_TRUSTED_URL"
on = ["awaiting_approval"]
ca_file = "{}"

[[notify]]
name = "untrusted"
kind = "webhook"
url_env = "TEST_UNTRUSTED_URL"
on = ["awaiting_approval"]
"#,
        ca.display()
    ));
    let _pool = hits_table(&w).await;
    let config = w.write();
    let trusted = format!("{base}/trusted/S3CRET");
    let untrusted = format!("{base}/untrusted/S3CRET");
    let agent = Proc::start_with_env(
        &config,
        &[
            ("TEST_TRUSTED_URL", &trusted),
            ("TEST_UNTRUSTED_URL", &untrusted),
        ],
    )
    .await;
    let id = fire(&agent.api, "Careful", "tls1").await;
    let body = wait_for_value("the message over https", Duration::from_secs(30), || {
        let got = got.clone();
        async move { bodies(&got, "/trusted/").first().cloned() }
    })
    .await;
    assert_eq!(body["event"], "awaiting_approval");
    assert_eq!(body["run"]["id"], id.as_str());
    let api = agent.api.clone();
    wait_for(
        "the untrusted sink to give up",
        Duration::from_secs(60),
        || {
            let api = api.clone();
            async move {
                let (_, m) = api
                    .send(reqwest::Method::GET, "/metrics", None, None, &[])
                    .await;
                m.as_str().unwrap_or("").contains(
                    r#"warden_notifications_total{notify="untrusted",outcome="failed"} 1"#,
                )
            }
        },
    )
    .await;
    assert!(bodies(&got, "/untrusted/").is_empty());
    assert!(!agent.log_text().contains("S3CRET"));
}
