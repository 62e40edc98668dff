//! Backup figures, on the same data in one run:
//!
//! - PostgreSQL: a database of the harness cluster seeded with [`PG_TOTAL_ROWS`] rows
//!   over three tables of mixed types. `pg_dump -Fc -Z 6` run directly (the cluster's
//!   own bin dir, the connection through `PG*` variables), best of 3; then the same
//!   dump through the `backup` plugin in an in-process agent (custom format,
//!   compression 6, a local store), best of 3. MB/s (of the output's size), rows/s,
//!   and the ratio plugin/direct (target ≥ 0.95).
//! - MongoDB: a database of the harness server seeded with [`MONGO_TOTAL_DOCS`]
//!   documents (nested documents, Int64, Decimal128, dates, binary) over two
//!   collections. A raw read of every document through the official driver
//!   (`RawDocumentBuf`, large batches), best of 3; then the dump through the `backup`
//!   plugin (`gzip=false`), best of 3. docs/s, MB/s, and the ratio dump/raw
//!   (target ≥ 0.9).
//!
//! The plugin's time is the whole run as an operator sees it (`agent.invoke`:
//! instantiation, the host's dump with its exact counts and checksums, the plugin's
//! checksum verification, the retention listing); the host's own dump time, from the
//! report, is printed beside it.
//!
//! Prints figures; asserts only correctness (every run succeeded, the artifacts'
//! counts equal the seeded counts), never timing. Run with `cargo xtask bench` (it
//! builds the plugins first) or `cargo bench -p warden-tests --bench backup`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, DateTime, Decimal128, Document, RawDocumentBuf, doc};
use mongodb::action::Action as _;
use sqlx::{Connection as _, PgConnection};
use warden::agent::{Agent, RunRequest};
use warden::artifacts::{ArtifactStore as _, LocalStore, Manifest};
use warden::runs::{RunRecord, RunStatus};
use warden_tests::{mongo, pg, plugin_wasm, repo_root};

/// Rows per PostgreSQL table.
const PG_TABLES: [(&str, u64); 3] = [
    ("public.customers", 200_000),
    ("public.orders", 1_200_000),
    ("public.events", 600_000),
];
const PG_TOTAL_ROWS: u64 = 200_000 + 1_200_000 + 600_000;
/// Documents per MongoDB collection.
const MONGO_COLLECTIONS: [(&str, u64); 2] = [("events", 250_000), ("users", 50_000)];
const MONGO_TOTAL_DOCS: u64 = 250_000 + 50_000;
/// Documents per `insert_many`.
const MONGO_BATCH: u64 = 1_000;
/// Concurrent inserting tasks per collection.
const MONGO_WRITERS: u64 = 4;
/// `batchSize` of the raw read.
const RAW_BATCH: u32 = 10_000;
/// Runs of each measurement; the best counts.
const RUNS: usize = 3;
const PG_TARGET_RATIO: f64 = 0.95;
const MONGO_TARGET_RATIO: f64 = 0.9;

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn per_s(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn best(times: &[Duration]) -> Duration {
    times.iter().copied().min().unwrap()
}

fn verdict(ratio: f64, target: f64) -> &'static str {
    if ratio >= target { "met" } else { "BELOW" }
}

/// Seeds the PostgreSQL database: customers (int, text, char, date, boolean,
/// double), orders (bigint, int, numeric, text, timestamptz, jsonb, boolean, a
/// foreign key), events (bigserial, text, jsonb, timestamptz, bytea, text[]).
async fn seed_pg(url: &str) {
    let [(_, customers), (_, orders), (_, events)] = PG_TABLES;
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(&format!(
        r#"
        CREATE TABLE public.customers (
            id int PRIMARY KEY,
            name text NOT NULL,
            email text,
            country char(2),
            created date,
            active boolean,
            score double precision
        );
        INSERT INTO public.customers
        SELECT g, 'customer ' || g, 'c' || g || '@example.com',
               (ARRAY['FR', 'DE', 'US', 'JP', 'BR'])[1 + g % 5],
               date '2020-01-01' + g % 1500, g % 3 <> 0, (g % 1000) / 7.0
        FROM generate_series(1, {customers}) g;

        CREATE TABLE public.orders (
            id bigint PRIMARY KEY,
            customer_id int NOT NULL REFERENCES public.customers (id),
            quantity int,
            amount numeric(12, 2),
            status text,
            note text,
            placed timestamptz,
            attrs jsonb,
            paid boolean
        );
        INSERT INTO public.orders
        SELECT g::bigint * 1000003,
               1 + g % {customers},
               CASE WHEN g % 11 = 0 THEN NULL ELSE g % 97 END,
               round((g % 100000) / 7.0, 2),
               (ARRAY['new', 'paid', 'shipped', 'delivered', 'returned'])[1 + g % 5],
               CASE WHEN g % 10 = 0 THEN NULL ELSE 'note ' || md5(g::text) END,
               timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
               jsonb_build_object('g', g, 'tags', jsonb_build_array('a', g % 3),
                                  'nested', jsonb_build_object('x', g % 5, 'y', null)),
               g % 2 = 0
        FROM generate_series(1, {orders}) g;

        CREATE TABLE public.events (
            id bigserial PRIMARY KEY,
            kind text NOT NULL,
            payload jsonb,
            at timestamptz NOT NULL,
            blob bytea,
            tags text[]
        );
        INSERT INTO public.events (kind, payload, at, blob, tags)
        SELECT CASE g % 3 WHEN 0 THEN 'login' WHEN 1 THEN 'logout' ELSE 'purchase' END,
               CASE WHEN g % 4 = 0 THEN NULL ELSE jsonb_build_object('n', g, 'h', md5(g::text)) END,
               timestamptz '2024-06-01 00:00:00+00' + g * interval '1 minute',
               CASE WHEN g % 7 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') END,
               ARRAY['t' || g % 10, 'u' || g % 7]
        FROM generate_series(1, {events}) g;
        "#
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    // Hint bits and statistics now, so the first dump does not pay for them.
    sqlx::raw_sql("VACUUM (FREEZE, ANALYZE)")
        .execute(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
}

async fn pg_database_size(url: &str) -> u64 {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let (size,): (i64,) = sqlx::query_as("SELECT pg_database_size(current_database())")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    size as u64
}

/// `pg_dump -Fc -Z 6 -f FILE` with the cluster's own `pg_dump`, connecting over TCP
/// with the password, as the agent does.
async fn direct_pg_dump(db: &str, out: &Path) -> Duration {
    let cluster = pg::cluster();
    let mut cmd = tokio::process::Command::new(cluster.bin_dir().join("pg_dump"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.args(["-Fc", "-Z", "6", "-f"])
        .arg(out)
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", cluster.port().to_string())
        .env("PGUSER", pg::SUPERUSER)
        .env("PGPASSWORD", cluster.password())
        .env("PGDATABASE", db)
        .stdin(std::process::Stdio::null());
    let t = Instant::now();
    let output = cmd.output().await.unwrap();
    let took = t.elapsed();
    assert!(
        output.status.success(),
        "pg_dump failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    took
}

/// The `seq`-th document of collection `events`: nested documents and arrays,
/// Int64, Decimal128, dates, binary.
fn event(seq: u64, base: i64) -> Document {
    let s = seq as i64;
    let cents = (s % 50) * 100 + s % 100;
    let kind = ["login", "logout", "purchase"][(seq % 3) as usize];
    doc! {
        "seq": s,
        "kind": kind,
        "qty": Bson::Int64(s * 1_000_000_007),
        "price": Decimal128::from_str(&format!("{}.{:02}", cents / 100, cents % 100)).unwrap(),
        "at": DateTime::from_millis(base + s * 1_000),
        "payload": Binary {
            subtype: BinarySubtype::Generic,
            bytes: (0..48).map(|i| (s + i) as u8).collect(),
        },
        "source": {
            "host": format!("host-{}", seq % 100),
            "tags": ["a", format!("t{}", seq % 7)],
            "geo": { "lat": (s % 180) as f64 - 90.0, "lon": (s % 360) as f64 - 180.0 },
        },
        "note": format!("event {seq} {:016x}", seq.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
    }
}

/// The `seq`-th document of collection `users`.
fn user(seq: u64, base: i64) -> Document {
    let s = seq as i64;
    let locale = ["fr-FR", "de-DE", "en-US"][(seq % 3) as usize];
    doc! {
        "seq": s,
        "name": format!("user-{seq}"),
        "email": format!("u{seq}@example.com"),
        "created": DateTime::from_millis(base - s * 60_000),
        "balance": Decimal128::from_str(&format!("{}.{:02}", s % 10_000, s % 100)).unwrap(),
        "visits": Bson::Int64(s * 31),
        "active": !seq.is_multiple_of(4),
        "profile": {
            "locale": locale,
            "address": { "city": "Lyon", "zip": Bson::Int32((seq % 1000) as i32) },
            "flags": [seq.is_multiple_of(2), seq.is_multiple_of(3)],
        },
        "avatar": Binary { subtype: BinarySubtype::Generic, bytes: vec![(seq % 251) as u8; 96] },
    }
}

/// Seeds every collection of [`MONGO_COLLECTIONS`] with [`MONGO_WRITERS`]
/// concurrent `insert_many` loops each.
async fn seed_mongo(db: &mongodb::Database) {
    let base = DateTime::now().timestamp_millis();
    let mut tasks = Vec::new();
    for (name, count) in MONGO_COLLECTIONS {
        let per_writer = count.div_ceil(MONGO_WRITERS);
        for w in 0..MONGO_WRITERS {
            let coll = db.collection::<Document>(name);
            let (from, to) = (w * per_writer, ((w + 1) * per_writer).min(count));
            tasks.push(tokio::spawn(async move {
                let mut start = from;
                while start < to {
                    let end = (start + MONGO_BATCH).min(to);
                    let docs: Vec<Document> = (start..end)
                        .map(|seq| match name {
                            "events" => event(seq, base),
                            _ => user(seq, base),
                        })
                        .collect();
                    coll.insert_many(docs)
                        .await
                        .unwrap_or_else(|err| panic!("insert_many into {name}: {err}"));
                    start = end;
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// Reads every document of every collection as `RawDocumentBuf`, in batches of
/// `batch` documents (`None`: the server's default, as the dump engine reads):
/// (documents, bytes).
async fn raw_read(db: &mongodb::Database, batch: Option<u32>) -> (u64, u64) {
    let (mut docs, mut bytes) = (0u64, 0u64);
    for (name, _) in MONGO_COLLECTIONS {
        let mut cursor = db
            .collection::<RawDocumentBuf>(name)
            .find(doc! {})
            .optional(batch, |find, b| find.batch_size(b))
            .await
            .unwrap();
        while cursor.advance().await.unwrap() {
            let doc: RawDocumentBuf = cursor.deserialize_current().unwrap();
            bytes += doc.as_bytes().len() as u64;
            docs += 1;
        }
    }
    (docs, bytes)
}

/// A throwaway agent installation: the backup plugin, a postgres and a mongodb
/// target (URLs in files), a local store, the cluster's `pg_dump`, a read grant
/// listing the store.
struct Install {
    dir: tempfile::TempDir,
    agent: Agent,
}

impl Install {
    async fn new(pg_url: &str, mongo_url: &str) -> Install {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("plugins")).unwrap();
        std::fs::create_dir_all(d.join("policies")).unwrap();
        std::fs::copy(plugin_wasm("backup"), d.join("plugins/backup.wasm")).unwrap();
        std::fs::write(d.join("app.url"), pg_url).unwrap();
        std::fs::write(d.join("docs.url"), mongo_url).unwrap();
        std::fs::write(
            d.join("warden.toml"),
            format!(
                "plugin_dir = \"plugins\"\npolicy_dir = \"policies\"\nstate_db = \"state/warden.db\"\n\
                 cache_dir = \"{}\"\n\n\
                 [[target]]\nname = \"app\"\nkind = \"postgres\"\nurl_file = \"app.url\"\n\n\
                 [[target]]\nname = \"docs\"\nkind = \"mongodb\"\nurl_file = \"docs.url\"\n\n\
                 [[store]]\nname = \"local\"\nkind = \"local\"\nroot = \"stores/local\"\n\n\
                 [tools]\npg_bin_dir = \"{}\"\n",
                repo_root().join("target/bench-component-cache").display(),
                pg::cluster().bin_dir().display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("policies/backup.toml"),
            "[[grant]]\nplugin = \"backup\"\ntargets = [\"app\", \"docs\"]\n\
             capabilities = [\"read\"]\nartifacts = [\"local\"]\n\
             max_runtime = \"30m\"\nstatement_timeout = \"30m\"\n",
        )
        .unwrap();
        let agent = match Agent::load(&d.join("warden.toml")).await {
            Ok(agent) => agent,
            Err(diag) => panic!("the agent did not load:\n{diag}"),
        };
        Install { dir, agent }
    }

    fn store_root(&self) -> PathBuf {
        self.dir.path().join("stores/local")
    }

    /// One backup run of `target` with `params`: (wall time, the record, the
    /// artifact's manifest). Panics unless it succeeded with exactly one artifact
    /// under `<target>/<prefix>`.
    async fn backup(
        &self,
        target: &str,
        prefix: &str,
        params: &[(&str, &str)],
    ) -> (Duration, RunRecord, Manifest) {
        let mut req = RunRequest::manual("backup", target)
            .param("store", "local")
            .param("prefix", prefix)
            .param("prune", "false");
        for (k, v) in params {
            req = req.param(k, v);
        }
        let t = Instant::now();
        let rec = self.agent.invoke(req).await.unwrap();
        let took = t.elapsed();
        if rec.status != RunStatus::Succeeded {
            let error = rec
                .error
                .as_ref()
                .map(|e| format!("{:?} {}: {}", e.blame, e.kind, e.message))
                .unwrap_or_default();
            let hint = if error.contains("stub") {
                "\n(the host's dump engine is not wired yet)"
            } else {
                ""
            };
            panic!(
                "backup of {target} ended {:?}: {error}{hint}\nfindings: {:#?}\nlogs: {:#?}",
                rec.status,
                rec.report.as_ref().map(|r| &r.findings),
                rec.logs
            );
        }
        let list = LocalStore::new(self.store_root())
            .list(&format!("{target}/{prefix}"))
            .await
            .unwrap();
        assert_eq!(
            list.len(),
            1,
            "one artifact under {target}/{prefix}: {list:?}"
        );
        (took, rec, list.into_iter().next().unwrap())
    }
}

fn metric(rec: &RunRecord, name: &str) -> f64 {
    let report = rec.report.as_ref().expect("a report");
    report
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name} in {:?}", report.metrics))
        .value
}

/// The manifest's per-object counts (`count:<object>` metadata).
fn counts_of(manifest: &Manifest) -> BTreeMap<String, u64> {
    manifest
        .metadata
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("count:")?.to_string(), v.parse().unwrap())))
        .collect()
}

fn expected(objects: &[(&str, u64)]) -> BTreeMap<String, u64> {
    objects.iter().map(|(n, c)| (n.to_string(), *c)).collect()
}

/// One line of the final table.
struct Row {
    what: String,
    items: u64,
    bytes: u64,
    time: Duration,
    ratio: Option<(f64, f64)>,
}

fn print_table(unit: &str, rows: &[Row]) {
    println!(
        "  {:<44} {:>11} {:>10} {:>9} {:>8} {:>12} {:>16}",
        "",
        unit,
        "MB",
        "best s",
        "MB/s",
        format!("{unit}/s"),
        "ratio (target)"
    );
    for r in rows {
        let ratio = match r.ratio {
            Some((ratio, target)) => {
                format!("{ratio:.3} (≥{target}) {}", verdict(ratio, target))
            }
            None => String::new(),
        };
        println!(
            "  {:<44} {:>11} {:>10.1} {:>9.3} {:>8.1} {:>12.0} {:>16}",
            r.what,
            thousands(r.items),
            mb(r.bytes),
            r.time.as_secs_f64(),
            mb(r.bytes) / r.time.as_secs_f64(),
            per_s(r.items, r.time),
            ratio
        );
    }
}

/// `pg_dump -Fc -Z 6` directly, once: (time, output bytes).
async fn pg_direct_run(db: &str, scratch: &Path, round: usize) -> (Duration, u64) {
    let out = scratch.join(format!("direct-{round}.dump"));
    let took = direct_pg_dump(db, &out).await;
    let size = std::fs::metadata(&out).unwrap().len();
    println!(
        "pg_dump -Fc -Z 6 direct, round {round}: {took:.2?}, {:.1} MB, {:.1} MB/s",
        mb(size),
        mb(size) / took.as_secs_f64()
    );
    std::fs::remove_file(&out).unwrap();
    (took, size)
}

/// A PostgreSQL backup through the plugin, once: (whole run, host dump, artifact
/// bytes). Checks the artifact's counts.
async fn pg_plugin_run(install: &Install, round: usize) -> (Duration, Duration, u64) {
    let prefix = format!("pg-run{round}/");
    let (took, rec, manifest) = install
        .backup(
            "app",
            &prefix,
            &[("format", "custom"), ("compression", "6")],
        )
        .await;
    assert_eq!(
        counts_of(&manifest),
        expected(&PG_TABLES),
        "{}",
        manifest.name
    );
    assert_eq!(metric(&rec, "rows_or_documents"), PG_TOTAL_ROWS as f64);
    assert_eq!(metric(&rec, "bytes"), manifest.size_bytes as f64);
    let host = Duration::from_secs_f64(metric(&rec, "duration_seconds"));
    println!(
        "backup plugin (postgres, custom, -Z 6), round {round}: {took:.2?} (host dump {host:.2?}), \
         {:.1} MB, {:.1} MB/s, {}",
        mb(manifest.size_bytes),
        mb(manifest.size_bytes) / took.as_secs_f64(),
        manifest.name
    );
    (took, host, manifest.size_bytes)
}

/// A raw read of every document, once: (time, BSON bytes).
async fn mongo_raw_run(
    db: &mongodb::Database,
    batch: Option<u32>,
    round: usize,
) -> (Duration, u64) {
    let t = Instant::now();
    let (docs, bytes) = raw_read(db, batch).await;
    let took = t.elapsed();
    assert_eq!(docs, MONGO_TOTAL_DOCS);
    let batch = batch.map_or("the default batch size".to_owned(), |b| {
        format!("batch size {b}")
    });
    println!(
        "raw driver read, {batch}, round {round}: {took:.2?}, {} docs, {:.1} MB, {:.0} docs/s",
        thousands(docs),
        mb(bytes),
        per_s(docs, took)
    );
    (took, bytes)
}

/// A MongoDB dump through the plugin, once: (whole run, host dump, artifact bytes).
/// Checks the artifact's counts.
async fn mongo_dump_run(install: &Install, round: usize) -> (Duration, Duration, u64) {
    let prefix = format!("mongo-run{round}/");
    let (took, rec, manifest) = install.backup("docs", &prefix, &[("gzip", "false")]).await;
    assert_eq!(
        counts_of(&manifest),
        expected(&MONGO_COLLECTIONS),
        "{}",
        manifest.name
    );
    assert_eq!(metric(&rec, "rows_or_documents"), MONGO_TOTAL_DOCS as f64);
    let host = Duration::from_secs_f64(metric(&rec, "duration_seconds"));
    println!(
        "backup plugin (mongodb, no gzip), round {round}: {took:.2?} (host dump {host:.2?}), \
         {:.1} MB, {:.0} docs/s, {} (snapshot: {})",
        mb(manifest.size_bytes),
        per_s(MONGO_TOTAL_DOCS, took),
        manifest.name,
        manifest
            .metadata
            .get("snapshot")
            .map_or("?", String::as_str)
    );
    (took, host, manifest.size_bytes)
}

async fn bench() {
    let cluster = pg::cluster();
    let server = mongo::server();
    println!(
        "PostgreSQL test cluster on port {} ({}), started in {:.2?}",
        cluster.port(),
        cluster.bin_dir().display(),
        cluster.started_in()
    );
    println!(
        "MongoDB test server: {} on port {}, started in {:.2?}",
        server.flavour(),
        server.port(),
        server.started_in()
    );

    // Seed both.
    let pg_db = cluster.create_database("bench_backup").await;
    let t = Instant::now();
    seed_pg(&pg_db.url).await;
    let pg_seed = t.elapsed();
    let pg_size = pg_database_size(&pg_db.url).await;
    println!(
        "seeded PostgreSQL {}: {} rows over {} tables in {pg_seed:.2?} (database {:.1} MB)",
        pg_db.name,
        thousands(PG_TOTAL_ROWS),
        PG_TABLES.len(),
        mb(pg_size)
    );

    let mongo_db = server.create_database("bench_backup").await;
    let client = mongodb::Client::with_uri_str(&mongo_db.url).await.unwrap();
    let db = client.database(&mongo_db.name);
    let t = Instant::now();
    seed_mongo(&db).await;
    let mongo_seed = t.elapsed();
    for (name, count) in MONGO_COLLECTIONS {
        let n = db
            .collection::<Document>(name)
            .estimated_document_count()
            .await
            .unwrap();
        assert_eq!(n, count, "documents in {name}");
    }
    println!(
        "seeded MongoDB {}: {} documents over {} collections in {mongo_seed:.2?} ({:.0} docs/s)",
        mongo_db.name,
        thousands(MONGO_TOTAL_DOCS),
        MONGO_COLLECTIONS.len(),
        per_s(MONGO_TOTAL_DOCS, mongo_seed)
    );

    let install = Install::new(&pg_db.url, &mongo_db.url).await;
    let scratch = tempfile::tempdir().unwrap();
    let load_before = warden_tests::load_average();
    println!("before the measurements: {load_before}");

    // Each pair of measurements in rounds, in alternating order, so that warm-up and
    // the machine's other load weigh on both alike.
    let mut direct_times = Vec::new();
    let mut direct_bytes = 0;
    let mut plugin_times = Vec::new();
    let mut plugin_host_times = Vec::new();
    let mut plugin_bytes = 0;
    for round in 1..=RUNS {
        let plugin_first = round % 2 == 0;
        for plugin in [plugin_first, !plugin_first] {
            if plugin {
                let (took, host, bytes) = pg_plugin_run(&install, round).await;
                plugin_times.push(took);
                plugin_host_times.push(host);
                plugin_bytes = bytes;
            } else {
                let (took, bytes) = pg_direct_run(&pg_db.name, scratch.path(), round).await;
                direct_times.push(took);
                direct_bytes = bytes;
            }
        }
    }

    let mut raw_times = Vec::new();
    let mut raw_default_times = Vec::new();
    let mut raw_bytes = 0;
    let mut dump_times = Vec::new();
    let mut dump_host_times = Vec::new();
    let mut dump_bytes = 0;
    for round in 1..=RUNS {
        let dump_first = round % 2 == 0;
        for dump in [dump_first, !dump_first] {
            if dump {
                let (took, host, bytes) = mongo_dump_run(&install, round).await;
                dump_times.push(took);
                dump_host_times.push(host);
                dump_bytes = bytes;
            } else {
                let (took, bytes) = mongo_raw_run(&db, Some(RAW_BATCH), round).await;
                raw_times.push(took);
                raw_bytes = bytes;
                // A diagnostic: the read as the dump engine does it (no batch size).
                let (took, _) = mongo_raw_run(&db, None, round).await;
                raw_default_times.push(took);
            }
        }
    }
    let load_after = warden_tests::load_average();

    // The table.
    let (direct, plugin, plugin_host) = (
        best(&direct_times),
        best(&plugin_times),
        best(&plugin_host_times),
    );
    let pg_mbps = |bytes: u64, t: Duration| mb(bytes) / t.as_secs_f64();
    let pg_ratio = pg_mbps(plugin_bytes, plugin) / pg_mbps(direct_bytes, direct);
    let pg_host_ratio = pg_mbps(plugin_bytes, plugin_host) / pg_mbps(direct_bytes, direct);
    let (raw, dump, dump_host) = (best(&raw_times), best(&dump_times), best(&dump_host_times));
    // Both read the same documents: the ratio of documents per second.
    let mongo_ratio = per_s(MONGO_TOTAL_DOCS, dump) / per_s(MONGO_TOTAL_DOCS, raw);
    let mongo_host_ratio = per_s(MONGO_TOTAL_DOCS, dump_host) / per_s(MONGO_TOTAL_DOCS, raw);

    println!();
    println!("== backup benchmark: best of {RUNS}; MB = 10^6 bytes of output ==");
    println!("machine: {load_before} before, {load_after} after (timings are noisy under load)");
    println!(
        "PostgreSQL 15 ({}): {} rows in {} tables, database {:.1} MB, seeded in {pg_seed:.2?}",
        cluster.bin_dir().display(),
        thousands(PG_TOTAL_ROWS),
        PG_TABLES.len(),
        mb(pg_size)
    );
    print_table(
        "rows",
        &[
            Row {
                what: "pg_dump -Fc -Z 6 (direct)".into(),
                items: PG_TOTAL_ROWS,
                bytes: direct_bytes,
                time: direct,
                ratio: None,
            },
            Row {
                what: "backup plugin, custom, 6 (whole run)".into(),
                items: PG_TOTAL_ROWS,
                bytes: plugin_bytes,
                time: plugin,
                ratio: Some((pg_ratio, PG_TARGET_RATIO)),
            },
            Row {
                what: "  of which the host's dump".into(),
                items: PG_TOTAL_ROWS,
                bytes: plugin_bytes,
                time: plugin_host,
                ratio: Some((pg_host_ratio, PG_TARGET_RATIO)),
            },
        ],
    );
    println!(
        "MongoDB ({}): {} documents in {} collections, {:.1} MB of BSON, seeded in {mongo_seed:.2?}",
        server.flavour(),
        thousands(MONGO_TOTAL_DOCS),
        MONGO_COLLECTIONS.len(),
        mb(raw_bytes)
    );
    print_table(
        "docs",
        &[
            Row {
                what: format!("raw driver read (RawDocumentBuf, batch {RAW_BATCH})"),
                items: MONGO_TOTAL_DOCS,
                bytes: raw_bytes,
                time: raw,
                ratio: None,
            },
            Row {
                what: "  (raw read, default batch size: diagnostic)".into(),
                items: MONGO_TOTAL_DOCS,
                bytes: raw_bytes,
                time: best(&raw_default_times),
                ratio: None,
            },
            Row {
                what: "backup plugin, no gzip (whole run)".into(),
                items: MONGO_TOTAL_DOCS,
                bytes: dump_bytes,
                time: dump,
                ratio: Some((mongo_ratio, MONGO_TARGET_RATIO)),
            },
            Row {
                what: "  of which the host's dump".into(),
                items: MONGO_TOTAL_DOCS,
                bytes: dump_bytes,
                time: dump_host,
                ratio: Some((mongo_host_ratio, MONGO_TARGET_RATIO)),
            },
        ],
    );
    println!(
        "ratios: PostgreSQL plugin/direct {pg_ratio:.3} (target ≥ {PG_TARGET_RATIO}: {}), \
         MongoDB dump/raw {mongo_ratio:.3} (target ≥ {MONGO_TARGET_RATIO}: {})",
        verdict(pg_ratio, PG_TARGET_RATIO),
        verdict(mongo_ratio, MONGO_TARGET_RATIO)
    );

    let _ = db.drop().await;
}

fn main() {
    // Start both servers before the runtime: their start blocks.
    let _ = pg::cluster();
    let _ = mongo::server();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench());
}
