//! The time the agent's decisions read: one seam, so tests move time
//! instead of sleeping through it.
//!
//! Guardrails (dedup, cooldown, throttle, circuit breakers), the queue
//! (retry delays, windows), plan expiry and schedules ask the agent's
//! [`Clock`] for "now". `warden` itself always runs on [`SystemClock`]; a
//! test sets `agent.clock` to a [`ManualClock`] (or passes its `now` to a
//! function that takes one, like `approvals::expire_due`) and advances it.
//! Deadlines that stop work (statement timeouts, the run's epoch deadline)
//! stay on the monotonic clock and are not faked.

use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};

/// Where "now" comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// A clock shared by the agent and its layers.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that moves only when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now: Mutex::new(start),
        })
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now = now.checked_add_signed(by).unwrap_or(*now);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let start = Utc::now();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        assert_eq!(clock.now(), start);
        clock.advance(std::time::Duration::from_secs(90));
        assert_eq!(clock.now(), start + chrono::Duration::seconds(90));
        // Past the end of time it stays put rather than wrapping.
        clock.advance(std::time::Duration::MAX);
        assert!(clock.now() >= start + chrono::Duration::seconds(90));
        let system = system();
        assert!(system.now() >= start);
    }
}
