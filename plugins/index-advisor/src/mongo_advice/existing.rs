//! Existing indexes (`listIndexes`, `$indexStats`) and the findings about
//! them: duplicate, prefix-redundant and unused indexes.
//!
//! Every index gets at most one finding, the first that applies:
//!
//! 1. **duplicate**: same collection, same key (paths and directions, in
//!    order) and same collation as another index. One index of each group
//!    is kept (`_id_`, then unique, then TTL, then the most used by
//!    `$indexStats`, then the first by name); the others are suggested for
//!    dropping unless protected;
//! 2. **redundant**: the key is a strict leading prefix of another index's
//!    key on the same collection (same collation), with the same directions
//!    or all of them reversed (a btree is scanned both ways). The covering
//!    index named is the widest one (then the first by name); an index
//!    reported as a duplicate does not cover;
//! 3. **unused**: `$indexStats` counted no access (`accesses.ops` = 0,
//!    summed over the entries given, one per member or shard) since
//!    `accesses.since` (the latest of the entries: the counters restart
//!    with mongod and when the index is created). When `since` is younger
//!    than `min_stats_age_secs` before `now` (or unknown), the evidence is
//!    weak ([`FindingKind::Unused::weak`]). Indexes still `building` are
//!    skipped; an index is only judged when its options are known (from
//!    `listIndexes` or the `spec` of `$indexStats`).
//!
//! Never suggested for dropping (**protected**): `_id_`, unique indexes
//! (they enforce a constraint), and TTL indexes (`expireAfterSeconds`:
//! the TTL monitor deletes expired documents through them, and those
//! deletes are not counted as accesses, so "unused" means nothing for
//! them).
//!
//! Duplicate and redundant findings only compare **plain** indexes: every
//! key field ascending or descending (no `text`, `2dsphere`, `hashed` or
//! wildcard keys), and neither partial (`partialFilterExpression`), sparse
//! nor hidden. A partial or sparse index covers other documents than a
//! full one, so they are not interchangeable (and a smaller partial index
//! next to a full one is often deliberate); a hidden index is already on
//! its way out, and the planner does not use it.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::fmt;

use bson::{Bson, DateTime, Document, doc};

use super::observe::split_namespace;
use super::{age_text, as_f64, as_u64, key_text, truthy};

/// The direction or type of one index key field.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyDir {
    Asc,
    Desc,
    /// `"text"`, `"2dsphere"`, `"hashed"`, a wildcard `$**` path, ...
    Special(String),
}

impl KeyDir {
    /// From a `key` document's value (`1`, `-1`, `1.0`, `"hashed"`, ...).
    pub fn from_bson(value: &Bson) -> KeyDir {
        match (value, as_f64(value)) {
            (_, Some(n)) if n > 0.0 => KeyDir::Asc,
            (_, Some(n)) if n < 0.0 => KeyDir::Desc,
            (Bson::String(s), _) => KeyDir::Special(s.clone()),
            (other, _) => KeyDir::Special(other.to_string()),
        }
    }

    /// 1 or -1 for an ordinary key.
    pub fn sign(&self) -> Option<i32> {
        match self {
            KeyDir::Asc => Some(1),
            KeyDir::Desc => Some(-1),
            KeyDir::Special(_) => None,
        }
    }
}

impl fmt::Display for KeyDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyDir::Asc => f.write_str("1"),
            KeyDir::Desc => f.write_str("-1"),
            KeyDir::Special(s) => write!(f, "{s:?}"),
        }
    }
}

/// One index, from a `listIndexes` document.
#[derive(Clone, Debug, PartialEq)]
pub struct ExistingIndex {
    /// `db.coll`.
    pub namespace: String,
    pub name: String,
    pub key: Vec<(String, KeyDir)>,
    pub unique: bool,
    pub sparse: bool,
    pub partial_filter: Option<Document>,
    pub expire_after_secs: Option<i64>,
    pub hidden: bool,
    pub collation: Option<Document>,
}

impl ExistingIndex {
    /// Reads one `listIndexes` document (`key`, `name`, `unique`, `sparse`,
    /// `partialFilterExpression`, `expireAfterSeconds`, `hidden`,
    /// `collation`) of collection `namespace`.
    pub fn from_list_indexes(namespace: &str, spec: &Document) -> Result<ExistingIndex, String> {
        let name = spec
            .get_str("name")
            .map_err(|_| "index without a name".to_owned())?;
        let key_doc = spec
            .get_document("key")
            .map_err(|_| format!("index {name} without a key"))?;
        let key = key_doc
            .iter()
            .map(|(path, v)| {
                let dir = if path.contains("$**") {
                    KeyDir::Special("wildcard".to_owned())
                } else {
                    KeyDir::from_bson(v)
                };
                (path.clone(), dir)
            })
            .collect();
        Ok(ExistingIndex {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key,
            unique: truthy(spec.get("unique")),
            sparse: truthy(spec.get("sparse")),
            partial_filter: spec.get_document("partialFilterExpression").ok().cloned(),
            expire_after_secs: spec
                .get("expireAfterSeconds")
                .and_then(as_f64)
                .map(|n| n as i64),
            hidden: truthy(spec.get("hidden")),
            collation: spec.get_document("collation").ok().cloned(),
        })
    }

    /// An index on `_id` alone, named `_id_` (every collection has it).
    pub fn id_index(namespace: &str) -> ExistingIndex {
        ExistingIndex {
            namespace: namespace.to_owned(),
            name: "_id_".to_owned(),
            key: vec![("_id".to_owned(), KeyDir::Asc)],
            unique: true,
            sparse: false,
            partial_filter: None,
            expire_after_secs: None,
            hidden: false,
            collation: None,
        }
    }

    pub fn is_id(&self) -> bool {
        self.name == "_id_"
    }

    pub fn is_ttl(&self) -> bool {
        self.expire_after_secs.is_some()
    }

    /// Never suggested for dropping: `_id_`, unique and TTL indexes.
    pub fn protected(&self) -> bool {
        self.is_id() || self.unique || self.is_ttl()
    }

    /// Every key ascending or descending.
    pub fn ordinary_key(&self) -> bool {
        !self.key.is_empty() && self.key.iter().all(|(_, d)| d.sign().is_some())
    }

    /// Serves queries on every document: not partial, sparse or hidden.
    pub fn full(&self) -> bool {
        self.partial_filter.is_none() && !self.sparse && !self.hidden
    }

    /// Compared for duplicates and redundancy.
    fn plain(&self) -> bool {
        self.ordinary_key() && self.full()
    }

    /// `{a: 1, b: -1}`.
    pub fn key_text(&self) -> String {
        key_text(&self.key)
    }
}

/// `$indexStats` usage of one index on one member or shard.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexUsage {
    /// `db.coll`.
    pub namespace: String,
    pub name: String,
    /// `accesses.ops`.
    pub ops: u64,
    /// `accesses.since`.
    pub since: Option<DateTime>,
    /// `building: true` (an index build in progress).
    pub building: bool,
    /// The index options from `spec` (4.2+), when present.
    pub spec: Option<ExistingIndex>,
}

impl IndexUsage {
    /// Reads one `$indexStats` document of collection `namespace`.
    pub fn from_index_stats(namespace: &str, stats: &Document) -> Result<IndexUsage, String> {
        let name = stats
            .get_str("name")
            .map_err(|_| "$indexStats entry without a name".to_owned())?;
        let accesses = stats
            .get_document("accesses")
            .map_err(|_| format!("$indexStats entry {name} without accesses"))?;
        let ops = accesses
            .get("ops")
            .and_then(as_u64)
            .ok_or_else(|| format!("$indexStats entry {name} without accesses.ops"))?;
        let since = match accesses.get("since") {
            Some(Bson::DateTime(t)) => Some(*t),
            _ => None,
        };
        let spec = stats
            .get_document("spec")
            .ok()
            .and_then(|s| ExistingIndex::from_list_indexes(namespace, s).ok());
        Ok(IndexUsage {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            ops,
            since,
            building: truthy(stats.get("building")),
            spec,
        })
    }
}

/// What is wrong with an existing index.
#[derive(Clone, Debug, PartialEq)]
pub enum FindingKind {
    /// Same key and collation as `of`, which is kept.
    Duplicate { of: String },
    /// Its key is a leading prefix of `covered_by`'s.
    Redundant { covered_by: String },
    /// No access since `since`.
    Unused {
        ops: u64,
        since: Option<DateTime>,
        /// `now − since`, when known.
        age_secs: Option<u64>,
        /// The counters are younger than `min_stats_age_secs` (or their
        /// age is unknown): weak evidence.
        weak: bool,
    },
}

impl FindingKind {
    /// `duplicate`, `redundant`, `unused`.
    pub fn name(&self) -> &'static str {
        match self {
            FindingKind::Duplicate { .. } => "duplicate",
            FindingKind::Redundant { .. } => "redundant",
            FindingKind::Unused { .. } => "unused",
        }
    }
}

/// One finding about an existing index.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexFinding {
    /// `db.coll`.
    pub namespace: String,
    pub index: String,
    pub kind: FindingKind,
    /// One line for humans.
    pub detail: String,
    /// `{dropIndexes: coll, index: name}`, to run against the database.
    pub drop_command: Document,
}

/// Usage of one index, merged over its entries.
struct Merged {
    ops: u64,
    since: Option<DateTime>,
    building: bool,
}

fn merge_usage(usage: &[IndexUsage]) -> BTreeMap<(&str, &str), Merged> {
    let mut out: BTreeMap<(&str, &str), Merged> = BTreeMap::new();
    for u in usage {
        let m = out
            .entry((u.namespace.as_str(), u.name.as_str()))
            .or_insert(Merged {
                ops: 0,
                since: u.since,
                building: false,
            });
        m.ops = m.ops.saturating_add(u.ops);
        m.since = match (m.since, u.since) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        m.building |= u.building;
    }
    out
}

/// The findings, ordered by namespace, then kind (duplicate, redundant,
/// unused), then index name.
pub fn index_findings(
    indexes: &[ExistingIndex],
    usage: &[IndexUsage],
    now: DateTime,
    min_stats_age_secs: u64,
) -> Vec<IndexFinding> {
    let merged = merge_usage(usage);
    let ops_of = |ix: &ExistingIndex| {
        merged
            .get(&(ix.namespace.as_str(), ix.name.as_str()))
            .map_or(0, |m| m.ops)
    };
    let mut out: Vec<IndexFinding> = Vec::new();
    let mut flagged = vec![false; indexes.len()];

    // 1. Duplicates.
    let mut groups: BTreeMap<_, Vec<usize>> = BTreeMap::new();
    for (i, ix) in indexes.iter().enumerate() {
        if ix.plain() {
            let collation = ix.collation.as_ref().map(Document::to_string);
            groups
                .entry((&ix.namespace, &ix.key, collation))
                .or_default()
                .push(i);
        }
    }
    for members in groups.values().filter(|m| m.len() > 1) {
        let mut ranked: Vec<(usize, &ExistingIndex)> =
            members.iter().map(|&i| (i, &indexes[i])).collect();
        ranked.sort_by_key(|(_, ix)| {
            (
                Reverse(ix.is_id()),
                Reverse(ix.unique),
                Reverse(ix.is_ttl()),
                Reverse(ops_of(ix)),
                ix.name.clone(),
            )
        });
        let Some(((_, kept), rest)) = ranked.split_first() else {
            continue;
        };
        for (i, ix) in rest {
            if ix.protected() {
                continue;
            }
            flagged[*i] = true;
            out.push(finding(
                ix,
                FindingKind::Duplicate {
                    of: kept.name.clone(),
                },
                format!(
                    "duplicate of {} (same key {}); drop it",
                    kept.name,
                    kept.key_text()
                ),
            ));
        }
    }

    // 2. Prefix-redundant.
    for (i, ix) in indexes.iter().enumerate() {
        if flagged[i] || ix.protected() || !ix.plain() {
            continue;
        }
        let cover = indexes
            .iter()
            .enumerate()
            .filter(|&(j, other)| {
                j != i
                    && !flagged[j]
                    && other.plain()
                    && other.namespace == ix.namespace
                    && other.collation == ix.collation
                    && other.key.len() > ix.key.len()
                    && prefix_either_way(&ix.key, &other.key)
            })
            .map(|(_, other)| other)
            .min_by_key(|other| (Reverse(other.key.len()), other.name.clone()));
        if let Some(cover) = cover {
            flagged[i] = true;
            out.push(finding(
                ix,
                FindingKind::Redundant {
                    covered_by: cover.name.clone(),
                },
                format!(
                    "redundant: its key {} is a leading prefix of {} {}",
                    ix.key_text(),
                    cover.name,
                    cover.key_text()
                ),
            ));
        }
    }

    // 3. Unused.
    let known: BTreeMap<(&str, &str), &ExistingIndex> = indexes
        .iter()
        .map(|ix| ((ix.namespace.as_str(), ix.name.as_str()), ix))
        .chain(
            usage
                .iter()
                .filter_map(|u| u.spec.as_ref())
                .map(|ix| ((ix.namespace.as_str(), ix.name.as_str()), ix)),
        )
        .rev()
        .collect();
    let flagged_names: Vec<(&str, &str)> = indexes
        .iter()
        .zip(&flagged)
        .filter(|(_, f)| **f)
        .map(|(ix, _)| (ix.namespace.as_str(), ix.name.as_str()))
        .collect();
    for (key, m) in &merged {
        let Some(ix) = known.get(key) else { continue };
        if m.ops > 0 || m.building || ix.protected() || flagged_names.contains(key) {
            continue;
        }
        let age_secs = m.since.map(|s| {
            u64::try_from(now.timestamp_millis().saturating_sub(s.timestamp_millis()) / 1000)
                .unwrap_or(0)
        });
        let weak = age_secs.is_none_or(|a| a < min_stats_age_secs);
        let since_text = m.since.map_or_else(
            || "an unknown time".to_owned(),
            |s| {
                s.try_to_rfc3339_string()
                    .unwrap_or_else(|_| s.timestamp_millis().to_string())
            },
        );
        let mut detail = format!("unused: no access since {since_text}");
        if let Some(a) = age_secs {
            detail.push_str(&format!(" ({})", age_text(a)));
        }
        if weak {
            detail.push_str(&format!(
                "; weak evidence: the counters are younger than min_stats_age ({})",
                age_text(min_stats_age_secs)
            ));
        }
        detail.push_str(
            "; the counters restart with mongod and are per member: check every member before dropping",
        );
        out.push(finding(
            ix,
            FindingKind::Unused {
                ops: m.ops,
                since: m.since,
                age_secs,
                weak,
            },
            detail,
        ));
    }

    let rank = |k: &FindingKind| match k {
        FindingKind::Duplicate { .. } => 0,
        FindingKind::Redundant { .. } => 1,
        FindingKind::Unused { .. } => 2,
    };
    out.sort_by(|a, b| {
        (&a.namespace, rank(&a.kind), &a.index).cmp(&(&b.namespace, rank(&b.kind), &b.index))
    });
    out
}

/// `short` is a leading prefix of `long` with the same directions, or with
/// every direction reversed.
fn prefix_either_way(short: &[(String, KeyDir)], long: &[(String, KeyDir)]) -> bool {
    if short.len() > long.len() || short.is_empty() {
        return false;
    }
    let pairs = || short.iter().zip(long);
    let same_paths = pairs().all(|((a, _), (b, _))| a == b);
    let same = pairs().all(|((_, x), (_, y))| x == y);
    let reversed = pairs().all(|((_, x), (_, y))| match (x.sign(), y.sign()) {
        (Some(a), Some(b)) => a == -b,
        _ => false,
    });
    same_paths && (same || reversed)
}

fn finding(ix: &ExistingIndex, kind: FindingKind, detail: String) -> IndexFinding {
    let coll = split_namespace(&ix.namespace).map_or(ix.namespace.as_str(), |(_, c)| c);
    IndexFinding {
        namespace: ix.namespace.clone(),
        index: ix.name.clone(),
        kind,
        detail,
        drop_command: doc! { "dropIndexes": coll, "index": ix.name.as_str() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ix(spec: Document) -> ExistingIndex {
        ExistingIndex::from_list_indexes("db.c", &spec).unwrap()
    }

    fn now() -> DateTime {
        DateTime::from_millis(100 * 86_400_000)
    }

    fn used(name: &str, ops: i64) -> IndexUsage {
        IndexUsage::from_index_stats(
            "db.c",
            &doc! { "name": name, "accesses": { "ops": ops, "since": DateTime::from_millis(0) } },
        )
        .unwrap()
    }

    fn summary(indexes: &[ExistingIndex], usage: &[IndexUsage]) -> Vec<(String, String)> {
        index_findings(indexes, usage, now(), 86_400)
            .into_iter()
            .map(|f| {
                let what = match f.kind {
                    FindingKind::Duplicate { of } => format!("duplicate of {of}"),
                    FindingKind::Redundant { covered_by } => format!("redundant with {covered_by}"),
                    FindingKind::Unused { weak, .. } => format!("unused weak={weak}"),
                };
                (f.index, what)
            })
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn reading_list_indexes_documents() {
        let text = ix(doc! { "key": { "_fts": "text", "_ftsx": 1 }, "name": "t", "unique": 1 });
        assert_eq!(
            text.key,
            [
                ("_fts".to_owned(), KeyDir::Special("text".to_owned())),
                ("_ftsx".to_owned(), KeyDir::Asc)
            ]
        );
        assert!(text.unique && !text.ordinary_key());
        let w = ix(doc! { "key": { "a.$**": 1 }, "name": "w" });
        assert_eq!(w.key[0].1, KeyDir::Special("wildcard".to_owned()));
        let d = ix(
            doc! { "key": { "a": -1i64, "b": 1.0 }, "name": "d", "expireAfterSeconds": 60, "hidden": true, "sparse": true },
        );
        assert_eq!(d.key_text(), "{a: -1, b: 1}");
        assert!(d.is_ttl() && d.protected() && d.hidden && d.sparse && !d.full());
        assert!(ExistingIndex::from_list_indexes("db.c", &doc! { "key": { "a": 1 } }).is_err());
        assert!(ExistingIndex::from_list_indexes("db.c", &doc! { "name": "x" }).is_err());
        assert!(IndexUsage::from_index_stats("db.c", &doc! { "name": "x" }).is_err());
        assert!(
            IndexUsage::from_index_stats("db.c", &doc! { "name": "x", "accesses": {} }).is_err()
        );
    }

    #[test]
    fn duplicates_keep_the_protected_then_the_most_used() {
        let indexes = [
            ix(doc! { "key": { "a": 1 }, "name": "a_plain" }),
            ix(doc! { "key": { "a": 1 }, "name": "a_unique", "unique": true }),
            ix(doc! { "key": { "b": 1 }, "name": "b_x" }),
            ix(doc! { "key": { "b": 1 }, "name": "b_y" }),
            ix(doc! { "key": { "c": 1 }, "name": "c_ttl", "expireAfterSeconds": 60 }),
            ix(doc! { "key": { "c": 1 }, "name": "c_plain" }),
            ix(doc! { "key": { "u": 1 }, "name": "u1", "unique": true }),
            ix(doc! { "key": { "u": 1 }, "name": "u2", "unique": true }),
            // Direction matters for duplicates.
            ix(doc! { "key": { "d": 1 }, "name": "d_asc" }),
            ix(doc! { "key": { "d": -1 }, "name": "d_desc" }),
        ];
        let usage = [used("b_x", 0), used("b_y", 7)];
        assert_eq!(
            summary(&indexes, &usage),
            pairs(&[
                ("a_plain", "duplicate of a_unique"),
                ("b_x", "duplicate of b_y"),
                ("c_plain", "duplicate of c_ttl"),
            ])
        );
    }

    #[test]
    fn partial_sparse_hidden_special_and_collation_are_not_compared() {
        let indexes = [
            ix(doc! { "key": { "a": 1, "b": 1 }, "name": "a_1_b_1" }),
            ix(
                doc! { "key": { "a": 1 }, "name": "partial", "partialFilterExpression": { "a": { "$gt": 1 } } },
            ),
            ix(doc! { "key": { "a": 1 }, "name": "sparse", "sparse": true }),
            ix(doc! { "key": { "a": 1 }, "name": "hidden", "hidden": true }),
            ix(doc! { "key": { "a": 1 }, "name": "fr", "collation": { "locale": "fr" } }),
            ix(doc! { "key": { "a": "hashed" }, "name": "hashed" }),
        ];
        assert!(summary(&indexes, &[]).is_empty());
    }

    #[test]
    fn prefix_redundancy() {
        let indexes = [
            ix(doc! { "key": { "_id": 1 }, "name": "_id_" }),
            ix(doc! { "key": { "_id": 1, "x": 1 }, "name": "_id_1_x_1" }),
            ix(doc! { "key": { "a": 1 }, "name": "a_1" }),
            ix(doc! { "key": { "a": 1, "b": -1 }, "name": "a_1_b_-1" }),
            ix(doc! { "key": { "a": 1, "b": -1, "c": 1 }, "name": "a_1_b_-1_c_1" }),
            // All reversed is a prefix; partly reversed is not.
            ix(doc! { "key": { "p": -1, "q": 1 }, "name": "p_-1_q_1" }),
            ix(doc! { "key": { "p": 1, "q": -1, "r": 1 }, "name": "p_1_q_-1_r_1" }),
            ix(doc! { "key": { "m": 1, "n": 1 }, "name": "m_1_n_1" }),
            ix(doc! { "key": { "m": 1, "n": -1, "o": 1 }, "name": "m_1_n_-1_o_1" }),
            // Unique and TTL prefixes are kept; they still cover others.
            ix(doc! { "key": { "u": 1 }, "name": "u_1", "unique": true }),
            ix(doc! { "key": { "u": 1, "v": 1 }, "name": "u_1_v_1" }),
            ix(doc! { "key": { "t": 1 }, "name": "t_ttl", "expireAfterSeconds": 5 }),
            ix(doc! { "key": { "t": 1, "z": 1 }, "name": "t_1_z_1" }),
            // Not a leading prefix.
            ix(doc! { "key": { "b": -1 }, "name": "b_-1" }),
        ];
        assert_eq!(
            summary(&indexes, &[]),
            pairs(&[
                ("a_1", "redundant with a_1_b_-1_c_1"),
                ("a_1_b_-1", "redundant with a_1_b_-1_c_1"),
                ("p_-1_q_1", "redundant with p_1_q_-1_r_1"),
            ])
        );
    }

    #[test]
    fn a_dropped_duplicate_does_not_cover() {
        let indexes = [
            ix(doc! { "key": { "a": 1 }, "name": "a_1" }),
            ix(doc! { "key": { "a": 1, "b": 1 }, "name": "ab_keep", "unique": true }),
            ix(doc! { "key": { "a": 1, "b": 1 }, "name": "ab_dup" }),
        ];
        assert_eq!(
            summary(&indexes, &[]),
            pairs(&[
                ("ab_dup", "duplicate of ab_keep"),
                ("a_1", "redundant with ab_keep"),
            ])
        );
    }

    #[test]
    fn unused_rules() {
        let indexes = [
            ix(doc! { "key": { "_id": 1 }, "name": "_id_" }),
            ix(doc! { "key": { "a": 1 }, "name": "a_1" }),
            ix(doc! { "key": { "b": 1 }, "name": "b_1", "unique": true }),
            ix(doc! { "key": { "c": 1 }, "name": "c_ttl", "expireAfterSeconds": 60 }),
            ix(doc! { "key": { "d": 1 }, "name": "d_1" }),
            ix(doc! { "key": { "e": 1 }, "name": "e_1" }),
            ix(doc! { "key": { "f": 1 }, "name": "f_1" }),
        ];
        let mut building = used("e_1", 0);
        building.building = true;
        let mut unknown_since = used("f_1", 0);
        unknown_since.since = None;
        let from_spec = IndexUsage::from_index_stats(
            "db.c",
            &doc! {
                "name": "g_1", "accesses": { "ops": 0, "since": DateTime::from_millis(0) },
                "spec": { "v": 2, "key": { "g": 1 }, "name": "g_1" },
            },
        )
        .unwrap();
        let unique_spec = IndexUsage::from_index_stats(
            "db.c",
            &doc! {
                "name": "h_1", "accesses": { "ops": 0 },
                "spec": { "key": { "h": 1 }, "name": "h_1", "unique": true },
            },
        )
        .unwrap();
        let usage = [
            used("_id_", 0),
            used("a_1", 0),
            used("b_1", 0),
            used("c_ttl", 0),
            used("d_1", 0),
            used("d_1", 3),
            building,
            unknown_since,
            from_spec,
            unique_spec,
            used("not_listed", 0),
        ];
        assert_eq!(
            summary(&indexes, &usage),
            pairs(&[
                ("a_1", "unused weak=false"),
                ("f_1", "unused weak=true"),
                ("g_1", "unused weak=false"),
            ])
        );
        let f = index_findings(&indexes, &usage, now(), 86_400);
        assert!(
            f[0].detail
                .starts_with("unused: no access since 1970-01-01T00:00:00Z (100d)")
        );
        assert!(f[1].detail.contains("an unknown time; weak evidence"));
        // Young counters: weak.
        let young = index_findings(&indexes, &[used("a_1", 0)], now(), 200 * 86_400);
        assert!(matches!(
            young[0].kind,
            FindingKind::Unused {
                weak: true,
                age_secs: Some(8_640_000),
                ..
            }
        ));
        assert!(
            young[0]
                .detail
                .contains("younger than min_stats_age (200d)")
        );
    }

    #[test]
    fn usage_of_several_members_uses_the_latest_since() {
        let indexes = [ix(doc! { "key": { "a": 1 }, "name": "a_1" })];
        let mut recent = used("a_1", 0);
        recent.since = Some(DateTime::from_millis(now().timestamp_millis() - 3_600_000));
        let f = index_findings(&indexes, &[used("a_1", 0), recent], now(), 86_400);
        assert!(matches!(
            f[0].kind,
            FindingKind::Unused {
                weak: true,
                age_secs: Some(3600),
                ..
            }
        ));
    }
}
