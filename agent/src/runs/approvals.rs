//! Approvals: a run whose rule, schedule or grant requires approval first
//! runs as a dry run that records its plan (`awaiting-approval`). Approving
//! it queues the real run, linked both ways and carrying who approved;
//! rejecting it, or letting it wait past its `approval_ttl`, ends it.
//!
//! The real run executes the approved plan, not a new one: the host lets
//! it make only the calls the plan recorded ([`PlanGuard`]: same target,
//! class, statement and parameter values, in the plan's order, some may be
//! left out). A call the plan does not hold (the world changed: the query
//! now finds another session) is refused and the run ends `failed` with
//! the error kind [`PLAN_NO_LONGER_HOLDS`]. A dry run that plans nothing
//! does not wait: there is nothing to approve.
//!
//! These work on the state database alone, so `warden approve` works from
//! any process; the running agent picks the approved run from the queue.
//! Each decision is a conditional update: two operators (or an operator and
//! the expiry) cannot both decide the same plan.

use crate::runs::{
    Action, ActionState, ApprovalState, DecisionKind, Origin, RunRecord, RunStatus, RunStore,
};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// The error kind of a real run stopped because its approved plan no
/// longer holds.
pub const PLAN_NO_LONGER_HOLDS: &str = "plan-no-longer-holds";

/// Who decided, and how that was established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    /// The person's name.
    pub name: String,
    /// `api-token` or `local-user` (recorded as `decided_via`).
    pub via: &'static str,
}

impl Approver {
    /// A person identified by their own `[[http.approver]]` token.
    pub fn by_token(name: &str) -> Approver {
        Approver {
            name: name.to_string(),
            via: "api-token",
        }
    }

    /// The operating-system user running `warden approve`.
    pub fn local_user(name: &str) -> Approver {
        Approver {
            name: name.to_string(),
            via: "local-user",
        }
    }
}

/// The actions of an approved plan, as its real run must make them.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovedPlan {
    /// The plan's run id.
    pub id: String,
    /// The host's planned actions, in order.
    pub actions: Vec<Action>,
}

impl ApprovedPlan {
    /// The plan recorded by `plan` (its host-planned actions).
    pub fn of(plan: &RunRecord) -> ApprovedPlan {
        ApprovedPlan {
            id: plan.id.clone(),
            actions: plan
                .actions
                .iter()
                .filter(|a| a.origin == Origin::Host && a.state == ActionState::Planned)
                .cloned()
                .collect(),
        }
    }

    /// Loads the plan the approved run `rec` carries out; `None` when
    /// `rec` is not the real run of an approved plan.
    pub async fn for_run(
        store: &RunStore,
        rec: &RunRecord,
    ) -> anyhow::Result<Option<ApprovedPlan>> {
        let Some(approval) = &rec.approval else {
            return Ok(None);
        };
        if rec.dry_run || approval.state != ApprovalState::Approved {
            return Ok(None);
        }
        let Some(plan_id) = &approval.linked_run else {
            anyhow::bail!("run {} is approved but names no plan", rec.id);
        };
        let plan = store.get(plan_id).await?.ok_or_else(|| {
            anyhow::anyhow!(
                "run {}'s approved plan {plan_id} is not in the state database",
                rec.id
            )
        })?;
        Ok(Some(ApprovedPlan::of(&plan)))
    }
}

/// Holds a real run to its approved plan: each call the run makes must be
/// one of the plan's actions, in the plan's order (actions may be left out,
/// not added, repeated or reordered). The first call outside the plan
/// breaks it: that call and every later one are refused.
#[derive(Debug, Clone)]
pub struct PlanGuard {
    plan: Arc<ApprovedPlan>,
    next: usize,
    /// Calls admitted so far.
    made: usize,
    broken: Option<String>,
}

impl PlanGuard {
    pub fn new(plan: Arc<ApprovedPlan>) -> PlanGuard {
        PlanGuard {
            plan,
            next: 0,
            made: 0,
            broken: None,
        }
    }

    /// Admits `call` (a host action about to be made) if the plan holds
    /// it; otherwise says why not, in words for the run's record.
    pub fn admit(&mut self, call: &Action) -> Result<(), String> {
        if let Some(why) = &self.broken {
            return Err(format!(
                "refused: the approved plan {} no longer holds ({why})",
                self.plan.id
            ));
        }
        let rest = self.plan.actions.get(self.next..).unwrap_or_default();
        let found = call
            .fingerprint
            .as_ref()
            .and_then(|f| rest.iter().position(|a| a.fingerprint.as_ref() == Some(f)));
        if let Some(i) = found {
            self.next += i + 1;
            self.made += 1;
            return Ok(());
        }
        let expected = match rest.first() {
            Some(a) if a.fingerprint.is_none() => format!(
                "the plan was recorded without call fingerprints (by an older agent): ask for a new plan; its next action is {}",
                a.describe()
            ),
            Some(a) => format!("the plan's next approved action is {}", a.describe()),
            None if self.plan.actions.is_empty() => "the plan has no actions".to_string(),
            None => format!(
                "the plan's {} approved actions are all done",
                self.plan.actions.len()
            ),
        };
        let why = format!(
            "the run would now run {}, which the approved plan {} does not hold; {expected}",
            call.describe(),
            self.plan.id
        );
        self.broken = Some(why.clone());
        Err(format!("plan no longer holds: {why}"))
    }

    /// Why the plan broke, if it did.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// The approved actions not made (so far).
    pub fn left_out(&self) -> usize {
        self.plan.actions.len().saturating_sub(self.made)
    }
}

/// Why a decision could not be made.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ApprovalError {
    #[error("no run with id {0}")]
    NotFound(String),
    #[error("run {id} is {status}, not awaiting approval")]
    NotPending { id: String, status: RunStatus },
    #[error("run {id}'s plan expired at {at}; ask for a new one")]
    Expired { id: String, at: String },
    #[error("{0}")]
    Store(String),
}

fn store_err(e: anyhow::Error) -> ApprovalError {
    ApprovalError::Store(format!("{e:#}"))
}

async fn pending(store: &RunStore, id: &str) -> Result<RunRecord, ApprovalError> {
    let rec = store
        .get(id)
        .await
        .map_err(store_err)?
        .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
    if rec.status != RunStatus::AwaitingApproval {
        return Err(ApprovalError::NotPending {
            id: id.to_string(),
            status: rec.status,
        });
    }
    if let Some(at) = rec.approval.as_ref().and_then(|a| a.expires_at)
        && at <= Utc::now()
    {
        expire(store, rec.clone()).await.map_err(store_err)?;
        return Err(ApprovalError::Expired {
            id: id.to_string(),
            at: at.to_rfc3339(),
        });
    }
    Ok(rec)
}

/// Approves plan `id`: queues the real run. Returns (plan, real run).
pub async fn approve(
    store: &RunStore,
    id: &str,
    by: &Approver,
) -> Result<(RunRecord, RunRecord), ApprovalError> {
    let mut plan = pending(store, id).await?;
    let now = Utc::now();
    let mut real = RunRecord::new(
        &plan.plugin,
        &plan.target,
        plan.trigger.clone(),
        plan.params.clone(),
        false,
    );
    real.traceparent = plan.traceparent.clone();
    // The real run keeps the plan's place in a chain of runs started by
    // runs: approving a plan does not reset its depth.
    real.parent_run = plan.parent_run.clone();
    real.depth = plan.depth;
    let mut approval = plan
        .approval
        .clone()
        .unwrap_or(crate::runs::Approval::new(ApprovalState::Approved, 0));
    approval.state = ApprovalState::Approved;
    approval.decided_by = Some(by.name.clone());
    approval.decided_via = Some(by.via.to_string());
    approval.decided_at = Some(now);
    approval.linked_run = Some(real.id.clone());
    plan.approval = Some(approval.clone());
    plan.status = RunStatus::Approved;
    approval.linked_run = Some(plan.id.clone());
    real.approval = Some(approval);
    if store
        .transition(
            &plan,
            RunStatus::AwaitingApproval,
            std::slice::from_ref(&real),
        )
        .await
        .map_err(store_err)?
    {
        Ok((plan, real))
    } else {
        Err(ApprovalError::NotPending {
            id: id.to_string(),
            status: store
                .get(id)
                .await
                .map_err(store_err)?
                .map_or(RunStatus::Queued, |r| r.status),
        })
    }
}

/// Rejects plan `id`.
pub async fn reject(
    store: &RunStore,
    id: &str,
    by: &Approver,
    reason: Option<&str>,
) -> Result<RunRecord, ApprovalError> {
    let mut plan = pending(store, id).await?;
    if let Some(a) = &mut plan.approval {
        a.state = ApprovalState::Rejected;
        a.decided_by = Some(by.name.clone());
        a.decided_via = Some(by.via.to_string());
        a.decided_at = Some(Utc::now());
        a.reason = reason.map(str::to_string);
    }
    plan.status = RunStatus::Cancelled;
    plan.decision = Some(crate::runs::Decision {
        kind: DecisionKind::RejectedByOperator,
        detail: match reason {
            Some(r) => format!("plan rejected by {}: {r}", by.name),
            None => format!("plan rejected by {}", by.name),
        },
        related_run: None,
    });
    if store
        .transition(&plan, RunStatus::AwaitingApproval, &[])
        .await
        .map_err(store_err)?
    {
        Ok(plan)
    } else {
        Err(ApprovalError::NotPending {
            id: id.to_string(),
            status: RunStatus::Cancelled,
        })
    }
}

/// Marks a plan expired (if it still waits).
async fn expire(store: &RunStore, mut plan: RunRecord) -> anyhow::Result<bool> {
    let at = plan.approval.as_ref().and_then(|a| a.expires_at);
    if let Some(a) = &mut plan.approval {
        a.state = ApprovalState::Expired;
    }
    plan.status = RunStatus::Expired;
    plan.decision = Some(crate::runs::Decision {
        kind: DecisionKind::ApprovalExpired,
        detail: format!(
            "nobody approved the plan before {}",
            at.map_or_else(|| "its deadline".to_string(), |t| t.to_rfc3339())
        ),
        related_run: None,
    });
    store
        .transition(&plan, RunStatus::AwaitingApproval, &[])
        .await
}

/// Expires every plan past its deadline at `now`; returns how many.
pub async fn expire_due(store: &RunStore, now: DateTime<Utc>) -> anyhow::Result<usize> {
    let mut n = 0;
    for plan in store
        .with_status(RunStatus::AwaitingApproval, now, 1000)
        .await?
    {
        if plan
            .approval
            .as_ref()
            .and_then(|a| a.expires_at)
            .is_some_and(|at| at <= now)
            && expire(store, plan).await?
        {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::capability::CapabilityClass;
    use crate::runs::fingerprint;

    fn call(target: &str, class: CapabilityClass, statement: &str, params: &[&str]) -> Action {
        let params: Vec<String> = params.iter().map(|p| p.to_string()).collect();
        Action::host(
            target,
            class,
            statement.to_string(),
            params.clone(),
            fingerprint(target, class, statement, &params),
            ActionState::Planned,
        )
    }

    const W: CapabilityClass = CapabilityClass::Write;
    const S: CapabilityClass = CapabilityClass::SessionControl;

    fn plan() -> Arc<ApprovedPlan> {
        Arc::new(ApprovedPlan {
            id: "plan-1".into(),
            actions: vec![
                call("app", S, "SELECT pg_cancel_backend(41)", &[]),
                call("app", W, "DELETE FROM t WHERE id = $1", &["integer 7"]),
                call("app", S, "SELECT pg_terminate_backend(41)", &[]),
            ],
        })
    }

    #[test]
    fn the_plan_in_order_or_with_actions_left_out_is_admitted() {
        let p = plan();
        let mut g = PlanGuard::new(p.clone());
        for a in &p.actions {
            g.admit(a).unwrap();
        }
        assert_eq!(g.left_out(), 0);
        let mut g = PlanGuard::new(p.clone());
        g.admit(&p.actions[0]).unwrap();
        assert_eq!(g.left_out(), 2);
        g.admit(&p.actions[2]).unwrap();
        assert!(g.broken().is_none());
        assert_eq!(g.left_out(), 1, "the one in the middle was left out");
    }

    #[test]
    fn any_call_the_plan_does_not_hold_breaks_it() {
        let p = plan();
        let members: Vec<(&str, Vec<Action>)> = vec![
            (
                "another session",
                vec![call("app", S, "SELECT pg_terminate_backend(42)", &[])],
            ),
            (
                "another parameter",
                vec![call(
                    "app",
                    W,
                    "DELETE FROM t WHERE id = $1",
                    &["integer 8"],
                )],
            ),
            (
                "a parameter of another type",
                vec![call(
                    "app",
                    W,
                    "DELETE FROM t WHERE id = $1",
                    &["text \"7\""],
                )],
            ),
            (
                "another target",
                vec![call("replica", S, "SELECT pg_cancel_backend(41)", &[])],
            ),
            (
                "another class",
                vec![call("app", W, "SELECT pg_cancel_backend(41)", &[])],
            ),
            (
                "another statement",
                vec![call("app", W, "DELETE FROM t", &[])],
            ),
            ("a repeat", vec![p.actions[0].clone(), p.actions[0].clone()]),
            (
                "a reorder",
                vec![p.actions[2].clone(), p.actions[0].clone()],
            ),
            ("one more than planned", {
                let mut v = p.actions.clone();
                v.push(p.actions[2].clone());
                v
            }),
            (
                "no fingerprint",
                vec![{
                    let mut a = p.actions[0].clone();
                    a.fingerprint = None;
                    a
                }],
            ),
        ];
        for (what, calls) in members {
            let mut g = PlanGuard::new(p.clone());
            let (last, first) = calls.split_last().unwrap();
            for c in first {
                g.admit(c).unwrap_or_else(|e| panic!("{what}: {e}"));
            }
            let err = g.admit(last).expect_err(what);
            assert!(err.starts_with("plan no longer holds: "), "{what}: {err}");
            assert!(err.contains("plan-1"), "{what}: {err}");
            assert!(g.broken().is_some(), "{what}");
            // Once broken, even a planned call is refused.
            assert!(g.admit(&p.actions[2]).is_err(), "{what}");
        }
    }

    #[test]
    fn the_refusal_names_what_the_run_would_do_and_what_was_approved() {
        let p = plan();
        let mut g = PlanGuard::new(p);
        let err = g
            .admit(&call("app", S, "SELECT pg_terminate_backend(42)", &[]))
            .unwrap_err();
        assert!(err.contains("pg_terminate_backend(42)"), "{err}");
        assert!(
            err.contains("next approved action is `SELECT pg_cancel_backend(41)`"),
            "{err}"
        );
    }

    #[test]
    fn a_plan_of_an_older_agent_admits_nothing() {
        let mut p = (*plan()).clone();
        for a in &mut p.actions {
            a.fingerprint = None;
        }
        let same = p.actions[0].clone();
        let mut g = PlanGuard::new(Arc::new(p));
        let err = g.admit(&same).unwrap_err();
        assert!(err.contains("older agent"), "{err}");
    }
}
