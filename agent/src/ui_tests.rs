//! Data-driven UI tests: the diagnostics of the files in `tests/ui/`.
//!
//! ```text
//! tests/ui/policy/invalid/NAME.toml   a policy file, loaded alone
//! tests/ui/policy/invalid/NAME/       a policy folder (several files)
//! tests/ui/policy/invalid/NAME.err    the diagnostics expected, one a line
//! tests/ui/policy/valid/NAME.toml     loads without a diagnostic
//! tests/ui/runbook/...                the same for runbooks
//! tests/ui/config/invalid/NAME.toml   a `warden.toml`
//! tests/ui/config/invalid/NAME/       a folder with `warden.toml` and the
//!                                     files it names
//! tests/ui/config/invalid/NAME.env    the environment it is loaded with
//!                                     (`NAME=VALUE` lines), if any
//! ```
//!
//! Policies are checked against the targets `app` and `quickstart`. Paths
//! in the expected text are relative to the `valid` or `invalid` folder.
//! The config cases' passwords are all [`SECRET`], which no diagnostic may
//! show, in its text or in its debug form.
//! `UPDATE_SNAPSHOTS=1 cargo test -p warden --lib ui_tests` writes the
//! `.err` files from what the loaders say now (review the diff).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::config::Config;
use crate::diag::Diagnostics;
use crate::policy::PolicySet;
use crate::runbook::RunbookSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The targets the policies of the UI tests may name.
const TARGETS: &[&str] = &["app", "quickstart"];

/// The password in the URLs of the config cases.
const SECRET: &str = "hunter2";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ui")
}

/// The cases of `dir`: `NAME.toml` files and `NAME/` folders, by name.
fn cases(dir: &Path) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    cases
}

/// A config case loaded with the environment of its `.env` file.
fn load_config(case: &Path) -> Result<(), Diagnostics> {
    let env: Vec<(String, String)> = std::fs::read_to_string(case.with_extension("env"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let file = if case.is_dir() {
        case.join("warden.toml")
    } else {
        case.to_path_buf()
    };
    let result = Config::load_with_env(&file, |name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.into())
    });
    if let Err(diags) = &result {
        for d in diags {
            assert!(!d.to_string().contains(SECRET), "{}: {d}", case.display());
            assert!(
                !format!("{d:?}").contains(SECRET),
                "{}: {d:?}",
                case.display()
            );
        }
    }
    result.map(drop)
}

/// A case loaded: a file alone, or a folder.
fn load(section: &str, case: &Path) -> Result<(), Diagnostics> {
    match (section, case.is_dir()) {
        ("config", _) => load_config(case),
        ("policy", true) => PolicySet::load_dir(case, TARGETS).map(drop),
        ("policy", false) => PolicySet::load_files(&[case.to_path_buf()], TARGETS).map(drop),
        ("runbook", true) => RunbookSet::load_dir(case).map(drop),
        ("runbook", false) => RunbookSet::load_files(&[case.to_path_buf()]).map(drop),
        _ => panic!("no loader for {section}"),
    }
}

/// The diagnostics as printed, one a line, with paths made relative to
/// `base`.
fn render(diags: &Diagnostics, base: &Path) -> String {
    let prefix = format!("{}/", base.display());
    let mut out = String::new();
    for d in diags {
        writeln!(out, "{}", d.to_string().replace(&prefix, "")).unwrap();
    }
    out
}

/// Checks every case of `section`; returns the problems found.
fn check_section(section: &str, update: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let base = root().join(section);
    let valid = base.join("valid");
    if valid.is_dir() {
        for case in cases(&valid) {
            if let Err(diags) = load(section, &case) {
                problems.push(format!(
                    "{}: expected no diagnostics, got:\n{}",
                    case.display(),
                    render(&diags, &valid)
                ));
            }
        }
    }
    let invalid = base.join("invalid");
    for case in cases(&invalid) {
        let expected_file = case.with_extension("err");
        let got = match load(section, &case) {
            Ok(()) => String::new(),
            Err(diags) => render(&diags, &invalid),
        };
        if got.is_empty() {
            problems.push(format!(
                "{}: expected diagnostics, got none",
                case.display()
            ));
            continue;
        }
        if update {
            std::fs::write(&expected_file, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_file).unwrap_or_default();
        if expected != got {
            problems.push(format!(
                "{}: diagnostics differ from {}\n--- expected\n{expected}--- got\n{got}",
                case.display(),
                expected_file.display()
            ));
        }
    }
    for err in std::fs::read_dir(&invalid)
        .unwrap()
        .map(|e| e.unwrap().path())
    {
        if err.extension().is_some_and(|e| e == "err")
            && !err.with_extension("toml").exists()
            && !err.with_extension("").is_dir()
        {
            problems.push(format!("{}: no case for it", err.display()));
        }
    }
    problems
}

fn run(section: &str) {
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1");
    let problems = check_section(section, update);
    assert!(
        problems.is_empty(),
        "{} UI case(s) failed (UPDATE_SNAPSHOTS=1 rewrites the .err files):\n\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn config() {
    run("config");
}

#[test]
fn policy() {
    run("policy");
}

#[test]
fn runbook() {
    run("runbook");
}
