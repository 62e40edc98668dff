//! Smoke test of the MongoDB harness (`warden_tests::mongo`) through the official
//! driver. Nothing here relies on SecantusDB: it passes against a real `mongod` too.

use std::path::Path;
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, DateTime, Decimal128, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::event::EventHandler;
use mongodb::event::command::CommandEvent;
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, IndexModel};
use warden_tests::mongo;

const DOCS: i64 = 10_000;
const BATCH: i64 = 1_000;
const GROUPS: i64 = 7;

fn group_of(seq: i64) -> String {
    format!("g{}", seq % GROUPS)
}

/// `seq`'s price in cents; stored as a Decimal128 with two decimals.
fn price_cents(seq: i64) -> i64 {
    (seq % 50) * 100 + seq % 100
}

fn payload(seq: i64) -> Vec<u8> {
    (0..64).map(|i| (seq + i) as u8).collect()
}

fn document(seq: i64, now: DateTime) -> Document {
    let cents = price_cents(seq);
    doc! {
        "seq": seq,
        "group": group_of(seq),
        "qty": Bson::Int64(seq * 1_000_000_007),
        "price": Decimal128::from_str(&format!("{}.{:02}", cents / 100, cents % 100)).unwrap(),
        "created": DateTime::from_millis(now.timestamp_millis() + seq),
        // Far enough ahead that the TTL index below removes nothing during the test.
        "expires_at": DateTime::from_millis(now.timestamp_millis() + 86_400_000),
        "payload": Binary { subtype: BinarySubtype::Generic, bytes: payload(seq) },
        "profile": {
            "name": format!("user-{seq}"),
            "tags": ["a", format!("t{}", seq % 3)],
            "address": { "city": "Lyon", "zip": Bson::Int32((seq % 1000) as i32) },
        },
    }
}

/// Any numeric BSON value as an i64 (servers may widen or narrow a `$sum`).
fn as_i64(value: Option<&Bson>) -> i64 {
    match value {
        Some(Bson::Int32(v)) => i64::from(*v),
        Some(Bson::Int64(v)) => *v,
        Some(Bson::Double(v)) if v.fract() == 0.0 => *v as i64,
        other => panic!("not an integer: {other:?}"),
    }
}

#[tokio::test]
async fn driver_round_trip_indexes_aggregate_and_cursor() {
    let started = Instant::now();
    let server = mongo::server();
    eprintln!(
        "mongo test server {} on port {}: started in {:.2?} (first call took {:.2?})",
        server.flavour(),
        server.port(),
        server.started_in(),
        started.elapsed()
    );
    // The server log's tail, for a failure's message.
    let log = || server.log_tail();

    let db_a = server.create_database("mongo harness").await;
    let db_b = server.create_database("mongo harness").await;
    assert_ne!(db_a.name, db_b.name);
    assert!(
        db_a.url.contains(&format!("/{}?", db_a.name)),
        "{}",
        db_a.url
    );

    // A client that counts the getMore commands it sends.
    let get_mores = Arc::new(AtomicUsize::new(0));
    let mut options = ClientOptions::parse(&db_a.url).await.unwrap();
    let counter = Arc::clone(&get_mores);
    options.command_event_handler = Some(EventHandler::callback(move |event| {
        if let CommandEvent::Started(started) = event
            && started.command_name == "getMore"
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }));
    let client = Client::with_options(options).unwrap();
    let db = client
        .default_database()
        .expect("the URL names the database");
    assert_eq!(db.name(), db_a.name);
    let coll = db.collection::<Document>("events");

    // Insert in batches.
    let now = DateTime::now();
    let insert_start = Instant::now();
    for batch in 0..DOCS / BATCH {
        let docs: Vec<Document> = (batch * BATCH..(batch + 1) * BATCH)
            .map(|seq| document(seq, now))
            .collect();
        let result = coll
            .insert_many(docs)
            .await
            .unwrap_or_else(|err| panic!("insert_many batch {batch}: {err}\n{}", log()));
        assert_eq!(result.inserted_ids.len() as i64, BATCH);
    }
    let insert_time = insert_start.elapsed();
    eprintln!(
        "inserted {DOCS} docs in {insert_time:.2?}: {:.0} docs/s",
        DOCS as f64 / insert_time.as_secs_f64()
    );
    assert_eq!(coll.count_documents(doc! {}).await.unwrap(), DOCS as u64);
    assert_eq!(
        coll.count_documents(doc! { "group": "g3" }).await.unwrap(),
        (0..DOCS).filter(|s| s % GROUPS == 3).count() as u64
    );
    let names = client.list_database_names().await.unwrap();
    assert!(names.contains(&db_a.name), "{names:?}");
    assert!(!names.contains(&db_b.name), "{names:?}");

    // The types round-trip.
    let one = coll
        .find_one(doc! { "seq": 4_321_i64 })
        .await
        .unwrap()
        .expect("seq 4321");
    assert_eq!(one.get("qty"), Some(&Bson::Int64(4_321 * 1_000_000_007)));
    assert_eq!(
        one.get_document("profile")
            .unwrap()
            .get_document("address")
            .unwrap()
            .get("zip"),
        Some(&Bson::Int32(321))
    );
    assert_eq!(
        one.get_document("profile")
            .unwrap()
            .get_str("name")
            .unwrap(),
        "user-4321"
    );
    assert_eq!(
        one.get("price"),
        Some(&Bson::Decimal128(Decimal128::from_str("21.21").unwrap()))
    );
    assert_eq!(
        one.get_datetime("created").unwrap().timestamp_millis(),
        now.timestamp_millis() + 4_321
    );
    assert_eq!(one.get_binary_generic("payload").unwrap(), &payload(4_321));

    // A unique index and a TTL index, read back with listIndexes.
    coll.create_index(
        IndexModel::builder()
            .keys(doc! { "seq": 1 })
            .options(
                IndexOptions::builder()
                    .unique(true)
                    .name("seq_unique".to_string())
                    .build(),
            )
            .build(),
    )
    .await
    .unwrap_or_else(|err| panic!("creating the unique index: {err}\n{}", log()));
    coll.create_index(
        IndexModel::builder()
            .keys(doc! { "expires_at": 1 })
            .options(
                IndexOptions::builder()
                    .expire_after(Duration::from_secs(3600))
                    .name("expires_ttl".to_string())
                    .build(),
            )
            .build(),
    )
    .await
    .unwrap_or_else(|err| panic!("creating the TTL index: {err}\n{}", log()));
    let mut cursor = coll.list_indexes().await.unwrap();
    let mut indexes = Vec::new();
    while cursor.advance().await.unwrap() {
        indexes.push(cursor.deserialize_current().unwrap());
    }
    let find = |name: &str| -> IndexModel {
        indexes
            .iter()
            .find(|i| i.options.as_ref().and_then(|o| o.name.as_deref()) == Some(name))
            .cloned()
            .unwrap_or_else(|| panic!("no index {name} in {indexes:?}"))
    };
    let unique = find("seq_unique");
    assert_eq!(unique.keys, doc! { "seq": 1 });
    assert_eq!(unique.options.unwrap().unique, Some(true));
    let ttl = find("expires_ttl");
    assert_eq!(ttl.keys, doc! { "expires_at": 1 });
    assert_eq!(
        ttl.options.unwrap().expire_after,
        Some(Duration::from_secs(3600))
    );
    find("_id_");
    assert_eq!(indexes.len(), 3, "{indexes:?}");

    // The unique index is enforced (E11000).
    let err = coll
        .insert_one(document(17, now))
        .await
        .expect_err("a duplicate seq is refused");
    match *err.kind {
        ErrorKind::Write(WriteFailure::WriteError(ref write)) => {
            assert_eq!(write.code, 11000, "{err}")
        }
        _ => panic!("expected a duplicate key error, got {err}"),
    }

    // $group over Int64 and Decimal128.
    let mut cursor = coll
        .aggregate([
            doc! { "$group": {
                "_id": "$group",
                "n": { "$sum": 1 },
                "qty": { "$sum": "$qty" },
                "price": { "$sum": "$price" },
                "max_seq": { "$max": "$seq" },
            } },
            doc! { "$sort": { "_id": 1 } },
        ])
        .await
        .unwrap_or_else(|err| panic!("aggregate: {err}\n{}", log()));
    let mut groups = Vec::new();
    while cursor.advance().await.unwrap() {
        groups.push(cursor.deserialize_current().unwrap());
    }
    assert_eq!(groups.len() as i64, GROUPS, "{groups:?}");
    for (g, group) in groups.iter().enumerate() {
        let g = g as i64;
        let members: Vec<i64> = (0..DOCS).filter(|s| s % GROUPS == g).collect();
        assert_eq!(group.get_str("_id").unwrap(), group_of(g));
        assert_eq!(as_i64(group.get("n")), members.len() as i64);
        assert_eq!(
            as_i64(group.get("qty")),
            members.iter().map(|s| s * 1_000_000_007).sum::<i64>()
        );
        assert_eq!(as_i64(group.get("max_seq")), *members.last().unwrap());
        let Some(Bson::Decimal128(price)) = group.get("price") else {
            panic!("the sum of Decimal128 is a Decimal128: {group}");
        };
        let cents = (price.to_string().parse::<f64>().unwrap() * 100.0).round() as i64;
        assert_eq!(
            cents,
            members.iter().map(|s| price_cents(*s)).sum::<i64>(),
            "{price}"
        );
    }

    // A sorted find read over many small batches.
    let expected: Vec<i64> = (0..DOCS).rev().filter(|s| s % GROUPS == 3).collect();
    let get_mores_before = get_mores.load(Ordering::Relaxed);
    let read_start = Instant::now();
    let mut cursor = coll
        .find(doc! { "group": "g3" })
        .sort(doc! { "seq": -1 })
        .batch_size(100)
        .await
        .unwrap();
    let mut seen = Vec::with_capacity(expected.len());
    while cursor.advance().await.unwrap() {
        seen.push(cursor.current().get_i64("seq").unwrap());
    }
    let read_time = read_start.elapsed();
    assert_eq!(seen, expected);
    let batches = get_mores.load(Ordering::Relaxed) - get_mores_before;
    assert!(
        batches >= expected.len() / 100 - 1,
        "{} docs in batches of 100 took only {batches} getMores",
        expected.len()
    );
    eprintln!(
        "read {} docs sorted in {} getMores in {read_time:.2?}: {:.0} docs/s",
        seen.len(),
        batches,
        seen.len() as f64 / read_time.as_secs_f64()
    );

    db.drop().await.unwrap();
}

/// An owned server (`mongo::start_owned`): writes work, `kill` makes the driver fail
/// within its short server selection timeout, and dropping it removes its dir; a
/// running owned server is stopped by drop. The shared server is not involved.
#[tokio::test]
async fn owned_server_kill_and_drop() {
    let mut server = tokio::task::spawn_blocking(mongo::start_owned)
        .await
        .unwrap();
    let dir = server.dir().to_path_buf();
    assert!(dir.is_dir(), "{}", dir.display());
    eprintln!(
        "owned mongo test server {} on port {}: started in {:.2?}",
        server.flavour(),
        server.port(),
        server.started_in()
    );

    let db = server.create_database("owned server").await;
    let url = format!("{}&serverSelectionTimeoutMS=1000", db.url);
    let client = Client::with_uri_str(&url).await.unwrap();
    let coll = client
        .default_database()
        .expect("the URL names the database")
        .collection::<Document>("items");
    coll.insert_one(doc! { "n": 1_i64, "note": "before the kill" })
        .await
        .unwrap_or_else(|err| panic!("insert before the kill: {err}\n{}", server.log_tail()));
    assert_eq!(coll.count_documents(doc! {}).await.unwrap(), 1);

    let pid = server.pid();
    assert!(server.is_running());
    server.kill();
    assert!(!server.is_running());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} is still there after kill"
    );
    // The dir (with the log) stays until drop.
    assert!(dir.is_dir());

    // The client that was connected: a network error or, once the pool is cleared, a
    // server selection timeout; either way an error, and soon.
    let t = Instant::now();
    let err = coll
        .insert_one(doc! { "n": 2_i64 })
        .await
        .expect_err("a write to a killed server fails");
    let waited = t.elapsed();
    assert!(
        matches!(
            *err.kind,
            ErrorKind::Io(_)
                | ErrorKind::ServerSelection { .. }
                | ErrorKind::ConnectionPoolCleared { .. }
        ),
        "unexpected error kind: {err:?}"
    );
    assert!(
        waited < Duration::from_secs(15),
        "failed only after {waited:.2?}: {err}"
    );
    // A fresh client: server selection times out after ~1 s.
    let fresh = Client::with_uri_str(&url).await.unwrap();
    let t = Instant::now();
    let err = fresh
        .default_database()
        .unwrap()
        .run_command(doc! { "ping": 1 })
        .await
        .expect_err("a ping to a killed server fails");
    let waited = t.elapsed();
    assert!(
        matches!(*err.kind, ErrorKind::ServerSelection { .. }),
        "expected a server selection error, got {err:?}"
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
        "server selection gave up after {waited:.2?}"
    );
    eprintln!("after kill: {err} (after {waited:.2?})");

    drop(server);
    assert!(!dir.exists(), "{} is left after drop", dir.display());

    // A running owned server is stopped by drop (SIGTERM first).
    let other = tokio::task::spawn_blocking(mongo::start_owned)
        .await
        .unwrap();
    let (pid, dir) = (other.pid(), other.dir().to_path_buf());
    let t = Instant::now();
    drop(other);
    eprintln!("dropped a running owned server in {:.2?}", t.elapsed());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} is still there after drop"
    );
    assert!(!dir.exists(), "{} is left after drop", dir.display());
}
