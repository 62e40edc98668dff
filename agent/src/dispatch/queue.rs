//! The run queue: starts queued runs when they are due, within the
//! concurrency limits, and records what happened to each.
//!
//! The queue is the `runs` table itself (status `queued`), so it survives a
//! restart. The dispatcher wakes when admission queues something, and every
//! [`TICK`] for timed work (retry backoff, jitter, approval expiry, queued
//! runs approved from another process). For each due run, in order of
//! request, it checks:
//! 1. the rule's circuit breaker (open: `skipped`),
//! 2. the maintenance window of its rule or schedule (outside: `skipped`),
//! 3. the concurrency limits: global, per plugin, per target (full:
//!    stays queued with `on_limit = "queue"`, `skipped` with `"skip"`),
//!
//! then runs it. A run that fails with a retryable status and whose rule
//! or schedule has `retry` gets a new queued record with backoff, written in
//! the same transaction as the failed run's final record, so a restart
//! neither loses nor doubles the retry.

use crate::agent::Agent;
use crate::dispatch::guardrails::Guardrails;
use crate::policy::{ConcurrencyLimit, OnLimit, PolicySet, Retry, Scope, Window};
use crate::runs::{DecisionKind, RunRecord, RunStatus, Trigger, approvals};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// How often the dispatcher looks at the queue without being woken.
pub const TICK: Duration = Duration::from_millis(250);

/// The global concurrency limit when the policies set none.
pub const DEFAULT_GLOBAL_LIMIT: u32 = 4;

/// Runs in flight, by id: (plugin, target).
type InFlight = HashMap<String, (String, String)>;

/// The dispatcher's handle.
pub struct Dispatcher {
    agent: Arc<Agent>,
    guardrails: Arc<Mutex<Guardrails>>,
    wake: Arc<Notify>,
    in_flight: Arc<Mutex<InFlight>>,
    draining: Arc<AtomicBool>,
    stopped: Arc<Notify>,
}

impl Dispatcher {
    pub fn new(agent: Arc<Agent>, guardrails: Arc<Mutex<Guardrails>>, wake: Arc<Notify>) -> Self {
        Dispatcher {
            agent,
            guardrails,
            wake,
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            draining: Arc::new(AtomicBool::new(false)),
            stopped: Arc::new(Notify::new()),
        }
    }

    /// Runs in flight now.
    pub fn running(&self) -> usize {
        lock(&self.in_flight).len()
    }

    /// Stops starting runs; in-flight runs finish (each within its
    /// `max_runtime`); queued runs stay queued for the next start.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.stopped.notify_waiters();
        self.wake.notify_one();
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The dispatch loop; returns after [`Dispatcher::drain`] once every
    /// run it started has ended.
    pub async fn run(&self) {
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut housekeeping = tokio::time::interval(TICK);
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut due_housekeeping = true;
        loop {
            if self.is_draining() {
                break;
            }
            if due_housekeeping && let Err(e) = self.housekeeping().await {
                tracing::error!(error = %format!("{e:#}"), "run queue: housekeeping failed");
            }
            if let Err(e) = self.dispatch_due(&mut tasks).await {
                tracing::error!(error = %format!("{e:#}"), "run queue: dispatch failed");
            }
            while tasks.try_join_next().is_some() {}
            due_housekeeping = false;
            tokio::select! {
                () = self.wake.notified() => {}
                _ = housekeeping.tick() => due_housekeeping = true,
                () = self.stopped.notified() => {}
            }
        }
        let n = tasks.len();
        if n > 0 {
            tracing::info!(runs = n, "draining: waiting for runs in flight");
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Timed work: expired plans, circuit resets asked for by `warden
    /// circuits reset`, the queue-depth gauge.
    async fn housekeeping(&self) -> anyhow::Result<()> {
        let agent = &self.agent;
        approvals::expire_due(&agent.store, agent.clock.now()).await?;
        for (rule, by) in agent.store.take_circuit_resets().await? {
            let circuit = lock(&self.guardrails).reset(&rule, &by, agent.clock.now());
            agent
                .store
                .save_circuit(&rule, &serde_json::to_value(&circuit)?)
                .await?;
            tracing::info!(rule, by, "circuit breaker reset");
        }
        let queued = agent.store.count(RunStatus::Queued).await?;
        agent
            .metrics
            .set_queue_depth(i64::try_from(queued).unwrap_or(i64::MAX));
        Ok(())
    }

    async fn dispatch_due(&self, tasks: &mut JoinSet<()>) -> anyhow::Result<()> {
        let agent = &self.agent;
        let now = agent.clock.now();
        let due = agent.store.with_status(RunStatus::Queued, now, 500).await?;
        let policies = agent.policies();
        let mut waiting = 0i64;
        for mut rec in due {
            if self.is_draining() {
                break;
            }
            if lock(&self.in_flight).contains_key(&rec.id) {
                continue;
            }
            let refusal = self.refusal(&policies, &rec);
            if let Some((kind, detail)) = refusal {
                rec.decide(RunStatus::Skipped, kind, detail);
                if agent.store.transition(&rec, RunStatus::Queued, &[]).await?
                    && let Some(origin) = rec.origin()
                {
                    agent.metrics.guardrail_decision(origin, kind.as_str());
                }
                continue;
            }
            let full = full_limit(&policies.concurrency, &lock(&self.in_flight), &rec);
            match full {
                Some((limit, OnLimit::Queue)) => {
                    tracing::debug!(run = %rec.id, limit, "concurrency limit reached: stays queued");
                    waiting += 1;
                    continue;
                }
                Some((limit, OnLimit::Skip)) => {
                    rec.decide(
                        RunStatus::Skipped,
                        DecisionKind::Concurrency,
                        format!("{limit} reached (on_limit = \"skip\")"),
                    );
                    if agent.store.transition(&rec, RunStatus::Queued, &[]).await?
                        && let Some(origin) = rec.origin()
                    {
                        agent.metrics.guardrail_decision(origin, "concurrency");
                    }
                    continue;
                }
                None => {}
            }
            lock(&self.in_flight).insert(rec.id.clone(), (rec.plugin.clone(), rec.target.clone()));
            agent
                .metrics
                .set_running(i64::try_from(lock(&self.in_flight).len()).unwrap_or(0));
            let agent = agent.clone();
            let in_flight = self.in_flight.clone();
            let guardrails = self.guardrails.clone();
            let wake = self.wake.clone();
            tasks.spawn(async move {
                let id = rec.id.clone();
                if let Err(e) = run_one(&agent, &guardrails, rec).await {
                    tracing::error!(run = %id, error = %format!("{e:#}"), "run queue: run failed to record");
                }
                let n = {
                    let mut f = lock(&in_flight);
                    f.remove(&id);
                    f.len()
                };
                agent.metrics.set_running(i64::try_from(n).unwrap_or(0));
                wake.notify_one();
            });
        }
        if waiting > 0 {
            tracing::debug!(waiting, "runs wait for a concurrency slot");
        }
        Ok(())
    }

    /// Why a due run must not start at all, if so.
    fn refusal(&self, policies: &PolicySet, rec: &RunRecord) -> Option<(DecisionKind, String)> {
        let now = self.agent.clock.now();
        if let Trigger::Alert { rule, .. } = &rec.trigger
            && let Some(rule) = policies.rule(rule)
            && let Some(why) = lock(&self.guardrails).is_open(rule, now)
        {
            return Some((DecisionKind::CircuitOpen, why));
        }
        let window = origin_window(policies, rec)?;
        (!window.contains(now)).then(|| {
            (
                DecisionKind::OutsideWindow,
                format!(
                    "outside the maintenance window ({}) at {}",
                    window.describe(),
                    now.to_rfc3339()
                ),
            )
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The maintenance window of a run's rule or schedule.
fn origin_window<'p>(policies: &'p PolicySet, rec: &RunRecord) -> Option<&'p Window> {
    match &rec.trigger {
        Trigger::Alert { rule, .. } => policies.rule(rule)?.window.as_ref(),
        Trigger::Schedule { name } => policies.schedule(name)?.window.as_ref(),
        Trigger::Manual { .. } => None,
    }
}

/// The retry policy of a run's rule or schedule.
fn origin_retry<'p>(policies: &'p PolicySet, rec: &RunRecord) -> Option<&'p Retry> {
    match &rec.trigger {
        Trigger::Alert { rule, .. } => policies.rule(rule)?.retry.as_ref(),
        Trigger::Schedule { name } => policies.schedule(name)?.retry.as_ref(),
        Trigger::Manual { .. } => None,
    }
}

/// The first concurrency limit `rec` would exceed, described, with what to
/// do about it.
fn full_limit(
    limits: &[ConcurrencyLimit],
    in_flight: &InFlight,
    rec: &RunRecord,
) -> Option<(String, OnLimit)> {
    let has_global = limits.iter().any(|l| matches!(l.scope, Scope::Global));
    if !has_global && in_flight.len() >= DEFAULT_GLOBAL_LIMIT as usize {
        return Some((
            format!("the default global concurrency limit of {DEFAULT_GLOBAL_LIMIT}"),
            OnLimit::Queue,
        ));
    }
    for limit in limits {
        let (count, what) = match &limit.scope {
            Scope::Global => (in_flight.len(), "the global concurrency limit".to_string()),
            Scope::Plugin(p) if *p == rec.plugin => (
                in_flight.values().filter(|(plugin, _)| plugin == p).count(),
                format!("the concurrency limit of plugin `{p}`"),
            ),
            Scope::Target(t) if *t == rec.target => (
                in_flight.values().filter(|(_, target)| target == t).count(),
                format!("the concurrency limit of target `{t}`"),
            ),
            _ => continue,
        };
        if count >= limit.max as usize {
            return Some((
                format!("{what} ({} at {})", limit.max, limit.source),
                limit.on_limit,
            ));
        }
    }
    None
}

/// Runs one queued run and records its end, with a retry if due, in one
/// transaction; counts it for its rule's circuit breaker.
async fn run_one(
    agent: &Agent,
    guardrails: &Mutex<Guardrails>,
    rec: RunRecord,
) -> anyhow::Result<()> {
    let mut fin = agent.run_record(rec).await?;
    let policies = agent.policies();
    let mut retry_rec = None;
    // A real run stopped because its approved plan no longer holds would
    // be refused again: it is not retried (ask for a new plan).
    let plan_broken = fin
        .error
        .as_ref()
        .is_some_and(|e| e.kind == approvals::PLAN_NO_LONGER_HOLDS);
    if fin.status.is_retryable()
        && !plan_broken
        && let Some(retry) = origin_retry(&policies, &fin)
        && fin.attempt <= retry.attempts
    {
        let mut next = RunRecord::new(
            &fin.plugin,
            &fin.target,
            fin.trigger.clone(),
            fin.params.clone(),
            fin.dry_run,
        );
        let delay = retry.delay(fin.attempt);
        next.attempt = fin.attempt + 1;
        next.retry_of = Some(fin.retry_of.clone().unwrap_or_else(|| fin.id.clone()));
        next.not_before = Some(
            agent.clock.now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX),
        );
        next.approval = fin.approval.clone();
        next.traceparent = fin.traceparent.clone();
        next.parent_run = fin.parent_run.clone();
        next.depth = fin.depth;
        fin.retried_by = Some(next.id.clone());
        tracing::info!(run = %fin.id, retry = %next.id, attempt = next.attempt, delay = ?delay, "retry queued");
        retry_rec = Some(next);
    }
    // Count the outcome for the circuit breaker before the final record is
    // visible, so that whoever sees the failure also sees its effect.
    let circuit = match &fin.trigger {
        Trigger::Alert { rule, .. } => policies.rule(rule).and_then(|rule| {
            lock(guardrails)
                .finished(rule, &fin.id, fin.status, agent.clock.now())
                .map(|c| (rule.name.clone(), c))
        }),
        _ => None,
    };
    if let Some((rule, c)) = circuit {
        agent
            .store
            .save_circuit(&rule, &serde_json::to_value(&c)?)
            .await?;
    }
    let mut recs = vec![fin];
    recs.extend(retry_rec);
    agent.store.save_all(&[], &recs).await?;
    if let Some(fin) = recs.first() {
        agent.notify(fin);
    }
    Ok(())
}
