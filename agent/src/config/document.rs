//! Reading one TOML file into private `...File` structs, reporting every
//! error rather than the first.
//!
//! serde stops at the first error, so a [`Document`] deserialises piece by
//! piece: each element of an array of tables (`[[target]]`, `[[grant]]`, ...)
//! on its own, then what is left at the top level. Within one table, a field
//! whose value fails is reported, dropped, and the table tried again, so
//! several bad fields in one table are all reported.
//!
//! Shared by the agent config and the policies.

use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::diag::{Diagnostic, Diagnostics};

/// A file's path and text, to turn spans into positioned diagnostics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'s> {
    pub(crate) file: &'s Path,
    pub(crate) text: &'s str,
}

impl Source<'_> {
    /// A diagnostic at the start of `span`. Anything like a URL in the
    /// message is redacted (see [`redact_urls`]), in case a user value quoted
    /// in it is a connection URL put in the wrong place.
    pub(crate) fn error(
        &self,
        span: &Range<usize>,
        field: impl Into<String>,
        message: impl AsRef<str>,
    ) -> Diagnostic {
        Diagnostic::new(self.file, field, redact_urls(message.as_ref())).with_span(self.text, span)
    }

    /// The 1-based line of the start of `span`.
    pub(crate) fn line(&self, span: &Range<usize>) -> usize {
        crate::diag::line_col(self.text, span.start).0
    }
}

/// A table read into `T`: an element of an array of tables, or the top
/// level of the file.
///
/// Make every field of `T` optional and get required ones with
/// [`Table::require`]: then a bad value in one field does not hide the
/// checks of the others, and every missing field is reported (serde would
/// name only the first).
#[derive(Debug)]
pub(crate) struct Table<'s, T> {
    /// The file it is in.
    pub(crate) source: Source<'s>,
    /// Its field path, like `grant[3]` (indices are 0-based); empty for the
    /// top level.
    pub(crate) path: String,
    /// Its span: the `[[name]]` header, the inline table, or the file start.
    pub(crate) span: Range<usize>,
    pub(crate) value: T,
    /// Fields dropped from `value` for a bad value (already reported):
    /// checks involving them are to be skipped.
    pub(crate) broken: Vec<String>,
}

impl<T> Table<'_, T> {
    /// The path of field `name` of this table, like `grant[3].targets`.
    pub(crate) fn field(&self, name: &str) -> String {
        push_key(self.path.clone(), name)
    }

    /// True if field `name` was dropped for a bad value.
    pub(crate) fn is_broken(&self, name: &str) -> bool {
        self.broken.iter().any(|b| b == name)
    }

    /// `value`, the required field `name`, or `None` after reporting it
    /// missing (unless it was dropped for a bad value, reported already).
    pub(crate) fn require<'v, F>(
        &self,
        name: &str,
        value: &'v Option<F>,
        diags: &mut Diagnostics,
    ) -> Option<&'v F> {
        if value.is_none() && !self.is_broken(name) {
            diags.push(self.source.error(
                &self.span,
                self.field(name),
                format!("missing field `{name}`"),
            ));
        }
        value.as_ref()
    }
}

/// A parsed TOML file whose parts are taken out one by one.
pub(crate) struct Document<'s> {
    source: Source<'s>,
    root: DeTable<'s>,
    root_span: Range<usize>,
}

impl<'s> Document<'s> {
    /// Parses `text`, or reports every syntax error found and returns `None`.
    pub(crate) fn parse(file: &'s Path, text: &'s str, diags: &mut Diagnostics) -> Option<Self> {
        let source = Source { file, text };
        let (root, mut errors) = DeTable::parse_recoverable(text);
        if !errors.is_empty() {
            errors.sort_by_key(|e| e.span().map(|s| s.start));
            for error in errors {
                let diagnostic = Diagnostic::new(file, "", redact_urls(error.message()));
                diags.push(match error.span() {
                    Some(span) => diagnostic.with_span(text, &span),
                    None => diagnostic,
                });
            }
            return None;
        }
        let root_span = root.span();
        Some(Document {
            source,
            root: root.into_inner(),
            root_span,
        })
    }

    pub(crate) fn source(&self) -> Source<'s> {
        self.source
    }

    /// Removes the array of tables `[[name]]` and deserialises each element
    /// into `T`, reporting every error. Elements that could not be read are
    /// left out; those read despite errors are in, with `broken` set (see
    /// `deserialize_table`).
    pub(crate) fn take_array<T: DeserializeOwned>(
        &mut self,
        name: &str,
        diags: &mut Diagnostics,
    ) -> Vec<Table<'s, T>> {
        let Some((key, value)) = self.root.remove_entry(name) else {
            return Vec::new();
        };
        let field = push_key(String::new(), name);
        let value_span = value.span();
        match value.into_inner() {
            DeValue::Array(array) => {
                let mut elements = Vec::new();
                for (index, element) in array.into_iter().enumerate() {
                    let span = element.span();
                    let path = format!("{field}[{index}]");
                    match element.into_inner() {
                        DeValue::Table(table) => {
                            elements.extend(self.deserialize_table(table, span, path, diags));
                        }
                        other => diags.push(self.source.error(
                            &span,
                            path,
                            format!("expected a table, found {}", other.type_str()),
                        )),
                    }
                }
                elements
            }
            DeValue::Table(_) => {
                diags.push(self.source.error(
                    &key.span(),
                    field,
                    format!("`[{name}]` must be written `[[{name}]]` (with double brackets): it is a list of tables"),
                ));
                Vec::new()
            }
            other => {
                diags.push(self.source.error(
                    &value_span,
                    field,
                    format!(
                        "expected a list of tables written `[[{name}]]`, found {}",
                        other.type_str()
                    ),
                ));
                Vec::new()
            }
        }
    }

    /// Removes the table `[name]` and deserialises it into `T`, reporting
    /// every error with paths like `name.field`. `None` if absent or unreadable.
    pub(crate) fn take_table<T: DeserializeOwned>(
        &mut self,
        name: &str,
        diags: &mut Diagnostics,
    ) -> Option<Table<'s, T>> {
        let (key, value) = self.root.remove_entry(name)?;
        let field = push_key(String::new(), name);
        let span = value.span();
        match value.into_inner() {
            DeValue::Table(table) => self.deserialize_table(table, span, field, diags),
            other => {
                diags.push(self.source.error(
                    &key.span(),
                    field,
                    format!(
                        "expected a table written `[{name}]`, found {}",
                        other.type_str()
                    ),
                ));
                None
            }
        }
    }

    /// Deserialises what is left of the top level into `T` (see
    /// `deserialize_table`).
    pub(crate) fn finish<T: DeserializeOwned>(
        self,
        diags: &mut Diagnostics,
    ) -> Option<Table<'s, T>> {
        let span = self.root_span.clone();
        self.deserialize_table(self.root.clone(), span, String::new(), diags)
    }

    /// Deserialises `table` into `T`. On an error in a field, reports it,
    /// drops the field and tries again, so that every bad field is reported.
    ///
    /// Returns `T` if it could be built from the fields left, with the names
    /// of the fields dropped for a bad value (unknown fields are just
    /// dropped), so the caller's own checks can still run and report more
    /// (skipping those involving the dropped fields). The caller must not
    /// use `T` when `diags` is not empty.
    fn deserialize_table<T: DeserializeOwned>(
        &self,
        mut table: DeTable<'s>,
        span: Range<usize>,
        path: String,
        diags: &mut Diagnostics,
    ) -> Option<Table<'s, T>> {
        let mut dropped: Vec<String> = Vec::new();
        let mut broken: Vec<String> = Vec::new();
        loop {
            let value = Spanned::new(span.clone(), DeValue::Table(table.clone()));
            let error = match T::deserialize(ValueDeserializer::from(value)) {
                Ok(value) => {
                    return Some(Table {
                        source: self.source,
                        path,
                        span,
                        value,
                        broken,
                    });
                }
                Err(error) => error,
            };
            if let Some(name) = missing_field(error.message()) {
                // serde checks for missing fields last, so nothing else is
                // wrong. A field dropped above is missing now: already
                // reported.
                if !dropped.iter().any(|d| d == name) {
                    let field = push_key(path, name);
                    diags.push(self.source.error(&span, field, error.message()));
                }
                return None;
            }
            let error_span = error.span().unwrap_or_else(|| span.clone());
            let field = field_path(&path, &table, &error_span);
            diags.push(
                self.source
                    .error(&error_span, field, redact_urls(error.message())),
            );
            let culprit = table
                .iter()
                .find(|(key, value)| {
                    contains(&key.span(), &error_span) || contains_deep(value, &error_span)
                })
                .map(|(key, _)| key.get_ref().to_string());
            // Drop the culprit and try again.
            let Some(key) = culprit.filter(|key| table.remove(key.as_str()).is_some()) else {
                // An error we cannot pin on one field (reported above).
                return None;
            };
            if !error.message().starts_with("unknown field `") {
                broken.push(key.clone());
            }
            dropped.push(key);
        }
    }
}

/// For serde's "missing field `name`" message, the name.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// True if `value`, or anything within it, covers `span`. (The span of a
/// `[table]` is its header, so nested tables are searched too.)
fn contains_deep(value: &Spanned<DeValue<'_>>, span: &Range<usize>) -> bool {
    if contains(&value.span(), span) {
        return true;
    }
    match value.get_ref() {
        DeValue::Table(table) => table
            .iter()
            .any(|(key, value)| contains(&key.span(), span) || contains_deep(value, span)),
        DeValue::Array(array) => array.iter().any(|value| contains_deep(value, span)),
        _ => false,
    }
}

/// The path of the field of `table` at `span`, like `grant[0].targets[2]`.
fn field_path(prefix: &str, table: &DeTable<'_>, span: &Range<usize>) -> String {
    let mut path = prefix.to_owned();
    let mut table = table;
    loop {
        let Some((key, value)) = table
            .iter()
            .find(|(key, value)| contains(&key.span(), span) || contains_deep(value, span))
        else {
            return path;
        };
        path = push_key(path, key.get_ref());
        if contains(&key.span(), span) {
            return path;
        }
        let mut value = value;
        loop {
            match value.get_ref() {
                DeValue::Table(inner) => {
                    table = inner;
                    break;
                }
                DeValue::Array(array) => {
                    let Some((index, element)) = array
                        .iter()
                        .enumerate()
                        .find(|(_, element)| contains_deep(element, span))
                    else {
                        return path;
                    };
                    path.push_str(&format!("[{index}]"));
                    value = element;
                }
                _ => return path,
            }
        }
    }
}

/// `path.key`, quoting keys that are not bare TOML keys.
pub(crate) fn push_key(mut path: String, key: &str) -> String {
    if !path.is_empty() {
        path.push('.');
    }
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        path.push_str(key);
    } else {
        path.push_str(&format!("{:?}", redact_urls(key)));
    }
    path
}

/// Replaces anything that looks like a URL (`scheme://...`) in a message
/// with `[redacted URL]`: serde quotes the offending value in its messages,
/// and a URL put in the wrong field may hold a password.
pub(crate) fn redact_urls(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at);
        // The scheme: the letters, digits, `+`, `-` and `.` just before `://`.
        let scheme_len = before
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            .count();
        // The URL runs to the next quote, backtick or whitespace.
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '`' | '"' | '\''))
            .unwrap_or(after.len());
        if end <= "://".len() {
            // A bare scheme, like "`postgres://`" in a hint: keep it.
            out.push_str(before);
            out.push_str(after.get(..end).unwrap_or_default());
        } else {
            let kept = before.len().saturating_sub(scheme_len);
            out.push_str(before.get(..kept).unwrap_or_default());
            out.push_str("[redacted URL]");
        }
        rest = after.get(end..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        name: String,
        count: Option<u32>,
        tags: Option<Vec<String>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Top {
        title: Option<String>,
        #[serde(default, rename = "item")]
        _item: Option<serde::de::IgnoredAny>,
    }

    fn load(text: &str) -> (Vec<Table<'_, Item>>, Option<Top>, Diagnostics) {
        let mut diags = Diagnostics::new();
        let file = Path::new("t.toml");
        let Some(mut doc) = Document::parse(file, text, &mut diags) else {
            return (Vec::new(), None, diags);
        };
        let items = doc.take_array("item", &mut diags);
        let top = doc.finish(&mut diags).map(|top| top.value);
        (items, top, diags)
    }

    #[test]
    fn every_bad_field_of_every_element_is_reported() {
        let text = "title = 1\n[[item]]\nname = 'a'\ncount = -1\ntags = ['x', 2]\nextra = true\n\n[[item]]\nname = 'b'\n\n[[item]]\ncount = 'x'\n";
        let (items, top, diags) = load(text);
        // Bad values are dropped and reported; what is left is returned for
        // further checks, unless a required field is missing.
        let read: Vec<(&str, &[String])> = items
            .iter()
            .map(|i| (i.path.as_str(), i.broken.as_slice()))
            .collect();
        assert_eq!(
            read,
            [
                ("item[0]", &["count".to_owned(), "tags".to_owned()][..]),
                ("item[1]", &[][..])
            ]
        );
        assert!(top.is_some());
        let fields: Vec<(&str, Option<usize>)> =
            diags.iter().map(|d| (d.field.as_str(), d.line)).collect();
        assert_eq!(
            fields,
            [
                ("item[0].count", Some(4)),
                ("item[0].extra", Some(6)),
                ("item[0].tags[1]", Some(5)),
                ("item[2].count", Some(12)),
                ("item[2].name", Some(11)),
                ("title", Some(1)),
            ],
            "{diags}"
        );
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Optional {
        a: Option<u32>,
        b: Option<u32>,
        c: Option<u32>,
    }

    #[test]
    fn require_reports_every_missing_field_once() {
        let mut diags = Diagnostics::new();
        let text = "[[opt]]\nb = 'x'\nc = 1\n";
        let mut doc = Document::parse(Path::new("t.toml"), text, &mut diags).unwrap();
        let tables = doc.take_array::<Optional>("opt", &mut diags);
        let table = &tables[0];
        assert_eq!(table.broken, ["b"]);
        assert!(table.require("a", &table.value.a, &mut diags).is_none());
        assert!(table.require("b", &table.value.b, &mut diags).is_none());
        assert_eq!(table.require("c", &table.value.c, &mut diags), Some(&1));
        let found: Vec<(&str, &str, Option<usize>)> = diags
            .iter()
            .map(|d| (d.field.as_str(), d.message.as_str(), d.line))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "opt[0].b",
                    "invalid type: string \"x\", expected u32",
                    Some(2)
                ),
                ("opt[0].a", "missing field `a`", Some(1)),
            ]
        );
    }

    #[test]
    fn a_dropped_field_is_not_also_reported_missing() {
        let (_, _, diags) = load("[[item]]\nname = 5\n");
        assert_eq!(diags.len(), 1, "{diags}");
        assert_eq!(diags.0[0].field, "item[0].name");
    }

    #[test]
    fn nested_tables_and_wrong_shapes() {
        let (_, _, diags) = load("[[item]]\nname = 'a'\n[item.sub]\nx = 1\n");
        assert_eq!(diags.0[0].field, "item[0].sub", "{diags}");
        assert_eq!(diags.0[0].line, Some(3));
        let (_, _, diags) = load("[item]\nname = 'a'\n");
        assert!(diags.0[0].message.contains("[[item]]"), "{diags}");
        let (_, _, diags) = load("item = 3\n");
        assert!(diags.0[0].message.contains("found integer"), "{diags}");
        let (_, _, diags) = load("item = [3]\n");
        assert_eq!(diags.0[0].field, "item[0]", "{diags}");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let (_, top, diags) = load("title = 'a'\n[[item]\nname = \n");
        assert!(top.is_none());
        assert!(!diags.is_empty());
        assert!(diags.iter().all(|d| d.line.is_some()), "{diags}");
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_urls("unknown variant `postgres://u:hunter2@h/db`, expected x"),
            "unknown variant `[redacted URL]`, expected x"
        );
        assert_eq!(redact_urls("a mongodb+srv://x:y@z b"), "a [redacted URL] b");
        assert_eq!(redact_urls("nothing here"), "nothing here");
        assert_eq!(
            redact_urls("must start with `postgres://` or `mongodb+srv://`"),
            "must start with `postgres://` or `mongodb+srv://`"
        );
        assert_eq!(redact_urls("x://"), "x://");
        let (_, _, diags) = load("\"postgres://u:hunter2@h/db\" = 1\n");
        assert!(!diags.to_string().contains("hunter2"), "{diags}");
    }
}
