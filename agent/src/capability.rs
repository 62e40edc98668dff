//! Capability classes and target kinds: the vocabulary shared by policies,
//! the SQL classifier and the WIT contract (`warden:plugin/types`).

use serde::{Deserialize, Serialize};
use std::fmt;

/// The class of an operation. A grant lists the classes a plugin may use on
/// a target; anything else is denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapabilityClass {
    /// Reads that change nothing.
    Read,
    /// VACUUM, ANALYZE, REINDEX, CHECKPOINT, PRAGMA optimize.
    Maintenance,
    /// CREATE, ALTER, DROP, TRUNCATE, COMMENT.
    Ddl,
    /// INSERT, UPDATE, DELETE, MERGE, locking reads.
    Write,
    /// Cancelling or terminating other sessions.
    SessionControl,
}

impl CapabilityClass {
    /// Every class, in order of increasing risk.
    pub const ALL: [CapabilityClass; 5] = [
        CapabilityClass::Read,
        CapabilityClass::Maintenance,
        CapabilityClass::Ddl,
        CapabilityClass::Write,
        CapabilityClass::SessionControl,
    ];

    /// The name used in policies and reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            CapabilityClass::Read => "read",
            CapabilityClass::Maintenance => "maintenance",
            CapabilityClass::Ddl => "ddl",
            CapabilityClass::Write => "write",
            CapabilityClass::SessionControl => "session-control",
        }
    }

    /// True for classes that change something (everything but `read`).
    pub const fn is_mutating(self) -> bool {
        !matches!(self, CapabilityClass::Read)
    }
}

impl fmt::Display for CapabilityClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of database a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Sqlite,
    Postgres,
    Mongodb,
}

impl TargetKind {
    /// The OpenTelemetry `db.system.name` of this kind of database.
    pub const fn db_system(self) -> &'static str {
        match self {
            TargetKind::Postgres => "postgresql",
            TargetKind::Sqlite => "sqlite",
            TargetKind::Mongodb => "mongodb",
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            TargetKind::Sqlite => "sqlite",
            TargetKind::Postgres => "postgres",
            TargetKind::Mongodb => "mongodb",
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
