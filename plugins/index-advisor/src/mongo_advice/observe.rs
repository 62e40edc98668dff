//! Observations: one slow operation, from mongod's structured log or from a
//! `system.profile` document.
//!
//! **Structured log** (4.4+, one JSON object per line): only lines with
//! `msg` `"Slow query"` (or `id` 51803) on components `COMMAND`, `WRITE` or
//! `QUERY` are read. The line is decoded as Extended JSON (relaxed or
//! canonical: `{"$oid": ..}`, `{"$date": ..}`, `{"$numberLong": ..}`,
//! `{"$uuid": ..}`, ... become BSON values, key order kept; a wrapper
//! whose content does not convert stays a document, see `extjson`). Fields, in
//! `attr`: `type`, `ns`, `command`, `originatingCommand`, `planSummary`,
//! `docsExamined`, `keysExamined`, `nreturned`, `hasSortStage`,
//! `durationMillis`, `truncated`; the time is `t`.
//!
//! **Profiler**: `op`, `ns`, `command`, `originatingCommand`,
//! `planSummary`, `docsExamined`, `keysExamined`, `nreturned`,
//! `hasSortStage`, `millis`, `ts`.
//!
//! Operation kinds, from the log's `type` / the profiler's `op` and the
//! command's first key:
//!
//! - `find`: `filter`, `sort`, `projection`;
//! - `aggregate`: the leading `$match` and `$sort` stages (in either order,
//!   as the optimizer moves a `$match` before a `$sort`): several `$match`
//!   are combined with `$and`, the first `$sort` is the sort; the first other
//!   stage ends the prefix. No projection;
//! - `count` and `distinct`: `query`;
//! - `findAndModify` (any case): `query`, `sort`, `fields`;
//! - `getMore`: the kind, filter, sort and projection of its
//!   `originatingCommand`, with its own metrics; marked
//!   [`Observation::get_more`];
//! - `update` (log type / profiler op `update`): `command.q`; the example is
//!   `{update: coll, updates: [<the statement>]}`;
//! - `delete` (log type / profiler op `remove`): `command.q`; the example
//!   is `{delete: coll, deletes: [{q, limit}]}`.
//!
//! `nreturned`: for updates, `nMatched`; for deletes, `ndeleted` (the
//! documents the filter selected); `count` and `distinct` report none (0).
//!
//! The example command is the query command without the fields a driver or
//! session adds (`lsid`, `$clusterTime`, `$db`, `txnNumber`, `readConcern`,
//! `writeConcern`, `$readPreference`, ...), ready to wrap in
//! `{explain: ..}` against the namespace's database. When the log line is
//! `truncated`, the command may be incomplete: [`Observation::truncated`].

use std::collections::BTreeMap;
use std::fmt;

use bson::{Bson, DateTime, Document, doc};

use super::{as_u64, truthy};

/// The kind of a query operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpKind {
    Find,
    Aggregate,
    Count,
    Distinct,
    Update,
    Delete,
    FindAndModify,
}

impl OpKind {
    /// The command name: `find`, `aggregate`, ..., `findAndModify`.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Find => "find",
            OpKind::Aggregate => "aggregate",
            OpKind::Count => "count",
            OpKind::Distinct => "distinct",
            OpKind::Update => "update",
            OpKind::Delete => "delete",
            OpKind::FindAndModify => "findAndModify",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One slow operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// `db.coll`.
    pub namespace: String,
    pub op: OpKind,
    /// The query filter (empty when none).
    pub filter: Document,
    /// The sort (empty when none).
    pub sort: Document,
    /// The projection (empty when none).
    pub projection: Document,
    /// `planSummary` as the server wrote it (`COLLSCAN`,
    /// `IXSCAN { status: 1 }`, ...); empty when absent.
    pub plan_summary: String,
    pub docs_examined: u64,
    pub keys_examined: u64,
    /// Documents returned (updates: matched; deletes: deleted).
    pub nreturned: u64,
    pub duration_ms: u64,
    /// The plan had a blocking (in-memory) sort stage.
    pub has_sort_stage: bool,
    /// A `getMore` of a cursor (the query is its originating command).
    pub get_more: bool,
    /// The log truncated the command: [`Observation::command`] may be
    /// incomplete.
    pub truncated: bool,
    /// When it was logged or profiled.
    pub time: Option<DateTime>,
    /// The query command without driver/session fields, for `explain`.
    pub command: Document,
}

/// Why a log line or a profile document gave no observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Not JSON, not the structured log format, or missing the fields a
    /// slow-query entry has.
    Malformed(String),
    /// Well formed, but not a user query this module analyses.
    Ignored(String),
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::Malformed(why) => write!(f, "malformed: {why}"),
            Skip::Ignored(why) => write!(f, "ignored: {why}"),
        }
    }
}

/// The observations of a whole log, with what was skipped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogScan {
    pub observations: Vec<Observation>,
    /// 1-based line number and reason, for each malformed line.
    pub malformed: Vec<(usize, String)>,
    /// Ignored lines, counted per reason (blank lines are not counted).
    pub ignored: BTreeMap<String, u64>,
}

/// Reads every line of `text` with [`parse_log_line`].
pub fn parse_log(text: &str) -> LogScan {
    let mut scan = LogScan::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_log_line(line) {
            Ok(obs) => scan.observations.push(obs),
            Err(Skip::Malformed(why)) => scan.malformed.push((i + 1, why)),
            Err(Skip::Ignored(why)) => *scan.ignored.entry(why).or_insert(0) += 1,
        }
    }
    scan
}

/// Components whose `"Slow query"` lines describe queries.
const COMPONENTS: [&str; 3] = ["COMMAND", "WRITE", "QUERY"];
/// The log id of `"Slow query"`.
const SLOW_QUERY_ID: i64 = 51803;

/// One line of mongod's structured log.
pub fn parse_log_line(line: &str) -> Result<Observation, Skip> {
    let line = line.trim();
    if !line.starts_with('{') {
        return Err(Skip::Malformed("not a JSON object".to_owned()));
    }
    let entry = super::extjson::parse_document(line)
        .map_err(|e| Skip::Malformed(format!("not JSON: {e}")))?;
    let component = entry
        .get_str("c")
        .map_err(|_| Skip::Malformed("no component (`c`): not a structured log line".to_owned()))?;
    let msg = entry.get_str("msg").unwrap_or("");
    let id = entry.get("id").and_then(super::as_f64);
    if msg != "Slow query" && id != Some(SLOW_QUERY_ID as f64) {
        return Err(Skip::Ignored(format!(
            "{component} message, not a slow query"
        )));
    }
    if !COMPONENTS.contains(&component) {
        return Err(Skip::Ignored(format!(
            "slow query on component {component}"
        )));
    }
    let attr = entry
        .get_document("attr")
        .map_err(|_| Skip::Malformed("slow query without `attr`".to_owned()))?;
    let kind = attr.get_str("type").unwrap_or("command");
    let time = match entry.get("t") {
        Some(Bson::DateTime(t)) => Some(*t),
        _ => None,
    };
    let mut obs = observe(kind, attr, "durationMillis", time)?;
    obs.truncated = attr.contains_key("truncated");
    Ok(obs)
}

/// One `system.profile` document.
pub fn from_profile(profile: &Document) -> Result<Observation, Skip> {
    let op = profile
        .get_str("op")
        .map_err(|_| Skip::Malformed("profile document without `op`".to_owned()))?;
    let kind = match op {
        "query" | "getmore" | "command" => "command",
        other => other,
    };
    let time = match profile.get("ts") {
        Some(Bson::DateTime(t)) => Some(*t),
        _ => None,
    };
    let mut obs = observe(kind, profile, "millis", time)?;
    obs.truncated = profile
        .get_document("command")
        .is_ok_and(|c| c.contains_key("$truncated"));
    Ok(obs)
}

/// `db.coll` → `("db", "coll")`; `None` without a dot or with an empty part.
pub fn split_namespace(ns: &str) -> Option<(&str, &str)> {
    ns.split_once('.')
        .filter(|(db, coll)| !db.is_empty() && !coll.is_empty())
}

/// Why a namespace is not analysed, if it is not.
fn ignored_namespace(ns: &str) -> Option<String> {
    let Some((db, coll)) = split_namespace(ns) else {
        return Some(format!("namespace {ns:?} has no collection"));
    };
    if matches!(db, "admin" | "local" | "config") {
        return Some(format!("{db} database"));
    }
    if coll.starts_with("system.") {
        return Some("system collection".to_owned());
    }
    if coll.starts_with("$cmd") {
        return Some("command namespace ($cmd)".to_owned());
    }
    None
}

/// What a query command asks for.
struct Query {
    op: OpKind,
    filter: Document,
    sort: Document,
    projection: Document,
    example: Document,
}

/// The observation of `entry` (a log line's `attr` or a profile document),
/// `kind` being the log `type` / profiler op (`command`, `update`,
/// `remove`, ...).
fn observe(
    kind: &str,
    entry: &Document,
    duration_key: &str,
    time: Option<DateTime>,
) -> Result<Observation, Skip> {
    let ns = entry
        .get_str("ns")
        .map_err(|_| Skip::Malformed("no namespace (`ns`)".to_owned()))?;
    if let Some(why) = ignored_namespace(ns) {
        return Err(Skip::Ignored(why));
    }
    let command = entry
        .get_document("command")
        .map_err(|_| Skip::Malformed("no `command` document".to_owned()))?;
    let coll = split_namespace(ns).map_or("", |(_, c)| c);
    let mut get_more = false;
    let query = match kind {
        "update" => write_statement(OpKind::Update, coll, command),
        "remove" | "delete" => write_statement(OpKind::Delete, coll, command),
        "insert" => return Err(Skip::Ignored("insert (no filter)".to_owned())),
        "command" | "query" | "getmore" => {
            let name = command.keys().next().map_or("", String::as_str);
            if name.eq_ignore_ascii_case("getMore") {
                get_more = true;
                let origin = entry.get_document("originatingCommand").map_err(|_| {
                    Skip::Ignored("getMore without its originatingCommand".to_owned())
                })?;
                query_command(origin)?
            } else {
                query_command(command)?
            }
        }
        other => return Err(Skip::Ignored(format!("operation type {other}"))),
    };
    let num = |key: &str| entry.get(key).and_then(as_u64);
    let nreturned = num("nreturned")
        .or_else(|| num("nMatched"))
        .or_else(|| num("ndeleted"))
        .unwrap_or(0);
    Ok(Observation {
        namespace: ns.to_owned(),
        op: query.op,
        filter: query.filter,
        sort: query.sort,
        projection: query.projection,
        plan_summary: entry.get_str("planSummary").unwrap_or("").to_owned(),
        docs_examined: num("docsExamined").unwrap_or(0),
        keys_examined: num("keysExamined").unwrap_or(0),
        nreturned,
        duration_ms: num(duration_key).unwrap_or(0),
        has_sort_stage: truthy(entry.get("hasSortStage")),
        get_more,
        truncated: false,
        time,
        command: query.example,
    })
}

/// A sub-document of `doc`, or an empty one.
fn sub(doc: &Document, key: &str) -> Document {
    doc.get_document(key).cloned().unwrap_or_default()
}

/// A query command (`find`, `aggregate`, `count`, `distinct`,
/// `findAndModify`).
fn query_command(command: &Document) -> Result<Query, Skip> {
    let name = command.keys().next().map_or("", String::as_str);
    let example = clean_command(command);
    let query = |op, filter, sort, projection| {
        Ok(Query {
            op,
            filter,
            sort,
            projection,
            example: example.clone(),
        })
    };
    match name.to_ascii_lowercase().as_str() {
        "find" => query(
            OpKind::Find,
            sub(command, "filter"),
            sub(command, "sort"),
            sub(command, "projection"),
        ),
        "aggregate" => {
            if !matches!(command.get(name), Some(Bson::String(_))) {
                return Err(Skip::Ignored(
                    "database-level aggregate (no collection)".to_owned(),
                ));
            }
            let (filter, sort) = pipeline_prefix(command.get_array("pipeline").ok());
            query(OpKind::Aggregate, filter, sort, Document::new())
        }
        "count" => query(
            OpKind::Count,
            sub(command, "query"),
            Document::new(),
            Document::new(),
        ),
        "distinct" => query(
            OpKind::Distinct,
            sub(command, "query"),
            Document::new(),
            Document::new(),
        ),
        "findandmodify" => query(
            OpKind::FindAndModify,
            sub(command, "query"),
            sub(command, "sort"),
            sub(command, "fields"),
        ),
        "getmore" => Err(Skip::Ignored(
            "getMore whose originating command is a getMore".to_owned(),
        )),
        "update" | "delete" | "insert" => Err(Skip::Ignored(format!(
            "{name} command summary (statements are logged apart)"
        ))),
        "" => Err(Skip::Malformed("empty command".to_owned())),
        "$truncated" => Err(Skip::Ignored(
            "truncated command (only a summary string was kept)".to_owned(),
        )),
        _ => Err(Skip::Ignored(format!("{name} is not a query command"))),
    }
}

/// The filter and sort of an aggregation pipeline's leading `$match` and
/// `$sort` stages.
fn pipeline_prefix(pipeline: Option<&Vec<Bson>>) -> (Document, Document) {
    let mut matches: Vec<Document> = Vec::new();
    let mut sort: Option<Document> = None;
    for stage in pipeline.into_iter().flatten() {
        let Bson::Document(stage) = stage else { break };
        match stage.iter().next() {
            Some((name, Bson::Document(body))) if name == "$match" => matches.push(body.clone()),
            Some((name, Bson::Document(body))) if name == "$sort" && sort.is_none() => {
                sort = Some(body.clone());
            }
            _ => break,
        }
    }
    let filter = match matches.len() {
        0 => Document::new(),
        1 => matches.pop().unwrap_or_default(),
        _ => doc! { "$and": matches.into_iter().map(Bson::Document).collect::<Vec<_>>() },
    };
    (filter, sort.unwrap_or_default())
}

/// An update or delete statement (`command` is `{q, u, multi, upsert}` or
/// `{q, limit}`).
fn write_statement(op: OpKind, coll: &str, command: &Document) -> Query {
    let filter = sub(command, "q");
    let example = if op == OpKind::Update {
        let mut statement = Document::new();
        for key in [
            "q",
            "u",
            "multi",
            "upsert",
            "arrayFilters",
            "collation",
            "hint",
        ] {
            if let Some(v) = command.get(key) {
                statement.insert(key, v.clone());
            }
        }
        doc! { "update": coll, "updates": [statement] }
    } else {
        let mut statement = doc! { "q": filter.clone() };
        statement.insert(
            "limit",
            command.get("limit").cloned().unwrap_or(Bson::Int32(0)),
        );
        if let Some(v) = command.get("collation") {
            statement.insert("collation", v.clone());
        }
        doc! { "delete": coll, "deletes": [statement] }
    };
    Query {
        op,
        filter,
        sort: Document::new(),
        projection: Document::new(),
        example,
    }
}

/// Fields a driver, a session or a router adds to a command; an `explain`
/// must not carry them.
const DRIVER_FIELDS: [&str; 20] = [
    "lsid",
    "$clusterTime",
    "$db",
    "txnNumber",
    "autocommit",
    "startTransaction",
    "stmtId",
    "$readPreference",
    "readConcern",
    "writeConcern",
    "$client",
    "$audit",
    "$configServerState",
    "$configTime",
    "$topologyTime",
    "shardVersion",
    "databaseVersion",
    "clientOperationKey",
    "mayBypassWriteBlocking",
    "$truncated",
];

/// `command` without [`DRIVER_FIELDS`].
fn clean_command(command: &Document) -> Document {
    command
        .iter()
        .filter(|(k, _)| !DRIVER_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(component: &str, attr: &str) -> String {
        format!(
            r#"{{"t":{{"$date":"2026-11-20T10:00:01.123+00:00"}},"s":"I",  "c":"{component}",  "id":51803,   "ctx":"conn12","msg":"Slow query","attr":{attr}}}"#
        )
    }

    #[test]
    fn slow_find_with_extended_json_values() {
        let l = line(
            "COMMAND",
            r#"{"type":"command","ns":"shop.orders","command":{"find":"orders","filter":{"customer":{"$oid":"64b7f0c2a1b2c3d4e5f60718"},"created":{"$gte":{"$date":"2026-01-01T00:00:00.000Z"}},"n":{"$numberLong":"9007199254740993"}},"sort":{"created":-1,"_id":1},"projection":{"total":1},"lsid":{"id":{"$uuid":"5f3d6c1e-8a2b-4c7d-9e0f-1a2b3c4d5e6f"}},"$clusterTime":{"clusterTime":{"$timestamp":{"t":1763632801,"i":1}}},"$db":"shop"},"planSummary":"COLLSCAN","keysExamined":0,"docsExamined":1000,"hasSortStage":true,"nreturned":3,"durationMillis":87}"#,
        );
        let obs = parse_log_line(&l).unwrap();
        assert_eq!(obs.namespace, "shop.orders");
        assert_eq!(obs.op, OpKind::Find);
        assert!(matches!(
            obs.filter.get("customer"),
            Some(Bson::ObjectId(_))
        ));
        let created = obs.filter.get_document("created").unwrap();
        assert!(matches!(created.get("$gte"), Some(Bson::DateTime(_))));
        assert_eq!(
            obs.filter.get("n"),
            Some(&Bson::Int64(9_007_199_254_740_993))
        );
        // Key order is kept (the sort's order matters).
        let keys: Vec<&String> = obs.sort.keys().collect();
        assert_eq!(keys, ["created", "_id"]);
        assert_eq!(obs.projection, doc! { "total": 1 });
        assert_eq!(obs.plan_summary, "COLLSCAN");
        assert_eq!(
            (
                obs.docs_examined,
                obs.keys_examined,
                obs.nreturned,
                obs.duration_ms
            ),
            (1000, 0, 3, 87)
        );
        assert!(obs.has_sort_stage);
        assert!(!obs.get_more && !obs.truncated);
        assert_eq!(
            obs.time,
            DateTime::parse_rfc3339_str("2026-11-20T10:00:01.123Z").ok()
        );
        // Driver and session fields are dropped from the example command.
        let keys: Vec<&String> = obs.command.keys().collect();
        assert_eq!(keys, ["find", "filter", "sort", "projection"]);
    }

    #[test]
    fn skips_are_reasons_not_panics() {
        let cases = [
            ("", true),
            ("garbage", true),
            ("{\"t\":", true),
            ("[1,2]", true),
            ("{\"a\":1}", true),
            (r#"{"c":"COMMAND","msg":"Slow query"}"#, true),
            (
                r#"{"c":"COMMAND","msg":"Slow query","attr":{"ns":"a.b"}}"#,
                true,
            ),
            (
                r#"{"c":"COMMAND","msg":"Slow query","attr":{"command":{}}}"#,
                true,
            ),
            (
                r#"{"c":"COMMAND","msg":"Slow query","attr":{"ns":"a.b","command":{}}}"#,
                true,
            ),
            (
                r#"{"c":"NETWORK","id":22943,"msg":"Connection accepted","attr":{}}"#,
                false,
            ),
            (
                r#"{"c":"STORAGE","id":51803,"msg":"Slow query","attr":{}}"#,
                false,
            ),
            (
                r#"{"c":"COMMAND","msg":"Slow query","attr":{"ns":"a.b","command":{"hello":1}}}"#,
                false,
            ),
            (
                r#"{"c":"COMMAND","msg":"Slow query","attr":{"ns":"a.b","command":{"getMore":1}}}"#,
                false,
            ),
            (
                r#"{"c":"COMMAND","msg":"Slow query","attr":{"ns":"a.$cmd.aggregate","command":{"aggregate":1}}}"#,
                false,
            ),
            (
                r#"{"c":"COMMAND","msg":"Slow query","attr":{"ns":"a.b","command":{"aggregate":1}}}"#,
                false,
            ),
            (
                r#"{"c":"COMMAND","msg":"Slow query","attr":{"ns":"a","command":{"find":"a"}}}"#,
                false,
            ),
            (
                r#"{"c":"COMMAND","msg":"Slow query","attr":{"ns":"config.system.sessions","command":{"find":"system.sessions"}}}"#,
                false,
            ),
            (
                r#"{"c":"COMMAND","msg":"Slow query","attr":{"ns":"app.system.js","command":{"find":"system.js"}}}"#,
                false,
            ),
            (
                r#"{"c":"COMMAND","msg":"Slow query","attr":{"ns":"local.oplog.rs","command":{"find":"oplog.rs"}}}"#,
                false,
            ),
            (
                r#"{"c":"WRITE","msg":"Slow query","attr":{"type":"insert","ns":"a.b","command":{}}}"#,
                false,
            ),
            (
                r#"{"c":"COMMAND","msg":"Slow query","attr":{"ns":"a.b","command":{"update":"b","ordered":true}}}"#,
                false,
            ),
        ];
        for (text, malformed) in cases {
            match parse_log_line(text) {
                Ok(obs) => panic!("{text}: unexpected {obs:?}"),
                Err(Skip::Malformed(_)) => assert!(malformed, "{text}: malformed"),
                Err(Skip::Ignored(_)) => assert!(!malformed, "{text}: ignored"),
            }
        }
    }

    #[test]
    fn get_more_uses_its_originating_command() {
        let l = line(
            "COMMAND",
            r#"{"type":"command","ns":"shop.orders","command":{"getMore":{"$numberLong":"4962081437813441234"},"collection":"orders","$db":"shop"},"originatingCommand":{"aggregate":"orders","pipeline":[{"$sort":{"created":1}},{"$match":{"status":"A"}},{"$match":{"qty":{"$lt":3}}},{"$sort":{"x":1}},{"$limit":5}],"cursor":{},"$db":"shop"},"planSummary":"IXSCAN { status: 1 }","docsExamined":10,"nreturned":5,"durationMillis":3}"#,
        );
        let obs = parse_log_line(&l).unwrap();
        assert!(obs.get_more);
        assert_eq!(obs.op, OpKind::Aggregate);
        assert_eq!(
            obs.filter,
            doc! { "$and": [ { "status": "A" }, { "qty": { "$lt": 3 } } ] }
        );
        assert_eq!(obs.sort, doc! { "created": 1 });
        assert_eq!(obs.command.get_str("aggregate").unwrap(), "orders");
        assert!(!obs.command.contains_key("$db"));
    }

    #[test]
    fn update_and_remove_statements() {
        let u = line(
            "WRITE",
            r#"{"type":"update","ns":"shop.orders","command":{"q":{"sku":"x"},"u":{"$set":{"a":1}},"multi":true,"upsert":false},"planSummary":"COLLSCAN","keysExamined":0,"docsExamined":500,"nMatched":2,"nModified":2,"durationMillis":9}"#,
        );
        let obs = parse_log_line(&u).unwrap();
        assert_eq!(obs.op, OpKind::Update);
        assert_eq!(obs.filter, doc! { "sku": "x" });
        assert_eq!(obs.nreturned, 2);
        assert_eq!(
            obs.command,
            doc! { "update": "orders", "updates": [ { "q": { "sku": "x" }, "u": { "$set": { "a": 1 } }, "multi": true, "upsert": false } ] }
        );
        let r = line(
            "WRITE",
            r#"{"type":"remove","ns":"shop.orders","command":{"q":{"sku":"y"},"limit":0},"planSummary":"COLLSCAN","docsExamined":500,"ndeleted":4,"durationMillis":9,"truncated":{"command":{"q":{"type":"object","size":1}}}}"#,
        );
        let obs = parse_log_line(&r).unwrap();
        assert_eq!(obs.op, OpKind::Delete);
        assert_eq!(obs.nreturned, 4);
        assert!(obs.truncated);
        assert_eq!(
            obs.command,
            doc! { "delete": "orders", "deletes": [ { "q": { "sku": "y" }, "limit": 0 } ] }
        );
    }

    #[test]
    fn count_distinct_and_find_and_modify() {
        let c = line(
            "COMMAND",
            r#"{"type":"command","ns":"shop.orders","command":{"count":"orders","query":{"a":1},"$db":"shop"},"planSummary":"COLLSCAN","docsExamined":7,"durationMillis":1}"#,
        );
        let obs = parse_log_line(&c).unwrap();
        assert_eq!((obs.op, obs.nreturned), (OpKind::Count, 0));
        assert_eq!(obs.filter, doc! { "a": 1 });
        let d = line(
            "COMMAND",
            r#"{"type":"command","ns":"shop.users","command":{"distinct":"users","key":"country","query":{"active":true},"$db":"shop"},"durationMillis":1}"#,
        );
        let obs = parse_log_line(&d).unwrap();
        assert_eq!(obs.op, OpKind::Distinct);
        assert_eq!(obs.filter, doc! { "active": true });
        let f = line(
            "COMMAND",
            r#"{"type":"command","ns":"q.jobs","command":{"findandmodify":"jobs","query":{"state":"new"},"sort":{"prio":-1},"fields":{"a":1},"update":{"$set":{"state":"run"}},"$db":"q"},"durationMillis":1}"#,
        );
        let obs = parse_log_line(&f).unwrap();
        assert_eq!(obs.op, OpKind::FindAndModify);
        assert_eq!(obs.sort, doc! { "prio": -1 });
        assert_eq!(obs.projection, doc! { "a": 1 });
    }

    #[test]
    fn profile_documents() {
        let ts = DateTime::from_millis(1_763_632_801_000);
        let find = doc! {
            "op": "query", "ns": "shop.orders",
            "command": { "find": "orders", "filter": { "status": "A" }, "sort": { "created": -1 }, "$db": "shop" },
            "keysExamined": 0i64, "docsExamined": 100i64, "hasSortStage": true,
            "nreturned": 2i64, "planSummary": "COLLSCAN", "millis": 12i64, "ts": ts,
        };
        let obs = from_profile(&find).unwrap();
        assert_eq!(obs.op, OpKind::Find);
        assert_eq!(
            (obs.docs_examined, obs.nreturned, obs.duration_ms),
            (100, 2, 12)
        );
        assert_eq!(obs.time, Some(ts));
        assert!(obs.has_sort_stage);
        let get_more = doc! {
            "op": "getmore", "ns": "shop.orders",
            "command": { "getMore": 5i64, "collection": "orders" },
            "originatingCommand": { "find": "orders", "filter": { "status": "B" } },
            "docsExamined": 50, "nreturned": 10, "millis": 4,
        };
        let obs = from_profile(&get_more).unwrap();
        assert!(obs.get_more);
        assert_eq!(obs.filter, doc! { "status": "B" });
        let update = doc! {
            "op": "update", "ns": "shop.orders",
            "command": { "q": { "sku": "x" }, "u": { "$inc": { "n": 1 } }, "multi": false, "upsert": false },
            "docsExamined": 50, "nMatched": 1, "nModified": 1, "millis": 4,
        };
        assert_eq!(from_profile(&update).unwrap().op, OpKind::Update);
        let remove = doc! {
            "op": "remove", "ns": "shop.orders", "command": { "q": { "sku": "x" }, "limit": 1 },
            "ndeleted": 1, "millis": 4,
        };
        assert_eq!(from_profile(&remove).unwrap().op, OpKind::Delete);
        let insert = doc! { "op": "insert", "ns": "shop.orders", "command": {}, "millis": 4 };
        assert!(matches!(from_profile(&insert), Err(Skip::Ignored(_))));
        assert!(matches!(
            from_profile(&doc! { "ns": "a.b" }),
            Err(Skip::Malformed(_))
        ));
        let truncated = doc! {
            "op": "query", "ns": "shop.orders",
            "command": { "$truncated": "{ find: \"orders\", filter: { ... } }", "comment": "x" },
        };
        assert!(matches!(from_profile(&truncated), Err(Skip::Ignored(_))));
    }

    #[test]
    fn parse_log_counts_lines() {
        let text = format!(
            "{}\n\n{}\nnot json\n",
            line(
                "COMMAND",
                r#"{"ns":"a.b","command":{"find":"b"},"durationMillis":1}"#
            ),
            line(
                "COMMAND",
                r#"{"ns":"admin.$cmd","command":{"find":"b"},"durationMillis":1}"#
            )
        );
        let scan = parse_log(&text);
        assert_eq!(scan.observations.len(), 1);
        assert_eq!(scan.malformed.len(), 1);
        assert_eq!(scan.malformed[0].0, 4);
        assert_eq!(
            scan.ignored,
            BTreeMap::from([("admin database".to_owned(), 1)])
        );
    }
}
