//! Alertmanager label matchers: `alertname="PostgresDeadTuples"`,
//! `severity=~"warning|critical"`, ...

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;

use super::fields::is_valid_label_name;

/// How a [`Matcher`] compares a label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`: equal.
    Eq,
    /// `!=`: not equal.
    Ne,
    /// `=~`: the whole value matches the regex.
    Re,
    /// `!~`: the whole value does not match the regex.
    NotRe,
}

impl MatchOp {
    /// `=`, `!=`, `=~` or `!~`.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::NotRe => "!~",
        }
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One label matcher, with Alertmanager's semantics: regexes are anchored
/// at both ends, and a missing label has the empty value (so `foo!="bar"`
/// and `foo=""` match an alert without `foo`).
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    pub op: MatchOp,
    /// The value, or the regex as written (not anchored).
    pub value: String,
    /// `^(?:value)$`, for `=~` and `!~`.
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

/// What a matcher looks like, for error messages.
const MATCHER_FORM: &str = "expected `name=\"value\"`, `name!=\"value\"`, `name=~\"regex\"` or \
                            `name!~\"regex\"`";

impl Matcher {
    /// A matcher built from its parts; `Err` if `value` is not a valid
    /// regex for `=~` or `!~`, or `name` is not a label name.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, String> {
        if !is_valid_label_name(name) {
            return Err(format!(
                "invalid label name {name:?}: use letters, digits and `_`, not starting with a \
                 digit"
            ));
        }
        let regex = match op {
            MatchOp::Eq | MatchOp::Ne => None,
            MatchOp::Re | MatchOp::NotRe => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("invalid regex {value:?}: {}", regex_error(&e)))?,
            ),
        };
        Ok(Matcher {
            name: name.to_owned(),
            op,
            value: value.to_owned(),
            regex,
        })
    }

    /// Parses Alertmanager's syntax: `name="value"`, `name!="value"`,
    /// `name=~"regex"` or `name!~"regex"`; the value may also be left
    /// unquoted (`severity=critical`). In a quoted value, `\"`, `\\` and
    /// `\n` are escapes; other backslashes are kept (for regexes like
    /// `\d+`). The error names the matcher and what is wrong.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let invalid = |what: String| format!("invalid matcher {text:?}: {what}");
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(invalid(format!("it is empty: {MATCHER_FORM}")));
        }
        let name_end = trimmed
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(trimmed.len());
        let (name, rest) = trimmed.split_at(name_end);
        let rest = rest.trim_start();
        let (op, rest) = if let Some(rest) = rest.strip_prefix("=~") {
            (MatchOp::Re, rest)
        } else if let Some(rest) = rest.strip_prefix("!~") {
            (MatchOp::NotRe, rest)
        } else if let Some(rest) = rest.strip_prefix("!=") {
            (MatchOp::Ne, rest)
        } else if let Some(rest) = rest.strip_prefix('=') {
            (MatchOp::Eq, rest)
        } else if name.is_empty() {
            return Err(invalid(format!(
                "it does not start with a label name: {MATCHER_FORM}"
            )));
        } else if rest.is_empty() {
            return Err(invalid(format!("it has no operator: {MATCHER_FORM}")));
        } else {
            return Err(invalid(format!(
                "invalid label name or operator before {rest:?}: {MATCHER_FORM}"
            )));
        };
        if name.is_empty() {
            return Err(invalid(format!(
                "the label name is missing: {MATCHER_FORM}"
            )));
        }
        let value = unquote(rest.trim()).map_err(invalid)?;
        Matcher::new(name, op, &value).map_err(invalid)
    }

    /// True if the label `name` of `labels` (empty if missing) satisfies
    /// the matcher.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.name).map_or("", String::as_str);
        match self.op {
            MatchOp::Eq => value == self.value,
            MatchOp::Ne => value != self.value,
            MatchOp::Re => self.regex.as_ref().is_some_and(|re| re.is_match(value)),
            MatchOp::NotRe => !self.regex.as_ref().is_some_and(|re| re.is_match(value)),
        }
    }
}

impl fmt::Display for Matcher {
    /// Back to Alertmanager's syntax, the value quoted: `severity=~"warning|critical"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}\"", self.name, self.op)?;
        for c in self.value.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

/// The value of a matcher: quoted (with escapes) or as it is.
fn unquote(value: &str) -> Result<String, String> {
    let Some(inner) = value.strip_prefix('"') else {
        if value.contains('"') {
            return Err(format!(
                "the value {value:?} has a stray `\"`: quote the whole value"
            ));
        }
        return Ok(value.to_owned());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let rest: String = chars.collect();
                if rest.trim().is_empty() {
                    return Ok(out);
                }
                return Err(format!(
                    "unexpected {:?} after the closing quote",
                    rest.trim()
                ));
            }
            '\\' => match chars.next() {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("the value has no closing quote".to_owned())
}

/// The gist of a regex error, on one line ("unclosed group").
fn regex_error(error: &regex::Error) -> String {
    match error {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|line| line.trim().strip_prefix("error: "))
            .unwrap_or(text.as_str())
            .to_owned(),
        regex::Error::CompiledTooBig(_) => "the regex is too large".to_owned(),
        other => other.to_string(),
    }
}
