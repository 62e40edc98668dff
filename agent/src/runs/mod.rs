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

pub mod approvals;
mod record;
pub mod retention;

pub use record::*;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
CREATE TABLE IF NOT EXISTS alerts (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at  TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    status       TEXT NOT NULL,
    starts_at    TEXT NOT NULL,
    alert        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_fingerprint ON alerts (fingerprint);
CREATE TABLE IF NOT EXISTS circuits (
    rule        TEXT PRIMARY KEY,
    circuit     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS circuit_resets (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    rule        TEXT NOT NULL,
    by          TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS plugin_state (
    plugin      TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       BLOB NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (plugin, key)
);
CREATE TABLE IF NOT EXISTS schedule_ticks (
    schedule    TEXT PRIMARY KEY,
    cron        TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    last_tick   TEXT NOT NULL
);
"#;

/// The write-ahead log may grow to this before the background checkpointer
/// forces it back to empty (`wal_checkpoint(TRUNCATE)`); see
/// [`StoreLimits::wal_max_bytes`].
pub const WAL_MAX_BYTES: u64 = 16 << 20;

/// Bounds on the state database's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Once the write-ahead log file is larger than this, the background
    /// checkpointer (which looks every 100 ms) runs a `TRUNCATE` checkpoint
    /// (writers wait for it, a few milliseconds per MiB); SQLite's
    /// `journal_size_limit` is half of it, so a log that was reset is also
    /// cut back. The file stays under this plus what is written in about
    /// 100 ms. Default [`WAL_MAX_BYTES`].
    pub wal_max_bytes: u64,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            wal_max_bytes: WAL_MAX_BYTES,
        }
    }
}

/// Which runs [`RunStore::list_filtered`] returns; `None` matches any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub plugin: Option<String>,
    pub target: Option<String>,
    /// Runs requested at or after this time.
    pub since: Option<DateTime<Utc>>,
}

/// The state database: run records and plugin key-value state.
#[derive(Clone, Debug)]
pub struct RunStore {
    pool: SqlitePool,
    /// The write-ahead log file, `<state_db>-wal`.
    wal: std::path::PathBuf,
}

impl RunStore {
    /// Opens (creating if needed) the state database at `path`.
    pub async fn open(path: &Path) -> anyhow::Result<RunStore> {
        RunStore::open_with(path, StoreLimits::default()).await
    }

    /// [`RunStore::open`] with other bounds.
    pub async fn open_with(path: &Path, limits: StoreLimits) -> anyhow::Result<RunStore> {
        private_file(path)?;
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Accepted alerts and queued runs must survive a crash or a
            // power cut once the agent has answered: sync every commit.
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
            // Checkpoints run in the background (see `checkpointer`), not
            // inside a commit that a webhook caller is waiting for.
            .pragma("wal_autocheckpoint", "0")
            // After a checkpoint that reset the log, its file is cut back
            // to this (by default it would keep its largest size forever).
            .pragma("journal_size_limit", (limits.wal_max_bytes / 2).to_string())
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
        migrate(&pool)
            .await
            .with_context(|| format!("upgrading the tables in {}", path.display()))?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = std::path::PathBuf::from(wal);
        tokio::spawn(checkpointer(
            pool.clone(),
            wal.clone(),
            limits.wal_max_bytes,
        ));
        Ok(RunStore { pool, wal })
    }

    /// The write-ahead log file (`<state_db>-wal`); it may not exist.
    pub fn wal_path(&self) -> &Path {
        &self.wal
    }

    /// Size of the write-ahead log file in bytes (0 when there is none).
    pub fn wal_size(&self) -> u64 {
        std::fs::metadata(&self.wal).map_or(0, |m| m.len())
    }

    /// Moves the whole write-ahead log into the database and truncates it to
    /// zero bytes (`PRAGMA wal_checkpoint(TRUNCATE)`), waiting up to the
    /// busy timeout for readers and writers. Errors if it could not finish.
    pub async fn checkpoint_truncate(&self) -> anyhow::Result<()> {
        let (busy, log, done): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&self.pool)
            .await
            .context("checkpointing the state database")?;
        if busy != 0 {
            anyhow::bail!(
                "checkpointing the state database: still in use after the busy timeout \
                 ({done} of {log} log pages copied); the log is truncated at the next checkpoint"
            );
        }
        Ok(())
    }

    /// Closes every connection. The last connection to the database (in
    /// any process) checkpoints the whole write-ahead log and removes its
    /// file; when another process (a running agent) still has the database
    /// open, nothing waits for it: closing never blocks on a busy database,
    /// so a CLI command ends at once. (`warden run` truncates the log with
    /// [`RunStore::checkpoint_truncate`] when it stops, before this.) Later
    /// calls on this store (or its clones) fail; calling it again does
    /// nothing.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Deletes at most `batch` finished runs requested before `before`
    /// (those with an origin, a rule or a schedule, only if also requested
    /// before `origin_before`), then at most `batch` alerts received before
    /// `before`, oldest first. Runs in a status that is not final (queued,
    /// running, awaiting approval) or unknown are never deleted. Returns
    /// what was deleted; call again until both are below `batch`.
    pub async fn delete_history(
        &self,
        before: DateTime<Utc>,
        origin_before: DateTime<Utc>,
        batch: u32,
    ) -> anyhow::Result<Deleted> {
        // An allowlist of the final statuses, from the one definition.
        let finals: Vec<&str> = RunStatus::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .map(RunStatus::as_str)
            .collect();
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE requested_at < ",
        );
        q.push_bind(ts(before))
            .push(" AND (origin IS NULL OR requested_at < ")
            .push_bind(ts(origin_before))
            .push(") AND status IN (");
        let mut statuses = q.separated(", ");
        for s in finals {
            statuses.push_bind(s);
        }
        q.push(") ORDER BY requested_at LIMIT ")
            .push_bind(i64::from(batch))
            .push(")");
        let runs = q
            .build()
            .execute(&self.pool)
            .await
            .context("deleting old runs")?
            .rows_affected();
        let alerts = sqlx::query(
            "DELETE FROM alerts WHERE seq IN
             (SELECT seq FROM alerts WHERE received_at < ? ORDER BY seq LIMIT ?)",
        )
        .bind(ts(before))
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await
        .context("deleting old alerts")?
        .rows_affected();
        Ok(Deleted { runs, alerts })
    }

    /// Inserts or replaces a record (records are written at start and at end).
    pub async fn save(&self, rec: &RunRecord) -> anyhow::Result<()> {
        let mut conn = self.pool.acquire().await?;
        save_on(&mut conn, rec).await
    }

    /// Saves several records (and accepted alerts) in one transaction:
    /// all or nothing.
    pub async fn save_all(&self, alerts: &[StoredAlert], recs: &[RunRecord]) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        // Multi-row inserts: one statement per chunk, not per row (each
        // statement costs a round trip to sqlx's SQLite worker).
        for chunk in alerts.chunks(500) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO alerts (received_at, fingerprint, status, starts_at, alert) ",
            );
            let mut rows = Vec::with_capacity(chunk.len());
            for alert in chunk {
                rows.push((alert, serde_json::to_string(alert)?));
            }
            q.push_values(rows, |mut b, (alert, json)| {
                b.push_bind(ts(alert.received_at))
                    .push_bind(alert.fingerprint.clone())
                    .push_bind(alert.status.clone())
                    .push_bind(alert.starts_at.clone())
                    .push_bind(json);
            });
            q.build()
                .execute(&mut *tx)
                .await
                .context("writing accepted alerts")?;
        }
        for chunk in recs.chunks(500) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO runs (id, plugin, target, status, started_at, record, requested_at, not_before, origin, parent_run, depth) ",
            );
            let mut rows = Vec::with_capacity(chunk.len());
            for rec in chunk {
                rows.push((rec, serde_json::to_string(rec)?));
            }
            q.push_values(rows, |mut b, (rec, json)| {
                b.push_bind(rec.id.clone())
                    .push_bind(rec.plugin.clone())
                    .push_bind(rec.target.clone())
                    .push_bind(rec.status.as_str())
                    .push_bind(ts(rec.started_at))
                    .push_bind(json)
                    .push_bind(ts(rec.requested_at))
                    .push_bind(rec.not_before.map(ts))
                    .push_bind(rec.origin().map(str::to_string))
                    .push_bind(rec.parent_run.clone())
                    .push_bind(i64::from(rec.depth));
            });
            q.push(
                " ON CONFLICT(id) DO UPDATE SET status = excluded.status, record = excluded.record,
                  started_at = excluded.started_at, not_before = excluded.not_before",
            );
            q.build()
                .execute(&mut *tx)
                .await
                .context("writing run records")?;
        }
        tx.commit()
            .await
            .context("committing accepted alerts and runs")?;
        Ok(())
    }

    /// Accepted alerts, oldest first.
    pub async fn alerts(&self, limit: u32) -> anyhow::Result<Vec<StoredAlert>> {
        let rows = sqlx::query("SELECT alert FROM alerts ORDER BY seq LIMIT ?")
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

    /// Runs in `status`, oldest request first; for `queued`, only those
    /// due at `now`.
    pub async fn with_status(
        &self,
        status: RunStatus,
        now: DateTime<Utc>,
        limit: u32,
    ) -> anyhow::Result<Vec<RunRecord>> {
        let rows = sqlx::query(
            "SELECT record FROM runs WHERE status = ? AND (not_before IS NULL OR not_before <= ?)
             ORDER BY requested_at, id LIMIT ?",
        )
        .bind(status.as_str())
        .bind(ts(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        decode_all(&rows)
    }

    /// How many runs are in `status`.
    pub async fn count(&self, status: RunStatus) -> anyhow::Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM runs WHERE status = ?")
            .bind(status.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The end of the last successful run that was not a dry run, per
    /// (plugin, target) pair that has one: what
    /// `warden_last_success_timestamp_seconds` starts from.
    pub async fn last_successes(&self) -> anyhow::Result<Vec<(String, String, DateTime<Utc>)>> {
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT plugin, target, max(json_extract(record, '$.ended_at')) FROM runs
             WHERE status = 'succeeded' AND NOT coalesce(json_extract(record, '$.dry_run'), 0)
             GROUP BY plugin, target",
        )
        .fetch_all(&self.pool)
        .await
        .context("reading the last successful runs")?;
        let mut out = Vec::with_capacity(rows.len());
        for (plugin, target, ended) in rows {
            let Some(ended) = ended else { continue };
            let at = DateTime::parse_from_rfc3339(&ended)
                .with_context(|| format!("run of `{plugin}` on `{target}`: ended_at `{ended}`"))?;
            out.push((plugin, target, at.with_timezone(&Utc)));
        }
        Ok(out)
    }

    /// The status of the last run that was not a dry run and succeeded or
    /// failed ([`RunStatus::is_failure`]), per (plugin, target) pair: what
    /// `warden_last_run_failed` starts from.
    pub async fn last_outcomes(&self) -> anyhow::Result<Vec<(String, String, RunStatus)>> {
        let outcomes: Vec<&str> = RunStatus::ALL
            .into_iter()
            .filter(|s| *s == RunStatus::Succeeded || s.is_failure())
            .map(RunStatus::as_str)
            .collect();
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT plugin, target, status FROM (
               SELECT plugin, target, status, row_number() OVER (
                 PARTITION BY plugin, target
                 ORDER BY coalesce(json_extract(record, '$.ended_at'), started_at) DESC, started_at DESC
               ) AS n
               FROM runs
               WHERE NOT coalesce(json_extract(record, '$.dry_run'), 0) AND status IN (",
        );
        let mut list = q.separated(", ");
        for s in outcomes {
            list.push_bind(s);
        }
        q.push(")) WHERE n = 1");
        let rows: Vec<(String, String, String)> = q
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .context("reading the last outcome of each plugin and target")?;
        Ok(rows
            .into_iter()
            .filter_map(|(p, t, s)| RunStatus::from_name(&s).map(|s| (p, t, s)))
            .collect())
    }

    /// How many runs of `plugin` are `queued` (from any source): what
    /// admission holds against `[runs] max_queued_per_plugin`.
    pub async fn queued_of(&self, plugin: &str) -> anyhow::Result<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM runs WHERE plugin = ? AND status = 'queued'")
                .bind(plugin)
                .fetch_one(&self.pool)
                .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The runs that run `parent` started (`runs.start`), oldest first.
    pub async fn children_of(&self, parent: &str) -> anyhow::Result<Vec<RunRecord>> {
        let rows =
            sqlx::query("SELECT record FROM runs WHERE parent_run = ? ORDER BY requested_at, id")
                .bind(parent)
                .fetch_all(&self.pool)
                .await?;
        decode_all(&rows)
    }

    /// Marks runs left `running` by a previous agent process as
    /// `interrupted`; returns them.
    pub async fn interrupt_running(&self) -> anyhow::Result<Vec<RunRecord>> {
        let rows = sqlx::query("SELECT record FROM runs WHERE status = 'running'")
            .fetch_all(&self.pool)
            .await?;
        let mut out = decode_all(&rows)?;
        for rec in &mut out {
            rec.status = RunStatus::Interrupted;
            rec.ended_at = Some(Utc::now());
            rec.error = Some(RunError {
                blame: Blame::Host,
                kind: "interrupted".into(),
                message: "the agent stopped while this run was in progress; it is not run again \
                          automatically, as it may have done part of its work"
                    .into(),
            });
            self.save(rec).await?;
        }
        Ok(out)
    }

    /// Runs caused by rules and schedules requested since `since`, oldest
    /// first: what guardrails are rebuilt from at start.
    pub async fn origin_runs_since(&self, since: DateTime<Utc>) -> anyhow::Result<Vec<RunRecord>> {
        let rows = sqlx::query(
            "SELECT record FROM runs WHERE origin IS NOT NULL AND requested_at >= ? ORDER BY requested_at, id",
        )
        .bind(ts(since))
        .fetch_all(&self.pool)
        .await?;
        decode_all(&rows)
    }

    /// Queued runs and plans awaiting approval of `origin` (a rule or a
    /// schedule).
    pub async fn open_runs_of(&self, origin: &str) -> anyhow::Result<Vec<RunRecord>> {
        let rows = sqlx::query(
            "SELECT record FROM runs WHERE origin = ? AND status IN ('queued', 'awaiting-approval')
             ORDER BY requested_at, id",
        )
        .bind(origin)
        .fetch_all(&self.pool)
        .await?;
        decode_all(&rows)
    }

    /// Saves `changed` only if its record is still in status `from`, and
    /// then `also` (new records), in one transaction. Returns false, writing
    /// nothing, if the record moved on meanwhile (another process decided).
    pub async fn transition(
        &self,
        changed: &RunRecord,
        from: RunStatus,
        also: &[RunRecord],
    ) -> anyhow::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE runs SET status = ?, record = ?, not_before = ? WHERE id = ? AND status = ?",
        )
        .bind(changed.status.as_str())
        .bind(serde_json::to_string(changed)?)
        .bind(changed.not_before.map(ts))
        .bind(&changed.id)
        .bind(from.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done != 1 {
            return Ok(false);
        }
        for rec in also {
            save_on(&mut tx, rec).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Asks the running agent to close `rule`'s circuit breaker.
    pub async fn request_circuit_reset(&self, rule: &str, by: &str) -> anyhow::Result<()> {
        sqlx::query("INSERT INTO circuit_resets (rule, by, at) VALUES (?, ?, ?)")
            .bind(rule)
            .bind(by)
            .bind(ts(Utc::now()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Takes the pending circuit-reset requests: (rule, by).
    pub async fn take_circuit_resets(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query("SELECT rule, by FROM circuit_resets ORDER BY seq")
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query("DELETE FROM circuit_resets")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Saved circuit-breaker states, by rule.
    pub async fn circuits(&self) -> anyhow::Result<BTreeMap<String, serde_json::Value>> {
        let rows = sqlx::query("SELECT rule, circuit FROM circuits")
            .fetch_all(&self.pool)
            .await?;
        let mut out = BTreeMap::new();
        for r in rows {
            let rule: String = r.try_get(0)?;
            let json: String = r.try_get(1)?;
            out.insert(rule, serde_json::from_str(&json)?);
        }
        Ok(out)
    }

    /// Saves one rule's circuit-breaker state.
    pub async fn save_circuit(
        &self,
        rule: &str,
        circuit: &serde_json::Value,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO circuits (rule, circuit) VALUES (?, ?)
             ON CONFLICT(rule) DO UPDATE SET circuit = excluded.circuit",
        )
        .bind(rule)
        .bind(circuit.to_string())
        .execute(&self.pool)
        .await
        .context("writing a circuit-breaker state")?;
        Ok(())
    }

    /// How far a schedule's ticks are accounted for: fired, or recorded as
    /// missed (see [`crate::triggers::schedule`]).
    pub async fn schedule_tick(&self, schedule: &str) -> anyhow::Result<Option<ScheduleTick>> {
        let row =
            sqlx::query("SELECT cron, timezone, last_tick FROM schedule_ticks WHERE schedule = ?")
                .bind(schedule)
                .fetch_optional(&self.pool)
                .await
                .context("reading a schedule's last tick")?;
        let Some(row) = row else { return Ok(None) };
        let last: String = row.try_get(2)?;
        Ok(Some(ScheduleTick {
            cron: row.try_get(0)?,
            timezone: row.try_get(1)?,
            last_tick: DateTime::parse_from_rfc3339(&last)
                .with_context(|| format!("schedule `{schedule}`: bad last tick {last:?}"))?
                .with_timezone(&Utc),
        }))
    }

    /// Saves how far a schedule's ticks are accounted for.
    pub async fn save_schedule_tick(
        &self,
        schedule: &str,
        tick: &ScheduleTick,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO schedule_ticks (schedule, cron, timezone, last_tick) VALUES (?, ?, ?, ?)
             ON CONFLICT(schedule) DO UPDATE SET cron = excluded.cron,
                 timezone = excluded.timezone, last_tick = excluded.last_tick",
        )
        .bind(schedule)
        .bind(&tick.cron)
        .bind(&tick.timezone)
        .bind(ts(tick.last_tick))
        .execute(&self.pool)
        .await
        .context("writing a schedule's last tick")?;
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
        self.list_filtered(limit, &RunFilter::default()).await
    }

    /// The newest `limit` runs matching `filter`, newest first.
    pub async fn list_filtered(
        &self,
        limit: u32,
        filter: &RunFilter,
    ) -> anyhow::Result<Vec<RunRecord>> {
        let rows = sqlx::query(
            "SELECT record FROM runs WHERE (?1 IS NULL OR status = ?1)
               AND (?2 IS NULL OR plugin = ?2) AND (?3 IS NULL OR target = ?3)
               AND (?4 IS NULL OR requested_at >= ?4)
             ORDER BY requested_at DESC, id DESC LIMIT ?5",
        )
        .bind(filter.status.map(RunStatus::as_str))
        .bind(filter.plugin.as_deref())
        .bind(filter.target.as_deref())
        .bind(filter.since.map(ts))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        decode_all(&rows)
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

/// An alert as accepted from Alertmanager, kept in the state database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAlert {
    pub received_at: DateTime<Utc>,
    pub status: String,
    pub fingerprint: String,
    pub starts_at: String,
    #[serde(default)]
    pub ends_at: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The runs it led to.
    #[serde(default)]
    pub runs: Vec<String>,
}

/// A schedule's last accounted tick, with the expression it was computed
/// from (a changed expression does not make up misses from the old one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleTick {
    pub cron: String,
    pub timezone: String,
    pub last_tick: DateTime<Utc>,
}

/// Creates the state database's folder (`0700`, with any missing parents)
/// and file (`0600`) when missing, so that run records, plugin state and
/// alerts are readable by the agent's user only; SQLite gives its `-wal`
/// and `-shm` files the database file's mode. An existing file that others
/// can read is left as the operator set it, with a warning.
fn private_file(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .with_context(|| format!("creating the state database folder {}", parent.display()))?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("creating the state database {}", path.display()));
        }
    }
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the state database is readable by other users; `chmod 600` it"
        );
    }
    Ok(())
}

/// A timestamp as stored: RFC 3339, UTC, microseconds, so that text order is
/// time order.
pub fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn decode_all(rows: &[sqlx::sqlite::SqliteRow]) -> anyhow::Result<Vec<RunRecord>> {
    rows.iter()
        .map(|r| {
            let json: String = r.try_get(0)?;
            Ok(serde_json::from_str(&json)?)
        })
        .collect()
}

async fn save_on(conn: &mut sqlx::SqliteConnection, rec: &RunRecord) -> anyhow::Result<()> {
    let json = serde_json::to_string(rec)?;
    sqlx::query(
        "INSERT INTO runs (id, plugin, target, status, started_at, record, requested_at, not_before, origin, parent_run, depth)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET status = excluded.status, record = excluded.record,
             started_at = excluded.started_at, not_before = excluded.not_before",
    )
    .bind(&rec.id)
    .bind(&rec.plugin)
    .bind(&rec.target)
    .bind(rec.status.as_str())
    .bind(ts(rec.started_at))
    .bind(json)
    .bind(ts(rec.requested_at))
    .bind(rec.not_before.map(ts))
    .bind(rec.origin())
    .bind(&rec.parent_run)
    .bind(i64::from(rec.depth))
    .execute(&mut *conn)
    .await
    .context("writing a run record")?;
    Ok(())
}

/// What [`RunStore::delete_history`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    pub runs: u64,
    pub alerts: u64,
}

/// How often the checkpointer looks at the size of the write-ahead log.
const WAL_POLL: Duration = Duration::from_millis(100);
/// Passive checkpoints per second: one every this many polls.
const PASSIVE_EVERY: u32 = 10;

/// Moves the write-ahead log into the database file every second, off the
/// commit path, without waiting for anyone (`PASSIVE`). Under a steady
/// stream of writes a passive checkpoint never catches up with the end of
/// the log, so SQLite never restarts it and the file grows without bound
/// (200 MB after 80k alerts): so every [`WAL_POLL`] the file's size is
/// looked at (whoever wrote it, this process or another), and once it is
/// over `max_bytes` a `TRUNCATE` checkpoint waits for the writer of the
/// moment, copies the rest and empties the file. Stops when the pool is
/// closed.
async fn checkpointer(pool: SqlitePool, wal: std::path::PathBuf, max_bytes: u64) {
    let mut tick = tokio::time::interval(WAL_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut polls = 0u32;
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        polls = (polls + 1) % PASSIVE_EVERY;
        let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
        let mode = if size > max_bytes {
            "TRUNCATE"
        } else if polls == 0 {
            "PASSIVE"
        } else {
            continue;
        };
        let result: Result<(i64, i64, i64), _> =
            sqlx::query_as(&format!("PRAGMA wal_checkpoint({mode})"))
                .fetch_one(&pool)
                .await;
        match result {
            Ok((busy, log, done)) if busy != 0 && mode == "TRUNCATE" => {
                tracing::warn!(
                    wal_bytes = size,
                    log_pages = log,
                    copied_pages = done,
                    "the state database's write-ahead log is over its bound and could not be \
                     truncated (the database was busy); trying again"
                );
            }
            Ok(_) => {}
            Err(_) if pool.is_closed() => return,
            Err(e) => tracing::warn!(error = %e, "state database checkpoint failed"),
        }
    }
}

/// Columns added after the first release, for state databases made by it.
async fn migrate(pool: &SqlitePool) -> anyhow::Result<()> {
    let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info('runs')")
        .fetch_all(pool)
        .await?;
    for (column, ddl) in [
        (
            "requested_at",
            "ALTER TABLE runs ADD COLUMN requested_at TEXT NOT NULL DEFAULT ''",
        ),
        ("not_before", "ALTER TABLE runs ADD COLUMN not_before TEXT"),
        ("origin", "ALTER TABLE runs ADD COLUMN origin TEXT"),
        // Runs started by runs (`runs.start`): the parent's id and the
        // depth in the chain; earlier runs were all requested from outside
        // (or their link is only in the trigger's text): depth 0.
        ("parent_run", "ALTER TABLE runs ADD COLUMN parent_run TEXT"),
        (
            "depth",
            "ALTER TABLE runs ADD COLUMN depth INTEGER NOT NULL DEFAULT 0",
        ),
    ] {
        if !columns.iter().any(|c| c == column) {
            sqlx::raw_sql(ddl).execute(pool).await?;
        }
    }
    sqlx::raw_sql(
        "UPDATE runs SET requested_at = started_at WHERE requested_at = '';
         CREATE INDEX IF NOT EXISTS runs_status ON runs (status, requested_at);
         CREATE INDEX IF NOT EXISTS runs_origin ON runs (origin, requested_at);
         CREATE INDEX IF NOT EXISTS runs_requested ON runs (requested_at);
         CREATE INDEX IF NOT EXISTS runs_plugin_status ON runs (plugin, status);
         CREATE INDEX IF NOT EXISTS runs_parent ON runs (parent_run) WHERE parent_run IS NOT NULL;
         CREATE INDEX IF NOT EXISTS alerts_received ON alerts (received_at);",
    )
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn manual(plugin: &str) -> RunRecord {
        RunRecord::new(
            plugin,
            "app",
            Trigger::Manual { by: "test".into() },
            BTreeMap::new(),
            false,
        )
    }

    async fn column(store: &RunStore, id: &str) -> (Option<String>, i64) {
        let row = sqlx::query("SELECT parent_run, depth FROM runs WHERE id = ?")
            .bind(id)
            .fetch_one(&store.pool)
            .await
            .unwrap();
        (row.try_get(0).unwrap(), row.try_get(1).unwrap())
    }

    /// A started run's parent and depth are in its record and in columns
    /// of their own, through both write paths; a run started from outside
    /// has depth 0 and no parent.
    #[tokio::test]
    async fn parent_and_depth_are_stored_in_record_and_columns() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::open(&dir.path().join("state.db")).await.unwrap();
        let root = manual("starter");
        let child = RunRecord::started_by(
            &root.id,
            "starter",
            root.depth,
            "starter",
            "app",
            BTreeMap::new(),
            false,
        );
        let grandchild = RunRecord::started_by(
            &child.id,
            "starter",
            child.depth,
            "vacuum",
            "app",
            BTreeMap::new(),
            true,
        );
        assert_eq!(
            child.trigger,
            Trigger::Manual {
                by: format!("run {} (starter)", root.id)
            }
        );
        assert_eq!((child.depth, grandchild.depth), (1, 2));
        assert!(grandchild.dry_run);
        store
            .save_all(&[], &[root.clone(), child.clone()])
            .await
            .unwrap();
        store.save(&grandchild).await.unwrap();

        assert_eq!(column(&store, &root.id).await, (None, 0));
        assert_eq!(column(&store, &child.id).await, (Some(root.id.clone()), 1));
        assert_eq!(
            column(&store, &grandchild.id).await,
            (Some(child.id.clone()), 2)
        );
        let back = store.get(&grandchild.id).await.unwrap().unwrap();
        assert_eq!(back.parent_run.as_deref(), Some(child.id.as_str()));
        assert_eq!(back.depth, 2);
        // A record without a parent does not carry the fields at all.
        let json = serde_json::to_value(&root).unwrap();
        assert!(json.get("parent_run").is_none() && json.get("depth").is_none());

        let children: Vec<String> = store
            .children_of(&root.id)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(children, std::slice::from_ref(&child.id));
        assert_eq!(store.queued_of("starter").await.unwrap(), 2);
        assert_eq!(store.queued_of("vacuum").await.unwrap(), 1);
        let mut done = child.clone();
        done.status = RunStatus::Succeeded;
        store.save(&done).await.unwrap();
        assert_eq!(store.queued_of("starter").await.unwrap(), 1);
        assert_eq!(store.queued_of("backup").await.unwrap(), 0);
    }

    /// Approving a started run's plan queues the real run at the plan's
    /// place in the chain: approval does not reset the depth.
    #[tokio::test]
    async fn an_approved_plan_keeps_its_parent_and_depth() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::open(&dir.path().join("state.db")).await.unwrap();
        let mut plan = RunRecord::started_by(
            "parent-run",
            "runbook",
            2,
            "vacuum",
            "app",
            BTreeMap::new(),
            true,
        );
        plan.status = RunStatus::AwaitingApproval;
        plan.approval = Some(Approval::new(ApprovalState::Pending, 3600));
        store.save(&plan).await.unwrap();
        let (_, real) =
            approvals::approve(&store, &plan.id, &approvals::Approver::local_user("oncall"))
                .await
                .unwrap();
        assert!(!real.dry_run);
        assert_eq!(
            (real.parent_run.as_deref(), real.depth),
            (Some("parent-run"), 3)
        );
        assert_eq!(
            column(&store, &real.id).await,
            (Some("parent-run".to_string()), 3)
        );
    }

    /// A plan expires when the clock passes its deadline, not before, and
    /// only once; the clock is the caller's (no waiting in tests).
    #[tokio::test]
    async fn a_plan_expires_when_the_clock_passes_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::open(&dir.path().join("state.db")).await.unwrap();
        let clock = crate::clock::ManualClock::new(Utc::now());
        use crate::clock::Clock as _;
        let mut plan = manual("vacuum");
        plan.dry_run = true;
        plan.status = RunStatus::AwaitingApproval;
        plan.approval = Some({
            let mut a = Approval::new(ApprovalState::Pending, 3600);
            a.expires_at = Some(clock.now() + chrono::Duration::hours(1));
            a
        });
        store.save(&plan).await.unwrap();
        for minutes in [0, 30, 59] {
            let at = clock.now() + chrono::Duration::minutes(minutes);
            assert_eq!(approvals::expire_due(&store, at).await.unwrap(), 0);
        }
        assert_eq!(
            store.get(&plan.id).await.unwrap().unwrap().status,
            RunStatus::AwaitingApproval
        );
        clock.advance(std::time::Duration::from_secs(3600));
        assert_eq!(approvals::expire_due(&store, clock.now()).await.unwrap(), 1);
        let expired = store.get(&plan.id).await.unwrap().unwrap();
        assert_ne!(expired.status, RunStatus::AwaitingApproval, "{expired:#?}");
        assert_eq!(
            expired.approval.map(|a| a.state),
            Some(ApprovalState::Expired)
        );
        clock.advance(std::time::Duration::from_secs(3600));
        assert_eq!(approvals::expire_due(&store, clock.now()).await.unwrap(), 0);
    }

    /// A state database made before the columns existed is upgraded in
    /// place: its runs get depth 0 and no parent, and new runs store both.
    #[tokio::test]
    async fn an_older_state_database_gets_the_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let old = manual("vacuum");
        {
            let opts = SqliteConnectOptions::from_str("sqlite://")
                .unwrap()
                .filename(&path)
                .create_if_missing(true);
            let pool = SqlitePool::connect_with(opts).await.unwrap();
            // The schema of the first release.
            sqlx::raw_sql(SCHEMA).execute(&pool).await.unwrap();
            sqlx::query(
                "INSERT INTO runs (id, plugin, target, status, started_at, record) VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&old.id)
            .bind(&old.plugin)
            .bind(&old.target)
            .bind(old.status.as_str())
            .bind(ts(old.started_at))
            .bind(serde_json::to_string(&old).unwrap())
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        }
        let store = RunStore::open(&path).await.unwrap();
        assert_eq!(column(&store, &old.id).await, (None, 0));
        assert_eq!(store.get(&old.id).await.unwrap().unwrap().depth, 0);
        let child = RunRecord::started_by(
            &old.id,
            "vacuum",
            0,
            "vacuum",
            "app",
            BTreeMap::new(),
            false,
        );
        store.save(&child).await.unwrap();
        assert_eq!(column(&store, &child.id).await, (Some(old.id.clone()), 1));
        assert_eq!(store.queued_of("vacuum").await.unwrap(), 2);
        drop(store);
        // Opening again changes nothing.
        let store = RunStore::open(&path).await.unwrap();
        assert_eq!(column(&store, &child.id).await, (Some(old.id.clone()), 1));
    }
}
