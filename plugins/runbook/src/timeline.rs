//! The run's report: one finding per step, the timeline as Markdown for the
//! post-incident review, metrics, and the status.

use warden_sdk::{Finding, Report, ReportStatus};

use crate::engine::{End, Entry, Inputs, Outcome, Status};
use crate::model::Runbook;

fn step_finding(n: usize, e: &Entry) -> Finding {
    let title = format!(
        "step {} {} ({}): {}",
        n + 1,
        e.step,
        e.kind,
        e.status.name()
    );
    let mut parts = Vec::new();
    if !e.saw.is_empty() {
        parts.push(format!("saw: {}", e.saw));
    }
    if !e.decided.is_empty() {
        parts.push(format!("decided: {}", e.decided));
    }
    if !e.did.is_empty() {
        parts.push(format!("did: {}", e.did));
    }
    parts.push(format!("{} ms", e.ms));
    let detail = format!("{}: {}", e.title, parts.join("; "));
    match e.status {
        Status::Failed => Finding::critical(title, detail),
        Status::AwaitingApproval | Status::Planned => Finding::warning(title, detail),
        Status::Ok | Status::Skipped => Finding::info(title, detail),
    }
}

/// One Markdown table cell: no pipes or line breaks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// How the runbook ended, in words.
pub fn ending(end: &End) -> String {
    match end {
        End::Completed => "completed".to_owned(),
        End::Stopped { step, reason } => format!("stopped at `{step}`: {reason}"),
        End::StepLimit { max } => format!(
            "stopped after {max} steps (max_steps): a loop of goto or else jumps did not end"
        ),
        End::AwaitingApproval { step } => {
            format!("stopped before `{step}`: it needs approval and this run was not approved")
        }
        End::Deadline { step } => format!("stopped before `{step}`: the run's deadline came near"),
    }
}

/// The timeline as Markdown.
pub fn markdown(runbook: &Runbook, inputs: &Inputs, outcome: &Outcome) -> String {
    let mut md = format!(
        "## Incident timeline: {} ({})\n\n{}\n\n- target: `{}`\n- mode: {}\n- outcome: {}\n",
        runbook.name,
        runbook.severity,
        runbook.description,
        inputs.target,
        if inputs.dry_run {
            "dry-run (changes planned, not made)"
        } else if inputs.approved {
            "approved run"
        } else {
            "run"
        },
        ending(&outcome.end)
    );
    if let Some(labels) = inputs.alert.get("labels").and_then(|l| l.as_object()) {
        let shown: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        md.push_str(&format!("- alert: {}\n", shown.join(", ")));
    }
    md.push_str(
        "\n| # | step | status | saw | decided | did | ms |\n|---|---|---|---|---|---|---|\n",
    );
    for (n, e) in outcome.timeline.iter().enumerate() {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            n + 1,
            cell(&e.title),
            e.status.name(),
            cell(&e.saw),
            cell(&e.decided),
            cell(&e.did),
            e.ms
        ));
    }
    md
}

/// The report of one run.
pub fn report(runbook: &Runbook, inputs: &Inputs, outcome: &Outcome) -> Report {
    let failed = outcome
        .timeline
        .iter()
        .filter(|e| e.status == Status::Failed)
        .count();
    let status = match &outcome.end {
        End::Stopped { .. } | End::StepLimit { .. } | End::Deadline { .. } => {
            ReportStatus::Critical
        }
        End::AwaitingApproval { .. } => ReportStatus::Warning,
        End::Completed if failed > 0 || outcome.executed > 0 || outcome.planned > 0 => {
            ReportStatus::Warning
        }
        End::Completed => ReportStatus::Ok,
    };
    let summary = format!(
        "runbook {}: {} after {} step{}; {} change{} made, {} planned",
        runbook.name,
        ending(&outcome.end),
        outcome.timeline.len(),
        if outcome.timeline.len() == 1 { "" } else { "s" },
        outcome.executed,
        if outcome.executed == 1 { "" } else { "s" },
        outcome.planned
    );
    let mut report = Report::new(status, summary);
    for (n, e) in outcome.timeline.iter().enumerate() {
        report.add_finding(step_finding(n, e));
    }
    report.add_finding(Finding::info(
        "incident timeline (markdown)",
        markdown(runbook, inputs, outcome),
    ));
    let total_ms: u64 = outcome.timeline.iter().map(|e| e.ms).sum();
    report
        .metric("steps", outcome.timeline.len() as f64, "")
        .metric("steps_failed", failed as f64, "")
        .metric("changes_executed", f64::from(outcome.executed), "")
        .metric("changes_planned", f64::from(outcome.planned), "")
        .metric("duration_ms", total_ms as f64, "ms")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(step: &str, status: Status, did: &str) -> Entry {
        Entry {
            step: step.into(),
            kind: "action".into(),
            title: format!("{step} | title"),
            status,
            saw: "2 rows".into(),
            decided: "terminate".into(),
            did: did.into(),
            ms: 5,
        }
    }

    fn runbook() -> Runbook {
        serde_json::from_value(
            json!({"name": "pg-idle", "severity": "critical", "description": "Idle.", "steps": []}),
        )
        .unwrap()
    }

    #[test]
    fn the_report_tells_the_story_and_its_status() {
        let inputs = Inputs {
            target: "app".into(),
            dry_run: true,
            alert: json!({"labels": {"alertname": "TooMany"}}),
            ..Inputs::default()
        };
        let outcome = Outcome {
            timeline: vec![
                entry("q", Status::Ok, ""),
                entry("end", Status::Planned, "would (dry-run): pid 4"),
            ],
            end: End::Completed,
            executed: 0,
            planned: 1,
        };
        let r = report(&runbook(), &inputs, &outcome);
        assert_eq!(r.status, ReportStatus::Warning);
        assert_eq!(
            r.summary,
            "runbook pg-idle: completed after 2 steps; 0 changes made, 1 planned"
        );
        assert_eq!(r.findings[1].title, "step 2 end (action): planned");
        assert!(r.findings[1].detail.contains("did: would (dry-run): pid 4"));
        let md = &r.findings[2].detail;
        assert!(
            md.starts_with("## Incident timeline: pg-idle (critical)"),
            "{md}"
        );
        assert!(md.contains("- mode: dry-run"), "{md}");
        assert!(md.contains("- alert: alertname=TooMany"), "{md}");
        assert!(md.contains("| 2 | end \\| title | planned |"), "{md}");

        let stopped = Outcome {
            timeline: vec![entry("end", Status::Failed, "failed: superuser")],
            end: End::StepLimit { max: 7 },
            executed: 0,
            planned: 0,
        };
        let r = report(&runbook(), &inputs, &stopped);
        assert_eq!(r.status, ReportStatus::Critical);
        assert!(r.summary.contains("stopped after 7 steps"), "{}", r.summary);

        let quiet = Outcome {
            timeline: vec![entry("q", Status::Ok, "")],
            end: End::Completed,
            executed: 0,
            planned: 0,
        };
        assert_eq!(report(&runbook(), &inputs, &quiet).status, ReportStatus::Ok);
    }
}
