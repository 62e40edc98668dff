//! `cargo xtask build-plugins`: build the guest workspace in plugins/ for
//! wasm32-wasip2 and copy the components where the agent and the tests look.
//!
//! - shipped plugins (every member except `sdk` and `fixtures/*`) go to
//!   `target/plugins/<crate-name>.wasm`;
//! - test fixtures (`plugins/fixtures/*`) go to `target/plugin-fixtures/<crate-name>.wasm`.
//!
//! Cargo names the compiled file after the library (`index_advisor.wasm`); the copy
//! keeps the package name (`index-advisor.wasm`).

use std::collections::BTreeSet;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cmd;

/// The guest target.
pub const TARGET: &str = "wasm32-wasip2";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plugin,
    Fixture,
}

/// One member of the plugin workspace that produces a component.
#[derive(Debug)]
struct Member {
    package: String,
    kind: Kind,
    /// The file cargo writes, relative to `<target-dir>/wasm32-wasip2/release/`.
    artifact: String,
}

/// Builds the plugins and copies them; returns the shipped plugins' destinations.
pub fn build_plugins(root: &Path) -> Result<Vec<PathBuf>> {
    let plugins_dir = root.join("plugins");
    let manifest = plugins_dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "{} not found: the plugin workspace is missing from this checkout",
            manifest.display()
        );
    }
    ensure_wasm_target(&plugins_dir)?;

    cmd::run(
        cmd::cargo(&plugins_dir)
            .args(["build", "--release", "--workspace", "--target", TARGET])
            .arg("--manifest-path")
            .arg(&manifest),
    )
    .context("building the plugins failed")?;

    let (target_dir, members) = members(&plugins_dir, &manifest)?;
    let release_dir = target_dir.join(TARGET).join("release");
    let plugin_dest = root.join("target").join("plugins");
    let fixture_dest = root.join("target").join("plugin-fixtures");

    let mut shipped = Vec::new();
    let mut kept_plugins = BTreeSet::new();
    let mut kept_fixtures = BTreeSet::new();
    for member in &members {
        let (dest_dir, kept) = match member.kind {
            Kind::Plugin => (&plugin_dest, &mut kept_plugins),
            Kind::Fixture => (&fixture_dest, &mut kept_fixtures),
        };
        let file_name = format!("{}.wasm", member.package);
        let src = release_dir.join(&member.artifact);
        let dest = dest_dir.join(&file_name);
        let outcome = copy_if_changed(&src, &dest)
            .with_context(|| format!("copying the `{}` component", member.package))?;
        println!(
            "{:<8} {:<24} -> {} ({}, {})",
            match member.kind {
                Kind::Plugin => "plugin",
                Kind::Fixture => "fixture",
            },
            member.package,
            relative(root, &dest),
            human_size(outcome.1),
            outcome.0,
        );
        kept.insert(file_name);
        if member.kind == Kind::Plugin {
            shipped.push(dest);
        }
    }
    if kept_plugins.is_empty() {
        println!("note: no shipped plugin found in plugins/ (every member is `sdk` or a fixture)");
    }
    remove_stale(root, &plugin_dest, &kept_plugins)?;
    remove_stale(root, &fixture_dest, &kept_fixtures)?;
    Ok(shipped)
}

/// Adds the wasm32-wasip2 target through rustup when it is not installed yet.
fn ensure_wasm_target(plugins_dir: &Path) -> Result<()> {
    let listed = Command::new("rustup")
        .current_dir(plugins_dir)
        .args(["target", "list", "--installed"])
        .output();
    match listed {
        Ok(out) if out.status.success() => {
            let installed = String::from_utf8_lossy(&out.stdout);
            if !installed.lines().any(|line| line.trim() == TARGET) {
                cmd::run(
                    Command::new("rustup")
                        .current_dir(plugins_dir)
                        .args(["target", "add", TARGET]),
                )?;
            }
            Ok(())
        }
        Ok(out) => bail!(
            "`rustup target list --installed` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(err) if err.kind() == ErrorKind::NotFound => {
            // No rustup (a distribution's Rust): the target's standard library must be there.
            let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
            let libdir = cmd::output(Command::new(rustc).args([
                "--print",
                "target-libdir",
                "--target",
                TARGET,
            ]))?;
            if !Path::new(libdir.trim()).is_dir() {
                bail!(
                    "the {TARGET} standard library is not installed and rustup is not available \
                     to add it"
                );
            }
            Ok(())
        }
        Err(err) => Err(err).context("could not run rustup"),
    }
}

/// The plugin workspace's target directory and its component-producing members.
fn members(plugins_dir: &Path, manifest: &Path) -> Result<(PathBuf, Vec<Member>)> {
    let json = cmd::output(
        cmd::cargo(plugins_dir)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .arg("--manifest-path")
            .arg(manifest),
    )?;
    let meta: Value = serde_json::from_str(&json).context("parsing `cargo metadata`")?;
    let target_dir = meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("`cargo metadata` has no target_directory")?;
    let workspace_members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .context("`cargo metadata` has no workspace_members")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let plugins_dir = plugins_dir
        .canonicalize()
        .with_context(|| format!("resolving {}", plugins_dir.display()))?;

    let mut members = Vec::new();
    for package in meta["packages"].as_array().into_iter().flatten() {
        let id = package["id"].as_str().unwrap_or_default();
        if !workspace_members.contains(id) {
            continue;
        }
        let name = package["name"].as_str().unwrap_or_default().to_owned();
        let manifest_path = Path::new(package["manifest_path"].as_str().unwrap_or_default());
        let dir = manifest_path
            .parent()
            .and_then(|d| d.canonicalize().ok())
            .with_context(|| format!("resolving the directory of package `{name}`"))?;
        let rel = dir.strip_prefix(&plugins_dir).unwrap_or(&dir);
        let kind = if rel == Path::new("sdk") {
            continue;
        } else if rel.starts_with("fixtures") {
            Kind::Fixture
        } else {
            Kind::Plugin
        };
        match artifact(package) {
            Some(artifact) => members.push(Member {
                package: name,
                kind,
                artifact,
            }),
            None => println!(
                "note: skipping `{name}` ({}): no cdylib or bin target, so no component",
                rel.display()
            ),
        }
    }
    members.sort_by(|a, b| a.package.cmp(&b.package));
    Ok((target_dir, members))
}

/// The file name cargo gives the component of `package`: `<lib>.wasm` for a cdylib
/// (dashes become underscores), else `<bin>.wasm` for a binary.
fn artifact(package: &Value) -> Option<String> {
    let targets = package["targets"].as_array()?;
    let has_kind = |target: &&Value, kind: &str| {
        target["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k.as_str() == Some(kind)))
    };
    if let Some(lib) = targets.iter().find(|t| has_kind(t, "cdylib")) {
        let name = lib["name"].as_str()?;
        return Some(format!("{}.wasm", name.replace('-', "_")));
    }
    let bin = targets.iter().find(|t| has_kind(t, "bin"))?;
    Some(format!("{}.wasm", bin["name"].as_str()?))
}

/// Copies `src` to `dest` unless identical (atomically, through a temporary file, so
/// an agent watching the directory never sees half a component). Returns what
/// happened and the size.
fn copy_if_changed(src: &Path, dest: &Path) -> Result<(&'static str, u64)> {
    let bytes = fs::read(src).with_context(|| format!("reading {}", src.display()))?;
    let size = bytes.len() as u64;
    if fs::read(dest).is_ok_and(|existing| existing == bytes) {
        return Ok(("unchanged", size));
    }
    let dir = dest
        .parent()
        .with_context(|| format!("{} has no parent", dest.display()))?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dest.with_extension("wasm.tmp");
    fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, dest).with_context(|| format!("renaming to {}", dest.display()))?;
    Ok(("copied", size))
}

/// Removes `*.wasm` files in `dir` that no longer correspond to a member.
fn remove_stale(root: &Path, dir: &Path, kept: &BTreeSet<String>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("listing {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(".wasm") && !kept.contains(&name) {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            println!("removed stale {}", relative(root, &path));
        }
    }
    Ok(())
}

pub fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn human_size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}
