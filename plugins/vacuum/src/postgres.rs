//! PostgreSQL: statistics from `pg_stat_user_tables`, then `VACUUM (ANALYZE)`
//! or `ANALYZE` per table, worst first, each checked afterwards: its
//! `vacuum_count` / `analyze_count` must have moved (see
//! [`decide::verify`]), else the action is `failed` with the server's
//! warning and the fix.

use warden_sdk::{
    Action, ActionState, CapabilityClass, Context, Error, Finding, Report, ResultExt, Row, Sql,
};

use crate::decide::{self, Assessment, Counters, Decision, TableStats, count, list_some, pct};
use crate::{MIN_REMAINING_MS, Settings};

/// Timestamps as text, to the second; sizes from `pg_table_size` (heap +
/// TOAST + maps, without indexes).
const STATS: &str = "SELECT schemaname::text AS schemaname, relname::text AS relname, \
     n_live_tup, n_dead_tup, n_mod_since_analyze, \
     date_trunc('second', last_vacuum)::text AS last_vacuum, \
     date_trunc('second', last_autovacuum)::text AS last_autovacuum, \
     date_trunc('second', last_analyze)::text AS last_analyze, \
     date_trunc('second', last_autoanalyze)::text AS last_autoanalyze, \
     pg_table_size(relid) AS table_bytes \
     FROM pg_stat_user_tables";

/// One table's manual maintenance counters.
const COUNTERS: &str = "SELECT vacuum_count, analyze_count FROM pg_stat_user_tables \
     WHERE schemaname = $1 AND relname = $2";

/// How many clean or deferred tables a finding names before `… and N more`.
const LIST_MAX: usize = 30;

fn non_negative(row: &Row<'_>, column: &str) -> Result<u64, Error> {
    Ok(row
        .get_opt_i64(column)?
        .map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}

fn table_from_row(row: &Row<'_>) -> Result<TableStats, Error> {
    Ok(TableStats {
        schema: row.get_str("schemaname")?,
        name: row.get_str("relname")?,
        live_tuples: non_negative(row, "n_live_tup")?,
        dead_tuples: non_negative(row, "n_dead_tup")?,
        mod_since_analyze: non_negative(row, "n_mod_since_analyze")?,
        // NULL when the table was dropped after the statistics were read.
        table_bytes: non_negative(row, "table_bytes")?,
        last_vacuum: row.get_opt_str("last_vacuum")?,
        last_autovacuum: row.get_opt_str("last_autovacuum")?,
        last_analyze: row.get_opt_str("last_analyze")?,
        last_autoanalyze: row.get_opt_str("last_autoanalyze")?,
    })
}

/// What happened to the tables that needed work.
#[derive(Default)]
struct Tally {
    vacuumed: u64,
    analyzed: u64,
    planned: u64,
    failed: u64,
}

fn counters(sql: &Sql<'_>, t: &TableStats) -> Result<Counters, Error> {
    let rows = sql
        .query(
            COUNTERS,
            &[t.schema.as_str().into(), t.name.as_str().into()],
        )
        .context("reading vacuum_count and analyze_count")?;
    let row = rows
        .one()
        .context("reading vacuum_count and analyze_count")?;
    Ok(Counters {
        vacuum_count: non_negative(&row, "vacuum_count")?,
        analyze_count: non_negative(&row, "analyze_count")?,
    })
}

/// The fix for a table the role could not maintain, naming its owner and
/// fitting the server's version when they can be read.
fn fix(sql: &Sql<'_>, t: &TableStats, qualified: &str) -> String {
    let owner = sql
        .query(
            "SELECT tableowner::text AS owner FROM pg_tables WHERE schemaname = $1 AND tablename = $2",
            &[t.schema.as_str().into(), t.name.as_str().into()],
        )
        .ok()
        .and_then(|rows| rows.first().and_then(|r| r.get_opt_str("owner").ok().flatten()));
    let version = sql
        .query(
            "SELECT current_setting('server_version_num')::int8 AS v",
            &[],
        )
        .ok()
        .and_then(|rows| rows.first().and_then(|r| r.get_opt_i64("v").ok().flatten()))
        .and_then(|v| u64::try_from(v).ok());
    decide::ownership_fix(qualified, owner.as_deref(), version)
}

#[allow(clippy::cast_precision_loss)]
fn num(n: u64) -> f64 {
    n as f64
}

fn suggestion(err: &Error, target: &str, statement: &str) -> String {
    match err {
        Error::AccessDenied(_) => format!(
            "grant the `maintenance` class on target `{target}` to plugin `vacuum`, or run it by hand: {statement}"
        ),
        Error::Timeout(_) => {
            format!("retry later (a lock conflict or a long run), or run it by hand: {statement}")
        }
        _ => format!("check the error, then run it by hand: {statement}"),
    }
}

/// Runs one table's statement and records the finding and the action.
fn act(
    ctx: &Context,
    sql: &Sql<'_>,
    t: &TableStats,
    a: &Assessment,
    settings: &Settings,
    report: &mut Report,
    tally: &mut Tally,
) {
    let title = format!("{}: {}", t.display_name(), a.decision.verb());
    let detail = decide::explain(t, a, &settings.thresholds);
    let (qualified, statement) = match sql.qualified_name(&[&t.schema, &t.name]) {
        Ok(qualified) => {
            let statement = a.decision.statement(&qualified);
            (qualified, statement)
        }
        Err(e) => {
            tally.failed += 1;
            report.add_finding(Finding::warning(
                format!("{title} failed"),
                format!("{detail}; cannot quote the table name: {}", e.summary()),
            ));
            return;
        }
    };
    let Some(statement) = statement else {
        return;
    };
    let before = counters(sql, t);
    let state = match sql.execute_with_notices(&statement, &[]) {
        Ok(done) if done.execution.is_planned() => {
            tally.planned += 1;
            report.add_finding(
                Finding::warning(
                    format!("{title} planned"),
                    format!("{detail}; planned (dry-run), not executed"),
                )
                .suggest(format!("run without dry-run to execute: {statement}")),
            );
            ActionState::Planned
        }
        Ok(done) => {
            let warnings: Vec<String> = done.warnings().map(|n| n.message.clone()).collect();
            let checked = match (before, counters(sql, t)) {
                (Ok(b), Ok(after)) => Ok(decide::verify(a.decision, b, after, &warnings)),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
            match checked {
                Ok(None) => {
                    match a.decision {
                        Decision::VacuumAnalyze => tally.vacuumed += 1,
                        Decision::Analyze | Decision::Nothing => tally.analyzed += 1,
                    }
                    warden_sdk::info!("{statement}: executed");
                    let said = if warnings.is_empty() {
                        String::new()
                    } else {
                        format!(" (PostgreSQL warned: {})", warnings.join("; "))
                    };
                    report.add_finding(Finding::info(
                        format!("{title} executed"),
                        format!("{detail}; executed{said}"),
                    ));
                    ActionState::Executed
                }
                Ok(Some(why)) => {
                    tally.failed += 1;
                    warden_sdk::warn!("{statement}: did not take effect: {why}");
                    report.add_finding(
                        Finding::critical(
                            format!("{title} did not take effect"),
                            format!(
                                "{detail}; the statement ran but the table was not processed: {why}"
                            ),
                        )
                        .suggest(fix(sql, t, &qualified)),
                    );
                    ActionState::Failed
                }
                // The counters could not be read: the server's warnings decide.
                Err(e) if !warnings.is_empty() => {
                    tally.failed += 1;
                    report.add_finding(
                        Finding::critical(
                            format!("{title} did not take effect"),
                            format!(
                                "{detail}; PostgreSQL said: {}; (counters not readable: {})",
                                warnings.join("; "),
                                e.summary()
                            ),
                        )
                        .suggest(fix(sql, t, &qualified)),
                    );
                    ActionState::Failed
                }
                Err(e) => {
                    match a.decision {
                        Decision::VacuumAnalyze => tally.vacuumed += 1,
                        Decision::Analyze | Decision::Nothing => tally.analyzed += 1,
                    }
                    report.add_finding(Finding::warning(
                        format!("{title} executed, not verified"),
                        format!(
                            "{detail}; executed without a warning, but its counters could not be read to confirm it: {}",
                            e.summary()
                        ),
                    ));
                    ActionState::Executed
                }
            }
        }
        Err(e) => {
            tally.failed += 1;
            warden_sdk::warn!("{statement}: {}", e.summary());
            report.add_finding(
                Finding::warning(
                    format!("{title} failed"),
                    format!("{detail}; failed: {}", e.summary()),
                )
                .suggest(suggestion(&e, ctx.target(), &statement)),
            );
            ActionState::Failed
        }
    };
    report.add_action(Action::new(
        ctx.target(),
        statement,
        CapabilityClass::Maintenance,
        state,
    ));
}

pub fn run(ctx: &Context, settings: &Settings) -> Result<Report, Error> {
    let sql = ctx.sql();
    let rows = match &settings.schema {
        Some(schema) => sql.query(
            &format!("{STATS} WHERE schemaname = $1 ORDER BY 1, 2"),
            &[schema.as_str().into()],
        ),
        None => sql.query(&format!("{STATS} ORDER BY 1, 2"), &[]),
    }
    .context("reading pg_stat_user_tables")?;
    let mut tables = rows
        .iter()
        .map(|row| table_from_row(&row))
        .collect::<Result<Vec<_>, _>>()
        .context("reading pg_stat_user_tables")?;

    let mut report = Report::ok("");
    if rows.truncated() {
        report.add_finding(
            Finding::warning(
                "statistics truncated",
                format!(
                    "the host returned only {} rows of pg_stat_user_tables (the grant's row limit); the rest were not checked",
                    count(u64::try_from(rows.len()).unwrap_or(u64::MAX))
                ),
            )
            .suggest("narrow the run with `schema` or `tables`, or raise the grant's row limit"),
        );
    }
    if let Some(wanted) = &settings.tables {
        tables.retain(|t| {
            wanted
                .iter()
                .any(|e| decide::entry_matches(e, &t.schema, &t.name))
        });
        let missing: Vec<String> = wanted
            .iter()
            .filter(|e| {
                !tables
                    .iter()
                    .any(|t| decide::entry_matches(e, &t.schema, &t.name))
            })
            .cloned()
            .collect();
        if !missing.is_empty() {
            let scope = settings
                .schema
                .as_ref()
                .map_or(String::new(), |s| format!(" (schema `{s}`)"));
            report.add_finding(Finding::warning(
                "tables not found",
                format!(
                    "not in pg_stat_user_tables{scope}: {}",
                    list_some(&missing, LIST_MAX)
                ),
            ));
        }
    }

    let th = &settings.thresholds;
    let assessments: Vec<Assessment> = tables.iter().map(|t| decide::assess(t, th)).collect();
    let plan = decide::plan(&tables, &assessments, settings.max_tables);
    let mut tally = Tally::default();
    let mut late: Vec<usize> = Vec::new();
    for (position, &i) in plan.act.iter().enumerate() {
        let (Some(t), Some(a)) = (tables.get(i), assessments.get(i)) else {
            continue;
        };
        if ctx.remaining_ms() < MIN_REMAINING_MS {
            late = plan.act.iter().skip(position).copied().collect();
            break;
        }
        act(ctx, &sql, t, a, settings, &mut report, &mut tally);
    }

    let describe = |indexes: &[usize]| -> Vec<String> {
        indexes
            .iter()
            .filter_map(|&i| Some((tables.get(i)?, assessments.get(i)?)))
            .map(|(t, a)| format!("{} ({})", t.display_name(), a.decision.verb()))
            .collect()
    };
    if !plan.deferred.is_empty() {
        report.add_finding(
            Finding::warning(
                format!("{} tables deferred", plan.deferred.len()),
                format!(
                    "over max_tables = {}, worst first: {}",
                    settings.max_tables,
                    list_some(&describe(&plan.deferred), LIST_MAX)
                ),
            )
            .suggest("they come first in a later run; raise `max_tables` to do more per run"),
        );
    }
    if !late.is_empty() {
        report.add_finding(
            Finding::warning(
                format!("{} tables deferred", late.len()),
                format!(
                    "less than {} ms left of the run: {}",
                    MIN_REMAINING_MS,
                    list_some(&describe(&late), LIST_MAX)
                ),
            )
            .suggest("give the run a longer time limit, or lower `max_tables`"),
        );
    }
    if !plan.clean.is_empty() {
        let clean: Vec<String> = plan
            .clean
            .iter()
            .filter_map(|&i| Some(decide::brief(tables.get(i)?, assessments.get(i)?)))
            .collect();
        report.add_finding(Finding::info(
            format!("{} tables within thresholds", clean.len()),
            format!(
                "dead tuples below {} (or fewer than {}), rows changed since analyze below {} (or fewer than {}): {}",
                pct(th.dead_ratio),
                count(th.min_dead_tuples),
                pct(th.changed_ratio),
                count(th.min_changed_rows),
                list_some(&clean, LIST_MAX)
            ),
        ));
    }

    let checked = u64::try_from(tables.len()).unwrap_or(u64::MAX);
    let deferred = u64::try_from(plan.deferred.len() + late.len()).unwrap_or(u64::MAX);
    let mut outcome: Vec<String> = Vec::new();
    for (n, what) in [
        (tally.vacuumed, "vacuumed"),
        (tally.analyzed, "analyzed"),
        (tally.planned, "planned (dry-run)"),
        (tally.failed, "failed"),
        (deferred, "deferred"),
    ] {
        if n > 0 {
            outcome.push(format!("{n} {what}"));
        }
    }
    report.summary = if checked == 0 {
        "no tables to check".to_owned()
    } else if outcome.is_empty() {
        format!("checked {checked} tables; none needs VACUUM or ANALYZE")
    } else {
        format!("checked {checked} tables: {}", outcome.join(", "))
    };
    if let Some(worst) = report.findings.iter().map(|f| f.severity.into()).max() {
        report.raise(worst);
    }

    let dead: u64 = tables.iter().map(|t| t.dead_tuples).sum();
    let bloat: u64 = assessments.iter().map(|a| a.est_bloat_bytes).sum();
    Ok(report
        .metric("tables_checked", num(checked), "")
        .metric("tables_vacuumed", num(tally.vacuumed), "")
        .metric("tables_analyzed", num(tally.analyzed), "")
        .metric("actions_planned", num(tally.planned), "")
        .metric("actions_failed", num(tally.failed), "")
        .metric("tables_deferred", num(deferred), "")
        .metric("dead_tuples_found", num(dead), "rows")
        .metric("est_bloat_bytes", num(bloat), "bytes"))
}
