//! Run records and per-plugin state, kept in the agent's state database
//! (embedded SQLite by default).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let store = warden::runs::RunStore::open(std::path::Path::new("state/warden.db")).await?;
//! for run in store.list(20).await? {
//!     println!("{} {} {}", run.id, run.plugin, run.status);
//! }
//! # Ok(()) }
//! ```

mod record;

pub use record::*;

use anyhow::Context as _;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS runs (
    id          TEXT PRIMARY KEY,
    plugin      TEXT NOT NULL,
    target      TEXT NOT NULL,
    status      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    record      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at);
CREATE TABLE IF NOT EXISTS plugin_state (
    plugin      TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       BLOB NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (plugin, key)
);
"#;

/// The state database: run records and plugin key-value state.
#[derive(Clone, Debug)]
pub struct RunStore {
    pool: SqlitePool,
}

impl RunStore {
    /// Opens (creating if needed) the state database at `path`.
    pub async fn open(path: &Path) -> anyhow::Result<RunStore> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).with_context(|| {
                format!("creating the state database folder {}", parent.display())
            })?;
        }
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .with_context(|| format!("opening the state database {}", path.display()))?;
        sqlx::raw_sql(SCHEMA)
            .execute(&pool)
            .await
            .with_context(|| format!("creating tables in {}", path.display()))?;
        Ok(RunStore { pool })
    }

    /// Inserts or replaces a record (records are written at start and at end).
    pub async fn save(&self, rec: &RunRecord) -> anyhow::Result<()> {
        let json = serde_json::to_string(rec)?;
        sqlx::query(
            "INSERT INTO runs (id, plugin, target, status, started_at, record) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET status = excluded.status, record = excluded.record",
        )
        .bind(&rec.id)
        .bind(&rec.plugin)
        .bind(&rec.target)
        .bind(rec.status.as_str())
        .bind(rec.started_at.to_rfc3339())
        .bind(json)
        .execute(&self.pool)
        .await
        .context("writing a run record")?;
        Ok(())
    }

    /// One run by id.
    pub async fn get(&self, id: &str) -> anyhow::Result<Option<RunRecord>> {
        let row = sqlx::query("SELECT record FROM runs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let json: String = r.try_get(0)?;
                Ok(Some(
                    serde_json::from_str(&json).with_context(|| format!("decoding run {id}"))?,
                ))
            }
        }
    }

    /// The newest `limit` runs, newest first.
    pub async fn list(&self, limit: u32) -> anyhow::Result<Vec<RunRecord>> {
        let rows = sqlx::query("SELECT record FROM runs ORDER BY started_at DESC, id DESC LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let json: String = r.try_get(0)?;
                Ok(serde_json::from_str(&json)?)
            })
            .collect()
    }

    /// Reads one plugin state key.
    pub async fn state_get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT value FROM plugin_state WHERE plugin = ? AND key = ?")
            .bind(plugin)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    /// Keys of a plugin that start with `prefix`, sorted, at most `limit`.
    pub async fn state_keys(
        &self,
        plugin: &str,
        prefix: &str,
        limit: u32,
    ) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT key FROM plugin_state WHERE plugin = ? AND substr(key, 1, length(?)) = ? ORDER BY key LIMIT ?",
        )
        .bind(plugin)
        .bind(prefix)
        .bind(prefix)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Number of keys a plugin holds.
    pub async fn state_count(&self, plugin: &str) -> anyhow::Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM plugin_state WHERE plugin = ?")
            .bind(plugin)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Applies a run's state writes in one transaction (`None` deletes).
    pub async fn state_commit(
        &self,
        plugin: &str,
        writes: impl IntoIterator<Item = (String, Option<Vec<u8>>)>,
    ) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        let now = chrono::Utc::now().to_rfc3339();
        for (key, value) in writes {
            match value {
                Some(v) => {
                    sqlx::query(
                        "INSERT INTO plugin_state (plugin, key, value, updated_at) VALUES (?, ?, ?, ?)
                         ON CONFLICT(plugin, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    )
                    .bind(plugin)
                    .bind(&key)
                    .bind(v)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM plugin_state WHERE plugin = ? AND key = ?")
                        .bind(plugin)
                        .bind(&key)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
