//! What every artifact store shares: names, manifests, errors, the
//! [`ArtifactStore`] trait and the [`PendingArtifact`] a write goes through.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest artifact name, in bytes.
pub const MAX_NAME_LEN: usize = 512;
/// Longest segment of an artifact name, in bytes: what is left of a file
/// name (255 bytes on common file systems) once the store adds its
/// temporary prefix and suffix (`.`, `.manifest.json.partial-<uuid>`).
pub const MAX_SEGMENT_LEN: usize = 180;
/// Suffix of the manifest next to a complete artifact.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

/// A boxed future, so that [`ArtifactStore`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An artifact's name inside a store, like `postgres/app/2025-01-31T02-00.dump`:
/// relative, `/`-separated segments of `[A-Za-z0-9._-]`, no empty, `.` or
/// `..` segment, at most [`MAX_NAME_LEN`] bytes.
///
/// Also refused, because the store uses them itself: a segment starting
/// with `.` (temporary files) or ending with `.manifest.json`, and a
/// segment longer than [`MAX_SEGMENT_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArtifactName(String);

impl ArtifactName {
    /// Checks `s`; the error names the problem.
    pub fn parse(s: &str) -> Result<Self, ArtifactError> {
        let bad = |problem: String| {
            Err(ArtifactError::InvalidName(format!(
                "{}: {problem}",
                shown(s)
            )))
        };
        if s.is_empty() {
            return bad("is empty".to_owned());
        }
        if s.len() > MAX_NAME_LEN {
            return bad(format!(
                "is {} bytes long; at most {MAX_NAME_LEN} are allowed",
                s.len()
            ));
        }
        if s.starts_with('/') {
            return bad("must be relative to the store (it starts with `/`)".to_owned());
        }
        if s.contains('\0') {
            return bad("contains a NUL byte".to_owned());
        }
        for segment in s.split('/') {
            match segment {
                "" => {
                    return bad("has an empty segment (`//` or a trailing `/`)".to_owned());
                }
                "." | ".." => {
                    return bad(format!(
                        "has a `{segment}` segment; only plain names are allowed"
                    ));
                }
                _ => {}
            }
            if let Some(c) = segment
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            {
                return bad(format!(
                    "contains {c:?}: use letters, digits, `.`, `_` and `-`, and `/` between \
                     segments"
                ));
            }
            if segment.starts_with('.') {
                return bad(format!(
                    "segment {segment:?} starts with `.`, which the store keeps for its \
                     temporary files"
                ));
            }
            if segment.ends_with(MANIFEST_SUFFIX) {
                return bad(format!(
                    "segment {segment:?} ends with `{MANIFEST_SUFFIX}`, which the store keeps \
                     for manifests"
                ));
            }
            if segment.len() > MAX_SEGMENT_LEN {
                return bad(format!(
                    "has a segment of {} bytes; at most {MAX_SEGMENT_LEN} are allowed",
                    segment.len()
                ));
            }
        }
        Ok(ArtifactName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last segment.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for ArtifactName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ArtifactName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ArtifactName {
    type Err = ArtifactError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ArtifactName::parse(s)
    }
}

/// A name as shown in an error: quoted, and cut if long (it may be hostile).
fn shown(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        format!("{s:?}")
    } else {
        format!(
            "{:?}... ({} bytes)",
            s.get(..s.floor_char_boundary(MAX)).unwrap_or_default(),
            s.len()
        )
    }
}

/// What an artifact holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    /// One file (`pg_dump -Fc -f`, a SQLite backup, ...).
    File,
    /// A folder tree (`pg_dump -Fd`, the mongodump layout, ...).
    Directory,
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArtifactKind::File => "file",
            ArtifactKind::Directory => "directory",
        })
    }
}

/// One file of an artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// `/`-separated path inside a directory artifact; for a file artifact,
    /// the last segment of its name.
    pub path: String,
    pub size_bytes: u64,
    /// Lowercase hex.
    pub sha256: String,
}

/// The manifest stored next to every complete artifact, as
/// `<name>.manifest.json`. It is written last: an artifact without one is
/// incomplete, whatever its data looks like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub kind: ArtifactKind,
    /// Total size of the files.
    pub size_bytes: u64,
    /// Lowercase hex SHA-256 of the file; for a directory, of its canonical
    /// listing (see [`directory_digest`]).
    pub sha256: String,
    /// Every file, sorted by path (a single entry for a file artifact).
    pub files: Vec<FileEntry>,
    /// When the write began.
    pub created_at: DateTime<Utc>,
    /// When the write was committed.
    pub completed_at: DateTime<Utc>,
    /// Free-form: source target, format, compression, row counts...
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// The SHA-256 (lowercase hex) of the canonical listing of a directory
/// artifact: one line `path\tsize\tsha256\n` per file, sorted by path
/// (bytewise).
pub fn directory_digest(files: &[FileEntry]) -> String {
    let mut sorted: Vec<&FileEntry> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut hasher = Sha256::new();
    for file in sorted {
        hasher.update(format!("{}\t{}\t{}\n", file.path, file.size_bytes, file.sha256).as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Sizes and SHA-256 digests (lowercase hex) a writer computed, by path
/// inside the artifact.
pub type KnownDigests = BTreeMap<String, (u64, String)>;

/// The outcome of [`ArtifactStore::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// True when the data matches the manifest exactly.
    pub ok: bool,
    /// What does not match, one sentence each, naming the file.
    pub problems: Vec<String>,
}

impl VerifyReport {
    pub(crate) fn from_problems(problems: Vec<String>) -> Self {
        VerifyReport {
            ok: problems.is_empty(),
            problems,
        }
    }
}

/// Why a store operation failed. Messages name the store and the artifact.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The name is not an [`ArtifactName`].
    #[error("invalid artifact name {0}")]
    InvalidName(String),
    /// A complete artifact of that name exists (or one is being written).
    #[error("artifact {0}")]
    AlreadyExists(String),
    #[error("artifact {0}")]
    NotFound(String),
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder at fault (in the store).
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The store holds something it did not write, or that changed.
    #[error("{0}")]
    Corrupt(String),
}

impl ArtifactError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        ArtifactError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Where artifacts are kept. A trait object (`Arc<dyn ArtifactStore>`, see
/// [`super::open`]); the futures are boxed for that.
///
/// Concurrent writes of the same name are refused within one process;
/// stores shared by several processes must not have them write the same
/// names.
pub trait ArtifactStore: Send + Sync + fmt::Debug {
    /// Begins writing `name`. Fails with [`ArtifactError::AlreadyExists`]
    /// if a complete artifact of that name exists, or if it (or a name
    /// inside it, or a name it is inside) is being written.
    fn begin<'a>(
        &'a self,
        name: &'a ArtifactName,
        kind: ArtifactKind,
    ) -> BoxFuture<'a, Result<PendingArtifact, ArtifactError>>;

    /// Complete artifacts whose names start with `prefix` (a plain string
    /// prefix: `"pg/app/"`, `"pg/app/2025-"`), sorted by name. A manifest
    /// that cannot be read is left out, with a warning in the log.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<Manifest>, ArtifactError>>;

    /// The manifest of the complete artifact `name`, if there is one.
    fn get<'a>(
        &'a self,
        name: &'a ArtifactName,
    ) -> BoxFuture<'a, Result<Option<Manifest>, ArtifactError>>;

    /// Recomputes sizes and checksums and compares them with the manifest.
    /// [`ArtifactError::NotFound`] if there is no complete artifact `name`.
    fn verify<'a>(
        &'a self,
        name: &'a ArtifactName,
    ) -> BoxFuture<'a, Result<VerifyReport, ArtifactError>>;

    /// Deletes the manifest first (so the artifact stops looking complete),
    /// then the data. [`ArtifactError::NotFound`] if there is no complete
    /// artifact `name`.
    fn delete<'a>(&'a self, name: &'a ArtifactName) -> BoxFuture<'a, Result<(), ArtifactError>>;

    /// Where the data of artifact `name` is on this host, for host-side
    /// restore tools; `None` for remote stores. Does no I/O: check that the
    /// artifact is complete ([`ArtifactStore::get`]) and sound
    /// ([`ArtifactStore::verify`]) first.
    fn local_path(&self, name: &ArtifactName) -> Option<PathBuf>;
}

/// The store-specific half of a [`PendingArtifact`]. Its `Drop` must remove
/// the partial data when neither `commit` nor `abort` ran.
pub(super) trait PendingWrite: Send + fmt::Debug {
    fn commit(
        self: Box<Self>,
        metadata: BTreeMap<String, String>,
        known: KnownDigests,
    ) -> BoxFuture<'static, Result<Manifest, ArtifactError>>;

    fn abort(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// A write in progress. The data goes to a temporary sibling of the final
/// place; write it at [`PendingArtifact::path`] with any tool, then
/// [`commit`](PendingArtifact::commit). Dropping it without committing
/// removes what was written (as [`abort`](PendingArtifact::abort) does).
#[derive(Debug)]
pub struct PendingArtifact {
    name: ArtifactName,
    kind: ArtifactKind,
    path: PathBuf,
    inner: Box<dyn PendingWrite>,
}

impl PendingArtifact {
    pub(super) fn new(
        name: ArtifactName,
        kind: ArtifactKind,
        path: PathBuf,
        inner: Box<dyn PendingWrite>,
    ) -> Self {
        PendingArtifact {
            name,
            kind,
            path,
            inner,
        }
    }

    /// Where to write: for [`ArtifactKind::File`], an empty file (mode 0600)
    /// to overwrite; for [`ArtifactKind::Directory`], an empty folder (mode
    /// 0700) to fill (`pg_dump -Fd -f` accepts an empty folder).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn name(&self) -> &ArtifactName {
        &self.name
    }

    pub fn kind(&self) -> ArtifactKind {
        self.kind
    }

    /// Makes the artifact complete: syncs the data, computes sizes and
    /// checksums, moves the data into place, then writes the manifest.
    /// On an error nothing complete is left, and the partial data is
    /// removed. If this future is dropped early, the commit still finishes
    /// (or cleans up) in the background.
    pub async fn commit(
        self,
        metadata: BTreeMap<String, String>,
    ) -> Result<Manifest, ArtifactError> {
        self.inner.commit(metadata, KnownDigests::new()).await
    }

    /// [`commit`](PendingArtifact::commit) with the SHA-256 of files the
    /// writer hashed while writing them (by path inside the artifact, as in
    /// [`FileEntry::path`]; for a file artifact, its last name segment). A
    /// file whose size still matches is not read again; any other file is
    /// hashed as usual. Only for digests the host computed itself.
    pub async fn commit_with_digests(
        self,
        metadata: BTreeMap<String, String>,
        known: KnownDigests,
    ) -> Result<Manifest, ArtifactError> {
        self.inner.commit(metadata, known).await
    }

    /// Removes what was written. Errors are logged.
    pub async fn abort(self) {
        self.inner.abort().await;
    }
}
