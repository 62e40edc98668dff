//! `warden check --connect`: what the roles behind the targets' URLs may
//! do, beyond what their grants need.
//!
//! A grant is the whole of what a plugin can do, and the statement
//! classifier is the wall that keeps a `read` grant to reads. This check is
//! the second wall's inspection: the credentials of `read` calls
//! ([`Target::url_for`]`(Read)`) should not be able to do anything but read,
//! so that a classifier gap cannot become a signal to another backend or a
//! server file read. For every PostgreSQL target that some grant gives
//! `read`, it logs in with the read credentials and warns when that role
//!
//! - is a superuser;
//! - is a member, directly or through other roles (`pg_has_role(...,
//!   'MEMBER')`, so also roles it may only `SET ROLE` to), of
//!   `pg_signal_backend`, `pg_read_server_files`, `pg_write_server_files` or
//!   `pg_execute_server_program`;
//! - has `CREATEROLE` (it can make roles and, before PostgreSQL 16, grant
//!   itself any of the above).
//!
//! For every PostgreSQL target with a grant it also warns when the main URL
//! (maintenance, ddl, write, session-control, dumps) logs in as a
//! superuser, and when the read URL reaches another database than the main
//! URL. For MongoDB targets it runs `connectionStatus` with the read
//! credentials and warns on `root`, `__system` and the roles that can grant
//! themselves more or kill operations (`userAdminAnyDatabase`,
//! `clusterAdmin`, `hostManager`, `userAdmin`/`dbOwner` on `admin`), and on
//! `root`/`__system` for the main URL. A connection that logs in as no user
//! (access control off) is not judged.
//!
//! Findings are warnings: the agent runs either way. A target that cannot be
//! reached within [`CONNECT_TIMEOUT`] is an error, since the check could not
//! be made. Without `--connect`, `warden check` connects to nothing.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use warden::agent::inspect;
//! let mut found = inspect(std::path::Path::new("warden.toml")).await?;
//! warden::credentials::check_inspection(&mut found).await;
//! for w in &found.warnings {
//!     eprintln!("warning: {w}");
//! }
//! # Ok(()) }
//! ```

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};

use crate::capability::{CapabilityClass, TargetKind};
use crate::config::{Config, Secret, Target};
use crate::diag::Diagnostic;
use crate::policy::{Grant, PolicySet};
use crate::secrets::Redactor;

/// Longest the check waits to connect to one target, and for its answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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

/// A probe that could not be made; the message is redacted.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no answer within {}s", CONNECT_TIMEOUT.as_secs())]
    Timeout,
    #[error("{0}")]
    Failed(String),
}

/// Logs in with `url` and asks what the role may do.
pub async fn probe_pg(url: &Secret, redactor: &Redactor) -> Result<PgRole, ProbeError> {
    let failed = |e: sqlx::Error| ProbeError::Failed(redactor.redact(&e.to_string()));
    let timeout_ms = CONNECT_TIMEOUT.as_millis().to_string();
    let options = PgConnectOptions::from_str(url.expose())
        .map_err(failed)?
        .application_name("warden/check")
        .options([("statement_timeout", timeout_ms.as_str())]);
    let probe = async {
        let mut conn = options.connect().await.map_err(failed)?;
        let forbidden: Vec<&str> = PG_READ_FORBIDDEN_ROLES.iter().map(|(r, _)| *r).collect();
        let (name, superuser, createrole, database, member_of): (
            String,
            bool,
            bool,
            String,
            Vec<String>,
        ) = sqlx::query_as(
            "SELECT s.rolname::text, s.rolsuper, s.rolcreaterole, current_database()::text,
                    ARRAY(SELECT w.name
                          FROM unnest($1::text[]) WITH ORDINALITY AS w(name, n)
                          JOIN pg_roles p ON p.rolname = w.name
                          WHERE pg_has_role(s.oid, p.oid, 'MEMBER')
                          ORDER BY w.n)
             FROM pg_roles s WHERE s.rolname = session_user",
        )
        .bind(&forbidden)
        .fetch_one(&mut conn)
        .await
        .map_err(failed)?;
        // Not every role may call it (nor every server have it): optional.
        let system_identifier: Option<i64> =
            sqlx::query_scalar("SELECT system_identifier FROM pg_control_system()")
                .fetch_one(&mut conn)
                .await
                .ok();
        let _ = conn.close().await;
        Ok(PgRole {
            name,
            superuser,
            createrole,
            member_of,
            database,
            system_identifier,
        })
    };
    tokio::time::timeout(CONNECT_TIMEOUT, probe)
        .await
        .map_err(|_| ProbeError::Timeout)?
}

/// The user and roles a MongoDB URL logs in with (`connectionStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MongoRoles {
    /// `user@db` of each authenticated user; empty without access control.
    pub users: Vec<String>,
    /// `(role, db)` of each role.
    pub roles: Vec<(String, String)>,
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
        MongoRoles {
            users: pairs("authenticatedUsers", "user")
                .into_iter()
                .map(|(user, db)| format!("{user}@{db}"))
                .collect(),
            roles: pairs("authenticatedUserRoles", "role"),
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
}

/// Logs in with `url` and runs `connectionStatus`.
pub async fn probe_mongo(url: &Secret, redactor: &Redactor) -> Result<MongoRoles, ProbeError> {
    let failed = |e: mongodb::error::Error| ProbeError::Failed(redactor.redact(&e.to_string()));
    let probe = async {
        let mut options = mongodb::options::ClientOptions::parse(url.expose())
            .await
            .map_err(failed)?;
        options.app_name = Some("warden/check".to_owned());
        options.server_selection_timeout = Some(CONNECT_TIMEOUT);
        options.connect_timeout = Some(CONNECT_TIMEOUT);
        let client = mongodb::Client::with_options(options).map_err(failed)?;
        let reply = client
            .database("admin")
            .run_command(bson::doc! { "connectionStatus": 1 })
            .await
            .map_err(failed)?;
        client.shutdown().await;
        Ok(MongoRoles::from_status(&reply))
    };
    tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(1), probe)
        .await
        .map_err(|_| ProbeError::Timeout)?
}

/// What [`check`] found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Targets that could not be reached.
    pub errors: Vec<Diagnostic>,
    /// Credentials that may do more than their grants need.
    pub warnings: Vec<Diagnostic>,
    /// How many targets were connected to (or tried).
    pub targets: usize,
}

/// Runs [`check`] on an inspection (when its policies loaded), adding what
/// it finds to the inspection's errors and warnings. Returns how many
/// targets it connected to.
pub async fn check_inspection(found: &mut crate::agent::Inspection) -> usize {
    let Some(policies) = &found.policies else {
        return 0;
    };
    let redactor = crate::agent::redactor_for(&found.config);
    let findings = check(&found.config, policies, &redactor).await;
    found.errors.extend(findings.errors);
    found.warnings.extend(findings.warnings);
    findings.targets
}

/// Connects to every target some grant names and checks the credentials its
/// calls would use (see the module documentation).
pub async fn check(config: &Config, policies: &PolicySet, redactor: &Redactor) -> Findings {
    let mut findings = Findings::default();
    for (index, target) in config.targets.iter().enumerate() {
        let grants: Vec<&Grant> = policies
            .grants
            .iter()
            .filter(|g| g.target == target.name)
            .collect();
        let Some(first) = grants.first() else {
            continue;
        };
        let at = Place {
            config,
            index,
            target,
            redactor,
        };
        if target.kind != TargetKind::Sqlite {
            findings.targets += 1;
        }
        match target.kind {
            TargetKind::Postgres => at.check_pg(&grants, first, &mut findings).await,
            TargetKind::Mongodb => at.check_mongo(&grants, first, &mut findings).await,
            TargetKind::Sqlite => {}
        }
    }
    findings
}

/// One target being checked.
struct Place<'a> {
    config: &'a Config,
    /// Its index among `[[target]]`s.
    index: usize,
    target: &'a Target,
    redactor: &'a Redactor,
}

impl Place<'_> {
    /// Which URL `read` calls use, for messages.
    fn read_source(&self) -> &'static str {
        if self.target.read_url().is_some() {
            "the read URL (`read_url_env`/`read_url_file`)"
        } else {
            "the main URL (no `read_url_env` or `read_url_file` is set)"
        }
    }

    /// An unreachable URL: an error at the target in the config.
    fn unreachable(&self, which: &str, error: &ProbeError) -> Diagnostic {
        Diagnostic::new(
            &self.config.file,
            format!("target[{}]", self.index),
            format!(
                "target `{}`: cannot check the role of {which}: {error}; make the database \
                 reachable from here, or run `warden check` without `--connect`",
                self.target.name
            ),
        )
    }

    async fn check_pg(&self, grants: &[&Grant], first: &Grant, findings: &mut Findings) {
        let name = &self.target.name;
        let reads: Vec<&Grant> = grants
            .iter()
            .copied()
            .filter(|g| g.classes.contains(&CapabilityClass::Read))
            .collect();
        let reads = reads.as_slice();
        let read_role = match reads.first() {
            Some(_) => {
                match probe_pg(self.target.url_for(CapabilityClass::Read), self.redactor).await {
                    Ok(role) => Some(role),
                    Err(e) => {
                        findings
                            .errors
                            .push(self.unreachable(self.read_source(), &e));
                        return;
                    }
                }
            }
            None => None,
        };
        if let (Some(role), Some(grant)) = (&read_role, reads.first()) {
            let problems = role.read_problems();
            if !problems.is_empty() {
                let fix = if self.target.read_url().is_some() {
                    format!(
                        "give the read URL a role with only CONNECT, USAGE, SELECT and \
                         `pg_monitor` (like `warden_read`, see \"Recommended database roles\" \
                         in the README) instead of `{}`, or take those rights from it",
                        role.name
                    )
                } else {
                    format!(
                        "create a role with only CONNECT, USAGE, SELECT and `pg_monitor` \
                         (like `warden_read`, see \"Recommended database roles\" in the \
                         README) and set `read_url_env` (or `read_url_file`) of target \
                         `{name}` to its URL"
                    )
                };
                findings.warnings.push(at_grant(
                    grant,
                    format!(
                        "target `{name}`: `read` calls ({}) connect with {} as role `{}`, \
                         which {}: a `read` grant needs none of that. Fix: {fix}",
                        granted_to(reads),
                        self.read_source(),
                        role.name,
                        problems.join(", ")
                    ),
                ));
            }
        }
        // The main URL: probed again only when it is another URL.
        let main_role = match (&read_role, self.target.read_url()) {
            (Some(role), None) => role.clone(),
            _ => match probe_pg(&self.target.url, self.redactor).await {
                Ok(role) => role,
                Err(e) => {
                    findings.errors.push(self.unreachable("the main URL", &e));
                    return;
                }
            },
        };
        if main_role.superuser {
            let grant = beyond_read(grants, first);
            findings.warnings.push(at_grant(
                grant,
                format!(
                    "target `{name}`: calls other than `read` (maintenance, ddl, write, \
                     session-control, dumps) connect with the main URL as role `{}`, a \
                     superuser, which can do anything on the server. Fix: connect as a role \
                     that owns the tables it maintains (or has `pg_maintain` on PostgreSQL \
                     17+), in `pg_signal_backend` only if a grant gives `session-control` \
                     (see \"Recommended database roles\" in the README)",
                    main_role.name
                ),
            ));
        }
        if let Some(read_role) = read_role.filter(|_| self.target.read_url().is_some()) {
            let other_server = match (read_role.system_identifier, main_role.system_identifier) {
                (Some(a), Some(b)) => a != b,
                _ => false,
            };
            if read_role.database != main_role.database || other_server {
                let (read_at, main_at) = if other_server {
                    (
                        format!("database `{}` of another server", read_role.database),
                        format!("database `{}`", main_role.database),
                    )
                } else {
                    (
                        format!("database `{}`", read_role.database),
                        format!("database `{}`", main_role.database),
                    )
                };
                findings.warnings.push(Diagnostic::new(
                    &self.config.file,
                    format!("target[{}]", self.index),
                    format!(
                        "target `{name}`: the read URL reaches {read_at} but the main URL \
                         reaches {main_at}: plugins would read one database and change \
                         another. Fix: point both at the same database, with different roles"
                    ),
                ));
            }
        }
    }

    async fn check_mongo(&self, grants: &[&Grant], first: &Grant, findings: &mut Findings) {
        let name = &self.target.name;
        let reads: Vec<&Grant> = grants
            .iter()
            .copied()
            .filter(|g| g.classes.contains(&CapabilityClass::Read))
            .collect();
        let reads = reads.as_slice();
        let read_roles = match reads.first() {
            Some(_) => {
                match probe_mongo(self.target.url_for(CapabilityClass::Read), self.redactor).await {
                    Ok(roles) => Some(roles),
                    Err(e) => {
                        findings
                            .errors
                            .push(self.unreachable(self.read_source(), &e));
                        return;
                    }
                }
            }
            None => None,
        };
        if let (Some(roles), Some(grant)) = (&read_roles, reads.first()) {
            let problems = roles.read_problems();
            if !problems.is_empty() {
                findings.warnings.push(at_grant(
                    grant,
                    format!(
                        "target `{name}`: `read` calls ({}) connect with {} as {}, which {}: \
                         a `read` grant needs none of that. Fix: use a user with only `read` \
                         (or `readAnyDatabase`) and `clusterMonitor`, and set `read_url_env` \
                         (or `read_url_file`) of target `{name}` to its URL",
                        granted_to(reads),
                        self.read_source(),
                        roles.who(),
                        problems.join(", ")
                    ),
                ));
            }
        }
        let main_roles = match (&read_roles, self.target.read_url()) {
            (Some(roles), None) => roles.clone(),
            _ => match probe_mongo(&self.target.url, self.redactor).await {
                Ok(roles) => roles,
                Err(e) => {
                    findings.errors.push(self.unreachable("the main URL", &e));
                    return;
                }
            },
        };
        let problems = main_roles.main_problems();
        if !problems.is_empty() {
            findings.warnings.push(at_grant(
                beyond_read(grants, first),
                format!(
                    "target `{name}`: calls other than `read` connect with the main URL as {}, \
                     which {}. Fix: use a user with only the roles its grants need (like \
                     `readWrite` and `dbAdmin` on the database, `clusterMonitor`)",
                    main_roles.who(),
                    problems.join(", ")
                ),
            ));
        }
    }
}

/// A warning at a grant's `[[grant]]` table.
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
/// (a class other than `read`, or artifacts), else `first`.
fn beyond_read<'a>(grants: &[&'a Grant], first: &'a Grant) -> &'a Grant {
    grants
        .iter()
        .find(|g| {
            g.classes.iter().any(|c| c.is_mutating())
                || !g.artifacts.is_empty()
                || !g.restore_to.is_empty()
        })
        .copied()
        .unwrap_or(first)
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
}
