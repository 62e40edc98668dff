//! MongoDB: reads what [`crate::mongo_advice`] analyses from the server
//! and the slow-query log, verifies suggestions with `explain`, and reports.
//!
//! 1. Databases (the `databases` parameter, else the one the target's URL
//!    names, else `listDatabases` minus `admin`/`local`/`config`), their
//!    collections (`listCollections`), each
//!    collection's indexes (`listIndexes`), usage (`$indexStats`) and size
//!    (`collStats`).
//! 2. Observations: each database's `system.profile` (the newest
//!    `profile_entries`; empty when the profiler is off), and the end of
//!    mongod's structured log (`log_file`, the last `log_bytes`), read
//!    through the host's `logs` capability, which the grant must allow for
//!    that path (`log_files`).
//! 3. Shapes, ESR candidates, served-by-existing, impact and merging:
//!    [`crate::mongo_advice::advise`]; existing-index findings:
//!    [`crate::mongo_advice::index_findings`].
//! 4. Each suggestion is checked with `explain` (`executionStats`) when
//!    `scratch_target` is set: a `$sample` of `sample_size` documents is
//!    read from the collection and copied into
//!    `<scratch_database>.warden_<collection>` on that target, the shape's
//!    example query is explained there without and with the suggested
//!    index, and the copy is dropped. The scratch target has its own grant
//!    (`write` and `ddl`), so the analysed target stays read-only; without
//!    that grant, in dry-run, or for a write shape, the suggestion is
//!    reported as unverified, with the reason.
//!
//! Nothing is created on the user's collections: each suggestion carries
//! its `createIndexes` command.

use std::collections::BTreeMap;

use warden_sdk::mongo::{Bson, Document, Mongo, doc, document_to_json};
use warden_sdk::{Context, Error, Finding, Report, ResultExt, logs, units};

use crate::mongo_advice::{
    self, CollStats, ExistingIndex, FindingKind, IndexUsage, Observation, Outcome, Params,
    ShapeStats, Suggestion, split_namespace,
};

/// The MongoDB parameters.
#[derive(Clone, Debug)]
pub struct Options {
    pub databases: Option<Vec<String>>,
    pub log_file: Option<String>,
    pub log_bytes: u64,
    pub profile_entries: u32,
    pub scratch_target: Option<String>,
    pub scratch_database: String,
    pub sample_size: u32,
    pub params: Params,
}

const SYSTEM_DATABASES: [&str; 3] = ["admin", "local", "config"];

/// What was read from one collection.
struct Collection {
    database: String,
    name: String,
    indexes: Vec<ExistingIndex>,
    usage: Vec<IndexUsage>,
    stats: Option<CollStats>,
}

/// The databases to look at: the `databases` parameter; else the one the
/// target's URL names; else every database but `admin`, `local` and
/// `config`.
fn databases(ctx: &Context, wanted: Option<&[String]>) -> Result<Vec<String>, Error> {
    if wanted.is_none() {
        // An empty database name means the URL's (an error when it names none).
        if let Ok(reply) = ctx.mongo().run_command("", &doc! {"dbStats": 1})
            && let Ok(name) = reply.reply.get_str("db")
        {
            return Ok(vec![name.to_owned()]);
        }
    }
    let reply = ctx
        .mongo()
        .run_command("admin", &doc! {"listDatabases": 1, "nameOnly": true})
        .context("listDatabases")?;
    let mut out = Vec::new();
    if let Ok(list) = reply.reply.get_array("databases") {
        for entry in list {
            if let Some(name) = entry.as_document().and_then(|d| d.get_str("name").ok())
                && !SYSTEM_DATABASES.contains(&name)
                && wanted.is_none_or(|w| w.iter().any(|n| n == name))
            {
                out.push(name.to_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The documents of a listing command (`listCollections`, `listIndexes`):
/// its first batch, asked large enough to hold the whole list.
fn listing(ctx: &Context, database: &str, command: Document) -> Result<Vec<Document>, Error> {
    let mut command = command;
    command.insert("cursor", doc! {"batchSize": 100_000});
    let reply = ctx.mongo().run_command(database, &command)?;
    Ok(reply
        .reply
        .get_document("cursor")
        .ok()
        .and_then(|c| c.get_array("firstBatch").ok())
        .map(|batch| {
            batch
                .iter()
                .filter_map(|d| d.as_document().cloned())
                .collect()
        })
        .unwrap_or_default())
}

fn all_documents(
    ctx: &Context,
    database: &str,
    command: &Document,
) -> Result<Vec<Document>, Error> {
    let mut cursor = ctx.mongo().open_cursor(database, command)?;
    let mut out = Vec::new();
    while !cursor.is_exhausted() {
        out.extend(cursor.next_batch(1000)?);
    }
    Ok(out)
}

fn read_collections(ctx: &Context, database: &str) -> Result<Vec<Collection>, Error> {
    let listed = listing(
        ctx,
        database,
        doc! {"listCollections": 1, "filter": {"type": "collection"}, "nameOnly": true},
    )
    .context(format!("listCollections on {database}"))?;
    let mut out = Vec::new();
    for entry in listed {
        let Ok(name) = entry.get_str("name") else {
            continue;
        };
        if name.starts_with("system.") {
            continue;
        }
        let ns = format!("{database}.{name}");
        let specs = listing(ctx, database, doc! {"listIndexes": name})
            .context(format!("listIndexes on {ns}"))?;
        let indexes = specs
            .iter()
            .filter_map(|s| ExistingIndex::from_list_indexes(&ns, s).ok())
            .collect();
        // `$indexStats` needs a privilege some roles lack: no usage then.
        let usage = all_documents(
            ctx,
            database,
            &doc! {"aggregate": name, "pipeline": [{"$indexStats": {}}], "cursor": {}},
        )
        .map(|docs| {
            docs.iter()
                .filter_map(|d| IndexUsage::from_index_stats(&ns, d).ok())
                .collect()
        })
        .unwrap_or_default();
        let stats = ctx
            .mongo()
            .run_command(database, &doc! {"collStats": name})
            .ok()
            .and_then(|r| CollStats::from_document(&r.reply));
        out.push(Collection {
            database: database.to_owned(),
            name: name.to_owned(),
            indexes,
            usage,
            stats,
        });
    }
    Ok(out)
}

/// The newest profiler entries of `database` (none when it is off).
fn profile(ctx: &Context, database: &str, limit: u32) -> Result<Vec<Observation>, Error> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let docs = all_documents(
        ctx,
        database,
        &doc! {
            "find": "system.profile",
            "filter": {"op": {"$in": ["query", "command", "getmore", "update", "remove"]}},
            "sort": {"ts": -1},
            "limit": i64::from(limit),
        },
    )
    .context(format!("reading {database}.system.profile"))?;
    Ok(docs
        .iter()
        .filter_map(|d| mongo_advice::from_profile(d).ok())
        .collect())
}

/// How the log was read.
struct LogRead {
    observations: Vec<Observation>,
    lines: usize,
    malformed: Vec<(usize, String)>,
}

fn read_log(ctx: &Context, path: &str, max_bytes: u64) -> Result<LogRead, Error> {
    let lines = logs::tail_lines(ctx.target(), path, max_bytes)
        .context(format!("reading the log file {path}"))?;
    let text: String = lines
        .iter()
        .map(|l| l.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let scan = mongo_advice::parse_log(&text);
    Ok(LogRead {
        observations: scan.observations,
        lines: lines.len(),
        malformed: scan.malformed,
    })
}

/// `explain` figures for one query.
#[derive(Clone, Debug, PartialEq)]
struct Explained {
    stage: String,
    index: Option<String>,
    docs_examined: u64,
    keys_examined: u64,
    returned: u64,
}

impl Explained {
    fn describe(&self) -> String {
        format!(
            "{}{}, {} docs and {} keys examined for {} returned",
            self.stage,
            self.index
                .as_ref()
                .map(|i| format!(" {i}"))
                .unwrap_or_default(),
            self.docs_examined,
            self.keys_examined,
            self.returned
        )
    }
}

fn number(doc: &Document, key: &str) -> u64 {
    doc.get(key)
        .and_then(warden_sdk::mongo::integer)
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
}

/// The stages of a winning plan, outermost first, with their index names.
fn stages(plan: &Document, out: &mut Vec<(String, Option<String>)>) {
    if let Ok(stage) = plan.get_str("stage") {
        out.push((
            stage.to_owned(),
            plan.get_str("indexName").ok().map(str::to_owned),
        ));
    }
    if let Ok(child) = plan.get_document("inputStage") {
        stages(child, out);
    }
    if let Ok(children) = plan.get_array("inputStages") {
        for c in children {
            if let Some(d) = c.as_document() {
                stages(d, out);
            }
        }
    }
}

fn parse_explain(reply: &Document) -> Option<Explained> {
    let planner = reply.get_document("queryPlanner").ok().or_else(|| {
        // An aggregate explains its `$cursor` stage.
        reply
            .get_array("stages")
            .ok()?
            .first()?
            .as_document()?
            .get_document("$cursor")
            .ok()?
            .get_document("queryPlanner")
            .ok()
    })?;
    let mut found = Vec::new();
    stages(planner.get_document("winningPlan").ok()?, &mut found);
    let scan = found
        .iter()
        .find(|(s, _)| s == "IXSCAN" || s == "COLLSCAN" || s == "IDHACK" || s == "EXPRESS_IXSCAN")
        .or(found.last())
        .cloned()?;
    let stats = reply.get_document("executionStats").ok();
    Some(Explained {
        stage: scan.0,
        index: scan.1,
        docs_examined: stats.map_or(0, |s| number(s, "totalDocsExamined")),
        keys_examined: stats.map_or(0, |s| number(s, "totalKeysExamined")),
        returned: stats.map_or(0, |s| number(s, "nReturned")),
    })
}

/// The example query pointed at `collection` (its first key names the
/// collection); `None` for commands `explain` is not run on here.
fn retarget(example: &Document, collection: &str) -> Option<Document> {
    let (verb, _) = example.iter().next()?;
    if !["find", "aggregate", "count", "distinct"].contains(&verb.as_str()) {
        return None;
    }
    let mut out = Document::new();
    for (i, (k, v)) in example.iter().enumerate() {
        if i == 0 {
            out.insert(k.clone(), collection);
        } else if k != "$db" && k != "lsid" {
            out.insert(k.clone(), v.clone());
        }
    }
    if verb == "aggregate" && !out.contains_key("cursor") {
        out.insert("cursor", doc! {});
    }
    Some(out)
}

fn explain(mongo: &Mongo<'_>, database: &str, query: &Document) -> Result<Explained, Error> {
    let reply = mongo
        .run_command(
            database,
            &doc! {"explain": query.clone(), "verbosity": "executionStats"},
        )
        .context("explain")?;
    parse_explain(&reply.reply).ok_or_else(|| Error::other("explain: no winning plan in the reply"))
}

/// The outcome of checking a suggestion with `explain`.
enum Verification {
    /// Before and after on the scratch sample; whether the index was used
    /// and examined fewer documents.
    Checked {
        before: Explained,
        after: Explained,
        helps: bool,
        sample: u64,
    },
    Unverified(String),
}

/// Copies a sample of the collection into the scratch database, explains
/// the example without and with the index, drops the copy.
fn verify(
    ctx: &Context,
    options: &Options,
    suggestion: &Suggestion,
    example: &Document,
) -> Verification {
    let Some(scratch_target) = options.scratch_target.as_deref() else {
        return Verification::Unverified(
            "not checked with explain: set scratch_target (a target whose grant has write and ddl) to check on a sample".to_owned(),
        );
    };
    let scratch = options.scratch_database.as_str();
    if ctx.dry_run() {
        return Verification::Unverified(
            "not checked with explain: dry-run copies no sample".to_owned(),
        );
    }
    let Some((database, collection)) = split_namespace(&suggestion.namespace) else {
        return Verification::Unverified("not checked: no collection name".to_owned());
    };
    if (scratch_target == ctx.target() && scratch == database)
        || SYSTEM_DATABASES.contains(&scratch)
    {
        return Verification::Unverified(format!(
            "not checked: scratch_database `{scratch}` must be a database of its own"
        ));
    }
    let scratch_coll = format!("warden_{collection}");
    let on = ctx.mongo_on(scratch_target);
    let Some(query) = retarget(example, &scratch_coll) else {
        return Verification::Unverified(
            "not checked: explain is run only for find, aggregate, count and distinct shapes"
                .to_owned(),
        );
    };
    let result = (|| -> Result<Verification, Error> {
        let mut cursor = ctx.mongo().open_cursor(
            database,
            &doc! {"aggregate": collection, "pipeline": [{"$sample": {"size": i64::from(options.sample_size)}}], "cursor": {}},
        )?;
        let mut copied = 0u64;
        while !cursor.is_exhausted() {
            let batch = cursor.next_batch(1000)?;
            if batch.is_empty() {
                continue;
            }
            copied += batch.len() as u64;
            let documents: Vec<Bson> = batch.into_iter().map(Bson::Document).collect();
            on.run_command(
                scratch,
                &doc! {"insert": &scratch_coll, "documents": documents, "ordered": false},
            )?;
        }
        let before = explain(&on, scratch, &query)?;
        let mut key = Document::new();
        for (field, dir) in &suggestion.key {
            key.insert(field.clone(), *dir);
        }
        on.run_command(
            scratch,
            &doc! {"createIndexes": &scratch_coll, "indexes": [{"key": key, "name": &suggestion.name}]},
        )?;
        let after = explain(&on, scratch, &query)?;
        let helps = after.index.as_deref() == Some(suggestion.name.as_str())
            && (after.docs_examined < before.docs_examined || before.stage == "COLLSCAN");
        Ok(Verification::Checked {
            before,
            after,
            helps,
            sample: copied,
        })
    })();
    // Always drop the copy.
    let _ = on.run_command(scratch, &doc! {"drop": &scratch_coll});
    result.unwrap_or_else(|e| {
        Verification::Unverified(format!(
            "not checked: the explain check failed: {}",
            e.summary()
        ))
    })
}

fn suggestion_finding(
    suggestion: &Suggestion,
    shapes: &[ShapeStats],
    verification: &Verification,
) -> Finding {
    let helped: Vec<String> = suggestion
        .shapes
        .iter()
        .filter_map(|i| shapes.get(*i))
        .map(|s| {
            format!(
                "`{}` ({} runs, {:.0} ms mean, {} docs examined for {} returned, plan {})",
                s.shape,
                s.count,
                s.mean_ms(),
                s.docs_examined,
                s.nreturned,
                if s.worst_plan.is_empty() {
                    "unknown"
                } else {
                    &s.worst_plan
                }
            )
        })
        .collect();
    let check = match verification {
        Verification::Checked {
            before,
            after,
            helps,
            sample,
        } => format!(
            "explain on a {sample}-document sample: {} → {}{}",
            before.describe(),
            after.describe(),
            if *helps {
                ""
            } else {
                " (the planner did not prefer it: treat with care)"
            }
        ),
        Verification::Unverified(why) => format!("unverified: {why}"),
    };
    let size = suggestion
        .estimated_bytes
        .map_or_else(|| "unknown".to_owned(), units::bytes);
    let command = document_to_json(&suggestion.command);
    let notes = if suggestion.candidate.notes.is_empty() {
        String::new()
    } else {
        format!("; notes: {}", suggestion.candidate.notes.join("; "))
    };
    Finding::warning(
        format!("suggested index {}", suggestion.candidate.label()),
        format!(
            "{command}; estimated size {size}; impact {:.0} (time × runs × docs examined per returned); helps {}; {check}{notes}",
            suggestion.impact,
            helped.join("; ")
        ),
    )
    .suggest(format!(
        "db.getSiblingDB({:?}).runCommand({command})",
        split_namespace(&suggestion.namespace).map_or("", |(d, _)| d)
    ))
}

/// The whole MongoDB run.
pub fn run(ctx: &Context, options: &Options, min_stats_age_secs: u64) -> Result<Report, Error> {
    let mut report = Report::ok("");
    let databases = databases(ctx, options.databases.as_deref())?;
    let mut collections = Vec::new();
    let mut observations = Vec::new();
    let mut profiled = 0usize;
    for database in &databases {
        collections.extend(read_collections(ctx, database)?);
        let found = profile(ctx, database, options.profile_entries)?;
        profiled += found.len();
        observations.extend(found);
    }
    let mut log_lines = 0;
    if let Some(path) = &options.log_file {
        let log = read_log(ctx, path, options.log_bytes)?;
        log_lines = log.lines;
        if !log.malformed.is_empty() {
            let first: Vec<String> = log
                .malformed
                .iter()
                .take(5)
                .map(|(n, why)| format!("line {n} of the part read: {why}"))
                .collect();
            report.add_finding(Finding::info(
                format!("{} log lines not understood", log.malformed.len()),
                format!("{path}: {}", first.join("; ")),
            ));
        }
        observations.extend(log.observations);
    }
    // Only the databases looked at.
    observations.retain(|o| {
        split_namespace(&o.namespace).is_some_and(|(d, _)| databases.iter().any(|n| n == d))
    });

    let indexes: Vec<ExistingIndex> = collections
        .iter()
        .flat_map(|c| c.indexes.iter().cloned())
        .collect();
    let usage: Vec<IndexUsage> = collections
        .iter()
        .flat_map(|c| c.usage.iter().cloned())
        .collect();
    let stats: BTreeMap<String, CollStats> = collections
        .iter()
        .filter_map(|c| c.stats.map(|s| (format!("{}.{}", c.database, c.name), s)))
        .collect();

    // Existing indexes.
    let now = bson::DateTime::now();
    let existing = mongo_advice::index_findings(&indexes, &usage, now, min_stats_age_secs);
    for f in &existing {
        let title = format!("{} index {}.{}", f.kind.name(), f.namespace, f.index);
        let finding = match &f.kind {
            FindingKind::Unused { weak: true, .. } => Finding::info(title, f.detail.clone()),
            _ => Finding::warning(title, f.detail.clone()),
        };
        let database = split_namespace(&f.namespace).map_or("", |(d, _)| d);
        report.add_finding(finding.suggest(format!(
            "db.getSiblingDB({database:?}).runCommand({})",
            document_to_json(&f.drop_command)
        )));
    }

    // Suggestions.
    let shapes = mongo_advice::group_shapes(&observations);
    let advice = mongo_advice::advise(&shapes, &indexes, &stats, &options.params);
    let mut verified = 0u64;
    for suggestion in &advice.suggestions {
        let example = suggestion
            .shapes
            .iter()
            .filter_map(|i| shapes.get(*i))
            .find(|s| !s.example_truncated)
            .map(|s| s.example.clone())
            .unwrap_or_default();
        let verification = verify(ctx, options, suggestion, &example);
        if matches!(verification, Verification::Checked { helps: true, .. }) {
            verified += 1;
        }
        report.add_finding(suggestion_finding(suggestion, &shapes, &verification));
    }
    let served = advice
        .outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Served { .. }))
        .count();
    for (stats, outcome) in shapes.iter().zip(&advice.outcomes) {
        if let Outcome::NoCandidate { reason } = outcome
            && stats.collscan()
        {
            report.add_finding(Finding::info(
                format!("no index for {}", stats.shape),
                format!(
                    "{} runs read the whole collection, but {reason}",
                    stats.count
                ),
            ));
        }
    }

    let suggested = advice.suggestions.len() as u64;
    let flagged: Vec<String> = ["duplicate", "redundant", "unused"]
        .iter()
        .map(|k| (k, existing.iter().filter(|f| f.kind.name() == *k).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    report.summary = format!(
        "{suggested} index suggestion{} from {} query shapes ({} observations: {profiled} profiled, {} from the log); {} existing indexes in {} collections{}",
        if suggested == 1 { "" } else { "s" },
        shapes.len(),
        observations.len(),
        observations.len() - profiled.min(observations.len()),
        indexes.len(),
        collections.len(),
        if flagged.is_empty() {
            String::new()
        } else {
            format!(": {}", flagged.join(", "))
        }
    );
    if let Some(worst) = report.findings.iter().map(|f| f.severity.into()).max() {
        report.raise(worst);
    }
    let stats_age = usage
        .iter()
        .filter_map(|u| u.since)
        .map(|since| (now.timestamp_millis() - since.timestamp_millis()).max(0) as u64 / 1000)
        .min();
    let mut report = report
        .metric("collections", collections.len() as f64, "")
        .metric("indexes_checked", indexes.len() as f64, "")
        .metric("observations", observations.len() as f64, "")
        .metric("log_lines", log_lines as f64, "")
        .metric("shapes", shapes.len() as f64, "")
        .metric("shapes_served", served as f64, "")
        .metric("suggested_indexes", suggested as f64, "")
        .metric("verified_suggestions", verified as f64, "");
    if let Some(seconds) = stats_age {
        report.add_metric("index_stats_age_seconds", seconds as f64, "s");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_replies_give_the_scan_and_counts() {
        let reply = doc! {
            "queryPlanner": {"winningPlan": {"stage": "FETCH", "inputStage": {"stage": "IXSCAN", "indexName": "a_1"}}},
            "executionStats": {"nReturned": 3, "totalKeysExamined": 3_i64, "totalDocsExamined": 3},
        };
        assert_eq!(
            parse_explain(&reply),
            Some(Explained {
                stage: "IXSCAN".into(),
                index: Some("a_1".into()),
                docs_examined: 3,
                keys_examined: 3,
                returned: 3
            })
        );
        let collscan = doc! {
            "queryPlanner": {"winningPlan": {"stage": "SORT", "inputStage": {"stage": "COLLSCAN"}}},
            "executionStats": {"nReturned": 1, "totalKeysExamined": 0, "totalDocsExamined": 500},
        };
        let e = parse_explain(&collscan).unwrap();
        assert_eq!((e.stage.as_str(), e.docs_examined), ("COLLSCAN", 500));
        let aggregate = doc! {"stages": [{"$cursor": {"queryPlanner": {"winningPlan": {"stage": "COLLSCAN"}}}}]};
        assert_eq!(parse_explain(&aggregate).unwrap().stage, "COLLSCAN");
        assert_eq!(parse_explain(&doc! {"ok": 1}), None);
    }

    #[test]
    fn examples_are_retargeted_to_the_scratch_copy() {
        let find = doc! {"find": "orders", "filter": {"a": 1}, "$db": "shop", "sort": {"b": -1}};
        assert_eq!(
            retarget(&find, "warden_orders"),
            Some(doc! {"find": "warden_orders", "filter": {"a": 1}, "sort": {"b": -1}})
        );
        let agg = doc! {"aggregate": "orders", "pipeline": [{"$match": {"a": 1}}]};
        assert_eq!(
            retarget(&agg, "w"),
            Some(doc! {"aggregate": "w", "pipeline": [{"$match": {"a": 1}}], "cursor": {}})
        );
        assert_eq!(
            retarget(&doc! {"update": "orders", "updates": []}, "w"),
            None
        );
        assert_eq!(retarget(&doc! {}, "w"), None);
    }
}
