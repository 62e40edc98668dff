//! Admission: the one writer that turns accepted alerts and run requests
//! into queued (or skipped) run records, durably, before anyone is told
//! they were accepted.
//!
//! Requests from all callers (webhook, HTTP API, schedules) go through one
//! task, which takes whatever is waiting (up to [`MAX_BATCH`] requests),
//! applies the guardrails, writes alerts and records in one SQLite
//! transaction (synchronous, so a commit survives a crash) and only then
//! answers each caller. Batching is what makes this fast under load: one
//! commit for many alerts.

use crate::agent::Agent;
use crate::config::Config;
use crate::dispatch::guardrails::{AlertKey, Guardrails, Verdict};
use crate::host::runs::RunStarter;
use crate::policy::{AlertContext, OnResolved, Rule, RuleTarget};
use crate::runs::{Decision, DecisionKind, RunRecord, RunStatus, StoredAlert, Trigger};
use futures_util::future::BoxFuture;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, mpsc, oneshot};

/// Most requests committed in one transaction.
pub const MAX_BATCH: usize = 512;

/// One alert as received from Alertmanager, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingAlert {
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub fingerprint: String,
    pub starts_at: String,
    pub ends_at: String,
}

/// Something to admit.
#[derive(Debug)]
pub enum Request {
    /// Alerts of one webhook call, with the call's `traceparent`.
    Alerts {
        alerts: Vec<IncomingAlert>,
        traceparent: Option<String>,
    },
    /// Run requests (manual, schedule), already built as `queued` records.
    Runs(Vec<RunRecord>),
    /// A run that a run starts (`runs.start`), built as a `queued` record:
    /// written only while its plugin has fewer than `max_queued` runs
    /// queued (counting every source, and the records of the same batch),
    /// else refused with [`AdmitError::QueueFull`] and nothing written.
    Started {
        rec: Box<RunRecord>,
        max_queued: u32,
    },
}

pub use crate::host::runs::{AdmitError, queue_full};

/// What admission did with one request: the records it wrote.
#[derive(Debug, Default)]
pub struct Admitted {
    pub alerts: usize,
    pub runs: Vec<RunRecord>,
}

type Job = (Request, oneshot::Sender<Result<Admitted, AdmitError>>);

/// The handle callers use; cheap to clone.
#[derive(Clone)]
pub struct Admitter {
    tx: mpsc::Sender<Job>,
    wake: Arc<Notify>,
}

/// The target a rule's run goes to for an alert, or why there is none.
pub fn rule_target(
    rule: &Rule,
    labels: &BTreeMap<String, String>,
    config: &Config,
) -> Result<String, String> {
    match &rule.target {
        RuleTarget::Fixed(t) => Ok(t.clone()),
        RuleTarget::Label(label) => {
            let Some(value) = labels.get(label) else {
                return Err(format!(
                    "rule `{}` takes the target from label `{label}`, which the alert does not have",
                    rule.name
                ));
            };
            if config.target(value).is_none() {
                return Err(format!(
                    "label `{label}` = {value:?} names no configured target (rule `{}`; configured: {})",
                    rule.name,
                    config.target_names().join(", ")
                ));
            }
            Ok(value.clone())
        }
    }
}

/// Checks that every alert's matching rules can find their target: the
/// webhook refuses the whole call otherwise (nothing half-applied).
/// Errors name the alert by index and fingerprint.
pub fn check_alerts(agent: &Agent, alerts: &[IncomingAlert]) -> Result<(), Vec<String>> {
    let policies = agent.policies();
    let mut problems = Vec::new();
    for (i, alert) in alerts.iter().enumerate() {
        for rule in policies.rules.iter().filter(|r| r.matches(&alert.labels)) {
            if alert.status == "resolved" && rule.on_resolved == OnResolved::Ignore {
                continue;
            }
            if let Err(e) = rule_target(rule, &alert.labels, &agent.config) {
                problems.push(format!(
                    "alerts[{i}] (fingerprint {}): {e}",
                    alert.fingerprint
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

impl Admitter {
    /// Starts the admission task. `wake` is notified after every commit
    /// that queued runs.
    pub fn start(
        agent: Arc<Agent>,
        guardrails: Arc<Mutex<Guardrails>>,
        wake: Arc<Notify>,
    ) -> Admitter {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        tokio::spawn(admission_loop(agent, guardrails, wake.clone(), rx));
        Admitter { tx, wake }
    }

    /// Wakes the run queue (after an approval queued a run).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Admits `req` durably; the records written come back.
    pub async fn admit(&self, req: Request) -> Result<Admitted, AdmitError> {
        let (reply, answer) = oneshot::channel();
        let shutting_down = || AdmitError::Failed("the agent is shutting down".to_string());
        self.tx
            .send((req, reply))
            .await
            .map_err(|_| shutting_down())?;
        answer.await.map_err(|_| shutting_down())?
    }
}

impl RunStarter for Admitter {
    fn start(
        &self,
        rec: RunRecord,
        max_queued: u32,
    ) -> BoxFuture<'_, Result<RunRecord, AdmitError>> {
        Box::pin(async move {
            let admitted = self
                .admit(Request::Started {
                    rec: Box::new(rec),
                    max_queued,
                })
                .await?;
            admitted
                .runs
                .into_iter()
                .next()
                .ok_or_else(|| AdmitError::Failed("admission returned no record".into()))
        })
    }
}

async fn admission_loop(
    agent: Arc<Agent>,
    guardrails: Arc<Mutex<Guardrails>>,
    wake: Arc<Notify>,
    mut rx: mpsc::Receiver<Job>,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let batch: Vec<Job> = std::mem::take(&mut jobs);
        let mut alerts_out: Vec<StoredAlert> = Vec::new();
        let mut records: Vec<RunRecord> = Vec::new();
        let mut spans: Vec<(usize, usize, usize)> = Vec::new();
        let mut touched_rules: BTreeSet<String> = BTreeSet::new();
        let mut failures: Vec<Option<AdmitError>> = Vec::new();
        let mut replies = Vec::with_capacity(batch.len());
        for (req, reply) in batch {
            let before = records.len();
            let result = match req {
                Request::Runs(mut recs) => {
                    for rec in &mut recs {
                        agent.plan_first_if_required(rec);
                    }
                    records.extend(recs);
                    Ok(0)
                }
                Request::Started { rec, max_queued } => {
                    admit_started(&agent, *rec, max_queued, &mut records).await
                }
                Request::Alerts {
                    alerts,
                    traceparent,
                } => admit_alerts(
                    &agent,
                    &guardrails,
                    alerts,
                    traceparent,
                    &mut alerts_out,
                    &mut records,
                    &mut touched_rules,
                )
                .await
                .map_err(AdmitError::Failed),
            };
            match result {
                Ok(n) => {
                    spans.push((before, records.len(), n));
                    failures.push(None);
                }
                Err(e) => {
                    records.truncate(before);
                    spans.push((before, before, 0));
                    failures.push(Some(e));
                }
            }
            replies.push(reply);
        }
        let saved = agent.store.save_all(&alerts_out, &records).await;
        match &saved {
            Ok(()) => {
                let circuits: Vec<(String, serde_json::Value)> = {
                    let g = guardrails.lock().unwrap_or_else(|p| p.into_inner());
                    touched_rules
                        .iter()
                        .filter_map(|r| {
                            g.circuits()
                                .get(r)
                                .and_then(|c| serde_json::to_value(c).ok())
                                .map(|c| (r.clone(), c))
                        })
                        .collect()
                };
                for (rule, c) in circuits {
                    if let Err(e) = agent.store.save_circuit(&rule, &c).await {
                        tracing::error!(rule, error = %format!("{e:#}"), "saving a circuit breaker failed");
                    }
                }
                for rec in &records {
                    if let Some(d) = &rec.decision
                        && let Some(origin) = rec.origin()
                    {
                        agent.metrics.guardrail_decision(origin, d.kind.as_str());
                    } else if rec.status == RunStatus::Queued
                        && let Some(origin) = rec.origin()
                    {
                        agent.metrics.guardrail_decision(origin, "admitted");
                    }
                }
                if records.iter().any(|r| r.status == RunStatus::Queued) {
                    wake.notify_one();
                }
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "writing accepted alerts failed; rebuilding guardrails");
                match rebuild_guardrails(&agent).await {
                    Ok(g) => *guardrails.lock().unwrap_or_else(|p| p.into_inner()) = g,
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "rebuilding guardrails failed")
                    }
                }
            }
        }
        for ((reply, (from, to, n)), failure) in replies.into_iter().zip(spans).zip(failures) {
            let answer = match (&saved, failure) {
                (_, Some(e)) => Err(e),
                (Err(e), None) => Err(AdmitError::Failed(format!(
                    "the state database refused the write: {e:#}"
                ))),
                (Ok(()), None) => Ok(Admitted {
                    alerts: n,
                    runs: records[from..to].to_vec(),
                }),
            };
            let _ = reply.send(answer);
        }
    }
}

/// Guardrails rebuilt from the state database.
pub async fn rebuild_guardrails(agent: &Agent) -> anyhow::Result<Guardrails> {
    let policies = agent.policies();
    let longest = crate::policy::history_needed(&policies.rules);
    let since = crate::runs::retention::before(agent.clock.now(), longest);
    let records = agent.store.origin_runs_since(since).await?;
    let circuits = agent.store.circuits().await?;
    Ok(Guardrails::restore(circuits, &records, &policies.rules))
}

/// Admits a run started by a run, unless its plugin already has
/// `max_queued` runs queued: in the state database (from any source) or
/// earlier in this batch.
async fn admit_started(
    agent: &Agent,
    mut rec: RunRecord,
    max_queued: u32,
    records: &mut Vec<RunRecord>,
) -> Result<usize, AdmitError> {
    let stored = agent.store.queued_of(&rec.plugin).await.map_err(|e| {
        AdmitError::Failed(format!(
            "counting the queued runs of `{}`: {e:#}",
            rec.plugin
        ))
    })?;
    let in_batch = records
        .iter()
        .filter(|r| r.plugin == rec.plugin && r.status == RunStatus::Queued)
        .count();
    let queued = stored.saturating_add(u64::try_from(in_batch).unwrap_or(u64::MAX));
    if let Some(refusal) = queue_full(&rec.plugin, queued, max_queued) {
        return Err(refusal);
    }
    agent.plan_first_if_required(&mut rec);
    records.push(rec);
    Ok(0)
}

/// Admits one webhook call's alerts: each alert is stored, and each rule
/// that matches it gets a record (queued, skipped with the guardrail's
/// reason, or rejected for bad parameters). Returns the number of alerts.
async fn admit_alerts(
    agent: &Agent,
    guardrails: &Mutex<Guardrails>,
    alerts: Vec<IncomingAlert>,
    traceparent: Option<String>,
    alerts_out: &mut Vec<StoredAlert>,
    records: &mut Vec<RunRecord>,
    touched_rules: &mut BTreeSet<String>,
) -> Result<usize, String> {
    if let Err(problems) = check_alerts(agent, &alerts) {
        return Err(problems.join("; "));
    }
    let policies = agent.policies();
    let now = agent.clock.now();
    let n = alerts.len();
    for alert in alerts {
        let mut stored = StoredAlert {
            received_at: now,
            status: alert.status.clone(),
            fingerprint: alert.fingerprint.clone(),
            starts_at: alert.starts_at.clone(),
            ends_at: alert.ends_at.clone(),
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
            runs: Vec::new(),
        };
        for rule in policies.rules.iter().filter(|r| r.matches(&alert.labels)) {
            let resolved = alert.status == "resolved";
            if resolved {
                match rule.on_resolved {
                    OnResolved::Ignore => continue,
                    OnResolved::Cancel => {
                        let open = agent
                            .store
                            .open_runs_of(&rule.name)
                            .await
                            .map_err(|e| format!("reading queued runs: {e:#}"))?;
                        for mut rec in open {
                            let same = matches!(&rec.trigger, Trigger::Alert { fingerprint, .. } if *fingerprint == alert.fingerprint);
                            if same && !records.iter().any(|r| r.id == rec.id) {
                                rec.decide(
                                    RunStatus::Cancelled,
                                    DecisionKind::Resolved,
                                    format!(
                                        "alert {} resolved before the run started (rule `{}`: on_resolved = \"cancel\")",
                                        alert.fingerprint, rule.name
                                    ),
                                );
                                stored.runs.push(rec.id.clone());
                                records.push(rec);
                            }
                        }
                        continue;
                    }
                    OnResolved::Run => {}
                }
            }
            let target = rule_target(rule, &alert.labels, &agent.config)?;
            let trigger = Trigger::Alert {
                rule: rule.name.clone(),
                status: alert.status.clone(),
                labels: alert.labels.clone(),
                annotations: alert.annotations.clone(),
                fingerprint: alert.fingerprint.clone(),
                starts_at: alert.starts_at.clone(),
            };
            let ctx = AlertContext {
                status: &alert.status,
                labels: &alert.labels,
                annotations: &alert.annotations,
                fingerprint: &alert.fingerprint,
                starts_at: &alert.starts_at,
            };
            let mut rec = RunRecord::new(
                &rule.plugin,
                &target,
                trigger,
                BTreeMap::new(),
                rule.dry_run,
            );
            rec.traceparent = traceparent.clone();
            stored.runs.push(rec.id.clone());
            match rule.render_params(&ctx) {
                Ok(params) => rec.params = params,
                Err(e) => {
                    rec.status = RunStatus::Rejected;
                    rec.ended_at = Some(now);
                    rec.error = Some(crate::runs::RunError {
                        blame: crate::runs::Blame::Request,
                        kind: "invalid-input".into(),
                        message: format!("rule `{}` at {}: {e}", rule.name, rule.source),
                    });
                    records.push(rec);
                    continue;
                }
            }
            let key = AlertKey {
                rule: rule.name.clone(),
                fingerprint: alert.fingerprint.clone(),
                starts_at: alert.starts_at.clone(),
                status: alert.status.clone(),
            };
            let verdict = guardrails.lock().unwrap_or_else(|p| p.into_inner()).admit(
                rule,
                &target,
                &key,
                &alert.labels,
                &rec.id,
                now,
            );
            if rule.circuit_breaker.is_some() {
                touched_rules.insert(rule.name.clone());
            }
            match verdict {
                Verdict::Run => {
                    agent.plan_first_if_required(&mut rec);
                }
                Verdict::Skip {
                    kind,
                    detail,
                    related_run,
                } => {
                    rec.status = RunStatus::Skipped;
                    rec.ended_at = Some(now);
                    rec.decision = Some(Decision {
                        kind,
                        detail,
                        related_run,
                    });
                }
            }
            records.push(rec);
        }
        alerts_out.push(stored);
    }
    Ok(n)
}
