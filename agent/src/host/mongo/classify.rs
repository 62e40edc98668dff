//! Classifying a MongoDB command the way `sql/classify.rs` classifies a
//! statement: the host decides which capability class a command needs from
//! the command document itself, never from what the plugin says it is.
//!
//! The command name is the document's first key (as MongoDB reads it).
//! Known commands map to a class; commands that run server-side JavaScript
//! (`$where`, `$function`, `$accumulator`, `mapReduce`, `eval`), change
//! users, roles, server parameters or replication, or shut the server down
//! are refused for any grant; anything unknown is refused too (deny by
//! default).
//!
//! Aggregation pipelines are classified stage by stage, recursively, wherever
//! a pipeline can appear ([`classify_pipeline`]): the top-level `pipeline` of
//! `aggregate`, each facet of `$facet`, `$lookup.pipeline`, `$unionWith`'s
//! `pipeline`, `$merge.whenMatched`, the `input.pipelines` of `$rankFusion` and
//! `$scoreFusion`, pipeline-style updates (`update`, `findAndModify`) and view
//! definitions (`create`, `collMod`). A pipeline writes if any stage at any depth
//! is `$out` or `$merge`; every other stage must be on the list of known read
//! stages ([`READ_STAGES`]), so a stage Warden does not know (a future writing
//! stage, a typo) is refused rather than guessed. As a second wall, a `$out` or
//! `$merge` key found anywhere in the command makes a read a write.
//!
//! `explain` takes the class of the command it explains, except that the write
//! commands MongoDB documents as never executed under explain (`insert`,
//! `update`, `delete`, `findAndModify`, `bulkWrite`) are reads to explain. An
//! explained pipeline that writes stays a write: MongoDB 3.6 and 4.0 executed a
//! `$out` under `executionStats` explain (SERVER-38063), and other servers of
//! the wire protocol may too.
//!
//! Nesting is bounded before anything recurses: a command nested deeper than
//! [`MAX_NESTING`] documents and arrays, or with sub-pipelines nested deeper
//! than [`MAX_PIPELINE_DEPTH`], is refused ([`check_raw_nesting`] checks the
//! bytes without recursion before they are parsed).

use crate::capability::CapabilityClass;
use bson::raw::{RawArrayIter, RawBsonRef, RawDocument, RawIter};
use bson::{Bson, Document};

/// The deepest nesting of documents and arrays accepted in a command, the
/// command document itself being level 1. MongoDB stores documents nested at
/// most 100 levels; a command wraps them in a few more. Everything that walks
/// a command (the parser, this classifier, dropping it) recurses per level, so
/// this bound is what keeps a hostile document from overflowing the stack.
pub const MAX_NESTING: usize = 128;

/// The deepest nesting of sub-pipelines (`$facet`, `$lookup`, `$unionWith`,
/// ... inside one another) accepted, the command's own pipeline being level 1.
/// MongoDB's own limit for nested sub-pipelines is 20.
pub const MAX_PIPELINE_DEPTH: usize = 20;

/// Why a command was not classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MongoClassifyError {
    #[error("the command document is empty")]
    Empty,
    #[error("`{0}` is refused whatever the grant: {1}")]
    Forbidden(String, &'static str),
    #[error("`{0}` is not a command Warden knows; unknown commands are refused")]
    Unknown(String),
    #[error(
        "`{command}`: `{stage}` at {at} is not an aggregation stage Warden knows; \
         unknown stages are refused (a stage Warden does not know may write)"
    )]
    UnknownStage {
        command: String,
        stage: String,
        /// Where the stage is: `pipeline[1].$facet.byStatus[0]`.
        at: String,
    },
    #[error("`{command}`: {problem}")]
    Malformed { command: String, problem: String },
    #[error("the command nests {what} deeper than {limit} levels (at {at}); flatten it")]
    TooDeep {
        /// `documents and arrays` or `sub-pipelines`.
        what: &'static str,
        limit: usize,
        /// Where the limit was crossed.
        at: String,
    },
}

/// A classified command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MongoClassified {
    pub class: CapabilityClass,
    /// The command name as MongoDB reads it (`find`, `aggregate`, ...), for
    /// records and spans.
    pub operation: String,
    /// The collection it names, when its value is one (for records).
    pub collection: Option<String>,
}

const READ: &[&str] = &[
    "find",
    "count",
    "distinct",
    "listCollections",
    "listIndexes",
    "listDatabases",
    "collStats",
    "dbStats",
    "dataSize",
    "serverStatus",
    "buildInfo",
    "hello",
    "isMaster",
    "ping",
    "hostInfo",
    "connectionStatus",
    "currentOp",
    "top",
    "getLog",
    "replSetGetStatus",
    "getParameter",
    "validate",
    "profile",
];
const WRITE: &[&str] = &["insert", "update", "delete", "findAndModify", "bulkWrite"];
const DDL: &[&str] = &[
    "create",
    "drop",
    "createIndexes",
    "dropIndexes",
    "renameCollection",
    "collMod",
    "dropDatabase",
    "convertToCapped",
];
const MAINTENANCE: &[&str] = &["compact", "reIndex", "planCacheClear", "cleanupOrphaned"];
const SESSION_CONTROL: &[&str] = &[
    "killOp",
    "killSessions",
    "killAllSessions",
    "killAllSessionsByPattern",
];
const FORBIDDEN: &[(&str, &str)] = &[
    ("eval", "it runs server-side JavaScript"),
    ("mapReduce", "it runs server-side JavaScript"),
    ("shutdown", "it stops the server"),
    ("fsyncUnlock", "it changes the server's write lock"),
    ("fsync", "it locks the server for writes"),
    ("setParameter", "it changes server parameters"),
    (
        "setFeatureCompatibilityVersion",
        "it changes the server version",
    ),
    ("createUser", "it changes users"),
    ("updateUser", "it changes users"),
    ("dropUser", "it changes users"),
    ("dropAllUsersFromDatabase", "it changes users"),
    ("grantRolesToUser", "it changes roles"),
    ("revokeRolesFromUser", "it changes roles"),
    ("createRole", "it changes roles"),
    ("dropRole", "it changes roles"),
    ("replSetReconfig", "it changes replication"),
    ("replSetStepDown", "it changes replication"),
    ("replSetFreeze", "it changes replication"),
    ("replSetInitiate", "it changes replication"),
    ("applyOps", "it applies raw oplog entries"),
    ("logout", "it changes the host's session"),
    ("authenticate", "it changes the host's session"),
    ("saslStart", "it changes the host's session"),
    (
        "getMore",
        "cursors are read through the host's cursor calls",
    ),
    ("killCursors", "cursors are closed by the host"),
    ("startSession", "sessions belong to the host"),
    ("endSessions", "sessions belong to the host"),
    ("commitTransaction", "transactions belong to the host"),
    ("abortTransaction", "transactions belong to the host"),
];

/// Aggregation stages that only read (MongoDB 8.0's stage reference, less the
/// writing ones). A stage that is not here nor in [`WRITE_STAGES`] is refused:
/// adding a new read stage is adding a line here, after checking that it
/// writes nothing and, if it carries sub-pipelines, teaching
/// [`sub_pipelines`] where they are.
pub const READ_STAGES: &[&str] = &[
    "$addFields",
    "$bucket",
    "$bucketAuto",
    "$changeStream",
    "$changeStreamSplitLargeEvent",
    "$collStats",
    "$count",
    "$currentOp",
    "$densify",
    "$documents",
    "$facet",
    "$fill",
    "$geoNear",
    "$graphLookup",
    "$group",
    "$indexStats",
    "$limit",
    "$listClusterCatalog",
    "$listLocalSessions",
    "$listSampledQueries",
    "$listSearchIndexes",
    "$listSessions",
    "$lookup",
    "$match",
    "$planCacheStats",
    "$project",
    "$querySettings",
    "$queryStats",
    "$rankFusion",
    "$redact",
    "$replaceRoot",
    "$replaceWith",
    "$sample",
    "$score",
    "$scoreFusion",
    "$search",
    "$searchMeta",
    "$set",
    "$setWindowFields",
    "$shardedDataDistribution",
    "$skip",
    "$sort",
    "$sortByCount",
    "$unionWith",
    "$unset",
    "$unwind",
    "$vectorSearch",
];

/// Aggregation stages that write.
pub const WRITE_STAGES: &[&str] = &["$out", "$merge"];

/// Operators that run JavaScript on the server, refused anywhere in a
/// command (filters, pipelines, updates).
const JS_OPERATORS: &[&str] = &["$where", "$function", "$accumulator"];

/// Write commands that MongoDB documents as never executed under `explain`:
/// explaining them needs only `read` (unless a pipeline inside writes).
const EXPLAINED_WITHOUT_EXECUTING: &[&str] =
    &["insert", "update", "delete", "findAndModify", "bulkWrite"];

/// Checks the nesting of a command's bytes without recursion, before anything
/// that recurses (the parser, [`classify`], dropping a [`Document`]) sees them:
/// deeper than [`MAX_NESTING`] is refused. Also refuses malformed BSON.
pub fn check_raw_nesting(raw: &RawDocument) -> Result<(), MongoClassifyError> {
    enum Level<'a> {
        Document(RawIter<'a>),
        Array(RawArrayIter<'a>),
    }
    let malformed = |e: bson::raw::Error| MongoClassifyError::Malformed {
        command: raw
            .iter_elements()
            .next()
            .and_then(Result::ok)
            .map_or_else(String::new, |e| e.key().to_string()),
        problem: format!("the command is not well-formed BSON: {e}"),
    };
    let mut stack = vec![Level::Document(raw.iter_elements())];
    while let Some(top) = stack.last_mut() {
        let next = match top {
            Level::Document(it) => it
                .next()
                .map(|element| element.and_then(|element| element.value())),
            Level::Array(it) => it.next(),
        };
        let child = match next {
            None => {
                stack.pop();
                continue;
            }
            Some(Err(e)) => return Err(malformed(e)),
            Some(Ok(RawBsonRef::Document(d))) => Level::Document(d.iter_elements()),
            Some(Ok(RawBsonRef::JavaScriptCodeWithScope(c))) => {
                Level::Document(c.scope.iter_elements())
            }
            Some(Ok(RawBsonRef::Array(a))) => Level::Array(a.into_iter()),
            Some(Ok(_)) => continue,
        };
        if stack.len() >= MAX_NESTING {
            return Err(MongoClassifyError::TooDeep {
                what: "documents and arrays",
                limit: MAX_NESTING,
                at: format!("level {}", stack.len() + 1),
            });
        }
        stack.push(child);
    }
    Ok(())
}

/// What one bounded walk over a whole command found.
#[derive(Default)]
struct Scan {
    /// A JavaScript operator or value, anywhere.
    js: Option<&'static str>,
    /// A `$out` or `$merge` key, anywhere.
    write_stage: Option<&'static str>,
}

/// Walks `value` (at nesting `level`, the command being level 1), refusing
/// nesting deeper than [`MAX_NESTING`] before recursing further.
fn scan(value: &Bson, level: usize, found: &mut Scan) -> Result<(), MongoClassifyError> {
    let children: Box<dyn Iterator<Item = &Bson>> = match value {
        Bson::Document(d) => {
            for key in d.keys() {
                let js = JS_OPERATORS.iter().find(|op| **op == key.as_str());
                found.js = found.js.or(js.copied());
                let write = WRITE_STAGES.iter().find(|op| **op == key.as_str());
                found.write_stage = found.write_stage.or(write.copied());
            }
            Box::new(d.values())
        }
        Bson::Array(a) => Box::new(a.iter()),
        Bson::JavaScriptCode(_) | Bson::JavaScriptCodeWithScope(_) => {
            found.js = found.js.or(Some("JavaScript code"));
            return Ok(());
        }
        _ => return Ok(()),
    };
    for child in children {
        if level >= MAX_NESTING && matches!(child, Bson::Document(_) | Bson::Array(_)) {
            return Err(MongoClassifyError::TooDeep {
                what: "documents and arrays",
                limit: MAX_NESTING,
                at: format!("level {}", level + 1),
            });
        }
        scan(child, level + 1, found)?;
    }
    Ok(())
}

/// The class an aggregation pipeline needs: `write` if any stage at any
/// depth is `$out` or `$merge`, else `read`. `value` is the pipeline (an
/// array of one-field stage documents) found at `at` in command `command`;
/// `depth` is its sub-pipeline depth (1 for a command's own pipeline).
/// Unknown stages, malformed stages or sub-pipelines, and sub-pipelines
/// nested deeper than [`MAX_PIPELINE_DEPTH`] are refused.
pub fn classify_pipeline(
    value: &Bson,
    at: &str,
    depth: usize,
    command: &str,
) -> Result<CapabilityClass, MongoClassifyError> {
    let malformed = |problem: String| MongoClassifyError::Malformed {
        command: command.to_string(),
        problem,
    };
    if depth > MAX_PIPELINE_DEPTH {
        return Err(MongoClassifyError::TooDeep {
            what: "sub-pipelines",
            limit: MAX_PIPELINE_DEPTH,
            at: at.to_string(),
        });
    }
    let Bson::Array(stages) = value else {
        return Err(malformed(format!(
            "{at} must be an array of stage documents, not {:?}",
            value.element_type()
        )));
    };
    let mut class = CapabilityClass::Read;
    for (i, stage) in stages.iter().enumerate() {
        let here = format!("{at}[{i}]");
        let Bson::Document(stage) = stage else {
            return Err(malformed(format!(
                "{here} must be a stage document such as {{\"$match\": {{}}}}"
            )));
        };
        let mut fields = stage.iter();
        let (Some((name, spec)), None) = (fields.next(), fields.next()) else {
            return Err(malformed(format!(
                "{here} must have exactly one field, the stage name (it has {})",
                stage.len()
            )));
        };
        if WRITE_STAGES.contains(&name.as_str()) {
            class = CapabilityClass::Write;
        } else if !READ_STAGES.contains(&name.as_str()) {
            return Err(MongoClassifyError::UnknownStage {
                command: command.to_string(),
                stage: name.clone(),
                at: here,
            });
        }
        for (sub_at, sub) in sub_pipelines(name, spec, &here, command)? {
            class = class.max(classify_pipeline(sub, &sub_at, depth + 1, command)?);
        }
    }
    Ok(class)
}

/// The sub-pipelines stage `name` (with value `spec`, at `at`) carries, with
/// where each is. Stages not named here carry none.
fn sub_pipelines<'a>(
    name: &str,
    spec: &'a Bson,
    at: &str,
    command: &str,
) -> Result<Vec<(String, &'a Bson)>, MongoClassifyError> {
    let malformed = |problem: String| MongoClassifyError::Malformed {
        command: command.to_string(),
        problem,
    };
    let document = |what: &str| match spec {
        Bson::Document(d) => Ok(d),
        other => Err(malformed(format!(
            "{at}.{name} must be {what}, not {:?}",
            other.element_type()
        ))),
    };
    let mut found = Vec::new();
    match name {
        // {$facet: {name: [stages], ...}}: every value is a pipeline.
        "$facet" => {
            for (facet, pipeline) in document("a document of named pipelines")? {
                found.push((format!("{at}.$facet.{facet}"), pipeline));
            }
        }
        // {$lookup: {from, ..., pipeline: [stages]}}: the pipeline is optional.
        "$lookup" => {
            if let Some(pipeline) = document("a document")?.get("pipeline") {
                found.push((format!("{at}.$lookup.pipeline"), pipeline));
            }
        }
        // {$unionWith: "coll"} or {$unionWith: {coll, pipeline: [stages]}}.
        "$unionWith" if matches!(spec, Bson::String(_)) => {}
        "$unionWith" => {
            let d = document("a collection name or a document")?;
            if let Some(pipeline) = d.get("pipeline") {
                found.push((format!("{at}.$unionWith.pipeline"), pipeline));
            }
        }
        // {$merge: "coll"} or {$merge: {into, whenMatched: "merge" | [stages]}}.
        "$merge" => {
            if let Bson::Document(d) = spec
                && let Some(when @ Bson::Array(_)) = d.get("whenMatched")
            {
                found.push((format!("{at}.$merge.whenMatched"), when));
            }
        }
        // {$rankFusion: {input: {pipelines: {name: [stages], ...}}, ...}}, and
        // the same for $scoreFusion.
        "$rankFusion" | "$scoreFusion" => {
            let input = match document("a document")?.get("input") {
                Some(Bson::Document(input)) => input,
                _ => {
                    return Err(malformed(format!(
                        "{at}.{name}.input must be a document with `pipelines`"
                    )));
                }
            };
            let Some(Bson::Document(pipelines)) = input.get("pipelines") else {
                return Err(malformed(format!(
                    "{at}.{name}.input.pipelines must be a document of named pipelines"
                )));
            };
            for (label, pipeline) in pipelines {
                found.push((format!("{at}.{name}.input.pipelines.{label}"), pipeline));
            }
        }
        _ => {}
    }
    Ok(found)
}

/// The class of the pipelines a command carries outside `aggregate` (which
/// must have one): pipeline-style updates and view definitions. `None` when
/// it carries none.
fn carried_pipelines(
    name: &str,
    cmd: &Document,
) -> Result<Option<CapabilityClass>, MongoClassifyError> {
    let mut class = None;
    let mut add = |value: &Bson, at: &str| -> Result<(), MongoClassifyError> {
        let c = classify_pipeline(value, at, 1, name)?;
        class = Some(class.map_or(c, |old: CapabilityClass| old.max(c)));
        Ok(())
    };
    match name {
        // {update: coll, updates: [{q, u: [stages]}]}
        "update" => {
            if let Some(Bson::Array(updates)) = cmd.get("updates") {
                for (i, update) in updates.iter().enumerate() {
                    if let Bson::Document(update) = update
                        && let Some(u @ Bson::Array(_)) = update.get("u")
                    {
                        add(u, &format!("updates[{i}].u"))?;
                    }
                }
            }
        }
        // {findAndModify: coll, update: [stages]}
        "findAndModify" => {
            if let Some(u @ Bson::Array(_)) = cmd.get("update") {
                add(u, "update")?;
            }
        }
        // {create: view, viewOn, pipeline: [stages]}, {collMod: view, pipeline}
        "create" | "collMod" => {
            if let Some(pipeline) = cmd.get("pipeline") {
                add(pipeline, "pipeline")?;
            }
        }
        _ => {}
    }
    Ok(class)
}

/// Classifies a command document.
pub fn classify(cmd: &Document) -> Result<MongoClassified, MongoClassifyError> {
    let Some((name, value)) = cmd.iter().next() else {
        return Err(MongoClassifyError::Empty);
    };
    let name = name.as_str();
    if let Some((_, why)) = FORBIDDEN.iter().find(|(n, _)| *n == name) {
        return Err(MongoClassifyError::Forbidden(name.to_string(), why));
    }
    // One bounded walk over everything first: nothing below recurses deeper
    // than this has checked.
    let mut found = Scan::default();
    for child in cmd.values() {
        scan(child, 2, &mut found)?;
    }
    if let Some(op) = found.js {
        return Err(MongoClassifyError::Forbidden(
            format!("{name} with {op}"),
            "it runs server-side JavaScript",
        ));
    }
    let collection = match value {
        Bson::String(s) => Some(s.clone()),
        _ => None,
    };
    let class = if name == "explain" {
        let Some(Bson::Document(inner)) = cmd.get("explain") else {
            return Err(MongoClassifyError::Malformed {
                command: name.to_string(),
                problem: "its value must be the command document to explain".into(),
            });
        };
        if inner.keys().next().is_some_and(|k| k == "explain") {
            return Err(MongoClassifyError::Malformed {
                command: name.to_string(),
                problem: "an explain cannot explain an explain".into(),
            });
        }
        let inner = classify(inner)?;
        // MongoDB explains these write commands without executing them; a
        // pipeline inside that writes is caught below, by the second wall.
        if inner.class == CapabilityClass::Write
            && EXPLAINED_WITHOUT_EXECUTING.contains(&inner.operation.as_str())
        {
            CapabilityClass::Read
        } else {
            inner.class
        }
    } else if name == "aggregate" {
        let Some(pipeline) = cmd.get("pipeline") else {
            return Err(MongoClassifyError::Malformed {
                command: name.to_string(),
                problem: "it has no `pipeline` (an array of stage documents)".into(),
            });
        };
        classify_pipeline(pipeline, "pipeline", 1, name)?
    } else if READ.contains(&name) {
        if name == "profile"
            && cmd
                .get("profile")
                .is_some_and(|v| !matches!(v, Bson::Int32(-1) | Bson::Int64(-1)))
        {
            // Reading the level is `profile: -1`; anything else changes it.
            CapabilityClass::Maintenance
        } else {
            CapabilityClass::Read
        }
    } else if WRITE.contains(&name) {
        CapabilityClass::Write
    } else if DDL.contains(&name) {
        CapabilityClass::Ddl
    } else if MAINTENANCE.contains(&name) {
        CapabilityClass::Maintenance
    } else if SESSION_CONTROL.contains(&name) {
        CapabilityClass::SessionControl
    } else {
        return Err(MongoClassifyError::Unknown(name.to_string()));
    };
    // Pipelines outside `aggregate`: their stages must be known too.
    let carried = carried_pipelines(name, cmd)?;
    // A writing stage inside a non-write command: a read becomes a write
    // (the second wall: it catches a `$out`/`$merge` at a place the pipeline
    // walk does not model); in a view definition, a validator or any other
    // ddl/maintenance command it is refused, as the write would run later,
    // whenever the definition is used (reading a view runs its pipeline).
    let writes = carried == Some(CapabilityClass::Write) || found.write_stage.is_some();
    let class = match class {
        CapabilityClass::Read | CapabilityClass::Write if writes => CapabilityClass::Write,
        CapabilityClass::Read | CapabilityClass::Write => class,
        _ if writes => {
            return Err(MongoClassifyError::Forbidden(
                format!(
                    "{name} with {}",
                    found.write_stage.unwrap_or("a writing stage")
                ),
                "a definition that writes would write whenever it is used (reading a view runs its pipeline)",
            ));
        }
        _ => class,
    };
    Ok(MongoClassified {
        class,
        operation: name.to_string(),
        collection,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use CapabilityClass::*;
    use bson::doc;

    #[test]
    fn commands_take_the_class_of_what_they_do() {
        let cases: Vec<(Document, CapabilityClass)> = vec![
            (doc! {"find": "orders", "filter": {"status": "open"}}, Read),
            (
                doc! {"aggregate": "orders", "pipeline": [{"$group": {"_id": "$s"}}], "cursor": {}},
                Read,
            ),
            (
                doc! {"aggregate": "orders", "pipeline": [{"$match": {}}, {"$out": "copy"}], "cursor": {}},
                Write,
            ),
            (
                doc! {"aggregate": "orders", "pipeline": [{"$merge": {"into": "x"}}], "cursor": {}},
                Write,
            ),
            (
                doc! {"aggregate": "orders", "pipeline": [{"$indexStats": {}}], "cursor": {}},
                Read,
            ),
            (doc! {"count": "orders"}, Read),
            (doc! {"listIndexes": "orders"}, Read),
            (doc! {"collStats": "orders"}, Read),
            (doc! {"serverStatus": 1}, Read),
            (doc! {"currentOp": 1}, Read),
            (doc! {"profile": -1}, Read),
            (doc! {"profile": 1, "slowms": 50}, Maintenance),
            (doc! {"insert": "orders", "documents": [{"a": 1}]}, Write),
            (
                doc! {"update": "orders", "updates": [{"q": {}, "u": {"$set": {"a": 1}}}]},
                Write,
            ),
            (
                doc! {"delete": "orders", "deletes": [{"q": {}, "limit": 0}]},
                Write,
            ),
            (
                doc! {"findAndModify": "orders", "query": {}, "remove": true},
                Write,
            ),
            (
                doc! {"createIndexes": "orders", "indexes": [{"key": {"a": 1}, "name": "a_1"}]},
                Ddl,
            ),
            (doc! {"dropIndexes": "orders", "index": "a_1"}, Ddl),
            (doc! {"drop": "orders"}, Ddl),
            (doc! {"dropDatabase": 1}, Ddl),
            (doc! {"compact": "orders"}, Maintenance),
            (doc! {"reIndex": "orders"}, Maintenance),
            (doc! {"killOp": 1, "op": 1234}, SessionControl),
            (
                doc! {"explain": {"find": "orders", "filter": {"a": 1}}, "verbosity": "executionStats"},
                Read,
            ),
            (doc! {"explain": {"delete": "orders", "deletes": []}}, Read),
        ];
        for (cmd, class) in cases {
            let c = classify(&cmd).unwrap_or_else(|e| panic!("{cmd}: {e}"));
            assert_eq!(c.class, class, "{cmd}");
        }
        let c = classify(&doc! {"find": "orders"}).unwrap();
        assert_eq!(
            (c.operation.as_str(), c.collection.as_deref()),
            ("find", Some("orders"))
        );
    }

    #[test]
    fn dangerous_and_unknown_commands_are_refused() {
        let refused = [
            doc! {"eval": "db.dropDatabase()"},
            doc! {"mapReduce": "orders", "map": "function(){}", "reduce": "function(){}"},
            doc! {"shutdown": 1},
            doc! {"setParameter": 1, "notablescan": true},
            doc! {"createUser": "evil", "pwd": "x", "roles": []},
            doc! {"grantRolesToUser": "app", "roles": ["root"]},
            doc! {"replSetReconfig": {}},
            doc! {"applyOps": []},
            doc! {"getMore": 1_i64, "collection": "orders"},
            doc! {"fsync": 1, "lock": true},
            doc! {"find": "orders", "filter": {"$where": "sleep(10000)"}},
            doc! {"aggregate": "o", "pipeline": [{"$match": {"$expr": {"$function": {"body": "x", "args": [], "lang": "js"}}}}]},
            doc! {"aggregate": "o", "pipeline": [{"$group": {"_id": 1, "x": {"$accumulator": {}}}}]},
            doc! {"update": "o", "updates": [{"q": {"$where": "true"}, "u": {}}]},
            doc! {"find": "o", "filter": {"a": Bson::JavaScriptCode("1".into())}},
            doc! {"frobnicate": 1},
            doc! {"explain": {"eval": "1"}},
            doc! {"explain": "find"},
        ];
        for cmd in refused {
            assert!(classify(&cmd).is_err(), "{cmd} was accepted");
        }
        assert_eq!(classify(&Document::new()), Err(MongoClassifyError::Empty));
        let e = classify(&doc! {"shutdown": 1}).unwrap_err().to_string();
        assert!(e.contains("refused whatever the grant"), "{e}");
    }

    fn class_of(cmd: Document) -> CapabilityClass {
        classify(&cmd)
            .unwrap_or_else(|e| panic!("{cmd}: {e}"))
            .class
    }

    fn agg(pipeline: Bson) -> Document {
        doc! {"aggregate": "orders", "pipeline": pipeline, "cursor": {}}
    }

    #[test]
    fn writes_nested_in_sub_pipelines_are_writes() {
        let out = doc! {"$out": "copy"};
        let merge = doc! {"$merge": {"into": "copy"}};
        for write in [out, merge] {
            let cases = [
                bson::bson!([{"$facet": {"a": [{"$match": {}}], "b": [write.clone()]}}]),
                bson::bson!([{"$lookup": {"from": "x", "pipeline": [write.clone()], "as": "j"}}]),
                bson::bson!([{"$unionWith": {"coll": "x", "pipeline": [write.clone()]}}]),
                // Two and three levels deep.
                bson::bson!([{"$facet": {"a": [{"$lookup": {"from": "x", "pipeline": [write.clone()], "as": "j"}}]}}]),
                bson::bson!([{"$lookup": {"from": "x", "as": "j", "pipeline": [
                    {"$unionWith": {"coll": "y", "pipeline": [{"$facet": {"f": [write.clone()]}}]}}
                ]}}]),
                bson::bson!([{"$rankFusion": {"input": {"pipelines": {"p": [{"$match": {}}, write.clone()]}}}}]),
            ];
            for pipeline in cases {
                let cmd = agg(pipeline);
                assert_eq!(class_of(cmd.clone()), Write, "{cmd}");
                // explain of such a pipeline is a write too, whatever the verbosity.
                for verbosity in ["queryPlanner", "executionStats", "allPlansExecution"] {
                    let explain = doc! {"explain": cmd.clone(), "verbosity": verbosity};
                    assert_eq!(class_of(explain.clone()), Write, "{explain}");
                }
            }
        }
        // The same shapes without a writing stage stay reads.
        let reads = [
            bson::bson!([{"$facet": {"a": [{"$match": {}}], "b": [{"$count": "n"}]}}]),
            bson::bson!([{"$lookup": {"from": "x", "localField": "a", "foreignField": "b", "as": "j"}}]),
            bson::bson!([{"$lookup": {"from": "x", "let": {"v": "$a"}, "pipeline": [{"$match": {"$expr": {"$eq": ["$b", "$$v"]}}}], "as": "j"}}]),
            bson::bson!([{"$unionWith": "x"}]),
            bson::bson!([{"$unionWith": {"coll": "x", "pipeline": [{"$project": {"a": 1}}]}}]),
            bson::bson!([{"$graphLookup": {"from": "x", "startWith": "$a", "connectFromField": "a", "connectToField": "b", "as": "g"}}]),
            bson::bson!([{"$documents": [{"a": 1}]}, {"$unwind": "$a"}]),
        ];
        for pipeline in reads {
            let cmd = agg(pipeline);
            assert_eq!(class_of(cmd.clone()), Read, "{cmd}");
            assert_eq!(class_of(doc! {"explain": cmd.clone()}), Read, "{cmd}");
        }
        // Explaining a write command still executes nothing: read, as before;
        // but a writing stage inside it is a write.
        assert_eq!(
            class_of(
                doc! {"explain": {"update": "o", "updates": [{"q": {}, "u": {"$set": {"a": 1}}}]}}
            ),
            Read
        );
        assert_eq!(
            class_of(
                doc! {"explain": {"update": "o", "updates": [{"q": {}, "u": [{"$facet": {"a": [{"$out": "x"}]}}]}]}}
            ),
            Write
        );
    }

    #[test]
    fn a_writing_stage_key_anywhere_makes_a_read_a_write() {
        // A place the pipeline walk does not model (a stage's options): the
        // second wall still sees the `$out` key.
        let cmd = agg(bson::bson!([{"$search": {"x": [{"$out": "y"}]}}]));
        assert_eq!(class_of(cmd), Write);
        assert_eq!(
            class_of(doc! {"find": "o", "filter": {"a": {"$merge": 1}}}),
            Write
        );
    }

    #[test]
    fn unknown_and_malformed_stages_are_refused_where_they_are() {
        let e = classify(&agg(bson::bson!([{"$match": {}}, {"$frobnicate": {}}]))).unwrap_err();
        assert_eq!(
            e,
            MongoClassifyError::UnknownStage {
                command: "aggregate".into(),
                stage: "$frobnicate".into(),
                at: "pipeline[1]".into(),
            }
        );
        assert!(e.to_string().contains("unknown stages are refused"), "{e}");
        // Nested, and case matters (stage names are case-sensitive).
        let e = classify(&agg(bson::bson!([{"$facet": {"f": [{"$lookup": {"from": "x", "as": "j", "pipeline": [{"$OUT": "y"}]}}]}}]))).unwrap_err();
        assert_eq!(
            e,
            MongoClassifyError::UnknownStage {
                command: "aggregate".into(),
                stage: "$OUT".into(),
                at: "pipeline[0].$facet.f[0].$lookup.pipeline[0]".into(),
            }
        );
        let e = classify(&doc! {"explain": agg(bson::bson!([{"$unionWith": {"coll": "x", "pipeline": [{"$sneakyWrite": {}}]}}]))}).unwrap_err();
        assert!(matches!(e, MongoClassifyError::UnknownStage { .. }), "{e}");
        // Malformed: refused, not skipped.
        let malformed = [
            agg(bson::bson!([{"$match": {}, "$out": "x"}])),
            agg(bson::bson!([{}])),
            agg(bson::bson!(["$out"])),
            agg(bson::bson!({"$out": "x"})),
            agg(bson::bson!([{"$facet": [{"$out": "x"}]}])),
            agg(bson::bson!([{"$facet": {"a": {"$out": "x"}}}])),
            agg(bson::bson!([{"$lookup": {"from": "x", "as": "j", "pipeline": {"$out": "x"}}}])),
            agg(bson::bson!([{"$unionWith": {"coll": "x", "pipeline": "nope"}}])),
            agg(bson::bson!([{"$unionWith": 1}])),
            agg(bson::bson!([{"$rankFusion": {"input": {}}}])),
            doc! {"aggregate": "o", "cursor": {}},
            doc! {"explain": {"explain": {"find": "o"}}},
        ];
        for cmd in malformed {
            let e = classify(&cmd).unwrap_err();
            assert!(
                matches!(e, MongoClassifyError::Malformed { .. }),
                "{cmd}: {e}"
            );
        }
        let e = classify(&agg(
            bson::bson!([{"$facet": {"a": [{"$skip": 1, "$merge": "x"}]}}]),
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("pipeline[0].$facet.a[0] must have exactly one field"),
            "{e}"
        );
    }

    #[test]
    fn pipelines_outside_aggregate_are_walked_too() {
        // Pipeline-style updates: writes; their stages must be known.
        assert_eq!(
            class_of(
                doc! {"update": "o", "updates": [{"q": {}, "u": [{"$set": {"a": 1}}, {"$unset": "b"}]}]}
            ),
            Write
        );
        assert_eq!(
            class_of(
                doc! {"findAndModify": "o", "query": {}, "update": [{"$replaceWith": "$$ROOT"}]}
            ),
            Write
        );
        assert!(matches!(
            classify(&doc! {"update": "o", "updates": [{"q": {}, "u": [{"$frob": {}}]}]}),
            Err(MongoClassifyError::UnknownStage { .. })
        ));
        // A view over a read pipeline is ddl; one whose pipeline writes
        // (at any depth) would write whenever anyone reads it: refused.
        assert_eq!(
            class_of(
                doc! {"create": "v", "viewOn": "o", "pipeline": [{"$lookup": {"from": "x", "pipeline": [{"$match": {}}], "as": "j"}}]}
            ),
            Ddl
        );
        let refused = [
            doc! {"create": "v", "viewOn": "o", "pipeline": [{"$out": "x"}]},
            doc! {"create": "v", "viewOn": "o", "pipeline": [{"$facet": {"a": [{"$merge": {"into": "x"}}]}}]},
            doc! {"collMod": "v", "viewOn": "o", "pipeline": [{"$unionWith": {"coll": "x", "pipeline": [{"$out": "y"}]}}]},
            doc! {"createIndexes": "o", "indexes": [{"key": {"a": 1}, "name": "a", "partialFilterExpression": {"$out": 1}}]},
        ];
        for cmd in refused {
            let e = classify(&cmd).unwrap_err();
            assert!(matches!(e, MongoClassifyError::Forbidden(..)), "{cmd}: {e}");
            assert!(e.to_string().contains("whenever it is used"), "{e}");
        }
        assert!(matches!(
            classify(&doc! {"create": "v", "viewOn": "o", "pipeline": [{"$frob": {}}]}),
            Err(MongoClassifyError::UnknownStage { .. })
        ));
    }

    /// `levels` `$facet`s inside one another, the innermost holding `last`.
    fn facets(levels: usize, last: Document) -> Bson {
        let mut pipeline = bson::bson!([last]);
        for _ in 0..levels {
            pipeline = bson::bson!([{"$facet": {"f": pipeline}}]);
        }
        pipeline
    }

    /// Runs `f` on a thread with an 8 MiB stack: building and parsing
    /// documents `MAX_NESTING` levels deep takes about 18 KiB of stack a level
    /// in a debug build, more than a test thread's 2 MiB.
    fn with_big_stack(f: fn()) {
        std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn nesting_is_bounded() {
        with_big_stack(nesting_is_bounded_body);
    }

    fn nesting_is_bounded_body() {
        // MAX_PIPELINE_DEPTH pipelines in all (the command's own + 19 facets): fine.
        let deepest = agg(facets(MAX_PIPELINE_DEPTH - 1, doc! {"$out": "x"}));
        assert_eq!(class_of(deepest), Write);
        let e = classify(&agg(facets(MAX_PIPELINE_DEPTH, doc! {"$match": {}}))).unwrap_err();
        assert!(
            matches!(
                e,
                MongoClassifyError::TooDeep {
                    what: "sub-pipelines",
                    limit: MAX_PIPELINE_DEPTH,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("deeper than 20 levels"), "{e}");
        // Plain documents: a filter nested past MAX_NESTING is refused
        // before anything recurses into it.
        let mut filter = doc! {"a": 1};
        for _ in 0..MAX_NESTING {
            filter = doc! {"a": filter};
        }
        let e = classify(&doc! {"find": "o", "filter": filter}).unwrap_err();
        assert!(
            matches!(
                e,
                MongoClassifyError::TooDeep {
                    what: "documents and arrays",
                    ..
                }
            ),
            "{e}"
        );
        // The same limit on the bytes: exactly MAX_NESTING levels pass,
        // one more does not.
        let ok = nested_bytes(MAX_NESTING);
        check_raw_nesting(RawDocument::from_bytes(&ok).unwrap()).unwrap();
        Document::from_reader(ok.as_slice()).unwrap();
        let over = nested_bytes(MAX_NESTING + 1);
        let e = check_raw_nesting(RawDocument::from_bytes(&over).unwrap()).unwrap_err();
        assert!(matches!(e, MongoClassifyError::TooDeep { .. }), "{e}");
        // Arrays count as levels too.
        let arrays = nested_bytes_with(MAX_NESTING + 1, 0x04);
        assert!(check_raw_nesting(RawDocument::from_bytes(&arrays).unwrap()).is_err());
    }

    #[test]
    fn a_hostile_deeply_nested_command_is_refused_without_recursing() {
        // 16 MiB holds about two million levels; parsing that into a
        // `Document` (which recurses per level) would overflow the stack.
        // The check walks the bytes with a heap stack, in a thread with a
        // small stack to show it does not recurse.
        let bytes = nested_bytes(2_000_000);
        assert!(bytes.len() <= 16 * 1024 * 1024, "{}", bytes.len());
        let checked = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || check_raw_nesting(RawDocument::from_bytes(&bytes).unwrap()))
            .unwrap()
            .join()
            .unwrap();
        assert!(
            matches!(
                checked,
                Err(MongoClassifyError::TooDeep {
                    limit: MAX_NESTING,
                    ..
                })
            ),
            "{checked:?}"
        );
    }

    #[test]
    fn malformed_bytes_are_refused_by_the_nesting_check() {
        let mut bytes = nested_bytes(10);
        // Corrupt an inner length.
        bytes[9] = 0xff;
        if let Ok(raw) = RawDocument::from_bytes(&bytes) {
            assert!(check_raw_nesting(raw).is_err());
        }
    }

    /// `{"a": {"a": ... {}}}`: `levels` documents in all, built without
    /// recursion.
    pub(crate) fn nested_bytes(levels: usize) -> Vec<u8> {
        nested_bytes_with(levels, 0x03)
    }

    /// The same with element type `kind` for the inner levels (0x03 document,
    /// 0x04 array: an array's keys are "0", "1", ...; one key "0" each here).
    fn nested_bytes_with(levels: usize, kind: u8) -> Vec<u8> {
        let key = if kind == 0x04 { b'0' } else { b'a' };
        // Each level: length (4), type (1), key "a\0" (2), ..., trailing 0 (1).
        let size = |level: usize| 5 + 8 * (level - 1);
        let mut out = Vec::with_capacity(size(levels));
        for level in (2..=levels).rev() {
            out.extend_from_slice(&i32::try_from(size(level)).unwrap().to_le_bytes());
            out.extend_from_slice(&[kind, key, 0]);
        }
        out.extend_from_slice(&[5, 0, 0, 0, 0]);
        out.extend(std::iter::repeat_n(0u8, levels - 1));
        out
    }
}
