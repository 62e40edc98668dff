//! Conversions between the host's types and the WIT bindings
//! ([`super::bindings`]), written once for every capability.

use super::bindings::types::{CapabilityClass as WitClass, Error};
use crate::capability::CapabilityClass;

/// The WIT form of a capability class.
pub fn to_wit_class(c: CapabilityClass) -> WitClass {
    match c {
        CapabilityClass::Read => WitClass::Read,
        CapabilityClass::Maintenance => WitClass::Maintenance,
        CapabilityClass::Ddl => WitClass::Ddl,
        CapabilityClass::Write => WitClass::Write,
        CapabilityClass::SessionControl => WitClass::SessionControl,
    }
}

/// A capability class from its WIT form.
pub fn from_wit_class(c: WitClass) -> CapabilityClass {
    match c {
        WitClass::Read => CapabilityClass::Read,
        WitClass::Maintenance => CapabilityClass::Maintenance,
        WitClass::Ddl => CapabilityClass::Ddl,
        WitClass::Write => CapabilityClass::Write,
        WitClass::SessionControl => CapabilityClass::SessionControl,
    }
}

/// The text of a WIT error, for records.
pub fn error_text(e: &Error) -> String {
    match e {
        Error::AccessDenied(m) => format!("access denied: {m}"),
        Error::Timeout(m) => format!("timeout: {m}"),
        Error::InvalidInput(m) => format!("invalid input: {m}"),
        Error::TargetError(d) if d.code.is_empty() => format!("target error: {}", d.message),
        Error::TargetError(d) => format!("target error {}: {}", d.code, d.message),
        Error::Other(m) => m.clone(),
    }
}
