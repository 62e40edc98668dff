//! Checks shared by the policy tables: durations, counts, time zones,
//! names and `params` values.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

use super::Location;
use crate::config::document::{Source, push_key};
use crate::config::units::HumanDuration;
use crate::diag::Diagnostics;

/// Default `approval_ttl` of grants, schedules and rules: 24h.
pub(super) const DEFAULT_APPROVAL_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Where the table at `span` of `source` starts.
pub(super) fn location(source: Source<'_>, span: &Range<usize>) -> Location {
    Location {
        file: source.file.to_path_buf(),
        line: source.line(span),
    }
}

/// A duration field: `default` when absent. With `nonzero`, zero is
/// reported.
pub(super) fn duration(
    source: Source<'_>,
    field: impl FnOnce() -> String,
    value: &Option<Spanned<HumanDuration>>,
    default: Duration,
    nonzero: bool,
    diags: &mut Diagnostics,
) -> Duration {
    let Some(value) = value else {
        return default;
    };
    let HumanDuration(duration) = *value.get_ref();
    if nonzero && duration.is_zero() {
        diags.push(source.error(&value.span(), field(), "must be greater than zero"));
    }
    duration
}

/// A count that must be at least 1.
pub(super) fn at_least_one(
    source: Source<'_>,
    field: impl FnOnce() -> String,
    value: &Spanned<u32>,
    diags: &mut Diagnostics,
) -> u32 {
    let count = *value.get_ref();
    if count == 0 {
        diags.push(source.error(&value.span(), field(), "must be at least 1"));
    }
    count
}

/// A time zone by its IANA name, like `"Europe/Berlin"`, or `None` after
/// reporting an unknown one.
pub(super) fn timezone(
    source: Source<'_>,
    field: impl FnOnce() -> String,
    value: &Spanned<String>,
    diags: &mut Diagnostics,
) -> Option<Tz> {
    let name = value.get_ref();
    match parse_timezone(name) {
        Ok(tz) => Some(tz),
        Err(message) => {
            diags.push(source.error(&value.span(), field(), message));
            None
        }
    }
}

/// A time zone by its IANA name; the error names it.
pub(super) fn parse_timezone(name: &str) -> Result<Tz, String> {
    if let Ok(tz) = name.parse::<Tz>() {
        return Ok(tz);
    }
    let hint = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().eq_ignore_ascii_case(name.trim()))
        .map_or_else(
            || "use an IANA time zone name like \"Europe/Berlin\" or \"UTC\"".to_owned(),
            |tz| format!("did you mean {:?}?", tz.name()),
        );
    Err(format!("unknown time zone {name:?}: {hint}"))
}

/// True for a Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(super) fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// True for a schedule name: `[a-z][a-z0-9_-]*`.
pub(super) fn is_valid_schedule_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// One value of a `params` table: a string, integer, float or boolean,
/// kept as a string (`5`, `1.5`, `true`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ParamValue(pub(super) String);

/// What a param value looks like, for error messages.
const PARAM_FORM: &str = "a string, number or boolean";

impl<'de> Deserialize<'de> for ParamValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ParamVisitor;

        impl Visitor<'_> for ParamVisitor {
            type Value = ParamValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(PARAM_FORM)
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<ParamValue, E> {
                Ok(ParamValue(value.to_owned()))
            }

            fn visit_string<E: de::Error>(self, value: String) -> Result<ParamValue, E> {
                Ok(ParamValue(value))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<ParamValue, E> {
                Ok(ParamValue(value.to_string()))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<ParamValue, E> {
                Ok(ParamValue(value.to_string()))
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<ParamValue, E> {
                Ok(ParamValue(format!("{value:?}")))
            }

            fn visit_bool<E: de::Error>(self, value: bool) -> Result<ParamValue, E> {
                Ok(ParamValue(value.to_string()))
            }
        }

        deserializer.deserialize_any(ParamVisitor)
    }
}

/// A `params` table as written.
pub(super) type ParamsFile = Spanned<BTreeMap<String, Spanned<ParamValue>>>;

/// The params as strings, each with its span and field path (like
/// `rule[0].params.table`), for further checks.
pub(super) fn params(
    path: &str,
    value: &Option<ParamsFile>,
) -> Vec<(String, String, Range<usize>, String)> {
    let Some(value) = value else {
        return Vec::new();
    };
    value
        .get_ref()
        .iter()
        .map(|(key, param)| {
            (
                key.clone(),
                param.get_ref().0.clone(),
                param.span(),
                push_key(path.to_owned(), key),
            )
        })
        .collect()
}
