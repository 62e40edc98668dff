//! The one pipeline of every host call on a target.
//!
//! [`HostState::call`] runs the steps no capability writes itself, in this
//! order:
//! 1. the run's environment (in `describe` every call is denied);
//! 2. the call's span ([`crate::telemetry::host_call_span`] or, for files,
//!    [`crate::telemetry::file_read_span`]), around everything below;
//! 3. the permission decision ([`check_target`]): the work gets the
//!    [`Resolved`] target and grant, so it cannot reach a target without
//!    one;
//! 4. the time budget: the grant's statement timeout ([`Budget::Statement`],
//!    see [`call_timeout`]) or what is left of the run ([`Budget::Run`]),
//!    never past the run's deadline. The work stops itself at
//!    [`Cx::deadline`] where the bytes are (a statement timeout on the
//!    server, `maxTimeMS`, ...); a work that has not returned
//!    [`GRACE`] later is dropped, every capability [abandons] what it had
//!    open on the target (a PostgreSQL backend is terminated on the
//!    server), and the call fails with `timeout`;
//! 5. the action record: a mutation the work is about to make goes through
//!    [`HostState::mutation`] (the one place for dry-run, the approved
//!    plan and the runbook step gate); the pipeline settles it from the
//!    call's result (`executed`, or `failed` with the error), unless the
//!    work settled it first with a reason of its own
//!    ([`HostState::settle`]);
//! 6. redaction of the error's text with the run's redactor, and the span
//!    marked failed with the error's kind.
//!
//! [abandons]: super::capability::Capability::abandon

use super::bindings::types::{DbError, Error};
use super::permission::{Resolved, TargetCall, check_target};
use super::{HostState, RunEnv, call_timeout, record_error};
use crate::capability::CapabilityClass;
use crate::config::Target;
use crate::policy::Grant;
use crate::runs::{Action, ActionState};
use futures_util::future::BoxFuture;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument as _;

/// How long past its budget a call's work may run before the pipeline
/// drops it (the work's own stop, on the server, comes first).
pub const GRACE: Duration = Duration::from_secs(3);

/// What a call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// The grant's statement timeout plus a margin ([`call_timeout`]).
    Statement,
    /// What is left of the run (dumps and restores).
    Run,
}

/// How the call's span describes it.
#[derive(Debug, Clone, Copy)]
pub enum Span<'x> {
    /// A database call: `db.operation.name` = `operation` on `namespace`
    /// (a target's name; its kind names the system).
    Db {
        operation: &'x str,
        namespace: &'x str,
        class: CapabilityClass,
    },
    /// A read of a file on this host (`path` as the plugin wrote it).
    File { target: &'x str, path: &'x str },
}

/// A host call on a target, described before it runs.
pub struct Call<'x> {
    /// The span's name (`sql.execute`).
    pub name: &'static str,
    pub span: Span<'x>,
    /// What its permission depends on.
    pub ask: TargetCall<'x>,
    pub budget: Budget,
}

impl<'x> Call<'x> {
    /// A call on a database, its span naming `operation` on `namespace`.
    pub fn db(
        name: &'static str,
        operation: &'x str,
        namespace: &'x str,
        class: CapabilityClass,
        ask: TargetCall<'x>,
    ) -> Call<'x> {
        Call {
            name,
            span: Span::Db {
                operation,
                namespace,
                class,
            },
            ask,
            budget: Budget::Statement,
        }
    }

    /// The same call with what is left of the run as its budget.
    pub fn for_the_run(mut self) -> Call<'x> {
        self.budget = Budget::Run;
        self
    }
}

/// What the work of an allowed call gets from the pipeline. `'x` is the
/// lifetime of what the call borrows from its caller (the statement, the
/// target's name): the phantom tells the compiler it outlives `'e`.
pub struct Cx<'e, 'x> {
    pub env: &'e Arc<RunEnv>,
    pub target: &'e Target,
    pub grant: &'e Grant,
    /// The call's budget ([`Budget`]).
    pub timeout: Duration,
    /// When the work must have stopped.
    pub deadline: Instant,
    pub span: &'e tracing::Span,
    _caller: PhantomData<&'e &'x ()>,
}

impl Cx<'_, '_> {
    /// What is left of the call's budget.
    pub fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// What a mutation may do once [`HostState::mutation`] let it through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Go {
    /// A dry run: it was recorded as planned and must not be made.
    Planned,
    /// Make it; the pipeline records how it went.
    Proceed,
}

/// Whether the real run of an approved plan holds a mutation to the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The plan must hold it (statements, signals, restores, deletions).
    ToPlan,
    /// Not held: a dump changes no target and its artifact's name carries
    /// the time it is made, so no plan could hold it.
    No,
}

/// The text a pending action keeps if its work never returns.
const UNFINISHED: &str = "the call did not finish (dropped at its deadline)";

impl HostState {
    /// Runs one host call on a target through the pipeline (see the
    /// module's doc): the work runs only once the call is allowed, gets
    /// its target, grant and deadline in [`Cx`], and records a mutation
    /// only through [`HostState::mutation`].
    pub async fn call<'x, T, F>(&mut self, call: Call<'x>, work: F) -> Result<T, Error>
    where
        T: Send,
        F: for<'e> FnOnce(&'e mut HostState, Cx<'e, 'x>) -> BoxFuture<'e, Result<T, Error>> + Send,
    {
        let env = self.run_env()?;
        let span = match call.span {
            Span::Db {
                operation,
                namespace,
                class,
            } => {
                let system = env
                    .config
                    .target(namespace)
                    .map_or("other", |t| t.kind.db_system());
                crate::telemetry::host_call_span(
                    call.name,
                    system,
                    operation,
                    namespace,
                    class.as_str(),
                )
            }
            Span::File { target, path } => {
                crate::telemetry::file_read_span(call.name, target, &env.redactor.redact(path))
            }
        };
        let result = self
            .allowed(&env, &span, call, work)
            .instrument(span.clone())
            .await
            .map_err(|e| redact(&env, e));
        if let Err(e) = &result {
            record_error(&span, e);
        }
        result
    }

    async fn allowed<'x, T, F>(
        &mut self,
        env: &Arc<RunEnv>,
        span: &tracing::Span,
        call: Call<'x>,
        work: F,
    ) -> Result<T, Error>
    where
        T: Send,
        F: for<'e> FnOnce(&'e mut HostState, Cx<'e, 'x>) -> BoxFuture<'e, Result<T, Error>> + Send,
    {
        let Resolved { target, grant } = check_target(env.scope(), call.ask)?;
        let timeout = match call.budget {
            Budget::Statement => call_timeout(env, grant),
            Budget::Run => env.deadline.saturating_duration_since(Instant::now()),
        };
        let cx = Cx {
            env,
            target,
            grant,
            timeout,
            deadline: Instant::now() + timeout,
            span,
            _caller: PhantomData,
        };
        self.pending = None;
        let result = match tokio::time::timeout(timeout + GRACE, work(self, cx)).await {
            Ok(result) => result,
            Err(_) => {
                self.abandon(&target.name).await;
                Err(Error::Timeout(format!(
                    "the call did not stop within its budget of {} and was abandoned \
                     (the target's connections were closed)",
                    humantime::format_duration(timeout)
                )))
            }
        };
        if let Some(i) = self.pending.take()
            && let Some(action) = self.actions.get_mut(i)
        {
            match &result {
                Ok(_) => {
                    action.state = ActionState::Executed;
                    action.error = None;
                }
                Err(e) => {
                    action.state = ActionState::Failed;
                    action.error = Some(super::wit::error_text(&redact(env, e.clone())));
                }
            }
        }
        result
    }

    /// Before the work makes a mutation (`action`, in the state
    /// `executed`): the one place that decides whether it may.
    /// - A run that read a runbook makes changes only inside an opened
    ///   runbook action ([`Denied::OutsideRunbookAction`]).
    /// - A dry run records it as planned: [`Go::Planned`], do not make it.
    /// - The real run of an approved plan makes it only if the plan holds
    ///   it ([`Hold::ToPlan`]).
    ///
    /// A refusal is recorded (state `refused`, with the reason) and is the
    /// call's `access-denied`. Otherwise [`Go::Proceed`]: the action is
    /// recorded and the pipeline settles it from the call's result.
    pub fn mutation(&mut self, env: &RunEnv, action: Action, hold: Hold) -> Result<Go, Error> {
        if let Err(denied) = self.runbook_step.allows() {
            return Err(self.refused(action, Error::from(denied)));
        }
        if env.dry_run() {
            let mut planned = action;
            planned.state = ActionState::Planned;
            self.actions.push(planned);
            return Ok(Go::Planned);
        }
        if hold == Hold::ToPlan {
            self.hold_to_plan(&action)?;
        }
        if self.pending.is_some() {
            return Err(Error::Other(
                "a host call made a second mutation: each call makes one (a bug in the host)"
                    .into(),
            ));
        }
        let mut pending = action;
        pending.state = ActionState::Failed;
        pending.error = Some(UNFINISHED.to_string());
        self.pending = Some(self.actions.len());
        self.actions.push(pending);
        Ok(Go::Proceed)
    }

    /// Settles the call's pending mutation with the work's own verdict
    /// (a signal the server did not deliver, `ok: 0`, ...): the pipeline
    /// then leaves it as it is.
    pub fn settle(&mut self, state: ActionState, error: Option<String>) {
        if let Some(i) = self.pending.take()
            && let Some(action) = self.actions.get_mut(i)
        {
            action.state = state;
            action.error = error;
        }
    }

    /// The call's pending mutation, to add what the work learnt (notices).
    pub fn pending_action(&mut self) -> Option<&mut Action> {
        self.pending.and_then(|i| self.actions.get_mut(i))
    }

    /// Records `action` as refused with `e`'s text; `e` back.
    fn refused(&mut self, mut action: Action, e: Error) -> Error {
        action.state = ActionState::Refused;
        action.error = Some(super::wit::error_text(&e));
        self.actions.push(action);
        e
    }
}

/// The error's text redacted with the run's redactor (the guest, the
/// records and the span see only this).
pub fn redact(env: &RunEnv, e: Error) -> Error {
    let r = |m: String| env.redactor.redact(&m);
    match e {
        Error::AccessDenied(m) => Error::AccessDenied(r(m)),
        Error::InvalidInput(m) => Error::InvalidInput(r(m)),
        Error::Timeout(m) => Error::Timeout(r(m)),
        Error::Other(m) => Error::Other(r(m)),
        Error::TargetError(d) => Error::TargetError(DbError {
            code: d.code,
            message: r(d.message),
        }),
    }
}
