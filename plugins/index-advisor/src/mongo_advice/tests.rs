//! End to end on a fixture of real-format mongod 4.4+/6.0 log lines.

use std::collections::BTreeMap;

use bson::{DateTime, Document, doc};

use super::*;

const LOG: &str = include_str!("../../tests/fixtures/mongod-slow.log");

fn now() -> DateTime {
    DateTime::parse_rfc3339_str("2026-11-20T12:00:00Z").unwrap()
}

fn days_ago(days: i64) -> DateTime {
    DateTime::from_millis(now().timestamp_millis() - days * 86_400_000)
}

fn hours_ago(hours: i64) -> DateTime {
    DateTime::from_millis(now().timestamp_millis() - hours * 3_600_000)
}

fn ix(ns: &str, spec: Document) -> ExistingIndex {
    ExistingIndex::from_list_indexes(ns, &spec).unwrap()
}

/// `listIndexes` of the fixture's collections.
fn existing() -> Vec<ExistingIndex> {
    let o = "shop.orders";
    let e = "shop.events";
    let u = "shop.users";
    vec![
        ix(o, doc! { "v": 2, "key": { "_id": 1 }, "name": "_id_" }),
        ix(
            o,
            doc! { "v": 2, "key": { "status": 1 }, "name": "status_1" },
        ),
        ix(
            o,
            doc! { "v": 2, "key": { "status": 1, "created": -1 }, "name": "status_1_created_-1" },
        ),
        ix(
            o,
            doc! { "v": 2, "key": { "sku": 1 }, "name": "sku_1", "unique": true },
        ),
        ix(
            o,
            doc! { "v": 2, "key": { "created": 1 }, "name": "created_1", "expireAfterSeconds": 7_776_000 },
        ),
        ix(
            o,
            doc! {
                "v": 2, "key": { "customer_id": 1, "placed": 1 }, "name": "customer_id_1_placed_1",
                "partialFilterExpression": { "placed": { "$exists": true } },
            },
        ),
        ix(e, doc! { "v": 2, "key": { "_id": 1 }, "name": "_id_" }),
        ix(
            e,
            doc! { "v": 2, "key": { "type": 1, "ts": -1 }, "name": "type_1_ts_-1" },
        ),
        ix(
            e,
            doc! { "v": 2, "key": { "type": 1, "ts": -1 }, "name": "by_type_ts" },
        ),
        ix(
            e,
            doc! { "v": 2, "key": { "type": 1 }, "name": "hidden_type", "hidden": true },
        ),
        ix(u, doc! { "v": 2, "key": { "_id": 1 }, "name": "_id_" }),
        ix(
            u,
            doc! { "v": 2, "key": { "email": 1 }, "name": "email_1", "unique": true },
        ),
        ix(
            u,
            doc! { "v": 2, "key": { "country": 1 }, "name": "country_1" },
        ),
        ix(
            u,
            doc! { "v": 2, "key": { "last_login": -1 }, "name": "last_login_-1" },
        ),
        ix(
            u,
            doc! {
                "v": 2, "key": { "age": 1 }, "name": "age_1",
                "partialFilterExpression": { "age": { "$gte": 18 } },
            },
        ),
    ]
}

/// `$indexStats` of the fixture's collections (two members for some).
fn usage() -> Vec<IndexUsage> {
    let stat = |ns: &str, name: &str, ops: i64, since: DateTime, host: &str| {
        IndexUsage::from_index_stats(
            ns,
            &doc! {
                "name": name, "key": {}, "host": host,
                "accesses": { "ops": ops, "since": since },
            },
        )
        .unwrap()
    };
    let (o, e, u) = ("shop.orders", "shop.events", "shop.users");
    vec![
        stat(o, "_id_", 0, days_ago(30), "a:27017"),
        stat(o, "status_1", 0, days_ago(30), "a:27017"),
        stat(o, "status_1_created_-1", 0, days_ago(30), "a:27017"),
        stat(o, "status_1_created_-1", 10, days_ago(29), "b:27017"),
        stat(o, "sku_1", 0, days_ago(30), "a:27017"),
        stat(o, "created_1", 0, days_ago(30), "a:27017"),
        stat(o, "customer_id_1_placed_1", 0, days_ago(30), "a:27017"),
        stat(o, "customer_id_1_placed_1", 0, days_ago(20), "b:27017"),
        stat(e, "type_1_ts_-1", 500, days_ago(30), "a:27017"),
        stat(e, "by_type_ts", 0, days_ago(30), "a:27017"),
        stat(e, "hidden_type", 0, days_ago(30), "a:27017"),
        stat(u, "email_1", 0, days_ago(30), "a:27017"),
        stat(u, "country_1", 0, days_ago(30), "a:27017"),
        stat(u, "last_login_-1", 0, hours_ago(2), "a:27017"),
        stat(u, "age_1", 120, days_ago(30), "a:27017"),
    ]
}

fn shapes() -> Vec<ShapeStats> {
    group_shapes(&parse_log(LOG).observations)
}

#[test]
fn fixture_lines_are_read_or_skipped_with_a_reason() {
    let scan = parse_log(LOG);
    let malformed: Vec<usize> = scan.malformed.iter().map(|(n, _)| *n).collect();
    assert_eq!(malformed, [20, 21], "{:?}", scan.malformed);
    assert_eq!(scan.observations.len(), 15);
    assert_eq!(
        scan.ignored,
        BTreeMap::from([
            ("NETWORK message, not a slow query".to_owned(), 1),
            ("admin database".to_owned(), 1),
            ("command namespace ($cmd)".to_owned(), 1),
            ("local database".to_owned(), 1),
        ])
    );
    // Extended JSON values and the time zone of `t`.
    let second = &scan.observations[1];
    assert_eq!(
        second.time,
        Some(DateTime::parse_rfc3339_str("2026-11-20T10:00:02.500Z").unwrap())
    );
    let update = scan
        .observations
        .iter()
        .find(|o| o.op == OpKind::Update)
        .unwrap();
    assert!(matches!(
        update.filter.get("customer_id"),
        Some(bson::Bson::ObjectId(_))
    ));
    // The getMore carries its find.
    let get_more = &scan.observations[2];
    assert!(get_more.get_more);
    assert_eq!(get_more.op, OpKind::Find);
    assert_eq!(
        get_more.command,
        doc! { "find": "orders", "filter": { "status": "A", "qty": { "$gt": 5 } }, "sort": { "created": -1 } }
    );
    // findAndModify drops txnNumber and the session.
    let fam = scan
        .observations
        .iter()
        .find(|o| o.op == OpKind::FindAndModify)
        .unwrap();
    assert_eq!(
        fam.command.keys().collect::<Vec<_>>(),
        ["findAndModify", "query", "sort", "update", "new"]
    );
}

#[test]
fn fixture_shapes() {
    let shapes = shapes();
    let text: Vec<String> = shapes.iter().map(|s| s.shape.to_string()).collect();
    assert_eq!(
        text,
        [
            "shop.orders find {status: eq, qty: range} sort {created: -1}",
            "shop.orders aggregate {customer_id: eq, status: eq} sort {created: -1}",
            "shop.orders count {status: eq}",
            "shop.orders update {customer_id: eq}",
            "shop.carts delete {updated: range}",
            "q.jobs findAndModify {state: eq, worker: eq} sort {priority: -1}",
            "shop.users find {email: eq}",
            "shop.users find {deleted: nonselective} projection [email, name]",
            "shop.orders find {} unindexable [$where]",
            "shop.users distinct {active: eq}",
            "shop.users find {age: range}",
            "shop.events find {type: eq} sort {ts: 1}",
        ]
    );
    let counts: Vec<(u64, u64, u64, u64, u64, u64)> = shapes
        .iter()
        .map(|s| {
            (
                s.count,
                s.get_mores,
                s.total_ms,
                s.docs_examined,
                s.keys_examined,
                s.nreturned,
            )
        })
        .collect();
    assert_eq!(counts[0], (3, 1, 222, 250_000, 0, 140));
    assert_eq!(counts[1], (1, 0, 45, 5000, 5000, 20));
    assert_eq!(counts[2], (2, 0, 118, 200_000, 0, 0));
    assert_eq!(counts[3], (1, 0, 120, 100_000, 0, 3));
    assert_eq!(shapes[0].sort_stages, 3);
    assert_eq!(shapes[0].worst_plan, "COLLSCAN");
    assert_eq!(shapes[1].worst_plan, "IXSCAN { customer_id: 1, placed: 1 }");
    // The example is the first observation's, without driver fields.
    assert_eq!(
        shapes[0].example,
        doc! { "find": "orders", "filter": { "status": "A", "qty": { "$gt": 5 } }, "sort": { "created": -1 } }
    );
    let oid = bson::oid::ObjectId::parse_str("64b7f0c2a1b2c3d4e5f60718").unwrap();
    let seen_at = DateTime::parse_rfc3339_str("2026-11-20T10:00:05.900Z").unwrap();
    assert_eq!(
        shapes[3].example,
        doc! {
            "update": "orders",
            "updates": [ {
                "q": { "customer_id": oid },
                "u": { "$set": { "seen": true, "seenAt": seen_at } },
                "multi": true, "upsert": false,
            } ],
        }
    );
    assert!((shapes[0].impact() - 222.0 * 250_000.0 / 140.0).abs() < 1e-6);
}

#[test]
fn fixture_esr_keys() {
    let shapes = shapes();
    let key = |i: usize| esr_candidate(&shapes[i].shape, 4).map(|c| c.key());
    let k = |list: &[(&str, i32)]| -> Result<Vec<(String, i32)>, String> {
        Ok(list.iter().map(|(p, d)| ((*p).to_owned(), *d)).collect())
    };
    assert_eq!(key(0), k(&[("status", 1), ("created", -1), ("qty", 1)]));
    assert_eq!(
        key(1),
        k(&[("customer_id", 1), ("status", 1), ("created", -1)])
    );
    assert_eq!(key(2), k(&[("status", 1)]));
    assert_eq!(key(4), k(&[("updated", 1)]));
    assert_eq!(key(5), k(&[("state", 1), ("worker", 1), ("priority", -1)]));
    assert!(
        key(7)
            .unwrap_err()
            .contains("non-selective predicates not in the key: deleted")
    );
    assert!(key(8).unwrap_err().contains("$where"));
    assert_eq!(key(11), k(&[("type", 1), ("ts", 1)]));
}

#[test]
fn fixture_advice() {
    let shapes = shapes();
    let stats = BTreeMap::from([(
        "shop.orders".to_owned(),
        CollStats {
            count: 1_000_000,
            avg_obj_size: 200.0,
        },
    )]);
    let advice = advise(&shapes, &existing(), &stats, &Params::default());
    let summary: Vec<(&str, &str, Vec<usize>)> = advice
        .suggestions
        .iter()
        .map(|s| (s.namespace.as_str(), s.name.as_str(), s.shapes.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "shop.orders",
                "warden_customer_id_1_status_1_created_-1",
                vec![1, 3]
            ),
            ("shop.orders", "warden_status_1_created_-1_qty_1", vec![0]),
            ("q.jobs", "warden_state_1_worker_1_priority_-1", vec![5]),
            ("shop.users", "warden_active_1", vec![9]),
            ("shop.carts", "warden_updated_1", vec![4]),
        ]
    );
    let first = &advice.suggestions[0];
    assert!((first.impact - (45.0 * 250.0 + 120.0 * 100_000.0 / 3.0)).abs() < 1e-6);
    assert_eq!((first.count, first.total_ms), (2, 165));
    assert_eq!(first.estimated_bytes, Some(113_750_000));
    assert_eq!(advice.suggestions[2].estimated_bytes, None);
    assert_eq!(
        first.command,
        doc! {
            "createIndexes": "orders",
            "indexes": [ {
                "key": { "customer_id": 1, "status": 1, "created": -1 },
                "name": "warden_customer_id_1_status_1_created_-1",
            } ],
        }
    );

    let o = &advice.outcomes;
    assert_eq!(o.len(), shapes.len());
    assert_eq!(o[0], Outcome::Suggested { suggestion: 1 });
    assert_eq!(o[1], Outcome::Suggested { suggestion: 0 });
    assert_eq!(o[3], Outcome::Suggested { suggestion: 0 });
    // Served: a leading prefix, the reverse-direction sort, a unique index.
    assert!(matches!(&o[2], Outcome::Served { index, .. } if index == "status_1"));
    assert!(matches!(&o[6], Outcome::Served { index, .. } if index == "email_1"));
    assert!(matches!(&o[11], Outcome::Served { index, .. } if index == "type_1_ts_-1"));
    assert!(matches!(&o[7], Outcome::NoCandidate { .. }));
    assert!(matches!(&o[8], Outcome::NoCandidate { .. }));
    // The partial age_1 index does not count as serving, but 500 docs for
    // 400 returned is not worth an index.
    assert!(
        matches!(&o[10], Outcome::NotWorthIt { reason, .. } if reason.contains("1.2 documents per document returned"))
    );
}

#[test]
fn fixture_existing_index_findings() {
    let findings = index_findings(&existing(), &usage(), now(), 86_400);
    let summary: Vec<(&str, &str, String)> = findings
        .iter()
        .map(|f| {
            let what = match &f.kind {
                FindingKind::Duplicate { of } => format!("duplicate of {of}"),
                FindingKind::Redundant { covered_by } => format!("redundant with {covered_by}"),
                FindingKind::Unused { weak, age_secs, .. } => {
                    format!("unused {:?} weak={weak}", age_secs)
                }
            };
            (f.namespace.as_str(), f.index.as_str(), what)
        })
        .collect();
    let s = |ns: &'static str, name: &'static str, what: &str| (ns, name, what.to_owned());
    assert_eq!(
        summary,
        [
            s("shop.events", "by_type_ts", "duplicate of type_1_ts_-1"),
            s(
                "shop.events",
                "hidden_type",
                "unused Some(2592000) weak=false"
            ),
            s(
                "shop.orders",
                "status_1",
                "redundant with status_1_created_-1"
            ),
            s(
                "shop.orders",
                "customer_id_1_placed_1",
                "unused Some(1728000) weak=false"
            ),
            s("shop.users", "country_1", "unused Some(2592000) weak=false"),
            s("shop.users", "last_login_-1", "unused Some(7200) weak=true"),
        ]
    );
    assert_eq!(
        findings[2].drop_command,
        doc! { "dropIndexes": "orders", "index": "status_1" }
    );
    assert!(findings[5].detail.contains("weak evidence"));
    assert!(findings[5].detail.contains("(2h)"));
    assert!(
        findings[4]
            .detail
            .contains("since 2026-10-21T12:00:00Z (30d)")
    );
}
