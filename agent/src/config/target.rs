//! `[[target]]`: the databases plugins may work on, and their connection
//! URLs.

use super::document::Table;
use super::{Resolver, Secret, percent_decode};
use crate::capability::{CapabilityClass, TargetKind};
use crate::diag::Diagnostics;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

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

/// One `[[target]]` table: a database plugins may work on. Give its
/// connection URL in exactly one of `url_env`, `url_file`, `path` (sqlite)
/// or `url` (sqlite), and optionally the URL of `read`-class calls in one
/// of `read_url_env` or `read_url_file` (postgres, mongodb).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TargetFile {
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

impl<E: Fn(&str) -> Option<OsString>> Resolver<'_, E> {
    pub(super) fn targets(
        &self,
        tables: &[Table<'_, TargetFile>],
        diags: &mut Diagnostics,
    ) -> Vec<Target> {
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
            let shown = name.map_or("?", |name| name.get_ref().as_str());
            let checkable = |fields: &[&str]| {
                let broken = fields.iter().any(|field| table.is_broken(field));
                kind.filter(|_| !broken).map(|kind| *kind.get_ref())
            };
            let url = checkable(&URL_FIELDS).and_then(|kind| self.url(table, shown, kind, diags));
            // `None` when reported; `Some(None)` when not set.
            let read_url = checkable(&READ_URL_FIELDS)
                .and_then(|kind| self.read_url(table, shown, kind, diags));
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
        let given = given(
            &URL_FIELDS,
            [
                target.url_env.as_ref().map(Spanned::span),
                target.url_file.as_ref().map(Spanned::span),
                target.path.as_ref().map(Spanned::span),
                target.url.as_ref().map(Spanned::span),
            ],
        );
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

        let fail = |diags: &mut Diagnostics, key: &str, span: &Range<usize>, message| {
            report(table, span.clone(), key, diags, message)
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
        let inline = [
            ("path", target.path.as_ref().map(Spanned::span)),
            ("url", target.url.as_ref().map(Spanned::span)),
        ];
        for (key, at) in inline {
            if let Some(at) = at
                && kind != TargetKind::Sqlite
            {
                let message = format!("`{key}` is only for sqlite targets; {refused}");
                return fail(diags, key, &at, message);
            }
        }
        if let Some(path) = &target.path {
            let at = path.span();
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
        let given = given(
            &READ_URL_FIELDS,
            [
                target.read_url_env.as_ref().map(Spanned::span),
                target.read_url_file.as_ref().map(Spanned::span),
            ],
        );
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
        let fail = |diags: &mut _, message| report(table, env_name.span(), field, diags, message);
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
        let whence = format!("environment variable `{env_name}`");
        match checked_url(kind, name, &value, &whence) {
            Ok(url) => Some(url),
            Err(message) => fail(diags, message),
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
        let fail = |diags: &mut _, message| report(table, url_file.span(), field, diags, message);
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
        let whence = format!("file {}", path.display());
        match checked_url(kind, name, &value, &whence) {
            Ok(url) => Some(url),
            Err(message) => fail(diags, message),
        }
    }
}

/// Reports `message` at `span`, on `field` of the target's table.
fn report<T>(
    table: &Table<'_, TargetFile>,
    span: Range<usize>,
    field: &str,
    diags: &mut Diagnostics,
    message: String,
) -> Option<T> {
    diags.push(table.source.error(&span, table.field(field), message));
    None
}

/// The URL `value` (trimmed) read from `whence`, checked for `kind`; the
/// message names the target and where the URL came from, never the URL.
fn checked_url(kind: TargetKind, name: &str, value: &str, whence: &str) -> Result<Secret, String> {
    check_url(kind, value.trim())
        .map(|()| Secret::new(value.trim()))
        .map_err(|problem| format!("target `{name}`: the URL in {whence} {problem}"))
}

/// The fields of `keys` that are set, with their spans (`spans` in the
/// order of `keys`).
fn given<const N: usize>(
    keys: &[&'static str; N],
    spans: [Option<Range<usize>>; N],
) -> Vec<(&'static str, Range<usize>)> {
    keys.iter()
        .zip(spans)
        .filter_map(|(key, span)| Some((*key, span?)))
        .collect()
}
