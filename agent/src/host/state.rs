//! `warden:plugin/state`: a small key-value store per plugin.
//!
//! Reads see the run's own writes; writes are buffered in a per-run overlay
//! and committed together when the run succeeds (never in dry-run), so a run
//! that fails leaves the state as it found it.

use super::permission::{LocalCall, check_local};
use super::{HostState, invalid};
use crate::host::bindings::types::Error;
use crate::host::bindings::warden::plugin::state::Host;
use std::collections::BTreeMap;

/// Longest key.
pub const MAX_KEY: usize = 256;
/// Largest value.
pub const MAX_VALUE: usize = 64 * 1024;
/// Most keys a plugin may hold.
pub const MAX_KEYS: u64 = 1000;
/// Most keys returned by one `list-keys`.
const MAX_LIST: u32 = 1000;

/// A run's pending writes (`None` = delete).
#[derive(Debug, Default)]
pub struct StateOverlay {
    pub writes: BTreeMap<String, Option<Vec<u8>>>,
}

/// The run's writes: none at start, handed back at the end (the runtime
/// commits them only for a succeeded, non-dry run).
impl super::capability::Capability for StateOverlay {
    fn finish<'a>(
        &'a mut self,
        effects: &'a mut super::RunEffects,
    ) -> futures_util::future::BoxFuture<'a, ()> {
        effects.state_writes = std::mem::take(&mut self.writes);
        Box::pin(std::future::ready(()))
    }
}

fn check_key(key: &str) -> Result<(), Error> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(invalid(format!(
            "state key must be 1..={MAX_KEY} bytes, got {}",
            key.len()
        )));
    }
    Ok(())
}

impl HostState {
    fn state_env(&self, call: LocalCall) -> wasmtime::Result<std::sync::Arc<super::RunEnv>> {
        check_local(self.env.clone(), call).map_err(wasmtime::Error::msg)
    }
}

impl Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let env = self.state_env(LocalCall::StateRead)?;
        if let Err(e) = check_key(&key) {
            return Ok(Err(e));
        }
        if let Some(v) = self.state.writes.get(&key) {
            return Ok(Ok(v.clone()));
        }
        match env.store.state_get(&env.plugin, &key).await {
            Ok(v) => Ok(Ok(v)),
            Err(e) => Ok(Err(Error::Other(format!("state database: {e}")))),
        }
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), Error>> {
        let env = self.state_env(LocalCall::StateWrite)?;
        if let Err(e) = check_key(&key) {
            return Ok(Err(e));
        }
        if value.len() > MAX_VALUE {
            return Ok(Err(invalid(format!(
                "state value for `{key}` is {} bytes; the limit is {MAX_VALUE}",
                value.len()
            ))));
        }
        if !self.state.writes.contains_key(&key) {
            let stored = env.store.state_count(&env.plugin).await.unwrap_or(0);
            let pending = self.state.writes.values().filter(|v| v.is_some()).count() as u64;
            if stored + pending >= MAX_KEYS {
                return Ok(Err(invalid(format!(
                    "plugin `{}` already holds {MAX_KEYS} state keys",
                    env.plugin
                ))));
            }
        }
        self.state.writes.insert(key, Some(value));
        Ok(Ok(()))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), Error>> {
        self.state_env(LocalCall::StateWrite)?;
        if let Err(e) = check_key(&key) {
            return Ok(Err(e));
        }
        self.state.writes.insert(key, None);
        Ok(Ok(()))
    }

    async fn list_keys(&mut self, prefix: String) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let env = self.state_env(LocalCall::StateRead)?;
        let stored = match env.store.state_keys(&env.plugin, &prefix, MAX_LIST).await {
            Ok(k) => k,
            Err(e) => return Ok(Err(Error::Other(format!("state database: {e}")))),
        };
        let mut keys: std::collections::BTreeSet<String> = stored.into_iter().collect();
        for (k, v) in &self.state.writes {
            if k.starts_with(&prefix) {
                if v.is_some() {
                    keys.insert(k.clone());
                } else {
                    keys.remove(k);
                }
            }
        }
        Ok(Ok(keys.into_iter().take(MAX_LIST as usize).collect()))
    }
}
