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
    CapabilityClass, Context, Error, Manifest, Params as _, Plugin, Report, TargetKind,
};

use crate::decide::{FreelistThresholds, Thresholds, validate_ratio};

/// Stop starting statements when less than this is left of the run.
const MIN_REMAINING_MS: u64 = 2_000;

warden_sdk::params! {
    /// The parameters, as declared in the manifest.
    struct Params {
        /// PostgreSQL: VACUUM (ANALYZE) a table when n_dead_tup / (n_live_tup + n_dead_tup) is at least this (0..1).
        dead_ratio: f64 = 0.2,
        /// PostgreSQL: ANALYZE a table when n_mod_since_analyze / max(n_live_tup, 1) is at least this (0..1).
        changed_ratio: f64 = 0.1,
        /// PostgreSQL: never VACUUM a table with fewer dead tuples than this.
        min_dead_tuples: u64 = 50,
        /// PostgreSQL: never ANALYZE a table with fewer changed rows than this.
        min_changed_rows: u64 = 50,
        /// PostgreSQL: only consider tables in this schema.
        schema: Option<String>,
        /// PostgreSQL: only consider these tables (comma-separated, `table` or `schema.table`).
        tables: Option<String>,
        /// PostgreSQL: act on at most this many tables per run, worst first (0: no limit).
        max_tables: u64 = 20,
        /// SQLite: VACUUM when freelist_count / page_count is at least this (0..1).
        freelist_ratio: f64 = 0.2,
        /// SQLite: never VACUUM with fewer free pages than this.
        min_freelist_pages: u64 = 16,
    }
}

/// The validated parameters.
#[derive(Clone, Debug)]
struct Settings {
    thresholds: Thresholds,
    freelist: FreelistThresholds,
    schema: Option<String>,
    tables: Option<Vec<String>>,
    max_tables: u64,
}

fn ratio(name: &str, value: f64) -> Result<f64, Error> {
    validate_ratio(name, value).map_err(Error::invalid_input)
}

impl Settings {
    fn from_context(ctx: &Context) -> Result<Self, Error> {
        let p = Params::from_context(ctx)?;
        Ok(Settings {
            thresholds: Thresholds {
                dead_ratio: ratio("dead_ratio", p.dead_ratio)?,
                changed_ratio: ratio("changed_ratio", p.changed_ratio)?,
                min_dead_tuples: p.min_dead_tuples,
                min_changed_rows: p.min_changed_rows,
            },
            freelist: FreelistThresholds {
                freelist_ratio: ratio("freelist_ratio", p.freelist_ratio)?,
                min_freelist_pages: p.min_freelist_pages,
            },
            schema: p
                .schema
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            tables: decide::table_list(p.tables.as_deref()),
            max_tables: p.max_tables,
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
        .params::<Params>()
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
