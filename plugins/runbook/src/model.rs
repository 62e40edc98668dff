//! A runbook as the host serves it (`warden:plugin/runbooks.get`; the file
//! format is `policies/runbooks/README.md`): the model shared with the
//! host, [`warden_model`], which reads the host's JSON back into the same
//! types the host loaded. The host validated it at load: here the model
//! only has to read it.

pub use warden_model::{
    Action, OnFailure, ParamType, Runbook, Statement, Step, StepKind, format_duration,
};
