//! Cron schedules: each `[[schedule]]` queues a run at its fire times (in
//! its timezone, plus a random jitter as `not_before`). The maintenance
//! window is checked when the run is about to start (see
//! [`crate::dispatch::queue`]), so a run delayed by jitter or a full queue past
//! the window's end is skipped and recorded as such.
//!
//! Every fire time is accounted for in the state database (table
//! `schedule_ticks`: per schedule, its expression and the last tick that
//! fired or was recorded). At start, the ticks that passed while the agent
//! was down are each recorded as a run in status `missed`, with the time it
//! should have run (`scheduled_for`); at most [`MISSED_RECORD_MAX`] per
//! schedule per start (the latest ones), the number of older ones is
//! written in the oldest record's decision. A schedule whose `cron` or
//! `timezone` changed while the agent was down records none (its old ticks
//! are not known to be owed) and starts afresh, as does a schedule the
//! agent has never seen. With `catch_up = "latest"`, the latest missed tick
//! is also run once, recorded with that tick as its `scheduled_for`. The
//! scheduler re-reads the schedules when the policies change (hot reload).

use crate::agent::Agent;
use crate::dispatch::admit::{Admitter, Request};
use crate::policy::{CatchUp, Schedule};
use crate::runs::{Decision, DecisionKind, RunRecord, RunStatus, ScheduleTick, Trigger};
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch;

/// At most this many missed ticks of one schedule are recorded per start.
pub const MISSED_RECORD_MAX: usize = 100;

/// Missed ticks beyond the recorded ones are counted up to this.
const MISSED_COUNT_MAX: u64 = 100_000;

/// Runs the scheduler until `stop` turns true. `policies_changed` ticks on
/// every successful reload.
pub async fn run(
    agent: Arc<Agent>,
    admitter: Admitter,
    mut policies_changed: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let started = agent.clock.now();
    account_missed(&agent, &admitter, started).await;
    // Schedule name → next fire time.
    let mut next: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    for s in &agent.policies().schedules {
        if let Some(at) = s.next_after(started) {
            next.insert(s.name.clone(), at);
        }
    }
    loop {
        if *stop.borrow() {
            return;
        }
        let policies = agent.policies();
        let now = agent.clock.now();
        next.retain(|name, _| policies.schedule(name).is_some());
        for s in &policies.schedules {
            if !next.contains_key(&s.name)
                && let Some(at) = s.next_after(now)
            {
                // A schedule new to the agent (or changed) is accounted
                // from now on.
                note_schedule(&agent, s, now).await;
                next.insert(s.name.clone(), at);
            }
        }
        let soonest = next.values().min().copied();
        let sleep = soonest
            .map(|at| (at - now).to_std().unwrap_or_default())
            .unwrap_or(std::time::Duration::from_secs(3600));
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            changed = policies_changed.changed() => {
                if changed.is_ok() {
                    // Recompute everything from the new schedules.
                    next.clear();
                }
                continue;
            }
            _ = stop.changed() => continue,
        }
        let now = agent.clock.now();
        let due: Vec<(String, DateTime<Utc>)> = next
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(n, at)| (n.clone(), *at))
            .collect();
        let mut recs = Vec::new();
        for (name, at) in due {
            next.remove(&name);
            let Some(s) = policies.schedule(&name) else {
                continue;
            };
            let rec = scheduled_run(s, at, now);
            tracing::info!(schedule = %s.name, run = %rec.id, jitter = ?rec.not_before.map(|t| t - now), "schedule fired");
            recs.push(rec);
            save_tick(&agent, s, at).await;
            // The next fire time strictly after this one.
            if let Some(at) = s.next_after(now) {
                next.insert(name, at);
            }
        }
        if !recs.is_empty()
            && let Err(e) = admitter.admit(Request::Runs(recs)).await
        {
            tracing::error!(error = %e, "queueing scheduled runs failed");
        }
    }
}

/// A new record of a run of schedule `s`.
fn schedule_record(s: &Schedule) -> RunRecord {
    RunRecord::new(
        &s.plugin,
        &s.target,
        Trigger::Schedule {
            name: s.name.clone(),
        },
        s.params.clone(),
        s.dry_run,
    )
}

/// The run of schedule `s` for its tick `tick`, requested at `now` (with the
/// schedule's jitter as `not_before`).
fn scheduled_run(s: &Schedule, tick: DateTime<Utc>, now: DateTime<Utc>) -> RunRecord {
    let mut rec = schedule_record(s);
    rec.scheduled_for = Some(tick);
    let jitter = s.jitter_delay();
    if !jitter.is_zero() {
        rec.not_before = Some(now + chrono::Duration::from_std(jitter).unwrap_or_default());
    }
    rec
}

/// What identifies a schedule's ticks: its expression and time zone.
fn identity(s: &Schedule, last_tick: DateTime<Utc>) -> ScheduleTick {
    ScheduleTick {
        cron: s.cron.clone(),
        timezone: s.timezone.name().to_string(),
        last_tick,
    }
}

/// Records that `s` fired (or was accounted) up to `tick`.
async fn save_tick(agent: &Agent, s: &Schedule, tick: DateTime<Utc>) {
    if let Err(e) = agent
        .store
        .save_schedule_tick(&s.name, &identity(s, tick))
        .await
    {
        tracing::error!(schedule = %s.name, error = %format!("{e:#}"), "could not save the schedule's last tick: ticks missed before the next one may go unrecorded");
    }
}

/// Starts accounting `s` at `now` unless the state database already
/// accounts it under the same expression.
async fn note_schedule(agent: &Agent, s: &Schedule, now: DateTime<Utc>) {
    match agent.store.schedule_tick(&s.name).await {
        Ok(Some(t)) if t.cron == s.cron && t.timezone == s.timezone.name() => {}
        Ok(_) => save_tick(agent, s, now).await,
        Err(e) => {
            tracing::error!(schedule = %s.name, error = %format!("{e:#}"), "could not read the schedule's last tick");
        }
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Records the ticks missed since each schedule's last one, queues the
/// catch-up runs, and accounts every schedule up to `now`.
async fn account_missed(agent: &Agent, admitter: &Admitter, now: DateTime<Utc>) {
    let policies = agent.policies();
    let mut missed: Vec<RunRecord> = Vec::new();
    let mut catch_up: Vec<RunRecord> = Vec::new();
    for s in &policies.schedules {
        let last = match agent.store.schedule_tick(&s.name).await {
            Ok(last) => last,
            Err(e) => {
                tracing::error!(schedule = %s.name, error = %format!("{e:#}"), "could not read the schedule's last tick: missed ticks not recorded");
                continue;
            }
        };
        let Some(last) = last else {
            continue;
        };
        if last.cron != s.cron || last.timezone != s.timezone.name() {
            tracing::warn!(
                schedule = %s.name,
                was = %format!("{} ({})", last.cron, last.timezone),
                now = %format!("{} ({})", s.cron, s.timezone.name()),
                since = %rfc3339(last.last_tick),
                "the schedule changed while the agent was down: ticks missed since its last one are not recorded"
            );
            continue;
        }
        let (ticks, beyond) =
            s.ticks_between(last.last_tick, now, MISSED_RECORD_MAX, MISSED_COUNT_MAX);
        let Some(&latest) = ticks.last() else {
            continue;
        };
        let total = u64::try_from(ticks.len())
            .unwrap_or(u64::MAX)
            .saturating_add(beyond);
        tracing::warn!(
            schedule = %s.name,
            plugin = %s.plugin,
            target = %s.target,
            missed = total,
            first_recorded = %ticks.first().map(|t| rfc3339(*t)).unwrap_or_default(),
            latest = %rfc3339(latest),
            catch_up = ?s.catch_up,
            "schedule ticks missed while the agent was down"
        );
        let caught_up = (s.catch_up == CatchUp::Latest).then(|| scheduled_run(s, latest, now));
        for (i, tick) in ticks.iter().enumerate() {
            let mut rec = schedule_record(s);
            rec.status = RunStatus::Missed;
            rec.scheduled_for = Some(*tick);
            rec.ended_at = Some(now);
            let mut detail = format!(
                "the agent was not running at {} (last tick accounted for: {})",
                rfc3339(*tick),
                rfc3339(last.last_tick)
            );
            if i == 0 && beyond > 0 {
                detail.push_str(&format!(
                    "; {beyond}{} earlier missed ticks of this schedule are not recorded (at most {MISSED_RECORD_MAX} per start)",
                    if beyond >= MISSED_COUNT_MAX { " or more" } else { "" }
                ));
            }
            let related_run = match &caught_up {
                Some(run) if *tick == latest => {
                    detail.push_str(&format!(
                        "; caught up by run {} (catch_up = \"latest\")",
                        run.id
                    ));
                    Some(run.id.clone())
                }
                _ => None,
            };
            rec.decision = Some(Decision {
                kind: DecisionKind::AgentDown,
                detail,
                related_run,
            });
            missed.push(rec);
        }
        if let Some(run) = caught_up {
            tracing::info!(schedule = %s.name, run = %run.id, tick = %rfc3339(latest), "catching up the latest missed tick");
            catch_up.push(run);
        }
    }
    if !missed.is_empty() {
        match agent.store.save_all(&[], &missed).await {
            Ok(()) => {
                for rec in &missed {
                    agent.metrics.run_missed(&rec.plugin, &rec.target);
                }
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), count = missed.len(), "could not record the missed schedule ticks");
            }
        }
    }
    // Accounted up to now, whether or not anything was missed.
    for s in &policies.schedules {
        save_tick(agent, s, now).await;
    }
    if !catch_up.is_empty()
        && let Err(e) = admitter.admit(Request::Runs(catch_up)).await
    {
        tracing::error!(error = %e, "queueing the catch-up runs failed");
    }
}
