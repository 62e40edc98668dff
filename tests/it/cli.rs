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
            assert_eq!(v["plugins"], 2, "{line}");
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

/// Panics if `o`'s stdout or stderr holds a character a terminal acts on
/// (anything of `warden::text::is_hidden` but the line feeds between lines)
/// or a line forged by plugin text.
fn assert_shown_safely(what: &str, o: &Output) {
    for (stream, bytes) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
        let out = String::from_utf8(bytes.clone())
            .unwrap_or_else(|e| panic!("{what}: {stream} is not UTF-8: {e}"));
        if let Some(c) = out
            .chars()
            .find(|&c| c != '\n' && warden::text::is_hidden(c))
        {
            panic!(
                "{what}: U+{:04X} reached {stream} raw:\n{}",
                u32::from(c),
                out.escape_debug()
            );
        }
        for line in out.lines() {
            assert!(
                !line.starts_with("status: ok")
                    && !line.starts_with("status: Ok - all good")
                    && !line.starts_with("ok: 9 target(s)"),
                "{what}: forged line {line:?} in {stream}:\n{out}"
            );
        }
    }
}

#[test]
fn plugin_text_never_reaches_the_terminal_raw() {
    let w = World::new()
        .sqlite_target("db", "db.sqlite")
        .fixture("termjack")
        .grant("termjack", "db", &["read"], "");
    let config = w.write();
    // The escaped forms that must be shown instead.
    let clear = r"\x1b[2J\x1b[H\x1b[31mred\x1b[0m";
    let link = r"\x1b]8;;http://evil.example/\x07link\x1b]8;;\x07";
    let forged = r"fail\rstatus: ok\nstatus: Ok - all good";
    let bidi = r"\u{202e}ko :sutats\u{202c} \u{2066}x\u{2069}";

    let o = warden(&config, &["check"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_shown_safely("check", &o);

    let o = warden(&config, &["plugins", "list"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_shown_safely("plugins list", &o);
    assert!(
        text(&o).contains(r"0.1.0\x1b[2J\r\u{202e}"),
        "the version is shown escaped: {}",
        text(&o)
    );

    // A report, text logs on stderr at info (plugin log lines included),
    // and the same through `runs show` and `runs list`.
    let mut ids = Vec::new();
    for (fail, log_format) in [("false", "text"), ("true", "text"), ("false", "json")] {
        let what = format!("invoke fail={fail} --log-format {log_format}");
        let o = Command::new(warden_bin())
            .arg("--config")
            .arg(&config)
            .args(["--log-format", log_format])
            .args(["invoke", "termjack", "--target", "db", "--param"])
            .arg(format!("fail={fail}"))
            .env("WARDEN_LOG", "info")
            .output()
            .unwrap();
        assert_shown_safely(&what, &o);
        let t = text(&o);
        let stdout = String::from_utf8_lossy(&o.stdout);
        let id = stdout
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("run "))
            .and_then(|l| l.split(':').next())
            .unwrap_or_else(|| panic!("{what}: no run line: {t}"))
            .to_string();
        for shown in [clear, link, forged, bidi] {
            assert!(stdout.contains(shown), "{what}: {shown} not shown: {t}");
        }
        if log_format == "text" {
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(
                stderr.contains(&format!("warn {clear}")),
                "{what}: the plugin's log line is in the agent log, escaped: {stderr}"
            );
        }
        if fail == "true" {
            assert_eq!(o.status.code(), Some(1), "{t}");
            assert!(stdout.contains("error (Guest"), "{t}");
        } else {
            assert!(o.status.success(), "{t}");
            assert!(
                stdout.contains(r"      line one") && stdout.contains(r"      last\x1b[2K"),
                "a detail keeps its lines, each indented: {t}"
            );
        }
        ids.push(id);
    }
    // JSON output: the same values, hidden characters as `\uXXXX`.
    for args in [
        &["invoke", "termjack", "--target", "db", "--output", "json"][..],
        &["runs", "show", &ids[0], "--output", "json"][..],
        &["runs", "list", "--output", "json"][..],
        &["plugins", "list", "--output", "json"][..],
    ] {
        let o = warden(&config, args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        assert_shown_safely(&format!("{args:?}"), &o);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let v = if v.is_array() { v[0].clone() } else { v };
        let s = v["report"]["summary"]
            .as_str()
            .or(v["version"].as_str())
            .unwrap_or_else(|| panic!("{args:?}: {v}"));
        assert!(
            s.contains("\x1b[2J") && s.contains('\u{202e}'),
            "{args:?}: {s:?}"
        );
    }
    for id in &ids {
        let o = warden(&config, &["runs", "show", id]);
        assert!(o.status.success(), "{}", text(&o));
        assert_shown_safely("runs show", &o);
        assert!(text(&o).contains(forged), "{}", text(&o));
    }
    let o = warden(&config, &["runs", "list"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_shown_safely("runs list", &o);
    // The header and one line per run.
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 5);

    // A manifest name with terminal sequences: refused, and the refusal
    // shows it escaped, in `check` and in every command that loads plugins.
    std::fs::copy(
        warden_tests::fixture_wasm("termjack-name"),
        w.path("plugins/termjack-name.wasm"),
    )
    .unwrap();
    for cmd in [
        &["check"][..],
        &["plugins", "list"][..],
        &["runs", "list"][..],
    ] {
        let o = warden(&config, cmd);
        assert_eq!(o.status.code(), Some(2), "{cmd:?}: {}", text(&o));
        assert_shown_safely(&format!("{cmd:?} with a hostile name"), &o);
        let t = text(&o);
        assert!(
            t.contains(r"plugin name `x\x1b[2J\x1b]0;owned\x07\rok: 9 target(s)\nstatus: ok\u{202e}\u{9b}\0`"),
            "{cmd:?}: {t}"
        );
    }
}

/// `runs list`: a header, filters that combine, `--since` as a duration or
/// a time; a reader that goes away is a normal end (no panic); the state
/// database is private to the agent's user.
#[test]
fn runs_list_filters_broken_pipes_and_a_private_state_database() {
    let w = world()
        .sqlite_target("db2", "db2.sqlite")
        .grant("noop", "db2", &["read"], "");
    let config = w.write();
    std::fs::File::create(w.path("db.sqlite")).unwrap();
    for (plugin, target) in [("noop", "db"), ("noop", "db2"), ("sqlprobe", "db")] {
        let mut args = vec!["invoke", plugin, "--target", target];
        if plugin == "sqlprobe" {
            args.extend(["--param", "statement=SELECT 1"]);
        }
        let o = warden(&config, &args);
        assert!(o.status.success(), "{}", text(&o));
    }
    let rows = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["runs", "list"];
        all.extend_from_slice(args);
        let o = warden(&config, &all);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        let out = String::from_utf8(o.stdout).unwrap();
        let mut lines = out.lines();
        let header = lines.next().unwrap();
        assert!(
            header.starts_with("ID") && header.contains("STATUS") && header.contains("TARGET"),
            "{header}"
        );
        lines.map(str::to_string).collect()
    };
    assert_eq!(rows(&[]).len(), 3);
    assert_eq!(rows(&["--plugin", "noop"]).len(), 2);
    assert_eq!(rows(&["--target", "db2"]).len(), 1);
    assert!(rows(&["--target", "db2"])[0].contains("noop"));
    assert_eq!(rows(&["--plugin", "noop", "--target", "db"]).len(), 1);
    assert_eq!(rows(&["--plugin", "sqlprobe", "--target", "db2"]).len(), 0);
    assert_eq!(rows(&["--since", "1h"]).len(), 3);
    assert_eq!(rows(&["--since", "2000-01-01T00:00:00Z"]).len(), 3);
    assert_eq!(rows(&["--since", "2099-01-01T00:00:00Z"]).len(), 0);
    assert_eq!(rows(&["--status", "succeeded", "--since", "10m"]).len(), 3);
    assert_eq!(rows(&["--status", "failed"]).len(), 0);
    for bad in ["yesterday", "-5m", "2026-13-01"] {
        let o = warden(&config, &["runs", "list", &format!("--since={bad}")]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o));
        assert!(text(&o).contains("--since"), "{bad}: {}", text(&o));
    }

    // A reader that closed its end before the command wrote: exit 0, no
    // panic, nothing on stderr (as `warden runs list | head -0` would).
    for args in [
        &["runs", "list"][..],
        &["runs", "list", "--output", "json"][..],
        &["plugins", "list"][..],
    ] {
        let mut child = Command::new(warden_bin())
            .arg("--config")
            .arg(&config)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
        assert!(o.stderr.is_empty(), "{args:?}: {}", text(&o));
    }

    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &str| std::fs::metadata(w.path(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("state"), 0o700);
    assert_eq!(mode("state/warden.db"), 0o600);
    for p in ["state/warden.db-wal", "state/warden.db-shm"] {
        if w.path(p).exists() {
            assert_eq!(mode(p), 0o600, "{p}");
        }
    }
}

/// `warden --help` and every subcommand's, against `tests/cmd/*.toml` and
/// their `.stdout` (rewrite them with `TRYCMD=overwrite` after changing the
/// CLI, and read the diff).
#[test]
fn help_texts_match_their_snapshots() {
    trycmd::TestCases::new()
        .register_bin("warden", warden_bin())
        .case(concat!(env!("CARGO_MANIFEST_DIR"), "/cmd/*.toml"));
}

/// Splits a shell command line into words: spaces separate, double and
/// single quotes group, and an unquoted `#` after a space starts a comment.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '#') if !in_word => break,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Every `warden …` (or `$W …`) command in the README's `sh` blocks is one
/// the CLI accepts: its subcommand, flags and values parse.
#[test]
fn the_readmes_commands_parse() {
    use clap::Parser as _;
    let readme = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let text = std::fs::read_to_string(readme).unwrap();
    let mut in_sh = false;
    let mut checked = Vec::new();
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with("```") {
            in_sh = !in_sh && line == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let mut words = shell_words(line);
        match words.first().map(String::as_str) {
            Some("warden") => {}
            Some("$W") => {
                words.splice(
                    0..1,
                    ["warden", "--config", "warden.toml"].map(String::from),
                );
            }
            _ => continue,
        }
        if let Err(e) = warden::cli::Cli::try_parse_from(&words) {
            problems.push(format!("README.md:{}: `{line}`: {e}", n + 1));
        }
        checked.push(words.join(" "));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The quick start's and the approvals' examples were found.
    for expected in ["--config warden.toml", "approve", "reject"] {
        assert!(
            checked.iter().any(|c| c.contains(expected)),
            "no README command with `{expected}` among {checked:?}"
        );
    }
    assert!(
        checked.len() >= 8,
        "only {} README commands found",
        checked.len()
    );
}

#[test]
fn shell_words_split_like_a_shell() {
    assert_eq!(
        shell_words(r#"warden reject RUN --reason "not during the sale"   # why"#),
        ["warden", "reject", "RUN", "--reason", "not during the sale"]
    );
    assert_eq!(shell_words("a 'b c'd #e"), ["a", "b cd"]);
    assert_eq!(shell_words("a#b c"), ["a#b", "c"]);
    assert_eq!(shell_words("# all comment"), Vec::<String>::new());
}
