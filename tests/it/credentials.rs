//! Credentials per capability class and `warden check --connect`, against
//! the real PostgreSQL cluster (and the MongoDB-wire test server): every
//! role that could do more than read is warned about when `read` calls use
//! it, naming the target, the role and the grant; a role fit for reads is
//! not; plain `warden check` reaches no database.

use crate::world::{World, error_of, invoke, metric, warden_bin};
use sqlx::{Connection as _, PgConnection};
use std::collections::BTreeMap;
use std::process::{Command, Output};
use warden::runs::{ActionState, RunStatus};
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
    lines_by_target(o, "warning: ")
}

/// The `error: ` lines of `warden check`, by the target they name.
fn errors_by_target(o: &Output) -> BTreeMap<String, Vec<String>> {
    lines_by_target(o, "error: ")
}

/// The stderr lines starting with `prefix` (without it), by the target
/// they name first.
fn lines_by_target(o: &Output, prefix: &str) -> BTreeMap<String, Vec<String>> {
    let mut by_target: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&o.stderr).lines() {
        let Some(warning) = line.strip_prefix(prefix) else {
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
             GRANT pg_read_all_stats TO \"{name}\";
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
    // may legitimately need pg_signal_backend: no warning for the main URL),
    // owner of the table it maintains.
    let maint = login_role(
        &db.name,
        &role("maint"),
        "",
        "GRANT pg_signal_backend TO {r}; ALTER TABLE items OWNER TO {r};",
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
        // 10, and the NOINHERIT role does not use `pg_read_all_stats`.
        out.contains("ok: roles checked on 11 target(s), 11 warning(s)"),
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
        let found: Vec<&String> = found
            .iter()
            .filter(|w| !w.contains("which is not in `pg_read_all_stats`"))
            .collect();
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

/// The SQL between `Fix: \`` and the next backtick of a line.
fn fix_of(line: &str) -> String {
    let (_, rest) = line
        .split_once("Fix: `")
        .unwrap_or_else(|| panic!("no fix in {line}"));
    rest.split_once('`')
        .unwrap_or_else(|| panic!("unclosed fix in {line}"))
        .0
        .to_owned()
}

/// The lines of `out` starting with `error: `.
fn error_lines(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("error: ")).collect()
}

#[tokio::test]
async fn check_connect_names_what_pg_dump_cannot_read_with_the_grant_that_fixes_it() {
    let cluster = pg::cluster();
    let db = cluster.create_database("preflight_dump").await;
    let dumper = format!("pf_dump_{}", std::process::id());
    // Each member of the class: a sequence without SELECT (public), a schema
    // without USAGE (hidden), a sequence in a schema whose tables it may read
    // (ledger), a table under row-level security (secured).
    as_superuser(
        &db.name,
        "CREATE TABLE items (id serial PRIMARY KEY, v text);
         CREATE SCHEMA hidden; CREATE TABLE hidden.notes (n int);
         CREATE SCHEMA ledger; CREATE TABLE ledger.entries (n int);
         CREATE SEQUENCE ledger.numbers;
         CREATE TABLE secured (n int); ALTER TABLE secured ENABLE ROW LEVEL SECURITY;",
    )
    .await;
    let url = login_role(
        &db.name,
        &dumper,
        "",
        "GRANT USAGE ON SCHEMA ledger TO {r}; GRANT SELECT ON ALL TABLES IN SCHEMA ledger TO {r};",
    )
    .await;
    let w = World::new()
        .fixture("noop")
        .store("s")
        .pg_target("app", &url)
        .grant("noop", "app", &["read"], "artifacts = [\"s\"]");
    let config = w.write();
    let location = grant_location(&w, "app");

    let o = warden(&config, &["check", "--connect"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(!out.contains(&format!("pw-{dumper}")), "{out}");
    let errors = errors_by_target(&o);
    let app = &errors["app"];
    assert_eq!(app.len(), 4, "{app:#?}");
    let about = |needle: &str| -> &String {
        app.iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no error with {needle}:\n{app:#?}"))
    };
    for line in app {
        assert!(
            line.starts_with(&format!("{location}: capabilities: target `app`: dumps (`artifacts`, granted to `noop` at {location}) run pg_dump with the main URL as role `{dumper}`")),
            "{line}"
        );
    }
    let public = about("SELECT on 1 sequence(s): \"public\".\"items_id_seq\"");
    assert!(!public.contains("\"items\""), "{public}");
    assert_eq!(
        fix_of(public),
        format!("GRANT SELECT ON ALL SEQUENCES IN SCHEMA \"public\" TO \"{dumper}\";")
    );
    let hidden = about("USAGE on schema `hidden`");
    assert!(
        hidden.contains("SELECT on 1 table(s): \"hidden\".\"notes\""),
        "{hidden}"
    );
    assert_eq!(
        fix_of(hidden),
        format!(
            "GRANT USAGE ON SCHEMA \"hidden\" TO \"{dumper}\"; GRANT SELECT ON ALL TABLES IN \
             SCHEMA \"hidden\" TO \"{dumper}\";"
        )
    );
    let ledger = about("\"ledger\".\"numbers\"");
    assert!(!ledger.contains("entries"), "{ledger}");
    let secured = about("row-level security");
    assert!(
        secured.contains("1 table(s): \"public\".\"secured\""),
        "{secured}"
    );
    assert_eq!(
        fix_of(secured),
        format!("ALTER ROLE \"{dumper}\" BYPASSRLS;")
    );

    // The fixes, run as they are printed, make the check pass.
    for line in app {
        as_superuser(&db.name, &fix_of(line)).await;
    }
    let o = warden(&config, &["check", "--connect"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(error_lines(&out).is_empty(), "{out}");
    assert!(!out.contains("dumps"), "{out}");
}

#[tokio::test]
async fn check_connect_lists_the_tables_a_maintenance_role_may_not_maintain() {
    let cluster = pg::cluster();
    let db = cluster.create_database("preflight_maint").await;
    let pid = std::process::id();
    let (maint, owner_a, owner_b) = (
        format!("pf_maint_{pid}"),
        format!("pf_owner_a_{pid}"),
        format!("pf_owner_b_{pid}"),
    );
    let url = login_role(&db.name, &maint, "", "").await;
    // Tables of two owners (a plain table, a materialized view, a
    // partitioned table and its partition), a sequence (not maintained) and
    // a table of its own (fine).
    as_superuser(
        &db.name,
        &format!(
            "CREATE ROLE \"{owner_a}\" NOLOGIN; CREATE ROLE \"{owner_b}\" NOLOGIN;
             CREATE TABLE orders (id int); ALTER TABLE orders OWNER TO \"{owner_a}\";
             CREATE MATERIALIZED VIEW totals AS SELECT count(*) FROM orders;
             ALTER MATERIALIZED VIEW totals OWNER TO \"{owner_a}\";
             CREATE TABLE events (at date) PARTITION BY RANGE (at);
             CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
             ALTER TABLE events OWNER TO \"{owner_b}\"; ALTER TABLE events_2026 OWNER TO \"{owner_b}\";
             CREATE SEQUENCE tickets; ALTER SEQUENCE tickets OWNER TO \"{owner_b}\";
             CREATE TABLE mine (id int); ALTER TABLE mine OWNER TO \"{maint}\";"
        ),
    )
    .await;
    // A database owner may vacuum every table of its database.
    let owned_db = cluster.create_database("preflight_dbowner").await;
    let db_owner = format!("pf_dbowner_{pid}");
    let owner_url = login_role(&owned_db.name, &db_owner, "", "").await;
    as_superuser(
        &owned_db.name,
        &format!(
            "CREATE TABLE stray (id int); ALTER DATABASE \"{}\" OWNER TO \"{db_owner}\";",
            owned_db.name
        ),
    )
    .await;
    let w = World::new()
        .fixture("sqlprobe")
        .pg_target("app", &url)
        .grant(
            "sqlprobe",
            "app",
            &["read", "maintenance", "ddl", "session-control"],
            "",
        )
        .pg_target("owned", &owner_url)
        .grant("sqlprobe", "owned", &["read", "maintenance"], "");
    let config = w.write();
    let location = grant_location(&w, "app");

    let o = warden(&config, &["check", "--connect"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    let errors = errors_by_target(&o);
    assert!(!errors.contains_key("owned"), "{out}");
    let app = &errors["app"];
    // Maintenance and ddl, each per owner; session-control once.
    assert_eq!(app.len(), 5, "{app:#?}");
    let one = |needles: &[&str]| -> &String {
        let found: Vec<&String> = app
            .iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .collect();
        assert_eq!(found.len(), 1, "{needles:?} in {app:#?}");
        found[0]
    };
    let granted = format!("granted to `sqlprobe` at {location}");
    let maint_a = one(&["may not VACUUM or ANALYZE", &owner_a]);
    assert!(
        maint_a.contains(&format!(
            "`maintenance` calls ({granted}) connect with the main URL as role `{maint}`, which \
             may not VACUUM or ANALYZE 2 table(s) owned by `{owner_a}` (PostgreSQL skips them \
             with only a warning): \"public\".\"orders\", \"public\".\"totals\"."
        )),
        "{maint_a}"
    );
    assert_eq!(
        fix_of(maint_a),
        format!("GRANT \"{owner_a}\" TO \"{maint}\";")
    );
    let maint_b = one(&["may not VACUUM or ANALYZE", &owner_b]);
    assert!(
        maint_b.contains("2 table(s) owned by")
            && maint_b.contains("\"public\".\"events\", \"public\".\"events_2026\"."),
        "{maint_b}"
    );
    for line in app {
        assert!(
            !line.contains("tickets") && !line.contains("\"mine\""),
            "{line}"
        );
    }
    let ddl_a = one(&["CREATE or DROP an INDEX", &owner_a]);
    assert_eq!(
        fix_of(ddl_a),
        format!("GRANT \"{owner_a}\" TO \"{maint}\";")
    );
    one(&["CREATE or DROP an INDEX", &owner_b]);
    let sessions = one(&["`session-control` calls"]);
    assert_eq!(
        fix_of(sessions),
        format!("GRANT pg_signal_backend TO \"{maint}\";")
    );

    for line in app {
        as_superuser(&db.name, &fix_of(line)).await;
    }
    let o = warden(&config, &["check", "--connect"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(error_lines(&out).is_empty(), "{out}");
}

#[tokio::test]
async fn check_connect_says_why_a_login_fails_without_the_password() {
    let cluster = pg::cluster();
    let db = cluster.create_database("preflight_login").await;
    let locked = cluster.create_database("preflight_locked").await;
    let pid = std::process::id();
    let user = format!("pf_login_{pid}");
    login_role(&db.name, &user, "", "").await;
    let nologin = format!("pf_nologin_{pid}");
    as_superuser(
        &db.name,
        &format!(
            "CREATE ROLE \"{nologin}\" NOLOGIN PASSWORD 'n0login-s3cret';
             REVOKE CONNECT ON DATABASE \"{}\" FROM PUBLIC;",
            locked.name
        ),
    )
    .await;
    let port = cluster.port();
    let url =
        |who: &str, pw: &str, db: &str| format!("postgres://{who}:{pw}@127.0.0.1:{port}/{db}");
    let cases = [
        ("wrongpw", url(&user, "wr0ng-s3cret", &db.name)),
        (
            "unknown",
            url(&format!("pf_nobody_{pid}"), "n0body-s3cret", &db.name),
        ),
        ("nologin", url(&nologin, "n0login-s3cret", &db.name)),
        ("nodb", url(&user, &format!("pw-{user}"), "pf_missing_db")),
        ("noconnect", url(&user, &format!("pw-{user}"), &locked.name)),
    ];
    let mut w = World::new().fixture("noop");
    for (name, u) in &cases {
        w = w.pg_target(name, u).grant("noop", name, &["read"], "");
    }
    let config = w.write();
    let o = warden(&config, &["check", "--connect"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    for secret in [
        "wr0ng-s3cret",
        "n0body-s3cret",
        "n0login-s3cret",
        "pw-pf_login",
    ] {
        assert!(!out.contains(secret), "{secret} in {out}");
    }
    let errors = errors_by_target(&o);
    let expect = [
        (
            "wrongpw",
            "password authentication failed".to_owned(),
            format!("put the right password of role `{user}` in the main URL"),
        ),
        (
            "unknown",
            "password authentication failed".to_owned(),
            "put the right password of role `pf_nobody_".to_owned(),
        ),
        (
            "nologin",
            "is not permitted to log in".to_owned(),
            format!("CREATE ROLE \"{nologin}\" LOGIN"),
        ),
        (
            "nodb",
            "does not exist".to_owned(),
            "create database `pf_missing_db`".to_owned(),
        ),
        (
            "noconnect",
            "permission denied for database".to_owned(),
            format!(
                "`GRANT CONNECT ON DATABASE \"{}\" TO \"{user}\";`",
                locked.name
            ),
        ),
    ];
    for (target, said, fix) in &expect {
        let lines = errors
            .get(*target)
            .unwrap_or_else(|| panic!("no error for {target}:\n{out}"));
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert!(
            line.contains(&format!(
                "target `{target}`: cannot check the role of the main URL: "
            )),
            "{line}"
        );
        assert!(line.contains(said.as_str()), "{said} in {line}");
        assert!(
            line.contains(&format!("Fix: {fix}")) || line.contains(fix.as_str()),
            "{fix} in {line}"
        );
        let location = grant_location(&w, target);
        assert!(line.contains(&format!("`noop` at {location}")), "{line}");
    }
}

/// Runs a file of `;`-terminated statements one by one as the superuser
/// (CREATE DATABASE may not share a transaction).
async fn run_sql_file(db: &str, path: &std::path::Path) {
    let sql = std::fs::read_to_string(path).unwrap();
    let statements: Vec<String> = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .split(';')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    assert!(statements.len() > 10, "{statements:?}");
    for statement in statements {
        as_superuser(db, &statement).await;
    }
}

fn repo_file(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_roles_pass_the_preflight_for_every_shipped_plugin() {
    let cluster = pg::cluster();
    // The database of examples/roles/postgres-15.sql, with the test
    // template's extensions (pg_stat_statements, hypopg, pg_qualstats) and
    // tables of `app_owner`, one with a sequence.
    as_superuser(
        "postgres",
        &format!("CREATE DATABASE app TEMPLATE {}", pg::TEMPLATE_DB),
    )
    .await;
    as_superuser(
        "app",
        "CREATE ROLE app_owner NOLOGIN;
         CREATE TABLE orders (id serial PRIMARY KEY, total numeric);
         CREATE TABLE customers (id int PRIMARY KEY, name text);
         ALTER TABLE orders OWNER TO app_owner; ALTER TABLE customers OWNER TO app_owner;",
    )
    .await;
    // As the README says: in the application database (the grants on
    // schemas and tables are per database).
    run_sql_file("app", &repo_file("examples/roles/postgres-15.sql")).await;

    let port = cluster.port();
    let url =
        |who: &str, pw: &str, db: &str| format!("postgres://{who}:{pw}@127.0.0.1:{port}/{db}");
    let read = url("warden_read", "change-me-read", "app");
    let main = url("warden_maint", "change-me-maint", "app");
    let scratch = url("warden_restore", "change-me-restore", "app_scratch");
    let runbooks = tempfile::tempdir().unwrap();
    let w = World::new()
        .plugin("vacuum")
        .plugin("index-advisor")
        .plugin("runbook")
        .plugin("backup")
        .config(&format!("[runbooks]\ndir = {:?}\n", runbooks.path().display().to_string()))
        .store("s")
        .target_with_read_url("app", "postgres", &main, &read)
        .pg_target("scratch", &scratch)
        .policy(
            "[[grant]]\nplugin = \"vacuum\"\ntargets = [\"app\"]\ncapabilities = [\"read\", \"maintenance\"]\n\n\
             [[grant]]\nplugin = \"index-advisor\"\ntargets = [\"app\"]\ncapabilities = [\"read\", \"write\", \"ddl\"]\n\n\
             [[grant]]\nplugin = \"runbook\"\ntargets = [\"app\"]\ncapabilities = [\"read\", \"maintenance\", \"write\", \"session-control\"]\n\n\
             [[grant]]\nplugin = \"backup\"\ntargets = [\"app\"]\ncapabilities = [\"read\"]\nartifacts = [\"s\"]\nrestore_to = [\"scratch\"]\n",
        );
    let config = w.write();

    // The test database has extensions only a superuser may create: a
    // verification restore into app_scratch would fail, and says so.
    let o = warden(&config, &["check", "--connect"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(!out.contains("change-me"), "{out}");
    assert!(!out.contains("warning:"), "{out}");
    let errors = errors_by_target(&o);
    assert_eq!(errors.keys().collect::<Vec<_>>(), ["scratch"], "{out}");
    let scratch_errors = &errors["scratch"];
    assert!(!scratch_errors.is_empty(), "{out}");
    for line in scratch_errors {
        assert!(
            line.contains("restores into it (`restore_to` of `backup` on target `app` at ")
                && line.contains("is not trusted: only a superuser can create it"),
            "{line}"
        );
    }
    assert!(
        scratch_errors
            .iter()
            .any(|l| l.contains("extension `pg_stat_statements` of target `app`")),
        "{scratch_errors:#?}"
    );

    // And so it does.
    let agent = w.agent().await;
    let r = invoke(
        &agent,
        "backup",
        "app",
        &[
            ("store", "s"),
            ("verify", "true"),
            ("verify_target", "scratch"),
        ],
        false,
    )
    .await;
    let restore = r
        .actions
        .iter()
        .find(|a| a.target == "scratch")
        .unwrap_or_else(|| panic!("no restore: {r:#?}"));
    assert_eq!(restore.state, ActionState::Failed, "{r:#?}");
    let why = restore.error.clone().unwrap_or_default();
    assert!(
        why.contains("permission denied to create extension"),
        "{why}"
    );
    assert_eq!(metric(&r, "verified"), 0.0, "{r:#?}");
    drop(agent);

    // Without them (a trusted extension instead), the README's roles pass
    // clean: no error, no warning.
    as_superuser(
        "app",
        "DROP EXTENSION IF EXISTS pg_stat_statements; DROP EXTENSION IF EXISTS hypopg;
         DROP EXTENSION IF EXISTS pg_qualstats; CREATE EXTENSION IF NOT EXISTS pgcrypto;",
    )
    .await;
    let o = warden(&config, &["check", "--connect"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(error_lines(&out).is_empty(), "{out}");
    assert!(!out.contains("warning:"), "{out}");
    assert!(
        out.contains("ok: roles checked on 2 target(s), 0 warning(s)"),
        "{out}"
    );

    // And the runs do what the check promised: vacuum really vacuums a
    // table of `app_owner` (a role that may not is skipped by PostgreSQL
    // with a mere warning), and backup dumps and restores into the scratch
    // database for verification.
    as_superuser(
        "app",
        "ALTER TABLE orders SET (autovacuum_enabled = false);
         INSERT INTO orders (total) SELECT g FROM generate_series(1, 20000) g;
         DELETE FROM orders WHERE id % 5 <> 0;",
    )
    .await;
    let superuser_app = cluster.url_for("app");
    warden_tests::wait_for(
        "the deletes to be counted",
        std::time::Duration::from_secs(15),
        || {
            let url = superuser_app.clone();
            async move { crate::vacuum::stat(&url, "orders").await.0 >= 16000 }
        },
    )
    .await;
    let agent = w.agent().await;
    let r = invoke(&agent, "vacuum", "app", &[], false).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:#?}");
    warden_tests::wait_for(
        "orders to be vacuumed",
        std::time::Duration::from_secs(15),
        || {
            let url = superuser_app.clone();
            async move { crate::vacuum::stat(&url, "orders").await.1.is_some() }
        },
    )
    .await;
    let r = invoke(
        &agent,
        "backup",
        "app",
        &[
            ("store", "s"),
            ("verify", "true"),
            ("verify_target", "scratch"),
        ],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{} {r:#?}", error_of(&r));
    assert_eq!(metric(&r, "verified"), 1.0, "{r:#?}");

    // Fault class: the restore role without CREATE on the scratch database.
    as_superuser(
        "postgres",
        "ALTER DATABASE app_scratch OWNER TO postgres;
         REVOKE CREATE ON DATABASE app_scratch FROM PUBLIC;
         GRANT CONNECT ON DATABASE app_scratch TO warden_restore;",
    )
    .await;
    let o = warden(&config, &["check", "--connect"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    let errors = errors_by_target(&o);
    let lines = &errors["scratch"];
    assert!(
        lines
            .iter()
            .any(|l| l.contains("lacks CREATE on database `app_scratch`")
                && fix_of(l) == "GRANT CREATE ON DATABASE \"app_scratch\" TO \"warden_restore\";"),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("lacks CREATE on schema `public`")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn check_connect_finds_sqlite_files_that_cannot_be_used() {
    let w = World::new().fixture("sqlprobe");
    let good = w.path("good.db");
    warden_tests::create_sqlite(&good, "CREATE TABLE t (id int)").await;
    std::fs::write(w.path("notes.db"), "these are notes, not a database\n").unwrap();
    std::fs::create_dir(w.path("folder.db")).unwrap();
    let mut w = w;
    for (name, file) in [
        ("good", "good.db"),
        ("missing", "missing.db"),
        ("notes", "notes.db"),
        ("folder", "folder.db"),
    ] {
        w = w
            .sqlite_target(name, file)
            .grant("sqlprobe", name, &["read", "maintenance"], "");
    }
    let config = w.write();
    let o = warden(&config, &["check", "--connect"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    let errors = errors_by_target(&o);
    assert!(!errors.contains_key("good"), "{out}");
    for (target, why) in [
        ("missing", "the file does not exist"),
        ("notes", "it is not a SQLite database (no SQLite header)"),
        ("folder", "it is not a regular file"),
    ] {
        let lines = errors
            .get(target)
            .unwrap_or_else(|| panic!("no error for {target}:\n{out}"));
        assert!(
            lines.iter().any(
                |l| l.contains(&format!("target `{target}`: the SQLite file "))
                    && l.contains(why)
                    && l.contains(&format!("`sqlprobe` at {}", grant_location(&w, target)))
            ),
            "{why}: {lines:#?}"
        );
    }
}
