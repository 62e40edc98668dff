//! [`LocalStore`]: artifacts in a folder of this host.
//!
//! Layout, for an artifact `pg/app/2025-01-31.dump`:
//!
//! ```text
//! <root>/pg/app/2025-01-31.dump                 the data (a file or a folder)
//! <root>/pg/app/2025-01-31.dump.manifest.json   its manifest, written last
//! <root>/pg/app/.2025-01-31.dump.partial-<uuid> a write in progress (or crashed)
//! ```
//!
//! The store never follows a symbolic link below its root: it looks at
//! entries with `symlink_metadata`, refuses a linked folder on the way to an
//! artifact, reports a link inside an artifact, and removes links rather
//! than what they point to. (The checks and the use are separate system
//! calls, so someone who can write in the root while the agent works there
//! could still race them: keep the root private to the agent, which is why
//! it is created with mode 0700.)

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::store::{
    ArtifactError, ArtifactKind, ArtifactName, ArtifactStore, BoxFuture, FileEntry, KnownDigests,
    MANIFEST_SUFFIX, Manifest, PendingArtifact, PendingWrite, VerifyReport, directory_digest,
};

/// Artifacts in a folder of this host; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store in `root` (made absolute). Does no I/O: the root is created,
    /// with mode 0700, by the first write or [`LocalStore::sweep`]; reads
    /// of a missing root find nothing.
    pub fn new(root: PathBuf) -> Self {
        let root = std::path::absolute(&root).unwrap_or(root);
        LocalStore { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes the leftovers of writes that crashed: temporary entries
    /// (`.<name>.partial-<uuid>`) and data without a manifest, last
    /// modified at least `older_than` ago, except those of writes in
    /// progress in this process. Returns the paths removed. Meant for agent
    /// start; the root must be dedicated to the store, since anything in it
    /// that is not a complete artifact counts as a leftover.
    pub async fn sweep(&self, older_than: Duration) -> Result<Vec<PathBuf>, ArtifactError> {
        let root = self.root.clone();
        blocking(&self.root, move || sweep_blocking(&root, older_than)).await
    }
}

impl ArtifactStore for LocalStore {
    fn begin<'a>(
        &'a self,
        name: &'a ArtifactName,
        kind: ArtifactKind,
    ) -> BoxFuture<'a, Result<PendingArtifact, ArtifactError>> {
        Box::pin(async move {
            let place = Place::new(&self.root, name);
            let reservation = Reservation::take(place.data()).ok_or_else(|| busy(&place))?;
            let created_at = Utc::now();
            // The pending write is built in the blocking task, so that if
            // this future is dropped meanwhile, dropping it cleans up.
            let pending = blocking(&self.root, move || {
                let partial = begin_blocking(&place, kind)?;
                Ok(LocalPending {
                    place,
                    kind,
                    created_at,
                    partial: partial.clone(),
                    cleanup: Cleanup {
                        temps: vec![partial],
                        reservation: Some(reservation),
                        ..Cleanup::default()
                    },
                })
            })
            .await?;
            let path = pending.partial.clone();
            Ok(PendingArtifact::new(
                name.clone(),
                kind,
                path,
                Box::new(pending),
            ))
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<Manifest>, ArtifactError>> {
        Box::pin(async move {
            let root = self.root.clone();
            let prefix = prefix.to_owned();
            blocking(&self.root, move || list_blocking(&root, &prefix)).await
        })
    }

    fn get<'a>(
        &'a self,
        name: &'a ArtifactName,
    ) -> BoxFuture<'a, Result<Option<Manifest>, ArtifactError>> {
        Box::pin(async move {
            let place = Place::new(&self.root, name);
            blocking(&self.root, move || get_blocking(&place)).await
        })
    }

    fn verify<'a>(
        &'a self,
        name: &'a ArtifactName,
    ) -> BoxFuture<'a, Result<VerifyReport, ArtifactError>> {
        Box::pin(async move {
            let place = Place::new(&self.root, name);
            blocking(&self.root, move || verify_blocking(&place)).await
        })
    }

    fn delete<'a>(&'a self, name: &'a ArtifactName) -> BoxFuture<'a, Result<(), ArtifactError>> {
        Box::pin(async move {
            let place = Place::new(&self.root, name);
            let reservation = Reservation::take(place.data()).ok_or_else(|| busy(&place))?;
            blocking(&self.root, move || {
                let result = delete_blocking(&place);
                drop(reservation);
                result
            })
            .await
        })
    }

    fn local_path(&self, name: &ArtifactName) -> Option<PathBuf> {
        Some(self.root.join(name.as_str()))
    }
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    root: &Path,
    f: impl FnOnce() -> Result<T, ArtifactError> + Send + 'static,
) -> Result<T, ArtifactError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ArtifactError::io(
            root,
            io::Error::other(format!("artifact store task failed: {e}")),
        )
    })?
}

/// Where an artifact lives in a local store.
#[derive(Debug, Clone)]
struct Place {
    root: PathBuf,
    name: ArtifactName,
    /// The folder holding the data and the manifest.
    dir: PathBuf,
    /// The last segment of the name.
    base: String,
}

impl Place {
    fn new(root: &Path, name: &ArtifactName) -> Place {
        let mut dir = root.to_path_buf();
        let segments: Vec<&str> = name.segments().collect();
        for segment in segments.iter().take(segments.len().saturating_sub(1)) {
            dir.push(segment);
        }
        Place {
            root: root.to_path_buf(),
            name: name.clone(),
            dir,
            base: name.file_name().to_owned(),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join(&self.base)
    }

    fn manifest(&self) -> PathBuf {
        self.dir.join(format!("{}{MANIFEST_SUFFIX}", self.base))
    }

    /// A new temporary sibling: `.<base><what>.partial-<uuid>`.
    fn temp(&self, what: &str) -> PathBuf {
        self.dir.join(format!(
            ".{}{what}.partial-{}",
            self.base,
            uuid::Uuid::now_v7()
        ))
    }

    /// "`name` in store ROOT", for messages.
    fn describe(&self) -> String {
        format!("`{}` in store {}", self.name, self.root.display())
    }

    /// The folders from the root (excluded) down to `dir`, each with the
    /// name prefix it stands for (`pg`, `pg/app`, ...).
    fn parents(&self) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        let mut path = self.root.clone();
        let mut prefix = String::new();
        let segments: Vec<&str> = self.name.segments().collect();
        for segment in segments.iter().take(segments.len().saturating_sub(1)) {
            path.push(segment);
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(segment);
            out.push((path.clone(), prefix.clone()));
        }
        out
    }
}

fn busy(place: &Place) -> ArtifactError {
    ArtifactError::AlreadyExists(format!(
        "{} is being written or deleted (it, or a name inside it or around it)",
        place.describe()
    ))
}

fn link_refused(place: &Place, path: &Path) -> ArtifactError {
    ArtifactError::Corrupt(format!(
        "{}: {} is a symbolic link; the store does not follow links",
        place.describe(),
        path.display()
    ))
}

// ---------------------------------------------------------------------------
// Writes in progress in this process.

/// The data paths of the writes and deletes in progress in this process.
static BUSY: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn busy_paths() -> MutexGuard<'static, BTreeSet<PathBuf>> {
    BUSY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A data path reserved for one write or delete; released on drop.
#[derive(Debug)]
struct Reservation(PathBuf);

impl Reservation {
    /// Reserves `path`, unless it, a path inside it or a path it is inside
    /// is reserved already.
    fn take(path: PathBuf) -> Option<Reservation> {
        let mut busy = busy_paths();
        if busy
            .iter()
            .any(|b| b.starts_with(&path) || path.starts_with(b))
        {
            return None;
        }
        busy.insert(path.clone());
        Some(Reservation(path))
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        busy_paths().remove(&self.0);
    }
}

/// True if `path` is reserved.
fn is_reserved(path: &Path) -> bool {
    busy_paths().contains(path)
}

/// True if a path inside `path` (not `path` itself) is reserved.
fn is_busy_inside(path: &Path) -> bool {
    busy_paths()
        .iter()
        .any(|b| b.starts_with(path) && b.as_path() != path)
}

// ---------------------------------------------------------------------------
// Small file system helpers.

/// `symlink_metadata`, with `None` for a missing entry.
fn lstat(path: &Path) -> Result<Option<Metadata>, ArtifactError> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ArtifactError::io(path, e)),
    }
}

fn create_dir_private(path: &Path, recursive: bool) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(recursive);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

fn create_file_private(path: &Path) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Makes the entries of folder `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), ArtifactError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ArtifactError::io(dir, e))
}

/// Removes a file, a link (not what it points to) or a folder tree; a
/// missing entry is fine.
fn remove_entry(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let result = if meta.is_dir() {
        // Does not follow links inside the tree.
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// How long ago `meta` was modified (zero if unknown or in the future).
fn age(meta: &Metadata) -> Duration {
    meta.modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or(Duration::ZERO)
}

/// For a temporary entry `.<base>.partial-<uuid>` or
/// `.<base>.manifest.json.partial-<uuid>`, the base.
fn partial_base(file_name: &str) -> Option<&str> {
    let rest = file_name.strip_prefix('.')?;
    let (stem, id) = rest.rsplit_once(".partial-")?;
    uuid::Uuid::try_parse(id).ok()?;
    Some(stem.strip_suffix(MANIFEST_SUFFIX).unwrap_or(stem))
}

/// The size and SHA-256 of the regular file at `path`, read in chunks;
/// `sync` also flushes it to disk. Fails if the file opened is not the one
/// `meta` (from `symlink_metadata`) describes, e.g. if it was swapped for a
/// link meanwhile.
/// Syncs a file of a write being committed and takes its size and digest:
/// the writer's, when it gave one for this size, else by reading it.
fn measure(
    path: &Path,
    meta: &Metadata,
    known: Option<&(u64, String)>,
) -> io::Result<(u64, String)> {
    match known {
        Some((size, sha256)) if *size == meta.len() && sha256.len() == 64 => {
            File::open(path)?.sync_all()?;
            Ok((*size, sha256.clone()))
        }
        _ => hash_file(path, meta, true),
    }
}

fn hash_file(path: &Path, meta: &Metadata, sync: bool) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let opened = file.metadata()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if opened.dev() != meta.dev() || opened.ino() != meta.ino() {
            return Err(io::Error::other("the file changed while being opened"));
        }
    }
    if !opened.is_file() || !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if sync {
        file.sync_all()?;
    }
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(buffer.get(..n).unwrap_or_default());
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// An entry found in a folder tree, without following links.
#[derive(Debug)]
enum Found {
    /// A regular file, with its `/`-separated path in the tree.
    File {
        rel: String,
        path: PathBuf,
        meta: Metadata,
    },
    /// A folder (the top folder included, with an empty `rel`).
    Dir { rel: String, path: PathBuf },
    /// Something the store does not keep: a link, a device, a name that
    /// is not UTF-8 or holds a tab or a newline. `what` completes "`rel` ...".
    Refused { rel: String, what: &'static str },
}

impl Found {
    fn rel(&self) -> &str {
        match self {
            Found::File { rel, .. } | Found::Dir { rel, .. } | Found::Refused { rel, .. } => rel,
        }
    }
}

/// Everything in the tree at `top`, files sorted by path. Links are
/// reported, not followed.
fn walk(top: &Path) -> io::Result<Vec<Found>> {
    let mut out = vec![Found::Dir {
        rel: String::new(),
        path: top.to_path_buf(),
    }];
    let mut stack = vec![(top.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                out.push(Found::Refused {
                    rel: format!("{rel}{}", file_name.to_string_lossy()),
                    what: "has a name that is not UTF-8",
                });
                continue;
            };
            let entry_rel = format!("{rel}{name}");
            if name.contains(['\t', '\n']) {
                out.push(Found::Refused {
                    rel: entry_rel,
                    what: "has a tab or a newline in its name",
                });
                continue;
            }
            let path = entry.path();
            let meta = fs::symlink_metadata(&path)?;
            let file_type = meta.file_type();
            if file_type.is_symlink() {
                out.push(Found::Refused {
                    rel: entry_rel,
                    what: "is a symbolic link (not followed)",
                });
            } else if file_type.is_dir() {
                out.push(Found::Dir {
                    rel: entry_rel.clone(),
                    path: path.clone(),
                });
                stack.push((path, format!("{entry_rel}/")));
            } else if file_type.is_file() {
                out.push(Found::File {
                    rel: entry_rel,
                    path,
                    meta,
                });
            } else {
                out.push(Found::Refused {
                    rel: entry_rel,
                    what: "is not a regular file or a folder",
                });
            }
        }
    }
    out.sort_by(|a, b| a.rel().cmp(b.rel()));
    Ok(out)
}

/// True if the tree at `dir` holds a manifest or a temporary entry: it is
/// a folder of artifacts, not the data of one.
fn holds_artifacts(dir: &Path) -> io::Result<bool> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let file_type = entry.file_type()?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if partial_base(&name).is_some()
                || (file_type.is_file() && name.ends_with(MANIFEST_SUFFIX))
            {
                return Ok(true);
            }
            if file_type.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(false)
}

// ---------------------------------------------------------------------------
// The operations, run on the blocking pool.

/// Creates the root if missing.
fn ensure_root(root: &Path) -> Result<(), ArtifactError> {
    match fs::metadata(root) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(ArtifactError::io(
            root,
            io::Error::new(
                io::ErrorKind::NotADirectory,
                "the artifact store root is not a folder",
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_dir_private(root, true).map_err(|e| ArtifactError::io(root, e))?;
            if let Some(parent) = root.parent() {
                sync_dir(parent)?;
            }
            Ok(())
        }
        Err(e) => Err(ArtifactError::io(root, e)),
    }
}

/// Checks the folders between the root and the artifact without following
/// links: `Ok(false)` if one is missing, is not a folder, or is an
/// artifact's data; an error if one is a link.
fn parents_exist(place: &Place) -> Result<bool, ArtifactError> {
    match fs::metadata(&place.root) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(ArtifactError::io(&place.root, e)),
    }
    for (path, _) in place.parents() {
        let Some(meta) = lstat(&path)? else {
            return Ok(false);
        };
        if meta.file_type().is_symlink() {
            return Err(link_refused(place, &path));
        }
        if !meta.is_dir() || lstat(&manifest_of(&path))?.is_some() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The manifest path of the data at `path`.
fn manifest_of(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(MANIFEST_SUFFIX);
    path.with_file_name(name)
}

/// Creates the folders between the root and the artifact (mode 0700),
/// refusing links and artifacts on the way.
fn prepare_parents(place: &Place) -> Result<(), ArtifactError> {
    ensure_root(&place.root)?;
    let mut parent = place.root.clone();
    for (path, prefix) in place.parents() {
        if lstat(&manifest_of(&path))?.is_some() {
            return Err(ArtifactError::AlreadyExists(format!(
                "{} cannot be written: `{prefix}` is an artifact",
                place.describe()
            )));
        }
        let meta = match lstat(&path)? {
            Some(meta) => meta,
            None => {
                match create_dir_private(&path, false) {
                    Ok(()) => sync_dir(&parent)?,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(ArtifactError::io(&path, e)),
                }
                lstat(&path)?.ok_or_else(|| {
                    ArtifactError::io(&path, io::Error::from(io::ErrorKind::NotFound))
                })?
            }
        };
        if meta.file_type().is_symlink() {
            return Err(link_refused(place, &path));
        }
        if !meta.is_dir() {
            return Err(ArtifactError::io(
                &path,
                io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!(
                        "cannot write {}: `{prefix}` is not a folder (data left by an \
                         incomplete write? sweep removes it)",
                        place.describe()
                    ),
                ),
            ));
        }
        parent = path;
    }
    Ok(())
}

/// Fails if a complete artifact is at `place`, or if its data path is a
/// folder of other artifacts (which committing would have to replace).
fn check_free(place: &Place) -> Result<(), ArtifactError> {
    if lstat(&place.manifest())?.is_some() {
        return Err(ArtifactError::AlreadyExists(format!(
            "{} already exists",
            place.describe()
        )));
    }
    let data = place.data();
    if let Some(meta) = lstat(&data)?
        && meta.is_dir()
        && holds_artifacts(&data).map_err(|e| ArtifactError::io(&data, e))?
    {
        return Err(ArtifactError::AlreadyExists(format!(
            "{} cannot be written: {} is a folder holding other artifacts",
            place.describe(),
            data.display()
        )));
    }
    Ok(())
}

/// Checks that `place` can be written and creates the partial data.
fn begin_blocking(place: &Place, kind: ArtifactKind) -> Result<PathBuf, ArtifactError> {
    prepare_parents(place)?;
    check_free(place)?;
    let partial = place.temp("");
    match kind {
        ArtifactKind::File => create_file_private(&partial).map(drop),
        ArtifactKind::Directory => create_dir_private(&partial, false),
    }
    .map_err(|e| ArtifactError::io(&partial, e))?;
    Ok(partial)
}

/// The manifest at `place`, if there is one; [`ArtifactError::Corrupt`] if
/// it cannot be read as the manifest of that artifact.
fn read_manifest(place: &Place) -> Result<Option<Manifest>, ArtifactError> {
    let path = place.manifest();
    let Some(meta) = lstat(&path)? else {
        return Ok(None);
    };
    if !meta.is_file() {
        return Err(ArtifactError::Corrupt(format!(
            "the manifest of {} ({}) is not a regular file",
            place.describe(),
            path.display()
        )));
    }
    let bytes = fs::read(&path).map_err(|e| ArtifactError::io(&path, e))?;
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
        ArtifactError::Corrupt(format!(
            "the manifest of {} ({}) cannot be read: {e}",
            place.describe(),
            path.display()
        ))
    })?;
    if manifest.name != place.name.as_str() {
        return Err(ArtifactError::Corrupt(format!(
            "the manifest of {} ({}) names another artifact, {:?}",
            place.describe(),
            path.display(),
            manifest.name
        )));
    }
    Ok(Some(manifest))
}

fn get_blocking(place: &Place) -> Result<Option<Manifest>, ArtifactError> {
    if !parents_exist(place)? {
        return Ok(None);
    }
    read_manifest(place)
}

fn list_blocking(root: &Path, prefix: &str) -> Result<Vec<Manifest>, ArtifactError> {
    match fs::metadata(root) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ArtifactError::io(root, e)),
    }
    // Start at the deepest folder the prefix names in full.
    let start = match prefix.rsplit_once('/') {
        None => (root.to_path_buf(), String::new()),
        Some((dir, _)) => {
            // No artifact name starts with an invalid one.
            let Ok(dir_name) = ArtifactName::parse(dir) else {
                return Ok(Vec::new());
            };
            let place = Place::new(root, &dir_name);
            if !parents_exist(&place)? || lstat(&place.manifest())?.is_some() {
                return Ok(Vec::new());
            }
            match lstat(&place.data())? {
                Some(meta) if meta.file_type().is_symlink() => {
                    return Err(link_refused(&place, &place.data()));
                }
                Some(meta) if meta.is_dir() => {}
                _ => return Ok(Vec::new()),
            }
            (place.data(), format!("{dir}/"))
        }
    };
    let mut manifests = Vec::new();
    let mut stack = vec![start];
    while let Some((dir, rel)) = stack.pop() {
        let mut entries = Vec::new();
        // None: deleted meanwhile.
        let Some(read) = dir_entries(&dir)? else {
            continue;
        };
        for entry in read {
            let file_type = entry
                .file_type()
                .map_err(|e| ArtifactError::io(entry.path(), e))?;
            // Names that are not UTF-8 are not artifacts'.
            if let Ok(name) = entry.file_name().into_string()
                && !name.starts_with('.')
            {
                entries.push((name, file_type));
            }
        }
        let names: BTreeSet<&str> = entries.iter().map(|(name, _)| name.as_str()).collect();
        for (name, file_type) in &entries {
            if let Some(base) = name.strip_suffix(MANIFEST_SUFFIX) {
                let artifact = format!("{rel}{base}");
                if !file_type.is_file() || !artifact.starts_with(prefix) {
                    continue;
                }
                let Ok(artifact) = ArtifactName::parse(&artifact) else {
                    continue;
                };
                match read_manifest(&Place::new(root, &artifact)) {
                    Ok(Some(manifest)) => manifests.push(manifest),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "artifact left out of the list"),
                }
            } else if file_type.is_dir()
                && !names.contains(format!("{name}{MANIFEST_SUFFIX}").as_str())
            {
                // A folder of artifacts (not the data of one): go in if
                // names in it can match.
                let sub = format!("{rel}{name}/");
                if sub.starts_with(prefix) || prefix.starts_with(&sub) {
                    stack.push((dir.join(name), sub));
                }
            }
        }
    }
    manifests.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(manifests)
}

fn verify_blocking(place: &Place) -> Result<VerifyReport, ArtifactError> {
    let manifest = match get_blocking(place) {
        Ok(Some(manifest)) => manifest,
        Ok(None) => {
            return Err(ArtifactError::NotFound(format!(
                "{} not found",
                place.describe()
            )));
        }
        Err(ArtifactError::Corrupt(problem)) => {
            return Ok(VerifyReport::from_problems(vec![problem]));
        }
        Err(e) => return Err(e),
    };
    let mut problems = Vec::new();
    let data = place.data();
    match lstat(&data)? {
        None => problems.push(format!("the data ({}) is missing", data.display())),
        Some(meta) if meta.file_type().is_symlink() => problems.push(format!(
            "the data ({}) is a symbolic link (not followed)",
            data.display()
        )),
        Some(meta) => match manifest.kind {
            ArtifactKind::File if !meta.is_file() => problems.push(format!(
                "the data ({}) is not a regular file, but the manifest says file",
                data.display()
            )),
            ArtifactKind::Directory if !meta.is_dir() => problems.push(format!(
                "the data ({}) is not a folder, but the manifest says directory",
                data.display()
            )),
            ArtifactKind::File => verify_file(place, &manifest, &meta, &mut problems),
            ArtifactKind::Directory => verify_dir(&data, &manifest, &mut problems)?,
        },
    }
    let total: u64 = manifest.files.iter().map(|f| f.size_bytes).sum();
    if total != manifest.size_bytes {
        problems.push(format!(
            "the manifest is inconsistent: its files add up to {total} bytes, it says {}",
            manifest.size_bytes
        ));
    }
    if manifest.kind == ArtifactKind::Directory
        && directory_digest(&manifest.files) != manifest.sha256
    {
        problems.push(
            "the manifest is inconsistent: its SHA-256 is not that of its file list".to_owned(),
        );
    }
    Ok(VerifyReport::from_problems(problems))
}

/// Compares `expected` with the size and SHA-256 of `rel` at `path`.
fn compare_file(
    rel: &str,
    path: &Path,
    meta: &Metadata,
    expected_size: u64,
    expected_sha256: &str,
    problems: &mut Vec<String>,
) {
    match hash_file(path, meta, false) {
        Err(e) => problems.push(format!("`{rel}` cannot be read: {e}")),
        Ok((size, sha256)) => {
            if size != expected_size {
                problems.push(format!(
                    "`{rel}` is {size} bytes, the manifest says {expected_size}"
                ));
            }
            if sha256 != expected_sha256 {
                problems.push(format!(
                    "`{rel}` has SHA-256 {sha256}, the manifest says {expected_sha256}"
                ));
            }
        }
    }
}

fn verify_file(place: &Place, manifest: &Manifest, meta: &Metadata, problems: &mut Vec<String>) {
    compare_file(
        &place.base,
        &place.data(),
        meta,
        manifest.size_bytes,
        &manifest.sha256,
        problems,
    );
    match manifest.files.as_slice() {
        [entry] if entry.size_bytes == manifest.size_bytes && entry.sha256 == manifest.sha256 => {}
        _ => problems.push(
            "the manifest is inconsistent: a file artifact has one file entry, matching it"
                .to_owned(),
        ),
    }
}

fn verify_dir(
    data: &Path,
    manifest: &Manifest,
    problems: &mut Vec<String>,
) -> Result<(), ArtifactError> {
    let found = walk(data).map_err(|e| ArtifactError::io(data, e))?;
    let mut expected: BTreeMap<&str, &FileEntry> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    for entry in &found {
        match entry {
            Found::Dir { .. } => {}
            Found::Refused { rel, what } => {
                expected.remove(rel.as_str());
                problems.push(format!("`{rel}` {what}"));
            }
            Found::File { rel, path, meta } => match expected.remove(rel.as_str()) {
                None => problems.push(format!("`{rel}` is not in the manifest")),
                Some(entry) => {
                    compare_file(rel, path, meta, entry.size_bytes, &entry.sha256, problems);
                }
            },
        }
    }
    for rel in expected.keys() {
        problems.push(format!("`{rel}` is missing"));
    }
    Ok(())
}

fn delete_blocking(place: &Place) -> Result<(), ArtifactError> {
    let not_found = || ArtifactError::NotFound(format!("{} not found", place.describe()));
    if !parents_exist(place)? {
        return Err(not_found());
    }
    let manifest = place.manifest();
    if lstat(&manifest)?.is_none() {
        return Err(not_found());
    }
    fs::remove_file(&manifest).map_err(|e| ArtifactError::io(&manifest, e))?;
    sync_dir(&place.dir)?;
    let data = place.data();
    remove_entry(&data).map_err(|e| ArtifactError::io(&data, e))?;
    sync_dir(&place.dir)
}

fn sweep_blocking(root: &Path, older_than: Duration) -> Result<Vec<PathBuf>, ArtifactError> {
    ensure_root(root)?;
    let mut removed = Vec::new();
    let mut remove = |path: PathBuf| match remove_entry(&path) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "removed the leftover of an incomplete artifact write");
            removed.push(path);
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the leftover of an incomplete artifact write")
        }
    };
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries = Vec::new();
        let Some(read) = dir_entries(&dir)? else {
            continue;
        };
        for entry in read {
            let path = entry.path();
            let meta = match fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ArtifactError::io(&path, e)),
            };
            // Names that are not UTF-8 are not the store's: left alone.
            if let Ok(name) = entry.file_name().into_string() {
                entries.push((name, path, meta));
            }
        }
        let names: BTreeSet<&str> = entries.iter().map(|(name, ..)| name.as_str()).collect();
        for (name, path, meta) in &entries {
            let old = age(meta) >= older_than;
            if name.starts_with('.') {
                // Temporary entries; other dot-entries are not the store's.
                if let Some(base) = partial_base(name)
                    && !is_reserved(&dir.join(base))
                    && old
                {
                    remove(path.clone());
                }
                continue;
            }
            if name.ends_with(MANIFEST_SUFFIX)
                || names.contains(format!("{name}{MANIFEST_SUFFIX}").as_str())
                || is_reserved(path)
            {
                // A manifest, a complete artifact, or one being committed.
                continue;
            }
            if meta.is_dir()
                && (is_busy_inside(path)
                    || holds_artifacts(path).map_err(|e| ArtifactError::io(path, e))?)
            {
                // A folder of artifacts.
                stack.push(path.clone());
            } else if old {
                remove(path.clone());
            }
        }
    }
    Ok(removed)
}

// ---------------------------------------------------------------------------
// A write in progress.

/// What to remove if a write does not complete.
#[derive(Debug, Default)]
struct Cleanup {
    /// The manifest, once renamed into place (removed first).
    manifest: Option<PathBuf>,
    /// The data, once renamed into place.
    data: Option<PathBuf>,
    /// Temporary entries (the partial data, a temporary manifest...).
    temps: Vec<PathBuf>,
    /// Held until the cleanup is done.
    reservation: Option<Reservation>,
}

impl Cleanup {
    fn is_empty(&self) -> bool {
        self.manifest.is_none() && self.data.is_none() && self.temps.is_empty()
    }

    fn run(self) {
        let targets = self.manifest.iter().chain(&self.data).chain(&self.temps);
        for path in targets {
            if let Err(e) = remove_entry(path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove an incomplete artifact (sweep will)");
            }
        }
        drop(self.reservation);
    }
}

#[derive(Debug)]
struct LocalPending {
    place: Place,
    kind: ArtifactKind,
    created_at: DateTime<Utc>,
    /// Where the data is written.
    partial: PathBuf,
    cleanup: Cleanup,
}

impl LocalPending {
    fn commit_blocking(
        &mut self,
        metadata: BTreeMap<String, String>,
        known: &KnownDigests,
    ) -> Result<Manifest, ArtifactError> {
        let place = self.place.clone();
        let partial = self.partial.clone();
        let refuse = |problem: String| {
            ArtifactError::Corrupt(format!("cannot commit {}: {problem}", place.describe()))
        };

        // Sync the data and take its measure.
        let meta =
            lstat(&partial)?.ok_or_else(|| refuse(format!("{} is gone", partial.display())))?;
        let (files, sha256) = match self.kind {
            ArtifactKind::File => {
                if !meta.is_file() {
                    return Err(refuse(format!(
                        "{} is no longer a regular file",
                        partial.display()
                    )));
                }
                let (size, sha256) = measure(&partial, &meta, known.get(&place.base))
                    .map_err(|e| ArtifactError::io(&partial, e))?;
                let entry = FileEntry {
                    path: place.base.clone(),
                    size_bytes: size,
                    sha256: sha256.clone(),
                };
                (vec![entry], sha256)
            }
            ArtifactKind::Directory => {
                if !meta.is_dir() {
                    return Err(refuse(format!(
                        "{} is no longer a folder",
                        partial.display()
                    )));
                }
                let found = walk(&partial).map_err(|e| ArtifactError::io(&partial, e))?;
                let mut files = Vec::new();
                let mut dirs = Vec::new();
                for entry in found {
                    match entry {
                        Found::Refused { rel, what } => {
                            return Err(refuse(format!(
                                "`{rel}` {what}; an artifact holds only regular files and folders"
                            )));
                        }
                        Found::Dir { path, .. } => dirs.push(path),
                        Found::File { rel, path, meta } => {
                            let (size, sha256) = measure(&path, &meta, known.get(&rel))
                                .map_err(|e| ArtifactError::io(&path, e))?;
                            files.push(FileEntry {
                                path: rel,
                                size_bytes: size,
                                sha256,
                            });
                        }
                    }
                }
                for dir in dirs {
                    sync_dir(&dir)?;
                }
                let sha256 = directory_digest(&files);
                (files, sha256)
            }
        };

        // Move the data into place, replacing data an incomplete write left.
        if !parents_exist(&place)? {
            return Err(refuse(
                "the folders above it changed while it was written".to_owned(),
            ));
        }
        check_free(&place)?;
        let data = place.data();
        if lstat(&data)?.is_some() {
            let aside = place.temp("");
            fs::rename(&data, &aside).map_err(|e| ArtifactError::io(&data, e))?;
            self.cleanup.temps.push(aside);
        }
        fs::rename(&partial, &data).map_err(|e| ArtifactError::io(&partial, e))?;
        self.cleanup.temps.retain(|t| t != &partial);
        self.cleanup.data = Some(data);
        sync_dir(&place.dir)?;
        for aside in std::mem::take(&mut self.cleanup.temps) {
            if let Err(e) = remove_entry(&aside) {
                tracing::warn!(path = %aside.display(), error = %e, "cannot remove replaced incomplete artifact data (sweep will)");
            }
        }

        // Then the manifest: temporary file, sync, rename, sync the folder.
        let manifest = Manifest {
            name: place.name.as_str().to_owned(),
            kind: self.kind,
            size_bytes: files.iter().map(|f| f.size_bytes).sum(),
            sha256,
            files,
            created_at: self.created_at,
            completed_at: Utc::now(),
            metadata,
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| refuse(format!("cannot write the manifest: {e}")))?;
        let temp = place.temp(MANIFEST_SUFFIX);
        self.cleanup.temps.push(temp.clone());
        create_file_private(&temp)
            .and_then(|mut file| {
                file.write_all(&json)?;
                file.sync_all()
            })
            .map_err(|e| ArtifactError::io(&temp, e))?;
        let target = place.manifest();
        fs::rename(&temp, &target).map_err(|e| ArtifactError::io(&target, e))?;
        self.cleanup.temps.clear();
        self.cleanup.manifest = Some(target);
        sync_dir(&place.dir)?;

        // Complete: nothing to clean up; release the name.
        self.cleanup = Cleanup::default();
        Ok(manifest)
    }
}

impl PendingWrite for LocalPending {
    fn commit(
        self: Box<Self>,
        metadata: BTreeMap<String, String>,
        known: KnownDigests,
    ) -> BoxFuture<'static, Result<Manifest, ArtifactError>> {
        let root = self.place.root.clone();
        Box::pin(async move {
            blocking(&root, move || {
                let mut pending = *self;
                let result = pending.commit_blocking(metadata, &known);
                if result.is_err() {
                    std::mem::take(&mut pending.cleanup).run();
                }
                result
            })
            .await
        })
    }

    fn abort(self: Box<Self>) -> BoxFuture<'static, ()> {
        let root = self.place.root.clone();
        Box::pin(async move {
            let result = blocking(&root, move || {
                let mut pending = *self;
                std::mem::take(&mut pending.cleanup).run();
                Ok(())
            })
            .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "cannot abort an artifact write");
            }
        })
    }
}

impl Drop for LocalPending {
    fn drop(&mut self) {
        let cleanup = std::mem::take(&mut self.cleanup);
        if cleanup.is_empty() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || cleanup.run());
            }
            Err(_) => cleanup.run(),
        }
    }
}

/// The entries of `dir`, or `None` when it is gone (deleted meanwhile).
fn dir_entries(dir: &Path) -> Result<Option<Vec<fs::DirEntry>>, ArtifactError> {
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ArtifactError::io(dir, e)),
    };
    read.map(|entry| entry.map_err(|e| ArtifactError::io(dir, e)))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}
