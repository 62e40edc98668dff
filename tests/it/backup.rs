//! The backup plugin end to end: real dumps of a real PostgreSQL database, a
//! MongoDB-wire server and SQLite into a local store, restored into fresh
//! databases by the plugin's verify-by-restore and compared table by table
//! (counts and a content checksum; for MongoDB also index definitions);
//! retention over back-dated artifacts; failures that leave no artifact;
//! grants.

use crate::backup_data::{
    MONGO_LARGE_DOCS, PG_LARGE_ROWS, mongo_fingerprints, mongo_index_definitions,
    pg_table_fingerprints, seed_mongo, seed_pg, seed_sqlite, sqlite_fingerprints,
};
use crate::world::{World, error_of, invoke, metric};
use chrono::Datelike as _;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use warden::artifacts::{ArtifactKind, ArtifactName, ArtifactStore, LocalStore, Manifest};
use warden::runs::{ActionState, RunRecord, RunStatus};
use warden_tests::{mongo, pg};

pub(crate) fn findings(rec: &RunRecord) -> String {
    let report = rec.report.as_ref().expect("a report");
    report
        .findings
        .iter()
        .map(|f| format!("[{:?}] {}: {}", f.severity, f.title, f.detail))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The complete artifacts of `target` in the world's store `local`.
pub(crate) async fn artifacts(w: &World, target: &str) -> Vec<Manifest> {
    LocalStore::new(w.path("stores/local"))
        .list(&format!("{target}/"))
        .await
        .unwrap()
}

pub(crate) fn store_root(w: &World) -> PathBuf {
    w.path("stores/local")
}

const BACKUP_GRANT: &str = "artifacts = [\"local\"]\nrestore_to = [\"scratch\"]\n\
                            max_runtime = \"10m\"\nstatement_timeout = \"10m\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backup_restores_table_for_table() {
    let app = pg::cluster().create_database("backup_pg_app").await;
    let scratch = pg::cluster().create_database("backup_pg_scratch").await;
    seed_pg(&app.url).await;
    let w = World::new()
        .plugin("backup")
        .pg_target("app", &app.url)
        .pg_target("scratch", &scratch.url)
        .store("local")
        .grant("backup", "app", &["read"], BACKUP_GRANT);
    let agent = w.agent().await;
    let rec = invoke(
        &agent,
        "backup",
        "app",
        &[
            ("store", "local"),
            ("format", "custom"),
            ("compression", "6"),
            ("verify", "true"),
            ("verify_target", "scratch"),
        ],
        false,
    )
    .await;
    assert_eq!(
        rec.status,
        RunStatus::Succeeded,
        "{}\n{}",
        error_of(&rec),
        findings(&rec)
    );
    assert_eq!(metric(&rec, "verified"), 1.0, "{}", findings(&rec));
    assert!(metric(&rec, "bytes") > 1_000_000.0, "{}", findings(&rec));

    // The restore the plugin made into the fresh database is the data.
    let source = pg_table_fingerprints(&app.url).await;
    let restored = pg_table_fingerprints(&scratch.url).await;
    assert_eq!(source.len(), 6, "{source:?}");
    assert_eq!(source["public.orders"].0, PG_LARGE_ROWS);
    assert_eq!(source, restored);

    // One artifact, with a manifest recording the counts and the checksum.
    let list = artifacts(&w, "app").await;
    assert_eq!(list.len(), 1, "{list:?}");
    let manifest = &list[0];
    assert_eq!(manifest.kind, ArtifactKind::File);
    assert!(manifest.name.starts_with("app/") && manifest.name.ends_with(".dump"));
    assert_eq!(
        manifest.metadata["count:public.orders"],
        PG_LARGE_ROWS.to_string()
    );
    assert_eq!(manifest.sha256.len(), 64);
    // The host recorded the dump and the restore as actions.
    let host: Vec<&str> = rec
        .actions
        .iter()
        .filter(|a| a.state == ActionState::Executed)
        .map(|a| a.statement.as_str())
        .collect();
    assert!(
        host.iter().any(|s| s.starts_with("dump target `app`")),
        "{host:?}"
    );
    assert!(host.iter().any(|s| s.starts_with("restore ")), "{host:?}");
    // No secret anywhere in the record.
    let text = serde_json::to_string(&rec).unwrap();
    assert!(
        !text.contains(pg::cluster().password()),
        "password leaked: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_backup_restores_documents_and_indexes() {
    let server = mongo::server();
    let app = server.create_database("backup_mongo_app").await;
    let scratch = server.create_database("backup_mongo_scratch").await;
    seed_mongo(&server.url(), &app.name).await;
    let w = World::new()
        .plugin("backup")
        .mongo_target("app", &app.url)
        .mongo_target("scratch", &scratch.url)
        .store("local")
        .grant("backup", "app", &["read"], BACKUP_GRANT);
    let agent = w.agent().await;
    let rec = invoke(
        &agent,
        "backup",
        "app",
        &[
            ("store", "local"),
            ("gzip", "true"),
            ("verify", "true"),
            ("verify_target", "scratch"),
        ],
        false,
    )
    .await;
    assert_eq!(
        rec.status,
        RunStatus::Succeeded,
        "{}\n{}",
        error_of(&rec),
        findings(&rec)
    );
    assert_eq!(metric(&rec, "verified"), 1.0, "{}", findings(&rec));

    let source = mongo_fingerprints(&server.url(), &app.name).await;
    let restored = mongo_fingerprints(&server.url(), &scratch.name).await;
    assert_eq!(source["events"].0, MONGO_LARGE_DOCS);
    assert_eq!(source, restored);
    let indexes = mongo_index_definitions(&server.url(), &app.name).await;
    assert_eq!(
        indexes,
        mongo_index_definitions(&server.url(), &scratch.name).await
    );
    assert!(indexes["events"].len() >= 5, "{indexes:?}");

    // The mongodump layout, gzipped, with metadata files.
    let list = artifacts(&w, "app").await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].kind, ArtifactKind::Directory);
    let files: BTreeSet<&str> = list[0].files.iter().map(|f| f.path.as_str()).collect();
    let db = &app.name;
    for coll in ["customers", "events", "empty"] {
        assert!(
            files.contains(format!("{db}/{coll}.bson.gz").as_str()),
            "{files:?}"
        );
        assert!(
            files.contains(format!("{db}/{coll}.metadata.json.gz").as_str()),
            "{files:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_database_backs_up_and_restores() {
    let w = World::new()
        .plugin("backup")
        .sqlite_target("quickstart", "quickstart.db")
        .sqlite_target("scratch", "scratch.db")
        .store("local")
        .grant(
            "backup",
            "quickstart",
            &["read"],
            "artifacts = [\"local\"]\nrestore_to = [\"scratch\"]",
        );
    seed_sqlite(&w.path("quickstart.db")).await;
    seed_sqlite(&w.path("scratch.db")).await;
    // The scratch database starts different: the restore replaces it.
    {
        use sqlx::Connection as _;
        let url = format!("sqlite://{}", w.path("scratch.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("DELETE FROM items WHERE id % 2 = 0")
            .execute(&mut c)
            .await
            .unwrap();
    }
    let agent = w.agent().await;
    let rec = invoke(
        &agent,
        "backup",
        "quickstart",
        &[
            ("store", "local"),
            ("verify", "true"),
            ("verify_target", "scratch"),
        ],
        false,
    )
    .await;
    assert_eq!(
        rec.status,
        RunStatus::Succeeded,
        "{}\n{}",
        error_of(&rec),
        findings(&rec)
    );
    assert_eq!(metric(&rec, "verified"), 1.0, "{}", findings(&rec));
    assert_eq!(
        sqlite_fingerprints(&w.path("quickstart.db")).await,
        sqlite_fingerprints(&w.path("scratch.db")).await
    );
    let list = artifacts(&w, "quickstart").await;
    assert_eq!(list.len(), 1);
    assert!(list[0].name.ends_with(".sqlite"), "{list:?}");
}

/// Writes a small complete artifact `target/name` and back-dates its
/// manifest to `at` (RFC 3339).
pub(crate) async fn backdated(root: &Path, target: &str, name: &str, at: &str) {
    let store = LocalStore::new(root.to_path_buf());
    let full = ArtifactName::parse(&format!("{target}/{name}")).unwrap();
    let pending = store.begin(&full, ArtifactKind::File).await.unwrap();
    std::fs::write(pending.path(), format!("backup {name}")).unwrap();
    pending.commit(BTreeMap::new()).await.unwrap();
    let manifest_path = root.join(target).join(format!("{name}.manifest.json"));
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    m["created_at"] = at.into();
    m["completed_at"] = at.into();
    std::fs::write(&manifest_path, serde_json::to_vec(&m).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_generations_and_dry_run_deletes_nothing() {
    let w = World::new()
        .plugin("backup")
        .sqlite_target("db", "db.sqlite")
        .store("local")
        .grant("backup", "db", &["read"], "artifacts = [\"local\"]");
    seed_sqlite(&w.path("db.sqlite")).await;
    let root = store_root(&w);
    // Two a day for the last 10 days, then one a month back to January.
    let mut made = Vec::new();
    let today = chrono::Utc::now().date_naive();
    for d in 1..=10i64 {
        let day = today - chrono::Duration::days(d);
        for hour in [2, 14] {
            let name = format!("{}T{hour:02}-30-00Z.sqlite", day.format("%Y-%m-%d"));
            let at = format!("{}T{hour:02}:30:00Z", day.format("%Y-%m-%d"));
            backdated(&root, "db", &name, &at).await;
            made.push(name);
        }
    }
    for months_back in 1..=8u32 {
        let day = today
            .checked_sub_months(chrono::Months::new(months_back))
            .unwrap()
            .with_day(1)
            .unwrap()
            - chrono::Duration::days(20);
        let name = format!("{}T02-30-00Z.sqlite", day.format("%Y-%m-%d"));
        let at = format!("{}T02:30:00Z", day.format("%Y-%m-%d"));
        if !made.contains(&name) {
            backdated(&root, "db", &name, &at).await;
            made.push(name);
        }
    }
    // Not the plugin's naming: never touched.
    backdated(&root, "db", "before-upgrade.sqlite", "2020-01-01T00:00:00Z").await;
    let before: BTreeSet<String> = artifacts(&w, "db")
        .await
        .into_iter()
        .map(|m| m.name)
        .collect();

    let agent = w.agent().await;
    let params = [
        ("store", "local"),
        ("keep_last", "3"),
        ("keep_daily", "5"),
        ("keep_weekly", "0"),
        ("keep_monthly", "3"),
    ];
    let dry = invoke(&agent, "backup", "db", &params, true).await;
    assert_eq!(dry.status, RunStatus::Succeeded, "{}", error_of(&dry));
    let would = metric(&dry, "would_delete");
    assert!(would > 0.0, "{}", findings(&dry));
    let after_dry: BTreeSet<String> = artifacts(&w, "db")
        .await
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(before, after_dry, "dry-run deleted or made something");
    assert!(
        findings(&dry).contains("would delete"),
        "{}",
        findings(&dry)
    );

    let rec = invoke(&agent, "backup", "db", &params, false).await;
    assert_eq!(
        rec.status,
        RunStatus::Succeeded,
        "{}\n{}",
        error_of(&rec),
        findings(&rec)
    );
    let after: Vec<Manifest> = artifacts(&w, "db").await;
    let names: BTreeSet<String> = after.iter().map(|m| m.name.clone()).collect();
    // Kept: the fresh one + the 2 newest (last 3), the newest of each of the
    // last 5 days with backups (today's fresh one and days 1..4), the
    // newest of each of the last 3 months with backups, and the foreign one.
    let mut expected = BTreeSet::new();
    expected.insert("db/before-upgrade.sqlite".to_string());
    let fresh: Vec<&String> = names.difference(&before).collect();
    assert_eq!(fresh.len(), 1, "{names:?}");
    expected.insert(fresh[0].clone());
    let day = |d: i64, hour: u32| {
        format!(
            "db/{}T{hour:02}-30-00Z.sqlite",
            (today - chrono::Duration::days(d)).format("%Y-%m-%d")
        )
    };
    // last 3: fresh, day1 14:30, day1 02:30
    expected.insert(day(1, 14));
    expected.insert(day(1, 2));
    // daily 5: today (fresh), day 1..4 at 14:30
    for d in 1..=4 {
        expected.insert(day(d, 14));
    }
    // monthly 3: this month's newest (fresh), and the newest of the two
    // months before it that have backups.
    let mut by_month: BTreeMap<String, String> = BTreeMap::new();
    for name in &before {
        if let Some(stamp) = name.strip_prefix("db/").filter(|n| n.starts_with("20")) {
            if name.contains("before-upgrade") {
                continue;
            }
            let month = stamp[..7].to_string();
            let entry = by_month.entry(month).or_default();
            if *entry < *name {
                *entry = name.clone();
            }
        }
    }
    let this_month = chrono::Utc::now().format("%Y-%m").to_string();
    let older: Vec<&String> = by_month
        .iter()
        .rev()
        .filter(|(m, _)| **m != this_month)
        .map(|(_, n)| n)
        .take(2)
        .collect();
    for n in older {
        expected.insert(n.clone());
    }
    assert_eq!(names, expected, "{}", findings(&rec));
    assert_eq!(
        metric(&rec, "deleted") as usize,
        before.len() + 1 - expected.len(),
        "{}",
        findings(&rec)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_dump_publishes_nothing_and_keeps_the_last_good_backup() {
    let app = pg::cluster().create_database("backup_pg_fail").await;
    sqlx_exec(
        &app.url,
        "CREATE TABLE t AS SELECT generate_series(1, 1000) AS n",
    )
    .await;
    // A pg_dump that writes half a file and fails; pg_restore is the real one.
    let tools = tempfile::tempdir().unwrap();
    let fake = tools.path().join("pg_dump");
    std::fs::write(
        &fake,
        "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in --version) echo 'pg_dump (PostgreSQL) 15.99'; exit 0;; esac; done\n\
         out=''; prev=''; for a in \"$@\"; do [ \"$prev\" = '-f' ] && out=\"$a\"; case \"$a\" in --file=*) out=\"${a#--file=}\";; esac; prev=\"$a\"; done\n\
         [ -n \"$out\" ] && printf 'PGDMP partial' > \"$out\"\necho 'pg_dump: error: connection lost' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(
        pg::cluster().bin_dir().join("pg_restore"),
        tools.path().join("pg_restore"),
    )
    .unwrap();

    let w = World::new()
        .plugin("backup")
        .pg_target("app", &app.url)
        .store("local")
        .grant("backup", "app", &["read"], "artifacts = [\"local\"]");
    // First a good backup with the real tools.
    let agent = w.agent().await;
    let good = invoke(&agent, "backup", "app", &[("store", "local")], false).await;
    assert_eq!(good.status, RunStatus::Succeeded, "{}", error_of(&good));
    let before = artifacts(&w, "app").await;
    assert_eq!(before.len(), 1);
    drop(agent);

    let w = w.config(&format!(
        "[tools]\npg_bin_dir = \"{}\"\n",
        tools.path().display()
    ));
    let agent = w.agent().await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let rec = invoke(&agent, "backup", "app", &[("store", "local")], false).await;
    assert_eq!(rec.status, RunStatus::Failed, "{}", findings(&rec));
    assert!(error_of(&rec).contains("pg_dump"), "{}", error_of(&rec));
    assert!(!error_of(&rec).contains(pg::cluster().password()));
    // Nothing new was published; the good one is still there and sound.
    let after = artifacts(&w, "app").await;
    assert_eq!(after, before);
    let store = LocalStore::new(store_root(&w));
    let name = ArtifactName::parse(&before[0].name).unwrap();
    assert!(store.verify(&name).await.unwrap().ok);
    // And no partial file lies around looking like a backup.
    let leftovers: Vec<String> = std::fs::read_dir(store_root(&w).join("app"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_artifact_is_caught_by_verify_and_audit() {
    let w = World::new()
        .plugin("backup")
        .sqlite_target("db", "db.sqlite")
        .sqlite_target("scratch", "scratch.db")
        .store("local")
        .grant(
            "backup",
            "db",
            &["read"],
            "artifacts = [\"local\"]\nrestore_to = [\"scratch\"]",
        );
    seed_sqlite(&w.path("db.sqlite")).await;
    let agent = w.agent().await;
    let rec = invoke(&agent, "backup", "db", &[("store", "local")], false).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{}", error_of(&rec));
    let list = artifacts(&w, "db").await;
    let name = ArtifactName::parse(&list[0].name).unwrap();
    // Flip one byte in the middle of the data.
    let data = store_root(&w).join(name.as_str());
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();
    let store = LocalStore::new(store_root(&w));
    let report = store.verify(&name).await.unwrap();
    assert!(!report.ok, "{report:?}");
    assert!(report.problems[0].contains("SHA-256"), "{report:?}");
    // A run with `audit` finds it, reports it, and retention stops
    // counting it as a good backup: keeping only the newest good one now
    // keeps the fresh one and drops the corrupted one.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let rec = invoke(
        &agent,
        "backup",
        "db",
        &[
            ("store", "local"),
            ("audit", "true"),
            ("keep_last", "1"),
            ("keep_daily", "0"),
            ("keep_weekly", "0"),
            ("keep_monthly", "0"),
        ],
        false,
    )
    .await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{}", error_of(&rec));
    assert_eq!(metric(&rec, "corrupted"), 1.0, "{}", findings(&rec));
    assert!(
        findings(&rec).contains("corrupted backup"),
        "{}",
        findings(&rec)
    );
    assert_eq!(
        rec.report.as_ref().unwrap().status,
        warden::runs::ReportStatus::Critical
    );
    let now = artifacts(&w, "db").await;
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now[0].name, name.as_str());
    let fresh = ArtifactName::parse(&now[0].name).unwrap();
    assert!(store.verify(&fresh).await.unwrap().ok);
}

async fn sqlx_exec(url: &str, sql: &str) {
    use sqlx::Connection as _;
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_decide_who_backs_up_what_and_where() {
    let base = || {
        World::new()
            .plugin("backup")
            .sqlite_target("db", "db.sqlite")
            .sqlite_target("other", "other.sqlite")
            .store("local")
    };
    // A grant without the artifacts capability.
    let w = base().grant("backup", "db", &["read"], "");
    seed_sqlite(&w.path("db.sqlite")).await;
    let agent = w.agent().await;
    let rec = invoke(&agent, "backup", "db", &[("store", "local")], false).await;
    assert_eq!(rec.status, RunStatus::Denied, "{}", findings(&rec));
    assert!(
        error_of(&rec).contains("no artifacts capability"),
        "{}",
        error_of(&rec)
    );
    // No grant for the target at all.
    let rec = invoke(&agent, "backup", "other", &[("store", "local")], false).await;
    assert_eq!(rec.status, RunStatus::Denied);
    // Verify-by-restore into a target the grant does not list.
    let w = base().grant("backup", "db", &["read"], "artifacts = [\"local\"]");
    seed_sqlite(&w.path("db.sqlite")).await;
    seed_sqlite(&w.path("other.sqlite")).await;
    let before = sqlite_fingerprints(&w.path("other.sqlite")).await;
    let agent = w.agent().await;
    let rec = invoke(
        &agent,
        "backup",
        "db",
        &[
            ("store", "local"),
            ("verify", "true"),
            ("verify_target", "other"),
        ],
        false,
    )
    .await;
    // The backup itself is made; its verification is refused and reported
    // as a failed action, which fails the run.
    assert_eq!(rec.status, RunStatus::Failed, "{}", error_of(&rec));
    assert_eq!(rec.error.as_ref().unwrap().kind, "action-failed");
    assert_eq!(
        rec.report.as_ref().unwrap().status,
        warden::runs::ReportStatus::Critical
    );
    assert_eq!(metric(&rec, "verified"), 0.0);
    assert!(
        format!("{}{}", error_of(&rec), findings(&rec)).contains("restore_to"),
        "{}\n{}",
        error_of(&rec),
        findings(&rec)
    );
    assert_eq!(before, sqlite_fingerprints(&w.path("other.sqlite")).await);
    // A grant naming a store the config does not define: the agent refuses to load.
    let w = base().grant("backup", "db", &["read"], "artifacts = [\"offsite\"]");
    let path = w.write();
    let err = warden::agent::Agent::load(&path)
        .await
        .err()
        .expect("a load error");
    assert!(
        err.to_string().contains("unknown store \"offsite\""),
        "{err}"
    );
}

/// True when a write in progress under `dir` (a `.partial-` folder) holds
/// a file whose name contains `needle` and has data.
fn partial_with_data(dir: &Path, needle: &str, inside_partial: bool) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            let partial = inside_partial || name.contains(".partial-");
            partial && partial_with_data(&path, needle, true)
        } else {
            inside_partial
                && name.contains(needle)
                && e.metadata().map(|m| m.len() > 0).unwrap_or(false)
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mongo_server_dying_mid_dump_fails_the_run_and_publishes_nothing() {
    let mut server = mongo::start_owned();
    let app = server.create_database("backup_mongo_dies").await;
    crate::backup_data::seed_mongo_sized(&server.url(), &app.name, 50_000).await;
    let w = World::new()
        .plugin("backup")
        .mongo_target("app", &app.url)
        .store("local")
        .grant(
            "backup",
            "app",
            &["read"],
            "artifacts = [\"local\"]\nstatement_timeout = \"5s\"",
        );
    let agent = std::sync::Arc::new(w.agent().await);
    // A good backup first.
    let good = invoke(
        &agent,
        "backup",
        "app",
        &[("store", "local"), ("gzip", "false")],
        false,
    )
    .await;
    assert_eq!(good.status, RunStatus::Succeeded, "{}", error_of(&good));
    let before = artifacts(&w, "app").await;
    assert_eq!(before.len(), 1);

    // Then kill the server as soon as the next dump has written data.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let run = tokio::spawn({
        let agent = agent.clone();
        async move {
            invoke(
                &agent,
                "backup",
                "app",
                &[("store", "local"), ("gzip", "false")],
                false,
            )
            .await
        }
    });
    let dir = store_root(&w).join("app");
    let started = std::time::Instant::now();
    while !partial_with_data(&dir, ".bson", false) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60) && !run.is_finished(),
            "the dump never started writing (or finished before the kill)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    server.kill();
    let rec = run.await.unwrap();
    assert_eq!(rec.status, RunStatus::Failed, "{rec:?}");
    assert!(!error_of(&rec).contains(&app.url), "{}", error_of(&rec));
    // Only the good backup: nothing new was published, no partial remains.
    assert_eq!(artifacts(&w, "app").await, before);
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");
    let store = LocalStore::new(store_root(&w));
    let name = ArtifactName::parse(&before[0].name).unwrap();
    assert!(store.verify(&name).await.unwrap().ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_artifact_names_stay_inside_the_targets_folder() {
    let w = World::new()
        .plugin("backup")
        .sqlite_target("db", "db.sqlite")
        .sqlite_target("other", "other.sqlite")
        .store("local")
        .grant("backup", "db", &["read"], "artifacts = [\"local\"]");
    seed_sqlite(&w.path("db.sqlite")).await;
    // Something of `other` already in the store.
    backdated(
        &store_root(&w),
        "other",
        "keep.sqlite",
        "2026-01-01T00:00:00Z",
    )
    .await;
    let agent = w.agent().await;
    for prefix in ["../other/", "/etc/", "a/../../other/", "x\n", "..", "a//b"] {
        let rec = invoke(
            &agent,
            "backup",
            "db",
            &[("store", "local"), ("prefix", prefix)],
            false,
        )
        .await;
        assert_ne!(
            rec.status,
            RunStatus::Succeeded,
            "prefix {prefix:?} was accepted"
        );
        assert!(
            matches!(rec.status, RunStatus::Failed | RunStatus::Rejected),
            "{prefix:?}: {:?} {}",
            rec.status,
            error_of(&rec)
        );
    }
    assert!(artifacts(&w, "db").await.is_empty());
    let other: Vec<String> = artifacts(&w, "other")
        .await
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(other, ["other/keep.sqlite"]);
    assert!(!w.path("stores/other").exists() && !Path::new("/etc/2026").exists());
}
