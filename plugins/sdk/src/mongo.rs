//! MongoDB commands and cursors against a `mongodb` target
//! (`warden:plugin/mongo`): [`Mongo`] for the calls, [`Cursor`] for reading a
//! `find` or `aggregate` batch by batch.
//!
//! Documents cross the boundary as BSON bytes. The `*_raw` methods take and
//! return those bytes and are always there; with the crate feature `bson`
//! the typed methods take and return `bson::Document` (re-exported here as
//! `Document`, with the `bson::doc!` macro as `mongo::doc!`) and
//! `document_from_json` / `document_to_json` convert MongoDB Extended JSON.
//!
//! The host classifies every command (`find` is `read`, `createIndexes` is
//! `ddl`, `compact` is `maintenance`, `insert` is `write`, ...) and checks it
//! against the grant; in dry-run a command above `read` is not sent and comes
//! back with [`Outcome::Planned`] and the reply `{ "ok": 1.0, "planned": true }`.
//!
//! ```ignore
//! use warden_sdk::mongo::doc;
//!
//! let mongo = ctx.mongo();
//! let stats = mongo.run_command("app", &doc! { "dbStats": 1 })?;
//! let mut cursor = mongo.find("app", "orders", doc! { "status": "open" })?;
//! for order in cursor.documents(500) {
//!     let order = order?;
//!     // ...
//! }
//! ```

use crate::bindings::warden::plugin::mongo as wit;
use crate::{CapabilityClass, Error};

pub use wit::{Batch as RawBatch, CommandReply as RawCommandReply, Outcome};

#[cfg(feature = "bson")]
pub use bson::{self, Bson, Document, doc};

/// MongoDB calls on one target. Get one from
/// [`Context::mongo`](crate::Context::mongo) or
/// [`Context::mongo_on`](crate::Context::mongo_on).
///
/// `database` arguments name a database of the target; an empty one means
/// the database named in the target's URL.
#[derive(Clone, Copy, Debug)]
pub struct Mongo<'a> {
    target: &'a str,
}

impl<'a> Mongo<'a> {
    /// MongoDB calls on `target`.
    pub fn new(target: &'a str) -> Self {
        Mongo { target }
    }

    /// The target these calls go to.
    pub fn target(&self) -> &'a str {
        self.target
    }

    /// Runs one command given as BSON bytes; the reply stays BSON bytes.
    pub fn run_command_raw(
        &self,
        database: &str,
        command: &[u8],
    ) -> Result<RawCommandReply, Error> {
        wit::run_command(self.target, database, command)
    }

    /// Opens a cursor for a reading `find` or `aggregate` given as BSON bytes.
    pub fn open_cursor_raw(&self, database: &str, command: &[u8]) -> Result<Cursor, Error> {
        wit::open_cursor(self.target, database, command).map(Cursor::new)
    }

    /// Classifies a command given as BSON bytes the way the host would,
    /// without running it.
    pub fn classify_raw(&self, command: &[u8]) -> Result<CapabilityClass, Error> {
        wit::classify(command)
    }
}

#[cfg(feature = "bson")]
impl Mongo<'_> {
    /// Runs one command (`{ "dbStats": 1 }`, `{ "createIndexes": ... }`) on
    /// `database`. In dry-run a command above `read` comes back planned.
    pub fn run_command(&self, database: &str, command: &Document) -> Result<CommandReply, Error> {
        let bytes = encode(command)?;
        let raw = self.run_command_raw(database, &bytes)?;
        CommandReply::try_from(raw)
    }

    /// Opens a cursor for a reading `find` or `aggregate` command (an
    /// aggregation with `$out` or `$merge` is refused: use
    /// [`Mongo::run_command`]).
    pub fn open_cursor(&self, database: &str, command: &Document) -> Result<Cursor, Error> {
        self.open_cursor_raw(database, &encode(command)?)
    }

    /// `{ "find": collection, "filter": filter }` as a cursor.
    pub fn find(
        &self,
        database: &str,
        collection: &str,
        filter: Document,
    ) -> Result<Cursor, Error> {
        self.open_cursor(database, &doc! { "find": collection, "filter": filter })
    }

    /// `{ "aggregate": collection, "pipeline": pipeline, "cursor": {} }` as a
    /// cursor.
    pub fn aggregate(
        &self,
        database: &str,
        collection: &str,
        pipeline: impl IntoIterator<Item = Document>,
    ) -> Result<Cursor, Error> {
        let pipeline: Vec<Document> = pipeline.into_iter().collect();
        self.open_cursor(
            database,
            &doc! { "aggregate": collection, "pipeline": pipeline, "cursor": {} },
        )
    }

    /// Classifies a command the way the host would, without running it.
    pub fn classify(&self, command: &Document) -> Result<CapabilityClass, Error> {
        self.classify_raw(&encode(command)?)
    }
}

impl RawCommandReply {
    /// True when the command was sent to the server.
    pub fn is_executed(&self) -> bool {
        self.outcome == Outcome::Executed
    }

    /// True when dry-run recorded it as planned instead.
    pub fn is_planned(&self) -> bool {
        self.outcome == Outcome::Planned
    }
}

/// The result of [`Mongo::run_command`], with the reply decoded.
#[cfg(feature = "bson")]
#[derive(Clone, Debug)]
pub struct CommandReply {
    /// Whether the command was sent, or only planned (dry-run).
    pub outcome: Outcome,
    /// The class the host gave the command.
    pub class: CapabilityClass,
    /// The server's reply; `{ "ok": 1.0, "planned": true }` when planned.
    pub reply: Document,
}

#[cfg(feature = "bson")]
impl TryFrom<RawCommandReply> for CommandReply {
    type Error = Error;

    fn try_from(raw: RawCommandReply) -> Result<Self, Error> {
        Ok(CommandReply {
            outcome: raw.outcome,
            class: raw.class,
            reply: decode(&raw.reply).map_err(|e| e.context("decoding the command's reply"))?,
        })
    }
}

#[cfg(feature = "bson")]
impl CommandReply {
    /// True when the command was sent to the server.
    pub fn is_executed(&self) -> bool {
        self.outcome == Outcome::Executed
    }

    /// True when dry-run recorded it as planned instead.
    pub fn is_planned(&self) -> bool {
        self.outcome == Outcome::Planned
    }

    /// The reply's `ok` field is 1 (as a double, an integer or `true`).
    pub fn ok(&self) -> bool {
        self.reply
            .get("ok")
            .and_then(number)
            .is_some_and(|n| n == 1.0)
    }

    /// A numeric field of the reply as `f64` (`count`, `n`, `storageSize`,
    /// ...), whatever its BSON number type; `None` when it is absent or not a
    /// number.
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.reply.get(key).and_then(number)
    }

    /// A numeric field of the reply as `i64` (doubles must be whole).
    pub fn get_i64(&self, key: &str) -> Option<i64> {
        self.reply.get(key).and_then(integer)
    }
}

/// Any BSON number (or boolean) as `f64`.
#[cfg(feature = "bson")]
pub fn number(value: &Bson) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)]
    match value {
        Bson::Double(x) => Some(*x),
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Boolean(b) => Some(f64::from(u8::from(*b))),
        Bson::Decimal128(d) => d.to_string().parse().ok(),
        _ => None,
    }
}

/// A BSON integer (or whole double) as `i64`.
#[cfg(feature = "bson")]
pub fn integer(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        // i64::MAX as f64 rounds up to 2^63, hence the strict upper bound.
        #[allow(clippy::cast_possible_truncation)]
        Bson::Double(x)
            if x.is_finite()
                && x.fract() == 0.0
                && *x >= i64::MIN as f64
                && *x < i64::MAX as f64 =>
        {
            Some(*x as i64)
        }
        _ => None,
    }
}

/// A server cursor (from [`Mongo::open_cursor_raw`], or with the feature
/// `bson` from `Mongo::open_cursor`, `Mongo::find` or `Mongo::aggregate`).
/// Dropping it closes it on the server; the host closes every cursor at the
/// end of the run anyway.
#[derive(Debug)]
pub struct Cursor {
    inner: wit::Cursor,
    exhausted: bool,
}

impl Cursor {
    fn new(inner: wit::Cursor) -> Self {
        Cursor {
            inner,
            exhausted: false,
        }
    }

    /// True once a batch said the cursor has no more documents (it is then
    /// closed on the server, and further batches are empty).
    pub fn is_exhausted(&self) -> bool {
        self.exhausted
    }

    /// The next documents as BSON bytes, at most `max_documents` (0: the
    /// grant's `max_rows`). An exhausted cursor returns an empty, exhausted
    /// batch without calling the host.
    pub fn next_batch_raw(&mut self, max_documents: u32) -> Result<RawBatch, Error> {
        if self.exhausted {
            return Ok(RawBatch {
                documents: Vec::new(),
                exhausted: true,
            });
        }
        let batch = self.inner.next_batch(max_documents)?;
        self.exhausted = batch.exhausted;
        Ok(batch)
    }

    /// The next documents, decoded, at most `max_documents` (0: the grant's
    /// `max_rows`); empty once the cursor is exhausted.
    #[cfg(feature = "bson")]
    pub fn next_batch(&mut self, max_documents: u32) -> Result<Vec<Document>, Error> {
        self.next_batch_raw(max_documents)?
            .documents
            .iter()
            .map(|bytes| decode(bytes))
            .collect()
    }

    /// Every remaining document, fetched `batch_size` at a time (0: the
    /// grant's `max_rows`). An error ends the iteration after it is yielded.
    #[cfg(feature = "bson")]
    pub fn documents(&mut self, batch_size: u32) -> Documents<'_> {
        Documents {
            cursor: self,
            batch_size,
            pending: std::collections::VecDeque::new(),
            failed: false,
        }
    }
}

/// The iterator of [`Cursor::documents`].
#[cfg(feature = "bson")]
#[derive(Debug)]
pub struct Documents<'c> {
    cursor: &'c mut Cursor,
    batch_size: u32,
    pending: std::collections::VecDeque<Vec<u8>>,
    failed: bool,
}

#[cfg(feature = "bson")]
impl Iterator for Documents<'_> {
    type Item = Result<Document, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        while self.pending.is_empty() {
            if self.cursor.is_exhausted() {
                return None;
            }
            match self.cursor.next_batch_raw(self.batch_size) {
                // The host returns at least one document while any is left:
                // an empty batch of a live cursor would loop forever.
                Ok(batch) if batch.documents.is_empty() && !batch.exhausted => {
                    self.failed = true;
                    return Some(Err(Error::other(
                        "the host returned an empty batch for a cursor that is not exhausted",
                    )));
                }
                Ok(batch) => self.pending.extend(batch.documents),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        let bytes = self.pending.pop_front()?;
        let document = decode(&bytes);
        self.failed = document.is_err();
        Some(document)
    }
}

/// Encodes a document as BSON bytes; an error is `invalid-input`.
#[cfg(feature = "bson")]
pub fn encode(document: &Document) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    document
        .to_writer(&mut bytes)
        .map_err(|e| Error::invalid_input(format!("cannot encode the document as BSON: {e}")))?;
    Ok(bytes)
}

/// Decodes BSON bytes into a document; an error is `other`.
#[cfg(feature = "bson")]
pub fn decode(bytes: &[u8]) -> Result<Document, Error> {
    Document::from_reader(bytes)
        .map_err(|e| Error::other(format!("the host returned invalid BSON: {e}")))
}

/// Parses MongoDB Extended JSON (canonical or relaxed: `{"$oid": ...}`,
/// `{"$date": ...}`, `{"$numberLong": "5"}`, ...) into a document; the text
/// must hold a JSON object. An error is `invalid-input`.
#[cfg(feature = "bson")]
pub fn document_from_json(text: &str) -> Result<Document, Error> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::invalid_input(format!("not JSON: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(Error::invalid_input(
            "expected a JSON object (a document), got another JSON value",
        ));
    };
    Document::try_from(map)
        .map_err(|e| Error::invalid_input(format!("not valid MongoDB Extended JSON: {e}")))
}

/// A document as relaxed Extended JSON text (numbers as JSON numbers where
/// they fit, `{"$oid": ...}` for ids, `{"$date": "..."}` for dates).
#[cfg(feature = "bson")]
pub fn document_to_json(document: &Document) -> String {
    Bson::Document(document.clone())
        .into_relaxed_extjson()
        .to_string()
}

/// A document as canonical Extended JSON text (every number typed:
/// `{"$numberInt": "1"}`), which round-trips exactly.
#[cfg(feature = "bson")]
pub fn document_to_canonical_json(document: &Document) -> String {
    Bson::Document(document.clone())
        .into_canonical_extjson()
        .to_string()
}

#[cfg(all(test, feature = "bson"))]
mod tests {
    use super::*;

    #[test]
    fn bson_round_trip() {
        let d = doc! { "find": "orders", "filter": { "n": { "$gt": 5_i64 } }, "batchSize": 10 };
        let bytes = encode(&d).unwrap();
        assert_eq!(decode(&bytes).unwrap(), d);
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn extended_json() {
        let d = document_from_json(
            r#"{"insert": "t", "documents": [{"_id": {"$oid": "5f1d7f3e9c1e4b6a2c3d4e5f"}, "n": {"$numberLong": "7"}}]}"#,
        )
        .unwrap();
        let docs = d.get_array("documents").unwrap();
        let first = docs[0].as_document().unwrap();
        assert_eq!(first.get_i64("n").unwrap(), 7);
        assert!(matches!(first.get("_id"), Some(Bson::ObjectId(_))));
        let relaxed = document_to_json(&d);
        assert!(
            relaxed.contains(r#""$oid":"5f1d7f3e9c1e4b6a2c3d4e5f""#),
            "{relaxed}"
        );
        assert!(relaxed.contains(r#""n":7"#), "{relaxed}");
        let canonical = document_to_canonical_json(&d);
        assert!(canonical.contains(r#""$numberLong":"7""#), "{canonical}");
        assert_eq!(document_from_json(&canonical).unwrap(), d);

        let e = document_from_json("[1]").unwrap_err();
        assert!(e.is_invalid_input(), "{}", e.summary());
        assert!(document_from_json("{").unwrap_err().is_invalid_input());
    }

    #[test]
    fn reply_numbers() {
        let reply = CommandReply {
            outcome: Outcome::Executed,
            class: CapabilityClass::Read,
            reply: doc! { "ok": 1.0, "n": 3_i32, "size": 1.5e3, "big": 9_i64, "frac": 0.5 },
        };
        assert!(reply.ok() && reply.is_executed() && !reply.is_planned());
        assert_eq!(reply.get_i64("n"), Some(3));
        assert_eq!(reply.get_i64("size"), Some(1500));
        assert_eq!(reply.get_i64("frac"), None);
        assert_eq!(reply.get_f64("big"), Some(9.0));
        assert_eq!(reply.get_f64("missing"), None);
        let not_ok = CommandReply {
            reply: doc! { "ok": 0 },
            ..reply
        };
        assert!(!not_ok.ok());
    }
}
