//! Typed plugin parameters: a plugin declares its parameters once, as a
//! Rust struct in [`params!`](crate::params), and gets both the manifest's
//! [`ParamSpec`]s ([`Params::specs`], for [`Manifest::params`]) and the
//! parsing of a run's values ([`Params::from_context`]), with errors that
//! name the parameter.
//!
//! ```
//! use std::time::Duration;
//! use warden_sdk::{Params, ParamType};
//!
//! warden_sdk::params! {
//!     /// The index advisor's settings.
//!     pub struct Settings {
//!         /// Unused indexes are a warning only when statistics are at
//!         /// least this old.
//!         pub min_stats_age: Duration = "24h",
//!         /// Only these schemas (comma-separated).
//!         pub include_schemas: Option<String>,
//!         /// Suggest at most this many indexes per run.
//!         pub max_indexes: u64 = 5,
//!     }
//! }
//!
//! let specs = Settings::specs();
//! assert_eq!(specs[0].name, "min_stats_age");
//! assert_eq!(specs[0].type_, ParamType::Duration);
//! assert_eq!(specs[0].default.as_deref(), Some("24h"));
//! assert_eq!(
//!     specs[0].description,
//!     "Unused indexes are a warning only when statistics are at least this old."
//! );
//! let settings = Settings::from_params(&[]).unwrap();
//! assert_eq!(settings.min_stats_age, Duration::from_secs(86_400));
//! assert_eq!(settings.include_schemas, None);
//! ```
//!
//! A field's type says how it is read and declared:
//!
//! | Rust type | WIT `param-type` | text read as |
//! |---|---|---|
//! | `String` | `string` | as given (not trimmed) |
//! | `u64`, `i64` | `integer` | a (non-negative) integer |
//! | `f64` | `float` | a finite number |
//! | `bool` | `boolean` | `true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0` |
//! | `Duration` | `duration` | [`parse_duration`](crate::parse_duration) |
//! | `Option<T>` | `T`'s | absent is `None` |
//!
//! `= default` gives the default (any `ToString`, as the manifest shows
//! it); a field without one that is not an `Option` is `required`. The
//! doc comment is the parameter's description (lines joined by spaces).

use std::time::Duration;

use crate::{Context, Error, Param, ParamSpec, ParamType, parse_duration};

/// A type a parameter can have: its WIT type and how its text is read.
pub trait FromParam: Sized {
    /// The type the manifest declares.
    const TYPE: ParamType;
    /// True when a missing value is a value (`Option`).
    const OPTIONAL: bool = false;

    /// Reads parameter `name` from its text, `None` when it was not given
    /// and has no default. Errors name the parameter.
    fn from_param(name: &str, raw: Option<&str>) -> Result<Self, Error>;
}

/// A plugin's parameters as one Rust type; implemented by
/// [`params!`](crate::params).
pub trait Params: Sized {
    /// One spec per parameter, in declaration order.
    fn specs() -> Vec<ParamSpec>;

    /// Reads every parameter from `params` (declared defaults fill in the
    /// missing ones).
    fn from_params(params: &[Param]) -> Result<Self, Error>;

    /// Reads every parameter of the run.
    fn from_context(ctx: &Context) -> Result<Self, Error> {
        Self::from_params(ctx.params())
    }
}

pub(crate) fn missing(name: &str) -> Error {
    Error::invalid_input(format!(
        "parameter `{name}` is missing (declare it with a default, or pass it)"
    ))
}

/// `raw` trimmed and read by `parse`; `expected {what}` names the form.
fn parsed<T>(
    name: &str,
    raw: Option<&str>,
    what: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, Error> {
    let raw = raw.ok_or_else(|| missing(name))?;
    parse(raw.trim()).ok_or_else(|| {
        Error::invalid_input(format!("parameter `{name}`: expected {what}, got {raw:?}"))
    })
}

impl FromParam for String {
    const TYPE: ParamType = ParamType::String;

    fn from_param(name: &str, raw: Option<&str>) -> Result<Self, Error> {
        raw.map(str::to_owned).ok_or_else(|| missing(name))
    }
}

impl FromParam for u64 {
    const TYPE: ParamType = ParamType::Integer;

    fn from_param(name: &str, raw: Option<&str>) -> Result<Self, Error> {
        parsed(name, raw, "a non-negative integer", |s| s.parse().ok())
    }
}

impl FromParam for i64 {
    const TYPE: ParamType = ParamType::Integer;

    fn from_param(name: &str, raw: Option<&str>) -> Result<Self, Error> {
        parsed(name, raw, "an integer", |s| s.parse().ok())
    }
}

impl FromParam for f64 {
    const TYPE: ParamType = ParamType::Float;

    fn from_param(name: &str, raw: Option<&str>) -> Result<Self, Error> {
        parsed(name, raw, "a number", |s| {
            s.parse::<f64>().ok().filter(|v| v.is_finite())
        })
    }
}

impl FromParam for bool {
    const TYPE: ParamType = ParamType::Boolean;

    fn from_param(name: &str, raw: Option<&str>) -> Result<Self, Error> {
        parsed(name, raw, "true or false", parse_bool)
    }
}

impl FromParam for Duration {
    const TYPE: ParamType = ParamType::Duration;

    fn from_param(name: &str, raw: Option<&str>) -> Result<Self, Error> {
        parsed(
            name,
            raw,
            "a duration such as 30s, 5m or 1h",
            parse_duration,
        )
    }
}

impl<T: FromParam> FromParam for Option<T> {
    const TYPE: ParamType = T::TYPE;
    const OPTIONAL: bool = true;

    fn from_param(name: &str, raw: Option<&str>) -> Result<Self, Error> {
        match raw {
            None => Ok(None),
            Some(_) => T::from_param(name, raw).map(Some),
        }
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// The spec of a field of type `T` (used by [`params!`](crate::params)).
#[doc(hidden)]
pub fn spec<T: FromParam>(name: &str, doc: &[&str], default: Option<String>) -> ParamSpec {
    let description: Vec<&str> = doc.iter().map(|line| line.trim()).collect();
    ParamSpec {
        name: name.to_owned(),
        description: description.join(" "),
        type_: T::TYPE,
        required: !T::OPTIONAL && default.is_none(),
        default,
    }
}

/// Reads field `name` of type `T` from `params`, its default when absent
/// (used by [`params!`](crate::params)).
#[doc(hidden)]
pub fn read<T: FromParam>(params: &[Param], name: &str, default: Option<&str>) -> Result<T, Error> {
    let given = params
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.value.as_str());
    T::from_param(name, given.or(default))
}

/// Declares a plugin's parameters as a struct implementing [`Params`]:
/// see the [module documentation](crate::params).
#[macro_export]
macro_rules! params {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])+
                $fvis:vis $field:ident : $ty:ty $(= $default:expr)?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $(
                $(#[doc = $doc])+
                $fvis $field: $ty,
            )*
        }

        impl $crate::Params for $name {
            fn specs() -> ::std::vec::Vec<$crate::ParamSpec> {
                ::std::vec![$(
                    $crate::params::spec::<$ty>(
                        ::core::stringify!($field),
                        &[$($doc),+],
                        $crate::__param_default!($($default)?),
                    ),
                )*]
            }

            fn from_params(
                params: &[$crate::Param],
            ) -> ::core::result::Result<Self, $crate::Error> {
                ::core::result::Result::Ok($name {
                    $(
                        $field: $crate::params::read::<$ty>(
                            params,
                            ::core::stringify!($field),
                            $crate::__param_default!($($default)?).as_deref(),
                        )?,
                    )*
                })
            }
        }
    };
}

/// The default's text, if any (used by [`params!`](crate::params)).
#[doc(hidden)]
#[macro_export]
macro_rules! __param_default {
    () => {
        ::core::option::Option::<::std::string::String>::None
    };
    ($default:expr) => {
        ::core::option::Option::Some(::std::string::ToString::to_string(&$default))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Params;

    crate::params! {
        /// Test settings.
        #[derive(Debug, PartialEq)]
        struct Settings {
            /// A ratio,
            /// over two lines.
            ratio: f64 = 0.2,
            /// A count.
            count: u64 = 50,
            /// Where.
            schema: Option<String>,
            /// Must be given.
            name: String,
            /// How long.
            age: Duration = "1h",
            /// Whether.
            apply: bool = false,
        }
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<Param> {
        pairs
            .iter()
            .map(|(n, v)| Param {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect()
    }

    #[test]
    fn specs_come_from_the_struct() {
        let specs = Settings::specs();
        let shown: Vec<(&str, ParamType, Option<&str>, bool)> = specs
            .iter()
            .map(|s| (s.name.as_str(), s.type_, s.default.as_deref(), s.required))
            .collect();
        assert_eq!(
            shown,
            [
                ("ratio", ParamType::Float, Some("0.2"), false),
                ("count", ParamType::Integer, Some("50"), false),
                ("schema", ParamType::String, None, false),
                ("name", ParamType::String, None, true),
                ("age", ParamType::Duration, Some("1h"), false),
                ("apply", ParamType::Boolean, Some("false"), false),
            ]
        );
        assert_eq!(specs[0].description, "A ratio, over two lines.");
    }

    #[test]
    fn values_are_read_with_defaults_and_errors_name_the_parameter() {
        let s = Settings::from_params(&params(&[("name", " n "), ("count", " 7 ")])).unwrap();
        assert_eq!(
            s,
            Settings {
                ratio: 0.2,
                count: 7,
                schema: None,
                name: " n ".into(),
                age: Duration::from_secs(3600),
                apply: false,
            }
        );
        let err = |pairs: &[(&str, &str)]| {
            Settings::from_params(&params(pairs))
                .err()
                .map(|e| e.summary())
                .unwrap_or_default()
        };
        assert_eq!(
            err(&[]),
            "invalid-input: parameter `name` is missing (declare it with a default, or pass it)"
        );
        assert_eq!(
            err(&[("name", "x"), ("ratio", "lots")]),
            "invalid-input: parameter `ratio`: expected a number, got \"lots\""
        );
        assert_eq!(
            err(&[("name", "x"), ("count", "-1")]),
            "invalid-input: parameter `count`: expected a non-negative integer, got \"-1\""
        );
        assert!(
            err(&[("name", "x"), ("apply", "maybe")]).contains("`apply`: expected true or false")
        );
    }
}
