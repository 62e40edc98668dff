//! PostgreSQL: the indexes from `pg_index` and friends, the statistics' age
//! from `pg_stat_database`, then the findings of [`crate::analysis`].
//! Read-only queries; nothing is executed.

use warden_sdk::{Context, Error, Finding, Report, ResultExt, Row};

use crate::Settings;
use crate::analysis::{self, IndexFinding, IndexInfo, Key, Level, StatsAge, count};

/// Field and key separators inside the aggregated key columns (ASCII unit
/// and record separators: not found in identifiers or expressions).
const FIELD: char = '\u{1f}';
const RECORD: char = '\u{1e}';

/// Every index (not partitioned-index parents) outside the system schemas.
/// Per key column: the column or expression, operator class OID, collation
/// OID and `indoption` bits; INCLUDE columns by name only.
const INDEXES: &str = "SELECT n.nspname::text AS schema_name, \
     t.relname::text AS table_name, \
     c.relname::text AS index_name, \
     am.amname::text AS method, \
     i.indisunique AS is_unique, \
     i.indisprimary AS is_primary, \
     i.indisvalid AS is_valid, \
     EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) AS constraint_backed, \
     pg_relation_size(c.oid) AS size_bytes, \
     coalesce(s.idx_scan, 0) AS scans, \
     (SELECT string_agg(pg_get_indexdef(i.indexrelid, g.k, true) || chr(31) \
         || i.indclass[g.k - 1]::text || chr(31) \
         || i.indcollation[g.k - 1]::text || chr(31) \
         || i.indoption[g.k - 1]::text, chr(30) ORDER BY g.k) \
      FROM generate_series(1, i.indnkeyatts) AS g(k)) AS key_columns, \
     (SELECT string_agg(pg_get_indexdef(i.indexrelid, g.k, true), chr(30) ORDER BY g.k) \
      FROM generate_series(i.indnkeyatts + 1, i.indnatts) AS g(k)) AS include_columns, \
     pg_get_expr(i.indpred, i.indrelid, true) AS predicate \
     FROM pg_index i \
     JOIN pg_class c ON c.oid = i.indexrelid \
     JOIN pg_class t ON t.oid = i.indrelid \
     JOIN pg_namespace n ON n.oid = t.relnamespace \
     JOIN pg_am am ON am.oid = c.relam \
     LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid \
     WHERE c.relkind = 'i' \
     AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND left(n.nspname, 8) NOT IN ('pg_toast', 'pg_temp_') \
     ORDER BY 1, 2, 3";

/// Since when the current database's statistics count: the last reset, or
/// the server start when they were never reset.
const STATS_AGE: &str = "SELECT \
     greatest(extract(epoch FROM now() - coalesce(d.stats_reset, pg_postmaster_start_time())), 0)::bigint AS age_seconds, \
     date_trunc('second', coalesce(d.stats_reset, pg_postmaster_start_time()))::text AS since, \
     d.stats_reset IS NOT NULL AS was_reset \
     FROM pg_stat_database d WHERE d.datname = current_database()";

fn non_negative(row: &Row<'_>, column: &str) -> Result<u64, Error> {
    Ok(row
        .get_opt_i64(column)?
        .map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}

fn split(text: Option<String>) -> Vec<String> {
    text.map(|t| {
        t.split(RECORD)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

fn key(text: &str) -> Key {
    let mut fields = text.split(FIELD);
    let mut next = || fields.next().unwrap_or_default().to_owned();
    Key {
        expr: next(),
        opclass: next(),
        collation: next(),
        option: next(),
    }
}

fn index_from_row(row: &Row<'_>) -> Result<IndexInfo, Error> {
    Ok(IndexInfo {
        schema: row.get_str("schema_name")?,
        table: row.get_str("table_name")?,
        name: row.get_str("index_name")?,
        method: row.get_str("method")?,
        keys: split(row.get_opt_str("key_columns")?)
            .iter()
            .map(|k| key(k))
            .collect(),
        include: split(row.get_opt_str("include_columns")?),
        predicate: row.get_opt_str("predicate")?,
        unique: row.get_bool("is_unique")?,
        primary: row.get_bool("is_primary")?,
        constraint_backed: row.get_bool("constraint_backed")?,
        valid: row.get_bool("is_valid")?,
        // NULL when the index was dropped after the catalog was read.
        size_bytes: non_negative(row, "size_bytes")?,
        scans: non_negative(row, "scans")?,
    })
}

fn stats_age(row: &Row<'_>) -> Result<StatsAge, Error> {
    Ok(StatsAge {
        seconds: non_negative(row, "age_seconds")?,
        since: row.get_opt_str("since")?.unwrap_or_default(),
        reset: row.get_bool("was_reset")?,
    })
}

#[allow(clippy::cast_precision_loss)]
fn num(n: u64) -> f64 {
    n as f64
}

fn finding(f: &IndexFinding) -> Finding {
    let finding = match f.level {
        Level::Info => Finding::info(f.title.clone(), f.detail.clone()),
        Level::Warning => Finding::warning(f.title.clone(), f.detail.clone()),
    };
    finding.suggest(f.action.clone())
}

pub fn run(ctx: &Context, settings: &Settings) -> Result<Report, Error> {
    let sql = ctx.sql();
    let age_rows = sql
        .query(STATS_AGE, &[])
        .context("reading pg_stat_database")?;
    let stats = stats_age(&age_rows.one()?).context("reading pg_stat_database")?;
    let rows = sql.query(INDEXES, &[]).context("reading pg_index")?;
    let mut indexes = rows
        .iter()
        .map(|row| index_from_row(&row))
        .collect::<Result<Vec<_>, _>>()
        .context("reading pg_index")?;
    indexes.retain(|ix| analysis::schema_included(&ix.schema, settings.include_schemas.as_deref()));

    let mut report = Report::ok("");
    if rows.truncated() {
        report.add_finding(
            Finding::warning(
                "catalog truncated",
                format!(
                    "the host returned only {} index rows (the grant's row limit); the rest were not checked, and duplicates or prefixes among them were missed",
                    count(u64::try_from(rows.len()).unwrap_or(u64::MAX))
                ),
            )
            .suggest("narrow the run with `include_schemas`, or raise the grant's row limit"),
        );
    }

    let findings = analysis::analyze(&indexes, &stats, settings.min_stats_age_secs);
    for f in &findings {
        report.add_finding(finding(f));
    }
    let tally = analysis::tally(&findings);
    let checked = u64::try_from(indexes.len()).unwrap_or(u64::MAX);
    let found: Vec<String> = tally
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(c, n)| format!("{n} {}", c.name()))
        .collect();
    let weak = if stats.seconds < settings.min_stats_age_secs {
        format!(
            " (statistics only {} old: unused-index evidence is weak)",
            analysis::age(stats.seconds)
        )
    } else {
        String::new()
    };
    report.summary = if found.is_empty() {
        format!("checked {checked} indexes; nothing to report")
    } else {
        format!("checked {checked} indexes: {}{weak}", found.join(", "))
    };
    if let Some(worst) = report.findings.iter().map(|f| f.severity.into()).max() {
        report.raise(worst);
    }
    let advice = crate::workload::advise(
        ctx,
        &settings.workload,
        &indexes,
        stats.seconds,
        &mut report,
    )?;
    if advice.suggested > 0 {
        let suggested = format!(
            "{} index suggestion{}",
            advice.suggested,
            if advice.suggested == 1 { "" } else { "s" }
        );
        report.summary = if found.is_empty() {
            format!("{suggested}; checked {checked} existing indexes")
        } else {
            format!("{suggested}; {}", report.summary)
        };
    }
    if let Some(worst) = report.findings.iter().map(|f| f.severity.into()).max() {
        report.raise(worst);
    }
    let droppable: u64 = findings
        .iter()
        .filter_map(|f| indexes.get(f.index))
        .map(|ix| ix.size_bytes)
        .sum();

    let mut report = report.metric("indexes_checked", num(checked), "");
    for (category, n) in tally {
        report.add_metric(format!("{}_indexes", category.name()), num(n), "");
    }
    Ok(report
        .metric("statements_analysed", num(advice.statements), "")
        .metric("statements_skipped", num(advice.skipped), "")
        .metric("candidates", num(advice.candidates), "")
        .metric("candidates_covered", num(advice.covered), "")
        .metric("candidates_pruned", num(advice.pruned), "")
        .metric("whatif_plans", num(advice.whatif_calls), "")
        .metric("suggested_indexes", num(advice.suggested), "")
        .metric("created_indexes", num(advice.created), "")
        .metric("flagged_index_bytes", num(droppable), "bytes")
        .metric("stats_age_seconds", num(stats.seconds), "s"))
}
