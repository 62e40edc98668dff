//! The `warden` command line: the contract other tools and tests rely on.
//!
//! ```text
//! warden --config FILE check [--connect]
//! warden --config FILE plugins list [--output json]
//! warden --config FILE invoke PLUGIN --target NAME [--param KEY=VALUE]... [--dry-run] [--output json]
//! warden --config FILE runs list [--limit N] [--status S] [--plugin P] [--target T] [--since 24h|TIME] [--output json]
//! warden --config FILE runs show ID [--output json]
//! warden --config FILE run
//! ```
//!
//! Text output shows every string a plugin, an alert or an API caller chose
//! through [`crate::text::Shown`] (control characters, bidi overrides and
//! line feeds as visible escapes); JSON output writes them as `\uXXXX`
//! ([`crate::text::json_safe`]). Neither can drive the terminal.
//!
//! Exit codes: 0 success; 1 the run failed (plugin error, trap, timeout,
//! limit); 2 bad usage, config or request; 3 denied by policy. A reader
//! that stops reading (`warden runs list | head`) ends the command with 0.

use crate::agent::{Agent, RunRequest, inspect};
use crate::config::{Config, LogFormat};
use crate::diag::Diagnostics;
use crate::runs::{RunFilter, RunRecord, RunStatus, RunStore, Trigger};
use crate::text::{Shown, ShownLines, json_safe};
use clap::{Parser, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `print!` to standard output; see [`write_out`].
macro_rules! out {
    ($($arg:tt)*) => { write_out(format_args!($($arg)*)) };
}

/// `println!` to standard output; see [`write_out`].
macro_rules! outln {
    () => { write_out(format_args!("\n")) };
    ($($arg:tt)*) => { write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Writes to standard output. A reader that went away (`| head`) is a
/// normal end of the command: exit 0 at once, nothing more to say. Any
/// other write error ends it with 1.
fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to standard output: {e}");
        std::process::exit(1);
    }
}

/// Warden: runs sandboxed WebAssembly plugins against your databases, under policy.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about)]
pub struct Cli {
    /// The agent config file.
    #[arg(
        long,
        short,
        env = "WARDEN_CONFIG",
        default_value = "/etc/warden/warden.toml",
        global = true
    )]
    pub config: PathBuf,
    /// Log format on stderr (overrides `log_format` in the config).
    #[arg(long, value_enum, global = true)]
    pub log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum, PartialEq, Eq)]
pub enum Output {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config, the policies and the plugins; list every problem.
    Check {
        /// Also a preflight: log in to every target a grant names or may
        /// restore into, with the credentials each grant's calls use, and
        /// list as errors (exit 2) every login that fails and every
        /// privilege a granted capability needs that the role lacks, each
        /// with the fix; warn when a role may do more than its grants need.
        /// Targets are checked concurrently, 10 s each at most. Without it,
        /// nothing is connected to.
        #[arg(long)]
        connect: bool,
    },
    /// Installed plugins.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Run a plugin once, now, and print its report.
    Invoke {
        /// The plugin's name (see `plugins list`).
        plugin: String,
        /// The target to run against (a `[[target]]` name in the config).
        #[arg(long)]
        target: String,
        /// A parameter, KEY=VALUE; repeatable.
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Plan only: nothing above `read` is executed.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Recorded runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// The long-running agent: schedules, webhook, HTTP API, run queue,
    /// hot reload; serves until SIGTERM/Ctrl-C, then drains.
    Run,
    /// Approve a plan awaiting approval: its real run is queued and runs in
    /// the agent (`warden run`) and may make only the plan's calls. The
    /// approver recorded is the operating-system user running this command.
    Approve {
        /// The id of the run awaiting approval.
        run: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Reject a plan awaiting approval (recorded under the operating-system
    /// user running this command).
    Reject {
        run: String,
        /// Why (recorded).
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Circuit breakers of alert rules.
    Circuits {
        #[command(subcommand)]
        command: CircuitsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum CircuitsCommand {
    /// State of each rule's circuit breaker, as last saved.
    List {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Close a rule's circuit breaker (the running agent applies it within a second).
    Reset {
        rule: String,
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Name, version, digest and requested capabilities of each plugin.
    List {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// The newest runs, newest first.
    List {
        /// How many runs to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only runs in this status (queued, running, succeeded, skipped,
        /// awaiting-approval, ...).
        #[arg(long)]
        status: Option<String>,
        /// Only runs of this plugin.
        #[arg(long)]
        plugin: Option<String>,
        /// Only runs on this target.
        #[arg(long)]
        target: Option<String>,
        /// Only runs requested since: a duration back from now (`90m`,
        /// `24h`, `7d`) or an RFC 3339 time (`2026-12-01T00:00:00Z`).
        #[arg(long, value_parser = parse_since)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// One run in full.
    Show {
        /// The run id.
        id: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}

/// `--since`: a duration back from now, or an RFC 3339 time.
fn parse_since(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(at.with_timezone(&chrono::Utc));
    }
    let back = humantime::parse_duration(s).map_err(|e| {
        format!("{s:?} is neither a duration (90m, 24h, 7d) nor an RFC 3339 time: {e}")
    })?;
    chrono::Duration::from_std(back)
        .ok()
        .and_then(|back| chrono::Utc::now().checked_sub_signed(back))
        .ok_or_else(|| format!("{s:?} reaches back too far"))
}

/// The operating-system user running the command (its real uid, looked up
/// in the user database: not `$USER`, which anyone can set), as the person
/// approving or rejecting.
fn local_approver() -> Result<crate::runs::approvals::Approver, String> {
    // SAFETY: getuid cannot fail; getpwuid_r writes only into `pwd` and
    // `buf`, which outlive the call, and `result` points into `pwd`.
    let uid = unsafe { libc::getuid() };
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return Err(format!(
            "cannot find the operating-system user with uid {uid} in the user database: \
             the approver is recorded as that user"
        ));
    }
    // SAFETY: pw_name is a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pw_name(&pwd)) };
    Ok(crate::runs::approvals::Approver::local_user(&format!(
        "{} (uid {uid})",
        name.to_string_lossy()
    )))
}

fn pw_name(p: &libc::passwd) -> *const libc::c_char {
    p.pw_name
}

fn current_user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "cli".to_string())
}

async fn circuits(agent: &Agent, command: CircuitsCommand) -> ExitCode {
    match command {
        CircuitsCommand::List { output } => match agent.store.circuits().await {
            Ok(c) => {
                if output == Output::Json {
                    outln!("{}", json_safe(&serde_json::json!(c).to_string()));
                } else {
                    for (rule, c) in c {
                        outln!(
                            "{}: {} since {} ({})",
                            Shown(&rule),
                            Shown(c["state"].as_str().unwrap_or("?")),
                            Shown(c["since"].as_str().unwrap_or("?")),
                            Shown(c["reason"].as_str().unwrap_or(""))
                        );
                    }
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {}", Shown(format_args!("{e:#}")));
                ExitCode::FAILURE
            }
        },
        CircuitsCommand::Reset { rule, by } => {
            if agent.policies().rule(&rule).is_none() {
                eprintln!(
                    "error: no rule named `{}` in {}",
                    Shown(&rule),
                    Shown(agent.config.policy_dir.display())
                );
                return ExitCode::from(EXIT_BAD_INPUT);
            }
            let by = by.unwrap_or_else(current_user);
            match agent.store.request_circuit_reset(&rule, &by).await {
                Ok(()) => {
                    outln!(
                        "reset of rule `{}`'s circuit breaker requested by {}",
                        Shown(&rule),
                        Shown(&by)
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {}", Shown(format_args!("{e:#}")));
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Exit code for usage, config and request errors.
const EXIT_BAD_INPUT: u8 = 2;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::install_tls_provider();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run_cli(cli))
}

/// Logs on stderr (and, with `[telemetry]`, spans over OTLP) for the rest of
/// the process. The guard flushes spans when dropped.
fn init_logging(
    format: LogFormat,
    default_level: &str,
    config: Option<&Config>,
) -> Option<crate::telemetry::TelemetryGuard> {
    let otlp = config
        .and_then(|c| c.otlp.as_ref())
        .map(|o| crate::telemetry::OtlpSettings {
            endpoint: o.endpoint.clone(),
            protocol: match o.protocol {
                crate::config::OtlpProtocol::Grpc => crate::telemetry::OtlpProtocol::Grpc,
                crate::config::OtlpProtocol::HttpProtobuf => {
                    crate::telemetry::OtlpProtocol::HttpProtobuf
                }
            },
            headers: o
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string()))
                .collect(),
            sampling_ratio: o.sampling_ratio,
            service_name: o.service_name.clone(),
        });
    match crate::telemetry::init_with_level(format, default_level, otlp) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!(
                "error: telemetry: {}; continuing without span export",
                Shown(format_args!("{e:#}"))
            );
            crate::telemetry::init_with_level(format, default_level, None).ok()
        }
    }
}

/// One line per problem. A diagnostic can quote a plugin's manifest (its
/// name, a parameter) or a file's contents: shown escaped.
fn print_diagnostics(d: &Diagnostics) {
    for diag in &d.0 {
        eprintln!("error: {}", Shown(diag));
    }
}

async fn run_cli(cli: Cli) -> ExitCode {
    let default_level = match cli.command {
        Command::Run => "info",
        _ => "warn",
    };
    let config_format = match cli.log_format {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Text) => LogFormat::Text,
        None => LogFormat::Text,
    };
    if let Command::Check { connect } = cli.command {
        let _telemetry = init_logging(config_format, default_level, None);
        return check(&cli.config, connect).await;
    }
    let (agent, mut telemetry) = match load_agent(&cli, default_level).await {
        Ok(a) => a,
        Err(code) => return code,
    };
    let store = agent.store.clone();
    let code = run_command(cli, agent).await;
    // Every command that opened the state database leaves it clean: its
    // write-ahead log checkpointed, truncated and (unless a running agent
    // has it open) removed.
    store.close().await;
    if let Some(t) = &mut telemetry
        && let Err(e) = t.shutdown()
    {
        eprintln!("warning: flushing spans: {}", Shown(format_args!("{e:#}")));
    }
    code
}

async fn run_command(cli: Cli, agent: Agent) -> ExitCode {
    match cli.command {
        Command::Check { .. } => ExitCode::SUCCESS,
        Command::Plugins {
            command: PluginsCommand::List { output },
        } => plugins_list(&agent, output),
        Command::Invoke {
            plugin,
            target,
            params,
            dry_run,
            output,
        } => {
            let req = RunRequest {
                plugin,
                target,
                params: params.into_iter().collect::<BTreeMap<_, _>>(),
                dry_run,
                trigger: Trigger::Manual { by: current_user() },
            };
            match agent.invoke(req).await {
                Ok(record) => {
                    print_record(&record, output);
                    exit_for(record.status)
                }
                Err(e) => {
                    eprintln!("error: {}", Shown(agent.redactor.redact(&format!("{e:#}"))));
                    ExitCode::FAILURE
                }
            }
        }
        Command::Runs { command } => runs(&agent.store, command).await,
        Command::Run => serve(agent).await,
        Command::Approve { run, output } => {
            let by = match local_approver() {
                Ok(by) => by,
                Err(e) => {
                    eprintln!("error: {}", Shown(e));
                    return ExitCode::from(EXIT_BAD_INPUT);
                }
            };
            match crate::runs::approvals::approve(&agent.store, &run, &by).await {
                Ok((plan, real)) => {
                    if output == Output::Json {
                        outln!(
                            "{}",
                            json_safe(
                                &serde_json::json!({ "plan": plan, "run": real }).to_string()
                            )
                        );
                    } else {
                        outln!(
                            "approved {} by {}; run {} is queued (the agent runs it)",
                            Shown(&plan.id),
                            Shown(&by.name),
                            Shown(&real.id)
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {}", Shown(e));
                    ExitCode::from(EXIT_BAD_INPUT)
                }
            }
        }
        Command::Reject {
            run,
            reason,
            output,
        } => {
            let by = match local_approver() {
                Ok(by) => by,
                Err(e) => {
                    eprintln!("error: {}", Shown(e));
                    return ExitCode::from(EXIT_BAD_INPUT);
                }
            };
            match crate::runs::approvals::reject(&agent.store, &run, &by, reason.as_deref()).await {
                Ok(plan) => {
                    print_record(&plan, output);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {}", Shown(e));
                    ExitCode::from(EXIT_BAD_INPUT)
                }
            }
        }
        Command::Circuits { command } => circuits(&agent, command).await,
    }
}

async fn load_agent(
    cli: &Cli,
    default_level: &str,
) -> Result<(Agent, Option<crate::telemetry::TelemetryGuard>), ExitCode> {
    let fail = |d: Diagnostics| {
        print_diagnostics(&d);
        eprintln!(
            "{} problem(s) in {}; nothing was started",
            d.0.len(),
            Shown(cli.config.display())
        );
        ExitCode::from(EXIT_BAD_INPUT)
    };
    // The log format comes from the config unless given on the command line.
    let config = Config::load(&cli.config);
    let format = match (cli.log_format, &config) {
        (Some(LogFormatArg::Json), _) => LogFormat::Json,
        (Some(LogFormatArg::Text), _) | (None, Err(_)) => LogFormat::Text,
        (None, Ok(c)) => c.log_format,
    };
    let guard = init_logging(format, default_level, config.as_ref().ok());
    let agent = Agent::from_config(config.map_err(fail)?)
        .await
        .map_err(fail)?;
    Ok((agent, guard))
}

fn exit_for(status: RunStatus) -> ExitCode {
    match status {
        // A plan waiting for approval did what was asked: plan.
        RunStatus::Succeeded | RunStatus::AwaitingApproval | RunStatus::Queued => ExitCode::SUCCESS,
        RunStatus::Denied => ExitCode::from(3),
        RunStatus::Rejected => ExitCode::from(EXIT_BAD_INPUT),
        RunStatus::Running
        | RunStatus::Interrupted
        | RunStatus::Skipped
        | RunStatus::Missed
        | RunStatus::Approved
        | RunStatus::Cancelled
        | RunStatus::Expired
        | RunStatus::Failed
        | RunStatus::Trapped
        | RunStatus::TimedOut
        | RunStatus::LimitExceeded => ExitCode::FAILURE,
    }
}

/// `warden check`: every problem in config, policies, runbooks and plugins, without
/// opening the state database or starting anything; with `connect`, also
/// the roles the targets' URLs log in as (see [`crate::credentials`]), after
/// the offline checks passed.
async fn check(config_path: &Path, connect: bool) -> ExitCode {
    let mut found = match inspect(config_path).await {
        Ok(found) => found,
        Err(d) => {
            print_diagnostics(&d);
            eprintln!("{} problem(s)", d.0.len());
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    // Connecting is worth it only for a config that is otherwise fine.
    let connected = if connect && found.diagnostics.errors().next().is_none() {
        Some(crate::credentials::check_inspection(&mut found).await)
    } else {
        None
    };
    for w in found.diagnostics.warnings() {
        eprintln!("warning: {}", Shown(w));
    }
    let errors: Vec<_> = found.diagnostics.errors().cloned().collect();
    if errors.is_empty() {
        let loaded = &found.loaded;
        outln!(
            "ok: {} target(s), {} grant(s), {} schedule(s), {} rule(s), {} plugin(s), {} \
             runbook(s) in {}",
            found.config.targets.len(),
            loaded.policies.grants.len(),
            loaded.policies.schedules.len(),
            loaded.policies.rules.len(),
            loaded.plugins.len(),
            loaded.runbooks.len(),
            Shown(config_path.display())
        );
        if let Some(count) = connected {
            outln!(
                "ok: roles checked on {count} target(s), {} warning(s)",
                found.diagnostics.warnings().count()
            );
        }
        ExitCode::SUCCESS
    } else {
        let d = Diagnostics(errors);
        print_diagnostics(&d);
        eprintln!("{} problem(s)", d.0.len());
        if connect && connected.is_none() {
            eprintln!("no target was connected to: fix the problems above first");
        }
        ExitCode::from(EXIT_BAD_INPUT)
    }
}

fn plugins_list(agent: &Agent, output: Output) -> ExitCode {
    let loaded = agent.loaded();
    match output {
        Output::Json => {
            let list: Vec<serde_json::Value> = loaded
                .plugins
                .values()
                .map(|p| {
                    serde_json::json!({
                        "name": p.manifest.name,
                        "version": p.manifest.version,
                        "digest": p.digest,
                        "path": p.path,
                        "description": p.manifest.description,
                        "capabilities": p.manifest.capabilities,
                        "target_kinds": p.manifest.target_kinds,
                        "params": p.manifest.params,
                    })
                })
                .collect();
            outln!("{}", json_safe(&serde_json::Value::Array(list).to_string()));
        }
        Output::Text => {
            for p in loaded.plugins.values() {
                let caps: Vec<&str> = p.manifest.capabilities.iter().map(|c| c.as_str()).collect();
                let digest: String = p.digest.chars().take(12).collect();
                outln!(
                    "{:<16} {:<8} sha256:{}  capabilities: {}",
                    Shown(&p.manifest.name),
                    Shown(&p.manifest.version),
                    Shown(digest),
                    caps.join(", ")
                );
            }
        }
    }
    ExitCode::SUCCESS
}

async fn runs(store: &RunStore, command: RunsCommand) -> ExitCode {
    match command {
        RunsCommand::List {
            limit,
            status,
            plugin,
            target,
            since,
            output,
        } => {
            let status = match status.as_deref().map(|s| (s, RunStatus::from_name(s))) {
                None => None,
                Some((_, Some(s))) => Some(s),
                Some((s, None)) => {
                    eprintln!(
                        "error: unknown status `{}` (one of {})",
                        Shown(s),
                        RunStatus::ALL.map(RunStatus::as_str).join(", ")
                    );
                    return ExitCode::from(EXIT_BAD_INPUT);
                }
            };
            let filter = RunFilter {
                status,
                plugin,
                target,
                since,
            };
            runs_list(store, limit, &filter, output).await
        }
        RunsCommand::Show { id, output } => runs_show(store, &id, output).await,
    }
}

async fn runs_list(store: &RunStore, limit: u32, filter: &RunFilter, output: Output) -> ExitCode {
    let list = match store.list_filtered(limit, filter).await {
        Ok(list) => list,
        Err(e) => {
            eprintln!("error: {}", Shown(format_args!("{e:#}")));
            return ExitCode::FAILURE;
        }
    };
    match output {
        Output::Json => match serde_json::to_string(&list) {
            Ok(s) => outln!("{}", json_safe(&s)),
            Err(e) => {
                eprintln!("error: {}", Shown(e));
                return ExitCode::FAILURE;
            }
        },
        Output::Text => {
            outln!(
                "{:<36}  {:<19}  {:<17} {:<16} {:<12} TRIGGER",
                "ID",
                "REQUESTED (UTC)",
                "STATUS",
                "PLUGIN",
                "TARGET"
            );
            for r in &list {
                outln!(
                    "{:<36}  {}  {:<17} {:<16} {:<12} {}{}{}",
                    Shown(&r.id),
                    r.requested_at.format("%Y-%m-%d %H:%M:%S"),
                    r.status.as_str(),
                    Shown(&r.plugin),
                    Shown(&r.target),
                    r.trigger.kind(),
                    if r.dry_run { " (dry-run)" } else { "" },
                    r.decision
                        .as_ref()
                        .map(|d| format!(" [{}]", d.kind.as_str()))
                        .unwrap_or_default()
                );
            }
        }
    }
    ExitCode::SUCCESS
}

async fn runs_show(store: &RunStore, id: &str, output: Output) -> ExitCode {
    match store.get(id).await {
        Ok(Some(r)) => {
            print_record(&r, output);
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!("error: no run with id `{}`", Shown(id));
            ExitCode::from(EXIT_BAD_INPUT)
        }
        Err(e) => {
            eprintln!("error: {}", Shown(format_args!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Prints a run record as JSON or as text for humans.
pub fn print_record(r: &RunRecord, output: Output) {
    match output {
        Output::Json => match serde_json::to_string_pretty(r) {
            Ok(s) => outln!("{}", json_safe(&s)),
            Err(e) => eprintln!("error: {}", Shown(e)),
        },
        // Every field is escaped where it is written (`Shown`); the whole
        // text once more, so that a field written without it still cannot
        // reach the terminal raw.
        Output::Text => out!("{}", ShownLines(render_text(r))),
    }
}

/// The text form of a run record. Every string that a plugin, an alert or
/// a caller of the API chose is written through [`Shown`]: on its own line
/// part, with control characters, bidi overrides and line feeds shown as
/// escapes, so no such string can add, hide or rewrite a line. Multi-line
/// finding details are split on `\n` and indented, each line escaped.
pub fn render_text(r: &RunRecord) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "run {}: {} on {} ({}{}): {}{}",
        Shown(&r.id),
        Shown(&r.plugin),
        Shown(&r.target),
        r.trigger.kind(),
        if r.dry_run { ", dry-run" } else { "" },
        r.status,
        r.duration_ms()
            .map(|ms| format!(" in {ms} ms"))
            .unwrap_or_default()
    );
    if let Some(e) = &r.error {
        let _ = writeln!(
            s,
            "error ({:?}, {}): {}",
            e.blame,
            Shown(&e.kind),
            Shown(&e.message)
        );
    }
    if let Some(d) = &r.decision {
        let _ = writeln!(s, "decision: {}: {}", d.kind.as_str(), Shown(&d.detail));
    }
    if let Some(at) = r.scheduled_for {
        let _ = writeln!(
            s,
            "scheduled for: {}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
    if let Trigger::Alert { rule, labels, .. } = &r.trigger {
        let shown: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{}={:?}", Shown(k), v))
            .collect();
        let _ = writeln!(
            s,
            "alert: rule {}, labels {{{}}}",
            Shown(rule),
            Shown(shown.join(", "))
        );
    }
    if let Some(parent) = &r.parent_run {
        let _ = writeln!(
            s,
            "started by run {parent} (depth {} of a chain of runs started by runs)",
            r.depth
        );
    }
    if r.attempt > 1 || r.retried_by.is_some() {
        let _ = writeln!(
            s,
            "attempt {}{}{}",
            r.attempt,
            r.retry_of
                .as_ref()
                .map(|id| format!(", retrying {}", Shown(id)))
                .unwrap_or_default(),
            r.retried_by
                .as_ref()
                .map(|id| format!(", retried by {}", Shown(id)))
                .unwrap_or_default()
        );
    }
    if let Some(a) = &r.approval {
        let _ = writeln!(
            s,
            "approval: {:?}{}{}{}{}",
            a.state,
            a.decided_by
                .as_ref()
                .map(|b| match &a.decided_via {
                    Some(via) => format!(" by {} ({})", Shown(b), Shown(via)),
                    None => format!(" by {}", Shown(b)),
                })
                .unwrap_or_default(),
            a.reason
                .as_ref()
                .map(|r| format!(": {}", Shown(r)))
                .unwrap_or_default(),
            a.expires_at
                .map(|t| format!(", expires {}", t.to_rfc3339()))
                .unwrap_or_default(),
            a.linked_run
                .as_ref()
                .map(|l| format!(", linked run {}", Shown(l)))
                .unwrap_or_default()
        );
        if r.status == RunStatus::AwaitingApproval {
            let _ = writeln!(s, "approve with: warden approve {}", Shown(&r.id));
        }
    }
    if let Some(rep) = &r.report {
        let _ = writeln!(s, "status: {:?} - {}", rep.status, Shown(&rep.summary));
        if !rep.findings.is_empty() {
            let _ = writeln!(s, "findings:");
            for f in &rep.findings {
                let _ = writeln!(s, "  [{:?}] {}", f.severity, Shown(&f.title));
                let detail = f.detail.strip_suffix('\n').unwrap_or(&f.detail);
                if !detail.is_empty() {
                    for line in detail.split('\n') {
                        let _ = writeln!(s, "      {}", Shown(line));
                    }
                }
                if let Some(a) = &f.suggested_action {
                    let _ = writeln!(s, "      -> {}", Shown(a));
                }
            }
        }
        if !rep.metrics.is_empty() {
            let _ = writeln!(s, "metrics:");
            for m in &rep.metrics {
                let _ = writeln!(s, "  {} = {} {}", Shown(&m.name), m.value, Shown(&m.unit));
            }
        }
    }
    let actions = r.report.as_ref().map_or(&r.actions, |rep| &rep.actions);
    if !actions.is_empty() {
        let _ = writeln!(s, "actions:");
        for a in actions {
            let _ = writeln!(
                s,
                "  {:<9} {:<15} {:<7} {}: {}{}",
                format!("{:?}", a.state).to_lowercase(),
                a.class.as_str(),
                format!("{:?}", a.origin).to_lowercase(),
                Shown(&a.target),
                Shown(&a.statement),
                a.error
                    .as_ref()
                    .map(|e| format!(" ({})", Shown(e)))
                    .unwrap_or_default()
            );
        }
    }
    if !r.logs.is_empty() || r.logs_dropped > 0 {
        let _ = writeln!(s, "log:");
        for l in &r.logs {
            let _ = writeln!(
                s,
                "  {} {:<5} {}",
                l.at.format("%H:%M:%S%.3f"),
                Shown(&l.level),
                Shown(&l.message)
            );
        }
        if r.logs_dropped > 0 {
            let _ = writeln!(s, "  ({} more lines dropped at the cap)", r.logs_dropped);
        }
    }
    s
}

/// `warden run`: the agent (see [`crate::service`]) until SIGINT/SIGTERM,
/// then a drain.
async fn serve(agent: Agent) -> ExitCode {
    // Listen for signals before saying we run, so a prompt SIGTERM is handled.
    #[cfg(unix)]
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot listen for SIGTERM: {}", Shown(e));
            return ExitCode::FAILURE;
        }
    };
    let shutdown = async move {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    };
    let agent = std::sync::Arc::new(agent);
    match crate::service::serve(agent.clone(), shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", Shown(agent.redactor.redact(&format!("{e:#}"))));
            ExitCode::FAILURE
        }
    }
}
