//! Query shapes: an observation with its values removed, and the
//! statistics of the observations of each shape.
//!
//! A shape is the namespace, the operation kind, the filter's field paths
//! with their [`PredicateKind`], the sort keys with their directions, the
//! projection's fields (sorted) and the operators no btree bounds.
//!
//! Filter rules:
//!
//! - `field: <value>` (not an operator document: a scalar, `null`, an
//!   array, an embedded document matched whole) and `{$eq: ..}` are
//!   **equality**; `{a: {b: 1}}` is equality on `a` (an exact embedded
//!   document), `{"a.b": 1}` on the dotted path `a.b`;
//! - `$in` is **equality** (a series of point lookups), except with a sort
//!   when the `$in` lists multiply to [`IN_SORT_EXPLODE_LIMIT`] points or
//!   more: the server merges the sorted index scans of each point
//!   (`SORT_MERGE`) only below that, so above it the `$in` behaves like a
//!   **range** for ESR (placed after the sort). An empty `$in` is
//!   non-selective; `$all` is equality (on one of its values);
//! - `$gt`, `$gte`, `$lt`, `$lte` and an anchored, case-sensitive
//!   `$regex` (`^abc`, as the operator or a regex literal) are **range**;
//! - `$ne`, `$nin`, `$not`, `$exists`, `$type`, `$size`, `$mod`, `$bits*`,
//!   other regexes and unknown operators are **non-selective**: an index on
//!   them scans most of its keys, they are not put in a key;
//! - several operators on one path keep the best kind (equality > range >
//!   non-selective); a path seen twice (through `$and`) too, at its first
//!   position;
//! - `$and` and a one-branch `$or` are flattened; an `$or` whose branches
//!   are all one equality on the same path is an `$in` on it; other `$or`
//!   branches are recorded as [`PredicateKind::InOr`] (each branch needs its
//!   own index: not in the key); `$nor` branches are non-selective;
//! - `$elemMatch` on objects (`{arr: {$elemMatch: {a: 1, b: {$gt: 2}}}}`)
//!   gives the dotted paths `arr.a` (equality) and `arr.b` (range); on
//!   values (`{arr: {$elemMatch: {$gt: 1, $lt: 9}}}`) it is the kind of its
//!   operators on `arr`;
//! - `$where`, `$expr`, `$jsonSchema`, `$text`, `$geoWithin`,
//!   `$geoIntersects`, `$near`, `$nearSphere` and unknown top-level
//!   operators are listed in [`Shape::unindexable`]; `$comment` is ignored.
//!
//! Sort: `{path: n}` with `n > 0` is ascending (1), `n < 0` descending
//! (-1); `{$meta: ..}` keys are skipped.
//!
//! Grouping: two observations have the same shape when they agree on all
//! of the above, the filter paths compared as a set (`{a: 1, b: 2}` and
//! `{b: 2, a: 1}` are one shape, as in the server's query shapes); the
//! shape keeps the field order of its first observation. Per shape:
//! executions (getMores included, counted apart too), total time, docs and
//! keys examined, documents returned, blocking sorts, the worst plan
//! summary (`COLLSCAN` > `IXSCAN` > anything else > none; the first seen on
//! ties) and the example command of the first observation whose log entry
//! was not truncated (else the first).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use bson::{Bson, Document};

use super::as_f64;
use super::observe::{Observation, OpKind};

/// Below this many points (the product of the `$in` list sizes) a sorted
/// query over `$in` merges one sorted scan per point, so the `$in` is an
/// equality for ESR; at or above it, a range (the server's
/// `internalQueryMaxScansToExplode`, 200).
pub const IN_SORT_EXPLODE_LIMIT: usize = 200;

/// How a filter uses a field; the order is "best first".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PredicateKind {
    /// One value or a set of values (`$eq`, plain value, `$in`, `$all`).
    Equality,
    /// Bounds (`$gt`, `$lt`, ..., anchored regex; a large `$in` with a sort).
    Range,
    /// An index would scan most of its keys (`$ne`, `$nin`, `$exists`, ...).
    NonSelective,
    /// Under one branch of a several-branch `$or`.
    InOr,
}

impl PredicateKind {
    /// `eq`, `range`, `nonselective`, `or`.
    pub fn label(self) -> &'static str {
        match self {
            PredicateKind::Equality => "eq",
            PredicateKind::Range => "range",
            PredicateKind::NonSelective => "nonselective",
            PredicateKind::InOr => "or",
        }
    }
}

/// A filter path and how it is used.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPredicate {
    /// Dotted path (`a.b`).
    pub path: String,
    pub kind: PredicateKind,
}

/// A query with its values removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    pub namespace: String,
    pub op: OpKind,
    /// One entry per path, in order of first appearance.
    pub fields: Vec<FieldPredicate>,
    /// Sort keys and directions (1 or -1), in order.
    pub sort: Vec<(String, i32)>,
    /// Projection fields, sorted.
    pub projection: Vec<String>,
    /// Operators no btree bounds (`$where`, `$expr`, `$text`, ...), sorted.
    pub unindexable: Vec<String>,
}

impl Shape {
    /// The paths of `kind`, in order.
    pub fn paths(&self, kind: PredicateKind) -> impl Iterator<Item = &str> {
        self.fields
            .iter()
            .filter(move |f| f.kind == kind)
            .map(|f| f.path.as_str())
    }

    /// What makes two shapes the same (filter paths as a set).
    fn group_key(&self) -> impl Ord + '_ {
        let mut fields: Vec<&FieldPredicate> = self.fields.iter().collect();
        fields.sort();
        (
            &self.namespace,
            self.op,
            fields,
            &self.sort,
            &self.projection,
            &self.unindexable,
        )
    }
}

impl fmt::Display for Shape {
    /// `shop.orders find {status: eq, qty: range} sort {created: -1}
    /// projection [total] unindexable [$where]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|p| format!("{}: {}", p.path, p.kind.label()))
            .collect();
        write!(
            f,
            "{} {} {{{}}}",
            self.namespace,
            self.op,
            fields.join(", ")
        )?;
        if !self.sort.is_empty() {
            write!(f, " sort {}", super::key_text(&self.sort))?;
        }
        if !self.projection.is_empty() {
            write!(f, " projection [{}]", self.projection.join(", "))?;
        }
        if !self.unindexable.is_empty() {
            write!(f, " unindexable [{}]", self.unindexable.join(", "))?;
        }
        Ok(())
    }
}

/// A shape and the statistics of its observations.
#[derive(Clone, Debug, PartialEq)]
pub struct ShapeStats {
    pub shape: Shape,
    /// Observations (executions), getMores included.
    pub count: u64,
    /// Of which getMores.
    pub get_mores: u64,
    pub total_ms: u64,
    pub docs_examined: u64,
    pub keys_examined: u64,
    pub nreturned: u64,
    /// Observations whose plan had a blocking sort.
    pub sort_stages: u64,
    /// The worst plan summary seen.
    pub worst_plan: String,
    /// One query command of this shape, for `explain`.
    pub example: Document,
    /// That command is from a truncated log entry.
    pub example_truncated: bool,
}

impl ShapeStats {
    /// Mean duration.
    pub fn mean_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.total_ms as f64 / self.count as f64
        }
    }

    /// `max(docsExamined, 1) / max(nreturned, 1)` over all observations.
    pub fn scan_ratio(&self) -> f64 {
        self.docs_examined.max(1) as f64 / self.nreturned.max(1) as f64
    }

    /// `total_ms × scan_ratio` = mean time × frequency × scan ratio.
    pub fn impact(&self) -> f64 {
        self.total_ms as f64 * self.scan_ratio()
    }

    /// The worst plan read the whole collection.
    pub fn collscan(&self) -> bool {
        self.worst_plan.contains("COLLSCAN")
    }
}

/// COLLSCAN > IXSCAN > other plans > none.
fn plan_rank(plan: &str) -> u8 {
    if plan.contains("COLLSCAN") {
        3
    } else if plan.contains("IXSCAN") {
        2
    } else if plan.is_empty() {
        0
    } else {
        1
    }
}

/// Groups observations by shape, in order of first appearance.
pub fn group_shapes(observations: &[Observation]) -> Vec<ShapeStats> {
    let mut out: Vec<ShapeStats> = Vec::new();
    let shapes: Vec<Shape> = observations.iter().map(shape_of).collect();
    let mut index: BTreeMap<_, usize> = BTreeMap::new();
    for (obs, shape) in observations.iter().zip(&shapes) {
        let i = *index.entry(shape.group_key()).or_insert_with(|| {
            out.push(ShapeStats {
                shape: shape.clone(),
                count: 0,
                get_mores: 0,
                total_ms: 0,
                docs_examined: 0,
                keys_examined: 0,
                nreturned: 0,
                sort_stages: 0,
                worst_plan: String::new(),
                example: obs.command.clone(),
                example_truncated: obs.truncated,
            });
            out.len() - 1
        });
        let Some(stats) = out.get_mut(i) else {
            continue;
        };
        stats.count += 1;
        stats.get_mores += u64::from(obs.get_more);
        stats.total_ms = stats.total_ms.saturating_add(obs.duration_ms);
        stats.docs_examined = stats.docs_examined.saturating_add(obs.docs_examined);
        stats.keys_examined = stats.keys_examined.saturating_add(obs.keys_examined);
        stats.nreturned = stats.nreturned.saturating_add(obs.nreturned);
        stats.sort_stages += u64::from(obs.has_sort_stage);
        if plan_rank(&obs.plan_summary) > plan_rank(&stats.worst_plan) {
            stats.worst_plan = obs.plan_summary.clone();
        }
        if stats.example_truncated && !obs.truncated {
            stats.example = obs.command.clone();
            stats.example_truncated = false;
        }
    }
    out
}

/// The shape of one observation.
pub fn shape_of(obs: &Observation) -> Shape {
    let sort = sort_keys(&obs.sort);
    let mut walker = Walker {
        has_sort: !sort.is_empty(),
        raw: Vec::new(),
        unindexable: BTreeSet::new(),
    };
    walker.filter(&obs.filter, "", Context::Plain);
    let fields = walker.fields();
    let mut projection: Vec<String> = obs.projection.keys().cloned().collect();
    projection.sort();
    projection.dedup();
    Shape {
        namespace: obs.namespace.clone(),
        op: obs.op,
        fields,
        sort,
        projection,
        unindexable: walker.unindexable.into_iter().collect(),
    }
}

/// Sort keys with directions 1 / -1; `$meta` keys skipped.
fn sort_keys(sort: &Document) -> Vec<(String, i32)> {
    let mut out: Vec<(String, i32)> = Vec::new();
    for (path, value) in sort {
        let Some(n) = as_f64(value) else { continue };
        if out.iter().any(|(p, _)| p == path) {
            continue;
        }
        out.push((path.clone(), if n < 0.0 { -1 } else { 1 }));
    }
    out
}

/// Where a predicate sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Context {
    Plain,
    /// Under a several-branch `$or`.
    Or,
    /// Under `$nor`.
    Nor,
}

/// One predicate as found; `in_points` is the size of its `$in` list.
struct Raw {
    path: String,
    kind: PredicateKind,
    in_points: Option<usize>,
}

struct Walker {
    has_sort: bool,
    raw: Vec<Raw>,
    unindexable: BTreeSet<String>,
}

impl Walker {
    fn push(&mut self, path: String, kind: PredicateKind, in_points: Option<usize>, ctx: Context) {
        let kind = match ctx {
            Context::Plain => kind,
            Context::Or => PredicateKind::InOr,
            Context::Nor => PredicateKind::NonSelective,
        };
        let in_points = in_points.filter(|_| kind == PredicateKind::Equality);
        self.raw.push(Raw {
            path,
            kind,
            in_points,
        });
    }

    /// The merged fields: `$in` demoted to range when the points explode a
    /// sort, then one entry per path with its best kind.
    fn fields(&self) -> Vec<FieldPredicate> {
        let points = self
            .raw
            .iter()
            .filter_map(|r| r.in_points)
            .fold(1usize, |acc, n| acc.saturating_mul(n.max(1)));
        let demote = self.has_sort && points >= IN_SORT_EXPLODE_LIMIT;
        let mut out: Vec<FieldPredicate> = Vec::new();
        for r in &self.raw {
            let kind = if demote && r.in_points.is_some() {
                PredicateKind::Range
            } else {
                r.kind
            };
            match out.iter_mut().find(|f| f.path == r.path) {
                Some(f) => f.kind = f.kind.min(kind),
                None => out.push(FieldPredicate {
                    path: r.path.clone(),
                    kind,
                }),
            }
        }
        out
    }

    fn filter(&mut self, filter: &Document, prefix: &str, ctx: Context) {
        for (key, value) in filter {
            if key.starts_with('$') {
                self.logical(key, value, prefix, ctx);
            } else {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                self.value(path, value, ctx);
            }
        }
    }

    fn branches(value: &Bson) -> Vec<&Document> {
        match value {
            Bson::Array(items) => items
                .iter()
                .filter_map(|b| match b {
                    Bson::Document(d) => Some(d),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    fn logical(&mut self, op: &str, value: &Bson, prefix: &str, ctx: Context) {
        match op {
            "$and" => {
                for branch in Self::branches(value) {
                    self.filter(branch, prefix, ctx);
                }
            }
            "$or" => {
                let branches = Self::branches(value);
                if branches.len() == 1 {
                    self.filter(branches[0], prefix, ctx);
                } else if let Some(path) = self.same_path_equalities(&branches, prefix) {
                    self.push(path, PredicateKind::Equality, Some(branches.len()), ctx);
                } else {
                    for branch in branches {
                        self.filter(branch, prefix, Context::Or);
                    }
                }
            }
            "$nor" => {
                for branch in Self::branches(value) {
                    self.filter(branch, prefix, Context::Nor);
                }
            }
            "$comment" => {}
            other => {
                self.unindexable.insert(other.to_owned());
            }
        }
    }

    /// The path when every branch is one equality on the same path.
    fn same_path_equalities(&self, branches: &[&Document], prefix: &str) -> Option<String> {
        let mut path: Option<String> = None;
        for branch in branches {
            let mut one = Walker {
                has_sort: false,
                raw: Vec::new(),
                unindexable: BTreeSet::new(),
            };
            one.filter(branch, prefix, Context::Plain);
            let [raw] = one.raw.as_slice() else {
                return None;
            };
            if raw.kind != PredicateKind::Equality
                || raw.in_points.is_some()
                || !one.unindexable.is_empty()
                || path.as_ref().is_some_and(|p| *p != raw.path)
            {
                return None;
            }
            path = Some(raw.path.clone());
        }
        path
    }

    fn value(&mut self, path: String, value: &Bson, ctx: Context) {
        match value {
            Bson::Document(ops) if ops.keys().next().is_some_and(|k| k.starts_with('$')) => {
                self.operators(path, ops, ctx);
            }
            Bson::RegularExpression(re) => {
                let kind = regex_kind(&re.pattern, &re.options);
                self.push(path, kind, None, ctx);
            }
            _ => self.push(path, PredicateKind::Equality, None, ctx),
        }
    }

    fn operators(&mut self, path: String, ops: &Document, ctx: Context) {
        let mut best: Option<PredicateKind> = None;
        let mut in_points = None;
        let mut keep = |kind: PredicateKind| {
            best = Some(best.map_or(kind, |b| b.min(kind)));
        };
        for (op, arg) in ops {
            match op.as_str() {
                "$eq" => keep(PredicateKind::Equality),
                "$in" => match arg {
                    Bson::Array(items) if !items.is_empty() => {
                        keep(PredicateKind::Equality);
                        in_points = Some(items.len());
                    }
                    _ => keep(PredicateKind::NonSelective),
                },
                "$all" => match arg {
                    Bson::Array(items) if !items.is_empty() => keep(PredicateKind::Equality),
                    _ => keep(PredicateKind::NonSelective),
                },
                "$gt" | "$gte" | "$lt" | "$lte" => keep(PredicateKind::Range),
                "$regex" => {
                    let options = ops.get_str("$options").unwrap_or("");
                    let kind = match arg {
                        Bson::String(p) => regex_kind(p, options),
                        Bson::RegularExpression(re) => {
                            regex_kind(&re.pattern, &format!("{}{options}", re.options))
                        }
                        _ => PredicateKind::NonSelective,
                    };
                    keep(kind);
                }
                "$options" => {}
                "$elemMatch" => match arg {
                    Bson::Document(inner)
                        if inner.keys().next().is_some_and(|k| k.starts_with('$')) =>
                    {
                        let mut one = Walker {
                            has_sort: false,
                            raw: Vec::new(),
                            unindexable: BTreeSet::new(),
                        };
                        one.operators(path.clone(), inner, Context::Plain);
                        for raw in one.raw {
                            keep(raw.kind);
                        }
                        self.unindexable.extend(one.unindexable);
                    }
                    Bson::Document(inner) => self.filter(inner, &path, ctx),
                    _ => keep(PredicateKind::NonSelective),
                },
                "$geoWithin" | "$geoIntersects" | "$near" | "$nearSphere" => {
                    self.unindexable.insert(op.clone());
                }
                _ => keep(PredicateKind::NonSelective),
            }
        }
        if let Some(kind) = best {
            let points = in_points.filter(|_| kind == PredicateKind::Equality);
            self.push(path, kind, points, ctx);
        }
    }
}

/// An anchored (`^` or `\A`), case-sensitive regex whose first character
/// is a literal bounds an index scan (range); anything else does not.
fn regex_kind(pattern: &str, options: &str) -> PredicateKind {
    let rest = pattern
        .strip_prefix('^')
        .or_else(|| pattern.strip_prefix("\\A"));
    let literal_start = rest
        .and_then(|r| r.chars().next())
        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == ' ');
    if literal_start && !options.contains('i') && !options.contains('x') {
        PredicateKind::Range
    } else {
        PredicateKind::NonSelective
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn obs(filter: Document, sort: Document) -> Observation {
        Observation {
            namespace: "db.c".to_owned(),
            op: OpKind::Find,
            filter,
            sort,
            projection: Document::new(),
            plan_summary: "COLLSCAN".to_owned(),
            docs_examined: 100,
            keys_examined: 0,
            nreturned: 1,
            duration_ms: 10,
            has_sort_stage: false,
            get_more: false,
            truncated: false,
            time: None,
            command: doc! { "find": "c" },
        }
    }

    fn kinds(filter: Document, sort: Document) -> Vec<(String, &'static str)> {
        shape_of(&obs(filter, sort))
            .fields
            .into_iter()
            .map(|f| (f.path, f.kind.label()))
            .collect()
    }

    fn pairs(list: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
        list.iter().map(|(p, k)| ((*p).to_owned(), *k)).collect()
    }

    #[test]
    fn equality_range_and_non_selective() {
        let filter = doc! {
            "status": "A",
            "qty": { "$gt": 5, "$lte": 9 },
            "tags": { "$in": ["x", "y"] },
            "deleted": { "$ne": true },
            "note": { "$exists": false },
            "a.b": { "$eq": null },
            "sub": { "x": 1 },
            "name": { "$regex": "^ab" },
            "nick": { "$regex": "^ab", "$options": "i" },
            "mail": bson::Regex { pattern: "^jo".to_owned(), options: String::new() },
            "town": bson::Regex { pattern: "ville$".to_owned(), options: String::new() },
            "both": { "$gt": 1, "$eq": 3 },
            "kind": { "$nin": [1, 2] },
            "labels": { "$all": ["a"] },
            "none": { "$in": [] },
        };
        assert_eq!(
            kinds(filter, Document::new()),
            pairs(&[
                ("status", "eq"),
                ("qty", "range"),
                ("tags", "eq"),
                ("deleted", "nonselective"),
                ("note", "nonselective"),
                ("a.b", "eq"),
                ("sub", "eq"),
                ("name", "range"),
                ("nick", "nonselective"),
                ("mail", "range"),
                ("town", "nonselective"),
                ("both", "eq"),
                ("kind", "nonselective"),
                ("labels", "eq"),
                ("none", "nonselective"),
            ])
        );
    }

    #[test]
    fn and_or_nor_and_elem_match() {
        let filter = doc! {
            "$and": [ { "a": 1 }, { "b": { "$lt": 3 } }, { "a": { "$gt": 0 } } ],
            "$or": [ { "c": 1 }, { "d": { "$gt": 2 } } ],
            "$nor": [ { "e": 1 } ],
            "items": { "$elemMatch": { "sku": "x", "n": { "$gte": 2 } } },
            "scores": { "$elemMatch": { "$gt": 1, "$lt": 9 } },
            "$comment": "hi",
            "$where": "this.a > 1",
        };
        let shape = shape_of(&obs(filter, Document::new()));
        assert_eq!(
            shape
                .fields
                .iter()
                .map(|f| (f.path.clone(), f.kind.label()))
                .collect::<Vec<_>>(),
            pairs(&[
                ("a", "eq"),
                ("b", "range"),
                ("c", "or"),
                ("d", "or"),
                ("e", "nonselective"),
                ("items.sku", "eq"),
                ("items.n", "range"),
                ("scores", "range"),
            ])
        );
        assert_eq!(shape.unindexable, ["$where"]);
        // A one-branch $or is flattened; an $or of equalities on one path is an $in.
        assert_eq!(
            kinds(doc! { "$or": [ { "a": { "$lt": 1 } } ] }, Document::new()),
            pairs(&[("a", "range")])
        );
        assert_eq!(
            kinds(
                doc! { "$or": [ { "s": "A" }, { "s": "B" } ], "t": 1 },
                Document::new()
            ),
            pairs(&[("s", "eq"), ("t", "eq")])
        );
        assert_eq!(
            kinds(
                doc! { "$or": [ { "s": "A" }, { "u": "B" } ] },
                Document::new()
            ),
            pairs(&[("s", "or"), ("u", "or")])
        );
    }

    #[test]
    fn in_with_a_sort_is_a_range_from_200_points() {
        let small: Vec<i32> = (0..10).collect();
        let big: Vec<i32> = (0..200).collect();
        let sort = doc! { "t": -1 };
        assert_eq!(
            kinds(doc! { "a": { "$in": small.clone() } }, sort.clone()),
            pairs(&[("a", "eq")])
        );
        assert_eq!(
            kinds(doc! { "a": { "$in": big.clone() } }, sort.clone()),
            pairs(&[("a", "range")])
        );
        // Without a sort, any $in is an equality.
        assert_eq!(
            kinds(doc! { "a": { "$in": big } }, Document::new()),
            pairs(&[("a", "eq")])
        );
        // Points multiply: 10 × 20 = 200.
        let twenty: Vec<i32> = (0..20).collect();
        assert_eq!(
            kinds(
                doc! { "a": { "$in": small }, "b": { "$in": twenty }, "c": 1 },
                sort
            ),
            pairs(&[("a", "range"), ("b", "range"), ("c", "eq")])
        );
    }

    #[test]
    fn sort_keys_and_opaque_operators() {
        let shape = shape_of(&obs(
            doc! { "$text": { "$search": "x" }, "loc": { "$near": [0, 0] }, "$expr": { "$gt": ["$a", "$b"] } },
            doc! { "score": { "$meta": "textScore" }, "a": 1.0, "b": -1i64, "a": 1 },
        ));
        assert!(shape.fields.is_empty());
        assert_eq!(shape.sort, [("a".to_owned(), 1), ("b".to_owned(), -1)]);
        assert_eq!(shape.unindexable, ["$expr", "$near", "$text"]);
    }

    #[test]
    fn grouping_removes_values_and_field_order() {
        let mut one = obs(doc! { "a": 1, "b": { "$gt": 2 } }, doc! { "c": -1 });
        one.projection = doc! { "z": 1, "y": 1 };
        let mut two = obs(doc! { "b": { "$lt": 9 }, "a": 7 }, doc! { "c": -1 });
        two.projection = doc! { "y": 1, "z": 1 };
        two.plan_summary = "IXSCAN { a: 1 }".to_owned();
        two.get_more = true;
        two.has_sort_stage = true;
        two.duration_ms = 30;
        two.nreturned = 3;
        let other_sort = obs(doc! { "a": 1, "b": { "$gt": 2 } }, doc! { "c": 1 });
        let groups = group_shapes(&[one, two, other_sort]);
        assert_eq!(groups.len(), 2);
        let g = &groups[0];
        assert_eq!(
            g.shape.to_string(),
            "db.c find {a: eq, b: range} sort {c: -1} projection [y, z]"
        );
        assert_eq!(
            (
                g.count,
                g.get_mores,
                g.total_ms,
                g.docs_examined,
                g.nreturned,
                g.sort_stages
            ),
            (2, 1, 40, 200, 4, 1)
        );
        assert_eq!(g.worst_plan, "COLLSCAN");
        assert_eq!(g.mean_ms(), 20.0);
        assert_eq!(g.scan_ratio(), 50.0);
        assert_eq!(g.impact(), 2000.0);
        assert!(g.collscan());
        assert_eq!(groups[1].count, 1);
    }

    #[test]
    fn worst_plan_and_untruncated_example() {
        let mut a = obs(doc! { "a": 1 }, Document::new());
        a.plan_summary = "IDHACK".to_owned();
        a.truncated = true;
        a.command = doc! { "find": "c", "filter": { "a": "..." } };
        let mut b = obs(doc! { "a": 2 }, Document::new());
        b.plan_summary = "IXSCAN { a: 1 }".to_owned();
        let mut c = obs(doc! { "a": 3 }, Document::new());
        c.plan_summary = "IXSCAN { a: -1 }".to_owned();
        c.command = doc! { "find": "c", "filter": { "a": 3 } };
        let g = group_shapes(&[a, b, c]);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].worst_plan, "IXSCAN { a: 1 }");
        assert_eq!(g[0].example, doc! { "find": "c" });
        assert!(!g[0].example_truncated);
    }
}
