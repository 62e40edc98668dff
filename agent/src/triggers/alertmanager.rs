//! Alert webhook payloads, parsed and checked: Alertmanager's (version 4)
//! and Grafana's webhook contact point (version 1, which adds `orgId`,
//! `state`, `title`, `message` and per-alert `values` to the same shape).
//!
//! ```json
//! {"version": "4", "groupKey": "{}:{alertname=\"X\"}", "status": "firing",
//!  "receiver": "warden", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
//!  "externalURL": "http://am:9093", "truncatedAlerts": 0,
//!  "alerts": [{"status": "firing", "labels": {"alertname": "X"}, "annotations": {},
//!              "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
//!              "generatorURL": "...", "fingerprint": "c3a1b2..."}]}
//! ```
//!
//! Unknown fields are ignored (Alertmanager and Grafana add some now and
//! then); the fields Warden uses are required and checked, and every
//! problem names its place (`alerts[3].status`). A field of the wrong type
//! (`"labels": {"team": 3}`) and a label or annotation given twice in one
//! object are content errors (422) naming the field's path, not syntax
//! errors: JSON parsers disagree on which of two equal keys wins, so
//! Warden takes neither. A Grafana alert's `values` (`{"B": 44.2}`) become
//! annotations `value_B` unless the alert has an annotation of that name.

use crate::dispatch::admit::IncomingAlert;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read as _;

#[derive(Debug, Deserialize)]
struct Payload {
    version: Option<String>,
    /// Grafana's organisation id; only Grafana sends it.
    #[serde(rename = "orgId")]
    org_id: Option<i64>,
    alerts: Option<Vec<Alert>>,
}

#[derive(Debug, Deserialize)]
struct Alert {
    status: Option<String>,
    labels: Option<Pairs>,
    #[serde(default)]
    annotations: Option<Pairs>,
    #[serde(rename = "startsAt")]
    starts_at: Option<String>,
    #[serde(rename = "endsAt", default)]
    ends_at: Option<String>,
    fingerprint: Option<String>,
    /// Grafana: the values of the rule's queries and expressions.
    #[serde(default)]
    values: Option<BTreeMap<String, Option<f64>>>,
}

/// A JSON object of strings in which every key appears once.
#[derive(Debug, Default)]
struct Pairs(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Pairs, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value: String = map.next_value()?;
                    if out.contains_key(&key) {
                        return Err(de::Error::custom(format_args!(
                            "{key:?} is given twice; each name may appear once"
                        )));
                    }
                    out.insert(key, value);
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// What is wrong with a payload, and whether it is the JSON itself (400),
/// its content (422), its size once decoded (413) or its encoding (415).
#[derive(Debug, PartialEq)]
pub enum PayloadError {
    Malformed(String),
    Invalid(Vec<String>),
    TooLarge(String),
    Unsupported(String),
}

/// Most alerts accepted in one call.
pub const MAX_ALERTS: usize = 10_000;

/// The body as sent, decoded per its `Content-Encoding` (none, `identity`
/// or `gzip`), never beyond `max` bytes: a small compressed body cannot
/// become a large one in memory.
pub fn decode<'a>(
    content_encoding: Option<&[u8]>,
    body: &'a [u8],
    max: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, PayloadError> {
    let encoding = match content_encoding {
        None => return Ok(body.into()),
        Some(e) => String::from_utf8_lossy(e).trim().to_ascii_lowercase(),
    };
    match encoding.as_str() {
        "" | "identity" => Ok(body.into()),
        "gzip" | "x-gzip" => {
            let mut out = Vec::new();
            let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
            flate2::read::MultiGzDecoder::new(body)
                .take(limit)
                .read_to_end(&mut out)
                .map_err(|e| {
                    PayloadError::Malformed(format!("the gzip-encoded body cannot be decoded: {e}"))
                })?;
            if out.len() > max {
                return Err(PayloadError::TooLarge(format!(
                    "the gzip-encoded body is over {max} bytes once decoded (http.max_body)"
                )));
            }
            Ok(out.into())
        }
        other => Err(PayloadError::Unsupported(format!(
            "Content-Encoding {other:?} is not supported; send the body as is or with gzip"
        ))),
    }
}

/// Parses and checks a webhook body.
pub fn parse(body: &[u8]) -> Result<Vec<IncomingAlert>, PayloadError> {
    let mut json = serde_json::Deserializer::from_slice(body);
    let payload: Payload = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let inner = e.inner();
        if inner.is_data() {
            PayloadError::Invalid(vec![format!("{}: {}", e.path(), strip_position(inner))])
        } else {
            malformed(inner)
        }
    })?;
    json.end().map_err(|e| malformed(&e))?;
    let mut problems = Vec::new();
    match (payload.version.as_deref(), payload.org_id) {
        (Some("4"), _) | (Some("1"), Some(_)) => {}
        (Some("1"), None) => problems.push(
            "version: \"1\" is Grafana's webhook, which also sends `orgId`; it is missing"
                .to_string(),
        ),
        (Some(v), _) => problems.push(format!(
            "version: unsupported webhook payload version {v:?}; Warden reads Alertmanager's version \"4\" and Grafana's version \"1\""
        )),
        (None, _) => {
            problems.push("version: missing (Alertmanager sends \"4\", Grafana \"1\")".to_string())
        }
    }
    let Some(alerts) = payload.alerts else {
        problems.push("alerts: missing".to_string());
        return Err(PayloadError::Invalid(problems));
    };
    if alerts.len() > MAX_ALERTS {
        problems.push(format!(
            "alerts: {} alerts in one call, the most accepted is {MAX_ALERTS}",
            alerts.len()
        ));
        return Err(PayloadError::Invalid(problems));
    }
    let mut out = Vec::with_capacity(alerts.len());
    for (i, a) in alerts.into_iter().enumerate() {
        let status = match a.status.as_deref() {
            Some(s @ ("firing" | "resolved")) => s.to_string(),
            Some(s) => {
                problems.push(format!(
                    "alerts[{i}].status: {s:?} is neither \"firing\" nor \"resolved\""
                ));
                continue;
            }
            None => {
                problems.push(format!("alerts[{i}].status: missing"));
                continue;
            }
        };
        let Some(Pairs(labels)) = a.labels else {
            problems.push(format!("alerts[{i}].labels: missing"));
            continue;
        };
        let fingerprint = match a.fingerprint {
            Some(f) if !f.is_empty() && f.len() <= 128 => f,
            _ => {
                problems.push(format!(
                    "alerts[{i}].fingerprint: missing or empty (Alertmanager 0.19+ and Grafana 9+ send it)"
                ));
                continue;
            }
        };
        let starts_at = match a.starts_at {
            Some(s) if chrono::DateTime::parse_from_rfc3339(&s).is_ok() => s,
            Some(s) => {
                problems.push(format!(
                    "alerts[{i}].startsAt: {s:?} is not an RFC 3339 time"
                ));
                continue;
            }
            None => {
                problems.push(format!("alerts[{i}].startsAt: missing"));
                continue;
            }
        };
        let mut annotations = a.annotations.unwrap_or_default().0;
        for (name, value) in a.values.unwrap_or_default() {
            if let Some(v) = value {
                annotations
                    .entry(format!("value_{name}"))
                    .or_insert_with(|| v.to_string());
            }
        }
        out.push(IncomingAlert {
            status,
            labels,
            annotations,
            fingerprint,
            starts_at,
            ends_at: a.ends_at.unwrap_or_default(),
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(PayloadError::Invalid(problems))
    }
}

fn malformed(e: &serde_json::Error) -> PayloadError {
    PayloadError::Malformed(format!(
        "malformed JSON at line {} column {}: {}",
        e.line(),
        e.column(),
        strip_position(e)
    ))
}

/// serde_json's message without its " at line L column C" tail: the path
/// says where.
fn strip_position(e: &serde_json::Error) -> String {
    let m = e.to_string();
    match m.rfind(" at line ") {
        Some(at) => m[..at].to_string(),
        None => m,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    const GOOD: &str = r#"{"version":"4","groupKey":"g","status":"firing","receiver":"w",
      "alerts":[{"status":"firing","labels":{"alertname":"X","target":"app"},
      "annotations":{"summary":"s"},"startsAt":"2026-01-01T00:00:00Z",
      "endsAt":"0001-01-01T00:00:00Z","fingerprint":"abc","extra":1}]}"#;

    #[test]
    fn parses_version_4() {
        let alerts = parse(GOOD.as_bytes()).unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].labels["target"], "app");
        assert_eq!(alerts[0].annotations["summary"], "s");
        assert_eq!(alerts[0].fingerprint, "abc");
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let Err(PayloadError::Malformed(m)) = parse(b"{\"version\": \"4\",\n \"alerts\": [}")
        else {
            panic!()
        };
        assert!(m.contains("line 2"), "{m}");
    }

    #[test]
    fn every_problem_is_named() {
        let body = r#"{"version":"3","alerts":[
          {"status":"firing","labels":{},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"a"},
          {"status":"burning","labels":{},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"b"},
          {"status":"firing","labels":{},"startsAt":"yesterday","fingerprint":"c"},
          {"status":"firing","startsAt":"2026-01-01T00:00:00Z","fingerprint":"d"},
          {"status":"firing","labels":{},"startsAt":"2026-01-01T00:00:00Z"}]}"#;
        let Err(PayloadError::Invalid(p)) = parse(body.as_bytes()) else {
            panic!()
        };
        assert_eq!(p.len(), 5, "{p:#?}");
        assert!(p[0].starts_with("version:"));
        assert!(p[1].starts_with("alerts[1].status"));
        assert!(p[2].starts_with("alerts[2].startsAt"));
        assert!(p[3].starts_with("alerts[3].labels"));
        assert!(p[4].starts_with("alerts[4].fingerprint"));
    }

    #[test]
    fn grafana_values_become_annotations_without_overwriting() {
        let body = r#"{"version":"1","orgId":1,"state":"alerting","title":"t","message":"m",
          "alerts":[{"status":"firing","labels":{"alertname":"X"},
          "annotations":{"value_C":"mine"},"values":{"B":44.5,"C":1,"D":null},
          "startsAt":"2026-01-01T00:00:00+02:00","fingerprint":"f"}]}"#;
        let alerts = parse(body.as_bytes()).unwrap();
        assert_eq!(alerts[0].annotations["value_B"], "44.5");
        assert_eq!(alerts[0].annotations["value_C"], "mine");
        assert!(!alerts[0].annotations.contains_key("value_D"));
    }

    #[test]
    fn duplicate_keys_and_wrong_types_name_the_path() {
        let dup = r#"{"version":"4","alerts":[{"status":"firing",
          "labels":{"a":"1","b":"2","a":"3"},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"f"}]}"#;
        let Err(PayloadError::Invalid(p)) = parse(dup.as_bytes()) else {
            panic!()
        };
        assert!(
            p[0].starts_with("alerts[0].labels") && p[0].contains("\"a\" is given twice"),
            "{p:?}"
        );
        let typed = r#"{"version":"4","alerts":[{"status":"firing",
          "labels":{"a":true},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"f"}]}"#;
        let Err(PayloadError::Invalid(p)) = parse(typed.as_bytes()) else {
            panic!()
        };
        assert!(
            p[0].starts_with("alerts[0].labels.a: invalid type"),
            "{p:?}"
        );
        assert!(!p[0].contains("line"), "{p:?}");
        // Trailing bytes after the object are a syntax error.
        let Err(PayloadError::Malformed(m)) = parse(br#"{"version":"4","alerts":[]} x"#) else {
            panic!()
        };
        assert!(m.contains("line 1"), "{m}");
    }

    #[test]
    fn decode_bounds_gzip_and_refuses_other_encodings() {
        use std::io::Write as _;
        let gz = |b: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(b).unwrap();
            e.finish().unwrap()
        };
        assert_eq!(&*decode(None, b"abc", 3).unwrap(), b"abc");
        assert_eq!(&*decode(Some(b"identity"), b"abc", 3).unwrap(), b"abc");
        assert_eq!(&*decode(Some(b" GZIP "), &gz(b"abc"), 3).unwrap(), b"abc");
        assert!(matches!(
            decode(Some(b"gzip"), &gz(&[b' '; 1 << 20]), 1000),
            Err(PayloadError::TooLarge(_))
        ));
        assert!(matches!(
            decode(Some(b"gzip"), b"not gzip", 1000),
            Err(PayloadError::Malformed(_))
        ));
        for enc in [&b"br"[..], b"deflate", b"gzip, gzip", b"zstd"] {
            let Err(PayloadError::Unsupported(m)) = decode(Some(enc), b"x", 10) else {
                panic!()
            };
            assert!(m.contains(std::str::from_utf8(enc).unwrap()), "{m}");
        }
    }
}
