//! The WIT names of the contract's enums (the generated `Debug` prints Rust
//! paths such as `CapabilityClass::Read`).

use crate::{
    ActionState, CapabilityClass, Level, Outcome, PgFormat, ReportStatus, Severity, TargetKind,
};

macro_rules! wit_names {
    ($($ty:ident { $($case:ident => $name:literal),* $(,)? })*) => {$(
        impl $ty {
            /// The case's name as written in the WIT.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$case => $name,)*
                }
            }
        }
    )*};
}

wit_names! {
    CapabilityClass {
        Read => "read",
        Maintenance => "maintenance",
        Ddl => "ddl",
        Write => "write",
        SessionControl => "session-control",
    }
    TargetKind { Sqlite => "sqlite", Postgres => "postgres", Mongodb => "mongodb" }
    Severity { Info => "info", Warning => "warning", Critical => "critical" }
    ReportStatus { Ok => "ok", Warning => "warning", Critical => "critical" }
    ActionState { Executed => "executed", Planned => "planned", Failed => "failed" }
    Outcome { Executed => "executed", Planned => "planned" }
    PgFormat { Custom => "custom", Directory => "directory" }
    Level { Trace => "trace", Debug => "debug", Info => "info", Warn => "warn", Error => "error" }
}
