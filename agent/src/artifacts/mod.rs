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

use std::sync::Arc;

pub use crate::config::store::{StoreConfig, StoreKind};

pub use local::LocalStore;
pub use store::{
    ArtifactError, ArtifactKind, ArtifactName, ArtifactStore, BoxFuture, FileEntry, KnownDigests,
    MANIFEST_SUFFIX, MAX_NAME_LEN, MAX_SEGMENT_LEN, Manifest, PendingArtifact, VerifyReport,
    directory_digest,
};

/// Opens the store `config` describes. Does no I/O (a local root is
/// created on first write).
pub fn open(config: &StoreConfig) -> Arc<dyn ArtifactStore> {
    match &config.kind {
        StoreKind::Local { root } => Arc::new(LocalStore::new(root.clone())),
    }
}

#[cfg(test)]
mod tests;
