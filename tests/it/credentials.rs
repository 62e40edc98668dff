//! Credentials per capability class and `warden check --connect`, against
//! the real PostgreSQL cluster (and the MongoDB-wire test server): every
//! role that could do more than read is warned about when `read` calls use
//! it, naming the target, the role and the grant; a role fit for reads is
//! not; plain `warden check` reaches no database.

use crate::world::{World, warden_bin};
use sqlx::{Connection as _, PgConnection};
use std::collections::BTreeMap;
use std::process::{Command, Output};
use warden_tests::{mongo, pg};

fn warden(config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(warden_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The `warning: ` lines of `warden check`, by the target they name.
fn warnings_by_target(o: &Output) -> BTreeMap<String, Vec<String>> {
    let mut by_target: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&o.stderr).lines() {
        let Some(warning) = line.strip_prefix("warning: ") else {
            continue;
        };
        let Some(target) = warning
            .split_once("target `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(name, _)| name.to_owned())
        else {
            continue;
        };
        by_target
            .entry(target)
            .or_default()
            .push(warning.to_owned());
    }
    by_target
}

/// `policies/grants.toml:LINE`, the `[[grant]]` header of the grant for
/// `target`.
fn grant_location(w: &World, target: &str) -> String {
    let path = w.path("policies/grants.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == format!("targets = [\"{target}\"]"))
        .unwrap_or_else(|| panic!("no grant for {target} in\n{text}"));
    let header = lines[..at].iter().rposition(|l| *l == "[[grant]]").unwrap();
    format!("{}:{}", path.display(), header + 1)
}

/// Runs `sql` as the superuser on database `db`.
async fn as_superuser(db: &str, sql: &str) {
    let cluster = pg::cluster();
    let mut conn = PgConnection::connect(&cluster.url_for(db)).await.unwrap();
    sqlx::raw_sql(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.unwrap();
}

/// A login role `name` with password `pw-<name>` that may connect to `db`
/// and read its tables, plus `extra` SQL (`{r}` is the role).
async fn login_role(db: &str, name: &str, attributes: &str, extra: &str) -> String {
    let extra = extra.replace("{r}", &format!("\"{name}\""));
    as_superuser(
        db,
        &format!(
            "CREATE ROLE \"{name}\" LOGIN {attributes} PASSWORD 'pw-{name}';
             GRANT CONNECT ON DATABASE \"{db}\" TO \"{name}\";
             GRANT USAGE ON SCHEMA public TO \"{name}\";
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{name}\";
             {extra}"
        ),
    )
    .await;
    let cluster = pg::cluster();
    format!(
        "postgres://{name}:pw-{name}@127.0.0.1:{}/{db}",
        cluster.port()
    )
}

#[tokio::test]
async fn check_connect_warns_about_every_read_role_that_can_do_more_than_read() {
    let cluster = pg::cluster();
    let db = cluster.create_database("credentials").await;
    as_superuser(&db.name, "CREATE TABLE items (id int)").await;
    let pid = std::process::id();
    let role = |what: &str| format!("cr_{what}_{pid}");

    // The maintenance role of every target: not a superuser (session-control
    // may legitimately need pg_signal_backend: no warning for the main URL).
    let maint = login_role(
        &db.name,
        &role("maint"),
        "",
        "GRANT pg_signal_backend TO {r};",
    )
    .await;
    // Fit for reads: SELECT and the monitoring roles.
    let clean = login_role(&db.name, &role("clean"), "", "GRANT pg_monitor TO {r};").await;
    let signal = login_role(
        &db.name,
        &role("signal"),
        "",
        "GRANT pg_signal_backend TO {r};",
    )
    .await;
    // Through an intermediate role that cannot log in.
    as_superuser(
        &db.name,
        &format!(
            "CREATE ROLE \"{}\" NOLOGIN; GRANT pg_read_server_files TO \"{}\";",
            role("ops"),
            role("ops")
        ),
    )
    .await;
    let files = login_role(
        &db.name,
        &role("files"),
        "",
        &format!("GRANT \"{}\" TO {{r}};", role("ops")),
    )
    .await;
    let exec = login_role(
        &db.name,
        &role("exec"),
        "",
        "GRANT pg_execute_server_program TO {r};",
    )
    .await;
    let write = login_role(
        &db.name,
        &role("write"),
        "",
        "GRANT pg_write_server_files TO {r};",
    )
    .await;
    // NOINHERIT: it does not use the role's rights until SET ROLE, which it
    // may do.
    let noinherit = login_role(
        &db.name,
        &role("noinherit"),
        "NOINHERIT",
        "GRANT pg_signal_backend TO {r};",
    )
    .await;
    let creator = login_role(&db.name, &role("creator"), "CREATEROLE", "").await;
    let superuser = db.url.clone();

    let read_targets: [(&str, &str); 8] = [
        ("clean", &clean),
        ("superuser", &superuser),
        ("signal", &signal),
        ("files", &files),
        ("exec", &exec),
        ("write", &write),
        ("noinherit", &noinherit),
        ("creator", &creator),
    ];
    let mut w = World::new().fixture("noop").fixture("sqlprobe");
    for (name, read_url) in read_targets {
        w = w
            .target_with_read_url(name, "postgres", &maint, read_url)
            .grant("noop", name, &["read"], "");
    }
    // No read URL: reads use the main URL, a superuser.
    w = w.pg_target("nosplit", &superuser).grant(
        "sqlprobe",
        "nosplit",
        &["read", "maintenance"],
        "",
    );
    // A read URL that reaches another database.
    let elsewhere = format!(
        "postgres://{}:pw-{}@127.0.0.1:{}/postgres",
        role("clean"),
        role("clean"),
        cluster.port()
    );
    w = w
        .target_with_read_url("elsewhere", "postgres", &maint, &elsewhere)
        .grant("noop", "elsewhere", &["read"], "");
    // A grant without `read` connects only with the main URL.
    w = w
        .target_with_read_url("noread", "postgres", &maint, &superuser)
        .grant("sqlprobe", "noread", &["maintenance"], "");
    let config = w.write();

    let o = warden(&config, &["check", "--connect"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "warnings only:\n{out}");
    assert!(
        out.contains("ok: roles checked on 11 target(s), 10 warning(s)"),
        "{out}"
    );
    assert!(!out.contains(cluster.password()), "{out}");
    assert!(!out.contains("pw-cr_"), "{out}");
    let warnings = warnings_by_target(&o);

    // Fit for reads: nothing to say; nor without a read grant.
    assert!(!warnings.contains_key("clean"), "{out}");
    assert!(!warnings.contains_key("noread"), "{out}");

    // Each of the class, named with its role, at its grant, with the fix.
    let expect = [
        ("superuser", "postgres".to_owned(), "is a superuser"),
        (
            "signal",
            role("signal"),
            "is a member of `pg_signal_backend`",
        ),
        (
            "files",
            role("files"),
            "is a member of `pg_read_server_files`",
        ),
        (
            "exec",
            role("exec"),
            "is a member of `pg_execute_server_program`",
        ),
        (
            "write",
            role("write"),
            "is a member of `pg_write_server_files`",
        ),
        (
            "noinherit",
            role("noinherit"),
            "is a member of `pg_signal_backend`",
        ),
        ("creator", role("creator"), "has CREATEROLE"),
    ];
    for (target, role_name, problem) in &expect {
        let found = warnings
            .get(*target)
            .unwrap_or_else(|| panic!("no warning about target `{target}`:\n{out}"));
        assert_eq!(found.len(), 1, "{found:?}");
        let warning = &found[0];
        let location = grant_location(&w, target);
        assert!(
            warning.starts_with(&format!("{location}: capabilities: target `{target}`")),
            "{warning}\nexpected at {location}"
        );
        assert!(
            warning.contains(&format!("`noop` at {location}")),
            "{warning}"
        );
        assert!(
            warning.contains(&format!(
                "connect with the read URL (`read_url_env`/`read_url_file`) as role `{role_name}`"
            )),
            "{warning}"
        );
        assert!(warning.contains(problem), "{problem} in {warning}");
        assert!(
            warning.contains(&format!(
                "Fix: give the read URL a role with only CONNECT, USAGE, SELECT and `pg_monitor` \
                 (like `warden_read`, see \"Recommended database roles\" in the README) \
                 instead of `{role_name}`, or take those rights from it"
            )),
            "{warning}"
        );
    }
    // Only what the role has: the signal role is not said to read files.
    let signal_warning = &warnings["signal"][0];
    for other in [
        "pg_read_server_files`",
        "pg_execute_server_program`",
        "superuser",
    ] {
        assert!(!signal_warning.contains(other), "{signal_warning}");
    }
    assert!(
        !warnings["files"][0].contains("pg_signal_backend`"),
        "{:?}",
        warnings["files"]
    );

    // Without a read URL: reads use the superuser main URL (fix: set
    // read_url_env), and the main URL is a superuser too.
    let nosplit = &warnings["nosplit"];
    assert_eq!(nosplit.len(), 2, "{nosplit:?}");
    assert!(
        nosplit.iter().any(|w| w.contains(
            "connect with the main URL (no `read_url_env` or `read_url_file` is set) as role \
             `postgres`, which is a superuser"
        ) && w
            .contains("set `read_url_env` (or `read_url_file`) of target `nosplit`")),
        "{nosplit:?}"
    );
    assert!(
        nosplit.iter().any(|w| w.contains(
            "calls other than `read` (maintenance, ddl, write, session-control, dumps) connect \
             with the main URL as role `postgres`, a superuser"
        )),
        "{nosplit:?}"
    );
    let elsewhere = &warnings["elsewhere"];
    assert_eq!(elsewhere.len(), 1, "{elsewhere:?}");
    assert!(
        elsewhere[0].contains(&format!(
            "the read URL reaches database `postgres` but the main URL reaches database `{}`",
            db.name
        )),
        "{elsewhere:?}"
    );

    // The same config, offline: no warnings, nothing connected to.
    let o = warden(&config, &["check"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("warning:"), "{}", text(&o));
    assert!(!text(&o).contains("roles checked"), "{}", text(&o));
}

#[tokio::test]
async fn check_reaches_no_database_without_connect() {
    // A port nothing listens on (bound, then freed).
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let cluster = pg::cluster();
    let db = cluster.create_database("credentials_offline").await;
    let down = format!("postgres://reader:d0wn-s3cret@127.0.0.1:{closed}/app");
    let w = World::new()
        .fixture("noop")
        .target_with_read_url("down", "postgres", &db.url, &down)
        .grant("noop", "down", &["read"], "");
    let config = w.write();

    let o = warden(&config, &["check"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("ok: 1 target(s)"), "{}", text(&o));

    // With --connect, the unreachable read URL is an error naming the target.
    let o = warden(&config, &["check", "--connect"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains(
            "target[0]: target `down`: cannot check the role of the read URL \
             (`read_url_env`/`read_url_file`):"
        ),
        "{out}"
    );
    assert!(
        out.contains("run `warden check` without `--connect`"),
        "{out}"
    );
    assert!(!out.contains("d0wn-s3cret"), "{out}");
    assert!(!out.contains(cluster.password()), "{out}");

    // An unreachable main URL too (the read URL fine).
    let w = World::new()
        .fixture("noop")
        .target_with_read_url("maindown", "postgres", &down, &db.url)
        .grant("noop", "maindown", &["read"], "");
    let config = w.write();
    assert!(warden(&config, &["check"]).status.success());
    let o = warden(&config, &["check", "--connect"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains("target `maindown`: cannot check the role of the main URL:"),
        "{out}"
    );
    assert!(!out.contains("d0wn-s3cret"), "{out}");
}

#[tokio::test]
async fn check_connect_reaches_mongodb_targets() {
    let server = mongo::server();
    let db = server.create_database("credentials").await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let w = World::new()
        .fixture("noop")
        .target_with_read_url("docs", "mongodb", &db.url, &db.url)
        .grant("noop", "docs", &["read"], "")
        .target_with_read_url(
            "gone",
            "mongodb",
            &db.url,
            &format!("mongodb://reader:m0ngo-s3cret@127.0.0.1:{closed}/x?directConnection=true"),
        )
        .grant("noop", "gone", &["read"], "");
    let config = w.write();
    assert!(warden(&config, &["check"]).status.success());
    let o = warden(&config, &["check", "--connect"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    // The test server logs in as no user: reachable, nothing to judge.
    assert!(!out.contains("target `docs`"), "{out}");
    assert!(
        out.contains("target `gone`: cannot check the role of the read URL"),
        "{out}"
    );
    assert!(!out.contains("m0ngo-s3cret"), "{out}");
}
