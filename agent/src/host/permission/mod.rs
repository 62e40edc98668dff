//! The permission decision for every host call, typed and total.
//!
//! Two exhaustive `match`es with no wildcard arm: [`check_local`] for the
//! calls that touch no target (allowed in a run, denied in `describe`) and
//! [`check_target`] for those that do, which resolves the target and the
//! plugin's grant for it once and hands both back as [`Resolved`]. Adding a
//! host function means adding a [`LocalCall`] or [`TargetCall`] case, which
//! does not compile until its rule is written here. A refusal is a
//! [`Denied`], whose `Display` is the message the plugin gets (naming the
//! grant's `file:line` and what to add) and which becomes the WIT
//! `access-denied` error in one place (`From<Denied> for Error`).

use super::RunEnv;
use crate::capability::{CapabilityClass, TargetKind};
use crate::config::{Config, Target};
use crate::host::bindings::types::Error;
use crate::policy::{Grant, Location, PolicySet};
use std::fmt;
use std::path::{Path, PathBuf};

#[cfg(test)]
mod tests;

/// What a decision depends on: the plugin, the config's targets and stores,
/// and the policies in force.
#[derive(Clone, Copy)]
pub struct Scope<'e> {
    pub plugin: &'e str,
    pub config: &'e Config,
    pub policies: &'e PolicySet,
}

impl RunEnv {
    /// The run's permission scope.
    pub fn scope(&self) -> Scope<'_> {
        Scope {
            plugin: &self.plugin,
            config: &self.config,
            policies: &self.policies,
        }
    }
}

/// A host call that touches no target: allowed in a run, never in `describe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalCall {
    /// `log.write`
    Log,
    /// `context.*` and `runbooks.*` (the runbooks hold no secrets)
    Context,
    /// `state.get`, `state.list-keys` (the plugin's own namespace)
    StateRead,
    /// `state.set`, `state.delete` (the plugin's own namespace; the state
    /// module enforces its caps)
    StateWrite,
    /// `sql.classify` (pure; touches nothing)
    SqlClassify,
    /// `mongo.classify` (pure; touches nothing)
    MongoClassify,
    /// `runs.get` of a run this run started (the runs module checks that)
    RunGet,
}

/// A host call on a target, with what its permission depends on.
#[derive(Debug, Clone, Copy)]
pub enum TargetCall<'a> {
    /// `sql.quote-ident` on a target
    SqlQuoteIdent { target: &'a str },
    /// `sql.query` / `sql.execute`, after the host classified the statement
    Sql {
        target: &'a str,
        class: CapabilityClass,
    },
    /// `mongo.run-command` / `mongo.open-cursor`, after the host classified the command
    Mongo {
        target: &'a str,
        class: CapabilityClass,
    },
    /// `artifacts.dump`: reads all of `target` into `store`
    ArtifactDump { target: &'a str, store: &'a str },
    /// `artifacts.list` / `artifacts.verify` / `artifacts.delete` on
    /// `target`'s artifacts in `store`
    Artifacts { target: &'a str, store: &'a str },
    /// `artifacts.restore` of `target`'s artifact into `destination`
    ArtifactRestore {
        target: &'a str,
        store: &'a str,
        destination: &'a str,
    },
    /// `logs.read` / `logs.read-back` on `target`, before the path is
    /// looked at: the target and a grant for it (the path is decided by
    /// [`TargetCall::LogRead`], off the async executor).
    Logs { target: &'a str },
    /// `logs.read` / `logs.read-back` of `path` as the plugin wrote it
    /// (absolute and normalized), checked before the filesystem is touched
    /// so a plugin cannot probe for files outside its grant. Deciding stats
    /// the granted paths: call it off the async executor.
    LogRead { target: &'a str, path: &'a Path },
    /// The same call once `written` was resolved to `real` (symlinks), so no
    /// link leads out of a granted directory.
    LogReadResolved {
        target: &'a str,
        written: &'a Path,
        real: &'a Path,
    },
    /// `sessions.signal-backend` on PostgreSQL `target`. The caller then
    /// refuses the agent's own sessions always, and privileged ones unless
    /// the grant has `allow_privileged_sessions`.
    SessionSignal { target: &'a str },
    /// `sessions.kill-op` on MongoDB `target` (the same rules).
    KillOp { target: &'a str },
    /// `runs.start` of `plugin` on `target`: the grant for `target` lists it
    /// in `run_plugins` (the started run then has its own grant).
    RunStart { target: &'a str, plugin: &'a str },
}

/// What an allowed target call may use, looked up once.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'e> {
    pub target: &'e Target,
    pub grant: &'e Grant,
}

/// The capabilities that apply only to some kinds of target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kinded {
    /// `sql.*`: SQLite and PostgreSQL
    Sql,
    /// `mongo.*`: MongoDB
    Mongo,
    /// `sessions.signal-backend`: PostgreSQL
    SignalBackend,
    /// `sessions.kill-op`: MongoDB
    KillOp,
}

impl Kinded {
    pub const fn name(self) -> &'static str {
        match self {
            Kinded::Sql => "sql",
            Kinded::Mongo => "mongo",
            Kinded::SignalBackend => "sessions.signal-backend",
            Kinded::KillOp => "sessions.kill-op",
        }
    }

    pub const fn kinds(self) -> &'static [TargetKind] {
        match self {
            Kinded::Sql => &[TargetKind::Sqlite, TargetKind::Postgres],
            Kinded::Mongo | Kinded::KillOp => &[TargetKind::Mongodb],
            Kinded::SignalBackend => &[TargetKind::Postgres],
        }
    }
}

/// The generic database calls, which never run `session-control`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generic {
    Sql,
    Mongo,
}

/// Why a call is refused. `Display` is the message the plugin gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// A host function called from `describe()`.
    InDescribe,
    /// No target of that name in the config.
    NoTarget { name: String },
    /// The target's kind does not take the capability.
    WrongKind {
        target: String,
        kind: TargetKind,
        capability: Kinded,
    },
    /// Deny by default: the plugin has no grant for the target.
    NoGrant { plugin: String, target: String },
    /// The grant does not list the call's class.
    ClassNotGranted {
        plugin: String,
        target: String,
        class: CapabilityClass,
        granted: Vec<CapabilityClass>,
        at: Box<Location>,
    },
    /// `session-control` through `sql.*` or `mongo.*`: never.
    SessionControlViaGeneric { capability: Generic },
    /// The sessions capability without `session-control` in the grant.
    SessionControlNotGranted {
        plugin: String,
        target: String,
        what: &'static str,
        granted: Vec<CapabilityClass>,
        at: Box<Location>,
    },
    /// No artifact store of that name in the config.
    NoStore { store: String },
    /// The grant does not list the store in `artifacts`.
    StoreNotGranted {
        plugin: String,
        target: String,
        store: String,
        at: Box<Location>,
    },
    /// The grant does not list the destination in `restore_to`.
    RestoreNotAllowed {
        plugin: String,
        target: String,
        destination: String,
        at: Box<Location>,
    },
    /// The grant's `log_files` do not cover the path.
    LogPathNotGranted {
        plugin: String,
        target: String,
        path: PathBuf,
        granted: Vec<String>,
        at: Box<Location>,
    },
    /// The path the plugin wrote is granted, but it resolves (through a
    /// symlink) to one that is not.
    LogPathResolvesOutside {
        written: PathBuf,
        real: PathBuf,
        denied: Box<Denied>,
    },
    /// The grant does not list the plugin in `run_plugins`.
    RunNotAllowed {
        plugin: String,
        target: String,
        started: String,
        listed: Vec<String>,
        at: Box<Location>,
    },
    /// A mutation of a run that read a runbook, outside an action opened
    /// with `runbooks.begin-action` (the last one was refused, or none
    /// was opened).
    OutsideRunbookAction { why: String },
}

/// Which denial, without its details (for tests and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeniedKind {
    InDescribe,
    NoTarget,
    WrongKind,
    NoGrant,
    ClassNotGranted,
    SessionControlViaGeneric,
    SessionControlNotGranted,
    NoStore,
    StoreNotGranted,
    RestoreNotAllowed,
    LogPathNotGranted,
    LogPathResolvesOutside,
    RunNotAllowed,
    OutsideRunbookAction,
}

impl Denied {
    pub fn kind(&self) -> DeniedKind {
        match self {
            Denied::InDescribe => DeniedKind::InDescribe,
            Denied::NoTarget { .. } => DeniedKind::NoTarget,
            Denied::WrongKind { .. } => DeniedKind::WrongKind,
            Denied::NoGrant { .. } => DeniedKind::NoGrant,
            Denied::ClassNotGranted { .. } => DeniedKind::ClassNotGranted,
            Denied::SessionControlViaGeneric { .. } => DeniedKind::SessionControlViaGeneric,
            Denied::SessionControlNotGranted { .. } => DeniedKind::SessionControlNotGranted,
            Denied::OutsideRunbookAction { .. } => DeniedKind::OutsideRunbookAction,
            Denied::NoStore { .. } => DeniedKind::NoStore,
            Denied::StoreNotGranted { .. } => DeniedKind::StoreNotGranted,
            Denied::RestoreNotAllowed { .. } => DeniedKind::RestoreNotAllowed,
            Denied::LogPathNotGranted { .. } => DeniedKind::LogPathNotGranted,
            Denied::LogPathResolvesOutside { .. } => DeniedKind::LogPathResolvesOutside,
            Denied::RunNotAllowed { .. } => DeniedKind::RunNotAllowed,
        }
    }
}

fn classes(granted: &[CapabilityClass]) -> String {
    let names: Vec<&str> = granted.iter().map(|c| c.as_str()).collect();
    names.join(", ")
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::InDescribe => f.write_str("describe() must not call host functions"),
            Denied::NoTarget { name } => write!(f, "no target named `{name}`"),
            Denied::WrongKind {
                target,
                kind,
                capability,
            } => write!(
                f,
                "target `{target}` is a {kind} database: the {} capability does not apply",
                capability.name()
            ),
            Denied::NoGrant { plugin, target } => write!(
                f,
                "plugin `{plugin}` has no grant for target `{target}` (deny by default: add a \
                 [[grant]] in the policy folder)"
            ),
            Denied::ClassNotGranted {
                plugin,
                target,
                class,
                granted,
                at,
            } => write!(
                f,
                "plugin `{plugin}` is not granted `{class}` on target `{target}` (granted: {}; \
                 grant at {at})",
                classes(granted)
            ),
            // The one route for `session-control` through the generic
            // database calls: none. They name the call that signals a
            // session after looking it up (and refusing the agent's own,
            // superuser and internal sessions).
            Denied::SessionControlViaGeneric { capability } => {
                let (name, what, instead) = match capability {
                    Generic::Sql => (
                        "sql",
                        "statements that cancel or terminate sessions (`pg_cancel_backend`, \
                         `pg_terminate_backend`) are",
                        "sessions.signal-backend",
                    ),
                    Generic::Mongo => (
                        "mongo",
                        "commands that kill operations or sessions (`killOp`, `killSessions`, \
                         ...) are",
                        "sessions.kill-op",
                    ),
                };
                write!(
                    f,
                    "{what} not run through the {name} capability: use `{instead}`, which looks \
                     the session up first and refuses the agent's own, superuser and internal \
                     sessions (capability class `session-control`)"
                )
            }
            Denied::SessionControlNotGranted {
                plugin,
                target,
                what,
                granted,
                at,
            } => write!(
                f,
                "plugin `{plugin}` may not {what} on target `{target}`: its grant at {at} does \
                 not list `session-control` in `capabilities` (granted: {})",
                classes(granted)
            ),
            Denied::NoStore { store } => write!(f, "no artifact store named `{store}`"),
            Denied::StoreNotGranted {
                plugin,
                target,
                store,
                at,
            } => write!(
                f,
                "plugin `{plugin}` has no artifacts capability for target `{target}` in store \
                 `{store}` (add `artifacts = [\"{store}\"]` to the grant at {at})"
            ),
            Denied::RestoreNotAllowed {
                plugin,
                target,
                destination,
                at,
            } => write!(
                f,
                "plugin `{plugin}` may not restore artifacts of `{target}` into `{destination}`: \
                 the grant at {at} does not list it in `restore_to`"
            ),
            Denied::LogPathNotGranted {
                plugin,
                target,
                path,
                granted,
                at,
            } => {
                let granted = if granted.is_empty() {
                    "it grants no log files".to_string()
                } else {
                    let entries: Vec<String> = granted.iter().map(|e| format!("`{e}`")).collect();
                    format!("it grants {}", entries.join(", "))
                };
                write!(
                    f,
                    "plugin `{plugin}` may not read the log file `{}` through target `{target}`: \
                     {granted} (add the path to the grant's `log_files` at {at})",
                    path.display()
                )
            }
            Denied::LogPathResolvesOutside {
                written,
                real,
                denied,
            } => write!(
                f,
                "`{}` resolves to `{}`: {denied}",
                written.display(),
                real.display()
            ),
            Denied::RunNotAllowed {
                plugin,
                target,
                started,
                listed,
                at,
            } => {
                write!(
                    f,
                    "plugin `{plugin}` may not start `{started}` on target `{target}`: its grant \
                     at {at} does not list it in `run_plugins`"
                )?;
                if !listed.is_empty() {
                    write!(f, " (it lists: {})", listed.join(", "))?;
                }
                Ok(())
            }
            Denied::OutsideRunbookAction { why } => write!(
                f,
                "this run read a runbook, so it makes changes only inside a runbook action, and \
                 {why}: call runbooks.begin-action for the step first (the host refuses the \
                 change otherwise)"
            ),
        }
    }
}

impl std::error::Error for Denied {}

/// Every refusal is the WIT `access-denied` error, with the message.
impl From<Denied> for Error {
    fn from(denied: Denied) -> Error {
        Error::AccessDenied(denied.to_string())
    }
}

/// Decides a call that touches no target, handing back what it was given
/// (the run's environment) when allowed. `env` is `None` during `describe`,
/// when nothing is allowed.
pub fn check_local<E>(env: Option<E>, call: LocalCall) -> Result<E, Denied> {
    let Some(env) = env else {
        return Err(Denied::InDescribe);
    };
    match call {
        LocalCall::Log
        | LocalCall::Context
        | LocalCall::SqlClassify
        | LocalCall::MongoClassify
        | LocalCall::RunGet => Ok(env),
        // State is the plugin's own key-value namespace: no grant needed,
        // caps are enforced by the state module.
        LocalCall::StateRead | LocalCall::StateWrite => Ok(env),
    }
}

/// Decides a mutation's runbook step: a run that read a runbook
/// (`read_runbook`) changes something only inside an action that
/// `runbooks.begin-action` opened (`open`: the runbook and step, or why the
/// last one was refused). Any other run is not held to steps.
pub fn check_runbook_step(
    read_runbook: bool,
    open: Result<&(String, String), &str>,
) -> Result<(), Denied> {
    match (read_runbook, open) {
        (false, _) | (true, Ok(_)) => Ok(()),
        (true, Err(why)) => Err(Denied::OutsideRunbookAction {
            why: why.to_owned(),
        }),
    }
}

/// Decides a call on a target: the target and grant it may use, or why not.
pub fn check_target<'e>(scope: Scope<'e>, call: TargetCall<'_>) -> Result<Resolved<'e>, Denied> {
    match call {
        TargetCall::SqlQuoteIdent { target } => resolve(scope, target, Some(Kinded::Sql)),
        TargetCall::Sql {
            class: CapabilityClass::SessionControl,
            ..
        } => Err(Denied::SessionControlViaGeneric {
            capability: Generic::Sql,
        }),
        TargetCall::Mongo {
            class: CapabilityClass::SessionControl,
            ..
        } => Err(Denied::SessionControlViaGeneric {
            capability: Generic::Mongo,
        }),
        TargetCall::Sql { target, class } => {
            let resolved = resolve(scope, target, Some(Kinded::Sql))?;
            allows(scope, resolved, class)
        }
        TargetCall::Mongo { target, class } => {
            let resolved = resolve(scope, target, Some(Kinded::Mongo))?;
            allows(scope, resolved, class)
        }
        TargetCall::ArtifactDump { target, store } => {
            let resolved = store_grant(scope, target, store)?;
            allows(scope, resolved, CapabilityClass::Read)
        }
        TargetCall::Artifacts { target, store } => store_grant(scope, target, store),
        TargetCall::ArtifactRestore {
            target,
            store,
            destination,
        } => {
            let resolved = store_grant(scope, target, store)?;
            if !resolved.grant.restore_to.contains(destination) {
                return Err(Denied::RestoreNotAllowed {
                    plugin: scope.plugin.to_owned(),
                    target: target.to_owned(),
                    destination: destination.to_owned(),
                    at: Box::new(resolved.grant.source.clone()),
                });
            }
            lookup(scope.config, destination)?;
            Ok(resolved)
        }
        TargetCall::Logs { target } => resolve(scope, target, None),
        TargetCall::LogRead { target, path } => log_read(scope, target, path),
        TargetCall::LogReadResolved {
            target,
            written,
            real,
        } => log_read(scope, target, real).map_err(|denied| Denied::LogPathResolvesOutside {
            written: written.to_owned(),
            real: real.to_owned(),
            denied: Box::new(denied),
        }),
        TargetCall::RunStart { target, plugin } => {
            let resolved = resolve(scope, target, None)?;
            let grant = resolved.grant;
            if grant.run_plugins.contains(plugin) {
                return Ok(resolved);
            }
            Err(Denied::RunNotAllowed {
                plugin: scope.plugin.to_owned(),
                target: target.to_owned(),
                started: plugin.to_owned(),
                listed: grant.run_plugins.iter().cloned().collect(),
                at: Box::new(grant.source.clone()),
            })
        }
        TargetCall::SessionSignal { target } => {
            let resolved = resolve(scope, target, Some(Kinded::SignalBackend))?;
            session_control(scope, resolved, "cancel or terminate PostgreSQL backends")
        }
        TargetCall::KillOp { target } => {
            let resolved = resolve(scope, target, Some(Kinded::KillOp))?;
            session_control(scope, resolved, "kill MongoDB operations")
        }
    }
}

/// The configured target named `name`.
pub fn lookup<'e>(config: &'e Config, name: &str) -> Result<&'e Target, Denied> {
    config.target(name).ok_or_else(|| Denied::NoTarget {
        name: name.to_owned(),
    })
}

/// `target` if it is of a kind `capability` applies to.
pub fn of_kind(target: &Target, capability: Kinded) -> Result<&Target, Denied> {
    if capability.kinds().contains(&target.kind) {
        Ok(target)
    } else {
        Err(wrong_kind(target, capability))
    }
}

/// The refusal of `capability` on `target`, whose kind it does not apply to.
pub fn wrong_kind(target: &Target, capability: Kinded) -> Denied {
    Denied::WrongKind {
        target: target.name.clone(),
        kind: target.kind,
        capability,
    }
}

/// The plugin's grant for `target` (deny by default).
pub fn grant<'e>(scope: Scope<'e>, target: &str) -> Result<&'e Grant, Denied> {
    scope
        .policies
        .grant(scope.plugin, target)
        .ok_or_else(|| Denied::NoGrant {
            plugin: scope.plugin.to_owned(),
            target: target.to_owned(),
        })
}

/// The target named `target` and the plugin's grant for it: the target
/// must exist, be of a kind `capability` applies to (if given) and be
/// granted, checked in that order.
pub fn resolve<'e>(
    scope: Scope<'e>,
    target: &str,
    capability: Option<Kinded>,
) -> Result<Resolved<'e>, Denied> {
    let t = lookup(scope.config, target)?;
    if let Some(capability) = capability {
        of_kind(t, capability)?;
    }
    Ok(Resolved {
        target: t,
        grant: grant(scope, target)?,
    })
}

/// `resolved` if its grant lists `session-control` (the sessions capability).
fn session_control<'e>(
    scope: Scope<'e>,
    resolved: Resolved<'e>,
    what: &'static str,
) -> Result<Resolved<'e>, Denied> {
    let grant = resolved.grant;
    if grant.allows(CapabilityClass::SessionControl) {
        return Ok(resolved);
    }
    Err(Denied::SessionControlNotGranted {
        plugin: scope.plugin.to_owned(),
        target: grant.target.clone(),
        what,
        granted: grant.classes.iter().copied().collect(),
        at: Box::new(grant.source.clone()),
    })
}

/// `resolved` if its grant allows `class`.
fn allows<'e>(
    scope: Scope<'e>,
    resolved: Resolved<'e>,
    class: CapabilityClass,
) -> Result<Resolved<'e>, Denied> {
    let grant = resolved.grant;
    if grant.classes.contains(&class) {
        return Ok(resolved);
    }
    Err(Denied::ClassNotGranted {
        plugin: scope.plugin.to_owned(),
        target: grant.target.clone(),
        class,
        granted: grant.classes.iter().copied().collect(),
        at: Box::new(grant.source.clone()),
    })
}

/// The target and grant if the grant lists `store` (the artifacts capability).
fn store_grant<'e>(scope: Scope<'e>, target: &str, store: &str) -> Result<Resolved<'e>, Denied> {
    let resolved = resolve(scope, target, None)?;
    if scope.config.store(store).is_none() {
        return Err(Denied::NoStore {
            store: store.to_owned(),
        });
    }
    if resolved.grant.artifacts.contains(store) {
        return Ok(resolved);
    }
    Err(Denied::StoreNotGranted {
        plugin: scope.plugin.to_owned(),
        target: target.to_owned(),
        store: store.to_owned(),
        at: Box::new(resolved.grant.source.clone()),
    })
}

/// The target and grant if the grant's `log_files` cover `path`.
fn log_read<'e>(scope: Scope<'e>, target: &str, path: &Path) -> Result<Resolved<'e>, Denied> {
    let resolved = resolve(scope, target, None)?;
    let grant = resolved.grant;
    if grant.log_files.iter().any(|entry| entry.covers(path)) {
        return Ok(resolved);
    }
    Err(Denied::LogPathNotGranted {
        plugin: scope.plugin.to_owned(),
        target: target.to_owned(),
        path: path.to_owned(),
        granted: grant.log_files.iter().map(ToString::to_string).collect(),
        at: Box::new(grant.source.clone()),
    })
}
