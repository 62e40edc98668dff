//! Prometheus metrics (prometheus-client), exposed in the OpenMetrics text format.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of [`Metrics::encode`]'s output. Prometheus (2.42 included)
/// picks its OpenMetrics parser from this header.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Label values longer than this (in characters) are cut.
pub const MAX_LABEL_LEN: usize = 64;

/// Upper bounds of `warden_run_duration_seconds`, 5 ms to 10 min.
pub const RUN_DURATION_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

type Labels1 = [(&'static str, String); 1];
type Labels2 = [(&'static str, String); 2];

/// The agent's metrics. Cloning is cheap (one `Arc`); every update is lock-free
/// or takes a short read lock, so any task may update them.
///
/// | family | type | labels |
/// |---|---|---|
/// | `warden_runs_total` | counter | `plugin`, `status` |
/// | `warden_run_duration_seconds` | histogram | `plugin` |
/// | `warden_queue_depth` | gauge | |
/// | `warden_runs_in_flight` | gauge | |
/// | `warden_guardrail_decisions_total` | counter | `rule`, `decision` |
/// | `warden_webhook_requests_total` | counter | `code` |
/// | `warden_alerts_received_total` | counter | |
/// | `warden_reloads_total` | counter | `kind`, `result` (`ok`/`rejected`) |
/// | `warden_run_starts_refused_total` | counter | `plugin` (the caller), `limit` (`chain-depth`/`per-run`/`queue`) |
/// | `warden_http_connections` | gauge | |
/// | `warden_http_connections_closed_total` | counter | `reason` |
/// | `warden_http_accept_errors_total` | counter | |
/// | `warden_notifications_total` | counter | `notify`, `outcome` (`sent`/`failed`/`dropped`) |
/// | `warden_notification_attempts_total` | counter | `notify`, `result` (`ok`/`retryable`/`refused`) |
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    runs: Family<Labels2, Counter>,
    run_duration: Family<Labels1, Histogram, fn() -> Histogram>,
    queue_depth: Gauge,
    running: Gauge,
    guardrail: Family<Labels2, Counter>,
    webhook: Family<Labels1, Counter>,
    alerts: Counter,
    reloads: Family<Labels2, Counter>,
    starts_refused: Family<Labels2, Counter>,
    http_connections: Gauge,
    http_closed: Family<Labels1, Counter>,
    http_accept_errors: Counter,
    notifications: Family<Labels2, Counter>,
    notification_attempts: Family<Labels2, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn run_duration_histogram() -> Histogram {
    Histogram::new(RUN_DURATION_BUCKETS)
}

/// `value` cut to [`MAX_LABEL_LEN`] characters.
fn label(value: &str) -> String {
    match value.char_indices().nth(MAX_LABEL_LEN) {
        Some((end, _)) => value[..end].to_string(),
        None => value.to_string(),
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let runs = Family::<Labels2, Counter>::default();
        // Counters get their `_total` suffix from the encoder.
        registry.register("warden_runs", "Finished plugin runs", runs.clone());
        let run_duration = Family::<Labels1, Histogram, fn() -> Histogram>::new_with_constructor(
            run_duration_histogram,
        );
        registry.register_with_unit(
            "warden_run_duration",
            "Duration of finished plugin runs",
            Unit::Seconds,
            run_duration.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "warden_queue_depth",
            "Runs waiting to start",
            queue_depth.clone(),
        );
        let running = Gauge::default();
        registry.register("warden_runs_in_flight", "Runs in progress", running.clone());
        let guardrail = Family::<Labels2, Counter>::default();
        registry.register(
            "warden_guardrail_decisions",
            "Guardrail decisions by rule",
            guardrail.clone(),
        );
        let webhook = Family::<Labels1, Counter>::default();
        registry.register(
            "warden_webhook_requests",
            "Webhook requests by response code",
            webhook.clone(),
        );
        let alerts = Counter::default();
        registry.register(
            "warden_alerts_received",
            "Alerts received by the webhook",
            alerts.clone(),
        );
        let reloads = Family::<Labels2, Counter>::default();
        registry.register(
            "warden_reloads",
            "Configuration and policy reloads",
            reloads.clone(),
        );
        let starts_refused = Family::<Labels2, Counter>::default();
        registry.register(
            "warden_run_starts_refused",
            "runs.start calls refused by a bound on runs started by runs",
            starts_refused.clone(),
        );
        let http_connections = Gauge::default();
        registry.register(
            "warden_http_connections",
            "Open connections to the HTTP API",
            http_connections.clone(),
        );
        let http_closed = Family::<Labels1, Counter>::default();
        registry.register(
            "warden_http_connections_closed",
            "HTTP connections the agent refused or closed to protect the listener, by reason",
            http_closed.clone(),
        );
        let http_accept_errors = Counter::default();
        registry.register(
            "warden_http_accept_errors",
            "Failed accepts on the HTTP listener (like EMFILE: too many open files)",
            http_accept_errors.clone(),
        );
        let notifications = Family::<Labels2, Counter>::default();
        registry.register(
            "warden_notifications",
            "Run notifications ([[notify]]) by outcome: sent, failed (after retries) or dropped (queue full)",
            notifications.clone(),
        );
        let notification_attempts = Family::<Labels2, Counter>::default();
        registry.register(
            "warden_notification_attempts",
            "Delivery attempts of run notifications, by result",
            notification_attempts.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                notifications,
                notification_attempts,
                registry,
                runs,
                run_duration,
                queue_depth,
                running,
                guardrail,
                webhook,
                alerts,
                reloads,
                starts_refused,
                http_connections,
                http_closed,
                http_accept_errors,
            }),
        }
    }

    /// `warden_runs_total{plugin,status}` + 1 and the duration into
    /// `warden_run_duration_seconds{plugin}`.
    pub fn run_finished(&self, plugin: &str, status: &str, duration: Duration) {
        let plugin = label(plugin);
        self.inner
            .runs
            .get_or_create(&[("plugin", plugin.clone()), ("status", label(status))])
            .inc();
        self.inner
            .run_duration
            .get_or_create(&[("plugin", plugin)])
            .observe(duration.as_secs_f64());
    }

    /// `warden_runs_total{plugin,status="missed"}` + 1 for a schedule tick
    /// missed while the agent was down (no duration: it never ran).
    pub fn run_missed(&self, plugin: &str) {
        self.inner
            .runs
            .get_or_create(&[("plugin", label(plugin)), ("status", label("missed"))])
            .inc();
    }

    /// `warden_queue_depth`.
    pub fn set_queue_depth(&self, n: i64) {
        self.inner.queue_depth.set(n);
    }

    /// `warden_runs_in_flight`.
    pub fn set_running(&self, n: i64) {
        self.inner.running.set(n);
    }

    /// `warden_guardrail_decisions_total{rule,decision}` + 1.
    pub fn guardrail_decision(&self, rule: &str, decision: &str) {
        self.inner
            .guardrail
            .get_or_create(&[("rule", label(rule)), ("decision", label(decision))])
            .inc();
    }

    /// `warden_webhook_requests_total{code}` + 1.
    pub fn webhook_request(&self, code: u16) {
        self.inner
            .webhook
            .get_or_create(&[("code", code.to_string())])
            .inc();
    }

    /// `warden_alerts_received_total` + `n`.
    pub fn alerts_received(&self, n: u64) {
        self.inner.alerts.inc_by(n);
    }

    /// `warden_reloads_total{kind,result}` + 1, result `ok` or `rejected`.
    pub fn reload(&self, kind: &str, ok: bool) {
        let result = if ok { "ok" } else { "rejected" };
        self.inner
            .reloads
            .get_or_create(&[("kind", label(kind)), ("result", result.to_string())])
            .inc();
    }

    /// `warden_run_starts_refused_total{plugin,limit}` + 1: a `runs.start`
    /// of `plugin` refused by `limit` (`chain-depth`, `per-run`, `queue`).
    pub fn run_start_refused(&self, plugin: &str, limit: &str) {
        self.inner
            .starts_refused
            .get_or_create(&[("plugin", label(plugin)), ("limit", label(limit))])
            .inc();
    }

    /// `warden_http_connections`.
    pub fn set_http_connections(&self, n: i64) {
        self.inner.http_connections.set(n);
    }

    /// `warden_http_connections_closed_total{reason}` + 1. Reasons:
    /// `refused` (at `max_connections`, every connection busy: answered
    /// 503), `evicted` (closed to make room for a new connection),
    /// `header_timeout`, `idle_timeout`, `request_timeout` (answered 408),
    /// `answer_timeout` (the client did not take its answer).
    pub fn http_connection_closed(&self, reason: &'static str) {
        self.inner
            .http_closed
            .get_or_create(&[("reason", reason.to_string())])
            .inc();
    }

    /// `warden_notifications_total{notify,outcome}` + 1.
    pub fn notification(&self, notify: &str, outcome: &'static str) {
        self.inner
            .notifications
            .get_or_create(&[("notify", label(notify)), ("outcome", outcome.to_string())])
            .inc();
    }

    /// `warden_notification_attempts_total{notify,result}` + 1.
    pub fn notification_attempt(&self, notify: &str, result: &'static str) {
        self.inner
            .notification_attempts
            .get_or_create(&[("notify", label(notify)), ("result", result.to_string())])
            .inc();
    }

    /// `warden_http_accept_errors_total` + 1.
    pub fn http_accept_error(&self) {
        self.inner.http_accept_errors.inc();
    }

    /// The OpenMetrics text exposition, ending with `# EOF`; serve it with
    /// [`CONTENT_TYPE`].
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.inner.registry);
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn families_labels_and_values() {
        let m = Metrics::new();
        let m2 = m.clone();
        m.run_finished("vacuum", "succeeded", Duration::from_millis(30));
        m2.run_finished("vacuum", "succeeded", Duration::from_secs(2));
        m.run_finished("vacuum", "failed", Duration::from_secs(700));
        m.set_queue_depth(3);
        m.set_running(2);
        m.guardrail_decision("no-ddl", "deny");
        m.webhook_request(202);
        m.webhook_request(202);
        m.alerts_received(5);
        m.reload("policy", true);
        m.reload("config", false);
        m.run_start_refused("starter", "chain-depth");
        m.run_start_refused("starter", "chain-depth");
        m.run_start_refused("starter", "queue");
        m.set_http_connections(7);
        m.http_connection_closed("refused");
        m.http_connection_closed("refused");
        m.http_accept_error();
        let text = m.encode();
        for line in [
            "# TYPE warden_runs counter",
            r#"warden_runs_total{plugin="vacuum",status="succeeded"} 2"#,
            r#"warden_runs_total{plugin="vacuum",status="failed"} 1"#,
            "# TYPE warden_run_duration_seconds histogram",
            "# UNIT warden_run_duration_seconds seconds",
            r#"warden_run_duration_seconds_count{plugin="vacuum"} 3"#,
            r#"warden_run_duration_seconds_bucket{le="0.05",plugin="vacuum"} 1"#,
            r#"warden_run_duration_seconds_bucket{le="600.0",plugin="vacuum"} 2"#,
            r#"warden_run_duration_seconds_bucket{le="+Inf",plugin="vacuum"} 3"#,
            "warden_queue_depth 3",
            "warden_runs_in_flight 2",
            r#"warden_guardrail_decisions_total{rule="no-ddl",decision="deny"} 1"#,
            r#"warden_webhook_requests_total{code="202"} 2"#,
            "warden_alerts_received_total 5",
            r#"warden_reloads_total{kind="policy",result="ok"} 1"#,
            r#"warden_reloads_total{kind="config",result="rejected"} 1"#,
            "# TYPE warden_run_starts_refused counter",
            r#"warden_run_starts_refused_total{plugin="starter",limit="chain-depth"} 2"#,
            r#"warden_run_starts_refused_total{plugin="starter",limit="queue"} 1"#,
            "warden_http_connections 7",
            r#"warden_http_connections_closed_total{reason="refused"} 2"#,
            "warden_http_accept_errors_total 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn long_label_values_are_cut_on_a_char_boundary() {
        let m = Metrics::new();
        let long = "é".repeat(100);
        m.guardrail_decision(&long, "allow");
        let text = m.encode();
        let cut = "é".repeat(MAX_LABEL_LEN);
        assert!(text.contains(&format!(r#"rule="{cut}""#)), "{text}");
        assert!(!text.contains(&"é".repeat(MAX_LABEL_LEN + 1)));
    }
}
