//! Builders for the records a plugin returns: [`Manifest`] and [`ParamSpec`]
//! from `describe`, [`Report`] (with [`Finding`], [`Action`], [`Metric`]) from
//! `run`.

use crate::{
    Action, ActionState, CapabilityClass, Finding, Manifest, Metric, Outcome, ParamSpec, ParamType,
    Report, ReportStatus, Severity, TargetKind,
};

/// What ran (`sql`, `mongo`, `artifacts` calls) as a report action's state.
impl From<Outcome> for ActionState {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Executed => ActionState::Executed,
            Outcome::Planned => ActionState::Planned,
        }
    }
}

impl Manifest {
    /// A manifest with no capabilities, target kinds or parameters yet.
    /// `version` is usually `env!("CARGO_PKG_VERSION")`.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Manifest {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            capabilities: Vec::new(),
            target_kinds: Vec::new(),
            params: Vec::new(),
        }
    }

    /// Asks for one more capability class.
    pub fn capability(mut self, class: CapabilityClass) -> Self {
        if !self.capabilities.contains(&class) {
            self.capabilities.push(class);
        }
        self
    }

    /// Asks for these capability classes.
    pub fn capabilities(self, classes: impl IntoIterator<Item = CapabilityClass>) -> Self {
        classes.into_iter().fold(self, Manifest::capability)
    }

    /// Supports one more target kind.
    pub fn target_kind(mut self, kind: TargetKind) -> Self {
        if !self.target_kinds.contains(&kind) {
            self.target_kinds.push(kind);
        }
        self
    }

    /// Supports these target kinds.
    pub fn target_kinds(self, kinds: impl IntoIterator<Item = TargetKind>) -> Self {
        kinds.into_iter().fold(self, Manifest::target_kind)
    }

    /// Declares a parameter.
    pub fn param(mut self, param: ParamSpec) -> Self {
        self.params.push(param);
        self
    }

    /// Declares every parameter of `P` (see [`crate::params!`]).
    pub fn params<P: crate::Params>(mut self) -> Self {
        self.params.extend(P::specs());
        self
    }
}

impl ParamSpec {
    /// An optional parameter without a default.
    pub fn new(name: impl Into<String>, type_: ParamType, description: impl Into<String>) -> Self {
        ParamSpec {
            name: name.into(),
            description: description.into(),
            type_,
            default: None,
            required: false,
        }
    }

    /// A `string` parameter.
    pub fn string(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self::new(name, ParamType::String, description)
    }

    /// An `integer` parameter.
    pub fn integer(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self::new(name, ParamType::Integer, description)
    }

    /// A `float` parameter.
    pub fn float(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self::new(name, ParamType::Float, description)
    }

    /// A `boolean` parameter.
    pub fn boolean(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self::new(name, ParamType::Boolean, description)
    }

    /// A `duration` parameter (`30s`, `5m`, `1h`).
    pub fn duration(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self::new(name, ParamType::Duration, description)
    }

    /// Sets the default value (`0.2`, `50`, `true`, `"30s"`).
    pub fn with_default(mut self, value: impl ToString) -> Self {
        self.default = Some(value.to_string());
        self
    }

    /// Makes the parameter required.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
}

impl Report {
    /// A report with `status` and `summary` and nothing else yet.
    pub fn new(status: ReportStatus, summary: impl Into<String>) -> Self {
        Report {
            status,
            summary: summary.into(),
            findings: Vec::new(),
            actions: Vec::new(),
            metrics: Vec::new(),
        }
    }

    /// `Report::new(ReportStatus::Ok, summary)`.
    pub fn ok(summary: impl Into<String>) -> Self {
        Self::new(ReportStatus::Ok, summary)
    }

    /// `Report::new(ReportStatus::Warning, summary)`.
    pub fn warning(summary: impl Into<String>) -> Self {
        Self::new(ReportStatus::Warning, summary)
    }

    /// `Report::new(ReportStatus::Critical, summary)`.
    pub fn critical(summary: impl Into<String>) -> Self {
        Self::new(ReportStatus::Critical, summary)
    }

    /// Replaces the status.
    pub fn with_status(mut self, status: ReportStatus) -> Self {
        self.status = status;
        self
    }

    /// Raises the status to at least `status` (ok < warning < critical).
    pub fn raise(&mut self, status: ReportStatus) -> &mut Self {
        self.status = self.status.max(status);
        self
    }

    /// Adds a finding (builder style).
    pub fn finding(mut self, finding: Finding) -> Self {
        self.add_finding(finding);
        self
    }

    /// Adds a finding.
    pub fn add_finding(&mut self, finding: Finding) -> &mut Self {
        self.findings.push(finding);
        self
    }

    /// Adds an action (builder style).
    pub fn action(mut self, action: Action) -> Self {
        self.add_action(action);
        self
    }

    /// Adds an action.
    pub fn add_action(&mut self, action: Action) -> &mut Self {
        self.actions.push(action);
        self
    }

    /// Adds a metric (builder style); `unit` is `""` when dimensionless.
    pub fn metric(mut self, name: impl Into<String>, value: f64, unit: impl Into<String>) -> Self {
        self.add_metric(name, value, unit);
        self
    }

    /// Adds a metric; `unit` is `""` when dimensionless.
    pub fn add_metric(
        &mut self,
        name: impl Into<String>,
        value: f64,
        unit: impl Into<String>,
    ) -> &mut Self {
        self.metrics.push(Metric::new(name, value, unit));
        self
    }
}

impl Finding {
    /// A finding without a suggested action.
    pub fn new(severity: Severity, title: impl Into<String>, detail: impl Into<String>) -> Self {
        Finding {
            severity,
            title: title.into(),
            detail: detail.into(),
            suggested_action: None,
        }
    }

    /// An `info` finding.
    pub fn info(title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(Severity::Info, title, detail)
    }

    /// A `warning` finding.
    pub fn warning(title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(Severity::Warning, title, detail)
    }

    /// A `critical` finding.
    pub fn critical(title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(Severity::Critical, title, detail)
    }

    /// Sets what an operator could do.
    pub fn suggest(mut self, action: impl Into<String>) -> Self {
        self.suggested_action = Some(action.into());
        self
    }
}

impl Action {
    /// A change made (or planned, or failed) on `target`.
    pub fn new(
        target: impl Into<String>,
        statement: impl Into<String>,
        class: CapabilityClass,
        state: ActionState,
    ) -> Self {
        Action {
            target: target.into(),
            statement: statement.into(),
            class,
            state,
        }
    }
}

impl Metric {
    /// A named number; `unit` is `""` when dimensionless.
    pub fn new(name: impl Into<String>, value: f64, unit: impl Into<String>) -> Self {
        Metric {
            name: name.into(),
            value,
            unit: unit.into(),
        }
    }
}

impl From<Severity> for ReportStatus {
    fn from(severity: Severity) -> Self {
        match severity {
            Severity::Info => ReportStatus::Ok,
            Severity::Warning => ReportStatus::Warning,
            Severity::Critical => ReportStatus::Critical,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_fill_the_records() {
        let m = Manifest::new("x", "0.1.0", "d")
            .capabilities([CapabilityClass::Read, CapabilityClass::Read])
            .target_kinds([TargetKind::Sqlite])
            .param(ParamSpec::float("ratio", "r").with_default(0.2))
            .param(ParamSpec::string("name", "n").required());
        assert_eq!(m.capabilities.len(), 1);
        assert_eq!(m.params[0].default.as_deref(), Some("0.2"));
        assert!(m.params[1].required);

        let mut r = Report::ok("fine")
            .finding(Finding::warning("t", "d").suggest("s"))
            .metric("n", 1.0, "");
        r.raise(ReportStatus::Warning).raise(ReportStatus::Ok);
        assert_eq!(r.status, ReportStatus::Warning);
        assert_eq!(r.findings.len(), 1);
        assert_eq!(r.metrics[0].name, "n");
    }
}
