//! Tracing, OpenTelemetry (OTLP) export and Prometheus metrics.
