//! Policies: which plugin may do what on which target. Deny by default:
//! without a grant for a (plugin, target) pair, nothing is allowed.
//!
//! Policies are the `*.toml` files directly in the policy folder, read in
//! order of name (subfolders are ignored, so examples can live in
//! `policies/examples/`):
//!
//! ```toml
//! [[grant]]
//! plugin = "vacuum"
//! targets = ["app", "quickstart"]
//! capabilities = ["read", "maintenance"]
//! max_runtime = "5m"
//! ```
//!
//! ```no_run
//! # fn main() -> Result<(), warden::diag::Diagnostics> {
//! use warden::capability::CapabilityClass;
//! let policies = warden::policy::PolicySet::load_dir("policies".as_ref(), &["app", "quickstart"])?;
//! let allowed = policies
//!     .grant("vacuum", "app")
//!     .is_some_and(|grant| grant.allows(CapabilityClass::Maintenance));
//! # Ok(())
//! # }
//! ```
//!
//! Loading reports every problem in every file at once (see
//! [`crate::diag`]) and gives either the whole set or nothing.
//!
//! To add a kind of table (say `[[schedule]]`): a module like `grant` with
//! its `ScheduleFile` and domain type, a field in `PolicyFile` naming it, one
//! `take_array` line in `Builder::add_file` and a field in [`PolicySet`].

mod grant;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::config::document::{Document, Source, Table};
use crate::diag::{Diagnostic, Diagnostics};
use grant::{Expanded, GrantFile};
pub use grant::{Grant, is_valid_plugin_name};

/// Every policy, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicySet {
    /// One per (plugin, target) pair, in file order.
    pub grants: Vec<Grant>,
}

/// Where something was defined: a file and a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Location {
    /// `file:line`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A policy file as written. Its tables are read one at a time (see
/// `GrantFile`); the fields here only name them, so that an unknown
/// top-level key is reported along with the expected ones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    /// Grants, as `[[grant]]` tables: see `GrantFile`.
    #[serde(default, rename = "grant")]
    _grant: Option<IgnoredAny>,
}

impl PolicySet {
    /// Loads every `*.toml` file directly in `dir`, in order of name.
    /// `known_targets` are the names of the targets in the config. A
    /// missing folder is an error; an empty one grants nothing.
    pub fn load_dir(dir: &Path, known_targets: &[&str]) -> Result<PolicySet, Diagnostics> {
        let files = policy_files(dir)?;
        PolicySet::load_files(&files, known_targets)
    }

    /// Loads the given policy files, in the order given.
    pub fn load_files(files: &[PathBuf], known_targets: &[&str]) -> Result<PolicySet, Diagnostics> {
        let mut builder = Builder::new(known_targets);
        let mut diags = Diagnostics::new();
        for file in files {
            builder.add_file(file, &mut diags);
        }
        diags.into_result(PolicySet {
            grants: builder.grants,
        })
    }

    /// The grant for `plugin` on `target`, if any: deny by default.
    pub fn grant(&self, plugin: &str, target: &str) -> Option<&Grant> {
        self.grants
            .iter()
            .find(|grant| grant.plugin == plugin && grant.target == target)
    }

    /// Every plugin that has at least one grant.
    pub fn plugins(&self) -> BTreeSet<&str> {
        self.grants
            .iter()
            .map(|grant| grant.plugin.as_str())
            .collect()
    }
}

/// The `*.toml` files directly in `dir` (not hidden), sorted by name.
fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, Diagnostics> {
    let entries = fs::read_dir(dir).map_err(|e| {
        let message = match e.kind() {
            io::ErrorKind::NotFound => {
                "the policy folder does not exist: create it (an empty folder grants \
                                        nothing) or change `policy_dir` in the config"
                    .to_owned()
            }
            _ => format!("cannot read the policy folder: {e}"),
        };
        Diagnostic::new(dir, "", message)
    })?;
    let mut diags = Diagnostics::new();
    let mut files = Vec::new();
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                diags.push(Diagnostic::new(
                    dir,
                    "",
                    format!("cannot read the policy folder: {e}"),
                ));
                continue;
            }
        };
        let is_toml = path.extension().is_some_and(|ext| ext == "toml");
        let hidden = path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with('.'));
        if !is_toml || hidden {
            continue;
        }
        // Follows symbolic links; folders (even named `*.toml`) are skipped.
        match fs::metadata(&path) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => files.push(path),
            Err(e) => diags.push(Diagnostic::new(
                &path,
                "",
                format!("cannot read the policy file: {e}"),
            )),
        }
    }
    files.sort();
    diags.into_result(files)
}

/// Collects the policies file by file, checking what spans files.
struct Builder<'k> {
    known_targets: &'k [&'k str],
    grants: Vec<Grant>,
    /// Where each (plugin, target) pair was granted: its `targets` entry.
    granted: BTreeMap<(String, String), Location>,
}

impl<'k> Builder<'k> {
    fn new(known_targets: &'k [&'k str]) -> Self {
        Builder {
            known_targets,
            grants: Vec::new(),
            granted: BTreeMap::new(),
        }
    }

    /// Reads and checks one policy file; its diagnostics are appended to
    /// `diags` in order of line.
    fn add_file(&mut self, file: &Path, diags: &mut Diagnostics) {
        let text = match fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                diags.push(Diagnostic::new(
                    file,
                    "",
                    format!("cannot read the policy file: {e}"),
                ));
                return;
            }
        };
        let mut file_diags = Diagnostics::new();
        if let Some(mut document) = Document::parse(file, &text, &mut file_diags) {
            let grants = document.take_array::<GrantFile>("grant", &mut file_diags);
            let source = document.source();
            let _: Option<Table<'_, PolicyFile>> = document.finish(&mut file_diags);
            for table in &grants {
                for expanded in grant::expand(table, self.known_targets, &mut file_diags) {
                    self.add_grant(source, expanded, &mut file_diags);
                }
            }
        }
        file_diags.sort_by_line();
        diags.append(&mut file_diags);
    }

    /// Adds a grant, refusing a second one for the same (plugin, target).
    fn add_grant(&mut self, source: Source<'_>, expanded: Expanded, diags: &mut Diagnostics) {
        let Expanded { grant, span, field } = expanded;
        let key = (grant.plugin.clone(), grant.target.clone());
        if let Some(first) = self.granted.get(&key) {
            let (plugin, target) = key;
            diags.push(source.error(
                &span,
                field,
                format!(
                    "plugin `{plugin}` already has a grant for target `{target}` at {first}: \
                     a plugin may have one grant per target, merge the two"
                ),
            ));
            return;
        }
        let location = Location {
            file: source.file.to_path_buf(),
            line: source.line(&span),
        };
        self.granted.insert(key, location);
        self.grants.push(grant);
    }
}

#[cfg(test)]
mod tests;
