//! Warden plugin `index-advisor`: reads PostgreSQL's catalog and reports
//! indexes that cost writes and disk without serving reads.
//!
//! - **invalid** indexes (`pg_index.indisvalid = false`, e.g. left by a failed
//!   `CREATE INDEX CONCURRENTLY`);
//! - **duplicate** indexes (same table, keys, operator classes, collations,
//!   ordering, INCLUDE columns and predicate);
//! - **redundant** btree indexes whose keys are a leading prefix of another
//!   btree index on the same table (no predicates);
//! - **unused** indexes (`pg_stat_user_indexes.idx_scan = 0`), with the age
//!   of the statistics: younger than `min_stats_age`, the evidence is weak
//!   (info instead of warning).
//!
//! Primary keys, unique indexes and indexes backing a constraint are never
//! suggested for dropping. The plugin only reads (`read` class): each finding
//! carries the statement an operator could run (`DROP INDEX CONCURRENTLY`,
//! `REINDEX INDEX CONCURRENTLY`), and nothing is executed.
//!
//! Report status: the worst finding's severity (`warning` when an invalid,
//! duplicate or redundant index is found, or an unused one on statistics at
//! least `min_stats_age` old). The decisions are in [`analysis`], as pure
//! functions with unit tests; the SQL is in [`postgres`].

mod analysis;
// Wired into the run in the next step.
#[allow(dead_code)]
mod candidates;
// Wired into the run in a later step.
#[allow(dead_code)]
mod mongo_advice;
mod postgres;
// Wired into the run in the next step.
#[allow(dead_code)]
mod selection;

use warden_sdk::{
    CapabilityClass, Context, Error, Manifest, ParamSpec, Plugin, Report, TargetKind,
};

/// The validated parameters.
#[derive(Clone, Debug)]
struct Settings {
    min_stats_age_secs: u64,
    include_schemas: Option<Vec<String>>,
}

impl Settings {
    fn from_context(ctx: &Context) -> Result<Self, Error> {
        Ok(Settings {
            min_stats_age_secs: ctx.param_duration("min_stats_age")?.as_secs(),
            include_schemas: analysis::schema_list(ctx.param_opt_str("include_schemas")),
        })
    }
}

struct IndexAdvisor;

impl Plugin for IndexAdvisor {
    fn manifest() -> Manifest {
        Manifest::new(
            "index-advisor",
            env!("CARGO_PKG_VERSION"),
            "Report unused, duplicate, prefix-redundant and invalid PostgreSQL indexes, with the statement to fix each (read only).",
        )
        .capability(CapabilityClass::Read)
        .target_kind(TargetKind::Postgres)
        .param(
            ParamSpec::duration(
                "min_stats_age",
                "Unused indexes are a warning only when the usage statistics are at least this old (since pg_stat_database.stats_reset, or the server start); younger, the evidence is weak (info).",
            )
            .with_default("24h"),
        )
        .param(ParamSpec::string(
            "include_schemas",
            "Only look at indexes in these schemas (comma-separated); default: every non-system schema.",
        ))
    }

    fn run(ctx: &Context) -> Result<Report, Error> {
        let settings = Settings::from_context(ctx)?;
        match ctx.target_kind() {
            TargetKind::Postgres => postgres::run(ctx, &settings),
            other => Err(Error::invalid_input(format!(
                "index-advisor works on postgres targets; `{}` is {}",
                ctx.target(),
                other.name()
            ))),
        }
    }
}

warden_sdk::export_plugin!(IndexAdvisor);
