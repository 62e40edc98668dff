//! `warden:plugin/sessions`: cancelling and terminating other sessions
//! (being written: every call is refused for now).

use super::HostState;
use crate::runtime::bindings::types::Error;
use crate::runtime::bindings::warden::plugin::sessions::{Host, Outcome, Signal};

const PENDING: &str = "the sessions capability is not available in this build yet";

impl Host for HostState {
    async fn signal_backend(
        &mut self,
        _target: String,
        _pid: i32,
        _signal: Signal,
    ) -> wasmtime::Result<Result<Outcome, Error>> {
        Ok(Err(Error::Other(PENDING.into())))
    }

    async fn kill_op(
        &mut self,
        _target: String,
        _opid: i64,
    ) -> wasmtime::Result<Result<Outcome, Error>> {
        Ok(Err(Error::Other(PENDING.into())))
    }
}
