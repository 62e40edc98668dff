//! What-if planning for PostgreSQL (HypoPG), `warden:plugin/planner`: the
//! generic plan's cost of a read, as it is and with hypothetical indexes
//! that exist only for the call. Needs `read` on the target and the
//! `hypopg` extension in its database.
//!
//! ```no_run
//! use warden_sdk::planner::{IndexSpec, explain_generic};
//! # fn demo() -> Result<(), warden_sdk::Error> {
//! let statement = "SELECT * FROM orders WHERE customer_id = $1";
//! let before = explain_generic("app", statement, &[])?;
//! let after = explain_generic("app", statement, &[IndexSpec::new("public.orders", &["customer_id"])])?;
//! let gain = before.total_cost - after.total_cost;
//! # let _ = gain; Ok(()) }
//! ```

use crate::Error;
pub use crate::bindings::warden::plugin::planner::{Estimate, HypotheticalIndex, IndexSpec};

impl IndexSpec {
    /// A btree index on `columns` (in key order) of `table` (`schema.table`
    /// or a bare name).
    pub fn new(table: impl Into<String>, columns: &[&str]) -> IndexSpec {
        IndexSpec {
            table: table.into(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        }
    }
}

/// Plans `statement` generically on `target` with `hypothetical` indexes in
/// place for this call only. Nothing is executed or created.
pub fn explain_generic(
    target: &str,
    statement: &str,
    hypothetical: &[IndexSpec],
) -> Result<Estimate, Error> {
    crate::bindings::warden::plugin::planner::explain_generic(target, statement, hypothetical)
}

/// Plans each of `statements` generically with the same `hypothetical`
/// indexes, created once for the call (since 0.1.4): one result per
/// statement, in order. `plan_json` is empty unless `with_plans`.
pub fn explain_generic_batch(
    target: &str,
    statements: &[String],
    hypothetical: &[IndexSpec],
    with_plans: bool,
) -> Result<Vec<Result<Estimate, Error>>, Error> {
    crate::bindings::warden::plugin::planner::explain_generic_batch(
        target,
        statements,
        hypothetical,
        with_plans,
    )
}
