//! The fields of the text log, escaped.
//!
//! tracing-subscriber's own text formatter escapes only part of the danger
//! (ESC, BEL, BS, FF, DEL and C1 in the message) and writes `%value` fields
//! raw, so a plugin's log line, error message or report text logged by the
//! agent could still carry CR, NUL, line feeds (forged log lines) and bidi
//! overrides. [`EscapedFields`] formats every field of every event and span
//! like the default (`message` bare and first, then `name=value`), but
//! through [`crate::text`]: each value on one line, every hidden character
//! a visible escape. In JSON logs, [`JsonSafe`] writes them as `\uXXXX`.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// The field formatter of the text log: see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        // Metadata of `log` records, shown by the formatter already.
        if name.starts_with("log.") {
            return;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        let first = std::mem::replace(&mut self.first, false);
        self.result = write_field(&mut self.writer, first, name, value);
    }
}

fn write_field(
    writer: &mut Writer<'_>,
    first: bool,
    name: &str,
    value: fmt::Arguments<'_>,
) -> fmt::Result {
    if !first {
        writer.write_char(' ')?;
    }
    if name != "message" {
        write!(writer, "{name}=")?;
    }
    crate::text::escaping_writer(writer).write_fmt(value)
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, format_args!("{value}"));
        } else {
            self.write(field, format_args!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.write(field, format_args!("{}", error_chain(value)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, format_args!("{value:?}"));
    }
}

/// The destination of the JSON log: `W`'s writers, each event's JSON passed
/// through [`crate::text::json_safe`] (the encoder writes DEL, C1 controls
/// and bidi overrides raw; this writes them as `\uXXXX`, the same value).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSafe<W>(pub W);

impl<'a, W: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a>
    for JsonSafe<W>
{
    type Writer = JsonSafeWriter<W::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        JsonSafeWriter(self.0.make_writer())
    }
}

/// One event's writer of [`JsonSafe`].
#[derive(Debug)]
pub struct JsonSafeWriter<W>(W);

impl<W: std::io::Write> std::io::Write for JsonSafeWriter<W> {
    /// Takes the whole buffer (the formatter writes one event in one call),
    /// so a character is never split between two calls.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self
                .0
                .write_all(crate::text::json_safe(text).as_bytes())
                .map(|()| buf.len()),
            // Not what the JSON encoder writes; passed on unchanged.
            Err(_) => self.0.write_all(buf).map(|()| buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The event format of the JSON log: one object per line with, at top
/// level, `timestamp` (RFC 3339, UTC, microseconds), `level`, `target` (the
/// module), `message`, the event's fields, and `trace_id` / `span_id` (32
/// and 16 lowercase hex digits) of the innermost enclosing span that has an
/// OpenTelemetry context; then `span` (the innermost span: `name` and its
/// fields) and `spans` (all enclosing spans, outermost first). An event
/// field whose name is one of these keys goes into a `fields` object
/// instead (e.g. `target = "pg"` on a run's log line). Use with
/// `fmt_fields(JsonFields::new())` and [`JsonSafe`].
///
/// Asking a span for its trace id starts it (as [`super::span_trace_id`]
/// does): set a span's parent before logging inside it.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLog;

/// Top-level keys [`JsonLog`] writes itself.
const RESERVED: [&str; 9] = [
    "timestamp",
    "level",
    "target",
    "message",
    "trace_id",
    "span_id",
    "span",
    "spans",
    "fields",
];

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JsonLog
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        use serde_json::{Map, Value};
        let meta = event.metadata();
        let mut out = Map::new();
        out.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        out.insert("level".into(), meta.level().as_str().into());
        out.insert("target".into(), meta.target().into());
        let mut visitor = JsonVisitor(Map::new());
        event.record(&mut visitor);
        let mut clashing = Map::new();
        if let Some(message) = visitor.0.remove("message") {
            out.insert("message".into(), message);
        }
        for (k, v) in visitor.0 {
            if RESERVED.contains(&k.as_str()) {
                clashing.insert(k, v);
            } else {
                out.insert(k, v);
            }
        }
        if !clashing.is_empty() {
            out.insert("fields".into(), Value::Object(clashing));
        }
        if let Some(scope) = ctx.event_scope() {
            let spans: Vec<_> = scope.collect();
            // The innermost span with a valid OpenTelemetry context.
            let ids = spans.iter().find_map(|span| {
                let cx = tracing::dispatcher::get_default(|d| {
                    tracing_opentelemetry::get_otel_context(&span.id(), d)
                })?;
                use opentelemetry::trace::TraceContextExt as _;
                let otel = cx.span();
                let sc = otel.span_context();
                sc.is_valid()
                    .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
            });
            if let Some((trace_id, span_id)) = ids {
                out.insert("trace_id".into(), trace_id.into());
                out.insert("span_id".into(), span_id.into());
            }
            let describe = |span: &tracing_subscriber::registry::SpanRef<'_, S>| {
                let mut obj = Map::new();
                obj.insert("name".into(), span.name().into());
                let ext = span.extensions();
                if let Some(fields) = ext.get::<tracing_subscriber::fmt::FormattedFields<N>>() {
                    match serde_json::from_str::<Value>(fields) {
                        Ok(Value::Object(map)) => obj.extend(map),
                        _ if fields.is_empty() => {}
                        _ => {
                            obj.insert("fields".into(), fields.to_string().into());
                        }
                    }
                }
                Value::Object(obj)
            };
            if let Some(leaf) = spans.first() {
                out.insert("span".into(), describe(leaf));
            }
            let all: Vec<Value> = spans.iter().rev().map(describe).collect();
            out.insert("spans".into(), Value::Array(all));
        }
        let line = serde_json::to_string(&Value::Object(out)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

/// Collects an event's fields as JSON values.
struct JsonVisitor(serde_json::Map<String, serde_json::Value>);

impl JsonVisitor {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.0.insert(name.to_string(), value);
    }
}

impl Visit for JsonVisitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value)
            .map_or_else(|| value.to_string().into(), serde_json::Value::Number);
        self.put(field, v);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, error_chain(value).into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}
/// An error and its sources, `outer: inner: ...`.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    chain
}
