//! SQL against a target (`warden:plugin/sql`): [`Sql`] for the calls,
//! [`Rows`] and [`Row`] for typed, by-name access to results.
//!
//! Values travel as typed parameters (`$1` for PostgreSQL, `?`/`?1` for
//! SQLite), never spliced into the statement; identifiers are quoted by the
//! host with [`Sql::quote_ident`].

use core::fmt;

use crate::bindings::warden::plugin::sql as wit;
use crate::{CapabilityClass, Error};

pub use wit::{Column, Execution, Notice, NoticedExecution, Outcome, RowSet, Value};

/// SQL calls on one target. Get one from
/// [`Context::sql`](crate::Context::sql) or
/// [`Context::sql_on`](crate::Context::sql_on).
#[derive(Clone, Copy, Debug)]
pub struct Sql<'a> {
    target: &'a str,
}

impl<'a> Sql<'a> {
    /// SQL calls on `target`.
    pub fn new(target: &'a str) -> Self {
        Sql { target }
    }

    /// The target these calls go to.
    pub fn target(&self) -> &'a str {
        self.target
    }

    /// Runs one read statement; all rows up to the grant's limit.
    pub fn query(&self, statement: &str, params: &[Value]) -> Result<Rows, Error> {
        self.query_limit(statement, params, 0)
    }

    /// Runs one read statement, returning at most `max_rows` rows (0: the
    /// grant's limit). [`Rows::truncated`] tells whether rows were left out.
    pub fn query_limit(
        &self,
        statement: &str,
        params: &[Value],
        max_rows: u32,
    ) -> Result<Rows, Error> {
        wit::query(self.target, statement, params, max_rows).map(Rows::from)
    }

    /// Runs one statement of any class the grant allows. In dry-run a
    /// statement above `read` comes back with [`Outcome::Planned`].
    pub fn execute(&self, statement: &str, params: &[Value]) -> Result<Execution, Error> {
        wit::execute(self.target, statement, params)
    }

    /// [`Sql::execute`], with the notices and warnings the server sent
    /// while the statement ran (since 0.1.6). A PostgreSQL `VACUUM` or
    /// `ANALYZE` of a table the role does not own "succeeds" with only a
    /// `WARNING: skipping ...`: check [`NoticedExecution::warnings`].
    pub fn execute_with_notices(
        &self,
        statement: &str,
        params: &[Value],
    ) -> Result<NoticedExecution, Error> {
        wit::execute_with_notices(self.target, statement, params)
    }

    /// [`Sql::query`], with the notices the server sent while it ran
    /// (since 0.1.6), in order.
    pub fn query_with_notices(
        &self,
        statement: &str,
        params: &[Value],
        max_rows: u32,
    ) -> Result<(Rows, Vec<Notice>), Error> {
        wit::query_with_notices(self.target, statement, params, max_rows)
            .map(|r| (Rows::from(r.rows), r.notices))
    }

    /// Classifies a statement the way the host would, without running it.
    pub fn classify(&self, statement: &str) -> Result<CapabilityClass, Error> {
        wit::classify(statement)
    }

    /// Quotes an identifier for the target's dialect (host-side).
    pub fn quote_ident(&self, ident: &str) -> Result<String, Error> {
        wit::quote_ident(self.target, ident)
    }

    /// Quotes each part and joins them with `.`: `"public"."orders"`.
    pub fn qualified_name(&self, parts: &[&str]) -> Result<String, Error> {
        let quoted = parts
            .iter()
            .map(|part| self.quote_ident(part))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(quoted.join("."))
    }
}

impl Execution {
    /// True when the statement ran.
    pub fn is_executed(&self) -> bool {
        self.outcome == Outcome::Executed
    }

    /// True when dry-run recorded it as planned instead.
    pub fn is_planned(&self) -> bool {
        self.outcome == Outcome::Planned
    }
}

impl NoticedExecution {
    /// The notices of severity `WARNING` or `ERROR`.
    pub fn warnings(&self) -> impl Iterator<Item = &Notice> {
        self.notices.iter().filter(|n| n.is_warning())
    }
}

impl Notice {
    /// True for a `WARNING` (or an `ERROR` sent as a notice).
    pub fn is_warning(&self) -> bool {
        matches!(self.severity.as_str(), "WARNING" | "ERROR")
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity, self.message)
    }
}

/// The rows a query returned.
#[derive(Clone, Debug)]
pub struct Rows {
    columns: Vec<Column>,
    rows: Vec<Vec<Value>>,
    truncated: bool,
}

impl From<RowSet> for Rows {
    fn from(set: RowSet) -> Self {
        Rows {
            columns: set.columns,
            rows: set.rows,
            truncated: set.truncated,
        }
    }
}

impl Rows {
    /// The result columns.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// True when the host stopped at the row or byte cap.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Row `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<Row<'_>> {
        self.rows.get(index).map(|values| Row {
            columns: &self.columns,
            values,
        })
    }

    /// The first row, if any.
    pub fn first(&self) -> Option<Row<'_>> {
        self.get(0)
    }

    /// The first row, or an error saying the query returned none.
    pub fn one(&self) -> Result<Row<'_>, Error> {
        self.first()
            .ok_or_else(|| Error::other("query returned no rows, expected one"))
    }

    /// The rows, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Row<'_>> {
        self.rows.iter().map(|values| Row {
            columns: &self.columns,
            values,
        })
    }
}

impl<'a> IntoIterator for &'a Rows {
    type Item = Row<'a>;
    type IntoIter = Box<dyn ExactSizeIterator<Item = Row<'a>> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// A column, by name (`"n_dead_tup"`) or by position (`0`).
pub trait ColumnRef: Copy {
    /// The column's position, or an error naming it.
    fn position(self, columns: &[Column]) -> Result<usize, Error>;
    /// How to name the column in an error.
    fn label(self, columns: &[Column]) -> String;
}

impl ColumnRef for &str {
    fn position(self, columns: &[Column]) -> Result<usize, Error> {
        columns.iter().position(|c| c.name == self).ok_or_else(|| {
            let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            Error::other(format!(
                "no column `{self}` in the result (columns: {})",
                names.join(", ")
            ))
        })
    }

    fn label(self, _columns: &[Column]) -> String {
        format!("`{self}`")
    }
}

impl ColumnRef for usize {
    fn position(self, columns: &[Column]) -> Result<usize, Error> {
        if self < columns.len() {
            Ok(self)
        } else {
            Err(Error::other(format!(
                "no column {self} in the result (it has {})",
                columns.len()
            )))
        }
    }

    fn label(self, columns: &[Column]) -> String {
        match columns.get(self) {
            Some(c) => format!("{self} (`{}`)", c.name),
            None => self.to_string(),
        }
    }
}

/// One row, with getters by column name or position. The numeric getters
/// accept integers, floats, `numeric` and numeric text; the `get_opt_*`
/// variants return `None` for SQL NULL, the others an error naming the column.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    columns: &'a [Column],
    values: &'a [Value],
}

impl<'a> Row<'a> {
    /// The result columns.
    pub fn columns(&self) -> &'a [Column] {
        self.columns
    }

    /// The values, in column order.
    pub fn values(&self) -> &'a [Value] {
        self.values
    }

    /// A raw value.
    pub fn value(&self, column: impl ColumnRef) -> Result<&'a Value, Error> {
        let index = column.position(self.columns)?;
        self.values.get(index).ok_or_else(|| {
            Error::other(format!(
                "row has no value for column {}",
                column.label(self.columns)
            ))
        })
    }

    /// True when the value is SQL NULL.
    pub fn is_null(&self, column: impl ColumnRef) -> Result<bool, Error> {
        Ok(matches!(self.value(column)?, Value::Null))
    }

    fn convert<T>(
        &self,
        column: impl ColumnRef,
        convert: impl FnOnce(&'a Value) -> Result<Option<T>, String>,
    ) -> Result<Option<T>, Error> {
        convert(self.value(column)?)
            .map_err(|e| Error::other(format!("column {}: {e}", column.label(self.columns))))
    }

    fn non_null<T>(
        &self,
        column: impl ColumnRef,
        value: Result<Option<T>, Error>,
    ) -> Result<T, Error> {
        value?.ok_or_else(|| Error::other(format!("column {} is NULL", column.label(self.columns))))
    }

    /// An integer (also from a whole float or numeric text).
    pub fn get_i64(&self, column: impl ColumnRef) -> Result<i64, Error> {
        self.non_null(column, self.get_opt_i64(column))
    }

    /// An integer or NULL.
    pub fn get_opt_i64(&self, column: impl ColumnRef) -> Result<Option<i64>, Error> {
        self.convert(column, value_to_i64)
    }

    /// A non-negative integer.
    pub fn get_u64(&self, column: impl ColumnRef) -> Result<u64, Error> {
        self.non_null(column, self.get_opt_u64(column))
    }

    /// A non-negative integer or NULL.
    pub fn get_opt_u64(&self, column: impl ColumnRef) -> Result<Option<u64>, Error> {
        self.convert(column, |v| {
            value_to_i64(v)?
                .map(|n| {
                    u64::try_from(n)
                        .map_err(|_| format!("expected a non-negative integer, got {n}"))
                })
                .transpose()
        })
    }

    /// A float (also from an integer or numeric text).
    pub fn get_f64(&self, column: impl ColumnRef) -> Result<f64, Error> {
        self.non_null(column, self.get_opt_f64(column))
    }

    /// A float or NULL.
    pub fn get_opt_f64(&self, column: impl ColumnRef) -> Result<Option<f64>, Error> {
        self.convert(column, value_to_f64)
    }

    /// A boolean (also from 0/1 and `t`/`f`/`true`/`false` text).
    pub fn get_bool(&self, column: impl ColumnRef) -> Result<bool, Error> {
        self.non_null(column, self.get_opt_bool(column))
    }

    /// A boolean or NULL.
    pub fn get_opt_bool(&self, column: impl ColumnRef) -> Result<Option<bool>, Error> {
        self.convert(column, value_to_bool)
    }

    /// Text: text, JSON, timestamps and numerics as they are, numbers and
    /// booleans formatted, bytes when they are UTF-8.
    pub fn get_str(&self, column: impl ColumnRef) -> Result<String, Error> {
        self.non_null(column, self.get_opt_str(column))
    }

    /// Text or NULL.
    pub fn get_opt_str(&self, column: impl ColumnRef) -> Result<Option<String>, Error> {
        self.convert(column, value_to_string)
    }

    /// Bytes (text as its UTF-8 bytes).
    pub fn get_bytes(&self, column: impl ColumnRef) -> Result<&'a [u8], Error> {
        self.non_null(column, self.get_opt_bytes(column))
    }

    /// Bytes or NULL.
    pub fn get_opt_bytes(&self, column: impl ColumnRef) -> Result<Option<&'a [u8]>, Error> {
        self.convert(column, |v| match v {
            Value::Null => Ok(None),
            Value::Bytes(b) => Ok(Some(b.as_slice())),
            Value::Text(s) | Value::Json(s) => Ok(Some(s.as_bytes())),
            other => Err(format!("expected bytes, got {}", other.type_name())),
        })
    }
}

impl Value {
    /// The case's name: `null`, `boolean`, `integer`, `float`, `text`,
    /// `bytes`, `json`, `timestamp`, `numeric`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Boolean(_) => "boolean",
            Value::Integer(_) => "integer",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::Json(_) => "json",
            Value::Timestamp(_) => "timestamp",
            Value::Numeric(_) => "numeric",
        }
    }

    /// True for SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// `NULL`, the number, the text as is, bytes as `\x` hex.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Integer(n) => write!(f, "{n}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(s) | Value::Json(s) | Value::Timestamp(s) | Value::Numeric(s) => {
                f.write_str(s)
            }
            Value::Bytes(bytes) => {
                f.write_str("\\x")?;
                bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

macro_rules! value_from {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from($v: $t) -> Self {
                $e
            }
        }
    )*};
}

value_from!(
    bool => |v| Value::Boolean(v),
    i64 => |v| Value::Integer(v),
    i32 => |v| Value::Integer(i64::from(v)),
    u32 => |v| Value::Integer(i64::from(v)),
    f64 => |v| Value::Float(v),
    String => |v| Value::Text(v),
    &str => |v| Value::Text(v.to_owned()),
    &String => |v| Value::Text(v.clone()),
    Vec<u8> => |v| Value::Bytes(v),
    &[u8] => |v| Value::Bytes(v.to_vec()),
);

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

fn parse_i64_text(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Ok(n);
    }
    match t.parse::<f64>() {
        Ok(x) => f64_to_i64(x),
        Err(_) => Err(format!("expected an integer, got {s:?}")),
    }
}

fn f64_to_i64(x: f64) -> Result<i64, String> {
    // i64::MAX as f64 rounds up to 2^63, hence the strict upper bound.
    if x.is_finite() && x.fract() == 0.0 && x >= i64::MIN as f64 && x < i64::MAX as f64 {
        #[allow(clippy::cast_possible_truncation)]
        Ok(x as i64)
    } else {
        Err(format!("expected an integer, got {x}"))
    }
}

fn value_to_i64(v: &Value) -> Result<Option<i64>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Integer(n) => Ok(Some(*n)),
        Value::Float(x) => f64_to_i64(*x).map(Some),
        Value::Numeric(s) | Value::Text(s) => parse_i64_text(s).map(Some),
        Value::Boolean(b) => Ok(Some(i64::from(*b))),
        other => Err(format!("expected an integer, got {}", other.type_name())),
    }
}

fn value_to_f64(v: &Value) -> Result<Option<f64>, String> {
    match v {
        Value::Null => Ok(None),
        #[allow(clippy::cast_precision_loss)]
        Value::Integer(n) => Ok(Some(*n as f64)),
        Value::Float(x) => Ok(Some(*x)),
        Value::Numeric(s) | Value::Text(s) => s
            .trim()
            .parse::<f64>()
            .map(Some)
            .map_err(|_| format!("expected a number, got {s:?}")),
        other => Err(format!("expected a number, got {}", other.type_name())),
    }
}

fn value_to_bool(v: &Value) -> Result<Option<bool>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Boolean(b) => Ok(Some(*b)),
        Value::Integer(0) => Ok(Some(false)),
        Value::Integer(1) => Ok(Some(true)),
        Value::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "1" | "yes" | "on" => Ok(Some(true)),
            "f" | "false" | "0" | "no" | "off" => Ok(Some(false)),
            _ => Err(format!("expected a boolean, got {s:?}")),
        },
        other => Err(format!("expected a boolean, got {other}")),
    }
}

fn value_to_string(v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Bytes(b) => String::from_utf8(b.clone())
            .map(Some)
            .map_err(|_| "expected text, got non-UTF-8 bytes".to_owned()),
        other => Ok(Some(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Rows {
        let col = |name: &str| Column {
            name: name.into(),
            type_name: "x".into(),
        };
        Rows::from(RowSet {
            columns: vec![
                col("i"),
                col("f"),
                col("n"),
                col("t"),
                col("null"),
                col("b"),
            ],
            rows: vec![vec![
                Value::Integer(41_000),
                Value::Float(2.0),
                Value::Numeric("12.50".into()),
                Value::Text("17".into()),
                Value::Null,
                Value::Integer(1),
            ]],
            truncated: false,
        })
    }

    #[test]
    fn tolerant_numeric_getters() {
        let rows = rows();
        let row = rows.one().unwrap();
        assert_eq!(row.get_i64("i").unwrap(), 41_000);
        assert_eq!(row.get_f64("i").unwrap(), 41_000.0);
        assert_eq!(row.get_i64("f").unwrap(), 2);
        assert_eq!(row.get_f64("n").unwrap(), 12.5);
        assert!(row.get_i64("n").is_err());
        assert_eq!(row.get_u64("t").unwrap(), 17);
        assert_eq!(row.get_opt_i64("null").unwrap(), None);
        assert!(row.get_bool("b").unwrap());
        assert_eq!(row.get_str(0).unwrap(), "41000");
        assert_eq!(row.get_opt_str("null").unwrap(), None);
    }

    #[test]
    fn errors_name_the_column() {
        let rows = rows();
        let row = rows.one().unwrap();
        let e = row.get_i64("null").unwrap_err().summary();
        assert!(e.contains("`null` is NULL"), "{e}");
        let e = row.get_i64("nope").unwrap_err().summary();
        assert!(e.contains("no column `nope`"), "{e}");
        assert!(e.contains("i, f, n"), "{e}");
        let e = row.get_i64(9).unwrap_err().summary();
        assert!(e.contains("no column 9"), "{e}");
    }

    #[test]
    fn value_display_and_from() {
        assert_eq!(Value::Bytes(vec![0xde, 0xad]).to_string(), "\\xdead");
        assert_eq!(Value::from(Some(3i64)).to_string(), "3");
        assert!(Value::from(None::<&str>).is_null());
    }
}
