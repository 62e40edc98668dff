//! The log files capability (`warden:plugin/logs`) through a real plugin
//! (`logprobe`): a granted file comes back exactly, forwards, backwards and
//! as lines, in chunks within the grant's cap; everything else (other
//! files, `..`, symlinks out of the granted directory, subdirectories,
//! directories, FIFOs, missing files, no grant) is refused with an error
//! that says why.

use crate::world::{World, error_of, finding, invoke, metric};
use std::path::Path;
use std::time::{Duration, Instant};
use warden::agent::Agent;
use warden::runs::{RunRecord, RunStatus};

/// A log of 60 lines of varied lengths, one empty line, one line longer
/// than the grant's cap (1 KiB) and a last line without `\n`.
fn log_text() -> String {
    let mut text = String::new();
    for i in 0..60 {
        let pad = "x".repeat((i * 37) % 150);
        text.push_str(&format!(
            "{{\"t\":{{\"$date\":\"2026-11-22T06:{:02}:00Z\"}},\"msg\":\"Slow query\",\"i\":{i},\"pad\":\"{pad}\"}}\n",
            i % 60
        ));
        if i == 20 {
            text.push('\n');
        }
        if i == 40 {
            text.push_str(&"L".repeat(1500));
            text.push('\n');
        }
    }
    text.push_str("{\"msg\":\"last line, still being written\"");
    text
}

struct Fixture {
    world: World,
    agent: Agent,
    logs: String,
    text: String,
}

async fn fixture() -> Fixture {
    let world = World::new()
        .fixture("logprobe")
        .sqlite_target("db", "db.sqlite");
    let root = world.dir.path().to_path_buf();
    let logs = root.join("logs");
    std::fs::create_dir_all(logs.join("sub")).unwrap();
    let text = log_text();
    std::fs::write(logs.join("mongod.log"), &text).unwrap();
    std::fs::write(logs.join("sub/nested.log"), "nested\n").unwrap();
    std::fs::write(root.join("secret.log"), "secret\n").unwrap();
    std::fs::write(root.join("single.log"), "one\ntwo\n").unwrap();
    std::os::unix::fs::symlink(root.join("secret.log"), logs.join("link.log")).unwrap();
    std::os::unix::fs::symlink(logs.join("mongod.log"), logs.join("current.log")).unwrap();
    let fifo = std::ffi::CString::new(logs.join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo has no other requirement.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let world = world.grant(
        "logprobe",
        "db",
        &["read"],
        &format!(
            "log_files = [\"{}/\", \"{}\"]\nmax_result_bytes = \"1KiB\"",
            logs.display(),
            root.join("single.log").display()
        ),
    );
    let agent = world.agent().await;
    Fixture {
        world,
        agent,
        logs: logs.display().to_string(),
        text,
    }
}

async fn probe(agent: &Agent, params: &[(&str, &str)]) -> RunRecord {
    invoke(agent, "logprobe", "db", params, false).await
}

fn path_of(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_file_reads_back_exactly_in_bounded_chunks() {
    let f = fixture().await;
    let path = format!("{}/mongod.log", f.logs);
    let size = f.text.len() as f64;

    for mode in ["forward", "back"] {
        for chunk in ["64", "100", "0", "1000000"] {
            let rec = probe(
                &f.agent,
                &[("path", &path), ("mode", mode), ("chunk", chunk)],
            )
            .await;
            assert_eq!(
                rec.status,
                RunStatus::Succeeded,
                "{mode} {chunk}: {}",
                error_of(&rec)
            );
            assert_eq!(finding(&rec, "content"), f.text, "{mode} {chunk}");
            assert_eq!(metric(&rec, "bytes"), size);
            assert_eq!(metric(&rec, "file_size"), size);
            let cap = match chunk {
                "64" => 64.0,
                "100" => 100.0,
                // 0 and anything larger: the grant's max_result_bytes.
                _ => 1024.0,
            };
            assert!(metric(&rec, "max_chunk") <= cap, "{mode} {chunk}");
            assert!(
                metric(&rec, "chunks") >= (size / cap).ceil(),
                "{mode} {chunk}"
            );
            // The 1500-byte line is longer than any chunk: it is cut.
            assert!(metric(&rec, "long_lines") >= 1.0, "{mode} {chunk}");
        }
    }

    // Lines, through the SDK's iterator: exactly the file's lines, the
    // long one whole, the last one without its missing `\n`.
    for chunk in ["64", "0"] {
        let rec = probe(
            &f.agent,
            &[("path", &path), ("mode", "lines"), ("chunk", chunk)],
        )
        .await;
        assert_eq!(rec.status, RunStatus::Succeeded, "{}", error_of(&rec));
        assert_eq!(finding(&rec, "lines"), f.text, "lines, chunk {chunk}");
        let expected: Vec<String> = std::iter::once(0)
            .chain(f.text.match_indices('\n').map(|(i, _)| i + 1))
            .map(|i| i.to_string())
            .collect();
        assert_eq!(finding(&rec, "offsets"), expected.join(","));
    }

    // The tail: the lines that start in the last 300 bytes.
    let rec = probe(
        &f.agent,
        &[("path", &path), ("mode", "tail"), ("max_bytes", "300")],
    )
    .await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{}", error_of(&rec));
    let from = f.text.len() - 300;
    let start = f.text[from - 1..].find('\n').unwrap() + from;
    assert_eq!(finding(&rec, "lines"), &f.text[start..]);
    assert_eq!(metric(&rec, "truncated"), 0.0);
    assert_eq!(metric(&rec, "file_size"), size);

    // A symlink to a file of the granted directory, a file granted by
    // itself, and a read in dry-run (it changes nothing).
    let rec = probe(&f.agent, &[("path", &format!("{}/current.log", f.logs))]).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{}", error_of(&rec));
    assert_eq!(finding(&rec, "content"), f.text);
    let single = path_of(&f.world.path("single.log"));
    let rec = probe(&f.agent, &[("path", &single)]).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{}", error_of(&rec));
    assert_eq!(finding(&rec, "content"), "one\ntwo\n");
    let rec = invoke(
        &f.agent,
        "logprobe",
        "db",
        &[("path", &path), ("mode", "tail")],
        true,
    )
    .await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{}", error_of(&rec));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_else_is_refused_with_a_reason() {
    let f = fixture().await;
    let secret = path_of(&f.world.path("secret.log"));

    // Not granted, directly, through `..`, through a symlink, in a
    // subdirectory of the granted one: denied, naming the path and the
    // field to change.
    for (path, extra) in [
        (secret.clone(), ""),
        (format!("{}/../secret.log", f.logs), ""),
        (format!("{}/./sub/../../secret.log", f.logs), ""),
        (format!("{}/link.log", f.logs), "resolves to"),
        (format!("{}/sub/nested.log", f.logs), ""),
        ("/etc/passwd".to_string(), ""),
    ] {
        let rec = probe(&f.agent, &[("path", &path)]).await;
        assert_eq!(rec.status, RunStatus::Denied, "{path}: {}", error_of(&rec));
        let e = error_of(&rec);
        assert!(e.contains("log_files"), "{path}: {e}");
        assert!(e.contains("may not read the log file"), "{path}: {e}");
        assert!(e.contains(extra), "{path}: {e}");
        assert!(!finding_text(&rec).contains("secret"), "{path}");
    }

    // A file that is not there, outside the grant: denied, not "missing"
    // (no probing for files); inside: a clear not-found error.
    let rec = probe(&f.agent, &[("path", "/nonexistent/x.log")]).await;
    assert_eq!(rec.status, RunStatus::Denied, "{}", error_of(&rec));
    let missing = format!("{}/missing.log", f.logs);
    let rec = probe(&f.agent, &[("path", &missing)]).await;
    assert_eq!(rec.status, RunStatus::Failed, "{}", error_of(&rec));
    assert!(
        error_of(&rec).contains(&format!("log file `{missing}` does not exist")),
        "{}",
        error_of(&rec)
    );

    // Only regular files: not a directory, not a FIFO (without blocking
    // on it).
    let rec = probe(&f.agent, &[("path", &format!("{}/sub", f.logs))]).await;
    assert_eq!(rec.status, RunStatus::Failed, "{}", error_of(&rec));
    assert!(
        error_of(&rec).contains("is a directory"),
        "{}",
        error_of(&rec)
    );
    let started = Instant::now();
    let rec = probe(&f.agent, &[("path", &format!("{}/fifo", f.logs))]).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(rec.status, RunStatus::Failed, "{}", error_of(&rec));
    assert!(error_of(&rec).contains("is a FIFO"), "{}", error_of(&rec));

    // A relative path.
    let rec = probe(&f.agent, &[("path", "mongod.log")]).await;
    assert_eq!(rec.status, RunStatus::Failed, "{}", error_of(&rec));
    assert!(
        error_of(&rec).contains("not absolute"),
        "{}",
        error_of(&rec)
    );

    // A grant without log_files, and no grant at all.
    let path = format!("{}/mongod.log", f.logs);
    let w = World::new()
        .fixture("logprobe")
        .sqlite_target("db", "db.sqlite")
        .grant("logprobe", "db", &["read"], "");
    let agent = w.agent().await;
    let rec = probe(&agent, &[("path", &path)]).await;
    assert_eq!(rec.status, RunStatus::Denied, "{}", error_of(&rec));
    let e = error_of(&rec);
    assert!(
        e.contains("grants no log files") && e.contains("log_files"),
        "{e}"
    );
    let w = World::new()
        .fixture("logprobe")
        .sqlite_target("db", "db.sqlite");
    let agent = w.agent().await;
    let rec = probe(&agent, &[("path", &path)]).await;
    assert_eq!(rec.status, RunStatus::Denied, "{}", error_of(&rec));
}

/// Every finding of a run's report, as text ("" without a report).
fn finding_text(rec: &RunRecord) -> String {
    rec.report
        .as_ref()
        .map(|r| {
            r.findings
                .iter()
                .map(|f| f.detail.clone())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}
