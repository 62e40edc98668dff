//! Guardrails on alert-triggered runs, decided by the host for every
//! plugin: dedup by alert, cooldown per (rule, target), throttle per rule
//! and label group, and a circuit breaker per rule.
//!
//! The state lives in memory for speed and is rebuilt at start from the run
//! records (dedup, cooldown, throttle) and the `circuits` table (circuit
//! breakers), so a restart forgets nothing that matters.

use crate::policy::Rule;
use crate::runs::{DecisionKind, RunRecord, RunStatus, Trigger};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

/// What the guardrails decided about one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Run,
    Skip {
        kind: DecisionKind,
        detail: String,
        related_run: Option<String>,
    },
}

/// The identity of one alert occurrence.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlertKey {
    pub rule: String,
    pub fingerprint: String,
    pub starts_at: String,
    pub status: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

/// One rule's circuit breaker, saved in the `circuits` table on change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Circuit {
    pub state: CircuitState,
    pub since: DateTime<Utc>,
    /// Why it is in this state, in words.
    pub reason: String,
    /// In `half-open`: the trial run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_run: Option<String>,
    /// Failures and runs within the rule's window.
    #[serde(default)]
    pub failures: VecDeque<DateTime<Utc>>,
    #[serde(default)]
    pub runs: VecDeque<DateTime<Utc>>,
}

impl Circuit {
    fn closed(now: DateTime<Utc>, reason: &str) -> Circuit {
        Circuit {
            state: CircuitState::Closed,
            since: now,
            reason: reason.to_string(),
            trial_run: None,
            failures: VecDeque::new(),
            runs: VecDeque::new(),
        }
    }
}

/// The guardrails' memory.
#[derive(Debug, Default)]
pub struct Guardrails {
    /// Alert occurrence → (its run, when).
    dedup: HashMap<AlertKey, (String, DateTime<Utc>)>,
    /// (rule, target) → last admitted run and when.
    last_run: HashMap<(String, String), (String, DateTime<Utc>)>,
    /// (rule, label group) → admission times within the throttle window.
    throttle: HashMap<(String, String), VecDeque<DateTime<Utc>>>,
    /// Rule → circuit breaker.
    circuits: BTreeMap<String, Circuit>,
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn prune(times: &mut VecDeque<DateTime<Utc>>, since: DateTime<Utc>) {
    while times.front().is_some_and(|t| *t < since) {
        times.pop_front();
    }
}

/// The throttle group of an alert: the values of the rule's `group_by`
/// labels.
fn group_key(rule: &Rule, labels: &BTreeMap<String, String>) -> String {
    rule.throttle
        .as_ref()
        .map(|t| {
            t.group_by
                .iter()
                .map(|l| format!("{l}={}", labels.get(l).map_or("", String::as_str)))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

impl Guardrails {
    /// Decides about one alert occurrence for `rule` on `target`; `run_id`
    /// is the id its run will have. A `Run` verdict is remembered (it
    /// counts for dedup, cooldown, throttle and the circuit breaker).
    pub fn admit(
        &mut self,
        rule: &Rule,
        target: &str,
        key: &AlertKey,
        labels: &BTreeMap<String, String>,
        run_id: &str,
        now: DateTime<Utc>,
    ) -> Verdict {
        // Dedup: the same occurrence within the dedup window runs once.
        if let Some((original, at)) = self.dedup.get(key)
            && now - *at < chrono(rule.dedup_window)
        {
            return Verdict::Skip {
                kind: DecisionKind::Deduplicated,
                detail: format!(
                    "alert {} (started {}, {}) already has run {original}",
                    key.fingerprint, key.starts_at, key.status
                ),
                related_run: Some(original.clone()),
            };
        }
        // Circuit breaker.
        if let Some(cb) = &rule.circuit_breaker {
            let circuit = self
                .circuits
                .entry(rule.name.clone())
                .or_insert_with(|| Circuit::closed(now, "new"));
            match circuit.state {
                CircuitState::Open if now - circuit.since < chrono(cb.open_for) => {
                    return Verdict::Skip {
                        kind: DecisionKind::CircuitOpen,
                        detail: format!(
                            "circuit breaker of rule `{}` is open since {}: {}",
                            rule.name, circuit.since, circuit.reason
                        ),
                        related_run: None,
                    };
                }
                CircuitState::Open => {
                    // Open long enough: let one trial run through.
                    circuit.state = CircuitState::HalfOpen;
                    circuit.since = now;
                    circuit.trial_run = Some(run_id.to_string());
                    circuit.reason = format!("trial run {run_id} after {:?} open", cb.open_for);
                }
                CircuitState::HalfOpen => {
                    return Verdict::Skip {
                        kind: DecisionKind::CircuitOpen,
                        detail: format!(
                            "circuit breaker of rule `{}` is half-open: waiting for trial run {}",
                            rule.name,
                            circuit.trial_run.as_deref().unwrap_or("?")
                        ),
                        related_run: circuit.trial_run.clone(),
                    };
                }
                CircuitState::Closed => {
                    prune(&mut circuit.runs, now - chrono(cb.window));
                    if let Some(max_runs) = cb.max_runs
                        && circuit.runs.len() >= max_runs as usize
                    {
                        circuit.state = CircuitState::Open;
                        circuit.since = now;
                        circuit.reason = format!(
                            "{} runs within {}, the most allowed is {max_runs}",
                            circuit.runs.len(),
                            humantime::format_duration(cb.window)
                        );
                        return Verdict::Skip {
                            kind: DecisionKind::CircuitOpen,
                            detail: format!(
                                "circuit breaker of rule `{}` opened: {}",
                                rule.name, circuit.reason
                            ),
                            related_run: None,
                        };
                    }
                }
            }
        }
        // Cooldown per (rule, target).
        if let Some(cooldown) = rule.cooldown
            && let Some((last, at)) = self.last_run.get(&(rule.name.clone(), target.to_string()))
            && now - *at < chrono(cooldown)
        {
            return Verdict::Skip {
                kind: DecisionKind::Cooldown,
                detail: format!(
                    "rule `{}` ran on target `{target}` at {at} (run {last}); cooldown is {}",
                    rule.name,
                    humantime::format_duration(cooldown)
                ),
                related_run: Some(last.clone()),
            };
        }
        // Throttle per (rule, label group).
        if let Some(throttle) = &rule.throttle {
            let group = group_key(rule, labels);
            let times = self
                .throttle
                .entry((rule.name.clone(), group.clone()))
                .or_default();
            prune(times, now - chrono(throttle.per));
            if times.len() >= throttle.max as usize {
                let shown = if group.is_empty() {
                    String::new()
                } else {
                    format!(" for {group}")
                };
                return Verdict::Skip {
                    kind: DecisionKind::Throttled,
                    detail: format!(
                        "rule `{}` already ran {} times within {}{shown} (throttle: at most {})",
                        rule.name,
                        times.len(),
                        humantime::format_duration(throttle.per),
                        throttle.max
                    ),
                    related_run: None,
                };
            }
        }
        self.remember(rule, target, (key, labels), run_id, now);
        Verdict::Run
    }

    fn remember(
        &mut self,
        rule: &Rule,
        target: &str,
        (key, labels): (&AlertKey, &BTreeMap<String, String>),
        run_id: &str,
        at: DateTime<Utc>,
    ) {
        self.dedup.insert(key.clone(), (run_id.to_string(), at));
        self.last_run.insert(
            (rule.name.clone(), target.to_string()),
            (run_id.to_string(), at),
        );
        if rule.throttle.is_some() {
            self.throttle
                .entry((rule.name.clone(), group_key(rule, labels)))
                .or_default()
                .push_back(at);
        }
        if rule.circuit_breaker.is_some()
            && let Some(c) = self.circuits.get_mut(&rule.name)
        {
            c.runs.push_back(at);
        }
    }

    /// Counts a finished run of `rule` for its circuit breaker. Returns the
    /// circuit when its state changed (to be saved).
    pub fn finished(
        &mut self,
        rule: &Rule,
        run_id: &str,
        status: RunStatus,
        now: DateTime<Utc>,
    ) -> Option<Circuit> {
        let cb = rule.circuit_breaker.as_ref()?;
        let circuit = self
            .circuits
            .entry(rule.name.clone())
            .or_insert_with(|| Circuit::closed(now, "new"));
        let failed = status.is_failure();
        match circuit.state {
            CircuitState::HalfOpen if circuit.trial_run.as_deref() == Some(run_id) => {
                if failed {
                    circuit.state = CircuitState::Open;
                    circuit.since = now;
                    circuit.reason = format!("trial run {run_id} ended {status}");
                } else {
                    *circuit = Circuit::closed(now, &format!("trial run {run_id} ended {status}"));
                }
                circuit.trial_run = None;
                Some(circuit.clone())
            }
            CircuitState::Closed if failed => {
                circuit.failures.push_back(now);
                prune(&mut circuit.failures, now - chrono(cb.window));
                if circuit.failures.len() >= cb.max_failures as usize {
                    circuit.state = CircuitState::Open;
                    circuit.since = now;
                    circuit.reason = format!(
                        "{} failed runs within {} (last: {run_id}, {status}); the most allowed is {}",
                        circuit.failures.len(),
                        humantime::format_duration(cb.window),
                        cb.max_failures
                    );
                }
                Some(circuit.clone())
            }
            _ => None,
        }
    }

    /// Closes a rule's circuit breaker by an operator's hand.
    pub fn reset(&mut self, rule: &str, by: &str, now: DateTime<Utc>) -> Circuit {
        let circuit = Circuit::closed(now, &format!("reset by {by}"));
        self.circuits.insert(rule.to_string(), circuit.clone());
        circuit
    }

    /// True if `rule`'s circuit breaker is open now (queued runs of the rule
    /// are skipped).
    pub fn is_open(&self, rule: &Rule, now: DateTime<Utc>) -> Option<String> {
        let cb = rule.circuit_breaker.as_ref()?;
        let c = self.circuits.get(&rule.name)?;
        (c.state == CircuitState::Open && now - c.since < chrono(cb.open_for)).then(|| {
            format!(
                "circuit breaker of rule `{}` is open: {}",
                rule.name, c.reason
            )
        })
    }

    /// Every circuit breaker's state, by rule.
    pub fn circuits(&self) -> &BTreeMap<String, Circuit> {
        &self.circuits
    }

    /// Rebuilds the memory from saved circuits and the run records of
    /// rule-triggered runs (oldest first).
    pub fn restore(
        circuits: BTreeMap<String, serde_json::Value>,
        records: &[RunRecord],
        rules: &[Rule],
    ) -> Guardrails {
        let mut g = Guardrails::default();
        for (rule, json) in circuits {
            match serde_json::from_value::<Circuit>(json) {
                Ok(c) => {
                    g.circuits.insert(rule, c);
                }
                Err(e) => tracing::warn!(rule, error = %e, "ignoring an unreadable circuit state"),
            }
        }
        for rec in records {
            let Trigger::Alert {
                rule,
                status,
                labels,
                fingerprint,
                starts_at,
                ..
            } = &rec.trigger
            else {
                continue;
            };
            if matches!(
                rec.status,
                RunStatus::Skipped | RunStatus::Rejected | RunStatus::Denied | RunStatus::Missed
            ) || rec.retry_of.is_some()
                || rec
                    .approval
                    .as_ref()
                    .is_some_and(|a| a.linked_run.is_some() && !rec.dry_run)
            {
                continue;
            }
            let Some(rule) = rules.iter().find(|r| &r.name == rule) else {
                continue;
            };
            let key = AlertKey {
                rule: rule.name.clone(),
                fingerprint: fingerprint.clone(),
                starts_at: starts_at.clone(),
                status: status.clone(),
            };
            let at = rec.requested_at;
            g.dedup.insert(key.clone(), (rec.id.clone(), at));
            g.last_run.insert(
                (rule.name.clone(), rec.target.clone()),
                (rec.id.clone(), at),
            );
            if rule.throttle.is_some() {
                g.throttle
                    .entry((rule.name.clone(), group_key(rule, labels)))
                    .or_default()
                    .push_back(at);
            }
        }
        g
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::policy::PolicySet;

    fn rules() -> Vec<Rule> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("p.toml"),
            r#"
[[grant]]
plugin = "noop"
targets = ["app"]
capabilities = ["read"]

[[rule]]
name = "r"
match = ['alertname="A"']
plugin = "noop"
target = "app"
cooldown = "1h"
"#,
        )
        .unwrap();
        PolicySet::load_dir(dir.path(), &["app"]).unwrap().rules
    }

    fn key(fp: &str) -> AlertKey {
        AlertKey {
            rule: "r".into(),
            fingerprint: fp.into(),
            starts_at: "2026-01-01T00:00:00Z".into(),
            status: "firing".into(),
        }
    }

    #[test]
    fn a_restart_remembers_dedup_and_cooldown() {
        let rules = rules();
        let rule = &rules[0];
        let labels = BTreeMap::from([("alertname".to_string(), "A".to_string())]);
        let now = Utc::now();
        let mut g = Guardrails::default();
        assert_eq!(
            g.admit(rule, "app", &key("f1"), &labels, "run-1", now),
            Verdict::Run
        );

        // What the state database would hold: the admitted run.
        let mut rec = RunRecord::new(
            "noop",
            "app",
            Trigger::Alert {
                rule: "r".into(),
                status: "firing".into(),
                labels: labels.clone(),
                annotations: BTreeMap::new(),
                fingerprint: "f1".into(),
                starts_at: "2026-01-01T00:00:00Z".into(),
            },
            BTreeMap::new(),
            false,
        );
        rec.id = "run-1".into();
        rec.requested_at = now;
        let mut restored = Guardrails::restore(BTreeMap::new(), &[rec], &rules);
        let later = now + chrono::Duration::seconds(5);
        match restored.admit(rule, "app", &key("f1"), &labels, "run-2", later) {
            Verdict::Skip {
                kind: DecisionKind::Deduplicated,
                related_run,
                ..
            } => assert_eq!(related_run.as_deref(), Some("run-1")),
            other => panic!("{other:?}"),
        }
        match restored.admit(rule, "app", &key("f2"), &labels, "run-3", later) {
            Verdict::Skip {
                kind: DecisionKind::Cooldown,
                ..
            } => {}
            other => panic!("{other:?}"),
        }
        // After the cooldown, a new alert runs.
        let much_later = now + chrono::Duration::hours(2);
        assert_eq!(
            restored.admit(rule, "app", &key("f3"), &labels, "run-4", much_later),
            Verdict::Run
        );
    }
}
