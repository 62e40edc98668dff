//! `warden:plugin/mongo`: MongoDB commands and cursors, BSON as bytes
//! across the boundary, classified by the host like SQL statements.
//!
//! The walls, in order (the same as for `sql`):
//! 1. Size cap, then the bytes must be one well-formed BSON document.
//! 2. [`classify::classify`] decides the command's class from the document
//!    itself, walking every aggregation pipeline in it recursively (a `$out`
//!    or `$merge` at any depth makes a write); server-side JavaScript,
//!    user/role/replication/server control, unknown commands and unknown
//!    aggregation stages are refused for any grant, and so is nesting deeper
//!    than [`classify::MAX_NESTING`] levels (checked on the bytes before they
//!    are parsed).
//! 3. [`check`] refuses a class the plugin's grant for the target lacks,
//!    and `session-control` commands (`killOp`, `killSessions`, ...)
//!    whatever the grant: operations are killed through `sessions.kill-op`
//!    only, which looks them up first.
//! 4. Dry-run: anything above `read` is recorded as a planned action and
//!    not sent.
//! 5. Each run has its own client per target (`appName` `warden/<plugin>`),
//!    closed with its cursors when the run ends. Reads that take
//!    `maxTimeMS` get the grant's `statement_timeout` unless they ask for
//!    less; every call also has a client-side timeout.
//!
//! Replies and batches are capped by the grant's `max_result_bytes` and
//! `max_rows`; database errors are redacted before the guest or a record
//! sees them.

pub mod classify;

use super::call::{Call, Go, Hold};
use super::permission::{LocalCall, TargetCall, check_local};
use super::{HostState, RunEnv, denied, invalid};
use crate::capability::CapabilityClass;
use crate::config::Target;
use crate::host::bindings::types::{CapabilityClass as WitClass, DbError, Error};
use crate::host::bindings::warden::plugin::mongo::{
    Batch, CommandReply, Host, HostCursor, Outcome,
};
pub use crate::host::resources::MongoCursor;
use crate::policy::Grant;
use crate::runs::{Action, ActionState};
use bson::{Bson, Document, RawDocument, RawDocumentBuf};
use classify::MongoClassified;
use mongodb::Client;
use mongodb::options::ClientOptions;
use std::collections::HashMap;
use std::time::Duration;
use wasmtime::component::Resource;

/// Largest command accepted (MongoDB's own document limit).
pub const MAX_COMMAND: usize = 16 * 1024 * 1024;
/// How much of a command an action record keeps.
const ACTION_COMMAND_CHARS: usize = 4096;
/// Commands that take `maxTimeMS`; the host adds the grant's
/// `statement_timeout` when they do not ask for less.
const TAKES_MAX_TIME: [&str; 4] = ["find", "aggregate", "count", "distinct"];

/// A run's clients, one per target, closed at the end of the run.
#[derive(Default)]
pub struct MongoSessions {
    clients: HashMap<String, Client>,
}

impl MongoSessions {
    /// Closes every client (at the end of a run), without waiting for
    /// cursors the guest left open.
    pub async fn close(&mut self) {
        for (_, client) in self.clients.drain() {
            client.shutdown().immediate(true).await;
        }
    }
}

/// The run's MongoDB clients: none at start, shut down at the end.
impl super::capability::Capability for MongoSessions {
    fn finish<'a>(
        &'a mut self,
        _effects: &'a mut super::RunEffects,
    ) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(self.close())
    }

    /// Drops the target's client; the commands it was running stop at
    /// their `maxTimeMS` on the server.
    fn abandon<'a>(&'a mut self, target: &'a str) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Some(client) = self.clients.remove(target) {
                client.shutdown().immediate(true).await;
            }
        })
    }
}

fn parse_and_classify(
    command: &[u8],
) -> Result<(Document, RawDocumentBuf, MongoClassified), Error> {
    if command.len() > MAX_COMMAND {
        return Err(invalid(format!(
            "command is {} bytes; the limit is {MAX_COMMAND}",
            command.len()
        )));
    }
    let refused = |e: classify::MongoClassifyError| match e {
        classify::MongoClassifyError::Forbidden(..)
        | classify::MongoClassifyError::Unknown(_)
        | classify::MongoClassifyError::UnknownStage { .. } => denied(e.to_string()),
        other => invalid(other.to_string()),
    };
    // The nesting is checked on the bytes, without recursion, before the
    // parser (which recurses per level) sees them.
    let bytes = RawDocument::from_bytes(command)
        .map_err(|e| invalid(format!("the command is not a BSON document: {e}")))?;
    classify::check_raw_nesting(bytes).map_err(refused)?;
    let document = Document::from_reader(command)
        .map_err(|e| invalid(format!("the command is not a BSON document: {e}")))?;
    let classified = classify::classify(&document).map_err(refused)?;
    let raw = RawDocumentBuf::from_document(&document)
        .map_err(|e| invalid(format!("the command cannot be encoded: {e}")))?;
    Ok((document, raw, classified))
}

/// The command with `maxTimeMS` bounded by the grant's statement timeout,
/// for the reads that take it.
fn with_max_time(
    mut command: Document,
    raw: RawDocumentBuf,
    operation: &str,
    grant: &Grant,
) -> Result<RawDocumentBuf, Error> {
    if !TAKES_MAX_TIME.contains(&operation) {
        return Ok(raw);
    }
    let limit = i64::try_from(grant.statement_timeout.as_millis()).unwrap_or(i64::MAX);
    let asked = match command.get("maxTimeMS") {
        Some(Bson::Int32(v)) => Some(i64::from(*v)),
        Some(Bson::Int64(v)) => Some(*v),
        Some(Bson::Double(v)) => Some(*v as i64),
        _ => None,
    };
    if asked.is_some_and(|a| a > 0 && a <= limit) {
        return Ok(raw);
    }
    command.insert("maxTimeMS", Bson::Int64(limit));
    RawDocumentBuf::from_document(&command)
        .map_err(|e| invalid(format!("the command cannot be encoded: {e}")))
}

/// The database a call names, or the one in the target's URL.
fn database_of(env: &RunEnv, t: &Target, database: &str) -> Result<String, Error> {
    if !database.is_empty() {
        if database.contains(['/', '\\', '.', ' ', '"', '$', '\0']) || database.len() > 63 {
            return Err(invalid(format!("invalid database name {database:?}")));
        }
        return Ok(database.to_string());
    }
    let target = t.name.as_str();
    let parsed = mongodb::options::ConnectionString::parse(t.url.expose())
        .map_err(|e| redacted_error(env, target, &e))?;
    parsed.default_database.ok_or_else(|| {
        invalid(format!(
            "no database given, and the URL of target `{target}` names none"
        ))
    })
}

/// The run's client for `target`, created on first use.
pub(crate) async fn client<'s>(
    sessions: &'s mut MongoSessions,
    env: &RunEnv,
    t: &Target,
    grant: &Grant,
) -> Result<&'s Client, Error> {
    let target = t.name.as_str();
    let slot = match sessions.clients.entry(t.name.clone()) {
        std::collections::hash_map::Entry::Occupied(open) => return Ok(open.into_mut()),
        std::collections::hash_map::Entry::Vacant(slot) => slot,
    };
    let mut options = ClientOptions::parse(t.url.expose())
        .await
        .map_err(|e| redacted_error(env, target, &e))?;
    options.app_name = Some(format!("warden/{}", env.plugin));
    let wait = grant.statement_timeout.min(Duration::from_secs(10));
    options.server_selection_timeout = Some(wait);
    options.connect_timeout = Some(wait);
    let client = Client::with_options(options).map_err(|e| redacted_error(env, target, &e))?;
    Ok(slot.insert(client))
}

/// A driver error as the WIT error: the server's code when there is one,
/// the message redacted.
pub(crate) fn redacted_error(env: &RunEnv, target: &str, e: &mongodb::error::Error) -> Error {
    use mongodb::error::ErrorKind;
    let message = env.redactor.redact(&e.to_string());
    let code = match e.kind.as_ref() {
        ErrorKind::Command(c) => c.code.to_string(),
        ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => w.code.to_string(),
        _ => String::new(),
    };
    match code.as_str() {
        // MaxTimeMSExpired
        "50" => Error::Timeout(format!(
            "statement timeout reached on `{target}` ({message})"
        )),
        _ => Error::TargetError(DbError {
            code,
            message: format!("target `{target}`: {message}"),
        }),
    }
}

fn to_wit_class(c: CapabilityClass) -> WitClass {
    super::wit::to_wit_class(c)
}

fn timed_out(timeout: Duration) -> Error {
    Error::Timeout(format!(
        "the command did not finish within {}",
        humantime::format_duration(timeout)
    ))
}

/// The command as relaxed extended JSON for an action record, redacted and cut.
fn action_text(env: &RunEnv, database: &str, command: &Document) -> String {
    let json = Bson::Document(command.clone()).into_relaxed_extjson();
    let mut s = env.redactor.redact(&format!("db.{database}: {json}"));
    crate::text::truncate_utf8(&mut s, ACTION_COMMAND_CHARS);
    s
}

impl HostState {
    /// [`parse_and_classify`] in the run (denied in `describe`).
    fn parsed(&self, command: &[u8]) -> Result<(Document, RawDocumentBuf, MongoClassified), Error> {
        self.run_env()?;
        parse_and_classify(command)
    }

    /// `mongo.run-command` without the wasm boundary.
    pub async fn mongo_run_command(
        &mut self,
        target: &str,
        database: &str,
        command: &[u8],
    ) -> Result<CommandReply, Error> {
        let (command, raw, classified) = self.parsed(command)?;
        let classified = &classified;
        let class = classified.class;
        let ask = TargetCall::Mongo { target, class };
        let call = Call::db(
            "mongo.run_command",
            &classified.operation,
            target,
            class,
            ask,
        );
        self.call(call, |host, cx| {
            Box::pin(async move {
                let (env, grant) = (cx.env, cx.grant);
                let database = database_of(env, cx.target, database)?;
                let reply = |outcome, reply| CommandReply {
                    outcome,
                    class: to_wit_class(class),
                    reply,
                };
                if class.is_mutating() {
                    let exact = format!(
                        "db.{database}: {}",
                        Bson::Document(command.clone()).into_relaxed_extjson()
                    );
                    let action = Action::host(
                        target,
                        class,
                        action_text(env, &database, &command),
                        Vec::new(),
                        crate::runs::fingerprint(target, class, &exact, &[]),
                        ActionState::Executed,
                    );
                    if host.mutation(env, action, Hold::ToPlan)? == Go::Planned {
                        let planned = bson::to_vec(&bson::doc! { "ok": 1.0, "planned": true })
                            .map_err(|e| Error::Other(e.to_string()))?;
                        return Ok(reply(Outcome::Planned, planned));
                    }
                }
                let raw = with_max_time(command, raw, &classified.operation, grant)?;
                let max_bytes = usize::try_from(grant.max_result_bytes).unwrap_or(usize::MAX);
                let client = client(&mut host.mongo, env, cx.target, grant).await?;
                let db = client.database(&database);
                let answer = match tokio::time::timeout(cx.left(), db.run_raw_command(raw)).await {
                    Err(_) => return Err(timed_out(cx.timeout)),
                    Ok(Err(e)) => return Err(redacted_error(env, target, &e)),
                    Ok(Ok(answer)) => answer,
                };
                let bytes = bson::to_vec(&answer).map_err(|e| Error::Other(e.to_string()))?;
                if bytes.len() > max_bytes {
                    return Err(invalid(format!(
                        "the reply is {} bytes, over the grant's max_result_bytes of {max_bytes}: \
                         read large results with open-cursor",
                        bytes.len()
                    )));
                }
                Ok(reply(Outcome::Executed, bytes))
            })
        })
        .await
    }

    /// `mongo.open-cursor` without the wasm boundary: the cursor, ready for
    /// [`HostState::mongo_next_batch`].
    pub async fn mongo_open_cursor(
        &mut self,
        target: &str,
        database: &str,
        command: &[u8],
    ) -> Result<MongoCursor, Error> {
        let (command, raw, classified) = self.parsed(command)?;
        let operation = classified.operation.as_str();
        let class = classified.class;
        let ask = TargetCall::Mongo { target, class };
        let call = Call::db("mongo.open_cursor", operation, target, class, ask);
        self.call(call, |host, cx| {
            Box::pin(async move {
                // After the permission (a write is refused as one).
                if operation != "find" && operation != "aggregate" {
                    return Err(invalid(format!(
                        "open-cursor takes a `find` or `aggregate` command, not `{operation}`"
                    )));
                }
                if classified.class != CapabilityClass::Read {
                    return Err(invalid(format!(
                        "this `{operation}` is a {} command (it writes with $out or $merge): \
                         open-cursor runs reads only; use run-command",
                        classified.class
                    )));
                }
                let (env, grant) = (cx.env, cx.grant);
                let database = database_of(env, cx.target, database)?;
                let raw = with_max_time(command, raw, operation, grant)?;
                let client = client(&mut host.mongo, env, cx.target, grant).await?;
                let db = client.database(&database);
                let opened = tokio::time::timeout(cx.left(), db.run_raw_cursor_command(raw));
                let cursor = match opened.await {
                    Err(_) => return Err(timed_out(cx.timeout)),
                    Ok(Err(e)) => return Err(redacted_error(env, target, &e)),
                    Ok(Ok(cursor)) => cursor.with_type::<RawDocumentBuf>(),
                };
                Ok(MongoCursor {
                    target: target.to_string(),
                    cursor: Some(cursor),
                    grant_max_rows: grant.max_rows,
                    max_bytes: usize::try_from(grant.max_result_bytes).unwrap_or(usize::MAX),
                })
            })
        })
        .await
    }

    /// The next batch of `cursor`: at most `max_documents` (0: the grant's
    /// `max_rows`), at most the grant's `max_result_bytes` (but at least
    /// one document when any is left).
    pub async fn mongo_next_batch(
        &mut self,
        cursor: &mut MongoCursor,
        max_documents: u32,
    ) -> Result<Batch, Error> {
        let env = self.run_env()?;
        let Some(inner) = cursor.cursor.as_mut() else {
            return Ok(Batch {
                documents: Vec::new(),
                exhausted: true,
            });
        };
        let max_docs = match max_documents {
            0 => cursor.grant_max_rows,
            n => n.min(cursor.grant_max_rows),
        } as usize;
        let deadline = env.deadline;
        let mut documents = Vec::new();
        let mut bytes = 0usize;
        let mut exhausted = false;
        while documents.len() < max_docs.max(1) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match tokio::time::timeout(left, inner.advance()).await {
                Err(_) => {
                    cursor.cursor = None;
                    return Err(Error::Timeout(
                        "the run's deadline passed while reading a cursor".into(),
                    ));
                }
                Ok(Err(e)) => {
                    cursor.cursor = None;
                    return Err(redacted_error(&env, &cursor.target, &e));
                }
                Ok(Ok(false)) => {
                    exhausted = true;
                    break;
                }
                Ok(Ok(true)) => {
                    let doc = inner.current().as_bytes().to_vec();
                    bytes += doc.len();
                    documents.push(doc);
                    if bytes >= cursor.max_bytes {
                        break;
                    }
                }
            }
        }
        if exhausted {
            cursor.cursor = None;
        }
        Ok(Batch {
            documents,
            exhausted,
        })
    }
}

impl Host for HostState {
    async fn run_command(
        &mut self,
        target: String,
        database: String,
        command: Vec<u8>,
    ) -> wasmtime::Result<Result<CommandReply, Error>> {
        Ok(self.mongo_run_command(&target, &database, &command).await)
    }

    async fn open_cursor(
        &mut self,
        target: String,
        database: String,
        command: Vec<u8>,
    ) -> wasmtime::Result<Result<Resource<MongoCursor>, Error>> {
        match self.mongo_open_cursor(&target, &database, &command).await {
            Ok(cursor) => Ok(Ok(self.table.push(cursor)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn classify(&mut self, command: Vec<u8>) -> wasmtime::Result<Result<WitClass, Error>> {
        let env = self.env.clone();
        if let Err(e) = check_local(env.as_deref(), LocalCall::MongoClassify) {
            return Ok(Err(e.into()));
        }
        Ok(parse_and_classify(&command).map(|(_, _, c)| to_wit_class(c.class)))
    }
}

impl HostCursor for HostState {
    async fn next_batch(
        &mut self,
        cursor: Resource<MongoCursor>,
        max_documents: u32,
    ) -> wasmtime::Result<Result<Batch, Error>> {
        // Take the cursor out of the table for the await, then put it back.
        let mut state = std::mem::replace(
            self.table.get_mut(&cursor)?,
            MongoCursor {
                target: String::new(),
                cursor: None,
                grant_max_rows: 0,
                max_bytes: 0,
            },
        );
        let result = self.mongo_next_batch(&mut state, max_documents).await;
        *self.table.get_mut(&cursor)? = state;
        Ok(result)
    }

    async fn drop(&mut self, cursor: Resource<MongoCursor>) -> wasmtime::Result<()> {
        // Dropping the driver's cursor sends killCursors in the background.
        self.table.delete(cursor)?;
        Ok(())
    }
}
