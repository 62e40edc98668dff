//! Tracing, OpenTelemetry (OTLP) export and Prometheus metrics.
//!
//! - [`init`]: the global `tracing` subscriber — logs on stderr (text or JSON,
//!   filtered by `WARDEN_LOG`) and an OpenTelemetry layer whose spans are
//!   exported by OTLP when configured ([`OtlpSettings`]).
//! - [`set_parent_from_traceparent`] / [`current_trace_id`]: W3C trace context in
//!   and trace ids out (for logs and run records).
//! - [`run_span`] / [`host_call_span`]: the spans every run and host call make.
//! - [`Metrics`]: Prometheus metrics, [`CONTENT_TYPE`] for the scrape response.
//!
//! # Span conventions
//!
//! One trace per run:
//!
//! - **Root `warden.run`** (INFO, [`run_span`]) with `warden.run.id`,
//!   `warden.plugin`, `warden.plugin.digest`, `warden.target`, `warden.trigger`
//!   (`manual`, `schedule`, `webhook`, ...). When the run was triggered by a
//!   request carrying a W3C `traceparent`, call [`set_parent_from_traceparent`]
//!   right after creating the span and *before* entering it or asking for its
//!   trace id: once an OpenTelemetry span has started, its parent is fixed.
//! - **One child per host call** (INFO, [`host_call_span`]) named after the call,
//!   e.g. `sql.query`, `sql.execute`, `mongo.find`, kind `client`, with
//!   `db.system.name` (`postgresql`, `sqlite`, `mongodb`), `db.operation.name`
//!   (`SELECT`, `VACUUM`, `find`, ...), `db.namespace` (the *target name*, not the
//!   database URL) and `warden.capability.class` (`read`, `maintenance`, ...).
//!
//! Never put statement text with literals, statement parameters, connection URLs,
//! headers or any secret into span fields or span events: they are exported to a
//! third party. Events logged inside a span (`tracing::info!` etc.) become span
//! events too, with the same rule.
//!
//! Only spans and events whose target starts with `warden` at INFO or above are
//! exported ([`otlp::otel_filter`]); `WARDEN_LOG` only filters the stderr logs.
//!
//! ## Fields tracing-opentelemetry treats specially
//!
//! - `otel.name`: the exported span name, replacing the static `tracing` name;
//!   use it for dynamic names (`info_span!("host_call", otel.name = call)`).
//! - `otel.kind`: `"client"`, `"server"`, `"producer"`, `"consumer"` or
//!   `"internal"` (default). Must be given when the span is created.
//! - `otel.status_code`: `"ok"` or `"error"`; `otel.status_description` sets an
//!   error status with a message. They can be recorded later if declared up front:
//!   `otel.status_code = tracing::field::Empty`, then
//!   `span.record("otel.status_code", "error")`. [`mark_error`] does this without
//!   the declaration. An `error!` event inside the span also marks it as an error.
//!
//! Any other field becomes a span attribute (dotted names are fine:
//! `db.system.name = "postgresql"`). Display values (`%x`) and Debug values (`?x`)
//! are exported as strings.

mod fields;
mod metrics;
pub mod otlp;
mod process;

use std::collections::HashMap;

use anyhow::Context as _;
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{Status, TraceContextExt as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;

pub use fields::{EscapedFields, JsonLog, JsonSafe};
pub use metrics::{
    CONTENT_TYPE, MAX_LABEL_LEN, MAX_PLUGIN_METRIC_NAME_LEN, MAX_PLUGIN_METRIC_NAMES, Metrics,
    RUN_DURATION_BUCKETS, TEXT_CONTENT_TYPE, wants_openmetrics, wit_version,
};
pub use otlp::{DEFAULT_SERVICE_NAME, OtlpPipeline, OtlpProtocol, OtlpSettings};
pub use process::ProcessStats;

/// The environment variable with the stderr log filter (`EnvFilter` syntax).
pub const LOG_ENV: &str = "WARDEN_LOG";

/// Installs the global subscriber with the default log level `info`; see
/// [`init_with_level`].
pub fn init(format: LogFormat, otlp: Option<OtlpSettings>) -> anyhow::Result<TelemetryGuard> {
    init_with_level(format, "info", otlp)
}

/// Installs the global `tracing` subscriber:
///
/// - a fmt layer on stderr (text or one JSON object per line), filtered by
///   `WARDEN_LOG` or else `default_level`; in text, every field value is
///   escaped ([`EscapedFields`]), in JSON every hidden character is a
///   `\uXXXX` escape ([`JsonSafe`]), so text from a plugin cannot drive the
///   terminal or forge a log line;
/// - an OpenTelemetry layer ([`otlp::otel_filter`]). With `otlp`, its spans are
///   exported by OTLP; without, spans still get trace ids (so
///   [`current_trace_id`] and [`set_parent_from_traceparent`] work) but go nowhere.
///
/// Also sets the W3C TraceContext propagator and the tracer provider globally.
/// Call it once, early, inside the tokio runtime. If a global subscriber is already
/// installed (e.g. a second call), nothing is installed and the returned guard
/// only shuts down its own exporter. Errors only for invalid OTLP settings.
///
/// Keep the guard until exit: its [`TelemetryGuard::shutdown`] (or drop) exports
/// the spans still pending.
pub fn init_with_level(
    format: LogFormat,
    default_level: &str,
    otlp: Option<OtlpSettings>,
) -> anyhow::Result<TelemetryGuard> {
    let filter = tracing_subscriber::EnvFilter::try_from_env(LOG_ENV)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Colours only on a terminal (and not with NO_COLOR): a log file or a
    // pipe gets no escape sequences, not even the formatter's own.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let fmt = tracing_subscriber::fmt::layer().with_ansi(colour);
    // Plugins' text is logged: every field escaped in text, every hidden
    // character a `\uXXXX` in JSON (see `fields`).
    let fmt = match format {
        LogFormat::Json => fmt
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(JsonLog)
            .with_writer(JsonSafe(std::io::stderr))
            .boxed(),
        LogFormat::Text => fmt
            .fmt_fields(EscapedFields)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let pipeline = otlp
        .as_ref()
        .map(OtlpPipeline::new)
        .transpose()
        .context("OpenTelemetry export")?;
    let provider = match &pipeline {
        Some(p) => p.provider().clone(),
        // No processor: spans get ids and parents, nothing is exported.
        None => opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_resource(otlp::resource(DEFAULT_SERVICE_NAME))
            .build(),
    };
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "warden");
    let installed = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otlp::otel_layer(tracer).with_filter(otlp::otel_filter()))
        .try_init()
        .is_ok();
    if installed {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        opentelemetry::global::set_tracer_provider(provider);
        if let Some(s) = &otlp {
            tracing::info!(
                endpoint = %otlp::redacted_endpoint(&s.endpoint),
                protocol = ?s.protocol,
                sampling_ratio = s.sampling_ratio,
                "exporting traces by OTLP"
            );
        }
    }
    Ok(TelemetryGuard { pipeline })
}

/// Keeps the OTLP exporter alive; flushes and stops it on [`shutdown`] or drop.
///
/// [`shutdown`]: TelemetryGuard::shutdown
#[derive(Debug)]
#[must_use = "dropping the guard stops the OTLP export"]
pub struct TelemetryGuard {
    pipeline: Option<OtlpPipeline>,
}

impl TelemetryGuard {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.pipeline.is_some()
    }

    /// Exports the finished spans now (waits up to 5 s).
    pub fn flush(&self) -> anyhow::Result<()> {
        match &self.pipeline {
            Some(p) => p.force_flush(),
            None => Ok(()),
        }
    }

    /// Exports pending spans and stops the exporter (waits up to ~5 s when the
    /// collector does not answer). Spans ended later are dropped. Idempotent.
    pub fn shutdown(&mut self) -> anyhow::Result<()> {
        match &mut self.pipeline {
            Some(p) => p.shutdown(),
            None => Ok(()),
        }
    }
}

/// The carrier of [`set_parent_from_traceparent`].
struct TraceHeaders<'a> {
    traceparent: &'a str,
    tracestate: Option<&'a str>,
}

impl Extractor for TraceHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => Some(self.traceparent),
            "tracestate" => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        let mut keys = vec!["traceparent"];
        if self.tracestate.is_some() {
            keys.push("tracestate");
        }
        keys
    }
}

/// Makes `span` a child of the remote span in a W3C `traceparent` (with its
/// `tracestate`). Returns false, leaving the span alone, when `traceparent` is
/// missing or invalid, when the span is disabled or has no OpenTelemetry layer,
/// or when it has already started (been entered): call it right after creating
/// the span.
pub fn set_parent_from_traceparent(
    span: &tracing::Span,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) -> bool {
    let Some(traceparent) = traceparent.map(str::trim).filter(|t| !t.is_empty()) else {
        return false;
    };
    let carrier = TraceHeaders {
        traceparent,
        tracestate: tracestate.map(str::trim).filter(|t| !t.is_empty()),
    };
    let cx = TraceContextPropagator::new().extract(&carrier);
    let valid = {
        let remote = cx.span();
        let sc = remote.span_context();
        sc.is_valid() && sc.is_remote()
    };
    valid && span.set_parent(cx).is_ok()
}

/// The W3C `traceparent` of `span` (to pass the trace on, e.g. to a webhook
/// call), if it has a valid OpenTelemetry context. Starts the span.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let mut headers = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut headers);
    headers.remove("traceparent")
}

/// The W3C `traceparent` of the current span (see [`traceparent_of`]).
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// The current span's trace id as 32 lowercase hex digits, if it has one. Starts
/// the current span (see [`set_parent_from_traceparent`]).
pub fn current_trace_id() -> Option<String> {
    span_trace_id(&tracing::Span::current())
}

/// `span`'s trace id as 32 lowercase hex digits, if it has one. Starts the span.
pub fn span_trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let otel_span = cx.span();
    let sc = otel_span.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// Sets an error status on `span`. `description` is exported: no secrets.
pub fn mark_error(span: &tracing::Span, description: impl Into<String>) {
    span.set_status(Status::error(description.into()));
}

/// The root span of a run, `warden.run`, at INFO. Set its parent with
/// [`set_parent_from_traceparent`] before entering it.
pub fn run_span(
    run_id: &str,
    plugin: &str,
    plugin_digest: &str,
    target: &str,
    trigger: &str,
) -> tracing::Span {
    tracing::info_span!(
        "warden.run",
        warden.run.id = run_id,
        warden.plugin = plugin,
        warden.plugin.digest = plugin_digest,
        warden.target = target,
        warden.trigger = trigger,
        warden.run.status = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

/// A child span for one host call (of the current span), at INFO, kind `client`,
/// named `call` (e.g. `sql.query`), with `db.system.name` = `system`
/// (`postgresql`/`sqlite`/`mongodb`), `db.operation.name` = `operation`
/// (`SELECT`), `db.namespace` = `target` (the target's name) and
/// `warden.capability.class` = `class`. Declares `otel.status_code`,
/// `error.type` and `db.response.returned_rows` for later `record`s.
pub fn host_call_span(
    call: &str,
    system: &str,
    operation: &str,
    target: &str,
    class: &str,
) -> tracing::Span {
    tracing::info_span!(
        "host_call",
        otel.name = call,
        otel.kind = "client",
        db.system.name = system,
        db.operation.name = operation,
        db.namespace = target,
        warden.capability.class = class,
        db.response.returned_rows = tracing::field::Empty,
        error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

/// A child span for one read of a file on this host (`logs.read`), at
/// INFO, kind `client`, with `warden.target` (the target whose grant
/// allowed it), `file.path` (as the plugin asked for it) and
/// `warden.capability.class` = `read`. Declares `warden.logs.bytes` (bytes
/// returned), `error.type` and `otel.status_code` for later `record`s.
pub fn file_read_span(call: &str, target: &str, path: &str) -> tracing::Span {
    tracing::info_span!(
        "host_call",
        otel.name = call,
        otel.kind = "client",
        warden.target = target,
        file.path = path,
        warden.capability.class = "read",
        warden.logs.bytes = tracing::field::Empty,
        error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

#[cfg(test)]
mod tests;
