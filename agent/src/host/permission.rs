//! The permission check for every host call: one exhaustive `match`, no
//! wildcard arm. Adding a host function means adding a [`HostCall`] case,
//! which does not compile until its rule is written here.

use super::RunEnv;
use crate::capability::{CapabilityClass, TargetKind};
use crate::policy::Grant;

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
}

/// Decides one call. `env` is `None` during `describe`, when nothing is allowed.
/// Returns the grant that allowed a target call.
pub fn check<'e>(env: Option<&'e RunEnv>, call: HostCall<'_>) -> Result<Option<&'e Grant>, String> {
    let Some(env) = env else {
        return Err("describe() must not call host functions".to_string());
    };
    match call {
        HostCall::Log | HostCall::Context | HostCall::SqlClassify => Ok(None),
        // State is the plugin's own key-value namespace: no grant needed,
        // caps are enforced by the state module.
        HostCall::StateRead | HostCall::StateWrite => Ok(None),
        HostCall::SqlQuoteIdent { target } => sql_target(env, target).map(Some),
        HostCall::Sql { target, class } => {
            let grant = sql_target(env, target)?;
            if grant.classes.contains(&class) {
                Ok(Some(grant))
            } else {
                let granted: Vec<&str> = grant.classes.iter().map(|c| c.as_str()).collect();
                Err(format!(
                    "plugin `{}` is not granted `{class}` on target `{target}` (granted: {}; grant at {})",
                    env.plugin,
                    granted.join(", "),
                    grant.source
                ))
            }
        }
    }
}

/// The grant for a SQL call on `target`, if the target exists, speaks SQL and
/// the plugin has a grant for it.
fn sql_target<'e>(env: &'e RunEnv, target: &str) -> Result<&'e Grant, String> {
    let Some(t) = env.config.target(target) else {
        return Err(format!("no target named `{target}`"));
    };
    match t.kind {
        TargetKind::Sqlite | TargetKind::Postgres => {}
        TargetKind::Mongodb => {
            return Err(format!(
                "target `{target}` is a {} database: the sql capability does not apply",
                t.kind
            ));
        }
    }
    env.policies.grant(&env.plugin, target).ok_or_else(|| {
        format!(
            "plugin `{}` has no grant for target `{target}` (deny by default: add a [[grant]] in the policy folder)",
            env.plugin
        )
    })
}
