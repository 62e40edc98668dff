//! SQLite: a dump is `VACUUM INTO` the artifact's file on a read-only
//! connection (a consistent copy, whatever writes go on meanwhile); a
//! restore copies the artifact into the destination with SQLite's online
//! backup API, page by page under SQLite's own locks and journal, so the
//! destination is replaced atomically, its `-wal`/`-shm` files stay
//! consistent, and connections other processes hold see the new content
//! once it is done (a backup into a database in WAL mode needs the same
//! page size). The destination file is created if missing.
//!
//! Manifest metadata of a dump: `source-kind` (`sqlite`), `format`
//! (`sqlite3`), `tool-version` (`sqlite <version>`).

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, c_int};
use std::path::{Path, PathBuf};
use std::ptr::{NonNull, null, null_mut};
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use libsqlite3_sys as ffi;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions as _, Connection as _};

use super::{Counts, DumpError, DumpOutcome, META_SOURCE_KIND, blocking};
use crate::config::Target;

/// How long to wait for the locks a dump or restore needs.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// The database file a `sqlite:` URL names; in-memory databases are
/// refused.
pub(crate) fn database_path(url: &str) -> Result<PathBuf, String> {
    if !url.starts_with("sqlite:") {
        return Err("the URL must start with sqlite:".to_owned());
    }
    let in_memory = url
        .split_once('?')
        .is_some_and(|(_, query)| query.split('&').any(|p| p == "mode=memory"));
    if in_memory {
        return Err("an in-memory SQLite database cannot be dumped or restored".to_owned());
    }
    let options =
        SqliteConnectOptions::from_str(url).map_err(|e| format!("not a SQLite URL: {e}"))?;
    let path = options.get_filename();
    let text = path.to_string_lossy();
    if text.is_empty() || text.starts_with(':') || text.starts_with("file:") {
        return Err("an in-memory SQLite database cannot be dumped or restored".to_owned());
    }
    Ok(path.to_path_buf())
}

fn invalid(target: &Target, problem: String) -> DumpError {
    DumpError::InvalidInput(format!("target `{}`: {problem}", target.name))
}

async fn open_read_only(path: &Path, what: &str) -> Result<SqliteConnection, DumpError> {
    SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false)
        .busy_timeout(LOCK_WAIT)
        .connect()
        .await
        .map_err(|e| DumpError::Failed(format!("opening {what}: {e}")))
}

/// The user tables (not `sqlite_*`, not virtual) of a database.
async fn user_tables(conn: &mut SqliteConnection, what: &str) -> Result<Vec<String>, DumpError> {
    sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' \
         ESCAPE '\\' AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| DumpError::Failed(format!("listing the tables of {what}: {e}")))
}

async fn count_rows(
    conn: &mut SqliteConnection,
    tables: &[String],
    what: &str,
) -> Result<Counts, DumpError> {
    let mut counts = Counts::new();
    for table in tables {
        let sql = format!("SELECT count(*) FROM \"{}\"", table.replace('"', "\"\""));
        let n: i64 = sqlx::query_scalar(&sql)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| {
                DumpError::Failed(format!(
                    "counting the rows of table {table:?} of {what}: {e}"
                ))
            })?;
        counts.insert(table.clone(), u64::try_from(n).unwrap_or(0));
    }
    Ok(counts)
}

/// See the [module docs](self).
pub(super) async fn dump(source: &Target, out: &Path) -> Result<DumpOutcome, DumpError> {
    let path = database_path(source.url.expose()).map_err(|p| invalid(source, p))?;
    let what = format!("target `{}`", source.name);
    let mut conn = open_read_only(&path, &what).await?;
    // The output must not exist or be empty: the pending artifact's empty
    // file (mode 0600) is kept.
    let out_text = out.to_str().ok_or_else(|| {
        DumpError::Failed(format!("the output path {} is not UTF-8", out.display()))
    })?;
    sqlx::query("VACUUM INTO ?1")
        .bind(out_text)
        .execute(&mut conn)
        .await
        .map_err(|e| DumpError::Failed(format!("{what}: VACUUM INTO {}: {e}", out.display())))?;
    let version: String = sqlx::query_scalar("SELECT sqlite_version()")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| DumpError::Failed(format!("{what}: reading the SQLite version: {e}")))?;
    let _ = conn.close().await;

    let copy = format!("the copy {}", out.display());
    let mut conn = open_read_only(out, &copy).await?;
    let tables = user_tables(&mut conn, &copy).await?;
    let counts = count_rows(&mut conn, &tables, &copy).await?;
    let _ = conn.close().await;
    let metadata = BTreeMap::from([
        (META_SOURCE_KIND.to_owned(), "sqlite".to_owned()),
        ("format".to_owned(), "sqlite3".to_owned()),
        ("tool-version".to_owned(), format!("sqlite {version}")),
    ]);
    Ok(DumpOutcome {
        counts,
        metadata,
        digests: Default::default(),
    })
}

/// See the [module docs](self).
pub(super) async fn restore(destination: &Target, data: &Path) -> Result<Counts, DumpError> {
    let path = database_path(destination.url.expose()).map_err(|p| invalid(destination, p))?;
    let what = format!("target `{}`", destination.name);
    let artifact = format!("the artifact {}", data.display());
    let mut conn = open_read_only(data, &artifact).await?;
    let tables = user_tables(&mut conn, &artifact).await?;
    let _ = conn.close().await;

    let (from, to, doing) = (data.to_path_buf(), path.clone(), what.clone());
    blocking(&what, move || {
        backup(&from, &to).map_err(|e| DumpError::Failed(format!("restoring {doing}: {e}")))
    })
    .await?;

    let mut conn = open_read_only(&path, &what).await?;
    let counts = count_rows(&mut conn, &tables, &what).await?;
    let _ = conn.close().await;
    Ok(counts)
}

/// An open `sqlite3*`, closed on drop.
struct Db(NonNull<ffi::sqlite3>);

impl Db {
    fn open(path: &Path, flags: c_int) -> Result<Db, String> {
        let name = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| format!("{} contains a NUL byte", path.display()))?;
        let mut handle: *mut ffi::sqlite3 = null_mut();
        // SAFETY: `name` is a valid C string, `handle` a valid out pointer;
        // a null VFS name selects the default VFS.
        let rc = unsafe { ffi::sqlite3_open_v2(name.as_ptr(), &mut handle, flags, null()) };
        let db = NonNull::new(handle).map(Db);
        if rc != ffi::SQLITE_OK {
            let message = db.as_ref().map_or_else(|| code_text(rc), Db::message);
            return Err(format!("opening {}: {message}", path.display()));
        }
        db.ok_or_else(|| format!("opening {}: out of memory", path.display()))
    }

    /// The message of the last error on this connection.
    fn message(&self) -> String {
        // SAFETY: the handle is open; sqlite3_errmsg returns a valid C
        // string owned by SQLite, copied before any other call.
        unsafe {
            let text = ffi::sqlite3_errmsg(self.0.as_ptr());
            if text.is_null() {
                "unknown error".to_owned()
            } else {
                CStr::from_ptr(text).to_string_lossy().into_owned()
            }
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // SAFETY: the handle is open and not used after this.
        unsafe {
            ffi::sqlite3_close(self.0.as_ptr());
        }
    }
}

fn code_text(rc: c_int) -> String {
    // SAFETY: sqlite3_errstr returns a static C string for any code.
    unsafe {
        let text = ffi::sqlite3_errstr(rc);
        if text.is_null() {
            format!("error code {rc}")
        } else {
            CStr::from_ptr(text).to_string_lossy().into_owned()
        }
    }
}

/// Copies database file `from` over database `to` with the backup API.
fn backup(from: &Path, to: &Path) -> Result<(), String> {
    let source = Db::open(from, ffi::SQLITE_OPEN_READONLY)?;
    let dest = Db::open(to, ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE)?;
    let wait_ms = c_int::try_from(LOCK_WAIT.as_millis()).unwrap_or(c_int::MAX);
    // SAFETY: both handles are open for the whole block; the backup handle
    // is finished before they are closed (they drop after it); "main" is a
    // valid C string.
    unsafe {
        ffi::sqlite3_busy_timeout(dest.0.as_ptr(), wait_ms);
        let main = c"main";
        let handle = ffi::sqlite3_backup_init(
            dest.0.as_ptr(),
            main.as_ptr(),
            source.0.as_ptr(),
            main.as_ptr(),
        );
        if handle.is_null() {
            return Err(dest.message());
        }
        let started = Instant::now();
        let mut failure = None;
        loop {
            match ffi::sqlite3_backup_step(handle, -1) {
                ffi::SQLITE_DONE => break,
                ffi::SQLITE_OK => {}
                ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED if started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                rc => {
                    failure = Some(rc);
                    break;
                }
            }
        }
        let rc = ffi::sqlite3_backup_finish(handle);
        match failure {
            Some(step_rc) if rc == ffi::SQLITE_OK => Err(code_text(step_rc)),
            Some(_) => Err(dest.message()),
            None if rc != ffi::SQLITE_OK => Err(dest.message()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_urls() {
        assert_eq!(
            database_path("sqlite:///var/lib/app.db").unwrap(),
            Path::new("/var/lib/app.db")
        );
        assert_eq!(
            database_path("sqlite:/var/lib/app.db?mode=ro").unwrap(),
            Path::new("/var/lib/app.db")
        );
        assert!(database_path("sqlite::memory:").is_err());
        assert!(database_path("sqlite:///x.db?mode=memory").is_err());
        assert!(database_path("postgres://h/db").is_err());
    }
}
