//! The validated parameters, and the dump options they make for each target
//! kind. Built from the [`Context`] alone (no host calls), so tested on the
//! build host.

use warden_sdk::{
    Context, DumpOptions, Error, MongoDumpOptions, PgDumpOptions, PgFormat, RestoreOptions,
    TargetKind,
};

use crate::naming;
use crate::retention::Policy;

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

fn text(ctx: &Context, name: &str) -> String {
    ctx.param_opt_str(name).unwrap_or("").trim().to_owned()
}

fn small(ctx: &Context, name: &str, max: u8) -> Result<u8, Error> {
    let value = ctx.param_u64(name)?;
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
fn min_keep(ctx: &Context) -> Result<u64, Error> {
    let value = ctx.param_u64("min_keep")?;
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
        let store = text(ctx, "store");
        if store.is_empty() {
            return Err(Error::invalid_input(
                "parameter `store` is required: the artifact store to back up into (as named in warden.toml)",
            ));
        }
        let prefix = ctx.param_opt_str("prefix").unwrap_or("").to_owned();
        naming::validate_prefix(&prefix).map_err(Error::invalid_input)?;
        let format: PgFormat = text(ctx, "format")
            .parse()
            .map_err(|e: Error| e.context("parameter `format`"))?;
        let verify = ctx.param_bool("verify")?;
        let verify_target = Some(text(ctx, "verify_target")).filter(|t| !t.is_empty());
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
            compression: small(ctx, "compression", 9)?,
            jobs: small(ctx, "jobs", u8::MAX)?,
            schemas: list(ctx.param_opt_str("schemas")),
            exclude_schemas: list(ctx.param_opt_str("exclude_schemas")),
            tables: list(ctx.param_opt_str("tables")),
            exclude_tables: list(ctx.param_opt_str("exclude_tables")),
            database: text(ctx, "database"),
            collections: list(ctx.param_opt_str("collections")),
            exclude_collections: list(ctx.param_opt_str("exclude_collections")),
            gzip: ctx.param_bool("gzip")?,
            policy: Policy {
                keep_last: ctx.param_u64("keep_last")?,
                keep_daily: ctx.param_u64("keep_daily")?,
                keep_weekly: ctx.param_u64("keep_weekly")?,
                keep_monthly: ctx.param_u64("keep_monthly")?,
                min_keep: min_keep(ctx)?,
            },
            verify,
            verify_target,
            prune: ctx.param_bool("prune")?,
            audit: ctx.param_bool("audit")?,
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
