//! The index advisor's decisions, as pure functions of the index
//! descriptions the glue read from the catalog (no host calls, no bindings),
//! so they are unit-tested on the build host.
//!
//! Every index gets at most one finding, the first that applies:
//!
//! 1. **invalid** (`pg_index.indisvalid = false`): `REINDEX INDEX
//!    CONCURRENTLY`, or drop it;
//! 2. **duplicate**: same table, access method, key columns (expression,
//!    operator class, collation and ordering, in order), INCLUDE columns (as a
//!    set) and predicate as another valid index. One index of each group is
//!    kept (primary key, then constraint-backed, then unique, then the most
//!    scanned, then the first by name); the others are suggested for
//!    dropping unless they are protected;
//! 3. **redundant** (btree only, no predicate on either index): the key
//!    columns are a leading prefix of another valid btree index's, and its
//!    INCLUDE columns are among that index's columns; the covering index
//!    named is the widest one;
//! 4. **unused**: `idx_scan = 0`. A warning when the statistics are at least
//!    `min_stats_age` old, else info: the evidence is weak.
//!
//! Protected indexes (primary keys, unique indexes and indexes backing a
//! constraint, `pg_constraint.conindid`) are never suggested for dropping,
//! except that an invalid one is reported as invalid.

use std::cmp::Reverse;
use std::collections::BTreeSet;

/// One key column of an index: the column name or expression as PostgreSQL
/// prints it, and what else makes two keys the same (operator class and
/// collation OIDs, `indoption` bits), as text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Key {
    pub expr: String,
    pub opclass: String,
    pub collation: String,
    pub option: String,
}

impl Key {
    /// A key with the default operator class, collation and ordering
    /// (tests and simple callers).
    #[cfg(test)]
    pub fn plain(expr: &str) -> Key {
        Key {
            expr: expr.to_owned(),
            opclass: "0".to_owned(),
            collation: "0".to_owned(),
            option: "0".to_owned(),
        }
    }
}

/// One index, as the plugin uses it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexInfo {
    pub schema: String,
    pub table: String,
    pub name: String,
    /// Access method: `btree`, `hash`, `gin`, ...
    pub method: String,
    pub keys: Vec<Key>,
    /// INCLUDE (non-key) columns.
    pub include: Vec<String>,
    /// The `WHERE` of a partial index.
    pub predicate: Option<String>,
    pub unique: bool,
    pub primary: bool,
    pub constraint_backed: bool,
    pub valid: bool,
    pub size_bytes: u64,
    pub scans: u64,
}

impl IndexInfo {
    /// Primary keys, unique indexes and constraint-backed indexes are never
    /// suggested for dropping.
    pub fn protected(&self) -> bool {
        self.primary || self.unique || self.constraint_backed
    }

    /// `schema.name`, for humans.
    pub fn display_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// `"schema"."name"`, for statements.
    pub fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// `schema.table (a, lower(b)) INCLUDE (c) WHERE ...`.
    pub fn definition(&self) -> String {
        let keys: Vec<&str> = self.keys.iter().map(|k| k.expr.as_str()).collect();
        let mut text = format!(
            "{}.{} USING {} ({})",
            self.schema,
            self.table,
            self.method,
            keys.join(", ")
        );
        if !self.include.is_empty() {
            text.push_str(&format!(" INCLUDE ({})", self.include.join(", ")));
        }
        if let Some(p) = &self.predicate {
            text.push_str(&format!(" WHERE {p}"));
        }
        text
    }

    fn same_table(&self, other: &IndexInfo) -> bool {
        self.schema == other.schema && self.table == other.table
    }

    fn include_set(&self) -> BTreeSet<&str> {
        self.include.iter().map(String::as_str).collect()
    }

    /// Everything that makes two indexes interchangeable.
    fn same_definition(&self, other: &IndexInfo) -> bool {
        self.same_table(other)
            && self.method == other.method
            && self.keys == other.keys
            && self.include_set() == other.include_set()
            && self.predicate == other.predicate
    }

    /// Whether `other` serves every lookup this btree index serves.
    fn covered_by(&self, other: &IndexInfo) -> bool {
        if !(self.same_table(other)
            && self.method == "btree"
            && other.method == "btree"
            && self.predicate.is_none()
            && other.predicate.is_none()
            && self.keys.len() <= other.keys.len())
        {
            return false;
        }
        if other.keys.get(..self.keys.len()) != Some(self.keys.as_slice()) {
            return false;
        }
        let columns: BTreeSet<&str> = other
            .keys
            .iter()
            .map(|k| k.expr.as_str())
            .chain(other.include.iter().map(String::as_str))
            .collect();
        self.include.iter().all(|c| columns.contains(c.as_str()))
    }
}

/// `"name"` with embedded quotes doubled.
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// How old the index usage statistics are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsAge {
    pub seconds: u64,
    /// When counting started, as text.
    pub since: String,
    /// True when `pg_stat_database.stats_reset` is set; false when the
    /// statistics date from the server start.
    pub reset: bool,
}

impl StatsAge {
    fn describe(&self) -> String {
        if self.reset {
            format!(
                "{} since the statistics reset at {}",
                age(self.seconds),
                self.since
            )
        } else {
            format!(
                "{} since the server start at {} (statistics never reset)",
                age(self.seconds),
                self.since
            )
        }
    }
}

/// What a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    Invalid,
    Duplicate,
    Redundant,
    Unused,
}

impl Category {
    /// `invalid`, `duplicate`, `redundant`, `unused`.
    pub fn name(self) -> &'static str {
        match self {
            Category::Invalid => "invalid",
            Category::Duplicate => "duplicate",
            Category::Redundant => "redundant",
            Category::Unused => "unused",
        }
    }
}

/// How much attention a finding needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Info,
    Warning,
}

/// One finding about one index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexFinding {
    pub category: Category,
    pub level: Level,
    /// The index, into the input slice.
    pub index: usize,
    /// The index kept or covering it (duplicate, redundant).
    pub other: Option<usize>,
    pub title: String,
    pub detail: String,
    pub action: String,
}

/// Splits a comma-separated parameter (`public, app`) into names; `None`
/// when it is absent or lists nothing.
pub fn name_list(param: Option<&str>) -> Option<Vec<String>> {
    let names: Vec<String> = param?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (!names.is_empty()).then_some(names)
}

/// Whether a schema is PostgreSQL's own.
pub fn is_system_schema(schema: &str) -> bool {
    matches!(schema, "pg_catalog" | "information_schema")
        || schema.starts_with("pg_toast")
        || schema.starts_with("pg_temp_")
}

/// Whether an index in `schema` is looked at.
pub fn schema_included(schema: &str, wanted: Option<&[String]>) -> bool {
    match wanted {
        Some(list) => list.iter().any(|s| s == schema),
        None => !is_system_schema(schema),
    }
}

/// The order in which one of a duplicate group is kept: best first.
fn keep_rank(ix: &IndexInfo) -> impl Ord + '_ {
    (
        Reverse(ix.primary),
        Reverse(ix.constraint_backed),
        Reverse(ix.unique),
        Reverse(ix.scans),
        ix.name.as_str(),
    )
}

fn usage(ix: &IndexInfo) -> String {
    format!("{}, {} scans", bytes(ix.size_bytes), count(ix.scans))
}

/// The findings for `indexes`, ordered by category, then schema, table and
/// index name. `min_stats_age_secs`: below it, unused-index evidence is weak.
pub fn analyze(
    indexes: &[IndexInfo],
    stats: &StatsAge,
    min_stats_age_secs: u64,
) -> Vec<IndexFinding> {
    let mut findings: Vec<IndexFinding> = Vec::new();
    let mut flagged = vec![false; indexes.len()];
    let at = |i: usize| indexes.get(i);

    // 1. Invalid.
    for (i, ix) in indexes.iter().enumerate() {
        if ix.valid {
            continue;
        }
        if let Some(f) = flagged.get_mut(i) {
            *f = true;
        }
        let q = ix.qualified();
        let mut action = format!("REINDEX INDEX CONCURRENTLY {q}");
        if ix.unique {
            action.push_str(" (after removing the duplicate values that made it fail)");
        }
        action.push_str(&format!(
            ", or DROP INDEX CONCURRENTLY {q} if it is not needed"
        ));
        findings.push(IndexFinding {
            category: Category::Invalid,
            level: Level::Warning,
            index: i,
            other: None,
            title: format!("invalid index {}", ix.display_name()),
            detail: format!(
                "{}: indisvalid = false (left by a failed CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY); queries do not use it but every write still maintains it; {}",
                ix.definition(),
                bytes(ix.size_bytes)
            ),
            action,
        });
    }

    // 2. Duplicates, among valid indexes.
    let valid: Vec<usize> = (0..indexes.len())
        .filter(|&i| at(i).is_some_and(|ix| ix.valid))
        .collect();
    let mut grouped = vec![false; indexes.len()];
    for &i in &valid {
        let Some(first) = at(i) else { continue };
        if grouped.get(i).copied().unwrap_or(true) {
            continue;
        }
        let mut group: Vec<usize> = valid
            .iter()
            .copied()
            .filter(|&j| at(j).is_some_and(|ix| ix.same_definition(first)))
            .collect();
        for &j in &group {
            if let Some(g) = grouped.get_mut(j) {
                *g = true;
            }
        }
        if group.len() < 2 {
            continue;
        }
        group.sort_by(|&a, &b| match (at(a), at(b)) {
            (Some(x), Some(y)) => keep_rank(x).cmp(&keep_rank(y)),
            _ => std::cmp::Ordering::Equal,
        });
        let Some((&keep, rest)) = group.split_first() else {
            continue;
        };
        let Some(kept) = at(keep) else { continue };
        for &j in rest {
            let Some(ix) = at(j) else { continue };
            if ix.protected() {
                continue;
            }
            if let Some(f) = flagged.get_mut(j) {
                *f = true;
            }
            findings.push(IndexFinding {
                category: Category::Duplicate,
                level: Level::Warning,
                index: j,
                other: Some(keep),
                title: format!("duplicate index {}", ix.display_name()),
                detail: format!(
                    "same definition as {} ({}): {}; {} (kept index: {})",
                    kept.display_name(),
                    kind(kept),
                    ix.definition(),
                    usage(ix),
                    usage(kept)
                ),
                action: format!("DROP INDEX CONCURRENTLY {}", ix.qualified()),
            });
        }
    }

    // 3. Prefix-redundant btree indexes, smallest first.
    let mut candidates: Vec<usize> = valid
        .iter()
        .copied()
        .filter(|&i| {
            at(i)
                .is_some_and(|ix| !ix.protected() && ix.method == "btree" && ix.predicate.is_none())
        })
        .collect();
    candidates.sort_by_key(|&i| at(i).map(|ix| (ix.keys.len(), ix.include.len(), ix.name.clone())));
    for i in candidates {
        let Some(ix) = at(i) else { continue };
        if flagged.get(i).copied().unwrap_or(true) {
            continue;
        }
        let cover = valid
            .iter()
            .copied()
            .filter(|&j| j != i && !flagged.get(j).copied().unwrap_or(true))
            .filter_map(|j| Some((j, at(j)?)))
            .filter(|(_, other)| ix.covered_by(other))
            .min_by(|(_, a), (_, b)| {
                (
                    Reverse(a.keys.len()),
                    Reverse(a.include.len()),
                    Reverse(a.protected()),
                    &a.name,
                )
                    .cmp(&(
                        Reverse(b.keys.len()),
                        Reverse(b.include.len()),
                        Reverse(b.protected()),
                        &b.name,
                    ))
            });
        let Some((j, other)) = cover else { continue };
        if let Some(f) = flagged.get_mut(i) {
            *f = true;
        }
        findings.push(IndexFinding {
            category: Category::Redundant,
            level: Level::Warning,
            index: i,
            other: Some(j),
            title: format!("redundant index {}", ix.display_name()),
            detail: format!(
                "its key columns ({}) are a leading prefix of {} ({}): {}; {} (covering index: {})",
                keys_text(ix),
                other.display_name(),
                keys_text(other),
                ix.definition(),
                usage(ix),
                usage(other)
            ),
            action: format!("DROP INDEX CONCURRENTLY {}", ix.qualified()),
        });
    }

    // 4. Unused.
    let weak = stats.seconds < min_stats_age_secs;
    for &i in &valid {
        let Some(ix) = at(i) else { continue };
        if ix.scans > 0 || ix.protected() || flagged.get(i).copied().unwrap_or(true) {
            continue;
        }
        let statement = format!("DROP INDEX CONCURRENTLY {}", ix.qualified());
        let base = format!(
            "{}: 0 scans in the {}; {}",
            ix.definition(),
            stats.describe(),
            bytes(ix.size_bytes)
        );
        let (level, detail, action) = if weak {
            (
                Level::Info,
                format!(
                    "{base}; weak evidence: the statistics are younger than min_stats_age ({})",
                    age(min_stats_age_secs)
                ),
                format!(
                    "check again once the statistics are {} old; if it is still unused: {statement}",
                    age(min_stats_age_secs)
                ),
            )
        } else {
            (
                Level::Warning,
                base,
                format!(
                    "{statement} (first check standbys and rare jobs: their scans are not counted here)"
                ),
            )
        };
        findings.push(IndexFinding {
            category: Category::Unused,
            level,
            index: i,
            other: None,
            title: format!("unused index {}", ix.display_name()),
            detail,
            action,
        });
    }

    findings.sort_by_key(|f| {
        (
            f.category,
            at(f.index).map(|ix| (ix.schema.clone(), ix.table.clone(), ix.name.clone())),
        )
    });
    findings
}

fn kind(ix: &IndexInfo) -> &'static str {
    if ix.primary {
        "primary key"
    } else if ix.constraint_backed {
        "backs a constraint"
    } else if ix.unique {
        "unique"
    } else {
        "plain"
    }
}

fn keys_text(ix: &IndexInfo) -> String {
    let keys: Vec<&str> = ix.keys.iter().map(|k| k.expr.as_str()).collect();
    keys.join(", ")
}

/// Counts per category: invalid, duplicate, redundant, unused.
pub fn tally(findings: &[IndexFinding]) -> [(Category, u64); 4] {
    let n = |c: Category| {
        u64::try_from(findings.iter().filter(|f| f.category == c).count()).unwrap_or(u64::MAX)
    };
    [
        (Category::Invalid, n(Category::Invalid)),
        (Category::Duplicate, n(Category::Duplicate)),
        (Category::Redundant, n(Category::Redundant)),
        (Category::Unused, n(Category::Unused)),
    ]
}

/// A duration in seconds, in its two largest units: `3d 4h`, `2h 5m`,
/// `4m 10s`, `45s`.
pub fn age(seconds: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts: Vec<String> = Vec::new();
    let mut rest = seconds;
    for (size, unit) in UNITS {
        let n = rest / size;
        rest %= size;
        if n > 0 || !parts.is_empty() {
            parts.push(format!("{n}{unit}"));
        }
        if parts.len() == 2 {
            break;
        }
    }
    match parts.as_slice() {
        [] => "0s".to_owned(),
        [one, zero] if zero.starts_with('0') => one.clone(),
        _ => parts.join(" "),
    }
}

/// `41,000` (the SDK's).
pub use warden_sdk::units::count;

/// Binary units with one decimal: `512 B`, `3.2 MiB` (the SDK's).
pub use warden_sdk::units::bytes;

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn ix(name: &str, keys: &[&str]) -> IndexInfo {
        IndexInfo {
            schema: "public".into(),
            table: "t".into(),
            name: name.into(),
            method: "btree".into(),
            keys: keys.iter().map(|k| Key::plain(k)).collect(),
            include: Vec::new(),
            predicate: None,
            unique: false,
            primary: false,
            constraint_backed: false,
            valid: true,
            size_bytes: 16_384,
            scans: 5,
        }
    }

    fn old() -> StatsAge {
        StatsAge {
            seconds: 30 * DAY,
            since: "2026-10-01 00:00:00+00".into(),
            reset: true,
        }
    }

    fn young() -> StatsAge {
        StatsAge {
            seconds: 3_600,
            since: "2026-11-22 05:00:00+00".into(),
            reset: false,
        }
    }

    /// `(category, index name, other index name)` per finding.
    fn summary(indexes: &[IndexInfo], stats: &StatsAge) -> Vec<(Category, String, Option<String>)> {
        analyze(indexes, stats, DAY)
            .iter()
            .map(|f| {
                (
                    f.category,
                    indexes[f.index].name.clone(),
                    f.other.map(|o| indexes[o].name.clone()),
                )
            })
            .collect()
    }

    fn one(c: Category, name: &str, other: Option<&str>) -> (Category, String, Option<String>) {
        (c, name.to_owned(), other.map(str::to_owned))
    }

    #[test]
    fn nothing_to_report_for_used_distinct_indexes() {
        let indexes = [ix("a", &["a"]), ix("b", &["b"]), ix("c_d", &["c", "d"])];
        assert!(analyze(&indexes, &old(), DAY).is_empty());
        assert!(analyze(&[], &old(), DAY).is_empty());
    }

    #[test]
    fn unused_index_is_a_warning_with_old_statistics() {
        let mut a = ix("a_idx", &["a"]);
        a.scans = 0;
        a.size_bytes = 3 * 1024 * 1024;
        let f = analyze(&[a], &old(), DAY);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].category, Category::Unused);
        assert_eq!(f[0].level, Level::Warning);
        assert_eq!(f[0].title, "unused index public.a_idx");
        assert!(f[0].detail.contains("0 scans"), "{}", f[0].detail);
        assert!(f[0].detail.contains("3.0 MiB"), "{}", f[0].detail);
        assert!(
            f[0].detail
                .contains("0 scans in the 30d since the statistics reset at"),
            "{}",
            f[0].detail
        );
        assert!(f[0].detail.contains("statistics reset"), "{}", f[0].detail);
        assert!(!f[0].detail.contains("weak"), "{}", f[0].detail);
        assert!(
            f[0].action
                .starts_with(r#"DROP INDEX CONCURRENTLY "public"."a_idx""#),
            "{}",
            f[0].action
        );
    }

    #[test]
    fn unused_index_with_young_statistics_is_weak_evidence() {
        let mut a = ix("a_idx", &["a"]);
        a.scans = 0;
        let f = analyze(&[a], &young(), DAY);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].level, Level::Info);
        assert!(f[0].detail.contains("weak evidence"), "{}", f[0].detail);
        assert!(
            f[0].detail.contains("1h since the server start at"),
            "{}",
            f[0].detail
        );
        assert!(f[0].detail.contains("server start"), "{}", f[0].detail);
        assert!(
            f[0].detail.contains("min_stats_age (1d)"),
            "{}",
            f[0].detail
        );
        assert!(
            f[0].action.contains("DROP INDEX CONCURRENTLY"),
            "{}",
            f[0].action
        );
        // Exactly at the threshold: strong.
        let mut a = ix("a_idx", &["a"]);
        a.scans = 0;
        let at_threshold = StatsAge {
            seconds: DAY,
            ..young()
        };
        assert_eq!(analyze(&[a], &at_threshold, DAY)[0].level, Level::Warning);
    }

    #[test]
    fn protected_indexes_are_never_unused_findings() {
        let mut pk = ix("t_pkey", &["id"]);
        pk.primary = true;
        pk.unique = true;
        let mut uq = ix("t_email_key", &["email"]);
        uq.unique = true;
        let mut ex = ix("t_code_excl", &["code"]);
        ex.constraint_backed = true;
        let indexes: Vec<IndexInfo> = [pk, uq, ex]
            .into_iter()
            .map(|mut i| {
                i.scans = 0;
                i
            })
            .collect();
        assert!(analyze(&indexes, &old(), DAY).is_empty());
    }

    #[test]
    fn duplicate_pair_keeps_the_first_by_name_when_equal() {
        let indexes = [ix("dup_b", &["a", "b"]), ix("dup_a", &["a", "b"])];
        assert_eq!(
            summary(&indexes, &old()),
            vec![one(Category::Duplicate, "dup_b", Some("dup_a"))]
        );
        let f = analyze(&indexes, &old(), DAY);
        assert_eq!(f[0].level, Level::Warning);
        assert_eq!(f[0].title, "duplicate index public.dup_b");
        assert_eq!(f[0].action, r#"DROP INDEX CONCURRENTLY "public"."dup_b""#);
        assert!(
            f[0].detail.contains("same definition as public.dup_a"),
            "{}",
            f[0].detail
        );
    }

    #[test]
    fn duplicate_keeps_the_more_scanned_one() {
        let mut a = ix("a1", &["a"]);
        a.scans = 1;
        let mut b = ix("a2", &["a"]);
        b.scans = 100;
        assert_eq!(
            summary(&[a, b], &old()),
            vec![one(Category::Duplicate, "a1", Some("a2"))]
        );
    }

    #[test]
    fn duplicate_of_a_constraint_index_drops_the_plain_one() {
        let mut uq = ix("z_key", &["email"]);
        uq.unique = true;
        uq.constraint_backed = true;
        uq.scans = 0;
        let plain = ix("a_email", &["email"]);
        let mut pk = ix("t_pkey", &["email"]);
        pk.primary = true;
        pk.unique = true;
        assert_eq!(
            summary(&[uq.clone(), plain.clone()], &old()),
            vec![one(Category::Duplicate, "a_email", Some("z_key"))]
        );
        // Two protected duplicates and a plain one: only the plain one goes.
        assert_eq!(
            summary(&[uq, plain, pk], &old()),
            vec![one(Category::Duplicate, "a_email", Some("t_pkey"))]
        );
    }

    #[test]
    fn two_unique_duplicates_are_not_suggested_for_dropping() {
        let mut a = ix("u1", &["a"]);
        a.unique = true;
        let mut b = ix("u2", &["a"]);
        b.unique = true;
        assert!(analyze(&[a, b], &old(), DAY).is_empty());
    }

    #[test]
    fn differences_that_make_indexes_distinct() {
        let base = ix("x1", &["a", "b"]);
        let variants: Vec<IndexInfo> = vec![
            // Order of keys.
            ix("x2", &["b", "a"]),
            // Operator class.
            {
                let mut v = ix("x2", &["a", "b"]);
                v.keys[1].opclass = "10044".into();
                v
            },
            // Collation.
            {
                let mut v = ix("x2", &["a", "b"]);
                v.keys[0].collation = "950".into();
                v
            },
            // Ordering (DESC).
            {
                let mut v = ix("x2", &["a", "b"]);
                v.keys[1].option = "3".into();
                v
            },
            // Predicate.
            {
                let mut v = ix("x2", &["a", "b"]);
                v.predicate = Some("(a > 0)".into());
                v
            },
            // Access method.
            {
                let mut v = ix("x2", &["a", "b"]);
                v.method = "hash".into();
                v
            },
            // Another table.
            {
                let mut v = ix("x2", &["a", "b"]);
                v.table = "u".into();
                v
            },
            // Another schema.
            {
                let mut v = ix("x2", &["a", "b"]);
                v.schema = "app".into();
                v
            },
            // INCLUDE columns the other lacks.
            {
                let mut v = ix("x2", &["a", "b"]);
                v.include = vec!["c".into()];
                v
            },
        ];
        for v in variants {
            let found = summary(&[base.clone(), v.clone()], &old());
            assert!(
                !found.iter().any(|(c, _, _)| *c == Category::Duplicate),
                "{v:?}: {found:?}"
            );
        }
    }

    #[test]
    fn include_columns_compare_as_a_set_and_partial_duplicates_match() {
        let mut a = ix("p1", &["a"]);
        a.include = vec!["c".into(), "d".into()];
        let mut b = ix("p2", &["a"]);
        b.include = vec!["d".into(), "c".into()];
        assert_eq!(
            summary(&[a, b], &old()),
            vec![one(Category::Duplicate, "p2", Some("p1"))]
        );
        let mut a = ix("w1", &["a"]);
        a.predicate = Some("(deleted_at IS NULL)".into());
        let mut b = ix("w2", &["a"]);
        b.predicate = Some("(deleted_at IS NULL)".into());
        assert_eq!(
            summary(&[a, b], &old()),
            vec![one(Category::Duplicate, "w2", Some("w1"))]
        );
    }

    #[test]
    fn expression_keys_are_compared_as_text() {
        let a = ix("l1", &["lower(email)"]);
        let b = ix("l2", &["lower(email)"]);
        let c = ix("l3", &["upper(email)"]);
        assert_eq!(
            summary(&[a, b, c], &old()),
            vec![one(Category::Duplicate, "l2", Some("l1"))]
        );
    }

    #[test]
    fn three_way_duplicate_flags_two() {
        let indexes = [ix("d3", &["a"]), ix("d1", &["a"]), ix("d2", &["a"])];
        assert_eq!(
            summary(&indexes, &old()),
            vec![
                one(Category::Duplicate, "d2", Some("d1")),
                one(Category::Duplicate, "d3", Some("d1")),
            ]
        );
    }

    #[test]
    fn prefix_is_redundant() {
        let indexes = [ix("t_a", &["a"]), ix("t_a_b", &["a", "b"])];
        assert_eq!(
            summary(&indexes, &old()),
            vec![one(Category::Redundant, "t_a", Some("t_a_b"))]
        );
        let f = analyze(&indexes, &old(), DAY);
        assert_eq!(f[0].level, Level::Warning);
        assert_eq!(f[0].title, "redundant index public.t_a");
        assert_eq!(f[0].action, r#"DROP INDEX CONCURRENTLY "public"."t_a""#);
        assert!(
            f[0].detail
                .contains("(a) are a leading prefix of public.t_a_b (a, b)"),
            "{}",
            f[0].detail
        );
    }

    #[test]
    fn the_widest_covering_index_is_named() {
        let indexes = [
            ix("t_a", &["a"]),
            ix("t_a_b", &["a", "b"]),
            ix("t_a_b_c", &["a", "b", "c"]),
        ];
        assert_eq!(
            summary(&indexes, &old()),
            vec![
                one(Category::Redundant, "t_a", Some("t_a_b_c")),
                one(Category::Redundant, "t_a_b", Some("t_a_b_c")),
            ]
        );
    }

    #[test]
    fn not_a_prefix_is_not_redundant() {
        let cases = [
            // Second column, not leading.
            [ix("t_b", &["b"]), ix("t_a_b", &["a", "b"])],
            // Different opclass on the shared key.
            [
                {
                    let mut v = ix("t_a", &["a"]);
                    v.keys[0].opclass = "10044".into();
                    v
                },
                ix("t_a_b", &["a", "b"]),
            ],
            // A predicate on the short one.
            [
                {
                    let mut v = ix("t_a", &["a"]);
                    v.predicate = Some("(a > 0)".into());
                    v
                },
                ix("t_a_b", &["a", "b"]),
            ],
            // A predicate on the long one.
            [ix("t_a", &["a"]), {
                let mut v = ix("t_a_b", &["a", "b"]);
                v.predicate = Some("(a > 0)".into());
                v
            }],
            // Not btree.
            [
                {
                    let mut v = ix("t_a", &["a"]);
                    v.method = "hash".into();
                    v
                },
                ix("t_a_b", &["a", "b"]),
            ],
            [ix("t_a", &["a"]), {
                let mut v = ix("t_a_b", &["a", "b"]);
                v.method = "gist".into();
                v
            }],
            // Another table.
            [ix("t_a", &["a"]), {
                let mut v = ix("t_a_b", &["a", "b"]);
                v.table = "u".into();
                v
            }],
            // INCLUDE columns the longer index lacks.
            [
                {
                    let mut v = ix("t_a", &["a"]);
                    v.include = vec!["z".into()];
                    v
                },
                ix("t_a_b", &["a", "b"]),
            ],
        ];
        for case in cases {
            let found = summary(&case, &old());
            assert!(found.is_empty(), "{case:?}: {found:?}");
        }
    }

    #[test]
    fn include_columns_covered_by_keys_or_includes_are_redundant() {
        let mut short = ix("t_a", &["a"]);
        short.include = vec!["b".into()];
        assert_eq!(
            summary(&[short.clone(), ix("t_a_b", &["a", "b"])], &old()),
            vec![one(Category::Redundant, "t_a", Some("t_a_b"))]
        );
        // Same keys, fewer includes.
        let mut wide = ix("t_a_wide", &["a"]);
        wide.include = vec!["b".into(), "c".into()];
        assert_eq!(
            summary(&[short, wide], &old()),
            vec![one(Category::Redundant, "t_a", Some("t_a_wide"))]
        );
    }

    #[test]
    fn protected_prefix_is_kept_but_can_cover() {
        let mut uq = ix("t_a_key", &["a"]);
        uq.unique = true;
        let mut ex = ix("t_a_excl", &["a"]);
        ex.constraint_backed = true;
        ex.scans = 0;
        assert!(analyze(&[uq, ix("t_a_b", &["a", "b"])], &old(), DAY).is_empty());
        assert!(analyze(&[ex, ix("t_a_c", &["a", "c"])], &old(), DAY).is_empty());
        // A plain prefix of a primary key is redundant.
        let mut pk = ix("t_pkey", &["a", "b"]);
        pk.primary = true;
        pk.unique = true;
        assert_eq!(
            summary(&[ix("t_a", &["a"]), pk], &old()),
            vec![one(Category::Redundant, "t_a", Some("t_pkey"))]
        );
    }

    #[test]
    fn dropped_duplicates_do_not_cover() {
        // dup_x and dup_y are duplicates; t_a is covered by the kept one.
        let indexes = [
            ix("t_a", &["a"]),
            ix("dup_y", &["a", "b"]),
            ix("dup_x", &["a", "b"]),
        ];
        assert_eq!(
            summary(&indexes, &old()),
            vec![
                one(Category::Duplicate, "dup_y", Some("dup_x")),
                one(Category::Redundant, "t_a", Some("dup_x")),
            ]
        );
    }

    #[test]
    fn invalid_indexes_are_reported_and_left_out_of_the_rest() {
        let mut bad = ix("t_a_b_bad", &["a", "b"]);
        bad.valid = false;
        bad.scans = 0;
        bad.unique = true;
        let indexes = [ix("t_a", &["a"]), bad, ix("t_a2", &["a"])];
        assert_eq!(
            summary(&indexes, &old()),
            vec![
                one(Category::Invalid, "t_a_b_bad", None),
                one(Category::Duplicate, "t_a2", Some("t_a")),
            ]
        );
        let f = analyze(&indexes, &old(), DAY);
        assert_eq!(f[0].level, Level::Warning);
        assert_eq!(f[0].title, "invalid index public.t_a_b_bad");
        assert!(
            f[0].action
                .starts_with(r#"REINDEX INDEX CONCURRENTLY "public"."t_a_b_bad""#),
            "{}",
            f[0].action
        );
        assert!(f[0].action.contains("duplicate values"), "{}", f[0].action);
        assert!(
            f[0].action.contains("DROP INDEX CONCURRENTLY"),
            "{}",
            f[0].action
        );
        assert!(
            f[0].detail.contains("indisvalid = false"),
            "{}",
            f[0].detail
        );
    }

    #[test]
    fn an_index_gets_one_finding_and_findings_are_ordered() {
        let mut indexes = vec![
            ix("z_unused", &["z"]),
            ix("b_dup2", &["b"]),
            ix("b_dup1", &["b"]),
            ix("a_short", &["a"]),
            ix("a_long", &["a", "c"]),
        ];
        for i in &mut indexes {
            i.scans = 0;
        }
        let mut bad = ix("y_bad", &["y"]);
        bad.valid = false;
        indexes.push(bad);
        assert_eq!(
            summary(&indexes, &young()),
            vec![
                one(Category::Invalid, "y_bad", None),
                one(Category::Duplicate, "b_dup2", Some("b_dup1")),
                one(Category::Redundant, "a_short", Some("a_long")),
                one(Category::Unused, "a_long", None),
                one(Category::Unused, "b_dup1", None),
                one(Category::Unused, "z_unused", None),
            ]
        );
        let f = analyze(&indexes, &young(), DAY);
        assert_eq!(
            tally(&f),
            [
                (Category::Invalid, 1),
                (Category::Duplicate, 1),
                (Category::Redundant, 1),
                (Category::Unused, 3),
            ]
        );
    }

    #[test]
    fn quoting_and_definition() {
        let mut v = ix("we\"ird", &["a", "lower(b)"]);
        v.schema = "My Schema".into();
        v.include = vec!["c".into()];
        v.predicate = Some("(a > 0)".into());
        assert_eq!(v.qualified(), r#""My Schema"."we""ird""#);
        assert_eq!(
            v.definition(),
            "My Schema.t USING btree (a, lower(b)) INCLUDE (c) WHERE (a > 0)"
        );
    }

    #[test]
    fn schema_parameter() {
        assert_eq!(name_list(None), None);
        assert_eq!(name_list(Some(" , ")), None);
        assert_eq!(
            name_list(Some("public, app ,")),
            Some(vec!["public".to_owned(), "app".to_owned()])
        );
        assert!(schema_included("public", None));
        assert!(!schema_included("pg_catalog", None));
        assert!(!schema_included("information_schema", None));
        assert!(!schema_included("pg_toast", None));
        assert!(!schema_included("pg_temp_3", None));
        let only = vec!["app".to_owned()];
        assert!(schema_included("app", Some(&only)));
        assert!(!schema_included("public", Some(&only)));
    }

    #[test]
    fn formatting() {
        assert_eq!(age(0), "0s");
        assert_eq!(age(45), "45s");
        assert_eq!(age(250), "4m 10s");
        assert_eq!(age(3_600), "1h");
        assert_eq!(age(7_500), "2h 5m");
        assert_eq!(age(DAY), "1d");
        assert_eq!(age(3 * DAY + 4 * 3_600 + 59), "3d 4h");
        assert_eq!(count(0), "0");
        assert_eq!(count(41_000), "41,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(16_384), "16.0 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 + 200 * 1024), "3.2 MiB");
    }
}
