//! The permission decision as a table: (policy, host call) → allowed, or
//! which denial. Several hostile members per rule, modelled on Spin's
//! `disallowed_host_fails`: each row is a call a plugin could make.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use std::fs;

const CONFIG: &str = r#"plugin_dir = "plugins"
policy_dir = "policies"

[[target]]
name = "lite"
kind = "sqlite"
url = "sqlite::memory:"

[[target]]
name = "pg"
kind = "postgres"
url_env = "URL"

[[target]]
name = "pg-scratch"
kind = "postgres"
url_env = "URL"

[[target]]
name = "mg"
kind = "mongodb"
url_env = "MONGO_URL"

[[target]]
name = "ungranted"
kind = "postgres"
url_env = "URL"

[[store]]
name = "local"
kind = "local"
root = "artifacts"

[[store]]
name = "offsite"
kind = "local"
root = "offsite"
"#;

/// `p` may read and write `lite` (with a store, a restore destination, log
/// files and a plugin to start), read and signal sessions on `pg`, read
/// `pg-scratch`, and read and write `mg`. `ungranted` has no grant.
fn policy(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"[[grant]]
plugin = "p"
targets = ["lite"]
capabilities = ["read", "write"]
artifacts = ["local"]
restore_to = ["pg-scratch"]
log_files = ["{d}/logs/", "{d}/one.log", "{d}/linked/"]
run_plugins = ["vacuum"]

[[grant]]
plugin = "p"
targets = ["pg"]
capabilities = ["read", "session-control"]

[[grant]]
plugin = "p"
targets = ["pg-scratch"]
capabilities = ["read"]
artifacts = ["local"]

[[grant]]
plugin = "p"
targets = ["mg"]
capabilities = ["read", "write"]
"#
    )
}

/// The config, the policies and the folder the log files are in: `logs/`
/// (granted) holding `app.log` and a link `escape.log` to
/// `secret/key.log` (not granted); `linked/` (granted) a link to `data/`.
struct World {
    dir: tempfile::TempDir,
    config: Config,
    policies: PolicySet,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        for sub in ["plugins", "policies", "logs", "secret", "data"] {
            fs::create_dir(root.join(sub)).unwrap();
        }
        fs::write(root.join("logs/app.log"), "a\n").unwrap();
        fs::write(root.join("secret/key.log"), "k\n").unwrap();
        fs::write(root.join("data/db.log"), "d\n").unwrap();
        fs::write(root.join("one.log"), "o\n").unwrap();
        fs::write(root.join("two.log"), "t\n").unwrap();
        std::os::unix::fs::symlink(root.join("secret/key.log"), root.join("logs/escape.log"))
            .unwrap();
        std::os::unix::fs::symlink(root.join("data"), root.join("linked")).unwrap();
        fs::write(root.join("warden.toml"), CONFIG).unwrap();
        fs::write(root.join("policies/p.toml"), policy(&root)).unwrap();
        let config = Config::load_with_env(&root.join("warden.toml"), |name| {
            Some(match name {
                "MONGO_URL" => "mongodb://localhost/db".into(),
                _ => "postgres://u@localhost/db".into(),
            })
        })
        .unwrap_or_else(|d| panic!("{d}"));
        let names: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
        let policies = PolicySet::load_files(&[root.join("policies/p.toml")], &names)
            .unwrap_or_else(|d| panic!("{d}"));
        World {
            dir,
            config,
            policies,
        }
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            plugin: "p",
            config: &self.config,
            policies: &self.policies,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        fs::canonicalize(self.dir.path()).unwrap().join(rel)
    }
}

use CapabilityClass::{Ddl, Maintenance, Read, SessionControl, Write};
use DeniedKind as D;

/// Every [`TargetCall`] case, by number: the table must hold each (a new
/// case does not compile here until it is numbered).
const fn case(call: &TargetCall<'_>) -> usize {
    match call {
        TargetCall::SqlQuoteIdent { .. } => 0,
        TargetCall::Sql { .. } => 1,
        TargetCall::Mongo { .. } => 2,
        TargetCall::ArtifactDump { .. } => 3,
        TargetCall::Artifacts { .. } => 4,
        TargetCall::ArtifactRestore { .. } => 5,
        TargetCall::LogRead { .. } => 6,
        TargetCall::LogReadResolved { .. } => 7,
        TargetCall::SessionSignal { .. } => 8,
        TargetCall::KillOp { .. } => 9,
        TargetCall::RunStart { .. } => 10,
        TargetCall::Logs { .. } => 11,
    }
}
const CASES: usize = 12;

#[test]
fn target_calls_are_allowed_or_denied_as_the_grants_say() {
    let w = World::new();
    let app_log = w.path("logs/app.log");
    let one_log = w.path("one.log");
    let two_log = w.path("two.log");
    let escape = w.path("logs/escape.log");
    let key = w.path("secret/key.log");
    let secret_via_dotdot = w.path("logs/../secret/key.log");
    let nested = w.path("logs/sub/app.log");
    let logs_dir = w.path("logs");
    let linked_db = w.path("linked/db.log");
    let data_db = w.path("data/db.log");
    let etc = PathBuf::from("/etc/passwd");

    let sql = |target, class| TargetCall::Sql { target, class };
    let mongo = |target, class| TargetCall::Mongo { target, class };
    let log = |target, path| TargetCall::LogRead { target, path };
    let table: Vec<(TargetCall<'_>, Result<&str, DeniedKind>)> = vec![
        // sql.quote-ident: any granted SQL target.
        (TargetCall::SqlQuoteIdent { target: "lite" }, Ok("lite")),
        (TargetCall::SqlQuoteIdent { target: "pg" }, Ok("pg")),
        (
            TargetCall::SqlQuoteIdent { target: "mg" },
            Err(D::WrongKind),
        ),
        (
            TargetCall::SqlQuoteIdent { target: "nowhere" },
            Err(D::NoTarget),
        ),
        (
            TargetCall::SqlQuoteIdent {
                target: "ungranted",
            },
            Err(D::NoGrant),
        ),
        // logs.*, before the path: the target and a grant for it.
        (TargetCall::Logs { target: "lite" }, Ok("lite")),
        (TargetCall::Logs { target: "mg" }, Ok("mg")),
        (TargetCall::Logs { target: "nowhere" }, Err(D::NoTarget)),
        (
            TargetCall::Logs {
                target: "ungranted",
            },
            Err(D::NoGrant),
        ),
        // sql.query / sql.execute: the class must be granted.
        (sql("lite", Read), Ok("lite")),
        (sql("lite", Write), Ok("lite")),
        (sql("pg", Read), Ok("pg")),
        (sql("lite", Ddl), Err(D::ClassNotGranted)),
        (sql("lite", Maintenance), Err(D::ClassNotGranted)),
        (sql("pg", Write), Err(D::ClassNotGranted)),
        (sql("pg-scratch", Ddl), Err(D::ClassNotGranted)),
        (sql("mg", Read), Err(D::WrongKind)),
        (sql("nowhere", Read), Err(D::NoTarget)),
        (sql("", Read), Err(D::NoTarget)),
        (sql("LITE", Read), Err(D::NoTarget)),
        (sql("ungranted", Read), Err(D::NoGrant)),
        // Session control never goes through the generic calls, not even
        // where the grant lists it, nor on targets that do not exist.
        (sql("pg", SessionControl), Err(D::SessionControlViaGeneric)),
        (
            sql("nowhere", SessionControl),
            Err(D::SessionControlViaGeneric),
        ),
        // mongo.run-command / mongo.open-cursor
        (mongo("mg", Read), Ok("mg")),
        (mongo("mg", Write), Ok("mg")),
        (mongo("mg", Ddl), Err(D::ClassNotGranted)),
        (mongo("lite", Read), Err(D::WrongKind)),
        (mongo("pg", Read), Err(D::WrongKind)),
        (mongo("nowhere", Read), Err(D::NoTarget)),
        (
            mongo("mg", SessionControl),
            Err(D::SessionControlViaGeneric),
        ),
        // artifacts.dump: the store granted, and `read`.
        (
            TargetCall::ArtifactDump {
                target: "lite",
                store: "local",
            },
            Ok("lite"),
        ),
        (
            TargetCall::ArtifactDump {
                target: "lite",
                store: "offsite",
            },
            Err(D::StoreNotGranted),
        ),
        (
            TargetCall::ArtifactDump {
                target: "lite",
                store: "nowhere",
            },
            Err(D::NoStore),
        ),
        (
            TargetCall::ArtifactDump {
                target: "pg",
                store: "local",
            },
            Err(D::StoreNotGranted),
        ),
        (
            TargetCall::ArtifactDump {
                target: "ungranted",
                store: "local",
            },
            Err(D::NoGrant),
        ),
        (
            TargetCall::ArtifactDump {
                target: "nowhere",
                store: "local",
            },
            Err(D::NoTarget),
        ),
        // artifacts.list / verify / delete
        (
            TargetCall::Artifacts {
                target: "pg-scratch",
                store: "local",
            },
            Ok("pg-scratch"),
        ),
        (
            TargetCall::Artifacts {
                target: "mg",
                store: "local",
            },
            Err(D::StoreNotGranted),
        ),
        (
            TargetCall::Artifacts {
                target: "lite",
                store: "offsite",
            },
            Err(D::StoreNotGranted),
        ),
        // artifacts.restore: only into a target listed in `restore_to`.
        (
            TargetCall::ArtifactRestore {
                target: "lite",
                store: "local",
                destination: "pg-scratch",
            },
            Ok("lite"),
        ),
        (
            TargetCall::ArtifactRestore {
                target: "lite",
                store: "local",
                destination: "pg",
            },
            Err(D::RestoreNotAllowed),
        ),
        (
            TargetCall::ArtifactRestore {
                target: "lite",
                store: "local",
                destination: "lite",
            },
            Err(D::RestoreNotAllowed),
        ),
        (
            TargetCall::ArtifactRestore {
                target: "pg-scratch",
                store: "local",
                destination: "pg-scratch",
            },
            Err(D::RestoreNotAllowed),
        ),
        (
            TargetCall::ArtifactRestore {
                target: "lite",
                store: "offsite",
                destination: "pg-scratch",
            },
            Err(D::StoreNotGranted),
        ),
        // logs.read as written: a granted file, or a file directly in a
        // granted folder (or in what a granted link points to).
        (log("lite", &app_log), Ok("lite")),
        (log("lite", &one_log), Ok("lite")),
        (log("lite", &linked_db), Ok("lite")),
        (log("lite", &data_db), Ok("lite")),
        (log("lite", &two_log), Err(D::LogPathNotGranted)),
        (log("lite", &etc), Err(D::LogPathNotGranted)),
        (log("lite", &key), Err(D::LogPathNotGranted)),
        (log("lite", &secret_via_dotdot), Err(D::LogPathNotGranted)),
        (log("lite", &nested), Err(D::LogPathNotGranted)),
        (log("lite", &logs_dir), Err(D::LogPathNotGranted)),
        (log("pg", &app_log), Err(D::LogPathNotGranted)),
        (log("ungranted", &app_log), Err(D::NoGrant)),
        (log("nowhere", &app_log), Err(D::NoTarget)),
        // ... and resolved: a link in a granted folder leads out of it.
        (log("lite", &escape), Ok("lite")),
        (
            TargetCall::LogReadResolved {
                target: "lite",
                written: &escape,
                real: &key,
            },
            Err(D::LogPathResolvesOutside),
        ),
        (
            TargetCall::LogReadResolved {
                target: "lite",
                written: &linked_db,
                real: &data_db,
            },
            Ok("lite"),
        ),
        // sessions.signal-backend: PostgreSQL, with `session-control`.
        (TargetCall::SessionSignal { target: "pg" }, Ok("pg")),
        (
            TargetCall::SessionSignal {
                target: "pg-scratch",
            },
            Err(D::SessionControlNotGranted),
        ),
        (
            TargetCall::SessionSignal { target: "lite" },
            Err(D::WrongKind),
        ),
        (
            TargetCall::SessionSignal { target: "mg" },
            Err(D::WrongKind),
        ),
        (
            TargetCall::SessionSignal {
                target: "ungranted",
            },
            Err(D::NoGrant),
        ),
        // sessions.kill-op: MongoDB, with `session-control`.
        (
            TargetCall::KillOp { target: "mg" },
            Err(D::SessionControlNotGranted),
        ),
        (TargetCall::KillOp { target: "pg" }, Err(D::WrongKind)),
        (TargetCall::KillOp { target: "nowhere" }, Err(D::NoTarget)),
        // runs.start: the plugin listed in `run_plugins` of the grant.
        (
            TargetCall::RunStart {
                target: "lite",
                plugin: "vacuum",
            },
            Ok("lite"),
        ),
        (
            TargetCall::RunStart {
                target: "lite",
                plugin: "p",
            },
            Err(D::RunNotAllowed),
        ),
        (
            TargetCall::RunStart {
                target: "pg",
                plugin: "vacuum",
            },
            Err(D::RunNotAllowed),
        ),
        (
            TargetCall::RunStart {
                target: "ungranted",
                plugin: "vacuum",
            },
            Err(D::NoGrant),
        ),
    ];

    let mut seen = [false; CASES];
    let mut wrong = Vec::new();
    for (call, expected) in &table {
        seen[case(call)] = true;
        let got = check_target(w.scope(), *call);
        let same = match (&got, expected) {
            (Ok(r), Ok(target)) => r.target.name == *target && r.grant.target == *target,
            (Err(d), Err(kind)) => d.kind() == *kind,
            _ => false,
        };
        if !same {
            wrong.push(format!("{call:?}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(seen.iter().all(|s| *s), "cases without a row: {seen:?}");
}

#[test]
fn local_calls_are_allowed_in_a_run_and_nothing_in_describe() {
    let all = [
        LocalCall::Log,
        LocalCall::Context,
        LocalCall::StateRead,
        LocalCall::StateWrite,
        LocalCall::SqlClassify,
        LocalCall::MongoClassify,
        LocalCall::RunGet,
    ];
    for call in all {
        assert_eq!(check_local(Some(7), call), Ok(7), "{call:?}");
        assert_eq!(
            check_local(None::<u8>, call),
            Err(Denied::InDescribe),
            "{call:?}"
        );
    }
    assert!(
        matches!(
            Error::from(Denied::InDescribe),
            Error::AccessDenied(m) if m == "describe() must not call host functions"
        ),
        "a denial is the WIT access-denied error"
    );
}

/// The messages are the ones plugins and records have always shown: what
/// is missing and the grant's `file:line`.
#[test]
fn denials_say_what_to_add_and_where() {
    let w = World::new();
    let at = |target: &str| w.policies.grant("p", target).unwrap().source.to_string();
    let message = |call| check_target(w.scope(), call).unwrap_err().to_string();
    assert_eq!(
        message(TargetCall::Sql {
            target: "pg",
            class: Write
        }),
        format!(
            "plugin `p` is not granted `write` on target `pg` (granted: read, session-control; \
             grant at {})",
            at("pg")
        )
    );
    assert_eq!(
        message(TargetCall::Sql {
            target: "mg",
            class: Read
        }),
        "target `mg` is a mongodb database: the sql capability does not apply"
    );
    assert_eq!(
        message(TargetCall::SqlQuoteIdent {
            target: "ungranted"
        }),
        "plugin `p` has no grant for target `ungranted` (deny by default: add a [[grant]] in \
         the policy folder)"
    );
    assert_eq!(
        message(TargetCall::Artifacts {
            target: "mg",
            store: "local"
        }),
        format!(
            "plugin `p` has no artifacts capability for target `mg` in store `local` (add \
             `artifacts = [\"local\"]` to the grant at {})",
            at("mg")
        )
    );
    assert_eq!(
        message(TargetCall::KillOp { target: "mg" }),
        format!(
            "plugin `p` may not kill MongoDB operations on target `mg`: its grant at {} does not \
             list `session-control` in `capabilities` (granted: read, write)",
            at("mg")
        )
    );
    assert_eq!(
        message(TargetCall::RunStart {
            target: "lite",
            plugin: "p"
        }),
        format!(
            "plugin `p` may not start `p` on target `lite`: its grant at {} does not list it in \
             `run_plugins` (it lists: vacuum)",
            at("lite")
        )
    );
    let escape = w.path("logs/escape.log");
    let key = w.path("secret/key.log");
    let text = message(TargetCall::LogReadResolved {
        target: "lite",
        written: &escape,
        real: &key,
    });
    assert!(
        text.starts_with(&format!(
            "`{}` resolves to `{}`: plugin `p` may not read the log file `{}` through target \
             `lite`: it grants `",
            escape.display(),
            key.display(),
            key.display()
        )) && text.ends_with(&format!(
            "(add the path to the grant's `log_files` at {})",
            at("lite")
        )),
        "{text}"
    );
    assert!(
        message(TargetCall::Mongo {
            target: "mg",
            class: SessionControl
        })
        .contains("use `sessions.kill-op`")
    );
}
