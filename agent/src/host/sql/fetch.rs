//! Reading rows back within the grant's caps, and binding parameters.
//!
//! A PostgreSQL read that is a plain query runs as a sub-query of a
//! statement that makes the server measure each row first: every value's
//! size (`octet_length`, of the text form where the wire form has no size
//! function of its own) is summed into a row size, and a row larger than
//! `max_result_bytes` comes back with its values NULL, so the agent never
//! receives it. At most `max_rows + 1` rows are asked for. The host's memory
//! for one call thus stays within about twice `max_result_bytes` (the rows
//! kept, plus one row), whatever the statement returns. Column types are
//! checked before the statement runs: a type the capability does not return
//! is refused up front, not after its bytes arrived.

use super::Failure;
use crate::host::bindings::warden::plugin::sql::{Column, RowSet, Value};
use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use sqlx::postgres::{PgArguments, PgConnection, PgRow, PgTypeInfo, PgValueFormat, PgValueRef};
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqliteRow};
use sqlx::{Arguments, Column as _, Executor as _, Row, Statement as _, TypeInfo, ValueRef};
use std::str::FromStr;

/// Row and byte caps for one query.
pub(crate) struct Caps {
    pub(crate) rows: usize,
    pub(crate) bytes: usize,
}

pub(crate) fn value_size(v: &Value) -> usize {
    16 + match v {
        Value::Null | Value::Boolean(_) | Value::Integer(_) | Value::Float(_) => 8,
        Value::Text(s) | Value::Json(s) | Value::Timestamp(s) | Value::Numeric(s) => s.len(),
        Value::Bytes(b) => b.len(),
    }
}

/// How the server measures a value of a type the capability returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    /// A fixed-size type: nothing to measure.
    Fixed,
    /// `octet_length` of the value (text, bytea: the raw size, without
    /// decompressing a TOASTed value).
    Octets,
    /// `octet_length` of the text form (json, jsonb).
    TextForm,
    /// An array: its text form plus a length word per element.
    Array,
    /// `pg_column_size` (numeric: bounded by its precision).
    Datum,
}

/// The measure for a PostgreSQL type name (as sqlx names it), or `None`
/// when the capability does not return the type.
fn measure(type_name: &str) -> Option<Measure> {
    Some(match type_name {
        "BOOL" | "INT2" | "INT4" | "INT8" | "OID" | "FLOAT4" | "FLOAT8" | "\"CHAR\"" | "CHAR"
        | "TIMESTAMPTZ" | "TIMESTAMP" | "DATE" | "TIME" => Measure::Fixed,
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "UNKNOWN" | "CITEXT" | "BYTEA" => Measure::Octets,
        "JSON" | "JSONB" => Measure::TextForm,
        "TEXT[]" | "VARCHAR[]" | "NAME[]" | "INT4[]" | "INT8[]" => Measure::Array,
        "NUMERIC" => Measure::Datum,
        _ => return None,
    })
}

fn unsupported(column: &str, type_name: &str) -> String {
    format!(
        "column `{column}` has type {}, which the sql capability does not return; \
         cast it (e.g. `{column}::text`)",
        type_name.to_lowercase()
    )
}

/// The statement that runs `body` (a plain query) with each row measured by
/// the server: the original columns (NULL when the row is over `caps.bytes`)
/// and the row's size last.
fn measured_query(body: &str, columns: &[(String, Measure)], caps: &Caps) -> String {
    let aliases: Vec<String> = (1..=columns.len()).map(|i| format!("\"c{i}\"")).collect();
    let sizes: Vec<String> = columns
        .iter()
        .zip(&aliases)
        .filter_map(|((_, m), a)| {
            let v = format!("q.{a}");
            match m {
                Measure::Fixed => None,
                Measure::Octets => Some(format!("coalesce(octet_length({v}), 0)::int8")),
                Measure::TextForm => Some(format!("coalesce(octet_length({v}::text), 0)::int8")),
                Measure::Array => Some(format!(
                    "coalesce(octet_length({v}::text) + 12 * cardinality({v}), 0)::int8"
                )),
                Measure::Datum => Some(format!("coalesce(pg_column_size({v}), 0)::int8")),
            }
        })
        .collect();
    let size = if sizes.is_empty() {
        "0::int8".to_string()
    } else {
        sizes.join(" + ")
    };
    let outs: Vec<String> = aliases
        .iter()
        .map(|a| {
            format!(
                "CASE WHEN s.\"warden row bytes\" <= {} THEN s.{a} END",
                caps.bytes
            )
        })
        .collect();
    // OFFSET 0 keeps each level a sub-query of its own, so the statement
    // and the sizes are each computed once per row.
    format!(
        "SELECT {}, s.\"warden row bytes\" FROM (SELECT q.*, ({size}) AS \"warden row bytes\" \
         FROM (SELECT * FROM (\n{body}\n) AS q0 OFFSET 0) AS q({}) OFFSET 0) AS s LIMIT {}",
        outs.join(", "),
        aliases.join(", "),
        caps.rows.saturating_add(1)
    )
}

/// Runs a PostgreSQL read within the caps. `query_len`: the length of the
/// statement's body when it is a plain query (see the module doc); other
/// reads (EXPLAIN, SHOW) return a bounded text and run as they are.
pub(crate) fn pg_fetch<'a>(
    conn: &'a mut PgConnection,
    statement: &'a str,
    query_len: Option<usize>,
    params: Vec<Value>,
    caps: &'a Caps,
) -> BoxFuture<'a, Result<RowSet, Failure>> {
    Box::pin(async move {
        let body = query_len.and_then(|n| statement.get(..n));
        let Some(body) = body else {
            let stream = sqlx::query_with(statement, pg_args(params)?).fetch(&mut *conn);
            return Ok(collect_capped(stream, caps, pg_columns, pg_row).await?);
        };
        let types: Vec<PgTypeInfo> = params.iter().map(pg_type).collect();
        let prepared = conn.prepare_with(body, &types).await?;
        let mut columns = Vec::with_capacity(prepared.columns().len());
        let mut shown = Vec::with_capacity(prepared.columns().len());
        for c in prepared.columns() {
            let type_name = c.type_info().name();
            let m = measure(type_name)
                .ok_or_else(|| Failure::Invalid(unsupported(c.name(), type_name)))?;
            columns.push((c.name().to_string(), m));
            shown.push(Column {
                name: c.name().to_string(),
                type_name: type_name.to_lowercase(),
            });
        }
        if columns.is_empty() {
            let stream = sqlx::query_with(statement, pg_args(params)?).fetch(&mut *conn);
            return Ok(collect_capped(stream, caps, pg_columns, pg_row).await?);
        }
        let wrapped = measured_query(body, &columns, caps);
        let n = columns.len();
        let mut stream = sqlx::query_with(&wrapped, pg_args(params)?).fetch(&mut *conn);
        let mut set = RowSet {
            columns: shown,
            rows: Vec::new(),
            truncated: false,
        };
        let mut bytes = 0usize;
        while let Some(row) = stream.try_next().await? {
            if set.rows.len() >= caps.rows || bytes >= caps.bytes {
                set.truncated = true;
                break;
            }
            let measured: i64 = row.try_get(n)?;
            if usize::try_from(measured).map_or(true, |m| m > caps.bytes) {
                // Its values were not sent.
                set.truncated = true;
                break;
            }
            let values = pg_values(&row, n)?;
            bytes += values.iter().map(value_size).sum::<usize>();
            set.rows.push(values);
        }
        Ok(set)
    })
}

pub(crate) async fn sqlite_fetch(
    conn: &mut SqliteConnection,
    statement: &str,
    params: Vec<Value>,
    caps: &Caps,
) -> Result<RowSet, sqlx::Error> {
    let stream = sqlx::query_with(statement, sqlite_args(params)?).fetch(&mut *conn);
    collect_capped(stream, caps, sqlite_columns, sqlite_row).await
}

/// Reads rows until the stream ends or a cap is reached (then `truncated`).
async fn collect_capped<R, S>(
    mut stream: S,
    caps: &Caps,
    columns: fn(&R) -> Vec<Column>,
    decode: fn(&R) -> Result<Vec<Value>, sqlx::Error>,
) -> Result<RowSet, sqlx::Error>
where
    S: futures_util::Stream<Item = Result<R, sqlx::Error>> + Unpin,
{
    let mut set = RowSet {
        columns: Vec::new(),
        rows: Vec::new(),
        truncated: false,
    };
    let mut bytes = 0usize;
    while let Some(row) = stream.try_next().await? {
        if set.columns.is_empty() {
            set.columns = columns(&row);
        }
        if set.rows.len() >= caps.rows || bytes >= caps.bytes {
            set.truncated = true;
            break;
        }
        let values = decode(&row)?;
        bytes += values.iter().map(value_size).sum::<usize>();
        set.rows.push(values);
    }
    Ok(set)
}

fn sqlite_columns(row: &SqliteRow) -> Vec<Column> {
    row.columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_string(),
            type_name: c.type_info().name().to_string(),
        })
        .collect()
}

/// The type a parameter is bound as (what `pg_args` sends).
fn pg_type(v: &Value) -> PgTypeInfo {
    use sqlx::Type;
    match v {
        Value::Null => PgNull::type_info(),
        Value::Boolean(_) => <bool as Type<sqlx::Postgres>>::type_info(),
        Value::Integer(_) => <i64 as Type<sqlx::Postgres>>::type_info(),
        Value::Float(_) => <f64 as Type<sqlx::Postgres>>::type_info(),
        Value::Text(_) => <String as Type<sqlx::Postgres>>::type_info(),
        Value::Bytes(_) => <Vec<u8> as Type<sqlx::Postgres>>::type_info(),
        Value::Json(_) => <serde_json::Value as Type<sqlx::Postgres>>::type_info(),
        Value::Timestamp(_) => <chrono::DateTime<chrono::Utc> as Type<sqlx::Postgres>>::type_info(),
        Value::Numeric(_) => <rust_decimal::Decimal as Type<sqlx::Postgres>>::type_info(),
    }
}

/// A json or jsonb value's text: binary jsonb is a version byte (1) and the
/// text.
fn json_text(raw: PgValueRef<'_>, type_name: &str) -> Result<String, sqlx::Error> {
    let binary = raw.format() == PgValueFormat::Binary;
    let bytes = raw.as_bytes().map_err(sqlx::Error::Decode)?;
    let text = match (type_name, binary, bytes.split_first()) {
        ("JSONB", true, Some((1, rest))) => rest,
        ("JSONB", true, _) => {
            return Err(sqlx::Error::Decode(
                "unsupported jsonb binary version".into(),
            ));
        }
        _ => bytes,
    };
    String::from_utf8(text.to_vec()).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// A NULL whose type PostgreSQL infers from the statement.
struct PgNull;

impl sqlx::Type<sqlx::Postgres> for PgNull {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(sqlx::postgres::types::Oid(0))
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for PgNull {
    fn encode_by_ref(
        &self,
        _buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        Ok(sqlx::encode::IsNull::Yes)
    }
}

fn bad_param(i: usize, what: &str) -> sqlx::Error {
    sqlx::Error::Encode(format!("parameter ${}: {what}", i + 1).into())
}

pub(crate) fn pg_args(params: Vec<Value>) -> Result<PgArguments, sqlx::Error> {
    let mut args = PgArguments::default();
    for (i, p) in params.into_iter().enumerate() {
        let r = match p {
            Value::Null => args.add(PgNull),
            Value::Boolean(b) => args.add(b),
            Value::Integer(n) => args.add(n),
            Value::Float(f) => args.add(f),
            Value::Text(s) => args.add(s),
            Value::Bytes(b) => args.add(b),
            Value::Json(s) => {
                let v: serde_json::Value = serde_json::from_str(&s)
                    .map_err(|e| bad_param(i, &format!("invalid JSON: {e}")))?;
                args.add(v)
            }
            Value::Timestamp(s) => {
                let t = chrono::DateTime::parse_from_rfc3339(&s)
                    .map_err(|e| bad_param(i, &format!("invalid RFC 3339 timestamp: {e}")))?;
                args.add(t.with_timezone(&chrono::Utc))
            }
            Value::Numeric(s) => {
                let d = rust_decimal::Decimal::from_str(&s)
                    .map_err(|e| bad_param(i, &format!("invalid numeric: {e}")))?;
                args.add(d)
            }
        };
        r.map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

pub(crate) fn sqlite_args(params: Vec<Value>) -> Result<SqliteArguments<'static>, sqlx::Error> {
    let mut args = SqliteArguments::default();
    for p in params {
        let r = match p {
            Value::Null => args.add(Option::<i64>::None),
            Value::Boolean(b) => args.add(b),
            Value::Integer(n) => args.add(n),
            Value::Float(f) => args.add(f),
            Value::Text(s) | Value::Json(s) | Value::Timestamp(s) | Value::Numeric(s) => {
                args.add(s)
            }
            Value::Bytes(b) => args.add(b),
        };
        r.map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

fn pg_columns(row: &PgRow) -> Vec<Column> {
    row.columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_string(),
            type_name: c.type_info().name().to_lowercase(),
        })
        .collect()
}

fn pg_row(row: &PgRow) -> Result<Vec<Value>, sqlx::Error> {
    pg_values(row, row.len())
}

/// The first `n` values of a row.
fn pg_values(row: &PgRow, n: usize) -> Result<Vec<Value>, sqlx::Error> {
    let mut out = Vec::with_capacity(n);
    for (i, col) in row.columns().iter().enumerate().take(n) {
        if row.try_get_raw(i)?.is_null() {
            out.push(Value::Null);
            continue;
        }
        let ty = col.type_info().name().to_string();
        let ty = ty.as_str();
        let v = match ty {
            "BOOL" => Value::Boolean(row.try_get(i)?),
            "INT2" => Value::Integer(i64::from(row.try_get::<i16, _>(i)?)),
            "INT4" => Value::Integer(i64::from(row.try_get::<i32, _>(i)?)),
            "INT8" => Value::Integer(row.try_get(i)?),
            "OID" => Value::Integer(i64::from(
                row.try_get::<sqlx::postgres::types::Oid, _>(i)?.0,
            )),
            "FLOAT4" => Value::Float(f64::from(row.try_get::<f32, _>(i)?)),
            "FLOAT8" => Value::Float(row.try_get(i)?),
            "NUMERIC" => Value::Numeric(row.try_get::<rust_decimal::Decimal, _>(i)?.to_string()),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "UNKNOWN" | "CITEXT" => {
                Value::Text(row.try_get(i)?)
            }
            "\"CHAR\"" | "CHAR" => {
                Value::Text(char::from(row.try_get::<i8, _>(i)?.to_ne_bytes()[0]).to_string())
            }
            // The text as sent, not through a parsed document (which takes
            // many times its size in memory).
            "JSON" | "JSONB" => Value::Json(json_text(row.try_get_raw(i)?, ty)?),
            "BYTEA" => Value::Bytes(row.try_get(i)?),
            "TIMESTAMPTZ" => Value::Timestamp(
                row.try_get::<chrono::DateTime<chrono::Utc>, _>(i)?
                    .to_rfc3339(),
            ),
            "TIMESTAMP" => Value::Timestamp(
                row.try_get::<chrono::NaiveDateTime, _>(i)?
                    .and_utc()
                    .to_rfc3339(),
            ),
            "DATE" => Value::Text(row.try_get::<chrono::NaiveDate, _>(i)?.to_string()),
            "TIME" => Value::Text(row.try_get::<chrono::NaiveTime, _>(i)?.to_string()),
            "TEXT[]" | "VARCHAR[]" | "NAME[]" => {
                Value::Json(serde_json::Value::from(row.try_get::<Vec<String>, _>(i)?).to_string())
            }
            "INT4[]" => {
                Value::Json(serde_json::Value::from(row.try_get::<Vec<i32>, _>(i)?).to_string())
            }
            "INT8[]" => {
                Value::Json(serde_json::Value::from(row.try_get::<Vec<i64>, _>(i)?).to_string())
            }
            other => {
                return Err(sqlx::Error::ColumnDecode {
                    index: col.name().to_string(),
                    source: format!(
                        "type {other} is not returned by the sql capability; cast the column (e.g. `{}::text`)",
                        col.name()
                    )
                    .into(),
                });
            }
        };
        out.push(v);
    }
    Ok(out)
}

fn sqlite_row(row: &SqliteRow) -> Result<Vec<Value>, sqlx::Error> {
    let mut out = Vec::with_capacity(row.len());
    for i in 0..row.len() {
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            out.push(Value::Null);
            continue;
        }
        let storage = raw.type_info().name().to_string();
        let v = match storage.as_str() {
            "INTEGER" | "BOOLEAN" => Value::Integer(row.try_get_unchecked(i)?),
            "REAL" => Value::Float(row.try_get_unchecked(i)?),
            "BLOB" => Value::Bytes(row.try_get_unchecked(i)?),
            _ => Value::Text(row.try_get_unchecked(i)?),
        };
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn the_measured_query_wraps_the_body_on_lines_of_its_own() {
        let caps = Caps {
            rows: 10,
            bytes: 1000,
        };
        let q = measured_query(
            "SELECT a, b FROM t -- trailing comment",
            &[("a".into(), Measure::Fixed), ("b".into(), Measure::Octets)],
            &caps,
        );
        assert!(
            q.contains("(\nSELECT a, b FROM t -- trailing comment\n)"),
            "{q}"
        );
        assert!(
            q.contains("coalesce(octet_length(q.\"c2\"), 0)::int8"),
            "{q}"
        );
        assert!(
            !q.contains("q.\"c1\")"),
            "a fixed-size column is not measured: {q}"
        );
        assert!(
            q.contains("CASE WHEN s.\"warden row bytes\" <= 1000 THEN s.\"c1\" END"),
            "{q}"
        );
        assert!(q.ends_with("LIMIT 11"), "{q}");
    }

    #[test]
    fn unsupported_types_are_named() {
        assert_eq!(measure("XML"), None);
        assert_eq!(measure("TEXT"), Some(Measure::Octets));
        assert_eq!(measure("JSONB"), Some(Measure::TextForm));
        assert!(unsupported("doc", "XML").contains("column `doc` has type xml"));
    }
}
