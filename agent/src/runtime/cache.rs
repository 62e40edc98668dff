//! The on-disk cache of compiled components, keyed by the component's
//! SHA-256 and the engine's compatibility hash.
//!
//! A cache entry is written to a temporary file and renamed into place, so a
//! crash or a concurrent writer never leaves a half-written entry that looks
//! complete; an entry that fails to load is recompiled and replaced.

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// SHA-256 of a component, hex.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A short hex tag of the engine's configuration: entries compiled by a
/// different engine or wasmtime version are never reused.
pub fn engine_tag(engine: &Engine) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Compiled components on disk.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
    tag: String,
}

impl ComponentCache {
    pub fn new(dir: &Path, engine: &Engine) -> ComponentCache {
        ComponentCache {
            dir: dir.to_path_buf(),
            tag: engine_tag(engine),
        }
    }

    fn entry(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}-{}.cwasm", self.tag))
    }

    /// The component for `bytes` (whose SHA-256 is `digest`): loaded from the
    /// cache when present, compiled and stored otherwise.
    pub fn load(&self, engine: &Engine, digest: &str, bytes: &[u8]) -> anyhow::Result<Component> {
        let path = self.entry(digest);
        if path.exists() {
            // SAFETY: the file was produced by `Engine::precompile_component`
            // of an engine with the same compatibility hash (it is in the
            // name), written to a temporary name and renamed atomically, in
            // a folder only the agent writes to.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding an unusable cache entry");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let compiled = engine
            .precompile_component(bytes)
            .map_err(anyhow::Error::from)
            .context("compiling the component")?;
        if let Err(e) = self.store(&path, &compiled) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the component cache");
        }
        // SAFETY: `compiled` was just produced by this engine.
        let component = unsafe { Component::deserialize(engine, &compiled) }
            .map_err(anyhow::Error::from)
            .context("loading the compiled component")?;
        Ok(component)
    }

    fn store(&self, path: &Path, compiled: &[u8]) -> anyhow::Result<()> {
        // 0700 (with any missing parents, such as the state folder): the
        // cache holds native code the engine loads without checking it.
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        std::fs::write(tmp.path(), compiled)?;
        tmp.persist(path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// The cache's folder, and a missing state folder above it, are created
    /// private: they hold native code the engine loads unchecked.
    #[test]
    fn the_cache_folder_is_created_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state").join("cache");
        let engine = Engine::default();
        let cache = ComponentCache::new(&dir, &engine);
        // The empty component: magic, component version 0x0d, layer 1.
        let bytes = b"\0asm\x0d\0\x01\0";
        cache.load(&engine, "empty", bytes).unwrap();
        for d in [root.path().join("state"), dir.clone()] {
            let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
        assert!(cache.entry("empty").exists());
    }
}
