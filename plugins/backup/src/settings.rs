//! The validated parameters, and the dump options they make for each target
//! kind. Built from the [`Context`] alone (no host calls), so tested on the
//! build host.

use warden_sdk::{
    Context, DumpOptions, Error, MongoDumpOptions, Params as _, PgDumpOptions, PgFormat,
    RestoreOptions, TargetKind,
};

use crate::naming;
use crate::retention::Policy;

warden_sdk::params! {
    /// The parameters besides `store` (declared by hand in the manifest, first:
    /// it is required, and a blank one has its own message), as declared in
    /// the manifest.
    pub struct Params {
        /// Artifact names are `<prefix><UTC time><extension>`, e.g. `nightly/` gives `nightly/2026-11-22T10-15-00Z.dump`; retention only touches names of that shape under this prefix.
        prefix: String = "",
        /// PostgreSQL: `custom` (one `.dump` file) or `directory` (a folder, and the only format that dumps with several jobs).
        format: String = "custom",
        /// PostgreSQL: compression level, 0 (none) to 9.
        compression: u64 = 6,
        /// PostgreSQL: parallel jobs for pg_dump (directory format only) and for the verification restore (0 and 1 mean one).
        jobs: u64 = 1,
        /// PostgreSQL: dump only these schemas (comma-separated; pg_dump patterns, `*` and `?` allowed). Empty: all.
        schemas: String = "",
        /// PostgreSQL: leave these schemas out (comma-separated patterns).
        exclude_schemas: String = "",
        /// PostgreSQL: dump only these tables (comma-separated; `table` or `schema.table`, `*` and `?` allowed). Empty: all.
        tables: String = "",
        /// PostgreSQL: leave these tables out (comma-separated patterns).
        exclude_tables: String = "",
        /// MongoDB: the database to dump; empty means the one named in the target's URL.
        database: String = "",
        /// MongoDB: dump only these collections (comma-separated). Empty: all (views and system.* never).
        collections: String = "",
        /// MongoDB: leave these collections out (comma-separated).
        exclude_collections: String = "",
        /// MongoDB: gzip each collection's .bson file.
        gzip: bool = true,
        /// Retention: keep the newest N backups that are not damaged.
        keep_last: u64 = 7,
        /// Retention: keep the newest backup of each of the last N UTC days that have backups.
        keep_daily: u64 = 7,
        /// Retention: keep the newest backup of each of the last N ISO weeks that have backups.
        keep_weekly: u64 = 4,
        /// Retention: keep the newest backup of each of the last N months that have backups.
        keep_monthly: u64 = 6,
        /// Retention: never keep fewer than the newest N backups that are not damaged, whatever the keep_* rules say (at least 1). A backup whose restore test could not run still counts; only a damaged one (checksum mismatch, unreadable) does not.
        min_keep: u64 = 2,
        /// Restore the new backup into `verify_target` and compare its per-table or per-collection counts with those recorded at dump time (the checksums are always verified).
        verify: bool = false,
        /// A scratch target of the same kind to restore into when `verify` is true; what is there is dropped first. Must be listed in the grant's `restore_to`, and must not be the target itself.
        verify_target: String = "",
        /// Also recompute the checksums of every existing backup; a corrupted one is reported as critical and no longer counts as good, so retention keeps an intact one.
        audit: bool = false,
        /// Delete the backups retention does not keep; false only reports what it would delete.
        prune: bool = true,
    }
}

/// Everything a run is asked to do.
#[derive(Clone, Debug)]
pub struct Settings {
    pub store: String,
    pub prefix: String,
    pub format: PgFormat,
    pub compression: u8,
    pub jobs: u8,
    pub schemas: Vec<String>,
    pub exclude_schemas: Vec<String>,
    pub tables: Vec<String>,
    pub exclude_tables: Vec<String>,
    pub database: String,
    pub collections: Vec<String>,
    pub exclude_collections: Vec<String>,
    pub gzip: bool,
    pub policy: Policy,
    pub verify: bool,
    pub verify_target: Option<String>,
    pub prune: bool,
    /// Verify the checksums of every existing backup too.
    pub audit: bool,
    /// Parameters set for another target kind than the invocation's, for a
    /// finding (`tables` on a MongoDB target, ...).
    pub ignored_params: Vec<&'static str>,
}

/// Splits a comma-separated list, trimming and dropping empty entries.
pub fn list(param: Option<&str>) -> Vec<String> {
    param
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn small(name: &str, value: u64, max: u8) -> Result<u8, Error> {
    u8::try_from(value)
        .ok()
        .filter(|v| *v <= max)
        .ok_or_else(|| {
            Error::invalid_input(format!(
                "parameter `{name}` must be between 0 and {max}, got {value}"
            ))
        })
}

/// `min_keep`: at least 1 (the floor of retention).
fn min_keep(value: u64) -> Result<u64, Error> {
    if value == 0 {
        return Err(Error::invalid_input(
            "parameter `min_keep` must be at least 1: it is the number of backups retention never goes below (default 2)",
        ));
    }
    Ok(value)
}

impl Settings {
    /// Reads and checks the parameters of `ctx`'s invocation.
    pub fn from_context(ctx: &Context) -> Result<Self, Error> {
        let store = ctx.param_opt_str("store").unwrap_or("").trim().to_owned();
        if store.is_empty() {
            return Err(Error::invalid_input(
                "parameter `store` is required: the artifact store to back up into (as named in warden.toml)",
            ));
        }
        let p = Params::from_context(ctx)?;
        let prefix = p.prefix;
        naming::validate_prefix(&prefix).map_err(Error::invalid_input)?;
        let format: PgFormat = p
            .format
            .trim()
            .parse()
            .map_err(|e: Error| e.context("parameter `format`"))?;
        let verify = p.verify;
        let verify_target = Some(p.verify_target.trim().to_owned()).filter(|t| !t.is_empty());
        match &verify_target {
            None if verify => {
                return Err(Error::invalid_input(
                    "parameter `verify` is true but `verify_target` is empty: name a scratch target of the same kind to restore into",
                ));
            }
            Some(t) if t == ctx.target() => {
                return Err(Error::invalid_input(format!(
                    "parameter `verify_target` must be a scratch target, not the target being backed up (`{t}`): the restore drops what is there first"
                )));
            }
            _ => {}
        }
        let settings = Settings {
            store,
            prefix,
            format,
            compression: small("compression", p.compression, 9)?,
            jobs: small("jobs", p.jobs, u8::MAX)?,
            schemas: list(Some(&p.schemas)),
            exclude_schemas: list(Some(&p.exclude_schemas)),
            tables: list(Some(&p.tables)),
            exclude_tables: list(Some(&p.exclude_tables)),
            database: p.database.trim().to_owned(),
            collections: list(Some(&p.collections)),
            exclude_collections: list(Some(&p.exclude_collections)),
            gzip: p.gzip,
            policy: Policy {
                keep_last: p.keep_last,
                keep_daily: p.keep_daily,
                keep_weekly: p.keep_weekly,
                keep_monthly: p.keep_monthly,
                min_keep: min_keep(p.min_keep)?,
            },
            verify,
            verify_target,
            prune: p.prune,
            audit: p.audit,
            ignored_params: Vec::new(),
        };
        let ignored_params = settings.ignored_for(ctx.target_kind());
        Ok(Settings {
            ignored_params,
            ..settings
        })
    }

    /// The parameters set away from their defaults that do not apply to
    /// `kind`.
    fn ignored_for(&self, kind: TargetKind) -> Vec<&'static str> {
        let pg = [
            ("format", self.format != PgFormat::Custom),
            ("compression", self.compression != 6),
            ("schemas", !self.schemas.is_empty()),
            ("exclude_schemas", !self.exclude_schemas.is_empty()),
            ("tables", !self.tables.is_empty()),
            ("exclude_tables", !self.exclude_tables.is_empty()),
        ];
        let mongo = [
            ("database", !self.database.is_empty()),
            ("collections", !self.collections.is_empty()),
            ("exclude_collections", !self.exclude_collections.is_empty()),
            ("gzip", !self.gzip),
        ];
        let mut ignored: Vec<&'static str> = Vec::new();
        if kind != TargetKind::Postgres {
            ignored.extend(pg.iter().filter(|(_, set)| *set).map(|(name, _)| *name));
        }
        if kind != TargetKind::Mongodb {
            ignored.extend(mongo.iter().filter(|(_, set)| *set).map(|(name, _)| *name));
        }
        ignored
    }

    /// The dump options for a target of `kind`. `jobs` applies to a
    /// PostgreSQL dump only in directory format (`pg_dump -j` needs it).
    pub fn dump_options(&self, kind: TargetKind) -> DumpOptions {
        match kind {
            TargetKind::Postgres => PgDumpOptions::new()
                .with_format(self.format)
                .with_compression(self.compression)
                .with_jobs(match self.format {
                    PgFormat::Directory => self.jobs,
                    PgFormat::Custom => 0,
                })
                .include_schemas(self.schemas.iter().cloned())
                .exclude_schemas(self.exclude_schemas.iter().cloned())
                .include_tables(self.tables.iter().cloned())
                .exclude_tables(self.exclude_tables.iter().cloned())
                .into(),
            TargetKind::Mongodb => MongoDumpOptions::new()
                .with_database(self.database.clone())
                .with_gzip(self.gzip)
                .include_collections(self.collections.iter().cloned())
                .exclude_collections(self.exclude_collections.iter().cloned())
                .into(),
            TargetKind::Sqlite => DumpOptions::Sqlite,
        }
    }

    /// The options of the verification restore: clean, `jobs`, and the
    /// database named in the scratch target's URL.
    pub fn restore_options(&self) -> RestoreOptions {
        RestoreOptions::new().with_clean(true).with_jobs(self.jobs)
    }

    /// The extension of a new artifact for a target of `kind`.
    pub fn extension(&self, kind: TargetKind) -> &'static str {
        naming::extension(kind, self.format)
    }
}

/// What a dump of `kind` with `options` holds, for humans: `postgres,
/// custom format, compression 6, schemas public; excluding tables audit.*`.
pub fn describe_options(options: &DumpOptions) -> String {
    let join = |v: &[String]| v.join(", ");
    let mut parts: Vec<String> = Vec::new();
    match options {
        DumpOptions::Postgres(o) => {
            parts.push(format!(
                "postgres, {} format, compression {}",
                o.format.name(),
                o.compression
            ));
            if o.jobs > 1 {
                parts.push(format!("{} jobs", o.jobs));
            }
            for (label, list) in [
                ("schemas", &o.include_schemas),
                ("excluding schemas", &o.exclude_schemas),
                ("tables", &o.include_tables),
                ("excluding tables", &o.exclude_tables),
            ] {
                if !list.is_empty() {
                    parts.push(format!("{label} {}", join(list)));
                }
            }
        }
        DumpOptions::Mongodb(o) => {
            let database = if o.database.is_empty() {
                "the URL's database".to_owned()
            } else {
                format!("database {}", o.database)
            };
            parts.push(format!(
                "mongodb, {database}, {}",
                if o.gzip { "gzipped" } else { "not compressed" }
            ));
            if !o.include_collections.is_empty() {
                parts.push(format!("collections {}", join(&o.include_collections)));
            }
            if !o.exclude_collections.is_empty() {
                parts.push(format!(
                    "excluding collections {}",
                    join(&o.exclude_collections)
                ));
            }
        }
        DumpOptions::Sqlite => parts.push("sqlite, online backup copy".to_owned()),
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_sdk::{Invocation, Param, Trigger};

    const DEFAULTS: [(&str, &str); 20] = [
        ("prefix", ""),
        ("format", "custom"),
        ("compression", "6"),
        ("jobs", "1"),
        ("schemas", ""),
        ("exclude_schemas", ""),
        ("tables", ""),
        ("exclude_tables", ""),
        ("database", ""),
        ("collections", ""),
        ("exclude_collections", ""),
        ("gzip", "true"),
        ("keep_last", "7"),
        ("keep_daily", "7"),
        ("keep_weekly", "4"),
        ("keep_monthly", "6"),
        ("min_keep", "2"),
        ("verify", "false"),
        ("prune", "true"),
        ("audit", "false"),
    ];

    /// A context as the host builds it: declared defaults filled in, then
    /// `params` on top.
    fn ctx(kind: TargetKind, params: &[(&str, &str)]) -> Context {
        let mut all: Vec<Param> = DEFAULTS
            .iter()
            .filter(|(n, _)| !params.iter().any(|(p, _)| p == n))
            .map(|(n, v)| Param {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect();
        all.extend(params.iter().map(|(n, v)| Param {
            name: (*n).into(),
            value: (*v).into(),
        }));
        Context::new(Invocation {
            run_id: "r1".into(),
            trigger: Trigger::Manual("test".into()),
            target: "main".into(),
            target_kind: kind,
            params: all,
            dry_run: false,
        })
    }

    fn err(kind: TargetKind, params: &[(&str, &str)]) -> String {
        Settings::from_context(&ctx(kind, params))
            .err()
            .map(|e| e.summary())
            .unwrap_or_default()
    }

    #[test]
    fn defaults() {
        let s = Settings::from_context(&ctx(TargetKind::Postgres, &[("store", "local")])).unwrap();
        assert_eq!(s.store, "local");
        assert_eq!(s.prefix, "");
        assert_eq!(s.format, PgFormat::Custom);
        assert_eq!(s.compression, 6);
        assert_eq!(
            s.policy,
            Policy {
                keep_last: 7,
                keep_daily: 7,
                keep_weekly: 4,
                keep_monthly: 6,
                min_keep: 2,
            }
        );
        assert!(s.prune && !s.verify && s.gzip);
        assert_eq!(s.verify_target, None);
        assert!(s.ignored_params.is_empty());
        assert_eq!(s.extension(TargetKind::Postgres), ".dump");
        let DumpOptions::Postgres(o) = s.dump_options(TargetKind::Postgres) else {
            panic!("not postgres options");
        };
        assert_eq!((o.format, o.compression, o.jobs), (PgFormat::Custom, 6, 0));
        assert_eq!(
            describe_options(&s.dump_options(TargetKind::Postgres)),
            "postgres, custom format, compression 6"
        );
    }

    #[test]
    fn postgres_options() {
        let s = Settings::from_context(&ctx(
            TargetKind::Postgres,
            &[
                ("store", "local"),
                ("prefix", "nightly/"),
                ("format", "directory"),
                ("compression", "9"),
                ("jobs", "4"),
                ("schemas", " public , sales,"),
                ("exclude_tables", "audit.*"),
            ],
        ))
        .unwrap();
        assert_eq!(s.extension(TargetKind::Postgres), "");
        let options = s.dump_options(TargetKind::Postgres);
        let DumpOptions::Postgres(o) = &options else {
            panic!("not postgres options");
        };
        assert_eq!(o.format, PgFormat::Directory);
        assert_eq!(o.jobs, 4);
        assert_eq!(o.include_schemas, ["public", "sales"]);
        assert_eq!(o.exclude_tables, ["audit.*"]);
        assert_eq!(
            describe_options(&options),
            "postgres, directory format, compression 9, 4 jobs, schemas public, sales, excluding tables audit.*"
        );
        assert_eq!(s.restore_options().jobs, 4);
        assert!(s.restore_options().clean);
        // Custom format dumps with one job; the restore still uses `jobs`.
        let s = Settings::from_context(&ctx(
            TargetKind::Postgres,
            &[("store", "local"), ("jobs", "4")],
        ))
        .unwrap();
        let DumpOptions::Postgres(o) = s.dump_options(TargetKind::Postgres) else {
            panic!("not postgres options");
        };
        assert_eq!(o.jobs, 0);
        assert_eq!(s.restore_options().jobs, 4);
    }

    #[test]
    fn mongo_and_sqlite_options() {
        let s = Settings::from_context(&ctx(
            TargetKind::Mongodb,
            &[
                ("store", "local"),
                ("database", "app"),
                ("exclude_collections", "sessions, cache"),
                ("gzip", "false"),
            ],
        ))
        .unwrap();
        let options = s.dump_options(TargetKind::Mongodb);
        let DumpOptions::Mongodb(o) = &options else {
            panic!("not mongo options");
        };
        assert_eq!(o.database, "app");
        assert!(!o.gzip);
        assert_eq!(o.exclude_collections, ["sessions", "cache"]);
        assert_eq!(
            describe_options(&options),
            "mongodb, database app, not compressed, excluding collections sessions, cache"
        );
        assert_eq!(s.extension(TargetKind::Mongodb), "");
        assert!(s.ignored_params.is_empty());

        let s = Settings::from_context(&ctx(
            TargetKind::Sqlite,
            &[("store", "local"), ("tables", "x"), ("gzip", "false")],
        ))
        .unwrap();
        assert!(matches!(
            s.dump_options(TargetKind::Sqlite),
            DumpOptions::Sqlite
        ));
        assert_eq!(s.extension(TargetKind::Sqlite), ".sqlite");
        assert_eq!(s.ignored_params, ["tables", "gzip"]);
    }

    #[test]
    fn refuses_bad_parameters() {
        let pg = TargetKind::Postgres;
        assert!(err(pg, &[]).contains("`store` is required"));
        assert!(err(pg, &[("store", "  ")]).contains("`store` is required"));
        assert!(err(pg, &[("store", "s"), ("format", "tar")]).contains("format"));
        assert!(err(pg, &[("store", "s"), ("compression", "10")]).contains("between 0 and 9"));
        assert!(err(pg, &[("store", "s"), ("jobs", "300")]).contains("`jobs`"));
        assert!(err(pg, &[("store", "s"), ("prefix", "/abs")]).contains("prefix"));
        assert!(err(pg, &[("store", "s"), ("verify", "true")]).contains("verify_target"));
        let e = err(
            pg,
            &[
                ("store", "s"),
                ("verify", "true"),
                ("verify_target", "main"),
            ],
        );
        assert!(e.contains("scratch target"), "{e}");
        assert!(err(pg, &[("store", "s"), ("keep_last", "-1")]).contains("keep_last"));
        for bad in ["0", "-1", "two"] {
            let e = err(pg, &[("store", "s"), ("min_keep", bad)]);
            assert!(
                e.contains("`min_keep`") || e.contains("min_keep"),
                "{bad}: {e}"
            );
        }
        let ok = Settings::from_context(&ctx(
            pg,
            &[
                ("store", "s"),
                ("verify", "true"),
                ("verify_target", "scratch"),
            ],
        ))
        .unwrap();
        assert_eq!(ok.verify_target.as_deref(), Some("scratch"));
    }

    #[test]
    fn lists() {
        assert_eq!(list(None), Vec::<String>::new());
        assert_eq!(list(Some(" , ,")), Vec::<String>::new());
        assert_eq!(list(Some("a, b ,c")), ["a", "b", "c"]);
    }
}
