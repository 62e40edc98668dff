//! Host bindings (owned by the host, used by [`crate::runtime`] to instantiate) for the `warden:plugin@0.1.7` world, generated from `wit/`.
//!
//! Imports are `async` (SQL and state go to databases; `log` and `context`
//! are plain functions) and `trappable`: a host
//! function returns `wasmtime::Result<T>`, where an `Err` ends the run (a host
//! fault or a deadline) and the WIT-level `result<_, error>` inside `T` is the
//! error the guest sees.

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit",
    imports: {
        // Called often and never waiting on I/O: plain host functions,
        // cheaper than async ones.
        "warden:plugin/log.write": trappable,
        "warden:plugin/context.current-invocation": trappable,
        "warden:plugin/context.remaining-ms": trappable,
        "warden:plugin/context.approved": trappable,
        default: async | trappable,
    },
    exports: { default: async },
    with: {
        "warden:plugin/mongo.cursor": crate::host::resources::MongoCursor,
    },
});

pub use self::warden::plugin::types;
