//! Session control, `warden:plugin/sessions` (since 0.1.5): cancel or
//! terminate a PostgreSQL backend, kill a MongoDB operation. Needs
//! `session-control` in the grant's `capabilities` for the target:
//!
//! ```toml
//! [[grant]]
//! plugin = "blocker-killer"
//! targets = ["orders"]
//! capabilities = ["read", "session-control"]
//! # allow_privileged_sessions = true   # superuser / background sessions too
//! ```
//!
//! The host looks the session up before signalling it and refuses (with
//! `access-denied`, saying why) the agent's own sessions (application name
//! `warden/...`, and the connection the host uses for the call), and,
//! unless the grant sets `allow_privileged_sessions = true`, superuser
//! sessions and non-client backends (PostgreSQL) or internal operations and
//! operations on `admin`/`local`/`config` (MongoDB). A pid or opid that is
//! not there is `invalid-input`. In dry-run the signal is planned, not sent
//! ([`Outcome::executed`] is false). [`Outcome::description`] is the
//! session as the host saw it, on one line, for reports.
//!
//! `sql.execute("SELECT pg_terminate_backend(..)")` and a `killOp` through
//! `mongo.run-command` are refused: these calls are the only way.
//!
//! ```no_run
//! use warden_sdk::sessions;
//! # fn demo() -> Result<(), warden_sdk::Error> {
//! // A backend idle in transaction for too long (pid from pg_stat_activity).
//! let outcome = sessions::terminate("orders", 4242)?;
//! if outcome.executed && !outcome.signalled {
//!     warden_sdk::warn!("not signalled: {}", outcome.description);
//! }
//! // A statement running away: stop it, keep the session.
//! sessions::cancel("orders", 4243)?;
//! // A MongoDB operation (opid from currentOp).
//! sessions::kill_op("events", 981)?;
//! # Ok(()) }
//! ```

use crate::Error;
use crate::bindings::warden::plugin::sessions as wit;
pub use crate::bindings::warden::plugin::sessions::{Outcome, Signal};

/// Sends `signal` to PostgreSQL backend `pid` on `target`
/// (`pg_cancel_backend` or `pg_terminate_backend`).
pub fn signal_backend(target: &str, pid: i32, signal: Signal) -> Result<Outcome, Error> {
    wit::signal_backend(target, pid, signal)
}

/// Ends PostgreSQL backend `pid` on `target` (`pg_terminate_backend`): its
/// transaction is rolled back and its connection closed.
pub fn terminate(target: &str, pid: i32) -> Result<Outcome, Error> {
    signal_backend(target, pid, Signal::Terminate)
}

/// Cancels the statement PostgreSQL backend `pid` on `target` is running
/// (`pg_cancel_backend`); the session stays.
pub fn cancel(target: &str, pid: i32) -> Result<Outcome, Error> {
    signal_backend(target, pid, Signal::Cancel)
}

/// Kills MongoDB operation `opid` on `target` (`killOp`).
pub fn kill_op(target: &str, opid: i64) -> Result<Outcome, Error> {
    wit::kill_op(target, opid)
}
