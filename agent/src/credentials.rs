//! `warden check --connect`: a preflight of every target's credentials.
//!
//! Without `--connect`, `warden check` connects to nothing. With it, the
//! agent connects to every target some grant names (and to every target a
//! grant may restore into, `restore_to`), concurrently, each within
//! [`CONNECT_TIMEOUT`], with exactly the credentials the grants' calls would
//! use ([`Target::url_for`]: `read` calls use the read URL when one is set,
//! every other call, dumps and restores the main URL), and reports, one line
//! per problem, grouped by target:
//!
//! - **errors** (exit status 2): a URL that cannot log in (unreachable, wrong
//!   password, no such role or database, no CONNECT), and every privilege a
//!   granted capability needs that the role lacks, each with the grant
//!   (plugin, file, line) and the fix (exact SQL);
//! - **warnings**: rights beyond what the grants need (the second wall under
//!   the statement classifier), and gaps that make a plugin see less than
//!   it could.
//!
//! What each capability needs is known to the host, per capability class
//! and per capability (it does not depend on the plugin):
//!
//! | grant | PostgreSQL | MongoDB (`connectionStatus`, `showPrivileges`) | SQLite |
//! |---|---|---|---|
//! | `read` | warns on superuser, `pg_signal_backend`, `pg_*_server_*`, `CREATEROLE`; on tables without SELECT; without `pg_read_all_stats` when `pg_stat_statements` is installed (other roles' statements are hidden) | `find`, `listCollections` on the URL's database; warns on `root`, `userAdminAnyDatabase`, ... | the file exists and is a SQLite database |
//! | `maintenance` | every table: owner (or member of its owner), database owner, or `MAINTAIN` (17+, `pg_maintain`): else VACUUM/ANALYZE skip it with a mere warning | `compact`, `collMod` | the file and its folder are writable (journal, VACUUM's copy) |
//! | `ddl` | owner of every table (CREATE INDEX) | `createIndex`, `dropIndex` | as `maintenance` |
//! | `write` | (depends on the statements: not checked) | `insert`, `update`, `remove` | as `maintenance` |
//! | `session-control` | `pg_signal_backend` | `inprog`, `killop` on the cluster | – |
//! | `artifacts` (dump) | USAGE on every schema, SELECT on every table and sequence (`pg_dump`), no row-level security in the way | `find`, `listCollections`, `listIndexes` | readable |
//! | `restore_to` (a scratch target) | CREATE on the database and on `public`; every non-built-in extension of the source available there, and trusted (else only a superuser can create it) and not owned by another role (a clean restore drops it) | `insert`, `createCollection`, `createIndex`, `dropCollection` | the folder is writable |
//!
//! The dumped schemas are a plugin parameter, unknown here: every schema
//! outside the system ones is checked. A MongoDB connection that logs in as
//! no user (access control off) is not judged.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use warden::agent::inspect;
//! let mut found = inspect(std::path::Path::new("warden.toml")).await?;
//! warden::credentials::check_inspection(&mut found).await;
//! for e in found.diagnostics.errors() {
//!     eprintln!("{e}");
//! }
//! # Ok(()) }
//! ```

use crate::ident::quote as ident;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};

use crate::capability::{CapabilityClass, TargetKind};
use crate::config::{Config, Secret, Target};
use crate::diag::{DiagKind, Diagnostic};
use crate::policy::{Grant, PolicySet};
use crate::secrets::Redactor;

/// Longest the check waits to connect to one URL, and for its answers.
/// The targets are checked concurrently.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The first OID of objects made after `initdb` (`FirstNormalObjectId`):
/// extensions below it (`plpgsql`) are built in and not dumped.
const FIRST_NORMAL_OID: i64 = 16384;

/// Most relations named in one line; the rest are counted.
const MAX_LISTED: usize = 20;

/// The predefined PostgreSQL roles a `read` role must not be in, each with
/// what it allows.
pub const PG_READ_FORBIDDEN_ROLES: [(&str, &str); 4] = [
    (
        "pg_signal_backend",
        "can cancel and terminate other sessions",
    ),
    (
        "pg_read_server_files",
        "can read any file the server can (COPY FROM, pg_read_file)",
    ),
    (
        "pg_write_server_files",
        "can write any file the server can (COPY TO a file)",
    ),
    (
        "pg_execute_server_program",
        "can run programs on the server (COPY ... PROGRAM)",
    ),
];

/// MongoDB roles a `read` user must not have (`db` empty: on any
/// database), each with what it allows.
const MONGO_READ_FORBIDDEN_ROLES: [(&str, &str, &str); 7] = [
    ("root", "", "can do anything"),
    ("__system", "", "can do anything"),
    ("userAdminAnyDatabase", "", "can grant itself any role"),
    ("userAdmin", "admin", "can grant itself any role"),
    ("dbOwner", "admin", "can grant itself any role"),
    (
        "clusterAdmin",
        "",
        "can kill operations and shut the server down",
    ),
    (
        "hostManager",
        "",
        "can kill operations and shut the server down",
    ),
];

/// MongoDB roles the main URL should not have.
const MONGO_MAIN_FORBIDDEN_ROLES: [&str; 2] = ["root", "__system"];

/// Why a URL could not be checked, as far as the fix goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeFailure {
    /// No answer within [`CONNECT_TIMEOUT`].
    Timeout,
    /// The server could not be reached (refused, no route, TLS).
    Unreachable,
    /// The server refused the password (or the user).
    Password,
    /// The role does not exist, may not log in, or `pg_hba.conf` has no
    /// entry for it.
    LoginRefused,
    /// The database named in the URL does not exist.
    NoDatabase,
    /// The role lacks CONNECT on the database.
    NoConnect,
    /// The URL itself is not valid.
    BadUrl,
    /// Anything else.
    Other,
}

/// A probe that could not be made; the message is redacted.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ProbeError {
    pub failure: ProbeFailure,
    pub message: String,
}

impl ProbeError {
    fn timeout() -> ProbeError {
        ProbeError {
            failure: ProbeFailure::Timeout,
            message: format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
        }
    }

    fn pg(e: &sqlx::Error, redactor: &Redactor) -> ProbeError {
        let failure = match e {
            sqlx::Error::Database(db) => match db.code().as_deref() {
                Some("28P01") => ProbeFailure::Password,
                Some("28000") => ProbeFailure::LoginRefused,
                Some("3D000") => ProbeFailure::NoDatabase,
                Some("42501") => ProbeFailure::NoConnect,
                _ => ProbeFailure::Other,
            },
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) => ProbeFailure::Unreachable,
            sqlx::Error::Configuration(_) => ProbeFailure::BadUrl,
            _ => ProbeFailure::Other,
        };
        ProbeError {
            failure,
            message: redactor.redact(&e.to_string()),
        }
    }

    fn mongo(e: &mongodb::error::Error, redactor: &Redactor) -> ProbeError {
        use mongodb::error::ErrorKind;
        let failure = match &*e.kind {
            ErrorKind::Authentication { .. } => ProbeFailure::Password,
            ErrorKind::ServerSelection { .. } | ErrorKind::Io(_) | ErrorKind::DnsResolve { .. } => {
                ProbeFailure::Unreachable
            }
            ErrorKind::InvalidArgument { .. } => ProbeFailure::BadUrl,
            _ => ProbeFailure::Other,
        };
        ProbeError {
            failure,
            message: redactor.redact(&e.to_string()),
        }
    }
}

/// What one probe of a PostgreSQL URL found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgRole {
    /// The role the URL logs in as (`session_user`).
    pub name: String,
    pub superuser: bool,
    pub createrole: bool,
    /// The roles of [`PG_READ_FORBIDDEN_ROLES`] it is a member of, in that
    /// order (all of them for a superuser).
    pub member_of: Vec<String>,
    /// `current_database()`.
    pub database: String,
    /// `pg_control_system().system_identifier`, when the role may read it.
    pub system_identifier: Option<i64>,
}

impl PgRole {
    /// Why this role should not answer `read` calls; empty when it is fit.
    pub fn read_problems(&self) -> Vec<String> {
        if self.superuser {
            return vec![
                "is a superuser (it can signal any backend, read and write server files and \
                 run programs on the server)"
                    .to_owned(),
            ];
        }
        let mut problems: Vec<String> = PG_READ_FORBIDDEN_ROLES
            .iter()
            .filter(|(role, _)| self.member_of.iter().any(|m| m == role))
            .map(|(role, what)| format!("is a member of `{role}` ({what})"))
            .collect();
        if self.createrole {
            problems.push(
                "has CREATEROLE (it can create roles and, before PostgreSQL 16, grant itself \
                 any of the above)"
                    .to_owned(),
            );
        }
        problems
    }
}

/// A table, materialized view or sequence outside the system schemas (and
/// not part of an extension), with what the probed role may do to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgRelation {
    pub schema: String,
    pub name: String,
    /// `pg_class.relkind`: `r`, `p`, `m` or `S`.
    pub kind: char,
    pub owner: String,
    /// The role owns it, or has its owner's rights (a member that inherits).
    pub owned: bool,
    /// SELECT on it.
    pub select: bool,
    /// The `MAINTAIN` privilege (PostgreSQL 17+; false before).
    pub maintain: bool,
    /// USAGE on its schema.
    pub schema_usage: bool,
    /// Row-level security applies to the role (enabled, and the role is not
    /// the owner, or it is forced), so `pg_dump` (`row_security = off`)
    /// fails on it, unless the role has BYPASSRLS.
    pub row_security: bool,
}

impl PgRelation {
    fn is_sequence(&self) -> bool {
        self.kind == 'S'
    }

    fn qualified(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.name))
    }
}

/// Everything the check needs to know about one PostgreSQL login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgFacts {
    pub role: PgRole,
    /// `server_version_num`, like 150013.
    pub version: i32,
    pub bypassrls: bool,
    /// Has the rights of `pg_signal_backend`.
    pub signal_backend: bool,
    /// Has the rights of `pg_read_all_stats`.
    pub read_all_stats: bool,
    /// Owns the database (or has its owner's rights).
    pub database_owner: bool,
    /// CREATE on the database (new schemas, trusted extensions).
    pub create_on_database: bool,
    /// CREATE on schema `public`, when it exists.
    pub create_on_public: Option<bool>,
    pub relations: Vec<PgRelation>,
    /// Installed extensions that are not built in: name, and whether the
    /// role owns it.
    pub extensions: Vec<(String, bool)>,
    /// The extensions the server could install, and whether some version
    /// of each is trusted (a non-superuser with CREATE may install it).
    pub available: BTreeMap<String, bool>,
}

/// Logs in with `url` and asks what the role may do.
pub async fn probe_pg(url: &Secret, redactor: &Redactor) -> Result<PgFacts, ProbeError> {
    let failed = |e: sqlx::Error| ProbeError::pg(&e, redactor);
    let timeout_ms = CONNECT_TIMEOUT.as_millis().to_string();
    let options = PgConnectOptions::from_str(url.expose())
        .map_err(failed)?
        .application_name("warden/check")
        .options([("statement_timeout", timeout_ms.as_str())]);
    let probe = async {
        let mut conn = options.connect().await.map_err(failed)?;
        let facts = pg_facts(&mut conn).await.map_err(failed);
        let _ = conn.close().await;
        facts
    };
    tokio::time::timeout(CONNECT_TIMEOUT, probe)
        .await
        .map_err(|_| ProbeError::timeout())?
}

async fn pg_facts(conn: &mut PgConnection) -> Result<PgFacts, sqlx::Error> {
    let forbidden: Vec<&str> = PG_READ_FORBIDDEN_ROLES.iter().map(|(r, _)| *r).collect();
    type RoleRow = (
        String,
        bool,
        bool,
        bool,
        String,
        Vec<String>,
        i32,
        bool,
        bool,
        Option<bool>,
        bool,
        Option<bool>,
    );
    let (
        name,
        superuser,
        createrole,
        bypassrls,
        database,
        member_of,
        version,
        signal_backend,
        read_all_stats,
        database_owner,
        create_on_database,
        create_on_public,
    ): RoleRow = sqlx::query_as(
        "SELECT s.rolname::text, s.rolsuper, s.rolcreaterole, s.rolbypassrls,
                current_database()::text,
                ARRAY(SELECT w.name
                      FROM unnest($1::text[]) WITH ORDINALITY AS w(name, n)
                      JOIN pg_roles p ON p.rolname = w.name
                      WHERE pg_has_role(s.oid, p.oid, 'MEMBER')
                      ORDER BY w.n),
                current_setting('server_version_num')::int4,
                pg_has_role(s.oid, 'pg_signal_backend', 'USAGE'),
                pg_has_role(s.oid, 'pg_read_all_stats', 'USAGE'),
                (SELECT pg_has_role(s.oid, d.datdba, 'USAGE') FROM pg_database d
                 WHERE d.datname = current_database()),
                has_database_privilege(s.oid, current_database(), 'CREATE'),
                (SELECT has_schema_privilege(s.oid, n.oid, 'CREATE') FROM pg_namespace n
                 WHERE n.nspname = 'public')
         FROM pg_roles s WHERE s.rolname = session_user",
    )
    .bind(&forbidden)
    .fetch_one(&mut *conn)
    .await?;
    // Not every role may call it (nor every server have it): optional.
    let system_identifier: Option<i64> =
        sqlx::query_scalar("SELECT system_identifier FROM pg_control_system()")
            .fetch_one(&mut *conn)
            .await
            .ok();
    // MAINTAIN exists from PostgreSQL 17 on; asking for it before is an
    // error.
    let maintain = if version >= 170_000 {
        "CASE WHEN c.relkind = 'S' THEN false ELSE has_table_privilege(c.oid, 'MAINTAIN') END"
    } else {
        "false"
    };
    let sql = format!(
        "SELECT n.nspname::text, c.relname::text, c.relkind::text,
                pg_get_userbyid(c.relowner)::text,
                pg_has_role(c.relowner, 'USAGE'),
                CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'SELECT')
                     ELSE has_table_privilege(c.oid, 'SELECT') END,
                {maintain},
                has_schema_privilege(n.oid, 'USAGE'),
                c.relrowsecurity AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE'))
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'm', 'S')
           AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d
                           WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                             AND d.deptype = 'e')
         ORDER BY 1, 2"
    );
    type RelationRow = (String, String, String, String, bool, bool, bool, bool, bool);
    let rows: Vec<RelationRow> = sqlx::query_as(&sql).fetch_all(&mut *conn).await?;
    let relations = rows
        .into_iter()
        .map(
            |(schema, name, kind, owner, owned, select, maintain, schema_usage, row_security)| {
                PgRelation {
                    schema,
                    name,
                    kind: kind.chars().next().unwrap_or('r'),
                    owner,
                    owned,
                    select,
                    maintain,
                    schema_usage,
                    row_security,
                }
            },
        )
        .collect();
    let extensions: Vec<(String, bool)> = sqlx::query_as(
        "SELECT e.extname::text, pg_has_role(e.extowner, 'USAGE') FROM pg_extension e
         WHERE e.oid::int8 >= $1 ORDER BY 1",
    )
    .bind(FIRST_NORMAL_OID)
    .fetch_all(&mut *conn)
    .await?;
    let available: Vec<(String, bool)> = sqlx::query_as(
        "SELECT name::text, coalesce(bool_or(trusted), false)
         FROM pg_available_extension_versions GROUP BY name",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(PgFacts {
        role: PgRole {
            name,
            superuser,
            createrole,
            member_of,
            database,
            system_identifier,
        },
        version,
        bypassrls,
        signal_backend,
        read_all_stats,
        database_owner: database_owner.unwrap_or(false),
        create_on_database,
        create_on_public,
        relations,
        extensions,
        available: available.into_iter().collect(),
    })
}

/// Up to [`MAX_LISTED`] of `names`, then how many more.
fn listed(names: &[String]) -> String {
    let mut text = names
        .iter()
        .take(MAX_LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX_LISTED {
        text.push_str(&format!(" and {} more", names.len() - MAX_LISTED));
    }
    text
}

/// The user, roles and privileges a MongoDB URL logs in with
/// (`connectionStatus` with `showPrivileges`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MongoRoles {
    /// `user@db` of each authenticated user; empty without access control.
    pub users: Vec<String>,
    /// `(role, db)` of each role.
    pub roles: Vec<(String, String)>,
    /// What the roles allow, resource by resource.
    pub privileges: Vec<MongoPrivilege>,
    /// The database the URL names (`/db`), the one dumps and calls use by
    /// default.
    pub database: Option<String>,
}

/// A resource and the actions allowed on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MongoPrivilege {
    pub resource: MongoResource,
    pub actions: BTreeSet<String>,
}

/// A privilege's resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MongoResource {
    /// `{db, collection}`; empty strings mean any.
    Namespace { db: String, collection: String },
    /// `{cluster: true}`.
    Cluster,
    /// `{anyResource: true}`.
    Any,
}

impl MongoRoles {
    /// From a `connectionStatus` reply.
    pub fn from_status(reply: &bson::Document) -> MongoRoles {
        let auth = reply.get_document("authInfo").ok();
        let pairs = |field: &str, key: &str| -> Vec<(String, String)> {
            auth.and_then(|a| a.get_array(field).ok())
                .map(|list| {
                    list.iter()
                        .filter_map(bson::Bson::as_document)
                        .filter_map(|d| {
                            Some((
                                d.get_str(key).ok()?.to_owned(),
                                d.get_str("db").ok()?.to_owned(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let privileges = auth
            .and_then(|a| a.get_array("authenticatedUserPrivileges").ok())
            .map(|list| {
                list.iter()
                    .filter_map(bson::Bson::as_document)
                    .filter_map(MongoPrivilege::from_document)
                    .collect()
            })
            .unwrap_or_default();
        MongoRoles {
            users: pairs("authenticatedUsers", "user")
                .into_iter()
                .map(|(user, db)| format!("{user}@{db}"))
                .collect(),
            roles: pairs("authenticatedUserRoles", "role"),
            privileges,
            database: None,
        }
    }

    /// Why these credentials should not answer `read` calls.
    pub fn read_problems(&self) -> Vec<String> {
        MONGO_READ_FORBIDDEN_ROLES
            .iter()
            .filter_map(|(role, on, what)| {
                let (_, db) = self
                    .roles
                    .iter()
                    .find(|(r, db)| r == role && (on.is_empty() || db == on))?;
                Some(format!("has role `{role}` on `{db}` ({what})"))
            })
            .collect()
    }

    /// Why these credentials should not answer the other calls either.
    pub fn main_problems(&self) -> Vec<String> {
        self.roles
            .iter()
            .filter(|(role, _)| MONGO_MAIN_FORBIDDEN_ROLES.contains(&role.as_str()))
            .map(|(role, db)| format!("has role `{role}` on `{db}` (it can do anything)"))
            .collect()
    }

    /// Whether access control applies (someone logged in): without it,
    /// nothing is judged.
    pub fn judged(&self) -> bool {
        !self.users.is_empty()
    }

    /// Which of `actions` the privileges do not allow on `on` (a database,
    /// its non-system collections; `None`: the cluster).
    pub fn missing(&self, on: Option<&str>, actions: &[&str]) -> Vec<String> {
        actions
            .iter()
            .filter(|action| {
                !self.privileges.iter().any(|p| {
                    p.actions.contains(**action)
                        && match (&p.resource, on) {
                            (MongoResource::Any, _) => true,
                            (MongoResource::Cluster, None) => true,
                            (MongoResource::Namespace { db, collection }, Some(on)) => {
                                collection.is_empty() && (db.is_empty() || db == on)
                            }
                            _ => false,
                        }
                })
            })
            .map(|a| (*a).to_owned())
            .collect()
    }

    fn who(&self) -> String {
        match self.users.as_slice() {
            [] => "no user".to_owned(),
            users => users
                .iter()
                .map(|u| format!("`{u}`"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// The first authenticated user's name and database, for fixes.
    fn user(&self) -> (String, String) {
        self.users
            .first()
            .and_then(|u| u.rsplit_once('@'))
            .map(|(u, db)| (u.to_owned(), db.to_owned()))
            .unwrap_or_else(|| ("USER".to_owned(), "admin".to_owned()))
    }
}

impl MongoPrivilege {
    fn from_document(d: &bson::Document) -> Option<MongoPrivilege> {
        let resource = d.get_document("resource").ok()?;
        let resource = if resource.get_bool("anyResource").unwrap_or(false) {
            MongoResource::Any
        } else if resource.get_bool("cluster").unwrap_or(false) {
            MongoResource::Cluster
        } else {
            MongoResource::Namespace {
                db: resource.get_str("db").ok()?.to_owned(),
                collection: resource.get_str("collection").ok()?.to_owned(),
            }
        };
        let actions = d
            .get_array("actions")
            .ok()?
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect();
        Some(MongoPrivilege { resource, actions })
    }
}

/// Logs in with `url` and runs `connectionStatus` (with its privileges).
pub async fn probe_mongo(url: &Secret, redactor: &Redactor) -> Result<MongoRoles, ProbeError> {
    let failed = |e: mongodb::error::Error| ProbeError::mongo(&e, redactor);
    let probe = async {
        let mut options = mongodb::options::ClientOptions::parse(url.expose())
            .await
            .map_err(failed)?;
        options.app_name = Some("warden/check".to_owned());
        options.server_selection_timeout = Some(CONNECT_TIMEOUT);
        options.connect_timeout = Some(CONNECT_TIMEOUT);
        let database = options.default_database.clone();
        let client = mongodb::Client::with_options(options).map_err(failed)?;
        let reply = client
            .database("admin")
            .run_command(bson::doc! { "connectionStatus": 1, "showPrivileges": true })
            .await
            .map_err(failed);
        client.shutdown().await;
        let mut roles = MongoRoles::from_status(&reply?);
        roles.database = database;
        Ok(roles)
    };
    tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(1), probe)
        .await
        .map_err(|_| ProbeError::timeout())?
}

/// What the check found about a SQLite target's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteFacts {
    pub path: PathBuf,
    /// Why the file cannot be read as a SQLite database, if it cannot.
    pub unreadable: Option<String>,
    /// Whether the file exists and may be written.
    pub writable: bool,
    /// Whether its folder may be written (journals, VACUUM's copy, a
    /// restore that creates the file).
    pub folder_writable: bool,
}

/// The header every SQLite database file starts with.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Looks at the file a `sqlite:` URL names (without opening it as a
/// database: nothing is created or locked).
pub fn probe_sqlite(url: &Secret) -> Result<SqliteFacts, String> {
    let options = SqliteConnectOptions::from_str(url.expose())
        .map_err(|e| format!("not a SQLite URL: {e}"))?;
    let path = options.get_filename().to_path_buf();
    let text = path.to_string_lossy();
    if text.is_empty() || text.starts_with(':') || text.starts_with("file:") {
        return Err("an in-memory SQLite database has nothing to check".to_owned());
    }
    let unreadable = match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Some("the file does not exist".to_owned())
        }
        Err(e) => Some(format!("cannot read the file: {e}")),
        Ok(meta) if !meta.is_file() => Some("it is not a regular file".to_owned()),
        Ok(meta) if meta.len() == 0 => None,
        Ok(_) => {
            use std::io::Read as _;
            let mut header = [0u8; 16];
            match std::fs::File::open(&path).and_then(|mut f| f.read_exact(&mut header)) {
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    Some("it is not a SQLite database (too short)".to_owned())
                }
                Err(e) => Some(format!("cannot read the file: {e}")),
                Ok(()) if &header != SQLITE_HEADER => {
                    Some("it is not a SQLite database (no SQLite header)".to_owned())
                }
                Ok(()) => None,
            }
        }
    };
    let writable = path.is_file() && may_access(&path, libc::W_OK);
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let folder_writable = may_access(&folder, libc::W_OK | libc::X_OK);
    Ok(SqliteFacts {
        path,
        unreadable,
        writable,
        folder_writable,
    })
}

/// `access(2)`: whether this process may use `path` so.
fn may_access(path: &Path, mode: libc::c_int) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c_path` is a valid NUL-terminated string for the call.
    unsafe { libc::access(c_path.as_ptr(), mode) == 0 }
}

/// What [`check`] found.
#[derive(Debug, Default)]
pub struct Findings {
    /// URLs that could not log in, and privileges a grant needs that the
    /// role lacks.
    pub errors: Vec<Diagnostic>,
    /// Credentials that may do more than their grants need, and gaps that
    /// make plugins see less.
    pub warnings: Vec<Diagnostic>,
    /// How many targets were connected to (or tried).
    pub targets: usize,
}

/// Runs [`check`] on an inspection (when its policies loaded), adding what
/// it finds to the inspection's diagnostics. Returns how many
/// targets it connected to.
pub async fn check_inspection(found: &mut crate::agent::Inspection) -> usize {
    if found
        .diagnostics
        .errors()
        .any(|d| d.kind == DiagKind::Policy)
    {
        return 0;
    }
    let redactor = crate::agent::redactor_for(&found.config);
    let findings = check(&found.config, &found.loaded.policies, &redactor).await;
    found.diagnostics.extend(
        findings
            .errors
            .into_iter()
            .map(|d| d.kind(DiagKind::Credentials)),
    );
    found.diagnostics.extend(
        findings
            .warnings
            .into_iter()
            .map(|d| d.kind(DiagKind::Credentials).warning()),
    );
    findings.targets
}

/// How the grants use one target's credentials.
struct Uses<'a> {
    index: usize,
    target: &'a Target,
    /// The grants on this target.
    grants: Vec<&'a Grant>,
    /// Grants on other targets that may restore into this one
    /// (`restore_to`), each with its source's index among `[[target]]`s.
    restores: Vec<(&'a Grant, usize)>,
}

impl<'a> Uses<'a> {
    /// The grants with `class`.
    fn with(&self, class: CapabilityClass) -> Vec<&'a Grant> {
        self.grants
            .iter()
            .copied()
            .filter(|g| g.classes.contains(&class))
            .collect()
    }

    /// The grants that may dump this target (`artifacts`).
    fn dumps(&self) -> Vec<&'a Grant> {
        self.grants
            .iter()
            .copied()
            .filter(|g| !g.artifacts.is_empty())
            .collect()
    }

    /// Whether `read` calls use a URL of their own.
    fn split(&self) -> bool {
        self.target.read_url().is_some()
    }
}

/// One login's answers.
#[derive(Debug)]
enum Login {
    Pg(Box<PgFacts>),
    Mongo(MongoRoles),
    Sqlite(SqliteFacts),
}

/// What the probes of one target found: the read URL (when `read` calls
/// use a URL of their own) and the main URL.
struct Probed {
    read: Option<Result<Login, ProbeError>>,
    main: Result<Login, ProbeError>,
}

/// Connects to every target some grant names or may restore into, with the
/// credentials its calls would use, and checks what the roles may do (see
/// the module documentation). Targets are probed concurrently.
pub async fn check(config: &Config, policies: &PolicySet, redactor: &Redactor) -> Findings {
    let uses: Vec<Uses<'_>> = config
        .targets
        .iter()
        .enumerate()
        .filter_map(|(index, target)| {
            let grants: Vec<&Grant> = policies
                .grants
                .iter()
                .filter(|g| g.target == target.name)
                .collect();
            let restores: Vec<(&Grant, usize)> = policies
                .grants
                .iter()
                .filter(|g| g.restore_to.contains(&target.name))
                .filter_map(|g| {
                    let source = config.targets.iter().position(|t| t.name == g.target)?;
                    Some((g, source))
                })
                .collect();
            (!grants.is_empty() || !restores.is_empty()).then_some(Uses {
                index,
                target,
                grants,
                restores,
            })
        })
        .collect();
    let probed: Vec<Probed> =
        futures_util::future::join_all(uses.iter().map(|u| probe_target(u, redactor))).await;
    // The main login of each target, by index, for restore checks.
    let mains: BTreeMap<usize, &Login> = uses
        .iter()
        .zip(&probed)
        .filter_map(|(u, p)| Some((u.index, p.main.as_ref().ok()?)))
        .collect();
    let mut findings = Findings {
        targets: uses.len(),
        ..Findings::default()
    };
    for (u, p) in uses.iter().zip(&probed) {
        let place = Place {
            config,
            uses: u,
            findings: &mut findings,
        };
        place.judge(p, &mains);
    }
    findings
}

async fn probe_target(uses: &Uses<'_>, redactor: &Redactor) -> Probed {
    let target = uses.target;
    let login = |url: &Secret| {
        let url = url.clone();
        async move {
            match target.kind {
                TargetKind::Postgres => probe_pg(&url, redactor)
                    .await
                    .map(|f| Login::Pg(Box::new(f))),
                TargetKind::Mongodb => probe_mongo(&url, redactor).await.map(Login::Mongo),
                TargetKind::Sqlite => {
                    probe_sqlite(&url)
                        .map(Login::Sqlite)
                        .map_err(|message| ProbeError {
                            failure: ProbeFailure::BadUrl,
                            message,
                        })
                }
            }
        }
    };
    let reads = !uses.with(CapabilityClass::Read).is_empty();
    match target.read_url().filter(|_| reads) {
        Some(read_url) => {
            let (read, main) = tokio::join!(login(read_url), login(&target.url));
            Probed {
                read: Some(read),
                main,
            }
        }
        None => Probed {
            read: None,
            main: login(&target.url).await,
        },
    }
}

/// Which credentials of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Read,
    Main,
}

/// One target being judged.
struct Place<'a, 'f> {
    config: &'a Config,
    uses: &'a Uses<'a>,
    findings: &'f mut Findings,
}

impl Place<'_, '_> {
    fn name(&self) -> &str {
        &self.uses.target.name
    }

    /// Which URL `read` calls use, for messages.
    fn read_source(&self) -> &'static str {
        if self.uses.split() {
            "the read URL (`read_url_env`/`read_url_file`)"
        } else {
            "the main URL (no `read_url_env` or `read_url_file` is set)"
        }
    }

    fn source(&self, which: Which) -> &'static str {
        match which {
            Which::Read => "the read URL (`read_url_env`/`read_url_file`)",
            Which::Main => "the main URL",
        }
    }

    fn error_at(&mut self, grant: &Grant, message: String) {
        self.findings.errors.push(at_grant(grant, message));
    }

    fn warn_at(&mut self, grant: &Grant, message: String) {
        self.findings.warnings.push(at_grant(grant, message));
    }

    fn at_target(&self, message: String) -> Diagnostic {
        Diagnostic::new(
            &self.config.file,
            format!("target[{}]", self.uses.index),
            message,
        )
    }

    fn judge(mut self, probed: &Probed, mains: &BTreeMap<usize, &Login>) {
        if let Some(Err(e)) = &probed.read {
            self.unreachable(Which::Read, e);
        }
        if let Err(e) = &probed.main {
            self.unreachable(Which::Main, e);
        }
        let main = probed.main.as_ref().ok();
        let read = match &probed.read {
            Some(read) => read.as_ref().ok(),
            None => main,
        };
        match (read, main) {
            (read, Some(Login::Pg(main))) => {
                let read = match read {
                    Some(Login::Pg(r)) => Some(&**r),
                    _ => None,
                };
                self.judge_pg(read, Some(main), mains);
            }
            (Some(Login::Pg(read)), None) => self.judge_pg(Some(read), None, mains),
            (read, Some(Login::Mongo(main))) => {
                let read = match read {
                    Some(Login::Mongo(r)) => Some(r),
                    _ => None,
                };
                self.judge_mongo(read, Some(main));
            }
            (Some(Login::Mongo(read)), None) => self.judge_mongo(Some(read), None),
            (_, Some(Login::Sqlite(file))) => self.judge_sqlite(file),
            _ => {}
        }
    }

    /// A URL that could not log in: an error at the target in the config,
    /// with what uses it and the fix.
    fn unreachable(&mut self, which: Which, error: &ProbeError) {
        let uses = self.uses;
        let url = match which {
            Which::Read => uses.target.url_for(CapabilityClass::Read),
            Which::Main => &uses.target.url,
        };
        let (user, database) = url_names(uses.target.kind, url);
        let source = self.source(which);
        let fix = match error.failure {
            ProbeFailure::Timeout | ProbeFailure::Unreachable => {
                "make the database reachable from here (host, port, firewall, TLS), or run \
                 `warden check` without `--connect`"
                    .to_owned()
            }
            ProbeFailure::Password => match uses.target.kind {
                TargetKind::Mongodb => format!(
                    "put the right user and password in {source}, or set it on the server \
                     (`db.getSiblingDB(\"admin\").changeUserPassword(\"{user}\", \"...\")`)"
                ),
                _ => format!(
                    "put the right password of role `{user}` in {source}, or set it on the \
                     server (`ALTER ROLE {} PASSWORD '...';`)",
                    ident(&user)
                ),
            },
            ProbeFailure::LoginRefused => format!(
                "create the role with LOGIN (`CREATE ROLE {} LOGIN PASSWORD '...';`), or \
                 allow it to connect from here in pg_hba.conf",
                ident(&user)
            ),
            ProbeFailure::NoDatabase => {
                format!("create database `{database}`, or name an existing database in {source}")
            }
            ProbeFailure::NoConnect => format!(
                "`GRANT CONNECT ON DATABASE {} TO {};`",
                ident(&database),
                ident(&user)
            ),
            ProbeFailure::BadUrl => format!("correct {source}"),
            ProbeFailure::Other => "correct what the server says, then check again".to_owned(),
        };
        let served: Vec<&Grant> = match which {
            Which::Read => uses.with(CapabilityClass::Read),
            Which::Main => uses.grants.clone(),
        };
        let serves = if served.is_empty() {
            "restores into it".to_owned()
        } else {
            format!("the calls {}", granted_to(&served))
        };
        let message = format!(
            "target `{}`: cannot check the role of {source}: {error}; it serves {serves}. \
             Fix: {fix}",
            self.name()
        );
        let diagnostic = self.at_target(message);
        self.findings.errors.push(diagnostic);
    }

    fn judge_pg(
        &mut self,
        read: Option<&PgFacts>,
        main: Option<&PgFacts>,
        mains: &BTreeMap<usize, &Login>,
    ) {
        let uses = self.uses;
        let name = self.name().to_owned();
        let reads = uses.with(CapabilityClass::Read);
        if let (Some(read), Some(grant)) = (read, reads.first().copied()) {
            self.pg_read(read, grant, &reads);
        }
        let Some(main) = main else {
            return;
        };
        let role = ident(&main.role.name);
        if let Some(grant) = beyond_read(&uses.grants).filter(|_| main.role.superuser) {
            self.warn_at(
                grant,
                format!(
                    "target `{name}`: calls other than `read` (maintenance, ddl, write, \
                     session-control, dumps) connect with the main URL as role `{}`, a \
                     superuser, which can do anything on the server. Fix: connect as a \
                     role that owns the tables it maintains (or has `pg_maintain` on \
                     PostgreSQL 17+), in `pg_signal_backend` only if a grant gives \
                     `session-control` (see \"Recommended database roles\" in the README)",
                    main.role.name
                ),
            );
        }
        if let Some(read) = read.filter(|_| uses.split()) {
            self.pg_same_database(read, main);
        }
        if !main.role.superuser {
            let maint = uses.with(CapabilityClass::Maintenance);
            if let Some(grant) = maint.first().copied() {
                self.pg_maintenance(main, grant, &maint);
            }
            let ddl = uses.with(CapabilityClass::Ddl);
            if let Some(grant) = ddl.first().copied() {
                let cannot: Vec<&PgRelation> = main
                    .relations
                    .iter()
                    .filter(|r| !r.is_sequence() && !r.owned)
                    .collect();
                for (owner, tables) in by_owner(&cannot) {
                    self.error_at(
                        grant,
                        format!(
                            "target `{name}`: `ddl` calls ({}) connect with the main URL as role \
                             `{}`, which cannot CREATE or DROP an INDEX on {} table(s) owned by \
                             `{owner}` (only a table's owner may): {}. Fix: `GRANT {} TO {role};` \
                             (or `ALTER TABLE ... OWNER TO {role};` for each)",
                            granted_to(&ddl),
                            main.role.name,
                            tables.len(),
                            listed(&tables),
                            ident(&owner)
                        ),
                    );
                }
            }
            let sessions = uses.with(CapabilityClass::SessionControl);
            if let Some(grant) = sessions.first().copied().filter(|_| !main.signal_backend) {
                self.error_at(
                    grant,
                    format!(
                        "target `{name}`: `session-control` calls ({}) connect with the main URL \
                         as role `{}`, which is not in `pg_signal_backend`: it can cancel and \
                         terminate only its own sessions. Fix: `GRANT pg_signal_backend TO \
                         {role};`",
                        granted_to(&sessions),
                        main.role.name
                    ),
                );
            }
            let dumps = uses.dumps();
            if let Some(grant) = dumps.first().copied() {
                self.pg_dump(main, grant, &dumps);
            }
        }
        for (grant, source) in &uses.restores {
            let source = match mains.get(source) {
                Some(Login::Pg(facts)) => Some(&**facts),
                _ => None,
            };
            self.pg_restore_into(main, grant, source);
        }
    }

    /// `read` calls: rights beyond reading (warnings), and what the role
    /// cannot see (warnings: a plugin sees less, but runs).
    fn pg_read(&mut self, read: &PgFacts, grant: &Grant, reads: &[&Grant]) {
        let name = self.name().to_owned();
        let role = ident(&read.role.name);
        let problems = read.role.read_problems();
        if !problems.is_empty() {
            let fix = if self.uses.split() {
                format!(
                    "give the read URL a role with only CONNECT, USAGE, SELECT and \
                     `pg_monitor` (like `warden_read`, see \"Recommended database roles\" \
                     in the README) instead of `{}`, or take those rights from it",
                    read.role.name
                )
            } else {
                format!(
                    "create a role with only CONNECT, USAGE, SELECT and `pg_monitor` \
                     (like `warden_read`, see \"Recommended database roles\" in the \
                     README) and set `read_url_env` (or `read_url_file`) of target \
                     `{name}` to its URL"
                )
            };
            self.warn_at(
                grant,
                format!(
                    "target `{name}`: `read` calls ({}) connect with {} as role `{}`, \
                     which {}: a `read` grant needs none of that. Fix: {fix}",
                    granted_to(reads),
                    self.read_source(),
                    read.role.name,
                    problems.join(", ")
                ),
            );
        }
        if read.role.superuser {
            return;
        }
        let statements = read
            .extensions
            .iter()
            .any(|(e, _)| e == "pg_stat_statements");
        if statements && !read.read_all_stats {
            self.warn_at(
                grant,
                format!(
                    "target `{name}`: `read` calls ({}) connect as role `{}`, which is not in \
                     `pg_read_all_stats`: pg_stat_statements shows it the statements of other \
                     roles as `<insufficient privilege>`, so workload readers (index-advisor) \
                     see only its own. Fix: `GRANT pg_read_all_stats TO {role};` (or \
                     `GRANT pg_monitor TO {role};`)",
                    granted_to(reads),
                    read.role.name
                ),
            );
        }
        let unreadable: Vec<&PgRelation> = read
            .relations
            .iter()
            .filter(|r| !r.is_sequence() && (!r.select || !r.schema_usage))
            .collect();
        for (schema, tables) in by_schema(&unreadable) {
            let no_usage = unreadable
                .iter()
                .any(|r| r.schema == schema && !r.schema_usage);
            let mut fix = Vec::new();
            if no_usage {
                fix.push(format!(
                    "GRANT USAGE ON SCHEMA {} TO {role};",
                    ident(&schema)
                ));
            }
            fix.push(format!(
                "GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {role};",
                ident(&schema)
            ));
            self.warn_at(
                grant,
                format!(
                    "target `{name}`: `read` calls ({}) connect as role `{}`, which cannot read \
                     {} table(s) in schema `{schema}`: {}; queries on them fail and their \
                     plans cannot be explained. Fix: `{}`",
                    granted_to(reads),
                    read.role.name,
                    tables.len(),
                    listed(&tables),
                    fix.join(" ")
                ),
            );
        }
    }

    /// The read URL and the main URL must reach the same database.
    fn pg_same_database(&mut self, read: &PgFacts, main: &PgFacts) {
        let name = self.name().to_owned();
        let other_server = match (read.role.system_identifier, main.role.system_identifier) {
            (Some(a), Some(b)) => a != b,
            _ => false,
        };
        if read.role.database == main.role.database && !other_server {
            return;
        }
        let read_at = if other_server {
            format!("database `{}` of another server", read.role.database)
        } else {
            format!("database `{}`", read.role.database)
        };
        let diagnostic = self.at_target(format!(
            "target `{name}`: the read URL reaches {read_at} but the main URL reaches database \
             `{}`: plugins would read one database and change another. Fix: point both at the \
             same database, with different roles",
            main.role.database
        ));
        self.findings.warnings.push(diagnostic);
    }

    /// `maintenance`: VACUUM and ANALYZE skip, with a mere warning, every
    /// table the role may not maintain.
    fn pg_maintenance(&mut self, main: &PgFacts, grant: &Grant, maint: &[&Grant]) {
        if main.database_owner {
            // Database owners may vacuum and analyze every table in it.
            return;
        }
        let name = self.name().to_owned();
        let role = ident(&main.role.name);
        let cannot: Vec<&PgRelation> = main
            .relations
            .iter()
            .filter(|r| !r.is_sequence() && !r.owned && !r.maintain)
            .collect();
        if cannot.is_empty() {
            return;
        }
        let what = |n: usize, list: &str, owner: &str| {
            format!(
                "target `{name}`: `maintenance` calls ({}) connect with the main URL as role \
                 `{}`, which may not VACUUM or ANALYZE {n} table(s){owner} (PostgreSQL skips \
                 them with only a warning): {list}.",
                granted_to(maint),
                main.role.name
            )
        };
        if main.version >= 170_000 {
            let tables: Vec<String> = cannot.iter().map(|r| r.qualified()).collect();
            self.error_at(
                grant,
                format!(
                    "{} Fix: `GRANT pg_maintain TO {role};` (or `GRANT MAINTAIN ON TABLE ... TO \
                     {role};` for each)",
                    what(tables.len(), &listed(&tables), "")
                ),
            );
            return;
        }
        for (owner, tables) in by_owner(&cannot) {
            self.error_at(
                grant,
                format!(
                    "{} Fix: `GRANT {} TO {role};` (or `ALTER TABLE ... OWNER TO {role};` for \
                     each; on PostgreSQL 17+ `GRANT pg_maintain TO {role};`)",
                    what(
                        tables.len(),
                        &listed(&tables),
                        &format!(" owned by `{owner}`")
                    ),
                    ident(&owner)
                ),
            );
        }
    }

    /// Dumps (`artifacts`): pg_dump reads every table and sequence of the
    /// dumped schemas, with row-level security off.
    fn pg_dump(&mut self, main: &PgFacts, grant: &Grant, dumps: &[&Grant]) {
        let name = self.name().to_owned();
        let role = ident(&main.role.name);
        let schemas: BTreeSet<&str> = main.relations.iter().map(|r| r.schema.as_str()).collect();
        for schema in schemas {
            let in_schema: Vec<&PgRelation> = main
                .relations
                .iter()
                .filter(|r| r.schema == schema)
                .collect();
            let usage = in_schema.iter().all(|r| r.schema_usage);
            let tables: Vec<String> = in_schema
                .iter()
                .filter(|r| !r.is_sequence() && !r.select)
                .map(|r| r.qualified())
                .collect();
            let sequences: Vec<String> = in_schema
                .iter()
                .filter(|r| r.is_sequence() && !r.select)
                .map(|r| r.qualified())
                .collect();
            if usage && tables.is_empty() && sequences.is_empty() {
                continue;
            }
            let (mut lacks, mut fix) = (Vec::new(), Vec::new());
            if !usage {
                lacks.push(format!("USAGE on schema `{schema}`"));
                fix.push(format!(
                    "GRANT USAGE ON SCHEMA {} TO {role};",
                    ident(schema)
                ));
            }
            if !tables.is_empty() {
                lacks.push(format!(
                    "SELECT on {} table(s): {}",
                    tables.len(),
                    listed(&tables)
                ));
                fix.push(format!(
                    "GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {role};",
                    ident(schema)
                ));
            }
            if !sequences.is_empty() {
                lacks.push(format!(
                    "SELECT on {} sequence(s): {}",
                    sequences.len(),
                    listed(&sequences)
                ));
                fix.push(format!(
                    "GRANT SELECT ON ALL SEQUENCES IN SCHEMA {} TO {role};",
                    ident(schema)
                ));
            }
            self.error_at(
                grant,
                format!(
                    "target `{name}`: dumps (`artifacts`, {}) run pg_dump with the main URL as \
                     role `{}`, which lacks {}: pg_dump stops there. Fix: `{}` (on PostgreSQL \
                     14+ `GRANT pg_read_all_data TO {role};` covers every schema)",
                    granted_to(dumps),
                    main.role.name,
                    lacks.join("; "),
                    fix.join(" ")
                ),
            );
        }
        if !main.bypassrls {
            let secured: Vec<String> = main
                .relations
                .iter()
                .filter(|r| r.row_security && !r.is_sequence())
                .map(|r| r.qualified())
                .collect();
            if !secured.is_empty() {
                self.error_at(
                    grant,
                    format!(
                        "target `{name}`: dumps (`artifacts`, {}) run pg_dump with the main URL \
                         as role `{}`, to which row-level security applies on {} table(s): {}; \
                         pg_dump (row_security off) stops there. Fix: `ALTER ROLE {role} \
                         BYPASSRLS;` (as a superuser)",
                        granted_to(dumps),
                        main.role.name,
                        secured.len(),
                        listed(&secured)
                    ),
                );
            }
        }
    }

    /// A restore (`restore_to`) of a dump of `source` into this target:
    /// `pg_restore --no-owner --no-privileges --clean --if-exists`.
    fn pg_restore_into(&mut self, dest: &PgFacts, grant: &Grant, source: Option<&PgFacts>) {
        if dest.role.superuser {
            return;
        }
        let name = self.name().to_owned();
        let role = ident(&dest.role.name);
        let db = ident(&dest.role.database);
        let who = format!(
            "target `{name}`: restores into it (`restore_to` of `{}` on target `{}` at {}) \
             connect with its main URL as role `{}`",
            grant.plugin, grant.target, grant.source, dest.role.name
        );
        if !dest.create_on_database {
            self.error_at(
                grant,
                format!(
                    "{who}, which lacks CREATE on database `{}`: it cannot create the dump's \
                     schemas and extensions. Fix: `GRANT CREATE ON DATABASE {db} TO {role};` \
                     (or make it the owner of this scratch database: `ALTER DATABASE {db} \
                     OWNER TO {role};`)",
                    dest.role.database
                ),
            );
        }
        let uses_public = source.is_none_or(|s| s.relations.iter().any(|r| r.schema == "public"));
        if uses_public && dest.create_on_public == Some(false) {
            self.error_at(
                grant,
                format!(
                    "{who}, which lacks CREATE on schema `public`: it cannot restore the \
                     dump's tables there. Fix: `GRANT CREATE ON SCHEMA public TO {role};` (or \
                     `ALTER DATABASE {db} OWNER TO {role};`: `public` belongs to the database \
                     owner)"
                ),
            );
        }
        let Some(source) = source else {
            return;
        };
        for (extension, _) in &source.extensions {
            let problem = match dest.available.get(extension) {
                None => format!(
                    "extension `{extension}` of target `{}` is not available on its server, so \
                     the restore fails. Fix: install the extension's package on that server",
                    grant.target
                ),
                Some(false) => format!(
                    "extension `{extension}` of target `{}` is not trusted: only a superuser \
                     can create it, so the restore fails. Fix: connect `{name}` (a scratch \
                     database) with a superuser role, or drop `{extension}` from `{}` if \
                     nothing uses it",
                    grant.target, grant.target
                ),
                Some(true) => {
                    let foreign = dest
                        .extensions
                        .iter()
                        .any(|(e, owned)| e == extension && !owned);
                    if !foreign {
                        continue;
                    }
                    format!(
                        "extension `{extension}` is installed here by another role: the clean \
                         restore drops it first, which only its owner may. Fix: `DROP EXTENSION \
                         {};` in `{name}` as its owner, so that the restore creates it",
                        ident(extension)
                    )
                }
            };
            self.error_at(grant, format!("{who}: {problem}"));
        }
    }

    fn judge_mongo(&mut self, read: Option<&MongoRoles>, main: Option<&MongoRoles>) {
        let uses = self.uses;
        let name = self.name().to_owned();
        let reads = uses.with(CapabilityClass::Read);
        if let (Some(roles), Some(grant)) = (read, reads.first().copied()) {
            let problems = roles.read_problems();
            if !problems.is_empty() {
                self.warn_at(
                    grant,
                    format!(
                        "target `{name}`: `read` calls ({}) connect with {} as {}, which {}: \
                         a `read` grant needs none of that. Fix: use a user with only `read` \
                         (or `readAnyDatabase`) and `clusterMonitor`, and set `read_url_env` \
                         (or `read_url_file`) of target `{name}` to its URL",
                        granted_to(&reads),
                        self.read_source(),
                        roles.who(),
                        problems.join(", ")
                    ),
                );
            }
            if roles.judged() {
                self.mongo_needs(roles, "`read` calls", &reads, MONGO_READ_NEED);
            }
        }
        let Some(main) = main else {
            return;
        };
        let problems = main.main_problems();
        if let Some(grant) = beyond_read(&uses.grants).filter(|_| !problems.is_empty()) {
            self.warn_at(
                grant,
                format!(
                    "target `{name}`: calls other than `read` connect with the main URL as {}, \
                     which {}. Fix: use a user with only the roles its grants need (like \
                     `readWrite` and `dbAdmin` on the database, `clusterMonitor`)",
                    main.who(),
                    problems.join(", ")
                ),
            );
        }
        if !main.judged() {
            return;
        }
        for (class, need) in [
            (CapabilityClass::Maintenance, MONGO_MAINTENANCE_NEED),
            (CapabilityClass::Ddl, MONGO_DDL_NEED),
            (CapabilityClass::Write, MONGO_WRITE_NEED),
            (CapabilityClass::SessionControl, MONGO_SESSIONS_NEED),
        ] {
            let grants = uses.with(class);
            self.mongo_needs(main, &format!("`{class}` calls"), &grants, need);
        }
        let dumps = uses.dumps();
        self.mongo_needs(main, "dumps (`artifacts`)", &dumps, MONGO_DUMP_NEED);
        for (grant, _) in &uses.restores {
            self.mongo_needs(
                main,
                &format!(
                    "restores into it (`restore_to` of `{}` on target `{}`)",
                    grant.plugin, grant.target
                ),
                &[*grant],
                MONGO_RESTORE_NEED,
            );
        }
    }

    /// Errors for the actions of `need` that `roles` lack, at the first of
    /// `grants` (none: nothing needed).
    fn mongo_needs(&mut self, roles: &MongoRoles, what: &str, grants: &[&Grant], need: MongoNeed) {
        let Some(grant) = grants.first().copied() else {
            return;
        };
        let name = self.name().to_owned();
        let (on, label) = if need.cluster {
            (None, "the cluster".to_owned())
        } else {
            match roles.database.as_deref() {
                Some(db) => (Some(db), format!("database `{db}`")),
                // Without a database in the URL, what the calls use is up
                // to the plugin: nothing to check against.
                None => return,
            }
        };
        let missing = roles.missing(on, need.actions);
        if missing.is_empty() {
            return;
        }
        let (user, user_db) = roles.user();
        let role_db = on.unwrap_or("admin");
        let grants_list: Vec<String> = need
            .roles
            .iter()
            .map(|r| format!("{{role: \"{r}\", db: \"{role_db}\"}}"))
            .collect();
        let on_what = if grants.len() == 1 && what.starts_with("restores") {
            what.to_owned()
        } else {
            format!("{what} ({})", granted_to(grants))
        };
        self.error_at(
            grant,
            format!(
                "target `{name}`: {on_what} connect as {}, which may not {} on {label}. Fix: \
                 `db.getSiblingDB(\"{user_db}\").grantRolesToUser(\"{user}\", [{}])`",
                roles.who(),
                missing
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                grants_list.join(", ")
            ),
        );
    }

    fn judge_sqlite(&mut self, file: &SqliteFacts) {
        let uses = self.uses;
        let name = self.name().to_owned();
        let path = file.path.display().to_string();
        if let Some(why) = &file.unreadable {
            let users: Vec<&Grant> = uses.grants.clone();
            if let Some(grant) = users.first().copied() {
                self.error_at(
                    grant,
                    format!(
                        "target `{name}`: the SQLite file {} cannot be used ({}): {why}. Fix: \
                         point the target at an existing SQLite database file the agent's user \
                         may read",
                        crate::text::Shown(&path),
                        granted_to(&users)
                    ),
                );
            }
        }
        let writers: Vec<&Grant> = uses
            .grants
            .iter()
            .copied()
            .filter(|g| g.classes.iter().any(|c| c.is_mutating()))
            .collect();
        if let Some(grant) = writers.first().copied() {
            let mut lacks = Vec::new();
            if file.unreadable.is_none() && !file.writable {
                lacks.push(format!("write the file {}", crate::text::Shown(&path)));
            }
            if !file.folder_writable {
                lacks.push(
                    "create files in its folder (the rollback journal, VACUUM's copy)".to_owned(),
                );
            }
            if !lacks.is_empty() {
                self.error_at(
                    grant,
                    format!(
                        "target `{name}`: calls other than `read` ({}) need to {}, which the \
                         agent's user may not. Fix: give the agent's user write access to the \
                         file and its folder (chown or chmod)",
                        granted_to(&writers),
                        lacks.join(" and ")
                    ),
                );
            }
        }
        if let Some((grant, _)) = uses.restores.first().copied() {
            let exists = file.path.exists();
            if !file.folder_writable || (exists && !file.writable) {
                self.error_at(
                    grant,
                    format!(
                        "target `{name}`: restores into it (`restore_to` of `{}` on target `{}` \
                         at {}) replace the file {}, which the agent's user may not write. Fix: \
                         give it write access to the file and its folder",
                        grant.plugin,
                        grant.target,
                        grant.source,
                        crate::text::Shown(&path)
                    ),
                );
            }
        }
    }
}

/// The actions one use of MongoDB credentials needs, and the built-in
/// roles that give them.
#[derive(Debug, Clone, Copy)]
struct MongoNeed {
    /// On the cluster rather than the URL's database.
    cluster: bool,
    actions: &'static [&'static str],
    roles: &'static [&'static str],
}

const MONGO_READ_NEED: MongoNeed = MongoNeed {
    cluster: false,
    actions: &["find", "listCollections", "listIndexes"],
    roles: &["read"],
};
const MONGO_MAINTENANCE_NEED: MongoNeed = MongoNeed {
    cluster: false,
    actions: &["compact", "collMod", "reIndex"],
    roles: &["dbAdmin"],
};
const MONGO_DDL_NEED: MongoNeed = MongoNeed {
    cluster: false,
    actions: &["createIndex", "dropIndex"],
    roles: &["readWrite"],
};
const MONGO_WRITE_NEED: MongoNeed = MongoNeed {
    cluster: false,
    actions: &["insert", "update", "remove"],
    roles: &["readWrite"],
};
const MONGO_SESSIONS_NEED: MongoNeed = MongoNeed {
    cluster: true,
    actions: &["inprog", "killop"],
    roles: &["clusterMonitor", "hostManager"],
};
const MONGO_DUMP_NEED: MongoNeed = MongoNeed {
    cluster: false,
    actions: &["find", "listCollections", "listIndexes"],
    roles: &["read"],
};
const MONGO_RESTORE_NEED: MongoNeed = MongoNeed {
    cluster: false,
    actions: &[
        "insert",
        "createCollection",
        "createIndex",
        "dropCollection",
    ],
    roles: &["readWrite"],
};

/// A diagnostic at a grant's `[[grant]]` table.
fn at_grant(grant: &Grant, message: String) -> Diagnostic {
    Diagnostic::new(&grant.source.file, "capabilities", message).with_line(grant.source.line)
}

/// "granted to `a` at FILE:LINE, `b` at FILE:LINE".
fn granted_to(grants: &[&Grant]) -> String {
    let each: Vec<String> = grants
        .iter()
        .map(|g| format!("`{}` at {}", g.plugin, g.source))
        .collect();
    format!("granted to {}", each.join(", "))
}

/// The first grant that uses the main URL for something other than reads
/// (a class other than `read`, or artifacts), else the first grant.
fn beyond_read<'a>(grants: &[&'a Grant]) -> Option<&'a Grant> {
    grants
        .iter()
        .find(|g| {
            g.classes.iter().any(|c| c.is_mutating())
                || !g.artifacts.is_empty()
                || !g.restore_to.is_empty()
        })
        .or(grants.first())
        .copied()
}

/// The relations' qualified names, by owner.
fn by_owner(relations: &[&PgRelation]) -> BTreeMap<String, Vec<String>> {
    let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in relations {
        owners
            .entry(r.owner.clone())
            .or_default()
            .push(r.qualified());
    }
    owners
}

/// The relations' qualified names, by schema.
fn by_schema(relations: &[&PgRelation]) -> BTreeMap<String, Vec<String>> {
    let mut schemas: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in relations {
        schemas
            .entry(r.schema.clone())
            .or_default()
            .push(r.qualified());
    }
    schemas
}

/// The user and database a URL names (no password), for fixes.
fn url_names(kind: TargetKind, url: &Secret) -> (String, String) {
    match kind {
        TargetKind::Postgres => PgConnectOptions::from_str(url.expose())
            .map(|o| {
                (
                    o.get_username().to_owned(),
                    o.get_database().unwrap_or(o.get_username()).to_owned(),
                )
            })
            .unwrap_or_default(),
        TargetKind::Mongodb => url::Url::parse(url.expose())
            .map(|u| {
                (
                    u.username().to_owned(),
                    u.path().trim_start_matches('/').to_owned(),
                )
            })
            .unwrap_or_default(),
        TargetKind::Sqlite => (String::new(), String::new()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn role(superuser: bool, createrole: bool, member_of: &[&str]) -> PgRole {
        PgRole {
            name: "r".to_owned(),
            superuser,
            createrole,
            member_of: member_of.iter().map(|m| (*m).to_owned()).collect(),
            database: "app".to_owned(),
            system_identifier: None,
        }
    }

    #[test]
    fn pg_read_problems_name_each_right_and_only_those() {
        assert!(role(false, false, &[]).read_problems().is_empty());
        // A superuser is a member of everything: said once.
        let all: Vec<&str> = PG_READ_FORBIDDEN_ROLES.iter().map(|(r, _)| *r).collect();
        let problems = role(true, true, &all).read_problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("is a superuser"), "{problems:?}");
        for (member, _) in PG_READ_FORBIDDEN_ROLES {
            let problems = role(false, false, &[member]).read_problems();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(
                problems[0].starts_with(&format!("is a member of `{member}` (")),
                "{problems:?}"
            );
        }
        let problems = role(
            false,
            true,
            &["pg_execute_server_program", "pg_signal_backend"],
        )
        .read_problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
        // In the order of PG_READ_FORBIDDEN_ROLES, then CREATEROLE.
        assert!(problems[0].contains("pg_signal_backend"), "{problems:?}");
        assert!(
            problems[1].contains("pg_execute_server_program"),
            "{problems:?}"
        );
        assert!(problems[2].starts_with("has CREATEROLE"), "{problems:?}");
    }

    #[test]
    fn mongo_roles_from_connection_status() {
        let reply = bson::doc! {
            "authInfo": {
                "authenticatedUsers": [{"user": "reader", "db": "admin"}],
                "authenticatedUserRoles": [
                    {"role": "read", "db": "app"},
                    {"role": "clusterMonitor", "db": "admin"},
                ],
            },
            "ok": 1.0,
        };
        let roles = MongoRoles::from_status(&reply);
        assert_eq!(roles.users, ["reader@admin"]);
        assert_eq!(roles.who(), "`reader@admin`");
        assert!(roles.read_problems().is_empty());
        assert!(roles.main_problems().is_empty());
        // No access control: no user, nothing judged.
        let none = MongoRoles::from_status(
            &bson::doc! {"authInfo": {"authenticatedUsers": [], "authenticatedUserRoles": []}, "ok": 1.0},
        );
        assert_eq!(none, MongoRoles::default());
        assert_eq!(none.who(), "no user");
        assert_eq!(
            MongoRoles::from_status(&bson::doc! {"ok": 1.0}),
            MongoRoles::default()
        );
    }

    #[test]
    fn mongo_read_problems_cover_each_powerful_role() {
        let with = |role: &str, db: &str| MongoRoles {
            users: vec!["u@admin".to_owned()],
            roles: vec![(role.to_owned(), db.to_owned())],
            ..MongoRoles::default()
        };
        for (role, db) in [
            ("root", "admin"),
            ("__system", "admin"),
            ("userAdminAnyDatabase", "admin"),
            ("userAdmin", "admin"),
            ("dbOwner", "admin"),
            ("clusterAdmin", "admin"),
            ("hostManager", "admin"),
        ] {
            let problems = with(role, db).read_problems();
            assert_eq!(problems.len(), 1, "{role}: {problems:?}");
            assert!(
                problems[0].starts_with(&format!("has role `{role}` on `{db}`")),
                "{problems:?}"
            );
        }
        // Owning an application database is no way to more rights.
        assert!(with("dbOwner", "app").read_problems().is_empty());
        assert!(with("userAdmin", "app").read_problems().is_empty());
        assert!(with("readAnyDatabase", "admin").read_problems().is_empty());
        // The main URL: only the all-powerful ones.
        assert_eq!(with("root", "admin").main_problems().len(), 1);
        assert_eq!(with("__system", "admin").main_problems().len(), 1);
        assert!(with("hostManager", "admin").main_problems().is_empty());
    }

    #[test]
    fn mongo_missing_actions_follow_the_privileges_resources() {
        let reply = bson::doc! {
            "authInfo": {
                "authenticatedUsers": [{"user": "maint", "db": "admin"}],
                "authenticatedUserRoles": [{"role": "dbAdmin", "db": "app"}],
                "authenticatedUserPrivileges": [
                    {"resource": {"db": "app", "collection": ""},
                     "actions": ["compact", "collMod", "find", "listCollections"]},
                    // One collection only: not the whole database.
                    {"resource": {"db": "app", "collection": "orders"}, "actions": ["reIndex"]},
                    {"resource": {"db": "other", "collection": ""}, "actions": ["reIndex"]},
                    {"resource": {"db": "", "collection": ""}, "actions": ["listIndexes"]},
                    {"resource": {"cluster": true}, "actions": ["inprog"]},
                ],
            },
            "ok": 1.0,
        };
        let roles = MongoRoles::from_status(&reply);
        assert!(roles.judged());
        assert_eq!(roles.privileges.len(), 5);
        // Any database (`db: ""`) counts; another database and one
        // collection do not.
        assert!(
            roles
                .missing(Some("app"), MONGO_READ_NEED.actions)
                .is_empty()
        );
        assert_eq!(
            roles.missing(Some("app"), MONGO_MAINTENANCE_NEED.actions),
            ["reIndex"]
        );
        assert_eq!(
            roles.missing(Some("other"), MONGO_READ_NEED.actions),
            ["find", "listCollections"]
        );
        // Cluster actions only from the cluster resource.
        assert_eq!(roles.missing(None, MONGO_SESSIONS_NEED.actions), ["killop"]);
        assert_eq!(
            roles.missing(Some("app"), &["inprog"]),
            ["inprog"],
            "a cluster action is not a database action"
        );
        // anyResource covers everything.
        let root = MongoRoles {
            privileges: vec![MongoPrivilege {
                resource: MongoResource::Any,
                actions: ["killop", "inprog", "insert"].map(str::to_owned).into(),
            }],
            ..MongoRoles::default()
        };
        assert!(root.missing(None, MONGO_SESSIONS_NEED.actions).is_empty());
        assert!(root.missing(Some("x"), &["insert"]).is_empty());
        assert_eq!(root.missing(Some("x"), &["remove"]), ["remove"]);
        assert_eq!(roles.user(), ("maint".to_owned(), "admin".to_owned()));
    }

    #[test]
    fn identifiers_are_quoted_and_long_lists_counted() {
        assert_eq!(ident("orders"), "\"orders\"");
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
        let names: Vec<String> = (0..25).map(|i| format!("t{i}")).collect();
        let text = listed(&names);
        assert!(text.starts_with("t0, t1, "), "{text}");
        assert!(text.ends_with("t19 and 5 more"), "{text}");
        assert_eq!(listed(&names[..2]), "t0, t1");
    }
}
