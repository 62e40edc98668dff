//! [`Secret`]: a connection URL that never shows up in logs or errors.

use std::fmt;

/// A secret string, such as a connection URL with a password in it.
///
/// `Debug` and `Display` print `[redacted]`; [`Secret::expose`] gives the
/// value, to hand to a database driver and nothing else.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The strings to redact from any text the host shows or stores (driver
    /// errors, plugin output): the whole value and, if it is a URL with a
    /// password (in the user info or a `password=` query parameter), that
    /// password both as written and percent-decoded. Longest first, no
    /// duplicates, no empty strings.
    pub fn password_fragments(&self) -> Vec<String> {
        let mut fragments = vec![self.0.clone()];
        let mut add = |raw: &str| {
            fragments.push(raw.to_owned());
            fragments.push(percent_decode(raw));
        };
        if let Some((_, rest)) = self.0.split_once("://") {
            // Before any query or fragment; the user info ends at the last
            // `@` (an unescaped `@` in a password is common enough).
            let (head, query) = match rest.split_once('?') {
                Some((head, query)) => (head, Some(query)),
                None => (rest, None),
            };
            let head = head.split_once('#').map_or(head, |(head, _)| head);
            if let Some((user_info, _)) = head.rsplit_once('@')
                && let Some((_, password)) = user_info.split_once(':')
            {
                add(password);
            }
            let query = query.map(|q| q.split_once('#').map_or(q, |(q, _)| q));
            for pair in query.unwrap_or_default().split('&') {
                if let Some((key, value)) = pair.split_once('=')
                    && percent_decode(key).eq_ignore_ascii_case("password")
                {
                    add(value);
                    add(&value.replace('+', " "));
                }
            }
        }
        fragments.retain(|f| !f.is_empty());
        fragments.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        fragments.dedup();
        fragments
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

/// Decodes `%XX` escapes; invalid escapes are kept as they are and invalid
/// UTF-8 is replaced.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let escaped = (byte == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                i += 3;
            }
            None => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_do_not_leak() {
        let secret = Secret::new("postgres://u:hunter2@h/db");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&secret)), "Some([redacted])");
        assert_eq!(secret.expose(), "postgres://u:hunter2@h/db");
    }

    #[test]
    fn fragments_hold_the_password_raw_and_decoded() {
        let secret =
            Secret::new("postgresql://app:p%40ss%3Aw0rd@db.example:5432/app?sslmode=require");
        let fragments = secret.password_fragments();
        assert_eq!(
            fragments,
            [
                "postgresql://app:p%40ss%3Aw0rd@db.example:5432/app?sslmode=require",
                "p%40ss%3Aw0rd",
                "p@ss:w0rd",
            ]
        );
    }

    #[test]
    fn fragments_cover_unusual_urls() {
        // Several hosts (which the `url` crate cannot parse) and an
        // unescaped `@` in the password.
        let secret = Secret::new("mongodb://admin:se@cret@h1:27017,h2:27017/db?replicaSet=rs0");
        assert!(secret.password_fragments().contains(&"se@cret".to_owned()));
        let secret = Secret::new("postgres://h/db?user=u&password=s%2Bcr+t");
        let fragments = secret.password_fragments();
        for expected in ["s%2Bcr+t", "s+cr+t", "s%2Bcr t", "s+cr t"] {
            assert!(
                fragments.contains(&expected.to_owned()),
                "{expected} in {fragments:?}"
            );
        }
        assert_eq!(
            Secret::new("sqlite:///var/lib/a.db").password_fragments(),
            ["sqlite:///var/lib/a.db"]
        );
        assert_eq!(
            Secret::new("postgres://u@h/db").password_fragments(),
            ["postgres://u@h/db"]
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%zz%4"), "a b%zz%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
        assert_eq!(percent_decode("%"), "%");
    }
}
