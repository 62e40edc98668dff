//! A runbook as the host serves it (`warden:plugin/runbooks.get`, JSON; the
//! file format is `policies/runbooks/README.md`). The host validated it at
//! load: here the model only has to read it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// One runbook.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Runbook {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_severity")]
    pub severity: String,
    #[serde(default)]
    pub target_kind: String,
    #[serde(default)]
    pub alerts: Vec<String>,
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub source: String,
}

fn default_severity() -> String {
    "warning".to_owned()
}

fn default_max_steps() -> u32 {
    100
}

/// A parameter: its type, default and meaning.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ParamSpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    #[serde(default)]
    pub description: String,
}

/// One step; which fields count depends on `kind`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Step {
    pub id: String,
    pub kind: String,
    #[serde(default)]
    pub title: Option<String>,
    /// CEL guard: the step is skipped when it is false.
    #[serde(default)]
    pub when: Option<String>,
    // query / action
    #[serde(default)]
    pub sql: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub mongo: Option<String>,
    #[serde(default)]
    pub database: Option<String>,
    // check
    #[serde(default)]
    pub expr: Option<String>,
    #[serde(default, rename = "else")]
    pub otherwise: Option<String>,
    // action
    #[serde(default)]
    pub terminate: Option<String>,
    #[serde(default)]
    pub cancel: Option<String>,
    #[serde(default)]
    pub kill_ops: Option<String>,
    #[serde(default)]
    pub requires_approval: Option<bool>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub on_failure: Option<String>,
    // run_plugin
    #[serde(default)]
    pub plugin: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[serde(default)]
    pub target: Option<String>,
    // wait
    #[serde(default)]
    pub refresh: Option<String>,
    #[serde(default)]
    pub every: Option<String>,
    #[serde(default)]
    pub until: Option<String>,
    // note
    #[serde(default)]
    pub text: Option<String>,
}

impl Step {
    /// `title`, else the id.
    pub fn label(&self) -> &str {
        self.title.as_deref().unwrap_or(&self.id)
    }

    /// Actions need approval unless they say otherwise.
    pub fn needs_approval(&self) -> bool {
        self.kind == "action" && self.requires_approval.unwrap_or(true)
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.timeout.as_deref().and_then(parse_duration)
    }
}

/// What to do when a step fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnFailure {
    Stop,
    Continue,
    Goto(String),
}

impl OnFailure {
    pub fn of(step: &Step) -> OnFailure {
        match step.on_failure.as_deref() {
            None | Some("stop") => OnFailure::Stop,
            Some("continue") => OnFailure::Continue,
            Some(other) => match other.strip_prefix("goto:") {
                Some(id) => OnFailure::Goto(id.trim().to_owned()),
                None => OnFailure::Stop,
            },
        }
    }
}

/// `30s`, `5m`, `1h30m`, `250ms` (the SDK's parser).
pub fn parse_duration(text: &str) -> Option<Duration> {
    warden_sdk::parse_duration(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_json_reads_into_the_model() {
        let json = r#"{
            "name": "pg-x", "description": "d", "severity": "critical", "target_kind": "postgres",
            "alerts": ["alertname=\"X\""], "max_steps": 20,
            "params": {"idle_minutes": {"type": "integer", "default": 10, "description": "m"}},
            "steps": [
                {"id": "q", "kind": "query", "sql": "SELECT 1", "args": ["params.idle_minutes"]},
                {"id": "a", "kind": "action", "terminate": "[1]", "on_failure": "goto:q", "timeout": "30s"},
                {"id": "r", "kind": "run_plugin", "plugin": "vacuum", "params": {"table": "'t'"}},
                {"id": "c", "kind": "check", "expr": "true", "else": "q"}
            ],
            "source": "pg.toml:1"
        }"#;
        let rb: Runbook = serde_json::from_str(json).unwrap();
        assert_eq!(rb.max_steps, 20);
        assert_eq!(
            rb.params["idle_minutes"].default,
            Some(serde_json::json!(10))
        );
        assert!(rb.steps[1].needs_approval());
        assert_eq!(OnFailure::of(&rb.steps[1]), OnFailure::Goto("q".into()));
        assert_eq!(rb.steps[1].timeout(), Some(Duration::from_secs(30)));
        assert_eq!(rb.steps[2].params["table"], "'t'");
        assert_eq!(rb.steps[3].otherwise.as_deref(), Some("q"));
        assert!(!rb.steps[0].needs_approval());
    }
}
