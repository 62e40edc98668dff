//! The run record: what the state database keeps about every run.

use crate::capability::CapabilityClass;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// How a run ended (or where it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Accepted and waiting in the run queue (for a free slot, a retry
    /// time, or an approved run about to start).
    Queued,
    /// Started and not finished yet.
    Running,
    /// The agent stopped (crashed, killed) while the run was in progress.
    /// Not run again automatically: it may have done part of its work.
    Interrupted,
    /// Not run, by a host decision: see the record's `decision`
    /// (deduplicated, cooldown, throttled, circuit open, concurrency,
    /// outside the maintenance window).
    Skipped,
    /// Ran as a dry run; its plan waits for `warden approve`.
    AwaitingApproval,
    /// Its plan was approved; the real run is the record in `approval.run`.
    Approved,
    /// An operator rejected its plan, or its alert resolved before it ran.
    Cancelled,
    /// Its plan was not approved in time.
    Expired,
    /// The plugin returned a report.
    Succeeded,
    /// The plugin returned an error.
    Failed,
    /// The plugin trapped (panic, stack overflow, invalid operation).
    Trapped,
    /// The run's deadline passed.
    TimedOut,
    /// The run hit a resource limit (memory, table size).
    LimitExceeded,
    /// No grant allows this plugin on this target.
    Denied,
    /// The request was invalid (unknown plugin, bad parameter).
    Rejected,
    /// A schedule tick that passed while the agent was not running: never
    /// ran (see `scheduled_for` and `decision`). Not a run attempt.
    Missed,
}

impl RunStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Skipped => "skipped",
            RunStatus::AwaitingApproval => "awaiting-approval",
            RunStatus::Approved => "approved",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Expired => "expired",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Trapped => "trapped",
            RunStatus::TimedOut => "timed-out",
            RunStatus::LimitExceeded => "limit-exceeded",
            RunStatus::Denied => "denied",
            RunStatus::Rejected => "rejected",
            RunStatus::Missed => "missed",
        }
    }
}

impl RunStatus {
    /// Every status, for parsing and listing.
    pub const ALL: [RunStatus; 16] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Interrupted,
        RunStatus::Skipped,
        RunStatus::AwaitingApproval,
        RunStatus::Approved,
        RunStatus::Cancelled,
        RunStatus::Expired,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Trapped,
        RunStatus::TimedOut,
        RunStatus::LimitExceeded,
        RunStatus::Denied,
        RunStatus::Rejected,
        RunStatus::Missed,
    ];

    /// The status called `name` (as printed).
    pub fn from_name(name: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// True once nothing more will happen to the record.
    pub const fn is_final(self) -> bool {
        !matches!(
            self,
            RunStatus::Queued | RunStatus::Running | RunStatus::AwaitingApproval
        )
    }

    /// True for outcomes worth a retry: the plugin or the target failed,
    /// not the request or the policy.
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            RunStatus::Failed | RunStatus::Trapped | RunStatus::TimedOut
        )
    }

    /// True for runs that count as failures for a circuit breaker.
    pub const fn is_failure(self) -> bool {
        matches!(
            self,
            RunStatus::Failed
                | RunStatus::Trapped
                | RunStatus::TimedOut
                | RunStatus::LimitExceeded
                | RunStatus::Interrupted
        )
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is to blame for a failed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Blame {
    /// The plugin: it trapped, timed out, exceeded a limit, or returned an error.
    Guest,
    /// The agent: a bug or a local resource problem.
    Host,
    /// The database the run worked on.
    Target,
    /// The request or the policy: no grant, bad parameters.
    Request,
}

/// Why a run did not succeed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunError {
    pub blame: Blame,
    /// The WIT error case or the host's failure kind (`access-denied`, `trap`, `timeout`, ...).
    pub kind: String,
    pub message: String,
}

/// What started a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Trigger {
    Manual {
        by: String,
    },
    Schedule {
        name: String,
    },
    Alert {
        /// The `[[rule]]` that matched.
        #[serde(default)]
        rule: String,
        status: String,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
        fingerprint: String,
        starts_at: String,
    },
}

impl Trigger {
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Manual { .. } => "manual",
            Trigger::Schedule { .. } => "schedule",
            Trigger::Alert { .. } => "alert",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportStatus {
    Ok,
    Warning,
    Critical,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    pub title: String,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_action: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionState {
    Executed,
    Planned,
    Failed,
    /// Not made: the host refused it before it reached the target (the
    /// real run of an approved plan tried a call the plan does not hold).
    Refused,
}

/// Who recorded an action: the host (authoritative: it saw the statement) or
/// the plugin (a claim or a suggestion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    Host,
    Plugin,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub target: String,
    pub statement: String,
    pub class: CapabilityClass,
    pub state: ActionState,
    pub origin: Origin,
    /// For host actions that failed: the database's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For host actions: the notices and warnings the database sent while
    /// the statement ran (redacted, bounded per call), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<Notice>,
    /// The values bound to the statement's parameters, as text (redacted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<String>,
    /// For host actions: SHA-256 (hex) of the exact call (target, class,
    /// full statement, parameter values), before redaction and truncation.
    /// The real run of an approved plan may only make calls whose
    /// fingerprint is in the plan (see [`crate::runs::approvals::PlanGuard`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// A message a database server sent while running a statement
/// (PostgreSQL's `NOTICE`, `WARNING`, ...), as the host captured it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// `WARNING`, `NOTICE`, `INFO`, `DEBUG` or `ERROR`.
    pub severity: String,
    /// The SQLSTATE when the driver reports it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub code: String,
    pub message: String,
}

impl Action {
    /// A host action of `class` on `target`: `statement` is the text to
    /// record (already redacted and trimmed), `params` the values bound to
    /// it (likewise), `fingerprint` that of the exact call ([`fingerprint`]).
    pub fn host(
        target: &str,
        class: CapabilityClass,
        statement: String,
        params: Vec<String>,
        fingerprint: String,
        state: ActionState,
    ) -> Action {
        Action {
            target: target.to_string(),
            statement,
            class,
            state,
            origin: Origin::Host,
            error: None,
            params,
            fingerprint: Some(fingerprint),
            notices: Vec::new(),
        }
    }

    /// The action as one line: statement, then its parameters.
    pub fn describe(&self) -> String {
        if self.params.is_empty() {
            format!("`{}` on `{}`", self.statement, self.target)
        } else {
            format!(
                "`{}` with ({}) on `{}`",
                self.statement,
                self.params.join(", "),
                self.target
            )
        }
    }
}

/// The fingerprint of a call: SHA-256 over its parts, each length-prefixed
/// so that no two different calls share one.
pub fn fingerprint(target: &str, class: CapabilityClass, exact: &str, params: &[String]) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for part in [target, class.as_str(), exact]
        .into_iter()
        .chain(params.iter().map(String::as_str))
    {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    pub value: f64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
}

/// A run's structured report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub status: ReportStatus,
    pub summary: String,
    pub findings: Vec<Finding>,
    pub actions: Vec<Action>,
    pub metrics: Vec<Metric>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub at: DateTime<Utc>,
    pub level: String,
    pub message: String,
}

/// Why the host did not run something (status `skipped`, `cancelled`,
/// `expired`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecisionKind {
    /// The same alert (fingerprint and start) already has a run.
    Deduplicated,
    /// The rule ran on this target less than its cooldown ago.
    Cooldown,
    /// The rule's throttle allows no more runs in this window.
    Throttled,
    /// The rule's circuit breaker is open.
    CircuitOpen,
    /// A concurrency limit with `on_limit = "skip"` was full.
    Concurrency,
    /// Outside the schedule's or rule's maintenance window.
    OutsideWindow,
    /// The alert resolved before the run started (`on_resolved = "cancel"`).
    Resolved,
    /// An operator rejected the plan.
    RejectedByOperator,
    /// The plan waited for approval longer than `approval_ttl`.
    ApprovalExpired,
    /// The agent was shutting down.
    Shutdown,
    /// The agent was not running at a schedule's tick.
    AgentDown,
}

impl DecisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Deduplicated => "deduplicated",
            DecisionKind::Cooldown => "cooldown",
            DecisionKind::Throttled => "throttled",
            DecisionKind::CircuitOpen => "circuit-open",
            DecisionKind::Concurrency => "concurrency",
            DecisionKind::OutsideWindow => "outside-window",
            DecisionKind::Resolved => "resolved",
            DecisionKind::RejectedByOperator => "rejected-by-operator",
            DecisionKind::ApprovalExpired => "approval-expired",
            DecisionKind::Shutdown => "shutdown",
            DecisionKind::AgentDown => "agent-down",
        }
    }
}

/// A host decision about a run, with the reason in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub kind: DecisionKind,
    pub detail: String,
    /// The run this one defers to (the original of a duplicate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_run: Option<String>,
}

/// Where a run stands with approvals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalState {
    /// The dry run that makes the plan has not finished.
    Planning,
    /// The plan waits for an operator.
    Pending,
    /// The dry run found nothing to do: nothing to approve, the run ends
    /// `succeeded` without waiting.
    NotNeeded,
    Approved,
    Rejected,
    Expired,
}

/// Approval bookkeeping: on the planning record and on the real run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub state: ApprovalState,
    /// How long a plan may wait, in seconds.
    pub ttl_secs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// How `decided_by` was established: `api-token` (the person's own
    /// `[[http.approver]]` token), `local-user` (the operating-system user
    /// running `warden approve`) or `expiry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_via: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// On the plan: the real run it led to. On the real run: its plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_run: Option<String>,
}

impl Approval {
    /// Approval bookkeeping in `state`, for a plan that may wait
    /// `ttl_secs`, nothing decided yet.
    pub fn new(state: ApprovalState, ttl_secs: u64) -> Approval {
        Approval {
            state,
            ttl_secs,
            expires_at: None,
            decided_by: None,
            decided_via: None,
            decided_at: None,
            reason: None,
            linked_run: None,
        }
    }
}

/// Everything recorded about one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub plugin: String,
    /// SHA-256 of the plugin's component, hex.
    pub digest: String,
    pub plugin_version: String,
    pub target: String,
    pub trigger: Trigger,
    pub params: BTreeMap<String, String>,
    pub dry_run: bool,
    pub status: RunStatus,
    /// When the request was accepted.
    #[serde(default)]
    pub requested_at: DateTime<Utc>,
    /// When it started (for runs that never started: when it was decided).
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
    /// Host-recorded actions (also in the report when there is one).
    #[serde(default)]
    pub actions: Vec<Action>,
    #[serde(default)]
    pub logs: Vec<LogLine>,
    /// Log lines over the per-run cap, counted and dropped.
    #[serde(default)]
    pub logs_dropped: u64,
    /// Why the host did not run it, for `skipped`/`cancelled`/`expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// 1 for the first attempt, 2 for the first retry, ...
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// The run this one retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<String>,
    /// The retry queued after this run failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retried_by: Option<String>,
    /// Not to start before this time (retry backoff, schedule jitter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// The W3C `traceparent` of the request that caused the run, made the
    /// parent of the run's span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The trace id of the run's span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The run that started this one through `runs.start`, if one did
    /// (also in the state database's `parent_run` column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_run: Option<String>,
    /// Its place in a chain of runs started by runs: 0 for a run requested
    /// by an alert, a schedule or a person; a run started by a run of depth
    /// `d` has depth `d + 1` (also in the `depth` column). Bounded by
    /// `[runs] max_chain_depth`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub depth: u32,
    /// For a schedule's run or missed tick: the tick it is for (a catch-up
    /// run has an earlier one than its `requested_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<DateTime<Utc>>,
}

/// For `skip_serializing_if` (which passes a reference).
const fn is_zero(n: &u32) -> bool {
    *n == 0
}

const fn first_attempt() -> u32 {
    1
}

impl RunRecord {
    /// A new record for a request, `queued` at `now`.
    pub fn new(
        plugin: &str,
        target: &str,
        trigger: Trigger,
        params: BTreeMap<String, String>,
        dry_run: bool,
    ) -> RunRecord {
        let now = Utc::now();
        RunRecord {
            id: uuid::Uuid::now_v7().to_string(),
            plugin: plugin.to_string(),
            digest: String::new(),
            plugin_version: String::new(),
            target: target.to_string(),
            trigger,
            params,
            dry_run,
            status: RunStatus::Queued,
            requested_at: now,
            started_at: now,
            ended_at: None,
            report: None,
            error: None,
            actions: Vec::new(),
            logs: Vec::new(),
            logs_dropped: 0,
            decision: None,
            attempt: 1,
            retry_of: None,
            retried_by: None,
            not_before: None,
            approval: None,
            traceparent: None,
            trace_id: None,
            parent_run: None,
            depth: 0,
            scheduled_for: None,
        }
    }

    /// A new record for a run that run `parent` (of `parent_plugin`, at
    /// depth `parent_depth`) starts through `runs.start`: trigger `manual`
    /// by `run <id> (<plugin>)`, linked to its parent, one level deeper.
    pub fn started_by(
        parent: &str,
        parent_plugin: &str,
        parent_depth: u32,
        plugin: &str,
        target: &str,
        params: BTreeMap<String, String>,
        dry_run: bool,
    ) -> RunRecord {
        let mut rec = RunRecord::new(
            plugin,
            target,
            Trigger::Manual {
                by: format!("run {parent} ({parent_plugin})"),
            },
            params,
            dry_run,
        );
        rec.parent_run = Some(parent.to_string());
        rec.depth = parent_depth.saturating_add(1);
        rec
    }

    /// Marks it not run, for `kind`, now.
    pub fn decide(&mut self, status: RunStatus, kind: DecisionKind, detail: String) {
        self.status = status;
        self.decision = Some(Decision {
            kind,
            detail,
            related_run: None,
        });
        self.ended_at = Some(Utc::now());
    }

    /// The rule (alerts) or schedule that caused it.
    pub fn origin(&self) -> Option<&str> {
        match &self.trigger {
            Trigger::Alert { rule, .. } => Some(rule),
            Trigger::Schedule { name } => Some(name),
            Trigger::Manual { .. } => None,
        }
    }

    /// Duration in milliseconds, when finished.
    pub fn duration_ms(&self) -> Option<i64> {
        self.ended_at
            .map(|e| (e - self.started_at).num_milliseconds())
    }
}
