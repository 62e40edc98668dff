//! Classifying a MongoDB command the way `sql/classify.rs` classifies a
//! statement: the host decides which capability class a command needs from
//! the command document itself, never from what the plugin says it is.
//!
//! The command name is the document's first key (as MongoDB reads it).
//! Known commands map to a class; commands that run server-side JavaScript
//! (`$where`, `$function`, `$accumulator`, `mapReduce`, `eval`), change
//! users, roles, server parameters or replication, or shut the server down
//! are refused for any grant; anything unknown is refused too (deny by
//! default). An `aggregate` with `$out` or `$merge` writes; `explain` takes
//! the class of the command it explains.

use crate::capability::CapabilityClass;
use bson::{Bson, Document};

/// Why a command was not classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MongoClassifyError {
    #[error("the command document is empty")]
    Empty,
    #[error("`{0}` is refused whatever the grant: {1}")]
    Forbidden(String, &'static str),
    #[error("`{0}` is not a command Warden knows; unknown commands are refused")]
    Unknown(String),
    #[error("`{command}`: {problem}")]
    Malformed { command: String, problem: String },
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

/// Operators that run JavaScript on the server, refused anywhere in a
/// command (filters, pipelines, updates).
const JS_OPERATORS: &[&str] = &["$where", "$function", "$accumulator"];

/// Finds a JavaScript operator anywhere in `value`.
fn find_js(value: &Bson) -> Option<&'static str> {
    match value {
        Bson::Document(d) => d.iter().find_map(|(k, v)| {
            JS_OPERATORS
                .iter()
                .find(|op| **op == k.as_str())
                .copied()
                .or_else(|| find_js(v))
        }),
        Bson::Array(a) => a.iter().find_map(find_js),
        Bson::JavaScriptCode(_) | Bson::JavaScriptCodeWithScope(_) => Some("JavaScript code"),
        _ => None,
    }
}

/// True if an aggregation pipeline ends in a stage that writes.
fn pipeline_writes(cmd: &Document) -> bool {
    match cmd.get("pipeline") {
        Some(Bson::Array(stages)) => stages.iter().any(|s| {
            matches!(s, Bson::Document(d) if d.contains_key("$out") || d.contains_key("$merge"))
        }),
        _ => false,
    }
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
    if let Some(op) = find_js(&Bson::Document(cmd.clone())) {
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
        // explain runs the planner, not the command: but explaining a write
        // with executionStats would execute nothing either. Take the inner
        // command's class, except that writes are only read to explain.
        let inner = classify(inner)?;
        match inner.class {
            CapabilityClass::Write | CapabilityClass::Read => CapabilityClass::Read,
            other => other,
        }
    } else if name == "aggregate" {
        if pipeline_writes(cmd) {
            CapabilityClass::Write
        } else {
            CapabilityClass::Read
        }
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
}
