//! Orchestration above the run path: everything that decides *whether* and
//! *when* a run happens, on top of [`crate::agent::Agent`], which only knows
//! *how* one run happens.
//!
//! - [`admit`]: the one writer that turns alerts and run requests into
//!   queued (or skipped) records, durably, and implements the host's
//!   [`crate::host::runs::RunStarter`] port for `runs.start`;
//! - [`guardrails`]: dedup, cooldown, throttle and circuit breakers, rebuilt
//!   from the run store at start;
//! - [`queue`]: the dispatcher that takes queued runs in order, under
//!   concurrency limits and windows, and runs them through the agent.
//!
//! The layer below ([`crate::runs`]) stores records, alerts, circuits and
//! plugin state; it knows nothing of this one. Triggers (webhook, HTTP API,
//! schedules) sit above and hand their requests to [`admit::Admitter`].

pub mod admit;
pub mod guardrails;
pub mod queue;
