//! Index suggestions: the ESR candidate of each shape, whether an existing
//! index already serves it, the "worth it" threshold, merging and ranking,
//! the size estimate and the `createIndexes` command.
//!
//! **ESR candidate** ([`esr_candidate`]), MongoDB's Equality → Sort →
//! Range rule:
//!
//! 1. the **equality** paths, in order of first appearance in the filter
//!    (selectivity is unknown; the order does not change which queries the
//!    index serves, and [`key_serves`] compares them as a set);
//! 2. the **sort** keys, in order, with their directions; a sort key that is
//!    also an equality path is left out (it is constant);
//! 3. **one range** path (the first not already in the key): it bounds the
//!    scan; further range paths would only filter keys, and make the index
//!    wider, so they are left to the fetch (noted).
//!
//! At most `max_key_fields` fields (default 4): equality paths beyond it are
//! dropped; the sort is kept only if all of it fits (a partial sort prefix
//! does not avoid the in-memory sort); the range path only if a slot is
//! left. Non-selective paths, `$or` branches and opaque operators are not in
//! the key (noted). No candidate, with a reason: `$text`, `$near` and
//! `$nearSphere` (they need a text or geospatial index), and shapes with
//! nothing an index can bound (no filter and no sort, or only
//! non-selective predicates, `$or` branches, `$where`, `$expr`, ...).
//!
//! **Served** ([`key_serves`], [`serving_index`]): an existing index serves
//! a candidate when its key starts with the candidate's equality paths (in
//! any order), then its sort paths in order with directions all equal or all
//! reversed (a btree is scanned both ways; equality and range fields may
//! have any direction), then its range path; these leading fields must be
//! ascending or descending. Partial, sparse and hidden indexes never count
//! (the planner only uses a partial or sparse index for queries that imply
//! its filter, which is not proven here; a hidden one not at all).
//! The `_id_` index is assumed on every collection.
//!
//! **Worth it** ([`Params`]): a shape gets a suggestion when it was seen at
//! least `min_count` times for at least `min_total_ms`, and its scan ratio
//! (`max(docsExamined, 1) / max(nreturned, 1)`, over all its observations)
//! is at least `min_scan_ratio` (default 10), or its worst plan was a
//! `COLLSCAN`, or it had a blocking sort that the candidate's sort fields
//! would remove.
//!
//! **Impact** of a shape = `total_ms × scan ratio` (= mean time × frequency
//! × scan ratio), see [`ShapeStats::impact`].
//!
//! **Merging and ranking** ([`advise`]): the candidates of one collection
//! are taken longest key first (then by impact); a candidate that an
//! already kept key serves (the same rule as for existing indexes: a
//! leading prefix, equality part as a set, sort directions all equal or all
//! reversed) joins that suggestion, which keeps the longer key and lists
//! every shape it helps (the shape that gave the key first). Suggestions are
//! ranked by the summed impact of their shapes (then namespace, then name).
//!
//! **Size** ([`estimate_index_bytes`]): a rough estimate, no sampling:
//! each entry is `key_fields × field + 16` bytes (16: the record id and the
//! KeyString framing), a key field being `avgObjSize / 8` clamped to
//! 8..=40 bytes (a date, a number or a short string), times 1.25 for btree
//! page fill and internal pages, times the document count. Multikey
//! indexes (an entry per array element) are larger, and WiredTiger's
//! prefix compression often makes real indexes smaller.
//!
//! **Name**: `warden_` + `path_direction` joined by `_`
//! (`warden_status_1_created_-1`).

use std::collections::{BTreeMap, BTreeSet};

use bson::{Bson, Document, doc};

use super::as_f64;
use super::existing::{ExistingIndex, KeyDir};
use super::observe::split_namespace;
use super::shape::{PredicateKind, Shape, ShapeStats};

/// Thresholds and limits.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Longest suggested key. Default 4.
    pub max_key_fields: usize,
    /// A shape is worth an index when it examines at least this many
    /// documents per document returned (or did a COLLSCAN, or a blocking
    /// sort the index removes). Default 10.
    pub min_scan_ratio: f64,
    /// Minimum observations of a shape. Default 1.
    pub min_count: u64,
    /// Minimum total time of a shape, in ms. Default 0.
    pub min_total_ms: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            max_key_fields: 4,
            min_scan_ratio: 10.0,
            min_count: 1,
            min_total_ms: 0,
        }
    }
}

/// An ESR index candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// `db.coll`.
    pub namespace: String,
    pub equality: Vec<String>,
    /// Sort paths and directions (1 / -1).
    pub sort: Vec<(String, i32)>,
    pub range: Option<String>,
    /// What was left out of the key, and why.
    pub notes: Vec<String>,
}

impl Candidate {
    /// Equality paths (ascending), sort paths (their directions), the range
    /// path (ascending).
    pub fn key(&self) -> Vec<(String, i32)> {
        self.equality
            .iter()
            .map(|p| (p.clone(), 1))
            .chain(self.sort.iter().cloned())
            .chain(self.range.iter().map(|p| (p.clone(), 1)))
            .collect()
    }

    pub fn key_len(&self) -> usize {
        self.equality.len() + self.sort.len() + usize::from(self.range.is_some())
    }

    /// [`index_name`] of the key.
    pub fn name(&self) -> String {
        index_name(&self.key())
    }

    /// `db.coll {a: 1, b: -1}`.
    pub fn label(&self) -> String {
        format!("{} {}", self.namespace, super::key_text(&self.key()))
    }
}

/// Operators that need a text or geospatial index.
const SPECIAL_INDEX: [&str; 3] = ["$text", "$near", "$nearSphere"];

/// The ESR candidate of `shape`, or why it has none.
pub fn esr_candidate(shape: &Shape, max_key_fields: usize) -> Result<Candidate, String> {
    if let Some(op) = shape
        .unindexable
        .iter()
        .find(|op| SPECIAL_INDEX.contains(&op.as_str()))
    {
        return Err(format!(
            "{op} needs a text or geospatial index: not suggested"
        ));
    }
    let cap = max_key_fields.max(1);
    let mut notes = Vec::new();
    let mut equality: Vec<String> = shape
        .paths(PredicateKind::Equality)
        .map(str::to_owned)
        .collect();
    if equality.len() > cap {
        notes.push(format!(
            "equality fields beyond {cap} left out: {}",
            equality[cap..].join(", ")
        ));
        equality.truncate(cap);
    }
    let all_equality: BTreeSet<&str> = shape.paths(PredicateKind::Equality).collect();
    let sort_all: Vec<(String, i32)> = shape
        .sort
        .iter()
        .filter(|(p, _)| !all_equality.contains(p.as_str()))
        .cloned()
        .collect();
    let sort = if equality.len() + sort_all.len() <= cap {
        sort_all
    } else {
        notes.push(format!(
            "sort {} left out: the key would exceed {cap} fields (the sort stays in memory)",
            super::key_text(&sort_all)
        ));
        Vec::new()
    };
    let ranges: Vec<&str> = shape
        .paths(PredicateKind::Range)
        .filter(|p| !sort.iter().any(|(s, _)| s == p))
        .collect();
    let range = if equality.len() + sort.len() < cap {
        ranges.first().map(|p| (*p).to_owned())
    } else {
        None
    };
    let skipped: Vec<&str> = ranges
        .iter()
        .copied()
        .filter(|p| range.as_deref() != Some(*p))
        .collect();
    if !skipped.is_empty() {
        notes.push(format!(
            "range fields filtered after the index bounds: {}",
            skipped.join(", ")
        ));
    }
    let non_selective: Vec<&str> = shape.paths(PredicateKind::NonSelective).collect();
    if !non_selective.is_empty() {
        notes.push(format!(
            "non-selective predicates not in the key: {}",
            non_selective.join(", ")
        ));
    }
    let in_or: Vec<&str> = shape.paths(PredicateKind::InOr).collect();
    if !in_or.is_empty() {
        notes.push(format!(
            "$or branches not in the key (each branch needs its own index): {}",
            in_or.join(", ")
        ));
    }
    if !shape.unindexable.is_empty() {
        notes.push(format!(
            "evaluated on each fetched document: {}",
            shape.unindexable.join(", ")
        ));
    }
    if equality.is_empty() && sort.is_empty() && range.is_none() {
        if shape.fields.is_empty() && shape.unindexable.is_empty() {
            return Err("no filter and no sort: the query reads the whole collection".to_owned());
        }
        return Err(format!(
            "no field an index can bound ({})",
            notes.join("; ")
        ));
    }
    Ok(Candidate {
        namespace: shape.namespace.clone(),
        equality,
        sort,
        range,
        notes,
    })
}

/// Whether an index with key `key` serves `candidate` (see the module
/// docs).
pub fn key_serves(key: &[(String, KeyDir)], candidate: &Candidate) -> bool {
    let ne = candidate.equality.len();
    let ns = candidate.sort.len();
    let n = candidate.key_len();
    let Some(head) = key.get(..n) else {
        return false;
    };
    if n == 0 || head.iter().any(|(_, d)| d.sign().is_none()) {
        return false;
    }
    let (eq_part, rest) = head.split_at(ne);
    let (sort_part, range_part) = rest.split_at(ns);
    let have: BTreeSet<&str> = eq_part.iter().map(|(p, _)| p.as_str()).collect();
    let want: BTreeSet<&str> = candidate.equality.iter().map(String::as_str).collect();
    if have != want {
        return false;
    }
    let same_paths = sort_part
        .iter()
        .zip(&candidate.sort)
        .all(|((a, _), (b, _))| a == b);
    let signs = || {
        sort_part
            .iter()
            .zip(&candidate.sort)
            .map(|((_, d), (_, want))| d.sign().unwrap_or(0) * want)
    };
    let directions = signs().all(|s| s == 1) || signs().all(|s| s == -1);
    if !same_paths || !directions {
        return false;
    }
    match (&candidate.range, range_part.first()) {
        (Some(r), Some((p, _))) => r == p,
        (None, _) => true,
        (Some(_), None) => false,
    }
}

/// The name of the first full (not partial, sparse or hidden) index of the
/// candidate's collection that serves it; `_id_` is assumed when not
/// listed.
pub fn serving_index(indexes: &[ExistingIndex], candidate: &Candidate) -> Option<String> {
    let mine = || {
        indexes
            .iter()
            .filter(|ix| ix.namespace == candidate.namespace)
    };
    if let Some(ix) = mine().find(|ix| ix.full() && key_serves(&ix.key, candidate)) {
        return Some(ix.name.clone());
    }
    let id = ExistingIndex::id_index(&candidate.namespace);
    (!mine().any(ExistingIndex::is_id) && key_serves(&id.key, candidate)).then_some(id.name)
}

/// Collection statistics for the size estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CollStats {
    /// Documents.
    pub count: u64,
    /// Average document size in bytes.
    pub avg_obj_size: f64,
}

impl CollStats {
    /// From a `collStats` reply or the `storageStats` of `$collStats`
    /// (`count`, `avgObjSize`).
    pub fn from_document(stats: &Document) -> Option<CollStats> {
        let stats = stats.get_document("storageStats").unwrap_or(stats);
        Some(CollStats {
            count: stats.get("count").and_then(super::as_u64)?,
            avg_obj_size: stats.get("avgObjSize").and_then(as_f64).unwrap_or(0.0),
        })
    }
}

/// Bytes per entry besides the key fields.
pub const ENTRY_OVERHEAD_BYTES: f64 = 16.0;
/// Btree page fill and internal pages.
pub const BTREE_FACTOR: f64 = 1.25;

/// A rough size of an index of `key_fields` fields (see the module docs).
pub fn estimate_index_bytes(stats: &CollStats, key_fields: usize) -> u64 {
    let avg = if stats.avg_obj_size.is_finite() {
        stats.avg_obj_size
    } else {
        0.0
    };
    let field = (avg / 8.0).clamp(8.0, 40.0);
    let entry = key_fields as f64 * field + ENTRY_OVERHEAD_BYTES;
    (stats.count as f64 * entry * BTREE_FACTOR).ceil() as u64
}

/// `warden_status_1_created_-1`.
pub fn index_name(key: &[(String, i32)]) -> String {
    let parts: Vec<String> = key.iter().map(|(p, d)| format!("{p}_{d}")).collect();
    format!("warden_{}", parts.join("_"))
}

/// `{createIndexes: coll, indexes: [{key: {..}, name}]}`, to run against
/// the namespace's database.
pub fn create_indexes_command(namespace: &str, key: &[(String, i32)], name: &str) -> Document {
    let coll = split_namespace(namespace).map_or(namespace, |(_, c)| c);
    let key_doc: Document = key
        .iter()
        .map(|(p, d)| (p.clone(), Bson::Int32(*d)))
        .collect();
    doc! {
        "createIndexes": coll,
        "indexes": [ { "key": key_doc, "name": name } ],
    }
}

/// What became of one shape.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Helped by [`Advice::suggestions`]`[suggestion]`.
    Suggested { suggestion: usize },
    /// An existing index already serves its candidate.
    Served { index: String, candidate: Candidate },
    /// No ESR candidate.
    NoCandidate { reason: String },
    /// Below the thresholds.
    NotWorthIt {
        candidate: Candidate,
        reason: String,
    },
}

/// One suggested index.
#[derive(Clone, Debug, PartialEq)]
pub struct Suggestion {
    /// `db.coll`.
    pub namespace: String,
    pub key: Vec<(String, i32)>,
    /// [`index_name`] of the key.
    pub name: String,
    /// The candidate that gave the key (with its notes).
    pub candidate: Candidate,
    /// Indexes into the shapes given to [`advise`]: the one that gave the
    /// key first, then the merged ones.
    pub shapes: Vec<usize>,
    /// Summed [`ShapeStats::impact`].
    pub impact: f64,
    /// Summed executions and time.
    pub count: u64,
    pub total_ms: u64,
    /// [`estimate_index_bytes`], when the collection's stats were given.
    pub estimated_bytes: Option<u64>,
    /// [`create_indexes_command`].
    pub command: Document,
}

/// The outcome of every shape, and the ranked suggestions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Advice {
    /// One per shape, in the order given.
    pub outcomes: Vec<Outcome>,
    /// Highest impact first.
    pub suggestions: Vec<Suggestion>,
}

/// Why a shape is not worth an index, if it is not.
fn not_worth(stats: &ShapeStats, candidate: &Candidate, params: &Params) -> Option<String> {
    if stats.count < params.min_count {
        return Some(format!(
            "seen {} times (min_count {})",
            stats.count, params.min_count
        ));
    }
    if stats.total_ms < params.min_total_ms {
        return Some(format!(
            "{} ms in total (min_total_ms {})",
            stats.total_ms, params.min_total_ms
        ));
    }
    let ratio = stats.scan_ratio();
    let sort_helps = stats.sort_stages > 0 && !candidate.sort.is_empty();
    if ratio >= params.min_scan_ratio || stats.collscan() || sort_helps {
        return None;
    }
    Some(format!(
        "examines {ratio:.1} documents per document returned (< {}) with plan {}, no blocking sort to remove",
        params.min_scan_ratio,
        if stats.worst_plan.is_empty() {
            "unknown"
        } else {
            &stats.worst_plan
        }
    ))
}

/// The advice for `shapes`, given the existing indexes (of any
/// collections) and the statistics of the collections (by namespace).
pub fn advise(
    shapes: &[ShapeStats],
    indexes: &[ExistingIndex],
    coll_stats: &BTreeMap<String, CollStats>,
    params: &Params,
) -> Advice {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; shapes.len()];
    let mut pending: Vec<(usize, Candidate, f64)> = Vec::new();
    for (i, stats) in shapes.iter().enumerate() {
        let outcome = match esr_candidate(&stats.shape, params.max_key_fields) {
            Err(reason) => Outcome::NoCandidate { reason },
            Ok(candidate) => {
                if let Some(index) = serving_index(indexes, &candidate) {
                    Outcome::Served { index, candidate }
                } else if let Some(reason) = not_worth(stats, &candidate, params) {
                    Outcome::NotWorthIt { candidate, reason }
                } else {
                    pending.push((i, candidate, stats.impact()));
                    continue;
                }
            }
        };
        outcomes[i] = Some(outcome);
    }

    pending.sort_by(|a, b| {
        b.1.key_len()
            .cmp(&a.1.key_len())
            .then(b.2.total_cmp(&a.2))
            .then(a.0.cmp(&b.0))
    });
    let mut groups: Vec<(Candidate, Vec<usize>, f64)> = Vec::new();
    for (i, candidate, impact) in pending {
        let joined = groups.iter_mut().find(|(kept, _, _)| {
            kept.namespace == candidate.namespace && key_serves(&dirs(&kept.key()), &candidate)
        });
        match joined {
            Some((_, members, total)) => {
                members.push(i);
                *total += impact;
            }
            None => groups.push((candidate, vec![i], impact)),
        }
    }
    groups.sort_by(|a, b| {
        b.2.total_cmp(&a.2)
            .then_with(|| a.0.namespace.cmp(&b.0.namespace))
            .then_with(|| a.0.name().cmp(&b.0.name()))
    });

    let mut suggestions = Vec::with_capacity(groups.len());
    for (n, (candidate, members, impact)) in groups.into_iter().enumerate() {
        let key = candidate.key();
        let name = index_name(&key);
        let (mut count, mut total_ms) = (0u64, 0u64);
        for &i in &members {
            if let Some(s) = shapes.get(i) {
                count = count.saturating_add(s.count);
                total_ms = total_ms.saturating_add(s.total_ms);
            }
            outcomes[i] = Some(Outcome::Suggested { suggestion: n });
        }
        suggestions.push(Suggestion {
            namespace: candidate.namespace.clone(),
            command: create_indexes_command(&candidate.namespace, &key, &name),
            estimated_bytes: coll_stats
                .get(&candidate.namespace)
                .map(|s| estimate_index_bytes(s, key.len())),
            key,
            name,
            candidate,
            shapes: members,
            impact,
            count,
            total_ms,
        });
    }
    Advice {
        outcomes: outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or(Outcome::NoCandidate {
                    reason: "not analysed".to_owned(),
                })
            })
            .collect(),
        suggestions,
    }
}

/// A candidate key as index key directions.
fn dirs(key: &[(String, i32)]) -> Vec<(String, KeyDir)> {
    key.iter()
        .map(|(p, d)| {
            let dir = if *d < 0 { KeyDir::Desc } else { KeyDir::Asc };
            (p.clone(), dir)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mongo_advice::observe::OpKind;
    use crate::mongo_advice::shape::FieldPredicate;

    fn shape(fields: &[(&str, PredicateKind)], sort: &[(&str, i32)]) -> Shape {
        Shape {
            namespace: "db.c".to_owned(),
            op: OpKind::Find,
            fields: fields
                .iter()
                .map(|(p, k)| FieldPredicate {
                    path: (*p).to_owned(),
                    kind: *k,
                })
                .collect(),
            sort: sort.iter().map(|(p, d)| ((*p).to_owned(), *d)).collect(),
            projection: Vec::new(),
            unindexable: Vec::new(),
        }
    }

    fn key(list: &[(&str, i32)]) -> Vec<(String, i32)> {
        list.iter().map(|(p, d)| ((*p).to_owned(), *d)).collect()
    }

    fn index(name: &str, list: &[(&str, i32)]) -> ExistingIndex {
        ExistingIndex {
            namespace: "db.c".to_owned(),
            name: name.to_owned(),
            key: dirs(&key(list)),
            unique: false,
            sparse: false,
            partial_filter: None,
            expire_after_secs: None,
            hidden: false,
            collation: None,
        }
    }

    use PredicateKind::{Equality as Eq, InOr, NonSelective as Ns, Range};

    #[test]
    fn esr_order() {
        let s = shape(
            &[("status", Eq), ("qty", Range), ("kind", Eq)],
            &[("created", -1)],
        );
        let c = esr_candidate(&s, 4).unwrap();
        assert_eq!(
            c.key(),
            key(&[("status", 1), ("kind", 1), ("created", -1), ("qty", 1)])
        );
        assert_eq!(c.name(), "warden_status_1_kind_1_created_-1_qty_1");
        assert_eq!(c.label(), "db.c {status: 1, kind: 1, created: -1, qty: 1}");
        assert!(c.notes.is_empty());
    }

    #[test]
    fn one_range_field_and_sort_on_equality_or_range_fields() {
        let s = shape(&[("a", Range), ("b", Range), ("c", Eq)], &[]);
        let c = esr_candidate(&s, 4).unwrap();
        assert_eq!(c.key(), key(&[("c", 1), ("a", 1)]));
        assert_eq!(c.notes, ["range fields filtered after the index bounds: b"]);
        // A sort key that is an equality field is constant; a range field
        // that is sorted on is the sort part.
        let s = shape(&[("a", Eq), ("t", Range)], &[("a", 1), ("t", -1)]);
        assert_eq!(
            esr_candidate(&s, 4).unwrap().key(),
            key(&[("a", 1), ("t", -1)])
        );
        // Sort only.
        let s = shape(&[], &[("t", -1), ("u", 1)]);
        assert_eq!(
            esr_candidate(&s, 4).unwrap().key(),
            key(&[("t", -1), ("u", 1)])
        );
    }

    #[test]
    fn cap_drops_the_whole_sort_then_the_range() {
        let s = shape(
            &[("a", Eq), ("b", Eq), ("c", Eq), ("r", Range)],
            &[("s1", 1), ("s2", 1)],
        );
        let c = esr_candidate(&s, 4).unwrap();
        assert_eq!(c.key(), key(&[("a", 1), ("b", 1), ("c", 1), ("r", 1)]));
        assert!(c.notes[0].starts_with("sort {s1: 1, s2: 1} left out"));
        let c = esr_candidate(&s, 3).unwrap();
        assert_eq!(c.key(), key(&[("a", 1), ("b", 1), ("c", 1)]));
        assert_eq!(c.notes.len(), 2);
        let c = esr_candidate(&s, 2).unwrap();
        assert_eq!(c.key(), key(&[("a", 1), ("b", 1)]));
        assert_eq!(c.notes[0], "equality fields beyond 2 left out: c");
        // 0 is taken as 1.
        assert_eq!(esr_candidate(&s, 0).unwrap().key(), key(&[("a", 1)]));
    }

    #[test]
    fn no_candidate_reasons() {
        let err = |s: &Shape| esr_candidate(s, 4).unwrap_err();
        assert!(err(&shape(&[], &[])).starts_with("no filter and no sort"));
        let only_ne = shape(&[("deleted", Ns), ("x", Ns)], &[]);
        assert_eq!(
            err(&only_ne),
            "no field an index can bound (non-selective predicates not in the key: deleted, x)"
        );
        assert!(err(&shape(&[("a", InOr), ("b", InOr)], &[])).contains("$or branches"));
        let mut opaque = shape(&[], &[]);
        opaque.unindexable = vec!["$expr".to_owned()];
        assert!(err(&opaque).contains("evaluated on each fetched document: $expr"));
        let mut text = shape(&[("a", Eq)], &[]);
        text.unindexable = vec!["$text".to_owned()];
        assert!(err(&text).starts_with("$text needs a text or geospatial index"));
        // $where next to an equality: the equality gets the key.
        let mut mixed = shape(&[("a", Eq)], &[]);
        mixed.unindexable = vec!["$where".to_owned()];
        let c = esr_candidate(&mixed, 4).unwrap();
        assert_eq!(c.key(), key(&[("a", 1)]));
        assert_eq!(c.notes, ["evaluated on each fetched document: $where"]);
    }

    #[test]
    fn serving_rules() {
        let c = esr_candidate(
            &shape(
                &[("a", Eq), ("b", Eq), ("r", Range)],
                &[("s", 1), ("t", -1)],
            ),
            5,
        )
        .unwrap();
        assert_eq!(c.key_len(), 5);
        let serves = |list: &[(&str, i32)]| key_serves(&dirs(&key(list)), &c);
        // Exact, longer, equality part in another order, any direction on
        // equality and range fields.
        assert!(serves(&[("a", 1), ("b", 1), ("s", 1), ("t", -1), ("r", 1)]));
        assert!(serves(&[
            ("b", -1),
            ("a", 1),
            ("s", 1),
            ("t", -1),
            ("r", -1),
            ("z", 1)
        ]));
        // The sort reversed as a whole, not in part.
        assert!(serves(&[("a", 1), ("b", 1), ("s", -1), ("t", 1), ("r", 1)]));
        assert!(!serves(&[("a", 1), ("b", 1), ("s", 1), ("t", 1), ("r", 1)]));
        assert!(!serves(&[
            ("a", 1),
            ("b", 1),
            ("s", -1),
            ("t", -1),
            ("r", 1)
        ]));
        // Too short, sort order swapped, range missing, not a prefix.
        assert!(!serves(&[("a", 1), ("b", 1), ("s", 1), ("t", -1)]));
        assert!(!serves(&[
            ("a", 1),
            ("b", 1),
            ("t", -1),
            ("s", 1),
            ("r", 1)
        ]));
        assert!(!serves(&[
            ("a", 1),
            ("b", 1),
            ("s", 1),
            ("t", -1),
            ("q", 1)
        ]));
        assert!(!serves(&[
            ("z", 1),
            ("a", 1),
            ("b", 1),
            ("s", 1),
            ("t", -1),
            ("r", 1)
        ]));
        // Special key types do not serve.
        let mut hashed = dirs(&key(&[("a", 1), ("b", 1), ("s", 1), ("t", -1), ("r", 1)]));
        hashed[0].1 = KeyDir::Special("hashed".to_owned());
        assert!(!key_serves(&hashed, &c));
    }

    #[test]
    fn partial_sparse_hidden_and_other_collections_do_not_serve() {
        let c = esr_candidate(&shape(&[("a", Eq)], &[("t", -1)]), 4).unwrap();
        let good = index("a_1_t_1", &[("a", 1), ("t", 1)]);
        assert_eq!(
            serving_index(std::slice::from_ref(&good), &c),
            Some("a_1_t_1".to_owned())
        );
        let mut partial = good.clone();
        partial.partial_filter = Some(doc! { "a": { "$exists": true } });
        let mut sparse = good.clone();
        sparse.sparse = true;
        let mut hidden = good.clone();
        hidden.hidden = true;
        let mut elsewhere = good;
        elsewhere.namespace = "db.other".to_owned();
        assert_eq!(
            serving_index(&[partial, sparse, hidden, elsewhere], &c),
            None
        );
        // _id equality is served by _id_, listed or not.
        let id = esr_candidate(&shape(&[("_id", Eq)], &[]), 4).unwrap();
        assert_eq!(serving_index(&[], &id), Some("_id_".to_owned()));
    }

    fn stats(shape: Shape, total_ms: u64, docs: u64, nreturned: u64) -> ShapeStats {
        ShapeStats {
            shape,
            count: 1,
            get_mores: 0,
            total_ms,
            docs_examined: docs,
            keys_examined: 0,
            nreturned,
            sort_stages: 0,
            worst_plan: "IXSCAN { x: 1 }".to_owned(),
            example: Document::new(),
            example_truncated: false,
        }
    }

    #[test]
    fn worth_it_threshold() {
        let p = Params::default();
        let s = stats(shape(&[("a", Eq)], &[("t", 1)]), 10, 90, 10);
        let c = esr_candidate(&s.shape, 4).unwrap();
        assert!(not_worth(&s, &c, &p).unwrap().contains("9.0 documents"));
        let mut ratio = s.clone();
        ratio.docs_examined = 100;
        assert_eq!(not_worth(&ratio, &c, &p), None);
        let mut collscan = s.clone();
        collscan.worst_plan = "COLLSCAN".to_owned();
        assert_eq!(not_worth(&collscan, &c, &p), None);
        let mut sorted = s.clone();
        sorted.sort_stages = 1;
        assert_eq!(not_worth(&sorted, &c, &p), None);
        let strict = Params {
            min_count: 2,
            ..Params::default()
        };
        assert!(
            not_worth(&collscan, &c, &strict)
                .unwrap()
                .starts_with("seen 1 times")
        );
        let slow = Params {
            min_total_ms: 100,
            ..Params::default()
        };
        assert!(
            not_worth(&collscan, &c, &slow)
                .unwrap()
                .contains("min_total_ms")
        );
    }

    #[test]
    fn merging_and_ranking() {
        let wide = stats(shape(&[("a", Eq), ("b", Eq)], &[("t", -1)]), 10, 10_000, 10); // impact 10 000
        let prefix = stats(shape(&[("b", Eq), ("a", Eq)], &[]), 100, 1000, 1); // 100 000
        let reversed = stats(shape(&[("b", Eq), ("a", Eq)], &[("t", 1)]), 1, 100, 1); // 100
        let other = stats(shape(&[("x", Eq)], &[]), 20, 1000, 1); // 20 000
        let not_prefix = stats(shape(&[("a", Eq), ("t", Range)], &[]), 1, 100, 1); // 100
        let shapes = [wide, prefix, reversed, other, not_prefix];
        let advice = advise(&shapes, &[], &BTreeMap::new(), &Params::default());
        let got: Vec<(String, Vec<usize>, f64)> = advice
            .suggestions
            .iter()
            .map(|s| (s.name.clone(), s.shapes.clone(), s.impact))
            .collect();
        assert_eq!(
            got,
            [
                ("warden_a_1_b_1_t_-1".to_owned(), vec![0, 2, 1], 110_100.0),
                ("warden_x_1".to_owned(), vec![3], 20_000.0),
                ("warden_a_1_t_1".to_owned(), vec![4], 100.0),
            ]
        );
        assert_eq!(advice.suggestions[0].count, 3);
        assert_eq!(
            advice.outcomes,
            [
                Outcome::Suggested { suggestion: 0 },
                Outcome::Suggested { suggestion: 0 },
                Outcome::Suggested { suggestion: 0 },
                Outcome::Suggested { suggestion: 1 },
                Outcome::Suggested { suggestion: 2 },
            ]
        );
        // Different collections never merge.
        let mut elsewhere = shapes[1].clone();
        elsewhere.shape.namespace = "db.d".to_owned();
        let advice = advise(
            &[shapes[0].clone(), elsewhere],
            &[],
            &BTreeMap::new(),
            &Params::default(),
        );
        assert_eq!(advice.suggestions.len(), 2);
        assert_eq!(advice.suggestions[0].namespace, "db.d");
    }

    #[test]
    fn size_estimate() {
        let s = CollStats {
            count: 1_000_000,
            avg_obj_size: 200.0,
        };
        // (3 × 25 + 16) × 1.25 × 1e6.
        assert_eq!(estimate_index_bytes(&s, 3), 113_750_000);
        // Small documents: 8 bytes a field; large ones: 40.
        let small = CollStats {
            count: 1000,
            avg_obj_size: 10.0,
        };
        assert_eq!(estimate_index_bytes(&small, 1), 30_000);
        let large = CollStats {
            count: 1000,
            avg_obj_size: 100_000.0,
        };
        assert_eq!(estimate_index_bytes(&large, 2), 120_000);
        let empty = CollStats {
            count: 0,
            avg_obj_size: f64::NAN,
        };
        assert_eq!(estimate_index_bytes(&empty, 2), 0);
        assert_eq!(
            CollStats::from_document(&doc! { "ns": "db.c", "count": 10, "avgObjSize": 50 }),
            Some(CollStats {
                count: 10,
                avg_obj_size: 50.0
            })
        );
        assert_eq!(
            CollStats::from_document(
                &doc! { "storageStats": { "count": 10i64, "avgObjSize": 50.5 } }
            ),
            Some(CollStats {
                count: 10,
                avg_obj_size: 50.5
            })
        );
        assert_eq!(CollStats::from_document(&doc! {}), None);
    }

    #[test]
    fn create_indexes_command_shape() {
        let k = key(&[("status", 1), ("created", -1)]);
        let name = index_name(&k);
        assert_eq!(name, "warden_status_1_created_-1");
        assert_eq!(
            create_indexes_command("shop.orders", &k, &name),
            doc! {
                "createIndexes": "orders",
                "indexes": [ { "key": { "status": 1, "created": -1 }, "name": "warden_status_1_created_-1" } ],
            }
        );
        // Dotted collection names keep their dots.
        assert_eq!(
            create_indexes_command("shop.a.b", &k, &name).get_str("createIndexes"),
            Ok("a.b")
        );
    }
}
