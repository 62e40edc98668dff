//! Warden plugin `vacuum`: keeps PostgreSQL tables and SQLite files vacuumed
//! and analyzed when their statistics say so.
//!
//! - PostgreSQL: reads `pg_stat_user_tables`, then per table `VACUUM
//!   (ANALYZE)` when dead tuples pass `dead_ratio` (and `min_dead_tuples`),
//!   else `ANALYZE` when rows changed since the last analyze pass
//!   `changed_ratio` (and `min_changed_rows`); at most `max_tables` tables,
//!   worst first.
//! - SQLite: `VACUUM` when the freelist passes `freelist_ratio` (and
//!   `min_freelist_pages`); then `ANALYZE` if the file was never analyzed,
//!   else `PRAGMA optimize`.
//!
//! Statements run one at a time through the host (`maintenance` class); in
//! dry-run they come back planned and are reported as such. A failed statement
//! is a finding, and the plugin goes on with the next table.
//!
//! Every statement that ran is checked for its effect: PostgreSQL's
//! `vacuum_count` / `analyze_count` of the table must have moved (a table
//! the role may not maintain is skipped with only a `WARNING`, which the
//! plugin gets through `execute-with-notices`); a SQLite `VACUUM` must leave
//! no free page. One that did not take effect is a `failed` action with a
//! critical finding giving the server's reason and the fix (table
//! ownership, or `MAINTAIN` / `pg_maintain` on PostgreSQL 17+), which makes
//! the run `failed`.
//!
//! Report status: `ok` when nothing was needed or every needed statement was
//! executed; `warning` when a needed statement failed, was only planned
//! (dry-run) or was deferred (over `max_tables`, or the deadline was near),
//! because the database still needs attention; `critical` when a statement
//! ran without effect. The decisions themselves are in [`decide`], as pure
//! functions with unit tests.

mod decide;
mod postgres;
mod sqlite;

use warden_sdk::{
    CapabilityClass, Context, Error, Manifest, ParamSpec, Plugin, Report, TargetKind,
};

use crate::decide::{FreelistThresholds, Thresholds, validate_ratio};

/// Stop starting statements when less than this is left of the run.
const MIN_REMAINING_MS: u64 = 2_000;

/// The validated parameters.
#[derive(Clone, Debug)]
struct Settings {
    thresholds: Thresholds,
    freelist: FreelistThresholds,
    schema: Option<String>,
    tables: Option<Vec<String>>,
    max_tables: u64,
}

fn ratio(ctx: &Context, name: &str) -> Result<f64, Error> {
    validate_ratio(name, ctx.param_f64(name)?).map_err(Error::invalid_input)
}

impl Settings {
    fn from_context(ctx: &Context) -> Result<Self, Error> {
        Ok(Settings {
            thresholds: Thresholds {
                dead_ratio: ratio(ctx, "dead_ratio")?,
                changed_ratio: ratio(ctx, "changed_ratio")?,
                min_dead_tuples: ctx.param_u64("min_dead_tuples")?,
                min_changed_rows: ctx.param_u64("min_changed_rows")?,
            },
            freelist: FreelistThresholds {
                freelist_ratio: ratio(ctx, "freelist_ratio")?,
                min_freelist_pages: ctx.param_u64("min_freelist_pages")?,
            },
            schema: ctx
                .param_opt_str("schema")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            tables: decide::table_list(ctx.param_opt_str("tables")),
            max_tables: ctx.param_u64("max_tables")?,
        })
    }
}

struct Vacuum;

impl Plugin for Vacuum {
    fn manifest() -> Manifest {
        Manifest::new(
            "vacuum",
            env!("CARGO_PKG_VERSION"),
            "VACUUM and ANALYZE PostgreSQL tables, VACUUM and optimize SQLite files, when their statistics say so.",
        )
        .capabilities([CapabilityClass::Read, CapabilityClass::Maintenance])
        .target_kinds([TargetKind::Postgres, TargetKind::Sqlite])
        .param(
            ParamSpec::float(
                "dead_ratio",
                "PostgreSQL: VACUUM (ANALYZE) a table when n_dead_tup / (n_live_tup + n_dead_tup) is at least this (0..1).",
            )
            .with_default(0.2),
        )
        .param(
            ParamSpec::float(
                "changed_ratio",
                "PostgreSQL: ANALYZE a table when n_mod_since_analyze / max(n_live_tup, 1) is at least this (0..1).",
            )
            .with_default(0.1),
        )
        .param(
            ParamSpec::integer(
                "min_dead_tuples",
                "PostgreSQL: never VACUUM a table with fewer dead tuples than this.",
            )
            .with_default(50),
        )
        .param(
            ParamSpec::integer(
                "min_changed_rows",
                "PostgreSQL: never ANALYZE a table with fewer changed rows than this.",
            )
            .with_default(50),
        )
        .param(ParamSpec::string(
            "schema",
            "PostgreSQL: only consider tables in this schema.",
        ))
        .param(ParamSpec::string(
            "tables",
            "PostgreSQL: only consider these tables (comma-separated, `table` or `schema.table`).",
        ))
        .param(
            ParamSpec::integer(
                "max_tables",
                "PostgreSQL: act on at most this many tables per run, worst first (0: no limit).",
            )
            .with_default(20),
        )
        .param(
            ParamSpec::float(
                "freelist_ratio",
                "SQLite: VACUUM when freelist_count / page_count is at least this (0..1).",
            )
            .with_default(0.2),
        )
        .param(
            ParamSpec::integer(
                "min_freelist_pages",
                "SQLite: never VACUUM with fewer free pages than this.",
            )
            .with_default(16),
        )
    }

    fn run(ctx: &Context) -> Result<Report, Error> {
        let settings = Settings::from_context(ctx)?;
        match ctx.target_kind() {
            TargetKind::Postgres => postgres::run(ctx, &settings),
            TargetKind::Sqlite => sqlite::run(ctx, &settings),
            other => Err(Error::invalid_input(format!(
                "vacuum works on postgres and sqlite targets; `{}` is {}",
                ctx.target(),
                other.name()
            ))),
        }
    }
}

warden_sdk::export_plugin!(Vacuum);
