//! Backup test data: seeding a PostgreSQL database, a MongoDB database and a
//! SQLite file with varied content, and fingerprints to compare a source with
//! its restored copy. Shared by the dump engine tests and plugin-level backup
//! tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr as _;

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, DateTime, Decimal128, Document, RawDocumentBuf, doc, oid::ObjectId};
use mongodb::options::IndexOptions;
use mongodb::{Client, IndexModel};
use sqlx::{Connection as _, PgConnection, SqliteConnection};

/// Rows of the large PostgreSQL table (`public.orders`).
pub(crate) const PG_LARGE_ROWS: u64 = 200_000;
/// Documents of the large MongoDB collection (`events`).
pub(crate) const MONGO_LARGE_DOCS: u64 = 100_000;
/// Rows of the large SQLite table (`items`).
pub(crate) const SQLITE_LARGE_ROWS: u64 = 20_000;

/// Per table `"schema.table"`: `(row count, md5 of its rows' text, sorted)`.
pub(crate) type Fingerprints = BTreeMap<String, (u64, String)>;

/// Seeds a PostgreSQL database: `public.customers` (1,000 rows),
/// `public.orders` ([`PG_LARGE_ROWS`] rows of int, bigint, text, numeric,
/// timestamptz, jsonb, bytea, boolean, with NULLs, a foreign key to
/// customers), `public."Odd ""Name"" table"`, `public.empty_table`, and a
/// second schema `extra` with `extra.events` (a bigserial key) and
/// `extra.audit_log`. Fast: `INSERT ... SELECT generate_series`.
pub(crate) async fn seed_pg(url: &str) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(
        r#"
        CREATE TABLE public.customers (
            id int PRIMARY KEY,
            name text NOT NULL,
            email text UNIQUE,
            created timestamptz
        );
        INSERT INTO public.customers
        SELECT g, 'customer ' || g, 'c' || g || '@example.com',
               timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour'
        FROM generate_series(1, 1000) g;

        CREATE TABLE public.orders (
            id bigint PRIMARY KEY,
            customer_id int NOT NULL REFERENCES public.customers (id),
            quantity int,
            amount numeric(12, 2),
            note text,
            placed timestamptz,
            attrs jsonb,
            blob bytea,
            paid boolean
        );
        INSERT INTO public.orders
        SELECT g::bigint * 1000003,
               1 + g % 1000,
               CASE WHEN g % 11 = 0 THEN NULL ELSE g % 97 END,
               round((g % 100000) / 7.0, 2),
               CASE WHEN g % 10 = 0 THEN NULL ELSE 'note ' || md5(g::text) || E' \t ünï' END,
               timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
               jsonb_build_object('g', g, 'tags', jsonb_build_array('a', g % 3),
                                  'nested', jsonb_build_object('x', g % 5, 'y', null)),
               CASE WHEN g % 7 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') END,
               g % 2 = 0
        FROM generate_series(1, 200000) g;
        CREATE INDEX orders_customer ON public.orders (customer_id);

        CREATE TABLE public."Odd ""Name"" table" ("Mixed Case" text, n int);
        INSERT INTO public."Odd ""Name"" table" SELECT 'v' || g, g FROM generate_series(1, 50) g;

        CREATE TABLE public.empty_table (id int);

        CREATE SCHEMA extra;
        CREATE TABLE extra.events (
            id bigserial PRIMARY KEY,
            kind text NOT NULL,
            payload jsonb,
            at timestamptz NOT NULL
        );
        INSERT INTO extra.events (kind, payload, at)
        SELECT CASE g % 3 WHEN 0 THEN 'login' WHEN 1 THEN 'logout' ELSE 'purchase' END,
               CASE WHEN g % 4 = 0 THEN NULL ELSE jsonb_build_object('n', g) END,
               timestamptz '2024-06-01 00:00:00+00' + g * interval '1 minute'
        FROM generate_series(1, 5000) g;
        CREATE TABLE extra.audit_log (id int, line text);
        INSERT INTO extra.audit_log SELECT g, 'audit ' || g FROM generate_series(1, 300) g;
        ANALYZE;
        "#,
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
}

/// Every user table (not of an extension) of the database at `url`:
/// `"schema.table"` → `(count(*), md5(string_agg(t::text, '|' ORDER BY t::text)))`.
pub(crate) async fn pg_table_fingerprints(url: &str) -> Fingerprints {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND n.nspname NOT LIKE 'pg\\_toast%' \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d \
                           WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid \
                             AND d.deptype = 'e') \
         ORDER BY 1, 2",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut out = Fingerprints::new();
    for (schema, name) in tables {
        let quoted = format!("{}.{}", quote(&schema), quote(&name));
        let (count, md5): (i64, String) = sqlx::query_as(&format!(
            "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) \
             FROM {quoted} t"
        ))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        out.insert(format!("{schema}.{name}"), (count as u64, md5));
    }
    let _ = conn.close().await;
    out
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Seeds MongoDB database `db` at `url` (whose own database does not
/// matter): `customers` (2,000 documents, a unique and a sparse index),
/// `events` ([`MONGO_LARGE_DOCS`] documents with nested documents, arrays,
/// Int64, Decimal128, dates, binary, ObjectId `_id`s; a compound, a unique,
/// a TTL (dates far ahead) and a partial index), `empty` (no documents).
pub(crate) async fn seed_mongo(url: &str, db: &str) {
    seed_mongo_sized(url, db, MONGO_LARGE_DOCS).await;
}

/// [`seed_mongo`] with `event_docs` documents in `events` (a multiple of 5,000).
pub(crate) async fn seed_mongo_sized(url: &str, db: &str, event_docs: u64) {
    let client = Client::with_uri_str(url).await.unwrap();
    let db = client.database(db);

    let customers = db.collection::<Document>("customers");
    let docs: Vec<Document> = (0..2_000i32)
        .map(|i| {
            let city = ["Lyon", "Oslo", "Lima"][(i % 3) as usize];
            let mut d = doc! {
                "_id": ObjectId::new(),
                "name": format!("customer {i}"),
                "email": format!("c{i}@example.com"),
                "address": { "city": city, "zip": i % 1000 },
                "tags": ["t", format!("g{}", i % 5)],
            };
            if i % 4 == 0 {
                d.insert("nickname", format!("nick{i}"));
            }
            d
        })
        .collect();
    customers.insert_many(docs).await.unwrap();
    customers
        .create_index(
            IndexModel::builder()
                .keys(doc! { "email": 1 })
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await
        .unwrap();
    customers
        .create_index(
            IndexModel::builder()
                .keys(doc! { "nickname": 1 })
                .options(
                    IndexOptions::builder()
                        .sparse(true)
                        .name("nickname_sparse".to_owned())
                        .build(),
                )
                .build(),
        )
        .await
        .unwrap();

    let events = db.collection::<Document>("events");
    let far = DateTime::from_millis(4_102_444_800_000); // 2100-01-01
    const BATCH: u64 = 5_000;
    for batch in 0..event_docs / BATCH {
        let docs: Vec<Document> = (batch * BATCH..(batch + 1) * BATCH)
            .map(|seq| event(seq as i64, far))
            .collect();
        events.insert_many(docs).await.unwrap();
    }
    for model in [
        IndexModel::builder()
            .keys(doc! { "kind": 1, "at": -1 })
            .build(),
        IndexModel::builder()
            .keys(doc! { "seq": 1 })
            .options(
                IndexOptions::builder()
                    .unique(true)
                    .name("seq_unique".to_owned())
                    .build(),
            )
            .build(),
        IndexModel::builder()
            .keys(doc! { "expires_at": 1 })
            .options(
                IndexOptions::builder()
                    .expire_after(std::time::Duration::from_secs(3600))
                    .name("expires_ttl".to_owned())
                    .build(),
            )
            .build(),
        IndexModel::builder()
            .keys(doc! { "amount": -1, "seq": 1 })
            .options(
                IndexOptions::builder()
                    .partial_filter_expression(doc! { "kind": "purchase" })
                    .name("purchases_by_amount".to_owned())
                    .build(),
            )
            .build(),
    ] {
        events.create_index(model).await.unwrap();
    }

    db.create_collection("empty").await.unwrap();
}

/// Document `seq` of the `events` collection.
fn event(seq: i64, expires_at: DateTime) -> Document {
    let cents = seq % 100_000;
    let kind = ["login", "logout", "purchase"][(seq % 3) as usize];
    let amount = Decimal128::from_str(&format!("{}.{:02}", cents / 100, cents % 100)).unwrap();
    let payload = Binary {
        subtype: BinarySubtype::Generic,
        bytes: (0..24).map(|i| (seq + i) as u8).collect(),
    };
    let zip = Bson::Int32((seq % 1000) as i32);
    let mut d = doc! {
        "_id": ObjectId::new(),
        "seq": seq,
        "kind": kind,
        "at": DateTime::from_millis(1_700_000_000_000 + seq * 1_000),
        "expires_at": expires_at,
        "qty": Bson::Int64(seq * 1_000_000_007),
        "ratio": seq as f64 / 7.0,
        "amount": amount,
        "payload": payload,
        "profile": {
            "name": format!("user-{}", seq % 997),
            "tags": ["a", format!("t{}", seq % 3)],
            "address": { "city": "Lyon", "zip": zip },
            "history": [ { "n": 1, "ok": true }, { "n": 2, "ok": Bson::Null } ],
        },
    };
    if seq % 10 == 0 {
        d.insert("note", Bson::Null);
    }
    d
}

/// Every collection (not `system.*`) of database `db`: `(count, sha256 of
/// the documents' raw BSON bytes, sorted and concatenated)`.
pub(crate) async fn mongo_fingerprints(url: &str, db: &str) -> Fingerprints {
    let client = Client::with_uri_str(url).await.unwrap();
    let db = client.database(db);
    let mut out = Fingerprints::new();
    for name in db.list_collection_names().await.unwrap() {
        if name.starts_with("system.") {
            continue;
        }
        let mut cursor = db
            .collection::<RawDocumentBuf>(&name)
            .find(doc! {})
            .await
            .unwrap();
        let mut docs: Vec<Vec<u8>> = Vec::new();
        while cursor.advance().await.unwrap() {
            docs.push(cursor.current().as_bytes().to_vec());
        }
        docs.sort();
        let all = docs.concat();
        out.insert(
            name,
            (docs.len() as u64, warden::runtime::cache::digest(&all)),
        );
    }
    out
}

/// Every collection's index definitions as `listIndexes` gives them, less
/// `v` and `ns`, sorted by name.
pub(crate) async fn mongo_index_definitions(
    url: &str,
    db: &str,
) -> BTreeMap<String, Vec<Document>> {
    let client = Client::with_uri_str(url).await.unwrap();
    let db = client.database(db);
    let mut out = BTreeMap::new();
    for name in db.list_collection_names().await.unwrap() {
        if name.starts_with("system.") {
            continue;
        }
        let mut cursor = db
            .run_cursor_command(doc! { "listIndexes": name.as_str() })
            .await
            .unwrap();
        let mut indexes = Vec::new();
        while cursor.advance().await.unwrap() {
            let mut index: Document = cursor.deserialize_current().unwrap();
            index.remove("v");
            index.remove("ns");
            indexes.push(index);
        }
        indexes.sort_by(|a, b| {
            a.get_str("name")
                .unwrap_or("")
                .cmp(b.get_str("name").unwrap_or(""))
        });
        out.insert(name, indexes);
    }
    out
}

/// Creates SQLite database `path`: `items` ([`SQLITE_LARGE_ROWS`] rows of
/// integer, text, real, blob and NULLs), `"odd ""name"""`, an empty table,
/// an index, a view and a trigger, in WAL mode.
pub(crate) async fn seed_sqlite(path: &Path) {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        r#"
        PRAGMA journal_mode = WAL;
        CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL, data BLOB, note TEXT);
        WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 20000)
        INSERT INTO items SELECT n, 'item ' || n, n / 7.0, randomblob(16),
            CASE WHEN n % 5 = 0 THEN NULL ELSE 'note ' || n END FROM g;
        CREATE INDEX items_name ON items (name);
        CREATE TABLE "odd ""name""" (k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID;
        INSERT INTO "odd ""name""" VALUES ('a', 1), ('b', 2), ('c', NULL);
        CREATE TABLE empty_table (x);
        CREATE VIEW cheap_items AS SELECT * FROM items WHERE price < 10;
        CREATE TABLE item_log (id INTEGER PRIMARY KEY AUTOINCREMENT, item INTEGER);
        CREATE TRIGGER items_log AFTER INSERT ON items BEGIN INSERT INTO item_log (item) VALUES (new.id); END;
        INSERT INTO items (name, price) VALUES ('late', 1.5);
        "#,
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
}

/// Every user table of the SQLite database at `path`: `(count, the rows
/// quoted, sorted and joined)`, plus `"schema"`: the schema's SQL, sorted.
pub(crate) async fn sqlite_fingerprints(path: &Path) -> Fingerprints {
    let url = format!("sqlite://{}?mode=ro", path.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    let schema: Vec<String> = sqlx::query_scalar(
        "SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_master ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut out = Fingerprints::new();
    out.insert(
        "schema".to_owned(),
        (schema.len() as u64, schema.join("\n")),
    );
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for table in tables {
        let quoted = quote(&table);
        let columns: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT name FROM pragma_table_info('{}')",
            table.replace('\'', "''")
        ))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let row = columns
            .iter()
            .map(|c| format!("quote({})", quote(c)))
            .collect::<Vec<_>>()
            .join(" || ',' || ");
        let (count, rows): (i64, Option<String>) = sqlx::query_as(&format!(
            "SELECT count(*), group_concat(r, '|') FROM (SELECT {row} AS r FROM {quoted} ORDER BY 1)"
        ))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        out.insert(table, (count as u64, rows.unwrap_or_default()));
    }
    let _ = conn.close().await;
    out
}
