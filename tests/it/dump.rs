//! The host-side dump and restore engines (`warden::artifacts::dump`) against
//! the real PostgreSQL cluster, the MongoDB-wire test server and SQLite, through
//! a real local artifact store: dump into a pending artifact, commit, verify,
//! restore into a fresh database, compare fingerprints.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use warden::artifacts::dump::{
    self, DumpContext, DumpError, DumpOptions, DumpOutcome, MongoDumpOptions, PgDumpOptions,
    PgFormat, RestoreOptions, Tools,
};
use warden::artifacts::{ArtifactKind, ArtifactName, ArtifactStore as _, LocalStore, Manifest};
use warden::capability::TargetKind;
use warden::config::{Secret, Target};
use warden::secrets::Redactor;
use warden_tests::{mongo, pg};

use crate::backup_data::{
    PG_LARGE_ROWS, mongo_fingerprints, mongo_index_definitions, pg_table_fingerprints,
    seed_mongo_sized, seed_pg, seed_sqlite, sqlite_fingerprints,
};

fn target(name: &str, kind: TargetKind, url: &str) -> Target {
    Target::new(name, kind, Secret::new(url))
}

/// The redactor the agent would build for these targets.
fn redactor(targets: &[&Target]) -> Redactor {
    Redactor::new(targets.iter().flat_map(|t| t.password_fragments()))
}

fn ctx<'a>(redactor: &'a Redactor, tools: &'a Tools) -> DumpContext<'a> {
    DumpContext {
        application_name: "warden/backup-test".to_owned(),
        redactor,
        tools,
    }
}

/// Dumps `source` into artifact `name` of `store` and commits it with the
/// outcome's metadata; returns the outcome, the verified manifest and the
/// artifact's local path.
/// Documents in `events` for the engine's MongoDB round trip.
const DUMP_TEST_DOCS: u64 = 10_000;

async fn dump_to_store(
    store: &LocalStore,
    name: &str,
    source: &Target,
    options: &DumpOptions,
    ctx: &DumpContext<'_>,
) -> (DumpOutcome, Manifest, PathBuf) {
    let name = ArtifactName::parse(name).unwrap();
    let kind = dump::artifact_kind(options);
    dump::validate(source, options).unwrap();
    let pending = store.begin(&name, kind).await.unwrap();
    let outcome = match dump::dump(source, options, pending.path(), ctx).await {
        Ok(outcome) => outcome,
        Err(err) => {
            pending.abort().await;
            panic!("dumping {}: {err}", source.name);
        }
    };
    let manifest = pending.commit(outcome.metadata.clone()).await.unwrap();
    assert_eq!(manifest.kind, kind);
    let report = store.verify(&name).await.unwrap();
    assert!(report.ok, "{:?}", report.problems);
    let path = store.local_path(&name).unwrap();
    (outcome, manifest, path)
}

fn pg_options(format: PgFormat) -> PgDumpOptions {
    PgDumpOptions {
        format,
        compression: 6,
        jobs: 1,
        include_schemas: vec![],
        exclude_schemas: vec![],
        include_tables: vec![],
        exclude_tables: vec![],
    }
}

/// The counts part of fingerprints.
fn counts_of(fingerprints: &BTreeMap<String, (u64, String)>) -> BTreeMap<String, u64> {
    fingerprints
        .iter()
        .map(|(k, (n, _))| (k.clone(), *n))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_custom_format_round_trip() {
    let cluster = pg::cluster();
    let (src, dst) = tokio::join!(
        cluster.create_database("dump custom src"),
        cluster.create_database("dump custom dst"),
    );
    let started = Instant::now();
    seed_pg(&src.url).await;
    let seeded = started.elapsed();
    let source = target("pg-src", TargetKind::Postgres, &src.url);
    let destination = target("pg-dst", TargetKind::Postgres, &dst.url);
    let redactor = redactor(&[&source, &destination]);
    let tools = Tools::default();
    let ctx = ctx(&redactor, &tools);
    let store_dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(store_dir.path().join("store"));

    let options = DumpOptions::Postgres(pg_options(PgFormat::Custom));
    assert_eq!(dump::artifact_kind(&options), ArtifactKind::File);
    let t = Instant::now();
    let (outcome, manifest, path) =
        dump_to_store(&store, "pg/app/custom.dump", &source, &options, &ctx).await;
    let dumped = t.elapsed();
    assert!(path.is_file());
    let meta = &manifest.metadata;
    assert_eq!(meta["source-kind"], "postgres");
    assert_eq!(meta["format"], "custom");
    assert_eq!(meta["compression"], "6");
    assert_eq!(meta["database"], src.name);
    assert!(
        meta["tool-version"].starts_with("pg_dump (PostgreSQL) "),
        "{meta:?}"
    );
    assert!(meta["server-version"].starts_with("15"), "{meta:?}");

    let source_prints = pg_table_fingerprints(&src.url).await;
    assert_eq!(outcome.counts, counts_of(&source_prints));
    assert_eq!(outcome.counts["public.orders"], PG_LARGE_ROWS);
    assert_eq!(outcome.counts["public.Odd \"Name\" table"], 50);
    assert_eq!(outcome.counts["public.empty_table"], 0);
    assert_eq!(outcome.counts["extra.events"], 5_000);

    let t = Instant::now();
    let restored = dump::restore(
        &destination,
        &path,
        &manifest.metadata,
        &RestoreOptions::default(),
        &ctx,
    )
    .await
    .unwrap();
    let restore_time = t.elapsed();
    assert_eq!(restored, outcome.counts);
    assert_eq!(pg_table_fingerprints(&dst.url).await, source_prints);

    // Restoring again over the same tables fails without clean, and
    // replaces them with it.
    let err = dump::restore(
        &destination,
        &path,
        &manifest.metadata,
        &RestoreOptions::default(),
        &ctx,
    )
    .await
    .unwrap_err();
    let DumpError::Failed(text) = &err else {
        panic!("expected Failed, got {err:?}");
    };
    assert!(text.contains("pg_restore failed"), "{text}");
    assert!(!text.contains(cluster.password()), "{text}");
    let restored = dump::restore(
        &destination,
        &path,
        &manifest.metadata,
        &RestoreOptions {
            clean: true,
            ..RestoreOptions::default()
        },
        &ctx,
    )
    .await
    .unwrap();
    assert_eq!(restored, outcome.counts);
    assert_eq!(pg_table_fingerprints(&dst.url).await, source_prints);
    eprintln!(
        "pg custom: seeded in {seeded:.2?}, dumped {} bytes in {dumped:.2?}, restored in \
         {restore_time:.2?}",
        manifest.size_bytes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_directory_format_parallel_with_an_excluded_table() {
    let cluster = pg::cluster();
    let (src, dst) = tokio::join!(
        cluster.create_database("dump dir src"),
        cluster.create_database("dump dir dst"),
    );
    seed_pg(&src.url).await;
    let source = target("pg-src", TargetKind::Postgres, &src.url);
    let destination = target("pg-dst", TargetKind::Postgres, &dst.url);
    let redactor = redactor(&[&source, &destination]);
    let tools = Tools::default();
    let ctx = ctx(&redactor, &tools);
    let store_dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(store_dir.path().join("store"));

    let options = DumpOptions::Postgres(PgDumpOptions {
        jobs: 2,
        compression: 1,
        exclude_tables: vec!["extra.audit_log".to_owned()],
        ..pg_options(PgFormat::Directory)
    });
    assert_eq!(dump::artifact_kind(&options), ArtifactKind::Directory);
    let t = Instant::now();
    let (outcome, manifest, path) =
        dump_to_store(&store, "pg/app/dir", &source, &options, &ctx).await;
    let dumped = t.elapsed();
    assert!(path.join("toc.dat").is_file(), "pg_dump -Fd layout");
    assert_eq!(manifest.metadata["format"], "directory");
    assert_eq!(manifest.metadata["jobs"], "2");

    let mut expected = pg_table_fingerprints(&src.url).await;
    assert!(expected.remove("extra.audit_log").is_some());
    assert_eq!(outcome.counts, counts_of(&expected));

    let t = Instant::now();
    let restored = dump::restore(
        &destination,
        &path,
        &manifest.metadata,
        &RestoreOptions {
            jobs: 2,
            ..RestoreOptions::default()
        },
        &ctx,
    )
    .await
    .unwrap();
    let restore_time = t.elapsed();
    assert_eq!(restored, outcome.counts);
    let after = pg_table_fingerprints(&dst.url).await;
    assert!(!after.contains_key("extra.audit_log"), "{after:?}");
    assert_eq!(after, expected);
    eprintln!("pg directory -j2: dumped in {dumped:.2?}, restored in {restore_time:.2?}");
}

/// Writes an executable shell script.
fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn a_failing_pg_dump_is_reported_without_the_password() {
    let cluster = pg::cluster();
    let db = cluster.create_database("dump fails").await;
    let password = cluster.password().to_owned();
    let fake = tempfile::tempdir().unwrap();
    let real = cluster.bin_dir();
    let log = fake.path().join("args");
    // Writes part of an archive, complains with the password it was given,
    // and fails.
    script(
        &fake.path().join("pg_dump"),
        &format!(
            r#"if [ "$1" = --version ]; then exec "{real}/pg_dump" --version; fi
printf '%s\n' "$@" > "{log}"
printf 'PGAPPNAME=%s PGUSER=%s PGHOST=%s\n' "$PGAPPNAME" "$PGUSER" "$PGHOST" >> "{log}"
out=""; prev=""
for a in "$@"; do [ "$prev" = -f ] && out="$a"; prev="$a"; done
printf 'PGDMP partial' > "$out"
echo "pg_dump: error: connection to server failed: password $PGPASSWORD rejected" >&2
exit 3
"#,
            real = real.display(),
            log = log.display()
        ),
    );
    script(
        &fake.path().join("pg_restore"),
        &format!(r#"exec "{}/pg_restore" "$@""#, real.display()),
    );
    let source = target("pg-src", TargetKind::Postgres, &db.url);
    // No shared redactor: the engine still removes the target's own secrets.
    let redactor = Redactor::default();
    let tools = Tools {
        pg_bin_dir: Some(fake.path().to_path_buf()),
    };
    let ctx = ctx(&redactor, &tools);
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = dump::dump(
        &source,
        &DumpOptions::Postgres(pg_options(PgFormat::Custom)),
        out.path(),
        &ctx,
    )
    .await
    .unwrap_err();
    let DumpError::Failed(text) = &err else {
        panic!("expected Failed, got {err:?}");
    };
    assert!(text.contains("pg_dump failed"), "{text}");
    assert!(text.contains("exit status: 3"), "{text}");
    assert!(text.contains("password [redacted] rejected"), "{text}");
    assert!(!text.contains(&password), "{text}");
    assert!(!err.to_string().contains(&password));

    let args = std::fs::read_to_string(&log).unwrap();
    assert!(
        !args.contains(&password),
        "the password is not an argument:\n{args}"
    );
    assert!(args.contains("--snapshot="), "{args}");
    assert!(args.contains("--no-password"), "{args}");
    assert!(
        args.contains("PGAPPNAME=warden/backup-test PGUSER=postgres PGHOST=127.0.0.1"),
        "{args}"
    );
}

fn mongo_options(gzip: bool) -> MongoDumpOptions {
    MongoDumpOptions {
        database: None,
        include_collections: vec![],
        exclude_collections: vec![],
        gzip,
    }
}

/// The documents in a plain `.bson` file: their number and the sha256 of
/// their bytes, sorted and concatenated (as [`mongo_fingerprints`]).
fn bson_file_fingerprint(path: &Path) -> (u64, String) {
    let bytes = std::fs::read(path).unwrap();
    let mut docs = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let doc = &bytes[at..at + len];
        bson::RawDocument::from_bytes(doc).unwrap();
        docs.push(doc);
        at += len;
    }
    assert_eq!(at, bytes.len());
    docs.sort();
    (
        docs.len() as u64,
        warden::runtime::cache::digest(&docs.concat()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_round_trip_plain_and_gzip() {
    let server = mongo::server();
    let src = server.create_database("dump mongo src").await;
    let dst = server.create_database("dump mongo dst").await;
    let started = Instant::now();
    // The plugin-level backup test restores the full 100k documents; this
    // one checks the engine's files byte for byte on a tenth of them.
    seed_mongo_sized(&src.url, &src.name, DUMP_TEST_DOCS).await;
    let seeded = started.elapsed();
    let source = target("mongo-src", TargetKind::Mongodb, &src.url);
    let redactor = Redactor::default();
    let tools = Tools::default();
    let ctx = ctx(&redactor, &tools);
    let store_dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(store_dir.path().join("store"));

    let t = Instant::now();
    let (source_prints, source_indexes) = tokio::join!(
        mongo_fingerprints(&src.url, &src.name),
        mongo_index_definitions(&src.url, &src.name)
    );
    let fingerprinted = t.elapsed();
    assert_eq!(source_prints["events"].0, DUMP_TEST_DOCS);
    assert_eq!(
        source_indexes.keys().collect::<Vec<_>>(),
        ["customers", "empty", "events"]
    );

    let mut timings = Vec::new();
    let mut dumps = Vec::new();
    for gzip in [false, true] {
        let options = DumpOptions::Mongodb(mongo_options(gzip));
        assert_eq!(dump::artifact_kind(&options), ArtifactKind::Directory);
        let t = Instant::now();
        let name = if gzip {
            "mongo/app/gzip"
        } else {
            "mongo/app/plain"
        };
        let (outcome, manifest, path) = dump_to_store(&store, name, &source, &options, &ctx).await;
        timings.push(format!(
            "{} dump: {} bytes in {:.2?} (snapshot {})",
            if gzip { "gzip" } else { "plain" },
            manifest.size_bytes,
            t.elapsed(),
            manifest.metadata["snapshot"]
        ));
        assert_eq!(outcome.counts, counts_of(&source_prints));
        let meta = &manifest.metadata;
        assert_eq!(meta["source-kind"], "mongodb");
        assert_eq!(meta["layout"], "mongodump");
        assert_eq!(meta["database"], src.name);
        assert_eq!(meta["gzip"], gzip.to_string());

        // mongodump's layout.
        let folder = path.join(&src.name);
        let gz = if gzip { ".gz" } else { "" };
        let mut files: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        let mut expected_files = Vec::new();
        for coll in ["customers", "empty", "events"] {
            expected_files.push(format!("{coll}.bson{gz}"));
            expected_files.push(format!("{coll}.metadata.json{gz}"));
        }
        expected_files.sort();
        assert_eq!(files, expected_files);
        if gzip {
            for file in &files {
                let bytes = std::fs::read(folder.join(file)).unwrap();
                assert_eq!(bytes[..2], [0x1f, 0x8b], "{file} is gzipped");
            }
        } else {
            // The documents as the server has them, byte for byte.
            for (coll, print) in &source_prints {
                assert_eq!(
                    &bson_file_fingerprint(&folder.join(format!("{coll}.bson"))),
                    print,
                    "{coll}.bson"
                );
            }
            let json: serde_json::Value = serde_json::from_slice(
                &std::fs::read(folder.join("events.metadata.json")).unwrap(),
            )
            .unwrap();
            assert_eq!(json["collectionName"], "events");
            assert_eq!(json["type"], "collection");
            assert!(json["options"].is_object(), "{json}");
            let names: Vec<&str> = json["indexes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["name"].as_str().unwrap())
                .collect();
            for wanted in [
                "_id_",
                "seq_unique",
                "expires_ttl",
                "purchases_by_amount",
                "kind_1_at_-1",
            ] {
                assert!(names.contains(&wanted), "{wanted} in {names:?}");
            }
            // Canonical extended JSON: key order kept, numbers typed.
            let compound = json["indexes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["name"] == "purchases_by_amount")
                .unwrap();
            let keys: Vec<&String> = compound["key"].as_object().unwrap().keys().collect();
            assert_eq!(keys, ["amount", "seq"]);
            assert_eq!(
                compound["key"]["amount"],
                serde_json::json!({"$numberInt": "-1"})
            );
        }
        dumps.push((outcome, manifest, path));
    }

    // The gzipped dump restored into a fresh database. (The plain dump's
    // files were compared with the source above; restoring that format is
    // what `mongo_include_exclude_and_clean_restore` does, on less data: a
    // restore of 100,000 documents takes a minute on secantusd-py.)
    let (_plain, (outcome, manifest, path)) = (dumps.remove(0), dumps.remove(0));
    let t = Instant::now();
    let destination = target("mongo-dst", TargetKind::Mongodb, &dst.url);
    let restored = dump::restore(
        &destination,
        &path,
        &manifest.metadata,
        &RestoreOptions::default(),
        &ctx,
    )
    .await
    .unwrap_or_else(|e| panic!("restoring: {e}\n{}", server.log_tail()));
    let restore_time = t.elapsed();
    assert_eq!(restored, outcome.counts);
    let t = Instant::now();
    let (prints, indexes) = tokio::join!(
        mongo_fingerprints(&dst.url, &dst.name),
        mongo_index_definitions(&dst.url, &dst.name)
    );
    assert_eq!(prints, source_prints);
    assert_eq!(indexes, source_indexes);
    eprintln!(
        "mongo ({}): seeded in {seeded:.2?}, fingerprinted in {fingerprinted:.2?}; {}; \
         restored gzip in {restore_time:.2?}, checked in {:.2?}",
        server.flavour(),
        timings.join("; "),
        t.elapsed()
    );
}

#[tokio::test]
async fn mongo_include_exclude_and_clean_restore() {
    let server = mongo::server();
    let src = server.create_database("dump mongo filter").await;
    let dst = server.create_database("dump mongo filter dst").await;
    let client = mongodb::Client::with_uri_str(&src.url).await.unwrap();
    let db = client.database(&src.name);
    for name in ["a", "b", "c"] {
        db.collection::<bson::Document>(name)
            .insert_many((0..10).map(|i| bson::doc! { "i": i, "sub": { "k": i % 3 } }))
            .await
            .unwrap();
    }
    db.collection::<bson::Document>("a")
        .create_index(
            mongodb::IndexModel::builder()
                .keys(bson::doc! { "sub.k": -1, "i": 1 })
                .options(
                    mongodb::options::IndexOptions::builder()
                        .unique(true)
                        .name("k_i".to_owned())
                        .build(),
                )
                .build(),
        )
        .await
        .unwrap();
    let source = target("mongo-src", TargetKind::Mongodb, &server.url());
    let redactor = Redactor::default();
    let tools = Tools::default();
    let ctx = ctx(&redactor, &tools);
    let out = tempfile::tempdir().unwrap();
    let outcome = dump::dump(
        &source,
        &DumpOptions::Mongodb(MongoDumpOptions {
            database: Some(src.name.clone()),
            include_collections: vec!["a".into(), "b".into()],
            exclude_collections: vec!["b".into()],
            gzip: false,
        }),
        out.path(),
        &ctx,
    )
    .await
    .unwrap();
    assert_eq!(outcome.counts, BTreeMap::from([("a".to_owned(), 10)]));
    assert!(out.path().join(&src.name).join("a.bson").is_file());
    assert!(!out.path().join(&src.name).join("b.bson").exists());

    // Restored into the database of the destination's URL; again, it is
    // refused without clean; with clean, the collection is replaced.
    let destination = target("mongo-dst", TargetKind::Mongodb, &dst.url);
    let restored = dump::restore(
        &destination,
        out.path(),
        &outcome.metadata,
        &RestoreOptions::default(),
        &ctx,
    )
    .await
    .unwrap();
    assert_eq!(restored, outcome.counts);
    let dst_a = client.database(&dst.name).collection::<bson::Document>("a");
    dst_a.insert_one(bson::doc! { "i": 99 }).await.unwrap();
    let err = dump::restore(
        &destination,
        out.path(),
        &outcome.metadata,
        &RestoreOptions::default(),
        &ctx,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let restored = dump::restore(
        &destination,
        out.path(),
        &outcome.metadata,
        &RestoreOptions {
            clean: true,
            ..RestoreOptions::default()
        },
        &ctx,
    )
    .await
    .unwrap();
    assert_eq!(restored, outcome.counts);
    assert_eq!(
        mongo_fingerprints(&dst.url, &dst.name).await,
        mongo_fingerprints(&src.url, &src.name)
            .await
            .into_iter()
            .filter(|(k, _)| k == "a")
            .collect()
    );
    assert_eq!(
        mongo_index_definitions(&dst.url, &dst.name).await,
        mongo_index_definitions(&src.url, &src.name)
            .await
            .into_iter()
            .filter(|(k, _)| k == "a")
            .collect()
    );

    // A named collection that does not exist, and no database at all.
    let out = tempfile::tempdir().unwrap();
    let err = dump::dump(
        &source,
        &DumpOptions::Mongodb(MongoDumpOptions {
            database: Some(src.name.clone()),
            include_collections: vec!["nope".into()],
            exclude_collections: vec![],
            gzip: false,
        }),
        out.path(),
        &ctx,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, DumpError::Failed(_)) && err.to_string().contains("nope"),
        "{err}"
    );
    let err = dump::dump(
        &source,
        &DumpOptions::Mongodb(mongo_options(false)),
        out.path(),
        &ctx,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DumpError::InvalidInput(_)), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_mongo_server_fails_quickly() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!(
        "mongodb://backup:s3cret-mongo-pw@127.0.0.1:{port}/app?serverSelectionTimeoutMS=300&connectTimeoutMS=300"
    );
    let source = target("mongo-down", TargetKind::Mongodb, &url);
    let redactor = redactor(&[&source]);
    let tools = Tools::default();
    let ctx = ctx(&redactor, &tools);
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let err = dump::dump(
        &source,
        &DumpOptions::Mongodb(mongo_options(true)),
        out.path(),
        &ctx,
    )
    .await
    .unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, DumpError::Failed(_)), "{err:?}");
    assert!(err.to_string().contains("mongo-down"), "{err}");
    assert!(!err.to_string().contains("s3cret-mongo-pw"), "{err}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[tokio::test]
async fn sqlite_round_trip_replaces_the_destination() {
    let dir = tempfile::tempdir().unwrap();
    let src_path = dir.path().join("app.db");
    seed_sqlite(&src_path).await;
    let source = target(
        "lite",
        TargetKind::Sqlite,
        &format!("sqlite://{}", src_path.display()),
    );
    let redactor = Redactor::default();
    let tools = Tools::default();
    let ctx = ctx(&redactor, &tools);
    let store = LocalStore::new(dir.path().join("store"));
    let options = DumpOptions::Sqlite;
    assert_eq!(dump::artifact_kind(&options), ArtifactKind::File);
    let (outcome, manifest, path) =
        dump_to_store(&store, "sqlite/app.db", &source, &options, &ctx).await;
    assert_eq!(manifest.metadata["source-kind"], "sqlite");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let source_prints = sqlite_fingerprints(&src_path).await;
    assert_eq!(outcome.counts["items"], 20_001);
    assert_eq!(outcome.counts["odd \"name\""], 3);
    assert_eq!(outcome.counts["empty_table"], 0);
    assert_eq!(outcome.counts["item_log"], 1);
    assert!(!outcome.counts.contains_key("sqlite_sequence"));
    assert_eq!(sqlite_fingerprints(&path).await, source_prints);

    // Into a new file, and over an existing database with other content.
    let fresh = dir.path().join("fresh.db");
    let existing = dir.path().join("existing.db");
    {
        use sqlx::Connection as _;
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", existing.display()))
                .await
                .unwrap();
        sqlx::raw_sql(
            "PRAGMA journal_mode = WAL; CREATE TABLE stale (x); INSERT INTO stale VALUES (1);",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    for dest_path in [&fresh, &existing] {
        let destination = target(
            "lite-dst",
            TargetKind::Sqlite,
            &format!("sqlite://{}", dest_path.display()),
        );
        let restored = dump::restore(
            &destination,
            &path,
            &manifest.metadata,
            &RestoreOptions::default(),
            &ctx,
        )
        .await
        .unwrap();
        assert_eq!(restored, outcome.counts);
        assert_eq!(sqlite_fingerprints(dest_path).await, source_prints);
    }
}

/// (Option checks are unit tests of the engine; here, the kind checks as a
/// caller meets them.)
#[tokio::test]
async fn kind_mismatches_are_unsupported() {
    let lite = target("lite", TargetKind::Sqlite, "sqlite:///tmp/x.db");
    let err =
        dump::validate(&lite, &DumpOptions::Postgres(pg_options(PgFormat::Custom))).unwrap_err();
    assert!(matches!(err, DumpError::Unsupported(_)), "{err:?}");
    // A PostgreSQL artifact into a SQLite target.
    let redactor = Redactor::default();
    let tools = Tools::default();
    let ctx = ctx(&redactor, &tools);
    let meta = BTreeMap::from([("source-kind".to_owned(), "postgres".to_owned())]);
    let err = dump::restore(
        &lite,
        Path::new("/nonexistent"),
        &meta,
        &RestoreOptions::default(),
        &ctx,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DumpError::Unsupported(_)), "{err:?}");
}
