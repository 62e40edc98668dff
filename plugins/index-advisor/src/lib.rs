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

use warden_sdk::{
    CapabilityClass, Context, Error, Manifest, ParamSpec, Plugin, Report, TargetKind,
};

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
        let defaults = selection::Model::default();
        let model = selection::Model {
            write_cost: non_negative(ctx, "write_cost")?,
            size_factor: defaults.size_factor,
            min_benefit: non_negative(ctx, "min_benefit")?,
            min_improvement_pct: non_negative(ctx, "min_improvement_pct")?,
            max_indexes: usize::try_from(ctx.param_u64("max_indexes")?).unwrap_or(usize::MAX),
        };
        Ok(Settings {
            min_stats_age_secs: ctx.param_duration("min_stats_age")?.as_secs(),
            include_schemas: analysis::name_list(ctx.param_opt_str("include_schemas")),
            workload: workload::Options {
                max_statements: ctx.param_u64("max_statements")?,
                min_calls: ctx.param_u64("min_calls")?,
                exclude_roles: analysis::name_list(ctx.param_opt_str("exclude_roles"))
                    .unwrap_or_default(),
                model,
                apply: ctx.param_bool("apply")?,
            },
            mongo: mongodb::Options {
                databases: analysis::name_list(ctx.param_opt_str("databases")),
                log_file: ctx.param_opt_str("log_file").map(str::to_owned),
                log_bytes: ctx.param_u64("log_bytes")?,
                profile_entries: u32::try_from(ctx.param_u64("profile_entries")?)
                    .unwrap_or(u32::MAX),
                scratch_target: ctx.param_opt_str("scratch_target").map(str::to_owned),
                scratch_database: ctx.param_str("scratch_database")?.to_owned(),
                sample_size: u32::try_from(ctx.param_u64("sample_size")?).unwrap_or(u32::MAX),
                params: mongo_advice::Params {
                    min_scan_ratio: non_negative(ctx, "min_scan_ratio")?,
                    ..mongo_advice::Params::default()
                },
            },
        })
    }
}

fn non_negative(ctx: &Context, name: &str) -> Result<f64, Error> {
    let value = ctx.param_f64(name)?;
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
        .param(
            ParamSpec::integer(
                "max_statements",
                "Analyse at most this many reads of pg_stat_statements, by total execution time.",
            )
            .with_default(1000),
        )
        .param(
            ParamSpec::integer(
                "min_calls",
                "Only statements called at least this often count.",
            )
            .with_default(1),
        )
        .param(ParamSpec::string(
            "exclude_roles",
            "Statements these roles ran are not workload (comma-separated): run the agent as its own role and list it here, with any reporting or batch roles.",
        ))
        .param(
            ParamSpec::float(
                "min_benefit",
                "Suggest an index only when its net benefit (calls × planner-cost saved, minus write overhead) over the statistics window is at least this.",
            )
            .with_default(selection::Model::default().min_benefit),
        )
        .param(
            ParamSpec::float(
                "min_improvement_pct",
                "A statement counts as helped only when its planned cost drops by at least this percentage.",
            )
            .with_default(selection::Model::default().min_improvement_pct),
        )
        .param(
            ParamSpec::float(
                "write_cost",
                "Planner cost units one insert, update or delete spends maintaining one more index.",
            )
            .with_default(selection::Model::default().write_cost),
        )
        .param(
            ParamSpec::integer("max_indexes", "Suggest at most this many indexes per run.")
                .with_default(selection::Model::default().max_indexes),
        )
        .param(
            ParamSpec::boolean(
                "apply",
                "Create the suggested indexes (CREATE INDEX CONCURRENTLY, one at a time, under the grant's lock_timeout); needs a ddl grant. Dry-run and approvals apply as to any change.",
            )
            .with_default(false),
        )
        .param(ParamSpec::string(
            "databases",
            "MongoDB: only these databases (comma-separated); default: the database the target URL names, else every database but admin, local and config.",
        ))
        .param(ParamSpec::string(
            "log_file",
            "MongoDB: mongod's structured JSON log, read for \"Slow query\" entries (the grant must list it in log_files).",
        ))
        .param(
            ParamSpec::integer("log_bytes", "MongoDB: read at most this many bytes from the end of log_file.")
                .with_default(64 << 20),
        )
        .param(
            ParamSpec::integer(
                "profile_entries",
                "MongoDB: read at most this many of the newest system.profile entries per database (0: none).",
            )
            .with_default(10_000),
        )
        .param(ParamSpec::string(
            "scratch_target",
            "MongoDB: check each suggestion with explain on a sample copied to this target (its own grant needs write and ddl; the analysed target stays read-only; the copy is dropped).",
        ))
        .param(
            ParamSpec::string("scratch_database", "MongoDB: the database on scratch_target the sample goes to.")
                .with_default("warden_scratch"),
        )
        .param(
            ParamSpec::integer("sample_size", "MongoDB: documents copied for the explain check.")
                .with_default(10_000),
        )
        .param(
            ParamSpec::float(
                "min_scan_ratio",
                "MongoDB: a query shape is worth an index when it examines at least this many documents per document returned (or scans the collection, or sorts in memory).",
            )
            .with_default(mongo_advice::Params::default().min_scan_ratio),
        )
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
