//! `[telemetry]`: where traces go.

use super::document::Table;
use super::{Resolver, Secret};
use crate::diag::Diagnostics;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use toml::Spanned;

/// `[telemetry]`: where traces go.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    /// Header name and value (values are secrets, read from the environment).
    pub headers: Vec<(String, Secret)>,
    pub sampling_ratio: f64,
    pub service_name: String,
}

/// How spans are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    #[serde(rename = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

/// `[telemetry]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TelemetryFile {
    /// OTLP endpoint, like `"http://127.0.0.1:4317"` (grpc) or
    /// `"http://127.0.0.1:4318/v1/traces"` (http/protobuf). Without it,
    /// no spans are exported.
    otlp_endpoint: Option<Spanned<String>>,
    /// `"grpc"` (default) or `"http/protobuf"`.
    otlp_protocol: Option<Spanned<OtlpProtocol>>,
    /// Headers to send, by name, each naming the environment variable that
    /// holds its value (an API key is a secret): `{ "x-api-key" = "OTLP_KEY" }`.
    otlp_headers_env: Option<BTreeMap<String, Spanned<String>>>,
    /// Share of traces kept, 0.0 to 1.0 (default 1.0); a sampled parent
    /// (from `traceparent`) is always followed.
    sampling_ratio: Option<Spanned<f64>>,
    /// `service.name` of the spans; default `"warden"`.
    service_name: Option<String>,
}

impl<E: Fn(&str) -> Option<OsString>> Resolver<'_, E> {
    pub(super) fn telemetry(
        &self,
        table: &Table<'_, TelemetryFile>,
        diags: &mut Diagnostics,
    ) -> Option<OtlpConfig> {
        let file = &table.value;
        let endpoint = file.otlp_endpoint.as_ref()?;
        if url::Url::parse(endpoint.get_ref()).is_err() || !endpoint.get_ref().starts_with("http") {
            diags.push(table.source.error(
                &endpoint.span(),
                table.field("otlp_endpoint"),
                "must be an http:// or https:// URL",
            ));
        }
        let sampling_ratio = file.sampling_ratio.as_ref().map_or(1.0, |r| *r.get_ref());
        if !(0.0..=1.0).contains(&sampling_ratio)
            && let Some(r) = &file.sampling_ratio
        {
            {
                diags.push(table.source.error(
                    &r.span(),
                    table.field("sampling_ratio"),
                    "must be between 0.0 and 1.0",
                ));
            }
        }
        let mut headers = Vec::new();
        for (name, env_name) in file.otlp_headers_env.iter().flatten() {
            match (self.env)(env_name.get_ref()).and_then(|v| v.into_string().ok()) {
                Some(v) => headers.push((name.clone(), Secret::new(v.trim()))),
                None => diags.push(table.source.error(
                    &env_name.span(),
                    format!("{}.{name}", table.field("otlp_headers_env")),
                    format!(
                        "environment variable `{}` is not set (or not UTF-8)",
                        env_name.get_ref()
                    ),
                )),
            }
        }
        Some(OtlpConfig {
            endpoint: endpoint.get_ref().clone(),
            protocol: file
                .otlp_protocol
                .as_ref()
                .map_or(OtlpProtocol::Grpc, |p| *p.get_ref()),
            headers,
            sampling_ratio,
            service_name: file
                .service_name
                .clone()
                .unwrap_or_else(|| "warden".to_string()),
        })
    }
}
