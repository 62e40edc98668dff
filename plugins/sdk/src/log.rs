//! Log lines attributed to the current run (`warden:plugin/log`).
//!
//! The functions take a `&str`; the crate-root macros [`trace!`](crate::trace),
//! [`debug!`](crate::debug), [`info!`](crate::info), [`warn!`](crate::warn)
//! and [`error!`](crate::error) take `format!` arguments. The host caps the
//! number and size of lines per run and drops (and counts) the rest.

pub use crate::bindings::warden::plugin::log::Level;

/// Writes one line at `level`.
pub fn write(level: Level, message: &str) {
    crate::bindings::warden::plugin::log::write(level, message);
}

/// Writes one line at `trace` level.
pub fn trace(message: &str) {
    write(Level::Trace, message);
}

/// Writes one line at `debug` level.
pub fn debug(message: &str) {
    write(Level::Debug, message);
}

/// Writes one line at `info` level.
pub fn info(message: &str) {
    write(Level::Info, message);
}

/// Writes one line at `warn` level.
pub fn warn(message: &str) {
    write(Level::Warn, message);
}

/// Writes one line at `error` level.
pub fn error(message: &str) {
    write(Level::Error, message);
}

/// `trace!("checked {n} tables")`: a `format!`-style trace line.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::log::write($crate::log::Level::Trace, &::std::format!($($arg)+)) };
}

/// `debug!("...")`: a `format!`-style debug line.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log::write($crate::log::Level::Debug, &::std::format!($($arg)+)) };
}

/// `info!("...")`: a `format!`-style info line.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log::write($crate::log::Level::Info, &::std::format!($($arg)+)) };
}

/// `warn!("...")`: a `format!`-style warning line.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log::write($crate::log::Level::Warn, &::std::format!($($arg)+)) };
}

/// `error!("...")`: a `format!`-style error line.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log::write($crate::log::Level::Error, &::std::format!($($arg)+)) };
}
