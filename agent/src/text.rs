//! Text from plugins (and other outsiders) made safe to show on a terminal.
//!
//! A plugin controls its report (summary, findings, metrics, actions), its
//! log lines, its manifest (name, version, description) and its error
//! messages. Written raw to a terminal, that text could clear the screen,
//! recolour or retitle it, plant hyperlinks, overwrite a line with `\r` or
//! reorder it with bidi overrides, and so forge a line such as
//! `status: ok`. Every human-readable output that carries such text goes
//! through [`Shown`] (one line) or [`ShownLines`] (a block of lines), which
//! turn every character of [`is_hidden`] into a visible escape:
//!
//! ```
//! use warden::text::Shown;
//! assert_eq!(Shown("ok\x1b[2J\r\nstatus: ok\u{202e}").to_string(),
//!            r"ok\x1b[2J\r\nstatus: ok\u{202e}");
//! ```
//!
//! The escapes are printable ASCII, so escaping twice changes nothing:
//! the CLI can escape a field and then the whole text it is part of.

use std::fmt::{self, Write as _};

/// True for every character that a terminal acts on or that hides or
/// reorders text, rather than showing a glyph: all of Unicode's `Cc`
/// (C0 controls such as NUL, BEL, BS, TAB, LF, CR and ESC; DEL; C1 controls
/// U+0080–U+009F, among them CSI U+009B and OSC U+009D), `Cf` (bidi
/// controls U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069; soft
/// hyphen, zero-width space and joiners, word joiner, invisible operators,
/// BOM, interlinear annotation marks, tags, ...), `Zl` and `Zp` (U+2028,
/// U+2029), and the blank fillers that show nothing (combining grapheme
/// joiner, Hangul fillers, Khmer inherent vowels).
///
/// An allowlist of scripts would be stricter but would also hide names and
/// log lines the operator must read; what a terminal can be made to do
/// lives in these categories.
pub const fn is_hidden(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{ad}'
            | '\u{34f}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{890}'..='\u{891}'
            | '\u{8e2}'
            | '\u{115f}'..='\u{1160}'
            | '\u{17b4}'..='\u{17b5}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{3164}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e007f}'
    )
}

/// How line feeds are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Newlines {
    /// Escaped like every other control: the text stays on one line.
    Escape,
    /// Kept: the text may span lines (each still free of other controls).
    Keep,
}

/// Writes `c` as a visible escape: `\n`, `\r`, `\t`, `\0`, `\x1b` for the
/// other C0 controls and DEL, `\u{202e}` for the rest.
fn write_escape<W: fmt::Write + ?Sized>(out: &mut W, c: char) -> fmt::Result {
    match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        '\0' => out.write_str("\\0"),
        '\u{1}'..='\u{1f}' | '\u{7f}' => write!(out, "\\x{:02x}", u32::from(c)),
        _ => write!(out, "\\u{{{:x}}}", u32::from(c)),
    }
}

/// A `fmt::Write` that escapes what passes through it.
struct Escaping<'a, W: fmt::Write + ?Sized> {
    out: &'a mut W,
    newlines: Newlines,
}

impl<W: fmt::Write + ?Sized> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some((i, c)) = rest
            .char_indices()
            .find(|&(_, c)| is_hidden(c) && !(c == '\n' && self.newlines == Newlines::Keep))
        {
            let (clean, tail) = rest.split_at(i);
            self.out.write_str(clean)?;
            write_escape(self.out, c)?;
            rest = tail.get(c.len_utf8()..).unwrap_or_default();
        }
        self.out.write_str(rest)
    }
}

fn show(f: &mut fmt::Formatter<'_>, value: &dyn fmt::Display, newlines: Newlines) -> fmt::Result {
    if f.width().is_some() || f.precision().is_some() {
        // Padding counts what is shown: escape first, then pad.
        let mut escaped = String::new();
        write!(
            Escaping {
                out: &mut escaped,
                newlines
            },
            "{value}"
        )?;
        f.pad(&escaped)
    } else {
        write!(Escaping { out: f, newlines }, "{value}")
    }
}

/// Shows any text on one line: every [`is_hidden`] character, line feeds
/// included, becomes a visible escape. Honours width and alignment
/// (`{:<16}`), measured on the escaped text.
#[derive(Debug, Clone, Copy)]
pub struct Shown<T>(pub T);

impl<T: fmt::Display> fmt::Display for Shown<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        show(f, &self.0, Newlines::Escape)
    }
}

/// Shows a block of lines: line feeds are kept, everything else of
/// [`is_hidden`] (`\r` too) becomes a visible escape.
#[derive(Debug, Clone, Copy)]
pub struct ShownLines<T>(pub T);

impl<T: fmt::Display> fmt::Display for ShownLines<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        show(f, &self.0, Newlines::Keep)
    }
}

/// [`Shown`] into a `String`.
pub fn escape(s: &str) -> String {
    Shown(s).to_string()
}

/// A `fmt::Write` adapter for other formatters (the log fields of
/// [`crate::telemetry`]): what is written through it comes out on one line,
/// escaped like [`Shown`].
pub fn escaping_writer<W: fmt::Write + ?Sized>(out: &mut W) -> impl fmt::Write + '_ {
    Escaping {
        out,
        newlines: Newlines::Escape,
    }
}

/// JSON text as serde_json writes it, with every [`is_hidden`] character
/// but the line feeds between lines written as a `\uXXXX` escape: the same
/// JSON value, safe on a terminal. (serde_json escapes only U+0000–U+001F;
/// DEL, C1 controls and bidi overrides it writes raw. In its output every
/// other hidden character is inside a string, where an escape means the
/// same.)
pub fn json_safe(json: &str) -> std::borrow::Cow<'_, str> {
    if !json.chars().any(|c| c != '\n' && is_hidden(c)) {
        return std::borrow::Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if c != '\n' && is_hidden(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Cuts a string to at most `max` bytes on a character boundary, marking the cut.
pub fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut cut = max;
    while cut > 0 && !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push_str("…[truncated]");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    /// Characters a terminal or a text renderer acts on, by family.
    fn hostile() -> Vec<(char, &'static str)> {
        let mut out = vec![
            ('\u{0}', "\\0"),
            ('\u{7}', "\\x07"),
            ('\u{8}', "\\x08"),
            ('\t', "\\t"),
            ('\n', "\\n"),
            ('\u{b}', "\\x0b"),
            ('\u{c}', "\\x0c"),
            ('\r', "\\r"),
            ('\u{e}', "\\x0e"),
            ('\u{1b}', "\\x1b"),
            ('\u{1f}', "\\x1f"),
            ('\u{7f}', "\\x7f"),
            ('\u{80}', "\\u{80}"),
            ('\u{85}', "\\u{85}"),
            ('\u{90}', "\\u{90}"),
            ('\u{9b}', "\\u{9b}"),
            ('\u{9c}', "\\u{9c}"),
            ('\u{9d}', "\\u{9d}"),
            ('\u{9f}', "\\u{9f}"),
            ('\u{ad}', "\\u{ad}"),
            ('\u{61c}', "\\u{61c}"),
            ('\u{200b}', "\\u{200b}"),
            ('\u{200d}', "\\u{200d}"),
            ('\u{200e}', "\\u{200e}"),
            ('\u{200f}', "\\u{200f}"),
            ('\u{2028}', "\\u{2028}"),
            ('\u{2029}', "\\u{2029}"),
            ('\u{2060}', "\\u{2060}"),
            ('\u{feff}', "\\u{feff}"),
            ('\u{fff9}', "\\u{fff9}"),
            ('\u{e0001}', "\\u{e0001}"),
            ('\u{e0041}', "\\u{e0041}"),
        ];
        for c in '\u{202a}'..='\u{202e}' {
            out.push((c, ""));
        }
        for c in '\u{2066}'..='\u{2069}' {
            out.push((c, ""));
        }
        out
    }

    #[test]
    fn every_hidden_character_becomes_a_visible_escape() {
        for (c, expected) in hostile() {
            assert!(is_hidden(c), "U+{:04X} is not hidden", u32::from(c));
            let shown = Shown(format!("a{c}b")).to_string();
            assert!(
                !shown.contains(c),
                "U+{:04X} came through: {shown:?}",
                u32::from(c)
            );
            assert!(
                shown.starts_with("a\\") && shown.ends_with('b'),
                "{shown:?}"
            );
            assert!(shown.chars().all(|c| c.is_ascii_graphic()), "{shown:?}");
            if !expected.is_empty() {
                assert_eq!(shown, format!("a{expected}b"));
            } else {
                assert_eq!(shown, format!("a\\u{{{:x}}}b", u32::from(c)));
            }
        }
        // Every C0 and C1 control, whatever its name.
        for c in ('\u{0}'..='\u{1f}').chain('\u{7f}'..='\u{9f}') {
            let shown = escape(&c.to_string());
            assert!(
                shown.chars().all(|c| c.is_ascii_graphic()),
                "U+{:04X}: {shown:?}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn terminal_sequences_and_forged_lines_are_shown_not_run() {
        let attacks = [
            ("\x1b[2J\x1b[H", r"\x1b[2J\x1b[H"),
            ("\x1b[31mred\x1b[0m", r"\x1b[31mred\x1b[0m"),
            (
                "\x1b]8;;http://evil/\x07click\x1b]8;;\x07",
                r"\x1b]8;;http://evil/\x07click\x1b]8;;\x07",
            ),
            ("\x1b]0;title\x1b\\", r"\x1b]0;title\x1b\"),
            ("\u{9b}2J", r"\u{9b}2J"),
            ("fail\rstatus: ok", r"fail\rstatus: ok"),
            ("x\nstatus: ok", r"x\nstatus: ok"),
            ("bad\x08\x08\x08ok", r"bad\x08\x08\x08ok"),
            ("nul\0here", r"nul\0here"),
            ("\u{202e}ko :sutats", r"\u{202e}ko :sutats"),
            ("a\u{2066}b\u{2069}", r"a\u{2066}b\u{2069}"),
        ];
        for (raw, shown) in attacks {
            assert_eq!(Shown(raw).to_string(), shown, "{raw:?}");
            assert_eq!(Shown(shown).to_string(), shown, "escaping twice");
        }
    }

    #[test]
    fn ordinary_text_is_unchanged() {
        for s in [
            "vacuum: 3 tables, 1.2 GiB reclaimed",
            "índice «usuarios» — 12 ms … ok",
            "テーブル orders: 5 件",
            "مرحبا", // right-to-left script itself is fine, only overrides are not
            "C:\\path\\file",
            "emoji 🎉",
            "",
        ] {
            assert_eq!(Shown(s).to_string(), s);
            assert_eq!(ShownLines(s).to_string(), s);
        }
    }

    #[test]
    fn lines_keep_line_feeds_and_nothing_else() {
        assert_eq!(
            ShownLines("one\ntwo\r\nthree\x1b[2K\n").to_string(),
            "one\ntwo\\r\nthree\\x1b[2K\n"
        );
        assert_eq!(Shown("one\ntwo").to_string(), "one\\ntwo");
    }

    #[test]
    fn padding_measures_the_escaped_text() {
        assert_eq!(format!("[{:<8}]", Shown("ab")), "[ab      ]");
        assert_eq!(format!("[{:<8}]", Shown("a\x1bb")), "[a\\x1bb  ]");
        assert_eq!(format!("[{:>4}]", Shown("\r")), "[  \\r]");
    }

    #[test]
    fn json_keeps_its_value_and_loses_its_hidden_characters() {
        for (c, _) in hostile() {
            let value = serde_json::json!({ "summary": format!("a{c}b"), "n": [1, 2] });
            for json in [
                serde_json::to_string(&value).unwrap(),
                serde_json::to_string_pretty(&value).unwrap(),
            ] {
                let safe = json_safe(&json);
                assert!(
                    !safe.chars().any(|c| c != '\n' && is_hidden(c)),
                    "U+{:04X}: {safe}",
                    u32::from(c)
                );
                let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
                assert_eq!(back, value, "U+{:04X}", u32::from(c));
            }
        }
        assert_eq!(json_safe("{\"a\":\"\u{202e}\"}"), "{\"a\":\"\\u202e\"}");
        assert_eq!(json_safe("\"\u{e0041}\""), "\"\\udb40\\udc41\"");
        assert!(matches!(json_safe("{}"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn any_display_value_is_escaped() {
        let err = anyhow::anyhow!("plugin said \x1b[2Jboom");
        assert_eq!(Shown(&err).to_string(), r"plugin said \x1b[2Jboom");
        assert_eq!(
            Shown(format_args!("{}{}", "a\u{7}", 1)).to_string(),
            r"a\x071"
        );
        let mut out = String::new();
        escaping_writer(&mut out).write_str("x\ny\u{9d}").unwrap();
        assert_eq!(out, r"x\ny\u{9d}");
    }
}
