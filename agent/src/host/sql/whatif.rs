//! `warden:plugin/planner`: what-if costs with HypoPG on the run's own
//! PostgreSQL session.
//!
//! The plugin never gets `SET`, `PREPARE` or HypoPG's functions: the host
//! runs the whole sequence itself, on the session that already has the
//! grant's timeouts, after classifying the statement as a read:
//! `hypopg_reset()`, one `hypopg_create_index` per requested index (built
//! here from checked identifiers), `SET plan_cache_mode =
//! force_generic_plan`, `PREPARE`, `EXPLAIN (FORMAT JSON) EXECUTE` with one
//! NULL per placeholder, `DEALLOCATE` (a cached generic plan would ignore
//! indexes added later), `RESET plan_cache_mode`, `hypopg_reset()`. The
//! clean-up runs whether the planning worked or not. A batch creates the
//! hypothetical indexes once and repeats `PREPARE` / `EXPLAIN EXECUTE` /
//! `DEALLOCATE` per statement, each statement checked on its own.

use super::{Conn, HostState, classify_statement, db_error};
use crate::capability::CapabilityClass;
use crate::host::bindings::types::Error;
use crate::host::bindings::warden::plugin::planner::{
    Estimate, Host, HypotheticalIndex, IndexSpec,
};
use crate::host::call::Call;
use crate::host::permission::{TargetCall, check_target};
use crate::host::{at_most, invalid};
use crate::ident::quote;
use futures_util::future::BoxFuture;
use sqlx::postgres::PgConnection;

/// Most hypothetical indexes per call.
pub const MAX_HYPOTHETICAL: usize = 64;
/// Most columns per hypothetical index.
const MAX_COLUMNS: usize = 32;
/// The prepared statement's name (one at a time per session).
const PREPARED: &str = "warden_whatif";

/// An identifier as a plugin may name it: 1 to 63 bytes, no NUL.
fn checked_ident<'a>(what: &str, ident: &'a str) -> Result<&'a str, Error> {
    if ident.is_empty() || ident.len() > 63 || ident.contains('\0') {
        return Err(invalid(format!(
            "{what} {ident:?} is not an identifier (1 to 63 bytes, no NUL)"
        )));
    }
    Ok(ident)
}

/// The `CREATE INDEX` text HypoPG is given for `spec`.
fn index_sql(spec: &IndexSpec) -> Result<String, Error> {
    let table = match spec.table.split_once('.') {
        Some((schema, table)) => format!(
            "{}.{}",
            quote(checked_ident("schema", schema)?),
            quote(checked_ident("table", table)?)
        ),
        None => quote(checked_ident("table", &spec.table)?),
    };
    if spec.columns.is_empty() || spec.columns.len() > MAX_COLUMNS {
        return Err(invalid(format!(
            "an index on {} needs 1 to {MAX_COLUMNS} columns, got {}",
            spec.table,
            spec.columns.len()
        )));
    }
    let columns: Vec<String> = spec
        .columns
        .iter()
        .map(|c| checked_ident("column", c).map(quote))
        .collect::<Result<_, _>>()?;
    Ok(format!(
        "CREATE INDEX ON {table} USING btree ({})",
        columns.join(", ")
    ))
}

/// The highest `$n` in `statement` (outside quotes is good enough: a `$n`
/// inside a literal only adds a NULL argument the server then refuses).
fn placeholders(statement: &str) -> usize {
    let bytes = statement.as_bytes();
    let mut max = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        if bytes.get(i) == Some(&b'$') {
            let digits: String = bytes
                .get(i + 1..)
                .unwrap_or_default()
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .map(|b| char::from(*b))
                .collect();
            if let Ok(n) = digits.parse::<usize>() {
                max = max.max(n);
            }
            i += 1 + digits.len();
        } else {
            i += 1;
        }
    }
    max
}

/// Index names anywhere in an EXPLAIN JSON plan.
fn indexes_used(plan: &serde_json::Value, out: &mut Vec<String>) {
    match plan {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if k == "Index Name"
                    && let Some(name) = v.as_str()
                    && !out.iter().any(|n| n == name)
                {
                    out.push(name.to_string());
                }
                indexes_used(v, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| indexes_used(v, out)),
        _ => {}
    }
}

/// One statement without results, boxed where its lifetimes are named.
fn exec<'c>(conn: &'c mut PgConnection, sql: &'c str) -> BoxFuture<'c, Result<(), sqlx::Error>> {
    Box::pin(async move {
        sqlx::Executor::execute(&mut *conn, sql).await?;
        Ok(())
    })
}

/// Creates a hypothetical index; its relid and name.
fn create_hypothetical<'c>(
    conn: &'c mut PgConnection,
    sql: String,
) -> BoxFuture<'c, Result<(i64, String, i64), sqlx::Error>> {
    Box::pin(async move {
        sqlx::query_as(
            "SELECT indexrelid::int8, indexname::text, \
             hypopg_relation_size(indexrelid)::int8 FROM hypopg_create_index($1)",
        )
        .bind(sql)
        .fetch_one(&mut *conn)
        .await
    })
}

/// The one row `sql` (a `PREPARE` then an `EXPLAIN (FORMAT JSON)`, sent
/// together) returns: the plan.
fn explain<'c>(
    conn: &'c mut PgConnection,
    sql: String,
) -> BoxFuture<'c, Result<serde_json::Value, sqlx::Error>> {
    Box::pin(async move {
        use sqlx::Row as _;
        // No arguments: the simple query protocol, both statements in one
        // round trip.
        let rows = sqlx::Executor::fetch_all(&mut *conn, sql.as_str()).await?;
        let row = rows.first().ok_or(sqlx::Error::RowNotFound)?;
        row.try_get::<serde_json::Value, _>(0)
    })
}

/// Puts the hypothetical indexes in place (after a reset) and forces
/// generic plans; the caller cleans up whatever the outcome.
async fn set_up(
    conn: &mut PgConnection,
    specs: &[IndexSpec],
) -> Result<Result<Vec<HypotheticalIndex>, Error>, sqlx::Error> {
    exec(
        conn,
        "SELECT hypopg_reset(); SET plan_cache_mode = force_generic_plan",
    )
    .await?;
    let mut hypothetical = Vec::with_capacity(specs.len());
    for spec in specs {
        let sql = match index_sql(spec) {
            Ok(sql) => sql,
            Err(e) => return Ok(Err(e)),
        };
        let (_, name, size) = create_hypothetical(conn, sql).await?;
        hypothetical.push(HypotheticalIndex {
            spec: spec.clone(),
            name,
            size_bytes: u64::try_from(size).unwrap_or(0),
        });
    }
    Ok(Ok(hypothetical))
}

/// Plans one statement with what [`set_up`] put in place, in one round
/// trip: `PREPARE <name> AS <statement>; EXPLAIN (FORMAT JSON) EXECUTE
/// <name>(NULL, ...)`. The statement passed the classifier as exactly one
/// read, and the session is read-only. Each plan gets its own name (a
/// cached generic plan would ignore indexes added later);
/// [`clean_up`] deallocates them all.
async fn plan_one(
    conn: &mut PgConnection,
    statement: &str,
    n: usize,
    hypothetical: &[HypotheticalIndex],
    with_plan: bool,
) -> Result<Estimate, sqlx::Error> {
    let nulls = vec!["NULL"; placeholders(statement)].join(", ");
    let args = if nulls.is_empty() {
        String::new()
    } else {
        format!("({nulls})")
    };
    let sql = format!(
        "PREPARE {PREPARED}_{n} AS {statement};\nEXPLAIN (FORMAT JSON) EXECUTE {PREPARED}_{n}{args}"
    );
    let json = explain(conn, sql).await?;
    let top = json
        .get(0)
        .and_then(|p| p.get("Plan"))
        .cloned()
        .unwrap_or_default();
    let number = |key: &str| {
        top.get(key)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0)
    };
    let mut used = Vec::new();
    indexes_used(&top, &mut used);
    Ok(Estimate {
        total_cost: number("Total Cost"),
        startup_cost: number("Startup Cost"),
        plan_rows: number("Plan Rows"),
        indexes_used: used,
        plan_json: if with_plan {
            json.to_string()
        } else {
            String::new()
        },
        hypothetical: hypothetical.to_vec(),
    })
}

/// Leaves the session as it was: no prepared statement, the default plan
/// cache mode, no hypothetical index. Errors are ignored (a broken session
/// is dropped by the caller).
async fn clean_up(conn: &mut PgConnection) {
    // One round trip: every prepared statement this module named, the
    // plan cache mode, the hypothetical indexes.
    let _ = exec(
        conn,
        "DO $warden$ DECLARE n text; BEGIN \
         FOR n IN SELECT name FROM pg_prepared_statements \
             WHERE from_sql AND name LIKE 'warden\\_whatif\\_%' LOOP \
             EXECUTE format('DEALLOCATE %I', n); \
         END LOOP; END $warden$; \
         RESET plan_cache_mode; SELECT hypopg_reset()",
    )
    .await;
}

/// Most statements per batch call.
pub const MAX_BATCH: usize = 2_000;

/// A statement that passed the checks (with its operation), or why it did
/// not.
type Prepared<'s> = Result<(&'s str, String), Error>;

impl HostState {
    /// `planner.explain-generic` without the wasm boundary.
    pub async fn planner_explain_generic(
        &mut self,
        target: &str,
        statement: &str,
        specs: Vec<IndexSpec>,
    ) -> Result<Estimate, Error> {
        let mut out = self
            .planner_explain_batch(target, &[statement.to_owned()], specs, true)
            .await?;
        out.pop()
            .unwrap_or_else(|| Err(Error::Other("no estimate".into())))
    }

    /// `planner.explain-generic-batch` without the wasm boundary: the
    /// hypothetical indexes are created once, then each statement is
    /// checked (a read, granted) and planned on its own; a statement's
    /// failure is its own result. The call fails as a whole only for what
    /// concerns every statement (target, grant, limits, the session, the
    /// deadline).
    pub async fn planner_explain_batch(
        &mut self,
        target: &str,
        statements: &[String],
        specs: Vec<IndexSpec>,
        with_plans: bool,
    ) -> Result<Vec<Result<Estimate, Error>>, Error> {
        let env = self.run_env()?;
        let n = statements.len();
        at_most(n, MAX_BATCH, || format!("{n} statements in one call"))?;
        let n = specs.len();
        at_most(n, MAX_HYPOTHETICAL, || format!("{n} hypothetical indexes"))?;
        // Each statement on its own: a read, or its own error.
        let checked: Vec<Prepared<'_>> = statements
            .iter()
            .map(|statement| {
                let c = classify_statement(&env, target, statement, &[])?;
                let class = c.class;
                check_target(env.scope(), TargetCall::Sql { target, class })?;
                if c.class != CapabilityClass::Read {
                    return Err(invalid(format!(
                        "`{}` is a {} statement: only reads are planned",
                        c.operation, c.class
                    )));
                }
                Ok((statement.as_str(), c.operation))
            })
            .collect();
        let operation = match checked.as_slice() {
            [Ok((_, operation))] => operation.clone(),
            [Err(e)] => return Err(super::super::call::redact(&env, e.clone())),
            _ => format!("{} statements", statements.len()),
        };
        let name = if statements.len() == 1 {
            "planner.explain_generic"
        } else {
            "planner.explain_generic_batch"
        };
        let class = CapabilityClass::Read;
        let call = Call::db(
            name,
            &operation,
            target,
            class,
            TargetCall::Sql { target, class },
        );
        let (checked, specs) = (&checked, &specs);
        self.call(call, |host, cx| {
            Box::pin(async move {
                let (env, grant) = (cx.env, cx.grant);
                if cx.target.kind != crate::capability::TargetKind::Postgres {
                    return Err(invalid(format!(
                        "target `{target}` is a {} database: what-if planning needs PostgreSQL \
                         with HypoPG",
                        cx.target.kind
                    )));
                }
                let session = super::session(&mut host.sql, env, cx.target, grant, class).await?;
                session
                    .set_read_only(true)
                    .await
                    .map_err(|e| db_error(env, grant, e))?;
                let Conn::Postgres(conn) = &mut session.conn else {
                    return Err(invalid("what-if planning needs a PostgreSQL target"));
                };
                let work = async {
                    let hypothetical = match set_up(conn, specs).await? {
                        Ok(h) => h,
                        Err(e) => return Ok(Err(e)),
                    };
                    let mut out = Vec::with_capacity(checked.len());
                    for (n, statement) in checked.iter().enumerate() {
                        out.push(match statement {
                            Err(e) => Err(e.clone()),
                            Ok((text, _)) => {
                                match plan_one(conn, text, n, &hypothetical, with_plans).await {
                                    Ok(estimate) => Ok(estimate),
                                    Err(e) => Err(planning_error(env, grant, e)),
                                }
                            }
                        });
                    }
                    Ok(Ok(out))
                };
                let outcome = tokio::time::timeout(cx.left(), work).await;
                clean_up(conn).await;
                match outcome {
                    Ok(Ok(result)) => result,
                    Ok(Err(e)) => Err(planning_error(env, grant, e)),
                    Err(_) => Err(host.sql.timed_out(target, cx.timeout).await),
                }
            })
        })
        .await
    }
}

/// A database error of the what-if sequence, with a hint when HypoPG is
/// missing.
fn planning_error(
    env: &crate::host::RunEnv,
    grant: &crate::policy::Grant,
    e: sqlx::Error,
) -> Error {
    let missing = matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("42883"));
    let e = db_error(env, grant, e);
    if missing {
        Error::Other(format!(
            "{}: is the hypopg extension installed in the target's database? \
             (CREATE EXTENSION hypopg)",
            crate::host::wit::error_text(&e)
        ))
    } else {
        e
    }
}

impl Host for HostState {
    async fn explain_generic(
        &mut self,
        target: String,
        statement: String,
        hypothetical: Vec<IndexSpec>,
    ) -> wasmtime::Result<Result<Estimate, Error>> {
        Ok(self
            .planner_explain_generic(&target, &statement, hypothetical)
            .await)
    }

    async fn explain_generic_batch(
        &mut self,
        target: String,
        statements: Vec<String>,
        hypothetical: Vec<IndexSpec>,
        with_plans: bool,
    ) -> wasmtime::Result<Result<Vec<Result<Estimate, Error>>, Error>> {
        Ok(self
            .planner_explain_batch(&target, &statements, hypothetical, with_plans)
            .await)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn spec(table: &str, columns: &[&str]) -> IndexSpec {
        IndexSpec {
            table: table.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn index_text_quotes_every_identifier() {
        assert_eq!(
            index_sql(&spec("public.orders", &["customer_id", "created_at"])).unwrap(),
            "CREATE INDEX ON \"public\".\"orders\" USING btree (\"customer_id\", \"created_at\")"
        );
        // Hostile names stay identifiers.
        assert_eq!(
            index_sql(&spec("t", &["a\"); DROP TABLE t; --"])).unwrap(),
            "CREATE INDEX ON \"t\" USING btree (\"a\"\"); DROP TABLE t; --\")"
        );
        assert!(index_sql(&spec("t", &[])).is_err());
        assert!(index_sql(&spec("", &["a"])).is_err());
        assert!(index_sql(&spec("t", &["a\0b"])).is_err());
        assert!(index_sql(&spec("t", &[&"x".repeat(64)])).is_err());
    }

    #[test]
    fn placeholders_are_counted() {
        assert_eq!(placeholders("SELECT 1"), 0);
        assert_eq!(placeholders("SELECT * FROM t WHERE a = $1 AND b > $3"), 3);
        assert_eq!(placeholders("SELECT $12, $2"), 12);
        assert_eq!(placeholders("SELECT '$' || x FROM t"), 0);
    }

    #[test]
    fn index_names_are_found_anywhere_in_a_plan() {
        let plan = serde_json::json!({
            "Node Type": "Nested Loop",
            "Plans": [
                {"Node Type": "Index Scan", "Index Name": "<13543>btree_t_a"},
                {"Node Type": "Bitmap Heap Scan", "Plans": [{"Index Name": "t_pkey"}]},
                {"Node Type": "Index Scan", "Index Name": "t_pkey"}
            ]
        });
        let mut used = Vec::new();
        indexes_used(&plan, &mut used);
        assert_eq!(used, ["<13543>btree_t_a", "t_pkey"]);
    }
}
