//! Approvals: a run whose rule, schedule or grant requires approval first
//! runs as a dry run that records its plan (`awaiting-approval`). Approving
//! it queues the real run, linked both ways and carrying who approved;
//! rejecting it, or letting it wait past its `approval_ttl`, ends it.
//!
//! These work on the state database alone, so `warden approve` works from
//! any process; the running agent picks the approved run from the queue.
//! Each decision is a conditional update: two operators (or an operator and
//! the expiry) cannot both decide the same plan.

use crate::runs::{ApprovalState, DecisionKind, RunRecord, RunStatus, RunStore};
use chrono::Utc;

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
    by: &str,
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
    let mut approval = plan.approval.clone().unwrap_or(crate::runs::Approval {
        state: ApprovalState::Approved,
        ttl_secs: 0,
        expires_at: None,
        decided_by: None,
        decided_at: None,
        reason: None,
        linked_run: None,
    });
    approval.state = ApprovalState::Approved;
    approval.decided_by = Some(by.to_string());
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
    by: &str,
    reason: Option<&str>,
) -> Result<RunRecord, ApprovalError> {
    let mut plan = pending(store, id).await?;
    if let Some(a) = &mut plan.approval {
        a.state = ApprovalState::Rejected;
        a.decided_by = Some(by.to_string());
        a.decided_at = Some(Utc::now());
        a.reason = reason.map(str::to_string);
    }
    plan.status = RunStatus::Cancelled;
    plan.decision = Some(crate::runs::Decision {
        kind: DecisionKind::RejectedByOperator,
        detail: match reason {
            Some(r) => format!("plan rejected by {by}: {r}"),
            None => format!("plan rejected by {by}"),
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

/// Expires every plan past its deadline; returns how many.
pub async fn expire_due(store: &RunStore) -> anyhow::Result<usize> {
    let now = Utc::now();
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
