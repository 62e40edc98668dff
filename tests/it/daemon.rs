//! A running agent for tests: in-process ([`Daemon`], the same
//! `service::start` that `warden run` uses) or as a `warden run` child
//! process ([`Proc`], for crashes and signals), and a small client of its
//! HTTP API.

use crate::world::{TOKEN, World, warden_bin};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use warden::agent::Agent;
use warden::runs::{RunRecord, RunStatus};
use warden::service::Running;
use warden_tests::wait_for_value;

/// The agent running inside the test process.
pub struct Daemon {
    pub running: Running,
    pub agent: Arc<Agent>,
    pub api: Api,
}

impl Daemon {
    pub async fn start(world: &World) -> Daemon {
        let agent = Arc::new(world.agent().await);
        let running = warden::service::start(agent.clone()).await.unwrap();
        let addr = running.http_addr.expect("the world has no [http]");
        Daemon {
            running,
            agent,
            api: Api::new(&format!("http://{addr}")),
        }
    }

    pub async fn stop(self) {
        self.running.stop().await;
    }
}

/// A client of the agent's HTTP API.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            base: base.to_string(),
            client: warden_tests::http_client(),
        }
    }

    /// A request with the right token.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.unwrap();
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (code, value)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(
            reqwest::Method::POST,
            path,
            Some(serde_json::to_vec(body).unwrap()),
            Some(TOKEN),
            &[],
        )
        .await
    }

    /// Approves plan `id` with approver `who`'s own token.
    pub async fn approve(&self, id: &str, who: &str) -> (u16, Value) {
        self.send(
            reqwest::Method::POST,
            &format!("/api/v1/runs/{id}/approve"),
            Some(b"{}".to_vec()),
            Some(&crate::world::approver_token(who)),
            &[],
        )
        .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None, Some(TOKEN), &[])
            .await
    }

    /// Posts alerts; panics unless accepted (200).
    pub async fn alerts(&self, payload: &Value) -> Value {
        let (code, body) = self.post("/api/v1/alerts", payload).await;
        assert_eq!(code, 200, "{body}");
        body
    }

    pub async fn run(&self, id: &str) -> RunRecord {
        let (code, body) = self.get(&format!("/api/v1/runs/{id}")).await;
        assert_eq!(code, 200, "{body}");
        serde_json::from_value(body).unwrap()
    }

    pub async fn runs(&self) -> Vec<RunRecord> {
        let (code, body) = self.get("/api/v1/runs?limit=1000").await;
        assert_eq!(code, 200, "{body}");
        serde_json::from_value(body).unwrap()
    }

    /// Waits until run `id` reaches a final status (or `awaiting-approval`).
    pub async fn settled(&self, id: &str, within: Duration) -> RunRecord {
        wait_for_value(&format!("run {id} to settle"), within, || async {
            let r = self.run(id).await;
            (r.status.is_final() || r.status == RunStatus::AwaitingApproval).then_some(r)
        })
        .await
    }
}

/// One Alertmanager alert.
pub fn alert(status: &str, fingerprint: &str, labels: &[(&str, &str)]) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "status": status,
        "labels": labels,
        "annotations": {"summary": "test alert"},
        "startsAt": "2026-11-22T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
    })
}

/// An Alertmanager webhook payload (version 4) around `alerts`.
pub fn payload(alerts: Vec<Value>) -> Value {
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"Test\"}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "warden",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    })
}

/// `warden run` as a child process, with its (JSON) log collected.
pub struct Proc {
    pub child: Child,
    pub api: Api,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub async fn start(config: &std::path::Path) -> Proc {
        Proc::start_with_env(config, &[]).await
    }

    pub async fn start_with_env(config: &std::path::Path, env: &[(&str, &str)]) -> Proc {
        Proc::start_with(config, env, None).await
    }

    /// Like [`Proc::start_with_env`]; `max_files`, if given, is the child's
    /// open-file limit (`RLIMIT_NOFILE`, soft and hard).
    pub async fn start_with(
        config: &std::path::Path,
        env: &[(&str, &str)],
        max_files: Option<u64>,
    ) -> Proc {
        let mut cmd = Command::new(warden_bin());
        if let Some(n) = max_files {
            use std::os::unix::process::CommandExt as _;
            let limit = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            // SAFETY: setrlimit is async-signal-safe and touches only the child.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        cmd.arg("--config")
            .arg(config)
            .args(["--log-format", "json", "run"])
            .env("WARDEN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let probe = log.clone();
        let addr = wait_for_value("warden run to listen", Duration::from_secs(60), || {
            let lines = probe.lock().unwrap().clone();
            async move {
                lines.iter().find_map(|l| {
                    let v: Value = serde_json::from_str(l).ok()?;
                    v["address"].as_str().map(str::to_string)
                })
            }
        })
        .await;
        Proc {
            child,
            api: Api::new(&format!("http://{addr}")),
            log,
        }
    }

    /// The log so far, one line per entry.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit.
    pub fn term(&mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
