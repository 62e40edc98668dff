//! The `mongo` capability through a real plugin (`mongoprobe`) against the
//! MongoDB-wire test server: classification against the grant, dry-run,
//! cursors in capped batches, the target URL's default database, and
//! secrets kept out of records.

use crate::world::{World, error_of, finding, invoke, metric};
use bson::doc;
use warden::runs::{ActionState, RunStatus};
use warden_tests::mongo;

async fn seeded(hint: &str, docs: i64) -> mongo::TestMongoDb {
    let db = mongo::server().create_database(hint).await;
    let client = mongo::server().client().await;
    let items = client
        .database(&db.name)
        .collection::<bson::Document>("items");
    let batch: Vec<bson::Document> = (0..docs)
        .map(|n| doc! { "n": n, "pad": "x".repeat(200) })
        .collect();
    if !batch.is_empty() {
        items.insert_many(batch).await.unwrap();
    }
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_classified_against_the_grant_and_dry_run_plans_writes() {
    let db = seeded("mongo_cap_grant", 10).await;
    let w = World::new()
        .fixture("mongoprobe")
        .mongo_target("docs", &db.url)
        .mongo_target("other", &db.url)
        .grant("mongoprobe", "docs", &["read"], "");
    let agent = w.agent().await;

    // A read runs, on the URL's database.
    let count = r#"{"count": "items", "query": {"n": {"$gte": 5}}}"#;
    let rec = invoke(&agent, "mongoprobe", "docs", &[("command", count)], false).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{}", error_of(&rec));
    assert_eq!(finding(&rec, "class"), "read");
    assert!(
        finding(&rec, "reply").contains("\"n\":5"),
        "{}",
        finding(&rec, "reply")
    );

    // A write without a `write` grant is denied before it reaches the server.
    let insert = r#"{"insert": "items", "documents": [{"n": 100}]}"#;
    let rec = invoke(&agent, "mongoprobe", "docs", &[("command", insert)], false).await;
    assert_eq!(rec.status, RunStatus::Denied);
    assert!(
        error_of(&rec).contains("not granted `write`"),
        "{}",
        error_of(&rec)
    );
    // Server-side JavaScript and unknown commands: refused whatever the grant.
    let js = r#"{"find": "items", "filter": {"$where": "this.n > 1"}}"#;
    let rec = invoke(&agent, "mongoprobe", "docs", &[("command", js)], false).await;
    assert_eq!(rec.status, RunStatus::Denied);
    assert!(error_of(&rec).contains("$where"), "{}", error_of(&rec));
    let shutdown = r#"{"shutdown": 1}"#;
    let rec = invoke(
        &agent,
        "mongoprobe",
        "docs",
        &[("command", shutdown)],
        false,
    )
    .await;
    assert_eq!(rec.status, RunStatus::Denied);
    // No grant for the other target.
    let rec = invoke(
        &agent,
        "mongoprobe",
        "docs",
        &[("command", count), ("target", "other")],
        false,
    )
    .await;
    assert_eq!(rec.status, RunStatus::Denied);
    assert!(
        error_of(&rec).contains("no grant for target `other`"),
        "{}",
        error_of(&rec)
    );
    let client = mongo::server().client().await;
    let items = client
        .database(&db.name)
        .collection::<bson::Document>("items");
    assert_eq!(items.count_documents(doc! {}).await.unwrap(), 10);

    // With a write grant: dry-run plans, a real run inserts once.
    let w = World::new()
        .fixture("mongoprobe")
        .mongo_target("docs", &db.url)
        .grant("mongoprobe", "docs", &["read", "write"], "");
    let agent = w.agent().await;
    let rec = invoke(&agent, "mongoprobe", "docs", &[("command", insert)], true).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{}", error_of(&rec));
    assert_eq!(metric(&rec, "planned"), 1.0);
    assert_eq!(rec.actions.len(), 1, "{:?}", rec.actions);
    assert_eq!(rec.actions[0].state, ActionState::Planned);
    assert!(
        rec.actions[0].statement.contains("insert"),
        "{:?}",
        rec.actions
    );
    assert_eq!(items.count_documents(doc! {}).await.unwrap(), 10);

    let rec = invoke(&agent, "mongoprobe", "docs", &[("command", insert)], false).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{}", error_of(&rec));
    assert_eq!(metric(&rec, "planned"), 0.0);
    assert_eq!(rec.actions[0].state, ActionState::Executed);
    assert_eq!(items.count_documents(doc! {}).await.unwrap(), 11);

    // An aggregation that writes with $out is a write, and not a cursor read.
    let out =
        r#"{"aggregate": "items", "pipeline": [{"$match": {}}, {"$out": "copy"}], "cursor": {}}"#;
    let rec = invoke(
        &agent,
        "mongoprobe",
        "docs",
        &[("command", out), ("mode", "classify")],
        false,
    )
    .await;
    assert_eq!(finding(&rec, "class"), "write");
    let rec = invoke(
        &agent,
        "mongoprobe",
        "docs",
        &[("command", out), ("mode", "cursor")],
        false,
    )
    .await;
    assert_eq!(rec.status, RunStatus::Failed);
    assert!(
        error_of(&rec).contains("open-cursor runs reads only"),
        "{}",
        error_of(&rec)
    );

    // Nothing secret in the records.
    let text = serde_json::to_string(&rec).unwrap();
    assert!(!text.contains(&db.url), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_read_everything_in_capped_batches() {
    let db = seeded("mongo_cap_cursor", 2_500).await;
    let w = World::new()
        .fixture("mongoprobe")
        .mongo_target("docs", &db.url)
        // 300 documents per batch at most, whatever the plugin asks.
        .grant("mongoprobe", "docs", &["read"], "max_rows = 300");
    let agent = w.agent().await;
    let find = r#"{"find": "items", "filter": {}, "sort": {"n": 1}, "batchSize": 1000}"#;
    let rec = invoke(
        &agent,
        "mongoprobe",
        "docs",
        &[("command", find), ("mode", "cursor"), ("batch", "1000")],
        false,
    )
    .await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{}", error_of(&rec));
    assert_eq!(metric(&rec, "documents"), 2_500.0);
    assert_eq!(metric(&rec, "max_batch_size"), 300.0);
    assert_eq!(metric(&rec, "exhausted"), 1.0);
    assert!(
        finding(&rec, "first").contains("\"n\":0"),
        "{}",
        finding(&rec, "first")
    );

    // A byte cap smaller than a batch: batches shrink, nothing is lost.
    let w = World::new()
        .fixture("mongoprobe")
        .mongo_target("docs", &db.url)
        .grant(
            "mongoprobe",
            "docs",
            &["read"],
            "max_result_bytes = \"10KiB\"",
        );
    let agent = w.agent().await;
    let agg =
        r#"{"aggregate": "items", "pipeline": [{"$match": {"n": {"$lt": 1000}}}], "cursor": {}}"#;
    let rec = invoke(
        &agent,
        "mongoprobe",
        "docs",
        &[("command", agg), ("mode", "cursor")],
        false,
    )
    .await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{}", error_of(&rec));
    assert_eq!(metric(&rec, "documents"), 1_000.0);
    assert!(metric(&rec, "max_batch_size") <= 50.0, "{:?}", rec.report);
}

/// Pipelines with a writing stage nested where the test server runs it
/// (it writes from all of these positions, unlike MongoDB, which refuses
/// `$out`/`$merge` inside `$facet`, `$lookup` and `$unionWith`), each
/// creating the collection its name says.
fn nested_writes() -> Vec<(&'static str, String)> {
    let agg = |p: &str| format!(r#"{{"aggregate": "items", "pipeline": {p}, "cursor": {{}}}}"#);
    vec![
        (
            "w_facet_out",
            agg(r#"[{"$facet": {"a": [{"$match": {}}], "b": [{"$out": "w_facet_out"}]}}]"#),
        ),
        (
            "w_facet_merge",
            agg(r#"[{"$facet": {"b": [{"$merge": {"into": "w_facet_merge"}}]}}]"#),
        ),
        (
            "w_lookup_out",
            agg(
                r#"[{"$lookup": {"from": "items", "pipeline": [{"$out": "w_lookup_out"}], "as": "j"}}]"#,
            ),
        ),
        (
            "w_lookup_merge",
            agg(
                r#"[{"$lookup": {"from": "items", "pipeline": [{"$merge": {"into": "w_lookup_merge"}}], "as": "j"}}]"#,
            ),
        ),
        (
            "w_union_out",
            agg(r#"[{"$unionWith": {"coll": "items", "pipeline": [{"$out": "w_union_out"}]}}]"#),
        ),
        (
            "w_union_merge",
            agg(
                r#"[{"$unionWith": {"coll": "items", "pipeline": [{"$merge": {"into": "w_union_merge"}}]}}]"#,
            ),
        ),
        (
            "w_three_deep",
            agg(
                r#"[{"$facet": {"a": [{"$lookup": {"from": "items", "as": "j", "pipeline": [{"$unionWith": {"coll": "items", "pipeline": [{"$out": "w_three_deep"}]}}]}}]}}]"#,
            ),
        ),
    ]
}

async fn collections(db: &str) -> Vec<String> {
    let client = mongo::server().client().await;
    let mut names = client.database(db).list_collection_names().await.unwrap();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_nested_in_sub_pipelines_need_write() {
    let db = seeded("mongo_cap_nested", 5).await;
    let w = World::new()
        .fixture("mongoprobe")
        .mongo_target("docs", &db.url)
        .grant("mongoprobe", "docs", &["read"], "");
    let agent = w.agent().await;

    // Under a read grant: every one is a write, denied before it reaches the
    // server, through run-command and open-cursor alike, and explained too.
    for (coll, command) in nested_writes() {
        let rec = invoke(
            &agent,
            "mongoprobe",
            "docs",
            &[("command", &command), ("mode", "classify")],
            false,
        )
        .await;
        assert_eq!(finding(&rec, "class"), "write", "{coll}: {command}");
        for mode in ["run", "cursor"] {
            let rec = invoke(
                &agent,
                "mongoprobe",
                "docs",
                &[("command", &command), ("mode", mode)],
                false,
            )
            .await;
            assert_eq!(
                rec.status,
                RunStatus::Denied,
                "{coll} {mode}: {}",
                error_of(&rec)
            );
            assert!(
                error_of(&rec).contains("not granted `write`"),
                "{coll} {mode}: {}",
                error_of(&rec)
            );
        }
        let explain = format!(r#"{{"explain": {command}, "verbosity": "executionStats"}}"#);
        let rec = invoke(
            &agent,
            "mongoprobe",
            "docs",
            &[("command", &explain)],
            false,
        )
        .await;
        assert_eq!(
            rec.status,
            RunStatus::Denied,
            "{coll} explain: {}",
            error_of(&rec)
        );
        assert!(
            error_of(&rec).contains("not granted `write`"),
            "{}",
            error_of(&rec)
        );
    }
    // The same shapes that only read still run under the read grant.
    let read = r#"{"aggregate": "items", "pipeline": [{"$facet": {"n": [{"$count": "n"}], "l": [{"$lookup": {"from": "items", "pipeline": [{"$limit": 1}], "as": "j"}}]}}, {"$unionWith": {"coll": "items", "pipeline": [{"$limit": 1}]}}], "cursor": {}}"#;
    let rec = invoke(&agent, "mongoprobe", "docs", &[("command", read)], false).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{}", error_of(&rec));
    assert_eq!(finding(&rec, "class"), "read");
    assert!(
        finding(&rec, "reply").contains("\"n\":5"),
        "{}",
        finding(&rec, "reply")
    );
    // An unknown stage (a typo, or a writing stage Warden does not know) is
    // refused, naming where it is.
    let unknown = r#"{"aggregate": "items", "pipeline": [{"$facet": {"a": [{"$outt": "w_typo"}]}}], "cursor": {}}"#;
    let rec = invoke(&agent, "mongoprobe", "docs", &[("command", unknown)], false).await;
    assert_eq!(rec.status, RunStatus::Denied, "{}", error_of(&rec));
    assert!(
        error_of(&rec).contains("`$outt` at pipeline[0].$facet.a[0] is not an aggregation stage"),
        "{}",
        error_of(&rec)
    );
    assert_eq!(collections(&db.name).await, ["items"]);

    // A view whose pipeline writes would write whenever anyone reads it
    // (this server does): refused whatever the grant.
    let w = World::new()
        .fixture("mongoprobe")
        .mongo_target("docs", &db.url)
        .grant("mongoprobe", "docs", &["read", "write", "ddl"], "");
    let agent = w.agent().await;
    let view = r#"{"create": "v_out", "viewOn": "items", "pipeline": [{"$facet": {"a": [{"$out": "w_view"}]}}]}"#;
    let rec = invoke(&agent, "mongoprobe", "docs", &[("command", view)], false).await;
    assert_eq!(rec.status, RunStatus::Denied, "{}", error_of(&rec));
    assert!(
        error_of(&rec).contains("refused whatever the grant"),
        "{}",
        error_of(&rec)
    );
    assert_eq!(collections(&db.name).await, ["items"]);

    // Under a write grant they run as before: dry-run plans them, a real run
    // writes.
    for (coll, command) in nested_writes() {
        let rec = invoke(&agent, "mongoprobe", "docs", &[("command", &command)], true).await;
        assert_eq!(
            rec.status,
            RunStatus::Succeeded,
            "{coll}: {}",
            error_of(&rec)
        );
        assert_eq!(metric(&rec, "planned"), 1.0, "{coll}");
        assert!(
            !collections(&db.name).await.contains(&coll.to_string()),
            "{coll}"
        );
        let rec = invoke(
            &agent,
            "mongoprobe",
            "docs",
            &[("command", &command)],
            false,
        )
        .await;
        assert_eq!(
            rec.status,
            RunStatus::Succeeded,
            "{coll}: {}",
            error_of(&rec)
        );
        assert_eq!(finding(&rec, "class"), "write", "{coll}");
        assert_eq!(rec.actions.len(), 1, "{coll}: {:?}", rec.actions);
        assert_eq!(rec.actions[0].state, ActionState::Executed, "{coll}");
        assert!(
            collections(&db.name).await.contains(&coll.to_string()),
            "{coll}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_commands_are_refused_without_harm() {
    let db = seeded("mongo_cap_deep", 3).await;
    let w = World::new()
        .fixture("mongoprobe")
        .mongo_target("docs", &db.url)
        .grant("mongoprobe", "docs", &["read"], "");
    let agent = w.agent().await;
    // About two million levels in 16 MiB, and just over the limit: refused
    // on the bytes, before anything recurses (the agent, which runs in this
    // test process, would die of a stack overflow otherwise).
    for levels in ["2000000", "129"] {
        let rec = invoke(
            &agent,
            "mongoprobe",
            "docs",
            &[("command", "{}"), ("mode", "nested"), ("levels", levels)],
            false,
        )
        .await;
        assert_eq!(
            rec.status,
            RunStatus::Failed,
            "{levels}: {}",
            error_of(&rec)
        );
        assert!(
            error_of(&rec).contains("nests documents and arrays deeper than 128 levels"),
            "{levels}: {}",
            error_of(&rec)
        );
    }
    // At the limit the command is parsed, classified and sent.
    let rec = invoke(
        &agent,
        "mongoprobe",
        "docs",
        &[("command", "{}"), ("mode", "nested"), ("levels", "128")],
        false,
    )
    .await;
    assert!(
        rec.status == RunStatus::Succeeded || error_of(&rec).contains("target `docs`"),
        "{:?}: {}",
        rec.status,
        error_of(&rec)
    );
    // And the agent goes on.
    let count = r#"{"count": "items"}"#;
    let rec = invoke(&agent, "mongoprobe", "docs", &[("command", count)], false).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{}", error_of(&rec));
    assert!(
        finding(&rec, "reply").contains("\"n\":3"),
        "{}",
        finding(&rec, "reply")
    );
}
