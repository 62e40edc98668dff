//! The run's [`Context`]: the invocation, typed parameters, the deadline and
//! the way to the target's SQL, MongoDB and artifact stores.

use std::time::Duration;

use crate::artifacts::Artifacts;
use crate::mongo::Mongo;
use crate::params::FromParam;
use crate::sql::Sql;
use crate::{Alert, Error, Invocation, Param, TargetKind, Trigger};

/// Everything a run knows about itself. Built by the export glue from the
/// invocation `run` receives; plugins get it as `&Context`.
#[derive(Clone, Debug)]
pub struct Context {
    invocation: Invocation,
}

impl Context {
    /// Wraps an invocation (the export glue does this; tests can too).
    pub fn new(invocation: Invocation) -> Self {
        Context { invocation }
    }

    /// The raw invocation.
    pub fn invocation(&self) -> &Invocation {
        &self.invocation
    }

    /// The run's id, as recorded by the host.
    pub fn run_id(&self) -> &str {
        &self.invocation.run_id
    }

    /// What started the run.
    pub fn trigger(&self) -> &Trigger {
        &self.invocation.trigger
    }

    /// The alert that started the run, if an alert did.
    pub fn alert(&self) -> Option<&Alert> {
        match &self.invocation.trigger {
            Trigger::Alert(alert) => Some(alert),
            Trigger::Manual(_) | Trigger::Schedule(_) => None,
        }
    }

    /// The target's name (what `sql()` talks to).
    pub fn target(&self) -> &str {
        &self.invocation.target
    }

    /// The target's kind.
    pub fn target_kind(&self) -> TargetKind {
        self.invocation.target_kind
    }

    /// True in dry-run: statements above `read` come back as planned.
    pub fn dry_run(&self) -> bool {
        self.invocation.dry_run
    }

    /// True when a person approved this run: it is the real run of an
    /// approved plan (a host call, since 0.1.5). Steps a procedure marks as
    /// needing approval run only then.
    pub fn approved(&self) -> bool {
        crate::bindings::warden::plugin::context::approved()
    }

    /// Milliseconds left before the host stops the run (a host call).
    pub fn remaining_ms(&self) -> u64 {
        crate::bindings::warden::plugin::context::remaining_ms()
    }

    /// SQL against the invocation's target.
    pub fn sql(&self) -> Sql<'_> {
        Sql::new(self.target())
    }

    /// SQL against another target (the grant must allow it).
    pub fn sql_on<'t>(&self, target: &'t str) -> Sql<'t> {
        Sql::new(target)
    }

    /// MongoDB commands against the invocation's target.
    pub fn mongo(&self) -> Mongo<'_> {
        Mongo::new(self.target())
    }

    /// MongoDB commands against another target (the grant must allow it).
    pub fn mongo_on<'t>(&self, target: &'t str) -> Mongo<'t> {
        Mongo::new(target)
    }

    /// The invocation's target's artifacts in `store` (the grant for the
    /// target must list the store).
    pub fn artifacts<'s>(&'s self, store: &'s str) -> Artifacts<'s> {
        Artifacts::new(self.target(), store)
    }

    /// Another target's artifacts in `store`.
    pub fn artifacts_on<'t>(&self, target: &'t str, store: &'t str) -> Artifacts<'t> {
        Artifacts::new(target, store)
    }

    /// All parameters, as the host passed them (defaults filled in).
    pub fn params(&self) -> &[Param] {
        &self.invocation.params
    }

    /// A parameter's raw text, `None` when it was not given and has no default.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.invocation
            .params
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.value.as_str())
    }

    fn required(&self, name: &str) -> Result<&str, Error> {
        self.param(name).ok_or_else(|| crate::params::missing(name))
    }

    /// Parameter `name` as a `T` (see [`FromParam`]); for many parameters,
    /// declare them with [`params!`](crate::params) instead.
    pub fn param_as<T: FromParam>(&self, name: &str) -> Result<T, Error> {
        T::from_param(name, self.param(name))
    }

    /// A required string parameter.
    pub fn param_str(&self, name: &str) -> Result<&str, Error> {
        self.required(name)
    }

    /// An optional string parameter (returned as given, also when empty).
    pub fn param_opt_str(&self, name: &str) -> Option<&str> {
        self.param(name)
    }

    /// A required float parameter.
    pub fn param_f64(&self, name: &str) -> Result<f64, Error> {
        self.param_as(name)
    }

    /// An optional float parameter.
    pub fn param_opt_f64(&self, name: &str) -> Result<Option<f64>, Error> {
        self.param_as(name)
    }

    /// A required non-negative integer parameter.
    pub fn param_u64(&self, name: &str) -> Result<u64, Error> {
        self.param_as(name)
    }

    /// An optional non-negative integer parameter.
    pub fn param_opt_u64(&self, name: &str) -> Result<Option<u64>, Error> {
        self.param_as(name)
    }

    /// A required integer parameter.
    pub fn param_i64(&self, name: &str) -> Result<i64, Error> {
        self.param_as(name)
    }

    /// An optional integer parameter.
    pub fn param_opt_i64(&self, name: &str) -> Result<Option<i64>, Error> {
        self.param_as(name)
    }

    /// A required boolean parameter (`true`/`false`, also `yes`/`no`, `on`/`off`, `1`/`0`).
    pub fn param_bool(&self, name: &str) -> Result<bool, Error> {
        self.param_as(name)
    }

    /// An optional boolean parameter.
    pub fn param_opt_bool(&self, name: &str) -> Result<Option<bool>, Error> {
        self.param_as(name)
    }

    /// A required duration parameter (`30s`, `5m`, `1h30m`, `250ms`).
    pub fn param_duration(&self, name: &str) -> Result<Duration, Error> {
        self.param_as(name)
    }

    /// An optional duration parameter.
    pub fn param_opt_duration(&self, name: &str) -> Result<Option<Duration>, Error> {
        self.param_as(name)
    }
}

/// Parses `30s`, `5m`, `1h30m`, `250ms`, `1.5h`, `2d`, `1w`; a bare number is
/// seconds. Units: `ns`, `us`/`µs`, `ms`, `s`/`sec`/`secs`/`second(s)`,
/// `m`/`min`/`mins`/`minute(s)`, `h`/`hr`/`hour(s)`, `d`/`day(s)`, `w`/`week(s)`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(secs) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let rest_trimmed = rest.trim_start();
        let number_len = rest_trimmed
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest_trimmed.len());
        let (number, after) = rest_trimmed.split_at(number_len);
        let value: f64 = number.parse().ok()?;
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let seconds_per_unit = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86_400.0,
            "w" | "week" | "weeks" => 604_800.0,
            _ => return None,
        };
        total += value * seconds_per_unit;
        rest = after.trim_start();
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Param, Trigger};

    fn ctx(params: &[(&str, &str)]) -> Context {
        Context::new(Invocation {
            run_id: "r1".into(),
            trigger: Trigger::Manual("me".into()),
            target: "db".into(),
            target_kind: TargetKind::Sqlite,
            params: params
                .iter()
                .map(|(n, v)| Param {
                    name: (*n).into(),
                    value: (*v).into(),
                })
                .collect(),
            dry_run: false,
        })
    }

    #[test]
    fn typed_params() {
        let c = ctx(&[
            ("r", "0.25"),
            ("n", "50"),
            ("b", "true"),
            ("d", "1h30m"),
            ("bad", "x"),
        ]);
        assert_eq!(c.param_f64("r").ok(), Some(0.25));
        assert_eq!(c.param_u64("n").ok(), Some(50));
        assert_eq!(c.param_f64("n").ok(), Some(50.0));
        assert_eq!(c.param_bool("b").ok(), Some(true));
        assert_eq!(c.param_duration("d").ok(), Some(Duration::from_secs(5400)));
        assert_eq!(c.param_opt_u64("missing").ok(), Some(None));
        let err = c
            .param_u64("bad")
            .err()
            .map(|e| e.summary())
            .unwrap_or_default();
        assert!(err.contains("`bad`"), "{err}");
        let err = c
            .param_f64("missing")
            .err()
            .map(|e| e.summary())
            .unwrap_or_default();
        assert!(err.contains("`missing`"), "{err}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h 30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("12"), Some(Duration::from_secs(12)));
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("m"), None);
    }
}
