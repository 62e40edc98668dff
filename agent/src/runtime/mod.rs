//! The plugin runtime: one shared wasmtime [`Engine`] with the pooling
//! allocator, components compiled once and cached on disk by content hash,
//! and a fresh [`Store`] per run with an epoch deadline and a memory limit.
//!
//! A trap, a timeout or an exhausted limit ends that run with a clear status;
//! the runtime keeps serving.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let rt = warden::runtime::Runtime::new(std::path::Path::new("state/cache"))?;
//! let plugin = rt.load_file(std::path::Path::new("target/plugins/vacuum.wasm")).await?;
//! println!("{} {} {}", plugin.manifest.name, plugin.manifest.version, plugin.digest);
//! # Ok(()) }
//! ```

pub mod cache;
pub mod report;

use crate::capability::{CapabilityClass, TargetKind};
use crate::host::bindings::{Plugin, PluginPre, types as wit};
use crate::host::{HostState, RunEffects, RunEnv};
use crate::runs::{Action, Blame, LogLine, Report, RunError, RunStatus};
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline,
};

/// How often the engine's epoch advances: the granularity of deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Largest memory any grant may give a plugin.
pub const MAX_MEMORY: usize = 4 << 30;
/// Concurrent instances the pool holds (one per run in flight).
pub const POOL_INSTANCES: u32 = 128;
/// Stack a plugin's wasm code may use.
pub const MAX_WASM_STACK: usize = 1 << 20;
/// Stack of each run's fiber: the wasm code's [`MAX_WASM_STACK`], and at least
/// the rest for host calls, which run on the same stack. The largest user is
/// the `mongo` capability, which parses, classifies, encodes and drops command
/// documents nested up to `mongo::classify::MAX_NESTING` (128) levels, and
/// replies as deep as MongoDB stores (100 levels): about 18 KiB of stack a
/// level in a debug build (2.3 MiB at 128 levels, measured), so 2 MiB, the
/// default, is not enough. Reserved address space, touched only as used.
pub const ASYNC_STACK: usize = 8 << 20;
/// Time `describe()` may take.
const DESCRIBE_DEADLINE: Duration = Duration::from_secs(5);
/// Memory `describe()` may use.
const DESCRIBE_MEMORY: usize = 64 << 20;

/// A type a plugin declares for a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Integer,
    Float,
    Boolean,
    Duration,
}

impl ParamType {
    /// Checks a value; the error says what was expected.
    pub fn check(self, value: &str) -> Result<(), String> {
        let ok = match self {
            ParamType::String => true,
            ParamType::Integer => value.trim().parse::<i64>().is_ok(),
            ParamType::Float => value.trim().parse::<f64>().is_ok_and(f64::is_finite),
            ParamType::Boolean => matches!(value.trim(), "true" | "false"),
            ParamType::Duration => humantime::parse_duration(value.trim()).is_ok(),
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "expected {}, got `{value}`",
                match self {
                    ParamType::String => "a string",
                    ParamType::Integer => "an integer",
                    ParamType::Float => "a number",
                    ParamType::Boolean => "true or false",
                    ParamType::Duration => "a duration such as 30s, 5m or 1h",
                }
            ))
        }
    }
}

/// One declared parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub ty: ParamType,
    pub default: Option<String>,
    pub required: bool,
}

/// What a plugin says about itself (`describe()`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub description: String,
    pub capabilities: Vec<CapabilityClass>,
    pub target_kinds: Vec<TargetKind>,
    pub params: Vec<ParamSpec>,
}

impl Manifest {
    /// Checks parameters against the declarations and fills in defaults.
    /// Returns every problem at once.
    pub fn resolve_params(
        &self,
        given: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, Vec<String>> {
        let mut errors = Vec::new();
        let mut out = BTreeMap::new();
        for name in given.keys() {
            if !self.params.iter().any(|p| &p.name == name) {
                let known: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
                errors.push(format!(
                    "plugin `{}` has no parameter `{name}` (it accepts: {})",
                    self.name,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            }
        }
        for spec in &self.params {
            match given.get(&spec.name).or(spec.default.as_ref()) {
                Some(v) => match spec.ty.check(v) {
                    Ok(()) => {
                        out.insert(spec.name.clone(), v.clone());
                    }
                    Err(e) => errors.push(format!("parameter `{}`: {e}", spec.name)),
                },
                None if spec.required => {
                    errors.push(format!("parameter `{}` is required", spec.name))
                }
                None => {}
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    fn from_wit(m: wit::Manifest) -> Manifest {
        Manifest {
            name: m.name,
            version: m.version,
            description: m.description,
            capabilities: m
                .capabilities
                .into_iter()
                .map(crate::host::wit::from_wit_class)
                .collect(),
            target_kinds: m
                .target_kinds
                .into_iter()
                .map(|k| match k {
                    wit::TargetKind::Sqlite => TargetKind::Sqlite,
                    wit::TargetKind::Postgres => TargetKind::Postgres,
                    wit::TargetKind::Mongodb => TargetKind::Mongodb,
                })
                .collect(),
            params: m
                .params
                .into_iter()
                .map(|p| ParamSpec {
                    name: p.name,
                    description: p.description,
                    ty: match p.type_ {
                        wit::ParamType::String => ParamType::String,
                        wit::ParamType::Integer => ParamType::Integer,
                        wit::ParamType::Float => ParamType::Float,
                        wit::ParamType::Boolean => ParamType::Boolean,
                        wit::ParamType::Duration => ParamType::Duration,
                    },
                    default: p.default,
                    required: p.required,
                })
                .collect(),
        }
    }

    /// Problems with the manifest itself (bad name, bad defaults).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let name_ok = self
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase())
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && self.name.len() <= 64;
        if !name_ok {
            out.push(format!(
                "plugin name `{}` must match [a-z][a-z0-9-]* (at most 64 characters)",
                self.name
            ));
        }
        for p in &self.params {
            if let Some(d) = &p.default
                && let Err(e) = p.ty.check(d)
            {
                out.push(format!("default of parameter `{}`: {e}", p.name));
            }
        }
        out
    }
}

/// A compiled, described plugin ready to run.
#[derive(Clone)]
pub struct LoadedPlugin {
    pub manifest: Manifest,
    /// SHA-256 of the component file, hex.
    pub digest: String,
    pub path: PathBuf,
    pre: PluginPre<HostState>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.manifest.name)
            .field("digest", &self.digest)
            .field("path", &self.path)
            .finish()
    }
}

/// How a run ended, before it is written into a record.
#[derive(Debug)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub report: Option<Report>,
    pub error: Option<RunError>,
    pub actions: Vec<Action>,
    pub logs: Vec<LogLine>,
    pub logs_dropped: u64,
    /// State writes to commit (only for a succeeded, non-dry run).
    pub state_writes: BTreeMap<String, Option<Vec<u8>>>,
}

/// Marks a deadline trap raised by the epoch callback.
#[derive(Debug)]
struct DeadlineReached;

impl std::fmt::Display for DeadlineReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the run's deadline was reached")
    }
}

impl std::error::Error for DeadlineReached {}

/// Stops the epoch thread when the runtime is dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The shared engine, linker and component cache.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: cache::ComponentCache,
    _ticker: EpochTicker,
}

impl Runtime {
    /// An engine with epoch interruption and the pooling allocator, caching
    /// compiled components in `cache_dir`.
    pub fn new(cache_dir: &Path) -> anyhow::Result<Runtime> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_INSTANCES)
            .total_core_instances(POOL_INSTANCES * 8)
            .total_memories(POOL_INSTANCES * 2)
            .total_tables(POOL_INSTANCES * 4)
            .total_stacks(POOL_INSTANCES)
            .max_memory_size(MAX_MEMORY);
        let mut config = wasmtime::Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(MAX_WASM_STACK)
            .async_stack_size(ASYNC_STACK)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("creating the wasm engine")?;
        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;
        let stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("warden-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .context("starting the epoch thread")?;
        }
        Ok(Runtime {
            cache: cache::ComponentCache::new(cache_dir, &engine),
            engine,
            linker,
            _ticker: EpochTicker { stop },
        })
    }

    /// Loads a component file: digest, compile (or cache hit), link, describe.
    pub async fn load_file(&self, path: &Path) -> anyhow::Result<LoadedPlugin> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        self.load_bytes(path, &bytes).await
    }

    /// Like [`Runtime::load_file`] with the bytes at hand.
    pub async fn load_bytes(&self, path: &Path, bytes: &[u8]) -> anyhow::Result<LoadedPlugin> {
        let digest = cache::digest(bytes);
        let component: Component = {
            let engine = self.engine.clone();
            let cache = self.cache.clone();
            let digest = digest.clone();
            let bytes = bytes.to_vec();
            tokio::task::spawn_blocking(move || cache.load(&engine, &digest, &bytes))
                .await
                .context("compiling")??
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("linking: the component imports something the host does not provide")?;
        let pre = PluginPre::new(pre).map_err(anyhow::Error::from).context(
            "the component does not export the warden:plugin@0.1.x world (describe, run)",
        )?;
        let manifest = self.describe(&pre).await?;
        let problems = manifest.problems();
        if !problems.is_empty() {
            anyhow::bail!("invalid manifest: {}", problems.join("; "));
        }
        Ok(LoadedPlugin {
            manifest,
            digest,
            path: path.to_path_buf(),
            pre,
        })
    }

    fn new_store(&self, state: HostState, deadline: Instant) -> Store<HostState> {
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_ctx| {
            if Instant::now() >= deadline {
                Err(wasmtime::Error::new(DeadlineReached))
            } else {
                Ok(UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(tokio::task::yield_now()),
                ))
            }
        });
        store
    }

    async fn describe(&self, pre: &PluginPre<HostState>) -> anyhow::Result<Manifest> {
        let deadline = Instant::now() + DESCRIBE_DEADLINE;
        let mut store = self.new_store(HostState::new(None, DESCRIBE_MEMORY), deadline);
        let fut = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_describe(&mut store).await
        };
        match tokio::time::timeout(DESCRIBE_DEADLINE + Duration::from_secs(1), fut).await {
            Ok(Ok(m)) => Ok(Manifest::from_wit(m)),
            Ok(Err(e)) => {
                let stderr = store.data().stderr_tail();
                Err(anyhow::anyhow!(
                    "describe() failed: {}",
                    trap_text(&e, store.data(), &stderr)
                ))
            }
            Err(_) => Err(anyhow::anyhow!("describe() did not return within 5s")),
        }
    }

    /// Runs a plugin once in a fresh store. Never panics on guest behaviour:
    /// whatever the guest does comes back as a [`RunOutcome`].
    pub async fn execute(
        &self,
        plugin: &LoadedPlugin,
        env: Arc<RunEnv>,
        memory_bytes: usize,
    ) -> RunOutcome {
        let deadline = env.deadline;
        let mut store = self.new_store(
            HostState::new(Some(env.clone()), memory_bytes.min(MAX_MEMORY)),
            deadline,
        );
        let invocation = env.invocation.clone();
        let budget = deadline.saturating_duration_since(Instant::now());
        let result = {
            let fut = async {
                let instance = plugin.pre.instantiate_async(&mut store).await?;
                instance.call_run(&mut store, &invocation).await
            };
            // The epoch callback stops guest code; this stops a run stuck in
            // a host call past its deadline.
            tokio::time::timeout(budget + Duration::from_secs(1), fut).await
        };
        let redactor = env.redactor.clone();
        let RunEffects {
            actions,
            logs,
            logs_dropped,
            state_writes,
            plan_broken,
        } = store.data_mut().finish().await;
        let mut out = RunOutcome {
            status: RunStatus::Succeeded,
            report: None,
            error: None,
            actions,
            logs,
            logs_dropped,
            state_writes: BTreeMap::new(),
        };
        let fail = |status: RunStatus, blame: Blame, kind: &str, message: String| {
            (
                status,
                RunError {
                    blame,
                    kind: kind.to_string(),
                    message: redactor.redact(&message),
                },
            )
        };
        let failure = match result {
            Err(_) => Some(fail(
                RunStatus::TimedOut,
                Blame::Guest,
                "timeout",
                format!(
                    "the run did not finish within its max_runtime of {}",
                    humantime::format_duration(env.max_runtime)
                ),
            )),
            // The run's status follows its report. A report that lists an
            // action in state `failed` (one the host recorded: a statement
            // that failed; or one the plugin reported: it checked its own
            // outcome and the job did not do what it was for, e.g. a VACUUM
            // skipped with a warning, a backup whose verification failed)
            // makes the run `failed`, blamed on the guest (error kind
            // `action-failed`, naming how many failed and the first one),
            // whatever the report's own status says: such a run did not
            // achieve its purpose and must not count as `succeeded` (it is
            // counted by `warden_runs_total{status="failed"}`, retried and
            // fed to circuit breakers like any failure, and its state
            // writes are discarded). This is the only place the rule is
            // applied; `wit/plugin.wit` (`action-state`) documents it.
            Ok(Ok(Ok(report))) => {
                let report = report::from_guest(&redactor, report, &out.actions);
                let failed = report::failed_actions_error(&report);
                out.report = Some(report);
                match failed {
                    Some(message) => Some(fail(
                        RunStatus::Failed,
                        Blame::Guest,
                        "action-failed",
                        message,
                    )),
                    None => {
                        if !env.dry_run() {
                            out.state_writes = state_writes;
                        }
                        None
                    }
                }
            }
            Ok(Ok(Err(guest_error))) => {
                let (kind, blame) = match &guest_error {
                    wit::Error::AccessDenied(_) => ("access-denied", Blame::Guest),
                    wit::Error::Timeout(_) => ("timeout", Blame::Target),
                    wit::Error::InvalidInput(_) => ("invalid-input", Blame::Guest),
                    wit::Error::TargetError(_) => ("target-error", Blame::Target),
                    wit::Error::Other(_) => ("other", Blame::Guest),
                };
                let status = if kind == "access-denied" {
                    RunStatus::Denied
                } else {
                    RunStatus::Failed
                };
                let mut message = crate::host::wit::error_text(&guest_error);
                crate::text::truncate_utf8(&mut message, report::MAX_LONG);
                Some(fail(status, blame, kind, message))
            }
            Ok(Err(e)) => {
                let data = store.data();
                let stderr = data.stderr_tail();
                if e.downcast_ref::<DeadlineReached>().is_some() {
                    Some(fail(
                        RunStatus::TimedOut,
                        Blame::Guest,
                        "timeout",
                        format!(
                            "the plugin was stopped at its max_runtime of {}",
                            humantime::format_duration(env.max_runtime)
                        ),
                    ))
                } else if let Some(limit) = &data.limiter.hit {
                    Some(fail(
                        RunStatus::LimitExceeded,
                        Blame::Guest,
                        "limit",
                        limit.clone(),
                    ))
                } else {
                    Some(fail(
                        RunStatus::Trapped,
                        Blame::Guest,
                        "trap",
                        trap_text(&e, data, &stderr),
                    ))
                }
            }
        };
        if let Some((status, error)) = failure {
            out.status = status;
            out.error = Some(error);
        }
        // A real run that tried a call its approved plan does not hold ends
        // failed whatever the plugin made of the refusal.
        if let Some(why) = plan_broken {
            let (status, error) = fail(
                RunStatus::Failed,
                Blame::Target,
                crate::runs::approvals::PLAN_NO_LONGER_HOLDS,
                format!("plan no longer holds: {why}"),
            );
            out.status = status;
            out.error = Some(error);
        }
        out
    }
}

/// A readable description of a trap: the trap code, the guest's panic
/// message when it printed one, and the host error otherwise.
fn trap_text(e: &wasmtime::Error, data: &HostState, stderr: &str) -> String {
    let mut text = match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::StackOverflow) => "stack overflow (call stack exhausted)".to_string(),
        Some(trap) => format!("trap: {trap}"),
        None => format!("{e:#}"),
    };
    if let Some(limit) = &data.limiter.hit {
        text = format!("{limit}; {text}");
    }
    if !stderr.is_empty() {
        text.push_str(&format!("; plugin stderr: {stderr}"));
    }
    text
}
