//! Candidate indexes for one statement, as pure functions of its text (as
//! `pg_stat_statements` normalizes it, with `$1` placeholders) and of the
//! existing indexes: no host calls, unit-tested on the build host.
//!
//! [`extract`] parses the statement with `sqlparser` (PostgreSQL dialect)
//! and records, per table (aliases resolved; schema-qualified names kept as
//! written; unquoted identifiers folded to lower case, as PostgreSQL does),
//! the columns used with:
//!
//! - **equality**: `col = <value>`, `col IN (<values>)`, `col = ANY(<value>)`,
//!   `col IS NULL`;
//! - **range**: `<`, `<=`, `>`, `>=`, `BETWEEN`, and `LIKE 'prefix%'` with a
//!   literal pattern that does not start with a wildcard (a `$n` pattern is
//!   not indexable by a plain btree in a generic plan: noted, skipped);
//! - **join**: `a.x = b.y` (in `ON` or `WHERE`), `USING (x)`, and
//!   `x IN (SELECT ...)`; used like equality columns;
//! - **ORDER BY** and **GROUP BY** columns, in order.
//!
//! `<value>` is anything without a column reference (placeholders,
//! literals, function calls such as `now()`, casts and arithmetic of those).
//! Predicates under `AND` and `OR` are both collected (an `OR` can use a
//! bitmap of two indexes); the what-if planner decides which help.
//! Subqueries, CTEs and `UNION` branches are analysed in their own scope.
//! An unqualified column belongs to the only relation of a single-relation
//! `SELECT`; with several relations it is ambiguous and skipped, with a note.
//!
//! [`candidates`] turns the usage into btree candidates: every single
//! column, then 2- and 3-column keys ordered equality → at most one range
//! column → sort columns (a leading part of the ORDER BY, or of the GROUP
//! BY, list), deduplicated; candidates whose columns are a leading prefix of
//! an existing index on the same table are set aside as covered.

use std::collections::{BTreeMap, BTreeSet};

use sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, Ident, JoinConstraint, JoinOperator, ObjectName,
    OrderByKind, Query, Select, SelectItem, SetExpr, Statement, TableFactor, TableWithJoins, Value,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// Longest candidate key.
pub const MAX_COLUMNS: usize = 3;

/// How one table's columns are used by a statement, each list deduplicated
/// and in order of appearance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableUsage {
    pub equality: Vec<String>,
    pub range: Vec<String>,
    pub join: Vec<String>,
    pub order_by: Vec<String>,
    pub group_by: Vec<String>,
}

/// What [`extract`] found in a `SELECT`: the usage per table, and notes on
/// what was skipped (ambiguous columns, unknown qualifiers, parameter
/// `LIKE` patterns, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub tables: BTreeMap<String, TableUsage>,
    pub notes: Vec<String>,
}

/// A btree index worth asking the what-if planner about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Candidate {
    /// As written in the statement: `schema.table` or a bare name.
    pub table: String,
    /// Key columns, in order.
    pub columns: Vec<String>,
}

impl Candidate {
    /// `table(a, b)`.
    #[cfg(test)]
    pub fn label(&self) -> String {
        format!("{}({})", self.table, self.columns.join(", "))
    }
}

/// A candidate not worth planning: its key is a leading prefix of (or equal
/// to) an existing index's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Covered {
    pub candidate: Candidate,
    pub existing: Vec<String>,
}

/// The candidates of one statement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Candidates {
    pub candidates: Vec<Candidate>,
    pub covered: Vec<Covered>,
}

/// Existing indexes: table (`schema.table`, or a bare name) → the key
/// columns of each of its indexes.
pub type Existing = BTreeMap<String, Vec<Vec<String>>>;

/// Parses `statement` and records how it uses each table's columns.
/// `Err` carries the reason it was skipped: it does not parse, holds several
/// statements, or is not a `SELECT`.
pub fn extract(statement: &str) -> Result<Usage, String> {
    let parsed = Parser::parse_sql(&PostgreSqlDialect {}, statement)
        .map_err(|e| format!("does not parse: {e}"))?;
    let query = match parsed.as_slice() {
        [Statement::Query(query)] => query,
        [] => return Err("empty statement".to_owned()),
        [_] => {
            let keyword = statement
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_uppercase();
            return Err(format!("not a SELECT ({keyword})"));
        }
        _ => return Err(format!("{} statements, not one SELECT", parsed.len())),
    };
    let mut collector = Collector::default();
    collector.query(query);
    Ok(collector.usage)
}

/// [`extract`] then [`candidates`].
#[cfg(test)]
pub fn analyze(statement: &str, existing: &Existing) -> Result<(Usage, Candidates), String> {
    let usage = extract(statement)?;
    let found = candidates(&usage, existing);
    Ok((usage, found))
}

/// The candidate indexes for `usage`, without those an existing index
/// already covers (returned apart).
pub fn candidates(usage: &Usage, existing: &Existing) -> Candidates {
    let mut out = Candidates::default();
    let mut seen = BTreeSet::new();
    for (table, used) in &usage.tables {
        let indexes = existing_for(existing, table);
        for columns in keys(used) {
            if !seen.insert((table.clone(), columns.clone())) {
                continue;
            }
            let candidate = Candidate {
                table: table.clone(),
                columns,
            };
            match indexes
                .iter()
                .find(|index| index.starts_with(&candidate.columns))
            {
                Some(index) => out.covered.push(Covered {
                    candidate,
                    existing: index.clone(),
                }),
                None => out.candidates.push(candidate),
            }
        }
    }
    out
}

/// The existing indexes of `table`: by exact name, else with `public.`
/// added to (or taken off) the name.
fn existing_for<'a>(existing: &'a Existing, table: &str) -> &'a [Vec<String>] {
    let other = match table.strip_prefix("public.") {
        Some(bare) => bare.to_owned(),
        None if !table.contains('.') => format!("public.{table}"),
        None => String::new(),
    };
    existing
        .get(table)
        .or_else(|| existing.get(&other))
        .map_or(&[], Vec::as_slice)
}

/// Candidate keys for one table, singles first, in a stable order.
fn keys(used: &TableUsage) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut push = |key: Vec<String>| {
        if !out.contains(&key) {
            out.push(key);
        }
    };
    let equality = dedup(used.equality.iter().chain(&used.join));
    let singles = dedup(
        equality
            .iter()
            .chain(&used.range)
            .chain(&used.order_by)
            .chain(&used.group_by),
    );
    for column in singles {
        push(vec![column]);
    }
    let sorts: Vec<&Vec<String>> = [&used.order_by, &used.group_by]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    for size in 0..=equality.len().min(MAX_COLUMNS) {
        for subset in combinations(&equality, size) {
            let mut ranges: Vec<Option<&String>> = vec![None];
            ranges.extend(used.range.iter().filter(|c| !subset.contains(c)).map(Some));
            for range in ranges {
                let mut base = subset.clone();
                base.extend(range.cloned());
                if base.len() > MAX_COLUMNS {
                    continue;
                }
                if base.len() >= 2 {
                    push(base.clone());
                }
                for sort in &sorts {
                    let tail: Vec<&String> = sort.iter().filter(|c| !base.contains(c)).collect();
                    for take in 1..=tail.len() {
                        if base.len() + take > MAX_COLUMNS {
                            break;
                        }
                        let mut key = base.clone();
                        key.extend(tail[..take].iter().map(|c| (*c).clone()));
                        if key.len() >= 2 {
                            push(key);
                        }
                    }
                }
            }
        }
    }
    out
}

fn dedup<'a>(columns: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for column in columns {
        if !out.contains(column) {
            out.push(column.clone());
        }
    }
    out
}

/// The `size`-element subsets of `items`, each in `items`' order.
fn combinations(items: &[String], size: usize) -> Vec<Vec<String>> {
    if size == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for (i, first) in items.iter().enumerate() {
        for mut rest in combinations(&items[i + 1..], size - 1) {
            rest.insert(0, first.clone());
            out.push(rest);
        }
    }
    out
}

/// An identifier as PostgreSQL resolves it: unquoted ones fold to lower case.
fn ident(id: &Ident) -> String {
    match id.quote_style {
        Some(_) => id.value.clone(),
        None => id.value.to_lowercase(),
    }
}

fn object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| part.as_ident().map_or_else(|| "?".to_owned(), ident))
        .collect::<Vec<_>>()
        .join(".")
}

/// One relation of a `FROM` list: the name it is referred to by, the base
/// table (`None` for a subquery, CTE or function) and its full name.
#[derive(Clone, Debug)]
struct Relation {
    binding: String,
    table: Option<String>,
}

#[derive(Clone, Debug, Default)]
struct Scope {
    relations: Vec<Relation>,
    /// Output column aliases of the `SELECT` (an ORDER BY on one is not a
    /// table column).
    aliases: BTreeSet<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Use {
    Equality,
    Range,
    Join,
    OrderBy,
    GroupBy,
}

#[derive(Default)]
struct Collector {
    usage: Usage,
    /// CTE names visible (as a simplification, every CTE of the statement).
    ctes: BTreeSet<String>,
}

impl Collector {
    fn note(&mut self, note: String) {
        if !self.usage.notes.contains(&note) {
            self.usage.notes.push(note);
        }
    }

    fn record(&mut self, table: String, column: String, kind: Use) {
        let used = self.usage.tables.entry(table).or_default();
        let list = match kind {
            Use::Equality => &mut used.equality,
            Use::Range => &mut used.range,
            Use::Join => &mut used.join,
            Use::OrderBy => &mut used.order_by,
            Use::GroupBy => &mut used.group_by,
        };
        if !list.contains(&column) {
            list.push(column);
        }
    }

    fn query(&mut self, query: &Query) {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(ident(&cte.alias.name));
            }
            for cte in &with.cte_tables {
                self.query(&cte.query);
            }
        }
        let scope = self.set_expr(&query.body);
        if let (Some(scope), Some(order_by)) = (scope, &query.order_by)
            && let OrderByKind::Expressions(exprs) = &order_by.kind
        {
            for e in exprs {
                self.sort(&scope, &e.expr, Use::OrderBy);
            }
        }
    }

    /// Analyses a query body; the scope of its `SELECT` when it is one.
    fn set_expr(&mut self, body: &SetExpr) -> Option<Scope> {
        match body {
            SetExpr::Select(select) => Some(self.select(select)),
            SetExpr::Query(query) => {
                self.query(query);
                None
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left);
                self.set_expr(right);
                None
            }
            _ => None,
        }
    }

    fn select(&mut self, select: &Select) -> Scope {
        let mut scope = Scope::default();
        let mut conditions: Vec<&Expr> = Vec::new();
        let mut using: Vec<(Option<usize>, usize, &[ObjectName])> = Vec::new();
        for from in &select.from {
            self.from(&mut scope, from, &mut conditions, &mut using);
        }
        for (left, right, columns) in using {
            for column in columns {
                let Some(column) = column.0.last().and_then(|p| p.as_ident()).map(ident) else {
                    continue;
                };
                if left.is_none() {
                    self.note(format!(
                        "USING ({column}): the left side has several relations; only the joined one is credited"
                    ));
                }
                for index in left.into_iter().chain([right]) {
                    if let Some(table) = scope.relations[index].table.clone() {
                        self.record(table, column.clone(), Use::Join);
                    }
                }
            }
        }
        for condition in conditions {
            self.predicate(&scope, condition);
        }
        if let Some(selection) = &select.selection {
            self.predicate(&scope, selection);
        }
        for item in &select.projection {
            match item {
                SelectItem::ExprWithAlias { alias, expr } => {
                    scope.aliases.insert(ident(alias));
                    self.subqueries(expr);
                }
                SelectItem::UnnamedExpr(expr) => self.subqueries(expr),
                _ => {}
            }
        }
        if let GroupByExpr::Expressions(exprs, _) = &select.group_by {
            for e in exprs {
                self.sort(&scope, e, Use::GroupBy);
            }
        }
        scope
    }

    fn from<'q>(
        &mut self,
        scope: &mut Scope,
        from: &'q TableWithJoins,
        conditions: &mut Vec<&'q Expr>,
        using: &mut Vec<(Option<usize>, usize, &'q [ObjectName])>,
    ) {
        self.relation(scope, &from.relation, conditions, using);
        for join in &from.joins {
            // `USING` names columns of the joined relation and of the left
            // side; which left relation has them is only known when it is
            // the only one.
            let left = (scope.relations.len() == 1).then_some(0);
            self.relation(scope, &join.relation, conditions, using);
            let right = scope.relations.len().saturating_sub(1);
            match constraint(&join.join_operator) {
                Some(JoinConstraint::On(e)) => conditions.push(e),
                Some(JoinConstraint::Using(columns)) => using.push((left, right, columns)),
                _ => {}
            }
        }
    }

    fn relation<'q>(
        &mut self,
        scope: &mut Scope,
        factor: &'q TableFactor,
        conditions: &mut Vec<&'q Expr>,
        using: &mut Vec<(Option<usize>, usize, &'q [ObjectName])>,
    ) {
        match factor {
            TableFactor::Table { name, alias, .. } => {
                let full = object_name(name);
                let last = name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .map_or_else(|| full.clone(), ident);
                let is_cte = name.0.len() == 1 && self.ctes.contains(&full);
                scope.relations.push(Relation {
                    binding: alias.as_ref().map_or(last, |a| ident(&a.name)),
                    table: (!is_cte).then_some(full),
                });
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                self.query(subquery);
                scope.relations.push(Relation {
                    binding: alias.as_ref().map(|a| ident(&a.name)).unwrap_or_default(),
                    table: None,
                });
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.from(scope, table_with_joins, conditions, using),
            _ => scope.relations.push(Relation {
                binding: String::new(),
                table: None,
            }),
        }
    }

    /// The base table and column `expr` names, if it is a column of a base
    /// table in `scope`; notes why not when it is a column reference that
    /// cannot be resolved.
    fn column(&mut self, scope: &Scope, expr: &Expr) -> Option<(String, String)> {
        match expr {
            Expr::Nested(inner) => self.column(scope, inner),
            Expr::Identifier(id) => {
                let column = ident(id);
                match scope.relations.as_slice() {
                    [only] => only.table.as_ref().map(|table| (table.clone(), column)),
                    [] => None,
                    _ => {
                        self.note(format!(
                            "unqualified column `{column}` in a query on several tables is ambiguous: skipped"
                        ));
                        None
                    }
                }
            }
            Expr::CompoundIdentifier(parts) => {
                let (column, qualifier) = parts.split_last()?;
                let column = ident(column);
                let qualifier = qualifier.iter().map(ident).collect::<Vec<_>>().join(".");
                let relation = scope.relations.iter().find(|r| {
                    r.binding == qualifier || r.table.as_deref() == Some(qualifier.as_str())
                });
                match relation {
                    Some(Relation {
                        table: Some(table), ..
                    }) => Some((table.clone(), column)),
                    Some(_) => None,
                    None => {
                        self.note(format!(
                            "column `{qualifier}.{column}`: `{qualifier}` is not a relation of its query (outer reference?): skipped"
                        ));
                        None
                    }
                }
            }
            _ => None,
        }
    }

    fn sort(&mut self, scope: &Scope, expr: &Expr, kind: Use) {
        if let Expr::Identifier(id) = expr
            && scope.aliases.contains(&ident(id))
        {
            self.note(format!(
                "`{}` is an output column alias, not a table column: skipped",
                ident(id)
            ));
            return;
        }
        if let Some((table, column)) = self.column(scope, expr) {
            self.record(table, column, kind);
        }
    }

    fn predicate(&mut self, scope: &Scope, expr: &Expr) {
        match expr {
            Expr::Nested(inner) => self.predicate(scope, inner),
            Expr::BinaryOp { left, op, right } => match op {
                BinaryOperator::And | BinaryOperator::Or => {
                    self.predicate(scope, left);
                    self.predicate(scope, right);
                }
                BinaryOperator::Eq => self.comparison(scope, left, right, Use::Equality),
                BinaryOperator::Lt
                | BinaryOperator::LtEq
                | BinaryOperator::Gt
                | BinaryOperator::GtEq => self.comparison(scope, left, right, Use::Range),
                _ => {
                    self.subqueries(left);
                    self.subqueries(right);
                }
            },
            Expr::IsNull(inner) => self.against_value(scope, inner, None, Use::Equality),
            Expr::InList {
                expr: inner,
                list,
                negated: false,
            } => {
                if list.iter().all(is_value) {
                    self.against_value(scope, inner, None, Use::Equality);
                }
            }
            Expr::AnyOp {
                left,
                compare_op: BinaryOperator::Eq,
                right,
                ..
            } => self.against_value(scope, left, Some(right), Use::Equality),
            Expr::Between {
                expr: inner,
                negated: false,
                low,
                high,
            } => {
                if is_value(low) && is_value(high) {
                    self.against_value(scope, inner, None, Use::Range);
                }
            }
            Expr::Like {
                negated: false,
                any: false,
                expr: inner,
                pattern,
                ..
            } => {
                if let Expr::Value(v) = pattern.as_ref() {
                    match &v.value {
                        Value::SingleQuotedString(p) if !p.starts_with(['%', '_']) => {
                            self.against_value(scope, inner, None, Use::Range);
                        }
                        Value::Placeholder(p) => {
                            self.note(format!(
                                "LIKE {p}: a parameter pattern cannot use a btree index: skipped"
                            ));
                        }
                        _ => {}
                    }
                }
            }
            Expr::InSubquery {
                expr: inner,
                subquery,
                negated: false,
            } => {
                if let Some((table, column)) = self.column(scope, inner) {
                    self.record(table, column, Use::Join);
                }
                self.query(subquery);
            }
            other => self.subqueries(other),
        }
    }

    /// `left op right`: a join when both are columns, a filter when one is a
    /// column and the other a value.
    fn comparison(&mut self, scope: &Scope, left: &Expr, right: &Expr, kind: Use) {
        if is_value(right) {
            self.against_value(scope, left, None, kind);
        } else if is_value(left) {
            self.against_value(scope, right, None, kind);
        } else if kind == Use::Equality && is_column(left) && is_column(right) {
            for side in [left, right] {
                if let Some((table, column)) = self.column(scope, side) {
                    self.record(table, column, Use::Join);
                }
            }
        } else {
            self.subqueries(left);
            self.subqueries(right);
        }
    }

    fn against_value(&mut self, scope: &Scope, column: &Expr, value: Option<&Expr>, kind: Use) {
        if value.is_some_and(|v| !is_value(v)) {
            return;
        }
        if let Some((table, column)) = self.column(scope, column) {
            self.record(table, column, kind);
        }
    }

    /// Analyses the subqueries in `expr` (each in its own scope).
    fn subqueries(&mut self, expr: &Expr) {
        match expr {
            Expr::Subquery(query)
            | Expr::Exists {
                subquery: query, ..
            } => self.query(query),
            Expr::InSubquery { subquery, .. } => self.query(subquery),
            Expr::Nested(inner) | Expr::UnaryOp { expr: inner, .. } => self.subqueries(inner),
            Expr::BinaryOp { left, right, .. } => {
                self.subqueries(left);
                self.subqueries(right);
            }
            _ => {}
        }
    }
}

fn constraint(op: &JoinOperator) -> Option<&JoinConstraint> {
    match op {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::Semi(c)
        | JoinOperator::LeftSemi(c)
        | JoinOperator::RightSemi(c)
        | JoinOperator::Anti(c)
        | JoinOperator::LeftAnti(c)
        | JoinOperator::RightAnti(c) => Some(c),
        _ => None,
    }
}

fn is_column(expr: &Expr) -> bool {
    match expr {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => true,
        Expr::Nested(inner) => is_column(inner),
        _ => false,
    }
}

/// Whether `expr` is a value for the row being filtered: no column
/// reference (placeholders, literals, casts, arithmetic, function calls
/// such as `now()` — their arguments are not inspected).
fn is_value(expr: &Expr) -> bool {
    match expr {
        Expr::Value(_) | Expr::TypedString { .. } | Expr::Function(_) | Expr::Interval(_) => true,
        Expr::Nested(inner)
        | Expr::UnaryOp { expr: inner, .. }
        | Expr::Cast { expr: inner, .. } => is_value(inner),
        Expr::BinaryOp { left, right, .. } => is_value(left) && is_value(right),
        Expr::Array(array) => array.elem.iter().all(is_value),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(columns: &[&str]) -> Vec<String> {
        columns.iter().map(|c| (*c).to_owned()).collect()
    }

    fn keys_of(found: &Candidates) -> Vec<String> {
        found.candidates.iter().map(Candidate::label).collect()
    }

    fn run(sql: &str) -> (Usage, Candidates) {
        match analyze(sql, &Existing::new()) {
            Ok(found) => found,
            Err(reason) => unreachable!("{sql}: {reason}"),
        }
    }

    #[test]
    fn single_column_equality() {
        let (usage, found) = run("SELECT * FROM orders WHERE customer_id = $1");
        assert_eq!(usage.tables["orders"].equality, cols(&["customer_id"]));
        assert_eq!(keys_of(&found), ["orders(customer_id)"]);
        assert!(usage.notes.is_empty());
    }

    #[test]
    fn equality_before_range() {
        let (usage, found) =
            run("SELECT id FROM public.Orders WHERE created_at > $1 AND Status = $2");
        let orders = &usage.tables["public.orders"];
        assert_eq!(orders.equality, cols(&["status"]));
        assert_eq!(orders.range, cols(&["created_at"]));
        assert_eq!(
            keys_of(&found),
            [
                "public.orders(status)",
                "public.orders(created_at)",
                "public.orders(status, created_at)",
            ]
        );
    }

    #[test]
    fn between_and_like_prefix_are_ranges() {
        let (usage, _) = run(
            "SELECT * FROM t WHERE a BETWEEN $1 AND $2 AND b LIKE 'ab%' AND c LIKE '%x' AND d LIKE $3",
        );
        assert_eq!(usage.tables["t"].range, cols(&["a", "b"]));
        assert!(usage.notes.iter().any(|n| n.contains("LIKE $3")));
    }

    #[test]
    fn order_by_appended() {
        let (_, found) =
            run("SELECT * FROM events WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2");
        assert_eq!(
            keys_of(&found),
            [
                "events(user_id)",
                "events(created_at)",
                "events(user_id, created_at)",
            ]
        );
        let (_, found) = run("SELECT * FROM t WHERE a = $1 AND b = $2 AND c > $3 ORDER BY d, e");
        let keys = keys_of(&found);
        for expected in [
            "t(a, b, c)",
            "t(a, b, d)",
            "t(a, c, d)",
            "t(a, d, e)",
            "t(d, e)",
        ] {
            assert!(
                keys.contains(&expected.to_owned()),
                "{expected} in {keys:?}"
            );
        }
        assert!(
            found
                .candidates
                .iter()
                .all(|c| c.columns.len() <= MAX_COLUMNS)
        );
        // A sort column fixed by equality is not repeated.
        let (_, found) = run("SELECT * FROM t WHERE a = $1 ORDER BY a, b");
        assert_eq!(keys_of(&found), ["t(a)", "t(b)", "t(a, b)"]);
    }

    #[test]
    fn group_by_columns() {
        let (usage, found) = run("SELECT tenant, count(*) AS n FROM t GROUP BY tenant ORDER BY n");
        assert_eq!(usage.tables["t"].group_by, cols(&["tenant"]));
        assert!(usage.tables["t"].order_by.is_empty());
        assert!(usage.notes.iter().any(|n| n.contains("`n`")));
        assert_eq!(keys_of(&found), ["t(tenant)"]);
    }

    #[test]
    fn joins_with_aliases() {
        let (usage, found) = run(
            "SELECT o.id FROM app.orders o JOIN customers AS c ON c.id = o.customer_id \
             LEFT JOIN items i USING (order_id) WHERE c.email = $1 AND status = $2",
        );
        assert_eq!(usage.tables["app.orders"].join, cols(&["customer_id"]));
        assert_eq!(usage.tables["customers"].join, cols(&["id"]));
        assert_eq!(usage.tables["customers"].equality, cols(&["email"]));
        assert_eq!(usage.tables["items"].join, cols(&["order_id"]));
        assert!(
            usage
                .notes
                .iter()
                .any(|n| n.contains("`status`") && n.contains("ambiguous"))
        );
        assert!(usage.notes.iter().any(|n| n.contains("USING (order_id)")));
        let (usage, _) = run("SELECT * FROM a JOIN b USING (k)");
        assert_eq!(usage.tables["a"].join, cols(&["k"]));
        assert_eq!(usage.tables["b"].join, cols(&["k"]));
        let keys = keys_of(&found);
        assert!(
            keys.contains(&"customers(email, id)".to_owned()),
            "{keys:?}"
        );
        assert!(!keys.iter().any(|k| k.contains("status")));
    }

    #[test]
    fn in_lists_any_and_is_null() {
        let (usage, _) = run(
            "SELECT * FROM t WHERE a IN ($1, $2, $3) AND b = ANY($4) AND c IS NULL AND d IN (SELECT x FROM u WHERE y = $5)",
        );
        assert_eq!(usage.tables["t"].equality, cols(&["a", "b", "c"]));
        assert_eq!(usage.tables["t"].join, cols(&["d"]));
        assert_eq!(usage.tables["u"].equality, cols(&["y"]));
    }

    #[test]
    fn not_select_or_unparseable_is_skipped() {
        let reason = analyze("UPDATE t SET a = $1 WHERE id = $2", &Existing::new());
        assert_eq!(reason, Err("not a SELECT (UPDATE)".to_owned()));
        match extract("SELEC * FROM") {
            Err(reason) => assert!(reason.starts_with("does not parse"), "{reason}"),
            Ok(usage) => unreachable!("{usage:?}"),
        }
        assert!(extract("SELECT 1; SELECT 2").is_err());
    }

    #[test]
    fn prefix_of_existing_index_is_covered() {
        let mut existing = Existing::new();
        existing.insert(
            "public.orders".to_owned(),
            vec![cols(&["status", "created_at"])],
        );
        let (_, found) = match analyze(
            "SELECT * FROM orders WHERE status = $1 AND created_at > $2 AND region = $3",
            &existing,
        ) {
            Ok(found) => found,
            Err(reason) => unreachable!("{reason}"),
        };
        let covered: Vec<String> = found.covered.iter().map(|c| c.candidate.label()).collect();
        assert_eq!(covered, ["orders(status)", "orders(status, created_at)"]);
        let keys = keys_of(&found);
        assert!(keys.contains(&"orders(region)".to_owned()));
        assert!(
            keys.contains(&"orders(status, region, created_at)".to_owned()),
            "{keys:?}"
        );
    }

    #[test]
    fn subqueries_and_ctes_in_their_own_scope() {
        let (usage, _) = run(
            "WITH recent AS (SELECT * FROM orders WHERE created_at > $1) \
             SELECT * FROM recent r WHERE r.total > $2 UNION ALL SELECT * FROM archive WHERE id = $3",
        );
        assert_eq!(usage.tables["orders"].range, cols(&["created_at"]));
        assert_eq!(usage.tables["archive"].equality, cols(&["id"]));
        assert!(!usage.tables.contains_key("recent"));
    }
}
