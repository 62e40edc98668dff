//! MongoDB: a dump in mongodump's folder layout, through the official
//! driver, and its restore.
//!
//! ```text
//! <out>/<db>/<coll>.bson            the documents, raw BSON one after another
//! <out>/<db>/<coll>.metadata.json   {"indexes":[...],"uuid":"..","collectionName":"..","type":"collection","options":{..}}
//! ```
//!
//! With `gzip`, both files are gzipped and named `.bson.gz` and
//! `.metadata.json.gz`, as `mongodump --gzip` names them. Collection names
//! are escaped in file names as mongodump escapes them (Go's
//! `url.PathEscape`); names whose escaped form is longer than 238 bytes are
//! cut to 208 bytes plus `%24` and a hash (a SHA-256 prefix, where
//! mongodump uses SHA-1: restores read the name from the metadata file).
//! The metadata is canonical extended JSON v2, with the `listIndexes`
//! output and the `listCollections` options as the server gave them.
//!
//! Documents are streamed as the server sends them (never decoded and
//! encoded again) and written by a blocking task through a large buffer.
//! Only collections (`type: "collection"`) are dumped, not views, and not
//! `system.*` collections.
//!
//! Consistency: when the server can (a replica set or sharded cluster of
//! MongoDB 5.0 or later, by its `hello`), every collection is read in one
//! snapshot session (`readConcern: snapshot`, the same `atClusterTime`). If
//! a snapshot read is refused or the snapshot becomes too old (a long dump
//! on a server keeping 5 minutes of history), the dump starts over with
//! plain reads, each collection then being read as of its own time. The
//! metadata tells which: `snapshot` = `true` (with `snapshot-time`) or
//! `false`.
//!
//! Manifest metadata of a dump: `source-kind` (`mongodb`), `layout`
//! (`mongodump`), `database`, `gzip`, `snapshot`, `snapshot-time`,
//! `server-version`.
//!
//! A restore creates each collection with its options (dropping it first
//! with `clean`; without it an existing collection fails the restore),
//! inserts the documents in unordered batches of at most 1,000 documents
//! or 8 MiB (any write error fails the restore), then creates the indexes
//! (all but `_id_`, from their definitions as dumped, less `ns`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use bson::{Bson, Document, RawDocument, RawDocumentBuf, doc};
use flate2::Compression;
use flate2::bufread::MultiGzDecoder;
use flate2::write::GzEncoder;
use mongodb::error::{Error as MongoError, ErrorKind};
use mongodb::options::ClientOptions;
use mongodb::{Client, ClientSession, Collection, Database};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use super::{
    Counts, DumpContext, DumpError, DumpOutcome, META_SOURCE_KIND, MongoDumpOptions,
    RestoreOptions, blocking, check_mongo_database, shown,
};
use crate::artifacts::KnownDigests;
use crate::config::Target;

/// Bytes handed from the reading task to the writing one at a time.
const CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// The file writer's buffer.
const WRITE_BUFFER: usize = 1024 * 1024;
/// Most documents per insert.
const BATCH_DOCS: usize = 1_000;
/// Most bytes per insert.
const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Largest document accepted when reading a dump: MongoDB's 16 MiB limit
/// plus the room mongodump allows.
const MAX_DOC_BYTES: usize = 16 * 1024 * 1024 + 16 * 1024;
/// Longest escaped collection name kept whole in a file name.
const MAX_ESCAPED_NAME: usize = 238;

const BSON_EXT: &str = ".bson";
const METADATA_EXT: &str = ".metadata.json";
const GZ_EXT: &str = ".gz";
/// Documents asked for per batch (the server also caps a batch at 16 MiB);
/// the driver's default first batch of 101 makes small round trips.
const FIND_BATCH: u32 = 10_000;
/// How long the driver waits for an unreachable server.
const SERVER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

async fn client(
    target: &Target,
    ctx: &DumpContext<'_>,
) -> Result<(Client, Option<String>), DumpError> {
    let fail = |e: MongoError| {
        DumpError::Failed(format!("cannot connect to target `{}`: {e}", target.name))
    };
    let mut options = ClientOptions::parse(target.url.expose())
        .await
        .map_err(fail)?;
    options.app_name = Some(ctx.application_name.clone());
    // A server that goes away fails the dump within this, rather than the
    // driver's 30 s per retry (the URL's own settings win).
    options.server_selection_timeout = options.server_selection_timeout.or(Some(SERVER_WAIT));
    options.connect_timeout = options.connect_timeout.or(Some(SERVER_WAIT));
    let default_db = options.default_database.clone();
    let client = Client::with_options(options).map_err(fail)?;
    Ok((client, default_db))
}

fn target_failed(target: &Target, doing: &str, e: &MongoError) -> DumpError {
    DumpError::Failed(format!("target `{}`: {doing}: {e}", target.name))
}

/// The file name (without extension) of collection `name`: Go's
/// `url.PathEscape`, as mongodump does, cut when long.
pub(crate) fn escape_collection_name(name: &str) -> String {
    let mut escaped = String::with_capacity(name.len());
    for byte in name.bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'-' | b'_' | b'.' | b'~' | b'$' | b'&' | b'+' | b':' | b'=' | b'@'
            );
        if keep {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    if escaped.len() > MAX_ESCAPED_NAME {
        let hash = hex::encode(Sha256::digest(name.as_bytes()));
        escaped.truncate(208);
        escaped.push_str("%24");
        escaped.push_str(hash.get(..27).unwrap_or(&hash));
    }
    escaped
}

/// The reverse of [`escape_collection_name`] for names that were not cut.
pub(crate) fn unescape_collection_name(escaped: &str) -> String {
    crate::config::percent_decode(escaped)
}

/// The code of a server error, if it is one.
fn error_code(e: &MongoError) -> Option<i32> {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

/// A collection to dump, from `listCollections`.
struct Spec {
    name: String,
    options: Document,
    uuid: Option<String>,
}

/// Why a pass over the collections stopped.
enum PassError {
    /// A read in the snapshot session was refused: try again without one.
    Snapshot(String),
    Other(DumpError),
}

impl From<DumpError> for PassError {
    fn from(e: DumpError) -> Self {
        PassError::Other(e)
    }
}

/// See the [module docs](self).
pub(super) async fn dump(
    source: &Target,
    options: &MongoDumpOptions,
    out: &Path,
    ctx: &DumpContext<'_>,
) -> Result<DumpOutcome, DumpError> {
    let (client, default_db) = client(source, ctx).await?;
    let db_name = options.database.clone().or(default_db).ok_or_else(|| {
        DumpError::InvalidInput(format!(
            "target `{}`: the URL names no database; set the database option",
            source.name
        ))
    })?;
    check_mongo_database("database", &db_name)?;
    let db = client.database(&db_name);

    let (server_version, snapshot_capable) = server_facts(&client, source).await?;
    let specs = list_collections(&db, source, &db_name).await?;
    let mut chosen = Vec::new();
    for spec in specs {
        let included = options.include_collections.is_empty()
            || options.include_collections.contains(&spec.name);
        if included && !options.exclude_collections.contains(&spec.name) {
            chosen.push(spec);
        }
    }
    for wanted in &options.include_collections {
        if !chosen.iter().any(|s| &s.name == wanted)
            && !options.exclude_collections.contains(wanted)
        {
            return Err(DumpError::Failed(format!(
                "target `{}`: database {} has no collection {}",
                source.name,
                shown(&db_name),
                shown(wanted)
            )));
        }
    }

    let folder = out.join(&db_name);
    let mut use_snapshot = snapshot_capable;
    let (counts, snapshot_time) = loop {
        let dir = folder.clone();
        blocking("creating the dump folder", move || {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| DumpError::Failed(format!("removing {}: {e}", dir.display())))?;
            }
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(|e| DumpError::Failed(format!("creating {}: {e}", dir.display())))
        })
        .await?;
        let mut session = if use_snapshot {
            client.start_session().snapshot(true).await.ok()
        } else {
            None
        };
        match dump_pass(
            source,
            &db,
            &chosen,
            &folder,
            options.gzip,
            session.as_mut(),
        )
        .await
        {
            Ok(counts) => {
                let time = session.as_ref().and_then(ClientSession::snapshot_time);
                break (counts, session.is_some().then_some(time));
            }
            Err(PassError::Snapshot(why)) if session.is_some() => {
                let why = super::Scrub::new(ctx.redactor, source).text(&why);
                tracing::info!(
                    target = %source.name,
                    "snapshot reads failed ({why}); dumping again with plain reads"
                );
                use_snapshot = false;
            }
            Err(PassError::Snapshot(why)) => return Err(DumpError::Failed(why)),
            Err(PassError::Other(e)) => return Err(e),
        }
    };

    let mut metadata = BTreeMap::from([
        (META_SOURCE_KIND.to_owned(), "mongodb".to_owned()),
        ("layout".to_owned(), "mongodump".to_owned()),
        ("database".to_owned(), db_name),
        ("gzip".to_owned(), options.gzip.to_string()),
        ("snapshot".to_owned(), snapshot_time.is_some().to_string()),
    ]);
    if let Some(Some(time)) = snapshot_time {
        metadata.insert(
            "snapshot-time".to_owned(),
            format!("{}.{}", time.time, time.increment),
        );
    }
    if let Some(version) = server_version {
        metadata.insert("server-version".to_owned(), version);
    }
    let (counts, digests) = counts;
    Ok(DumpOutcome {
        counts,
        metadata,
        digests,
    })
}

/// The server's version (if it tells) and whether it can read in a
/// snapshot (MongoDB 5.0+, wire version 13, in a replica set or behind
/// mongos).
async fn server_facts(
    client: &Client,
    target: &Target,
) -> Result<(Option<String>, bool), DumpError> {
    let admin = client.database("admin");
    let hello = match admin.run_command(doc! { "hello": 1 }).await {
        Ok(hello) => hello,
        Err(_) => admin
            .run_command(doc! { "isMaster": 1 })
            .await
            .map_err(|e| target_failed(target, "greeting the server", &e))?,
    };
    let wire = match hello.get("maxWireVersion") {
        Some(Bson::Int32(v)) => i64::from(*v),
        Some(Bson::Int64(v)) => *v,
        _ => 0,
    };
    let clustered = hello.contains_key("setName") || hello.get_str("msg") == Ok("isdbgrid");
    let version = admin
        .run_command(doc! { "buildInfo": 1 })
        .await
        .ok()
        .and_then(|info| info.get_str("version").ok().map(str::to_owned));
    Ok((version, wire >= 13 && clustered))
}

/// The collections of `db` to dump, sorted by name.
async fn list_collections(
    db: &Database,
    target: &Target,
    db_name: &str,
) -> Result<Vec<Spec>, DumpError> {
    let doing = format!("listing the collections of database {}", shown(db_name));
    let mut cursor = db
        .run_cursor_command(doc! { "listCollections": 1 })
        .await
        .map_err(|e| target_failed(target, &doing, &e))?;
    let mut specs = Vec::new();
    while cursor
        .advance()
        .await
        .map_err(|e| target_failed(target, &doing, &e))?
    {
        let info = cursor
            .deserialize_current()
            .map_err(|e| target_failed(target, &doing, &e))?;
        let Ok(name) = info.get_str("name") else {
            continue;
        };
        let kind = info.get_str("type").unwrap_or("collection");
        if kind != "collection" || name.starts_with("system.") {
            continue;
        }
        let options = info.get_document("options").cloned().unwrap_or_default();
        let uuid = info
            .get_document("info")
            .ok()
            .and_then(|i| match i.get("uuid") {
                Some(Bson::Binary(b)) => Some(hex::encode(&b.bytes)),
                _ => None,
            });
        specs.push(Spec {
            name: name.to_owned(),
            options,
            uuid,
        });
    }
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(specs)
}

/// The index definitions of a collection, as `listIndexes` gives them.
async fn list_indexes(
    db: &Database,
    target: &Target,
    name: &str,
) -> Result<Vec<Document>, DumpError> {
    let doing = format!("listing the indexes of collection {}", shown(name));
    let mut cursor = db
        .run_cursor_command(doc! { "listIndexes": name })
        .await
        .map_err(|e| target_failed(target, &doing, &e))?;
    let mut indexes = Vec::new();
    while cursor
        .advance()
        .await
        .map_err(|e| target_failed(target, &doing, &e))?
    {
        indexes.push(
            cursor
                .deserialize_current()
                .map_err(|e| target_failed(target, &doing, &e))?,
        );
    }
    Ok(indexes)
}

/// One pass over the chosen collections: data, then metadata, each.
async fn dump_pass(
    source: &Target,
    db: &Database,
    specs: &[Spec],
    folder: &Path,
    gzip: bool,
    mut session: Option<&mut ClientSession>,
) -> Result<(Counts, KnownDigests), PassError> {
    let mut counts = Counts::new();
    let mut digests = KnownDigests::new();
    // Paths in the artifact are `<database folder>/<file>`.
    let db_folder = folder
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix = if gzip { GZ_EXT } else { "" };
    for spec in specs {
        let stem = escape_collection_name(&spec.name);
        let file_name = format!("{stem}{BSON_EXT}{suffix}");
        let data_path = folder.join(&file_name);
        let coll: Collection<RawDocumentBuf> = db.collection(&spec.name);
        let mut sink = Sink::start(data_path, gzip);
        let doing = format!("reading collection {}", shown(&spec.name));
        let read = match session.as_deref_mut() {
            Some(session) => read_in_session(&coll, session, &mut sink).await,
            None => read_plain(&coll, &mut sink).await,
        };
        if let Err(e) = read {
            let _ = sink.finish().await;
            let refused = matches!(
                e.kind.as_ref(),
                ErrorKind::Command(_) | ErrorKind::IncompatibleServer { .. }
            );
            let error = target_failed(source, &doing, &e);
            return Err(if refused && session.is_some() {
                PassError::Snapshot(error.to_string())
            } else {
                PassError::Other(error)
            });
        }
        let (written, digest) = sink.finish().await?;
        counts.insert(spec.name.clone(), written);
        digests.insert(format!("{db_folder}/{file_name}"), digest);

        let indexes = list_indexes(db, source, &spec.name).await?;
        let mut meta = Document::new();
        meta.insert(
            "indexes",
            Bson::Array(indexes.into_iter().map(Bson::Document).collect()),
        );
        if let Some(uuid) = &spec.uuid {
            meta.insert("uuid", uuid.clone());
        }
        meta.insert("collectionName", spec.name.clone());
        meta.insert("type", "collection");
        meta.insert("options", spec.options.clone());
        let json =
            serde_json::to_vec(&Bson::Document(meta).into_canonical_extjson()).map_err(|e| {
                DumpError::Failed(format!(
                    "encoding the metadata of {}: {e}",
                    shown(&spec.name)
                ))
            })?;
        let meta_path = folder.join(format!("{stem}{METADATA_EXT}{suffix}"));
        blocking("writing metadata", move || {
            write_file(&meta_path, &json, gzip)
                .map_err(|e| DumpError::Failed(format!("writing {}: {e}", meta_path.display())))
        })
        .await?;
    }
    Ok((counts, digests))
}

async fn read_plain(coll: &Collection<RawDocumentBuf>, sink: &mut Sink) -> Result<(), MongoError> {
    let mut cursor = coll.find(doc! {}).batch_size(FIND_BATCH).await?;
    while cursor.advance().await? {
        if !sink.push(cursor.current()).await {
            break;
        }
    }
    Ok(())
}

async fn read_in_session(
    coll: &Collection<RawDocumentBuf>,
    session: &mut ClientSession,
    sink: &mut Sink,
) -> Result<(), MongoError> {
    let mut cursor = coll
        .find(doc! {})
        .batch_size(FIND_BATCH)
        .session(&mut *session)
        .await?;
    while cursor.advance(&mut *session).await? {
        if !sink.push(cursor.current()).await {
            break;
        }
    }
    Ok(())
}

/// A file being written by a blocking task, fed chunks of raw documents.
struct Sink {
    path: PathBuf,
    buffer: Vec<u8>,
    count: u64,
    tx: Option<mpsc::Sender<Vec<u8>>>,
    task: tokio::task::JoinHandle<io::Result<(u64, String)>>,
}

impl Sink {
    fn start(path: PathBuf, gzip: bool) -> Sink {
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
        let file_path = path.clone();
        let task = tokio::task::spawn_blocking(move || {
            let file = create_private(&file_path)?;
            let mut out = Output::new(file, gzip);
            while let Some(chunk) = rx.blocking_recv() {
                out.write_all(&chunk)?;
            }
            out.finish()
        });
        Sink {
            path,
            buffer: Vec::with_capacity(CHUNK_BYTES),
            count: 0,
            tx: Some(tx),
            task,
        }
    }

    /// Adds a document; false when the writer has stopped (its error comes
    /// from [`Sink::finish`]).
    async fn push(&mut self, doc: &RawDocument) -> bool {
        self.buffer.extend_from_slice(doc.as_bytes());
        self.count += 1;
        if self.buffer.len() >= CHUNK_BYTES {
            return self.flush().await;
        }
        true
    }

    async fn flush(&mut self) -> bool {
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES));
        match &self.tx {
            Some(tx) => tx.send(chunk).await.is_ok(),
            None => false,
        }
    }

    /// Writes what is left and waits for the file; the documents written
    /// and the file's size and SHA-256.
    async fn finish(mut self) -> Result<(u64, (u64, String)), DumpError> {
        if !self.buffer.is_empty() {
            self.flush().await;
        }
        self.tx = None;
        let path = self.path.clone();
        let fail = |e: String| DumpError::Failed(format!("writing {}: {e}", path.display()));
        match (&mut self.task).await {
            Ok(Ok(digest)) => Ok((self.count, digest)),
            Ok(Err(e)) => Err(fail(e.to_string())),
            Err(e) => Err(fail(e.to_string())),
        }
    }
}

/// A file that hashes what is written to it, so the store need not read
/// it again at commit.
struct Hashing {
    file: File,
    hasher: Sha256,
    size: u64,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A plain or gzipped file.
enum Output {
    Plain(BufWriter<Hashing>),
    Gzip(GzEncoder<BufWriter<Hashing>>),
}

impl Output {
    fn new(file: File, gzip: bool) -> Output {
        let hashing = Hashing {
            file,
            hasher: Sha256::new(),
            size: 0,
        };
        let buffered = BufWriter::with_capacity(WRITE_BUFFER, hashing);
        if gzip {
            Output::Gzip(GzEncoder::new(buffered, Compression::fast()))
        } else {
            Output::Plain(buffered)
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Output::Plain(w) => w.write_all(bytes),
            Output::Gzip(w) => w.write_all(bytes),
        }
    }

    /// Flushes and syncs the file (here, on the writer's thread, rather
    /// than at commit); its size and SHA-256.
    fn finish(self) -> io::Result<(u64, String)> {
        let buffered = match self {
            Output::Plain(w) => w,
            Output::Gzip(w) => w.finish()?,
        };
        let hashing = buffered.into_inner().map_err(|e| e.into_error())?;
        hashing.file.sync_all()?;
        Ok((hashing.size, hex::encode(hashing.hasher.finalize())))
    }
}

fn create_private(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

fn write_file(path: &Path, bytes: &[u8], gzip: bool) -> io::Result<()> {
    let mut out = Output::new(create_private(path)?, gzip);
    out.write_all(bytes)?;
    out.finish().map(|_| ())
}

/// A collection found in a dump folder.
#[derive(Debug, Default)]
struct Found {
    data: Option<(PathBuf, bool)>,
    metadata: Option<(PathBuf, bool)>,
}

/// The collections of a dump folder, by file stem.
fn scan_folder(folder: &Path) -> Result<BTreeMap<String, Found>, DumpError> {
    let entries = std::fs::read_dir(folder).map_err(|e| {
        DumpError::Failed(format!("reading the dump folder {}: {e}", folder.display()))
    })?;
    let mut found: BTreeMap<String, Found> = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            DumpError::Failed(format!("reading the dump folder {}: {e}", folder.display()))
        })?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let (base, gz) = match name.strip_suffix(GZ_EXT) {
            Some(base) => (base, true),
            None => (name.as_str(), false),
        };
        if let Some(stem) = base.strip_suffix(METADATA_EXT) {
            found.entry(stem.to_owned()).or_default().metadata = Some((entry.path(), gz));
        } else if let Some(stem) = base.strip_suffix(BSON_EXT) {
            found.entry(stem.to_owned()).or_default().data = Some((entry.path(), gz));
        }
    }
    Ok(found)
}

fn open_reader(path: &Path, gz: bool) -> io::Result<Box<dyn Read + Send>> {
    let file = BufReader::with_capacity(WRITE_BUFFER, File::open(path)?);
    Ok(if gz {
        Box::new(MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

/// A collection's metadata file.
struct CollectionMeta {
    name: String,
    options: Document,
    indexes: Vec<Document>,
}

fn read_metadata(path: &Path, gz: bool, fallback_name: &str) -> Result<CollectionMeta, String> {
    let mut text = Vec::new();
    open_reader(path, gz)
        .and_then(|mut r| r.read_to_end(&mut text))
        .map_err(|e| e.to_string())?;
    let json: serde_json::Value = serde_json::from_slice(&text).map_err(|e| e.to_string())?;
    let doc = match Bson::try_from(json).map_err(|e| e.to_string())? {
        Bson::Document(doc) => doc,
        _ => return Err("not a JSON object".to_owned()),
    };
    let name = doc
        .get_str("collectionName")
        .map(str::to_owned)
        .unwrap_or_else(|_| fallback_name.to_owned());
    let options = doc.get_document("options").cloned().unwrap_or_default();
    let indexes = match doc.get("indexes") {
        Some(Bson::Array(items)) => items
            .iter()
            .map(|i| match i {
                Bson::Document(d) => Ok(d.clone()),
                _ => Err("an index is not an object".to_owned()),
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
        Some(_) => return Err("`indexes` is not an array".to_owned()),
    };
    Ok(CollectionMeta {
        name,
        options,
        indexes,
    })
}

/// Reads concatenated BSON documents, sending batches until the end of
/// the file or until the receiver is gone.
fn read_documents(
    path: &Path,
    gz: bool,
    tx: &mpsc::Sender<Result<Vec<RawDocumentBuf>, String>>,
) -> Result<(), String> {
    let mut reader = open_reader(path, gz).map_err(|e| e.to_string())?;
    let mut batch = Vec::new();
    let mut batch_bytes = 0usize;
    let mut offset = 0u64;
    loop {
        let mut len_bytes = [0u8; 4];
        let got = read_full(&mut reader, &mut len_bytes).map_err(|e| e.to_string())?;
        if got == 0 {
            break;
        }
        if got < 4 {
            return Err(format!("truncated document at byte {offset}"));
        }
        let len = usize::try_from(i32::from_le_bytes(len_bytes)).unwrap_or(0);
        if !(5..=MAX_DOC_BYTES).contains(&len) {
            return Err(format!("bad document length {len} at byte {offset}"));
        }
        let mut bytes = vec![0u8; len];
        bytes
            .get_mut(..4)
            .map(|head| head.copy_from_slice(&len_bytes))
            .ok_or("internal: short buffer")?;
        let body = bytes.get_mut(4..).ok_or("internal: short buffer")?;
        if read_full(&mut reader, body).map_err(|e| e.to_string())? < body.len() {
            return Err(format!("truncated document at byte {offset}"));
        }
        let doc = RawDocumentBuf::from_bytes(bytes)
            .map_err(|e| format!("invalid document at byte {offset}: {e}"))?;
        offset += len as u64;
        batch_bytes += len;
        batch.push(doc);
        if batch.len() >= BATCH_DOCS || batch_bytes >= BATCH_BYTES {
            if tx.blocking_send(Ok(std::mem::take(&mut batch))).is_err() {
                return Ok(());
            }
            batch_bytes = 0;
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(Ok(batch));
    }
    Ok(())
}

/// Reads until `buf` is full or the end; the bytes read.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let Some(rest) = buf.get_mut(filled..) else {
            break;
        };
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// See the [module docs](self).
pub(super) async fn restore(
    destination: &Target,
    data: &Path,
    metadata: &BTreeMap<String, String>,
    options: &RestoreOptions,
    ctx: &DumpContext<'_>,
) -> Result<Counts, DumpError> {
    let dumped_db = match metadata.get("database") {
        Some(db) => {
            check_mongo_database("the artifact's database", db)?;
            db.clone()
        }
        None => {
            return Err(DumpError::InvalidInput(
                "the artifact's metadata names no database".to_owned(),
            ));
        }
    };
    let folder = data.join(&dumped_db);
    let scan_dir = folder.clone();
    let found = blocking("reading the dump folder", move || scan_folder(&scan_dir)).await?;

    let (client, default_db) = client(destination, ctx).await?;
    let db_name = options.database.clone().or(default_db).ok_or_else(|| {
        DumpError::InvalidInput(format!(
            "target `{}`: the URL names no database; set the database option",
            destination.name
        ))
    })?;
    check_mongo_database("database", &db_name)?;
    let db = client.database(&db_name);
    let existing: BTreeSet<String> = db
        .list_collection_names()
        .await
        .map_err(|e| target_failed(destination, "listing the collections", &e))?
        .into_iter()
        .collect();

    let mut counts = Counts::new();
    for (stem, files) in found {
        let meta = match files.metadata {
            Some((path, gz)) => {
                let fallback = unescape_collection_name(&stem);
                let read_path = path.clone();
                blocking("reading metadata", move || {
                    read_metadata(&read_path, gz, &fallback).map_err(|e| {
                        DumpError::Failed(format!("reading {}: {e}", read_path.display()))
                    })
                })
                .await?
            }
            None => CollectionMeta {
                name: unescape_collection_name(&stem),
                options: Document::new(),
                indexes: Vec::new(),
            },
        };
        let name = meta.name.clone();
        let what = format!(
            "collection {} of database {}",
            shown(&name),
            shown(&db_name)
        );
        if options.clean {
            let coll: Collection<Document> = db.collection(&name);
            if let Err(e) = coll.drop().await
                && error_code(&e) != Some(26)
            {
                return Err(target_failed(destination, &format!("dropping {what}"), &e));
            }
        } else if existing.contains(&name) {
            return Err(DumpError::Failed(format!(
                "target `{}`: {what} already exists; restore with clean to replace it",
                destination.name
            )));
        }
        let mut create = doc! { "create": name.clone() };
        for (key, value) in meta.options {
            create.insert(key, value);
        }
        db.run_command(create)
            .await
            .map_err(|e| target_failed(destination, &format!("creating {what}"), &e))?;

        if let Some((path, gz)) = files.data {
            insert_file(destination, &db, &name, &what, path, gz).await?;
        }

        let indexes: Vec<Bson> = meta
            .indexes
            .into_iter()
            .filter(|index| index.get_str("name") != Ok("_id_"))
            .map(|mut index| {
                index.remove("ns");
                Bson::Document(index)
            })
            .collect();
        if !indexes.is_empty() {
            db.run_command(doc! { "createIndexes": name.clone(), "indexes": indexes })
                .await
                .map_err(|e| {
                    target_failed(destination, &format!("creating the indexes of {what}"), &e)
                })?;
        }
        let coll: Collection<Document> = db.collection(&name);
        let n = coll
            .count_documents(doc! {})
            .await
            .map_err(|e| target_failed(destination, &format!("counting {what}"), &e))?;
        counts.insert(name, n);
    }
    Ok(counts)
}

/// Inserts the documents of one `.bson` file.
async fn insert_file(
    destination: &Target,
    db: &Database,
    name: &str,
    what: &str,
    path: PathBuf,
    gz: bool,
) -> Result<(), DumpError> {
    let coll: Collection<RawDocumentBuf> = db.collection(name);
    let (tx, mut rx) = mpsc::channel(2);
    let read_path = path.clone();
    let reader = tokio::task::spawn_blocking(move || {
        if let Err(e) = read_documents(&read_path, gz, &tx) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let result = async {
        while let Some(batch) = rx.recv().await {
            let batch =
                batch.map_err(|e| DumpError::Failed(format!("reading {}: {e}", path.display())))?;
            let expected = batch.len();
            let inserted =
                coll.insert_many(batch).ordered(false).await.map_err(|e| {
                    target_failed(destination, &format!("inserting into {what}"), &e)
                })?;
            if inserted.inserted_ids.len() != expected {
                return Err(DumpError::Failed(format!(
                    "target `{}`: inserting into {what}: {} of {expected} documents inserted",
                    destination.name,
                    inserted.inserted_ids.len()
                )));
            }
        }
        Ok(())
    }
    .await;
    drop(rx);
    let _ = reader.await;
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn collection_names_are_escaped_like_mongodump() {
        assert_eq!(escape_collection_name("users"), "users");
        assert_eq!(escape_collection_name("a/b c%d"), "a%2Fb%20c%25d");
        assert_eq!(escape_collection_name("x$y:z=@+&~"), "x$y:z=@+&~");
        assert_eq!(escape_collection_name("é;,?"), "%C3%A9%3B%2C%3F");
        for name in ["a/b c%d", "é;,?", "plain.name"] {
            assert_eq!(
                unescape_collection_name(&escape_collection_name(name)),
                name
            );
        }
        let long = "n".repeat(300);
        let escaped = escape_collection_name(&long);
        assert_eq!(escaped.len(), 208 + 3 + 27);
        assert!(escaped.starts_with(&"n".repeat(208)));
        assert_ne!(escaped, escape_collection_name(&"n".repeat(301)));
    }

    #[test]
    fn documents_are_read_back_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.bson.gz");
        let mut bytes = Vec::new();
        for i in 0..2_500i32 {
            let doc = RawDocumentBuf::from_document(
                &doc! { "_id": i, "s": "x".repeat((i % 7) as usize) },
            )
            .unwrap();
            bytes.extend_from_slice(doc.as_bytes());
        }
        write_file(&path, &bytes, true).unwrap();
        let (tx, mut rx) = mpsc::channel(100);
        read_documents(&path, true, &tx).unwrap();
        drop(tx);
        let mut sizes = Vec::new();
        while let Some(batch) = rx.blocking_recv() {
            sizes.push(batch.unwrap().len());
        }
        assert_eq!(sizes, [1_000, 1_000, 500]);

        let bad = dir.path().join("bad.bson");
        write_file(&bad, bytes.get(..bytes.len() - 3).unwrap(), false).unwrap();
        let (tx, _rx) = mpsc::channel(100);
        let err = read_documents(&bad, false, &tx).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
    }
}
