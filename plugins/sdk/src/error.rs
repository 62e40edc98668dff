//! The contract's `error` variant, with constructors, accessors and `?`
//! conversions.

use core::fmt;

use crate::{DbError, Error};

impl Error {
    /// The grant does not allow something (`access-denied`).
    pub fn access_denied(message: impl Into<String>) -> Self {
        Error::AccessDenied(message.into())
    }

    /// A time limit was reached (`timeout`).
    pub fn timeout(message: impl Into<String>) -> Self {
        Error::Timeout(message.into())
    }

    /// A malformed request or parameter (`invalid-input`).
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }

    /// An error reported by the target's database (`target-error`).
    pub fn target_error(code: impl Into<String>, message: impl Into<String>) -> Self {
        Error::TargetError(DbError {
            code: code.into(),
            message: message.into(),
        })
    }

    /// Anything else (`other`).
    pub fn other(message: impl Into<String>) -> Self {
        Error::Other(message.into())
    }

    /// The case's WIT name: `access-denied`, `timeout`, `invalid-input`,
    /// `target-error` or `other`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::AccessDenied(_) => "access-denied",
            Error::Timeout(_) => "timeout",
            Error::InvalidInput(_) => "invalid-input",
            Error::TargetError(_) => "target-error",
            Error::Other(_) => "other",
        }
    }

    /// The message (for `target-error`, the database's message).
    pub fn message(&self) -> &str {
        match self {
            Error::AccessDenied(m)
            | Error::Timeout(m)
            | Error::InvalidInput(m)
            | Error::Other(m) => m,
            Error::TargetError(e) => &e.message,
        }
    }

    /// The database's error code (SQLSTATE, SQLite extended code) of a
    /// non-empty `target-error`.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::TargetError(e) if !e.code.is_empty() => Some(&e.code),
            _ => None,
        }
    }

    /// True for `access-denied`.
    pub fn is_access_denied(&self) -> bool {
        matches!(self, Error::AccessDenied(_))
    }

    /// True for `invalid-input`.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Error::InvalidInput(_))
    }

    /// True for `target-error`.
    pub fn is_target_error(&self) -> bool {
        matches!(self, Error::TargetError(_))
    }

    /// True for `timeout`.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout(_))
    }

    /// One line for humans: `timeout: canceling statement due to lock
    /// timeout`, `target-error 55P03: ...`. (The generated `Display` prints the
    /// `Debug` form.)
    pub fn summary(&self) -> String {
        match self.code() {
            Some(code) => format!("{} {code}: {}", self.kind(), self.message()),
            None => format!("{}: {}", self.kind(), self.message()),
        }
    }

    /// The same case with `what: ` put in front of its message, e.g.
    /// `err.context("reading pg_stat_user_tables")`.
    pub fn context(self, what: impl fmt::Display) -> Self {
        match self {
            Error::AccessDenied(m) => Error::AccessDenied(format!("{what}: {m}")),
            Error::Timeout(m) => Error::Timeout(format!("{what}: {m}")),
            Error::InvalidInput(m) => Error::InvalidInput(format!("{what}: {m}")),
            Error::Other(m) => Error::Other(format!("{what}: {m}")),
            Error::TargetError(DbError { code, message }) => Error::TargetError(DbError {
                code,
                message: format!("{what}: {message}"),
            }),
        }
    }
}

/// Adds context to any `Result` whose error converts into [`Error`].
///
/// ```ignore
/// let rows = ctx.sql().query(STATS, &[]).context("reading pg_stat_user_tables")?;
/// ```
pub trait ResultExt<T> {
    /// Prefixes the error's message with `what: `, keeping its case.
    fn context(self, what: impl fmt::Display) -> Result<T, Error>;
    /// Like [`ResultExt::context`], computing the text only on error.
    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T, Error>;
}

impl<T, E: Into<Error>> ResultExt<T> for Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T, Error> {
        self.map_err(|e| e.into().context(what))
    }

    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T, Error> {
        self.map_err(|e| e.into().context(what()))
    }
}

macro_rules! other_from {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Other(e.to_string())
            }
        }
    )*};
}

other_from!(
    String,
    &str,
    std::io::Error,
    std::fmt::Error,
    std::num::ParseIntError,
    std::num::ParseFloatError,
    std::str::ParseBoolError,
    std::str::Utf8Error,
    std::string::FromUtf8Error,
);

#[cfg(feature = "json")]
other_from!(serde_json::Error);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_kind_and_code() {
        assert_eq!(Error::timeout("lock").summary(), "timeout: lock");
        assert_eq!(
            Error::target_error("55P03", "could not obtain lock").summary(),
            "target-error 55P03: could not obtain lock"
        );
        assert_eq!(
            Error::target_error("", "boom").summary(),
            "target-error: boom"
        );
    }

    #[test]
    fn context_keeps_the_case() {
        let e = Error::target_error("42P01", "no such table").context("reading stats");
        assert_eq!(e.code(), Some("42P01"));
        assert_eq!(e.message(), "reading stats: no such table");
        let r: Result<(), std::num::ParseIntError> = "x".parse::<i32>().map(|_| ());
        let e = r.context("parsing counter").err();
        assert!(matches!(e, Some(Error::Other(m)) if m.starts_with("parsing counter: ")));
    }
}
