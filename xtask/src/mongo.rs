//! The MongoDB-wire server the integration tests run (`warden_tests::mongo`):
//! SecantusDB, GPL-2.0-only, so only ever run as a separate program.
//!
//! A cached `secantusd-rs` (crates.io `secantus-mdb`) is used when present; it is not
//! built here, as building it takes ~15–20 min on 2 cores, more than CI can spare.
//! Otherwise the prebuilt PyPI build `secantusd-py` (the same engine, slower) goes
//! into a venv in the cache, which takes seconds. The harness looks in the same
//! places: keep the names in step with `tests/harness/mongo.rs`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd;

/// `secantus-mdb` on crates.io, whose binary is `secantusd-rs`.
const RS_VERSION: &str = "0.5.3-beta.196";
/// `SecantusDB` on PyPI, whose script is `secantusd-py`.
const PY_VERSION: &str = "0.7.0b3";

/// Returns the server program, installing `secantusd-py` into the cache unless a
/// cached `secantusd-rs` or `secantusd-py` works.
pub fn ensure_test_server() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let tools = PathBuf::from(home).join(".cache/warden/tools");
    let rs_root = tools.join(format!("secantus-mdb-{RS_VERSION}"));
    let rs = rs_root.join("bin/secantusd-rs");
    if rs.is_file() {
        println!(
            "using the cached secantusd-rs {RS_VERSION}: {}",
            rs.display()
        );
        return Ok(rs);
    }
    let venv = tools.join(format!("secantusdb-py-{PY_VERSION}"));
    let py = venv.join("bin/secantusd-py");
    if cmd::succeeds(Command::new(&py).arg("--help")) {
        println!(
            "using the cached secantusd-py {PY_VERSION}: {}",
            py.display()
        );
        return Ok(py);
    }
    println!(
        "installing secantusd-py {PY_VERSION} into {}; for the faster secantusd-rs, build it \
         once (~20 min):\n  cargo install secantus-mdb --version {RS_VERSION} \
         --ignore-rust-version --locked --root {}",
        venv.display(),
        rs_root.display()
    );
    if venv.exists() {
        std::fs::remove_dir_all(&venv)
            .with_context(|| format!("removing the broken venv {}", venv.display()))?;
    }
    ensure_python_venv()?;
    cmd::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    cmd::run(
        Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--no-input",
                "--disable-pip-version-check",
            ])
            .arg(format!("SecantusDB=={PY_VERSION}")),
    )?;
    if !cmd::succeeds(Command::new(&py).arg("--help")) {
        bail!(
            "installed SecantusDB=={PY_VERSION} but `{} --help` fails",
            py.display()
        );
    }
    Ok(py)
}

/// Debian splits `venv`'s `ensurepip` into `python3-venv`: install it when missing.
fn ensure_python_venv() -> Result<()> {
    if cmd::succeeds(Command::new("python3").args(["-c", "import ensurepip, venv"])) {
        return Ok(());
    }
    if !cmd::is_root() || !cmd::on_path("apt-get") {
        bail!(
            "python3 with venv is needed for secantusd-py; install it as root:\n  \
             sudo apt-get install -y --no-install-recommends python3-venv"
        );
    }
    cmd::run(
        Command::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "python3-venv"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
