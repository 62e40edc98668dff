//! Retention: the state database keeps `state_keep` of history (default
//! 30 days, see [`crate::config::Config::state_keep`]).
//!
//! `warden run` sweeps once at start and then every [`SWEEP_EVERY`]: finished
//! runs (with their reports and logs, which live in the run record) and
//! accepted alerts older than `state_keep` are deleted, [`BATCH`] rows per
//! statement with a pause between statements, so admission and the run queue
//! keep writing meanwhile. Never deleted, whatever their age:
//!
//! - runs that are not finished: `queued`, `running`, `awaiting-approval`
//!   (and any status this version does not know);
//! - runs of alert rules and schedules younger than the longest
//!   `dedup_window`, `cooldown` and throttle `per` of the current policies
//!   ([`crate::policy::history_needed`]): the guardrails are rebuilt from them at start, so
//!   a `state_keep` shorter than a window is raised to it for those runs
//!   (and `warden check` warns). Circuit breakers keep their own state in
//!   the `circuits` table.
//!
//! ```no_run
//! # async fn demo(store: warden::runs::RunStore) -> anyhow::Result<()> {
//! use std::time::Duration;
//! let day = Duration::from_secs(86_400);
//! let deleted = warden::runs::retention::sweep(&store, 30 * day, day, chrono::Utc::now()).await?;
//! println!("{} runs and {} alerts deleted", deleted.runs, deleted.alerts);
//! # Ok(()) }
//! ```

use super::{Deleted, RunStore};
use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio::sync::watch;

/// Time between two sweeps.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10 * 60);
/// Rows deleted per statement.
pub const BATCH: u32 = 500;
/// Pause between two batches: room for other writers.
const PAUSE: Duration = Duration::from_millis(20);

/// `now - d`, or the earliest time there is when `d` reaches past it.
pub fn before(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Deletes the history older than `keep` (runs with an origin: older than
/// `keep` and `origin_keep` both), batch after batch, until none is left.
pub async fn sweep(
    store: &RunStore,
    keep: Duration,
    origin_keep: Duration,
    now: DateTime<Utc>,
) -> anyhow::Result<Deleted> {
    let cutoff = before(now, keep);
    let origin_cutoff = before(now, keep.max(origin_keep));
    let mut total = Deleted::default();
    loop {
        let d = store.delete_history(cutoff, origin_cutoff, BATCH).await?;
        total.runs += d.runs;
        total.alerts += d.alerts;
        if d.runs < u64::from(BATCH) && d.alerts < u64::from(BATCH) {
            return Ok(total);
        }
        tokio::time::sleep(PAUSE).await;
    }
}

/// The periodic task of `warden run`: a sweep of `store` at start, then
/// every [`SWEEP_EVERY`], until `stop` turns true. `origin_keep` gives the
/// current policies' [`crate::policy::history_needed`] at each sweep (they reload).
pub async fn run(
    store: RunStore,
    keep: Duration,
    origin_keep: impl Fn() -> Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let sweep = sweep(&store, keep, origin_keep(), Utc::now());
        // A sweep is only deletes in short transactions: stopping midway
        // loses nothing.
        let result = tokio::select! {
            r = sweep => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match result {
            Ok(d) if d.runs > 0 || d.alerts > 0 => tracing::info!(
                runs = d.runs,
                alerts = d.alerts,
                keep = %humantime::format_duration(keep),
                "deleted history older than state_keep"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "deleting old history failed"),
        }
    }
}
