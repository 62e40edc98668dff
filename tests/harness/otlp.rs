//! A real OTLP trace receiver for tests: OTLP/gRPC (tonic, the generated
//! `TraceService` server of `opentelemetry-proto`) and OTLP/HTTP
//! (`POST /v1/traces` with a binary protobuf body, served by axum) on two random
//! loopback ports.
//!
//! It runs on its own thread with its own tokio runtime, so [`OtlpReceiver::start`]
//! works from sync tests, `#[tokio::test]`s of either flavour, and while the test
//! thread blocks (e.g. waiting for a `warden` child process). Dropping the receiver
//! stops both servers.
//!
//! The HTTP body is decoded by the same prost codec as gRPC: the handler frames the
//! protobuf bytes as a gRPC message and hands them to the `TraceService` server
//! in-process (this crate has no direct `prost` dependency). Malformed bodies get
//! `400`, bodies that are not `application/x-protobuf` get `415`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtelStatusCode;
use tonic::codegen::Service as _;

/// Marks requests the HTTP handler forwards to the gRPC service.
const VIA_HTTP: &str = "x-otlp-receiver-via";
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// One span as received.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// 16 lowercase hex digits, empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// `internal`, `server`, `client`, `producer`, `consumer` or `unspecified`.
    pub kind: String,
    /// `unset`, `ok` or `error`.
    pub status: String,
    pub status_message: String,
    /// Values stringified: strings as is, numbers and bools as Rust prints them,
    /// bytes as hex, arrays and maps as JSON-ish text.
    pub attributes: BTreeMap<String, String>,
    /// The resource's attributes, stringified the same way.
    pub resource: BTreeMap<String, String>,
    /// `grpc` or `http`.
    pub transport: &'static str,
}

impl ReceivedSpan {
    /// The attribute `key`, if present.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// One export request's metadata / HTTP headers (lowercase names; binary
/// metadata left out).
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedRequest {
    /// `grpc` or `http`.
    pub transport: &'static str,
    pub headers: BTreeMap<String, String>,
    pub spans: usize,
}

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    requests: Arc<Mutex<Vec<ReceivedRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let transport = if request.metadata().contains_key(VIA_HTTP) {
            "http"
        } else {
            "grpc"
        };
        let headers: BTreeMap<String, String> = request
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .filter(|(name, _)| name.as_str() != VIA_HTTP)
            .filter_map(|(name, value)| {
                Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
            })
            .collect();
        let mut received = Vec::new();
        for rs in &request.get_ref().resource_spans {
            let resource = rs
                .resource
                .as_ref()
                .map(|r| attributes(&r.attributes))
                .unwrap_or_default();
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    let status = span.status.clone().unwrap_or_default();
                    received.push(ReceivedSpan {
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        name: span.name.clone(),
                        kind: SpanKind::try_from(span.kind)
                            .map(|k| {
                                k.as_str_name()
                                    .trim_start_matches("SPAN_KIND_")
                                    .to_lowercase()
                            })
                            .unwrap_or_else(|_| span.kind.to_string()),
                        status: OtelStatusCode::try_from(status.code)
                            .map(|c| {
                                c.as_str_name()
                                    .trim_start_matches("STATUS_CODE_")
                                    .to_lowercase()
                            })
                            .unwrap_or_else(|_| status.code.to_string()),
                        status_message: status.message,
                        attributes: attributes(&span.attributes),
                        resource: resource.clone(),
                        transport,
                    });
                }
            }
        }
        self.requests.lock().unwrap().push(ReceivedRequest {
            transport,
            headers,
            spans: received.len(),
        });
        self.spans.lock().unwrap().extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), any_value(kv.value.as_ref())))
        .collect()
}

fn any_value(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => hex(b),
        Some(any_value::Value::ArrayValue(a)) => {
            let items: Vec<String> = a
                .values
                .iter()
                .map(|v| format!("{:?}", any_value(Some(v))))
                .collect();
            format!("[{}]", items.join(","))
        }
        Some(any_value::Value::KvlistValue(l)) => {
            let items: Vec<String> = l
                .values
                .iter()
                .map(|kv| format!("{:?}:{:?}", kv.key, any_value(kv.value.as_ref())))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Some(other) => format!("{other:?}"),
    }
}

/// `POST /v1/traces`: frames the protobuf body as one gRPC message and lets the
/// generated server decode it and call [`Collector::export`].
async fn http_export(
    State(grpc): State<TraceServiceServer<Collector>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/x-protobuf") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected application/x-protobuf, got `{content_type}`"),
        )
            .into_response();
    }
    if headers.contains_key(header::CONTENT_ENCODING) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "compressed bodies are not supported by the test receiver",
        )
            .into_response();
    }
    let Ok(len) = u32::try_from(body.len()) else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let mut framed = Vec::with_capacity(body.len() + 5);
    framed.push(0); // not compressed
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&body);
    let mut request = axum::http::Request::post(EXPORT_PATH)
        .body(Body::from(framed))
        .unwrap();
    for (name, value) in &headers {
        if name != header::CONTENT_TYPE
            && name != header::CONTENT_LENGTH
            && name != header::HOST
            && name != header::TRANSFER_ENCODING
        {
            request.headers_mut().append(name.clone(), value.clone());
        }
    }
    let h = request.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(header::TE, HeaderValue::from_static("trailers"));
    h.insert(VIA_HTTP, HeaderValue::from_static("1"));
    let mut grpc = grpc;
    let response = match grpc.call(request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    // Errors come as "trailers-only" responses: grpc-status in the headers.
    if let Some(code) = response.headers().get("grpc-status")
        && code != "0"
    {
        let message = response
            .headers()
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        return (
            StatusCode::BAD_REQUEST,
            format!("bad OTLP request (grpc-status {code:?}): {message}"),
        )
            .into_response();
    }
    // An empty ExportTraceServiceResponse encodes as zero bytes.
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        Bytes::new(),
    )
        .into_response()
}

/// The receiver; see the module docs.
pub struct OtlpReceiver {
    collector: Collector,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for OtlpReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpReceiver")
            .field("grpc", &self.grpc_addr)
            .field("http", &self.http_addr)
            .finish()
    }
}

impl OtlpReceiver {
    /// Binds both ports on 127.0.0.1 and starts serving before returning.
    pub fn start() -> OtlpReceiver {
        let grpc_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let http_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let grpc_addr = grpc_listener.local_addr().unwrap();
        let http_addr = http_listener.local_addr().unwrap();
        grpc_listener.set_nonblocking(true).unwrap();
        http_listener.set_nonblocking(true).unwrap();
        let collector = Collector::default();
        let service = TraceServiceServer::new(collector.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("otlp-receiver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let grpc_listener = tokio::net::TcpListener::from_std(grpc_listener).unwrap();
                    let http_listener = tokio::net::TcpListener::from_std(http_listener).unwrap();
                    let grpc = tonic::transport::Server::builder()
                        .add_service(service.clone())
                        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(
                            grpc_listener,
                        ));
                    let router = axum::Router::new()
                        .route("/v1/traces", axum::routing::post(http_export))
                        .with_state(service);
                    let http = axum::serve(http_listener, router).into_future();
                    tokio::select! {
                        r = grpc => panic!("OTLP gRPC receiver stopped: {r:?}"),
                        r = http => panic!("OTLP HTTP receiver stopped: {r:?}"),
                        _ = stopped => {}
                    }
                });
            })
            .unwrap();
        OtlpReceiver {
            collector,
            grpc_addr,
            http_addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, for OTLP/gRPC.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// `http://127.0.0.1:PORT/v1/traces`, for OTLP/HTTP.
    pub fn http_endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.http_addr)
    }

    /// All spans received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.collector.spans.lock().unwrap().clone()
    }

    /// One entry per export request received so far.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.collector.requests.lock().unwrap().clone()
    }

    /// Polls (blocking the calling thread; the servers run on their own) until
    /// `done(&spans)` holds and returns the spans; panics with what was received
    /// after `timeout`.
    pub fn wait_for(
        &self,
        done: impl Fn(&[ReceivedSpan]) -> bool,
        timeout: Duration,
    ) -> Vec<ReceivedSpan> {
        let start = Instant::now();
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            if start.elapsed() >= timeout {
                panic!(
                    "timed out after {timeout:?} waiting for OTLP spans; received {}:\n{spans:#?}",
                    spans.len()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// [`OtlpReceiver::wait_for`] without blocking the async runtime.
    pub async fn wait_for_async(
        &self,
        done: impl Fn(&[ReceivedSpan]) -> bool,
        timeout: Duration,
    ) -> Vec<ReceivedSpan> {
        let start = Instant::now();
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            if start.elapsed() >= timeout {
                panic!(
                    "timed out after {timeout:?} waiting for OTLP spans; received {}:\n{spans:#?}",
                    spans.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // Don't turn a receiver panic into a double panic while unwinding.
            let result = thread.join();
            if result.is_err() && !std::thread::panicking() {
                panic!("the OTLP receiver thread panicked");
            }
        }
    }
}
