//! The permission check for every host call: one exhaustive `match`, no
//! wildcard arm. Adding a host function means adding a [`HostCall`] case,
//! which does not compile until its rule is written here.

use super::RunEnv;
use crate::capability::{CapabilityClass, TargetKind};
use crate::policy::Grant;
use std::path::Path;

/// A host call, with what its permission depends on.
#[derive(Debug, Clone, Copy)]
pub enum HostCall<'a> {
    /// `log.write`
    Log,
    /// `context.*`
    Context,
    /// `state.get`, `state.list-keys` (the plugin's own namespace)
    StateRead,
    /// `state.set`, `state.delete` (the plugin's own namespace)
    StateWrite,
    /// `sql.classify` (pure; touches nothing)
    SqlClassify,
    /// `sql.quote-ident` on a target
    SqlQuoteIdent { target: &'a str },
    /// `sql.query` / `sql.execute`, after the host classified the statement
    Sql {
        target: &'a str,
        class: CapabilityClass,
    },
    /// `mongo.classify` (pure; touches nothing)
    MongoClassify,
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
    /// `logs.read` / `logs.read-back` of `path` through `target`'s grant.
    /// `path` is absolute and normalized; the caller checks it twice: as
    /// the plugin wrote it (before touching the filesystem, so a plugin
    /// cannot probe for files outside its grant) and resolved (symlinks,
    /// so no link leads out of a granted directory). Deciding stats the
    /// granted paths: call it off the async executor.
    LogRead { target: &'a str, path: &'a Path },
    /// `sessions.signal-backend` on PostgreSQL `target`. The caller then
    /// refuses the agent's own sessions always, and privileged ones unless
    /// the returned grant has `allow_privileged_sessions`.
    SessionSignal { target: &'a str },
    /// `sessions.kill-op` on MongoDB `target` (the same rules).
    KillOp { target: &'a str },
    /// `runs.start` of `plugin` on `target`: the grant for `target` lists it
    /// in `run_plugins` (the started run then has its own grant).
    RunStart { target: &'a str, plugin: &'a str },
    /// `runs.get` of a run this run started.
    RunGet,
}

/// The one route for `session-control` through the generic database calls:
/// none. `sql.query` / `sql.execute` and `mongo.run-command` /
/// `mongo.open-cursor` refuse statements and commands classified
/// `session-control` whatever the grant, and name the call that signals a
/// session after looking it up (and refusing the agent's own, superuser and
/// internal sessions).
fn generic_session_control(capability: &str) -> String {
    let (what, instead) = match capability {
        "sql" => (
            "statements that cancel or terminate sessions (`pg_cancel_backend`, \
             `pg_terminate_backend`) are",
            "sessions.signal-backend",
        ),
        _ => (
            "commands that kill operations or sessions (`killOp`, `killSessions`, ...) are",
            "sessions.kill-op",
        ),
    };
    format!(
        "{what} not run through the {capability} capability: use `{instead}`, which looks the \
         session up first and refuses the agent's own, superuser and internal sessions \
         (capability class `session-control`)"
    )
}

/// Decides one call. `env` is `None` during `describe`, when nothing is allowed.
/// Returns the grant that allowed a target call.
pub fn check<'e>(env: Option<&'e RunEnv>, call: HostCall<'_>) -> Result<Option<&'e Grant>, String> {
    let Some(env) = env else {
        return Err("describe() must not call host functions".to_string());
    };
    match call {
        HostCall::Log | HostCall::Context | HostCall::SqlClassify | HostCall::MongoClassify => {
            Ok(None)
        }
        // State is the plugin's own key-value namespace: no grant needed,
        // caps are enforced by the state module.
        HostCall::StateRead | HostCall::StateWrite => Ok(None),
        HostCall::SqlQuoteIdent { target } => sql_target(env, target).map(Some),
        HostCall::Sql {
            class: CapabilityClass::SessionControl,
            ..
        } => Err(generic_session_control("sql")),
        HostCall::Mongo {
            class: CapabilityClass::SessionControl,
            ..
        } => Err(generic_session_control("mongo")),
        HostCall::Sql { target, class } => {
            let grant = sql_target(env, target)?;
            allows(env, grant, class).map(Some)
        }
        HostCall::Mongo { target, class } => {
            let grant = kind_target(env, target, "mongo", &[TargetKind::Mongodb])?;
            allows(env, grant, class).map(Some)
        }
        HostCall::ArtifactDump { target, store } => {
            let grant = store_grant(env, target, store)?;
            allows(env, grant, CapabilityClass::Read).map(Some)
        }
        HostCall::Artifacts { target, store } => store_grant(env, target, store).map(Some),
        HostCall::ArtifactRestore {
            target,
            store,
            destination,
        } => {
            let grant = store_grant(env, target, store)?;
            if !grant.restore_to.contains(destination) {
                return Err(format!(
                    "plugin `{}` may not restore artifacts of `{target}` into `{destination}`: \
                     the grant at {} does not list it in `restore_to`",
                    env.plugin, grant.source
                ));
            }
            if env.config.target(destination).is_none() {
                return Err(format!("no target named `{destination}`"));
            }
            Ok(Some(grant))
        }
        HostCall::LogRead { target, path } => {
            let grant = target_grant(env, target)?;
            if grant.log_files.iter().any(|entry| entry.covers(path)) {
                return Ok(Some(grant));
            }
            let granted = if grant.log_files.is_empty() {
                "it grants no log files".to_string()
            } else {
                let entries: Vec<String> =
                    grant.log_files.iter().map(|e| format!("`{e}`")).collect();
                format!("it grants {}", entries.join(", "))
            };
            Err(format!(
                "plugin `{}` may not read the log file `{}` through target `{target}`: {granted} \
                 (add the path to the grant's `log_files` at {})",
                env.plugin,
                path.display(),
                grant.source
            ))
        }
        HostCall::RunStart { target, plugin } => {
            let grant = target_grant(env, target)?;
            if grant.run_plugins.contains(plugin) {
                return Ok(Some(grant));
            }
            Err(format!(
                "plugin `{}` may not start `{plugin}` on target `{target}`: its grant at {} \
                 does not list it in `run_plugins`{}",
                env.plugin,
                grant.source,
                if grant.run_plugins.is_empty() {
                    String::new()
                } else {
                    let listed: Vec<&str> = grant.run_plugins.iter().map(String::as_str).collect();
                    format!(" (it lists: {})", listed.join(", "))
                }
            ))
        }
        HostCall::RunGet => Ok(None),
        HostCall::SessionSignal { target } => {
            let grant = kind_target(
                env,
                target,
                "sessions.signal-backend",
                &[TargetKind::Postgres],
            )?;
            session_control(env, grant, "cancel or terminate PostgreSQL backends").map(Some)
        }
        HostCall::KillOp { target } => {
            let grant = kind_target(env, target, "sessions.kill-op", &[TargetKind::Mongodb])?;
            session_control(env, grant, "kill MongoDB operations").map(Some)
        }
    }
}

/// The grant if it lists `session-control` (the sessions capability).
fn session_control<'e>(env: &RunEnv, grant: &'e Grant, what: &str) -> Result<&'e Grant, String> {
    if grant.allows(CapabilityClass::SessionControl) {
        return Ok(grant);
    }
    let granted: Vec<&str> = grant.classes.iter().map(|c| c.as_str()).collect();
    Err(format!(
        "plugin `{}` may not {what} on target `{}`: its grant at {} does not list \
         `session-control` in `capabilities` (granted: {})",
        env.plugin,
        grant.target,
        grant.source,
        granted.join(", ")
    ))
}

/// The grant if it allows `class`.
fn allows<'e>(env: &RunEnv, grant: &'e Grant, class: CapabilityClass) -> Result<&'e Grant, String> {
    if grant.classes.contains(&class) {
        Ok(grant)
    } else {
        let granted: Vec<&str> = grant.classes.iter().map(|c| c.as_str()).collect();
        Err(format!(
            "plugin `{}` is not granted `{class}` on target `{}` (granted: {}; grant at {})",
            env.plugin,
            grant.target,
            granted.join(", "),
            grant.source
        ))
    }
}

/// The grant for `target` if it lists `store` (the artifacts capability).
fn store_grant<'e>(env: &'e RunEnv, target: &str, store: &str) -> Result<&'e Grant, String> {
    let grant = target_grant(env, target)?;
    if env.config.store(store).is_none() {
        return Err(format!("no artifact store named `{store}`"));
    }
    if grant.artifacts.contains(store) {
        Ok(grant)
    } else {
        Err(format!(
            "plugin `{}` has no artifacts capability for target `{target}` in store `{store}` \
             (add `artifacts = [\"{store}\"]` to the grant at {})",
            env.plugin, grant.source
        ))
    }
}

/// The grant for a call of capability `capability` on `target`, if the
/// target exists, is of one of `kinds` and the plugin has a grant for it.
fn kind_target<'e>(
    env: &'e RunEnv,
    target: &str,
    capability: &str,
    kinds: &[TargetKind],
) -> Result<&'e Grant, String> {
    let Some(t) = env.config.target(target) else {
        return Err(format!("no target named `{target}`"));
    };
    if !kinds.contains(&t.kind) {
        return Err(format!(
            "target `{target}` is a {} database: the {capability} capability does not apply",
            t.kind
        ));
    }
    target_grant(env, target)
}

/// The plugin's grant for `target`, which must exist.
fn target_grant<'e>(env: &'e RunEnv, target: &str) -> Result<&'e Grant, String> {
    if env.config.target(target).is_none() {
        return Err(format!("no target named `{target}`"));
    }
    env.policies.grant(&env.plugin, target).ok_or_else(|| {
        format!(
            "plugin `{}` has no grant for target `{target}` (deny by default: add a [[grant]] in the policy folder)",
            env.plugin
        )
    })
}

/// The grant for a SQL call on `target`, if the target exists, speaks SQL and
/// the plugin has a grant for it.
fn sql_target<'e>(env: &'e RunEnv, target: &str) -> Result<&'e Grant, String> {
    kind_target(
        env,
        target,
        "sql",
        &[TargetKind::Sqlite, TargetKind::Postgres],
    )
}
