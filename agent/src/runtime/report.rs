//! Turning what a guest returned into what the host records: every string
//! redacted and cut, every list capped, so a hostile plugin cannot flood the
//! state database or smuggle a secret into a record.

use crate::host::bindings::types as wit;
use crate::runs::{Action, ActionState, Finding, Metric, Origin, Report, ReportStatus, Severity};
use crate::secrets::Redactor;
use crate::text::truncate_utf8;

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
        // The host saw this statement itself: its record is the one that
        // counts, except for a plugin's `failed` verdict on a statement the
        // host saw succeed (the plugin checked the outcome: a VACUUM that
        // was skipped with a warning), which is kept beside it.
        let failed_claim = a.state == wit::ActionState::Failed;
        if host_actions.iter().any(|h| {
            h.target == a.target
                && h.statement == r.redact(a.statement.trim())
                && (!failed_claim || h.state == ActionState::Failed)
        }) {
            kept_actions += 1;
            continue;
        }
        let action = Action {
            target: clean(r, a.target, MAX_SHORT),
            statement: clean(r, a.statement, MAX_LONG),
            class: crate::host::wit::from_wit_class(a.class),
            state: match a.state {
                wit::ActionState::Executed => ActionState::Executed,
                wit::ActionState::Planned => ActionState::Planned,
                wit::ActionState::Failed => ActionState::Failed,
            },
            origin: Origin::Plugin,
            error: None,
            notices: Vec::new(),
            params: Vec::new(),
            fingerprint: None,
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

/// The error of a run whose report lists failed actions (see
/// [`crate::runtime::Runtime::execute`] for the rule): how many, and the
/// first one's statement, target and error.
pub fn failed_actions_error(report: &Report) -> Option<String> {
    let failed: Vec<&Action> = report
        .actions
        .iter()
        .filter(|a| a.state == ActionState::Failed)
        .collect();
    let first = failed.first()?;
    let mut statement = first.statement.clone();
    truncate_utf8(&mut statement, MAX_SHORT);
    let who = match first.origin {
        Origin::Host => "recorded by the host",
        Origin::Plugin => "reported by the plugin",
    };
    let mut message = format!(
        "{} failed action{} in the report; the first, {who}: `{statement}` on target `{}`",
        failed.len(),
        if failed.len() == 1 { "" } else { "s" },
        first.target,
    );
    if let Some(e) = &first.error {
        message.push_str(&format!(": {e}"));
    } else if let Some(n) = first.notices.first() {
        message.push_str(&format!(": {} {}", n.severity, n.message));
    }
    truncate_utf8(&mut message, MAX_LONG);
    Some(message)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::capability::CapabilityClass;
    use crate::runs::Notice;

    fn host(statement: &str, state: ActionState, error: Option<&str>) -> Action {
        Action {
            target: "pg".into(),
            statement: statement.into(),
            class: CapabilityClass::Maintenance,
            state,
            origin: Origin::Host,
            error: error.map(str::to_string),
            notices: Vec::new(),
            params: Vec::new(),
            fingerprint: None,
        }
    }

    fn claim(statement: &str, state: wit::ActionState) -> wit::Action {
        wit::Action {
            target: "pg".into(),
            statement: statement.into(),
            class: wit::CapabilityClass::Maintenance,
            state,
        }
    }

    fn report(actions: Vec<wit::Action>) -> wit::Report {
        wit::Report {
            status: wit::ReportStatus::Ok,
            summary: "done".into(),
            findings: Vec::new(),
            actions,
            metrics: Vec::new(),
        }
    }

    #[test]
    fn a_failed_verdict_on_a_statement_the_host_saw_succeed_is_kept() {
        let r = Redactor::new(Vec::<String>::new());
        let hosts = [host("VACUUM t", ActionState::Executed, None)];
        // The plugin's `executed` repeats the host's record: dropped.
        let same = from_guest(
            &r,
            report(vec![claim("VACUUM t", wit::ActionState::Executed)]),
            &hosts,
        );
        assert_eq!(same.actions.len(), 1);
        assert_eq!(failed_actions_error(&same), None);
        // Its `failed` verdict (it checked the outcome) is kept beside it.
        let failed = from_guest(
            &r,
            report(vec![claim("VACUUM t", wit::ActionState::Failed)]),
            &hosts,
        );
        assert_eq!(failed.actions.len(), 2);
        assert_eq!(failed.actions[1].origin, Origin::Plugin);
        assert_eq!(failed.actions[1].state, ActionState::Failed);
        let e = failed_actions_error(&failed).unwrap();
        assert_eq!(
            e,
            "1 failed action in the report; the first, reported by the plugin: `VACUUM t` on target `pg`"
        );
        // A host-recorded failure repeated by the plugin is one action.
        let hosts = [host(
            "REINDEX t",
            ActionState::Failed,
            Some("target error 42501: must be owner"),
        )];
        let both = from_guest(
            &r,
            report(vec![claim("REINDEX t", wit::ActionState::Failed)]),
            &hosts,
        );
        assert_eq!(both.actions.len(), 1);
        let e = failed_actions_error(&both).unwrap();
        assert!(
            e.starts_with(
                "1 failed action in the report; the first, recorded by the host: `REINDEX t`"
            ),
            "{e}"
        );
        assert!(e.ends_with(": target error 42501: must be owner"), "{e}");
    }

    #[test]
    fn the_error_counts_failed_actions_and_quotes_the_first_ones_notice() {
        let r = Redactor::new(Vec::<String>::new());
        let mut skipped = host("ANALYZE a", ActionState::Executed, None);
        skipped.notices.push(Notice {
            severity: "WARNING".into(),
            code: String::new(),
            message: "skipping \"a\"".into(),
        });
        let hosts = [
            host("ANALYZE x", ActionState::Executed, None),
            skipped,
            host("ANALYZE b", ActionState::Planned, None),
        ];
        let none = from_guest(&r, report(Vec::new()), &hosts);
        assert_eq!(failed_actions_error(&none), None);
        let mut hosts = hosts.to_vec();
        hosts[1].state = ActionState::Failed;
        hosts[2].state = ActionState::Failed;
        let two = from_guest(
            &r,
            report(vec![claim("CHECKPOINT", wit::ActionState::Failed)]),
            &hosts,
        );
        let e = failed_actions_error(&two).unwrap();
        assert_eq!(
            e,
            "3 failed actions in the report; the first, recorded by the host: `ANALYZE a` on target `pg`: WARNING skipping \"a\""
        );
    }
}
