//! Guest SDK for Warden plugins.
//!
//! A Warden plugin is a WebAssembly component (`wasm32-wasip2`, `cdylib`) that
//! implements the `warden:plugin@0.1.7` world from `wit/plugin.wit`: it
//! exports `describe` and `run`, and reaches its target only through the host
//! (`log`, `context`, `sql`, `mongo`, `artifacts`, `planner`, `logs`,
//! `state`). This crate generates the bindings once and wraps them in typed
//! Rust:
//!
//! - [`Plugin`] + [`export_plugin!`]: the two exports, as a trait;
//! - [`Context`]: the invocation, typed parameters (`param_f64("dead_ratio")`,
//!   errors that name the parameter), the deadline, and [`Sql`] on the
//!   invocation's target (`ctx.sql()`) or another one (`ctx.sql_on(name)`);
//! - [`Rows`]/[`Row`]: results with tolerant typed getters by column name;
//! - [`Mongo`] (`ctx.mongo()`, `ctx.mongo_on(name)`): commands and
//!   [`Cursor`]s, as BSON bytes or, with the crate feature `bson`, as
//!   `mongo::Document`s;
//! - [`Artifacts`] (`ctx.artifacts("store")`): host-side dump, restore, list,
//!   verify and delete of backups, with option builders
//!   ([`PgDumpOptions`], [`MongoDumpOptions`], [`RestoreOptions`]);
//! - [`planner`]: what-if costs with hypothetical indexes (PostgreSQL);
//! - [`logs`]: granted server log files, read-only, in chunks cut at line
//!   ends, with a forward line iterator and a tail;
//! - [`sessions`]: cancel or terminate a PostgreSQL backend, kill a MongoDB
//!   operation (`terminate`, `cancel`, `kill_op`), after the host looked it up;
//! - [`runbooks`]: the incident runbooks the host loaded, as JSON, by name
//!   or by alert labels;
//! - [`runs`]: start runs of other plugins through the agent's queue, and
//!   follow them;
//! - [`log`] functions and the [`info!`]-style macros, [`state`] helpers;
//! - builders for [`Manifest`], [`ParamSpec`], [`Report`], [`Finding`];
//! - [`Error`]: the contract's error variant, with constructors
//!   ([`Error::invalid_input`]), [`ResultExt::context`] and `From`
//!   conversions for `?`.
//!
//! A guest error is returned to the host as `err`; a panic aborts the
//! instance (a trap), which the host survives but records as a crash, so
//! prefer errors.
//!
//! # Example
//!
//! ```no_run
//! use warden_sdk::{CapabilityClass, Context, Error, Finding, Manifest, ParamSpec, Plugin,
//!                  Report, TargetKind};
//!
//! struct Biggest;
//!
//! impl Plugin for Biggest {
//!     fn manifest() -> Manifest {
//!         Manifest::new("biggest", env!("CARGO_PKG_VERSION"), "Lists the largest tables.")
//!             .capability(CapabilityClass::Read)
//!             .target_kind(TargetKind::Postgres)
//!             .param(ParamSpec::integer("limit", "How many tables to list.").with_default(5))
//!     }
//!
//!     fn run(ctx: &Context) -> Result<Report, Error> {
//!         let limit = i64::try_from(ctx.param_u64("limit")?).unwrap_or(i64::MAX);
//!         let rows = ctx.sql().query(
//!             "SELECT relname::text AS name, pg_table_size(relid) AS bytes \
//!              FROM pg_stat_user_tables ORDER BY 2 DESC LIMIT $1",
//!             &[limit.into()],
//!         )?;
//!         let mut report = Report::ok(format!("{} tables", rows.len()));
//!         for row in &rows {
//!             let (name, bytes) = (row.get_str("name")?, row.get_i64("bytes")?);
//!             warden_sdk::debug!("{name}: {bytes} bytes");
//!             report.add_finding(Finding::info(name, format!("{bytes} bytes")));
//!         }
//!         Ok(report.metric("tables", rows.len() as f64, ""))
//!     }
//! }
//!
//! warden_sdk::export_plugin!(Biggest);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `cdylib`
//! output `target/wasm32-wasip2/release/<crate>.wasm` is the component.

pub mod artifacts;
mod context;
mod error;
pub mod log;
pub mod logs;
pub mod mongo;
mod names;
pub mod params;
pub mod planner;
mod report;
pub mod runbooks;
pub mod runs;
pub mod sessions;
pub mod sql;
pub mod state;
pub mod units;

/// The raw `wit-bindgen` bindings of the `plugin` world (generated once here).
pub mod bindings {
    // The contract in `wit/` at the repository root.
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "warden_sdk::bindings",
    });
}

pub use artifacts::{
    Artifact, Artifacts, DumpOptions, DumpResult, MongoDumpOptions, ObjectCount, PgDumpOptions,
    PgFormat, RestoreOptions, RestoreResult, VerifyResult,
};
pub use bindings::warden::plugin::types::{
    Action, ActionState, Alert, CapabilityClass, DbError, Error, Finding, Invocation, Label,
    Manifest, Metric, Outcome, Param, ParamSpec, ParamType, Report, ReportStatus, Severity,
    TargetKind, Trigger,
};
pub use context::{Context, parse_duration};
pub use error::ResultExt;
pub use log::Level;
pub use mongo::{Cursor, Mongo};
pub use params::{FromParam, Params};
// `Outcome` is declared once in `types` (since 0.1.7); `sql::Outcome`,
// `mongo::Outcome` and `artifacts::Outcome` are the same type.
pub use sql::{Column, Execution, Notice, NoticedExecution, Row, Rows, Sql, Value};

/// A Warden plugin: what it is, and what it does. Export it with
/// [`export_plugin!`].
pub trait Plugin {
    /// The manifest returned by `describe`. Must not call the host.
    fn manifest() -> Manifest;

    /// One run. Return `Err` for failures; do not panic.
    fn run(ctx: &Context) -> Result<Report, Error>;
}

#[doc(hidden)]
pub mod __private {
    use core::marker::PhantomData;

    use crate::{Context, Error, Invocation, Manifest, Plugin, Report, bindings::Guest};

    /// Adapts a [`Plugin`] to the generated `Guest` trait.
    pub struct Export<P>(PhantomData<P>);

    impl<P: Plugin> Guest for Export<P> {
        fn describe() -> Manifest {
            P::manifest()
        }

        fn run(invocation: Invocation) -> Result<Report, Error> {
            P::run(&Context::new(invocation))
        }
    }
}

/// Exports a [`Plugin`] as the component's `describe` and `run`. Use it once,
/// in the plugin crate's `lib.rs`: `warden_sdk::export_plugin!(MyPlugin);`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            type __WardenPluginExport = $crate::__private::Export<$plugin>;
            $crate::bindings::__export_plugin_world!(
                __WardenPluginExport with_types_in $crate::bindings
            );
        };
    };
}
