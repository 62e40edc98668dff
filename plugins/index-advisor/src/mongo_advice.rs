//! MongoDB index advice, as pure functions of what the glue read from the
//! server (slow-query log lines, `system.profile` documents, `listIndexes`,
//! `$indexStats` and collection statistics): no host calls, unit-tested on
//! the build host.
//!
//! # API summary
//!
//! Observations ([`observe`]):
//! - `parse_log_line(&str) -> Result<Observation, Skip>` and
//!   `parse_log(&str) -> LogScan` (observations, malformed line numbers
//!   with reasons, ignored counts per reason) for mongod's structured JSON
//!   log (4.4+);
//! - `from_profile(&Document) -> Result<Observation, Skip>` for a
//!   `system.profile` document;
//! - `split_namespace(&str) -> Option<(&str, &str)>` (`db.coll`).
//! - [`Observation`] { namespace, op: [`OpKind`], filter, sort, projection,
//!   plan_summary, docs_examined, keys_examined, nreturned, duration_ms,
//!   has_sort_stage, get_more, truncated, time, command };
//!   [`Skip`]::{Malformed, Ignored}(reason).
//!
//! Shapes ([`shape`]):
//! - `shape_of(&Observation) -> Shape`;
//! - `group_shapes(&[Observation]) -> Vec<ShapeStats>` (first appearance
//!   order), with `ShapeStats::{mean_ms, scan_ratio, impact, collscan}`;
//!   [`Shape`] implements `Display` (`db.c find {a: eq, b: range} sort {c: -1}`).
//!
//! Existing indexes ([`existing`]):
//! - `ExistingIndex::from_list_indexes(ns, &Document) -> Result<_, String>`,
//!   `IndexUsage::from_index_stats(ns, &Document) -> Result<_, String>`;
//! - `index_findings(&[ExistingIndex], &[IndexUsage], now: DateTime,
//!   min_stats_age_secs: u64) -> Vec<IndexFinding>` ([`FindingKind`]::
//!   {Duplicate, Redundant, Unused}, a `detail` line, the `dropIndexes`
//!   command).
//!
//! Suggestions ([`suggest`]):
//! - `advise(&[ShapeStats], &[ExistingIndex], &BTreeMap<String, CollStats>,
//!   &Params) -> Advice`: one [`Outcome`] per shape (`Suggested`, `Served`,
//!   `NoCandidate`, `NotWorthIt`) and the ranked [`Suggestion`]s (key, name,
//!   helped shapes, impact, estimated size, `createIndexes` command);
//! - the pieces: `esr_candidate(&Shape, max_key_fields) ->
//!   Result<Candidate, String>`, `serving_index(&[ExistingIndex],
//!   &Candidate) -> Option<String>`, `key_serves(&[(String, KeyDir)],
//!   &Candidate) -> bool`, `estimate_index_bytes(&CollStats, key_fields) ->
//!   u64`, `CollStats::from_document(&Document)` (`collStats` or
//!   `$collStats`), `index_name(&[(String, i32)]) -> String`,
//!   `create_indexes_command(ns, key, name) -> Document`.
//!
//! # The pipeline
//!
//! 1. **Observations.** Each slow operation becomes an [`Observation`]:
//!    namespace, operation kind, filter, sort, projection, plan summary,
//!    docs/keys examined, documents returned, duration, and an example
//!    command an `explain` can run. Sources: the `"Slow query"` lines (id
//!    51803, components `COMMAND`, `WRITE` and `QUERY`) of the structured
//!    log, whose Extended JSON (`$oid`, `$date`, `$numberLong`, ...) is
//!    converted to BSON values, and `system.profile` documents. Lines and
//!    documents that are not about a user query give a [`Skip`]: malformed
//!    (not JSON, not the log format) or ignored (other messages and
//!    components, `admin`/`local`/`config` databases, `system.*` and
//!    `$cmd` namespaces, commands that are not queries, inserts, and the
//!    summary line of an `update`/`delete` command, whose statements are
//!    logged apart as `WRITE` lines). See [`observe`] for the fields read.
//! 2. **Shapes.** Values are removed: a shape is the namespace, operation,
//!    the filter's field paths with their predicate kind (equality, range,
//!    non-selective, or under a several-branch `$or`), the sort keys with
//!    their directions, the projection's fields, and the operators no btree
//!    bounds (`$where`, `$expr`, `$text`, ...). See [`shape`] for the
//!    classification rules. Per shape: executions, total and mean time,
//!    docs and keys examined, documents returned, blocking sorts, the worst
//!    plan summary and one example command.
//! 3. **ESR candidate** per shape: equality fields, then the sort fields
//!    with their directions, then one range field; at most
//!    [`Params::max_key_fields`] fields. See [`suggest`].
//! 4. **Served** shapes (an existing plain index has the candidate's key as
//!    its leading part, sort directions all equal or all reversed) are not
//!    suggested; partial, sparse and hidden indexes do not count.
//! 5. **Impact** of a shape = `total_ms × max(docsExamined, 1) /
//!    max(nreturned, 1)`, i.e. mean time × frequency × scan ratio. Shapes
//!    below the "worth it" threshold are left out; candidates of one
//!    collection whose key another candidate's key serves are merged into
//!    the longer one; suggestions are ranked by summed impact, with an
//!    estimated size and the `createIndexes` command.
//! 6. **Existing-index findings**: duplicate, prefix-redundant and unused
//!    indexes (from `$indexStats`), with the `dropIndexes` command. See
//!    [`existing`].
//!
//! Nothing is executed: the commands are for an operator (or a later,
//! explicitly allowed step) to run.

pub mod existing;
mod extjson;
pub mod observe;
pub mod shape;
pub mod suggest;

#[cfg(test)]
mod tests;

// The glue's API (flat); unused until the glue is wired in.
#[allow(unused_imports)]
pub use existing::{ExistingIndex, FindingKind, IndexFinding, IndexUsage, KeyDir, index_findings};
#[allow(unused_imports)]
pub use observe::{
    LogScan, Observation, OpKind, Skip, from_profile, parse_log, parse_log_line, split_namespace,
};
#[allow(unused_imports)]
pub use shape::{FieldPredicate, PredicateKind, Shape, ShapeStats, group_shapes, shape_of};
#[allow(unused_imports)]
pub use suggest::{
    Advice, Candidate, CollStats, Outcome, Params, Suggestion, advise, create_indexes_command,
    esr_candidate, estimate_index_bytes, index_name, key_serves, serving_index,
};

use bson::Bson;

/// A non-negative integer from any BSON number (`Int32`, `Int64`, `Double`);
/// `None` for anything else or a negative value.
fn as_u64(value: &Bson) -> Option<u64> {
    match value {
        Bson::Int32(i) => u64::try_from(*i).ok(),
        Bson::Int64(i) => u64::try_from(*i).ok(),
        Bson::Double(d) if d.is_finite() && *d >= 0.0 => Some(*d as u64),
        _ => None,
    }
}

/// Any BSON number as `f64`.
fn as_f64(value: &Bson) -> Option<f64> {
    match value {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(d) => Some(*d),
        _ => None,
    }
}

/// `true`, or a non-zero number (old servers wrote `unique: 1`).
fn truthy(value: Option<&Bson>) -> bool {
    match value {
        Some(Bson::Boolean(b)) => *b,
        Some(other) => as_f64(other).is_some_and(|n| n != 0.0),
        None => false,
    }
}

/// `{a: 1, b: -1}`, for humans.
fn key_text<D: std::fmt::Display>(key: &[(String, D)]) -> String {
    let parts: Vec<String> = key
        .iter()
        .map(|(path, dir)| format!("{path}: {dir}"))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// `3d 4h`, `5m`, `42s`.
fn age_text(seconds: u64) -> String {
    let (d, h, m) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) if m > 0 => format!("{h}h {m}m"),
        (0, h, _) => format!("{h}h"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}
