//! The fields of the text log, escaped.
//!
//! tracing-subscriber's own text formatter escapes only part of the danger
//! (ESC, BEL, BS, FF, DEL and C1 in the message) and writes `%value` fields
//! raw, so a plugin's log line, error message or report text logged by the
//! agent could still carry CR, NUL, line feeds (forged log lines) and bidi
//! overrides. [`EscapedFields`] formats every field of every event and span
//! like the default (`message` bare and first, then `name=value`), but
//! through [`crate::text`]: each value on one line, every hidden character
//! a visible escape. In JSON logs, [`JsonSafe`] writes them as `\uXXXX`.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// The field formatter of the text log: see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        // Metadata of `log` records, shown by the formatter already.
        if name.starts_with("log.") {
            return;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        let first = std::mem::replace(&mut self.first, false);
        self.result = write_field(&mut self.writer, first, name, value);
    }
}

fn write_field(
    writer: &mut Writer<'_>,
    first: bool,
    name: &str,
    value: fmt::Arguments<'_>,
) -> fmt::Result {
    if !first {
        writer.write_char(' ')?;
    }
    if name != "message" {
        write!(writer, "{name}=")?;
    }
    crate::text::escaping_writer(writer).write_fmt(value)
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, format_args!("{value}"));
        } else {
            self.write(field, format_args!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut chain = value.to_string();
        let mut source = value.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        self.write(field, format_args!("{chain}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, format_args!("{value:?}"));
    }
}

/// The destination of the JSON log: `W`'s writers, each event's JSON passed
/// through [`crate::text::json_safe`] (the encoder writes DEL, C1 controls
/// and bidi overrides raw; this writes them as `\uXXXX`, the same value).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSafe<W>(pub W);

impl<'a, W: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a>
    for JsonSafe<W>
{
    type Writer = JsonSafeWriter<W::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        JsonSafeWriter(self.0.make_writer())
    }
}

/// One event's writer of [`JsonSafe`].
#[derive(Debug)]
pub struct JsonSafeWriter<W>(W);

impl<W: std::io::Write> std::io::Write for JsonSafeWriter<W> {
    /// Takes the whole buffer (the formatter writes one event in one call),
    /// so a character is never split between two calls.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self
                .0
                .write_all(crate::text::json_safe(text).as_bytes())
                .map(|()| buf.len()),
            // Not what the JSON encoder writes; passed on unchanged.
            Err(_) => self.0.write_all(buf).map(|()| buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
