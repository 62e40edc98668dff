//! The SQL statement classifier: decides which [`CapabilityClass`] a plugin's
//! statement needs, or refuses it outright.
//!
//! This is a security boundary, so it denies by default and never pattern
//! matches text with regular expressions. It works in layers:
//!
//! 1. The statement is split into tokens with the `sqlparser` tokenizer of the
//!    target's dialect (it understands string literals, quoted identifiers,
//!    comments, nested PostgreSQL comments and dollar quoting). More than one
//!    statement is refused; a single trailing `;` is fine (so are SQLite
//!    trigger bodies, which hold `;`: they are refused). Lexical forms the
//!    database could read differently from the tokenizer are refused: NUL
//!    bytes, PostgreSQL `U&"..."` identifiers, and `'...\''...'` strings
//!    (which end elsewhere if `standard_conforming_strings` is off).
//! 2. Every identifier token is checked against a list of function and
//!    relation names: names that touch the server's files, processes,
//!    configuration or credentials (`pg_read_file`, `set_config`,
//!    `pg_sleep`, `load_extension`, `dblink`, ...) are refused wherever they
//!    appear; `pg_cancel_backend` / `pg_terminate_backend` need
//!    `session-control`; `nextval` / `setval` and large-object writers need
//!    `write`.
//! 3. `VACUUM`, `ANALYZE`, `REINDEX`, `CHECKPOINT`, `CLUSTER`, SQLite
//!    `PRAGMA` and PostgreSQL `DROP INDEX CONCURRENTLY` carry no
//!    expressions; they are checked against a small, strict token grammar
//!    (the parser's support for them varies by dialect). `VACUUM INTO` and
//!    PRAGMAs outside an allowlist (or setting a value) are refused.
//! 4. Everything else is parsed into an AST. The statement kind gives a base
//!    class (anything not listed is refused), then an AST visitor walks every
//!    expression, relation, sub-query and nested statement: function calls
//!    (schema-qualified or not, any case), row locks (`FOR UPDATE`),
//!    data-modifying CTEs and `SELECT ... INTO` raise the class.
//! 5. A statement that would need two unrelated classes (say a write that
//!    also terminates sessions) is refused: send them separately.
//!
//! ```
//! use warden::capability::CapabilityClass;
//! use warden::host::sql::classify::{Dialect, classify, quote_ident};
//!
//! let c = classify("SELECT * FROM t WHERE id = $1", Dialect::Postgres).unwrap();
//! assert_eq!((c.class, c.operation.as_str()), (CapabilityClass::Read, "SELECT"));
//!
//! let c = classify("VACUUM (ANALYZE) public.t", Dialect::Postgres).unwrap();
//! assert_eq!(c.class, CapabilityClass::Maintenance);
//!
//! assert!(classify("SELECT 1; DROP TABLE t", Dialect::Sqlite).is_err());
//! assert_eq!(quote_ident("we\"ird").unwrap(), "\"we\"\"ird\"");
//! ```

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, ObjectName, ObjectNamePart, ObjectType, Query, Select, SetExpr, SqliteOnConflict,
    Statement, TableFactor, TableObject, UserDefinedTypeRepresentation, UtilityOption, Visit,
    Visitor,
};
use sqlparser::dialect::{Dialect as SqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::capability::CapabilityClass;

/// The SQL dialect a statement is written in (the target's database).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Dialect {
    fn sql_dialect(self) -> &'static dyn SqlDialect {
        match self {
            Dialect::Sqlite => &SQLiteDialect {},
            Dialect::Postgres => &PostgreSqlDialect {},
        }
    }
}

/// The result of classifying an allowed statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// The capability class a grant must include for this statement.
    pub class: CapabilityClass,
    /// Upper-case operation name for telemetry/records, e.g. "SELECT", "VACUUM", "CREATE INDEX", "PRAGMA".
    pub operation: String,
    /// Every function the statement calls by name (in expressions and in
    /// `FROM`), as written: `["pg_catalog", "now"]` or `["now"]`, unquoted
    /// parts folded to lower case. The host resolves them in the target's
    /// catalog before a read runs (PostgreSQL: only functions that cannot
    /// change anything are allowed under `read`).
    pub functions: Vec<Vec<String>>,
    /// For a plain query (`SELECT`, `VALUES`, `TABLE`, `WITH ... SELECT`),
    /// the byte length of the statement without a trailing `;` and what
    /// follows it: the host can then run it as a sub-query. `None` for
    /// everything else.
    pub query_len: Option<usize>,
}

/// Why a statement was not classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    /// Nothing but whitespace, comments and semicolons.
    #[error("empty statement")]
    Empty,
    /// More than one statement (a single trailing `;` is fine).
    #[error("{count} statements in one call; send one statement per call")]
    MultipleStatements {
        /// How many statements the text holds (empty ones between `;` count).
        count: usize,
    },
    /// The tokenizer or parser could not read the statement.
    #[error("cannot parse statement: {0}")]
    Parse(String),
    /// The statement is understood but no grant allows it.
    #[error("{what} is not allowed through the sql capability: {reason}")]
    Forbidden {
        /// What was refused (an operation, function or construct).
        what: String,
        /// Why it is refused.
        reason: String,
    },
}

fn forbidden(what: impl Into<String>, reason: impl Into<String>) -> ClassifyError {
    ClassifyError::Forbidden {
        what: what.into(),
        reason: reason.into(),
    }
}

/// Classifies one SQL statement for `dialect`.
///
/// Returns the class a grant must include and an operation name, or an error
/// when the text is empty, holds several statements, cannot be parsed or is
/// never allowed through the sql capability.
pub fn classify(sql: &str, dialect: Dialect) -> Result<Classified, ClassifyError> {
    if sql.contains('\0') {
        // SQLite stops reading at a NUL; PostgreSQL refuses it. Neither
        // would see what the tokenizer sees.
        return Err(ClassifyError::Parse(
            "the statement contains a NUL byte".into(),
        ));
    }
    let tokens = Tokenizer::new(dialect.sql_dialect(), sql)
        .tokenize_with_location()
        .map_err(|e| ClassifyError::Parse(e.to_string()))?;
    let significant: Vec<&Token> = tokens
        .iter()
        .map(|t| &t.token)
        .filter(|t| !matches!(t, Token::Whitespace(_) | Token::EOF))
        .collect();
    let body = single_statement(&significant)?;
    check_lexical_hazards(&tokens, dialect)?;
    let names = scan_words(body)?;

    let mut query = false;
    let verdict = match leading_word(body).as_deref() {
        Some(kw @ ("VACUUM" | "ANALYZE" | "ANALYSE" | "REINDEX" | "CHECKPOINT" | "CLUSTER")) => {
            maintenance(kw, body.get(1..).unwrap_or_default(), dialect)?
        }
        Some("PRAGMA") => pragma(body.get(1..).unwrap_or_default(), dialect)?,
        // The parser does not know `DROP INDEX CONCURRENTLY` (PostgreSQL).
        Some("DROP")
            if dialect == Dialect::Postgres && starts_with_keywords(body, DROP_CONCURRENTLY) =>
        {
            drop_index_concurrently(body.get(DROP_CONCURRENTLY.len()..).unwrap_or_default())?
        }
        lead => {
            let statements = Parser::new(dialect.sql_dialect())
                .with_tokens_with_locations(tokens.clone())
                .parse_statements()
                .map_err(|e| match lead.and_then(keyword_refusal) {
                    Some(refusal) => refusal,
                    None => ClassifyError::Parse(e.to_string()),
                })?;
            match statements.as_slice() {
                [] => return Err(ClassifyError::Empty),
                [statement] => {
                    query = matches!(statement, Statement::Query(_));
                    classify_statement(statement, dialect)?
                }
                more => return Err(ClassifyError::MultipleStatements { count: more.len() }),
            }
        }
    };
    let class = combine(verdict.class, names, &verdict.operation)?;
    let query_len = if query {
        statement_end(sql, &tokens)
    } else {
        None
    };
    Ok(Classified {
        class,
        operation: verdict.operation,
        functions: verdict.functions,
        query_len,
    })
}

/// The byte offset just past the last token that is not whitespace, a
/// comment or a `;`.
fn statement_end(sql: &str, tokens: &[TokenWithSpan]) -> Option<usize> {
    let last = tokens.iter().rev().find(|t| {
        !matches!(
            t.token,
            Token::Whitespace(_) | Token::EOF | Token::SemiColon
        )
    })?;
    byte_offset(sql, last.span.end.line, last.span.end.column)
}

/// The byte offset of a tokenizer location (1-based line and column, the
/// column counted in characters).
fn byte_offset(sql: &str, line: u64, column: u64) -> Option<usize> {
    let mut offset = 0usize;
    for (i, text) in sql.split_inclusive('\n').enumerate() {
        if u64::try_from(i).ok()?.checked_add(1)? == line {
            let chars = usize::try_from(column.checked_sub(1)?).ok()?;
            let within = match text.char_indices().nth(chars) {
                Some((at, _)) => at,
                None if text.chars().count() == chars => text.len(),
                None => return None,
            };
            return Some(offset + within);
        }
        offset += text.len();
    }
    (line == 0 || sql.is_empty()).then_some(sql.len())
}

/// Quotes an identifier with double quotes, doubling embedded quotes.
///
/// Both SQLite and PostgreSQL accept this form. Empty identifiers and
/// identifiers with NUL bytes are refused.
pub fn quote_ident(ident: &str) -> Result<String, ClassifyError> {
    if ident.is_empty() {
        return Err(forbidden(
            "an empty identifier",
            "a quoted identifier cannot be empty",
        ));
    }
    if ident.contains('\0') {
        return Err(forbidden(
            "an identifier with a NUL byte",
            "NUL bytes cannot appear in identifiers",
        ));
    }
    Ok(crate::ident::quote(ident))
}

// ---------------------------------------------------------------------------
// Layer 1: one statement, no ambiguous lexical forms.

/// Checks that `significant` (tokens without whitespace and comments) holds
/// exactly one statement and returns its tokens without a trailing `;`.
fn single_statement<'a, 't>(
    significant: &'a [&'t Token],
) -> Result<&'a [&'t Token], ClassifyError> {
    let body = match significant.split_last() {
        Some((Token::SemiColon, rest)) => rest,
        _ => significant,
    };
    if body.is_empty() {
        return Err(ClassifyError::Empty);
    }
    let semicolons = body
        .iter()
        .filter(|t| matches!(t, Token::SemiColon))
        .count();
    if semicolons > 0 && is_create_trigger(body) {
        return Err(forbidden(
            "CREATE TRIGGER with a statement body",
            "a body's semicolons cannot be told apart from a second statement with certainty",
        ));
    }
    if semicolons > 0 {
        return Err(ClassifyError::MultipleStatements {
            count: semicolons + 1,
        });
    }
    Ok(body)
}

/// `CREATE [TEMP | TEMPORARY] TRIGGER ...`
fn is_create_trigger(body: &[&Token]) -> bool {
    let words: Vec<String> = body
        .iter()
        .take(3)
        .map(|t| match t {
            Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
            _ => String::new(),
        })
        .collect();
    match words.as_slice() {
        [create, trigger, ..] if create == "CREATE" && trigger == "TRIGGER" => true,
        [create, temp, trigger] => {
            create == "CREATE" && (temp == "TEMP" || temp == "TEMPORARY") && trigger == "TRIGGER"
        }
        _ => false,
    }
}

/// Refuses lexical forms that the database could read differently from the
/// tokenizer, which would let text the classifier saw as data run as code.
fn check_lexical_hazards(tokens: &[TokenWithSpan], dialect: Dialect) -> Result<(), ClassifyError> {
    if dialect != Dialect::Postgres {
        return Ok(());
    }
    for window in tokens.windows(3) {
        if let [a, b, c] = window
            && let Token::Word(u) = &a.token
            && u.quote_style.is_none()
            && u.value.eq_ignore_ascii_case("u")
            && b.token == Token::Ampersand
            && matches!(&c.token, Token::Word(w) if w.quote_style == Some('"'))
        {
            return Err(forbidden(
                "a Unicode-escaped identifier (U&\"...\")",
                "its escapes could spell any name; write the identifier plainly",
            ));
        }
    }
    for t in tokens {
        if let Token::SingleQuotedString(s) | Token::NationalStringLiteral(s) = &t.token
            && s.contains("\\'")
        {
            return Err(forbidden(
                "a string literal with a backslash before a quote",
                "it would end elsewhere if standard_conforming_strings were off; \
                 use an E'...' string or a parameter",
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Layer 2: names.

/// What a function or relation name implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameRule {
    Neutral,
    Write,
    SessionControl,
    Forbidden(&'static str),
}

const FILES: &str = "it reads or lists files on the database server";
const FILE_WRITE: &str = "it writes or removes files on the database server";
const SERVER: &str = "it changes the database server's configuration or state";
const WAIT: &str = "it keeps the host waiting";
const REMOTE: &str = "it opens connections to other servers";
const DYNAMIC: &str = "it runs a query given as text, which the classifier cannot inspect";
const ADVISORY: &str = "advisory locks outlive the statement and are not managed by the host";
const STATS: &str = "it resets or overwrites server statistics";
const REPLICATION: &str = "it manages replication, WAL or backups";
const NATIVE: &str = "it loads native code";
const SECRETS: &str = "it exposes credentials or server configuration files";

/// Forbidden names that start with a prefix.
const FORBIDDEN_PREFIXES: &[(&str, &str)] = &[
    ("pg_read_", FILES),
    ("pg_ls_", FILES),
    ("pg_file_", FILE_WRITE),
    ("dblink", REMOTE),
    ("pg_sleep", WAIT),
    ("pg_advisory_", ADVISORY),
    ("pg_try_advisory_", ADVISORY),
    ("pg_stat_reset", STATS),
    ("pg_restore_", STATS),
    ("pg_clear_", STATS),
    ("pg_logical_", REPLICATION),
    ("pg_create_", REPLICATION),
    ("pg_wal_replay_", REPLICATION),
    ("pg_xlog_replay_", REPLICATION),
    ("query_to_xml", DYNAMIC),
    ("cursor_to_xml", DYNAMIC),
    // These build and run queries of their own (over a table, a schema, the
    // whole database) through SPI.
    ("table_to_xml", DYNAMIC),
    ("schema_to_xml", DYNAMIC),
    ("database_to_xml", DYNAMIC),
    ("crosstab", DYNAMIC),
];

/// Forbidden names, exactly.
const FORBIDDEN_NAMES: &[(&str, &str)] = &[
    ("pg_stat_file", FILES),
    ("pg_file_settings", SECRETS),
    ("lo_import", FILES),
    ("pg_logdir_ls", FILES),
    ("lo_export", FILE_WRITE),
    ("pg_reload_conf", SERVER),
    ("pg_rotate_logfile", SERVER),
    ("pg_rotate_logfile_old", SERVER),
    ("pg_promote", SERVER),
    ("set_config", "the host owns session settings"),
    (
        "pg_notify",
        "asynchronous notifications are not part of the sql capability",
    ),
    ("pg_log_backend_memory_contexts", SERVER),
    ("pg_import_system_collations", SERVER),
    ("pg_truncate_visibility_map", SERVER),
    ("pg_stat_statements_reset", STATS),
    ("pg_switch_wal", REPLICATION),
    ("pg_switch_xlog", REPLICATION),
    ("pg_log_standby_snapshot", REPLICATION),
    ("pg_start_backup", REPLICATION),
    ("pg_stop_backup", REPLICATION),
    ("pg_backup_start", REPLICATION),
    ("pg_backup_stop", REPLICATION),
    ("pg_drop_replication_slot", REPLICATION),
    ("pg_copy_physical_replication_slot", REPLICATION),
    ("pg_copy_logical_replication_slot", REPLICATION),
    ("pg_replication_slot_advance", REPLICATION),
    ("pg_sync_replication_slots", REPLICATION),
    ("pg_replication_origin_create", REPLICATION),
    ("pg_replication_origin_drop", REPLICATION),
    ("pg_replication_origin_advance", REPLICATION),
    ("pg_replication_origin_session_setup", REPLICATION),
    ("pg_replication_origin_session_reset", REPLICATION),
    ("pg_replication_origin_xact_setup", REPLICATION),
    ("pg_replication_origin_xact_reset", REPLICATION),
    ("ts_stat", DYNAMIC),
    // `ts_rewrite(tsquery, text)` runs its second argument as a query.
    ("ts_rewrite", DYNAMIC),
    ("connectby", DYNAMIC),
    ("pg_authid", SECRETS),
    ("pg_shadow", SECRETS),
    ("pg_user_mapping", SECRETS),
    ("pg_user_mappings", SECRETS),
    ("pg_hba_file_rules", SECRETS),
    ("pg_ident_file_mappings", SECRETS),
    // SQLite.
    ("load_extension", NATIVE),
    ("fts3_tokenizer", NATIVE),
    ("readfile", FILES),
    ("fsdir", FILES),
    ("zipfile", FILES),
    ("writefile", FILE_WRITE),
    (
        "sqlite_dbpage",
        "it reads and writes raw database pages, bypassing the schema",
    ),
];

const SESSION_CONTROL_NAMES: &[&str] = &["pg_cancel_backend", "pg_terminate_backend"];

const WRITE_NAMES: &[&str] = &[
    // They assign a transaction id (which a read never does: each one ages
    // the cluster towards wraparound), even in a read-only transaction.
    "txid_current",
    "pg_current_xact_id",
    "nextval",
    "setval",
    "lo_creat",
    "lo_create",
    "lo_unlink",
    "lo_put",
    "lo_from_bytea",
    "lo_truncate",
    "lo_truncate64",
    "lowrite",
];

/// The rule for one (unqualified) function or relation name, any case.
fn name_rule(name: &str) -> NameRule {
    let name = name.to_ascii_lowercase();
    let name = name.as_str();
    if let Some((_, reason)) = FORBIDDEN_NAMES.iter().find(|(n, _)| *n == name) {
        return NameRule::Forbidden(reason);
    }
    if let Some((_, reason)) = FORBIDDEN_PREFIXES.iter().find(|(p, _)| name.starts_with(p)) {
        return NameRule::Forbidden(reason);
    }
    if SESSION_CONTROL_NAMES.contains(&name) {
        return NameRule::SessionControl;
    }
    if WRITE_NAMES.contains(&name) {
        return NameRule::Write;
    }
    NameRule::Neutral
}

/// Classes raised by names and constructs found in a statement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Raised {
    write: bool,
    session: bool,
}

impl Raised {
    fn apply(&mut self, name: &str) -> Result<(), ClassifyError> {
        match name_rule(name) {
            NameRule::Neutral => {}
            NameRule::Write => self.write = true,
            NameRule::SessionControl => self.session = true,
            NameRule::Forbidden(reason) => {
                return Err(forbidden(name.to_ascii_lowercase(), reason));
            }
        }
        Ok(())
    }
}

/// Checks every identifier token, wherever it appears: a name the AST does
/// not show as a call (an unusual syntax, a parser quirk) is still caught.
fn scan_words(body: &[&Token]) -> Result<Raised, ClassifyError> {
    let mut raised = Raised::default();
    for t in body {
        if let Token::Word(w) = t {
            raised.apply(&w.value)?;
        }
    }
    Ok(raised)
}

/// Merges a base class with what names and constructs raised, refusing
/// statements that would need two unrelated classes.
fn combine(
    class: CapabilityClass,
    raised: Raised,
    operation: &str,
) -> Result<CapabilityClass, ClassifyError> {
    use CapabilityClass as C;
    let mixed = |other: &str| {
        Err(forbidden(
            operation,
            format!("it combines {class} with {other}; send them as separate statements"),
        ))
    };
    match class {
        C::Read => match (raised.write, raised.session) {
            (false, false) => Ok(C::Read),
            (true, false) => Ok(C::Write),
            (false, true) => Ok(C::SessionControl),
            (true, true) => Err(forbidden(
                operation,
                "it combines write with session-control; send them as separate statements",
            )),
        },
        // Column defaults, view bodies and trigger bodies name functions that
        // run later, under the grant of whatever runs them then; a write
        // function inside DDL is therefore not a second class.
        C::Ddl | C::Write if raised.session => mixed("session-control"),
        C::Ddl | C::Write => Ok(class),
        C::SessionControl if raised.write => mixed("write"),
        C::SessionControl => Ok(class),
        C::Maintenance if raised.write => mixed("write"),
        C::Maintenance if raised.session => mixed("session-control"),
        C::Maintenance => Ok(class),
    }
}

// ---------------------------------------------------------------------------
// Layer 3: statements without expressions, by token grammar.

/// A cursor over significant tokens.
struct Cursor<'a, 't> {
    tokens: &'a [&'t Token],
    pos: usize,
    statement: &'static str,
}

impl<'t> Cursor<'_, 't> {
    fn peek(&self) -> Option<&'t Token> {
        self.tokens.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<&'t Token> {
        let t = self.peek();
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    fn at_end(&self) -> bool {
        self.pos >= self.tokens.len()
    }

    fn unexpected(&self) -> ClassifyError {
        match self.peek() {
            Some(t) => ClassifyError::Parse(format!("unexpected `{t}` in {}", self.statement)),
            None => ClassifyError::Parse(format!("{} ends too early", self.statement)),
        }
    }

    /// Consumes an unquoted keyword.
    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let hit = matches!(self.peek(), Some(Token::Word(w))
            if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(keyword));
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn eat(&mut self, token: &Token) -> bool {
        let hit = self.peek() == Some(token);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn word(&mut self) -> Result<(), ClassifyError> {
        match self.peek() {
            Some(Token::Word(_)) => {
                self.pos += 1;
                Ok(())
            }
            _ => Err(self.unexpected()),
        }
    }

    fn expect(&mut self, token: &Token) -> Result<(), ClassifyError> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn end(&self) -> Result<(), ClassifyError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    /// `name [. name [. name]]`
    fn qualified_name(&mut self) -> Result<(), ClassifyError> {
        self.word()?;
        for _ in 0..2 {
            if !self.eat(&Token::Period) {
                break;
            }
            self.word()?;
        }
        Ok(())
    }

    /// `name [ ( column [, ...] ) ] [, ...]` (PostgreSQL table_and_columns).
    fn table_list(&mut self) -> Result<(), ClassifyError> {
        loop {
            self.qualified_name()?;
            if self.eat(&Token::LParen) {
                loop {
                    self.word()?;
                    if !self.eat(&Token::Comma) {
                        break;
                    }
                }
                self.expect(&Token::RParen)?;
            }
            if !self.eat(&Token::Comma) {
                return Ok(());
            }
        }
    }

    /// After `(`: `option [value] [, ...] )` (PostgreSQL utility options).
    fn options(&mut self) -> Result<(), ClassifyError> {
        loop {
            self.word()?;
            if matches!(
                self.peek(),
                Some(Token::Word(_) | Token::Number(..) | Token::SingleQuotedString(_))
            ) {
                self.pos += 1;
            }
            if self.eat(&Token::RParen) {
                return Ok(());
            }
            self.expect(&Token::Comma)?;
        }
    }

    /// Optional `( options )`.
    fn opt_options(&mut self) -> Result<bool, ClassifyError> {
        if self.eat(&Token::LParen) {
            self.options()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }
}

/// VACUUM, ANALYZE, REINDEX, CHECKPOINT and CLUSTER: validated by a strict
/// token grammar, then `maintenance`.
fn maintenance(keyword: &str, rest: &[&Token], dialect: Dialect) -> Result<Verdict, ClassifyError> {
    let (statement, operation) = match keyword {
        "VACUUM" => ("VACUUM", "VACUUM"),
        "ANALYZE" | "ANALYSE" => ("ANALYZE", "ANALYZE"),
        "REINDEX" => ("REINDEX", "REINDEX"),
        "CHECKPOINT" => ("CHECKPOINT", "CHECKPOINT"),
        _ => ("CLUSTER", "CLUSTER"),
    };
    let into = rest.iter().any(|t| {
        matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("INTO"))
    });
    if operation == "VACUUM" && into {
        return Err(forbidden(
            "VACUUM INTO",
            "it writes a copy of the database to a file on the host",
        ));
    }
    let mut c = Cursor {
        tokens: rest,
        pos: 0,
        statement,
    };
    match (dialect, operation) {
        (Dialect::Postgres, "VACUUM") => {
            if !c.opt_options()? {
                for kw in ["FULL", "FREEZE", "VERBOSE", "ANALYZE", "ANALYSE"] {
                    c.eat_keyword(kw);
                }
            }
            if !c.at_end() {
                c.table_list()?;
            }
        }
        (Dialect::Postgres, "ANALYZE") => {
            if !c.opt_options()? {
                c.eat_keyword("VERBOSE");
            }
            if !c.at_end() {
                c.table_list()?;
            }
        }
        (Dialect::Postgres, "REINDEX") => {
            c.opt_options()?;
            if !["INDEX", "TABLE", "SCHEMA", "DATABASE", "SYSTEM"]
                .iter()
                .any(|kw| c.eat_keyword(kw))
            {
                return Err(c.unexpected());
            }
            c.eat_keyword("CONCURRENTLY");
            if !c.at_end() {
                c.qualified_name()?;
            }
        }
        (Dialect::Postgres, "CHECKPOINT") => {
            c.opt_options()?;
        }
        (Dialect::Postgres, _) => {
            // CLUSTER [ ( options ) | VERBOSE ] [ table [ USING index ] ]
            if !c.opt_options()? {
                c.eat_keyword("VERBOSE");
            }
            if !c.at_end() {
                c.qualified_name()?;
                if c.eat_keyword("USING") {
                    c.word()?;
                }
            }
        }
        (Dialect::Sqlite, "VACUUM") => {
            if !c.at_end() {
                c.word()?;
            }
        }
        (Dialect::Sqlite, "ANALYZE" | "REINDEX") => {
            if !c.at_end() {
                c.word()?;
                if c.eat(&Token::Period) {
                    c.word()?;
                }
            }
        }
        (Dialect::Sqlite, _) => {
            return Err(ClassifyError::Parse(format!(
                "{operation} is not a SQLite statement"
            )));
        }
    }
    c.end()?;
    Ok(Verdict {
        class: CapabilityClass::Maintenance,
        operation: operation.to_string(),
        functions: Vec::new(),
    })
}

const DROP_CONCURRENTLY: &[&str] = &["DROP", "INDEX", "CONCURRENTLY"];

/// Whether the statement starts with these unquoted keywords.
fn starts_with_keywords(body: &[&Token], keywords: &[&str]) -> bool {
    body.len() >= keywords.len()
        && body.iter().zip(keywords).all(|(t, kw)| {
            matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw))
        })
}

/// After `DROP INDEX CONCURRENTLY`: `[IF EXISTS] name [, ...] [CASCADE | RESTRICT]`.
fn drop_index_concurrently(rest: &[&Token]) -> Result<Verdict, ClassifyError> {
    let mut c = Cursor {
        tokens: rest,
        pos: 0,
        statement: "DROP INDEX CONCURRENTLY",
    };
    if c.eat_keyword("IF") && !c.eat_keyword("EXISTS") {
        return Err(c.unexpected());
    }
    loop {
        c.qualified_name()?;
        if !c.eat(&Token::Comma) {
            break;
        }
    }
    let _ = c.eat_keyword("CASCADE") || c.eat_keyword("RESTRICT");
    c.end()?;
    Ok(Verdict {
        class: CapabilityClass::Ddl,
        operation: "DROP INDEX".into(),
        functions: Vec::new(),
    })
}

/// SQLite PRAGMAs that only report something when given no value.
const READ_PRAGMAS: &[&str] = &[
    "application_id",
    "auto_vacuum",
    "automatic_index",
    "busy_timeout",
    "cache_size",
    "cache_spill",
    "cell_size_check",
    "checkpoint_fullfsync",
    "collation_list",
    "compile_options",
    "data_version",
    "database_list",
    "defer_foreign_keys",
    "encoding",
    "foreign_keys",
    "freelist_count",
    "fullfsync",
    "function_list",
    "hard_heap_limit",
    "ignore_check_constraints",
    "journal_mode",
    "journal_size_limit",
    "legacy_alter_table",
    "locking_mode",
    "max_page_count",
    "mmap_size",
    "module_list",
    "page_count",
    "page_size",
    "pragma_list",
    "query_only",
    "recursive_triggers",
    "reverse_unordered_selects",
    "schema_version",
    "secure_delete",
    "soft_heap_limit",
    "synchronous",
    "temp_store",
    "threads",
    "trusted_schema",
    "user_version",
    "wal_autocheckpoint",
];

/// SQLite PRAGMAs that report something about their argument and change nothing.
const READ_PRAGMAS_WITH_ARGUMENT: &[&str] = &[
    "foreign_key_check",
    "foreign_key_list",
    "index_info",
    "index_list",
    "index_xinfo",
    "integrity_check",
    "quick_check",
    "table_info",
    "table_list",
    "table_xinfo",
];

/// SQLite PRAGMAs that are maintenance, with or without an argument.
const MAINTENANCE_PRAGMAS: &[&str] = &["incremental_vacuum", "optimize", "wal_checkpoint"];

/// `PRAGMA [schema.]name [= value | (value)]` (SQLite only).
fn pragma(rest: &[&Token], dialect: Dialect) -> Result<Verdict, ClassifyError> {
    if dialect != Dialect::Sqlite {
        return Err(forbidden("PRAGMA", "PRAGMA is a SQLite statement"));
    }
    let mut c = Cursor {
        tokens: rest,
        pos: 0,
        statement: "PRAGMA",
    };
    let mut name = match c.bump() {
        Some(Token::Word(w)) => w.value.to_ascii_lowercase(),
        _ => return Err(ClassifyError::Parse("PRAGMA needs a name".into())),
    };
    if c.eat(&Token::Period) {
        name = match c.bump() {
            Some(Token::Word(w)) => w.value.to_ascii_lowercase(),
            _ => return Err(c.unexpected()),
        };
    }
    let has_value = if c.eat(&Token::Eq) {
        pragma_value(&mut c)?;
        true
    } else if c.eat(&Token::LParen) {
        pragma_value(&mut c)?;
        c.expect(&Token::RParen)?;
        true
    } else {
        false
    };
    c.end()?;
    let class = if MAINTENANCE_PRAGMAS.contains(&name.as_str()) {
        CapabilityClass::Maintenance
    } else if READ_PRAGMAS_WITH_ARGUMENT.contains(&name.as_str()) {
        CapabilityClass::Read
    } else if READ_PRAGMAS.contains(&name.as_str()) {
        if has_value {
            return Err(forbidden(
                format!("PRAGMA {name} with a value"),
                "it changes a connection or database setting, which the host owns",
            ));
        }
        CapabilityClass::Read
    } else {
        return Err(forbidden(
            format!("PRAGMA {name}"),
            "it is not on the PRAGMA allowlist",
        ));
    };
    Ok(Verdict {
        class,
        operation: "PRAGMA".into(),
        functions: Vec::new(),
    })
}

/// `[+|-] number | name | string`
fn pragma_value(c: &mut Cursor<'_, '_>) -> Result<(), ClassifyError> {
    let signed = c.eat(&Token::Plus) || c.eat(&Token::Minus);
    match c.peek() {
        Some(Token::Number(..)) => {}
        Some(Token::Word(_) | Token::SingleQuotedString(_) | Token::HexStringLiteral(_))
            if !signed => {}
        _ => return Err(c.unexpected()),
    }
    c.pos += 1;
    Ok(())
}

// ---------------------------------------------------------------------------
// Layer 4: parsed statements.

/// A class and an operation name, before names found in the text are merged.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Verdict {
    class: CapabilityClass,
    operation: String,
    /// The functions it calls (see [`Classified::functions`]); none for
    /// the statements checked by token grammar.
    functions: Vec<Vec<String>>,
}

/// What the AST walk found.
#[derive(Debug, Default)]
struct Findings {
    raised: Raised,
    /// `SELECT ... INTO new_table` somewhere.
    select_into: bool,
    /// `pg_settings` appears as a relation (writing it changes settings).
    pg_settings: bool,
    /// Every function called, see [`Classified::functions`].
    functions: Vec<Vec<String>>,
}

/// Walks every expression, relation, query and nested statement.
#[derive(Debug, Default)]
struct Scanner {
    found: Findings,
    depth: usize,
}

impl Scanner {
    fn function(&mut self, name: &ObjectName) -> ControlFlow<ClassifyError> {
        let mut parts = Vec::with_capacity(name.0.len());
        for part in &name.0 {
            match part {
                ObjectNamePart::Identifier(ident) if ident.quote_style.is_some() => {
                    parts.push(ident.value.clone());
                }
                ObjectNamePart::Identifier(ident) => parts.push(ident.value.to_lowercase()),
                ObjectNamePart::Function(_) => {
                    return ControlFlow::Break(forbidden(
                        format!("function `{name}`"),
                        "computed function names cannot be checked",
                    ));
                }
            }
        }
        if !self.found.functions.contains(&parts) {
            self.found.functions.push(parts);
        }
        match name.0.last() {
            Some(ObjectNamePart::Identifier(ident)) => {
                match self.found.raised.apply(&ident.value) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => ControlFlow::Break(e),
                }
            }
            Some(ObjectNamePart::Function(_)) | None => ControlFlow::Break(forbidden(
                format!("function `{name}`"),
                "computed function names cannot be checked",
            )),
        }
    }
}

impl Visitor for Scanner {
    type Break = ClassifyError;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<Self::Break> {
        if self.depth > 0 {
            match statement {
                Statement::Insert(_)
                | Statement::Update(_)
                | Statement::Delete(_)
                | Statement::Merge(_) => self.found.raised.write = true,
                Statement::Query(_) => {}
                other => {
                    return ControlFlow::Break(forbidden(
                        format!("a nested {}", leading_words(other)),
                        "only queries and data changes may be nested in a statement",
                    ));
                }
            }
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_statement(&mut self, _statement: &Statement) -> ControlFlow<Self::Break> {
        self.depth = self.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Self::Break> {
        if !query.locks.is_empty() {
            self.found.raised.write = true;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<Self::Break> {
        if select.into.is_some() {
            self.found.select_into = true;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<Self::Break> {
        for part in &relation.0 {
            match part {
                ObjectNamePart::Identifier(ident) => {
                    if ident.value.eq_ignore_ascii_case("pg_settings") {
                        self.found.pg_settings = true;
                    }
                }
                ObjectNamePart::Function(_) => {
                    return ControlFlow::Break(forbidden(
                        format!("relation `{relation}`"),
                        "computed relation names cannot be checked",
                    ));
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Self::Break> {
        match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            }
            | TableFactor::Function { name, .. } => self.function(name),
            _ => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Self::Break> {
        match expr {
            Expr::Function(f) => self.function(&f.name),
            _ => ControlFlow::Continue(()),
        }
    }
}

fn scan<V: Visit>(node: &V) -> Result<Findings, ClassifyError> {
    let mut scanner = Scanner::default();
    match node.visit(&mut scanner) {
        ControlFlow::Continue(()) => Ok(scanner.found),
        ControlFlow::Break(e) => Err(e),
    }
}

fn classify_statement(statement: &Statement, dialect: Dialect) -> Result<Verdict, ClassifyError> {
    if let Statement::Explain {
        analyze,
        statement: inner,
        options,
        ..
    } = statement
    {
        let inner = classify_statement(inner, dialect)?;
        return Ok(if explain_executes(*analyze, options.as_deref()) {
            Verdict {
                class: inner.class,
                operation: format!("EXPLAIN ANALYZE {}", inner.operation),
                functions: inner.functions,
            }
        } else {
            Verdict {
                class: CapabilityClass::Read,
                operation: "EXPLAIN".into(),
                functions: inner.functions,
            }
        });
    }
    let found = scan(statement)?;
    let (class, operation) = match statement {
        Statement::Query(query) => {
            let operation = query_operation(query);
            if found.select_into {
                if found.raised.write || found.raised.session {
                    return Err(forbidden(
                        "SELECT INTO",
                        "it creates a table from a query that also changes data or sessions",
                    ));
                }
                (CapabilityClass::Ddl, "SELECT INTO".to_string())
            } else {
                (CapabilityClass::Read, operation)
            }
        }
        other => {
            if found.select_into {
                return Err(forbidden(
                    "SELECT INTO",
                    "it may only be a statement of its own",
                ));
            }
            base_class(other, dialect)?
        }
    };
    let class = combine(class, found.raised, &operation)?;
    if class == CapabilityClass::Write && found.pg_settings {
        return Err(forbidden(
            format!("{operation} on pg_settings"),
            "writing pg_settings changes session settings, which the host owns",
        ));
    }
    Ok(Verdict {
        class,
        operation,
        functions: found.functions,
    })
}

/// Whether an EXPLAIN runs its statement (`ANALYZE`, in either syntax; any
/// ANALYZE option counts, even `ANALYZE false`).
fn explain_executes(analyze: bool, options: Option<&[UtilityOption]>) -> bool {
    analyze
        || options.unwrap_or_default().iter().any(|o| {
            o.name.value.eq_ignore_ascii_case("ANALYZE")
                || o.name.value.eq_ignore_ascii_case("ANALYSE")
        })
}

fn query_operation(query: &Query) -> String {
    let body = match query.body.as_ref() {
        SetExpr::Values(_) => "VALUES",
        SetExpr::Insert(_) => "INSERT",
        SetExpr::Update(_) => "UPDATE",
        SetExpr::Delete(_) => "DELETE",
        SetExpr::Merge(_) => "MERGE",
        SetExpr::Table(_) => "TABLE",
        SetExpr::Select(_) | SetExpr::Query(_) | SetExpr::SetOperation { .. } => "SELECT",
    };
    let updates = query
        .locks
        .iter()
        .any(|l| l.lock_type == sqlparser::ast::LockType::Update);
    match (body, query.locks.is_empty(), updates) {
        ("SELECT", false, true) => "SELECT FOR UPDATE".into(),
        ("SELECT", false, false) => "SELECT FOR SHARE".into(),
        (body, _, _) => body.into(),
    }
}

const TRANSACTIONS: &str = "the host owns transactions";
const SESSION: &str = "the host owns session settings";
const FILE_ACCESS: &str = "it reads or writes files or programs on the database server";
const ACCESS_CONTROL: &str =
    "roles, privileges and policies are not managed through the sql capability";
const OPAQUE_CODE: &str = "it runs or defines code the classifier cannot inspect";
const NOT_RECOGNISED: &str = "the classifier does not recognise this statement";

/// The base class of a parsed statement other than a query or EXPLAIN.
/// Anything not listed is refused.
fn base_class(
    statement: &Statement,
    dialect: Dialect,
) -> Result<(CapabilityClass, String), ClassifyError> {
    use CapabilityClass::{Ddl, Read, Write};
    let ok = |class: CapabilityClass, op: &str| Ok((class, op.to_string()));
    match statement {
        // write
        Statement::Insert(insert) => {
            if matches!(insert.table, TableObject::TableFunction(_)) {
                return Err(forbidden("INSERT INTO FUNCTION", NOT_RECOGNISED));
            }
            let replace =
                insert.replace_into || matches!(insert.or, Some(SqliteOnConflict::Replace));
            ok(Write, if replace { "REPLACE" } else { "INSERT" })
        }
        Statement::Update(_) => ok(Write, "UPDATE"),
        Statement::Delete(_) => ok(Write, "DELETE"),
        Statement::Merge(_) => ok(Write, "MERGE"),

        // ddl
        Statement::CreateTable(create) => {
            if let Some(query) = &create.query
                && scan(query.as_ref())?.raised.write
            {
                return Err(forbidden(
                    "CREATE TABLE AS",
                    "its query changes data; run the change separately",
                ));
            }
            ok(Ddl, "CREATE TABLE")
        }
        Statement::CreateView(view) => {
            if view.materialized {
                if scan(view.query.as_ref())?.raised.write {
                    return Err(forbidden(
                        "CREATE MATERIALIZED VIEW",
                        "its query changes data; run the change separately",
                    ));
                }
                ok(Ddl, "CREATE MATERIALIZED VIEW")
            } else {
                ok(Ddl, "CREATE VIEW")
            }
        }
        Statement::CreateIndex(_) => ok(Ddl, "CREATE INDEX"),
        Statement::CreateVirtualTable { module_name, .. } => {
            const MODULES: &[&str] = &["fts3", "fts4", "fts5", "rtree", "rtree_i32", "geopoly"];
            let module = module_name.value.to_ascii_lowercase();
            if dialect == Dialect::Sqlite && MODULES.contains(&module.as_str()) {
                ok(Ddl, "CREATE VIRTUAL TABLE")
            } else {
                Err(forbidden(
                    format!("CREATE VIRTUAL TABLE USING {module}"),
                    "only the fts3/fts4/fts5, rtree and geopoly modules are allowed",
                ))
            }
        }
        Statement::CreateSchema { .. } => ok(Ddl, "CREATE SCHEMA"),
        Statement::CreateSequence { .. } => ok(Ddl, "CREATE SEQUENCE"),
        Statement::CreateDomain(_) => ok(Ddl, "CREATE DOMAIN"),
        Statement::CreateType { representation, .. } => match representation {
            Some(
                UserDefinedTypeRepresentation::Composite { .. }
                | UserDefinedTypeRepresentation::Enum { .. },
            ) => ok(Ddl, "CREATE TYPE"),
            _ => Err(forbidden(
                "CREATE TYPE",
                "only composite and enum types are allowed; other kinds bind functions",
            )),
        },
        Statement::CreateTrigger(_) => ok(Ddl, "CREATE TRIGGER"),
        Statement::AlterTable(_) => ok(Ddl, "ALTER TABLE"),
        Statement::AlterIndex { .. } => ok(Ddl, "ALTER INDEX"),
        Statement::AlterView { .. } => ok(Ddl, "ALTER VIEW"),
        Statement::AlterSchema(_) => ok(Ddl, "ALTER SCHEMA"),
        Statement::AlterType(_) => ok(Ddl, "ALTER TYPE"),
        Statement::Drop { object_type, .. } => match object_type {
            ObjectType::Table
            | ObjectType::View
            | ObjectType::MaterializedView
            | ObjectType::Index
            | ObjectType::Schema
            | ObjectType::Sequence
            | ObjectType::Type => Ok((Ddl, format!("DROP {object_type}"))),
            ObjectType::Role | ObjectType::User => {
                Err(forbidden(format!("DROP {object_type}"), ACCESS_CONTROL))
            }
            ObjectType::Database => Err(forbidden(
                "DROP DATABASE",
                "databases are managed outside the sql capability",
            )),
            other => Err(forbidden(format!("DROP {other}"), NOT_RECOGNISED)),
        },
        Statement::DropFunction(_) => ok(Ddl, "DROP FUNCTION"),
        Statement::DropProcedure { .. } => ok(Ddl, "DROP PROCEDURE"),
        Statement::DropTrigger(_) => ok(Ddl, "DROP TRIGGER"),
        Statement::DropDomain(_) => ok(Ddl, "DROP DOMAIN"),
        Statement::Truncate(_) => ok(Ddl, "TRUNCATE"),
        Statement::Comment { .. } => ok(Ddl, "COMMENT"),

        // read
        Statement::ShowVariable { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowViews { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowFunctions { .. }
        | Statement::ShowCollation { .. } => ok(Read, "SHOW"),
        Statement::ExplainTable { .. } => ok(Read, "DESCRIBE"),

        // forbidden, with reasons
        Statement::StartTransaction { .. } => Err(forbidden("BEGIN", TRANSACTIONS)),
        Statement::Commit { .. } => Err(forbidden("COMMIT", TRANSACTIONS)),
        Statement::Rollback { .. } => Err(forbidden("ROLLBACK", TRANSACTIONS)),
        Statement::Savepoint { .. } => Err(forbidden("SAVEPOINT", TRANSACTIONS)),
        Statement::ReleaseSavepoint { .. } => Err(forbidden("RELEASE SAVEPOINT", TRANSACTIONS)),
        Statement::Set(_) => Err(forbidden("SET", SESSION)),
        Statement::Reset(_) => Err(forbidden("RESET", SESSION)),
        Statement::Discard { .. } => Err(forbidden("DISCARD", SESSION)),
        Statement::Use(_) => Err(forbidden("USE", SESSION)),
        Statement::Copy { .. } => Err(forbidden("COPY", FILE_ACCESS)),
        Statement::AttachDatabase { .. } => Err(forbidden(
            "ATTACH DATABASE",
            "it opens other database files on the host",
        )),
        Statement::Load { .. } => Err(forbidden("LOAD", NATIVE)),
        Statement::CreateExtension(_) => Err(forbidden("CREATE EXTENSION", NATIVE)),
        Statement::DropExtension(_) => Err(forbidden("DROP EXTENSION", NATIVE)),
        Statement::Call(_) => Err(forbidden("CALL", OPAQUE_CODE)),
        Statement::CreateFunction(_) => Err(forbidden("CREATE FUNCTION", OPAQUE_CODE)),
        Statement::CreateProcedure { .. } => Err(forbidden("CREATE PROCEDURE", OPAQUE_CODE)),
        Statement::AlterFunction(_) => Err(forbidden("ALTER FUNCTION", OPAQUE_CODE)),
        Statement::CreateOperator(_)
        | Statement::CreateOperatorFamily(_)
        | Statement::CreateOperatorClass(_)
        | Statement::AlterOperator(_)
        | Statement::AlterOperatorFamily(_)
        | Statement::AlterOperatorClass(_) => Err(forbidden(
            "an operator definition",
            "operators bind functions to syntax, hiding calls from the classifier",
        )),
        Statement::Grant(_) => Err(forbidden("GRANT", ACCESS_CONTROL)),
        Statement::Revoke(_) => Err(forbidden("REVOKE", ACCESS_CONTROL)),
        Statement::CreateRole(_) => Err(forbidden("CREATE ROLE", ACCESS_CONTROL)),
        Statement::AlterRole { .. } => Err(forbidden("ALTER ROLE", ACCESS_CONTROL)),
        Statement::CreateUser(_) => Err(forbidden("CREATE USER", ACCESS_CONTROL)),
        Statement::AlterUser(_) => Err(forbidden("ALTER USER", ACCESS_CONTROL)),
        Statement::CreatePolicy(_) => Err(forbidden("CREATE POLICY", ACCESS_CONTROL)),
        Statement::AlterPolicy(_) => Err(forbidden("ALTER POLICY", ACCESS_CONTROL)),
        Statement::DropPolicy(_) => Err(forbidden("DROP POLICY", ACCESS_CONTROL)),
        Statement::LISTEN { .. } => Err(forbidden("LISTEN", "notifications outlive the call")),
        Statement::UNLISTEN { .. } => Err(forbidden("UNLISTEN", "notifications outlive the call")),
        Statement::NOTIFY { .. } => Err(forbidden("NOTIFY", "notifications outlive the call")),
        Statement::Prepare { .. } => Err(forbidden(
            "PREPARE",
            "prepared statements are run by name, out of the classifier's sight",
        )),
        Statement::Execute { .. } => Err(forbidden(
            "EXECUTE",
            "prepared statements are run by name, out of the classifier's sight",
        )),
        Statement::Deallocate { .. } => Err(forbidden(
            "DEALLOCATE",
            "prepared statements are managed by the host",
        )),
        Statement::Declare { .. } | Statement::Fetch { .. } | Statement::Close { .. } => Err(
            forbidden("a cursor statement", "cursors are managed by the host"),
        ),
        Statement::Lock(_) | Statement::LockTables { .. } | Statement::UnlockTables => {
            Err(forbidden("LOCK", "explicit locks are managed by the host"))
        }
        Statement::CreateDatabase { .. } => Err(forbidden(
            "CREATE DATABASE",
            "databases are managed outside the sql capability",
        )),
        Statement::CreateServer(_) => Err(forbidden("CREATE SERVER", REMOTE)),
        other => Err(forbidden(leading_words(other), NOT_RECOGNISED)),
    }
}

/// The first words of a statement's SQL text, for messages.
fn leading_words(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    match words.as_slice() {
        [first, second, ..]
            if ["CREATE", "ALTER", "DROP"].contains(&first.to_ascii_uppercase().as_str()) =>
        {
            format!(
                "{} {}",
                first.to_ascii_uppercase(),
                second.to_ascii_uppercase()
            )
        }
        [first, ..] => first.to_ascii_uppercase(),
        [] => "statement".into(),
    }
}

/// The statement's first token as an upper-case unquoted keyword, if it is one.
fn leading_word(body: &[&Token]) -> Option<String> {
    match body.first() {
        Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

/// A refusal for statements the parser cannot read but whose first keyword
/// already says they are never allowed (e.g. `DO`, SQLite `DETACH`).
fn keyword_refusal(keyword: &str) -> Option<ClassifyError> {
    let reason = match keyword {
        "DO" => OPAQUE_CODE,
        "CALL" => OPAQUE_CODE,
        "ATTACH" | "DETACH" => "attaching and detaching database files is managed by the host",
        "LOAD" => NATIVE,
        "COPY" => FILE_ACCESS,
        "BEGIN" | "START" | "COMMIT" | "END" | "ABORT" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" => {
            TRANSACTIONS
        }
        "SET" | "RESET" | "DISCARD" => SESSION,
        "GRANT" | "REVOKE" | "REASSIGN" | "SECURITY" => ACCESS_CONTROL,
        "LISTEN" | "UNLISTEN" | "NOTIFY" => "notifications outlive the call",
        "PREPARE" | "EXECUTE" | "DEALLOCATE" => {
            "prepared statements are run by name, out of the classifier's sight"
        }
        "LOCK" => "explicit locks are managed by the host",
        "IMPORT" => REMOTE,
        _ => return None,
    };
    Some(forbidden(keyword, reason))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// What a case expects.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum X {
        Read,
        Maint,
        Ddl,
        Write,
        Session,
        Empty,
        Multi,
        Parse,
        Forbidden,
        /// Forbidden or a parse error: refused either way.
        Denied,
    }

    use Dialect::{Postgres as P, Sqlite as L};

    const CASES: &[(&str, Dialect, X)] = &[
        // --- empty / multiple statements -------------------------------
        ("", P, X::Empty),
        ("   \n\t ", L, X::Empty),
        (";", P, X::Empty),
        ("-- just a comment", P, X::Empty),
        ("/* only */ ;", L, X::Empty),
        ("SELECT 1;", P, X::Read),
        ("SELECT 1 ;  -- trailing comment", P, X::Read),
        ("SELECT 1; /* trailing */", L, X::Read),
        ("SELECT 1;;", P, X::Multi),
        (";;", P, X::Multi),
        ("; SELECT 1", L, X::Multi),
        ("SELECT 1; DROP TABLE t", P, X::Multi),
        ("SELECT 1; DROP TABLE t", L, X::Multi),
        (
            "SELECT * FROM t WHERE name = 'x'; DROP TABLE t; --'",
            P,
            X::Multi,
        ),
        (
            "SELECT * FROM t WHERE name = 'x'; DROP TABLE t; --'",
            L,
            X::Multi,
        ),
        ("SELECT 1 /* ; */; DROP TABLE t", P, X::Multi),
        ("SELECT 1 /* ; */; DROP TABLE t", L, X::Multi),
        ("SELECT 1 -- ;\n; DROP TABLE t", P, X::Multi),
        ("VACUUM; VACUUM", L, X::Multi),
        ("PRAGMA page_count; PRAGMA journal_mode = OFF", L, X::Multi),
        // a `;` inside strings, identifiers, comments and dollar quotes
        ("SELECT ';' AS semi", P, X::Read),
        ("SELECT 'a;b', \"c;d\" FROM t -- ;", P, X::Read),
        ("SELECT 'it''s; fine' FROM t", L, X::Read),
        ("SELECT [a;b] FROM t", L, X::Read),
        ("SELECT `a;b` FROM t", L, X::Read),
        ("SELECT $$; DROP TABLE t; $$", P, X::Read),
        ("SELECT $tag$ ; DROP TABLE t; $x$ $tag$", P, X::Read),
        ("SELECT E'\\'; DROP TABLE t; --'", P, X::Read),
        (
            "SELECT 1 /* outer /* inner */ ; DROP TABLE t; */",
            P,
            X::Read,
        ),
        // SQLite does not nest comments: the DROP is a second statement
        ("SELECT 1 /* /* */ ; DROP TABLE t; /* */", L, X::Multi),
        ("SELECT 1 /* unterminated", L, X::Parse),
        ("SELECT 'unterminated", P, X::Parse),
        ("SELECT $$ unterminated", P, X::Parse),
        ("SELECT 1 SELECT 2", P, X::Parse),
        ("SELECT 1\0; DROP TABLE t", L, X::Parse),
        ("SELECT 1 \0 DROP TABLE t", P, X::Parse),
        ("SELECT\x0bpg_sleep(1)", P, X::Forbidden),
        ("SELECT\u{a0}pg_sleep(1)", P, X::Denied),
        // lexical forms the server could read differently
        ("SELECT U&\"pg\\005fsleep\"(10)", P, X::Forbidden),
        ("SELECT u&\"d\\0061t\\0061\" FROM t", P, X::Forbidden),
        ("SELECT 'a\\'', pg_catalog.version() --'", P, X::Forbidden),
        ("SELECT 'a\\'', 1 --'", L, X::Read),
        ("SELECT 'C:\\path' AS p", P, X::Read),
        // --- read ----------------------------------------------------------
        ("SELECT * FROM t", P, X::Read),
        ("select * from t where id = $1", P, X::Read),
        ("SELECT * FROM t WHERE id = ?", L, X::Read),
        ("SELECT * FROM t WHERE id = :id", L, X::Read),
        ("VALUES (1, 2), (3, 4)", P, X::Read),
        ("WITH a AS (SELECT 1 AS x) SELECT x FROM a", P, X::Read),
        (
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
            L,
            X::Read,
        ),
        (
            "SELECT a FROM t UNION SELECT b FROM u ORDER BY 1 LIMIT 5",
            P,
            X::Read,
        ),
        (
            "SELECT count(*), now(), current_setting('work_mem') FROM pg_stat_activity",
            P,
            X::Read,
        ),
        (
            "SELECT pid, state FROM pg_catalog.pg_stat_activity WHERE datname = current_database()",
            P,
            X::Read,
        ),
        (
            "SELECT name, setting FROM pg_settings WHERE name = 'work_mem'",
            P,
            X::Read,
        ),
        (
            "SELECT pg_size_pretty(pg_total_relation_size('t'))",
            P,
            X::Read,
        ),
        ("SELECT currval('s'), lastval()", P, X::Read),
        ("SELECT * FROM generate_series(1, 3)", P, X::Read),
        ("SELECT * FROM pragma_table_info('t')", L, X::Read),
        (
            "SELECT name FROM sqlite_schema WHERE type = 'table'",
            L,
            X::Read,
        ),
        ("SHOW search_path", P, X::Read),
        ("SHOW ALL", P, X::Read),
        ("EXPLAIN SELECT * FROM t", P, X::Read),
        (
            "EXPLAIN (COSTS OFF, FORMAT JSON) SELECT * FROM t",
            P,
            X::Read,
        ),
        ("EXPLAIN DELETE FROM t", P, X::Read),
        ("EXPLAIN QUERY PLAN SELECT * FROM t WHERE a = 1", L, X::Read),
        ("EXPLAIN ANALYZE SELECT * FROM t", P, X::Read),
        ("PRAGMA page_count", L, X::Read),
        ("PRAGMA main.freelist_count", L, X::Read),
        ("pragma PAGE_SIZE;", L, X::Read),
        ("PRAGMA journal_mode", L, X::Read),
        ("PRAGMA table_info(t)", L, X::Read),
        ("PRAGMA main.table_info('t')", L, X::Read),
        ("PRAGMA index_list(\"t\")", L, X::Read),
        ("PRAGMA integrity_check", L, X::Read),
        ("PRAGMA integrity_check(10)", L, X::Read),
        ("PRAGMA quick_check", L, X::Read),
        ("PRAGMA database_list", L, X::Read),
        ("PRAGMA foreign_key_check", L, X::Read),
        // --- maintenance -------------------------------------------------
        ("VACUUM", P, X::Maint),
        ("vacuum", L, X::Maint),
        ("VACUUM main", L, X::Maint),
        ("VACUUM FULL", P, X::Maint),
        ("VACUUM FULL VERBOSE ANALYZE public.t", P, X::Maint),
        ("VACUUM (ANALYZE, VERBOSE) schema_a.tbl", P, X::Maint),
        (
            "VACUUM (PARALLEL 4, INDEX_CLEANUP AUTO, BUFFER_USAGE_LIMIT '256MB') t (a, b), u",
            P,
            X::Maint,
        ),
        ("VACUUM (SKIP_LOCKED true) \"Weird Table\";", P, X::Maint),
        ("ANALYZE", P, X::Maint),
        ("ANALYZE VERBOSE t", P, X::Maint),
        ("ANALYSE t (a)", P, X::Maint),
        ("ANALYZE main.t", L, X::Maint),
        ("REINDEX TABLE t", P, X::Maint),
        ("REINDEX TABLE CONCURRENTLY public.t", P, X::Maint),
        ("REINDEX (VERBOSE) INDEX CONCURRENTLY i", P, X::Maint),
        ("REINDEX DATABASE", P, X::Maint),
        ("REINDEX", L, X::Maint),
        ("REINDEX t_idx", L, X::Maint),
        ("CHECKPOINT", P, X::Maint),
        ("CLUSTER", P, X::Maint),
        ("CLUSTER VERBOSE t USING t_idx", P, X::Maint),
        ("PRAGMA optimize", L, X::Maint),
        ("PRAGMA optimize(0x10002)", L, X::Maint),
        ("PRAGMA wal_checkpoint", L, X::Maint),
        ("PRAGMA wal_checkpoint(TRUNCATE)", L, X::Maint),
        ("PRAGMA incremental_vacuum(100)", L, X::Maint),
        // maintenance refused or malformed
        ("VACUUM INTO '/tmp/copy.db'", L, X::Forbidden),
        ("VACUUM main INTO 'x.db'", L, X::Forbidden),
        ("VACUUM t; SELECT 1", P, X::Multi),
        ("VACUUM t SELECT pg_sleep(1)", P, X::Forbidden),
        ("VACUUM 'file'", L, X::Parse),
        ("VACUUM t (a", P, X::Parse),
        ("ANALYZE t WHERE 1 = 1", P, X::Parse),
        ("REINDEX t", P, X::Parse),
        ("CHECKPOINT now", P, X::Parse),
        ("CHECKPOINT", L, X::Parse),
        ("CLUSTER t", L, X::Parse),
        // --- ddl -----------------------------------------------------------
        (
            "CREATE TABLE t (id integer PRIMARY KEY, name text NOT NULL)",
            L,
            X::Ddl,
        ),
        (
            "CREATE TABLE IF NOT EXISTS s.t (id bigserial, at timestamptz DEFAULT now())",
            P,
            X::Ddl,
        ),
        (
            "CREATE TABLE t (id bigint DEFAULT nextval('t_seq'))",
            P,
            X::Ddl,
        ),
        ("CREATE TABLE t2 AS SELECT * FROM t", P, X::Ddl),
        (
            "CREATE TABLE t2 AS SELECT nextval('s') AS id",
            P,
            X::Forbidden,
        ),
        ("CREATE INDEX i ON t (a)", P, X::Ddl),
        (
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (lower(a)) WHERE b > 0",
            P,
            X::Ddl,
        ),
        ("CREATE INDEX i ON t (pg_sleep(a))", P, X::Forbidden),
        ("CREATE VIEW v AS SELECT * FROM t", P, X::Ddl),
        ("CREATE MATERIALIZED VIEW mv AS SELECT a FROM t", P, X::Ddl),
        (
            "CREATE VIEW v AS SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
            P,
            X::Forbidden,
        ),
        (
            "CREATE VIEW v AS SELECT pg_read_file('/etc/passwd')",
            P,
            X::Forbidden,
        ),
        ("CREATE SCHEMA s", P, X::Ddl),
        ("CREATE SEQUENCE s START 1", P, X::Ddl),
        ("CREATE TYPE mood AS ENUM ('sad', 'ok')", P, X::Ddl),
        ("CREATE TYPE pair AS (a int, b text)", P, X::Ddl),
        ("CREATE TYPE r AS RANGE (subtype = int4)", P, X::Forbidden),
        (
            "CREATE VIRTUAL TABLE docs USING fts5(title, body)",
            L,
            X::Ddl,
        ),
        ("CREATE VIRTUAL TABLE f USING fsdir", L, X::Forbidden),
        (
            "CREATE VIRTUAL TABLE c USING csv(filename = '/etc/passwd')",
            L,
            X::Denied,
        ),
        ("CREATE VIRTUAL TABLE c USING csv", L, X::Forbidden),
        (
            "CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION audit()",
            P,
            X::Ddl,
        ),
        (
            "CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION pg_terminate_backend(1)",
            P,
            X::Denied,
        ),
        ("DROP TRIGGER tr ON t", P, X::Ddl),
        // SQLite trigger bodies hold `;`: refused rather than guessed at
        (
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM u WHERE id = new.id; END",
            L,
            X::Forbidden,
        ),
        (
            "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END; DROP TABLE t",
            L,
            X::Forbidden,
        ),
        ("ALTER TABLE t ADD COLUMN c int", P, X::Ddl),
        ("ALTER TABLE t RENAME TO u", L, X::Ddl),
        (
            "ALTER TABLE t ALTER COLUMN c SET DEFAULT pg_terminate_backend(1)",
            P,
            X::Forbidden,
        ),
        ("ALTER INDEX i RENAME TO j", P, X::Ddl),
        ("DROP TABLE t", P, X::Ddl),
        ("DROP TABLE IF EXISTS t", L, X::Ddl),
        ("DROP INDEX CONCURRENTLY i", P, X::Ddl),
        ("drop index concurrently if exists s.i", P, X::Ddl),
        (
            "DROP INDEX CONCURRENTLY i WHERE pg_sleep(1)",
            P,
            X::Forbidden,
        ),
        ("DROP INDEX CONCURRENTLY i (a)", P, X::Parse),
        ("DROP INDEX CONCURRENTLY", P, X::Parse),
        ("DROP VIEW v", L, X::Ddl),
        ("DROP SCHEMA s CASCADE", P, X::Ddl),
        ("DROP FUNCTION f(int)", P, X::Ddl),
        ("TRUNCATE t", P, X::Ddl),
        ("TRUNCATE TABLE a, b RESTART IDENTITY", P, X::Ddl),
        ("COMMENT ON TABLE t IS 'x; y'", P, X::Ddl),
        ("SELECT * INTO new_t FROM t", P, X::Ddl),
        ("SELECT * INTO TEMP new_t FROM t WHERE a > 1", P, X::Ddl),
        // --- write ---------------------------------------------------------
        ("INSERT INTO t (a) VALUES (1)", P, X::Write),
        (
            "INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = excluded.b RETURNING *",
            P,
            X::Write,
        ),
        ("INSERT INTO t SELECT * FROM u", L, X::Write),
        ("INSERT OR REPLACE INTO t VALUES (1)", L, X::Write),
        ("REPLACE INTO t VALUES (1)", L, X::Write),
        ("UPDATE t SET a = 1 WHERE id = 2", P, X::Write),
        ("DELETE FROM t WHERE id = 2", L, X::Write),
        (
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a WHEN NOT MATCHED THEN INSERT (id, a) VALUES (s.id, s.a)",
            P,
            X::Write,
        ),
        ("SELECT * FROM t FOR UPDATE", P, X::Write),
        (
            "SELECT * FROM t WHERE id = 1 FOR SHARE SKIP LOCKED",
            P,
            X::Write,
        ),
        (
            "SELECT * FROM t WHERE id IN (SELECT id FROM u FOR UPDATE)",
            P,
            X::Write,
        ),
        (
            "WITH d AS (DELETE FROM t WHERE id = 1 RETURNING *) SELECT * FROM d",
            P,
            X::Write,
        ),
        (
            "WITH a AS (SELECT 1 AS x) INSERT INTO t SELECT x FROM a",
            P,
            X::Write,
        ),
        ("SELECT nextval('s')", P, X::Write),
        ("SELECT setval('s', 42)", P, X::Write),
        ("SELECT pg_catalog.NEXTVAL('s')", P, X::Write),
        ("SELECT lo_unlink(1234)", P, X::Write),
        ("EXPLAIN ANALYZE DELETE FROM t", P, X::Write),
        ("EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1", P, X::Write),
        ("EXPLAIN (ANALYZE false) DELETE FROM t", P, X::Write),
        ("EXPLAIN ANALYZE CREATE TABLE t2 AS SELECT 1", P, X::Ddl),
        // names count even under a plain EXPLAIN (conservative)
        ("EXPLAIN SELECT nextval('s')", P, X::Write),
        ("EXPLAIN SELECT pg_terminate_backend(1)", P, X::Session),
        (
            "UPDATE pg_settings SET setting = '0' WHERE name = 'statement_timeout'",
            P,
            X::Forbidden,
        ),
        (
            "INSERT INTO t SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
            P,
            X::Forbidden,
        ),
        // --- session control ------------------------------------------------
        (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state = 'idle'",
            P,
            X::Session,
        ),
        ("SELECT pg_cancel_backend(123)", P, X::Session),
        (
            "select PG_CATALOG.PG_TERMINATE_BACKEND(pid) from pg_stat_activity",
            P,
            X::Session,
        ),
        (
            "SELECT pg_catalog.\"pg_terminate_backend\"(42)",
            P,
            X::Session,
        ),
        (
            "SELECT * FROM pg_stat_activity WHERE pid IN (SELECT pg_cancel_backend(pid) FROM pg_stat_activity)",
            P,
            X::Session,
        ),
        (
            "SELECT x FROM t WHERE EXISTS (SELECT 1 FROM (SELECT pg_terminate_backend(1)) s)",
            P,
            X::Session,
        ),
        ("SELECT * FROM pg_terminate_backend(7)", P, X::Session),
        (
            "SELECT CASE WHEN a THEN pg_terminate_backend(1) END FROM t",
            P,
            X::Session,
        ),
        (
            "EXPLAIN ANALYZE SELECT pg_terminate_backend(1)",
            P,
            X::Session,
        ),
        (
            "SELECT pg_terminate_backend(1), nextval('s')",
            P,
            X::Forbidden,
        ),
        (
            "SELECT pg_terminate_backend(pid) FROM t FOR UPDATE",
            P,
            X::Forbidden,
        ),
        // --- forbidden: transactions and session settings -------------------
        ("BEGIN", P, X::Forbidden),
        ("BEGIN IMMEDIATE", L, X::Forbidden),
        ("START TRANSACTION READ WRITE", P, X::Forbidden),
        ("COMMIT", P, X::Forbidden),
        ("END", P, X::Forbidden),
        ("ABORT", P, X::Forbidden),
        ("ROLLBACK", L, X::Forbidden),
        ("ROLLBACK TO SAVEPOINT a", P, X::Forbidden),
        ("SAVEPOINT a", L, X::Forbidden),
        ("RELEASE SAVEPOINT a", L, X::Forbidden),
        ("SET statement_timeout = 0", P, X::Forbidden),
        ("SET LOCAL lock_timeout TO '1s'", P, X::Forbidden),
        ("set transaction read write", P, X::Forbidden),
        ("SET ROLE postgres", P, X::Forbidden),
        ("SET SESSION AUTHORIZATION postgres", P, X::Forbidden),
        ("RESET ALL", P, X::Forbidden),
        ("RESET statement_timeout", P, X::Forbidden),
        ("DISCARD ALL", P, X::Forbidden),
        (
            "SELECT set_config('statement_timeout', '0', false)",
            P,
            X::Forbidden,
        ),
        // --- forbidden: files, code, access control, misc --------------------
        ("COPY t TO '/tmp/out.csv'", P, X::Forbidden),
        ("COPY t FROM PROGRAM 'curl evil'", P, X::Forbidden),
        ("COPY (SELECT 1) TO STDOUT", P, X::Forbidden),
        ("ATTACH DATABASE '/etc/x.db' AS x", L, X::Forbidden),
        ("DETACH DATABASE x", L, X::Forbidden),
        ("LOAD 'plpython3u'", P, X::Forbidden),
        ("SELECT load_extension('/tmp/evil.so')", L, X::Forbidden),
        ("DO $$ BEGIN PERFORM pg_sleep(1); END $$", P, X::Forbidden),
        ("DO LANGUAGE plpgsql 'BEGIN END'", P, X::Forbidden),
        ("CALL p(1)", P, X::Forbidden),
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            P,
            X::Forbidden,
        ),
        (
            "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql AS $$ DELETE FROM t $$",
            P,
            X::Denied,
        ),
        ("CREATE EXTENSION dblink", P, X::Forbidden),
        ("GRANT SELECT ON t TO bob", P, X::Forbidden),
        ("REVOKE ALL ON t FROM bob", P, X::Forbidden),
        ("CREATE ROLE bob LOGIN", P, X::Forbidden),
        ("ALTER ROLE bob SUPERUSER", P, X::Forbidden),
        ("CREATE USER bob", P, X::Forbidden),
        ("DROP ROLE bob", P, X::Forbidden),
        ("DROP DATABASE prod", P, X::Forbidden),
        ("CREATE DATABASE x", P, X::Forbidden),
        ("LISTEN chan", P, X::Forbidden),
        ("NOTIFY chan, 'x'", P, X::Forbidden),
        ("UNLISTEN *", P, X::Forbidden),
        ("SELECT pg_notify('chan', 'x')", P, X::Forbidden),
        ("PREPARE p AS DELETE FROM t", P, X::Forbidden),
        ("EXECUTE p", P, X::Forbidden),
        ("DEALLOCATE p", P, X::Forbidden),
        ("DEALLOCATE ALL", P, X::Forbidden),
        ("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", P, X::Forbidden),
        ("DECLARE c CURSOR FOR SELECT 1", P, X::Forbidden),
        ("USE other", P, X::Forbidden),
        ("PRAGMA journal_mode = OFF", L, X::Forbidden),
        ("PRAGMA journal_mode(WAL)", L, X::Forbidden),
        ("PRAGMA page_size = 4096", L, X::Forbidden),
        ("PRAGMA writable_schema = 1", L, X::Forbidden),
        ("PRAGMA query_only = 0", L, X::Forbidden),
        ("PRAGMA shrink_memory", L, X::Forbidden),
        ("PRAGMA key = 'secret'", L, X::Forbidden),
        ("PRAGMA page_count", P, X::Forbidden),
        ("PRAGMA table_info(t) extra", L, X::Parse),
        ("PRAGMA", L, X::Parse),
        // --- forbidden functions, anywhere ------------------------------------
        ("SELECT pg_read_file('/etc/passwd')", P, X::Forbidden),
        (
            "SELECT pg_read_binary_file('postgresql.conf')",
            P,
            X::Forbidden,
        ),
        ("SELECT * FROM pg_ls_dir('.')", P, X::Forbidden),
        (
            "SELECT * FROM t, LATERAL pg_ls_dir(t.path) d",
            P,
            X::Forbidden,
        ),
        ("SELECT pg_stat_file('base')", P, X::Forbidden),
        ("SELECT lo_import('/etc/passwd')", P, X::Forbidden),
        ("SELECT lo_export(1, '/tmp/x')", P, X::Forbidden),
        ("SELECT pg_reload_conf()", P, X::Forbidden),
        ("SELECT pg_rotate_logfile()", P, X::Forbidden),
        ("SELECT pg_promote()", P, X::Forbidden),
        ("SELECT pg_switch_wal()", P, X::Forbidden),
        (
            "SELECT * FROM dblink('host=evil', 'SELECT 1') AS t(a int)",
            P,
            X::Forbidden,
        ),
        ("SELECT dblink_exec('DROP TABLE t')", P, X::Forbidden),
        ("SELECT pg_sleep(10)", P, X::Forbidden),
        ("SELECT pg_sleep_for('1 hour')", P, X::Forbidden),
        ("SELECT PG_CATALOG.PG_SLEEP(1)", P, X::Forbidden),
        ("SELECT \"pg_sleep\"(1)", P, X::Forbidden),
        ("SELECT pg_advisory_lock(1)", P, X::Forbidden),
        (
            "SELECT query_to_xml('DELETE FROM t RETURNING 1', true, true, '')",
            P,
            X::Forbidden,
        ),
        ("SELECT pg_stat_reset()", P, X::Forbidden),
        (
            "SELECT * FROM pg_create_logical_replication_slot('s', 'pgoutput')",
            P,
            X::Forbidden,
        ),
        ("SELECT rolpassword FROM pg_authid", P, X::Forbidden),
        (
            "SELECT * FROM pg_catalog.pg_hba_file_rules",
            P,
            X::Forbidden,
        ),
        ("SELECT * FROM pg_file_settings", P, X::Forbidden),
        ("SELECT readfile('/etc/passwd')", L, X::Forbidden),
        (
            "SELECT * FROM t WHERE a IN (SELECT b FROM u WHERE c = (SELECT pg_sleep(1)))",
            P,
            X::Forbidden,
        ),
        (
            "SELECT (SELECT max(x) FROM (SELECT pg_read_file(f) AS x FROM files) s)",
            P,
            X::Forbidden,
        ),
        (
            "WITH a AS (SELECT pg_ls_dir('/') AS f) SELECT * FROM a",
            P,
            X::Forbidden,
        ),
        ("SELECT coalesce(NULL, pg_sleep(1)::text)", P, X::Forbidden),
        ("SELECT 1 ORDER BY pg_sleep(1)", P, X::Forbidden),
        (
            "SELECT count(*) FILTER (WHERE pg_sleep(1) IS NULL) FROM t",
            P,
            X::Forbidden,
        ),
        ("DELETE FROM t WHERE pg_sleep(1) IS NULL", P, X::Forbidden),
        ("UPDATE t SET a = pg_read_file('x')", P, X::Forbidden),
        ("EXPLAIN SELECT pg_sleep(1)", P, X::Forbidden),
        ("SELECT pg_sleep(1); SELECT 1", P, X::Multi),
        // names in strings are data, not calls
        (
            "SELECT * FROM t WHERE note = 'pg_sleep(1); pg_terminate_backend(1)'",
            P,
            X::Read,
        ),
        ("SELECT $$pg_read_file('/etc/passwd')$$", P, X::Read),
        ("SELECT 'load_extension' AS name", L, X::Read),
        // --- unrecognised: denied ---------------------------------------------
        ("REFRESH MATERIALIZED VIEW mv", P, X::Denied),
        ("ALTER SYSTEM SET work_mem = '1GB'", P, X::Denied),
        ("SECURITY LABEL ON TABLE t IS 'x'", P, X::Forbidden),
        (
            "IMPORT FOREIGN SCHEMA s FROM SERVER x INTO y",
            P,
            X::Forbidden,
        ),
        ("CREATE SERVER s FOREIGN DATA WRAPPER w", P, X::Forbidden),
        ("CREATE FOREIGN TABLE f (a int) SERVER s", P, X::Denied),
        (
            "CREATE RULE r AS ON SELECT TO t DO INSTEAD SELECT 1",
            P,
            X::Denied,
        ),
        (
            "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()",
            P,
            X::Denied,
        ),
        ("CREATE LANGUAGE plperlu", P, X::Denied),
        ("REASSIGN OWNED BY a TO b", P, X::Forbidden),
        ("KILL 12", P, X::Denied),
        ("hello world", P, X::Parse),
        ("SELECT FROM WHERE", L, X::Denied),
    ];

    fn kind(result: &Result<Classified, ClassifyError>) -> X {
        match result {
            Ok(c) => match c.class {
                CapabilityClass::Read => X::Read,
                CapabilityClass::Maintenance => X::Maint,
                CapabilityClass::Ddl => X::Ddl,
                CapabilityClass::Write => X::Write,
                CapabilityClass::SessionControl => X::Session,
            },
            Err(ClassifyError::Empty) => X::Empty,
            Err(ClassifyError::MultipleStatements { .. }) => X::Multi,
            Err(ClassifyError::Parse(_)) => X::Parse,
            Err(ClassifyError::Forbidden { .. }) => X::Forbidden,
        }
    }

    #[test]
    fn table() {
        let mut failures = Vec::new();
        for (sql, dialect, expected) in CASES {
            let result = classify(sql, *dialect);
            let got = kind(&result);
            let ok = match expected {
                X::Denied => matches!(got, X::Forbidden | X::Parse),
                other => got == *other,
            };
            if !ok {
                failures.push(format!(
                    "{dialect:?} {sql:?}: expected {expected:?}, got {result:?}"
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    fn op(sql: &str, dialect: Dialect) -> String {
        classify(sql, dialect).unwrap().operation
    }

    #[test]
    fn operations() {
        let cases = [
            ("select 1", P, "SELECT"),
            ("VALUES (1)", P, "VALUES"),
            ("SELECT * FROM t FOR UPDATE", P, "SELECT FOR UPDATE"),
            ("SELECT * FROM t FOR SHARE", P, "SELECT FOR SHARE"),
            ("SELECT * INTO x FROM t", P, "SELECT INTO"),
            ("SHOW work_mem", P, "SHOW"),
            ("EXPLAIN SELECT 1", P, "EXPLAIN"),
            ("EXPLAIN ANALYZE DELETE FROM t", P, "EXPLAIN ANALYZE DELETE"),
            ("vacuum (analyze) t", P, "VACUUM"),
            ("ANALYSE t", P, "ANALYZE"),
            ("REINDEX INDEX CONCURRENTLY i", P, "REINDEX"),
            ("CHECKPOINT", P, "CHECKPOINT"),
            ("CLUSTER t USING i", P, "CLUSTER"),
            ("PRAGMA table_info(t)", L, "PRAGMA"),
            ("PRAGMA optimize", L, "PRAGMA"),
            ("CREATE INDEX CONCURRENTLY i ON t (a)", P, "CREATE INDEX"),
            ("CREATE TABLE t (a int)", L, "CREATE TABLE"),
            (
                "CREATE MATERIALIZED VIEW v AS SELECT 1",
                P,
                "CREATE MATERIALIZED VIEW",
            ),
            ("DROP TABLE t", P, "DROP TABLE"),
            ("DROP MATERIALIZED VIEW v", P, "DROP MATERIALIZED VIEW"),
            ("DROP INDEX i", L, "DROP INDEX"),
            ("DROP INDEX CONCURRENTLY i", P, "DROP INDEX"),
            ("ALTER TABLE t ADD COLUMN b int", P, "ALTER TABLE"),
            ("TRUNCATE t", P, "TRUNCATE"),
            ("COMMENT ON COLUMN t.a IS 'x'", P, "COMMENT"),
            ("insert into t values (1)", P, "INSERT"),
            ("REPLACE INTO t VALUES (1)", L, "REPLACE"),
            ("UPDATE t SET a = 1", L, "UPDATE"),
            ("DELETE FROM t", P, "DELETE"),
            (
                "MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE",
                P,
                "MERGE",
            ),
            (
                "WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a",
                P,
                "INSERT",
            ),
            ("SELECT pg_terminate_backend(1)", P, "SELECT"),
        ];
        for (sql, dialect, expected) in cases {
            assert_eq!(op(sql, dialect), expected, "{sql}");
        }
    }

    #[test]
    fn multiple_statement_counts() {
        let count = |sql: &str| match classify(sql, P) {
            Err(ClassifyError::MultipleStatements { count }) => count,
            other => panic!("{sql}: {other:?}"),
        };
        assert_eq!(count("SELECT 1; SELECT 2"), 2);
        assert_eq!(count("SELECT 1; SELECT 2; SELECT 3;"), 3);
        assert_eq!(count("SELECT 1;;"), 2);
        assert_eq!(
            count("SELECT * FROM t WHERE name = 'x'; DROP TABLE t; --'"),
            2
        );
        let e = classify("SELECT 1; SELECT 2", P).unwrap_err();
        assert_eq!(
            e.to_string(),
            "2 statements in one call; send one statement per call"
        );
    }

    #[test]
    fn forbidden_messages_name_the_culprit() {
        let message = |sql: &str, dialect| classify(sql, dialect).unwrap_err().to_string();
        assert!(message("SELECT pg_catalog.PG_SLEEP(1)", P).starts_with("pg_sleep is not allowed"));
        assert!(message("BEGIN", P).contains("the host owns transactions"));
        assert!(message("SET work_mem = '1GB'", P).contains("session settings"));
        assert!(message("VACUUM INTO 'x'", L).starts_with("VACUUM INTO is not allowed"));
        assert!(message("PRAGMA journal_mode = OFF", L).contains("journal_mode"));
        assert!(message("DO $$ BEGIN END $$", P).starts_with("DO is not allowed"));
        assert!(message("DETACH DATABASE x", L).starts_with("DETACH is not allowed"));
        assert!(
            message("INSERT INTO t SELECT pg_terminate_backend(1)", P)
                .contains("combines write with session-control")
        );
        assert_eq!(classify("", P).unwrap_err().to_string(), "empty statement");
        assert!(message("SELECT 'x", P).starts_with("cannot parse statement: "));
    }

    #[test]
    fn every_class_is_reachable_in_both_dialects_where_it_applies() {
        for dialect in [P, L] {
            assert_eq!(
                classify("SELECT 1", dialect).unwrap().class,
                CapabilityClass::Read
            );
            assert_eq!(
                classify("VACUUM", dialect).unwrap().class,
                CapabilityClass::Maintenance
            );
            assert_eq!(
                classify("CREATE TABLE t (a int)", dialect).unwrap().class,
                CapabilityClass::Ddl
            );
            assert_eq!(
                classify("DELETE FROM t", dialect).unwrap().class,
                CapabilityClass::Write
            );
        }
        assert_eq!(
            classify("SELECT pg_terminate_backend(1)", P).unwrap().class,
            CapabilityClass::SessionControl
        );
    }

    #[test]
    fn deeply_nested_input_is_an_error_not_a_crash() {
        let deep = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(matches!(classify(&deep, P), Err(ClassifyError::Parse(_))));
        let deep = format!("SELECT {}1", "- ".repeat(5000));
        assert!(matches!(classify(&deep, P), Err(ClassifyError::Parse(_))));
        let deep = format!("SELECT 1 WHERE {}", "NOT ".repeat(5000) + "true");
        assert!(matches!(classify(&deep, L), Err(ClassifyError::Parse(_))));
    }

    #[test]
    fn quote_ident_cases() {
        assert_eq!(quote_ident("t").unwrap(), "\"t\"");
        assert_eq!(quote_ident("Mixed Case").unwrap(), "\"Mixed Case\"");
        assert_eq!(quote_ident("a\"b").unwrap(), "\"a\"\"b\"");
        assert_eq!(quote_ident("\"").unwrap(), "\"\"\"\"");
        assert_eq!(
            quote_ident("x; DROP TABLE t; --").unwrap(),
            "\"x; DROP TABLE t; --\""
        );
        assert_eq!(quote_ident("naïve ☃").unwrap(), "\"naïve ☃\"");
        assert_eq!(quote_ident("select").unwrap(), "\"select\"");
        assert!(matches!(
            quote_ident("a\0b"),
            Err(ClassifyError::Forbidden { .. })
        ));
        assert!(matches!(
            quote_ident(""),
            Err(ClassifyError::Forbidden { .. })
        ));
    }

    #[test]
    fn quoted_identifiers_round_trip_through_the_classifier() {
        for name in [
            "t",
            "a\"b",
            "x; DROP TABLE t; --",
            "pg_settings'",
            "a$$b",
            "*/ --",
        ] {
            let q = quote_ident(name).unwrap();
            for dialect in [P, L] {
                let sql = format!("SELECT * FROM {q}");
                assert_eq!(
                    classify(&sql, dialect).unwrap().class,
                    CapabilityClass::Read,
                    "{sql}"
                );
            }
        }
    }
}

#[cfg(test)]
mod query_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_plain_query_is_cut_before_its_trailing_semicolon_and_comments() {
        for (sql, body) in [
            ("SELECT 1", "SELECT 1"),
            ("SELECT 1;", "SELECT 1"),
            ("SELECT 1 ; -- done\n", "SELECT 1"),
            ("SELECT 'ä€𝄞' AS x /* ; */ ;", "SELECT 'ä€𝄞' AS x"),
            ("SELECT 1,\r\n  'é'\r\n;\r\n", "SELECT 1,\r\n  'é'"),
            (
                "\tWITH a AS (SELECT 1) SELECT * FROM a;",
                "\tWITH a AS (SELECT 1) SELECT * FROM a",
            ),
            ("VALUES (1), ('ü');", "VALUES (1), ('ü')"),
            ("SELECT $$a;b$$", "SELECT $$a;b$$"),
        ] {
            let c = classify(sql, Dialect::Postgres).unwrap();
            let n = c
                .query_len
                .unwrap_or_else(|| panic!("{sql:?}: no query_len"));
            assert_eq!(&sql[..n], body, "{sql:?}");
        }
        for sql in ["EXPLAIN SELECT 1", "SHOW work_mem", "VACUUM t"] {
            assert_eq!(
                classify(sql, Dialect::Postgres).unwrap().query_len,
                None,
                "{sql}"
            );
        }
    }

    #[test]
    fn every_called_function_is_listed_with_its_schema() {
        let c = classify(
            "SELECT now(), pg_catalog.random(), \"MyFn\"(1) FROM generate_series(1, 2) g \
             WHERE EXISTS (SELECT app.f() FROM t) AND Lower(x) = 'a'",
            Dialect::Postgres,
        )
        .unwrap();
        for f in [
            vec!["now"],
            vec!["pg_catalog", "random"],
            vec!["MyFn"],
            vec!["generate_series"],
            vec!["app", "f"],
            vec!["lower"],
        ] {
            let f: Vec<String> = f.into_iter().map(String::from).collect();
            assert!(
                c.functions.contains(&f),
                "{f:?} missing from {:?}",
                c.functions
            );
        }
        // EXPLAIN lists its statement's functions.
        let c = classify("EXPLAIN SELECT app.f()", Dialect::Postgres).unwrap();
        assert_eq!(c.functions, vec![vec!["app".to_string(), "f".to_string()]]);
    }

    #[test]
    fn sql_from_text_and_xid_assigners_are_not_reads() {
        for sql in [
            "SELECT ts_rewrite('a'::tsquery, 'SELECT 1')",
            "SELECT table_to_xml('t', true, true, '')",
            "SELECT schema_to_xmlschema('public', true, true, '')",
            "SELECT database_to_xml(true, true, '')",
            "SELECT query_to_xml_and_xmlschema('select 1', true, true, '')",
        ] {
            assert!(
                matches!(
                    classify(sql, Dialect::Postgres),
                    Err(ClassifyError::Forbidden { .. })
                ),
                "{sql}"
            );
        }
        for sql in [
            "SELECT txid_current()",
            "SELECT pg_catalog.pg_current_xact_id()",
        ] {
            assert_eq!(
                classify(sql, Dialect::Postgres).unwrap().class,
                CapabilityClass::Write,
                "{sql}"
            );
        }
    }
}
