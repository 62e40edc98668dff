//! Artifact stores: where the host writes backups (and anything else a
//! plugin asks it to keep), as named artifacts with a manifest.
//!
//! A store is configured by a `[[store]]` table of `warden.toml`
//! ([`StoreConfig`]) and opened with [`open`]. Writing goes through a
//! [`PendingArtifact`]: the host writes into its temporary
//! [`path`](PendingArtifact::path) with any tool, then commits it, which
//! checksums the data, moves it into place and writes its [`Manifest`]
//! last. An artifact without a manifest is incomplete, whatever its data
//! looks like, so a crash at any point leaves nothing that looks complete;
//! [`LocalStore::sweep`] removes the leftovers at agent start.
//!
//! ```no_run
//! # async fn demo() -> Result<(), warden::artifacts::ArtifactError> {
//! use warden::artifacts::{ArtifactKind, ArtifactName, StoreConfig, StoreKind, open};
//! let store = open(&StoreConfig {
//!     name: "local".into(),
//!     kind: StoreKind::Local { root: "/var/lib/warden/artifacts".into() },
//! });
//! let name = ArtifactName::parse("postgres/app/2025-01-31.dump")?;
//! let pending = store.begin(&name, ArtifactKind::File).await?;
//! // pg_dump -Fc -f <pending.path()> ...
//! let manifest = pending.commit(Default::default()).await?;
//! println!("{} bytes, sha256 {}", manifest.size_bytes, manifest.sha256);
//! # Ok(()) }
//! ```

pub mod dump;
mod local;
mod store;

use std::path::PathBuf;
use std::sync::Arc;

pub use local::LocalStore;
pub use store::{
    ArtifactError, ArtifactKind, ArtifactName, ArtifactStore, BoxFuture, FileEntry, KnownDigests,
    MANIFEST_SUFFIX, MAX_NAME_LEN, MAX_SEGMENT_LEN, Manifest, PendingArtifact, VerifyReport,
    directory_digest,
};

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
    /// A folder of this host ([`LocalStore`]).
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

/// Opens the store `config` describes. Does no I/O (a local root is
/// created on first write).
pub fn open(config: &StoreConfig) -> Arc<dyn ArtifactStore> {
    match &config.kind {
        StoreKind::Local { root } => Arc::new(LocalStore::new(root.clone())),
    }
}

#[cfg(test)]
mod tests;
