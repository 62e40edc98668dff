//! The plugin's small key-value store (`warden:plugin/state`).
//!
//! Writes of a run are applied together when the run succeeds, and are
//! discarded when it fails and in dry-run. Keys up to 256 bytes, values up to
//! 64 KiB (the host refuses larger ones with `invalid-input`).

use crate::Error;
use crate::bindings::warden::plugin::state as wit;

/// Reads a key's bytes; `None` when it is not set.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
    wit::get(key)
}

/// Writes a key.
pub fn set(key: &str, value: &[u8]) -> Result<(), Error> {
    wit::set(key, value)
}

/// Removes a key.
pub fn delete(key: &str) -> Result<(), Error> {
    wit::delete(key)
}

/// Lists the keys that start with `prefix`.
pub fn list_keys(prefix: &str) -> Result<Vec<String>, Error> {
    wit::list_keys(prefix)
}

/// Reads a key as UTF-8 text; an error names the key if it is not UTF-8.
pub fn get_string(key: &str) -> Result<Option<String>, Error> {
    get(key)?
        .map(|bytes| {
            String::from_utf8(bytes)
                .map_err(|e| Error::other(format!("state key `{key}` is not UTF-8 text: {e}")))
        })
        .transpose()
}

/// Writes a key as UTF-8 text.
pub fn set_string(key: &str, value: &str) -> Result<(), Error> {
    set(key, value.as_bytes())
}

/// Reads a key as JSON (feature `json`).
#[cfg(feature = "json")]
pub fn get_json<T: serde::de::DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
    get(key)?
        .map(|bytes| {
            serde_json::from_slice(&bytes).map_err(|e| {
                Error::other(format!("state key `{key}` is not the expected JSON: {e}"))
            })
        })
        .transpose()
}

/// Writes a key as JSON (feature `json`).
#[cfg(feature = "json")]
pub fn set_json<T: serde::Serialize + ?Sized>(key: &str, value: &T) -> Result<(), Error> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| Error::other(format!("state key `{key}`: cannot encode JSON: {e}")))?;
    set(key, &bytes)
}
