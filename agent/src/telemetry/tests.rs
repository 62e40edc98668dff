#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use std::sync::{Arc, Mutex};

/// Keeps exported spans in memory (the SDK's own is behind its `testing` feature).
#[derive(Debug, Clone, Default)]
struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collect {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

/// Runs `f` with a thread-local subscriber like `init`'s OTel layer, exporting
/// synchronously into the returned spans.
fn traced(f: impl FnOnce()) -> Vec<SpanData> {
    let collect = Collect::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(collect.clone())
        .build();
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "warden");
    let subscriber = tracing_subscriber::registry()
        .with(otlp::otel_layer(tracer).with_filter(otlp::otel_filter()));
    tracing::subscriber::with_default(subscriber, f);
    provider.force_flush().unwrap();
    collect.0.lock().unwrap().clone()
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

#[test]
fn root_follows_traceparent_and_host_calls_nest() {
    let mut seen_trace_id = None;
    let mut set = false;
    let spans = traced(|| {
        let root = run_span("r1", "vacuum", "abc123", "db", "webhook");
        set = set_parent_from_traceparent(
            &root,
            Some(&format!("00-{TRACE}-{PARENT}-01")),
            Some("vendor=x"),
        );
        root.in_scope(|| {
            seen_trace_id = current_trace_id();
            let call = host_call_span("sql.query", "sqlite", "SELECT", "db", "read");
            call.record("db.response.returned_rows", 3);
            call.in_scope(|| {});
        });
        mark_error(&root, "denied");
    });
    assert!(set);
    assert_eq!(seen_trace_id.as_deref(), Some(TRACE));
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let root = spans.iter().find(|s| s.name == "warden.run").unwrap();
    let call = spans.iter().find(|s| s.name == "sql.query").unwrap();
    assert_eq!(root.span_context.trace_id().to_string(), TRACE);
    assert_eq!(root.parent_span_id.to_string(), PARENT);
    assert!(root.parent_span_is_remote);
    assert_eq!(
        root.span_context.trace_state().header(),
        "vendor=x".to_string()
    );
    assert_eq!(attr(root, "warden.run.id").as_deref(), Some("r1"));
    assert_eq!(
        attr(root, "warden.plugin.digest").as_deref(),
        Some("abc123")
    );
    assert_eq!(attr(root, "warden.trigger").as_deref(), Some("webhook"));
    assert_eq!(root.status, Status::error("denied"));
    assert_eq!(call.parent_span_id, root.span_context.span_id());
    assert_eq!(call.span_context.trace_id().to_string(), TRACE);
    assert_eq!(call.span_kind, SpanKind::Client);
    assert_eq!(attr(call, "db.system.name").as_deref(), Some("sqlite"));
    assert_eq!(attr(call, "db.operation.name").as_deref(), Some("SELECT"));
    assert_eq!(attr(call, "db.namespace").as_deref(), Some("db"));
    assert_eq!(
        attr(call, "warden.capability.class").as_deref(),
        Some("read")
    );
    assert_eq!(
        attr(call, "db.response.returned_rows").as_deref(),
        Some("3")
    );
    // The special fields drive name/kind/status; they are not attributes.
    assert!(attr(call, "otel.name").is_none() && attr(call, "otel.kind").is_none());
}

#[test]
fn invalid_or_late_traceparents_are_ignored() {
    let mut results = Vec::new();
    let spans = traced(|| {
        for bad in [
            None,
            Some(""),
            Some("garbage"),
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            Some("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ] {
            let span = run_span("r", "p", "d", "t", "manual");
            results.push(set_parent_from_traceparent(&span, bad, None));
        }
        // Already started: the parent can no longer change.
        let span = run_span("late", "p", "d", "t", "manual");
        span.in_scope(|| {});
        results.push(set_parent_from_traceparent(
            &span,
            Some(&format!("00-{TRACE}-{PARENT}-01")),
            None,
        ));
    });
    assert!(results.iter().all(|ok| !ok), "{results:?}");
    assert!(spans.iter().all(|s| !s.parent_span_is_remote));
    assert!(
        spans
            .iter()
            .all(|s| s.span_context.trace_id().to_string() != TRACE)
    );
}

#[test]
fn unsampled_parent_is_not_exported_but_keeps_its_trace_id() {
    let mut id = None;
    let spans = traced(|| {
        let root = run_span("r", "p", "d", "t", "webhook");
        assert!(set_parent_from_traceparent(
            &root,
            Some(&format!("00-{TRACE}-{PARENT}-00")),
            None
        ));
        id = span_trace_id(&root);
        let tp = traceparent_of(&root).unwrap();
        assert!(
            tp.starts_with(&format!("00-{TRACE}-")) && tp.ends_with("-00"),
            "{tp}"
        );
    });
    assert_eq!(id.as_deref(), Some(TRACE));
    assert!(spans.is_empty(), "{spans:#?}");
}

#[test]
fn without_an_otel_layer_nothing_happens() {
    let span = run_span("r", "p", "d", "t", "manual");
    assert!(!set_parent_from_traceparent(
        &span,
        Some(&format!("00-{TRACE}-{PARENT}-01")),
        None
    ));
    assert_eq!(span_trace_id(&span), None);
    assert_eq!(current_trace_id(), None);
}

#[test]
fn other_targets_and_debug_spans_are_not_exported() {
    let spans = traced(|| {
        tracing::info_span!(target: "hyper::client", "conn").in_scope(|| {});
        tracing::debug_span!("warden.debug").in_scope(|| {});
        tracing::info_span!("warden.kept").in_scope(|| {});
    });
    let names: Vec<_> = spans.iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, ["warden.kept"]);
}

/// An in-memory log destination.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[test]
fn the_text_log_escapes_every_field_of_events_and_spans() {
    let hostile = [
        "\x1b[2J\x1b[Hcleared",
        "\x1b]8;;http://evil.example/\x07click\x1b]8;;\x07",
        "\x1b]0;new title\x07",
        "bell\x07 back\x08\x08 nul\0",
        "fail\r2026-01-01T00:00:00Z  INFO warden: status: ok",
        "one\nINFO warden: status: ok",
        "\u{202e}ko :sutats\u{202c} \u{2066}x\u{2069}",
        "c1 \u{9b}2J \u{9d}0;t\u{9c} \u{85}",
    ];
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(captured.clone())
            .with_ansi(false)
            .fmt_fields(EscapedFields),
    );
    tracing::subscriber::with_default(subscriber, || {
        for h in hostile {
            let span = tracing::info_span!("warden.run", warden.plugin = h);
            span.in_scope(|| {
                tracing::info!(plugin = %h, debug = ?h, text = h, "{h}");
                let err = std::io::Error::other(h.to_string());
                tracing::warn!(error = &err as &(dyn std::error::Error + 'static), "failed");
            });
        }
    });
    let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        out.lines().count(),
        2 * hostile.len(),
        "one line per event:\n{out}"
    );
    for c in out.chars() {
        assert!(
            c == '\n' || !crate::text::is_hidden(c),
            "U+{:04X} reached the log:\n{out}",
            u32::from(c)
        );
    }
    // Shown, not dropped.
    assert!(out.contains(r"\x1b[2J\x1b[Hcleared"), "{out}");
    assert!(out.contains(r"fail\r2026"), "{out}");
    assert!(out.contains(r"one\nINFO"), "{out}");
    assert!(out.contains(r"\u{202e}ko"), "{out}");
    assert!(out.contains(r"\u{9b}2J"), "{out}");
    assert!(out.contains("warden.plugin="), "{out}");
}

/// The agent's JSON log format, written into `captured`.
fn json_log(captured: &Captured) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(JsonLog)
            .with_writer(JsonSafe(captured.clone())),
    )
}

#[test]
fn the_json_log_keeps_values_and_writes_hidden_characters_as_escapes() {
    let hostile = "x\x1b[2J\r\nstatus: ok \u{7f} \u{9b}2J \u{202e}ko \u{2066}\u{e0041}";
    let captured = Captured::default();
    let subscriber = json_log(&captured);
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("warden.run", warden.plugin = hostile);
        span.in_scope(|| tracing::info!(plugin = %hostile, "{hostile}"));
    });
    let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        !out.chars().any(|c| c != '\n' && crate::text::is_hidden(c)),
        "{}",
        out.escape_debug()
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["message"], hostile);
    assert_eq!(v["plugin"], hostile);
    assert_eq!(v["span"]["warden.plugin"], hostile);
    assert_eq!(v["span"]["name"], "warden.run");
}

/// Message, level, target and fields at top level; a field named like a
/// top-level key goes under `fields`; typed values stay typed; spans are
/// listed outermost first.
#[test]
fn the_json_log_puts_the_message_and_fields_at_top_level() {
    let captured = Captured::default();
    let subscriber = json_log(&captured);
    tracing::subscriber::with_default(subscriber, || {
        tracing::warn!(plugin = "backup", rows = 42u64, ok = true, "outside");
        let outer = tracing::info_span!("warden.webhook", http.route = "/api/v1/alerts");
        let inner = tracing::info_span!(parent: &outer, "warden.run", warden.run.id = "r1");
        inner.in_scope(|| {
            tracing::info!(
                target = "pg",
                level = "x",
                message2 = "m",
                status = %"succeeded",
                "run finished"
            )
        });
    });
    let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    let first = &lines[0];
    assert_eq!(first["message"], "outside");
    assert_eq!(first["level"], "WARN");
    assert_eq!(first["plugin"], "backup");
    assert_eq!(first["rows"], 42);
    assert_eq!(first["ok"], true);
    assert!(
        first["target"].as_str().unwrap().starts_with("warden"),
        "{first}"
    );
    assert!(
        first.get("span").is_none() && first.get("fields").is_none(),
        "{first}"
    );
    chrono::DateTime::parse_from_rfc3339(first["timestamp"].as_str().unwrap()).unwrap();
    let second = &lines[1];
    assert_eq!(second["message"], "run finished");
    assert_eq!(second["level"], "INFO");
    assert_eq!(second["fields"]["target"], "pg");
    assert_eq!(second["fields"]["level"], "x");
    assert_eq!(second["message2"], "m");
    assert_eq!(second["status"], "succeeded");
    assert_eq!(second["span"]["name"], "warden.run");
    assert_eq!(second["span"]["warden.run.id"], "r1");
    let names: Vec<&str> = second["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["warden.webhook", "warden.run"]);
    assert_eq!(second["spans"][0]["http.route"], "/api/v1/alerts");
}
