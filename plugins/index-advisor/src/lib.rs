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
mod candidates;
mod mongo_advice;
mod mongodb;
mod postgres;
mod selection;
mod workload;

use std::time::Duration;

use warden_sdk::{
    CapabilityClass, Context, Error, Manifest, Params as _, Plugin, Report, TargetKind,
};

warden_sdk::params! {
    /// The parameters, as declared in the manifest.
    struct Params {
        /// Unused indexes are a warning only when the usage statistics are at least this old (since pg_stat_database.stats_reset, or the server start); younger, the evidence is weak (info).
        min_stats_age: Duration = "24h",
        /// Only look at indexes in these schemas (comma-separated); default: every non-system schema.
        include_schemas: Option<String>,
        /// Analyse at most this many reads of pg_stat_statements, by total execution time.
        max_statements: u64 = 1000,
        /// Only statements called at least this often count.
        min_calls: u64 = 1,
        /// Statements these roles ran are not workload (comma-separated): run the agent as its own role and list it here, with any reporting or batch roles.
        exclude_roles: Option<String>,
        /// Suggest an index only when its net benefit (calls × planner-cost saved, minus write overhead) over the statistics window is at least this.
        min_benefit: f64 = selection::Model::default().min_benefit,
        /// A statement counts as helped only when its planned cost drops by at least this percentage.
        min_improvement_pct: f64 = selection::Model::default().min_improvement_pct,
        /// Planner cost units one insert, update or delete spends maintaining one more index.
        write_cost: f64 = selection::Model::default().write_cost,
        /// Suggest at most this many indexes per run.
        max_indexes: u64 = selection::Model::default().max_indexes,
        /// Create the suggested indexes (CREATE INDEX CONCURRENTLY, one at a time, under the grant's lock_timeout); needs a ddl grant. Dry-run and approvals apply as to any change.
        apply: bool = false,
        /// MongoDB: only these databases (comma-separated); default: the database the target URL names, else every database but admin, local and config.
        databases: Option<String>,
        /// MongoDB: mongod's structured JSON log, read for "Slow query" entries (the grant must list it in log_files).
        log_file: Option<String>,
        /// MongoDB: read at most this many bytes from the end of log_file.
        log_bytes: u64 = 64 << 20,
        /// MongoDB: read at most this many of the newest system.profile entries per database (0: none).
        profile_entries: u64 = 10_000,
        /// MongoDB: check each suggestion with explain on a sample copied to this target (its own grant needs write and ddl; the analysed target stays read-only; the copy is dropped).
        scratch_target: Option<String>,
        /// MongoDB: the database on scratch_target the sample goes to.
        scratch_database: String = "warden_scratch",
        /// MongoDB: documents copied for the explain check.
        sample_size: u64 = 10_000,
        /// MongoDB: a query shape is worth an index when it examines at least this many documents per document returned (or scans the collection, or sorts in memory).
        min_scan_ratio: f64 = mongo_advice::Params::default().min_scan_ratio,
    }
}

/// The validated parameters.
#[derive(Clone, Debug)]
struct Settings {
    min_stats_age_secs: u64,
    include_schemas: Option<Vec<String>>,
    workload: workload::Options,
    mongo: mongodb::Options,
}

impl Settings {
    fn from_context(ctx: &Context) -> Result<Self, Error> {
        let p = Params::from_context(ctx)?;
        let defaults = selection::Model::default();
        let model = selection::Model {
            write_cost: non_negative("write_cost", p.write_cost)?,
            size_factor: defaults.size_factor,
            min_benefit: non_negative("min_benefit", p.min_benefit)?,
            min_improvement_pct: non_negative("min_improvement_pct", p.min_improvement_pct)?,
            max_indexes: usize::try_from(p.max_indexes).unwrap_or(usize::MAX),
        };
        Ok(Settings {
            min_stats_age_secs: p.min_stats_age.as_secs(),
            include_schemas: analysis::name_list(p.include_schemas.as_deref()),
            workload: workload::Options {
                max_statements: p.max_statements,
                min_calls: p.min_calls,
                exclude_roles: analysis::name_list(p.exclude_roles.as_deref()).unwrap_or_default(),
                model,
                apply: p.apply,
            },
            mongo: mongodb::Options {
                databases: analysis::name_list(p.databases.as_deref()),
                log_file: p.log_file,
                log_bytes: p.log_bytes,
                profile_entries: u32::try_from(p.profile_entries).unwrap_or(u32::MAX),
                scratch_target: p.scratch_target,
                scratch_database: p.scratch_database,
                sample_size: u32::try_from(p.sample_size).unwrap_or(u32::MAX),
                params: mongo_advice::Params {
                    min_scan_ratio: non_negative("min_scan_ratio", p.min_scan_ratio)?,
                    ..mongo_advice::Params::default()
                },
            },
        })
    }
}

fn non_negative(name: &str, value: f64) -> Result<f64, Error> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(Error::invalid_input(format!(
            "parameter `{name}` must be a number ≥ 0, got {value}"
        )))
    }
}

struct IndexAdvisor;

impl Plugin for IndexAdvisor {
    fn manifest() -> Manifest {
        Manifest::new(
            "index-advisor",
            env!("CARGO_PKG_VERSION"),
            "Suggest PostgreSQL indexes from the workload (pg_stat_statements, HypoPG what-if costs weighed by calls against write overhead), and report unused, duplicate, prefix-redundant and invalid ones; creates the suggestions only with apply=true and a ddl grant.",
        )
        .capability(CapabilityClass::Read)
        .capability(CapabilityClass::Write)
        .capability(CapabilityClass::Ddl)
        .target_kinds([TargetKind::Postgres, TargetKind::Mongodb])
        .params::<Params>()
    }

    fn run(ctx: &Context) -> Result<Report, Error> {
        let settings = Settings::from_context(ctx)?;
        match ctx.target_kind() {
            TargetKind::Postgres => postgres::run(ctx, &settings),
            TargetKind::Mongodb => mongodb::run(ctx, &settings.mongo, settings.min_stats_age_secs),
            other => Err(Error::invalid_input(format!(
                "index-advisor works on postgres and mongodb targets; `{}` is {}",
                ctx.target(),
                other.name()
            ))),
        }
    }
}

warden_sdk::export_plugin!(IndexAdvisor);
