//! `[runbooks]`: the runbook folder.

use super::Resolver;
use super::document::Table;
use crate::diag::Diagnostics;
use serde::Deserialize;
use std::ffi::OsString;
use std::path::PathBuf;
use toml::Spanned;

/// `[runbooks]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunbooksFile {
    /// Folder holding the runbooks (`*.toml`, see
    /// `policies/runbooks/README.md`). Required in the table. Relative to
    /// the folder of this file.
    dir: Option<Spanned<PathBuf>>,
}

impl<E: Fn(&str) -> Option<OsString>> Resolver<'_, E> {
    /// `[runbooks] dir`, resolved against the config folder.
    pub(super) fn runbooks_dir(
        &self,
        table: &Table<'_, RunbooksFile>,
        diags: &mut Diagnostics,
    ) -> Option<PathBuf> {
        let dir = table.require("dir", &table.value.dir, diags)?;
        if dir.get_ref().as_os_str().is_empty() {
            diags.push(
                table
                    .source
                    .error(&dir.span(), table.field("dir"), "must not be empty"),
            );
            return None;
        }
        Some(self.dir.join(dir.get_ref()))
    }
}
