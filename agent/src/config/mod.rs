//! The agent configuration, `warden.toml`: where plugins and policies live,
//! where state goes, and the databases (targets) plugins may work on.
//!
//! ```toml
//! plugin_dir = "plugins"
//! policy_dir = "policies"
//!
//! [[target]]
//! name = "app"
//! kind = "postgres"
//! url_env = "APP_DATABASE_URL"
//! # Optional: every read-class call logs in as a role that may only read.
//! read_url_env = "APP_READ_DATABASE_URL"
//!
//! [[target]]
//! name = "quickstart"
//! kind = "sqlite"
//! path = "quickstart.db"
//!
//! [[store]]
//! name = "local"
//! kind = "local"
//! root = "/var/lib/warden/artifacts"
//! ```
//!
//! ```no_run
//! # fn main() -> Result<(), warden::diag::Diagnostics> {
//! let config = warden::config::Config::load("warden.toml".as_ref())?;
//! for target in &config.targets {
//!     println!("{} ({})", target.name, target.kind); // never prints the URL
//!     // The credentials a `read` call uses: the read URL, else the main one.
//!     let _url = target.url_for(warden::capability::CapabilityClass::Read);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Relative paths are relative to the folder of the config file. Loading
//! reports every problem at once (see [`crate::diag`]) and never puts a
//! connection URL, or any part of one, in an error message.

pub(crate) mod document;
mod notify;
mod secret;
pub mod store;
pub(crate) mod units;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;
use toml::Spanned;

use crate::capability::{CapabilityClass, TargetKind};
use crate::diag::{Diagnostic, Diagnostics};
use document::{Document, Table};
pub use notify::{ApproverConfig, NotifyConfig, NotifyEvent, NotifyKind, read_ca_file};
pub use secret::Secret;
pub(crate) use secret::percent_decode;

/// Default `state_db`, relative to the config file's folder.
pub const DEFAULT_STATE_DB: &str = "state/warden.db";
/// Name of the default `cache_dir`, in the folder of `state_db`.
pub const DEFAULT_CACHE_DIR_NAME: &str = "cache";
/// Default `state_keep`: 30 days.
pub const DEFAULT_STATE_KEEP: std::time::Duration =
    std::time::Duration::from_secs(30 * 24 * 60 * 60);

/// The loaded agent configuration; every path is absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The config file itself.
    pub file: PathBuf,
    /// Folder of plugin components (`*.wasm`).
    pub plugin_dir: PathBuf,
    /// Folder of policies (`*.toml`).
    pub policy_dir: PathBuf,
    /// The SQLite state database.
    pub state_db: PathBuf,
    /// How long finished runs and accepted alerts are kept in `state_db`
    /// (see [`crate::runs::retention`]).
    pub state_keep: std::time::Duration,
    /// Cache of compiled components.
    pub cache_dir: PathBuf,
    pub log_format: LogFormat,
    /// In the order of the file; names are unique.
    pub targets: Vec<Target>,
    /// The HTTP API (`warden run`), if `[http]` is set.
    pub http: Option<HttpConfig>,
    /// OTLP trace export, if `[telemetry]` sets an endpoint.
    pub otlp: Option<OtlpConfig>,
    /// Artifact stores (`[[store]]`), in the order of the file; names are unique.
    pub stores: Vec<store::StoreConfig>,
    /// Folder of the PostgreSQL client tools (`pg_dump`, `pg_restore`), from
    /// `[tools] pg_bin_dir`; `None` picks the newest installed.
    pub pg_bin_dir: Option<PathBuf>,
    /// Folder of runbooks (`*.toml`), from `[runbooks] dir`; `None` loads
    /// none.
    pub runbooks_dir: Option<PathBuf>,
    /// Bounds on runs started by runs (`runs.start`), from `[runs]`.
    pub runs: RunLimits,
    /// Where run events are sent (`[[notify]]`), in the order of the file.
    pub notify: Vec<NotifyConfig>,
}

/// `[runs]`: bounds on runs that plugins start through `runs.start`
/// (each start also needs the plugin in the caller's grant `run_plugins`,
/// and counts against that grant's `max_started_runs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// Deepest a run started by runs may be: a run requested by an alert,
    /// a schedule or a person has depth 0, a run it starts depth 1, ...; a
    /// run at this depth may start none.
    pub max_chain_depth: u32,
    /// A start is refused while the started plugin has this many runs
    /// queued (from any source).
    pub max_queued_per_plugin: u32,
}

impl RunLimits {
    /// Default `max_chain_depth`: 3.
    pub const fn default_max_chain_depth() -> u32 {
        3
    }

    /// Largest `max_chain_depth`: 16. Every level multiplies the runs one
    /// request can lead to by the fan-out; a chain deeper than this is a
    /// loop, not a procedure.
    pub const fn max_max_chain_depth() -> u32 {
        16
    }

    /// Default `max_queued_per_plugin`: 100.
    pub const fn default_max_queued_per_plugin() -> u32 {
        100
    }
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            max_chain_depth: RunLimits::default_max_chain_depth(),
            max_queued_per_plugin: RunLimits::default_max_queued_per_plugin(),
        }
    }
}

/// `[http]`: the API `warden run` serves (webhook, runs, metrics, health).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub listen: std::net::SocketAddr,
    /// The bearer token every `/api/` call must carry.
    pub token: Secret,
    /// Largest request body accepted, in bytes.
    pub max_body: u64,
    /// Time a client has to send a complete request head (request line and
    /// headers): from accepting the connection, or from the first byte of a
    /// later request on a kept-alive connection.
    pub header_timeout: Duration,
    /// Time from a complete request head to the answer: reading the body
    /// and handling the request. Past it the request is answered 408 and
    /// the connection closed.
    pub request_timeout: Duration,
    /// Time a kept-alive connection may wait, after an answer, for the first
    /// byte of its next request.
    pub idle_timeout: Duration,
    /// Most connections open at once (see `HttpFile::max_connections`).
    pub max_connections: usize,
    /// The people who may approve and reject plans, each with their own
    /// token (`[[http.approver]]`). The shared `token` never may.
    pub approvers: Vec<ApproverConfig>,
}

/// Default `[http] max_body`: 1 MiB.
pub const DEFAULT_HTTP_MAX_BODY: u64 = 1 << 20;
/// Default `[http] header_timeout`.
pub const DEFAULT_HTTP_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `[http] request_timeout`.
pub const DEFAULT_HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `[http] idle_timeout`.
pub const DEFAULT_HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `[http] max_connections`: half the usual open-file limit (1024).
pub const DEFAULT_HTTP_MAX_CONNECTIONS: usize = 512;
/// Largest `[http] max_connections` accepted.
pub const MAX_HTTP_MAX_CONNECTIONS: usize = 65_536;

/// `[telemetry]`: where traces go.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    /// Header name and value (values are secrets, read from the environment).
    pub headers: Vec<(String, Secret)>,
    pub sampling_ratio: f64,
    pub service_name: String,
}

/// How spans are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    #[serde(rename = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

/// `[http]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    /// Address and port to listen on, like `"127.0.0.1:9470"`. Required.
    listen: Option<Spanned<String>>,
    /// Environment variable holding the bearer token for `/api/`.
    token_env: Option<Spanned<String>>,
    /// File holding the bearer token (whitespace around it ignored).
    token_file: Option<Spanned<PathBuf>>,
    /// Largest request body, like `"1MiB"` (the default).
    max_body: Option<Spanned<units::HumanSize>>,
    /// Time a client has to send a complete request head, like `"10s"` (the
    /// default): counted from accepting the connection, or from the first
    /// byte of a later request on a kept-alive connection. A client still
    /// sending its head then is disconnected.
    header_timeout: Option<Spanned<units::HumanDuration>>,
    /// Time from a complete request head to the answer, like `"30s"` (the
    /// default): reading the body (at most `max_body`) and handling the
    /// request. A request not answered by then is answered 408 and its
    /// connection closed; an answer not taken by the client within one more
    /// second is cut off.
    request_timeout: Option<Spanned<units::HumanDuration>>,
    /// Time a kept-alive connection may wait for its next request after an
    /// answer, like `"60s"` (the default). Then it is closed.
    idle_timeout: Option<Spanned<units::HumanDuration>>,
    /// Most connections open at once; default 512, at most 65536. At the
    /// cap, a new connection takes the place of the one that has waited
    /// longest without a complete request head (idle or slow); if every
    /// connection carries a request, the new one is answered 503 and closed.
    /// Keep it well under the open-file limit (`ulimit -n`, systemd's
    /// `LimitNOFILE`): the agent needs files for its state database, plugins
    /// and up to 64 refusals in progress too.
    max_connections: Option<Spanned<u64>>,
    /// The people who may approve plans through the API (`[[http.approver]]`).
    approver: Option<Vec<Spanned<notify::ApproverFile>>>,
}

/// `[telemetry]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TelemetryFile {
    /// OTLP endpoint, like `"http://127.0.0.1:4317"` (grpc) or
    /// `"http://127.0.0.1:4318/v1/traces"` (http/protobuf). Without it,
    /// no spans are exported.
    otlp_endpoint: Option<Spanned<String>>,
    /// `"grpc"` (default) or `"http/protobuf"`.
    otlp_protocol: Option<Spanned<OtlpProtocol>>,
    /// Headers to send, by name, each naming the environment variable that
    /// holds its value (an API key is a secret): `{ "x-api-key" = "OTLP_KEY" }`.
    otlp_headers_env: Option<BTreeMap<String, Spanned<String>>>,
    /// Share of traces kept, 0.0 to 1.0 (default 1.0); a sampled parent
    /// (from `traceparent`) is always followed.
    sampling_ratio: Option<Spanned<f64>>,
    /// `service.name` of the spans; default `"warden"`.
    service_name: Option<String>,
}

/// One `[[store]]` table: where the host keeps artifacts (backups).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    /// The name policies (`artifacts = [...]` in a grant) and plugins use.
    /// Same rules as a target name. Unique. Required.
    name: Option<Spanned<String>>,
    /// `"local"`: a folder of this host. Required.
    kind: Option<Spanned<StoreKindFile>>,
    /// local: the folder, dedicated to the store. Relative to the folder of
    /// this file. Required for `local`.
    root: Option<Spanned<PathBuf>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StoreKindFile {
    Local,
}

/// `[tools]`: external programs the host runs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolsFile {
    /// Folder holding `pg_dump` and `pg_restore`. Default: the newest
    /// `/usr/lib/postgresql/<version>/bin`, else `PATH`. Relative to the
    /// folder of this file.
    pg_bin_dir: Option<Spanned<PathBuf>>,
}

/// `[runbooks]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunbooksFile {
    /// Folder holding the runbooks (`*.toml`, see
    /// `policies/runbooks/README.md`). Required in the table. Relative to
    /// the folder of this file.
    dir: Option<Spanned<PathBuf>>,
}

/// `[runs]` as written: bounds on runs started by runs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunsFile {
    /// Longest chain of runs started by runs (`runs.start`), A starting B
    /// starting C, self-recursion and cycles included: a run requested by
    /// an alert, a schedule or a person has depth 0, a run it starts depth
    /// 1, and so on; a run at this depth may start no other. 1 to 16;
    /// default 3.
    max_chain_depth: Option<Spanned<i64>>,
    /// Most queued runs of one plugin for `runs.start` to queue another:
    /// a start is refused while the started plugin has this many runs
    /// queued, whoever queued them. At least 1; default 100.
    max_queued_per_plugin: Option<Spanned<i64>>,
}

/// How the agent writes its logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A database plugins may work on, if a policy grants it.
///
/// It may hold separate credentials per capability class: every
/// `read`-class call uses [`Target::url_for`]`(Read)`, the read URL when
/// `read_url_env` / `read_url_file` is set, so that a role with SELECT
/// and the monitoring roles only answers read calls, and the main URL
/// (the role that may vacuum, signal sessions, ...) answers the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub kind: TargetKind,
    /// The main connection URL (for sqlite, a `sqlite:` URL with an
    /// absolute path when it came from `path` or a relative `url`): every
    /// call not of the `read` class, and `read` calls too when there is no
    /// read URL. Prefer [`Target::url_for`] to pick the URL of a call.
    pub url: Secret,
    /// The URL of `read`-class calls, from `read_url_env` / `read_url_file`
    /// (postgres and mongodb only).
    read_url: Option<Secret>,
}

impl Target {
    /// A target with one URL for every call.
    pub fn new(name: impl Into<String>, kind: TargetKind, url: Secret) -> Target {
        Target {
            name: name.into(),
            kind,
            url,
            read_url: None,
        }
    }

    /// This target with `read_url` for its `read`-class calls.
    #[must_use]
    pub fn with_read_url(mut self, read_url: Secret) -> Target {
        self.read_url = Some(read_url);
        self
    }

    /// The URL a call of `class` connects with: the read URL for `read`
    /// when one is set, the main URL otherwise.
    pub fn url_for(&self, class: CapabilityClass) -> &Secret {
        match (class, &self.read_url) {
            (CapabilityClass::Read, Some(read_url)) => read_url,
            (
                CapabilityClass::Read
                | CapabilityClass::Maintenance
                | CapabilityClass::Ddl
                | CapabilityClass::Write
                | CapabilityClass::SessionControl,
                _,
            ) => &self.url,
        }
    }

    /// The URL of `read`-class calls, if set apart from the main URL.
    pub fn read_url(&self) -> Option<&Secret> {
        self.read_url.as_ref()
    }

    /// Every URL of this target: the main one, then the read URL if set.
    pub fn urls(&self) -> impl Iterator<Item = &Secret> {
        std::iter::once(&self.url).chain(self.read_url.as_ref())
    }

    /// The strings to redact for this target: the fragments of each of its
    /// URLs (see [`Secret::password_fragments`]).
    pub fn password_fragments(&self) -> Vec<String> {
        self.urls().flat_map(Secret::password_fragments).collect()
    }
}

/// `warden.toml` as written. Required fields are `Option`s too, checked by
/// `Table::require`, so that all missing ones are reported.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// Folder holding the plugin components (`*.wasm`). Required. Relative to
    /// the folder of this file.
    plugin_dir: Option<Spanned<PathBuf>>,
    /// Folder holding the policies (`*.toml`; subfolders are ignored, so
    /// examples can live in `policies/examples/`). Required. Relative to the
    /// folder of this file.
    policy_dir: Option<Spanned<PathBuf>>,
    /// The SQLite database where the agent keeps its state (runs, schedules).
    /// Default `"state/warden.db"`, relative to the folder of this file.
    state_db: Option<Spanned<PathBuf>>,
    /// How long `warden run` keeps history in `state_db`: finished runs
    /// (with their reports and logs) and accepted alerts older than this are
    /// deleted, a batch at a time, every few minutes. A duration like
    /// `"30d"` (the default), `"12h"` or `"1y"`; more than zero. Runs still
    /// queued, running or awaiting approval are never deleted. Runs of alert
    /// rules are kept at least as long as the longest `dedup_window`,
    /// `cooldown` and throttle `per` of the policies, whatever this says:
    /// the guardrails are rebuilt from them at start (`warden check` warns
    /// when this is shorter).
    state_keep: Option<Spanned<units::HumanDuration>>,
    /// Folder caching compiled plugin components. Default: `cache` next to
    /// `state_db`. Relative to the folder of this file.
    cache_dir: Option<Spanned<PathBuf>>,
    /// Log format: `"text"` (default) or `"json"`.
    #[serde(default = "default_log_format")]
    log_format: LogFormat,
    /// The databases, as `[[target]]` tables: see `TargetFile`. (They are
    /// read one table at a time; this field only names them for serde.)
    #[serde(default, rename = "target")]
    _target: Option<IgnoredAny>,
    /// `[http]`: see `HttpFile` (read on its own).
    #[serde(default, rename = "http")]
    _http: Option<IgnoredAny>,
    /// `[telemetry]`: see `TelemetryFile` (read on its own).
    #[serde(default, rename = "telemetry")]
    _telemetry: Option<IgnoredAny>,
    /// `[[store]]` tables: see `StoreFile` (read one at a time).
    #[serde(default, rename = "store")]
    _store: Option<IgnoredAny>,
    /// `[tools]`: see `ToolsFile` (read on its own).
    #[serde(default, rename = "tools")]
    _tools: Option<IgnoredAny>,
    /// `[runbooks]`: see `RunbooksFile` (read on its own).
    #[serde(default, rename = "runbooks")]
    _runbooks: Option<IgnoredAny>,
    /// `[runs]`: see `RunsFile` (read on its own).
    #[serde(default, rename = "runs")]
    _runs: Option<IgnoredAny>,
}

/// One `[[target]]` table: a database plugins may work on. Give its
/// connection URL in exactly one of `url_env`, `url_file`, `path` (sqlite)
/// or `url` (sqlite), and optionally the URL of `read`-class calls in one
/// of `read_url_env` or `read_url_file` (postgres, mongodb).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFile {
    /// The name policies and plugins use for this database: lowercase
    /// letters, digits, `_` and `-`, starting with a letter or a digit.
    /// Unique. Required.
    name: Option<Spanned<String>>,
    /// The kind of database: `"sqlite"`, `"postgres"` or `"mongodb"`.
    /// Required.
    kind: Option<Spanned<TargetKind>>,
    /// Name of the environment variable holding the connection URL
    /// (`postgres://...`, `postgresql://...`, `mongodb://...`,
    /// `mongodb+srv://...` or `sqlite://...`).
    url_env: Option<Spanned<String>>,
    /// File holding the connection URL, surrounding whitespace ignored.
    /// Relative to the folder of this file.
    url_file: Option<Spanned<PathBuf>>,
    /// sqlite only: the database file. Relative to the folder of this file.
    path: Option<Spanned<PathBuf>>,
    /// sqlite only: the connection URL, `sqlite://FILE?OPTIONS`; a relative
    /// FILE is relative to the folder of this file. (Other kinds would put
    /// credentials in this file: use `url_env` or `url_file`.)
    url: Option<Spanned<String>>,
    /// postgres and mongodb only, optional: name of the environment
    /// variable holding the connection URL of every `read`-class call, for
    /// a role that may only read (see "Recommended database roles" in the
    /// README). The same database as the main URL, with other credentials.
    /// Without it, reads use the main URL.
    read_url_env: Option<Spanned<String>>,
    /// postgres and mongodb only, optional: file holding the URL of every
    /// `read`-class call (like `read_url_env`), surrounding whitespace
    /// ignored. Relative to the folder of this file.
    read_url_file: Option<Spanned<PathBuf>>,
}

const fn default_log_format() -> LogFormat {
    LogFormat::Text
}

impl Config {
    /// Loads and checks `path`, reading connection URLs from the process
    /// environment. Returns every problem found, or the whole config.
    pub fn load(path: &Path) -> Result<Config, Diagnostics> {
        Config::load_with_env(path, |name| std::env::var_os(name))
    }

    /// [`Config::load`] with `env` in place of the process environment.
    pub fn load_with_env(
        path: &Path,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Config, Diagnostics> {
        let file = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let text = fs::read_to_string(&file)
            .map_err(|e| Diagnostic::new(&file, "", format!("cannot read the config file: {e}")))?;
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();

        let mut diags = Diagnostics::new();
        let Some(mut document) = Document::parse(&file, &text, &mut diags) else {
            return Err(diags);
        };
        let targets = document.take_array::<TargetFile>("target", &mut diags);
        let http = document.take_table::<HttpFile>("http", &mut diags);
        let telemetry = document.take_table::<TelemetryFile>("telemetry", &mut diags);
        let stores = document.take_array::<StoreFile>("store", &mut diags);
        let tools = document.take_table::<ToolsFile>("tools", &mut diags);
        let runbooks = document.take_table::<RunbooksFile>("runbooks", &mut diags);
        let runs = document.take_table::<RunsFile>("runs", &mut diags);
        let notify = document.take_array::<notify::NotifyFile>("notify", &mut diags);
        let root = document.finish::<ConfigFile>(&mut diags);

        let resolver = Resolver {
            dir: &dir,
            env: &env,
        };
        let targets = resolver.targets(&targets, &mut diags);
        let http = http.and_then(|t| resolver.http(&t, &mut diags));
        let otlp = telemetry.and_then(|t| resolver.telemetry(&t, &mut diags));
        let stores = resolver.stores(&stores, &mut diags);
        let pg_bin_dir = tools.and_then(|t| {
            t.value
                .pg_bin_dir
                .as_ref()
                .map(|p| resolver.dir.join(p.get_ref()))
        });
        let runbooks_dir = runbooks.and_then(|t| resolver.runbooks_dir(&t, &mut diags));
        let runs = runs.map_or_else(RunLimits::default, |t| run_limits(&t, &mut diags));
        let notify = resolver.notifies(&notify, &mut diags);
        let config = root
            .and_then(|root| resolver.config(&root, targets, &mut diags))
            .map(|config| Config {
                http,
                otlp,
                stores,
                pg_bin_dir,
                runbooks_dir,
                runs,
                notify,
                ..config
            });
        diags.sort_by_line();
        match config {
            Some(config) => diags.into_result(config),
            None => Err(diags),
        }
    }

    /// The target called `name`.
    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// The store called `name`.
    pub fn store(&self, name: &str) -> Option<&store::StoreConfig> {
        self.stores.iter().find(|s| s.name == name)
    }

    /// The names of the targets, in order.
    pub fn target_names(&self) -> Vec<&str> {
        self.targets.iter().map(|t| t.name.as_str()).collect()
    }
}

/// `[runs]`, checked: each field within its bounds, else its default and
/// a diagnostic.
fn run_limits(table: &Table<'_, RunsFile>, diags: &mut Diagnostics) -> RunLimits {
    let file = &table.value;
    let mut bounded = |value: &Option<Spanned<i64>>,
                       field: &str,
                       default: u32,
                       range: std::ops::RangeInclusive<u32>,
                       hint: &str| {
        let Some(value) = value else {
            return default;
        };
        match u32::try_from(*value.get_ref()) {
            Ok(n) if range.contains(&n) => n,
            _ => {
                diags.push(table.source.error(
                    &value.span(),
                    table.field(field),
                    format!(
                        "{} is out of range: {hint} (default {default})",
                        value.get_ref()
                    ),
                ));
                default
            }
        }
    };
    let max_chain_depth = bounded(
        &file.max_chain_depth,
        "max_chain_depth",
        RunLimits::default_max_chain_depth(),
        1..=RunLimits::max_max_chain_depth(),
        &format!(
            "use 1 to {}; to let no plugin start runs, list none in any grant's `run_plugins`",
            RunLimits::max_max_chain_depth()
        ),
    );
    let max_queued_per_plugin = bounded(
        &file.max_queued_per_plugin,
        "max_queued_per_plugin",
        RunLimits::default_max_queued_per_plugin(),
        1..=u32::MAX,
        "use at least 1; to let no plugin start runs, list none in any grant's `run_plugins`",
    );
    RunLimits {
        max_chain_depth,
        max_queued_per_plugin,
    }
}

/// The duration in field `name` of `table`, or `default` when it is not
/// set; `None` after reporting a zero duration.
fn positive_duration<T>(
    table: &Table<'_, T>,
    name: &str,
    value: &Option<Spanned<units::HumanDuration>>,
    default: Duration,
    diags: &mut Diagnostics,
) -> Option<Duration> {
    let Some(value) = value else {
        return Some(default);
    };
    let duration = value.get_ref().0;
    if duration.is_zero() {
        diags.push(table.source.error(
            &value.span(),
            table.field(name),
            format!(
                "must be longer than zero (default \"{}\")",
                humantime::format_duration(default)
            ),
        ));
        return None;
    }
    Some(duration)
}

/// True for `[a-z0-9][a-z0-9_-]*`.
pub fn is_valid_target_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// True for `[A-Za-z_][A-Za-z0-9_]*`.
fn is_valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The fields that give a target's connection URL.
const URL_FIELDS: [&str; 4] = ["url_env", "url_file", "path", "url"];
/// The fields that give a target's URL for `read`-class calls.
const READ_URL_FIELDS: [&str; 2] = ["read_url_env", "read_url_file"];

/// What a URL field gives, for messages: the main URL or the read URL.
#[derive(Clone, Copy)]
enum UrlUse {
    Main,
    Read,
}

impl UrlUse {
    /// Completes "set it to the ...".
    const fn what(self) -> &'static str {
        match self {
            UrlUse::Main => "connection URL",
            UrlUse::Read => "connection URL of read-class calls",
        }
    }
}

/// Turns the file structs into domain types, checking them.
struct Resolver<'a, E> {
    /// The folder of the config file.
    dir: &'a Path,
    env: &'a E,
}

impl<E: Fn(&str) -> Option<OsString>> Resolver<'_, E> {
    fn config(
        &self,
        root: &Table<'_, ConfigFile>,
        targets: Vec<Target>,
        diags: &mut Diagnostics,
    ) -> Option<Config> {
        let file = &root.value;
        let plugin_dir = root.require("plugin_dir", &file.plugin_dir, diags);
        let policy_dir = root.require("policy_dir", &file.policy_dir, diags);
        let plugin_dir = self.path(root, "plugin_dir", plugin_dir, diags);
        let policy_dir = self.path(root, "policy_dir", policy_dir, diags);
        let state_db = match &file.state_db {
            Some(state_db) => self.path(root, "state_db", Some(state_db), diags)?,
            None => self.dir.join(DEFAULT_STATE_DB),
        };
        let state_keep = match &file.state_keep {
            Some(keep) if keep.get_ref().0.is_zero() => {
                diags.push(root.source.error(
                    &keep.span(),
                    root.field("state_keep"),
                    "must be more than zero (history would be deleted as soon as it is \
                     written); give a duration like \"30d\"",
                ));
                DEFAULT_STATE_KEEP
            }
            Some(keep) => keep.get_ref().0,
            None => DEFAULT_STATE_KEEP,
        };
        let cache_dir = match &file.cache_dir {
            Some(cache_dir) => self.path(root, "cache_dir", Some(cache_dir), diags)?,
            None => state_db
                .parent()
                .unwrap_or(self.dir)
                .join(DEFAULT_CACHE_DIR_NAME),
        };
        Some(Config {
            file: root.source.file.to_path_buf(),
            plugin_dir: plugin_dir?,
            policy_dir: policy_dir?,
            state_db,
            state_keep,
            cache_dir,
            log_format: file.log_format,
            targets,
            http: None,
            otlp: None,
            stores: Vec::new(),
            pg_bin_dir: None,
            runbooks_dir: None,
            runs: RunLimits::default(),
            notify: Vec::new(),
        })
    }

    /// `[runbooks] dir`, resolved against the config folder.
    fn runbooks_dir(
        &self,
        table: &Table<'_, RunbooksFile>,
        diags: &mut Diagnostics,
    ) -> Option<PathBuf> {
        let dir = table.require("dir", &table.value.dir, diags)?;
        if dir.get_ref().as_os_str().is_empty() {
            diags.push(
                table
                    .source
                    .error(&dir.span(), table.field("dir"), "must not be empty"),
            );
            return None;
        }
        Some(self.dir.join(dir.get_ref()))
    }

    fn http(&self, table: &Table<'_, HttpFile>, diags: &mut Diagnostics) -> Option<HttpConfig> {
        let file = &table.value;
        let listen = table.require("listen", &file.listen, diags).and_then(|l| {
            match l.get_ref().parse::<std::net::SocketAddr>() {
                Ok(a) => Some(a),
                Err(e) => {
                    diags.push(table.source.error(
                        &l.span(),
                        table.field("listen"),
                        format!(
                            "{:?} is not an address and port like \"127.0.0.1:9470\": {e}",
                            l.get_ref()
                        ),
                    ));
                    None
                }
            }
        });
        let token = self.token(table, diags);
        let max_body = file
            .max_body
            .as_ref()
            .map_or(DEFAULT_HTTP_MAX_BODY, |m| m.get_ref().0);
        if max_body == 0
            && let Some(m) = &file.max_body
        {
            {
                diags.push(table.source.error(
                    &m.span(),
                    table.field("max_body"),
                    "must be greater than zero",
                ));
            }
        }
        let header_timeout = positive_duration(
            table,
            "header_timeout",
            &file.header_timeout,
            DEFAULT_HTTP_HEADER_TIMEOUT,
            diags,
        );
        let request_timeout = positive_duration(
            table,
            "request_timeout",
            &file.request_timeout,
            DEFAULT_HTTP_REQUEST_TIMEOUT,
            diags,
        );
        let idle_timeout = positive_duration(
            table,
            "idle_timeout",
            &file.idle_timeout,
            DEFAULT_HTTP_IDLE_TIMEOUT,
            diags,
        );
        let max_connections = match &file.max_connections {
            None => Some(DEFAULT_HTTP_MAX_CONNECTIONS),
            Some(m) => match usize::try_from(*m.get_ref()) {
                Ok(n) if (1..=MAX_HTTP_MAX_CONNECTIONS).contains(&n) => Some(n),
                _ => {
                    diags.push(table.source.error(
                        &m.span(),
                        table.field("max_connections"),
                        format!(
                            "must be between 1 and {MAX_HTTP_MAX_CONNECTIONS} (default {DEFAULT_HTTP_MAX_CONNECTIONS}), not {}",
                            m.get_ref()
                        ),
                    ));
                    None
                }
            },
        };
        let approvers = self.approvers(
            table,
            file.approver.as_deref().unwrap_or_default(),
            token.as_ref(),
            diags,
        );
        Some(HttpConfig {
            approvers,
            listen: listen?,
            token: token?,
            max_body,
            header_timeout: header_timeout?,
            request_timeout: request_timeout?,
            idle_timeout: idle_timeout?,
            max_connections: max_connections?,
        })
    }

    /// The API token, from `token_env` or `token_file`.
    fn token(&self, table: &Table<'_, HttpFile>, diags: &mut Diagnostics) -> Option<Secret> {
        let file = &table.value;
        let check = |value: String,
                     what: String,
                     span: &Range<usize>,
                     field: &str,
                     diags: &mut Diagnostics| {
            let value = value.trim().to_string();
            if value.len() < 16 {
                diags.push(table.source.error(
                    span,
                    table.field(field),
                    format!(
                        "the token in {what} is shorter than 16 characters: use a long random one"
                    ),
                ));
                None
            } else {
                Some(Secret::new(value))
            }
        };
        match (&file.token_env, &file.token_file) {
            (Some(_), Some(f)) => {
                diags.push(table.source.error(
                    &f.span(),
                    table.field("token_file"),
                    "set only one of `token_env` and `token_file`",
                ));
                None
            }
            (None, None) => {
                diags.push(table.source.error(
                    &table.span,
                    table.path.clone(),
                    "the HTTP API needs a bearer token: set `token_env` (an environment variable) or `token_file`",
                ));
                None
            }
            (Some(env_name), None) => {
                let name = env_name.get_ref();
                match (self.env)(name).and_then(|v| v.into_string().ok()) {
                    Some(v) => check(
                        v,
                        format!("environment variable `{name}`"),
                        &env_name.span(),
                        "token_env",
                        diags,
                    ),
                    None => {
                        diags.push(table.source.error(
                            &env_name.span(),
                            table.field("token_env"),
                            format!("environment variable `{name}` is not set (or not UTF-8)"),
                        ));
                        None
                    }
                }
            }
            (None, Some(path)) => {
                let full = self.dir.join(path.get_ref());
                match fs::read_to_string(&full) {
                    Ok(v) => check(
                        v,
                        format!("file {}", full.display()),
                        &path.span(),
                        "token_file",
                        diags,
                    ),
                    Err(e) => {
                        diags.push(table.source.error(
                            &path.span(),
                            table.field("token_file"),
                            format!("cannot read the token file {}: {e}", full.display()),
                        ));
                        None
                    }
                }
            }
        }
    }

    fn telemetry(
        &self,
        table: &Table<'_, TelemetryFile>,
        diags: &mut Diagnostics,
    ) -> Option<OtlpConfig> {
        let file = &table.value;
        let endpoint = file.otlp_endpoint.as_ref()?;
        if url::Url::parse(endpoint.get_ref()).is_err() || !endpoint.get_ref().starts_with("http") {
            diags.push(table.source.error(
                &endpoint.span(),
                table.field("otlp_endpoint"),
                "must be an http:// or https:// URL",
            ));
        }
        let sampling_ratio = file.sampling_ratio.as_ref().map_or(1.0, |r| *r.get_ref());
        if !(0.0..=1.0).contains(&sampling_ratio)
            && let Some(r) = &file.sampling_ratio
        {
            {
                diags.push(table.source.error(
                    &r.span(),
                    table.field("sampling_ratio"),
                    "must be between 0.0 and 1.0",
                ));
            }
        }
        let mut headers = Vec::new();
        for (name, env_name) in file.otlp_headers_env.iter().flatten() {
            match (self.env)(env_name.get_ref()).and_then(|v| v.into_string().ok()) {
                Some(v) => headers.push((name.clone(), Secret::new(v.trim()))),
                None => diags.push(table.source.error(
                    &env_name.span(),
                    format!("{}.{name}", table.field("otlp_headers_env")),
                    format!(
                        "environment variable `{}` is not set (or not UTF-8)",
                        env_name.get_ref()
                    ),
                )),
            }
        }
        Some(OtlpConfig {
            endpoint: endpoint.get_ref().clone(),
            protocol: file
                .otlp_protocol
                .as_ref()
                .map_or(OtlpProtocol::Grpc, |p| *p.get_ref()),
            headers,
            sampling_ratio,
            service_name: file
                .service_name
                .clone()
                .unwrap_or_else(|| "warden".to_string()),
        })
    }

    /// `path` resolved against the config folder; reports an empty path.
    fn path(
        &self,
        root: &Table<'_, ConfigFile>,
        field: &str,
        path: Option<&Spanned<PathBuf>>,
        diags: &mut Diagnostics,
    ) -> Option<PathBuf> {
        let path = path?;
        if path.get_ref().as_os_str().is_empty() {
            diags.push(
                root.source
                    .error(&path.span(), root.field(field), "must not be empty"),
            );
            return None;
        }
        Some(self.dir.join(path.get_ref()))
    }

    fn stores(
        &self,
        tables: &[Table<'_, StoreFile>],
        diags: &mut Diagnostics,
    ) -> Vec<store::StoreConfig> {
        use store::{StoreConfig, StoreKind};
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut stores = Vec::new();
        for table in tables {
            let file = &table.value;
            let name = table.require("name", &file.name, diags);
            let kind = table.require("kind", &file.kind, diags);
            let (Some(name), Some(kind)) = (name, kind) else {
                continue;
            };
            let store_kind = match kind.get_ref() {
                StoreKindFile::Local => {
                    let Some(root) = table.require("root", &file.root, diags) else {
                        continue;
                    };
                    StoreKind::Local {
                        root: self.dir.join(root.get_ref()),
                    }
                }
            };
            let store = StoreConfig {
                name: name.get_ref().clone(),
                kind: store_kind,
            };
            if let Err(problem) = store.validate() {
                let field = if problem.contains("root") {
                    "root"
                } else {
                    "name"
                };
                let span = match (field, &file.root) {
                    ("root", Some(root)) => root.span(),
                    _ => name.span(),
                };
                diags.push(table.source.error(&span, table.field(field), problem));
                continue;
            }
            if let Some(line) = seen.get(&store.name) {
                diags.push(table.source.error(
                    &name.span(),
                    table.field("name"),
                    format!(
                        "store `{}` is already defined at line {line}; store names must be unique",
                        store.name
                    ),
                ));
                continue;
            }
            seen.insert(store.name.clone(), table.source.line(&name.span()));
            stores.push(store);
        }
        stores
    }

    fn targets(&self, tables: &[Table<'_, TargetFile>], diags: &mut Diagnostics) -> Vec<Target> {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        let mut targets = Vec::new();
        for table in tables {
            let file = &table.value;
            let name = table.require("name", &file.name, diags);
            let kind = table.require("kind", &file.kind, diags);
            let mut valid = true;
            if let Some(name) = name {
                let (text, span) = (name.get_ref().as_str(), name.span());
                if !is_valid_target_name(text) {
                    valid = false;
                    diags.push(table.source.error(
                        &span,
                        table.field("name"),
                        format!(
                            "invalid target name {text:?}: use lowercase letters, digits, `_` \
                             and `-`, starting with a letter or a digit"
                        ),
                    ));
                } else if let Some(line) = seen.get(text) {
                    valid = false;
                    diags.push(table.source.error(
                        &span,
                        table.field("name"),
                        format!(
                            "target `{text}` is already defined at line {line}; target names \
                             must be unique"
                        ),
                    ));
                } else {
                    seen.insert(text, table.source.line(&span));
                }
            }
            // Without a kind the URL cannot be checked; with a connection
            // field dropped for a bad value (reported), "no URL" or "several
            // URLs" would be noise.
            let url_broken = URL_FIELDS.iter().any(|field| table.is_broken(field));
            let url = match kind {
                Some(kind) if !url_broken => {
                    let shown = name.map_or("?", |name| name.get_ref().as_str());
                    self.url(table, shown, *kind.get_ref(), diags)
                }
                _ => None,
            };
            let read_broken = READ_URL_FIELDS.iter().any(|field| table.is_broken(field));
            // `None` when reported; `Some(None)` when not set.
            let read_url = match kind {
                Some(kind) if !read_broken => {
                    let shown = name.map_or("?", |name| name.get_ref().as_str());
                    self.read_url(table, shown, *kind.get_ref(), diags)
                }
                _ => None,
            };
            if let (true, Some(name), Some(kind), Some(url), Some(read_url)) =
                (valid, name, kind, url, read_url)
            {
                targets.push(Target {
                    name: name.get_ref().clone(),
                    kind: *kind.get_ref(),
                    url,
                    read_url,
                });
            }
        }
        targets
    }

    /// The connection URL of target `name`, from whichever of its fields
    /// gives it. Messages name the target, the field and the variable or
    /// file, never the URL.
    fn url(
        &self,
        table: &Table<'_, TargetFile>,
        name: &str,
        kind: TargetKind,
        diags: &mut Diagnostics,
    ) -> Option<Secret> {
        let target = &table.value;
        let given: Vec<(&str, Range<usize>)> = [
            target.url_env.as_ref().map(Spanned::span),
            target.url_file.as_ref().map(Spanned::span),
            target.path.as_ref().map(Spanned::span),
            target.url.as_ref().map(Spanned::span),
        ]
        .into_iter()
        .zip(URL_FIELDS)
        .filter_map(|(span, key)| Some((key, span?)))
        .collect();
        let how = match kind {
            TargetKind::Sqlite => "`url_env`, `url_file`, `path` or `url`",
            TargetKind::Postgres | TargetKind::Mongodb => "`url_env` or `url_file`",
        };
        match given.as_slice() {
            [] => {
                diags.push(table.source.error(
                    &table.span,
                    table.path.clone(),
                    format!("target `{name}` has no connection URL: set one of {how}"),
                ));
                return None;
            }
            [(first, _), (second, second_span), ..] => {
                diags.push(table.source.error(
                    second_span,
                    table.field(second),
                    format!(
                        "target `{name}` sets both `{first}` and `{second}`: set only one of {how}"
                    ),
                ));
                return None;
            }
            [_] => {}
        }

        let fail = |diags: &mut Diagnostics, key: &str, span: &Range<usize>, message: String| {
            diags.push(table.source.error(span, table.field(key), message));
            None
        };
        if let Some(env_name) = &target.url_env {
            return self.url_from_env(
                table,
                name,
                kind,
                ("url_env", UrlUse::Main),
                env_name,
                diags,
            );
        }
        if let Some(url_file) = &target.url_file {
            return self.url_from_file(table, name, kind, "url_file", url_file, diags);
        }
        let refused = format!(
            "target `{name}` is a {kind} database: put the URL in an environment variable \
             (url_env) or a file (url_file): inline credentials are refused"
        );
        if let Some(path) = &target.path {
            let at = path.span();
            if kind != TargetKind::Sqlite {
                return fail(
                    diags,
                    "path",
                    &at,
                    format!("`path` is only for sqlite targets; {refused}"),
                );
            }
            if path.get_ref().as_os_str().is_empty() {
                return fail(
                    diags,
                    "path",
                    &at,
                    format!("target `{name}`: `path` must not be empty"),
                );
            }
            return match sqlite_url(&self.dir.join(path.get_ref()), None) {
                Ok(url) => Some(Secret::new(url)),
                Err(problem) => fail(diags, "path", &at, format!("target `{name}`: {problem}")),
            };
        }
        if let Some(url) = &target.url {
            let at = url.span();
            if kind != TargetKind::Sqlite {
                return fail(
                    diags,
                    "url",
                    &at,
                    format!("`url` is only for sqlite targets; {refused}"),
                );
            }
            return match check_url(kind, url.get_ref())
                .and_then(|()| sqlite_url_in(self.dir, url.get_ref()))
            {
                Ok(url) => Some(Secret::new(url)),
                Err(problem) => fail(
                    diags,
                    "url",
                    &at,
                    format!("target `{name}`: the URL {problem}"),
                ),
            };
        }
        None
    }

    /// The URL of target `name`'s `read`-class calls: `Some(None)` when
    /// neither `read_url_env` nor `read_url_file` is set, `None` after
    /// reporting a problem. Read and checked like the main URL.
    fn read_url(
        &self,
        table: &Table<'_, TargetFile>,
        name: &str,
        kind: TargetKind,
        diags: &mut Diagnostics,
    ) -> Option<Option<Secret>> {
        let target = &table.value;
        let given: Vec<(&str, Range<usize>)> = [
            target.read_url_env.as_ref().map(Spanned::span),
            target.read_url_file.as_ref().map(Spanned::span),
        ]
        .into_iter()
        .zip(READ_URL_FIELDS)
        .filter_map(|(span, key)| Some((key, span?)))
        .collect();
        let (first, first_span) = match given.as_slice() {
            [] => return Some(None),
            [(first, _), (second, second_span), ..] => {
                diags.push(table.source.error(
                    second_span,
                    table.field(second),
                    format!(
                        "target `{name}` sets both `{first}` and `{second}`: set only one of \
                         `read_url_env` or `read_url_file`"
                    ),
                ));
                return None;
            }
            [(first, span)] => (*first, span),
        };
        if kind == TargetKind::Sqlite {
            diags.push(table.source.error(
                first_span,
                table.field(first),
                format!(
                    "target `{name}` is a sqlite database: `{first}` is only for postgres and \
                     mongodb targets (a sqlite file has no roles to separate; every call opens \
                     the file): remove it"
                ),
            ));
            return None;
        }
        let url = match (&target.read_url_env, &target.read_url_file) {
            (Some(env_name), _) => self.url_from_env(
                table,
                name,
                kind,
                ("read_url_env", UrlUse::Read),
                env_name,
                diags,
            ),
            (None, Some(url_file)) => {
                self.url_from_file(table, name, kind, "read_url_file", url_file, diags)
            }
            (None, None) => None,
        };
        url.map(Some)
    }

    /// The URL in the environment variable named by `field` (`url_env` or
    /// `read_url_env`), checked for `kind`. Messages name the target, the
    /// field and the variable, never the URL.
    fn url_from_env(
        &self,
        table: &Table<'_, TargetFile>,
        name: &str,
        kind: TargetKind,
        (field, used): (&str, UrlUse),
        env_name: &Spanned<String>,
        diags: &mut Diagnostics,
    ) -> Option<Secret> {
        let fail = |diags: &mut Diagnostics, message: String| {
            diags.push(
                table
                    .source
                    .error(&env_name.span(), table.field(field), message),
            );
            None
        };
        let env_name = env_name.get_ref();
        if !is_valid_env_name(env_name) {
            // Do not quote it: it may be a URL put in the wrong field.
            return fail(
                diags,
                format!(
                    "target `{name}`: `{field}` must be the name of an environment variable \
                     (letters, digits and `_`, not starting with a digit) that holds the URL"
                ),
            );
        }
        let Some(value) = (self.env)(env_name) else {
            return fail(
                diags,
                format!(
                    "target `{name}`: environment variable `{env_name}` is not set; \
                     set it to the {}, or change `{field}`",
                    used.what()
                ),
            );
        };
        let Ok(value) = value.into_string() else {
            return fail(
                diags,
                format!("target `{name}`: environment variable `{env_name}` is not valid UTF-8"),
            );
        };
        match check_url(kind, value.trim()) {
            Ok(()) => Some(Secret::new(value.trim())),
            Err(problem) => fail(
                diags,
                format!("target `{name}`: the URL in environment variable `{env_name}` {problem}"),
            ),
        }
    }

    /// The URL in the file named by `field` (`url_file` or
    /// `read_url_file`), checked for `kind`. Messages name the target, the
    /// field and the file, never the URL.
    fn url_from_file(
        &self,
        table: &Table<'_, TargetFile>,
        name: &str,
        kind: TargetKind,
        field: &str,
        url_file: &Spanned<PathBuf>,
        diags: &mut Diagnostics,
    ) -> Option<Secret> {
        let fail = |diags: &mut Diagnostics, message: String| {
            diags.push(
                table
                    .source
                    .error(&url_file.span(), table.field(field), message),
            );
            None
        };
        let shown = url_file.get_ref().display().to_string();
        if shown.contains("://") || shown.contains('@') {
            // Do not quote it: it may be a URL put in the wrong field.
            return fail(
                diags,
                format!(
                    "target `{name}`: `{field}` must be the path of a file holding the URL, \
                     not the URL itself"
                ),
            );
        }
        let path = self.dir.join(url_file.get_ref());
        let value = match fs::read_to_string(&path) {
            Ok(value) => value,
            Err(e) => {
                return fail(
                    diags,
                    format!(
                        "target `{name}`: cannot read the URL file {}: {e}",
                        path.display()
                    ),
                );
            }
        };
        match check_url(kind, value.trim()) {
            Ok(()) => Some(Secret::new(value.trim())),
            Err(problem) => fail(
                diags,
                format!(
                    "target `{name}`: the URL in file {} {problem}",
                    path.display()
                ),
            ),
        }
    }
}

/// Checks the shape of a connection URL for `kind`. The error completes
/// "the URL in ..." and never quotes the URL.
fn check_url(kind: TargetKind, url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err("is empty".to_owned());
    }
    let schemes: &[&str] = match kind {
        TargetKind::Sqlite => &["sqlite:"],
        TargetKind::Postgres => &["postgres://", "postgresql://"],
        TargetKind::Mongodb => &["mongodb://", "mongodb+srv://"],
    };
    if !schemes.iter().any(|scheme| url.starts_with(scheme)) {
        let expected: Vec<String> = schemes.iter().map(|s| format!("`{s}`")).collect();
        return Err(format!(
            "must start with {} (lowercase) for a {kind} target",
            expected.join(" or ")
        ));
    }
    match kind {
        TargetKind::Sqlite => Ok(()),
        TargetKind::Postgres => parse_url(url),
        TargetKind::Mongodb => {
            // `mongodb://h1,h2/` lists several hosts, which the `url` crate
            // cannot parse: check those with a single host only.
            let after_scheme = url.split_once("://").map_or("", |(_, rest)| rest);
            let authority = after_scheme.split(['/', '?']).next().unwrap_or_default();
            let hosts = authority
                .rsplit_once('@')
                .map_or(authority, |(_, hosts)| hosts);
            if hosts.is_empty() {
                Err("names no host".to_owned())
            } else if hosts.contains(',') {
                Ok(())
            } else {
                parse_url(url)
            }
        }
    }
}

fn parse_url(url: &str) -> Result<(), String> {
    // `url::ParseError` messages are fixed texts that never quote the input.
    url::Url::parse(url)
        .map(|_| ())
        .map_err(|e| format!("is not a valid URL ({e})"))
}

/// `sqlite://PATH[?PARAMS]`, escaping what sqlx would read as the end of the
/// file name.
fn sqlite_url(path: &Path, params: Option<&str>) -> Result<String, String> {
    let text = path
        .to_str()
        .ok_or_else(|| format!("the path {} is not valid UTF-8", path.display()))?;
    let mut url = String::from("sqlite://");
    for c in text.chars() {
        match c {
            '%' => url.push_str("%25"),
            '?' => url.push_str("%3F"),
            '#' => url.push_str("%23"),
            c => url.push(c),
        }
    }
    if let Some(params) = params {
        url.push('?');
        url.push_str(params);
    }
    Ok(url)
}

/// A `sqlite:` URL with a relative file name made relative to `dir`.
fn sqlite_url_in(dir: &Path, url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (database, params) = match rest.split_once('?') {
        Some((database, params)) => (database, Some(params)),
        None => (rest, None),
    };
    let file = percent_decode(database);
    if file.is_empty() || file == ":memory:" || Path::new(&file).is_absolute() {
        return Ok(url.to_owned());
    }
    sqlite_url(&dir.join(file), params)
}

#[cfg(test)]
mod tests;
