//! The OTLP trace pipeline: exporter, batch processor, sampler and resource.
//!
//! # Where the export runs
//!
//! The SDK's [`BatchSpanProcessor`] batches finished spans on its own OS thread
//! and drives each export with a blocking executor. The OTLP exporters need tokio
//! (tonic's channel worker, reqwest's connection pool), so every
//! [`OtlpPipeline`] owns a small dedicated tokio runtime (one worker thread named
//! `warden-otlp`): the exporter is built inside it and every export is spawned on
//! it. Flushing or shutting down therefore never waits on the application's
//! runtime, and cannot deadlock even when called from a current-thread runtime or
//! from inside an async task.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, SpanData,
    SpanExporter, SpanProcessor,
};
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;

/// How long one export may take (connect + send), per batch.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the batch processor sends what it has collected.
const SCHEDULED_DELAY: Duration = Duration::from_secs(2);
/// Spans kept while the collector is slow or down; further spans are dropped.
const MAX_QUEUE: usize = 4096;

/// Spans not exported, by reason, summed over every pipeline of the process
/// (what `warden_otlp_spans_dropped_total` shows).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpansDropped {
    /// Ended while [`MAX_QUEUE`] spans were waiting for export.
    pub queue_full: u64,
    /// In a batch the collector did not take (error, timeout, unreachable).
    pub export_failed: u64,
}

static QUEUE_FULL: AtomicU64 = AtomicU64::new(0);
static EXPORT_FAILED: AtomicU64 = AtomicU64::new(0);

/// Spans dropped so far by every [`OtlpPipeline`] of this process.
pub fn spans_dropped() -> SpansDropped {
    SpansDropped {
        queue_full: QUEUE_FULL.load(Ordering::Relaxed),
        export_failed: EXPORT_FAILED.load(Ordering::Relaxed),
    }
}

/// Counts the spans of one pipeline between their end and the end of their
/// export, and the ones dropped. The batch processor holds at most `max`
/// such spans: a span ending when `max` are pending is dropped here, by
/// [`Counting`], so the processor's own queue (as large) is never full and
/// every drop is counted.
#[derive(Debug)]
struct Drops {
    pending: AtomicUsize,
    max: usize,
    queue_full: AtomicU64,
    export_failed: AtomicU64,
}

impl Drops {
    fn new(max: usize) -> Drops {
        Drops {
            pending: AtomicUsize::new(0),
            max,
            queue_full: AtomicU64::new(0),
            export_failed: AtomicU64::new(0),
        }
    }

    /// Whether a span that just ended may be queued (counted if not).
    fn admit(&self) -> bool {
        let admitted = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            self.queue_full.fetch_add(1, Ordering::Relaxed);
            QUEUE_FULL.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    /// The export of `n` spans ended.
    fn exported(&self, n: usize, ok: bool) {
        let _ = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                Some(p.saturating_sub(n))
            });
        if !ok {
            let n = n as u64;
            self.export_failed.fetch_add(n, Ordering::Relaxed);
            EXPORT_FAILED.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn get(&self) -> SpansDropped {
        SpansDropped {
            queue_full: self.queue_full.load(Ordering::Relaxed),
            export_failed: self.export_failed.load(Ordering::Relaxed),
        }
    }
}

/// A span processor in front of a batch processor that drops (and counts)
/// spans when [`Drops`] says the queue is full.
#[derive(Debug)]
struct Counting<P> {
    inner: P,
    drops: Arc<Drops>,
}

impl<P: SpanProcessor> SpanProcessor for Counting<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.drops.admit() {
            self.inner.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// A batch processor exporting with `exporter` on `handle`, holding at most
/// `max_queue` spans, counting drops in `drops`.
fn counting_batch<E: SpanExporter + 'static>(
    exporter: E,
    handle: tokio::runtime::Handle,
    max_queue: usize,
    drops: Arc<Drops>,
) -> Counting<BatchSpanProcessor> {
    let exporter = OnRuntime {
        inner: Arc::new(exporter),
        handle,
        drops: Arc::clone(&drops),
    };
    let inner = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(max_queue)
                .with_scheduled_delay(SCHEDULED_DELAY)
                .build(),
        )
        .build();
    Counting { inner, drops }
}

/// Where and how to export spans by OTLP.
#[derive(Clone, PartialEq)]
pub struct OtlpSettings {
    /// gRPC: `http://host:4317`. HTTP: `http://host:4318/v1/traces` (used verbatim;
    /// `/v1/traces` is appended when the URL has no path).
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    /// Extra request headers (gRPC metadata), e.g. an API key; already resolved
    /// secrets. Never logged, never part of an error message.
    pub headers: Vec<(String, String)>,
    /// Share of new traces to sample, `0.0..=1.0`. Parent-based: a run whose
    /// incoming `traceparent` says "sampled" (or "not sampled") follows its parent.
    pub sampling_ratio: f64,
    /// `service.name` of the resource; usually [`DEFAULT_SERVICE_NAME`].
    pub service_name: String,
}

/// The default `service.name`.
pub const DEFAULT_SERVICE_NAME: &str = "warden";

impl OtlpSettings {
    /// Settings with no headers, ratio 1.0 and service name `warden`.
    pub fn new(endpoint: impl Into<String>, protocol: OtlpProtocol) -> OtlpSettings {
        OtlpSettings {
            endpoint: endpoint.into(),
            protocol,
            headers: Vec::new(),
            sampling_ratio: 1.0,
            service_name: DEFAULT_SERVICE_NAME.to_string(),
        }
    }
}

/// Header values are secrets: Debug shows only their names.
impl fmt::Debug for OtlpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OtlpSettings")
            .field("endpoint", &redacted_endpoint(&self.endpoint))
            .field("protocol", &self.protocol)
            .field("headers", &header_names)
            .field("sampling_ratio", &self.sampling_ratio)
            .field("service_name", &self.service_name)
            .finish()
    }
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (tonic), usually port 4317.
    Grpc,
    /// OTLP/HTTP with a binary protobuf body, usually port 4318, path `/v1/traces`.
    HttpProtobuf,
}

/// The filter of the OpenTelemetry layer: spans and events of Warden itself at
/// INFO and above. Independent of `WARDEN_LOG`, so quieter logs keep the traces;
/// other crates (tonic, hyper, sqlx, the OTel SDK) are never exported, which also
/// keeps the exporter from tracing its own requests.
pub fn otel_filter() -> Targets {
    Targets::new()
        .with_target("warden", LevelFilter::INFO)
        .with_default(LevelFilter::OFF)
}

/// A tracer provider exporting by OTLP through a batch processor, with the
/// dedicated runtime the export runs on. Flushes and shuts down on drop.
pub struct OtlpPipeline {
    provider: SdkTracerProvider,
    runtime: Option<tokio::runtime::Runtime>,
    shut_down: bool,
    drops: Arc<Drops>,
}

impl fmt::Debug for OtlpPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpPipeline")
            .field("shut_down", &self.shut_down)
            .finish_non_exhaustive()
    }
}

impl OtlpPipeline {
    /// Builds the exporter (no connection is made yet: the first export connects),
    /// the sampler and the resource. Fails on an invalid endpoint, header, ratio,
    /// or an `https` endpoint (this build has no TLS for OTLP). Error messages never
    /// contain header values or the endpoint's user info / query.
    pub fn new(settings: &OtlpSettings) -> anyhow::Result<OtlpPipeline> {
        if !(0.0..=1.0).contains(&settings.sampling_ratio) {
            bail!(
                "OTLP sampling ratio must be within 0.0..=1.0, got {}",
                settings.sampling_ratio
            );
        }
        let endpoint = endpoint_for(settings)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("warden-otlp")
            .enable_all()
            .build()
            .context("starting the OTLP export runtime")?;
        let exporter = {
            // tonic's channel spawns its worker on the runtime it is built in.
            let _in_runtime = runtime.enter();
            build_exporter(settings, &endpoint)
        };
        let exporter = match exporter {
            Ok(exporter) => exporter,
            Err(e) => {
                // Dropping a runtime inside an async context panics; this does not.
                runtime.shutdown_background();
                return Err(e);
            }
        };
        let drops = Arc::new(Drops::new(MAX_QUEUE));
        let processor = counting_batch(
            exporter,
            runtime.handle().clone(),
            MAX_QUEUE,
            Arc::clone(&drops),
        );
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                settings.sampling_ratio,
            ))))
            .with_resource(resource(&settings.service_name))
            .build();
        Ok(OtlpPipeline {
            provider,
            runtime: Some(runtime),
            shut_down: false,
            drops,
        })
    }

    /// Spans this pipeline dropped so far.
    pub fn spans_dropped(&self) -> SpansDropped {
        self.drops.get()
    }

    /// The provider (e.g. for `opentelemetry::global::set_tracer_provider`).
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// A tracer named `warden`.
    pub fn tracer(&self) -> SdkTracer {
        self.provider.tracer("warden")
    }

    /// The tracing-opentelemetry layer for this pipeline, with [`otel_filter`].
    pub fn layer<S>(&self) -> impl Layer<S>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        otel_layer(self.tracer()).with_filter(otel_filter())
    }

    /// Makes a subscriber with only this pipeline's layer the default on the
    /// current thread until the guard drops. It leaves the global subscriber alone:
    /// for tests and embedding. In async code, spans must be created and entered on
    /// this thread (e.g. the body of a `#[tokio::test]`).
    pub fn set_thread_default(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::registry().with(self.layer());
        tracing::subscriber::set_default(subscriber)
    }

    /// Exports all finished spans now; waits up to 5 s.
    pub fn force_flush(&self) -> anyhow::Result<()> {
        self.provider
            .force_flush()
            .map_err(|e| anyhow::anyhow!("flushing OTLP spans: {e}"))
    }

    /// Exports what is pending, then stops the processor and the export runtime.
    /// Idempotent. Blocks up to ~5 s when the collector does not answer.
    pub fn shutdown(&mut self) -> anyhow::Result<()> {
        if self.shut_down {
            return Ok(());
        }
        self.shut_down = true;
        let result = self
            .provider
            .shutdown()
            .map_err(|e| anyhow::anyhow!("shutting down the OTLP exporter: {e}"));
        if let Some(runtime) = self.runtime.take() {
            // Never blocks, so it is allowed inside an async context.
            runtime.shutdown_background();
        }
        result
    }
}

impl Drop for OtlpPipeline {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("warning: {e:#}");
        }
    }
}

/// The layer `init` and [`OtlpPipeline::layer`] use: no thread, source location
/// or target attributes (they are noise for a run's trace); busy/idle time kept.
pub(crate) fn otel_layer<S>(
    tracer: SdkTracer,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_location(false)
        .with_target(false)
}

/// `service.name`, `service.version`, plus the SDK and `OTEL_RESOURCE_ATTRIBUTES`.
pub(crate) fn resource(service_name: &str) -> Resource {
    let name = if service_name.trim().is_empty() {
        DEFAULT_SERVICE_NAME
    } else {
        service_name
    };
    Resource::builder()
        .with_service_name(name.to_string())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build()
}

/// The endpoint checked and normalised; for HTTP with no path, `/v1/traces` added.
fn endpoint_for(settings: &OtlpSettings) -> anyhow::Result<String> {
    let shown = redacted_endpoint(&settings.endpoint);
    let mut url = url::Url::parse(settings.endpoint.trim())
        .map_err(|e| anyhow::anyhow!("OTLP endpoint `{shown}` is not a URL: {e}"))?;
    match url.scheme() {
        "http" => {}
        "https" => bail!(
            "OTLP endpoint `{shown}`: https is not supported by this build \
             (no TLS for OTLP); use http, e.g. through a local collector"
        ),
        other => bail!("OTLP endpoint `{shown}`: scheme must be http, not `{other}`"),
    }
    if url.host_str().is_none() {
        bail!("OTLP endpoint `{shown}` has no host");
    }
    if settings.protocol == OtlpProtocol::HttpProtobuf && matches!(url.path(), "" | "/") {
        url.set_path("/v1/traces");
    }
    let mut s = url.to_string();
    if settings.protocol == OtlpProtocol::Grpc && url.path() == "/" && s.ends_with('/') {
        s.pop();
    }
    Ok(s)
}

/// `scheme://host:port/path` only: no user info, query or fragment.
pub(crate) fn redacted_endpoint(endpoint: &str) -> String {
    match url::Url::parse(endpoint.trim()) {
        Ok(url) => {
            let host = url.host_str().unwrap_or("");
            match url.port() {
                Some(port) => format!("{}://{host}:{port}{}", url.scheme(), url.path()),
                None => format!("{}://{host}{}", url.scheme(), url.path()),
            }
        }
        Err(_) => "<unparseable>".to_string(),
    }
}

fn build_exporter(
    settings: &OtlpSettings,
    endpoint: &str,
) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
    let header_error = |i: usize, name: &str| {
        // The value is a secret: only the position and the name are shown.
        anyhow::anyhow!("OTLP header #{} (`{}`) is not a valid header", i + 1, name)
    };
    let exporter = match settings.protocol {
        OtlpProtocol::Grpc => {
            let mut headers = axum::http::HeaderMap::new();
            for (i, (name, value)) in settings.headers.iter().enumerate() {
                let key = axum::http::HeaderName::from_bytes(name.trim().as_bytes())
                    .map_err(|_| header_error(i, name))?;
                let mut value = axum::http::HeaderValue::from_str(value.trim())
                    .map_err(|_| header_error(i, name))?;
                value.set_sensitive(true);
                headers.append(key, value);
            }
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(EXPORT_TIMEOUT)
                .with_metadata(
                    opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers),
                )
                .build()
        }
        OtlpProtocol::HttpProtobuf => {
            crate::install_tls_provider();
            let mut headers = HashMap::new();
            for (i, (name, value)) in settings.headers.iter().enumerate() {
                // The exporter silently drops invalid headers: check them here.
                axum::http::HeaderName::from_bytes(name.trim().as_bytes())
                    .map_err(|_| header_error(i, name))?;
                axum::http::HeaderValue::from_str(value.trim())
                    .map_err(|_| header_error(i, name))?;
                headers.insert(name.trim().to_string(), value.trim().to_string());
            }
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(endpoint)
                .with_timeout(EXPORT_TIMEOUT)
                .with_headers(headers)
                .build()
        }
    };
    exporter.map_err(|e| {
        anyhow::anyhow!(
            "building the OTLP exporter for `{}`: {e}",
            redacted_endpoint(endpoint)
        )
    })
}

/// Runs each export of `inner` as a task on `handle` (see the module docs)
/// and tells `drops` how it ended.
#[derive(Debug)]
struct OnRuntime<E> {
    inner: Arc<E>,
    handle: tokio::runtime::Handle,
    drops: Arc<Drops>,
}

impl<E: SpanExporter + 'static> SpanExporter for OnRuntime<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let inner = Arc::clone(&self.inner);
        let n = batch.len();
        let result = match self
            .handle
            .spawn(async move { inner.export(batch).await })
            .await
        {
            Ok(result) => result,
            Err(e) => Err(OTelSdkError::InternalFailure(format!(
                "OTLP export task ended: {e}"
            ))),
        };
        self.drops.exported(n, result.is_ok());
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called once by the processor before any export, while no task holds a
        // clone of `inner`.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked_and_normalised() {
        let http = |e: &str| endpoint_for(&OtlpSettings::new(e, OtlpProtocol::HttpProtobuf));
        let grpc = |e: &str| endpoint_for(&OtlpSettings::new(e, OtlpProtocol::Grpc));
        assert_eq!(
            http("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            http("http://c:4318/custom/traces").unwrap(),
            "http://c:4318/custom/traces"
        );
        assert_eq!(
            grpc("http://127.0.0.1:4317").unwrap(),
            "http://127.0.0.1:4317"
        );
        let e = grpc("https://user:pw@collector:4317/?key=abc").unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("https is not supported"), "{msg}");
        assert!(!msg.contains("pw") && !msg.contains("abc"), "{msg}");
        assert!(grpc("ftp://x").is_err());
        assert!(grpc("not a url").is_err());
    }

    #[test]
    fn bad_settings_are_rejected_without_leaking_header_values() {
        let mut s = OtlpSettings::new("http://127.0.0.1:1", OtlpProtocol::Grpc);
        s.sampling_ratio = 1.5;
        assert!(OtlpPipeline::new(&s).is_err());
        s.sampling_ratio = f64::NAN;
        assert!(OtlpPipeline::new(&s).is_err());
        for protocol in [OtlpProtocol::Grpc, OtlpProtocol::HttpProtobuf] {
            let mut s = OtlpSettings::new("http://127.0.0.1:1", protocol);
            s.headers = vec![("x-api-key".into(), "sec\nret-value".into())];
            let msg = format!("{:#}", OtlpPipeline::new(&s).unwrap_err());
            assert!(msg.contains("x-api-key"), "{msg}");
            assert!(!msg.contains("ret-value"), "{msg}");
            let debug = format!("{s:?}");
            assert!(!debug.contains("ret-value"), "{debug}");
        }
    }

    /// An exporter for the tests of [`Counting`]: each export waits until
    /// the test lets it go, then fails or succeeds as told.
    #[derive(Debug)]
    struct Gate {
        go: std::sync::Mutex<std::sync::mpsc::Receiver<bool>>,
        seen: Arc<AtomicUsize>,
    }

    impl SpanExporter for Gate {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.seen.fetch_add(batch.len(), Ordering::SeqCst);
            let ok = self.go.lock().unwrap().recv().unwrap_or(true);
            if ok {
                Ok(())
            } else {
                Err(OTelSdkError::InternalFailure("refused by the test".into()))
            }
        }
    }

    fn ended_spans(provider: &SdkTracerProvider, n: usize) {
        use opentelemetry::trace::{Span as _, Tracer as _};
        let tracer = provider.tracer("test");
        for i in 0..n {
            tracer.start(format!("s{i}")).end();
        }
    }

    /// Spans ending while the queue holds its maximum are dropped and
    /// counted; failed exports count their spans; the rest are exported.
    #[test]
    fn dropped_spans_are_counted_by_reason() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        for (max, ended, first_ok) in [(4, 10, false), (8, 8, true), (3, 5, true)] {
            let (go, gate) = std::sync::mpsc::channel();
            let seen = Arc::new(AtomicUsize::new(0));
            let drops = Arc::new(Drops::new(max));
            let processor = counting_batch(
                Gate {
                    go: std::sync::Mutex::new(gate),
                    seen: Arc::clone(&seen),
                },
                runtime.handle().clone(),
                max,
                Arc::clone(&drops),
            );
            let provider = SdkTracerProvider::builder()
                .with_span_processor(processor)
                .build();
            // The gate is closed: nothing leaves the queue.
            ended_spans(&provider, ended);
            let full = ended.saturating_sub(max) as u64;
            assert_eq!(drops.get().queue_full, full, "max {max} ended {ended}");
            // Let the exports through: the first as told, the rest fine.
            go.send(first_ok).unwrap();
            for _ in 0..ended {
                let _ = go.send(true);
            }
            let _ = provider.force_flush();
            let got = drops.get();
            assert_eq!(seen.load(Ordering::SeqCst), ended.min(max));
            let failed = if first_ok { 0 } else { ended.min(max) as u64 };
            assert_eq!(got.export_failed, failed, "max {max} ended {ended}");
            assert_eq!(drops.pending.load(Ordering::SeqCst), 0);
            // Room again: the next spans are queued.
            ended_spans(&provider, max);
            assert_eq!(drops.get().queue_full, full);
            let _ = provider.shutdown();
        }
        runtime.shutdown_background();
    }

    #[test]
    fn a_pipeline_builds_flushes_and_shuts_down_without_a_collector() {
        for protocol in [OtlpProtocol::Grpc, OtlpProtocol::HttpProtobuf] {
            let mut s = OtlpSettings::new("http://127.0.0.1:9", protocol);
            s.headers = vec![("authorization".into(), "Bearer x".into())];
            let mut p = OtlpPipeline::new(&s).unwrap();
            // Nothing to export: flushing succeeds without a connection.
            p.force_flush().unwrap();
            p.shutdown().unwrap();
            p.shutdown().unwrap();
        }
    }
}
