//! Typed durations ("30s", "5m") and sizes ("64MiB") for configuration files.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A duration written like `"30s"`, `"5m"` or `"1h 30m"` (humantime).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HumanDuration(pub(crate) Duration);

/// What a duration looks like, for error messages.
pub(crate) const DURATION_FORM: &str = "a duration like \"30s\", \"5m\" or \"1h 30m\"";

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = HumanDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(DURATION_FORM)
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<HumanDuration, E> {
                humantime::parse_duration(value.trim())
                    .map(HumanDuration)
                    .map_err(|e| {
                        E::custom(format!(
                            "invalid duration {value:?} ({e}): expected {DURATION_FORM}"
                        ))
                    })
            }
        }

        deserializer.deserialize_str(DurationVisitor)
    }
}

/// A size written like `"64MiB"`, `"512 KiB"` or `"1GB"` (bytesize), or a
/// number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HumanSize(pub(crate) u64);

/// What a size looks like, for error messages.
pub(crate) const SIZE_FORM: &str = "a size like \"64MiB\", \"512KiB\" or \"1GiB\"";

impl<'de> Deserialize<'de> for HumanSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;

        impl Visitor<'_> for SizeVisitor {
            type Value = HumanSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(SIZE_FORM)
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<HumanSize, E> {
                value
                    .trim()
                    .parse::<bytesize::ByteSize>()
                    .map(|size| HumanSize(size.as_u64()))
                    .map_err(|_| E::custom(format!("invalid size {value:?}: expected {SIZE_FORM}")))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<HumanSize, E> {
                Ok(HumanSize(value))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<HumanSize, E> {
                u64::try_from(value)
                    .map(HumanSize)
                    .map_err(|_| E::custom(format!("invalid size {value}: expected {SIZE_FORM}")))
            }
        }

        deserializer.deserialize_any(SizeVisitor)
    }
}

/// `bytes` the way a user would write it: `"64MiB"`, `"4GiB"`, `"1000B"`.
pub(crate) fn format_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (factor, unit) in UNITS {
        if bytes >= factor && bytes.is_multiple_of(factor) {
            return format!("{}{unit}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct T {
        d: Option<HumanDuration>,
        s: Option<HumanSize>,
    }

    fn parse(text: &str) -> Result<T, String> {
        toml::from_str::<T>(text).map_err(|e| e.message().to_owned())
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse("d = '30s'").unwrap().d,
            Some(HumanDuration(Duration::from_secs(30)))
        );
        assert_eq!(
            parse("d = '1h 30m'").unwrap().d,
            Some(HumanDuration(Duration::from_secs(5400)))
        );
        let err = parse("d = '5x'").unwrap_err();
        assert!(
            err.contains("invalid duration \"5x\"") && err.contains("\"30s\""),
            "{err}"
        );
        let err = parse("d = 30").unwrap_err();
        assert!(err.contains("expected a duration like"), "{err}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse("s = '64MiB'").unwrap().s, Some(HumanSize(64 << 20)));
        assert_eq!(parse("s = '1 GiB'").unwrap().s, Some(HumanSize(1 << 30)));
        assert_eq!(parse("s = 4096").unwrap().s, Some(HumanSize(4096)));
        let err = parse("s = '64XB'").unwrap_err();
        assert!(
            err.contains("invalid size \"64XB\"") && err.contains("\"64MiB\""),
            "{err}"
        );
        assert!(parse("s = -1").is_err());
        assert_eq!(format_size(4 << 30), "4GiB");
        assert_eq!(format_size(64 << 20), "64MiB");
        assert_eq!(format_size(1000), "1000B");
        assert_eq!(format_size(0), "0B");
    }
}
