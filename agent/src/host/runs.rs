//! `warden:plugin/runs`: starting other plugins through the agent's queue
//! (being written: refused for now).

use super::HostState;
use crate::runtime::bindings::types::{Error, Param};
use crate::runtime::bindings::warden::plugin::runs::{Host, RunInfo};

const PENDING: &str = "starting other plugins is not available in this build yet";

impl Host for HostState {
    async fn start(
        &mut self,
        _plugin: String,
        _target: String,
        _params: Vec<Param>,
    ) -> wasmtime::Result<Result<RunInfo, Error>> {
        Ok(Err(Error::Other(PENDING.into())))
    }

    async fn get(&mut self, _id: String) -> wasmtime::Result<Result<RunInfo, Error>> {
        Ok(Err(Error::Other(PENDING.into())))
    }
}
