//! Verification by restore: the per-table (or per-collection) counts the
//! host recorded at dump time against the counts in the scratch target after
//! the restore. Pure functions, tested on the build host.

use warden_sdk::ObjectCount;

/// One object whose count differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub name: String,
    /// At dump time.
    pub expected: u64,
    /// After the restore; `None` when the object is missing there.
    pub restored: Option<u64>,
}

/// The comparison of dump-time and restored counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CountCheck {
    /// Objects whose counts are equal, with the count.
    pub matched: Vec<(String, u64)>,
    /// Objects of the dump whose restored count differs or is missing.
    pub mismatched: Vec<Mismatch>,
    /// Objects the destination reported that the dump did not record (other
    /// objects of the scratch target); not a failure.
    pub extra: Vec<(String, u64)>,
}

impl CountCheck {
    /// True when every object of the dump came back with its count.
    pub fn ok(&self) -> bool {
        self.mismatched.is_empty()
    }

    /// The evidence, one clause per object (mismatches first), at most
    /// `max` objects named: `public.orders: 1,204 rows at dump, 1,100
    /// restored (MISMATCH); public.items: 50 = 50`.
    pub fn describe(&self, max: usize) -> String {
        let mut parts: Vec<String> = Vec::new();
        for m in &self.mismatched {
            parts.push(match m.restored {
                Some(n) => format!(
                    "{}: {} at dump, {} restored (MISMATCH)",
                    m.name,
                    count(m.expected),
                    count(n)
                ),
                None => format!(
                    "{}: {} at dump, missing after the restore (MISMATCH)",
                    m.name,
                    count(m.expected)
                ),
            });
        }
        for (name, n) in &self.matched {
            parts.push(format!("{name}: {} = {}", count(*n), count(*n)));
        }
        if parts.is_empty() {
            return "the dump recorded no tables or collections to compare".to_owned();
        }
        let total = parts.len();
        let mut text = parts.into_iter().take(max).collect::<Vec<_>>().join("; ");
        if total > max {
            text.push_str(&format!("; … and {} more", total - max));
        }
        text
    }
}

/// Compares `expected` (the artifact's counts) with `restored` (the restore
/// result's). Objects are matched by exact name; the output lists follow
/// `expected`'s order (`extra` follows `restored`'s).
pub fn compare_counts(expected: &[ObjectCount], restored: &[ObjectCount]) -> CountCheck {
    let mut check = CountCheck::default();
    for e in expected {
        let got = restored.iter().find(|r| r.name == e.name).map(|r| r.count);
        if got == Some(e.count) {
            check.matched.push((e.name.clone(), e.count));
        } else {
            check.mismatched.push(Mismatch {
                name: e.name.clone(),
                expected: e.count,
                restored: got,
            });
        }
    }
    for r in restored {
        if !expected.iter().any(|e| e.name == r.name) {
            check.extra.push((r.name.clone(), r.count));
        }
    }
    check
}

/// `1,234,567` (the SDK's).
pub use warden_sdk::units::count;

/// `512 B`, `3.4 KiB`, `12.0 MiB`, `1.50 GiB`.
pub fn bytes(n: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let x = n as f64;
    if n < 1024 {
        format!("{n} B")
    } else if n < 1024 * 1024 {
        format!("{:.1} KiB", x / 1024.0)
    } else if n < 1024 * 1024 * 1024 {
        format!("{:.1} MiB", x / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GiB", x / (1024.0 * 1024.0 * 1024.0))
    }
}

/// Bytes per second over `duration_ms` (at least 1 ms).
pub fn throughput(size_bytes: u64, duration_ms: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let (size, ms) = (size_bytes as f64, duration_ms.max(1) as f64);
    size * 1000.0 / ms
}

/// `12.3 MB/s` (decimal megabytes).
pub fn mb_per_second(bytes_per_second: f64) -> String {
    format!("{:.1} MB/s", bytes_per_second / 1e6)
}

/// `4.2 s`, `1 min 5 s`.
pub fn seconds(duration_ms: u64) -> String {
    if duration_ms < 60_000 {
        #[allow(clippy::cast_precision_loss)]
        let s = duration_ms as f64 / 1000.0;
        format!("{s:.1} s")
    } else {
        let s = duration_ms / 1000;
        format!("{} min {} s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(items: &[(&str, u64)]) -> Vec<ObjectCount> {
        items
            .iter()
            .map(|(name, count)| ObjectCount {
                name: (*name).into(),
                count: *count,
            })
            .collect()
    }

    #[test]
    fn equal_counts_verify() {
        let dumped = counts(&[("public.a", 10), ("public.b", 0)]);
        let restored = counts(&[("public.b", 0), ("public.a", 10), ("public.other", 3)]);
        let check = compare_counts(&dumped, &restored);
        assert!(check.ok());
        assert_eq!(check.matched.len(), 2);
        assert_eq!(check.extra, [("public.other".to_owned(), 3)]);
        assert_eq!(check.describe(10), "public.a: 10 = 10; public.b: 0 = 0");
    }

    #[test]
    fn differences_and_missing_objects_fail() {
        let dumped = counts(&[("orders", 1_204), ("items", 50), ("gone", 7)]);
        let restored = counts(&[("orders", 1_100), ("items", 50)]);
        let check = compare_counts(&dumped, &restored);
        assert!(!check.ok());
        assert_eq!(
            check.mismatched,
            [
                Mismatch {
                    name: "orders".into(),
                    expected: 1_204,
                    restored: Some(1_100)
                },
                Mismatch {
                    name: "gone".into(),
                    expected: 7,
                    restored: None
                }
            ]
        );
        assert_eq!(
            check.describe(2),
            "orders: 1,204 at dump, 1,100 restored (MISMATCH); gone: 7 at dump, missing after the restore (MISMATCH); … and 1 more"
        );
    }

    #[test]
    fn nothing_to_compare() {
        let check = compare_counts(&[], &counts(&[("x", 1)]));
        assert!(check.ok());
        assert!(check.describe(5).contains("no tables or collections"));
    }

    #[test]
    fn formatting() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(12 * 1024 * 1024 + 100), "12.0 MiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024 / 2), "1.50 GiB");
        assert_eq!(throughput(10_000_000, 2_000), 5_000_000.0);
        assert_eq!(throughput(1_000, 0), 1_000_000.0);
        assert_eq!(mb_per_second(12_345_678.0), "12.3 MB/s");
        assert_eq!(seconds(4_200), "4.2 s");
        assert_eq!(seconds(65_000), "1 min 5 s");
    }
}
