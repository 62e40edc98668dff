//! Redaction of secrets: the one place that keeps credentials out of run
//! records, reports, logs and CLI output.
//!
//! Every target's connection URLs, the main one and the read URL (and the
//! password inside each, raw and percent-decoded), are registered here when
//! the config is loaded; every text that leaves the host (a database error,
//! a log line, a report, a record) passes through [`Redactor::redact`] first.
//!
//! ```
//! use warden::secrets::Redactor;
//! let r = Redactor::new(["hunter22".to_string()]);
//! assert_eq!(r.redact("password hunter22 failed"), "password [redacted] failed");
//! ```

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Fragments shorter than this are not redacted on their own (a one-letter
/// password would otherwise blank out every text); such passwords are still
/// removed as part of the full URL.
const MIN_FRAGMENT_LEN: usize = 4;

/// Replaces every known secret fragment in a text.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// Longest first, so a URL is replaced before the password inside it.
    fragments: Vec<String>,
}

impl Redactor {
    pub fn new(fragments: impl IntoIterator<Item = String>) -> Self {
        let mut fragments: Vec<String> = fragments
            .into_iter()
            .filter(|f| f.len() >= MIN_FRAGMENT_LEN)
            .collect();
        fragments.sort_by_key(|f| std::cmp::Reverse(f.len()));
        fragments.dedup();
        Redactor { fragments }
    }

    /// The text with every secret fragment replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for f in &self.fragments {
            if out.contains(f.as_str()) {
                out = out.replace(f.as_str(), REDACTED);
            }
        }
        out
    }

    /// True when the text holds no known secret.
    pub fn is_clean(&self, text: &str) -> bool {
        !self.fragments.iter().any(|f| text.contains(f.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_fragment_first_and_short_ones_ignored() {
        let r = Redactor::new([
            "pw12".to_string(),
            "postgres://u:pw12@h/db".to_string(),
            "x".to_string(),
        ]);
        assert_eq!(r.redact("url postgres://u:pw12@h/db"), "url [redacted]");
        assert_eq!(r.redact("pw12 and x"), "[redacted] and x");
        assert!(!r.is_clean("..pw12.."));
        assert!(r.is_clean("nothing here"));
    }
}
