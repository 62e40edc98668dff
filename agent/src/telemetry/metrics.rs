//! Prometheus metrics (prometheus-client), exposed in the OpenMetrics text format.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::process::ProcessCollector;

/// The `Content-Type` of [`Metrics::encode`]'s output. Prometheus (2.42 included)
/// picks its OpenMetrics parser from this header.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Label values longer than this (in characters) are cut.
pub const MAX_LABEL_LEN: usize = 64;

/// Upper bounds of `warden_run_duration_seconds`, 5 ms to 10 min.
pub const RUN_DURATION_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Distinct metric names each plugin may report ([`Metrics::plugin_report`]);
/// further names are dropped and counted.
pub const MAX_PLUGIN_METRIC_NAMES: usize = 50;

/// Longest plugin metric name or unit, in bytes.
pub const MAX_PLUGIN_METRIC_NAME_LEN: usize = 64;

type Labels1 = [(&'static str, String); 1];
type Labels2 = [(&'static str, String); 2];
type Labels3 = [(&'static str, String); 3];
type Labels4 = [(&'static str, String); 4];
type GaugeF64 = Gauge<f64, AtomicU64>;
/// A plugin's metric names → (target → unit of the exported series).
type PluginNames = HashMap<String, HashMap<String, String>>;

/// The agent's metrics. Cloning is cheap (one `Arc`); every update is lock-free
/// or takes a short read lock, so any task may update them.
///
/// | family | type | labels |
/// |---|---|---|
/// | `warden_runs_total` | counter | `plugin`, `status`, `target` |
/// | `warden_run_duration_seconds` | histogram | `plugin`, `target` |
/// | `warden_last_success_timestamp_seconds` | gauge | `plugin`, `target` |
/// | `warden_last_run_failed` | gauge (0/1) | `plugin`, `target` |
/// | `warden_plugin_metric` | gauge | `plugin`, `target`, `name`, `unit` |
/// | `warden_plugin_metrics_dropped_total` | counter | `plugin`, `reason` |
/// | `warden_approvals_pending` | gauge | |
/// | `warden_build_info` | gauge (1) | `version`, `wit` |
/// | `warden_otlp_spans_dropped_total` | counter | `reason` |
/// | `process_*` | see [`super::process`] | |
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
    runs: Family<Labels3, Counter>,
    run_duration: Family<Labels2, Histogram, fn() -> Histogram>,
    last_success: Family<Labels2, GaugeF64>,
    last_failed: Family<Labels2, Gauge>,
    plugin_metric: Family<Labels4, GaugeF64>,
    plugin_dropped: Family<Labels2, Counter>,
    plugin_names: Mutex<BTreeMap<String, PluginNames>>,
    approvals_pending: Gauge,
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
        let runs = Family::<Labels3, Counter>::default();
        // Counters get their `_total` suffix from the encoder.
        registry.register("warden_runs", "Finished plugin runs", runs.clone());
        let run_duration = Family::<Labels2, Histogram, fn() -> Histogram>::new_with_constructor(
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
        let last_success = Family::<Labels2, GaugeF64>::default();
        registry.register(
            "warden_last_success_timestamp_seconds",
            "End time (Unix seconds) of the last successful run that was not a dry run, \
             by plugin and target; absent until one succeeded",
            last_success.clone(),
        );
        let last_failed = Family::<Labels2, Gauge>::default();
        registry.register(
            "warden_last_run_failed",
            "1 when the last run that was not a dry run and succeeded or failed \
             (failed, trapped, timed-out, limit-exceeded, interrupted) failed, else 0",
            last_failed.clone(),
        );
        let plugin_metric = Family::<Labels4, GaugeF64>::default();
        registry.register(
            "warden_plugin_metric",
            "Last value of a metric a plugin reported in a run that was not a dry run",
            plugin_metric.clone(),
        );
        let plugin_dropped = Family::<Labels2, Counter>::default();
        registry.register(
            "warden_plugin_metrics_dropped",
            "Reported plugin metrics not exported, by reason \
             (invalid_name, invalid_unit, invalid_value, too_many_names)",
            plugin_dropped.clone(),
        );
        let approvals_pending = Gauge::default();
        registry.register(
            "warden_approvals_pending",
            "Plans awaiting approval (read from the state database at each scrape)",
            approvals_pending.clone(),
        );
        let build_info = Family::<Labels2, Gauge>::default();
        build_info
            .get_or_create(&[
                ("version", env!("CARGO_PKG_VERSION").to_string()),
                ("wit", wit_version().to_string()),
            ])
            .set(1);
        registry.register(
            "warden_build_info",
            "Always 1: the agent's version and the WIT package version it hosts",
            build_info,
        );
        registry.register_collector(Box::new(SpansDropped));
        registry.register_collector(Box::new(ProcessCollector));
        Metrics {
            inner: Arc::new(Inner {
                notifications,
                notification_attempts,
                registry,
                runs,
                run_duration,
                last_success,
                last_failed,
                plugin_metric,
                plugin_dropped,
                plugin_names: Mutex::default(),
                approvals_pending,
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

    /// `warden_runs_total{plugin,status,target}` + 1 and the duration into
    /// `warden_run_duration_seconds{plugin,target}`.
    pub fn run_finished(&self, plugin: &str, target: &str, status: &str, duration: Duration) {
        let plugin = label(plugin);
        let target = label(target);
        self.inner
            .runs
            .get_or_create(&[
                ("plugin", plugin.clone()),
                ("status", label(status)),
                ("target", target.clone()),
            ])
            .inc();
        self.inner
            .run_duration
            .get_or_create(&[("plugin", plugin), ("target", target)])
            .observe(duration.as_secs_f64());
    }

    /// `warden_runs_total{plugin,status="missed",target}` + 1 for a schedule
    /// tick missed while the agent was down (no duration: it never ran).
    pub fn run_missed(&self, plugin: &str, target: &str) {
        self.inner
            .runs
            .get_or_create(&[
                ("plugin", label(plugin)),
                ("status", label("missed")),
                ("target", label(target)),
            ])
            .inc();
    }

    /// `warden_last_success_timestamp_seconds{plugin,target}` = `at` (Unix
    /// seconds), unless it already holds a later time.
    pub fn run_succeeded(&self, plugin: &str, target: &str, at: f64) {
        let gauge = self
            .inner
            .last_success
            .get_or_create(&[("plugin", label(plugin)), ("target", label(target))]);
        if gauge.get() < at {
            gauge.set(at);
        }
    }

    /// `warden_last_run_failed{plugin,target}` = 1 if `failed`, else 0.
    pub fn run_outcome(&self, plugin: &str, target: &str, failed: bool) {
        self.inner
            .last_failed
            .get_or_create(&[("plugin", label(plugin)), ("target", label(target))])
            .set(i64::from(failed));
    }

    /// The value of `warden_last_success_timestamp_seconds{plugin,target}`,
    /// if it exists.
    pub fn last_success(&self, plugin: &str, target: &str) -> Option<f64> {
        self.inner
            .last_success
            .get(&[("plugin", label(plugin)), ("target", label(target))])
            .map(|g| g.get())
    }

    /// Exports the metrics a plugin reported in a run on `target` as
    /// `warden_plugin_metric{plugin,target,name,unit}` (the last value wins).
    /// A name or a unit must match `[a-z_][a-z0-9_]*` and be at most
    /// [`MAX_PLUGIN_METRIC_NAME_LEN`] bytes (a unit may be empty); a value
    /// must be finite; each plugin may use at most
    /// [`MAX_PLUGIN_METRIC_NAMES`] distinct names. Anything else is dropped
    /// and counted in `warden_plugin_metrics_dropped_total{plugin,reason}`.
    /// When a name comes with a new unit, the series with the old unit
    /// goes, so there is one series per plugin, target and name.
    pub fn plugin_report<'a>(
        &self,
        plugin: &str,
        target: &str,
        metrics: impl IntoIterator<Item = (&'a str, &'a str, f64)>,
    ) {
        let plugin = label(plugin);
        let target = label(target);
        let mut names = match self.inner.plugin_names.lock() {
            Ok(names) => names,
            Err(poisoned) => poisoned.into_inner(),
        };
        let known = names.entry(plugin.clone()).or_default();
        for (name, unit, value) in metrics {
            let reason = if !valid_metric_word(name) || name.is_empty() {
                Some("invalid_name")
            } else if !unit.is_empty() && !valid_metric_word(unit) {
                Some("invalid_unit")
            } else if !value.is_finite() {
                Some("invalid_value")
            } else if !known.contains_key(name) && known.len() >= MAX_PLUGIN_METRIC_NAMES {
                Some("too_many_names")
            } else {
                None
            };
            if let Some(reason) = reason {
                self.inner
                    .plugin_dropped
                    .get_or_create(&[("plugin", plugin.clone()), ("reason", reason.to_string())])
                    .inc();
                continue;
            }
            let units = known.entry(name.to_string()).or_default();
            if let Some(old) = units.insert(target.clone(), unit.to_string())
                && old != unit
            {
                self.inner.plugin_metric.remove(&[
                    ("plugin", plugin.clone()),
                    ("target", target.clone()),
                    ("name", name.to_string()),
                    ("unit", old),
                ]);
            }
            self.inner
                .plugin_metric
                .get_or_create(&[
                    ("plugin", plugin.clone()),
                    ("target", target.clone()),
                    ("name", name.to_string()),
                    ("unit", unit.to_string()),
                ])
                .set(value);
        }
    }

    /// `warden_approvals_pending`.
    pub fn set_approvals_pending(&self, n: i64) {
        self.inner.approvals_pending.set(n);
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

    /// The Prometheus text format 0.0.4 (what `promtool check metrics` and
    /// clients that do not ask for OpenMetrics read); serve it with
    /// [`TEXT_CONTENT_TYPE`]. Same samples as [`Metrics::encode`].
    pub fn encode_text(&self) -> String {
        openmetrics_to_text(&self.encode())
    }
}

/// The `Content-Type` of [`Metrics::encode_text`]'s output.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a scrape's `Accept` header asks for OpenMetrics (Prometheus
/// does); others get the 0.0.4 text format.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// OpenMetrics (as prometheus-client writes it: no exemplars, no
/// `_created`) to the 0.0.4 text format: a counter family's `HELP` and
/// `TYPE` name its `_total` samples, `UNIT` and `EOF` lines go.
fn openmetrics_to_text(om: &str) -> String {
    // Counter families, whose samples carry `_total`.
    let counters: std::collections::HashSet<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        if let Some((prefix, rest)) = meta {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(name) {
                out.push_str(prefix);
                out.push_str(name);
                out.push_str("_total ");
                out.push_str(tail);
                out.push('\n');
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `[a-z_][a-z0-9_]*`, at most [`MAX_PLUGIN_METRIC_NAME_LEN`] bytes (empty
/// passes: callers decide).
fn valid_metric_word(s: &str) -> bool {
    s.len() <= MAX_PLUGIN_METRIC_NAME_LEN
        && s.bytes()
            .enumerate()
            .all(|(i, b)| b == b'_' || b.is_ascii_lowercase() || (i > 0 && b.is_ascii_digit()))
}

/// The version of the WIT package this build hosts (`0.1.5` in
/// `package warden:plugin@0.1.5;`).
pub fn wit_version() -> &'static str {
    const WIT: &str = include_str!("../../../wit/plugin.wit");
    WIT.lines()
        .find_map(|l| l.trim().strip_prefix("package warden:plugin@"))
        .map(|v| v.trim_end_matches(';').trim())
        .unwrap_or("unknown")
}

/// `warden_otlp_spans_dropped_total{reason}`, read from the OTLP pipeline's
/// counters at each scrape.
#[derive(Debug)]
struct SpansDropped;

impl prometheus_client::collector::Collector for SpansDropped {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), fmt::Error> {
        use prometheus_client::encoding::EncodeMetric as _;
        let dropped = super::otlp::spans_dropped();
        let family = Family::<Labels1, Counter>::default();
        for (reason, n) in [
            ("queue_full", dropped.queue_full),
            ("export_failed", dropped.export_failed),
        ] {
            family
                .get_or_create(&[("reason", reason.to_string())])
                .inc_by(n);
        }
        let metric = encoder.encode_descriptor(
            "warden_otlp_spans_dropped",
            "Spans not exported by OTLP: the export queue was full (queue_full) \
             or the collector did not take them (export_failed)",
            None,
            family.metric_type(),
        )?;
        family.encode(metric)
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
        m.run_finished("vacuum", "db", "succeeded", Duration::from_millis(30));
        m2.run_finished("vacuum", "db", "succeeded", Duration::from_secs(2));
        m.run_finished("vacuum", "db", "failed", Duration::from_secs(700));
        m.run_finished("vacuum", "other", "failed", Duration::from_secs(1));
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
            r#"warden_runs_total{plugin="vacuum",status="succeeded",target="db"} 2"#,
            r#"warden_runs_total{plugin="vacuum",status="failed",target="db"} 1"#,
            r#"warden_runs_total{plugin="vacuum",status="failed",target="other"} 1"#,
            "# TYPE warden_run_duration_seconds histogram",
            "# UNIT warden_run_duration_seconds seconds",
            r#"warden_run_duration_seconds_count{plugin="vacuum",target="db"} 3"#,
            r#"warden_run_duration_seconds_bucket{le="0.05",plugin="vacuum",target="db"} 1"#,
            r#"warden_run_duration_seconds_bucket{le="600.0",plugin="vacuum",target="db"} 2"#,
            r#"warden_run_duration_seconds_bucket{le="+Inf",plugin="vacuum",target="db"} 3"#,
            r#"warden_run_duration_seconds_count{plugin="vacuum",target="other"} 1"#,
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

    fn sample(text: &str, prefix: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' '))
            .map(|v| v.parse().unwrap())
    }

    #[test]
    fn the_last_success_only_moves_forward_and_exists_only_once_set() {
        let m = Metrics::new();
        let series = r#"warden_last_success_timestamp_seconds{plugin="backup",target="db"}"#;
        assert_eq!(sample(&m.encode(), series), None);
        assert_eq!(m.last_success("backup", "db"), None);
        for (at, want) in [(1000.5, 1000.5), (900.0, 1000.5), (2000.25, 2000.25)] {
            m.run_succeeded("backup", "db", at);
            assert_eq!(sample(&m.encode(), series), Some(want), "after {at}");
        }
        assert_eq!(m.last_success("backup", "other"), None);
        assert!(
            !m.encode().contains(r#"target="other""#),
            "a pair that never succeeded has no series"
        );
    }

    #[test]
    fn the_last_outcome_follows_each_run() {
        let m = Metrics::new();
        let series = r#"warden_last_run_failed{plugin="backup",target="db"}"#;
        assert_eq!(sample(&m.encode(), series), None);
        for (failed, want) in [(true, 1.0), (false, 0.0), (true, 1.0), (true, 1.0)] {
            m.run_outcome("backup", "db", failed);
            assert_eq!(sample(&m.encode(), series), Some(want));
        }
    }

    #[test]
    fn plugin_metrics_are_exported_with_the_last_value_and_bad_ones_are_counted() {
        let m = Metrics::new();
        m.plugin_report(
            "vacuum",
            "db",
            [
                ("dead_tuples", "rows", 10.0),
                ("bytes_freed", "bytes", 4096.0),
                ("dead_tuples", "rows", 12.0),
                ("ratio", "", 0.5),
            ],
        );
        m.plugin_report("vacuum", "db2", [("dead_tuples", "rows", 1.0)]);
        let text = m.encode();
        let g = |target: &str, name: &str, unit: &str| {
            sample(
                &text,
                &format!(
                    r#"warden_plugin_metric{{plugin="vacuum",target="{target}",name="{name}",unit="{unit}"}}"#
                ),
            )
        };
        assert_eq!(g("db", "dead_tuples", "rows"), Some(12.0));
        assert_eq!(g("db", "bytes_freed", "bytes"), Some(4096.0));
        assert_eq!(g("db", "ratio", ""), Some(0.5));
        assert_eq!(g("db2", "dead_tuples", "rows"), Some(1.0));
        // Each kind of bad metric is dropped and counted, nothing exported.
        let bad = [
            ("Dead", "", 1.0, "invalid_name"),
            ("9lives", "", 1.0, "invalid_name"),
            ("", "", 1.0, "invalid_name"),
            ("a-b", "", 1.0, "invalid_name"),
            ("x\"} 1\nforged", "", 1.0, "invalid_name"),
            (
                &*"n".repeat(MAX_PLUGIN_METRIC_NAME_LEN + 1),
                "",
                1.0,
                "invalid_name",
            ),
            ("ok_name", "Bytes", 1.0, "invalid_unit"),
            ("ok_name", "k b", 1.0, "invalid_unit"),
            ("ok_name", "", f64::NAN, "invalid_value"),
            ("ok_name", "", f64::INFINITY, "invalid_value"),
        ];
        let m = Metrics::new();
        for (name, unit, value, reason) in bad {
            let prefix =
                format!(r#"warden_plugin_metrics_dropped_total{{plugin="p",reason="{reason}"}}"#);
            let before = sample(&m.encode(), &prefix).unwrap_or(0.0);
            m.plugin_report("p", "db", [(name, unit, value)]);
            let text = m.encode();
            assert_eq!(sample(&text, &prefix), Some(before + 1.0), "{name:?}");
            assert!(!text.contains("warden_plugin_metric{"), "{name:?}: {text}");
        }
        // The longest valid name passes.
        let longest = "n".repeat(MAX_PLUGIN_METRIC_NAME_LEN);
        m.plugin_report("p", "db", [(longest.as_str(), "", 1.0)]);
        assert!(m.encode().contains(&longest));
    }

    #[test]
    fn a_plugin_gets_a_bounded_number_of_names_and_one_series_per_name() {
        let m = Metrics::new();
        let names: Vec<String> = (0..MAX_PLUGIN_METRIC_NAMES + 7)
            .map(|i| format!("m_{i}"))
            .collect();
        for target in ["a", "b"] {
            m.plugin_report("p", target, names.iter().map(|n| (n.as_str(), "", 1.0)));
        }
        // Another plugin has its own allowance.
        m.plugin_report("q", "a", [("m_x", "", 1.0)]);
        let text = m.encode();
        let series = |plugin: &str| {
            text.lines()
                .filter(|l| l.starts_with(&format!(r#"warden_plugin_metric{{plugin="{plugin}""#)))
                .count()
        };
        assert_eq!(series("p"), 2 * MAX_PLUGIN_METRIC_NAMES);
        assert_eq!(series("q"), 1);
        assert_eq!(
            sample(
                &text,
                r#"warden_plugin_metrics_dropped_total{plugin="p",reason="too_many_names"}"#
            ),
            Some(14.0)
        );
        // A known name with a new unit replaces its series.
        m.plugin_report("p", "a", [("m_0", "seconds", 3.0)]);
        let text = m.encode();
        let m0: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(r#"warden_plugin_metric{plugin="p",target="a",name="m_0""#))
            .collect();
        assert_eq!(
            m0,
            [r#"warden_plugin_metric{plugin="p",target="a",name="m_0",unit="seconds"} 3.0"#]
        );
    }

    #[test]
    fn build_info_and_the_text_format() {
        let m = Metrics::new();
        m.run_finished("p", "t", "succeeded", Duration::from_secs(1));
        let om = m.encode();
        let info = format!(
            r#"warden_build_info{{version="{}",wit="{}"}} 1"#,
            env!("CARGO_PKG_VERSION"),
            wit_version()
        );
        assert!(om.lines().any(|l| l == info), "{om}");
        assert!(wit_version().starts_with("0."), "{}", wit_version());
        let text = m.encode_text();
        assert!(text.lines().any(|l| l == info), "{text}");
        for line in [
            "# TYPE warden_runs_total counter",
            "# HELP warden_runs_total Finished plugin runs.",
            "# TYPE warden_run_duration_seconds histogram",
            r#"warden_runs_total{plugin="p",status="succeeded",target="t"} 1"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
        // Same samples.
        let samples = |s: &str| -> Vec<String> {
            s.lines()
                .filter(|l| !l.starts_with('#'))
                .map(str::to_string)
                .collect()
        };
        let (a, b) = (samples(&om), samples(&text));
        // Process metrics and the (process-wide) dropped spans move
        // between the two scrapes; the order within a family is free.
        let stable = |v: Vec<String>| -> Vec<String> {
            let mut v: Vec<String> = v
                .into_iter()
                .filter(|l| !l.starts_with("process_") && !l.starts_with("warden_otlp_"))
                .collect();
            v.sort();
            v
        };
        assert_eq!(stable(a), stable(b));
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        )));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(None));
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
