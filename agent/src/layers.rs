//! The import graph of `agent/src`, checked: the top-level modules form the
//! layers below (each may use only layers beneath it), and at every level of
//! the module tree the children of a module use each other without a cycle.
//!
//! A use is any `crate::…` or `super::…` path outside comments and the
//! `mod tests` block at a file's end, resolved to the deepest module it
//! names (an item re-exported by a parent resolves to the parent). A
//! module's uses of its own ancestors and descendants are not edges: a
//! parent declares its children, and children use the parent's types.
//!
//! `cargo test -p warden --lib layers -- --nocapture` prints the listing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules, bottom layer first. A module may use modules of
/// lower layers only; a new module needs a place here.
const LAYERS: &[&[&str]] = &[
    // Leaves: text, errors, names, secrets.
    &["text", "diag", "capability", "secrets", "ident", "clock"],
    // warden.toml.
    &["config"],
    &["telemetry", "policy"],
    // Runbooks, artifact stores and the run store (records, alerts,
    // circuits, plugin state).
    &["runbook", "artifacts", "runs"],
    // The capabilities a plugin imports, with their ports (`RunStarter`).
    &["host"],
    &["runtime", "notify"],
    // Loading and cross-checking config, policies, runbooks and plugins.
    &["load"],
    // The path one run takes.
    &["agent"],
    // Orchestration above the run path, reload, `check --connect`.
    &["dispatch", "reload", "credentials"],
    &["triggers"],
    &["service"],
    &["cli"],
];

type Module = Vec<String>;

fn modules(root: &Path) -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(rel) = path.strip_prefix(root) else {
                continue;
            };
            let Some(rel) = rel.to_str().and_then(|r| r.strip_suffix(".rs")) else {
                continue;
            };
            let mut parts: Module = rel.split('/').map(str::to_string).collect();
            // This check itself is test code, like `tests.rs` files.
            if parts.last().is_some_and(|l| l == "tests")
                || ["lib", "main", "layers", "ui_tests"].contains(&rel)
            {
                continue;
            }
            if parts.last().is_some_and(|l| l == "mod") {
                parts.pop();
            }
            out.insert(parts, path);
        }
    }
    out
}

/// The source without comments and without a trailing `mod tests` block.
fn code(src: &str) -> String {
    let src = match src.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &src[..i],
        None => src,
    };
    src.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every use of one module by another, as (user, used).
fn uses(mods: &BTreeMap<Module, PathBuf>) -> BTreeSet<(Module, Module)> {
    let path = Regex::new(
        r"\b(crate|super)((?:::super)*)::(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*)",
    )
    .expect("regex");
    let mut edges = BTreeSet::new();
    for (m, file) in mods {
        let src = std::fs::read_to_string(file).expect("readable source");
        for c in path.captures_iter(&code(&src)) {
            let start: Module = if &c[1] == "crate" {
                Vec::new()
            } else {
                let ups = 1 + c[2].matches("super").count();
                m[..m.len().saturating_sub(ups)].to_vec()
            };
            let rest = &c[3];
            let items: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group.trim_end_matches('}').split(',').collect(),
                None => vec![rest],
            };
            for item in items {
                let mut full = start.clone();
                full.extend(item.trim().split("::").map(str::to_string));
                let Some(used) = (1..=full.len())
                    .rev()
                    .map(|k| full[..k].to_vec())
                    .find(|p| mods.contains_key(p))
                else {
                    continue;
                };
                if used.starts_with(m) || m.starts_with(&used) {
                    continue;
                }
                edges.insert((m.clone(), used));
            }
        }
    }
    edges
}

/// `(a, b)` lifted to the children of their deepest common ancestor.
fn siblings(a: &Module, b: &Module) -> (Module, Module) {
    let n = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    (a[..=n].to_vec(), b[..=n].to_vec())
}

fn cycles(edges: &BTreeSet<(Module, Module)>) -> Vec<Vec<Module>> {
    let mut graph: BTreeMap<&Module, Vec<&Module>> = BTreeMap::new();
    for (a, b) in edges {
        graph.entry(a).or_default().push(b);
    }
    // A module is on a cycle when it reaches itself.
    let mut found: Vec<Vec<Module>> = Vec::new();
    for &start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<Vec<&Module>> = vec![vec![start]];
        while let Some(route) = stack.pop() {
            let Some(&last) = route.last() else {
                continue;
            };
            for &next in graph.get(last).into_iter().flatten() {
                if next == start {
                    let mut cycle: Vec<Module> = route.iter().map(|m| (*m).clone()).collect();
                    cycle.sort();
                    if !found.contains(&cycle) {
                        found.push(cycle);
                    }
                } else if seen.insert(next) {
                    let mut longer = route.clone();
                    longer.push(next);
                    stack.push(longer);
                }
            }
        }
    }
    found
}

fn name(m: &Module) -> String {
    m.join("::")
}

#[test]
fn the_module_tree_has_no_import_cycles_and_top_level_modules_keep_their_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&root);
    assert!(
        mods.contains_key(&vec!["host".to_string(), "sql".to_string()]),
        "the walk found the sources"
    );
    let edges = uses(&mods);
    let lifted: BTreeSet<(Module, Module)> = edges.iter().map(|(a, b)| siblings(a, b)).collect();

    let mut problems = Vec::new();
    let layer_of = |m: &str| LAYERS.iter().position(|l| l.contains(&m));
    let mut listing: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in lifted.iter().filter(|(a, _)| a.len() == 1) {
        listing.entry(name(a)).or_default().insert(name(b));
        match (layer_of(&a[0]), layer_of(&b[0])) {
            (Some(la), Some(lb)) if la > lb => {}
            (Some(_), Some(_)) => problems.push(format!(
                "`{}` uses `{}`, which is not in a lower layer (LAYERS in agent/src/layers.rs)",
                name(a),
                name(b)
            )),
            (None, _) => problems.push(format!("`{}` has no place in LAYERS", name(a))),
            (_, None) => problems.push(format!("`{}` has no place in LAYERS", name(b))),
        }
    }
    for top in mods.keys().filter(|m| m.len() == 1) {
        if layer_of(&top[0]).is_none() {
            problems.push(format!("`{}` has no place in LAYERS", name(top)));
        }
    }
    for cycle in cycles(&lifted) {
        let names: Vec<String> = cycle.iter().map(name).collect();
        let within: Vec<String> = edges
            .iter()
            .filter(|(a, b)| {
                let (x, y) = siblings(a, b);
                cycle.contains(&x) && cycle.contains(&y)
            })
            .map(|(a, b)| format!("{} -> {}", name(a), name(b)))
            .collect();
        problems.push(format!(
            "import cycle between {}: {}",
            names.join(", "),
            within.join("; ")
        ));
    }
    for (m, used) in &listing {
        let used: Vec<&str> = used.iter().map(String::as_str).collect();
        println!("{m} -> {}", used.join(", "));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_cycle_and_an_upward_use_are_found() {
    let m = |s: &str| -> Module { s.split("::").map(str::to_string).collect() };
    let edges: BTreeSet<(Module, Module)> = [
        (m("host::sql::classify"), m("host::permission")),
        (m("host::permission"), m("host::sql")),
        (m("host::state"), m("host::permission")),
    ]
    .into_iter()
    .map(|(a, b)| siblings(&a, &b))
    .collect();
    let found = cycles(&edges);
    assert_eq!(found, vec![vec![m("host::permission"), m("host::sql")]]);
    assert!(cycles(&[(m("a"), m("b"))].into_iter().collect()).is_empty());
    assert_eq!(
        siblings(&m("runs::record"), &m("runs::approvals::guard")),
        (m("runs::record"), m("runs::approvals"))
    );
    let src = "use crate::runs::Action; // crate::agent::Agent\n#[cfg(test)]\nmod tests {\n use crate::cli;\n}";
    assert_eq!(code(src).trim(), "use crate::runs::Action;");
}
