//! Alertmanager's webhook payload (version 4), parsed and checked.
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
//! Unknown fields are ignored (Alertmanager adds some now and then); the
//! fields Warden uses are required and checked, and every problem names its
//! place (`alerts[3].status`).

use crate::runs::admit::IncomingAlert;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
struct Payload {
    version: Option<String>,
    alerts: Option<Vec<Alert>>,
}

#[derive(Debug, Deserialize)]
struct Alert {
    status: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    starts_at: Option<String>,
    #[serde(rename = "endsAt", default)]
    ends_at: String,
    fingerprint: Option<String>,
}

/// What is wrong with a payload, and whether it is the JSON itself (400) or
/// its content (422).
#[derive(Debug, PartialEq)]
pub enum PayloadError {
    Malformed(String),
    Invalid(Vec<String>),
}

/// Most alerts accepted in one call.
pub const MAX_ALERTS: usize = 10_000;

/// Parses and checks a webhook body.
pub fn parse(body: &[u8]) -> Result<Vec<IncomingAlert>, PayloadError> {
    let payload: Payload = serde_json::from_slice(body).map_err(|e| {
        PayloadError::Malformed(format!(
            "malformed JSON at line {} column {}: {e}",
            e.line(),
            e.column()
        ))
    })?;
    let mut problems = Vec::new();
    match payload.version.as_deref() {
        Some("4") => {}
        Some(v) => problems.push(format!(
            "version: unsupported webhook payload version {v:?}; Warden reads Alertmanager's version \"4\""
        )),
        None => problems.push("version: missing (Alertmanager sends \"4\")".to_string()),
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
        let Some(labels) = a.labels else {
            problems.push(format!("alerts[{i}].labels: missing"));
            continue;
        };
        let fingerprint = match a.fingerprint {
            Some(f) if !f.is_empty() && f.len() <= 128 => f,
            _ => {
                problems.push(format!(
                    "alerts[{i}].fingerprint: missing or empty (Alertmanager 0.19+ sends it)"
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
        out.push(IncomingAlert {
            status,
            labels,
            annotations: a.annotations,
            fingerprint,
            starts_at,
            ends_at: a.ends_at,
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(PayloadError::Invalid(problems))
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
}
