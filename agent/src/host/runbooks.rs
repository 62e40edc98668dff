//! `warden:plugin/runbooks`: the runbooks the host loaded (being written:
//! none are loaded yet).

use super::HostState;
use crate::runtime::bindings::types::{Error, Label};
use crate::runtime::bindings::warden::plugin::runbooks::Host;

impl Host for HostState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, Error>> {
        Ok(Err(Error::InvalidInput(format!(
            "no runbook named `{name}`"
        ))))
    }

    async fn for_alert(&mut self, _labels: Vec<Label>) -> wasmtime::Result<Vec<String>> {
        Ok(Vec::new())
    }
}
