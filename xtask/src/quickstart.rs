//! `cargo xtask quickstart`: build the plugins, seed `examples/quickstart/quickstart.db`
//! with churn (rows inserted, then most of them deleted, so SQLite's freelist is large),
//! and let the agent run the vacuum plugin against it once.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use anyhow::{Context, Result, bail};
use sqlx::sqlite::{SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use crate::cmd;
use crate::plugins;

/// The vacuum plugin's default trigger: freelist pages / all pages.
const VACUUM_DEFAULT_RATIO: f64 = 0.2;
const CONFIG: &str = "examples/quickstart/warden.toml";

pub fn quickstart(root: &Path, reset_state: bool) -> Result<()> {
    plugins::build_plugins(root)?;

    let example = root.join("examples").join("quickstart");
    let db = example.join("quickstart.db");
    let state = example.join("state");
    if reset_state {
        remove_dir(&state)?;
        println!("removed {}", plugins::relative(root, &state));
    }
    // Private to its user, as the agent creates it.
    {
        use std::os::unix::fs::DirBuilderExt as _;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&state)
            .with_context(|| format!("creating {}", state.display()))?;
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a tokio runtime")?;
    let before = runtime.block_on(seed(&db))?;
    println!(
        "seeded {}: {} pages, {} on the freelist ({:.0}%; the vacuum plugin acts from {:.0}%)",
        plugins::relative(root, &db),
        before.pages,
        before.free,
        before.ratio() * 100.0,
        VACUUM_DEFAULT_RATIO * 100.0
    );

    cmd::run(cmd::cargo(root).args([
        "run",
        "-p",
        "warden",
        "--",
        "--config",
        CONFIG,
        "invoke",
        "vacuum",
        "--target",
        "quickstart",
    ]))
    .context("the agent's vacuum run failed")?;

    cmd::run(cmd::cargo(root).args([
        "run",
        "-p",
        "warden",
        "--",
        "--config",
        CONFIG,
        "invoke",
        "backup",
        "--target",
        "quickstart",
        "--param",
        "store=local",
    ]))
    .context("the agent's backup run failed")?;

    let after = runtime.block_on(page_stats(&db))?;
    println!(
        "\n{} after the run: {} pages, {} on the freelist (before: {} pages, {} free)",
        plugins::relative(root, &db),
        after.pages,
        after.free,
        before.pages,
        before.free
    );
    println!(
        "\nNext, try:\n  \
         cargo run -p warden -- --config {CONFIG} runs list    # the run just recorded\n  \
         cargo run -p warden -- --config {CONFIG} run          # the long-running agent (Ctrl-C stops it)\n\
         `cargo xtask quickstart` again reseeds the database."
    );
    Ok(())
}

struct PageStats {
    pages: i64,
    free: i64,
}

impl PageStats {
    fn ratio(&self) -> f64 {
        if self.pages == 0 {
            0.0
        } else {
            self.free as f64 / self.pages as f64
        }
    }
}

/// Recreates the database: a few tables, ~60k rows, most of them deleted again.
async fn seed(db: &Path) -> Result<PageStats> {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        remove_file(Path::new(&name))?;
    }
    let mut conn = SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(true)
        // One plain file, and deleted pages stay on the freelist until a VACUUM.
        .journal_mode(SqliteJournalMode::Delete)
        .auto_vacuum(SqliteAutoVacuum::None)
        .synchronous(SqliteSynchronous::Off)
        .connect()
        .await
        .with_context(|| format!("creating {}", db.display()))?;

    let script = r#"
        BEGIN;
        CREATE TABLE events (
            id         INTEGER PRIMARY KEY,
            kind       TEXT NOT NULL,
            payload    TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX events_created_at ON events (created_at);
        CREATE TABLE sessions (
            id         INTEGER PRIMARY KEY,
            user_name  TEXT NOT NULL,
            token      TEXT NOT NULL,
            expires_at TEXT NOT NULL
        );
        CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO settings VALUES ('retention_days', '7'), ('owner', 'quickstart');

        WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 50000)
        INSERT INTO events (kind, payload, created_at)
        SELECT CASE n % 4 WHEN 0 THEN 'login' WHEN 1 THEN 'click' WHEN 2 THEN 'view' ELSE 'error' END,
               hex(randomblob(96)),
               datetime('now', '-' || (n % 90) || ' days')
        FROM seq;

        WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 10000)
        INSERT INTO sessions (user_name, token, expires_at)
        SELECT 'user' || (n % 500), hex(randomblob(32)), datetime('now', '-' || (n % 30) || ' days', '+1 day')
        FROM seq;
        COMMIT;

        -- Churn: retention keeps one week of events; expired sessions go.
        DELETE FROM events WHERE created_at < datetime('now', '-7 days');
        DELETE FROM sessions WHERE expires_at < datetime('now');
    "#;
    sqlx::raw_sql(script)
        .execute(&mut conn)
        .await
        .context("seeding the quick start database")?;
    let stats = stats(&mut conn).await?;
    conn.close().await.context("closing the database")?;
    if stats.ratio() < VACUUM_DEFAULT_RATIO {
        bail!(
            "seeding left only {} of {} pages free: below the vacuum plugin's ratio {VACUUM_DEFAULT_RATIO}",
            stats.free,
            stats.pages
        );
    }
    Ok(stats)
}

async fn page_stats(db: &Path) -> Result<PageStats> {
    let mut conn = SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .connect()
        .await
        .with_context(|| format!("opening {}", db.display()))?;
    let stats = stats(&mut conn).await?;
    conn.close().await.context("closing the database")?;
    Ok(stats)
}

async fn stats(conn: &mut SqliteConnection) -> Result<PageStats> {
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(&mut *conn)
        .await
        .context("PRAGMA page_count")?;
    let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
        .fetch_one(&mut *conn)
        .await
        .context("PRAGMA freelist_count")?;
    Ok(PageStats { pages, free })
}

fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn remove_dir(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(err) if err.kind() != ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}
