//! The vacuum plugin's decisions, as pure functions of the statistics it read
//! (no host calls, no bindings), so they are unit-tested on the build host.
//!
//! PostgreSQL, per table (numbers from `pg_stat_user_tables`):
//! - dead fraction = `n_dead_tup / (n_live_tup + n_dead_tup)`; when it is at
//!   least `dead_ratio` and there are at least `min_dead_tuples` dead tuples:
//!   `VACUUM (ANALYZE)` (which also analyzes);
//! - otherwise changed fraction = `n_mod_since_analyze / max(n_live_tup, 1)`;
//!   when it is at least `changed_ratio` and at least `min_changed_rows` rows
//!   changed: `ANALYZE`;
//! - otherwise nothing.
//!
//! Estimated bloat = table bytes × dead fraction. Tables needing work are
//! ranked worst first (VACUUM before ANALYZE; by estimated bloat, then dead
//! tuples; by changed fraction, then changed rows) and at most `max_tables`
//! are acted on (0: no limit).
//!
//! SQLite: `VACUUM` when the freelist holds at least `min_freelist_pages`
//! pages and at least `freelist_ratio` of `page_count`; then `ANALYZE` if the
//! database has never been analyzed (no `sqlite_stat1`), else
//! `PRAGMA optimize`.
//!
//! Outcome checks ([`verify`], [`verify_sqlite_vacuum`]): a statement that
//! ran is not enough. PostgreSQL skips a table the role may not maintain
//! with only a `WARNING` (`skipping "t" --- only table or database owner
//! can vacuum it`), so the plugin compares `vacuum_count` / `analyze_count`
//! before and after: a counter that did not move is a failed action, with
//! the server's warning as the reason and [`ownership_fix`] as the fix.
//! SQLite: a `VACUUM` must leave no free page.

use std::cmp::Ordering;

/// PostgreSQL thresholds (validated parameters).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    pub dead_ratio: f64,
    pub changed_ratio: f64,
    pub min_dead_tuples: u64,
    pub min_changed_rows: u64,
}

/// SQLite thresholds (validated parameters).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FreelistThresholds {
    pub freelist_ratio: f64,
    pub min_freelist_pages: u64,
}

/// Checks that a ratio parameter is within `0..=1`; the error names it.
pub fn validate_ratio(name: &str, value: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "parameter `{name}` must be between 0 and 1 (a fraction, 0.2 = 20%), got {value}"
        ))
    }
}

/// Splits the `tables` parameter (`orders, public.items`) into names;
/// `None` when it is absent or lists nothing.
pub fn table_list(param: Option<&str>) -> Option<Vec<String>> {
    let names: Vec<String> = param?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (!names.is_empty()).then_some(names)
}

/// Whether an entry of the `tables` list names `schema.name` (an entry is a
/// bare table name or `schema.table`, compared exactly).
pub fn entry_matches(entry: &str, schema: &str, name: &str) -> bool {
    entry == name
        || entry
            .split_once('.')
            .is_some_and(|(s, n)| s == schema && n == name)
}

/// One row of `pg_stat_user_tables`, as the plugin uses it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableStats {
    pub schema: String,
    pub name: String,
    pub live_tuples: u64,
    pub dead_tuples: u64,
    pub mod_since_analyze: u64,
    pub table_bytes: u64,
    pub last_vacuum: Option<String>,
    pub last_autovacuum: Option<String>,
    pub last_analyze: Option<String>,
    pub last_autoanalyze: Option<String>,
}

impl TableStats {
    /// `schema.name`, for humans.
    pub fn display_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// What to do with a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    VacuumAnalyze,
    Analyze,
    Nothing,
}

impl Decision {
    /// The statement's verb: `VACUUM (ANALYZE)`, `ANALYZE`, or `nothing`.
    pub fn verb(self) -> &'static str {
        match self {
            Decision::VacuumAnalyze => "VACUUM (ANALYZE)",
            Decision::Analyze => "ANALYZE",
            Decision::Nothing => "nothing",
        }
    }

    /// The statement for an already quoted `"schema"."table"`.
    pub fn statement(self, qualified: &str) -> Option<String> {
        match self {
            Decision::VacuumAnalyze | Decision::Analyze => {
                Some(format!("{} {qualified}", self.verb()))
            }
            Decision::Nothing => None,
        }
    }
}

/// A table's numbers and the decision they lead to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Assessment {
    pub decision: Decision,
    /// `dead / (live + dead)`, 0 for an empty table.
    pub dead_fraction: f64,
    /// `mod_since_analyze / max(live, 1)`.
    pub changed_fraction: f64,
    /// Table bytes × dead fraction.
    pub est_bloat_bytes: u64,
}

/// `dead / (live + dead)`, 0 when both are 0.
pub fn dead_fraction(live: u64, dead: u64) -> f64 {
    let total = live.saturating_add(dead);
    if total == 0 {
        0.0
    } else {
        as_f64(dead) / as_f64(total)
    }
}

/// `changed / max(live, 1)`.
pub fn changed_fraction(changed: u64, live: u64) -> f64 {
    as_f64(changed) / as_f64(live.max(1))
}

#[allow(clippy::cast_precision_loss)]
fn as_f64(n: u64) -> f64 {
    n as f64
}

/// Decides what a table needs.
pub fn assess(t: &TableStats, th: &Thresholds) -> Assessment {
    let dead_fraction = dead_fraction(t.live_tuples, t.dead_tuples);
    let changed_fraction = changed_fraction(t.mod_since_analyze, t.live_tuples);
    let decision = if t.dead_tuples >= th.min_dead_tuples && dead_fraction >= th.dead_ratio {
        Decision::VacuumAnalyze
    } else if t.mod_since_analyze >= th.min_changed_rows && changed_fraction >= th.changed_ratio {
        Decision::Analyze
    } else {
        Decision::Nothing
    };
    // Saturating float-to-int conversion; the product is within 0..=table_bytes.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let est_bloat_bytes = (as_f64(t.table_bytes) * dead_fraction).round() as u64;
    Assessment {
        decision,
        dead_fraction,
        changed_fraction,
        est_bloat_bytes,
    }
}

/// Worst first: VACUUM before ANALYZE; VACUUMs by estimated bloat, then dead
/// tuples; ANALYZEs by changed fraction, then changed rows; then by name.
pub fn worst_first(a: (&TableStats, &Assessment), b: (&TableStats, &Assessment)) -> Ordering {
    let rank = |d: Decision| match d {
        Decision::VacuumAnalyze => 0,
        Decision::Analyze => 1,
        Decision::Nothing => 2,
    };
    let (ta, aa) = a;
    let (tb, ab) = b;
    rank(aa.decision)
        .cmp(&rank(ab.decision))
        .then_with(|| match aa.decision {
            Decision::VacuumAnalyze => ab
                .est_bloat_bytes
                .cmp(&aa.est_bloat_bytes)
                .then(tb.dead_tuples.cmp(&ta.dead_tuples)),
            Decision::Analyze | Decision::Nothing => ab
                .changed_fraction
                .total_cmp(&aa.changed_fraction)
                .then(tb.mod_since_analyze.cmp(&ta.mod_since_analyze)),
        })
        .then_with(|| (&ta.schema, &ta.name).cmp(&(&tb.schema, &tb.name)))
}

/// The tables split by what happens to them this run (indexes into the
/// input slice).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Tables to VACUUM or ANALYZE now, worst first.
    pub act: Vec<usize>,
    /// Tables that need work but are over `max_tables`, worst first.
    pub deferred: Vec<usize>,
    /// Tables within the thresholds, in input order.
    pub clean: Vec<usize>,
}

/// Ranks the tables and applies `max_tables` (0: no limit).
pub fn plan(tables: &[TableStats], assessments: &[Assessment], max_tables: u64) -> Plan {
    let mut needy: Vec<usize> = Vec::new();
    let mut clean = Vec::new();
    for (i, a) in assessments.iter().enumerate().take(tables.len()) {
        if a.decision == Decision::Nothing {
            clean.push(i);
        } else {
            needy.push(i);
        }
    }
    needy.sort_by(|&i, &j| {
        match (
            tables.get(i),
            assessments.get(i),
            tables.get(j),
            assessments.get(j),
        ) {
            (Some(ti), Some(ai), Some(tj), Some(aj)) => worst_first((ti, ai), (tj, aj)),
            _ => Ordering::Equal,
        }
    });
    let limit = usize::try_from(max_tables).unwrap_or(usize::MAX);
    let deferred = if max_tables > 0 && needy.len() > limit {
        needy.split_off(limit)
    } else {
        Vec::new()
    };
    Plan {
        act: needy,
        deferred,
        clean,
    }
}

fn when(t: &Option<String>) -> &str {
    t.as_deref().unwrap_or("never")
}

/// The evidence for a table's decision, e.g. `41% dead tuples (41,000 of
/// 100,000), threshold 20% → VACUUM (ANALYZE); est. 3.2 MiB reclaimable of
/// 7.8 MiB; ...; last vacuum never, last autovacuum 2026-...`.
pub fn explain(t: &TableStats, a: &Assessment, th: &Thresholds) -> String {
    let total = t.live_tuples.saturating_add(t.dead_tuples);
    let dead = format!(
        "{} dead tuples ({} of {})",
        pct(a.dead_fraction),
        count(t.dead_tuples),
        count(total)
    );
    let dead = if a.decision == Decision::VacuumAnalyze {
        format!(
            "{dead}, threshold {} → VACUUM (ANALYZE)",
            pct(th.dead_ratio)
        )
    } else if a.dead_fraction >= th.dead_ratio && total > 0 {
        format!(
            "{dead}, over {} but fewer than {} dead tuples → no VACUUM",
            pct(th.dead_ratio),
            count(th.min_dead_tuples)
        )
    } else {
        format!("{dead}, below {}", pct(th.dead_ratio))
    };
    let changed = format!(
        "{} of rows changed since last analyze ({} of {} live)",
        pct(a.changed_fraction),
        count(t.mod_since_analyze),
        count(t.live_tuples)
    );
    let changed = match a.decision {
        Decision::VacuumAnalyze => changed,
        Decision::Analyze => format!("{changed}, threshold {} → ANALYZE", pct(th.changed_ratio)),
        Decision::Nothing if a.changed_fraction >= th.changed_ratio && t.mod_since_analyze > 0 => {
            format!(
                "{changed}, over {} but fewer than {} changed rows → no ANALYZE",
                pct(th.changed_ratio),
                count(th.min_changed_rows)
            )
        }
        Decision::Nothing => format!("{changed}, below {}", pct(th.changed_ratio)),
    };
    let mut parts = vec![dead, changed];
    if a.est_bloat_bytes > 0 {
        parts.push(format!(
            "est. {} reclaimable of {}",
            bytes(a.est_bloat_bytes),
            bytes(t.table_bytes)
        ));
    }
    parts.push(format!(
        "last vacuum {}, last autovacuum {}, last analyze {}, last autoanalyze {}",
        when(&t.last_vacuum),
        when(&t.last_autovacuum),
        when(&t.last_analyze),
        when(&t.last_autoanalyze)
    ));
    parts.join("; ")
}

/// A clean table in one line: `public.a (2% dead, 1% changed)`.
pub fn brief(t: &TableStats, a: &Assessment) -> String {
    format!(
        "{} ({} dead, {} changed)",
        t.display_name(),
        pct(a.dead_fraction),
        pct(a.changed_fraction)
    )
}

/// Joins at most `max` items, then `… and N more`.
pub fn list_some(items: &[String], max: usize) -> String {
    let shown: Vec<&str> = items.iter().take(max).map(String::as_str).collect();
    let mut text = shown.join(", ");
    if items.len() > max {
        text.push_str(&format!(", … and {} more", items.len() - max));
    }
    text
}

/// SQLite page statistics (`PRAGMA page_count`, `freelist_count`, `page_size`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageStats {
    pub page_count: u64,
    pub freelist_count: u64,
    pub page_size: u64,
}

/// What SQLite's freelist calls for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FreelistAssessment {
    pub vacuum: bool,
    /// `freelist_count / page_count`, 0 for an empty file.
    pub free_fraction: f64,
    /// Freelist pages × page size.
    pub reclaimable_bytes: u64,
}

/// Decides whether the SQLite file needs a VACUUM.
pub fn assess_freelist(s: &PageStats, th: &FreelistThresholds) -> FreelistAssessment {
    let free_fraction = if s.page_count == 0 {
        0.0
    } else {
        as_f64(s.freelist_count) / as_f64(s.page_count)
    };
    FreelistAssessment {
        vacuum: s.freelist_count >= th.min_freelist_pages && free_fraction >= th.freelist_ratio,
        free_fraction,
        reclaimable_bytes: s.freelist_count.saturating_mul(s.page_size),
    }
}

/// The evidence for the SQLite VACUUM decision.
pub fn explain_freelist(s: &PageStats, a: &FreelistAssessment, th: &FreelistThresholds) -> String {
    let free = format!(
        "{} of {} pages on the freelist ({})",
        count(s.freelist_count),
        count(s.page_count),
        pct(a.free_fraction)
    );
    let rule = format!(
        "threshold {} and at least {} pages",
        pct(th.freelist_ratio),
        count(th.min_freelist_pages)
    );
    let verdict = if a.vacuum { "VACUUM" } else { "no VACUUM" };
    format!(
        "{free}, {rule} → {verdict}; {} reclaimable (page size {} bytes, file {})",
        bytes(a.reclaimable_bytes),
        count(s.page_size),
        bytes(s.page_count.saturating_mul(s.page_size))
    )
}

/// How SQLite's planner statistics are refreshed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsStep {
    /// Never analyzed (no `sqlite_stat1`): a full `ANALYZE`.
    Analyze,
    /// Statistics exist: `PRAGMA optimize` re-analyzes what needs it.
    Optimize,
}

impl StatsStep {
    /// The statement.
    pub fn statement(self) -> &'static str {
        match self {
            StatsStep::Analyze => "ANALYZE",
            StatsStep::Optimize => "PRAGMA optimize",
        }
    }
}

/// `None` for a database without tables.
pub fn stats_step(user_tables: u64, has_stat1: bool) -> Option<StatsStep> {
    match (user_tables, has_stat1) {
        (0, _) => None,
        (_, false) => Some(StatsStep::Analyze),
        (_, true) => Some(StatsStep::Optimize),
    }
}

/// A table's maintenance counters in `pg_stat_user_tables` (manual runs only:
/// autovacuum has its own counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    pub vacuum_count: u64,
    pub analyze_count: u64,
}

/// Why `decision`'s statement, which ran, did not take effect (`None` when
/// its counter moved). `warnings` are the server's warnings for the call.
pub fn verify(
    decision: Decision,
    before: Counters,
    after: Counters,
    warnings: &[String],
) -> Option<String> {
    let (counter, b, a) = match decision {
        Decision::VacuumAnalyze => ("vacuum_count", before.vacuum_count, after.vacuum_count),
        Decision::Analyze => ("analyze_count", before.analyze_count, after.analyze_count),
        Decision::Nothing => return None,
    };
    if a > b {
        return None;
    }
    let moved = format!("{counter} did not move ({b} before, {a} after)");
    Some(if warnings.is_empty() {
        format!("{moved}: PostgreSQL did not record a {}", decision.verb())
    } else {
        format!("PostgreSQL said: {}; {moved}", warnings.join("; "))
    })
}

/// The fix for a table the agent's role may not maintain. `version_num` is
/// `server_version_num` when known; `owner` the table's owner when known.
pub fn ownership_fix(qualified: &str, owner: Option<&str>, version_num: Option<u64>) -> String {
    let owned = owner.map_or(String::new(), |o| format!(" (owned by `{o}`)"));
    let own = format!(
        "make the role in the target's URL the owner of {qualified}{owned}: `ALTER TABLE {qualified} OWNER TO <role>`"
    );
    match version_num {
        Some(v) if v >= 170_000 => format!(
            "grant the role in the target's URL the MAINTAIN privilege: `GRANT MAINTAIN ON {qualified} TO <role>` (or `GRANT pg_maintain TO <role>` for every table), or {own}"
        ),
        Some(_) => format!(
            "{own}, or run it as a superuser; PostgreSQL 17+ can instead `GRANT MAINTAIN ON {qualified} TO <role>` (or `pg_maintain`)"
        ),
        None => format!(
            "{own}; on PostgreSQL 17+ `GRANT MAINTAIN ON {qualified} TO <role>` (or `pg_maintain`) is enough"
        ),
    }
}

/// Why a SQLite `VACUUM` that ran did not take effect (`None` when the
/// freelist is empty afterwards, as a VACUUM leaves it).
pub fn verify_sqlite_vacuum(before: &PageStats, after: &PageStats) -> Option<String> {
    if after.freelist_count == 0 {
        None
    } else {
        Some(format!(
            "the freelist still holds {} pages (before: {})",
            count(after.freelist_count),
            count(before.freelist_count)
        ))
    }
}

/// `41,000` (the SDK's).
pub use warden_sdk::units::count;

/// A fraction as a percentage: `41%`, `2.5%`, `<0.1%`, `0%`.
pub fn pct(fraction: f64) -> String {
    let p = fraction * 100.0;
    let tenths = (p * 10.0).round() / 10.0;
    if p <= 0.0 {
        "0%".to_owned()
    } else if tenths == 0.0 {
        "<0.1%".to_owned()
    } else if tenths >= 10.0 || tenths.fract() == 0.0 {
        format!("{p:.0}%")
    } else {
        format!("{tenths:.1}%")
    }
}

/// Binary units with one decimal: `512 B`, `3.2 MiB` (the SDK's).
pub use warden_sdk::units::bytes;

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(vacuum_count: u64, analyze_count: u64) -> Counters {
        Counters {
            vacuum_count,
            analyze_count,
        }
    }

    #[test]
    fn a_statement_whose_counter_did_not_move_did_not_take_effect() {
        let skipped =
            vec!["skipping \"events\" --- only table or database owner can vacuum it".to_owned()];
        // VACUUM (ANALYZE): vacuum_count must move (analyze_count alone is not enough).
        let why = verify(
            Decision::VacuumAnalyze,
            counters(3, 1),
            counters(3, 2),
            &skipped,
        )
        .expect("not vacuumed");
        assert!(why.contains("only table or database owner"), "{why}");
        assert!(
            why.contains("vacuum_count did not move (3 before, 3 after)"),
            "{why}"
        );
        assert_eq!(
            verify(Decision::VacuumAnalyze, counters(3, 1), counters(4, 2), &[]),
            None
        );
        // ANALYZE: analyze_count must move.
        let why =
            verify(Decision::Analyze, counters(0, 5), counters(1, 5), &[]).expect("not analyzed");
        assert!(why.contains("analyze_count did not move"), "{why}");
        assert!(why.contains("did not record a ANALYZE"), "{why}");
        assert_eq!(
            verify(Decision::Analyze, counters(0, 5), counters(0, 6), &[]),
            None
        );
        assert_eq!(
            verify(Decision::Nothing, counters(0, 0), counters(0, 0), &[]),
            None
        );
    }

    #[test]
    fn the_ownership_fix_depends_on_the_server_version() {
        let t = "\"public\".\"events\"";
        let v15 = ownership_fix(t, Some("app"), Some(150_004));
        assert!(v15.starts_with("make the role"), "{v15}");
        assert!(v15.contains("owned by `app`"), "{v15}");
        assert!(
            v15.contains("ALTER TABLE \"public\".\"events\" OWNER TO"),
            "{v15}"
        );
        let v17 = ownership_fix(t, None, Some(170_000));
        assert!(v17.starts_with("grant the role"), "{v17}");
        assert!(
            v17.contains("GRANT MAINTAIN ON \"public\".\"events\""),
            "{v17}"
        );
        assert!(v17.contains("pg_maintain"), "{v17}");
        assert!(ownership_fix(t, None, None).contains("PostgreSQL 17+"));
    }

    #[test]
    fn a_sqlite_vacuum_leaves_no_free_page() {
        let stats = |page_count, freelist_count| PageStats {
            page_count,
            freelist_count,
            page_size: 4096,
        };
        assert_eq!(verify_sqlite_vacuum(&stats(100, 40), &stats(60, 0)), None);
        let why = verify_sqlite_vacuum(&stats(100, 40), &stats(100, 40)).expect("not vacuumed");
        assert!(why.contains("still holds 40 pages"), "{why}");
    }

    const TH: Thresholds = Thresholds {
        dead_ratio: 0.2,
        changed_ratio: 0.1,
        min_dead_tuples: 50,
        min_changed_rows: 50,
    };

    fn table(name: &str, live: u64, dead: u64, changed: u64, bytes: u64) -> TableStats {
        TableStats {
            schema: "public".into(),
            name: name.into(),
            live_tuples: live,
            dead_tuples: dead,
            mod_since_analyze: changed,
            table_bytes: bytes,
            ..TableStats::default()
        }
    }

    #[test]
    fn vacuum_when_dead_ratio_and_minimum_are_met() {
        let t = table("orders", 59_000, 41_000, 0, 8 << 20);
        let a = assess(&t, &TH);
        assert_eq!(a.decision, Decision::VacuumAnalyze);
        assert!((a.dead_fraction - 0.41).abs() < 1e-9);
        assert_eq!(a.est_bloat_bytes, 3_439_329); // 8 MiB × 0.41, rounded
        // Exactly at the threshold counts.
        let t = table("edge", 80, 20, 0, 0);
        assert_eq!(assess(&t, &TH).decision, Decision::Nothing); // 20 < 50 dead
        let t = table("edge", 800, 200, 0, 0);
        assert_eq!(assess(&t, &TH).decision, Decision::VacuumAnalyze);
    }

    #[test]
    fn tiny_tables_are_ignored() {
        // 50% dead but only 10 dead tuples; 100% changed but only 20 rows.
        let t = table("tiny", 10, 10, 20, 8192);
        assert_eq!(assess(&t, &TH).decision, Decision::Nothing);
    }

    #[test]
    fn analyze_when_only_changed_ratio_is_met() {
        let t = table("items", 100_000, 100, 12_000, 0);
        let a = assess(&t, &TH);
        assert_eq!(a.decision, Decision::Analyze);
        assert!((a.changed_fraction - 0.12).abs() < 1e-9);
        // VACUUM (ANALYZE) wins when both are met.
        let t = table("both", 1000, 1000, 1000, 0);
        assert_eq!(assess(&t, &TH).decision, Decision::VacuumAnalyze);
    }

    #[test]
    fn empty_and_never_analyzed_tables() {
        let t = table("empty", 0, 0, 0, 0);
        let a = assess(&t, &TH);
        assert_eq!(a.decision, Decision::Nothing);
        assert_eq!(a.dead_fraction, 0.0);
        // Rows inserted into a table whose live count is still 0: max(live, 1).
        let t = table("fresh", 0, 0, 500, 0);
        assert_eq!(assess(&t, &TH).decision, Decision::Analyze);
    }

    #[test]
    fn plan_ranks_worst_first_and_caps() {
        let tables = vec![
            table("clean", 1000, 0, 0, 1 << 20),
            table("analyze_small", 1000, 0, 150, 0),
            table("vacuum_small", 1000, 500, 0, 1 << 20),
            table("analyze_big", 1000, 0, 900, 0),
            table("vacuum_big", 1000, 1000, 0, 100 << 20),
        ];
        let assessments: Vec<_> = tables.iter().map(|t| assess(t, &TH)).collect();
        let names =
            |idx: &[usize]| -> Vec<&str> { idx.iter().map(|&i| tables[i].name.as_str()).collect() };
        let p = plan(&tables, &assessments, 0);
        assert_eq!(
            names(&p.act),
            ["vacuum_big", "vacuum_small", "analyze_big", "analyze_small"]
        );
        assert!(p.deferred.is_empty());
        assert_eq!(names(&p.clean), ["clean"]);
        let p = plan(&tables, &assessments, 3);
        assert_eq!(names(&p.act), ["vacuum_big", "vacuum_small", "analyze_big"]);
        assert_eq!(names(&p.deferred), ["analyze_small"]);
    }

    #[test]
    fn statements_and_explanations() {
        assert_eq!(
            Decision::VacuumAnalyze
                .statement("\"public\".\"orders\"")
                .as_deref(),
            Some("VACUUM (ANALYZE) \"public\".\"orders\"")
        );
        assert_eq!(
            Decision::Analyze.statement("x").as_deref(),
            Some("ANALYZE x")
        );
        assert_eq!(Decision::Nothing.statement("x"), None);

        let mut t = table("orders", 59_000, 41_000, 3_000, 8 << 20);
        t.last_autovacuum = Some("2026-11-20 03:12:44+00".into());
        let text = explain(&t, &assess(&t, &TH), &TH);
        assert!(
            text.starts_with(
                "41% dead tuples (41,000 of 100,000), threshold 20% → VACUUM (ANALYZE); "
            ),
            "{text}"
        );
        assert!(
            text.contains("est. 3.3 MiB reclaimable of 8.0 MiB"),
            "{text}"
        );
        assert!(
            text.contains("last vacuum never, last autovacuum 2026-11-20 03:12:44+00"),
            "{text}"
        );

        let t = table("items", 100_000, 100, 12_000, 0);
        let text = explain(&t, &assess(&t, &TH), &TH);
        assert!(text.contains("12% of rows changed since last analyze (12,000 of 100,000 live), threshold 10% → ANALYZE"), "{text}");
        assert!(
            text.contains("0.1% dead tuples (100 of 100,100), below 20%"),
            "{text}"
        );

        let t = table("tiny", 10, 10, 0, 0);
        let text = explain(&t, &assess(&t, &TH), &TH);
        assert!(
            text.contains("over 20% but fewer than 50 dead tuples → no VACUUM"),
            "{text}"
        );
    }

    #[test]
    fn parameters() {
        assert_eq!(validate_ratio("dead_ratio", 0.2), Ok(0.2));
        assert!(
            validate_ratio("dead_ratio", 1.5)
                .unwrap_err()
                .contains("`dead_ratio`")
        );
        assert!(validate_ratio("x", -0.1).is_err());
        assert_eq!(table_list(None), None);
        assert_eq!(table_list(Some(" , ")), None);
        assert_eq!(
            table_list(Some("orders, public.items,,")),
            Some(vec!["orders".to_owned(), "public.items".to_owned()])
        );
        assert!(entry_matches("orders", "public", "orders"));
        assert!(entry_matches("public.orders", "public", "orders"));
        assert!(!entry_matches("audit.orders", "public", "orders"));
        assert!(!entry_matches("order", "public", "orders"));
    }

    #[test]
    fn sqlite_freelist() {
        let th = FreelistThresholds {
            freelist_ratio: 0.2,
            min_freelist_pages: 16,
        };
        let s = PageStats {
            page_count: 1000,
            freelist_count: 250,
            page_size: 4096,
        };
        let a = assess_freelist(&s, &th);
        assert!(a.vacuum);
        assert_eq!(a.reclaimable_bytes, 1_024_000);
        assert_eq!(
            explain_freelist(&s, &a, &th),
            "250 of 1,000 pages on the freelist (25%), threshold 20% and at least 16 pages \
             → VACUUM; 1000.0 KiB reclaimable (page size 4,096 bytes, file 3.9 MiB)"
        );
        // Ratio met but too few pages; many pages but ratio not met; empty file.
        let small = PageStats {
            page_count: 20,
            freelist_count: 10,
            page_size: 4096,
        };
        assert!(!assess_freelist(&small, &th).vacuum);
        let big = PageStats {
            page_count: 100_000,
            freelist_count: 1000,
            page_size: 4096,
        };
        assert!(!assess_freelist(&big, &th).vacuum);
        assert!(!assess_freelist(&PageStats::default(), &th).vacuum);

        assert_eq!(stats_step(0, false), None);
        assert_eq!(stats_step(3, false), Some(StatsStep::Analyze));
        assert_eq!(stats_step(3, true), Some(StatsStep::Optimize));
    }

    #[test]
    fn formatting() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(41_000), "41,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(pct(0.0), "0%");
        assert_eq!(pct(0.41), "41%");
        assert_eq!(pct(0.2), "20%");
        assert_eq!(pct(0.025), "2.5%");
        assert_eq!(pct(0.05), "5%");
        assert_eq!(pct(0.0999), "10%");
        assert_eq!(pct(0.000_01), "<0.1%");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3_355_443), "3.2 MiB");
        assert_eq!(bytes(1 << 30), "1.0 GiB");
        assert_eq!(
            list_some(&["a".into(), "b".into(), "c".into()], 2),
            "a, b, … and 1 more"
        );
    }
}
