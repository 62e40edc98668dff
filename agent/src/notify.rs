//! Run notifications (`[[notify]]`): when a plan waits for approval and
//! when a run ends, a message goes to a Slack-compatible incoming webhook
//! or to a generic JSON webhook.
//!
//! Sending never blocks a run: [`Notifier::run_event`] puts the message in
//! a bounded queue per `[[notify]]` ([`QUEUE`] messages; when full, the
//! message is dropped and counted), and one task per `[[notify]]` delivers
//! them in order. A delivery is retried on a connection error, a timeout,
//! 429 or a 5xx answer, with backoff, at most [`ATTEMPTS`] times and within
//! [`DELIVERY_BUDGET`]; each attempt has [`ATTEMPT_TIMEOUT`]. Other answers
//! (4xx) are not retried. Outcomes are logged (never with the URL, which is
//! a secret) and counted in `warden_notifications_total{notify,outcome}`.
//!
//! The generic webhook's JSON object (`version` 1):
//!
//! ```json
//! {
//!   "version": 1,
//!   "event": "awaiting_approval",
//!   "run": {
//!     "id": "0190...", "plugin": "runbook", "target": "app",
//!     "trigger": {"kind": "alert", "name": "PgTooManyConnections"},
//!     "status": "awaiting-approval", "dry_run": true,
//!     "summary": "...", "error": null,
//!     "actions": [{"target": "app", "statement": "SELECT pg_terminate_backend(4242) -- ...",
//!                  "class": "session-control", "state": "planned"}],
//!     "started_at": "...", "ended_at": "...",
//!     "approval": {"expires_at": "...", "decided_by": null, "linked_run": null}
//!   },
//!   "approve": {"command": "warden approve 0190...", "api": "POST /api/v1/runs/0190.../approve"}
//! }
//! ```
//!
//! `approve` is present for `awaiting_approval` only. Records are redacted
//! before they are stored, so nothing here carries a credential.

use crate::config::{NotifyConfig, NotifyEvent, NotifyKind};
use crate::runs::{RunRecord, RunStatus, Trigger};
use crate::telemetry::Metrics;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Messages waiting per `[[notify]]`; more are dropped (and counted).
pub const QUEUE: usize = 256;
/// Most attempts per message.
pub const ATTEMPTS: u32 = 5;
/// Time one attempt may take (connect, send, answer).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time all attempts of one message may take, backoff included.
pub const DELIVERY_BUDGET: Duration = Duration::from_secs(60);
/// First backoff; doubled after each failed attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Most characters of a summary or error in a message.
const TEXT_CHARS: usize = 1500;
/// Most actions listed in a message.
const ACTIONS_LISTED: usize = 10;

/// The event a finished (or waiting) run is, if any.
pub fn event_of(status: RunStatus) -> Option<NotifyEvent> {
    match status {
        RunStatus::AwaitingApproval => Some(NotifyEvent::AwaitingApproval),
        RunStatus::Succeeded => Some(NotifyEvent::Succeeded),
        RunStatus::Failed
        | RunStatus::Trapped
        | RunStatus::TimedOut
        | RunStatus::LimitExceeded
        | RunStatus::Interrupted
        | RunStatus::Denied
        | RunStatus::Rejected => Some(NotifyEvent::Failed),
        RunStatus::Queued
        | RunStatus::Running
        | RunStatus::Skipped
        | RunStatus::Approved
        | RunStatus::Cancelled
        | RunStatus::Expired
        | RunStatus::Missed => None,
    }
}

struct Sink {
    config: NotifyConfig,
    tx: mpsc::Sender<Vec<u8>>,
}

/// The HTTP client of one `[[notify]]`: TLS (rustls on ring) trusting
/// Mozilla's roots and the sink's `ca_file`, per-attempt timeouts, no
/// redirects.
fn client_for(config: &NotifyConfig) -> anyhow::Result<reqwest::Client> {
    crate::install_tls_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &config.ca_file {
        let certs = crate::config::read_ca_file(path).map_err(|e| anyhow::anyhow!(e))?;
        for cert in certs {
            roots.add(cert).map_err(|e| {
                anyhow::anyhow!(
                    "notify {}: a certificate in {}: {e}",
                    config.name,
                    path.display()
                )
            })?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| anyhow::anyhow!("TLS settings: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(ATTEMPT_TIMEOUT)
        .connect_timeout(ATTEMPT_TIMEOUT)
        // A redirect would send the message (and maybe the secret
        // path) somewhere not configured.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| anyhow::anyhow!("building the notification HTTP client: {}", e.without_url()))
}

/// Sends run events to every `[[notify]]` that wants them.
pub struct Notifier {
    sinks: Vec<Sink>,
    metrics: Metrics,
}

impl Notifier {
    /// Starts one delivery task per `[[notify]]` (on the current tokio
    /// runtime); they end when the notifier is dropped and their queues
    /// are empty.
    pub fn start(configs: &[NotifyConfig], metrics: &Metrics) -> anyhow::Result<Notifier> {
        let sinks = configs
            .iter()
            .map(|config| {
                let client = client_for(config)?;
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(deliver_all(config.clone(), client, rx, metrics.clone()));
                Ok(Sink {
                    config: config.clone(),
                    tx,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Notifier {
            sinks,
            metrics: metrics.clone(),
        })
    }

    /// Queues the message for `rec` to every `[[notify]]` that wants its
    /// event and plugin. Never waits.
    pub fn run_event(&self, rec: &RunRecord) {
        let Some(event) = event_of(rec.status) else {
            return;
        };
        for sink in &self.sinks {
            let c = &sink.config;
            if !c.on.contains(&event) || (!c.plugins.is_empty() && !c.plugins.contains(&rec.plugin))
            {
                continue;
            }
            let body = match c.kind {
                NotifyKind::Slack => slack_payload(event, rec),
                NotifyKind::Webhook => webhook_payload(event, rec),
            };
            let bytes = body.to_string().into_bytes();
            if sink.tx.try_send(bytes).is_err() {
                self.metrics.notification(&c.name, "dropped");
                tracing::warn!(
                    notify = %c.name,
                    run = %rec.id,
                    event = event.as_str(),
                    "notification dropped: its queue is full ({QUEUE} waiting)"
                );
            }
        }
    }
}

async fn deliver_all(
    config: NotifyConfig,
    client: reqwest::Client,
    mut rx: mpsc::Receiver<Vec<u8>>,
    metrics: Metrics,
) {
    while let Some(body) = rx.recv().await {
        let outcome = deliver(&config, &client, body, &metrics).await;
        metrics.notification(&config.name, outcome);
    }
}

/// What one attempt came to.
enum Attempt {
    Ok,
    /// Worth another try (connection error, timeout, 429, 5xx): why.
    Retry(String),
    /// Not worth another (other answers): why.
    Refused(String),
}

/// Delivers one message; `sent` or `failed`.
async fn deliver(
    config: &NotifyConfig,
    client: &reqwest::Client,
    body: Vec<u8>,
    metrics: &Metrics,
) -> &'static str {
    let started = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let result = client
            .post(config.url.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        let outcome = match result {
            Ok(resp) if resp.status().is_success() => Attempt::Ok,
            Ok(resp)
                if resp.status().is_server_error()
                    || resp.status() == reqwest::StatusCode::TOO_MANY_REQUESTS =>
            {
                Attempt::Retry(format!("answered {}", resp.status()))
            }
            Ok(resp) => Attempt::Refused(format!("answered {}", resp.status())),
            // Never the URL: it is a secret.
            Err(e) => Attempt::Retry(e.without_url().to_string()),
        };
        match outcome {
            Attempt::Ok => {
                metrics.notification_attempt(&config.name, "ok");
                tracing::debug!(notify = %config.name, attempt, "notification sent");
                return "sent";
            }
            Attempt::Refused(why) => {
                metrics.notification_attempt(&config.name, "refused");
                tracing::warn!(notify = %config.name, attempt, reason = %why, "notification refused; not retried");
                return "failed";
            }
            Attempt::Retry(why) => {
                metrics.notification_attempt(&config.name, "retryable");
                let next = started.elapsed() + backoff;
                if attempt == ATTEMPTS || next > DELIVERY_BUDGET {
                    tracing::warn!(notify = %config.name, attempt, reason = %why, "notification failed; giving up");
                    return "failed";
                }
                tracing::info!(notify = %config.name, attempt, reason = %why, retry_in = ?backoff, "notification failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
        }
    }
    "failed"
}

fn clip(s: &str) -> String {
    let mut s = s.to_string();
    crate::text::truncate_utf8(&mut s, TEXT_CHARS);
    s
}

fn trigger_json(t: &Trigger) -> serde_json::Value {
    match t {
        Trigger::Manual { by } => json!({"kind": "manual", "name": by}),
        Trigger::Schedule { name } => json!({"kind": "schedule", "name": name}),
        Trigger::Alert { rule, .. } => json!({"kind": "alert", "name": rule}),
    }
}

fn summary(rec: &RunRecord) -> Option<String> {
    rec.report
        .as_ref()
        .map(|r| clip(&r.summary))
        .filter(|s| !s.is_empty())
}

/// The generic webhook's object (see the module docs).
pub fn webhook_payload(event: NotifyEvent, rec: &RunRecord) -> serde_json::Value {
    let actions: Vec<serde_json::Value> = rec
        .actions
        .iter()
        .take(ACTIONS_LISTED)
        .map(|a| {
            json!({
                "target": a.target,
                "statement": clip(&a.statement),
                "params": a.params,
                "class": a.class,
                "state": a.state,
            })
        })
        .collect();
    let mut v = json!({
        "version": 1,
        "event": event.as_str(),
        "run": {
            "id": rec.id,
            "plugin": rec.plugin,
            "target": rec.target,
            "trigger": trigger_json(&rec.trigger),
            "status": rec.status,
            "dry_run": rec.dry_run,
            "summary": summary(rec),
            "error": rec.error.as_ref().map(|e| json!({"kind": e.kind, "message": clip(&e.message)})),
            "actions": actions,
            "actions_total": rec.actions.len(),
            "started_at": rec.started_at,
            "ended_at": rec.ended_at,
            "approval": rec.approval.as_ref().map(|a| json!({
                "expires_at": a.expires_at,
                "decided_by": a.decided_by,
                "linked_run": a.linked_run,
            })),
        },
    });
    if event == NotifyEvent::AwaitingApproval {
        v["approve"] = json!({
            "command": format!("warden approve {}", rec.id),
            "api": format!("POST /api/v1/runs/{}/approve", rec.id),
        });
    }
    v
}

/// Escapes text for Slack's mrkdwn (`&`, `<`, `>`).
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Slack-compatible message: `{"text": ...}` (Slack, Mattermost and
/// Rocket.Chat incoming webhooks read it).
pub fn slack_payload(event: NotifyEvent, rec: &RunRecord) -> serde_json::Value {
    let e = slack_escape;
    let head = match event {
        NotifyEvent::AwaitingApproval => ":hourglass: plan awaiting approval",
        NotifyEvent::Succeeded => ":white_check_mark: run succeeded",
        NotifyEvent::Failed => ":x: run ended without success",
    };
    let trigger = trigger_json(&rec.trigger);
    let mut lines = vec![
        format!("*Warden: {head}*"),
        format!(
            "run `{}`: plugin `{}` on target `{}`, trigger {} `{}`, status *{}*",
            e(&rec.id),
            e(&rec.plugin),
            e(&rec.target),
            trigger["kind"].as_str().unwrap_or_default(),
            e(trigger["name"].as_str().unwrap_or_default()),
            rec.status
        ),
    ];
    if let Some(s) = summary(rec) {
        lines.push(format!("summary: {}", e(&s)));
    }
    if let Some(err) = &rec.error {
        lines.push(format!(
            "error ({}): {}",
            e(&err.kind),
            e(&clip(&err.message))
        ));
    }
    if !rec.actions.is_empty() {
        lines.push(format!("actions ({}):", rec.actions.len()));
        for a in rec.actions.iter().take(ACTIONS_LISTED) {
            lines.push(format!("• {:?}: `{}`", a.state, e(&clip(&a.statement))));
        }
    }
    if event == NotifyEvent::AwaitingApproval {
        if let Some(at) = rec.approval.as_ref().and_then(|a| a.expires_at) {
            lines.push(format!("the plan expires at {}", at.to_rfc3339()));
        }
        lines.push(format!(
            "approve: `warden approve {id}` or `POST /api/v1/runs/{id}/approve` with your approver token",
            id = e(&rec.id)
        ));
    }
    json!({ "text": lines.join("\n") })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn rec(status: RunStatus) -> RunRecord {
        let mut r = RunRecord::new(
            "runbook",
            "app",
            Trigger::Schedule {
                name: "nightly <x>".into(),
            },
            BTreeMap::new(),
            true,
        );
        r.status = status;
        r
    }

    #[test]
    fn every_status_maps_to_at_most_one_event() {
        let waiting: Vec<_> = RunStatus::ALL
            .into_iter()
            .filter(|s| event_of(*s) == Some(NotifyEvent::AwaitingApproval))
            .collect();
        assert_eq!(waiting, [RunStatus::AwaitingApproval]);
        for s in RunStatus::ALL {
            if s.is_failure() {
                assert_eq!(event_of(s), Some(NotifyEvent::Failed), "{s}");
            }
            if !s.is_final() && s != RunStatus::AwaitingApproval {
                assert_eq!(event_of(s), None, "{s}");
            }
        }
    }

    #[test]
    fn the_slack_text_escapes_and_says_how_to_approve() {
        let r = rec(RunStatus::AwaitingApproval);
        let v = slack_payload(NotifyEvent::AwaitingApproval, &r);
        let text = v["text"].as_str().unwrap();
        assert!(text.contains("nightly &lt;x&gt;"), "{text}");
        assert!(text.contains(&format!("warden approve {}", r.id)), "{text}");
        let done = slack_payload(NotifyEvent::Succeeded, &rec(RunStatus::Succeeded));
        assert!(!done["text"].as_str().unwrap().contains("warden approve"));
    }

    #[test]
    fn the_webhook_object_is_versioned_and_approves_only_when_waiting() {
        let r = rec(RunStatus::AwaitingApproval);
        let v = webhook_payload(NotifyEvent::AwaitingApproval, &r);
        assert_eq!(v["version"], 1);
        assert_eq!(v["event"], "awaiting_approval");
        assert_eq!(v["run"]["status"], "awaiting-approval");
        assert_eq!(v["run"]["trigger"]["kind"], "schedule");
        assert_eq!(v["approve"]["command"], format!("warden approve {}", r.id));
        let v = webhook_payload(NotifyEvent::Failed, &rec(RunStatus::Failed));
        assert!(v.get("approve").is_none());
    }
}
