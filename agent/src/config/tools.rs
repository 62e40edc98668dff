//! `[tools]`: external programs the host runs.

use super::Resolver;
use super::document::Table;
use serde::Deserialize;
use std::ffi::OsString;
use std::path::PathBuf;
use toml::Spanned;

/// `[tools]`: external programs the host runs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ToolsFile {
    /// Folder holding `pg_dump` and `pg_restore`. Default: the newest
    /// `/usr/lib/postgresql/<version>/bin`, else `PATH`. Relative to the
    /// folder of this file.
    pg_bin_dir: Option<Spanned<PathBuf>>,
}

impl<E: Fn(&str) -> Option<OsString>> Resolver<'_, E> {
    /// `[tools] pg_bin_dir`, resolved against the config folder.
    pub(super) fn pg_bin_dir(&self, table: &Table<'_, ToolsFile>) -> Option<PathBuf> {
        table
            .value
            .pg_bin_dir
            .as_ref()
            .map(|p| self.dir.join(p.get_ref()))
    }
}
