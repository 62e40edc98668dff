//! The index advisor on MongoDB: slow-query entries in mongod's structured
//! log format (read through the `logs` capability), the test server's
//! `listIndexes` / `$indexStats` / `collStats`, ESR suggestions, and live
//! `explain` checks on a scratch copy through a second, writable target.

use crate::world::{World, error_of, finding, invoke, metric};
use bson::{DateTime, doc};
use std::collections::BTreeSet;
use warden::runs::{RunRecord, RunStatus, Severity};
use warden_tests::mongo;

/// 5,000 orders and 5,000 events; orders' indexes: `customer_1` (a prefix of `customer_1_qty_1`),
/// `customer_1_qty_1`, `pad_1` (never used).
async fn seeded(hint: &str) -> mongo::TestMongoDb {
    let db = mongo::server().create_database(hint).await;
    let client = mongo::server().client().await;
    let database = client.database(&db.name);
    let orders = database.collection::<bson::Document>("orders");
    let statuses = ["A", "B", "C", "D", "E"];
    let docs: Vec<bson::Document> = (0..5_000i64)
        .map(|n| {
            doc! {
                "status": statuses[(n % 5) as usize],
                "customer": n % 2000,
                "qty": n % 100,
                "created": DateTime::from_millis(1_700_000_000_000 + n * 60_000),
                "pad": format!("{n:08}"),
            }
        })
        .collect();
    orders.insert_many(docs).await.unwrap();
    let events: Vec<bson::Document> = (0..5_000i64)
        .map(|n| doc! {"kind": n % 20, "n": n})
        .collect();
    database
        .collection::<bson::Document>("events")
        .insert_many(events)
        .await
        .unwrap();
    database
        .run_command(doc! {
            "createIndexes": "orders",
            "indexes": [
                {"key": {"customer": 1}, "name": "customer_1"},
                {"key": {"customer": 1, "qty": 1}, "name": "customer_1_qty_1"},
                {"key": {"pad": 1}, "name": "pad_1"},
            ],
        })
        .await
        .unwrap();
    db
}

/// One "Slow query" line as mongod 6.0 writes it.
fn slow_query(
    db: &str,
    command: serde_json::Value,
    plan: &str,
    docs: u64,
    returned: u64,
) -> String {
    let mut command = command;
    let collection = command
        .as_object()
        .and_then(|c| c.values().next())
        .and_then(|v| v.as_str())
        .unwrap()
        .to_owned();
    command["$db"] = db.into();
    command["lsid"] = serde_json::json!({"id": {"$uuid": "5f3d6c1e-8a2b-4c7d-9e0f-1a2b3c4d5e6f"}});
    serde_json::json!({
        "t": {"$date": "2026-11-20T10:00:01.123+00:00"},
        "s": "I",
        "c": "COMMAND",
        "id": 51803,
        "ctx": "conn12",
        "msg": "Slow query",
        "attr": {
            "type": "command",
            "ns": format!("{db}.{collection}"),
            "appName": "shop",
            "command": command,
            "planSummary": plan,
            "keysExamined": if plan == "COLLSCAN" { 0 } else { returned },
            "docsExamined": docs,
            "hasSortStage": plan == "COLLSCAN",
            "nreturned": returned,
            "queryHash": "7F3D6A4B",
            "reslen": 1234,
            "remote": "127.0.0.1:50000",
            "protocol": "op_msg",
            "durationMillis": 87
        }
    })
    .to_string()
}

/// A log with: 20 slow `{status, qty > x} sort created desc` finds
/// (COLLSCAN), 5 `{customer}` finds an index serves, 10 `{kind, n >= x}`
/// finds on events (COLLSCAN), 3 `$where` finds,
/// a connection line, an `admin` command and a torn last line.
fn write_log(world: &World, db: &str) -> String {
    let mut lines = vec![
        r#"{"t":{"$date":"2026-11-20T10:00:00.001+00:00"},"s":"I","c":"NETWORK","id":22943,"ctx":"listener","msg":"Connection accepted","attr":{"remote":"127.0.0.1:50000","connectionId":12,"connectionCount":3}}"#.to_owned(),
    ];
    for i in 0..20 {
        lines.push(slow_query(
            db,
            serde_json::json!({"find": "orders", "filter": {"status": "A", "qty": {"$gt": i}}, "sort": {"created": -1}, "limit": 10}),
            "COLLSCAN",
            20_000,
            10,
        ));
    }
    for i in 0..5 {
        lines.push(slow_query(
            db,
            serde_json::json!({"find": "orders", "filter": {"customer": i}}),
            "IXSCAN { customer: 1 }",
            10,
            10,
        ));
    }
    for i in 0..10 {
        lines.push(slow_query(
            db,
            serde_json::json!({"find": "events", "filter": {"kind": i, "n": {"$gte": 4_000}}}),
            "COLLSCAN",
            20_000,
            250,
        ));
    }
    for _ in 0..3 {
        lines.push(slow_query(
            db,
            serde_json::json!({"find": "orders", "filter": {"$where": "this.qty > 1"}}),
            "COLLSCAN",
            20_000,
            19_800,
        ));
    }
    lines.push(
        r#"{"t":{"$date":"2026-11-20T10:00:09.000+00:00"},"s":"I","c":"COMMAND","id":51803,"ctx":"conn3","msg":"Slow query","attr":{"type":"command","ns":"admin.$cmd","command":{"hello":1,"$db":"admin"},"durationMillis":150}}"#.to_owned(),
    );
    lines.push(r#"{"t":{"$date":"2026-11-20T10:00:10.000+00:00"},"s":"I","c":"COMMAND","id":51803,"ctx":"conn3","msg":"Slow qu"#.to_owned());
    let path = world.path("mongod.log");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path.display().to_string()
}

fn titles(r: &RunRecord, prefix: &str) -> BTreeSet<String> {
    r.report
        .as_ref()
        .expect("a report")
        .findings
        .iter()
        .filter_map(|f| f.title.strip_prefix(prefix).map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_query_log_gives_esr_suggestions_checked_by_explain() {
    let db = seeded("advisor_mongo").await;
    let scratch = mongo::server().create_database("advisor_scratch").await;
    let base = World::new().plugin("index-advisor");
    let log = write_log(&base, &db.name);
    let w = base
        .mongo_target("shop", &db.url)
        .mongo_target("scratch", &scratch.url)
        .grant(
            "index-advisor",
            "shop",
            &["read"],
            &format!("log_files = [{log:?}]\nmax_runtime = \"5m\""),
        )
        .grant(
            "index-advisor",
            "scratch",
            &["read", "write", "ddl"],
            "max_runtime = \"5m\"",
        );
    let agent = w.agent().await;
    let ns = format!("{}.orders", db.name);

    // Advice without the explain check.
    let r = invoke(
        &agent,
        "index-advisor",
        "shop",
        &[("log_file", &log)],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    assert!(r.actions.is_empty(), "{:#?}", r.actions);
    // Equality, then the sort with its direction, then the range.
    let events = format!("{}.events", db.name);
    assert_eq!(
        titles(&r, "suggested index "),
        BTreeSet::from([
            format!("{ns} {{status: 1, created: -1, qty: 1}}"),
            format!("{events} {{kind: 1, n: 1}}")
        ]),
        "{:#?}",
        r.report
    );
    let title = format!("suggested index {ns} {{status: 1, created: -1, qty: 1}}");
    let detail = finding(&r, &title);
    assert!(detail.contains("createIndexes"), "{detail}");
    assert!(detail.contains("20 runs"), "{detail}");
    assert!(
        detail.contains("unverified: not checked with explain"),
        "{detail}"
    );
    // The {customer} shape is served by an existing index; $where has none.
    assert_eq!(metric(&r, "shapes"), 4.0);
    assert_eq!(metric(&r, "shapes_served"), 1.0);
    assert!(
        !titles(&r, "no index for ").is_empty(),
        "the $where shape is explained: {:#?}",
        r.report
    );
    assert_eq!(metric(&r, "observations"), 38.0);
    assert!(titles(&r, "").contains("1 log lines not understood"));
    // Existing indexes from listIndexes and $indexStats.
    assert_eq!(
        titles(&r, "redundant index "),
        BTreeSet::from([format!("{ns}.customer_1")])
    );
    assert_eq!(metric(&r, "collections"), 2.0);
    let unused = titles(&r, "unused index ");
    assert!(unused.contains(&format!("{ns}.pad_1")), "{unused:?}");
    assert!(!unused.contains(&format!("{ns}._id_")), "{unused:?}");
    let report = r.report.as_ref().unwrap();
    let pad = report
        .findings
        .iter()
        .find(|f| f.title == format!("unused index {ns}.pad_1"))
        .unwrap();
    // Counters only seconds old: weak evidence.
    assert_eq!(pad.severity, Severity::Info, "{pad:#?}");
    assert!(
        pad.suggested_action
            .as_deref()
            .unwrap()
            .contains("dropIndexes")
    );

    // With the scratch target: checked by explain on a sample.
    let r = invoke(
        &agent,
        "index-advisor",
        "shop",
        &[
            ("log_file", &log),
            ("scratch_target", "scratch"),
            ("sample_size", "2000"),
        ],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    // Both are explained on the sample; the equality + range one is used by
    // any planner (the test servers' planners differ on a descending sort
    // key in the middle, which a real mongod uses).
    let detail = finding(&r, &title);
    assert!(
        detail.contains("explain on a 2000-document sample: COLLSCAN, 2000 docs"),
        "{detail}"
    );
    let kind = finding(&r, &format!("suggested index {events} {{kind: 1, n: 1}}"));
    assert!(
        kind.contains("explain on a 2000-document sample: COLLSCAN, 2000 docs"),
        "{kind}"
    );
    assert!(kind.contains("→ IXSCAN warden_kind_1_n_1"), "{kind}");
    assert!(metric(&r, "verified_suggestions") >= 1.0, "{kind}");
    // The copy is gone, and the analysed database has no new index.
    let client = mongo::server().client().await;
    let left: Vec<String> = client
        .database("warden_scratch")
        .list_collection_names()
        .await
        .unwrap();
    assert!(
        !left
            .iter()
            .any(|c| c == "warden_orders" || c == "warden_events"),
        "{left:?}"
    );
    let names: Vec<String> = client
        .database(&db.name)
        .collection::<bson::Document>("orders")
        .list_index_names()
        .await
        .unwrap();
    assert_eq!(names.len(), 4, "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_file_outside_the_grant_is_denied() {
    let db = seeded("advisor_mongo_denied").await;
    let base = World::new().plugin("index-advisor");
    let log = write_log(&base, &db.name);
    let w = base
        .mongo_target("shop", &db.url)
        .grant("index-advisor", "shop", &["read"], "");
    let agent = w.agent().await;
    let r = invoke(
        &agent,
        "index-advisor",
        "shop",
        &[("log_file", &log)],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Denied, "{r:#?}");
    assert!(error_of(&r).contains("log_files"), "{}", error_of(&r));

    // Without a log: existing-index findings only, and nothing to suggest.
    let r = invoke(&agent, "index-advisor", "shop", &[], false).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    assert!(titles(&r, "suggested index ").is_empty());
    assert_eq!(
        titles(&r, "redundant index "),
        BTreeSet::from([format!("{}.orders.customer_1", db.name)])
    );
}
