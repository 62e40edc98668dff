//! `[[notify]]` (where run events are sent) and `[[http.approver]]` (the
//! people who may approve plans through the API, each with their own token).
//!
//! ```toml
//! [[notify]]
//! name = "oncall"
//! kind = "slack"                      # or "webhook" (a documented JSON object)
//! url_env = "WARDEN_SLACK_WEBHOOK"    # or url_file; never the URL itself
//! on = ["awaiting_approval", "failed"] # the default
//! plugins = ["runbook"]               # optional: only runs of these plugins
//! ca_file = "relay-ca.pem"            # optional: CAs trusted besides Mozilla's roots (https)
//!
//! [http]
//! listen = "127.0.0.1:9470"
//! token_env = "WARDEN_API_TOKEN"
//!
//! [[http.approver]]
//! name = "alice"
//! token_env = "WARDEN_APPROVER_ALICE" # or token_file
//! ```
//!
//! Webhook URLs are secrets (a Slack incoming-webhook URL is its own
//! credential): they are read from the environment or a file, never written
//! in the config, and never appear in an error, a log line or a record.

use super::document::{Table, push_key};
use super::{Resolver, Secret};
use crate::diag::Diagnostics;
use serde::Deserialize;
use std::ffi::OsString;
use std::fs;
use std::ops::Range;
use std::path::PathBuf;
use toml::Spanned;

/// A run event a `[[notify]]` may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// A plan waits for approval.
    AwaitingApproval,
    /// A run ended succeeded.
    Succeeded,
    /// A run ended failed, trapped, timed out, over a limit, interrupted,
    /// denied or rejected.
    Failed,
}

impl NotifyEvent {
    pub const fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::AwaitingApproval => "awaiting_approval",
            NotifyEvent::Succeeded => "succeeded",
            NotifyEvent::Failed => "failed",
        }
    }
}

/// Default `on`: what needs a person.
pub const DEFAULT_NOTIFY_ON: [NotifyEvent; 2] =
    [NotifyEvent::AwaitingApproval, NotifyEvent::Failed];

/// The payload a `[[notify]]` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyKind {
    /// A Slack-compatible incoming webhook: `{"text": ..., "blocks": [...]}`.
    Slack,
    /// A generic webhook: the JSON object of [`crate::notify`] (`version` 1).
    Webhook,
}

/// One `[[notify]]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    pub name: String,
    pub kind: NotifyKind,
    /// The webhook URL (a secret).
    pub url: Secret,
    pub on: Vec<NotifyEvent>,
    /// Only runs of these plugins; empty for all.
    pub plugins: Vec<String>,
    /// Extra trusted CA certificates (PEM) for an `https://` URL, besides
    /// Mozilla's roots: for a relay with an internal CA.
    pub ca_file: Option<PathBuf>,
}

/// The certificates in a PEM file, or why there are none.
pub fn read_ca_file(
    path: &std::path::Path,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject as _;
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// One `[[http.approver]]`, checked: a person and their API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApproverConfig {
    pub name: String,
    pub token: Secret,
}

/// `[[notify]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NotifyFile {
    /// A name for logs and metrics (`[a-z0-9][a-z0-9_-]*`, unique). Required.
    name: Option<Spanned<String>>,
    /// `"slack"` (a Slack-compatible incoming webhook) or `"webhook"` (a
    /// JSON object, documented in the README). Required.
    kind: Option<Spanned<NotifyKind>>,
    /// Environment variable holding the webhook URL.
    url_env: Option<Spanned<String>>,
    /// File holding the webhook URL (whitespace around it ignored).
    url_file: Option<Spanned<PathBuf>>,
    /// Events to send: `awaiting_approval`, `succeeded`, `failed`. Default
    /// `["awaiting_approval", "failed"]`.
    on: Option<Spanned<Vec<NotifyEvent>>>,
    /// Only runs of these plugins (default: all).
    plugins: Option<Vec<String>>,
    /// PEM file of CA certificates trusted for an `https://` URL besides
    /// Mozilla's roots.
    ca_file: Option<Spanned<PathBuf>>,
}

/// `[[http.approver]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApproverFile {
    /// The person, as recorded on what they approve or reject. Required.
    name: Option<Spanned<String>>,
    /// Environment variable holding the person's own API token.
    token_env: Option<Spanned<String>>,
    /// File holding the person's own API token.
    token_file: Option<Spanned<PathBuf>>,
}

/// Where a secret comes from: one of two fields.
struct SecretFields<'f> {
    env_field: &'static str,
    file_field: &'static str,
    env: &'f Option<Spanned<String>>,
    file: &'f Option<Spanned<PathBuf>>,
    /// What it is, for messages ("the webhook URL").
    what: &'static str,
}

impl<E: Fn(&str) -> Option<OsString>> Resolver<'_, E> {
    /// A secret from exactly one of an environment variable and a file;
    /// messages name the field at `path`, never the value.
    fn secret_from(
        &self,
        table: &Table<'_, impl Sized>,
        path: &str,
        span: &Range<usize>,
        f: &SecretFields<'_>,
        diags: &mut Diagnostics,
    ) -> Option<(String, String)> {
        match (f.env, f.file) {
            (Some(_), Some(file)) => {
                diags.push(table.source.error(
                    &file.span(),
                    push_key(path.to_string(), f.file_field),
                    format!("set only one of `{}` and `{}`", f.env_field, f.file_field),
                ));
                None
            }
            (None, None) => {
                diags.push(table.source.error(
                    span,
                    path.to_string(),
                    format!(
                        "{} is missing: set `{}` (an environment variable) or `{}`",
                        f.what, f.env_field, f.file_field
                    ),
                ));
                None
            }
            (Some(name), None) => {
                let var = name.get_ref();
                match (self.env)(var).and_then(|v| v.into_string().ok()) {
                    Some(v) => Some((
                        v.trim().to_string(),
                        format!("environment variable `{var}`"),
                    )),
                    None => {
                        diags.push(table.source.error(
                            &name.span(),
                            push_key(path.to_string(), f.env_field),
                            format!("environment variable `{var}` is not set (or not UTF-8)"),
                        ));
                        None
                    }
                }
            }
            (None, Some(file)) => {
                let full = self.dir.join(file.get_ref());
                match fs::read_to_string(&full) {
                    Ok(v) => Some((v.trim().to_string(), format!("file {}", full.display()))),
                    Err(e) => {
                        diags.push(table.source.error(
                            &file.span(),
                            push_key(path.to_string(), f.file_field),
                            format!("cannot read {} from {}: {e}", f.what, full.display()),
                        ));
                        None
                    }
                }
            }
        }
    }

    /// Every `[[notify]]`, checked (names unique, URL read and parsed).
    pub(super) fn notifies(
        &self,
        tables: &[Table<'_, NotifyFile>],
        diags: &mut Diagnostics,
    ) -> Vec<NotifyConfig> {
        let mut out: Vec<NotifyConfig> = Vec::new();
        for table in tables {
            let file = &table.value;
            let name = table.require("name", &file.name, diags).and_then(|n| {
                if !super::is_valid_target_name(n.get_ref()) {
                    diags.push(table.source.error(
                        &n.span(),
                        table.field("name"),
                        format!(
                            "{:?} is not a valid name: use lowercase letters, digits, `_` and `-`",
                            n.get_ref()
                        ),
                    ));
                    None
                } else if out.iter().any(|o| &o.name == n.get_ref()) {
                    diags.push(table.source.error(
                        &n.span(),
                        table.field("name"),
                        format!("a [[notify]] named `{}` is already defined", n.get_ref()),
                    ));
                    None
                } else {
                    Some(n.get_ref().clone())
                }
            });
            let kind = table
                .require("kind", &file.kind, diags)
                .map(|k| *k.get_ref());
            let url = self
                .secret_from(
                    table,
                    &table.path,
                    &table.span,
                    &SecretFields {
                        env_field: "url_env",
                        file_field: "url_file",
                        env: &file.url_env,
                        file: &file.url_file,
                        what: "the webhook URL",
                    },
                    diags,
                )
                .and_then(|(url, from)| {
                    let field = if file.url_env.is_some() {
                        "url_env"
                    } else {
                        "url_file"
                    };
                    let span = file
                        .url_env
                        .as_ref()
                        .map(Spanned::span)
                        .or_else(|| file.url_file.as_ref().map(Spanned::span))
                        .unwrap_or_else(|| table.span.clone());
                    match url::Url::parse(&url) {
                        Ok(u) if matches!(u.scheme(), "http" | "https") => Some(Secret::new(url)),
                        // The URL is a secret: say what is wrong, not what it is.
                        _ => {
                            diags.push(table.source.error(
                                &span,
                                table.field(field),
                                format!("the value of {from} is not an http:// or https:// URL"),
                            ));
                            None
                        }
                    }
                });
            let on = match &file.on {
                None => DEFAULT_NOTIFY_ON.to_vec(),
                Some(on) if on.get_ref().is_empty() => {
                    diags.push(table.source.error(
                        &on.span(),
                        table.field("on"),
                        "lists no event: name at least one of awaiting_approval, succeeded, failed (or remove the [[notify]])",
                    ));
                    Vec::new()
                }
                Some(on) => {
                    let mut v = on.get_ref().clone();
                    v.dedup();
                    v
                }
            };
            let ca_file = file.ca_file.as_ref().and_then(|f| {
                let path = self.dir.join(f.get_ref());
                match read_ca_file(&path) {
                    Ok(_) => Some(path),
                    Err(e) => {
                        diags.push(table.source.error(&f.span(), table.field("ca_file"), e));
                        None
                    }
                }
            });
            if let (Some(name), Some(kind), Some(url)) = (name, kind, url) {
                out.push(NotifyConfig {
                    name,
                    kind,
                    url,
                    on,
                    plugins: file.plugins.clone().unwrap_or_default(),
                    ca_file,
                });
            }
        }
        out
    }

    /// Every `[[http.approver]]`, checked: names and tokens unique, each
    /// token at least 16 characters and not the shared API token.
    pub(super) fn approvers(
        &self,
        table: &Table<'_, impl Sized>,
        approvers: &[Spanned<ApproverFile>],
        shared: Option<&Secret>,
        diags: &mut Diagnostics,
    ) -> Vec<ApproverConfig> {
        let mut out: Vec<ApproverConfig> = Vec::new();
        for (i, a) in approvers.iter().enumerate() {
            let path = format!("{}[{i}]", table.field("approver"));
            let span = a.span();
            let file = a.get_ref();
            let name = match &file.name {
                None => {
                    diags.push(table.source.error(
                        &span,
                        push_key(path.clone(), "name"),
                        "missing field `name`: the person, as recorded on what they approve",
                    ));
                    None
                }
                Some(n) if n.get_ref().trim().is_empty() => {
                    diags.push(table.source.error(
                        &n.span(),
                        push_key(path.clone(), "name"),
                        "must not be empty",
                    ));
                    None
                }
                Some(n) if out.iter().any(|o| &o.name == n.get_ref()) => {
                    diags.push(table.source.error(
                        &n.span(),
                        push_key(path.clone(), "name"),
                        format!("approver `{}` is already defined", n.get_ref()),
                    ));
                    None
                }
                Some(n) => Some(n.get_ref().trim().to_string()),
            };
            let token = self
                .secret_from(
                    table,
                    &path,
                    &span,
                    &SecretFields {
                        env_field: "token_env",
                        file_field: "token_file",
                        env: &file.token_env,
                        file: &file.token_file,
                        what: "the approver's token",
                    },
                    diags,
                )
                .and_then(|(token, from)| {
                    let field = if file.token_env.is_some() { "token_env" } else { "token_file" };
                    let problem = if token.len() < 16 {
                        Some(format!(
                            "the token in {from} is shorter than 16 characters: use a long random one"
                        ))
                    } else if shared.is_some_and(|s| s.expose() == token) {
                        Some(format!(
                            "the token in {from} is the shared API token: each approver needs their own"
                        ))
                    } else if out.iter().any(|o| o.token.expose() == token) {
                        Some(format!(
                            "the token in {from} is another approver's: each approver needs their own"
                        ))
                    } else {
                        None
                    };
                    match problem {
                        Some(p) => {
                            diags.push(table.source.error(&span, push_key(path.clone(), field), p));
                            None
                        }
                        None => Some(Secret::new(token)),
                    }
                });
            if let (Some(name), Some(token)) = (name, token) {
                out.push(ApproverConfig { name, token });
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use crate::config::Config;
    use std::ffi::OsString;

    const HEAD: &str = "plugin_dir = \"p\"\npolicy_dir = \"q\"\n[http]\nlisten = \"127.0.0.1:9470\"\ntoken_env = \"API\"\n";
    const SHARED: &str = "shared-token-0123456789";

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, crate::diag::Diagnostics> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warden.toml");
        std::fs::write(&path, format!("{HEAD}{text}")).unwrap();
        std::fs::write(dir.path().join("bob.token"), "bob-token-0123456789abc\n").unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .chain([("API", SHARED)].iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with_env(&path, |name| {
            env.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn approvers_each_have_their_own_token_from_env_or_file() {
        let c = load(
            "[[http.approver]]\nname = \"alice\"\ntoken_env = \"ALICE\"\n\
             [[http.approver]]\nname = \"bob\"\ntoken_file = \"bob.token\"\n",
            &[("ALICE", "alice-token-0123456789")],
        )
        .unwrap();
        let http = c.http.unwrap();
        let names: Vec<&str> = http.approvers.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(http.approvers[1].token.expose(), "bob-token-0123456789abc");
        assert!(!format!("{http:?}").contains("alice-token"));
        // None configured: none may approve through the API.
        assert!(load("", &[]).unwrap().http.unwrap().approvers.is_empty());
    }

    /// Config text, environment, the field a diagnostic must name.
    type Case = (
        String,
        &'static [(&'static str, &'static str)],
        &'static str,
    );

    #[test]
    fn bad_approvers_are_refused_by_field_without_showing_tokens() {
        let alice = "[[http.approver]]\nname = \"alice\"\ntoken_env = \"ALICE\"\n";
        let cases: [Case; 7] = [
            (alice.to_string(), &[("ALICE", "short")], "http.approver[0].token_env"),
            (alice.to_string(), &[("ALICE", SHARED)], "http.approver[0].token_env"),
            (alice.to_string(), &[], "http.approver[0].token_env"),
            (
                format!("{alice}[[http.approver]]\nname = \"eve\"\ntoken_env = \"ALICE\"\n"),
                &[("ALICE", "alice-token-0123456789")],
                "http.approver[1].token_env",
            ),
            (
                format!("{alice}[[http.approver]]\nname = \"alice\"\ntoken_file = \"bob.token\"\n"),
                &[("ALICE", "alice-token-0123456789")],
                "http.approver[1].name",
            ),
            (
                "[[http.approver]]\nname = \"x\"\ntoken_env = \"ALICE\"\ntoken_file = \"bob.token\"\n".into(),
                &[("ALICE", "alice-token-0123456789")],
                "http.approver[0].token_file",
            ),
            (
                "[[http.approver]]\ntoken_env = \"ALICE\"\n".into(),
                &[("ALICE", "alice-token-0123456789")],
                "http.approver[0].name",
            ),
        ];
        for (text, env, field) in cases {
            let diags = load(&text, env).unwrap_err();
            assert!(
                diags.iter().any(|d| d.field == field),
                "{text}: no diagnostic about {field} in:\n{diags}"
            );
            let shown = diags.to_string();
            for secret in [SHARED, "alice-token-0123456789", "bob-token-0123456789abc"] {
                assert!(!shown.contains(secret), "{text}: {shown}");
            }
        }
    }
}
