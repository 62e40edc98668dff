//! PostgreSQL index suggestions from the workload: the glue between the
//! server and the pure [`crate::candidates`] and [`crate::selection`].
//!
//! 1. The workload: this database's reads in `pg_stat_statements`, by total
//!    time (`max_statements`, at least `min_calls` calls, not run by one of
//!    `exclude_roles`: run the agent as its own role and list it). A normalized
//!    text that does not parse or plan is replaced by
//!    `pg_qualstats_example_query(queryid)` when `pg_qualstats` is
//!    installed; otherwise it is skipped, and the report says why. The
//!    agent's own statements (catalog reads, the what-if `PREPARE`) name no
//!    user table and drop out on their own.
//! 2. Candidates per statement from its WHERE / JOIN / ORDER BY / GROUP BY
//!    columns ([`crate::candidates`]), with tables resolved to
//!    `schema.table` as the search path does and columns checked against
//!    the catalog; those an existing valid btree index already leads with
//!    are set aside.
//! 3. What-if costs (`warden:plugin/planner`, HypoPG on the run's session,
//!    in batches: one call plans many statements with one hypothetical
//!    index set): every statement's generic plan as it is; then each
//!    candidate alone with the statements that gave it (a candidate that
//!    helps none of them by `min_improvement_pct` is dropped); then, per
//!    table, the remaining candidates together with every statement that
//!    uses one's leading column: the one the planner picks (and any
//!    candidate extending its key) gets that plan's cost for the statement.
//!    Where a candidate's cost for a statement is still unknown (the
//!    planner preferred another), it takes the best known cost of a
//!    candidate its key extends (a longer btree key serves the shorter
//!    one's lookups); otherwise it counts as no help.
//! 4. [`crate::selection::select`] weighs benefit × calls against the write
//!    overhead (the table's inserts + updates + deletes, brought to
//!    `pg_stat_statements`' window) and redundancy.
//! 5. The chosen set is planned together once more for each statement it
//!    helps: the before/after costs reported are those of the whole set.
//!
//! Each suggestion is a warning finding with its `CREATE INDEX
//! CONCURRENTLY` statement. With `apply=true` (a `ddl` grant) they are
//! created one at a time under the grant's `lock_timeout`; a failure stops
//! the rest, and an invalid index a failed build left behind is dropped.
//! In dry-run the host plans the statements and creates nothing.

use std::collections::{BTreeMap, BTreeSet};

use warden_sdk::planner::{Estimate, IndexSpec, explain_generic_batch};
use warden_sdk::{Context, Error, Finding, Report, ResultExt, Row, Value, units};

use crate::analysis::{IndexInfo, count, quote_ident};

/// Most hypothetical indexes the host takes in one call.
const MAX_HYPOTHETICAL: usize = 64;
use crate::candidates::{self, Existing, TableUsage, Usage};
use crate::selection::{self, Model, Selection, Workload};

/// The knobs of the workload analysis (parameters).
#[derive(Clone, Debug)]
pub struct Options {
    pub max_statements: u64,
    pub min_calls: u64,
    /// Statements run by these roles are not workload (the agent's own
    /// role, reporting jobs).
    pub exclude_roles: Vec<String>,
    pub model: Model,
    pub apply: bool,
}

/// A user table as the catalog describes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    pub schema: String,
    pub name: String,
    pub columns: BTreeSet<String>,
    /// Inserts + updates + deletes since the statistics were reset.
    pub writes: f64,
    /// Position of the schema in `current_schemas(false)`, when it is there.
    pub search_position: Option<i64>,
}

/// The user tables, by `schema.table`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Catalog {
    pub tables: BTreeMap<String, Table>,
}

impl Catalog {
    /// The `schema.table` a name as written in a statement refers to: a
    /// qualified name as is, a bare one through the search path.
    pub fn resolve(&self, written: &str) -> Option<&str> {
        if written.contains('.') {
            return self.tables.get_key_value(written).map(|(k, _)| k.as_str());
        }
        self.tables
            .iter()
            .filter(|(_, t)| t.name == written)
            .filter_map(|(k, t)| t.search_position.map(|p| (p, k)))
            .min()
            .map(|(_, k)| k.as_str())
    }

    /// `usage` with its tables resolved and its columns checked: relations
    /// that are not user tables (catalogs, views, CTE names) are dropped,
    /// and so are columns the table does not have.
    pub fn qualify(&self, usage: &Usage) -> Usage {
        let mut out = Usage {
            tables: BTreeMap::new(),
            notes: usage.notes.clone(),
        };
        for (written, used) in &usage.tables {
            let Some(qualified) = self.resolve(written) else {
                continue;
            };
            let columns = &self.tables[qualified].columns;
            let keep = |list: &[String]| -> Vec<String> {
                list.iter()
                    .filter(|c| columns.contains(*c))
                    .cloned()
                    .collect()
            };
            let entry = out.tables.entry(qualified.to_owned()).or_default();
            merge(&mut entry.equality, keep(&used.equality));
            merge(&mut entry.range, keep(&used.range));
            merge(&mut entry.join, keep(&used.join));
            merge(&mut entry.order_by, keep(&used.order_by));
            merge(&mut entry.group_by, keep(&used.group_by));
        }
        out.tables.retain(|_, used| !all_columns(used).is_empty());
        out
    }
}

fn merge(into: &mut Vec<String>, from: Vec<String>) {
    for column in from {
        if !into.contains(&column) {
            into.push(column);
        }
    }
}

/// Every column a statement uses on one table.
pub fn all_columns(used: &TableUsage) -> BTreeSet<&str> {
    used.equality
        .iter()
        .chain(&used.range)
        .chain(&used.join)
        .chain(&used.order_by)
        .chain(&used.group_by)
        .map(String::as_str)
        .collect()
}

/// A key column as `pg_get_indexdef` prints it, unquoted; `None` for an
/// expression.
pub fn plain_column(expr: &str) -> Option<String> {
    if let Some(inner) = expr.strip_prefix('"').and_then(|e| e.strip_suffix('"')) {
        return Some(inner.replace("\"\"", "\""));
    }
    let simple = !expr.is_empty()
        && expr
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && !expr.starts_with(|c: char| c.is_ascii_digit());
    simple.then(|| expr.to_owned())
}

/// What existing indexes cover, for [`candidates::candidates`]: the plain
/// key columns of every valid, non-partial btree index, by `schema.table`.
/// An index with an expression key covers up to its first expression.
pub fn existing(indexes: &[IndexInfo]) -> Existing {
    let mut out = Existing::new();
    for ix in indexes {
        if ix.method != "btree" || !ix.valid || ix.predicate.is_some() {
            continue;
        }
        let columns: Vec<String> = ix
            .keys
            .iter()
            .map_while(|k| plain_column(&k.expr))
            .collect();
        if !columns.is_empty() {
            out.entry(format!("{}.{}", ix.schema, ix.table))
                .or_default()
                .push(columns);
        }
    }
    out
}

/// A name for a new index on `table` (`schema.table`) over `columns`:
/// `<table>_<columns>_idx`, cut to PostgreSQL's 63 bytes, with a number
/// added when `taken` already has it.
pub fn index_name(table: &str, columns: &[String], taken: &BTreeSet<String>) -> String {
    let bare = table.rsplit_once('.').map_or(table, |(_, t)| t);
    let base = format!("{bare}_{}_idx", columns.join("_"));
    let mut n = 0u32;
    loop {
        let suffix = if n == 0 { String::new() } else { n.to_string() };
        let mut name = cut(&base, 63 - suffix.len());
        name.push_str(&suffix);
        if !taken.contains(&name) {
            return name;
        }
        n += 1;
    }
}

fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// `CREATE INDEX CONCURRENTLY "name" ON "schema"."table" ("a", "b")`.
pub fn create_statement(table: &str, columns: &[String], name: &str) -> String {
    let (schema, bare) = table.split_once('.').unwrap_or(("public", table));
    let keys: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    format!(
        "CREATE INDEX CONCURRENTLY {} ON {}.{} ({})",
        quote_ident(name),
        quote_ident(schema),
        quote_ident(bare),
        keys.join(", ")
    )
}

/// A statement for a report line: whitespace collapsed, at most 160
/// characters.
pub fn short(statement: &str) -> String {
    let flat = statement.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= 160 {
        flat
    } else {
        let mut s: String = flat.chars().take(157).collect();
        s.push('…');
        s
    }
}

/// `pg_stat_statements`' window over the table statistics' window: the
/// factor that brings a table's writes to the window the calls count in.
/// 1 when either is unknown.
pub fn window_ratio(statements_age: Option<f64>, tables_age: u64) -> f64 {
    match statements_age {
        Some(s) if s > 0.0 && tables_age > 0 => s / tables_age as f64,
        _ => 1.0,
    }
}

// --- the glue ---------------------------------------------------------------

/// The extensions the workload analysis uses: name → schema.
const EXTENSIONS: &str = "SELECT e.extname::text AS name, n.nspname::text AS schema_name \
     FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace \
     WHERE e.extname IN ('pg_stat_statements', 'hypopg', 'pg_qualstats')";

/// User tables (and materialized views) with their columns, writes and
/// place in the search path.
const TABLES: &str = "SELECT n.nspname::text AS schema_name, c.relname::text AS table_name, \
     (SELECT string_agg(a.attname::text, chr(30)) FROM pg_attribute a \
      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns, \
     coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0)::bigint AS writes, \
     array_position(current_schemas(false), n.nspname::text)::bigint AS search_position \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid \
     WHERE c.relkind IN ('r', 'p', 'm') \
     AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND left(n.nspname, 8) NOT IN ('pg_toast', 'pg_temp_')";

struct Extensions {
    statements: Option<String>,
    hypopg: bool,
    qualstats: Option<String>,
}

fn extensions(ctx: &Context) -> Result<Extensions, Error> {
    let rows = ctx
        .sql()
        .query(EXTENSIONS, &[])
        .context("reading pg_extension")?;
    let mut out = Extensions {
        statements: None,
        hypopg: false,
        qualstats: None,
    };
    for row in rows.iter() {
        let schema = row.get_str("schema_name")?;
        match row.get_str("name")?.as_str() {
            "pg_stat_statements" => out.statements = Some(schema),
            "hypopg" => out.hypopg = true,
            "pg_qualstats" => out.qualstats = Some(schema),
            _ => {}
        }
    }
    Ok(out)
}

fn catalog(ctx: &Context) -> Result<Catalog, Error> {
    let rows = ctx.sql().query(TABLES, &[]).context("reading pg_class")?;
    let mut catalog = Catalog::default();
    for row in rows.iter() {
        let table = table_from_row(&row).context("reading pg_class")?;
        catalog
            .tables
            .insert(format!("{}.{}", table.schema, table.name), table);
    }
    Ok(catalog)
}

fn table_from_row(row: &Row<'_>) -> Result<Table, Error> {
    Ok(Table {
        schema: row.get_str("schema_name")?,
        name: row.get_str("table_name")?,
        columns: row
            .get_opt_str("columns")?
            .unwrap_or_default()
            .split('\u{1e}')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
        writes: row.get_opt_i64("writes")?.unwrap_or(0).max(0) as f64,
        search_position: row.get_opt_i64("search_position")?,
    })
}

/// One statement of `pg_stat_statements`.
struct Observed {
    queryid: String,
    text: String,
    calls: f64,
    total_ms: f64,
}

fn observed(
    ctx: &Context,
    schema: &str,
    options: &Options,
) -> Result<(Vec<Observed>, bool), Error> {
    let view = format!("{}.pg_stat_statements", quote_ident(schema));
    let sql = format!(
        "SELECT s.queryid::text AS queryid, s.query AS query, s.calls AS calls, \
         s.total_exec_time AS total_ms FROM {view} s \
         JOIN pg_database d ON d.oid = s.dbid \
         WHERE d.datname = current_database() AND s.calls >= $1 \
         AND s.query ~* '^[[:space:](]*(select|with)[[:space:]]' \
         AND s.userid NOT IN (SELECT r.oid FROM pg_roles r \
             WHERE r.rolname = ANY (string_to_array($3, ','))) \
         ORDER BY s.total_exec_time DESC LIMIT $2"
    );
    let rows = ctx
        .sql()
        .query(
            &sql,
            &[
                Value::Integer(i64::try_from(options.min_calls).unwrap_or(i64::MAX)),
                Value::Integer(i64::try_from(options.max_statements).unwrap_or(i64::MAX)),
                Value::Text(options.exclude_roles.join(",")),
            ],
        )
        .context("reading pg_stat_statements")?;
    let mut out = Vec::new();
    for row in rows.iter() {
        out.push(Observed {
            queryid: row.get_opt_str("queryid")?.unwrap_or_default(),
            text: row.get_str("query")?,
            calls: row.get_opt_i64("calls")?.unwrap_or(0).max(0) as f64,
            total_ms: row.get_opt_f64("total_ms")?.unwrap_or(0.0),
        });
    }
    Ok((out, rows.truncated()))
}

/// Seconds since `pg_stat_statements` was last reset (or loaded).
fn statements_age(ctx: &Context, schema: &str) -> Option<f64> {
    let sql = format!(
        "SELECT extract(epoch FROM now() - stats_reset)::float8 AS age FROM {}.pg_stat_statements_info",
        quote_ident(schema)
    );
    let rows = ctx.sql().query(&sql, &[]).ok()?;
    let row = rows.iter().next()?;
    row.get_opt_f64("age").ok().flatten()
}

fn example_query(ctx: &Context, schema: &str, queryid: &str) -> Option<String> {
    if queryid.is_empty() {
        return None;
    }
    let sql = format!(
        "SELECT {}.pg_qualstats_example_query($1::bigint) AS example",
        quote_ident(schema)
    );
    let rows = ctx
        .sql()
        .query(&sql, &[Value::Text(queryid.to_owned())])
        .ok()?;
    let row = rows.iter().next()?;
    row.get_opt_str("example").ok().flatten()
}

/// A statement of the workload, ready to plan.
struct Planned {
    /// As `pg_stat_statements` has it (for the report).
    display: String,
    /// What is planned: the normalized text, or `pg_qualstats`' example.
    text: String,
    usage: Usage,
    /// Execution time over the window, in milliseconds.
    total_ms: f64,
}

/// Why a statement of the workload was not analysed.
struct Skipped {
    statement: String,
    reason: String,
}

/// Plans `texts` with `hypothetical` in place, in batches: one result per
/// text.
fn plan_batch(
    ctx: &Context,
    texts: &[String],
    hypothetical: &[IndexSpec],
) -> Result<Vec<Result<Estimate, Error>>, Error> {
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(BATCH) {
        out.extend(explain_generic_batch(
            ctx.target(),
            chunk,
            hypothetical,
            false,
        )?);
    }
    Ok(out)
}

/// What [`prepare`] gives: (index into the observed statements, the
/// statement, its baseline cost), and the skipped statements.
type Prepared = (Vec<(usize, Planned, f64)>, Vec<Skipped>);

/// Statements per planner call.
const BATCH: usize = 1000;

/// Parses and plans the observed statements (falling back to
/// `pg_qualstats`' example for those whose normalized text fails): each
/// planned one with its baseline cost, and the skipped ones with the
/// reasons. A statement naming no user table (the agent's catalog reads)
/// is neither.
fn prepare(
    ctx: &Context,
    catalog: &Catalog,
    qualstats: Option<&str>,
    observed: &[Observed],
) -> Result<Prepared, Error> {
    let parse = |text: &str| -> Result<Option<Usage>, String> {
        let usage = catalog.qualify(&candidates::extract(text)?);
        Ok((!usage.tables.is_empty()).then_some(usage))
    };
    // First the normalized texts.
    let mut failed: Vec<(usize, String)> = Vec::new();
    let mut ready: Vec<(usize, String, Usage)> = Vec::new();
    for (i, obs) in observed.iter().enumerate() {
        match parse(&obs.text) {
            Ok(Some(usage)) => ready.push((i, obs.text.clone(), usage)),
            Ok(None) => {}
            Err(reason) => failed.push((i, reason)),
        }
    }
    let mut planned = Vec::new();
    let texts: Vec<String> = ready.iter().map(|(_, t, _)| t.clone()).collect();
    for ((i, text, usage), estimate) in ready.into_iter().zip(plan_batch(ctx, &texts, &[])?) {
        match estimate {
            Ok(e) => planned.push((i, text, usage, e.total_cost)),
            Err(e) => failed.push((i, format!("does not plan: {}", e.message()))),
        }
    }
    // Then pg_qualstats' examples for those that failed.
    let mut skipped = Vec::new();
    let mut retry: Vec<(usize, String, String, Usage)> = Vec::new();
    for (i, reason) in failed {
        let obs = &observed[i];
        let skip = |reason: String| Skipped {
            statement: obs.text.clone(),
            reason,
        };
        let Some(schema) = qualstats else {
            skipped.push(skip(format!(
                "{reason} (pg_qualstats is not installed: no example query to plan instead)"
            )));
            continue;
        };
        let Some(example) = example_query(ctx, schema, &obs.queryid) else {
            skipped.push(skip(format!(
                "{reason} (pg_qualstats has no example query for it)"
            )));
            continue;
        };
        match parse(&example) {
            Ok(Some(usage)) => retry.push((i, reason, example, usage)),
            Ok(None) => {}
            Err(again) => skipped.push(skip(format!(
                "{reason}; its pg_qualstats example `{}` was no help: {again}",
                short(&example)
            ))),
        }
    }
    let texts: Vec<String> = retry.iter().map(|(_, _, t, _)| t.clone()).collect();
    for ((i, reason, example, usage), estimate) in
        retry.into_iter().zip(plan_batch(ctx, &texts, &[])?)
    {
        match estimate {
            Ok(e) => planned.push((i, example, usage, e.total_cost)),
            Err(e) => skipped.push(Skipped {
                statement: observed[i].text.clone(),
                reason: format!(
                    "{reason}; its pg_qualstats example `{}` was no help: does not plan: {}",
                    short(&example),
                    e.message()
                ),
            }),
        }
    }
    planned.sort_by_key(|(i, ..)| *i);
    let planned = planned
        .into_iter()
        .map(|(i, text, usage, cost)| {
            let obs = &observed[i];
            (
                i,
                Planned {
                    display: obs.text.clone(),
                    text,
                    usage,
                    total_ms: obs.total_ms,
                },
                cost,
            )
        })
        .collect();
    Ok((planned, skipped))
}

/// Counts for the report's metrics.
#[derive(Debug, Default)]
pub struct Tally {
    pub statements: u64,
    pub skipped: u64,
    pub candidates: u64,
    pub covered: u64,
    pub whatif_calls: u64,
    /// Candidates dropped after the first round (no help to the
    /// statements that gave them).
    pub pruned: u64,
    pub suggested: u64,
    pub created: u64,
}

/// Runs the workload analysis and adds its findings to `report`.
pub fn advise(
    ctx: &Context,
    options: &Options,
    indexes: &[IndexInfo],
    tables_age: u64,
    report: &mut Report,
) -> Result<Tally, Error> {
    let mut tally = Tally::default();
    let ext = extensions(ctx)?;
    let Some(pss) = ext.statements.clone() else {
        report.add_finding(
            Finding::info(
                "no workload statistics",
                "pg_stat_statements is not installed in this database: no index suggestions, only the existing-index checks",
            )
            .suggest("add pg_stat_statements to shared_preload_libraries and run CREATE EXTENSION pg_stat_statements"),
        );
        return Ok(tally);
    };
    if !ext.hypopg {
        report.add_finding(
            Finding::info(
                "no what-if planner",
                "hypopg is not installed in this database: index suggestions need hypothetical indexes to cost",
            )
            .suggest("install HypoPG (e.g. postgresql-15-hypopg) and run CREATE EXTENSION hypopg"),
        );
        return Ok(tally);
    }
    let catalog = catalog(ctx)?;
    let existing = existing(indexes);
    let (observed, truncated) = observed(ctx, &pss, options)?;
    if truncated {
        report.add_finding(Finding::info(
            "workload truncated",
            format!(
                "the host returned only {} statements (the grant's row limit); the rest were not analysed",
                count(observed.len() as u64)
            ),
        ));
    }

    // Statements, their usage and baseline costs.
    let mut workload = Workload::default();
    let (prepared, skipped) = prepare(ctx, &catalog, ext.qualstats.as_deref(), &observed)?;
    tally.whatif_calls += (prepared.len() + skipped.len()) as u64;
    let mut planned: Vec<Planned> = Vec::with_capacity(prepared.len());
    for (i, p, cost) in prepared {
        workload.statements.push(selection::Statement {
            id: observed[i].queryid.clone(),
            calls: observed[i].calls,
            baseline_cost: cost,
        });
        planned.push(p);
    }
    tally.statements = planned.len() as u64;
    tally.skipped = skipped.len() as u64;
    if !skipped.is_empty() {
        let lines: Vec<String> = skipped
            .iter()
            .take(10)
            .map(|s| format!("`{}`: {}", short(&s.statement), s.reason))
            .collect();
        let more = skipped.len().saturating_sub(10);
        report.add_finding(Finding::info(
            format!("{} statements not analysed", skipped.len()),
            format!(
                "{}{}",
                lines.join("; "),
                if more > 0 {
                    format!("; and {more} more")
                } else {
                    String::new()
                }
            ),
        ));
    }

    // Candidates, deduplicated across statements, with the statements
    // that gave each.
    let mut keys: Vec<(String, Vec<String>)> = Vec::new();
    let mut origins: Vec<BTreeSet<usize>> = Vec::new();
    let mut key_index: BTreeMap<(String, Vec<String>), usize> = BTreeMap::new();
    let mut covered = BTreeSet::new();
    for (s, p) in planned.iter().enumerate() {
        let found = candidates::candidates(&p.usage, &existing);
        for c in found.candidates {
            let key = (c.table, c.columns);
            let k = *key_index.entry(key.clone()).or_insert_with(|| {
                keys.push(key);
                origins.push(BTreeSet::new());
                keys.len() - 1
            });
            origins[k].insert(s);
        }
        for c in found.covered {
            covered.insert((c.candidate.table, c.candidate.columns));
        }
    }
    tally.covered = covered.len() as u64;
    tally.candidates = keys.len() as u64;

    // What-if costs, in two rounds. First each candidate alone with the
    // statements that gave it (exact costs); one that helps none of them by
    // `min_improvement_pct` is dropped. Then, per table, the remaining
    // candidates together (up to 64 at a time) with every statement that
    // uses a leading column of one of them: the planner picks the best, and
    // a candidate whose key extends the one picked (same leading columns)
    // is taken to serve that statement at the same cost.
    let min_gain = options.model.min_improvement_pct / 100.0;
    let mut candidates: Vec<selection::Candidate> = keys
        .iter()
        .map(|(table, columns)| selection::Candidate {
            table: table.clone(),
            columns: columns.clone(),
            size_bytes: 0,
            costs: vec![None; planned.len()],
        })
        .collect();
    let mut alive = vec![true; keys.len()];
    let mut stopped = false;
    for (k, (table, columns)) in keys.iter().enumerate() {
        let statements: Vec<usize> = origins[k].iter().copied().collect();
        if deadline_near(ctx) {
            report.add_finding(deadline_finding("costing candidates"));
            stopped = true;
            break;
        }
        let spec = IndexSpec {
            table: table.clone(),
            columns: columns.clone(),
        };
        let texts: Vec<String> = statements
            .iter()
            .map(|s| planned[*s].text.clone())
            .collect();
        tally.whatif_calls += texts.len() as u64;
        let estimates = plan_batch(ctx, &texts, std::slice::from_ref(&spec))
            .context(format!("what-if plans with {}", candidates[k].label()))?;
        for (s, estimate) in statements.iter().zip(estimates) {
            // A statement that planned alone plans with one more index; if
            // not, it counts as not helped.
            if let Ok(e) = estimate {
                if let Some(h) = e.hypothetical.first() {
                    candidates[k].size_bytes = h.size_bytes;
                }
                candidates[k].costs[*s] = Some(e.total_cost);
            }
        }
        alive[k] = statements.iter().any(|s| {
            let before = workload.statements[*s].baseline_cost;
            candidates[k].costs[*s].is_some_and(|after| before - after >= min_gain * before)
        });
    }
    let tables: BTreeSet<&String> = keys.iter().map(|(t, _)| t).collect();
    for table in tables {
        if stopped {
            break;
        }
        let on_table: Vec<usize> = (0..keys.len())
            .filter(|k| alive[*k] && keys[*k].0 == *table)
            .collect();
        for group in on_table.chunks(MAX_HYPOTHETICAL) {
            let statements: Vec<usize> = (0..planned.len())
                .filter(|s| {
                    planned[*s].usage.tables.get(table).is_some_and(|u| {
                        let used = all_columns(u);
                        group.iter().any(|k| used.contains(keys[*k].1[0].as_str()))
                    })
                })
                .collect();
            if statements.is_empty() {
                continue;
            }
            if deadline_near(ctx) {
                report.add_finding(deadline_finding("costing candidates"));
                stopped = true;
                break;
            }
            let specs: Vec<IndexSpec> = group
                .iter()
                .map(|k| IndexSpec {
                    table: keys[*k].0.clone(),
                    columns: keys[*k].1.clone(),
                })
                .collect();
            let texts: Vec<String> = statements
                .iter()
                .map(|s| planned[*s].text.clone())
                .collect();
            tally.whatif_calls += texts.len() as u64;
            let estimates =
                plan_batch(ctx, &texts, &specs).context(format!("what-if plans on {table}"))?;
            for (s, estimate) in statements.iter().zip(estimates) {
                let Ok(e) = estimate else { continue };
                let picked: Vec<usize> = e
                    .hypothetical
                    .iter()
                    .zip(group)
                    .filter(|(h, _)| e.indexes_used.contains(&h.name))
                    .map(|(_, k)| *k)
                    .collect();
                for &k in group {
                    let serves = picked.iter().any(|&p| keys[k].1.starts_with(&keys[p].1));
                    if serves {
                        let cost =
                            candidates[k].costs[*s].map_or(e.total_cost, |c| c.min(e.total_cost));
                        candidates[k].costs[*s] = Some(cost);
                    }
                }
            }
        }
    }
    inherit_prefix_costs(&keys, &mut candidates);
    tally.pruned = alive.iter().filter(|a| !**a).count() as u64;
    workload.candidates = candidates;

    // Write overhead, over pg_stat_statements' window.
    let ratio = window_ratio(statements_age(ctx, &pss), tables_age);
    for (name, table) in &catalog.tables {
        if table.writes > 0.0 {
            workload
                .write_rates
                .insert(name.clone(), table.writes * ratio);
        }
    }

    let chosen = selection::select(&workload, &options.model);
    report_selection(
        ctx, options, &workload, &planned, &chosen, indexes, report, &mut tally,
    )?;
    Ok(tally)
}

/// A btree whose key extends another's (same table, same leading columns)
/// serves every lookup the shorter one serves: where a candidate's cost for
/// a statement is unknown (the planner preferred another), it takes the
/// best known cost of a candidate its key extends. Shorter keys first, so
/// `(a)` → `(a, b)` → `(a, b, c)` carries through. The longer index's
/// larger size still counts in its write overhead, so a tie goes to the
/// shorter one.
pub fn inherit_prefix_costs(
    keys: &[(String, Vec<String>)],
    candidates: &mut [selection::Candidate],
) {
    let index: BTreeMap<(&str, &[String]), usize> = keys
        .iter()
        .enumerate()
        .map(|(k, (table, columns))| ((table.as_str(), columns.as_slice()), k))
        .collect();
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|k| keys[*k].1.len());
    for &k in &order {
        let (table, columns) = &keys[k];
        let unknown: Vec<bool> = candidates[k].costs.iter().map(Option::is_none).collect();
        for n in 1..columns.len() {
            let Some(&j) = index.get(&(table.as_str(), &columns[..n])) else {
                continue;
            };
            for (s, unknown) in unknown.iter().enumerate() {
                let (Some(inherited), true) = (candidates[j].costs[s], *unknown) else {
                    continue;
                };
                let best = candidates[k].costs[s].map_or(inherited, |c| c.min(inherited));
                candidates[k].costs[s] = Some(best);
            }
        }
    }
}

/// Less than two seconds of the run left: stop planning, report what is
/// known.
fn deadline_near(ctx: &Context) -> bool {
    ctx.remaining_ms() < 2_000
}

fn deadline_finding(stage: &str) -> Finding {
    Finding::warning(
        "what-if search cut short",
        format!("the run's deadline came near while {stage}: the suggestions below come from part of the workload"),
    )
    .suggest("raise the grant's max_runtime, or lower max_statements")
}

/// One suggestion, as reported and applied.
struct Suggestion {
    table: String,
    columns: Vec<String>,
    name: String,
    statement: String,
}

#[allow(clippy::too_many_arguments)]
fn report_selection(
    ctx: &Context,
    options: &Options,
    workload: &Workload,
    planned: &[Planned],
    chosen: &Selection,
    indexes: &[IndexInfo],
    report: &mut Report,
    tally: &mut Tally,
) -> Result<(), Error> {
    let mut taken: BTreeSet<String> = indexes.iter().map(|ix| ix.name.clone()).collect();
    let specs: Vec<IndexSpec> = chosen
        .chosen
        .iter()
        .map(|c| {
            let candidate = &workload.candidates[c.candidate];
            IndexSpec {
                table: candidate.table.clone(),
                columns: candidate.columns.clone(),
            }
        })
        .collect();
    let mut suggestions = Vec::new();
    for (c, spec) in chosen.chosen.iter().zip(&specs) {
        let candidate = &workload.candidates[c.candidate];
        let name = index_name(&candidate.table, &candidate.columns, &taken);
        taken.insert(name.clone());
        let statement = create_statement(&candidate.table, &candidate.columns, &name);
        // The whole chosen set on this table, planned together.
        let together: Vec<IndexSpec> = specs
            .iter()
            .filter(|s| s.table == spec.table)
            .cloned()
            .collect();
        let mut lines = Vec::new();
        let texts: Vec<String> = c
            .helped
            .iter()
            .map(|h| planned[h.statement].text.clone())
            .collect();
        let replanned = if deadline_near(ctx) {
            Vec::new()
        } else {
            tally.whatif_calls += texts.len() as u64;
            plan_batch(ctx, &texts, &together).unwrap_or_default()
        };
        for (n, h) in c.helped.iter().enumerate() {
            let p = &planned[h.statement];
            let baseline = workload.statements[h.statement].baseline_cost;
            let after = match replanned.get(n) {
                Some(Ok(e)) => e.total_cost,
                _ => h.after,
            };
            lines.push(format!(
                "`{}` ({} calls, {:.0} ms in all): cost {:.1} → {:.1}",
                short(&p.display),
                count(workload.statements[h.statement].calls as u64),
                p.total_ms,
                baseline,
                after
            ));
        }
        let detail = format!(
            "{statement}; estimated size {}; helps {} statement{}: {}; net benefit {:.0} cost units over the statistics window (benefit {:.0} − write overhead {:.0})",
            units::bytes(candidate.size_bytes),
            c.helped.len(),
            if c.helped.len() == 1 { "" } else { "s" },
            lines.join("; "),
            c.net,
            c.benefit,
            c.overhead
        );
        report.add_finding(
            Finding::warning(format!("suggested index {}", candidate.label()), detail)
                .suggest(statement.clone()),
        );
        suggestions.push(Suggestion {
            table: candidate.table.clone(),
            columns: candidate.columns.clone(),
            name,
            statement,
        });
    }
    tally.suggested = suggestions.len() as u64;
    for (i, rejection) in &chosen.rejected {
        if let selection::Rejection::WriteOverhead { .. } = rejection {
            let candidate = &workload.candidates[*i];
            report.add_finding(Finding::info(
                format!("not suggested {}", candidate.label()),
                format!(
                    "it would help reads, but {}; the table takes {} writes over the window",
                    rejection.describe(workload),
                    count(
                        workload
                            .write_rates
                            .get(&candidate.table)
                            .copied()
                            .unwrap_or(0.0) as u64
                    )
                ),
            ));
        }
    }
    if options.apply {
        apply(ctx, &suggestions, report, tally)?;
    }
    Ok(())
}

/// Creates the suggestions one at a time; a failure stops the rest.
fn apply(
    ctx: &Context,
    suggestions: &[Suggestion],
    report: &mut Report,
    tally: &mut Tally,
) -> Result<(), Error> {
    let sql = ctx.sql();
    for (i, s) in suggestions.iter().enumerate() {
        match sql.execute(&s.statement, &[]) {
            Ok(done) if done.is_executed() => {
                tally.created += 1;
                report.add_finding(Finding::info(
                    format!("created index {}", s.name),
                    format!("{} ({} on {})", s.statement, s.columns.join(", "), s.table),
                ));
            }
            Ok(_) => {
                report.add_finding(Finding::info(
                    format!("would create index {}", s.name),
                    format!("dry-run: {} was planned, not run", s.statement),
                ));
            }
            Err(e) => {
                let leftover = drop_leftover(ctx, s);
                let rest: Vec<&str> = suggestions[i + 1..]
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                let why = if e.is_access_denied() {
                    "apply=true needs the ddl capability in this plugin's grant for the target"
                } else if e.code() == Some("55P03") || e.message().contains("lock timeout") {
                    "the table's lock was held by another session longer than the grant's lock_timeout"
                } else {
                    "the server refused it"
                };
                report.add_finding(
                    Finding::critical(
                        format!("creating index {} failed", s.name),
                        format!(
                            "{}: {why}: {}; {leftover}{}",
                            s.statement,
                            e.summary(),
                            if rest.is_empty() {
                                String::new()
                            } else {
                                format!("; not attempted: {}", rest.join(", "))
                            }
                        ),
                    )
                    .suggest("run the advisor again when the table is quiet, or raise the grant's lock_timeout"),
                );
                break;
            }
        }
    }
    Ok(())
}

/// After a failed `CREATE INDEX CONCURRENTLY`: drops the invalid index it
/// may have left, and says what happened.
fn drop_leftover(ctx: &Context, s: &Suggestion) -> String {
    let (schema, _) = s.table.split_once('.').unwrap_or(("public", &s.table));
    let qualified = format!("{}.{}", quote_ident(schema), quote_ident(&s.name));
    let exists = ctx
        .sql()
        .query(
            "SELECT 1 AS one FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
            &[Value::Text(schema.to_owned()), Value::Text(s.name.clone())],
        )
        .map(|rows| !rows.is_empty());
    match exists {
        Ok(false) => "nothing was left behind".to_owned(),
        Ok(true) => match ctx.sql().execute(
            &format!("DROP INDEX CONCURRENTLY IF EXISTS {qualified}"),
            &[],
        ) {
            Ok(_) => "the invalid index it left was dropped".to_owned(),
            Err(e) => format!(
                "it left an invalid index {qualified} that could not be dropped ({}): drop it with DROP INDEX CONCURRENTLY",
                e.message()
            ),
        },
        Err(e) => format!("could not check for a leftover index ({})", e.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Key;

    fn table(schema: &str, name: &str, columns: &[&str], pos: Option<i64>) -> Table {
        Table {
            schema: schema.to_owned(),
            name: name.to_owned(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            writes: 0.0,
            search_position: pos,
        }
    }

    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        for t in [
            table(
                "public",
                "orders",
                &["id", "customer_id", "status"],
                Some(1),
            ),
            table("app", "orders", &["id", "x"], None),
            table("app", "items", &["id", "order_id"], Some(2)),
        ] {
            c.tables.insert(format!("{}.{}", t.schema, t.name), t);
        }
        c
    }

    #[test]
    fn names_resolve_through_the_search_path() {
        let c = catalog();
        assert_eq!(c.resolve("orders"), Some("public.orders"));
        assert_eq!(c.resolve("app.orders"), Some("app.orders"));
        assert_eq!(c.resolve("items"), Some("app.items"));
        assert_eq!(c.resolve("pg_class"), None);
        assert_eq!(c.resolve("nope.orders"), None);
    }

    #[test]
    fn qualify_drops_catalogs_and_unknown_columns() {
        let usage = candidates::extract(
            "SELECT * FROM orders o JOIN pg_class c ON c.oid = o.id WHERE o.customer_id = $1 AND o.ghost = $2 ORDER BY o.status",
        )
        .unwrap();
        let q = catalog().qualify(&usage);
        assert_eq!(q.tables.keys().collect::<Vec<_>>(), ["public.orders"]);
        let used = &q.tables["public.orders"];
        assert_eq!(used.equality, ["customer_id"]);
        assert_eq!(used.order_by, ["status"]);
        assert!(!all_columns(used).contains("ghost"));
        let none = catalog()
            .qualify(&candidates::extract("SELECT relname FROM pg_class WHERE oid = $1").unwrap());
        assert!(none.tables.is_empty());
    }

    #[test]
    fn existing_keys_stop_at_expressions_and_skip_partial_and_invalid() {
        let ix = |name: &str, keys: &[&str], valid: bool, predicate: Option<&str>| IndexInfo {
            schema: "public".into(),
            table: "orders".into(),
            name: name.into(),
            method: "btree".into(),
            keys: keys.iter().map(|k| Key::plain(k)).collect(),
            valid,
            predicate: predicate.map(str::to_owned),
            ..IndexInfo::default()
        };
        let e = existing(&[
            ix("a", &["customer_id", "lower(status)"], true, None),
            ix("b", &["\"Odd\"\"Name\"", "id"], true, None),
            ix("c", &["status"], false, None),
            ix("d", &["id"], true, Some("id > 0")),
            ix("e", &["lower(status)"], true, None),
        ]);
        assert_eq!(
            e["public.orders"],
            vec![
                vec!["customer_id".to_owned()],
                vec!["Odd\"Name".to_owned(), "id".to_owned()]
            ]
        );
    }

    #[test]
    fn names_are_unique_and_fit_in_63_bytes() {
        let cols = |c: &[&str]| c.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let mut taken = BTreeSet::new();
        assert_eq!(
            index_name("public.orders", &cols(&["customer_id"]), &taken),
            "orders_customer_id_idx"
        );
        taken.insert("orders_customer_id_idx".to_owned());
        assert_eq!(
            index_name("public.orders", &cols(&["customer_id"]), &taken),
            "orders_customer_id_idx1"
        );
        let long = "é".repeat(40);
        let name = index_name(&format!("s.{long}"), &cols(&["a", "b"]), &taken);
        assert!(name.len() <= 63, "{name}");
        assert_eq!(
            create_statement("app.Odd", &cols(&["a", "B\"c"]), "n"),
            r#"CREATE INDEX CONCURRENTLY "n" ON "app"."Odd" ("a", "B""c")"#
        );
    }

    #[test]
    fn longer_keys_inherit_the_costs_of_their_prefixes_where_unknown() {
        let key = |cols: &[&str]| {
            (
                "t".to_owned(),
                cols.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>(),
            )
        };
        let keys = vec![
            key(&["a", "b", "c"]),
            key(&["a"]),
            key(&["a", "b"]),
            key(&["b"]),
        ];
        let cand = |costs: &[Option<f64>]| selection::Candidate {
            table: "t".into(),
            columns: Vec::new(),
            size_bytes: 0,
            costs: costs.to_vec(),
        };
        let mut candidates = vec![
            cand(&[None, None, Some(9.0)]),
            cand(&[Some(5.0), None, Some(1.0)]),
            cand(&[Some(3.0), Some(7.0), None]),
            cand(&[Some(1.0), Some(1.0), Some(1.0)]),
        ];
        inherit_prefix_costs(&keys, &mut candidates);
        // (a, b) inherits from (a) where it has no cost of its own; (a, b, c)
        // takes the best of (a) and (a, b), keeping its own known cost;
        // (b) is no prefix of anything here.
        assert_eq!(candidates[2].costs, [Some(3.0), Some(7.0), Some(1.0)]);
        assert_eq!(candidates[0].costs, [Some(3.0), Some(7.0), Some(9.0)]);
        assert_eq!(candidates[1].costs, [Some(5.0), None, Some(1.0)]);
    }

    #[test]
    fn writes_are_brought_to_the_statements_window() {
        assert_eq!(window_ratio(Some(7200.0), 3600), 2.0);
        assert_eq!(window_ratio(None, 3600), 1.0);
        assert_eq!(window_ratio(Some(10.0), 0), 1.0);
        assert_eq!(short("SELECT  *\n FROM t"), "SELECT * FROM t");
        assert_eq!(short(&"x".repeat(500)).chars().count(), 158);
    }
}
