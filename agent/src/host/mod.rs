//! The host side of every capability a plugin imports.
//!
//! One module per WIT interface, each the same shape: its per-run state, the
//! `Host` trait implementation for [`HostState`] (the store's data), and its
//! tests. Every call goes through [`permission::check_local`] or
//! [`permission::check_target`] first: exhaustive `match`es over
//! [`permission::LocalCall`] and [`permission::TargetCall`], so a new host
//! function cannot compile until its permission is decided.
//!
//! Every host call that reaches a target or a file goes through one
//! pipeline, [`HostState::call`] in [`call`]: the run's environment, the
//! span, the permission decision, the time budget (and abandoning a call
//! that outlives it), the action record of a mutation (dry-run, the
//! approved plan and the runbook step gate in [`HostState::mutation`]) and
//! the redaction of errors. The capability writes only its work. Calls
//! that touch no target (`log`, `state`, `context`, `runbooks`, `runs`,
//! `classify`, `quote-ident`) are bookkeeping of the run: they are decided
//! by [`permission::check_local`] (or `check_target` for `runs.start` and
//! `quote-ident`) and have no budget, record or span of their own.
//!
//! Adding a capability is one module with this shape, written in order:
//! 1. its WIT interface (`wit/`) and the bindgen entry in [`bindings`];
//! 2. its permission: a [`permission::LocalCall`] or
//!    [`permission::TargetCall`] case and its rule (the `match`es do not
//!    compile without one), a row in `permission/tests.rs`;
//! 3. its per-run state, implementing [`capability::Capability`]
//!    (`prepare` at run start, `finish` closing what it opened and moving
//!    what it produced into [`RunEffects`], `abandon` letting go of a
//!    target after a call outlived its budget), a private field of
//!    [`HostState`] and a line in [`HostState::finish`] (and in
//!    `HostState::abandon` if it holds connections);
//! 4. the `Host` trait for [`HostState`]: each function describes its call
//!    ([`call::Call`]: span, permission, budget) and hands its work to
//!    [`HostState::call`]; the work gets the resolved target, grant and
//!    deadline ([`call::Cx`]), stops itself at the deadline where the bytes
//!    are, and passes a change it is about to make through
//!    [`HostState::mutation`] first;
//! 5. tests: unit tests in the module, and `tests/it/capability/<cap>.rs`
//!    calling it without wasm through [`HostState::for_test`].

pub mod artifacts;
pub mod bindings;
pub mod call;
pub mod capability;
pub mod context;
pub mod log;
pub mod logs;
pub mod mongo;
pub mod permission;
pub mod resources;
pub mod runbooks;
pub mod runs;
pub mod sessions;
pub mod sql;
pub mod state;
pub mod wit;

pub use capability::RunEffects;

use crate::config::Config;
use crate::host::bindings::types;
use crate::host::bindings::types::Error;
use crate::policy::Grant;
use crate::policy::PolicySet;
use crate::runs::{Action, RunStore};
use crate::secrets::Redactor;
use capability::Capability as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Bytes of guest stderr kept (the tail holds a panic message).
const STDERR_CAPACITY: usize = 16 * 1024;

/// Everything a run may reach, fixed when the run starts.
pub struct RunEnv {
    pub run_id: String,
    pub plugin: String,
    pub invocation: types::Invocation,
    pub config: Arc<Config>,
    pub policies: Arc<PolicySet>,
    /// The runbooks in force when the run started.
    pub runbooks: Arc<crate::runbook::RunbookSet>,
    pub store: RunStore,
    pub redactor: Arc<Redactor>,
    pub deadline: Instant,
    /// The grant's max_runtime (for messages; `deadline` is what counts).
    pub max_runtime: std::time::Duration,
    /// A person approved this run (the real run of an approved plan).
    pub approved: bool,
    /// The approved plan this run carries out: the only calls it may make.
    pub approved_plan: Option<Arc<crate::runs::approvals::ApprovedPlan>>,
    /// Where `runs.start` queues runs; `None` outside the service.
    pub starter: Option<Arc<dyn runs::RunStarter>>,
    /// The run's depth in a chain of runs started by runs (0 unless a run
    /// started it): what `runs.start` holds against `[runs]
    /// max_chain_depth`.
    pub depth: u32,
    /// The agent's metrics (refused `runs.start` calls are counted).
    pub metrics: crate::telemetry::Metrics,
}

impl RunEnv {
    pub fn dry_run(&self) -> bool {
        self.invocation.dry_run
    }

    /// A manual run of `plugin` on `target` with the given config,
    /// policies and run store, no runbooks, no secrets to redact and the
    /// grant's `max_runtime` (or 60s without a grant): for tests that call
    /// capability code without wasm (see [`HostState::for_test`]).
    #[doc(hidden)]
    pub fn for_test(
        plugin: &str,
        target: &str,
        config: Arc<Config>,
        policies: Arc<PolicySet>,
        store: RunStore,
        dry_run: bool,
    ) -> RunEnv {
        let target_kind = match config.target(target).map(|t| t.kind) {
            Some(crate::capability::TargetKind::Postgres) => types::TargetKind::Postgres,
            Some(crate::capability::TargetKind::Mongodb) => types::TargetKind::Mongodb,
            _ => types::TargetKind::Sqlite,
        };
        let max_runtime = policies
            .grant(plugin, target)
            .map_or(Grant::default_max_runtime(), |g| g.max_runtime);
        let run_id = format!("test-{plugin}-{target}");
        RunEnv {
            run_id: run_id.clone(),
            plugin: plugin.to_owned(),
            invocation: types::Invocation {
                run_id,
                trigger: types::Trigger::Manual("test".into()),
                target: target.to_owned(),
                target_kind,
                params: Vec::new(),
                dry_run,
            },
            config,
            policies,
            runbooks: Arc::new(crate::runbook::RunbookSet::default()),
            store,
            redactor: Arc::new(Redactor::new(Vec::<String>::new())),
            deadline: Instant::now() + max_runtime,
            max_runtime,
            approved: false,
            approved_plan: None,
            starter: None,
            depth: 0,
            metrics: crate::telemetry::Metrics::new(),
        }
    }
}

/// Memory and table limits of one store, remembering whether one was hit so
/// the run can end with `limit-exceeded` rather than a bare trap.
pub struct RunLimiter {
    pub memory_bytes: usize,
    pub hit: Option<String>,
}

impl wasmtime::ResourceLimiter for RunLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.hit = Some(format!(
                "memory limit of {} exceeded (the plugin had {} and asked for {})",
                bytesize::ByteSize(self.memory_bytes as u64),
                bytesize::ByteSize(current as u64),
                bytesize::ByteSize(desired as u64),
            ));
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        const MAX_TABLE_ELEMENTS: usize = 100_000;
        if desired > MAX_TABLE_ELEMENTS {
            self.hit = Some(format!(
                "table limit of {MAX_TABLE_ELEMENTS} elements exceeded"
            ));
            return Ok(false);
        }
        Ok(true)
    }
}

/// The data of one run's `Store`: WASI (with nothing granted), the limits,
/// and each capability's per-run state.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: RunLimiter,
    /// `None` while `describe` runs: then every import is denied.
    env: Option<Arc<RunEnv>>,
    log: log::LogSink,
    sql: sql::SqlSessions,
    mongo: mongo::MongoSessions,
    state: state::StateOverlay,
    /// Statements above `read`, as the host saw them.
    actions: Vec<Action>,
    /// The index in `actions` of the mutation the current call is making
    /// (see [`call`]).
    pending: Option<usize>,
    /// The runbook action the run is inside.
    runbook_step: runbooks::RunbookStep,
    /// In the real run of an approved plan: what holds it to the plan.
    plan: Option<crate::runs::approvals::PlanGuard>,
    /// Runs this run started (`runs.start`), by id: their number is
    /// what `max_started_runs` bounds.
    started_runs: Vec<String>,
    /// The `runs.start` bounds this run has hit, each noted once on its
    /// record even when its log is full.
    start_refusals: runs::Refusals,
    stderr: MemoryOutputPipe,
}

impl HostState {
    /// A store's data with no filesystem, network, environment or arguments.
    pub fn new(env: Option<Arc<RunEnv>>, memory_bytes: usize) -> HostState {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let plan = env
            .as_ref()
            .and_then(|e| e.approved_plan.clone())
            .map(crate::runs::approvals::PlanGuard::new);
        HostState {
            plan,
            wasi,
            table: ResourceTable::new(),
            limiter: RunLimiter {
                memory_bytes,
                hit: None,
            },
            log: log::LogSink::prepare(env.as_deref()),
            sql: sql::SqlSessions::prepare(env.as_deref()),
            mongo: mongo::MongoSessions::prepare(env.as_deref()),
            state: state::StateOverlay::prepare(env.as_deref()),
            env,
            actions: Vec::new(),
            pending: None,
            runbook_step: runbooks::RunbookStep::default(),
            started_runs: Vec::new(),
            start_refusals: runs::Refusals::default(),
            stderr,
        }
    }

    /// A run's store data without a wasm engine: tests call the capability
    /// code (the `Host` traits of [`bindings`], `artifacts_dump`, ...) on
    /// it directly, then [`HostState::finish`]. The middle of the test
    /// pyramid, between unit tests and whole plugins.
    #[doc(hidden)]
    pub fn for_test(env: Arc<RunEnv>) -> HostState {
        HostState::new(Some(env), 64 << 20)
    }

    /// Ends the run for every capability (connections closed, clients
    /// shut down) and hands back what the run produced. In the real run of
    /// an approved plan, notes on the log how many approved actions it did
    /// not make.
    pub async fn finish(&mut self) -> RunEffects {
        let mut effects = RunEffects::default();
        self.sql.finish(&mut effects).await;
        self.mongo.finish(&mut effects).await;
        effects.plan_broken = self
            .plan
            .as_ref()
            .and_then(|g| g.broken().map(str::to_string));
        // The record says which approved actions the run did not make.
        if let Some(g) = &self.plan
            && effects.plan_broken.is_none()
            && g.left_out() > 0
        {
            self.log.push_host(
                "info",
                format!(
                    "{} of the approved plan's actions were not made (the run did not call for them)",
                    g.left_out()
                ),
            );
        }
        effects.actions = std::mem::take(&mut self.actions);
        self.log.finish(&mut effects).await;
        self.state.finish(&mut effects).await;
        effects
    }

    /// Every capability lets go of what it had open on `target` (a call
    /// outlived its budget; see [`call`]).
    async fn abandon(&mut self, target: &str) {
        self.sql.abandon(target).await;
        self.mongo.abandon(target).await;
    }

    /// The run's environment (`None` while `describe` runs).
    pub fn env(&self) -> Option<&Arc<RunEnv>> {
        self.env.as_ref()
    }

    /// What the guest wrote to stderr (a panic message, usually), redacted
    /// and trimmed to its last lines.
    pub fn stderr_tail(&self) -> String {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim();
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let out = tail.join("\n");
        match &self.env {
            Some(env) => env.redactor.redact(&out),
            None => out,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Shorthands for the WIT error variant.
pub(crate) fn denied(msg: impl Into<String>) -> types::Error {
    types::Error::AccessDenied(msg.into())
}

pub(crate) fn invalid(msg: impl Into<String>) -> types::Error {
    types::Error::InvalidInput(msg.into())
}

/// `invalid-input` "`what`; the limit is `max`" when `n` is over `max`.
pub(crate) fn at_most(n: usize, max: usize, what: impl FnOnce() -> String) -> Result<(), Error> {
    if n > max {
        return Err(invalid(format!("{}; the limit is {max}", what())));
    }
    Ok(())
}

/// `warden:plugin/types` has no functions; the linker still wants the trait.
impl crate::host::bindings::types::Host for HostState {}

/// Marks a host call's span failed with the error's kind (not its text).
fn record_error(span: &tracing::Span, e: &Error) {
    let kind = match e {
        Error::AccessDenied(_) => "access-denied".to_string(),
        Error::Timeout(_) => "timeout".to_string(),
        Error::InvalidInput(_) => "invalid-input".to_string(),
        Error::TargetError(d) if !d.code.is_empty() => d.code.clone(),
        Error::TargetError(_) => "target-error".to_string(),
        Error::Other(_) => "other".to_string(),
    };
    span.record("error.type", kind.as_str());
    crate::telemetry::mark_error(span, kind);
}

/// How long one call may take: the grant's statement timeout plus a margin
/// for the server to report it, never past the run's deadline.
pub(crate) fn call_timeout(env: &RunEnv, grant: &Grant) -> Duration {
    let left = env.deadline.saturating_duration_since(Instant::now());
    (grant.statement_timeout + Duration::from_secs(2)).min(left)
}

impl HostState {
    /// In the real run of an approved plan, admits `call` (an action about
    /// to be made) if the plan holds it. Otherwise records it as refused
    /// (not made) and answers `access-denied`; the run then ends `failed`
    /// ([`crate::runs::approvals::PLAN_NO_LONGER_HOLDS`]).
    pub(crate) fn hold_to_plan(&mut self, call: &Action) -> Result<(), Error> {
        let Some(guard) = &mut self.plan else {
            return Ok(());
        };
        match guard.admit(call) {
            Ok(()) => Ok(()),
            Err(why) => {
                let mut refused = call.clone();
                refused.state = crate::runs::ActionState::Refused;
                refused.error = Some(why.clone());
                self.actions.push(refused);
                Err(denied(why))
            }
        }
    }

    /// The run's environment; `denied` while `describe` runs.
    pub(crate) fn run_env(&self) -> Result<std::sync::Arc<RunEnv>, Error> {
        self.env
            .clone()
            .ok_or_else(|| permission::Denied::InDescribe.into())
    }
}
