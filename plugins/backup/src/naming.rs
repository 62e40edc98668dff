//! The names of the plugin's artifacts: `<prefix><stamp><extension>`, with
//! the UTC stamp `2026-11-22T10-15-00Z` (see [`clock::name_stamp`]) and the
//! extension by what the artifact holds:
//!
//! | target, format | extension | example |
//! |---|---|---|
//! | PostgreSQL, custom | `.dump` | `nightly/2026-11-22T10-15-00Z.dump` |
//! | PostgreSQL, directory | none (a folder) | `2026-11-22T10-15-00Z` |
//! | MongoDB (mongodump layout) | none (a folder) | `2026-11-22T10-15-00Z` |
//! | SQLite (database copy) | `.sqlite` | `2026-11-22T10-15-00Z.sqlite` |
//!
//! The host keeps artifacts under `<target>/` in the store, so the names do
//! not repeat the target. Retention only ever considers names of exactly
//! this shape (the prefix, a valid stamp, one of the extensions); anything
//! else in the store is left alone.

use warden_sdk::{PgFormat, TargetKind};

use crate::clock;

/// Every extension the plugin writes (a change of `format` does not orphan
/// older backups: retention recognises all of them).
pub const EXTENSIONS: [&str; 3] = [".dump", ".sqlite", ""];

/// The extension of a new artifact.
pub fn extension(kind: TargetKind, format: PgFormat) -> &'static str {
    match kind {
        TargetKind::Postgres => format.extension(),
        TargetKind::Mongodb => "",
        TargetKind::Sqlite => ".sqlite",
    }
}

/// `<prefix><stamp of secs><extension>`.
pub fn artifact_name(prefix: &str, secs: i64, extension: &str) -> String {
    format!("{prefix}{}{extension}", clock::name_stamp(secs))
}

/// The stamp's time when `name` is one of the plugin's artifacts under
/// `prefix`, else `None`.
pub fn parse_artifact_name(prefix: &str, name: &str) -> Option<i64> {
    let rest = name.strip_prefix(prefix)?;
    let stamp = rest.get(..clock::NAME_STAMP_LEN)?;
    let extension = rest.get(clock::NAME_STAMP_LEN..)?;
    if !EXTENSIONS.contains(&extension) {
        return None;
    }
    clock::parse_name_stamp(stamp)
}

/// Checks the `prefix` parameter: characters `[A-Za-z0-9._-]` and `/`
/// between non-empty segments other than `.` and `..`; it may end with `/`
/// (a folder) or within a segment (`nightly-`). The empty prefix is valid.
pub fn validate_prefix(prefix: &str) -> Result<(), String> {
    if let Some(bad) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')))
    {
        return Err(format!(
            "parameter `prefix`: {bad:?} is not allowed (use letters, digits, `.`, `_`, `-`, and `/` between folders)"
        ));
    }
    if prefix.starts_with('/') {
        return Err(
            "parameter `prefix` must not start with `/` (names are relative to the target)"
                .to_owned(),
        );
    }
    let segments: Vec<&str> = prefix.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        // The part after the last `/` is the start of the artifact's own
        // segment: it may be empty (`nightly/`) or partial (`db-`).
        if i < last && segment.is_empty() {
            return Err("parameter `prefix` must not contain `//`".to_owned());
        }
        if i < last && matches!(*segment, "." | "..") {
            return Err(format!(
                "parameter `prefix` must not contain a `{segment}` folder"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_795_342_500;

    #[test]
    fn names_by_kind() {
        let ext = |kind, format| extension(kind, format);
        assert_eq!(ext(TargetKind::Postgres, PgFormat::Custom), ".dump");
        assert_eq!(ext(TargetKind::Postgres, PgFormat::Directory), "");
        assert_eq!(ext(TargetKind::Mongodb, PgFormat::Custom), "");
        assert_eq!(ext(TargetKind::Sqlite, PgFormat::Custom), ".sqlite");
        assert_eq!(
            artifact_name("nightly/", T, ".dump"),
            "nightly/2026-11-22T10-15-00Z.dump"
        );
        assert_eq!(artifact_name("", T, ""), "2026-11-22T10-15-00Z");
    }

    #[test]
    fn recognises_only_its_own_names() {
        let p = |prefix, name| parse_artifact_name(prefix, name);
        assert_eq!(p("", "2026-11-22T10-15-00Z.dump"), Some(T));
        assert_eq!(p("", "2026-11-22T10-15-00Z"), Some(T));
        assert_eq!(p("", "2026-11-22T10-15-00Z.sqlite"), Some(T));
        assert_eq!(p("nightly/", "nightly/2026-11-22T10-15-00Z.dump"), Some(T));
        // Other prefixes, other extensions, other shapes.
        assert_eq!(p("nightly/", "weekly/2026-11-22T10-15-00Z.dump"), None);
        assert_eq!(p("nightly/", "2026-11-22T10-15-00Z.dump"), None);
        assert_eq!(p("", "nightly/2026-11-22T10-15-00Z.dump"), None);
        assert_eq!(p("", "2026-11-22T10-15-00Z.tar"), None);
        assert_eq!(p("", "2026-11-22T10-15-00Z.dump.bak"), None);
        assert_eq!(p("", "2026-11-22T10:15:00Z.dump"), None);
        assert_eq!(p("", "2026-11-22.dump"), None);
        assert_eq!(p("", "manual-before-upgrade.dump"), None);
        assert_eq!(p("db-", "db-2026-11-22T10-15-00Z"), Some(T));
        assert_eq!(p("db-", "db-x2026-11-22T10-15-00Z"), None);
    }

    #[test]
    fn prefixes() {
        for ok in ["", "nightly/", "db-", "a/b/c-", "x.y_z/"] {
            assert!(validate_prefix(ok).is_ok(), "{ok}");
        }
        for bad in [
            "/abs", "a//b", "../x/", "a/./b", "sp ace", "tab\t", "q?", "é",
        ] {
            assert!(validate_prefix(bad).is_err(), "{bad}");
        }
    }
}
