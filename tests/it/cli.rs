//! The CLI contract: check, plugins list, invoke, runs list/show, run, and
//! config/policy errors that name file, line and field with nothing started.

use crate::world::{World, warden_bin};
use std::process::{Command, Output};

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

fn world() -> World {
    World::new()
        .sqlite_target("db", "db.sqlite")
        .fixture("noop")
        .fixture("sqlprobe")
        .grant("noop", "db", &["read"], "")
        .grant("sqlprobe", "db", &["read"], "")
}

#[test]
fn check_plugins_invoke_and_runs() {
    let w = world();
    let config = w.write();
    let o = warden(&config, &["check"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("1 target(s), 2 grant(s), 0 schedule(s), 0 rule(s), 2 plugin(s)"),
        "{}",
        text(&o)
    );

    let o = warden(&config, &["plugins", "list", "--output", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["noop", "sqlprobe"]);
    assert_eq!(list[0]["digest"].as_str().unwrap().len(), 64);
    assert_eq!(list[1]["capabilities"][0], "read");

    let o = warden(
        &config,
        &["invoke", "noop", "--target", "db", "--output", "json"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let rec: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rec["status"], "succeeded");
    assert_eq!(rec["report"]["summary"], "noop");
    let id = rec["id"].as_str().unwrap().to_string();

    // Denied: non-zero, and says why.
    let o = warden(
        &config,
        &[
            "invoke",
            "sqlprobe",
            "--target",
            "db",
            "--param",
            "statement=DROP TABLE x",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("not granted `ddl`"), "{}", text(&o));
    // Bad parameter syntax is a usage error.
    let o = warden(
        &config,
        &["invoke", "noop", "--target", "db", "--param", "novalue"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("expected KEY=VALUE"), "{}", text(&o));

    let o = warden(&config, &["runs", "list", "--output", "json"]);
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        runs.as_array().unwrap().len(),
        2,
        "the denied run is recorded too"
    );
    let o = warden(&config, &["runs", "show", &id]);
    assert!(o.status.success());
    assert!(
        text(&o).contains(&format!("run {id}: noop on db (manual): succeeded")),
        "{}",
        text(&o)
    );
    let o = warden(&config, &["runs", "show", "nope"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn config_and_policy_errors_name_file_line_and_field_and_nothing_starts() {
    let w = world();
    let config = w.write();
    // Unknown field in the agent config, on line 3.
    let original = std::fs::read_to_string(&config).unwrap();
    let broken: Vec<String> = original.lines().map(String::from).collect();
    let mut lines = broken.clone();
    lines.insert(2, "plugins_dir = \"typo\"".to_string());
    std::fs::write(&config, lines.join("\n")).unwrap();
    for cmd in [
        &["check"][..],
        &["run"][..],
        &["invoke", "noop", "--target", "db"][..],
    ] {
        let o = warden(&config, cmd);
        assert_eq!(o.status.code(), Some(2), "{cmd:?}: {}", text(&o));
        let t = text(&o);
        assert!(t.contains("warden.toml:3"), "{cmd:?}: {t}");
        assert!(t.contains("plugins_dir"), "{cmd:?}: {t}");
    }
    assert!(!w.path("state/warden.db").exists(), "nothing started");
    std::fs::write(&config, &original).unwrap();

    // Two broken policy files: every error reported, each with its place.
    std::fs::write(
        w.path("policies/a.toml"),
        "[[grant]]\nplugin = \"noop\"\ntargets = [\"db\"]\ncapabilities = [\"read\"]\nmax_runtim = \"5s\"\n",
    )
    .unwrap();
    std::fs::write(
        w.path("policies/b.toml"),
        "[[grant]]\nplugin = \"noop\"\ntargets = [\"nowhere\"]\ncapabilities = [\"fly\"]\n",
    )
    .unwrap();
    let o = warden(&config, &["check"]);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(t.contains("a.toml:5") && t.contains("max_runtim"), "{t}");
    assert!(t.contains("b.toml:4") && t.contains("fly"), "{t}");
    let o = warden(&config, &["run"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "run refuses to start: {}",
        text(&o)
    );

    // Malformed TOML.
    std::fs::remove_file(w.path("policies/b.toml")).unwrap();
    std::fs::write(w.path("policies/a.toml"), "[[grant]\nplugin = \n").unwrap();
    let o = warden(&config, &["check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("a.toml:1"), "{}", text(&o));
}

#[test]
fn a_broken_plugin_is_named_by_check() {
    let w = world();
    let config = w.write();
    std::fs::write(w.path("plugins/junk.wasm"), b"\0asm not really").unwrap();
    let o = warden(&config, &["check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("junk.wasm"), "{}", text(&o));
}

#[test]
fn run_serves_until_sigterm() {
    use std::io::{BufRead, BufReader};
    let w = world();
    let config = w.write();
    let mut child = Command::new(warden_bin())
        .arg("--config")
        .arg(&config)
        .args(["--log-format", "json", "run"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("warden run never said it was running");
        if line.contains("warden is running") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["fields"]["plugins"], 2, "{line}");
            break;
        }
    }
    assert!(child.try_wait().unwrap().is_none(), "still running");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn components_are_cached_by_content_hash() {
    let w = world();
    let config = w.write();
    let o = warden(&config, &["plugins", "list", "--output", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cache = warden_tests::repo_root().join("target/test-component-cache");
    let entries: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for p in list.as_array().unwrap() {
        let digest = p["digest"].as_str().unwrap();
        assert!(
            entries
                .iter()
                .any(|e| e.starts_with(digest) && e.ends_with(".cwasm")),
            "no cache entry for {digest} in {entries:?}"
        );
    }
}
