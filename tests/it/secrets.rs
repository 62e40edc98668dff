//! A password in a target URL never shows up in records, reports, logs or
//! CLI output — also when connections and statements fail.

use crate::world::{World, invoke, warden_bin};
use warden_tests::pg::cluster;

fn assert_clean(what: &str, text: &str, password: &str) {
    assert!(
        !text.contains(password),
        "the password leaked into {what}:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_appears_nowhere() {
    let pg = cluster();
    let password = pg.password().to_string();
    assert!(password.len() >= 8);
    let db = pg.create_database("secrets").await;
    assert!(db.url.contains(&password));
    // Same server, wrong database name: a connection error that names things.
    let bad_url = db.url.replace(&db.name, "no_such_database");
    let w = World::new()
        .pg_target("pg", &db.url)
        .pg_target("bad", &bad_url)
        .plugin("vacuum")
        .fixture("sqlprobe")
        .grant("vacuum", "pg", &["read", "maintenance"], "")
        .grant("sqlprobe", "pg", &["read"], "")
        .grant("sqlprobe", "bad", &["read"], "");
    let agent = w.agent().await;
    let mut records = Vec::new();
    records.push(invoke(&agent, "vacuum", "pg", &[], false).await);
    records.push(
        invoke(
            &agent,
            "sqlprobe",
            "pg",
            &[
                ("mode", "query"),
                ("statement", "SELECT * FROM no_such_table"),
            ],
            false,
        )
        .await,
    );
    records.push(
        invoke(
            &agent,
            "sqlprobe",
            "bad",
            &[("mode", "query"), ("statement", "SELECT 1")],
            false,
        )
        .await,
    );
    // The guest echoes whatever it can see back into its report.
    records.push(
        invoke(
            &agent,
            "sqlprobe",
            "pg",
            &[
                ("mode", "query"),
                ("statement", "SELECT current_setting('application_name')"),
            ],
            false,
        )
        .await,
    );
    assert!(records[2].error.is_some(), "{:?}", records[2]);
    for r in &records {
        assert_clean(
            "a run record",
            &serde_json::to_string(r).unwrap(),
            &password,
        );
    }
    for r in agent.store.list(100).await.unwrap() {
        assert_clean(
            "a stored record",
            &serde_json::to_string(&r).unwrap(),
            &password,
        );
    }
    drop(agent);

    // The CLI, with debug logs on stderr, in text and JSON.
    let config = w.path("warden.toml");
    for args in [
        vec!["invoke", "vacuum", "--target", "pg"],
        vec![
            "invoke",
            "sqlprobe",
            "--target",
            "bad",
            "--param",
            "mode=query",
            "--param",
            "statement=SELECT 1",
        ],
        vec![
            "invoke",
            "sqlprobe",
            "--target",
            "pg",
            "--param",
            "statement=SELECT * FROM nope",
            "--output",
            "json",
        ],
        vec!["runs", "list", "--output", "json"],
        vec!["plugins", "list", "--output", "json"],
        vec!["check"],
    ] {
        let out = std::process::Command::new(warden_bin())
            .arg("--config")
            .arg(&config)
            .args(&args)
            .env("WARDEN_LOG", "debug")
            .output()
            .unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_clean(&format!("`warden {}`", args.join(" ")), &text, &password);
        let json = std::process::Command::new(warden_bin())
            .arg("--config")
            .arg(&config)
            .arg("--log-format")
            .arg("json")
            .args(&args)
            .env("WARDEN_LOG", "debug")
            .output()
            .unwrap();
        assert_clean(
            "JSON logs",
            &String::from_utf8_lossy(&json.stderr),
            &password,
        );
    }
    // The state database's bytes, WAL included.
    for f in ["state/warden.db", "state/warden.db-wal"] {
        if let Ok(bytes) = std::fs::read(w.path(f)) {
            assert_clean(f, &String::from_utf8_lossy(&bytes), &password);
        }
    }
}
