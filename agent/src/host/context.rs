//! `warden:plugin/context`: the run's invocation and remaining time.

use super::HostState;
use super::permission::{LocalCall, check_local};
use crate::host::bindings::types::Invocation;
use crate::host::bindings::warden::plugin::context::Host;
use std::time::Instant;

impl Host for HostState {
    fn current_invocation(&mut self) -> wasmtime::Result<Invocation> {
        check_local(self.env.as_deref(), LocalCall::Context)
            .map(|env| env.invocation.clone())
            .map_err(wasmtime::Error::msg)
    }

    fn approved(&mut self) -> wasmtime::Result<bool> {
        Ok(self.env.as_ref().is_some_and(|env| env.approved))
    }

    fn remaining_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(match &self.env {
            Some(env) => {
                let left = env.deadline.saturating_duration_since(Instant::now());
                u64::try_from(left.as_millis()).unwrap_or(u64::MAX)
            }
            None => 0,
        })
    }
}
