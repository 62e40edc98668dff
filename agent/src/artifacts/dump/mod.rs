//! Host-side dump and restore engines: the bulk data of a backup never
//! crosses into wasm. The host dumps a target into a
//! [`PendingArtifact`](super::PendingArtifact)'s path with [`dump`] (the
//! caller commits, with [`DumpOutcome::metadata`] in the manifest) and
//! restores a complete, verified artifact with [`restore`].
//!
//! | target | dump | artifact |
//! |---|---|---|
//! | PostgreSQL | `pg_dump -Fc` / `-Fd` in an exported snapshot, exact row counts in the same snapshot (`pg.rs`) | a file / a folder |
//! | MongoDB | the official driver, in mongodump's folder layout (`<db>/<coll>.bson[.gz]`, `<db>/<coll>.metadata.json[.gz]`) (`mongo.rs`) | a folder |
//! | SQLite | `VACUUM INTO` on a read-only connection (`sqlite.rs`) | a file |
//!
//! Every error text passes through the context's [`Redactor`] (and the
//! target's own password fragments): no URL or password ever shows.

mod mongo;
mod pg;
mod sqlite;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::artifacts::ArtifactKind;
use crate::capability::TargetKind;
use crate::config::Target;
use crate::secrets::Redactor;

/// Rows (or documents) per dumped object: `"schema.table"` (PostgreSQL),
/// the collection name (MongoDB), the table name (SQLite).
pub type Counts = BTreeMap<String, u64>;

/// `pg_dump`'s archive format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgFormat {
    /// `-Fc`: one file.
    Custom,
    /// `-Fd`: a folder, the only format `pg_dump -j` can write.
    Directory,
}

impl PgFormat {
    /// `"custom"` or `"directory"`, as recorded in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            PgFormat::Custom => "custom",
            PgFormat::Directory => "directory",
        }
    }
}

/// How to dump a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgDumpOptions {
    pub format: PgFormat,
    /// `-Z`: 0 (none) to 9.
    pub compression: u8,
    /// `-j`: parallel jobs, directory format only (0 and 1 mean one).
    pub jobs: u8,
    /// `-n` patterns (psql-style, as `pg_dump` takes them).
    pub include_schemas: Vec<String>,
    /// `-N` patterns.
    pub exclude_schemas: Vec<String>,
    /// `-t` patterns.
    pub include_tables: Vec<String>,
    /// `-T` patterns.
    pub exclude_tables: Vec<String>,
}

/// How to dump a MongoDB database.
#[derive(Debug, Clone)]
pub struct MongoDumpOptions {
    /// `None`: the database in the target URL.
    pub database: Option<String>,
    /// Exact collection names; empty means every collection.
    pub include_collections: Vec<String>,
    /// Exact collection names left out.
    pub exclude_collections: Vec<String>,
    /// Gzip the `.bson` and `.metadata.json` files (as `mongodump --gzip`).
    pub gzip: bool,
}

/// How to dump a target; the variant must match the target's kind.
#[derive(Debug, Clone)]
pub enum DumpOptions {
    Postgres(PgDumpOptions),
    Mongodb(MongoDumpOptions),
    Sqlite,
}

/// How to restore an artifact.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// PostgreSQL: `pg_restore --clean --if-exists`; MongoDB: drop each
    /// dumped collection first. Without it, restoring over existing tables
    /// or collections fails. (SQLite restores always replace the content.)
    pub clean: bool,
    /// PostgreSQL: `pg_restore -j` (0 and 1 mean one). Ignored elsewhere.
    pub jobs: u8,
    /// PostgreSQL and MongoDB: the database to restore into instead of the
    /// one in the destination URL. Refused for SQLite.
    pub database: Option<String>,
}

/// Where the PostgreSQL client tools are.
#[derive(Debug, Clone, Default)]
pub struct Tools {
    /// `None`: the highest `/usr/lib/postgresql/<version>/bin` that has the
    /// tool, else `PATH`.
    pub pg_bin_dir: Option<PathBuf>,
}

/// What a dump or restore runs with.
pub struct DumpContext<'a> {
    /// The application name the database sees, e.g. `"warden/backup"`.
    pub application_name: String,
    /// Applied to every error text.
    pub redactor: &'a Redactor,
    pub tools: &'a Tools,
}

/// What a dump produced.
#[derive(Debug, Clone, Default)]
pub struct DumpOutcome {
    pub counts: Counts,
    /// Facts for the manifest: `source-kind`, `format`, `compression`,
    /// `database`, `tool-version`, ... (see each engine).
    pub metadata: BTreeMap<String, String>,
    /// Sizes and SHA-256 of the files the engine hashed while writing them
    /// (for [`crate::artifacts::PendingArtifact::commit_with_digests`]).
    pub digests: crate::artifacts::KnownDigests,
}

/// Why a dump or restore failed. Texts are redacted.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// Bad options (names the option and the value).
    #[error("{0}")]
    InvalidInput(String),
    /// The target or a tool failed (for a tool: which tool, its exit
    /// status, the last lines of its stderr).
    #[error("{0}")]
    Failed(String),
    /// A kind mismatch, e.g. PostgreSQL options for a SQLite target.
    #[error("{0}")]
    Unsupported(String),
}

/// Longest table, schema or collection name (or pattern) accepted, in
/// characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Most parallel jobs accepted.
pub const MAX_JOBS: u8 = 64;

/// The artifact kind a dump with these options produces: a file for
/// PostgreSQL custom format and SQLite, a folder for PostgreSQL directory
/// format and MongoDB.
pub fn artifact_kind(options: &DumpOptions) -> ArtifactKind {
    match options {
        DumpOptions::Postgres(o) => match o.format {
            PgFormat::Custom => ArtifactKind::File,
            PgFormat::Directory => ArtifactKind::Directory,
        },
        DumpOptions::Mongodb(_) => ArtifactKind::Directory,
        DumpOptions::Sqlite => ArtifactKind::File,
    }
}

/// Checks `options` against the target's kind without doing I/O: the kind
/// matches, numbers are in range, names are non-empty, at most
/// [`MAX_NAME_CHARS`] characters, without NUL or line breaks, and
/// PostgreSQL patterns do not start with `-`. Also checks that the
/// target's URL can be used (PostgreSQL, SQLite).
pub fn validate(source: &Target, options: &DumpOptions) -> Result<(), DumpError> {
    let kind_of_options = match options {
        DumpOptions::Postgres(_) => TargetKind::Postgres,
        DumpOptions::Mongodb(_) => TargetKind::Mongodb,
        DumpOptions::Sqlite => TargetKind::Sqlite,
    };
    if kind_of_options != source.kind {
        return Err(DumpError::Unsupported(format!(
            "{kind_of_options} dump options given for target `{}`, which is a {} database",
            source.name, source.kind
        )));
    }
    match options {
        DumpOptions::Postgres(o) => {
            if o.compression > 9 {
                return Err(DumpError::InvalidInput(format!(
                    "compression {} is out of range: use 0 (none) to 9",
                    o.compression
                )));
            }
            if o.jobs > MAX_JOBS {
                return Err(DumpError::InvalidInput(format!(
                    "jobs {} is out of range: use 1 to {MAX_JOBS}",
                    o.jobs
                )));
            }
            if o.format == PgFormat::Custom && o.jobs > 1 {
                return Err(DumpError::InvalidInput(format!(
                    "jobs {}: parallel dumps need the directory format (the custom format is \
                     written by one job)",
                    o.jobs
                )));
            }
            for (option, list) in [
                ("include_schemas", &o.include_schemas),
                ("exclude_schemas", &o.exclude_schemas),
                ("include_tables", &o.include_tables),
                ("exclude_tables", &o.exclude_tables),
            ] {
                for pattern in list {
                    check_name(option, pattern)?;
                    if pattern.starts_with('-') {
                        return Err(DumpError::InvalidInput(format!(
                            "{option}: pattern {} starts with `-`",
                            shown(pattern)
                        )));
                    }
                }
            }
            pg::ConnParams::parse(source.url.expose()).map_err(|problem| {
                DumpError::InvalidInput(format!("target `{}`: {problem}", source.name))
            })?;
        }
        DumpOptions::Mongodb(o) => {
            if let Some(db) = &o.database {
                check_mongo_database("database", db)?;
            }
            for (option, list) in [
                ("include_collections", &o.include_collections),
                ("exclude_collections", &o.exclude_collections),
            ] {
                for name in list {
                    check_name(option, name)?;
                }
            }
        }
        DumpOptions::Sqlite => {
            sqlite::database_path(source.url.expose()).map_err(|problem| {
                DumpError::InvalidInput(format!("target `{}`: {problem}", source.name))
            })?;
        }
    }
    Ok(())
}

/// Dumps `source` into `out`: the pending artifact's path, an empty file
/// for [`ArtifactKind::File`], an empty folder for
/// [`ArtifactKind::Directory`] (see [`artifact_kind`]). Does not commit;
/// on an error, abort the pending artifact.
pub async fn dump(
    source: &Target,
    options: &DumpOptions,
    out: &Path,
    ctx: &DumpContext<'_>,
) -> Result<DumpOutcome, DumpError> {
    validate(source, options)?;
    let scrub = Scrub::new(ctx.redactor, source);
    let result = match options {
        DumpOptions::Postgres(o) => pg::dump(source, o, out, ctx).await,
        DumpOptions::Mongodb(o) => mongo::dump(source, o, out, ctx).await,
        DumpOptions::Sqlite => sqlite::dump(source, out).await,
    };
    result.map_err(|e| scrub.error(e))
}

/// Restores the artifact at `data` (a complete, verified artifact's local
/// path) whose manifest metadata is `metadata` into `destination`, which
/// must be of the kind the dump came from. Returns the rows (documents)
/// counted in the destination afterwards, for the objects in the dump.
pub async fn restore(
    destination: &Target,
    data: &Path,
    metadata: &BTreeMap<String, String>,
    options: &RestoreOptions,
    ctx: &DumpContext<'_>,
) -> Result<Counts, DumpError> {
    let source_kind = metadata.get(META_SOURCE_KIND).ok_or_else(|| {
        DumpError::InvalidInput(format!(
            "the artifact's metadata has no `{META_SOURCE_KIND}`: it was not written by a dump"
        ))
    })?;
    if source_kind != destination.kind.as_str() {
        return Err(DumpError::Unsupported(format!(
            "the artifact is a dump of a {} database; target `{}` is a {} database",
            shown(source_kind),
            destination.name,
            destination.kind
        )));
    }
    if options.jobs > MAX_JOBS {
        return Err(DumpError::InvalidInput(format!(
            "jobs {} is out of range: use 1 to {MAX_JOBS}",
            options.jobs
        )));
    }
    if let Some(db) = &options.database {
        match destination.kind {
            TargetKind::Postgres => check_name("database", db)?,
            TargetKind::Mongodb => check_mongo_database("database", db)?,
            TargetKind::Sqlite => {
                return Err(DumpError::InvalidInput(format!(
                    "database {}: a SQLite target is one database, restore it without naming one",
                    shown(db)
                )));
            }
        }
    }
    let scrub = Scrub::new(ctx.redactor, destination);
    let result = match destination.kind {
        TargetKind::Postgres => pg::restore(destination, data, metadata, options, ctx).await,
        TargetKind::Mongodb => mongo::restore(destination, data, metadata, options, ctx).await,
        TargetKind::Sqlite => sqlite::restore(destination, data).await,
    };
    result.map_err(|e| scrub.error(e))
}

/// Manifest metadata key: the kind of the dumped target.
pub const META_SOURCE_KIND: &str = "source-kind";

/// The context's redactor plus the target's own secret fragments (in case
/// the caller's redactor does not know this target).
pub(crate) struct Scrub<'a> {
    shared: &'a Redactor,
    own: Redactor,
}

impl<'a> Scrub<'a> {
    pub(crate) fn new(shared: &'a Redactor, target: &Target) -> Self {
        Scrub {
            shared,
            own: Redactor::new(target.password_fragments()),
        }
    }

    pub(crate) fn text(&self, text: &str) -> String {
        self.own.redact(&self.shared.redact(text))
    }

    fn error(&self, error: DumpError) -> DumpError {
        match error {
            DumpError::InvalidInput(t) => DumpError::InvalidInput(self.text(&t)),
            DumpError::Failed(t) => DumpError::Failed(self.text(&t)),
            DumpError::Unsupported(t) => DumpError::Unsupported(self.text(&t)),
        }
    }
}

/// A name or pattern: non-empty, at most [`MAX_NAME_CHARS`] characters,
/// no NUL, no line break.
pub(crate) fn check_name(option: &str, value: &str) -> Result<(), DumpError> {
    let problem = if value.is_empty() {
        "is empty"
    } else if value.chars().count() > MAX_NAME_CHARS {
        "is too long (at most 200 characters)"
    } else if value.contains('\0') {
        "contains a NUL character"
    } else if value.contains(['\n', '\r']) {
        "contains a line break"
    } else {
        return Ok(());
    };
    Err(DumpError::InvalidInput(format!(
        "{option}: {} {problem}",
        shown(value)
    )))
}

/// A MongoDB database name that is also safe as a folder name: a
/// [`check_name`] name without `/\. "$`.
pub(crate) fn check_mongo_database(option: &str, value: &str) -> Result<(), DumpError> {
    check_name(option, value)?;
    if value.len() > 63 || value.contains(['/', '\\', '.', ' ', '"', '$']) {
        return Err(DumpError::InvalidInput(format!(
            "{option}: {} is not a valid MongoDB database name (at most 63 bytes, none of \
             `/\\. \"$`)",
            shown(value)
        )));
    }
    Ok(())
}

/// A value as shown in an error: quoted, cut if long.
pub(crate) fn shown(s: &str) -> String {
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

/// Runs blocking file work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T, DumpError> + Send + 'static,
) -> Result<T, DumpError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DumpError::Failed(format!("{what}: the task failed: {e}")))?
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn target(kind: TargetKind, url: &str) -> Target {
        Target::new("t", kind, Secret::new(url))
    }

    fn pg(format: PgFormat) -> PgDumpOptions {
        PgDumpOptions {
            format,
            compression: 0,
            jobs: 0,
            include_schemas: vec![],
            exclude_schemas: vec![],
            include_tables: vec![],
            exclude_tables: vec![],
        }
    }

    fn mongo() -> MongoDumpOptions {
        MongoDumpOptions {
            database: None,
            include_collections: vec![],
            exclude_collections: vec![],
            gzip: false,
        }
    }

    #[test]
    fn kinds_of_artifacts() {
        let file = ArtifactKind::File;
        let dir = ArtifactKind::Directory;
        assert_eq!(
            artifact_kind(&DumpOptions::Postgres(pg(PgFormat::Custom))),
            file
        );
        assert_eq!(
            artifact_kind(&DumpOptions::Postgres(pg(PgFormat::Directory))),
            dir
        );
        assert_eq!(artifact_kind(&DumpOptions::Mongodb(mongo())), dir);
        assert_eq!(artifact_kind(&DumpOptions::Sqlite), file);
    }

    #[test]
    fn options_must_match_the_target_kind() {
        let pg_target = target(TargetKind::Postgres, "postgres://u:pw@h/db");
        let mongo_target = target(TargetKind::Mongodb, "mongodb://h/db");
        let lite = target(TargetKind::Sqlite, "sqlite:///var/lib/x.db");
        validate(&pg_target, &DumpOptions::Postgres(pg(PgFormat::Custom))).unwrap();
        validate(&mongo_target, &DumpOptions::Mongodb(mongo())).unwrap();
        validate(&lite, &DumpOptions::Sqlite).unwrap();
        for (t, o) in [
            (&lite, DumpOptions::Postgres(pg(PgFormat::Custom))),
            (&pg_target, DumpOptions::Mongodb(mongo())),
            (&mongo_target, DumpOptions::Sqlite),
        ] {
            let err = validate(t, &o).unwrap_err();
            assert!(matches!(err, DumpError::Unsupported(_)), "{err:?}");
        }
    }

    #[test]
    fn postgres_options_are_checked() {
        let t = target(TargetKind::Postgres, "postgres://u:pw@h/db");
        let ok = |o: PgDumpOptions| validate(&t, &DumpOptions::Postgres(o));
        ok(PgDumpOptions {
            compression: 9,
            jobs: 8,
            include_schemas: vec!["app*".into()],
            exclude_tables: vec!["public.log_*".into(), "\"Odd Name\"".into()],
            ..pg(PgFormat::Directory)
        })
        .unwrap();
        ok(PgDumpOptions {
            jobs: 1,
            ..pg(PgFormat::Custom)
        })
        .unwrap();
        for (bad, mentions) in [
            (
                PgDumpOptions {
                    compression: 10,
                    ..pg(PgFormat::Custom)
                },
                "compression 10",
            ),
            (
                PgDumpOptions {
                    jobs: 2,
                    ..pg(PgFormat::Custom)
                },
                "directory format",
            ),
            (
                PgDumpOptions {
                    jobs: 65,
                    ..pg(PgFormat::Directory)
                },
                "jobs 65",
            ),
            (
                PgDumpOptions {
                    include_tables: vec!["-fsomewhere".into()],
                    ..pg(PgFormat::Custom)
                },
                "include_tables",
            ),
            (
                PgDumpOptions {
                    exclude_schemas: vec!["a\nb".into()],
                    ..pg(PgFormat::Custom)
                },
                "line break",
            ),
            (
                PgDumpOptions {
                    include_schemas: vec![String::new()],
                    ..pg(PgFormat::Custom)
                },
                "empty",
            ),
            (
                PgDumpOptions {
                    exclude_tables: vec!["x".repeat(201)],
                    ..pg(PgFormat::Custom)
                },
                "too long",
            ),
            (
                PgDumpOptions {
                    exclude_tables: vec!["a\0b".into()],
                    ..pg(PgFormat::Custom)
                },
                "NUL",
            ),
        ] {
            let err = ok(bad.clone()).unwrap_err();
            assert!(
                matches!(err, DumpError::InvalidInput(_)),
                "{bad:?}: {err:?}"
            );
            assert!(err.to_string().contains(mentions), "{err}");
        }
        // A URL the tools cannot be given is refused up front, unquoted.
        let bad_url = target(TargetKind::Postgres, "postgres://u:pw@h/db?weird=pw");
        let err = validate(&bad_url, &DumpOptions::Postgres(pg(PgFormat::Custom))).unwrap_err();
        assert!(matches!(err, DumpError::InvalidInput(_)), "{err:?}");
        assert!(!err.to_string().contains("u:pw"), "{err}");
    }

    #[test]
    fn mongo_and_sqlite_options_are_checked() {
        let t = target(TargetKind::Mongodb, "mongodb://h/db");
        let check = |o: MongoDumpOptions| validate(&t, &DumpOptions::Mongodb(o));
        check(MongoDumpOptions {
            database: Some("app".into()),
            include_collections: vec!["users".into(), "a.b".into()],
            ..mongo()
        })
        .unwrap();
        for bad in [
            MongoDumpOptions {
                database: Some("../etc".into()),
                ..mongo()
            },
            MongoDumpOptions {
                database: Some("a b".into()),
                ..mongo()
            },
            MongoDumpOptions {
                exclude_collections: vec![String::new()],
                ..mongo()
            },
        ] {
            let err = check(bad.clone()).unwrap_err();
            assert!(
                matches!(err, DumpError::InvalidInput(_)),
                "{bad:?}: {err:?}"
            );
        }
        let memory = target(TargetKind::Sqlite, "sqlite::memory:");
        let err = validate(&memory, &DumpOptions::Sqlite).unwrap_err();
        assert!(matches!(err, DumpError::InvalidInput(_)), "{err:?}");
    }

    #[test]
    fn errors_are_scrubbed_with_the_target_secrets_too() {
        let t = target(TargetKind::Postgres, "postgres://u:hunter22@h/db");
        let shared = Redactor::new(["other-secret".to_owned()]);
        let scrub = Scrub::new(&shared, &t);
        let err = scrub.error(DumpError::Failed(
            "pw hunter22 and other-secret in postgres://u:hunter22@h/db".to_owned(),
        ));
        assert_eq!(
            err.to_string(),
            "pw [redacted] and [redacted] in [redacted]"
        );
    }
}
