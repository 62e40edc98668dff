//! `cargo xtask test`: the one command that runs everything CI runs, on a fresh
//! Debian 12 machine with Rust installed. It stops at the first failing step.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cmd;
use crate::mongo;
use crate::plugins::{self, TARGET};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const PG_LIB: &str = "/usr/lib/postgresql/15/lib";
/// The Debian packages the PostgreSQL test cluster needs.
const PG_PACKAGES: [&str; 4] = [
    "postgresql-15",
    "postgresql-client-15",
    "postgresql-15-hypopg",
    "postgresql-15-pg-qualstats",
];
/// The Debian packages the monitoring tests (`warden_tests::monitoring`) run, and the
/// binaries they install.
const MONITORING_PACKAGES: [(&str, &str); 2] = [
    ("prometheus", "/usr/bin/prometheus"),
    (
        "prometheus-alertmanager",
        "/usr/bin/prometheus-alertmanager",
    ),
];

pub fn test(root: &Path, cargo_test_args: &[String]) -> Result<()> {
    let plugins_manifest = root.join("plugins").join("Cargo.toml");
    let plugins_dir = root.join("plugins");
    let mut steps = Steps::default();

    steps.run("postgresql packages", ensure_postgres)?;
    steps.run("monitoring packages", ensure_monitoring)?;
    let mut mongod = PathBuf::new();
    steps.run("mongodb test server", || {
        mongod = mongo::ensure_test_server()?;
        Ok(())
    })?;
    steps.run("rust components", ensure_components)?;
    steps.run("build-plugins", || plugins::build_plugins(root).map(|_| ()))?;
    steps.run("fmt", || {
        cmd::run(cmd::cargo(root).args(["fmt", "--all", "--check"]))
    })?;
    steps.run("fmt (plugins)", || {
        cmd::run(
            cmd::cargo(&plugins_dir)
                .args(["fmt", "--all", "--check", "--manifest-path"])
                .arg(&plugins_manifest),
        )
    })?;
    steps.run("clippy", || {
        cmd::run(cmd::cargo(root).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    steps.run("clippy (plugins)", || {
        cmd::run(
            cmd::cargo(&plugins_dir)
                .args(["clippy", "--workspace", "--all-targets", "--target", TARGET])
                .arg("--manifest-path")
                .arg(&plugins_manifest)
                .args(["--", "-D", "warnings"]),
        )
    })?;
    steps.run("plugin unit tests (host target)", || {
        let host = host_triple()?;
        cmd::run(
            cmd::cargo(&plugins_dir)
                .args(["test", "-p", "vacuum", "-p", "backup"])
                .args([
                    "-p",
                    "index-advisor",
                    "-p",
                    "runbook",
                    "-p",
                    "warden-sdk",
                    "-p",
                    "warden-model",
                ])
                .args(["--features", "warden-sdk/bson", "--target"])
                .arg(host)
                .arg("--manifest-path")
                .arg(&plugins_manifest),
        )
    })?;
    // The CLI tests run the `warden` binary; `cargo test` builds a package's
    // binaries only for that package's own integration tests.
    steps.run("build warden binary", || {
        cmd::run(cmd::cargo(root).args(["build", "-p", "warden", "--bin", "warden"]))
    })?;
    steps.run("cargo test", || {
        let mut test = cmd::cargo(root);
        test.arg("test");
        // `-p` narrows the run; `--workspace` would widen it again.
        let selects_packages = cargo_test_args
            .iter()
            .take_while(|a| *a != "--")
            .any(|a| a.starts_with("-p") || a.starts_with("--package"));
        if !selects_packages {
            test.arg("--workspace");
        }
        // warden_tests::mongo runs it.
        test.env("WARDEN_TEST_MONGOD", &mongod);
        cmd::run(test.args(cargo_test_args))
    })?;

    steps.summary();
    println!("\nall steps passed");
    Ok(())
}

/// Runs named steps in order, timing each; an error names the failing step.
#[derive(Default)]
struct Steps {
    done: Vec<(&'static str, Duration)>,
}

impl Steps {
    fn run(&mut self, name: &'static str, step: impl FnOnce() -> Result<()>) -> Result<()> {
        println!("\n==> {name}");
        let start = Instant::now();
        let result = step();
        let elapsed = start.elapsed();
        if let Err(err) = result {
            self.summary();
            return Err(err.context(format!(
                "step `{name}` failed after {:.1}s",
                elapsed.as_secs_f64()
            )));
        }
        self.done.push((name, elapsed));
        Ok(())
    }

    fn summary(&self) {
        if self.done.is_empty() {
            return;
        }
        println!("\nsteps passed:");
        for (name, elapsed) in &self.done {
            println!("  {name:<22} {:>7.1}s", elapsed.as_secs_f64());
        }
    }
}

/// Installs PostgreSQL 15 with HypoPG and pg_qualstats from Debian when missing.
fn ensure_postgres() -> Result<()> {
    let missing = missing_pg_files();
    if missing.is_empty() {
        println!("PostgreSQL 15 with hypopg and pg_qualstats is installed");
        return Ok(());
    }
    let packages = PG_PACKAGES.join(" ");
    if !cmd::is_root() {
        bail!(
            "PostgreSQL 15 is incomplete (missing {}); install it as root:\n  \
             sudo apt-get install -y --no-install-recommends {packages}",
            missing.join(", ")
        );
    }
    if !cmd::on_path("apt-get") {
        bail!(
            "PostgreSQL 15 is incomplete (missing {}) and apt-get is not available: install \
             the equivalent of the Debian packages {packages}",
            missing.join(", ")
        );
    }
    cmd::run(
        Command::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(PG_PACKAGES)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    let missing = missing_pg_files();
    if !missing.is_empty() {
        bail!(
            "installed {packages} but {} is still missing",
            missing.join(", ")
        );
    }
    Ok(())
}

fn missing_pg_files() -> Vec<String> {
    let bins = [
        "initdb",
        "pg_ctl",
        "postgres",
        "psql",
        "pg_dump",
        "pg_restore",
    ]
    .map(|b| format!("{PG_BIN}/{b}"));
    let libs =
        ["pg_stat_statements.so", "hypopg.so", "pg_qualstats.so"].map(|l| format!("{PG_LIB}/{l}"));
    bins.into_iter()
        .chain(libs)
        .filter(|f| !Path::new(f).exists())
        .collect()
}

/// Installs Prometheus and Alertmanager from Debian when their binaries are missing.
fn ensure_monitoring() -> Result<()> {
    let missing: Vec<&str> = MONITORING_PACKAGES
        .iter()
        .filter(|(_, bin)| !Path::new(bin).exists())
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        println!("prometheus and alertmanager are installed");
        return Ok(());
    }
    let packages = missing.join(" ");
    if !cmd::is_root() || !cmd::on_path("apt-get") {
        bail!(
            "the monitoring tests need {packages}; install them as root:\n  sudo apt-get install -y --no-install-recommends {packages}"
        );
    }
    cmd::run(
        Command::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    if let Some((_, bin)) = MONITORING_PACKAGES
        .iter()
        .find(|(_, bin)| !Path::new(bin).exists())
    {
        bail!("installed {packages} but {bin} is still missing");
    }
    Ok(())
}

/// rustfmt and clippy ship with rustup's default profile, not the minimal one.
fn ensure_components() -> Result<()> {
    let have = |sub: &str| cmd::succeeds(cmd::cargo(Path::new(".")).args([sub, "--version"]));
    let missing: Vec<&str> = [("fmt", "rustfmt"), ("clippy", "clippy")]
        .into_iter()
        .filter(|(sub, _)| !have(sub))
        .map(|(_, component)| component)
        .collect();
    if missing.is_empty() {
        println!("rustfmt and clippy are installed");
        return Ok(());
    }
    if !cmd::on_path("rustup") {
        bail!(
            "cargo {} missing and rustup is not available to add them",
            missing.join(" and ")
        );
    }
    cmd::run(
        Command::new("rustup")
            .args(["component", "add"])
            .args(&missing),
    )
    .context("adding rust components")
}

/// The host's target triple (the plugins' unit tests run natively).
fn host_triple() -> Result<String> {
    let out = std::process::Command::new("rustc").arg("-vV").output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_string())
        .ok_or_else(|| anyhow::anyhow!("`rustc -vV` did not print the host triple"))
}
