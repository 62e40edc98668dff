//! Backups through the host (`warden:plugin/artifacts`): [`Artifacts`] dumps
//! a target into a named artifact store, and restores, lists, verifies and
//! deletes its artifacts. The bytes never cross into the plugin.
//!
//! Artifact names are relative to the target (the host keeps them under
//! `<target>/<name>` in the store) and are segments of `[A-Za-z0-9._-]`
//! separated by `/`. The grant for the target must list the store
//! (`artifacts = ["local"]`); a dump also needs `read` on the target, a
//! restore the destination in the grant's `restore_to`. Dump, restore and
//! delete come back with [`Outcome::Planned`] in dry-run.
//!
//! The option records have builders with sensible defaults:
//!
//! ```ignore
//! use warden_sdk::artifacts::{PgDumpOptions, PgFormat, RestoreOptions};
//!
//! let store = ctx.artifacts("local");
//! let dumped = store.dump(
//!     "nightly/2026-11-22T10-15-00Z.dump",
//!     PgDumpOptions::new().with_compression(9).exclude_schema("audit"),
//! )?;
//! if let Some(artifact) = &dumped.artifact {
//!     let check = store.verify(&artifact.name)?;
//!     let restored = store.restore(&artifact.name, "scratch", &RestoreOptions::new().with_clean(true))?;
//! }
//! ```

use crate::bindings::warden::plugin::artifacts as wit;
use crate::{Error, TargetKind};

pub use wit::{
    Artifact, DumpOptions, DumpResult, MongoDumpOptions, ObjectCount, Outcome, PgDumpOptions,
    PgFormat, RestoreOptions, RestoreResult, VerifyResult,
};

/// Artifact calls for one target in one store. Get one from
/// [`Context::artifacts`](crate::Context::artifacts) (the invocation's
/// target) or [`Context::artifacts_on`](crate::Context::artifacts_on).
#[derive(Clone, Copy, Debug)]
pub struct Artifacts<'a> {
    target: &'a str,
    store: &'a str,
}

impl<'a> Artifacts<'a> {
    /// Artifact calls for `target` in `store`.
    pub fn new(target: &'a str, store: &'a str) -> Self {
        Artifacts { target, store }
    }

    /// The target whose artifacts these are.
    pub fn target(&self) -> &'a str {
        self.target
    }

    /// The store they are kept in.
    pub fn store(&self) -> &'a str {
        self.store
    }

    /// Dumps the target into the store as `name` (which must not exist).
    /// `options` must match the target's kind: a [`PgDumpOptions`], a
    /// [`MongoDumpOptions`] or [`DumpOptions::Sqlite`]. A failed dump leaves
    /// no artifact; in dry-run the result is planned and has no artifact.
    pub fn dump(&self, name: &str, options: impl Into<DumpOptions>) -> Result<DumpResult, Error> {
        wit::dump(self.target, self.store, name, &options.into())
    }

    /// Restores the artifact `name` into `destination` (a target of the same
    /// kind listed in the grant's `restore_to`), after the host verified its
    /// checksums.
    pub fn restore(
        &self,
        name: &str,
        destination: &str,
        options: &RestoreOptions,
    ) -> Result<RestoreResult, Error> {
        wit::restore(self.target, self.store, name, destination, options)
    }

    /// The complete artifacts whose names start with `prefix` (`""`: all),
    /// sorted by name.
    pub fn list(&self, prefix: &str) -> Result<Vec<Artifact>, Error> {
        wit::list(self.target, self.store, prefix)
    }

    /// Recomputes an artifact's checksums and compares them with its
    /// manifest.
    pub fn verify(&self, name: &str) -> Result<VerifyResult, Error> {
        wit::verify(self.target, self.store, name)
    }

    /// Deletes an artifact; planned in dry-run.
    pub fn delete(&self, name: &str) -> Result<Outcome, Error> {
        wit::delete(self.target, self.store, name)
    }
}

impl PgFormat {
    /// The usual file extension of an artifact in this format: `.dump` for
    /// custom, none for a directory.
    pub fn extension(self) -> &'static str {
        match self {
            PgFormat::Custom => ".dump",
            PgFormat::Directory => "",
        }
    }
}

impl std::str::FromStr for PgFormat {
    type Err = Error;

    /// `custom` (also `c`) or `directory` (also `d`, `dir`), any case.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "custom" | "c" => Ok(PgFormat::Custom),
            "directory" | "dir" | "d" => Ok(PgFormat::Directory),
            other => Err(Error::invalid_input(format!(
                "unknown pg_dump format {other:?}: expected `custom` or `directory`"
            ))),
        }
    }
}

impl PgDumpOptions {
    /// Custom format (one file), compression 6, one job, everything.
    pub fn new() -> Self {
        PgDumpOptions {
            format: PgFormat::Custom,
            compression: 6,
            jobs: 0,
            include_schemas: Vec::new(),
            exclude_schemas: Vec::new(),
            include_tables: Vec::new(),
            exclude_tables: Vec::new(),
        }
    }

    /// Sets the format.
    pub fn with_format(mut self, format: PgFormat) -> Self {
        self.format = format;
        self
    }

    /// Sets the compression level, 0 (none) to 9 (more is capped at 9).
    pub fn with_compression(mut self, level: u8) -> Self {
        self.compression = level.min(9);
        self
    }

    /// Sets the parallel jobs (directory format only; 0 and 1 mean one).
    pub fn with_jobs(mut self, jobs: u8) -> Self {
        self.jobs = jobs;
        self
    }

    /// Dumps only this schema (and any other included one); `pg_dump -n`.
    pub fn include_schema(mut self, pattern: impl Into<String>) -> Self {
        self.include_schemas.push(pattern.into());
        self
    }

    /// Leaves this schema out; `pg_dump -N`.
    pub fn exclude_schema(mut self, pattern: impl Into<String>) -> Self {
        self.exclude_schemas.push(pattern.into());
        self
    }

    /// Dumps only this table (and any other included one); `pg_dump -t`.
    pub fn include_table(mut self, pattern: impl Into<String>) -> Self {
        self.include_tables.push(pattern.into());
        self
    }

    /// Leaves this table out; `pg_dump -T`.
    pub fn exclude_table(mut self, pattern: impl Into<String>) -> Self {
        self.exclude_tables.push(pattern.into());
        self
    }

    /// Dumps only these schemas.
    pub fn include_schemas<S: Into<String>>(
        mut self,
        patterns: impl IntoIterator<Item = S>,
    ) -> Self {
        self.include_schemas
            .extend(patterns.into_iter().map(Into::into));
        self
    }

    /// Leaves these schemas out.
    pub fn exclude_schemas<S: Into<String>>(
        mut self,
        patterns: impl IntoIterator<Item = S>,
    ) -> Self {
        self.exclude_schemas
            .extend(patterns.into_iter().map(Into::into));
        self
    }

    /// Dumps only these tables.
    pub fn include_tables<S: Into<String>>(
        mut self,
        patterns: impl IntoIterator<Item = S>,
    ) -> Self {
        self.include_tables
            .extend(patterns.into_iter().map(Into::into));
        self
    }

    /// Leaves these tables out.
    pub fn exclude_tables<S: Into<String>>(
        mut self,
        patterns: impl IntoIterator<Item = S>,
    ) -> Self {
        self.exclude_tables
            .extend(patterns.into_iter().map(Into::into));
        self
    }
}

impl Default for PgDumpOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl MongoDumpOptions {
    /// The database named in the target's URL, every collection, gzipped.
    pub fn new() -> Self {
        MongoDumpOptions {
            database: String::new(),
            include_collections: Vec::new(),
            exclude_collections: Vec::new(),
            gzip: true,
        }
    }

    /// Dumps this database instead of the one in the target's URL.
    pub fn with_database(mut self, database: impl Into<String>) -> Self {
        self.database = database.into();
        self
    }

    /// Gzips each `.bson` file (or not).
    pub fn with_gzip(mut self, gzip: bool) -> Self {
        self.gzip = gzip;
        self
    }

    /// Dumps only this collection (and any other included one).
    pub fn include_collection(mut self, name: impl Into<String>) -> Self {
        self.include_collections.push(name.into());
        self
    }

    /// Leaves this collection out.
    pub fn exclude_collection(mut self, name: impl Into<String>) -> Self {
        self.exclude_collections.push(name.into());
        self
    }

    /// Dumps only these collections.
    pub fn include_collections<S: Into<String>>(
        mut self,
        names: impl IntoIterator<Item = S>,
    ) -> Self {
        self.include_collections
            .extend(names.into_iter().map(Into::into));
        self
    }

    /// Leaves these collections out.
    pub fn exclude_collections<S: Into<String>>(
        mut self,
        names: impl IntoIterator<Item = S>,
    ) -> Self {
        self.exclude_collections
            .extend(names.into_iter().map(Into::into));
        self
    }
}

impl Default for MongoDumpOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl DumpOptions {
    /// The default options for a target kind: [`PgDumpOptions::new`],
    /// [`MongoDumpOptions::new`] or [`DumpOptions::Sqlite`].
    pub fn default_for(kind: TargetKind) -> Self {
        match kind {
            TargetKind::Postgres => DumpOptions::Postgres(PgDumpOptions::new()),
            TargetKind::Mongodb => DumpOptions::Mongodb(MongoDumpOptions::new()),
            TargetKind::Sqlite => DumpOptions::Sqlite,
        }
    }

    /// The target kind these options are for.
    pub fn target_kind(&self) -> TargetKind {
        match self {
            DumpOptions::Postgres(_) => TargetKind::Postgres,
            DumpOptions::Mongodb(_) => TargetKind::Mongodb,
            DumpOptions::Sqlite => TargetKind::Sqlite,
        }
    }
}

impl From<PgDumpOptions> for DumpOptions {
    fn from(options: PgDumpOptions) -> Self {
        DumpOptions::Postgres(options)
    }
}

impl From<MongoDumpOptions> for DumpOptions {
    fn from(options: MongoDumpOptions) -> Self {
        DumpOptions::Mongodb(options)
    }
}

impl RestoreOptions {
    /// No clean, one job, the database named in the destination's URL.
    pub fn new() -> Self {
        RestoreOptions {
            clean: false,
            jobs: 0,
            database: String::new(),
        }
    }

    /// Drops what is there first (the dump's objects, or each collection).
    pub fn with_clean(mut self, clean: bool) -> Self {
        self.clean = clean;
        self
    }

    /// Parallel `pg_restore` jobs (0 and 1 mean one).
    pub fn with_jobs(mut self, jobs: u8) -> Self {
        self.jobs = jobs;
        self
    }

    /// MongoDB: restores into this database instead of the destination's.
    pub fn with_database(mut self, database: impl Into<String>) -> Self {
        self.database = database.into();
        self
    }
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl Artifact {
    /// The count recorded for one table or collection at dump time.
    pub fn count_of(&self, object: &str) -> Option<u64> {
        self.counts
            .iter()
            .find(|c| c.name == object)
            .map(|c| c.count)
    }

    /// Rows plus documents over every recorded object.
    pub fn total_count(&self) -> u64 {
        self.counts
            .iter()
            .fold(0u64, |sum, c| sum.saturating_add(c.count))
    }

    /// A metadata value the host recorded (`source-kind`, `format`, ...).
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|l| l.name == key)
            .map(|l| l.value.as_str())
    }
}

impl DumpResult {
    /// True when the dump ran (and [`DumpResult::artifact`] is set).
    pub fn is_executed(&self) -> bool {
        self.outcome == Outcome::Executed
    }

    /// True when dry-run recorded it as planned instead.
    pub fn is_planned(&self) -> bool {
        self.outcome == Outcome::Planned
    }
}

impl RestoreResult {
    /// True when the restore ran.
    pub fn is_executed(&self) -> bool {
        self.outcome == Outcome::Executed
    }

    /// True when dry-run recorded it as planned instead.
    pub fn is_planned(&self) -> bool {
        self.outcome == Outcome::Planned
    }

    /// The count of one table or collection in the destination.
    pub fn count_of(&self, object: &str) -> Option<u64> {
        self.counts
            .iter()
            .find(|c| c.name == object)
            .map(|c| c.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_defaults_and_builders() {
        let o = PgDumpOptions::default();
        assert_eq!(o.format, PgFormat::Custom);
        assert_eq!(o.compression, 6);
        let o = o
            .with_format(PgFormat::Directory)
            .with_compression(12)
            .with_jobs(4)
            .include_schema("public")
            .exclude_tables(["audit.*", "tmp_*"]);
        assert_eq!(o.compression, 9);
        assert_eq!(o.jobs, 4);
        assert_eq!(o.include_schemas, ["public"]);
        assert_eq!(o.exclude_tables, ["audit.*", "tmp_*"]);
        assert!(matches!(
            DumpOptions::from(o),
            DumpOptions::Postgres(PgDumpOptions {
                format: PgFormat::Directory,
                ..
            })
        ));
    }

    #[test]
    fn formats_parse() {
        assert_eq!("Custom".parse::<PgFormat>().ok(), Some(PgFormat::Custom));
        assert_eq!("dir".parse::<PgFormat>().ok(), Some(PgFormat::Directory));
        assert!("tar".parse::<PgFormat>().is_err());
        assert_eq!(PgFormat::Custom.extension(), ".dump");
    }

    #[test]
    fn mongo_and_restore_defaults() {
        let m = MongoDumpOptions::default().include_collections(["a", "b"]);
        assert!(m.gzip);
        assert_eq!(m.include_collections, ["a", "b"]);
        let r = RestoreOptions::default().with_clean(true).with_jobs(2);
        assert!(r.clean && r.jobs == 2 && r.database.is_empty());
        assert_eq!(
            DumpOptions::default_for(TargetKind::Mongodb).target_kind(),
            TargetKind::Mongodb
        );
        assert!(matches!(
            DumpOptions::default_for(TargetKind::Sqlite),
            DumpOptions::Sqlite
        ));
    }
}
