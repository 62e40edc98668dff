//! Real Prometheus and Alertmanager for the integration tests (the Debian packages
//! `prometheus` 2.42 and `prometheus-alertmanager` 0.25).
//!
//! - [`MetricSource`]: a `/metrics` endpoint in the Prometheus text format whose gauges
//!   the test sets.
//! - [`Alertmanager`]: routes every alert to one webhook with a bearer token;
//!   `group_wait` / `group_interval` 1 s, `send_resolved: true`, clustering off.
//! - [`Prometheus`]: scrapes the given targets and evaluates the given rules every
//!   second, sends alerts to an [`Alertmanager`] and resends them every second
//!   (`--rules.alert.resend-delay=1s`).
//!
//! Each server is a child process on 127.0.0.1 on a free port (a new port is tried
//! when the probed one gets taken before the server binds it), with its config, data
//! and log (`server.log`, stdout and stderr) in its own temp dir. A failure to start
//! panics with the tail of that log. Dropping the value kills the process (SIGKILL),
//! reaps it and removes the dir. The child also gets SIGKILL when the thread that
//! started it exits (`PR_SET_PDEATHSIG`), so a killed test process leaves no server
//! behind (only its temp dir); start servers from the test's own task, not from a
//! short-lived thread such as `spawn_blocking`'s.
//!
//! How fast alerts move: Prometheus 2.42 hands discovered targets (scrape targets and
//! Alertmanagers, even static ones) to its scrape manager and notifier at most every
//! 5 s, a fixed interval, so the first alert reaches Alertmanager ~5–6 s after start;
//! after that a rule change reaches the webhook in ~1–2 s. Prometheus stamps a firing
//! alert `endsAt = now + 4 × max(resend-delay, evaluation interval)` (4 s here) and
//! sends a resolved one as soon as the rule stops matching, so Alertmanager's
//! `resolve_timeout` never applies to them; Alertmanager notifies within `group_wait`
//! of a new group and within `group_interval` of a change. Alerts posted with
//! [`Alertmanager::post_alerts`] without `endsAt` only resolve after `resolve_timeout`
//! (5 min): post them again with `endsAt` in the past to resolve them.
//!
//! `WARDEN_PROMETHEUS_BIN` / `WARDEN_ALERTMANAGER_BIN` override the binaries
//! (defaults `/usr/bin/prometheus`, `/usr/bin/prometheus-alertmanager`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::tail;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";
const ALERTMANAGER_BIN: &str = "/usr/bin/prometheus-alertmanager";
/// How long a server may take to answer `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Start attempts when the probed port is taken before the server binds it.
const START_ATTEMPTS: u32 = 5;
/// Lines of a server's log quoted in a panic message.
const LOG_TAIL_LINES: usize = 40;

// --- MetricSource ------------------------------------------------------------------

/// A metric endpoint the test controls: serves `GET /metrics` in the Prometheus text
/// format on `127.0.0.1:PORT`. Every sample is a gauge; the server stops on drop.
pub struct MetricSource {
    address: String,
    samples: Arc<Mutex<Samples>>,
    server: tokio::task::AbortHandle,
}

/// name → rendered label set (`{a="b"}` or empty) → value.
type Samples = BTreeMap<String, BTreeMap<String, f64>>;

impl MetricSource {
    /// Binds a free loopback port and serves the (initially empty) samples.
    pub async fn start() -> MetricSource {
        let samples: Arc<Mutex<Samples>> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the metric source");
        let address = listener.local_addr().unwrap().to_string();
        let state = Arc::clone(&samples);
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let body = render(&state.lock().unwrap());
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        body,
                    )
                }
            }),
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        })
        .abort_handle();
        MetricSource {
            address,
            samples,
            server,
        }
    }

    /// `127.0.0.1:PORT`, a scrape target.
    pub fn address(&self) -> String {
        self.address.clone()
    }

    /// Sets gauge `name{labels} = value` (replacing the sample with the same labels).
    pub fn set(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        assert!(
            valid_metric_name(name),
            "{name:?} is not a valid metric name"
        );
        let mut sorted: Vec<(&str, &str)> = labels.to_vec();
        sorted.sort();
        let mut rendered = String::new();
        for (i, (label, label_value)) in sorted.iter().enumerate() {
            assert!(
                valid_label_name(label),
                "{label:?} is not a valid label name"
            );
            rendered.push(if i == 0 { '{' } else { ',' });
            let _ = write!(rendered, "{label}=\"{}\"", escape_label_value(label_value));
        }
        if !rendered.is_empty() {
            rendered.push('}');
        }
        self.samples
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default()
            .insert(rendered, value);
    }
}

impl Drop for MetricSource {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn render(samples: &Samples) -> String {
    let mut out = String::new();
    for (name, series) in samples {
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in series {
            let _ = writeln!(out, "{name}{labels} {}", format_value(*value));
        }
    }
    out
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        value.to_string()
    }
}

fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

// --- Alertmanager ------------------------------------------------------------------

/// A running Alertmanager (see the module documentation). Killed on drop.
pub struct Alertmanager {
    server: Server,
}

impl Alertmanager {
    /// Starts Alertmanager routing every alert to `webhook_url` with
    /// `Authorization: Bearer <bearer_token>`, grouped by `alertname` and `target`;
    /// `group_wait` and `group_interval` 1 s, `repeat_interval` 1 h, resolved alerts
    /// notified. Returns once `/-/ready` answers.
    pub async fn start(webhook_url: &str, bearer_token: &str) -> Alertmanager {
        Self::start_grouped(webhook_url, bearer_token, &["alertname", "target"]).await
    }

    /// [`Alertmanager::start`] with the route's `group_by` labels given.
    pub async fn start_grouped(
        webhook_url: &str,
        bearer_token: &str,
        group_by: &[&str],
    ) -> Alertmanager {
        let dir = temp_dir("warden-alertmanager-");
        let config = json!({
            "route": {
                "receiver": "warden",
                "group_by": group_by,
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [{
                "name": "warden",
                "webhook_configs": [{
                    "url": webhook_url,
                    "send_resolved": true,
                    "http_config": {
                        "authorization": { "type": "Bearer", "credentials": bearer_token },
                    },
                }],
            }],
        });
        // JSON is YAML: no quoting to get wrong.
        let config_file = dir.path().join("alertmanager.yml");
        fs::write(&config_file, config.to_string()).expect("writing alertmanager.yml");
        let data_dir = dir.path().join("data");
        let bin = binary("WARDEN_ALERTMANAGER_BIN", ALERTMANAGER_BIN);
        let server = Server::start("alertmanager", dir, |port| {
            let mut cmd = Command::new(&bin);
            cmd.arg(format!("--config.file={}", config_file.display()))
                .arg(format!("--storage.path={}", data_dir.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--cluster.listen-address=")
                .arg("--log.level=debug");
            cmd
        })
        .await;
        Alertmanager { server }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// `127.0.0.1:PORT` (an alerting target for Prometheus).
    pub fn address(&self) -> String {
        self.server.address()
    }

    /// The server's output so far (stdout and stderr).
    pub fn log(&self) -> String {
        self.server.log()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// Posts `alerts` (a JSON array of `{labels, annotations, startsAt?, endsAt?,
    /// generatorURL?}`) to `/api/v2/alerts`. Panics unless Alertmanager accepts them.
    pub async fn post_alerts(&self, alerts: serde_json::Value) {
        let url = format!("{}/api/v2/alerts", self.url());
        let response = crate::http_client()
            .post(&url)
            .json(&alerts)
            .send()
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "POST {url} failed: {err}\n{}",
                    self.server.log_tail_section()
                )
            });
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            panic!(
                "POST {url} answered {status}: {body}\n{}",
                self.server.log_tail_section()
            );
        }
    }
}

// --- Prometheus --------------------------------------------------------------------

/// A running Prometheus (see the module documentation). Killed on drop.
pub struct Prometheus {
    server: Server,
}

impl Prometheus {
    /// Starts Prometheus scraping `scrape_targets` (`host:port`, job `warden-test`)
    /// every second, evaluating the rule file `rules_yaml` every second and sending
    /// alerts to `alertmanager`. Returns once `/-/ready` answers.
    pub async fn start(
        scrape_targets: &[String],
        rules_yaml: &str,
        alertmanager: &Alertmanager,
    ) -> Prometheus {
        let dir = temp_dir("warden-prometheus-");
        let rules_file = dir.path().join("rules.yml");
        fs::write(&rules_file, rules_yaml).expect("writing rules.yml");
        let config = json!({
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [rules_file.display().to_string()],
            "alerting": {
                "alertmanagers": [{
                    "static_configs": [{ "targets": [alertmanager.address()] }],
                }],
            },
            "scrape_configs": [{
                "job_name": "warden-test",
                "static_configs": [{ "targets": scrape_targets }],
            }],
        });
        let config_file = dir.path().join("prometheus.yml");
        fs::write(&config_file, config.to_string()).expect("writing prometheus.yml");
        let data_dir = dir.path().join("data");
        let bin = binary("WARDEN_PROMETHEUS_BIN", PROMETHEUS_BIN);
        let server = Server::start("prometheus", dir, |port| {
            let mut cmd = Command::new(&bin);
            cmd.arg(format!("--config.file={}", config_file.display()))
                .arg(format!("--storage.tsdb.path={}", data_dir.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--rules.alert.resend-delay=1s")
                .arg("--log.level=debug");
            cmd
        })
        .await;
        Prometheus { server }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The server's output so far (stdout and stderr).
    pub fn log(&self) -> String {
        self.server.log()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }
}

// --- a server process --------------------------------------------------------------

/// A child process in its own temp dir, listening on `127.0.0.1:port`.
struct Server {
    // Declared before `_dir`: the process is killed before the dir is removed.
    process: Process,
    port: u16,
    log_file: PathBuf,
    _dir: tempfile::TempDir,
}

/// A child process killed (SIGKILL) and reaped on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    /// Starts `command(port)` on a free port until `/-/ready` answers; retries on a
    /// new port when the server exits because its port was taken.
    async fn start(name: &str, dir: tempfile::TempDir, command: impl Fn(u16) -> Command) -> Server {
        let log_file = dir.path().join("server.log");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port();
            let log = File::create(&log_file).expect("creating the server log");
            let mut cmd = command(port);
            let parent = std::process::id();
            cmd.current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("cloning the log file handle"))
                .stderr(log);
            // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) run between
            // fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // The parent died before prctl took effect.
                    if libc::getppid() as u32 != parent {
                        libc::_exit(1);
                    }
                    Ok(())
                });
            }
            let line = format!("{cmd:?}");
            let child = cmd
                .spawn()
                .unwrap_or_else(|err| panic!("could not start {name} ({line}): {err}"));
            let mut process = Process(child);
            let url = format!("http://127.0.0.1:{port}/-/ready");
            match wait_ready(&mut process.0, &url).await {
                Ok(()) => {
                    return Server {
                        process,
                        port,
                        log_file,
                        _dir: dir,
                    };
                }
                Err(reason) => {
                    drop(process);
                    let log = fs::read_to_string(&log_file).unwrap_or_default();
                    if log.contains("address already in use") && attempt < START_ATTEMPTS {
                        eprintln!(
                            "warden_tests::monitoring: {name} could not bind port {port}, retrying"
                        );
                        let _ = fs::remove_dir_all(dir.path().join("data"));
                        continue;
                    }
                    panic!(
                        "{name} did not start ({reason}; attempt {attempt}): {line}\n{}",
                        log_tail_section(&log_file)
                    );
                }
            }
        }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self) -> String {
        format!("http://{}", self.address())
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    fn log_tail_section(&self) -> String {
        log_tail_section(&self.log_file)
    }

    fn pid(&self) -> u32 {
        self.process.0.id()
    }
}

/// Polls `url` until it answers 200, `child` exits, or [`READY_TIMEOUT`] is up.
async fn wait_ready(child: &mut Child, url: &str) -> Result<(), String> {
    warden::install_tls_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("building an HTTP client");
    let start = Instant::now();
    let mut interval = Duration::from_millis(10);
    loop {
        if let Some(status) = child.try_wait().expect("polling the child") {
            return Err(format!("it exited with {status}"));
        }
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if start.elapsed() > READY_TIMEOUT {
            return Err(format!("{url} did not answer 200 within {READY_TIMEOUT:?}"));
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_millis(100));
    }
}

fn log_tail_section(log_file: &Path) -> String {
    let log = fs::read_to_string(log_file).unwrap_or_default();
    format!(
        "--- {} (tail) ---\n{}",
        log_file.display(),
        tail(&log, LOG_TAIL_LINES)
    )
}

fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("creating a temp dir")
}

fn binary(env: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    if !Path::new(&path).is_file() {
        panic!(
            "{} not found (set {env} to override): install the Debian packages \
             `prometheus prometheus-alertmanager` (`cargo xtask test` does)",
            path.display()
        );
    }
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("probing for a free port")
        .port()
}
