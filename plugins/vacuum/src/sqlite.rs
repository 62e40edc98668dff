//! SQLite: `VACUUM` when the freelist is large enough, then `ANALYZE` (never
//! analyzed) or `PRAGMA optimize`.

use warden_sdk::{
    Action, ActionState, CapabilityClass, Context, Error, Finding, Report, ResultExt, Sql,
};

use crate::decide::{self, PageStats, StatsStep, bytes, count};
use crate::{MIN_REMAINING_MS, Settings};

const CATALOG: &str = "SELECT \
     (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%') AS user_tables, \
     (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1') AS has_stat1";

fn pragma(sql: &Sql<'_>, name: &str) -> Result<u64, Error> {
    let rows = sql
        .query(&format!("PRAGMA {name}"), &[])
        .with_context(|| format!("PRAGMA {name}"))?;
    rows.one()?
        .get_u64(0)
        .with_context(|| format!("PRAGMA {name}"))
}

fn page_stats(sql: &Sql<'_>) -> Result<PageStats, Error> {
    Ok(PageStats {
        page_count: pragma(sql, "page_count")?,
        freelist_count: pragma(sql, "freelist_count")?,
        page_size: pragma(sql, "page_size")?,
    })
}

#[allow(clippy::cast_precision_loss)]
fn num(n: u64) -> f64 {
    n as f64
}

/// Counts of what happened, for the summary and metrics.
#[derive(Default)]
struct Tally {
    vacuumed: bool,
    analyzed: bool,
    planned: u64,
    failed: u64,
    deferred: u64,
    bytes_freed: Option<u64>,
}

/// Runs `statement`; returns the action state and the text to append to
/// the finding's detail.
fn execute(sql: &Sql<'_>, statement: &str) -> (ActionState, String, Option<Error>) {
    match sql.execute(statement, &[]) {
        Ok(done) if done.is_planned() => (
            ActionState::Planned,
            "planned (dry-run), not executed".to_owned(),
            None,
        ),
        Ok(_) => {
            warden_sdk::info!("{statement}: executed");
            (ActionState::Executed, "executed".to_owned(), None)
        }
        Err(e) => {
            warden_sdk::warn!("{statement}: {}", e.summary());
            (
                ActionState::Failed,
                format!("failed: {}", e.summary()),
                Some(e),
            )
        }
    }
}

pub fn run(ctx: &Context, settings: &Settings) -> Result<Report, Error> {
    let sql = ctx.sql();
    let target = ctx.target();
    if settings.schema.is_some() || settings.tables.is_some() {
        warden_sdk::info!("`schema` and `tables` apply to PostgreSQL targets; ignored for SQLite");
    }
    let before = page_stats(&sql)?;
    let catalog = sql.query(CATALOG, &[]).context("reading sqlite_master")?;
    let catalog = catalog.one()?;
    let user_tables = catalog.get_u64("user_tables")?;
    let has_stat1 = catalog.get_u64("has_stat1")? > 0;

    let th = &settings.freelist;
    let freelist = decide::assess_freelist(&before, th);
    let detail = decide::explain_freelist(&before, &freelist, th);
    let mut report = Report::ok("");
    let mut tally = Tally::default();

    if !freelist.vacuum {
        report.add_finding(Finding::info(format!("{target}: no VACUUM needed"), detail));
    } else if ctx.remaining_ms() < MIN_REMAINING_MS {
        tally.deferred += 1;
        report.add_finding(
            Finding::warning(
                format!("{target}: VACUUM deferred"),
                format!("{detail}; less than {MIN_REMAINING_MS} ms left of the run"),
            )
            .suggest("give the run a longer time limit"),
        );
    } else {
        let (state, outcome, err) = execute(&sql, "VACUUM");
        let mut recorded = state;
        let finding = match state {
            ActionState::Executed => {
                let outcome = match page_stats(&sql) {
                    Ok(after) if decide::verify_sqlite_vacuum(&before, &after).is_some() => {
                        let why = decide::verify_sqlite_vacuum(&before, &after).unwrap_or_default();
                        tally.failed += 1;
                        recorded = ActionState::Failed;
                        report.add_finding(
                            Finding::critical(
                                format!("{target}: VACUUM did not take effect"),
                                format!("{detail}; the statement ran but {why}"),
                            )
                            .suggest("VACUUM needs no open transaction or reader on the file and free disk space about the database's size; check the file and retry"),
                        );
                        String::new()
                    }
                    Ok(after) => {
                        tally.vacuumed = true;
                        let freed = before
                            .page_count
                            .saturating_sub(after.page_count)
                            .saturating_mul(before.page_size);
                        tally.bytes_freed = Some(freed);
                        format!(
                            "{outcome}: {} freed ({} → {} pages)",
                            bytes(freed),
                            count(before.page_count),
                            count(after.page_count)
                        )
                    }
                    Err(e) => {
                        tally.vacuumed = true;
                        format!(
                            "{outcome}; not verified: cannot re-read the page count: {}",
                            e.summary()
                        )
                    }
                };
                if recorded == ActionState::Failed {
                    None
                } else {
                    Some(Finding::info(
                        format!("{target}: VACUUM executed"),
                        format!("{detail}; {outcome}"),
                    ))
                }
            }
            ActionState::Planned => {
                tally.planned += 1;
                Some(
                    Finding::warning(
                        format!("{target}: VACUUM planned"),
                        format!("{detail}; {outcome}"),
                    )
                    .suggest("run without dry-run to execute: VACUUM"),
                )
            }
            ActionState::Failed => {
                tally.failed += 1;
                let hint = match err {
                    Some(Error::AccessDenied(_)) => format!(
                        "grant the `maintenance` class on target `{target}` to plugin `vacuum`"
                    ),
                    _ => "VACUUM needs no open transaction on the file and free disk space about the database's size; retry later".to_owned(),
                };
                Some(
                    Finding::warning(
                        format!("{target}: VACUUM failed"),
                        format!("{detail}; {outcome}"),
                    )
                    .suggest(hint),
                )
            }
        };
        if let Some(finding) = finding {
            report.add_finding(finding);
        }
        report.add_action(Action::new(
            target,
            "VACUUM",
            CapabilityClass::Maintenance,
            recorded,
        ));
    }

    if let Some(step) = decide::stats_step(user_tables, has_stat1) {
        let statement = step.statement();
        let why = match step {
            StatsStep::Analyze => format!(
                "no sqlite_stat1: the query planner has no statistics for the {} tables → ANALYZE",
                count(user_tables)
            ),
            StatsStep::Optimize => format!(
                "statistics exist (sqlite_stat1) for the {} tables → PRAGMA optimize, which re-analyzes only what is stale",
                count(user_tables)
            ),
        };
        let (state, outcome, _) = execute(&sql, statement);
        let title = format!("{target}: {statement} {}", state.name());
        let detail = format!("{why}; {outcome}");
        let finding = match (state, step) {
            (ActionState::Executed, _) => {
                tally.analyzed = true;
                Finding::info(title, detail)
            }
            // Routine upkeep: a planned PRAGMA optimize needs no attention.
            (ActionState::Planned, StatsStep::Optimize) => {
                tally.planned += 1;
                Finding::info(title, detail)
            }
            (ActionState::Planned, StatsStep::Analyze) => {
                tally.planned += 1;
                Finding::warning(title, detail).suggest("run without dry-run to execute: ANALYZE")
            }
            (ActionState::Failed, _) => {
                tally.failed += 1;
                Finding::warning(title, detail)
            }
        };
        report.add_finding(finding);
        report.add_action(Action::new(
            target,
            statement,
            CapabilityClass::Maintenance,
            state,
        ));
    }

    let mut outcome: Vec<String> = Vec::new();
    if tally.vacuumed {
        outcome.push(match tally.bytes_freed {
            Some(freed) => format!("vacuumed ({} freed)", bytes(freed)),
            None => "vacuumed".to_owned(),
        });
    }
    if tally.analyzed {
        outcome.push("analyzed".to_owned());
    }
    for (n, what) in [
        (tally.planned, "planned (dry-run)"),
        (tally.failed, "failed"),
        (tally.deferred, "deferred"),
    ] {
        if n > 0 {
            outcome.push(format!("{n} {what}"));
        }
    }
    let free = format!(
        "{} of {} pages free ({})",
        count(before.freelist_count),
        count(before.page_count),
        decide::pct(freelist.free_fraction)
    );
    report.summary = if outcome.is_empty() {
        format!("{free}; nothing to do")
    } else {
        format!("{free}: {}", outcome.join(", "))
    };
    if let Some(worst) = report.findings.iter().map(|f| f.severity.into()).max() {
        report.raise(worst);
    }

    let mut report = report
        .metric("tables_checked", num(user_tables), "")
        .metric("page_count", num(before.page_count), "")
        .metric("page_size", num(before.page_size), "bytes")
        .metric("freelist_pages", num(before.freelist_count), "")
        .metric("est_bloat_bytes", num(freelist.reclaimable_bytes), "bytes")
        .metric("vacuumed", num(u64::from(tally.vacuumed)), "")
        .metric("analyzed", num(u64::from(tally.analyzed)), "")
        .metric("actions_planned", num(tally.planned), "")
        .metric("actions_failed", num(tally.failed), "");
    if let Some(freed) = tally.bytes_freed {
        report.add_metric("bytes_freed", num(freed), "bytes");
    }
    Ok(report)
}
