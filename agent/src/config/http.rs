//! `[http]`: the API `warden run` serves.

use super::document::Table;
use super::notify::ApproverFile;
use super::{ApproverConfig, Resolver, Secret, units};
use crate::diag::Diagnostics;
use serde::Deserialize;
use std::ffi::OsString;
use std::fs;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

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

/// `[http]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HttpFile {
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
    approver: Option<Vec<Spanned<ApproverFile>>>,
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

impl<E: Fn(&str) -> Option<OsString>> Resolver<'_, E> {
    pub(super) fn http(
        &self,
        table: &Table<'_, HttpFile>,
        diags: &mut Diagnostics,
    ) -> Option<HttpConfig> {
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
}
