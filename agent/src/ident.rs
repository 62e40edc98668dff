//! SQL identifiers: the one quoter for every statement the host writes
//! (dumps, what-if indexes, `check --connect`'s fixes) and behind the
//! plugins' `sql.quote-ident` ([`crate::host::sql::classify::quote_ident`],
//! which first refuses names no server accepts).

/// `"name"` with embedded double quotes doubled: one identifier to
/// PostgreSQL and SQLite, whatever the name holds (quotes, spaces,
/// semicolons, comment markers, any Unicode).
pub fn quote(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for c in name.chars() {
        if c == '"' {
            quoted.push('"');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn every_name_becomes_one_quoted_identifier() {
        for (name, quoted) in [
            ("orders", r#""orders""#),
            ("Mixed Case", r#""Mixed Case""#),
            (r#"we"ird"#, r#""we""ird""#),
            (r#"""#, r#""""""#),
            (r#"x"; DROP TABLE t; --"#, r#""x""; DROP TABLE t; --""#),
            ("naïve ☃", "\"naïve ☃\""),
        ] {
            assert_eq!(quote(name), quoted, "{name:?}");
            // Inside the quotes, every `"` is doubled: the identifier
            // cannot end early.
            let inner = &quoted[1..quoted.len() - 1];
            assert!(!inner.replace("\"\"", "").contains('"'), "{name:?}");
        }
    }
}
