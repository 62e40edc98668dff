//! Index-advisor figures, on the harness cluster (PostgreSQL 15 with
//! `pg_stat_statements` and HypoPG) and the `index-advisor` plugin in an
//! in-process agent:
//!
//! 1. **Run time for 100 and for 1,000 distinct statements.** A fresh database per
//!    size with [`TIMING_TABLES`] tables of [`TIMING_ROWS`] rows (ANALYZEd: the
//!    planner only needs statistics), and N distinct parameterized `SELECT`s
//!    generated from a fixed seed (=, <, >, BETWEEN, IN, ORDER BY, GROUP BY,
//!    joins on a foreign-key-like column, LIMIT), each executed
//!    [`EXECUTIONS`] times with bound parameters so `pg_stat_statements` has N
//!    entries for the database (checked). Then `index-advisor` under a `read` grant
//!    (`max_runtime = "10m"`, `max_rows` and `memory` raised, `max_statements` =
//!    2N so the agent's own catalog reads never push a workload statement out),
//!    best of 3 (of 2 when a run takes over a minute): run time, the report's
//!    `statements_analysed`, `candidates`, `whatif_plans`, `suggested_indexes`,
//!    and what-if plans per second. Target: under 5 s for 1,000 statements
//!    (printed, not asserted). Beside it, the latency of one what-if plan done
//!    directly over sqlx with the host's exact sequence, and what the run's plans
//!    would cost at that latency: where the time goes.
//! 2. **Recall and precision on a reference workload with known answers**
//!    ([`REF_SCHEMA`], 5 tables of 100k–300k rows, 10 statements: single-column
//!    answers, two-column answers in a specific order, a statement no index helps,
//!    a write-heavy table), against an exhaustive what-if search done here over one
//!    connection with HypoPG directly: for each statement, every single column and
//!    every ordered pair of columns of each table it references; its best index is
//!    the cheapest if it improves the baseline by ≥ 10 % (the plugin's
//!    `min_improvement_pct`), the best single column unless the best pair is
//!    ≥ 10 % cheaper than it. Recall: the share of those best indexes the advisor
//!    suggests or covers (an advisor index leading with the same columns);
//!    precision: the share of the advisor's suggestions that are (or lead with) a
//!    best index. The write-heavy table's best index is expected *not* to be
//!    suggested (the write-overhead rule); a suggestion there counts as harmful.
//!    The advisor runs with `max_indexes = 10`, so the comparison measures the
//!    search, not the cap.
//! 3. **Measured speed-up**: the suggestions created by the plugin (`apply=true`,
//!    a `read` + `ddl` grant), and every reference statement run with concrete
//!    values under `EXPLAIN (ANALYZE, BUFFERS)` before and after: median of 5
//!    execution times and shared buffers, with the ratio.
//!
//! The bench's own sessions run with `pg_stat_statements.track = none`, so the
//! exhaustive search and the measurements do not change the workload the advisor
//! sees.
//!
//! Prints figures; asserts only correctness (every run succeeded, every statement
//! reached `pg_stat_statements` and was analysed, the reference run suggests at
//! least one index and the apply run creates what it suggests), never timing. Run
//! with `cargo xtask bench` (it builds the plugins first) or, after
//! `cargo xtask build-plugins`, `cargo bench -p warden-tests --bench index_advisor`.
//! `WARDEN_BENCH_ADVISOR_SIZES=100,300` runs other sizes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::Query;
use sqlx::{Connection as _, PgConnection};
use warden::agent::{Agent, RunRequest};
use warden::runs::{RunRecord, RunStatus};
use warden_tests::pg::{self, TestDb};
use warden_tests::{plugin_wasm, repo_root};

/// Tables of each timing database.
const TIMING_TABLES: usize = 10;
/// Rows per timing table.
const TIMING_ROWS: i32 = 30_000;
/// The default statement counts of the timing runs.
const SIZES: [usize; 2] = [100, 1_000];
/// Executions of each generated statement (different parameters).
const EXECUTIONS: u64 = 3;
/// Runs per size; the best counts.
const RUNS: usize = 3;
/// Fewer runs when one takes longer than this.
const LONG_RUN: Duration = Duration::from_secs(60);
/// The target for 1,000 statements.
const TARGET_1000: Duration = Duration::from_secs(5);
/// What-if plans of the direct latency probe.
const PROBE_PLANS: usize = 200;
/// The plugin's default `min_improvement_pct`, as a fraction.
const MIN_IMPROVEMENT: f64 = 0.10;
/// The reference workload's write-heavy table.
const WRITE_HEAVY: &str = "public.audit_trail";
/// Executions per measurement; the median counts.
const MEASURE_RUNS: usize = 5;
/// The parameter set of the measured executions.
const MEASURE_SEED: usize = 7;

// --- small helpers ------------------------------------------------------------

/// `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn metric(rec: &RunRecord, name: &str) -> f64 {
    let report = rec.report.as_ref().expect("a report");
    report
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name} in {:?}", report.metrics))
        .value
}

/// `(title, detail)` of every finding whose title starts with `prefix`, the
/// prefix taken off.
fn findings(rec: &RunRecord, prefix: &str) -> Vec<(String, String)> {
    rec.report
        .as_ref()
        .expect("a report")
        .findings
        .iter()
        .filter_map(|f| {
            f.title
                .strip_prefix(prefix)
                .map(|t| (t.to_owned(), f.detail.clone()))
        })
        .collect()
}

/// The highest `$n` in `sql`.
fn placeholders(sql: &str) -> usize {
    let mut max = 0;
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse::<usize>() {
            max = max.max(n);
        }
    }
    max
}

/// A bound parameter.
#[derive(Clone, Debug)]
enum P {
    Int(i32),
    Big(i64),
    Text(String),
    Ts(DateTime<Utc>),
    Date(NaiveDate),
}

impl P {
    /// The value as an SQL literal (for the measured executions).
    fn literal(&self) -> String {
        match self {
            P::Int(v) => v.to_string(),
            P::Big(v) => v.to_string(),
            P::Text(s) => format!("'{}'", s.replace('\'', "''")),
            P::Ts(t) => format!("'{}'::timestamptz", t.to_rfc3339()),
            P::Date(d) => format!("'{d}'::date"),
        }
    }
}

fn bind_all<'q>(
    mut query: Query<'q, Postgres, PgArguments>,
    params: &[P],
) -> Query<'q, Postgres, PgArguments> {
    for p in params {
        query = match p {
            P::Int(v) => query.bind(*v),
            P::Big(v) => query.bind(*v),
            P::Text(s) => query.bind(s.clone()),
            P::Ts(t) => query.bind(*t),
            P::Date(d) => query.bind(*d),
        };
    }
    query
}

/// `sql` with its placeholders replaced by `params` as literals.
fn concrete(sql: &str, params: &[P]) -> String {
    let mut out = sql.to_owned();
    // Highest first: `$1` is a prefix of `$10`.
    for (i, p) in params.iter().enumerate().rev() {
        out = out.replace(&format!("${}", i + 1), &p.literal());
    }
    out
}

/// A connection that `pg_stat_statements` does not see, planning generically.
async fn quiet_connection(url: &str) -> PgConnection {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(
        "SET pg_stat_statements.track = 'none'; SET pg_stat_statements.track_utility = off",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn
}

/// A btree index: `schema.table` and key columns.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Ix {
    table: String,
    columns: Vec<String>,
}

impl Ix {
    fn new(table: &str, columns: &[&str]) -> Ix {
        Ix {
            table: table.to_owned(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    /// `public.t(a, b)`, as the advisor titles its suggestions.
    fn label(&self) -> String {
        format!("{}({})", self.table, self.columns.join(", "))
    }

    /// Parses [`Ix::label`].
    fn parse(label: &str) -> Ix {
        let (table, rest) = label.split_once('(').expect("table(columns)");
        let columns = rest.trim_end_matches(')');
        Ix {
            table: table.to_owned(),
            columns: columns.split(", ").map(str::to_owned).collect(),
        }
    }

    /// Whether this index leads with `other`'s columns on the same table.
    fn covers(&self, other: &Ix) -> bool {
        self.table == other.table && self.columns.starts_with(&other.columns)
    }
}

/// One what-if plan with the host's exact sequence (`warden:plugin/planner`):
/// the generic plan's total cost of `statement` with `index` hypothetical.
async fn whatif(conn: &mut PgConnection, statement: &str, index: Option<&Ix>) -> f64 {
    sqlx::raw_sql("SELECT hypopg_reset()")
        .execute(&mut *conn)
        .await
        .unwrap();
    if let Some(ix) = index {
        sqlx::query("SELECT indexrelid::int8 FROM hypopg_create_index($1)")
            .bind(format!(
                "CREATE INDEX ON {} USING btree ({})",
                ix.table,
                ix.columns.join(", ")
            ))
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::raw_sql(&format!("PREPARE bench_whatif AS {statement}"))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("PREPARE {statement}: {e}"));
    let nulls = vec!["NULL"; placeholders(statement)].join(", ");
    let explain = if nulls.is_empty() {
        "EXPLAIN (FORMAT JSON) EXECUTE bench_whatif".to_owned()
    } else {
        format!("EXPLAIN (FORMAT JSON) EXECUTE bench_whatif({nulls})")
    };
    let (plan,): (Value,) = sqlx::query_as(&explain)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    sqlx::raw_sql("DEALLOCATE bench_whatif; RESET plan_cache_mode; SELECT hypopg_reset()")
        .execute(&mut *conn)
        .await
        .unwrap();
    plan[0]["Plan"]["Total Cost"].as_f64().unwrap()
}

/// [`whatif`] in 3 round trips instead of 8 (set-up and clean-up each sent as
/// one simple-query batch): a diagnostic of what the round trips cost.
async fn whatif_batched(conn: &mut PgConnection, statement: &str, ix: &Ix) -> f64 {
    sqlx::raw_sql(&format!(
        "SELECT hypopg_reset(); \
         SELECT indexrelid FROM hypopg_create_index('CREATE INDEX ON {} USING btree ({})'); \
         SET plan_cache_mode = force_generic_plan; PREPARE bench_whatif AS {statement}",
        ix.table,
        ix.columns.join(", ")
    ))
    .execute(&mut *conn)
    .await
    .unwrap_or_else(|e| panic!("PREPARE {statement}: {e}"));
    let nulls = vec!["NULL"; placeholders(statement)].join(", ");
    let explain = if nulls.is_empty() {
        "EXPLAIN (FORMAT JSON) EXECUTE bench_whatif".to_owned()
    } else {
        format!("EXPLAIN (FORMAT JSON) EXECUTE bench_whatif({nulls})")
    };
    let (plan,): (Value,) = sqlx::query_as(&explain)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    sqlx::raw_sql("DEALLOCATE bench_whatif; RESET plan_cache_mode; SELECT hypopg_reset()")
        .execute(&mut *conn)
        .await
        .unwrap();
    plan[0]["Plan"]["Total Cost"].as_f64().unwrap()
}

/// A throwaway agent installation: the index-advisor plugin, one postgres
/// target (URL in a file), one grant.
struct Install {
    _dir: tempfile::TempDir,
    agent: Agent,
}

impl Install {
    async fn new(url: &str, capabilities: &[&str]) -> Install {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("plugins")).unwrap();
        std::fs::create_dir_all(d.join("policies")).unwrap();
        std::fs::copy(
            plugin_wasm("index-advisor"),
            d.join("plugins/index-advisor.wasm"),
        )
        .unwrap();
        std::fs::write(d.join("app.url"), url).unwrap();
        std::fs::write(
            d.join("warden.toml"),
            format!(
                "plugin_dir = \"plugins\"\npolicy_dir = \"policies\"\nstate_db = \"state/warden.db\"\n\
                 cache_dir = \"{}\"\n\n\
                 [[target]]\nname = \"app\"\nkind = \"postgres\"\nurl_file = \"app.url\"\n",
                repo_root().join("target/bench-component-cache").display(),
            ),
        )
        .unwrap();
        let classes: Vec<String> = capabilities.iter().map(|c| format!("\"{c}\"")).collect();
        std::fs::write(
            d.join("policies/advisor.toml"),
            format!(
                "[[grant]]\nplugin = \"index-advisor\"\ntargets = [\"app\"]\n\
                 capabilities = [{}]\nmax_runtime = \"10m\"\nmax_rows = 100000\n\
                 memory = \"512MiB\"\n",
                classes.join(", ")
            ),
        )
        .unwrap();
        let agent = match Agent::load(&d.join("warden.toml")).await {
            Ok(agent) => agent,
            Err(diag) => panic!("the agent did not load:\n{diag}"),
        };
        Install { _dir: dir, agent }
    }

    /// One run with `params`: (wall time, the record). Panics unless it succeeded.
    async fn invoke(&self, params: &[(&str, &str)]) -> (Duration, RunRecord) {
        let mut req = RunRequest::manual("index-advisor", "app");
        for (k, v) in params {
            req = req.param(k, v);
        }
        let t = Instant::now();
        let rec = self.agent.invoke(req).await.unwrap();
        let took = t.elapsed();
        if rec.status != RunStatus::Succeeded {
            let error = rec
                .error
                .as_ref()
                .map(|e| format!("{:?} {}: {}", e.blame, e.kind, e.message))
                .unwrap_or_default();
            panic!(
                "index-advisor ended {:?}: {error}\nfindings: {:#?}\nlogs: {:#?}",
                rec.status,
                rec.report.as_ref().map(|r| &r.findings),
                rec.logs
            );
        }
        (took, rec)
    }
}

// --- 1. run time ----------------------------------------------------------------

/// splitmix64: the statements and their parameters from a fixed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// What a placeholder takes.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// An integer in `0..max`.
    Int(i32),
    Label,
    Ts,
    Limit,
}

fn value(kind: Kind, rng: &mut Rng) -> P {
    match kind {
        Kind::Int(max) => P::Int(rng.below(max as usize) as i32),
        Kind::Label => P::Text(format!("l{}", rng.below(500))),
        Kind::Ts => P::Ts(
            DateTime::from_timestamp(
                1_735_689_600 + 60 * rng.below(TIMING_ROWS as usize * 17) as i64,
                0,
            )
            .unwrap(),
        ),
        Kind::Limit => P::Big(20),
    }
}

/// Filter columns of every timing table.
const COLUMNS: [(&str, Kind); 7] = [
    ("parent_id", Kind::Int(TIMING_ROWS)),
    ("a", Kind::Int(10)),
    ("b", Kind::Int(100)),
    ("c", Kind::Int(1000)),
    ("d", Kind::Int(10_007)),
    ("label", Kind::Label),
    ("created", Kind::Ts),
];
const OPS: [&str; 5] = ["=", "<", ">", "between", "in"];
const PROJECTIONS: [&str; 6] = [
    "*",
    "id",
    "id, a, b",
    "id, label",
    "c, d, created",
    "id, note",
];
const SORTS: [&str; 6] = ["a", "b", "c", "d", "created", "id"];
const GROUPS: [&str; 4] = ["a", "b", "c", "label"];
const JOINED: [&str; 4] = ["label", "a", "created", "note"];

/// One generated statement: its text, the table it is about, its placeholders.
struct Generated {
    text: String,
    table: String,
    kinds: Vec<Kind>,
}

fn predicate(prefix: &str, column: (&str, Kind), op: &str, kinds: &mut Vec<Kind>) -> String {
    let (name, kind) = column;
    let mut next = || {
        kinds.push(kind);
        format!("${}", kinds.len())
    };
    match op {
        "between" => {
            let (lo, hi) = (next(), next());
            format!("{prefix}{name} BETWEEN {lo} AND {hi}")
        }
        "in" => {
            let (x, y, z) = (next(), next(), next());
            format!("{prefix}{name} IN ({x}, {y}, {z})")
        }
        op => format!("{prefix}{name} {op} {}", next()),
    }
}

/// A column of [`COLUMNS`] other than `not`.
fn other_column(rng: &mut Rng, not: &str) -> (&'static str, Kind) {
    loop {
        let c = rng.pick(&COLUMNS);
        if c.0 != not {
            return c;
        }
    }
}

fn limit(kinds: &mut Vec<Kind>) -> String {
    kinds.push(Kind::Limit);
    format!(" LIMIT ${}", kinds.len())
}

fn one_statement(rng: &mut Rng) -> Generated {
    let k = rng.below(TIMING_TABLES);
    let table = format!("t{k}");
    let mut kinds = Vec::new();
    let first = rng.pick(&COLUMNS);
    let op = rng.pick(&OPS);
    let text = match rng.below(10) {
        0..=5 => {
            let proj = rng.pick(&PROJECTIONS);
            let mut text = format!(
                "SELECT {proj} FROM {table} WHERE {}",
                predicate("", first, op, &mut kinds)
            );
            if rng.below(2) == 0 {
                let second = other_column(rng, first.0);
                let op = rng.pick(&OPS);
                text.push_str(" AND ");
                text.push_str(&predicate("", second, op, &mut kinds));
            }
            match rng.below(4) {
                0 => {}
                1 => text.push_str(&format!(" ORDER BY {}", rng.pick(&SORTS))),
                _ => text.push_str(&format!(" ORDER BY {} DESC", rng.pick(&SORTS))),
            }
            if rng.below(2) == 0 {
                text.push_str(&limit(&mut kinds));
            }
            text
        }
        6..=7 => {
            let group = rng.pick(&GROUPS);
            let mut text = format!(
                "SELECT {group}, count(*) FROM {table} WHERE {} GROUP BY {group}",
                predicate("", first, op, &mut kinds)
            );
            if rng.below(2) == 0 {
                text.push_str(" ORDER BY count(*) DESC");
                text.push_str(&limit(&mut kinds));
            }
            text
        }
        _ => {
            let joined = format!("t{}", (k + 1) % TIMING_TABLES);
            let column = rng.pick(&JOINED);
            let mut text = format!(
                "SELECT x.id, y.{column} FROM {table} x JOIN {joined} y ON y.id = x.parent_id WHERE {}",
                predicate("x.", first, op, &mut kinds)
            );
            if rng.below(2) == 0 {
                let second = other_column(rng, "parent_id");
                let op = rng.pick(&OPS);
                text.push_str(" AND ");
                text.push_str(&predicate("y.", second, op, &mut kinds));
            }
            if rng.below(2) == 0 {
                text.push_str(&format!(" ORDER BY x.{}", rng.pick(&SORTS)));
            }
            text.push_str(&limit(&mut kinds));
            text
        }
    };
    Generated { text, table, kinds }
}

/// `n` statements with distinct texts (and so distinct `pg_stat_statements`
/// entries: no literals, no aliases that differ), always the same ones.
fn generate(n: usize) -> Vec<Generated> {
    let mut rng = Rng(0x00AD_715E);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    while out.len() < n {
        let g = one_statement(&mut rng);
        if seen.insert(g.text.clone()) {
            out.push(g);
        }
    }
    out
}

/// The timing tables: `t0` … `t9`, each with a foreign-key-like `parent_id`
/// into the next one, columns of 10 to ~10,000 distinct values, a text label,
/// a timestamp and some padding; statistics reset afterwards, so the tables
/// are read-only for the advisor's write-overhead rule.
async fn seed_timing(db: &TestDb) {
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let mut sql = String::new();
    for k in 0..TIMING_TABLES {
        sql.push_str(&format!(
            "CREATE TABLE t{k} (id int PRIMARY KEY, parent_id int NOT NULL, a int NOT NULL, \
             b int NOT NULL, c int NOT NULL, d int NOT NULL, label text NOT NULL, \
             created timestamptz NOT NULL, note text);
             INSERT INTO t{k} SELECT g, 1 + (g * 7919 + {k}) % {TIMING_ROWS}, (g * 7 + {k}) % 10, \
             (g * 13) % 100, (g * 31) % 1000, (g * 17) % 10007, 'l' || (g * 3) % 500, \
             timestamptz '2025-01-01 00:00:00+00' + g * interval '17 minutes', repeat('n', 30) \
             FROM generate_series(1, {TIMING_ROWS}) g;\n"
        ));
    }
    sqlx::raw_sql(&sql).execute(&mut conn).await.unwrap();
    sqlx::raw_sql("VACUUM ANALYZE")
        .execute(&mut conn)
        .await
        .unwrap();
    // The seed's inserts are not the workload's writes.
    pg::reset_statistics(&mut conn).await;
    let _ = conn.close().await;
}

/// Executes each statement [`EXECUTIONS`] times with bound parameters.
async fn run_generated(db: &TestDb, statements: &[Generated]) -> Duration {
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let t = Instant::now();
    for (i, g) in statements.iter().enumerate() {
        for e in 0..EXECUTIONS {
            let mut rng = Rng(i as u64 * 1_000 + e);
            let params: Vec<P> = g.kinds.iter().map(|k| value(*k, &mut rng)).collect();
            bind_all(sqlx::query(&g.text), &params)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|err| panic!("{}: {err}", g.text));
        }
    }
    let took = t.elapsed();
    sqlx::raw_sql("SELECT pg_stat_force_next_flush()")
        .execute(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    took
}

/// How many of `statements` `pg_stat_statements` has for the database, and
/// the view's size and evictions, cluster-wide.
async fn statements_seen(db: &TestDb, statements: &[Generated]) -> (usize, i64, i64, String) {
    let mut conn = quiet_connection(&db.url).await;
    let texts: Vec<String> = sqlx::query_scalar(
        "SELECT s.query FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
         WHERE d.datname = current_database()",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let texts: HashSet<String> = texts.into_iter().collect();
    let found = statements
        .iter()
        .filter(|g| texts.contains(&g.text))
        .count();
    let (entries,): (i64,) = sqlx::query_as("SELECT count(*) FROM pg_stat_statements")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let (dealloc,): (i64,) = sqlx::query_as("SELECT dealloc FROM pg_stat_statements_info")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let (max,): (String,) = sqlx::query_as("SHOW pg_stat_statements.max")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    (found, entries, dealloc, max)
}

/// Latency of one what-if plan done directly over the first [`PROBE_PLANS`]
/// statements, each with a hypothetical index on its table's column `c`: with
/// the host's sequence (8 round trips), and batched in 3.
async fn direct_whatif_latency(db: &TestDb, statements: &[Generated]) -> (Duration, Duration) {
    let mut conn = quiet_connection(&db.url).await;
    let probe: Vec<&Generated> = statements.iter().cycle().take(PROBE_PLANS).collect();
    let t = Instant::now();
    for g in &probe {
        let ix = Ix::new(&format!("public.{}", g.table), &["c"]);
        whatif(&mut conn, &g.text, Some(&ix)).await;
    }
    let host_like = t.elapsed() / probe.len() as u32;
    let t = Instant::now();
    for g in &probe {
        let ix = Ix::new(&format!("public.{}", g.table), &["c"]);
        whatif_batched(&mut conn, &g.text, &ix).await;
    }
    let batched = t.elapsed() / probe.len() as u32;
    let _ = conn.close().await;
    (host_like, batched)
}

/// The figures of one size.
struct Timing {
    statements: usize,
    best: Duration,
    runs: usize,
    analysed: f64,
    skipped: f64,
    candidates: f64,
    covered: f64,
    plans: f64,
    suggested: f64,
    plan_latency: Duration,
    batched_latency: Duration,
    workload_time: Duration,
}

async fn timing(n: usize, all: &[Generated]) -> Timing {
    let cluster = pg::cluster();
    let statements = &all[..n];
    let db = cluster.create_database(&format!("bench_advisor_{n}")).await;
    let t = Instant::now();
    seed_timing(&db).await;
    let seeded = t.elapsed();
    let workload_time = run_generated(&db, statements).await;
    let (found, entries, dealloc, max) = statements_seen(&db, statements).await;
    println!(
        "{n} statements: seeded {} in {seeded:.2?} ({TIMING_TABLES} tables × {} rows); \
         {} executions in {workload_time:.2?}; pg_stat_statements has {found} of them \
         ({entries} entries cluster-wide, max {max}, {dealloc} evictions)",
        db.name,
        thousands(TIMING_ROWS as u64),
        thousands(n as u64 * EXECUTIONS),
    );
    assert_eq!(
        found, n,
        "every generated statement is a pg_stat_statements entry"
    );

    let install = Install::new(&db.url, &["read"]).await;
    let max_statements = (2 * n).to_string();
    let params = [("max_statements", max_statements.as_str())];
    let mut times = Vec::new();
    let mut last = None;
    for round in 1..=RUNS {
        let (took, rec) = install.invoke(&params).await;
        let analysed = metric(&rec, "statements_analysed");
        let skipped = metric(&rec, "statements_skipped");
        let plans = metric(&rec, "whatif_plans");
        println!(
            "  round {round}: {took:.2?}: {analysed} statements analysed ({skipped} skipped), \
             {} candidates ({} covered by existing indexes), {} what-if plans ({:.0}/s), \
             {} suggested",
            metric(&rec, "candidates"),
            metric(&rec, "candidates_covered"),
            metric(&rec, "whatif_plans"),
            plans / took.as_secs_f64(),
            metric(&rec, "suggested_indexes"),
        );
        for (title, detail) in findings(&rec, "") {
            if title.contains("not analysed")
                || title.contains("cut short")
                || title.contains("truncated")
            {
                println!("    finding: {title}: {detail}");
            }
        }
        assert!(
            analysed + skipped >= n as f64,
            "every statement of the workload is analysed or skipped with a reason"
        );
        assert!(analysed >= 1.0);
        times.push(took);
        last = Some(rec);
        if round >= 2 && took > LONG_RUN {
            break;
        }
    }
    let rec = last.unwrap();
    let (plan_latency, batched_latency) = direct_whatif_latency(&db, statements).await;
    Timing {
        statements: n,
        best: times.iter().copied().min().unwrap(),
        runs: times.len(),
        analysed: metric(&rec, "statements_analysed"),
        skipped: metric(&rec, "statements_skipped"),
        candidates: metric(&rec, "candidates"),
        covered: metric(&rec, "candidates_covered"),
        plans: metric(&rec, "whatif_plans"),
        suggested: metric(&rec, "suggested_indexes"),
        plan_latency,
        batched_latency,
        workload_time,
    }
}

// --- 2. the reference workload ---------------------------------------------------

/// Reference schema: 5 tables of 100k–300k rows, only primary keys.
const REF_SCHEMA: &str = "
CREATE TABLE accounts (id int PRIMARY KEY, region int NOT NULL, tier int NOT NULL,
    created date NOT NULL, name text NOT NULL);
INSERT INTO accounts SELECT g, g % 20, (g / 7) % 5, date '2020-01-01' + (g * 37) % 1500,
    'account ' || g FROM generate_series(1, 100000) g;

CREATE TABLE invoices (id int PRIMARY KEY, account_id int NOT NULL, status int NOT NULL,
    issued date NOT NULL, amount numeric NOT NULL, memo text);
INSERT INTO invoices SELECT g, 1 + (g::bigint * 7919) % 100000, g % 6, date '2022-01-01' + (g * 13) % 1000,
    (g % 10000) / 100.0, repeat('m', 50) FROM generate_series(1, 300000) g;

CREATE TABLE shipments (id int PRIMARY KEY, invoice_id int NOT NULL, carrier int NOT NULL,
    shipped timestamptz NOT NULL, weight int NOT NULL, dest text NOT NULL);
INSERT INTO shipments SELECT g, 1 + (g::bigint * 104729) % 300000, g % 50,
    timestamptz '2024-01-01 00:00:00+00' + ((g::bigint * 7919) % 200000) * interval '2 minutes',
    g % 5000, 'city ' || g % 300
    FROM generate_series(1, 200000) g;

CREATE TABLE products (id int PRIMARY KEY, sku text NOT NULL, category int NOT NULL,
    price numeric NOT NULL, stock int NOT NULL);
INSERT INTO products SELECT g, 'sku-' || lpad(((g::bigint * 7919) % 1000003)::text, 7, '0'), g % 200,
    (g % 5000) / 10.0, g % 1000 FROM generate_series(1, 100000) g;

CREATE TABLE audit_trail (id int PRIMARY KEY, actor int NOT NULL, action int NOT NULL,
    at timestamptz NOT NULL);
INSERT INTO audit_trail SELECT g, g % 1000, g % 10, now() FROM generate_series(1, 100000) g;
";

/// One statement of the reference workload.
struct RefStatement {
    name: &'static str,
    /// What it is meant to show.
    shows: &'static str,
    sql: &'static str,
    /// The tables it references (`schema.table`).
    tables: &'static [&'static str],
    calls: usize,
    params: fn(usize) -> Vec<P>,
}

fn ts(day: i64, hour: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_704_067_200 + day * 86_400 + hour * 3_600, 0).unwrap()
}

fn date(day: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2022, 1, 1).unwrap() + chrono::Days::new(day as u64)
}

fn sku(i: usize) -> String {
    let g = 1 + (i as i64 * 97) % 100_000;
    format!("sku-{:07}", (g * 7919) % 1_000_003)
}

fn reference_statements() -> Vec<RefStatement> {
    vec![
        RefStatement {
            name: "Q1",
            shows: "one equality column",
            sql: "SELECT * FROM invoices WHERE account_id = $1",
            tables: &["public.invoices"],
            calls: 80,
            params: |i| vec![P::Int(1 + (i as i32 * 37) % 100_000)],
        },
        RefStatement {
            name: "Q2",
            shows: "equality, range and sort with LIMIT",
            sql: "SELECT id, weight, dest FROM shipments WHERE carrier = $1 AND shipped >= $2 ORDER BY shipped LIMIT $3",
            tables: &["public.shipments"],
            calls: 50,
            params: |i| {
                vec![
                    P::Int(i as i32 % 50),
                    P::Ts(ts(150, i as i64 % 24)),
                    P::Big(20),
                ]
            },
        },
        RefStatement {
            name: "Q3",
            shows: "one text equality column",
            sql: "SELECT * FROM products WHERE sku = $1",
            tables: &["public.products"],
            calls: 60,
            params: |i| vec![P::Text(sku(i))],
        },
        RefStatement {
            name: "Q4",
            shows: "a join on a foreign-key-like column",
            sql: "SELECT a.name, i.id, i.amount FROM accounts a JOIN invoices i ON i.account_id = a.id WHERE a.region = $1 AND a.tier = $2",
            tables: &["public.accounts", "public.invoices"],
            calls: 20,
            params: |i| vec![P::Int(i as i32 % 20), P::Int(i as i32 % 5)],
        },
        RefStatement {
            name: "Q5",
            shows: "no index helps (a third of the table)",
            sql: "SELECT * FROM products WHERE price > $1",
            tables: &["public.products"],
            calls: 10,
            params: |i| vec![P::Int(100 + i as i32)],
        },
        RefStatement {
            name: "Q6",
            shows: "a write-heavy table, rarely read",
            sql: "SELECT * FROM audit_trail WHERE actor = $1",
            tables: &["public.audit_trail"],
            calls: 3,
            params: |i| vec![P::Int(i as i32 % 1000)],
        },
        RefStatement {
            name: "Q7",
            shows: "equality then descending sort",
            sql: "SELECT id, name FROM accounts WHERE region = $1 ORDER BY created DESC LIMIT $2",
            tables: &["public.accounts"],
            calls: 40,
            params: |i| vec![P::Int(i as i32 % 20), P::Big(10)],
        },
        RefStatement {
            name: "Q8",
            shows: "an IN list",
            sql: "SELECT * FROM shipments WHERE invoice_id IN ($1, $2, $3)",
            tables: &["public.shipments"],
            calls: 40,
            params: |i| {
                let i = i as i32;
                vec![
                    P::Int(1 + (i * 7) % 300_000),
                    P::Int(1 + (i * 7 + 1) % 300_000),
                    P::Int(1 + (i * 7 + 2) % 300_000),
                ]
            },
        },
        RefStatement {
            name: "Q9",
            shows: "equality and a BETWEEN range",
            sql: "SELECT id, amount FROM invoices WHERE status = $1 AND issued BETWEEN $2 AND $3",
            tables: &["public.invoices"],
            calls: 30,
            params: |i| {
                let day = 60 + i as i64 % 300;
                vec![
                    P::Int(i as i32 % 6),
                    P::Date(date(day)),
                    P::Date(date(day + 7)),
                ]
            },
        },
        RefStatement {
            name: "Q10",
            shows: "a range with GROUP BY",
            sql: "SELECT carrier, count(*) FROM shipments WHERE shipped >= $1 AND shipped < $2 GROUP BY carrier",
            tables: &["public.shipments"],
            calls: 20,
            params: |i| {
                let day = 30 + i as i64 % 200;
                vec![P::Ts(ts(day, 0)), P::Ts(ts(day + 1, 0))]
            },
        },
    ]
}

/// Builds the reference database, resets its statistics (the seed does not
/// count as writes), runs the workload, then the write-heavy table's writes.
async fn reference_database(statements: &[RefStatement]) -> (TestDb, Duration) {
    let db = pg::cluster().create_database("bench_advisor_ref").await;
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let t = Instant::now();
    sqlx::raw_sql(REF_SCHEMA).execute(&mut conn).await.unwrap();
    sqlx::raw_sql("VACUUM ANALYZE")
        .execute(&mut conn)
        .await
        .unwrap();
    pg::reset_statistics(&mut conn).await;
    for s in statements {
        for i in 0..s.calls {
            bind_all(sqlx::query(s.sql), &(s.params)(i))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", s.sql));
        }
    }
    sqlx::raw_sql(
        "UPDATE audit_trail SET action = action + 1 WHERE id <= 60000;
         INSERT INTO audit_trail SELECT g, g % 1000, 1, now() FROM generate_series(100001, 140000) g;
         SELECT pg_stat_force_next_flush();",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let took = t.elapsed();
    let _ = conn.close().await;
    (db, took)
}

/// The exhaustive search's verdict on one statement.
struct Exhaustive {
    baseline: f64,
    single: (Ix, f64),
    pair: (Ix, f64),
    /// The best index, if it improves the baseline by ≥ 10 %.
    best: Option<(Ix, f64)>,
}

async fn columns_of(conn: &mut PgConnection, table: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT attname::text FROM pg_attribute WHERE attrelid = $1::regclass \
         AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .unwrap()
}

/// Every single column and every ordered pair of columns of every table `s`
/// references, planned with HypoPG; (the verdict, plans made).
async fn exhaustive(conn: &mut PgConnection, s: &RefStatement) -> (Exhaustive, usize) {
    let baseline = whatif(conn, s.sql, None).await;
    let mut plans = 1;
    let mut single: Option<(Ix, f64)> = None;
    let mut pair: Option<(Ix, f64)> = None;
    for table in s.tables {
        let columns = columns_of(conn, table).await;
        for a in &columns {
            for b in std::iter::once(None).chain(columns.iter().map(Some)) {
                if b == Some(a) {
                    continue;
                }
                let mut keys = vec![a.as_str()];
                keys.extend(b.map(String::as_str));
                let ix = Ix::new(table, &keys);
                let cost = whatif(conn, s.sql, Some(&ix)).await;
                plans += 1;
                let slot = if b.is_none() { &mut single } else { &mut pair };
                if slot.as_ref().is_none_or(|(_, c)| cost < *c) {
                    *slot = Some((ix, cost));
                }
            }
        }
    }
    let (single, pair) = (single.unwrap(), pair.unwrap());
    let chosen = if pair.1 < (1.0 - MIN_IMPROVEMENT) * single.1 {
        pair.clone()
    } else {
        single.clone()
    };
    let best = (chosen.1 <= (1.0 - MIN_IMPROVEMENT) * baseline).then_some(chosen);
    (
        Exhaustive {
            baseline,
            single,
            pair,
            best,
        },
        plans,
    )
}

/// The advisor's word on statement `sql`: for each suggestion whose detail
/// lists it, (the suggestion, "cost a → b").
fn advisor_helps(rec: &RunRecord, sql: &str) -> Vec<(String, String)> {
    let needle = format!("`{sql}` (");
    findings(rec, "suggested index ")
        .into_iter()
        .filter_map(|(label, detail)| {
            let at = detail.find(&needle)?;
            let rest = &detail[at + needle.len()..];
            let cost = rest
                .split_once("cost ")
                .map(|(_, c)| c.split(';').next().unwrap_or(c).trim().to_owned())
                .unwrap_or_default();
            Some((label, cost))
        })
        .collect()
}

fn pct(part: usize, whole: usize) -> String {
    if whole == 0 {
        "n/a".to_owned()
    } else {
        format!("{:.0} %", 100.0 * part as f64 / whole as f64)
    }
}

async fn reference() {
    let statements = reference_statements();
    let (db, built) = reference_database(&statements).await;
    println!(
        "reference database {} built and its workload run in {built:.2?}",
        db.name
    );

    // The advisor, advice only.
    let reader = Install::new(&db.url, &["read"]).await;
    let (took, advice) = reader.invoke(&[("max_indexes", "10")]).await;
    let suggested: BTreeSet<Ix> = findings(&advice, "suggested index ")
        .iter()
        .map(|(label, _)| Ix::parse(label))
        .collect();
    println!(
        "advisor on the reference workload: {took:.2?}, {} statements analysed, {} candidates, \
         {} what-if plans, {} suggested",
        metric(&advice, "statements_analysed"),
        metric(&advice, "candidates"),
        metric(&advice, "whatif_plans"),
        metric(&advice, "suggested_indexes"),
    );
    assert!(
        metric(&advice, "statements_analysed") >= statements.len() as f64,
        "{:#?}",
        advice.report
    );
    assert!(
        !suggested.is_empty(),
        "the reference run suggests at least one index: {:#?}",
        advice.report
    );
    assert!(advice.actions.is_empty(), "advice creates nothing");

    // The exhaustive search, on a session pg_stat_statements does not see.
    let mut conn = quiet_connection(&db.url).await;
    let t = Instant::now();
    let mut verdicts = Vec::new();
    let mut plans = 0;
    for s in &statements {
        let (verdict, n) = exhaustive(&mut conn, s).await;
        plans += n;
        verdicts.push(verdict);
    }
    let search = t.elapsed();

    println!();
    println!(
        "== reference workload: the advisor against an exhaustive two-column what-if search \
         ({plans} plans in {search:.2?}) =="
    );
    for (s, v) in statements.iter().zip(&verdicts) {
        let best = match &v.best {
            Some((ix, cost)) => format!(
                "{} ({cost:.1}, −{:.0} %)",
                ix.label(),
                100.0 * (1.0 - cost / v.baseline)
            ),
            None => "none (nothing improves it by 10 %)".to_owned(),
        };
        let helps = advisor_helps(&advice, s.sql);
        let advisor = if helps.is_empty() {
            "no suggestion".to_owned()
        } else {
            helps
                .iter()
                .map(|(label, cost)| format!("{label} ({cost})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "  {:<4} {} ({} calls): `{}`",
            s.name, s.shows, s.calls, s.sql
        );
        println!(
            "       baseline {:.1}; best single {} {:.1}; best pair {} {:.1}",
            v.baseline,
            v.single.0.label(),
            v.single.1,
            v.pair.0.label(),
            v.pair.1
        );
        println!("       exhaustive best: {best}; advisor: {advisor}");
    }

    // The sets.
    let mut expected: BTreeMap<Ix, Vec<&str>> = BTreeMap::new();
    let mut write_explained: BTreeMap<Ix, Vec<&str>> = BTreeMap::new();
    for (s, v) in statements.iter().zip(&verdicts) {
        if let Some((ix, _)) = &v.best {
            let set = if ix.table == WRITE_HEAVY {
                &mut write_explained
            } else {
                &mut expected
            };
            set.entry(ix.clone()).or_default().push(s.name);
        }
    }
    let labels =
        |set: &mut dyn Iterator<Item = &Ix>| set.map(Ix::label).collect::<Vec<_>>().join(", ");
    println!(
        "exhaustive best indexes (expected): {}",
        labels(&mut expected.keys())
    );
    println!(
        "left out by the write-overhead rule ({WRITE_HEAVY} is write-heavy): {}",
        labels(&mut write_explained.keys())
    );
    for (title, detail) in findings(&advice, "not suggested ") {
        println!("  advisor: not suggested {title}: {detail}");
    }
    println!("advisor suggestions: {}", labels(&mut suggested.iter()));

    // Recall.
    let mut recalled = 0;
    let mut missed = Vec::new();
    for (ix, by) in &expected {
        match suggested.iter().find(|s| s.covers(ix)) {
            Some(s) if s == ix => recalled += 1,
            Some(s) => {
                recalled += 1;
                println!("  recall: {} covered by {}", ix.label(), s.label());
            }
            None => missed.push((ix, by)),
        }
    }
    // Precision.
    let (mut exact, mut covering, mut harmful, mut unexplained) = (0, 0, Vec::new(), Vec::new());
    for s in &suggested {
        if s.table == WRITE_HEAVY {
            harmful.push(s);
        } else if expected.contains_key(s) {
            exact += 1;
        } else if expected.keys().any(|e| s.covers(e)) {
            covering += 1;
        } else {
            unexplained.push(s);
        }
    }
    let written_off_ok = write_explained
        .keys()
        .all(|ix| !suggested.iter().any(|s| s.covers(ix)));
    println!(
        "recall: {recalled} of {} = {}; precision: {} of {} = {} ({exact} exact, {covering} \
         leading with a best index, {} harmful on the write-heavy table, {} unexplained); \
         write-heavy table left alone: {}",
        expected.len(),
        pct(recalled, expected.len()),
        exact + covering,
        suggested.len(),
        pct(exact + covering, suggested.len()),
        harmful.len(),
        unexplained.len(),
        if written_off_ok { "yes" } else { "NO" },
    );

    // Disagreements and their reasons.
    for (ix, by) in &missed {
        println!("  missed {} (best for {}):", ix.label(), by.join(", "));
        for (s, v) in statements.iter().zip(&verdicts) {
            if !by.contains(&s.name) {
                continue;
            }
            let helps = advisor_helps(&advice, s.sql);
            let (_, best_cost) = v.best.as_ref().unwrap();
            if helps.is_empty() {
                println!(
                    "    {}: the advisor suggests nothing for it (exhaustive: {:.1} → {best_cost:.1})",
                    s.name, v.baseline
                );
            } else {
                for (label, cost) in helps {
                    println!(
                        "    {}: the advisor helps it with {label} instead ({cost}; exhaustive best {best_cost:.1})",
                        s.name
                    );
                }
            }
        }
        let rejected: Vec<(String, String)> = findings(&advice, "not suggested ")
            .into_iter()
            .filter(|(title, _)| *title == ix.label())
            .collect();
        for (_, detail) in rejected {
            println!("    advisor: {detail}");
        }
    }
    for s in harmful.iter().chain(&unexplained) {
        let kind = if s.table == WRITE_HEAVY {
            "harmful (write-heavy table)"
        } else {
            "unexplained"
        };
        println!("  {kind} suggestion {}:", s.label());
        for (st, v) in statements.iter().zip(&verdicts) {
            if !advisor_helps(&advice, st.sql)
                .iter()
                .any(|(label, _)| *label == s.label())
            {
                continue;
            }
            let with = whatif(&mut conn, st.sql, Some(s)).await;
            let best = v
                .best
                .as_ref()
                .map_or("none".to_owned(), |(b, c)| format!("{} {c:.1}", b.label()));
            println!(
                "    on {}: cost {:.1} → {with:.1} with it; exhaustive best {best}",
                st.name, v.baseline
            );
        }
    }
    let _ = conn.close().await;

    // 3. Measured: before, created by the plugin, after.
    let mut conn = quiet_connection(&db.url).await;
    let concrete_sql: Vec<String> = statements
        .iter()
        .map(|s| concrete(s.sql, &(s.params)(MEASURE_SEED)))
        .collect();
    let mut before = Vec::new();
    for sql in &concrete_sql {
        before.push(pg::measure_execution(&mut conn, sql, MEASURE_RUNS).await);
    }
    let writer = Install::new(&db.url, &["read", "ddl"]).await;
    let (took, applied) = writer
        .invoke(&[("max_indexes", "10"), ("apply", "true")])
        .await;
    let created = findings(&applied, "created index ");
    let applied_set: BTreeSet<Ix> = findings(&applied, "suggested index ")
        .iter()
        .map(|(label, _)| Ix::parse(label))
        .collect();
    assert_eq!(
        metric(&applied, "created_indexes"),
        metric(&applied, "suggested_indexes"),
        "{:#?}",
        applied.report
    );
    assert!(!created.is_empty(), "{:#?}", applied.report);
    let valid: bool = sqlx::query_scalar(
        "SELECT bool_and(indisvalid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
         WHERE c.relnamespace = 'public'::regnamespace",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(valid, "every created index is valid");
    sqlx::raw_sql("ANALYZE").execute(&mut conn).await.unwrap();
    let mut after = Vec::new();
    for sql in &concrete_sql {
        after.push(pg::measure_execution(&mut conn, sql, MEASURE_RUNS).await);
    }
    let _ = conn.close().await;

    println!();
    println!(
        "== measured speed-up: the advisor's indexes created with apply=true ({took:.2?}: {}), \
         median of {MEASURE_RUNS} executions, shared buffers hit + read ==",
        created
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if applied_set != suggested {
        println!(
            "  note: the apply run chose {} (the advice run chose {})",
            labels(&mut applied_set.iter()),
            labels(&mut suggested.iter())
        );
    }
    println!(
        "  {:<4} {:<52} {:>10} {:>9} {:>10} {:>9} {:>9} {:>9}",
        "", "helped by", "before ms", "buffers", "after ms", "buffers", "time ×", "buffers ×"
    );
    for ((s, b), a) in statements.iter().zip(&before).zip(&after) {
        let helps = advisor_helps(&applied, s.sql);
        let by = if helps.is_empty() {
            "(not helped: control)".to_owned()
        } else {
            helps
                .iter()
                .map(|(label, _)| label.trim_start_matches("public.").to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "  {:<4} {:<52} {:>10.2} {:>9} {:>10.2} {:>9} {:>9.1} {:>9.1}",
            s.name,
            by,
            b.0,
            b.1,
            a.0,
            a.1,
            b.0 / a.0.max(0.001),
            b.1 as f64 / a.1.max(1) as f64
        );
    }
}

// --- the whole -------------------------------------------------------------------

fn sizes() -> Vec<usize> {
    match std::env::var("WARDEN_BENCH_ADVISOR_SIZES") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .expect("WARDEN_BENCH_ADVISOR_SIZES: numbers")
            })
            .collect(),
        _ => SIZES.to_vec(),
    }
}

async fn bench() {
    let cluster = pg::cluster();
    println!(
        "PostgreSQL test cluster on port {} ({}), started in {:.2?}",
        cluster.port(),
        cluster.bin_dir().display(),
        cluster.started_in()
    );
    assert!(
        cluster.has_extension("hypopg"),
        "the test cluster has no hypopg: install postgresql-15-hypopg"
    );
    let load_before = warden_tests::load_average();
    println!("before the measurements: {load_before}");

    let sizes = sizes();
    let all = generate(sizes.iter().copied().max().unwrap_or(0));
    let mut timings = Vec::new();
    for n in &sizes {
        timings.push(timing(*n, &all).await);
    }
    let load_after = warden_tests::load_average();

    println!();
    println!(
        "== index-advisor run time: best of {RUNS} (2 when a run takes over {LONG_RUN:?}); \
         {TIMING_TABLES} tables × {} rows ==",
        thousands(TIMING_ROWS as u64)
    );
    println!("machine: {load_before} before, {load_after} after (timings are noisy under load)");
    println!(
        "  {:>10} {:>9} {:>5} {:>9} {:>8} {:>11} {:>9} {:>10} {:>8} {:>9} {:>14}",
        "statements",
        "best s",
        "runs",
        "analysed",
        "skipped",
        "candidates",
        "covered",
        "what-if",
        "plans/s",
        "suggested",
        "target"
    );
    for t in &timings {
        let target = if t.statements == 1_000 {
            format!(
                "< {}s: {}",
                TARGET_1000.as_secs(),
                if t.best < TARGET_1000 {
                    "met"
                } else {
                    "MISSED"
                }
            )
        } else {
            String::new()
        };
        println!(
            "  {:>10} {:>9.2} {:>5} {:>9} {:>8} {:>11} {:>9} {:>10} {:>8.0} {:>9} {:>14}",
            thousands(t.statements as u64),
            t.best.as_secs_f64(),
            t.runs,
            t.analysed,
            t.skipped,
            t.candidates,
            t.covered,
            t.plans,
            t.plans / t.best.as_secs_f64(),
            t.suggested,
            target
        );
    }
    println!("where the time goes:");
    for t in &timings {
        let at_latency = t.plan_latency.as_secs_f64() * t.plans;
        println!(
            "  {:>5} statements: one what-if plan directly over sqlx (the host's 8 round trips) \
             takes {:.2} ms; the run's {} plans at that latency: {:.2} s = {:.0} % of the best \
             run ({:.2} ms per plan in the run, all in); {:.2} per statement; the workload's \
             own {} executions took {:.2?}",
            thousands(t.statements as u64),
            t.plan_latency.as_secs_f64() * 1e3,
            t.plans,
            at_latency,
            100.0 * at_latency / t.best.as_secs_f64(),
            1e3 * t.best.as_secs_f64() / t.plans.max(1.0),
            t.plans / t.statements as f64,
            thousands(t.statements as u64 * EXECUTIONS),
            t.workload_time
        );
        println!(
            "                     (the same plan batched in 3 round trips: {:.2} ms; the run's \
             plans at that latency: {:.2} s)",
            t.batched_latency.as_secs_f64() * 1e3,
            t.batched_latency.as_secs_f64() * t.plans
        );
    }

    println!();
    reference().await;
}

fn main() {
    // Start the cluster before the runtime: its start blocks.
    let _ = pg::cluster();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench());
}
