//! `[[store]]` tables of `warden.toml`, resolved: where the host keeps
//! artifacts. Opened by [`crate::artifacts::open`].

use std::path::PathBuf;

/// A `[[store]]` of `warden.toml`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `[a-z0-9][a-z0-9_-]*`, unique among the stores.
    pub name: String,
    pub kind: StoreKind,
}

/// Where a store keeps its artifacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// A folder of this host ([`crate::artifacts::LocalStore`]).
    Local {
        /// Absolute; dedicated to the store (sweeping removes whatever in
        /// it is not a complete artifact).
        root: PathBuf,
    },
    // S3 goes here: `S3 { bucket, prefix, region, endpoint, credentials
    // (from the environment or a file, never inline) }`, opened as an
    // `S3Store` whose pending writes stage data in a local folder and
    // upload it (then the manifest, last) on commit.
}

impl StoreKind {
    /// `"local"`, as written in `kind = ...`.
    pub fn as_str(&self) -> &'static str {
        match self {
            StoreKind::Local { .. } => "local",
        }
    }
}

impl StoreConfig {
    /// Checks the name and, for a local store, that the root is absolute
    /// and not `/`. The error completes a sentence about the store.
    pub fn validate(&self) -> Result<(), String> {
        if !crate::config::is_valid_target_name(&self.name) {
            return Err(format!(
                "invalid store name {:?}: use lowercase letters, digits, `_` and `-`, starting \
                 with a letter or a digit",
                self.name
            ));
        }
        match &self.kind {
            StoreKind::Local { root } => {
                if !root.is_absolute() {
                    return Err(format!(
                        "store `{}`: the root {} must be absolute",
                        self.name,
                        root.display()
                    ));
                }
                if root.parent().is_none() {
                    return Err(format!(
                        "store `{}`: the root must be a folder dedicated to the store, not `/`",
                        self.name
                    ));
                }
            }
        }
        Ok(())
    }
}
