//! Cron schedules: each `[[schedule]]` queues a run at its fire times (in
//! its timezone, plus a random jitter as `not_before`). The maintenance
//! window is checked when the run is about to start (see
//! [`crate::runs::queue`]), so a run delayed by jitter or a full queue past
//! the window's end is skipped and recorded as such.
//!
//! Fire times missed while the agent was down are not caught up: the next
//! one after start is used. The scheduler re-reads the schedules when the
//! policies change (hot reload).

use crate::agent::Agent;
use crate::runs::admit::{Admitter, Request};
use crate::runs::{RunRecord, Trigger};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch;

/// Runs the scheduler until `stop` turns true. `policies_changed` ticks on
/// every successful reload.
pub async fn run(
    agent: Arc<Agent>,
    admitter: Admitter,
    mut policies_changed: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    // Schedule name → next fire time.
    let mut next: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let policies = agent.policies();
        let now = Utc::now();
        next.retain(|name, _| policies.schedule(name).is_some());
        for s in &policies.schedules {
            if !next.contains_key(&s.name)
                && let Some(at) = s.next_after(now)
            {
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
        let now = Utc::now();
        let due: Vec<String> = next
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(n, _)| n.clone())
            .collect();
        let mut recs = Vec::new();
        for name in due {
            next.remove(&name);
            let Some(s) = policies.schedule(&name) else {
                continue;
            };
            let mut rec = RunRecord::new(
                &s.plugin,
                &s.target,
                Trigger::Schedule {
                    name: s.name.clone(),
                },
                s.params.clone(),
                s.dry_run,
            );
            let jitter = s.jitter_delay();
            if !jitter.is_zero() {
                rec.not_before = Some(now + chrono::Duration::from_std(jitter).unwrap_or_default());
            }
            tracing::info!(schedule = %s.name, run = %rec.id, jitter = ?jitter, "schedule fired");
            recs.push(rec);
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
