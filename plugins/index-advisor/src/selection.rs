//! Choosing indexes from what-if costs, as a pure function (no host calls,
//! unit-tested on the build host).
//!
//! Inputs: the statements (calls and baseline cost, from
//! `pg_stat_statements` and a generic plan), the candidates (table, key
//! columns, hypothetical size, and for each statement the planner's cost
//! with that candidate alone, `None` when not planned or not affected), and
//! the write rate of each table (inserts + updates + deletes over the same
//! window as the calls: both counts over the stats window, or both per
//! second).
//!
//! The model, in planner cost units over that window:
//!
//! - **benefit** of a candidate = Σ over statements of `calls × (current −
//!   cost_with)`, counting only statements it improves by at least
//!   [`Model::min_improvement_pct`] % of their current cost (smaller gains
//!   are within the noise of the estimates);
//! - **write overhead** = `write_rate × write_cost × (1 + size_factor ×
//!   size_GiB)`: each write maintains one more btree entry (`write_cost`
//!   units), dearer as the index grows out of cache;
//! - **net** = benefit − overhead.
//!
//! Greedy with re-evaluation: the candidate with the highest net is chosen,
//! then each statement's current cost becomes the best cost so far, so a
//! candidate overlapping a chosen one loses the benefit the chosen one
//! already delivers; repeat until the best net is below
//! [`Model::min_benefit`] or [`Model::max_indexes`] are chosen. A candidate
//! whose key is a leading prefix of a chosen one's on the same table (or the
//! reverse) is redundant and never chosen. Benefits are weighed across
//! statements by their calls, not by Dexter's "cost halves for one
//! statement" rule: a 20 % gain on a statement run a million times beats a
//! 90 % gain on one run once.
//!
//! Costs are assumed not to interact (a statement's cost with several
//! chosen indexes is the best of its single-index costs); the caller may
//! re-plan the statements with the chosen set to confirm.

use std::collections::BTreeMap;

/// One statement of the workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    /// Its `queryid`, or any label for the report.
    pub id: String,
    /// Calls over the window.
    pub calls: f64,
    /// Planner cost with the existing indexes only.
    pub baseline_cost: f64,
}

/// One candidate index with its what-if costs.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub table: String,
    pub columns: Vec<String>,
    /// The hypothetical index's estimated size.
    pub size_bytes: u64,
    /// Per statement (same order as [`Workload::statements`]): its cost with
    /// this candidate alone; `None` when not affected or not planned.
    pub costs: Vec<Option<f64>>,
}

impl Candidate {
    /// `table(a, b)`.
    pub fn label(&self) -> String {
        format!("{}({})", self.table, self.columns.join(", "))
    }
}

/// Everything [`select`] weighs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Workload {
    pub statements: Vec<Statement>,
    pub candidates: Vec<Candidate>,
    /// Table → writes (inserts + updates + deletes) over the window; a table
    /// not listed has none.
    pub write_rates: BTreeMap<String, f64>,
}

/// The knobs of the cost model and of the stopping rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// Planner cost units one write spends maintaining one more btree index
    /// (a descent through mostly cached pages, a leaf insert and its WAL).
    /// Default 2.0: half a random page read (`random_page_cost` = 4).
    pub write_cost: f64,
    /// Extra maintenance per GiB of index, as a fraction of `write_cost`
    /// (a larger index has fewer of its pages in cache). Default 0.25.
    pub size_factor: f64,
    /// A candidate is chosen only when its net benefit is at least this
    /// (cost units over the window). Default 1000.
    pub min_benefit: f64,
    /// A statement counts as helped only when its cost drops by at least
    /// this percentage of its current cost. Default 10.
    pub min_improvement_pct: f64,
    /// At most this many indexes are chosen. Default 5.
    pub max_indexes: usize,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            write_cost: 2.0,
            size_factor: 0.25,
            min_benefit: 1000.0,
            min_improvement_pct: 10.0,
            max_indexes: 5,
        }
    }
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

impl Model {
    /// The write overhead of `candidate` given its table's write rate.
    pub fn overhead(&self, candidate: &Candidate, write_rate: f64) -> f64 {
        let size_gib = candidate.size_bytes as f64 / GIB;
        write_rate.max(0.0) * self.write_cost * (1.0 + self.size_factor * size_gib)
    }
}

/// A statement a chosen index helps.
#[derive(Clone, Debug, PartialEq)]
pub struct Helped {
    /// Index into [`Workload::statements`].
    pub statement: usize,
    /// Its cost before this index (the baseline, or what earlier choices
    /// brought it to) and with it.
    pub before: f64,
    pub after: f64,
}

/// A chosen index.
#[derive(Clone, Debug, PartialEq)]
pub struct Chosen {
    /// Index into [`Workload::candidates`].
    pub candidate: usize,
    pub benefit: f64,
    pub overhead: f64,
    pub net: f64,
    pub helped: Vec<Helped>,
}

/// Why a candidate was not chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum Rejection {
    /// It improves no statement by `min_improvement_pct` or more, even
    /// before anything was chosen.
    NoBenefit,
    /// Its benefit was taken by the chosen candidates listed (indices into
    /// [`Workload::candidates`]).
    Superseded { by: Vec<usize> },
    /// It helps, but the write overhead is at least the benefit.
    WriteOverhead { benefit: f64, overhead: f64 },
    /// Its key is a leading prefix of a chosen candidate's, or the reverse.
    Redundant { with: usize },
    /// Its net benefit is positive but below `min_benefit`.
    BelowThreshold { net: f64 },
    /// It would qualify, but `max_indexes` were already chosen.
    CapReached { net: f64 },
}

impl Rejection {
    /// The reason, for a report line.
    pub fn describe(&self, workload: &Workload) -> String {
        let label = |i: &usize| {
            workload
                .candidates
                .get(*i)
                .map_or_else(|| format!("#{i}"), Candidate::label)
        };
        match self {
            Rejection::NoBenefit => "no benefit".to_owned(),
            Rejection::Superseded { by } => format!(
                "no benefit left once {} chosen",
                by.iter().map(label).collect::<Vec<_>>().join(", ")
            ),
            Rejection::WriteOverhead { benefit, overhead } => {
                format!("write overhead too high ({overhead:.0} ≥ benefit {benefit:.0})")
            }
            Rejection::Redundant { with } => format!("redundant with {}", label(with)),
            Rejection::BelowThreshold { net } => {
                format!("below threshold (net benefit {net:.0})")
            }
            Rejection::CapReached { net } => {
                format!("cap of indexes reached (net benefit {net:.0})")
            }
        }
    }
}

/// What [`select`] decided: chosen in order of choice, and every other
/// candidate with its reason.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selection {
    pub chosen: Vec<Chosen>,
    pub rejected: Vec<(usize, Rejection)>,
}

/// A candidate's value given the statements' current costs.
struct Evaluation {
    benefit: f64,
    overhead: f64,
    net: f64,
    helped: Vec<Helped>,
}

fn evaluate(workload: &Workload, model: &Model, current: &[f64], index: usize) -> Evaluation {
    let candidate = &workload.candidates[index];
    let mut benefit = 0.0;
    let mut helped = Vec::new();
    for (statement, (stmt, cost)) in workload.statements.iter().zip(&candidate.costs).enumerate() {
        let (Some(after), Some(&before)) = (*cost, current.get(statement)) else {
            continue;
        };
        let gain = before - after;
        if gain <= 0.0 || before <= 0.0 || gain * 100.0 < model.min_improvement_pct * before {
            continue;
        }
        benefit += stmt.calls.max(0.0) * gain;
        helped.push(Helped {
            statement,
            before,
            after,
        });
    }
    let write_rate = workload
        .write_rates
        .get(&candidate.table)
        .copied()
        .unwrap_or(0.0);
    let overhead = model.overhead(candidate, write_rate);
    Evaluation {
        benefit,
        overhead,
        net: benefit - overhead,
        helped,
    }
}

/// Whether one key is a leading prefix of the other's, on the same table.
fn redundant(a: &Candidate, b: &Candidate) -> bool {
    a.table == b.table && (a.columns.starts_with(&b.columns) || b.columns.starts_with(&a.columns))
}

/// Chooses indexes greedily by net benefit; see the module documentation.
pub fn select(workload: &Workload, model: &Model) -> Selection {
    let mut current: Vec<f64> = workload
        .statements
        .iter()
        .map(|s| s.baseline_cost)
        .collect();
    let initial: Vec<f64> = (0..workload.candidates.len())
        .map(|i| evaluate(workload, model, &current, i).benefit)
        .collect();
    let mut open: Vec<usize> = (0..workload.candidates.len()).collect();
    let mut selection = Selection::default();
    loop {
        let at_cap = selection.chosen.len() >= model.max_indexes;
        let best = open
            .iter()
            .map(|&i| (i, evaluate(workload, model, &current, i)))
            .filter(|(_, e)| e.benefit > 0.0)
            .max_by(|(a, ea), (b, eb)| {
                ea.net
                    .total_cmp(&eb.net)
                    // Ties: the smaller index, then the shorter key, then the
                    // first candidate.
                    .then(
                        workload.candidates[*b]
                            .size_bytes
                            .cmp(&workload.candidates[*a].size_bytes),
                    )
                    .then(
                        workload.candidates[*b]
                            .columns
                            .len()
                            .cmp(&workload.candidates[*a].columns.len()),
                    )
                    .then(b.cmp(a))
            });
        let Some((index, evaluation)) = best else {
            break;
        };
        if at_cap || evaluation.net < model.min_benefit {
            break;
        }
        for helped in &evaluation.helped {
            current[helped.statement] = current[helped.statement].min(helped.after);
        }
        open.retain(|&i| i != index);
        let chosen = &workload.candidates[index];
        open.retain(|&i| {
            if redundant(&workload.candidates[i], chosen) {
                selection
                    .rejected
                    .push((i, Rejection::Redundant { with: index }));
                false
            } else {
                true
            }
        });
        selection.chosen.push(Chosen {
            candidate: index,
            benefit: evaluation.benefit,
            overhead: evaluation.overhead,
            net: evaluation.net,
            helped: evaluation.helped,
        });
    }
    let at_cap = selection.chosen.len() >= model.max_indexes;
    for i in open {
        let evaluation = evaluate(workload, model, &current, i);
        let rejection = if evaluation.benefit <= 0.0 {
            if initial[i] > 0.0 {
                Rejection::Superseded {
                    by: superseded_by(workload, model, &selection, i),
                }
            } else {
                Rejection::NoBenefit
            }
        } else if evaluation.overhead >= evaluation.benefit {
            Rejection::WriteOverhead {
                benefit: evaluation.benefit,
                overhead: evaluation.overhead,
            }
        } else if at_cap && evaluation.net >= model.min_benefit {
            Rejection::CapReached {
                net: evaluation.net,
            }
        } else {
            Rejection::BelowThreshold {
                net: evaluation.net,
            }
        };
        selection.rejected.push((i, rejection));
    }
    selection.rejected.sort_by_key(|(i, _)| *i);
    selection
}

/// The chosen candidates that help a statement candidate `index` helped.
fn superseded_by(
    workload: &Workload,
    model: &Model,
    selection: &Selection,
    index: usize,
) -> Vec<usize> {
    let baseline: Vec<f64> = workload
        .statements
        .iter()
        .map(|s| s.baseline_cost)
        .collect();
    let mine = evaluate(workload, model, &baseline, index);
    selection
        .chosen
        .iter()
        .filter(|c| {
            c.helped
                .iter()
                .any(|h| mine.helped.iter().any(|m| m.statement == h.statement))
        })
        .map(|c| c.candidate)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(id: &str, calls: f64, baseline_cost: f64) -> Statement {
        Statement {
            id: id.to_owned(),
            calls,
            baseline_cost,
        }
    }

    fn candidate(table: &str, columns: &[&str], costs: &[Option<f64>]) -> Candidate {
        Candidate {
            table: table.to_owned(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            size_bytes: 8 * 1024 * 1024,
            costs: costs.to_vec(),
        }
    }

    fn chosen(selection: &Selection) -> Vec<usize> {
        selection.chosen.iter().map(|c| c.candidate).collect()
    }

    fn rejection(selection: &Selection, index: usize) -> &Rejection {
        match selection.rejected.iter().find(|(i, _)| *i == index) {
            Some((_, r)) => r,
            None => unreachable!("candidate {index} not rejected: {selection:?}"),
        }
    }

    #[test]
    fn single_good_index_is_chosen() {
        let workload = Workload {
            statements: vec![statement("q1", 500.0, 1000.0)],
            candidates: vec![
                candidate("orders", &["customer_id"], &[Some(8.0)]),
                candidate("orders", &["status"], &[Some(1000.0)]),
            ],
            write_rates: BTreeMap::new(),
        };
        let selection = select(&workload, &Model::default());
        assert_eq!(chosen(&selection), [0]);
        let first = &selection.chosen[0];
        assert_eq!(first.benefit, 500.0 * 992.0);
        assert_eq!(
            first.helped,
            [Helped {
                statement: 0,
                before: 1000.0,
                after: 8.0
            }]
        );
        assert_eq!(rejection(&selection, 1), &Rejection::NoBenefit);
        assert_eq!(rejection(&selection, 1).describe(&workload), "no benefit");
    }

    #[test]
    fn overlapping_candidate_dropped_after_first() {
        // Both help q1; (a) on t and (b) on t are not prefixes of each other.
        let workload = Workload {
            statements: vec![statement("q1", 100.0, 1000.0)],
            candidates: vec![
                candidate("t", &["a"], &[Some(10.0)]),
                candidate("t", &["b"], &[Some(20.0)]),
            ],
            write_rates: BTreeMap::new(),
        };
        let selection = select(&workload, &Model::default());
        assert_eq!(chosen(&selection), [0]);
        assert_eq!(
            rejection(&selection, 1),
            &Rejection::Superseded { by: vec![0] }
        );
        assert_eq!(
            rejection(&selection, 1).describe(&workload),
            "no benefit left once t(a) chosen"
        );
    }

    #[test]
    fn write_heavy_table_rejected_for_overhead() {
        let mut write_rates = BTreeMap::new();
        write_rates.insert("log".to_owned(), 1_000_000.0);
        let workload = Workload {
            statements: vec![statement("q1", 10.0, 1000.0)],
            candidates: vec![candidate("log", &["at"], &[Some(10.0)])],
            write_rates,
        };
        let selection = select(&workload, &Model::default());
        assert!(selection.chosen.is_empty());
        match rejection(&selection, 0) {
            Rejection::WriteOverhead { benefit, overhead } => {
                assert_eq!(*benefit, 9900.0);
                assert!(*overhead > 2_000_000.0);
            }
            other => unreachable!("{other:?}"),
        }
        // The same candidate on a quiet table is chosen.
        let mut quiet = workload.clone();
        quiet.write_rates.insert("log".to_owned(), 10.0);
        assert_eq!(chosen(&select(&quiet, &Model::default())), [0]);
    }

    #[test]
    fn calls_weigh_across_statements() {
        // q_hot: 1000 calls, 20 % cheaper with (a) (Dexter's 50 % rule would
        // refuse it); q_rare: 1 call, 95 % cheaper with (b).
        let workload = Workload {
            statements: vec![
                statement("q_hot", 1000.0, 100.0),
                statement("q_rare", 1.0, 2000.0),
            ],
            candidates: vec![
                candidate("t", &["b"], &[None, Some(100.0)]),
                candidate("t", &["a"], &[Some(80.0), None]),
            ],
            write_rates: BTreeMap::new(),
        };
        let model = Model {
            max_indexes: 1,
            min_benefit: 100.0,
            ..Model::default()
        };
        let selection = select(&workload, &model);
        assert_eq!(chosen(&selection), [1]);
        assert_eq!(
            selection.chosen[0].net,
            20_000.0 - selection.chosen[0].overhead
        );
        assert!(matches!(
            rejection(&selection, 0),
            Rejection::CapReached { .. }
        ));
    }

    #[test]
    fn redundant_prefix_never_chosen() {
        // (a, b) helps q1 and q2; (a) helps q1 slightly more but is a prefix.
        let workload = Workload {
            statements: vec![
                statement("q1", 100.0, 1000.0),
                statement("q2", 100.0, 1000.0),
            ],
            candidates: vec![
                candidate("t", &["a", "b"], &[Some(20.0), Some(20.0)]),
                candidate("t", &["a"], &[Some(10.0), None]),
                candidate("u", &["a"], &[None, None]),
            ],
            write_rates: BTreeMap::new(),
        };
        let selection = select(&workload, &Model::default());
        assert_eq!(chosen(&selection), [0]);
        assert_eq!(rejection(&selection, 1), &Rejection::Redundant { with: 0 });
        assert_eq!(
            rejection(&selection, 1).describe(&workload),
            "redundant with t(a, b)"
        );
        assert_eq!(rejection(&selection, 2), &Rejection::NoBenefit);
    }

    #[test]
    fn thresholds_and_cap() {
        let workload = Workload {
            statements: vec![
                statement("q1", 100.0, 1000.0),
                statement("q2", 100.0, 1000.0),
                statement("q3", 100.0, 1000.0),
                statement("q4", 1.0, 1000.0),
                statement("q5", 1000.0, 1000.0),
            ],
            candidates: vec![
                candidate("t", &["a"], &[Some(100.0), None, None, None, None]),
                candidate("t", &["b"], &[None, Some(200.0), None, None, None]),
                candidate("t", &["c"], &[None, None, Some(300.0), None, None]),
                // Net 900 < min_benefit 1000.
                candidate("t", &["d"], &[None, None, None, Some(100.0), None]),
                // 5 % per call on a hot statement: below min_improvement.
                candidate("t", &["e"], &[None, None, None, None, Some(950.0)]),
            ],
            write_rates: BTreeMap::new(),
        };
        let model = Model {
            max_indexes: 2,
            ..Model::default()
        };
        let selection = select(&workload, &model);
        assert_eq!(chosen(&selection), [0, 1]);
        assert!(matches!(
            rejection(&selection, 2),
            Rejection::CapReached { .. }
        ));
        assert!(matches!(
            rejection(&selection, 3),
            Rejection::BelowThreshold { .. }
        ));
        assert_eq!(rejection(&selection, 4), &Rejection::NoBenefit);
        // Without the improvement threshold, (e) wins on calls.
        let loose = Model {
            min_improvement_pct: 0.0,
            max_indexes: 1,
            ..Model::default()
        };
        assert_eq!(chosen(&select(&workload, &loose)), [0]);
        let loose = Model {
            min_improvement_pct: 1.0,
            max_indexes: 5,
            ..Model::default()
        };
        assert_eq!(chosen(&select(&workload, &loose)), [0, 1, 2, 4]);
        assert_eq!(select(&Workload::default(), &model), Selection::default());
    }
}
