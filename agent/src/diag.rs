//! Diagnostics: errors that point at a file, a line, a column and a field.
//!
//! Loading the agent config or the policies reports every problem at once as
//! [`Diagnostics`], one [`Diagnostic`] per problem, printed like a compiler
//! would:
//!
//! ```text
//! policies/vacuum.toml:4:11: grant[0].capabilities[1]: unknown variant `admin`, expected one of `read`, `maintenance`, `ddl`, `write`, `session-control`
//! ```

use std::error::Error;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

/// Whether a problem keeps what it is about out of force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The agent does not start; hot reload keeps the previous version of
    /// the part at fault (see [`crate::load`]).
    Error,
    /// Worth a look; nothing is refused.
    Warning,
}

/// What a diagnostic is about. The loader ([`crate::load`]) decides by the
/// kind, never by the text of the field or message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiagKind {
    /// The content of a file is wrong: syntax, a type, a value, a name.
    /// What [`Diagnostic::new`] makes.
    Invalid,
    /// A policy file is wrong, or names what `warden.toml` does not have.
    Policy,
    /// A runbook file is wrong.
    Runbook,
    /// A plugin file that does not load, or whose plugin name is taken
    /// (also: the plugin folder cannot be read).
    Plugin,
    /// A grant names a plugin that is not installed.
    UnknownPlugin,
    /// The policies that stay in force (those of a rejected reload) name a
    /// plugin that is gone: nothing of the reload is put in force.
    PluginGone,
    /// A grant gives classes its plugin does not ask for.
    WideGrant,
    /// A rule's history window is longer than `state_keep`.
    StateKeep,
    /// What `warden check --connect` found on a target's roles.
    Credentials,
    /// The wasm engine or the state database could not start.
    Startup,
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub kind: DiagKind,
    /// The file at fault (or the folder, for a missing folder).
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub column: Option<usize>,
    /// Path of the field at fault, like `target[2].url_env` (indices are
    /// 0-based); empty when the problem is with the whole file.
    pub field: String,
    /// What is wrong and, where it helps, what to do about it.
    pub message: String,
}

impl Diagnostic {
    /// An error of kind [`DiagKind::Invalid`] about `file` with no position
    /// (yet).
    pub fn new(
        file: impl Into<PathBuf>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Error,
            kind: DiagKind::Invalid,
            file: file.into(),
            line: None,
            column: None,
            field: field.into(),
            message: message.into(),
        }
    }

    /// Sets the position to the start of the byte `span` of `source` (the text
    /// of [`Diagnostic::file`]).
    #[must_use]
    pub fn with_span(mut self, source: &str, span: &Range<usize>) -> Self {
        let (line, column) = line_col(source, span.start);
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    /// Sets the kind.
    #[must_use]
    pub fn kind(mut self, kind: DiagKind) -> Self {
        self.kind = kind;
        self
    }

    /// Makes it a warning.
    #[must_use]
    pub fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    /// Whether it is an [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Sets the line (and no column).
    #[must_use]
    pub fn with_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self.column = None;
        self
    }
}

impl fmt::Display for Diagnostic {
    /// `FILE:LINE:COL: FIELD: MESSAGE`, leaving out what is not known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

impl Error for Diagnostic {}

/// Every problem found, in the order found (files in order, lines in order
/// within a file). Displayed one per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub const fn new() -> Self {
        Diagnostics(Vec::new())
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    pub fn append(&mut self, other: &mut Diagnostics) {
        self.0.append(&mut other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// The errors, in order.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.is_error())
    }

    /// The warnings, in order.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| !d.is_error())
    }

    /// Whether any diagnostic is an error of `kind`.
    pub fn has_error(&self, kind: DiagKind) -> bool {
        self.errors().any(|d| d.kind == kind)
    }

    /// `Ok(value)` when there is no diagnostic, else `Err(self)`.
    pub fn into_result<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// Orders the diagnostics by line, keeping the order of those on the same
    /// line (and putting those without a line first). Meant for the
    /// diagnostics of one file.
    pub fn sort_by_line(&mut self) {
        self.0.sort_by_key(|d| (d.line, d.column));
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl Error for Diagnostics {}

impl From<Diagnostic> for Diagnostics {
    fn from(diagnostic: Diagnostic) -> Self {
        Diagnostics(vec![diagnostic])
    }
}

impl From<Vec<Diagnostic>> for Diagnostics {
    fn from(diagnostics: Vec<Diagnostic>) -> Self {
        Diagnostics(diagnostics)
    }
}

impl Extend<Diagnostic> for Diagnostics {
    fn extend<I: IntoIterator<Item = Diagnostic>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// The 1-based `(line, column)` of byte `offset` in `source`; the column
/// counts characters, not bytes. An offset past the end, or inside a
/// character, is moved back to the nearest valid position.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = source.floor_char_boundary(offset.min(source.len()));
    let before = source.get(..offset).unwrap_or_default();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before.get(line_start..).unwrap_or_default().chars().count() + 1;
    (line, column)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn line_col_is_one_based_and_counts_characters() {
        let source = "a = 1\nbé = 2\n\nc";
        assert_eq!(line_col(source, 0), (1, 1));
        assert_eq!(line_col(source, 4), (1, 5));
        assert_eq!(line_col(source, 6), (2, 1));
        // "bé = " is 6 bytes but 5 characters.
        assert_eq!(line_col(source, 12), (2, 6));
        assert_eq!(line_col(source, 14), (3, 1));
        assert_eq!(line_col(source, 15), (4, 1));
        assert_eq!(line_col(source, 999), (4, 2));
        // Inside the two-byte "é": moved back to its start.
        assert_eq!(line_col(source, 8), (2, 2));
    }

    #[test]
    fn display_leaves_out_what_is_missing() {
        let full =
            Diagnostic::new("a.toml", "grant[0].plugin", "bad").with_span("x\ny = 1", &(4..5));
        assert_eq!(full.to_string(), "a.toml:2:3: grant[0].plugin: bad");
        let no_column = Diagnostic::new("a.toml", "plugin", "bad").with_line(3);
        assert_eq!(no_column.to_string(), "a.toml:3: plugin: bad");
        let bare = Diagnostic::new("dir", "", "missing");
        assert_eq!(bare.to_string(), "dir: missing");
        let all = Diagnostics(vec![bare.clone(), no_column.clone()]);
        assert_eq!(all.to_string(), "dir: missing\na.toml:3: plugin: bad");
    }

    #[test]
    fn into_result() {
        assert_eq!(Diagnostics::new().into_result(1), Ok(1));
        let err = Diagnostics::from(Diagnostic::new("f", "", "m")).into_result(1);
        assert_eq!(err.map_err(|d| d.len()), Err(1));
    }
}
