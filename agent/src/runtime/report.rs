//! Turning what a guest returned into what the host records: every string
//! redacted and cut, every list capped, so a hostile plugin cannot flood the
//! state database or smuggle a secret into a record.

use crate::host::log::truncate_utf8;
use crate::runs::{Action, ActionState, Finding, Metric, Origin, Report, ReportStatus, Severity};
use crate::runtime::bindings::types as wit;
use crate::secrets::Redactor;

/// Most findings, actions and metrics kept per report.
pub const MAX_ITEMS: usize = 500;
/// Longest summary / title.
pub const MAX_SHORT: usize = 1024;
/// Longest detail / statement / suggested action.
pub const MAX_LONG: usize = 16 * 1024;
/// Largest report as JSON; items past this are dropped.
pub const MAX_REPORT_BYTES: usize = 1024 * 1024;

fn clean(r: &Redactor, s: String, max: usize) -> String {
    let mut s = r.redact(&s);
    truncate_utf8(&mut s, max);
    s
}

/// The host's record of a guest report. `host_actions` (what the host saw)
/// come first; the plugin's own actions follow, marked as its claims, except
/// those that repeat a statement the host recorded.
pub fn from_guest(r: &Redactor, report: wit::Report, host_actions: &[Action]) -> Report {
    let status = match report.status {
        wit::ReportStatus::Ok => ReportStatus::Ok,
        wit::ReportStatus::Warning => ReportStatus::Warning,
        wit::ReportStatus::Critical => ReportStatus::Critical,
    };
    let mut dropped = 0usize;
    let mut budget = MAX_REPORT_BYTES;
    let mut take = |len: usize| {
        if budget >= len {
            budget -= len;
            true
        } else {
            false
        }
    };
    let summary = clean(r, report.summary, MAX_SHORT);
    take(summary.len());
    let mut findings = Vec::new();
    let total_findings = report.findings.len();
    for f in report.findings.into_iter().take(MAX_ITEMS) {
        let finding = Finding {
            severity: match f.severity {
                wit::Severity::Info => Severity::Info,
                wit::Severity::Warning => Severity::Warning,
                wit::Severity::Critical => Severity::Critical,
            },
            title: clean(r, f.title, MAX_SHORT),
            detail: clean(r, f.detail, MAX_LONG),
            suggested_action: f.suggested_action.map(|s| clean(r, s, MAX_LONG)),
        };
        let size = finding.title.len()
            + finding.detail.len()
            + finding.suggested_action.as_ref().map_or(0, String::len)
            + 64;
        if !take(size) {
            break;
        }
        findings.push(finding);
    }
    dropped += total_findings - findings.len();
    let mut actions: Vec<Action> = host_actions.to_vec();
    let total_actions = report.actions.len();
    let mut kept_actions = 0;
    for a in report.actions.into_iter().take(MAX_ITEMS) {
        // The host saw this statement itself: its record is the one that counts.
        if host_actions
            .iter()
            .any(|h| h.target == a.target && h.statement == r.redact(a.statement.trim()))
        {
            kept_actions += 1;
            continue;
        }
        let action = Action {
            target: clean(r, a.target, MAX_SHORT),
            statement: clean(r, a.statement, MAX_LONG),
            class: crate::runtime::from_wit_class(a.class),
            state: match a.state {
                wit::ActionState::Executed => ActionState::Executed,
                wit::ActionState::Planned => ActionState::Planned,
                wit::ActionState::Failed => ActionState::Failed,
            },
            origin: Origin::Plugin,
            error: None,
        };
        if !take(action.statement.len() + action.target.len() + 64) {
            break;
        }
        actions.push(action);
        kept_actions += 1;
    }
    dropped += total_actions - kept_actions;
    let mut metrics = Vec::new();
    let total_metrics = report.metrics.len();
    // A record cannot hold NaN or an infinity (JSON has neither): such a
    // metric is left out and named in a finding.
    let mut not_finite = Vec::new();
    for m in report.metrics.into_iter().take(MAX_ITEMS) {
        if !m.value.is_finite() {
            not_finite.push(format!("{} = {}", clean(r, m.name, MAX_SHORT), m.value));
            continue;
        }
        let metric = Metric {
            name: clean(r, m.name, MAX_SHORT),
            value: m.value,
            unit: clean(r, m.unit, MAX_SHORT),
        };
        if !take(metric.name.len() + metric.unit.len() + 32) {
            break;
        }
        metrics.push(metric);
    }
    dropped += total_metrics - metrics.len() - not_finite.len();
    if !not_finite.is_empty() {
        findings.push(Finding {
            severity: Severity::Warning,
            title: "metrics without a finite value dropped by the host".to_string(),
            detail: not_finite.join(", "),
            suggested_action: None,
        });
    }
    if dropped > 0 {
        findings.push(Finding {
            severity: Severity::Warning,
            title: "report truncated by the host".to_string(),
            detail: format!(
                "the plugin returned {total_findings} findings, {total_actions} actions and {total_metrics} metrics; \
                 {dropped} items over the caps ({MAX_ITEMS} per list, {MAX_REPORT_BYTES} bytes in all) were dropped"
            ),
            suggested_action: None,
        });
    }
    Report {
        status,
        summary,
        findings,
        actions,
        metrics,
    }
}
